//! Snapshot tests over the fixture layers in `testdata/meta/`.
//! Each fixture file cites the BitBake manual section whose rule it encodes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bitzel_meta::{
    emit_env, load_workspace, ConfInput, EmitOptions, FsLoader, ParseOptions, Workspace,
};
use expect_test::{expect, Expect};

fn root(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/meta")
        .join(name)
        .canonicalize()
        .unwrap()
}

fn load(name: &str, layers: &[&str], local: &str) -> (Workspace, String) {
    let r = root(name);
    let rs = r.to_string_lossy().to_string();
    let bblayers = format!(
        "BBPATH = \"${{TOPDIR}}\"\nBBLAYERS = \" \\\n{} \\\n\"\n",
        layers
            .iter()
            .map(|l| format!("  {rs}/{l}"))
            .collect::<Vec<_>>()
            .join(" \\\n")
    );
    let input = ConfInput {
        topdir: r.join("build"),
        bblayers_conf: Some(bblayers),
        local_conf: Some(local.to_string()),
        env: BTreeMap::new(),
    };
    let ws = load_workspace(&input, &FsLoader, &ParseOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    (ws, rs)
}

fn basic() -> (Workspace, String) {
    load(
        "basic",
        &["meta-core", "meta-app"],
        "MACHINE = \"qemux86-64\"\nDISTRO = \"testdistro\"\n",
    )
}

fn vars(
    ws: &Workspace,
    root: &str,
    recipe: Option<(&str, Option<&str>)>,
    names: &[&str],
    history: bool,
) -> String {
    let ds = match recipe {
        None => &ws.config,
        Some((pn, variant)) => {
            &ws.recipes
                .iter()
                .find(|r| r.pn == pn && r.variant.as_deref() == variant)
                .unwrap_or_else(|| panic!("no recipe {pn}"))
                .data
        }
    };
    let out = emit_env(
        ds,
        &EmitOptions {
            history,
            vars: Some(names.iter().map(|s| s.to_string()).collect()),
        },
    );
    out.replace(root, "<ROOT>")
}

fn check(actual: String, expect: Expect) {
    expect.assert_eq(&actual);
}

#[test]
fn recipes_listed() {
    let (ws, root) = basic();
    let mut out = String::new();
    for r in &ws.recipes {
        out.push_str(&format!(
            "{} {} {} {} {:?} {}\n",
            r.pn,
            r.pv,
            r.pr,
            r.layer,
            r.variant,
            r.file.display().to_string().replace(&root, "<ROOT>")
        ));
        for a in &r.appends {
            out.push_str(&format!(
                "  append {}\n",
                a.display().to_string().replace(&root, "<ROOT>")
            ));
        }
    }
    for d in &ws.diagnostics {
        out.push_str(&format!("{d}\n").replace(&root, "<ROOT>"));
    }
    check(
        out,
        expect![[r#"
        hello 2.1  app None <ROOT>/meta-app/recipes-app/hello/hello_2.1.bb
        busybox 1.35.0  core None <ROOT>/meta-core/recipes-core/busybox/busybox_1.35.0.bb
          append <ROOT>/meta-app/recipes-core/busybox/busybox_%.bbappend
        busybox-native 1.35.0  core Some("native") <ROOT>/meta-core/recipes-core/busybox/busybox_1.35.0.bb
          append <ROOT>/meta-app/recipes-core/busybox/busybox_%.bbappend
    "#]],
    );
}

#[test]
fn config_values() {
    let (ws, root) = basic();
    check(
        vars(
            &ws,
            &root,
            None,
            &[
                "MACHINE",
                "DISTRO",
                "OVERRIDES",
                "DISTRO_FEATURES",
                "CFLAGS",
                "CC",
                "TMPDIR",
                "BUILD_TIME_STAMP",
                "BBPATH",
                "BBFILE_PATTERN_app",
                "LAYERDIR",
                "UNSET_VAR",
            ],
            false,
        ),
        expect![[r#"
            MACHINE="qemux86-64"
            DISTRO="testdistro"
            OVERRIDES="linux:x86-64:qemux86-64:testdistro:class-target:pn-\${PN}:forcevariable"
            DISTRO_FEATURES="ipv4  "
            export CFLAGS="-O2 -m64"
            export CC="gcc"
            TMPDIR="<ROOT>/build/tmp"
            BUILD_TIME_STAMP="<ROOT>/build/stamp"
            BBPATH="<ROOT>/build:<ROOT>/meta-core:<ROOT>/meta-app"
            BBFILE_PATTERN_app="^<ROOT>/meta-app/"
            # LAYERDIR is not set
            # UNSET_VAR is not set
        "#]],
    );
}

#[test]
fn recipe_values() {
    let (ws, root) = basic();
    check(
        vars(
            &ws,
            &root,
            Some(("busybox", None)),
            &[
                "PN",
                "PV",
                "PR",
                "P",
                "S",
                "SRC_URI",
                "EXTRA_OECONF",
                "FILESEXTRAPATHS",
                "DEPENDS",
                "A",
                "B2",
                "C",
                "D2",
                "E",
                "FILES:busybox-syslog",
                "SUMMARY",
                "do_install",
                "do_compile",
                "do_build",
                "do_package",
            ],
            false,
        ),
        expect![[r#"
            PN="busybox"
            PV="1.35.0"
            # PR is not set
            P="busybox-1.35.0"
            S="/bitzel/work/busybox-1.35.0"
            SRC_URI="file://first.patch https://busybox.net/downloads/busybox-1.35.0.tar.bz2 file://defconfig"
            EXTRA_OECONF="--enable-static --x86 --from-append"
            FILESEXTRAPATHS="<ROOT>/meta-app/recipes-core/busybox/files:"
            DEPENDS="virtual/libc"
            A="dot.pre a plus.dot"
            B2="first"
            C="weak2"
            D2="strong"
            E="dot.pre a plus.dot"
            FILES:busybox-syslog="/etc/syslog.conf"
            SUMMARY="Tiny versions of many common UNIX utilities"
            # line: 1, file: autogenerated
            do_install() {
                # Export function set
                autotools_do_install
            	install -d /bitzel/work/image/usr/bin
            }

            # line: 1, file: autogenerated
            do_compile() {
                # Export function set
                base_do_compile
            }

            # line: 30, file: <ROOT>/meta-core/recipes-core/busybox/busybox_1.35.0.bb
            do_package() {
            	true
            }


            python do_build () {
                # Export function set
                bb.build.exec_func('base_do_build', d)
            }

        "#]],
    );
}

#[test]
fn native_variant() {
    let (ws, root) = basic();
    check(
        vars(
            &ws,
            &root,
            Some(("busybox-native", Some("native"))),
            &["PN", "BPN", "OVERRIDES", "DEPENDS", "prefix", "bindir"],
            false,
        ),
        expect![[r#"
            PN="busybox-native"
            BPN="busybox-native"
            OVERRIDES="linux:x86-64:qemux86-64:testdistro:class-native:pn-busybox-native:forcevariable"
            DEPENDS="virtual/libc zlib-native"
            prefix="/usr/native"
            bindir="/usr/native/bin"
        "#]],
    );
}

#[test]
fn tasks_and_deps() {
    let (ws, _) = basic();
    let mut out = String::new();
    for r in &ws.recipes {
        out.push_str(&format!("{} {:?}\n", r.pn, r.variant));
        for t in r.data.tasks() {
            out.push_str(&format!("  {t} <- {:?}\n", r.data.task_deps(&t)));
        }
    }
    check(
        out,
        expect![[r#"
        hello None
          do_fetch <- []
          do_compile <- ["do_configure", "do_fetch"]
          do_build <- ["do_install", "do_compile"]
          do_configure <- ["do_fetch"]
          do_install <- ["do_compile"]
          do_report <- ["do_compile"]
        busybox None
          do_fetch <- []
          do_compile <- ["do_configure", "do_fetch"]
          do_build <- ["do_install", "do_compile"]
          do_configure <- ["do_fetch"]
          do_install <- ["do_compile"]
          do_package <- ["do_install"]
        busybox-native Some("native")
          do_fetch <- []
          do_compile <- ["do_configure", "do_fetch"]
          do_build <- ["do_install", "do_compile"]
          do_configure <- ["do_fetch"]
          do_install <- ["do_compile"]
          do_package <- ["do_install"]
    "#]],
    );
}

#[test]
fn hello_recipe() {
    let (ws, root) = basic();
    check(
        vars(
            &ws,
            &root,
            Some(("hello", None)),
            &[
                "RDEPENDS:hello",
                "SUMMARY",
                "CFLAGS",
                "HELLO_ENV",
                "hello_helper",
                "do_report",
                "do_configure",
            ],
            false,
        ),
        expect![[r#"
            RDEPENDS:hello="busybox"
            # SUMMARY is not set
            export CFLAGS="-O2 -m64"
            export HELLO_ENV="1"
            # line: 1, file: autogenerated
            do_configure() {
                # Export function set
                autotools_do_configure
            }


            python hello_helper () {
            def hello_helper(d):
                return "x"
            }


            python do_report () {
                bb.note(d.getVar("PN"))
            }

        "#]],
    );
    let h = ws.recipes.iter().find(|r| r.pn == "hello").unwrap();
    assert!(h.data.is_exported("HELLO_ENV"));
    assert!(h.data.is_python("do_report"));
    assert!(h.data.is_func("do_report"));
    assert_eq!(h.data.flags("CFLAGS").get("doc"), None);
}

#[test]
fn history() {
    let (ws, root) = basic();
    check(
        vars(
            &ws,
            &root,
            Some(("busybox", None)),
            &["A", "C", "EXTRA_OECONF"],
            true,
        ),
        expect![[r##"
            #
            # $A [5 operations]
            #   set <ROOT>/meta-core/recipes-core/busybox/busybox_1.35.0.bb:15
            #     "a"
            #   append <ROOT>/meta-core/recipes-core/busybox/busybox_1.35.0.bb:16
            #     "plus"
            #   prepend <ROOT>/meta-core/recipes-core/busybox/busybox_1.35.0.bb:17
            #     "pre"
            #   postdot <ROOT>/meta-core/recipes-core/busybox/busybox_1.35.0.bb:18
            #     ".dot"
            #   predot <ROOT>/meta-core/recipes-core/busybox/busybox_1.35.0.bb:19
            #     "dot."
            # pre-expansion value:
            #   "dot.pre a plus.dot"
            A="dot.pre a plus.dot"
            #
            # $C [2 operations]
            #   set <ROOT>/meta-core/recipes-core/busybox/busybox_1.35.0.bb:22
            #     [_defaultval] "weak1"
            #   set <ROOT>/meta-core/recipes-core/busybox/busybox_1.35.0.bb:23
            #     [_defaultval] "weak2"
            # pre-expansion value:
            #   "weak2"
            C="weak2"
            #
            # $EXTRA_OECONF [4 operations]
            #   set? <ROOT>/meta-core/classes-recipe/autotools.bbclass:2
            #     ""
            #   set <ROOT>/meta-core/recipes-core/busybox/busybox_1.35.0.bb:7
            #     "--enable-static"
            #   :append <ROOT>/meta-app/recipes-core/busybox/busybox_%.bbappend:2
            #     " --from-append"
            #   override[qemux86-64]:set <ROOT>/meta-core/recipes-core/busybox/busybox_1.35.0.bb:8
            #     "--enable-static --x86"
            # pre-expansion value:
            #   "--enable-static --x86 --from-append"
            EXTRA_OECONF="--enable-static --x86 --from-append"
        "##]],
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), &t).unwrap();
        }
    }
}

fn dump(ws: &Workspace) -> String {
    let mut s = String::new();
    for r in &ws.recipes {
        s.push_str(&format!("== {} {:?} {:?}\n", r.pn, r.variant, r.inputs));
        s.push_str(&emit_env(
            &r.data,
            &EmitOptions {
                history: true,
                vars: None,
            },
        ));
    }
    s
}

/// The parse cache gives the same datastores as a fresh parse, and a
/// change to any file that fed a recipe (here a class) invalidates it.
#[test]
fn parse_cache_round_trip_and_invalidation() {
    let tmp = tempfile::tempdir().unwrap();
    let layers = tmp.path().join("layers");
    copy_dir(&root("basic"), &layers);
    let rs = layers.to_string_lossy().to_string();
    let input = ConfInput {
        topdir: layers.join("build"),
        bblayers_conf: Some(format!(
            "BBPATH = \"${{TOPDIR}}\"\nBBLAYERS = \"{rs}/meta-core {rs}/meta-app\"\n"
        )),
        local_conf: Some("MACHINE = \"qemux86-64\"\nDISTRO = \"testdistro\"\n".into()),
        env: BTreeMap::new(),
    };
    let cache = tmp.path().join("cache");
    let opts = ParseOptions {
        cache_dir: Some(cache.clone()),
        jobs: Some(2),
        ..Default::default()
    };
    let fresh = load_workspace(&input, &FsLoader, &ParseOptions::default()).unwrap();
    let cold = load_workspace(&input, &FsLoader, &opts).unwrap();
    assert!(
        std::fs::read_dir(cache.join("v2")).unwrap().count() >= 2,
        "cache entries written"
    );
    let warm = load_workspace(&input, &FsLoader, &opts).unwrap();
    assert_eq!(dump(&fresh), dump(&cold));
    assert_eq!(dump(&fresh), dump(&warm));
    assert_eq!(fresh.diagnostics, warm.diagnostics);

    let class = layers.join("meta-core/classes-recipe/autotools.bbclass");
    let text = std::fs::read_to_string(&class).unwrap();
    std::fs::write(
        &class,
        text.replace(
            "EXTRA_OECONF ?= \"\"",
            "EXTRA_OECONF ?= \"\"\nCHANGED = \"yes\"",
        ),
    )
    .unwrap();
    let after = load_workspace(&input, &FsLoader, &opts).unwrap();
    let bb = after.recipes.iter().find(|r| r.pn == "busybox").unwrap();
    assert_eq!(bb.data.get_var("CHANGED").as_deref(), Some("yes"));
}

/// What BitBake's finalisation sets and `bitbake -e` prints, on
/// `testdata/meta/finalvars`: `BBINCLUDED` lists every file looked for
/// (found or not) by the configuration then by the recipe, in the order
/// looked at; a `BBCLASSEXTEND` variant starts from what the recipe's own
/// finalisation (its deferred inherit) marked. `_task_deps` is
/// `bb.build.add_tasks`'s dict; an anonymous function is printed as
/// `__anon_<line of its closing brace>_<file>`.
#[test]
fn finalisation_variables_as_bitbake_e_prints_them() {
    let (ws, root) = load("finalvars", &["meta-x"], "");
    let names = ["BBINCLUDED", "_task_deps"];
    let demo = vars(&ws, &root, Some(("demo", None)), &names, false);
    let native = vars(
        &ws,
        &root,
        Some(("demo-native", Some("native"))),
        &names,
        false,
    );
    let split = |s: &str| s.replace(' ', "\n  ");
    check(
        split(&demo),
        expect![[r#"
            BBINCLUDED="<ROOT>/build/conf/bblayers.conf
              <ROOT>/meta-x/conf/layer.conf
              <ROOT>/build/conf/bitbake.conf
              <ROOT>/meta-x/conf/bitbake.conf
              <ROOT>/meta-x/conf/conf/optional-missing.conf
              <ROOT>/build/conf/optional-missing.conf
              <ROOT>/meta-x/conf/optional-missing.conf
              <ROOT>/build/classes-global/base.bbclass
              <ROOT>/meta-x/classes-global/base.bbclass
              <ROOT>/meta-x/recipes/demo.bb
              <ROOT>/meta-x/recipes/demo.inc
              <ROOT>/build/classes-recipe/tool.bbclass
              <ROOT>/meta-x/classes-recipe/tool.bbclass
              <ROOT>/build/classes-recipe/late.bbclass
              <ROOT>/meta-x/classes-recipe/late.bbclass
              <ROOT>/build/classes/late.bbclass
              <ROOT>/meta-x/classes/late.bbclass"
            _task_deps="{'tasks':
              ['do_build',
              'do_compile'],
              'parents':
              {'do_build':
              ['do_compile'],
              'do_compile':
              []},
              'mcdepends':
              {},
              'depends':
              {'do_compile':
              'tool-native:do_populate_sysroot'},
              'rdepends':
              {},
              'deptask':
              {'do_build':
              'do_compile'},
              'rdeptask':
              {},
              'recrdeptask':
              {},
              'recideptask':
              {},
              'nostamp':
              {'do_compile':
              '1'},
              'fakeroot':
              {},
              'noexec':
              {'do_build':
              '1'},
              'umask':
              {}}"
        "#]],
    );
    // The configuration's own: the files it marked before ConfigParsed.
    let config = vars(&ws, &root, None, &["BBINCLUDED"], false);
    let upto = "<ROOT>/meta-x/classes-global/base.bbclass";
    let (base, _) = demo.split_once(upto).unwrap();
    assert_eq!(config, format!("{base}{upto}\"\n"));
    let head = demo.lines().next().unwrap();
    let tail = "<ROOT>/meta-x/classes/late.bbclass \
                <ROOT>/build/classes-recipe/native.bbclass \
                <ROOT>/meta-x/classes-recipe/native.bbclass \
                <ROOT>/build/classes/native.bbclass \
                <ROOT>/meta-x/classes/native.bbclass\"";
    let native_head = native.lines().next().unwrap();
    assert_eq!(
        native_head,
        head.replace("<ROOT>/meta-x/classes/late.bbclass\"", tail),
        "demo-native's BBINCLUDED"
    );
    // The anonymous function, with the other Python functions, under the
    // name BitBake gives it: `/.+-@%&~` of the file made `_`.
    let data = &ws.recipes.iter().find(|r| r.pn == "demo").unwrap().data;
    let all = emit_env(data, &EmitOptions::default());
    let tr: String = root
        .chars()
        .map(|c| if "/.+-@%&~".contains(c) { '_' } else { c })
        .collect();
    let name = format!("__anon_19_{tr}_meta_x_recipes_demo_bb");
    let expected =
        format!("\npython {name} () {{\ndef {name}(d):\n    d.setVar(\"ANON_RAN\", \"yes\")\n}}\n");
    assert!(all.contains(&expected), "no {expected:?} in:\n{all}");
}
