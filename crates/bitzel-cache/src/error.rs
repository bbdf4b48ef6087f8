//! The crate's error type. Every variant names the path or digest involved and,
//! where there is one, what the user can do about it.

use std::io;
use std::path::PathBuf;

use crate::digest::{Digest, ParseDigestError};

/// Errors of the cache crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem operation failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done ("read", "create directory", ...).
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A CAS blob is not there.
    #[error("blob {digest} is missing from the cache at {} (re-run the task to repair it; `bitzel cache verify` repairs the index)", path.display())]
    MissingBlob {
        /// The blob.
        digest: Digest,
        /// Where it should be.
        path: PathBuf,
    },
    /// Output blobs left on a remote executor (fetched on demand) could
    /// not be fetched from it.
    #[error("{count} output blob(s) of a remotely executed task are only on {source_desc} and could not be fetched from it ({reason}); make it reachable again (or run the build without --remote-executor, which runs such tasks again)")]
    RemoteFetch {
        /// How many blobs were wanted.
        count: usize,
        /// The blob source (the engine's URL).
        source_desc: String,
        /// Why not.
        reason: String,
    },
    /// A CAS blob's content does not hash to its name. The blob is removed.
    #[error("blob {} is corrupt: its content hashes to {actual}; it was removed (re-run the task or `bitzel cache verify`)", path.display())]
    CorruptBlob {
        /// Where it was.
        path: PathBuf,
        /// Its name.
        expected: Digest,
        /// What its content hashes to.
        actual: Digest,
    },
    /// A stored record (tree manifest, action-cache entry, journal) does not decode.
    #[error("{what} {} is unreadable: {reason} (it is treated as absent; `bitzel cache verify` removes it)", path.display())]
    Corrupt {
        /// "tree manifest", "action-cache entry", ...
        what: &'static str,
        /// Where it is.
        path: PathBuf,
        /// Why it does not decode.
        reason: String,
    },
    /// A file in a captured directory cannot be represented in a tree.
    #[error("cannot capture {}: {reason}", path.display())]
    Unsupported {
        /// The offending file.
        path: PathBuf,
        /// What it is and why it is refused.
        reason: String,
    },
    /// A tree entry could write outside the directory it is materialised
    /// in, or is otherwise not a valid tree entry (bad path, entry below a
    /// non-directory, duplicate, bad mode or symlink target).
    #[error("tree entry {path:?} is invalid: {reason}")]
    BadEntryPath {
        /// The path as stored.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A tree manifest as a whole is unacceptable (too many entries, too large).
    #[error("tree manifest is invalid: {reason}")]
    BadTree {
        /// What is wrong.
        reason: String,
    },
    /// The sled index failed.
    #[error("cache index {} failed: {source} (the index is rebuildable: `bitzel cache verify` rebuilds it)", path.display())]
    Index {
        /// The index directory.
        path: PathBuf,
        /// sled's error.
        #[source]
        source: sled::Error,
    },
    /// The sled index is held by another process for longer than we wait.
    #[error("cache index {} is locked by {holder} (waited {waited_ms} ms); try again when it finishes", path.display())]
    IndexLocked {
        /// The index directory.
        path: PathBuf,
        /// Who holds it, as far as we know.
        holder: String,
        /// How long we waited.
        waited_ms: u64,
    },
    /// A size such as `10G` could not be parsed.
    #[error("invalid size {input:?}: expected a number with an optional K, M, G or T suffix (powers of 1024), e.g. 500M or 10G")]
    BadSize {
        /// What was given.
        input: String,
    },
    /// A digest string could not be parsed.
    #[error(transparent)]
    ParseDigest(#[from] ParseDigestError),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attach an operation and a path to an `io::Error`.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io {
            op,
            path: path.into(),
            source,
        })
    }
}
