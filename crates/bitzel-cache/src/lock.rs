//! Advisory file locks (`flock(2)`) that can name their holder.
//!
//! An `flock` belongs to the open file description, so it is released when
//! the holder closes the file or dies — also after `kill -9`: a lock never
//! outlives its process. Files are opened close-on-exec, so tools a holder
//! runs (git, sandbox helpers) never inherit it.
//!
//! Used by the cache index (its journals), the cache-wide maintenance
//! protocol (`lease.rs`) and, through [`FileLock`], by the `bitzel` binary
//! for its build-directory lock.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{IoContext, Result};

/// Shared (many holders) or exclusive (one holder).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// `LOCK_SH`.
    Shared,
    /// `LOCK_EX`.
    Exclusive,
}

impl LockMode {
    fn op(self) -> libc::c_int {
        match self {
            LockMode::Shared => libc::LOCK_SH,
            LockMode::Exclusive => libc::LOCK_EX,
        }
    }
}

/// `flock(f, mode)`: `Ok(true)` when taken, `Ok(false)` when `wait` is
/// false and another open file holds a conflicting lock.
pub(crate) fn flock(f: &File, mode: LockMode, wait: bool) -> io::Result<bool> {
    let op = mode.op() | if wait { 0 } else { libc::LOCK_NB };
    loop {
        // SAFETY: `f` is an open descriptor for the duration of the call.
        let rc = unsafe { libc::flock(f.as_raw_fd(), op) };
        if rc == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) if !wait => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(e),
        }
    }
}

/// Release an `flock` taken on `f` (closing `f` does the same).
pub(crate) fn unlock(f: &File) {
    // SAFETY: `f` is an open descriptor for the duration of the call.
    let _ = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_UN) };
}

/// Open (creating) a lock file for reading and writing, close-on-exec.
pub(crate) fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .ctx("open lock file", path)
}

/// This process as people know it: `pid 1234 (bitzel build machine.yml)`.
pub fn owner_line() -> String {
    let cmd = fs::read("/proc/self/cmdline")
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    format!("pid {} ({cmd})", std::process::id())
}

/// A held lock on a file. Released when dropped (or when the process
/// ends, however it ends). An exclusive holder writes [`owner_line`] into
/// the file so that others can name it, and empties it again on release.
#[derive(Debug)]
pub struct FileLock {
    file: File,
    path: PathBuf,
    named: bool,
}

impl FileLock {
    /// Take the lock on `path` (created if missing) without waiting:
    /// `Ok(None)` when another process (or another open of the file) holds
    /// a conflicting one.
    pub fn try_lock(path: &Path, mode: LockMode) -> Result<Option<FileLock>> {
        let file = open_lock_file(path)?;
        if !flock(&file, mode, false).ctx("lock", path)? {
            return Ok(None);
        }
        Ok(Some(FileLock::taken(file, path, mode)))
    }

    /// Take the lock on `path` (created if missing), waiting as long as it
    /// takes.
    pub fn lock(path: &Path, mode: LockMode) -> Result<FileLock> {
        let file = open_lock_file(path)?;
        flock(&file, mode, true).ctx("lock", path)?;
        Ok(FileLock::taken(file, path, mode))
    }

    fn taken(mut file: File, path: &Path, mode: LockMode) -> FileLock {
        let named = mode == LockMode::Exclusive
            && file.set_len(0).is_ok()
            && file
                .write_all(format!("{}\n", owner_line()).as_bytes())
                .is_ok();
        FileLock {
            file,
            path: path.to_path_buf(),
            named,
        }
    }

    /// The locked file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Who holds the exclusive lock on `path`, as its holder wrote it
    /// (`pid 1234 (bitzel build ...)`). A holder that has just taken the
    /// lock may not have written its name yet: this rereads for up to
    /// 200 ms before answering "another process (pid not recorded)".
    pub fn holder(path: &Path) -> String {
        for _ in 0..8 {
            if let Ok(s) = fs::read_to_string(path) {
                let s = s.trim();
                if !s.is_empty() {
                    return s.to_string();
                }
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        "another process (pid not recorded)".to_string()
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        if self.named {
            // Still holding the lock: nobody else writes the file now.
            let _ = self.file.set_len(0);
        }
        unlock(&self.file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_excludes_and_names_its_holder() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("x.lock");
        let held = FileLock::try_lock(&p, LockMode::Exclusive)
            .unwrap()
            .unwrap();
        // Another open file description conflicts, even in this process.
        assert!(FileLock::try_lock(&p, LockMode::Exclusive)
            .unwrap()
            .is_none());
        assert!(FileLock::try_lock(&p, LockMode::Shared).unwrap().is_none());
        let who = FileLock::holder(&p);
        assert!(
            who.starts_with(&format!("pid {} (", std::process::id())),
            "{who}"
        );
        drop(held);
        assert_eq!(fs::read_to_string(&p).unwrap(), "", "emptied on release");
        assert!(FileLock::try_lock(&p, LockMode::Exclusive)
            .unwrap()
            .is_some());
    }

    #[test]
    fn shared_locks_coexist_and_keep_out_exclusive() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("s.lock");
        let a = FileLock::try_lock(&p, LockMode::Shared).unwrap().unwrap();
        let b = FileLock::try_lock(&p, LockMode::Shared).unwrap().unwrap();
        assert!(FileLock::try_lock(&p, LockMode::Exclusive)
            .unwrap()
            .is_none());
        drop(a);
        assert!(FileLock::try_lock(&p, LockMode::Exclusive)
            .unwrap()
            .is_none());
        drop(b);
        assert!(FileLock::try_lock(&p, LockMode::Exclusive)
            .unwrap()
            .is_some());
    }
}
