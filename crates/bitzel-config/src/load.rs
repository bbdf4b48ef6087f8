//! Reading a configuration with its `header.includes`, the way kas does.
//!
//! * Includes are read depth first, top to bottom; the merge order is
//!   "each include (with its own includes before it), then the including
//!   file", so later files override earlier ones and a file overrides
//!   everything it includes.
//! * Mappings merge recursively; any other value (including `null`) replaces.
//!   A replaced key keeps its place, new keys are appended.
//! * A relative string include is looked up against the root of the
//!   repository the including file belongs to (the nearest ancestor with a
//!   `.git`, else the top file's directory), then, as kas's fallback, against
//!   the including file's own directory.
//! * `{repo: <id>, file: <path>}` includes are followed for repos that have a
//!   local directory (no `url`); the config is re-read until no new repo
//!   becomes known, as kas iterates. Includes from repos that bitzel has to
//!   clone are reported as warnings.
//! * A lockfile `<name>.lock.<ext>` next to a file is read right before it.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use crate::error::{ConfigError, Diagnostic, Location};
use crate::schema::check_file;
use crate::yaml::{self, Key, Node, Value};

/// The merged tree of a configuration and everything it includes.
pub(crate) struct Loaded {
    pub merged: Node,
    /// Root of the top file's repository (its own repo for `repos: {x: }`).
    pub top_repo_root: PathBuf,
    /// Every file read, in merge order.
    pub files: Vec<PathBuf>,
    pub warnings: Vec<Diagnostic>,
}

/// An include `{repo, file}` whose repo directory is not known (yet).
struct PendingRepoInclude {
    repo: String,
    file: String,
    at: Location,
}

pub(crate) fn load_tree(top: &Path) -> Result<Loaded, ConfigError> {
    let top = normalize(&absolute(top));
    let top_dir = top.parent().map(Path::to_path_buf).unwrap_or_default();
    let top_repo_root = repo_root(&top_dir);
    let mut repo_dirs: BTreeMap<String, PathBuf> = BTreeMap::new();
    loop {
        let mut pass = Pass {
            repo_dirs: &repo_dirs,
            nodes: Vec::new(),
            files: Vec::new(),
            pending: Vec::new(),
            warnings: Vec::new(),
            stack: Vec::new(),
        };
        pass.visit(&top, &top_repo_root, None, false)?;
        let Pass {
            nodes,
            files,
            pending,
            mut warnings,
            ..
        } = pass;
        let merged = merge_all(nodes);
        let mut progress = false;
        let mut unresolved = Vec::new();
        for p in pending {
            if repo_dirs.contains_key(&p.repo) {
                continue;
            }
            match local_repo_dir(&merged, &p.repo, &top_repo_root) {
                RepoDir::Local(dir) => {
                    repo_dirs.insert(p.repo.clone(), dir);
                    progress = true;
                }
                other => unresolved.push((p, other)),
            }
        }
        if progress {
            continue;
        }
        for (p, kind) in unresolved {
            match kind {
                RepoDir::Undeclared => {
                    return Err(ConfigError::invalid(
                        &p.at,
                        format!(
                        "include `{}` is in repo `{}`, which no loaded file declares under `repos`",
                        p.file, p.repo
                    ),
                    ))
                }
                RepoDir::Remote => warnings.push(Diagnostic {
                    at: p.at,
                    message: format!(
                        "include `{}` from repo `{}` not followed: that repo is fetched from a \
                         `url`, and bitzel follows includes only into local repos for now",
                        p.file, p.repo
                    ),
                }),
                RepoDir::Local(_) => {}
            }
        }
        return Ok(Loaded {
            merged,
            top_repo_root,
            files,
            warnings,
        });
    }
}

struct Pass<'a> {
    repo_dirs: &'a BTreeMap<String, PathBuf>,
    nodes: Vec<Node>,
    files: Vec<PathBuf>,
    pending: Vec<PendingRepoInclude>,
    warnings: Vec<Diagnostic>,
    /// Files being read, outermost first, for cycle detection.
    stack: Vec<PathBuf>,
}

impl Pass<'_> {
    fn visit(
        &mut self,
        file: &Path,
        repo_root: &Path,
        included_at: Option<&Location>,
        is_lockfile: bool,
    ) -> Result<(), ConfigError> {
        if let Some(i) = self.stack.iter().position(|f| f == file) {
            let mut chain: Vec<String> = self.stack[i..]
                .iter()
                .map(|f| crate::error::shown_path(f).display().to_string())
                .collect();
            chain.push(crate::error::shown_path(file).display().to_string());
            return Err(ConfigError::IncludeCycle {
                at: included_at
                    .cloned()
                    .unwrap_or_else(|| Location::start_of(file)),
                chain: chain.join(" -> "),
            });
        }
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
            at: included_at
                .cloned()
                .unwrap_or_else(|| Location::start_of(file)),
            what: if included_at.is_some() {
                "include"
            } else {
                "config file"
            },
            path: file.to_path_buf(),
            source,
        })?;
        let node = yaml::parse(&text, file)?;
        check_file(&node, &mut self.warnings)?;
        self.stack.push(file.to_path_buf());

        if !is_lockfile {
            let lock = lockfile_name(file);
            if lock.is_file() {
                tracing::debug!(lockfile = %lock.display(), "reading lockfile");
                self.visit(&lock, repo_root, None, true)?;
            }
        }

        let file_dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
        if let Some(Value::Seq(includes)) = node
            .get("header")
            .and_then(|h| h.get("includes"))
            .map(|n| &n.value)
        {
            for inc in includes {
                match &inc.value {
                    Value::Str(rel) => {
                        let path = resolve_include(rel, repo_root, &file_dir);
                        self.visit(&path, repo_root, Some(&inc.at), false)?;
                    }
                    Value::Map(_) => {
                        let (Some(repo), Some(rel)) = (
                            inc.get("repo").and_then(Node::text),
                            inc.get("file").and_then(Node::text),
                        ) else {
                            continue; // the schema check has rejected this already
                        };
                        match self.repo_dirs.get(repo) {
                            Some(dir) => {
                                let dir = dir.clone();
                                let path = normalize(&dir.join(rel));
                                self.visit(&path, &dir, Some(&inc.at), false)?;
                            }
                            None => self.pending.push(PendingRepoInclude {
                                repo: repo.to_string(),
                                file: rel.to_string(),
                                at: inc.at.clone(),
                            }),
                        }
                    }
                    _ => {}
                }
            }
        }
        self.stack.pop();
        self.files.push(file.to_path_buf());
        self.nodes.push(node);
        Ok(())
    }
}

fn resolve_include(rel: &str, repo_root: &Path, file_dir: &Path) -> PathBuf {
    let p = Path::new(rel);
    if p.is_absolute() {
        return normalize(p);
    }
    let from_root = normalize(&repo_root.join(p));
    if from_root.exists() {
        return from_root;
    }
    let from_dir = normalize(&file_dir.join(p));
    if from_dir.exists() {
        tracing::debug!(
            include = rel,
            "include found relative to the including file"
        );
        return from_dir;
    }
    // Neither exists: report the path relative to the including file, which
    // is what most users mean.
    from_dir
}

/// `kas.yml` → `kas.lock.yml`.
fn lockfile_name(file: &Path) -> PathBuf {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match file.extension() {
        Some(ext) => format!("{stem}.lock.{}", ext.to_string_lossy()),
        None => format!("{stem}.lock"),
    };
    file.with_file_name(name)
}

enum RepoDir {
    Local(PathBuf),
    Remote,
    Undeclared,
}

/// The directory of repo `id` if it is local (no `url`).
fn local_repo_dir(merged: &Node, id: &str, top_repo_root: &Path) -> RepoDir {
    let Some(repo) = merged.get("repos").and_then(|r| r.get(id)) else {
        return RepoDir::Undeclared;
    };
    if repo.get("url").is_some_and(|u| u.text().is_some()) {
        return RepoDir::Remote;
    }
    match repo.get("path").and_then(|p| p.text().map(|s| (s, &p.at))) {
        Some((s, at)) => RepoDir::Local(resolve_against_file(s, at)),
        None => RepoDir::Local(top_repo_root.to_path_buf()),
    }
}

/// `rel` resolved against the directory of the file the value was written in.
pub(crate) fn resolve_against_file(rel: &str, at: &Location) -> PathBuf {
    let dir = at.file.parent().unwrap_or(Path::new("/"));
    normalize(&dir.join(rel))
}

/// The root of the repository `dir` is in: the nearest ancestor holding a
/// `.git` (directory, or file for worktrees/submodules), else `dir` itself.
pub(crate) fn repo_root(dir: &Path) -> PathBuf {
    for a in dir.ancestors() {
        if a.join(".git").exists() {
            return a.to_path_buf();
        }
    }
    dir.to_path_buf()
}

pub(crate) fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Lexical normalization: drop `.`, apply `..` (no symlink resolution).
pub(crate) fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

fn merge_all(nodes: Vec<Node>) -> Node {
    let mut it = nodes.into_iter();
    let Some(mut acc) = it.next() else {
        return Node {
            value: Value::Map(Vec::new()),
            at: Location::start_of(""),
            raw: None,
        };
    };
    for n in it {
        merge(&mut acc, n);
    }
    acc
}

/// kas's merge: mappings merge key by key, recursively; anything else replaces.
pub(crate) fn merge(dest: &mut Node, upd: Node) {
    match (&mut dest.value, upd.value) {
        (Value::Map(d), Value::Map(u)) => {
            for (k, v) in u {
                merge_entry(d, k, v);
            }
        }
        (_, other) => {
            dest.value = other;
            dest.at = upd.at;
            dest.raw = upd.raw;
        }
    }
}

fn merge_entry(d: &mut Vec<(Key, Node)>, k: Key, v: Node) {
    if let Some((dk, dv)) = d.iter_mut().find(|(dk, _)| dk.name == k.name) {
        if matches!(dv.value, Value::Map(_)) && matches!(v.value, Value::Map(_)) {
            merge(dv, v);
        } else {
            *dk = k;
            *dv = v;
        }
    } else {
        d.push((k, v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_paths() {
        assert_eq!(
            normalize(Path::new("/a/b/../c/./d")),
            PathBuf::from("/a/c/d")
        );
        assert_eq!(normalize(Path::new("/a/.")), PathBuf::from("/a"));
        assert_eq!(normalize(Path::new("a/../..")), PathBuf::from(".."));
    }

    #[test]
    fn lockfile_names() {
        assert_eq!(
            lockfile_name(Path::new("/x/kas.yml")),
            PathBuf::from("/x/kas.lock.yml")
        );
        assert_eq!(
            lockfile_name(Path::new("/x/kas")),
            PathBuf::from("/x/kas.lock")
        );
    }

    fn tree(text: &str, file: &str) -> Node {
        yaml::parse(text, Path::new(file)).unwrap()
    }

    #[test]
    fn merge_is_kas_merge() {
        let mut a = tree("m: a\nmap:\n  x: 1\n  y: {p: 1}\nlist: [1, 2]\n", "/a.yml");
        let b = tree(
            "map:\n  y: {q: 2}\n  z: 3\nlist: [3]\nm: b\nnew: 1\n",
            "/b.yml",
        );
        merge(&mut a, b);
        let keys: Vec<&str> = match &a.value {
            Value::Map(e) => e.iter().map(|(k, _)| k.name.as_str()).collect(),
            _ => unreachable!(),
        };
        assert_eq!(keys, ["m", "map", "list", "new"]);
        assert_eq!(a.get("m").unwrap().text(), Some("b"));
        assert_eq!(a.get("m").unwrap().at.file, PathBuf::from("/b.yml"));
        let y = a.get("map").unwrap().get("y").unwrap();
        assert!(y.get("p").is_some() && y.get("q").is_some());
        assert_eq!(a.get("map").unwrap().get("x").unwrap().value, Value::Int(1));
        let Value::Seq(list) = &a.get("list").unwrap().value else {
            panic!("not a list")
        };
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].value, Value::Int(3));
        assert_eq!(list[0].at, Location::new("/b.yml", 4, 8));
    }

    #[test]
    fn null_replaces_a_mapping() {
        let mut a = tree("repos:\n  r:\n    path: x\n", "/a.yml");
        merge(&mut a, tree("repos:\n  r:\n", "/b.yml"));
        assert_eq!(a.get("repos").unwrap().get("r").unwrap().value, Value::Null);
    }
}
