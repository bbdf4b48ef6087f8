//! Where BitBake's Python library (the `bb` package) comes from, for
//! metadata whose tasks are Python functions.
//!
//! The search order (the first that applies wins):
//! 1. `bitzel: bitbake_lib: <path>` in the kas file (relative to the file
//!    that sets it);
//! 2. the environment variable [`BITBAKE_LIB_ENV`];
//! 3. `<repo>/bitbake/lib` of a kas repo, repos in name order (a poky-style
//!    checkout carries BitBake beside its layers);
//! 4. a `bb` package importable by the host's `/usr/bin/python3`.
//!
//! A place named explicitly (1 or 2) that holds no `bb/__init__.py` is an
//! error at once rather than a silent fall-through to the next place.
//! Only metadata that has Python tasks needs a library; bitzel's own core
//! layer does not.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{ConfigError, Location, Project};

/// The environment variable naming the BitBake library directory.
pub const BITBAKE_LIB_ENV: &str = "BITZEL_BITBAKE_LIB";

/// The interpreter asked, last, for an importable `bb`.
const HOST_PYTHON: &str = "/usr/bin/python3";

/// A BitBake library found by [`find_bitbake_lib`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitbakeLib {
    /// The directory containing `bb/` (what goes on `sys.path`).
    pub dir: PathBuf,
    /// Which rule found it.
    pub source: BitbakeLibSource,
}

/// Which rule of the search order found the library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BitbakeLibSource {
    /// `bitzel: bitbake_lib:` in a configuration file.
    Config {
        /// Where it is set.
        location: Location,
    },
    /// The environment variable [`BITBAKE_LIB_ENV`].
    Env,
    /// `<repo>/bitbake/lib` of a kas repo.
    Repo {
        /// The repo's name.
        name: String,
    },
    /// A `bb` importable by `/usr/bin/python3`.
    Python,
}

impl std::fmt::Display for BitbakeLibSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BitbakeLibSource::Config { location } => {
                write!(f, "`bitzel: bitbake_lib:` at {location}")
            }
            BitbakeLibSource::Env => write!(f, "${BITBAKE_LIB_ENV}"),
            BitbakeLibSource::Repo { name } => write!(f, "repo `{name}`"),
            BitbakeLibSource::Python => write!(f, "{HOST_PYTHON}'s `import bb`"),
        }
    }
}

fn has_bb(dir: &Path) -> bool {
    dir.join("bb").join("__init__.py").is_file()
}

const HOW_TO_SET: &str = "point `bitzel: bitbake_lib:` in the kas file or the environment \
     variable BITZEL_BITBAKE_LIB at the directory that contains BitBake's `bb/` package \
     (a BitBake checkout's `lib/`, or the site-packages of a Python environment with the \
     `bitbake-setup` package installed)";

/// Find the BitBake library for `project` (see the module documentation).
/// `env_value` is the value of [`BITBAKE_LIB_ENV`] (passed in so that callers
/// and tests decide what the environment is). Runs `/usr/bin/python3` only
/// when the first three places give nothing.
pub fn find_bitbake_lib(
    project: &Project,
    env_value: Option<&OsStr>,
) -> Result<BitbakeLib, ConfigError> {
    if let Some((dir, at)) = &project.bitzel.bitbake_lib {
        if !has_bb(dir) {
            return Err(ConfigError::BitbakeLib {
                at: at.clone(),
                message: format!(
                    "`bitzel.bitbake_lib` is `{}`, which has no `bb/__init__.py`; {HOW_TO_SET}",
                    dir.display()
                ),
            });
        }
        return Ok(BitbakeLib {
            dir: dir.clone(),
            source: BitbakeLibSource::Config {
                location: at.clone(),
            },
        });
    }
    let mut looked = vec!["`bitzel: bitbake_lib:` (not set)".to_string()];
    match env_value.filter(|v| !v.is_empty()) {
        Some(v) => {
            let dir = crate::load::normalize(&crate::load::absolute(Path::new(v)));
            if !has_bb(&dir) {
                return Err(ConfigError::BitbakeLib {
                    at: Location::start_of(&project.file),
                    message: format!(
                        "{BITBAKE_LIB_ENV} is `{}`, which has no `bb/__init__.py`; {HOW_TO_SET}",
                        dir.display()
                    ),
                });
            }
            return Ok(BitbakeLib {
                dir,
                source: BitbakeLibSource::Env,
            });
        }
        None => looked.push(format!("${BITBAKE_LIB_ENV} (not set)")),
    }
    let mut repos: Vec<_> = project.repos.iter().collect();
    repos.sort_by(|a, b| a.name.cmp(&b.name));
    for repo in repos {
        let Some(root) = &repo.dir else { continue };
        let dir = root.join("bitbake").join("lib");
        if has_bb(&dir) {
            return Ok(BitbakeLib {
                dir,
                source: BitbakeLibSource::Repo {
                    name: repo.name.clone(),
                },
            });
        }
        looked.push(format!("`{}` (repo `{}`)", dir.display(), repo.name));
    }
    match python_bb_dir() {
        Ok(dir) => Ok(BitbakeLib {
            dir,
            source: BitbakeLibSource::Python,
        }),
        Err(why) => {
            looked.push(format!("`import bb` in {HOST_PYTHON} ({why})"));
            Err(ConfigError::BitbakeLib {
                at: Location::start_of(&project.file),
                message: format!(
                    "this metadata needs BitBake's `bb` library (for Python tasks, or for parse-time Python beyond bitzel's own subset), \
                     and none was found; looked at: {}; {HOW_TO_SET}",
                    looked.join(", ")
                ),
            })
        }
    }
}

/// The directory holding the `bb` package `/usr/bin/python3` would import.
fn python_bb_dir() -> Result<PathBuf, String> {
    let out = Command::new(HOST_PYTHON)
        .args([
            "-I",
            "-c",
            "import importlib.util, os\n\
             s = importlib.util.find_spec('bb')\n\
             print(os.path.dirname(list(s.submodule_search_locations)[0]) if s and s.submodule_search_locations else '')",
        ])
        .output()
        .map_err(|e| format!("cannot run it: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "it failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let dir = PathBuf::from(&text);
    if text.is_empty() || !has_bb(&dir) {
        return Err("no module named `bb`".into());
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(yml: &str, dir: &Path) -> Project {
        let f = dir.join("k.yml");
        std::fs::write(&f, yml).unwrap();
        crate::load(&f).unwrap()
    }

    fn fake_lib(dir: &Path) {
        std::fs::create_dir_all(dir.join("bb")).unwrap();
        std::fs::write(dir.join("bb/__init__.py"), "").unwrap();
    }

    const HEAD: &str = "header:\n  version: 14\n";

    #[test]
    fn config_then_env_then_repo_in_name_order() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        fake_lib(&root.join("cfglib"));
        fake_lib(&root.join("envlib"));
        fake_lib(&root.join("b-repo/bitbake/lib"));
        fake_lib(&root.join("c-repo/bitbake/lib"));
        std::fs::create_dir_all(root.join("a-repo")).unwrap();
        let repos = "repos:\n  c:\n    name: c-repo\n    path: c-repo\n  b:\n    name: b-repo\n    path: b-repo\n  a:\n    name: a-repo\n    path: a-repo\n";
        let with_cfg = project(
            &format!("{HEAD}{repos}bitzel:\n  bitbake_lib: cfglib\n"),
            root,
        );
        let env = root.join("envlib");
        let found = find_bitbake_lib(&with_cfg, Some(env.as_os_str())).unwrap();
        assert_eq!(found.dir, root.join("cfglib"));
        assert!(
            matches!(&found.source, BitbakeLibSource::Config { location } if location.line == 14),
            "{found:?}"
        );
        let plain = project(&format!("{HEAD}{repos}"), root);
        let found = find_bitbake_lib(&plain, Some(env.as_os_str())).unwrap();
        assert_eq!((found.dir, found.source), (env, BitbakeLibSource::Env));
        let found = find_bitbake_lib(&plain, None).unwrap();
        assert_eq!(found.dir, root.join("b-repo/bitbake/lib"));
        assert_eq!(
            found.source,
            BitbakeLibSource::Repo {
                name: "b-repo".into()
            }
        );
    }

    #[test]
    fn a_named_place_without_bb_is_an_error_naming_it() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("empty")).unwrap();
        let p = project(&format!("{HEAD}bitzel:\n  bitbake_lib: empty\n"), t.path());
        let e = find_bitbake_lib(&p, None).unwrap_err().to_string();
        assert!(
            e.contains("k.yml:4:16") && e.contains("empty") && e.contains("bb/__init__.py"),
            "{e}"
        );
        let p = project(HEAD, t.path());
        let env = t.path().join("empty");
        let e = find_bitbake_lib(&p, Some(env.as_os_str()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("BITZEL_BITBAKE_LIB is"), "{e}");
    }

    #[test]
    fn not_found_lists_every_place_and_how_to_set_it() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("r")).unwrap();
        let p = project(&format!("{HEAD}repos:\n  r:\n    path: r\n"), t.path());
        match find_bitbake_lib(&p, None) {
            // The host's python3 may really have `bb` installed.
            Ok(found) => assert_eq!(found.source, BitbakeLibSource::Python),
            Err(e) => {
                let e = e.to_string();
                for want in [
                    "bitzel: bitbake_lib:",
                    "$BITZEL_BITBAKE_LIB (not set)",
                    "r/bitbake/lib",
                    "import bb",
                    "site-packages",
                ] {
                    assert!(e.contains(want), "{want} missing from {e}");
                }
            }
        }
    }
}
