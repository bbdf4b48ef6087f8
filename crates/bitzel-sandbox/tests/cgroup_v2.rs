//! cgroup v2 limits (`memory.max`, `pids.max`) and the OOM kill, against the native, the
//! bubblewrap and the `none` backend.
//!
//! The tests in `enforced::*` need a cgroup v2 hierarchy with the memory and pids controllers
//! delegated to the running user, which this project's CI host (cgroup v1) does not have, so
//! they are `#[ignore]`d here and run for real by `scripts/test.d/30-cgroup-v2-vm.sh`, which
//! boots Debian's kernel in QEMU with a pure cgroup v2 hierarchy and runs this binary with
//! `--ignored`, once as root and once as an unprivileged user in a delegated cgroup.
//! `limits_are_enforced_exactly_when_described` runs everywhere.
//!
//! `BITZEL_SANDBOX_HELPER` overrides the helper binary (for copies of this test binary).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use bitzel_sandbox::*;

const MIB: u64 = 1024 * 1024;

fn helper() -> PathBuf {
    std::env::var_os("BITZEL_SANDBOX_HELPER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_bitzel-sandbox-helper")))
}

fn backend(kind: &str) -> Box<dyn Backend> {
    let cfg = SandboxConfig::new(HelperExe::Path(helper()));
    match kind {
        "native" => Box::new(NativeBackend::new(cfg)),
        "bwrap" => Box::new(BwrapBackend::new(cfg)),
        "none" => Box::new(NoneBackend),
        other => panic!("unknown backend {other}"),
    }
}

struct Run {
    outcome: Outcome,
    stdout: String,
    stderr: String,
}

fn run(kind: &str, script: &str, limits: Limits) -> Run {
    let dir = tempfile::Builder::new()
        .prefix("bitzel-cg-")
        .tempdir()
        .unwrap();
    let mut spec = SandboxSpec::new(
        vec!["sh".into(), "-c".into(), script.into()],
        SandboxSpec::default_host_paths(),
    );
    spec.env
        .insert("PATH".into(), "/usr/bin:/bin:/usr/sbin:/sbin".into());
    spec.timeout = Some(Duration::from_secs(60));
    spec.limits = limits;
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    spec.stdout = Stdio::File(out.clone());
    spec.stderr = Stdio::File(err.clone());
    let outcome = backend(kind)
        .run(&spec)
        .unwrap_or_else(|e| panic!("{kind}: sandbox error: {e}"));
    Run {
        outcome,
        stdout: std::fs::read_to_string(out).unwrap_or_default(),
        stderr: std::fs::read_to_string(err).unwrap_or_default(),
    }
}

fn memory(bytes: u64) -> Limits {
    Limits {
        memory_bytes: Some(bytes),
        ..Limits::default()
    }
}

fn pids(n: u64) -> Limits {
    Limits {
        pids: Some(n),
        ..Limits::default()
    }
}

/// Runs everywhere: limits either apply (and show in the outcome) or are described as not
/// enforced, and the task runs in both cases.
#[test]
fn limits_are_enforced_exactly_when_described() {
    let note = cgroup_note();
    let r = run(
        "native",
        "echo ran",
        Limits {
            memory_bytes: Some(512 * MIB),
            pids: Some(64),
            ..Limits::default()
        },
    );
    assert_eq!(r.outcome.status, ExitStatus::Code(0), "{}", r.stderr);
    assert_eq!(r.stdout, "ran\n");
    if note.contains("not enforced") {
        assert_eq!(r.outcome.resources, ResourceUsage::default(), "{note}");
    } else {
        assert!(note.contains("enforced under"), "{note}");
        assert_eq!(r.outcome.resources.memory_max, Some(512 * MIB), "{note}");
        assert_eq!(r.outcome.resources.pids_max, Some(64), "{note}");
    }
    // Without limits there is no cgroup and nothing to report.
    let r = run("native", "true", Limits::default());
    assert_eq!(r.outcome.resources, ResourceUsage::default());
}

/// The `none` backend applies the rlimits too (the namespaced backends are covered by the
/// isolation suite's `cwd_stdin_and_rlimits`).
#[test]
fn none_backend_applies_rlimits() {
    let r = run(
        "none",
        "ulimit -n; ulimit -t",
        Limits {
            nofile: Some(77),
            cpu_secs: Some(30),
            ..Limits::default()
        },
    );
    assert_eq!(r.outcome.status, ExitStatus::Code(0), "{}", r.stderr);
    assert_eq!(r.stdout, "77\n30\n");
}

macro_rules! enforced {
    ($($name:ident),* $(,)?) => {
        mod enforced {
            mod native { $(
                #[test]
                #[ignore = "needs delegated cgroup v2; run by scripts/test.d/30-cgroup-v2-vm.sh"]
                fn $name() { super::super::$name("native"); }
            )* }
            mod bwrap { $(
                #[test]
                #[ignore = "needs delegated cgroup v2; run by scripts/test.d/30-cgroup-v2-vm.sh"]
                fn $name() { super::super::$name("bwrap"); }
            )* }
            mod none { $(
                #[test]
                #[ignore = "needs delegated cgroup v2; run by scripts/test.d/30-cgroup-v2-vm.sh"]
                fn $name() { super::super::$name("none"); }
            )* }
        }
    };
}

enforced!(
    delegation_is_in_place,
    memory_overrun_is_reported_as_an_oom_kill,
    within_the_memory_limit_succeeds_and_reports_the_peak,
    pids_limit_refuses_forks_and_says_so,
    pids_limit_counts_only_the_tasks_processes,
    task_cgroup_is_private_and_removed_afterwards,
);

fn delegation_is_in_place(kind: &str) {
    // Establish the delegation the way a run does, then read what was chosen.
    let r = run(kind, "true", memory(256 * MIB));
    assert_eq!(
        r.outcome.status,
        ExitStatus::Code(0),
        "{kind}: {}",
        r.stderr
    );
    let note = cgroup_note();
    assert!(
        note.contains("memory, pids") && !note.contains("not enforced"),
        "{note}"
    );
    // The VM script says where each of its runs must end up: the root cgroup when the own
    // cgroup is shared (adoption impossible), the own cgroup when it is delegated.
    if let Some(base) = std::env::var_os("BITZEL_CGROUP_V2_EXPECT_BASE") {
        let want = format!("enforced under {}", Path::new(&base).display());
        assert!(note.ends_with(&want), "{note:?} does not end with {want:?}");
    }
}

fn memory_overrun_is_reported_as_an_oom_kill(kind: &str) {
    // dd reads into a 128 MiB buffer, touching every page of it.
    let r = run(
        kind,
        "dd if=/dev/zero of=/dev/null bs=128M count=1",
        memory(32 * MIB),
    );
    assert_eq!(
        r.outcome.status,
        ExitStatus::OomKilled,
        "{kind}: {:?}\n{}",
        r.outcome,
        r.stderr
    );
    assert!(r.outcome.resources.oom_kills >= 1, "{:?}", r.outcome);
    assert_eq!(r.outcome.resources.memory_max, Some(32 * MIB));
}

fn within_the_memory_limit_succeeds_and_reports_the_peak(kind: &str) {
    let r = run(
        kind,
        "dd if=/dev/zero of=/dev/null bs=16M count=1 2>/dev/null && echo done",
        memory(256 * MIB),
    );
    assert_eq!(
        r.outcome.status,
        ExitStatus::Code(0),
        "{kind}: {}",
        r.stderr
    );
    assert_eq!(r.stdout, "done\n");
    assert_eq!(r.outcome.resources.oom_kills, 0);
    let peak = r
        .outcome
        .resources
        .memory_peak
        .expect("memory.peak (Linux >= 5.19)");
    assert!(
        (16 * MIB..=256 * MIB).contains(&peak),
        "{kind}: peak {peak} bytes"
    );
}

fn pids_limit_refuses_forks_and_says_so(kind: &str) {
    let r = run(
        kind,
        "i=0; while [ $i -lt 40 ]; do sleep 2 & i=$((i+1)); done; wait",
        pids(8),
    );
    let res = r.outcome.resources;
    assert_eq!(res.pids_max, Some(8));
    assert!(
        res.pids_max_hits > 0,
        "{kind}: no refused fork recorded: {:?}\n{}",
        r.outcome,
        r.stderr
    );
    assert_ne!(r.outcome.status, ExitStatus::OomKilled);
}

fn pids_limit_counts_only_the_tasks_processes(kind: &str) {
    // The shell and three children: exactly the limit of 4.
    let r = run(
        kind,
        "sleep 1 & sleep 1 & sleep 1 & wait; echo done",
        pids(4),
    );
    assert_eq!(
        r.outcome.status,
        ExitStatus::Code(0),
        "{kind}: {:?}\n{}",
        r.outcome,
        r.stderr
    );
    assert_eq!(r.stdout, "done\n");
    assert_eq!(r.outcome.resources.pids_max_hits, 0, "{:?}", r.outcome);
}

fn task_cgroup_is_private_and_removed_afterwards(kind: &str) {
    let r = run(kind, "cat /proc/self/cgroup", memory(256 * MIB));
    assert_eq!(
        r.outcome.status,
        ExitStatus::Code(0),
        "{kind}: {}",
        r.stderr
    );
    let rel = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or_else(|| panic!("{kind}: no cgroup v2 line in {:?}", r.stdout))
        .to_owned();
    let name = Path::new(&rel)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    assert!(
        name.starts_with(&format!("bitzel-task-{}-", std::process::id())),
        "{kind}: the task ran in {rel}"
    );
    let dir = Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/'));
    assert!(!dir.exists(), "{kind}: {} was left behind", dir.display());
}
