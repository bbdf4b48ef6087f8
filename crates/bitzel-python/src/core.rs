//! The Rust object behind Python's `d`: every call goes to the datastore of
//! the call into Python in progress on this thread (a stack, so Rust →
//! Python → `d.getVar` → `${@...}` → Python nests), or to a datastore of
//! its own for `d.createCopy()`.

use std::cell::RefCell;
use std::path::Path;
use std::sync::Mutex;

use bitzel_meta::pyexpr::{DataOp, LogLevel, PyContext};
use bitzel_meta::{with_data_context, DataStore, ExpandError};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyString;

/// What [`Core::parse`] gives Python.
type Parsed = (
    Option<String>,
    Vec<String>,
    bool,
    Vec<(String, Core, Option<String>)>,
    Vec<(&'static str, String)>,
);

/// What [`Core::expand_refs`] gives Python: (value, references, inline
/// Python expressions).
type Refs = (Option<String>, Vec<String>, Vec<String>);

/// What [`Core::flag_refs`] gives Python: (unexpanded value, [`Refs`],
/// the `:remove` values that applied or `None`).
type FlagRefs = (Option<String>, Refs, Option<Vec<String>>);

type CtxPtr = *const (dyn PyContext + 'static);

thread_local! {
    static STACK: RefCell<Vec<CtxPtr>> = const { RefCell::new(Vec::new()) };
}

/// Keeps a datastore bound as `d` while alive.
pub(crate) struct Binding(());

/// Bind `ctx` as the datastore Python's `d` reaches on this thread until
/// the returned guard is dropped.
pub(crate) fn bind(ctx: &dyn PyContext) -> Binding {
    let p: *const (dyn PyContext + '_) = ctx;
    // SAFETY: only the lifetime is erased. The pointer is popped when the
    // `Binding` drops, which happens before `ctx`'s borrow ends (the guard
    // lives in a frame that holds the borrow), and it is dereferenced only
    // while on the stack (`with_current`).
    let p: CtxPtr = unsafe { std::mem::transmute::<*const (dyn PyContext + '_), CtxPtr>(p) };
    STACK.with(|s| s.borrow_mut().push(p));
    Binding(())
}

impl Drop for Binding {
    fn drop(&mut self) {
        STACK.with(|s| {
            s.borrow_mut().pop();
        });
    }
}

fn with_current<T>(f: impl FnOnce(&dyn PyContext) -> T) -> PyResult<T> {
    let top = STACK.with(|s| s.borrow().last().copied());
    match top {
        // SAFETY: entries are live while on the stack (see `bind`); the
        // RefCell borrow is released before `f` runs, so nested binds work.
        Some(p) => Ok(f(unsafe { &*p })),
        None => Err(PyRuntimeError::new_err(
            "bitzel: `d` was used outside of a parse (a stored datastore reference outlived its recipe)",
        )),
    }
}

/// The native side of Python's `DataProxy`.
#[pyclass(frozen, module = "bitzel")]
pub(crate) struct Core {
    /// `None`: the datastore bound on this thread; `Some`: a copy.
    owned: Option<Mutex<DataStore>>,
}

impl Core {
    pub(crate) fn current() -> Core {
        Core { owned: None }
    }

    fn with<T>(&self, f: impl FnOnce(&dyn PyContext) -> T) -> PyResult<T> {
        match &self.owned {
            None => with_current(f),
            Some(m) => {
                // try_lock: a copy re-entered from its own expansion is an
                // error, never a deadlock.
                let mut ds = m.try_lock().map_err(|_| {
                    PyRuntimeError::new_err(
                        "bitzel: a datastore copy was used re-entrantly from its own expansion",
                    )
                })?;
                let (r, logs) =
                    with_data_context(&mut ds, Path::new("<createCopy>"), 0, |ctx| f(ctx));
                drop(ds);
                for (level, msg) in logs {
                    let _ = with_current(|c| c.log(level, &msg));
                }
                Ok(r)
            }
        }
    }
}

impl Core {
    /// `f` on a datastore of this object's own (None for the bound one),
    /// so expansion errors reach Python instead of the parse's diagnostics.
    fn owned_read<T>(&self, f: impl FnOnce(&DataStore) -> T) -> Option<PyResult<T>> {
        let m = self.owned.as_ref()?;
        Some(m.try_lock().map(|ds| f(&ds)).map_err(|_| {
            PyRuntimeError::new_err(
                "bitzel: a datastore copy was used re-entrantly from its own expansion",
            )
        }))
    }
}

/// BitBake's `bb.data_smart.ExpansionError(varname, expression, exception)`
/// for an expansion of `var` that failed (a RuntimeError when `bb` lacks it).
fn expansion_error(py: Python<'_>, var: &str, e: &ExpandError) -> PyErr {
    let expr = match e {
        ExpandError::Python { expr, .. } => format!("${{@{expr}}}"),
        _ => String::new(),
    };
    let cls = py
        .import("bb.data_smart")
        .and_then(|m| m.getattr("ExpansionError"));
    let err = cls.and_then(|c| {
        let exc = PyRuntimeError::new_err(e.to_string());
        c.call1((var, expr, exc.value(py)))
    });
    match err {
        Ok(obj) => PyErr::from_value(obj),
        Err(_) => PyRuntimeError::new_err(format!("bitzel: {e}")),
    }
}

fn unsupported(what: String) -> PyErr {
    PyRuntimeError::new_err(format!("bitzel: {what} is not supported here"))
}

#[pymethods]
impl Core {
    /// A variable's value. The string is interned, so reading the same
    /// value twice gives the same object, as BitBake's `getVar` returns the
    /// stored (or expansion-cached) object itself.
    fn get<'py>(
        &self,
        py: Python<'py>,
        var: &str,
        expand: bool,
    ) -> PyResult<Option<Bound<'py, PyString>>> {
        let owned = if expand {
            self.owned_read(|ds| ds.try_get_var(var))
        } else {
            None
        };
        let value = match owned {
            Some(r) => r?.map_err(|e| expansion_error(py, var, &e))?,
            None => self.with(|c| c.get_var(var, expand))?,
        };
        Ok(value.map(|v| PyString::intern(py, &v)))
    }

    fn flag(
        &self,
        py: Python<'_>,
        var: &str,
        flag: &str,
        expand: bool,
    ) -> PyResult<Option<String>> {
        if expand {
            if let Some(r) = self.owned_read(|ds| ds.try_get_flag(var, flag)) {
                let what = format!("{var}[{flag}]");
                return r?.map_err(|e| expansion_error(py, &what, &e));
            }
        }
        self.with(|c| c.get_var_flag(var, flag, expand))
    }

    #[pyo3(signature = (kind, var, flag, value))]
    fn op(&self, kind: &str, var: &str, flag: Option<&str>, value: Option<&str>) -> PyResult<()> {
        let flag = flag.unwrap_or("");
        let value = value.unwrap_or("");
        let op = match kind {
            "set" => DataOp::SetVar { var, value },
            "append" => DataOp::AppendVar { var, value },
            "prepend" => DataOp::PrependVar { var, value },
            "del" => DataOp::DelVar { var },
            "setflag" => DataOp::SetVarFlag { var, flag, value },
            "appendflag" => DataOp::AppendVarFlag { var, flag, value },
            "prependflag" => DataOp::PrependVarFlag { var, flag, value },
            "delflag" => DataOp::DelVarFlag { var, flag },
            "rename" => DataOp::RenameVar { var, new: value },
            other => return Err(unsupported(format!("datastore operation `{other}`"))),
        };
        self.with(|c| c.modify(op))?.map_err(|w| {
            PyRuntimeError::new_err(format!(
                "bitzel: {w} is not possible here (the datastore is read-only while a value is being expanded)"
            ))
        })
    }

    #[pyo3(signature = (var, internal=false))]
    fn flags(&self, var: &str, internal: bool) -> PyResult<Option<Vec<(String, String)>>> {
        self.with(|c| c.var_flags(var, internal))?
            .map_err(unsupported)
    }

    #[pyo3(signature = (s, varname=None))]
    fn expand(&self, py: Python<'_>, s: &str, varname: Option<&str>) -> PyResult<String> {
        if let Some(r) = self.owned_read(|ds| ds.expand(s)) {
            return r?.map_err(|e| expansion_error(py, varname.unwrap_or(""), &e));
        }
        self.with(|c| c.expand(s))
    }

    /// `d.expandWithRefs(s, varname)`: the expansion and what it read
    /// itself (`bitzel_meta::ExpansionRefs`; Python gives the inline
    /// expressions to BitBake's codeparser).
    #[pyo3(signature = (s, varname=None))]
    fn expand_refs(&self, py: Python<'_>, s: &str, varname: Option<&str>) -> PyResult<Refs> {
        let r = match self.owned_read(|ds| ds.expand_with_refs(s, varname)) {
            Some(r) => r?,
            None => self
                .with(|c| c.expand_with_refs(s, varname))?
                .ok_or_else(|| unsupported("d.expandWithRefs".to_string()))?,
        };
        let r = r.map_err(|e| expansion_error(py, varname.unwrap_or(""), &e))?;
        Ok((r.value, r.references, r.python))
    }

    /// `d.getVarFlag(var, flag, retparser=True)` (`bitzel_meta::FlagRefs`).
    fn flag_refs(&self, py: Python<'_>, var: &str, flag: &str) -> PyResult<FlagRefs> {
        let r = match self.owned_read(|ds| ds.flag_with_refs(var, flag)) {
            Some(r) => r?,
            None => self
                .with(|c| c.flag_with_refs(var, flag))?
                .ok_or_else(|| unsupported("d.getVarFlag(..., retparser=True)".to_string()))?,
        };
        let r = r.map_err(|e| {
            let what = if flag == "_content" {
                var.to_string()
            } else {
                format!("{var}[{flag}]")
            };
            expansion_error(py, &what, &e)
        })?;
        let p = r.parse;
        Ok((r.unexpanded, (p.value, p.references, p.python), r.removes))
    }

    /// BitBake's `VariableHistory.emit` block for `var` (the `#` comment
    /// lines `bb.data.emit_var(..., all=True)` writes before a variable).
    fn history_text(&self, var: &str) -> PyResult<String> {
        let emit = |ds: &DataStore| {
            let mut out = String::new();
            bitzel_meta::emit_history(ds, var, &mut out);
            out
        };
        if let Some(r) = self.owned_read(emit) {
            return r;
        }
        let ds = self.with(|c| c.snapshot())?.map_err(unsupported)?;
        Ok(emit(&ds))
    }

    fn has_overrides(&self, var: &str) -> PyResult<bool> {
        self.with(|c| c.has_overrides(var))?.map_err(unsupported)
    }

    fn keys(&self) -> PyResult<Vec<String>> {
        self.with(|c| c.keys())?.map_err(unsupported)
    }

    fn copy(&self) -> PyResult<Core> {
        let ds = self.with(|c| c.snapshot())?.map_err(unsupported)?;
        Ok(Core {
            owned: Some(Mutex::new(ds)),
        })
    }

    /// The whole datastore as bytes (what pickling `d` keeps).
    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
        let bytes = match self.owned_read(bitzel_meta::datastore_bytes) {
            Some(r) => r?,
            None => {
                let ds = self.with(|c| c.snapshot())?.map_err(unsupported)?;
                bitzel_meta::datastore_bytes(&ds)
            }
        };
        Ok(pyo3::types::PyBytes::new(py, &bytes))
    }

    /// A datastore of its own from [`Core::to_bytes`]'s form (unpickling).
    #[staticmethod]
    fn from_bytes(bytes: &[u8]) -> PyResult<Core> {
        let ds = bitzel_meta::datastore_from_bytes(bytes).ok_or_else(|| {
            PyRuntimeError::new_err(
                "bitzel: the pickled datastore is not one this bitzel wrote (truncated, or from another version); pickle it again",
            )
        })?;
        Ok(Core {
            owned: Some(Mutex::new(ds)),
        })
    }

    /// A datastore of its own, empty (`bb.data.init()` in the selftest).
    #[staticmethod]
    fn new_store() -> Core {
        Core {
            owned: Some(Mutex::new(DataStore::new())),
        }
    }

    /// Parse `path` into this datastore (it must be one of its own) with
    /// bitzel's parser: `(skip reason, error messages, whether BitBake
    /// reports one of them with bb.fatal, the BBCLASSEXTEND variants as
    /// (name, datastore of its own, skip reason), the warnings BitBake's
    /// parser logs itself as (logger name, message))`.
    fn parse(&self, path: &str, include: bool) -> PyResult<Parsed> {
        let Some(m) = &self.owned else {
            return Err(unsupported(
                "parsing into the datastore of the parse in progress".to_string(),
            ));
        };
        let mut ds = m.try_lock().map_err(|_| {
            PyRuntimeError::new_err("bitzel: a datastore was parsed into re-entrantly")
        })?;
        let data = std::mem::replace(&mut *ds, DataStore::new());
        let h = bitzel_meta::handle(Path::new(path), data, include);
        *ds = h.data;
        let fatal = h.errors.iter().any(|e| e.fatal);
        let variants = h
            .variants
            .into_iter()
            .map(|v| {
                let core = Core {
                    owned: Some(Mutex::new(v.data)),
                };
                (v.name, core, v.skipped)
            })
            .collect();
        let logged = h
            .warnings
            .into_iter()
            .filter_map(|w| w.log_as.map(|l| (l, w.message)))
            .collect();
        Ok((
            h.skipped,
            h.errors.iter().map(|e| e.to_string()).collect(),
            fatal,
            variants,
            logged,
        ))
    }

    /// `bb.parse.BBHandler.inherit(classes, fn, lineno, d)`: bitzel's
    /// parser inherits `classes` into the recipe being parsed.
    fn inherit(&self, classes: &str, file: &str, line: u32) -> PyResult<()> {
        let op = DataOp::Inherit {
            classes,
            file,
            line,
        };
        self.with(|c| c.modify(op))?
            .map_err(|w| PyRuntimeError::new_err(format!("bitzel: {w} is not possible")))
    }

    /// `bb.parse.mark_dependency(d, file)`: `file` joins the files the
    /// parse of the datastore depends on.
    fn mark_dependency(&self, file: &str) -> PyResult<()> {
        self.with(|c| c.modify(DataOp::MarkDependency { file }))?
            .map_err(|w| PyRuntimeError::new_err(format!("bitzel: {w} is not possible")))
    }

    fn log(&self, level: u32, msg: &str) -> PyResult<()> {
        let level = match level {
            0..=19 => LogLevel::Debug,
            20..=29 => LogLevel::Note,
            30..=39 => LogLevel::Warn,
            _ => LogLevel::Error,
        };
        with_current(|c| c.log(level, msg))
    }
}
