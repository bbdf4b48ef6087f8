//! `bitzel explain <machine.yml> [TARGET...]` and `bitzel build --explain`.
//!
//! `explain` computes every key of the targets' graph and looks it up, running
//! nothing and downloading nothing, and prints each task that would run, in
//! graph order, with why: the inputs that differ from the closest earlier
//! entry for the same task (the answer BitBake users dig out of
//! `bitbake-diffsigs`), "never built here before", or — for a task whose key
//! depends on the output of a task that would run — that it runs again only
//! if that task changes its output (early cutoff: not known before it runs).
//! Nothing else goes to stdout; `--json` prints the same as a JSON list.
//! Exit code 0 whether or not something would run; 1 when a key cannot be
//! computed (the error is on stderr).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Mutex;

use bitzel_cache::{Action, Cache, Difference, Digest, LineChange};
use bitzel_exec::executor::{MissRecord, WouldRun, WouldRunLog};
use bitzel_graph::{RunSummary, TaskGraph};
use serde_json::{json, Value};

use crate::build_flow::BuildRequest;
use crate::output::Output;
use crate::project::{load_project_locked, load_workspace, ConfigArgs, RunArgs};

/// Arguments of `bitzel explain`.
#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// The project configuration and the flags overriding its `bitzel:` settings.
    #[command(flatten)]
    pub project: ConfigArgs,
    /// Jobs, sandbox and build root for the tasks it runs.
    #[command(flatten)]
    pub run: RunArgs,
    /// What to explain: `recipe` (its default task, do_build, and everything it
    /// needs) or `recipe:do_task`; none = the configured targets.
    pub targets: Vec<String>,
    /// Print a JSON list (one object per task that would run) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Run `bitzel explain`: compute the keys of the targets' whole graph without
/// running anything; for every task that would run, say why.
pub fn run(out: &Output, args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let (project, _build_dir_lock) = load_project_locked(
        out,
        &args.project.config,
        &args.project.overrides_run(&args.run),
    )?;
    crate::build_flow::start_host_root_digest(&project);
    let ws = load_workspace(out, &project)?;
    let req = BuildRequest {
        targets: args.targets,
        json: args.json,
        explain_only: true,
        ..BuildRequest::default()
    };
    crate::build_flow::build(out, &project, &ws, &req)
}

/// Why one task would run, as the closest earlier entry tells.
enum Why {
    /// No earlier entry for the task.
    New,
    /// What differs from the closest earlier entry (empty: same key, but the
    /// entry was unusable).
    Changed(Vec<Difference>),
    /// The history could not be read.
    Unknown(String),
}

fn why(cache: &Cache, action: &Action) -> Why {
    match cache.closest_earlier(action) {
        Ok(Some((_key, earlier))) => Why::Changed(bitzel_cache::diff(&earlier.action, action)),
        Ok(None) => Why::New,
        Err(e) => Why::Unknown(e.to_string()),
    }
}

/// Print the report of an explain-only run (`bitzel explain`): stdout holds
/// only the tasks that would run (text or `--json`); errors go to stderr.
pub fn report(
    out: &Output,
    cache: &Cache,
    graph: &TaskGraph,
    log: &WouldRunLog,
    summary: &RunSummary,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let mut records = log.records();
    let position: std::collections::HashMap<_, _> = graph
        .topo_order()
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, i))
        .collect();
    records.sort_by_key(|r| position.get(&r.id).copied().unwrap_or(usize::MAX));
    let verdicts: Vec<(&str, Verdict<'_>)> = records
        .iter()
        .map(|r| (r.label.as_str(), verdict(cache, &r.label, &r.why)))
        .collect();
    if as_json {
        let list: Vec<Value> = verdicts
            .iter()
            .map(|(label, v)| record_json(label, v))
            .collect();
        println!("{}", serde_json::to_string_pretty(&Value::Array(list))?);
    } else if verdicts.is_empty() && summary.failures.is_empty() {
        println!("nothing would run: every task's result is in the cache");
    } else {
        for (label, v) in &verdicts {
            print!("{}", record_text(cache, label, v));
        }
    }
    for (id, f) in &summary.failures {
        out.error(&anyhow::anyhow!(
            "cannot tell whether {} would run: {}",
            graph.tasks[*id].label(),
            f.message
        ));
    }
    if !summary.failures.is_empty() && summary.not_run > 0 {
        let which = if summary.failures.len() == 1 {
            "it"
        } else {
            "them"
        };
        out.info(&format!(
            "{} task(s) depending on {which} not examined",
            summary.not_run
        ));
    }
    if summary.cancelled {
        return Ok(ExitCode::from(130));
    }
    Ok(if summary.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// What `explain` says about one task that would run.
enum Verdict<'a> {
    /// Its key is known (assuming these tasks give their previous outputs):
    /// why it misses.
    Keyed(Why, &'a [String]),
    /// Its key waits on these tasks' outputs; `built` says whether the cache
    /// has any earlier result of the task at all.
    After { deps: &'a [String], built: bool },
    /// `do_fetch` would download.
    Fetch(&'a str),
}

fn verdict<'a>(cache: &Cache, label: &str, w: &'a WouldRun) -> Verdict<'a> {
    match w {
        WouldRun::Changed { action, assuming } => Verdict::Keyed(why(cache, action), assuming),
        WouldRun::After(deps) => Verdict::After {
            deps,
            built: cache.history(label).map_or(true, |h| !h.is_empty()),
        },
        WouldRun::Fetch(message) => Verdict::Fetch(message),
    }
}

fn record_text(cache: &Cache, label: &str, v: &Verdict<'_>) -> String {
    let mut s = String::new();
    match v {
        Verdict::Keyed(w, assuming) => {
            let _ = writeln!(s, "{label} would run:");
            if !assuming.is_empty() && !matches!(w, Why::New) {
                let gives = if assuming.len() == 1 {
                    "gives its previous output"
                } else {
                    "give their previous outputs"
                };
                let _ = writeln!(s, "  (even if {} {gives})", assuming.join(" and "));
            }
            why_text(&mut s, cache, w);
        }
        Verdict::After { deps, built: true } => {
            let _ = writeln!(
                s,
                "{label} would run if {} changes its output",
                deps.join(" or ")
            );
        }
        Verdict::After { built: false, .. } => {
            let _ = writeln!(s, "{label} would run:");
            why_text(&mut s, cache, &Why::New);
        }
        Verdict::Fetch(message) => {
            let _ = writeln!(s, "{label} would run:");
            let _ = writeln!(s, "  {message}");
        }
    }
    s
}

fn why_text(s: &mut String, cache: &Cache, w: &Why) {
    match w {
        Why::New => {
            let _ = writeln!(
                s,
                "  never built here before: no earlier result for this task in the cache"
            );
        }
        Why::Changed(diffs) if diffs.is_empty() => {
            let _ = writeln!(
                s,
                "  its key was in the cache but the entry was unusable (a blob was missing or corrupt); re-running repairs it"
            );
        }
        Why::Changed(diffs) => {
            for d in diffs {
                describe(s, cache, d);
            }
        }
        Why::Unknown(e) => {
            let _ = writeln!(s, "  cannot read the cache's history: {e}");
        }
    }
}

fn hex(d: &Option<Digest>) -> Value {
    d.map_or(Value::Null, |d| Value::String(d.to_string()))
}

fn difference_json(d: &Difference) -> Value {
    match d {
        Difference::Label { old, new } => json!({"kind": "label", "old": old, "new": new}),
        Difference::Script { changes } => {
            let lines: Vec<String> = changes
                .iter()
                .map(|c| match c {
                    LineChange::Removed { line, text } => format!("-{line}: {text}"),
                    LineChange::Added { line, text } => format!("+{line}: {text}"),
                })
                .collect();
            json!({"kind": "script", "lines": lines})
        }
        Difference::Env { name, old, new } => {
            json!({"kind": "env", "name": name, "old": old, "new": new})
        }
        Difference::Var { name, old, new } => {
            json!({"kind": "var", "name": name, "old": old, "new": new})
        }
        Difference::Input { name, old, new } => {
            json!({"kind": "input", "name": name, "old": hex(old), "new": hex(new)})
        }
        Difference::Policy { name, old, new } => {
            json!({"kind": "policy", "name": name, "old": old, "new": new})
        }
        Difference::Tools { old, new } => {
            json!({"kind": "tools", "old": old.to_string(), "new": new.to_string()})
        }
    }
}

/// One task of `bitzel explain --json`: `task`, `reason` (`changed`, `new`,
/// `unusable`, `unknown`, `after`, `fetch`) and, by reason, `changes` and
/// `assuming` (the tasks assumed to give their previous outputs), `after`
/// (also with `new` when the key waits on them) or `message`.
fn record_json(label: &str, v: &Verdict<'_>) -> Value {
    match v {
        Verdict::Keyed(Why::New, _) => json!({"task": label, "reason": "new"}),
        Verdict::Keyed(Why::Changed(diffs), assuming) if diffs.is_empty() => {
            json!({"task": label, "reason": "unusable", "assuming": assuming})
        }
        Verdict::Keyed(Why::Changed(diffs), assuming) => {
            let changes: Vec<Value> = diffs.iter().map(difference_json).collect();
            json!({"task": label, "reason": "changed", "changes": changes, "assuming": assuming})
        }
        Verdict::Keyed(Why::Unknown(e), _) => {
            json!({"task": label, "reason": "unknown", "message": e})
        }
        Verdict::After { deps, built } => {
            let reason = if *built { "after" } else { "new" };
            json!({"task": label, "reason": reason, "after": deps})
        }
        Verdict::Fetch(message) => json!({"task": label, "reason": "fetch", "message": message}),
    }
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

/// The explanation of one action that ran (`bitzel build --explain`), as text.
pub fn explain_one(cache: &Cache, action: &Action) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{} runs:", action.label);
    why_text(&mut s, cache, &why(cache, action));
    s
}

/// Why each action that ran did: its first difference from the closest
/// earlier cache entry (or that there was none), a few lines of text (the
/// build record's `why`), in order. The index is opened once for all.
pub fn first_differences(cache: &Cache, actions: &[&Action]) -> Vec<String> {
    let closest: Vec<Why> = match cache.closest_earlier_all(actions) {
        Ok(all) => actions
            .iter()
            .zip(all)
            .map(|(a, c)| match c {
                Some((_key, earlier)) => Why::Changed(bitzel_cache::diff(&earlier.action, a)),
                None => Why::New,
            })
            .collect(),
        Err(e) => actions
            .iter()
            .map(|_| Why::Unknown(e.to_string()))
            .collect(),
    };
    closest
        .into_iter()
        .map(|w| {
            let mut s = String::new();
            match w {
                Why::Changed(diffs) if !diffs.is_empty() => describe(&mut s, cache, &diffs[0]),
                w => why_text(&mut s, cache, &w),
            }
            s.lines()
                .take(6)
                .map(str::trim)
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect()
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
