//! The content-addressed store: blobs named by their BLAKE3 digest under
//! `cas/<first two hex digits>/<64 hex digits>`, written to a temp name in
//! `tmp/` and renamed into place, read back with verification.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::beneath::{set_fd_times, Dir};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{touch_atime_now, unique_name};
use crate::lock::{flock, LockMode};

/// A blob store on the local disk.
#[derive(Debug, Clone)]
pub struct Cas {
    dir: PathBuf,
    tmp: PathBuf,
}

/// What a layer file hard-linked to a blob must look like
/// ([`Cas::link_into`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LinkMeta {
    /// The host permission bits (no setuid, setgid or sticky).
    pub mode: u32,
    /// The owner, `None` for this process's.
    pub owner: Option<(u32, u32)>,
    /// The mtime `(secs, nsecs)` given to a blob on its first link.
    pub stamp: (i64, i64),
}

/// A blob as found on disk by [`Cas::list`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobInfo {
    /// Its name.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written, reused or linked (Unix seconds): the later
    /// of its mtime and ctime. Reuse only touches the access time (which
    /// moves the ctime), so that the mtime of a blob linked into layers is
    /// not changed under them.
    pub mtime: i64,
}

impl Cas {
    /// Open (creating) a CAS whose blobs live in `dir` and whose temp files
    /// go to `tmp` (same filesystem).
    pub fn open(dir: &Path, tmp: &Path) -> Result<Cas> {
        fs::create_dir_all(dir).ctx("create directory", dir)?;
        fs::create_dir_all(tmp).ctx("create directory", tmp)?;
        Ok(Cas {
            dir: dir.to_path_buf(),
            tmp: tmp.to_path_buf(),
        })
    }

    /// The directory holding the shards.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The temp directory (same filesystem as the blobs).
    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    /// Where blob `d` lives (whether or not it exists).
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        let hex = d.to_hex();
        self.dir.join(&hex[..2]).join(hex)
    }

    /// True if blob `d` is present (not verified).
    pub fn contains(&self, d: &Digest) -> bool {
        fs::symlink_metadata(self.blob_path(d)).is_ok_and(|m| m.is_file())
    }

    /// Store `bytes`; returns their digest.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest> {
        let d = Digest::of_bytes(bytes);
        let dest = self.blob_path(&d);
        if self.refresh_existing(&dest) {
            return Ok(d);
        }
        let tmp = self.tmp.join(unique_name("blob"));
        let res = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)
                .ctx("create", &tmp)?;
            f.write_all(bytes).ctx("write", &tmp)?;
            drop(f);
            self.publish(&tmp, &dest)
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res.map(|()| d)
    }

    /// Hash the file at `src` and store a copy of it; returns digest and size.
    pub fn put_file(&self, src: &Path) -> Result<(Digest, u64)> {
        let (d, size) = Digest::of_file(src).ctx("hash", src)?;
        self.insert_file(src, &d)?;
        Ok((d, size))
    }

    /// Store a copy of `src`, whose digest the caller already computed as `d`.
    pub fn insert_file(&self, src: &Path, d: &Digest) -> Result<()> {
        let dest = self.blob_path(d);
        if self.refresh_existing(&dest) {
            return Ok(());
        }
        let tmp = self.tmp.join(unique_name("blob"));
        let res = fs::copy(src, &tmp)
            .ctx("copy into the cache", src)
            .and_then(|_| self.publish(&tmp, &dest));
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res
    }

    /// Store a file that already lives in this CAS's temp dir under the
    /// digest `d` (moves it; no copy).
    pub fn adopt_temp(&self, tmp: &Path, d: &Digest) -> Result<()> {
        let dest = self.blob_path(d);
        if self.refresh_existing(&dest) {
            let _ = fs::remove_file(tmp);
            return Ok(());
        }
        self.publish(tmp, &dest)
    }

    /// A fresh temp path in the CAS temp dir (for callers that stream into
    /// it and then [`Cas::adopt_temp`]).
    pub fn temp_path(&self) -> PathBuf {
        self.tmp.join(unique_name("in"))
    }

    fn refresh_existing(&self, dest: &Path) -> bool {
        // Reused blobs get a fresh ctime (an access-time touch) so gc's grace
        // period protects them while the action that reuses them is being
        // recorded; their mtime may be a layer's (see `link_into`).
        fs::symlink_metadata(dest).is_ok_and(|m| m.is_file()) && touch_atime_now(dest).is_ok()
    }

    fn publish(&self, tmp: &Path, dest: &Path) -> Result<()> {
        fs::set_permissions(tmp, fs::Permissions::from_mode(0o444)).ctx("chmod", tmp)?;
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).ctx("create directory", parent)?;
        }
        fs::rename(tmp, dest).ctx("rename into place", dest)
    }

    fn open_blob(&self, d: &Digest) -> Result<(File, PathBuf)> {
        let p = self.blob_path(d);
        match File::open(&p) {
            Ok(f) => Ok((f, p)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::MissingBlob {
                digest: *d,
                path: p,
            }),
            Err(e) => Err(e).ctx("open", p),
        }
    }

    fn corrupt(&self, p: PathBuf, expected: Digest, actual: Digest) -> Error {
        tracing::warn!(blob = %expected, actual = %actual, "removing corrupt blob");
        let _ = fs::remove_file(&p);
        Error::CorruptBlob {
            path: p,
            expected,
            actual,
        }
    }

    /// Read blob `d` into memory, verifying its content. A corrupt blob is
    /// removed and reported as [`Error::CorruptBlob`].
    pub fn read(&self, d: &Digest) -> Result<Vec<u8>> {
        let (mut f, p) = self.open_blob(d)?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf).ctx("read", &p)?;
        let actual = Digest::of_bytes(&buf);
        if actual != *d {
            return Err(self.corrupt(p, *d, actual));
        }
        Ok(buf)
    }

    /// Copy blob `d` to `dest` (created; must not exist, and a symlink
    /// there is not followed), verifying the content while copying. On a
    /// mismatch the blob and `dest` are removed.
    pub fn copy_out(&self, d: &Digest, dest: &Path) -> Result<u64> {
        use std::os::unix::fs::OpenOptionsExt;
        let (src, p) = self.open_blob(d)?;
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(dest)
            .ctx("create", dest)?;
        let res = self.copy_verified(d, src, &p, &mut out, dest);
        if res.is_err() {
            drop(out);
            let _ = fs::remove_file(dest);
        }
        res
    }

    /// Copy blob `d` into the open file `out` (for writers that created it
    /// relative to a directory descriptor), verifying the content while
    /// copying; `dest` names it in errors. On a mismatch the blob is removed;
    /// removing the partial `out` is the caller's job.
    pub fn copy_to(&self, d: &Digest, out: &mut File, dest: &Path) -> Result<u64> {
        let (src, p) = self.open_blob(d)?;
        self.copy_verified(d, src, &p, out, dest)
    }

    fn copy_verified(
        &self,
        d: &Digest,
        src: File,
        p: &Path,
        out: &mut File,
        dest: &Path,
    ) -> Result<u64> {
        self.check_content(d, src, p, Some((out, dest)))
    }

    /// Read `src` (blob `d`, at `p`) to its end, hashing it and writing it
    /// to `out` if given; a mismatch removes the blob.
    fn check_content(
        &self,
        d: &Digest,
        mut src: impl Read,
        p: &Path,
        mut out: Option<(&mut File, &Path)>,
    ) -> Result<u64> {
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).ctx("read", p),
            };
            hasher.update(&buf[..n]);
            if let Some((out, dest)) = out.as_mut() {
                out.write_all(&buf[..n]).ctx("write", *dest)?;
            }
            total += n as u64;
        }
        let actual = Digest(*hasher.finalize().as_bytes());
        if actual != *d {
            return Err(self.corrupt(p.to_path_buf(), *d, actual));
        }
        Ok(total)
    }

    /// Make `name` in `dir` a hard link to blob `d` instead of a copy, so a
    /// materialised layer shares the blob's inode (see ARCHITECTURE.md, "One
    /// copy per blob"). The content is verified first (a corrupt blob is
    /// removed and reported). A link shares mode, owner and mtime, so:
    ///
    /// - a blob linked nowhere else yet (link count 1) is given `want`'s
    ///   mode, owner and stamp, under an exclusive `flock` on the blob that
    ///   every linker takes, so no two layers race on its metadata;
    /// - a blob already linked is shared only if its mode and owner are
    ///   `want`'s (it keeps the stamp of the layer that linked it first);
    ///
    /// otherwise, and when the filesystem refuses the link, `Ok(false)`: the
    /// caller copies. `dest` names the new file in errors.
    pub(crate) fn link_into(
        &self,
        d: &Digest,
        (dir, name, dest): (&Dir, &str, &Path),
        want: LinkMeta,
    ) -> Result<bool> {
        use std::os::unix::fs::MetadataExt;
        if want.mode & 0o400 == 0 || want.mode & !0o777 != 0 {
            // The CAS must stay readable by its owner; no special bits.
            return Ok(false);
        }
        let (src, p) = self.open_blob(d)?;
        flock(&src, LockMode::Exclusive, true).ctx("lock", &p)?;
        let md = src.metadata().ctx("stat", &p)?;
        // SAFETY: geteuid/getegid have no preconditions.
        let owner = want
            .owner
            .unwrap_or_else(|| unsafe { (libc::geteuid(), libc::getegid()) });
        let same = md.mode() & 0o7777 == want.mode && (md.uid(), md.gid()) == owner;
        let first = md.nlink() == 1;
        if !first && !same {
            return Ok(false);
        }
        self.check_content(d, &src, &p, None)?;
        if first {
            if (md.uid(), md.gid()) != owner
                && std::os::unix::fs::fchown(&src, Some(owner.0), Some(owner.1)).is_err()
            {
                return Ok(false);
            }
            if md.mode() & 0o7777 != want.mode
                && src
                    .set_permissions(fs::Permissions::from_mode(want.mode))
                    .is_err()
            {
                return Ok(false);
            }
            set_fd_times(&src, want.stamp.0, want.stamp.1).ctx("set times on", &p)?;
        }
        match dir.hard_link(&p, name) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EXDEV) | Some(libc::EMLINK) | Some(libc::EPERM)
                ) =>
            {
                return Ok(false)
            }
            Err(e) => return Err(e).ctx("hard-link a blob to", dest),
        }
        // The blob's name may have been given a new inode (the same content,
        // published again) since it was opened: only the checked one counts.
        if dir.inode(name).ctx("stat", dest)? != (md.dev(), md.ino()) {
            dir.remove(name).ctx("remove", dest)?;
            return Ok(false);
        }
        Ok(true)
    }

    /// Rehash blob `d`. `Ok(false)` if missing; a corrupt blob is removed and
    /// reported as an error.
    pub fn verify(&self, d: &Digest) -> Result<bool> {
        let p = self.blob_path(d);
        if !p.exists() {
            return Ok(false);
        }
        let (actual, _) = Digest::of_file(&p).ctx("hash", &p)?;
        if actual != *d {
            return Err(self.corrupt(p, *d, actual));
        }
        Ok(true)
    }

    /// Remove blob `d` (absent is fine).
    pub fn remove(&self, d: &Digest) -> Result<()> {
        let p = self.blob_path(d);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).ctx("remove", p),
        }
    }

    /// Every blob on disk, sorted by digest. Files whose names are not
    /// digests (stray temp files) are ignored.
    pub fn list(&self) -> Result<Vec<BlobInfo>> {
        let mut out = Vec::new();
        let shards = fs::read_dir(&self.dir).ctx("list", &self.dir)?;
        for shard in shards {
            let shard = shard.ctx("list", &self.dir)?;
            if !shard.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let sp = shard.path();
            for f in fs::read_dir(&sp).ctx("list", &sp)? {
                let f = f.ctx("list", &sp)?;
                let Some(name) = f.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                let Ok(digest) = name.parse::<Digest>() else {
                    continue;
                };
                let Ok(md) = f.metadata() else { continue };
                use std::os::unix::fs::MetadataExt;
                out.push(BlobInfo {
                    digest,
                    size: md.len(),
                    mtime: md.mtime().max(md.ctime()),
                });
            }
        }
        out.sort_by_key(|b| b.digest);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cas() -> (tempfile::TempDir, Cas) {
        let t = tempfile::tempdir().unwrap();
        let c = Cas::open(&t.path().join("cas"), &t.path().join("tmp")).unwrap();
        (t, c)
    }

    #[test]
    fn put_read_and_dedup() {
        let (_t, c) = cas();
        let d = c.put_bytes(b"hello").unwrap();
        assert_eq!(d, Digest::of_bytes(b"hello"));
        assert_eq!(c.put_bytes(b"hello").unwrap(), d);
        assert_eq!(c.read(&d).unwrap(), b"hello");
        assert_eq!(c.list().unwrap().len(), 1);
        assert!(c.blob_path(&d).starts_with(c.dir().join(&d.to_hex()[..2])));
    }

    #[test]
    fn corrupt_blob_is_detected_and_removed() {
        let (t, c) = cas();
        let d = c.put_bytes(b"hello").unwrap();
        let p = c.blob_path(&d);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&p, b"HELLO").unwrap();
        let err = c.copy_out(&d, &t.path().join("out")).unwrap_err();
        assert!(matches!(err, Error::CorruptBlob { .. }), "{err}");
        assert!(!p.exists(), "corrupt blob must be removed");
        assert!(!t.path().join("out").exists());
        assert!(matches!(c.read(&d), Err(Error::MissingBlob { .. })));
    }
}
