//! The shell script a task runs, generated the way BitBake writes its
//! `run.do_<task>` files: the task's shell function plus every shell function
//! it calls (transitively), `set -e`, the task's `[cleandirs]` and `[dirs]`,
//! and finally a call of the task function.
//!
//! `[prefuncs]` and `[postfuncs]` run as BitBake's `exec_task` runs them: each
//! prefunc, then the task function, then each postfunc, every one with its own
//! `[cleandirs]`/`[dirs]`/`cd`. BitBake runs each function in its own process,
//! so here each runs in its own subshell: a `cd`, a variable or an `exit 0` in
//! one does not reach the next, and a failure stops the task. They are part of
//! the one script, so the task's key covers them.
//!
//! The exported environment is not written into the script: it is handed to
//! the sandbox as the process environment, so that it is a separate, named
//! part of the action (and `explain` can name the variable that changed).

use std::collections::{BTreeMap, BTreeSet};

use crate::builtin::shell::quote as shell_quote;

/// What script generation needs of a recipe's datastore.
pub trait TaskData {
    /// The expanded value of a variable.
    fn var(&self, name: &str) -> Option<String>;
    /// The expanded value of a variable flag.
    fn flag(&self, var: &str, flag: &str) -> Option<String>;
    /// Whether `name` is a function (a variable with the `func` flag).
    fn is_func(&self, name: &str) -> bool;
    /// Whether `name` is a Python function.
    fn is_python(&self, name: &str) -> bool;
    /// Whether `name` is exported to the task's environment.
    fn is_exported(&self, name: &str) -> bool;
    /// Every variable name, sorted.
    fn names(&self) -> Vec<String>;
    /// Whether `name` is set but bitzel cannot expand it (inline Python
    /// outside its evaluator's subset, such as a call of a `def`).
    fn unexpandable(&self, name: &str) -> bool;
}

/// Why a task's script could not be generated.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScriptError {
    /// The task has no function body.
    #[error("task {task} has no function body: define `{task}() {{ ... }}` or mark it `{task}[noexec] = \"1\"`")]
    NoBody {
        /// The task name.
        task: String,
    },
    /// The task is a Python function: it has no shell script (the executor
    /// runs it through [`crate::python`]).
    #[error("task {task} is a Python function, which has no shell script")]
    Python {
        /// The task name.
        task: String,
    },
    /// A function of the task's `[prefuncs]` or `[postfuncs]` is a Python
    /// function: the task has no shell script (the executor runs it through
    /// [`crate::python`]).
    #[error("{task}[{flag}] names `{func}`, a Python function, so the task has no shell script")]
    PythonHook {
        /// The task name.
        task: String,
        /// `prefuncs` or `postfuncs`.
        flag: &'static str,
        /// The Python function.
        func: String,
    },
}

/// A generated task script and what went into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskScript {
    /// The script text, run with `/bin/sh`.
    pub text: String,
    /// The shell functions included, sorted (the task function among them).
    pub functions: BTreeSet<String>,
    /// The exported environment, sorted.
    pub env: BTreeMap<String, String>,
    /// The directory the task function starts in.
    pub cwd: String,
    /// `[prefuncs]`/`[postfuncs]` entries that name no function: skipped, as
    /// BitBake skips them with a warning ("Function ... doesn't exist"), and
    /// reported here so the caller can warn.
    pub missing: Vec<String>,
}

/// Words in a shell body that could be command names: split on whitespace
/// and shell punctuation. Over-approximates (an argument that happens to be a
/// function's name pulls that function in), which only adds text to the key.
fn shell_words(body: &str) -> impl Iterator<Item = &str> {
    body.split(|c: char| {
        c.is_whitespace()
            || matches!(
                c,
                ';' | '|' | '&' | '(' | ')' | '{' | '}' | '`' | '$' | '"' | '\'' | '<' | '>' | '='
            )
    })
    .filter(|w| !w.is_empty())
}

/// The shell functions `root` calls, transitively, including `root`.
pub fn called_functions(data: &dyn TaskData, root: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![root.to_string()];
    while let Some(name) = stack.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        // A body bitzel cannot expand makes the task a Python one (crate::python);
        // nothing to scan here, and no expansion warning for it.
        if data.unexpandable(&name) {
            continue;
        }
        let Some(body) = data.var(&name) else {
            continue;
        };
        for w in shell_words(&body) {
            if !seen.contains(w) && data.is_func(w) && !data.is_python(w) {
                stack.push(w.to_string());
            }
        }
    }
    seen
}

/// The exported environment of a recipe: every exported, non-function
/// variable with a value, expanded.
pub fn exported_env(data: &dyn TaskData) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for name in data.names() {
        if data.is_exported(&name) && !data.is_func(&name) {
            if let Some(v) = data.var(&name) {
                env.insert(name, v);
            }
        }
    }
    env
}

/// Generate the script for `task` (see the module documentation).
pub fn task_script(data: &dyn TaskData, task: &str) -> Result<TaskScript, ScriptError> {
    if data.is_python(task) {
        return Err(ScriptError::Python {
            task: task.to_string(),
        });
    }
    if data.var(task).is_none() {
        return Err(ScriptError::NoBody {
            task: task.to_string(),
        });
    }
    let mut missing = Vec::new();
    let prefuncs = hooks(data, task, "prefuncs", &mut missing)?;
    let postfuncs = hooks(data, task, "postfuncs", &mut missing)?;
    let mut functions = called_functions(data, task);
    for f in prefuncs.iter().chain(&postfuncs) {
        functions.extend(called_functions(data, f));
    }
    let mut text = String::from("#!/bin/sh\n# generated by bitzel\nset -e\n\n");
    for f in &functions {
        let body = data.var(f).unwrap_or_default();
        let body = body.trim_matches('\n');
        text.push_str(f);
        text.push_str("() {\n");
        // An empty body is a syntax error in sh; `:` does nothing, as intended.
        text.push_str(if body.trim().is_empty() { "\t:" } else { body });
        text.push_str("\n}\n\n");
    }
    let subshells = !prefuncs.is_empty() || !postfuncs.is_empty();
    for f in &prefuncs {
        call(data, f, subshells, &mut text);
    }
    let cwd = call(data, task, subshells, &mut text);
    for f in &postfuncs {
        call(data, f, subshells, &mut text);
    }
    Ok(TaskScript {
        text,
        functions,
        env: exported_env(data),
        cwd,
        missing,
    })
}

/// The functions of `task[flag]` (`prefuncs` or `postfuncs`) to run, in
/// order: Python ones are refused; names without a function, or with an
/// empty body, are skipped (BitBake's `exec_func` returns early for both), the
/// former also reported in `missing`.
fn hooks(
    data: &dyn TaskData,
    task: &str,
    flag: &'static str,
    missing: &mut Vec<String>,
) -> Result<Vec<String>, ScriptError> {
    let mut out = Vec::new();
    for f in data.flag(task, flag).unwrap_or_default().split_whitespace() {
        match data.var(f) {
            None => missing.push(format!("{task}[{flag}]: function `{f}` does not exist")),
            Some(_) if data.is_python(f) => {
                return Err(ScriptError::PythonHook {
                    task: task.to_string(),
                    flag,
                    func: f.to_string(),
                })
            }
            Some(body) if body.trim().is_empty() => {}
            Some(_) => out.push(f.to_string()),
        }
    }
    Ok(out)
}

/// Append the call of `func` as BitBake's `exec_func` makes it: its own
/// `[cleandirs]` emptied, its `[dirs]` created, `cd` to the last of them
/// (else `B`, else `/`), then the call; in a subshell when `subshell`.
/// Returns the directory it runs in.
fn call(data: &dyn TaskData, func: &str, subshell: bool, text: &mut String) -> String {
    let split = |flag: &str| -> Vec<String> {
        data.flag(func, flag)
            .map(|v| v.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    };
    let cleandirs = split("cleandirs");
    let dirs = split("dirs");
    if subshell {
        text.push_str("(\n");
    }
    for d in &cleandirs {
        text.push_str(&format!("rm -rf {q}\nmkdir -p {q}\n", q = shell_quote(d)));
    }
    for d in &dirs {
        text.push_str(&format!("mkdir -p {}\n", shell_quote(d)));
    }
    let cwd = dirs
        .last()
        .cloned()
        .or_else(|| data.var("B"))
        .unwrap_or_else(|| "/".to_string());
    if dirs.is_empty() {
        text.push_str(&format!("mkdir -p {}\n", shell_quote(&cwd)));
    }
    text.push_str(&format!("cd {}\n{func}\n", shell_quote(&cwd)));
    if subshell {
        text.push_str(")\n");
    }
    cwd
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A datastore stand-in for tests.
    #[derive(Default)]
    pub struct Fake {
        pub vars: BTreeMap<String, String>,
        pub flags: BTreeMap<(String, String), String>,
    }

    impl Fake {
        pub fn var(mut self, k: &str, v: &str) -> Self {
            self.vars.insert(k.into(), v.into());
            self
        }
        pub fn flag(mut self, k: &str, f: &str, v: &str) -> Self {
            self.flags.insert((k.into(), f.into()), v.into());
            self
        }
        pub fn func(self, k: &str, body: &str) -> Self {
            self.var(k, body).flag(k, "func", "1")
        }
    }

    impl TaskData for Fake {
        fn var(&self, name: &str) -> Option<String> {
            self.vars.get(name).cloned()
        }
        fn flag(&self, var: &str, flag: &str) -> Option<String> {
            self.flags.get(&(var.into(), flag.into())).cloned()
        }
        fn is_func(&self, name: &str) -> bool {
            self.flags.contains_key(&(name.into(), "func".into()))
        }
        fn is_python(&self, name: &str) -> bool {
            self.flags.contains_key(&(name.into(), "python".into()))
        }
        fn is_exported(&self, name: &str) -> bool {
            self.flags.contains_key(&(name.into(), "export".into()))
        }
        fn names(&self) -> Vec<String> {
            self.vars.keys().cloned().collect()
        }
        fn unexpandable(&self, name: &str) -> bool {
            self.flags
                .contains_key(&(name.into(), "unexpandable".into()))
        }
    }

    fn sample() -> Fake {
        Fake::default()
            .var("B", "/bitzel/work/build")
            .var("CC", "gcc")
            .flag("CC", "export", "1")
            .var("UNUSED", "x")
            .func("oe_runmake", "\tmake \"$@\" || bbfatal make failed")
            .func("bbfatal", "\techo \"ERROR: $*\"\n\texit 1")
            .func("never_called", "\techo no")
            .func("do_compile", "\toe_runmake all")
            .flag("do_compile", "dirs", "/bitzel/work/build")
            .func("do_py", "bb.note('x')")
            .flag("do_py", "python", "1")
    }

    #[test]
    fn includes_called_functions_transitively_and_nothing_else() {
        let s = task_script(&sample(), "do_compile").unwrap();
        expect_test::expect![[r#"
            #!/bin/sh
            # generated by bitzel
            set -e

            bbfatal() {
            	echo "ERROR: $*"
            	exit 1
            }

            do_compile() {
            	oe_runmake all
            }

            oe_runmake() {
            	make "$@" || bbfatal make failed
            }

            mkdir -p /bitzel/work/build
            cd /bitzel/work/build
            do_compile
        "#]]
        .assert_eq(&s.text);
        assert_eq!(s.env.keys().collect::<Vec<_>>(), vec!["CC"]);
        assert_eq!(s.cwd, "/bitzel/work/build");
    }

    #[test]
    fn python_and_missing_tasks_are_errors() {
        assert_eq!(
            task_script(&sample(), "do_py"),
            Err(ScriptError::Python {
                task: "do_py".into()
            })
        );
        assert_eq!(
            task_script(&sample(), "do_missing"),
            Err(ScriptError::NoBody {
                task: "do_missing".into()
            })
        );
    }

    #[test]
    fn cleandirs_and_default_dir() {
        let d = sample().func("do_install", "\ttrue").flag(
            "do_install",
            "cleandirs",
            "/bitzel/work/image",
        );
        let s = task_script(&d, "do_install").unwrap();
        assert!(s
            .text
            .contains("rm -rf /bitzel/work/image\nmkdir -p /bitzel/work/image\n"));
        assert!(s.text.ends_with("cd /bitzel/work/build\ndo_install\n"));
    }

    #[test]
    fn prefuncs_and_postfuncs_run_in_order_each_in_its_own_subshell() {
        let d = sample()
            .func("prep", "\tbbfatal_if_missing")
            .func("bbfatal_if_missing", "\ttest -d /bitzel/work || exit 1")
            .flag("prep", "dirs", "/bitzel/work/prep")
            .func("stamp", "\ttouch done")
            .flag("stamp", "cleandirs", "/bitzel/work/out")
            .flag("stamp", "dirs", "/bitzel/work/out")
            .func("empty", "\n")
            .flag("do_compile", "prefuncs", "prep empty absent_fn")
            .flag("do_compile", "postfuncs", "stamp");
        let s = task_script(&d, "do_compile").unwrap();
        let calls = s.text.split("}\n\n").last().unwrap();
        expect_test::expect![[r#"
            (
            mkdir -p /bitzel/work/prep
            cd /bitzel/work/prep
            prep
            )
            (
            mkdir -p /bitzel/work/build
            cd /bitzel/work/build
            do_compile
            )
            (
            rm -rf /bitzel/work/out
            mkdir -p /bitzel/work/out
            mkdir -p /bitzel/work/out
            cd /bitzel/work/out
            stamp
            )
        "#]]
        .assert_eq(calls);
        // Every function the hooks call is defined; the empty one is not run.
        for f in [
            "prep",
            "bbfatal_if_missing",
            "stamp",
            "do_compile",
            "oe_runmake",
        ] {
            assert!(s.functions.contains(f), "{f} missing: {:?}", s.functions);
        }
        assert!(!s.text.contains("\nempty\n"), "{}", s.text);
        assert_eq!(
            s.missing,
            vec!["do_compile[prefuncs]: function `absent_fn` does not exist".to_string()]
        );
        assert_eq!(s.cwd, "/bitzel/work/build");
    }

    #[test]
    fn hooks_run_for_real_and_a_failing_prefunc_stops_the_task() {
        let t = tempfile::tempdir().unwrap();
        let base = t.path().display().to_string();
        let d = Fake::default()
            .var("B", &base)
            .func("pre", "\techo pre >>log; cd /; X=leaked")
            .func(
                "do_it",
                "\techo \"task ${X:-clean} $(basename $PWD)\" >>log",
            )
            .func("post", "\techo post >>log")
            .flag("do_it", "prefuncs", "pre")
            .flag("do_it", "postfuncs", "post")
            .func("bad", "\tfalse\n\techo not reached >>log")
            .func("do_fail", "\techo task ran >>log")
            .flag("do_fail", "prefuncs", "bad");
        let run = |task: &str| {
            let s = task_script(&d, task).unwrap();
            std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(&s.text)
                .status()
                .unwrap()
        };
        assert!(run("do_it").success());
        let name = t.path().file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            std::fs::read_to_string(t.path().join("log")).unwrap(),
            format!("pre\ntask clean {name}\npost\n")
        );
        std::fs::remove_file(t.path().join("log")).unwrap();
        assert!(!run("do_fail").success());
        assert!(!t.path().join("log").exists());
    }

    #[test]
    fn python_hooks_are_refused_naming_the_function() {
        let d = sample()
            .func("py_pre", "    bb.note('x')")
            .flag("py_pre", "python", "1")
            .flag("do_compile", "postfuncs", "py_pre");
        let err = task_script(&d, "do_compile").unwrap_err();
        assert_eq!(
            err,
            ScriptError::PythonHook {
                task: "do_compile".into(),
                flag: "postfuncs",
                func: "py_pre".into()
            }
        );
        let msg = err.to_string();
        assert!(
            msg.contains("do_compile[postfuncs]") && msg.contains("`py_pre`"),
            "{msg}"
        );
    }
}
