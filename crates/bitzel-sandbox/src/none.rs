//! The `none` backend: no isolation at all. Only used when the user names it; every run logs
//! a warning and [`Backend::hermetic`] is `false` so the action keys record it.
//!
//! Without a mount namespace the spec's sandbox paths cannot be created: the task runs on the
//! host filesystem, with `cwd` translated through the spec's bind mounts and overlay upper
//! directories when it lies below one of them. The environment is still cleared, the
//! timeout still kills the task's process group, and the limits (rlimits, cgroup) apply.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cgroup::{self, TaskCgroup};
use crate::error::SandboxError;
use crate::spec::{ExitStatus, Mount, Outcome, SandboxSpec, Stdio};
use crate::Backend;

/// The unsandboxed backend.
#[derive(Debug, Clone, Default)]
pub struct NoneBackend;

/// Translate a sandbox path to the host path it is backed by, if any.
pub(crate) fn host_path_for(spec: &SandboxSpec, p: &Path) -> PathBuf {
    for m in spec.mounts.iter().rev() {
        let (dst, src) = match m {
            Mount::Bind { src, dst, .. } => (dst, src),
            Mount::Overlay {
                upper: Some((u, _)),
                dst,
                ..
            } => (dst, u),
            _ => continue,
        };
        if let Ok(rest) = p.strip_prefix(dst) {
            return src.join(rest);
        }
    }
    p.to_path_buf()
}

impl NoneBackend {
    fn run_with(&self, spec: &SandboxSpec, interactive: bool) -> Result<Outcome, SandboxError> {
        crate::validate(spec)?;
        tracing::warn!(argv = ?spec.argv, "running WITHOUT a sandbox (--sandbox none): the task sees and can change the whole host");
        let start = Instant::now();
        let cwd = host_path_for(spec, &spec.cwd);
        let mut cmd = std::process::Command::new(spec.argv.first().map_or("", String::as_str));
        cmd.args(spec.argv.iter().skip(1))
            .env_clear()
            .envs(&spec.env)
            .current_dir(&cwd);
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
    fn run(&self, spec: &SandboxSpec) -> Result<Outcome, SandboxError> {
        self.run_with(spec, false)
    }
    fn run_interactive(&self, spec: &SandboxSpec) -> Result<Outcome, SandboxError> {
        self.run_with(spec, true)
    }
}
