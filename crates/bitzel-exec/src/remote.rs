//! The remote-execution seam: a cache miss handed to a [`RemoteRunner`]
//! (`--remote-executor`) instead of the local sandbox, and the other end,
//! [`BuildExecutor::run_job`], which a worker (`bitzel worker`) uses to run
//! such a job in the same sandbox a local build uses.
//!
//! A [`RemoteJob`] is everything `run_in_scratch` needs, by digest: the
//! keyed [`Action`] (script, environment), the work and sysroot layers, the
//! downloads and `[file-checksums]` files (as blobs or trees of the local
//! CAS), the network flag, limits and the `[sysroot-layer]`/`[deploy-dir]`
//! flags. The transport (REAPI, in `bitzel-remote`) moves the job and every
//! blob it names; the result comes back as an [`ActionResult`] whose blobs
//! are in the local CAS, so the task's output is the same as if it had run
//! here.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use bitzel_cache::{Action, ActionKey, ActionResult, Digest};
use bitzel_graph::{CancelToken, FailureKind, Outcome, TaskFailure, TaskNode};
use bitzel_meta::Recipe;

use crate::builtin::Fetched;
use crate::executor::{fail, setup_err, BuildExecutor, Download, Prepared, TaskOutput};
use crate::file_checksums::{TaskFile, TaskFiles};

/// A download or `[file-checksums]` entry of a job: a blob (file) or a tree
/// (directory) of the CAS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobInput {
    /// Its name under `/bitzel/downloads` or `/bitzel/files`.
    pub name: String,
    /// The blob (file) or tree manifest (directory).
    pub digest: Digest,
    /// Whether it is a directory.
    pub is_dir: bool,
}

/// One task to run elsewhere. Serialized as JSON into the REAPI input root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteJob {
    /// The format of this record.
    pub version: u32,
    /// The recipe.
    pub pn: String,
    /// The task (`do_compile`).
    pub task: String,
    /// The keyed action (its key is the job's identity).
    pub action: Action,
    /// Work layers, lowest first.
    pub work: Vec<Digest>,
    /// Sysroot layers by recipe.
    pub sysroots: BTreeMap<String, Digest>,
    /// Native sysroot layers by recipe (`/bitzel/sysroot-native`).
    #[serde(default)]
    pub native_sysroots: BTreeMap<String, Digest>,
    /// Downloads (when the task sees them).
    pub downloads: Vec<JobInput>,
    /// `[file-checksums]` files.
    pub files: Vec<JobInput>,
    /// `[network]`.
    pub network: bool,
    /// Resource limits.
    pub limits: bitzel_sandbox::Limits,
    /// Per-task timeout, seconds.
    pub timeout_secs: Option<u64>,
    /// `[sysroot-layer]`.
    pub sysroot_layer: Option<String>,
    /// `[sysroot-native]`: that layer is a native sysroot.
    #[serde(default)]
    pub native_sysroot: bool,
    /// `[deploy-dir]`.
    pub deploy_dir: Option<String>,
    /// The host tools linked at `/bitzel/hosttools`, by name (the worker
    /// resolves them on its own `PATH`; their digest must be the action's).
    pub hosttools: Vec<String>,
    /// The recipe's own names for the sandbox's places (`named.rs`).
    #[serde(default)]
    pub named: crate::named::NamedPaths,
}

/// The [`RemoteJob::version`] this build writes and reads.
pub const JOB_VERSION: u32 = 1;

impl RemoteJob {
    /// Every tree (layers, directory inputs) the job names.
    pub fn trees(&self) -> Vec<Digest> {
        let mut v: Vec<Digest> = self.work.clone();
        v.extend(self.sysroots.values().copied());
        v.extend(self.native_sysroots.values().copied());
        v.extend(
            self.downloads
                .iter()
                .chain(&self.files)
                .filter(|i| i.is_dir)
                .map(|i| i.digest),
        );
        v
    }

    /// Every plain blob (file inputs) the job names.
    pub fn files(&self) -> Vec<Digest> {
        self.downloads
            .iter()
            .chain(&self.files)
            .filter(|i| !i.is_dir)
            .map(|i| i.digest)
            .collect()
    }
}

/// How a remote run ended.
#[derive(Debug)]
pub enum RemoteOutcome {
    /// The engine's action cache had it.
    Cached(Box<ActionResult>),
    /// A worker ran it; its outputs are in the local CAS.
    Executed(Box<ActionResult>),
    /// The task ran and failed.
    Failed {
        /// Its exit code.
        exit_code: i32,
        /// Its log, when the worker sent one.
        log: Option<Vec<u8>>,
    },
}

/// Why a job could not be run remotely.
#[derive(Debug, Clone)]
pub struct RemoteFailure {
    /// For people: what failed, where, and what to do.
    pub message: String,
    /// The engine answered with an unusable result (treated like a bad
    /// cache entry: warned, and the task runs here).
    pub run_locally: bool,
}

/// Runs a job remotely (implemented in `bitzel-remote`).
pub trait RemoteRunner: Send + Sync {
    /// Run `job`, whose key is `key`. The local CAS holds every blob it names.
    fn run(&self, key: &ActionKey, job: &RemoteJob) -> Result<RemoteOutcome, RemoteFailure>;
    /// Whether a failure should fall back to running the task locally.
    fn fallback_local(&self) -> bool;
}

impl BuildExecutor<'_> {
    /// The job for a task about to miss. Directory inputs are captured into
    /// the CAS, file inputs stored there, so the transport finds every blob.
    pub(crate) fn remote_job(
        &self,
        task: &TaskNode,
        recipe: &Recipe,
        inputs: &TaskOutput,
        p: &Prepared,
        action: &Action,
    ) -> Result<RemoteJob, TaskFailure> {
        let store = |name: &str, path: &std::path::Path, is_dir: bool| {
            let digest = if is_dir {
                self.cache.capture(path).map(|c| c.digest)
            } else {
                self.cache.put_file(path)
            }
            .map_err(|e| {
                setup_err(
                    task,
                    format!("storing {} for the remote: {e}", path.display()),
                )
            })?;
            Ok::<_, TaskFailure>(JobInput {
                name: name.to_string(),
                digest,
                is_dir,
            })
        };
        let mut downloads = Vec::new();
        if p.with_downloads {
            // Declared downloads not fetched yet are fetched (and verified) now.
            let sources = self.download_sources(task, Some(recipe), inputs)?;
            for (name, dl) in &inputs.downloads {
                let path = sources.get(name).unwrap_or(&dl.fetched.local_path);
                downloads.push(store(name, path, dl.fetched.is_dir)?);
            }
        }
        let mut files = Vec::new();
        for (name, f) in &p.files.files {
            files.push(store(name, &f.host, f.is_dir)?);
        }
        Ok(RemoteJob {
            version: JOB_VERSION,
            pn: task.pn.clone(),
            task: task.task.clone(),
            action: action.clone(),
            work: inputs.work.clone(),
            sysroots: inputs.sysroots.clone(),
            native_sysroots: inputs.native_sysroots.clone(),
            downloads,
            files,
            network: p.network,
            limits: p.limits.clone(),
            timeout_secs: p.timeout.map(|t| t.as_secs()),
            sysroot_layer: p.sysroot_layer.clone(),
            native_sysroot: p.native_sysroot,
            deploy_dir: p.deploy_dir.clone(),
            hosttools: tool_names(&self.tools.dir).map_err(|e| {
                setup_err(task, format!("listing {}: {e}", self.tools.dir.display()))
            })?,
            named: p.named.clone(),
        })
    }

    /// Run a missed task through `runner`. `Ok(None)`: it could not, and the
    /// runner falls back to local execution (warned).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run_remotely(
        &self,
        runner: &dyn RemoteRunner,
        task: &TaskNode,
        recipe: &Recipe,
        inputs: &TaskOutput,
        p: &Prepared,
        action: &Action,
        key: &ActionKey,
    ) -> Result<Option<(ActionResult, Outcome)>, TaskFailure> {
        let job = self.remote_job(task, recipe, inputs, p, action)?;
        match runner.run(key, &job) {
            Ok(RemoteOutcome::Cached(r)) => {
                self.record_remote(task, key, &r);
                Ok(Some((*r, Outcome::Cached)))
            }
            Ok(RemoteOutcome::Executed(r)) => {
                self.record_remote(task, key, &r);
                Ok(Some((*r, Outcome::Executed)))
            }
            Ok(RemoteOutcome::Failed { exit_code, log }) => {
                let kept = self.dirs.kept_files(&task.pn, &task.task);
                let mut f = fail(
                    FailureKind::Task,
                    format!(
                        "{}: failed on a remote worker with exit code {exit_code} (log: {})",
                        task.label(),
                        kept.log.display()
                    ),
                );
                if let Some(log) = log {
                    if let Some(dir) = kept.log.parent() {
                        let _ = std::fs::create_dir_all(dir);
                    }
                    if std::fs::write(&kept.log, &log).is_ok() {
                        f.log_tail = crate::executor::log_tail(&kept.log, 30);
                    }
                }
                Err(f)
            }
            Err(e) if e.run_locally => {
                tracing::warn!(task = %task.label(), "{}; running it locally", e.message);
                Ok(None)
            }
            Err(e) if runner.fallback_local() => {
                tracing::warn!(task = %task.label(), "{}; running it locally (--remote-executor-fallback local)", e.message);
                Ok(None)
            }
            Err(e) => Err(fail(
                FailureKind::Setup,
                format!("{}: {}", task.label(), e.message),
            )),
        }
    }

    /// Record a remote result in the local action cache (its file blobs
    /// may still be on the engine: the cache's blob source fetches them).
    fn record_remote(&self, task: &TaskNode, key: &ActionKey, r: &ActionResult) {
        if let Err(e) = self.cache.put_local(key, r) {
            tracing::warn!(task = %task.label(), error = %e, "could not record the remote result in the local cache");
        }
    }

    /// Run `job` here, in this executor's sandbox (`bitzel worker`): its
    /// layers and directory inputs are materialised from the local CAS,
    /// which must hold every blob the job names. Returns the captured
    /// result; a failed task is `Err` with its log tail.
    pub fn run_job(
        &self,
        job: &RemoteJob,
        cancel: &CancelToken,
    ) -> Result<ActionResult, TaskFailure> {
        let task = TaskNode::new(0, 0, job.pn.clone(), job.task.clone());
        if job.version != JOB_VERSION {
            return Err(fail(
                FailureKind::Setup,
                format!(
                    "{}: job format {} (this worker reads {JOB_VERSION}): run the same bitzel version on clients and workers",
                    task.label(),
                    job.version
                ),
            ));
        }
        let path_of = |i: &JobInput| -> Result<PathBuf, TaskFailure> {
            if i.is_dir {
                self.cache
                    .ensure_layer(&i.digest)
                    .map_err(|e| setup_err(&task, format!("materialising input {}: {e}", i.name)))
            } else if self.cache.cas().contains(&i.digest) {
                Ok(self.cache.cas().blob_path(&i.digest))
            } else {
                Err(setup_err(
                    &task,
                    format!("input {} ({}) is not in the local CAS", i.name, i.digest),
                ))
            }
        };
        let mut inputs = TaskOutput {
            work: job.work.clone(),
            sysroots: job.sysroots.clone(),
            native_sysroots: job.native_sysroots.clone(),
            ..TaskOutput::default()
        };
        for (n, i) in job.downloads.iter().enumerate() {
            let fetched = Fetched {
                entry_index: n,
                local_name: i.name.clone(),
                local_path: path_of(i)?,
                digest: i.digest.to_hex(),
                sha256: None,
                is_dir: i.is_dir,
                downloaded: false,
            };
            inputs.downloads.insert(
                i.name.clone(),
                Download {
                    fetched,
                    digest: i.digest,
                    pending: None,
                },
            );
        }
        let mut files = TaskFiles::default();
        for i in &job.files {
            let host = path_of(i)?;
            files.files.insert(
                i.name.clone(),
                TaskFile {
                    host,
                    digest: i.digest,
                    is_dir: i.is_dir,
                },
            );
        }
        let p = Prepared {
            script: job.action.script.clone(),
            python: None,
            with_downloads: !job.downloads.is_empty(),
            network: job.network,
            files,
            interactive: false,
            limits: job.limits.clone(),
            sysroot_layer: job.sysroot_layer.clone(),
            native_sysroot: job.native_sysroot,
            deploy_dir: job.deploy_dir.clone(),
            timeout: job.timeout_secs.map(std::time::Duration::from_secs),
            named: job.named.clone(),
        };
        match self.run_in_sandbox(&task, None, &inputs, &p, &job.action, cancel)? {
            crate::executor::Ran::Captured(r, _) => Ok(*r),
            crate::executor::Ran::ShellClosed => Err(fail(
                FailureKind::Internal,
                format!("{}: a job ended as a devshell", task.label()),
            )),
        }
    }
}

/// The names of the tool links in `dir`, sorted.
fn tool_names(dir: &std::path::Path) -> std::io::Result<Vec<String>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)? {
        v.push(e?.file_name().to_string_lossy().into_owned());
    }
    v.sort();
    Ok(v)
}
