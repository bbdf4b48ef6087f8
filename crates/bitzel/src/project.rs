//! Loading the project configuration (`machine.yml`) for any verb: the
//! config file argument, the flags that override its `bitzel:` settings,
//! and [`load_project`], which loads, applies the flags, locks the build
//! directory, resolves repos and layers and prints the warnings.
//!
//! **The build-directory lock** (BitBake's `bitbake.lock`): an exclusive
//! `flock` on `<build>/bitzel.lock`, holding the holder's pid and command
//! line. Verbs that write the build directory for their whole run (`build`,
//! `devshell`, `explain`: host-tool links, downloads, scratch, deploy) hold
//! it until they exit ([`load_project_locked`]); verbs that only read
//! (`show`, `graph`) hold it while repos are cloned or checked out into
//! the build directory, then let go. A second process fails at once with a
//! message naming the holder, as BitBake does; `--wait-lock` waits instead.
//! A killed holder's lock is released by the kernel.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use bitzel_cache::{FileLock, LockMode};
use bitzel_config::{BuildRoot, Project, RepoSource, SandboxChoice};

use crate::output::Output;

/// The config file and the flags every verb that reads a project takes.
/// Verbs that read a project `#[command(flatten)]` this; verbs that parse
/// its recipes add [`ParseArgs`], verbs that run tasks [`RunArgs`], so no
/// verb accepts a flag it ignores.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArgs {
    /// The kas-style project configuration (machine.yml); `bitzel show`
    /// also reads a BitBake build directory (no kas file: BBPATH and the
    /// variables BitBake passes through from the environment).
    pub config: PathBuf,
    /// Build directory (default `bitzel.build_dir`, else `./build`).
    #[arg(long, value_name = "DIR")]
    pub build_dir: Option<PathBuf>,
    /// Cache directory: task results, downloads' index, the parse cache
    /// (overrides `bitzel.cache_dir`).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// When another bitzel process holds the build directory, wait for it
    /// instead of failing.
    #[arg(long)]
    pub wait_lock: bool,
}

/// The flag of verbs that parse the project's recipes.
#[derive(Debug, Clone, clap::Args)]
pub struct ParseArgs {
    /// Threads parsing recipes, and tasks run at once by verbs that run
    /// tasks (overrides `bitzel.jobs`).
    #[arg(short, long, value_name = "N", value_parser = parse_jobs)]
    pub jobs: Option<usize>,
}

/// The flags of verbs that run tasks (`build`, `explain`, `devshell`).
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// `-j`.
    #[command(flatten)]
    pub parse: ParseArgs,
    /// Sandbox backend: auto, native, bwrap, sandbox-exec or none (overrides `bitzel.sandbox`).
    #[arg(long, value_name = "BACKEND", value_parser = parse_sandbox)]
    pub sandbox: Option<SandboxChoice>,
    /// Build root: host or rootfs (overrides `bitzel.build_root`).
    #[arg(long, value_name = "KIND", value_parser = parse_build_root)]
    pub build_root: Option<BuildRoot>,
}

impl ConfigArgs {
    /// The overrides these flags ask for.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            build_dir: self.build_dir.clone(),
            cache_dir: self.cache_dir.clone(),
            wait_lock: self.wait_lock,
            ..Overrides::default()
        }
    }

    /// The overrides these flags and a parsing verb's `-j` ask for.
    pub fn overrides_parse(&self, parse: &ParseArgs) -> Overrides {
        Overrides {
            jobs: parse.jobs,
            ..self.overrides()
        }
    }

    /// The overrides these flags and a task-running verb's flags ask for.
    pub fn overrides_run(&self, run: &RunArgs) -> Overrides {
        Overrides {
            sandbox: run.sandbox,
            build_root: run.build_root,
            ..self.overrides_parse(&run.parse)
        }
    }
}

/// Command-line values that win over the config's `bitzel:` section.
/// Relative paths are relative to the current directory.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--build-dir`.
    pub build_dir: Option<PathBuf>,
    /// `--cache-dir`.
    pub cache_dir: Option<PathBuf>,
    /// `-j/--jobs`.
    pub jobs: Option<usize>,
    /// `--sandbox`.
    pub sandbox: Option<SandboxChoice>,
    /// `--build-root`.
    pub build_root: Option<BuildRoot>,
    /// `--wait-lock`.
    pub wait_lock: bool,
}

fn parse_jobs(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{s}` is not a whole number of at least 1")),
    }
}

fn parse_sandbox(s: &str) -> Result<SandboxChoice, String> {
    s.parse()
}

fn parse_build_root(s: &str) -> Result<BuildRoot, String> {
    s.parse()
}

/// The build directory's lock; released when dropped (or when the process
/// ends, however it ends).
#[derive(Debug)]
pub struct BuildDirLock {
    _lock: Option<FileLock>,
}

/// Lock the build directory `dir` (created if missing): at once, or — with
/// `wait` — after its holder lets go. The error names the holder.
fn lock_build_dir(out: &Output, dir: &Path, wait: bool) -> anyhow::Result<BuildDirLock> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the build directory {}", dir.display()))?;
    let path = dir.join("bitzel.lock");
    if let Some(l) = FileLock::try_lock(&path, LockMode::Exclusive)? {
        return Ok(BuildDirLock { _lock: Some(l) });
    }
    let holder = FileLock::holder(&path);
    if !wait {
        anyhow::bail!(
            "the build directory {} is in use by {holder}: one bitzel process that writes a build \
             directory runs in it at a time (lock file {}). Wait for it to finish, use another \
             --build-dir, or pass --wait-lock to wait for it",
            shown(dir),
            shown(&path)
        );
    }
    out.warn(&format!(
        "waiting for the build directory {}, in use by {holder} (--wait-lock)",
        shown(dir)
    ));
    Ok(BuildDirLock {
        _lock: Some(FileLock::lock(&path, LockMode::Exclusive)?),
    })
}

/// Load the project at `path` for a verb that only reads the build
/// directory: as [`load_project_locked`], but the build-directory lock is
/// held only while repos are resolved (and only taken when the build
/// directory exists or a repo is cloned into it).
pub fn load_project(out: &Output, path: &Path, overrides: &Overrides) -> anyhow::Result<Project> {
    load_project_with(out, path, overrides, false).map(|(p, _lock)| p)
}

/// Load the project at `path`: read it with its includes, apply `overrides`,
/// settle the build directory (`--build-dir`, else `bitzel.build_dir`, else
/// `./build`; stored absolute in `project.bitzel.build_dir`), lock it, clone
/// or check out git repos there, check every layer, and print the warnings.
/// The returned lock is for the caller to hold while it writes the build
/// directory.
pub fn load_project_locked(
    out: &Output,
    path: &Path,
    overrides: &Overrides,
) -> anyhow::Result<(Project, BuildDirLock)> {
    load_project_with(out, path, overrides, true)
}

fn load_project_with(
    out: &Output,
    path: &Path,
    overrides: &Overrides,
    writes: bool,
) -> anyhow::Result<(Project, BuildDirLock)> {
    if path.is_dir() {
        anyhow::bail!(
            "{} is a directory: only `bitzel show` reads a BitBake build directory; give this verb a kas-style configuration file (machine.yml)",
            path.display()
        );
    }
    let mut project = bitzel_config::load(path)?;
    let cwd = std::env::current_dir().context("cannot determine the current directory")?;
    let abs = |p: &Path| cwd.join(p);

    let s = &mut project.bitzel;
    if let Some(d) = &overrides.cache_dir {
        s.cache_dir = Some(abs(d));
    }
    if let Some(j) = overrides.jobs {
        s.jobs = Some(j);
    }
    if let Some(b) = overrides.sandbox {
        s.sandbox = Some(b);
    }
    if let Some(r) = overrides.build_root {
        s.build_root = Some(r);
    }
    if s.build_root == Some(BuildRoot::Rootfs) && s.rootfs.is_none() {
        anyhow::bail!(
            "--build-root rootfs: {} declares no root; add `bitzel: build_root: rootfs: {{suite: bookworm, packages: [build-essential, ...]}}` to it",
            path.display()
        );
    }
    let build_dir = match (&overrides.build_dir, &s.build_dir) {
        (Some(d), _) => abs(d),
        (None, Some(d)) => d.clone(),
        (None, None) => cwd.join("build"),
    };
    s.build_dir = Some(build_dir.clone());

    let clones = project
        .repos
        .iter()
        .any(|r| matches!(r.source, RepoSource::Git { .. }));
    let lock = if writes || clones || build_dir.is_dir() {
        lock_build_dir(out, &build_dir, overrides.wait_lock)?
    } else {
        BuildDirLock { _lock: None }
    };
    let before = project.warnings.len();
    for w in &project.warnings {
        out.warn(&w.to_string());
    }
    let resolved = project.resolve(&build_dir);
    for w in &project.warnings[before..] {
        out.warn(&w.to_string());
    }
    resolved?;
    Ok((project, lock))
}

/// `path` relative to the current directory when it lies below it.
pub fn shown(path: &Path) -> String {
    match std::env::current_dir() {
        Ok(cwd) => match path.strip_prefix(&cwd) {
            Ok(rel) if !rel.as_os_str().is_empty() => rel.display().to_string(),
            _ => path.display().to_string(),
        },
        Err(_) => path.display().to_string(),
    }
}

/// Parse the project's metadata (bblayers.conf/local.conf generated from the
/// config, layers read from disk, the parse cache under the cache directory).
/// Error diagnostics are printed and make this fail; warnings are printed at `-v`.
pub fn load_workspace(out: &Output, project: &Project) -> anyhow::Result<bitzel_meta::Workspace> {
    let build_dir = project
        .bitzel
        .build_dir
        .clone()
        .context("the build directory is not set")?;
    let input = bitzel_meta::ConfInput {
        topdir: build_dir,
        bblayers_conf: Some(project.bblayers_conf()),
        local_conf: Some(project.local_conf()),
        env: Default::default(),
    };
    parse_workspace(out, project, &input)
}

/// Parse a BitBake build directory `dir` without a kas file, as BitBake
/// does run there: the environment's variables BitBake passes through
/// (`BBPATH`, `BB_ENV_PASSTHROUGH_ADDITIONS`, ...); `conf/bblayers.conf`
/// found as BitBake finds it (under a `BBPATH` entry, else in `dir` or a
/// directory above it), its directory then being `TOPDIR`; without one,
/// no layers, `TOPDIR` from the environment or `dir`, and
/// `conf/bitbake.conf` along `BBPATH`. The parse cache is the default one
/// (or `--cache-dir`'s); the directory is not locked (bitzel writes nothing
/// there; the metadata's parse-time Python may, as under BitBake).
pub fn load_build_directory(
    out: &Output,
    config: &ConfigArgs,
    parse: &ParseArgs,
) -> anyhow::Result<bitzel_meta::Workspace> {
    let dir = std::fs::canonicalize(&config.config).with_context(|| {
        format!(
            "cannot read the build directory {}",
            config.config.display()
        )
    })?;
    if config.build_dir.is_some() || config.wait_lock {
        anyhow::bail!(
            "{} is a BitBake build directory: it is its own build directory and is not locked, so --build-dir and --wait-lock do not apply",
            dir.display()
        );
    }
    let mut project = Project::build_directory(&dir);
    project.bitzel.jobs = parse.jobs;
    let cwd = std::env::current_dir().context("cannot determine the current directory")?;
    project.bitzel.cache_dir = config.cache_dir.as_ref().map(|d| cwd.join(d));
    let env = bitzel_meta::passthrough_env(std::env::vars());
    let found = find_bblayers(env.get("BBPATH").map(String::as_str), &dir);
    let input = match found {
        Some(conf) => bitzel_meta::ConfInput {
            bblayers_conf: Some(
                std::fs::read_to_string(&conf)
                    .with_context(|| format!("cannot read {}", conf.display()))?,
            ),
            topdir: conf
                .parent()
                .and_then(Path::parent)
                .map_or_else(|| dir.clone(), Path::to_path_buf),
            local_conf: None,
            env,
        },
        None => bitzel_meta::ConfInput {
            topdir: dir,
            bblayers_conf: None,
            local_conf: None,
            env,
        },
    };
    tracing::debug!(topdir = %input.topdir.display(), bblayers = input.bblayers_conf.is_some(), "BitBake build directory");
    parse_workspace(out, &project, &input)
}

/// Where BitBake finds `conf/bblayers.conf`: under each `BBPATH` entry,
/// then in `dir` and each directory above it (not `/`).
fn find_bblayers(bbpath: Option<&str>, dir: &Path) -> Option<PathBuf> {
    let entries = bbpath
        .into_iter()
        .flat_map(|p| p.split(':'))
        .filter(|e| !e.is_empty())
        .map(PathBuf::from);
    let above = dir
        .ancestors()
        .filter(|p| p.parent().is_some())
        .map(Path::to_path_buf);
    entries
        .chain(above)
        .map(|d| d.join("conf").join("bblayers.conf"))
        .find(|f| f.is_file())
}

/// Parse the metadata `input` describes, with `project`'s settings (cache
/// directory, jobs, the BitBake library).
fn parse_workspace(
    out: &Output,
    project: &Project,
    input: &bitzel_meta::ConfInput,
) -> anyhow::Result<bitzel_meta::Workspace> {
    let parse_cache = crate::build_flow::cache_dir(project)
        .ok()
        .map(|d| d.join("parse"));
    let missing_bitbake = start_python(project)?;
    let opts = bitzel_meta::ParseOptions {
        parsers: parser_processes(project, input, parse_cache.as_deref()),
        cache_dir: parse_cache,
        jobs: project.bitzel.jobs,
        shard: None,
    };
    let ws = match bitzel_meta::load_workspace(input, &bitzel_meta::FsLoader, &opts) {
        Ok(ws) => ws,
        Err(bitzel_meta::MetaError::Config { diagnostics })
            if missing_bitbake.is_some()
                && needs_python(
                    &diagnostics
                        .iter()
                        .filter(|d| d.is_error())
                        .cloned()
                        .collect::<Vec<_>>(),
                ) =>
        {
            print_diagnostics(out, &diagnostics);
            return Err(missing_bitbake.map(anyhow::Error::from).unwrap_or_else(|| {
                anyhow::anyhow!("the metadata needs BitBake's Python library")
            }));
        }
        // Every error of the base configuration (LAYERDEPENDS, BBLAYERS, ...),
        // not only the first, as BitBake reports them.
        Err(bitzel_meta::MetaError::Config { diagnostics }) => {
            let errors = print_diagnostics(out, &diagnostics);
            anyhow::bail!(
                "{errors} error(s) in the base configuration (bblayers.conf, layer.conf, bitbake.conf, local.conf); fix them and run again"
            );
        }
        Err(e) => return Err(e.into()),
    };
    log_python_stats();
    let errors = print_diagnostics(out, &ws.diagnostics);
    if let Some(e) = missing_bitbake {
        let errs: Vec<bitzel_meta::Diagnostic> = ws
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .cloned()
            .collect();
        if needs_python(&errs) {
            return Err(e.into());
        }
        if needs_python(&ws.diagnostics) {
            // Only notes (anonymous functions not run): say how to run them.
            out.warn(&format!(
                "some Python was not run (notes at -v) because no BitBake library was found: {e}"
            ));
        }
    }
    if errors > 0 {
        anyhow::bail!("{errors} error(s) while parsing the metadata; fix them and run again");
    }
    Ok(ws)
}

/// Start embedded CPython with the project's BitBake library, once per
/// process. Metadata that needs no Python beyond bitzel's Rust subset
/// needs no BitBake: when none is found, the error is returned (as
/// `Ok(Some)`) for the caller to report only if the parse needed it. A
/// library named by the config or `BITZEL_BITBAKE_LIB` that is not one is
/// an error at once.
fn start_python(project: &Project) -> anyhow::Result<Option<bitzel_config::ConfigError>> {
    if bitzel_meta::python_host().is_some() {
        return Ok(None);
    }
    let env = std::env::var_os(bitzel_config::BITBAKE_LIB_ENV);
    let lib = match bitzel_config::find_bitbake_lib(project, env.as_deref()) {
        Ok(lib) => lib,
        Err(e) if project.bitzel.bitbake_lib.is_none() && env.is_none() => return Ok(Some(e)),
        Err(e) => return Err(e.into()),
    };
    tracing::debug!(dir = %lib.dir.display(), source = ?lib.source, "BitBake library");
    let mut host = bitzel_python::CPython::new(&lib.dir, bytecode_dir(project).as_deref())?;
    // A measurement switch: everything through CPython, no Rust fast path.
    if std::env::var_os("BITZEL_PYTHON_NO_FAST_PATH").is_some_and(|v| v == "1") {
        host.set_fast_path(false);
    }
    let host = std::sync::Arc::new(host);
    bitzel_meta::install_python_host(host.clone());
    let _ = PYTHON.set(host);
    Ok(None)
}

/// Where the embedded interpreter keeps compiled Python modules: the
/// cache directory's `python`.
fn bytecode_dir(project: &Project) -> Option<PathBuf> {
    crate::build_flow::cache_dir(project)
        .ok()
        .map(|d| d.join("python"))
}

/// Parser processes for a cold parse whose metadata runs Python (one
/// interpreter per process: BitBake's parser processes), one per job, at
/// most 8; none without a parse cache (they hand their work over through
/// it) or embedded CPython (threads parallelise the Rust parser already).
fn parser_processes(
    project: &Project,
    input: &bitzel_meta::ConfInput,
    cache_dir: Option<&Path>,
) -> Option<std::sync::Arc<dyn bitzel_meta::ShardParsers>> {
    use bitzel_meta::PythonHost as _;
    let py = PYTHON.get()?;
    let count = project
        .bitzel
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .min(8);
    if count < 2 {
        return None;
    }
    Some(std::sync::Arc::new(
        crate::cmd::parse_shard::ProcessParsers {
            request: crate::cmd::parse_shard::ShardRequest {
                topdir: input.topdir.clone(),
                bblayers_conf: input.bblayers_conf.clone(),
                local_conf: input.local_conf.clone(),
                env: input.env.clone(),
                cache_dir: cache_dir?.to_path_buf(),
                bitbake_lib: py.bitbake_lib().to_path_buf(),
                bytecode_dir: bytecode_dir(project),
                fast_path: py.fast_path(),
            },
            count,
        },
    ))
}

/// The embedded interpreter, when this process started one.
static PYTHON: std::sync::OnceLock<std::sync::Arc<bitzel_python::CPython>> =
    std::sync::OnceLock::new();

/// Log what ran in CPython (`-v`).
fn log_python_stats() {
    if let Some(py) = PYTHON.get() {
        let s = py.stats();
        for (what, c) in [
            ("inline ${@...}", &s.inline),
            ("anonymous functions", &s.anonymous),
            ("event firings", &s.events),
            ("defs", &s.defs),
        ] {
            tracing::info!(
                "CPython: {} {what}, {:.2} s (nested calls count in both)",
                c.calls(),
                c.total().as_secs_f64()
            );
        }
    }
}

/// True when a diagnostic says the metadata used Python outside bitzel's
/// Rust subset (which only CPython with a BitBake library can run).
fn needs_python(diagnostics: &[bitzel_meta::Diagnostic]) -> bool {
    let needle = bitzel_meta::pyexpr::UNSUPPORTED.trim_end_matches(": ");
    diagnostics.iter().any(|d| {
        d.message.contains(needle)
            || d.message
                .contains("bitzel's Python subset does not support")
    })
}

/// Print error diagnostics (and, at `-v`, the others); the number of errors.
fn print_diagnostics(out: &Output, diagnostics: &[bitzel_meta::Diagnostic]) -> usize {
    let mut errors = 0usize;
    for d in diagnostics {
        if d.is_error() {
            errors += 1;
            eprintln!("{d}");
        } else if out.verbose > 0 {
            eprintln!("{d}");
        }
    }
    errors
}

/// The recipes an anonymous function skipped that would have provided `name`
/// (through `PN` or the provides variable `var`: `PROVIDES` or `RPROVIDES`),
/// each as `<recipe> was skipped: <reason>`, for BitBake's
/// "Nothing PROVIDES 'x' (but <recipe> was skipped: <reason>)".
pub fn skip_reasons(ws: &bitzel_meta::Workspace, name: &str, var: &str) -> Vec<String> {
    ws.skipped
        .iter()
        .filter(|r| {
            (var == "PROVIDES" && r.pn == name)
                || r.data
                    .get_var(var)
                    .is_some_and(|p| p.split_whitespace().any(|w| w == name))
        })
        .map(|r| {
            format!(
                "{} was skipped: {}",
                r.virtual_name(),
                r.skipped().unwrap_or_default()
            )
        })
        .collect()
}
