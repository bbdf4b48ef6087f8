//! `bitzel devshell <machine.yml> <recipe>`: an interactive shell inside the
//! sandbox that the recipe's `do_compile` would get (like
//! `bitbake -c devshell`): the recipe's work tree as its earlier tasks left
//! it at `/bitzel/work`, the dependencies' sysroot at `/bitzel/sysroot`, the
//! task's exported environment, the host tools. Earlier tasks are built or
//! restored first; what the shell changes is thrown away.
//!
//! The exit code is the shell's (`exit 3` → 3). A task that runs nothing
//! (`[noexec]`, like an image's `do_compile`) or runs on the host (the fetch
//! built-in) has no sandbox: that is an error naming the tasks of the recipe
//! that have one. The shell starts where the task would (its last `[dirs]`,
//! else `B`) if that directory exists yet, else in its nearest existing
//! parent below `WORKDIR` (saying so). The recipe's kept run scripts and
//! logs (`<build>/tmp/work/<pn>/temp`) are at `/bitzel/temp`, read-only:
//! `sh /bitzel/temp/run.do_compile` runs the task's script again by hand.

use std::process::ExitCode;

use anyhow::bail;
use bitzel_meta::Workspace;

use crate::build_flow::BuildRequest;
use crate::output::Output;
use crate::project::{load_project_locked, load_workspace, ConfigArgs, RunArgs};

/// Arguments of `bitzel devshell`.
#[derive(Debug, clap::Args)]
pub struct DevshellArgs {
    /// The project configuration and the flags overriding its `bitzel:` settings.
    #[command(flatten)]
    pub project: ConfigArgs,
    /// Jobs, sandbox and build root for the tasks it runs.
    #[command(flatten)]
    pub run: RunArgs,
    /// The recipe (its PN).
    pub recipe: String,
    /// The task whose sandbox the shell gets.
    #[arg(long, default_value = "do_compile")]
    pub task: String,
}

/// Run `bitzel devshell`.
pub fn run(out: &Output, args: DevshellArgs) -> anyhow::Result<ExitCode> {
    let (project, _build_dir_lock) = load_project_locked(
        out,
        &args.project.config,
        &args.project.overrides_run(&args.run),
    )?;
    crate::build_flow::start_host_root_digest(&project);
    let ws = load_workspace(out, &project)?;
    let task = bitzel_graph::with_do(&args.task);
    let label = format!("{}:{task}", args.recipe);
    check_task(&ws, &args.recipe, &task)?;
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

/// Refuse a task that has no sandbox: absent, `[noexec]`, or the fetch
/// built-in (which runs on the host). A recipe not found by its PN is left
/// to the build (which resolves providers and says what is missing).
fn check_task(ws: &Workspace, pn: &str, task: &str) -> anyhow::Result<()> {
    let Some(recipe) = ws
        .recipes
        .iter()
        .find(|r| r.data.get_var("PN").as_deref() == Some(pn))
    else {
        return Ok(());
    };
    let info = bitzel_graph::RecipeInfo::from_recipe(recipe, &ws.layers);
    let has_sandbox = |t: &bitzel_graph::TaskInfo| {
        !t.noexec && recipe.data.get_flag(&t.name, "builtin").as_deref() != Some("fetch")
    };
    let runnable: Vec<&str> = info
        .tasks
        .iter()
        .filter(|t| has_sandbox(t))
        .map(|t| t.name.as_str())
        .collect();
    let choose = format!(
        "choose one with --task: {}",
        if runnable.is_empty() {
            "none of its tasks runs in a sandbox".to_string()
        } else {
            runnable.join(", ")
        }
    );
    match info.tasks.iter().find(|t| t.name == task) {
        None => bail!("{pn} has no task {task}; {choose}"),
        Some(t) if t.noexec => {
            bail!("{pn}:{task} is noexec: it runs nothing, so it has no sandbox to open a shell in; {choose}")
        }
        Some(t) if !has_sandbox(t) => {
            bail!("{pn}:{task} runs on the host (bitzel's fetch built-in), not in a sandbox; {choose}")
        }
        Some(_) => Ok(()),
    }
}
