//! The bubblewrap backend: the same spec mapped to `bwrap` arguments.
//!
//! `bwrap` builds the namespaces, the root, the binds, `/proc`, `/dev` and `/tmp`; PID 1 inside
//! is this crate's helper in `init` mode (`--as-pid-1`, executed through `/proc/self/fd/N` so
//! nothing extra is visible), which gives the same process semantics as the native backend:
//! exit with the main process, timeout, setup errors over the report pipe. bwrap (before 0.9)
//! has no overlay support and could not take hundreds of layers anyway, so overlays are
//! mounted by the init with the shared overlay code from layers bwrap binds into a staging
//! tmpfs (bwrap keeps all capabilities for it: `--cap-add ALL`, as overlay setup needs more
//! than CAP_SYS_ADMIN); the init then detaches the staging area, remounts `/` read-only and drops every
//! capability before starting the task. bwrap always grants the init every capability, as it
//! also writes the generated `/etc` into bwrap's `--tmpfs /etc` and remounts it read-only.
//! Run by root, bwrap gets no `--unshare-user` (it then runs privileged, without a user
//! namespace) and the init switches the task to unprivileged ids exactly as the native PID 1
//! does ([`crate::identity`]); tmpfs mounts are handed to those ids. Because PID 1 is the (dynamically linked) helper, a
//! single-layer `rootfs` root must provide the helper's libraries (libc, libgcc_s) — any real
//! Debian rootfs does; multi-layer rootfs roots need the native backend.

use std::ffi::OsString;
use std::io::{Read, Seek};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use serde::{Deserialize, Serialize};

use crate::cgroup::{self, TaskCgroup};
use crate::error::{SandboxError, SetupFailure};
use crate::etc::{EtcFile, GeneratedEtc};
use crate::identity::{self, IdMap};
use crate::init::{self, InitPlan, InitSpec, Report};
use crate::native::HELPER_ARG;
use crate::overlay::{self, Scratch};
use crate::spec::{Mount, Outcome, RootSpec, SandboxSpec, Stdio};
use crate::sys::{self, fail};
use crate::{Backend, SandboxConfig};

/// Where staged overlay layers are bound inside the bwrap sandbox (removed before the task starts).
const STAGE: &str = "/.bitzel-stage";

/// An overlay the init mounts, with paths as bound inside the sandbox.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct StagedOverlay {
    lowers: Vec<PathBuf>,
    upper: Option<(PathBuf, PathBuf)>,
    dst: PathBuf,
}

/// What the init inside bwrap is told (JSON argument).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BwrapInit {
    init: InitSpec,
    overlays: Vec<StagedOverlay>,
    stderr_fd: Option<RawFd>,
    /// Generated files to write into `/etc` (then remounted read-only); empty: no generated /etc.
    etc_files: Vec<EtcFile>,
    /// tmpfs mounts to hand to the task's ids (root mode).
    owned_tmpfs: Vec<PathBuf>,
}

/// The bubblewrap backend.
#[derive(Debug, Clone)]
pub struct BwrapBackend {
    cfg: SandboxConfig,
}

fn common_ancestor(a: &Path, b: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for (x, y) in a.components().zip(b.components()) {
        if x != y {
            break;
        }
        out.push(x.as_os_str());
    }
    if out.as_os_str().is_empty() {
        PathBuf::from("/")
    } else {
        out
    }
}

/// The `bwrap` arguments (before the command) for `spec`, plus the overlays the init mounts.
/// `interactive` keeps the caller's session (no `--new-session`).
pub fn bwrap_args(spec: &SandboxSpec, interactive: bool) -> Result<Vec<OsString>, SandboxError> {
    let etc = crate::etc::for_spec(spec);
    Ok(plan_args(
        spec,
        interactive,
        identity::root_map().as_ref(),
        etc.as_ref(),
    )?
    .0)
}

/// The arguments, the overlays the init mounts and the tmpfs mounts it hands to `map`'s ids.
type Plan = (Vec<OsString>, Vec<StagedOverlay>, Vec<PathBuf>);

/// bwrap arguments being built.
struct Args {
    a: Vec<OsString>,
    /// Root mode: bwrap creates missing parents of a destination with mode 0700 and owned by
    /// real root, which the task's unprivileged ids could not enter; they are created first
    /// with `--dir` (0755) instead. These are the directories known to exist.
    made: Option<std::collections::BTreeSet<PathBuf>>,
}

impl Args {
    fn push(&mut self, xs: &[&dyn AsRef<std::ffi::OsStr>]) {
        for x in xs {
            self.a.push(x.as_ref().to_os_string());
        }
    }

    /// `op [src] dst`, after `--dir` for each missing parent of `dst` (root mode).
    fn at(&mut self, op: &str, src: Option<&dyn AsRef<std::ffi::OsStr>>, dst: &Path) {
        if let Some(made) = &mut self.made {
            let mut missing: Vec<PathBuf> = dst
                .ancestors()
                .skip(1)
                .take_while(|p| *p != Path::new("/") && !made.contains(*p))
                .map(Path::to_path_buf)
                .collect();
            missing.reverse();
            for d in missing {
                self.a.push("--dir".into());
                self.a.push(d.clone().into_os_string());
                made.insert(d);
            }
            made.insert(dst.to_path_buf());
        }
        self.a.push(op.into());
        if let Some(s) = src {
            self.a.push(s.as_ref().to_os_string());
        }
        self.a.push(dst.as_os_str().to_os_string());
    }

    /// A host path (a link is recreated as a link) read-only at `dst`.
    fn ro_path(&mut self, src: &Path, dst: &Path) {
        match std::fs::read_link(src) {
            Ok(to) => self.at("--symlink", Some(&to), dst),
            Err(_) => self.at("--ro-bind", Some(&src), dst),
        }
    }
}

fn plan_args(
    spec: &SandboxSpec,
    interactive: bool,
    map: Option<&IdMap>,
    etc: Option<&GeneratedEtc>,
) -> Result<Plan, SandboxError> {
    let mut a = Args {
        a: Vec::new(),
        made: map.map(|_| Default::default()),
    };
    if map.is_none() {
        a.push(&[&"--unshare-user"]);
    }
    a.push(&[&"--unshare-pid", &"--unshare-ipc", &"--unshare-uts"]);
    if !spec.network {
        a.push(&[&"--unshare-net"]);
    }
    if map.is_none() {
        a.push(&[&"--uid", &"0", &"--gid", &"0"]);
    }
    a.push(&[
        &"--hostname",
        &spec.hostname,
        &"--die-with-parent",
        &"--as-pid-1",
    ]);
    if !interactive {
        a.push(&[&"--new-session"]);
    }
    let overlay_dsts: Vec<&Path> = spec
        .mounts
        .iter()
        .filter(|&m| matches!(m, Mount::Overlay { .. }))
        .map(|m| m.dst())
        .collect();
    for m in &spec.mounts {
        if !matches!(m, Mount::Overlay { .. })
            && overlay_dsts.iter().any(|d| m.dst().starts_with(d))
        {
            return Err(SandboxError::InvalidSpec {
                reason: format!(
                    "the bwrap backend mounts overlays last, so `{}` cannot lie inside an overlay; use the native backend",
                    m.dst().display()
                ),
            });
        }
    }
    root_args(&mut a, &spec.root, etc)?;
    let has_overlays = !overlay_dsts.is_empty();
    if has_overlays {
        a.at("--tmpfs", None, Path::new(STAGE));
    }
    let (staged, mut owned_tmpfs) = mount_args(&mut a, &spec.mounts);
    if !spec.mounts.iter().any(|m| m.dst() == Path::new("/tmp")) {
        a.at("--tmpfs", None, Path::new("/tmp"));
        owned_tmpfs.push(PathBuf::from("/tmp"));
    }
    a.push(&[
        &"--proc",
        &"/proc",
        &"--dev",
        &"/dev",
        &"--remount-ro",
        &"/dev",
    ]);
    if !has_overlays {
        a.push(&[&"--remount-ro", &"/"]);
    }
    a.push(&[&"--cap-add", &"ALL"]);
    if map.is_none() {
        owned_tmpfs.clear();
    }
    Ok((a.a, staged, owned_tmpfs))
}

fn root_args(
    a: &mut Args,
    root: &RootSpec,
    etc: Option<&GeneratedEtc>,
) -> Result<(), SandboxError> {
    match root {
        RootSpec::Host { ro_paths } => {
            if etc.is_some() {
                a.at("--tmpfs", None, Path::new("/etc"));
            }
            let etc_paths = etc.map(|e| e.host.as_slice()).unwrap_or_default();
            for p in ro_paths.iter().chain(etc_paths) {
                a.ro_path(p, p);
            }
        }
        RootSpec::Layers(layers) => match layers.as_slice() {
            [one] => {
                // Keep bwrap's tmpfs root (mount points can be created in it) and bind
                // every top-level entry of the layer.
                let mut entries: Vec<PathBuf> = std::fs::read_dir(one)
                    .map_err(|e| SandboxError::io("reading the rootfs layer", Some(one.clone()), e))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .collect();
                entries.sort();
                for e in entries {
                    let dst = Path::new("/").join(e.file_name().unwrap_or_default());
                    a.ro_path(&e, &dst);
                }
            }
            _ => {
                return Err(SandboxError::InvalidSpec {
                    reason: format!(
                        "the bwrap backend takes a rootfs of exactly one layer ({} given); use the native backend",
                        layers.len()
                    ),
                })
            }
        },
    }
    Ok(())
}

/// The spec's mounts: binds and tmpfs mounts for bwrap, overlays staged for the init.
fn mount_args(a: &mut Args, mounts: &[Mount]) -> (Vec<StagedOverlay>, Vec<PathBuf>) {
    let mut staged = Vec::new();
    let mut owned_tmpfs = Vec::new();
    for (i, m) in mounts.iter().enumerate() {
        match m {
            Mount::Bind { src, dst, writable } => {
                a.at(
                    if *writable { "--bind" } else { "--ro-bind" },
                    Some(src),
                    dst,
                );
            }
            Mount::Tmpfs { dst } => {
                a.at("--tmpfs", None, dst);
                owned_tmpfs.push(dst.clone());
            }
            Mount::Overlay { lowers, upper, dst } => {
                let mut sl = Vec::new();
                for (j, l) in lowers.iter().enumerate() {
                    let s = PathBuf::from(format!("{STAGE}/{i}/l{j}"));
                    a.at("--ro-bind", Some(l), &s);
                    sl.push(s);
                }
                let su = match upper {
                    Some((u, w)) => {
                        // upperdir and workdir must sit on the same mount: bind their common parent.
                        let anc = common_ancestor(u, w);
                        let s = PathBuf::from(format!("{STAGE}/{i}/u"));
                        a.at("--bind", Some(&anc), &s);
                        let rel = |p: &Path| s.join(p.strip_prefix(&anc).unwrap_or(p));
                        Some((rel(u), rel(w)))
                    }
                    None => None,
                };
                a.at("--dir", None, dst);
                staged.push(StagedOverlay {
                    lowers: sl,
                    upper: su,
                    dst: dst.clone(),
                });
            }
        }
    }
    (staged, owned_tmpfs)
}

impl BwrapBackend {
    /// A bubblewrap backend using `cfg` (helper location, `bwrap` path).
    pub fn new(cfg: SandboxConfig) -> Self {
        BwrapBackend { cfg }
    }

    fn bwrap_path(&self) -> PathBuf {
        self.cfg
            .bwrap
            .clone()
            .unwrap_or_else(|| PathBuf::from("bwrap"))
    }

    fn run_with(&self, spec: &SandboxSpec, interactive: bool) -> Result<Outcome, SandboxError> {
        crate::validate(spec)?;
        let start = Instant::now();
        let map_root = identity::root_map();
        identity::prepare_overlay_dirs(spec, map_root.as_ref())?;
        let etc = crate::etc::for_spec(spec);
        let (args, overlays, owned_tmpfs) =
            plan_args(spec, interactive, map_root.as_ref(), etc.as_ref())?;
        let cg = TaskCgroup::for_limits(&spec.limits, cgroup::PIDS_OVERHEAD)?;
        let cg_fd = cg.as_ref().map(TaskCgroup::procs_fd);
        let helper = self.cfg.helper_path()?;
        let helper_file = std::fs::File::open(&helper)
            .map_err(|e| SandboxError::io("opening the sandbox helper", Some(helper.clone()), e))?;
        let (rep_r, rep_w) = sys::pipe()
            .map_err(|e| SandboxError::io("creating the report pipe", None, e.into()))?;
        let task_err: OwnedFd = match &spec.stderr {
            Stdio::Null => std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/null")
                .map_err(|e| SandboxError::io("opening /dev/null", None, e))?
                .into(),
            Stdio::Inherit => nix::unistd::dup(std::io::stderr())
                .map_err(|e| SandboxError::io("duplicating stderr", None, e.into()))?,
            Stdio::File(p) => std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| SandboxError::io("opening a task stream", Some(p.clone()), e))?
                .into(),
        };
        let errlog = memfd()?;
        let init = BwrapInit {
            init: InitSpec::from_spec(spec, interactive, map_root),
            overlays,
            stderr_fd: Some(task_err.as_raw_fd()),
            etc_files: etc.map(|e| e.files).unwrap_or_default(),
            owned_tmpfs,
        };
        let json = serde_json::to_string(&init).map_err(|e| SandboxError::InvalidSpec {
            reason: format!("cannot encode the spec (non-UTF-8 path?): {e}"),
        })?;
        let (hfd, rfd, efd) = (
            helper_file.as_raw_fd(),
            rep_w.as_raw_fd(),
            task_err.as_raw_fd(),
        );
        let mut cmd = std::process::Command::new(self.bwrap_path());
        cmd.args(&args)
            .arg("--")
            .arg(format!("/proc/self/fd/{hfd}"))
            .arg(HELPER_ARG)
            .arg("init")
            .arg(rfd.to_string())
            .arg(json)
            .env_clear()
            .stdin(crate::open_stdio(&spec.stdin, true)?)
            .stdout(crate::open_stdio(&spec.stdout, false)?)
            .stderr(std::process::Stdio::from(errlog.try_clone().map_err(
                |e| SandboxError::io("duplicating the log fd", None, e),
            )?));
        // SAFETY: only async-signal-safe calls (prctl, umask, fcntl, write) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // Mount points and generated files get 0755/0644 whatever the caller's umask:
                // run as root, the task's unprivileged ids must be able to enter and read them.
                libc::umask(0o022);
                if let Some(fd) = cg_fd {
                    cgroup::enter(fd)?;
                }
                for fd in [hfd, rfd, efd] {
                    if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| SandboxError::Unavailable {
            backend: "bwrap",
            reason: format!(
                "cannot start {}{}: {e} (install bubblewrap)",
                self.bwrap_path().display(),
                cgroup::spawn_context(cg.as_ref())
            ),
        })?;
        drop(rep_w);
        drop(task_err);
        drop(helper_file);
        let bytes = sys::read_to_end(rep_r.as_raw_fd()).unwrap_or_default();
        let st = child
            .wait()
            .map_err(|e| SandboxError::io("waiting for bwrap", None, e))?;
        let result = match init::parse_reports(&bytes) {
            Some(Report::Exited(status)) => Ok(status),
            Some(Report::Setup(f)) => Err(f.into()),
            None => {
                let mut log = String::new();
                let mut f = errlog;
                let _ = f.rewind();
                let _ = f.read_to_string(&mut log);
                Err(SandboxError::Setup {
                    step: "bwrap".into(),
                    path: None,
                    errno: 0,
                    message: format!("bwrap {st}: {}", log.trim()),
                })
            }
        };
        cgroup::conclude(cg, result, start)
    }
}

fn memfd() -> Result<std::fs::File, SandboxError> {
    // SAFETY: valid C string and flags.
    let fd = unsafe { libc::memfd_create(c"bwrap-stderr".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(SandboxError::io(
            "creating a memfd",
            None,
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: the kernel just returned this fd.
    Ok(std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

impl Backend for BwrapBackend {
    fn name(&self) -> &'static str {
        "bwrap"
    }
    fn hermetic(&self) -> bool {
        true
    }
    fn run(&self, spec: &SandboxSpec) -> Result<Outcome, SandboxError> {
        self.run_with(spec, false)
    }
    fn run_interactive(&self, spec: &SandboxSpec) -> Result<Outcome, SandboxError> {
        let mut s = spec.clone();
        s.stdin = Stdio::Inherit;
        s.stdout = Stdio::Inherit;
        s.stderr = Stdio::Inherit;
        self.run_with(&s, true)
    }
}

/// `__sandbox-helper init <report-fd> <json>`: PID 1 inside bwrap.
pub(crate) fn init_main(report_fd: RawFd, json: &str) -> i32 {
    // SAFETY: flagging our own fd close-on-exec.
    unsafe { libc::fcntl(report_fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    let cfg: BwrapInit = match serde_json::from_str(json) {
        Ok(c) => c,
        Err(e) => {
            init::send(
                report_fd,
                &Report::Setup(fail("helper protocol", None, Errno::EINVAL, e.to_string())),
            );
            return 1;
        }
    };
    if let Some(fd) = cfg.stderr_fd {
        // SAFETY: dup2 onto stderr, then close the original; both fds are ours.
        unsafe {
            libc::dup2(fd, 2);
            libc::close(fd);
        }
    }
    let prepared = finish_mounts(&cfg).and_then(|()| InitPlan::new(&cfg.init));
    match prepared {
        Ok(plan) => init::run_init(&plan, report_fd),
        Err(f) => {
            init::send(report_fd, &Report::Setup(f));
            1
        }
    }
}

/// What bwrap cannot do: the generated `/etc`, tmpfs ownership (root mode), the overlays.
fn finish_mounts(cfg: &BwrapInit) -> Result<(), SetupFailure> {
    let etc = Path::new("/etc");
    if !cfg.etc_files.is_empty() {
        let g = GeneratedEtc {
            files: cfg.etc_files.clone(),
            host: Vec::new(),
        };
        g.populate(etc)?;
    }
    if let Some(m) = &cfg.init.map_root {
        for t in &cfg.owned_tmpfs {
            std::os::unix::fs::lchown(t, Some(m.uid), Some(m.gid)).map_err(|e| {
                fail(
                    "chown tmpfs",
                    Some(t),
                    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
                    format!("handing it to the task's ids {}:{}", m.uid, m.gid),
                )
            })?;
        }
    }
    mount_staged(&cfg.overlays)?;
    if !cfg.etc_files.is_empty() {
        sys::remount_bind(
            etc,
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        )?;
    }
    Ok(())
}

fn mount_staged(overlays: &[StagedOverlay]) -> Result<(), SetupFailure> {
    if overlays.is_empty() {
        return Ok(());
    }
    let stage = Path::new(STAGE);
    let mut scratch = Scratch {
        dir: stage.join("s"),
        empty: stage.join("e"),
        next: 0,
        force_legacy: false,
    };
    sys::mkdir_p(&scratch.dir)?;
    sys::mkdir_p(&scratch.empty)?;
    for o in overlays {
        let up = o.upper.as_ref().map(|(u, w)| (u.as_path(), w.as_path()));
        overlay::mount_overlay(&o.lowers, up, &o.dst, &mut scratch)?;
    }
    nix::mount::umount2(stage, MntFlags::MNT_DETACH)
        .map_err(|e| fail("detach staging", Some(stage), e, "umount2"))?;
    std::fs::remove_dir(stage).map_err(|e| {
        fail(
            "remove staging",
            Some(stage),
            Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            e.to_string(),
        )
    })?;
    sys::remount_bind(
        Path::new("/"),
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
    )
    .or_else(|_| {
        sys::mount(
            "remount / read-only",
            None,
            Path::new("/"),
            None,
            MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            None,
        )
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(args: &[OsString]) -> String {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn sample() -> SandboxSpec {
        let mut spec =
            SandboxSpec::new(vec!["true".into()], vec![PathBuf::from("/nonexistent-usr")]);
        spec.mounts.push(Mount::Bind {
            src: "/h/dl".into(),
            dst: "/bitzel/downloads".into(),
            writable: false,
        });
        spec.mounts.push(Mount::Overlay {
            lowers: vec!["/c/a".into(), "/c/b".into()],
            upper: Some(("/b/t/up".into(), "/b/t/work".into())),
            dst: "/bitzel/work".into(),
        });
        spec.mounts.push(Mount::Tmpfs {
            dst: "/bitzel/files".into(),
        });
        spec
    }

    #[test]
    fn maps_a_spec_to_arguments() {
        let (args, staged, owned) = plan_args(&sample(), false, None, None).unwrap();
        expect_test::expect!["--unshare-user --unshare-pid --unshare-ipc --unshare-uts --unshare-net --uid 0 --gid 0 --hostname bitzel --die-with-parent --as-pid-1 --new-session --ro-bind /nonexistent-usr /nonexistent-usr --tmpfs /.bitzel-stage --ro-bind /h/dl /bitzel/downloads --ro-bind /c/a /.bitzel-stage/1/l0 --ro-bind /c/b /.bitzel-stage/1/l1 --bind /b/t /.bitzel-stage/1/u --dir /bitzel/work --tmpfs /bitzel/files --tmpfs /tmp --proc /proc --dev /dev --remount-ro /dev --cap-add ALL"]
        .assert_eq(&words(&args));
        assert_eq!(staged.len(), 1);
        assert!(
            owned.is_empty(),
            "rootless: tmpfs mounts belong to the namespace's root"
        );
    }

    #[test]
    fn as_root_no_user_namespace_and_a_generated_etc() {
        let map = IdMap {
            uid: 100000,
            uid_count: 65536,
            gid: 100000,
            gid_count: 65536,
        };
        let etc = GeneratedEtc {
            files: Vec::new(),
            host: vec!["/etc/nonexistent-dir/x".into()],
        };
        let (args, _, owned) = plan_args(&sample(), false, Some(&map), Some(&etc)).unwrap();
        expect_test::expect!["--unshare-pid --unshare-ipc --unshare-uts --unshare-net --hostname bitzel --die-with-parent --as-pid-1 --new-session --tmpfs /etc --ro-bind /nonexistent-usr /nonexistent-usr --dir /etc/nonexistent-dir --ro-bind /etc/nonexistent-dir/x /etc/nonexistent-dir/x --tmpfs /.bitzel-stage --dir /bitzel --ro-bind /h/dl /bitzel/downloads --dir /.bitzel-stage/1 --ro-bind /c/a /.bitzel-stage/1/l0 --ro-bind /c/b /.bitzel-stage/1/l1 --bind /b/t /.bitzel-stage/1/u --dir /bitzel/work --tmpfs /bitzel/files --tmpfs /tmp --proc /proc --dev /dev --remount-ro /dev --cap-add ALL"]
        .assert_eq(&words(&args));
        assert_eq!(
            owned,
            [PathBuf::from("/bitzel/files"), PathBuf::from("/tmp")]
        );
    }

    #[test]
    fn network_and_interactive() {
        let mut spec = SandboxSpec::new(vec!["true".into()], vec![]);
        spec.network = true;
        let s = words(&plan_args(&spec, true, None, None).unwrap().0);
        assert!(!s.contains("--unshare-net"));
        assert!(!s.contains("--new-session"));
        assert!(s.contains("--remount-ro /"));
    }

    #[test]
    fn rejects_multi_layer_rootfs() {
        let mut spec = SandboxSpec::new(vec!["true".into()], vec![]);
        spec.root = RootSpec::Layers(vec!["/a".into(), "/b".into()]);
        assert!(bwrap_args(&spec, false).is_err());
    }
}
