//! Errors of this crate. A [`SandboxError`] is never a task failure: a task that ran and
//! failed is an [`crate::Outcome`] with a non-zero [`crate::ExitStatus`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A step of sandbox setup that failed, as reported by the child over the close-on-exec pipe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetupFailure {
    /// The step, e.g. `"bind mount"`, `"overlay mount"`, `"exec"`, `"pivot_root"`.
    pub step: String,
    /// The path involved, if any (a host path for sources, a sandbox path for targets).
    pub path: Option<PathBuf>,
    /// The `errno` value (0 when not from a system call).
    pub errno: i32,
    /// Extra detail.
    pub message: String,
}

/// Why a sandboxed run could not happen.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Sandbox setup failed before the task started. Not a task failure; never cache it.
    #[error("sandbox setup failed at step `{step}`{}: {message} (errno {errno}: {}); check that the path exists and is accessible to the invoking user", path_suffix(path), errno_text(*errno))]
    Setup {
        /// The failing step.
        step: String,
        /// The path involved.
        path: Option<PathBuf>,
        /// `errno`.
        errno: i32,
        /// Detail.
        message: String,
    },
    /// The backend cannot run on this host.
    #[error("sandbox backend `{backend}` is unavailable: {reason} (run `bitzel doctor` for details, or choose another with --sandbox)")]
    Unavailable {
        /// Backend name.
        backend: &'static str,
        /// Why.
        reason: String,
    },
    /// The spec cannot be honoured (e.g. a relative `dst`).
    #[error("invalid sandbox spec: {reason}")]
    InvalidSpec {
        /// What is wrong and what to change.
        reason: String,
    },
    /// An I/O error talking to the helper process or preparing the run.
    #[error("sandbox I/O error while {what}{}: {source}", path_suffix(path))]
    Io {
        /// What was being done.
        what: String,
        /// The path involved.
        path: Option<PathBuf>,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The helper process misbehaved (crashed or sent garbage).
    #[error("sandbox helper failed: {message} (is the helper binary the same version as bitzel?)")]
    Helper {
        /// Detail.
        message: String,
    },
}

impl SandboxError {
    /// `true` for setup failures (distinct from the task failing).
    pub fn is_setup(&self) -> bool {
        matches!(self, SandboxError::Setup { .. })
    }

    pub(crate) fn io(
        what: impl Into<String>,
        path: Option<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        SandboxError::Io {
            what: what.into(),
            path,
            source,
        }
    }
}

impl From<SetupFailure> for SandboxError {
    fn from(f: SetupFailure) -> Self {
        SandboxError::Setup {
            step: f.step,
            path: f.path,
            errno: f.errno,
            message: f.message,
        }
    }
}

fn path_suffix(path: &Option<PathBuf>) -> String {
    match path {
        Some(p) => format!(" for `{}`", p.display()),
        None => String::new(),
    }
}

fn errno_text(errno: i32) -> String {
    if errno == 0 {
        "none".to_owned()
    } else {
        nix::errno::Errno::from_raw(errno).desc().to_owned()
    }
}
