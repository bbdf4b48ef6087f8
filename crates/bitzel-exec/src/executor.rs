//! The executor the runqueue drives: for every task, derive its action from
//! the recipe's datastore and its dependencies' **outputs**, look the key up
//! in the cache, and on a miss assemble the sandbox (overlay of the recipe's
//! earlier outputs at `/bitzel/work`, dependencies' sysroot layers at
//! `/bitzel/sysroot`, declared downloads at `/bitzel/downloads`), run the
//! task, capture the upperdir and record the result.
//!
//! Nothing is materialised for a hit: outputs flow to dependents as digests,
//! and layers are created from the CAS only when a task that needs them
//! really runs ("build without the bytes").

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bitzel_cache::{Action, ActionResult, Baseline, Cache, Digest, Lookup};
use bitzel_graph::{
    CancelToken, Executor, FailureKind, Outcome, TaskFailure, TaskId, TaskNode, TaskResult,
};
use bitzel_meta::{DataStore, Recipe};
use bitzel_sandbox::{Backend, Mount, PathMap, RootSpec, SandboxSpec, Stdio};

use crate::builtin::{
    fetch, fixed_output, patch_script, unpack_script, Builtin, FetchSettings, Fetched,
    PatchSettings, SrcEntry, UnpackSettings,
};
use crate::file_checksums::{task_files, TaskFiles};
use crate::prefetch::{parse_src_uri, recipe_fetch_settings};
use crate::script::{exported_env, task_script, TaskData};

/// The task flags bitzel-exec reads that change what a task runs or what is
/// captured of it. Each one present on a task is in its key as the variable
/// `do_X[flag]` (so `explain` names it). `[dirs]`, `[cleandirs]`,
/// `[prefuncs]` and `[postfuncs]` also shape the script, `[builtin]` chooses
/// it, `[network]` is also the `network` policy; `[sysroot-layer]` and
/// `[deploy-dir]` choose the extra outputs stored with the result.
///
/// Deliberately not here: `[file-checksums]` (its value holds host paths; the
/// files' names and digests are inputs instead, see [`crate::file_checksums`])
/// and the limits flags of [`crate::limits`] (they decide whether a run
/// finishes, not what it produces; failures are never cached).
pub const KEYED_TASK_FLAGS: &[&str] = &[
    "builtin",
    "cleandirs",
    "deploy-dir",
    "dirs",
    "network",
    "postfuncs",
    "prefuncs",
    "sysroot-layer",
    "sysroot-native",
];

/// The fixed sandbox paths (see ARCHITECTURE.md).
pub mod paths {
    /// The recipe's `WORKDIR`.
    pub const WORK: &str = "/bitzel/work";
    /// The dependencies' sysroot layers (target recipes).
    pub const SYSROOT: &str = "/bitzel/sysroot";
    /// The native dependencies' sysroot layers (`STAGING_DIR_NATIVE`).
    pub const SYSROOT_NATIVE: &str = "/bitzel/sysroot-native";
    /// The declared downloads.
    pub const DOWNLOADS: &str = "/bitzel/downloads";
    /// The allow-listed host tools (symlinks).
    pub const HOSTTOOLS: &str = "/bitzel/hosttools";
    /// The task's script.
    pub const SCRIPT: &str = "/bitzel/run.sh";
    /// Files named by the task's `[file-checksums]` flag, by base name.
    pub const FILES: &str = "/bitzel/files";
    /// In a devshell only: the recipe's kept run scripts and logs (read-only).
    pub const TEMP: &str = "/bitzel/temp";
}

impl TaskData for DataStore {
    fn var(&self, name: &str) -> Option<String> {
        self.get_var(name)
    }
    fn flag(&self, var: &str, flag: &str) -> Option<String> {
        self.get_flag(var, flag)
    }
    fn is_func(&self, name: &str) -> bool {
        DataStore::is_func(self, name)
    }
    fn is_python(&self, name: &str) -> bool {
        DataStore::is_python(self, name)
    }
    fn is_exported(&self, name: &str) -> bool {
        DataStore::is_exported(self, name)
    }
    fn names(&self) -> Vec<String> {
        self.keys()
    }
    fn unexpandable(&self, name: &str) -> bool {
        self.try_get_var(name).is_err()
    }
}

/// One download as later tasks of the recipe see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    /// What the fetch built-in returned. For a download not fetched yet
    /// (`pending`): its name and kind, `local_path` where it will be in
    /// `DL_DIR`, and `digest` its declared identity text
    /// ([`crate::builtin::FixedOutput::identity`]).
    pub fetched: Fetched,
    /// What enters the keys of the tasks that consume it: the content digest
    /// (files) or tree digest (directories) of what `do_fetch` read, or, for
    /// a fixed-output download, [`fixed_output_digest`] of its identity.
    pub digest: Digest,
    /// A fixed-output download whose bytes `do_fetch` did not fetch: the
    /// entry to fetch (and verify against its declaration) when a task that
    /// needs the bytes really runs. `None`: `fetched` is in place.
    pub pending: Option<SrcEntry>,
}

/// The key input of a fixed-output download: a digest of its declared
/// identity (`sha256:<hex>`, `git-export:<commit>`), the same whether or not
/// its bytes were ever fetched, on any machine.
pub fn fixed_output_digest(identity: &str) -> Digest {
    Digest::of_bytes(format!("bitzel fixed-output download v1\0{identity}").as_bytes())
}

/// What a task hands to its dependents: digests only, never bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskOutput {
    /// The recipe's work layers up to and including this task, lowest first.
    pub work: Vec<Digest>,
    /// The sysroot layers this task saw (by recipe), inherited by the
    /// recipe's later tasks.
    pub sysroots: BTreeMap<String, Digest>,
    /// The sysroot layers dependents in other recipes see: this recipe's own
    /// layer (when the task has `[sysroot-layer]`) plus what it saw.
    pub exported_sysroots: BTreeMap<String, Digest>,
    /// The native sysroot layers this task saw (by recipe), mounted at
    /// `/bitzel/sysroot-native`, inherited by the recipe's later tasks.
    pub native_sysroots: BTreeMap<String, Digest>,
    /// The native sysroot layers dependents in other recipes see: only a
    /// `[sysroot-native]` task exports any (its own layer plus the native
    /// layers it saw). A target recipe never passes on the native tools it
    /// used, as BitBake's `setscene_depvalid` does not: they stay out of
    /// its dependents' sysroots and keys, and out of images.
    pub exported_native_sysroots: BTreeMap<String, Digest>,
    /// The recipe's downloads, by their name under `/bitzel/downloads`.
    pub downloads: BTreeMap<String, Download>,
    /// A deploy tree (`[deploy-dir]` subtree) this task produced.
    pub deploy: Option<Digest>,
}

/// Where things are on the host.
#[derive(Debug, Clone)]
pub struct HostDirs {
    /// The build directory (`build/`): logs, scratch space, deploy output.
    pub build_dir: PathBuf,
    /// The host download directory (`DL_DIR` outside the sandbox).
    pub dl_dir: PathBuf,
}

impl HostDirs {
    /// Scratch space for sandboxes (upper and overlay work dirs).
    pub fn scratch(&self) -> PathBuf {
        self.build_dir.join("tmp").join("sandbox")
    }
    /// The newest log of a task: `<build>/tmp/work/<pn>/temp/log.do_X`, a
    /// symlink to this or an earlier process's `log.do_X.<pid>`
    /// ([`crate::tasklog`]).
    pub fn log_path(&self, pn: &str, task: &str) -> PathBuf {
        crate::tasklog::temp_dir(&self.build_dir, pn).join(format!("log.{task}"))
    }
    /// The files this process keeps of a run of a task (run script, log).
    pub fn kept_files(&self, pn: &str, task: &str) -> crate::tasklog::KeptFiles {
        crate::tasklog::KeptFiles::new(&self.build_dir, pn, task)
    }
}

/// The host tools a task may use.
#[derive(Debug, Clone)]
pub struct HostTools {
    /// A directory of symlinks to the allowed tools, bound at `/bitzel/hosttools`.
    pub dir: PathBuf,
    /// The digest of the tools' contents (part of every key).
    pub digest: Digest,
    /// Host directories bound read-only as the build root (`/usr`, `/lib`, ...).
    pub root_paths: Vec<PathBuf>,
    /// The content digest of everything under `root_paths`
    /// ([`crate::hosttools::root_digest`]): the key input `host-root`, so a
    /// changed header, library or `/etc` file the task can read re-runs it.
    /// In `rootfs` mode, the root's tree digest (key input `build-root`).
    pub root_digest: Digest,
    /// `rootfs` mode: the root every task runs on (then `root_paths` is empty, `dir`'s links
    /// point into the root, and `digest` covers only their names and targets).
    pub rootfs: Option<RootfsLayer>,
}

/// The key input naming the build root's digest in `rootfs` mode (`host-root` in `host`
/// mode): [`HostTools::build_root_digest`].
pub const BUILD_ROOT_INPUT: &str = "build-root";

/// A `rootfs` build root: its tree in the CAS and that tree's layer on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootfsLayer {
    /// The tree digest (the `build-root` key input of every task).
    pub digest: Digest,
    /// The materialised layer (`Cache::ensure_layer`), the lowest layer of every task.
    pub layer: PathBuf,
}

impl HostTools {
    /// The one value that says which build root a task ran on: the `rootfs` tree digest,
    /// or the host root's content digest. Two machines with equal values run a task on
    /// the same files (a remote executor compares it before taking an action).
    pub fn build_root_digest(&self) -> Digest {
        self.root_digest
    }

    /// `"rootfs"` or `"host"` (the key's `policy["build_root"]`).
    pub fn build_root_kind(&self) -> &'static str {
        if self.rootfs.is_some() {
            "rootfs"
        } else {
            "host"
        }
    }
}

/// Counters for the build summary (task counts come from the runqueue's
/// summary; these are what only the executor sees).
#[derive(Debug, Default)]
pub struct Counters {
    /// Layers materialised from the CAS for running tasks.
    pub layers_materialised: AtomicU64,
    /// The fixed-output downloads of this build and which were fetched.
    pub downloads: Mutex<DownloadLog>,
    /// What was measured of each task that ran in a sandbox, by label
    /// (`pn:do_task`), for the build record.
    pub tasks: Mutex<HashMap<String, TaskStats>>,
}

impl Counters {
    fn record(&self, label: String, update: impl FnOnce(&mut TaskStats)) {
        let mut m = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        update(m.entry(label).or_default());
    }
}

/// The fixed-output downloads a build met: declared by `do_fetch`, fetched
/// (or found and verified in `DL_DIR`) only for the tasks that ran.
#[derive(Debug, Default)]
pub struct DownloadLog {
    /// Every fixed-output download (identity digest, name) `do_fetch` declared.
    declared: BTreeSet<(Digest, String)>,
    /// Those whose bytes are in place (verified), with where they are.
    ready: BTreeMap<(Digest, String), PathBuf>,
    /// How many were transferred into `DL_DIR` (downloaded, copied from a
    /// mirror, cloned), and their bytes (files only).
    done: u64,
    bytes: u64,
}

/// What the build did with its downloads (the summary and `--summary-json`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DownloadSummary {
    /// Downloads transferred into `DL_DIR`.
    pub done: u64,
    /// Their bytes (files; a git clone counts 0).
    pub bytes: u64,
    /// Fixed-output downloads whose bytes no task needed (every consumer a
    /// cache hit), so they were neither fetched nor read.
    pub avoided: u64,
}

impl Counters {
    /// What the build did with its downloads.
    pub fn download_summary(&self) -> DownloadSummary {
        let log = self.downloads.lock().unwrap_or_else(|p| p.into_inner());
        let avoided = log
            .declared
            .iter()
            .filter(|k| !log.ready.contains_key(*k))
            .count();
        DownloadSummary {
            done: log.done,
            bytes: log.bytes,
            avoided: u64::try_from(avoided).unwrap_or(u64::MAX),
        }
    }
}

/// What the executor measured of one task (each `None` when not measured).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskStats {
    /// Bytes of file content captured from its output.
    pub bytes_captured: Option<u64>,
    /// Peak memory of its sandbox (the cgroup's `memory.peak`), in bytes.
    pub memory_peak: Option<u64>,
}

/// Why a task missed, kept for `--explain`.
#[derive(Debug, Clone)]
pub struct MissRecord {
    /// `pn:do_task`.
    pub label: String,
    /// The action that ran.
    pub action: Action,
}

/// Why `bitzel explain` says a task would run.
#[derive(Debug, Clone)]
pub enum WouldRun {
    /// Its key is not in the cache: the action it would run (the binary diffs
    /// it against the closest earlier entry). `assuming` names the tasks this
    /// one depends on that would run themselves: the key was computed as if
    /// they gave their previous outputs again, so what differs is the task's
    /// own doing.
    Changed {
        /// The action.
        action: Box<Action>,
        /// Tasks assumed to give their previous outputs (labels, sorted).
        assuming: Vec<String>,
    },
    /// It depends on tasks (labels, sorted) that would run: it runs again
    /// only if one of them changes its output (early cutoff), which is known
    /// only once they have run. Either its key with their previous outputs is
    /// in the cache, or that key cannot be computed (one of them has no
    /// earlier result).
    After(Vec<String>),
    /// `do_fetch` would download a source (`explain` never does): the
    /// message says which. Its dependents' keys are not known.
    Fetch(String),
}

/// One task `bitzel explain` reports.
#[derive(Debug, Clone)]
pub struct WouldRunRecord {
    /// The task's id in the graph (the binary prints in graph order).
    pub id: TaskId,
    /// `pn:do_task`.
    pub label: String,
    /// Why it would run.
    pub why: WouldRun,
}

/// What an explain-only run found (`BuildExecutor::explain_only`): the tasks
/// that would run; the `[noexec]` tasks passing on the fact that a
/// dependency would run; the tasks whose output is not even presumably
/// known (no earlier result to assume).
#[derive(Debug, Default)]
pub struct WouldRunLog {
    records: Mutex<BTreeMap<TaskId, WouldRunRecord>>,
    passed_on: Mutex<BTreeMap<TaskId, Vec<String>>>,
    unknown: Mutex<BTreeSet<TaskId>>,
}

impl WouldRunLog {
    /// The reported tasks, by task id.
    pub fn records(&self) -> Vec<WouldRunRecord> {
        self.records
            .lock()
            .map(|r| r.values().cloned().collect())
            .unwrap_or_default()
    }

    fn record(&self, task: &TaskNode, why: WouldRun, unknown: bool) {
        if let Ok(mut r) = self.records.lock() {
            let (id, label) = (task.id, task.label());
            r.insert(id, WouldRunRecord { id, label, why });
        }
        if unknown {
            if let Ok(mut u) = self.unknown.lock() {
                u.insert(task.id);
            }
        }
    }

    fn pass_on(&self, task: &TaskNode, waits: Vec<String>, unknown: bool) {
        if let Ok(mut p) = self.passed_on.lock() {
            p.insert(task.id, waits);
        }
        if unknown {
            if let Ok(mut u) = self.unknown.lock() {
                u.insert(task.id);
            }
        }
    }

    /// The reported tasks among `deps` (seen through `[noexec]` tasks), sorted:
    /// what the task's key waits on; and whether one of `deps` has an output
    /// not even presumably known.
    fn waits_on(&self, deps: &[(&TaskNode, &TaskOutput)]) -> (Vec<String>, bool) {
        let mut out = BTreeSet::new();
        let (Ok(records), Ok(passed), Ok(unknown)) = (
            self.records.lock(),
            self.passed_on.lock(),
            self.unknown.lock(),
        ) else {
            return (Vec::new(), true);
        };
        for (d, _) in deps {
            if let Some(r) = records.get(&d.id) {
                out.insert(r.label.clone());
            } else if let Some(p) = passed.get(&d.id) {
                out.extend(p.iter().cloned());
            }
        }
        let unknown = deps.iter().any(|(d, _)| unknown.contains(&d.id));
        (out.into_iter().collect(), unknown)
    }
}

/// What a task will run with, besides its dependencies' outputs.
pub(crate) struct Prepared {
    /// The script text.
    pub(crate) script: String,
    /// A Python task's datastore, library mounts and key inputs.
    pub(crate) python: Option<crate::python::PyTask>,
    /// Whether the recipe's downloads are mounted and keyed.
    pub(crate) with_downloads: bool,
    /// Whether the task may use the network.
    pub(crate) network: bool,
    /// What the `[file-checksums]` flag gives the task.
    pub(crate) files: TaskFiles,
    /// Run an interactive shell in the task's sandbox instead of the task
    /// (`bitzel devshell`); nothing is captured.
    pub(crate) interactive: bool,
    /// Resource limits (`BITZEL_TASK_*`, task flags); not part of the key.
    pub(crate) limits: bitzel_sandbox::Limits,
    /// `[sysroot-layer]`: the output subtree exported as the recipe's sysroot.
    pub(crate) sysroot_layer: Option<String>,
    /// `[sysroot-native]`: that layer is a native sysroot.
    pub(crate) native_sysroot: bool,
    /// `[deploy-dir]`: the output subtree published as deploy output.
    pub(crate) deploy_dir: Option<String>,
    /// The run's time limit.
    pub(crate) timeout: Option<Duration>,
    /// The recipe's own names for the sandbox's places.
    pub(crate) named: crate::named::NamedPaths,
}

/// Where a running task's work directory is and how its output is found.
enum WorkDir {
    /// An overlay of the recipe's earlier outputs; this upperdir is the output.
    Overlay { upper: PathBuf },
    /// A flattened copy of them (backends without mounts); what changed since `baseline`
    /// is the output.
    Flattened { dir: PathBuf, baseline: Baseline },
}

/// What running a task in its sandbox gave.
pub(crate) enum Ran {
    /// The task ran and its output was captured.
    Captured(Box<ActionResult>, TaskOutput),
    /// `bitzel devshell`: the shell closed; nothing was captured.
    ShellClosed,
}

/// Everything the executor needs; shared by all worker threads.
pub struct BuildExecutor<'a> {
    /// The parsed recipes, indexed like the graph's `TaskNode::recipe`.
    pub recipes: &'a [Recipe],
    /// The cache (local, possibly stacked with a remote).
    pub cache: &'a Cache,
    /// The sandbox backend chosen at start-up.
    pub sandbox: &'a dyn Backend,
    /// Host directories.
    pub dirs: HostDirs,
    /// Allowed host tools.
    pub tools: HostTools,
    /// `BB_NO_NETWORK` from the configuration, or forced by the user.
    pub no_network: bool,
    /// Per-task timeout.
    pub timeout: Option<Duration>,
    /// Counters for the summary.
    pub counters: Counters,
    /// Actions that ran (for `--explain`).
    pub misses: Mutex<Vec<MissRecord>>,
    /// Compute keys and look them up, but run nothing (`bitzel explain`): a
    /// task that would run is recorded in `would_run` and succeeds with its
    /// closest earlier entry's output presumed (when it has one), so its
    /// dependents are keyed as if it gave that output again; nothing is
    /// fetched over the network.
    pub explain_only: bool,
    /// What an explain-only run found.
    pub would_run: WouldRunLog,
    /// `pn:do_task` whose sandbox gets an interactive shell instead of the
    /// task (`bitzel devshell`).
    pub devshell: Option<String>,
    /// `pn:do_task` labels run even when the cache has their key
    /// (`bitzel build -f`); their results replace the local entry only
    /// ([`Cache::put_local`]): a remote keeps its entry.
    pub force: BTreeSet<String>,
    /// The devshell's exit status once it closed (a signal as 128 + signal).
    pub devshell_status: Mutex<Option<i32>>,
    /// Runs misses on a remote engine instead of here (`--remote-executor`);
    /// see [`crate::remote`].
    pub remote: Option<&'a dyn crate::remote::RemoteRunner>,
    /// Where Python tasks get BitBake's library ([`crate::python`]).
    pub python: crate::python::PythonSetup,
    /// The build's task graph: a Python task's `BB_TASKDEPDATA` is its
    /// closure in it. Without it (executors driven task by task) a Python
    /// task's `BB_TASKDEPDATA` holds the task alone.
    pub graph: Option<&'a bitzel_graph::TaskGraph>,
}

impl<'a> BuildExecutor<'a> {
    /// An executor of `recipes` on `cache` and `sandbox`, with `dirs` and
    /// `tools`: the network allowed, no timeout, nothing forced, no
    /// devshell, no remote runner and no Python tasks
    /// ([`crate::python::PythonSetup::none`]). Callers set the other public
    /// fields with struct-update syntax (`BuildExecutor { no_network: true,
    /// ..BuildExecutor::new(…) }`).
    pub fn new(
        recipes: &'a [Recipe],
        cache: &'a Cache,
        sandbox: &'a dyn Backend,
        dirs: HostDirs,
        tools: HostTools,
    ) -> BuildExecutor<'a> {
        BuildExecutor {
            recipes,
            cache,
            sandbox,
            dirs,
            tools,
            no_network: false,
            timeout: None,
            counters: Counters::default(),
            misses: Mutex::new(Vec::new()),
            explain_only: false,
            would_run: WouldRunLog::default(),
            devshell: None,
            force: BTreeSet::new(),
            devshell_status: Mutex::new(None),
            remote: None,
            python: crate::python::PythonSetup::none(),
            graph: None,
        }
    }

    /// `BB_TASKDEPDATA` of `task`, as BitBake's runqueue gives it to the
    /// worker (`build_taskdepdata`): the task and everything it depends on,
    /// transitively, by BitBake's task id `<file>:<task>` (`file` the
    /// recipe's BitBake name, `virtual:<variant>:` for a variant), each with
    /// its PN, task name, file, direct dependencies' ids, what the recipe
    /// provides (PN first) and `BB_HASHFILENAME`. BitBake's `taskhash` and
    /// `unihash` are signatures bitzel does not compute (its keys replace
    /// them): both are the BLAKE3 of the id as keyed (host directories as
    /// placeholders), stable across checkouts and distinct per task.
    pub fn taskdepdata(&self, task: &TaskNode) -> serde_json::Value {
        let roots = self
            .recipes
            .get(task.recipe)
            .map(|r| crate::python::host_roots(&r.data))
            .unwrap_or_default();
        let mut out = serde_json::Map::new();
        let mut stack = vec![task.clone()];
        let mut seen = BTreeSet::new();
        while let Some(t) = stack.pop() {
            if !seen.insert(t.id) {
                continue;
            }
            let deps: Vec<TaskNode> = match self.graph {
                Some(g) => g.deps(t.id).iter().map(|&i| g.tasks[i].clone()).collect(),
                None => Vec::new(),
            };
            let Some(recipe) = self.recipes.get(t.recipe) else {
                continue;
            };
            let tid = |n: &TaskNode| {
                let f = self
                    .recipes
                    .get(n.recipe)
                    .map(Recipe::virtual_name)
                    .unwrap_or_default();
                format!("{f}:{}", n.task)
            };
            let id = tid(&t);
            let mut provides = vec![recipe.pn.clone()];
            for p in recipe
                .data
                .get_var("PROVIDES")
                .unwrap_or_default()
                .split_whitespace()
            {
                if !provides.iter().any(|x| x == p) {
                    provides.push(p.to_string());
                }
            }
            let hash =
                Digest::of_bytes(crate::python::keyed_text(&id, &roots).as_bytes()).to_string();
            out.insert(
                id,
                serde_json::json!({
                    "pn": recipe.pn,
                    "taskname": t.task,
                    "fn": recipe.virtual_name(),
                    "deps": deps.iter().map(tid).collect::<Vec<_>>(),
                    "provides": provides,
                    "taskhash": hash,
                    "unihash": hash,
                    "hashfn": recipe.data.get_var("BB_HASHFILENAME").unwrap_or_default(),
                }),
            );
            stack.extend(deps);
        }
        serde_json::Value::Object(out)
    }
}

pub(crate) fn fail(kind: FailureKind, msg: impl Into<String>) -> TaskFailure {
    TaskFailure::new(kind, msg)
}

pub(crate) fn setup_err(task: &TaskNode, what: impl std::fmt::Display) -> TaskFailure {
    fail(FailureKind::Setup, format!("{}: {what}", task.label()))
}

/// The last `n` lines of a file (for failure messages).
pub fn log_tail(path: &Path, n: usize) -> Option<String> {
    let mut f = fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let start = len.saturating_sub(16 * 1024);
    f.seek(SeekFrom::Start(start)).ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(n);
    Some(lines[from..].join("\n"))
}

impl BuildExecutor<'_> {
    fn note_miss(&self, task: &TaskNode, action: Action) {
        if let Ok(mut m) = self.misses.lock() {
            m.push(MissRecord {
                label: task.label(),
                action,
            });
        }
    }

    fn recipe(&self, task: &TaskNode) -> Result<&Recipe, TaskFailure> {
        self.recipes.get(task.recipe).ok_or_else(|| {
            fail(
                FailureKind::Internal,
                format!(
                    "{}: recipe index {} out of range",
                    task.label(),
                    task.recipe
                ),
            )
        })
    }

    /// Merge what the dependencies hand over.
    fn merge_inputs(task: &TaskNode, deps: &[(&TaskNode, &TaskOutput)]) -> TaskOutput {
        let mut out = TaskOutput::default();
        let mut seen = BTreeSet::new();
        // Same-recipe work layers: ordered union, dependencies in graph order.
        let mut same: Vec<&TaskOutput> = deps
            .iter()
            .filter(|(d, _)| d.recipe == task.recipe)
            .map(|(_, o)| *o)
            .collect();
        // Longest stack first keeps the chain order when stacks share a prefix.
        same.sort_by_key(|o| std::cmp::Reverse(o.work.len()));
        for o in &same {
            for d in &o.work {
                if seen.insert(*d) {
                    out.work.push(*d);
                }
            }
            out.sysroots
                .extend(o.sysroots.iter().map(|(k, v)| (k.clone(), *v)));
            out.native_sysroots
                .extend(o.native_sysroots.iter().map(|(k, v)| (k.clone(), *v)));
            out.downloads
                .extend(o.downloads.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        for (d, o) in deps {
            if d.recipe != task.recipe {
                out.sysroots
                    .extend(o.exported_sysroots.iter().map(|(k, v)| (k.clone(), *v)));
                out.native_sysroots.extend(
                    o.exported_native_sysroots
                        .iter()
                        .map(|(k, v)| (k.clone(), *v)),
                );
            } else {
                out.exported_sysroots
                    .extend(o.exported_sysroots.iter().map(|(k, v)| (k.clone(), *v)));
                out.exported_native_sysroots.extend(
                    o.exported_native_sysroots
                        .iter()
                        .map(|(k, v)| (k.clone(), *v)),
                );
            }
        }
        out
    }

    fn fixed_env(&self, data: &DataStore) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        env.insert("PATH".into(), paths::HOSTTOOLS.to_string());
        env.insert("LC_ALL".into(), "C".into());
        env.insert("TZ".into(), "UTC".into());
        env.insert("HOME".into(), "/tmp".into());
        env.insert("SHELL".into(), "/bin/sh".into());
        env.insert("TERM".into(), "dumb".into());
        env.insert(
            "SOURCE_DATE_EPOCH".into(),
            data.get_var("SOURCE_DATE_EPOCH")
                .unwrap_or_else(|| "0".into()),
        );
        env.extend(exported_env(data));
        env
    }

    /// `DL_DIR`, `FILESPATH`, the mirrors and `BB_NO_NETWORK` of a recipe;
    /// and whether the configuration itself says `BB_NO_NETWORK`.
    fn fetch_settings(
        &self,
        task: &TaskNode,
        d: &DataStore,
    ) -> Result<(FetchSettings, bool), TaskFailure> {
        recipe_fetch_settings(d, &self.dirs.dl_dir, self.no_network)
            .map_err(|e| fail(FailureKind::Task, format!("{}: {e}", task.label())))
    }

    /// `do_fetch`: a fixed-output entry ([`fixed_output`]) is only declared
    /// (its identity keys the tasks after it; its bytes come when one of
    /// them runs, [`Self::download_sources`]); the others (`file://` entries
    /// of the layer, unpinned entries) are fetched now, as before.
    fn run_fetch(
        &self,
        task: &TaskNode,
        recipe: &Recipe,
        mut out: TaskOutput,
    ) -> Result<TaskResult<TaskOutput>, TaskFailure> {
        let d = &recipe.data;
        let entries = parse_src_uri(d)
            .map_err(|e| fail(FailureKind::Task, format!("{}: {e}", task.label())))?;
        let (settings, configured_offline) = self.fetch_settings(task, d)?;
        let mut now = Vec::new();
        for e in entries {
            let Some(fo) = fixed_output(&e) else {
                now.push(e);
                continue;
            };
            let digest = fixed_output_digest(&fo.identity);
            let fetched = Fetched {
                entry_index: e.index,
                local_path: self.dirs.dl_dir.join(&fo.local_name),
                local_name: fo.local_name.clone(),
                digest: fo.identity,
                sha256: e.sha256.clone(),
                is_dir: fo.is_dir,
                downloaded: false,
            };
            self.counters
                .downloads
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .declared
                .insert((digest, fo.local_name.clone()));
            out.downloads.insert(
                fo.local_name,
                Download {
                    fetched,
                    digest,
                    pending: Some(e),
                },
            );
        }
        let fetched = match fetch(&now, &settings) {
            Ok(f) => f,
            // `explain` never downloads; a build would (the network is allowed).
            Err(crate::builtin::BuiltinError::NoNetwork { uri, path })
                if self.explain_only && !configured_offline =>
            {
                let why = format!(
                    "`{uri}` is not in DL_DIR yet ({}): a build downloads it",
                    path.display()
                );
                self.would_run.record(task, WouldRun::Fetch(why), true);
                return Ok(TaskResult {
                    output: out,
                    outcome: Outcome::Executed,
                });
            }
            Err(e) => return Err(fail(FailureKind::Task, format!("{}: {e}", task.label()))),
        };
        for f in fetched {
            self.note_transfer(&f);
            let digest = f.digest.parse::<Digest>().map_err(|e| {
                fail(
                    FailureKind::Internal,
                    format!("{}: bad digest from fetch: {e}", task.label()),
                )
            })?;
            out.downloads.insert(
                f.local_name.clone(),
                Download {
                    fetched: f,
                    digest,
                    pending: None,
                },
            );
        }
        // What it did is a cache hit's work: local files read and digested,
        // fixed-output downloads declared. (A download without a checksum
        // is an error, so nothing reaches here after transferring bytes.)
        Ok(TaskResult {
            output: out,
            outcome: Outcome::Cached,
        })
    }

    /// Count a fetch that brought something into `DL_DIR`.
    fn note_transfer(&self, f: &Fetched) {
        if !f.downloaded {
            return;
        }
        let bytes = if f.is_dir {
            0
        } else {
            fs::metadata(&f.local_path).map(|m| m.len()).unwrap_or(0)
        };
        let mut log = self
            .counters
            .downloads
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        log.done += 1;
        log.bytes += bytes;
    }

    /// Where on the host each of the recipe's downloads is, for a task that
    /// runs with them: fixed-output downloads not fetched yet are fetched
    /// now (premirrors, upstream, mirrors; `BB_NO_NETWORK` honoured) and
    /// verified against their declaration, once per build.
    pub(crate) fn download_sources(
        &self,
        task: &TaskNode,
        recipe: Option<&Recipe>,
        inputs: &TaskOutput,
    ) -> Result<BTreeMap<String, PathBuf>, TaskFailure> {
        let mut out = BTreeMap::new();
        let mut settings = None;
        for (name, dl) in &inputs.downloads {
            let Some(entry) = &dl.pending else {
                out.insert(name.clone(), dl.fetched.local_path.clone());
                continue;
            };
            let key = (dl.digest, name.clone());
            let ready = self
                .counters
                .downloads
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .ready
                .get(&key)
                .cloned();
            if let Some(p) = ready {
                out.insert(name.clone(), p);
                continue;
            }
            let Some(recipe) = recipe else {
                // A remote job carries its downloads' bytes; nothing is pending.
                return Err(fail(
                    FailureKind::Internal,
                    format!(
                        "{}: `{}` was not fetched for this job",
                        task.label(),
                        entry.uri
                    ),
                ));
            };
            let s = match &settings {
                Some(s) => s,
                None => &*settings.insert(self.fetch_settings(task, &recipe.data)?.0),
            };
            let mut got = fetch(std::slice::from_ref(entry), s)
                .map_err(|e| fail(FailureKind::Task, format!("{}: {e}", task.label())))?;
            let f = got.pop().filter(|f| {
                f.local_name == *name && f.is_dir == dl.fetched.is_dir && got.is_empty()
            });
            let Some(f) = f else {
                return Err(fail(
                    FailureKind::Internal,
                    format!(
                        "{}: fetching `{}` gave something else than its declaration `{}`",
                        task.label(),
                        entry.uri,
                        dl.fetched.digest
                    ),
                ));
            };
            tracing::info!(task = %task.label(), uri = %entry.uri, path = %f.local_path.display(),
                downloaded = f.downloaded, "fetched a declared download for a task that runs");
            self.note_transfer(&f);
            self.counters
                .downloads
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .ready
                .insert(key, f.local_path.clone());
            out.insert(name.clone(), f.local_path);
        }
        Ok(out)
    }

    /// The script for a task and whether it needs the downloads mounted.
    fn script_for(
        &self,
        task: &TaskNode,
        recipe: &Recipe,
        inputs: &TaskOutput,
    ) -> Result<(String, bool), TaskFailure> {
        let d = &recipe.data;
        let builtin = builtin_of(recipe, task);
        let bad =
            |e: &dyn std::fmt::Display| fail(FailureKind::Task, format!("{}: {e}", task.label()));
        match builtin {
            Some(Builtin::Unpack) => {
                let entries = parse_src_uri(d).map_err(|e| bad(&e))?;
                let fetched: Vec<Fetched> = inputs
                    .downloads
                    .values()
                    .map(|x| x.fetched.clone())
                    .collect();
                let settings = UnpackSettings {
                    downloads_dir: paths::DOWNLOADS.into(),
                    unpack_dir: d.get_var("UNPACKDIR").unwrap_or_else(|| paths::WORK.into()),
                };
                Ok((
                    unpack_script(&entries, &fetched, &settings).map_err(|e| bad(&e))?,
                    true,
                ))
            }
            Some(Builtin::Patch) => {
                let entries = parse_src_uri(d).map_err(|e| bad(&e))?;
                let settings = PatchSettings {
                    unpack_dir: d.get_var("UNPACKDIR").unwrap_or_else(|| paths::WORK.into()),
                    s: d.get_var("S").unwrap_or_else(|| paths::WORK.into()),
                };
                Ok((
                    patch_script(&entries, &settings).map_err(|e| bad(&e))?,
                    false,
                ))
            }
            Some(Builtin::Fetch) => Err(fail(FailureKind::Internal, "fetch has no script")),
            None => {
                if let Some(b) = d.get_flag(&task.task, "builtin") {
                    return Err(bad(&format!(
                        "unknown built-in `{b}` in {}[builtin] (bitzel knows fetch, unpack, patch)",
                        task.task
                    )));
                }
                let s = task_script(d, &task.task).map_err(|e| bad(&e))?;
                for m in &s.missing {
                    tracing::warn!(task = %task.label(), "{m}; skipped, as BitBake does");
                }
                Ok((s.text, false))
            }
        }
    }

    /// What a task runs with besides its inputs: script, files, policy, limits.
    fn prepare(
        &self,
        task: &TaskNode,
        recipe: &Recipe,
        inputs: &TaskOutput,
    ) -> Result<Prepared, TaskFailure> {
        let d = &recipe.data;
        let network = d
            .get_flag(&task.task, "network")
            .is_some_and(|v| matches!(v.trim(), "1" | "yes" | "true"));
        let python = if builtin_of(recipe, task).is_none()
            && d.get_flag(&task.task, "builtin").is_none()
            && crate::python::needs_python(d, &task.task)
        {
            let mut py = crate::python::py_task(
                d,
                &task.task,
                &recipe.virtual_name(),
                &self.taskdepdata(task),
                &self.python,
            )
            .map_err(|e| fail(FailureKind::Task, format!("{}: {e}", task.label())))?;
            self.key_fetch_files(task, d, &mut py)?;
            Some(py)
        } else {
            None
        };
        let (script, with_downloads) = match &python {
            Some(py) => (py.script.clone(), false),
            None => self.script_for(task, recipe, inputs)?,
        };
        let files = task_files(
            &task.task,
            &d.get_flag(&task.task, "file-checksums").unwrap_or_default(),
        )
        .map_err(|e| fail(FailureKind::Task, format!("{}: {e}", task.label())))?;
        for w in &files.warnings {
            tracing::warn!(task = %task.label(), "{w}");
        }
        let mut named =
            crate::named::NamedPaths::of(d, &self.tools.root_paths, paths::WORK, paths::HOSTTOOLS);
        if python.is_none() {
            named.layers.clear();
        }
        let interactive = self.devshell.as_deref() == Some(task.label().as_str());
        let limits = crate::limits::task_limits(d, &task.task).map_err(|e| {
            fail(
                FailureKind::Task,
                format!(
                    "{}: {e}; fix the value in the recipe or the configuration",
                    task.label()
                ),
            )
        })?;
        Ok(Prepared {
            script,
            python,
            with_downloads,
            network,
            files,
            interactive,
            limits,
            sysroot_layer: d.get_flag(&task.task, "sysroot-layer"),
            native_sysroot: is_native_sysroot(d, &task.task),
            deploy_dir: d.get_flag(&task.task, "deploy-dir"),
            timeout: self.timeout,
            named,
        })
    }

    /// A Python task sees the layers (`NamedPaths::layers`), so BitBake's
    /// fetcher and unpacker read `file://` sources there: every task after
    /// `do_fetch` keys the files of `do_fetch[file-checksums]` too, as
    /// BitBake's signatures carry them from `do_fetch` to every later task
    /// (bitzel keys outputs, and `do_fetch`'s output does not hold them).
    fn key_fetch_files(
        &self,
        task: &TaskNode,
        d: &DataStore,
        py: &mut crate::python::PyTask,
    ) -> Result<(), TaskFailure> {
        if task.task == "do_fetch" {
            return Ok(()); // its own [file-checksums] are keyed as `file:`
        }
        let Some(flag) = d.get_flag("do_fetch", "file-checksums") else {
            return Ok(());
        };
        // Entry by entry, keyed by position: nothing is mounted, so two
        // entries may share a base name (poky's runqemu twice).
        let mut absent = Vec::new();
        for (i, (path, present)) in crate::file_checksums::entries(&flag)
            .into_iter()
            .enumerate()
        {
            let one = format!("{path}:{}", if present { "True" } else { "False" });
            let files = task_files("do_fetch", &one)
                .map_err(|e| fail(FailureKind::Task, format!("{}: {e}", task.label())))?;
            for (name, f) in files.files {
                let slash = if f.is_dir { "/" } else { "" };
                py.inputs
                    .insert(format!("python:fetch-file:{i}:{name}{slash}"), f.digest);
            }
            absent.extend(files.absent);
        }
        if !absent.is_empty() {
            py.vars
                .insert("python:fetch-file:absent".into(), absent.join(" "));
        }
        Ok(())
    }

    /// The action of `task` (hence its key) given its dependencies' outputs,
    /// exactly as [`Executor::execute`] derives it, without looking it up or
    /// running anything. `None` for tasks that have no action: `[noexec]`
    /// tasks and the fetch built-in (which runs on the host; its output
    /// digests key the tasks after it).
    pub fn action(
        &self,
        task: &TaskNode,
        deps: &[(&TaskNode, &TaskOutput)],
    ) -> Result<Option<Action>, TaskFailure> {
        let recipe = self.recipe(task)?;
        let builtin = builtin_of(recipe, task);
        if task.noexec || builtin == Some(Builtin::Fetch) {
            return Ok(None);
        }
        let inputs = Self::merge_inputs(task, deps);
        let prepared = self.prepare(task, recipe, &inputs)?;
        Ok(Some(self.action_for(task, recipe, &inputs, &prepared)))
    }

    fn action_for(
        &self,
        task: &TaskNode,
        recipe: &Recipe,
        inputs: &TaskOutput,
        p: &Prepared,
    ) -> Action {
        let mut action = Action {
            label: task.label(),
            script: p.script.clone(),
            env: self.fixed_env(&recipe.data),
            tools: self.tools.digest,
            ..Action::default()
        };
        for (i, d) in inputs.work.iter().enumerate() {
            action.inputs.insert(format!("work:{i:03}"), *d);
        }
        for (pn, d) in &inputs.sysroots {
            action.inputs.insert(format!("sysroot:{pn}"), *d);
        }
        for (pn, d) in &inputs.native_sysroots {
            action.inputs.insert(format!("sysroot-native:{pn}"), *d);
        }
        if p.with_downloads {
            for (name, dl) in &inputs.downloads {
                action.inputs.insert(format!("download:{name}"), dl.digest);
            }
        }
        for (name, f) in &p.files.files {
            let slash = if f.is_dir { "/" } else { "" };
            action
                .inputs
                .insert(format!("file:{name}{slash}"), f.digest);
        }
        if let Some(py) = &p.python {
            action
                .inputs
                .extend(py.inputs.iter().map(|(k, v)| (k.clone(), *v)));
            action
                .vars
                .extend(py.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
            action
                .policy
                .insert("python".into(), crate::python::INTERPRETER.into());
        }
        let roots = crate::python::host_roots(&recipe.data);
        action
            .vars
            .extend(p.named.keyed(|s| crate::python::keyed_text(s, &roots)));
        if !p.files.absent.is_empty() {
            action
                .vars
                .insert("file-checksums:absent".into(), p.files.absent.join(" "));
        }
        for flag in KEYED_TASK_FLAGS {
            if let Some(v) = recipe.data.get_flag(&task.task, flag) {
                action.vars.insert(format!("{}[{flag}]", task.task), v);
            }
        }
        action.policy.insert(
            "semantics".into(),
            crate::EXEC_SEMANTICS_VERSION.to_string(),
        );
        if self.tools.rootfs.is_some() {
            // Nothing of the host is visible: the root's tree digest is the whole build root.
            action
                .inputs
                .insert(BUILD_ROOT_INPUT.into(), self.tools.root_digest);
        } else {
            let roots: Vec<String> = self
                .tools
                .root_paths
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            action
                .policy
                .insert("build_root_paths".into(), roots.join(":"));
            action
                .inputs
                .insert("host-root".into(), self.tools.root_digest);
        }
        action.policy.insert(
            "network".into(),
            if p.network { "on" } else { "off" }.into(),
        );
        action
            .policy
            .insert("build_root".into(), self.tools.build_root_kind().into());
        // Results of runs without isolation, or with rewritten paths (whose outputs may hold
        // host paths), never meet those of the namespaced backends.
        action
            .policy
            .insert("sandbox".into(), sandbox_kind(self.sandbox).into());
        action
    }

    fn ensure_layers(
        &self,
        task: &TaskNode,
        digests: &[Digest],
    ) -> Result<Vec<PathBuf>, TaskFailure> {
        digests
            .iter()
            .map(|d| {
                let existed = self.cache.layer_ready(d);
                let p = self
                    .cache
                    .ensure_layer(d)
                    .map_err(|e| setup_err(task, format!("materialising layer {d}: {e}")))?;
                if !existed {
                    self.counters
                        .layers_materialised
                        .fetch_add(1, Ordering::Relaxed);
                }
                Ok(p)
            })
            .collect()
    }

    /// The mounts at `/bitzel/work` and `/bitzel/sysroot`. A namespaced backend gets overlays
    /// of the layers (the work overlay's upperdir is the output); a backend that cannot mount
    /// gets flattened copies of them (ARCHITECTURE.md, "`--sandbox none`"), and the output is
    /// what changed in the work copy.
    fn work_mounts(
        &self,
        task: &TaskNode,
        inputs: &TaskOutput,
        scratch: &Path,
    ) -> Result<(Vec<Mount>, WorkDir), TaskFailure> {
        let sysroots: [(Vec<Digest>, &str, &str); 2] = [
            (
                inputs.sysroots.values().copied().collect(),
                paths::SYSROOT,
                "sysroot",
            ),
            (
                inputs.native_sysroots.values().copied().collect(),
                paths::SYSROOT_NATIVE,
                "sysroot-native",
            ),
        ];
        if self.sandbox.remaps_paths() {
            let dir = scratch.join("work");
            let baseline = self
                .cache
                .prepare_work_dir(&inputs.work, &dir)
                .map_err(|e| setup_err(task, format!("preparing the work directory: {e}")))?;
            let mut mounts = vec![Mount::Bind {
                src: dir.clone(),
                dst: PathBuf::from(paths::WORK),
                writable: true,
            }];
            for (digests, dst, name) in &sysroots {
                let flat = scratch.join(name);
                self.cache
                    .apply(digests, &flat)
                    .map_err(|e| setup_err(task, format!("preparing the {name}: {e}")))?;
                mounts.push(Mount::Bind {
                    src: flat,
                    dst: PathBuf::from(dst),
                    writable: false,
                });
            }
            return Ok((mounts, WorkDir::Flattened { dir, baseline }));
        }
        let upper = scratch.join("upper");
        let ovl_work = scratch.join("ovlwork");
        let empty = scratch.join("empty");
        for d in [&upper, &ovl_work, &empty] {
            fs::create_dir_all(d)
                .map_err(|e| setup_err(task, format!("creating {}: {e}", d.display())))?;
        }
        let mut work_lowers = self.ensure_layers(task, &inputs.work)?;
        work_lowers.reverse(); // top first
        if work_lowers.is_empty() {
            work_lowers.push(empty.clone());
        }
        let mut mounts = vec![Mount::Overlay {
            lowers: work_lowers,
            upper: Some((upper.clone(), ovl_work)),
            dst: PathBuf::from(paths::WORK),
        }];
        for (digests, dst, _) in &sysroots {
            let mut lowers = self.ensure_layers(task, digests)?;
            lowers.reverse();
            let dst = PathBuf::from(dst);
            mounts.push(match lowers.len() {
                0 => Mount::Bind {
                    src: empty.clone(),
                    dst,
                    writable: false,
                },
                1 => Mount::Bind {
                    src: lowers.remove(0),
                    dst,
                    writable: false,
                },
                _ => Mount::Overlay {
                    lowers,
                    upper: None,
                    dst,
                },
            });
        }
        Ok((mounts, WorkDir::Overlay { upper }))
    }

    /// The mounts of [`crate::named`]: `TOPDIR` a tmpfs, `WORKDIR` the work
    /// tree (a symlink to it, or the flattened copy itself), `HOSTTOOLS_DIR`
    /// the tools.
    fn named_mounts(
        &self,
        task: &TaskNode,
        named: &crate::named::NamedPaths,
        work: &WorkDir,
        scratch: &Path,
    ) -> Result<Vec<Mount>, TaskFailure> {
        let mut mounts = Vec::new();
        if let Some(top) = &named.topdir {
            mounts.push(Mount::Tmpfs { dst: top.clone() });
        }
        if let Some(w) = &named.workdir {
            let src = match work {
                WorkDir::Flattened { dir, .. } => dir.clone(),
                WorkDir::Overlay { .. } => {
                    // A bound symlink is recreated as a symlink in the sandbox.
                    let link = scratch.join("workdir-link");
                    std::os::unix::fs::symlink(paths::WORK, &link).map_err(|e| {
                        setup_err(task, format!("creating {}: {e}", link.display()))
                    })?;
                    link
                }
            };
            mounts.push(Mount::Bind {
                src,
                dst: w.clone(),
                writable: true,
            });
        }
        if let Some(h) = &named.hosttools {
            mounts.push(Mount::Bind {
                src: self.tools.dir.clone(),
                dst: h.clone(),
                writable: false,
            });
        }
        for layer in &named.layers {
            mounts.push(Mount::Bind {
                src: layer.clone(),
                dst: layer.clone(),
                writable: false,
            });
        }
        if let Some(dl) = &named.dl_dir {
            mounts.push(self.dl_dir_mount(task, dl, work, scratch)?);
        }
        Ok(mounts)
    }

    /// The recipe's `DL_DIR` ([`crate::named`]): bitzel's host download
    /// directory read-only under a scratch layer that takes the task's writes
    /// and is not kept (an overlay). A backend that cannot mount gets an
    /// empty scratch directory: links to the host's files would let the
    /// task write through them (BitBake rewrites `.done` stamps), so it sees
    /// no earlier downloads. A host directory that does not exist yet is an
    /// empty lower layer. (Always an overlay in a namespaced backend: its
    /// upper layer, and so the merged directory, belongs to the task's
    /// identity, which the host directory or a bound scratch one does not.)
    fn dl_dir_mount(
        &self,
        task: &TaskNode,
        dst: &Path,
        work: &WorkDir,
        scratch: &Path,
    ) -> Result<Mount, TaskFailure> {
        let host = &self.dirs.dl_dir;
        let upper = scratch.join("dl-upper");
        fs::create_dir_all(&upper)
            .map_err(|e| setup_err(task, format!("creating {}: {e}", upper.display())))?;
        if matches!(work, WorkDir::Flattened { .. }) {
            return Ok(Mount::Bind {
                src: upper,
                dst: dst.to_path_buf(),
                writable: true,
            });
        }
        let lower = if host.is_dir() {
            host.clone()
        } else {
            scratch.join("empty") // made by work_mounts
        };
        let ovl_work = scratch.join("dl-work");
        fs::create_dir_all(&ovl_work)
            .map_err(|e| setup_err(task, format!("creating {}: {e}", ovl_work.display())))?;
        Ok(Mount::Overlay {
            lowers: vec![lower],
            upper: Some((upper, ovl_work)),
            dst: dst.to_path_buf(),
        })
    }

    pub(crate) fn run_in_sandbox(
        &self,
        task: &TaskNode,
        recipe: Option<&Recipe>,
        inputs: &TaskOutput,
        p: &Prepared,
        action: &Action,
        cancel: &CancelToken,
    ) -> Result<Ran, TaskFailure> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let scratch = self.dirs.scratch().join(format!(
            "{}.{}.{}.{}",
            task.pn,
            task.task,
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let result = self.run_in_scratch(task, recipe, inputs, p, action, cancel, &scratch);
        if let Err(e) = remove_tree(&scratch) {
            tracing::warn!(path = %scratch.display(), error = %e, "could not remove sandbox scratch directory");
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn run_in_scratch(
        &self,
        task: &TaskNode,
        recipe: Option<&Recipe>,
        inputs: &TaskOutput,
        p: &Prepared,
        action: &Action,
        cancel: &CancelToken,
        scratch: &Path,
    ) -> Result<Ran, TaskFailure> {
        let (mut mounts, work) = self.work_mounts(task, inputs, scratch)?;
        mounts.push(Mount::Tmpfs {
            dst: PathBuf::from(paths::DOWNLOADS),
        });
        if p.with_downloads {
            for (name, src) in self.download_sources(task, recipe, inputs)? {
                mounts.push(Mount::Bind {
                    src,
                    dst: Path::new(paths::DOWNLOADS).join(name),
                    writable: false,
                });
            }
        }
        if !p.files.files.is_empty() {
            mounts.push(Mount::Tmpfs {
                dst: PathBuf::from(paths::FILES),
            });
            for (name, f) in &p.files.files {
                mounts.push(Mount::Bind {
                    src: f.host.clone(),
                    dst: Path::new(paths::FILES).join(name),
                    writable: false,
                });
            }
        }
        mounts.push(Mount::Bind {
            src: self.tools.dir.clone(),
            dst: PathBuf::from(paths::HOSTTOOLS),
            writable: false,
        });
        mounts.extend(self.named_mounts(task, &p.named, &work, scratch)?);
        if p.interactive {
            // The recipe's kept run scripts and logs (`${T}`), to run or read by hand.
            let temp = crate::tasklog::temp_dir(&self.dirs.build_dir, &task.pn);
            fs::create_dir_all(&temp)
                .map_err(|e| setup_err(task, format!("creating {}: {e}", temp.display())))?;
            mounts.push(Mount::Bind {
                src: temp,
                dst: PathBuf::from(paths::TEMP),
                writable: false,
            });
        }
        if let Some(py) = &p.python {
            mounts.extend(python_mounts(py, scratch));
        }
        let script_path = scratch.join("run.sh");
        mounts.push(Mount::Bind {
            src: script_path.clone(),
            dst: PathBuf::from(paths::SCRIPT),
            writable: false,
        });
        // Without mounts the sandbox paths are rewritten to a per-task host root, in the
        // script too (the key keeps the fixed paths).
        let host_root = self.sandbox.remaps_paths().then(|| scratch.join("root"));
        // What runs is the keyed script with the failure trace: a pure function of it (its
        // version is in EXEC_SEMANTICS_VERSION), so the key and `explain` see the script
        // without the line marks, which shift with every line added above them.
        let traced = crate::tasklog::with_failure_trace(&p.script);
        let script = match &host_root {
            Some(root) => PathMap::new(&mounts, root)
                .map_err(|e| setup_err(task, e))?
                .rewrite(&traced),
            None => traced.clone(),
        };
        fs::write(&script_path, script)
            .map_err(|e| setup_err(task, format!("writing {}: {e}", script_path.display())))?;
        if let Some(py) = &p.python {
            let spec = match &host_root {
                Some(root) => PathMap::new(&mounts, root)
                    .map_err(|e| setup_err(task, e))?
                    .rewrite(&py.spec),
                None => py.spec.clone(),
            };
            for (name, text) in [
                ("runner.py", crate::python::RUNNER),
                crate::python::SHELL_TABLES,
                ("task.json", &spec),
            ] {
                let path = scratch.join(name);
                fs::write(&path, text)
                    .map_err(|e| setup_err(task, format!("writing {}: {e}", path.display())))?;
            }
        }

        // The kept run script has the sandbox paths (what the key has, and what a devshell
        // of the task sees), whichever backend runs it.
        let kept = self.dirs.kept_files(&task.pn, &task.task);
        if !p.interactive {
            kept.create(&traced).map_err(|e| {
                setup_err(
                    task,
                    format!("writing {} and its log: {e}", kept.run.display()),
                )
            })?;
        }
        let log = kept.log.clone();

        let mut spec = SandboxSpec::new(
            vec!["/bin/sh".into(), paths::SCRIPT.into()],
            self.tools.root_paths.clone(),
        );
        spec.root = match &self.tools.rootfs {
            Some(r) => RootSpec::Layers(vec![r.layer.clone()]),
            None => RootSpec::Host {
                ro_paths: self.tools.root_paths.clone(),
            },
        };
        spec.env = action.env.clone();
        spec.cwd = PathBuf::from(paths::WORK);
        spec.mounts = mounts;
        spec.network = p.network;
        spec.hostname = "bitzel".into();
        spec.timeout = p.timeout;
        spec.limits = p.limits.clone();
        spec.stdout = Stdio::File(log.clone());
        spec.stderr = Stdio::File(log.clone());
        spec.host_root = host_root;

        if cancel.is_cancelled() {
            return Err(fail(
                FailureKind::Cancelled,
                format!("{}: cancelled", task.label()),
            ));
        }
        if p.interactive {
            spec.argv = vec!["/bin/sh".into(), "-i".into()];
            let Some(recipe) = recipe else {
                return Err(setup_err(task, "a devshell needs the recipe"));
            };
            let (want, cwd) = devshell_cwd(&recipe.data, &task.task, &inputs.work, self.cache);
            if cwd != want {
                tracing::warn!(
                    "{}: {want} does not exist before the task runs (its script creates it); \
                     the shell starts in {cwd}",
                    task.label()
                );
            }
            spec.cwd = PathBuf::from(cwd);
            spec.env
                .insert("PS1".into(), format!("bitzel-devshell({})# ", task.pn));
            if let Ok(term) = std::env::var("TERM") {
                spec.env.insert("TERM".into(), term);
            }
            spec.timeout = None;
            spec.stdin = Stdio::Inherit;
            spec.stdout = Stdio::Inherit;
            spec.stderr = Stdio::Inherit;
            let outcome = self.sandbox.run_interactive(&spec).map_err(|e| {
                setup_err(
                    task,
                    format!("sandbox setup failed ({}): {e}", self.sandbox.name()),
                )
            })?;
            tracing::info!(task = %task.label(), status = ?outcome.status, "devshell closed");
            if let Ok(mut st) = self.devshell_status.lock() {
                *st = Some(shell_status(outcome.status));
            }
            return Ok(Ran::ShellClosed);
        }
        let started = Instant::now();
        let outcome = self.sandbox.run(&spec).map_err(|e| {
            setup_err(
                task,
                format!("sandbox setup failed ({}): {e}", self.sandbox.name()),
            )
        })?;
        let duration = started.elapsed();
        if let Some(peak) = outcome.resources.memory_peak {
            self.counters
                .record(task.label(), |s| s.memory_peak = Some(peak));
        }
        let scan = fs::File::open(&log)
            .and_then(|f| crate::tasklog::scan_log(std::io::BufReader::new(f)))
            .unwrap_or_else(|e| {
                tracing::warn!(task = %task.label(), log = %log.display(), error = %e, "could not read the task's log");
                crate::tasklog::LogScan::default()
            });
        show_task_messages(task, &scan);
        if !outcome.status.success() {
            let what =
                crate::limits::describe_failure(outcome.status, &outcome.resources, &task.task);
            let mut f = fail(
                FailureKind::Task,
                failure_message(task, &what, &traced, &scan, &kept),
            );
            f.log_tail = log_tail(&log, 30);
            return Err(f);
        }

        // This task's output delta: the upperdir, or what changed in the flattened copy.
        let captured = match &work {
            WorkDir::Overlay { upper } => self.cache.capture(upper),
            WorkDir::Flattened { dir, baseline } => self.cache.capture_delta(dir, baseline),
        }
        .map_err(|e| setup_err(task, format!("capturing output: {e}")))?;
        let bytes = captured.stats.bytes;
        self.counters
            .record(task.label(), |s| s.bytes_captured = Some(bytes));
        let log_digest = self.cache.put_file(&log).ok();
        let mut extra = BTreeMap::new();
        let mut own_sysroot = None;
        if let Some(sub) = &p.sysroot_layer {
            let t = captured.tree.subtree(sub.trim().trim_matches('/'));
            let sd = self
                .cache
                .put_tree(&t)
                .map_err(|e| setup_err(task, format!("storing sysroot layer: {e}")))?;
            extra.insert("sysroot".to_string(), sd);
            own_sysroot = Some(sd);
        }
        let mut out = inputs.clone();
        out.work.push(captured.digest);
        export_sysroots(&mut out, inputs, &task.pn, own_sysroot, p.native_sysroot);
        if let Some(sub) = &p.deploy_dir {
            let t = captured.tree.subtree(sub.trim().trim_matches('/'));
            let dd = self
                .cache
                .put_tree(&t)
                .map_err(|e| setup_err(task, format!("storing deploy tree: {e}")))?;
            extra.insert("deploy".to_string(), dd);
            out.deploy = Some(dd);
        }
        let result = ActionResult {
            label: task.label(),
            output: captured.digest,
            extra_outputs: extra,
            exit_code: 0,
            stdout: log_digest,
            stderr: None,
            duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            created_unix_ms: bitzel_cache::now_unix_ms(),
            action: action.clone(),
        };
        Ok(Ran::Captured(Box::new(result), out))
    }
}

/// The `sandbox` policy of actions run by backend `b`.
pub fn sandbox_kind(b: &dyn Backend) -> &'static str {
    match (b.hermetic(), b.remaps_paths()) {
        (false, _) => "none",
        (true, false) => "hermetic",
        (true, true) => "hermetic-remapped",
    }
}

/// A Python task's mounts: a tmpfs at [`crate::python::DIR`] holding the
/// runner and the datastore (written into `scratch` by the caller) and the
/// library directories, all read-only.
fn python_mounts(py: &crate::python::PyTask, scratch: &Path) -> Vec<Mount> {
    let mut mounts = vec![Mount::Tmpfs {
        dst: PathBuf::from(crate::python::DIR),
    }];
    for (name, dst) in [
        ("runner.py", crate::python::RUNNER_PATH),
        (
            crate::python::SHELL_TABLES.0,
            crate::python::SHELL_TABLES_PATH,
        ),
        ("task.json", crate::python::SPEC_PATH),
    ] {
        mounts.push(Mount::Bind {
            src: scratch.join(name),
            dst: PathBuf::from(dst),
            writable: false,
        });
    }
    for (src, dst) in &py.binds {
        mounts.push(Mount::Bind {
            src: src.clone(),
            dst: PathBuf::from(dst),
            writable: false,
        });
    }
    mounts
}

/// The Rust built-in a task is marked as (`do_X[builtin]`), if bitzel knows it.
fn builtin_of(recipe: &Recipe, task: &TaskNode) -> Option<Builtin> {
    recipe
        .data
        .get_flag(&task.task, "builtin")
        .and_then(|b| Builtin::from_flag(&b))
}

/// Reconstruct a task's output from a cached result.
pub(crate) fn output_from_result(
    inputs: &TaskOutput,
    r: &ActionResult,
    pn: &str,
    native: bool,
) -> TaskOutput {
    let mut out = inputs.clone();
    out.work.push(r.output);
    let own = r.extra_outputs.get("sysroot").copied();
    export_sysroots(&mut out, inputs, pn, own, native);
    out.deploy = r.extra_outputs.get("deploy").copied();
    out
}

/// Whether a task's `[sysroot-layer]` is a native one (`[sysroot-native]`,
/// set by `native.bbclass`): dependents see it at `/bitzel/sysroot-native`.
fn is_native_sysroot(d: &DataStore, task: &str) -> bool {
    d.get_flag(task, "sysroot-native")
        .is_some_and(|v| matches!(v.trim(), "1" | "yes" | "true"))
}

/// What a task hands to other recipes besides its work layers (BitBake's
/// `setscene_depvalid` rules for sysroots): a target task passes on the
/// target layers it saw plus its own layer, and no native layer (a target
/// recipe's build tools are not its dependents' business); a
/// `[sysroot-native]` task passes on the native layers it saw plus its own
/// as native layers.
fn export_sysroots(
    out: &mut TaskOutput,
    inputs: &TaskOutput,
    pn: &str,
    own: Option<Digest>,
    native: bool,
) {
    out.exported_sysroots
        .extend(inputs.sysroots.iter().map(|(k, v)| (k.clone(), *v)));
    if native {
        out.exported_native_sysroots
            .extend(inputs.native_sysroots.iter().map(|(k, v)| (k.clone(), *v)));
    }
    if let Some(sd) = own {
        if native {
            out.exported_native_sysroots.insert(pn.to_string(), sd);
        } else {
            out.exported_sysroots.insert(pn.to_string(), sd);
        }
    }
}

/// Where a devshell starts: where the task would (the last of its `[dirs]`,
/// else `B`), if that exists in the recipe's work tree as its earlier tasks
/// left it (a task's script creates its own dirs: `do_install`'s `B` need
/// not exist before it runs); else the nearest existing parent below
/// `WORKDIR`; else `WORKDIR`.
/// Returns (where the task would start, where the shell starts).
fn devshell_cwd(d: &DataStore, task: &str, work: &[Digest], cache: &Cache) -> (String, String) {
    let want = d
        .get_flag(task, "dirs")
        .and_then(|v| v.split_whitespace().last().map(str::to_string))
        .or_else(|| d.get_var("B"))
        .unwrap_or_else(|| paths::WORK.to_string());
    let cwd = existing_work_dir(&want, work, cache);
    (want, cwd)
}

/// `want` if the stacked `work` layers have it below `WORKDIR`, else its
/// nearest parent they have, else `WORKDIR`.
fn existing_work_dir(want: &str, work: &[Digest], cache: &Cache) -> String {
    let Some(rel) = want
        .strip_prefix(paths::WORK)
        .filter(|r| r.is_empty() || r.starts_with('/'))
    else {
        return paths::WORK.to_string();
    };
    let rel = rel.trim_matches('/');
    // The directories of the stacked layers, lowest first, with deletions applied.
    let mut dirs: BTreeSet<String> = BTreeSet::new();
    for digest in work {
        let Ok(tree) = cache.read_tree(digest) else {
            continue;
        };
        for e in tree.entries() {
            let below = format!("{}/", e.path);
            let replaced = !matches!(e.kind, bitzel_cache::EntryKind::Dir { opaque: false, .. });
            if replaced {
                dirs.retain(|d| d != &e.path && !d.starts_with(&below));
            }
            if matches!(e.kind, bitzel_cache::EntryKind::Dir { .. }) {
                dirs.insert(e.path.clone());
            }
        }
    }
    let mut cur = rel;
    while !cur.is_empty() && !dirs.contains(cur) {
        cur = cur.rsplit_once('/').map_or("", |(parent, _)| parent);
    }
    if cur.is_empty() {
        paths::WORK.to_string()
    } else {
        format!("{}/{cur}", paths::WORK)
    }
}

/// The exit status of a closed devshell as a process exit code.
fn shell_status(status: bitzel_sandbox::ExitStatus) -> i32 {
    match status {
        bitzel_sandbox::ExitStatus::Code(c) => c,
        bitzel_sandbox::ExitStatus::Signal(s) => 128 + s,
        _ => 1,
    }
}

/// Show what the task said through `bbwarn`/`bberror`/`bbfatal` on the console.
fn show_task_messages(task: &TaskNode, scan: &crate::tasklog::LogScan) {
    for m in &scan.messages {
        match m {
            crate::tasklog::TaskMessage::Warning(w) => tracing::warn!("{}: {w}", task.label()),
            crate::tasklog::TaskMessage::Error(e) => tracing::error!("{}: {e}", task.label()),
        }
    }
    if scan.more > 0 {
        tracing::warn!(
            "{}: {} more warning/error line(s) in its log",
            task.label(),
            scan.more
        );
    }
}

/// `<label> exited with code 1 at line N of run.do_X: `cmd`; run script: ..., log: ...`.
fn failure_message(
    task: &TaskNode,
    what: &str,
    script: &str,
    scan: &crate::tasklog::LogScan,
    kept: &crate::tasklog::KeptFiles,
) -> String {
    let at = scan
        .failed_at
        .as_ref()
        .filter(|f| f.line > 0)
        .and_then(|f| {
            let cmd = crate::tasklog::command_at(script, f.line)?;
            Some(format!(" at line {} of run.{}: `{cmd}`", f.line, task.task))
        })
        .unwrap_or_default();
    format!(
        "{} {what}{at}; run script: {}, log: {}",
        task.label(),
        kept.run.display(),
        kept.log.display()
    )
}

/// Remove a directory tree that may contain read-only directories.
fn remove_tree(p: &Path) -> std::io::Result<()> {
    match fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) => {
            for entry in walkdir_dirs(p) {
                if let Ok(meta) = fs::symlink_metadata(&entry) {
                    let mut perm = meta.permissions();
                    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
                    let _ = fs::set_permissions(&entry, perm);
                }
            }
            fs::remove_dir_all(p)
        }
    }
}

fn walkdir_dirs(p: &Path) -> Vec<PathBuf> {
    let mut out = vec![p.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if let Ok(rd) = fs::read_dir(&out[i]) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    out.push(e.path());
                }
            }
        }
        i += 1;
    }
    out
}

impl BuildExecutor<'_> {
    /// `bitzel explain`: compute the task's key and look it up; run nothing.
    /// A task that depends on tasks that would run is keyed as if they gave
    /// their previous outputs (the closest earlier entry's), so a hit means it
    /// re-runs only if they change their output, and a miss is its own doing.
    fn explain_task(
        &self,
        task: &TaskNode,
        recipe: &Recipe,
        inputs: TaskOutput,
        deps: &[(&TaskNode, &TaskOutput)],
    ) -> Result<TaskResult<TaskOutput>, TaskFailure> {
        let log = &self.would_run;
        let (waits, unknown) = log.waits_on(deps);
        let pass = |output: TaskOutput, outcome: Outcome| Ok(TaskResult { output, outcome });
        if task.noexec {
            if !waits.is_empty() {
                log.pass_on(task, waits, unknown);
            }
            return pass(inputs, Outcome::NoExec);
        }
        if unknown {
            log.record(task, WouldRun::After(waits), true);
            return pass(inputs, Outcome::Executed);
        }
        let builtin = builtin_of(recipe, task);
        if builtin == Some(Builtin::Fetch) {
            // Records a download it would make (`WouldRun::Fetch`) itself.
            return self.run_fetch(task, recipe, inputs);
        }
        let prepared = self.prepare(task, recipe, &inputs)?;
        let action = self.action_for(task, recipe, &inputs, &prepared);
        match self.cache.lookup(&action.key()) {
            Ok(Lookup::Hit(r)) => {
                let output = output_from_result(
                    &inputs,
                    &r,
                    &task.pn,
                    is_native_sysroot(&recipe.data, &task.task),
                );
                if !waits.is_empty() {
                    log.record(task, WouldRun::After(waits), false);
                }
                return pass(output, Outcome::Cached);
            }
            Ok(Lookup::Miss(reason)) => {
                tracing::debug!(task = %task.label(), ?reason, "explain: cache miss");
            }
            Err(e) => {
                tracing::warn!(task = %task.label(), error = %e, "cache lookup failed; the task would run");
            }
        }
        let previous = match self.cache.closest_earlier(&action) {
            Ok(p) => p.map(|(_, r)| {
                output_from_result(
                    &inputs,
                    &r,
                    &task.pn,
                    is_native_sysroot(&recipe.data, &task.task),
                )
            }),
            Err(e) => {
                tracing::warn!(task = %task.label(), error = %e, "cannot read the cache's history");
                None
            }
        };
        let unknown = previous.is_none();
        let why = WouldRun::Changed {
            action: Box::new(action),
            assuming: waits,
        };
        log.record(task, why, unknown);
        pass(previous.unwrap_or(inputs), Outcome::Executed)
    }
}

impl Executor for BuildExecutor<'_> {
    type Output = TaskOutput;

    fn execute(
        &self,
        task: &TaskNode,
        deps: &[(&TaskNode, &TaskOutput)],
        cancel: &CancelToken,
    ) -> Result<TaskResult<TaskOutput>, TaskFailure> {
        let recipe = self.recipe(task)?;
        let inputs = Self::merge_inputs(task, deps);
        if self.explain_only {
            return self.explain_task(task, recipe, inputs, deps);
        }
        if task.noexec {
            return Ok(TaskResult {
                output: inputs,
                outcome: Outcome::NoExec,
            });
        }
        let builtin = builtin_of(recipe, task);
        if builtin == Some(Builtin::Fetch) {
            return self.run_fetch(task, recipe, inputs);
        }
        let prepared = self.prepare(task, recipe, &inputs)?;
        let action = self.action_for(task, recipe, &inputs, &prepared);
        if prepared.interactive {
            self.run_in_sandbox(task, Some(recipe), &inputs, &prepared, &action, cancel)?;
            return Ok(TaskResult {
                output: inputs,
                outcome: Outcome::NoExec,
            });
        }
        let key = action.key();
        let forced = self.force.contains(&task.label());
        let lookup = (!forced).then(|| self.cache.lookup(&key));
        match lookup {
            None => {
                tracing::info!(task = %task.label(), "forced (-f): running it whatever the cache holds");
            }
            Some(Ok(Lookup::Hit(r))) => {
                return Ok(TaskResult {
                    output: output_from_result(
                        &inputs,
                        &r,
                        &task.pn,
                        is_native_sysroot(&recipe.data, &task.task),
                    ),
                    outcome: Outcome::Cached,
                });
            }
            Some(Ok(Lookup::Miss(reason))) => {
                tracing::debug!(task = %task.label(), ?reason, "cache miss");
            }
            Some(Err(e)) => {
                tracing::warn!(task = %task.label(), error = %e, "cache lookup failed; running the task");
            }
        }
        // Python tasks run here: their library mounts are not part of a job.
        if let Some(runner) = self.remote.filter(|_| prepared.python.is_none()) {
            // `None`: the runner fell back to running the task here.
            if let Some((result, outcome)) =
                self.run_remotely(runner, task, recipe, &inputs, &prepared, &action, &key)?
            {
                self.note_miss(task, action);
                return Ok(TaskResult {
                    output: output_from_result(&inputs, &result, &task.pn, prepared.native_sysroot),
                    outcome,
                });
            }
        }
        let Ran::Captured(result, out) =
            self.run_in_sandbox(task, Some(recipe), &inputs, &prepared, &action, cancel)?
        else {
            return Err(fail(
                FailureKind::Internal,
                format!("{}: a build run ended as a devshell", task.label()),
            ));
        };
        let recorded = if forced {
            self.cache.put_local(&key, &result)
        } else {
            self.cache.put(&key, &result)
        };
        if let Err(e) = recorded {
            tracing::warn!(task = %task.label(), error = %e, "could not record the result in the cache");
        }
        self.note_miss(task, action);
        Ok(TaskResult {
            output: out,
            outcome: Outcome::Executed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Digest {
        Digest::of_bytes(s.as_bytes())
    }

    #[test]
    fn inputs_keep_the_chain_order_and_take_only_exported_sysroots_across_recipes() {
        let task = TaskNode::new(3, 0, "app", "do_compile");
        let configure = TaskNode::new(2, 0, "app", "do_configure");
        let patch = TaskNode::new(1, 0, "app", "do_patch");
        let lib = TaskNode::new(9, 1, "lib", "do_populate_sysroot");
        let mut lib_out = TaskOutput::default();
        lib_out
            .exported_sysroots
            .insert("lib".into(), d("lib-sysroot"));
        lib_out.sysroots.insert("hidden".into(), d("not exported"));
        lib_out.work = vec![d("lib-work")];
        let patch_out = TaskOutput {
            work: vec![d("unpack"), d("patch")],
            ..TaskOutput::default()
        };
        let configure_out = TaskOutput {
            work: vec![d("unpack"), d("patch"), d("configure")],
            ..TaskOutput::default()
        };
        let merged = BuildExecutor::merge_inputs(
            &task,
            &[
                (&patch, &patch_out),
                (&lib, &lib_out),
                (&configure, &configure_out),
            ],
        );
        assert_eq!(merged.work, vec![d("unpack"), d("patch"), d("configure")]);
        assert_eq!(
            merged.sysroots.into_iter().collect::<Vec<_>>(),
            vec![("lib".to_string(), d("lib-sysroot"))]
        );
        assert!(merged.deploy.is_none());
    }

    /// A native tool reaches its direct dependent at /bitzel/sysroot-native,
    /// never its target sysroot, and a target recipe does not pass it on: the
    /// image built from that recipe neither holds nor is keyed by it.
    #[test]
    fn native_layers_stay_apart_and_are_not_passed_on_by_target_recipes() {
        // gen-native:do_populate_sysroot, a [sysroot-native] task that saw
        // another native tool (m4-native).
        let mut gen_in = TaskOutput::default();
        gen_in
            .native_sysroots
            .insert("m4-native".into(), d("m4 layer"));
        let mut gen_out = gen_in.clone();
        export_sysroots(
            &mut gen_out,
            &gen_in,
            "gen-native",
            Some(d("gen layer")),
            true,
        );
        assert!(gen_out.exported_sysroots.is_empty());
        assert_eq!(
            gen_out.exported_native_sysroots.keys().collect::<Vec<_>>(),
            ["gen-native", "m4-native"]
        );

        // app:do_compile depends on it and on lib (a target library).
        let compile = TaskNode::new(5, 2, "app", "do_compile");
        let gen = TaskNode::new(4, 1, "gen-native", "do_populate_sysroot");
        let lib = TaskNode::new(3, 0, "lib", "do_populate_sysroot");
        let mut lib_out = TaskOutput::default();
        lib_out
            .exported_sysroots
            .insert("lib".into(), d("lib layer"));
        let app_in = BuildExecutor::merge_inputs(&compile, &[(&gen, &gen_out), (&lib, &lib_out)]);
        assert_eq!(app_in.sysroots.keys().collect::<Vec<_>>(), ["lib"]);
        assert_eq!(
            app_in.native_sysroots.keys().collect::<Vec<_>>(),
            ["gen-native", "m4-native"]
        );

        // app:do_populate_sysroot (target) exports its layer and lib's only.
        let mut app_out = app_in.clone();
        export_sysroots(&mut app_out, &app_in, "app", Some(d("app layer")), false);
        assert_eq!(
            app_out.exported_sysroots.keys().collect::<Vec<_>>(),
            ["app", "lib"]
        );
        assert!(app_out.exported_native_sysroots.is_empty());

        // The image's do_rootfs sees app and lib, and no native layer.
        let rootfs = TaskNode::new(7, 3, "image", "do_rootfs");
        let populate = TaskNode::new(6, 2, "app", "do_populate_sysroot");
        let image_in = BuildExecutor::merge_inputs(&rootfs, &[(&populate, &app_out)]);
        assert_eq!(image_in.sysroots.keys().collect::<Vec<_>>(), ["app", "lib"]);
        assert!(image_in.native_sysroots.is_empty());
    }
}

#[cfg(test)]
mod devshell_cwd_tests {
    use bitzel_cache::{EntryKind, Tree, TreeEntry};

    use super::*;

    fn dir(path: &str, opaque: bool) -> TreeEntry {
        TreeEntry {
            path: path.into(),
            kind: EntryKind::Dir {
                mode: 0o755,
                opaque,
            },
        }
    }

    #[test]
    fn the_shell_starts_in_the_nearest_directory_the_stacked_layers_have() {
        let t = tempfile::tempdir().expect("tempdir");
        let cache = Cache::open(t.path()).expect("cache");
        let put = |entries: Vec<TreeEntry>| {
            cache
                .put_tree(&Tree::new(entries).expect("tree"))
                .expect("put")
        };
        let base = put(vec![
            dir("a", false),
            dir("a/b", false),
            dir("a/b/c", false),
            dir("x", false),
            dir("x/y", false),
        ]);
        let deleted = put(vec![TreeEntry {
            path: "a/b".into(),
            kind: EntryKind::Whiteout,
        }]);
        let opaque = put(vec![dir("x", true)]);
        let at = |want: &str, layers: &[Digest]| existing_work_dir(want, layers, &cache);
        assert_eq!(at("/bitzel/work/a/b/c", &[base]), "/bitzel/work/a/b/c");
        assert_eq!(at("/bitzel/work/a/b/c/d", &[base]), "/bitzel/work/a/b/c");
        assert_eq!(at("/bitzel/work/a/b/c", &[base, deleted]), "/bitzel/work/a");
        assert_eq!(at("/bitzel/work/x/y", &[base, opaque]), "/bitzel/work/x");
        assert_eq!(at("/bitzel/work/x/y", &[]), "/bitzel/work");
        assert_eq!(at("/bitzel/workshop/a", &[base]), "/bitzel/work");
        assert_eq!(at("/elsewhere", &[base]), "/bitzel/work");
    }
}
