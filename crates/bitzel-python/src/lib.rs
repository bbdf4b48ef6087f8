//! bitzel-python: the metadata's own Python, run in embedded CPython.
//!
//! [`CPython`] implements bitzel-meta's [`PythonHost`]: `${@...}` the Rust
//! subset does not cover, anonymous functions, metadata `def`s and
//! `addpylib` run in the host's Python 3 (the interpreter at
//! `/usr/bin/python3`, linked through pyo3), with `bb` imported from the
//! user's own BitBake library and `d` backed by bitzel's Rust datastore.
//! Values come from bitzel's parser and datastore; BitBake's parser and
//! `DataSmart` are never used to produce them.
//!
//! Layer Python runs unsandboxed, as in BitBake.

#![deny(missing_docs)]

mod core;

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bitzel_meta::pyexpr::{PyContext, PyError};
use bitzel_meta::{PyEvent, PyFailure, PyHandler, PyRun, PythonHost};
use pyo3::prelude::*;
use pyo3::types::PyModule;

/// Why the interpreter could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PythonError {
    /// Importing `bb` (or bitzel's bootstrap) from the BitBake library failed.
    #[error("cannot import BitBake's Python library from {}: {message}; check that it is the `lib` directory of a BitBake checkout that works with {}", dir.display(), python)]
    Import {
        /// The BitBake library directory.
        dir: PathBuf,
        /// Python's error with its traceback.
        message: String,
        /// The interpreter's version.
        python: String,
    },
}

/// Calls into CPython and the wall time they took (including the Rust
/// datastore work Python asked for, and waiting for the GIL).
#[derive(Debug, Default)]
pub struct Stats {
    /// `${@...}` evaluations.
    pub inline: Counter,
    /// Anonymous functions.
    pub anonymous: Counter,
    /// Event firings (each may run several handlers).
    pub events: Counter,
    /// `def`s put into the shared globals.
    pub defs: Counter,
}

/// A number of calls and their total time.
#[derive(Debug, Default)]
pub struct Counter {
    calls: std::sync::atomic::AtomicU64,
    nanos: std::sync::atomic::AtomicU64,
}

impl Counter {
    fn time<T>(&self, f: impl FnOnce() -> T) -> T {
        let start = std::time::Instant::now();
        let r = f();
        let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.nanos
            .fetch_add(ns, std::sync::atomic::Ordering::Relaxed);
        r
    }

    /// How many calls.
    pub fn calls(&self) -> u64 {
        self.calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Their total wall time (nested calls count in both).
    pub fn total(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.nanos.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// Embedded CPython with the user's BitBake library.
pub struct CPython {
    stats: Stats,
    module: Py<PyModule>,
    d: Py<PyAny>,
    bitbake_lib: PathBuf,
    pylibs: Mutex<Vec<PathBuf>>,
    /// Modules to import before Python next runs (`require_modules`).
    pending: Mutex<Vec<String>>,
    fast_path: bool,
    /// Whether this BitBake's `bb.build.addtask` names `after`/`before`
    /// entries with `do_` when they lack it (it has `ensure_task_prefix`).
    prefixes_task_deps: bool,
    /// Whether this BitBake's parser takes one task per `addtask`.
    one_task_per_addtask: bool,
    /// Whether this BitBake's cooker sets `__BB_RECIPE_FILE`.
    sets_recipe_file: bool,
    /// This BitBake's `BB_CURRENT_MC` for the default configuration.
    default_config_name: Option<String>,
}

/// What [`CPython::run_selftest`] counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelftestFigures {
    /// Tests that passed.
    pub passed: u64,
    /// Tests that failed, raised, were skipped or succeeded unexpectedly.
    pub failed: u64,
    /// Tests this library cannot run, with why: (test id, reason).
    pub unrunnable: Vec<(String, String)>,
}

impl std::fmt::Debug for CPython {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CPython")
            .field("bitbake_lib", &self.bitbake_lib)
            .finish_non_exhaustive()
    }
}

fn describe(py: Python<'_>, e: &PyErr) -> String {
    let tb = e
        .traceback(py)
        .and_then(|t| t.format().ok())
        .unwrap_or_default();
    format!("{tb}{e}")
}

/// The Python interpreter bitzel is built against (`PYO3_PYTHON`, which
/// `.cargo/config.toml` sets to `/usr/bin/python3`): the embedded
/// interpreter's `sys.executable`.
pub const LINKED_PYTHON: &str = match option_env!("PYO3_PYTHON") {
    Some(p) => p,
    None => "/usr/bin/python3",
};

/// Start the interpreter with a fixed hash seed (`PYTHONHASHSEED=0`): set
/// iteration order of strings then does not change between runs, so the
/// same metadata gives the same values (`' '.join(some_set)` is common in
/// layers) and a warm parse equals a cold one. Once per process; a no-op
/// when the interpreter already runs.
fn start_interpreter() -> Result<(), String> {
    use pyo3::ffi;
    // SAFETY: the documented embedding sequence (PEP 587): initialise a
    // config, set fields, initialise from it, clear it; then release the
    // GIL the initialising thread holds, as pyo3's own initialisation does,
    // so any thread can take it with `Python::with_gil`. Guarded by a Once.
    static START: std::sync::Once = std::sync::Once::new();
    let mut result = Ok(());
    START.call_once(|| unsafe {
        if ffi::Py_IsInitialized() != 0 {
            return;
        }
        let mut config = std::mem::MaybeUninit::<ffi::PyConfig>::uninit();
        ffi::PyConfig_InitPythonConfig(config.as_mut_ptr());
        let mut config = config.assume_init();
        config.use_hash_seed = 1;
        config.hash_seed = 0;
        config.install_signal_handlers = 0;
        // `sys.executable` is the interpreter bitzel links (PYO3_PYTHON),
        // not the first `python3` on PATH (bitbake.conf's
        // `PYTHON = "${@sys.executable}"`; BitBake's is the python3 it runs
        // under).
        let exe = std::ffi::CString::new(LINKED_PYTHON).unwrap_or_default();
        let status =
            ffi::PyConfig_SetBytesString(&mut config, &mut config.executable, exe.as_ptr());
        if ffi::PyStatus_Exception(status) != 0 {
            ffi::PyConfig_Clear(&mut config);
            result =
                Err("the embedded Python interpreter's executable could not be set".to_string());
            return;
        }
        let status = ffi::Py_InitializeFromConfig(&config);
        ffi::PyConfig_Clear(&mut config);
        if ffi::PyStatus_Exception(status) != 0 {
            result = Err("the embedded Python interpreter did not start".to_string());
            return;
        }
        ffi::PyEval_SaveThread();
    });
    result
}

impl CPython {
    /// Start the interpreter (once per process), put `bitbake_lib` first on
    /// `sys.path` and import `bb` from it. With `bytecode_dir`, compiled
    /// modules are kept there (`sys.pycache_prefix`, never beside the
    /// metadata's sources) and read back by the next process, even under
    /// `PYTHONDONTWRITEBYTECODE` (which keeps source trees clean; this is
    /// bitzel's own cache directory): compiling BitBake's and the layers'
    /// modules again in every process cost about 0.4 s of each poky parse.
    /// So are the LALR tables of BitBake's shell parser, which ply would
    /// otherwise write into the BitBake library
    /// ([`bitzel_meta::SHELL_TABLES_PY`];
    /// building them cost about 0.2 s of every process importing `bb`).
    /// And BitBake's code-parser cache (`bb.codeparser.parser_cache_init`
    /// on its `bitbake-codeparser`), which spares `addpylib`'s
    /// `add_module_functions` parsing every function's source again (about
    /// 0.3 s of CPU per process on poky's `oe`). Without it, nothing is
    /// written: no bytecode, tables in a temporary directory, no
    /// code-parser cache.
    pub fn new(bitbake_lib: &Path, bytecode_dir: Option<&Path>) -> Result<CPython, PythonError> {
        start_interpreter().map_err(|message| PythonError::Import {
            dir: bitbake_lib.to_path_buf(),
            message,
            python: String::new(),
        })?;
        Python::with_gil(|py| {
            let fail = |e: PyErr| PythonError::Import {
                dir: bitbake_lib.to_path_buf(),
                message: describe(py, &e),
                python: py.version().lines().next().unwrap_or("").to_string(),
            };
            let sys = py.import("sys").map_err(fail)?;
            match bytecode_dir {
                Some(dir) => sys
                    .setattr("pycache_prefix", dir.to_string_lossy().as_ref())
                    .and_then(|()| sys.setattr("dont_write_bytecode", false)),
                // Nothing is written beside the library's sources.
                None => sys.setattr("dont_write_bytecode", true),
            }
            .map_err(fail)?;
            let path = sys.getattr("path").map_err(fail)?;
            path.call_method1("insert", (0, bitbake_lib.to_string_lossy().as_ref()))
                .map_err(fail)?;
            let module_from = |code: &str, file: &std::ffi::CStr, name: &std::ffi::CStr| {
                let code = CString::new(code).map_err(|e| PythonError::Import {
                    dir: bitbake_lib.to_path_buf(),
                    message: e.to_string(),
                    python: String::new(),
                })?;
                PyModule::from_code(py, &code, file, name).map_err(fail)
            };
            // BitBake's shell parser keeps its grammar tables under the
            // bytecode directory while `bb` is imported by the bootstrap.
            let tables = module_from(
                bitzel_meta::SHELL_TABLES_PY,
                c"bitzel_shell_tables.py",
                c"bitzel_shell_tables",
            )?;
            let tables_dir = bytecode_dir.map(|d| d.to_string_lossy().into_owned());
            tables
                .getattr("install")
                .and_then(|f| f.call1((tables_dir,)))
                .map_err(fail)?;
            let module = module_from(
                include_str!("bootstrap.py"),
                c"bitzel_bootstrap.py",
                c"bitzel_bootstrap",
            );
            tables
                .getattr("finish")
                .and_then(|f| f.call0())
                .map_err(fail)?;
            let module = module?;
            let core = Py::new(py, core::Core::current()).map_err(fail)?;
            let codeparser_dir =
                bytecode_dir.map(|d| d.join("bitbake-codeparser").to_string_lossy().into_owned());
            let d = module
                .getattr("install")
                .and_then(|f| f.call1((core, bitzel_meta::PROCESS_LOCAL, codeparser_dir)))
                .map_err(fail)?;
            let probe = |name: &str| {
                module
                    .getattr(name)
                    .and_then(|f| f.call0())
                    .and_then(|v| v.is_truthy())
                    .map_err(fail)
            };
            let prefixes_task_deps = probe("prefixes_task_deps")?;
            let one_task_per_addtask = probe("one_task_per_addtask")?;
            let sets_recipe_file = probe("sets_recipe_file")?;
            let default_config_name = module
                .getattr("default_config_name")
                .and_then(|f| f.call0())
                .and_then(|v| v.extract::<Option<String>>())
                .map_err(fail)?;
            Ok(CPython {
                stats: Stats::default(),
                module: module.unbind(),
                d: d.unbind(),
                bitbake_lib: bitbake_lib.to_path_buf(),
                pylibs: Mutex::new(Vec::new()),
                pending: Mutex::new(Vec::new()),
                fast_path: true,
                prefixes_task_deps,
                one_task_per_addtask,
                sets_recipe_file,
                default_config_name,
            })
        })
    }

    /// Run BitBake's own unittest modules (`bb.tests.data`, ...) from this
    /// interpreter's BitBake library against bitzel's datastore and parser
    /// (`src/selftest.py`: `bb.data.init` and `bb.parse.handle` are
    /// bitzel's; BitBake's `DataSmart` and parser raise if called). unittest
    /// prints each module's results to stdout. Skipped tests count as
    /// failed; a failed test that read paths inside the library which the
    /// library lacks, and that fails under BitBake's own library too, is
    /// counted apart as not runnable with this library. While the tests
    /// run, a `bitbake` stand-in comes first on `PATH`: `bitbake -e
    /// [recipe]` runs `show` (argv: bitzel's `show` verb) with
    /// `--cache-dir <scratch> <current directory> [recipe]` and this
    /// library as `BITZEL_BITBAKE_LIB`.
    pub fn run_selftest(
        &self,
        modules: &[String],
        verbose: bool,
        show: &[String],
    ) -> Result<SelftestFigures, PythonError> {
        Python::with_gil(|py| {
            let fail = |e: PyErr| PythonError::Import {
                dir: self.bitbake_lib.clone(),
                message: describe(py, &e),
                python: py.version().lines().next().unwrap_or("").to_string(),
            };
            let code =
                CString::new(include_str!("selftest.py")).map_err(|e| PythonError::Import {
                    dir: self.bitbake_lib.clone(),
                    message: e.to_string(),
                    python: String::new(),
                })?;
            let selftest =
                PyModule::from_code(py, &code, c"bitzel_selftest.py", c"bitzel_selftest")
                    .map_err(fail)?;
            let core_type = py.get_type::<core::Core>();
            selftest
                .getattr("run")
                .and_then(|f| {
                    f.call1((
                        self.module.bind(py),
                        core_type,
                        modules.to_vec(),
                        verbose,
                        show.to_vec(),
                    ))
                })
                .and_then(|r| r.extract::<(u64, u64, Vec<(String, String)>)>())
                .map(|(passed, failed, unrunnable)| SelftestFigures {
                    passed,
                    failed,
                    unrunnable,
                })
                .map_err(fail)
        })
    }

    /// Evaluate everything in CPython, without bitzel's Rust subset first
    /// (`false`), to measure what the subset saves; on by default.
    pub fn set_fast_path(&mut self, on: bool) {
        self.fast_path = on;
    }

    /// What was run in CPython so far, and how long it took.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The BitBake library `bb` was imported from.
    pub fn bitbake_lib(&self) -> &Path {
        &self.bitbake_lib
    }

    fn call<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        args: impl pyo3::call::PyCallArgs<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let pending = self
            .pending
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default();
        if !pending.is_empty() {
            self.module.bind(py).getattr("require")?.call1((pending,))?;
        }
        self.module.bind(py).getattr(name)?.call1(args)
    }

    fn failure(&self, py: Python<'_>, e: &PyErr) -> PyFailure {
        let trimmed = self
            .call(py, "format_exc", (e.value(py),))
            .and_then(|r| r.extract::<(String, Option<PathBuf>, Option<u32>)>());
        match trimmed {
            Ok((message, file, line)) => PyFailure {
                message,
                file,
                line,
            },
            Err(_) => PyFailure {
                message: describe(py, e),
                file: None,
                line: None,
            },
        }
    }

    /// A `_run` result: None, ('skip', reason), ('error', msg, file, line).
    fn outcome(&self, py: Python<'_>, r: PyResult<Bound<'_, PyAny>>) -> Result<PyRun, PyFailure> {
        let r = r.map_err(|e| self.failure(py, &e))?;
        if r.is_none() {
            return Ok(PyRun::Done);
        }
        let kind: String = r
            .get_item(0)
            .and_then(|k| k.extract())
            .map_err(|e| self.failure(py, &e))?;
        if kind == "skip" {
            let reason: String = r
                .get_item(1)
                .and_then(|k| k.extract())
                .map_err(|e| self.failure(py, &e))?;
            return Ok(PyRun::Skip(reason));
        }
        let (_, message, file, line): (String, String, Option<PathBuf>, Option<u32>) =
            r.extract().map_err(|e| self.failure(py, &e))?;
        Err(PyFailure {
            message,
            file,
            line,
        })
    }
}

impl PythonHost for CPython {
    fn eval_inline(&self, code: &str, d: &dyn PyContext) -> Result<String, PyError> {
        let _bound = core::bind(d);
        self.stats.inline.time(|| {
            Python::with_gil(|py| {
                self.call(py, "eval_inline", (self.d.bind(py), code))
                    .and_then(|v| v.extract::<String>())
                    .map_err(|e| PyError {
                        message: self.failure(py, &e).message,
                        offset: 0,
                    })
            })
        })
    }

    fn run_anonymous(
        &self,
        name: &str,
        body: &str,
        file: &Path,
        line: u32,
        d: &dyn PyContext,
    ) -> Result<PyRun, PyFailure> {
        let _bound = core::bind(d);
        self.stats.anonymous.time(|| {
            Python::with_gil(|py| {
                let r = self.call(
                    py,
                    "run_anonymous",
                    (self.d.bind(py), name, body, file.to_string_lossy(), line),
                );
                self.outcome(py, r)
            })
        })
    }

    fn fire(
        &self,
        event: &PyEvent<'_>,
        handlers: &[PyHandler],
        d: &dyn PyContext,
    ) -> Result<PyRun, PyFailure> {
        let _bound = core::bind(d);
        let list: Vec<(&str, &str, String, u32, Vec<String>)> = handlers
            .iter()
            .map(|h| {
                (
                    h.name.as_str(),
                    h.body.as_str(),
                    h.file.to_string_lossy().into_owned(),
                    h.line,
                    h.mask.clone(),
                )
            })
            .collect();
        self.stats.events.time(|| {
            Python::with_gil(|py| {
                let r = self.call(
                    py,
                    "fire",
                    (
                        self.d.bind(py),
                        event.class,
                        event.file.map(|f| f.to_string_lossy().into_owned()),
                        event.tasks.map(|t| t.to_vec()),
                        list,
                    ),
                );
                self.outcome(py, r)
            })
        })
    }

    fn define(&self, text: &str, file: &Path, line: u32) -> Result<(), PyFailure> {
        self.stats.defs.time(|| {
            Python::with_gil(|py| {
                self.call(py, "define", (text, file.to_string_lossy(), line))
                    .map(|_| ())
                    .map_err(|e| self.failure(py, &e))
            })
        })
    }

    fn add_pylib(&self, dir: &Path, namespace: &str, d: &dyn PyContext) -> Result<(), PyFailure> {
        let _bound = core::bind(d);
        if let Ok(mut libs) = self.pylibs.lock() {
            if !libs.iter().any(|l| l == dir) {
                libs.push(dir.to_path_buf());
            }
        }
        Python::with_gil(|py| {
            self.call(
                py,
                "add_pylib",
                (self.d.bind(py), dir.to_string_lossy(), namespace),
            )
            .map(|_| ())
            .map_err(|e| self.failure(py, &e))
        })
    }

    fn fast_path(&self) -> bool {
        self.fast_path
    }

    fn prefixes_task_deps(&self) -> bool {
        self.prefixes_task_deps
    }

    fn one_task_per_addtask(&self) -> bool {
        self.one_task_per_addtask
    }

    fn sets_recipe_file(&self) -> bool {
        self.sets_recipe_file
    }

    fn default_config_name(&self) -> Option<String> {
        self.default_config_name.clone()
    }

    fn loaded_modules(&self) -> Vec<String> {
        Python::with_gil(|py| {
            self.call(py, "pylib_modules", ())
                .and_then(|r| r.extract::<Vec<String>>())
                .unwrap_or_default()
        })
    }

    fn require_modules(&self, modules: &[String]) {
        if let Ok(mut p) = self.pending.lock() {
            for m in modules {
                if !p.contains(m) {
                    p.push(m.clone());
                }
            }
        }
    }

    fn persist(&self, value: &str) -> Option<String> {
        Python::with_gil(|py| {
            self.call(py, "persist", (value,))
                .and_then(|r| r.extract::<Option<String>>())
                .ok()
                .flatten()
        })
    }

    fn display(&self, value: &str) -> Result<String, PyFailure> {
        Python::with_gil(|py| {
            self.call(py, "display", (value,))
                .and_then(|r| r.extract::<String>())
                .map_err(|e| self.failure(py, &e))
        })
    }

    fn fingerprint(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(b"bitzel-python 1\0");
        h.update(include_str!("bootstrap.py").as_bytes());
        h.update(&[u8::from(self.fast_path)]);
        h.update(&[Python::with_gil(|py| py.version().len() as u8)]);
        Python::with_gil(|py| h.update(py.version().as_bytes()));
        let libs = self.pylibs.lock().map(|l| l.clone()).unwrap_or_default();
        for dir in std::iter::once(&self.bitbake_lib).chain(libs.iter()) {
            hash_tree(&mut h, dir);
        }
        *h.finalize().as_bytes()
    }
}

/// Hash every `.py` file below `dir` (path and content, sorted).
fn hash_tree(h: &mut blake3::Hasher, dir: &Path) {
    h.update(dir.to_string_lossy().as_bytes());
    h.update(&[0]);
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "py"))
        .map(|e| e.into_path())
        .collect();
    files.sort();
    for f in files {
        h.update(f.to_string_lossy().as_bytes());
        h.update(&[0]);
        match std::fs::read(&f) {
            Ok(bytes) => {
                h.update(&(bytes.len() as u64).to_le_bytes());
                h.update(&bytes);
            }
            Err(e) => {
                h.update(b"unreadable:");
                h.update(e.to_string().as_bytes());
            }
        }
    }
}
