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

use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use crate::cas::Cas;
use crate::error::{IoContext, Result};
use crate::fsutil::{
    mknod_whiteout, remove_any, set_fixed_times, set_times_ns, set_xattr, MATERIALIZED_MTIME,
};

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
use crate::tree::{validate_path, EntryKind, Tree};

fn set_opaque(path: &Path) -> Result<()> {
    set_xattr(path, "user.overlay.opaque", b"y").ctx("set user.overlay.opaque on", path)?;
    // Only honoured by overlay mounts without `userxattr` (real root); only
    // settable with CAP_SYS_ADMIN. Best effort.
    let _ = set_xattr(path, "trusted.overlay.opaque", b"y");
    Ok(())
}

fn ensure_parent(path: &Path) -> Result<()> {
    if let Some(p) = path.parent() {
        if !p.exists() {
            fs::create_dir_all(p).ctx("create directory", p)?;
        }
    }
    Ok(())
}

/// Write `tree` into `dest` (created if missing, expected empty) as an
/// overlayfs layer.
pub fn materialize_layer(cas: &Cas, tree: &Tree, dest: &Path) -> Result<()> {
    fs::create_dir_all(dest).ctx("create directory", dest)?;
    let (secs, nsec) = next_stamp();
    let mut dirs: Vec<(std::path::PathBuf, u32)> = Vec::new();
    for e in tree.entries() {
        validate_path(&e.path)?;
        let p = dest.join(&e.path);
        ensure_parent(&p)?;
        match &e.kind {
            EntryKind::Dir { mode, opaque } => {
                fs::create_dir(&p).ctx("create directory", &p)?;
                if *opaque {
                    set_opaque(&p)?;
                }
                dirs.push((p, *mode));
            }
            EntryKind::File { digest, mode, .. } => {
                cas.copy_out(digest, &p)?;
                fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).ctx("chmod", &p)?;
                set_times_ns(&p, secs, nsec).ctx("set times on", &p)?;
            }
            EntryKind::Symlink { target } => {
                symlink(target, &p).ctx("create symlink", &p)?;
                set_times_ns(&p, secs, nsec).ctx("set times on", &p)?;
            }
            EntryKind::Whiteout => {
                mknod_whiteout(&p).map_err(|e| whiteout_error(e, &p))?;
            }
        }
    }
    finish_dirs(dirs, (secs, nsec))
}

fn whiteout_error(e: io::Error, p: &Path) -> crate::error::Error {
    crate::error::Error::Io {
        op: "create whiteout (0/0 character device; needs Linux >= 5.8 when unprivileged)",
        path: p.to_path_buf(),
        source: e,
    }
}

fn finish_dirs(mut dirs: Vec<(std::path::PathBuf, u32)>, (secs, nsec): (i64, i64)) -> Result<()> {
    // Children first, so a read-only directory does not block its children
    // and a parent's mtime is not disturbed afterwards.
    dirs.reverse();
    for (p, mode) in dirs {
        // Keep the owner's rwx so the layer can be removed by gc.
        fs::set_permissions(&p, fs::Permissions::from_mode(mode | 0o700)).ctx("chmod", &p)?;
        set_times_ns(&p, secs, nsec).ctx("set times on", &p)?;
    }
    Ok(())
}

/// Apply `trees` in order (lowest first) onto the plain directory `dest`
/// (created if missing): later trees override earlier ones, whiteouts
/// delete, opaque directories drop what earlier trees (or `dest`) had there.
pub fn apply_trees(cas: &Cas, trees: &[Tree], dest: &Path) -> Result<()> {
    fs::create_dir_all(dest).ctx("create directory", dest)?;
    let mut dirs = Vec::new();
    for tree in trees {
        for e in tree.entries() {
            validate_path(&e.path)?;
            let p = dest.join(&e.path);
            // A lower layer may have left a file or symlink where this
            // layer has a directory parent; overlayfs would show this
            // layer's view, so make room.
            make_parents_dirs(dest, &e.path)?;
            let existing = fs::symlink_metadata(&p).ok();
            match &e.kind {
                EntryKind::Whiteout => remove_any(&p)?,
                EntryKind::Dir { mode, opaque } => {
                    match existing {
                        Some(md) if md.is_dir() => {
                            if *opaque {
                                for child in fs::read_dir(&p).ctx("list", &p)? {
                                    let child = child.ctx("list", &p)?;
                                    remove_any(&child.path())?;
                                }
                            }
                        }
                        Some(_) => {
                            remove_any(&p)?;
                            fs::create_dir(&p).ctx("create directory", &p)?;
                        }
                        None => fs::create_dir(&p).ctx("create directory", &p)?,
                    }
                    dirs.push((p, *mode));
                }
                EntryKind::File { digest, mode, .. } => {
                    if existing.is_some() {
                        remove_any(&p)?;
                    }
                    cas.copy_out(digest, &p)?;
                    fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).ctx("chmod", &p)?;
                    set_fixed_times(&p, MATERIALIZED_MTIME).ctx("set times on", &p)?;
                }
                EntryKind::Symlink { target } => {
                    if existing.is_some() {
                        remove_any(&p)?;
                    }
                    symlink(target, &p).ctx("create symlink", &p)?;
                }
            }
        }
    }
    // Later trees may have deleted directories an earlier one created.
    dirs.retain(|(p, _)| fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()));
    finish_dirs(dirs, (MATERIALIZED_MTIME, 0))
}

fn make_parents_dirs(dest: &Path, rel: &str) -> Result<()> {
    let mut cur = dest.to_path_buf();
    let comps: Vec<&str> = rel.split('/').collect();
    for c in &comps[..comps.len().saturating_sub(1)] {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(md) if md.is_dir() => {}
            Ok(_) => {
                remove_any(&cur)?;
                fs::create_dir(&cur).ctx("create directory", &cur)?;
            }
            Err(_) => fs::create_dir(&cur).ctx("create directory", &cur)?,
        }
    }
    Ok(())
}
