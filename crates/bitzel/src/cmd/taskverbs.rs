//! BitBake's task verbs that are not tasks here: `bitzel build -c listtasks`,
//! `-c clean` and `-c cleansstate` (with or without `do_`). bitzel runs them
//! itself, for any recipe, rather than as tasks of `base.bbclass`.
//!
//! - `listtasks`: the recipe's tasks, sorted, each with its `[doc]` flag, as
//!   BitBake's `do_listtasks` prints them, plus these three verbs.
//! - `clean`: forget this project's build outputs of the recipe: the files
//!   it published to the deploy directory (by the manifest
//!   [`crate::deploy_manifest`] keeps), its logs and leftover scratch
//!   directories in the build directory. The cache is not touched: it is
//!   shared with other projects, and the next build restores the recipe's
//!   tasks from it.
//! - `cleansstate`: `clean`, then forget the recipe's entries (every task,
//!   every configuration) in the local cache, with the blobs and layers
//!   only they used ([`bitzel_cache::Cache::forget`]). A remote cache is
//!   never written: a next build restores from it what it has.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use bitzel_cache::{human_bytes, Cache};
use bitzel_config::Project;
use bitzel_graph::{
    build_graph, explain_provider, prefs_from_workspace, recipes_from_workspace, Target,
};
use bitzel_meta::Workspace;

use crate::project::shown;

/// What `-c` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// Run a task (the graph, the cache, the sandbox).
    Run,
    /// `-c listtasks`.
    ListTasks,
    /// `-c clean`.
    Clean,
    /// `-c cleansstate`.
    CleanSstate,
}

impl Verb {
    /// The verb `-c <task>` names.
    pub fn of(task: Option<&str>) -> Verb {
        match task.map(|t| t.strip_prefix("do_").unwrap_or(t)) {
            Some("listtasks") => Verb::ListTasks,
            Some("clean") => Verb::Clean,
            Some("cleansstate") => Verb::CleanSstate,
            _ => Verb::Run,
        }
    }

    /// How the user wrote it.
    pub fn name(self) -> &'static str {
        match self {
            Verb::Run => "build",
            Verb::ListTasks => "listtasks",
            Verb::Clean => "clean",
            Verb::CleanSstate => "cleansstate",
        }
    }
}

/// The verbs as `listtasks` shows them, for every recipe.
const BUILTIN_DOCS: [(&str, &str); 3] = [
    (
        "do_clean",
        "Removes this project's outputs of the recipe: deployed files, logs (bitzel built-in)",
    ),
    (
        "do_cleansstate",
        "Cleans, then forgets the recipe's entries in the local cache (bitzel built-in)",
    ),
    ("do_listtasks", "Lists the recipe's tasks (bitzel built-in)"),
];

/// The recipes (indices into `ws.recipes`) the target names resolve to, as
/// the build would choose them (`name` or `name:do_task`; the task is
/// ignored).
pub fn target_recipes(ws: &Workspace, names: &[String]) -> anyhow::Result<Vec<usize>> {
    let recipes = recipes_from_workspace(ws);
    let prefs = prefs_from_workspace(ws);
    let mut out = Vec::new();
    for n in names {
        let target = Target::parse(n, "do_build");
        let choice = explain_provider(&recipes, &prefs, &target.name);
        let Some(i) = choice.chosen else {
            // The build's own message (with skipped recipes and close matches).
            build_graph(&recipes, &prefs, std::slice::from_ref(&target))
                .map_err(|e| crate::build_flow::with_skip_reasons(e, ws))?;
            anyhow::bail!("nothing provides `{}`", target.name);
        };
        if !out.contains(&i) {
            out.push(i);
        }
    }
    Ok(out)
}

/// `-c listtasks`: BitBake's `do_listtasks` output for each recipe: every
/// task, sorted, padded to the longest name, two spaces, its `[doc]`.
pub fn listtasks(ws: &Workspace, recipes: &[usize]) -> String {
    let mut s = String::new();
    for (n, &i) in recipes.iter().enumerate() {
        let r = &ws.recipes[i];
        let mut rows: Vec<(String, String)> = r
            .data
            .tasks()
            .into_iter()
            .map(|t| {
                let doc = r.data.get_flag(&t, "doc").unwrap_or_default();
                (t, doc.trim().to_string())
            })
            .collect();
        for (t, doc) in BUILTIN_DOCS {
            if !rows.iter().any(|(name, _)| name == t) {
                rows.push((t.to_string(), doc.to_string()));
            }
        }
        rows.sort();
        let width = rows.iter().map(|(t, _)| t.len()).max().unwrap_or(0);
        if recipes.len() > 1 {
            if n > 0 {
                s.push('\n');
            }
            s += &format!("{}:\n", r.virtual_name());
        }
        for (t, doc) in rows {
            s += format!("{t:width$}  {doc}").trim_end();
            s.push('\n');
        }
    }
    s
}

/// The build-directory paths of `pn` that a clean removes besides deployed
/// files: its logs, its work directory, scratch left by killed tasks.
fn build_dir_paths(build: &Path, pn: &str) -> Vec<PathBuf> {
    let tmp = build.join("tmp");
    let mut v = vec![tmp.join("logs").join(pn), tmp.join("work").join(pn)];
    let prefix = format!("{pn}.do_");
    if let Ok(rd) = std::fs::read_dir(tmp.join("sandbox")) {
        let mut scratch: Vec<PathBuf> = rd
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .map(|e| e.path())
            .collect();
        scratch.sort();
        v.extend(scratch);
    }
    v.retain(|p| p.symlink_metadata().is_ok());
    v
}

/// Remove a file, symlink or directory tree (never following a symlink).
fn remove_path(p: &Path) -> std::io::Result<()> {
    match p.symlink_metadata() {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p),
        Ok(_) => std::fs::remove_file(p),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// `-c clean` / `-c cleansstate` of the target recipes. `remote` is the
/// remote cache the build would use (for the message only).
pub fn clean(
    project: &Project,
    ws: &Workspace,
    recipes: &[usize],
    verb: Verb,
    remote: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let build = crate::build_flow::build_dir(project)?;
    let deploy = crate::build_flow::deploy_dir(project, ws)?;
    let cache = if verb == Verb::CleanSstate {
        let dir = crate::build_flow::cache_dir(project)?;
        let cache =
            Cache::open(&dir).with_context(|| format!("opening the cache {}", dir.display()))?;
        Some((cache, dir))
    } else {
        None
    };
    for &i in recipes {
        let pn = &ws.recipes[i].pn;
        if pn.is_empty() || pn.contains('/') || pn == "." || pn == ".." {
            anyhow::bail!(
                "`{pn}` ({}) is no usable recipe name to clean: PN must not be empty or contain `/`",
                ws.recipes[i].file.display()
            );
        }
        let mut removed = crate::deploy_manifest::clean(&deploy, pn)?;
        for p in build_dir_paths(&build, pn) {
            remove_path(&p).with_context(|| format!("removing {}", p.display()))?;
            removed.push(p);
        }
        for p in &removed {
            println!("{pn}: removed {}", shown(p));
        }
        if removed.is_empty() {
            println!(
                "{pn}: nothing to clean in {} (no deployed files, logs or work directories)",
                shown(&build)
            );
        }
        let Some((cache, cache_dir)) = &cache else {
            println!(
                "{pn}: cache entries kept: the next build restores its tasks from the cache \
                 (`-c cleansstate` forgets them)"
            );
            continue;
        };
        let is_pn = |label: &str| {
            label
                .strip_prefix(pn.as_str())
                .is_some_and(|rest| rest.starts_with(":do_"))
        };
        let r = cache.forget(is_pn)?;
        if r.entries.is_empty() {
            println!(
                "{pn}: no entries of its tasks in the local cache {}",
                shown(cache_dir)
            );
        } else {
            let mut tasks: Vec<(&str, usize)> = Vec::new();
            for (label, _) in &r.entries {
                match tasks.last_mut() {
                    Some((l, n)) if *l == label.as_str() => *n += 1,
                    _ => tasks.push((label.as_str(), 1)),
                }
            }
            println!(
                "{pn}: forgot {} entries of {} tasks in the local cache {} ({} removed: {} blobs, {} layers)",
                r.entries.len(),
                tasks.len(),
                shown(cache_dir),
                human_bytes(r.total_bytes()),
                r.blobs_removed,
                r.layers_removed
            );
            for (label, n) in tasks {
                println!(
                    "  {label} ({n} {})",
                    if n == 1 { "entry" } else { "entries" }
                );
            }
        }
        match remote {
            Some(url) => println!(
                "{pn}: the next build restores its tasks from the remote cache {url} when it has \
                 them, else runs them again (the remote's entries are never removed)"
            ),
            None => println!("{pn}: the next build runs its tasks again"),
        }
    }
    Ok(ExitCode::SUCCESS)
}
