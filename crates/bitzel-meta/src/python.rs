//! The seam to a real Python interpreter.
//!
//! bitzel-meta runs no interpreter itself: `${@...}` expressions and
//! anonymous functions go through the Rust subset in [`crate::pyexpr`]
//! first. When a [`PythonHost`] is installed (the binary installs
//! `bitzel-python`'s embedded CPython for metadata that needs it), whatever
//! the subset does not support is handed to it, together with the
//! datastore as a [`PyContext`] (what Python code sees as `d`): inline
//! expressions, anonymous functions, metadata `def`s (BitBake's method
//! pool) and `addpylib`. Without a host, such constructs stay errors or
//! notes that name them, as before.
//!
//! The host is process-wide, as BitBake's `bb.utils._context` is: install
//! it once, before the first parse.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use crate::pyexpr::{PyContext, PyError};

/// Python source (bitzel's own) that both of bitzel's ways of importing
/// `bb` run first — the parse's embedded interpreter and the Python-task
/// runner: its `install(prefix)` makes BitBake's shell parser keep its ply
/// grammar tables under `prefix` (a temporary directory for `None`) instead
/// of writing them into the BitBake library or the working directory (a
/// task's captured output), and its `finish()` undoes that once `bb` is
/// imported.
pub const SHELL_TABLES_PY: &str = include_str!("shell_tables.py");

/// What running a function through the host gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PyRun {
    /// It returned.
    Done,
    /// It raised `bb.parse.SkipRecipe(reason)` (BitBake's skip message).
    Skip(String),
}

/// An exception raised by metadata Python, located in the metadata.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PyFailure {
    /// The exception (`NameError: name 'x' is not defined`) and the
    /// traceback trimmed to metadata frames.
    pub message: String,
    /// The metadata file of the innermost metadata frame, when it is not
    /// the one the code was handed in from (a handler or `def` of a class).
    pub file: Option<std::path::PathBuf>,
    /// The metadata line (1-based, absolute in its file) the innermost
    /// metadata frame was at, when known.
    pub line: Option<u32>,
}

/// A Python interpreter bitzel-meta can hand metadata code to.
///
/// Every method gets the datastore as `d`; the host must not keep `d`
/// beyond the call (a stored `d` is re-bound to the datastore of the call
/// in progress). Re-entrancy is expected: `d.getVar` from Python expands
/// values, which may evaluate `${@...}` through the host again.
pub trait PythonHost: Send + Sync {
    /// Evaluate the code of a `${@...}` expression (BitBake's
    /// `python_sub`: `eval` with `d` and the datastore as a fallback for
    /// bare names) and return `str()` of the value.
    fn eval_inline(&self, code: &str, d: &dyn PyContext) -> Result<String, PyError>;
    /// Run the body of a `python () {}` (or a handler) as
    /// `def <name>(d): <body>`, its first body line at `line` of `file`.
    fn run_anonymous(
        &self,
        name: &str,
        body: &str,
        file: &Path,
        line: u32,
        d: &dyn PyContext,
    ) -> Result<PyRun, PyFailure>;
    /// Fire a BitBake event (`bb.event.<class>`, built with the recipe
    /// file and the task list where the class takes them) to `handlers`
    /// in order, each as `def <name>(e, d): <body>` with `e.data` = `d`; a
    /// handler's `eventmask` limits the classes it gets. `SkipRecipe` and
    /// exceptions stop the remaining handlers.
    fn fire(
        &self,
        event: &PyEvent<'_>,
        handlers: &[PyHandler],
        d: &dyn PyContext,
    ) -> Result<PyRun, PyFailure>;
    /// A metadata `def` (`text` is the whole definition, its `def` line at
    /// `line` of `file`): put it into the shared globals; the last
    /// definition of a name wins (BitBake's `bb.methodpool`).
    fn define(&self, text: &str, file: &Path, line: u32) -> Result<(), PyFailure>;
    /// `addpylib <dir> <namespace>`: make `dir` importable and import
    /// `namespace` (and its `BBIMPORTS`) into the shared globals, with the
    /// modules named by `BB_GLOBAL_PYMODULES` (read through `d`).
    fn add_pylib(&self, dir: &Path, namespace: &str, d: &dyn PyContext) -> Result<(), PyFailure>;
    /// Whether bitzel's Rust subset is tried first (the default). Off, the
    /// host evaluates everything: for measuring what the fast path saves.
    fn fast_path(&self) -> bool {
        true
    }
    /// Whether `addtask`'s `after`/`before` entries without `do_` get it
    /// (newer BitBake's `bb.build.addtask`), or stay as written (older
    /// ones, and bitzel without a BitBake library): the user's BitBake
    /// decides.
    fn prefixes_task_deps(&self) -> bool {
        false
    }
    /// Whether `addtask` takes one task (`addtask A after B`, older
    /// BitBake, which warns about and ignores other words after the name)
    /// rather than several (`addtask A B after C`, newer BitBake, and
    /// bitzel without a BitBake library): the user's BitBake decides.
    fn one_task_per_addtask(&self) -> bool {
        false
    }
    /// Whether the cooker sets `__BB_RECIPE_FILE` to the recipe file before
    /// parsing it (newer BitBake; the value stays the `.bb` file's path
    /// while a bbappend, include or class is read): the user's BitBake
    /// decides.
    fn sets_recipe_file(&self) -> bool {
        false
    }
    /// The name the cooker gives the default configuration in
    /// `BB_CURRENT_MC` (`default` in older BitBake, empty in newer ones),
    /// or None when the library does not say (bitzel then uses `default`):
    /// the user's BitBake decides.
    fn default_config_name(&self) -> Option<String> {
        None
    }
    /// For the parse cache: the form of a process-local object value
    /// ([`PROCESS_LOCAL`]) that a later process reads back as an equal
    /// object (its pickled state, `d` in it standing for the datastore it
    /// is read from), or None when the object cannot be kept.
    fn persist(&self, value: &str) -> Option<String> {
        let _ = value;
        None
    }
    /// `str()` of a value that stands for a Python object (a
    /// [`PROCESS_LOCAL`] value or its persisted form): what BitBake prints
    /// for such a value (`bitbake -e`, `"%s" % value`).
    fn display(&self, value: &str) -> Result<String, PyFailure> {
        let _ = value;
        Err(PyFailure {
            message: "this Python host cannot show Python object values".to_string(),
            file: None,
            line: None,
        })
    }
    /// For the parse cache: the modules of `bb` and the `addpylib`
    /// libraries imported so far. Python that a cached recipe runs later
    /// may rely on a submodule imported while it was parsed.
    fn loaded_modules(&self) -> Vec<String> {
        Vec::new()
    }
    /// Import `modules` (a cache entry's [`PythonHost::loaded_modules`])
    /// before Python next runs.
    fn require_modules(&self, modules: &[String]) {
        let _ = modules;
    }
    /// A digest of every Python library the host imports code from
    /// (BitBake's library, the layers' `addpylib` directories), for the
    /// parse cache's key: a change to one of them never reuses an entry.
    fn fingerprint(&self) -> [u8; 32];
}

/// An event to fire.
#[derive(Debug, Clone, Copy)]
pub struct PyEvent<'a> {
    /// The class name in `bb.event` (`RecipePreFinalise`, `ConfigParsed`).
    pub class: &'a str,
    /// The recipe file, for recipe events.
    pub file: Option<&'a Path>,
    /// The task list, for `RecipeTaskPreProcess`.
    pub tasks: Option<&'a [String]>,
}

/// An event handler (`addhandler name`): a Python function of the datastore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PyHandler {
    /// The function's name.
    pub name: String,
    /// Its body.
    pub body: String,
    /// Where it is defined.
    pub file: std::path::PathBuf,
    /// The line of its first body line.
    pub line: u32,
    /// Its `eventmask` flag (full class names); empty: every event.
    pub mask: Vec<String>,
}

/// The start of every value a host stores for a Python value that is not a
/// string: a literal ([`PY_LITERAL`]), an object of this process
/// ([`PROCESS_LOCAL`]) or the persisted form of one.
pub const PY_MARK: &str = "\0bitzel-py:";

/// The start of a value a host stores for a Python object that exists in
/// this process only (a `ClassExtender`, a datastore): the parse cache
/// keeps a datastore holding one only in the form [`PythonHost::persist`]
/// gives.
pub const PROCESS_LOCAL: &str = "\0bitzel-py:obj:";

/// The start of a value a host stores for a Python literal (`None`, a bool,
/// a number, a tuple, list, dict or set of literals): the rest is its
/// `repr`, which for these types is also its `str`.
pub const PY_LITERAL: &str = "\0bitzel-py:lit:";

/// The Python integer `1` as the datastore keeps it: BitBake's parser sets
/// the `export`, `func` and `handler` flags (and `task`, `python` of a
/// `def`, `lineno` of an `EXPORT_FUNCTIONS` stub) to the int `1`, not the
/// text `"1"`.
pub const PY_ONE: &str = "\0bitzel-py:lit:1";

/// A stored value as Python's `str()` shows it: a literal's text without
/// the [`PY_LITERAL`] mark (its `repr`, which is its `str`).
pub fn py_str(value: &str) -> &str {
    value.strip_prefix(PY_LITERAL).unwrap_or(value)
}

static HOST: OnceLock<Arc<dyn PythonHost>> = OnceLock::new();

/// Install the process-wide host. Returns false (and changes nothing) when
/// one is already installed.
pub fn install_python_host(host: Arc<dyn PythonHost>) -> bool {
    HOST.set(host).is_ok()
}

/// The installed host, if any.
pub fn python_host() -> Option<&'static Arc<dyn PythonHost>> {
    HOST.get()
}
