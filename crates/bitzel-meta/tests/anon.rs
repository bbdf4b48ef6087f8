//! Anonymous Python functions run at the end of each recipe's parse
//! (fixtures in `testdata/meta/anon/`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bitzel_meta::{
    emit_env, load_workspace, ConfInput, EmitOptions, FsLoader, ParseOptions, Workspace,
};
use expect_test::{expect, Expect};

fn load() -> (Workspace, String) {
    let r: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/meta/anon")
        .canonicalize()
        .unwrap();
    let rs = r.to_string_lossy().to_string();
    let input = ConfInput {
        topdir: r.join("build"),
        bblayers_conf: Some(format!(
            "BBPATH = \"${{TOPDIR}}\"\nBBLAYERS = \"{rs}/meta-anon {rs}/meta-broken\"\n"
        )),
        local_conf: Some(String::new()),
        env: BTreeMap::new(),
    };
    let ws = load_workspace(&input, &FsLoader, &ParseOptions::default()).unwrap();
    (ws, rs)
}

fn show(ws: &Workspace, root: &str, pn: &str, names: &[&str]) -> String {
    let r = ws
        .recipes
        .iter()
        .find(|r| r.pn == pn)
        .unwrap_or_else(|| panic!("no recipe {pn}"));
    emit_env(
        &r.data,
        &EmitOptions {
            history: false,
            vars: Some(names.iter().map(|s| s.to_string()).collect()),
        },
    )
    .replace(root, "<ROOT>")
}

fn diags(ws: &Workspace, root: &str, file_part: &str) -> String {
    ws.diagnostics
        .iter()
        .filter(|d| d.file.to_string_lossy().contains(file_part))
        .map(|d| format!("{d}\n").replace(root, "<ROOT>"))
        .collect()
}

fn check(actual: String, e: Expect) {
    e.assert_eq(&actual);
}

#[test]
fn anon_set_append_flags_and_loops() {
    let (ws, root) = load();
    check(
        show(
            &ws,
            &root,
            "app",
            &[
                "DEPENDS",
                "ORDER",
                "COMPILE_FLAGS",
                "SUMMARY_ANON",
                "GUI",
                "FOO",
                "AFTER_RETURN",
                "HAVE_ALPHA",
                "HAVE_BETA",
                "HAVE_GAMMA",
                "LOOP_ELSE",
            ],
        ),
        expect![[r#"
            DEPENDS="first zlib target-only bar"
            ORDER="start base features recipe"
            COMPILE_FLAGS="dirs network"
            SUMMARY_ANON="app-x-6"
            GUI="x11"
            # FOO is not set
            # AFTER_RETURN is not set
            HAVE_ALPHA="yes"
            # HAVE_BETA is not set
            HAVE_GAMMA="yes"
            # LOOP_ELSE is not set
        "#]],
    );
}

#[test]
fn anon_runs_per_variant() {
    let (ws, root) = load();
    check(
        show(
            &ws,
            &root,
            "app-native",
            &["NATIVE_ANON", "ORDER", "DEPENDS"],
        ),
        expect![[r#"
            NATIVE_ANON="app-native"
            ORDER="start base features recipe"
            DEPENDS="first zlib bar"
        "#]],
    );
}

#[test]
fn anon_skip_recipe_leaves_other_provider() {
    let (ws, root) = load();
    let mut out = String::new();
    for r in &ws.recipes {
        out.push_str(&format!("recipe {} {:?}\n", r.pn, r.variant));
    }
    for r in &ws.skipped {
        out.push_str(&format!(
            "skipped {} {}: {}\n",
            r.pn,
            r.file.display().to_string().replace(&root, "<ROOT>"),
            r.skipped().unwrap_or_default()
        ));
    }
    check(
        out,
        expect![[r#"
        recipe app None
        recipe app-native Some("native")
        recipe x11-gui None
        recipe unsup None
        recipe broken None
        skipped wl-gui <ROOT>/meta-anon/recipes-test/gui/wl-gui_1.0.bb: requires wayland in DISTRO_FEATURES
        skipped lonely <ROOT>/meta-anon/recipes-test/lonely/lonely_1.0.bb: incompatible with lonely
    "#]],
    );
}

#[test]
fn anon_unsupported_construct_changes_nothing() {
    let (ws, root) = load();
    let mut out = show(&ws, &root, "unsup", &["A", "NEW", "SECOND"]);
    let r = ws.recipes.iter().find(|r| r.pn == "unsup").unwrap();
    out.push_str(&format!(
        "A flags {:?}, {} history entries\n",
        r.data.flags("A"),
        r.data.history("A").len()
    ));
    out.push_str(&diags(&ws, &root, "unsup_1.0.bb"));
    check(
        out,
        expect![[r#"
            A="a"
            # NEW is not set
            SECOND="ran"
            A flags {}, 1 history entries
            <ROOT>/meta-anon/recipes-test/unsup/unsup_1.0.bb:7:1: note: anonymous python function not executed: line 7 uses the `while` statement, which bitzel's Python subset does not support (nothing it did is kept; values it would set are missing)
        "#]],
    );
}

#[test]
fn anon_name_error_fails_the_parse_with_file_and_line() {
    let (ws, root) = load();
    check(
        diags(&ws, &root, "broken_1.0.bb"),
        expect![[r#"
        <ROOT>/meta-broken/recipes-test/broken/broken_1.0.bb:4:1: error: anonymous python function failed: NameError: name 'undefined_name' is not defined
          |
        4 |     x = undefined_name
          | ^
    "#]],
    );
}
