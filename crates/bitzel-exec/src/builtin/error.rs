//! The one error type of the built-ins.

use std::path::PathBuf;

/// Why a built-in could not do its job. Every variant names the `SRC_URI`
/// entry (as written) or the file involved, and says what the user can do.
#[derive(Debug, thiserror::Error)]
pub enum BuiltinError {
    /// A `SRC_URI` entry that cannot be understood.
    #[error("SRC_URI entry {index} `{uri}`: {reason}")]
    InvalidUri {
        /// The entry as written.
        uri: String,
        /// Its 0-based position in `SRC_URI`.
        index: usize,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A scheme or feature bitzel does not fetch.
    #[error("SRC_URI entry `{uri}`: {what} is not supported by bitzel's fetcher")]
    Unsupported {
        /// The entry as written.
        uri: String,
        /// What is not supported.
        what: String,
    },
    /// A `file://` entry found neither in `FILESPATH` nor in `DL_DIR`.
    #[error(
        "SRC_URI entry `{uri}`: `{name}` was not found; searched (in order):\n{}\n\
         put the file into one of these directories (usually `files/` next to the recipe) \
         or fix the name",
        searched.iter().map(|p| format!("  {}", p.display())).collect::<Vec<_>>().join("\n")
    )]
    LocalFileNotFound {
        /// The entry as written.
        uri: String,
        /// The path the entry asks for.
        name: String,
        /// Every directory that was searched.
        searched: Vec<PathBuf>,
    },
    /// A download whose content does not have the expected checksum.
    #[error(transparent)]
    ChecksumMismatch(Box<ChecksumMismatch>),
    /// A download without a checksum in the recipe.
    #[error(
        "no checksum for `{uri}`: bitzel only uses downloads pinned by content; add \
         SRC_URI[{flag}] = \"{actual}\" to the recipe (the sha256 of what was just downloaded)"
    )]
    MissingChecksum {
        /// The entry as written.
        uri: String,
        /// The flag to set.
        flag: String,
        /// The sha256 of the bytes received.
        actual: String,
    },
    /// A download that is needed while the network is off.
    #[error(
        "`{uri}` is needed but BB_NO_NETWORK is set and it is not in DL_DIR at {}; \
         put the file there (e.g. scripts/preseed-downloads) or unset BB_NO_NETWORK",
        path.display()
    )]
    NoNetwork {
        /// The entry as written.
        uri: String,
        /// Where the file (or git mirror) was looked for.
        path: PathBuf,
    },
    /// Every source (premirrors, upstream, mirrors) failed.
    #[error(
        "could not fetch `{uri}`; tried:\n{}",
        attempts.iter().map(|(u, why)| format!("  {u}: {why}")).collect::<Vec<_>>().join("\n")
    )]
    Download {
        /// The entry as written.
        uri: String,
        /// Each URL tried, with why it failed.
        attempts: Vec<(String, String)>,
    },
    /// A git command failed.
    #[error("SRC_URI entry `{uri}`: `{command}` failed: {detail}")]
    Git {
        /// The entry as written.
        uri: String,
        /// The command line.
        command: String,
        /// Its standard error (trimmed) or why it could not start.
        detail: String,
    },
    /// A bad `PREMIRRORS`/`MIRRORS` value.
    #[error("{variable}: {reason}")]
    Mirror {
        /// `PREMIRRORS` or `MIRRORS`.
        variable: String,
        /// What is wrong.
        reason: String,
    },
    /// A file-system operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done ("reading", "creating", …).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// The details of [`BuiltinError::ChecksumMismatch`].
#[derive(Debug, thiserror::Error)]
#[error(
    "checksum mismatch for `{uri}` (from {from}): expected sha256 {expected}, got {actual}; \
     {bad_file}. If the new content is expected (a new version), set \
     SRC_URI[{flag}] = \"{actual}\" in the recipe; otherwise {remedy}",
    remedy = self.remedy()
)]
pub struct ChecksumMismatch {
    /// The entry as written.
    pub uri: String,
    /// Where the bytes came from (the URL really used, maybe a mirror, or
    /// the file already in `DL_DIR`).
    pub from: String,
    /// The file that was checked, or that the download would have become.
    pub path: PathBuf,
    /// The flag that holds the checksum (`sha256sum` or `name.sha256sum`).
    pub flag: String,
    /// The checksum in the recipe.
    pub expected: String,
    /// The checksum of the bytes received.
    pub actual: String,
    /// What became of the bytes with the wrong checksum.
    pub bad_file: BadFile,
    /// `BB_NO_NETWORK` was set, so nothing was downloaded again.
    pub no_network: bool,
}

impl ChecksumMismatch {
    fn remedy(&self) -> String {
        match (&self.bad_file, self.no_network) {
            (BadFile::LeftInPlace, _) => {
                format!("replace {} with the right file", self.path.display())
            }
            (_, true) => format!(
                "put the right file at {} or unset BB_NO_NETWORK to download it again",
                self.path.display()
            ),
            (_, false) => "retry or check upstream".to_string(),
        }
    }
}

/// What the fetcher did with bytes whose checksum is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadFile {
    /// Renamed (atomically) to `<path>_bad-checksum_<actual sha256>` beside
    /// where the download belongs, as BitBake's `rename_bad_checksum` does:
    /// the evidence is kept and the next attempt starts clean.
    MovedAside(PathBuf),
    /// A download that could not be kept (deleted).
    NotKept,
    /// A local (`file://`) file, left where it is.
    LeftInPlace,
}

impl std::fmt::Display for BadFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadFile::MovedAside(p) => write!(f, "the file was moved aside to {}", p.display()),
            BadFile::NotKept => f.write_str("the download was not kept"),
            BadFile::LeftInPlace => f.write_str("the file was left in place"),
        }
    }
}

impl BuiltinError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        BuiltinError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
