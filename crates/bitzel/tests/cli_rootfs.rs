//! `bitzel rootfs lock|build|show` on a root given as a tarball (no network, no
//! mmdebstrap): the lock pins the tarball and the packages of its dpkg database, the root
//! made while locking is found by the next build, a second cache makes the same digest,
//! machine-specific files and special files are gone from the layer, and a changed tarball
//! makes the lock stale. (`scripts/test.d/55-rootfs.sh` covers mmdebstrap and the example.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::Run;

fn bitzel(dir: &Path, args: &[&str]) -> Run {
    Command::new(env!("CARGO_BIN_EXE_bitzel"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
        .into()
}

fn make_tarball(dir: &Path, extra: Option<&str>) {
    let root = dir.join("root");
    let _ = fs::remove_dir_all(&root);
    for (p, body) in [
        ("etc/hostname", "builder-machine\n"),
        ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
        (
            "var/lib/dpkg/status",
            "Package: tool\nStatus: install ok installed\nVersion: 1.0-1\n",
        ),
        ("var/log/apt/history.log", "Start-Date: now\n"),
        ("usr/bin/tool", "#!/bin/sh\necho tool\n"),
    ] {
        fs::create_dir_all(root.join(p).parent().unwrap()).unwrap();
        fs::write(root.join(p), body).unwrap();
    }
    fs::set_permissions(root.join("usr/bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
    if let Some(name) = extra {
        fs::write(root.join(name), "more").unwrap();
    }
    let ok = Command::new("mkfifo")
        .arg(root.join("run-fifo"))
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let ok = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .args(["-cf"])
        .arg(dir.join("root.tar"))
        .arg(".")
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

fn digest_of(stdout: &str) -> String {
    stdout
        .split_whitespace()
        .find(|w| w.len() == 65 && w.ends_with(':'))
        .or_else(|| stdout.split_whitespace().find(|w| w.len() == 64))
        .unwrap_or_else(|| panic!("no digest in {stdout}"))
        .trim_end_matches(':')
        .to_string()
}

#[test]
fn a_tarball_root_is_locked_stored_found_and_checked() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    make_tarball(d, None);
    fs::write(
        d.join("k.yml"),
        "header:\n  version: 14\nbitzel:\n  cache_dir: cache\n  build_dir: build\n  build_root:\n    rootfs:\n      tarball: root.tar\n",
    )
    .unwrap();

    let r = bitzel(d, &["rootfs", "build", "k.yml"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("no lock file") && r.stderr.contains("bitzel rootfs lock"),
        "{}",
        r.stderr
    );

    let r = bitzel(d, &["rootfs", "lock", "k.yml"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("1 packages locked"), "{}", r.stdout);
    let locked = digest_of(&r.stdout);
    let lock = fs::read_to_string(d.join("k.rootfs.lock")).unwrap();
    assert!(
        lock.contains("\ntarball ") && lock.contains("\npackage tool 1.0-1\n"),
        "{lock}"
    );

    let r = bitzel(d, &["rootfs", "build", "k.yml"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("found in the cache"), "{}", r.stdout);
    assert_eq!(digest_of(&r.stdout), locked);
    assert_eq!(fs::read_to_string(d.join("k.rootfs.lock")).unwrap(), lock);

    // Another cache: built again from the tarball, the same root.
    let r = bitzel(d, &["rootfs", "build", "k.yml", "--cache-dir", "cache2"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("built and stored"), "{}", r.stdout);
    assert_eq!(digest_of(&r.stdout), locked);
    let layer = Path::new(r.stdout.trim_end().rsplit(' ').next().unwrap());
    assert!(layer.join("usr/bin/tool").is_file());
    assert!(layer.join("var/log").is_dir());
    for gone in ["etc/hostname", "var/log/apt", "run-fifo"] {
        assert!(
            layer.join(gone).symlink_metadata().is_err(),
            "{gone} is in the layer"
        );
    }

    let r = bitzel(d, &["rootfs", "show", "k.yml"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains(&format!("root:      {locked} (in the cache)")),
        "{}",
        r.stdout
    );

    // Another tarball: the lock no longer matches.
    make_tarball(d, Some("new-file"));
    let r = bitzel(d, &["rootfs", "build", "k.yml", "--cache-dir", "cache3"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("k.rootfs.lock: the lock was made for tarball"),
        "{}",
        r.stderr
    );
}

#[test]
fn rootfs_mode_refuses_the_unsandboxed_backend_and_explain_builds_no_root() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let verbs = common::repo_root().join("testdata/verbs/project.yml");
    fs::write(
        d.join("k.yml"),
        format!(
            "header:\n  version: 14\n  includes: [{}]\nbitzel:\n  cache_dir: cache\n  build_root:\n    rootfs:\n      tarball: root.tar\n",
            verbs.display()
        ),
    )
    .unwrap();
    let r = bitzel(d, &["build", "k.yml", "--sandbox", "none"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("the rootfs build root needs a sandbox that mounts it"),
        "{}",
        r.stderr
    );
    // `explain` runs nothing: a root not in the cache is an error naming the command.
    make_tarball(d, None);
    let r = bitzel(d, &["rootfs", "lock", "k.yml", "--cache-dir", "lock-cache"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = bitzel(d, &["explain", "k.yml"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "is not in the cache, and its digest is in every key: run `bitzel rootfs build"
        ),
        "{}",
        r.stderr
    );
    let layers = d.join("cache/v1/layers");
    assert!(!layers.is_dir() || fs::read_dir(&layers).unwrap().next().is_none());
}
