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
fn none_backend_runs_with_cleared_env_remapped_paths_and_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(work.join("sub")).unwrap();
    let script = dir.path().join("run.sh");
    let root = dir.path().join("root");
    let mut spec = SandboxSpec::new(
        vec![
            "/bin/sh".into(),
            "-c".into(),
            "set -e; . /bitzel/run.sh; cp /bitzel/run.sh \"$TMPDIR/x\"; test -f \"$TMPDIR/x\""
                .into(),
        ],
        vec![],
    );
    spec.env.insert("ONLY".into(), "1".into());
    spec.env.insert("WORKDIR".into(), "/bitzel/work".into());
    spec.cwd = "/bitzel/work/sub".into();
    spec.host_root = Some(root.clone());
    spec.mounts.push(Mount::Bind {
        src: work.clone(),
        dst: "/bitzel/work".into(),
        writable: true,
    });
    spec.mounts.push(Mount::Bind {
        src: script.clone(),
        dst: "/bitzel/run.sh".into(),
        writable: false,
    });
    // The caller rewrites the files it writes for the task.
    let map = PathMap::new(&spec.mounts, &root).unwrap();
    let text = "env > /bitzel/work/env.txt; pwd -P >> /bitzel/work/env.txt\n";
    std::fs::write(&script, map.rewrite(text)).unwrap();
    let o = NoneBackend.run(&spec).unwrap();
    assert_eq!(o.status, ExitStatus::Code(0));
    let env = std::fs::read_to_string(work.join("env.txt")).unwrap();
    assert!(env.contains("ONLY=1") && !env.contains("HOME="), "{env}");
    let root_work = format!("WORKDIR={}/bitzel/work\n", root.display());
    assert!(env.contains(&root_work), "{env}");
    assert!(env.contains(work.join("sub").to_str().unwrap()), "{env}");

    // Without a host root from the caller, the backend makes one and removes it.
    spec.host_root = None;
    spec.argv = vec![
        "/bin/sh".into(),
        "-c".into(),
        "echo \"$TMPDIR\" > /bitzel/work/tmpdir".into(),
    ];
    assert_eq!(NoneBackend.run(&spec).unwrap().status, ExitStatus::Code(0));
    let tmpdir = std::fs::read_to_string(work.join("tmpdir")).unwrap();
    let own_root = std::path::Path::new(tmpdir.trim()).parent().unwrap();
    let temp = std::fs::canonicalize(std::env::temp_dir()).unwrap();
    assert!(own_root.starts_with(temp), "{tmpdir}");
    assert!(!own_root.exists(), "{} was left behind", own_root.display());

    // An overlay needs a mount namespace: refused before anything runs.
    let mut overlay = spec.clone();
    overlay.mounts[0] = Mount::Overlay {
        lowers: vec![],
        upper: Some((work.clone(), dir.path().join("wk"))),
        dst: "/bitzel/work".into(),
    };
    let e = NoneBackend.run(&overlay).unwrap_err();
    assert!(matches!(e, SandboxError::InvalidSpec { .. }), "{e}");
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
