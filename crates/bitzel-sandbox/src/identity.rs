//! Who a task is on the host.
//!
//! Run by an unprivileged user, the sandbox's uid/gid 0 is that user (the user namespace maps
//! `0 <uid> 1`). Run as root, the namespaces are created without a user namespace (so every
//! mount is made by real root), and only the task's process enters a new user namespace whose
//! uid/gid 0 is an unprivileged host range: root's first subordinate range in `/etc/subuid` and
//! `/etc/subgid` (at most 65536 ids), else `nobody`/`nogroup` (65534, one id). Nothing a task
//! does then has host root's rights, and files it creates belong to that range's first id.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use crate::error::SandboxError;
use crate::spec::{Mount, SandboxSpec};
use crate::sys::{self, SResult};

/// Most subordinate ids mapped into a sandbox.
pub const MAX_MAPPED_IDS: u32 = 65536;
/// `nobody` / `nogroup` on Debian and most distributions: the fallback identity.
pub const NOBODY: u32 = 65534;

/// The host ids the sandbox's uid/gid 0 map to when the sandbox is run by root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap {
    /// First host uid (the task's uid 0).
    pub uid: u32,
    /// How many uids from `uid` on are mapped.
    pub uid_count: u32,
    /// First host gid (the task's gid 0).
    pub gid: u32,
    /// How many gids from `gid` on are mapped.
    pub gid_count: u32,
}

impl IdMap {
    /// The `uid_map` line (`0 <uid> <count>`).
    pub(crate) fn uid_line(&self) -> String {
        format!("0 {} {}\n", self.uid, self.uid_count)
    }
    /// The `gid_map` line (`0 <gid> <count>`).
    pub(crate) fn gid_line(&self) -> String {
        format!("0 {} {}\n", self.gid, self.gid_count)
    }
}

/// `Some((uid, gid))`: the host ids a task runs as when the sandbox maps root elsewhere (the
/// caller is root); `None` when the task runs as the invoking user. Layers a task may write
/// into (copied up from an overlay's lower layers) must be owned by these ids.
pub fn sandbox_identity() -> Option<(u32, u32)> {
    root_map().map(|m| (m.uid, m.gid))
}

/// The id map for tasks when this process runs as root (read once per process).
pub(crate) fn root_map() -> Option<IdMap> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    static MAP: OnceLock<IdMap> = OnceLock::new();
    Some(*MAP.get_or_init(|| {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        map_from(&read("/etc/subuid"), &read("/etc/subgid"))
    }))
}

/// The map from the contents of `/etc/subuid` and `/etc/subgid`.
pub(crate) fn map_from(subuid: &str, subgid: &str) -> IdMap {
    let (uid, uid_count) = first_range(subuid).unwrap_or((NOBODY, 1));
    let (gid, gid_count) = first_range(subgid).unwrap_or((NOBODY, 1));
    IdMap {
        uid,
        uid_count,
        gid,
        gid_count,
    }
}

/// root's first usable range in a `subuid`/`subgid` file (`name:start:count` lines; the name
/// may also be the numeric id). A range including id 0 is never used.
fn first_range(text: &str) -> Option<(u32, u32)> {
    text.lines().find_map(|l| {
        let mut f = l.trim().split(':');
        let (name, start, count) = (f.next()?, f.next()?, f.next()?);
        if f.next().is_some() || (name != "root" && name != "0") {
            return None;
        }
        let start: u32 = start.trim().parse().ok()?;
        let count: u32 = count.trim().parse().ok()?;
        let count = count.min(MAX_MAPPED_IDS);
        (start > 0 && count > 0 && start.checked_add(count - 1).is_some()).then_some((start, count))
    })
}

/// Give every overlay's upper and work directory to the task's identity (root mode only): the
/// task must be able to create files in the overlay's top directory, which is the upper one.
pub(crate) fn prepare_overlay_dirs(
    spec: &SandboxSpec,
    map: Option<&IdMap>,
) -> Result<(), SandboxError> {
    let Some(m) = map else { return Ok(()) };
    for mount in &spec.mounts {
        if let Mount::Overlay {
            upper: Some((u, w)),
            ..
        } = mount
        {
            for d in [u, w] {
                chown_dir(d, m)?;
            }
        }
    }
    Ok(())
}

/// Write a user namespace's `setgroups` (`deny`), `uid_map` and `gid_map` through `/proc/<pid>`.
pub(crate) fn write_id_maps(pid: i32, uid_line: &str, gid_line: &str) -> SResult<()> {
    for (file, content) in [
        ("setgroups", "deny"),
        ("uid_map", uid_line),
        ("gid_map", gid_line),
    ] {
        let path = PathBuf::from(format!("/proc/{pid}/{file}"));
        std::fs::write(&path, content.as_bytes()).map_err(|e| {
            sys::fail(
                "write id map",
                Some(&path),
                Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
                format!("writing {:?}: {e}", content.trim_end()),
            )
        })?;
    }
    Ok(())
}

fn chown_dir(d: &Path, m: &IdMap) -> Result<(), SandboxError> {
    std::os::unix::fs::lchown(d, Some(m.uid), Some(m.gid)).map_err(|e| {
        SandboxError::io(
            format!(
                "handing the overlay directory to the sandbox's identity {}:{}",
                m.uid, m.gid
            ),
            Some(d.to_path_buf()),
            e,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subordinate_ranges() {
        let m = map_from(
            "alice:100000:65536\nroot:200000:1000000\nroot:9:9\n",
            "# comment\nroot:300000:10\n",
        );
        assert_eq!(
            m,
            IdMap {
                uid: 200000,
                uid_count: 65536,
                gid: 300000,
                gid_count: 10
            }
        );
        assert_eq!(m.uid_line(), "0 200000 65536\n");
    }

    #[test]
    fn nobody_without_a_usable_range() {
        let nobody = IdMap {
            uid: NOBODY,
            uid_count: 1,
            gid: NOBODY,
            gid_count: 1,
        };
        assert_eq!(map_from("", ""), nobody);
        // Ranges that would include host root, empty, malformed or overflowing are skipped.
        assert_eq!(
            map_from(
                "root:0:65536\nroot:5:0\nroot:x:1\nroot:4294967295:2\n0:1:2:3\n",
                "root:0:1\n"
            ),
            nobody
        );
        assert_eq!(map_from("0:70000:5\n", "").uid, 70000);
    }
}
