//! bitzel-sandbox: runs one task in a sandbox described by a [`SandboxSpec`] and returns an
//! [`Outcome`]. Knows nothing of BitBake.
//!
//! Backends: [`NativeBackend`] (Linux namespaces through `nix`, run from a single-threaded
//! helper process), [`BwrapBackend`] (the same spec mapped to `bwrap` arguments),
//! [`SandboxExecBackend`] (macOS, a generated SBPL profile) and [`NoneBackend`] (no isolation,
//! only when named); the last two have no mount namespace and rewrite sandbox paths to a
//! per-task host directory ([`PathMap`]). [`select`] probes them by running a trivial sandbox
//! and reports why each was rejected.
//!
//! The helper: the caller is multi-threaded, so the native backend forks from a separate
//! single-threaded process — either the `bitzel-sandbox-helper` binary of this crate or the
//! calling binary itself re-executed with [`HELPER_ARG`] as its first argument, in which case
//! that binary must call [`helper_main`] at the very start of `main` (see [`is_helper_invocation`]).

#![deny(missing_docs)]

mod bwrap;
mod cgroup;
mod error;
mod etc;
mod identity;
mod init;
mod native;
mod none;
pub mod overlay;
mod probe;
mod remap;
pub mod sbpl;
pub mod seccomp;
mod spec;
mod sys;

use std::path::PathBuf;

pub use bwrap::{bwrap_args, BwrapBackend};
pub use cgroup::{describe as cgroup_note, ResourceUsage, PIDS_OVERHEAD};
pub use error::{SandboxError, SetupFailure};
pub use etc::{etc_host_paths, EtcFile, GeneratedEtc, ETC_ALLOW_LIST, ETC_NETWORK_ALLOW_LIST};
pub use identity::{sandbox_identity, IdMap};
pub use native::{NativeBackend, DEV_NODES, HELPER_ARG};
pub use none::NoneBackend;
pub use probe::{host_notes, probe_all, select, BackendChoice, ProbeReport, Probed};
pub use remap::PathMap;
pub use sbpl::SandboxExecBackend;
pub use spec::{ExitStatus, Limits, Mount, Outcome, RootSpec, SandboxSpec, Stdio};

/// A sandbox backend.
pub trait Backend: Send + Sync {
    /// `native`, `bwrap`, `sandbox-exec` or `none`.
    fn name(&self) -> &'static str;
    /// Whether runs are isolated (false only for `none`); goes into action keys.
    fn hermetic(&self) -> bool;
    /// Whether sandbox paths are rewritten to a per-task host directory instead of mounted
    /// (`none`, `sandbox-exec`: no mount namespace; see [`PathMap`]). Such a backend refuses
    /// overlay mounts (the caller flattens the layers and binds the directory) and rewrites
    /// argv, environment values and the working directory; files the caller writes for the
    /// task (its script) must be rewritten by the caller with [`PathMap::rewrite`] for
    /// [`SandboxSpec::host_root`].
    fn remaps_paths(&self) -> bool {
        false
    }
    /// Run the task; `Err` only when the sandbox could not be set up (never for a failing task).
    fn run(&self, spec: &SandboxSpec) -> Result<Outcome, SandboxError>;
    /// Run attached to the caller's terminal (stdio inherited, same session), for `devshell`.
    fn run_interactive(&self, spec: &SandboxSpec) -> Result<Outcome, SandboxError>;
}

/// Where the helper executable is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelperExe {
    /// The running executable, re-executed with [`HELPER_ARG`] (it must call [`helper_main`]).
    CurrentExe,
    /// An explicit path (e.g. `env!("CARGO_BIN_EXE_bitzel-sandbox-helper")` in tests).
    Path(PathBuf),
}

impl HelperExe {
    /// The executable `name` beside the running one when it is there, else the
    /// running executable. A separate helper links only what the sandbox needs,
    /// so it starts inside a build root that lacks the main binary's libraries.
    pub fn sibling_or_current(name: &str) -> HelperExe {
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join(name)))
            .filter(|p| p.is_file())
            .map_or(HelperExe::CurrentExe, HelperExe::Path)
    }
}

/// Configuration shared by the backends.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The helper executable (native backend; also PID 1 inside bubblewrap).
    pub helper: HelperExe,
    /// A directory owned by the invoking user, used as the mount point of each sandbox's
    /// private scratch tmpfs (only inside the sandbox's own mount namespace; it stays empty on
    /// the host). Default: `$TMPDIR/.bitzel-sandbox-<uid>`. Must not contain any source path.
    pub scratch_dir: Option<PathBuf>,
    /// The `bwrap` executable (default: `bwrap` from `PATH`).
    pub bwrap: Option<PathBuf>,
    /// Use `mount(2)` option strings instead of `fsconfig` for overlays (tests, old kernels).
    pub force_legacy_overlay: bool,
}

impl SandboxConfig {
    /// A configuration using `helper` and defaults for everything else.
    pub fn new(helper: HelperExe) -> Self {
        SandboxConfig {
            helper,
            scratch_dir: None,
            bwrap: None,
            force_legacy_overlay: false,
        }
    }

    pub(crate) fn helper_path(&self) -> Result<PathBuf, SandboxError> {
        match &self.helper {
            HelperExe::Path(p) => Ok(p.clone()),
            HelperExe::CurrentExe => std::env::current_exe().map_err(|e| {
                SandboxError::io(
                    "locating the current executable for the sandbox helper",
                    None,
                    e,
                )
            }),
        }
    }

    pub(crate) fn base_dir(&self) -> PathBuf {
        self.scratch_dir.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!(
                ".bitzel-sandbox-{}",
                nix::unistd::geteuid().as_raw()
            ))
        })
    }
}

/// `true` when this process was started as the sandbox helper (first argument [`HELPER_ARG`]).
pub fn is_helper_invocation() -> bool {
    std::env::args_os().nth(1).is_some_and(|a| a == HELPER_ARG)
}

/// The helper's entry point: call it first thing in `main` when [`is_helper_invocation`].
/// Single-threaded by construction; never returns.
pub fn helper_main() -> ! {
    let args: Vec<String> = std::env::args().skip(2).collect();
    let code = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["run", spec_fd, res_fd] => match (spec_fd.parse(), res_fd.parse()) {
            (Ok(s), Ok(r)) => native::helper_run(s, r),
            _ => 2,
        },
        ["init", report_fd, json] => match report_fd.parse() {
            Ok(fd) => bwrap::init_main(fd, json),
            Err(_) => 2,
        },
        _ => 2,
    };
    sys::exit_now(code)
}

/// Reject specs no backend can honour: empty argv, relative or `..`-containing sandbox paths.
pub fn validate(spec: &SandboxSpec) -> Result<(), SandboxError> {
    if spec.argv.is_empty() {
        return Err(SandboxError::InvalidSpec {
            reason: "argv is empty; give the command to run".into(),
        });
    }
    let check = |p: &std::path::Path, what: &str| -> Result<(), SandboxError> {
        if !p.is_absolute()
            || p.components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(SandboxError::InvalidSpec {
                reason: format!("{what} `{}` must be absolute and free of `..`", p.display()),
            });
        }
        Ok(())
    };
    check(&spec.cwd, "cwd")?;
    for m in &spec.mounts {
        check(m.dst(), "mount destination")?;
        if m.dst() == std::path::Path::new("/") {
            return Err(SandboxError::InvalidSpec {
                reason: "a mount cannot replace `/`; use RootSpec".into(),
            });
        }
    }
    if let RootSpec::Host { ro_paths } = &spec.root {
        for p in ro_paths {
            check(p, "host path")?;
            if p.starts_with("/etc") {
                return Err(SandboxError::InvalidSpec {
                    reason: format!(
                        "host path `{}`: a host build root gets a generated /etc (see ETC_ALLOW_LIST); bind what a task needs with a Mount instead",
                        p.display()
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Open a spec stream for a child process.
pub(crate) fn open_stdio(s: &Stdio, input: bool) -> Result<std::process::Stdio, SandboxError> {
    Ok(match s {
        Stdio::Null => std::process::Stdio::null(),
        Stdio::Inherit => std::process::Stdio::inherit(),
        Stdio::File(p) => {
            let f = if input {
                std::fs::File::open(p)
            } else {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
            };
            std::process::Stdio::from(
                f.map_err(|e| SandboxError::io("opening a task stream", Some(p.clone()), e))?,
            )
        }
    })
}
