//! `do_fetch` through the real executor (`BuildExecutor::execute`): a fetch
//! that brings something into `DL_DIR` is reported as `Executed`, one that
//! only verifies what `DL_DIR` holds as `Cached` — decided from what the
//! fetch did, not from which names existed before (a file with the wrong
//! checksum is there but gets downloaded again).
//!
//! The `https://` entry's bytes come from a `file://` PREMIRROR in the test's
//! temp dir and `BB_NO_NETWORK` is set, so nothing touches the network.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Mutex;

use bitzel_cache::{Cache, Digest};
use bitzel_exec::builtin::Fetched;
use bitzel_exec::executor::{BuildExecutor, Counters, HostDirs, HostTools, TaskOutput};
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
        recipes: &s.recipes,
        cache: &s.cache,
        sandbox: &NoneBackend,
        dirs: HostDirs {
            build_dir: build_dir.clone(),
            dl_dir: s.dl.clone(),
        },
        tools: HostTools {
            dir: build_dir.join("tmp/hosttools"),
            digest: Digest::of_bytes(b"no host tools"),
            root_paths: Vec::new(),
            root_digest: Digest::default(),
        },
        no_network: true,
        timeout: None,
        counters: Counters::default(),
        misses: Mutex::new(Vec::new()),
        explain_only: false,
        would_run: Default::default(),
        devshell: None,
        force: Default::default(),
        devshell_status: std::sync::Mutex::new(None),
        python: bitzel_exec::python::PythonSetup::none(),
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
fn fetch_into_an_empty_dl_dir_is_executed_and_again_is_cached() {
    let s = setup();
    let first = run_fetch(&s);
    assert_eq!(first.outcome, Outcome::Executed);
    assert!(only_download(&first).downloaded);
    assert_eq!(std::fs::read(s.dl.join(NAME)).unwrap(), TARBALL);

    let second = run_fetch(&s);
    assert_eq!(second.outcome, Outcome::Cached);
    assert!(!only_download(&second).downloaded);
    assert_eq!(
        only_download(&second).digest,
        only_download(&first).digest,
        "same content, same digest, whichever way it was obtained"
    );
}

#[test]
fn a_bad_checksum_file_in_dl_dir_is_fetched_again_and_reported_executed() {
    let s = setup();
    std::fs::create_dir_all(&s.dl).unwrap();
    std::fs::write(s.dl.join(NAME), b"a truncated download").unwrap();

    // The name exists, but its content is wrong: the fetch really downloads.
    let r = run_fetch(&s);
    assert_eq!(r.outcome, Outcome::Executed);
    assert!(only_download(&r).downloaded);
    assert_eq!(std::fs::read(s.dl.join(NAME)).unwrap(), TARBALL);
    let aside = s.dl.join(format!(
        "{NAME}_bad-checksum_{}",
        sha256_hex(b"a truncated download")
    ));
    assert_eq!(std::fs::read(aside).unwrap(), b"a truncated download");

    assert_eq!(run_fetch(&s).outcome, Outcome::Cached);
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
    assert_eq!(f.local_path, files.join("defconfig"));
}
