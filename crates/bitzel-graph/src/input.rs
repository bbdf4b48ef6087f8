//! The graph's own input model: what it needs to know about each recipe and
//! about the global provider preferences. Built by hand in tests, or from
//! `bitzel-meta`'s datastores by [`crate::from_meta`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

/// Where a value came from, for error messages.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Origin {
    /// The file of the (last) assignment, when known.
    pub file: Option<PathBuf>,
    /// Its 1-based line, when known.
    pub line: Option<u32>,
}

impl Origin {
    /// An origin at a file and line.
    pub fn at(file: impl Into<PathBuf>, line: u32) -> Self {
        Origin {
            file: Some(file.into()),
            line: Some(line),
        }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.file, self.line) {
            (Some(p), Some(l)) => write!(f, "{}:{l}", p.display()),
            (Some(p), None) => write!(f, "{}", p.display()),
            _ => write!(f, "<unknown location>"),
        }
    }
}

/// A name a recipe asks for, with the variable it came from and where that
/// variable was set (`DEPENDS`, `RDEPENDS:busybox`, `do_rootfs[depends]`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Want {
    /// The requested name (a build target for DEPENDS, a package for RDEPENDS).
    pub name: String,
    /// The variable (and flag) that asked for it.
    pub var: String,
    /// Where that variable was assigned.
    pub origin: Origin,
}

impl Want {
    /// A want with an unknown origin.
    pub fn new(name: impl Into<String>, var: impl Into<String>) -> Self {
        Want {
            name: name.into(),
            var: var.into(),
            origin: Origin::default(),
        }
    }
}

/// One task of a recipe, as BitBake's `task_deps` sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TaskInfo {
    /// Task name with its `do_` prefix.
    pub name: String,
    /// Same-recipe predecessors (`addtask ... after`, and `before` inverted):
    /// the task's `deps` flag.
    pub deps: Vec<String>,
    /// `[depends]`: `name:do_task` pairs, `name` in the PROVIDES namespace.
    pub depends: Vec<(String, String)>,
    /// `[rdepends]`: `name:do_task` pairs, `name` in the package namespace.
    pub rdepends: Vec<(String, String)>,
    /// `[deptask]`: tasks of every DEPENDS provider to run first.
    pub deptask: Vec<String>,
    /// `[rdeptask]`: tasks of every RDEPENDS/RRECOMMENDS provider to run first.
    pub rdeptask: Vec<String>,
    /// `[recrdeptask]`: like deptask + rdeptask, over the whole dependency tree.
    pub recrdeptask: Vec<String>,
    /// `[recideptask]`: same-recipe tasks whose dependencies the recursion also follows.
    pub recideptask: Vec<String>,
    /// `[noexec]` is `1`.
    pub noexec: bool,
    /// `[nostamp]` is `1`.
    pub nostamp: bool,
    /// `[dirs]`, split.
    pub dirs: Vec<String>,
    /// `[cleandirs]`, split.
    pub cleandirs: Vec<String>,
    /// Where the `[depends]`/`[rdepends]` flags were set.
    pub origin: Origin,
    /// `[depends]`/`[rdepends]` entries that are not `name:task`
    /// (`flag: entry`); an error once the recipe is part of a build.
    pub malformed: Vec<String>,
}

impl TaskInfo {
    /// A task with no flags.
    pub fn new(name: impl Into<String>) -> Self {
        TaskInfo {
            name: name.into(),
            ..TaskInfo::default()
        }
    }

    /// Builder: same-recipe predecessors.
    pub fn after(mut self, deps: &[&str]) -> Self {
        self.deps.extend(deps.iter().map(|s| s.to_string()));
        self
    }
}

/// What the graph needs to know about one recipe (or `BBCLASSEXTEND` variant).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RecipeInfo {
    /// The recipe file.
    pub file: PathBuf,
    /// `Some("native")` for a `BBCLASSEXTEND` variant.
    pub variant: Option<String>,
    /// `PN` (already extended for variants: `quilt-native`).
    pub pn: String,
    /// `PE` (empty when unset).
    pub pe: String,
    /// `PV`.
    pub pv: String,
    /// `PR`.
    pub pr: String,
    /// `BBFILE_PRIORITY` of the layer collection the file belongs to.
    pub layer_priority: i64,
    /// The layer collection name (for messages).
    pub layer: String,
    /// `DEFAULT_PREFERENCE` (0 when unset).
    pub default_preference: i64,
    /// `PROVIDES` (PN is implicit and need not be listed).
    pub provides: Vec<String>,
    /// `DEPENDS`, version constraints removed, in order.
    pub depends: Vec<Want>,
    /// `RDEPENDS:<pkg>` and `RRECOMMENDS:<pkg>` over `PACKAGES` (and the
    /// package-less `RDEPENDS`/`RRECOMMENDS`), as BitBake's taskdata collects them.
    pub rdepends: Vec<Want>,
    /// `PACKAGES` (PN when empty, as BitBake does).
    pub packages: Vec<String>,
    /// `RPROVIDES` and `RPROVIDES:<pkg>` over `PACKAGES`.
    pub rprovides: Vec<String>,
    /// `PACKAGES_DYNAMIC` regular expressions.
    pub packages_dynamic: Vec<String>,
    /// The tasks, in `addtask` order, after `deltask`.
    pub tasks: Vec<TaskInfo>,
    /// Where `PN`/the recipe is defined (used when nothing better is known).
    pub origin: Origin,
}

impl RecipeInfo {
    /// A recipe named `pn` at version `pv` (PR `r0`), from `file`, with no tasks.
    pub fn new(pn: impl Into<String>, pv: impl Into<String>, file: impl Into<PathBuf>) -> Self {
        let file = file.into();
        RecipeInfo {
            origin: Origin {
                file: Some(file.clone()),
                line: None,
            },
            file,
            pn: pn.into(),
            pv: pv.into(),
            pr: "r0".into(),
            ..RecipeInfo::default()
        }
    }

    /// BitBake's file name for it: `virtual:<variant>:<path>` for a variant.
    pub fn bitbake_fn(&self) -> String {
        match &self.variant {
            Some(v) => format!("virtual:{v}:{}", self.file.display()),
            None => self.file.display().to_string(),
        }
    }

    /// `PE:PV-PR` as in BitBake's `task-depends.dot` labels.
    pub fn pepvpr(&self) -> String {
        format!("{}:{}-{}", self.pe, self.pv, self.pr)
    }

    /// Every build-time name this recipe provides: PN first, then PROVIDES.
    pub fn all_provides(&self) -> Vec<&str> {
        let mut v = vec![self.pn.as_str()];
        for p in &self.provides {
            if !v.contains(&p.as_str()) {
                v.push(p);
            }
        }
        v
    }

    /// The task named `name`.
    pub fn task(&self, name: &str) -> Option<&TaskInfo> {
        self.tasks.iter().find(|t| t.name == name)
    }
}

/// Global provider preferences from the configuration datastore.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProviderPrefs {
    /// `PREFERRED_PROVIDER_<name>` (and `PREFERRED_PROVIDERS` `name:pn` pairs).
    pub preferred_provider: BTreeMap<String, String>,
    /// `PREFERRED_RPROVIDER_<name>`.
    pub preferred_rprovider: BTreeMap<String, String>,
    /// `PREFERRED_VERSION_<pn>` (or `PREFERRED_VERSION:pn-<pn>`); `%` at the end is a wildcard.
    pub preferred_version: BTreeMap<String, String>,
    /// `REQUIRED_VERSION_<pn>`: like a preferred version, but nothing else is acceptable.
    pub required_version: BTreeMap<String, String>,
    /// `ASSUME_PROVIDED`: names nobody needs to provide (`^`/`$` make an entry a regex).
    pub assume_provided: Vec<String>,
    /// `BB_MULTI_PROVIDER_ALLOWED`: names several recipes in one build may provide.
    pub multi_provider_allowed: Vec<String>,
    /// PNs of the recipes skipped at parse time (BitBake's skiplist): they
    /// provide nothing, but are candidates for a missing name's close matches.
    pub skipped: Vec<String>,
}

impl ProviderPrefs {
    /// True when `name` is assumed provided by the host.
    pub fn is_assumed(&self, name: &str) -> bool {
        self.assume_provided.iter().any(|a| {
            if a.starts_with('^') || a.ends_with('$') {
                crate::pattern::Pattern::new(a).is_ok_and(|re| re.matches_start(name))
            } else {
                a == name
            }
        })
    }
}

/// Split a DEPENDS/RDEPENDS-style value into names, dropping `(>= 1.0)`
/// version constraints, as BitBake's `explode_deps` does.
pub fn explode_deps(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_version = false;
    for word in s.split_whitespace() {
        if word.starts_with('(') {
            in_version = true;
        }
        if !in_version {
            out.push(word.to_string());
        }
        if in_version && word.ends_with(')') {
            in_version = false;
        }
    }
    out
}

/// Compare two `(PE, PV, PR)` versions as BitBake's `bb.utils.vercmp` does.
pub fn vercmp(a: (&str, &str, &str), b: (&str, &str, &str)) -> std::cmp::Ordering {
    let ea = epoch(a.0);
    let eb = epoch(b.0);
    ea.cmp(&eb)
        .then_with(|| vercmp_part(a.1, b.1))
        .then_with(|| vercmp_part(a.2, b.2))
}

fn epoch(s: &str) -> i64 {
    s.trim().parse().unwrap_or(0)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece<'a> {
    Num(&'a str),
    Alpha(&'a str),
    Sym(char),
}

impl Piece<'_> {
    fn order(&self) -> i8 {
        match self {
            Piece::Sym('~') => -1,
            Piece::Num(_) => 0,
            Piece::Alpha(_) => 1,
            Piece::Sym(_) => 2,
        }
    }
}

fn explode_version(s: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        if c.is_ascii_digit() {
            let end = rest
                .find(|ch: char| !ch.is_ascii_digit())
                .unwrap_or(rest.len());
            out.push(Piece::Num(&rest[..end]));
            rest = &rest[end..];
        } else if c.is_ascii_alphabetic() {
            let end = rest
                .find(|ch: char| !ch.is_ascii_alphabetic())
                .unwrap_or(rest.len());
            out.push(Piece::Alpha(&rest[..end]));
            rest = &rest[end..];
        } else {
            out.push(Piece::Sym(c));
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

fn cmp_num(a: &str, b: &str) -> std::cmp::Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// BitBake's `vercmp_part`: compare one version component string.
pub fn vercmp_part(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let va = explode_version(a);
    let vb = explode_version(b);
    let mut i = 0;
    loop {
        let pa = va.get(i);
        let pb = vb.get(i);
        i += 1;
        // An exhausted side counts as order 0 with no value.
        let oa = pa.map_or(0, Piece::order);
        let ob = pb.map_or(0, Piece::order);
        match (pa, pb) {
            (None, None) => return Ordering::Equal,
            _ if oa != ob => return oa.cmp(&ob),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let c = match (x, y) {
                    (Piece::Num(x), Piece::Num(y)) => cmp_num(x, y),
                    (Piece::Alpha(x), Piece::Alpha(y)) => x.cmp(y),
                    (Piece::Sym(x), Piece::Sym(y)) => x.cmp(y),
                    _ => Ordering::Equal,
                };
                if c != Ordering::Equal {
                    return c;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering::*;

    #[test]
    fn vercmp_follows_bitbake() {
        let v = |a: &str, b: &str| vercmp(("", a, "r0"), ("", b, "r0"));
        assert_eq!(v("1.35.0", "1.36.1"), Less);
        assert_eq!(v("1.10", "1.9"), Greater);
        assert_eq!(v("1.0", "1.0"), Equal);
        assert_eq!(v("1.0~rc1", "1.0"), Less);
        assert_eq!(v("1.0", "1.0a"), Less);
        assert_eq!(v("1.0", "1.0.1"), Less);
        assert_eq!(v("2.0", "10"), Less);
        assert_eq!(v("007", "7"), Equal);
        assert_eq!(vercmp(("1", "1.0", "r0"), ("", "9.9", "r0")), Greater);
        assert_eq!(vercmp(("", "1.0", "r1"), ("", "1.0", "r0")), Greater);
    }

    #[test]
    fn explode_deps_drops_versions() {
        assert_eq!(
            explode_deps("a (>= 1.0) b  c (= 2 ) d"),
            vec!["a", "b", "c", "d"]
        );
    }

    #[test]
    fn assume_provided_supports_regex_entries() {
        let p = ProviderPrefs {
            assume_provided: vec!["git-native".into(), "^perl-.*".into()],
            ..ProviderPrefs::default()
        };
        assert!(p.is_assumed("git-native"));
        assert!(p.is_assumed("perl-native"));
        assert!(!p.is_assumed("git"));
    }
}
