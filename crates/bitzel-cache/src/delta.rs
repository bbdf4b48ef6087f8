//! Output deltas without overlayfs, for the sandbox backends that cannot
//! mount (`none`, `sandbox-exec`).
//!
//! A namespaced backend gives a task an overlay of its recipe's earlier
//! outputs and captures the upperdir. Without mounts the same meaning is
//! emulated in two steps:
//!
//! 1. [`prepare_work_dir`] flattens the layers onto a plain directory with
//!    [`apply_trees`] (file contents are **copied** out of the CAS, so a task
//!    cannot change a cached layer), gives every entry the time stamp of the
//!    layer it came from (lowest layer oldest, all of them a little in the
//!    past, as materialised layers are stamped), and records a [`Baseline`]:
//!    each entry's inode, kind, mode, size, link count, mtime and ctime.
//! 2. After the run, [`capture_delta`] compares the directory with the
//!    baseline and describes what an overlay upperdir would hold:
//!    - a new entry, or one whose inode, kind, mode, size, link count, mtime
//!      or ctime changed (a write, `chmod`, `touch`, a rename over it: every
//!      operation that makes overlayfs copy a file up), with its current
//!      content;
//!    - a whiteout for every baseline entry that is gone (one for a removed
//!      directory, none for what was below it);
//!    - a directory that replaced something (a different inode, or a
//!      directory where a file was) as an **opaque** directory listed with
//!      everything below it, as overlayfs marks a directory created over a
//!      whiteout;
//!    - every directory above an entry of the delta (overlayfs copies the
//!      parents up), with its current mode.
//!
//! A directory is the same one when its inode number, birth time and inode
//! generation (where the filesystem has them) are: ext4 gives a re-created
//! directory its old inode number back at once, but a new generation. Where
//! neither birth time nor generation exists, such a directory is described by
//! whiteouts for its old children rather than as opaque (the same merged view,
//! a different tree). A file rewritten by the task with its size, mode, mtime
//! and link count restored within one clock tick of the preparation is
//! missed. Trees carry no times, so a delta never records the stamps.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::beneath::{split_parent, Dir, Parents};
use crate::cas::Cas;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::layer::apply_trees;
use crate::tree::{fill_file_digests, uncacheable, CaptureStats, EntryKind, Tree, TreeEntry};

/// What kind of file an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    Symlink,
}

/// What the baseline remembers of one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    kind: Kind,
    ino: u64,
    mode: u32,
    size: u64,
    nlink: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    /// Directories only: birth time and inode generation, where the filesystem has them, so
    /// a directory removed and made again is told apart even when it gets its old inode
    /// number back (ext4 hands it out again at once).
    born: Option<std::time::SystemTime>,
    generation: Option<libc::c_long>,
}

/// The state of a prepared work directory before the task ran: for every
/// directory (by relative path, `""` for the root) its children's stamps.
#[derive(Clone, Debug, Default)]
pub struct Baseline {
    dirs: HashMap<String, BTreeMap<String, Stamp>>,
}

impl Baseline {
    /// Record the current state of `root`.
    pub fn record(root: &Path) -> Result<Baseline> {
        let mut dirs: HashMap<String, BTreeMap<String, Stamp>> = HashMap::new();
        let mut stack = vec![(root.to_path_buf(), String::new())];
        while let Some((abs, rel)) = stack.pop() {
            let mut children = BTreeMap::new();
            for (name, path, md) in list(&abs)? {
                let stamp = stamp_of(&path, &md)?;
                let crel = join(&rel, &name);
                if stamp.kind == Kind::Dir {
                    stack.push((path, crel));
                }
                children.insert(name, stamp);
            }
            dirs.insert(rel, children);
        }
        Ok(Baseline { dirs })
    }

    /// Number of entries recorded (the root excluded).
    pub fn len(&self) -> usize {
        self.dirs.values().map(BTreeMap::len).sum()
    }

    /// True when the directory was empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn join(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_string()
    } else {
        format!("{rel}/{name}")
    }
}

/// The entries of a directory: (UTF-8 name, path, metadata without following links).
fn list(dir: &Path) -> Result<Vec<(String, PathBuf, fs::Metadata)>> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).ctx("list", dir)? {
        let e = e.ctx("list", dir)?;
        let path = e.path();
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            return Err(Error::Unsupported {
                path,
                reason: "file name is not valid UTF-8 (rename it in the task)".into(),
            });
        };
        let md = fs::symlink_metadata(&path).ctx("stat", &path)?;
        out.push((name, path, md));
    }
    Ok(out)
}

fn stamp_of(path: &Path, md: &fs::Metadata) -> Result<Stamp> {
    let ft = md.file_type();
    let kind = if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        Kind::Symlink
    } else if ft.is_file() {
        Kind::File
    } else {
        return Err(uncacheable(path, ft));
    };
    let dir = kind == Kind::Dir;
    Ok(Stamp {
        kind,
        born: md.created().ok().filter(|_| dir),
        generation: if dir { generation(path) } else { None },
        ino: md.ino(),
        mode: md.mode() & 0o7777,
        size: md.size(),
        nlink: md.nlink(),
        mtime: (md.mtime(), md.mtime_nsec()),
        ctime: (md.ctime(), md.ctime_nsec()),
    })
}

/// The inode generation of a directory (`FS_IOC_GETVERSION`), where the filesystem keeps one.
#[cfg(target_os = "linux")]
fn generation(dir: &Path) -> Option<libc::c_long> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(dir)
        .ok()?;
    let mut v: libc::c_long = 0;
    // SAFETY: an open descriptor and a pointer to a long the kernel writes (at most) into.
    let rc = unsafe { libc::ioctl(f.as_raw_fd(), libc::FS_IOC_GETVERSION, &mut v) };
    (rc == 0).then_some(v)
}

#[cfg(not(target_os = "linux"))]
fn generation(_dir: &Path) -> Option<libc::c_long> {
    None
}

/// Flatten `trees` (lowest first) onto `dest` (created; expected absent or
/// empty) as a task's writable work directory, stamp every entry with the
/// time of the layer it came from, and record the [`Baseline`].
pub fn prepare_work_dir(cas: &Cas, trees: &[Tree], dest: &Path) -> Result<Baseline> {
    apply_trees(cas, trees, dest)?;
    // The layer each surviving path came from: the last tree that wrote it.
    let mut origin: HashMap<&str, usize> = HashMap::new();
    for (i, t) in trees.iter().enumerate() {
        for e in t.entries() {
            if e.kind != EntryKind::Whiteout {
                origin.insert(e.path.as_str(), i);
            }
        }
    }
    // Two seconds in the past (whole seconds): older than anything the
    // task writes, newer than the host's headers; later layers newer by
    // one microsecond each, as materialised layers are stamped in order.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let secs = now.saturating_sub(2);
    let root = Dir::open(dest).ctx("open", dest)?;
    for (path, i) in origin {
        let nsec = i64::try_from(i.min(999_999)).unwrap_or(0) * 1_000;
        let (parent, name) = split_parent(path);
        let set = root
            .open_beneath(parent, Parents::Existing)
            .and_then(|d| d.set_times(name, (secs, nsec)));
        match set {
            Ok(()) => {}
            // Removed by a later layer's whiteout or opaque directory.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).ctx("set times on", dest.join(path)),
        }
    }
    Baseline::record(dest)
}

/// Describe what changed in `root` since `base` as an overlay upperdir
/// would (see the module documentation). With `store`, the content of every
/// file in the delta is copied into that CAS.
pub fn capture_delta(
    root: &Path,
    base: &Baseline,
    store: Option<&Cas>,
) -> Result<(Tree, CaptureStats)> {
    let mut entries: Vec<TreeEntry> = Vec::new();
    let mut pending: Vec<(usize, PathBuf)> = Vec::new();
    let mut stats = CaptureStats::default();
    // Directories kept from the baseline, unchanged themselves: in the delta
    // only if something below them is.
    let mut kept: HashMap<String, u32> = HashMap::new();
    // (absolute path, relative path, whether the baseline applies below it)
    let mut stack = vec![(root.to_path_buf(), String::new(), true)];
    while let Some((abs, rel, compare)) = stack.pop() {
        let before = if compare { base.dirs.get(&rel) } else { None };
        let mut present = BTreeSet::new();
        for (name, path, md) in list(&abs)? {
            let now = stamp_of(&path, &md)?;
            let crel = join(&rel, &name);
            let old = before.and_then(|b| b.get(&name));
            present.insert(name);
            match now.kind {
                Kind::Dir => {
                    let replaced = old.is_some_and(|o| {
                        o.kind != Kind::Dir
                            || (o.ino, o.born, o.generation) != (now.ino, now.born, now.generation)
                    });
                    if old.is_none() || replaced {
                        stats.dirs += 1;
                        stats.opaque_dirs += u64::from(replaced);
                        entries.push(TreeEntry {
                            path: crel.clone(),
                            kind: EntryKind::Dir {
                                mode: now.mode,
                                opaque: replaced,
                            },
                        });
                        stack.push((path, crel, false));
                    } else {
                        if old == Some(&now) {
                            kept.insert(crel.clone(), now.mode);
                        } else {
                            stats.dirs += 1;
                            entries.push(TreeEntry {
                                path: crel.clone(),
                                kind: EntryKind::Dir {
                                    mode: now.mode,
                                    opaque: false,
                                },
                            });
                        }
                        stack.push((path, crel, true));
                    }
                }
                _ if old == Some(&now) => {}
                Kind::Symlink => {
                    let t = fs::read_link(&path).ctx("read symlink", &path)?;
                    let Some(target) = t.to_str() else {
                        return Err(Error::Unsupported {
                            path,
                            reason: "symlink target is not valid UTF-8".into(),
                        });
                    };
                    stats.symlinks += 1;
                    entries.push(TreeEntry {
                        path: crel,
                        kind: EntryKind::Symlink {
                            target: target.to_string(),
                        },
                    });
                }
                Kind::File => {
                    stats.files += 1;
                    stats.bytes += now.size;
                    pending.push((entries.len(), path));
                    entries.push(TreeEntry {
                        path: crel,
                        kind: EntryKind::File {
                            digest: Digest([0; 32]),
                            size: now.size,
                            mode: now.mode,
                        },
                    });
                }
            }
        }
        for name in before.into_iter().flat_map(BTreeMap::keys) {
            if !present.contains(name) {
                stats.whiteouts += 1;
                entries.push(TreeEntry {
                    path: join(&rel, name),
                    kind: EntryKind::Whiteout,
                });
            }
        }
    }
    // Overlayfs copies up the parents of everything it copies up.
    let mut parents = Vec::new();
    for e in &entries {
        let mut p = e.path.as_str();
        while let Some((parent, _)) = p.rsplit_once('/') {
            if let Some(mode) = kept.remove(parent) {
                stats.dirs += 1;
                parents.push(TreeEntry {
                    path: parent.to_string(),
                    kind: EntryKind::Dir {
                        mode,
                        opaque: false,
                    },
                });
            }
            p = parent;
        }
    }
    entries.extend(parents);
    fill_file_digests(&mut entries, &pending, store)?;
    Ok((Tree::new(entries)?, stats))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{symlink, PermissionsExt};

    use super::*;

    fn file(path: &str, content: &[u8]) -> TreeEntry {
        TreeEntry {
            path: path.into(),
            kind: EntryKind::File {
                digest: Digest::of_bytes(content),
                size: content.len() as u64,
                mode: 0o644,
            },
        }
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

    /// A CAS holding `blobs`, and a two-layer stack over it.
    fn setup(t: &Path) -> (Cas, Vec<Tree>) {
        let cas = Cas::open(&t.join("cas"), &t.join("tmp")).unwrap();
        for b in [&b"a\n"[..], b"b\n", b"c\n", b"keep\n", b"old\n", b"lower\n"] {
            cas.put_bytes(b).unwrap();
        }
        let lower = Tree::new(vec![
            dir("src"),
            file("src/a.c", b"a\n"),
            file("src/b.c", b"b\n"),
            dir("src/sub"),
            file("src/sub/c.c", b"c\n"),
            dir("untouched"),
            file("untouched/keep", b"keep\n"),
            dir("gone"),
            file("gone/x", b"old\n"),
            dir("replaced"),
            file("replaced/old", b"old\n"),
            file("becomes-dir", b"old\n"),
            file("lower-only", b"lower\n"),
        ])
        .unwrap();
        let upper = Tree::new(vec![
            TreeEntry {
                path: "lower-only".into(),
                kind: EntryKind::Whiteout,
            },
            file("src/b.c", b"c\n"),
        ])
        .unwrap();
        (cas, vec![lower, upper])
    }

    fn kinds(t: &Tree) -> Vec<String> {
        t.entries()
            .iter()
            .map(|e| {
                let k = match &e.kind {
                    EntryKind::File { mode, .. } => format!("file {mode:o}"),
                    EntryKind::Dir { opaque: true, .. } => "opaque dir".into(),
                    EntryKind::Dir { .. } => "dir".into(),
                    EntryKind::Symlink { target } => format!("-> {target}"),
                    EntryKind::Whiteout => "whiteout".into(),
                };
                format!("{} {k}", e.path)
            })
            .collect()
    }

    #[test]
    fn the_flattened_work_dir_holds_the_stack_stamped_in_the_past() {
        let t = tempfile::tempdir().unwrap();
        let (cas, trees) = setup(t.path());
        let w = t.path().join("work");
        let base = prepare_work_dir(&cas, &trees, &w).unwrap();
        assert_eq!(fs::read(w.join("src/b.c")).unwrap(), b"c\n");
        assert!(!w.join("lower-only").exists());
        assert_eq!(base.len(), 12);
        let old = fs::metadata(w.join("src/a.c")).unwrap().modified().unwrap();
        let newer = fs::metadata(w.join("src/b.c")).unwrap().modified().unwrap();
        assert!(newer > old, "the upper layer's file is newer");
        assert!(newer < std::time::SystemTime::now());
        // An unchanged directory has an empty delta.
        let (delta, stats) = capture_delta(&w, &base, None).unwrap();
        assert!(delta.is_empty(), "{:?}", kinds(&delta));
        assert_eq!(stats, CaptureStats::default());
    }

    #[test]
    fn the_delta_is_what_an_overlay_upperdir_would_hold() {
        let t = tempfile::tempdir().unwrap();
        let (cas, trees) = setup(t.path());
        let w = t.path().join("work");
        let base = prepare_work_dir(&cas, &trees, &w).unwrap();
        // Modify, delete, replace, add, chmod, symlink.
        fs::write(w.join("src/a.c"), "a changed\n").unwrap();
        fs::remove_file(w.join("src/sub/c.c")).unwrap();
        fs::remove_dir_all(w.join("gone")).unwrap();
        // A directory removed and made again (renaming a fresh directory
        // over it guarantees a new inode).
        fs::create_dir(w.join("fresh")).unwrap();
        fs::write(w.join("fresh/new"), "n\n").unwrap();
        fs::remove_dir_all(w.join("replaced")).unwrap();
        fs::rename(w.join("fresh"), w.join("replaced")).unwrap();
        fs::remove_file(w.join("becomes-dir")).unwrap();
        fs::create_dir(w.join("becomes-dir")).unwrap();
        fs::create_dir_all(w.join("build/obj")).unwrap();
        fs::write(w.join("build/obj/a.o"), "obj\n").unwrap();
        fs::set_permissions(w.join("src/b.c"), fs::Permissions::from_mode(0o600)).unwrap();
        symlink("../src/a.c", w.join("build/link")).unwrap();

        let (delta, stats) = capture_delta(&w, &base, Some(&cas)).unwrap();
        expect_test::expect![[r#"
            [
                "becomes-dir opaque dir",
                "build dir",
                "build/link -> ../src/a.c",
                "build/obj dir",
                "build/obj/a.o file 644",
                "gone whiteout",
                "replaced opaque dir",
                "replaced/new file 644",
                "src dir",
                "src/a.c file 644",
                "src/b.c file 600",
                "src/sub dir",
                "src/sub/c.c whiteout",
            ]
        "#]]
        .assert_debug_eq(&kinds(&delta));
        assert_eq!(stats.whiteouts, 2);
        assert_eq!(stats.opaque_dirs, 2);
        assert_eq!(stats.files, 4);
        // The contents are in the CAS.
        let EntryKind::File { digest, .. } = &delta.get("src/a.c").unwrap().kind else {
            panic!("not a file")
        };
        assert_eq!(cas.read(digest).unwrap(), b"a changed\n");
        // Applied over the lower layers, the delta gives the directory as it is now.
        let again = t.path().join("again");
        let mut stack = trees.clone();
        stack.push(delta);
        apply_trees(&cas, &stack, &again).unwrap();
        let (now, _) = crate::tree::capture(&w, None).unwrap();
        let (rebuilt, _) = crate::tree::capture(&again, None).unwrap();
        assert_eq!(now, rebuilt);
    }

    #[test]
    fn a_directory_made_again_in_place_is_opaque() {
        let t = tempfile::tempdir().unwrap();
        let (cas, trees) = setup(t.path());
        let w = t.path().join("work");
        let base = prepare_work_dir(&cas, &trees, &w).unwrap();
        // ext4 tends to give the new directory the old inode number: try for that case.
        let ino = |p: &Path| fs::symlink_metadata(p).unwrap().ino();
        let old = ino(&w.join("replaced"));
        fs::remove_dir_all(w.join("replaced")).unwrap();
        fs::create_dir(w.join("replaced")).unwrap();
        for _ in 0..20 {
            if ino(&w.join("replaced")) == old {
                break;
            }
            fs::remove_dir(w.join("replaced")).unwrap();
            fs::create_dir(w.join("replaced")).unwrap();
        }
        let (delta, _) = capture_delta(&w, &base, None).unwrap();
        assert_eq!(kinds(&delta), ["replaced opaque dir"]);
    }

    #[test]
    fn a_rewrite_with_the_same_content_is_copied_up_as_overlayfs_would() {
        let t = tempfile::tempdir().unwrap();
        let (cas, trees) = setup(t.path());
        let w = t.path().join("work");
        let base = prepare_work_dir(&cas, &trees, &w).unwrap();
        fs::write(w.join("untouched/keep"), "keep\n").unwrap();
        let (delta, _) = capture_delta(&w, &base, None).unwrap();
        assert_eq!(kinds(&delta), ["untouched dir", "untouched/keep file 644"]);
    }

    #[test]
    fn a_fifo_is_refused_with_its_path() {
        let t = tempfile::tempdir().unwrap();
        let w = t.path().join("work");
        fs::create_dir(&w).unwrap();
        let base = Baseline::record(&w).unwrap();
        let p = w.join("pipe");
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let e = capture_delta(&w, &base, None).unwrap_err().to_string();
        assert!(e.contains("pipe") && e.contains("named pipe"), "{e}");
    }
}
