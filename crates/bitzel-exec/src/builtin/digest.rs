//! Content digests of fetched files and trees.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use super::BuiltinError;

/// The digests of one file's bytes, computed in one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigests {
    /// BLAKE3, lower-case hex: the content address bitzel uses.
    pub blake3: String,
    /// SHA-256, lower-case hex: what `SRC_URI[sha256sum]` is checked against.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// BLAKE3 and SHA-256 of a file.
pub fn file_digests(path: &Path) -> Result<FileDigests, BuiltinError> {
    let mut f = File::open(path).map_err(|e| BuiltinError::io("opening", path, e))?;
    let mut b3 = blake3::Hasher::new();
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| BuiltinError::io("reading", path, e))?;
        if n == 0 {
            break;
        }
        b3.update(&buf[..n]);
        sha.update(&buf[..n]);
        size += n as u64;
    }
    Ok(FileDigests {
        blake3: b3.finalize().to_hex().to_string(),
        sha256: hex(&sha.finalize()),
        size,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// BLAKE3 of a directory tree (a git export), independent of where it lives
/// and of time stamps.
///
/// Canonical encoding, hashed as one stream: for every entry below `root`,
/// in byte order of its relative path (`/`-separated), the record
/// `kind \0 path \0 payload \n` where kind is `d` (directory, empty payload),
/// `f` or `x` (file, executable or not; payload = BLAKE3 hex of the bytes) or
/// `l` (symbolic link; payload = the link target).
pub fn tree_digest(root: &Path) -> Result<String, BuiltinError> {
    tree_digest_skipping(root, &[])
}

/// [`tree_digest`] leaving out every entry (and what is below it) whose
/// name is in `skip` (for example `__pycache__`, which Python writes beside
/// the sources it imports).
pub fn tree_digest_skipping(root: &Path, skip: &[&str]) -> Result<String, BuiltinError> {
    let mut entries = Vec::new();
    walk(root, "", skip, &mut entries)?;
    entries.sort();
    let mut h = blake3::Hasher::new();
    for (rel, kind, payload) in &entries {
        h.update(kind.as_bytes());
        h.update(b"\0");
        h.update(rel.as_bytes());
        h.update(b"\0");
        h.update(payload.as_bytes());
        h.update(b"\n");
    }
    Ok(h.finalize().to_hex().to_string())
}

fn walk(
    dir: &Path,
    prefix: &str,
    skip: &[&str],
    out: &mut Vec<(String, String, String)>,
) -> Result<(), BuiltinError> {
    let rd = std::fs::read_dir(dir).map_err(|e| BuiltinError::io("listing", dir, e))?;
    let mut names = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| BuiltinError::io("listing", dir, e))?;
        names.push(ent.file_name());
    }
    names.sort();
    for name in names {
        if skip.iter().any(|s| name == **s) {
            continue;
        }
        let path = dir.join(&name);
        let rel = format!("{prefix}{}", name.to_string_lossy());
        let meta = std::fs::symlink_metadata(&path)
            .map_err(|e| BuiltinError::io("inspecting", &path, e))?;
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target = std::fs::read_link(&path)
                .map_err(|e| BuiltinError::io("reading link", &path, e))?;
            out.push((rel, "l".into(), target.to_string_lossy().into_owned()));
        } else if ft.is_dir() {
            out.push((rel.clone(), "d".into(), String::new()));
            walk(&path, &format!("{rel}/"), skip, out)?;
        } else {
            use std::os::unix::fs::PermissionsExt;
            let kind = if meta.permissions().mode() & 0o111 != 0 {
                "x"
            } else {
                "f"
            };
            out.push((rel, kind.into(), file_digests(&path)?.blake3));
        }
    }
    Ok(())
}
