//! `bitzel fetch <machine.yml> [TARGET...]`: BitBake's `--runall=fetch`.
//! Every download the targets' tasks could need is brought into `DL_DIR`
//! (or verified there), whatever the cache holds, so a later build works
//! offline (`BB_NO_NETWORK`); with `BB_GENERATE_MIRROR_TARBALLS` each git
//! mirror is also packed as `DL_DIR/git2_<mirror>.tar.gz`, so the directory
//! can serve other machines as a `file://` `PREMIRRORS` directory. Nothing
//! is built and the cache is not opened.

use std::collections::BTreeMap;
use std::process::ExitCode;

use bitzel_exec::prefetch::prefetch_recipe;
use bitzel_graph::{build_graph, prefs_from_workspace, recipes_from_workspace, with_do, Target};

use crate::output::Output;
use crate::project::{load_project_locked, load_workspace, shown, ConfigArgs, ParseArgs};

/// Arguments of `bitzel fetch`.
#[derive(Debug, clap::Args)]
pub struct FetchArgs {
    /// The project configuration and the flags overriding its `bitzel:` settings.
    #[command(flatten)]
    pub project: ConfigArgs,
    /// `-j`: parse threads.
    #[command(flatten)]
    pub parse: ParseArgs,
    /// Targets whose downloads to fetch (`name` or `name:do_task`; none = the
    /// config's targets), with everything their tasks need.
    pub targets: Vec<String>,
}

/// Run `bitzel fetch`: exit 0 when every download is in `DL_DIR`, else 1
/// after naming each one that failed.
pub fn run(out: &Output, args: FetchArgs) -> anyhow::Result<ExitCode> {
    let (project, _build_dir_lock) = load_project_locked(
        out,
        &args.project.config,
        &args.project.overrides_parse(&args.parse),
    )?;
    let ws = load_workspace(out, &project)?;
    let task = with_do(project.task.as_deref().unwrap_or("build"));
    let names = super::build::requested_targets(&project, &args.targets);
    let targets: Vec<Target> = names.iter().map(|n| Target::parse(n, &task)).collect();
    let plan = build_graph(
        &recipes_from_workspace(&ws),
        &prefs_from_workspace(&ws),
        &targets,
    )
    .map_err(|e| crate::build_flow::with_skip_reasons(e, &ws))?;
    for w in &plan.warnings {
        out.warn(w);
    }
    for e in &plan.errors {
        out.error(&anyhow::anyhow!("{e}"));
    }
    // The recipes of the graph that have a fetch task in it, by PN.
    let mut fetching: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &plan.graph.tasks {
        let is_fetch = ws
            .recipes
            .get(t.recipe)
            .and_then(|r| r.data.get_flag(&t.task, "builtin"))
            .is_some_and(|b| b.trim() == "fetch");
        if is_fetch {
            fetching.insert(t.pn.as_str(), t.recipe);
        }
    }
    let dl_dir = crate::build_flow::downloads_dir(&project)?;
    let (mut done, mut present, mut bytes, mut failed) = (0u64, 0u64, 0u64, 0u64);
    for (pn, &i) in &fetching {
        let Some(recipe) = ws.recipes.get(i) else {
            continue;
        };
        match prefetch_recipe(&recipe.data, &dl_dir) {
            Ok(p) => {
                for f in &p.fetched {
                    let what = if f.downloaded {
                        done += 1;
                        if !f.is_dir {
                            bytes += std::fs::metadata(&f.local_path).map_or(0, |m| m.len());
                        }
                        "fetched"
                    } else {
                        present += 1;
                        "present"
                    };
                    out.info(&format!("{pn}: {} ({what})", f.local_name));
                }
                for t in &p.tarballs {
                    out.info(&format!("{pn}: mirror tarball {}", shown(t)));
                }
            }
            Err(e) => {
                failed += 1;
                out.error(&anyhow::Error::new(e).context(format!("{pn}: do_fetch")));
            }
        }
    }
    out.info(&format!(
        "{} recipes: {done} downloads fetched ({bytes} bytes), {present} already present, {failed} recipes failed; DL_DIR {}",
        fetching.len(),
        shown(&dl_dir)
    ));
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
