//! `bitzel worker`: a bot of the Remote Workers API (BuildGrid's bots
//! interface).
//!
//! The bot creates a session (`CreateBotSession`, with a restart-stable
//! `bot_id` and its capacity as the `capacity` config), then sends the
//! whole session back with `UpdateBotSession` in a loop (a few seconds'
//! deadline: the server holds the call while it looks for work). A lease
//! arriving ACTIVE (or PENDING) runs on a thread of its own:
//!
//! 1. the `Action` (lease payload), its `Command` and input root are read;
//! 2. the platform properties are checked against this worker: a different
//!    build root digest, sandbox kind or host-tools digest is refused with
//!    `FAILED_PRECONDITION` and a reason, so a result is never made on
//!    another root;
//! 3. the input blobs the local CAS lacks are downloaded (verified by both
//!    names) — repeated inputs cost nothing;
//! 4. the job runs with [`BuildExecutor::run_job`], in the sandbox a local
//!    build uses;
//! 5. outputs and the entry are uploaded ([`HttpStore::upload_result`], which
//!    also records it under the bitzel key) and the lease is reported
//!    COMPLETED with the `ActionResult` and an OK status (a failed task is
//!    an OK status with a non-zero exit code and its log).
//!
//! When the engine goes away the bot keeps retrying, and makes a new
//! session when the old one is unknown (an engine restart). On a stop
//! request it reports `BOT_TERMINATING` with unfinished leases COMPLETED /
//! UNAVAILABLE, which the engine requeues at once.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use tonic::Code;

use bitzel_cache::remote::store::HttpStore;
use bitzel_cache::remote::BlobRef;
use bitzel_cache::{Cache, Digest as B3};
use bitzel_exec::executor::{sandbox_kind, BuildExecutor, HostDirs, HostTools};
use bitzel_exec::remote::RemoteJob;
use bitzel_graph::{CancelToken, FailureKind};
use bitzel_sandbox::Backend;

use crate::grpc::{Engine, MAX_BATCH_BYTES};
use crate::input::{self, digest_of, property};
use crate::proto::*;
use crate::RemoteExecError;

/// How long an `UpdateBotSession` may be held by the server.
const POLL_DEADLINE: Duration = Duration::from_secs(2);

/// What the worker is and has.
pub struct WorkerSetup<'a> {
    /// The engine.
    pub engine: Arc<Engine>,
    /// The engine as a cache level (downloads into `cache`'s CAS, uploads).
    pub store: Arc<HttpStore>,
    /// The worker's local cache.
    pub cache: &'a Cache,
    /// The sandbox backend.
    pub sandbox: &'a dyn Backend,
    /// Scratch, logs and host-tool links live under this directory.
    pub work_dir: PathBuf,
    /// The build root's host paths.
    pub root_paths: Vec<PathBuf>,
    /// The build root's content digest (must match the action's).
    pub root_digest: B3,
    /// The bot's id (stable across restarts).
    pub bot_id: String,
    /// Leases run at once.
    pub jobs: usize,
    /// Set to stop (SIGTERM).
    pub stop: Arc<AtomicBool>,
}

/// What the worker did.
#[derive(Debug, Default)]
pub struct WorkerReport {
    /// Leases completed with a result.
    pub completed: AtomicU64,
    /// Leases refused (platform mismatch).
    pub refused: AtomicU64,
}

/// One lease held by the bot.
struct Held {
    lease: Lease,
    cancel: CancelToken,
    done: Option<(Status, Option<Any>)>,
}

type Table = Arc<Mutex<HashMap<String, Held>>>;

fn status(code: Code, message: impl Into<String>) -> Status {
    Status {
        code: code as i32,
        message: message.into(),
    }
}

impl WorkerSetup<'_> {
    fn session(&self) -> BotSession {
        BotSession {
            bot_id: self.bot_id.clone(),
            status: bot_status::OK,
            worker: Some(Worker {
                devices: vec![Device {
                    handle: self.bot_id.clone(),
                    properties: vec![],
                }],
                properties: vec![],
                configs: vec![KeyValue {
                    key: "capacity".into(),
                    value: self.jobs.max(1).to_string(),
                }],
            }),
            ..BotSession::default()
        }
    }

    /// Create a session, retrying while the engine is away (until stopped).
    fn create(&self) -> Option<BotSession> {
        let mut warned = false;
        while !self.stop.load(Ordering::Relaxed) {
            match self
                .engine
                .create_bot_session(self.session(), POLL_DEADLINE)
            {
                Ok(s) => {
                    tracing::info!(bot = %self.bot_id, session = %s.name, "bot session created");
                    return Some(s);
                }
                Err(e) => {
                    if !warned {
                        tracing::warn!(bot = %self.bot_id, error = %e, "cannot create a bot session; retrying");
                        warned = true;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
        None
    }

    /// Run the bot until stopped.
    pub fn run(&self, report: &WorkerReport) -> Result<(), RemoteExecError> {
        let table: Table = Arc::new(Mutex::new(HashMap::new()));
        std::thread::scope(|scope| {
            let Some(mut session) = self.create() else {
                return Ok(());
            };
            let mut sent_completed: Vec<String> = Vec::new();
            loop {
                let stopping = self.stop.load(Ordering::Relaxed);
                let mut out = session.clone();
                out.worker = self.session().worker;
                out.status = if stopping {
                    bot_status::BOT_TERMINATING
                } else {
                    bot_status::OK
                };
                out.leases = self.leases_to_send(&table, stopping, &mut sent_completed);
                match self.engine.update_bot_session(out, POLL_DEADLINE) {
                    Ok(next) => {
                        if stopping {
                            tracing::info!(bot = %self.bot_id, "bot terminated; unfinished leases handed back");
                            return Ok(());
                        }
                        self.take_leases(scope, &table, &next, &mut sent_completed, report);
                        session = next;
                    }
                    Err(e) if stopping => {
                        tracing::warn!(bot = %self.bot_id, error = %e, "could not tell the engine this bot stops");
                        return Ok(());
                    }
                    Err(RemoteExecError::Call {
                        code: Code::NotFound | Code::InvalidArgument | Code::FailedPrecondition,
                        message,
                        ..
                    }) => {
                        tracing::warn!(bot = %self.bot_id, %message, "the engine forgot this bot's session (restarted?); creating a new one");
                        sent_completed.clear();
                        if let Ok(mut t) = table.lock() {
                            t.retain(|_, h| h.done.is_none());
                        }
                        match self.create() {
                            Some(s) => session = s,
                            None => return Ok(()),
                        }
                    }
                    Err(e) if e.is_transient() => {
                        tracing::debug!(bot = %self.bot_id, error = %e, "UpdateBotSession failed; retrying");
                        std::thread::sleep(Duration::from_millis(500));
                    }
                    Err(e) => {
                        tracing::warn!(bot = %self.bot_id, error = %e, "UpdateBotSession failed; retrying");
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
            }
        })
    }

    /// The leases to report: running ones ACTIVE, finished ones COMPLETED
    /// (remembered in `sent`); when stopping, running ones COMPLETED /
    /// UNAVAILABLE so the engine requeues them.
    fn leases_to_send(&self, table: &Table, stopping: bool, sent: &mut Vec<String>) -> Vec<Lease> {
        let Ok(mut t) = table.lock() else {
            return vec![];
        };
        let mut v = Vec::new();
        for (id, h) in t.iter_mut() {
            let mut l = h.lease.clone();
            match &h.done {
                Some((st, res)) => {
                    l.state = lease_state::COMPLETED;
                    l.status = Some(st.clone());
                    l.result = res.clone();
                    sent.push(id.clone());
                }
                None if stopping => {
                    h.cancel.cancel();
                    l.state = lease_state::COMPLETED;
                    l.status = Some(status(Code::Unavailable, "the bot is terminating"));
                    l.result = None;
                }
                None => l.state = lease_state::ACTIVE,
            }
            v.push(l);
        }
        v
    }

    /// Start the new leases of `next`, cancel the cancelled ones, forget
    /// the ones whose completion the engine has received.
    fn take_leases<'s>(
        &'s self,
        scope: &'s std::thread::Scope<'s, '_>,
        table: &Table,
        next: &BotSession,
        sent: &mut Vec<String>,
        report: &'s WorkerReport,
    ) {
        let Ok(mut t) = table.lock() else { return };
        for id in sent.drain(..) {
            t.remove(&id);
        }
        for l in &next.leases {
            match (l.state, t.get(&l.id)) {
                (lease_state::ACTIVE | lease_state::PENDING, None) => {
                    let cancel = CancelToken::new();
                    t.insert(
                        l.id.clone(),
                        Held {
                            lease: l.clone(),
                            cancel: cancel.clone(),
                            done: None,
                        },
                    );
                    let table = table.clone();
                    let lease = l.clone();
                    scope.spawn(move || {
                        let outcome = self.run_lease(&lease, &cancel, report);
                        if let Ok(mut t) = table.lock() {
                            if let Some(h) = t.get_mut(&lease.id) {
                                h.done = Some(outcome);
                            }
                        }
                    });
                }
                (lease_state::CANCELLED, Some(h)) => h.cancel.cancel(),
                _ => {}
            }
        }
    }

    fn fetch(&self, d: &Digest) -> Result<Vec<u8>, Status> {
        let bad = |m: String| status(Code::FailedPrecondition, m);
        let bytes = if d.size_bytes as usize <= MAX_BATCH_BYTES {
            self.engine
                .batch_read(std::slice::from_ref(d))
                .map_err(|e| bad(e.to_string()))?
                .into_iter()
                .find(|(g, _)| g == d)
                .and_then(|(_, b)| b)
        } else {
            let mut buf = Vec::new();
            let found = self
                .engine
                .read_stream(d, &mut |c| {
                    buf.extend_from_slice(c);
                    Ok(())
                })
                .map_err(|e| bad(e.to_string()))?;
            found.then_some(buf)
        };
        let bytes = bytes.ok_or_else(|| bad(format!("blob {} is missing from the CAS", d.hash)))?;
        if digest_of(&bytes) != *d {
            return Err(bad(format!("blob {} does not match its digest", d.hash)));
        }
        Ok(bytes)
    }

    /// Run one lease: the status and result to report.
    fn run_lease(
        &self,
        lease: &Lease,
        cancel: &CancelToken,
        report: &WorkerReport,
    ) -> (Status, Option<Any>) {
        match self.run_lease_inner(lease, cancel) {
            Ok(ar) => {
                report.completed.fetch_add(1, Ordering::Relaxed);
                (
                    status(Code::Ok, ""),
                    Some(Any::pack(names::ACTION_RESULT, &ar)),
                )
            }
            Err(st) => {
                if st.code == Code::FailedPrecondition as i32 {
                    report.refused.fetch_add(1, Ordering::Relaxed);
                }
                tracing::warn!(bot = %self.bot_id, lease = %lease.id, reason = %st.message, "lease not run");
                (st, None)
            }
        }
    }

    fn decode<M: Message + Default>(bytes: &[u8], what: &str) -> Result<M, Status> {
        M::decode(bytes)
            .map_err(|e| status(Code::InvalidArgument, format!("an undecodable {what}: {e}")))
    }

    /// The job of `lease`, its platform checked; its blobs made local.
    fn job_of(&self, lease: &Lease) -> Result<RemoteJob, Status> {
        let payload = lease
            .payload
            .as_ref()
            .ok_or_else(|| status(Code::InvalidArgument, "a lease without payload"))?;
        let action: Action = if payload.is(names::ACTION) {
            Self::decode(&payload.value, "Action")?
        } else if payload.is(names::DIGEST) {
            let d: Digest = Self::decode(&payload.value, "Digest")?;
            Self::decode(&self.fetch(&d)?, "Action")?
        } else {
            return Err(status(
                Code::InvalidArgument,
                format!("a lease payload of type {}", payload.type_url),
            ));
        };
        let cmd_d = action
            .command_digest
            .as_ref()
            .ok_or_else(|| status(Code::InvalidArgument, "an Action without command"))?;
        let command: Command = Self::decode(&self.fetch(cmd_d)?, "Command")?;
        let platform = action
            .platform
            .clone()
            .or(command.platform.clone())
            .unwrap_or_default();
        self.check_platform(&platform)?;
        let root_d = action
            .input_root_digest
            .as_ref()
            .ok_or_else(|| status(Code::InvalidArgument, "an Action without input root"))?;
        let root: Directory = Self::decode(&self.fetch(root_d)?, "Directory")?;
        let job_node = root.files.iter().find(|f| f.name == input::JOB_FILE);
        let cas_node = root.directories.iter().find(|d| d.name == input::CAS_DIR);
        let (Some(job_d), Some(cas_d)) = (
            job_node.and_then(|n| n.digest.clone()),
            cas_node.and_then(|n| n.digest.clone()),
        ) else {
            return Err(status(
                Code::InvalidArgument,
                "not a bitzel action: its input root has no job.json and cas/",
            ));
        };
        let job: RemoteJob = serde_json::from_slice(&self.fetch(&job_d)?).map_err(|e| {
            status(
                Code::InvalidArgument,
                format!("an unreadable job.json: {e} (is the client the same bitzel version?)"),
            )
        })?;
        if input::platform(&job) != platform {
            return Err(status(
                Code::InvalidArgument,
                "the platform does not match the job",
            ));
        }
        let cas_dir: Directory = Self::decode(&self.fetch(&cas_d)?, "Directory")?;
        let mut refs = Vec::new();
        for f in &cas_dir.files {
            let (Ok(b3), Some(d)) = (f.name.parse::<B3>(), f.digest.as_ref()) else {
                return Err(status(
                    Code::InvalidArgument,
                    format!("cas/{} is not a blob name", f.name),
                ));
            };
            let size = u64::try_from(d.size_bytes).unwrap_or(0);
            self.store.remote().learn_name(&b3, size, &d.hash);
            refs.push(BlobRef { digest: b3, size });
        }
        match self.store.remote().fetch_all_into(&refs, self.cache.cas()) {
            Ok(true) => Ok(job),
            Ok(false) => Err(status(
                Code::FailedPrecondition,
                "input blobs are missing or corrupt in the engine's CAS",
            )),
            Err(e) => Err(status(
                Code::Unavailable,
                format!("downloading inputs: {e}"),
            )),
        }
    }

    fn check_platform(&self, p: &Platform) -> Result<(), Status> {
        let refuse = |m: String| {
            status(
                Code::FailedPrecondition,
                format!("bitzel worker {} refuses this action: {m}", self.bot_id),
            )
        };
        let root = property(p, input::PROP_BUILD_ROOT).unwrap_or("");
        if root != self.root_digest.to_hex() {
            return Err(refuse(format!(
                "it needs build root {root}, this worker's build root is {} (run it on a worker whose host root is the same, or build locally)",
                self.root_digest.to_hex()
            )));
        }
        let want = property(p, input::PROP_SANDBOX).unwrap_or("");
        let have = sandbox_kind(self.sandbox);
        if want != have {
            return Err(refuse(format!(
                "it needs sandbox kind `{want}`, this worker runs `{have}` ({})",
                self.sandbox.name()
            )));
        }
        Ok(())
    }

    fn run_lease_inner(&self, lease: &Lease, cancel: &CancelToken) -> Result<ActionResult, Status> {
        let job = self.job_of(lease)?;
        let label = job.action.label.clone();
        let tools_dir = self.work_dir.join("hosttools");
        let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
        let set = bitzel_exec::hosttools::resolve(&job.hosttools, &[], &path).map_err(|e| {
            status(
                Code::FailedPrecondition,
                format!(
                    "bitzel worker {} refuses {label}: host tools: {e}",
                    self.bot_id
                ),
            )
        })?;
        let tools_digest = set
            .digest()
            .map_err(|e| status(Code::FailedPrecondition, format!("host tools: {e}")))?;
        if tools_digest != job.action.tools {
            return Err(status(
                Code::FailedPrecondition,
                format!("bitzel worker {} refuses {label}: its host tools differ from the client's (digest {} here, {} wanted)", self.bot_id, tools_digest.short(), job.action.tools.short()),
            ));
        }
        let dir = tools_dir.join(tools_digest.to_hex());
        {
            // Once per tool set: a running lease's tools must not be relinked under it.
            static LINKED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
            let mut linked = LINKED.lock().unwrap_or_else(|p| p.into_inner());
            if !linked.contains(&dir) {
                set.link_into(&dir)
                    .map_err(|e| status(Code::Internal, format!("linking host tools: {e}")))?;
                linked.push(dir.clone());
            }
        }
        // No Python tasks: they are never sent to an engine (their library
        // mounts are not part of a job).
        let exec = BuildExecutor::new(
            &[],
            self.cache,
            self.sandbox,
            HostDirs {
                build_dir: self.work_dir.clone(),
                dl_dir: self.work_dir.join("downloads"),
            },
            HostTools {
                dir,
                digest: tools_digest,
                root_paths: self.root_paths.clone(),
                root_digest: self.root_digest,
                // Jobs of a rootfs build root carry its digest, which no
                // host-root worker has: `check_platform` refuses them.
                rootfs: None,
            },
        );
        let key = job.action.key();
        tracing::info!(bot = %self.bot_id, task = %label, "running");
        match exec.run_job(&job, cancel) {
            Ok(result) => match self.store.upload_result(&key, &result) {
                Ok(Some(ac)) => ActionResult::decode(&ac[..])
                    .map_err(|e| status(Code::Internal, format!("re-reading the result: {e}"))),
                Ok(None) | Err(_) => Err(status(
                    Code::Internal,
                    format!("could not upload the outputs of {label}"),
                )),
            },
            Err(f) if f.kind == FailureKind::Task => {
                let kept = exec.dirs.kept_files(&job.pn, &job.task);
                let log =
                    std::fs::read(&kept.log).unwrap_or_else(|_| f.message.clone().into_bytes());
                let d = digest_of(&log);
                let up = if log.len() <= MAX_BATCH_BYTES {
                    self.engine.batch_update(vec![(d.clone(), log)])
                } else {
                    self.engine.write_stream(
                        &d,
                        Box::new(std::io::Cursor::new(log)),
                        Box::new(|_| true),
                    )
                };
                Ok(ActionResult {
                    exit_code: 1,
                    stdout_digest: up.is_ok().then_some(d),
                    ..ActionResult::default()
                })
            }
            Err(f) if f.kind == FailureKind::Cancelled => Err(status(Code::Cancelled, f.message)),
            Err(f) => Err(status(Code::FailedPrecondition, f.message)),
        }
    }
}
