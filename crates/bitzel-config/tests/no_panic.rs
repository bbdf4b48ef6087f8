//! No input makes loading panic: random text and random edits of a valid
//! configuration either load or fail with a located error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;

const VALID: &str = "header:\n  version: 14\n  includes:\n    - inc.yml\nmachine: qemux86-64\ndistro: bitzel\ntarget: [a, b]\nrepos:\n  r:\n    path: .\n    layers:\n      meta-a:\n      meta-b: disabled\n  g:\n    url: https://example.invalid/g.git\n    commit: 0123456789abcdef0123456789abcdef01234567\nlocal_conf_header:\n  x: |\n    A = \"1\"\nenv:\n  E:\nbitzel:\n  jobs: 2\n  sandbox: auto\n";

fn load_text(text: &str) -> Result<(), bitzel_config::ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("inc.yml"),
        "header:\n  version: 14\nmachine: inc\n",
    )
    .unwrap();
    let f = dir.path().join("k.yml");
    std::fs::write(&f, text).unwrap();
    let p = bitzel_config::load(&f)?;
    let _ = (p.bblayers_conf(), p.local_conf());
    Ok(())
}

fn check(text: &str) {
    if let Err(e) = load_text(text) {
        let at = e.location();
        assert!(at.line >= 1 && at.column >= 1, "{e}");
        assert_eq!(e.to_string().lines().count(), 1, "{e}");
    }
}

#[test]
fn a_key_with_a_newline_is_reported_on_one_line() {
    // Found by `random_text`: a quoted key may hold control characters.
    let e = load_text("\"6\\n\\te\": 1\n").unwrap_err().to_string();
    assert!(e.contains("unknown key `6\\n\\te`"), "{e}");
    check("\"6\\n\\te\": 1\n");
}

#[test]
fn the_valid_base_loads() {
    load_text(VALID).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    #[test]
    fn random_text(s in "[ -~\n\t:{}\\[\\]\"'&*!|>#-]{0,200}") {
        check(&s);
    }

    #[test]
    fn edited_valid_config(edits in prop::collection::vec((0usize..400, prop::sample::select(vec!["", " ", "\n", ":", "-", "[", "{", "\"", "'", "&a", "*a", "!!int ", "<<: ", "~", "0"])), 1..4)) {
        let mut text = VALID.to_string();
        for (pos, ins) in edits {
            let mut i = pos % (text.len() + 1);
            while !text.is_char_boundary(i) { i -= 1; }
            if ins.is_empty() && i < text.len() {
                text.remove(i);
            } else {
                text.insert_str(i, ins);
            }
        }
        check(&text);
    }
}
