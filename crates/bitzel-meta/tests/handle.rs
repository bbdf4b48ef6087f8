//! `bitzel_meta::handle` (one file into a caller's datastore, as BitBake's
//! `bb.parse.handle`) and the datastore operations Python's `d` uses, with
//! the semantics BitBake's own tests (bb/tests/data.py, parse.py) check.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use bitzel_meta::pyexpr::DataOp;
use bitzel_meta::{handle, with_data_context, DataStore};

fn parse(text: &str, ext: &str) -> bitzel_meta::Handled {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join(format!("t.{ext}"));
    std::fs::write(&f, text).unwrap();
    handle(&f, DataStore::new(), false)
}

#[test]
fn append_var_applies_after_overrides_as_datasmart() {
    // bb/tests/parse.py test_parse_overrides2: d.appendVar is
    // setVar(var + ":append", value, parsing=True), so the override chosen
    // later still applies underneath it.
    let h = parse(
        "EXTRA = \"\"\nEXTRA:class-target = \"b\"\nEXTRA:append = \" c\"\n",
        "bb",
    );
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    let mut ds = h.data;
    let (r, _) = with_data_context(&mut ds, std::path::Path::new("t"), 0, |c| {
        c.modify(DataOp::AppendVar {
            var: "EXTRA",
            value: " d",
        })
    });
    r.unwrap();
    ds.set_var("OVERRIDES", Arc::from("class-target"), None);
    assert_eq!(ds.get_var("EXTRA").as_deref(), Some("b c d"));
}

#[test]
fn flags_internal_shows_flag_defaults_flags_hides_them() {
    let mut ds = DataStore::new();
    ds.set_var_flag("foo", "flag1", Arc::from("v1"), None);
    ds.set_var_flag("foo", "_defaultval_flag_flag1", Arc::from("d1"), None);
    ds.set_var_flag("foo", "_defaultval_flag_other", Arc::from("d2"), None);
    let visible: Vec<_> = ds.flags("foo").into_iter().collect();
    assert_eq!(
        visible,
        vec![
            ("flag1".to_string(), "v1".to_string()),
            ("other".to_string(), "d2".to_string())
        ]
    );
    let all: Vec<_> = ds.flags_internal("foo").into_keys().collect();
    assert_eq!(
        all,
        vec!["flag1", "_defaultval_flag_flag1", "_defaultval_flag_other"]
    );
}

#[test]
fn flags_keep_the_order_they_were_first_set_as_a_python_dict() {
    // getVarFlags returns the variable's flag dict: a Python dict, in the
    // order the flags were first set (not sorted). Metadata that joins the
    // flags it iterates (populate_sdk_base's COMPLEMENTARY_GLOB) depends on
    // it. Re-setting a flag keeps its place; deleting and setting it again
    // moves it to the end.
    let h = parse(
        "GLOBS[zeta] = \"z\"\nGLOBS[alpha] = \"a\"\nGLOBS[mid] = \"m\"\nGLOBS[zeta] = \"z2\"\n",
        "conf",
    );
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    let mut ds = h.data;
    let keys: Vec<_> = ds.flags("GLOBS").into_iter().collect();
    assert_eq!(
        keys,
        vec![
            ("zeta".to_string(), "z2".to_string()),
            ("alpha".to_string(), "a".to_string()),
            ("mid".to_string(), "m".to_string())
        ]
    );
    ds.del_var_flag("GLOBS", "alpha", None);
    ds.set_var_flag("GLOBS", "alpha", Arc::from("a2"), None);
    let keys: Vec<_> = ds.flags("GLOBS").into_keys().collect();
    assert_eq!(keys, vec!["zeta", "mid", "alpha"]);
}

#[test]
fn handle_reports_a_missing_file() {
    let h = handle(
        std::path::Path::new("/nonexistent/bitzel/x.bb"),
        DataStore::new(),
        false,
    );
    assert_eq!(h.errors.len(), 1);
    assert!(h.errors[0].message.contains("file not found"));
}

#[test]
fn inline_python_spans_balanced_braces_as_bitbakes_regexp() {
    // bb/tests/data.py test_python_snippet_w_dict: BitBake's
    // `\${@(?:{.*?}|.)+?}` does not end the code at a `}` closing a `{`.
    let ds = DataStore::new();
    assert_eq!(
        ds.expand("${@{ 'green': 1, 'blue': 2 }['green']}").unwrap(),
        "1"
    );
    assert_eq!(ds.expand("a${@'x'}b${@'y'}c").unwrap(), "axbyc");
}

#[test]
fn deltask_expands_its_list_as_bitbake() {
    // bb/tests/parse.py test_parse_addtask_deltask: `deltask do_fetch
    // ${MYVAR} ${EMPTYVAR}` deletes every task the expansion names.
    let h = parse(
        "addtask do_a\naddtask do_b\naddtask do_c\nMYVAR = \"do_b\"\nEMPTYVAR = \"\"\ndeltask do_a ${MYVAR} ${EMPTYVAR}\ndeltask ${EMPTYVAR}\n",
        "bb",
    );
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    assert_eq!(h.data.tasks(), vec!["do_c".to_string()]);
}

#[test]
fn bbpath_entries_relative_to_the_current_directory_as_bb_utils_which() {
    // bb.utils.which joins each BBPATH entry (an unset BBPATH being one
    // empty entry) with the item, so a relative entry is relative to the
    // current directory, and the file found is made absolute.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("classes")).unwrap();
    std::fs::write(dir.path().join("classes/c.bbclass"), "FROM_CLASS = \"1\"\n").unwrap();
    let cwd = std::env::current_dir().unwrap();
    let up = "../".repeat(cwd.components().count() - 1);
    let rel = format!(
        "{up}{}",
        dir.path().display().to_string().trim_start_matches('/')
    );
    let f = dir.path().join("t.bb");
    std::fs::write(&f, format!("BBPATH = \"/nonexistent::{rel}\"\ninherit c\n")).unwrap();
    let h = handle(&f, DataStore::new(), false);
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    assert_eq!(h.data.get_var("FROM_CLASS").as_deref(), Some("1"));
    let cache = h.data.get_var("__inherit_cache").unwrap_or_default();
    assert!(
        cache
            .split_whitespace()
            .all(|p| p.starts_with('/') && !p.contains("/../")),
        "{cache}"
    );
}

#[test]
fn parser_flags_are_the_int_one_as_bitbakes_ast_sets_them() {
    // BitBake's ast: `export` and `func` (and `python` of a `def`) are the
    // int 1; `python` of `python f()` and `fakeroot` are the text "1".
    let h = parse(
        "export A = \"a\"\nexport B\ndo_x() {\n    :\n}\npython do_y() {\n    pass\n}\ndef f(d):\n    return 1\naddtask x\n",
        "bb",
    );
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    let flag = |v: &str, f: &str| h.data.get_flag_unexpanded(v, f);
    let one = Some(bitzel_meta::PY_ONE.to_string());
    assert_eq!(flag("A", "export"), one);
    assert_eq!(flag("B", "export"), one);
    assert_eq!(flag("do_x", "func"), one);
    assert_eq!(flag("do_x", "python"), None);
    assert_eq!(flag("do_y", "func"), one);
    assert_eq!(flag("do_y", "python").as_deref(), Some("1"));
    assert_eq!(flag("f", "python"), one);
    assert_eq!(flag("do_x", "task"), one);
    assert!(h.data.is_exported("A") && h.data.is_func("do_x") && h.data.is_python("f"));
    let out = bitzel_meta::emit_env(&h.data, &Default::default());
    assert!(out.contains("export A=\"a\""), "{out}");
}

#[test]
fn a_recipe_gives_its_bbclassextend_variants_each_on_its_own_datastore() {
    // As BitBake's bb.parse.handle: the recipe under '' and one datastore
    // per BBCLASSEXTEND word; what the variant's class does (renaming a
    // variable in an anonymous function) stays in the variant.
    let dir = tempfile::tempdir().unwrap();
    let class = dir.path().join("flip.bbclass");
    std::fs::write(
        &class,
        "MODE = \"flipped\"\npython () {\n    d.renameVar(\"KEPT\", \"MOVED\")\n}\n",
    )
    .unwrap();
    let recipe = dir.path().join("thing.bb");
    std::fs::write(
        &recipe,
        format!(
            "PN = \"thing\"\nKEPT = \"here\"\nMODE = \"plain\"\nBBCLASSEXTEND = \"{}\"\n",
            class.display()
        ),
    )
    .unwrap();
    let h = handle(&recipe, DataStore::new(), false);
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    assert_eq!(h.data.get_var("KEPT").as_deref(), Some("here"));
    assert_eq!(h.data.get_var("MODE").as_deref(), Some("plain"));
    assert_eq!(h.variants.len(), 1);
    let v = &h.variants[0];
    assert_eq!(v.name, class.display().to_string());
    assert_eq!(v.data.get_var("KEPT"), None);
    assert_eq!(v.data.get_var("MOVED").as_deref(), Some("here"));
    assert_eq!(v.data.get_var("MODE").as_deref(), Some("flipped"));
    assert_eq!(
        v.data.get_var("PN"),
        Some(format!("thing-{}", class.display()))
    );
}

#[test]
fn addtask_takes_every_name_without_a_bitbake_saying_otherwise() {
    // Newer BitBake (and bitzel with no BitBake library): `addtask A B`
    // adds both, with the lists, and warns about nothing.
    let h = parse("addtask do_a do_b after do_x\n", "bb");
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    assert!(h.warnings.is_empty(), "{:?}", h.warnings);
    assert_eq!(h.data.tasks(), ["do_a", "do_b"]);
    assert_eq!(h.data.task_deps("do_b"), ["do_x"]);
}

#[test]
fn parser_warnings_name_the_logger_bitbake_logs_them_to() {
    let h = parse("A:append += \"x\"\n", "bb");
    let w: Vec<_> = h.warnings.iter().map(|w| w.log_as).collect();
    assert_eq!(w, [Some("BitBake")], "{:?}", h.warnings);
}
