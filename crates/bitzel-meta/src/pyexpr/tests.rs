//! Unit tests for the evaluator.

use super::*;
use std::collections::BTreeMap;

#[derive(Default)]
struct Ctx {
    vars: BTreeMap<String, String>,
    flags: BTreeMap<(String, String), String>,
}

impl Ctx {
    fn new(vars: &[(&str, &str)]) -> Ctx {
        Ctx {
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            flags: BTreeMap::new(),
        }
    }
}

impl PyContext for Ctx {
    fn get_var(&self, name: &str, expand: bool) -> Option<String> {
        let v = self.vars.get(name)?;
        Some(if expand { self.expand(v) } else { v.clone() })
    }
    fn get_var_flag(&self, name: &str, flag: &str, expand: bool) -> Option<String> {
        let v = self.flags.get(&(name.to_string(), flag.to_string()))?;
        Some(if expand { self.expand(v) } else { v.clone() })
    }
    fn expand(&self, s: &str) -> String {
        // Minimal ${VAR} expansion for tests.
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            match after.find('}') {
                Some(j) if !after[..j].starts_with('@') => {
                    let name = &after[..j];
                    match self.vars.get(name) {
                        Some(v) => out.push_str(&self.expand(v)),
                        None => {
                            out.push_str("${");
                            out.push_str(name);
                            out.push('}');
                        }
                    }
                    rest = &after[j + 1..];
                }
                _ => {
                    out.push_str("${");
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }
}

fn ev(ctx: &Ctx, src: &str) -> String {
    match eval_inline(src, ctx) {
        Ok(v) => v,
        Err(e) => format!("ERROR@{}: {}", e.offset, e.message),
    }
}

#[test]
fn smoke() {
    let c = Ctx::new(&[
        ("DISTRO_FEATURES", "x11 wayland systemd"),
        ("PN", "busybox"),
    ]);
    assert_eq!(
        ev(
            &c,
            "bb.utils.contains('DISTRO_FEATURES', 'x11', 'a', 'b', d)"
        ),
        "a"
    );
    assert_eq!(ev(&c, "d.getVar('PN')"), "busybox");
    assert_eq!(ev(&c, "d.getVar('NOPE')"), "None");
}

fn testdata(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/pyexpr")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The datastore of testdata/pyexpr/vars.txt.
fn fixture_ctx() -> Ctx {
    let mut c = Ctx::default();
    for line in testdata("vars.txt").lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = line.split_once('=').unwrap();
        let value = value.replace("\\t", "\t");
        if let Some((var, flag)) = name.strip_suffix(']').and_then(|n| n.split_once('[')) {
            c.flags.insert((var.to_string(), flag.to_string()), value);
        } else {
            c.vars.insert(name.to_string(), value);
        }
    }
    c
}

fn encode(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('\t', "\\t")
        .replace('\r', "\\r")
}

/// Compare bitzel with CPython's results in an oracle file: values must
/// match exactly; where CPython raised, bitzel must fail with the same
/// exception name (or, when `lenient`, as unsupported). Returns the number
/// of cases.
fn check_oracle(file: &str, lenient: bool) -> usize {
    let ctx = fixture_ctx();
    let expected = testdata(file);
    let mut failures = Vec::new();
    let mut n = 0;
    for line in expected.lines() {
        let (src, want) = line.split_once('\t').unwrap();
        n += 1;
        let got = eval_inline(src, &ctx);
        if let Some(value) = want.strip_prefix("=> ") {
            match got {
                Ok(v) if encode(&v) == value => {}
                Err(e) if lenient && e.is_unsupported() => {}
                Ok(v) => failures.push(format!("{src}\n    want {value}\n    got  {}", encode(&v))),
                Err(e) => failures.push(format!(
                    "{src}\n    want {value}\n    got  error {}",
                    e.message
                )),
            }
        } else if let Some(exc) = want.strip_prefix("!! ") {
            match got {
                Err(e) if e.message.starts_with(&format!("{exc}:")) => {}
                Err(e) if lenient && e.is_unsupported() => {}
                Err(e) => failures.push(format!(
                    "{src}\n    want {exc}\n    got  error {}",
                    e.message
                )),
                Ok(v) => failures.push(format!(
                    "{src}\n    want {exc}\n    got  value {}",
                    encode(&v)
                )),
            }
        } else {
            panic!("bad line in {file}: {line}");
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} cases in {file} differ from CPython:\n{}",
        failures.len(),
        failures.join("\n")
    );
    n
}

/// The hand-written cases (testdata/pyexpr/cases.txt), checked strictly.
#[test]
fn cpython_oracle_cases() {
    let n = check_oracle("cases.expected", false);
    assert!(n > 550, "only {n} cases");
}

/// Randomly generated expressions (testdata/pyexpr/gen_random.py).
#[test]
fn cpython_oracle_random_cases() {
    let n = check_oracle("random.expected", true);
    assert!(n >= 3000, "only {n} cases");
}

fn err(ctx: &Ctx, src: &str) -> PyError {
    match eval_inline(src, ctx) {
        Ok(v) => panic!("{src}: expected an error, got {v:?}"),
        Err(e) => e,
    }
}

/// Constructs outside the subset are reported as unsupported, naming the
/// construct, never evaluated to a guess.
#[test]
fn unsupported_constructs_are_named() {
    let c = fixture_ctx();
    for (src, names) in [
        ("lambda x: x", "lambda"),
        ("f'{PN}'", "f-strings"),
        ("b'x'", "bytes"),
        ("1j", "complex"),
        ("(x := 1)", ":="),
        ("[*a]", "unpacking"),
        ("{**a}", "unpacking"),
        ("foo(d)", "'foo'"),
        ("get_kernelversion(d)", "get_kernelversion"),
        ("bb.utils.which('PATH', 'x')", "bb.utils.which"),
        ("oe.utils.host_gcc_version(d)", "oe.utils.host_gcc_version"),
        ("os.path.exists('/etc')", "os.path.exists"),
        ("d.setVar('A', 'b')", "d.setVar"),
        ("d.getVarFlags('A')", "d.getVarFlags"),
        ("[1].append(2)", ".append()"),
        ("'a'.encode()", "str.encode"),
        ("{k: v for k, v in []}", "dict comprehensions"),
        ("len", "builtin 'len'"),
        ("bb", "module 'bb'"),
        ("'a' is 'a'", "'is'"),
        ("2 ** 100", "64 bits"),
        ("99999999999999999999", "64 bits"),
        ("sorted(['a'], key=len)", "'len'"),
        (
            "sorted(['a'], key=None, reverse=True)[0] + str.upper('x')",
            "'str'",
        ),
        ("'{0.x}'.format(1)", "attribute or index access"),
        ("range(3)[0]", "indexing a range"),
        ("'\\N{BULLET}'", "named escapes"),
        ("x[1:2, 3]", "extended"),
        ("d.getVar(*a)", "*args"),
        ("...", "Ellipsis"),
    ] {
        let e = err(&c, src);
        assert!(e.is_unsupported(), "{src}: {}", e.message);
        assert!(e.message.contains(names), "{src}: {}", e.message);
    }
}

/// Error messages and offsets for the caller's diagnostics.
#[test]
fn error_messages_and_offsets() {
    let c = fixture_ctx();
    let show = |src: &str| {
        let e = err(&c, src);
        format!("{src}\n{}^ {}\n", " ".repeat(e.offset), e.message)
    };
    let all: String = [
        "d.getVar('UNSET').split()",
        "d.getVar('PN').nosuch()",
        "  NOPE + 'x'",
        "1 +",
        "'abc",
        "(1, 2",
        "x = 1",
        "1 2",
        "int('x')",
        "[1, 2][5]",
        "{'a': 1}['b']",
        "'a' + 1",
        "1 < 'a'",
        "bb.utils.contains('A', 'b', 'c', 'd')",
        "foo(d)",
        "'%d' % 'x'",
        "(\n1 +\n)",
        "1\n2",
    ]
    .iter()
    .map(|s| show(s))
    .collect();
    expect_test::expect![[r#"
        d.getVar('UNSET').split()
                         ^ AttributeError: 'NoneType' object has no attribute 'split'
        d.getVar('PN').nosuch()
                      ^ AttributeError: 'str' object has no attribute 'nosuch'
          NOPE + 'x'
          ^ NameError: name 'NOPE' is not defined
        1 +
           ^ SyntaxError: the expression ended unexpectedly
        'abc
        ^ SyntaxError: unterminated string literal
        (1, 2
             ^ SyntaxError: expected ')' but the expression ended
        x = 1
          ^ SyntaxError: '=' is a statement, not part of an expression
        1 2
          ^ SyntaxError: invalid syntax at number 2
        int('x')
        ^ ValueError: invalid literal for int() with base 10: 'x'
        [1, 2][5]
              ^ IndexError: list index out of range
        {'a': 1}['b']
                ^ KeyError: 'b'
        'a' + 1
            ^ TypeError: can only concatenate str (not "int") to str
        1 < 'a'
          ^ TypeError: '<' not supported between instances of 'int' and 'str'
        bb.utils.contains('A', 'b', 'c', 'd')
        ^ TypeError: contains() missing required argument 'd' (pos 5)
        foo(d)
        ^ unsupported in bitzel's inline-Python subset: call to 'foo' (Python functions defined in metadata are not evaluated by bitzel)
        '%d' % 'x'
             ^ TypeError: %d format: a real number is required, not str
        (
        1 +
        )
              ^ SyntaxError: invalid syntax at ')'
        1
        2
         ^ SyntaxError: invalid syntax (newline outside brackets ends the expression)
    "#]]
    .assert_eq(&all);
}

#[test]
fn str_of_results_follows_bitbake() {
    // BitBake substitutes str(value): None -> "None", bools, ints, lists.
    let c = fixture_ctx();
    assert_eq!(ev(&c, "None"), "None");
    assert_eq!(ev(&c, "d.getVar('UNSET')"), "None");
    assert_eq!(ev(&c, "1 == 1"), "True");
    assert_eq!(ev(&c, "len('abc')"), "3");
    assert_eq!(ev(&c, "['a', 'b']"), "['a', 'b']");
    assert_eq!(ev(&c, "\n  'stripped'  \n"), "stripped");
}

#[test]
fn unterminated_string_is_flagged_for_bitbake_compat() {
    let c = fixture_ctx();
    let e = err(&c, "'abc");
    assert!(e.is_syntax_error() && e.is_unterminated_string(), "{e:?}");
    let e = err(&c, "1 +");
    assert!(e.is_syntax_error() && !e.is_unterminated_string(), "{e:?}");
    assert!(!err(&c, "NOPE").is_syntax_error());
}

#[test]
fn inherits_class_default_reads_inherit_cache() {
    let c = fixture_ctx();
    assert!(c.inherits_class("autotools"));
    assert!(c.inherits_class("base"));
    assert!(!c.inherits_class("tools"));
    assert!(!Ctx::default().inherits_class("base"));
}

#[test]
fn comprehension_variables_shadow_datastore_names() {
    let c = fixture_ctx();
    // `PN` inside the comprehension is the loop variable, outside the datastore's.
    assert_eq!(
        ev(&c, "[PN for PN in 'ab'] + [PN]"),
        "['a', 'b', 'busybox']"
    );
    // A loop variable named `d` shadows the datastore.
    assert_eq!(ev(&c, "[d.upper() for d in 'ab']"), "['A', 'B']");
    // Nested comprehension scopes.
    assert_eq!(
        ev(&c, "[[x + y for y in 'ab'] for x in 'xy']"),
        "[['xa', 'xb'], ['ya', 'yb']]"
    );
}

#[test]
fn short_circuit_skips_unsupported_branches() {
    let c = fixture_ctx();
    assert_eq!(ev(&c, "'a' or foo(d)"), "a");
    assert_eq!(ev(&c, "'' and foo(d)"), "");
    assert_eq!(ev(&c, "'ok' if True else os.path.exists('/x')"), "ok");
    assert!(err(&c, "'' or foo(d)").is_unsupported());
}

#[test]
fn resource_limits_are_errors_not_hangs() {
    let c = fixture_ctx();
    let e = err(&c, "'a' * 10**9");
    assert!(e.message.starts_with("MemoryError"), "{e:?}");
    let e = err(&c, "len([x for x in range(100000) for y in range(100000)])");
    assert!(e.message.contains("steps"), "{e:?}");
    let e = err(&c, "'x'.ljust(10**9)");
    assert!(e.message.starts_with("MemoryError"), "{e:?}");
    let e = err(&c, "'%*d' % (10**9, 1)");
    assert!(e.message.starts_with("MemoryError"), "{e:?}");
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let c = fixture_ctx();
    let n = 5000;
    for src in [
        format!("{}1{}", "(".repeat(n), ")".repeat(n)),
        format!("{}1{}", "[".repeat(n), "]".repeat(n)),
        format!("{}1", "-".repeat(n)),
        format!("{}1", "not ".repeat(n)),
        format!("{}1", "1 + ".repeat(n)),
        format!("{}1", "1 ** ".repeat(n)),
        format!("'a'{}", ".upper()".repeat(n)),
        format!("{}1{}", "f(".repeat(n), ")".repeat(n)),
        "1 if 1 else ".repeat(n) + "1",
    ] {
        let e = err(&c, &src);
        assert!(
            e.message.contains("nested too deeply"),
            "{}: {}",
            &src[..20],
            e.message
        );
    }
    // Moderate nesting still works, even on a small (1 MiB) thread stack:
    // the deepest accepted expressions bound the recursion.
    let deepest = std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(|| {
            let c = fixture_ctx();
            let mut out = Vec::new();
            for src in [
                format!("{}1{}", "(".repeat(63), ")".repeat(63)),
                format!("{}1{}", "[".repeat(63), "]".repeat(63)),
                format!("{}1{}", "{1: ".repeat(63), "}".repeat(63)),
                format!("{}1", "-".repeat(62)),
                format!("{}1", "1 + ".repeat(62)),
                format!("{}1", "1 ** ".repeat(62)),
                format!("{}1", "1 if 1 else ".repeat(62)),
                format!("{}'a'{}", "len(str(".repeat(31), "))".repeat(31)),
                format!("{}1{}", "(not (1 + -(".repeat(10), ")))".repeat(10)),
            ] {
                out.push(
                    eval_inline(&src, &c)
                        .map(|v| v.len())
                        .map_err(|e| e.message),
                );
            }
            out
        })
        .unwrap()
        .join()
        .unwrap();
    assert!(deepest.iter().all(Result::is_ok), "{deepest:?}");
    assert_eq!(
        ev(&c, &format!("{}1{}", "(".repeat(50), ")".repeat(50))),
        "1"
    );
    assert_eq!(ev(&c, &format!("{}1", "1 + ".repeat(60))), "61");
    assert!(err(&c, &format!("{}1{}", "(".repeat(65), ")".repeat(65)))
        .message
        .contains("nested too deeply"));
}

#[test]
fn parsed_expressions_are_reusable_and_cached() {
    let c = fixture_ctx();
    let e = PyExpr::parse("d.getVar('PN') + '-' + d.getVar('PV')").unwrap();
    assert_eq!(e.eval(&c).unwrap(), "busybox-1.36.1");
    assert_eq!(
        e.eval(&Ctx::new(&[("PN", "a"), ("PV", "1")])).unwrap(),
        "a-1"
    );
    let a = parse_cached("1 + 1").unwrap();
    let b = parse_cached("1 + 1").unwrap();
    assert!(std::sync::Arc::ptr_eq(&a, &b));
    // The cache is shared between threads.
    let handles: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let c = Ctx::new(&[("N", &i.to_string())]);
                (0..200)
                    .map(|k| eval_inline(&format!("int(N) + {}", k % 7), &c).unwrap())
                    .fold(String::new(), |_, v| v)
            })
        })
        .collect();
    let results: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results, ["3", "4", "5", "6"]);
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    const PIECES: &[&str] = &[
        "d.getVar('PN')",
        "d.getVar('UNSET')",
        "d",
        "bb.utils.contains",
        "oe.utils.conditional",
        "os.path.join",
        "PN",
        "x",
        "for",
        "in",
        "if",
        "else",
        "not",
        "and",
        "or",
        "is",
        "None",
        "True",
        "lambda",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        ",",
        ":",
        ".",
        "+",
        "-",
        "*",
        "**",
        "/",
        "//",
        "%",
        "<",
        "==",
        "!=",
        "'a b'",
        "\"%s\"",
        "'''",
        "'",
        "\\",
        "1",
        "0",
        "-1",
        "2.5",
        "1e308",
        "split",
        "join",
        "strip",
        "replace",
        "format",
        "len",
        "int",
        "str",
        "sorted",
        "set",
        "range",
        "999999999999",
        " ",
        "\n",
        "#",
        "=",
        "~",
        "&",
        "|",
        "^",
        "<<",
        ">>",
        "'%d'",
        "'{}'",
        "'é'",
        "'\\x00'",
        "[x for x in 'ab']",
    ];

    fn token_soup() -> impl Strategy<Value = String> {
        proptest::collection::vec(proptest::sample::select(PIECES), 0..40).prop_map(|v| v.join(" "))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_text_never_panics(src in "\\PC{0,80}") {
            let c = fixture_ctx();
            let _ = eval_inline(&src, &c);
        }

        #[test]
        fn token_soup_never_panics(src in token_soup()) {
            let c = fixture_ctx();
            if let Err(e) = eval_inline(&src, &c) {
                prop_assert!(e.offset <= src.len(), "offset {} beyond {}", e.offset, src.len());
            }
        }
    }
}

#[test]
fn static_references_cover_all_branches() {
    let e = PyExpr::parse(
        "bb.utils.contains('DISTRO_FEATURES', 'x11', d.getVar('A'), PN, d) if d.getVar('B') \
         else oe.utils.conditional('C', 'x', [x for x in d.getVarFlag('D', 'f').split()], \
         oe.utils.all_distro_features(d, 'y'), d) + d.getVar(name) + d.expand('${E}')",
    )
    .unwrap();
    assert_eq!(
        e.references(),
        ["A", "B", "C", "D", "DISTRO_FEATURES", "PN", "name"]
    );
}

#[test]
fn compiled_expressions_are_shareable_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PyExpr>();
    assert_send_sync::<PyError>();
}
