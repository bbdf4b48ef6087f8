//! bitzel-config: the kas-style project configuration (`machine.yml`).
//!
//! bitzel reads kas's project-configuration format, so a Yocto user's
//! existing kas file works where bitzel supports its keys:
//!
//! ```yaml
//! header:
//!   version: 14
//!   includes: [common.yml]
//! machine: qemux86-64
//! distro: bitzel
//! target: core-image-minimal
//! repos:
//!   meta-example:            # neither url nor path: this file's own repo
//!     layers:
//!       meta-example:
//! local_conf_header:
//!   busybox: |
//!     BUSYBOX_STATIC = "1"
//! bitzel:
//!   jobs: 2
//! ```
//!
//! [`load`] reads the file and its includes, checks every key (unknown keys
//! are errors with a suggestion, kas keys bitzel does not support yet are
//! warnings), and returns a [`Project`]. [`Project::resolve`] clones git
//! repos into the build directory with the `git` tool and checks that every
//! layer exists; [`Project::bblayers_conf`] and [`Project::local_conf`] give
//! the text kas would write.
//!
//! Every error is a [`ConfigError`] that renders as one line
//! `file:line:column: message`.

#![deny(missing_docs)]

mod bitbake_lib;
mod error;
mod git;
mod load;
mod project;
mod schema;
mod settings;
mod suggest;
mod yaml;

use std::path::Path;

pub use bitbake_lib::{find_bitbake_lib, BitbakeLib, BitbakeLibSource, BITBAKE_LIB_ENV};
pub use error::{ConfigError, Diagnostic, Location};
pub use project::{Layer, Project, Repo, RepoSource};
pub use schema::{KAS_FORMAT_MAX, KAS_FORMAT_MIN};
pub use settings::{
    BitzelSettings, BuildRoot, RemoteCacheSettings, RemoteExecutorSettings, RootfsSettings,
    SandboxChoice,
};

/// Read the configuration at `path`, follow its `header.includes`, check it
/// and return the merged project. Local repos get their directory here;
/// git repos get theirs from [`Project::resolve`]. Reads files only: no
/// network, no git.
pub fn load(path: &Path) -> Result<Project, ConfigError> {
    let loaded = load::load_tree(path)?;
    project::build(loaded, path)
}

impl Project {
    /// Make every repo available and check every layer: clone or check out
    /// git repos (into `build_dir`, unless their `path` says otherwise) with
    /// the `git` command-line tool, then check that each repo directory and
    /// each layer directory exists. A missing layer is an error naming the
    /// directory and the config line; a directory without
    /// `conf/layer.conf` is a warning.
    pub fn resolve(&mut self, build_dir: &Path) -> Result<(), ConfigError> {
        let build_dir = load::normalize(&load::absolute(build_dir));
        for repo in &mut self.repos {
            if let RepoSource::Git {
                url,
                commit,
                branch,
                tag,
                path,
            } = &repo.source
            {
                let dest = match path {
                    Some(p) => load::normalize(&build_dir.join(p)),
                    None => build_dir.join(&repo.name),
                };
                let want = git::Wanted {
                    url,
                    commit: commit.as_deref(),
                    branch: branch.as_deref(),
                    tag: tag.as_deref(),
                };
                let rev =
                    git::ensure_checkout(&repo.id, &want, &dest, &repo.dir_at, &mut self.warnings)?;
                repo.revision = Some(rev);
                repo.dir = Some(dest);
            }
            let Some(dir) = &repo.dir else {
                continue;
            };
            if !dir.is_dir() {
                return Err(ConfigError::MissingRepo {
                    at: repo.dir_at.clone(),
                    repo: repo.id.clone(),
                    path: dir.clone(),
                });
            }
            for layer in &repo.layers {
                let p = load::normalize(&dir.join(&layer.name));
                if !p.is_dir() {
                    return Err(ConfigError::MissingLayer {
                        at: layer.at.clone(),
                        repo: repo.id.clone(),
                        layer: layer.name.clone(),
                        path: p,
                    });
                }
                if !p.join("conf").join("layer.conf").is_file() {
                    self.warnings.push(Diagnostic {
                        at: layer.at.clone(),
                        message: format!(
                            "layer `{}` of repo `{}` (`{}`) has no conf/layer.conf: \
                             BitBake will not accept it as a layer",
                            layer.name,
                            repo.id,
                            error::shown_path(&p).display()
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}
