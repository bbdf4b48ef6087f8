//! Embedded CPython as bitzel-meta's Python host, on `testdata/python/`
//! (a stand-in `bb` package of bitzel's own, so no BitBake is needed).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use bitzel_meta::{load_workspace, ConfInput, FsLoader, ParseOptions, Workspace};
use bitzel_python::CPython;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/python")
        .canonicalize()
        .unwrap()
}

/// The workspace, parsed once per test process with the host installed.
fn ws() -> &'static Workspace {
    static WS: OnceLock<Workspace> = OnceLock::new();
    WS.get_or_init(|| {
        let r = root();
        let host = CPython::new(&r.join("bb-stub")).unwrap();
        assert!(bitzel_meta::install_python_host(Arc::new(host)));
        let input = ConfInput {
            topdir: r.join("build"),
            bblayers_conf: format!(
                "BBPATH = \"${{TOPDIR}}\"\nBBLAYERS = \"{}/meta-py\"\n",
                r.display()
            ),
            local_conf: String::new(),
            env: BTreeMap::new(),
        };
        load_workspace(&input, &FsLoader, &ParseOptions::default()).unwrap()
    })
}

fn var(pn: &str, name: &str) -> Option<String> {
    let r = ws().recipes.iter().find(|r| r.pn == pn).unwrap_or_else(|| {
        panic!("no recipe {pn}: {:#?}", ws().diagnostics);
    });
    r.data.try_get_var(name).unwrap()
}

#[test]
fn addpylib_and_defs_serve_inline_python() {
    assert_eq!(var("good", "LOUD").as_deref(), Some("ALPHA-BETA"));
    assert_eq!(
        var("good", "TWICE").as_deref(),
        Some("alpha betaalpha beta")
    );
    // Rust expansion -> Python -> d.getVar -> ${@...} -> Python.
    assert_eq!(var("good", "NESTED").as_deref(), Some("[ALPHA-BETA]"));
    // The config's own value goes through the same host.
    assert_eq!(
        ws().config.try_get_var("LOUD").unwrap().as_deref(),
        Some("ALPHA-BETA")
    );
}

#[test]
fn anonymous_functions_outside_the_subset_run_in_cpython() {
    assert_eq!(var("good", "COUNTED").as_deref(), Some(" 0! 1!"));
    assert_eq!(var("good", "OBJ_KIND").as_deref(), Some("dict:2"));
    assert_eq!(
        var("good", "COPY_SEEN").as_deref(),
        Some("bitter/sweet sour")
    );
    assert_eq!(var("good", "HAS_OV").as_deref(), Some("False"));
    assert_eq!(var("good", "IN_D").as_deref(), Some("TrueFalse"));
    let r = ws().recipes.iter().find(|r| r.pn == "good").unwrap();
    assert_eq!(
        r.data
            .get_flag_unexpanded("do_thing", "cleandirs")
            .as_deref(),
        Some("/x")
    );
}

#[test]
fn skip_recipe_from_cpython_carries_the_reason() {
    let s = ws().skipped.iter().find(|r| r.pn == "skipped").unwrap();
    assert_eq!(s.skipped().as_deref(), Some("not for this machine"));
    assert!(ws().recipes.iter().all(|r| r.pn != "skipped"));
}

#[test]
fn a_python_error_names_the_metadata_line_with_a_trimmed_traceback() {
    let d = ws()
        .diagnostics
        .iter()
        .find(|d| d.file.ends_with("broken.bb"))
        .unwrap_or_else(|| panic!("{:#?}", ws().diagnostics));
    assert!(d.is_error());
    assert_eq!(d.line, 8, "{d}");
    assert!(
        d.message
            .contains("NameError: name 'undefined_name_here' is not defined")
            && d.message.contains("broken.bb\", line 8")
            && !d.message.contains("bitzel_bootstrap"),
        "{}",
        d.message
    );
    // Nothing the failed function did is kept.
    let r = ws().recipes.iter().find(|r| r.pn == "broken").unwrap();
    assert_eq!(r.data.try_get_var("X").unwrap(), None);
}

#[test]
fn event_handlers_run_in_bitbake_order_with_their_masks() {
    assert_eq!(
        ws().config.try_get_var("CONFIG_SEEN").unwrap().as_deref(),
        Some("yes:ConfigParsed")
    );
    assert_eq!(
        var("good", "EVENTS").as_deref(),
        Some(" RecipePreFinalise RecipeTaskPreProcess RecipeParsed")
    );
    assert_eq!(
        var("good", "TASKLIST").as_deref(),
        Some("do_thing do_other do_extra")
    );
    let s = ws().skipped.iter().find(|r| r.pn == "vetoed").unwrap();
    assert_eq!(s.skipped().as_deref(), Some("vetoed by a handler"));
}

#[test]
fn bitbake_lists_cross_d_as_python_lists() {
    let r = ws().recipes.iter().find(|r| r.pn == "good").unwrap();
    assert_eq!(r.data.tasks(), ["do_thing", "do_other", "do_extra"]);
    assert_eq!(r.data.task_deps("do_extra"), ["do_other", "do_thing"]);
    assert_eq!(
        r.data.get_flag_unexpanded("do_extra", "task").as_deref(),
        Some("1")
    );
}

#[test]
fn python_may_write_to_d_while_a_value_expands() {
    assert_eq!(var("good", "VIA_WRITE").as_deref(), Some("mark=temporary"));
    // The write lasted for that expansion only and polluted no cache.
    assert_eq!(var("good", "MARK").as_deref(), Some("orig"));
    assert_eq!(var("good", "USES_MARK").as_deref(), Some("mark=orig"));
    assert_eq!(var("good", "VIA_WRITE").as_deref(), Some("mark=temporary"));
}
