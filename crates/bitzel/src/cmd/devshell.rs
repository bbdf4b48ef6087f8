//! `bitzel devshell <machine.yml> <recipe>`: an interactive shell inside the
//! sandbox that the recipe's `do_compile` would get (like
//! `bitbake -c devshell`): the recipe's work tree as its earlier tasks left
//! it at `/bitzel/work`, the dependencies' sysroot at `/bitzel/sysroot`, the
//! task's exported environment, the host tools. Earlier tasks are built or
//! restored first; what the shell changes is thrown away.

use std::process::ExitCode;

use crate::build_flow::BuildRequest;
use crate::output::Output;
use crate::project::{load_project_locked, load_workspace, ConfigArgs};

/// Arguments of `bitzel devshell`.
#[derive(Debug, clap::Args)]
pub struct DevshellArgs {
    /// The project configuration and the flags overriding its `bitzel:` settings.
    #[command(flatten)]
    pub project: ConfigArgs,
    /// The recipe (its PN).
    pub recipe: String,
    /// The task whose sandbox the shell gets.
    #[arg(long, default_value = "do_compile")]
    pub task: String,
}

/// Run `bitzel devshell`.
pub fn run(out: &Output, args: DevshellArgs) -> anyhow::Result<ExitCode> {
    let (project, _build_dir_lock) =
        load_project_locked(out, &args.project.config, &args.project.overrides())?;
    crate::build_flow::start_host_root_digest();
    let ws = load_workspace(out, &project)?;
    let task = bitzel_graph::with_do(&args.task);
    let label = format!("{}:{task}", args.recipe);
    out.info(&format!(
        "devshell: preparing {label}'s sandbox (its dependencies are built or restored first); \
         exit the shell to leave; changes are not kept"
    ));
    let req = BuildRequest {
        targets: vec![label.clone()],
        devshell: Some(label),
        ..BuildRequest::default()
    };
    crate::build_flow::build(out, &project, &ws, &req)
}
