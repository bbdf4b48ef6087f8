//! BitBake's daily verbs on `bitzel build`, through the built binary, on
//! `testdata/verbs/project.yml` (run with `--sandbox none`, so no namespace
//! or compiler is needed): `-c <task>`, `-c listtasks`, `-c clean`,
//! `-c cleansstate`, `-f`, `-k`; the targets `-v`/`--plan` show; and
//! `bitzel cache stats <yml>` using the project's cache directory. Every
//! test checks the exit code and the lines the user sees.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

use bitzel_cache::Cache;
use expect_test::expect;

mod common;
use common::repo_root;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// A build directory and a cache directory for one test.
struct Dirs {
    tmp: tempfile::TempDir,
}

impl Dirs {
    fn new() -> Dirs {
        Dirs {
            tmp: tempfile::tempdir().unwrap(),
        }
    }
    fn build(&self) -> PathBuf {
        self.tmp.path().join("build")
    }
    fn cache(&self) -> PathBuf {
        self.tmp.path().join("cache")
    }
    fn deploy(&self) -> PathBuf {
        self.build().join("tmp/deploy/images/qemux86-64")
    }

    /// `bitzel <args>` with the paths replaced by `<BUILD>`, `<CACHE>`,
    /// `<TMP>` and `<REPO>`.
    fn bitzel(&self, args: &[&str]) -> Run {
        let root = repo_root();
        let out = Command::new(env!("CARGO_BIN_EXE_bitzel"))
            .args(["--color", "never"])
            .args(args)
            .current_dir(&root)
            .env_remove("BITZEL_LOG")
            .env_remove("BITZEL_CACHE_DIR")
            .output()
            .unwrap();
        let clean = |s: &[u8]| {
            String::from_utf8_lossy(s)
                .replace(&self.build().to_string_lossy().to_string(), "<BUILD>")
                .replace(&self.cache().to_string_lossy().to_string(), "<CACHE>")
                .replace(&self.tmp.path().to_string_lossy().to_string(), "<TMP>")
                .replace(&root.to_string_lossy().to_string(), "<REPO>")
        };
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: clean(&out.stdout),
            stderr: clean(&out.stderr),
        }
    }

    /// `bitzel build testdata/verbs/project.yml <args>` into this test's
    /// directories, `--sandbox none`, with a summary in `<TMP>/summary.json`.
    fn build_verbs(&self, args: &[&str]) -> Run {
        self.build_in("none", args)
    }

    /// [`Dirs::build_verbs`] with `--sandbox <sandbox>`.
    fn build_in(&self, sandbox: &str, args: &[&str]) -> Run {
        let b = self.build();
        let c = self.cache();
        let s = self.tmp.path().join("summary.json");
        let _ = std::fs::remove_file(&s);
        let mut all = vec![
            "build",
            "testdata/verbs/project.yml",
            "--sandbox",
            sandbox,
            "--build-dir",
            b.to_str().unwrap(),
            "--cache-dir",
            c.to_str().unwrap(),
            "--summary-json",
            s.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        self.bitzel(&all)
    }

    fn summary(&self) -> serde_json::Value {
        let s = self.tmp.path().join("summary.json");
        serde_json::from_str(&std::fs::read_to_string(s).unwrap()).unwrap()
    }

    fn entries(&self) -> usize {
        let cache = Cache::open(&self.cache()).unwrap();
        cache.local().list_actions().unwrap().len()
    }
}

/// The progress lines of `stderr` saying what happened to tasks (`executed
/// app:do_compile`), sorted, without counters and times.
fn task_lines(stderr: &str) -> Vec<String> {
    let mut v: Vec<String> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix('[')?.split_once("] ").map(|(_, r)| r))
        .filter(|r| !r.starts_with("started"))
        .map(|r| {
            let r = r.split(" (").next().unwrap_or(r);
            r.split_whitespace().collect::<Vec<_>>().join(" ")
        })
        .collect();
    v.sort();
    v
}

#[test]
fn listtasks_prints_every_task_with_its_doc_sorted_like_bitbake() {
    let d = Dirs::new();
    let r = d.build_verbs(&["app", "-c", "listtasks"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    expect![[r#"
        do_build                   The default task: everything the recipe builds
        do_clean                   Removes this project's outputs of the recipe: deployed files, logs (bitzel built-in)
        do_cleansstate             Cleans, then forgets the recipe's entries in the local cache (bitzel built-in)
        do_compile                 Makes app.h and version.txt
        do_configure               Configures the source
        do_deploy                  Deploys app-version.txt and app/app.h
        do_fetch                   Fetches the source code (SRC_URI) into DL_DIR
        do_install                 Installs the build result into the destination directory D
        do_listtasks               Lists the recipe's tasks (bitzel built-in)
        do_patch                   Applies the SRC_URI patches to the source code
        do_populate_sysroot        Stages what do_install installed for the recipes that depend on this one
        do_prepare_recipe_sysroot  Gives the recipe the sysroot of its dependencies
        do_stamp                   Writes the time
        do_unpack                  Unpacks the source code into the work directory
    "#]]
    .assert_eq(&r.stdout);
    // Nothing ran, nothing was cached.
    assert!(!r.stderr.contains("running"), "{}", r.stderr);
    assert!(!d.cache().join("v1/ac").exists() || d.entries() == 0);

    // `do_listtasks` is the same verb; an unknown target is the build's error.
    let again = d.build_verbs(&["app", "-c", "do_listtasks"]);
    assert_eq!(again.stdout, r.stdout);
    let missing = d.build_verbs(&["nosuch", "-c", "listtasks"]);
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("error: ") && missing.stderr.contains("'nosuch'"),
        "{}",
        missing.stderr
    );
}

#[test]
fn cmd_runs_that_task_and_what_it_needs_only() {
    let d = Dirs::new();
    let r = d.build_verbs(&["app", "-c", "compile"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines = task_lines(&r.stderr);
    assert!(
        lines.contains(&"executed app:do_compile".to_string()),
        "{lines:?}"
    );
    // app's do_compile needs greet staged (its populate_sysroot), not app's own install.
    assert!(
        lines.contains(&"executed greet:do_populate_sysroot".to_string()),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("app:do_install")),
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.contains("do_build")), "{lines:?}");
    assert_eq!(d.summary()["executed"], 10, "{lines:?}");

    let bad = d.build_verbs(&["app", "-c", "nosuch"]);
    assert_eq!(bad.code, 1);
    assert_eq!(
        bad.stderr.lines().last().unwrap(),
        "error: task do_nosuch does not exist for target app (<REPO>/testdata/verbs/meta-verbs/recipes-test/app/app_1.0.bb)"
    );
}

#[test]
fn clean_removes_this_projects_outputs_of_the_recipe_and_keeps_the_cache() {
    let d = Dirs::new();
    let r = d.build_verbs(&["app", "other"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let entries = d.entries();
    assert!(d.deploy().join("app-version.txt").is_file());

    let r = d.build_verbs(&["app", "-c", "clean"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    expect![[r#"
        app: removed <BUILD>/tmp/deploy/images/qemux86-64/app-version.txt
        app: removed <BUILD>/tmp/deploy/images/qemux86-64/app/app.h
        app: removed <BUILD>/tmp/work/app
        app: cache entries kept: the next build restores its tasks from the cache (`-c cleansstate` forgets them)
    "#]]
    .assert_eq(&r.stdout);
    // other's files, in the same directories, stay; so does every cache entry.
    assert_eq!(
        std::fs::read_to_string(d.deploy().join("other.txt")).unwrap(),
        "other\n"
    );
    assert!(d.deploy().join("app/other.txt").is_file());
    assert!(!d.deploy().join("app/app.h").exists());
    assert!(d.build().join("tmp/work/other/temp").is_dir());
    assert_eq!(d.entries(), entries);

    // Nothing left to clean: said so.
    let r = d.build_verbs(&["app", "-c", "do_clean"]);
    assert_eq!(r.code, 0);
    assert_eq!(
        r.stdout.lines().next().unwrap(),
        "app: nothing to clean in <BUILD> (no deployed files, logs or work directories)"
    );

    // The next build restores everything from the cache and deploys again.
    let r = d.build_verbs(&["app"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(d.summary()["executed"], 0);
    assert_eq!(
        std::fs::read_to_string(d.deploy().join("app-version.txt")).unwrap(),
        "app 1.0\n"
    );

    // A verb that runs no task takes no -f, -n, --json or --explain.
    let r = d.build_verbs(&["app", "-c", "clean", "-f"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        "error: `-c clean` runs no task, so -f means nothing with it\n"
    );
}

#[test]
fn cleansstate_forgets_the_recipes_local_entries_and_its_tasks_run_again() {
    let d = Dirs::new();
    assert_eq!(d.build_verbs(&["app", "other"]).code, 0);
    let before = d.entries();

    let r = d.build_verbs(&["app", "-c", "cleansstate"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(
        lines[..3],
        [
            "app: removed <BUILD>/tmp/deploy/images/qemux86-64/app-version.txt",
            "app: removed <BUILD>/tmp/deploy/images/qemux86-64/app/app.h",
            "app: removed <BUILD>/tmp/work/app",
        ]
    );
    let forgot = lines[3];
    assert!(
        forgot.starts_with("app: forgot 7 entries of 7 tasks in the local cache <CACHE> (")
            && forgot.contains(" removed: ")
            && forgot.ends_with(" blobs, 0 layers)"),
        "{forgot}"
    );
    assert_eq!(
        lines[4..],
        [
            "  app:do_compile (1 entry)",
            "  app:do_configure (1 entry)",
            "  app:do_deploy (1 entry)",
            "  app:do_install (1 entry)",
            "  app:do_patch (1 entry)",
            "  app:do_populate_sysroot (1 entry)",
            "  app:do_unpack (1 entry)",
            "app: the next build runs its tasks again",
        ]
    );
    assert_eq!(d.entries(), before - 7);
    assert!(d.deploy().join("other.txt").is_file());

    // app's tasks run again; greet's and other's are still cached.
    let r = d.build_verbs(&["app", "other"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let ran: Vec<String> = task_lines(&r.stderr)
        .into_iter()
        .filter(|l| l.starts_with("executed"))
        .collect();
    assert_eq!(
        ran,
        [
            "executed app:do_compile",
            "executed app:do_configure",
            "executed app:do_deploy",
            "executed app:do_install",
            "executed app:do_patch",
            "executed app:do_populate_sysroot",
            "executed app:do_unpack",
        ]
    );
    assert_eq!(d.entries(), before);

    // Nothing left: said so. With a remote cache configured, the message says
    // where the tasks come back from (its credentials hidden); nothing is
    // sent to it (the port is closed).
    let r = d.build_in(
        "native",
        &[
            "app",
            "-c",
            "cleansstate",
            "--remote-cache",
            "http://user:secret@127.0.0.1:9/cache",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r2 = d.build_verbs(&["app", "-c", "cleansstate"]);
    assert_eq!(
        r2.stdout.lines().collect::<Vec<_>>(),
        [
            "app: nothing to clean in <BUILD> (no deployed files, logs or work directories)",
            "app: no entries of its tasks in the local cache <CACHE>",
            "app: the next build runs its tasks again"
        ]
    );
    assert_eq!(
        r.stdout.lines().last().unwrap(),
        "app: the next build restores its tasks from the remote cache http://<redacted>@127.0.0.1:9/cache when it has them, else runs them again (the remote's entries are never removed)"
    );
    assert!(!r.stdout.contains("secret") && !r.stderr.contains("secret"));
}

#[test]
fn force_runs_the_task_again_and_replaces_the_local_entry() {
    let d = Dirs::new();
    assert_eq!(d.build_verbs(&["app", "-c", "stamp"]).code, 0);
    let key = {
        let cache = Cache::open(&d.cache()).unwrap();
        cache.history("app:do_stamp").unwrap()[0].key
    };
    let read = || {
        let cache = Cache::open(&d.cache()).unwrap();
        cache.local().read_action(&key).unwrap().unwrap()
    };
    let first = read();

    // A hit without -f.
    let r = d.build_verbs(&["app", "-c", "stamp"]);
    assert_eq!(r.code, 0);
    assert!(task_lines(&r.stderr).contains(&"cached app:do_stamp".to_string()));
    assert_eq!(read(), first);

    let r = d.build_verbs(&["app", "-c", "stamp", "-f"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines = task_lines(&r.stderr);
    assert!(
        lines.contains(&"executed app:do_stamp".to_string()),
        "{lines:?}"
    );
    assert_eq!(d.summary()["executed"], 1, "{lines:?}");
    assert!(
        r.stderr.contains(
            "\nforced (-f): app:do_stamp ran again; its result replaced the local cache entry\n"
        ),
        "{}",
        r.stderr
    );
    // The same key, a new result (the task writes the time).
    let forced = read();
    assert_ne!(forced.output, first.output);
    assert!(forced.created_unix_ms > first.created_unix_ms);

    // -f on a task without an action says so and forces nothing.
    let r = d.build_verbs(&["app", "--force", "-c", "build"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("warning: -f: app:do_build has no action ([noexec]), so there is nothing to run again; name the task with -c (e.g. -c compile)\n"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("forced (-f)"), "{}", r.stderr);
}

#[test]
fn keep_going_short_form_runs_what_does_not_depend_on_the_failure() {
    let d = Dirs::new();
    let r = d.build_verbs(&["-k", "-j", "1", "broken", "app"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let lines = task_lines(&r.stderr);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("FAILED broken:do_compile")),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"executed app:do_deploy".to_string()),
        "{lines:?}"
    );
    assert_eq!(d.summary()["failed"], 1);
    assert!(d.deploy().join("app-version.txt").is_file());

    // Without -k the build stops at the failure: with one job, broken's
    // compile fails before app's tasks start.
    let d = Dirs::new();
    let r = d.build_verbs(&["-j", "1", "broken", "app"]);
    assert_eq!(r.code, 1);
    assert!(d.summary()["not_run"].as_u64().unwrap() > 0);
}

#[test]
fn verbose_and_plan_show_the_targets_and_task_of_the_command_line() {
    let d = Dirs::new();
    let b = d.build();
    let r = d.bitzel(&[
        "build",
        "-v",
        "testdata/verbs/project.yml",
        "other",
        "--build-dir",
        b.to_str().unwrap(),
        "-c",
        "deploy",
        "-n",
        "--sandbox",
        "none",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("\ntargets:    other\ntask:       deploy\n"),
        "{}",
        r.stderr
    );
    let r = d.bitzel(&[
        "build",
        "--plan",
        "testdata/verbs/project.yml",
        "--build-dir",
        b.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("\ntargets:    app\ntask:       build (default)\n"),
        "{}",
        r.stdout
    );
}

#[test]
fn cache_verbs_take_a_project_and_use_its_cache_dir() {
    let d = Dirs::new();
    assert_eq!(d.build_verbs(&["greet"]).code, 0);
    let entries = d.entries();
    // A project whose `bitzel: cache_dir:` is that cache (relative to the file).
    let yml = d.tmp.path().join("p.yml");
    std::fs::write(
        &yml,
        "header:\n  version: 14\nmachine: qemux86-64\nbitzel:\n  cache_dir: cache\n",
    )
    .unwrap();
    let y = yml.to_str().unwrap();
    let r = d.bitzel(&["cache", "stats", y]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], "cache directory  <CACHE>/v1");
    assert_eq!(lines[1], format!("entries          {entries}"));

    let r = d.bitzel(&["cache", "verify", y]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.lines().last().unwrap(), "cache is consistent");
    assert!(r
        .stdout
        .contains(&format!("index rebuilt ({entries} entries)")));

    let r = d.bitzel(&["cache", "gc", y, "--max-size", "10G"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains(&format!("kept {entries} entries, evicted 0")),
        "{}",
        r.stdout
    );

    // --cache-dir wins over the project's.
    let other = d.tmp.path().join("elsewhere");
    let r = d.bitzel(&["cache", "stats", y, "--cache-dir", other.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout.lines().next().unwrap(),
        "cache directory  <TMP>/elsewhere/v1"
    );

    // A config that does not load is its error, with the exit code 1.
    let r = d.bitzel(&["cache", "stats", "testdata/verbs/no-such.yml"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        "error: testdata/verbs/no-such.yml:1:1: cannot read config file `testdata/verbs/no-such.yml`: No such file or directory (os error 2)\n"
    );
}
