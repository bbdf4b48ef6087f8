//! Provider rules, task flags, cycles and errors over hand-built inputs.
//! Each test snapshots the resulting task set and edges (`a:do_x <- deps`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bitzel_graph::{
    build_graph, explain_provider, explode_deps, provider_close_matches, to_dot, GraphError,
    Missing, Namespace, Origin, ProviderPrefs, RecipeInfo, Target, TaskInfo, Want,
};
use expect_test::{expect, Expect};

mod common;

// ---- a tiny builder for recipes -------------------------------------------

fn recipe(pn: &str, pv: &str) -> RecipeInfo {
    let mut r = RecipeInfo::new(pn, pv, format!("/l/meta/recipes/{pn}/{pn}_{pv}.bb"));
    r.layer = "meta".into();
    r.layer_priority = 5;
    r.packages = vec![pn.to_string()];
    r
}

/// A mini class: fetch → unpack → configure (after prepare_recipe_sysroot,
/// which waits for the DEPENDS' populate_sysroot) → compile → install →
/// populate_sysroot → build (noexec).
fn with_std_tasks(mut r: RecipeInfo) -> RecipeInfo {
    let mut prep = TaskInfo::new("do_prepare_recipe_sysroot");
    prep.deptask = vec!["do_populate_sysroot".into()];
    let mut build = TaskInfo::new("do_build").after(&["do_populate_sysroot"]);
    build.noexec = true;
    let mut fetch = TaskInfo::new("do_fetch");
    fetch.nostamp = false;
    let mut compile = TaskInfo::new("do_compile").after(&["do_configure"]);
    compile.dirs = vec!["/bitzel/work/build".into()];
    compile.cleandirs = vec!["/bitzel/work/build".into()];
    r.tasks = vec![
        fetch,
        TaskInfo::new("do_unpack").after(&["do_fetch"]),
        prep,
        TaskInfo::new("do_configure").after(&["do_unpack", "do_prepare_recipe_sysroot"]),
        compile,
        TaskInfo::new("do_install").after(&["do_compile"]),
        TaskInfo::new("do_populate_sysroot").after(&["do_install"]),
        build,
    ];
    r
}

fn std(pn: &str, pv: &str) -> RecipeInfo {
    with_std_tasks(recipe(pn, pv))
}

fn depends(mut r: RecipeInfo, deps: &str) -> RecipeInfo {
    r.depends = explode_deps(deps)
        .into_iter()
        .map(|d| Want {
            name: d,
            var: "DEPENDS".into(),
            origin: Origin::at(r.file.clone(), 7),
        })
        .collect();
    r
}

fn rdepends(mut r: RecipeInfo, var: &str, deps: &str) -> RecipeInfo {
    for d in explode_deps(deps) {
        r.rdepends.push(Want {
            name: d,
            var: var.into(),
            origin: Origin::at(r.file.clone(), 9),
        });
    }
    r
}

fn task_mut<'a>(r: &'a mut RecipeInfo, name: &str) -> &'a mut TaskInfo {
    r.tasks.iter_mut().find(|t| t.name == name).unwrap()
}

fn targets(names: &[&str]) -> Vec<Target> {
    names.iter().map(|n| Target::parse(n, "do_build")).collect()
}

/// Render a plan as `pn:do_task [flags] <- deps` lines plus provider choices.
fn render(recipes: &[RecipeInfo], prefs: &ProviderPrefs, t: &[&str]) -> String {
    common::render_plan(build_graph(recipes, prefs, &targets(t)), recipes)
}

fn check(recipes: &[RecipeInfo], prefs: &ProviderPrefs, t: &[&str], expect: Expect) {
    expect.assert_eq(&render(recipes, prefs, t));
}

fn none() -> ProviderPrefs {
    ProviderPrefs::default()
}

// ---- tasks and edges ------------------------------------------------------

#[test]
fn addtask_order_flags_and_pruning() {
    let mut a = std("a", "1.0");
    // Not needed by do_build: pruned. A nostamp task that is needed stays.
    a.tasks.push(TaskInfo::new("do_clean"));
    task_mut(&mut a, "do_fetch").nostamp = true;
    check(
        &[a],
        &none(),
        &["a"],
        expect![[r#"
            a:do_build [noexec] <- a:do_populate_sysroot
            a:do_compile [dirs=/bitzel/work/build] [cleandirs=/bitzel/work/build] <- a:do_configure
            a:do_configure <- a:do_prepare_recipe_sysroot a:do_unpack
            a:do_fetch [nostamp]
            a:do_install <- a:do_compile
            a:do_populate_sysroot <- a:do_install
            a:do_prepare_recipe_sysroot
            a:do_unpack <- a:do_fetch
            provider Build a = a 1.0"#]],
    );
}

#[test]
fn target_with_explicit_task_and_after_on_missing_task() {
    let mut a = std("a", "1.0");
    // An `after` naming a task that does not exist is ignored, as in BitBake.
    task_mut(&mut a, "do_unpack")
        .deps
        .push("do_nonexistent".into());
    check(
        &[a],
        &none(),
        &["a:do_unpack"],
        expect![[r#"
            a:do_fetch
            a:do_unpack <- a:do_fetch
            provider Build a = a 1.0"#]],
    );
}

#[test]
fn deptask_over_depends_reaches_populate_sysroot() {
    let a = depends(std("a", "1.0"), "b (>= 1.0) c");
    let b = depends(std("b", "2.0"), "c");
    let c = std("c", "3.0");
    let plan = build_graph(&[a, b, c], &none(), &targets(&["a:do_configure"])).unwrap();
    let g = &plan.graph;
    let prep = g.find("a", "do_prepare_recipe_sysroot").unwrap();
    let deps: Vec<String> = g.deps(prep).iter().map(|&d| g.tasks[d].label()).collect();
    assert_eq!(deps, vec!["b:do_populate_sysroot", "c:do_populate_sysroot"]);
    // b's own sysroot preparation waits for c.
    let bprep = g.find("b", "do_prepare_recipe_sysroot").unwrap();
    let deps: Vec<String> = g.deps(bprep).iter().map(|&d| g.tasks[d].label()).collect();
    assert_eq!(deps, vec!["c:do_populate_sysroot"]);
    // Nobody needs b's or c's do_build.
    assert!(g.find("b", "do_build").is_none());
}

#[test]
fn rdeptask_over_rdepends_and_rrecommends() {
    let mut a = recipe("a", "1");
    let mut pw = TaskInfo::new("do_package_write");
    pw.rdeptask = vec!["do_packagedata".into()];
    a.tasks = vec![pw];
    let a = rdepends(a, "RDEPENDS:a", "libx");
    let a = rdepends(a, "RRECOMMENDS:a", "y");
    let mut x = recipe("x", "1");
    x.packages = vec!["x".into(), "libx".into()];
    x.tasks = vec![TaskInfo::new("do_packagedata")];
    let mut y = recipe("y", "1");
    y.tasks = vec![TaskInfo::new("do_packagedata")];
    check(
        &[a, x, y],
        &none(),
        &["a:do_package_write"],
        expect![[r#"
            a:do_package_write <- x:do_packagedata y:do_packagedata
            x:do_packagedata
            y:do_packagedata
            provider Build a = a 1
            provider Runtime libx = x 1
            provider Runtime y = y 1"#]],
    );
}

#[test]
fn depends_flag_names_a_provider_and_task() {
    let mut img = recipe("img", "1");
    let mut rootfs = TaskInfo::new("do_rootfs");
    rootfs.depends = vec![("virtual/kernel".into(), "do_deploy".into())];
    img.tasks = vec![rootfs];
    let mut k = recipe("linux", "6.1");
    k.provides = vec!["virtual/kernel".into()];
    k.tasks = vec![
        TaskInfo::new("do_compile"),
        TaskInfo::new("do_deploy").after(&["do_compile"]),
    ];
    check(
        &[img.clone(), k.clone()],
        &none(),
        &["img:do_rootfs"],
        expect![[r#"
            img:do_rootfs <- linux:do_deploy
            linux:do_compile
            linux:do_deploy <- linux:do_compile
            provider Build img = img 1
            provider Build virtual/kernel = linux 6.1"#]],
    );
    // The provider lacks the task: an error naming both sides.
    k.tasks.pop();
    check(
        &[img, k],
        &none(),
        &["img:do_rootfs"],
        expect![[
            r#"error: img:do_rootfs[depends] at <unknown location> asks for virtual/kernel:do_deploy, but linux (/l/meta/recipes/linux/linux_6.1.bb) has no task do_deploy; fix the flag or add the task"#
        ]],
    );
}

#[test]
fn rdepends_flag_resolves_runtime_names() {
    let mut img = recipe("img", "1");
    let mut t = TaskInfo::new("do_rootfs");
    t.rdepends = vec![("libz1".into(), "do_package".into())];
    img.tasks = vec![t];
    let mut z = recipe("zlib", "1.3");
    z.packages = vec!["zlib".into()];
    z.rprovides = vec!["libz1".into()];
    z.tasks = vec![TaskInfo::new("do_package")];
    check(
        &[img, z],
        &none(),
        &["img:do_rootfs"],
        expect![[r#"
            img:do_rootfs <- zlib:do_package
            zlib:do_package
            provider Build img = img 1
            provider Runtime libz1 = zlib 1.3"#]],
    );
}

fn pkg_recipe(pn: &str, deps: &str, rdeps: &str) -> RecipeInfo {
    let mut r = recipe(pn, "1");
    // Packages are written after those of DEPENDS and RDEPENDS: the task
    // graph the recursion of [recrdeptask] walks.
    let mut pw = TaskInfo::new("do_package_write");
    pw.deptask = vec!["do_package_write".into()];
    pw.rdeptask = vec!["do_package_write".into()];
    r.tasks = vec![pw, TaskInfo::new("do_build").after(&["do_package_write"])];
    let r = depends(r, deps);
    rdepends(r, &format!("RDEPENDS:{pn}"), rdeps)
}

#[test]
fn recrdeptask_follows_depends_and_rdepends_recursively() {
    // img DEPENDS a; a DEPENDS b; b RDEPENDS c; c is reached only recursively.
    let mut img = recipe("img", "1");
    let mut rootfs = TaskInfo::new("do_rootfs");
    rootfs.recrdeptask = vec!["do_package_write".into()];
    img.tasks = vec![rootfs];
    let img = depends(img, "a");
    let a = pkg_recipe("a", "b", "");
    let b = pkg_recipe("b", "", "c");
    let c = pkg_recipe("c", "", "");
    check(
        &[img, a, b, c],
        &none(),
        &["img:do_rootfs"],
        expect![[r#"
            a:do_package_write <- b:do_package_write
            b:do_package_write <- c:do_package_write
            c:do_package_write
            img:do_rootfs <- a:do_package_write b:do_package_write c:do_package_write
            provider Build a = a 1
            provider Build b = b 1
            provider Build img = img 1
            provider Runtime c = c 1"#]],
    );
}

#[test]
fn recrdeptask_self_reference_and_recideptask() {
    // do_build[recrdeptask] = "do_build do_package_write": every recipe's do_build
    // carries it; BitBake drops do_build -> do_build edges between such tasks.
    let mut recipes = Vec::new();
    for (pn, deps) in [("img", "a"), ("a", "b"), ("b", "")] {
        let mut r = pkg_recipe(pn, deps, "");
        let b = task_mut(&mut r, "do_build");
        b.recrdeptask = vec!["do_build".into(), "do_package_write".into()];
        recipes.push(r);
    }
    check(
        &recipes,
        &none(),
        &["img"],
        expect![[r#"
            a:do_package_write <- b:do_package_write
            b:do_package_write
            img:do_build <- a:do_package_write b:do_package_write img:do_package_write
            img:do_package_write <- a:do_package_write
            provider Build a = a 1
            provider Build b = b 1
            provider Build img = img 1"#]],
    );

    // recideptask: the recursion also follows what do_image_complete depends on
    // ([depends] on the kernel, which is no DEPENDS of img).
    let mut img = recipe("img", "1");
    let mut complete = TaskInfo::new("do_image_complete");
    complete.depends = vec![("k".into(), "do_compile".into())];
    let mut build = TaskInfo::new("do_build").after(&["do_image_complete"]);
    build.recrdeptask = vec!["do_deploy".into()];
    build.recideptask = vec!["do_image_complete".into()];
    img.tasks = vec![complete, build];
    let mut k = recipe("k", "1");
    k.tasks = vec![
        TaskInfo::new("do_compile"),
        TaskInfo::new("do_deploy").after(&["do_compile"]),
    ];
    check(
        &[img, k],
        &none(),
        &["img"],
        expect![[r#"
            img:do_build <- img:do_image_complete k:do_deploy
            img:do_image_complete <- k:do_compile
            k:do_compile
            k:do_deploy <- k:do_compile
            provider Build img = img 1
            provider Build k = k 1"#]],
    );
}

// ---- providers ------------------------------------------------------------

#[test]
fn virtual_provides_with_preferred_provider() {
    let a = depends(std("a", "1"), "virtual/libc");
    let mut glibc = std("glibc", "2.39");
    glibc.provides = vec!["virtual/libc".into()];
    let mut musl = std("musl", "1.2");
    musl.provides = vec!["virtual/libc".into()];
    let mut prefs = none();
    prefs
        .preferred_provider
        .insert("virtual/libc".into(), "musl".into());
    let out = render(
        &[a.clone(), glibc.clone(), musl.clone()],
        &prefs,
        &["a:do_configure"],
    );
    expect![[r#"
        a:do_configure <- a:do_prepare_recipe_sysroot a:do_unpack
        a:do_fetch
        a:do_prepare_recipe_sysroot <- musl:do_populate_sysroot
        a:do_unpack <- a:do_fetch
        musl:do_compile [dirs=/bitzel/work/build] [cleandirs=/bitzel/work/build] <- musl:do_configure
        musl:do_configure <- musl:do_prepare_recipe_sysroot musl:do_unpack
        musl:do_fetch
        musl:do_install <- musl:do_compile
        musl:do_populate_sysroot <- musl:do_install
        musl:do_prepare_recipe_sysroot
        musl:do_unpack <- musl:do_fetch
        provider Build a = a 1
        provider Build virtual/libc = musl 1.2"#]]
    .assert_eq(&out);

    // Without a preference, two equal providers are an error listing both.
    check(
        &[a, glibc, musl],
        &none(),
        &["a:do_configure"],
        expect![[
            r#"error: multiple providers are available for build-time 'virtual/libc': glibc 2.39 (/l/meta/recipes/glibc/glibc_2.39.bb), musl 1.2 (/l/meta/recipes/musl/musl_1.2.bb); set PREFERRED_PROVIDER_virtual/libc to one of them"#
        ]],
    );
}

#[test]
fn pn_equal_to_the_name_is_preferred_by_default() {
    let a = depends(std("a", "1"), "foo");
    let foo = std("foo", "1");
    let mut foo_ng = std("foo-ng", "9");
    foo_ng.provides = vec!["foo".into()];
    let c = explain_provider(&[a, foo, foo_ng], &none(), "foo");
    assert_eq!(c.chosen, Some(1));
    assert_eq!(c.eligible, vec![1, 2]);
    assert!(
        c.reasons.iter().any(|r| r.contains("PN of a candidate")),
        "{:?}",
        c.reasons
    );
}

fn versions() -> Vec<RecipeInfo> {
    let mut v = vec![std("app", "1")];
    v[0] = depends(v[0].clone(), "foo");
    for pv in ["1.9", "1.10", "2.0~rc1"] {
        v.push(std("foo", pv));
    }
    v
}

fn chosen_version(recipes: &[RecipeInfo], prefs: &ProviderPrefs) -> String {
    match build_graph(recipes, prefs, &targets(&["app"])) {
        Ok(plan) => {
            let c = plan.providers.iter().find(|c| c.name == "foo").unwrap();
            recipes[c.chosen.unwrap()].pv.clone()
        }
        Err(e) => format!("error: {e}"),
    }
}

#[test]
fn highest_version_wins_unless_preferred() {
    let v = versions();
    // 1.10 > 1.9 numerically; 2.0~rc1 > 1.10 (the ~ only sorts before 2.0 itself).
    assert_eq!(chosen_version(&v, &none()), "2.0~rc1");

    let mut prefs = none();
    prefs.preferred_version.insert("foo".into(), "1.%".into());
    // `%` is a prefix wildcard; among matches the file order decides (first match).
    assert_eq!(chosen_version(&v, &prefs), "1.10");
    prefs.preferred_version.insert("foo".into(), "1.9".into());
    assert_eq!(chosen_version(&v, &prefs), "1.9");
    // A preferred version that does not exist falls back to the latest.
    prefs.preferred_version.insert("foo".into(), "3.0".into());
    assert_eq!(chosen_version(&v, &prefs), "2.0~rc1");
    // A required one is an error instead.
    let mut req = none();
    req.required_version.insert("foo".into(), "3.0".into());
    expect![[r#"error: nothing PROVIDES 'foo' (no eligible provider: REQUIRED_VERSION_foo = "3.0" matches no available version (1.10, 1.9, 2.0~rc1)) (app asks for it in DEPENDS at /l/meta/recipes/app/app_1.bb:7); dependency chain: app -> foo; add a recipe that provides it, correct the name, or list it in ASSUME_PROVIDED"#]]
        .assert_eq(&chosen_version(&v, &req));
}

#[test]
fn default_preference_and_layer_priority() {
    let mut v = versions();
    // DEFAULT_PREFERENCE = "-1" on the newest: the next one wins.
    v[3].default_preference = -1;
    assert_eq!(chosen_version(&v, &none()), "1.10");
    // A higher-priority layer wins over any version in a lower one.
    v[1].layer_priority = 10;
    assert_eq!(chosen_version(&v, &none()), "1.9");
    // PREFERRED_VERSION still looks through every layer.
    let mut prefs = none();
    prefs.preferred_version.insert("foo".into(), "2.0%".into());
    assert_eq!(chosen_version(&v, &prefs), "2.0~rc1");
}

#[test]
fn bbclassextend_native_variant() {
    let a = depends(std("a", "1"), "quilt-native");
    let quilt = std("quilt", "0.67");
    let mut native = std("quilt-native", "0.67");
    native.file = quilt.file.clone();
    native.variant = Some("native".into());
    let plan = build_graph(
        &[a, quilt, native],
        &none(),
        &targets(&["a:do_prepare_recipe_sysroot"]),
    )
    .unwrap();
    expect![[r#"
        digraph depends {
        "a.do_prepare_recipe_sysroot" [label="a do_prepare_recipe_sysroot\n:1-r0\n/l/meta/recipes/a/a_1.bb"]
        "a.do_prepare_recipe_sysroot" -> "quilt-native.do_populate_sysroot"
        "quilt-native.do_compile" [label="quilt-native do_compile\n:0.67-r0\nvirtual:native:/l/meta/recipes/quilt/quilt_0.67.bb"]
        "quilt-native.do_compile" -> "quilt-native.do_configure"
        "quilt-native.do_configure" [label="quilt-native do_configure\n:0.67-r0\nvirtual:native:/l/meta/recipes/quilt/quilt_0.67.bb"]
        "quilt-native.do_configure" -> "quilt-native.do_prepare_recipe_sysroot"
        "quilt-native.do_configure" -> "quilt-native.do_unpack"
        "quilt-native.do_fetch" [label="quilt-native do_fetch\n:0.67-r0\nvirtual:native:/l/meta/recipes/quilt/quilt_0.67.bb"]
        "quilt-native.do_install" [label="quilt-native do_install\n:0.67-r0\nvirtual:native:/l/meta/recipes/quilt/quilt_0.67.bb"]
        "quilt-native.do_install" -> "quilt-native.do_compile"
        "quilt-native.do_populate_sysroot" [label="quilt-native do_populate_sysroot\n:0.67-r0\nvirtual:native:/l/meta/recipes/quilt/quilt_0.67.bb"]
        "quilt-native.do_populate_sysroot" -> "quilt-native.do_install"
        "quilt-native.do_prepare_recipe_sysroot" [label="quilt-native do_prepare_recipe_sysroot\n:0.67-r0\nvirtual:native:/l/meta/recipes/quilt/quilt_0.67.bb"]
        "quilt-native.do_unpack" [label="quilt-native do_unpack\n:0.67-r0\nvirtual:native:/l/meta/recipes/quilt/quilt_0.67.bb"]
        "quilt-native.do_unpack" -> "quilt-native.do_fetch"
        }
    "#]]
    .assert_eq(&to_dot(&plan.graph));
}

#[test]
fn runtime_provider_inferred_from_preferred_provider_and_dynamic_packages() {
    let mut a = recipe("a", "1");
    let mut pw = TaskInfo::new("do_package_write");
    pw.rdeptask = vec!["do_packagedata".into()];
    a.tasks = vec![pw];
    let a = rdepends(a, "RDEPENDS:a", "libc6 kernel-module-loop");
    let mk = |pn: &str| {
        let mut r = recipe(pn, "1");
        r.provides = vec!["virtual/libc".into()];
        r.packages = vec![pn.into()];
        r.rprovides = vec!["libc6".into()];
        r.tasks = vec![TaskInfo::new("do_packagedata")];
        r
    };
    let mut k = recipe("linux", "6.1");
    k.packages_dynamic = vec!["^kernel-module-.*".into()];
    k.tasks = vec![TaskInfo::new("do_packagedata")];
    let mut prefs = none();
    prefs
        .preferred_provider
        .insert("virtual/libc".into(), "musl".into());
    check(
        &[a, mk("glibc"), mk("musl"), k],
        &prefs,
        &["a:do_package_write"],
        expect![[r#"
            a:do_package_write <- linux:do_packagedata musl:do_packagedata
            linux:do_packagedata
            musl:do_packagedata
            provider Build a = a 1
            provider Runtime kernel-module-loop = linux 6.1
            provider Runtime libc6 = musl 1"#]],
    );
}

#[test]
fn assume_provided_names_need_no_provider() {
    let a = depends(std("a", "1"), "git-native perl-native");
    let mut prefs = none();
    prefs.assume_provided = vec!["git-native".into(), "^perl-.*".into()];
    let plan = build_graph(&[a], &prefs, &targets(&["a"])).unwrap();
    assert_eq!(plan.graph.len(), 8);
}

// ---- errors -------------------------------------------------------------------

#[test]
fn missing_build_provider_names_who_asked_and_where() {
    let a = depends(std("a", "1"), "b");
    let b = depends(std("b", "1"), "libnothere");
    check(
        &[a, b],
        &none(),
        &["a"],
        expect![[
            r#"error: nothing PROVIDES 'libnothere' (b asks for it in DEPENDS at /l/meta/recipes/b/b_1.bb:7); dependency chain: a -> b -> libnothere; add a recipe that provides it, correct the name, or list it in ASSUME_PROVIDED"#
        ]],
    );
}

#[test]
fn missing_runtime_provider_and_missing_target() {
    let a = rdepends(std("a", "1"), "RRECOMMENDS:a", "ghost");
    check(
        std::slice::from_ref(&a),
        &none(),
        &["a"],
        expect![[
            r#"error: nothing RPROVIDES 'ghost' (a asks for it in RRECOMMENDS:a at /l/meta/recipes/a/a_1.bb:9); dependency chain: a -> ghost; add a recipe that provides it, correct the name, or list it in ASSUME_PROVIDED"#
        ]],
    );
    check(
        std::slice::from_ref(&a),
        &none(),
        &["nope"],
        expect![[
            r#"error: nothing PROVIDES 'nope' (it is a build target); dependency chain: nope; add a recipe that provides it, correct the name, or list it in ASSUME_PROVIDED"#
        ]],
    );
    check(
        &[std("a", "1")],
        &none(),
        &["a:do_compil"],
        expect![[r#"
            error: task do_compil does not exist for target a (/l/meta/recipes/a/a_1.bb). Close matches:
              do_compile"#]],
    );
}

/// BitBake's `Nothing PROVIDES 'x'. Close matches:` (difflib, cutoff 0.7):
/// provided names and skipped PNs close to the name, sorted, plus
/// `<pn> RPROVIDES <name>` for recipes providing it at run time only.
#[test]
fn missing_build_provider_suggests_close_matches() {
    let a = depends(std("a", "1"), "zlibb");
    let mut prefs = none();
    // zlib-ng is below the cutoff (ratio 0.67); zlibc is a skipped recipe.
    prefs.skipped = vec!["zlibc".into()];
    check(
        &[a, std("zlib", "1.3"), std("zlib-ng", "2")],
        &prefs,
        &["a"],
        expect![[r#"
            error: nothing PROVIDES 'zlibb' (a asks for it in DEPENDS at /l/meta/recipes/a/a_1.bb:7); dependency chain: a -> zlibb; add a recipe that provides it, correct the name, or list it in ASSUME_PROVIDED. Close matches:
              zlib
              zlibc"#]],
    );
    let b = depends(std("b", "1"), "libfoo");
    let mut foo = std("foo", "1");
    foo.packages = vec!["foo".into(), "libfoo".into()];
    check(
        &[b, foo],
        &none(),
        &["b"],
        expect![[r#"
            error: nothing PROVIDES 'libfoo' (b asks for it in DEPENDS at /l/meta/recipes/b/b_1.bb:7); dependency chain: b -> libfoo; add a recipe that provides it, correct the name, or list it in ASSUME_PROVIDED. Close matches:
              foo RPROVIDES libfoo"#]],
    );
    // Nothing close: no suffix. Runtime names get none either (as BitBake).
    check(
        &[depends(std("c", "1"), "qqq")],
        &none(),
        &["c"],
        expect![[
            r#"error: nothing PROVIDES 'qqq' (c asks for it in DEPENDS at /l/meta/recipes/c/c_1.bb:7); dependency chain: c -> qqq; add a recipe that provides it, correct the name, or list it in ASSUME_PROVIDED"#
        ]],
    );
    assert_eq!(
        provider_close_matches(&[std("zlib", "1.3")], &none(), "zlibb"),
        ["zlib"]
    );
    assert!(provider_close_matches(&[std("zlib", "1.3")], &none(), "zlib").is_empty());
}

#[test]
fn close_matches_are_not_shown_with_a_reason() {
    let mut m = Missing {
        name: "x".into(),
        namespace: Namespace::Build,
        wanted_by: Vec::new(),
        reason: None,
        close: vec!["xb".into(), "xa".into(), "xa".into()].into(),
    };
    assert_eq!(m.close_suffix(), ". Close matches:\n  xa\n  xb");
    m.reason = Some("but x was skipped: no".into());
    assert_eq!(m.close_suffix(), "");
}

#[test]
fn an_unbuildable_alternative_is_left_out() {
    // virtual/x: the preferred provider is fine; the other one needs something
    // missing, which only matters if it were chosen.
    let a = depends(std("a", "1"), "virtual/x");
    let mut good = std("good", "1");
    good.provides = vec!["virtual/x".into()];
    let mut bad = depends(std("bad", "1"), "ghost");
    bad.provides = vec!["virtual/x".into()];
    let mut prefs = none();
    prefs
        .preferred_provider
        .insert("virtual/x".into(), "good".into());
    let plan = build_graph(&[a, good, bad], &prefs, &targets(&["a"])).unwrap();
    assert!(plan.graph.find("good", "do_populate_sysroot").is_some());
    assert!(plan.graph.find("bad", "do_fetch").is_none());
    assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);
    assert!(plan.warnings[0].contains("bad"));
}

#[test]
fn cycle_across_recipes_is_printed_whole() {
    let mut a = recipe("a", "1");
    let mut x = TaskInfo::new("do_x");
    x.depends = vec![("b".into(), "do_y".into())];
    a.tasks = vec![x];
    let mut b = recipe("b", "1");
    let mut y = TaskInfo::new("do_y");
    y.depends = vec![("a".into(), "do_x".into())];
    b.tasks = vec![y];
    let err = build_graph(&[a, b], &none(), &targets(&["a:do_x"])).unwrap_err();
    assert!(matches!(err, GraphError::Cycle(_)));
    assert!(
        err.to_string()
            .starts_with("dependency cycle: a:do_x -> b:do_y -> a:do_x;"),
        "{err}"
    );
}

#[test]
fn two_recipes_providing_one_name_in_one_build_are_an_error_bitbake_builds_on() {
    // BitBake's runqueue logs "Multiple .bb files are due to be built which
    // each provide ..." as an ERROR and runs the build (its exit status is then
    // 1): here the plan holds both recipes' tasks and the error.
    let a = depends(std("a", "1"), "virtual/x p2");
    let mut p1 = std("p1", "1");
    p1.provides = vec!["virtual/x".into()];
    let mut p2 = std("p2", "1");
    p2.provides = vec!["virtual/x".into()];
    let mut prefs = none();
    prefs
        .preferred_provider
        .insert("virtual/x".into(), "p1".into());
    let plan = build_graph(
        &[a.clone(), p1.clone(), p2.clone()],
        &prefs,
        &targets(&["a"]),
    )
    .unwrap();
    assert_eq!(
        plan.errors,
        vec!["multiple recipes are due to be built which each provide virtual/x: /l/meta/recipes/p1/p1_1.bb, /l/meta/recipes/p2/p2_1.bb; depend on one of them only, or list virtual/x in BB_MULTI_PROVIDER_ALLOWED".to_string()]
    );
    let pns: std::collections::BTreeSet<&str> =
        plan.graph.tasks.iter().map(|t| t.pn.as_str()).collect();
    assert_eq!(pns, ["a", "p1", "p2"].into_iter().collect());
    prefs.multi_provider_allowed = vec!["virtual/x".into()];
    let plan = build_graph(&[a, p1, p2], &prefs, &targets(&["a"])).unwrap();
    assert!(plan.errors.is_empty(), "{:?}", plan.errors);
}

#[test]
fn no_targets_is_an_error() {
    let err = build_graph(&[std("a", "1")], &none(), &[]).unwrap_err();
    assert_eq!(err, GraphError::NoTargets);
}

#[test]
fn runtime_ambiguity_is_a_warning_like_bitbake() {
    // Two packages RPROVIDE "sh" and nothing prefers one: BitBake notes it and
    // takes the first (by PN); bitzel does the same and warns.
    let mut a = recipe("a", "1");
    let mut pw = TaskInfo::new("do_package_write");
    pw.rdeptask = vec!["do_packagedata".into()];
    a.tasks = vec![pw];
    let a = rdepends(a, "RDEPENDS:a", "sh");
    let mk = |pn: &str| {
        let mut r = recipe(pn, "1");
        r.rprovides = vec!["sh".into()];
        r.tasks = vec![TaskInfo::new("do_packagedata")];
        r
    };
    check(
        &[a, mk("dash"), mk("bash")],
        &none(),
        &["a:do_package_write"],
        expect![[r#"
            a:do_package_write <- bash:do_packagedata
            bash:do_packagedata
            provider Build a = a 1
            provider Runtime sh = bash 1
            warning: multiple providers are available for runtime 'sh' (bash, dash); using bash; set PREFERRED_RPROVIDER_sh to choose"#]],
    );
}
