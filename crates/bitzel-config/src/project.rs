//! The typed project: what the merged configuration says, plus the
//! generated `bblayers.conf` and `local.conf` text.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::error::{ConfigError, Diagnostic, Location};
use crate::load::{self, resolve_against_file, Loaded};
use crate::settings::{
    BitzelSettings, BuildRoot, RemoteCacheSettings, RemoteExecutorSettings, RootfsSettings,
};
use crate::yaml::{Key, Node, Value};

/// A loaded kas-style project configuration (the top file merged with
/// everything it includes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// Absolute path of the top configuration file.
    pub file: PathBuf,
    /// Its directory.
    pub dir: PathBuf,
    /// Every configuration file read (includes, lockfiles, the top file), in
    /// merge order: later ones override earlier ones.
    pub files: Vec<PathBuf>,
    /// `machine`: `MACHINE` in `local.conf`.
    pub machine: Option<String>,
    /// `distro`: `DISTRO` in `local.conf`.
    pub distro: Option<String>,
    /// `target`: what to build (a single string becomes one entry).
    pub targets: Vec<String>,
    /// `task`: the task to run for each target (`None`: the default, `build`).
    pub task: Option<String>,
    /// Repos, sorted by name as kas writes them into `bblayers.conf`.
    pub repos: Vec<Repo>,
    /// `local_conf_header` entries in the order kas writes them (sorted by id).
    pub local_conf_header: Vec<(String, String)>,
    /// `bblayers_conf_header` entries in the order kas writes them (sorted by id).
    pub bblayers_conf_header: Vec<(String, String)>,
    /// `env`: variables passed to the build; `None` means "pass through from
    /// the environment only if set there".
    pub env: BTreeMap<String, Option<String>>,
    /// The `bitzel:` section; the binary applies command-line overrides.
    pub bitzel: BitzelSettings,
    /// Warnings: kas keys bitzel does not support yet, includes not
    /// followed, checkouts left alone. Each names the key and its location.
    pub warnings: Vec<Diagnostic>,
}

/// One entry of `repos:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    /// The key under `repos:`.
    pub id: String,
    /// `name:`, or the id. Repos are ordered by it; a git repo without
    /// `path` is cloned into `<build dir>/<name>`.
    pub name: String,
    /// Where its files come from.
    pub source: RepoSource,
    /// Its directory, absolute. Known at load time for local repos; set by
    /// [`Project::resolve`] for git repos.
    pub dir: Option<PathBuf>,
    /// The layers it contributes (disabled ones already removed), by name.
    pub layers: Vec<Layer>,
    /// The checked-out commit, for git repos after [`Project::resolve`].
    pub revision: Option<String>,
    /// Where the repo is declared (its key).
    pub at: Location,
    /// Where its directory is given (`path:` or `url:`), else the key.
    pub dir_at: Location,
}

/// Where a repo's files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoSource {
    /// A directory on disk: `path:`, or neither `url` nor `path` (the
    /// repository of the configuration file itself).
    Local,
    /// A git repository cloned with the `git` command-line tool.
    Git {
        /// `url:`, passed to `git clone` as written.
        url: String,
        /// `commit:` (or `overrides.repos.<id>.commit`).
        commit: Option<String>,
        /// `branch:`.
        branch: Option<String>,
        /// `tag:`.
        tag: Option<String>,
        /// `path:`: the checkout directory; relative ones are relative to
        /// the build directory. `None`: `<build dir>/<name>`.
        path: Option<PathBuf>,
    },
}

/// One layer of a repo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The layer path relative to the repo as written (`.` is the repo itself).
    pub name: String,
    /// Where it is named (the repo key for a repo without `layers:`).
    pub at: Location,
}

impl Repo {
    /// Absolute directories of this repo's layers, sorted (kas's order);
    /// empty while the repo's directory is unknown.
    pub fn layer_dirs(&self) -> Vec<PathBuf> {
        let Some(dir) = &self.dir else {
            return Vec::new();
        };
        let mut v: Vec<PathBuf> = self
            .layers
            .iter()
            .map(|l| load::normalize(&dir.join(&l.name)))
            .collect();
        v.sort();
        v
    }
}

impl Project {
    /// The project of a BitBake build directory read without a kas file
    /// (`dir`, absolute): no repos, no generated configuration, the
    /// default `bitzel:` settings with `dir` as the build directory. The
    /// metadata comes from the directory and the environment as BitBake
    /// reads them.
    pub fn build_directory(dir: &Path) -> Project {
        Project {
            file: dir.to_path_buf(),
            dir: dir.to_path_buf(),
            files: Vec::new(),
            machine: None,
            distro: None,
            targets: Vec::new(),
            task: None,
            repos: Vec::new(),
            local_conf_header: Vec::new(),
            bblayers_conf_header: Vec::new(),
            env: BTreeMap::new(),
            bitzel: BitzelSettings {
                build_dir: Some(dir.to_path_buf()),
                ..BitzelSettings::default()
            },
            warnings: Vec::new(),
        }
    }

    /// Absolute layer directories in `bblayers.conf` order: repos by name,
    /// then each repo's layers sorted. Complete after [`Project::resolve`].
    pub fn layer_paths(&self) -> Vec<PathBuf> {
        self.repos.iter().flat_map(Repo::layer_dirs).collect()
    }

    /// The effective `bblayers.conf`, as kas writes it (with absolute layer
    /// paths): the header entries, `BBLAYERS`, `BBPATH` and `BBFILES`.
    pub fn bblayers_conf(&self) -> String {
        let mut s = header_text(&self.bblayers_conf_header);
        let layers: Vec<String> = self
            .layer_paths()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        s.push_str("BBLAYERS ?= \" \\\n    ");
        s.push_str(&layers.join(" \\\n    "));
        s.push_str("\"\n");
        s.push_str("BBPATH ?= \"${TOPDIR}\"\n");
        s.push_str("BBFILES ??= \"\"\n");
        s
    }

    /// The effective `local.conf`, as kas writes it: the header entries,
    /// then `MACHINE ??=` and `DISTRO ??=` (each only when set) and
    /// `BBMULTICONFIG ?=` from `mc:`/`multiconfig:` targets.
    pub fn local_conf(&self) -> String {
        let mut s = header_text(&self.local_conf_header);
        if let Some(m) = &self.machine {
            s.push_str(&format!("MACHINE ??= \"{m}\"\n"));
        }
        if let Some(d) = &self.distro {
            s.push_str(&format!("DISTRO ??= \"{d}\"\n"));
        }
        let mc: BTreeSet<&str> = self
            .targets
            .iter()
            .filter_map(|t| {
                let mut parts = t.split(':');
                match parts.next() {
                    Some("mc") | Some("multiconfig") => parts.next(),
                    _ => None,
                }
            })
            .filter(|m| !m.is_empty())
            .collect();
        s.push_str(&format!(
            "BBMULTICONFIG ?= \"{}\"\n",
            mc.into_iter().collect::<Vec<_>>().join(" ")
        ));
        s
    }
}

/// kas's header format: `# <id>\n<text>\n` per entry.
fn header_text(entries: &[(String, String)]) -> String {
    let mut s = String::new();
    for (k, v) in entries {
        s.push_str(&format!("# {k}\n{v}\n"));
    }
    s
}

/// kas leaves a layer out when its value, as text, is one of these.
const DISABLED: &[&str] = &["disabled", "excluded", "n", "no", "0", "false", "off"];

pub(crate) fn build(loaded: Loaded, top: &Path) -> Result<Project, ConfigError> {
    let Loaded {
        merged,
        top_repo_root,
        files,
        mut warnings,
    } = loaded;
    let file = load::normalize(&load::absolute(top));
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();

    let string = |key: &str| merged.get(key).and_then(Node::text).map(str::to_string);
    let targets = match merged.get("target").map(|n| &n.value) {
        Some(Value::Str(s)) => vec![s.clone()],
        Some(Value::Seq(items)) => items
            .iter()
            .filter_map(Node::text)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    };

    let mut env = BTreeMap::new();
    for (k, v) in entries(merged.get("env")) {
        env.insert(k.name.clone(), v.text().map(str::to_string));
    }

    let overrides: BTreeMap<String, String> =
        entries(merged.get("overrides").and_then(|o| o.get("repos")))
            .iter()
            .filter_map(|(k, v)| {
                v.get("commit")
                    .and_then(Node::text)
                    .map(|c| (k.name.clone(), c.to_string()))
            })
            .collect();

    let mut repos = Vec::new();
    for (k, v) in entries(merged.get("repos")) {
        repos.push(repo(
            k,
            v,
            &top_repo_root,
            overrides.get(&k.name),
            &mut warnings,
        )?);
    }
    repos.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));

    Ok(Project {
        machine: string("machine"),
        distro: string("distro"),
        task: string("task"),
        targets,
        repos,
        local_conf_header: header_entries(merged.get("local_conf_header")),
        bblayers_conf_header: header_entries(merged.get("bblayers_conf_header")),
        env,
        bitzel: bitzel_settings(merged.get("bitzel"))?,
        warnings,
        files,
        file,
        dir,
    })
}

fn entries(node: Option<&Node>) -> &[(Key, Node)] {
    match node.map(|n| &n.value) {
        Some(Value::Map(e)) => e,
        _ => &[],
    }
}

fn header_entries(node: Option<&Node>) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = entries(node)
        .iter()
        .filter_map(|(k, v)| v.text().map(|s| (k.name.clone(), s.to_string())))
        .collect();
    v.sort();
    v
}

fn opt_string(node: &Node, key: &str) -> Option<String> {
    node.get(key).and_then(Node::text).map(str::to_string)
}

fn repo(
    key: &Key,
    node: &Node,
    top_repo_root: &Path,
    commit_override: Option<&String>,
    warnings: &mut Vec<Diagnostic>,
) -> Result<Repo, ConfigError> {
    let id = key.name.clone();
    let name = opt_string(node, "name").unwrap_or_else(|| id.clone());
    let url = node.get("url").filter(|u| u.text().is_some());
    let path = node.get("path").filter(|p| p.text().is_some());

    let layers = match node.get("layers").map(|l| &l.value) {
        Some(Value::Map(ls)) if !ls.is_empty() => ls
            .iter()
            .filter(|(_, v)| !layer_disabled(&v.value))
            .map(|(k, _)| Layer {
                name: if k.name.is_empty() {
                    ".".to_string()
                } else {
                    k.name.clone()
                },
                at: k.at.clone(),
            })
            .collect(),
        // missing, null or empty: the repo itself is the layer
        _ => vec![Layer {
            name: ".".to_string(),
            at: key.at.clone(),
        }],
    };

    let (source, dir, dir_at) = match url {
        None => {
            let (dir, dir_at) = match path {
                Some(p) => (
                    resolve_against_file(p.text().unwrap_or_default(), &p.at),
                    p.at.clone(),
                ),
                None => (top_repo_root.to_path_buf(), key.at.clone()),
            };
            (RepoSource::Local, Some(dir), dir_at)
        }
        Some(u) => {
            let commit = commit_override
                .cloned()
                .or_else(|| opt_string(node, "commit"));
            let branch = opt_string(node, "branch");
            let tag = opt_string(node, "tag");
            if commit.is_none() && branch.is_none() && tag.is_none() {
                return Err(ConfigError::invalid(
                    &u.at,
                    format!(
                        "repo `{id}` has a `url` but no `commit`, `branch` or `tag`: \
                         pin it, e.g. `commit: <full commit id>`"
                    ),
                ));
            }
            if branch.is_some() && tag.is_some() {
                return Err(ConfigError::invalid(
                    &u.at,
                    format!("repo `{id}` has both `branch` and `tag`: keep one"),
                ));
            }
            if let Some(c) = &commit {
                let full = (c.len() == 40 || c.len() == 64)
                    && c.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
                if !full {
                    let at = node
                        .get("commit")
                        .map(|n| n.at.clone())
                        .unwrap_or_else(|| u.at.clone());
                    warnings.push(Diagnostic {
                        at,
                        message: format!(
                            "`commit` of repo `{id}` is not a full-length lowercase commit id; \
                             kas will reject this in future versions"
                        ),
                    });
                }
            }
            let path = path.map(|p| PathBuf::from(p.text().unwrap_or_default()));
            (
                RepoSource::Git {
                    url: u.text().unwrap_or_default().to_string(),
                    commit,
                    branch,
                    tag,
                    path,
                },
                None,
                u.at.clone(),
            )
        }
    };
    Ok(Repo {
        id,
        name,
        source,
        dir,
        layers,
        revision: None,
        at: key.at.clone(),
        dir_at,
    })
}

fn layer_disabled(v: &Value) -> bool {
    let text = match v {
        Value::Null => return false,
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Str(s) => s.to_lowercase(),
        _ => return false,
    };
    DISABLED.contains(&text.as_str())
}

fn bitzel_settings(node: Option<&Node>) -> Result<BitzelSettings, ConfigError> {
    let mut s = BitzelSettings::default();
    let Some(node) = node else {
        return Ok(s);
    };
    let path = |key: &str| -> Result<Option<PathBuf>, ConfigError> {
        match node.get(key) {
            Some(n) => match n.text() {
                Some(p) => Ok(Some(settings_path(p, &n.at)?)),
                None => Ok(None),
            },
            None => Ok(None),
        }
    };
    s.cache_dir = path("cache_dir")?;
    s.build_dir = path("build_dir")?;
    s.downloads_dir = path("downloads_dir")?;
    if let Some(n) = node.get("bitbake_lib") {
        if let Some(p) = n.text() {
            s.bitbake_lib = Some((settings_path(p, &n.at)?, n.at.clone()));
        }
    }
    if let Some(Node {
        value: Value::Int(j),
        at,
        ..
    }) = node.get("jobs")
    {
        s.jobs = Some(
            usize::try_from(*j)
                .map_err(|_| ConfigError::invalid(at, "`bitzel.jobs` is out of range"))?,
        );
    }
    if let Some(Node {
        value: Value::Int(j),
        at,
        ..
    }) = node.get("build_records")
    {
        s.build_records = Some(
            usize::try_from(*j)
                .map_err(|_| ConfigError::invalid(at, "`bitzel.build_records` is out of range"))?,
        );
    }
    if let Some(n) = node.get("sandbox") {
        if let Some(v) = n.text() {
            s.sandbox = Some(
                v.parse()
                    .map_err(|m: String| ConfigError::invalid(&n.at, m))?,
            );
        }
    }
    if let Some(n) = node.get("build_root") {
        if let Some(v) = n.text() {
            s.build_root = Some(
                v.parse()
                    .map_err(|m: String| ConfigError::invalid(&n.at, m))?,
            );
        } else if let Some((k, r)) = n.entry("rootfs") {
            s.build_root = Some(BuildRoot::Rootfs);
            s.rootfs = Some(rootfs_settings(k, r)?);
        }
    }
    if let Some(rc) = node.get("remote_cache") {
        if let Value::Map(_) = rc.value {
            s.remote_cache = Some(RemoteCacheSettings {
                url: opt_string(rc, "url"),
                read_only: match rc.get("read_only").map(|n| &n.value) {
                    Some(Value::Bool(b)) => Some(*b),
                    _ => None,
                },
                instance: opt_string(rc, "instance"),
                auth_header_env: opt_string(rc, "auth_header_env"),
                digest_function: opt_string(rc, "digest_function"),
            });
        }
    }
    if let Some(rx) = node.get("remote_executor") {
        if let Value::Map(_) = rx.value {
            s.remote_executor = Some(RemoteExecutorSettings {
                url: opt_string(rx, "url"),
                instance: opt_string(rx, "instance"),
                auth_header_env: opt_string(rx, "auth_header_env"),
                fallback: opt_string(rx, "fallback"),
            });
        }
    }
    Ok(s)
}

/// `build_root: {rootfs: ...}`, already checked by the schema.
fn rootfs_settings(key: &Key, r: &Node) -> Result<RootfsSettings, ConfigError> {
    let packages = match r.get("packages").map(|n| &n.value) {
        Some(Value::Seq(items)) => items
            .iter()
            .filter_map(|i| i.text().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    let tarball = match r.get("tarball") {
        Some(n) => match n.text() {
            Some(p) => Some(settings_path(p, &n.at)?),
            None => None,
        },
        None => None,
    };
    Ok(RootfsSettings {
        suite: opt_string(r, "suite").unwrap_or_default(),
        packages,
        mirror: opt_string(r, "mirror"),
        tarball,
        at: key.at.clone(),
    })
}

/// A path setting: `~/…` is under `$HOME`, relative paths are relative to
/// the directory of the file that sets them.
fn settings_path(p: &str, at: &Location) -> Result<PathBuf, ConfigError> {
    if p == "~" || p.starts_with("~/") {
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .ok_or_else(|| {
                ConfigError::invalid(at, format!("`{p}` starts with `~` but HOME is not set"))
            })?;
        let rest = p.trim_start_matches('~').trim_start_matches('/');
        return Ok(load::normalize(&PathBuf::from(home).join(rest)));
    }
    Ok(resolve_against_file(p, at))
}
