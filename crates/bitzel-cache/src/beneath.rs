//! Writing below a directory without ever following a link: every operation
//! is relative to a directory file descriptor. Parents are opened with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`
//! or, on kernels without `openat2` (before 5.6), an equivalent walk of
//! `openat(O_DIRECTORY | O_NOFOLLOW)` one component at a time; leaves are
//! created with `mkdirat`/`symlinkat`/`mknodat`/`openat(O_CREAT | O_EXCL |
//! O_NOFOLLOW)` and changed with `fchmod`/`futimens`/`fchown` on their own
//! descriptor or `utimensat`/`fchownat(AT_SYMLINK_NOFOLLOW)`. Removal
//! recurses through descriptors too, so nothing here can be made to write,
//! change or delete outside the directory it started from, whatever links
//! were placed inside it.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// Cleared the first time `openat2` answers `ENOSYS` (or `E2BIG`/`EINVAL`
/// for the struct itself): every later open walks instead.
static OPENAT2: AtomicBool = AtomicBool::new(true);

/// Deepest directory nesting [`Dir::remove`] descends into.
const MAX_REMOVE_DEPTH: usize = 1024;

/// What to do about the parent components of a path that are not
/// directories (missing, or something else).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Parents {
    /// Fail: `ENOENT` when missing, `ENOTDIR`/`ELOOP` when not a directory.
    Existing,
    /// Create missing directories (mode 0755, given this owner when set);
    /// fail on non-directories.
    Create(Option<(u32, u32)>),
    /// Create missing directories and replace anything else (a file, a
    /// symlink — removed, never followed) by a directory.
    Replace,
}

/// What [`Dir::kind`] found at a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// A directory.
    Dir,
    /// Anything else (file, symlink, device node, ...).
    Other,
}

fn einval(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what.to_string())
}

/// One path component as a C string: refuses empty names, `.`, `..`, `/`
/// and NUL, so no name handed to an `*at` call can leave its directory.
fn component(name: &str) -> io::Result<CString> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(einval("not a single path component"));
    }
    CString::new(name).map_err(|_| einval("name contains a NUL byte"))
}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// An open directory that operations are relative to.
#[derive(Debug)]
pub(crate) struct Dir {
    fd: OwnedFd,
}

impl Dir {
    /// Open the directory `path`. The path itself is trusted and resolved
    /// normally (it is the caller's own: a temp dir in the cache, or a
    /// configured deploy directory, which may well be a symlink); only what
    /// is opened *below* it is confined.
    pub(crate) fn open(path: &Path) -> io::Result<Dir> {
        let p = CString::new(std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()))
            .map_err(|_| einval("path contains a NUL byte"))?;
        // SAFETY: a valid C string; the returned fd is owned below.
        let fd = cvt(unsafe {
            libc::open(
                p.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })?;
        // SAFETY: `fd` was just opened and is owned by nobody else.
        Ok(Dir {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    fn raw(&self) -> libc::c_int {
        self.fd.as_raw_fd()
    }

    /// The directory `name` directly inside this one (not a symlink).
    pub(crate) fn open_dir(&self, name: &str) -> io::Result<Dir> {
        let c = component(name)?;
        self.open_dir_c(&c)
    }

    fn open_dir_c(&self, name: &CStr) -> io::Result<Dir> {
        // SAFETY: a valid dirfd and C string; the fd is owned below.
        let fd = cvt(unsafe {
            libc::openat(
                self.raw(),
                name.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        })?;
        // SAFETY: `fd` was just opened and is owned by nobody else.
        Ok(Dir {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    fn duplicate(&self) -> io::Result<Dir> {
        Ok(Dir {
            fd: self.fd.try_clone()?,
        })
    }

    /// The directory at the relative path `rel` below this one, without
    /// following any symlink or leaving this directory; `rel` empty is this
    /// directory. `parents` says what to do with components that are missing
    /// or not directories (including the last one).
    pub(crate) fn open_beneath(&self, rel: &str, parents: Parents) -> io::Result<Dir> {
        if rel.is_empty() {
            return self.duplicate();
        }
        if OPENAT2.load(Ordering::Relaxed) {
            match self.openat2_dir(rel) {
                Ok(d) => return Ok(d),
                Err(e) => match e.raw_os_error() {
                    Some(libc::ENOSYS) | Some(libc::E2BIG) => {
                        tracing::debug!(
                            "openat2 unavailable ({e}); walking paths one component at a time"
                        );
                        OPENAT2.store(false, Ordering::Relaxed);
                    }
                    // A concurrent rename during resolution: the walk is exact.
                    Some(libc::EAGAIN) => {}
                    _ if parents == Parents::Existing => return Err(e),
                    // Missing or not a directory: the walk creates or replaces.
                    _ => {}
                },
            }
        }
        self.walk(rel, parents)
    }

    fn openat2_dir(&self, rel: &str) -> io::Result<Dir> {
        let p = CString::new(rel).map_err(|_| einval("path contains a NUL byte"))?;
        // SAFETY: `open_how` is plain data; all-zero is its valid default.
        let mut how: libc::open_how = unsafe { std::mem::zeroed() };
        how.flags = (libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            as libc::__u64;
        how.resolve =
            libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
        // SAFETY: a valid dirfd, C string and `open_how` of the size passed.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                self.raw(),
                p.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = libc::c_int::try_from(rc).map_err(|_| einval("fd out of range"))?;
        // SAFETY: `fd` was just opened and is owned by nobody else.
        Ok(Dir {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// `openat2`'s guarantee by hand: one `openat(O_DIRECTORY | O_NOFOLLOW)`
    /// per component, each relative to the previous one.
    pub(crate) fn walk(&self, rel: &str, parents: Parents) -> io::Result<Dir> {
        let mut cur = self.duplicate()?;
        for comp in rel.split('/') {
            let c = component(comp)?;
            cur = match cur.open_dir_c(&c) {
                Ok(d) => d,
                Err(e) => {
                    let missing = e.raw_os_error() == Some(libc::ENOENT);
                    let not_dir =
                        matches!(e.raw_os_error(), Some(libc::ENOTDIR) | Some(libc::ELOOP));
                    let owner = match parents {
                        Parents::Create(owner) if missing => owner,
                        Parents::Replace if missing => None,
                        Parents::Replace if not_dir => {
                            cur.remove_c(&c, 0)?;
                            None
                        }
                        _ => return Err(e),
                    };
                    match cur.mkdir_c(&c, 0o755) {
                        Ok(()) => {}
                        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                        Err(e) => return Err(e),
                    }
                    let made = cur.open_dir_c(&c)?;
                    if let Some(o) = owner {
                        made.chown_self(o)?;
                    }
                    made
                }
            };
        }
        Ok(cur)
    }

    fn mkdir_c(&self, name: &CStr, mode: u32) -> io::Result<()> {
        // SAFETY: a valid dirfd and C string.
        cvt(unsafe { libc::mkdirat(self.raw(), name.as_ptr(), mode as libc::mode_t) }).map(drop)
    }

    /// Create the directory `name` (fails if anything is there).
    pub(crate) fn mkdir(&self, name: &str, mode: u32) -> io::Result<()> {
        self.mkdir_c(&component(name)?, mode)
    }

    /// Create the regular file `name` for writing, mode 0600 until the
    /// caller sets the final one. Fails if anything (a symlink included) is
    /// there.
    pub(crate) fn create_file(&self, name: &str) -> io::Result<File> {
        let c = component(name)?;
        // SAFETY: a valid dirfd and C string; the fd is owned below.
        let fd = cvt(unsafe {
            libc::openat(
                self.raw(),
                c.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o600 as libc::c_uint,
            )
        })?;
        // SAFETY: `fd` was just opened and is owned by nobody else.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// Create the symlink `name` → `target` (the target is never resolved).
    pub(crate) fn symlink(&self, target: &str, name: &str) -> io::Result<()> {
        let c = component(name)?;
        let t = CString::new(target).map_err(|_| einval("target contains a NUL byte"))?;
        // SAFETY: valid C strings and dirfd.
        cvt(unsafe { libc::symlinkat(t.as_ptr(), self.raw(), c.as_ptr()) }).map(drop)
    }

    /// Make `name` a new hard link to the file at `target` (a path outside
    /// this directory, e.g. a CAS blob; a symlink there is not followed, it
    /// would be linked itself). Fails if anything is at `name`.
    pub(crate) fn hard_link(&self, target: &Path, name: &str) -> io::Result<()> {
        let c = component(name)?;
        let t = CString::new(target.as_os_str().as_bytes())
            .map_err(|_| einval("path contains a NUL byte"))?;
        // SAFETY: valid C strings and dirfds.
        cvt(unsafe { libc::linkat(libc::AT_FDCWD, t.as_ptr(), self.raw(), c.as_ptr(), 0) })
            .map(drop)
    }

    /// The (device, inode) of `name` itself (a symlink is not followed).
    pub(crate) fn inode(&self, name: &str) -> io::Result<(u64, u64)> {
        let c = component(name)?;
        // SAFETY: `stat` is plain data, filled by the call.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: a valid dirfd, C string and stat buffer.
        cvt(unsafe { libc::fstatat(self.raw(), c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
        Ok((st.st_dev, st.st_ino))
    }

    /// Create an overlayfs whiteout (a 0/0 character device) at `name`.
    pub(crate) fn mknod_whiteout(&self, name: &str) -> io::Result<()> {
        let c = component(name)?;
        // SAFETY: a valid dirfd and C string.
        cvt(unsafe { libc::mknodat(self.raw(), c.as_ptr(), libc::S_IFCHR, libc::makedev(0, 0)) })
            .map(drop)
    }

    /// Set atime and mtime of `name` itself (a symlink is not followed).
    pub(crate) fn set_times(&self, name: &str, (secs, nsec): (i64, i64)) -> io::Result<()> {
        let c = component(name)?;
        let times = timespecs(secs, nsec);
        // SAFETY: a valid dirfd, C string and two-element timespec array.
        cvt(unsafe {
            libc::utimensat(
                self.raw(),
                c.as_ptr(),
                times.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })
        .map(drop)
    }

    /// Change the owner of `name` itself (a symlink is not followed).
    pub(crate) fn chown(&self, name: &str, (uid, gid): (u32, u32)) -> io::Result<()> {
        let c = component(name)?;
        // SAFETY: a valid dirfd and C string.
        cvt(unsafe { libc::fchownat(self.raw(), c.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) })
            .map(drop)
    }

    /// What is at `name` (not following a symlink); `None` when nothing.
    pub(crate) fn kind(&self, name: &str) -> io::Result<Option<Found>> {
        let c = component(name)?;
        self.kind_c(&c)
    }

    fn kind_c(&self, name: &CStr) -> io::Result<Option<Found>> {
        // SAFETY: `stat` is plain data, filled by the call.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: a valid dirfd, C string and stat buffer.
        let rc = unsafe {
            libc::fstatat(
                self.raw(),
                name.as_ptr(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOENT) => Ok(None),
                _ => Err(e),
            };
        }
        Ok(Some(if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            Found::Dir
        } else {
            Found::Other
        }))
    }

    /// Remove whatever is at `name` (absent is fine); a directory with
    /// everything below it, through descriptors (a symlink inside is
    /// removed, never followed).
    pub(crate) fn remove(&self, name: &str) -> io::Result<()> {
        let c = component(name)?;
        self.remove_c(&c, 0)
    }

    fn remove_c(&self, name: &CStr, depth: usize) -> io::Result<()> {
        match self.kind_c(name)? {
            None => Ok(()),
            Some(Found::Other) => {
                // SAFETY: a valid dirfd and C string.
                cvt(unsafe { libc::unlinkat(self.raw(), name.as_ptr(), 0) }).map(drop)
            }
            Some(Found::Dir) => {
                if depth >= MAX_REMOVE_DEPTH {
                    return Err(io::Error::other(format!(
                        "directories nested more than {MAX_REMOVE_DEPTH} deep"
                    )));
                }
                let sub = self.open_dir_c(name)?;
                sub.clear_depth(depth + 1)?;
                // SAFETY: a valid dirfd and C string.
                cvt(unsafe { libc::unlinkat(self.raw(), name.as_ptr(), libc::AT_REMOVEDIR) })
                    .map(drop)
            }
        }
    }

    /// Remove everything inside this directory.
    pub(crate) fn clear(&self) -> io::Result<()> {
        self.clear_depth(0)
    }

    fn clear_depth(&self, depth: usize) -> io::Result<()> {
        // Owner rwx, so entries can be removed when we are not root (best
        // effort: fails harmlessly on a directory someone else owns).
        // SAFETY: `fstat`/`fchmod` on a valid fd with a plain-data buffer.
        unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            if libc::fstat(self.raw(), &mut st) == 0 && st.st_mode & 0o700 != 0o700 {
                libc::fchmod(self.raw(), (st.st_mode & 0o7777) | 0o700);
            }
        }
        for name in self.names()? {
            self.remove_c(&name, depth)?;
        }
        Ok(())
    }

    /// The names in this directory (without `.` and `..`).
    fn names(&self) -> io::Result<Vec<CString>> {
        let dup = self.fd.try_clone()?;
        // SAFETY: `fdopendir` takes ownership of the duplicated fd, which is
        // released from `dup` only when the call succeeds.
        let dir = unsafe { libc::fdopendir(dup.as_raw_fd()) };
        if dir.is_null() {
            return Err(io::Error::last_os_error());
        }
        std::mem::forget(dup);
        let mut out = Vec::new();
        // SAFETY: `dir` is a valid DIR stream until `closedir`; each dirent
        // is valid until the next `readdir`, and its name is copied first.
        unsafe {
            libc::rewinddir(dir);
            loop {
                let ent = libc::readdir(dir);
                if ent.is_null() {
                    break;
                }
                let name = CStr::from_ptr((*ent).d_name.as_ptr());
                let b = name.to_bytes();
                if b != b"." && b != b".." {
                    out.push(name.to_owned());
                }
            }
            libc::closedir(dir);
        }
        Ok(out)
    }

    /// Set this directory's permission bits.
    pub(crate) fn chmod_self(&self, mode: u32) -> io::Result<()> {
        // SAFETY: a valid fd.
        cvt(unsafe { libc::fchmod(self.raw(), mode as libc::mode_t) }).map(drop)
    }

    /// Set this directory's atime and mtime.
    pub(crate) fn set_times_self(&self, (secs, nsec): (i64, i64)) -> io::Result<()> {
        set_fd_times(&self.fd, secs, nsec)
    }

    /// Change this directory's owner.
    pub(crate) fn chown_self(&self, (uid, gid): (u32, u32)) -> io::Result<()> {
        std::os::unix::fs::fchown(&self.fd, Some(uid), Some(gid))
    }

    /// Set an extended attribute on this directory.
    pub(crate) fn set_xattr_self(&self, name: &str, value: &[u8]) -> io::Result<()> {
        let n = CString::new(name).map_err(|_| einval("xattr name contains NUL"))?;
        // SAFETY: a valid fd, C string and value buffer of the given length.
        cvt(unsafe {
            libc::fsetxattr(
                self.raw(),
                n.as_ptr(),
                value.as_ptr().cast::<libc::c_void>(),
                value.len(),
                0,
            )
        })
        .map(drop)
    }
}

fn timespecs(secs: i64, nsec: i64) -> [libc::timespec; 2] {
    let ts = libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: nsec as libc::c_long,
    };
    [ts, ts]
}

/// Set atime and mtime of an open file or directory.
pub(crate) fn set_fd_times(fd: &impl AsRawFd, secs: i64, nsec: i64) -> io::Result<()> {
    let times = timespecs(secs, nsec);
    // SAFETY: a valid fd and a two-element timespec array.
    cvt(unsafe { libc::futimens(fd.as_raw_fd(), times.as_ptr()) }).map(drop)
}

/// Split a relative path into its parent (possibly empty) and last component.
pub(crate) fn split_parent(rel: &str) -> (&str, &str) {
    rel.rsplit_once('/').unwrap_or(("", rel))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn setup() -> (tempfile::TempDir, tempfile::TempDir, Dir) {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("link")).unwrap();
        fs::write(root.path().join("file"), b"x").unwrap();
        let d = Dir::open(root.path()).unwrap();
        (root, outside, d)
    }

    fn errno(e: &io::Error) -> i32 {
        e.raw_os_error().unwrap_or(0)
    }

    #[test]
    fn openat2_and_walk_refuse_symlinks_and_escapes() {
        let (root, outside, d) = setup();
        fs::create_dir(root.path().join("sub")).unwrap();
        for parents in [Parents::Existing, Parents::Create(None)] {
            for use_walk in [false, true] {
                let open = |rel: &str| {
                    if use_walk {
                        d.walk(rel, parents)
                    } else {
                        d.openat2_dir(rel)
                    }
                };
                let e = open("link").unwrap_err();
                assert!(matches!(errno(&e), libc::ELOOP | libc::ENOTDIR), "{e}");
                let e = open("link/x").unwrap_err();
                assert!(matches!(errno(&e), libc::ELOOP | libc::ENOTDIR), "{e}");
                assert!(open("sub/../..").is_err());
                assert!(open("../x").is_err());
                assert!(open(&format!("{}", outside.path().display())).is_err());
                assert!(open("sub").is_ok());
            }
        }
        assert!(fs::read_dir(outside.path()).unwrap().next().is_none());
    }

    #[test]
    fn replace_removes_links_and_files_instead_of_following() {
        let (root, outside, d) = setup();
        let made = d.open_beneath("link/a", Parents::Replace).unwrap();
        made.mkdir("x", 0o755).unwrap();
        assert!(root.path().join("link/a/x").is_dir());
        assert!(!root.path().join("link").is_symlink());
        d.open_beneath("file/b", Parents::Replace).unwrap();
        assert!(root.path().join("file/b").is_dir());
        assert!(fs::read_dir(outside.path()).unwrap().next().is_none());
        // Create does not replace.
        std::os::unix::fs::symlink(outside.path(), root.path().join("l2")).unwrap();
        assert!(d.walk("l2/y", Parents::Create(None)).is_err());
        assert!(d.open_beneath("l2/y", Parents::Create(None)).is_err());
        assert!(fs::read_dir(outside.path()).unwrap().next().is_none());
    }

    #[test]
    fn leaf_operations_never_follow_the_leaf() {
        let (root, outside, d) = setup();
        assert!(d.create_file("link").is_err());
        assert!(d.mkdir("link", 0o755).is_err());
        assert!(d.symlink("/etc", "link").is_err());
        for bad in ["", ".", "..", "a/b"] {
            assert!(d.create_file(bad).is_err(), "{bad:?}");
            assert!(d.mkdir(bad, 0o755).is_err(), "{bad:?}");
            assert!(d.remove(bad).is_err(), "{bad:?}");
        }
        d.set_times("link", (1, 0)).unwrap();
        // Removing a symlink to a directory removes the link only.
        fs::write(outside.path().join("keep"), b"k").unwrap();
        d.remove("link").unwrap();
        assert!(outside.path().join("keep").exists());
        // A directory holding a link to outside: the link goes, not its target.
        fs::create_dir_all(root.path().join("t/u")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("t/u/l")).unwrap();
        d.remove("t").unwrap();
        assert!(!root.path().join("t").exists());
        assert!(outside.path().join("keep").exists());
    }
}
