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
//! capability before starting the task. Because PID 1 is the (dynamically linked) helper, a
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
    Ok(plan_args(spec, interactive)?.0)
}

fn plan_args(
    spec: &SandboxSpec,
    interactive: bool,
) -> Result<(Vec<OsString>, Vec<StagedOverlay>), SandboxError> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |xs: &[&dyn AsRef<std::ffi::OsStr>]| {
        for x in xs {
            a.push(x.as_ref().to_os_string());
        }
    };
    push(&[
        &"--unshare-user",
        &"--unshare-pid",
        &"--unshare-ipc",
        &"--unshare-uts",
    ]);
    if !spec.network {
        push(&[&"--unshare-net"]);
    }
    push(&[
        &"--uid",
        &"0",
        &"--gid",
        &"0",
        &"--hostname",
        &spec.hostname,
        &"--die-with-parent",
        &"--as-pid-1",
    ]);
    if !interactive {
        push(&[&"--new-session"]);
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
    match &spec.root {
        RootSpec::Host { ro_paths } => {
            for p in ro_paths {
                match std::fs::read_link(p) {
                    Ok(to) => push(&[&"--symlink", &to, p]),
                    Err(_) => push(&[&"--ro-bind", p, p]),
                }
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
                    match std::fs::read_link(&e) {
                        Ok(to) => push(&[&"--symlink", &to, &dst]),
                        Err(_) => push(&[&"--ro-bind", &e, &dst]),
                    }
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
    let mut staged = Vec::new();
    let has_overlays = !overlay_dsts.is_empty();
    if has_overlays {
        push(&[&"--tmpfs", &STAGE]);
    }
    let mut has_tmp = false;
    for (i, m) in spec.mounts.iter().enumerate() {
        has_tmp |= m.dst() == Path::new("/tmp");
        match m {
            Mount::Bind { src, dst, writable } => {
                push(&[if *writable { &"--bind" } else { &"--ro-bind" }, src, dst]);
            }
            Mount::Tmpfs { dst } => push(&[&"--tmpfs", dst]),
            Mount::Overlay { lowers, upper, dst } => {
                let mut sl = Vec::new();
                for (j, l) in lowers.iter().enumerate() {
                    let s = PathBuf::from(format!("{STAGE}/{i}/l{j}"));
                    push(&[&"--ro-bind", l, &s]);
                    sl.push(s);
                }
                let su = match upper {
                    Some((u, w)) => {
                        // upperdir and workdir must sit on the same mount: bind their common parent.
                        let anc = common_ancestor(u, w);
                        let s = PathBuf::from(format!("{STAGE}/{i}/u"));
                        push(&[&"--bind", &anc, &s]);
                        let rel = |p: &Path| s.join(p.strip_prefix(&anc).unwrap_or(p));
                        Some((rel(u), rel(w)))
                    }
                    None => None,
                };
                push(&[&"--dir", dst]);
                staged.push(StagedOverlay {
                    lowers: sl,
                    upper: su,
                    dst: dst.clone(),
                });
            }
        }
    }
    if !has_tmp {
        push(&[&"--tmpfs", &"/tmp"]);
    }
    push(&[
        &"--proc",
        &"/proc",
        &"--dev",
        &"/dev",
        &"--remount-ro",
        &"/dev",
    ]);
    if has_overlays {
        push(&[&"--cap-add", &"ALL"]);
    } else {
        push(&[&"--remount-ro", &"/"]);
    }
    Ok((a, staged))
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
        let (args, overlays) = plan_args(spec, interactive)?;
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
            init: InitSpec::from_spec(spec, interactive),
            overlays,
            stderr_fd: Some(task_err.as_raw_fd()),
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
        // SAFETY: only async-signal-safe calls (prctl, fcntl, write) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
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
    let prepared = mount_staged(&cfg.overlays).and_then(|()| InitPlan::new(&cfg.init));
    match prepared {
        Ok(plan) => init::run_init(&plan, report_fd),
        Err(f) => {
            init::send(report_fd, &Report::Setup(f));
            1
        }
    }
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

    #[test]
    fn maps_a_spec_to_arguments() {
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
        let args = bwrap_args(&spec, false).unwrap();
        let s: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        expect_test::expect!["--unshare-user --unshare-pid --unshare-ipc --unshare-uts --unshare-net --uid 0 --gid 0 --hostname bitzel --die-with-parent --as-pid-1 --new-session --ro-bind /nonexistent-usr /nonexistent-usr --tmpfs /.bitzel-stage --ro-bind /h/dl /bitzel/downloads --ro-bind /c/a /.bitzel-stage/1/l0 --ro-bind /c/b /.bitzel-stage/1/l1 --bind /b/t /.bitzel-stage/1/u --dir /bitzel/work --tmpfs /tmp --proc /proc --dev /dev --remount-ro /dev --cap-add ALL"]
        .assert_eq(&s.join(" "));
    }

    #[test]
    fn network_and_interactive() {
        let mut spec = SandboxSpec::new(vec!["true".into()], vec![]);
        spec.network = true;
        let s: Vec<String> = bwrap_args(&spec, true)
            .unwrap()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(!s.contains(&"--unshare-net".to_string()));
        assert!(!s.contains(&"--new-session".to_string()));
        assert!(s.contains(&"--remount-ro".to_string()));
    }

    #[test]
    fn rejects_multi_layer_rootfs() {
        let mut spec = SandboxSpec::new(vec!["true".into()], vec![]);
        spec.root = RootSpec::Layers(vec!["/a".into(), "/b".into()]);
        assert!(bwrap_args(&spec, false).is_err());
    }
}
