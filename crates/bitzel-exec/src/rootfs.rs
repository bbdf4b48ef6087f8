//! The `rootfs` build root: a pinned Debian root filesystem, built once with
//! `mmdebstrap --mode=unshare` (else `debootstrap` as root, or from a tarball the user
//! gives), normalised, stored in the CAS as a tree and mounted (its layer) as the lowest
//! layer of every task. Its tree digest replaces the host-root and host-tool digests in
//! every key ([`crate::executor::BuildRootKind`]).
//!
//! The **lock** (`<kas name>.rootfs.lock`, next to the kas file, checked in by the user)
//! records the suite, the architecture, the packages asked for and every package of the
//! root with its exact version — never the mirror. [`lock`] makes it (by building the root
//! from the package list and reading its dpkg database); [`ensure_root`] builds exactly the
//! locked versions and never writes the lock. The root made for a lock is remembered in the
//! cache (an action entry keyed by the lock's text), so a second build mounts the stored
//! layer without building or copying anything.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bitzel_cache::{Action, ActionResult, Cache, Digest, Lookup};

/// The version of how a root is made from a lock (builder options, normalisation); part of
/// the key under which a lock's root is remembered.
pub const ROOTFS_FORMAT: &str = "bitzel-rootfs/1";

/// `SOURCE_DATE_EPOCH` given to the builder: every timestamp it writes (and the mtimes of
/// the tarball it streams) is this one, whenever and wherever the root is built.
pub const SOURCE_DATE_EPOCH: &str = "0";

/// Why a root could not be locked, built or used. Each message says what to install or
/// change.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// No builder program.
    #[error("no root filesystem builder: install `mmdebstrap` (rootless, preferred: `apt-get install mmdebstrap uidmap`) or, as root, `debootstrap`; or give `tarball:` in `bitzel: build_root: rootfs:`")]
    NoBuilder,
    /// The builder failed.
    #[error("{builder} failed ({status}) building the {suite} root; {hint}\n---- last lines of its output ----\n{tail}")]
    BuilderFailed {
        /// mmdebstrap or debootstrap.
        builder: String,
        /// Its exit status.
        status: String,
        /// The suite.
        suite: String,
        /// What to do.
        hint: String,
        /// The end of its stderr.
        tail: String,
    },
    /// The built root's packages differ from the lock.
    #[error("the archive did not give the locked package versions ({}); the lock {} pins versions the mirror no longer has: point `mirror:` at an archive that has them (for example a snapshot archive) or make a new lock with `bitzel rootfs lock`", diffs.join("; "), lock.display())]
    NotLockedVersions {
        /// The lock file.
        lock: PathBuf,
        /// `pkg: locked X, got Y` lines.
        diffs: Vec<String>,
    },
    /// The lock file is missing.
    #[error("{}: no lock file for the rootfs build root; run `bitzel rootfs lock {}` (and check the file in): it pins every package version the root is built from", lock.display(), config.display())]
    NoLock {
        /// The lock path.
        lock: PathBuf,
        /// The kas file.
        config: PathBuf,
    },
    /// The lock does not parse.
    #[error("{}:{line}: {message}; make it again with `bitzel rootfs lock`", path.display())]
    BadLock {
        /// The lock file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The lock was made for another declaration.
    #[error("{}: the lock was made for {locked}, but the config declares {declared}; run `bitzel rootfs lock` again after changing `build_root: rootfs:`", lock.display())]
    StaleLock {
        /// The lock file.
        lock: PathBuf,
        /// What the lock says.
        locked: String,
        /// What the config says.
        declared: String,
    },
    /// No mirror given and none found in the host's apt sources.
    #[error("no Debian mirror: the host's apt sources (/etc/apt/sources.list, /etc/apt/sources.list.d/) name none; give `mirror:` in `bitzel: build_root: rootfs:`")]
    NoMirror,
    /// Normalising or capturing the root failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The cache failed.
    #[error("storing the root filesystem in the cache: {0}")]
    Cache(#[from] bitzel_cache::Error),
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RootfsError {
    let path = path.to_path_buf();
    move |source| RootfsError::Io { what, path, source }
}

/// What the config declares (`bitzel: build_root: rootfs:`), resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootfsDecl {
    /// The Debian suite.
    pub suite: String,
    /// Packages asked for, on top of the `Essential: yes` set.
    pub packages: Vec<String>,
    /// The mirror to build from (the config's, else the host's apt sources).
    pub mirror: Option<String>,
    /// A root filesystem tarball instead of a package list.
    pub tarball: Option<PathBuf>,
}

/// A lock: what a root is made of, without the mirror.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lock {
    /// The suite (empty for a tarball).
    pub suite: String,
    /// The Debian architecture.
    pub arch: String,
    /// The packages the config asked for, sorted.
    pub requested: Vec<String>,
    /// Every package of the root → its exact version.
    pub packages: BTreeMap<String, String>,
    /// For a tarball root: the BLAKE3 of the tarball.
    pub tarball: Option<Digest>,
}

/// `<dir>/<stem>.rootfs.lock` for the kas file `config`.
pub fn lock_path(config: &Path) -> PathBuf {
    let stem = config
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "kas".into());
    config.with_file_name(format!("{stem}.rootfs.lock"))
}

impl Lock {
    /// The lock's text: a header comment, then one `key value` line each.
    pub fn render(&self) -> String {
        let mut s = String::from(
            "# bitzel rootfs lock: written by `bitzel rootfs lock`, never by a build; check it in.\n",
        );
        s += &format!("format {ROOTFS_FORMAT}\n");
        if let Some(t) = &self.tarball {
            s += &format!("tarball {}\n", t.to_hex());
        } else {
            s += &format!("suite {}\narch {}\n", self.suite, self.arch);
            s += &format!("requested {}\n", self.requested.join(" "));
        }
        for (p, v) in &self.packages {
            s += &format!("package {p} {v}\n");
        }
        s
    }

    /// Parse a lock file's text (`path` for messages).
    pub fn parse(text: &str, path: &Path) -> Result<Lock, RootfsError> {
        let mut l = Lock::default();
        let bad = |line: usize, message: String| RootfsError::BadLock {
            path: path.to_path_buf(),
            line,
            message,
        };
        let mut format = None;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
            match key {
                "format" => format = Some(rest.to_string()),
                "suite" => l.suite = rest.to_string(),
                "arch" => l.arch = rest.to_string(),
                "requested" => l.requested = rest.split_whitespace().map(str::to_string).collect(),
                "tarball" => {
                    l.tarball = Some(
                        rest.parse::<Digest>()
                            .map_err(|_| bad(i + 1, format!("`{rest}` is not a BLAKE3 digest")))?,
                    )
                }
                "package" => {
                    let mut f = rest.split_whitespace();
                    match (f.next(), f.next(), f.next()) {
                        (Some(p), Some(v), None) => {
                            l.packages.insert(p.to_string(), v.to_string());
                        }
                        _ => return Err(bad(i + 1, "expected `package NAME VERSION`".into())),
                    }
                }
                other => return Err(bad(i + 1, format!("unknown entry `{other}`"))),
            }
        }
        match format.as_deref() {
            Some(ROOTFS_FORMAT) => {}
            Some(f) => {
                return Err(bad(
                    1,
                    format!(
                        "made by another bitzel (format `{f}`, this one reads `{ROOTFS_FORMAT}`)"
                    ),
                ))
            }
            None => return Err(bad(1, "no `format` line".into())),
        }
        if l.tarball.is_none() && (l.suite.is_empty() || l.arch.is_empty() || l.packages.is_empty())
        {
            return Err(bad(
                1,
                "a lock needs `suite`, `arch` and `package` lines".into(),
            ));
        }
        Ok(l)
    }

    /// Fail unless this lock was made for `decl` on this architecture.
    pub fn check_matches(
        &self,
        decl: &RootfsDecl,
        arch: &str,
        path: &Path,
    ) -> Result<(), RootfsError> {
        let stale = |locked: String, declared: String| RootfsError::StaleLock {
            lock: path.to_path_buf(),
            locked,
            declared,
        };
        if decl.tarball.is_some() != self.tarball.is_some() {
            let what = |t: bool| if t { "a tarball" } else { "a package list" };
            return Err(stale(
                what(self.tarball.is_some()).into(),
                what(decl.tarball.is_some()).into(),
            ));
        }
        if self.tarball.is_some() {
            return Ok(());
        }
        if self.suite != decl.suite {
            return Err(stale(
                format!("suite `{}`", self.suite),
                format!("suite `{}`", decl.suite),
            ));
        }
        if self.arch != arch {
            return Err(stale(
                format!("architecture `{}`", self.arch),
                format!("this host's `{arch}`"),
            ));
        }
        let want = sorted(&decl.packages);
        if self.requested != want {
            return Err(stale(
                format!("packages [{}]", self.requested.join(", ")),
                format!("[{}]", want.join(", ")),
            ));
        }
        Ok(())
    }

    /// The action whose cache entry remembers the root made for this lock.
    fn action(&self) -> Action {
        let mut a = Action {
            label: "bitzel:rootfs".into(),
            script: self.render(),
            ..Action::default()
        };
        a.policy.insert("rootfs".into(), ROOTFS_FORMAT.into());
        a
    }
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v.dedup();
    v
}

/// The Debian architecture of this host (`dpkg --print-architecture`, else from the
/// compile-time target).
pub fn host_arch() -> String {
    Command::new("dpkg")
        .arg("--print-architecture")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| match std::env::consts::ARCH {
            "x86_64" => "amd64".into(),
            "aarch64" => "arm64".into(),
            other => other.into(),
        })
}

/// The first Debian archive (not a security or updates archive) in apt sources text, either
/// one-line (`deb [opts] URI suite comp`) or deb822 (`URIs:`) format.
pub fn mirror_from_sources(text: &str) -> Option<String> {
    let usable = |u: &str| {
        (u.starts_with("http://") || u.starts_with("https://") || u.starts_with("file:/"))
            && !u.contains("security")
    };
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("URIs:") {
            if let Some(u) = rest.split_whitespace().find(|u| usable(u)) {
                return Some(u.trim_end_matches('/').to_string());
            }
        } else if let Some(rest) = line.strip_prefix("deb ") {
            let mut words = rest.split_whitespace().peekable();
            if words.peek().is_some_and(|w| w.starts_with('[')) {
                for w in words.by_ref() {
                    if w.ends_with(']') {
                        break;
                    }
                }
            }
            if let Some(u) = words.next().filter(|u| usable(u)) {
                return Some(u.trim_end_matches('/').to_string());
            }
        }
    }
    None
}

/// The mirror of this host's apt sources, if any names a Debian archive.
pub fn host_mirror() -> Option<String> {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(rd) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "list" || e == "sources"))
            .collect();
        more.sort();
        files.extend(more);
    }
    files
        .iter()
        .filter_map(|f| fs::read_to_string(f).ok())
        .find_map(|t| mirror_from_sources(&t))
}

/// The program that builds roots here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Builder {
    /// `mmdebstrap --mode=unshare` (rootless).
    Mmdebstrap(PathBuf),
    /// `debootstrap`, as root only.
    Debootstrap(PathBuf),
}

/// The builder available here: mmdebstrap, else debootstrap when running as root.
pub fn find_builder() -> Result<Builder, RootfsError> {
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    let path = format!("{path}:/usr/sbin:/sbin");
    if let Some(p) = bitzel_cache::hosttools::resolve_tool("mmdebstrap", &path) {
        return Ok(Builder::Mmdebstrap(p));
    }
    if nix::unistd::geteuid().is_root() {
        if let Some(p) = bitzel_cache::hosttools::resolve_tool("debootstrap", &path) {
            return Ok(Builder::Debootstrap(p));
        }
    }
    Err(RootfsError::NoBuilder)
}

/// What building a root cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Built {
    /// The root's tree digest (the build-root digest of every key).
    pub digest: Digest,
    /// `false`: found in the cache, nothing built.
    pub fresh: bool,
    /// Time spent.
    pub elapsed: Duration,
}

/// A scratch directory below `tmp`, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tmp: &Path) -> Result<Scratch, RootfsError> {
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = tmp.join(format!("rootfs.{}.{n}", std::process::id()));
        let _ = remove_all(&dir);
        fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = remove_all(&self.0) {
            tracing::warn!(path = %self.0.display(), error = %e, "could not remove the rootfs scratch directory");
        }
    }
}

/// Remove a tree that may hold read-only directories (a root has some: they are made
/// writable first).
fn remove_all(p: &Path) -> std::io::Result<()> {
    if p.symlink_metadata().is_err() {
        return Ok(());
    }
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let _ = fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o700));
        if let Ok(rd) = fs::read_dir(&d) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(e.path());
                }
            }
        }
    }
    fs::remove_dir_all(p)
}

/// Make the lock for `decl`: build the root from the package list as the archive has it
/// now, read every package's version from its dpkg database, and remember the root for the
/// lock (so a build with this lock mounts it). Returns the lock; the caller writes it.
pub fn lock(cache: &Cache, decl: &RootfsDecl, tmp: &Path) -> Result<(Lock, Built), RootfsError> {
    let t0 = Instant::now();
    let scratch = Scratch::new(tmp)?;
    let root = scratch.0.join("root");
    let mut lock = Lock {
        suite: decl.suite.clone(),
        arch: host_arch(),
        requested: sorted(&decl.packages),
        ..Lock::default()
    };
    if let Some(t) = &decl.tarball {
        lock.tarball = Some(Digest::of_file(t).map_err(io("hashing", t))?.0);
        extract_tarball(t, &root)?;
    } else {
        let includes = sorted(&decl.packages);
        run_builder(decl, &includes, &root, &scratch.0)?;
    }
    lock.packages = installed_packages(&root)?;
    let digest = store(cache, &lock, &root)?;
    Ok((
        lock,
        Built {
            digest,
            fresh: true,
            elapsed: t0.elapsed(),
        },
    ))
}

/// The root of `lock` (made for `decl`; `lock_file` for messages): from the cache when a
/// root was made for this lock before (nothing built or copied), else built with exactly
/// the locked versions, checked against the lock, normalised and stored.
pub fn ensure_root(
    cache: &Cache,
    decl: &RootfsDecl,
    lock: &Lock,
    lock_file: &Path,
    tmp: &Path,
) -> Result<Built, RootfsError> {
    let t0 = Instant::now();
    if let Some(digest) = remembered(cache, lock)? {
        return Ok(Built {
            digest,
            fresh: false,
            elapsed: t0.elapsed(),
        });
    }
    let scratch = Scratch::new(tmp)?;
    let root = scratch.0.join("root");
    if let Some(t) = &decl.tarball {
        let d = Digest::of_file(t).map_err(io("hashing", t))?.0;
        if Some(d) != lock.tarball {
            return Err(RootfsError::StaleLock {
                lock: lock_file.to_path_buf(),
                locked: format!(
                    "tarball {}",
                    lock.tarball.map(|t| t.short()).unwrap_or_default()
                ),
                declared: format!("{} (BLAKE3 {})", t.display(), d.short()),
            });
        }
        extract_tarball(t, &root)?;
    } else {
        let pinned: Vec<String> = lock
            .packages
            .iter()
            .map(|(p, v)| format!("{p}={v}"))
            .collect();
        run_builder(decl, &pinned, &root, &scratch.0)?;
        let got = installed_packages(&root)?;
        let diffs = version_diffs(&lock.packages, &got);
        if !diffs.is_empty() {
            return Err(RootfsError::NotLockedVersions {
                lock: lock_file.to_path_buf(),
                diffs,
            });
        }
    }
    let digest = store(cache, lock, &root)?;
    Ok(Built {
        digest,
        fresh: true,
        elapsed: t0.elapsed(),
    })
}

/// `pkg: locked X, got Y` for every difference between two package sets.
pub fn version_diffs(
    locked: &BTreeMap<String, String>,
    got: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (p, v) in locked {
        match got.get(p) {
            Some(g) if g == v => {}
            Some(g) => out.push(format!("{p}: locked {v}, got {g}")),
            None => out.push(format!("{p}: locked {v}, not installed")),
        }
    }
    for (p, g) in got {
        if !locked.contains_key(p) {
            out.push(format!("{p}: not in the lock, got {g}"));
        }
    }
    out
}

/// The root remembered for `lock`, if its tree is still complete in the cache.
pub fn remembered(cache: &Cache, lock: &Lock) -> Result<Option<Digest>, RootfsError> {
    match cache.lookup(&lock.action().key())? {
        Lookup::Hit(r) => Ok(Some(r.output)),
        Lookup::Miss(_) => Ok(None),
    }
}

/// Normalise `root`, capture it into the CAS, remember it for `lock`.
fn store(cache: &Cache, lock: &Lock, root: &Path) -> Result<Digest, RootfsError> {
    let t0 = Instant::now();
    normalise(root)?;
    let captured = cache.capture(root)?;
    let action = lock.action();
    let result = ActionResult {
        label: action.label.clone(),
        output: captured.digest,
        extra_outputs: BTreeMap::new(),
        exit_code: 0,
        stdout: None,
        stderr: None,
        duration_ms: u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX),
        created_unix_ms: bitzel_cache::now_unix_ms(),
        action: action.clone(),
    };
    cache.put_local(&action.key(), &result)?;
    tracing::info!(digest = %captured.digest.short(), files = captured.stats.files, bytes = captured.stats.bytes, "rootfs stored in the cache");
    Ok(captured.digest)
}

/// The builder's hint for a failure, from its output.
fn failure_hint(stderr: &str) -> String {
    if stderr.contains("Version '") && stderr.contains("was not found") {
        "a locked package version is not in the archive: point `mirror:` at an archive that has it (a snapshot archive) or make a new lock with `bitzel rootfs lock`".into()
    } else if stderr.contains("Unable to locate package")
        || stderr.contains("has no installation candidate")
    {
        "a package of `packages:` is not in the suite: fix the name".into()
    } else if stderr.contains("unshare")
        || stderr.contains("subuid")
        || stderr.contains("newuidmap")
    {
        "mmdebstrap --mode=unshare needs user namespaces and subordinate ids: install `uidmap`, give this user ranges in /etc/subuid and /etc/subgid, and allow unprivileged user namespaces (kernel.unprivileged_userns_clone=1)".into()
    } else if stderr.contains("Could not resolve")
        || stderr.contains("Failed to fetch")
        || stderr.contains("Temporary failure")
        || stderr.contains("Connection")
    {
        "the archive is unreachable: check the network, or give a reachable `mirror:`".into()
    } else {
        "see its output below".into()
    }
}

/// Build a root of `suite` with `includes` (names or `name=version`) into `dest`.
fn run_builder(
    decl: &RootfsDecl,
    includes: &[String],
    dest: &Path,
    scratch: &Path,
) -> Result<(), RootfsError> {
    let builder = find_builder()?;
    let mirror = decl
        .mirror
        .clone()
        .or_else(host_mirror)
        .ok_or(RootfsError::NoMirror)?;
    fs::create_dir_all(dest).map_err(io("creating", dest))?;
    let log = scratch.join("builder.log");
    let logf = fs::File::create(&log).map_err(io("creating", &log))?;
    let errf = logf.try_clone().map_err(io("opening", &log))?;
    let (name, status) = match &builder {
        Builder::Mmdebstrap(exe) => {
            // The tarball on stdout (owners and modes as in the root, mtimes clamped to
            // SOURCE_DATE_EPOCH, no /dev) is unpacked here as the calling user.
            let mut mm = Command::new(exe)
                .args([
                    "--mode=unshare",
                    "--variant=essential",
                    "--skip=output/dev",
                    "--format=tar",
                ])
                .arg(format!("--include={}", includes.join(",")))
                .arg(&decl.suite)
                .arg("-")
                .arg(&mirror)
                .env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH)
                .stdout(Stdio::piped())
                .stderr(errf)
                .spawn()
                .map_err(io("running", exe))?;
            let out = mm.stdout.take().ok_or_else(|| RootfsError::Io {
                what: "reading the output of",
                path: exe.clone(),
                source: std::io::Error::other("no stdout"),
            })?;
            let untar = untar_from(out, dest);
            let st = mm.wait().map_err(io("waiting for", exe))?;
            // A failed build streams no tarball: its own error is the one to report.
            if st.success() {
                untar?;
            }
            ("mmdebstrap", st)
        }
        Builder::Debootstrap(exe) => {
            let names: Vec<&str> = includes
                .iter()
                .map(|i| i.split('=').next().unwrap_or(i))
                .collect();
            let st = Command::new(exe)
                .args(["--variant=minbase"])
                .arg(format!("--include={}", names.join(",")))
                .arg(&decl.suite)
                .arg(dest)
                .arg(&mirror)
                .env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH)
                .stdout(logf)
                .stderr(errf)
                .status()
                .map_err(io("running", exe))?;
            ("debootstrap", st)
        }
    };
    if !status.success() {
        let text = fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        return Err(RootfsError::BuilderFailed {
            builder: name.into(),
            status: status.to_string(),
            suite: decl.suite.clone(),
            hint: failure_hint(&text),
            tail: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    Ok(())
}

/// Unpack a tar stream into `dest` as the calling user (`tar --no-same-owner`: the
/// layer's files belong to bitzel; modes are kept).
fn untar_from(input: impl Into<Stdio>, dest: &Path) -> Result<(), RootfsError> {
    let st = Command::new("tar")
        .arg("-C")
        .arg(dest)
        .args(["--no-same-owner", "--delay-directory-restore", "-xpf", "-"])
        .stdin(input)
        .stderr(Stdio::piped())
        .output()
        .map_err(io("running tar into", dest))?;
    if !st.status.success() {
        return Err(RootfsError::Io {
            what: "unpacking the root filesystem into",
            path: dest.to_path_buf(),
            source: std::io::Error::other(format!(
                "tar: {}: {}",
                st.status,
                String::from_utf8_lossy(&st.stderr).trim()
            )),
        });
    }
    Ok(())
}

fn extract_tarball(tarball: &Path, dest: &Path) -> Result<(), RootfsError> {
    fs::create_dir_all(dest).map_err(io("creating", dest))?;
    fs::metadata(tarball).map_err(io("reading", tarball))?;
    // Named, not on stdin: GNU tar detects the compression of a file it opens.
    let st = Command::new("tar")
        .arg("-C")
        .arg(dest)
        .args([
            "--no-same-owner",
            "--delay-directory-restore",
            "--exclude=./dev/*",
            "-xpf",
        ])
        .arg(tarball)
        .status()
        .map_err(io("running tar on", tarball))?;
    if !st.success() {
        return Err(RootfsError::Io {
            what: "unpacking",
            path: tarball.to_path_buf(),
            source: std::io::Error::other(format!("tar: {st}")),
        });
    }
    Ok(())
}

/// The packages installed in `root` (its `var/lib/dpkg/status`), name → version.
pub fn installed_packages(root: &Path) -> Result<BTreeMap<String, String>, RootfsError> {
    let p = root.join("var/lib/dpkg/status");
    let text = match fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(io("reading", &p)(e)),
    };
    Ok(parse_dpkg_status(&text))
}

/// Installed packages of a dpkg status file's text, name → version.
pub fn parse_dpkg_status(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for para in text.split("\n\n") {
        let (mut name, mut version, mut installed) = (None, None, false);
        for line in para.lines() {
            if let Some(v) = line.strip_prefix("Package: ") {
                name = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Version: ") {
                version = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Status: ") {
                installed = v.trim().ends_with(" installed");
            }
        }
        if let (Some(n), Some(v), true) = (name, version, installed) {
            out.insert(n.to_string(), v.to_string());
        }
    }
    out
}

/// Paths (relative to the root) removed from every root: what differs between machines or
/// between two builds, and what no task needs. A trailing `/*` empties a directory.
pub const NORMALISE_REMOVE: &[&str] = &[
    "etc/hostname",
    "etc/resolv.conf",
    "etc/machine-id",
    "var/lib/dbus/machine-id",
    "etc/apt/sources.list",
    "etc/apt/sources.list.d/*",
    "etc/ssh/ssh_host_*",
    "var/cache/ldconfig/aux-cache",
    "var/lib/apt/extended_states",
    "var/lib/apt/lists/*",
    "var/cache/apt/*",
    "var/lib/dpkg/*-old",
    "var/cache/debconf/*-old",
    "var/lib/systemd/random-seed",
    "var/log/*",
    "tmp/*",
    "run/*",
    "dev/*",
    "proc/*",
    "sys/*",
];

/// Remove the machine-specific and per-build files of [`NORMALISE_REMOVE`] and anything that
/// is not a file, directory or symlink (device nodes, fifos, sockets). `ld.so.cache` is kept:
/// `ldconfig` of the locked libc writes it from the locked libraries, the same bytes on
/// every machine (checked by the reproducibility suite).
pub fn normalise(root: &Path) -> Result<(), RootfsError> {
    for pat in NORMALISE_REMOVE {
        let (dir, name_pat) = match pat.rsplit_once('/') {
            Some((d, n)) => (root.join(d), n),
            None => (root.to_path_buf(), *pat),
        };
        let Ok(rd) = fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if glob_match(name_pat, &name) {
                let p = e.path();
                let r = if e.file_type().is_ok_and(|t| t.is_dir()) {
                    remove_all(&p)
                } else {
                    fs::remove_file(&p)
                };
                r.map_err(io("removing", &p))?;
            }
        }
    }
    remove_special_files(root)
}

fn remove_special_files(root: &Path) -> Result<(), RootfsError> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).map_err(io("reading", &d))?.flatten() {
            let t = e.file_type().map_err(io("stat", &e.path()))?;
            if t.is_dir() {
                stack.push(e.path());
            } else if !(t.is_file() || t.is_symlink()) {
                fs::remove_file(e.path()).map_err(io("removing", &e.path()))?;
            }
        }
    }
    Ok(())
}

/// `*` matches any run of characters; everything else itself.
fn glob_match(pat: &str, name: &str) -> bool {
    match pat.split_once('*') {
        None => pat == name,
        Some((pre, rest)) => {
            let Some(tail) = name.strip_prefix(pre) else {
                return false;
            };
            if rest.is_empty() {
                return true;
            }
            (0..=tail.len()).any(|i| tail.is_char_boundary(i) && glob_match(rest, &tail[i..]))
        }
    }
}

/// Whether `path` (absolute, as seen inside the root) names an executable file in the root
/// at `root`, following symlinks inside the root (never out of it).
pub fn executable_in_root(root: &Path, path: &str) -> bool {
    let mut cur = PathBuf::from(path);
    for _ in 0..40 {
        let mut resolved = PathBuf::from("/");
        let mut link = None;
        let comps: Vec<_> = cur.components().collect();
        for (i, c) in comps.iter().enumerate() {
            match c {
                std::path::Component::RootDir | std::path::Component::CurDir => continue,
                std::path::Component::ParentDir => {
                    resolved.pop();
                    continue;
                }
                std::path::Component::Normal(n) => resolved.push(n),
                std::path::Component::Prefix(_) => return false,
            }
            let host = root.join(resolved.strip_prefix("/").unwrap_or(&resolved));
            let Ok(md) = host.symlink_metadata() else {
                return false;
            };
            if md.file_type().is_symlink() {
                let Ok(t) = fs::read_link(&host) else {
                    return false;
                };
                let base = resolved
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| "/".into());
                let mut next = if t.is_absolute() { t } else { base.join(t) };
                for rest in &comps[i + 1..] {
                    next.push(rest);
                }
                link = Some(next);
                break;
            }
        }
        match link {
            Some(next) => cur = next,
            None => {
                let host = root.join(resolved.strip_prefix("/").unwrap_or(&resolved));
                return host.symlink_metadata().is_ok_and(|m| {
                    m.is_file()
                        && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
                });
            }
        }
    }
    false
}

/// Resolve `required` (fatal when missing) and `optional` tools in the root at `root`,
/// searching `path` (the directories as seen inside the root): name → the path inside the
/// root. The links the sandbox's `/bitzel/hosttools` gets point there, so a task runs the
/// root's tools, never the host's.
pub fn resolve_tools_in_root(
    root: &Path,
    required: &[String],
    optional: &[String],
    path: &str,
) -> Result<BTreeMap<String, String>, Vec<String>> {
    let find = |name: &str| {
        path.split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| format!("{}/{name}", d.trim_end_matches('/')))
            .find(|p| executable_in_root(root, p))
    };
    let mut out = BTreeMap::new();
    let mut missing = Vec::new();
    for n in required {
        match find(n) {
            Some(p) => {
                out.insert(n.clone(), p);
            }
            None => missing.push(n.clone()),
        }
    }
    if !missing.is_empty() {
        return Err(missing);
    }
    for n in optional {
        if let Some(p) = find(n) {
            out.insert(n.clone(), p);
        }
    }
    Ok(out)
}

/// Read and parse the lock file `path` of the kas file `config` (a missing one is
/// [`RootfsError::NoLock`], naming the command that makes it).
pub fn read_lock(path: &Path, config: &Path) -> Result<Lock, RootfsError> {
    let mut text = String::new();
    match fs::File::open(path) {
        Ok(mut f) => {
            f.read_to_string(&mut text).map_err(io("reading", path))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(RootfsError::NoLock {
                lock: path.to_path_buf(),
                config: config.to_path_buf(),
            })
        }
        Err(e) => return Err(io("reading", path)(e)),
    }
    Lock::parse(&text, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Lock {
        Lock {
            suite: "bookworm".into(),
            arch: "amd64".into(),
            requested: vec!["bc".into(), "gcc".into()],
            packages: [("bc", "1.07.1-3+b1"), ("gcc", "4:12.2.0-3")]
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            tarball: None,
        }
    }

    #[test]
    fn a_lock_round_trips_and_names_no_mirror() {
        let l = sample();
        let text = l.render();
        assert!(!text.contains("http"), "{text}");
        assert_eq!(Lock::parse(&text, Path::new("x.lock")).unwrap(), l);
    }

    #[test]
    fn bad_locks_name_the_line() {
        let e = Lock::parse(
            "format bitzel-rootfs/1\nsuite bookworm\npackage bc\n",
            Path::new("k.lock"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("k.lock:3: expected `package NAME VERSION`"),
            "{e}"
        );
        let e = Lock::parse("suite bookworm\n", Path::new("k.lock"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no `format` line"), "{e}");
    }

    #[test]
    fn a_lock_for_other_packages_or_suite_is_stale() {
        let l = sample();
        let mut d = RootfsDecl {
            suite: "bookworm".into(),
            packages: vec!["gcc".into(), "bc".into()],
            mirror: None,
            tarball: None,
        };
        l.check_matches(&d, "amd64", Path::new("k.lock")).unwrap();
        assert!(l.check_matches(&d, "arm64", Path::new("k.lock")).is_err());
        d.packages.push("flex".into());
        let e = l
            .check_matches(&d, "amd64", Path::new("k.lock"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("packages [bc, gcc]") && e.contains("[bc, flex, gcc]"),
            "{e}"
        );
        d.packages.pop();
        d.suite = "trixie".into();
        assert!(l.check_matches(&d, "amd64", Path::new("k.lock")).is_err());
    }

    #[test]
    fn mirrors_come_from_either_sources_format_skipping_security() {
        let deb822 = "Types: deb\nURIs: http://deb.example/debian-security\nSuites: bookworm-security\n\nTypes: deb\nURIs: http://deb.example/debian/\nSuites: bookworm\n";
        assert_eq!(
            mirror_from_sources(deb822).as_deref(),
            Some("http://deb.example/debian")
        );
        let one = "# c\ndeb [arch=amd64 signed-by=/k.gpg] http://m.example/debian bookworm main\n";
        assert_eq!(
            mirror_from_sources(one).as_deref(),
            Some("http://m.example/debian")
        );
        assert_eq!(mirror_from_sources("deb-src http://x/ y z\n"), None);
    }

    #[test]
    fn dpkg_status_gives_installed_packages_only() {
        let s = "Package: a\nStatus: install ok installed\nVersion: 1.0\n\nPackage: b\nStatus: deinstall ok config-files\nVersion: 2\n\nPackage: c\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:3-1\n";
        let p = parse_dpkg_status(s);
        assert_eq!(p.len(), 2);
        assert_eq!(p["c"], "1:3-1");
        let diffs = version_diffs(
            &p,
            &parse_dpkg_status("Package: a\nStatus: install ok installed\nVersion: 1.1\n"),
        );
        assert_eq!(
            diffs,
            ["a: locked 1.0, got 1.1", "c: locked 1:3-1, not installed"]
        );
    }

    #[test]
    fn normalise_removes_machine_files_and_special_files() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        for f in [
            "etc/hostname",
            "etc/machine-id",
            "var/log/apt/history.log",
            "var/lib/dpkg/status-old",
            "var/lib/dpkg/status",
            "etc/ld.so.cache",
            "usr/bin/x",
        ] {
            fs::create_dir_all(r.join(f).parent().unwrap()).unwrap();
            fs::write(r.join(f), f).unwrap();
        }
        nix::unistd::mkfifo(
            &r.join("usr/fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        normalise(r).unwrap();
        for gone in [
            "etc/hostname",
            "etc/machine-id",
            "var/log/apt",
            "var/lib/dpkg/status-old",
            "usr/fifo",
        ] {
            assert!(r.join(gone).symlink_metadata().is_err(), "{gone}");
        }
        for kept in [
            "var/log",
            "var/lib/dpkg/status",
            "etc/ld.so.cache",
            "usr/bin/x",
        ] {
            assert!(r.join(kept).exists(), "{kept}");
        }
    }

    #[test]
    fn tools_resolve_inside_the_root_never_through_the_host() {
        use std::os::unix::fs::{symlink, PermissionsExt};
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::create_dir_all(r.join("usr/bin")).unwrap();
        fs::create_dir_all(r.join("etc/alternatives")).unwrap();
        symlink("usr/bin", r.join("bin")).unwrap();
        fs::write(r.join("usr/bin/mawk"), "x").unwrap();
        fs::set_permissions(r.join("usr/bin/mawk"), fs::Permissions::from_mode(0o755)).unwrap();
        symlink("/usr/bin/mawk", r.join("etc/alternatives/awk")).unwrap();
        symlink("/etc/alternatives/awk", r.join("usr/bin/awk")).unwrap();
        // An absolute link to a host file that the root lacks: not a tool.
        symlink("/bin/sh", r.join("usr/bin/hostsh")).unwrap();
        assert!(executable_in_root(r, "/bin/awk"));
        assert!(!executable_in_root(r, "/usr/bin/hostsh"));
        let tools =
            resolve_tools_in_root(r, &["awk".into()], &["hostsh".into()], "/usr/bin:/bin").unwrap();
        assert_eq!(tools.len(), 1);
        assert_eq!(tools["awk"], "/usr/bin/awk");
        let missing = resolve_tools_in_root(r, &["gcc".into()], &[], "/usr/bin").unwrap_err();
        assert_eq!(missing, ["gcc"]);
    }

    #[test]
    fn globs() {
        assert!(glob_match("ssh_host_*", "ssh_host_rsa_key"));
        assert!(glob_match("*-old", "status-old"));
        assert!(!glob_match("*-old", "status"));
        assert!(glob_match("*", "x"));
    }

    #[test]
    fn the_lock_sits_next_to_the_kas_file() {
        assert_eq!(
            lock_path(Path::new("/p/examples/k.yml")),
            Path::new("/p/examples/k.rootfs.lock")
        );
    }
}
