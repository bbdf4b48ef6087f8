//! `addtask` as a BitBake that takes one task per statement reads it (the
//! Python host says so, as bitzel-python does for a BitBake whose parser
//! reads a single task name): the extra words are ignored with BitBake's
//! warnings, logged as its parser logs them. Its own test binary, so the
//! host installed here is the only one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use bitzel_meta::pyexpr::{PyContext, PyError};
use bitzel_meta::{handle, DataStore, PyEvent, PyFailure, PyHandler, PyRun, PythonHost};

/// A host that runs no Python and answers only the addtask question.
struct OneTask;

fn no_python() -> PyFailure {
    PyFailure {
        message: "no Python in this test".to_string(),
        file: None,
        line: None,
    }
}

impl PythonHost for OneTask {
    fn eval_inline(&self, _code: &str, _d: &dyn PyContext) -> Result<String, PyError> {
        Err(PyError {
            message: "no Python in this test".to_string(),
            offset: 0,
        })
    }
    fn run_anonymous(
        &self,
        _name: &str,
        _body: &str,
        _file: &Path,
        _line: u32,
        _d: &dyn PyContext,
    ) -> Result<PyRun, PyFailure> {
        Err(no_python())
    }
    fn fire(
        &self,
        _event: &PyEvent<'_>,
        _handlers: &[PyHandler],
        _d: &dyn PyContext,
    ) -> Result<PyRun, PyFailure> {
        Ok(PyRun::Done)
    }
    fn define(&self, _text: &str, _file: &Path, _line: u32) -> Result<(), PyFailure> {
        Err(no_python())
    }
    fn add_pylib(&self, _dir: &Path, _ns: &str, _d: &dyn PyContext) -> Result<(), PyFailure> {
        Err(no_python())
    }
    fn fingerprint(&self) -> [u8; 32] {
        [1; 32]
    }
    fn one_task_per_addtask(&self) -> bool {
        true
    }
}

#[test]
fn extra_task_names_are_ignored_with_the_parsers_warnings() {
    assert!(bitzel_meta::install_python_host(Arc::new(OneTask)));
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("t.bb");
    std::fs::write(
        &f,
        "addtask do_patch after do_foo after do_unpack before do_configure before do_compile\n\
         addtask do_fetch do_patch2 after do_x\n",
    )
    .unwrap();
    let h = handle(&f, DataStore::new(), false);
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    let logged: Vec<(Option<&str>, &str)> = h
        .warnings
        .iter()
        .map(|w| (w.log_as, w.message.as_str()))
        .collect();
    assert_eq!(
        logged,
        [
            (
                Some("BitBake.Parsing"),
                "addtask contained multiple 'before' keywords, only one is supported"
            ),
            (
                Some("BitBake.Parsing"),
                "addtask contained multiple 'after' keywords, only one is supported"
            ),
            (
                Some("BitBake.Parsing"),
                "addtask ignored: \" do_patch2 after do_x\""
            ),
        ]
    );
    // Only the first name of the second statement is a task, with no
    // dependencies (what follows it was ignored).
    assert_eq!(h.data.tasks(), ["do_patch", "do_fetch"]);
    assert_eq!(h.data.task_deps("do_fetch"), Vec::<String>::new());
}
