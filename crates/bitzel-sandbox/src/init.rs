//! The sandbox's PID 1, shared by the native and the bubblewrap backends.
//!
//! It forks the task, learns over a close-on-exec pipe whether `execve` worked, reaps every
//! child, enforces the timeout (SIGTERM to everything, SIGKILL after the grace period), and
//! exits as soon as the task's main process exits — which makes the kernel kill whatever the
//! task left behind in the PID namespace. It reports one [`Report`] on its report fd.
//!
//! When the sandbox runs as root ([`InitSpec::map_root`]), PID 1 and every mount belong to
//! the initial user namespace and only the task enters a new one: the task child drops its
//! supplementary groups, `unshare(CLONE_NEWUSER)`s and waits; PID 1 (real root, in the parent
//! user namespace) writes its `uid_map`/`gid_map` (`0 <first id> <count>`); the child then
//! becomes uid/gid 0 of its namespace, i.e. the unprivileged host ids, before anything else.

use std::ffi::CString;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};
use serde::{Deserialize, Serialize};

use crate::error::SetupFailure;
use crate::identity::IdMap;
use crate::spec::{ExitStatus, Limits, SandboxSpec};
use crate::sys;

/// What PID 1 reports to the outside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Report {
    /// Setup (including `exec`) failed.
    Setup(SetupFailure),
    /// The task ran and ended like this.
    Exited(ExitStatus),
}

/// Write one report as a JSON line (best effort: the reader treats silence as a crash).
pub(crate) fn send(fd: RawFd, report: &Report) {
    if let Ok(mut line) = serde_json::to_vec(report) {
        line.push(b'\n');
        let _ = sys::write_all(fd, &line);
    }
}

/// Parse the last report in `bytes`.
pub(crate) fn parse_reports(bytes: &[u8]) -> Option<Report> {
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_slice::<Report>(l).ok())
        .next_back()
}

/// The serializable part of what PID 1 needs (also passed to `__sandbox-helper init`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct InitSpec {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: std::path::PathBuf,
    pub limits: Limits,
    pub timeout: Option<Duration>,
    pub kill_grace: Duration,
    pub new_session: bool,
    /// Run as root: the task's user namespace maps its 0 to these host ids.
    pub map_root: Option<IdMap>,
}

impl InitSpec {
    pub(crate) fn from_spec(
        spec: &SandboxSpec,
        interactive: bool,
        map_root: Option<IdMap>,
    ) -> Self {
        InitSpec {
            argv: spec.argv.clone(),
            env: spec
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            cwd: spec.cwd.clone(),
            limits: spec.limits.clone(),
            timeout: spec.timeout,
            kill_grace: spec.kill_grace,
            new_session: !interactive,
            map_root,
        }
    }
}

/// Everything PID 1 and the task child need, allocated before any fork.
pub(crate) struct InitPlan {
    argv: Vec<CString>,
    envp: Vec<CString>,
    candidates: Vec<CString>,
    argv0: std::path::PathBuf,
    cwd: CString,
    cwd_path: std::path::PathBuf,
    limits: Limits,
    timeout: Option<Duration>,
    grace: Duration,
    new_session: bool,
    map_root: Option<IdMap>,
    seccomp: Vec<libc::sock_filter>,
}

fn cstring(s: &str, what: &str) -> Result<CString, SetupFailure> {
    CString::new(s.as_bytes()).map_err(|_| {
        sys::fail(
            what,
            None,
            Errno::EINVAL,
            format!("{s:?} contains a NUL byte"),
        )
    })
}

impl InitPlan {
    pub(crate) fn new(spec: &InitSpec) -> Result<Self, SetupFailure> {
        let argv = spec
            .argv
            .iter()
            .map(|a| cstring(a, "argv"))
            .collect::<Result<Vec<_>, _>>()?;
        let Some(arg0) = spec.argv.first() else {
            return Err(sys::fail("argv", None, Errno::EINVAL, "empty argv"));
        };
        let envp = spec
            .env
            .iter()
            .map(|(k, v)| cstring(&format!("{k}={v}"), "env"))
            .collect::<Result<Vec<_>, _>>()?;
        let candidates = if arg0.contains('/') {
            vec![cstring(arg0, "argv")?]
        } else {
            let path = spec
                .env
                .iter()
                .find(|(k, _)| k == "PATH")
                .map_or("/usr/local/bin:/usr/bin:/bin", |(_, v)| v.as_str());
            path.split(':')
                .filter(|d| !d.is_empty())
                .map(|d| cstring(&format!("{}/{arg0}", d.trim_end_matches('/')), "PATH"))
                .collect::<Result<Vec<_>, _>>()?
        };
        let cwd = sys::cpath(&spec.cwd)?;
        let seccomp = crate::seccomp::filter()
            .map_err(|e| sys::fail("seccomp", None, Errno::ENOSYS, e.to_string()))?;
        Ok(InitPlan {
            argv,
            envp,
            candidates,
            argv0: std::path::PathBuf::from(arg0),
            cwd,
            cwd_path: spec.cwd.clone(),
            limits: spec.limits.clone(),
            timeout: spec.timeout,
            grace: spec.kill_grace,
            new_session: spec.new_session,
            map_root: spec.map_root,
            seccomp,
        })
    }
}

fn handled_signals() -> SigSet {
    let mut s = SigSet::empty();
    for sig in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
    ] {
        s.add(sig);
    }
    s
}

fn set_rlimit(res: nix::sys::resource::Resource, v: Option<u64>) -> Result<(), Errno> {
    if let Some(v) = v {
        nix::sys::resource::setrlimit(res, v, v)?;
    }
    Ok(())
}

/// One side's ends of the user-namespace handshake pipes (root mode).
#[derive(Clone, Copy)]
struct Handshake {
    /// Written when this side's step is done.
    tell: RawFd,
    /// Read until the other side's step is done (EOF: it failed).
    wait: RawFd,
}

/// Read one byte; `false` on EOF or error.
fn wait_byte(fd: RawFd) -> bool {
    let mut b = [0u8; 1];
    loop {
        // SAFETY: valid buffer of one byte.
        let n = unsafe { libc::read(fd, b.as_mut_ptr().cast(), 1) };
        if n < 0 && Errno::last() == Errno::EINTR {
            continue;
        }
        return n == 1;
    }
}

/// The task child's side of the switch to unprivileged ids (see the module docs).
fn enter_user_namespace(h: Handshake) -> Result<(), SetupFailure> {
    // SAFETY: setgroups with an empty list.
    if unsafe { libc::setgroups(0, std::ptr::null()) } != 0 {
        return Err(sys::fail(
            "setgroups",
            None,
            Errno::last(),
            "dropping host root's supplementary groups",
        ));
    }
    // SAFETY: plain system call with an integer argument.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER) } != 0 {
        return Err(sys::fail(
            "unshare",
            None,
            Errno::last(),
            "creating the task's user namespace",
        ));
    }
    sys::write_all(h.tell, b"1")
        .map_err(|e| sys::fail("id map", None, e, "asking PID 1 to map the task's ids"))?;
    if !wait_byte(h.wait) {
        return Err(sys::fail(
            "id map",
            None,
            Errno::EIO,
            "PID 1 did not map the task's user namespace",
        ));
    }
    let (u, g) = (nix::unistd::Uid::from_raw(0), nix::unistd::Gid::from_raw(0));
    nix::unistd::setresgid(g, g, g).map_err(|e| {
        sys::fail(
            "setresgid",
            None,
            e,
            "becoming gid 0 of the task's user namespace",
        )
    })?;
    nix::unistd::setresuid(u, u, u).map_err(|e| {
        sys::fail(
            "setresuid",
            None,
            e,
            "becoming uid 0 of the task's user namespace",
        )
    })
}

/// The task child: everything between fork and exec. Never returns.
fn exec_task(plan: &InitPlan, err_w: RawFd, userns: Option<Handshake>) -> ! {
    let report = |f: SetupFailure| -> ! {
        if let Ok(b) = serde_json::to_vec(&f) {
            let _ = sys::write_all(err_w, &b);
        }
        sys::exit_now(127)
    };
    // Default dispositions and an empty mask (both survive exec; Rust ignores SIGPIPE).
    for sig in Signal::iterator() {
        if sig != Signal::SIGKILL && sig != Signal::SIGSTOP {
            // SAFETY: resetting to the default disposition is always sound.
            let _ = unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl) };
        }
    }
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&SigSet::empty()),
        None,
    );
    if plan.new_session {
        let _ = nix::unistd::setsid();
    }
    use nix::sys::resource::Resource;
    // Before the switch to unprivileged ids, so root may still raise hard limits.
    for (res, v, name) in [
        (Resource::RLIMIT_NOFILE, plan.limits.nofile, "RLIMIT_NOFILE"),
        (Resource::RLIMIT_NPROC, plan.limits.nproc, "RLIMIT_NPROC"),
        (Resource::RLIMIT_CPU, plan.limits.cpu_secs, "RLIMIT_CPU"),
        (Resource::RLIMIT_CORE, Some(0), "RLIMIT_CORE"),
    ] {
        if let Err(e) = set_rlimit(res, v) {
            report(sys::fail("setrlimit", None, e, name));
        }
    }
    if let Some(h) = userns {
        if let Err(f) = enter_user_namespace(h) {
            report(f);
        }
    }
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    // SAFETY: valid C string.
    if unsafe { libc::chdir(plan.cwd.as_ptr()) } != 0 {
        report(sys::fail(
            "chdir",
            Some(&plan.cwd_path),
            Errno::last(),
            "the working directory",
        ));
    }
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        report(sys::fail(
            "no_new_privs",
            None,
            Errno::last(),
            "PR_SET_NO_NEW_PRIVS",
        ));
    }
    // After any change of ids (which clears it). SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } != 0 {
        report(sys::fail(
            "pdeathsig",
            None,
            Errno::last(),
            "PR_SET_PDEATHSIG",
        ));
    }
    if let Err(f) = drop_capabilities() {
        report(f);
    }
    if let Err(e) = crate::seccomp::install(&plan.seccomp) {
        report(sys::fail(
            "seccomp",
            None,
            Errno::from_raw(e),
            "installing the setuid filter",
        ));
    }
    sys::close_from(3, true);
    let mut argv: Vec<*const libc::c_char> = plan.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = plan.envp.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    let mut last = Errno::ENOENT;
    let mut last_path = plan.argv0.clone();
    for c in &plan.candidates {
        // SAFETY: NUL-terminated arrays of valid C strings.
        unsafe { libc::execve(c.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        let e = Errno::last();
        if e != Errno::ENOENT && e != Errno::ENOTDIR || last == Errno::ENOENT {
            last = e;
            last_path = std::path::PathBuf::from(std::ffi::OsStr::from_bytes(c.as_bytes()));
        }
        if e != Errno::ENOENT && e != Errno::ENOTDIR && e != Errno::EACCES {
            break;
        }
    }
    report(sys::fail(
        "exec",
        Some(&last_path),
        last,
        "starting the task (missing program or interpreter?)",
    ))
}

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

/// `struct __user_cap_data_struct` (two of them for 64 capabilities).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// `_LINUX_CAPABILITY_VERSION_3` for the calling thread.
const CAP_HEADER: CapHeader = CapHeader {
    version: 0x2008_0522,
    pid: 0,
};

/// Drop every capability: the bounding set (so exec as uid 0 grants none), the ambient set
/// and the current sets. Without this, uid 0 in the user namespace could remount the
/// read-only binds writable or unmount the sandbox's mounts. Every step is checked: a
/// capability that cannot be dropped is a setup failure, never a task run with it.
pub(crate) fn drop_capabilities() -> Result<(), SetupFailure> {
    for cap in 0..64 {
        // SAFETY: prctl with integer arguments.
        match unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap, 0, 0, 0) } {
            r if r < 0 => break, // EINVAL: past the kernel's last capability
            0 => {}
            _ => {
                // SAFETY: prctl with integer arguments.
                if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0 {
                    return Err(sys::fail(
                        "drop capabilities",
                        None,
                        Errno::last(),
                        format!("PR_CAPBSET_DROP of capability {cap}"),
                    ));
                }
            }
        }
    }
    // SAFETY: prctl with integer arguments.
    let r = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    // EINVAL: a kernel before 4.3, which has no ambient set.
    if r != 0 && Errno::last() != Errno::EINVAL {
        return Err(sys::fail(
            "drop capabilities",
            None,
            Errno::last(),
            "PR_CAP_AMBIENT_CLEAR_ALL",
        ));
    }
    // SAFETY: valid header and two data structs as capset v3 requires.
    if unsafe {
        libc::syscall(
            libc::SYS_capset,
            &CAP_HEADER as *const CapHeader,
            [CapData::default(); 2].as_ptr(),
        )
    } != 0
    {
        return Err(sys::fail(
            "drop capabilities",
            None,
            Errno::last(),
            "capset to empty sets",
        ));
    }
    Ok(())
}

/// Run as PID 1: start the task, supervise it, report on `report`, exit.
pub(crate) fn run_init(plan: &InitPlan, report: RawFd) -> ! {
    let fatal = |f: SetupFailure| -> ! {
        send(report, &Report::Setup(f));
        sys::exit_now(1)
    };
    let sigs = handled_signals();
    let _ = sigs.thread_block();
    let pipe = |what: &str| sys::pipe().unwrap_or_else(|e| fatal(sys::fail("pipe", None, e, what)));
    let (err_r, err_w) = pipe("exec status pipe");
    // (task -> PID 1 "unshared", PID 1 -> task "mapped")
    let userns = plan
        .map_root
        .map(|_| (pipe("user namespace pipe"), pipe("user namespace pipe")));
    // SAFETY: this process is single-threaded (the helper, or PID 1 of a fresh namespace).
    let task = match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => {
            drop(err_r);
            let h = userns.map(|((go_r, go_w), (mapped_r, mapped_w))| {
                drop(go_r);
                drop(mapped_w);
                let h = Handshake {
                    tell: go_w.as_raw_fd(),
                    wait: mapped_r.as_raw_fd(),
                };
                // Close-on-exec; kept open until then.
                std::mem::forget((go_w, mapped_r));
                h
            });
            exec_task(plan, err_w.as_raw_fd(), h)
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => fatal(sys::fail("fork", None, e, "forking the task")),
    };
    drop(err_w);
    if let (Some(map), Some(((go_r, go_w), (mapped_r, mapped_w)))) = (plan.map_root, userns) {
        drop(go_w);
        drop(mapped_r);
        // EOF instead: the task failed before unsharing and reports why on the exec pipe.
        if wait_byte(go_r.as_raw_fd()) {
            let maps =
                crate::identity::write_id_maps(task.as_raw(), &map.uid_line(), &map.gid_line());
            if let Err(f) = maps {
                let _ = nix::sys::signal::kill(task, Signal::SIGKILL);
                let _ = waitpid(task, None);
                fatal(f);
            }
            let _ = sys::write_all(mapped_w.as_raw_fd(), b"1");
        }
    }
    let msg = sys::read_to_end(err_r.as_raw_fd()).unwrap_or_default();
    drop(err_r);
    if !msg.is_empty() {
        let f = serde_json::from_slice::<SetupFailure>(&msg)
            .unwrap_or_else(|_| sys::fail("exec", None, Errno::EIO, "garbled setup report"));
        let _ = waitpid(task, None);
        fatal(f);
    }
    let status = supervise(plan, task, &sigs);
    send(report, &Report::Exited(status));
    sys::exit_now(0)
}

enum Phase {
    Running,
    Terminating,
    Killing,
}

fn supervise(plan: &InitPlan, task: Pid, sigs: &SigSet) -> ExitStatus {
    let start = Instant::now();
    let mut deadline = plan.timeout.map(|t| start + t);
    let mut phase = Phase::Running;
    let mut timed_out = false;
    loop {
        // Reap everything that is ready.
        loop {
            match waitpid(
                Pid::from_raw(-1),
                Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL),
            ) {
                Ok(WaitStatus::Exited(pid, code)) if pid == task => {
                    return if timed_out {
                        ExitStatus::TimedOut
                    } else {
                        ExitStatus::Code(code)
                    };
                }
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid == task => {
                    return if timed_out {
                        ExitStatus::TimedOut
                    } else {
                        ExitStatus::Signal(sig as i32)
                    };
                }
                Ok(WaitStatus::StillAlive) => break,
                Ok(_) => continue,
                Err(Errno::EINTR) => continue,
                Err(_) => return ExitStatus::Signal(libc::SIGKILL),
            }
        }
        let wait = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let sig = wait_signal(sigs, wait);
        let expired = deadline.is_some_and(|d| Instant::now() >= d);
        let asked = matches!(sig, Some(s) if s != libc::SIGCHLD);
        if expired || asked {
            match phase {
                Phase::Running => {
                    timed_out |= expired;
                    // SAFETY: kill(-1) from PID 1 signals every other process of the namespace.
                    unsafe { libc::kill(-1, libc::SIGTERM) };
                    phase = Phase::Terminating;
                    deadline = Some(Instant::now() + plan.grace);
                }
                Phase::Terminating if expired => {
                    // SAFETY: as above.
                    unsafe { libc::kill(-1, libc::SIGKILL) };
                    phase = Phase::Killing;
                    deadline = None;
                }
                _ => {}
            }
        }
    }
}

/// Wait for one of `sigs` (blocked) for at most `wait`; `None` on timeout.
fn wait_signal(sigs: &SigSet, wait: Option<Duration>) -> Option<i32> {
    let ts = wait.map(|w| libc::timespec {
        tv_sec: libc::time_t::try_from(w.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(w.subsec_nanos() as i32),
    });
    let set: &libc::sigset_t = sigs.as_ref();
    // SAFETY: valid set and optional timespec pointers.
    let r = unsafe {
        libc::sigtimedwait(
            set,
            std::ptr::null_mut(),
            ts.as_ref().map_or(std::ptr::null(), |t| t as *const _),
        )
    };
    if r < 0 {
        None
    } else {
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_line(key: &str) -> String {
        std::fs::read_to_string("/proc/thread-self/status")
            .unwrap()
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap()
            .to_owned()
    }

    /// Capabilities are per thread: each check runs in a thread of its own.
    #[test]
    fn capability_drop_failures_are_setup_failures() {
        std::thread::spawn(|| {
            assert_ne!(
                status_line("CapBnd:"),
                "CapBnd:\t0000000000000000",
                "the bounding set is already empty: nothing to show here"
            );
            // Without CAP_SETPCAP in the effective set, the bounding set cannot be reduced.
            let mut data = [CapData::default(); 2];
            // SAFETY: valid header and two data structs (capget / capset v3).
            unsafe {
                assert_eq!(
                    libc::syscall(
                        libc::SYS_capget,
                        &CAP_HEADER as *const CapHeader,
                        data.as_mut_ptr()
                    ),
                    0
                );
                for d in &mut data {
                    d.effective = 0;
                }
                assert_eq!(
                    libc::syscall(
                        libc::SYS_capset,
                        &CAP_HEADER as *const CapHeader,
                        data.as_ptr()
                    ),
                    0
                );
            }
            let f = drop_capabilities().unwrap_err();
            assert_eq!(f.step, "drop capabilities");
            assert_eq!(f.errno, libc::EPERM, "{f:?}");
            assert!(f.message.contains("PR_CAPBSET_DROP"), "{f:?}");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn capabilities_dropped_when_permitted() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this check needs root (cargo test runs as root in CI)"
        );
        std::thread::spawn(|| {
            drop_capabilities().unwrap();
            for key in ["CapEff:", "CapPrm:", "CapBnd:", "CapAmb:"] {
                assert_eq!(status_line(key), format!("{key}\t0000000000000000"));
            }
        })
        .join()
        .unwrap();
    }
}
