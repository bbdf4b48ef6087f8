//! Small filesystem helpers: unique temp names, atomic publish, fsync,
//! reading xattrs, touching and removing. (Writing a tree below a
//! directory goes through `beneath.rs`.)

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{IoContext, Result};

/// The modification time (seconds since the epoch) given to every
/// materialised file, so that `make` sees restored inputs as older than
/// anything a task writes and equal among themselves.
pub const MATERIALIZED_MTIME: i64 = 315_532_800; // 1980-01-01T00:00:00Z

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name unique to this process and call: `<prefix>.<pid>.<nanos>.<n>`.
pub fn unique_name(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}.{}.{nanos}.{n}", std::process::id())
}

/// `fsync` a directory so a rename into it is durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .ctx("fsync directory", dir)
}

/// Flush every dirty page of the filesystem holding `path` (one `syncfs`
/// instead of one `fsync` per blob).
pub fn syncfs(path: &Path) -> Result<()> {
    let f = File::open(path).ctx("open", path)?;
    use std::os::fd::AsRawFd;
    // SAFETY: `f` is an open file descriptor for the duration of the call.
    let rc = unsafe { libc::syncfs(f.as_raw_fd()) };
    if rc != 0 {
        return Err(io::Error::last_os_error()).ctx("syncfs", path);
    }
    Ok(())
}

/// Write `bytes` to `dest` atomically: a temp file in `tmp_dir` (same
/// filesystem), optionally fsynced, then renamed over `dest`.
pub fn write_atomic(tmp_dir: &Path, dest: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    let tmp = tmp_dir.join(unique_name("w"));
    let res = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .ctx("create", &tmp)?;
        f.write_all(bytes).ctx("write", &tmp)?;
        if durable {
            f.sync_all().ctx("fsync", &tmp)?;
        }
        drop(f);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).ctx("create directory", parent)?;
        }
        fs::rename(&tmp, dest).ctx("rename into place", dest)?;
        if durable {
            if let Some(parent) = dest.parent() {
                fsync_dir(parent)?;
            }
        }
        Ok(())
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// Read an extended attribute without following symlinks. `Ok(None)` when absent
/// or unsupported.
pub fn get_xattr(path: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    let p = cpath(path)?;
    let n = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "xattr name contains NUL"))?;
    let mut buf = vec![0u8; 256];
    // SAFETY: valid C strings and a buffer of the given length.
    let rc = unsafe {
        libc::lgetxattr(
            p.as_ptr(),
            n.as_ptr(),
            buf.as_mut_ptr().cast::<libc::c_void>(),
            buf.len(),
        )
    };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENODATA) | Some(libc::ENOTSUP) => Ok(None),
            Some(libc::ERANGE) => Ok(Some(Vec::new())),
            _ => Err(e),
        };
    }
    buf.truncate(usize::try_from(rc).unwrap_or(0));
    Ok(Some(buf))
}

/// Set the mtime of `path` to now (used to mark action-cache entries as recently used).
pub fn touch_now(path: &Path) -> io::Result<()> {
    let p = cpath(path)?;
    // SAFETY: valid C string; a null times pointer means "now".
    let rc = unsafe { libc::utimensat(libc::AT_FDCWD, p.as_ptr(), std::ptr::null(), 0) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Set the access time of `path` to now, leaving its mtime: the kernel
/// moves the ctime too, which is what marks a blob as recently used.
pub fn touch_atime_now(path: &Path) -> io::Result<()> {
    let p = cpath(path)?;
    let times = [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
    ];
    // SAFETY: valid C string and a two-element timespec array.
    let rc = unsafe { libc::utimensat(libc::AT_FDCWD, p.as_ptr(), times.as_ptr(), 0) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Remove a file, symlink or directory tree at `path` if it exists. Makes
/// read-only directories writable first so removal cannot fail on modes.
pub fn remove_any(path: &Path) -> Result<()> {
    let md = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).ctx("stat", path),
    };
    if md.is_dir() {
        make_tree_writable(path);
        fs::remove_dir_all(path).ctx("remove directory", path)
    } else {
        fs::remove_file(path).ctx("remove", path)
    }
}

/// Give the owner write+exec permission on every directory under `root`.
pub fn make_tree_writable(root: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for entry in walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .flatten()
    {
        if entry.file_type().is_dir() {
            if let Ok(md) = entry.metadata() {
                let mode = md.permissions().mode();
                if mode & 0o700 != 0o700 {
                    let _ =
                        fs::set_permissions(entry.path(), fs::Permissions::from_mode(mode | 0o700));
                }
            }
        }
    }
}
