//! Parse benchmark: generates a layer of 1,000 recipes inheriting a
//! realistic class stack (12 classes, 2,000+ lines of class text, overrides
//! and appends) and parses it cold (no parse cache) and warm (parse cache
//! filled by the previous run), printing recipes/second.
//!
//! Run: `cargo bench -p bitzel-benches --bench parse` (optionally
//! `-- --recipes N --jobs N`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use bitzel_meta::{load_workspace, ConfInput, FsLoader, ParseOptions};

const CLASSES: [&str; 12] = [
    "base",
    "logging",
    "utils",
    "staging",
    "patch",
    "mirrors",
    "sanity",
    "packaging",
    "autotools",
    "pkgconfig",
    "cmake",
    "deploy",
];

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// One class of roughly `lines` lines.
fn class_text(name: &str, idx: usize, lines: usize) -> String {
    let mut s = String::new();
    let up = name.to_uppercase();
    writeln!(s, "# {name}.bbclass: generated for the parse benchmark").unwrap();
    if idx + 1 < CLASSES.len() && idx % 3 == 0 {
        writeln!(s, "inherit {}", CLASSES[idx + 1]).unwrap();
    }
    let mut n = 0;
    while s.lines().count() < lines {
        n += 1;
        writeln!(s, "{up}_VAR{n} ?= \"${{PN}}-{n} ${{WORKDIR}}/{name}\"").unwrap();
        writeln!(s, "{up}_VAR{n}:append:class-native = \" native-{n}\"").unwrap();
        writeln!(s, "{up}_VAR{n}:qemux86-64 = \"machine-{n} ${{MACHINE}}\"").unwrap();
        writeln!(
            s,
            "{up}_FLAGS{n} = \"-O2 \\\n    -g \\\n    -DNAME=${{BPN}}\""
        )
        .unwrap();
        writeln!(s, "{up}_FLAGS{n}[doc] = \"Flags number {n} of {name}\"").unwrap();
        writeln!(s, "{up}_LIST{n} = \"a b c d e f\"").unwrap();
        writeln!(s, "{up}_LIST{n}:remove = \"c\"").unwrap();
        writeln!(s, "{up}_WEAK{n} ??= \"weak\"").unwrap();
        writeln!(s, "{up}_IMM{n} := \"${{TOPDIR}}/{n}\"").unwrap();
        writeln!(s, "{name}_do_step{n}() {{").unwrap();
        for k in 0..12 {
            writeln!(
                s,
                "\techo \"{name} step {n} line {k} ${{S}} ${{{up}_VAR{n}}}\""
            )
            .unwrap();
        }
        writeln!(s, "\tif [ -d ${{B}} ]; then\n\t\tcd ${{B}}\n\tfi\n}}").unwrap();
        writeln!(
            s,
            "python {name}_py{n}() {{\n    d.setVar('X', '1')\n    bb.note('{name}')\n}}"
        )
        .unwrap();
        writeln!(s, "def {name}_helper{n}(d):\n    return d.getVar('PN')\n").unwrap();
        writeln!(s, "DEPENDS:append = \" {name}-dep{n}\"").unwrap();
        writeln!(
            s,
            "do_install[depends] += \"{name}-native:do_populate_sysroot\""
        )
        .unwrap();
    }
    writeln!(s, "{name}_do_{name}() {{\n\t:\n}}").unwrap();
    writeln!(s, "addtask {name} after do_compile before do_build").unwrap();
    writeln!(s, "do_{name}[dirs] = \"${{B}}\"").unwrap();
    writeln!(s, "EXPORT_FUNCTIONS do_{name}").unwrap();
    s
}

fn generate(root: &Path, recipes: usize) -> usize {
    let core = root.join("meta-bench");
    write(
        &core.join("conf/layer.conf"),
        "BBPATH .= \":${LAYERDIR}\"\nBBFILES += \"${LAYERDIR}/recipes-*/*/*.bb ${LAYERDIR}/recipes-*/*/*.bbappend\"\n\
         BBFILE_COLLECTIONS += \"bench\"\nBBFILE_PATTERN_bench = \"^${LAYERDIR}/\"\nBBFILE_PRIORITY_bench = \"5\"\n\
         LAYERSERIES_CORENAMES = \"scarthgap\"\nLAYERSERIES_COMPAT_bench = \"scarthgap\"\n",
    );
    write(
        &core.join("conf/bitbake.conf"),
        "MACHINE ??= \"qemux86-64\"\nDISTRO ??= \"bench\"\nMACHINEOVERRIDES ?= \"x86-64:${MACHINE}\"\n\
         DISTROOVERRIDES ?= \"${DISTRO}\"\nCLASSOVERRIDE ?= \"class-target\"\n\
         OVERRIDES = \"linux:${MACHINEOVERRIDES}:${DISTROOVERRIDES}:${CLASSOVERRIDE}:pn-${PN}:forcevariable\"\n\
         include conf/local.conf\ninclude conf/machine/${MACHINE}.conf\n\
         BPN = \"${PN}\"\nP = \"${PN}-${PV}\"\nWORKDIR = \"/bitzel/work\"\nS = \"${WORKDIR}/${BP}\"\nBP = \"${BPN}-${PV}\"\n\
         B = \"${S}\"\nD = \"${WORKDIR}/image\"\nexport CC = \"gcc\"\nexport CFLAGS = \"-O2\"\n\
         INHERIT += \"logging\"\n",
    );
    write(
        &core.join("conf/machine/qemux86-64.conf"),
        "TUNE_ARCH = \"x86_64\"\nMACHINE_FEATURES = \"pci\"\n",
    );
    write(
        &core.join("classes/native.bbclass"),
        "CLASSOVERRIDE = \"class-native\"\nprefix = \"/usr/native\"\n",
    );
    let mut class_lines = 0;
    for (i, c) in CLASSES.iter().enumerate() {
        let dir = if *c == "base" || *c == "logging" {
            "classes-global"
        } else {
            "classes-recipe"
        };
        let text = class_text(c, i, 200);
        class_lines += text.lines().count();
        write(&core.join(format!("{dir}/{c}.bbclass")), &text);
    }
    for i in 0..recipes {
        let pn = format!("pkg{i}");
        let classes = match i % 3 {
            0 => "autotools pkgconfig packaging deploy",
            1 => "cmake pkgconfig packaging staging patch",
            _ => "autotools cmake sanity mirrors utils packaging",
        };
        let mut r = String::new();
        writeln!(r, "SUMMARY = \"Package {i}\"\nLICENSE = \"MIT\"\nSRC_URI = \"https://example.org/{pn}-${{PV}}.tar.gz\"").unwrap();
        writeln!(r, "inherit {classes}").unwrap();
        writeln!(
            r,
            "DEPENDS += \"zlib\"\nEXTRA_OECONF:append:qemux86-64 = \" --enable-x86\""
        )
        .unwrap();
        writeln!(r, "do_install:append() {{\n\tinstall -d ${{D}}/usr/bin\n}}").unwrap();
        if i % 10 == 0 {
            writeln!(r, "BBCLASSEXTEND = \"native\"").unwrap();
        }
        write(&core.join(format!("recipes-bench/{pn}/{pn}_1.{i}.bb")), &r);
        if i % 7 == 0 {
            write(
                &core.join(format!("recipes-bench/{pn}/{pn}_%.bbappend")),
                "EXTRA_OECONF += \"--from-append\"\n",
            );
        }
    }
    class_lines
}

fn main() {
    let mut recipes = 1000;
    let mut jobs = None;
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--recipes" => {
                recipes = args
                    .get(i + 1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(recipes);
                i += 1;
            }
            "--jobs" => {
                jobs = args.get(i + 1).and_then(|v| v.parse().ok());
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    let tmp = tempfile::tempdir().unwrap();
    let class_lines = generate(tmp.path(), recipes);
    let root = tmp.path().to_string_lossy().to_string();
    let input = ConfInput {
        topdir: tmp.path().join("build"),
        bblayers_conf: Some(format!(
            "BBPATH = \"${{TOPDIR}}\"\nBBLAYERS = \"{root}/meta-bench\"\n"
        )),
        local_conf: Some("MACHINE = \"qemux86-64\"\n".into()),
        env: BTreeMap::new(),
    };
    println!(
        "parse benchmark: {recipes} recipes, {} classes, {class_lines} lines of class text",
        CLASSES.len()
    );
    let cache = tmp.path().join("cache");
    for (label, cache_dir) in [
        ("cold (no cache)", None),
        ("cold (filling cache)", Some(cache.clone())),
        ("warm (cache)", Some(cache.clone())),
    ] {
        let t = Instant::now();
        let ws = load_workspace(
            &input,
            &FsLoader,
            &ParseOptions {
                cache_dir,
                jobs,
                ..Default::default()
            },
        )
        .unwrap();
        let el = t.elapsed().as_secs_f64();
        let errors = ws.diagnostics.iter().filter(|d| d.is_error()).count();
        println!(
            "{label:>22}: {:>5} datastores in {:.3} s = {:>8.0} recipes/s ({} errors)",
            ws.recipes.len(),
            el,
            ws.recipes.len() as f64 / el,
            errors
        );
        if errors > 0 {
            for d in ws.diagnostics.iter().filter(|d| d.is_error()).take(3) {
                println!("{d}");
            }
        }
        let r = &ws.recipes[ws.recipes.len() / 2];
        let t = Instant::now();
        let n = r.data.keys().len();
        let mut total = 0;
        for k in r.data.keys() {
            total += r.data.get_var(&k).map(|v| v.len()).unwrap_or(0);
        }
        println!(
            "{:>22}  expanding all {n} variables of {} took {:.3} s ({total} bytes)",
            "",
            r.pn,
            t.elapsed().as_secs_f64()
        );
    }
}
