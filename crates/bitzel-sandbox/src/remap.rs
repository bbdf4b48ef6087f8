//! Sandbox paths without a mount namespace, for the `none` and `sandbox-exec` backends.
//!
//! A spec's mounts put host directories at fixed sandbox paths (`/bitzel/work`, ...). Without a
//! mount namespace those paths cannot exist per task, so they are **rewritten**: the mount tree
//! is realised in a per-task host directory, the *host root* (a bind becomes a symlink to its
//! source, a tmpfs an empty directory), and every top-level mount destination `/x` the task is
//! given becomes `<host root>/x` — in argv, in environment values and in the working directory
//! (the backends do this), and in the text of the files the caller writes for the task, such as
//! its script (the caller does this with [`PathMap::rewrite`], before the run).
//!
//! Overlay mounts cannot be realised this way: the caller flattens the layers into a directory
//! and binds that. Nothing is read-only: a read-only bind is a symlink to a directory the task
//! could write (callers give copies, never their caches).

use std::path::{Component, Path, PathBuf};

use crate::error::SandboxError;
use crate::spec::Mount;

/// Characters a host root may contain: it is spliced into shell scripts unquoted and into
/// `PATH`-like lists, so no whitespace, quotes, `$`, `:` or other shell syntax.
fn safe_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '+' | '@' | ',')
}

/// Characters that may stand right before an absolute path: between shell words, in a
/// `VAR=value`, a `PATH`-like list, quotes.
fn separator(b: u8) -> bool {
    b.is_ascii_whitespace()
        || matches!(
            b,
            b'\''
                | b'"'
                | b'='
                | b':'
                | b','
                | b';'
                | b'('
                | b')'
                | b'|'
                | b'&'
                | b'<'
                | b'>'
                | b'`'
        )
}

/// Characters that continue a file name (`/bitzel/workdir` is not below `/bitzel/work`).
fn name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+' | b'@' | b'~')
}

/// Where each sandbox path of a spec is on the host, for backends that cannot mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathMap {
    root: PathBuf,
    /// Top-level mount destinations (none below another), longest first.
    prefixes: Vec<String>,
}

impl PathMap {
    /// The map for `mounts` realised under `root`. `root` must be absolute and free of `..`,
    /// whitespace and shell syntax (it is written into scripts unquoted).
    pub fn new(mounts: &[Mount], root: &Path) -> Result<PathMap, SandboxError> {
        let text = root.to_str().unwrap_or_default();
        if !root.is_absolute()
            || root.components().any(|c| matches!(c, Component::ParentDir))
            || text.is_empty()
            || !text.chars().all(safe_path_char)
        {
            return Err(SandboxError::InvalidSpec {
                reason: format!(
                    "the per-task host root `{}` must be an absolute path of letters, digits and `/._-+@,` only: it replaces the sandbox paths in task scripts and PATH; move the build directory to such a path",
                    root.display()
                ),
            });
        }
        let dsts: Vec<&Path> = mounts.iter().map(Mount::dst).collect();
        let mut prefixes: Vec<String> = dsts
            .iter()
            .filter(|d| !dsts.iter().any(|o| o != *d && d.starts_with(o)))
            .map(|d| d.to_string_lossy().trim_end_matches('/').to_string())
            .filter(|d| !d.is_empty())
            .collect();
        prefixes.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        prefixes.dedup();
        Ok(PathMap {
            root: root.to_path_buf(),
            prefixes,
        })
    }

    /// The host root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The task's private temporary directory (`TMPDIR`), inside the host root.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// The host path of the sandbox path `p`: below the root when `p` lies below a mount,
    /// else `p` itself (the host's own file).
    pub fn host_path(&self, p: &Path) -> PathBuf {
        if self.prefixes.iter().any(|m| p.starts_with(m)) {
            self.root.join(p.strip_prefix("/").unwrap_or(p))
        } else {
            p.to_path_buf()
        }
    }

    /// `text` with every absolute path that starts with a mount destination moved below the
    /// host root. A match must start a path (after a separator, or after an option such as
    /// `-I`; a host or relative path that merely contains `/bitzel/work` is left alone) and
    /// end at a path boundary.
    pub fn rewrite(&self, text: &str) -> String {
        let bytes = text.as_bytes();
        let root = self.root.to_string_lossy();
        let mut out = String::with_capacity(text.len());
        let mut copied = 0;
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] != b'/' || !starts_path(bytes, i) {
                i += 1;
                continue;
            }
            let hit = self.prefixes.iter().find(|m| {
                bytes[i..].starts_with(m.as_bytes())
                    && bytes.get(i + m.len()).is_none_or(|b| !name_char(*b))
            });
            match hit {
                Some(m) => {
                    out.push_str(&text[copied..i]);
                    out.push_str(&root);
                    out.push_str(m);
                    i += m.len();
                    copied = i;
                }
                None => i += 1,
            }
        }
        out.push_str(&text[copied..]);
        out
    }

    /// Create the host root (it must not exist yet) with the mount tree in it, and the private
    /// temporary directory.
    pub(crate) fn realise(&self, mounts: &[Mount]) -> Result<(), SandboxError> {
        let io = |what: &str, p: &Path, e: std::io::Error| {
            SandboxError::io(what.to_string(), Some(p.to_path_buf()), e)
        };
        if let Some(parent) = self.root.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| io("creating the host root's parent", parent, e))?;
        }
        std::fs::create_dir(&self.root).map_err(|e| io("creating the host root", &self.root, e))?;
        let tmp = self.tmp_dir();
        std::fs::create_dir(&tmp).map_err(|e| io("creating the task's temp dir", &tmp, e))?;
        for (i, m) in mounts.iter().enumerate() {
            let dst = m.dst();
            if let Some(outer) = mounts[..i].iter().find_map(|o| match o {
                Mount::Bind { dst: od, .. } if dst.starts_with(od) => Some(od),
                _ => None,
            }) {
                return Err(SandboxError::InvalidSpec {
                    reason: format!(
                        "`{}` lies inside the bind mount at `{}`; without a mount namespace a bind is a symlink to its source, and nothing can be mounted inside it",
                        dst.display(),
                        outer.display()
                    ),
                });
            }
            let host = self.root.join(dst.strip_prefix("/").unwrap_or(dst));
            match m {
                Mount::Tmpfs { .. } => {
                    std::fs::create_dir_all(&host).map_err(|e| io("creating", &host, e))?;
                }
                Mount::Bind { src, .. } => {
                    if let Err(e) = std::fs::symlink_metadata(src) {
                        return Err(SandboxError::Setup {
                            step: "bind".into(),
                            path: Some(src.clone()),
                            errno: e.raw_os_error().unwrap_or(0),
                            message: format!("the source of `{}` is not there", dst.display()),
                        });
                    }
                    if let Some(parent) = host.parent() {
                        std::fs::create_dir_all(parent).map_err(|e| io("creating", parent, e))?;
                    }
                    std::os::unix::fs::symlink(src, &host)
                        .map_err(|e| io("linking a bind source", &host, e))?;
                }
                Mount::Overlay { dst, .. } => {
                    return Err(SandboxError::InvalidSpec {
                        reason: format!(
                            "an overlay at `{}` needs a mount namespace; for a backend without one, flatten the layers into a directory and bind it",
                            dst.display()
                        ),
                    })
                }
            }
        }
        Ok(())
    }
}

/// Whether the `/` at `i` starts an absolute path: it follows a separator (or the start), or
/// the word before it is an option such as `-I` or `--sysroot` with no `/` in it.
fn starts_path(bytes: &[u8], i: usize) -> bool {
    let start = bytes[..i]
        .iter()
        .rposition(|b| separator(*b))
        .map_or(0, |p| p + 1);
    let word = &bytes[start..i];
    word.is_empty() || (word[0] == b'-' && !word.contains(&b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mounts() -> Vec<Mount> {
        vec![
            Mount::Bind {
                src: "/b/work".into(),
                dst: "/bitzel/work".into(),
                writable: true,
            },
            Mount::Tmpfs {
                dst: "/bitzel/downloads".into(),
            },
            Mount::Bind {
                src: "/dl/a.tar.gz".into(),
                dst: "/bitzel/downloads/a.tar.gz".into(),
                writable: false,
            },
            Mount::Bind {
                src: "/b/run.sh".into(),
                dst: "/bitzel/run.sh".into(),
                writable: false,
            },
        ]
    }

    #[test]
    fn paths_below_mounts_move_below_the_root_and_nothing_else_does() {
        let m = PathMap::new(&mounts(), Path::new("/r/t.1")).unwrap();
        let text = "cd /bitzel/work/build\nCFLAGS=\"-I/bitzel/work/inc -L/bitzel/work\"\n\
                    tar xf /bitzel/downloads/a.tar.gz -C '/bitzel/work'\n\
                    PATH=/usr/bin:/bitzel/work/bin\n\
                    ls /bitzel/workdir /home/u/bitzel/work /bitzel/sysroot /bitzel/run.sh\n\
                    echo ${X}/bitzel/work über/bitzel/work --sysroot=/bitzel/work -isystem/bitzel/work";
        expect_test::expect![[r#"
            cd /r/t.1/bitzel/work/build
            CFLAGS="-I/r/t.1/bitzel/work/inc -L/r/t.1/bitzel/work"
            tar xf /r/t.1/bitzel/downloads/a.tar.gz -C '/r/t.1/bitzel/work'
            PATH=/usr/bin:/r/t.1/bitzel/work/bin
            ls /bitzel/workdir /home/u/bitzel/work /bitzel/sysroot /r/t.1/bitzel/run.sh
            echo ${X}/bitzel/work über/bitzel/work --sysroot=/r/t.1/bitzel/work -isystem/r/t.1/bitzel/work"#]]
        .assert_eq(&m.rewrite(text));
        assert_eq!(
            m.host_path(Path::new("/bitzel/work/b")),
            Path::new("/r/t.1/bitzel/work/b")
        );
        assert_eq!(m.host_path(Path::new("/usr/bin")), Path::new("/usr/bin"));
        assert_eq!(m.rewrite("no paths"), "no paths");
    }

    #[test]
    fn a_root_that_would_break_a_script_is_refused() {
        for bad in ["/my build", "/a:b", "relative", "/a/../b", "/$HOME", "/a'b"] {
            let e = PathMap::new(&mounts(), Path::new(bad)).unwrap_err();
            assert!(e.to_string().contains("move the build directory"), "{e}");
        }
    }

    #[test]
    fn the_mount_tree_is_realised_as_symlinks_and_directories() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        std::fs::create_dir(&src).unwrap();
        let file = t.path().join("a.tar.gz");
        std::fs::write(&file, "x").unwrap();
        let mounts = vec![
            Mount::Bind {
                src: src.clone(),
                dst: "/bitzel/work".into(),
                writable: true,
            },
            Mount::Tmpfs {
                dst: "/bitzel/downloads".into(),
            },
            Mount::Bind {
                src: file.clone(),
                dst: "/bitzel/downloads/a.tar.gz".into(),
                writable: false,
            },
        ];
        let root = t.path().join("root");
        let m = PathMap::new(&mounts, &root).unwrap();
        m.realise(&mounts).unwrap();
        assert_eq!(std::fs::read_link(root.join("bitzel/work")).unwrap(), src);
        assert_eq!(
            std::fs::read_to_string(root.join("bitzel/downloads/a.tar.gz")).unwrap(),
            "x"
        );
        assert!(m.tmp_dir().is_dir());
        // Realising twice in one root is refused: the root must be fresh.
        assert!(m.realise(&mounts).is_err());

        let inside = vec![
            mounts[0].clone(),
            Mount::Tmpfs {
                dst: "/bitzel/work/x".into(),
            },
        ];
        let m = PathMap::new(&inside, &t.path().join("root2")).unwrap();
        let e = m.realise(&inside).unwrap_err().to_string();
        assert!(e.contains("inside the bind mount"), "{e}");
        assert!(!src.join("x").exists(), "nothing was created in the source");

        let overlay = vec![Mount::Overlay {
            lowers: vec![src],
            upper: None,
            dst: "/bitzel/sysroot".into(),
        }];
        let m = PathMap::new(&overlay, &t.path().join("root3")).unwrap();
        let e = m.realise(&overlay).unwrap_err().to_string();
        assert!(e.contains("flatten the layers"), "{e}");
    }
}
