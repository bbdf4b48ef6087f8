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
//! tmp/                  temp files, renamed into place
//! index/db              sled index (history, build statistics); rebuildable
//! index/journal/*.log   per-process index updates not yet merged
//! hosttools.memo        memo table of host-tool digests
//! ```

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::action::{now_unix_ms, Action, ActionResult};
use crate::cas::Cas;
use crate::delta::{capture_delta, prepare_work_dir, Baseline};
use crate::digest::{ActionKey, Digest};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{remove_any, unique_name};
use crate::index::{BuildRecord, HistoryItem, Index, IndexOp, Journal};
use crate::layer::{apply_trees, materialize_layer};
use crate::store::{Durability, LocalStore, Stacked, Storage};
use crate::tree::{capture, CaptureStats, Tree};

/// The on-disk layout version (the `v1` directory).
pub const LAYOUT_VERSION: u32 = 1;

/// Options for [`Cache::open_with`].
#[derive(Debug, Clone)]
pub struct CacheOptions {
    /// Flushing discipline for entries (default [`Durability::Full`]).
    pub durability: Durability,
    /// How long to wait for another process holding the index (default 10 s).
    pub index_wait: Duration,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            durability: Durability::Full,
            index_wait: Duration::from_secs(10),
        }
    }
}

/// Why a lookup missed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MissReason {
    /// No entry for the key.
    NotFound,
    /// The entry exists but a blob it references is gone or corrupt; the
    /// entry was removed (re-running the task repairs it).
    Incomplete {
        /// The first missing blob found.
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
    index_lock: Mutex<()>,
    hits: AtomicU64,
    misses: AtomicU64,
    closed: std::sync::atomic::AtomicBool,
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
            root,
            local,
            store,
            opts,
            index_lock: Mutex::new(()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            closed: std::sync::atomic::AtomicBool::new(false),
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
        let Some(r) = self.store.get_action(key)? else {
            return Ok(Lookup::Miss(MissReason::NotFound));
        };
        if let Some(missing) = self.first_missing_blob(&r)? {
            tracing::info!(key = %key.short(), label = %r.label, blob = %missing.short(),
                "cache entry references a missing blob; treating as a miss");
            self.local.remove_action(key)?;
            return Ok(Lookup::Miss(MissReason::Incomplete { missing }));
        }
        self.local.touch_action(key);
        Ok(Lookup::Hit(Box::new(r)))
    }

    /// The first blob `r` references that is not in the local CAS (tree
    /// manifests are read and verified; file blobs are only checked for
    /// presence — full hashing is [`Cache::verify`]'s job).
    pub fn first_missing_blob(&self, r: &ActionResult) -> Result<Option<Digest>> {
        for t in r.trees() {
            let tree = match self.read_tree(&t) {
                Ok(tree) => tree,
                Err(
                    Error::MissingBlob { .. } | Error::CorruptBlob { .. } | Error::Corrupt { .. },
                ) => return Ok(Some(t)),
                Err(e) => return Err(e),
            };
            if let Some(b) = tree.blobs().into_iter().find(|b| !self.cas().contains(b)) {
                return Ok(Some(b));
            }
        }
        Ok(r.log_blobs().into_iter().find(|b| !self.cas().contains(b)))
    }

    /// Record `result` for `key`. Every blob it references must already be
    /// in the local CAS (capture first); the entry is written only after
    /// they are durable, so no crash can leave an entry pointing at nothing.
    pub fn put(&self, key: &ActionKey, result: &ActionResult) -> Result<()> {
        if let Some(missing) = self.first_missing_blob(result)? {
            return Err(Error::MissingBlob {
                digest: missing,
                path: self.cas().blob_path(&missing),
            });
        }
        self.store.put_action(key, result)?;
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
    pub fn capture(&self, dir: &Path) -> Result<Captured> {
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
    pub fn put_tree(&self, tree: &Tree) -> Result<Digest> {
        self.cas().put_bytes(&tree.encode())
    }

    /// Store bytes (e.g. a log) as a blob.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<Digest> {
        self.cas().put_bytes(bytes)
    }

    /// Store a file's content as a blob.
    pub fn put_file(&self, path: &Path) -> Result<Digest> {
        self.cas().put_file(path).map(|(d, _)| d)
    }

    /// Read a blob (verified).
    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>> {
        self.cas().read(d)
    }

    /// Read and decode a tree manifest (verified).
    pub fn read_tree(&self, d: &Digest) -> Result<Tree> {
        let bytes = self.cas().read(d)?;
        Tree::decode(&bytes).map_err(|reason| Error::Corrupt {
            what: "tree manifest",
            path: self.cas().blob_path(d),
            reason,
        })
    }

    /// Where the layer for tree `d` lives (whether or not it exists).
    pub fn layer_path(&self, d: &Digest) -> PathBuf {
        self.root.join("layers").join(d.to_hex())
    }

    /// The tree `d` materialised as an overlayfs layer (whiteouts as 0/0
    /// character devices, opaque directories marked), created once under
    /// `layers/<digest>/` (temp dir + rename) and shared read-only by every
    /// user. Safe to call concurrently from several processes.
    pub fn ensure_layer(&self, d: &Digest) -> Result<PathBuf> {
        let dest = self.layer_path(d);
        if dest.is_dir() {
            return Ok(dest);
        }
        let tree = self.read_tree(d)?;
        let tmp = self.root.join("layers").join(unique_name(".tmp"));
        if let Err(e) = materialize_layer(self.cas(), &tree, &tmp) {
            let _ = remove_any(&tmp);
            return Err(e);
        }
        match fs::rename(&tmp, &dest) {
            Ok(()) => Ok(dest),
            Err(e)
                if matches!(e.raw_os_error(), Some(libc::EEXIST) | Some(libc::ENOTEMPTY))
                    && dest.is_dir() =>
            {
                // Another process won the race; theirs is identical.
                let _ = remove_any(&tmp);
                Ok(dest)
            }
            Err(e) => {
                let _ = remove_any(&tmp);
                Err(e).ctx("rename layer into place", dest)
            }
        }
    }

    /// Apply the trees `trees` (lowest first) onto the plain directory
    /// `dest`: deletions delete. For publishing artifacts.
    pub fn apply(&self, trees: &[Digest], dest: &Path) -> Result<()> {
        let trees = trees
            .iter()
            .map(|d| self.read_tree(d))
            .collect::<Result<Vec<_>>>()?;
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
        let own = action.key();
        let mut best: Option<(usize, u64, ActionKey, ActionResult)> = None;
        for h in self.history(&action.label)? {
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
        Ok(best.map(|(_, _, k, r)| (k, r)))
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
