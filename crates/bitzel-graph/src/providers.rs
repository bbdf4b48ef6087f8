//! Provider selection: which recipe satisfies a build-time name (`DEPENDS`,
//! `PROVIDES`, `virtual/*`) or a runtime name (`RDEPENDS`, `PACKAGES`,
//! `RPROVIDES`, `PACKAGES_DYNAMIC`), following BitBake's `providers.py`:
//!
//! 1. collect every recipe file providing the name, sorted by file name;
//! 2. per PN: group the files by layer priority (highest first), ordering each
//!    group by `DEFAULT_PREFERENCE`; take the first file matching
//!    `REQUIRED_VERSION_<pn>`/`PREFERRED_VERSION_<pn>` (`%` = prefix wildcard),
//!    else the highest `DEFAULT_PREFERENCE` then highest version of the
//!    highest-priority group;
//! 3. a PN equal to the name goes first; then `PREFERRED_PROVIDER_<name>`
//!    (build) or `PREFERRED_RPROVIDER_<name>` / a `PREFERRED_PROVIDER_*` of one
//!    of the candidate's provides (runtime) picks one.
//!
//! bitzel is stricter than BitBake in one place: several equally good providers
//! with no preference are an error (BitBake only prints a note and takes the
//! first by file name).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::input::{vercmp, ProviderPrefs, RecipeInfo};
use crate::pattern::Pattern;

/// Build-time or runtime name space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Namespace {
    /// `DEPENDS`, `PROVIDES`, targets, `[depends]`.
    Build,
    /// `RDEPENDS`, `RRECOMMENDS`, `PACKAGES`, `RPROVIDES`, `[rdepends]`.
    Runtime,
}

/// How a name was resolved, for `--explain-provider` and the JSON output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderChoice {
    /// The requested name.
    pub name: String,
    /// Its name space.
    pub namespace: Namespace,
    /// Every recipe (input index) that provides it, all versions, by file name.
    pub candidates: Vec<usize>,
    /// One recipe per PN, best first (after version and provider preferences).
    pub eligible: Vec<usize>,
    /// The recipe chosen (the first eligible), if any.
    pub chosen: Option<usize>,
    /// True when a preference (not just the order) picked the chosen provider.
    pub unique: bool,
    /// Human-readable steps that led to the choice.
    pub reasons: Vec<String>,
}

/// Lookup tables from names to the recipes providing them.
#[derive(Debug)]
pub struct ProviderIndex<'a> {
    recipes: &'a [RecipeInfo],
    build: BTreeMap<&'a str, Vec<usize>>,
    rprovides: BTreeMap<&'a str, Vec<usize>>,
    packages: BTreeMap<&'a str, Vec<usize>>,
    dynamic: Vec<(Pattern, String, usize)>,
    /// PN -> union of the build-time provides of every file with that PN.
    pn_provides: BTreeMap<&'a str, Vec<&'a str>>,
    /// Invalid PACKAGES_DYNAMIC patterns: (recipe, pattern, error).
    pub bad_patterns: Vec<(usize, String, String)>,
}

impl<'a> ProviderIndex<'a> {
    /// Index `recipes`.
    pub fn new(recipes: &'a [RecipeInfo]) -> Self {
        let mut idx = ProviderIndex {
            recipes,
            build: BTreeMap::new(),
            rprovides: BTreeMap::new(),
            packages: BTreeMap::new(),
            dynamic: Vec::new(),
            pn_provides: BTreeMap::new(),
            bad_patterns: Vec::new(),
        };
        for (i, r) in recipes.iter().enumerate() {
            for p in r.all_provides() {
                push_unique(idx.build.entry(p).or_default(), i);
                let pp = idx.pn_provides.entry(r.pn.as_str()).or_default();
                if !pp.contains(&p) {
                    pp.push(p);
                }
            }
            for p in &r.rprovides {
                push_unique(idx.rprovides.entry(p.as_str()).or_default(), i);
            }
            if r.packages.is_empty() {
                push_unique(idx.packages.entry(r.pn.as_str()).or_default(), i);
            }
            for p in &r.packages {
                push_unique(idx.packages.entry(p.as_str()).or_default(), i);
            }
            for pat in &r.packages_dynamic {
                // Python's re.match: anchored at the start only; BitBake escapes '+'.
                let escaped = pat.replace('+', "\\+");
                match Pattern::new(&escaped) {
                    Ok(re) => idx.dynamic.push((re, pat.clone(), i)),
                    Err(e) => idx.bad_patterns.push((i, pat.clone(), e.to_string())),
                }
            }
        }
        idx
    }

    /// The recipes this index was built from.
    pub fn recipes(&self) -> &'a [RecipeInfo] {
        self.recipes
    }

    /// Every name some recipe provides at build time (BitBake's
    /// `dataCache.providers` keys), sorted.
    pub fn build_names(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.build.keys().copied()
    }

    /// Every recipe providing a build-time name.
    pub fn build_providers(&self, name: &str) -> Vec<usize> {
        self.build.get(name).cloned().unwrap_or_default()
    }

    /// Every recipe providing a runtime name: RPROVIDES and PACKAGES, else
    /// PACKAGES_DYNAMIC patterns.
    pub fn runtime_providers(&self, name: &str) -> Vec<usize> {
        let mut out = Vec::new();
        if let Some(v) = self.rprovides.get(name) {
            out.extend(v.iter().copied());
        }
        if let Some(v) = self.packages.get(name) {
            out.extend(v.iter().copied());
        }
        if !out.is_empty() {
            return out;
        }
        for (re, _, i) in &self.dynamic {
            if re.matches_start(name) {
                out.push(*i);
            }
        }
        out
    }

    /// Resolve a name. `Ok` with an empty `eligible` list means a required
    /// version is missing; an empty `candidates` list means nobody provides it.
    pub fn resolve(&self, name: &str, ns: Namespace, prefs: &ProviderPrefs) -> ProviderChoice {
        let candidates = match ns {
            Namespace::Build => self.build_providers(name),
            Namespace::Runtime => self.runtime_providers(name),
        };
        let mut reasons = Vec::new();
        let mut candidates = candidates;
        candidates.sort_by_key(|&i| self.recipes[i].bitbake_fn());
        candidates.dedup();
        let mut eligible = self.filter(&candidates, name, prefs, &mut reasons);
        let mut unique = false;
        match ns {
            Namespace::Build => {
                if let Some(pref) = prefs.preferred_provider.get(name) {
                    if let Some(pos) = eligible.iter().position(|&i| &self.recipes[i].pn == pref) {
                        let p = eligible.remove(pos);
                        eligible.insert(0, p);
                        unique = true;
                        reasons.push(format!(
                            "PREFERRED_PROVIDER_{name} = \"{pref}\" selects {pref}"
                        ));
                    } else {
                        reasons.push(format!(
                            "PREFERRED_PROVIDER_{name} = \"{pref}\", but {pref} does not provide {name}; ignored"
                        ));
                    }
                }
            }
            Namespace::Runtime => {
                if let Some(pref) = prefs.preferred_rprovider.get(name) {
                    if let Some(pos) = eligible.iter().position(|&i| &self.recipes[i].pn == pref) {
                        let p = eligible.remove(pos);
                        eligible.insert(0, p);
                        unique = true;
                        reasons.push(format!(
                            "PREFERRED_RPROVIDER_{name} = \"{pref}\" selects {pref}"
                        ));
                    }
                }
                if !unique {
                    let snapshot = eligible.clone();
                    let mut preferred = Vec::new();
                    for &p in &snapshot {
                        let pn = self.recipes[p].pn.as_str();
                        for provide in self.pn_provides.get(pn).into_iter().flatten() {
                            let Some(pref) = prefs.preferred_provider.get(*provide) else {
                                continue;
                            };
                            let Some(&pi) = snapshot.iter().find(|&&i| &self.recipes[i].pn == pref)
                            else {
                                continue;
                            };
                            if preferred.contains(&pi) {
                                continue;
                            }
                            reasons.push(format!(
                                "PREFERRED_PROVIDER_{provide} = \"{pref}\" selects {pref} for runtime {name}"
                            ));
                            eligible.retain(|&x| x != pi);
                            eligible.insert(0, pi);
                            preferred.push(pi);
                            break;
                        }
                    }
                    unique = !preferred.is_empty();
                    if preferred.len() > 1 {
                        unique = false;
                        reasons.push(format!(
                            "conflicting PREFERRED_PROVIDER entries select several providers for runtime {name}"
                        ));
                    }
                }
            }
        }
        ProviderChoice {
            name: name.to_string(),
            namespace: ns,
            chosen: eligible.first().copied(),
            candidates,
            eligible,
            unique,
            reasons,
        }
    }

    /// BitBake's `_filterProviders`: one file per PN, preferred or latest version,
    /// a PN equal to the name first.
    fn filter(
        &self,
        providers: &[usize],
        item: &str,
        prefs: &ProviderPrefs,
        reasons: &mut Vec<String>,
    ) -> Vec<usize> {
        let recipes = self.recipes;
        let mut by_pn: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for &p in providers {
            by_pn.entry(recipes[p].pn.as_str()).or_default().push(p);
        }
        let mut eligible = Vec::new();
        let mut chosen: BTreeMap<&str, usize> = BTreeMap::new();
        let mut groups: BTreeMap<&str, Vec<Vec<usize>>> = BTreeMap::new();
        for (&pn, files) in &by_pn {
            let sorted = sort_priorities(recipes, files);
            let (found, required) = self.find_preferred(pn, &sorted, prefs, reasons);
            groups.insert(pn, sorted);
            if required && found.is_none() {
                return eligible;
            }
            if let Some(f) = found {
                eligible.push(f);
                chosen.insert(pn, f);
            }
        }
        for (&pn, sorted) in &groups {
            if chosen.contains_key(pn) {
                continue;
            }
            let Some(first_group) = sorted.first() else {
                continue;
            };
            if let Some(f) = find_latest(recipes, first_group) {
                if by_pn.get(pn).is_some_and(|v| v.len() > 1) {
                    let others: Vec<String> = by_pn[pn]
                        .iter()
                        .filter(|&&o| o != f)
                        .map(|&o| recipes[o].pv.clone())
                        .collect();
                    reasons.push(format!(
                        "{pn}: version {} chosen (highest DEFAULT_PREFERENCE, then highest version, in the highest-priority layer; also available: {})",
                        recipes[f].pv,
                        others.join(", ")
                    ));
                }
                eligible.push(f);
                chosen.insert(pn, f);
            }
        }
        if let Some(&f) = chosen.get(item) {
            if let Some(pos) = eligible.iter().position(|&e| e == f) {
                eligible.remove(pos);
                eligible.insert(0, f);
                if by_pn.len() > 1 {
                    reasons.push(format!(
                        "{item} is the PN of a candidate: preferred by default"
                    ));
                }
            }
        }
        eligible
    }

    fn find_preferred(
        &self,
        pn: &str,
        sorted: &[Vec<usize>],
        prefs: &ProviderPrefs,
        reasons: &mut Vec<String>,
    ) -> (Option<usize>, bool) {
        let (value, required, var) = if let Some(v) = prefs.required_version.get(pn) {
            (v, true, "REQUIRED_VERSION")
        } else if let Some(v) = prefs.preferred_version.get(pn) {
            (v, false, "PREFERRED_VERSION")
        } else {
            return (None, false);
        };
        if value.is_empty() {
            return (None, false);
        }
        // `(\d+:)*(.*)`: an optional epoch prefix, then the version.
        let (pe, pv) = split_epoch(value);
        for group in sorted {
            for &f in group {
                let r = &self.recipes[f];
                if version_matches(&r.pe, &r.pv, pe, pv) {
                    reasons.push(format!(
                        "{var}_{pn} = \"{value}\" selects {pn} {} ({})",
                        r.pv,
                        r.bitbake_fn()
                    ));
                    return (Some(f), required);
                }
            }
        }
        let mut avail: Vec<&str> = sorted
            .iter()
            .flatten()
            .map(|&f| self.recipes[f].pv.as_str())
            .collect();
        avail.sort_unstable();
        avail.dedup();
        reasons.push(format!(
            "{var}_{pn} = \"{value}\" matches no available version ({}){}",
            avail.join(", "),
            if required { "" } else { "; using the latest" }
        ));
        (None, required)
    }
}

fn push_unique(v: &mut Vec<usize>, i: usize) {
    if !v.contains(&i) {
        v.push(i);
    }
}

fn split_epoch(value: &str) -> (Option<&str>, &str) {
    let mut rest = value;
    let mut epoch = None;
    // BitBake's regex allows repeated `N:` groups and keeps the last.
    while let Some((head, tail)) = rest.split_once(':') {
        if !head.is_empty() && head.bytes().all(|b| b.is_ascii_digit()) {
            epoch = Some(head);
            rest = tail;
        } else {
            break;
        }
    }
    (epoch, rest)
}

fn version_matches(pe: &str, pv: &str, want_pe: Option<&str>, want_pv: &str) -> bool {
    if let Some(e) = want_pe {
        if e != pe {
            return false;
        }
    }
    if pv == want_pv {
        return true;
    }
    match want_pv.strip_suffix('%') {
        Some(prefix) => pv.starts_with(prefix),
        None => false,
    }
}

/// Files of one PN grouped by layer priority (highest first), each group
/// ordered by ascending `DEFAULT_PREFERENCE` (stable in file-name order).
fn sort_priorities(recipes: &[RecipeInfo], files: &[usize]) -> Vec<Vec<usize>> {
    let mut by_prio: BTreeMap<i64, BTreeMap<i64, Vec<usize>>> = BTreeMap::new();
    for &f in files {
        by_prio
            .entry(recipes[f].layer_priority)
            .or_default()
            .entry(recipes[f].default_preference)
            .or_default()
            .push(f);
    }
    by_prio
        .into_values()
        .rev()
        .map(|prefs| prefs.into_values().flatten().collect())
        .collect()
}

/// BitBake's `findLatestProvider`: highest DEFAULT_PREFERENCE, then highest version.
fn find_latest(recipes: &[RecipeInfo], files: &[usize]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for &f in files {
        let r = &recipes[f];
        match best {
            None => best = Some(f),
            Some(b) => {
                let br = &recipes[b];
                let newer = vercmp((&br.pe, &br.pv, &br.pr), (&r.pe, &r.pv, &r.pr))
                    == std::cmp::Ordering::Less;
                if (r.default_preference == br.default_preference && newer)
                    || r.default_preference > br.default_preference
                {
                    best = Some(f);
                }
            }
        }
    }
    best
}
