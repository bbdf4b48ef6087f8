//! What a sandboxed run is asked to do ([`SandboxSpec`]) and what came of it ([`Outcome`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Everything a backend needs to run one task. Knows nothing of BitBake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// The command; `argv[0]` is looked up in `env["PATH"]` (inside the sandbox) when it has no `/`.
    pub argv: Vec<String>,
    /// The complete environment of the task (nothing is inherited).
    pub env: BTreeMap<String, String>,
    /// The working directory, a path inside the sandbox.
    pub cwd: PathBuf,
    /// What the sandbox's `/` is made of.
    pub root: RootSpec,
    /// Extra mounts, applied in order after the root.
    pub mounts: Vec<Mount>,
    /// `true` keeps the host's network (fetch tasks); `false` gives a private loopback only.
    pub network: bool,
    /// The hostname inside the sandbox.
    pub hostname: String,
    /// Wall-clock limit; on expiry everything gets SIGTERM, then SIGKILL after `kill_grace`.
    pub timeout: Option<Duration>,
    /// Time between SIGTERM and SIGKILL when the timeout fires.
    pub kill_grace: Duration,
    /// Resource limits.
    pub limits: Limits,
    /// The task's standard input.
    pub stdin: Stdio,
    /// The task's standard output.
    pub stdout: Stdio,
    /// The task's standard error.
    pub stderr: Stdio,
    /// For backends without a mount namespace (`none`, `sandbox-exec`; see
    /// [`crate::Backend::remaps_paths`]): the per-task host directory, which must not exist
    /// yet, in which the mounts are realised and below which sandbox paths are rewritten
    /// ([`crate::PathMap`]). `None`: a fresh directory in the system temp dir, removed after
    /// the run. Namespaced backends ignore it.
    #[serde(default)]
    pub host_root: Option<PathBuf>,
}

impl SandboxSpec {
    /// A spec running `argv` on the `host` build root made of `ro_paths`, with defaults for
    /// everything else: empty environment, cwd `/`, no network, hostname `bitzel`, no timeout,
    /// 2 s kill grace, no limits, stdio to `/dev/null`.
    pub fn new(argv: Vec<String>, ro_paths: Vec<PathBuf>) -> Self {
        SandboxSpec {
            argv,
            env: BTreeMap::new(),
            cwd: PathBuf::from("/"),
            root: RootSpec::Host { ro_paths },
            mounts: Vec::new(),
            network: false,
            hostname: "bitzel".to_owned(),
            timeout: None,
            kill_grace: Duration::from_secs(2),
            limits: Limits::default(),
            stdin: Stdio::Null,
            stdout: Stdio::Null,
            stderr: Stdio::Null,
            host_root: None,
        }
    }

    /// The usual host tool directories that exist on this machine: `/usr`, `/bin`, `/sbin`,
    /// `/lib`, `/lib32`, `/lib64`, `/libx32` (symlinks such as a merged-`/usr` `/bin` are
    /// recreated as symlinks). Never `/etc`: a host build root gets a generated one
    /// ([`crate::GeneratedEtc`], [`crate::etc_host_paths`]).
    pub fn default_host_paths() -> Vec<PathBuf> {
        [
            "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
        ]
        .iter()
        .map(PathBuf::from)
        .filter(|p| p.symlink_metadata().is_ok())
        .collect()
    }
}

/// What `/` is made of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RootSpec {
    /// `host` build root: an empty read-only tmpfs with these host paths bind-mounted
    /// read-only at the same place (symlinks are recreated as symlinks), and a generated `/etc`.
    Host {
        /// Host paths, e.g. `/usr`, `/bin`, `/lib`, `/lib64` (never below `/etc`).
        ro_paths: Vec<PathBuf>,
    },
    /// `rootfs` build root: a read-only overlay of these layers, **lowest first**.
    Layers(Vec<PathBuf>),
}

/// One mount inside the sandbox. `dst` is a path inside the sandbox; sources are host paths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mount {
    /// Bind-mount a host file or directory. Run as root, the task writes as
    /// [`crate::sandbox_identity`]: a writable source must be writable by those ids.
    Bind {
        /// Host path.
        src: PathBuf,
        /// Path inside the sandbox.
        dst: PathBuf,
        /// Writable (else read-only).
        writable: bool,
    },
    /// An overlayfs: read-only `lowers` (**top first**) and, if given, a fresh writable
    /// `(upperdir, workdir)` pair on the host (same filesystem) that captures every change.
    /// Any number of lowers is accepted (more than one mount can take is assembled by nesting).
    Overlay {
        /// Lower layers, top first.
        lowers: Vec<PathBuf>,
        /// `(upperdir, workdir)`; `None` gives a read-only view.
        upper: Option<(PathBuf, PathBuf)>,
        /// Path inside the sandbox.
        dst: PathBuf,
    },
    /// A fresh, empty, writable tmpfs.
    Tmpfs {
        /// Path inside the sandbox.
        dst: PathBuf,
    },
}

impl Mount {
    /// The mount's path inside the sandbox.
    pub fn dst(&self) -> &std::path::Path {
        match self {
            Mount::Bind { dst, .. } | Mount::Overlay { dst, .. } | Mount::Tmpfs { dst } => dst,
        }
    }
}

/// Per-task resource limits; `None` leaves the inherited value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// `RLIMIT_NOFILE`.
    pub nofile: Option<u64>,
    /// `RLIMIT_NPROC`.
    pub nproc: Option<u64>,
    /// `RLIMIT_CPU`, seconds.
    pub cpu_secs: Option<u64>,
    /// cgroup v2 `memory.max` in bytes, swap excluded (only where cgroup v2 is delegated;
    /// otherwise warned once). An overrun kills the whole run: [`ExitStatus::OomKilled`].
    pub memory_bytes: Option<u64>,
    /// cgroup v2 `pids.max`: processes and threads the task may have at once, not counting the
    /// sandbox's own (the backend adds [`crate::PIDS_OVERHEAD`] where it has any); only where
    /// cgroup v2 is delegated, otherwise warned once.
    pub pids: Option<u64>,
}

/// Where one of the task's standard streams goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stdio {
    /// `/dev/null`.
    Null,
    /// The caller's own stream.
    Inherit,
    /// A host file, created if missing and appended to (read for stdin).
    File(PathBuf),
}

/// How the task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitStatus {
    /// The main process exited with this code.
    Code(i32),
    /// The main process was killed by this signal.
    Signal(i32),
    /// The timeout fired and the tree was killed.
    TimedOut,
    /// The task did not succeed and the OOM killer fired in its cgroup (`memory.max`).
    OomKilled,
}

impl ExitStatus {
    /// `true` for `Code(0)`.
    pub fn success(&self) -> bool {
        matches!(self, ExitStatus::Code(0))
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit code {c}"),
            ExitStatus::Signal(s) => write!(f, "killed by signal {s}"),
            ExitStatus::TimedOut => write!(f, "timed out"),
            ExitStatus::OomKilled => write!(f, "killed by the OOM killer"),
        }
    }
}

/// The result of a run whose sandbox was set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// How the task ended.
    pub status: ExitStatus,
    /// Wall-clock time from the start of the run to the end of the sandbox.
    pub duration: Duration,
    /// What the run's cgroup saw (all empty when no memory/pids limit applied).
    pub resources: crate::cgroup::ResourceUsage,
}
