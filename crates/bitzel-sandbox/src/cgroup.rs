//! cgroup v2 limits for one sandboxed run: `memory.max`, `pids.max`, and the OOM kill
//! reported as such.
//!
//! Where the limits live (see [`plan`]), best first: the process's own cgroup when it already
//! enables `memory` or `pids` for children (the root cgroup); its own cgroup **adopted** when it
//! is delegated (e.g. `systemd-run --user --scope -p Delegate=yes bitzel …`) — cgroup v2 allows
//! processes only in leaves once controllers are enabled for children, so the process first
//! moves itself into the leaf `bitzel.main`, then enables the controllers in its old cgroup;
//! else the nearest ancestor whose `cgroup.subtree_control` enables them and that the invoking
//! user may write. That cgroup becomes the **base**, and each run gets a fresh child
//! `bitzel-task-<pid>-<n>` there. An adoption that fails (other processes share the cgroup)
//! moves the process back and falls through to the next choice.
//! Anything else (cgroup v1 hosts, hybrid hosts whose controllers live on v1, undelegated
//! cgroups) makes the limits unenforced, with one warning per process naming why.
//!
//! Entering: the process that becomes the sandbox (the native helper, `bwrap`, or the task
//! for `none`) writes `0` to the task cgroup's `cgroup.procs` between fork and exec, through
//! an fd opened beforehand, so nothing it starts escapes the limits. `memory.oom.group` is
//! set, so an OOM kill takes the whole run down at once, and `memory.swap.max` is `0`, so an
//! overrun ends in an OOM kill rather than in swapping. `pids.max` is the requested number
//! plus [`PIDS_OVERHEAD`] for the sandbox's own processes.
//!
//! Ending: `memory.events` (`oom_kill`), `pids.events` (`max`) and `memory.peak` become the
//! run's [`ResourceUsage`]; a run that failed while its cgroup saw an OOM kill is reported as
//! [`ExitStatus::OomKilled`]. The cgroup is then emptied (`cgroup.kill`) and removed.

use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::SandboxError;
use crate::spec::{ExitStatus, Limits, Outcome};

/// Processes of a namespaced sandbox itself counted by `pids.max` besides the task's own (the
/// helper or `bwrap`, and the sandbox's PID 1), added to the requested limit by the native
/// and bubblewrap backends (the `none` backend adds nothing: the task is the cgroup's first
/// process).
pub const PIDS_OVERHEAD: u64 = 2;

/// What a run's cgroup observed. All zero / `None` when the run had no cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceUsage {
    /// The `memory.max` that applied, if any.
    pub memory_max: Option<u64>,
    /// The task's process limit that applied, if any (the cgroup's `pids.max` also counts the
    /// sandbox's own processes: [`PIDS_OVERHEAD`]).
    pub pids_max: Option<u64>,
    /// Peak memory use of the run (`memory.peak`, Linux >= 5.19).
    pub memory_peak: Option<u64>,
    /// Processes the OOM killer killed (`memory.events` `oom_kill`).
    pub oom_kills: u64,
    /// Forks refused because `pids.max` was reached (`pids.events` `max`).
    pub pids_max_hits: u64,
}

/// The controllers bitzel uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Controllers {
    pub memory: bool,
    pub pids: bool,
}

impl Controllers {
    fn parse(list: &str) -> Self {
        let has = |c: &str| list.split_whitespace().any(|w| w == c);
        Controllers {
            memory: has("memory"),
            pids: has("pids"),
        }
    }
    fn any(self) -> bool {
        self.memory || self.pids
    }
    fn names(self) -> String {
        match (self.memory, self.pids) {
            (true, true) => "memory, pids".into(),
            (true, false) => "memory".into(),
            (false, true) => "pids".into(),
            (false, false) => "none".into(),
        }
    }
    fn enable_line(self) -> String {
        let mut v = Vec::new();
        if self.memory {
            v.push("+memory");
        }
        if self.pids {
            v.push("+pids");
        }
        v.join(" ")
    }
}

/// Where the process sits in the cgroup v2 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hierarchy {
    /// The cgroup2 mount point.
    pub mount: PathBuf,
    /// The process's own cgroup directory (under `mount`).
    pub own: PathBuf,
}

/// Find the cgroup2 mount and the process's cgroup from `/proc/self/mountinfo` and
/// `/proc/self/cgroup`. `Err` says why there is none.
pub(crate) fn locate(mountinfo: &str, proc_cgroup: &str) -> Result<Hierarchy, String> {
    let Some(rel) = proc_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|r| r.trim_end_matches(" (deleted)"))
    else {
        return Err("cgroup v1 only: /proc/self/cgroup has no cgroup v2 (`0::`) entry".into());
    };
    let mut mounts = mountinfo.lines().filter_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        if post.split(' ').next()? != "cgroup2" {
            return None;
        }
        let mut f = pre.split(' ');
        let root = crate::native::unescape_mountinfo(f.nth(3)?);
        let point = crate::native::unescape_mountinfo(f.next()?);
        Some((root, point))
    });
    let Some((root, point)) = mounts.next() else {
        return Err("no cgroup2 filesystem is mounted".into());
    };
    let rel = Path::new(rel);
    let inside = rel.strip_prefix(&root).map_err(|_| {
        format!(
            "this process's cgroup {} lies outside the cgroup2 mount at {} (whose root is {})",
            rel.display(),
            point.display(),
            root.display()
        )
    })?;
    Ok(Hierarchy {
        own: point.join(inside),
        mount: point,
    })
}

/// How task cgroups will be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Create task cgroups under `base`, whose subtree already has `controllers`.
    Use {
        base: PathBuf,
        controllers: Controllers,
    },
    /// Move this process into `own/bitzel.main`, enable `controllers` in `own`, use `own`.
    Adopt {
        own: PathBuf,
        controllers: Controllers,
    },
}

fn writable(p: &Path) -> bool {
    nix::unistd::access(p, nix::unistd::AccessFlags::W_OK).is_ok()
}

fn read_controllers(p: &Path) -> Option<Controllers> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| Controllers::parse(&s))
}

/// The ways to place task cgroups in `h`, best first (no side effects): the process's own
/// cgroup when it already enables the controllers for children (the root cgroup, say); then
/// adopting its own cgroup when that is delegated (a `systemd-run --user --scope -p
/// Delegate=yes` scope: explicitly ours, so preferred over a shared ancestor); then the
/// nearest ancestor that enables them for a subtree this user may write. `Err` says why
/// there is none and what to do.
pub(crate) fn plan(h: &Hierarchy) -> Result<Vec<Plan>, String> {
    let available = read_controllers(&h.mount.join("cgroup.controllers")).unwrap_or_default();
    if !available.any() {
        return Err(format!(
            "the cgroup v2 hierarchy at {} has neither the memory nor the pids controller (a hybrid host whose controllers are on cgroup v1; boot with systemd.unified_cgroup_hierarchy=1 for limits)",
            h.mount.display()
        ));
    }
    let usable = |d: &Path| {
        read_controllers(&d.join("cgroup.subtree_control"))
            .filter(|c| c.any() && writable(d) && writable(&d.join("cgroup.procs")))
    };
    let mut plans = Vec::new();
    if let Some(controllers) = usable(&h.own) {
        plans.push(Plan::Use {
            base: h.own.clone(),
            controllers,
        });
    }
    let own_ctl = read_controllers(&h.own.join("cgroup.controllers")).unwrap_or_default();
    if plans.is_empty()
        && own_ctl.any()
        && writable(&h.own)
        && writable(&h.own.join("cgroup.subtree_control"))
        && writable(&h.own.join("cgroup.procs"))
    {
        plans.push(Plan::Adopt {
            own: h.own.clone(),
            controllers: own_ctl,
        });
    }
    let mut dir = h.own.parent().filter(|p| p.starts_with(&h.mount));
    while let Some(d) = dir {
        if let Some(controllers) = usable(d) {
            plans.push(Plan::Use {
                base: d.to_path_buf(),
                controllers,
            });
            break;
        }
        dir = d.parent().filter(|p| p.starts_with(&h.mount));
    }
    if plans.is_empty() {
        return Err(format!(
            "this process's cgroup {} (controllers available: {}) is not delegated to uid {}, and no cgroup above it has memory or pids enabled for a subtree this user may write; run bitzel in a delegated cgroup, e.g. `systemd-run --user --scope -p Delegate=yes bitzel …`",
            h.own.display(),
            own_ctl.names(),
            nix::unistd::getuid()
        ));
    }
    Ok(plans)
}

/// A usable base for task cgroups.
#[derive(Debug, Clone)]
pub(crate) struct Delegation {
    base: PathBuf,
    controllers: Controllers,
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> String {
    format!("{what} {}: {e}", path.display())
}

/// Carry out the first of `plans` that works (an adoption can fail, e.g. when other
/// processes share the cgroup); `Err` gives every reason.
pub(crate) fn establish_first(plans: Vec<Plan>) -> Result<Delegation, String> {
    let mut why = Vec::new();
    for p in plans {
        match establish(p) {
            Ok(d) => return Ok(d),
            Err(e) => {
                tracing::debug!(reason = %e, "cgroup placement not possible; trying the next");
                why.push(e);
            }
        }
    }
    Err(why.join("; "))
}

/// Carry out `plan` (moving this process for [`Plan::Adopt`]).
pub(crate) fn establish(plan: Plan) -> Result<Delegation, String> {
    match plan {
        Plan::Use { base, controllers } => Ok(Delegation { base, controllers }),
        Plan::Adopt { own, controllers } => {
            let leaf = own.join("bitzel.main");
            match std::fs::create_dir(&leaf) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err("creating the cgroup", &leaf, e)),
            }
            let pid = std::process::id().to_string();
            std::fs::write(leaf.join("cgroup.procs"), &pid)
                .map_err(|e| io_err("moving bitzel into", &leaf, e))?;
            let ctl = own.join("cgroup.subtree_control");
            if let Err(e) = std::fs::write(&ctl, controllers.enable_line()) {
                let _ = std::fs::write(own.join("cgroup.procs"), &pid);
                let why = if e.raw_os_error() == Some(libc::EBUSY) {
                    format!(
                        "other processes share the cgroup {} (cgroup v2 allows controllers for children only once a cgroup holds no processes); start bitzel in a cgroup of its own, e.g. `systemd-run --user --scope -p Delegate=yes bitzel …`",
                        own.display()
                    )
                } else {
                    io_err("enabling controllers in", &ctl, e)
                };
                return Err(why);
            }
            tracing::debug!(cgroup = %own.display(), "adopted the delegated cgroup for task limits");
            Ok(Delegation {
                base: own,
                controllers,
            })
        }
    }
}

fn hierarchy() -> Result<Hierarchy, String> {
    let mi = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    let cg = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    locate(&mi, &cg)
}

/// The process-wide delegation, set up on first use.
/// Set up on first use; `DELEGATION.get()` tells whether that happened (so `describe` never
/// adopts).
static DELEGATION: OnceLock<Result<Delegation, String>> = OnceLock::new();

fn delegation() -> &'static Result<Delegation, String> {
    DELEGATION.get_or_init(|| hierarchy().and_then(|h| plan(&h)).and_then(establish_first))
}

/// One line for `bitzel doctor`: whether memory/pids limits can be enforced, where, and if
/// not, why. Has no side effects (an adoption is only described).
pub fn describe() -> String {
    if let Some(d) = DELEGATION.get() {
        return match d {
            Ok(d) => format!(
                "cgroup v2 limits ({}) enforced under {}",
                d.controllers.names(),
                d.base.display()
            ),
            Err(why) => format!("memory/pids limits are not enforced: {why}"),
        };
    }
    let plans = match hierarchy().and_then(|h| plan(&h)) {
        Ok(p) => p,
        Err(why) => return format!("memory/pids limits are not enforced: {why}"),
    };
    let said: Vec<String> = plans
        .iter()
        .map(|p| match p {
            Plan::Use { base, controllers } => format!(
                "cgroup v2 limits ({}) available: task cgroups go under {}",
                controllers.names(),
                base.display()
            ),
            Plan::Adopt { own, controllers } => format!(
                "cgroup v2 limits ({}) available: bitzel will move itself into {}/bitzel.main and put task cgroups beside it",
                controllers.names(),
                own.display()
            ),
        })
        .collect();
    said.join(", else ")
}

fn warn_once(key: &'static str, msg: String) {
    static WARNED: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut w = match WARNED.lock() {
        Ok(w) => w,
        Err(p) => p.into_inner(),
    };
    if !w.contains(&key) {
        w.push(key);
        tracing::warn!("{msg}");
    }
}

/// The cgroup of one run.
#[derive(Debug)]
pub(crate) struct TaskCgroup {
    dir: PathBuf,
    procs: OwnedFd,
    memory_max: Option<u64>,
    pids_max: Option<u64>,
    done: bool,
}

fn write_file(dir: &Path, file: &str, value: &str) -> Result<(), SandboxError> {
    let p = dir.join(file);
    std::fs::write(&p, value).map_err(|e| {
        SandboxError::io(
            format!("writing {value:?} to the task's cgroup file"),
            Some(p),
            e,
        )
    })
}

impl TaskCgroup {
    /// A cgroup enforcing `limits`' memory and pids parts, or `None` when the limits ask for
    /// neither or the host cannot enforce them (warned once per process). `pids_overhead`: the
    /// backend's own processes in the cgroup ([`PIDS_OVERHEAD`] or 0).
    pub(crate) fn for_limits(
        limits: &Limits,
        pids_overhead: u64,
    ) -> Result<Option<TaskCgroup>, SandboxError> {
        if limits.memory_bytes.is_none() && limits.pids.is_none() {
            return Ok(None);
        }
        let d = match delegation() {
            Ok(d) => d,
            Err(why) => {
                warn_once(
                    "unavailable",
                    format!("memory/pids limits are not enforced: {why}"),
                );
                return Ok(None);
            }
        };
        let memory_max = limits.memory_bytes.filter(|_| d.controllers.memory);
        let pids_max = limits.pids.filter(|_| d.controllers.pids);
        if limits.memory_bytes.is_some() && memory_max.is_none() {
            warn_once(
                "memory",
                format!(
                    "memory limits are not enforced: the memory controller is not enabled for {}",
                    d.base.display()
                ),
            );
        }
        if limits.pids.is_some() && pids_max.is_none() {
            warn_once(
                "pids",
                format!(
                    "pids limits are not enforced: the pids controller is not enabled for {}",
                    d.base.display()
                ),
            );
        }
        if memory_max.is_none() && pids_max.is_none() {
            return Ok(None);
        }
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let dir = loop {
            let n = SEQ.fetch_add(1, Ordering::Relaxed);
            let dir = d
                .base
                .join(format!("bitzel-task-{}-{n}", std::process::id()));
            match std::fs::create_dir(&dir) {
                Ok(()) => break dir,
                // A leftover of an earlier process with the same pid: take the next number.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(SandboxError::io("creating the task's cgroup", Some(dir), e)),
            }
        };
        // From here on, Drop removes the directory whatever fails.
        let procs_path = dir.join("cgroup.procs");
        let procs = match OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&procs_path)
        {
            Ok(f) => OwnedFd::from(f),
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                return Err(SandboxError::io(
                    "opening the task cgroup's cgroup.procs",
                    Some(procs_path),
                    e,
                ));
            }
        };
        let cg = TaskCgroup {
            dir,
            procs,
            memory_max,
            pids_max,
            done: false,
        };
        if let Some(m) = memory_max {
            write_file(&cg.dir, "memory.max", &m.to_string())?;
            // Optional files: absent without swap accounting or on old kernels.
            let _ = std::fs::write(cg.dir.join("memory.swap.max"), "0");
            let _ = std::fs::write(cg.dir.join("memory.oom.group"), "1");
        }
        if let Some(p) = pids_max {
            write_file(
                &cg.dir,
                "pids.max",
                &p.saturating_add(pids_overhead).to_string(),
            )?;
        }
        Ok(Some(cg))
    }

    /// The fd the child writes `0` to (see [`enter`]).
    pub(crate) fn procs_fd(&self) -> RawFd {
        self.procs.as_raw_fd()
    }

    /// The cgroup's directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn usage(&self) -> ResourceUsage {
        let read = |f: &str| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        ResourceUsage {
            memory_max: self.memory_max,
            pids_max: self.pids_max,
            memory_peak: read("memory.peak").trim().parse().ok(),
            oom_kills: event(&read("memory.events"), "oom_kill"),
            pids_max_hits: event(&read("pids.events"), "max"),
        }
    }

    /// Read what the run used, kill anything left, remove the cgroup.
    pub(crate) fn finish(mut self) -> ResourceUsage {
        let u = self.usage();
        self.remove();
        u
    }

    fn remove(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let _ = std::fs::write(self.dir.join("cgroup.kill"), "1");
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match std::fs::remove_dir(&self.dir) {
                Ok(()) => return,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
                Err(e) if Instant::now() < deadline => {
                    tracing::trace!(cgroup = %self.dir.display(), error = %e, "cgroup still busy");
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => {
                    tracing::warn!(cgroup = %self.dir.display(), error = %e, "could not remove a task cgroup; remove it by hand once its processes are gone");
                    return;
                }
            }
        }
    }
}

impl Drop for TaskCgroup {
    fn drop(&mut self) {
        self.remove();
    }
}

/// `key N` from a flat-keyed cgroup file.
fn event(text: &str, key: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Between fork and exec: move the calling process into the cgroup whose `cgroup.procs` is
/// open as `fd`. Async-signal-safe.
pub(crate) fn enter(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: writing a 1-byte static buffer to an fd the parent opened for us.
    if unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) } == 1 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Turn a backend's result into the run's [`Outcome`], with what the cgroup saw. A run that
/// did not succeed while the cgroup recorded an OOM kill is [`ExitStatus::OomKilled`], also
/// when the kill took the helper with it (no report) or hit during setup.
pub(crate) fn conclude(
    cg: Option<TaskCgroup>,
    result: Result<ExitStatus, SandboxError>,
    start: Instant,
) -> Result<Outcome, SandboxError> {
    let resources = cg.map(TaskCgroup::finish).unwrap_or_default();
    let oom = resources.oom_kills > 0;
    let status = match result {
        Ok(s) if oom && !s.success() => ExitStatus::OomKilled,
        Ok(s) => {
            if oom {
                tracing::warn!(
                    oom_kills = resources.oom_kills,
                    "the OOM killer killed processes of a task that still succeeded"
                );
            }
            s
        }
        Err(_) if oom => ExitStatus::OomKilled,
        Err(e) => return Err(e),
    };
    Ok(Outcome {
        status,
        duration: start.elapsed(),
        resources,
    })
}

/// The spawn error of a child that had to enter `cg` first, naming the cgroup.
pub(crate) fn spawn_context(cg: Option<&TaskCgroup>) -> String {
    cg.map(|c| format!(" (entering the cgroup {})", c.dir().display()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO_V2: &str = "24 30 0:22 / /proc rw,nosuid - proc proc rw\n\
        30 1 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
    const MOUNTINFO_HYBRID: &str = "31 25 0:27 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755\n\
        32 31 0:28 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n\
        35 31 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n";

    #[test]
    fn locates_pure_v2() {
        let h = locate(
            MOUNTINFO_V2,
            "0::/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope\n",
        )
        .unwrap();
        assert_eq!(h.mount, PathBuf::from("/sys/fs/cgroup"));
        assert_eq!(
            h.own,
            PathBuf::from(
                "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope"
            )
        );
        let root = locate(MOUNTINFO_V2, "0::/\n").unwrap();
        assert_eq!(root.own, PathBuf::from("/sys/fs/cgroup"));
    }

    #[test]
    fn locates_hybrid_and_rejects_v1_only() {
        let h = locate(MOUNTINFO_HYBRID, "4:memory:/a\n0::/\n").unwrap();
        assert_eq!(h.mount, PathBuf::from("/sys/fs/cgroup/unified"));
        let e = locate(MOUNTINFO_HYBRID, "4:memory:/a\n1:pids:/\n").unwrap_err();
        assert!(e.contains("cgroup v1 only"), "{e}");
        let e = locate("24 30 0:22 / /proc rw - proc proc rw\n", "0::/\n").unwrap_err();
        assert!(e.contains("no cgroup2"), "{e}");
    }

    #[test]
    fn locates_under_a_namespaced_root() {
        let mi = "30 1 0:26 /ci/job /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let h = locate(mi, "0::/ci/job/step\n").unwrap();
        assert_eq!(h.own, PathBuf::from("/sys/fs/cgroup/step"));
        let e = locate(mi, "0::/other\n").unwrap_err();
        assert!(e.contains("outside the cgroup2 mount"), "{e}");
    }

    #[test]
    fn reads_flat_keyed_events() {
        let ev = "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 1\n";
        assert_eq!(event(ev, "oom_kill"), 1);
        assert_eq!(event(ev, "max"), 12);
        assert_eq!(event(ev, "absent"), 0);
        assert_eq!(event("", "max"), 0);
    }

    #[test]
    fn controller_lists() {
        let c = Controllers::parse("cpuset cpu io memory hugetlb pids rdma misc\n");
        assert_eq!(
            c,
            Controllers {
                memory: true,
                pids: true
            }
        );
        assert_eq!(c.enable_line(), "+memory +pids");
        assert!(!Controllers::parse("cpu io\n").any());
        assert_eq!(Controllers::parse("pids").enable_line(), "+pids");
    }

    /// A fake cgroupfs: directories with the interface files as plain files.
    fn fake_tree(root: &Path, cgroups: &[(&str, &str, &str)]) {
        for (rel, controllers, subtree) in cgroups {
            let d = root.join(rel);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("cgroup.controllers"), controllers).unwrap();
            std::fs::write(d.join("cgroup.subtree_control"), subtree).unwrap();
            std::fs::write(d.join("cgroup.procs"), "").unwrap();
        }
    }

    const BOTH: Controllers = Controllers {
        memory: true,
        pids: true,
    };

    #[test]
    fn plans_adoption_first_then_the_nearest_enabled_ancestor() {
        let t = tempfile::tempdir().unwrap();
        let m = t.path();
        fake_tree(
            m,
            &[
                ("", "cpu memory pids", "memory pids"),
                ("user", "memory pids", "memory pids"),
                ("user/app", "memory pids", ""),
            ],
        );
        let h = Hierarchy {
            mount: m.to_path_buf(),
            own: m.join("user/app"),
        };
        // The owner of the tempdir may write everything.
        assert_eq!(
            plan(&h).unwrap(),
            [
                Plan::Adopt {
                    own: m.join("user/app"),
                    controllers: BOTH
                },
                Plan::Use {
                    base: m.join("user"),
                    controllers: BOTH
                }
            ]
        );
    }

    #[test]
    fn plans_its_own_cgroup_when_it_already_enables_the_controllers() {
        let t = tempfile::tempdir().unwrap();
        let m = t.path();
        fake_tree(m, &[("", "memory pids", "memory pids")]);
        let h = Hierarchy {
            mount: m.to_path_buf(),
            own: m.to_path_buf(),
        };
        assert_eq!(
            plan(&h).unwrap(),
            [Plan::Use {
                base: m.to_path_buf(),
                controllers: BOTH
            }]
        );
    }

    #[test]
    fn plans_adoption_of_a_delegated_leaf() {
        let t = tempfile::tempdir().unwrap();
        let m = t.path();
        fake_tree(m, &[("", "memory pids", ""), ("scope", "pids", "")]);
        let h = Hierarchy {
            mount: m.to_path_buf(),
            own: m.join("scope"),
        };
        assert_eq!(
            plan(&h).unwrap(),
            [Plan::Adopt {
                own: m.join("scope"),
                controllers: Controllers {
                    memory: false,
                    pids: true
                }
            }]
        );
    }

    #[test]
    fn a_failed_adoption_falls_back_and_all_failures_are_told() {
        let t = tempfile::tempdir().unwrap();
        let m = t.path();
        fake_tree(m, &[("", "memory pids", "memory pids")]);
        let gone = Plan::Adopt {
            own: m.join("no-such-cgroup"),
            controllers: BOTH,
        };
        let d = establish_first(vec![
            gone.clone(),
            Plan::Use {
                base: m.to_path_buf(),
                controllers: BOTH,
            },
        ])
        .unwrap();
        assert_eq!(d.base, m);
        let e = establish_first(vec![gone]).unwrap_err();
        assert!(e.contains("no-such-cgroup/bitzel.main"), "{e}");
    }

    #[test]
    fn hybrid_hierarchy_without_controllers_is_explained() {
        let t = tempfile::tempdir().unwrap();
        fake_tree(t.path(), &[("", "", "")]);
        let h = Hierarchy {
            mount: t.path().to_path_buf(),
            own: t.path().to_path_buf(),
        };
        let e = plan(&h).unwrap_err();
        assert!(
            e.contains("neither the memory nor the pids controller"),
            "{e}"
        );
        assert!(e.contains("systemd.unified_cgroup_hierarchy=1"), "{e}");
    }

    #[test]
    fn adoption_moves_the_process_and_enables_controllers() {
        let t = tempfile::tempdir().unwrap();
        let m = t.path();
        fake_tree(m, &[("", "memory pids", ""), ("scope", "memory pids", "")]);
        let d = establish(Plan::Adopt {
            own: m.join("scope"),
            controllers: BOTH,
        })
        .unwrap();
        assert_eq!(d.base, m.join("scope"));
        assert_eq!(
            std::fs::read_to_string(m.join("scope/bitzel.main/cgroup.procs")).unwrap(),
            std::process::id().to_string()
        );
        assert_eq!(
            std::fs::read_to_string(m.join("scope/cgroup.subtree_control")).unwrap(),
            "+memory +pids"
        );
    }
}
