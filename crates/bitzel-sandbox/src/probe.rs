//! Probe the backends by running a trivial sandbox (with an overlay) and pick one.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::SandboxError;
use crate::spec::{ExitStatus, Mount, SandboxSpec};
use crate::{Backend, BwrapBackend, NativeBackend, NoneBackend, SandboxConfig, SandboxExecBackend};

/// What the user asked for (`--sandbox auto|native|bwrap|sandbox-exec|none`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendChoice {
    /// The first that works: native → bwrap → sandbox-exec (never `none`).
    Auto,
    /// Native namespaces.
    Native,
    /// Bubblewrap.
    Bwrap,
    /// macOS sandbox-exec.
    SandboxExec,
    /// No sandbox (loud warning; recorded in action keys via [`Backend::hermetic`]).
    None,
}

impl std::str::FromStr for BackendChoice {
    type Err = SandboxError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "auto" => BackendChoice::Auto,
            "native" => BackendChoice::Native,
            "bwrap" | "bubblewrap" => BackendChoice::Bwrap,
            "sandbox-exec" => BackendChoice::SandboxExec,
            "none" => BackendChoice::None,
            other => {
                return Err(SandboxError::InvalidSpec {
                    reason: format!("unknown sandbox backend `{other}`; use auto, native, bwrap, sandbox-exec or none"),
                })
            }
        })
    }
}

/// The result of probing one backend.
#[derive(Debug, Clone)]
pub struct Probed {
    /// Backend name.
    pub backend: &'static str,
    /// Whether the trivial sandbox ran and exited 0.
    pub ok: bool,
    /// What happened, and for failures the likely cause.
    pub detail: String,
    /// How long the probe took.
    pub duration: Duration,
}

/// What [`select`] found.
#[derive(Debug, Clone, Default)]
pub struct ProbeReport {
    /// The chosen backend.
    pub chosen: Option<&'static str>,
    /// Every probe, in order.
    pub probes: Vec<Probed>,
    /// Host facts worth knowing (sysctls, cgroup version, limits that are unavailable).
    pub notes: Vec<String>,
}

fn read_trim(p: &str) -> Option<String> {
    std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned())
}

/// Host facts that explain probe failures.
pub fn host_notes() -> Vec<String> {
    let mut n = Vec::new();
    if let Ok(u) = nix::sys::utsname::uname() {
        let rel = u.release().to_string_lossy().into_owned();
        let mut it = rel
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|x| x.parse::<u32>().ok());
        let (maj, min) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
        let new_api = (maj, min) >= (6, 8);
        n.push(format!(
            "kernel {rel}: overlays use {}",
            if new_api {
                "fsconfig lowerdir+ (Linux >= 6.8)"
            } else {
                "mount(2) option strings, split to fit one page (Linux < 6.8)"
            }
        ));
        if (maj, min) < (5, 11) {
            n.push("overlayfs in user namespaces needs Linux >= 5.11: the native and bwrap backends will fail their overlay probe".into());
        }
    }
    if let Some(v) = read_trim("/proc/sys/kernel/unprivileged_userns_clone") {
        n.push(format!("kernel.unprivileged_userns_clone = {v}{}", if v == "0" { " (unprivileged user namespaces disabled: `sysctl -w kernel.unprivileged_userns_clone=1`)" } else { "" }));
    }
    if let Some(v) = read_trim("/proc/sys/user/max_user_namespaces") {
        n.push(format!(
            "user.max_user_namespaces = {v}{}",
            if v == "0" {
                " (user namespaces disabled)"
            } else {
                ""
            }
        ));
    }
    if let Some(v) = read_trim("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") {
        n.push(format!(
            "kernel.apparmor_restrict_unprivileged_userns = {v}{}",
            if v == "1" { " (AppArmor restricts unprivileged user namespaces, as on Ubuntu 24.04: add an AppArmor profile for bitzel allowing `userns`, or set the sysctl to 0)" } else { "" }
        ));
    }
    if let Some(m) = crate::identity::root_map() {
        n.push(format!(
            "running as root: tasks run as host uid {} and gid {} ({} uid(s), {} gid(s) mapped; {})",
            m.uid,
            m.gid,
            m.uid_count,
            m.gid_count,
            if m.uid == crate::identity::NOBODY {
                "nobody: root has no range in /etc/subuid"
            } else {
                "root's range in /etc/subuid and /etc/subgid"
            }
        ));
    }
    n.push(crate::cgroup_note());
    n
}

/// A trivial task that reads a lower-layer file and writes an output: through an overlay, or,
/// for a backend that cannot mount (`remaps`), through a writable bind holding the file.
fn probe_spec(dir: &Path, remaps: bool) -> Result<SandboxSpec, SandboxError> {
    let mk = |p: &Path| {
        std::fs::create_dir_all(p)
            .map_err(|e| SandboxError::io("creating probe dirs", Some(p.to_path_buf()), e))
    };
    for d in ["l1", "l2", "u", "w"] {
        mk(&dir.join(d))?;
    }
    let lower = dir.join(if remaps { "u/probe" } else { "l2/probe" });
    std::fs::write(&lower, b"ok")
        .map_err(|e| SandboxError::io("writing the probe layer", Some(lower.clone()), e))?;
    let mut spec = SandboxSpec::new(
        vec![
            "sh".into(),
            "-c".into(),
            "test -f /work/probe && echo x > /work/out".into(),
        ],
        SandboxSpec::default_host_paths(),
    );
    spec.env.insert("PATH".into(), "/usr/bin:/bin".into());
    spec.timeout = Some(Duration::from_secs(20));
    spec.stderr = crate::Stdio::File(dir.join("stderr"));
    spec.mounts.push(if remaps {
        Mount::Bind {
            src: dir.join("u"),
            dst: "/work".into(),
            writable: true,
        }
    } else {
        Mount::Overlay {
            lowers: vec![dir.join("l1"), dir.join("l2")],
            upper: Some((dir.join("u"), dir.join("w"))),
            dst: "/work".into(),
        }
    });
    Ok(spec)
}

fn probe(backend: &dyn Backend, cfg: &SandboxConfig) -> Probed {
    let start = Instant::now();
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("probe-{}-{}-{n}", backend.name(), std::process::id());
    let dir: PathBuf = cfg.base_dir().with_extension(name);
    let result = probe_spec(&dir, backend.remaps_paths()).and_then(|spec| backend.run(&spec));
    let out_ok = dir.join("u/out").exists();
    let stderr = std::fs::read_to_string(dir.join("stderr")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    let (ok, detail) = match result {
        Ok(o) if o.status == ExitStatus::Code(0) && out_ok => (
            true,
            format!(
                "ran a trivial sandbox with an overlay in {:.1} ms",
                o.duration.as_secs_f64() * 1e3
            ),
        ),
        Ok(o) => (
            false,
            format!(
                "the probe task ended with {} (overlay output present: {out_ok}); stderr: {}",
                o.status,
                stderr.trim()
            ),
        ),
        Err(e) if e.to_string().contains("overlay") => {
            (false, format!("{e} (overlayfs in a user namespace failed: Linux >= 5.11 is needed, and the layers must not sit on an overlay that is itself on an overlay)"))
        }
        Err(e) => (false, e.to_string()),
    };
    Probed {
        backend: backend.name(),
        ok,
        detail,
        duration: start.elapsed(),
    }
}

/// Probe every backend this platform has (for `bitzel doctor`), without stopping at the first
/// that works; `chosen` is what `auto` would pick.
pub fn probe_all(cfg: &SandboxConfig) -> ProbeReport {
    let mut report = ProbeReport {
        notes: host_notes(),
        ..ProbeReport::default()
    };
    let all: Vec<Box<dyn Backend>> = vec![
        Box::new(NativeBackend::new(cfg.clone())),
        Box::new(BwrapBackend::new(cfg.clone())),
        Box::new(SandboxExecBackend),
    ];
    for b in all {
        let p = if b.name() == "sandbox-exec" && !cfg!(target_os = "macos") {
            Probed {
                backend: b.name(),
                ok: false,
                detail: "only on macOS".into(),
                duration: Duration::ZERO,
            }
        } else {
            probe(b.as_ref(), cfg)
        };
        if p.ok && report.chosen.is_none() {
            report.chosen = Some(p.backend);
        }
        report.probes.push(p);
    }
    report
}

/// Probe the backend(s) `choice` allows, in order, and return the first that really works.
/// `None` is only returned when named, with a warning; `Auto` never picks it.
pub fn select(
    choice: BackendChoice,
    cfg: &SandboxConfig,
) -> Result<(Box<dyn Backend>, ProbeReport), SandboxError> {
    let mut report = ProbeReport {
        notes: host_notes(),
        ..ProbeReport::default()
    };
    let candidates: Vec<Box<dyn Backend>> = match choice {
        BackendChoice::Auto => vec![
            Box::new(NativeBackend::new(cfg.clone())),
            Box::new(BwrapBackend::new(cfg.clone())),
            Box::new(SandboxExecBackend),
        ],
        BackendChoice::Native => vec![Box::new(NativeBackend::new(cfg.clone()))],
        BackendChoice::Bwrap => vec![Box::new(BwrapBackend::new(cfg.clone()))],
        BackendChoice::SandboxExec => vec![Box::new(SandboxExecBackend)],
        BackendChoice::None => {
            tracing::warn!("sandbox `none` selected by the user: tasks run WITHOUT isolation and results are marked non-hermetic");
            report.chosen = Some("none");
            report.probes.push(Probed {
                backend: "none",
                ok: true,
                detail: "named by the user; no isolation".into(),
                duration: Duration::ZERO,
            });
            return Ok((Box::new(NoneBackend), report));
        }
    };
    for b in candidates {
        if b.name() == "sandbox-exec" && !cfg!(target_os = "macos") {
            report.probes.push(Probed {
                backend: b.name(),
                ok: false,
                detail: "only on macOS".into(),
                duration: Duration::ZERO,
            });
            continue;
        }
        let p = probe(b.as_ref(), cfg);
        let ok = p.ok;
        if !ok {
            tracing::warn!(backend = p.backend, reason = %p.detail, "sandbox backend rejected");
        }
        report.probes.push(p);
        if ok {
            report.chosen = Some(b.name());
            return Ok((b, report));
        }
    }
    let reasons: Vec<String> = report
        .probes
        .iter()
        .map(|p| format!("{}: {}", p.backend, p.detail))
        .collect();
    Err(SandboxError::Unavailable {
        backend: match choice {
            BackendChoice::Native => "native",
            BackendChoice::Bwrap => "bwrap",
            BackendChoice::SandboxExec => "sandbox-exec",
            _ => "auto",
        },
        reason: format!("{}; notes: {}", reasons.join("; "), report.notes.join("; ")),
    })
}
