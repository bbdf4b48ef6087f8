//! `bitzel show` prints a datastore as `bitbake -e` does (BitBake's
//! `data.emit_env` and cooker's `showEnvironment`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use bitzel_meta::{emit_env, DataStore, EmitOptions};

fn emit(ds: &DataStore) -> String {
    emit_env(ds, &EmitOptions::default())
}

/// A Python function that has only flags (`python do_x:prepend () {}`
/// names an override of `do_x`, not a value) shows BitBake's `"%s" % None`.
#[test]
fn flag_only_python_function_shows_none() {
    let mut ds = DataStore::new();
    ds.set_var_flag("do_x:prepend", "func", Arc::from("1"), None);
    ds.set_var_flag("do_x:prepend", "python", Arc::from("1"), None);
    ds.set_var("do_y", Arc::from("    pass\n"), None);
    ds.set_var_flag("do_y", "func", Arc::from("1"), None);
    ds.set_var_flag("do_y", "python", Arc::from("1"), None);
    let out = emit(&ds);
    assert!(
        out.contains("\npython do_x:prepend () {\nNone}\n"),
        "got:\n{out}"
    );
    assert!(
        out.contains("\npython do_y () {\n    pass\n}\n"),
        "got:\n{out}"
    );
}

/// A value that is a Python literal shows as `str(value)`, without
/// bitzel's marker; a `None` value is not shown, as in BitBake.
#[test]
fn python_literal_values_show_as_str() {
    let mut ds = DataStore::new();
    ds.set_var(
        "LITDICT",
        Arc::from("\0bitzel-py:lit:{'a': [1, 2], 'b': True}"),
        None,
    );
    ds.set_var("LITNONE", Arc::from("\0bitzel-py:lit:None"), None);
    ds.set_var("PLAIN", Arc::from("x"), None);
    let out = emit(&ds);
    assert!(
        out.lines()
            .any(|l| l == "LITDICT=\"{'a': [1, 2], 'b': True}\""),
        "got:\n{out}"
    );
    assert!(!out.contains("LITNONE="), "got:\n{out}");
    assert!(!out.contains('\0'), "got:\n{out}");
    assert!(out.contains("PLAIN=\"x\"\n"), "got:\n{out}");
}
