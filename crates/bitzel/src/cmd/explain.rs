//! `bitzel explain <machine.yml> <recipe>:<task>` and `bitzel build --explain`:
//! for a task whose key is not in the cache, the closest earlier entry for the
//! same task and every input that differs — the answer BitBake users dig out
//! of `bitbake-diffsigs`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Mutex;

use bitzel_cache::{Action, Cache, Difference, Digest, LineChange};
use bitzel_exec::executor::MissRecord;

use crate::build_flow::BuildRequest;
use crate::output::Output;
use crate::project::{load_project_locked, load_workspace, ConfigArgs};

/// Arguments of `bitzel explain`.
#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// The project configuration and the flags overriding its `bitzel:` settings.
    #[command(flatten)]
    pub project: ConfigArgs,
    /// The task to explain, as `recipe:do_task` (or `recipe:task`).
    pub task: String,
}

/// Run `bitzel explain`: compute keys along the task's dependency chain
/// without running anything; for every task that would run, say why.
pub fn run(out: &Output, args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let (project, _build_dir_lock) =
        load_project_locked(out, &args.project.config, &args.project.overrides())?;
    crate::build_flow::start_host_root_digest();
    let ws = load_workspace(out, &project)?;
    if !args.task.contains(':') {
        anyhow::bail!(
            "`{}` names no task: write it as recipe:do_task (e.g. busybox:do_compile)",
            args.task
        );
    }
    let req = BuildRequest {
        targets: vec![args.task.clone()],
        explain_only: true,
        ..BuildRequest::default()
    };
    crate::build_flow::build(out, &project, &ws, &req)
}

/// Print, for every recorded miss, why it missed.
pub fn print_misses(
    _out: &Output,
    cache: &Cache,
    misses: &Mutex<Vec<MissRecord>>,
) -> anyhow::Result<()> {
    let misses = misses
        .lock()
        .map_err(|_| anyhow::anyhow!("internal error: explain records poisoned"))?;
    if misses.is_empty() {
        println!("explain: every task was restored from the cache or is up to date");
        return Ok(());
    }
    for m in misses.iter() {
        print!("{}", explain_one(cache, &m.action));
    }
    Ok(())
}

/// The explanation of one action, as text.
pub fn explain_one(cache: &Cache, action: &Action) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{} runs:", action.label);
    match cache.closest_earlier(action) {
        Ok(Some((_key, earlier))) => {
            let diffs = bitzel_cache::diff(&earlier.action, action);
            if diffs.is_empty() {
                let _ = writeln!(
                    s,
                    "  its key was in the cache but the entry was unusable (a blob was missing or corrupt); re-running repairs it"
                );
            }
            for d in diffs {
                describe(&mut s, cache, &d);
            }
        }
        Ok(None) => {
            let _ = writeln!(
                s,
                "  no earlier result for this task in the cache (first build of it here)"
            );
        }
        Err(e) => {
            let _ = writeln!(s, "  cannot read the cache's history: {e}");
        }
    }
    s
}

fn short(d: &Digest) -> String {
    d.to_string().chars().take(12).collect()
}

fn opt(v: &Option<String>) -> String {
    match v {
        Some(v) => format!("\"{v}\""),
        None => "(unset)".to_string(),
    }
}

fn describe(s: &mut String, cache: &Cache, d: &Difference) {
    match d {
        Difference::Label { old, new } => {
            let _ = writeln!(s, "  task label changed: {old} -> {new}");
        }
        Difference::Script { changes } => {
            let _ = writeln!(s, "  the task script changed:");
            for c in changes.iter().take(20) {
                match c {
                    LineChange::Removed { line, text } => {
                        let _ = writeln!(s, "    -{line}: {text}");
                    }
                    LineChange::Added { line, text } => {
                        let _ = writeln!(s, "    +{line}: {text}");
                    }
                }
            }
            if changes.len() > 20 {
                let _ = writeln!(s, "    ... {} more changed lines", changes.len() - 20);
            }
        }
        Difference::Env { name, old, new } => {
            let _ = writeln!(
                s,
                "  exported variable {name} changed: {} -> {}",
                opt(old),
                opt(new)
            );
        }
        Difference::Var { name, old, new } => {
            let _ = writeln!(s, "  variable {name} changed: {} -> {}", opt(old), opt(new));
        }
        Difference::Input { name, old, new } => {
            let what = match (old, new) {
                (Some(o), Some(n)) => format!("{} -> {}", short(o), short(n)),
                (None, Some(n)) => format!("added ({})", short(n)),
                (Some(o), None) => format!("removed (was {})", short(o)),
                (None, None) => String::new(),
            };
            let _ = writeln!(s, "  input {name} changed: {what}");
            if name == "host-root" {
                let _ = writeln!(
                    s,
                    "    (something the task can read from the host build root changed: an upgraded package, an edited header, library or /etc file)"
                );
            }
            if let (Some(o), Some(n)) = (old, new) {
                if let Some(paths) = tree_changes(cache, o, n) {
                    for p in paths.iter().take(10) {
                        let _ = writeln!(s, "    {p}");
                    }
                    if paths.len() > 10 {
                        let _ = writeln!(s, "    ... {} more paths", paths.len() - 10);
                    }
                }
            }
        }
        Difference::Policy { name, old, new } => {
            let _ = writeln!(
                s,
                "  sandbox policy {name} changed: {} -> {}",
                opt(old),
                opt(new)
            );
        }
        Difference::Tools { old, new } => {
            let _ = writeln!(
                s,
                "  the host tool set changed (a HOSTTOOLS binary differs): {} -> {}",
                short(old),
                short(new)
            );
        }
    }
}

/// For two trees in the CAS: the paths whose entries differ, `~path`
/// (changed), `+path` (added), `-path` (removed). `None` when either is not
/// a readable tree (e.g. a plain download).
fn tree_changes(cache: &Cache, old: &Digest, new: &Digest) -> Option<Vec<String>> {
    let a = cache.read_tree(old).ok()?;
    let b = cache.read_tree(new).ok()?;
    let paths: BTreeSet<&str> = a
        .entries()
        .iter()
        .chain(b.entries().iter())
        .map(|e| e.path.as_str())
        .collect();
    let mut out = Vec::new();
    for p in paths {
        match (a.get(p), b.get(p)) {
            (Some(x), Some(y)) if x != y => out.push(format!("~{p}")),
            (None, Some(_)) => out.push(format!("+{p}")),
            (Some(_), None) => out.push(format!("-{p}")),
            _ => {}
        }
    }
    Some(out)
}
