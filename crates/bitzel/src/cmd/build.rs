//! `bitzel build <machine.yml>`.
//!
//! Today: load the project (includes, repos, layers, `bitzel:` settings and
//! flags), generate the effective `bblayers.conf`/`local.conf`, and print
//! the plan. Running the tasks is wired in once the metadata engine,
//! graph and executor are joined up.

use std::process::ExitCode;

use bitzel_config::{Project, RepoSource};

use crate::output::Output;
use crate::project::{load_project, shown, ConfigArgs};

/// Arguments of `bitzel build`.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// The project configuration and the flags overriding its `bitzel:` settings.
    #[command(flatten)]
    pub project: ConfigArgs,
}

/// Run `bitzel build`.
pub fn run(out: &Output, args: BuildArgs) -> anyhow::Result<ExitCode> {
    let project = load_project(out, &args.project.config, &args.project.overrides())?;
    print!("{}", plan(&project, out.verbose > 0));
    out.info("the metadata engine is not wired into `bitzel build` yet: nothing was built");
    Ok(ExitCode::SUCCESS)
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
