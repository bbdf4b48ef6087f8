//! `--sandbox none` runs real shell tasks end to end through the built binary
//! (testdata/none-build): the fixed sandbox paths are rewritten to a per-task
//! host root, the work directory is a flattened copy of the recipe's layers,
//! and each task's output is the delta an overlay upperdir would have held —
//! the same trees the native backend captures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use bitzel_cache::{Cache, Digest, EntryKind, Lookup};

fn project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/none-build/build.yml")
        .canonicalize()
        .unwrap()
}

struct Run {
    code: i32,
    stderr: String,
    summary: serde_json::Value,
}

/// `bitzel build` of the fixture with `--sandbox <sandbox>` into `dir/{build,cache}`.
fn build(dir: &Path, sandbox: &str, extra: &[&str]) -> Run {
    let summary = dir.join("summary.json");
    let _ = std::fs::remove_file(&summary);
    let out = Command::new(env!("CARGO_BIN_EXE_bitzel"))
        .args(["--color", "never", "build"])
        .arg(project())
        .args(["--sandbox", sandbox, "--build-dir"])
        .arg(dir.join("build"))
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .arg("--summary-json")
        .arg(&summary)
        .args(extra)
        .env_remove("BITZEL_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let code = out.status.code().unwrap_or(-1);
    assert_eq!(
        code, 0,
        "bitzel build --sandbox {sandbox} failed:\n{stderr}"
    );
    let summary = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    Run {
        code,
        stderr,
        summary,
    }
}

/// The output tree digest of the newest cached result of `label`.
fn output_of(cache: &Cache, label: &str) -> Digest {
    let key = cache
        .history(label)
        .unwrap()
        .first()
        .unwrap_or_else(|| panic!("no cache entry for {label}"))
        .key;
    match cache.lookup(&key).unwrap() {
        Lookup::Hit(r) => r.output,
        Lookup::Miss(why) => panic!("{label}: {why:?}"),
    }
}

const SHELL_TASKS: [&str; 13] = [
    "greet:do_unpack",
    "greet:do_patch",
    "greet:do_configure",
    "greet:do_compile",
    "greet:do_install",
    "greet:do_populate_sysroot",
    "app:do_configure",
    "app:do_compile",
    "app:do_install",
    "app:do_populate_sysroot",
    "app:do_deploy",
    "app:do_unpack",
    "app:do_patch",
];

#[test]
fn none_runs_shell_tasks_for_real_and_captures_what_an_overlay_would() {
    let t = tempfile::tempdir().unwrap();
    let none = t.path().join("none");

    let first = build(&none, "none", &[]);
    assert_eq!(first.summary["failed"], 0, "{}", first.stderr);
    assert_eq!(first.summary["executed"], 13, "{}", first.stderr);
    assert!(
        first.stderr.contains("WITHOUT a sandbox"),
        "{}",
        first.stderr
    );

    // The deployed files show the chain: do_compile changed and deleted what
    // do_configure made, and read greet's sysroot; do_deploy saw the result.
    let deploy = none.join("build/tmp/deploy/images/qemux86-64");
    let read = |f: &str| std::fs::read_to_string(deploy.join(f)).unwrap();
    assert_eq!(read("modify.txt"), "one\ntwo\n");
    assert_eq!(read("version.txt"), "greet 1.0\n");
    assert_eq!(read("bye.h"), "#define GREETING \"bye from greet\"\n");
    assert_eq!(
        read("listing.txt"),
        ".\n./bye.h\n./greet.h\n./keep.txt\n./modify.txt\n./replace\n./replace/new\n./version.txt\n"
    );
    // Nothing of the per-task host roots is left behind.
    let scratch = none.join("build/tmp/sandbox");
    let left: Vec<_> = std::fs::read_dir(&scratch)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");

    // A rebuild executes nothing; a remote cache is not used with `none`.
    let again = build(&none, "none", &["--remote-cache", "http://127.0.0.1:9/"]);
    assert_eq!(again.summary["executed"], 0, "{}", again.stderr);
    assert_eq!(again.summary["cached"], 15, "{}", again.stderr);
    assert!(
        again
            .stderr
            .contains("remote cache not used with --sandbox none"),
        "{}",
        again.stderr
    );
    assert_eq!(again.summary["uploads"], 0);

    // app:do_compile's captured delta: the appended file in full, the
    // deletions as whiteouts, the re-made directory opaque, the chmod.
    let cache = Cache::open(&none.join("cache")).unwrap();
    let tree = cache
        .read_tree(&output_of(&cache, "app:do_compile"))
        .unwrap();
    let kinds: Vec<String> = tree
        .entries()
        .iter()
        .map(|e| {
            let k = match &e.kind {
                EntryKind::File { mode, .. } => format!("file {mode:o}"),
                EntryKind::Dir { opaque: true, .. } => "opaque dir".into(),
                EntryKind::Dir { .. } => "dir".into(),
                EntryKind::Symlink { target } => format!("-> {target}"),
                EntryKind::Whiteout => "whiteout".into(),
            };
            format!("{} {k}", e.path)
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "app-1.0 dir",
            "app-1.0/bye.h file 644",
            "app-1.0/deldir whiteout",
            "app-1.0/delete.txt whiteout",
            "app-1.0/keep.txt file 600",
            "app-1.0/modify.txt file 644",
            "app-1.0/replace opaque dir",
            "app-1.0/replace/new file 644",
            "app-1.0/version.txt file 644",
        ]
    );

    // The native backend captures the very same trees (the same output
    // digests), so the recipe's layers mean the same whichever ran them.
    let native = t.path().join("native");
    let n = build(&native, "native", &[]);
    assert_eq!(n.code, 0);
    let native_cache = Cache::open(&native.join("cache")).unwrap();
    for label in SHELL_TASKS {
        assert_eq!(
            output_of(&cache, label),
            output_of(&native_cache, label),
            "{label}: the none backend's delta differs from the overlay upperdir"
        );
    }
}
