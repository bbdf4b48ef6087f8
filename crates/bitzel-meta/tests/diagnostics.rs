//! Malformed inputs: each gives one precise diagnostic with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bitzel_meta::{load_workspace, ConfInput, Loader, ParseOptions, Workspace};
use expect_test::{expect, Expect};

/// An in-memory layer.
struct Mem(BTreeMap<PathBuf, String>);

impl Loader for Mem {
    fn read(&self, path: &Path) -> std::io::Result<Option<String>> {
        Ok(self.0.get(path).cloned())
    }
    fn list_dir(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        let mut out: Vec<PathBuf> = self
            .0
            .keys()
            .filter_map(|p| {
                let rel = p.strip_prefix(dir).ok()?;
                let first = rel.components().next()?;
                Some(dir.join(first))
            })
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }
    fn is_dir(&self, path: &Path) -> bool {
        self.0.keys().any(|p| p.starts_with(path) && p != path)
    }
}

const LAYER_CONF: &str = "BBPATH .= \":${LAYERDIR}\"\nBBFILES += \"${LAYERDIR}/recipes/*.bb\"\n\
BBFILE_COLLECTIONS += \"t\"\nBBFILE_PATTERN_t = \"^${LAYERDIR}/\"\nLAYERSERIES_CORENAMES = \"x\"\nLAYERSERIES_COMPAT_t = \"x\"\n";

fn load(files: &[(&str, &str)]) -> Workspace {
    let mut m = BTreeMap::new();
    m.insert(PathBuf::from("/l/conf/layer.conf"), LAYER_CONF.to_string());
    m.insert(
        PathBuf::from("/l/conf/bitbake.conf"),
        "OVERRIDES = \"a\"\n".to_string(),
    );
    m.insert(PathBuf::from("/l/classes/base.bbclass"), "".to_string());
    for (p, t) in files {
        m.insert(PathBuf::from(p), t.to_string());
    }
    let input = ConfInput {
        topdir: PathBuf::from("/b"),
        bblayers_conf: Some("BBPATH = \"${TOPDIR}\"\nBBLAYERS = \"/l\"\n".into()),
        local_conf: Some(String::new()),
        env: BTreeMap::new(),
    };
    load_workspace(&input, &Mem(m), &ParseOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn check(recipe: &str, var: Option<&str>, expect: Expect) {
    let ws = load(&[("/l/recipes/r_1.0.bb", recipe)]);
    let mut out = String::new();
    for d in ws
        .diagnostics
        .iter()
        .filter(|d| d.severity >= bitzel_meta::Severity::Warning)
    {
        out.push_str(&format!("{d}\n"));
    }
    if let Some(v) = var {
        let r = &ws.recipes[0];
        match r.data.try_get_var(v) {
            Ok(val) => out.push_str(&format!("{v} = {val:?}\n")),
            Err(e) => out.push_str(&format!("{v}: {e}\n")),
        }
    }
    expect.assert_eq(&out);
}

#[test]
fn unterminated_function() {
    check(
        "A = \"1\"\ndo_x() {\n  echo\n",
        None,
        expect![[r#"
            /l/recipes/r_1.0.bb:2:1: error: Unparsed lines from unclosed function: shell function `do_x` is never closed: BitBake ends a function at a line holding only `}` (no indentation, nothing after it); add that line
              |
            2 | do_x() {
              | ^
        "#]],
    );
}

#[test]
fn bad_flag_syntax() {
    check(
        "A[fl ag] = \"1\"\n",
        None,
        expect![[r#"
        /l/recipes/r_1.0.bb:1:5: error: bad flag syntax: invalid character in flag name `fl ag` (flags use letters, digits and `-_+.@/`)
          |
        1 | A[fl ag] = "1"
          |     ^
    "#]],
    );
}

#[test]
fn unbalanced_quotes() {
    check(
        "A = \"1\nB = \"2\"\n",
        Some("B"),
        expect![[r#"
        /l/recipes/r_1.0.bb:1:5: error: unbalanced quotes: the value opened with " is never closed on this line (a trailing `\` continues a line)
          |
        1 | A = "1
          |     ^
        B = Some("2")
    "#]],
    );
}

#[test]
fn unknown_operator() {
    check(
        "A ~= \"1\"\n",
        None,
        expect![[r#"
        /l/recipes/r_1.0.bb:1:3: error: unknown assignment operator `~=`; BitBake knows `=`, `?=`, `??=`, `:=`, `+=`, `=+`, `.=` and `=.`
          |
        1 | A ~= "1"
          |   ^
    "#]],
    );
}

#[test]
fn missing_require() {
    check(
        "include optional.inc\nrequire missing.inc\n",
        None,
        expect![[r#"
        /l/recipes/r_1.0.bb:2:1: error: could not require file missing.inc: not found next to /l/recipes/r_1.0.bb nor in BBPATH; check the name, or use `include` if the file is optional
          |
        2 | require missing.inc
          | ^
    "#]],
    );
}

#[test]
fn missing_class() {
    check(
        "inherit nosuchclass\n",
        None,
        expect![[r#"
        /l/recipes/r_1.0.bb:1:1: error: could not inherit class `nosuchclass`: no classes-recipe/nosuchclass.bbclass or classes/nosuchclass.bbclass in BBPATH; check the name and that its layer is in BBLAYERS
          |
        1 | inherit nosuchclass
          | ^
    "#]],
    );
}

#[test]
fn recursive_expansion() {
    check(
        "A = \"${B}\"\nB = \"x ${A}\"\n",
        Some("A"),
        expect![[r#"
        A: recursive variable expansion: A -> B -> A; break the cycle
    "#]],
    );
}

#[test]
fn recursive_immediate_expansion_is_reported_at_the_statement() {
    check(
        "A = \"${B}\"\nB = \"${A}\"\nC := \"${A}\"\n",
        None,
        expect![[r#"
        /l/recipes/r_1.0.bb:3:1: error: recursive variable expansion: A -> B -> A; break the cycle
          |
        3 | C := "${A}"
          | ^
    "#]],
    );
}

#[test]
fn unsupported_inline_python() {
    check(
        "A = \"${@__import__('os').getcwd()}\"\nX := \"${A}\"\n",
        Some("A"),
        expect![[r#"
        /l/recipes/r_1.0.bb:1:1: error: expanding A: inline python `${@__import__('os').getcwd()}`: unsupported in bitzel's inline-Python subset: call to '__import__' (Python functions defined in metadata are not evaluated by bitzel)
          |
        1 | A = "${@__import__('os').getcwd()}"
          | ^
        A: expanding A: inline python `${@__import__('os').getcwd()}`: unsupported in bitzel's inline-Python subset: call to '__import__' (Python functions defined in metadata are not evaluated by bitzel)
    "#]],
    );
}

#[test]
fn old_override_syntax() {
    check(
        "A_append = \" x\"\n",
        None,
        expect![[r#"
        /l/recipes/r_1.0.bb:1:1: error: `A_append` uses the old override syntax `_append`, which BitBake 2.0 and later reject: write `A:append`
          |
        1 | A_append = " x"
          | ^
    "#]],
    );
}

#[test]
fn never_panics_on_garbage() {
    // A few hand-picked nasty inputs; the property test covers random ones.
    for src in [
        "}",
        "${",
        "${@",
        "python () {",
        "def",
        "A[",
        "A[]]] = \"\"",
        "\\",
        "export",
        "unset",
        "inherit",
        "addtask",
        "A = \"${@'}\"",
        "\u{0}\u{ffff}",
    ] {
        let _ = load(&[("/l/recipes/r_1.0.bb", src)]);
    }
}

#[test]
fn inline_python_values() {
    check(
        "A = \"${@d.getVar('B') or 'none'}-${@'x'.upper()}\"\nB = \"b\"\nC = \"${@'open}\"\nD := \"${@1+1}\"\n",
        Some("A"),
        expect![[r#"
            A = Some("b-X")
        "#]],
    );
    check(
        "C = \"${@'open}\"\n",
        Some("C"),
        expect![[r#"
        C = Some("${@'open}")
    "#]],
    );
    check(
        "D := \"${@1+1}\"\n",
        Some("D"),
        expect![[r#"
        D = Some("2")
    "#]],
    );
}

/// OE's bitbake.conf derives PN/PV/PR from FILE with inline Python; FILE is
/// the recipe while its value is read (and the include while one is parsed).
#[test]
fn oe_style_pn_pv_from_file() {
    let conf =
        "PN = \"${@bb.parse.vars_from_file(d.getVar('FILE', False),d)[0] or 'defaultpkgname'}\"\n\
PV = \"${@bb.parse.vars_from_file(d.getVar('FILE', False),d)[1] or '1.0'}\"\n\
PR = \"${@bb.parse.vars_from_file(d.getVar('FILE', False),d)[2] or 'r0'}\"\n\
BPN = \"${PN}\"\nP = \"${PN}-${PV}\"\n";
    let mut m = BTreeMap::new();
    m.insert(PathBuf::from("/l/conf/layer.conf"), LAYER_CONF.to_string());
    m.insert(PathBuf::from("/l/conf/bitbake.conf"), conf.to_string());
    m.insert(PathBuf::from("/l/classes/base.bbclass"), String::new());
    m.insert(
        PathBuf::from("/l/recipes/zlib_1.3.1.bb"),
        "require zlib.inc\nINC_FILE := \"${FILE}\"\n".to_string(),
    );
    m.insert(
        PathBuf::from("/l/recipes/zlib.inc"),
        "SEEN_IN_INC := \"${FILE}\"\n".to_string(),
    );
    let input = ConfInput {
        topdir: PathBuf::from("/b"),
        bblayers_conf: Some("BBPATH = \"${TOPDIR}\"\nBBLAYERS = \"/l\"\n".into()),
        local_conf: Some(String::new()),
        env: BTreeMap::new(),
    };
    let ws = load_workspace(&input, &Mem(m), &ParseOptions::default()).unwrap();
    let r = &ws.recipes[0];
    let got: Vec<String> = ["PN", "PV", "PR", "P", "SEEN_IN_INC", "INC_FILE"]
        .iter()
        .map(|v| format!("{v}={:?}", r.data.get_var(v)))
        .collect();
    expect![[r#"
        PN=Some("zlib")
        PV=Some("1.3.1")
        PR=Some("r0")
        P=Some("zlib-1.3.1")
        SEEN_IN_INC=Some("/l/recipes/zlib.inc")
        INC_FILE=Some("/l/recipes/zlib_1.3.1.bb")"#]]
    .assert_eq(&got.join("\n"));
    assert_eq!(
        (r.pn.as_str(), r.pv.as_str(), r.pr.as_str()),
        ("zlib", "1.3.1", "r0")
    );
    assert_eq!(ws.config.get_var("PN").as_deref(), Some("defaultpkgname"));
}

// ---- layer-level mistakes BitBake refuses ----------------------------------

/// A second layer `/m` (collection `m`, recipes and appends) over `/l`, with
/// `m_conf` appended to its layer.conf and `local` as local.conf.
fn load_two(m_conf: &str, local: &str, files: &[(&str, &str)]) -> Result<Workspace, String> {
    let mut m = BTreeMap::new();
    m.insert(PathBuf::from("/l/conf/layer.conf"), LAYER_CONF.to_string());
    m.insert(
        PathBuf::from("/l/conf/bitbake.conf"),
        "include conf/local.conf\n".to_string(),
    );
    m.insert(PathBuf::from("/l/classes/base.bbclass"), String::new());
    m.insert(
        PathBuf::from("/m/conf/layer.conf"),
        format!(
            "BBFILES += \"${{LAYERDIR}}/recipes/*.bb ${{LAYERDIR}}/recipes/*.bbappend\"\n\
             BBFILE_COLLECTIONS += \"m\"\nBBFILE_PATTERN_m = \"^${{LAYERDIR}}/\"\n\
             LAYERSERIES_COMPAT_m = \"x\"\n{m_conf}"
        ),
    );
    for (p, t) in files {
        m.insert(PathBuf::from(p), t.to_string());
    }
    let input = ConfInput {
        topdir: PathBuf::from("/b"),
        bblayers_conf: Some("BBPATH = \"${TOPDIR}\"\nBBLAYERS = \"/l /m\"\n".into()),
        local_conf: Some(local.to_string()),
        env: BTreeMap::new(),
    };
    let render = |d: &[bitzel_meta::Diagnostic]| {
        d.iter()
            .filter(|d| d.severity >= bitzel_meta::Severity::Warning)
            .map(|d| format!("{d}\n"))
            .collect::<String>()
    };
    match load_workspace(&input, &Mem(m), &ParseOptions::default()) {
        Ok(ws) => Ok(ws),
        Err(bitzel_meta::MetaError::Config { diagnostics }) => Err(render(&diagnostics)),
        Err(e) => Err(e.to_string()),
    }
}

fn diags_of(ws: &Workspace) -> String {
    ws.diagnostics
        .iter()
        .filter(|d| d.severity >= bitzel_meta::Severity::Warning)
        .map(|d| format!("{d}\n"))
        .collect()
}

const APPENDS: &[(&str, &str)] = &[
    ("/m/recipes/r_1.0.bb", "PN = \"r\"\n"),
    ("/m/recipes/r_%.bbappend", "X = \"1\"\n"),
    ("/m/recipes/gone_2.0.bbappend", "X = \"1\"\n"),
    ("/m/recipes/zz_%.bbappend", "X = \"1\"\n"),
    // A recipe an anonymous function skips still takes its appends.
    (
        "/m/recipes/skip_1.0.bb",
        "python () {\n    raise bb.parse.SkipRecipe(\"not here\")\n}\n",
    ),
    ("/m/recipes/skip_1.0.bbappend", "X = \"1\"\n"),
];

#[test]
fn appends_without_a_recipe_are_an_error() {
    let ws = load_two("", "", APPENDS).unwrap();
    expect![[r#"
        BBFILES: error: No recipes in default available for:
          /m/recipes/gone_2.0.bbappend
          /m/recipes/zz_%.bbappend
        update or remove these .bbappend files (or mask them with BBMASK) so that each matches a recipe
    "#]]
    .assert_eq(&diags_of(&ws));
    // Masked appends are not looked at.
    let ws = load_two("", "BBMASK = \"gone_ zz_\"\n", APPENDS).unwrap();
    assert_eq!(diags_of(&ws), "");
}

#[test]
fn dangling_appends_warn_only_when_asked() {
    for v in ["1", "yes", "True", "TRUE"] {
        let local = format!("BB_DANGLINGAPPENDS_WARNONLY = \"{v}\"\n");
        let ws = load_two("", &local, APPENDS).unwrap();
        expect![[r#"
            BBFILES: warning: No recipes in default available for:
              /m/recipes/gone_2.0.bbappend
              /m/recipes/zz_%.bbappend
        "#]]
        .assert_eq(&diags_of(&ws));
    }
    for v in ["0", "no", "false", "", "on"] {
        let local = format!("BB_DANGLINGAPPENDS_WARNONLY = \"{v}\"\n");
        let ws = load_two("", &local, APPENDS).unwrap();
        assert!(
            ws.diagnostics.iter().any(|d| d.is_error()),
            "{v}: {}",
            diags_of(&ws)
        );
    }
}

#[test]
fn layerdepends_on_a_missing_collection_is_an_error() {
    let err = load_two("LAYERDEPENDS_m = \"t nosuch other (>= 2)\"\n", "", &[]).unwrap_err();
    expect![[r#"
        /m/conf/layer.conf:5:1: error: Layer 'm' depends on layer 'nosuch', but this layer is not enabled in your configuration
          |
        5 | LAYERDEPENDS_m = "t nosuch other (>= 2)"
          | ^
        /m/conf/layer.conf:5:1: error: Layer 'm' depends on layer 'other', but this layer is not enabled in your configuration
          |
        5 | LAYERDEPENDS_m = "t nosuch other (>= 2)"
          | ^
    "#]]
    .assert_eq(&err);
    assert!(load_two("LAYERDEPENDS_m = \"t\"\n", "", &[]).is_ok());
}

#[test]
fn layerdepends_versions_are_checked() {
    let wants = |m_conf: &str| load_two(m_conf, "", &[]).err().unwrap_or_default();
    expect![[r#"
        /m/conf/layer.conf:5:1: error: Layer 'm' depends on version >= 2 of layer 't', but version 1.5 is currently enabled in your configuration. Check that you are using the correct matching versions/branches of these two layers.
          |
        5 | LAYERDEPENDS_m = "t (>= 2)"
          | ^
    "#]]
    .assert_eq(&wants("LAYERDEPENDS_m = \"t (>= 2)\"\nLAYERVERSION_t = \"1.5\"\n"));
    assert_eq!(
        wants("LAYERDEPENDS_m = \"t (>= 1.4)\"\nLAYERVERSION_t = \"1.5\"\n"),
        ""
    );
    expect![[r#"
        /m/conf/layer.conf:5:1: error: Layer 'm' depends on version = 3 of layer 't', which exists in your configuration but does not specify a version. Check that you are using the correct matching versions/branches of these two layers.
          |
        5 | LAYERDEPENDS_m = "t (= 3)"
          | ^
    "#]]
    .assert_eq(&wants("LAYERDEPENDS_m = \"t (= 3)\"\n"));
    expect![[r#"
        /m/conf/layer.conf:5:1: error: Error parsing LAYERDEPENDS_m: Invalid version specification in "(~" - invalid or missing operator
          |
        5 | LAYERDEPENDS_m = "t (~ 3)"
          | ^
    "#]]
    .assert_eq(&wants("LAYERDEPENDS_m = \"t (~ 3)\"\n"));
}

#[test]
fn thisdir_is_the_directory_of_file_as_bitbake_defines_it() {
    let files = [
        (
            "/l/recipes/r_1.0.bb",
            "RECIPE_DIR := \"${THISDIR}\"\ninclude inc/x.inc\nAFTER_INC := \"${THISDIR}\"\n\
             inherit k\nAFTER_CLASS := \"${THISDIR}\"\n",
        ),
        ("/l/recipes/inc/x.inc", "INC_DIR := \"${THISDIR}\"\n"),
        ("/l/classes/k.bbclass", "CLASS_DIR := \"${THISDIR}\"\n"),
        (
            "/m/recipes/r_%.bbappend",
            "FILESEXTRAPATHS:prepend := \"${THISDIR}/files:\"\n",
        ),
    ];
    // As poky's base.bbclass and meta-bitzel's bitbake.conf define it: the
    // directory of FILE, which `:=` captures while an include or bbappend is
    // parsed and which a class (FILE stays the recipe) does not change.
    let local = "FILESEXTRAPATHS ?= \"\"\nTHISDIR = \"${@os.path.dirname(d.getVar('FILE'))}\"\n";
    let ws = load_two("", local, &files).unwrap();
    assert_eq!(diags_of(&ws), "");
    let r = ws.recipes.iter().find(|r| r.pn == "r").unwrap();
    let got: Vec<String> = [
        "RECIPE_DIR",
        "INC_DIR",
        "AFTER_INC",
        "CLASS_DIR",
        "AFTER_CLASS",
        "FILESEXTRAPATHS",
    ]
    .iter()
    .map(|v| format!("{v}={:?}", r.data.get_var(v)))
    .collect();
    expect![[r#"
        RECIPE_DIR=Some("/l/recipes")
        INC_DIR=Some("/l/recipes/inc")
        AFTER_INC=Some("/l/recipes")
        CLASS_DIR=Some("/l/recipes")
        AFTER_CLASS=Some("/l/recipes")
        FILESEXTRAPATHS=Some("/m/recipes/files:")"#]]
    .assert_eq(&got.join("\n"));
}

#[test]
fn addpylib_is_recorded_with_the_layer_directory_expanded() {
    let ws = load_two(
        "addpylib ${LAYERDIR}/lib mlib\naddpylib ${LAYERDIR}/lib mlib\naddpylib ${LAYERDIR}/other other\n",
        "",
        &[],
    )
    .unwrap();
    assert_eq!(
        ws.config
            .get_var_unexpanded(bitzel_meta::ADDPYLIB_VAR)
            .as_deref(),
        Some("mlib /m/lib\nother /m/other")
    );
}
