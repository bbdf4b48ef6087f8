//! The build-directory lock (`<build>/bitzel.lock`, as BitBake's
//! `bitbake.lock`): a second process that would write the build directory
//! fails at once naming the holder, or waits with `--wait-lock`; a killed
//! holder releases it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use bitzel_cache::{FileLock, LockMode};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/config")
        .canonicalize()
        .unwrap()
}

fn bitzel(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bitzel"));
    c.args(["--color", "never"])
        .args(args)
        .current_dir(testdata())
        .env_remove("BITZEL_LOG");
    c
}

fn run(args: &[&str]) -> Output {
    bitzel(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_second_process_fails_naming_the_holder() {
    let build = tempfile::tempdir().unwrap();
    let b = build.path().to_str().unwrap();
    let lock = FileLock::try_lock(&build.path().join("bitzel.lock"), LockMode::Exclusive)
        .unwrap()
        .unwrap();
    for args in [
        &["build", "--plan", "project/kas.yml", "--build-dir", b][..],
        &["show", "project/kas.yml", "--build-dir", b, "--recipes"][..],
    ] {
        let out = run(args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains(&format!("is in use by pid {} (", std::process::id())),
            "{args:?}: {err}"
        );
        assert!(err.contains("--wait-lock"), "{err}");
        assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    }
    drop(lock);
    let out = run(&["build", "--plan", "project/kas.yml", "--build-dir", b]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The holder's name is gone once it has let go.
    assert_eq!(
        std::fs::read_to_string(build.path().join("bitzel.lock")).unwrap(),
        ""
    );
}

#[test]
fn wait_lock_waits_for_the_holder() {
    let build = tempfile::tempdir().unwrap();
    let b = build.path().to_str().unwrap();
    let lock = FileLock::try_lock(&build.path().join("bitzel.lock"), LockMode::Exclusive)
        .unwrap()
        .unwrap();
    let mut child = bitzel(&[
        "build",
        "--plan",
        "project/kas.yml",
        "--build-dir",
        b,
        "--wait-lock",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.contains("waiting for the build directory")
            && line.contains(&format!("pid {}", std::process::id())),
        "{line}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "it waits");
    drop(lock);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains("config:"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn a_killed_holder_releases_the_lock() {
    let build = tempfile::tempdir().unwrap();
    let b = build.path().to_str().unwrap();
    let lock_file = build.path().join("bitzel.lock");
    // A process holding the same flock(2) lock (taken with util-linux
    // flock(1) on an fd the shell then hands to `sleep`), then SIGKILLed.
    let mut holder = Command::new("sh")
        .args([
            "-c",
            "exec 9>>\"$1\" && flock 9 && exec sleep 60",
            "sh",
            lock_file.to_str().unwrap(),
        ])
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while FileLock::try_lock(&lock_file, LockMode::Exclusive)
        .unwrap()
        .is_some()
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the holder never locked (flock(1) from util-linux is required)"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = run(&["build", "--plan", "project/kas.yml", "--build-dir", b]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("in use by another process (pid not recorded)"),
        "{}",
        text(&out.stderr)
    );
    holder.kill().unwrap(); // SIGKILL
    holder.wait().unwrap();
    let out = run(&["build", "--plan", "project/kas.yml", "--build-dir", b]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}
