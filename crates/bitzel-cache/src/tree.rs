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
///
/// Every way to make one ([`Tree::new`], [`Tree::decode`], serde) validates
/// it (see [`Tree::new`]), so a `Tree` value can be materialised.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "UncheckedTree")]
pub struct Tree {
    entries: Vec<TreeEntry>,
}

/// What serde reads before [`Tree::new`] validates it.
#[derive(Deserialize)]
struct UncheckedTree {
    entries: Vec<TreeEntry>,
}

impl TryFrom<UncheckedTree> for Tree {
    type Error = Error;
    fn try_from(t: UncheckedTree) -> Result<Tree> {
        Tree::new(t.entries)
    }
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

/// Most entries a tree may have (a whole distribution rootfs has a few
/// hundred thousand). Bounds what a hostile manifest can make decode build.
pub const MAX_TREE_ENTRIES: u64 = 1 << 22;
/// Most bytes a tree manifest may have; larger blobs are not read as trees.
pub const MAX_MANIFEST_BYTES: u64 = 512 << 20;
/// Longest entry path in bytes (Linux's `PATH_MAX` less the NUL).
pub const MAX_PATH_BYTES: usize = 4095;
/// Longest path component in bytes (Linux's `NAME_MAX`).
pub const MAX_NAME_BYTES: usize = 255;
/// Longest symlink target in bytes (what `symlink(2)` accepts).
pub const MAX_TARGET_BYTES: usize = 4095;

fn bad_entry<T>(path: &str, reason: impl Into<String>) -> Result<T> {
    Err(Error::BadEntryPath {
        path: path.to_string(),
        reason: reason.into(),
    })
}

/// Check that a tree path is relative, bounded and cannot escape its root:
/// not empty, not absolute, no NUL, no empty, `.` or `..` component.
pub fn validate_path(p: &str) -> Result<()> {
    if p.is_empty() {
        return bad_entry(p, "empty path");
    }
    if p.starts_with('/') {
        return bad_entry(p, "absolute path");
    }
    if p.contains('\0') {
        return bad_entry(p, "contains a NUL byte");
    }
    if p.len() > MAX_PATH_BYTES {
        return bad_entry(p, format!("path longer than {MAX_PATH_BYTES} bytes"));
    }
    for c in p.split('/') {
        match c {
            "" => return bad_entry(p, "empty component"),
            "." | ".." => return bad_entry(p, "`.` or `..` component"),
            c if c.len() > MAX_NAME_BYTES => {
                return bad_entry(p, format!("component longer than {MAX_NAME_BYTES} bytes"))
            }
            _ => {}
        }
    }
    Ok(())
}

fn kind_name(k: &EntryKind) -> &'static str {
    match k {
        EntryKind::File { .. } => "file",
        EntryKind::Dir { .. } => "directory",
        EntryKind::Symlink { .. } => "symlink",
        EntryKind::Whiteout => "whiteout",
    }
}

fn validate_kind(e: &TreeEntry) -> Result<()> {
    match &e.kind {
        EntryKind::File { mode, .. } | EntryKind::Dir { mode, .. } if mode & !0o7777 != 0 => {
            bad_entry(&e.path, format!("mode {mode:#o} has bits outside 0o7777"))
        }
        EntryKind::Symlink { target } if target.is_empty() => {
            bad_entry(&e.path, "empty symlink target")
        }
        EntryKind::Symlink { target } if target.contains('\0') => {
            bad_entry(&e.path, "symlink target contains a NUL byte")
        }
        EntryKind::Symlink { target } if target.len() > MAX_TARGET_BYTES => bad_entry(
            &e.path,
            format!("symlink target longer than {MAX_TARGET_BYTES} bytes"),
        ),
        _ => Ok(()),
    }
}

/// The one structural check of a manifest, run by [`Tree::new`] and
/// [`Tree::decode`] (so by everything that reads a tree from a CAS or a
/// remote) before anything is written: bounded size, valid paths
/// ([`validate_path`]), valid kinds, strictly increasing paths (sorted, no
/// duplicates), and no entry below a symlink, a file or a whiteout. A
/// parent absent from the tree is fine (a layer is a delta: the directory
/// may come from a lower layer); a parent present as anything but a
/// directory is not. Device nodes and fifos cannot be expressed at all.
fn validate_entries(entries: &[TreeEntry]) -> Result<()> {
    if entries.len() as u64 > MAX_TREE_ENTRIES {
        return Err(Error::BadTree {
            reason: format!("{} entries (at most {MAX_TREE_ENTRIES})", entries.len()),
        });
    }
    for (i, e) in entries.iter().enumerate() {
        validate_path(&e.path)?;
        validate_kind(e)?;
        if let Some(prev) = i.checked_sub(1).map(|j| &entries[j]) {
            if prev.path == e.path {
                return bad_entry(&e.path, "duplicate path");
            }
            if prev.path > e.path {
                return bad_entry(&e.path, format!("out of order (after {:?})", prev.path));
            }
        }
        // Ancestors sort before their descendants, so they are in
        // `entries[..i]`. The nearest present ancestor decides: a directory
        // was itself checked against its own ancestors.
        let mut p = e.path.as_str();
        while let Some((parent, _)) = p.rsplit_once('/') {
            match entries[..i].binary_search_by(|x| x.path.as_str().cmp(parent)) {
                Ok(j) => match &entries[j].kind {
                    EntryKind::Dir { .. } => break,
                    k => {
                        return bad_entry(
                            &e.path,
                            format!(
                                "below {parent:?}, which is a {} in the same tree",
                                kind_name(k)
                            ),
                        )
                    }
                },
                Err(_) => p = parent,
            }
        }
    }
    Ok(())
}

impl Tree {
    /// Build a tree from entries in any order. Errors (naming the entry and
    /// the reason) on anything the structural check refuses: an invalid or
    /// duplicate path, an entry below a non-directory, a bad mode or target.
    pub fn new(mut entries: Vec<TreeEntry>) -> Result<Tree> {
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        validate_entries(&entries)?;
        Ok(Tree { entries })
    }

    /// A tree whose entries are taken as they are, for tests that need an
    /// invalid tree to prove materialisation does not depend on validation.
    #[cfg(test)]
    pub(crate) fn new_unchecked(entries: Vec<TreeEntry>) -> Tree {
        Tree { entries }
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
            .fold(0u64, u64::saturating_add)
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

    /// Decode manifest bytes. Everything [`Tree::new`] checks is checked
    /// (the same structural check), plus the encoding itself: known entry
    /// kinds only, opaque flag 0 or 1, bounded size and entry count, no
    /// trailing bytes. Never panics, whatever the bytes.
    pub fn decode(bytes: &[u8]) -> std::result::Result<Tree, String> {
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(format!(
                "{} bytes (at most {MAX_MANIFEST_BYTES})",
                bytes.len()
            ));
        }
        let (mut d, version) = Decoder::new(bytes, TREE_DOMAIN)?;
        if version != TREE_FORMAT_VERSION {
            return Err(format!("unsupported tree format version {version}"));
        }
        let n = d.u64()?;
        if n > MAX_TREE_ENTRIES {
            return Err(format!("{n} entries (at most {MAX_TREE_ENTRIES})"));
        }
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
                    let opaque = match d.u8()? {
                        0 => false,
                        1 => true,
                        o => return Err(format!("entry {path:?}: opaque flag {o} is not 0 or 1")),
                    };
                    EntryKind::Dir { mode, opaque }
                }
                3 => EntryKind::Symlink { target: d.str()? },
                4 => EntryKind::Whiteout,
                t => {
                    return Err(format!(
                        "entry {path:?}: unknown entry kind {t} (only files, directories, symlinks and whiteouts exist)"
                    ))
                }
            };
            entries.push(TreeEntry { path, kind });
        }
        if !d.at_end() {
            return Err("trailing bytes".into());
        }
        validate_entries(&entries).map_err(|e| e.to_string())?;
        Ok(Tree { entries })
    }

    /// The tree's digest (BLAKE3 of [`Tree::encode`]).
    pub fn digest(&self) -> Digest {
        Digest::of_bytes(&self.encode())
    }
}

/// Read tree manifest `d` from `cas`: size-bounded (a blob over
/// [`MAX_MANIFEST_BYTES`] is not read), verified, decoded and validated
/// ([`Tree::decode`]). A manifest that is too large or invalid is
/// [`Error::Corrupt`] naming the blob and the reason.
pub fn read_tree(cas: &Cas, d: &Digest) -> Result<Tree> {
    let path = cas.blob_path(d);
    if let Ok(md) = fs::symlink_metadata(&path) {
        if md.len() > MAX_MANIFEST_BYTES {
            return Err(Error::Corrupt {
                what: "tree manifest",
                path,
                reason: format!("{} bytes (at most {MAX_MANIFEST_BYTES})", md.len()),
            });
        }
    }
    let bytes = cas.read(d)?;
    Tree::decode(&bytes).map_err(|reason| Error::Corrupt {
        what: "tree manifest",
        path,
        reason,
    })
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

/// The error for a fifo, socket or device node found in a task's output:
/// only files, directories, symlinks and (overlayfs) whiteouts are cached.
pub(crate) fn uncacheable(path: &Path, ft: fs::FileType) -> Error {
    let what = if ft.is_fifo() {
        "a named pipe"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "a device node"
    };
    Error::Unsupported {
        path: path.to_path_buf(),
        reason: format!("it is {what}; only files, directories, symlinks and overlayfs whiteouts can be cached (remove it at the end of the task)"),
    }
}

/// Hash the files `pending` names (index into `entries`, path) in parallel
/// and fill in their entries' digests and sizes; with `store`, their
/// content is also copied into that CAS.
pub(crate) fn fill_file_digests(
    entries: &mut [TreeEntry],
    pending: &[(usize, PathBuf)],
    store: Option<&Cas>,
) -> Result<()> {
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
    Ok(())
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
            return Err(uncacheable(abs, ft));
        };
        entries.push(TreeEntry {
            path: rel.to_string(),
            kind,
        });
    }
    fill_file_digests(&mut entries, &pending, store)?;
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

    fn dir(path: &str) -> TreeEntry {
        TreeEntry {
            path: path.into(),
            kind: EntryKind::Dir {
                mode: 0o755,
                opaque: false,
            },
        }
    }

    fn link(path: &str, target: &str) -> TreeEntry {
        TreeEntry {
            path: path.into(),
            kind: EntryKind::Symlink {
                target: target.into(),
            },
        }
    }

    fn whiteout(path: &str) -> TreeEntry {
        TreeEntry {
            path: path.into(),
            kind: EntryKind::Whiteout,
        }
    }

    /// `Tree::new` and `Tree::decode` (of the same entries encoded without
    /// validation) both refuse `entries`, naming `path` and `reason`.
    fn refused(entries: Vec<TreeEntry>, path: &str, reason: &str) {
        let err = Tree::new(entries.clone()).unwrap_err().to_string();
        assert!(err.contains(&format!("{path:?}")), "{err}");
        assert!(err.contains(reason), "{err}");
        let mut sorted = entries;
        sorted.sort_by(|a, b| a.path.cmp(&b.path));
        let bytes = Tree::new_unchecked(sorted).encode();
        let err = Tree::decode(&bytes).unwrap_err();
        assert!(err.contains(&format!("{path:?}")), "{err}");
        assert!(err.contains(reason), "{err}");
    }

    #[test]
    fn bad_paths_are_rejected() {
        for (p, why) in [
            ("", "empty path"),
            ("/abs", "absolute path"),
            ("/etc/cron.d/x", "absolute path"),
            ("a/../b", "`..`"),
            ("..", "`..`"),
            ("a//b", "empty component"),
            ("a/", "empty component"),
            ("./a", "`.`"),
            ("a/.", "`.`"),
            ("a\0b", "NUL"),
        ] {
            refused(vec![file(p, b"", 0o644)], p, why);
        }
        let long = "a/".repeat(2048) + "b";
        refused(vec![file(&long, b"", 0o644)], &long, "longer than 4095");
        let name = "n".repeat(256);
        refused(vec![file(&name, b"", 0o644)], &name, "longer than 255");
        assert!(Tree::new(vec![file(&"n".repeat(255), b"", 0o644)]).is_ok());
        refused(
            vec![file("a", b"", 0o644), file("a", b"1", 0o644)],
            "a",
            "duplicate",
        );
        // Truncated / garbage manifests never panic.
        let bytes = Tree::new(vec![file("a", b"", 0o644)]).unwrap().encode();
        for n in 0..bytes.len() {
            assert!(Tree::decode(&bytes[..n]).is_err());
        }
    }

    #[test]
    fn entries_below_non_directories_are_rejected() {
        refused(
            vec![link("a", "/etc/cron.d"), file("a/x", b"", 0o644)],
            "a/x",
            "below \"a\", which is a symlink",
        );
        // An absent directory in between does not hide the symlink.
        refused(
            vec![link("a", "/tmp"), file("a/b/c", b"", 0o644)],
            "a/b/c",
            "symlink",
        );
        refused(
            vec![file("f", b"", 0o644), dir("f/d")],
            "f/d",
            "below \"f\", which is a file",
        );
        refused(
            vec![whiteout("w"), link("w/l", "x")],
            "w/l",
            "which is a whiteout",
        );
        refused(
            vec![dir("d"), link("d/s", ".."), file("d/s/x", b"", 0o644)],
            "d/s/x",
            "symlink",
        );
        // Parents absent from the tree are fine (a layer is a delta), and
        // so are parents that are directories; names that merely share a
        // prefix are not parents.
        Tree::new(vec![file("a/b/c", b"", 0o644)]).unwrap();
        Tree::new(vec![dir("a"), file("a/b/c", b"", 0o644), link("a-b", "/")]).unwrap();
        Tree::new(vec![
            link("a", "/"),
            file("a-x", b"", 0o644),
            file("a0/x", b"", 0o644),
        ])
        .unwrap();
    }

    #[test]
    fn bad_kinds_are_rejected_and_special_modes_kept() {
        refused(vec![file("f", b"", 0o100_644)], "f", "bits outside 0o7777");
        refused(
            vec![TreeEntry {
                path: "d".into(),
                kind: EntryKind::Dir {
                    mode: 0o40_755,
                    opaque: false,
                },
            }],
            "d",
            "bits outside 0o7777",
        );
        refused(vec![link("l", "")], "l", "empty symlink target");
        refused(vec![link("l", "a\0b")], "l", "NUL");
        refused(vec![link("l", &"t".repeat(4096))], "l", "longer than 4095");
        // setuid/setgid/sticky are tree metadata (stripped on the host only).
        let t = Tree::new(vec![file("su", b"", 0o4755), file("sg", b"", 0o2755)]).unwrap();
        let back = Tree::decode(&t.encode()).unwrap();
        assert_eq!(back.get("su").unwrap().kind, file("su", b"", 0o4755).kind);
        assert_eq!(back.get("sg").unwrap().kind, file("sg", b"", 0o2755).kind);
    }

    /// The encoding of `entries` with the first occurrence of `find` replaced.
    fn encoded_with(entries: Vec<TreeEntry>, find: &[u8], replace: &[u8]) -> Vec<u8> {
        let mut bytes = Tree::new(entries).unwrap().encode();
        let at = bytes.windows(find.len()).position(|w| w == find).unwrap();
        bytes[at..at + find.len()].copy_from_slice(replace);
        bytes
    }

    #[test]
    fn decode_rejects_unknown_kinds_flags_and_counts() {
        // Kind byte 2 (dir) + mode + opaque 1 → kind 5 / opaque 2.
        let mut m = vec![2u8];
        m.extend_from_slice(&0o755u32.to_le_bytes());
        let d = |opaque| TreeEntry {
            path: "d".into(),
            kind: EntryKind::Dir {
                mode: 0o755,
                opaque,
            },
        };
        let mut kind5 = m.clone();
        kind5[0] = 5;
        let err = Tree::decode(&encoded_with(vec![d(false)], &m, &kind5)).unwrap_err();
        assert!(err.contains("unknown entry kind 5"), "{err}");
        let (mut one, mut two) = (m.clone(), m);
        one.push(1);
        two.push(2);
        let err = Tree::decode(&encoded_with(vec![d(true)], &one, &two)).unwrap_err();
        assert!(err.contains("opaque flag 2"), "{err}");
        // A count beyond the limit is refused before anything is read.
        let mut e = Encoder::new(TREE_DOMAIN, TREE_FORMAT_VERSION);
        e.u64(MAX_TREE_ENTRIES + 1);
        let err = Tree::decode(&e.finish()).unwrap_err();
        assert!(err.contains("entries (at most"), "{err}");
        let mut e = Encoder::new(TREE_DOMAIN, TREE_FORMAT_VERSION);
        e.u64(u64::MAX);
        assert!(Tree::decode(&e.finish()).is_err());
        // Out of order is refused too (sorting is part of the canonical form).
        let bytes =
            Tree::new_unchecked(vec![file("b", b"", 0o644), file("a", b"", 0o644)]).encode();
        let err = Tree::decode(&bytes).unwrap_err();
        assert!(err.contains("out of order"), "{err}");
        let mut bytes = Tree::new(vec![file("a", b"", 0o644)]).unwrap().encode();
        bytes.push(0);
        assert!(Tree::decode(&bytes).unwrap_err().contains("trailing"));
    }

    #[test]
    fn serde_validates_too() {
        #[derive(Serialize)]
        struct Raw {
            entries: Vec<TreeEntry>,
        }
        let raw = Raw {
            entries: vec![link("a", "/etc"), file("a/x", b"", 0o644)],
        };
        let bytes = bincode::serde::encode_to_vec(&raw, bincode::config::standard()).unwrap();
        let res: std::result::Result<(Tree, usize), _> =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard());
        assert!(res.is_err());
        let ok = Tree::new(vec![file("a", b"", 0o644)]).unwrap();
        let bytes = bincode::serde::encode_to_vec(&ok, bincode::config::standard()).unwrap();
        let (back, _): (Tree, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
        assert_eq!(back, ok);
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        fn entry() -> impl Strategy<Value = TreeEntry> {
            let path = proptest::collection::vec(
                prop_oneof![
                    Just("a".to_string()),
                    Just("b".to_string()),
                    Just("..".to_string()),
                    Just(String::new()),
                    "[a-c.]{1,3}",
                ],
                1..4,
            )
            .prop_map(|c| c.join("/"));
            let kind = prop_oneof![
                (any::<u32>(), any::<u64>()).prop_map(|(mode, size)| EntryKind::File {
                    digest: Digest::of_bytes(&size.to_le_bytes()),
                    size,
                    mode: mode & 0o7777,
                }),
                (0u32..0o10000, any::<bool>())
                    .prop_map(|(mode, opaque)| EntryKind::Dir { mode, opaque }),
                "[/a-z.]{0,8}".prop_map(|target| EntryKind::Symlink { target }),
                Just(EntryKind::Whiteout),
            ];
            (path, kind).prop_map(|(path, kind)| TreeEntry { path, kind })
        }

        /// A manifest close to valid: the entries sorted and encoded without
        /// validation (so some are valid trees, some are not).
        fn near_valid() -> impl Strategy<Value = Vec<u8>> {
            proptest::collection::vec(entry(), 0..12).prop_map(|mut v| {
                v.sort_by(|a, b| a.path.cmp(&b.path));
                v.dedup_by(|a, b| a.path == b.path);
                Tree::new_unchecked(v).encode()
            })
        }

        /// Whatever `decode` accepts is a valid tree in canonical form.
        fn check(bytes: &[u8]) {
            if let Ok(t) = Tree::decode(bytes) {
                assert_eq!(t.encode(), bytes, "accepted a non-canonical encoding");
                assert_eq!(Tree::new(t.entries().to_vec()).unwrap(), t);
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn decode_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                check(&bytes);
                // The same bytes behind a valid header reach the entry parser.
                let mut e = Encoder::new(TREE_DOMAIN, TREE_FORMAT_VERSION);
                e.u64(bytes.first().map_or(0, |b| u64::from(*b % 8)));
                let mut framed = e.finish();
                framed.extend_from_slice(&bytes);
                check(&framed);
            }

            #[test]
            fn decode_never_panics_on_mutated_encodings(
                base in near_valid(),
                ops in proptest::collection::vec((any::<usize>(), 0u8..4, any::<u8>()), 0..6),
            ) {
                check(&base);
                let mut b = base;
                for (pos, op, byte) in ops {
                    let p = if b.is_empty() { 0 } else { pos % b.len() };
                    match op {
                        0 if !b.is_empty() => b[p] = byte,
                        1 if !b.is_empty() => b[p] ^= 1 << (byte % 8),
                        2 => b.insert(p, byte),
                        _ => b.truncate(p),
                    }
                }
                check(&b);
            }
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
