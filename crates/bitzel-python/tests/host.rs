//! Embedded CPython as bitzel-meta's Python host, on `testdata/python/`
//! (a stand-in `bb` package of bitzel's own, so no BitBake is needed).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use bitzel_meta::{load_workspace, ConfInput, FsLoader, ParseOptions, Workspace};
use bitzel_python::CPython;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/python")
        .canonicalize()
        .unwrap()
}

fn install() {
    static HOST: OnceLock<()> = OnceLock::new();
    HOST.get_or_init(|| {
        let host = CPython::new(&root().join("bb-stub"), Some(&bytecode_dir())).unwrap();
        assert!(bitzel_meta::install_python_host(Arc::new(host)));
    });
}

/// Where this test process's interpreter keeps compiled modules.
fn bytecode_dir() -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap())
        .path()
        .to_path_buf()
}

#[test]
fn compiled_modules_are_kept_in_the_bytecode_dir() {
    install();
    let stub = root().join("bb-stub").join("bb");
    let compiled: Vec<PathBuf> = walkdir::WalkDir::new(bytecode_dir())
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .filter(|p| p.extension().is_some_and(|x| x == "pyc"))
        .collect();
    // sys.pycache_prefix mirrors each source's absolute directory.
    let mirrored = bytecode_dir().join(stub.strip_prefix("/").unwrap());
    assert!(
        compiled.iter().any(|p| p.starts_with(&mirrored)),
        "no compiled bb module under {}: {compiled:?}",
        mirrored.display()
    );
}

fn load(opts: &ParseOptions) -> Workspace {
    load_with(opts, BTreeMap::new())
}

/// [`load`] with `env` passed into the datastore (as BitBake's
/// `BB_ENV_PASSTHROUGH` variables are).
fn load_with(opts: &ParseOptions, env: BTreeMap<String, String>) -> Workspace {
    install();
    let r = root();
    let input = ConfInput {
        topdir: r.join("build"),
        bblayers_conf: Some(format!(
            "BBPATH = \"${{TOPDIR}}\"\nBBLAYERS = \"{}/meta-py\"\n",
            r.display()
        )),
        local_conf: Some(String::new()),
        env,
    };
    load_workspace(&input, &FsLoader, opts).unwrap()
}

/// The workspace, parsed once per test process with the host installed.
fn ws() -> &'static Workspace {
    static WS: OnceLock<Workspace> = OnceLock::new();
    WS.get_or_init(|| load(&ParseOptions::default()))
}

fn var(pn: &str, name: &str) -> Option<String> {
    let r = ws().recipes.iter().find(|r| r.pn == pn).unwrap_or_else(|| {
        panic!("no recipe {pn}: {:#?}", ws().diagnostics);
    });
    r.data.try_get_var(name).unwrap()
}

#[test]
fn addpylib_and_defs_serve_inline_python() {
    assert_eq!(var("good", "LOUD").as_deref(), Some("ALPHA-BETA"));
    assert_eq!(
        var("good", "TWICE").as_deref(),
        Some("alpha betaalpha beta")
    );
    // Rust expansion -> Python -> d.getVar -> ${@...} -> Python.
    assert_eq!(var("good", "NESTED").as_deref(), Some("[ALPHA-BETA]"));
    // The config's own value goes through the same host.
    assert_eq!(
        ws().config.try_get_var("LOUD").unwrap().as_deref(),
        Some("ALPHA-BETA")
    );
}

#[test]
fn anonymous_functions_outside_the_subset_run_in_cpython() {
    assert_eq!(var("good", "COUNTED").as_deref(), Some(" 0! 1!"));
    assert_eq!(var("good", "OBJ_KIND").as_deref(), Some("dict:2"));
    assert_eq!(
        var("good", "COPY_SEEN").as_deref(),
        Some("bitter/sweet sour")
    );
    assert_eq!(var("good", "HAS_OV").as_deref(), Some("False"));
    assert_eq!(var("good", "IN_D").as_deref(), Some("TrueFalse"));
    // An object holding `d` gets back the same `d`.
    assert_eq!(var("good", "EXTENDER_BACK").as_deref(), Some("True"));
    let r = ws().recipes.iter().find(|r| r.pn == "good").unwrap();
    assert_eq!(
        r.data
            .get_flag_unexpanded("do_thing", "cleandirs")
            .as_deref(),
        Some("/x")
    );
}

#[test]
fn skip_recipe_from_cpython_carries_the_reason() {
    let s = ws().skipped.iter().find(|r| r.pn == "skipped").unwrap();
    assert_eq!(s.skipped().as_deref(), Some("not for this machine"));
    assert!(ws().recipes.iter().all(|r| r.pn != "skipped"));
}

#[test]
fn a_python_error_names_the_metadata_line_with_a_trimmed_traceback() {
    let d = ws()
        .diagnostics
        .iter()
        .find(|d| d.file.ends_with("broken.bb"))
        .unwrap_or_else(|| panic!("{:#?}", ws().diagnostics));
    assert!(d.is_error());
    assert_eq!(d.line, 8, "{d}");
    assert!(
        d.message
            .contains("NameError: name 'undefined_name_here' is not defined")
            && d.message.contains("broken.bb\", line 8")
            && !d.message.contains("bitzel_bootstrap"),
        "{}",
        d.message
    );
    // Nothing the failed function did is kept.
    let r = ws().recipes.iter().find(|r| r.pn == "broken").unwrap();
    assert_eq!(r.data.try_get_var("X").unwrap(), None);
}

#[test]
fn event_handlers_run_in_bitbake_order_with_their_masks() {
    assert_eq!(
        ws().config.try_get_var("CONFIG_SEEN").unwrap().as_deref(),
        Some("yes:ConfigParsed")
    );
    // The handler set BB_INVALIDCONF = True on the first firing: the
    // configuration was parsed again, from the files, and what the first
    // parse's handler set is gone.
    assert_eq!(
        ws().config.try_get_var("REPARSED").unwrap().as_deref(),
        Some("yes")
    );
    assert_eq!(ws().config.try_get_var("STALE").unwrap(), None);
    assert_eq!(var("good", "REPARSED").as_deref(), Some("yes"));
    // Then MultiConfigParsed, with the one configuration as mcdata[''].
    assert_eq!(var("good", "MC_SEEN").as_deref(), Some("configs:''"));
    assert_eq!(
        var("good", "EVENTS").as_deref(),
        Some(" RecipePreFinalise RecipeTaskPreProcess RecipeParsed")
    );
    assert_eq!(
        var("good", "TASKLIST").as_deref(),
        Some("do_thing do_other do_extra")
    );
    let s = ws().skipped.iter().find(|r| r.pn == "vetoed").unwrap();
    assert_eq!(s.skipped().as_deref(), Some("vetoed by a handler"));
}

#[test]
fn bbhandler_inherit_from_python_inherits_with_bitzels_parser() {
    // A RecipePreFinalise handler inherits `viahandler`, an anonymous
    // function `viaanon` (the stand-in bb's own inherit raises, so the
    // classes come from bitzel's parser); the class inherited from the
    // handler brings an anonymous function that runs at finalisation.
    assert_eq!(
        var("pyinherit", "VIA_HANDLER").as_deref(),
        Some("inherited")
    );
    assert_eq!(var("pyinherit", "VIA_HANDLER_ANON").as_deref(), Some("ran"));
    assert_eq!(var("pyinherit", "VIA_ANON").as_deref(), Some("inherited"));
    assert_eq!(
        var("pyinherit", "CLASS_ORDER").as_deref(),
        Some("recipe viahandler viaanon")
    );
    let r = ws().recipes.iter().find(|r| r.pn == "pyinherit").unwrap();
    let cache = r
        .data
        .get_var_unexpanded("__inherit_cache")
        .unwrap_or_default();
    for class in ["viahandler", "viaanon"] {
        assert!(
            cache.contains(&format!("classes/{class}.bbclass")),
            "{class} not in __inherit_cache: {cache}"
        );
    }
}

#[test]
fn addtask_names_after_and_before_with_do_when_the_bitbake_does() {
    // The stand-in bb.build has `ensure_task_prefix`, as newer BitBake.
    let r = ws().recipes.iter().find(|r| r.pn == "taskprefix").unwrap();
    assert_eq!(r.data.task_deps("do_second"), ["do_first"]);
    assert_eq!(r.data.task_deps("do_third"), ["do_second"]);
    assert_eq!(r.data.task_deps("do_fourth"), ["do_second"]);
}

#[test]
fn bb_recipe_file_is_the_recipe_while_its_appends_includes_and_classes_are_read() {
    // The stand-in bb.cookerdata names __BB_RECIPE_FILE, as newer BitBake's
    // cooker does; FILE follows the file being read (a class's is the file
    // that inherits it).
    install();
    assert!(bitzel_meta::python_host().unwrap().sets_recipe_file());
    let r = ws().recipes.iter().find(|r| r.pn == "recipefile").unwrap();
    assert_eq!(
        r.data.get_var("__BB_RECIPE_FILE").as_deref(),
        Some(r.file.to_str().unwrap())
    );
    for (at, file) in [
        ("REC", "recipefile.bb"),
        ("INC_A", "recipefile-a.inc"),
        ("APPEND", "recipefile.bbappend"),
        ("INC_B", "recipefile-b.inc"),
        ("CLASS", "recipefile-b.inc"),
    ] {
        assert_eq!(
            var("recipefile", &format!("{at}_RECIPE_FILE")).as_deref(),
            Some("recipefile.bb"),
            "{at}"
        );
        assert_eq!(
            var("recipefile", &format!("{at}_FILE")).as_deref(),
            Some(file),
            "{at}"
        );
    }
}

#[test]
fn bb_current_mc_names_the_default_configuration_as_the_bitbake_does() {
    // The stand-in bb.cookerdata's parseConfigurationFiles defaults mc to
    // "", as newer BitBake (older ones: "default").
    install();
    let p = bitzel_meta::python_host().unwrap();
    assert_eq!(p.default_config_name().as_deref(), Some(""));
    assert_eq!(ws().config.get_var("BB_CURRENT_MC").as_deref(), Some(""));
}

#[test]
fn bitbake_lists_cross_d_as_python_lists() {
    let r = ws().recipes.iter().find(|r| r.pn == "good").unwrap();
    assert_eq!(r.data.tasks(), ["do_thing", "do_other", "do_extra"]);
    assert_eq!(r.data.task_deps("do_extra"), ["do_other", "do_thing"]);
    // bb.build.addtask sets the flag to the int 1, as the parser does.
    assert_eq!(
        r.data.get_flag_unexpanded("do_extra", "task").as_deref(),
        Some(bitzel_meta::PY_ONE)
    );
}

#[test]
fn python_may_write_to_d_while_a_value_expands() {
    assert_eq!(var("good", "VIA_WRITE").as_deref(), Some("mark=temporary"));
    // The write lasted for that expansion only and polluted no cache.
    assert_eq!(var("good", "MARK").as_deref(), Some("orig"));
    assert_eq!(var("good", "USES_MARK").as_deref(), Some("mark=orig"));
    assert_eq!(var("good", "VIA_WRITE").as_deref(), Some("mark=temporary"));
}

#[test]
fn values_holding_process_local_objects_are_marked_so() {
    let r = ws().recipes.iter().find(|r| r.pn == "good").unwrap();
    // A literal (a dict of tuples) survives a parse cache round trip.
    let obj = r.data.get_var_unexpanded("OBJ").unwrap();
    assert!(obj.contains("lit:{'k': (1, 2)}"), "{obj:?}");
    assert!(!obj.starts_with(bitzel_meta::PROCESS_LOCAL));
    // Literals are recognised once per content (by their pickle): an equal
    // value of other types (True for 1) keeps its own text.
    assert_eq!(r.data.get_var_unexpanded("OBJ_AGAIN"), Some(obj));
    let t = r.data.get_var_unexpanded("OBJ_TRUE").unwrap();
    assert!(t.ends_with("lit:{'k': (True, 2)}"), "{t:?}");
    assert_eq!(
        var("good", "OBJ_TRUE_READ").as_deref(),
        Some("{'k': (True, 2)}{'k': (1, 2)}")
    );
    let ext = r.data.get_var_unexpanded("EXTENDER").unwrap();
    assert!(ext.starts_with(bitzel_meta::PROCESS_LOCAL), "{ext:?}");
}

/// `bitzel show` prints a value that is a Python object as BitBake prints
/// it (`str(value)`, as `bitbake -e` shows nativesdk's EXTENDERCLASS), for
/// an object of this process and for one the parse cache kept pickled, in
/// the value and in its history block.
#[test]
fn python_object_values_show_as_bitbake_prints_them() {
    let show = |ws: &Workspace, pn: &str, var: &str| -> String {
        let r = ws.recipes.iter().find(|r| r.pn == pn).unwrap();
        let opts = bitzel_meta::EmitOptions {
            history: true,
            vars: Some(vec![var.to_string()]),
        };
        let out = bitzel_meta::emit_env(&r.data, &opts);
        // Nor does its history block show bitzel's marker.
        assert!(!out.contains('\0'), "{out:?}");
        out
    };
    let shown_as = |out: &str, var: &str, class: &str| {
        let line = out.lines().find(|l| l.starts_with(&format!("{var}=")));
        let line = line.unwrap_or_else(|| panic!("no {var} in {out:?}"));
        let prefix = format!("{var}=\"<");
        let object = format!("{class} object at 0x");
        assert!(
            line.starts_with(&prefix) && line.contains(&object) && line.ends_with(">\""),
            "{line:?}"
        );
    };
    shown_as(&show(ws(), "good", "EXTENDER"), "EXTENDER", "<Extender");
    let tmp = tempfile::tempdir().unwrap();
    let opts = ParseOptions {
        cache_dir: Some(tmp.path().to_path_buf()),
        jobs: None,
        ..Default::default()
    };
    let _cold = load(&opts);
    let warm = load(&opts);
    let kept = warm.recipes.iter().find(|r| r.pn == "kept").unwrap();
    let stored = kept.data.get_var_unexpanded("KEEPER").unwrap();
    assert!(stored.starts_with("\0bitzel-py:pkl:"), "{stored:?}");
    shown_as(
        &show(&warm, "kept", "KEEPER"),
        "KEEPER",
        "<pylib.keeper.Keeper",
    );
}

#[test]
fn a_warm_parse_equals_a_cold_one() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = ParseOptions {
        cache_dir: Some(tmp.path().to_path_buf()),
        jobs: None,
        ..Default::default()
    };
    let show = |ws: &Workspace| -> Vec<String> {
        let mut out: Vec<String> = ws
            .recipes
            .iter()
            .map(|r| {
                let vars = [
                    "COUNTED",
                    "OBJ_KIND",
                    "VIA_WRITE",
                    "EVENTS",
                    "LOUD",
                    "TASKLIST",
                    "EXTENDED",
                ];
                let vals: Vec<String> = vars
                    .iter()
                    .map(|v| format!("{v}={:?}", r.data.try_get_var(v).unwrap()))
                    .collect();
                format!("{} {}", r.pn, vals.join(" "))
            })
            .collect();
        out.extend(
            ws.skipped
                .iter()
                .map(|r| format!("skipped {} {:?}", r.pn, r.skipped())),
        );
        out.sort();
        out
    };
    let cold = load(&opts);
    let warm = load(&opts);
    assert_eq!(show(&cold), show(&warm));
    assert_eq!(show(&cold), show(ws()));
    let kept = warm.recipes.iter().find(|r| r.pn == "kept").unwrap();
    assert_eq!(
        kept.data.try_get_var("EXTENDED").unwrap().as_deref(),
        Some("nativesdk-zlib")
    );
    // kept.bb holds a Python object that holds `d`: its entry keeps the
    // object pickled, so a warm parse does not parse it again.
    let entries: Vec<Vec<u8>> = walkdir::WalkDir::new(tmp.path())
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    let has = |e: &[u8], s: &str| e.windows(s.len()).any(|w| w == s.as_bytes());
    assert!(
        entries
            .iter()
            .any(|e| has(e, "recipes/kept.bb") && has(e, "\0bitzel-py:pkl:")),
        "no parse cache entry keeps kept.bb's object"
    );
    // good.bb's object is of a class defined inside a function: it cannot
    // be pickled, so good.bb has no entry, and is parsed again.
    assert!(!entries.iter().any(|e| has(e, "recipes/good.bb")));
}

/// `bb.parse.mark_dependency(d, file)` from an anonymous function (poky's
/// python3 marks its manifest): the file ends the recipe's BBINCLUDED, and
/// a warm parse after it changed equals a cold one.
#[test]
fn a_file_python_marks_is_included_and_keys_the_parse_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("manifest");
    let opts = ParseOptions {
        cache_dir: Some(tmp.path().join("cache")),
        jobs: None,
        ..Default::default()
    };
    let env = || BTreeMap::from([("MARKED_FILE".to_string(), file.display().to_string())]);
    let seen = |ws: &Workspace| {
        let r = ws.recipes.iter().find(|r| r.pn == "marked").unwrap();
        let included = r.data.try_get_var("BBINCLUDED").unwrap().unwrap();
        assert!(
            included.ends_with(&format!("/recipes/marked.bb {}", file.display())),
            "{included}"
        );
        r.data.try_get_var("MARKED_SEEN").unwrap()
    };
    std::fs::write(&file, "first\n").unwrap();
    assert_eq!(seen(&load_with(&opts, env())).as_deref(), Some("first"));
    assert_eq!(seen(&load_with(&opts, env())).as_deref(), Some("first"));
    std::fs::write(&file, "second\n").unwrap();
    assert_eq!(seen(&load_with(&opts, env())).as_deref(), Some("second"));
}

/// The configuration's handler reads a host file (as poky's reads
/// os-release); hostfact.bb's anonymous function copies what it read. With
/// no metadata file changed, a warm parse after the host file changed must
/// equal a cold one: the parse cache is keyed by the configuration's values.
#[test]
fn a_warm_parse_after_the_host_changed_equals_a_cold_one() {
    let tmp = tempfile::tempdir().unwrap();
    let fact = tmp.path().join("fact");
    let opts = ParseOptions {
        cache_dir: Some(tmp.path().join("cache")),
        jobs: None,
        ..Default::default()
    };
    let conf = || BTreeMap::from([("HOST_FACT_FILE".to_string(), fact.display().to_string())]);
    let seen = |ws: &Workspace| {
        let r = ws.recipes.iter().find(|r| r.pn == "hostfact").unwrap();
        r.data.try_get_var("FACT_SEEN").unwrap()
    };
    std::fs::write(&fact, "first\n").unwrap();
    assert_eq!(
        seen(&load_with(&opts, conf())).as_deref(),
        Some("seen:first")
    );
    assert_eq!(
        seen(&load_with(&opts, conf())).as_deref(),
        Some("seen:first")
    );
    std::fs::write(&fact, "second\n").unwrap();
    assert_eq!(
        seen(&load_with(&opts, conf())).as_deref(),
        Some("seen:second")
    );
    // Names in BB_HASHCONFIG_IGNORE_VARS do not count (BitBake's DATE, TIME).
    let ignoring = || {
        let mut env = conf();
        env.insert("BB_HASHCONFIG_IGNORE_VARS".into(), "HOST_FACT".into());
        env
    };
    assert_eq!(
        seen(&load_with(&opts, ignoring())).as_deref(),
        Some("seen:second")
    );
    std::fs::write(&fact, "third\n").unwrap();
    assert_eq!(
        seen(&load_with(&opts, ignoring())).as_deref(),
        Some("seen:second")
    );
}

/// A datastore of plain values, for calling the host directly.
struct Plain(BTreeMap<&'static str, &'static str>);

impl bitzel_meta::pyexpr::PyContext for Plain {
    fn get_var(&self, name: &str, _expand: bool) -> Option<String> {
        self.0.get(name).map(|s| s.to_string())
    }
    fn get_var_flag(&self, name: &str, flag: &str, _expand: bool) -> Option<String> {
        self.0
            .get(format!("{name}[{flag}]").as_str())
            .map(|s| s.to_string())
    }
    fn expand(&self, s: &str) -> String {
        s.to_string()
    }
}

#[test]
fn a_def_known_only_to_the_datastore_is_defined_when_called() {
    // As for a recipe read back from the parse cache: its defs were never
    // evaluated in this process.
    install();
    let d = Plain(BTreeMap::from([
        (
            "cached_only_def",
            "def cached_only_def(d):\n    return d.getVar('X') + '!'\n",
        ),
        ("cached_only_def[python]", "1"),
        ("cached_only_def[filename]", "/layer/recipe.bb"),
        ("cached_only_def[lineno]", "3"),
        ("X", "x"),
    ]));
    let host = bitzel_meta::python_host().unwrap();
    assert_eq!(host.eval_inline("cached_only_def(d)", &d).unwrap(), "x!");
    let e = host.eval_inline("never_defined(d)", &d).unwrap_err();
    assert!(
        e.message
            .contains("NameError: name 'never_defined' is not defined"),
        "{e}"
    );
}

#[test]
fn bb_fatal_reports_its_message_once() {
    let errs: Vec<String> = ws()
        .diagnostics
        .iter()
        .filter(|d| d.file.ends_with("fatal.bb") && d.is_error())
        .map(|d| format!("{}: {}", d.line, d.message))
        .collect();
    assert_eq!(
        errs,
        [
            "3: no toolchain for fatal",
            "5: anonymous python function failed: bb.fatal (the error above)"
        ],
        "{errs:#?}"
    );
}

#[test]
fn string_hashing_is_fixed_so_set_order_is_stable() {
    install();
    let d = Plain(BTreeMap::new());
    let host = bitzel_meta::python_host().unwrap();
    let eval = |code: &str| host.eval_inline(code, &d).unwrap();
    assert_eq!(eval("__import__('sys').flags.hash_randomization"), "0");
    // `PYTHONHASHSEED=0 python3 -c "print(hash('a'))"` on 64-bit CPython.
    assert_eq!(eval("hash('a')"), "4644417185603328019");
}

#[test]
fn sys_executable_is_the_linked_interpreter() {
    install();
    let d = Plain(BTreeMap::new());
    let host = bitzel_meta::python_host().unwrap();
    let exe = host
        .eval_inline("__import__('sys').executable", &d)
        .unwrap();
    assert_eq!(exe, bitzel_python::LINKED_PYTHON);
    assert!(Path::new(&exe).is_absolute(), "{exe}");
}

#[test]
fn getvar_identity_flag_types_and_varhistory_as_datasmart() {
    assert_eq!(var("good", "SAME_OBJECT").as_deref(), Some("True"));
    assert_eq!(var("good", "EXPORT_FLAG").as_deref(), Some("1"));
    let history = var("good", "FLAVOURS_HISTORY").unwrap();
    assert!(history.contains("# $FLAVOURS"), "{history}");
    assert!(history.contains("good.bb:2"), "{history}");
}

#[test]
fn retparser_and_expand_with_refs_give_what_the_expansion_itself_read() {
    // The value unexpanded, then expanded with the active `:remove`; the
    // references of the expansion itself plus the inline expressions' reads
    // (by the codeparser, so REFS_F, only checked with contains, is not
    // one); the `:remove` that removed a word. expandWithRefs of a string
    // naming REFS_CMD records REFS_CMD, not what REFS_CMD reads.
    assert_eq!(
        var("good", "REFS_SEEN").as_deref(),
        Some(
            "%{REFS_A} %{@d.getVar('REFS_PY')} %{@bb.utils.contains('REFS_F', 'x', 'y', 'n', d)}\
             |a None |REFS_A REFS_PY|[('REFS_F', {'x'})]|['%{REFS_GONE}']|REFS_A REFS_CMD"
        )
    );
}
