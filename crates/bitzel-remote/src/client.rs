//! [`RemoteExecutor`]: `bitzel build --remote-executor grpc://…`. Each miss
//! becomes an [`crate::input::InputRoot`]; the blobs the engine lacks
//! (`FindMissingBlobs`) are uploaded in batches of at most
//! [`MAX_BATCH_BYTES`] (`BatchUpdateBlobs`) or streamed (ByteStream); the
//! action is `Execute`d; the `ActionResult` is adopted through the cache
//! level ([`HttpStore::adopt_entry_lazy`]: the checks of a remote-cache hit,
//! the result's tree manifests and logs fetched into the local CAS), so a
//! malformed or hostile result is a warning and the task runs here instead.
//! The outputs' file blobs stay on the engine: the store is the cache's
//! [`bitzel_cache::BlobSource`], and they are fetched when something local
//! reads them (a layer for a local task, deployed artifacts, a devshell).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prost::Message;

use bitzel_cache::remote::store::HttpStore;
use bitzel_cache::{ActionKey, Cas};
use bitzel_exec::remote::{RemoteFailure, RemoteJob, RemoteOutcome, RemoteRunner};

use crate::grpc::{Engine, MAX_BATCH_BYTES};
use crate::input;
use crate::proto::Digest;
use crate::RemoteExecError;

/// Counters for the build summary.
#[derive(Debug, Default)]
pub struct ExecStats {
    /// Actions executed by a worker.
    pub executed: AtomicU64,
    /// Actions the engine's action cache answered.
    pub cached: AtomicU64,
    /// Blobs uploaded / bytes.
    pub blobs_uploaded: AtomicU64,
    /// Bytes uploaded.
    pub bytes_uploaded: AtomicU64,
}

/// The remote executor.
pub struct RemoteExecutor {
    engine: Arc<Engine>,
    store: Arc<HttpStore>,
    cas: Cas,
    fallback_local: bool,
    /// Set once the engine could not be reached: later misses fail (or fall
    /// back) at once with the same message.
    unreachable: Mutex<Option<String>>,
    /// Counters.
    pub stats: ExecStats,
}

impl std::fmt::Debug for RemoteExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteExecutor")
            .field("engine", &self.engine.config().url)
            .finish()
    }
}

impl RemoteExecutor {
    /// An executor on `engine`, adopting results through `store` (the
    /// engine as the cache level of the local cache whose CAS is `cas`).
    pub fn new(
        engine: Arc<Engine>,
        store: Arc<HttpStore>,
        cas: Cas,
        fallback_local: bool,
    ) -> RemoteExecutor {
        RemoteExecutor {
            engine,
            store,
            cas,
            fallback_local,
            unreachable: Mutex::new(None),
            stats: ExecStats::default(),
        }
    }

    /// Bytes downloaded from the engine (results, manifests, logs and the
    /// outputs something local read) and what downloading every output of
    /// every result would have been (the results workers ran and the hits
    /// in the engine's action cache): `(downloaded, eager)`.
    pub fn download_figures(&self) -> (u64, u64) {
        let s = self.store.stats();
        (s.bytes_downloaded, s.on_demand_eager_bytes)
    }

    /// One line for the build summary.
    pub fn summary_line(&self) -> String {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (downloaded, eager) = self.download_figures();
        format!(
            "remote executor {}: {} executed by workers, {} found cached by the engine when submitted (other hits are the cache line's remote hits), {} blobs ({:.1} MB) uploaded, {downloaded} bytes downloaded from the engine (fetching every output would have been {eager} bytes)",
            self.engine.config().url,
            l(&self.stats.executed),
            l(&self.stats.cached),
            l(&self.stats.blobs_uploaded),
            l(&self.stats.bytes_uploaded) as f64 / 1e6,
        )
    }

    /// Upload every blob of `root` the engine lacks.
    fn upload(&self, root: &input::InputRoot) -> Result<(), RemoteExecError> {
        let mut all: Vec<Digest> = root.messages.iter().map(|m| m.0.clone()).collect();
        all.extend(root.files.iter().map(|f| f.0.clone()));
        all.sort_by(|a, b| a.hash.cmp(&b.hash));
        all.dedup();
        let missing: std::collections::HashSet<String> = self
            .engine
            .find_missing(&all)?
            .into_iter()
            .map(|d| d.hash)
            .collect();
        let mut batch: Vec<(Digest, Vec<u8>)> = Vec::new();
        let mut batch_bytes = 0usize;
        let mut sent = std::collections::HashSet::new();
        let flush = |batch: &mut Vec<(Digest, Vec<u8>)>, n: &mut usize| {
            if batch.is_empty() {
                return Ok(());
            }
            let blobs = std::mem::take(batch);
            self.stats
                .blobs_uploaded
                .fetch_add(blobs.len() as u64, Ordering::Relaxed);
            self.stats
                .bytes_uploaded
                .fetch_add(*n as u64, Ordering::Relaxed);
            *n = 0;
            self.engine.batch_update(blobs)
        };
        let items = root
            .messages
            .iter()
            .map(|(d, b)| (d, Some(b), None))
            .chain(root.files.iter().map(|(d, p)| (d, None, Some(p))));
        for (d, bytes, path) in items {
            if !missing.contains(&d.hash) || !sent.insert(d.hash.clone()) {
                continue;
            }
            let size = d.size_bytes as usize;
            if size > MAX_BATCH_BYTES {
                if let Some(p) = path {
                    self.engine.write_file(d, p)?;
                } else if let Some(b) = bytes {
                    self.engine.write_stream(
                        d,
                        Box::new(std::io::Cursor::new(b.clone())),
                        Box::new(|_| true),
                    )?;
                }
                self.stats.blobs_uploaded.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .bytes_uploaded
                    .fetch_add(size as u64, Ordering::Relaxed);
                continue;
            }
            if batch_bytes + size > MAX_BATCH_BYTES {
                flush(&mut batch, &mut batch_bytes)?;
            }
            let data = match (bytes, path) {
                (Some(b), _) => b.clone(),
                (None, Some(p)) => std::fs::read(p).map_err(|source| RemoteExecError::Local {
                    what: format!(
                        "reading {} (a blob the engine lacks: an output left there was evicted? `bitzel build` without --remote-executor runs its task again)",
                        p.display()
                    ),
                    source,
                })?,
                (None, None) => continue,
            };
            batch_bytes += data.len();
            batch.push((d.clone(), data));
        }
        flush(&mut batch, &mut batch_bytes)
    }

    fn failure(&self, label: &str, e: &RemoteExecError) -> RemoteFailure {
        let unreachable = matches!(
            e,
            RemoteExecError::Call {
                code: tonic::Code::Unavailable,
                ..
            }
        );
        let message = if unreachable {
            let m = format!(
                "the remote executor {} cannot be reached ({e}); start it, fix --remote-executor, or pass --remote-executor-fallback local",
                self.engine.config().url
            );
            if let Ok(mut u) = self.unreachable.lock() {
                u.get_or_insert(m.clone());
            }
            m
        } else {
            format!("remote execution of {label} failed: {e}")
        };
        RemoteFailure {
            message,
            run_locally: false,
        }
    }

    fn fetch_log(&self, d: &Digest) -> Option<Vec<u8>> {
        let mut buf = Vec::new();
        match self.engine.read_stream(d, &mut |c| {
            buf.extend_from_slice(c);
            Ok(())
        }) {
            Ok(true) => Some(buf),
            _ => None,
        }
    }
}

impl RemoteRunner for RemoteExecutor {
    fn fallback_local(&self) -> bool {
        self.fallback_local
    }

    fn run(&self, key: &ActionKey, job: &RemoteJob) -> Result<RemoteOutcome, RemoteFailure> {
        let label = job.action.label.clone();
        if let Some(m) = self.unreachable.lock().ok().and_then(|u| u.clone()) {
            return Err(RemoteFailure {
                message: m,
                run_locally: false,
            });
        }
        let root = input::build(job, &self.cas, self.store.remote())
            .map_err(|e| self.failure(&label, &e))?;
        self.upload(&root).map_err(|e| self.failure(&label, &e))?;
        tracing::debug!(task = %label, action = %root.action_digest.hash, "executing remotely");
        let done = self
            .engine
            .execute(&root.action_digest)
            .map_err(|e| self.failure(&label, &e))?;
        let resp = done.response;
        if let Some(s) = resp.status.as_ref().filter(|s| s.code != 0) {
            return Err(RemoteFailure {
                message: format!(
                    "the engine could not run {label}: {:?}: {}",
                    tonic::Code::from_i32(s.code),
                    s.message
                ),
                run_locally: false,
            });
        }
        let Some(ar) = resp.result else {
            return Err(RemoteFailure {
                message: format!("the engine finished {label} without a result"),
                run_locally: false,
            });
        };
        if ar.exit_code != 0 {
            let log = ar.stdout_digest.as_ref().and_then(|d| self.fetch_log(d));
            return Ok(RemoteOutcome::Failed {
                exit_code: ar.exit_code,
                log,
            });
        }
        match self.store.adopt_entry_lazy(key, &ar.encode_to_vec()) {
            Some(r) if r.action == job.action => {
                if resp.cached_result {
                    self.stats.cached.fetch_add(1, Ordering::Relaxed);
                    Ok(RemoteOutcome::Cached(Box::new(r)))
                } else {
                    self.stats.executed.fetch_add(1, Ordering::Relaxed);
                    Ok(RemoteOutcome::Executed(Box::new(r)))
                }
            }
            Some(_) => {
                Err(RemoteFailure {
                    message: format!("the engine's result for {label} is for another action (a hostile or broken engine?); not used"),
                    run_locally: true,
                })
            }
            None => Err(RemoteFailure {
                message: format!("the engine's result for {label} is unusable (see the warning above)"),
                run_locally: true,
            }),
        }
    }
}
