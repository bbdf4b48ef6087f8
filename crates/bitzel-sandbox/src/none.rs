//! The `none` backend: no isolation at all. Only used when the user names it; every run logs
//! a warning and [`Backend::hermetic`] is `false` so the action keys record it.
//!
//! Without a mount namespace the spec's sandbox paths cannot be created, so they are rewritten
//! ([`PathMap`]): the mounts are realised in a per-task host root (binds as symlinks to their
//! sources, tmpfs as empty directories; overlays are refused — the caller flattens them), and
//! argv, environment values and the working directory are moved below it. `TMPDIR` is a
//! private directory in that root. The environment is otherwise exactly the spec's, the
//! timeout kills the task's process group, and the limits (rlimits, cgroup) apply. Nothing is
//! read-only: the task can write wherever the invoking user can.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::cgroup::{self, TaskCgroup};
use crate::error::SandboxError;
use crate::remap::PathMap;
use crate::spec::{ExitStatus, Outcome, SandboxSpec, Stdio};
use crate::Backend;

/// The unsandboxed backend.
#[derive(Debug, Clone, Default)]
pub struct NoneBackend;

/// A spec moved onto the host: its mount tree realised in a host root, its argv, environment
/// and working directory rewritten. Removes the root on drop when it chose the root itself.
pub(crate) struct Remapped {
    /// The rewritten spec (its mounts are kept for reference; they are realised already).
    pub spec: SandboxSpec,
    /// How sandbox paths map to host paths.
    pub map: PathMap,
    owns_root: bool,
}

impl Remapped {
    /// Realise `spec`'s mounts in its host root (or a fresh one under the temp dir) and rewrite
    /// its paths.
    pub fn prepare(spec: &SandboxSpec) -> Result<Remapped, SandboxError> {
        crate::validate(spec)?;
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let (root, owns_root) = match &spec.host_root {
            Some(r) => (r.clone(), false),
            // Resolved, so that no symlink (macOS's `/var` → `/private/var`) hides the real
            // path from a sandbox-exec profile.
            None => (
                std::fs::canonicalize(std::env::temp_dir())
                    .unwrap_or_else(|_| std::env::temp_dir())
                    .join(format!(
                        "bitzel-task-{}-{}",
                        std::process::id(),
                        SEQ.fetch_add(1, Ordering::Relaxed)
                    )),
                true,
            ),
        };
        let map = PathMap::new(&spec.mounts, &root)?;
        let mut remapped = Remapped {
            spec: spec.clone(),
            map,
            owns_root: false,
        };
        remapped.map.realise(&spec.mounts).inspect_err(|_| {
            if owns_root && root.exists() {
                let _ = std::fs::remove_dir_all(&root);
            }
        })?;
        remapped.owns_root = owns_root;
        let m = &remapped.map;
        let s = &mut remapped.spec;
        s.argv = spec.argv.iter().map(|a| m.rewrite(a)).collect();
        for v in s.env.values_mut() {
            *v = m.rewrite(v);
        }
        s.env
            .insert("TMPDIR".into(), m.tmp_dir().to_string_lossy().into_owned());
        s.cwd = m.host_path(&spec.cwd);
        Ok(remapped)
    }
}

impl Drop for Remapped {
    fn drop(&mut self) {
        if self.owns_root {
            if let Err(e) = std::fs::remove_dir_all(self.map.root()) {
                tracing::warn!(path = %self.map.root().display(), error = %e, "could not remove the task's host root");
            }
        }
    }
}

impl NoneBackend {
    fn run_with(&self, spec: &SandboxSpec, interactive: bool) -> Result<Outcome, SandboxError> {
        let r = Remapped::prepare(spec)?;
        tracing::warn!(argv = ?spec.argv, root = %r.map.root().display(), "running WITHOUT a sandbox (--sandbox none): the task sees and can change the whole host");
        run_on_host(&r.spec, interactive)
    }
}

/// Run `spec` as a plain child process (cleared environment, its own process group, limits),
/// its paths already host paths.
pub(crate) fn run_on_host(spec: &SandboxSpec, interactive: bool) -> Result<Outcome, SandboxError> {
    let start = Instant::now();
    let cwd = &spec.cwd;
    let mut cmd = std::process::Command::new(spec.argv.first().map_or("", String::as_str));
    cmd.args(spec.argv.iter().skip(1))
        .env_clear()
        .envs(&spec.env)
        .current_dir(cwd);
    let (i, o, e) = if interactive {
        (Stdio::Inherit, Stdio::Inherit, Stdio::Inherit)
    } else {
        (spec.stdin.clone(), spec.stdout.clone(), spec.stderr.clone())
    };
    cmd.stdin(crate::open_stdio(&i, true)?);
    cmd.stdout(crate::open_stdio(&o, false)?);
    cmd.stderr(crate::open_stdio(&e, false)?);
    if !interactive {
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    }
    let cg = TaskCgroup::for_limits(&spec.limits, 0)?;
    let cg_fd = cg.as_ref().map(TaskCgroup::procs_fd);
    let l = &spec.limits;
    let rlimits = [
        (libc::RLIMIT_NOFILE, l.nofile),
        (libc::RLIMIT_NPROC, l.nproc),
        (libc::RLIMIT_CPU, l.cpu_secs),
    ];
    // SAFETY: only async-signal-safe calls (write, setrlimit) between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            if let Some(fd) = cg_fd {
                cgroup::enter(fd)?;
            }
            for (res, v) in rlimits {
                if let Some(v) = v {
                    let r = libc::rlimit {
                        rlim_cur: v,
                        rlim_max: v,
                    };
                    if libc::setrlimit(res, &r) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
            }
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(err) => {
            return Err(SandboxError::Setup {
                step: "exec".into(),
                path: spec.argv.first().map(PathBuf::from),
                errno: err.raw_os_error().unwrap_or(0),
                message: format!(
                    "starting the task in {}{}",
                    cwd.display(),
                    cgroup::spawn_context(cg.as_ref())
                ),
            })
        }
    };
    let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
    let result = supervise(spec, &mut child, pid, start);
    cgroup::conclude(cg, result, start)
}

/// Wait for the task, enforcing the timeout on its process group.
fn supervise(
    spec: &SandboxSpec,
    child: &mut std::process::Child,
    pid: i32,
    start: Instant,
) -> Result<ExitStatus, SandboxError> {
    let mut term_sent: Option<Instant> = None;
    loop {
        match child.try_wait() {
            Ok(Some(st)) => {
                use std::os::unix::process::ExitStatusExt;
                let status = if term_sent.is_some() {
                    ExitStatus::TimedOut
                } else if let Some(c) = st.code() {
                    ExitStatus::Code(c)
                } else {
                    ExitStatus::Signal(st.signal().unwrap_or(libc::SIGKILL))
                };
                // Whatever the task left in its process group goes too.
                // SAFETY: signalling a process group we created.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
                return Ok(status);
            }
            Ok(None) => {}
            Err(err) => return Err(SandboxError::io("waiting for the task", None, err)),
        }
        let now = Instant::now();
        match (spec.timeout, term_sent) {
            (Some(t), None) if now.duration_since(start) >= t => {
                // SAFETY: signalling the process group we created.
                unsafe { libc::kill(-pid, libc::SIGTERM) };
                term_sent = Some(now);
            }
            (_, Some(at)) if now.duration_since(at) >= spec.kill_grace => {
                // SAFETY: as above.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

impl Backend for NoneBackend {
    fn name(&self) -> &'static str {
        "none"
    }
    fn hermetic(&self) -> bool {
        false
    }
    fn remaps_paths(&self) -> bool {
        true
    }
    fn run(&self, spec: &SandboxSpec) -> Result<Outcome, SandboxError> {
        self.run_with(spec, false)
    }
    fn run_interactive(&self, spec: &SandboxSpec) -> Result<Outcome, SandboxError> {
        self.run_with(spec, true)
    }
}
