//! bitzel's built-in tasks: `fetch`, `unpack` and `patch`.
//!
//! BitBake runs these as Python task functions; bitzel runs no Python, so the
//! core layer's `base.bbclass` marks them with `do_X[builtin] = "fetch"` (or
//! `"unpack"`, `"patch"`) and the executor calls this module instead. The
//! module works on plain data (strings, paths), not on the datastore: the
//! caller expands `SRC_URI`, `FILESPATH`, `PREMIRRORS`, … and hands them over.
//!
//! - [`SrcUri::parse`] / [`SrcUri::parse_with`] split `SRC_URI` into
//!   [`SrcEntry`] values (scheme, host, path, `;name=value` parameters, local
//!   file name, patch or not, checksum and `SRCREV`).
//! - [`fetch()`] runs **on the host**: it makes every entry available in the
//!   host `DL_DIR` (or finds it in `FILESPATH`) and returns, per entry, the
//!   name the sandbox sees under `/bitzel/downloads` and the content digest
//!   ([`Fetched`]). Those digests are inputs of the later tasks' keys.
//! - [`unpack_script`] and [`patch_script`] **generate a POSIX shell script**
//!   that the executor runs inside the sandbox like any shell task. The
//!   scripts only name sandbox paths (`/bitzel/downloads/...`, `${WORKDIR}`),
//!   never a host path, so they can enter the task key as they are. Host
//!   `tar`, `gzip`, `bzip2`, `xz`, `zstd`, `ar`, `cp` and `patch` do the work.
//!
//! Design choice (unpack): a script in the sandbox rather than Rust on the
//! host, so that unpack sees exactly the declared downloads, runs under the
//! same policy as every other task, and its output is captured the same way.

mod digest;
mod error;
mod fetch;
mod mirrors;
mod patch;
pub(crate) mod shell;
mod srcuri;
mod unpack;

pub use digest::{file_digests, tree_digest, tree_digest_skipping, FileDigests};
pub use error::{BadFile, BuiltinError, ChecksumMismatch};
pub use fetch::{
    fetch, filespath_dirs, fixed_output, git_mirror_tarball, FetchSettings, Fetched, FixedOutput,
};
pub use mirrors::{parse_mirrors, rewrite_for_mirror, MirrorRule};
pub use patch::{patch_script, PatchSettings};
pub use srcuri::{SrcEntry, SrcKind, SrcUri};
pub use unpack::{unpack_script, UnpackSettings};

/// Which built-in a task names in its `[builtin]` flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Builtin {
    /// `do_fetch[builtin] = "fetch"`: [`fetch()`] on the host.
    Fetch,
    /// `do_unpack[builtin] = "unpack"`: the script of [`unpack_script`].
    Unpack,
    /// `do_patch[builtin] = "patch"`: the script of [`patch_script`].
    Patch,
}

impl Builtin {
    /// The built-in a `[builtin]` flag value names, or `None` for an unknown name.
    pub fn from_flag(value: &str) -> Option<Builtin> {
        match value.trim() {
            "fetch" => Some(Builtin::Fetch),
            "unpack" => Some(Builtin::Unpack),
            "patch" => Some(Builtin::Patch),
            _ => None,
        }
    }

    /// The flag value naming this built-in.
    pub fn as_str(self) -> &'static str {
        match self {
            Builtin::Fetch => "fetch",
            Builtin::Unpack => "unpack",
            Builtin::Patch => "patch",
        }
    }
}

#[cfg(test)]
mod tests;
