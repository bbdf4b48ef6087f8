//! `bitzel build <machine.yml> [TARGET...]`: load the project (includes,
//! repos, layers, `bitzel:` settings and flags), parse the metadata, build the
//! task graph and run it through the cache and the sandbox
//! (see [`crate::build_flow`]). `--plan` only prints the resolved project.

use std::process::ExitCode;

use bitzel_config::{Project, RepoSource};

use crate::build_flow::BuildRequest;
use crate::output::Output;
use crate::project::{load_project_locked, shown, ConfigArgs};

/// Arguments of `bitzel build`.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// The project configuration and the flags overriding its `bitzel:` settings.
    #[command(flatten)]
    pub project: ConfigArgs,
    /// Targets to build instead of the config's `target` (`name` or `name:do_task`).
    pub targets: Vec<String>,
    /// The task to run on the targets instead of the config's `task` (default `build`).
    #[arg(short = 'c', long = "cmd", value_name = "TASK")]
    pub task: Option<String>,
    /// Only print the resolved project (config files, settings, repos, layers) and exit.
    #[arg(long)]
    pub plan: bool,
    /// List the tasks in execution order without running anything.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Keep running tasks that do not depend on a failed one.
    #[arg(short, long)]
    pub keep_going: bool,
    /// One JSON object per event on stdout (the last is `build_finished`).
    #[arg(long)]
    pub json: bool,
    /// For every task that runs, print why (the inputs that changed).
    #[arg(long)]
    pub explain: bool,
    /// Per-task time limit in seconds (SIGTERM, then SIGKILL).
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// A shared cache speaking the Bazel HTTP remote-cache protocol (e.g. nginx
    /// WebDAV, bazel-remote), as a second level behind the local cache
    /// (overrides `bitzel: remote_cache: url`).
    #[arg(long, value_name = "URL")]
    pub remote_cache: Option<String>,
    /// Read from the remote cache but never upload (untrusted builds).
    #[arg(long)]
    pub remote_cache_read_only: bool,
    /// Write the build summary (executed, cached, failed, local/remote hits,
    /// uploads, bytes moved, wall time) as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub summary_json: Option<std::path::PathBuf>,
}

/// Run `bitzel build`.
pub fn run(out: &Output, args: BuildArgs) -> anyhow::Result<ExitCode> {
    let (project, _build_dir_lock) =
        load_project_locked(out, &args.project.config, &args.project.overrides())?;
    if args.plan {
        print!("{}", plan(&project, out.verbose > 0));
        return Ok(ExitCode::SUCCESS);
    }
    if out.verbose > 0 && !args.json {
        eprint!("{}", plan(&project, out.verbose > 1));
    }
    crate::build_flow::start_host_root_digest();
    let ws = crate::project::load_workspace(out, &project)?;
    let req = BuildRequest {
        targets: args.targets,
        task: args.task,
        keep_going: args.keep_going,
        dry_run: args.dry_run,
        json: args.json,
        explain: args.explain,
        timeout_secs: args.timeout,
        explain_only: false,
        remote_cache: args.remote_cache,
        remote_read_only: args.remote_cache_read_only,
        summary_json: args.summary_json,
        devshell: None,
    };
    crate::build_flow::build(out, &project, &ws, &req)
}

/// What would be built, as text: machine, distro, targets, task, settings,
/// repos and layers; with `verbose`, the generated bblayers.conf/local.conf.
pub fn plan(p: &Project, verbose: bool) -> String {
    let unset = || "(not set)".to_string();
    let mut s = String::new();
    s += &format!("config:     {}\n", shown(&p.file));
    for f in p.files.iter().filter(|f| **f != p.file) {
        s += &format!("  includes: {}\n", shown(f));
    }
    s += &format!("machine:    {}\n", p.machine.clone().unwrap_or_else(unset));
    s += &format!("distro:     {}\n", p.distro.clone().unwrap_or_else(unset));
    s += &format!(
        "targets:    {}\n",
        if p.targets.is_empty() {
            unset()
        } else {
            p.targets.join(" ")
        }
    );
    s += &format!(
        "task:       {}\n",
        p.task
            .clone()
            .unwrap_or_else(|| "build (default)".to_string())
    );
    let b = &p.bitzel;
    if let Some(d) = &b.build_dir {
        s += &format!("build dir:  {}\n", shown(d));
    }
    if let Some(d) = &b.cache_dir {
        s += &format!("cache dir:  {}\n", shown(d));
    }
    if let Some(j) = b.jobs {
        s += &format!("jobs:       {j}\n");
    }
    if let Some(x) = b.sandbox {
        s += &format!("sandbox:    {x}\n");
    }
    if let Some(x) = b.build_root {
        s += &format!("build root: {x}\n");
    }
    s += "repos:\n";
    for r in &p.repos {
        let src = match &r.source {
            RepoSource::Local => "local".to_string(),
            RepoSource::Git { url, .. } => match &r.revision {
                Some(rev) => format!("git {url} @ {rev}"),
                None => format!("git {url}"),
            },
        };
        let dir = r.dir.as_deref().map(shown).unwrap_or_else(|| "-".into());
        s += &format!("  {} ({src}): {dir}\n", r.id);
    }
    s += "layers:\n";
    for l in p.layer_paths() {
        s += &format!("  {}\n", shown(&l));
    }
    if verbose {
        s += "--- conf/bblayers.conf\n";
        s += &p.bblayers_conf();
        s += "--- conf/local.conf\n";
        s += &p.local_conf();
    }
    s
}
