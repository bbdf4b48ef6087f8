//! The variables BitBake's `ast.finalize` sets after the anonymous
//! functions and `RecipeTaskPreProcess`: `_task_deps` (`bb.build.add_tasks`)
//! and `BBINCLUDED` (`bb.parse.get_file_depends`). `bitbake -e` prints
//! both, and metadata reads `BBINCLUDED` (archiver.bbclass, recipeutils).

use std::collections::HashSet;
use std::path::Path;

use crate::data::{DataStore, ExpandError};
use crate::eval::Input;
use crate::pyexpr::str_repr;
use crate::python::PY_LITERAL;

/// The configuration's variable holding the files the configuration
/// parse marked as dependencies (BitBake renames the configuration's
/// `__depends` to `__base_depends`; bitzel keeps it as text, the paths
/// joined by spaces, under its own name).
pub(crate) const BASE_DEPENDS_VAR: &str = "__BITZEL_BASE_DEPENDS";

/// The task flags `bb.build.add_tasks` collects, in the order it adds
/// them to `_task_deps`.
const TASK_FLAGS: [&str; 11] = [
    "mcdepends",
    "depends",
    "rdepends",
    "deptask",
    "rdeptask",
    "recrdeptask",
    "recideptask",
    "nostamp",
    "fakeroot",
    "noexec",
    "umask",
];

/// `repr()` of a flag value as `d.expand` returns it: a string's `repr`,
/// or a Python literal (a flag Python set to an int) as it is.
fn value_repr(ds: &DataStore, raw: &str, out: &mut String) -> Result<(), ExpandError> {
    match raw.strip_prefix(PY_LITERAL) {
        Some(lit) => out.push_str(lit),
        None => str_repr(&ds.expand(raw)?, out),
    }
    Ok(())
}

/// `dict[key] = value`: a key already there keeps its place.
fn dict_set(items: &mut Vec<(String, String)>, key: &str, value: String) {
    match items.iter_mut().find(|(k, _)| k == key) {
        Some(item) => item.1 = value,
        None => items.push((key.to_string(), value)),
    }
}

/// `{'a': v, ...}` from `(key, repr)` items.
fn dict_repr(items: &[(String, String)], out: &mut String) {
    out.push('{');
    for (i, (k, v)) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        str_repr(k, out);
        out.push_str(": ");
        out.push_str(v);
    }
    out.push('}');
}

/// The value `bb.build.add_tasks(tasks, d)` gives `_task_deps` (a dict, as
/// the [`PY_LITERAL`] mark and its `repr`): the task list, each task's
/// `deps` as `parents`, then per flag of [`TASK_FLAGS`] the tasks that set
/// it with the flag's expanded value.
pub(crate) fn task_deps(ds: &DataStore, tasks: &[String]) -> Result<String, ExpandError> {
    let mut names: Vec<String> = Vec::new();
    let mut parents: Vec<(String, String)> = Vec::new();
    let mut flags: Vec<Vec<(String, String)>> = vec![Vec::new(); TASK_FLAGS.len()];
    for task in tasks {
        let task = ds.expand(task)?;
        if !names.contains(&task) {
            names.push(task.clone());
        }
        for (i, flag) in TASK_FLAGS.iter().enumerate() {
            if let Some(raw) = ds.flag_raw(&task, flag, false) {
                let mut v = String::new();
                value_repr(ds, &raw, &mut v)?;
                dict_set(&mut flags[i], &task, v);
            }
        }
        let mut list = String::from("[");
        for (i, dep) in ds.task_deps(&task).iter().enumerate() {
            if i > 0 {
                list.push_str(", ");
            }
            str_repr(&ds.expand(dep)?, &mut list);
        }
        list.push(']');
        dict_set(&mut parents, &task, list);
    }
    let mut out = String::from(PY_LITERAL);
    out.push_str("{'tasks': [");
    for (i, t) in names.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        str_repr(t, &mut out);
    }
    out.push_str("], 'parents': ");
    dict_repr(&parents, &mut out);
    if !tasks.is_empty() {
        for (flag, items) in TASK_FLAGS.iter().zip(&flags) {
            out.push_str(", ");
            str_repr(flag, &mut out);
            out.push_str(": ");
            dict_repr(items, &mut out);
        }
    }
    out.push('}');
    Ok(out)
}

/// The files a parse marked as dependencies (`bb.parse.mark_dependency`:
/// every candidate an include, require, inherit or `BBPATH` lookup looked
/// at, found or not, and every file parsed), each once, in first-marked
/// order, made absolute as `get_file_depends` makes them.
pub(crate) fn marked_files(inputs: &[Input], cwd: Option<&Path>) -> Vec<String> {
    let mut seen: HashSet<&Path> = HashSet::new();
    inputs
        .iter()
        .filter(|(p, _)| seen.insert(p.as_path()))
        .map(|(p, _)| {
            let abs = match cwd {
                Some(c) if p.is_relative() => c.join(p),
                _ => p.clone(),
            };
            crate::pyexpr::bbfuncs::normpath(&abs.to_string_lossy())
        })
        .collect()
}

/// `BBINCLUDED` (`get_file_depends`): the configuration's marked files
/// ([`BASE_DEPENDS_VAR`]) then the recipe's, joined by spaces.
pub(crate) fn bbincluded(ds: &DataStore, recipe_files: &[String]) -> String {
    let base = ds.content_parsing(BASE_DEPENDS_VAR).unwrap_or_default();
    let mut out = base.to_string();
    for f in recipe_files {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(f);
    }
    out
}
