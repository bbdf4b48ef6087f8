//! The graph over the fixture layers in `testdata/graph/`, parsed by
//! `bitzel-meta`: each test snapshots the task set and edges (or the error).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bitzel_graph::{
    build_graph, explain_provider, prefs_from_workspace, recipes_from_workspace, to_dot,
    ProviderPrefs, RecipeInfo, Target,
};
use bitzel_meta::{load_workspace, ConfInput, FsLoader, ParseOptions};
use expect_test::{expect, Expect};

mod common;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/graph")
        .canonicalize()
        .unwrap()
}

struct Fixture {
    recipes: Vec<RecipeInfo>,
    prefs: ProviderPrefs,
    root: String,
}

fn load(local_conf: &str) -> Fixture {
    let r = root();
    let rs = r.to_string_lossy().to_string();
    let input = ConfInput {
        topdir: r.join("build"),
        bblayers_conf: Some(format!(
            "BBPATH = \"${{TOPDIR}}\"\nBBFILES ?= \"\"\nBBLAYERS ?= \" \\\n  {rs}/meta-core \\\n  {rs}/meta-extra \\\n\"\n"
        )),
        local_conf: Some(local_conf.to_string()),
        env: BTreeMap::new(),
    };
    let ws = load_workspace(&input, &FsLoader, &ParseOptions::default()).unwrap();
    let errors: Vec<String> = ws
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| format!("{d:?}"))
        .collect();
    assert!(errors.is_empty(), "fixture diagnostics: {errors:#?}");
    Fixture {
        recipes: recipes_from_workspace(&ws),
        prefs: prefs_from_workspace(&ws),
        root: rs,
    }
}

const MUSL: &str = "PREFERRED_PROVIDER_virtual/libc = \"musl\"\n";

fn render(f: &Fixture, targets: &[&str]) -> String {
    let t: Vec<Target> = targets
        .iter()
        .map(|s| Target::parse(s, "do_build"))
        .collect();
    let out = common::render_plan(build_graph(&f.recipes, &f.prefs, &t), &f.recipes);
    out.replace(&f.root, "$ROOT")
}

fn check(local_conf: &str, targets: &[&str], expect: Expect) {
    let f = load(local_conf);
    expect.assert_eq(&render(&f, targets));
}

#[test]
fn busybox_full_graph() {
    // zlib: meta-extra's 1.1 wins by layer priority; virtual/libc: musl by
    // PREFERRED_PROVIDER; quilt-native is the BBCLASSEXTEND variant (no
    // packaging tasks: deleted by the native class); git-native is
    // ASSUME_PROVIDED; libz1 (RDEPENDS) is zlib's RPROVIDES and
    // kernel-module-loop (RRECOMMENDS) linux-tiny's PACKAGES_DYNAMIC.
    check(
        MUSL,
        &["busybox"],
        expect![[r#"
            busybox:do_build [noexec] <- busybox:do_package_write busybox:do_populate_sysroot
            busybox:do_compile [dirs=/bitzel/work/busybox-1.35.0] [cleandirs=/bitzel/work/busybox-1.35.0/.libs] <- busybox:do_configure
            busybox:do_configure <- busybox:do_prepare_recipe_sysroot
            busybox:do_fetch
            busybox:do_install <- busybox:do_compile busybox:do_selftest
            busybox:do_package <- busybox:do_install musl:do_packagedata zlib:do_packagedata
            busybox:do_package_write <- busybox:do_packagedata linux-tiny:do_packagedata zlib:do_packagedata
            busybox:do_packagedata <- busybox:do_package
            busybox:do_populate_sysroot <- busybox:do_install
            busybox:do_prepare_recipe_sysroot <- busybox:do_fetch musl:do_populate_sysroot quilt-native:do_populate_sysroot zlib:do_populate_sysroot
            busybox:do_selftest <- busybox:do_compile
            linux-tiny:do_compile [dirs=/bitzel/work/linux-tiny-6.6] [cleandirs=/bitzel/work/linux-tiny-6.6/.libs] <- linux-tiny:do_configure
            linux-tiny:do_configure <- linux-tiny:do_patch linux-tiny:do_prepare_recipe_sysroot
            linux-tiny:do_fetch
            linux-tiny:do_install <- linux-tiny:do_compile
            linux-tiny:do_package <- linux-tiny:do_install
            linux-tiny:do_packagedata <- linux-tiny:do_package
            linux-tiny:do_patch <- linux-tiny:do_unpack
            linux-tiny:do_prepare_recipe_sysroot <- linux-tiny:do_fetch
            linux-tiny:do_unpack <- linux-tiny:do_fetch
            musl:do_compile [dirs=/bitzel/work/musl-1.2.4] [cleandirs=/bitzel/work/musl-1.2.4/.libs] <- musl:do_configure
            musl:do_configure <- musl:do_patch musl:do_prepare_recipe_sysroot
            musl:do_fetch
            musl:do_install <- musl:do_compile
            musl:do_package <- musl:do_install
            musl:do_packagedata <- musl:do_package
            musl:do_patch <- musl:do_unpack
            musl:do_populate_sysroot <- musl:do_install
            musl:do_prepare_recipe_sysroot <- musl:do_fetch
            musl:do_unpack <- musl:do_fetch
            quilt-native:do_compile [dirs=/bitzel/work/quilt-native-0.67] [cleandirs=/bitzel/work/quilt-native-0.67/.libs] <- quilt-native:do_configure
            quilt-native:do_configure <- quilt-native:do_patch quilt-native:do_prepare_recipe_sysroot
            quilt-native:do_fetch
            quilt-native:do_install <- quilt-native:do_compile
            quilt-native:do_patch <- quilt-native:do_unpack
            quilt-native:do_populate_sysroot <- quilt-native:do_install
            quilt-native:do_prepare_recipe_sysroot <- quilt-native:do_fetch
            quilt-native:do_unpack <- quilt-native:do_fetch
            zlib:do_compile [dirs=/bitzel/work/zlib-1.1] [cleandirs=/bitzel/work/zlib-1.1/.libs] <- zlib:do_configure
            zlib:do_configure <- zlib:do_patch zlib:do_prepare_recipe_sysroot
            zlib:do_fetch
            zlib:do_install <- zlib:do_compile
            zlib:do_package <- zlib:do_install
            zlib:do_packagedata <- zlib:do_package
            zlib:do_patch <- zlib:do_unpack
            zlib:do_populate_sysroot <- zlib:do_install
            zlib:do_prepare_recipe_sysroot <- zlib:do_fetch
            zlib:do_unpack <- zlib:do_fetch
            provider Build busybox = busybox 1.35.0
            provider Build quilt-native = quilt-native 0.67
            provider Build virtual/libc = musl 1.2.4
            provider Build zlib = zlib 1.1
            provider Runtime kernel-module-loop = linux-tiny 6.6
            provider Runtime libz1 = zlib 1.1"#]],
    );
}

#[test]
fn preferred_version_across_layers() {
    check(
        &format!("{MUSL}PREFERRED_VERSION_zlib = \"1.3%\"\n"),
        &["zlib:do_fetch"],
        expect![[r#"
            zlib:do_fetch
            provider Build zlib = zlib 1.3.1"#]],
    );
    let f = load(MUSL);
    let c = explain_provider(&f.recipes, &f.prefs, "pref");
    assert_eq!(
        f.recipes[c.chosen.unwrap()].pv,
        "1.0",
        "DEFAULT_PREFERENCE -1 on 2.0"
    );
    let f = load(&format!("{MUSL}PREFERRED_VERSION_pref = \"2.%\"\n"));
    let c = explain_provider(&f.recipes, &f.prefs, "pref");
    assert_eq!(f.recipes[c.chosen.unwrap()].pv, "2.0");
}

#[test]
fn image_recursive_dependencies() {
    let f = load(MUSL);
    let t = vec![Target::parse("core-image-tiny", "do_build")];
    let plan = build_graph(&f.recipes, &f.prefs, &t).unwrap();
    let g = &plan.graph;
    let mut out = String::new();
    for task in ["do_rootfs", "do_image_complete", "do_build"] {
        let id = g.find("core-image-tiny", task).unwrap();
        let mut deps: Vec<String> = g.deps(id).iter().map(|&d| g.tasks[d].label()).collect();
        deps.sort();
        out.push_str(&format!("{task} <- {}\n", deps.join(" ")));
    }
    expect![[r#"
        do_rootfs <- busybox:do_package_write core-image-tiny:do_prepare_recipe_sysroot linux-tiny:do_package_write musl:do_package_write zlib:do_package_write
        do_image_complete <- core-image-tiny:do_rootfs linux-tiny:do_deploy
        do_build <- core-image-tiny:do_image_complete linux-tiny:do_deploy
    "#]]
    .assert_eq(&out);
}

#[test]
fn task_flags_and_dot_labels() {
    // [noexec] tasks are nodes like any other; flags reach the node.
    check(
        MUSL,
        &["tasks:do_extra"],
        expect![[r#"
        tasks:do_compile [dirs=/bitzel/work/tasks-1.0] [cleandirs=/bitzel/work/tasks-1.0/.libs] <- tasks:do_configure
        tasks:do_configure <- tasks:do_patch tasks:do_prepare_recipe_sysroot
        tasks:do_extra [noexec] [nostamp] [dirs=/bitzel/work/extra,/bitzel/work/tasks-1.0] [cleandirs=/bitzel/work/extra] <- tasks:do_compile
        tasks:do_fetch
        tasks:do_patch <- tasks:do_unpack
        tasks:do_prepare_recipe_sysroot <- tasks:do_fetch
        tasks:do_unpack <- tasks:do_fetch
        provider Build tasks = tasks 1.0"#]],
    );
    // BitBake's task-depends.dot: node names "pn.do_task", labels
    // "pn do_task\n<PE>:<PV>-<PR>\n<file>", a variant's file as
    // virtual:native:<path>.
    let f = load(MUSL);
    let t = vec![Target::parse("quilt-native:do_unpack", "do_build")];
    let plan = build_graph(&f.recipes, &f.prefs, &t).unwrap();
    expect![[r#"
        digraph depends {
        "quilt-native.do_fetch" [label="quilt-native do_fetch\n:0.67-r0\nvirtual:native:$ROOT/meta-core/recipes-devtools/quilt/quilt_0.67.bb"]
        "quilt-native.do_unpack" [label="quilt-native do_unpack\n:0.67-r0\nvirtual:native:$ROOT/meta-core/recipes-devtools/quilt/quilt_0.67.bb"]
        "quilt-native.do_unpack" -> "quilt-native.do_fetch"
        }
    "#]]
    .assert_eq(&to_dot(&plan.graph).replace(&f.root, "$ROOT"));
}

#[test]
fn packages_dynamic_lookbehind() {
    // `^modules-mod-.*(?<!native)$` (the shape of poky perl's
    // PACKAGES_DYNAMIC) provides modules-mod-foo at run time...
    check(
        MUSL,
        &["modusers:do_package_write"],
        expect![[r#"
            modules:do_compile [dirs=/bitzel/work/modules-1.0] [cleandirs=/bitzel/work/modules-1.0/.libs] <- modules:do_configure
            modules:do_configure <- modules:do_patch modules:do_prepare_recipe_sysroot
            modules:do_fetch
            modules:do_install <- modules:do_compile
            modules:do_package <- modules:do_install
            modules:do_packagedata <- modules:do_package
            modules:do_patch <- modules:do_unpack
            modules:do_prepare_recipe_sysroot <- modules:do_fetch
            modules:do_unpack <- modules:do_fetch
            modusers:do_compile [dirs=/bitzel/work/modusers-1.0] [cleandirs=/bitzel/work/modusers-1.0/.libs] <- modusers:do_configure
            modusers:do_configure <- modusers:do_patch modusers:do_prepare_recipe_sysroot
            modusers:do_fetch
            modusers:do_install <- modusers:do_compile
            modusers:do_package <- modusers:do_install
            modusers:do_package_write <- modules:do_packagedata modusers:do_packagedata
            modusers:do_packagedata <- modusers:do_package
            modusers:do_patch <- modusers:do_unpack
            modusers:do_prepare_recipe_sysroot <- modusers:do_fetch
            modusers:do_unpack <- modusers:do_fetch
            provider Build modusers = modusers 1.0
            provider Runtime modules-mod-foo = modules 1.0"#]],
    );
    // ...but not modules-mod-foo-native.
    check(
        &format!("{MUSL}MODUSERS_NATIVE = \"modules-mod-foo-native\"\n"),
        &["modusers:do_package_write"],
        expect!["error: nothing RPROVIDES 'modules-mod-foo-native' (modusers asks for it in RDEPENDS:modusers at $ROOT/meta-core/recipes-test/dynamic/modusers_1.0.bb:4); dependency chain: modusers -> modules-mod-foo-native; add a recipe that provides it, correct the name, or list it in ASSUME_PROVIDED"],
    );
}

#[test]
fn errors() {
    // Nothing provides a DEPENDS entry: the error names the recipe, the
    // variable, the file and line, and the chain from the target.
    check(MUSL, &["broken"], expect!["error: nothing PROVIDES 'does-not-exist' (broken asks for it in DEPENDS at $ROOT/meta-core/recipes-test/broken/broken_1.0.bb:2); dependency chain: broken -> does-not-exist; add a recipe that provides it, correct the name, or list it in ASSUME_PROVIDED"]);
    // Two equal providers of virtual/libc and no preference.
    check("", &["busybox"], expect!["error: multiple providers are available for build-time 'virtual/libc': glibc 2.39 ($ROOT/meta-core/recipes-core/libc/glibc_2.39.bb), musl 1.2.4 ($ROOT/meta-core/recipes-core/libc/musl_1.2.4.bb); set PREFERRED_PROVIDER_virtual/libc to one of them"]);
    // Two recipes whose [depends] flags form a cycle.
    check(MUSL, &["cycle-a"], expect!["error: dependency cycle: cycle-a:do_compile -> cycle-b:do_install -> cycle-b:do_compile -> cycle-a:do_install -> cycle-a:do_compile; break it by removing one of these dependencies (an `addtask ... after/before`, a `[depends]` flag or a DEPENDS/RDEPENDS entry)"]);
    // A target task that does not exist.
    check(
        MUSL,
        &["busybox:do_complie"],
        expect![[r#"
        error: task do_complie does not exist for target busybox ($ROOT/meta-core/recipes-core/busybox/busybox_1.35.0.bb). Close matches:
          do_compile"#]],
    );
    // A malformed [depends] entry.
    check(MUSL, &["lint:do_fetch"], expect!["error: lint:do_lint at $ROOT/meta-core/recipes-test/tasks/lint_1.0.bb:3: the [depends: no-colon-here] entry must contain exactly one ':' (write it as name:do_task)"]);
}
