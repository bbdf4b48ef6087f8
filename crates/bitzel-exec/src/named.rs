//! The metadata's own names for the sandbox's places.
//!
//! Metadata written for bitzel names the fixed paths (`WORKDIR =
//! "/bitzel/work"`, `HOSTTOOLS_DIR = "/bitzel/hosttools"`). Metadata written
//! for BitBake (OpenEmbedded-Core, poky) names places below its build
//! directory instead — `WORKDIR = "${TMPDIR}/work/..."`, `HOSTTOOLS_DIR =
//! "${TMPDIR}/hosttools"` — and its tasks use those names: the exported
//! `PATH` holds `HOSTTOOLS_DIR` (BitBake's worker puts every exported
//! variable into the task's environment, and base.bbclass fills
//! `HOSTTOOLS_DIR` with links to the `HOSTTOOLS`), scripts `cd` into `${B}`
//! below `WORKDIR`, Python code writes below `TMPDIR`.
//!
//! So the sandbox also shows, when the recipe names them elsewhere:
//!
//! - `TOPDIR` (the build directory): a fresh tmpfs, writable scratch that is
//!   not kept, as `/tmp` is. What BitBake's tasks leave there for other
//!   recipes (shared state, `sysroots-components`, the deploy directory) is
//!   bitzel's cache's and sysroot layers' job; a task's kept output is what
//!   it writes to its work tree.
//! - `WORKDIR`: the recipe's work tree, the one at `/bitzel/work` (with a
//!   mount namespace a symlink to it; without one, a second name for the same
//!   flattened copy).
//! - `HOSTTOOLS_DIR`: the allowed host tools, the links at
//!   `/bitzel/hosttools`.
//! - `DL_DIR`: a copy-on-write view of bitzel's host download directory:
//!   what is there is readable (downloads fetched earlier), and what the task
//!   writes (BitBake's fetcher creates `DL_DIR` as `do_fetch[dirs]`, and
//!   writes `.lock` files and `.done` stamps there even for sources it finds
//!   elsewhere) lands in scratch that is not kept, never in the host
//!   directory (ARCHITECTURE.md, "DL_DIR in BitBake's fetch tasks").
//!
//! A name is used only when it is an absolute, normal path outside the
//! sandbox's own places (`/bitzel`, `/tmp`, `/proc`, `/dev`, `/etc`, the
//! build root's directories), and `WORKDIR` and `HOSTTOOLS_DIR` only when
//! they are apart from each other. Each name used is keyed (`sandbox:NAME`,
//! its build and layer directories as placeholders, as Python tasks' values
//! are): the task sees it.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use crate::script::TaskData;

/// The sandbox's own download directory (metadata written for bitzel names it).
const DOWNLOADS: &str = "/bitzel/downloads";

/// The sandbox's own top-level places and the usual build root
/// directories, which no metadata name may cover or lie in (besides the
/// build root's own directories).
const RESERVED: &[&str] = &[
    "/bitzel", "/tmp", "/proc", "/dev", "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32",
    "/lib64", "/libx32",
];

/// The places the recipe names elsewhere than the fixed paths.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NamedPaths {
    /// `TOPDIR`: scratch (a tmpfs).
    pub topdir: Option<PathBuf>,
    /// `WORKDIR`: the work tree.
    pub workdir: Option<PathBuf>,
    /// `HOSTTOOLS_DIR`: the host tools.
    pub hosttools: Option<PathBuf>,
    /// `DL_DIR`: the host download directory, copy-on-write.
    #[serde(default)]
    pub dl_dir: Option<PathBuf>,
    /// The `BBLAYERS` directories, read-only at their own paths: Python
    /// tasks only (BitBake's fetcher finds `file://` sources through
    /// `FILESPATH`); empty for shell tasks.
    #[serde(default)]
    pub layers: Vec<PathBuf>,
}

/// Whether `p` is absolute and normal (no `.`, `..` or empty component) and
/// neither covers nor lies in one of `reserved`.
fn usable(p: &Path, reserved: &[PathBuf]) -> bool {
    p.is_absolute()
        && p.components().count() > 1
        && p.components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
        && !p.to_string_lossy().contains("//")
        && !reserved
            .iter()
            .any(|r| p.starts_with(r) || r.starts_with(p))
}

impl NamedPaths {
    /// The names `d` gives; `root_paths` are the build root's directories
    /// (the host paths a `host` build root binds).
    pub fn of(d: &dyn TaskData, root_paths: &[PathBuf], work: &str, hosttools: &str) -> Self {
        let mut reserved: Vec<PathBuf> = RESERVED.iter().map(PathBuf::from).collect();
        reserved.extend(root_paths.iter().cloned());
        let get = |name: &str, fixed: &str| {
            d.var(name)
                .map(|v| PathBuf::from(v.trim().trim_end_matches('/')))
                .filter(|p| p != Path::new(fixed) && usable(p, &reserved))
        };
        let topdir = get("TOPDIR", "");
        let mut workdir = get("WORKDIR", work);
        let mut tools = get("HOSTTOOLS_DIR", hosttools);
        if let (Some(w), Some(h)) = (&workdir, &tools) {
            if w.starts_with(h) || h.starts_with(w) {
                tracing::warn!(
                    workdir = %w.display(),
                    hosttools_dir = %h.display(),
                    "WORKDIR and HOSTTOOLS_DIR overlap; the sandbox shows neither under those names"
                );
                workdir = None;
                tools = None;
            }
        }
        NamedPaths {
            topdir,
            workdir,
            hosttools: tools,
            dl_dir: get("DL_DIR", DOWNLOADS),
            layers: d
                .var("BBLAYERS")
                .unwrap_or_default()
                .split_whitespace()
                .map(|l| PathBuf::from(l.trim_end_matches('/')))
                .filter(|p| usable(p, &reserved))
                .collect(),
        }
    }

    /// The keyed form: `sandbox:NAME` → the path, with `keyed` applied (the
    /// build and layer directories as placeholders).
    pub fn keyed(&self, keyed: impl Fn(&str) -> String) -> BTreeMap<String, String> {
        [
            ("sandbox:TOPDIR", &self.topdir),
            ("sandbox:WORKDIR", &self.workdir),
            ("sandbox:HOSTTOOLS_DIR", &self.hosttools),
            ("sandbox:DL_DIR", &self.dl_dir),
        ]
        .into_iter()
        .filter_map(|(k, p)| {
            p.as_ref()
                .map(|p| (k.to_string(), keyed(&p.to_string_lossy())))
        })
        .chain((!self.layers.is_empty()).then(|| {
            let layers: Vec<String> = self
                .layers
                .iter()
                .map(|p| keyed(&p.to_string_lossy()))
                .collect();
            ("sandbox:layers".to_string(), layers.join(" "))
        }))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::tests::Fake;

    const WORK: &str = "/bitzel/work";
    const TOOLS: &str = "/bitzel/hosttools";

    fn roots() -> Vec<PathBuf> {
        vec![PathBuf::from("/usr"), PathBuf::from("/lib")]
    }

    #[test]
    fn the_fixed_paths_need_no_second_name() {
        let d = Fake::default()
            .var("WORKDIR", WORK)
            .var("HOSTTOOLS_DIR", "/bitzel/hosttools/")
            .var("DL_DIR", "/bitzel/downloads");
        assert_eq!(
            NamedPaths::of(&d, &roots(), WORK, TOOLS),
            NamedPaths::default()
        );
    }

    #[test]
    fn a_build_directory_layout_is_named() {
        let d = Fake::default()
            .var("TOPDIR", "/home/me/build")
            .var(
                "WORKDIR",
                "/home/me/build/tmp/work/x86_64-linux/zlib-native/1.3",
            )
            .var("HOSTTOOLS_DIR", "/home/me/build/tmp/hosttools")
            .var("DL_DIR", "/home/me/downloads/");
        let n = NamedPaths::of(&d, &roots(), WORK, TOOLS);
        assert_eq!(n.topdir, Some(PathBuf::from("/home/me/build")));
        assert_eq!(
            n.workdir,
            Some(PathBuf::from(
                "/home/me/build/tmp/work/x86_64-linux/zlib-native/1.3"
            ))
        );
        assert_eq!(
            n.hosttools,
            Some(PathBuf::from("/home/me/build/tmp/hosttools"))
        );
        let k = n.keyed(|s| s.replace("/home/me/build", "<TOPDIR>"));
        assert_eq!(k["sandbox:HOSTTOOLS_DIR"], "<TOPDIR>/tmp/hosttools");
        assert_eq!(n.dl_dir, Some(PathBuf::from("/home/me/downloads")));
        assert_eq!(k.len(), 4);
    }

    #[test]
    fn names_that_cover_or_enter_the_sandboxs_places_are_not_used() {
        for bad in [
            "/",
            "/usr/local/build",
            "/bitzel/other",
            "/tmp/x",
            "relative/dir",
            "/a/../b",
            "/a//b",
        ] {
            let d = Fake::default().var("TOPDIR", bad).var("WORKDIR", bad);
            let n = NamedPaths::of(&d, &roots(), WORK, TOOLS);
            assert_eq!(n, NamedPaths::default(), "{bad}");
        }
        let d = Fake::default()
            .var("WORKDIR", "/b/tmp")
            .var("HOSTTOOLS_DIR", "/b/tmp/hosttools");
        let n = NamedPaths::of(&d, &roots(), WORK, TOOLS);
        assert_eq!((n.workdir, n.hosttools), (None, None));
    }
}
