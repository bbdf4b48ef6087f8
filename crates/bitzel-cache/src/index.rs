//! The rebuildable index: an embedded `sled` database holding, per task
//! label, the recent action-cache entries (for `explain`), and per build the
//! hit/miss counts (for `stats`).
//!
//! The source of truth is the files of the local store (CAS blobs and
//! `ac/` entries). The index only adds history and statistics, and can be
//! rebuilt from the entries at any time ([`Index::rebuild`]): losing or
//! corrupting it loses speed and statistics, never correctness.
//!
//! sled holds an exclusive lock on its database for as long as it is open,
//! so bitzel never keeps it open during a build:
//! - writers append index updates to a per-process **journal**
//!   (`index/journal/*.log`), holding an `flock` on it while they live;
//! - whoever opens the database (briefly: at the end of a build, for
//!   `explain`, `stats`, `verify`) first replays and deletes every journal
//!   whose writer is gone (its flock is free — also after `kill -9`);
//! - opening waits a bounded time for another holder, naming it (pid and
//!   command line from `index/db.owner`), and a corrupt database is moved
//!   aside and rebuilt.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::digest::{ActionKey, Digest};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::unique_name;
use crate::lock::{flock, owner_line, LockMode};

/// How many entries per label the history keeps.
pub const HISTORY_PER_LABEL: usize = 16;
/// How many builds `stats` remembers.
pub const BUILDS_KEPT: usize = 100;

/// One update of the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum IndexOp {
    /// An action-cache entry was written.
    Put {
        /// The entry.
        key: ActionKey,
        /// Its task label.
        label: String,
        /// When (Unix ms).
        created_ms: u64,
    },
    /// A build (one `Cache` session) finished.
    Build(BuildRecord),
}

/// Hit/miss counts of one build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRecord {
    /// When it finished (Unix ms).
    pub finished_ms: u64,
    /// Lookups that hit.
    pub hits: u64,
    /// Lookups that missed (including hits demoted for missing blobs).
    pub misses: u64,
    /// Process id of the build.
    pub pid: u32,
}

/// A history item: an entry recorded for a label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryItem {
    /// The entry's key.
    pub key: ActionKey,
    /// When it was recorded (Unix ms).
    pub created_ms: u64,
}

/// This process's journal: created lazily, flock'd for its whole life.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    file: Option<(File, PathBuf)>,
}

fn frame(op: &IndexOp) -> Vec<u8> {
    let payload =
        bincode::serde::encode_to_vec(op, bincode::config::standard()).unwrap_or_default();
    let mut out = Vec::with_capacity(payload.len() + 12);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&Digest::of_bytes(&payload).0[..8]);
    out.extend_from_slice(&payload);
    out
}

/// Decode journal frames; stops at the first torn or corrupt frame.
fn unframe(mut bytes: &[u8]) -> Vec<IndexOp> {
    let mut ops = Vec::new();
    while bytes.len() >= 12 {
        let mut l = [0u8; 4];
        l.copy_from_slice(&bytes[..4]);
        let len = u32::from_le_bytes(l) as usize;
        let Some(payload) = bytes.get(12..12 + len) else {
            break;
        };
        if Digest::of_bytes(payload).0[..8] != bytes[4..12] {
            break;
        }
        match bincode::serde::decode_from_slice::<IndexOp, _>(payload, bincode::config::standard())
        {
            Ok((op, _)) => ops.push(op),
            Err(_) => break,
        }
        bytes = &bytes[12 + len..];
    }
    ops
}

impl Journal {
    /// A journal that will live in `dir`.
    pub fn new(dir: &Path) -> Journal {
        Journal {
            dir: dir.to_path_buf(),
            file: None,
        }
    }

    /// Append one update (no fsync: the index is rebuildable).
    pub fn append(&mut self, op: &IndexOp) -> Result<()> {
        if self.file.is_none() {
            fs::create_dir_all(&self.dir).ctx("create directory", &self.dir)?;
            // Lock under a name mergers ignore, then rename: a merger can
            // never see an unlocked live journal.
            let tmp = self.dir.join(unique_name("new"));
            let f = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(&tmp)
                .ctx("create", &tmp)?;
            flock(&f, LockMode::Exclusive, false).ctx("lock", &tmp)?;
            let path = tmp.with_extension("log");
            fs::rename(&tmp, &path).ctx("rename", &path)?;
            self.file = Some((f, path));
        }
        if let Some((f, path)) = &mut self.file {
            f.write_all(&frame(op)).ctx("append to", path.as_path())?;
        }
        Ok(())
    }

    /// Close (and unlock) the journal so the next index opener replays it.
    pub fn close(&mut self) {
        self.file = None;
    }
}

/// The open sled database (exclusive while it lives).
pub struct Index {
    db: sled::Db,
    dir: PathBuf,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index").field("dir", &self.dir).finish()
    }
}

fn is_lock_error(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"))
}

impl Index {
    /// Open the index in `dir` (`dir/db`), waiting up to `wait` for another
    /// process to release it, then replay finished journals. A database
    /// that fails to open for any other reason is moved aside and rebuilt
    /// by the caller (the returned flag is `true`).
    pub fn open(dir: &Path, wait: Duration) -> Result<(Index, bool)> {
        fs::create_dir_all(dir).ctx("create directory", dir)?;
        let db_path = dir.join("db");
        let owner_path = dir.join("db.owner");
        let start = Instant::now();
        let mut announced = false;
        let mut fresh = false;
        let db = loop {
            match sled::Config::new().path(&db_path).open() {
                Ok(db) => break db,
                Err(e) if is_lock_error(&e) => {
                    let holder = fs::read_to_string(&owner_path)
                        .map(|s| s.trim().to_string())
                        .unwrap_or_else(|_| "another process".into());
                    let waited = start.elapsed();
                    if waited >= wait {
                        return Err(Error::IndexLocked {
                            path: db_path,
                            holder,
                            waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                        });
                    }
                    if !announced {
                        tracing::warn!(
                            "waiting for the cache index {}, held by {holder}",
                            db_path.display()
                        );
                        announced = true;
                    }
                    std::thread::sleep(Duration::from_millis(25));
                }
                Err(e) if !fresh => {
                    let aside = dir.join(unique_name("db.corrupt"));
                    tracing::warn!(
                        "cache index {} is unusable ({e}); moving it to {} and rebuilding",
                        db_path.display(),
                        aside.display()
                    );
                    fs::rename(&db_path, &aside).ctx("move aside", &db_path)?;
                    let _ = crate::fsutil::remove_any(&aside);
                    fresh = true;
                }
                Err(source) => {
                    return Err(Error::Index {
                        path: db_path,
                        source,
                    })
                }
            }
        };
        let _ = fs::write(&owner_path, owner_line());
        let idx = Index {
            db,
            dir: dir.to_path_buf(),
        };
        idx.replay_journals()?;
        Ok((idx, fresh))
    }

    fn err(&self, source: sled::Error) -> Error {
        Error::Index {
            path: self.dir.join("db"),
            source,
        }
    }

    fn tree(&self, name: &str) -> Result<sled::Tree> {
        self.db.open_tree(name).map_err(|e| self.err(e))
    }

    /// Replay and delete every journal whose writer has finished or died.
    pub fn replay_journals(&self) -> Result<usize> {
        let jdir = self.dir.join("journal");
        let Ok(rd) = fs::read_dir(&jdir) else {
            return Ok(0);
        };
        let mut n = 0;
        for f in rd.flatten() {
            let p = f.path();
            if p.extension().and_then(|e| e.to_str()) != Some("log") {
                continue;
            }
            let Ok(mut file) = File::open(&p) else {
                continue;
            };
            if !flock(&file, LockMode::Exclusive, false).unwrap_or(false) {
                continue; // its writer is alive
            }
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).ctx("read", &p)?;
            for op in unframe(&bytes) {
                self.apply(&op)?;
            }
            fs::remove_file(&p).ctx("remove", &p)?;
            n += 1;
        }
        if n > 0 {
            self.db.flush().map_err(|e| self.err(e))?;
        }
        Ok(n)
    }

    /// Apply one update.
    pub fn apply(&self, op: &IndexOp) -> Result<()> {
        match op {
            IndexOp::Put {
                key,
                label,
                created_ms,
            } => {
                let hist = self.tree("history")?;
                let mut k = label.as_bytes().to_vec();
                k.push(0);
                let prefix_len = k.len();
                k.extend_from_slice(&created_ms.to_be_bytes());
                k.extend_from_slice(&key.0 .0);
                hist.insert(&k, &[] as &[u8]).map_err(|e| self.err(e))?;
                // Trim to the newest HISTORY_PER_LABEL.
                let all: Vec<sled::IVec> = hist
                    .scan_prefix(&k[..prefix_len])
                    .keys()
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|e| self.err(e))?;
                if all.len() > HISTORY_PER_LABEL {
                    for old in &all[..all.len() - HISTORY_PER_LABEL] {
                        hist.remove(old).map_err(|e| self.err(e))?;
                    }
                }
            }
            IndexOp::Build(b) => {
                let builds = self.tree("builds")?;
                let mut k = b.finished_ms.to_be_bytes().to_vec();
                k.extend_from_slice(&b.pid.to_be_bytes());
                let v = bincode::serde::encode_to_vec(b, bincode::config::standard())
                    .unwrap_or_default();
                builds.insert(k, v).map_err(|e| self.err(e))?;
                while builds.len() > BUILDS_KEPT {
                    if builds.pop_min().map_err(|e| self.err(e))?.is_none() {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// The recorded entries for `label`, newest first.
    pub fn history(&self, label: &str) -> Result<Vec<HistoryItem>> {
        let hist = self.tree("history")?;
        let mut prefix = label.as_bytes().to_vec();
        prefix.push(0);
        let mut out = Vec::new();
        for k in hist.scan_prefix(&prefix).keys() {
            let k = k.map_err(|e| self.err(e))?;
            let rest = &k[prefix.len()..];
            if rest.len() != 40 {
                continue;
            }
            let mut t = [0u8; 8];
            t.copy_from_slice(&rest[..8]);
            let mut d = [0u8; 32];
            d.copy_from_slice(&rest[8..]);
            out.push(HistoryItem {
                key: ActionKey(Digest(d)),
                created_ms: u64::from_be_bytes(t),
            });
        }
        out.reverse();
        Ok(out)
    }

    /// Recorded builds, newest first.
    pub fn builds(&self) -> Result<Vec<BuildRecord>> {
        let builds = self.tree("builds")?;
        let mut out = Vec::new();
        for kv in builds.iter().rev() {
            let (_, v) = kv.map_err(|e| self.err(e))?;
            if let Ok((b, _)) =
                bincode::serde::decode_from_slice::<BuildRecord, _>(&v, bincode::config::standard())
            {
                out.push(b);
            }
        }
        Ok(out)
    }

    /// Forget the history (build statistics are kept); used before a rebuild.
    pub fn clear_history(&self) -> Result<()> {
        self.tree("history")?.clear().map_err(|e| self.err(e))
    }

    /// Remove one entry from the history (after eviction or repair).
    pub fn forget(&self, label: &str, key: &ActionKey) -> Result<()> {
        let hist = self.tree("history")?;
        let mut prefix = label.as_bytes().to_vec();
        prefix.push(0);
        for k in hist.scan_prefix(&prefix).keys() {
            let k = k.map_err(|e| self.err(e))?;
            if k.ends_with(&key.0 .0) {
                hist.remove(&k).map_err(|e| self.err(e))?;
            }
        }
        Ok(())
    }

    /// Flush to disk.
    pub fn flush(&self) -> Result<()> {
        self.db.flush().map(|_| ()).map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_torn_tail_is_ignored() {
        let ops = vec![
            IndexOp::Put {
                key: ActionKey(Digest::of_bytes(b"k")),
                label: "a:do_x".into(),
                created_ms: 5,
            },
            IndexOp::Build(BuildRecord {
                finished_ms: 9,
                hits: 1,
                misses: 2,
                pid: 3,
            }),
        ];
        let mut bytes: Vec<u8> = ops.iter().flat_map(frame).collect();
        assert_eq!(unframe(&bytes), ops);
        bytes.truncate(bytes.len() - 1);
        assert_eq!(unframe(&bytes), ops[..1].to_vec());
    }

    #[test]
    fn journals_of_finished_writers_are_replayed_live_ones_kept() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path();
        let mut done = Journal::new(&dir.join("journal"));
        let key = ActionKey(Digest::of_bytes(b"k"));
        done.append(&IndexOp::Put {
            key,
            label: "a:do_x".into(),
            created_ms: 1,
        })
        .unwrap();
        done.close();
        let mut live = Journal::new(&dir.join("journal"));
        live.append(&IndexOp::Put {
            key: ActionKey(Digest::of_bytes(b"live")),
            label: "a:do_x".into(),
            created_ms: 2,
        })
        .unwrap();
        {
            let (idx, _) = Index::open(dir, Duration::from_secs(1)).unwrap();
            let h = idx.history("a:do_x").unwrap();
            assert_eq!(h, vec![HistoryItem { key, created_ms: 1 }]);
        }
        live.close();
        let (idx, _) = Index::open(dir, Duration::from_secs(1)).unwrap();
        assert_eq!(idx.history("a:do_x").unwrap().len(), 2);
        assert_eq!(idx.history("a:do_x").unwrap()[0].created_ms, 2);
    }
}
