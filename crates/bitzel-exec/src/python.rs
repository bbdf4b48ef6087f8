//! Python tasks: a task that is a Python function, has a Python
//! `[prefuncs]`/`[postfuncs]` entry, or calls a shell function whose inline
//! Python (`${@...}`) bitzel's own evaluator cannot expand, runs as BitBake's
//! worker runs it: inside the task's sandbox, `/usr/bin/python3` runs the
//! embedded runner (`pyrunner.py`), which loads the recipe's final datastore
//! (a JSON dump written here) into BitBake's own `DataSmart` and calls
//! `bb.build.exec_func` for each prefunc, the task and each postfunc. Shell
//! functions called from Python (`bb.build.exec_func('do_x', d)`) are
//! emitted and run by BitBake's `exec_func_shell`, as in BitBake.
//!
//! The sandbox sees, read-only, under [`DIR`] (a tmpfs): the runner, the
//! datastore, BitBake's library directory and each layer `addpylib`
//! directory; the runner's `T` (run files, the shell functions' fifo) is a
//! scratch directory there, so nothing of it is captured.
//!
//! Keyed: the wrapper script, the datastore (every variable's final value
//! and flags, each a keyed variable `py:NAME`: conservative, any change
//! re-runs the task, and `explain` names it), the runner,
//! the content digests of the BitBake library and `addpylib` directories;
//! the interpreter and its standard library are in the host root digest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use bitzel_cache::Digest;
use bitzel_meta::DataStore;

use crate::script::{called_functions, TaskData};

/// The runner's source.
pub const RUNNER: &str = include_str!("pyrunner.py");
/// Beside the runner: where BitBake's shell parser keeps its grammar tables
/// ([`bitzel_meta::SHELL_TABLES_PY`]), which the runner loads by this name
/// from its own directory before importing `bb`.
pub const SHELL_TABLES: (&str, &str) = ("shell_tables.py", bitzel_meta::SHELL_TABLES_PY);
/// The interpreter (host build root).
pub const INTERPRETER: &str = "/usr/bin/python3";
/// The sandbox directory holding everything a Python task adds (a tmpfs).
pub const DIR: &str = "/bitzel/py";
/// The runner in the sandbox.
pub const RUNNER_PATH: &str = "/bitzel/py/runner.py";
/// [`SHELL_TABLES`] in the sandbox, beside the runner.
pub const SHELL_TABLES_PATH: &str = "/bitzel/py/shell_tables.py";
/// The task's datastore and settings in the sandbox.
pub const SPEC_PATH: &str = "/bitzel/py/task.json";
/// BitBake's library directory (the one holding `bb/`) in the sandbox.
pub const LIB_PATH: &str = "/bitzel/py/bitbake";
/// Where the `addpylib` directories are mounted: `<this>/<n>`.
pub const PYLIB_PATH: &str = "/bitzel/py/lib";
/// The runner's `T`.
pub const TEMP_PATH: &str = "/bitzel/py/temp";

/// A library directory with its content digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibDir {
    /// Host directory.
    pub dir: PathBuf,
    /// Content digest of everything below it (`__pycache__` excluded,
    /// independent of where it is).
    pub digest: Digest,
}

type Finder = Box<dyn Fn() -> Result<PathBuf, String> + Send + Sync>;

/// How Python tasks find BitBake's library: looked up (and digested) once,
/// when the first Python task needs it, so that metadata without Python
/// tasks never needs BitBake.
pub struct PythonSetup {
    find: Finder,
    lib: OnceLock<Result<LibDir, String>>,
    pylibs: Mutex<BTreeMap<PathBuf, Digest>>,
}

impl PythonSetup {
    /// `find` gives the directory holding `bb/` or an error saying where it
    /// looked and how to name one (the binary passes
    /// `bitzel_config::find_bitbake_lib`).
    pub fn new(find: impl Fn() -> Result<PathBuf, String> + Send + Sync + 'static) -> Self {
        PythonSetup {
            find: Box::new(find),
            lib: OnceLock::new(),
            pylibs: Mutex::new(BTreeMap::new()),
        }
    }

    /// No library: every Python task fails saying so.
    pub fn none() -> Self {
        PythonSetup::new(|| {
            Err("no BitBake library was configured for Python tasks \
                 (set BITZEL_BITBAKE_LIB or `bitzel: bitbake_lib:`)"
                .into())
        })
    }

    /// The BitBake library directory and its digest.
    pub fn lib(&self) -> Result<&LibDir, String> {
        self.lib
            .get_or_init(|| {
                let dir = (self.find)()?;
                let digest = dir_digest(&dir)?;
                tracing::debug!(dir = %dir.display(), digest = %digest.short(), "BitBake library");
                Ok(LibDir { dir, digest })
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    fn pylib_digest(&self, dir: &Path) -> Result<Digest, String> {
        if let Some(d) = self.pylibs.lock().ok().and_then(|m| m.get(dir).copied()) {
            return Ok(d);
        }
        let d = dir_digest(dir)?;
        if let Ok(mut m) = self.pylibs.lock() {
            m.insert(dir.to_path_buf(), d);
        }
        Ok(d)
    }
}

/// The content digest of a library directory: relative paths, contents,
/// executable bits and link targets of everything below it, `__pycache__`
/// left out; independent of where the directory is.
fn dir_digest(dir: &Path) -> Result<Digest, String> {
    if !dir.is_dir() {
        return Err(format!("`{}` is not a directory", dir.display()));
    }
    crate::builtin::tree_digest_skipping(dir, &["__pycache__"])
        .map_err(|e| format!("digesting `{}`: {e}", dir.display()))?
        .parse()
        .map_err(|e| format!("digesting `{}`: {e}", dir.display()))
}

/// Whether `task` runs through the Python runner (see the module
/// documentation).
pub fn needs_python(data: &dyn TaskData, task: &str) -> bool {
    if data.is_python(task) {
        return true;
    }
    let hooks: Vec<String> = ["prefuncs", "postfuncs"]
        .iter()
        .flat_map(|f| {
            data.flag(task, f)
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    if hooks.iter().any(|h| data.is_python(h)) {
        return true;
    }
    std::iter::once(task.to_string())
        .chain(hooks)
        .flat_map(|f| called_functions(data, &f))
        .any(|f| data.unexpandable(&f))
}

/// A Python task's part of the sandbox and the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PyTask {
    /// The wrapper script the sandbox runs.
    pub script: String,
    /// The runner's settings and the datastore (JSON, sandbox paths).
    pub spec: String,
    /// Read-only binds: host directory → sandbox path.
    pub binds: Vec<(PathBuf, String)>,
    /// Key inputs: `python:bitbake-lib`, `python:runner`,
    /// `python:pylib:<n>:<namespace>` → digest.
    pub inputs: BTreeMap<String, Digest>,
    /// Keyed values: the datastore (`py:NAME`, `py:NAME[flag]`) and the
    /// `addpylib` namespaces in import order (`py:addpylib`). With the
    /// task's name (in the label), the constants of this module and
    /// `inputs`, they determine `spec` exactly.
    pub vars: BTreeMap<String, String>,
}

/// Variables that name places only bitzel's host side uses (the layers'
/// search path): left out of the datastore a Python task gets, as BitBake
/// leaves `BB_BASEHASH_IGNORE_VARS` out of its signatures. The build
/// directory's names (`TOPDIR`, `TMPDIR`, the deploy directories) are in it:
/// the sandbox shows `TOPDIR` as scratch ([`crate::named`]), and their values
/// are keyed with the build directory as a placeholder ([`keyed_text`]).
pub const HOST_SIDE_VARS: &[&str] = &["BBPATH"];

/// The datastore as the runner loads it: every variable with its final
/// value (expanded where bitzel can expand it; functions and values with
/// inline Python it cannot evaluate unexpanded, for BitBake to expand) and
/// its flags (unexpanded, as BitBake stores them). Also the keyed form:
/// `NAME` → value and `NAME[flag]` → flag value, so `explain` names the
/// variable that changed.
fn datastore(
    d: &DataStore,
) -> (
    serde_json::Map<String, serde_json::Value>,
    BTreeMap<String, String>,
) {
    let mut vars = serde_json::Map::new();
    let mut keyed = BTreeMap::new();
    for name in d.keys() {
        if HOST_SIDE_VARS.contains(&name.as_str()) {
            continue;
        }
        let mut entry = serde_json::Map::new();
        // A value that is a Python literal (a dict, list, number... that
        // metadata Python stored: poky's SPDX_LICENSE_DATA) goes as its
        // `repr`, which the runner turns back into the object, as BitBake's
        // worker has it from its own parse.
        let literal = (!d.is_func(&name))
            .then(|| d.get_var_unexpanded(&name))
            .flatten()
            .filter(|v| v.starts_with(bitzel_meta::PY_LITERAL));
        if let Some(v) = literal {
            keyed.insert(name.clone(), v.clone());
            entry.insert("l".into(), v[bitzel_meta::PY_LITERAL.len()..].into());
        }
        let value = if entry.contains_key("l") {
            None
        } else if d.is_func(&name) {
            d.get_var_unexpanded(&name)
        } else {
            match d.try_get_var(&name) {
                Ok(v) => v,
                Err(_) => d.get_var_unexpanded(&name),
            }
        };
        if let Some(v) = value {
            keyed.insert(name.clone(), v.clone());
            entry.insert("v".into(), v.into());
        }
        let mut flags = serde_json::Map::new();
        // A flag holding a Python literal (the parser's int 1 of `func`,
        // `export`...) goes as its `str()`, the text the task's `d` reads.
        for (k, v) in d.flags(&name) {
            let v = bitzel_meta::py_str(&v).to_string();
            keyed.insert(format!("{name}[{k}]"), v.clone());
            flags.insert(k, v.into());
        }
        if !flags.is_empty() {
            entry.insert("f".into(), flags.into());
        }
        vars.insert(name, entry.into());
    }
    (vars, keyed)
}

/// The host directories values may name (`FILE`, `FILESPATH`, the
/// functions' `[filename]`...): each layer of `BBLAYERS` and `TOPDIR`, with
/// the placeholder that stands for it in the key, longest path first.
pub(crate) fn host_roots(d: &DataStore) -> Vec<(String, String)> {
    let mut roots: Vec<(String, String)> = d
        .get_var("BBLAYERS")
        .unwrap_or_default()
        .split_whitespace()
        .enumerate()
        .map(|(i, l)| (l.trim_end_matches('/').to_string(), format!("<layer {i}>")))
        .collect();
    if let Some(top) = d.get_var("TOPDIR") {
        roots.push((top.trim_end_matches('/').to_string(), "<TOPDIR>".into()));
    }
    roots.retain(|(p, _)| p.len() > 1);
    // Anonymous functions are named after their file with `/.+-@%&~` made
    // `_` (`__anon_<line>_<file>`, in `__BBANONFUNCS` and their `def`
    // line): those names hold the directories in that form.
    let mangled: Vec<(String, String)> = roots
        .iter()
        .map(|(p, ph)| {
            let m: String = p
                .chars()
                .map(|c| if "/.+-@%&~".contains(c) { '_' } else { c })
                .collect();
            (m, ph.clone())
        })
        .collect();
    roots.extend(mangled);
    roots.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
    roots
}

/// A value as the key holds it: the host directories of [`host_roots`]
/// replaced by their placeholders, so that a moved checkout or another build
/// directory keys a Python task the same (ARCHITECTURE.md: no host path in a
/// key). The task itself sees the real paths (its messages name the
/// metadata files); like BitBake's `BB_BASEHASH_IGNORE_VARS`, an output that
/// copied such a path would be shared across checkouts.
pub(crate) fn keyed_text(v: &str, roots: &[(String, String)]) -> String {
    let mut out = v.to_string();
    for (path, placeholder) in roots {
        if out.contains(path.as_str()) {
            out = out.replace(path.as_str(), placeholder);
        }
    }
    out
}

/// Everything a Python task needs beyond a shell task. `filename` is
/// BitBake's name for the recipe (`virtual:<variant>:<file>` for a variant),
/// the task's `BB_FILENAME`.
pub fn py_task(
    d: &DataStore,
    task: &str,
    filename: &str,
    taskdepdata: &serde_json::Value,
    setup: &PythonSetup,
) -> Result<PyTask, String> {
    let lib = setup.lib()?;
    let mut binds = vec![(lib.dir.clone(), LIB_PATH.to_string())];
    let mut inputs = BTreeMap::new();
    inputs.insert("python:bitbake-lib".to_string(), lib.digest);
    inputs.insert(
        "python:runner".to_string(),
        Digest::of_bytes(format!("{RUNNER}\0{}", SHELL_TABLES.1).as_bytes()),
    );
    let mut pylibs = Vec::new();
    let mut namespaces = Vec::new();
    let recorded = d
        .get_var_unexpanded(bitzel_meta::ADDPYLIB_VAR)
        .unwrap_or_default();
    for (i, line) in recorded.lines().enumerate() {
        let Some((ns, dir)) = line.split_once(' ') else {
            continue;
        };
        let host = PathBuf::from(dir);
        let digest = setup
            .pylib_digest(&host)
            .map_err(|e| format!("addpylib {dir} {ns}: {e}"))?;
        let dst = format!("{PYLIB_PATH}/{i}");
        // Several layers may add directories to one namespace (`oe`): keyed by position.
        inputs.insert(format!("python:pylib:{i}:{ns}"), digest);
        pylibs.push(serde_json::json!([ns, dst]));
        namespaces.push(ns.to_string());
        binds.push((host, dst));
    }
    let (json_vars, keyed) = datastore(d);
    let roots = host_roots(d);
    let mut vars: BTreeMap<String, String> = keyed
        .into_iter()
        .map(|(k, v)| {
            let k = keyed_text(&k, &roots);
            (format!("py:{k}"), keyed_text(&v, &roots))
        })
        .collect();
    vars.insert("py:addpylib".into(), namespaces.join(" "));
    vars.insert("py:BB_FILENAME".into(), keyed_text(filename, &roots));
    vars.insert(
        "py:BB_TASKDEPDATA".into(),
        keyed_text(&taskdepdata.to_string(), &roots),
    );
    let spec = serde_json::json!({
        "task": task,
        "filename": filename,
        "taskdepdata": taskdepdata,
        "bitbake_lib": LIB_PATH,
        "temp": TEMP_PATH,
        "pylibs": pylibs,
        "vars": json_vars,
    });
    let spec = serde_json::to_string(&spec).map_err(|e| format!("writing the datastore: {e}"))?;
    let script = format!(
        "#!/bin/sh\n# generated by bitzel: {task} has Python functions; BitBake's bb.build runs \
         it as its worker does\nexec {INTERPRETER} -I -B {RUNNER_PATH} {SPEC_PATH}\n"
    );
    Ok(PyTask {
        script,
        spec,
        binds,
        inputs,
        vars,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::tests::Fake;

    #[test]
    fn which_tasks_need_python() {
        let d = Fake::default()
            .func("do_sh", "\thelper")
            .func("helper", "\techo hi")
            .func("do_py", "    pass")
            .flag("do_py", "python", "1")
            .func("do_hooked", "\ttrue")
            .func("py_post", "    pass")
            .flag("py_post", "python", "1")
            .flag("do_hooked", "postfuncs", "py_post")
            .func("do_inline", "\tinline_user")
            .func("inline_user", "\techo ${@my_def(d)}")
            .flag("inline_user", "unexpandable", "1");
        assert!(!needs_python(&d, "do_sh"));
        assert!(needs_python(&d, "do_py"));
        assert!(needs_python(&d, "do_hooked"));
        assert!(needs_python(&d, "do_inline"));
    }

    fn store() -> DataStore {
        let mut d = DataStore::new();
        let mut set = |k: &str, v: &str| d.set_var(k, v.into(), None);
        set("PN", "demo");
        set("B", "/bitzel/work/${PN}");
        set("TOPDIR", "/home/me/build");
        set("BBPATH", "/home/me/build");
        set("do_py", "    bb.note(d.getVar('B'))");
        set(
            bitzel_meta::ADDPYLIB_VAR,
            "mylib /nonexistent/lib\nother /nonexistent/other",
        );
        d.set_var_flag("do_py", "func", "1".into(), None);
        d.set_var_flag("do_py", "python", "1".into(), None);
        d.set_var_flag("do_py", "dirs", "${B}".into(), None);
        d
    }

    #[test]
    fn the_datastore_is_keyed_per_variable_without_host_side_paths() {
        let t = tempfile::tempdir().unwrap();
        let bblib = t.path().join("bblib");
        std::fs::create_dir_all(bblib.join("bb")).unwrap();
        std::fs::write(bblib.join("bb/__init__.py"), "").unwrap();
        let lib = bblib.clone();
        let setup = PythonSetup::new(move || Ok(lib.clone()));
        // The addpylib directories must exist.
        let err =
            py_task(&store(), "do_py", "/r/x.bb", &serde_json::json!({}), &setup).unwrap_err();
        assert!(err.contains("addpylib /nonexistent/lib mylib"), "{err}");

        let mut d = store();
        for sub in ["lib", "other"] {
            std::fs::create_dir_all(t.path().join(sub)).unwrap();
        }
        let recorded = format!("mylib {0}/lib\nother {0}/other", t.path().display());
        d.set_var(bitzel_meta::ADDPYLIB_VAR, recorded.as_str().into(), None);
        let py = py_task(&d, "do_py", "/r/x.bb", &serde_json::json!({}), &setup).unwrap();
        assert_eq!(py.vars["py:B"], "/bitzel/work/demo");
        assert_eq!(py.vars["py:do_py"], "    bb.note(d.getVar('B'))");
        assert_eq!(py.vars["py:do_py[dirs]"], "${B}");
        assert_eq!(py.vars["py:addpylib"], "mylib other");
        assert!(!py.vars.contains_key("py:BBPATH"), "{:?}", py.vars);
        assert_eq!(py.vars["py:TOPDIR"], "<TOPDIR>");
        assert_eq!(
            py.inputs.keys().collect::<Vec<_>>(),
            vec![
                "python:bitbake-lib",
                "python:pylib:0:mylib",
                "python:pylib:1:other",
                "python:runner"
            ]
        );
        assert_eq!(
            py.binds,
            vec![
                (bblib.clone(), LIB_PATH.to_string()),
                (t.path().join("lib"), format!("{PYLIB_PATH}/0")),
                (t.path().join("other"), format!("{PYLIB_PATH}/1")),
            ]
        );
        let spec: serde_json::Value = serde_json::from_str(&py.spec).unwrap();
        assert_eq!(spec["task"], "do_py");
        assert_eq!(spec["filename"], "/r/x.bb");
        assert_eq!(py.vars["py:BB_FILENAME"], "/r/x.bb");
        assert_eq!(spec["vars"]["do_py"]["f"]["python"], "1");
        assert_eq!(spec["vars"]["TOPDIR"]["v"], "/home/me/build");
        assert!(py
            .script
            .ends_with("exec /usr/bin/python3 -I -B /bitzel/py/runner.py /bitzel/py/task.json\n"));
        // A library's content is keyed.
        std::fs::write(t.path().join("lib/extra.py"), "X = 1\n").unwrap();
        let setup2 = PythonSetup::new(move || Ok(bblib.clone()));
        let again = py_task(&d, "do_py", "/r/x.bb", &serde_json::json!({}), &setup2).unwrap();
        assert_ne!(
            again.inputs["python:pylib:0:mylib"],
            py.inputs["python:pylib:0:mylib"]
        );
        assert_eq!(
            again.inputs["python:bitbake-lib"],
            py.inputs["python:bitbake-lib"]
        );
    }

    #[test]
    fn host_directories_are_placeholders_in_the_key() {
        let mut d = DataStore::new();
        d.set_var(
            "BBLAYERS",
            " /src/poky/meta /src/poky/meta-extra/ ".into(),
            None,
        );
        d.set_var("TOPDIR", "/src/build".into(), None);
        let roots = host_roots(&d);
        assert_eq!(
            keyed_text(
                "/src/poky/meta-extra/x.bb:/src/poky/meta/y:/src/build/tmp:/src/poky/metal",
                &roots
            ),
            "<layer 1>/x.bb:<layer 0>/y:<TOPDIR>/tmp:<layer 0>l"
        );
    }

    #[test]
    fn without_a_library_a_python_task_says_how_to_name_one() {
        let err = py_task(
            &store(),
            "do_py",
            "/r/x.bb",
            &serde_json::json!({}),
            &PythonSetup::none(),
        )
        .unwrap_err();
        assert!(err.contains("BITZEL_BITBAKE_LIB"), "{err}");
    }
}
