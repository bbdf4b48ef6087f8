//! Building the graph's input model from `bitzel-meta`'s parsed workspace,
//! reading the same variables and flags BitBake's cache does
//! (`cache.py`: `PROVIDES`, `DEPENDS`, `PACKAGES`, `RDEPENDS[:pkg]`,
//! `RRECOMMENDS[:pkg]`, `RPROVIDES[:pkg]`, `PACKAGES_DYNAMIC`, `PE`,
//! `DEFAULT_PREFERENCE`; `build.py`: `__BBTASKS`, the `deps` flag and the
//! `depends`, `rdepends`, `deptask`, `rdeptask`, `recrdeptask`,
//! `recideptask`, `noexec`, `nostamp`, `dirs`, `cleandirs` task flags).

use bitzel_meta::{DataStore, HistoryEntry, Layer, Recipe, Workspace};

use crate::input::{explode_deps, Origin, ProviderPrefs, RecipeInfo, TaskInfo, Want};

/// Every recipe of a workspace, in `Workspace::recipes` order (so
/// [`crate::TaskNode::recipe`] indexes `Workspace::recipes` too).
pub fn recipes_from_workspace(ws: &Workspace) -> Vec<RecipeInfo> {
    ws.recipes
        .iter()
        .map(|r| RecipeInfo::from_recipe(r, &ws.layers))
        .collect()
}

/// The provider preferences of a workspace's global configuration.
pub fn prefs_from_workspace(ws: &Workspace) -> ProviderPrefs {
    let mut p = ProviderPrefs::from_config(&ws.config, ws.recipes.iter().map(|r| r.pn.as_str()));
    p.skipped = ws.skipped.iter().map(|r| r.pn.clone()).collect();
    p
}

fn words(ds: &DataStore, var: &str) -> Vec<String> {
    ds.get_var(var)
        .map(|v| v.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

fn flag_words(ds: &DataStore, task: &str, flag: &str) -> Vec<String> {
    ds.get_flag(task, flag)
        .map(|v| v.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

fn origin_of(h: &HistoryEntry) -> Origin {
    Origin {
        file: Some(h.file.to_path_buf()),
        line: (h.line > 0).then_some(h.line),
    }
}

/// Where `name` entered `var`: the last operation whose text mentions it,
/// else the last operation with a real line.
fn locate(ds: &DataStore, var: &str, flag: Option<&str>, name: &str, fallback: &Origin) -> Origin {
    let hist: Vec<HistoryEntry> = ds
        .history(var)
        .into_iter()
        .filter(|h| h.flag.as_deref() == flag)
        .collect();
    hist.iter()
        .rev()
        .find(|h| {
            h.line > 0
                && h.detail
                    .split_whitespace()
                    .any(|w| w == name || w.contains(name))
        })
        .or_else(|| hist.iter().rev().find(|h| h.line > 0))
        .map(origin_of)
        .unwrap_or_else(|| fallback.clone())
}

fn wants(ds: &DataStore, var: &str, fallback: &Origin) -> Vec<Want> {
    explode_deps(&ds.get_var(var).unwrap_or_default())
        .into_iter()
        .map(|name| Want {
            origin: locate(ds, var, None, &name, fallback),
            var: var.to_string(),
            name,
        })
        .collect()
}

impl RecipeInfo {
    /// Read a parsed recipe. `layers` gives the layer priorities
    /// (`BBFILE_PRIORITY` of the recipe's collection).
    pub fn from_recipe(r: &Recipe, layers: &[Layer]) -> RecipeInfo {
        let d = &r.data;
        let recipe_origin = Origin {
            file: Some(r.file.clone()),
            line: None,
        };
        let layer_priority = layers
            .iter()
            .find(|l| l.collection == r.layer)
            .map_or(0, |l| i64::from(l.priority));
        let mut packages = words(d, "PACKAGES");
        if packages.is_empty() {
            packages.push(r.pn.clone());
        }
        // BitBake: for each package, RDEPENDS + RDEPENDS:<pkg>, and likewise
        // for RRECOMMENDS; the package-less forms count once.
        let mut rdepends = wants(d, "RDEPENDS", &recipe_origin);
        rdepends.extend(wants(d, "RRECOMMENDS", &recipe_origin));
        let mut rprovides = explode_deps(&d.get_var("RPROVIDES").unwrap_or_default());
        for p in &packages {
            rdepends.extend(wants(d, &format!("RDEPENDS:{p}"), &recipe_origin));
            rdepends.extend(wants(d, &format!("RRECOMMENDS:{p}"), &recipe_origin));
            rprovides.extend(explode_deps(
                &d.get_var(&format!("RPROVIDES:{p}")).unwrap_or_default(),
            ));
        }
        let tasks = d
            .tasks()
            .into_iter()
            .map(|name| task_info(d, &name, &recipe_origin))
            .collect();
        RecipeInfo {
            file: r.file.clone(),
            variant: r.variant.clone(),
            pn: r.pn.clone(),
            pe: d.get_var("PE").unwrap_or_default(),
            pv: r.pv.clone(),
            pr: r.pr.clone(),
            layer_priority,
            layer: r.layer.clone(),
            default_preference: d
                .get_var("DEFAULT_PREFERENCE")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0),
            provides: explode_deps(&d.get_var("PROVIDES").unwrap_or_default()),
            depends: wants(d, "DEPENDS", &recipe_origin),
            rdepends,
            packages,
            rprovides,
            packages_dynamic: words(d, "PACKAGES_DYNAMIC"),
            tasks,
            origin: recipe_origin,
        }
    }
}

fn task_info(d: &DataStore, name: &str, fallback: &Origin) -> TaskInfo {
    let flags = d.flags(name);
    let has = |f: &str| flags.contains_key(f);
    let mut t = TaskInfo::new(name);
    t.deps = d.task_deps(name);
    t.origin = locate(d, name, Some("depends"), "", fallback);
    for (flag, list) in [("depends", &mut t.depends), ("rdepends", &mut t.rdepends)] {
        for entry in flag_words(d, name, flag) {
            let parts: Vec<&str> = entry.split(':').collect();
            match parts.as_slice() {
                [n, task] if !n.is_empty() && !task.is_empty() => {
                    list.push((n.to_string(), task.to_string()));
                }
                _ => t.malformed.push(format!("{flag}: {entry}")),
            }
        }
    }
    t.deptask = flag_words(d, name, "deptask");
    t.rdeptask = flag_words(d, name, "rdeptask");
    t.recrdeptask = flag_words(d, name, "recrdeptask");
    t.recideptask = flag_words(d, name, "recideptask");
    // BitBake records these flags whenever they are set (it only warns about
    // values other than "1").
    t.noexec = has("noexec");
    t.nostamp = has("nostamp");
    t.dirs = flag_words(d, name, "dirs");
    t.cleandirs = flag_words(d, name, "cleandirs");
    t
}

impl ProviderPrefs {
    /// Read `PREFERRED_PROVIDER_*`, `PREFERRED_PROVIDERS`,
    /// `PREFERRED_RPROVIDER_*`, `PREFERRED_VERSION[_<pn>|:pn-<pn>]`,
    /// `REQUIRED_VERSION[...]`, `ASSUME_PROVIDED` and `BB_MULTI_PROVIDER_ALLOWED`
    /// from the global configuration. `pns` are the recipe names (for the
    /// `:pn-<pn>` override forms).
    pub fn from_config<'a>(ds: &DataStore, pns: impl Iterator<Item = &'a str>) -> ProviderPrefs {
        let mut p = ProviderPrefs::default();
        for entry in words(ds, "PREFERRED_PROVIDERS") {
            if let Some((providee, provider)) = entry.split_once(':') {
                p.preferred_provider
                    .insert(providee.to_string(), provider.to_string());
            }
        }
        for key in ds.keys() {
            let value = || {
                ds.get_var(&key)
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty())
            };
            if let Some(name) = key.strip_prefix("PREFERRED_PROVIDER_") {
                if let Some(v) = value() {
                    p.preferred_provider.insert(name.to_string(), v);
                }
            } else if let Some(name) = key.strip_prefix("PREFERRED_RPROVIDER_") {
                if let Some(v) = value() {
                    p.preferred_rprovider.insert(name.to_string(), v);
                }
            } else if let Some(pn) = key.strip_prefix("PREFERRED_VERSION_") {
                if let Some(v) = value() {
                    p.preferred_version.insert(pn.to_string(), v);
                }
            } else if let Some(pn) = key.strip_prefix("REQUIRED_VERSION_") {
                if let Some(v) = value() {
                    p.required_version.insert(pn.to_string(), v);
                }
            }
        }
        // `PREFERRED_VERSION:pn-<pn>` wins over `PREFERRED_VERSION_<pn>`, which
        // wins over a bare `PREFERRED_VERSION`.
        let bare_pref = ds
            .get_var("PREFERRED_VERSION")
            .filter(|v| !v.trim().is_empty());
        let bare_req = ds
            .get_var("REQUIRED_VERSION")
            .filter(|v| !v.trim().is_empty());
        for pn in pns {
            if let Some(v) = ds
                .get_var(&format!("PREFERRED_VERSION:pn-{pn}"))
                .filter(|v| !v.trim().is_empty())
            {
                p.preferred_version
                    .insert(pn.to_string(), v.trim().to_string());
            } else if let Some(v) = &bare_pref {
                p.preferred_version
                    .entry(pn.to_string())
                    .or_insert_with(|| v.trim().to_string());
            }
            if let Some(v) = ds
                .get_var(&format!("REQUIRED_VERSION:pn-{pn}"))
                .filter(|v| !v.trim().is_empty())
            {
                p.required_version
                    .insert(pn.to_string(), v.trim().to_string());
            } else if let Some(v) = &bare_req {
                p.required_version
                    .entry(pn.to_string())
                    .or_insert_with(|| v.trim().to_string());
            }
        }
        p.assume_provided = words(ds, "ASSUME_PROVIDED");
        // BitBake's name; MULTI_PROVIDER_WHITELIST is its name before 2.0.
        p.multi_provider_allowed = words(ds, "BB_MULTI_PROVIDER_ALLOWED");
        p.multi_provider_allowed
            .extend(words(ds, "MULTI_PROVIDER_WHITELIST"));
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_provider_allowed_is_read_under_bitbakes_names() {
        let mut d = DataStore::new();
        d.set_var(
            "BB_MULTI_PROVIDER_ALLOWED",
            "virtual/libintl virtual/x".into(),
            None,
        );
        d.set_var("MULTI_PROVIDER_WHITELIST", "virtual/old".into(), None);
        let p = ProviderPrefs::from_config(&d, std::iter::empty());
        assert_eq!(
            p.multi_provider_allowed,
            vec!["virtual/libintl", "virtual/x", "virtual/old"]
        );
    }
}
