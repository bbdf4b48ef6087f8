//! Loading whole configurations: include chains, override semantics, the
//! generated bblayers.conf/local.conf, resolving layers, errors with
//! locations. Fixtures live in `testdata/config/`; layouts that need their
//! own repository root are written into temporary directories.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

use bitzel_config::{load, ConfigError, Project, RepoSource, SandboxChoice};
use expect_test::{expect, Expect};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/config")
        .canonicalize()
        .unwrap()
}

/// Everything a project says, with paths shown relative to `root`.
fn summary(p: &Project, root: &Path) -> String {
    let rel = |x: &Path| {
        x.strip_prefix(root)
            .map(|r| format!("<root>/{}", r.display()))
            .unwrap_or_else(|_| x.display().to_string())
    };
    let mut s = String::new();
    s += &format!("machine: {:?}\n", p.machine);
    s += &format!("distro: {:?}\n", p.distro);
    s += &format!("targets: {:?}\n", p.targets);
    s += &format!("task: {:?}\n", p.task);
    for r in &p.repos {
        let src = match &r.source {
            RepoSource::Local => "local".to_string(),
            RepoSource::Git {
                url,
                commit,
                branch,
                tag,
                path,
            } => format!("git {url} commit={commit:?} branch={branch:?} tag={tag:?} path={path:?}"),
        };
        let layers: Vec<&str> = r.layers.iter().map(|l| l.name.as_str()).collect();
        s += &format!(
            "repo {} (name {}): {src}, dir {}, layers {layers:?}\n",
            r.id,
            r.name,
            r.dir.as_deref().map(rel).unwrap_or_else(|| "-".into())
        );
    }
    s += &format!("local_conf_header: {:?}\n", p.local_conf_header);
    s += &format!("bblayers_conf_header: {:?}\n", p.bblayers_conf_header);
    s += &format!("env: {:?}\n", p.env);
    let b = &p.bitzel;
    s += &format!(
        "bitzel: cache_dir={:?} jobs={:?} sandbox={:?} build_root={:?} build_dir={:?}\n",
        b.cache_dir.as_deref().map(rel),
        b.jobs,
        b.sandbox,
        b.build_root,
        b.build_dir.as_deref().map(rel)
    );
    s += "--- bblayers.conf\n";
    s += &p
        .bblayers_conf()
        .replace(&root.display().to_string(), "<root>");
    s += "--- local.conf\n";
    s += &p.local_conf();
    s
}

fn check(p: &Project, root: &Path, expect: Expect) {
    expect.assert_eq(&summary(p, root));
}

fn err(path: &Path) -> String {
    match load(path) {
        Ok(p) => panic!("{} loaded: {p:?}", path.display()),
        Err(e) => e.to_string(),
    }
}

/// The error rendered with `root` replaced, for stable assertions.
fn rel_err(e: &ConfigError, root: &Path) -> String {
    e.to_string().replace(&root.display().to_string(), "<root>")
}

#[test]
fn include_chain_loads_like_the_flat_file() {
    let root = testdata().join("project");
    let mut chained = load(&root.join("kas.yml")).unwrap();
    let mut flat = load(&root.join("flat.yml")).unwrap();
    chained.resolve(&root.join("build")).unwrap();
    flat.resolve(&root.join("build")).unwrap();
    assert_eq!(summary(&chained, &root), summary(&flat, &root));
    assert!(chained.warnings.is_empty(), "{:?}", chained.warnings);
    assert_eq!(
        chained
            .files
            .iter()
            .map(|f| f.strip_prefix(&root).unwrap().display().to_string())
            .collect::<Vec<_>>(),
        ["base.yml", "base.yml", "bsp/board.yml", "kas.yml"]
    );
    check(
        &chained,
        &root,
        expect![[r#"
            machine: Some("qemux86-64")
            distro: Some("bitzel")
            targets: ["core-image-minimal", "mc:second:core-image-minimal"]
            task: Some("build")
            repo fixture (name fixture): local, dir <root>/layers, layers ["meta-one", "meta-three"]
            local_conf_header: [("00-top", "TOP = \"1\"\n"), ("10-base", "BASE = \"1\"\n"), ("20-shared", "SHARED = \"from board\"\n")]
            bblayers_conf_header: [("board", "BOARD_LAYERS = \"1\"\n")]
            env: {"FROM_BASE": Some("b"), "FROM_TOP": Some("t"), "PASS_THROUGH": None}
            bitzel: cache_dir=Some("<root>/cache") jobs=Some(2) sandbox=Some(Auto) build_root=Some(Host) build_dir=None
            --- bblayers.conf
            # board
            BOARD_LAYERS = "1"

            BBLAYERS ?= " \
                <root>/layers/meta-one \
                <root>/layers/meta-three"
            BBPATH ?= "${TOPDIR}"
            BBFILES ??= ""
            --- local.conf
            # 00-top
            TOP = "1"

            # 10-base
            BASE = "1"

            # 20-shared
            SHARED = "from board"

            MACHINE ??= "qemux86-64"
            DISTRO ??= "bitzel"
            BBMULTICONFIG ?= "second"
        "#]],
    );
    assert_eq!(
        chained.layer_paths(),
        [root.join("layers/meta-one"), root.join("layers/meta-three")]
    );
    assert_eq!(chained.file, root.join("kas.yml"));
    assert_eq!(chained.dir, root);
}

#[test]
fn typo_is_one_error_with_location_and_suggestion() {
    let f = testdata().join("errors/typo.yml");
    let e = load(&f).unwrap_err();
    assert_eq!(
        rel_err(&e, &testdata()),
        "<root>/errors/typo.yml:3:1: unknown key `machin` (did you mean `machine`?)"
    );
    assert_eq!(e.location().line, 3);
}

#[test]
fn syntax_error_has_location() {
    let e = err(&testdata().join("errors/syntax.yml"));
    assert!(e.contains("errors/syntax.yml:5:7: invalid YAML:"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
}

#[test]
fn wrong_version_names_the_range() {
    let e = err(&testdata().join("errors/bad-version.yml"));
    assert!(
        e.ends_with("errors/bad-version.yml:2:12: kas format version 99 is not supported: bitzel reads kas format versions 1 to 20"),
        "{e}"
    );
}

#[test]
fn unreadable_include_points_at_the_include_line() {
    let e = err(&testdata().join("errors/bad-include.yml"));
    assert!(
        e.contains("errors/bad-include.yml:4:7: cannot read include `"),
        "{e}"
    );
    assert!(
        e.contains("errors/does-not-exist.yml`: No such file or directory"),
        "{e}"
    );
}

#[test]
fn include_cycle_is_an_error() {
    let e = err(&testdata().join("errors/cycle-a.yml"));
    assert!(e.contains("errors/cycle-b.yml:4:7: include cycle: "), "{e}");
    assert!(
        e.ends_with("cycle-a.yml -> ")
            || e.contains("cycle-a.yml -> ") && e.ends_with("cycle-a.yml"),
        "{e}"
    );
}

#[test]
fn missing_layer_names_the_directory_and_line() {
    let root = testdata();
    let mut p = load(&root.join("errors/missing-layer.yml")).unwrap();
    let e = p.resolve(&root.join("build")).unwrap_err();
    assert_eq!(
        rel_err(&e, &root),
        "<root>/errors/missing-layer.yml:9:7: layer `meta-missing` of repo `fixture` not found: `<root>/project/layers/meta-missing` is not a directory"
    );
}

#[test]
fn unsupported_kas_keys_are_warnings_by_name() {
    let root = testdata();
    let p = load(&root.join("warnings/unsupported.yml")).unwrap();
    let w: Vec<String> = p
        .warnings
        .iter()
        .map(|d| d.to_string().replace(&root.display().to_string(), "<root>"))
        .collect();
    assert_eq!(
        w,
        [
            "<root>/warnings/unsupported.yml:4:1: kas key `build_system` is not supported by bitzel yet; it is ignored",
            "<root>/warnings/unsupported.yml:9:5: kas key `repos.fixture.refspec` is not supported by bitzel yet; it is ignored",
        ]
    );
}

/// A temporary project directory that is its own repository root.
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join(".git")).unwrap();
        Tree { dir }
    }
    fn root(&self) -> PathBuf {
        self.dir.path().canonicalize().unwrap()
    }
    fn file(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.root().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, text).unwrap();
        p
    }
    fn layer(&self, rel: &str) {
        self.file(
            &format!("{rel}/conf/layer.conf"),
            "BBPATH .= \":${LAYERDIR}\"\n",
        );
    }
}

#[test]
fn includes_are_relative_to_the_repo_root_then_the_file() {
    let t = Tree::new();
    t.layer("meta-a");
    // kas semantics: `kas/b.yml` named in kas/top.yml is relative to the repo root…
    t.file(
        "kas/top.yml",
        "header:\n  version: 14\n  includes:\n    - kas/b.yml\n    - c.yml\nmachine: top\n",
    );
    t.file(
        "kas/b.yml",
        "header:\n  version: 14\ndistro: from-b\nmachine: b\n",
    );
    // …and `c.yml` falls back to the including file's directory.
    t.file("kas/c.yml", "header:\n  version: 14\ntarget: from-c\n");
    let p = load(&t.root().join("kas/top.yml")).unwrap();
    assert_eq!(p.machine.as_deref(), Some("top"));
    assert_eq!(p.distro.as_deref(), Some("from-b"));
    assert_eq!(p.targets, ["from-c"]);
}

#[test]
fn own_repo_is_the_repository_root_and_layers_can_be_disabled() {
    let t = Tree::new();
    t.layer("meta-a");
    t.layer("meta-b");
    t.layer("meta-c");
    t.file(
        "kas/base.yml",
        "header:\n  version: 14\nrepos:\n  this:\n    layers:\n      meta-a:\n      meta-b:\n      meta-c:\n",
    );
    let top = t.file(
        "kas/top.yml",
        "header:\n  version: 14\n  includes: [kas/base.yml]\nrepos:\n  this:\n    layers:\n      meta-b: disabled\n      meta-c: no\n      meta-a: ~\n",
    );
    let mut p = load(&top).unwrap();
    p.resolve(&t.root().join("build")).unwrap();
    assert_eq!(p.layer_paths(), [t.root().join("meta-a")]);

    // No `layers:` at all: the repo itself is the layer.
    let top2 = t.file(
        "kas/self.yml",
        "header:\n  version: 14\nrepos:\n  meta-a:\n    path: ../meta-a\n",
    );
    let mut p = load(&top2).unwrap();
    p.resolve(&t.root().join("build")).unwrap();
    assert_eq!(p.layer_paths(), [t.root().join("meta-a")]);
}

#[test]
fn repos_are_sorted_by_name_and_layers_within_a_repo() {
    let t = Tree::new();
    for l in ["z/meta-b", "z/meta-a", "a/meta-y", "a/meta-x"] {
        t.layer(l);
    }
    let top = t.file(
        "k.yml",
        "header:\n  version: 14\nrepos:\n  zz:\n    path: z\n    layers:\n      meta-b:\n      meta-a:\n  aa:\n    path: a\n    layers:\n      meta-y:\n      meta-x:\n",
    );
    let mut p = load(&top).unwrap();
    p.resolve(&t.root().join("build")).unwrap();
    let r = t.root();
    assert_eq!(
        p.layer_paths(),
        [
            r.join("a/meta-x"),
            r.join("a/meta-y"),
            r.join("z/meta-a"),
            r.join("z/meta-b")
        ]
    );
    let ids: Vec<&str> = p.repos.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["aa", "zz"]);
}

#[test]
fn repo_includes_follow_local_repos_and_warn_for_remote_ones() {
    let t = Tree::new();
    t.layer("other/meta-o");
    t.file(
        "other/kas/o.yml",
        "header:\n  version: 14\n  includes: [kas/o2.yml]\ndistro: from-other\n",
    );
    // Inside a repo include, string includes are relative to that repo.
    t.file(
        "other/kas/o2.yml",
        "header:\n  version: 14\nmachine: from-other2\n",
    );
    let top = t.file(
        "top.yml",
        "header:\n  version: 14\n  includes:\n    - repo: other\n      file: kas/o.yml\n    - repo: far\n      file: x.yml\nrepos:\n  other:\n    path: other\n    layers:\n      meta-o:\n  far:\n    url: https://example.invalid/far.git\n    commit: 0123456789012345678901234567890123456789\n",
    );
    let p = load(&top).unwrap();
    assert_eq!(p.distro.as_deref(), Some("from-other"));
    assert_eq!(p.machine.as_deref(), Some("from-other2"));
    let w: Vec<String> = p.warnings.iter().map(|d| d.message.clone()).collect();
    assert_eq!(
        w,
        ["include `x.yml` from repo `far` not followed: that repo is fetched from a `url`, and bitzel follows includes only into local repos for now"]
    );
    assert!(p.warnings[0].at.file.ends_with("top.yml"));
    assert_eq!(p.warnings[0].at.line, 6);

    let bad = t.file(
        "bad.yml",
        "header:\n  version: 14\n  includes:\n    - repo: nowhere\n      file: x.yml\n",
    );
    let e = load(&bad).unwrap_err().to_string();
    assert!(
        e.ends_with("bad.yml:4:7: include `x.yml` is in repo `nowhere`, which no loaded file declares under `repos`"),
        "{e}"
    );
}

#[test]
fn relative_paths_resolve_against_the_declaring_file() {
    let t = Tree::new();
    t.layer("layers/meta-a");
    t.file(
        "kas/inc/repos.yml",
        "header:\n  version: 14\nrepos:\n  a:\n    path: ../../layers/meta-a\nbitzel:\n  build_dir: ../../out\n  downloads_dir: /abs/dl\n",
    );
    let top = t.file(
        "kas/top.yml",
        "header:\n  version: 14\n  includes: [kas/inc/repos.yml]\nbitzel:\n  cache_dir: cache\n",
    );
    let mut p = load(&top).unwrap();
    let r = t.root();
    assert_eq!(
        p.repos[0].dir.as_deref(),
        Some(r.join("layers/meta-a").as_path())
    );
    assert_eq!(p.bitzel.build_dir, Some(r.join("out")));
    assert_eq!(p.bitzel.cache_dir, Some(r.join("kas/cache")));
    assert_eq!(p.bitzel.downloads_dir, Some(PathBuf::from("/abs/dl")));
    p.resolve(&r.join("build")).unwrap();
    assert_eq!(p.layer_paths(), [r.join("layers/meta-a")]);
}

#[test]
fn a_bare_rootfs_build_root_is_refused_at_its_line_naming_the_mapping_form() {
    let t = Tree::new();
    let top = t.file(
        "k.yml",
        "header:\n  version: 14\nbitzel:\n  jobs: 3\n  build_root: rootfs\n",
    );
    let e = load(&top).unwrap_err().to_string();
    assert!(
        e.contains("k.yml:5:15: `build_root: rootfs` needs the root it names"),
        "{e}"
    );
}

#[test]
fn the_rootfs_build_root_is_read_with_its_location() {
    let t = Tree::new();
    let top = t.file(
        "k.yml",
        "header:\n  version: 14\nbitzel:\n  build_root:\n    rootfs:\n      suite: bookworm\n      packages: [build-essential, python3]\n      mirror: http://mirror.invalid/debian\n",
    );
    let p = load(&top).unwrap();
    assert_eq!(p.bitzel.build_root, Some(bitzel_config::BuildRoot::Rootfs));
    let r = p.bitzel.rootfs.unwrap();
    assert_eq!(r.suite, "bookworm");
    assert_eq!(r.packages, ["build-essential", "python3"]);
    assert_eq!(r.mirror.as_deref(), Some("http://mirror.invalid/debian"));
    assert_eq!(r.tarball, None);
    assert_eq!((r.at.line, r.at.column), (5, 5));
}

#[test]
fn bad_rootfs_declarations_are_errors_at_their_line() {
    let t = Tree::new();
    let cases = [
        (
            "      suite: bookworm\n",
            "k.yml:5:5: `bitzel.build_root.rootfs` needs `suite:` and `packages:`",
        ),
        (
            "      suite: bookworm\n      packages: [Build_Essential]\n",
            "k.yml:7:18: `Build_Essential` is not a Debian package name",
        ),
        (
            "      suite: bookworm\n      packages: gcc\n",
            "k.yml:7:17: `bitzel.build_root.rootfs.packages` must be a list of package names",
        ),
        (
            "      suite: bookworm\n      packages: [gcc]\n      mirorr: x\n",
            "k.yml:8:7: unknown key `mirorr`",
        ),
        (
            "      tarball: r.tar\n      packages: [gcc]\n",
            "k.yml:5:5: `bitzel.build_root.rootfs` takes either `tarball:`",
        ),
    ];
    for (body, want) in cases {
        let top = t.file(
            "k.yml",
            &format!("header:\n  version: 14\nbitzel:\n  build_root:\n    rootfs:\n{body}"),
        );
        let e = load(&top).unwrap_err().to_string();
        assert!(e.contains(want), "{body}: {e}");
    }
}

#[test]
fn bitzel_settings_are_typed() {
    let t = Tree::new();
    let top = t.file(
        "k.yml",
        "header:\n  version: 14\nbitzel:\n  jobs: 3\n  build_records: 7\n  sandbox: sandbox-exec\n  build_root: host\n  remote_cache:\n    url: http://cache.invalid/\n    read_only: true\n    instance: main\n    auth_header_env: BITZEL_CACHE_AUTH\n    digest_function: blake3\n",
    );
    let p = load(&top).unwrap();
    assert_eq!(p.bitzel.jobs, Some(3));
    assert_eq!(p.bitzel.build_records, Some(7));
    assert_eq!(p.bitzel.sandbox, Some(SandboxChoice::SandboxExec));
    assert_eq!(p.bitzel.build_root, Some(bitzel_config::BuildRoot::Host));
    let rc = p.bitzel.remote_cache.unwrap();
    assert_eq!(rc.url.as_deref(), Some("http://cache.invalid/"));
    assert_eq!(rc.read_only, Some(true));
    assert_eq!(rc.instance.as_deref(), Some("main"));
    assert_eq!(rc.auth_header_env.as_deref(), Some("BITZEL_CACHE_AUTH"));
    assert_eq!(rc.digest_function.as_deref(), Some("blake3"));
}

#[test]
fn remote_executor_settings_are_typed_and_checked() {
    let t = Tree::new();
    let top = t.file(
        "k.yml",
        "header:\n  version: 14\nbitzel:\n  remote_executor:\n    url: grpc://127.0.0.1:50051\n    instance: main\n    auth_header_env: BITZEL_REAPI_AUTH\n    fallback: local\n",
    );
    let rx = load(&top).unwrap().bitzel.remote_executor.unwrap();
    assert_eq!(rx.url.as_deref(), Some("grpc://127.0.0.1:50051"));
    assert_eq!(rx.instance.as_deref(), Some("main"));
    assert_eq!(rx.auth_header_env.as_deref(), Some("BITZEL_REAPI_AUTH"));
    assert_eq!(rx.fallback.as_deref(), Some("local"));
    let bad = t.file(
        "b.yml",
        "header:\n  version: 14\nbitzel:\n  remote_executor:\n    fallback: sometimes\n",
    );
    let e = load(&bad).unwrap_err().to_string();
    assert!(
        e.contains("b.yml:5:15") && e.contains("expected `local` or `none`"),
        "{e}"
    );
}

#[test]
fn url_repos_must_be_pinned() {
    let t = Tree::new();
    let top = t.file(
        "k.yml",
        "header:\n  version: 14\nrepos:\n  r:\n    url: https://example.invalid/r.git\n",
    );
    let e = load(&top).unwrap_err().to_string();
    assert!(e.ends_with("k.yml:5:10: repo `r` has a `url` but no `commit`, `branch` or `tag`: pin it, e.g. `commit: <full commit id>`"), "{e}");
}

#[test]
fn missing_local_repo_directory_is_an_error() {
    let t = Tree::new();
    let top = t.file(
        "k.yml",
        "header:\n  version: 14\nrepos:\n  r:\n    path: nowhere\n",
    );
    let mut p = load(&top).unwrap();
    let e = p.resolve(&t.root().join("build")).unwrap_err().to_string();
    assert!(e.contains("k.yml:5:11: repo `r`: directory `"), "{e}");
    assert!(e.ends_with("nowhere` does not exist"), "{e}");
}

#[test]
fn layer_without_layer_conf_is_a_warning() {
    let t = Tree::new();
    fs::create_dir_all(t.root().join("meta-bare")).unwrap();
    let top = t.file(
        "k.yml",
        "header:\n  version: 14\nrepos:\n  r:\n    layers:\n      meta-bare:\n",
    );
    let mut p = load(&top).unwrap();
    p.resolve(&t.root().join("build")).unwrap();
    assert_eq!(p.warnings.len(), 1);
    assert!(
        p.warnings[0].message.contains("has no conf/layer.conf"),
        "{:?}",
        p.warnings
    );
    assert_eq!(p.warnings[0].at.line, 6);
}

#[test]
fn unreadable_top_file() {
    let e = err(Path::new("/nonexistent/bitzel/k.yml"));
    assert_eq!(
        e,
        "/nonexistent/bitzel/k.yml:1:1: cannot read config file `/nonexistent/bitzel/k.yml`: No such file or directory (os error 2)"
    );
}
