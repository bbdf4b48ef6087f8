//! Digests of the allowed host tools (BitBake's `HOSTTOOLS`).
//!
//! A tool is resolved in a `PATH` (first executable match), symlinks are
//! followed to the real file, and its *content* is hashed. The set digest
//! covers tool names and content digests only — never host paths — so two
//! machines with identical tools get identical keys. Hashing a compiler on
//! every build is slow, so file digests are memoised by
//! (resolved path, device, inode, size, mtime) in a process-wide table that
//! [`Cache::open`](crate::Cache::open) backs with `hosttools.memo` in the
//! cache directory.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use crate::canon::Encoder;
use crate::digest::Digest;
use crate::error::{IoContext, Result};
use crate::fsutil::write_atomic;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

#[derive(Debug, Default)]
struct Memo {
    table: BTreeMap<PathBuf, (Stamp, Digest)>,
    file: Option<PathBuf>,
    dirty: bool,
}

fn memo() -> &'static Mutex<Memo> {
    static MEMO: OnceLock<Mutex<Memo>> = OnceLock::new();
    MEMO.get_or_init(|| Mutex::new(Memo::default()))
}

const MEMO_MAGIC: &[u8] = b"bitzel-hosttools-memo-1\n";

/// Back the process-wide memo table with `file` (loading it; an unreadable
/// table is ignored — it is only a speed-up). Called by `Cache::open`.
pub fn use_memo_file(file: &Path) {
    let mut m = memo().lock().unwrap_or_else(|p| p.into_inner());
    if m.file.as_deref() == Some(file) {
        return;
    }
    if let Ok(bytes) = fs::read(file) {
        if let Some(payload) = bytes.strip_prefix(MEMO_MAGIC) {
            if let Ok((t, _)) = bincode::serde::decode_from_slice::<Vec<(PathBuf, Stamp, Digest)>, _>(
                payload,
                bincode::config::standard(),
            ) {
                for (p, s, d) in t {
                    m.table.entry(p).or_insert((s, d));
                }
            }
        }
    }
    m.file = Some(file.to_path_buf());
}

/// Write the memo table back to its file if it changed.
pub fn save_memo() -> Result<()> {
    let mut m = memo().lock().unwrap_or_else(|p| p.into_inner());
    let Some(file) = m.file.clone().filter(|_| m.dirty) else {
        return Ok(());
    };
    let rows: Vec<(&PathBuf, &Stamp, &Digest)> =
        m.table.iter().map(|(p, (s, d))| (p, s, d)).collect();
    let mut bytes = MEMO_MAGIC.to_vec();
    bytes.extend(
        bincode::serde::encode_to_vec(&rows, bincode::config::standard()).unwrap_or_default(),
    );
    let dir = file.parent().unwrap_or(Path::new("."));
    write_atomic(dir, &file, &bytes, false)?;
    m.dirty = false;
    Ok(())
}

/// The BLAKE3 digest of the content of the file `path` resolves to
/// (symlinks followed), memoised by (path, device, inode, size, mtime).
pub fn hosttools_file_digest(path: &Path) -> Result<Digest> {
    let real = fs::canonicalize(path).ctx("resolve", path)?;
    let md = fs::metadata(&real).ctx("stat", &real)?;
    let stamp = Stamp {
        dev: md.dev(),
        ino: md.ino(),
        size: md.len(),
        mtime_ns: i128::from(md.mtime()) * 1_000_000_000 + i128::from(md.mtime_nsec()),
    };
    {
        let m = memo().lock().unwrap_or_else(|p| p.into_inner());
        if let Some((s, d)) = m.table.get(&real) {
            if *s == stamp {
                return Ok(*d);
            }
        }
    }
    let (d, _) = Digest::of_file(&real).ctx("hash", &real)?;
    let mut m = memo().lock().unwrap_or_else(|p| p.into_inner());
    m.table.insert(real, (stamp, d));
    m.dirty = true;
    Ok(d)
}

/// Find the executable `name` in the colon-separated `path_var`.
pub fn resolve_tool(name: &str, path_var: &str) -> Option<PathBuf> {
    path_var.split(':').filter(|d| !d.is_empty()).find_map(|d| {
        let p = Path::new(d).join(name);
        let md = fs::metadata(&p).ok()?;
        (md.is_file() && md.permissions().mode() & 0o111 != 0).then_some(p)
    })
}

/// The digest of a tool set given as name → content digest.
pub fn set_digest(digests: &BTreeMap<String, Digest>) -> Digest {
    let mut e = Encoder::new("bitzel-hosttools", 1);
    e.digest_map(digests);
    Digest::of_bytes(&e.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(dir: &Path, name: &str, body: &[u8]) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, body).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn set_digest_ignores_location_follows_symlinks_and_tracks_content() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        tool(a.path(), "cc", b"compiler v1");
        let real = tool(b.path(), "real-cc", b"compiler v1");
        std::os::unix::fs::symlink(&real, b.path().join("cc")).unwrap();
        let pa = a.path().to_str().unwrap();
        let pb = b.path().to_str().unwrap();
        let set = |names: &[&str], path: &str| -> Digest {
            let m: BTreeMap<String, Digest> = names
                .iter()
                .map(|n| {
                    let p = resolve_tool(n, path).unwrap();
                    (n.to_string(), hosttools_file_digest(&p).unwrap())
                })
                .collect();
            set_digest(&m)
        };
        let ha = set(&["cc"], pa);
        assert_eq!(ha, set(&["cc"], pb), "paths must not enter the digest");
        // Change content (size changes → memo invalidated).
        tool(a.path(), "cc", b"compiler v2!");
        let ha2 = set(&["cc"], pa);
        assert_ne!(ha2, ha);
        // A different name set differs.
        tool(a.path(), "ld", b"linker");
        assert_ne!(set(&["cc", "ld"], pa), ha2);
        assert!(resolve_tool("nope", pa).is_none());
    }

    #[test]
    fn memo_survives_in_its_file() {
        let t = tempfile::tempdir().unwrap();
        let p = tool(t.path(), "x", b"content");
        let memo_file = t.path().join("memo");
        use_memo_file(&memo_file);
        let d = hosttools_file_digest(&p).unwrap();
        save_memo().unwrap();
        let bytes = fs::read(&memo_file).unwrap();
        assert!(bytes.starts_with(MEMO_MAGIC));
        assert_eq!(d, Digest::of_bytes(b"content"));
    }
}
