//! A small regular-expression matcher for the patterns BitBake metadata uses
//! in `PACKAGES_DYNAMIC` and `ASSUME_PROVIDED` (`^kernel-module-.*`,
//! `^${PN}-locale-.*`, `lib(foo|bar)[0-9]+`): literals, `.`, `[...]` classes
//! (ranges, negation), groups with `|`, the quantifiers `*`, `+`, `?`, the
//! anchors `^`, `$`, and the lookaround assertions `(?=...)`, `(?!...)`,
//! `(?<=...)`, `(?<!...)` (poky's perl: `^perl-module-.*(?<!native)$`). Matching is anchored at the start, like Python's
//! `re.match`. Backtracking, with a step budget so no input can hang it.

use std::cell::Cell;

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    alts: Vec<Vec<Node>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Atom {
    Char(char),
    Any,
    Class {
        negated: bool,
        items: Vec<(char, char)>,
    },
    Group(Vec<Vec<Node>>),
    /// A zero-width assertion: the group matches just after (`behind`
    /// false) or just before (`behind` true) the position, or, `negate`d,
    /// does not.
    Look {
        behind: bool,
        negate: bool,
        alts: Vec<Vec<Node>>,
    },
    Start,
    End,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    atom: Atom,
    min: usize,
    max: Option<usize>,
}

/// Why a pattern could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid pattern at offset {offset}: {what}")]
pub struct PatternError {
    /// Character offset of the problem.
    pub offset: usize,
    /// What is wrong.
    pub what: &'static str,
}

impl Pattern {
    /// Compile `src`.
    pub fn new(src: &str) -> Result<Pattern, PatternError> {
        let chars: Vec<char> = src.chars().collect();
        let mut pos = 0;
        let alts = parse_alts(&chars, &mut pos)?;
        if pos != chars.len() {
            return Err(PatternError {
                offset: pos,
                what: "unbalanced ')'",
            });
        }
        Ok(Pattern { alts })
    }

    /// True when the pattern matches a prefix of `s` (Python `re.match`).
    pub fn matches_start(&self, s: &str) -> bool {
        let chars: Vec<char> = s.chars().collect();
        let budget = Cell::new(100_000usize);
        let group = Node {
            atom: Atom::Group(self.alts.clone()),
            min: 1,
            max: Some(1),
        };
        match_seq(
            std::slice::from_ref(&group),
            &chars,
            0,
            &budget,
            &mut |_| true,
        )
    }
}

fn parse_alts(chars: &[char], pos: &mut usize) -> Result<Vec<Vec<Node>>, PatternError> {
    let mut alts = vec![Vec::new()];
    while let Some(&c) = chars.get(*pos) {
        match c {
            ')' => break,
            '|' => {
                *pos += 1;
                alts.push(Vec::new());
            }
            _ => {
                let atom = parse_atom(chars, pos)?;
                let (min, max) = match chars.get(*pos) {
                    Some('*') => (0, None),
                    Some('+') => (1, None),
                    Some('?') => (0, Some(1)),
                    _ => (1, Some(1)),
                };
                if max != Some(1) || min != 1 {
                    *pos += 1;
                    // A lazy `?` suffix changes nothing for a yes/no match.
                    if chars.get(*pos) == Some(&'?') {
                        *pos += 1;
                    }
                }
                if let Some(last) = alts.last_mut() {
                    last.push(Node { atom, min, max });
                }
            }
        }
    }
    Ok(alts)
}

fn parse_atom(chars: &[char], pos: &mut usize) -> Result<Atom, PatternError> {
    let at = *pos;
    let c = chars[at];
    *pos += 1;
    Ok(match c {
        '.' => Atom::Any,
        '^' => Atom::Start,
        '$' => Atom::End,
        '*' | '+' | '?' => {
            return Err(PatternError {
                offset: at,
                what: "nothing to repeat",
            })
        }
        '\\' => {
            let Some(&e) = chars.get(*pos) else {
                return Err(PatternError {
                    offset: at,
                    what: "trailing backslash",
                });
            };
            *pos += 1;
            match e {
                'd' => Atom::Class {
                    negated: false,
                    items: vec![('0', '9')],
                },
                'w' => Atom::Class {
                    negated: false,
                    items: vec![('a', 'z'), ('A', 'Z'), ('0', '9'), ('_', '_')],
                },
                other => Atom::Char(other),
            }
        }
        '(' => {
            // Non-capturing `(?:` is the same thing here; `(?=`, `(?!`,
            // `(?<=`, `(?<!` are lookaround assertions.
            let mut look = None;
            if chars.get(*pos) == Some(&'?') {
                let rest: String = chars[*pos + 1..].iter().take(2).collect();
                let (len, l) = if rest.starts_with(':') {
                    (2, None)
                } else if rest.starts_with('=') {
                    (2, Some((false, false)))
                } else if rest.starts_with('!') {
                    (2, Some((false, true)))
                } else if rest == "<=" {
                    (3, Some((true, false)))
                } else if rest == "<!" {
                    (3, Some((true, true)))
                } else {
                    return Err(PatternError {
                        offset: at,
                        what: "unsupported group extension '(?'",
                    });
                };
                *pos += len;
                look = l;
            }
            let alts = parse_alts(chars, pos)?;
            if chars.get(*pos) != Some(&')') {
                return Err(PatternError {
                    offset: at,
                    what: "unbalanced '('",
                });
            }
            *pos += 1;
            match look {
                Some((behind, negate)) => Atom::Look {
                    behind,
                    negate,
                    alts,
                },
                None => Atom::Group(alts),
            }
        }
        '[' => {
            let mut negated = false;
            if chars.get(*pos) == Some(&'^') {
                negated = true;
                *pos += 1;
            }
            let mut items = Vec::new();
            let mut first = true;
            loop {
                let Some(&c) = chars.get(*pos) else {
                    return Err(PatternError {
                        offset: at,
                        what: "unterminated character class",
                    });
                };
                if c == ']' && !first {
                    *pos += 1;
                    break;
                }
                first = false;
                let mut lo = c;
                *pos += 1;
                if c == '\\' {
                    if let Some(&e) = chars.get(*pos) {
                        lo = e;
                        *pos += 1;
                    }
                }
                let mut hi = lo;
                if chars.get(*pos) == Some(&'-') && chars.get(*pos + 1).is_some_and(|&n| n != ']') {
                    hi = chars[*pos + 1];
                    *pos += 2;
                }
                items.push((lo, hi));
            }
            Atom::Class { negated, items }
        }
        other => Atom::Char(other),
    })
}

/// Spend one step of the budget; false when it is exhausted.
fn step(budget: &Cell<usize>) -> bool {
    let b = budget.get();
    if b == 0 {
        return false;
    }
    budget.set(b - 1);
    true
}

/// Match `seq` at `i`, then call `k` with the end position.
fn match_seq(
    seq: &[Node],
    s: &[char],
    i: usize,
    budget: &Cell<usize>,
    k: &mut dyn FnMut(usize) -> bool,
) -> bool {
    if !step(budget) {
        return false;
    }
    let Some((node, rest)) = seq.split_first() else {
        return k(i);
    };
    match_repeat(node, 0, rest, s, i, budget, k)
}

fn match_repeat(
    node: &Node,
    count: usize,
    rest: &[Node],
    s: &[char],
    i: usize,
    budget: &Cell<usize>,
    k: &mut dyn FnMut(usize) -> bool,
) -> bool {
    if !step(budget) {
        return false;
    }
    // Greedy: try one more repetition first, then stop.
    if node.max.is_none_or(|m| count < m) {
        let more = match_atom(&node.atom, s, i, budget, &mut |j| {
            // An empty repetition cannot make progress: stop there.
            if j == i && count >= node.min {
                return false;
            }
            match_repeat(node, count + 1, rest, s, j, budget, k)
        });
        if more {
            return true;
        }
    }
    count >= node.min && match_seq(rest, s, i, budget, k)
}

fn match_atom(
    atom: &Atom,
    s: &[char],
    i: usize,
    budget: &Cell<usize>,
    k: &mut dyn FnMut(usize) -> bool,
) -> bool {
    match atom {
        Atom::Char(c) => s.get(i) == Some(c) && k(i + 1),
        Atom::Any => i < s.len() && k(i + 1),
        Atom::Class { negated, items } => match s.get(i) {
            Some(&c) => {
                let inside = items.iter().any(|&(lo, hi)| lo <= c && c <= hi);
                inside != *negated && k(i + 1)
            }
            None => false,
        },
        Atom::Start => i == 0 && k(i),
        Atom::End => i == s.len() && k(i),
        Atom::Group(alts) => alts.iter().any(|alt| match_seq(alt, s, i, budget, k)),
        Atom::Look {
            behind,
            negate,
            alts,
        } => {
            let found = if *behind {
                // Some start j <= i from which the group ends exactly at i.
                (0..=i).rev().any(|j| {
                    alts.iter()
                        .any(|alt| match_seq(alt, s, j, budget, &mut |e| e == i))
                })
            } else {
                alts.iter()
                    .any(|alt| match_seq(alt, s, i, budget, &mut |_| true))
            };
            found != *negate && k(i)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        Pattern::new(p).unwrap().matches_start(s)
    }

    #[test]
    fn bitbake_style_patterns() {
        assert!(m("^kernel-module-.*", "kernel-module-loop"));
        assert!(!m("^kernel-module-.*", "xkernel-module-loop"));
        assert!(m("kernel-image", "kernel-image-bzimage")); // anchored at start only
        assert!(!m("kernel-image$", "kernel-image-bzimage"));
        assert!(m("^busybox-locale-.*", "busybox-locale-de"));
        assert!(m("lib(foo|bar)[0-9]+$", "libbar12"));
        assert!(!m("lib(foo|bar)[0-9]+$", "libbaz12"));
        assert!(m("a\\+b", "a+b"));
        assert!(m("[^-]+-dev$", "zlib-dev"));
        assert!(!m("[^-]+-dev$", "-dev"));
        assert!(m("x?y", "y"));
        assert!(m("(ab)*c", "ababc"));
        assert!(m("(a*)*b", "aaab"));
        assert!(!m("(a*)*b", &"a".repeat(200)));
    }

    #[test]
    fn lookaround_assertions() {
        // The shape of a perl-like recipe's PACKAGES_DYNAMIC.
        let p = "^perl-module-.*(?<!native)$";
        assert!(m(p, "perl-module-filehandle"));
        assert!(!m(p, "perl-module-filehandle-native"));
        assert!(m("a(?<=a)b", "ab"));
        assert!(!m("a(?<=x)b", "ab"));
        assert!(m("foo(?=bar)", "foobar"));
        assert!(!m("foo(?=bar)", "foobaz"));
        assert!(m("foo(?!bar)", "foobaz"));
        assert!(!m("foo(?!bar)", "foobar"));
        assert!(Pattern::new("(?P<x>a)").is_err());
    }

    #[test]
    fn bad_patterns_are_errors() {
        assert!(Pattern::new("(a").is_err());
        assert!(Pattern::new("a)").is_err());
        assert!(Pattern::new("[ab").is_err());
        assert!(Pattern::new("*a").is_err());
        assert!(Pattern::new("a\\").is_err());
    }
}
