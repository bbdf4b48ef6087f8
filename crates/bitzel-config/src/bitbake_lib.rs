//! Finding the BitBake library (the directory holding the `bb` package) that
//! the project's own Python (`${@...}` outside bitzel's Rust subset,
//! anonymous functions, handlers, Python tasks) imports. bitzel carries no
//! copy of BitBake: the library is the user's, found in this order:
//!
//! 1. `bitzel: bitbake_lib: <dir>` in the kas file (relative to the file
//!    that sets it);
//! 2. the environment variable `BITZEL_BITBAKE_LIB` (its value is passed
//!    in by the caller, so the search itself reads no environment);
//! 3. `<repo>/bitbake/lib` of a repo of the kas file, repos in name order
//!    (poky carries one);
//! 4. an importable `bb` in the environment of [`SYSTEM_PYTHON`], the
//!    interpreter bitzel embeds.
//!
//! A directory named by 1 or 2 that is not a BitBake library is an error,
//! never skipped: the user asked for it.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{ConfigError, Location, Project};

/// The Python interpreter bitzel embeds and asks for an importable `bb`.
pub const SYSTEM_PYTHON: &str = "/usr/bin/python3";

/// The environment variable naming a BitBake library directory.
pub const ENV_VAR: &str = "BITZEL_BITBAKE_LIB";

/// Where the BitBake library came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BitbakeLibSource {
    /// `bitzel: bitbake_lib:` in a configuration file.
    Config {
        /// Where the setting is.
        location: Location,
    },
    /// The `BITZEL_BITBAKE_LIB` environment variable.
    Env,
    /// `bitbake/lib` inside a repo of the project.
    Repo {
        /// The repo's name.
        name: String,
    },
    /// An importable `bb` in [`SYSTEM_PYTHON`]'s environment.
    Python,
}

/// A BitBake library directory: `dir/bb/__init__.py` exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitbakeLib {
    /// The directory to put on `sys.path` (it holds `bb/`).
    pub dir: PathBuf,
    /// How it was found.
    pub source: BitbakeLibSource,
}

fn is_bitbake_lib(dir: &Path) -> bool {
    dir.join("bb").join("__init__.py").is_file()
}

/// Find the project's BitBake library (see the module documentation for the
/// order). `env_value` is the value of `BITZEL_BITBAKE_LIB`, if set.
pub fn find_bitbake_lib(
    project: &Project,
    env_value: Option<&OsStr>,
) -> Result<BitbakeLib, ConfigError> {
    let top = Location::start_of(&project.file);
    if let Some((dir, at)) = &project.bitzel.bitbake_lib {
        if is_bitbake_lib(dir) {
            return Ok(BitbakeLib {
                dir: dir.clone(),
                source: BitbakeLibSource::Config {
                    location: at.clone(),
                },
            });
        }
        return Err(ConfigError::BitbakeLib {
            at: at.clone(),
            message: format!(
                "`bitzel.bitbake_lib` is `{}`, which is not a BitBake library directory (it has no bb/__init__.py): name the `lib` directory of a BitBake checkout",
                dir.display()
            ),
        });
    }
    if let Some(v) = env_value.filter(|v| !v.is_empty()) {
        // A relative value is relative to the current directory, as a
        // path on a command line is.
        let dir = std::env::current_dir()
            .map(|cwd| cwd.join(v))
            .unwrap_or_else(|_| PathBuf::from(v));
        if is_bitbake_lib(&dir) {
            return Ok(BitbakeLib {
                dir,
                source: BitbakeLibSource::Env,
            });
        }
        return Err(ConfigError::BitbakeLib {
            at: top,
            message: format!(
                "{ENV_VAR} is `{}`, which is not a BitBake library directory (it has no bb/__init__.py): name the `lib` directory of a BitBake checkout, or unset it",
                dir.display()
            ),
        });
    }
    let mut looked = vec![
        "`bitzel: bitbake_lib:` in the kas file (not set)".to_string(),
        format!("the {ENV_VAR} environment variable (not set)"),
    ];
    let mut repos: Vec<_> = project.repos.iter().collect();
    repos.sort_by(|a, b| a.name.cmp(&b.name));
    for repo in repos {
        let Some(rdir) = &repo.dir else { continue };
        let dir = rdir.join("bitbake").join("lib");
        if is_bitbake_lib(&dir) {
            return Ok(BitbakeLib {
                dir,
                source: BitbakeLibSource::Repo {
                    name: repo.name.clone(),
                },
            });
        }
        looked.push(format!("{} (repo `{}`)", dir.display(), repo.name));
    }
    if let Some(dir) = python_bb_dir() {
        return Ok(BitbakeLib {
            dir,
            source: BitbakeLibSource::Python,
        });
    }
    looked.push(format!("`import bb` in {SYSTEM_PYTHON}"));
    Err(ConfigError::BitbakeLib {
        at: top,
        message: format!(
            "this metadata needs BitBake's Python library (`bb`) and none was found; looked at: {}. Set `bitzel: bitbake_lib: <path to bitbake/lib>` in the kas file or {ENV_VAR}=<path>, or add a repo that carries bitbake/ (poky does)",
            looked.join("; ")
        ),
    })
}

/// The directory holding `bb` when [`SYSTEM_PYTHON`] can import it.
fn python_bb_dir() -> Option<PathBuf> {
    let out = Command::new(SYSTEM_PYTHON)
        .args([
            "-c",
            "import os, bb; print(os.path.dirname(os.path.dirname(os.path.abspath(bb.__file__))))",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    is_bitbake_lib(&dir).then_some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_lib(dir: &Path) {
        std::fs::create_dir_all(dir.join("bb")).unwrap();
        std::fs::write(dir.join("bb/__init__.py"), "").unwrap();
    }

    fn project(tmp: &Path, extra: &str) -> Project {
        std::fs::create_dir_all(tmp.join("zz/bitbake/lib")).unwrap();
        std::fs::create_dir_all(tmp.join("aa")).unwrap();
        let yml = tmp.join("p.yml");
        std::fs::write(
            &yml,
            format!(
                "header:\n  version: 14\nrepos:\n  zz:\n    path: zz\n  aa:\n    path: aa\n{extra}"
            ),
        )
        .unwrap();
        crate::load(&yml).unwrap()
    }

    #[test]
    fn order_is_config_env_repo() {
        let t = tempfile::tempdir().unwrap();
        let p = project(t.path(), "bitzel:\n  bitbake_lib: cfg/lib\n");
        fake_lib(&t.path().join("cfg/lib"));
        fake_lib(&t.path().join("envlib"));
        fake_lib(&t.path().join("zz/bitbake/lib"));
        let envlib = t.path().join("envlib");
        let got = find_bitbake_lib(&p, Some(envlib.as_os_str())).unwrap();
        assert_eq!(got.dir, t.path().join("cfg/lib"));
        match got.source {
            BitbakeLibSource::Config { location } => assert_eq!(location.line, 9),
            other => panic!("{other:?}"),
        }

        let p = project(t.path(), "");
        let got = find_bitbake_lib(&p, Some(envlib.as_os_str())).unwrap();
        assert_eq!(
            (got.dir, got.source),
            (envlib.clone(), BitbakeLibSource::Env)
        );
        let got = find_bitbake_lib(&p, None).unwrap();
        assert_eq!(
            (got.dir, got.source),
            (
                t.path().join("zz/bitbake/lib"),
                BitbakeLibSource::Repo { name: "zz".into() }
            )
        );
        // Repos are tried in name order.
        fake_lib(&t.path().join("aa/bitbake/lib"));
        let got = find_bitbake_lib(&p, None).unwrap();
        assert_eq!(got.source, BitbakeLibSource::Repo { name: "aa".into() });
    }

    #[test]
    fn a_named_directory_that_is_no_library_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        let p = project(t.path(), "bitzel:\n  bitbake_lib: nowhere\n");
        let e = find_bitbake_lib(&p, None).unwrap_err().to_string();
        assert!(
            e.contains("p.yml:9:16") && e.contains("no bb/__init__.py"),
            "{e}"
        );
        let p = project(t.path(), "");
        let e = find_bitbake_lib(&p, Some(t.path().join("nowhere").as_os_str()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("BITZEL_BITBAKE_LIB") && e.contains("unset it"),
            "{e}"
        );
    }

    #[test]
    fn not_found_says_where_it_looked_and_how_to_set_it() {
        let t = tempfile::tempdir().unwrap();
        let p = project(t.path(), "");
        match find_bitbake_lib(&p, None) {
            // A host whose python3 can import bb finds it last.
            Ok(lib) => assert_eq!(lib.source, BitbakeLibSource::Python),
            Err(e) => {
                let e = e.to_string();
                for want in [
                    "zz/bitbake/lib (repo `zz`)",
                    "aa/bitbake/lib (repo `aa`)",
                    "import bb",
                    "bitbake_lib:",
                    "BITZEL_BITBAKE_LIB=<path>",
                ] {
                    assert!(e.contains(want), "{want}: {e}");
                }
            }
        }
    }
}
