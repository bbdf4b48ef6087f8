//! Thin wrappers over the system calls the native setup uses. Every failure becomes a
//! [`SetupFailure`] naming the step and the path, which the child sends to the parent.

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;

use crate::error::SetupFailure;

/// Result of a setup step.
pub(crate) type SResult<T> = Result<T, SetupFailure>;

/// A setup failure for `step` on `path` with `errno`.
pub(crate) fn fail(
    step: &str,
    path: Option<&Path>,
    errno: Errno,
    message: impl Into<String>,
) -> SetupFailure {
    SetupFailure {
        step: step.to_owned(),
        path: path.map(Path::to_path_buf),
        errno: errno as i32,
        message: message.into(),
    }
}

/// `path` as a C string.
pub(crate) fn cpath(path: &Path) -> SResult<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        fail(
            "path",
            Some(path),
            Errno::EINVAL,
            "path contains a NUL byte",
        )
    })
}

/// `mount(2)`.
pub(crate) fn mount(
    step: &str,
    src: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> SResult<()> {
    nix::mount::mount(src, target, fstype, flags, data).map_err(|e| {
        let what = match src {
            Some(s) => format!("mounting {} on {}", s.display(), target.display()),
            None => format!("mounting on {}", target.display()),
        };
        fail(step, Some(src.unwrap_or(target)), e, what)
    })
}

/// `mkdir -p`, ignoring directories that exist.
pub(crate) fn mkdir_p(path: &Path) -> SResult<()> {
    match std::fs::create_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) => Err(fail(
            "create mount point",
            Some(path),
            Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            e.to_string(),
        )),
    }
}

/// Create an empty file (and its parents) to bind a file onto.
pub(crate) fn touch(path: &Path) -> SResult<()> {
    // An existing mount point may be on a read-only root (a `rootfs` layer stack), where
    // opening it for writing fails even though nothing needs creating.
    if path.symlink_metadata().is_ok() {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        mkdir_p(parent)?;
    }
    match std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) => Err(fail(
            "create mount point",
            Some(path),
            Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            e.to_string(),
        )),
    }
}

/// The flags a bind remount must re-pass because a user namespace locks them.
pub(crate) fn locked_flags(path: &Path) -> SResult<MsFlags> {
    use nix::sys::statvfs::FsFlags;
    let st = nix::sys::statvfs::statvfs(path)
        .map_err(|e| fail("statvfs", Some(path), e, "reading mount flags"))?;
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
    ] {
        if f.contains(fs) {
            out |= ms;
        }
    }
    Ok(out)
}

/// Remount the bind mount at `path` with `add` flags, keeping the locked ones.
pub(crate) fn remount_bind(path: &Path, add: MsFlags) -> SResult<()> {
    let flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | locked_flags(path)? | add;
    mount("remount", None, path, None, flags, None)
}

/// Write all of `data` to `fd`, retrying on EINTR.
pub(crate) fn write_all(fd: RawFd, mut data: &[u8]) -> Result<(), Errno> {
    while !data.is_empty() {
        // SAFETY: `data` is a valid buffer of the given length.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if n < 0 {
            let e = Errno::last();
            if e == Errno::EINTR {
                continue;
            }
            return Err(e);
        }
        data = data.get(n.unsigned_abs()..).unwrap_or_default();
    }
    Ok(())
}

/// Read from `fd` until EOF.
pub(crate) fn read_to_end(fd: RawFd) -> Result<Vec<u8>, Errno> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: `buf` is a valid writable buffer.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = Errno::last();
            if e == Errno::EINTR {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(buf.get(..n.unsigned_abs()).unwrap_or_default());
    }
}

/// A close-on-exec pipe `(read, write)`.
pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd), Errno> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
}

/// `close_range(first, ~0, flags)`: close (or, with `cloexec_only`, flag close-on-exec) every
/// fd from `first` on. Without `close_range` (Linux < 5.9/5.11), [`close_from_fallback`].
/// Async-signal-safe.
pub(crate) fn close_from(first: u32, cloexec_only: bool) {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    let flags = if cloexec_only { CLOSE_RANGE_CLOEXEC } else { 0 };
    // SAFETY: plain system call with integer arguments.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, flags) };
    if r != 0 {
        close_from_fallback(first, cloexec_only);
    }
}

fn close_or_flag(fd: RawFd, cloexec_only: bool) {
    // SAFETY: closing or flagging an fd number of this (single-threaded) process.
    unsafe {
        if cloexec_only {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        } else {
            libc::close(fd);
        }
    }
}

/// A buffer `getdents64` may fill (its records hold 8-byte fields).
#[repr(C, align(8))]
struct DirentBuf([u8; 2048]);

/// The numeric name of the `linux_dirent64` record at `off` in `buf`, and the record length.
fn dirent_fd(buf: &[u8], off: usize) -> Option<(Option<u32>, usize)> {
    let reclen = usize::from(u16::from_ne_bytes([
        *buf.get(off + 16)?,
        *buf.get(off + 17)?,
    ]));
    if reclen == 0 {
        return None;
    }
    let name = buf.get(off + 19..off + reclen)?;
    let mut fd: Option<u32> = None;
    for &c in name.iter().take_while(|c| **c != 0) {
        fd = match (fd.unwrap_or(0).checked_mul(10), c) {
            (Some(v), b'0'..=b'9') => v.checked_add(u32::from(c - b'0')),
            _ => return Some((None, reclen)), // `.`, `..`
        };
    }
    Some((fd, reclen))
}

/// Close every fd from `first` on without `close_range`: the numbers listed in `/proc/self/fd`
/// (read with raw `getdents64` into a stack buffer, so async-signal-safe), repeated until a
/// pass closes nothing; without `/proc`, every number below `RLIMIT_NOFILE`.
pub(crate) fn close_from_fallback(first: u32, cloexec_only: bool) {
    // SAFETY: valid C string and flags.
    let dir = unsafe {
        libc::open(
            c"/proc/self/fd".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if dir < 0 {
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: valid out pointer.
        let max = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } == 0 {
            rl.rlim_cur.min(i32::MAX as libc::rlim_t) as u32
        } else {
            1 << 20
        };
        for fd in first..max {
            close_or_flag(fd as RawFd, cloexec_only);
        }
        return;
    }
    let mut buf = DirentBuf([0; 2048]);
    loop {
        let mut acted = false;
        loop {
            // SAFETY: valid fd and buffer of the given length.
            let n = unsafe {
                libc::syscall(libc::SYS_getdents64, dir, buf.0.as_mut_ptr(), buf.0.len())
            };
            if n <= 0 {
                break;
            }
            let data = buf.0.get(..n as usize).unwrap_or_default();
            let mut off = 0;
            while let Some((fd, reclen)) = dirent_fd(data, off) {
                if let Some(fd) = fd.filter(|&fd| fd >= first && fd as RawFd != dir) {
                    close_or_flag(fd as RawFd, cloexec_only);
                    acted = true;
                }
                off += reclen;
            }
        }
        // Closing while listing may skip entries: list again until nothing is left.
        // SAFETY: valid fd.
        if cloexec_only || !acted || unsafe { libc::lseek(dir, 0, libc::SEEK_SET) } != 0 {
            break;
        }
    }
    // SAFETY: the fd opened above.
    unsafe { libc::close(dir) };
}

/// `_exit(2)`.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` never returns and is always safe to call.
    unsafe { libc::_exit(code) }
}

/// Wrap a raw fd received from a parent.
///
/// # Safety
/// `fd` must be open and owned by nobody else in this process.
pub(crate) unsafe fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: guaranteed by the caller.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

// ---- the new mount API (fsopen/fsconfig/fsmount/move_mount), via raw system calls ----

const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
/// `MOUNT_ATTR_RDONLY`.
pub(crate) const MOUNT_ATTR_RDONLY: libc::c_uint = 0x1;
/// `MOUNT_ATTR_NOSUID`.
pub(crate) const MOUNT_ATTR_NOSUID: libc::c_uint = 0x2;
/// `MOUNT_ATTR_NODEV`.
pub(crate) const MOUNT_ATTR_NODEV: libc::c_uint = 0x4;

/// A filesystem context from `fsopen`.
pub(crate) struct FsContext {
    fd: OwnedFd,
}

/// Why an `fsopen`-based mount failed: the API is missing (fall back) or a real error.
pub(crate) enum FsError {
    /// `fsopen`/`lowerdir+` not supported by this kernel: use the legacy API.
    Unsupported,
    /// A real failure.
    Failed(SetupFailure),
}

impl FsContext {
    /// `fsopen(fstype)`.
    pub(crate) fn open(fstype: &CStr) -> Result<Self, FsError> {
        // SAFETY: valid C string, flag argument.
        let fd = unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) };
        if fd < 0 {
            let e = Errno::last();
            return Err(match e {
                Errno::ENOSYS | Errno::EPERM => FsError::Unsupported,
                e => FsError::Failed(fail("fsopen", None, e, "opening an overlay context")),
            });
        }
        // SAFETY: the kernel just returned this fd to us.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        Ok(FsContext { fd })
    }

    /// The kernel's log messages for this context (best effort).
    fn log(&self) -> String {
        let mut out = String::new();
        let mut buf = [0u8; 512];
        for _ in 0..8 {
            // SAFETY: valid buffer.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
            if !out.is_empty() {
                out.push_str("; ");
            }
            out.push_str(&String::from_utf8_lossy(
                buf.get(..n.unsigned_abs()).unwrap_or_default(),
            ));
        }
        out
    }

    /// `fsconfig(FSCONFIG_SET_FLAG, key)`.
    pub(crate) fn set_flag(&self, key: &CStr) -> Result<(), FsError> {
        // SAFETY: valid fd and C string; null value as the API requires.
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                self.fd.as_raw_fd(),
                FSCONFIG_SET_FLAG,
                key.as_ptr(),
                std::ptr::null::<u8>(),
                0,
            )
        };
        if r < 0 {
            let e = Errno::last();
            return Err(FsError::Failed(fail(
                "fsconfig",
                None,
                e,
                format!("{key:?}: {}", self.log()),
            )));
        }
        Ok(())
    }

    /// `fsconfig(FSCONFIG_SET_STRING, key, value)`. EINVAL on `lowerdir+` means "unsupported".
    pub(crate) fn set_string(&self, key: &CStr, value: &Path) -> Result<(), FsError> {
        let v = cpath(value).map_err(FsError::Failed)?;
        // SAFETY: valid fd and C strings.
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                self.fd.as_raw_fd(),
                FSCONFIG_SET_STRING,
                key.as_ptr(),
                v.as_ptr(),
                0,
            )
        };
        if r < 0 {
            let e = Errno::last();
            let log = self.log();
            // 6.5–6.7: overlayfs has an fs_context without `lowerdir+` ("Unknown parameter").
            // Before 6.5: the kernel's legacy context gathers every key into one option page
            // and fails once it is full ("Legacy: Cumulative options too large").
            if key.to_bytes() == b"lowerdir+"
                && e == Errno::EINVAL
                && (log.contains("Unknown parameter") || log.contains("Legacy"))
            {
                return Err(FsError::Unsupported);
            }
            return Err(FsError::Failed(fail(
                "overlay layer",
                Some(value),
                e,
                format!("fsconfig {}: {log}", key.to_string_lossy()),
            )));
        }
        Ok(())
    }

    /// `FSCONFIG_CMD_CREATE` + `fsmount` + `move_mount` onto `target`.
    ///
    /// `EINVAL` from `FSCONFIG_CMD_CREATE` is [`FsError::Unsupported`]: before Linux 6.5
    /// overlayfs has no `fs_context` of its own, so the kernel's legacy context accepts any key
    /// (`lowerdir+` included) into an option string and only overlayfs' parser rejects it here
    /// (seen on Debian's 6.1). The caller then retries with `mount(2)`, which reports any real
    /// `EINVAL` again with the legacy options.
    pub(crate) fn mount_at(self, target: &Path, attrs: libc::c_uint) -> Result<(), FsError> {
        // SAFETY: valid fd; null key/value as the API requires.
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                self.fd.as_raw_fd(),
                FSCONFIG_CMD_CREATE,
                std::ptr::null::<u8>(),
                std::ptr::null::<u8>(),
                0,
            )
        };
        if r < 0 {
            let e = Errno::last();
            let log = self.log();
            if e == Errno::EINVAL {
                tracing::debug!(target = %target.display(), %log, "fsconfig create rejected the overlay; retrying with mount(2)");
                return Err(FsError::Unsupported);
            }
            return Err(FsError::Failed(fail(
                "overlay mount",
                Some(target),
                e,
                format!("creating the overlay: {log}"),
            )));
        }
        // SAFETY: valid fd.
        let m = unsafe {
            libc::syscall(
                libc::SYS_fsmount,
                self.fd.as_raw_fd(),
                FSMOUNT_CLOEXEC,
                attrs,
            )
        };
        if m < 0 {
            let e = Errno::last();
            return Err(FsError::Failed(fail(
                "overlay mount",
                Some(target),
                e,
                format!("fsmount: {}", self.log()),
            )));
        }
        // SAFETY: the kernel just returned this fd.
        let mfd = unsafe { OwnedFd::from_raw_fd(m as RawFd) };
        let t = cpath(target).map_err(FsError::Failed)?;
        // SAFETY: valid fds and C strings.
        let r = unsafe {
            libc::syscall(
                libc::SYS_move_mount,
                mfd.as_raw_fd(),
                c"".as_ptr(),
                libc::AT_FDCWD,
                t.as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH,
            )
        };
        if r < 0 {
            let e = Errno::last();
            return Err(FsError::Failed(fail(
                "overlay mount",
                Some(target),
                e,
                "move_mount",
            )));
        }
        Ok(())
    }
}

/// Join a sandbox-absolute `dst` under `root`.
pub(crate) fn under(root: &Path, dst: &Path) -> PathBuf {
    let rel = dst.strip_prefix("/").unwrap_or(dst);
    if rel.as_os_str().is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run `f` in a forked child (which only makes system calls) and return its exit code.
    fn in_child(f: fn() -> i32) -> i32 {
        // SAFETY: the child only calls async-signal-safe functions and `_exit`s.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => exit_now(f()),
            nix::unistd::ForkResult::Parent { child } => {
                match nix::sys::wait::waitpid(child, None).unwrap() {
                    nix::sys::wait::WaitStatus::Exited(_, c) => c,
                    other => panic!("child ended with {other:?}"),
                }
            }
        }
    }

    /// Open fds 5 and 1500 (above the old fallback's 1024 limit), without close-on-exec.
    fn open_high_fds() -> Result<(), i32> {
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: plain system calls on this child's own fds and limits.
        unsafe {
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
            if rl.rlim_max < 1501 {
                return Err(11);
            }
            rl.rlim_cur = rl.rlim_cur.max(1501);
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
            for fd in [5, 1500] {
                if libc::dup2(0, fd) != fd {
                    return Err(10);
                }
            }
        }
        Ok(())
    }

    fn flags(fd: RawFd) -> i32 {
        // SAFETY: querying an fd number.
        unsafe { libc::fcntl(fd, libc::F_GETFD) }
    }

    #[test]
    fn fallback_closes_every_fd_above_first() {
        let code = in_child(|| {
            if let Err(c) = open_high_fds() {
                return c;
            }
            close_from_fallback(3, false);
            match (flags(5), flags(1500), flags(2)) {
                (-1, -1, f) if f >= 0 => 0,
                (a, b, _) if a != -1 || b != -1 => 1,
                _ => 2,
            }
        });
        assert_eq!(
            code, 0,
            "1: an fd >= 3 survived; 2: stderr was closed; 10/11: setup"
        );
    }

    #[test]
    fn fallback_flags_every_fd_close_on_exec() {
        let code = in_child(|| {
            if let Err(c) = open_high_fds() {
                return c;
            }
            if flags(1500) & libc::FD_CLOEXEC != 0 {
                return 3;
            }
            close_from_fallback(3, true);
            let cloexec = |fd| flags(fd) >= 0 && flags(fd) & libc::FD_CLOEXEC != 0;
            if cloexec(5) && cloexec(1500) && flags(2) & libc::FD_CLOEXEC == 0 {
                0
            } else {
                1
            }
        });
        assert_eq!(
            code, 0,
            "1: an fd was not flagged (or stderr was); 3/10/11: setup"
        );
    }

    #[test]
    fn dirent_names() {
        let mut rec = vec![0u8; 24];
        rec[16] = 24;
        rec[19..23].copy_from_slice(b"1500");
        assert_eq!(dirent_fd(&rec, 0), Some((Some(1500), 24)));
        rec[19..21].copy_from_slice(b"..");
        rec[21] = 0;
        assert_eq!(dirent_fd(&rec, 0), Some((None, 24)));
        assert_eq!(dirent_fd(&rec, 24), None);
    }
}
