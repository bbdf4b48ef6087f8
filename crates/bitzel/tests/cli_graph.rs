//! `bitzel graph` end to end over `testdata/graph/graph.yml`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use expect_test::expect;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/graph")
        .canonicalize()
        .unwrap()
}

/// Run `bitzel graph <graph.yml> --build-dir <tmp> args...`; (status, stdout, stderr)
/// with the fixture root replaced by `$ROOT`.
fn graph(args: &[&str]) -> (i32, String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let r = root();
    let out = Command::new(env!("CARGO_BIN_EXE_bitzel"))
        .arg("graph")
        .arg(r.join("graph.yml"))
        .arg("--build-dir")
        .arg(tmp.path())
        .args(args)
        .env_remove("BITZEL_LOG")
        .output()
        .unwrap();
    let rs = r.to_string_lossy().to_string();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).replace(&rs, "$ROOT"),
        String::from_utf8_lossy(&out.stderr).replace(&rs, "$ROOT"),
    )
}

#[test]
fn dot_output_names_nodes_like_bitbake() {
    let (code, out, err) = graph(&["quilt-native:do_unpack"]);
    assert_eq!(code, 0, "{err}");
    expect![[r#"
        digraph depends {
        "quilt-native.do_fetch" [label="quilt-native do_fetch\n:0.67-r0\nvirtual:native:$ROOT/meta-core/recipes-devtools/quilt/quilt_0.67.bb"]
        "quilt-native.do_unpack" [label="quilt-native do_unpack\n:0.67-r0\nvirtual:native:$ROOT/meta-core/recipes-devtools/quilt/quilt_0.67.bb"]
        "quilt-native.do_unpack" -> "quilt-native.do_fetch"
        }
    "#]]
    .assert_eq(&out);
    // The configured target (busybox) when none is given.
    let (code, out, err) = graph(&[]);
    assert_eq!(code, 0, "{err}");
    let nodes = out.lines().filter(|l| l.contains("[label=")).count();
    let edges = out.lines().filter(|l| l.contains("\" -> \"")).count();
    // The same 48 tasks and 56 edges as the fixture snapshot in bitzel-graph.
    assert_eq!((nodes, edges), (48, 56), "{out}");
}

#[test]
fn json_output_has_nodes_edges_and_providers() {
    let (code, out, err) = graph(&["busybox:do_prepare_recipe_sysroot", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["targets"][0], "busybox.do_prepare_recipe_sysroot");
    let edges: Vec<String> = v["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["from"] == "busybox.do_prepare_recipe_sysroot")
        .map(|e| e["to"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        edges,
        vec![
            "busybox.do_fetch",
            "musl.do_populate_sysroot",
            "quilt-native.do_populate_sysroot",
            "zlib.do_populate_sysroot"
        ]
    );
    let libc = v["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "virtual/libc")
        .unwrap();
    assert_eq!(libc["chosen"], "musl");
    assert_eq!(libc["by_preference"], true);
}

#[test]
fn explain_provider() {
    let (code, out, err) = graph(&["--explain-provider", "zlib"]);
    assert_eq!(code, 0, "{err}");
    expect![[r#"
        zlib (build-time name)
          candidates:
            zlib :1.2.13-r0 (layer gcore priority 5, DEFAULT_PREFERENCE 0) $ROOT/meta-core/recipes-core/zlib/zlib_1.2.13.bb
            zlib :1.3.1-r0 (layer gcore priority 5, DEFAULT_PREFERENCE 0) $ROOT/meta-core/recipes-core/zlib/zlib_1.3.1.bb
            zlib :1.1-r0 (layer gextra priority 10, DEFAULT_PREFERENCE 0) $ROOT/meta-extra/recipes-core/zlib/zlib_1.1.bb
          eligible, best first: zlib 1.1
          chosen: zlib 1.1 ($ROOT/meta-extra/recipes-core/zlib/zlib_1.1.bb)
          because:
            - zlib: version 1.1 chosen (highest DEFAULT_PREFERENCE, then highest version, in the highest-priority layer; also available: 1.2.13, 1.3.1)
    "#]]
    .assert_eq(&out);
}

#[test]
fn dry_run_lists_the_execution_order_and_json_ends_with_counts() {
    let (code, out, err) = graph(&["zlib:do_compile", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    expect![[r#"
        zlib:do_fetch
        zlib:do_unpack
        zlib:do_patch
        zlib:do_prepare_recipe_sysroot
        zlib:do_configure
        zlib:do_compile
    "#]]
    .assert_eq(&out);
    let (code, out, err) = graph(&["zlib:do_compile", "--dry-run", "--json"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.iter().all(|l| l["event"].is_string()));
    let last = lines.last().unwrap();
    assert_eq!(last["event"], "build_finished");
    assert_eq!(last["executed"], 0);
    assert_eq!(last["cached"], 0);
    assert_eq!(last["failed"], 0);
    assert!(last["wall_s"].is_number());
}

#[test]
fn missing_provider_is_an_error_with_location() {
    let (code, out, err) = graph(&["broken"]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    expect![[r#"
        error: nothing PROVIDES 'does-not-exist' (broken asks for it in DEPENDS at $ROOT/meta-core/recipes-test/broken/broken_1.0.bb:2); dependency chain: broken -> does-not-exist; add a recipe that provides it, correct the name, or list it in ASSUME_PROVIDED
    "#]]
    .assert_eq(&err);
}
