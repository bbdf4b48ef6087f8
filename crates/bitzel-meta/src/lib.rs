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
    /// Parse only shard `index` of `count` of the recipe files missing from
    /// the parse cache, into the cache (a parser process started through
    /// [`ParseOptions::parsers`]); the workspace returned holds that
    /// shard's recipes only.
    pub shard: Option<Shard>,
    /// Parser processes: when at least [`MIN_SHARDED_MISSES`] recipe files
    /// have no parse-cache entry, shards 1.. are handed to them while this
    /// process parses shard 0, and then every recipe is read from the
    /// cache (BitBake's parser processes; one CPython interpreter per
    /// process, so the metadata's Python runs on every core).
    pub parsers: Option<Arc<dyn ShardParsers>>,
}

impl std::fmt::Debug for ParseOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParseOptions")
            .field("cache_dir", &self.cache_dir)
            .field("jobs", &self.jobs)
            .field("shard", &self.shard)
            .field("parsers", &self.parsers.is_some())
            .finish()
    }
}

/// One share of a sharded parse: files `i` with `i % count == index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This share.
    pub index: usize,
    /// How many there are.
    pub count: usize,
}

/// Fewest missing parse-cache entries for which starting parser processes
/// pays (each parses the base configuration again).
pub const MIN_SHARDED_MISSES: usize = 64;

/// Starts parser processes for a sharded parse (the binary's hidden
/// `bitzel parse-shard` verb).
pub trait ShardParsers: Send + Sync {
    /// How many shards to cut (1: parse here only).
    fn count(&self) -> usize;
    /// Start the parsers of shards `1..count`; the returned closure waits
    /// for them. A parser that fails leaves its recipes to this process.
    fn start(&self, count: usize) -> Box<dyn FnOnce() + Send>;
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
