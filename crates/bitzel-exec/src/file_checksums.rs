//! A task's `[file-checksums]` flag: BitBake's list of local files (and
//! directories, and globs) whose contents enter the task's signature.
//!
//! The flag is a space-separated list of `path:True` / `path:False` entries
//! (a path may contain spaces: an entry ends at `:True` or `:False`), where
//! the marker says whether the file existed when the metadata was parsed.
//! bitzel follows BitBake's `get_checksums` (`bb/checksum.py`):
//!
//! - `path:False` is not read: the entry is recorded as absent.
//! - `path:True` naming a **file**: its content digest is an input.
//! - `path:True` naming a **directory**: every entry below it is an input,
//!   through one tree digest (relative paths, file contents, executable bits,
//!   symlink targets). Stricter than BitBake, which skips the version-control
//!   directories of `BB_SIGNATURE_LOCAL_DIRS_EXCLUDE`: the task sees the whole
//!   directory, so the whole directory is keyed.
//! - `path:True` containing `*` is a **glob** (Python's `glob.glob`: `*`, `?`
//!   and `[...]` within one path component, hidden names only when the
//!   pattern spells the dot); every match is handled as above. A glob that
//!   matches nothing is recorded as absent.
//! - `path:True` that does not exist: BitBake warns ("Unable to get
//!   checksum") and leaves it out; bitzel does the same (a warning for the
//!   caller to log) and records it as absent.
//! - A symlink named by an entry is followed (BitBake skips symlinked
//!   directories; bitzel keys and mounts what the link points to, which is
//!   what the task sees).
//!
//! Inside the sandbox every file or directory is mounted read-only at
//! `/bitzel/files/<base name>` (`${TASK_FILESDIR}`): a directory keeps its
//! structure below its base name. Two entries with the same base name are an
//! error. Nothing is ever dropped silently: absent entries go into the key by
//! base name, so an entry that appears or disappears changes it, and no host
//! path does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bitzel_cache::Digest;

use crate::builtin::tree_digest;

/// One file or directory given to the task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFile {
    /// Where it is on the host (as named by the flag, or a glob match).
    pub host: PathBuf,
    /// The content digest (file) or tree digest (directory).
    pub digest: Digest,
    /// Whether it is a directory.
    pub is_dir: bool,
}

/// What a task's `[file-checksums]` flag gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskFiles {
    /// Base name (its name under `/bitzel/files`) → file or directory.
    pub files: BTreeMap<String, TaskFile>,
    /// Entries recorded as absent, by base name (a glob's by its pattern's
    /// last component), in flag order: `False` entries, `True` entries that
    /// do not exist, globs that matched nothing.
    pub absent: Vec<String>,
    /// Things the caller should warn about (a `True` entry that does not
    /// exist, a `False` entry that does).
    pub warnings: Vec<String>,
}

/// Why a `[file-checksums]` flag cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FileChecksumsError {
    /// An entry has no base name to mount it under (e.g. `/`).
    #[error("{task}[file-checksums]: `{entry}` has no file name; name a file or directory")]
    NoName {
        /// The task.
        task: String,
        /// The entry's path.
        entry: String,
    },
    /// Two entries would be mounted under the same name.
    #[error(
        "{task}[file-checksums]: `{}` and `{}` share the base name `{name}` under /bitzel/files; rename one",
        first.display(), second.display()
    )]
    SameName {
        /// The task.
        task: String,
        /// The shared base name.
        name: String,
        /// The first entry.
        first: PathBuf,
        /// The second entry.
        second: PathBuf,
    },
    /// A glob pattern is malformed.
    #[error("{task}[file-checksums]: bad glob `{pattern}`: {msg}; fix the pattern")]
    BadGlob {
        /// The task.
        task: String,
        /// The pattern.
        pattern: String,
        /// What is wrong.
        msg: String,
    },
    /// An entry is neither a regular file nor a directory.
    #[error("{task}[file-checksums]: `{}` is neither a regular file nor a directory; list files or directories only", path.display())]
    NotFileOrDir {
        /// The task.
        task: String,
        /// The path.
        path: PathBuf,
    },
    /// Reading an entry failed.
    #[error("{task}[file-checksums]: reading `{}`: {msg}", path.display())]
    Io {
        /// The task.
        task: String,
        /// The path.
        path: PathBuf,
        /// What went wrong.
        msg: String,
    },
}

/// The entries of a flag value, each as (path, marked present): an entry
/// ends at a word ending in `:True` or `:False` (so paths may hold spaces);
/// trailing words without a marker form one entry taken as present.
pub(crate) fn entries(value: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut cur: Vec<&str> = Vec::new();
    for word in value.split_whitespace() {
        cur.push(word);
        let joined = cur.join(" ");
        let marked = if let Some(p) = joined.strip_suffix(":True") {
            Some((p.to_string(), true))
        } else {
            joined
                .strip_suffix(":False")
                .map(|p| (p.to_string(), false))
        };
        if let Some(e) = marked {
            out.push(e);
            cur.clear();
        }
    }
    if !cur.is_empty() {
        out.push((cur.join(" "), true));
    }
    out
}

fn base_name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_string())
}

/// Resolve `task`'s `[file-checksums]` value (already expanded).
pub fn task_files(task: &str, value: &str) -> Result<TaskFiles, FileChecksumsError> {
    let mut out = TaskFiles::default();
    for (path, present) in entries(value) {
        if !present {
            if Path::new(&path).exists() {
                out.warnings.push(format!(
                    "{task}[file-checksums]: `{path}` is listed as absent (False) but exists; \
                     the task does not get it (parse the metadata again to pick it up)"
                ));
            }
            out.absent.push(base_name(&path));
            continue;
        }
        if path.contains('*') {
            let matches = glob_matches(task, &path)?;
            if matches.is_empty() {
                out.absent.push(base_name(&path));
            }
            for m in matches {
                add(task, &m, &mut out)?;
            }
        } else {
            add(task, Path::new(&path), &mut out)?;
        }
    }
    Ok(out)
}

/// The matches of a glob, sorted, as Python's `glob.glob` finds them.
fn glob_matches(task: &str, pattern: &str) -> Result<Vec<PathBuf>, FileChecksumsError> {
    let opts = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let paths = glob::glob_with(pattern, opts).map_err(|e| FileChecksumsError::BadGlob {
        task: task.to_string(),
        pattern: pattern.to_string(),
        msg: e.to_string(),
    })?;
    let mut out = Vec::new();
    for p in paths {
        let p = p.map_err(|e| FileChecksumsError::Io {
            task: task.to_string(),
            path: e.path().to_path_buf(),
            msg: e.error().to_string(),
        })?;
        out.push(p);
    }
    out.sort();
    Ok(out)
}

/// Digest one present entry (file or directory, symlinks followed) and add it.
fn add(task: &str, path: &Path, out: &mut TaskFiles) -> Result<(), FileChecksumsError> {
    let io = |msg: String| FileChecksumsError::Io {
        task: task.to_string(),
        path: path.to_path_buf(),
        msg,
    };
    let shown = path.display().to_string();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| FileChecksumsError::NoName {
            task: task.to_string(),
            entry: shown.clone(),
        })?;
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            out.warnings.push(format!(
                "{task}[file-checksums]: `{shown}` is listed as present (True) but does not exist; \
                 the task runs without it"
            ));
            out.absent.push(name);
            return Ok(());
        }
        Err(e) => return Err(io(e.to_string())),
    };
    let (digest, is_dir) = if meta.is_dir() {
        let hex = tree_digest(path).map_err(|e| io(e.to_string()))?;
        let d = hex
            .parse::<Digest>()
            .map_err(|e| io(format!("bad tree digest: {e}")))?;
        (d, true)
    } else if meta.is_file() {
        (
            Digest::of_file(path).map_err(|e| io(e.to_string()))?.0,
            false,
        )
    } else {
        return Err(FileChecksumsError::NotFileOrDir {
            task: task.to_string(),
            path: path.to_path_buf(),
        });
    };
    let file = TaskFile {
        host: path.to_path_buf(),
        digest,
        is_dir,
    };
    if let Some(first) = out.files.insert(name.clone(), file) {
        return Err(FileChecksumsError::SameName {
            task: task.to_string(),
            name,
            first: first.host,
            second: path.to_path_buf(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn entries_end_at_their_marker_and_may_hold_spaces() {
        assert_eq!(
            entries("/a/b c:True /d:False  /e "),
            vec![
                ("/a/b c".to_string(), true),
                ("/d".to_string(), false),
                ("/e".to_string(), true)
            ]
        );
        assert!(entries("  ").is_empty());
    }

    #[test]
    fn files_directories_globs_and_absent_entries() {
        let t = tempfile::tempdir().unwrap();
        let files = t.path().join("files");
        fs::create_dir_all(files.join("conf.d/sub")).unwrap();
        fs::write(files.join("a.cfg"), "A=1\n").unwrap();
        fs::write(files.join("b.cfg"), "B=1\n").unwrap();
        fs::write(files.join(".hidden.cfg"), "H\n").unwrap();
        fs::write(files.join("other.txt"), "x\n").unwrap();
        fs::write(files.join("conf.d/sub/deep"), "deep\n").unwrap();
        let p = |s: &str| files.join(s).display().to_string();
        let value = format!(
            "{}:True {}:True {}:True {}:False {}:True {}:True",
            p("*.cfg"),
            p("conf.d"),
            p("other.txt"),
            p("gone.conf"),
            p("*.none"),
            p("vanished.cfg"),
        );
        let got = task_files("do_configure", &value).unwrap();
        assert_eq!(
            got.files.keys().collect::<Vec<_>>(),
            ["a.cfg", "b.cfg", "conf.d", "other.txt"]
        );
        assert_eq!(got.files["a.cfg"].digest, Digest::of_bytes(b"A=1\n"));
        assert!(got.files["conf.d"].is_dir && !got.files["a.cfg"].is_dir);
        assert_eq!(got.absent, ["gone.conf", "*.none", "vanished.cfg"]);
        assert_eq!(got.warnings.len(), 1, "{:?}", got.warnings);
        assert!(got.warnings[0].contains("vanished.cfg"));

        // A file deep inside the directory is part of the directory's digest.
        let before = got.files["conf.d"].digest;
        fs::write(files.join("conf.d/sub/deep"), "changed\n").unwrap();
        let again = task_files("do_configure", &value).unwrap();
        assert_ne!(again.files["conf.d"].digest, before);
        // A new glob match appears as a new input.
        fs::write(files.join("c.cfg"), "C\n").unwrap();
        let again = task_files("do_configure", &value).unwrap();
        assert!(again.files.contains_key("c.cfg"));
        // A False entry that now exists is not read, but warned about.
        fs::write(files.join("gone.conf"), "back\n").unwrap();
        let again = task_files("do_configure", &value).unwrap();
        assert!(!again.files.contains_key("gone.conf"));
        assert!(again.warnings.iter().any(|w| w.contains("gone.conf")));
    }

    #[test]
    fn shared_base_names_and_unnamed_entries_are_errors() {
        let t = tempfile::tempdir().unwrap();
        for d in ["x", "y"] {
            fs::create_dir_all(t.path().join(d)).unwrap();
            fs::write(t.path().join(d).join("defconfig"), d).unwrap();
        }
        let v = format!(
            "{0}/x/defconfig:True {0}/y/defconfig:True",
            t.path().display()
        );
        let e = task_files("do_configure", &v).unwrap_err();
        assert!(matches!(e, FileChecksumsError::SameName { ref name, .. } if name == "defconfig"));
        assert!(e.to_string().contains("rename one"), "{e}");
        let e = task_files("do_configure", "/:True").unwrap_err();
        assert!(matches!(e, FileChecksumsError::NoName { .. }), "{e}");
    }
}
