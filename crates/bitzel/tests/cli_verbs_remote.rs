//! `-f` and `-c cleansstate` with a remote cache, through the built binary
//! (`testdata/verbs/project.yml`, the native sandbox: a remote is never used
//! with `--sandbox none`), against the in-process object store of
//! bitzel-cache's remote tests: a forced run replaces the local entry and
//! uploads nothing for it, so the remote keeps the old result; after
//! `cleansstate` the next build restores that old result from the remote.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../bitzel-cache/tests/remote_common/mod.rs"]
mod remote_common;

use std::path::{Path, PathBuf};
use std::process::Command;

use bitzel_cache::{ActionResult, Cache};

mod common;
use common::Run;

fn bitzel(dir: &Path, url: &str, args: &[&str]) -> Run {
    let root: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(env!("CARGO_BIN_EXE_bitzel"))
        .args(["--color", "never", "build", "testdata/verbs/project.yml"])
        .args(["--sandbox", "native", "--remote-cache", url, "--build-dir"])
        .arg(dir.join("build"))
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .args(args)
        .current_dir(&root)
        .env_remove("BITZEL_LOG")
        .output()
        .unwrap();
    Run::from(out)
}

fn stamp_entry(dir: &Path) -> (bitzel_cache::ActionKey, ActionResult) {
    let cache = Cache::open(&dir.join("cache")).unwrap();
    let key = cache.history("app:do_stamp").unwrap()[0].key;
    let r = cache.local().read_action(&key).unwrap().unwrap();
    (key, r)
}

#[test]
fn forced_results_stay_local_and_cleansstate_restores_from_the_remote() {
    let dav = remote_common::MiniDav::start();
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();

    let r = bitzel(dir, &dav.url, &["app", "-c", "stamp"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let (key, first) = stamp_entry(dir);
    let put_entry = format!("PUT /ac/{}", key.to_hex());
    assert!(dav.requests().contains(&put_entry), "{:?}", dav.requests());
    let seen = dav.requests().len();

    let r = bitzel(dir, &dav.url, &["app", "-c", "stamp", "-f"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("\nforced (-f): app:do_stamp ran again; its result replaced the local cache entry (the remote cache keeps its entry)\n"),
        "{}",
        r.stderr
    );
    let (_, forced) = stamp_entry(dir);
    assert_ne!(forced.output, first.output);
    let later = &dav.requests()[seen..];
    assert!(!later.contains(&put_entry), "{later:?}");

    // cleansstate forgets the local entries and says where they come back from.
    let r = bitzel(dir, &dav.url, &["app", "-c", "cleansstate"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout.lines().last().unwrap(),
        format!(
            "app: the next build restores its tasks from the remote cache {} when it has them, else runs them again (the remote's entries are never removed)",
            dav.url
        )
    );
    assert!(Cache::open(&dir.join("cache"))
        .unwrap()
        .local()
        .read_action(&key)
        .unwrap()
        .is_none());

    // The next build restores app:do_stamp from the remote: the old result.
    let r = bitzel(dir, &dav.url, &["app", "-c", "stamp"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .lines()
            .any(|l| l.contains("cached   app:do_stamp")),
        "{}",
        r.stderr
    );
    // (written back into the local cache under the same key)
    let restored = Cache::open(&dir.join("cache"))
        .unwrap()
        .local()
        .read_action(&key)
        .unwrap()
        .unwrap();
    assert_eq!(restored.output, first.output);
}
