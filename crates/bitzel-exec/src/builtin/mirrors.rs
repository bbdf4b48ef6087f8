//! `PREMIRRORS` / `MIRRORS`: BitBake's URL rewriting.
//!
//! The value is a whitespace-separated list of pairs (a literal `\n` counts as
//! whitespace): a pattern URL and a replacement URL. Both are split into
//! scheme, host, path, user and parameters; the rule applies when every
//! component regex of the pattern matches the original's component at its
//! start (the scheme regex is anchored at the end too, so `https?` does not
//! match `httpsx`). Each component is then rewritten with the first match
//! replaced by the replacement's component, in which `TYPE`, `HOST`, `PATH`,
//! `BASENAME` and `MIRRORNAME` are substituted first. A path rewritten for a
//! file download ends with the original's base name (appended when missing),
//! so `https://.*/.* file:///mirror/` maps `https://x.org/a/b.tar.gz` to
//! `file:///mirror/b.tar.gz`. Replacement `\1`-style back references work.

use regex::Regex;

use super::srcuri::{git_mirror_name, SrcEntry, SrcKind};
use super::BuiltinError;

/// One pattern/replacement pair of `PREMIRRORS` or `MIRRORS`.
#[derive(Debug, Clone)]
pub struct MirrorRule {
    /// The pattern URL as written (`https?://.*/.*`).
    pub pattern: String,
    /// The replacement URL as written (`file:///srv/mirror/`).
    pub replacement: String,
}

/// Split a `PREMIRRORS`/`MIRRORS` value into rules; `variable` names it in errors.
pub fn parse_mirrors(variable: &str, value: &str) -> Result<Vec<MirrorRule>, BuiltinError> {
    let words: Vec<&str> = value.split_whitespace().filter(|w| *w != "\\n").collect();
    let words: Vec<String> = words
        .iter()
        .flat_map(|w| w.split("\\n"))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect();
    if words.len() % 2 != 0 {
        return Err(BuiltinError::Mirror {
            variable: variable.to_string(),
            reason: format!(
                "expected pairs of `pattern replacement`, got {} words (the last, `{}`, has no partner)",
                words.len(),
                words.last().map(String::as_str).unwrap_or_default()
            ),
        });
    }
    let rules: Vec<MirrorRule> = words
        .chunks(2)
        .map(|c| MirrorRule {
            pattern: c[0].clone(),
            replacement: c[1].clone(),
        })
        .collect();
    for r in &rules {
        for (i, c) in split_url(&r.pattern).components().iter().enumerate() {
            let re = if i == 0 {
                format!("^(?:{c})$")
            } else {
                format!("^(?:{c})")
            };
            Regex::new(&re).map_err(|e| BuiltinError::Mirror {
                variable: variable.to_string(),
                reason: format!("pattern `{}`: bad regular expression `{c}`: {e}", r.pattern),
            })?;
        }
    }
    Ok(rules)
}

struct UrlParts {
    scheme: String,
    host: String,
    path: String,
    user: String,
    params: Vec<(String, String)>,
}

impl UrlParts {
    fn components(&self) -> [&str; 4] {
        [&self.scheme, &self.host, &self.path, &self.user]
    }
}

fn split_url(url: &str) -> UrlParts {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let mut it = rest.split(';');
    let loc = it.next().unwrap_or_default();
    let params = it
        .filter_map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    if scheme == "file" {
        return UrlParts {
            scheme: scheme.into(),
            host: String::new(),
            path: loc.into(),
            user: String::new(),
            params,
        };
    }
    let (hostpart, path) = match loc.find('/') {
        Some(i) => (&loc[..i], &loc[i..]),
        None => (loc, ""),
    };
    let (user, host) = hostpart.rsplit_once('@').unwrap_or(("", hostpart));
    UrlParts {
        scheme: scheme.into(),
        host: host.into(),
        path: path.into(),
        user: user.into(),
        params,
    }
}

/// Python-style replacement (`\1`) to the regex crate's (`${1}`); a literal `$` is escaped.
fn py_replacement(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' => out.push_str("$$"),
            '\\' if chars.peek().is_some_and(|d| d.is_ascii_digit()) => {
                let mut n = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    n.push(*d);
                    chars.next();
                }
                out.push_str(&format!("${{{n}}}"));
            }
            c => out.push(c),
        }
    }
    out
}

/// The URL `rule` rewrites `entry` to, or `None` when the rule does not apply
/// (or would give back the same URL).
pub fn rewrite_for_mirror(entry: &SrcEntry, rule: &MirrorRule) -> Option<String> {
    let orig = split_url(&entry.uri);
    let find = split_url(&rule.pattern);
    let repl = split_url(&rule.replacement);
    let basename = entry
        .path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    let subst = |s: &str| {
        s.replace("TYPE", &orig.scheme)
            .replace("HOST", &orig.host)
            .replace("BASENAME", basename)
            .replace("MIRRORNAME", &git_mirror_name(&orig.host, &orig.path))
            .replace("PATH", &orig.path)
    };
    // Parameters named in the pattern must match exactly.
    for (k, v) in &find.params {
        if entry.params.get(k) != Some(v) {
            return None;
        }
    }
    let mut out: Vec<String> = Vec::with_capacity(4);
    for (i, (pat, (o, r))) in find
        .components()
        .iter()
        .zip(orig.components().iter().zip(repl.components().iter()))
        .enumerate()
    {
        let anchored = if i == 0 {
            format!("^(?:{pat})$")
        } else {
            format!("^(?:{pat})")
        };
        let re = Regex::new(&anchored).ok()?;
        if !re.is_match(o) {
            return None;
        }
        let mut v = if r.is_empty() {
            String::new()
        } else {
            re.replacen(o, 1, py_replacement(&subst(r)).as_str())
                .into_owned()
        };
        // The path keeps the downloaded file's name (file downloads only: a
        // git mirror URL names a repository).
        if i == 2
            && matches!(entry.kind, SrcKind::Http | SrcKind::File)
            && !v.ends_with(&entry.local_name)
        {
            if !v.ends_with('/') {
                v.push('/');
            }
            v.push_str(&entry.local_name);
        }
        out.push(v);
    }
    let (scheme, host, path, user) = (&out[0], &out[1], &out[2], &out[3]);
    let mut url = format!("{scheme}://");
    if scheme != "file" {
        if !user.is_empty() {
            url.push_str(user);
            url.push('@');
        }
        url.push_str(host);
    }
    let mut path = path.clone();
    while path.contains("//") {
        path = path.replace("//", "/");
    }
    url.push_str(&path);
    // Original parameters, overridden by the replacement's.
    let mut params: std::collections::BTreeMap<String, String> = entry.params.clone();
    for (k, v) in &repl.params {
        params.insert(k.clone(), subst(v));
    }
    for (k, v) in &params {
        url.push_str(&format!(";{k}={v}"));
    }
    if url == entry.uri {
        return None;
    }
    Some(url)
}
