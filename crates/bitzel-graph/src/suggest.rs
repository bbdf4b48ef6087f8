//! "Close matches" as BitBake finds them: Python's
//! `difflib.get_close_matches`, built on `SequenceMatcher.ratio()` (no junk
//! function; the "popular element" heuristic of `autojunk` for sequences of
//! 200 items or more). Written from the documented algorithm: the longest
//! matching block, then recursively the pieces to its left and right; the
//! ratio is `2 * matched / (len(a) + len(b))`.

use std::collections::HashMap;

/// `difflib.SequenceMatcher(None, a, b).ratio()` over Unicode scalar values
/// (Python's code points).
pub fn ratio(a: &str, b: &str) -> f64 {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    Matcher::new(&a, &b).ratio()
}

/// `difflib.get_close_matches(word, possibilities, n, cutoff)`: the at most
/// `n` possibilities whose ratio against `word` is at least `cutoff`, best
/// first (equal scores: the greater string first, as `heapq.nlargest` over
/// `(score, x)` orders them).
pub fn get_close_matches<'a>(
    word: &str,
    possibilities: impl IntoIterator<Item = &'a str>,
    n: usize,
    cutoff: f64,
) -> Vec<String> {
    let b: Vec<char> = word.chars().collect();
    let mut scored: Vec<(f64, &'a str)> = Vec::new();
    let mut b_counts: Option<HashMap<char, usize>> = None;
    for x in possibilities {
        let a: Vec<char> = x.chars().collect();
        // real_quick_ratio and quick_ratio are upper bounds of ratio: cheap
        // rejections first, as difflib does.
        if bound_ratio(a.len().min(b.len()), a.len() + b.len()) < cutoff {
            continue;
        }
        let counts = b_counts.get_or_insert_with(|| counts(&b));
        if bound_ratio(common_count(&a, counts), a.len() + b.len()) < cutoff {
            continue;
        }
        let r = Matcher::new(&a, &b).ratio();
        if r >= cutoff {
            scored.push((r, x));
        }
    }
    scored.sort_by(|x, y| y.0.total_cmp(&x.0).then_with(|| y.1.cmp(x.1)));
    scored
        .into_iter()
        .take(n)
        .map(|(_, x)| x.to_string())
        .collect()
}

/// difflib's `_calculate_ratio`.
fn bound_ratio(matches: usize, length: usize) -> f64 {
    if length == 0 {
        1.0
    } else {
        2.0 * matches as f64 / length as f64
    }
}

fn counts(s: &[char]) -> HashMap<char, usize> {
    let mut m = HashMap::new();
    for &c in s {
        *m.entry(c).or_insert(0) += 1;
    }
    m
}

/// Size of the multiset intersection of `a` and the counted `b`
/// (`quick_ratio`'s numerator).
fn common_count(a: &[char], b_counts: &HashMap<char, usize>) -> usize {
    let mut avail = b_counts.clone();
    let mut n = 0;
    for c in a {
        if let Some(k) = avail.get_mut(c) {
            if *k > 0 {
                *k -= 1;
                n += 1;
            }
        }
    }
    n
}

/// A `SequenceMatcher` over `a` and `b` with `b`'s index built.
struct Matcher<'s> {
    a: &'s [char],
    b: &'s [char],
    /// Positions of each element of `b` (popular elements removed).
    b2j: HashMap<char, Vec<usize>>,
}

impl<'s> Matcher<'s> {
    fn new(a: &'s [char], b: &'s [char]) -> Self {
        let mut b2j: HashMap<char, Vec<usize>> = HashMap::new();
        for (j, &c) in b.iter().enumerate() {
            b2j.entry(c).or_default().push(j);
        }
        // autojunk: in a sequence of 200 or more, an element occurring more
        // than 1% (+1) of the time is "popular" and not indexed.
        if b.len() >= 200 {
            let ntest = b.len() / 100 + 1;
            b2j.retain(|_, js| js.len() <= ntest);
        }
        Matcher { a, b, b2j }
    }

    /// `find_longest_match(alo, ahi, blo, bhi)`: the longest block
    /// `a[i..i+k] == b[j..j+k]` in the ranges, earliest in `a`, then in `b`.
    fn longest(&self, alo: usize, ahi: usize, blo: usize, bhi: usize) -> (usize, usize, usize) {
        let (mut besti, mut bestj, mut bestsize) = (alo, blo, 0usize);
        let mut j2len: HashMap<usize, usize> = HashMap::new();
        for i in alo..ahi {
            let mut next: HashMap<usize, usize> = HashMap::new();
            if let Some(js) = self.b2j.get(&self.a[i]) {
                for &j in js {
                    if j < blo {
                        continue;
                    }
                    if j >= bhi {
                        break;
                    }
                    let k = j
                        .checked_sub(1)
                        .and_then(|p| j2len.get(&p))
                        .copied()
                        .unwrap_or(0)
                        + 1;
                    next.insert(j, k);
                    if k > bestsize {
                        besti = i + 1 - k;
                        bestj = j + 1 - k;
                        bestsize = k;
                    }
                }
            }
            j2len = next;
        }
        // Popular elements are not junk: the block grows over equal ones
        // on both sides.
        while besti > alo && bestj > blo && self.a[besti - 1] == self.b[bestj - 1] {
            besti -= 1;
            bestj -= 1;
            bestsize += 1;
        }
        while besti + bestsize < ahi
            && bestj + bestsize < bhi
            && self.a[besti + bestsize] == self.b[bestj + bestsize]
        {
            bestsize += 1;
        }
        (besti, bestj, bestsize)
    }

    /// The total size of `get_matching_blocks()`.
    fn matched(&self) -> usize {
        let mut total = 0;
        let mut queue = vec![(0, self.a.len(), 0, self.b.len())];
        while let Some((alo, ahi, blo, bhi)) = queue.pop() {
            let (i, j, k) = self.longest(alo, ahi, blo, bhi);
            if k == 0 {
                continue;
            }
            total += k;
            if alo < i && blo < j {
                queue.push((alo, i, blo, j));
            }
            if i + k < ahi && j + k < bhi {
                queue.push((i + k, ahi, j + k, bhi));
            }
        }
        total
    }

    fn ratio(&self) -> f64 {
        bound_ratio(self.matched(), self.a.len() + self.b.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ratios computed with CPython 3's `difflib.SequenceMatcher(None, a, b).ratio()`.
    #[test]
    fn ratios_match_cpython() {
        let cases: &[(&str, &str, f64)] = &[
            ("busybox", "busybx", 0.9230769230769231),
            ("zlib", "zlibb", 0.8888888888888888),
            ("abcd", "bcde", 0.75),
            ("", "", 1.0),
            ("", "abc", 0.0),
            ("do_compil", "do_compile", 0.9473684210526315),
            ("do_complie", "do_compile", 0.9),
            // Not symmetric: the longest block is searched in `a` first.
            ("tide", "diet", 0.25),
            ("diet", "tide", 0.5),
            ("qabxcd", "abycdf", 0.6666666666666666),
            (
                "private Thread currentThread;",
                "private volatile Thread currentThread;",
                0.8656716417910447,
            ),
            ("glibc-locale", "glib-2.0", 0.5),
            ("héllo", "hello", 0.8),
        ];
        for &(a, b, want) in cases {
            assert_eq!(ratio(a, b), want, "ratio({a:?}, {b:?})");
        }
    }

    /// Sequences of 200 or more: popular elements are not indexed but
    /// extend a block found next to them (CPython's values).
    #[test]
    fn autojunk_matches_cpython() {
        let a = format!("{}b", "a".repeat(250));
        let b = format!("{}b{}", "a".repeat(240), "a".repeat(5));
        assert_eq!(ratio(&a, &b), 0.9698189134808853);
        let a = format!("{}{}", "x".repeat(100), "ab".repeat(150));
        let b = format!("{}{}", "ab".repeat(150), "y".repeat(60));
        assert_eq!(ratio(&a, &b), 0.0);
        let a = format!("{}c", "ab".repeat(120));
        let b = format!("c{}", "ab".repeat(120));
        assert_eq!(ratio(&a, &b), 0.004149377593360996);
    }

    /// `difflib.get_close_matches` results from CPython.
    #[test]
    fn close_matches_match_cpython() {
        let words = ["ape", "apple", "peach", "puppy"];
        assert_eq!(get_close_matches("appel", words, 3, 0.6), ["apple", "ape"]);
        let names = ["zlib", "zlib-native", "zlib2", "zlibc", "glibc", "busybox"];
        assert_eq!(
            get_close_matches("zlibb", names, 3, 0.7),
            ["zlib", "zlibc", "zlib2"]
        );
        // Equal scores: the greater string first.
        let ties = ["ba", "ab ", "ab.", "abx", "a"];
        assert_eq!(get_close_matches("ab", ties, 3, 0.7), ["abx", "ab.", "ab "]);
        assert!(get_close_matches("ab", ties, 0, 0.7).is_empty());
    }
}
