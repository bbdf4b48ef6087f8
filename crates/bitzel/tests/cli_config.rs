//! `bitzel build`'s configuration front end, through the built binary:
//! one clear error line with file:line:col and exit code 1 for broken
//! configs, the plan for good ones, flags overriding `bitzel:` settings.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use expect_test::expect;

mod common;
use common::{repo_root, Run};

fn testdata() -> PathBuf {
    repo_root().join("testdata/config")
}

/// Run `bitzel <args>` in `cwd`.
fn bitzel(cwd: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_bitzel"))
        .args(["--color", "never"])
        .args(args)
        .current_dir(cwd)
        .env_remove("BITZEL_LOG")
        .output()
        .unwrap();
    Run::from(out)
}

/// A broken config: exit code 1, nothing on stdout, exactly one line on stderr.
fn one_error(file: &str) -> String {
    let build = tempfile::tempdir().unwrap();
    let r = bitzel(
        &testdata(),
        &[
            "build",
            "--plan",
            file,
            "--build-dir",
            build.path().to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 1, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert_eq!(r.stdout, "");
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    r.stderr.trim_end().to_string()
}

#[test]
fn typo_in_a_key() {
    assert_eq!(
        one_error("errors/typo.yml"),
        "error: errors/typo.yml:3:1: unknown key `machin` (did you mean `machine`?)"
    );
}

#[test]
fn yaml_syntax_error() {
    let e = one_error("errors/syntax.yml");
    assert!(
        e.starts_with("error: errors/syntax.yml:5:7: invalid YAML: "),
        "{e}"
    );
}

#[test]
fn missing_layer() {
    assert_eq!(
        one_error("errors/missing-layer.yml"),
        "error: errors/missing-layer.yml:9:7: layer `meta-missing` of repo `fixture` not found: `project/layers/meta-missing` is not a directory"
    );
}

#[test]
fn wrong_header_version() {
    assert_eq!(
        one_error("errors/bad-version.yml"),
        "error: errors/bad-version.yml:2:12: kas format version 99 is not supported: bitzel reads kas format versions 1 to 20"
    );
}

#[test]
fn unreadable_include() {
    assert_eq!(
        one_error("errors/bad-include.yml"),
        "error: errors/bad-include.yml:4:7: cannot read include `errors/does-not-exist.yml`: No such file or directory (os error 2)"
    );
}

#[test]
fn missing_config_file() {
    assert_eq!(
        one_error("errors/no-such-file.yml"),
        "error: errors/no-such-file.yml:1:1: cannot read config file `errors/no-such-file.yml`: No such file or directory (os error 2)"
    );
}

#[test]
fn plan_of_an_include_chain() {
    let build = tempfile::tempdir().unwrap();
    let b = build.path().to_str().unwrap();
    let r = bitzel(
        &testdata(),
        &["build", "--plan", "project/kas.yml", "--build-dir", b],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "");
    expect![[r#"
        config:     project/kas.yml
          includes: project/base.yml
          includes: project/base.yml
          includes: project/bsp/board.yml
        machine:    qemux86-64
        distro:     bitzel
        targets:    core-image-minimal mc:second:core-image-minimal
        task:       build
        build dir:  <build>
        cache dir:  project/cache
        jobs:       2
        sandbox:    auto
        build root: host
        repos:
          fixture (local): project/layers
        layers:
          project/layers/meta-one
          project/layers/meta-three
    "#]]
    .assert_eq(&r.stdout.replace(b, "<build>"));
}

#[test]
fn verbose_plan_shows_the_generated_conf_files() {
    let build = tempfile::tempdir().unwrap();
    let b = build.path().to_str().unwrap();
    let r = bitzel(
        &testdata(),
        &[
            "-v",
            "build",
            "--plan",
            "project/flat.yml",
            "--build-dir",
            b,
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let root = testdata().display().to_string();
    let conf = r.stdout.split_once("--- conf/bblayers.conf\n").unwrap().1;
    expect![[r#"
        # board
        BOARD_LAYERS = "1"

        BBLAYERS ?= " \
            <testdata>/project/layers/meta-one \
            <testdata>/project/layers/meta-three"
        BBPATH ?= "${TOPDIR}"
        BBFILES ??= ""
        --- conf/local.conf
        # 00-top
        TOP = "1"

        # 10-base
        BASE = "1"

        # 20-shared
        SHARED = "from board"

        MACHINE ??= "qemux86-64"
        DISTRO ??= "bitzel"
        BBMULTICONFIG ?= "second"
    "#]]
    .assert_eq(&conf.replace(&root, "<testdata>"));
}

#[test]
fn flags_override_the_bitzel_section() {
    let build = tempfile::tempdir().unwrap();
    let b = build.path().to_str().unwrap();
    let r = bitzel(
        &testdata(),
        &[
            "build",
            "--plan",
            "project/kas.yml",
            "--build-dir",
            b,
            "-j",
            "7",
            "--sandbox",
            "none",
            "--build-root",
            "host",
            "--cache-dir",
            "elsewhere",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    for line in [
        "cache dir:  elsewhere\n",
        "jobs:       7\n",
        "sandbox:    none\n",
        "build root: host\n",
    ] {
        assert!(r.stdout.contains(line), "{line:?} not in:\n{}", r.stdout);
    }
    let r = bitzel(
        &testdata(),
        &["build", "--plan", "project/kas.yml", "--sandbox", "docker"],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("unknown sandbox `docker`"),
        "{}",
        r.stderr
    );
    let r = bitzel(
        &testdata(),
        &["build", "--plan", "project/kas.yml", "-j", "0"],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
}

#[test]
fn a_verb_refuses_the_flags_it_would_ignore() {
    // show, fetch and graph run no task: no sandbox or build root; rootfs
    // parses no recipe: no -j.
    for args in [
        &["show", "project/kas.yml", "--sandbox", "none"][..],
        &["fetch", "project/kas.yml", "--build-root", "host"],
        &["graph", "project/kas.yml", "--sandbox", "none"],
        &["rootfs", "show", "project/kas.yml", "--sandbox", "none"],
        &["rootfs", "build", "project/kas.yml", "-j", "2"],
    ] {
        let r = bitzel(&testdata(), args);
        assert_eq!(r.code, 2, "{args:?} was accepted:\n{}", r.stderr);
        assert!(
            r.stderr.contains("unexpected argument"),
            "{args:?}: {}",
            r.stderr
        );
    }
}

#[test]
fn a_rootfs_build_root_needs_a_declared_root() {
    let build = tempfile::tempdir().unwrap();
    let b = build.path().to_str().unwrap();
    let r = bitzel(
        &testdata(),
        &[
            "build",
            "--plan",
            "project/kas.yml",
            "--build-dir",
            b,
            "--build-root",
            "rootfs",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.stdout, "");
    assert!(
        r.stderr.contains("--build-root rootfs: ") && r.stderr.contains("declares no root"),
        "{}",
        r.stderr
    );
    let r = bitzel(
        &testdata(),
        &[
            "build",
            "--plan",
            "project/kas.yml",
            "--build-root",
            "chroot",
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("unknown build root `chroot` (expected `host` or `rootfs`)"),
        "{}",
        r.stderr
    );
    let cfg = build.path().join("rootfs.yml");
    std::fs::write(
        &cfg,
        "header:\n  version: 14\nbitzel:\n  build_root: rootfs\n",
    )
    .unwrap();
    let r = bitzel(
        &testdata(),
        &["build", "--plan", cfg.to_str().unwrap(), "--build-dir", b],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.trim_end().starts_with(&format!(
            "error: {}:4:15: `build_root: rootfs` needs the root it names",
            cfg.display()
        )),
        "{}",
        r.stderr
    );
}

#[test]
fn rootfs_mode_without_a_lock_names_the_command_that_makes_it() {
    let build = tempfile::tempdir().unwrap();
    let cfg = build.path().join("k.yml");
    std::fs::write(
        &cfg,
        "header:\n  version: 14\nbitzel:\n  build_root:\n    rootfs:\n      suite: bookworm\n      packages: [build-essential]\n",
    )
    .unwrap();
    let cache = build.path().join("c");
    let rootfs_build = || {
        bitzel(
            &testdata(),
            &[
                "rootfs",
                "build",
                cfg.to_str().unwrap(),
                "--cache-dir",
                cache.to_str().unwrap(),
                "--build-dir",
                build.path().join("b").to_str().unwrap(),
            ],
        )
    };
    let r = rootfs_build();
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "k.rootfs.lock: no lock file for the rootfs build root; run `bitzel rootfs lock"
        ),
        "{}",
        r.stderr
    );
    std::fs::write(
        build.path().join("k.rootfs.lock"),
        "format bitzel-rootfs/1\nsuite bookworm\narch amd64\nrequested bc\npackage bc 1\n",
    )
    .unwrap();
    let r = rootfs_build();
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "the lock was made for packages [bc], but the config declares [build-essential]"
        ),
        "{}",
        r.stderr
    );
}

#[test]
fn warnings_name_unsupported_keys() {
    let build = tempfile::tempdir().unwrap();
    let r = bitzel(
        &testdata(),
        &[
            "build",
            "--plan",
            "warnings/unsupported.yml",
            "--build-dir",
            build.path().to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let w: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(
        w,
        [
            "warning: warnings/unsupported.yml:4:1: kas key `build_system` is not supported by bitzel yet; it is ignored",
            "warning: warnings/unsupported.yml:9:5: kas key `repos.fixture.refspec` is not supported by bitzel yet; it is ignored",
        ]
    );
}

#[test]
fn default_build_dir_is_build_in_the_current_directory() {
    let cwd = tempfile::tempdir().unwrap();
    let cfg = testdata().join("project/flat.yml");
    let r = bitzel(cwd.path(), &["build", "--plan", cfg.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("build dir:  build\n"), "{}", r.stdout);
}

#[test]
fn the_shipped_example_resolves_its_layers() {
    let root = repo_root();
    let build = tempfile::tempdir().unwrap();
    let r = bitzel(
        &root,
        &[
            "build",
            "--plan",
            "examples/busybox-qemux86-64.yml",
            "--build-dir",
            build.path().to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("machine:    qemux86-64\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("targets:    core-image-busybox\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("layers:\n  layers/meta-bitzel\n  examples/meta-busybox-example\n"),
        "{}",
        r.stdout
    );
}
