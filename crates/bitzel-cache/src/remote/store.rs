//! [`HttpStore`]: the remote cache as one more [`Storage`] level, placed
//! after the local store in a [`crate::store::Stacked`] (see
//! [`crate::Cache::with_levels`]).
//!
//! With a handle on the local CAS, a remote hit downloads every blob the
//! entry lists in parallel (bounded pool, each streamed to a CAS temp file
//! and verified) straight into the local CAS before the hit is reported, so
//! `Stacked`'s write-back finds them there; a blob the server lacks or serves
//! corrupt makes the hit a miss.
//!
//! Memory stays bounded whatever a blob's size: downloads always stream, and
//! uploads of blobs of [`STREAM_UPLOAD_BYTES`] or more are queued as the path
//! of their local CAS file and streamed from it, verified while sent.
//!
//! Remote failures never become errors of this level: once the remote is
//! given up (one warning), lookups miss and writes are dropped silently.

use std::collections::{HashSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use super::{BlobRef, RemoteCache, RemoteConfig, RemoteEntry, RemoteError, RemoteStatsSnapshot};
use crate::action::ActionResult;
use crate::cache::BlobSource;
use crate::cas::Cas;
use crate::digest::{ActionKey, Digest};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::unique_name;
use crate::store::{decode_result, encode_result, Storage};
use crate::tree::{read_tree, EntryKind, Tree, MAX_MANIFEST_BYTES};

/// Bytes of blob content that may wait in memory in the upload queue before
/// `put_blob` blocks (one larger blob is always admitted when the queue is
/// empty). Blobs queued as a file path ([`STREAM_UPLOAD_BYTES`]) do not count.
pub const UPLOAD_QUEUE_BYTES: u64 = 256 << 20;

/// Blobs at least this large are queued for upload as the path of their
/// (immutable, content-addressed) local CAS file and streamed from it when
/// their turn comes, verified while sent; smaller ones are read, verified
/// and queued in memory (cheaper than reopening the file, and 256 of them
/// still fit in [`UPLOAD_QUEUE_BYTES`]). Downloads always stream.
pub const STREAM_UPLOAD_BYTES: u64 = 1 << 20;

/// The remote cache as a [`Storage`] level.
#[derive(Debug)]
pub struct HttpStore {
    shared: Arc<Shared>,
    local: Option<Cas>,
    /// Hits leave the trees' file blobs on the server
    /// ([`HttpStore::with_outputs_on_demand`]).
    on_demand: bool,
}

/// What the upload workers share with the store.
#[derive(Debug)]
struct Shared {
    remote: RemoteCache,
    uploads: Mutex<Uploads>,
    changed: Condvar,
}

/// The upload queue: `put_blob` enqueues, up to `parallelism` worker
/// threads upload, `put_action` waits for its blobs before writing the entry.
#[derive(Debug, Default)]
struct Uploads {
    queue: VecDeque<(Digest, Job)>,
    /// Queued or being uploaded.
    pending: HashSet<Digest>,
    /// Uploads that failed (the entry referencing them is not written).
    failed: HashSet<Digest>,
    queued_bytes: u64,
    workers: usize,
}

/// One queued upload.
#[derive(Debug)]
enum Job {
    /// Verified content, held in memory (counted in `queued_bytes`).
    Bytes(Vec<u8>),
    /// A local CAS file, streamed and verified at upload time.
    File { path: PathBuf, size: u64 },
}

impl Job {
    fn queued_bytes(&self) -> u64 {
        match self {
            Job::Bytes(b) => b.len() as u64,
            Job::File { .. } => 0,
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Uploads> {
        self.uploads.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, g: MutexGuard<'a, Uploads>) -> MutexGuard<'a, Uploads> {
        self.changed.wait(g).unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether an upload succeeded, warning about failures other than the
    /// transport giving up (which has warned once already).
    fn outcome(&self, res: std::result::Result<bool, RemoteError>) -> bool {
        match res {
            Ok(_) => true,
            Err(err) => {
                if !matches!(err, RemoteError::Unavailable { .. }) {
                    tracing::warn!(remote = %self.remote.config().display_url(), "remote upload failed: {err}");
                }
                false
            }
        }
    }

    /// Run the queue on the calling thread (when no worker thread can be spawned).
    fn work_inline(self: Arc<Self>) {
        self.lock().workers += 1;
        self.work();
    }

    /// One upload worker: take blobs until the queue is empty, then exit.
    fn work(self: Arc<Self>) {
        loop {
            let (d, job) = {
                let mut g = self.lock();
                match g.queue.pop_front() {
                    Some(job) => job,
                    None => {
                        g.workers -= 1;
                        self.changed.notify_all();
                        return;
                    }
                }
            };
            let res = match &job {
                Job::Bytes(bytes) => self.remote.put_blob(&d, bytes),
                Job::File { path, size } => self.remote.put_file(&d, path, *size),
            };
            let ok = self.outcome(res);
            let mut g = self.lock();
            g.pending.remove(&d);
            g.queued_bytes = g.queued_bytes.saturating_sub(job.queued_bytes());
            if !ok {
                g.failed.insert(d);
            }
            self.changed.notify_all();
        }
    }
}

impl HttpStore {
    /// A level for `config`. `local` is the local CAS that hits are
    /// prefetched into (and that tree manifests are read from when
    /// uploading); `map_dir` keeps the BLAKE3→SHA-256 map (sha256 digest
    /// function), e.g. `<cache root>/remote-sha256`.
    pub fn new(
        config: RemoteConfig,
        local: Option<Cas>,
        map_dir: Option<&Path>,
    ) -> std::result::Result<HttpStore, RemoteError> {
        Ok(HttpStore {
            shared: Arc::new(Shared {
                remote: RemoteCache::new(config, map_dir)?,
                uploads: Mutex::new(Uploads::default()),
                changed: Condvar::new(),
            }),
            local,
            on_demand: false,
        })
    }

    /// The level for `remote` (any transport), downloading into `local`.
    pub fn with_remote(remote: RemoteCache, local: Option<Cas>) -> HttpStore {
        HttpStore {
            shared: Arc::new(Shared {
                remote,
                uploads: Mutex::new(Uploads::default()),
                changed: Condvar::new(),
            }),
            local,
            on_demand: false,
        }
    }

    /// Hits from this level bring only their entry, tree manifests and
    /// logs into the local CAS; the files stay on the server until
    /// something local reads them. Only for a level that is also the
    /// cache's [`BlobSource`] ([`crate::Cache::set_blob_source`]), as a
    /// remote executor's engine is; without a local CAS it has no effect.
    pub fn with_outputs_on_demand(mut self) -> HttpStore {
        self.on_demand = self.local.is_some();
        self
    }

    /// The level for `cache`: prefetches into its CAS and keeps the
    /// SHA-256 map in `<cache root>/remote-sha256`. Put it behind the local
    /// store with [`crate::Cache::with_levels`]; keep the `Arc` to read
    /// [`HttpStore::stats`] for the build summary.
    pub fn for_cache(
        config: RemoteConfig,
        cache: &crate::Cache,
    ) -> std::result::Result<HttpStore, RemoteError> {
        let map_dir = cache.root().join("remote-sha256");
        HttpStore::new(config, Some(cache.cas().clone()), Some(&map_dir))
    }

    /// The protocol-level client.
    pub fn remote(&self) -> &RemoteCache {
        &self.shared.remote
    }

    /// Wait until every queued blob upload has finished (uploads run on
    /// background threads; an action's entry is written only after its
    /// blobs). Called on drop too.
    pub fn flush(&self) {
        let mut g = self.shared.lock();
        while !g.pending.is_empty() {
            g = self.shared.wait(g);
        }
    }

    /// Queue blob `d` for upload, blocking while the queue holds more than
    /// [`UPLOAD_QUEUE_BYTES`] in memory.
    fn enqueue(&self, d: Digest, job: Job) {
        let len = job.queued_bytes();
        let mut g = self.shared.lock();
        if g.pending.contains(&d) {
            return;
        }
        while g.queued_bytes > 0 && g.queued_bytes + len > UPLOAD_QUEUE_BYTES {
            g = self.shared.wait(g);
        }
        g.failed.remove(&d);
        g.pending.insert(d);
        g.queue.push_back((d, job));
        g.queued_bytes += len;
        if g.workers < self.remote().config().parallelism.max(1) {
            g.workers += 1;
            let shared = self.shared.clone();
            let spawned = std::thread::Builder::new()
                .name("bitzel-upload".into())
                .spawn(move || shared.work());
            if spawned.is_err() {
                g.workers -= 1;
                if g.workers == 0 {
                    // No thread at all: upload here, synchronously.
                    drop(g);
                    self.shared.clone().work_inline();
                    return;
                }
            }
        }
        self.shared.changed.notify_all();
    }

    /// Upload blob `d` from `src` on the calling thread, streaming (no local
    /// CAS to queue a stable path from: `src` may be gone once `put_blob`
    /// returns), with the queue's bookkeeping.
    fn upload_now(&self, d: Digest, src: &Path, size: u64) {
        {
            let mut g = self.shared.lock();
            if g.pending.contains(&d) {
                return;
            }
            g.pending.insert(d);
        }
        let ok = self.shared.outcome(self.remote().put_file(&d, src, size));
        let mut g = self.shared.lock();
        g.pending.remove(&d);
        if ok {
            g.failed.remove(&d);
        } else {
            g.failed.insert(d);
        }
        self.shared.changed.notify_all();
    }

    /// Wait for the uploads of `blobs`; true if none failed.
    fn wait_uploaded(&self, blobs: &[BlobRef]) -> bool {
        let mut g = self.shared.lock();
        while blobs.iter().any(|b| g.pending.contains(&b.digest)) {
            g = self.shared.wait(g);
        }
        !blobs.iter().any(|b| g.failed.contains(&b.digest))
    }

    /// Remote hits, uploads, bytes moved so far.
    pub fn stats(&self) -> RemoteStatsSnapshot {
        self.remote().stats()
    }

    /// Log a remote failure that is not the transport giving up (which has
    /// already warned once).
    fn note(&self, what: &str, e: &RemoteError) {
        match e {
            RemoteError::Unavailable { .. } => {}
            other => {
                tracing::warn!(remote = %self.remote().config().display_url(), "{what}: {other}")
            }
        }
    }

    /// A blob's bytes for reading a tree manifest or sizing a log: the local
    /// CAS first, then the remote.
    fn read_blob(&self, d: &Digest) -> Result<Option<Vec<u8>>> {
        if let Some(cas) = &self.local {
            if cas.contains(d) {
                return cas.read(d).map(Some);
            }
        }
        Ok(self.remote().get_blob_by_digest(d).unwrap_or_default())
    }

    fn blob_size(&self, d: &Digest) -> Result<Option<u64>> {
        if let Some(cas) = &self.local {
            let p = cas.blob_path(d);
            if let Ok(md) = fs::metadata(&p) {
                return Ok(Some(md.len()));
            }
        }
        if let Some(s) = self.remote().known_size(d) {
            return Ok(Some(s));
        }
        Ok(self.read_blob(d)?.map(|b| b.len() as u64))
    }

    /// Every blob `r` references — tree manifests, their files, logs — with
    /// sizes. `None` if a tree manifest cannot be read.
    fn referenced(&self, r: &ActionResult) -> Result<Option<Vec<BlobRef>>> {
        let mut out = Vec::new();
        for t in r.trees() {
            let Some(bytes) = self.read_blob(&t)? else {
                return Ok(None);
            };
            let tree = Tree::decode(&bytes).map_err(|reason| Error::Corrupt {
                what: "tree manifest",
                path: t.to_hex().into(),
                reason,
            })?;
            out.push(BlobRef {
                digest: t,
                size: bytes.len() as u64,
            });
            for e in tree.entries() {
                if let EntryKind::File { digest, size, .. } = e.kind {
                    out.push(BlobRef { digest, size });
                }
            }
        }
        for d in r.log_blobs() {
            let Some(size) = self.blob_size(&d)? else {
                return Ok(None);
            };
            out.push(BlobRef { digest: d, size });
        }
        out.sort();
        out.dedup();
        Ok(Some(out))
    }

    /// Fetch the tree manifests of `r` (listed in `blobs`) and validate
    /// them ([`Tree::decode`]) before any file blob is downloaded:
    /// `Ok(Err((tree, reason)))` names the first invalid (or oversized) one.
    /// A manifest the server lacks is left to the full fetch to report.
    #[allow(clippy::type_complexity)]
    fn valid_trees(
        &self,
        r: &ActionResult,
        blobs: &[BlobRef],
    ) -> std::result::Result<std::result::Result<(), (Digest, String)>, RemoteError> {
        for t in r.trees() {
            let Some(b) = blobs.iter().find(|b| b.digest == t) else {
                continue;
            };
            if b.size > MAX_MANIFEST_BYTES {
                let reason = format!("{} bytes (at most {MAX_MANIFEST_BYTES})", b.size);
                return Ok(Err((t, reason)));
            }
            let decoded = match &self.local {
                Some(cas) => {
                    if !self.remote().fetch_all_into(std::slice::from_ref(b), cas)? {
                        continue;
                    }
                    match read_tree(cas, &t) {
                        Ok(_) => Ok(()),
                        Err(Error::Corrupt { reason, .. }) => Err(reason),
                        // Missing or corrupt locally: the full fetch decides.
                        Err(_) => Ok(()),
                    }
                }
                None => match self.remote().get_blob(b)? {
                    Some(bytes) => Tree::decode(&bytes).map(drop),
                    None => continue,
                },
            };
            if let Err(reason) = decoded {
                return Ok(Err((t, reason)));
            }
        }
        Ok(Ok(()))
    }

    fn log_ref(&self, d: Option<Digest>, blobs: &[BlobRef]) -> Option<BlobRef> {
        let d = d?;
        blobs.iter().find(|b| b.digest == d).copied()
    }

    fn get_action_inner(&self, key: &ActionKey) -> Option<ActionResult> {
        let e = match self.remote().get_entry(key) {
            Ok(Some(e)) => e,
            Ok(None) => return None,
            Err(err) => {
                self.note("remote lookup failed", &err);
                return None;
            }
        };
        self.result_of_entry(key, e, self.on_demand)
    }

    /// An action result for `key` received some other way (the REAPI
    /// `ActionResult` of a remote execution), checked and made local
    /// exactly as a remote-cache hit is: a malformed or hostile entry (bad
    /// encoding, an unlisted blob, an invalid tree, a blob missing or
    /// corrupt on the server) is `None` with a warning, and nothing of it is
    /// written outside the local CAS.
    pub fn adopt_entry(&self, key: &ActionKey, ac_bytes: &[u8]) -> Option<ActionResult> {
        let e = self.entry_of_bytes(key, ac_bytes)?;
        self.result_of_entry(key, e, false)
    }

    /// [`HttpStore::adopt_entry`] without the file blobs of the result's
    /// trees: only the result, its tree manifests (validated) and its logs
    /// are fetched; the files stay on the server until something reads
    /// them (this store as the cache's [`BlobSource`]). What an eager
    /// adoption would have downloaded is counted in
    /// [`RemoteStatsSnapshot::on_demand_eager_bytes`].
    pub fn adopt_entry_lazy(&self, key: &ActionKey, ac_bytes: &[u8]) -> Option<ActionResult> {
        let e = self.entry_of_bytes(key, ac_bytes)?;
        self.result_of_entry(key, e, true)
    }

    fn entry_of_bytes(&self, key: &ActionKey, ac_bytes: &[u8]) -> Option<RemoteEntry> {
        match self.remote().entry_from_bytes(key, ac_bytes) {
            Ok(e) => e,
            Err(err) => {
                self.note("remote download failed", &err);
                None
            }
        }
    }

    /// Upload `result`, every blob it references that the server is not
    /// known to have (read from the local CAS) and its action-cache entry
    /// under `key`; returns the entry as sent (a REAPI `ActionResult`), or
    /// `None` when it could not be uploaded whole (logged).
    pub fn upload_result(&self, key: &ActionKey, result: &ActionResult) -> Result<Option<Vec<u8>>> {
        let Some(blobs) = self.referenced(result)? else {
            return Ok(None);
        };
        let e = self.entry_for(result, blobs);
        let read = |d: &Digest| -> std::result::Result<
            Option<Vec<u8>>,
            Box<dyn std::error::Error + Send + Sync>,
        > {
            match &self.local {
                Some(cas) if cas.contains(d) => Ok(Some(cas.read(d)?)),
                _ => Ok(None),
            }
        };
        let sent = self
            .remote()
            .put_action(key, &e, &read)
            .and_then(|done| done.then(|| self.remote().encode_entry(&e)).transpose());
        match sent {
            Ok(v) => Ok(v),
            Err(err) => {
                self.note("remote upload failed", &err);
                Ok(None)
            }
        }
    }

    fn entry_for(&self, result: &ActionResult, blobs: Vec<BlobRef>) -> RemoteEntry {
        let completed = result.created_unix_ms;
        RemoteEntry {
            result: encode_result(result),
            exit_code: result.exit_code,
            stdout: self.log_ref(result.stdout, &blobs),
            stderr: self.log_ref(result.stderr, &blobs),
            blobs,
            started_unix_ms: Some(completed.saturating_sub(result.duration_ms)),
            completed_unix_ms: Some(completed),
        }
    }

    /// With `lazy` (and a local CAS), the trees' file blobs are not fetched.
    fn result_of_entry(&self, key: &ActionKey, e: RemoteEntry, lazy: bool) -> Option<ActionResult> {
        let r = match decode_result(&e.result) {
            Ok(r) => r,
            Err(reason) => {
                tracing::warn!(key = %key.short(), %reason, "remote action result does not decode (another bitzel version?); treated as a miss");
                return None;
            }
        };
        let listed = |d: &Digest| e.blobs.iter().any(|b| b.digest == *d);
        if let Some(d) = r
            .trees()
            .iter()
            .chain(r.log_blobs().iter())
            .find(|d| !listed(d))
        {
            tracing::warn!(key = %key.short(), blob = %d.short(), "remote entry does not list a blob its result references; treated as a miss");
            return None;
        }
        match self.valid_trees(&r, &e.blobs) {
            Ok(Ok(())) => {}
            Ok(Err((tree, reason))) => {
                self.remote().note_rejected();
                tracing::warn!(remote = %self.remote().config().display_url(), key = %key, label = %r.label, tree = %tree,
                    "remote cache entry rejected: its tree is invalid ({reason}); nothing of it was written, the task runs again");
                return None;
            }
            Err(err) => {
                self.note("remote download failed", &err);
                return None;
            }
        }
        let whole = e.result.len() as u64 + e.blobs.iter().map(|b| b.size).sum::<u64>();
        let complete = match &self.local {
            Some(cas) if lazy => {
                let eager: HashSet<Digest> = r.trees().into_iter().chain(r.log_blobs()).collect();
                let wanted: Vec<BlobRef> = e
                    .blobs
                    .iter()
                    .filter(|b| eager.contains(&b.digest))
                    .copied()
                    .collect();
                let fetched = self.remote().fetch_all_into(&wanted, cas);
                if matches!(fetched, Ok(true)) {
                    self.remote().stats.note_on_demand(whole);
                }
                fetched
            }
            Some(cas) => self.remote().fetch_all_into(&e.blobs, cas),
            None => self.remote().check_all(&e.blobs),
        };
        match complete {
            Ok(true) => Some(r),
            Ok(false) => {
                tracing::info!(key = %key.short(), label = %r.label, "remote entry's blobs are missing or corrupt on the server; treated as a miss");
                None
            }
            Err(err) => {
                self.note("remote download failed", &err);
                None
            }
        }
    }
}

impl Storage for HttpStore {
    fn describe(&self) -> String {
        let ro = if self.remote().config().read_only {
            " (read-only)"
        } else {
            ""
        };
        format!("remote {}{ro}", self.remote().config().display_url())
    }

    fn get_action(&self, key: &ActionKey) -> Result<Option<ActionResult>> {
        if !self.remote().is_available() {
            return Ok(None);
        }
        let r = self.get_action_inner(key);
        self.remote().count_lookup(r.is_some());
        Ok(r)
    }

    fn put_action(&self, key: &ActionKey, result: &ActionResult) -> Result<()> {
        if self.remote().config().read_only || !self.remote().is_available() {
            self.remote().count_upload(false);
            return Ok(());
        }
        let Some(blobs) = self.referenced(result)? else {
            tracing::debug!(key = %key.short(), "a referenced tree is unreadable; action result not uploaded");
            self.remote().count_upload(false);
            return Ok(());
        };
        if !self.wait_uploaded(&blobs) {
            tracing::debug!(key = %key.short(), "a blob upload failed; action result not uploaded");
            self.remote().count_upload(false);
            return Ok(());
        }
        let e = self.entry_for(result, blobs);
        match self.remote().put_entry(key, &e) {
            Ok(done) => self.remote().count_upload(done),
            Err(err) => {
                self.note("remote upload failed", &err);
                self.remote().count_upload(false);
            }
        }
        Ok(())
    }

    /// Answered from what this process knows (blobs uploaded, queued,
    /// fetched or checked), without a request: a blob not known to be on the
    /// server is uploaded again by `Stacked` (small ones are cheaper to PUT
    /// than to HEAD then PUT; large ones get a HEAD in the upload worker).
    fn has_blob(&self, d: &Digest) -> Result<bool> {
        Ok(self.remote().is_known_present(d) || self.shared.lock().pending.contains(d))
    }

    fn serves_files_on_demand(&self) -> bool {
        self.on_demand
    }

    /// The local CAS is tried first: content addressing makes its copy the
    /// same bytes, and `Stacked` reads tree manifests back through the level
    /// it has just uploaded them to. A remote download streams into a temp
    /// name next to `dest` and is renamed to `dest` once verified, so `dest`
    /// never holds a partial or unverified blob (and is absent on `false`).
    fn fetch_blob(&self, d: &Digest, dest: &Path) -> Result<bool> {
        if let Some(cas) = &self.local {
            if cas.contains(d) && cas.copy_out(d, dest).is_ok() {
                return Ok(true);
            }
        }
        let part = dest.with_file_name(unique_name(".remote-part"));
        match self
            .remote()
            .fetch_blob_to(d, self.remote().known_size(d), &part)
        {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            Err(err) => {
                self.note("remote download failed", &err);
                return Ok(false);
            }
        }
        fs::rename(&part, dest)
            .ctx("rename into place", dest)
            .inspect_err(|_| {
                let _ = fs::remove_file(&part);
            })?;
        Ok(true)
    }

    /// Blobs of [`STREAM_UPLOAD_BYTES`] or more that the local CAS holds are
    /// queued as the CAS file's path and verified while they are sent;
    /// without a local CAS they are streamed from `src` right away. Smaller
    /// blobs are read and verified here and queued in memory.
    fn put_blob(&self, d: &Digest, src: &Path) -> Result<()> {
        if self.remote().config().read_only || !self.remote().is_available() {
            return Ok(());
        }
        let size = fs::metadata(src).ctx("stat", src)?.len();
        if size >= STREAM_UPLOAD_BYTES {
            match &self.local {
                Some(cas) if cas.contains(d) => {
                    let path = cas.blob_path(d);
                    self.enqueue(*d, Job::File { path, size });
                }
                _ => self.upload_now(*d, src, size),
            }
            return Ok(());
        }
        let bytes = fs::read(src).ctx("read", src)?;
        let actual = Digest::of_bytes(&bytes);
        if actual != *d {
            return Err(Error::CorruptBlob {
                path: src.to_path_buf(),
                expected: *d,
                actual,
            });
        }
        self.enqueue(*d, Job::Bytes(bytes));
        Ok(())
    }
}

/// The remote as the source of output blobs recorded without them
/// ([`HttpStore::adopt_entry_lazy`]): each fetched and verified into the CAS.
impl BlobSource for HttpStore {
    fn describe(&self) -> String {
        self.remote().config().display_url()
    }

    fn fetch_into(&self, blobs: &[(Digest, u64)], cas: &Cas) -> std::result::Result<(), String> {
        let refs: Vec<BlobRef> = blobs
            .iter()
            .map(|&(digest, size)| BlobRef { digest, size })
            .collect();
        match self.remote().fetch_all_into(&refs, cas) {
            Ok(true) => Ok(()),
            Ok(false) => Err("a blob is missing or corrupt there".into()),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl Drop for HttpStore {
    fn drop(&mut self) {
        self.flush();
    }
}
