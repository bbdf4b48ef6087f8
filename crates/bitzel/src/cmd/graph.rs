//! `bitzel graph <machine.yml> [target...]`: the task graph as Graphviz (the
//! shape of BitBake's `task-depends.dot`) or JSON, the execution order
//! (`--dry-run`), or how a provider is chosen (`--explain-provider NAME`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use bitzel_graph::{
    build_graph, explain_provider, prefs_from_workspace, recipes_from_workspace, run, to_dot,
    to_json, with_do, Executor, ProviderChoice, RecipeInfo, RunOptions, Target, TaskNode,
};
use bitzel_meta::Workspace;

use crate::output::Output;
use crate::progress::Progress;
use crate::project::{load_project, ConfigArgs, ParseArgs};

/// Output formats of `bitzel graph`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    /// Graphviz, node for node and edge for edge as BitBake's `task-depends.dot`.
    Dot,
    /// JSON: nodes, edges and provider choices.
    Json,
}

/// Arguments of `bitzel graph`.
#[derive(Debug, clap::Args)]
pub struct GraphArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// `-j`: parse threads (and the slots of `--dry-run`).
    #[command(flatten)]
    pub parse: ParseArgs,
    /// Targets (`name` or `name:do_task`); default: the configuration's `target`.
    pub targets: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
    pub format: GraphFormat,
    /// Explain how the provider of NAME is chosen instead of printing the graph.
    #[arg(long, value_name = "NAME")]
    pub explain_provider: Option<String>,
    /// List the tasks in execution order (what a build would start, one slot).
    #[arg(long)]
    pub dry_run: bool,
    /// With `--dry-run`: one JSON object per line.
    #[arg(long, requires = "dry_run")]
    pub json: bool,
    /// Write the graph to FILE instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Load the project and parse its metadata.
fn workspace(
    out: &Output,
    args: &GraphArgs,
) -> anyhow::Result<(Workspace, bitzel_config::Project)> {
    let project = load_project(
        out,
        &args.config.config,
        &args.config.overrides_parse(&args.parse),
    )?;
    let ws = crate::project::load_workspace(out, &project)?;
    Ok((ws, project))
}

/// Run `bitzel graph`.
pub fn run_graph(out: &Output, args: GraphArgs) -> anyhow::Result<ExitCode> {
    let (ws, project) = workspace(out, &args)?;
    let recipes = recipes_from_workspace(&ws);
    let prefs = prefs_from_workspace(&ws);

    if let Some(name) = &args.explain_provider {
        let choice = explain_provider(&recipes, &prefs, name);
        let text = match args.format {
            GraphFormat::Json => {
                let mut v = serde_json::to_value(&choice)?;
                v["chosen_pn"] = serde_json::json!(choice.chosen.map(|i| recipes[i].pn.clone()));
                serde_json::to_string_pretty(&v)? + "\n"
            }
            GraphFormat::Dot => explain_text(&choice, &recipes),
        };
        emit(&args, &text)?;
        return Ok(if choice.chosen.is_some() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }

    let default_task = with_do(project.task.as_deref().unwrap_or("build"));
    let names: Vec<String> = if args.targets.is_empty() {
        project.targets.clone()
    } else {
        args.targets.clone()
    };
    let targets: Vec<Target> = names
        .iter()
        .map(|n| Target::parse(n, &default_task))
        .collect();
    let plan = build_graph(&recipes, &prefs, &targets)?;
    for w in &plan.warnings {
        tracing::info!("{w}");
    }
    for e in &plan.errors {
        tracing::error!("{e}");
    }

    if args.dry_run {
        struct Never;
        impl Executor for Never {
            type Output = ();
            fn execute(
                &self,
                task: &TaskNode,
                _deps: &[(&TaskNode, &())],
                _cancel: &bitzel_graph::CancelToken,
            ) -> Result<bitzel_graph::TaskResult<()>, bitzel_graph::TaskFailure> {
                Err(bitzel_graph::TaskFailure::new(
                    bitzel_graph::FailureKind::Internal,
                    format!("dry run must not execute {}", task.label()),
                ))
            }
        }
        let progress = Progress::new(out, args.json);
        let opts = RunOptions {
            jobs: project
                .bitzel
                .jobs
                .unwrap_or_else(bitzel_graph::default_jobs),
            dry_run: true,
            ..RunOptions::default()
        };
        run(&plan.graph, &Never, &opts, &|e| progress.event(e));
        return Ok(ExitCode::SUCCESS);
    }

    let text = match args.format {
        GraphFormat::Dot => to_dot(&plan.graph),
        GraphFormat::Json => serde_json::to_string_pretty(&to_json(&plan, &recipes))? + "\n",
    };
    emit(&args, &text)?;
    if !out.quiet {
        if let Some(path) = &args.output {
            eprintln!(
                "{} tasks, {} edges written to {}",
                plan.graph.len(),
                plan.graph.edge_count(),
                path.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn emit(args: &GraphArgs, text: &str) -> anyhow::Result<()> {
    match &args.output {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
        }
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

fn explain_text(c: &ProviderChoice, recipes: &[RecipeInfo]) -> String {
    use std::fmt::Write as _;
    let ns = match c.namespace {
        bitzel_graph::Namespace::Build => "build-time name",
        bitzel_graph::Namespace::Runtime => "runtime name",
    };
    let mut s = String::new();
    let _ = writeln!(s, "{} ({ns})", c.name);
    if c.candidates.is_empty() {
        let _ = writeln!(s, "  nothing provides it");
        return s;
    }
    let _ = writeln!(s, "  candidates:");
    for &i in &c.candidates {
        let r = &recipes[i];
        let _ = writeln!(
            s,
            "    {} {} (layer {} priority {}, DEFAULT_PREFERENCE {}) {}",
            r.pn,
            r.pepvpr(),
            r.layer,
            r.layer_priority,
            r.default_preference,
            r.bitbake_fn()
        );
    }
    let eligible: Vec<String> = c
        .eligible
        .iter()
        .map(|&i| format!("{} {}", recipes[i].pn, recipes[i].pv))
        .collect();
    let _ = writeln!(s, "  eligible, best first: {}", eligible.join(", "));
    match c.chosen {
        Some(i) => {
            let _ = writeln!(
                s,
                "  chosen: {} {} ({})",
                recipes[i].pn,
                recipes[i].pv,
                recipes[i].bitbake_fn()
            );
        }
        None => {
            let _ = writeln!(s, "  chosen: none");
        }
    }
    if !c.reasons.is_empty() {
        let _ = writeln!(s, "  because:");
        for r in &c.reasons {
            let _ = writeln!(s, "    - {r}");
        }
    }
    if c.eligible.len() > 1 && !c.unique {
        let _ = writeln!(
            s,
            "  note: several providers and no preference: set PREFERRED_PROVIDER_{} to choose",
            c.name
        );
    }
    s
}
