//! Shared by the tests that drive `BuildExecutor` over a real workspace:
//! a checkout (copies of `layers/meta-bitzel` and `testdata/exec/meta-tiny`
//! in a directory of the test's choosing), parsed by `bitzel-meta`, planned
//! by `bitzel-graph`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use bitzel_graph::{build_graph, prefs_from_workspace, recipes_from_workspace, Target, TaskGraph};
use bitzel_meta::{load_workspace, ConfInput, FsLoader, ParseOptions, Workspace};

/// The host tools the fixture's tasks use (the sandbox's whole `PATH`).
pub const HOSTTOOLS: &str = "sh cat cp mkdir rm echo pwd ls ln mv test true false tar gzip \
    install touch sed find chmod";

/// `local.conf` of every fixture build (plus a test's own lines).
pub fn local_conf(extra: &str) -> String {
    format!(
        "MACHINE ??= \"qemux86-64\"\nDISTRO ??= \"bitzel\"\nHOSTTOOLS = \"{HOSTTOOLS}\"\n\
         HOSTTOOLS_NONFATAL = \"\"\n{extra}"
    )
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Copy `src` to `dst` (files, directories, symlinks).
pub fn copy_tree(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for e in fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let (from, to) = (e.path(), dst.join(e.file_name()));
        let t = e.file_type().unwrap();
        if t.is_dir() {
            copy_tree(&from, &to);
        } else if t.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&from).unwrap(), &to).unwrap();
        } else {
            fs::copy(&from, &to).unwrap();
        }
    }
}

/// A checkout of the two fixture layers at `dir`; returns `dir`.
pub fn checkout(dir: &Path) -> PathBuf {
    let root = repo_root();
    copy_tree(&root.join("layers/meta-bitzel"), &dir.join("meta-bitzel"));
    copy_tree(
        &root.join("testdata/exec/meta-tiny"),
        &dir.join("meta-tiny"),
    );
    dir.to_path_buf()
}

/// The directory of the `tiny` recipe (its `files/` is below it).
pub fn recipe_dir(checkout: &Path) -> PathBuf {
    checkout.join("meta-tiny/recipes-test/tiny")
}

/// Parse the checkout with `topdir` as the build directory; any error
/// diagnostic fails the test.
pub fn load(
    checkout: &Path,
    topdir: &Path,
    local_conf_extra: &str,
    env: BTreeMap<String, String>,
    jobs: Option<usize>,
) -> Workspace {
    let c = checkout.display();
    let input = ConfInput {
        topdir: topdir.to_path_buf(),
        bblayers_conf: Some(format!(
            "BBPATH = \"${{TOPDIR}}\"\nBBFILES ?= \"\"\nBBLAYERS ?= \"{c}/meta-bitzel {c}/meta-tiny\"\n"
        )),
        local_conf: Some(local_conf(local_conf_extra)),
        env,
    };
    let opts = ParseOptions {
        cache_dir: None,
        jobs,
        ..Default::default()
    };
    let ws = load_workspace(&input, &FsLoader, &opts).unwrap();
    let errors: Vec<String> = ws
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.to_string())
        .collect();
    assert!(errors.is_empty(), "fixture diagnostics: {errors:#?}");
    ws
}

/// The task graph of `tiny:do_build`.
pub fn graph(ws: &Workspace) -> TaskGraph {
    let recipes = recipes_from_workspace(ws);
    let prefs = prefs_from_workspace(ws);
    build_graph(&recipes, &prefs, &[Target::parse("tiny", "do_build")])
        .unwrap()
        .graph
}
