//! What a user sees when a task fails, warns, or is opened in a devshell
//! (testdata/failures): the failing command and its line in the kept
//! `run.do_X` script, the paths of the kept script and log, task warnings on
//! the console, devshell's errors and exit codes, and that the kept script
//! run by hand in `bitzel devshell` fails the same way.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod common;
use common::Run;

fn project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/failures/build.yml")
        .canonicalize()
        .unwrap()
}

/// `bitzel <verb> <project> <args> --build-dir dir/build --cache-dir dir/cache`,
/// with `stdin` piped in.
fn bitzel(dir: &Path, verb: &str, args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bitzel"))
        .args(["--color", "never", verb])
        .arg(project())
        .args(args)
        .arg("--build-dir")
        .arg(dir.join("build"))
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .env_remove("BITZEL_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Run::from(out)
}

#[test]
fn a_failing_task_names_the_command_its_line_and_the_kept_files() {
    let t = tempfile::tempdir().unwrap();
    let r = bitzel(t.path(), "build", &["broken"], "");
    assert_eq!(r.code, 1, "{}", r.stderr);

    let temp = t.path().join("build/tmp/work/broken/temp");
    let run_name = std::fs::read_link(temp.join("run.do_compile")).unwrap();
    let log_name = std::fs::read_link(temp.join("log.do_compile")).unwrap();
    let pid = run_name
        .to_str()
        .unwrap()
        .strip_prefix("run.do_compile.")
        .unwrap()
        .to_string();
    assert_eq!(log_name, PathBuf::from(format!("log.do_compile.{pid}")));
    let run = temp.join(&run_name);
    let log = temp.join(&log_name);
    let expected = format!(
        "ERROR: task broken:do_compile failed: broken:do_compile exited with code 1 at line 18 \
         of run.do_compile: `test -f missing.h`; run script: {}, log: {}",
        run.display(),
        log.display()
    );
    assert!(
        r.stderr.lines().any(|l| l == expected),
        "want the line\n{expected}\nin:\n{}",
        r.stderr
    );
    // The kept script is what ran, with the sandbox's paths; line 18 is the command.
    let script = std::fs::read_to_string(&run).unwrap();
    assert_eq!(
        script.lines().nth(17).unwrap(),
        "\t__bitzel_line=18; test -f missing.h"
    );
    assert!(script.contains("cd /bitzel/work/broken-1.0\n"), "{script}");
    assert!(!script.contains(t.path().to_str().unwrap()), "{script}");
    // The log has the output, the warning and the trap's line, nothing after the failure.
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "compiling in /bitzel/work/broken-1.0\nWARNING: broken is about to fail\n\
         bitzel: exit code 1 after line 18 of the run script\n"
    );
    // The task's warning reached the console, with the task's label.
    assert!(
        r.stderr
            .lines()
            .any(|l| l.trim() == "WARN broken:do_compile: broken is about to fail"),
        "{}",
        r.stderr
    );

    // The kept script run by hand in the task's devshell fails the same way.
    let d = bitzel(
        t.path(),
        "devshell",
        &["broken"],
        "pwd\nsh /bitzel/temp/run.do_compile\n",
    );
    assert_eq!(d.code, 1, "{}", d.stderr);
    // The shell starts where the task does (B exists: do_configure made it).
    assert!(
        d.stdout.starts_with("/bitzel/work/broken-1.0\n"),
        "{}",
        d.stdout
    );
    assert!(
        d.stdout.contains("compiling in /bitzel/work/broken-1.0\n"),
        "{}",
        d.stdout
    );
    assert!(
        d.stderr
            .contains("bitzel: exit code 1 after line 18 of the run script\n"),
        "{}",
        d.stderr
    );
    assert!(!d.stdout.contains("not reached"), "{}", d.stdout);
}

#[test]
fn a_bbfatal_is_shown_and_reported_where_it_was_called() {
    let t = tempfile::tempdir().unwrap();
    let r = bitzel(t.path(), "build", &["fatal"], "");
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .lines()
            .any(|l| l.trim() == "ERROR fatal:do_configure: no defconfig for qemux86-64"),
        "{}",
        r.stderr
    );
    let run =
        std::fs::canonicalize(t.path().join("build/tmp/work/fatal/temp/run.do_configure")).unwrap();
    let prefix = "ERROR: task fatal:do_configure failed: fatal:do_configure exited with code 1 \
                  at line 18 of run.do_configure: `bbfatal \"no defconfig for qemux86-64\"`; \
                  run script: ";
    let line = r
        .stderr
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting {prefix:?} in:\n{}", r.stderr));
    assert!(
        line.contains(&format!("run script: {}, log: ", run.display())),
        "{line}"
    );
}

#[test]
fn warnings_of_a_successful_task_reach_the_console() {
    let t = tempfile::tempdir().unwrap();
    let r = bitzel(t.path(), "build", &["warner"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let warnings: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.contains("warner:do_compile:"))
        .map(str::trim)
        .collect();
    assert_eq!(
        warnings,
        ["WARN warner:do_compile: option FOO is deprecated"],
        "{}",
        r.stderr
    );
    // The kept run script is the keyed script with the failure trace.
    let cache = bitzel_cache::Cache::open(&t.path().join("cache")).unwrap();
    let key = cache.history("warner:do_compile").unwrap()[0].key;
    let bitzel_cache::Lookup::Hit(result) = cache.lookup(&key).unwrap() else {
        panic!("warner:do_compile is not cached");
    };
    let kept = t.path().join("build/tmp/work/warner/temp/run.do_compile");
    assert_eq!(
        std::fs::read_to_string(kept).unwrap(),
        bitzel_exec::tasklog::with_failure_trace(&result.action.script)
    );
    assert!(!result.action.script.contains("__bitzel_line"));
    drop(cache);

    // `-q` keeps warnings.
    let q = tempfile::tempdir().unwrap();
    let quiet = bitzel(q.path(), "build", &["warner", "-q"], "");
    assert_eq!(quiet.code, 0, "{}", quiet.stderr);
    assert_eq!(
        quiet.stderr.trim(),
        "WARN warner:do_compile: option FOO is deprecated"
    );

    // A cached rerun runs nothing, so it says nothing again.
    let again = bitzel(t.path(), "build", &["warner"], "");
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(!again.stderr.contains("deprecated"), "{}", again.stderr);
}

#[test]
fn devshell_refuses_a_noexec_task_starts_where_it_can_and_returns_the_shells_status() {
    let t = tempfile::tempdir().unwrap();
    let r = bitzel(t.path(), "devshell", &["image"], "echo SHELL-OPENED\n");
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(!r.stdout.contains("SHELL-OPENED"), "{}", r.stdout);
    assert_eq!(
        r.stderr.lines().last().unwrap(),
        "error: image:do_compile is noexec: it runs nothing, so it has no sandbox to open a \
         shell in; choose one with --task: do_unpack, do_patch, do_install, do_populate_sysroot"
    );

    // do_install's B does not exist before it runs: the shell starts in WORKDIR.
    let r = bitzel(
        t.path(),
        "devshell",
        &["image", "--task", "do_install"],
        "pwd\nexit 3\n",
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert_eq!(r.stdout, "/bitzel/work\n", "{}", r.stderr);
    assert!(
        r.stderr.lines().any(|l| l.trim()
            == "WARN image:do_install: /bitzel/work/image-1.0 does not exist before the task \
                runs (its script creates it); the shell starts in /bitzel/work"),
        "{}",
        r.stderr
    );

    let r = bitzel(t.path(), "devshell", &["image", "--task", "do_fetch"], "");
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.lines().last().unwrap().starts_with(
            "error: image:do_fetch runs on the host (bitzel's fetch built-in), not in a sandbox;"
        ),
        "{}",
        r.stderr
    );
}
