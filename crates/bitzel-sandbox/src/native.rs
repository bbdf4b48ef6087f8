//! The native backend: Linux namespaces through `nix`, run from a single-threaded helper.
//!
//! ```text
//! bitzel (threads) ──spawn──► helper (1 thread) ──clone(NEWUSER|NEWNS|NEWPID|…)──► PID 1 ──fork──► task
//!        ◄── result fd (JSON) ──┘        writes uid/gid maps, sync pipe ─┘  mounts, pivot_root   exec
//! ```
//! The spec goes to the helper on an inherited pipe; the helper answers with one JSON
//! [`HelperResult`] on another. PID 1 reports setup failures and the task's status to the
//! helper on a close-on-exec pipe.
//!
//! Run by root, the clone has no `CLONE_NEWUSER`: PID 1 mounts as real root, and only the task
//! enters a user namespace mapping its 0 to unprivileged host ids (see [`crate::identity`]).

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use serde::{Deserialize, Serialize};

use crate::cgroup::{self, TaskCgroup};
use crate::error::{SandboxError, SetupFailure};
use crate::etc::GeneratedEtc;
use crate::identity::{self, IdMap};
use crate::init::{self, InitPlan, InitSpec, Report};
use crate::overlay::{self, Scratch};
use crate::spec::{ExitStatus, Mount, Outcome, RootSpec, SandboxSpec, Stdio};
use crate::sys::{self, fail, under, SResult};
use crate::{Backend, SandboxConfig};

/// The first argument that puts the helper (or the `bitzel` binary) into helper mode.
pub const HELPER_ARG: &str = "__sandbox-helper";

/// What the parent sends to the helper.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct HelperRequest {
    pub spec: SandboxSpec,
    pub base_dir: PathBuf,
    pub interactive: bool,
    pub force_legacy_overlay: bool,
    /// Run as root: the task's ids (the namespaces get no user namespace of their own).
    pub map_root: Option<IdMap>,
    /// The generated `/etc` (`host` build roots).
    pub etc: Option<GeneratedEtc>,
}

/// What the helper answers.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum HelperResult {
    Exited(ExitStatus),
    Setup(SetupFailure),
}

/// The native backend.
#[derive(Debug, Clone)]
pub struct NativeBackend {
    cfg: SandboxConfig,
}

impl NativeBackend {
    /// A native backend using `cfg` (helper location, scratch directory).
    pub fn new(cfg: SandboxConfig) -> Self {
        NativeBackend { cfg }
    }

    /// Run `spec` with the task attached to the caller's terminal (`devshell`): stdio is
    /// inherited and the task stays in the caller's session so it keeps the controlling TTY.
    pub fn run_interactive(&self, spec: &SandboxSpec) -> Result<Outcome, SandboxError> {
        let mut spec = spec.clone();
        spec.stdin = Stdio::Inherit;
        spec.stdout = Stdio::Inherit;
        spec.stderr = Stdio::Inherit;
        self.run_with(&spec, true)
    }

    fn run_with(&self, spec: &SandboxSpec, interactive: bool) -> Result<Outcome, SandboxError> {
        crate::validate(spec)?;
        let start = Instant::now();
        let helper = self.cfg.helper_path()?;
        let map_root = identity::root_map();
        identity::prepare_overlay_dirs(spec, map_root.as_ref())?;
        let cg = TaskCgroup::for_limits(&spec.limits, cgroup::PIDS_OVERHEAD)?;
        let cg_fd = cg.as_ref().map(TaskCgroup::procs_fd);
        let req = HelperRequest {
            spec: spec.clone(),
            base_dir: self.cfg.base_dir(),
            interactive,
            force_legacy_overlay: self.cfg.force_legacy_overlay,
            map_root,
            etc: crate::etc::for_spec(spec),
        };
        let body = serde_json::to_vec(&req).map_err(|e| SandboxError::InvalidSpec {
            reason: format!("cannot encode the spec (non-UTF-8 path?): {e}"),
        })?;
        let pipe_err = |e: Errno| SandboxError::io("creating a pipe to the helper", None, e.into());
        let (spec_r, spec_w) = sys::pipe().map_err(pipe_err)?;
        let (res_r, res_w) = sys::pipe().map_err(pipe_err)?;
        let (spec_fd, res_fd) = (spec_r.as_raw_fd(), res_w.as_raw_fd());
        let mut cmd = std::process::Command::new(&helper);
        cmd.arg(HELPER_ARG)
            .arg("run")
            .arg(spec_fd.to_string())
            .arg(res_fd.to_string());
        cmd.env_clear();
        cmd.stdin(crate::open_stdio(&spec.stdin, true)?);
        cmd.stdout(crate::open_stdio(&spec.stdout, false)?);
        cmd.stderr(crate::open_stdio(&spec.stderr, false)?);
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
                for fd in [spec_fd, res_fd] {
                    if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| {
            SandboxError::io(
                format!(
                    "starting the sandbox helper{}",
                    cgroup::spawn_context(cg.as_ref())
                ),
                Some(helper.clone()),
                e,
            )
        })?;
        drop(spec_r);
        drop(res_w);
        let mut w = std::fs::File::from(spec_w);
        // A helper that died early closes the pipe; the result read below explains why.
        let _ = w.write_all(&body);
        drop(w);
        let mut out = Vec::new();
        let mut r = std::fs::File::from(res_r);
        r.read_to_end(&mut out)
            .map_err(|e| SandboxError::io("reading the helper's result", None, e))?;
        let st = child
            .wait()
            .map_err(|e| SandboxError::io("waiting for the helper", Some(helper.clone()), e))?;
        let result = match serde_json::from_slice::<HelperResult>(&out) {
            Ok(HelperResult::Exited(status)) => Ok(status),
            Ok(HelperResult::Setup(f)) => Err(f.into()),
            Err(_) => Err(SandboxError::Helper {
                message: format!("{} ended with {st} without a result", helper.display()),
            }),
        };
        cgroup::conclude(cg, result, start)
    }
}

impl Backend for NativeBackend {
    fn name(&self) -> &'static str {
        "native"
    }
    fn hermetic(&self) -> bool {
        true
    }
    fn run(&self, spec: &SandboxSpec) -> Result<Outcome, SandboxError> {
        self.run_with(spec, false)
    }
    fn run_interactive(&self, spec: &SandboxSpec) -> Result<Outcome, SandboxError> {
        NativeBackend::run_interactive(self, spec)
    }
}

// ------------------------------------------------------------------ helper side

/// `__sandbox-helper run <spec-fd> <result-fd>`.
pub(crate) fn helper_run(spec_fd: RawFd, result_fd: RawFd) -> ! {
    // SAFETY: the parent passed these fds to us for our exclusive use.
    let (spec_in, result_out) = unsafe { (sys::owned(spec_fd), sys::owned(result_fd)) };
    for fd in [spec_fd, result_fd] {
        // SAFETY: flagging our own fd close-on-exec.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    let bytes = sys::read_to_end(spec_in.as_raw_fd()).unwrap_or_default();
    drop(spec_in);
    let result = match serde_json::from_slice::<HelperRequest>(&bytes) {
        Ok(req) => match run_in_helper(&req, result_out.as_raw_fd()) {
            Ok(status) => HelperResult::Exited(status),
            Err(f) => HelperResult::Setup(f),
        },
        Err(e) => HelperResult::Setup(fail("helper protocol", None, Errno::EINVAL, e.to_string())),
    };
    if let Ok(b) = serde_json::to_vec(&result) {
        let _ = sys::write_all(result_out.as_raw_fd(), &b);
    }
    sys::exit_now(0)
}

fn ensure_base_dir(base: &Path) -> SResult<()> {
    match std::fs::create_dir(base) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(fail(
                "scratch directory",
                Some(base),
                Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
                e.to_string(),
            ))
        }
    }
    let md = std::fs::symlink_metadata(base).map_err(|e| {
        fail(
            "scratch directory",
            Some(base),
            Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            e.to_string(),
        )
    })?;
    if !md.is_dir() || md.uid() != nix::unistd::geteuid().as_raw() {
        return Err(fail(
            "scratch directory",
            Some(base),
            Errno::EPERM,
            "must be a directory owned by the invoking user",
        ));
    }
    Ok(())
}

fn run_in_helper(req: &HelperRequest, result_fd: RawFd) -> SResult<ExitStatus> {
    let spec = &req.spec;
    let plan = InitPlan::new(&InitSpec::from_spec(spec, req.interactive, req.map_root))?;
    ensure_base_dir(&req.base_dir)?;
    let (rep_r, rep_w) = sys::pipe().map_err(|e| fail("pipe", None, e, "report pipe"))?;
    let (sync_r, sync_w) = sys::pipe().map_err(|e| fail("pipe", None, e, "sync pipe"))?;
    let mut flags =
        libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
    if req.map_root.is_none() {
        flags |= libc::CLONE_NEWUSER;
    }
    if !spec.network {
        flags |= libc::CLONE_NEWNET;
    }
    let uid = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    // SAFETY: this process is single-threaded; a clone without CLONE_VM and without a new
    // stack behaves like fork.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid < 0 {
        let e = Errno::last();
        return Err(fail(
            "clone",
            None,
            e,
            "creating user/mount/pid namespaces (unprivileged user namespaces disabled?)",
        ));
    }
    if pid == 0 {
        // PID 1 of the new namespaces.
        drop(rep_r);
        drop(sync_w);
        // SAFETY: closing an fd this process inherited and owns.
        unsafe { libc::close(result_fd) };
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } != 0 {
            let f = fail(
                "pdeathsig",
                None,
                Errno::last(),
                "PR_SET_PDEATHSIG in PID 1",
            );
            init::send(rep_w.as_raw_fd(), &Report::Setup(f));
            sys::exit_now(1);
        }
        let mut b = [0u8; 1];
        // SAFETY: valid buffer.
        let n = unsafe { libc::read(sync_r.as_raw_fd(), b.as_mut_ptr().cast(), 1) };
        drop(sync_r);
        if n != 1 {
            sys::exit_now(1);
        }
        if let Err(f) = setup_namespace(req) {
            init::send(rep_w.as_raw_fd(), &Report::Setup(f));
            sys::exit_now(1);
        }
        init::run_init(&plan, rep_w.as_raw_fd());
    }
    let child = nix::unistd::Pid::from_raw(pid as i32);
    drop(rep_w);
    drop(sync_r);
    if req.map_root.is_none() {
        let (u, g) = (format!("0 {uid} 1\n"), format!("0 {gid} 1\n"));
        if let Err(f) = identity::write_id_maps(child.as_raw(), &u, &g) {
            let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(child, None);
            return Err(f);
        }
    }
    let _ = sys::write_all(sync_w.as_raw_fd(), b"1");
    drop(sync_w);
    let bytes = sys::read_to_end(rep_r.as_raw_fd()).unwrap_or_default();
    let wait = nix::sys::wait::waitpid(child, None);
    match init::parse_reports(&bytes) {
        Some(Report::Exited(s)) => Ok(s),
        Some(Report::Setup(f)) => Err(f),
        None => Err(fail(
            "sandbox init",
            None,
            Errno::EIO,
            format!("PID 1 ended without a report: {wait:?}"),
        )),
    }
}

/// Everything PID 1 does before starting the task: mounts, /dev, /proc, hostname,
/// loopback, pivot_root, read-only remounts.
fn setup_namespace(req: &HelperRequest) -> SResult<()> {
    let spec = &req.spec;
    let base = &req.base_dir;
    sys::mount(
        "make / rprivate",
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )?;
    sys::mount(
        "scratch tmpfs",
        Some(Path::new("tmpfs")),
        base,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0700"),
    )?;
    let root = base.join("r");
    let mut scratch = Scratch {
        dir: base.join("s"),
        empty: base.join("e"),
        next: 0,
        force_legacy: req.force_legacy_overlay,
    };
    for d in [&root, &scratch.dir, &scratch.empty] {
        sys::mkdir_p(d)?;
    }
    match &spec.root {
        RootSpec::Host { ro_paths } => {
            sys::mount(
                "root tmpfs",
                Some(Path::new("tmpfs")),
                &root,
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some("mode=0755"),
            )?;
            for p in ro_paths {
                bind_host_path(p, &under(&root, p), false)?;
            }
            if let Some(etc) = &req.etc {
                mount_etc(&root, etc)?;
            }
        }
        RootSpec::Layers(layers) => {
            // The layers are read-only, so every mount point is created in a skeleton layer on top.
            let skel = base.join("k");
            sys::mkdir_p(&skel)?;
            for d in ["dev", "proc", "tmp"] {
                sys::mkdir_p(&skel.join(d))?;
            }
            for m in &spec.mounts {
                let is_file = matches!(m, Mount::Bind { src, .. } if src.metadata().is_ok_and(|md| !md.is_dir()));
                let p = under(&skel, m.dst());
                if let Mount::Bind { src, .. } = m {
                    if src.symlink_metadata().is_ok_and(|md| md.is_symlink()) {
                        // A bound symlink is a symlink in the skeleton (the root is read-only).
                        bind_host_path(src, &p, false)?;
                        continue;
                    }
                }
                if is_file {
                    sys::touch(&p)?;
                } else {
                    sys::mkdir_p(&p)?;
                }
            }
            let mut lowers = vec![skel];
            lowers.extend(layers.iter().rev().cloned());
            overlay::mount_overlay(&lowers, None, &root, &mut scratch)?;
        }
    }
    mount_spec_mounts(req, &root, &mut scratch)?;
    if req.etc.is_some() {
        sys::mount(
            "remount /etc read-only",
            None,
            &root.join("etc"),
            None,
            MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            None,
        )?;
    }
    if !spec.mounts.iter().any(|m| m.dst() == Path::new("/tmp")) {
        let t = root.join("tmp");
        sys::mkdir_p(&t)?;
        sys::mount(
            "tmpfs /tmp",
            Some(Path::new("tmpfs")),
            &t,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=1777"),
        )?;
    }
    setup_dev(&root.join("dev"))?;
    let proc_dir = root.join("proc");
    sys::mkdir_p(&proc_dir)?;
    sys::mount(
        "mount /proc",
        Some(Path::new("proc")),
        &proc_dir,
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None,
    )?;
    nix::unistd::sethostname(&spec.hostname)
        .map_err(|e| fail("sethostname", None, e, spec.hostname.clone()))?;
    if !spec.network {
        loopback_up()?;
    }
    // pivot_root(".", ".") stacks the old root on the new one; detaching "." removes it.
    nix::unistd::chdir(&root)
        .map_err(|e| fail("chdir", Some(&root), e, "entering the new root"))?;
    nix::unistd::pivot_root(".", ".")
        .map_err(|e| fail("pivot_root", Some(&root), e, "switching to the new root"))?;
    nix::mount::umount2(".", MntFlags::MNT_DETACH)
        .map_err(|e| fail("detach old root", None, e, "umount2"))?;
    nix::unistd::chdir("/").map_err(|e| fail("chdir", Some(Path::new("/")), e, "entering /"))?;
    if matches!(spec.root, RootSpec::Host { .. }) {
        sys::mount(
            "remount / read-only",
            None,
            Path::new("/"),
            None,
            MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            None,
        )?;
    }
    Ok(())
}

/// The spec's mounts, in order, below `root`.
fn mount_spec_mounts(req: &HelperRequest, root: &Path, scratch: &mut Scratch) -> SResult<()> {
    for m in &req.spec.mounts {
        if let Some(ids) = &req.map_root {
            make_parents_owned(&req.spec.mounts, m.dst(), root, ids)?;
        }
        let target = under(root, m.dst());
        match m {
            Mount::Bind { src, writable, .. } => bind_host_path(src, &target, *writable)?,
            Mount::Overlay { lowers, upper, .. } => {
                sys::mkdir_p(&target)?;
                let up = upper.as_ref().map(|(u, w)| (u.as_path(), w.as_path()));
                overlay::mount_overlay(lowers, up, &target, scratch)?;
            }
            Mount::Tmpfs { .. } => {
                sys::mkdir_p(&target)?;
                // Owned by the task's identity (root mode; else by the namespace's root).
                let opts = match &req.map_root {
                    Some(m) => format!("mode=0755,uid={},gid={}", m.uid, m.gid),
                    None => "mode=0755".to_owned(),
                };
                sys::mount(
                    "tmpfs",
                    Some(Path::new("tmpfs")),
                    &target,
                    Some("tmpfs"),
                    MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                    Some(&opts),
                )?;
            }
        }
    }
    Ok(())
}

/// Create the directories between the innermost earlier tmpfs mount that
/// holds `dst` and `dst`'s parent, owned by the task's identity (`ids`), so
/// that the task can write next to a mount inside its tmpfs as it can in the
/// rest of it (the helper would make them root's).
fn make_parents_owned(mounts: &[Mount], dst: &Path, root: &Path, ids: &IdMap) -> SResult<()> {
    let Some(tmpfs) = mounts
        .iter()
        .take_while(|m| m.dst() != dst)
        .filter(|m| matches!(m, Mount::Tmpfs { .. }) && dst.starts_with(m.dst()) && dst != m.dst())
        .map(Mount::dst)
        .max_by_key(|t| t.components().count())
    else {
        return Ok(());
    };
    let Some(parent) = dst.parent() else {
        return Ok(());
    };
    let mut missing: Vec<&Path> = parent
        .ancestors()
        .take_while(|a| a.starts_with(tmpfs) && *a != tmpfs)
        .filter(|a| !under(root, a).exists())
        .collect();
    missing.reverse();
    for a in missing {
        let p = under(root, a);
        sys::mkdir_p(&p)?;
        nix::unistd::chown(
            &p,
            Some(nix::unistd::Uid::from_raw(ids.uid)),
            Some(nix::unistd::Gid::from_raw(ids.gid)),
        )
        .map_err(|e| {
            fail(
                "chown",
                Some(&p),
                e,
                "handing a mount point's parent to the task",
            )
        })?;
    }
    Ok(())
}

/// A tmpfs at `<root>/etc` with the generated files and the allowed host entries (left
/// writable: mounts below `/etc` may follow; the caller remounts it read-only).
fn mount_etc(root: &Path, etc: &GeneratedEtc) -> SResult<()> {
    let dir = root.join("etc");
    sys::mkdir_p(&dir)?;
    sys::mount(
        "tmpfs /etc",
        Some(Path::new("tmpfs")),
        &dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755"),
    )?;
    etc.populate(&dir)?;
    for p in &etc.host {
        bind_host_path(p, &under(root, p), false)?;
    }
    Ok(())
}

/// Bind a host path (recreating a symlink as a symlink) and remount it nosuid,nodev
/// (and read-only unless `writable`).
fn bind_host_path(src: &Path, target: &Path, writable: bool) -> SResult<()> {
    let md = std::fs::symlink_metadata(src).map_err(|e| {
        fail(
            "bind source",
            Some(src),
            Errno::from_raw(e.raw_os_error().unwrap_or(libc::ENOENT)),
            "declared path does not exist on the host",
        )
    })?;
    if md.file_type().is_symlink() {
        let to = std::fs::read_link(src).map_err(|e| {
            fail(
                "read symlink",
                Some(src),
                Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
                e.to_string(),
            )
        })?;
        if std::fs::read_link(target).is_ok_and(|t| t == to) {
            return Ok(()); // made in a `rootfs` root's skeleton already
        }
        if let Some(parent) = target.parent() {
            sys::mkdir_p(parent)?;
        }
        return std::os::unix::fs::symlink(&to, target).map_err(|e| {
            fail(
                "create symlink",
                Some(target),
                Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
                e.to_string(),
            )
        });
    }
    if md.is_dir() {
        sys::mkdir_p(target)?;
    } else {
        sys::touch(target)?;
    }
    let mut add = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    if !writable {
        add |= MsFlags::MS_RDONLY;
    }
    match nix::mount::mount(
        Some(src),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    ) {
        Ok(()) => sys::remount_bind(target, add),
        Err(Errno::EINVAL) => {
            // The source has mounts below it that the user namespace locked: bind recursively
            // and remount every one of them too.
            sys::mount(
                "bind mount",
                Some(src),
                target,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )?;
            sys::remount_bind(target, add)?;
            for sub in submounts(target) {
                sys::remount_bind(&sub, add)?;
            }
            Ok(())
        }
        Err(e) => Err(fail(
            "bind mount",
            Some(src),
            e,
            format!("binding onto {}", target.display()),
        )),
    }
}

/// Mount points strictly below `dir` in this mount namespace, parents first.
fn submounts(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|p| p.starts_with(dir) && p != dir)
        .collect();
    out.sort();
    out.dedup();
    out
}

pub(crate) fn unescape_mountinfo(s: &str) -> PathBuf {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b.get(i) == Some(&b'\\')
            && b.get(i + 1..i + 4)
                .is_some_and(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)))
        {
            let v = b.get(i + 1..i + 4).map_or(0, |d| {
                d.iter().fold(0u32, |a, c| a * 8 + u32::from(c - b'0'))
            });
            out.push(u8::try_from(v).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(b.get(i).copied().unwrap_or(b'?'));
            i += 1;
        }
    }
    PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(out))
}

/// The device nodes bound from the host into the sandbox's `/dev`.
pub const DEV_NODES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

fn setup_dev(dev: &Path) -> SResult<()> {
    sys::mkdir_p(dev)?;
    sys::mount(
        "tmpfs /dev",
        Some(Path::new("tmpfs")),
        dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("mode=0755"),
    )?;
    for n in DEV_NODES {
        let t = dev.join(n);
        let host = Path::new("/dev").join(n);
        sys::touch(&t)?;
        sys::mount("bind device", Some(&host), &t, None, MsFlags::MS_BIND, None)?;
        sys::remount_bind(&t, MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC)?;
    }
    let pts = dev.join("pts");
    sys::mkdir_p(&pts)?;
    sys::mount(
        "mount /dev/pts",
        Some(Path::new("devpts")),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=620"),
    )?;
    let shm = dev.join("shm");
    sys::mkdir_p(&shm)?;
    sys::mount(
        "tmpfs /dev/shm",
        Some(Path::new("tmpfs")),
        &shm,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777"),
    )?;
    for (link, to) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let l = dev.join(link);
        std::os::unix::fs::symlink(to, &l).map_err(|e| {
            fail(
                "create /dev link",
                Some(&l),
                Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
                e.to_string(),
            )
        })?;
    }
    sys::mount(
        "remount /dev read-only",
        None,
        dev,
        None,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        None,
    )
}

fn loopback_up() -> SResult<()> {
    // SAFETY: plain socket call.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(fail("loopback", None, Errno::last(), "socket"));
    }
    // SAFETY: the kernel just returned this fd.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: valid fd and ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) } < 0 {
        return Err(fail("loopback", None, Errno::last(), "SIOCGIFFLAGS lo"));
    }
    // SAFETY: reading/writing the flags member of the union the kernel filled in.
    unsafe {
        ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    }
    // SAFETY: valid fd and ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) } < 0 {
        return Err(fail("loopback", None, Errno::last(), "SIOCSIFFLAGS lo up"));
    }
    Ok(())
}
