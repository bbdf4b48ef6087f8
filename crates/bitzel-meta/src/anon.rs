//! Running anonymous Python functions (`python () {}`, `python
//! __anonymous () {}`) at the end of a recipe's parse, as BitBake's
//! `bb.parse.ast.finalize` does with `runAnonFuncs` after `expandKeys`.
//!
//! Each function runs as a transaction on the recipe's datastore (its
//! local layer journals the prior entry of every variable written) and is
//! committed only when it ran to its end: a construct outside the supported subset
//! discards everything it did and leaves a note naming the construct and
//! its line.

use std::borrow::Cow;
use std::cell::RefCell;
use std::path::Path;
use std::sync::Arc;

use crate::data::{DataStore, ExpandError, HistoryEntry};
use crate::diag::Severity;
use crate::eval::Eval;
use crate::pyexpr::{self, DataOp, FuncOutcome, LogLevel, PyContext};
use crate::python::{python_host, PyEvent, PyFailure, PyHandler, PyRun, PythonHost};
use std::ops::ControlFlow;

/// The variable holding the reason a recipe was skipped
/// (`bb.parse.SkipRecipe`); bitzel's own, not BitBake's.
pub const SKIP_VAR: &str = "__BITZEL_SKIPPED";

const NOT_RUN: &str = "anonymous python function not executed";

/// The datastore as an anonymous function sees it.
pub(crate) struct AnonCtx<'d> {
    ds: RefCell<&'d mut DataStore>,
    file: Arc<Path>,
    line: u32,
    logs: RefCell<Vec<(LogLevel, String)>>,
    expand_error: RefCell<Option<ExpandError>>,
    /// `Some`: the inherits asked for (`DataOp::Inherit`), which the parse
    /// runs when the Python call returns; `None`: inheriting is not
    /// possible from this datastore (no recipe is being parsed into it).
    inherits: Option<RefCell<Vec<PendingInherit>>>,
    /// The files `bb.parse.mark_dependency` marked (`DataOp::MarkDependency`),
    /// which the parse records when the Python call returns; `None`
    /// outside a parse.
    marks: Option<RefCell<Vec<std::path::PathBuf>>>,
}

/// An inherit an event handler or anonymous function asked for: the
/// classes, the file and line it names.
pub(crate) type PendingInherit = (String, Arc<Path>, u32);

impl<'d> AnonCtx<'d> {
    pub(crate) fn new(ds: &'d mut DataStore, file: Arc<Path>, line: u32) -> AnonCtx<'d> {
        AnonCtx {
            ds: RefCell::new(ds),
            file,
            line,
            logs: RefCell::new(Vec::new()),
            expand_error: RefCell::new(None),
            inherits: None,
            marks: None,
        }
    }

    /// As [`AnonCtx::new`], for a call whose `bb.parse.BBHandler.inherit`
    /// calls the parse runs afterwards (an event handler, an anonymous
    /// function run by CPython).
    fn inheriting(ds: &'d mut DataStore, file: Arc<Path>, line: u32) -> AnonCtx<'d> {
        AnonCtx {
            inherits: Some(RefCell::new(Vec::new())),
            marks: Some(RefCell::new(Vec::new())),
            ..AnonCtx::new(ds, file, line)
        }
    }

    fn read<T>(&self, f: impl FnOnce(&DataStore) -> T) -> T {
        f(&self.ds.borrow())
    }

    fn write(&self, f: impl FnOnce(&mut DataStore)) {
        f(&mut self.ds.borrow_mut());
    }

    fn fail(&self, e: ExpandError) {
        let mut p = self.expand_error.borrow_mut();
        if p.is_none() {
            *p = Some(e);
        }
    }

    fn hist(&self, op: &'static str, detail: &str) -> Option<HistoryEntry> {
        Some(HistoryEntry {
            file: self.file.clone(),
            line: self.line,
            op: Cow::Borrowed(op),
            flag: None,
            detail: Arc::from(detail),
        })
    }
}

impl PyContext for AnonCtx<'_> {
    fn get_var(&self, name: &str, expand: bool) -> Option<String> {
        if expand {
            match self.read(|d| d.try_get_var(name)) {
                Ok(v) => v,
                Err(e) => {
                    self.fail(e);
                    None
                }
            }
        } else {
            self.read(|d| d.get_var_unexpanded(name))
        }
    }

    fn get_var_flag(&self, name: &str, flag: &str, expand: bool) -> Option<String> {
        if expand {
            match self.read(|d| d.try_get_flag(name, flag)) {
                Ok(v) => v,
                Err(e) => {
                    self.fail(e);
                    None
                }
            }
        } else {
            self.read(|d| d.get_flag_unexpanded(name, flag))
        }
    }

    fn expand(&self, s: &str) -> String {
        match self.read(|d| d.expand(s)) {
            Ok(v) => v,
            Err(e) => {
                self.fail(e);
                s.to_string()
            }
        }
    }

    fn modify(&self, op: DataOp<'_>) -> Result<(), String> {
        match op {
            DataOp::SetVar { var, value } => {
                let h = self.hist("set", value);
                self.write(|d| d.set_var_final(var, Arc::from(value), h));
            }
            DataOp::AppendVar { var, value } | DataOp::PrependVar { var, value } => {
                // As DataSmart: `setVar(var + ":append", value,
                // parsing=True)`, applied when the value is read, after
                // the overrides (not folded into today's value).
                let append = matches!(op, DataOp::AppendVar { .. });
                let key = format!("{var}:{}", if append { "append" } else { "prepend" });
                let h = self.hist(if append { "append" } else { "prepend" }, value);
                self.write(|d| d.set_var(&key, Arc::from(value), h));
            }
            DataOp::DelVar { var } => {
                let h = self.hist("del", "");
                self.write(|d| d.del_var(var, h));
            }
            DataOp::SetVarFlag { var, flag, value } => {
                let h = self.hist("set", value);
                self.write(|d| d.set_var_flag(var, flag, Arc::from(value), h));
            }
            DataOp::AppendVarFlag { var, flag, value }
            | DataOp::PrependVarFlag { var, flag, value } => {
                let append = matches!(op, DataOp::AppendVarFlag { .. });
                let cur = self
                    .read(|d| d.get_flag_unexpanded(var, flag))
                    .unwrap_or_default();
                let new = if append {
                    format!("{cur}{value}")
                } else {
                    format!("{value}{cur}")
                };
                let h = self.hist(if append { "append" } else { "prepend" }, value);
                self.write(|d| d.set_var_flag(var, flag, Arc::from(new), h));
            }
            DataOp::DelVarFlag { var, flag } => {
                let h = self.hist("delFlag", "");
                self.write(|d| d.del_var_flag(var, flag, h));
            }
            DataOp::RenameVar { var, new } => {
                let h = self.hist("rename", new);
                self.write(|d| d.rename_var(var, new, h));
            }
            DataOp::Inherit {
                classes,
                file,
                line,
            } => {
                let Some(pending) = &self.inherits else {
                    return Err(
                        "bb.parse.BBHandler.inherit outside an event handler or anonymous function of a recipe being parsed"
                            .to_string(),
                    );
                };
                let file: Arc<Path> = Arc::from(Path::new(file));
                pending.borrow_mut().push((classes.to_string(), file, line));
            }
            // Outside a parse nothing reads a datastore's dependencies (as
            // in BitBake, where only the parse reads `__depends`).
            DataOp::MarkDependency { file } => {
                if let Some(marks) = &self.marks {
                    marks.borrow_mut().push(file.into());
                }
            }
        }
        Ok(())
    }

    fn var_flags(
        &self,
        var: &str,
        internal: bool,
    ) -> Result<Option<Vec<(String, String)>>, String> {
        let flags = self.read(|d| {
            if internal {
                d.flags_internal(var)
            } else {
                d.flags(var)
            }
        });
        Ok((!flags.is_empty()).then(|| flags.into_iter().collect()))
    }

    fn keys(&self) -> Result<Vec<String>, String> {
        Ok(self.read(|d| d.keys()))
    }

    fn has_overrides(&self, var: &str) -> Result<bool, String> {
        Ok(self.read(|d| d.has_overrides(var)))
    }

    fn snapshot(&self) -> Result<DataStore, String> {
        Ok(self.read(|d| d.clone()))
    }

    fn expand_with_refs(
        &self,
        s: &str,
        varname: Option<&str>,
    ) -> Option<Result<crate::ExpansionRefs, ExpandError>> {
        Some(self.read(|d| d.expand_with_refs(s, varname)))
    }

    fn flag_with_refs(
        &self,
        var: &str,
        flag: &str,
    ) -> Option<Result<crate::FlagRefs, ExpandError>> {
        Some(self.read(|d| d.flag_with_refs(var, flag)))
    }

    fn log(&self, level: LogLevel, msg: &str) {
        self.logs.borrow_mut().push((level, msg.to_string()));
    }
}

impl Eval<'_> {
    /// BitBake's `runAnonFuncs`: run every function listed in
    /// `__BBANONFUNCS`, in order. Returns the skip reason when one raised
    /// `bb.parse.SkipRecipe` (the remaining ones are not run, as in BitBake,
    /// whose single `exec` stops at the exception); a Python error also
    /// stops the rest and is a parse error of the recipe.
    pub(crate) fn run_anon_funcs(&mut self) -> Option<String> {
        let list = self.ds.content_parsing("__BBANONFUNCS")?;
        for fname in list.split_whitespace() {
            let Some(text) = self.ds.content_parsing(fname) else {
                continue;
            };
            let body = text.split_once('\n').map_or("", |(_, b)| b);
            let file: Arc<Path> = self
                .ds
                .flag_raw(fname, "filename", false)
                .map(|f| Arc::from(Path::new(&*f)))
                .unwrap_or_else(|| Arc::from(Path::new("<anonymous>")));
            let lineno: u32 = self
                .ds
                .flag_raw(fname, "lineno", false)
                .and_then(|l| l.parse().ok())
                .unwrap_or(0);
            if python_host().is_some_and(|h| !h.fast_path()) {
                match self.run_anon_in_host(fname, body, &file, lineno) {
                    ControlFlow::Break(skip) => return skip,
                    ControlFlow::Continue(()) => continue,
                }
            }
            let compiled = pyexpr::compile_cached(body);
            let func = match &*compiled {
                Ok(f) => f,
                Err(_) if python_host().is_some() => {
                    match self.run_anon_in_host(fname, body, &file, lineno) {
                        ControlFlow::Break(skip) => return skip,
                        ControlFlow::Continue(()) => continue,
                    }
                }
                Err(ce) => {
                    self.diag(
                        Severity::Note,
                        &file,
                        lineno + ce.line,
                        format!("{NOT_RUN}: bitzel cannot read it ({})", ce.message),
                    );
                    continue;
                }
            };
            self.ds.begin_transaction();
            let ctx = AnonCtx::new(&mut self.ds, file.clone(), lineno);
            let result = func.run(&ctx);
            let AnonCtx {
                logs, expand_error, ..
            } = ctx;
            let unsupported = |this: &mut Self, line: u32, what: &str| {
                this.diag(
                    Severity::Note,
                    &file,
                    line,
                    format!(
                        "{NOT_RUN}: {what} (nothing it did is kept; values it would set are missing)"
                    ),
                );
            };
            match result {
                // CPython is the reference: a function the subset could not
                // run to its end (outside the subset, or a name it cannot see
                // such as a `def`) runs again there from the start.
                Err(_) if python_host().is_some() => {
                    self.ds.rollback();
                    match self.run_anon_in_host(fname, body, &file, lineno) {
                        ControlFlow::Break(skip) => return skip,
                        ControlFlow::Continue(()) => continue,
                    }
                }
                Err((l, e)) if e.is_unsupported() => {
                    self.ds.rollback();
                    let what = e.message.trim_start_matches(pyexpr::UNSUPPORTED);
                    unsupported(
                        self,
                        lineno + l,
                        &format!(
                            "line {} uses {what}, which bitzel's Python subset does not support",
                            lineno + l
                        ),
                    );
                    continue;
                }
                _ if expand_error.borrow().is_some() => {
                    self.ds.rollback();
                    let msg = expand_error
                        .borrow()
                        .as_ref()
                        .map(|e| e.to_string())
                        .unwrap_or_default();
                    unsupported(
                        self,
                        lineno,
                        &format!("a value it read did not expand ({msg})"),
                    );
                    continue;
                }
                _ => {}
            }
            self.emit_logs(&file, lineno, logs.into_inner());
            match result {
                Ok(outcome) => {
                    self.ds.commit();
                    if let FuncOutcome::Skip { reason, .. } = outcome {
                        return Some(reason);
                    }
                }
                Err((l, e)) => {
                    // BitBake fails the recipe; keep nothing half-done.
                    self.ds.rollback();
                    let msg = match e.message.strip_prefix(pyexpr::FATAL) {
                        Some(m) => format!("bb.fatal in anonymous python function: {m}"),
                        None => format!("anonymous python function failed: {}", e.message),
                    };
                    self.error(&file, lineno + l, msg);
                    return None;
                }
            }
        }
        None
    }

    /// Run one anonymous function through the installed Python host (the
    /// reference for everything the subset does not cover). `Break`
    /// carries what `run_anon_funcs` returns when the remaining functions
    /// must not run (a skip, or an error).
    fn run_anon_in_host(
        &mut self,
        fname: &str,
        body: &str,
        file: &Arc<Path>,
        lineno: u32,
    ) -> ControlFlow<Option<String>> {
        // The body starts on the line after `python () {`.
        self.in_host(file, lineno, "anonymous python function", |host, ctx| {
            host.run_anonymous(fname, body, file, lineno + 1, ctx)
        })
    }

    /// Run `f` with the Python host as a transaction on the datastore: an
    /// exception keeps nothing it did and is an error of `what` at the
    /// metadata line Python names; a skip is `Break(Some(reason))`.
    fn in_host(
        &mut self,
        file: &Arc<Path>,
        lineno: u32,
        what: &str,
        f: impl FnOnce(&dyn PythonHost, &dyn PyContext) -> Result<PyRun, PyFailure>,
    ) -> ControlFlow<Option<String>> {
        let Some(host) = python_host() else {
            return ControlFlow::Continue(());
        };
        self.ds.begin_transaction();
        let ctx = AnonCtx::inheriting(&mut self.ds, file.clone(), lineno);
        let result = f(host.as_ref(), &ctx);
        let AnonCtx {
            logs,
            expand_error,
            inherits,
            marks,
            ..
        } = ctx;
        let marks = marks.map(RefCell::into_inner).unwrap_or_default();
        self.emit_logs(file, lineno, logs.into_inner());
        if let Some(e) = expand_error.into_inner() {
            self.ds.rollback();
            self.error(
                file,
                lineno,
                format!("{what} failed: a value it read did not expand ({e})"),
            );
            return ControlFlow::Break(None);
        }
        match result {
            Ok(PyRun::Done) => {
                self.ds.commit();
                marks.iter().for_each(|m| self.mark_dependency(m));
                // BitBake's inherit parses the class at the call; bitzel's
                // parser does it when the call returns (what the call read
                // after inheriting does not see the class yet).
                for (classes, at, line) in inherits.map(RefCell::into_inner).unwrap_or_default() {
                    self.inherit(&classes, &at, line, false);
                }
                ControlFlow::Continue(())
            }
            Ok(PyRun::Skip(reason)) => {
                self.ds.commit();
                marks.iter().for_each(|m| self.mark_dependency(m));
                ControlFlow::Break(Some(reason))
            }
            Err(f) => {
                self.ds.rollback();
                self.error(
                    f.file.as_deref().unwrap_or(file),
                    f.line.unwrap_or(lineno),
                    format!("{what} failed: {}", f.message),
                );
                ControlFlow::Break(None)
            }
        }
    }

    /// BitBake's `ast.finalize` for one datastore: deferred inherits,
    /// `RecipePreFinalise`, key expansion, `RecipePostKeyExpansion`, the
    /// anonymous functions, `RecipeTaskPreProcess`, `RecipeParsed` (events
    /// only with a Python host). Returns the skip reason, if any; an error
    /// stops the remaining steps as in BitBake.
    pub(crate) fn finalize(&mut self, file: &Arc<Path>) -> Option<String> {
        self.run_deferred();
        let f = Some(&**file);
        if let ControlFlow::Break(b) = self.fire_event("RecipePreFinalise", f, None) {
            return b;
        }
        self.expand_keys(file);
        if let ControlFlow::Break(b) = self.fire_event("RecipePostKeyExpansion", f, None) {
            return b;
        }
        let errors = self.diags.iter().filter(|d| d.is_error()).count();
        if let Some(skip) = self.run_anon_funcs() {
            return Some(skip);
        }
        if self.diags.iter().filter(|d| d.is_error()).count() > errors {
            return None;
        }
        let tasks = self.ds.tasks();
        if let ControlFlow::Break(b) = self.fire_event("RecipeTaskPreProcess", f, Some(&tasks)) {
            return b;
        }
        self.set_final_vars(file);
        match self.fire_event("RecipeParsed", f, None) {
            ControlFlow::Break(b) => b,
            ControlFlow::Continue(()) => None,
        }
    }

    /// `bb.build.add_tasks` (`_task_deps`) and `BBINCLUDED`, as BitBake's
    /// finalisation sets them before `RecipeParsed`.
    fn set_final_vars(&mut self, file: &Arc<Path>) {
        let h = |op: &'static str, v: &Arc<str>| {
            Some(HistoryEntry {
                file: file.clone(),
                line: 0,
                op: Cow::Borrowed(op),
                flag: None,
                detail: v.clone(),
            })
        };
        match crate::finalvars::task_deps(&self.ds, &self.ds.tasks()) {
            Ok(v) => {
                let v: Arc<str> = Arc::from(v);
                self.ds
                    .set_var("_task_deps", v.clone(), h("set (add_tasks)", &v));
            }
            Err(e) => self.expand_error(file, 0, &e),
        }
        let files = crate::finalvars::marked_files(&self.inputs, self.env.cwd());
        let v: Arc<str> = Arc::from(crate::finalvars::bbincluded(&self.ds, &files));
        self.ds
            .set_var("BBINCLUDED", v.clone(), h("set (finalize)", &v));
    }

    /// Fire `ConfigParsed` to the base configuration's handlers. True when
    /// a handler set `BB_INVALIDCONF` to Python's `True` (BitBake tests
    /// `is True`): it changed configuration files and asks for a re-parse.
    pub(crate) fn config_parsed(&mut self) -> bool {
        if self.fire_event("ConfigParsed", None, None).is_break() {
            return false;
        }
        self.ds
            .get_var_unexpanded("BB_INVALIDCONF")
            .is_some_and(|v| v.strip_prefix(crate::python::PY_LITERAL) == Some("True"))
    }

    /// Fire `bb.event.<class>` to the datastore's handlers (`__BBHANDLERS`,
    /// in order) through the Python host; nothing without one. Returns the
    /// skip reason when a handler raised `SkipRecipe`; an exception is an
    /// error of the recipe and also stops its finalisation (`Break(None)`).
    pub(crate) fn fire_event(
        &mut self,
        class: &str,
        file: Option<&Path>,
        tasks: Option<&[String]>,
    ) -> ControlFlow<Option<String>> {
        if python_host().is_none() {
            return ControlFlow::Continue(());
        }
        let handlers = self.handlers();
        if handlers.is_empty() {
            return ControlFlow::Continue(());
        }
        let at: Arc<Path> = Arc::from(file.unwrap_or(Path::new("[event handlers]")));
        let event = PyEvent { class, file, tasks };
        let what = format!("event handler for {class}");
        self.in_host(&at, 0, &what, |host, ctx| host.fire(&event, &handlers, ctx))
    }

    /// The handlers of `__BBHANDLERS`, with their bodies and event masks.
    fn handlers(&self) -> Vec<PyHandler> {
        let Some(names) = self.ds.content_parsing("__BBHANDLERS") else {
            return Vec::new();
        };
        names
            .split_whitespace()
            .filter_map(|name| {
                let body = self.ds.content_parsing(name)?;
                let file = self
                    .ds
                    .flag_raw(name, "filename", false)
                    .map(|f| std::path::PathBuf::from(&*f))
                    .unwrap_or_else(|| "<handler>".into());
                let line = self
                    .ds
                    .flag_raw(name, "lineno", false)
                    .and_then(|l| l.parse::<u32>().ok())
                    .unwrap_or(0);
                let mask = self
                    .ds
                    .try_get_flag(name, "eventmask")
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                Some(PyHandler {
                    name: name.to_string(),
                    body: body.to_string(),
                    file,
                    line: line + 1,
                    mask: mask.split_whitespace().map(str::to_string).collect(),
                })
            })
            .collect()
    }

    fn emit_logs(&mut self, file: &Arc<Path>, lineno: u32, logs: Vec<(LogLevel, String)>) {
        for (level, msg) in logs {
            let sev = match level {
                LogLevel::Debug => {
                    tracing::debug!(file = %file.display(), msg, "bb.debug");
                    continue;
                }
                LogLevel::Note | LogLevel::Plain => Severity::Note,
                LogLevel::Warn => Severity::Warning,
                LogLevel::Error => Severity::Error,
            };
            self.diag(sev, file, lineno, msg);
        }
    }
}

/// Run `f` with `ds` as a writable [`PyContext`] (what Python code sees as
/// `d`), its changes recorded in history at `file`:`line`. Messages logged
/// through it (`bb.note`, ...) are returned with `f`'s result.
pub fn with_data_context<T>(
    ds: &mut DataStore,
    file: &Path,
    line: u32,
    f: impl FnOnce(&dyn PyContext) -> T,
) -> (T, Vec<(LogLevel, String)>) {
    let ctx = AnonCtx::new(ds, Arc::from(file), line);
    let r = f(&ctx);
    (r, ctx.logs.into_inner())
}
