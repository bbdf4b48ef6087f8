//! `bitzel bitbake-selftest LIB` (hidden; `scripts/bitbake-selftest` is the
//! command users run): BitBake's own datastore and parser tests from the
//! BitBake library LIB, run in bitzel's embedded CPython against bitzel's
//! datastore and parser.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use crate::output::Output;

/// Arguments of `bitzel bitbake-selftest`.
#[derive(Debug, Args)]
pub struct SelftestArgs {
    /// A BitBake library directory (the one holding `bb/`).
    pub lib: PathBuf,
    /// Test modules to run.
    #[arg(long = "module", default_values_t = ["bb.tests.data".to_string(), "bb.tests.parse".to_string()])]
    pub modules: Vec<String>,
    /// One line per test.
    #[arg(long)]
    pub verbose_tests: bool,
}

/// Exit status when no test failed but some cannot run with this library.
const EXIT_UNRUNNABLE: u8 = 3;

/// Run the tests, print `N passed, M failed` (and the tests this library
/// cannot run); exit 0 only when every test passed, 1 when one failed, 3
/// when none failed but some could not run with this library.
pub fn run(_out: &Output, args: SelftestArgs) -> anyhow::Result<ExitCode> {
    if !args.lib.join("bb").join("tests").is_dir() {
        anyhow::bail!(
            "{} is not a BitBake library with tests: expected {}/bb/tests (give the `lib` directory of a BitBake checkout, or the site-packages directory holding the bitbake-setup wheel's `bb`)",
            args.lib.display(),
            args.lib.display()
        );
    }
    let host = std::sync::Arc::new(bitzel_python::CPython::new(&args.lib, None)?);
    bitzel_meta::install_python_host(host.clone());
    // BitBake's tests that run `bitbake -e` get this binary's `show`.
    let exe = std::env::current_exe().context("cannot find the bitzel executable")?;
    let show = [exe.to_string_lossy().into_owned(), "show".to_string()];
    let f = host.run_selftest(&args.modules, args.verbose_tests, &show)?;
    println!("{} passed, {} failed", f.passed, f.failed);
    match f.unrunnable.as_slice() {
        [] => {}
        [(test, why)] => println!("1 not runnable with this library: {test}: {why}"),
        many => {
            println!("{} not runnable with this library:", many.len());
            for (test, why) in many {
                println!("  {test}: {why}");
            }
        }
    }
    Ok(if f.failed > 0 {
        ExitCode::from(1)
    } else if !f.unrunnable.is_empty() {
        ExitCode::from(EXIT_UNRUNNABLE)
    } else {
        ExitCode::SUCCESS
    })
}
