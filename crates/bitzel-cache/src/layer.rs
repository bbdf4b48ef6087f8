//! Turning trees back into directories.
//!
//! - [`materialize_layer`] writes one tree as an overlayfs *layer*: deletions
//!   become 0/0 character-device whiteouts and opaque directories get
//!   `user.overlay.opaque=y` (and, when permitted, `trusted.overlay.opaque=y`),
//!   so the directory can be stacked as a lowerdir.
//! - [`apply_trees`] flattens a stack of trees onto a plain directory:
//!   deletions delete, opaque directories are emptied first. For publishing.
//!
//! Every file's content is verified against its digest while it is copied
//! out of the CAS. Trees carry no timestamps (they would break
//! determinism), so times are chosen here:
//!
//! - a **layer** gets one *materialisation stamp* for all its entries: the
//!   current time, strictly later than any stamp this process gave before.
//!   Layers are materialised lowest first, so `make` sees a restored object
//!   as newer than its restored source, and both as newer than the host's
//!   headers (a fixed old date made every object older than `/usr/include`
//!   and Kbuild rebuilt everything); what the task then writes is newer still;
//! - [`apply_trees`] (publishing) uses the fixed [`MATERIALIZED_MTIME`].

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::beneath::{set_fd_times, split_parent, Dir, Found, Parents};
use crate::cas::{Cas, LinkMeta};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::MATERIALIZED_MTIME;
use crate::tree::{EntryKind, Tree};

/// The permission bits a tree file gets on the host: never setuid, setgid
/// or sticky (the tree keeps them as metadata; see ARCHITECTURE.md).
pub fn host_file_mode(mode: u32) -> u32 {
    mode & 0o777
}

/// The permission bits a tree directory gets on the host: never setuid or
/// setgid (sticky is kept), and always the owner's rwx, so the layer can be
/// filled, read and removed by gc.
pub fn host_dir_mode(mode: u32) -> u32 {
    (mode & 0o1777) | 0o700
}

/// The next materialisation stamp `(secs, nsecs)`: now, and strictly after
/// the previous stamp of this process.
fn next_stamp() -> (i64, i64) {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let mut prev = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(prev.saturating_add(1_000));
        match LAST.compare_exchange(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return (next / 1_000_000_000, next % 1_000_000_000),
            Err(p) => prev = p,
        }
    }
}

fn io_at(dest: &Path, rel: &str, op: &'static str) -> impl FnOnce(io::Error) -> Error {
    let path = dest.join(rel);
    move |source| Error::Io { op, path, source }
}

/// A destination directory being written through descriptors, with the
/// parent directory of the previous entry kept open (entries are sorted, so
/// siblings share it).
struct Writer<'a> {
    dest: &'a Path,
    root: Dir,
    parents: Parents,
    cached: Option<(String, Dir)>,
}

impl<'a> Writer<'a> {
    fn open(dest: &'a Path, parents: Parents) -> Result<Writer<'a>> {
        fs::create_dir_all(dest).ctx("create directory", dest)?;
        let root = Dir::open(dest).ctx("open directory", dest)?;
        Ok(Writer {
            dest,
            root,
            parents,
            cached: None,
        })
    }

    /// The directory `parent` (relative; empty = the root), opened beneath
    /// the root without following links; missing or (when replacing)
    /// non-directory components are made directories.
    fn parent_dir(&mut self, parent: &str) -> Result<&Dir> {
        if parent.is_empty() {
            return Ok(&self.root);
        }
        if self.cached.as_ref().is_none_or(|(p, _)| p != parent) {
            let d = self.root.open_beneath(parent, self.parents).map_err(io_at(
                self.dest,
                parent,
                "open directory (without following links)",
            ))?;
            self.cached = Some((parent.to_string(), d));
        }
        match &self.cached {
            Some((_, d)) => Ok(d),
            None => Ok(&self.root),
        }
    }
}

fn set_opaque(dir: &Dir, dest: &Path, rel: &str) -> Result<()> {
    dir.set_xattr_self("user.overlay.opaque", b"y")
        .map_err(io_at(dest, rel, "set user.overlay.opaque on"))?;
    // Only honoured by overlay mounts without `userxattr` (real root); only
    // settable with CAP_SYS_ADMIN. Best effort.
    let _ = dir.set_xattr_self("trusted.overlay.opaque", b"y");
    Ok(())
}

/// Create the file `name` in `dir` with blob `digest`'s content (verified),
/// the host mode for `mode`, optionally `owner`, and the times `stamp`.
fn write_file(
    cas: &Cas,
    dir: &Dir,
    (dest, rel, name): (&Path, &str, &str),
    digest: &crate::digest::Digest,
    mode: u32,
    owner: Option<(u32, u32)>,
    (secs, nsec): (i64, i64),
) -> Result<()> {
    let mut f: File = dir.create_file(name).map_err(io_at(dest, rel, "create"))?;
    let res = (|| {
        cas.copy_to(digest, &mut f, &dest.join(rel))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::fchown(&f, Some(uid), Some(gid))
                .map_err(io_at(dest, rel, "chown"))?;
        }
        f.set_permissions(fs::Permissions::from_mode(host_file_mode(mode)))
            .map_err(io_at(dest, rel, "chmod"))?;
        set_fd_times(&f, secs, nsec).map_err(io_at(dest, rel, "set times on"))
    })();
    if res.is_err() {
        drop(f);
        let _ = dir.remove(name);
    }
    res
}

/// Write `tree` into `dest` (created if missing, expected empty) as an
/// overlayfs layer. Every write is relative to a descriptor of `dest` and
/// follows no link (see `beneath.rs`); no file or directory gets a setuid
/// or setgid bit ([`host_file_mode`], [`host_dir_mode`]). With `owner`,
/// every entry and `dest` itself are given that (uid, gid) (symlinks and
/// whiteouts themselves, not followed), e.g. the unprivileged host uid that
/// a sandbox's root maps to.
pub fn materialize_layer(
    cas: &Cas,
    tree: &Tree,
    dest: &Path,
    owner: Option<(u32, u32)>,
) -> Result<()> {
    let mut w = Writer::open(dest, Parents::Create(owner))?;
    if let Some(o) = owner {
        w.root.chown_self(o).ctx("chown", dest)?;
    }
    let stamp = next_stamp();
    let mut dirs: Vec<(&str, u32)> = Vec::new();
    for e in tree.entries() {
        let rel = e.path.as_str();
        let (parent, name) = split_parent(rel);
        let dir = w.parent_dir(parent)?;
        match &e.kind {
            EntryKind::Dir { mode, opaque } => {
                dir.mkdir(name, 0o700)
                    .map_err(io_at(dest, rel, "create directory"))?;
                if *opaque || owner.is_some() {
                    let sub = dir
                        .open_dir(name)
                        .map_err(io_at(dest, rel, "open directory"))?;
                    if *opaque {
                        set_opaque(&sub, dest, rel)?;
                    }
                    if let Some(o) = owner {
                        sub.chown_self(o).map_err(io_at(dest, rel, "chown"))?;
                    }
                }
                dirs.push((rel, *mode));
            }
            EntryKind::File { digest, mode, .. } => {
                let want = LinkMeta {
                    mode: host_file_mode(*mode),
                    owner,
                    stamp,
                };
                if !cas.link_into(digest, (dir, name, &dest.join(rel)), want)? {
                    write_file(cas, dir, (dest, rel, name), digest, *mode, owner, stamp)?;
                }
            }
            EntryKind::Symlink { target } => {
                dir.symlink(target, name)
                    .map_err(io_at(dest, rel, "create symlink"))?;
                if let Some(o) = owner {
                    dir.chown(name, o).map_err(io_at(dest, rel, "chown"))?;
                }
                dir.set_times(name, stamp)
                    .map_err(io_at(dest, rel, "set times on"))?;
            }
            EntryKind::Whiteout => {
                dir.mknod_whiteout(name).map_err(io_at(
                    dest,
                    rel,
                    "create whiteout (0/0 character device; needs Linux >= 5.8 when unprivileged)",
                ))?;
                if let Some(o) = owner {
                    dir.chown(name, o).map_err(io_at(dest, rel, "chown"))?;
                }
            }
        }
    }
    finish_dirs(&w.root, dest, &dirs, stamp, false)
}

/// Give every directory of `dirs` its host mode and `stamp`, children
/// first, so a read-only directory does not block its children and a
/// parent's mtime is not disturbed afterwards. With `skip_gone`, a
/// directory that later trees deleted or replaced is skipped.
fn finish_dirs(
    root: &Dir,
    dest: &Path,
    dirs: &[(&str, u32)],
    stamp: (i64, i64),
    skip_gone: bool,
) -> Result<()> {
    for (rel, mode) in dirs.iter().rev() {
        let d = match root.open_beneath(rel, Parents::Existing) {
            Ok(d) => d,
            Err(e)
                if skip_gone
                    && matches!(
                        e.raw_os_error(),
                        Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ELOOP)
                    ) =>
            {
                continue
            }
            Err(e) => return Err(io_at(dest, rel, "open directory")(e)),
        };
        d.chmod_self(host_dir_mode(*mode))
            .map_err(io_at(dest, rel, "chmod"))?;
        d.set_times_self(stamp)
            .map_err(io_at(dest, rel, "set times on"))?;
    }
    Ok(())
}

/// Apply `trees` in order (lowest first) onto the plain directory `dest`
/// (created if missing): later trees override earlier ones, whiteouts
/// delete, opaque directories drop what earlier trees (or `dest`) had there.
/// As in [`materialize_layer`], everything goes through descriptors and no
/// link is followed: a symlink (or file) where a tree needs a directory is
/// replaced by one, and removals remove links, never their targets. No
/// setuid or setgid bit is set.
pub fn apply_trees(cas: &Cas, trees: &[Tree], dest: &Path) -> Result<()> {
    let mut w = Writer::open(dest, Parents::Replace)?;
    let stamp = (MATERIALIZED_MTIME, 0);
    let mut dirs: Vec<(&str, u32)> = Vec::new();
    for tree in trees {
        // A later tree may remove what an earlier one's cached parent was.
        w.cached = None;
        for e in tree.entries() {
            let rel = e.path.as_str();
            let (parent, name) = split_parent(rel);
            let dir = w.parent_dir(parent)?;
            let remove = |dir: &Dir| dir.remove(name).map_err(io_at(dest, rel, "remove"));
            match &e.kind {
                EntryKind::Whiteout => remove(dir)?,
                EntryKind::Dir { mode, opaque } => {
                    match dir.kind(name).map_err(io_at(dest, rel, "stat"))? {
                        Some(Found::Dir) if *opaque => {
                            dir.open_dir(name).and_then(|d| d.clear()).map_err(io_at(
                                dest,
                                rel,
                                "empty opaque directory",
                            ))?
                        }
                        Some(Found::Dir) => {}
                        found => {
                            if found.is_some() {
                                remove(dir)?;
                            }
                            dir.mkdir(name, 0o700)
                                .map_err(io_at(dest, rel, "create directory"))?;
                        }
                    }
                    dirs.push((rel, *mode));
                }
                EntryKind::File { digest, mode, .. } => {
                    remove(dir)?;
                    write_file(cas, dir, (dest, rel, name), digest, *mode, None, stamp)?;
                }
                EntryKind::Symlink { target } => {
                    remove(dir)?;
                    dir.symlink(target, name)
                        .map_err(io_at(dest, rel, "create symlink"))?;
                }
            }
        }
    }
    finish_dirs(&w.root, dest, &dirs, stamp, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::TreeEntry;
    use std::os::unix::fs::MetadataExt;

    struct Fixture {
        _t: tempfile::TempDir,
        cas: Cas,
        dest: std::path::PathBuf,
        outside: tempfile::TempDir,
    }

    fn fixture() -> Fixture {
        let t = tempfile::tempdir().unwrap();
        let cas = Cas::open(&t.path().join("cas"), &t.path().join("tmp")).unwrap();
        let dest = t.path().join("dest");
        Fixture {
            _t: t,
            cas,
            dest,
            outside: tempfile::tempdir().unwrap(),
        }
    }

    impl Fixture {
        fn file(&self, path: &str, content: &[u8], mode: u32) -> TreeEntry {
            let digest = self.cas.put_bytes(content).unwrap();
            TreeEntry {
                path: path.into(),
                kind: EntryKind::File {
                    digest,
                    size: content.len() as u64,
                    mode,
                },
            }
        }

        fn outside_is_empty(&self) {
            let left: Vec<_> = fs::read_dir(self.outside.path())
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            assert!(left.is_empty(), "written outside dest: {left:?}");
        }

        fn link_in_dest(&self, name: &str) {
            fs::create_dir_all(&self.dest).unwrap();
            std::os::unix::fs::symlink(self.outside.path(), self.dest.join(name)).unwrap();
        }

        fn outside_str(&self) -> String {
            self.outside.path().to_str().unwrap().to_string()
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

    fn dir(path: &str, mode: u32, opaque: bool) -> TreeEntry {
        TreeEntry {
            path: path.into(),
            kind: EntryKind::Dir { mode, opaque },
        }
    }

    fn mode_of(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn a_layer_never_writes_through_a_symlink_already_in_dest() {
        // A valid tree whose parent `a` is absent (a delta): dest already
        // holds `a -> outside`. The write must fail, not land outside.
        let f = fixture();
        f.link_in_dest("a");
        for path in ["a/x", "a/sub/x"] {
            let tree = Tree::new(vec![f.file(path, b"pwned", 0o644)]).unwrap();
            let err = materialize_layer(&f.cas, &tree, &f.dest, None).unwrap_err();
            assert!(err.to_string().contains("dest/a"), "{err}");
            f.outside_is_empty();
        }
        // Nor through a directory entry whose name is taken by the link.
        let tree = Tree::new(vec![dir("a", 0o755, true), f.file("a/y", b"", 0o644)]).unwrap();
        assert!(materialize_layer(&f.cas, &tree, &f.dest, None).is_err());
        f.outside_is_empty();
    }

    #[test]
    fn an_unvalidated_escaping_tree_cannot_write_outside() {
        // Trees that validation refuses, materialised anyway: the
        // descriptor-relative writes are a second line of defence.
        let f = fixture();
        let out = f.outside_str();
        let cases = vec![
            vec![link("a", &out), f.file("a/x", b"pwned", 0o644)],
            vec![f.file(&format!("{out}/abs"), b"pwned", 0o644)],
            vec![f.file(
                &format!("{}{}/dotdot", "../".repeat(16), &out[1..]),
                b"pwned",
                0o644,
            )],
            vec![
                dir("d", 0o755, false),
                f.file("d/../../escape", b"pwned", 0o644),
            ],
        ];
        for (i, entries) in cases.into_iter().enumerate() {
            let dest = f.dest.join(i.to_string());
            let tree = Tree::new_unchecked(entries.clone());
            let _ = materialize_layer(&f.cas, &tree, &dest, None);
            f.outside_is_empty();
            let dest = f.dest.join(format!("apply{i}"));
            let _ = apply_trees(&f.cas, &[tree], &dest);
            f.outside_is_empty();
            assert!(!f.dest.parent().unwrap().join("escape").exists());
        }
    }

    #[test]
    fn apply_replaces_and_removes_links_without_following_them() {
        let f = fixture();
        fs::write(f.outside.path().join("keep"), b"k").unwrap();
        let snapshot = || {
            let mut v: Vec<_> = fs::read_dir(f.outside.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            v.sort();
            v
        };
        let before = snapshot();
        for name in ["a", "w", "o", "f"] {
            f.link_in_dest(name);
        }
        let tree = Tree::new(vec![
            f.file("a/x", b"in dest", 0o644),
            TreeEntry {
                path: "w".into(),
                kind: EntryKind::Whiteout,
            },
            dir("o", 0o755, true),
            f.file("f", b"file", 0o644),
        ])
        .unwrap();
        apply_trees(&f.cas, &[tree], &f.dest).unwrap();
        assert_eq!(fs::read(f.dest.join("a/x")).unwrap(), b"in dest");
        assert!(!f.dest.join("a").is_symlink());
        assert!(fs::symlink_metadata(f.dest.join("w")).is_err());
        assert!(f.dest.join("o").is_dir() && !f.dest.join("o").is_symlink());
        assert!(!f.dest.join("f").is_symlink());
        assert_eq!(snapshot(), before, "apply changed the outside directory");
        // A lower tree's symlink, then a higher tree's file below it.
        let out = f.outside_str();
        let low = Tree::new(vec![link("s", &out)]).unwrap();
        let high = Tree::new(vec![f.file("s/x", b"high", 0o644)]).unwrap();
        apply_trees(&f.cas, &[low, high], &f.dest).unwrap();
        assert_eq!(fs::read(f.dest.join("s/x")).unwrap(), b"high");
        assert_eq!(snapshot(), before);
    }

    #[test]
    fn setuid_and_setgid_are_never_materialised() {
        let f = fixture();
        let tree = Tree::new(vec![
            dir("d", 0o6775, false),
            dir("sticky", 0o1777, false),
            f.file("d/su", b"#!/bin/sh\n", 0o4755),
            f.file("sg", b"", 0o2711),
            f.file("st", b"", 0o1644),
        ])
        .unwrap();
        assert_eq!(
            tree.get("d/su").unwrap().kind,
            f.file("d/su", b"#!/bin/sh\n", 0o4755).kind,
            "the tree keeps the bits"
        );
        let layer = f.dest.join("layer");
        materialize_layer(&f.cas, &tree, &layer, None).unwrap();
        let flat = f.dest.join("flat");
        apply_trees(&f.cas, std::slice::from_ref(&tree), &flat).unwrap();
        for root in [&layer, &flat] {
            assert_eq!(mode_of(&root.join("d")), 0o775, "{}", root.display());
            assert_eq!(mode_of(&root.join("sticky")), 0o1777);
            assert_eq!(mode_of(&root.join("d/su")), 0o755);
            assert_eq!(mode_of(&root.join("sg")), 0o711);
            assert_eq!(mode_of(&root.join("st")), 0o644);
        }
    }

    #[test]
    #[ignore = "needs root: run by scripts/test.d/15-cache-root.sh"]
    fn as_root_layer_owner_is_applied_to_every_entry() {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "this test changes owners and must run as root (scripts/test.d/15-cache-root.sh)"
        );
        let f = fixture();
        let owner = (54_321, 54_322);
        let tree = Tree::new(vec![
            dir("d", 0o755, true),
            f.file("d/f", b"x", 0o4755),
            link("d/l", "/etc/passwd"),
            TreeEntry {
                path: "d/w".into(),
                kind: EntryKind::Whiteout,
            },
            f.file("implicit/parent/f", b"y", 0o644),
        ])
        .unwrap();
        materialize_layer(&f.cas, &tree, &f.dest, Some(owner)).unwrap();
        let mut seen = 0;
        for e in walkdir::WalkDir::new(&f.dest) {
            let e = e.unwrap();
            let md = fs::symlink_metadata(e.path()).unwrap();
            assert_eq!((md.uid(), md.gid()), owner, "{}", e.path().display());
            assert_eq!(md.mode() & 0o6000, 0, "{}", e.path().display());
            seen += 1;
        }
        assert_eq!(
            seen, 8,
            "root, d, d/f, d/l, d/w, implicit, implicit/parent, its f"
        );
        // The symlink's target was not touched.
        assert_eq!(fs::metadata("/etc/passwd").unwrap().uid(), 0);
    }
}
