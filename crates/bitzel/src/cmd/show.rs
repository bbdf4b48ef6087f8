//! `bitzel show`: final variable values in `bitbake -e` format.

use std::process::ExitCode;

use anyhow::bail;
use bitzel_meta::{emit_env, EmitOptions, Recipe, Workspace};

use crate::output::Output;
use crate::project::{load_project, ConfigArgs, ParseArgs};

/// Arguments of `bitzel show`.
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// `-j`: parse threads.
    #[command(flatten)]
    pub parse: ParseArgs,
    /// The recipe (PN, e.g. `busybox` or `busybox-native`, or a `.bb` path)
    /// whose datastore to show; without it (or with `-`), the global
    /// configuration.
    pub recipe: Option<String>,
    /// Only these variables (default: all, like `bitbake -e`).
    pub vars: Vec<String>,
    /// Show every operation that shaped each value (the `# $VAR [N
    /// operations]` blocks of `bitbake -e`).
    #[arg(long)]
    pub history: bool,
    /// List the recipes: PN, PV, layer collection and file.
    #[arg(long, conflicts_with_all = ["recipe", "vars", "history"])]
    pub recipes: bool,
}

/// The recipe `bitbake -e <name>` would show: the provider a build would
/// choose for `name` (PN, PROVIDES, `virtual/*`; PREFERRED_PROVIDER,
/// PREFERRED_VERSION, DEFAULT_PREFERENCE, layer priority — the graph's own
/// resolver), or the recipe whose file is `name`.
fn pick<'a>(ws: &'a Workspace, name: &str) -> anyhow::Result<&'a Recipe> {
    let recipes = bitzel_graph::recipes_from_workspace(ws);
    let prefs = bitzel_graph::prefs_from_workspace(ws);
    if let Some(i) = bitzel_graph::explain_provider(&recipes, &prefs, name).chosen {
        if let Some(r) = ws.recipes.get(i) {
            return Ok(r);
        }
    }
    let by_file = ws
        .recipes
        .iter()
        .find(|r| r.variant.is_none() && r.file.to_string_lossy() == name);
    if let Some(r) = by_file {
        return Ok(r);
    }
    // BitBake: "Nothing PROVIDES 'x' (but <file> was skipped: <reason>)".
    let skipped = crate::project::skip_reasons(ws, name, "PROVIDES");
    if !skipped.is_empty() {
        bail!("Nothing PROVIDES '{name}' ({})", skipped.join("; "));
    }
    // BitBake: "Nothing PROVIDES 'x'. Close matches: ..." (difflib).
    let close = bitzel_graph::provider_close_matches(&recipes, &prefs, name);
    bail!(
        "Nothing PROVIDES '{name}'; `bitzel show <config> --recipes` lists the recipes{}",
        bitzel_graph::provider_close_suffix(&close)
    );
}

/// Run `bitzel show`.
pub fn run(out: &Output, args: ShowArgs) -> anyhow::Result<ExitCode> {
    // A directory is a BitBake build directory, read without a kas file.
    let ws = if args.config.config.is_dir() {
        crate::project::load_build_directory(out, &args.config, &args.parse)?
    } else {
        let project = load_project(
            out,
            &args.config.config,
            &args.config.overrides_parse(&args.parse),
        )?;
        crate::project::load_workspace(out, &project)?
    };
    if args.recipes {
        let mut rows: Vec<(&str, &str, &str, String)> = ws
            .recipes
            .iter()
            .map(|r| {
                (
                    r.pn.as_str(),
                    r.pv.as_str(),
                    r.layer.as_str(),
                    r.virtual_name(),
                )
            })
            .collect();
        rows.sort();
        let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(2).max(2);
        let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(2).max(2);
        let w2 = rows.iter().map(|r| r.2.len()).max().unwrap_or(5).max(5);
        println!("{:w0$} {:w1$} {:w2$} FILE", "PN", "PV", "LAYER");
        for (pn, pv, layer, file) in rows {
            println!("{pn:w0$} {pv:w1$} {layer:w2$} {file}");
        }
        // Recipes an anonymous function or handler skipped, with the
        // reason, as `bitbake-layers show-recipes` marks them.
        let mut skipped: Vec<(String, String)> = ws
            .skipped
            .iter()
            .map(|r| (r.virtual_name(), r.skipped().unwrap_or_default()))
            .collect();
        skipped.sort();
        if !skipped.is_empty() {
            println!("\nSKIPPED ({})", skipped.len());
            for (file, reason) in skipped {
                println!("{file}: {reason}");
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let data = match args.recipe.as_deref() {
        None | Some("-") | Some("") => &ws.config,
        Some(name) => &pick(&ws, name)?.data,
    };
    let opts = EmitOptions {
        history: args.history,
        vars: if args.vars.is_empty() {
            None
        } else {
            Some(args.vars.clone())
        },
    };
    print!("{}", emit_env(data, &opts));
    Ok(ExitCode::SUCCESS)
}
