//! Python tasks (testdata/python): run by BitBake's own `bb.build` inside the
//! native sandbox — a Python task, Python prefuncs/postfuncs, a shell task
//! calling a Python `def`, a Python task calling a shell function, a layer's
//! `addpylib` library — cached and restored like shell tasks; `bb.fatal` and
//! an uncaught exception fail naming the metadata file and line.
//!
//! Needs BitBake's library: `BITZEL_BITBAKE_LIB`, else the Python
//! environment `scripts/install-deps --test` makes
//! (`/var/cache/bitzel-test/venv`, with the `bitbake-setup` package).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{repo_root, Run};

const VENV: &str = "/var/cache/bitzel-test/venv";

/// The BitBake library the tests use; a missing one fails the test saying
/// how to install it (never a silent skip).
fn bitbake_lib() -> PathBuf {
    if let Some(v) = std::env::var_os("BITZEL_BITBAKE_LIB").filter(|v| !v.is_empty()) {
        return PathBuf::from(v);
    }
    let lib = Path::new(VENV).join("lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|rd| {
        rd.flatten()
            .map(|e| e.path().join("site-packages"))
            .find(|p| p.join("bb/__init__.py").is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "no BitBake library: set BITZEL_BITBAKE_LIB or run scripts/install-deps --test \
             (it installs the bitbake-setup package into {VENV})"
        )
    })
}

struct Dirs {
    tmp: tempfile::TempDir,
}

impl Dirs {
    fn new() -> Dirs {
        Dirs {
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    /// Outside `/tmp` (the sandbox's own `/tmp` hides what is below it), as
    /// a build directory usually is.
    fn outside_tmp() -> Dirs {
        Dirs {
            tmp: tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap(),
        }
    }

    /// `bitzel show <checkout>/testdata/python/project.yml --recipes` run in
    /// `cwd`, into `<tmp>/build` with the cache in `<tmp>/cache`.
    fn show_recipes(&self, cwd: &Path, lib: &Path) -> Run {
        Command::new(env!("CARGO_BIN_EXE_bitzel"))
            .current_dir(cwd)
            .args(["--color", "never", "show"])
            .arg(repo_root().join("testdata/python/project.yml"))
            .args(["--recipes", "--build-dir"])
            .arg(self.tmp.path().join("build"))
            .arg("--cache-dir")
            .arg(self.tmp.path().join("cache"))
            .env("BITZEL_BITBAKE_LIB", lib)
            .env_remove("BITZEL_LOG")
            .output()
            .unwrap()
            .into()
    }

    /// `bitzel build testdata/python/project.yml <args>` (native sandbox) into
    /// `<tmp>/<build>`, the cache in `<tmp>/cache`, with `lib` as the library.
    fn build(&self, build: &str, lib: &Path, args: &[&str]) -> (Run, serde_json::Value) {
        self.build_at(&repo_root(), "native", build, lib, args)
    }

    /// [`Dirs::build`] with the checkout at `root` and `--sandbox sandbox`.
    fn build_at(
        &self,
        root: &Path,
        sandbox: &str,
        build: &str,
        lib: &Path,
        args: &[&str],
    ) -> (Run, serde_json::Value) {
        let summary = self.tmp.path().join("summary.json");
        let _ = std::fs::remove_file(&summary);
        let out = Command::new(env!("CARGO_BIN_EXE_bitzel"))
            .current_dir(root)
            .args(["--color", "never", "build", "testdata/python/project.yml"])
            .args(["--sandbox", sandbox, "--build-dir"])
            .arg(self.tmp.path().join(build))
            .arg("--cache-dir")
            .arg(self.tmp.path().join("cache"))
            .arg("--summary-json")
            .arg(&summary)
            .args(args)
            .env("BITZEL_BITBAKE_LIB", lib)
            .env_remove("BITZEL_LOG")
            .output()
            .unwrap();
        let run = Run::from(out);
        let s = std::fs::read_to_string(&summary)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(serde_json::Value::Null);
        (run, s)
    }

    fn deployed(&self, build: &str, name: &str) -> String {
        let p = self
            .tmp
            .path()
            .join(build)
            .join("tmp/deploy/images/qemux86-64")
            .join(name);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }
}

fn host_line(path: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn python_tasks_run_in_the_sandbox_and_are_cached_like_shell_tasks() {
    let lib = bitbake_lib();
    let d = Dirs::new();
    let (r, s) = d.build("build", &lib, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(s["executed"], 7, "{}", r.stderr);
    // The task's warning reaches the console; its note is in its log.
    assert!(
        r.stderr
            .contains("pyinfo:do_compile: a warning from a Python task"),
        "{}",
        r.stderr
    );
    let log = std::fs::read_to_string(
        d.tmp
            .path()
            .join("build/tmp/work/pyinfo/temp/log.do_compile"),
    )
    .unwrap();
    assert!(
        log.contains("NOTE: greetings from pyfixture to pyinfo"),
        "{log}"
    );

    // Prefunc, task, postfunc, in order, each by bb.build.exec_func.
    assert_eq!(
        d.deployed("build", "order.txt"),
        "prefunc\ntask\npostfunc\n"
    );
    // A shell task expanded a Python `def` call; a Python task ran a shell
    // function, which saw the exported variable.
    assert_eq!(
        d.deployed("build", "from-shell.txt"),
        "SHELL CALLED PYTHON (pyinfo)\n"
    );
    assert_eq!(
        d.deployed("build", "from-python.txt"),
        "exported to pyinfo\n"
    );
    // Inside the sandbox: its own PID namespace and user map.
    let seen = d.deployed("build", "sandbox.txt");
    let pidns = std::fs::read_link("/proc/self/ns/pid").unwrap();
    let line = |k: &str| {
        seen.lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap_or_else(|| panic!("no {k} in {seen}"))
            .to_string()
    };
    assert!(line("pidns ").starts_with("pid:["), "{seen}");
    assert_ne!(line("pidns "), pidns.to_string_lossy(), "{seen}");
    assert_ne!(line("uid_map "), host_line("/proc/self/uid_map"), "{seen}");
    assert!(line("uid_map ").starts_with("0 "), "{seen}");
    assert_eq!(line("env "), "exported to pyinfo");
    // A value that is a Python dict reaches the task as the dict.
    assert_eq!(line("data "), "dict MIT", "{seen}");

    // A new build directory over the same cache: nothing runs, and the
    // Python tasks' outputs are restored from the cache.
    let (r, s) = d.build("build2", &lib, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(s["executed"], 0, "{}", r.stderr);
    for f in [
        "order.txt",
        "from-shell.txt",
        "from-python.txt",
        "sandbox.txt",
    ] {
        assert_eq!(d.deployed("build2", f), d.deployed("build", f), "{f}");
    }
}

/// Copy `rel` (a directory of the checkout) to the same place below `to`.
fn copy_tree(rel: &str, to: &Path) {
    let src = repo_root().join(rel);
    let dst = to.join(rel);
    std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
    let st = Command::new("cp")
        .arg("-a")
        .arg(&src)
        .arg(&dst)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn a_moved_checkout_keys_python_tasks_the_same() {
    let lib = bitbake_lib();
    // Outside `/tmp`: Python tasks see the layers at their own paths, which
    // the sandbox cannot do below its own `/tmp` (named.rs), so a checkout
    // moved there is a different input (`sandbox:layers`), rightly.
    let d = Dirs::outside_tmp();
    let (r, s) = d.build("build", &lib, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(s["executed"], 7, "{}", r.stderr);
    // The layers (and so every recipe file and `[filename]`) elsewhere, and
    // another build directory: the Python tasks' keys do not change.
    let moved = d.tmp.path().join("moved-checkout");
    copy_tree("layers/meta-bitzel", &moved);
    copy_tree("testdata/python", &moved);
    let (r, s) = d.build_at(&moved, "native", "build-moved", &lib, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(s["executed"], 0, "{}", r.stderr);
}

#[test]
fn without_a_sandbox_the_runner_gets_the_rewritten_paths() {
    let lib = bitbake_lib();
    let d = Dirs::new();
    let (r, s) = d.build_at(&repo_root(), "none", "build", &lib, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(s["executed"], 7, "{}", r.stderr);
    assert_eq!(
        d.deployed("build", "order.txt"),
        "prefunc\ntask\npostfunc\n"
    );
    assert_eq!(
        d.deployed("build", "from-python.txt"),
        "exported to pyinfo\n"
    );
}

/// A recipe naming its work tree and `HOSTTOOLS_DIR` below the build
/// directory, with `PATH` naming `HOSTTOOLS_DIR` exported (as
/// OpenEmbedded-Core does): a Python task's subprocess and the shell
/// function it runs find the host tools, the work tree is kept under its
/// fixed path, and the build directory is scratch. With and without a
/// mount namespace.
#[test]
fn python_tasks_find_host_tools_where_the_metadata_names_them() {
    let lib = bitbake_lib();
    for sandbox in ["native", "none"] {
        let d = Dirs::outside_tmp();
        let build = d.tmp.path().join("build");
        let (r, s) = d.build_at(&repo_root(), sandbox, "build", &lib, &["pynamed"]);
        assert_eq!(r.code, 0, "{sandbox}: {}", r.stderr);
        assert!(
            s["executed"].as_u64().unwrap() >= 2,
            "{sandbox}: {}",
            r.stderr
        );
        assert_eq!(
            d.deployed("build", "tools.txt"),
            "PYTHON FOUND TR\nSHELL FOUND TR\n",
            "{sandbox}"
        );
        assert_eq!(
            d.deployed("build", "siggen.txt"),
            "noop None pynamed_1.0.bb\n",
            "{sandbox}"
        );
        // Without a mount namespace the task sees its paths moved below its
        // own host root (`PathMap`), `WORKDIR` too.
        let workdir = format!("{}/tmp/work/pynamed\n", build.display());
        let seen = d.deployed("build", "where.txt");
        match sandbox {
            "native" => assert_eq!(seen, format!("workdir {workdir}")),
            _ => assert!(
                seen.starts_with("workdir /") && seen.ends_with(&format!("/root{workdir}")),
                "{seen}"
            ),
        }
        // Nothing the task wrote below the build directory reached the host.
        assert!(
            !build.join("tmp/sstate-control").exists(),
            "{sandbox}: the scratch write reached the host"
        );
    }
}

/// BitBake's fetcher in a Python task (poky's `do_fetch`): `DL_DIR`, named
/// below the build directory, shows bitzel's download directory
/// copy-on-write — a download already there is found, the fetcher's
/// `[dirs]`, `.lock` and `.done` writes succeed and never reach the host —
/// and a `file://` source is found in the layer through `FILESPATH`. The
/// task gets `BB_TASKDEPDATA` (itself and its dependencies, transitively)
/// and `BB_TASKHASH`, and runs with its `[umask]`, as bitbake-worker sets them.
#[test]
fn bitbakes_fetcher_sees_dl_dir_copy_on_write_and_the_task_its_dependencies() {
    let lib = bitbake_lib();
    let d = Dirs::outside_tmp();
    // No download directory yet: DL_DIR is an empty writable view, and the
    // http source is not there: BitBake's own offline error.
    let (r, _) = d.build("build", &lib, &["pyfetch"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("Network access disabled through BB_NO_NETWORK"),
        "{}",
        r.stderr
    );
    let dl = d.tmp.path().join("build/downloads");
    assert!(!dl.exists(), "the task's DL_DIR writes reached the host");
    std::fs::create_dir_all(&dl).unwrap();
    std::fs::write(dl.join("hello-1.0.txt"), "hello from DL_DIR\n").unwrap();
    // An old-format stamp, which the fetcher rewrites with the checksums; the
    // task's identity may write it, as the user BitBake runs as may.
    std::fs::write(dl.join("hello-1.0.txt.done"), "").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dl.join("hello-1.0.txt.done"),
        std::fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    let (r, _) = d.build("build", &lib, &["pyfetch"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        d.deployed("build", "sources.txt"),
        "greeting.txt: hello from the layer\nhello-1.0.txt: hello from DL_DIR\n"
    );
    // The stamp the fetcher rewrote, in the task's view only.
    assert_eq!(
        d.deployed("build", "dl_dir.txt"),
        "hello-1.0.txt hello-1.0.txt.done\nstamp rewritten True\n"
    );
    let mut host: Vec<String> = std::fs::read_dir(&dl)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    host.sort();
    assert_eq!(host, ["hello-1.0.txt", "hello-1.0.txt.done"]);
    assert_eq!(std::fs::read(dl.join("hello-1.0.txt.done")).unwrap(), b"");
    assert_eq!(
        d.deployed("build", "taskdepdata.txt"),
        "pyfetch_1.0.bb:do_fetch pyfetch do_fetch deps=\n\
         pyfetch_1.0.bb:do_getsrc pyfetch do_getsrc deps=pyfetch_1.0.bb:do_unpack\n\
         pyfetch_1.0.bb:do_unpack pyfetch do_unpack deps=pyfetch_1.0.bb:do_fetch\n\
         own hash True\n\
         umask 027\n"
    );
}

#[test]
fn bb_fatal_and_exceptions_fail_naming_the_metadata_line() {
    let lib = bitbake_lib();
    let d = Dirs::new();
    let (r, _) = d.build("build", &lib, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    let (r, _) = d.build("build", &lib, &["pyfatal"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("ERROR pyfatal:do_compile: PYFATAL_CONFIG is not set for pyfatal"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("do_compile failed at ")
            && r.stderr.contains("recipes-test/pyfatal/pyfatal_1.0.bb:6"),
        "{}",
        r.stderr
    );

    let (r, _) = d.build("build", &lib, &["pyraise"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("KeyError: 'version'"), "{}", r.stderr);
    assert!(
        r.stderr.contains("do_compile failed at ")
            && r.stderr.contains("recipes-test/pyraise/pyraise_1.0.bb:7"),
        "{}",
        r.stderr
    );

    // The failures left nothing behind: the good build runs nothing.
    let (r, s) = d.build("build", &lib, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(s["executed"], 0, "{}", r.stderr);
}

#[test]
fn a_wrong_library_is_named_with_how_to_set_one() {
    let d = Dirs::new();
    let empty = d.tmp.path().join("not-bitbake");
    std::fs::create_dir_all(&empty).unwrap();
    let (r, _) = d.build("build", &empty, &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("BITZEL_BITBAKE_LIB is")
            && r.stderr.contains("no `bb/__init__.py`")
            && r.stderr.contains("bitzel: bitbake_lib:"),
        "{}",
        r.stderr
    );
}

/// A recipe read from the parse cache by a new process still finds the
/// submodules its parse imported: pylazy's value calls
/// `pyfixture.lazy`, which only its anonymous function imports.
#[test]
fn a_warm_parse_in_a_new_process_imports_what_the_cold_one_did() {
    let d = Dirs::new();
    let lib = bitbake_lib();
    let show = || -> Run {
        Command::new(env!("CARGO_BIN_EXE_bitzel"))
            .current_dir(repo_root())
            .args(["--color", "never", "show", "testdata/python/project.yml"])
            .args(["pylazy", "LAZY", "--build-dir"])
            .arg(d.tmp.path().join("build"))
            .arg("--cache-dir")
            .arg(d.tmp.path().join("cache"))
            .env("BITZEL_BITBAKE_LIB", &lib)
            .env_remove("BITZEL_LOG")
            .output()
            .unwrap()
            .into()
    };
    let cold = show();
    assert_eq!(cold.code, 0, "{}", cold.stderr);
    assert_eq!(cold.stdout, "LAZY=\"lazy:pylazy\"\n", "{}", cold.stderr);
    let entries = walk_files(&d.tmp.path().join("cache"));
    assert!(
        entries.iter().any(|e| e.contains("pylazy_1.0.bb")),
        "no parse cache entry for pylazy"
    );
    let warm = show();
    assert_eq!(warm.code, 0, "{}", warm.stderr);
    assert_eq!(warm.stdout, cold.stdout, "{}", warm.stderr);
}

/// The text (lossy) of every file below `dir`.
fn walk_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(p) = todo.pop() {
        for e in std::fs::read_dir(&p).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                todo.push(path);
            } else if let Ok(b) = std::fs::read(&path) {
                out.push(String::from_utf8_lossy(&b).into_owned());
            }
        }
    }
    out
}

/// Every file below `dir` (relative path, content), sorted.
fn tree_contents(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(p) = todo.pop() {
        for e in std::fs::read_dir(&p).unwrap().flatten() {
            let path = e.path();
            if e.file_type().unwrap().is_dir() {
                todo.push(path);
            } else {
                let content = std::fs::read(&path).unwrap_or_default();
                out.push((path.strip_prefix(dir).unwrap().to_path_buf(), content));
            }
        }
    }
    out.sort();
    out
}

/// Importing `bb` writes nothing into the BitBake library, the working
/// directory or a task's output: ply would write BitBake's shell-parser
/// tables (`bb/pysh/pyshtables.py`) beside the parser, or into the working
/// directory (a Python task's, whose library is read-only), and Python its
/// bytecode beside the sources; the parse keeps both in bitzel's cache
/// directory, where the next process reads the tables back instead of
/// building them again, and a Python task in its runner's scratch directory.
#[test]
fn importing_bb_writes_nothing_into_the_library_the_working_directory_or_outputs() {
    let d = Dirs::new();
    let lib = d.tmp.path().join("lib");
    let st = Command::new("cp")
        .arg("-a")
        .arg(bitbake_lib())
        .arg(&lib)
        .status()
        .unwrap();
    assert!(st.success());
    // As freshly unpacked: no tables and no bytecode, so both would be made.
    let st = Command::new("find")
        .arg(&lib)
        .args(["(", "-name", "__pycache__", "-o", "-name", "pyshtables.py"])
        .args([")", "-prune", "-exec", "rm", "-rf", "{}", "+"])
        .status()
        .unwrap();
    assert!(st.success());
    let before = tree_contents(&lib);
    let cwd = d.tmp.path().join("cwd");
    std::fs::create_dir(&cwd).unwrap();
    let cache = d.tmp.path().join("cache");
    let show = || d.show_recipes(&cwd, &lib);
    let untouched = || {
        assert!(tree_contents(&lib) == before, "the library was written to");
        assert!(
            tree_contents(&cwd).is_empty(),
            "the working dir was written to"
        );
    };
    let tables = |cache: &Path| -> Vec<PathBuf> {
        tree_contents(cache)
            .into_iter()
            .map(|(p, _)| cache.join(p))
            .filter(|p| p.ends_with("bitzel_pysh/pyshtables.py"))
            .collect()
    };
    let cold = show();
    assert_eq!(cold.code, 0, "{}", cold.stderr);
    assert!(cold.stdout.contains("pyinfo"), "{}", cold.stdout);
    untouched();
    let kept = tables(&cache);
    assert_eq!(kept.len(), 1, "shell-parser tables in the cache: {kept:?}");
    let made = std::fs::metadata(&kept[0]).unwrap().modified().unwrap();
    std::fs::remove_dir_all(cache.join("parse")).unwrap();
    let again = show();
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.stdout, cold.stdout);
    untouched();
    assert_eq!(tables(&cache), kept);
    let read = std::fs::metadata(&kept[0]).unwrap().modified().unwrap();
    assert_eq!(made, read, "the kept tables were built again");

    // Python tasks import `bb` in the sandbox.
    let (r, s) = d.build("build", &lib, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(s["executed"], 7, "{}", r.stderr);
    untouched();
    let outputs: Vec<PathBuf> = [d.tmp.path().join("build"), cache.join("v1")]
        .iter()
        .flat_map(|dir| tree_contents(dir).into_iter().map(|(p, _)| dir.join(p)))
        .filter(|p| p.ends_with("pyshtables.py"))
        .collect();
    assert_eq!(outputs, Vec::<PathBuf>::new(), "tables in a task's output");
}

/// `addpylib`'s module functions (pyfixture's `BBIMPORTS`) go through
/// BitBake's code parser once: what it learnt is kept in BitBake's own
/// code-parser cache file under bitzel's cache directory, and a second
/// process finds every function there (it would write the file again had
/// it parsed any).
#[test]
fn addpylib_module_functions_are_parsed_once_and_kept_in_the_cache() {
    let d = Dirs::new();
    let lib = bitbake_lib();
    let cache = d.tmp.path().join("cache");
    let show = || d.show_recipes(&repo_root(), &lib);
    let dir = cache.join("python/bitbake-codeparser");
    let kept = dir.join("bb_codeparser.dat");
    let first = show();
    assert_eq!(first.code, 0, "{}", first.stderr);
    let made = std::fs::metadata(&kept)
        .unwrap_or_else(|e| panic!("{}: {e}", kept.display()))
        .modified()
        .unwrap();
    let second = show();
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(second.stdout, first.stdout);
    let read = std::fs::metadata(&kept).unwrap().modified().unwrap();
    assert_eq!(made, read, "the code-parser cache was written again");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("bb_codeparser.dat-"))
        .collect();
    assert_eq!(names, Vec::<String>::new(), "unmerged entries");
}

/// A layer of `n` recipes whose anonymous Python sets a value, one with a
/// computed `BBCLASSEXTEND` (the costliest first), and a kas file for it
/// with `bitzel.jobs: jobs`, under `dir`.
fn many_recipes(dir: &Path, n: usize, jobs: usize) -> PathBuf {
    let layer = dir.join("meta-many");
    std::fs::create_dir_all(layer.join("conf")).unwrap();
    std::fs::create_dir_all(layer.join("recipes")).unwrap();
    std::fs::write(
        layer.join("conf/layer.conf"),
        "BBPATH .= \":${LAYERDIR}\"\nBBFILES += \"${LAYERDIR}/recipes/*.bb\"\n\
         BBFILE_COLLECTIONS += \"many\"\nBBFILE_PATTERN_many = \"^${LAYERDIR}/\"\n\
         BBFILE_PRIORITY_many = \"6\"\nLAYERSERIES_COMPAT_many = \"bitzel\"\n",
    )
    .unwrap();
    for i in 0..n {
        let extend = if i == n - 1 {
            "BBCLASSEXTEND = \"${@'native'}\"\n"
        } else {
            ""
        };
        std::fs::write(
            layer.join(format!("recipes/many-{i}_1.0.bb")),
            format!("LICENSE = \"MIT\"\n{extend}python () {{\n    d.setVar(\"FROM_ANON\", \"anon-\" + d.getVar(\"PN\"))\n}}\n"),
        )
        .unwrap();
    }
    let yml = dir.join(format!("many-{jobs}.yml"));
    std::fs::write(
        &yml,
        format!(
            "header:\n  version: 14\nmachine: qemux86-64\ndistro: bitzel\nrepos:\n  bitzel-core:\n    path: {}\n    layers:\n      .:\n  many:\n    path: {}\n    layers:\n      .:\nbitzel:\n  jobs: {jobs}\n",
            repo_root().join("layers/meta-bitzel").display(),
            layer.display()
        ),
    )
    .unwrap();
    yml
}

/// A cold parse with parser processes (`bitzel.jobs: 2`, 80 recipe files
/// missing from the parse cache) hands the files out one at a time: each
/// is parsed exactly once, in one process or the other, the costliest
/// first, and the result is what one process parses.
#[test]
fn parser_processes_share_a_cold_parse_and_parse_each_file_once() {
    let d = Dirs::new();
    let lib = bitbake_lib();
    let n = 80;
    let show = |yml: &Path, cache: &str, args: &[&str]| -> Run {
        Command::new(env!("CARGO_BIN_EXE_bitzel"))
            .args(["--color", "never", "show"])
            .arg(yml)
            .args(args)
            .arg("--build-dir")
            .arg(d.tmp.path().join("build"))
            .arg("--cache-dir")
            .arg(d.tmp.path().join(cache))
            .env("BITZEL_BITBAKE_LIB", &lib)
            .env("BITZEL_LOG", "bitzel_meta::workspace=debug")
            .output()
            .unwrap()
            .into()
    };
    let two = many_recipes(d.tmp.path(), n, 2);
    let cold = show(&two, "cache2", &["--recipes"]);
    assert_eq!(cold.code, 0, "{}", cold.stderr);
    assert!(
        cold.stderr.contains("parsing in 2 processes"),
        "{}",
        cold.stderr
    );
    let parsed: Vec<&str> = cold
        .stderr
        .lines()
        .filter(|l| l.contains(" parsed") && l.contains("meta-many/recipes/"))
        .collect();
    let mut files: Vec<&str> = parsed
        .iter()
        .filter_map(|l| l.split("file=").nth(1)?.split_whitespace().next())
        .collect();
    // Handed out first, to one of the three parsers (two threads here,
    // one process there), so among the first three done.
    let costly = format!("many-{}_1.0.bb", n - 1);
    assert!(
        parsed.iter().take(3).any(|l| l.contains(&costly)),
        "the computed BBCLASSEXTEND first: {parsed:#?}"
    );
    files.sort_unstable();
    let before = files.len();
    files.dedup();
    assert_eq!((before, files.len()), (n, n), "{parsed:#?}");
    let one = many_recipes(d.tmp.path(), n, 1);
    let single = show(&one, "cache1", &["--recipes"]);
    assert_eq!(single.code, 0, "{}", single.stderr);
    assert!(!single.stderr.contains("parsing in"), "{}", single.stderr);
    assert_eq!(cold.stdout, single.stdout);
    // Every file and the native variant.
    let listed = cold
        .stdout
        .lines()
        .filter(|l| l.contains("meta-many/recipes/"));
    assert_eq!(listed.count(), n + 1, "{}", cold.stdout);
    // What the parser processes parsed is read back from their entries.
    for pn in ["many-3", "many-40", "many-78"] {
        let v = show(&two, "cache2", &[pn, "FROM_ANON"]);
        assert_eq!(
            v.stdout,
            format!("FROM_ANON=\"anon-{pn}\"\n"),
            "{}",
            v.stderr
        );
    }
}
