//! bitzel-meta: the BitBake language and datastore. See ARCHITECTURE.md.
//!
//! Entry point: [`load_workspace`] parses the base configuration
//! (`bblayers.conf` → each layer's `layer.conf` → `conf/bitbake.conf` →
//! `INHERIT` classes with `base` first, as BitBake's cooker does) once, then
//! every recipe in `BBFILES` in parallel, each over a copy-on-write layer of
//! the shared configuration. All file content comes through a [`Loader`];
//! this crate does no other I/O (except the optional parse cache directory).
//!
//! The semantics follow the BitBake User Manual ("Syntax and Operators";
//! "Sharing Functionality"; "Tasks"), including the OVERRIDES mechanism,
//! `:append`/`:prepend`/`:remove`, weak defaults, lazy expansion, key
//! expansion, `inherit_defer`, `BBCLASSEXTEND` variants and `.bbappend`
//! files with the `%` wildcard.

#![deny(missing_docs)]

mod anon;
mod cache;
mod data;
mod diag;
mod emit;
mod eval;
mod finalvars;
mod handle;
mod layerdeps;
mod localvars;
mod parse;
mod pattern;
pub mod pyexpr;
mod python;
mod refs;
mod workspace;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use anon::with_data_context;
pub use cache::{datastore_bytes, datastore_from_bytes};
pub use data::{DataStore, ExpandError, HistoryEntry};
pub use diag::{Diagnostic, MetaError, Severity};
pub use emit::{emit_env, emit_history, EmitOptions};
pub use handle::{handle, handle_with, Handled, HandledVariant};
pub use parse::{parse, AssignOp, Ast, IncludeKind, Mode, Stmt, StmtKind};
pub use python::{
    install_python_host, py_str, python_host, PyEvent, PyFailure, PyHandler, PyRun, PythonHost,
    PROCESS_LOCAL, PY_LITERAL, PY_MARK, PY_ONE, SHELL_TABLES_PY,
};
pub use refs::{ExpansionRefs, FlagRefs};
pub use workspace::{load_workspace, passthrough_env};

/// The variable `addpylib DIR NAMESPACE` statements are recorded in, one
/// `NAMESPACE DIR` line each (the directory expanded where the statement
/// was read), in the order read. Python tasks import these as BitBake does.
pub const ADDPYLIB_VAR: &str = "__BITZEL_ADDPYLIB";

/// The only source of file content.
pub trait Loader: Sync {
    /// The file's text; `Ok(None)` if it does not exist.
    fn read(&self, path: &Path) -> std::io::Result<Option<String>>;
    /// The entries of a directory (full paths), sorted; empty if missing.
    fn list_dir(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>>;
    /// True when `path` is a directory.
    fn is_dir(&self, path: &Path) -> bool;
}

/// A [`Loader`] reading the real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct FsLoader;

impl Loader for FsLoader {
    fn read(&self, path: &Path) -> std::io::Result<Option<String>> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) if path.is_dir() => Err(std::io::Error::other(format!("is a directory: {e}"))),
            Err(e) => Err(e),
        }
    }

    fn list_dir(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for entry in rd {
            out.push(entry?.path());
        }
        out.sort();
        Ok(out)
    }

    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }
}

/// What the metadata engine needs from the project configuration.
#[derive(Debug, Clone, Default)]
pub struct ConfInput {
    /// The build directory (`TOPDIR`); `conf/bblayers.conf` and
    /// `conf/local.conf` are served from the texts below at
    /// `<topdir>/conf/`. Without a `bblayers.conf`, `TOPDIR` is this only
    /// when the environment does not set it.
    pub topdir: PathBuf,
    /// Text of `conf/bblayers.conf`; `None` when there is none, as for
    /// BitBake run where it finds none: no layers, the configuration
    /// starts at `conf/bitbake.conf` found along `BBPATH` (which must then
    /// come from `env`).
    pub bblayers_conf: Option<String>,
    /// Text of `conf/local.conf` (found through `BBPATH` like any file;
    /// BBPATH normally contains `${TOPDIR}`); `None`: only what is on
    /// disk.
    pub local_conf: Option<String>,
    /// Environment variables passed into the datastore (BitBake's
    /// `BB_ENV_PASSTHROUGH` set), already filtered by the caller (e.g.
    /// with [`passthrough_env`]).
    pub env: BTreeMap<String, String>,
}

/// How to parse.
#[derive(Clone, Default)]
pub struct ParseOptions {
    /// Directory for the on-disk parse cache; `None` disables it.
    pub cache_dir: Option<PathBuf>,
    /// Parser threads; `None` means one per core.
    pub jobs: Option<usize>,
    /// A parser process (started through [`ParseOptions::parsers`]): parse
    /// into the cache each recipe file this source hands out, until it has
    /// none, and keep nothing (the workspace returned has no recipes).
    pub shard: Option<Arc<dyn ParseSource>>,
    /// Parser processes: when at least [`MIN_SHARDED_MISSES`] recipe files
    /// have no parse-cache entry, they and this process take those files
    /// one at a time from one [`ParseQueue`], and this process then reads
    /// theirs from the cache (BitBake's parser processes; one CPython
    /// interpreter per process, so the metadata's Python runs on every
    /// core).
    pub parsers: Option<Arc<dyn ShardParsers>>,
}

impl std::fmt::Debug for ParseOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParseOptions")
            .field("cache_dir", &self.cache_dir)
            .field("jobs", &self.jobs)
            .field("shard", &self.shard.is_some())
            .field("parsers", &self.parsers.is_some())
            .finish()
    }
}

/// Where a parser process gets its next recipe file (the parent, over a
/// pipe); `None` when there is no more work.
pub trait ParseSource: Send + Sync {
    /// The next recipe file to parse.
    fn next_file(&self) -> Option<PathBuf>;
}

/// Fewest missing parse-cache entries for which starting parser processes
/// pays (each parses the base configuration again).
pub const MIN_SHARDED_MISSES: usize = 64;

/// The recipe files of a parse with parser processes that have no
/// parse-cache entry, in the order they are handed out (the likely
/// costliest first, so that no long parse is left for the end), shared by
/// this process and its parser processes: whoever is free takes the next.
#[derive(Debug)]
pub struct ParseQueue {
    files: Vec<PathBuf>,
    next: std::sync::atomic::AtomicUsize,
    /// The indices handed to parser processes.
    handed_out: std::sync::Mutex<Vec<usize>>,
}

impl ParseQueue {
    pub(crate) fn new(files: Vec<PathBuf>) -> ParseQueue {
        ParseQueue {
            files,
            next: std::sync::atomic::AtomicUsize::new(0),
            handed_out: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The next file's index, for this process.
    pub(crate) fn take(&self) -> Option<usize> {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        (i < self.files.len()).then_some(i)
    }

    /// The next file, for a parser process: this process then reads its
    /// entry from the cache (or parses it, if the parser failed).
    pub fn hand_out(&self) -> Option<&Path> {
        let i = self.take()?;
        if let Ok(mut h) = self.handed_out.lock() {
            h.push(i);
        }
        Some(&self.files[i])
    }

    /// The files handed to parser processes so far.
    pub(crate) fn handed_out(&self) -> Vec<&Path> {
        let mut h = self
            .handed_out
            .lock()
            .map(|h| h.clone())
            .unwrap_or_default();
        h.sort_unstable();
        h.iter().map(|&i| self.files[i].as_path()).collect()
    }

    pub(crate) fn file(&self, i: usize) -> &Path {
        &self.files[i]
    }
}

/// Starts parser processes (the binary's hidden `bitzel parse-shard`
/// verb).
pub trait ShardParsers: Send + Sync {
    /// How many processes parse, this one included (1: this one only).
    fn count(&self) -> usize;
    /// Start `count - 1` parsers, each taking files from `queue` with
    /// [`ParseQueue::hand_out`] until it is empty; the returned closure
    /// waits for them. A parser that fails leaves its files to this
    /// process.
    fn start(&self, count: usize, queue: Arc<ParseQueue>) -> Box<dyn FnOnce() + Send>;
}

/// One layer of `BBLAYERS` and the collection its `layer.conf` declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The layer directory.
    pub path: PathBuf,
    /// Its `BBFILE_COLLECTIONS` name (empty when it declares none).
    pub collection: String,
    /// `BBFILE_PRIORITY_<collection>`.
    pub priority: i32,
    /// `BBFILE_PATTERN_<collection>` (a regular expression).
    pub pattern: String,
    /// The collections named by `LAYERDEPENDS_<collection>` (sorted, version
    /// constraints dropped).
    pub depends: Vec<String>,
    /// `LAYERSERIES_COMPAT_<collection>`.
    pub series_compat: Vec<String>,
}

/// A parsed recipe (or one of its `BBCLASSEXTEND` variants).
#[derive(Debug, Clone)]
pub struct Recipe {
    /// The `.bb` file.
    pub file: PathBuf,
    /// `None` for the recipe itself, `Some("native")` etc. for a variant.
    pub variant: Option<String>,
    /// The collection of the layer the file belongs to.
    pub layer: String,
    /// `PN`.
    pub pn: String,
    /// `PV`.
    pub pv: String,
    /// `PR`.
    pub pr: String,
    /// Why an anonymous Python function skipped the recipe
    /// (`raise bb.parse.SkipRecipe(reason)`), if it did: its datastore's
    /// `__BITZEL_SKIPPED`, kept here so that listing recipes reads no
    /// datastore (a cached one is decoded when first used).
    pub skip: Option<String>,
    /// The finalised datastore.
    pub data: DataStore,
    /// Every file that fed it, in order (base configuration files first).
    pub inputs: Vec<PathBuf>,
    /// The `.bbappend` files applied, in order.
    pub appends: Vec<PathBuf>,
}

impl Recipe {
    /// Why an anonymous Python function skipped the recipe
    /// (`raise bb.parse.SkipRecipe(reason)`), if it did.
    pub fn skipped(&self) -> Option<String> {
        self.skip.clone()
    }

    /// BitBake's name for the recipe: the file, or
    /// `virtual:<variant>:<file>` for a variant.
    pub fn virtual_name(&self) -> String {
        match &self.variant {
            Some(v) => format!("virtual:{v}:{}", self.file.display()),
            None => self.file.display().to_string(),
        }
    }
}

/// Everything parsed from a configuration.
#[derive(Debug)]
pub struct Workspace {
    /// The finalised global configuration (what `bitbake -e` shows
    /// without a recipe).
    pub config: DataStore,
    /// Every recipe and variant, sorted by file then variant.
    pub recipes: Vec<Recipe>,
    /// Problems found, de-duplicated, sorted by file and line.
    pub diagnostics: Vec<Diagnostic>,
    /// The layers, in `BBLAYERS` order.
    pub layers: Vec<Layer>,
    /// Recipes (and variants) an anonymous Python function skipped with
    /// `bb.parse.SkipRecipe`: not in `recipes`, so they provide nothing, as
    /// in BitBake. [`Recipe::skipped`] gives the reason.
    pub skipped: Vec<Recipe>,
}

impl Workspace {
    /// True when any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// Recipes (and variants) whose `PN` is `pn`.
    pub fn recipes_named<'a>(&'a self, pn: &'a str) -> impl Iterator<Item = &'a Recipe> + 'a {
        self.recipes.iter().filter(move |r| r.pn == pn)
    }
}
