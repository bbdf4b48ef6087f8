//! Diagnostics (errors and warnings with a source location) and the crate's
//! error type.

use std::fmt;
use std::path::{Path, PathBuf};

/// How serious a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Something bitzel did not evaluate (for example anonymous Python) and
    /// that may make a value differ from BitBake's.
    Note,
    /// BitBake would warn here; the value is still what BitBake computes.
    Warning,
    /// BitBake would refuse this input; the statement was skipped.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// A message about one place in one metadata file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Diagnostic {
    /// How serious it is.
    pub severity: Severity,
    /// The file the message is about.
    pub file: PathBuf,
    /// 1-based line (0 when the message is about the whole file).
    pub line: u32,
    /// 1-based column (0 when unknown).
    pub col: u32,
    /// What is wrong and, where possible, what to do about it.
    pub message: String,
    /// The source line and a caret under the column (empty when unknown).
    pub snippet: String,
    /// BitBake stops here with `bb.fatal` (the message logged, then
    /// `bb.BBHandledException`) rather than raising `bb.parse.ParseError`.
    pub fatal: bool,
    /// The BitBake logger BitBake writes this message to when BitBake's
    /// parser reports it itself (`BitBake.Parsing` for `bb.parse.logger`,
    /// `BitBake` for `bb.warn`); `None` for bitzel's own messages and for
    /// those Python already logged. `handle` passes it on (BitBake's tests
    /// look for these log lines); the parse cache does not keep it.
    pub log_as: Option<&'static str>,
}

impl Diagnostic {
    /// A diagnostic whose snippet is cut from `source_line`.
    pub fn new(
        severity: Severity,
        file: &Path,
        line: u32,
        col: u32,
        message: impl Into<String>,
        source_line: Option<&str>,
    ) -> Diagnostic {
        Diagnostic {
            severity,
            file: file.to_path_buf(),
            line,
            col,
            message: message.into(),
            snippet: source_line.map(|l| snippet(l, col)).unwrap_or_default(),
            fatal: false,
            log_as: None,
        }
    }

    /// The same diagnostic, one BitBake logs to the logger `name`.
    pub fn logged_as(self, name: &'static str) -> Diagnostic {
        Diagnostic {
            log_as: Some(name),
            ..self
        }
    }

    /// The same diagnostic, marked as one BitBake reports with `bb.fatal`.
    pub fn fatal(self) -> Diagnostic {
        Diagnostic {
            fatal: true,
            ..self
        }
    }

    /// True for [`Severity::Error`].
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Render a source line with a caret under 1-based column `col`.
pub(crate) fn snippet(line: &str, col: u32) -> String {
    let line: String = line.chars().take(200).collect();
    let line = line.replace('\t', " ");
    if col == 0 {
        return line;
    }
    let pad = (col as usize).saturating_sub(1).min(line.chars().count());
    format!("{line}\n{}^", " ".repeat(pad))
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
            if self.col > 0 {
                write!(f, ":{}", self.col)?;
            }
        }
        write!(f, ": {}: {}", self.severity, self.message)?;
        if !self.snippet.is_empty() {
            let num = self.line.to_string();
            let gutter = " ".repeat(num.len());
            let mut lines = self.snippet.lines();
            if let Some(first) = lines.next() {
                write!(f, "\n{gutter} |\n{num} | {first}")?;
            }
            for rest in lines {
                write!(f, "\n{gutter} | {rest}")?;
            }
        }
        Ok(())
    }
}

/// Why a workspace could not be loaded at all. Problems inside individual
/// files are [`Diagnostic`]s in the [`crate::Workspace`] instead.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// A file could not be read.
    #[error("{}: cannot read: {source}; check that the file exists and is readable", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The base configuration has errors, so no recipe can be parsed.
    #[error("the base configuration has {} error(s); first: {}", diagnostics.iter().filter(|d| d.is_error()).count(), first_error(diagnostics))]
    Config {
        /// Every diagnostic of the base configuration.
        diagnostics: Vec<Diagnostic>,
    },
    /// The parse cache directory could not be used.
    #[error("{}: parse cache: {message}; delete the directory or run without a cache", path.display())]
    Cache {
        /// The cache directory or file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

fn first_error(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .find(|d| d.is_error())
        .map(|d| d.to_string())
        .unwrap_or_default()
}
