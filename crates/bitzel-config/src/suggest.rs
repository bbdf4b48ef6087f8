//! "did you mean …?" for mistyped keys.

/// The candidate closest to `word` by edit distance (insertions, deletions,
/// substitutions and swaps of neighbours), if it is close enough to be a
/// plausible typo: at most one edit for short words, about a third of the
/// word's length for longer ones. Ties go to the earlier candidate.
pub(crate) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    let mut best: Option<(usize, &'a str)> = None;
    for &c in candidates {
        let d = distance(&word.to_lowercase(), &c.to_lowercase());
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// Optimal-string-alignment distance between `a` and `b`.
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let (n, m) = (a.len(), b.len());
    // d[i][j]: distance between a[..i] and b[..j]
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[n][m]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("machin", "machine"), 1);
        assert_eq!(distance("mahcine", "machine"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggestions() {
        let keys = ["header", "machine", "distro", "target", "task", "repos"];
        assert_eq!(closest("machin", &keys), Some("machine"));
        assert_eq!(closest("MACHINE", &keys), Some("machine"));
        assert_eq!(closest("targets", &keys), Some("target"));
        assert_eq!(closest("repo", &keys), Some("repos"));
        assert_eq!(closest("headr", &keys), Some("header"));
        assert_eq!(closest("completely-different", &keys), None);
        assert_eq!(closest("xy", &keys), None);
    }
}
