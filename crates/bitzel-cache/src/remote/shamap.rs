//! The local BLAKE3→SHA-256 map used with the `sha256` digest function:
//! bitzel names blobs by BLAKE3, servers such as bazel-remote by SHA-256.
//! Entries are learned when a blob is uploaded (hashed once) and when an
//! action-cache entry is read (it lists both names of every blob it needs).
//!
//! On disk (optional): one small file per blob, `<dir>/<blake3 hex>` holding
//! the 64 hex digits of its SHA-256, written to a temp name and renamed, so
//! concurrent bitzel processes can share the directory without a lock.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::Digest as _;

use super::RemoteError;
use crate::digest::Digest;

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(bytes).into()
}

/// Lowercase hex of 32 bytes.
pub fn hex32(b: &[u8; 32]) -> String {
    Digest(*b).to_hex()
}

/// The map. Lookups hit memory first, then the directory.
#[derive(Debug, Default)]
pub struct Sha256Map {
    dir: Option<PathBuf>,
    mem: Mutex<HashMap<Digest, [u8; 32]>>,
}

impl Sha256Map {
    /// A map persisted under `dir` (created if needed), or in memory only.
    pub fn open(dir: Option<&Path>) -> Result<Sha256Map, RemoteError> {
        if let Some(d) = dir {
            std::fs::create_dir_all(d).map_err(|source| RemoteError::Map {
                path: d.to_path_buf(),
                source,
            })?;
        }
        Ok(Sha256Map {
            dir: dir.map(Path::to_path_buf),
            mem: Mutex::new(HashMap::new()),
        })
    }

    /// The SHA-256 of the blob whose BLAKE3 is `b3`, if known.
    pub fn get(&self, b3: &Digest) -> Option<[u8; 32]> {
        if let Some(s) = self.mem.lock().ok().and_then(|m| m.get(b3).copied()) {
            return Some(s);
        }
        let dir = self.dir.as_ref()?;
        let text = std::fs::read_to_string(dir.join(b3.to_hex())).ok()?;
        let sha: Digest = text.trim().parse().ok()?;
        if let Ok(mut m) = self.mem.lock() {
            m.insert(*b3, sha.0);
        }
        Some(sha.0)
    }

    /// Record that `b3` and `sha` name the same content. A failure to persist
    /// is logged, not returned: the map is only a cache of hashes.
    pub fn insert(&self, b3: &Digest, sha: [u8; 32]) {
        let new = match self.mem.lock() {
            Ok(mut m) => m.insert(*b3, sha) != Some(sha),
            Err(_) => true,
        };
        let Some(dir) = &self.dir else { return };
        if !new {
            return;
        }
        let path = dir.join(b3.to_hex());
        if path.exists() {
            return;
        }
        let tmp = dir.join(format!(
            ".tmp-{}-{}-{}",
            std::process::id(),
            b3.short(),
            unique()
        ));
        let res = std::fs::write(&tmp, hex32(&sha)).and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = res {
            let _ = std::fs::remove_file(&tmp);
            tracing::debug!(path = %path.display(), error = %e, "cannot persist sha256 map entry");
        }
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_sha256_and_persistence() {
        assert_eq!(
            hex32(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let dir = tempfile::tempdir().unwrap();
        let b3 = Digest::of_bytes(b"abc");
        let m = Sha256Map::open(Some(dir.path())).unwrap();
        assert_eq!(m.get(&b3), None);
        m.insert(&b3, sha256(b"abc"));
        let again = Sha256Map::open(Some(dir.path())).unwrap();
        assert_eq!(again.get(&b3), Some(sha256(b"abc")));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
