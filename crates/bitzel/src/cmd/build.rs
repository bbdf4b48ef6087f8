//! `bitzel build <machine.yml> [TARGET...]`: load the project (includes,
//! repos, layers, `bitzel:` settings and flags), parse the metadata, build the
//! task graph and run it through the cache and the sandbox
//! (see [`crate::build_flow`]). `--plan` only prints the resolved project.

use std::process::ExitCode;

use bitzel_config::{Project, RepoSource, SandboxChoice};

use super::taskverbs::{self, Verb};

use crate::build_flow::BuildRequest;
use crate::output::Output;
use crate::project::{load_project_locked, shown, ConfigArgs, RunArgs};

/// Arguments of `bitzel build`.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// The project configuration and the flags overriding its `bitzel:` settings.
    #[command(flatten)]
    pub project: ConfigArgs,
    /// Jobs, sandbox and build root for the tasks it runs.
    #[command(flatten)]
    pub run: RunArgs,
    /// Targets to build instead of the config's `target` (`name` or `name:do_task`).
    pub targets: Vec<String>,
    /// The task to run on the targets (and what it needs) instead of the
    /// config's `task` (default `build`), as `bitbake -c`. Also `listtasks`
    /// (the targets' tasks), `clean` (this project's outputs of the targets:
    /// deployed files, logs; the cache is kept) and `cleansstate` (clean,
    /// then forget the targets' entries in the local cache; never a remote's).
    #[arg(short = 'c', long = "cmd", value_name = "TASK")]
    pub task: Option<String>,
    /// Run the target tasks even when the cache has their result, and
    /// replace the local cache entry (a remote cache keeps its entry).
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Only print the resolved project (config files, settings, repos, layers) and exit.
    #[arg(long)]
    pub plan: bool,
    /// List the tasks in execution order without running anything.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Keep running tasks that do not depend on a failed one.
    #[arg(short = 'k', long)]
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
    /// Run cache misses on a REAPI engine (`grpc://host:port`, `grpcs://…`)
    /// whose bots are `bitzel worker`s; the engine is also the remote cache
    /// unless --remote-cache names another (overrides `bitzel: remote_executor: url`).
    #[arg(long, value_name = "URL")]
    pub remote_executor: Option<String>,
    /// The engine's REAPI instance name.
    #[arg(long, value_name = "NAME", requires = "remote_executor")]
    pub remote_instance: Option<String>,
    /// What to do when the engine cannot run a task: fail (`none`, the
    /// default) or run it here (`local`).
    #[arg(long, value_enum, value_name = "WHAT")]
    pub remote_executor_fallback: Option<Fallback>,
    /// Write the build summary (executed, cached, failed, local/remote hits,
    /// uploads, bytes moved, wall time) as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub summary_json: Option<std::path::PathBuf>,
    /// Write an HTML timing report of this build (timeline per worker slot,
    /// critical path, slowest tasks, why tasks ran) under
    /// `<build>/tmp/buildstats/` and print where.
    #[arg(long)]
    pub timings: bool,
    /// Write this build as Chrome trace events to FILE (Perfetto, chrome://tracing).
    #[arg(long, value_name = "FILE")]
    pub trace: Option<std::path::PathBuf>,
}

/// Run `bitzel build`.
pub fn run(out: &Output, args: BuildArgs) -> anyhow::Result<ExitCode> {
    let verb = Verb::of(args.task.as_deref());
    if verb != Verb::Run {
        let extra = [
            (args.force, "-f"),
            (args.dry_run, "-n"),
            (args.json, "--json"),
            (args.explain, "--explain"),
            (args.timings, "--timings"),
            (args.trace.is_some(), "--trace"),
        ];
        if let Some((_, flag)) = extra.iter().find(|(set, _)| *set) {
            anyhow::bail!(
                "`-c {}` runs no task, so {flag} means nothing with it",
                verb.name()
            );
        }
    }
    let (project, _build_dir_lock) = load_project_locked(
        out,
        &args.project.config,
        &args.project.overrides_run(&args.run),
    )?;
    let targets = requested_targets(&project, &args.targets);
    let task = args.task.as_deref().or(project.task.as_deref());
    if args.plan {
        print!("{}", plan(&project, &targets, task, out.verbose > 0));
        return Ok(ExitCode::SUCCESS);
    }
    if out.verbose > 0 && !args.json {
        eprint!("{}", plan(&project, &targets, task, out.verbose > 1));
    }
    if verb != Verb::Run {
        let ws = crate::project::load_workspace(out, &project)?;
        let recipes = taskverbs::target_recipes(&ws, &targets)?;
        if verb == Verb::ListTasks {
            print!("{}", taskverbs::listtasks(&ws, &recipes));
            return Ok(ExitCode::SUCCESS);
        }
        let remote = (project.bitzel.sandbox != Some(SandboxChoice::None))
            .then(|| {
                args.remote_cache
                    .clone()
                    .or_else(|| project.bitzel.remote_cache.as_ref()?.url.clone())
            })
            .flatten()
            .map(|u| bitzel_cache::remote::config::redact_url(&u));
        return taskverbs::clean(&project, &ws, &recipes, verb, remote.as_deref());
    }
    crate::build_flow::start_host_root_digest(&project);
    let ws = crate::project::load_workspace(out, &project)?;
    let req = BuildRequest {
        targets: args.targets,
        task: args.task,
        force: args.force,
        keep_going: args.keep_going,
        dry_run: args.dry_run,
        json: args.json,
        explain: args.explain,
        timeout_secs: args.timeout,
        explain_only: false,
        remote_cache: args.remote_cache,
        remote_read_only: args.remote_cache_read_only,
        remote_exec: Some(crate::build_flow::RemoteExecRequest {
            url: args.remote_executor,
            instance: args.remote_instance,
            fallback_local: args.remote_executor_fallback.map(|f| f == Fallback::Local),
        }),
        summary_json: args.summary_json,
        devshell: None,
        timings: args.timings,
        trace: args.trace,
    };
    crate::build_flow::build(out, &project, &ws, &req)
}

/// The targets a build builds: the command line's, else the config's `target`.
pub fn requested_targets(project: &Project, targets: &[String]) -> Vec<String> {
    if targets.is_empty() {
        project.targets.clone()
    } else {
        targets.to_vec()
    }
}

/// What would be built, as text: machine, distro, the targets and task
/// that will be built (the command line's, else the config's), settings,
/// repos and layers; with `verbose`, the generated bblayers.conf/local.conf.
pub fn plan(p: &Project, targets: &[String], task: Option<&str>, verbose: bool) -> String {
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
        if targets.is_empty() {
            unset()
        } else {
            targets.join(" ")
        }
    );
    s += &format!("task:       {}\n", task.unwrap_or("build (default)"));
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

/// `--remote-executor-fallback`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fallback {
    /// Fail the task.
    None,
    /// Run the task locally.
    Local,
}
