//! The whole of `bitzel build`: config → metadata → graph → executor
//! (keys, cache, sandbox) → deploy artifacts → summary.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context as _;
use bitzel_cache::remote::store::HttpStore;
use bitzel_cache::remote::{CacheSummary, RemoteConfig};
use bitzel_cache::{Cache, Storage};
use bitzel_config::Project;
use bitzel_exec::executor::{BuildExecutor, HostDirs, HostTools};
use bitzel_graph::{
    build_graph, prefs_from_workspace, recipes_from_workspace, run_with_outputs, with_do,
    CancelToken, RunOptions, Target,
};
use bitzel_meta::Workspace;
use bitzel_sandbox::{BackendChoice, HelperExe, SandboxConfig};

use crate::output::Output;
use crate::progress::{cancel_on_ctrl_c, Progress};

/// How `bitzel build` was asked to run, beyond the project itself.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    /// Targets given on the command line (replace the config's `target`).
    pub targets: Vec<String>,
    /// Task given on the command line (replaces the config's `task`).
    pub task: Option<String>,
    /// `-f`: run the target tasks even on a hit; their results replace the
    /// local entry only.
    pub force: bool,
    /// Keep going after a failure.
    pub keep_going: bool,
    /// Only list what would run.
    pub dry_run: bool,
    /// JSON lines on stdout.
    pub json: bool,
    /// Explain every task that re-ran.
    pub explain: bool,
    /// Per-task timeout in seconds.
    pub timeout_secs: Option<u64>,
    /// Only compute keys and explain what would run (`bitzel explain`; `json`
    /// then asks for its JSON list).
    pub explain_only: bool,
    /// `--remote-cache URL` (overrides `bitzel: remote_cache: url`).
    pub remote_cache: Option<String>,
    /// `--remote-cache-read-only`.
    pub remote_read_only: bool,
    /// `--remote-executor` and its options (`None`: verbs that run nothing
    /// remotely, whatever the config says).
    pub remote_exec: Option<RemoteExecRequest>,
    /// Write the build summary as JSON to this file.
    pub summary_json: Option<PathBuf>,
    /// `pn:do_task` to open an interactive shell in instead of running it
    /// (`bitzel devshell`); its dependencies are built or restored first.
    pub devshell: Option<String>,
    /// `--timings`: write the HTML report of this build.
    pub timings: bool,
    /// `--trace FILE`: write this build as Chrome trace events.
    pub trace: Option<PathBuf>,
}

/// `--remote-executor URL [--remote-instance NAME] [--remote-executor-fallback local]`.
#[derive(Debug, Clone, Default)]
pub struct RemoteExecRequest {
    /// The engine (overrides `bitzel: remote_executor: url`).
    pub url: Option<String>,
    /// Its instance (overrides `bitzel: remote_executor: instance`).
    pub instance: Option<String>,
    /// `Some(true)`: run a task locally when the engine cannot.
    pub fallback_local: Option<bool>,
}

/// The remote executor, if one is configured (flags over config): the
/// engine, its cache level (adopting results) and the runner.
fn remote_executor(
    project: &Project,
    req: &BuildRequest,
    cache: &Cache,
) -> anyhow::Result<Option<(Arc<HttpStore>, bitzel_remote::RemoteExecutor)>> {
    let Some(rx) = &req.remote_exec else {
        return Ok(None);
    };
    let settings = project.bitzel.remote_executor.clone().unwrap_or_default();
    let Some(url) = rx.url.clone().or(settings.url.clone()) else {
        return Ok(None);
    };
    let instance = rx
        .instance
        .clone()
        .or(settings.instance.clone())
        .unwrap_or_default();
    let fallback = rx
        .fallback_local
        .unwrap_or(settings.fallback.as_deref() == Some("local"));
    let auth = settings
        .auth_header_env
        .as_deref()
        .map(bitzel_cache::remote::AuthHeader::from_env)
        .transpose()
        .context("the remote executor's auth header")?;
    let mut ec = bitzel_remote::EngineConfig::new(&url, &instance);
    ec.auth = auth.clone();
    let engine = Arc::new(bitzel_remote::Engine::new(ec)?);
    let mut rc = RemoteConfig::new(&url)?.with_auth(auth);
    if !instance.is_empty() {
        rc = rc.with_instance(&instance)?;
    }
    // Outputs, of remote runs and of hits in the engine's action cache alike,
    // stay on the engine until something local reads them.
    let store =
        Arc::new(bitzel_remote::cache_level(engine.clone(), rc, cache)?.with_outputs_on_demand());
    cache.set_blob_source(store.clone());
    let runner =
        bitzel_remote::RemoteExecutor::new(engine, store.clone(), cache.cas().clone(), fallback);
    Ok(Some((store, runner)))
}

/// Where Python tasks find BitBake's library: looked up only when the first
/// one needs it (`bitzel_config::find_bitbake_lib`).
fn python_setup(project: &Project) -> bitzel_exec::python::PythonSetup {
    let project = project.clone();
    let env = std::env::var_os(bitzel_config::BITBAKE_LIB_ENV);
    bitzel_exec::python::PythonSetup::new(move || {
        let lib =
            bitzel_config::find_bitbake_lib(&project, env.as_deref()).map_err(|e| e.to_string())?;
        tracing::info!(dir = %lib.dir.display(), source = %lib.source, "BitBake library for Python tasks");
        Ok(lib.dir)
    })
}

/// The remote cache level, if one is configured (flag over config).
fn remote_level(
    out: &Output,
    project: &Project,
    req: &BuildRequest,
    cache: &Cache,
) -> anyhow::Result<Option<Arc<HttpStore>>> {
    let settings = project.bitzel.remote_cache.clone().unwrap_or_default();
    let Some(url) = req.remote_cache.clone().or(settings.url.clone()) else {
        return Ok(None);
    };
    let read_only = req.remote_read_only || settings.read_only.unwrap_or(false);
    let config = RemoteConfig::from_settings(
        &url,
        read_only,
        settings.instance.as_deref(),
        settings.auth_header_env.as_deref(),
        settings.digest_function.as_deref(),
    )
    .context("the remote cache settings are not usable")?;
    match HttpStore::for_cache(config, cache) {
        Ok(store) => Ok(Some(Arc::new(store))),
        Err(e) => {
            out.warn(&format!("remote cache disabled for this build: {e}"));
            Ok(None)
        }
    }
}

/// The cache directory of a project (flag/config, else the per-user default).
pub fn cache_dir(project: &Project) -> anyhow::Result<PathBuf> {
    match &project.bitzel.cache_dir {
        Some(d) => Ok(d.clone()),
        None => bitzel_cache::default_cache_dir().context(
            "no cache directory: set `bitzel: cache_dir:` in the config, --cache-dir, or HOME",
        ),
    }
}

/// The host build directory of a loaded project.
pub fn build_dir(project: &Project) -> anyhow::Result<PathBuf> {
    project
        .bitzel
        .build_dir
        .clone()
        .context("the build directory is not set")
}

/// The sandbox helper: the `bitzel-helper` binary beside this one (it links no
/// CPython, so it also starts as PID 1 inside a `rootfs` build root, which has
/// no `libpython`), else this executable re-executed.
pub fn sandbox_helper() -> HelperExe {
    HelperExe::sibling_or_current("bitzel-helper")
}

/// The host `DL_DIR`: `bitzel: downloads_dir`, else `<build>/downloads`.
pub fn downloads_dir(project: &Project) -> anyhow::Result<PathBuf> {
    match &project.bitzel.downloads_dir {
        Some(d) => Ok(d.clone()),
        None => Ok(build_dir(project)?.join("downloads")),
    }
}

/// Where deploy artifacts are published on the host.
pub fn deploy_dir(project: &Project, ws: &Workspace) -> anyhow::Result<PathBuf> {
    let machine = ws
        .config
        .get_var("MACHINE")
        .or_else(|| project.machine.clone())
        .unwrap_or_else(|| "unknown".to_string());
    Ok(build_dir(project)?
        .join("tmp")
        .join("deploy")
        .join("images")
        .join(machine))
}

/// The project's cache, its layers owned by the sandbox identity (invoked as root, tasks run
/// as an unprivileged host uid: the layers they stack, and write through by copy-up, must
/// belong to it).
pub fn open_cache(project: &Project) -> anyhow::Result<Cache> {
    let cache_dir = cache_dir(project)?;
    let cache_opts = bitzel_cache::CacheOptions {
        layer_owner: bitzel_sandbox::sandbox_identity(),
        ..bitzel_cache::CacheOptions::default()
    };
    Cache::open_with(&cache_dir, cache_opts)
        .with_context(|| format!("opening the cache {}", cache_dir.display()))
}

fn backend_choice(project: &Project) -> anyhow::Result<BackendChoice> {
    let s = project
        .bitzel
        .sandbox
        .map(|c| c.to_string())
        .unwrap_or_else(|| "auto".to_string());
    s.parse::<BackendChoice>()
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// The host build root's digest being computed on a thread (started by
/// [`start_host_root_digest`] while the metadata is parsed), with the paths
/// it covers.
type PendingRoot = (
    Vec<PathBuf>,
    std::thread::JoinHandle<Result<bitzel_cache::Digest, bitzel_exec::hosttools::HostToolsError>>,
);

fn pending_root() -> &'static Mutex<Option<PendingRoot>> {
    static PENDING: Mutex<Option<PendingRoot>> = Mutex::new(None);
    &PENDING
}

/// The host directories a task's `host` build root is made of.
pub fn host_root_paths() -> Vec<PathBuf> {
    bitzel_sandbox::SandboxSpec::default_host_paths()
}

/// Every host path a task without the network can read: the build root's
/// directories and the host entries of its generated `/etc`. What the key's
/// `host-root` digest covers. (The network's own configuration, which
/// `[network]` tasks also see, is deliberately not keyed: it differs between
/// every two machines and such tasks depend on the network anyway.)
pub fn host_root_key_paths() -> Vec<PathBuf> {
    let mut paths = host_root_paths();
    paths.extend(bitzel_sandbox::etc_host_paths(false));
    paths
}

/// Start digesting the host build root on a thread, so that its walk (and,
/// the first time on a machine, its hashing) overlaps parsing. Verbs that
/// build call this right after loading the project.
pub fn start_host_root_digest(project: &Project) {
    if project.bitzel.build_root == Some(bitzel_config::BuildRoot::Rootfs) {
        return; // nothing of the host is in a rootfs task's key
    }
    let paths = host_root_key_paths();
    let for_thread = paths.clone();
    let spawned = std::thread::Builder::new()
        .name("host-root-digest".into())
        .spawn(move || bitzel_exec::hosttools::root_digest(&for_thread));
    if let Ok(handle) = spawned {
        *pending_root().lock().unwrap_or_else(|p| p.into_inner()) = Some((paths, handle));
    }
}

/// The digest of the host build root `paths`: the started computation's
/// result if it covers the same paths, else computed now.
fn host_root_digest(paths: &[PathBuf]) -> anyhow::Result<bitzel_cache::Digest> {
    let pending = pending_root()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if let Some((p, handle)) = pending {
        if p == paths {
            return match handle.join() {
                Ok(r) => Ok(r?),
                Err(_) => anyhow::bail!("internal error: the host root digest thread panicked"),
            };
        }
    }
    Ok(bitzel_exec::hosttools::root_digest(paths)?)
}

fn host_tools(
    out: &Output,
    project: &Project,
    ws: &Workspace,
    cache: &Cache,
    build_dir: &Path,
    may_build_root: bool,
) -> anyhow::Result<HostTools> {
    let list = |v: &str| -> Vec<String> {
        ws.config
            .get_var(v)
            .map(|s| s.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    };
    let required = list("HOSTTOOLS");
    let optional = list("HOSTTOOLS_NONFATAL");
    if project.bitzel.build_root == Some(bitzel_config::BuildRoot::Rootfs) {
        return crate::cmd::rootfs::tools(
            out,
            project,
            cache,
            build_dir,
            (&required, &optional),
            may_build_root,
        );
    }
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    let set = bitzel_exec::hosttools::resolve(&required, &optional, &path)?;
    let dir = build_dir.join("tmp").join("hosttools");
    set.link_into(&dir)?;
    let root_paths = host_root_paths();
    Ok(HostTools {
        dir,
        digest: set.digest()?,
        root_digest: host_root_digest(&host_root_key_paths())?,
        root_paths,
        rootfs: None,
    })
}

/// Run the build. Returns the exit code (0, 1 on failure, 130 on Ctrl-C).
pub fn build(
    out: &Output,
    project: &Project,
    ws: &Workspace,
    req: &BuildRequest,
) -> anyhow::Result<ExitCode> {
    let t0 = Instant::now();
    let recipes = recipes_from_workspace(ws);
    let prefs = prefs_from_workspace(ws);
    let task = with_do(
        req.task
            .as_deref()
            .or(project.task.as_deref())
            .unwrap_or("build"),
    );
    let names = crate::cmd::build::requested_targets(project, &req.targets);
    let targets: Vec<Target> = names.iter().map(|n| Target::parse(n, &task)).collect();
    let plan = build_graph(&recipes, &prefs, &targets).map_err(|e| with_skip_reasons(e, ws))?;
    for w in &plan.warnings {
        out.warn(w);
    }
    // BitBake logs these and builds on; its exit status is then 1.
    for e in &plan.errors {
        out.error(&anyhow::anyhow!("{e}"));
    }

    let forced = forced_tasks(out, ws, &plan, req.force);
    let build_dir = build_dir(project)?;
    let cancel = CancelToken::new();
    cancel_on_ctrl_c(&cancel)?;
    let opts = RunOptions {
        jobs: project
            .bitzel
            .jobs
            .unwrap_or_else(bitzel_graph::default_jobs),
        keep_going: req.keep_going || req.explain_only,
        dry_run: req.dry_run,
        cancel: cancel.clone(),
    };
    // `bitzel explain` prints only its report on stdout: no progress.
    let progress = (!req.explain_only).then(|| Progress::new(out, req.json));

    let cache = open_cache(project)?;
    let choice = backend_choice(project)?;
    let cfg = SandboxConfig::new(crate::build_flow::sandbox_helper());
    let (backend, _report) = bitzel_sandbox::select(choice, &cfg).context(
        "no sandbox backend works here (run `bitzel doctor` to see why; `--sandbox none` runs without isolation)",
    )?;
    if project.bitzel.build_root == Some(bitzel_config::BuildRoot::Rootfs)
        && (!backend.hermetic() || backend.remaps_paths())
    {
        anyhow::bail!(
            "the rootfs build root needs a sandbox that mounts it as the task's `/` (native or bwrap); the {} backend cannot hide the host: use `--sandbox native`/`bwrap` (see `bitzel doctor`) or `--build-root host`",
            backend.name()
        );
    }
    if !backend.hermetic() {
        out.warn("running tasks WITHOUT a sandbox (--sandbox none): results are keyed apart from sandboxed ones and kept in the local cache only");
    }
    // Unsandboxed results are never shared: no uploads, and no downloads either (entries
    // keyed `sandbox: none` are never uploaded, so a remote cannot hold them).
    let remote = if backend.hermetic() {
        remote_level(out, project, req, &cache)?
    } else {
        if req.remote_cache.is_some()
            || project
                .bitzel
                .remote_cache
                .as_ref()
                .is_some_and(|r| r.url.is_some())
        {
            out.warn("remote cache not used with --sandbox none: results of unsandboxed tasks are never uploaded, so none can be downloaded either");
        }
        None
    };
    let executor = if backend.hermetic() {
        remote_executor(project, req, &cache)?
    } else {
        if remote_executor(project, req, &cache)?.is_some() {
            anyhow::bail!("--remote-executor needs a sandbox: results of unsandboxed tasks are never shared (drop --sandbox none)");
        }
        None
    };
    // The engine is the remote cache level unless another one is configured.
    let remote = match (&remote, &executor) {
        (None, Some((store, _))) => Some(store.clone()),
        _ => remote,
    };
    let cache = match &remote {
        Some(r) => cache.with_levels(vec![Arc::clone(r) as Arc<dyn Storage>]),
        None => cache,
    };
    let tools = host_tools(out, project, ws, &cache, &build_dir, !req.explain_only)?;
    let dl_dir = downloads_dir(project)?;
    let exec = BuildExecutor {
        no_network: req.explain_only,
        timeout: req.timeout_secs.map(std::time::Duration::from_secs),
        explain_only: req.explain_only,
        devshell: req.devshell.clone(),
        force: forced.clone(),
        remote: executor
            .as_ref()
            .map(|(_, r)| r as &dyn bitzel_exec::remote::RemoteRunner),
        python: python_setup(project),
        graph: Some(&plan.graph),
        ..BuildExecutor::new(
            &ws.recipes,
            &cache,
            backend.as_ref(),
            HostDirs {
                build_dir: build_dir.clone(),
                dl_dir,
            },
            tools,
        )
    };
    // Builds are recorded (not `bitzel explain`, a dry run or a devshell).
    let recorder = (!req.explain_only && !req.dry_run && req.devshell.is_none())
        .then(crate::buildstats::Recorder::new);
    let (summary, outputs) = run_with_outputs(&plan.graph, &exec, &opts, &|e| {
        if let Some(p) = &progress {
            p.event(e);
        }
        if let Some(r) = &recorder {
            r.event(e);
        }
    });
    drop(progress);
    let record =
        recorder.map(|r| finish_record(r, &plan.graph, &summary, opts.jobs, &exec, &cache));
    if let Some(record) = &record {
        out.info(&crate::buildstats::summary_line(record));
        save_record(out, project, &build_dir, record, req)?;
    }

    if summary.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    if req.explain_only {
        return crate::cmd::explain::report(
            out,
            &cache,
            &plan.graph,
            &exec.would_run,
            &summary,
            req.json,
        );
    }
    if req.explain {
        crate::cmd::explain::print_misses(out, &cache, &exec.misses)?;
    }
    let deploy = deploy_dir(project, ws)?;
    let published = bitzel_exec::deploy::publish(&cache, &plan.graph, &outputs, &deploy)?;
    crate::deploy_manifest::record(&cache, &plan.graph, &outputs, &deploy)
        .context("recording which recipe deployed which file (for `-c clean`)")?;
    for (id, f) in &summary.failures {
        let t = &plan.graph.tasks[*id];
        eprintln!("ERROR: task {} failed: {}", t.label(), f.message);
        if let Some(tail) = &f.log_tail {
            eprintln!("---- last lines of the log ----\n{tail}\n-------------------------------");
        }
    }
    let failed: BTreeSet<String> = summary
        .failures
        .iter()
        .map(|(id, _)| plan.graph.tasks[*id].label())
        .collect();
    let reran: Vec<&str> = forced
        .iter()
        .filter(|l| !failed.contains(*l))
        .map(String::as_str)
        .collect();
    if !reran.is_empty() {
        out.info(&format!(
            "forced (-f): {} ran again; its result replaced the local cache entry{}",
            reran.join(", "),
            if remote.is_some() {
                " (the remote cache keeps its entry)"
            } else {
                ""
            }
        ));
    }
    if let Some(r) = &remote {
        r.flush();
    }
    if let Some(code) = devshell_exit(req, &exec, &summary)? {
        return Ok(code);
    }
    let cache_summary = CacheSummary::new(cache.counts(), remote.as_ref().map(|r| r.stats()));
    let sources = exec.counters.download_summary();
    let (rx_downloaded, rx_eager) = executor
        .as_ref()
        .map_or((0, 0), |(_, r)| r.download_figures());
    if let Some(path) = &req.summary_json {
        let v = serde_json::json!({
            "remote_exec_bytes_downloaded": rx_downloaded,
            "remote_exec_bytes_eager": rx_eager,
            "executed": summary.executed,
            "cached": summary.cached,
            "noexec": summary.noexec,
            "failed": summary.failed,
            "not_run": summary.not_run,
            "wall_s": summary.wall.as_secs_f64(),
            "critical_path_s": record.as_ref().map(|r| r.critical_path_us as f64 / 1e6),
            "total_s": t0.elapsed().as_secs_f64(),
            "local_hits": cache_summary.local_hits,
            "remote_hits": cache_summary.remote_hits,
            "uploads": cache_summary.uploads,
            "bytes_uploaded": cache_summary.bytes_uploaded,
            "bytes_downloaded": cache_summary.bytes_downloaded,
            "remote_unavailable": cache_summary.remote_unavailable,
            "downloads_done": sources.done,
            "downloads_bytes": sources.bytes,
            "downloads_avoided": sources.avoided,
        });
        std::fs::write(path, format!("{v}\n"))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if remote.is_some() {
        out.info(&cache_summary.to_string());
    }
    if let Some((_, r)) = &executor {
        out.info(&r.summary_line());
    }
    out.info(&format!(
        "sources: {} downloaded ({} bytes), {} not needed (every task reading them was cached)",
        sources.done, sources.bytes, sources.avoided
    ));
    let layers = exec
        .counters
        .layers_materialised
        .load(std::sync::atomic::Ordering::Relaxed);
    out.info(&format!(
        "{layers} layers materialised; {:.2}s in all (parse, graph, keys, sandboxes)",
        t0.elapsed().as_secs_f64()
    ));
    if !published.is_empty() {
        out.info(&format!("artifacts: {}", crate::project::shown(&deploy)));
    }
    if summary.cancelled {
        return Ok(ExitCode::from(130));
    }
    Ok(if summary.success() && plan.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The build record of a finished run: the recorder's timings with what
/// the executor measured and why each executed task ran.
fn finish_record(
    recorder: crate::buildstats::Recorder,
    graph: &bitzel_graph::TaskGraph,
    summary: &bitzel_graph::RunSummary,
    jobs: usize,
    exec: &BuildExecutor<'_>,
    cache: &Cache,
) -> crate::buildstats::BuildRecord {
    let stats = std::mem::take(
        &mut *exec
            .counters
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner()),
    );
    let misses = exec.misses.lock().unwrap_or_else(|p| p.into_inner());
    let actions: Vec<&bitzel_cache::Action> = misses.iter().map(|m| &m.action).collect();
    let why: std::collections::HashMap<String, String> = misses
        .iter()
        .map(|m| m.label.clone())
        .zip(crate::cmd::explain::first_differences(cache, &actions))
        .collect();
    recorder.finish(graph, summary, jobs, &stats, &why)
}

/// Keep the record (unless `build_records` is 0), and write the HTML report
/// (`--timings`) and the Chrome trace (`--trace`) the request asks for.
fn save_record(
    out: &Output,
    project: &Project,
    build_dir: &Path,
    record: &crate::buildstats::BuildRecord,
    req: &BuildRequest,
) -> anyhow::Result<()> {
    let keep = crate::buildstats::records_to_keep(project.bitzel.build_records)?;
    let dir = crate::buildstats::records_dir(build_dir);
    if keep > 0 {
        crate::buildstats::write(&dir, record, keep).context("writing the build record")?;
    }
    if req.timings {
        let stem = crate::buildstats::stem(record);
        let path = crate::cmd::report::write_html(&dir, &stem, record)?;
        out.info(&format!("timings: {}", crate::project::shown(&path)));
    }
    if let Some(path) = &req.trace {
        crate::cmd::report::write_trace(path, record)?;
        out.info(&format!("trace: {}", crate::project::shown(path)));
    }
    Ok(())
}

/// The labels of the target tasks `-f` runs again: each target task that
/// has an action (a `[noexec]` one or the fetch built-in is named in a
/// warning instead).
fn forced_tasks(
    out: &Output,
    ws: &Workspace,
    plan: &bitzel_graph::BuildPlan,
    force: bool,
) -> BTreeSet<String> {
    let mut forced = BTreeSet::new();
    if !force {
        return forced;
    }
    for &id in &plan.targets {
        let t = &plan.graph.tasks[id];
        let fetch = ws
            .recipes
            .get(t.recipe)
            .and_then(|r| r.data.get_flag(&t.task, "builtin"))
            .is_some_and(|b| b.trim() == "fetch");
        if t.noexec {
            out.warn(&format!(
                "-f: {} has no action ([noexec]), so there is nothing to run again; name the task with -c (e.g. -c compile)",
                t.label()
            ));
        } else if fetch {
            out.warn(&format!(
                "-f: {} is not run again: downloads are fetched, and checked against their checksums, when a task that needs them runs",
                t.label()
            ));
        } else {
            forced.insert(t.label());
        }
    }
    forced
}

/// `bitzel devshell`'s exit code: the shell's status when it opened; 1 when
/// a dependency failed (the failures are printed); an error when the shell
/// never opened although nothing failed. `None` for other verbs.
fn devshell_exit(
    req: &BuildRequest,
    exec: &BuildExecutor<'_>,
    summary: &bitzel_graph::RunSummary,
) -> anyhow::Result<Option<ExitCode>> {
    let Some(label) = &req.devshell else {
        return Ok(None);
    };
    let status = *exec
        .devshell_status
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    match status {
        Some(code) => Ok(Some(ExitCode::from(u8::try_from(code).unwrap_or(1)))),
        None if summary.cancelled => Ok(Some(ExitCode::from(130))),
        None if !summary.success() => Ok(Some(ExitCode::from(1))),
        None => anyhow::bail!("{label}: the shell did not open (the task runs nothing)"),
    }
}

/// BitBake's "Nothing PROVIDES 'x' (but <recipe> was skipped: <reason>)":
/// name the recipes an anonymous function skipped that would have provided
/// the missing name.
pub fn with_skip_reasons(e: bitzel_graph::GraphError, ws: &Workspace) -> bitzel_graph::GraphError {
    let bitzel_graph::GraphError::NoProvider { mut missing, chain } = e else {
        return e;
    };
    let build = matches!(missing.namespace, bitzel_graph::Namespace::Build);
    let var = if build { "PROVIDES" } else { "RPROVIDES" };
    let skipped: Vec<String> = crate::project::skip_reasons(ws, &missing.name, var)
        .into_iter()
        .map(|s| format!("but {s}"))
        .collect();
    if !skipped.is_empty() && missing.reason.is_none() {
        missing.reason = Some(skipped.join("; "));
    }
    bitzel_graph::GraphError::NoProvider { missing, chain }
}
