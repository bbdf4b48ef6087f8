//! [`Cache`]: the one handle exec and the binary use. It ties together the
//! local store (source of truth), an optional stack of further levels, the
//! materialised layers and the rebuildable index.
//!
//! Directory layout (`<cache-dir>/v1/`, the version being the on-disk
//! format):
//! ```text
//! cas/<xx>/<digest>     blobs (file contents, tree manifests, logs), read-only
//! ac/<xx>/<key>         action-cache entries (mtime = last use, for LRU)
//! layers/<tree>/        materialised overlay layers, created once, shared
//! layers/<tree>.stamp   written last, once the layer is complete (and synced)
//! layers/<tree>.lock    flock serialising the layer's creation
//! leases/<id>.lease     what each live process holds (see `lease.rs`)
//! gc.lock, gc.intent    the maintenance lock (shared: build steps; exclusive: gc/verify)
//! tmp/                  temp files, renamed into place
//! index/db              sled index (history, build statistics); rebuildable
//! index/journal/*.log   per-process index updates not yet merged
//! hosttools.memo        memo table of host-tool digests
//! ```

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::action::{now_unix_ms, Action, ActionResult};
use crate::cas::Cas;
use crate::delta::{capture_delta, prepare_work_dir, Baseline};
use crate::digest::{ActionKey, Digest};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{remove_any, syncfs, unique_name, write_atomic};
use crate::index::{BuildRecord, HistoryItem, Index, IndexOp, Journal};
use crate::layer::{apply_trees, materialize_layer};
use crate::lease::{Held, Leases};
use crate::lock::{flock, open_lock_file, LockMode};
use crate::store::{Durability, LocalStore, Stacked, Storage};
use crate::tree::{capture, read_tree, CaptureStats, Tree};

/// The on-disk layout version (the `v1` directory).
pub const LAYOUT_VERSION: u32 = 1;

/// Options for [`Cache::open_with`].
#[derive(Debug, Clone)]
pub struct CacheOptions {
    /// Flushing discipline for entries (default [`Durability::Full`]).
    pub durability: Durability,
    /// How long to wait for another process holding the index (default 10 s).
    pub index_wait: Duration,
    /// Owner `(uid, gid)` given to every entry of a materialised layer and
    /// to the layer directory (default `None`: whoever runs bitzel). Set it
    /// when bitzel runs as root and the sandbox maps its root to an
    /// unprivileged host uid, so layers belong to that uid. A layer that
    /// already exists with another owner is re-owned on first use.
    pub layer_owner: Option<(u32, u32)>,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            durability: Durability::Full,
            index_wait: Duration::from_secs(10),
            layer_owner: None,
        }
    }
}

/// Why a lookup missed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MissReason {
    /// No entry for the key.
    NotFound,
    /// The entry exists but a blob it references is gone or corrupt, or a
    /// tree it references is invalid (a path that could leave its root, an
    /// entry below a symlink, ...: nothing of it was written); the entry
    /// was removed (re-running the task repairs it).
    Incomplete {
        /// The first missing blob or invalid tree found.
        missing: Digest,
    },
}

/// The outcome of [`Cache::lookup`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A usable result: every blob it references is in the local CAS.
    Hit(Box<ActionResult>),
    /// Run the action.
    Miss(MissReason),
}

/// Why [`Cache::first_gap`] finds an entry unusable.
enum Gap {
    /// This blob is absent (or was corrupt and removed).
    Missing(Digest),
    /// This tree manifest does not decode or is structurally invalid.
    Invalid { tree: Digest, reason: String },
}

/// Where output blobs recorded but not downloaded come from on demand: a
/// remote executor's CAS (`bitzel build --remote-executor`). With a source
/// set ([`Cache::set_blob_source`]), an action result whose file blobs are
/// not local is still a hit (its tree manifests and logs must be local);
/// the blobs are fetched when a layer is materialised, artifacts are
/// deployed or a work directory is prepared from it.
pub trait BlobSource: Send + Sync + std::fmt::Debug {
    /// For messages: where the blobs are (a URL).
    fn describe(&self) -> String;
    /// Fetch `blobs` (digest, size) into `cas`, each verified. `Err`: why
    /// not (unreachable, a blob missing or corrupt there).
    fn fetch_into(&self, blobs: &[(Digest, u64)], cas: &Cas) -> std::result::Result<(), String>;
}

/// A captured directory.
#[derive(Debug, Clone)]
pub struct Captured {
    /// The tree manifest's digest (stored in the CAS).
    pub digest: Digest,
    /// The tree.
    pub tree: Tree,
    /// Counts.
    pub stats: CaptureStats,
}

/// The cache handle. Cheap to share across threads (`&Cache` is `Sync`).
#[derive(Debug)]
pub struct Cache {
    root: PathBuf,
    local: LocalStore,
    store: Arc<dyn Storage>,
    opts: CacheOptions,
    journal: Mutex<Journal>,
    pub(crate) leases: Leases,
    index_lock: Mutex<()>,
    hits: AtomicU64,
    misses: AtomicU64,
    closed: std::sync::atomic::AtomicBool,
    source: OnceLock<Arc<dyn BlobSource>>,
}

/// The default cache directory: `$XDG_CACHE_HOME/bitzel`, else
/// `$HOME/.cache/bitzel`. `None` when neither variable is set.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(x).join("bitzel"));
    }
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(|h| PathBuf::from(h).join(".cache").join("bitzel"))
}

impl Cache {
    /// Open (creating) the cache in `dir` with default options.
    pub fn open(dir: &Path) -> Result<Cache> {
        Cache::open_with(dir, CacheOptions::default())
    }

    /// Open (creating) the cache in `dir`.
    pub fn open_with(dir: &Path, opts: CacheOptions) -> Result<Cache> {
        let root = dir.join(format!("v{LAYOUT_VERSION}"));
        fs::create_dir_all(&root).ctx("create cache directory", &root)?;
        let tag = dir.join("CACHEDIR.TAG");
        if !tag.exists() {
            let _ = fs::write(
                &tag,
                "Signature: 8a477f597d28d172789f06886806bc55\n# bitzel cache directory\n",
            );
        }
        let local = LocalStore::open(&root, opts.durability)?;
        fs::create_dir_all(root.join("layers")).ctx("create directory", root.join("layers"))?;
        crate::hosttools::use_memo_file(&root.join("hosttools.memo"));
        let store: Arc<dyn Storage> = Arc::new(local.clone());
        Ok(Cache {
            journal: Mutex::new(Journal::new(&root.join("index").join("journal"))),
            leases: Leases::new(&root),
            root,
            local,
            store,
            opts,
            index_lock: Mutex::new(()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            closed: std::sync::atomic::AtomicBool::new(false),
            source: OnceLock::new(),
        })
    }

    /// Put further levels (e.g. a remote cache, possibly wrapped in
    /// [`crate::store::ReadOnly`]) behind the local store. Hits from them
    /// are written back locally before they are returned.
    pub fn with_levels(mut self, levels: Vec<Arc<dyn Storage>>) -> Cache {
        let mut all: Vec<Arc<dyn Storage>> = vec![Arc::new(self.local.clone())];
        all.extend(levels);
        self.store = Arc::new(Stacked::new(all, self.local.cas().tmp_dir()));
        self
    }

    /// Set where file blobs of results recorded without them are fetched
    /// on demand (see [`BlobSource`]). Once per handle; a second call is
    /// ignored and returns `false`.
    pub fn set_blob_source(&self, source: Arc<dyn BlobSource>) -> bool {
        self.source.set(source).is_ok()
    }

    /// Fetch the file blobs of `trees` that the local CAS lacks from the
    /// blob source. Without a source nothing is fetched (a missing blob is
    /// then reported by whoever reads it).
    fn fill(&self, trees: &[&Tree]) -> Result<()> {
        let Some(source) = self.source.get() else {
            return Ok(());
        };
        let mut wanted: Vec<(Digest, u64)> = Vec::new();
        for t in trees {
            for e in t.entries() {
                if let crate::tree::EntryKind::File { digest, size, .. } = e.kind {
                    if !self.cas().contains(&digest) {
                        wanted.push((digest, size));
                    }
                }
            }
        }
        wanted.sort();
        wanted.dedup();
        if wanted.is_empty() {
            return Ok(());
        }
        tracing::debug!(blobs = wanted.len(), source = %source.describe(), "fetching output blobs on demand");
        source
            .fetch_into(&wanted, self.cas())
            .map_err(|reason| Error::RemoteFetch {
                count: wanted.len(),
                source_desc: source.describe(),
                reason,
            })
    }

    /// The versioned root (`<cache-dir>/v1`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The local blob store.
    pub fn cas(&self) -> &Cas {
        self.local.cas()
    }

    /// The local store (entries + blobs).
    pub fn local(&self) -> &LocalStore {
        &self.local
    }

    /// Options in effect.
    pub fn options(&self) -> &CacheOptions {
        &self.opts
    }

    /// Look `key` up. A hit is only returned when every blob it references
    /// (tree manifests, their files, logs) is present locally; otherwise the
    /// entry is dropped and the lookup is a miss. Counts towards the build's
    /// hit rate and marks the entry as recently used.
    pub fn lookup(&self, key: &ActionKey) -> Result<Lookup> {
        let res = self.lookup_inner(key);
        match &res {
            Ok(Lookup::Hit(_)) => self.hits.fetch_add(1, Ordering::Relaxed),
            _ => self.misses.fetch_add(1, Ordering::Relaxed),
        };
        res
    }

    fn lookup_inner(&self, key: &ActionKey) -> Result<Lookup> {
        // A hit is held (leased) before its blobs are checked, inside a
        // step, so maintenance cannot remove them once they are found.
        let _step = self.leases.step()?;
        let Some(r) = self.store.get_action(key)? else {
            return Ok(Lookup::Miss(MissReason::NotFound));
        };
        let held: Vec<Held> = (r.trees().into_iter().map(Held::Tree))
            .chain(r.log_blobs().into_iter().map(Held::Blob))
            .collect();
        self.leases.hold(&held)?;
        let missing = match self.first_gap(&r, self.source.get().is_some())? {
            None => {
                self.local.touch_action(key);
                return Ok(Lookup::Hit(Box::new(r)));
            }
            Some(Gap::Missing(missing)) => {
                tracing::info!(key = %key.short(), label = %r.label, blob = %missing.short(),
                    "cache entry references a missing blob; treating as a miss");
                missing
            }
            Some(Gap::Invalid { tree, reason }) => {
                tracing::warn!(key = %key, label = %r.label, tree = %tree, level = %self.store.describe(),
                    "cache entry rejected: its tree is invalid ({reason}); nothing of it was written, the task runs again");
                tree
            }
        };
        self.local.remove_action(key)?;
        Ok(Lookup::Miss(MissReason::Incomplete { missing }))
    }

    /// The first blob `r` references that is not in the local CAS (tree
    /// manifests are read, verified and validated: an invalid one counts as
    /// missing; file blobs are only checked for presence — full hashing is
    /// [`Cache::verify`]'s job).
    pub fn first_missing_blob(&self, r: &ActionResult) -> Result<Option<Digest>> {
        Ok(self.first_gap(r, false)?.map(|g| match g {
            Gap::Missing(d) => d,
            Gap::Invalid { tree, .. } => tree,
        }))
    }

    /// With `lazy`, a tree's file blob missing locally is no gap (it is
    /// fetched from the blob source when read).
    fn first_gap(&self, r: &ActionResult, lazy: bool) -> Result<Option<Gap>> {
        for t in r.trees() {
            let tree = match self.read_tree(&t) {
                Ok(tree) => tree,
                Err(Error::MissingBlob { .. } | Error::CorruptBlob { .. }) => {
                    return Ok(Some(Gap::Missing(t)))
                }
                Err(Error::Corrupt { reason, .. }) => {
                    return Ok(Some(Gap::Invalid { tree: t, reason }))
                }
                Err(e) => return Err(e),
            };
            if lazy {
                continue;
            }
            if let Some(b) = tree.blobs().into_iter().find(|b| !self.cas().contains(b)) {
                return Ok(Some(Gap::Missing(b)));
            }
        }
        Ok(r.log_blobs()
            .into_iter()
            .find(|b| !self.cas().contains(b))
            .map(Gap::Missing))
    }

    /// Record `result` for `key`. Every blob it references must already be
    /// in the local CAS (capture first); the entry is written only after
    /// they are durable, so no crash can leave an entry pointing at nothing.
    pub fn put(&self, key: &ActionKey, result: &ActionResult) -> Result<()> {
        self.put_in(self.store.as_ref(), key, result, false)
    }

    /// Record `result` for `key` in the local level only, replacing a local
    /// entry for the same key; further levels (a remote) keep what they
    /// have. For a forced run (`bitzel build -f`): the fresh result is used
    /// here, the shared one is not overwritten.
    /// With a blob source set, the result's file blobs may be absent (a
    /// remote execution's outputs, fetched when something reads them).
    pub fn put_local(&self, key: &ActionKey, result: &ActionResult) -> Result<()> {
        self.put_in(&self.local, key, result, self.source.get().is_some())
    }

    fn put_in(
        &self,
        store: &dyn Storage,
        key: &ActionKey,
        result: &ActionResult,
        lazy: bool,
    ) -> Result<()> {
        match self.first_gap(result, lazy)? {
            None => {}
            Some(Gap::Missing(missing)) => {
                return Err(Error::MissingBlob {
                    digest: missing,
                    path: self.cas().blob_path(&missing),
                })
            }
            Some(Gap::Invalid { tree, reason }) => {
                return Err(Error::Corrupt {
                    what: "tree manifest",
                    path: self.cas().blob_path(&tree),
                    reason,
                })
            }
        }
        store.put_action(key, result)?;
        self.journal_op(&IndexOp::Put {
            key: *key,
            label: result.label.clone(),
            created_ms: result.created_unix_ms,
        });
        Ok(())
    }

    fn journal_op(&self, op: &IndexOp) {
        let res = match self.journal.lock() {
            Ok(mut j) => j.append(op),
            Err(p) => p.into_inner().append(op),
        };
        if let Err(e) = res {
            tracing::warn!("cannot record cache index update (history/statistics only): {e}");
        }
    }

    /// Capture the directory `dir` (e.g. a task's overlay upperdir) into
    /// the CAS: file contents, then the manifest.
    /// The tree is held by this handle (maintenance keeps it) until the
    /// handle is dropped.
    pub fn capture(&self, dir: &Path) -> Result<Captured> {
        // One step from the first blob to the held manifest: maintenance
        // never sees the blobs written but not yet held.
        let _step = self.leases.step()?;
        let (tree, stats) = capture(dir, Some(self.cas()))?;
        let digest = self.put_tree(&tree)?;
        Ok(Captured {
            digest,
            tree,
            stats,
        })
    }

    /// Store a tree manifest (its file blobs must be stored separately,
    /// e.g. a [`Tree::subtree`] of a captured tree).
    /// Held by this handle like a capture.
    pub fn put_tree(&self, tree: &Tree) -> Result<Digest> {
        let _step = self.leases.step()?;
        let d = self.cas().put_bytes(&tree.encode())?;
        self.leases.hold(&[Held::Tree(d)])?;
        Ok(d)
    }

    /// Store bytes (e.g. a log) as a blob, held by this handle.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<Digest> {
        let _step = self.leases.step()?;
        let d = self.cas().put_bytes(bytes)?;
        self.leases.hold(&[Held::Blob(d)])?;
        Ok(d)
    }

    /// Store a file's content as a blob, held by this handle.
    pub fn put_file(&self, path: &Path) -> Result<Digest> {
        let _step = self.leases.step()?;
        let d = self.cas().put_file(path).map(|(d, _)| d)?;
        self.leases.hold(&[Held::Blob(d)])?;
        Ok(d)
    }

    /// Read a blob (verified).
    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>> {
        self.cas().read(d)
    }

    /// Read and decode a tree manifest (verified, size-bounded, validated:
    /// see [`read_tree`]).
    pub fn read_tree(&self, d: &Digest) -> Result<Tree> {
        read_tree(self.cas(), d)
    }

    /// Where the layer for tree `d` lives (whether or not it exists).
    pub fn layer_path(&self, d: &Digest) -> PathBuf {
        self.root.join("layers").join(d.to_hex())
    }

    /// The stamp beside layer `d` (not inside it: the layer directory is
    /// an overlay lowerdir, and a file in it would show in the task's view).
    pub fn layer_stamp_path(&self, d: &Digest) -> PathBuf {
        self.root
            .join("layers")
            .join(format!("{}.stamp", d.to_hex()))
    }

    fn layer_lock_path(&self, d: &Digest) -> PathBuf {
        self.root
            .join("layers")
            .join(format!("{}.lock", d.to_hex()))
    }

    /// True when layer `d` is complete: its directory exists and its stamp
    /// (written last) says so. A directory without its stamp is a layer
    /// whose creation was cut short (crash, power loss) and counts as absent.
    pub fn layer_ready(&self, d: &Digest) -> bool {
        fs::read(self.layer_stamp_path(d)).is_ok_and(|s| s == stamp_text(d).as_bytes())
            && self.layer_path(d).is_dir()
    }

    /// Remove layer `d`: its stamp first (so a crash midway leaves an
    /// unstamped directory, i.e. an absent layer), then its directory and
    /// its lock file. Maintenance only, under the exclusive lock.
    pub(crate) fn remove_layer(&self, d: &Digest) -> Result<()> {
        remove_any(&self.layer_stamp_path(d))?;
        remove_any(&self.layer_path(d))?;
        remove_any(&self.layer_lock_path(d))
    }

    /// The tree `d` materialised as an overlayfs layer (whiteouts as 0/0
    /// character devices, opaque directories marked), created once under
    /// `layers/<digest>/` and shared read-only by every user; held by this
    /// handle until it is dropped, so maintenance leaves it alone while it
    /// may be mounted. Safe to call concurrently from several processes:
    /// creators take turns on `layers/<digest>.lock`; the layer is
    /// materialised in a temp directory, renamed into place, synced (with
    /// [`Durability::Full`]: `syncfs` of the cache filesystem), and only then
    /// stamped (`layers/<digest>.stamp`, written atomically). A layer
    /// without its stamp is removed and made again.
    pub fn ensure_layer(&self, d: &Digest) -> Result<PathBuf> {
        let _step = self.leases.step()?;
        self.leases.hold(&[Held::Tree(*d)])?;
        let dest = self.layer_path(d);
        if self.layer_ready(d) {
            self.adopt_layer(&dest)?;
            return Ok(dest);
        }
        let lock_path = self.layer_lock_path(d);
        let creating = open_lock_file(&lock_path)?;
        flock(&creating, LockMode::Exclusive, true).ctx("lock", &lock_path)?;
        if self.layer_ready(d) {
            return Ok(dest); // made by another process meanwhile
        }
        let stamp = self.layer_stamp_path(d);
        if fs::symlink_metadata(&dest).is_ok() {
            tracing::info!(layer = %d.short(), "layer without its completion stamp (creation cut short); making it again");
        }
        remove_any(&stamp)?;
        remove_any(&dest)?;
        let tree = self.read_tree(d)?;
        self.fill(&[&tree])?;
        let layers = self.root.join("layers");
        let tmp = layers.join(unique_name(".tmp"));
        if let Err(e) = materialize_layer(self.cas(), &tree, &tmp, self.opts.layer_owner) {
            let _ = remove_any(&tmp);
            return Err(e);
        }
        if let Err(e) = fs::rename(&tmp, &dest) {
            let _ = remove_any(&tmp);
            return Err(e).ctx("rename layer into place", dest);
        }
        let durable = self.opts.durability == Durability::Full;
        if durable {
            // The layer's files, directories and the rename, before the stamp.
            syncfs(&layers)?;
        }
        write_atomic(
            self.cas().tmp_dir(),
            &stamp,
            stamp_text(d).as_bytes(),
            durable,
        )?;
        Ok(dest)
    }

    /// Give the existing layer `dest` the configured owner if it has another
    /// (made before [`CacheOptions::layer_owner`] was set). The layer's
    /// directory is re-owned last, so an interrupted pass is redone.
    fn adopt_layer(&self, dest: &Path) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        let Some((uid, gid)) = self.opts.layer_owner else {
            return Ok(());
        };
        let md = fs::symlink_metadata(dest).ctx("stat", dest)?;
        if (md.uid(), md.gid()) == (uid, gid) {
            return Ok(());
        }
        tracing::debug!(layer = %dest.display(), uid, gid, "giving an existing layer the configured owner");
        // The layer is bitzel's own directory; walkdir does not follow
        // symlinks and lchown changes a link itself.
        for entry in walkdir::WalkDir::new(dest).min_depth(1).follow_links(false) {
            let entry = entry.map_err(|e| Error::Io {
                op: "walk",
                path: dest.to_path_buf(),
                source: e
                    .into_io_error()
                    .unwrap_or_else(|| io::Error::other("filesystem loop")),
            })?;
            std::os::unix::fs::lchown(entry.path(), Some(uid), Some(gid))
                .ctx("chown", entry.path())?;
        }
        std::os::unix::fs::lchown(dest, Some(uid), Some(gid)).ctx("chown", dest)
    }

    /// Apply the trees `trees` (lowest first) onto the plain directory
    /// `dest`: deletions delete. For publishing artifacts.
    pub fn apply(&self, trees: &[Digest], dest: &Path) -> Result<()> {
        let _step = self.leases.step()?;
        let held: Vec<Held> = trees.iter().copied().map(Held::Tree).collect();
        self.leases.hold(&held)?;
        let trees = trees
            .iter()
            .map(|d| self.read_tree(d))
            .collect::<Result<Vec<_>>>()?;
        self.fill(&trees.iter().collect::<Vec<_>>())?;
        apply_trees(self.cas(), &trees, dest)
    }

    /// Flatten the trees `trees` (lowest first) onto `dest` as a task's
    /// writable work directory, for backends without overlayfs: contents are
    /// copied (never linked) out of the CAS, entries are stamped by layer, and
    /// the returned [`Baseline`] lets [`Cache::capture_delta`] find what the
    /// task changed.
    pub fn prepare_work_dir(&self, trees: &[Digest], dest: &Path) -> Result<Baseline> {
        let trees = trees
            .iter()
            .map(|d| self.read_tree(d))
            .collect::<Result<Vec<_>>>()?;
        self.fill(&trees.iter().collect::<Vec<_>>())?;
        prepare_work_dir(self.cas(), &trees, dest)
    }

    /// Capture what changed in `dir` since `base` (see
    /// [`Cache::prepare_work_dir`]) into the CAS, as the overlay upperdir a
    /// namespaced backend would have captured: changed and new entries,
    /// whiteouts, opaque directories.
    pub fn capture_delta(&self, dir: &Path, base: &Baseline) -> Result<Captured> {
        let (tree, stats) = capture_delta(dir, base, Some(self.cas()))?;
        let digest = self.put_tree(&tree)?;
        Ok(Captured {
            digest,
            tree,
            stats,
        })
    }

    /// Run `f` with the index open (waiting up to the configured time for
    /// another process). Serialised within this process.
    pub fn with_index<T>(&self, f: impl FnOnce(&Index) -> Result<T>) -> Result<T> {
        let _g = self.index_lock.lock().unwrap_or_else(|p| p.into_inner());
        // Hand our own updates over: a closed journal is replayed on open
        // (the next update starts a new one).
        match self.journal.lock() {
            Ok(mut j) => j.close(),
            Err(p) => p.into_inner().close(),
        }
        let (idx, fresh) = Index::open(&self.root.join("index"), self.opts.index_wait)?;
        if fresh {
            rebuild_history(&idx, &self.local)?;
        }
        let out = f(&idx)?;
        idx.flush()?;
        Ok(out)
    }

    /// The recorded entries for `label`, newest first.
    pub fn history(&self, label: &str) -> Result<Vec<HistoryItem>> {
        self.with_index(|idx| idx.history(label))
    }

    /// The earlier entry for `action.label` whose action is closest to
    /// `action` (fewest differences, then newest), excluding `action`'s own
    /// key. For `explain`: diff it with [`crate::explain::diff`].
    pub fn closest_earlier(&self, action: &Action) -> Result<Option<(ActionKey, ActionResult)>> {
        Ok(self.closest_earlier_all(&[action])?.pop().flatten())
    }

    /// [`Cache::closest_earlier`] of each of `actions`, in order, opening
    /// the index once (the build record asks for every task that ran).
    pub fn closest_earlier_all(
        &self,
        actions: &[&Action],
    ) -> Result<Vec<Option<(ActionKey, ActionResult)>>> {
        let histories = self.with_index(|idx| {
            actions
                .iter()
                .map(|a| idx.history(&a.label))
                .collect::<Result<Vec<_>>>()
        })?;
        Ok(actions
            .iter()
            .zip(histories)
            .map(|(action, history)| self.closest_in(action, history))
            .collect())
    }

    fn closest_in(
        &self,
        action: &Action,
        history: Vec<HistoryItem>,
    ) -> Option<(ActionKey, ActionResult)> {
        let own = action.key();
        let mut best: Option<(usize, u64, ActionKey, ActionResult)> = None;
        for h in history {
            if h.key == own {
                continue;
            }
            let Ok(Some(r)) = self.local.read_action(&h.key) else {
                continue;
            };
            let n = crate::explain::diff(&r.action, action).len();
            let better = match &best {
                None => true,
                Some((bn, bt, _, _)) => n < *bn || (n == *bn && h.created_ms > *bt),
            };
            if better {
                best = Some((n, h.created_ms, h.key, r));
            }
        }
        best.map(|(_, _, k, r)| (k, r))
    }

    /// Hits and misses counted by this handle so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// Finish this session: record its hit/miss counts (if it looked
    /// anything up), release the journal and merge journals into the index
    /// if nobody else holds it (without waiting). Called by `Drop` too.
    pub fn close(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let (hits, misses) = self.counts();
        if hits + misses > 0 {
            self.journal_op(&IndexOp::Build(BuildRecord {
                finished_ms: now_unix_ms(),
                hits,
                misses,
                pid: std::process::id(),
            }));
        }
        if let Err(e) = crate::hosttools::save_memo() {
            tracing::debug!("cannot save the host-tool memo table: {e}");
        }
        match self.journal.lock() {
            Ok(mut j) => j.close(),
            Err(p) => p.into_inner().close(),
        }
        let _g = self.index_lock.lock().unwrap_or_else(|p| p.into_inner());
        match Index::open(&self.root.join("index"), Duration::ZERO) {
            Ok((idx, fresh)) => {
                if fresh {
                    if let Err(e) = rebuild_history(&idx, &self.local) {
                        tracing::warn!("cannot rebuild the cache index: {e}");
                    }
                }
                if let Err(e) = idx.flush() {
                    tracing::warn!("cannot flush the cache index: {e}");
                }
            }
            Err(Error::IndexLocked { holder, .. }) => {
                tracing::debug!("cache index busy ({holder}); journal left for the next opener");
            }
            Err(e) => tracing::warn!("cannot update the cache index: {e}"),
        }
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        self.close();
    }
}

/// The content of layer `d`'s completion stamp.
fn stamp_text(d: &Digest) -> String {
    format!("bitzel layer {} complete\n", d.to_hex())
}

/// Rebuild the history of `idx` from the entries on disk.
pub(crate) fn rebuild_history(idx: &Index, local: &LocalStore) -> Result<usize> {
    idx.clear_history()?;
    let mut n = 0;
    for (key, _, _) in local.list_actions()? {
        match local.read_action(&key) {
            Ok(Some(r)) => {
                idx.apply(&IndexOp::Put {
                    key,
                    label: r.label.clone(),
                    created_ms: r.created_unix_ms,
                })?;
                n += 1;
            }
            Ok(None) | Err(Error::Corrupt { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// `io::Error` for "not found", for callers matching on kinds.
pub fn is_not_found(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
        || matches!(e, Error::MissingBlob { .. })
}
