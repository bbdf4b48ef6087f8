//! How `CPython::run_selftest` (`scripts/bitbake-selftest`) counts tests,
//! on `testdata/selftest-lib/` (a BitBake-shaped library of bitzel's own).
//! Its own test binary: one interpreter per process, on that library.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use bitzel_python::{CPython, SelftestFigures};

#[test]
fn a_test_is_not_runnable_only_when_it_lacks_library_data_and_fails_under_the_librarys_own_bitbake()
{
    let lib = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/selftest-lib")
        .canonicalize()
        .unwrap();
    let bytecode = tempfile::tempdir().unwrap();
    let host = Arc::new(CPython::new(&lib, Some(bytecode.path())).unwrap());
    assert!(bitzel_meta::install_python_host(host.clone()));
    // A library whose cooker does not name __BB_RECIPE_FILE (this one has
    // no bb/cookerdata.py): bitzel does not set it either.
    assert!(!bitzel_meta::PythonHost::sets_recipe_file(&*host));
    // Nor does it name the default configuration: bitzel's "default".
    assert_eq!(bitzel_meta::PythonHost::default_config_name(&*host), None);
    // The `bitbake` stand-in runs this `show`, which echoes what it gets.
    let show = [
        "sh",
        "-c",
        "echo shown \"$BITZEL_BITBAKE_LIB\" \"$@\"",
        "sh",
    ]
    .map(String::from);
    let f = host
        .run_selftest(
            &["bb.tests.gaps".to_string(), "bb.tests.standin".to_string()],
            true,
            &show,
        )
        .unwrap();
    let missing = lib.join("bb/tests/no-such-data/x.conf");
    assert_eq!(
        f,
        SelftestFigures {
            // test_passes and bb.tests.standin's two.
            passed: 3,
            // test_fails (no missing data), test_fails_with_bitzel_only
            // (missing data, but the library's own datastore passes it).
            failed: 2,
            unrunnable: vec![(
                "bb.tests.gaps.Gaps.test_reads_data_this_library_lacks".to_string(),
                format!(
                    "the library has no {} (read); it fails under BitBake's own library too",
                    missing.display()
                ),
            )],
        }
    );
}
