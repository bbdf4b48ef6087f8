//! Locations, errors and warnings.
//!
//! Every error and warning points at a place in a configuration file:
//! `file:line:column` (both 1-based), then one line of text that says what is
//! wrong and, where there is one, what the user can do about it.

use std::fmt;
use std::path::{Path, PathBuf};

/// A place in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    /// The file, as an absolute path.
    pub file: PathBuf,
    /// Line, 1-based.
    pub line: usize,
    /// Column in characters, 1-based.
    pub column: usize,
}

impl Location {
    /// A location in `file` at `line`:`column` (1-based).
    pub fn new(file: impl Into<PathBuf>, line: usize, column: usize) -> Self {
        Location {
            file: file.into(),
            line,
            column,
        }
    }

    /// The start of `file` (1:1), for errors about the file as a whole.
    pub fn start_of(file: impl Into<PathBuf>) -> Self {
        Location::new(file, 1, 1)
    }
}

impl fmt::Display for Location {
    /// `file:line:column`, the file shown relative to the current directory
    /// when it lies below it (as compilers do), else absolute.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            shown_path(&self.file).display(),
            self.line,
            self.column
        )
    }
}

/// `path` relative to the current directory when it lies below it.
pub(crate) fn shown_path(path: &Path) -> PathBuf {
    if let Ok(cwd) = std::env::current_dir() {
        if let Ok(rel) = path.strip_prefix(&cwd) {
            if !rel.as_os_str().is_empty() {
                return rel.to_path_buf();
            }
        }
    }
    path.to_path_buf()
}

/// A warning about a configuration file: a kas key bitzel does not support
/// yet, an include that was not followed, a dirty checkout left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Where.
    pub at: Location,
    /// What, in one line.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// Why a configuration could not be loaded or resolved. Every variant carries
/// the [`Location`] it is about and renders as one line
/// `file:line:column: message`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A file (the configuration itself or an include) could not be read.
    #[error("{at}: cannot read {what} `{}`: {source}", shown_path(path).display())]
    Read {
        /// The file that names it (or the file itself, at 1:1).
        at: Location,
        /// What it is ("config file", "include").
        what: &'static str,
        /// The path that was opened.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The YAML is malformed.
    #[error("{at}: invalid YAML: {message}")]
    Syntax {
        /// Where the YAML parser stopped.
        at: Location,
        /// The parser's description.
        message: String,
    },
    /// A key bitzel (and kas) does not know: a typo, usually.
    #[error(
        "{at}: unknown key `{}`{}{}",
        one_line(key),
        context_suffix(context),
        hint_suffix(suggestion, expected)
    )]
    UnknownKey {
        /// The key's location.
        at: Location,
        /// The key as written.
        key: String,
        /// Where it appeared, e.g. "repo `meta-foo`"; empty at the top level.
        context: String,
        /// The closest known key, if one is close.
        suggestion: Option<&'static str>,
        /// The keys allowed at this place (listed when nothing is close).
        expected: &'static [&'static str],
    },
    /// `header.version` is missing, malformed or outside what bitzel reads.
    #[error("{at}: {message}")]
    Version {
        /// Location of the version (or of the header).
        at: Location,
        /// What is wrong and which versions are accepted.
        message: String,
    },
    /// A value has the wrong type or an invalid value.
    #[error("{at}: {message}")]
    Invalid {
        /// Location of the value.
        at: Location,
        /// What is wrong and what is expected.
        message: String,
    },
    /// `header.includes` include each other in a cycle.
    #[error("{at}: include cycle: {chain}")]
    IncludeCycle {
        /// The include entry that closes the cycle.
        at: Location,
        /// The files of the cycle, `a.yml -> b.yml -> a.yml`.
        chain: String,
    },
    /// A repo's directory does not exist.
    #[error("{at}: repo `{repo}`: directory `{}` does not exist", shown_path(path).display())]
    MissingRepo {
        /// Where the repo (or its `path`) is declared.
        at: Location,
        /// The repo's id.
        repo: String,
        /// The directory that was looked for.
        path: PathBuf,
    },
    /// No BitBake library (a directory holding `bb/`) was found, or the one
    /// configured has no `bb/` package.
    #[error("{at}: {message}")]
    BitbakeLib {
        /// The setting that named a wrong directory, else the top
        /// configuration file.
        at: Location,
        /// Every place looked and how to name the library.
        message: String,
    },
    /// A layer directory does not exist.
    #[error("{at}: layer `{layer}` of repo `{repo}` not found: `{}` is not a directory", shown_path(path).display())]
    MissingLayer {
        /// Where the layer is named (or the repo, for its implicit `.` layer).
        at: Location,
        /// The repo's id.
        repo: String,
        /// The layer as written (`.` for the repo itself).
        layer: String,
        /// The directory that was looked for.
        path: PathBuf,
    },
    /// Cloning or checking out a git repo failed.
    #[error("{at}: repo `{repo}`: {message}")]
    Git {
        /// Where the repo's `url` is declared.
        at: Location,
        /// The repo's id.
        repo: String,
        /// What failed, with git's own message.
        message: String,
    },
}

impl ConfigError {
    /// The location the error is about.
    pub fn location(&self) -> &Location {
        match self {
            ConfigError::Read { at, .. }
            | ConfigError::Syntax { at, .. }
            | ConfigError::UnknownKey { at, .. }
            | ConfigError::Version { at, .. }
            | ConfigError::Invalid { at, .. }
            | ConfigError::IncludeCycle { at, .. }
            | ConfigError::MissingRepo { at, .. }
            | ConfigError::MissingLayer { at, .. }
            | ConfigError::Git { at, .. }
            | ConfigError::BitbakeLib { at, .. } => at,
        }
    }

    pub(crate) fn invalid(at: &Location, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            at: at.clone(),
            message: message.into(),
        }
    }
}

/// `text` with control characters (a newline or tab in a quoted YAML key)
/// escaped, so that an error stays one line.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn context_suffix(context: &str) -> String {
    if context.is_empty() {
        String::new()
    } else {
        format!(" in {context}")
    }
}

fn hint_suffix(suggestion: &Option<&str>, expected: &[&str]) -> String {
    match suggestion {
        Some(s) => format!(" (did you mean `{s}`?)"),
        None if expected.is_empty() => String::new(),
        None => format!(" (expected one of: {})", expected.join(", ")),
    }
}
