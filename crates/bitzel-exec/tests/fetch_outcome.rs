//! `do_fetch` through the real executor (`BuildExecutor::execute`): an
//! entry with a declared checksum is a fixed-output download, only declared
//! (its identity keys the later tasks; nothing is read or fetched, so the
//! fetch is `Cached` whatever `DL_DIR` holds); a `file://` entry of the
//! layer is read and digested at once. Fetching the bytes when a task needs
//! them is tested through the binary (`crates/bitzel/tests/cli_fetch.rs`).
//!
//! The `https://` entry's bytes would come from a `file://` PREMIRROR in the
//! test's temp dir and `BB_NO_NETWORK` is set, so nothing touches the network.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use bitzel_cache::{Cache, Digest};
use bitzel_exec::builtin::Fetched;
use bitzel_exec::executor::{fixed_output_digest, BuildExecutor, HostDirs, HostTools, TaskOutput};
use bitzel_graph::{CancelToken, Executor, Outcome, TaskNode, TaskResult};
use bitzel_meta::{DataStore, Recipe};
use bitzel_sandbox::NoneBackend;
use sha2::{Digest as _, Sha256};

const TARBALL: &[u8] = b"pretend this is pkg-1.0.tar.gz";
const NAME: &str = "pkg-1.0.tar.gz";

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A recipe whose only `SRC_URI` entry is an https tarball, mirrored in `mirror`.
fn recipe(mirror: &Path) -> Recipe {
    let mut d = DataStore::new();
    d.set_var(
        "SRC_URI",
        format!("https://example.invalid/downloads/{NAME}").into(),
        None,
    );
    d.set_var_flag("SRC_URI", "sha256sum", sha256_hex(TARBALL).into(), None);
    d.set_var(
        "PREMIRRORS",
        format!("https://.*/.* file://{}/", mirror.display()).into(),
        None,
    );
    d.set_var_flag("do_fetch", "builtin", "fetch".into(), None);
    Recipe {
        file: "/layers/meta-test/recipes/pkg/pkg_1.0.bb".into(),
        variant: None,
        layer: "test".into(),
        pn: "pkg".into(),
        pv: "1.0".into(),
        pr: "r0".into(),
        skip: None,
        data: d,
        inputs: Vec::new(),
        appends: Vec::new(),
    }
}

struct Setup {
    _tmp: tempfile::TempDir,
    dl: std::path::PathBuf,
    recipes: Vec<Recipe>,
    cache: Cache,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let mirror = tmp.path().join("mirror");
    std::fs::create_dir_all(&mirror).unwrap();
    std::fs::write(mirror.join(NAME), TARBALL).unwrap();
    let cache = Cache::open(&tmp.path().join("cache")).unwrap();
    Setup {
        dl: tmp.path().join("downloads"),
        recipes: vec![recipe(&mirror)],
        cache,
        _tmp: tmp,
    }
}

fn run_fetch(s: &Setup) -> TaskResult<TaskOutput> {
    let build_dir = s.dl.with_file_name("build");
    let exec = BuildExecutor {
        no_network: true,
        timeout: None,
        explain_only: false,
        devshell: None,
        force: Default::default(),
        remote: None,
        ..BuildExecutor::new(
            &s.recipes,
            &s.cache,
            &NoneBackend,
            HostDirs {
                build_dir: build_dir.clone(),
                dl_dir: s.dl.clone(),
            },
            HostTools {
                dir: build_dir.join("tmp/hosttools"),
                digest: Digest::of_bytes(b"no host tools"),
                root_paths: Vec::new(),
                root_digest: Digest::default(),
                rootfs: None,
            },
        )
    };
    let task = TaskNode::new(0, 0, "pkg", "do_fetch");
    match exec.execute(&task, &[], &CancelToken::new()) {
        Ok(r) => r,
        Err(f) => panic!("do_fetch failed: {f:?}"),
    }
}

fn only_download(r: &TaskResult<TaskOutput>) -> &Fetched {
    assert_eq!(
        r.output.downloads.keys().collect::<Vec<_>>(),
        [NAME],
        "{r:?}"
    );
    &r.output.downloads[NAME].fetched
}

#[test]
fn a_declared_download_is_only_declared_by_do_fetch() {
    let s = setup();
    let r = run_fetch(&s);
    assert_eq!(r.outcome, Outcome::Cached);
    let dl = &r.output.downloads[NAME];
    assert_eq!(
        dl.digest,
        fixed_output_digest(&format!("sha256:{}", sha256_hex(TARBALL)))
    );
    assert!(
        dl.pending.is_some(),
        "its bytes come when a task needs them"
    );
    assert_eq!(only_download(&r).local_path, s.dl.join(NAME));
    assert!(!only_download(&r).downloaded);
    assert!(!s.dl.exists(), "do_fetch touched DL_DIR: {:?}", s.dl);
}

#[test]
fn the_identity_is_the_same_whatever_dl_dir_holds() {
    let s = setup();
    let without = run_fetch(&s);
    std::fs::create_dir_all(&s.dl).unwrap();
    std::fs::write(s.dl.join(NAME), b"a truncated download").unwrap();
    let with_bad = run_fetch(&s);
    assert_eq!(with_bad.outcome, Outcome::Cached);
    assert_eq!(
        with_bad.output.downloads[NAME].digest,
        without.output.downloads[NAME].digest
    );
    // Not read, so not moved aside either: that happens when a task needs it.
    assert_eq!(
        std::fs::read(s.dl.join(NAME)).unwrap(),
        b"a truncated download"
    );
}

#[test]
fn local_file_entries_alone_are_cached() {
    let s = setup();
    let files = s.dl.with_file_name("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("defconfig"), "CONFIG_X=y\n").unwrap();
    let mut recipes = s.recipes.clone();
    recipes[0]
        .data
        .set_var("SRC_URI", "file://defconfig".into(), None);
    recipes[0]
        .data
        .set_var("FILESPATH", files.display().to_string().into(), None);
    let s = Setup { recipes, ..s };
    let r = run_fetch(&s);
    assert_eq!(r.outcome, Outcome::Cached);
    let f = &r.output.downloads["defconfig"].fetched;
    assert!(!f.downloaded);
    assert!(r.output.downloads["defconfig"].pending.is_none());
    assert_eq!(f.local_path, files.join("defconfig"));
}
