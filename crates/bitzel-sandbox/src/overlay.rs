//! Overlayfs assembly with the kernel's limits handled: at most [`MAX_LAYERS`] lowerdirs per
//! mount, 256-byte `fsconfig` values, and the legacy option string of one page (which the
//! kernel would otherwise truncate silently). Stacks that do not fit one mount are split into
//! read-only overlays mounted in a scratch directory and stacked again (two deep at most,
//! which is all overlayfs allows); nothing is ever truncated.

use std::ops::Range;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;

use crate::sys::{self, fail, FsContext, FsError, SResult};

/// Most lowerdirs one overlay mount takes (`OVL_MAX_STACK`).
pub const MAX_LAYERS: usize = 500;
/// Longest legacy `mount(2)` option string (one page including the NUL).
pub const LEGACY_MAX_BYTES: usize = 4095;
/// Longest `fsconfig` string value (the kernel copies at most 256 bytes including the NUL).
pub const FSCONFIG_MAX_VALUE: usize = 255;

/// Which mount API mounted an overlay (for tests and `doctor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverlayApi {
    /// `fsopen`/`fsconfig` with `lowerdir+`.
    Fsconfig,
    /// `mount(2)` with an option string.
    Legacy,
}

/// Escape a path for a legacy overlay option (`\`, `:` and `,` are escaped with `\`).
pub fn escape_legacy(path: &Path) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.as_os_str().len());
    for &b in path.as_os_str().as_bytes() {
        if matches!(b, b'\\' | b':' | b',') {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

/// The legacy option string for an overlay.
pub fn legacy_options(lowers: &[PathBuf], upper: Option<(&Path, &Path)>) -> Vec<u8> {
    let mut s = b"lowerdir=".to_vec();
    for (i, l) in lowers.iter().enumerate() {
        if i > 0 {
            s.push(b':');
        }
        s.extend(escape_legacy(l));
    }
    if let Some((u, w)) = upper {
        s.extend_from_slice(b",upperdir=");
        s.extend(escape_legacy(u));
        s.extend_from_slice(b",workdir=");
        s.extend(escape_legacy(w));
    }
    s.extend_from_slice(b",userxattr");
    s
}

/// Split `lowers` into consecutive groups of at most `max_layers` whose legacy
/// `lowerdir=` string (when `max_bytes` is given) stays within `max_bytes`.
/// Every index is in exactly one group, in order. A single path longer than the limit
/// gets a group of its own (the mount then reports it).
pub fn plan_chunks(
    lowers: &[PathBuf],
    max_layers: usize,
    max_bytes: Option<usize>,
) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = "lowerdir=,userxattr".len();
    for (i, l) in lowers.iter().enumerate() {
        let len = escape_legacy(l).len() + 1;
        let over_bytes = max_bytes.is_some_and(|m| bytes + len > m);
        if i > start && (i - start >= max_layers.max(1) || over_bytes) {
            out.push(start..i);
            start = i;
            bytes = "lowerdir=,userxattr".len();
        }
        bytes += len;
    }
    if start < lowers.len() {
        out.push(start..lowers.len());
    }
    out
}

/// Where intermediate mounts go and how to name them.
pub(crate) struct Scratch {
    /// A directory outside the final tree (detached with the old root).
    pub dir: PathBuf,
    /// An empty directory usable as a lowerdir.
    pub empty: PathBuf,
    /// Next free name.
    pub next: usize,
    /// Force the legacy API (tests).
    pub force_legacy: bool,
}

impl Scratch {
    fn fresh(&mut self) -> SResult<PathBuf> {
        let p = self.dir.join(self.next.to_string());
        self.next += 1;
        sys::mkdir_p(&p)?;
        Ok(p)
    }
}

/// Mount an overlay of `lowers` (top first) with an optional `(upper, work)` at `target`.
/// Read-only results (no upper) are mounted read-only; all get nosuid and nodev.
pub(crate) fn mount_overlay(
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    target: &Path,
    scratch: &mut Scratch,
) -> SResult<OverlayApi> {
    if upper.is_none() && lowers.len() <= 1 {
        // A read-only overlay needs two lowerdirs: bind the single one (or an empty dir).
        let src = lowers
            .first()
            .map_or(scratch.empty.as_path(), PathBuf::as_path);
        sys::mount(
            "bind overlay layer",
            Some(src),
            target,
            None,
            MsFlags::MS_BIND,
            None,
        )?;
        sys::remount_bind(
            target,
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        )?;
        return Ok(OverlayApi::Legacy);
    }
    let empty = [scratch.empty.clone()];
    let lowers = if lowers.is_empty() {
        &empty[..]
    } else {
        lowers
    };
    if !scratch.force_legacy {
        match mount_fsconfig(lowers, upper, target, scratch) {
            Ok(()) => return Ok(OverlayApi::Fsconfig),
            Err(FsError::Failed(f)) => return Err(f),
            Err(FsError::Unsupported) => {
                tracing::debug!("fsconfig lowerdir+ unsupported; using mount(2)")
            }
        }
    }
    mount_legacy(lowers, upper, target, scratch)?;
    Ok(OverlayApi::Legacy)
}

fn attrs(upper: Option<(&Path, &Path)>) -> libc::c_uint {
    let mut a = sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV;
    if upper.is_none() {
        a |= sys::MOUNT_ATTR_RDONLY;
    }
    a
}

fn mount_fsconfig(
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    target: &Path,
    scratch: &mut Scratch,
) -> Result<(), FsError> {
    let too_long = |p: &Path| p.as_os_str().len() > FSCONFIG_MAX_VALUE;
    if upper.is_some_and(|(u, w)| too_long(u) || too_long(w)) {
        return Err(FsError::Unsupported);
    }
    let mut effective: Vec<PathBuf> = Vec::new();
    let needs_split = lowers.len() > MAX_LAYERS || lowers.iter().any(|p| too_long(p));
    if needs_split {
        // Long paths get a short alias (a bind mount); then groups of MAX_LAYERS are stacked.
        let mut short = Vec::with_capacity(lowers.len());
        for l in lowers {
            if too_long(l) {
                let alias = scratch.fresh().map_err(FsError::Failed)?;
                sys::mount(
                    "bind overlay layer",
                    Some(l),
                    &alias,
                    None,
                    MsFlags::MS_BIND,
                    None,
                )
                .map_err(FsError::Failed)?;
                short.push(alias);
            } else {
                short.push(l.clone());
            }
        }
        if short.len() > MAX_LAYERS {
            for r in plan_chunks(&short, MAX_LAYERS, None) {
                let dir = scratch.fresh().map_err(FsError::Failed)?;
                let group = short.get(r).unwrap_or_default();
                if group.len() == 1 {
                    let src = group
                        .first()
                        .map_or(scratch.empty.as_path(), PathBuf::as_path);
                    sys::mount(
                        "bind overlay layer",
                        Some(src),
                        &dir,
                        None,
                        MsFlags::MS_BIND,
                        None,
                    )
                    .map_err(FsError::Failed)?;
                } else {
                    fsconfig_one(group, None, &dir)?;
                }
                effective.push(dir);
            }
            if effective.len() > MAX_LAYERS {
                return Err(FsError::Failed(fail(
                    "overlay mount",
                    Some(target),
                    Errno::E2BIG,
                    format!(
                        "{} layers exceed {} x {}",
                        lowers.len(),
                        MAX_LAYERS,
                        MAX_LAYERS
                    ),
                )));
            }
        } else {
            effective = short;
        }
    } else {
        effective = lowers.to_vec();
    }
    fsconfig_one(&effective, upper, target)
}

fn fsconfig_one(
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    target: &Path,
) -> Result<(), FsError> {
    let ctx = FsContext::open(c"overlay")?;
    ctx.set_flag(c"userxattr")?;
    for l in lowers {
        ctx.set_string(c"lowerdir+", l)?;
    }
    if let Some((u, w)) = upper {
        ctx.set_string(c"upperdir", u)?;
        ctx.set_string(c"workdir", w)?;
    }
    ctx.mount_at(target, attrs(upper))
}

fn legacy_flags(upper: Option<(&Path, &Path)>) -> MsFlags {
    let mut f = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    if upper.is_none() {
        f |= MsFlags::MS_RDONLY;
    }
    f
}

fn legacy_one(lowers: &[PathBuf], upper: Option<(&Path, &Path)>, target: &Path) -> SResult<()> {
    let opts = legacy_options(lowers, upper);
    if opts.len() > LEGACY_MAX_BYTES {
        return Err(fail(
            "overlay mount",
            Some(target),
            Errno::E2BIG,
            format!("option string of {} bytes exceeds one page", opts.len()),
        ));
    }
    nix::mount::mount(
        Some("overlay"),
        target,
        Some("overlay"),
        legacy_flags(upper),
        Some(opts.as_slice()),
    )
    .map_err(|e| {
        fail(
            "overlay mount",
            Some(target),
            e,
            format!("{} lowerdirs (mount(2))", lowers.len()),
        )
    })
}

fn mount_legacy(
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    target: &Path,
    scratch: &mut Scratch,
) -> SResult<()> {
    let fits =
        lowers.len() <= MAX_LAYERS && legacy_options(lowers, upper).len() <= LEGACY_MAX_BYTES;
    if fits {
        return legacy_one(lowers, upper, target);
    }
    // Groups that fit, each mounted read-only in the scratch dir under a short name,
    // then the final overlay over those names.
    let mut dirs = Vec::new();
    for r in plan_chunks(lowers, MAX_LAYERS, Some(LEGACY_MAX_BYTES)) {
        let dir = scratch.fresh()?;
        let group = lowers.get(r).unwrap_or_default();
        if group.len() == 1 {
            let src = group
                .first()
                .map_or(scratch.empty.as_path(), PathBuf::as_path);
            sys::mount(
                "bind overlay layer",
                Some(src),
                &dir,
                None,
                MsFlags::MS_BIND,
                None,
            )?;
        } else {
            legacy_one(group, None, &dir)?;
        }
        dirs.push(dir);
    }
    if dirs.len() > MAX_LAYERS || legacy_options(&dirs, upper).len() > LEGACY_MAX_BYTES {
        return Err(fail(
            "overlay mount",
            Some(target),
            Errno::E2BIG,
            format!(
                "{} layers do not fit two levels of overlays with mount(2)",
                lowers.len()
            ),
        ));
    }
    legacy_one(&dirs, upper, target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(n: usize, len: usize) -> Vec<PathBuf> {
        (0..n)
            .map(|i| PathBuf::from(format!("/{}{i:05}", "x".repeat(len))))
            .collect()
    }

    #[test]
    fn chunks_by_count() {
        let l = paths(1201, 1);
        let c = plan_chunks(&l, 500, None);
        assert_eq!(c, vec![0..500, 500..1000, 1000..1201]);
    }

    #[test]
    fn chunks_by_bytes_cover_everything_in_order() {
        let l = paths(300, 60);
        let c = plan_chunks(&l, 500, Some(LEGACY_MAX_BYTES));
        assert!(c.len() > 1);
        let mut next = 0;
        for r in &c {
            assert_eq!(r.start, next);
            next = r.end;
            let s = legacy_options(&l[r.clone()], None);
            assert!(s.len() <= LEGACY_MAX_BYTES, "{} > limit", s.len());
        }
        assert_eq!(next, 300);
    }

    #[test]
    fn escapes_separators() {
        let s = legacy_options(&[PathBuf::from("/a:b"), PathBuf::from("/c,d\\e")], None);
        assert_eq!(
            String::from_utf8_lossy(&s),
            "lowerdir=/a\\:b:/c\\,d\\\\e,userxattr"
        );
    }

    #[test]
    fn empty_and_single() {
        assert!(plan_chunks(&[], 500, None).is_empty());
        assert_eq!(plan_chunks(&paths(1, 5000), 500, Some(100)), vec![0..1]);
    }
}
