//! Output formats of `bitzel graph`: Graphviz in the exact shape of BitBake's
//! `task-depends.dot`, and JSON (nodes, edges, provider choices).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::build::BuildPlan;
use crate::graph::TaskGraph;
use crate::input::RecipeInfo;

/// The graph as BitBake's `bitbake -g` writes `task-depends.dot`: nodes
/// `"pn.do_task"` labelled `pn do_task\n<PE>:<PV>-<PR>\n<file>`, sorted by name,
/// each followed by its edges `"pn.do_task" -> "dep.do_x"` (the task depends
/// on `dep.do_x`), sorted.
pub fn to_dot(graph: &TaskGraph) -> String {
    let mut nodes: BTreeMap<String, (usize, Vec<String>)> = BTreeMap::new();
    for t in &graph.tasks {
        let mut deps: Vec<String> = graph
            .deps(t.id)
            .iter()
            .map(|&d| graph.tasks[d].dot_name())
            .collect();
        deps.sort();
        deps.dedup();
        nodes.insert(t.dot_name(), (t.id, deps));
    }
    let mut out = String::from("digraph depends {\n");
    for (name, (id, deps)) in &nodes {
        let t = &graph.tasks[*id];
        let (version, file) = graph
            .recipe(t.recipe)
            .map(|r| (r.version.as_str(), r.file.as_str()))
            .unwrap_or(("", ""));
        let _ = writeln!(
            out,
            "\"{name}\" [label=\"{} {}\\n{version}\\n{file}\"]",
            t.pn, t.task
        );
        for d in deps {
            let _ = writeln!(out, "\"{name}\" -> \"{d}\"");
        }
    }
    out.push_str("}\n");
    out
}

/// The plan as JSON: `targets`, `nodes`, `edges` (`from` depends on `to`),
/// `providers` (every decision with its candidates and reasons) and `warnings`.
pub fn to_json(plan: &BuildPlan, recipes: &[RecipeInfo]) -> Value {
    let g = &plan.graph;
    let nodes: Vec<Value> = g
        .tasks
        .iter()
        .map(|t| {
            let r = g.recipe(t.recipe);
            json!({
                "id": t.dot_name(),
                "pn": t.pn,
                "task": t.task,
                "file": r.map(|r| r.file.as_str()),
                "version": r.map(|r| r.version.as_str()),
                "noexec": t.noexec,
                "nostamp": t.nostamp,
            })
        })
        .collect();
    let mut edges: Vec<(String, String)> = g
        .edges()
        .map(|(a, b)| (g.tasks[a].dot_name(), g.tasks[b].dot_name()))
        .collect();
    edges.sort();
    let edges: Vec<Value> = edges
        .into_iter()
        .map(|(a, b)| json!({"from": a, "to": b}))
        .collect();
    let describe = |i: usize| -> Value {
        let r = &recipes[i];
        json!({"pn": r.pn, "version": r.pepvpr(), "file": r.bitbake_fn(), "layer": r.layer,
               "layer_priority": r.layer_priority, "default_preference": r.default_preference})
    };
    let providers: Vec<Value> = plan
        .providers
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "namespace": c.namespace,
                "chosen": c.chosen.map(|i| recipes[i].pn.clone()),
                "chosen_file": c.chosen.map(|i| recipes[i].bitbake_fn()),
                "eligible": c.eligible.iter().map(|&i| describe(i)).collect::<Vec<_>>(),
                "candidates": c.candidates.iter().map(|&i| describe(i)).collect::<Vec<_>>(),
                "by_preference": c.unique,
                "reasons": c.reasons,
            })
        })
        .collect();
    let targets: Vec<String> = plan
        .targets
        .iter()
        .map(|&t| g.tasks[t].dot_name())
        .collect();
    json!({
        "targets": targets,
        "nodes": nodes,
        "edges": edges,
        "providers": providers,
        "warnings": plan.warnings,
        "errors": plan.errors,
    })
}
