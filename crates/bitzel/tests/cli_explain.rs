//! `bitzel explain` through the built binary, on `testdata/explain` (greet
//! compiles a local source file; app reads what greet stages), run with
//! `--sandbox none` so that no namespaces are needed: the exact stdout a user
//! sees (only the tasks that would run, in graph order, each with why) and the
//! exit code (0 whether or not something would run).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use bitzel_cache::Digest;
use expect_test::expect;

/// A copy of `testdata/explain` in `t/w/explain` (its `../../layers` is a
/// link to the repository's), so a test can edit the recipes and sources.
fn fixture(t: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::os::unix::fs::symlink(
        root.join("layers").canonicalize().unwrap(),
        t.join("layers"),
    )
    .unwrap();
    copy_dir(&root.join("testdata/explain"), &t.join("w/explain"));
    t.join("w/explain/explain.yml")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// `bitzel <verb> <project> --sandbox none` with the build and cache
/// directories under `t`.
fn bitzel(t: &Path, verb: &str, args: &[&str]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_bitzel"))
        .args(["--color", "never", verb])
        .arg(t.join("w/explain/explain.yml"))
        .args(["--sandbox", "none", "--build-dir"])
        .arg(t.join("build"))
        .arg("--cache-dir")
        .arg(t.join("cache"))
        .args(args)
        .env_remove("BITZEL_LOG")
        .output()
        .unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn explain(t: &Path, args: &[&str]) -> Out {
    let o = bitzel(t, "explain", args);
    // Never a failure, never progress: the report is all there is.
    for word in [
        "FAILED",
        "failed",
        " at a time",
        "] started",
        "not examined",
    ] {
        assert!(
            !o.stdout.contains(word) && !o.stderr.contains(word),
            "`{word}` in the output:\n{}\n{}",
            o.stdout,
            o.stderr
        );
    }
    o
}

fn build(t: &Path) {
    let o = bitzel(t, "build", &[]);
    assert_eq!(o.code, 0, "build failed:\n{}", o.stderr);
}

fn greet_source(t: &Path) -> PathBuf {
    t.join("w/explain/meta-explain/recipes-test/greet/files/greeting.txt")
}

#[test]
fn a_never_built_project_lists_every_task_as_never_built() {
    let t = tempfile::tempdir().unwrap();
    fixture(t.path());
    let o = explain(t.path(), &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    expect![[r#"
        app:do_unpack would run:
          never built here before: no earlier result for this task in the cache
        app:do_patch would run:
          never built here before: no earlier result for this task in the cache
        greet:do_unpack would run:
          never built here before: no earlier result for this task in the cache
        greet:do_patch would run:
          never built here before: no earlier result for this task in the cache
        greet:do_configure would run:
          never built here before: no earlier result for this task in the cache
        greet:do_compile would run:
          never built here before: no earlier result for this task in the cache
        greet:do_install would run:
          never built here before: no earlier result for this task in the cache
        greet:do_populate_sysroot would run:
          never built here before: no earlier result for this task in the cache
        app:do_configure would run:
          never built here before: no earlier result for this task in the cache
        app:do_compile would run:
          never built here before: no earlier result for this task in the cache
        app:do_install would run:
          never built here before: no earlier result for this task in the cache
        app:do_populate_sysroot would run:
          never built here before: no earlier result for this task in the cache
    "#]]
    .assert_eq(&o.stdout);
    // Nothing ran: a build afterwards executes every shell task.
    let o = bitzel(t.path(), "build", &[]);
    assert!(o.stderr.contains("\n12 executed, 2 cached"), "{}", o.stderr);
}

#[test]
fn explain_after_a_build_a_changed_source_and_a_changed_script() {
    let t = tempfile::tempdir().unwrap();
    fixture(t.path());
    build(t.path());

    // Nothing to do.
    let o = explain(t.path(), &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    expect![[r#"
        nothing would run: every task's result is in the cache
    "#]]
    .assert_eq(&o.stdout);

    // One changed source: the task that reads it has a changed input; the
    // chain after it would run only if that changes its output (early cutoff).
    std::fs::write(greet_source(t.path()), "bye\n").unwrap();
    let o = explain(t.path(), &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let (old, new) = (
        Digest::of_bytes(b"hello\n").short(),
        Digest::of_bytes(b"bye\n").short(),
    );
    let expected = format!(
        "greet:do_unpack would run:
  input download:greeting.txt changed: {old} -> {new}
greet:do_patch would run if greet:do_unpack changes its output
greet:do_configure would run if greet:do_patch changes its output
greet:do_compile would run if greet:do_configure changes its output
greet:do_install would run if greet:do_compile changes its output
greet:do_populate_sysroot would run if greet:do_install changes its output
app:do_configure would run if greet:do_populate_sysroot changes its output
app:do_compile would run if app:do_configure changes its output
app:do_install would run if app:do_compile changes its output
app:do_populate_sysroot would run if app:do_install changes its output
"
    );
    assert_eq!(o.stdout, expected);

    // A recipe target: its do_build and what that needs, nothing of app.
    let o = explain(t.path(), &["greet"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let greet_part: String = expected.lines().take(7).map(|l| format!("{l}\n")).collect();
    assert_eq!(o.stdout, greet_part);
    // recipe:task: up to that task.
    let o = explain(t.path(), &["greet:do_compile"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let compile_part: String = expected.lines().take(5).map(|l| format!("{l}\n")).collect();
    assert_eq!(o.stdout, compile_part);

    // A task with a change of its own is named as such even after one
    // that would run: its key, with app:do_compile's previous output, misses.
    let app = t
        .path()
        .join("w/explain/meta-explain/recipes-test/app/app_1.0.bb");
    let text = std::fs::read_to_string(&app).unwrap();
    std::fs::write(&app, text.replace("0644 app.out", "0600 app.out")).unwrap();
    let o = explain(t.path(), &["app:do_install"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.starts_with(&compile_part), "{}", o.stdout);
    expect![[r#"
        greet:do_install would run if greet:do_compile changes its output
        greet:do_populate_sysroot would run if greet:do_install changes its output
        app:do_configure would run if greet:do_populate_sysroot changes its output
        app:do_compile would run if app:do_configure changes its output
        app:do_install would run:
          (even if app:do_compile gives its previous output)
          the task script changed:
            -7: 	install -m 0644 app.out /bitzel/work/image/usr/share/app/
            +7: 	install -m 0600 app.out /bitzel/work/image/usr/share/app/
    "#]]
    .assert_eq(&o.stdout[compile_part.len()..]);

    // --json: the same, as one JSON list.
    let o = explain(t.path(), &["--json", "app:do_install"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let after = |task: &str, dep: &str| serde_json::json!({"task": task, "reason": "after", "after": [dep]});
    assert_eq!(
        v,
        serde_json::json!([
            {
                "task": "greet:do_unpack",
                "reason": "changed",
                "assuming": [],
                "changes": [{
                    "kind": "input",
                    "name": "download:greeting.txt",
                    "old": Digest::of_bytes(b"hello\n").to_string(),
                    "new": Digest::of_bytes(b"bye\n").to_string(),
                }],
            },
            after("greet:do_patch", "greet:do_unpack"),
            after("greet:do_configure", "greet:do_patch"),
            after("greet:do_compile", "greet:do_configure"),
            after("greet:do_install", "greet:do_compile"),
            after("greet:do_populate_sysroot", "greet:do_install"),
            after("app:do_configure", "greet:do_populate_sysroot"),
            after("app:do_compile", "app:do_configure"),
            {
                "task": "app:do_install",
                "reason": "changed",
                "assuming": ["app:do_compile"],
                "changes": [{
                    "kind": "script",
                    "lines": [
                        "-7: \tinstall -m 0644 app.out /bitzel/work/image/usr/share/app/",
                        "+7: \tinstall -m 0600 app.out /bitzel/work/image/usr/share/app/",
                    ],
                }],
            },
        ])
    );

    // explain ran nothing: the build afterwards runs the changed tasks.
    let o = bitzel(t.path(), "build", &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains("\n10 executed, 4 cached"), "{}", o.stderr);
    let o = explain(t.path(), &[]);
    assert_eq!(
        o.stdout,
        "nothing would run: every task's result is in the cache\n"
    );
    let o = explain(t.path(), &["--json"]);
    assert_eq!((o.code, o.stdout.as_str()), (0, "[]\n"));
}

/// The explain fixture, built, with the network allowed and `greet`'s
/// `SRC_URI` given one more https entry (`extra`: the recipe's lines after it).
fn with_extra_download(t: &Path, extra: &str) {
    fixture(t);
    build(t);
    let yml = t.join("w/explain/explain.yml");
    let text = std::fs::read_to_string(&yml).unwrap();
    std::fs::write(
        &yml,
        text.replace("BB_NO_NETWORK = \"1\"", "BB_NO_NETWORK = \"0\""),
    )
    .unwrap();
    let recipe = t.join("w/explain/meta-explain/recipes-test/greet/greet_1.0.bb");
    let text = std::fs::read_to_string(&recipe).unwrap();
    std::fs::write(
        &recipe,
        text.replace(
            "SRC_URI = \"file://greeting.txt\"",
            &format!(
                "SRC_URI = \"file://greeting.txt http://127.0.0.1:9/extra.txt;unpack=0\"\n{extra}"
            ),
        ),
    )
    .unwrap();
}

#[test]
fn a_declared_download_needs_no_bytes_to_key_its_consumers() {
    let t = tempfile::tempdir().unwrap();
    with_extra_download(
        t.path(),
        "SRC_URI[sha256sum] = \"0000000000000000000000000000000000000000000000000000000000000000\"",
    );
    // (`bitzel` rather than `explain`: the unpack script's diff holds the word "failed".)
    let o = bitzel(t.path(), "explain", &["greet:do_unpack"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    // Nothing to download first: do_unpack is keyed with the declared identity.
    assert!(!o.stdout.contains("do_fetch"), "{}", o.stdout);
    assert!(
        o.stdout.starts_with("greet:do_unpack would run:\n"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout
            .contains("  input download:extra.txt changed: added ("),
        "{}",
        o.stdout
    );
    assert!(!t.path().join("build/downloads/extra.txt").exists());
}

#[test]
fn an_undeclared_source_to_download_is_named_and_its_dependents_wait_on_it() {
    let t = tempfile::tempdir().unwrap();
    // The network is allowed (a build would download), nothing is in DL_DIR,
    // and no checksum declares what the bytes will be.
    with_extra_download(t.path(), "");
    let o = explain(t.path(), &["greet:do_configure"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let dl = t.path().join("build/downloads/extra.txt");
    assert_eq!(
        o.stdout,
        format!(
            "greet:do_fetch would run:
  `http://127.0.0.1:9/extra.txt;unpack=0` is not in DL_DIR yet ({}): a build downloads it
greet:do_unpack would run if greet:do_fetch changes its output
greet:do_patch would run if greet:do_unpack changes its output
greet:do_configure would run if greet:do_fetch or greet:do_patch changes its output
",
            dl.display()
        )
    );
}

#[test]
fn a_key_that_cannot_be_computed_is_an_error_naming_the_task() {
    let t = tempfile::tempdir().unwrap();
    fixture(t.path());
    build(t.path());
    let recipe = t
        .path()
        .join("w/explain/meta-explain/recipes-test/greet/greet_1.0.bb");
    let mut text = std::fs::read_to_string(&recipe).unwrap();
    text.push_str("do_compile[builtin] = \"nope\"\n");
    std::fs::write(&recipe, text).unwrap();
    let o = bitzel(t.path(), "explain", &["greet"]);
    assert_eq!(o.code, 1, "{}", o.stderr);
    // Nothing before it would run; nothing after it is examined.
    assert_eq!(o.stdout, "");
    let tail: Vec<&str> = o.stderr.lines().rev().take(2).collect();
    assert_eq!(
        tail,
        [
            "3 task(s) depending on it not examined",
            "error: cannot tell whether greet:do_compile would run: greet:do_compile: \
             unknown built-in `nope` in do_compile[builtin] (bitzel knows fetch, unpack, patch)",
        ],
        "{}",
        o.stderr
    );
}
