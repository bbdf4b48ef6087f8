//! Which recipe published which file to the deploy directory (BitBake's
//! `sstate-control/manifest-*.deploy`), so that `bitzel build -c clean`
//! removes a recipe's artifacts and nothing else: the deploy directory is
//! shared by every recipe of the build.
//!
//! After publishing, each recipe whose deploy tree was applied gets
//! `<build>/tmp/deploy/manifests/<machine>/<pn>.deploy`: one line per
//! entry of its deploy trees, `f <path>` (file or symlink) or `d <path>`
//! (directory), paths relative to the deploy directory. The manifest
//! accumulates (a file published by an earlier build and no longer by this
//! one is still the recipe's) until a clean removes the files and the
//! manifest.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Component, Path, PathBuf};

use anyhow::Context as _;
use bitzel_cache::{Cache, EntryKind};
use bitzel_exec::executor::TaskOutput;
use bitzel_graph::TaskGraph;

/// The manifest of `pn`'s artifacts in `deploy` (`.../deploy/images/<machine>`).
pub fn manifest_path(deploy: &Path, pn: &str) -> PathBuf {
    let machine = deploy.file_name().unwrap_or_default();
    let top = deploy
        .parent()
        .and_then(Path::parent)
        .unwrap_or(deploy)
        .to_path_buf();
    top.join("manifests")
        .join(machine)
        .join(format!("{pn}.deploy"))
}

/// A manifest line's path, if it is a plain relative path (no `..`, no
/// root, nothing empty): a manifest edited by hand cannot make a clean
/// remove anything outside the deploy directory.
fn safe_relative(p: &str) -> Option<&Path> {
    let path = Path::new(p);
    let ok = !p.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)));
    ok.then_some(path)
}

fn read_manifest(path: &Path) -> BTreeSet<(bool, String)> {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| match l.split_once(' ') {
            Some(("f", p)) => Some((false, p.to_string())),
            Some(("d", p)) => Some((true, p.to_string())),
            _ => None,
        })
        .collect()
}

/// Record, for every recipe whose deploy tree was published to `deploy`,
/// the entries it put there.
pub fn record(
    cache: &Cache,
    graph: &TaskGraph,
    outputs: &[Option<TaskOutput>],
    deploy: &Path,
) -> anyhow::Result<()> {
    let mut by_pn: BTreeMap<&str, BTreeSet<(bool, String)>> = BTreeMap::new();
    for &id in graph.topo_order() {
        let Some(Some(out)) = outputs.get(id) else {
            continue;
        };
        let Some(d) = out.deploy else { continue };
        let tree = cache.read_tree(&d)?;
        let entries = by_pn.entry(graph.tasks[id].pn.as_str()).or_default();
        for e in tree.entries() {
            match e.kind {
                EntryKind::Dir { .. } => entries.insert((true, e.path.clone())),
                EntryKind::File { .. } | EntryKind::Symlink { .. } => {
                    entries.insert((false, e.path.clone()))
                }
                EntryKind::Whiteout => false,
            };
        }
    }
    for (pn, mut entries) in by_pn {
        let path = manifest_path(deploy, pn);
        entries.extend(read_manifest(&path));
        let text: String = entries
            .iter()
            .map(|(dir, p)| format!("{} {p}\n", if *dir { "d" } else { "f" }))
            .collect();
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        let tmp = path.with_extension("deploy.tmp");
        fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// True when some directory between `root` and `root/rel` is a symlink (or
/// missing): removing below it could leave `root`.
fn crosses_symlink(root: &Path, rel: &Path) -> bool {
    let mut p = root.to_path_buf();
    let mut parts: Vec<_> = rel.components().collect();
    parts.pop();
    for c in parts {
        p.push(c);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => {}
            _ => return true,
        }
    }
    false
}

/// Remove what `pn` published to `deploy` (by its manifest), then the
/// manifest. Directories go only when empty (another recipe's files stay).
/// Returns the files removed.
pub fn clean(deploy: &Path, pn: &str) -> anyhow::Result<Vec<PathBuf>> {
    let manifest = manifest_path(deploy, pn);
    let entries = read_manifest(&manifest);
    let mut removed = Vec::new();
    for (_, p) in entries.iter().filter(|(dir, _)| !dir) {
        let Some(rel) = safe_relative(p) else {
            continue;
        };
        if crosses_symlink(deploy, rel) {
            continue;
        }
        let path = deploy.join(rel);
        match fs::symlink_metadata(&path) {
            Ok(m) if !m.is_dir() => {
                fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
                removed.push(path);
            }
            _ => {}
        }
    }
    // Deepest first, so a directory's subdirectories are gone before it.
    for (_, p) in entries.iter().filter(|(dir, _)| *dir).rev() {
        if let Some(rel) = safe_relative(p) {
            if !crosses_symlink(deploy, rel) {
                let _ = fs::remove_dir(deploy.join(rel));
            }
        }
    }
    match fs::remove_file(&manifest) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", manifest.display())),
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_paths_never_leave_the_deploy_directory() {
        assert!(safe_relative("a/b.txt").is_some());
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "./a"] {
            assert!(safe_relative(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn clean_removes_the_listed_files_only_and_not_through_symlinks() {
        let t = tempfile::tempdir().unwrap();
        let deploy = t.path().join("tmp/deploy/images/m");
        let outside = t.path().join("outside");
        fs::create_dir_all(deploy.join("d")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(deploy.join("mine.txt"), "x").unwrap();
        fs::write(deploy.join("d/mine.txt"), "x").unwrap();
        fs::write(deploy.join("d/theirs.txt"), "x").unwrap();
        fs::write(outside.join("victim"), "x").unwrap();
        std::os::unix::fs::symlink(&outside, deploy.join("link")).unwrap();
        let m = manifest_path(&deploy, "p");
        assert_eq!(m, t.path().join("tmp/deploy/manifests/m/p.deploy"));
        fs::create_dir_all(m.parent().unwrap()).unwrap();
        fs::write(
            &m,
            "f mine.txt\nd d\nf d/mine.txt\nf link/victim\nf ../../../../outside/victim\nf gone.txt\n",
        )
        .unwrap();
        let removed = clean(&deploy, "p").unwrap();
        assert_eq!(
            removed,
            vec![deploy.join("d/mine.txt"), deploy.join("mine.txt")]
        );
        assert!(deploy.join("d/theirs.txt").exists());
        assert!(outside.join("victim").exists());
        assert!(!m.exists());
    }
}
