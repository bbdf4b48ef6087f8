//! Statement evaluation: applies parsed statements to a datastore, following
//! include/require/inherit through `BBPATH` (manual: "Sharing
//! Functionality": `include`, `require`, `inherit`, `INHERIT`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::data::{DataStore, ExpandError, HistoryEntry};
use crate::diag::{Diagnostic, Severity};
use crate::parse::{self, AssignOp, Ast, IncludeKind, Mode, Stmt, StmtKind};
use crate::python::PY_ONE;
use crate::Loader;

/// Shared, thread-safe state for one workspace load: the loader and every
/// file parsed so far (each file is parsed once and its AST shared).
pub(crate) struct Env<'a> {
    pub(crate) loader: &'a dyn Loader,
    asts: Mutex<HashMap<PathBuf, Option<Arc<Ast>>>>,
    /// The directory BitBake's process would run in: relative (and empty)
    /// `BBPATH` entries are relative to it (`bb.utils.which`).
    cwd: Option<PathBuf>,
}

/// Why a file could not be loaded.
pub(crate) enum LoadError {
    Io(std::io::Error),
}

impl<'a> Env<'a> {
    /// Files from `loader`; relative `BBPATH` entries are relative to
    /// this process's current directory (`bb.parse.handle` in a process).
    pub(crate) fn new(loader: &'a dyn Loader) -> Env<'a> {
        Env {
            loader,
            asts: Mutex::new(HashMap::new()),
            cwd: std::env::current_dir().ok(),
        }
    }

    /// The directory relative paths are relative to.
    pub(crate) fn cwd(&self) -> Option<&Path> {
        self.cwd.as_deref()
    }

    /// Files from `loader`; relative `BBPATH` entries are relative to
    /// `dir` (a build's `TOPDIR`, where BitBake runs).
    pub(crate) fn in_dir(loader: &'a dyn Loader, dir: &Path) -> Env<'a> {
        Env {
            cwd: Some(dir.to_path_buf()),
            ..Env::new(loader)
        }
    }

    /// The parsed file, `Ok(None)` if it does not exist.
    pub(crate) fn load(&self, path: &Path) -> Result<Option<Arc<Ast>>, LoadError> {
        if let Ok(g) = self.asts.lock() {
            if let Some(a) = g.get(path) {
                return Ok(a.clone());
            }
        }
        let parsed = match self.loader.read(path) {
            Ok(Some(text)) => Some(Arc::new(parse::parse(path, &text, Mode::for_path(path)))),
            Ok(None) => None,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) if self.loader.is_dir(path) => {
                tracing::debug!(path = %path.display(), error = %e, "directory where a file was expected");
                None
            }
            Err(e) => return Err(LoadError::Io(e)),
        };
        if let Ok(mut g) = self.asts.lock() {
            g.insert(path.to_path_buf(), parsed.clone());
        }
        Ok(parsed)
    }

    /// Forget every file read so far, so the next load reads it again (the
    /// configuration re-parse that `BB_INVALIDCONF` asks for).
    pub(crate) fn forget_files(&self) {
        if let Ok(mut g) = self.asts.lock() {
            g.clear();
        }
    }

    /// Register in-memory text for a path (generated configuration).
    pub(crate) fn preload(&self, path: &Path, text: &str) {
        let ast = Arc::new(parse::parse(path, text, Mode::for_path(path)));
        if let Ok(mut g) = self.asts.lock() {
            g.insert(path.to_path_buf(), Some(ast));
        }
    }
}

/// A file that fed a datastore: its path and the digest of its content
/// (`None` when it was looked for and not found).
pub(crate) type Input = (PathBuf, Option<[u8; 32]>);

/// Evaluation state for one datastore being built.
#[derive(Clone)]
pub(crate) struct Eval<'e> {
    pub(crate) env: &'e Env<'e>,
    pub(crate) ds: DataStore,
    pub(crate) diags: Vec<Diagnostic>,
    pub(crate) inputs: Vec<Input>,
    /// `global` while parsing the configuration, `recipe` for recipes.
    pub(crate) classtype: &'static str,
    /// `inherit_defer` entries: (classes, file, line).
    pub(crate) deferred: Vec<(Arc<str>, Arc<Path>, u32)>,
    depth: u32,
}

fn hist(file: &Arc<Path>, line: u32, op: &'static str, detail: Arc<str>) -> Option<HistoryEntry> {
    Some(HistoryEntry {
        file: file.clone(),
        line,
        op: Cow::Borrowed(op),
        flag: None,
        detail,
    })
}

const MAX_DEPTH: u32 = 64;

/// BitBake's logger for `bb.warn` and friends.
const BB_WARN: &str = "BitBake";
/// BitBake's parser logger (`bb.parse.logger`).
const BB_PARSING: &str = "BitBake.Parsing";

impl<'e> Eval<'e> {
    pub(crate) fn new(env: &'e Env<'e>, ds: DataStore, classtype: &'static str) -> Eval<'e> {
        Eval {
            env,
            ds,
            diags: Vec::new(),
            inputs: Vec::new(),
            classtype,
            deferred: Vec::new(),
            depth: 0,
        }
    }

    pub(crate) fn error(&mut self, file: &Path, line: u32, message: impl Into<String>) {
        self.diag(Severity::Error, file, line, message);
    }

    pub(crate) fn diag(
        &mut self,
        sev: Severity,
        file: &Path,
        line: u32,
        message: impl Into<String>,
    ) {
        // Notes repeat for every recipe using a class: skip re-reading the
        // file for their snippet.
        let src = if sev == Severity::Note {
            None
        } else {
            self.source_line(file, line)
        };
        self.diags.push(Diagnostic::new(
            sev,
            file,
            line,
            if line > 0 { 1 } else { 0 },
            message,
            src.as_deref(),
        ));
    }

    /// A warning BitBake's parser logs itself, to the logger `logger`.
    pub(crate) fn warn_logged(
        &mut self,
        logger: &'static str,
        file: &Path,
        line: u32,
        message: impl Into<String>,
    ) {
        self.diag(Severity::Warning, file, line, message);
        if let Some(d) = self.diags.pop() {
            self.diags.push(d.logged_as(logger));
        }
    }

    fn source_line(&self, file: &Path, line: u32) -> Option<String> {
        if line == 0 {
            return None;
        }
        let text = self.env.loader.read(file).ok().flatten()?;
        text.split('\n')
            .nth(line as usize - 1)
            .map(|s| s.trim_end().to_string())
    }

    /// Report an expansion failure at the statement that triggered it.
    pub(crate) fn expand_error(&mut self, file: &Path, line: u32, e: &ExpandError) {
        match e {
            ExpandError::Python {
                file: Some(f),
                line: l,
                ..
            } if (&**f != file || *l != line) && *l > 0 => {
                let f = f.clone();
                let l = *l;
                self.error(&f, l, e.to_string());
            }
            _ => self.error(file, line, e.to_string()),
        }
    }

    fn expand_at(&mut self, s: &str, var: Option<&str>, file: &Path, line: u32) -> Option<String> {
        if !s.contains("${") {
            return Some(s.to_string());
        }
        match self.ds.expand_named(s, var) {
            Ok(v) => Some(v),
            Err(e) => {
                self.expand_error(file, line, &e);
                None
            }
        }
    }

    /// Parse and evaluate the file at `path` (BitBake's `bb.parse.handle`
    /// with `include` set). Returns false when it does not exist.
    pub(crate) fn eval_file(&mut self, path: &Path) -> Result<bool, std::io::Error> {
        let ast = match self.env.load(path) {
            Ok(Some(a)) => a,
            Ok(None) => {
                self.inputs.push((path.to_path_buf(), None));
                return Ok(false);
            }
            Err(LoadError::Io(e)) => return Err(e),
        };
        self.inputs.push((path.to_path_buf(), Some(ast.digest)));
        self.eval_ast(&ast);
        Ok(true)
    }

    /// Evaluate an already parsed file, managing `FILE` as BitBake does.
    pub(crate) fn eval_ast(&mut self, ast: &Arc<Ast>) {
        if self.depth >= MAX_DEPTH {
            let f = ast.file.clone();
            self.error(
                &f,
                0,
                format!(
                    "include/inherit nesting deeper than {MAX_DEPTH}: is a file including itself?"
                ),
            );
            return;
        }
        self.depth += 1;
        self.diags.extend(ast.diagnostics.iter().cloned());
        let is_class = ast.file.extension().is_some_and(|e| e == "bbclass");
        let file_str: Arc<str> = Arc::from(ast.file.to_string_lossy().as_ref());
        let oldfile = self.ds.content_parsing("FILE");
        let set_file = !is_class && oldfile.as_deref() != Some(&*file_str);
        if set_file {
            self.ds.set_var("FILE", file_str.clone(), None);
        }
        for stmt in &ast.stmts {
            self.stmt(&ast.file, stmt);
        }
        // BitBake's BBHandler restores the previous FILE only for included
        // files: a recipe parsed at top level keeps FILE = the recipe.
        let top_recipe = self.depth == 1 && ast.file.extension().is_some_and(|e| e == "bb");
        if set_file && !top_recipe {
            if let Some(old) = oldfile {
                self.ds.set_var("FILE", old, None);
            }
        }
        self.depth -= 1;
    }

    fn stmt(&mut self, file: &Arc<Path>, stmt: &Stmt) {
        let line = stmt.line;
        match &stmt.kind {
            StmtKind::Assign {
                export,
                var,
                flag,
                op,
                value,
            } => self.assign(file, line, *export, var, flag.as_deref(), *op, value),
            StmtKind::Export { var } => {
                self.ds.set_var_flag(
                    var,
                    "export",
                    Arc::from(PY_ONE),
                    hist(file, line, "exported", Arc::from("1")),
                );
            }
            StmtKind::Unset { var, flag: None } => {
                self.ds.del_var(var, hist(file, line, "del", Arc::from("")));
            }
            StmtKind::Unset { var, flag: Some(f) } => {
                self.ds
                    .del_var_flag(var, f, hist(file, line, "delFlag", Arc::from("")));
            }
            StmtKind::Include { kind, what } => self.include(file, line, *kind, what),
            StmtKind::Inherit { classes, defer } => {
                if *defer {
                    self.deferred.push((classes.clone(), file.clone(), line));
                } else {
                    self.inherit(classes, file, line, false);
                }
            }
            StmtKind::AddTask {
                tasks,
                after,
                before,
                text,
            } => self.addtask_stmt(file, line, tasks, (after, before), text),
            StmtKind::DelTask { tasks } => {
                // As BitBake's DelTaskNode: the list is expanded first
                // (`deltask ${MYVAR}`), an empty expansion deletes nothing.
                let text = tasks.iter().map(|t| &**t).collect::<Vec<_>>().join(" ");
                let expanded = match self.ds.expand(&text) {
                    Ok(v) => v,
                    Err(e) => {
                        self.expand_error(file, line, &e);
                        return;
                    }
                };
                for t in expanded.split_whitespace() {
                    self.deltask(file, line, t);
                }
            }
            StmtKind::AddHandler { names } => {
                for n in names {
                    let cur = self
                        .ds
                        .content_parsing("__BBHANDLERS")
                        .unwrap_or_else(|| Arc::from(""));
                    if !cur.split_whitespace().any(|x| x == &**n) {
                        let v = if cur.is_empty() {
                            n.to_string()
                        } else {
                            format!("{cur} {n}")
                        };
                        self.ds.set_var("__BBHANDLERS", Arc::from(v), None);
                    }
                    self.ds.set_var_flag(n, "handler", Arc::from(PY_ONE), None);
                }
            }
            StmtKind::ExportFunctions { funcs, classname } => {
                self.export_functions(file, line, funcs, classname)
            }
            StmtKind::Func {
                name,
                python,
                fakeroot,
                body,
            } => self.func(file, line, name.as_deref(), *python, *fakeroot, body),
            StmtKind::PyDef { name, text } => {
                let h = hist(file, line, "set", text.clone());
                self.ds.set_var_flag(name, "func", Arc::from(PY_ONE), None);
                self.ds
                    .set_var_flag(name, "python", Arc::from(PY_ONE), None);
                self.ds.set_var(name, text.clone(), h);
                self.ds.set_var_flag(
                    name,
                    "filename",
                    Arc::from(file.to_string_lossy().as_ref()),
                    None,
                );
                self.ds
                    .set_var_flag(name, "lineno", Arc::from(line.to_string()), None);
                if let Some(host) = crate::python::python_host() {
                    if let Err(f) = host.define(text, file, line) {
                        self.error(file, f.line.unwrap_or(line), f.message);
                    }
                }
            }
            StmtKind::AddPyLib { dir, namespace } => self.add_pylib(file, line, dir, namespace),
        }
    }

    /// `addpylib`: recorded in [`crate::ADDPYLIB_VAR`] for Python tasks
    /// (bitzel-exec mounts the directory and imports the namespace as
    /// BitBake's PyLibNode does) and handed to the Python host for parse-time
    /// Python; without a host it only matters to metadata that needs CPython,
    /// which reports its own error. `LAYERDIR` is only set while the layer's
    /// conf is read, so the directory is expanded now.
    fn add_pylib(&mut self, file: &Arc<Path>, line: u32, dir: &str, namespace: &str) {
        let Some(dir) = self.expand_at(dir, None, file, line) else {
            return;
        };
        let cur = self
            .ds
            .content_parsing(crate::ADDPYLIB_VAR)
            .unwrap_or_else(|| Arc::from(""));
        let entry = format!("{namespace} {dir}");
        if !cur.lines().any(|l| l == entry) {
            let v = if cur.is_empty() {
                entry
            } else {
                format!("{cur}\n{entry}")
            };
            self.ds.set_var(crate::ADDPYLIB_VAR, Arc::from(v), None);
        }
        let Some(host) = crate::python::python_host() else {
            return;
        };
        let ctx = crate::anon::AnonCtx::new(&mut self.ds, file.clone(), line);
        let r = host.add_pylib(Path::new(&dir), namespace, &ctx);
        drop(ctx);
        if let Err(f) = r {
            self.error(
                file,
                line,
                format!("addpylib {dir} {namespace}: {}", f.message),
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn assign(
        &mut self,
        file: &Arc<Path>,
        line: u32,
        export: bool,
        var: &Arc<str>,
        flag: Option<&str>,
        op: AssignOp,
        value: &Arc<str>,
    ) {
        if export {
            self.ds.set_var_flag(
                var,
                "export",
                Arc::from(PY_ONE),
                hist(file, line, "exported", Arc::from("1")),
            );
        }
        let current = || match flag {
            Some(f) => self.ds.flag_raw(var, f, false),
            None => self.ds.content_parsing(var),
        };
        let val: Arc<str> = match op {
            AssignOp::Set | AssignOp::WeakDefault => value.clone(),
            AssignOp::Default => current().unwrap_or_else(|| value.clone()),
            AssignOp::Immediate => {
                let name = format!("{var}[:=]");
                match self.expand_at(value, Some(&name), file, line) {
                    Some(v) => Arc::from(v),
                    None => return,
                }
            }
            AssignOp::Append => {
                Arc::from(format!("{} {}", current().as_deref().unwrap_or(""), value))
            }
            AssignOp::Prepend => {
                Arc::from(format!("{} {}", value, current().as_deref().unwrap_or("")))
            }
            AssignOp::AppendNoSpace => {
                Arc::from(format!("{}{}", current().as_deref().unwrap_or(""), value))
            }
            AssignOp::PrependNoSpace => {
                Arc::from(format!("{}{}", value, current().as_deref().unwrap_or("")))
            }
        };
        if matches!(
            op,
            AssignOp::Append
                | AssignOp::Prepend
                | AssignOp::AppendNoSpace
                | AssignOp::PrependNoSpace
                | AssignOp::Default
        ) && (var.contains(":append") || var.contains(":prepend") || var.contains(":remove"))
        {
            self.warn_logged(
                BB_WARN,
                file,
                line,
                format!(
                    "{var} {} is not a recommended operator combination, please replace it",
                    op.as_str()
                ),
            );
        }
        let h = hist(file, line, op.history_name(), value.clone());
        let flagname: Option<String> = match (flag, op) {
            (Some(f), AssignOp::WeakDefault) => Some(format!("_defaultval_flag_{f}")),
            (Some(f), _) => Some(f.to_string()),
            (None, AssignOp::WeakDefault) => Some("_defaultval".to_string()),
            (None, _) => None,
        };
        match flagname {
            Some(f) => self.ds.set_var_flag(var, &f, val, h),
            None => self.ds.set_var(var, val, h),
        }
    }

    /// `BBPATH`'s entries as `bb.utils.which` reads them: split on `:`,
    /// empty entries kept (an unset or empty `BBPATH` is one empty entry,
    /// which [`Self::which`] takes as the current directory).
    fn bbpath(&self) -> Vec<String> {
        let bbpath = self.ds.get_var("BBPATH").unwrap_or_default();
        bbpath.split(':').map(str::to_string).collect()
    }

    /// `bb.parse.mark_dependency(d, file)` from Python: `file` (made
    /// absolute when it starts with `./`, as BitBake does) is recorded as
    /// an input with its content's digest, as a file parsed is.
    pub(crate) fn mark_dependency(&mut self, file: &Path) {
        let path = match (file.strip_prefix("./"), &self.env.cwd) {
            (Ok(rest), Some(cwd)) => cwd.join(rest),
            _ => file.to_path_buf(),
        };
        let digest = match self.env.loader.read(&path) {
            Ok(Some(text)) => Some(*blake3::hash(text.as_bytes()).as_bytes()),
            _ => None,
        };
        self.inputs.push((path, digest));
    }

    /// `bb.utils.which(path, item)`: the first `dir/item` that exists. A
    /// relative (or empty) `dir` is relative to the current directory
    /// ([`Env::in_dir`]) and candidates are made absolute
    /// (`os.path.abspath`, as `which` does with the one it returns). Every
    /// candidate looked at is recorded as an input.
    pub(crate) fn which(&mut self, dirs: &[String], item: &str) -> Option<PathBuf> {
        for d in dirs {
            let cand = Path::new(d).join(item);
            let cand = match &self.env.cwd {
                Some(cwd) if !cand.is_absolute() => PathBuf::from(
                    crate::pyexpr::bbfuncs::normpath(&cwd.join(&cand).to_string_lossy()),
                ),
                _ => cand,
            };
            match self.env.load(&cand) {
                Ok(Some(_)) => return Some(cand),
                Ok(None) => self.inputs.push((cand, None)),
                Err(_) => return Some(cand),
            }
        }
        None
    }

    fn include(&mut self, file: &Arc<Path>, line: u32, kind: IncludeKind, what: &str) {
        let Some(names) = self.expand_at(what, None, file, line) else {
            return;
        };
        match kind {
            IncludeKind::IncludeAll => {
                for dir in self.bbpath().into_iter().filter(|d| !d.is_empty()) {
                    let p = Path::new(&dir).join(names.trim());
                    self.include_one(file, line, &p.to_string_lossy(), false);
                }
            }
            _ => {
                for name in names.split_whitespace() {
                    self.include_one(file, line, name, kind == IncludeKind::Require);
                }
            }
        }
    }

    /// BitBake's `include_single_file`.
    fn include_one(&mut self, parent: &Arc<Path>, line: u32, name: &str, required: bool) {
        if Path::new(name) == &**parent {
            return;
        }
        let mut path = PathBuf::from(name);
        if !path.is_absolute() {
            let mut dirs = vec![parent
                .parent()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default()];
            // ConfHandler formats "dir:BBPATH": an unset BBPATH is the
            // text "None" there, not the current directory.
            if self.ds.contains("BBPATH") {
                dirs.extend(self.bbpath());
            } else {
                dirs.push("None".to_string());
            }
            // Not found there, it is not found through BBPATH either (what
            // BitBake's `resolve_file` tries next): every candidate is
            // already marked.
            match self.which(&dirs, name) {
                Some(found) => path = found,
                None => path = PathBuf::new(),
            }
        }
        let read = if path.as_os_str().is_empty() {
            Ok(false)
        } else {
            self.eval_file(&path)
        };
        match read {
            Ok(true) => {}
            Ok(false) => {
                if required {
                    self.error(
                        parent,
                        line,
                        format!(
                            "could not require file {name}: not found next to {} nor in BBPATH; \
                             check the name, or use `include` if the file is optional",
                            parent.display()
                        ),
                    );
                }
            }
            Err(e) => {
                self.error(
                    parent,
                    line,
                    format!("could not read {}: {e}", path.display()),
                );
            }
        }
    }

    /// BitBake's `inherit`: classes found through BBPATH in
    /// `classes-<type>/` then `classes/`, each evaluated once.
    pub(crate) fn inherit(&mut self, classes: &str, file: &Arc<Path>, line: u32, deferred: bool) {
        let Some(names) = self.expand_at(classes, None, file, line) else {
            return;
        };
        for name in names.split_whitespace() {
            if !deferred {
                let defer = self.ds.get_var("BB_DEFER_BBCLASSES").unwrap_or_default();
                if defer.split_whitespace().any(|d| d == name) {
                    self.deferred.push((Arc::from(name), file.clone(), line));
                    continue;
                }
            }
            let mut found = None;
            let dirs = self.bbpath();
            for t in [format!("classes-{}", self.classtype), "classes".to_string()] {
                let cand = if Path::new(name).is_absolute() || name.ends_with(".bbclass") {
                    name.to_string()
                } else {
                    format!("{t}/{name}.bbclass")
                };
                if Path::new(&cand).is_absolute() {
                    if matches!(self.env.load(Path::new(&cand)), Ok(Some(_))) {
                        found = Some(PathBuf::from(&cand));
                        break;
                    }
                } else if let Some(p) = self.which(&dirs, &cand) {
                    found = Some(p);
                    break;
                }
            }
            let Some(path) = found else {
                self.error(
                    file,
                    line,
                    format!(
                        "could not inherit class `{name}`: no classes-{}/{name}.bbclass or classes/{name}.bbclass in BBPATH; \
                         check the name and that its layer is in BBLAYERS",
                        self.classtype
                    ),
                );
                continue;
            };
            let pstr = path.to_string_lossy().into_owned();
            let cache = self
                .ds
                .content_parsing("__inherit_cache")
                .unwrap_or_else(|| Arc::from(""));
            if cache.split_whitespace().any(|c| c == pstr) {
                continue;
            }
            let v = if cache.is_empty() {
                pstr.clone()
            } else {
                format!("{cache} {pstr}")
            };
            self.ds.set_var("__inherit_cache", Arc::from(v), None);
            if let Err(e) = self.eval_file(&path) {
                self.error(
                    file,
                    line,
                    format!("could not inherit {}: {e}", path.display()),
                );
            }
        }
    }

    /// Run the `inherit_defer` queue (BitBake does this at finalisation).
    pub(crate) fn run_deferred(&mut self) {
        while !self.deferred.is_empty() {
            let (classes, file, line) = self.deferred.remove(0);
            self.inherit(&classes, &file, line, true);
        }
    }

    /// `addtask`: every task named takes the `after`/`before` lists, unless
    /// the user's BitBake takes one task per `addtask`
    /// ([`crate::PythonHost::one_task_per_addtask`]). That one reads the
    /// first name then `after`/`before` lists, ignores all the rest when
    /// another word follows the name, and warns (on `bb.parse.logger`)
    /// about that and about a keyword given twice. Its treatment of a
    /// repeated keyword (only some of the lists kept, by its regexp) is not
    /// followed: bitzel keeps every list, as newer BitBake does.
    fn addtask_stmt(
        &mut self,
        file: &Arc<Path>,
        line: u32,
        tasks: &[Arc<str>],
        (after, before): (&[Arc<str>], &[Arc<str>]),
        text: &str,
    ) {
        let single = crate::python::python_host().is_some_and(|p| p.one_task_per_addtask());
        if !single {
            for t in tasks {
                self.addtask(file, line, t, after, before);
            }
            return;
        }
        let (mut after, mut before) = (after, before);
        if tasks.len() > 1 {
            let rest = text.trim();
            let ignored = &rest[rest.find(char::is_whitespace).unwrap_or(rest.len())..];
            self.warn_logged(
                BB_PARSING,
                file,
                line,
                format!("addtask ignored: \"{ignored}\""),
            );
            (after, before) = (&[], &[]);
        }
        for kw in ["before", "after"] {
            if text.split_whitespace().filter(|w| *w == kw).count() > 1 {
                self.warn_logged(
                    BB_PARSING,
                    file,
                    line,
                    format!("addtask contained multiple '{kw}' keywords, only one is supported"),
                );
            }
        }
        if let Some(t) = tasks.first() {
            self.addtask(file, line, t, after, before);
        }
    }

    fn addtask(
        &mut self,
        file: &Arc<Path>,
        line: u32,
        task: &str,
        after: &[Arc<str>],
        before: &[Arc<str>],
    ) {
        let task = if task.starts_with("do_") {
            task.to_string()
        } else {
            format!("do_{task}")
        };
        let h = |op: &'static str, d: &str| hist(file, line, op, Arc::from(d));
        let prefix = crate::python::python_host().is_some_and(|p| p.prefixes_task_deps());
        let dep = |t: &str| -> String {
            if prefix && !t.starts_with("do_") {
                format!("do_{t}")
            } else {
                t.to_string()
            }
        };
        self.ds
            .set_var_flag(&task, "task", Arc::from(PY_ONE), h("addtask", "1"));
        let tasks = self
            .ds
            .content_parsing("__BBTASKS")
            .unwrap_or_else(|| Arc::from(""));
        if !tasks.split_whitespace().any(|t| t == task) {
            let v = if tasks.is_empty() {
                task.clone()
            } else {
                format!("{tasks} {task}")
            };
            self.ds.set_var("__BBTASKS", Arc::from(v), None);
        }
        let mut deps: Vec<String> = self
            .ds
            .flag_raw(&task, "deps", false)
            .map(|v| v.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        for a in after {
            let a = dep(a);
            if !deps.contains(&a) {
                deps.push(a);
            }
        }
        let joined = deps.join(" ");
        self.ds.set_var_flag(
            &task,
            "deps",
            Arc::from(joined.as_str()),
            h("addtask", &joined),
        );
        for b in before {
            let b = dep(b);
            let b = b.as_str();
            let mut existing: Vec<String> = self
                .ds
                .flag_raw(b, "deps", false)
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default();
            if !existing.contains(&task) {
                existing.insert(0, task.clone());
                let joined = existing.join(" ");
                self.ds
                    .set_var_flag(b, "deps", Arc::from(joined.as_str()), h("addtask", &joined));
            }
        }
    }

    fn deltask(&mut self, file: &Arc<Path>, line: u32, task: &str) {
        let task = if task.starts_with("do_") {
            task.to_string()
        } else {
            format!("do_{task}")
        };
        let h = |op: &'static str| hist(file, line, op, Arc::from(""));
        let tasks = self
            .ds
            .content_parsing("__BBTASKS")
            .unwrap_or_else(|| Arc::from(""));
        if tasks.split_whitespace().any(|t| t == task) {
            let v: Vec<&str> = tasks.split_whitespace().filter(|t| *t != task).collect();
            self.ds.del_var_flag(&task, "task", h("deltask"));
            self.ds.set_var("__BBTASKS", Arc::from(v.join(" ")), None);
        }
        self.ds.del_var_flag(&task, "deps", h("deltask"));
        let remaining: Vec<String> = self
            .ds
            .content_parsing("__BBTASKS")
            .map(|v| v.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        for t in remaining {
            if let Some(deps) = self.ds.flag_raw(&t, "deps", false) {
                if deps.split_whitespace().any(|d| d == task) {
                    let v: Vec<&str> = deps.split_whitespace().filter(|d| *d != task).collect();
                    self.ds
                        .set_var_flag(&t, "deps", Arc::from(v.join(" ")), h("deltask"));
                }
            }
        }
    }

    fn func(
        &mut self,
        file: &Arc<Path>,
        line: u32,
        name: Option<&str>,
        python: bool,
        fakeroot: bool,
        body: &Arc<str>,
    ) {
        let fname: String;
        let mut python = python;
        let mut text = body.clone();
        // BitBake's MethodNode treats `python __anonymous () {}` as an
        // anonymous function too.
        match name.filter(|n| *n != "__anonymous") {
            Some(n) => fname = n.to_string(),
            None => {
                // BitBake's MethodNode names it by the line of its closing
                // `}` and its file, with `/.+-@%&~` made `_`.
                let tr: String = file
                    .to_string_lossy()
                    .chars()
                    .map(|c| if "/.+-@%&~".contains(c) { '_' } else { c })
                    .collect();
                let closing = line as usize + body.matches('\n').count() + 1;
                fname = format!("__anon_{closing}_{tr}");
                python = true;
                text = Arc::from(format!("def {fname}(d):\n{body}"));
                let cur = self
                    .ds
                    .content_parsing("__BBANONFUNCS")
                    .unwrap_or_else(|| Arc::from(""));
                let v = if cur.is_empty() {
                    fname.clone()
                } else {
                    format!("{cur} {fname}")
                };
                self.ds.set_var("__BBANONFUNCS", Arc::from(v), None);
            }
        }
        let existing = self
            .ds
            .get_var_unexpanded(&fname)
            .is_some_and(|v| !v.is_empty());
        if existing {
            self.ds.del_var_flag(&fname, "python", None);
            self.ds.del_var_flag(&fname, "fakeroot", None);
        }
        if python {
            self.ds.set_var_flag(&fname, "python", Arc::from("1"), None);
        }
        if fakeroot {
            self.ds
                .set_var_flag(&fname, "fakeroot", Arc::from("1"), None);
        }
        self.ds
            .set_var_flag(&fname, "func", Arc::from(PY_ONE), None);
        self.ds
            .set_var(&fname, text.clone(), hist(file, line, "set", text));
        self.ds.set_var_flag(
            &fname,
            "filename",
            Arc::from(file.to_string_lossy().as_ref()),
            None,
        );
        self.ds
            .set_var_flag(&fname, "lineno", Arc::from(line.to_string()), None);
    }

    /// `EXPORT_FUNCTIONS f` in class `c`: `f` becomes a stub calling `c_f`
    /// unless something already defined `f` (manual: "Flexible Inheritance
    /// for Class Functions").
    fn export_functions(
        &mut self,
        file: &Arc<Path>,
        line: u32,
        funcs: &[Arc<str>],
        classname: &str,
    ) {
        const SENTINEL: &str = "    # Export function set\n";
        for func in funcs {
            let called = format!("{classname}_{func}");
            let base = self.ds.get_var_unexpanded(func);
            if let Some(b) = &base {
                if !b.is_empty() && !b.contains(SENTINEL) {
                    continue;
                }
            }
            if base.as_deref().is_some_and(|b| !b.is_empty()) {
                self.ds.del_var_flag(func, "python", None);
                self.ds.del_var_flag(func, "func", None);
            }
            for flag in ["func", "python"] {
                if let Some(v) = self.ds.flag_raw(&called, flag, false) {
                    self.ds.set_var_flag(func, flag, v, None);
                }
            }
            for flag in ["dirs", "cleandirs", "fakeroot"] {
                if let Some(v) = self.ds.flag_raw(func, flag, false) {
                    self.ds.set_var_flag(&called, flag, v, None);
                }
            }
            self.ds
                .set_var_flag(func, "filename", Arc::from("autogenerated"), None);
            self.ds
                .set_var_flag(func, "lineno", Arc::from(PY_ONE), None);
            let is_py = self
                .ds
                .flag_raw(&called, "python", false)
                .is_some_and(|v| !v.is_empty() && &*v != "0");
            let body = if is_py {
                format!("{SENTINEL}    bb.build.exec_func('{called}', d)\n")
            } else {
                if classname.contains('-') {
                    self.error(
                        file,
                        line,
                        format!(
                            "class `{classname}` has a `-` in its name and exports the shell function {called}, \
                             which is not a valid shell name: rename the class or don't use EXPORT_FUNCTIONS"
                        ),
                    );
                    continue;
                }
                format!("{SENTINEL}    {called}\n")
            };
            let body: Arc<str> = Arc::from(body);
            self.ds.set_var(
                func,
                body.clone(),
                hist(file, line, "EXPORT_FUNCTIONS", body),
            );
        }
    }

    /// `bb.data.expandKeys`: rename every variable whose name contains
    /// `${...}` to its expanded name.
    pub(crate) fn expand_keys(&mut self, file: &Arc<Path>) {
        let mut todo: Vec<(String, String)> = Vec::new();
        for key in self.ds.keys_with_refs() {
            match self.ds.expand(&key) {
                Ok(ek) if ek != key => todo.push((key, ek)),
                Ok(_) => {}
                Err(e) => self.expand_error(file, 0, &e),
            }
        }
        todo.sort();
        for (key, ekey) in todo {
            if self.ds.content_parsing(&ekey).is_some() && self.ds.content_parsing(&key).is_some() {
                self.warn_logged(
                    BB_WARN,
                    file,
                    0,
                    format!("variable key {key} replaces original key {ekey}"),
                );
            }
            let h = Some(HistoryEntry {
                file: file.clone(),
                line: 0,
                op: Cow::Borrowed("rename"),
                flag: None,
                detail: Arc::from(""),
            });
            self.ds.rename_var(&key, &ekey, h);
        }
    }
}
