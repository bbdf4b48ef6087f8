//! Backend selection and the `none` backend.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bitzel_sandbox::*;

fn config() -> SandboxConfig {
    let helper = std::env::var_os("BITZEL_SANDBOX_HELPER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_bitzel-sandbox-helper")));
    SandboxConfig::new(HelperExe::Path(helper))
}

#[test]
fn auto_picks_native_here_and_reports_every_probe() {
    let (b, report) = select(BackendChoice::Auto, &config()).unwrap();
    assert_eq!(b.name(), "native", "{report:?}");
    assert!(b.hermetic());
    assert_eq!(report.chosen, Some("native"));
    assert!(report.probes.first().is_some_and(|p| p.ok), "{report:?}");
    assert!(
        report.notes.iter().any(|n| n.contains("cgroup")),
        "{report:?}"
    );
}

#[test]
fn named_backends_are_probed() {
    let (b, _) = select(BackendChoice::Bwrap, &config()).unwrap();
    assert_eq!(b.name(), "bwrap");
    let r = select(BackendChoice::SandboxExec, &config());
    if !cfg!(target_os = "macos") {
        assert!(matches!(r, Err(SandboxError::Unavailable { .. })));
    }
}

#[test]
fn a_broken_helper_is_rejected_with_the_reason() {
    let mut cfg = config();
    cfg.helper = HelperExe::Path("/no/such/helper".into());
    let err = select(BackendChoice::Native, &cfg)
        .err()
        .expect("a missing helper cannot work");
    assert!(err.to_string().contains("/no/such/helper"), "{err}");
    let all = probe_all(&cfg);
    assert!(
        all.probes
            .iter()
            .all(|p| !p.ok || p.backend == "sandbox-exec"),
        "{all:?}"
    );
}

#[test]
fn missing_bwrap_binary_is_unavailable() {
    let mut cfg = config();
    cfg.bwrap = Some("/no/such/bwrap".into());
    let e = BwrapBackend::new(cfg)
        .run(&SandboxSpec::new(vec!["true".into()], vec![]))
        .unwrap_err();
    assert!(
        matches!(
            e,
            SandboxError::Unavailable {
                backend: "bwrap",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn none_is_only_used_when_named_and_is_not_hermetic() {
    let (b, report) = select(BackendChoice::None, &config()).unwrap();
    assert_eq!(b.name(), "none");
    assert!(!b.hermetic());
    assert_eq!(report.chosen, Some("none"));
    assert!("bogus".parse::<BackendChoice>().is_err());
    assert_eq!(
        "bubblewrap".parse::<BackendChoice>().unwrap(),
        BackendChoice::Bwrap
    );
}

#[test]
fn none_backend_runs_with_cleared_env_translated_cwd_and_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let up = dir.path().join("up");
    std::fs::create_dir_all(&up).unwrap();
    let mut spec = SandboxSpec::new(
        vec![
            "/bin/sh".into(),
            "-c".into(),
            "env > env.txt; pwd >> env.txt".into(),
        ],
        vec![],
    );
    spec.env.insert("ONLY".into(), "1".into());
    spec.cwd = "/bitzel/work".into();
    spec.mounts.push(Mount::Overlay {
        lowers: vec![],
        upper: Some((up.clone(), dir.path().join("wk"))),
        dst: "/bitzel/work".into(),
    });
    let o = NoneBackend.run(&spec).unwrap();
    assert_eq!(o.status, ExitStatus::Code(0));
    let env = std::fs::read_to_string(up.join("env.txt")).unwrap();
    assert!(env.contains("ONLY=1") && !env.contains("HOME="), "{env}");
    assert!(env.contains(up.to_str().unwrap()));
    spec.argv = vec![
        "/bin/sh".into(),
        "-c".into(),
        "trap '' TERM; sleep 30".into(),
    ];
    spec.timeout = Some(Duration::from_millis(200));
    spec.kill_grace = Duration::from_millis(200);
    let start = Instant::now();
    assert_eq!(NoneBackend.run(&spec).unwrap().status, ExitStatus::TimedOut);
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn invalid_specs_are_rejected_before_running() {
    let mut spec = SandboxSpec::new(vec![], vec![]);
    assert!(matches!(
        validate(&spec),
        Err(SandboxError::InvalidSpec { .. })
    ));
    spec.argv = vec!["true".into()];
    spec.mounts.push(Mount::Tmpfs {
        dst: "relative".into(),
    });
    assert!(matches!(
        validate(&spec),
        Err(SandboxError::InvalidSpec { .. })
    ));
    spec.mounts = vec![Mount::Tmpfs {
        dst: "/a/../b".into(),
    }];
    assert!(matches!(
        validate(&spec),
        Err(SandboxError::InvalidSpec { .. })
    ));
}
