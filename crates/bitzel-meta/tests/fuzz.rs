//! Property tests: the parser and the whole load never panic, whatever the
//! input (random text and mutated recipes), and every diagnostic points
//! inside the file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use bitzel_meta::{parse, DataStore, Mode};
use proptest::prelude::*;

const SEED: &str = r#"# comment
A = "1"
B ?= "${A} two"
C:append:foo = " x \
   y"
D[flag] ??= 'v'
export E = "${@d.getVar('A') or ''}"
inherit ${CLASSES}
addtask do_x after do_y before do_z
do_x() {
	echo ${A}
}
python () {
    pass
}
def f(d):
    return 1
unset A[flag]
include ${B}.inc
EXPORT_FUNCTIONS do_x
"#;

fn mutate(seed: &str, ops: &[(usize, u8, u8)]) -> String {
    let mut b: Vec<u8> = seed.as_bytes().to_vec();
    for &(pos, kind, byte) in ops {
        if b.is_empty() {
            break;
        }
        let p = pos % b.len();
        let c = b"{}[]\"'\\$@:=?+.# \n\tx"[byte as usize % 19];
        match kind % 3 {
            0 => b[p] = c,
            1 => b.insert(p, c),
            _ => {
                b.remove(p);
            }
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

fn check_text(text: &str) {
    for mode in [Mode::Recipe, Mode::Conf] {
        let ast = parse(Path::new("f.bb"), text, mode);
        let lines = text.split('\n').count() as u32;
        for d in &ast.diagnostics {
            assert!(
                d.line >= 1 && d.line <= lines,
                "line {} out of range in {text:?}",
                d.line
            );
        }
    }
    // Evaluate the values through a datastore as well.
    let mut ds = DataStore::new();
    for (i, line) in text.lines().enumerate() {
        ds.set_var(&format!("V{i}"), std::sync::Arc::from(line), None);
    }
    for k in ds.keys() {
        let _ = ds.try_get_var(&k);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_text_never_panics(text in "(?s).{0,300}") {
        check_text(&text);
    }

    #[test]
    fn mutated_recipes_never_panic(ops in proptest::collection::vec((0usize..2000, 0u8..3, 0u8..19), 1..30)) {
        check_text(&mutate(SEED, &ops));
    }
}
