//! Mistakes BitBake refuses, refused the same way through the built binary
//! (fixtures: `testdata/meta/mistakes`, see its README): a `.bbappend` no
//! recipe takes, `LAYERDEPENDS` on a collection (or version) that is not
//! enabled, and a misspelt provider, which gets BitBake's "Close matches".

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use expect_test::{expect, Expect};

mod common;
use common::repo_root;

/// `bitzel [-v] <verb> testdata/meta/mistakes/<project> --build-dir <tmp>
/// <args>`, as `exit N` then stdout and stderr, with the repository path
/// replaced by `<REPO>`.
fn run(verbose: bool, verb: &str, project: &str, args: &[&str]) -> String {
    let root = repo_root();
    let build = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bitzel"));
    cmd.args(["--color", "never"]);
    if verbose {
        cmd.arg("-v");
    }
    let out = cmd
        .arg(verb)
        .arg(root.join("testdata/meta/mistakes").join(project))
        .arg("--build-dir")
        .arg(build.path())
        .args(args)
        .current_dir(&root)
        .env_remove("BITZEL_LOG")
        .output()
        .unwrap();
    let clean = |s: &[u8]| {
        String::from_utf8_lossy(s)
            .replace(&build.path().to_string_lossy().to_string(), "<BUILD>")
            .replace(&root.to_string_lossy().to_string(), "<REPO>")
    };
    format!(
        "exit {}\n{}{}",
        out.status.code().unwrap_or(-1),
        clean(&out.stdout),
        clean(&out.stderr)
    )
}

fn check(verb: &str, project: &str, args: &[&str], expect: Expect) {
    expect.assert_eq(&run(false, verb, project, args));
}

#[test]
fn dangling_bbappend_is_an_error_naming_the_file() {
    let want = expect![[r#"
        exit 1
        BBFILES: error: No recipes in default available for:
          <REPO>/testdata/meta/mistakes/meta-dangling/recipes-test/gone/gone_2.0.bbappend
        update or remove these .bbappend files (or mask them with BBMASK) so that each matches a recipe
        error: 1 error(s) while parsing the metadata; fix them and run again
    "#]];
    check("show", "dangling.yml", &["greet", "GREETING"], want);
    // The build refuses it before anything runs.
    let build = run(false, "build", "dangling.yml", &["greet", "--dry-run"]);
    assert!(build.starts_with("exit 1\n"), "{build}");
    assert!(
        build.contains("error: No recipes in default available for:\n  <REPO>/testdata/meta/mistakes/meta-dangling/recipes-test/gone/gone_2.0.bbappend\n"),
        "{build}"
    );
}

#[test]
fn dangling_bbappend_warns_only_with_bb_danglingappends_warnonly() {
    // The matching append applies; the dangling one is a warning (shown at -v,
    // as every metadata warning is).
    check(
        "show",
        "dangling-warnonly.yml",
        &["greet", "GREETING"],
        expect![[r#"
            exit 0
            GREETING="hello from the append"
        "#]],
    );
    expect![[r#"
        exit 0
        GREETING="hello from the append"
        BBFILES: warning: No recipes in default available for:
          <REPO>/testdata/meta/mistakes/meta-dangling/recipes-test/gone/gone_2.0.bbappend
    "#]]
    .assert_eq(&run(
        true,
        "show",
        "dangling-warnonly.yml",
        &["greet", "GREETING"],
    ));
}

#[test]
fn layerdepends_on_a_missing_collection_or_version_is_an_error() {
    check(
        "show",
        "needy.yml",
        &["greet", "PN"],
        expect![[r#"
            exit 1
            <REPO>/testdata/meta/mistakes/meta-needy/conf/layer.conf:5:1: error: Layer 'needy' depends on version >= 4 of layer 'good', but version 3 is currently enabled in your configuration. Check that you are using the correct matching versions/branches of these two layers.
              |
            5 | LAYERDEPENDS_needy = "good (>= 4) openembedded-layer"
              | ^
            <REPO>/testdata/meta/mistakes/meta-needy/conf/layer.conf:5:1: error: Layer 'needy' depends on layer 'openembedded-layer', but this layer is not enabled in your configuration
              |
            5 | LAYERDEPENDS_needy = "good (>= 4) openembedded-layer"
              | ^
            error: 2 error(s) in the base configuration (bblayers.conf, layer.conf, bitbake.conf, local.conf); fix them and run again
        "#]],
    );
}

#[test]
fn misspelt_provider_gets_close_matches() {
    check(
        "build",
        "typo.yml",
        &["app", "--dry-run"],
        expect![[r#"
            exit 1
            error: nothing PROVIDES 'zlibb' (app asks for it in DEPENDS at <REPO>/testdata/meta/mistakes/meta-good/recipes-test/app/app_1.0.bb:2); dependency chain: app -> zlibb; add a recipe that provides it, correct the name, or list it in ASSUME_PROVIDED. Close matches:
              zlib
        "#]],
    );
    check(
        "show",
        "typo.yml",
        &["zlibb", "PN"],
        expect![[r#"
            exit 1
            error: Nothing PROVIDES 'zlibb'; `bitzel show <config> --recipes` lists the recipes. Close matches:
              zlib
        "#]],
    );
    // A misspelt target on the command line too.
    check(
        "build",
        "typo.yml",
        &["gret", "--dry-run"],
        expect![[r#"
            exit 1
            error: nothing PROVIDES 'gret' (it is a build target); dependency chain: gret; add a recipe that provides it, correct the name, or list it in ASSUME_PROVIDED. Close matches:
              greet
        "#]],
    );
}
