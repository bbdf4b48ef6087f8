//! Trees: canonical manifests of a directory (path, kind, mode, symlink
//! target, content digest — no timestamps, no owners), and capturing a
//! directory (typically an overlayfs upperdir) into the CAS.
//!
//! Overlayfs conventions understood by [`capture`]:
//! - a 0/0 character device is a whiteout (a deletion);
//! - a zero-size regular file carrying `user.overlay.whiteout` or
//!   `trusted.overlay.whiteout` is an xattr whiteout (kernels ≥ 6.7);
//! - a directory whose `user.overlay.opaque` or `trusted.overlay.opaque` is
//!   `"y"` is opaque (hides the lower layers' content).

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::canon::{Decoder, Encoder};
use crate::cas::Cas;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::get_xattr;

/// Version of the tree manifest encoding.
pub const TREE_FORMAT_VERSION: u32 = 1;
const TREE_DOMAIN: &str = "bitzel-tree";

/// What a path in a tree is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// A regular file.
    File {
        /// Content digest (a CAS blob).
        digest: Digest,
        /// Size in bytes.
        size: u64,
        /// Permission bits (`mode & 0o7777`).
        mode: u32,
    },
    /// A directory.
    Dir {
        /// Permission bits.
        mode: u32,
        /// Hides everything below it in lower layers.
        opaque: bool,
    },
    /// A symbolic link (never followed; may point anywhere).
    Symlink {
        /// The link's target, verbatim.
        target: String,
    },
    /// A deletion of whatever lower layers have at this path.
    Whiteout,
}

/// One path of a tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeEntry {
    /// Relative, `/`-separated, no `.`/`..`/empty components.
    pub path: String,
    /// What is there.
    pub kind: EntryKind,
}

/// A canonical manifest: entries sorted by path (so every parent precedes
/// its children), paths unique. The root directory itself is not an entry.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Tree {
    entries: Vec<TreeEntry>,
}

/// Counts from a capture.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Regular files.
    pub files: u64,
    /// Directories (excluding the root).
    pub dirs: u64,
    /// Symlinks.
    pub symlinks: u64,
    /// Whiteouts (deletions).
    pub whiteouts: u64,
    /// Opaque directories.
    pub opaque_dirs: u64,
    /// Bytes of file content.
    pub bytes: u64,
}

/// Check that a tree path is relative and cannot escape its root.
pub fn validate_path(p: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::BadEntryPath {
            path: p.to_string(),
            reason,
        })
    };
    if p.is_empty() {
        return bad("empty path");
    }
    if p.starts_with('/') {
        return bad("absolute path");
    }
    if p.contains('\0') {
        return bad("contains a NUL byte");
    }
    for c in p.split('/') {
        match c {
            "" => return bad("empty component"),
            "." | ".." => return bad("`.` or `..` component"),
            _ => {}
        }
    }
    Ok(())
}

impl Tree {
    /// Build a tree from entries in any order. Errors on an invalid or duplicate path.
    pub fn new(mut entries: Vec<TreeEntry>) -> Result<Tree> {
        for e in &entries {
            validate_path(&e.path)?;
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        for w in entries.windows(2) {
            if w[0].path == w[1].path {
                return Err(Error::BadEntryPath {
                    path: w[0].path.clone(),
                    reason: "duplicate path",
                });
            }
        }
        Ok(Tree { entries })
    }

    /// The entries, sorted by path.
    pub fn entries(&self) -> &[TreeEntry] {
        &self.entries
    }

    /// The entry at `path`, if any.
    pub fn get(&self, path: &str) -> Option<&TreeEntry> {
        self.entries
            .binary_search_by(|e| e.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The digests of every file's content (sorted, unique).
    pub fn blobs(&self) -> Vec<Digest> {
        let mut v: Vec<Digest> = self
            .entries
            .iter()
            .filter_map(|e| match e.kind {
                EntryKind::File { digest, .. } => Some(digest),
                _ => None,
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Total size of the file contents.
    pub fn content_bytes(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| match e.kind {
                EntryKind::File { size, .. } => size,
                _ => 0,
            })
            .sum()
    }

    /// The entries below `prefix` (a directory path), re-rooted at it.
    /// An empty prefix returns the whole tree.
    pub fn subtree(&self, prefix: &str) -> Tree {
        let prefix = prefix.trim_matches('/');
        if prefix.is_empty() {
            return self.clone();
        }
        let want = format!("{prefix}/");
        let entries = self
            .entries
            .iter()
            .filter_map(|e| {
                e.path.strip_prefix(&want).map(|rest| TreeEntry {
                    path: rest.to_string(),
                    kind: e.kind.clone(),
                })
            })
            .collect();
        Tree { entries }
    }

    /// The canonical manifest bytes (what is stored in the CAS and hashed).
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new(TREE_DOMAIN, TREE_FORMAT_VERSION);
        e.u64(self.entries.len() as u64);
        for entry in &self.entries {
            e.str(&entry.path);
            match &entry.kind {
                EntryKind::File { digest, size, mode } => {
                    e.u8(1).u32(*mode).u64(*size).digest(digest);
                }
                EntryKind::Dir { mode, opaque } => {
                    e.u8(2).u32(*mode).u8(u8::from(*opaque));
                }
                EntryKind::Symlink { target } => {
                    e.u8(3).str(target);
                }
                EntryKind::Whiteout => {
                    e.u8(4);
                }
            }
        }
        e.finish()
    }

    /// Decode manifest bytes (validating order and paths).
    pub fn decode(bytes: &[u8]) -> std::result::Result<Tree, String> {
        let (mut d, version) = Decoder::new(bytes, TREE_DOMAIN)?;
        if version != TREE_FORMAT_VERSION {
            return Err(format!("unsupported tree format version {version}"));
        }
        let n = d.u64()?;
        let mut entries = Vec::new();
        for _ in 0..n {
            let path = d.str()?;
            let kind = match d.u8()? {
                1 => {
                    let mode = d.u32()?;
                    let size = d.u64()?;
                    let digest = d.digest()?;
                    EntryKind::File { digest, size, mode }
                }
                2 => {
                    let mode = d.u32()?;
                    let opaque = d.u8()? != 0;
                    EntryKind::Dir { mode, opaque }
                }
                3 => EntryKind::Symlink { target: d.str()? },
                4 => EntryKind::Whiteout,
                t => return Err(format!("unknown entry kind {t}")),
            };
            validate_path(&path).map_err(|e| e.to_string())?;
            if let Some(last) = entries.last() {
                let last: &TreeEntry = last;
                if last.path >= path {
                    return Err(format!("entries out of order at {path:?}"));
                }
            }
            entries.push(TreeEntry { path, kind });
        }
        if !d.at_end() {
            return Err("trailing bytes".into());
        }
        Ok(Tree { entries })
    }

    /// The tree's digest (BLAKE3 of [`Tree::encode`]).
    pub fn digest(&self) -> Digest {
        Digest::of_bytes(&self.encode())
    }
}

fn is_opaque(path: &Path) -> bool {
    ["user.overlay.opaque", "trusted.overlay.opaque"]
        .iter()
        .any(|n| matches!(get_xattr(path, n), Ok(Some(v)) if v == b"y"))
}

fn is_xattr_whiteout(path: &Path) -> bool {
    ["user.overlay.whiteout", "trusted.overlay.whiteout"]
        .iter()
        .any(|n| matches!(get_xattr(path, n), Ok(Some(_))))
}

/// Walk `root` and describe it as a tree. With `store`, every file's content
/// is also copied into that CAS. Files are hashed in parallel (rayon); large
/// files are memory-mapped and hashed with BLAKE3's parallel tree mode.
/// Symlinks are recorded, never followed.
pub fn capture(root: &Path, store: Option<&Cas>) -> Result<(Tree, CaptureStats)> {
    let mut stats = CaptureStats::default();
    // (index into entries, absolute path) of files still to hash.
    let mut pending: Vec<(usize, PathBuf)> = Vec::new();
    let mut entries: Vec<TreeEntry> = Vec::new();
    let walk = walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .min_depth(1);
    for item in walk {
        let item = item.map_err(|e| {
            let path = e.path().unwrap_or(root).to_path_buf();
            let source = e
                .into_io_error()
                .unwrap_or_else(|| std::io::Error::other("filesystem loop"));
            Error::Io {
                op: "walk",
                path,
                source,
            }
        })?;
        let abs = item.path();
        let rel = abs.strip_prefix(root).map_err(|_| Error::Unsupported {
            path: abs.to_path_buf(),
            reason: "outside the captured root".into(),
        })?;
        let Some(rel) = rel.to_str() else {
            return Err(Error::Unsupported {
                path: abs.to_path_buf(),
                reason: "file name is not valid UTF-8 (rename it in the task)".into(),
            });
        };
        let md = fs::symlink_metadata(abs).ctx("stat", abs)?;
        let ft = md.file_type();
        let mode = md.mode() & 0o7777;
        let kind = if ft.is_dir() {
            let opaque = is_opaque(abs);
            stats.dirs += 1;
            stats.opaque_dirs += u64::from(opaque);
            EntryKind::Dir { mode, opaque }
        } else if ft.is_symlink() {
            let t = fs::read_link(abs).ctx("read symlink", abs)?;
            let Some(target) = t.to_str() else {
                return Err(Error::Unsupported {
                    path: abs.to_path_buf(),
                    reason: "symlink target is not valid UTF-8".into(),
                });
            };
            stats.symlinks += 1;
            EntryKind::Symlink {
                target: target.to_string(),
            }
        } else if ft.is_char_device() && md.rdev() == 0 {
            stats.whiteouts += 1;
            EntryKind::Whiteout
        } else if ft.is_file() {
            if md.len() == 0 && is_xattr_whiteout(abs) {
                stats.whiteouts += 1;
                EntryKind::Whiteout
            } else {
                stats.files += 1;
                stats.bytes += md.len();
                pending.push((entries.len(), abs.to_path_buf()));
                EntryKind::File {
                    digest: Digest([0; 32]),
                    size: md.len(),
                    mode,
                }
            }
        } else {
            let what = if ft.is_fifo() {
                "a named pipe"
            } else if ft.is_socket() {
                "a socket"
            } else {
                "a device node"
            };
            return Err(Error::Unsupported {
                path: abs.to_path_buf(),
                reason: format!("it is {what}; only files, directories, symlinks and overlayfs whiteouts can be cached (remove it at the end of the task)"),
            });
        };
        entries.push(TreeEntry {
            path: rel.to_string(),
            kind,
        });
    }
    let hashed: Vec<(usize, Digest, u64)> = pending
        .par_iter()
        .map(|(i, p)| {
            let (d, size) = match store {
                Some(cas) => cas.put_file(p)?,
                None => Digest::of_file(p).ctx("hash", p)?,
            };
            Ok((*i, d, size))
        })
        .collect::<Result<_>>()?;
    for (i, d, sz) in hashed {
        if let EntryKind::File { digest, size, .. } = &mut entries[i].kind {
            *digest = d;
            *size = sz;
        }
    }
    // walkdir's per-directory name order is not the canonical byte order of
    // full paths ("a-b" sorts before "a/x"), so sort.
    let tree = Tree::new(entries)?;
    Ok((tree, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, content: &[u8], mode: u32) -> TreeEntry {
        TreeEntry {
            path: path.into(),
            kind: EntryKind::File {
                digest: Digest::of_bytes(content),
                size: content.len() as u64,
                mode,
            },
        }
    }

    #[test]
    fn encode_decode_round_trip_and_snapshot() {
        let t = Tree::new(vec![
            file("b/x", b"x", 0o755),
            TreeEntry {
                path: "b".into(),
                kind: EntryKind::Dir {
                    mode: 0o755,
                    opaque: true,
                },
            },
            TreeEntry {
                path: "a".into(),
                kind: EntryKind::Symlink {
                    target: "/etc/passwd".into(),
                },
            },
            TreeEntry {
                path: "gone".into(),
                kind: EntryKind::Whiteout,
            },
        ])
        .unwrap();
        let bytes = t.encode();
        assert_eq!(Tree::decode(&bytes).unwrap(), t);
        expect_test::expect!["5c9c9df90daecf3add0e1fe680b8b9e5c7da736a0fb24cc5af22e239f4a52365"]
            .assert_eq(&t.digest().to_hex());
        assert_eq!(t.subtree("b").entries().len(), 1);
        assert_eq!(t.subtree("b").entries()[0].path, "x");
    }

    #[test]
    fn bad_paths_are_rejected() {
        for p in ["", "/abs", "a/../b", "a//b", "./a", "a/."] {
            assert!(Tree::new(vec![file(p, b"", 0o644)]).is_err(), "{p:?}");
        }
        assert!(Tree::new(vec![file("a", b"", 0o644), file("a", b"1", 0o644)]).is_err());
        // Truncated / garbage manifests never panic.
        let bytes = Tree::new(vec![file("a", b"", 0o644)]).unwrap().encode();
        for n in 0..bytes.len() {
            assert!(Tree::decode(&bytes[..n]).is_err());
        }
    }

    #[test]
    fn capture_describes_files_dirs_symlinks_in_canonical_order() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::create_dir_all(r.join("a/sub")).unwrap();
        fs::write(r.join("a/sub/f"), b"hello").unwrap();
        fs::write(r.join("a-b"), b"").unwrap();
        std::os::unix::fs::symlink("/outside/target", r.join("link")).unwrap();
        let (tree, stats) = capture(r, None).unwrap();
        let paths: Vec<&str> = tree.entries().iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["a", "a-b", "a/sub", "a/sub/f", "link"]);
        assert_eq!(stats.files, 2);
        assert_eq!(stats.symlinks, 1);
        assert_eq!(
            tree.get("link").unwrap().kind,
            EntryKind::Symlink {
                target: "/outside/target".into()
            }
        );
        // Same content elsewhere → same digest (no paths, no times).
        let t2 = tempfile::tempdir().unwrap();
        fs::create_dir_all(t2.path().join("a/sub")).unwrap();
        fs::write(t2.path().join("a/sub/f"), b"hello").unwrap();
        fs::write(t2.path().join("a-b"), b"").unwrap();
        std::os::unix::fs::symlink("/outside/target", t2.path().join("link")).unwrap();
        assert_eq!(capture(t2.path(), None).unwrap().0.digest(), tree.digest());
    }
}
