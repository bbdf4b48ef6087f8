//! The inline-Python subset evaluator for `${@...}` expressions.
//!
//! BitBake evaluates the text between `${@` and `}` with Python's `eval`
//! (`data_smart.VariableParse.python_sub`): it compiles `code.strip()` in
//! `eval` mode, evaluates it with the datastore as `d` (unknown bare names
//! are looked up as datastore variables) and substitutes **`str(value)`** —
//! so `None` becomes `"None"`, `True` becomes `"True"`, `3` becomes `"3"`
//! and a list becomes its repr (`"['a', 'b']"`). This module does the same
//! for a subset of Python large enough for the idioms real layers use:
//!
//! - literals (all string quote styles and escapes, ints, floats, `None`,
//!   `True`, `False`), lists, tuples, sets, dicts, implicit string
//!   concatenation;
//! - `and`/`or` (value-returning, short-circuit), `not`, `x if c else y`,
//!   chained comparisons, `in`/`not in`, `is None`, arithmetic, `%`
//!   formatting, indexing, slicing, list/set comprehensions and generator
//!   expressions;
//! - `str` methods (`split`, `rsplit`, `strip`, `replace`, `join`,
//!   `startswith`, `format`, ...), builtins (`len`, `int`, `str`, `sorted`,
//!   `set`, `min`, `max`, `any`, `range`, ...);
//! - the datastore (`d.getVar`, `d.getVarFlag`, `d.expand`, `'X' in d`),
//!   `bb.utils.contains`/`contains_any`/`filter`/`to_boolean`/
//!   `vercmp_string`/`vercmp_string_op`/`explode_deps`,
//!   `bb.data.inherits_class`, `bb.parse.vars_from_file`,
//!   `oe.utils.conditional`/`ifelse`/`vartrue`/
//!   `less_or_equal`/`version_less_or_equal`/`all_distro_features`/
//!   `any_distro_features`/`both_contain`/`prune_suffix`/`trim_version`/
//!   `inherits`/`squashspaces`/`parallel_make`/`parallel_make_argument`,
//!   `oe.types.boolean`, `os.path.basename`/
//!   `dirname`/`join`/`splitext`/`isabs`/`normpath`.
//!
//! Anything else is an error, never a silently wrong value: a construct or
//! function outside the subset gives a [`PyError`] whose message starts
//! with [`UNSUPPORTED`] and names it (see [`PyError::is_unsupported`]);
//! Python runtime errors are reported the way Python names them
//! (`NameError: name 'X' is not defined`, `TypeError: ...`).
//!
//! Known, documented differences from CPython: integers are 64-bit (larger
//! values are reported as unsupported); sets iterate in first-insertion order
//! (CPython's order for strings depends on hash randomisation); a result
//! CPython would compute as a complex number is reported as unsupported;
//! results are limited to 2^24 items and evaluations to a fixed step
//! budget. As in CPython 3.11, a bare datastore name inside a comprehension
//! (other than in its first iterable) is a `NameError`: the comprehension's
//! own scope cannot see BitBake's `DataContext`.
//!
//! Parsing happens once per distinct source text: [`PyExpr::parse`] gives a
//! reusable compiled expression, and [`eval_inline`] keeps a small
//! thread-safe cache of compiled expressions keyed by source text.

pub(crate) mod bbfuncs;
mod eval;
mod format;
mod lexer;
mod parser;
mod stmt;
mod strings;
mod value;

#[cfg(test)]
mod tests;

pub(crate) use bbfuncs::vercmp_string_op;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
pub use stmt::{compile_cached, CompileError, FuncOutcome, PyFunc};
pub(crate) use value::str_repr;

/// Prefix of every error message about a construct outside the subset.
pub const UNSUPPORTED: &str = "unsupported in bitzel's inline-Python subset: ";

/// A change to the datastore requested by Python code (`d.setVar` etc.).
/// The fields are the BitBake method's arguments.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataOp<'s> {
    /// `d.setVar(var, value)` (BitBake's non-parsing `setVar`).
    SetVar { var: &'s str, value: &'s str },
    /// `d.appendVar(var, value)`.
    AppendVar { var: &'s str, value: &'s str },
    /// `d.prependVar(var, value)`.
    PrependVar { var: &'s str, value: &'s str },
    /// `d.delVar(var)`.
    DelVar { var: &'s str },
    /// `d.setVarFlag(var, flag, value)`.
    SetVarFlag {
        var: &'s str,
        flag: &'s str,
        value: &'s str,
    },
    /// `d.appendVarFlag(var, flag, value)`.
    AppendVarFlag {
        var: &'s str,
        flag: &'s str,
        value: &'s str,
    },
    /// `d.prependVarFlag(var, flag, value)`.
    PrependVarFlag {
        var: &'s str,
        flag: &'s str,
        value: &'s str,
    },
    /// `d.delVarFlag(var, flag)`.
    DelVarFlag { var: &'s str, flag: &'s str },
    /// `d.renameVar(var, newkey)`.
    RenameVar { var: &'s str, new: &'s str },
    /// `bb.parse.BBHandler.inherit(classes, fn, lineno, d)` from an event
    /// handler or anonymous function: bitzel's parser inherits `classes`
    /// (expanded, whitespace-separated) into the datastore being parsed,
    /// as if `inherit` stood at `file`:`line`.
    Inherit {
        classes: &'s str,
        file: &'s str,
        line: u32,
    },
    /// `bb.parse.mark_dependency(d, file)`: `file` joins the files the
    /// parse of the datastore depends on (its `BBINCLUDED`, the parse
    /// cache's inputs).
    MarkDependency { file: &'s str },
}

/// The level of a `bb.note`/`bb.warn`/... message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// `bb.debug`.
    Debug,
    /// `bb.note`.
    Note,
    /// `bb.plain`.
    Plain,
    /// `bb.warn`.
    Warn,
    /// `bb.error`.
    Error,
}

/// Prefix of the error message of `bb.fatal(msg)`.
pub const FATAL: &str = "bb.fatal: ";

/// What an inline expression can ask of the datastore.
pub trait PyContext {
    /// `d.getVar(name, expand)`: the variable's value, expanded when `expand`
    /// is true; `None` when the variable is unset.
    fn get_var(&self, name: &str, expand: bool) -> Option<String>;
    /// `d.getVarFlag(name, flag, expand)`.
    fn get_var_flag(&self, name: &str, flag: &str, expand: bool) -> Option<String>;
    /// Expand `${...}` references in a string (`d.expand(s)`).
    fn expand(&self, s: &str) -> String;
    /// Apply a datastore change. The default refuses it: inline `${@...}`
    /// expressions cannot modify the datastore in bitzel. An `Err` names
    /// what is unsupported.
    fn modify(&self, op: DataOp<'_>) -> Result<(), String> {
        let _ = op;
        Err("modifying the datastore from inline Python".to_string())
    }
    /// `d.getVarFlags(var)`: the variable's flags, unexpanded, or `None`
    /// when it has none; with `internal`, every stored flag as it is
    /// (`getVarFlags(var, internalflags=True)` without `_content`). An `Err`
    /// names what is unsupported.
    fn var_flags(
        &self,
        var: &str,
        internal: bool,
    ) -> Result<Option<Vec<(String, String)>>, String> {
        let _ = (var, internal);
        Err("d.getVarFlags in inline Python".to_string())
    }
    /// `d.keys()`: every variable name. An `Err` names what is
    /// unsupported.
    fn keys(&self) -> Result<Vec<String>, String> {
        Err("d.keys()".to_string())
    }
    /// `d.hasOverrides(var)`: whether override forms of `var` exist
    /// (`VAR:foo = ...`). An `Err` names what is unsupported.
    fn has_overrides(&self, var: &str) -> Result<bool, String> {
        let _ = var;
        Err("d.hasOverrides".to_string())
    }
    /// `d.createCopy()`: an independent copy of the datastore as it is now.
    /// An `Err` names what is unsupported.
    fn snapshot(&self) -> Result<crate::DataStore, String> {
        Err("d.createCopy".to_string())
    }
    /// `d.expandWithRefs(s, varname)`: the expansion and what it read;
    /// `None` when this datastore cannot give it.
    fn expand_with_refs(
        &self,
        s: &str,
        varname: Option<&str>,
    ) -> Option<Result<crate::ExpansionRefs, crate::ExpandError>> {
        let _ = (s, varname);
        None
    }
    /// `d.getVarFlag(var, flag, retparser=True)`; `None` when this
    /// datastore cannot give it.
    fn flag_with_refs(
        &self,
        var: &str,
        flag: &str,
    ) -> Option<Result<crate::FlagRefs, crate::ExpandError>> {
        let _ = (var, flag);
        None
    }
    /// `bb.note(msg)` and friends. The default traces the message.
    fn log(&self, level: LogLevel, msg: &str) {
        tracing::debug!(?level, msg, "python message");
    }
    /// `bb.data.inherits_class(class, d)`: whether the recipe inherits
    /// `class`.
    ///
    /// The default reads the unexpanded variable `__inherit_cache` as a
    /// whitespace-separated list of class file paths (BitBake keeps a list
    /// of paths there) and answers true when one of them ends with
    /// `/<class>.bbclass` or is exactly `<class>.bbclass`. A datastore that
    /// tracks inherits differently should override this.
    fn inherits_class(&self, class: &str) -> bool {
        let needle = format!("{class}.bbclass");
        self.get_var("__inherit_cache", false).is_some_and(|v| {
            v.split_whitespace().any(|p| {
                p == needle
                    || p.strip_suffix(needle.as_str())
                        .is_some_and(|head| head.ends_with('/'))
            })
        })
    }
}

/// Why an inline expression could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PyError {
    /// What went wrong, for a human: names the unsupported construct, or
    /// the Python exception (`TypeError: ...`) the expression raised.
    pub message: String,
    /// Byte offset within the expression text where the problem starts.
    pub offset: usize,
}

impl PyError {
    /// True when the expression uses something outside the supported
    /// subset (as opposed to a Python error that BitBake would raise too).
    pub fn is_unsupported(&self) -> bool {
        self.message.starts_with(UNSUPPORTED)
    }

    /// True for a Python `SyntaxError`. BitBake leaves a `${@...}` whose
    /// code has an unterminated string literal unexpanded instead of failing
    /// (`data_smart.expandWithRefs`); see [`PyError::is_unterminated_string`].
    pub fn is_syntax_error(&self) -> bool {
        self.message.starts_with("SyntaxError:")
    }

    /// True when the code ends inside a string literal: the case in which
    /// BitBake keeps the `${@...}` text as it is.
    pub fn is_unterminated_string(&self) -> bool {
        self.message.starts_with("SyntaxError: unterminated")
    }
}

/// A parsed inline expression, ready to be evaluated many times.
#[derive(Debug, Clone)]
pub struct PyExpr {
    ast: parser::Expr,
}

impl PyExpr {
    /// Parse the text between `${@` and `}`. Leading and trailing whitespace
    /// is ignored, as BitBake strips the code. Error offsets are relative to
    /// `src`.
    pub fn parse(src: &str) -> Result<PyExpr, PyError> {
        let trimmed = src.trim();
        let base = src.len() - src.trim_start().len();
        let mut toks = lexer::tokenize(trimmed).map_err(|e| shift(e, base))?;
        for t in &mut toks {
            t.off += base;
        }
        let ast = parser::parse(&toks)?;
        Ok(PyExpr { ast })
    }

    /// The datastore variables the expression reads by literal name
    /// (`d.getVar('X')`, `bb.utils.contains('X', ...)`, bare `X`), in every
    /// branch whether taken or not, sorted — what BitBake's code parser
    /// records as the expression's references. Names computed at run time
    /// are not included.
    pub fn references(&self) -> Vec<String> {
        let mut out = std::collections::BTreeSet::new();
        parser::references(&self.ast, &mut out);
        out.into_iter().collect()
    }

    /// Evaluate against a datastore and convert the result with `str()`.
    pub fn eval(&self, ctx: &dyn PyContext) -> Result<String, PyError> {
        let mut ev = eval::Evaluator::new(ctx);
        let v = ev.eval(&self.ast)?;
        Ok(match v {
            value::Value::Str(s) => s.to_string(),
            other => other.to_py_str(),
        })
    }
}

fn shift(mut e: PyError, base: usize) -> PyError {
    e.offset += base;
    e
}

/// Most distinct expressions kept by the [`eval_inline`] cache; the cache
/// is emptied when it is full (real metadata has a few thousand).
const CACHE_CAPACITY: usize = 16_384;

type Cache = RwLock<HashMap<Box<str>, Arc<PyExpr>>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| RwLock::new(HashMap::new()))
}

/// Parse `src` through the shared cache.
pub fn parse_cached(src: &str) -> Result<Arc<PyExpr>, PyError> {
    if let Ok(map) = cache().read() {
        if let Some(e) = map.get(src) {
            return Ok(Arc::clone(e));
        }
    }
    let parsed = Arc::new(PyExpr::parse(src)?);
    if let Ok(mut map) = cache().write() {
        if map.len() >= CACHE_CAPACITY {
            map.clear();
        }
        map.insert(src.into(), Arc::clone(&parsed));
    }
    Ok(parsed)
}

/// Evaluate an inline Python expression (the text between `${@` and `}`)
/// and return `str()` of its value, as BitBake substitutes it.
pub fn eval_inline(src: &str, ctx: &dyn PyContext) -> Result<String, PyError> {
    parse_cached(src)?.eval(ctx)
}
