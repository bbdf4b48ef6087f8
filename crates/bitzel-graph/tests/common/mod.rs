//! Test helpers shared by the graph test files.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use bitzel_graph::{BuildPlan, GraphError, RecipeInfo};

/// A plan (or its error) as sorted `pn:do_task [flags] <- deps` lines, then
/// the provider choices and the warnings: the snapshot form of every test.
pub fn render_plan(result: Result<BuildPlan, GraphError>, recipes: &[RecipeInfo]) -> String {
    match result {
        Err(e) => format!("error: {e}"),
        Ok(plan) => {
            let g = &plan.graph;
            let mut lines: Vec<String> = g
                .tasks
                .iter()
                .map(|n| {
                    let mut deps: Vec<String> =
                        g.deps(n.id).iter().map(|&d| g.tasks[d].label()).collect();
                    deps.sort();
                    let mut flags = String::new();
                    if n.noexec {
                        flags.push_str(" [noexec]");
                    }
                    if n.nostamp {
                        flags.push_str(" [nostamp]");
                    }
                    if !n.dirs.is_empty() {
                        flags.push_str(&format!(" [dirs={}]", n.dirs.join(",")));
                    }
                    if !n.cleandirs.is_empty() {
                        flags.push_str(&format!(" [cleandirs={}]", n.cleandirs.join(",")));
                    }
                    if deps.is_empty() {
                        format!("{}{flags}", n.label())
                    } else {
                        format!("{}{flags} <- {}", n.label(), deps.join(" "))
                    }
                })
                .collect();
            lines.sort();
            for c in &plan.providers {
                let chosen = c.chosen.map_or("-".to_string(), |i| {
                    format!("{} {}", recipes[i].pn, recipes[i].pv)
                });
                lines.push(format!("provider {:?} {} = {chosen}", c.namespace, c.name));
            }
            for w in &plan.warnings {
                lines.push(format!("warning: {w}"));
            }
            lines.join("\n")
        }
    }
}
