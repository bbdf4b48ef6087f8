//! The allow-listed host tools (BitBake's `HOSTTOOLS`): resolved in the
//! host `PATH`, linked into one directory the sandbox sees as
//! `/bitzel/hosttools` (its only `PATH` entry besides the sysroot), and
//! digested by content so that a changed compiler changes every key.
//! [`root_digest`] covers the rest of what a `host` build-root task can read:
//! the host directories bound read-only as its root (headers, `libc.a`,
//! `cc1`, linker plugins, Python's stdlib, `/etc`).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use bitzel_cache::Digest;

/// Why the host tools could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum HostToolsError {
    /// Required tools are not in `PATH`.
    #[error(
        "the following required tools (HOSTTOOLS) are not in PATH: {}; install them or remove them from HOSTTOOLS",
        missing.join(", ")
    )]
    Missing {
        /// The tool names.
        missing: Vec<String>,
    },
    /// The host build root could not be digested.
    #[error("digesting the host build root for task keys: {0}")]
    HostRoot(#[from] bitzel_cache::Error),
    /// A file system operation failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> HostToolsError {
    let path = path.to_path_buf();
    move |source| HostToolsError::Io { what, path, source }
}

use bitzel_cache::hosttools::resolve_tool as which;

/// The resolved tool set: name → host path (as found in `PATH`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolSet {
    /// Tool name → where it was found.
    pub tools: BTreeMap<String, PathBuf>,
}

/// Resolve `required` (fatal when missing) and `optional` tool names in `path`.
pub fn resolve(
    required: &[String],
    optional: &[String],
    path: &str,
) -> Result<ToolSet, HostToolsError> {
    let mut set = ToolSet::default();
    let mut missing = Vec::new();
    for name in required {
        match which(name, path) {
            Some(p) => {
                set.tools.insert(name.clone(), p);
            }
            None => missing.push(name.clone()),
        }
    }
    if !missing.is_empty() {
        return Err(HostToolsError::Missing { missing });
    }
    for name in optional {
        if let Some(p) = which(name, path) {
            set.tools.insert(name.clone(), p);
        }
    }
    Ok(set)
}

impl ToolSet {
    /// The digest of the set: every tool's name and the BLAKE3 of the file it
    /// resolves to (symlinks followed, memoised by the cache), never its host path.
    pub fn digest(&self) -> Result<Digest, HostToolsError> {
        let mut digests = BTreeMap::new();
        for (name, path) in &self.tools {
            let d = bitzel_cache::hosttools_file_digest(path).map_err(|e| HostToolsError::Io {
                what: "hashing host tool",
                path: path.clone(),
                source: std::io::Error::other(e.to_string()),
            })?;
            digests.insert(name.clone(), d);
        }
        Ok(bitzel_cache::hosttools::set_digest(&digests))
    }

    /// Create `dir` holding one symlink per tool (replacing what was there).
    pub fn link_into(&self, dir: &Path) -> Result<(), HostToolsError> {
        let tmp = dir.with_extension(format!("tmp{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).map_err(io("creating", &tmp))?;
        for (name, path) in &self.tools {
            let link = tmp.join(name);
            std::os::unix::fs::symlink(path, &link).map_err(io("linking", &link))?;
        }
        let _ = fs::remove_dir_all(dir);
        fs::rename(&tmp, dir).map_err(io("renaming into place", dir))?;
        Ok(())
    }
}

/// The content digest of the host build root made of `paths` (the host
/// directories the sandbox binds read-only), through the machine-wide digest
/// cache ([`bitzel_cache::HostDigestCache::machine_wide`]): a no-op build
/// walks the tree and reuses the last result; changed files are rehashed.
pub fn root_digest(paths: &[PathBuf]) -> Result<Digest, HostToolsError> {
    let cache = bitzel_cache::HostDigestCache::machine_wide();
    let r = bitzel_cache::host_root_digest(paths, &cache)?;
    tracing::debug!(
        digest = %r.digest.short(),
        entries = r.entries,
        reused = r.reused,
        hashed_files = r.hashed_files,
        walk_ms = r.walk_time.as_millis() as u64,
        "host root digest"
    );
    Ok(r.digest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn resolves_reports_missing_and_digest_ignores_location() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for dir in [a.path(), b.path()] {
            let p = dir.join("tool");
            fs::write(&p, b"#!/bin/sh\necho hi\n").unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let pa = a.path().display().to_string();
        let pb = b.path().display().to_string();
        let sa = resolve(&["tool".into()], &["absent".into()], &pa).unwrap();
        let sb = resolve(&["tool".into()], &[], &pb).unwrap();
        assert_eq!(sa.tools.len(), 1);
        assert_eq!(sa.digest().unwrap(), sb.digest().unwrap());
        fs::write(b.path().join("tool"), b"#!/bin/sh\necho changed\n").unwrap();
        assert_ne!(sa.digest().unwrap(), sb.digest().unwrap());
        let err = resolve(&["nope".into()], &[], &pa).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");

        let out = a.path().join("farm");
        sa.link_into(&out).unwrap();
        assert!(fs::symlink_metadata(out.join("tool"))
            .unwrap()
            .file_type()
            .is_symlink());
    }
}
