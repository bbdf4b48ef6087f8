//! The storage trait behind the action cache, its local-disk backend and
//! the two wrappers: [`ReadOnly`] (never writes) and [`Stacked`] (tries
//! levels in order; a hit in a later level is written back to the earlier
//! ones, blobs first). A remote HTTP cache is one more [`Storage`]
//! implementation placed after [`LocalStore`] in a [`Stacked`].

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::action::ActionResult;
use crate::cas::Cas;
use crate::digest::{ActionKey, Digest};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{fsync_dir, syncfs, touch_now, unique_name, write_atomic};
use crate::tree::{Tree, MAX_MANIFEST_BYTES};

/// One level of the cache: an action cache (key → result) plus a blob store.
///
/// Contract: `put_action` is only called once every blob the result
/// references (trees, their files, logs) has been stored with `put_blob` in
/// the same level; `get_action` may return results whose blobs are gone
/// (callers validate).
pub trait Storage: Send + Sync + fmt::Debug {
    /// A human-readable name for messages ("local /path", "http://…").
    fn describe(&self) -> String;
    /// The stored result for `key`, if any.
    fn get_action(&self, key: &ActionKey) -> Result<Option<ActionResult>>;
    /// Record `result` for `key`.
    fn put_action(&self, key: &ActionKey, result: &ActionResult) -> Result<()>;
    /// True if blob `d` is present.
    fn has_blob(&self, d: &Digest) -> Result<bool>;
    /// Write blob `d`'s verified content to the new file `dest`. `Ok(false)` if absent.
    fn fetch_blob(&self, d: &Digest, dest: &Path) -> Result<bool>;
    /// Store the file `src`, whose content hashes to `d`.
    fn put_blob(&self, d: &Digest, src: &Path) -> Result<()>;
    /// True when this level's hits leave the file blobs of their trees on
    /// the server: a hit copied into a lower level brings its entry, tree
    /// manifests and logs, and the files are fetched when something reads
    /// them (the level is also the cache's [`crate::BlobSource`]).
    fn serves_files_on_demand(&self) -> bool {
        false
    }
}

/// How much to flush before an action-cache entry is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `syncfs` the CAS before writing an entry, `fsync` the entry and its
    /// directory: survives power loss.
    Full,
    /// Rename order only: survives the process being killed at any moment
    /// (the kernel keeps completed writes), not power loss. Faster.
    Process,
}

const AC_MAGIC: &[u8; 4] = b"BZAC";
const AC_VERSION: u32 = 1;

/// Encode an action result for storage: magic, version, BLAKE3 of the
/// payload, payload (bincode, standard config).
pub fn encode_result(r: &ActionResult) -> Vec<u8> {
    // Serialising plain structs of strings, maps and integers cannot fail.
    let payload = bincode::serde::encode_to_vec(r, bincode::config::standard()).unwrap_or_default();
    let mut out = Vec::with_capacity(payload.len() + 40);
    out.extend_from_slice(AC_MAGIC);
    out.extend_from_slice(&AC_VERSION.to_le_bytes());
    out.extend_from_slice(&Digest::of_bytes(&payload).0);
    out.extend_from_slice(&payload);
    out
}

/// Decode what [`encode_result`] wrote, checking magic, version and checksum.
pub fn decode_result(bytes: &[u8]) -> std::result::Result<ActionResult, String> {
    if bytes.len() < 40 || &bytes[..4] != AC_MAGIC {
        return Err("not an action-cache entry".into());
    }
    let mut v = [0u8; 4];
    v.copy_from_slice(&bytes[4..8]);
    let version = u32::from_le_bytes(v);
    if version != AC_VERSION {
        return Err(format!("unsupported entry version {version}"));
    }
    let mut sum = [0u8; 32];
    sum.copy_from_slice(&bytes[8..40]);
    let payload = &bytes[40..];
    if Digest::of_bytes(payload) != Digest(sum) {
        return Err("checksum mismatch (torn or corrupted write)".into());
    }
    let (r, used): (ActionResult, usize) =
        bincode::serde::decode_from_slice(payload, bincode::config::standard())
            .map_err(|e| e.to_string())?;
    if used != payload.len() {
        return Err("trailing bytes".into());
    }
    Ok(r)
}

/// The local-disk level: blobs in a [`Cas`], entries as files `ac/<xx>/<key>`.
#[derive(Debug, Clone)]
pub struct LocalStore {
    cas: Cas,
    ac_dir: PathBuf,
    durability: Durability,
}

impl LocalStore {
    /// Open (creating) a local store: blobs in `root/cas`, entries in
    /// `root/ac`, temp files in `root/tmp`.
    pub fn open(root: &Path, durability: Durability) -> Result<LocalStore> {
        let cas = Cas::open(&root.join("cas"), &root.join("tmp"))?;
        let ac_dir = root.join("ac");
        fs::create_dir_all(&ac_dir).ctx("create directory", &ac_dir)?;
        Ok(LocalStore {
            cas,
            ac_dir,
            durability,
        })
    }

    /// The blob store.
    pub fn cas(&self) -> &Cas {
        &self.cas
    }

    /// Where the entry for `key` lives.
    pub fn entry_path(&self, key: &ActionKey) -> PathBuf {
        let hex = key.to_hex();
        self.ac_dir.join(&hex[..2]).join(hex)
    }

    /// Remove the entry for `key` (absent is fine).
    pub fn remove_action(&self, key: &ActionKey) -> Result<()> {
        let p = self.entry_path(key);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).ctx("remove", p),
        }
    }

    /// Mark the entry for `key` as just used (its mtime drives LRU eviction).
    pub fn touch_action(&self, key: &ActionKey) {
        let _ = touch_now(&self.entry_path(key));
    }

    /// Every entry key on disk with its last-use time (Unix seconds) and size.
    pub fn list_actions(&self) -> Result<Vec<(ActionKey, i64, u64)>> {
        use std::os::unix::fs::MetadataExt;
        let mut out = Vec::new();
        for shard in fs::read_dir(&self.ac_dir).ctx("list", &self.ac_dir)? {
            let shard = shard.ctx("list", &self.ac_dir)?;
            if !shard.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let sp = shard.path();
            for f in fs::read_dir(&sp).ctx("list", &sp)? {
                let f = f.ctx("list", &sp)?;
                let Some(key) = f
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<ActionKey>().ok())
                else {
                    continue;
                };
                if let Ok(md) = f.metadata() {
                    out.push((key, md.mtime(), md.len()));
                }
            }
        }
        out.sort_by_key(|e| e.0);
        Ok(out)
    }

    /// The entry for `key`, distinguishing "absent" from "present but unreadable".
    pub fn read_action(&self, key: &ActionKey) -> Result<Option<ActionResult>> {
        let p = self.entry_path(key);
        let bytes = match fs::read(&p) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).ctx("read", p),
        };
        decode_result(&bytes)
            .map(Some)
            .map_err(|reason| Error::Corrupt {
                what: "action-cache entry",
                path: p,
                reason,
            })
    }
}

impl Storage for LocalStore {
    fn describe(&self) -> String {
        format!(
            "local {}",
            self.ac_dir.parent().unwrap_or(&self.ac_dir).display()
        )
    }

    fn get_action(&self, key: &ActionKey) -> Result<Option<ActionResult>> {
        match self.read_action(key) {
            Ok(r) => Ok(r),
            Err(e @ Error::Corrupt { .. }) => {
                tracing::warn!("{e}");
                self.remove_action(key)?;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn put_action(&self, key: &ActionKey, result: &ActionResult) -> Result<()> {
        let durable = self.durability == Durability::Full;
        if durable {
            // Every blob the entry references must be on disk before the
            // entry is: one syncfs instead of an fsync per blob.
            syncfs(self.cas.dir())?;
        }
        let dest = self.entry_path(key);
        write_atomic(self.cas.tmp_dir(), &dest, &encode_result(result), durable)?;
        if durable {
            fsync_dir(&self.ac_dir)?;
        }
        Ok(())
    }

    fn has_blob(&self, d: &Digest) -> Result<bool> {
        Ok(self.cas.contains(d))
    }

    fn fetch_blob(&self, d: &Digest, dest: &Path) -> Result<bool> {
        match self.cas.copy_out(d, dest) {
            Ok(_) => Ok(true),
            Err(Error::MissingBlob { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn put_blob(&self, d: &Digest, src: &Path) -> Result<()> {
        self.cas.insert_file(src, d)
    }
}

/// A level that is only read: writes are dropped (e.g. a shared remote cache
/// that CI fills and developers only consume).
#[derive(Debug)]
pub struct ReadOnly<S>(pub S);

impl<S: Storage> Storage for ReadOnly<S> {
    fn describe(&self) -> String {
        format!("{} (read-only)", self.0.describe())
    }
    fn get_action(&self, key: &ActionKey) -> Result<Option<ActionResult>> {
        self.0.get_action(key)
    }
    fn put_action(&self, _key: &ActionKey, _result: &ActionResult) -> Result<()> {
        Ok(())
    }
    fn has_blob(&self, d: &Digest) -> Result<bool> {
        self.0.has_blob(d)
    }
    fn fetch_blob(&self, d: &Digest, dest: &Path) -> Result<bool> {
        self.0.fetch_blob(d, dest)
    }
    fn put_blob(&self, _d: &Digest, _src: &Path) -> Result<()> {
        Ok(())
    }
}

/// The outcome of [`Stacked::copy_result`].
enum Copied {
    /// Everything the result references is in the destination level.
    Complete,
    /// The source level lacks a blob.
    Missing,
    /// A tree manifest is invalid (see [`Tree::decode`]); none of its files
    /// were copied.
    InvalidTree { tree: Digest, reason: String },
}

/// Levels tried in order (fastest first). A hit in level *i* is copied into
/// levels `0..i` — blobs, then the entry — before it is returned. Writes go
/// to every level; a failing write to a level other than the first is
/// logged and ignored (a remote outage must not fail a build).
#[derive(Debug)]
pub struct Stacked {
    levels: Vec<Arc<dyn Storage>>,
    tmp: PathBuf,
}

impl Stacked {
    /// Stack `levels` (first = fastest, normally the [`LocalStore`]); `tmp`
    /// is a scratch directory for transfers.
    pub fn new(levels: Vec<Arc<dyn Storage>>, tmp: &Path) -> Stacked {
        Stacked {
            levels,
            tmp: tmp.to_path_buf(),
        }
    }

    fn copy_blob(&self, from: &dyn Storage, to: &dyn Storage, d: &Digest) -> Result<bool> {
        if to.has_blob(d)? {
            return Ok(true);
        }
        let tmp = self.tmp.join(unique_name("xfer"));
        let res = (|| {
            if !from.fetch_blob(d, &tmp)? {
                return Ok(false);
            }
            to.put_blob(d, &tmp)?;
            Ok(true)
        })();
        let _ = fs::remove_file(&tmp);
        res
    }

    /// Read tree manifest `t` back from `level` (size-bounded) and decode it:
    /// `None` if absent, `Some(Err(reason))` if too large or invalid.
    fn read_tree_from(
        &self,
        level: &dyn Storage,
        t: &Digest,
    ) -> Result<Option<std::result::Result<Tree, String>>> {
        let tmp = self.tmp.join(unique_name("tree"));
        let res = (|| {
            if !level.fetch_blob(t, &tmp)? {
                return Ok(None);
            }
            let len = fs::metadata(&tmp).ctx("stat", &tmp)?.len();
            if len > MAX_MANIFEST_BYTES {
                return Ok(Some(Err(format!(
                    "{len} bytes (at most {MAX_MANIFEST_BYTES})"
                ))));
            }
            let bytes = fs::read(&tmp).ctx("read", &tmp)?;
            Ok(Some(Tree::decode(&bytes)))
        })();
        let _ = fs::remove_file(&tmp);
        res
    }

    /// Copy everything `r` references from `from` to `to`: each tree
    /// manifest first, validated ([`Tree::decode`]) before any of its file
    /// blobs is copied; then the files and logs.
    /// Copy what `r` references from `from` into `to`; the trees' file
    /// blobs only when `files` (see [`Storage::serves_files_on_demand`]).
    fn copy_result(
        &self,
        from: &dyn Storage,
        to: &dyn Storage,
        r: &ActionResult,
        files: bool,
    ) -> Result<Copied> {
        for t in r.trees() {
            if !self.copy_blob(from, to, &t)? {
                return Ok(Copied::Missing);
            }
            let tree = match self.read_tree_from(to, &t)? {
                None => return Ok(Copied::Missing),
                Some(Ok(tree)) => tree,
                Some(Err(reason)) => return Ok(Copied::InvalidTree { tree: t, reason }),
            };
            if !files {
                continue;
            }
            for b in tree.blobs() {
                if !self.copy_blob(from, to, &b)? {
                    return Ok(Copied::Missing);
                }
            }
        }
        for b in r.log_blobs() {
            if !self.copy_blob(from, to, &b)? {
                return Ok(Copied::Missing);
            }
        }
        Ok(Copied::Complete)
    }
}

impl Storage for Stacked {
    fn describe(&self) -> String {
        let names: Vec<String> = self.levels.iter().map(|l| l.describe()).collect();
        names.join(" → ")
    }

    fn get_action(&self, key: &ActionKey) -> Result<Option<ActionResult>> {
        for (i, level) in self.levels.iter().enumerate() {
            let r = match level.get_action(key) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) if i > 0 => {
                    tracing::warn!(level = %level.describe(), "cache level failed: {e}");
                    continue;
                }
                Err(e) => return Err(e),
            };
            // A level serving files on demand hands its hit to the local
            // level only: another remote would need the files uploaded.
            let lazy = level.serves_files_on_demand();
            let lower_levels = if lazy {
                &self.levels[..i.min(1)]
            } else {
                &self.levels[..i]
            };
            for lower in lower_levels {
                match self.copy_result(level.as_ref(), lower.as_ref(), &r, !lazy)? {
                    Copied::Complete => {}
                    Copied::Missing => {
                        tracing::info!(key = %key.short(), level = %level.describe(), "hit without its blobs; treated as a miss");
                        return Ok(None);
                    }
                    Copied::InvalidTree { tree, reason } => {
                        tracing::warn!(key = %key, label = %r.label, tree = %tree, level = %level.describe(),
                            "cache entry rejected: its tree is invalid ({reason}); nothing of it was written, the task runs again");
                        return Ok(None);
                    }
                }
                lower.put_action(key, &r)?;
            }
            return Ok(Some(r));
        }
        Ok(None)
    }

    fn put_action(&self, key: &ActionKey, result: &ActionResult) -> Result<()> {
        let Some((first, rest)) = self.levels.split_first() else {
            return Ok(());
        };
        first.put_action(key, result)?;
        for level in rest {
            let res = self
                .copy_result(first.as_ref(), level.as_ref(), result, true)
                .and_then(|copied| match copied {
                    Copied::Complete => level.put_action(key, result),
                    Copied::Missing => Ok(()),
                    Copied::InvalidTree { tree, reason } => Err(Error::Corrupt {
                        what: "tree manifest",
                        path: PathBuf::from(tree.to_hex()),
                        reason,
                    }),
                });
            if let Err(e) = res {
                tracing::warn!(level = %level.describe(), "cannot write to cache level: {e}");
            }
        }
        Ok(())
    }

    fn has_blob(&self, d: &Digest) -> Result<bool> {
        for l in &self.levels {
            if l.has_blob(d)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn fetch_blob(&self, d: &Digest, dest: &Path) -> Result<bool> {
        for l in &self.levels {
            if l.fetch_blob(d, dest)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn put_blob(&self, d: &Digest, src: &Path) -> Result<()> {
        let Some((first, rest)) = self.levels.split_first() else {
            return Ok(());
        };
        first.put_blob(d, src)?;
        for l in rest {
            if let Err(e) = l.put_blob(d, src) {
                tracing::warn!(level = %l.describe(), "cannot write blob: {e}");
            }
        }
        Ok(())
    }
}
