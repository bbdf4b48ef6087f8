//! `bitbake -e` style output of a datastore: `VAR="value"`,
//! `export VAR="value"`, shell functions as `name() {` … `}`, Python
//! functions as `python name () {` … `}`, and optionally the
//! `# $VAR [N operations]` history comment blocks.

use std::fmt::Write as _;

use crate::data::DataStore;
use crate::python::{py_str, python_host, PyFailure, PY_LITERAL, PY_MARK};

/// What to print.
#[derive(Debug, Clone, Default)]
pub struct EmitOptions {
    /// Print the history comment block before each variable (what
    /// `bitbake -e` always does).
    pub history: bool,
    /// Only these variables (in this order); `None` means all, sorted, as
    /// `bitbake -e` orders them.
    pub vars: Option<Vec<String>>,
}

fn to_boolean(v: Option<String>) -> bool {
    match v {
        None => false,
        // An int (the parser's `export` flag is the int 1) is true when not
        // 0; a bool is an int.
        Some(s) => match s.strip_prefix(PY_LITERAL) {
            Some(lit) => !matches!(lit, "0" | "False" | "None"),
            None => matches!(
                s.trim().to_ascii_lowercase().as_str(),
                "1" | "y" | "yes" | "true" | "t" | "on"
            ),
        },
    }
}

/// Print the history comment block of `var` (BitBake's
/// `VariableHistory.emit`).
pub fn emit_history(ds: &DataStore, var: &str, out: &mut String) {
    let history = ds.history(var);
    let oval = ds
        .get_var_unexpanded(var)
        .unwrap_or_else(|| "None".to_string());
    let comment_val = comment_text(&oval).replace('\n', "\n#");
    if history.is_empty() {
        let _ = writeln!(out, "#\n# ${var}\n#   [no history recorded]\n#");
        let _ = writeln!(out, "#   \"{comment_val}\"");
        return;
    }
    if history.len() == 1 {
        let _ = writeln!(out, "#\n# ${var}");
    } else {
        let _ = writeln!(out, "#\n# ${var} [{} operations]", history.len());
    }
    for h in &history {
        let flag = h
            .flag
            .as_ref()
            .map(|f| format!("[{f}] "))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "#   {} {}:{}\n#     {}\"{}\"",
            h.op,
            h.file.display(),
            h.line,
            flag,
            comment_text(&h.detail).replace('\n', "\n#     ")
        );
    }
    if history.len() > 1 {
        let _ = writeln!(out, "# pre-expansion value:\n#   \"{comment_val}\"");
    }
}

/// `str(value)` of a stored value (BitBake's `"%s" % value`): a Python
/// literal is its stored `repr` (its `str`), any other object is shown by
/// the Python host that made it.
fn py_text(value: &str) -> Result<String, PyFailure> {
    if let Some(lit) = value.strip_prefix(PY_LITERAL) {
        return Ok(lit.to_string());
    }
    if !value.starts_with(PY_MARK) {
        return Ok(value.to_string());
    }
    match python_host() {
        Some(host) => host.display(value),
        None => Err(PyFailure {
            message: "a Python object value, and no Python host to show it".to_string(),
            file: None,
            line: None,
        }),
    }
}

/// [`py_text`] for a comment line: a value that cannot be shown says why.
fn comment_text(value: &str) -> String {
    py_text(value).unwrap_or_else(|e| format!("<{}>", e.message))
}

/// A value as `emit_var` prints it: [`py_text`], and `None` not at all.
fn shown(value: String) -> Result<Option<String>, PyFailure> {
    if value.strip_prefix(PY_LITERAL) == Some("None") {
        return Ok(None);
    }
    py_text(&value).map(Some)
}

/// BitBake's `emit_var`; returns true when a function body was printed.
fn emit_var(ds: &DataStore, var: &str, all: bool, history: bool, out: &mut String) -> bool {
    let func = ds.is_func(var);
    if func && ds.is_python(var) {
        return false;
    }
    let export = to_boolean(ds.get_flag(var, "export"));
    let unexport = to_boolean(ds.get_flag(var, "unexport"));
    if !all && !export && !unexport && !func {
        return false;
    }
    let val = match ds.try_get_var(var) {
        Ok(v) => v,
        Err(e) => {
            let _ = writeln!(out, "# expansion of {var} threw ExpansionError: {e}");
            return false;
        }
    };
    if all && history {
        emit_history(ds, var, out);
    }
    if !all && var.contains(['-', '.', '{', '}', '+']) {
        return false;
    }
    let name = ds.expand(var).unwrap_or_else(|_| var.to_string());
    if unexport {
        let _ = writeln!(out, "unset {name}");
        return false;
    }
    let val = match val.map(shown) {
        Some(Ok(Some(v))) => v,
        Some(Ok(None)) | None => return false,
        Some(Err(e)) => {
            let _ = writeln!(out, "# str() of {var} threw {}", e.message);
            return false;
        }
    };
    if func {
        let _ = writeln!(
            out,
            "# line: {}, file: {}",
            ds.get_flag_unexpanded(var, "lineno")
                .map_or_else(|| "None".into(), |l| py_str(&l).to_string()),
            ds.get_flag_unexpanded(var, "filename")
                .unwrap_or_else(|| "None".into())
        );
        let _ = writeln!(out, "{name}() {{\n{}\n}}", val.trim_end_matches('\n'));
        return true;
    }
    if export {
        out.push_str("export ");
    }
    let alter = val
        .replace('"', "\\\"")
        .replace('\n', " \\\n")
        .replace('$', "\\$");
    let _ = writeln!(out, "{name}=\"{alter}\"");
    false
}

/// The whole environment in `bitbake -e` format.
pub fn emit_env(ds: &DataStore, opts: &EmitOptions) -> String {
    let mut out = String::new();
    let keys: Vec<String> = match &opts.vars {
        Some(v) => v.clone(),
        None => ds
            .keys()
            .into_iter()
            .filter(|k| !k.starts_with("__"))
            .collect(),
    };
    let (mut plain, mut funcs): (Vec<&String>, Vec<&String>) =
        keys.iter().partition(|k| !ds.is_func(k));
    if opts.vars.is_none() {
        plain.sort();
        funcs.sort();
    }
    for k in plain {
        if !ds.contains(k) && ds.get_var_unexpanded(k).is_none() {
            if opts.vars.is_some() {
                let _ = writeln!(out, "# {k} is not set");
            }
            continue;
        }
        if emit_var(ds, k, true, opts.history, &mut out) {
            out.push('\n');
        }
    }
    for k in &funcs {
        if emit_var(ds, k, false, opts.history, &mut out) {
            out.push('\n');
        }
    }
    // cooker's showEnvironment prints the Python functions of every key,
    // `__` ones included (the anonymous functions, `__anon_<line>_<file>`).
    let mut pyfuncs: Vec<String> = match &opts.vars {
        Some(v) => v.clone(),
        None => ds.keys(),
    };
    pyfuncs.retain(|k| ds.is_func(k) && ds.is_python(k));
    if opts.vars.is_none() {
        pyfuncs.sort();
    }
    for k in &pyfuncs {
        // BitBake formats `getVar(name, False)` with `%s`: a function that
        // has only flags (`python do_x:prepend () {}` names an override,
        // not a value) shows `None`.
        let body = ds
            .get_var_unexpanded(k)
            .unwrap_or_else(|| "None".to_string());
        let _ = writeln!(out, "\npython {k} () {{\n{body}}}\n");
    }
    out
}
