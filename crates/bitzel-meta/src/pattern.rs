//! Small matchers BitBake metadata needs: a subset of Python regular
//! expressions (for `BBFILE_PATTERN_*` and `BBMASK`) and shell globs (for
//! `BBFILES`), both pure and panic-free.

/// A compiled regular expression of the supported subset: literals,
/// escapes (`\.`, `\/`, `\d`, `\w`, `\s`), `.`, character classes `[...]`,
/// `^`, `$`, `|` alternation, groups `( )` without nesting of quantifiers
/// inside lookarounds, and the quantifiers `*`, `+`, `?`.
#[derive(Debug, Clone)]
pub(crate) struct Regex {
    alts: Vec<Vec<Node>>,
}

#[derive(Debug, Clone)]
enum Atom {
    Char(char),
    Any,
    Class(Vec<(char, char)>, bool),
    Digit,
    Word,
    Space,
    Start,
    End,
    Group(Box<Regex>),
}

#[derive(Debug, Clone)]
struct Node {
    atom: Atom,
    min: usize,
    max: usize,
}

/// Why a pattern is outside the supported subset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RegexError(pub(crate) String);

impl Regex {
    pub(crate) fn new(src: &str) -> Result<Regex, RegexError> {
        let chars: Vec<char> = src.chars().collect();
        let mut pos = 0;
        let r = parse_alts(&chars, &mut pos, 0)?;
        if pos != chars.len() {
            return Err(RegexError(format!("unbalanced `)` in `{src}`")));
        }
        Ok(r)
    }

    /// Python's `re.match`: match at the start.
    pub(crate) fn is_match_start(&self, s: &str) -> bool {
        let chars: Vec<char> = s.chars().collect();
        !self.match_at(&chars, 0).is_empty()
    }

    /// Python's `re.search`: match anywhere.
    pub(crate) fn search(&self, s: &str) -> bool {
        let chars: Vec<char> = s.chars().collect();
        (0..=chars.len()).any(|i| !self.match_at(&chars, i).is_empty())
    }

    /// All end positions of matches starting at `i`.
    fn match_at(&self, s: &[char], i: usize) -> Vec<usize> {
        let mut ends = Vec::new();
        for alt in &self.alts {
            seq(alt, 0, s, i, &mut ends, 0);
        }
        ends
    }
}

fn seq(nodes: &[Node], k: usize, s: &[char], i: usize, ends: &mut Vec<usize>, depth: usize) {
    if depth > 10_000 || ends.len() > 64 {
        return;
    }
    let Some(n) = nodes.get(k) else {
        if !ends.contains(&i) {
            ends.push(i);
        }
        return;
    };
    if let Atom::Start | Atom::End = n.atom {
        let ok = match n.atom {
            Atom::Start => i == 0,
            _ => i == s.len(),
        };
        if ok || n.min == 0 {
            seq(nodes, k + 1, s, i, ends, depth + 1);
        }
        return;
    }
    // Positions after 0..=max repetitions.
    let mut frontier = vec![i];
    let mut reps = 0;
    let mut all: Vec<(usize, usize)> = vec![(0, i)];
    while reps < n.max && !frontier.is_empty() {
        let mut next = Vec::new();
        for &p in &frontier {
            for e in step(&n.atom, s, p) {
                if e != p && !next.contains(&e) {
                    next.push(e);
                }
            }
        }
        reps += 1;
        for &e in &next {
            all.push((reps, e));
        }
        frontier = next;
        if all.len() > 4096 {
            break;
        }
    }
    // Greedy: try longest first.
    for &(r, p) in all.iter().rev() {
        if r >= n.min {
            seq(nodes, k + 1, s, p, ends, depth + 1);
        }
    }
}

fn step(a: &Atom, s: &[char], i: usize) -> Vec<usize> {
    let c = s.get(i).copied();
    let one = |ok: bool| if ok { vec![i + 1] } else { Vec::new() };
    match a {
        Atom::Char(x) => one(c == Some(*x)),
        Atom::Any => one(c.is_some_and(|c| c != '\n')),
        Atom::Digit => one(c.is_some_and(|c| c.is_ascii_digit())),
        Atom::Word => one(c.is_some_and(|c| c.is_alphanumeric() || c == '_')),
        Atom::Space => one(c.is_some_and(char::is_whitespace)),
        Atom::Class(ranges, neg) => {
            one(c.is_some_and(|c| ranges.iter().any(|(a, b)| *a <= c && c <= *b) != *neg))
        }
        Atom::Start => {
            if i == 0 {
                vec![i]
            } else {
                Vec::new()
            }
        }
        Atom::End => {
            if i == s.len() {
                vec![i]
            } else {
                Vec::new()
            }
        }
        Atom::Group(r) => r.match_at(s, i),
    }
}

fn parse_alts(c: &[char], pos: &mut usize, depth: usize) -> Result<Regex, RegexError> {
    if depth > 32 {
        return Err(RegexError("groups nested too deeply".into()));
    }
    let mut alts = vec![Vec::new()];
    while *pos < c.len() {
        let ch = c[*pos];
        match ch {
            '|' => {
                *pos += 1;
                alts.push(Vec::new());
                continue;
            }
            ')' => break,
            _ => {}
        }
        *pos += 1;
        let atom = match ch {
            '(' => {
                if c.get(*pos) == Some(&'?') {
                    if c.get(*pos + 1) == Some(&':') {
                        *pos += 2;
                    } else {
                        return Err(RegexError(
                            "lookaround and named groups are not supported".into(),
                        ));
                    }
                }
                let inner = parse_alts(c, pos, depth + 1)?;
                if c.get(*pos) != Some(&')') {
                    return Err(RegexError("unclosed `(`".into()));
                }
                *pos += 1;
                Atom::Group(Box::new(inner))
            }
            '.' => Atom::Any,
            '^' => Atom::Start,
            '$' => Atom::End,
            '[' => parse_class(c, pos)?,
            '\\' => {
                let e = c
                    .get(*pos)
                    .copied()
                    .ok_or_else(|| RegexError("trailing `\\`".into()))?;
                *pos += 1;
                match e {
                    'd' => Atom::Digit,
                    'w' => Atom::Word,
                    's' => Atom::Space,
                    c if c.is_ascii_alphanumeric() => {
                        return Err(RegexError(format!("escape `\\{c}` is not supported")));
                    }
                    c => Atom::Char(c),
                }
            }
            '*' | '+' | '?' | '{' => {
                return Err(RegexError(format!("nothing to repeat before `{ch}`")));
            }
            c => Atom::Char(c),
        };
        let (mut min, mut max) = (1, 1);
        if let Some(q) = c.get(*pos) {
            match q {
                '*' => (min, max) = (0, usize::MAX),
                '+' => (min, max) = (1, usize::MAX),
                '?' => (min, max) = (0, 1),
                _ => {}
            }
            if matches!(q, '*' | '+' | '?') {
                *pos += 1;
                // Lazy quantifier: same match set for our boolean use.
                if c.get(*pos) == Some(&'?') {
                    *pos += 1;
                }
            }
        }
        if let Some(last) = alts.last_mut() {
            last.push(Node { atom, min, max });
        }
    }
    Ok(Regex { alts })
}

fn parse_class(c: &[char], pos: &mut usize) -> Result<Atom, RegexError> {
    let mut neg = false;
    if c.get(*pos) == Some(&'^') {
        neg = true;
        *pos += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let ch = *c
            .get(*pos)
            .ok_or_else(|| RegexError("unclosed `[`".into()))?;
        *pos += 1;
        if ch == ']' && !first {
            break;
        }
        first = false;
        let lo = if ch == '\\' {
            let e = *c
                .get(*pos)
                .ok_or_else(|| RegexError("unclosed `[`".into()))?;
            *pos += 1;
            match e {
                'd' => {
                    ranges.push(('0', '9'));
                    continue;
                }
                'w' => {
                    ranges.extend([('a', 'z'), ('A', 'Z'), ('0', '9'), ('_', '_')]);
                    continue;
                }
                's' => {
                    ranges.extend([(' ', ' '), ('\t', '\r')]);
                    continue;
                }
                e => e,
            }
        } else {
            ch
        };
        if c.get(*pos) == Some(&'-') && c.get(*pos + 1).is_some_and(|n| *n != ']') {
            let hi = c[*pos + 1];
            *pos += 2;
            ranges.push((lo, hi));
        } else {
            ranges.push((lo, lo));
        }
    }
    Ok(Atom::Class(ranges, neg))
}

/// Shell glob match of one path component (`*`, `?`, `[...]`); a leading
/// `.` must be matched literally (as Python's glob does).
pub(crate) fn glob_component(pat: &str, name: &str) -> bool {
    if name.starts_with('.') && !pat.starts_with('.') {
        return false;
    }
    glob::Pattern::new(pat).is_ok_and(|p| p.matches(name))
}

/// True when a path component contains glob metacharacters.
pub(crate) fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_subset() {
        let r = Regex::new("^/layers/meta/").unwrap();
        assert!(r.is_match_start("/layers/meta/recipes/a.bb"));
        assert!(!r.is_match_start("/layers/meta-x/recipes/a.bb"));
        let r = Regex::new(r"^/a\.b/(x|y)+z?$").unwrap();
        assert!(r.is_match_start("/a.b/xyx"));
        assert!(r.is_match_start("/a.b/xz"));
        assert!(!r.is_match_start("/a.b/"));
        let r = Regex::new("meta-[a-c]+/recipes-.*/foo").unwrap();
        assert!(r.search("/x/meta-ab/recipes-core/foo_1.bb"));
        assert!(!r.search("/x/meta-d/recipes-core/foo_1.bb"));
        assert!(Regex::new("(?=x)").is_err());
    }

    #[test]
    fn globs() {
        assert!(glob_component("*.bb", "a_1.0.bb"));
        assert!(!glob_component("*.bb", ".hidden.bb"));
        assert!(glob_component("recipes-*", "recipes-core"));
    }
}
