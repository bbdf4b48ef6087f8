//! The `bitzel:` section: bitzel's own settings, which command-line flags
//! override.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Which sandbox backend to run tasks in (`bitzel.sandbox`, `--sandbox`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SandboxChoice {
    /// Probe at start-up and take the best backend that works.
    Auto,
    /// Linux namespaces set up by bitzel itself.
    Native,
    /// bubblewrap.
    Bwrap,
    /// macOS `sandbox-exec`.
    SandboxExec,
    /// No sandbox: only when asked for by name.
    None,
}

impl SandboxChoice {
    /// Every choice, in the order shown to users.
    pub const ALL: [SandboxChoice; 5] = [
        SandboxChoice::Auto,
        SandboxChoice::Native,
        SandboxChoice::Bwrap,
        SandboxChoice::SandboxExec,
        SandboxChoice::None,
    ];

    /// The spelling used in the config file and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxChoice::Auto => "auto",
            SandboxChoice::Native => "native",
            SandboxChoice::Bwrap => "bwrap",
            SandboxChoice::SandboxExec => "sandbox-exec",
            SandboxChoice::None => "none",
        }
    }
}

impl fmt::Display for SandboxChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SandboxChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        SandboxChoice::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown sandbox `{s}` (expected one of: {})",
                    SandboxChoice::ALL.map(|c| c.as_str()).join(", ")
                )
            })
    }
}

/// What a task's root filesystem is made of (`bitzel.build_root`, `--build-root`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BuildRoot {
    /// The host's `/usr`, `/lib*`, `/bin`, read-only, tools allow-listed.
    Host,
    /// A pinned Debian root filesystem built from a package list
    /// ([`RootfsSettings`]), the only filesystem a task sees.
    Rootfs,
}

impl BuildRoot {
    /// Every choice.
    pub const ALL: [BuildRoot; 2] = [BuildRoot::Host, BuildRoot::Rootfs];

    /// The spelling used in the config file and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            BuildRoot::Host => "host",
            BuildRoot::Rootfs => "rootfs",
        }
    }
}

impl fmt::Display for BuildRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BuildRoot {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        BuildRoot::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown build root `{s}` (expected `host` or `rootfs`)"))
    }
}

/// `bitzel.build_root.rootfs`: the Debian root every task runs on in `rootfs` mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootfsSettings {
    /// The Debian suite (`bookworm`, ...).
    pub suite: String,
    /// The packages installed on top of the `Essential: yes` set, as given.
    pub packages: Vec<String>,
    /// The archive to build from; `None`: the host's apt sources.
    pub mirror: Option<String>,
    /// A root filesystem tarball given by the user instead of a package list (absolute).
    pub tarball: Option<PathBuf>,
    /// Where the declaration is (`rootfs:`'s key), for messages.
    pub at: crate::Location,
}

/// `bitzel.remote_cache`: a shared cache speaking the Bazel HTTP cache
/// protocol. Reserved: read by the config, used once the remote cache lands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteCacheSettings {
    /// Base URL of the cache server.
    pub url: Option<String>,
    /// Only read from the remote cache, never upload.
    pub read_only: Option<bool>,
    /// Instance name (a path prefix on the server).
    pub instance: Option<String>,
    /// Name of an environment variable holding a full `Name: value` HTTP
    /// header to send (for example an authorization header); the secret
    /// itself never appears in the config.
    pub auth_header_env: Option<String>,
    /// Digest function the server expects (for example `blake3`, `sha256`).
    pub digest_function: Option<String>,
}

/// `bitzel.remote_executor`: a REAPI engine that runs cache misses
/// (`grpc://host:port` or `grpcs://…`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteExecutorSettings {
    /// The engine's endpoint.
    pub url: Option<String>,
    /// REAPI instance name.
    pub instance: Option<String>,
    /// Name of an environment variable holding a `Name: value` header sent
    /// with every call.
    pub auth_header_env: Option<String>,
    /// `local`: run a task here when the engine cannot; `none` (default): fail.
    pub fallback: Option<String>,
}

/// The `bitzel:` section. Every field is optional: unset means "the
/// binary's default", and command-line flags override what is set here.
/// Paths are absolute (relative ones resolved against the directory of the
/// file that set them; a leading `~/` is the user's home directory).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BitzelSettings {
    /// Where the local CAS and action cache live.
    pub cache_dir: Option<PathBuf>,
    /// How many tasks run at once.
    pub jobs: Option<usize>,
    /// Sandbox backend.
    pub sandbox: Option<SandboxChoice>,
    /// Build root kind.
    pub build_root: Option<BuildRoot>,
    /// The declared root filesystem (`build_root: {rootfs: ...}`), kept when
    /// `--build-root host` overrides the kind.
    pub rootfs: Option<RootfsSettings>,
    /// The build directory (default `./build`, like kas's work directory).
    pub build_dir: Option<PathBuf>,
    /// Where downloaded sources are kept (reserved).
    pub downloads_dir: Option<PathBuf>,
    /// Remote cache (reserved).
    pub remote_cache: Option<RemoteCacheSettings>,
    /// Remote executor.
    pub remote_executor: Option<RemoteExecutorSettings>,
    /// How many build records (`<build>/tmp/buildstats/`) are kept; 0 writes
    /// none. The binary's default applies when unset.
    pub build_records: Option<usize>,
    /// `bitzel.bitbake_lib`: the directory holding BitBake's `bb` package,
    /// for metadata with Python tasks, and where it was set (see
    /// [`crate::find_bitbake_lib`]).
    pub bitbake_lib: Option<(PathBuf, crate::Location)>,
}
