//! Fixed-output downloads through the built binary, on a copy of
//! `testdata/fetch/` (`--sandbox none`, `BB_NO_NETWORK`): `payload`'s https
//! entry has a declared sha256, so its identity keys `do_unpack` and later
//! tasks without its bytes; the bytes are fetched (from `DL_DIR` or the
//! recipe's `file://` PREMIRROR) and verified only when one of them runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

mod common;
use common::{repo_root, Run};

const NAME: &str = "payload-1.0.txt";
const VERSION_A: &[u8] = b"payload version A\n";
const RECIPE: &str = "testdata/fetch/meta-fetch/recipes-test/payload/payload_1.0.bb";
const MIRRORED: &str = "testdata/fetch/meta-fetch/recipes-test/payload/mirror/payload-1.0.txt";

fn sha256_hex(data: &[u8]) -> String {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), data).unwrap();
    bitzel_exec::builtin::file_digests(f.path()).unwrap().sha256
}

/// A private copy of the fixture (the tests edit the recipe), its build,
/// cache and download directories.
struct Project {
    tmp: tempfile::TempDir,
}

impl Project {
    fn new() -> Project {
        let tmp = tempfile::tempdir().unwrap();
        let root = repo_root();
        std::fs::create_dir_all(tmp.path().join("testdata")).unwrap();
        let st = Command::new("cp")
            .arg("-R")
            .arg(root.join("testdata/fetch"))
            .arg(tmp.path().join("testdata/fetch"))
            .status()
            .unwrap();
        assert!(st.success());
        std::os::unix::fs::symlink(root.join("layers"), tmp.path().join("layers")).unwrap();
        let p = Project { tmp };
        std::fs::create_dir_all(p.dl_dir()).unwrap();
        std::fs::write(p.dl_dir().join(NAME), VERSION_A).unwrap();
        p
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }
    fn dl_dir(&self) -> PathBuf {
        self.path("build/downloads")
    }

    /// `bitzel build testdata/fetch/project.yml --sandbox none`, with a summary.
    fn build(&self) -> Run {
        let _ = std::fs::remove_file(self.path("summary.json"));
        let out = Command::new(env!("CARGO_BIN_EXE_bitzel"))
            .args(["--color", "never", "build", "testdata/fetch/project.yml"])
            .args(["--sandbox", "none", "--build-dir"])
            .arg(self.path("build"))
            .arg("--cache-dir")
            .arg(self.path("cache"))
            .arg("--summary-json")
            .arg(self.path("summary.json"))
            .current_dir(self.tmp.path())
            .env_remove("BITZEL_LOG")
            .env_remove("BITZEL_CACHE_DIR")
            .output()
            .unwrap();
        out.into()
    }

    fn summary(&self, field: &str) -> u64 {
        let s = std::fs::read_to_string(self.path("summary.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        v[field]
            .as_u64()
            .unwrap_or_else(|| panic!("{field} in {s}"))
    }

    fn declare(&self, sha256: &str) {
        let p = self.path(RECIPE);
        let text = std::fs::read_to_string(&p).unwrap();
        let mut out = String::new();
        for line in text.lines() {
            if line.starts_with("SRC_URI[sha256sum]") {
                out.push_str(&format!("SRC_URI[sha256sum] = \"{sha256}\"\n"));
            } else {
                out.push_str(line);
                out.push('\n');
            }
        }
        std::fs::write(p, out).unwrap();
    }
}

/// `executed payload:do_x` lines of the progress output, sorted.
fn executed(stderr: &str) -> Vec<String> {
    let mut v: Vec<String> = stderr
        .lines()
        .filter_map(|l| l.split_once("] executed ").map(|(_, r)| r))
        .map(|r| r.split(" (").next().unwrap_or(r).trim().to_string())
        .collect();
    v.sort();
    v
}

fn ok(r: &Run) {
    assert_eq!(r.code, 0, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
}

const FROM_UNPACK_ON: [&str; 6] = [
    "payload:do_compile",
    "payload:do_configure",
    "payload:do_install",
    "payload:do_patch",
    "payload:do_populate_sysroot",
    "payload:do_unpack",
];

#[test]
fn a_declared_download_is_read_only_when_a_task_that_needs_it_runs() {
    let p = Project::new();
    let r = p.build();
    ok(&r);
    assert_eq!(executed(&r.stderr), FROM_UNPACK_ON);
    assert!(
        r.stderr.contains("[1/9] cached   payload:do_fetch"),
        "{}",
        r.stderr
    );
    // Found in DL_DIR and verified: nothing downloaded, nothing avoided.
    assert_eq!(p.summary("downloads_done"), 0);
    assert_eq!(p.summary("downloads_avoided"), 0);

    // Without DL_DIR at all, every task is a cache hit: the bytes are not needed.
    std::fs::remove_dir_all(p.dl_dir()).unwrap();
    let r = p.build();
    ok(&r);
    assert_eq!(executed(&r.stderr), Vec::<String>::new());
    assert_eq!(p.summary("executed"), 0);
    assert_eq!(p.summary("downloads_done"), 0);
    assert_eq!(p.summary("downloads_bytes"), 0);
    assert_eq!(p.summary("downloads_avoided"), 1);
    assert!(!p.dl_dir().join(NAME).exists());
    assert!(
        r.stderr
            .contains("sources: 0 downloaded (0 bytes), 1 not needed"),
        "{}",
        r.stderr
    );
}

#[test]
fn changing_the_declared_sha256_reruns_exactly_the_tasks_from_do_unpack_on() {
    let p = Project::new();
    ok(&p.build());
    let b = std::fs::read(p.path(MIRRORED)).unwrap();
    p.declare(&sha256_hex(&b));
    let r = p.build();
    ok(&r);
    assert_eq!(executed(&r.stderr), FROM_UNPACK_ON);
    // Version A in DL_DIR had the wrong checksum: moved aside as BitBake
    // does, and version B copied from the file:// premirror.
    assert_eq!(p.summary("downloads_done"), 1);
    assert_eq!(p.summary("downloads_bytes"), b.len() as u64);
    assert_eq!(std::fs::read(p.dl_dir().join(NAME)).unwrap(), b);
    let aside = p
        .dl_dir()
        .join(format!("{NAME}_bad-checksum_{}", sha256_hex(VERSION_A)));
    assert_eq!(std::fs::read(aside).unwrap(), VERSION_A);
}

#[test]
fn a_wrong_checksum_with_the_file_present_fails_naming_url_and_both_checksums() {
    let p = Project::new();
    std::fs::remove_file(p.path(MIRRORED)).unwrap();
    let wrong = "0".repeat(64);
    p.declare(&wrong);
    let r = p.build();
    assert_eq!(r.code, 1, "{}", r.stderr);
    let actual = sha256_hex(VERSION_A);
    let want = format!(
        "checksum mismatch for `https://downloads.example.invalid/payload/{NAME}` (from {} (already in DL_DIR)): expected sha256 {wrong}, got {actual}",
        p.dl_dir().join(NAME).display()
    );
    assert!(r.stderr.contains(&want), "no `{want}` in:\n{}", r.stderr);
    assert!(
        r.stderr.contains("task payload:do_unpack failed"),
        "the task that needed the bytes fails: {}",
        r.stderr
    );
    let aside = p.dl_dir().join(format!("{NAME}_bad-checksum_{actual}"));
    assert_eq!(std::fs::read(&aside).unwrap(), VERSION_A);
    assert!(!p.dl_dir().join(NAME).exists());
}

#[test]
fn bitzel_fetch_fills_an_empty_dl_dir_from_a_premirror_and_the_build_then_needs_nothing_else() {
    let p = Project::new();
    std::fs::remove_dir_all(p.dl_dir()).unwrap();
    let b = std::fs::read(p.path(MIRRORED)).unwrap();
    p.declare(&sha256_hex(&b));
    let out = Command::new(env!("CARGO_BIN_EXE_bitzel"))
        .args(["--color", "never", "fetch", "testdata/fetch/project.yml"])
        .arg("--build-dir")
        .arg(p.path("build"))
        .current_dir(p.tmp.path())
        .env_remove("BITZEL_LOG")
        .output()
        .unwrap();
    let r: Run = out.into();
    ok(&r);
    assert!(
        r.stderr.contains("payload: payload-1.0.txt (fetched)"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(
            "1 recipes: 1 downloads fetched (38 bytes), 0 already present, 0 recipes failed"
        ),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read(p.dl_dir().join(NAME)).unwrap(), b);

    // The mirror gone, BB_NO_NETWORK set: the build takes it from DL_DIR.
    std::fs::remove_file(p.path(MIRRORED)).unwrap();
    let r = p.build();
    ok(&r);
    assert_eq!(executed(&r.stderr), FROM_UNPACK_ON);
    assert_eq!(p.summary("downloads_done"), 0);
}
