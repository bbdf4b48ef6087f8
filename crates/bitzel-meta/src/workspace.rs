//! Loading a whole workspace: the base configuration sequence, layer
//! collections, `BBFILES` collection, `.bbappend` matching and the parallel
//! recipe parse.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;

use crate::data::{DataStore, HistoryEntry};
use crate::diag::{Diagnostic, MetaError, Severity};
use crate::eval::{Env, Eval, Input};
use crate::pattern::{glob_component, has_glob, Regex};
use crate::{cache, ConfInput, Layer, Loader, ParseOptions, Recipe, Workspace};

/// Environment variables BitBake exports automatically when passed through.
const AUTO_EXPORT: [&str; 9] = [
    "BB_TASKHASH",
    "HOME",
    "LOGNAME",
    "PATH",
    "PWD",
    "SHELL",
    "USER",
    "LC_ALL",
    "BBSERVER",
];

/// The variables BitBake takes from its environment into the datastore
/// (its "approved" variables), from `vars` (the process environment):
/// everything with `BB_PRESERVE_ENV` set; else the names `BB_ENV_PASSTHROUGH`
/// lists (and itself), or by default `BBPATH`, `BB_PRESERVE_ENV`,
/// `BB_ENV_PASSTHROUGH_ADDITIONS` and the automatically exported ones; plus
/// the names `BB_ENV_PASSTHROUGH_ADDITIONS` lists (and itself).
pub fn passthrough_env(
    vars: impl IntoIterator<Item = (String, String)>,
) -> BTreeMap<String, String> {
    let all: BTreeMap<String, String> = vars.into_iter().collect();
    if all.contains_key("BB_PRESERVE_ENV") {
        return all;
    }
    let listed = |name: &str| -> Vec<String> {
        let mut v: Vec<String> = all
            .get(name)
            .map(|l| l.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        if all.contains_key(name) {
            v.push(name.to_string());
        }
        v
    };
    let mut approved: BTreeSet<String> = if all.contains_key("BB_ENV_PASSTHROUGH") {
        listed("BB_ENV_PASSTHROUGH").into_iter().collect()
    } else {
        ["BBPATH", "BB_PRESERVE_ENV", "BB_ENV_PASSTHROUGH_ADDITIONS"]
            .into_iter()
            .chain(AUTO_EXPORT)
            .map(str::to_string)
            .collect()
    };
    approved.extend(listed("BB_ENV_PASSTHROUGH_ADDITIONS"));
    all.into_iter()
        .filter(|(k, _)| approved.contains(k))
        .collect()
}

/// The parsed base configuration, shared by every recipe.
pub(crate) struct BaseConfig {
    pub(crate) data: Arc<DataStore>,
    pub(crate) inputs: Vec<Input>,
    pub(crate) diags: Vec<Diagnostic>,
    pub(crate) layers: Vec<Layer>,
}

fn internal(file: &Arc<Path>, op: &'static str, detail: &str) -> Option<HistoryEntry> {
    Some(HistoryEntry {
        file: file.clone(),
        line: 0,
        op: Cow::Borrowed(op),
        flag: None,
        detail: Arc::from(detail),
    })
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_alphanumeric() || c == '_' {
            out.push(c);
        } else {
            out.push('\\');
            out.push(c);
        }
    }
    out
}

/// BitBake's `expandVarref`: replace the literal `${var}` with its current
/// value everywhere in the datastore (used for `LAYERDIR`, which changes
/// from layer to layer).
fn expand_varref(ds: &mut DataStore, var: &str) {
    let Some(value) = ds.content_parsing(var) else {
        return;
    };
    let needle = format!("${{{var}}}");
    for key in ds.local_keys() {
        if &*key == var {
            continue;
        }
        let touches = ds.local_vars().get(&key).is_some_and(|e| {
            e.content.as_deref().is_some_and(|c| c.contains(&needle))
                || e.appends
                    .iter()
                    .chain(&e.prepends)
                    .any(|(v, _)| v.contains(&needle))
        });
        if !touches {
            continue;
        }
        let e = ds.entry_mut(&key);
        if let Some(c) = &e.content {
            if c.contains(&needle) {
                e.content = Some(Arc::from(c.replace(&needle, &value)));
            }
        }
        for (v, _) in e.appends.iter_mut().chain(e.prepends.iter_mut()) {
            if v.contains(&needle) {
                *v = Arc::from(v.replace(&needle, &value));
            }
        }
    }
}

/// How many times BitBake's cooker parses the configuration again for a
/// `ConfigParsed` handler that sets `BB_INVALIDCONF` before it gives up.
const MAX_CONFIG_REPARSES: u32 = 20;

/// Parse the base configuration, fire `ConfigParsed`, then
/// `MultiConfigParsed`. As BitBake's
/// cooker does, while a handler has set `BB_INVALIDCONF` to `True` (it
/// changed configuration files, as sanity.bbclass does when it updates
/// them), the configuration is parsed again from the files, and the event
/// fired again, at most [`MAX_CONFIG_REPARSES`] times.
pub(crate) fn base_config(env: &Env<'_>, input: &ConfInput) -> BaseConfig {
    let bblayers_path = input.topdir.join("conf").join("bblayers.conf");
    let (mut ev, mut layers) = parse_configuration(env, input);
    let mut reparses = 0;
    while ev.config_parsed() {
        if reparses == MAX_CONFIG_REPARSES {
            ev.error(
                &bblayers_path,
                0,
                format!(
                    "the configuration has been parsed again {MAX_CONFIG_REPARSES} times: too deep a re-parse loop; check where BB_INVALIDCONF is set (ConfigParsed event handlers)"
                ),
            );
            break;
        }
        reparses += 1;
        tracing::info!(
            reparses,
            "BB_INVALIDCONF set by a ConfigParsed handler: parsing the configuration again"
        );
        env.forget_files();
        (ev, layers) = parse_configuration(env, input);
    }
    // Then, every configuration parsed (bitzel parses the default one
    // only), BitBake fires MultiConfigParsed with `mcdata = {'': d}`.
    let _ = ev.fire_event("MultiConfigParsed", None, None);
    // BitBake renames the configuration's `__depends` to `__base_depends`,
    // the start of every recipe's `BBINCLUDED`.
    let marked = crate::finalvars::marked_files(&ev.inputs, env.cwd());
    ev.ds.set_var(
        crate::finalvars::BASE_DEPENDS_VAR,
        Arc::from(marked.join(" ")),
        None,
    );
    let diags = std::mem::take(&mut ev.diags);
    let inputs = std::mem::take(&mut ev.inputs);
    BaseConfig {
        data: ev.ds.freeze(),
        inputs,
        diags,
        layers,
    }
}

/// The configuration files parsed, as BitBake's `parseConfigurationFiles`:
/// `bblayers.conf` and each layer's `layer.conf` (when there is a
/// `bblayers.conf`), `bitbake.conf` through `BBPATH`, then `base` and
/// `INHERIT`.
fn parse_configuration<'e>(env: &'e Env<'e>, input: &ConfInput) -> (Eval<'e>, Vec<Layer>) {
    let conf_dir = input.topdir.join("conf");
    let bblayers_path = conf_dir.join("bblayers.conf");
    if let Some(text) = &input.bblayers_conf {
        env.preload(&bblayers_path, text);
    }
    if let Some(text) = &input.local_conf {
        env.preload(&conf_dir.join("local.conf"), text);
    }
    let env_file: Arc<Path> = Arc::from(Path::new("[environment]"));
    let bitzel_file: Arc<Path> = Arc::from(Path::new("[bitzel]"));

    let mut ev = Eval::new(env, DataStore::new(), "global");
    for (k, v) in &input.env {
        ev.ds
            .set_var(k, Arc::from(v.as_str()), internal(&env_file, "from env", v));
        if AUTO_EXPORT.contains(&k.as_str()) {
            ev.ds.set_var_flag(k, "export", Arc::from("1"), None);
        }
    }
    // BitBake's cooker names the configuration being parsed (the default
    // one, the only one bitzel parses: "default", or "" in newer BitBake)
    // before reading any file.
    let mc = crate::python::python_host()
        .and_then(|p| p.default_config_name())
        .unwrap_or_else(|| "default".to_string());
    ev.ds.set_var(
        "BB_CURRENT_MC",
        Arc::from(mc.as_str()),
        internal(&bitzel_file, "set", &mc),
    );
    // TOPDIR is the directory holding conf/bblayers.conf; without one, as
    // the environment gives it, else the build directory.
    if input.bblayers_conf.is_some() || !ev.ds.contains("TOPDIR") {
        let topdir = input.topdir.to_string_lossy();
        ev.ds.set_var(
            "TOPDIR",
            Arc::from(topdir.as_ref()),
            internal(&bitzel_file, "set", &topdir),
        );
    }
    let layers = if input.bblayers_conf.is_some() {
        parse_layers(&mut ev, &bblayers_path)
    } else {
        Vec::new()
    };

    // Where errors about BBPATH point: bblayers.conf, else the environment.
    let at = if input.bblayers_conf.is_some() {
        bblayers_path.as_path()
    } else {
        &*env_file
    };
    if ev.ds.get_var("BBPATH").unwrap_or_default().is_empty() {
        let why = if input.bblayers_conf.is_some() {
            "the BBPATH variable is not set: each layer's conf/layer.conf should add its directory to BBPATH"
        } else {
            "the BBPATH variable is not set and there is no conf/bblayers.conf: set BBPATH in the environment (and BB_ENV_PASSTHROUGH_ADDITIONS for other variables), or use a build directory that has a conf/bblayers.conf"
        };
        // BitBake stops here (bb.fatal): nothing else can be found.
        ev.error(at, 0, why);
    } else {
        load_base_files(&mut ev, at, &layers);
    }
    (ev, layers)
}

/// `bblayers.conf`, then each layer's `layer.conf` with `LAYERDIR` set, the
/// `BBFILES_DYNAMIC` entries and the collections' checks: the layers.
fn parse_layers(ev: &mut Eval<'_>, bblayers_path: &Path) -> Vec<Layer> {
    let env = ev.env;
    if let Err(e) = ev.eval_file(bblayers_path) {
        ev.error(bblayers_path, 0, format!("cannot read: {e}"));
    }

    let mut layers = Vec::new();
    let layer_list: Vec<String> = match ev.ds.try_get_var("BBLAYERS") {
        Ok(v) => v
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect(),
        Err(e) => {
            ev.expand_error(bblayers_path, 0, &e);
            Vec::new()
        }
    };
    if layer_list.is_empty() {
        ev.error(
            bblayers_path,
            0,
            "the bblayers.conf file doesn't contain any BBLAYERS definition: list the layer directories in BBLAYERS",
        );
    }
    let mut layer_collections: Vec<(PathBuf, Vec<String>)> = Vec::new();
    for layer in &layer_list {
        let layer = layer.trim_end_matches('/');
        let lpath = PathBuf::from(layer);
        if !env.loader.is_dir(&lpath) {
            ev.error(
                bblayers_path,
                0,
                format!("layer directory {layer} (in BBLAYERS) does not exist: fix the path or remove it"),
            );
            continue;
        }
        let before: Vec<String> = collections(&ev.ds);
        ev.ds.set_var("LAYERDIR", Arc::from(layer), None);
        ev.ds
            .set_var("LAYERDIR_RE", Arc::from(regex_escape(layer)), None);
        let conf = lpath.join("conf").join("layer.conf");
        match ev.eval_file(&conf) {
            Ok(true) => {}
            Ok(false) => ev.error(
                &conf,
                0,
                format!("layer {layer} has no conf/layer.conf: every layer in BBLAYERS needs one"),
            ),
            Err(e) => ev.error(&conf, 0, format!("cannot read: {e}")),
        }
        expand_varref(&mut ev.ds, "LAYERDIR");
        expand_varref(&mut ev.ds, "LAYERDIR_RE");
        let after = collections(&ev.ds);
        let new: Vec<String> = after.into_iter().filter(|c| !before.contains(c)).collect();
        layer_collections.push((lpath, new));
    }
    ev.ds.del_var("LAYERDIR_RE", None);
    ev.ds.del_var("LAYERDIR", None);

    // BBFILES_DYNAMIC: "collection:pattern" entries active when the
    // collection is (or with `!`, is not) present.
    let colls = collections(&ev.ds);
    let dynamic = ev.ds.get_var("BBFILES_DYNAMIC").unwrap_or_default();
    for entry in dynamic.split_whitespace() {
        match entry.split_once(':') {
            Some((l, f)) => {
                let (invert, l) = match l.strip_prefix('!') {
                    Some(rest) => (true, rest),
                    None => (false, l),
                };
                if colls.iter().any(|c| c == l) != invert {
                    let cur = ev
                        .ds
                        .content_parsing("BBFILES")
                        .unwrap_or_else(|| Arc::from(""));
                    ev.ds
                        .set_var("BBFILES", Arc::from(format!("{cur} {f}")), None);
                }
            }
            None => ev.error(
                bblayers_path,
                0,
                format!("BBFILES_DYNAMIC entry `{entry}` is invalid: write collection:filepattern"),
            ),
        }
    }

    let series: BTreeSet<String> = ev
        .ds
        .get_var("LAYERSERIES_CORENAMES")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let mut seen = BTreeSet::new();
    for (lpath, cs) in &layer_collections {
        let conf = lpath.join("conf").join("layer.conf");
        for c in cs {
            if !seen.insert(c.clone()) {
                ev.error(&conf, 0, format!("duplicated BBFILE_COLLECTIONS entry `{c}`: check bblayers.conf and layer.conf"));
            }
            let compat: Vec<String> = words(&ev.ds, &format!("LAYERSERIES_COMPAT_{c}"));
            if !compat.is_empty() && series.is_empty() {
                ev.diag(
                    Severity::Warning,
                    &conf,
                    0,
                    format!("no core layer found to work with layer `{c}` (LAYERSERIES_CORENAMES is unset)"),
                );
            } else if !compat.is_empty() && !compat.iter().any(|s| series.contains(s)) {
                ev.error(
                    &conf,
                    0,
                    format!(
                        "layer {c} is not compatible with the core layer which only supports these series: {} (layer is compatible with {})",
                        series.iter().cloned().collect::<Vec<_>>().join(" "),
                        compat.join(" ")
                    ),
                );
            } else if compat.is_empty() {
                ev.diag(
                    Severity::Warning,
                    &conf,
                    0,
                    format!("layer {c} should set LAYERSERIES_COMPAT_{c} in its conf/layer.conf file to list the core layer names it is compatible with"),
                );
            }
            let priority = ev
                .ds
                .get_var(&format!("BBFILE_PRIORITY_{c}"))
                .and_then(|p| p.trim().parse::<i32>().ok())
                .unwrap_or(0);
            layers.push(Layer {
                path: lpath.clone(),
                collection: c.clone(),
                priority,
                pattern: ev
                    .ds
                    .get_var(&format!("BBFILE_PATTERN_{c}"))
                    .unwrap_or_default(),
                depends: crate::layerdeps::explode_dep_versions2(
                    &ev.ds
                        .get_var(&format!("LAYERDEPENDS_{c}"))
                        .unwrap_or_default(),
                )
                .map(|d| d.into_iter().map(|(name, _)| name).collect())
                .unwrap_or_default(),
                series_compat: compat,
            });
        }
        if cs.is_empty() {
            layers.push(Layer {
                path: lpath.clone(),
                collection: String::new(),
                priority: 0,
                pattern: String::new(),
                depends: Vec::new(),
                series_compat: Vec::new(),
            });
        }
    }
    if !series.is_empty() {
        let v = series.iter().cloned().collect::<Vec<_>>().join(" ");
        ev.ds.set_var("LAYERSERIES_CORENAMES", Arc::from(v), None);
    }
    layers
}

/// `conf/bitbake.conf` found along `BBPATH`, then the `base` class and
/// `INHERIT`'s, then the `LAYERDEPENDS` check.
fn load_base_files(ev: &mut Eval<'_>, at: &Path, layers: &[Layer]) {
    let bbpath: Vec<String> = ev
        .ds
        .get_var("BBPATH")
        .unwrap_or_default()
        .split(':')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    match ev.which(&bbpath, "conf/bitbake.conf") {
        Some(p) => {
            if let Err(e) = ev.eval_file(&p) {
                ev.error(&p, 0, format!("cannot read: {e}"));
            }
        }
        None => ev.error(
            at,
            0,
            "conf/bitbake.conf not found in BBPATH: one layer (the core layer) must provide it",
        ),
    }

    // INHERIT classes, base first.
    let inherit = ev.ds.get_var("INHERIT").unwrap_or_default();
    let conf_marker: Arc<Path> = Arc::from(Path::new("configuration INHERITs"));
    for class in std::iter::once("base").chain(inherit.split_whitespace()) {
        ev.inherit(class, &conf_marker, 0, false);
    }
    // BitBake's parseConfigurationFiles ends by setting BBINCLUDED to the
    // files marked so far (a recipe's finalisation sets its own).
    let marked = crate::finalvars::marked_files(&ev.inputs, ev.env.cwd());
    ev.ds
        .set_var("BBINCLUDED", Arc::from(marked.join(" ")), None);
    crate::layerdeps::check_layer_depends(ev, layers);
}

fn collections(ds: &DataStore) -> Vec<String> {
    words(ds, "BBFILE_COLLECTIONS")
}

fn words(ds: &DataStore, var: &str) -> Vec<String> {
    ds.get_var(var)
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Expand one `BBFILES` entry into the matching files (sorted).
fn glob_files(loader: &dyn Loader, pattern: &str) -> Vec<PathBuf> {
    let p = Path::new(pattern);
    if !has_glob(pattern) {
        if loader.is_dir(p) {
            let mut out = Vec::new();
            walk_bb(loader, p, &mut out, 0);
            return out;
        }
        let exists = p
            .parent()
            .and_then(|d| loader.list_dir(d).ok())
            .is_some_and(|l| l.iter().any(|e| e == p));
        return if exists {
            vec![p.to_path_buf()]
        } else {
            Vec::new()
        };
    }
    let mut current: Vec<PathBuf> = vec![PathBuf::new()];
    let comps: Vec<_> = p.components().collect();
    let n = comps.len();
    for (idx, comp) in comps.iter().enumerate() {
        let s = comp.as_os_str().to_string_lossy();
        let last = idx + 1 == n;
        let mut next = Vec::new();
        if has_glob(&s) {
            for dir in &current {
                let Ok(entries) = loader.list_dir(dir) else {
                    continue;
                };
                for e in entries {
                    let name = e
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    if glob_component(&s, &name) && (last || loader.is_dir(&e)) {
                        next.push(e);
                    }
                }
            }
        } else {
            for dir in &current {
                let cand = dir.join(comp.as_os_str());
                if last {
                    let exists = loader.list_dir(dir).ok().is_some_and(|l| l.contains(&cand));
                    if exists {
                        next.push(cand);
                    }
                } else {
                    next.push(cand);
                }
            }
        }
        current = next;
        if current.is_empty() {
            break;
        }
    }
    current.sort();
    current
}

fn walk_bb(loader: &dyn Loader, dir: &Path, out: &mut Vec<PathBuf>, depth: u32) {
    if depth > 32 {
        return;
    }
    let Ok(entries) = loader.list_dir(dir) else {
        return;
    };
    for e in entries {
        if loader.is_dir(&e) {
            walk_bb(loader, &e, out, depth + 1);
        } else if e.extension().is_some_and(|x| x == "bb" || x == "bbappend") {
            out.push(e);
        }
    }
}

/// The recipes and appends selected by `BBFILES` and `BBMASK`.
pub(crate) fn collect_bbfiles(
    loader: &dyn Loader,
    config: &DataStore,
    diags: &mut Vec<Diagnostic>,
) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let bbfiles = config.get_var("BBFILES").unwrap_or_default();
    let mut seen = BTreeSet::new();
    let mut found = Vec::new();
    for entry in bbfiles.split_whitespace() {
        for f in glob_files(loader, entry) {
            if seen.insert(f.clone()) {
                found.push(f);
            }
        }
    }
    let mask = config.get_var("BBMASK").unwrap_or_default();
    let masks: Vec<Regex> = mask
        .split_whitespace()
        .filter_map(|m| match Regex::new(m) {
            Ok(r) => Some(r),
            Err(e) => {
                diags.push(Diagnostic::new(
                    Severity::Warning,
                    Path::new("BBMASK"),
                    0,
                    0,
                    format!(
                        "BBMASK entry `{m}` is not a supported regular expression ({}); ignored",
                        e.0
                    ),
                    None,
                ));
                None
            }
        })
        .collect();
    let mut recipes = Vec::new();
    let mut appends = Vec::new();
    for f in found {
        let s = f.to_string_lossy();
        if masks.iter().any(|m| m.search(&s)) {
            continue;
        }
        match f.extension().and_then(|e| e.to_str()) {
            Some("bb") => recipes.push(f),
            Some("bbappend") => appends.push(f),
            _ => {}
        }
    }
    (recipes, appends)
}

/// `.bbappend` files for a recipe: same base name, or `%` matching the
/// rest of the name (manual: "Append Files").
pub(crate) fn appends_for<'a>(recipe: &Path, appends: &'a [PathBuf]) -> Vec<&'a PathBuf> {
    let name = recipe
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    appends
        .iter()
        .filter(|a| {
            let an = a
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let base = an
                .strip_suffix(".bbappend")
                .map(|b| format!("{b}.bb"))
                .unwrap_or_default();
            if base == name {
                return true;
            }
            match base.find('%') {
                Some(i) => name.starts_with(&base[..i]),
                None => false,
            }
        })
        .collect()
}

/// `(PN, PV, PR)` from a file name `pn_pv_pr.bb` (BitBake's
/// `vars_from_file`).
pub(crate) fn vars_from_file(
    file: &Path,
) -> Result<(String, Option<String>, Option<String>), String> {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parts: Vec<&str> = stem.split('_').collect();
    if parts.len() > 3 {
        return Err(
            "unable to generate default variables from filename (too many underscores)".into(),
        );
    }
    Ok((
        parts[0].to_string(),
        parts.get(1).map(|s| s.to_string()),
        parts.get(2).map(|s| s.to_string()),
    ))
}

struct Collection {
    name: String,
    priority: i32,
    regex: Option<Regex>,
}

fn layer_of(colls: &[Collection], file: &Path) -> String {
    let s = file.to_string_lossy();
    colls
        .iter()
        .find(|c| c.regex.as_ref().is_some_and(|r| r.is_match_start(&s)))
        .map(|c| c.name.clone())
        .unwrap_or_default()
}

/// Parse one recipe file into its datastores (the recipe and each
/// `BBCLASSEXTEND` variant).
pub(crate) fn parse_recipe(
    env: &Env<'_>,
    base: &BaseConfig,
    file: &Path,
    appends: &[&PathBuf],
    layer: &str,
) -> (Vec<Recipe>, Vec<Diagnostic>, Vec<Input>) {
    let farc: Arc<Path> = Arc::from(file);
    let mut ev = Eval::new(env, DataStore::layered(base.data.clone()), "recipe");
    // BitBake's cooker sets it to the recipe's collection, None (no value)
    // for a recipe no collection takes (a build directory without layers).
    if !layer.is_empty() {
        ev.ds.set_var("FILE_LAYERNAME", Arc::from(layer), None);
    }
    // As the cooker of a BitBake that has it: the recipe file, unchanged
    // while its bbappends, includes and classes are read (FILE follows
    // the file being read).
    if crate::python::python_host().is_some_and(|p| p.sets_recipe_file()) {
        let f = file.to_string_lossy();
        ev.ds
            .set_var("__BB_RECIPE_FILE", Arc::from(f.as_ref()), None);
    }
    if !appends.is_empty() {
        let v: Vec<String> = appends
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        ev.ds.set_var("__BBAPPEND", Arc::from(v.join(" ")), None);
    }
    // BitBake derives PN/PV/PR from the file name (in OE through
    // bitbake.conf); bitzel provides them as weak defaults so that metadata
    // that sets them itself wins.
    match vars_from_file(file) {
        Ok((pn, pv, pr)) => {
            let fs = file.to_string_lossy();
            for (var, val) in [("PN", Some(pn)), ("PV", pv), ("PR", pr)] {
                if let Some(val) = val {
                    let h = Some(HistoryEntry {
                        file: farc.clone(),
                        line: 0,
                        op: Cow::Borrowed("set from file name"),
                        flag: None,
                        detail: Arc::from(val.as_str()),
                    });
                    ev.ds
                        .set_var_flag(var, "_defaultval", Arc::from(val.as_str()), h);
                }
            }
            let _ = fs;
        }
        Err(m) => ev.error(file, 0, m),
    }
    match ev.eval_file(file) {
        Ok(true) => {}
        Ok(false) => ev.error(file, 0, "recipe file not found"),
        Err(e) => ev.error(file, 0, format!("cannot read: {e}")),
    }
    for a in appends {
        match ev.eval_file(a) {
            Ok(true) => {}
            Ok(false) => ev.error(a, 0, "append file not found"),
            Err(e) => ev.error(a, 0, format!("cannot read: {e}")),
        }
    }
    let mut out = Vec::new();
    let mut diags = Vec::new();
    let mut all_inputs: Vec<Input> = Vec::new();
    let mut inputs_prefix: Vec<PathBuf> = base
        .inputs
        .iter()
        .filter(|i| i.1.is_some())
        .map(|i| i.0.clone())
        .collect();
    let appends_v: Vec<PathBuf> = appends.iter().map(|a| (*a).clone()).collect();

    let mut finish = |mut ev: Eval<'_>, variant: Option<String>, skip: Option<String>| {
        if let Some(reason) = skip {
            ev.ds
                .set_var(crate::anon::SKIP_VAR, Arc::from(reason.as_str()), None);
        }
        let mut inputs = inputs_prefix.clone();
        inputs.extend(
            ev.inputs
                .iter()
                .filter(|i| i.1.is_some())
                .map(|i| i.0.clone()),
        );
        for i in &ev.inputs {
            if !all_inputs.iter().any(|x| x.0 == i.0) {
                all_inputs.push(i.clone());
            }
        }
        let get = |ev: &mut Eval<'_>, v: &str| match ev.ds.try_get_var(v) {
            Ok(x) => x.unwrap_or_default(),
            Err(e) => {
                ev.expand_error(file, 0, &e);
                String::new()
            }
        };
        let pn = get(&mut ev, "PN");
        let pv = get(&mut ev, "PV");
        let pr = get(&mut ev, "PR");
        diags.append(&mut ev.diags);
        out.push(Recipe {
            file: file.to_path_buf(),
            variant,
            layer: layer.to_string(),
            pn,
            pv,
            pr,
            skip: ev
                .ds
                .content_parsing(crate::anon::SKIP_VAR)
                .map(|s| s.to_string()),
            data: ev.ds,
            inputs,
            appends: appends_v.clone(),
        });
    };

    for (e, variant, skip) in finalize_variants(ev, &farc) {
        finish(e, variant, skip);
    }
    inputs_prefix.clear();
    (out, diags, all_inputs)
}

/// BitBake's `multi_finalize`: [`split_variants`], then each datastore
/// finalised ([`Eval::finalize`], which returns the skip reason), the
/// recipe first. A variant starts from the files the recipe marked as
/// dependencies during its own finalisation too: BitBake's variants share
/// the recipe's `__depends` list object, which the recipe's finalisation
/// (its deferred inherits) has grown by then.
pub(crate) fn finalize_variants<'e>(
    ev: Eval<'e>,
    farc: &Arc<Path>,
) -> Vec<(Eval<'e>, Option<String>, Option<String>)> {
    let mut base_marked: Option<Vec<crate::eval::Input>> = None;
    let mut out = Vec::new();
    for (mut e, variant) in split_variants(ev, farc) {
        if variant.is_some() {
            if let Some(m) = &base_marked {
                e.inputs = m.clone();
            }
        }
        let skip = e.finalize(farc);
        if variant.is_none() {
            base_marked = Some(e.inputs.clone());
        }
        out.push((e, variant, skip));
    }
    out
}

/// BitBake's `multi_finalize` split of a parsed, not yet finalised recipe:
/// the recipe itself (variant `None`) and, for each `BBCLASSEXTEND` word,
/// an evaluator over the frozen recipe with `PN` (or `BBEXTENDCURR`/
/// `BBEXTENDVARIANT` for `class:variant`) set and the class queued as a
/// deferred inherit, named by the word.
pub(crate) fn split_variants<'e>(
    ev: Eval<'e>,
    farc: &Arc<Path>,
) -> Vec<(Eval<'e>, Option<String>)> {
    let extend = ev.ds.get_var("BBCLASSEXTEND").unwrap_or_default();
    let variants: Vec<String> = extend.split_whitespace().map(str::to_string).collect();
    if variants.is_empty() {
        return vec![(ev, None)];
    }
    let pn = ev.ds.get_var("PN").unwrap_or_default();
    let Eval {
        env: e_env,
        ds,
        diags: d0,
        inputs: i0,
        classtype,
        deferred,
        ..
    } = ev;
    let frozen = ds.freeze();
    let mk = |d: Vec<Diagnostic>| {
        let mut e = Eval::new(e_env, DataStore::layered(frozen.clone()), classtype);
        e.inputs = i0.clone();
        e.deferred = deferred.clone();
        e.diags = d;
        e
    };
    let mut out = vec![(mk(d0), None)];
    for v in variants {
        let mut e = mk(Vec::new());
        let (ext, var) = match v.split_once(':') {
            Some((a, b)) => (a.to_string(), Some(b.to_string())),
            None => (v.clone(), None),
        };
        match &var {
            Some(vv) => {
                e.ds.set_var("BBEXTENDCURR", Arc::from(ext.as_str()), None);
                e.ds.set_var("BBEXTENDVARIANT", Arc::from(vv.as_str()), None);
            }
            None => {
                let newpn: Arc<str> = Arc::from(format!("{pn}-{v}"));
                let h = Some(HistoryEntry {
                    file: farc.clone(),
                    line: 0,
                    op: Cow::Borrowed("set (BBCLASSEXTEND)"),
                    flag: None,
                    detail: newpn.clone(),
                });
                e.ds.set_var("PN", newpn, h);
            }
        }
        e.deferred.push((Arc::from(ext.as_str()), farc.clone(), 0));
        out.push((e, Some(v)));
    }
    out
}

/// BitBake's `show_appends_with_no_recipes`: `.bbappend` files that no
/// recipe takes (recipes an anonymous function skips still take theirs) are
/// an error, listed in one message worded as BitBake's. A true
/// `BB_DANGLINGAPPENDS_WARNONLY` (`1`/`yes`/`true`, read unexpanded, as
/// BitBake up to 2.10 did; 2.12 dropped the variable) makes it a warning.
fn dangling_appends(config: &DataStore, dangling: &[&PathBuf]) -> Diagnostic {
    let warn_only = config
        .get_var_unexpanded("BB_DANGLINGAPPENDS_WARNONLY")
        .is_some_and(|v| matches!(v.to_lowercase().as_str(), "1" | "yes" | "true"));
    let mut message = String::from("No recipes in default available for:");
    for a in dangling {
        message.push_str("\n  ");
        message.push_str(&a.to_string_lossy());
    }
    let severity = if warn_only {
        Severity::Warning
    } else {
        message.push_str(
            "\nupdate or remove these .bbappend files (or mask them with BBMASK) so that each matches a recipe",
        );
        Severity::Error
    };
    Diagnostic::new(severity, Path::new("BBFILES"), 0, 0, message, None)
}

/// How this process goes through the recipe files.
enum Plan {
    /// Every file here (entries the cache has read from it).
    All,
    /// A parser process: the files its source hands out, into the cache.
    Worker(Arc<dyn crate::ParseSource>),
    /// With parser processes: the files the cache has, and the missing
    /// ones this process takes from `queue`; then, once the parsers are
    /// done (`wait`), the ones they took, read from the cache (or parsed
    /// here, if a parser failed).
    Shared {
        cached: Vec<usize>,
        queue: Arc<crate::ParseQueue>,
        wait: Box<dyn FnOnce() + Send>,
    },
}

fn plan(
    loader: &dyn Loader,
    jobs: &[(PathBuf, Vec<&PathBuf>, String)],
    cache: Option<&cache::ParseCache>,
    opts: &ParseOptions,
) -> Plan {
    if let Some(source) = &opts.shard {
        return Plan::Worker(source.clone());
    }
    let count = opts.parsers.as_ref().map_or(1, |p| p.count());
    // Counting misses opens every entry: only a sharded parse pays for it.
    let (Some(cache), Some(parsers)) = (cache, opts.parsers.as_ref().filter(|_| count > 1)) else {
        return Plan::All;
    };
    let (cached, mut missing): (Vec<usize>, Vec<usize>) = (0..jobs.len()).partition(|&i| {
        let (file, apps, layer) = &jobs[i];
        cache.has_current_entry(file, apps, layer)
    });
    if missing.len() < crate::MIN_SHARDED_MISSES {
        return Plan::All;
    }
    tracing::info!(
        missing = missing.len(),
        count,
        "parse cache misses: parsing in {count} processes"
    );
    // Stable: files of equal cost keep BBFILES order.
    missing.sort_by_cached_key(|&i| std::cmp::Reverse(likely_cost(loader, &jobs[i].0)));
    let queue = Arc::new(crate::ParseQueue::new(
        missing.iter().map(|&i| jobs[i].0.clone()).collect(),
    ));
    let wait = parsers.start(count, queue.clone());
    Plan::Shared {
        cached,
        queue,
        wait,
    }
}

/// A recipe file's likely parse cost, to hand the costliest out first: one
/// whose `BBCLASSEXTEND` is computed (poky's core-image-ptest makes 109
/// variants so, and takes 2–3 s) above one that lists variants, above the
/// rest. A guess from the text; a wrong one costs only balance.
fn likely_cost(loader: &dyn Loader, file: &Path) -> u8 {
    let Ok(Some(text)) = loader.read(file) else {
        return 0;
    };
    text.lines()
        .filter(|l| l.trim_start().starts_with("BBCLASSEXTEND"))
        .map(|l| if l.contains("${@") { 2 } else { 1 })
        .max()
        .unwrap_or(0)
}

/// Load the configuration and every recipe.
pub fn load_workspace(
    input: &ConfInput,
    loader: &dyn Loader,
    opts: &ParseOptions,
) -> Result<Workspace, MetaError> {
    let env = Env::in_dir(loader, &input.topdir);
    let base = base_config(&env, input);
    if base.diags.iter().any(Diagnostic::is_error) {
        return Err(MetaError::Config {
            diagnostics: base.diags,
        });
    }
    let mut diags = base.diags.clone();
    let (recipes, appends) = collect_bbfiles(loader, &base.data, &mut diags);

    let mut colls: Vec<Collection> = base
        .layers
        .iter()
        .filter(|l| !l.collection.is_empty())
        .map(|l| Collection {
            name: l.collection.clone(),
            priority: l.priority,
            regex: match Regex::new(&l.pattern) {
                _ if l.pattern.is_empty() => None,
                Ok(r) => Some(r),
                Err(e) => {
                    diags.push(Diagnostic::new(
                        Severity::Warning,
                        &l.path.join("conf/layer.conf"),
                        0,
                        0,
                        format!(
                            "BBFILE_PATTERN_{} `{}` is not a supported regular expression ({}); recipes will not be attributed to it",
                            l.collection, l.pattern, e.0
                        ),
                        None,
                    ));
                    None
                }
            },
        })
        .collect();
    colls.sort_by_key(|c| std::cmp::Reverse(c.priority));

    // Appends that match no recipe are reported as BitBake does.
    let mut used: BTreeSet<&PathBuf> = BTreeSet::new();
    let jobs: Vec<(PathBuf, Vec<&PathBuf>, String)> = recipes
        .iter()
        .map(|r| {
            let a = appends_for(r, &appends);
            used.extend(a.iter().copied());
            (r.clone(), a, layer_of(&colls, r))
        })
        .collect();
    let dangling: Vec<&PathBuf> = appends.iter().filter(|a| !used.contains(a)).collect();
    if !dangling.is_empty() {
        diags.push(dangling_appends(&base.data, &dangling));
    }

    let cache = opts
        .cache_dir
        .as_ref()
        .map(|d| cache::ParseCache::open(d, &base));
    let live = cache.as_ref().and_then(|c| c.as_ref().ok());
    let parse_one = |(file, apps, layer): &(PathBuf, Vec<&PathBuf>, String)| {
        if let Some(c) = live {
            if let Some(hit) = c.lookup(&env, &base, file, apps, layer) {
                return hit;
            }
        }
        let started = std::time::Instant::now();
        let (rs, ds, inputs) = parse_recipe(&env, &base, file, apps, layer);
        tracing::debug!(file = %file.display(), variants = rs.len(), ms = started.elapsed().as_millis() as u64, "parsed");
        let r = (rs, ds);
        let Some(c) = live else { return r };
        if let Err(e) = c.store(&base, file, apps, layer, &inputs, &r) {
            tracing::warn!(error = %e, "cannot write the parse cache");
            return r;
        }
        // A parser process keeps nothing: its parent reads the entries.
        if opts.shard.is_some() {
            return (Vec::new(), Vec::new());
        }
        // The entry just written, read back as a warm parse reads it:
        // its strings shared with every other recipe's and its datastores
        // decoded when used, where the parsed ones hold their own copies
        // (a cold parse of poky held 1.3 GB here against 0.4 GB warm).
        c.lookup(&env, &base, file, apps, layer).unwrap_or(r)
    };
    let by_file: HashMap<&Path, usize> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (j.0.as_path(), i))
        .collect();
    let job_of = |f: &Path| {
        let i = by_file.get(f).copied();
        if i.is_none() {
            tracing::warn!(file = %f.display(), "a parser process was handed a file this configuration does not list");
        }
        i.map(|i| &jobs[i])
    };
    let plan = plan(loader, &jobs, live, opts);
    let run = || match plan {
        Plan::All => jobs.par_iter().map(parse_one).collect::<Vec<_>>(),
        Plan::Worker(source) => {
            std::iter::from_fn(|| source.next_file())
                .filter_map(|f| job_of(&f).map(parse_one))
                .for_each(drop);
            Vec::new()
        }
        Plan::Shared {
            cached,
            queue,
            wait,
        } => {
            let mut out: Vec<_> = std::iter::from_fn(|| queue.take())
                .par_bridge()
                .filter_map(|i| job_of(queue.file(i)).map(parse_one))
                .collect();
            out.extend(
                cached
                    .par_iter()
                    .map(|&i| parse_one(&jobs[i]))
                    .collect::<Vec<_>>(),
            );
            wait();
            let theirs = queue.handed_out();
            out.extend(
                theirs
                    .par_iter()
                    .filter_map(|f| job_of(f).map(parse_one))
                    .collect::<Vec<_>>(),
            );
            out
        }
    };
    let results = match opts.jobs {
        Some(n) => match rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build()
        {
            Ok(pool) => pool.install(run),
            Err(_) => run(),
        },
        None => run(),
    };
    if let Some(Err(e)) = cache.as_ref() {
        diags.push(Diagnostic::new(
            Severity::Warning,
            Path::new("parse cache"),
            0,
            0,
            e.to_string(),
            None,
        ));
    }
    let mut all = Vec::new();
    for (rs, ds) in results {
        all.extend(rs);
        diags.extend(ds);
    }
    all.sort_by(|a, b| (&a.file, &a.variant).cmp(&(&b.file, &b.variant)));
    let (skipped, all): (Vec<Recipe>, Vec<Recipe>) =
        all.into_iter().partition(|r| r.skipped().is_some());
    let uniq: BTreeMap<(PathBuf, u32, u32, String, Severity), Diagnostic> = diags
        .into_iter()
        .map(|d| {
            (
                (d.file.clone(), d.line, d.col, d.message.clone(), d.severity),
                d,
            )
        })
        .collect();
    Ok(Workspace {
        config: DataStore::layered(base.data.clone()),
        recipes: all,
        diagnostics: uniq.into_values().collect(),
        layers: base.layers.clone(),
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pn_pv_pr_from_name() {
        assert_eq!(
            vars_from_file(Path::new("/x/busybox_1.35.0.bb")).unwrap(),
            ("busybox".into(), Some("1.35.0".into()), None)
        );
        assert_eq!(
            vars_from_file(Path::new("a_1_r2.bb")).unwrap(),
            ("a".into(), Some("1".into()), Some("r2".into()))
        );
        assert!(vars_from_file(Path::new("a_1_2_3.bb")).is_err());
    }

    #[test]
    fn passthrough_env_as_bitbake_approves_variables() {
        let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let keys = |m: BTreeMap<String, String>| m.into_keys().collect::<Vec<_>>();
        let base = [
            ("BBPATH", "/l"),
            ("HOME", "/h"),
            ("TOPDIR", "/b"),
            ("X", "1"),
        ];
        assert_eq!(keys(passthrough_env(env(&base))), ["BBPATH", "HOME"]);
        let mut more = base.to_vec();
        more.push(("BB_ENV_PASSTHROUGH_ADDITIONS", "TOPDIR"));
        assert_eq!(
            keys(passthrough_env(env(&more))),
            ["BBPATH", "BB_ENV_PASSTHROUGH_ADDITIONS", "HOME", "TOPDIR"]
        );
        let mut only = base.to_vec();
        only.push(("BB_ENV_PASSTHROUGH", "X"));
        assert_eq!(
            keys(passthrough_env(env(&only))),
            ["BB_ENV_PASSTHROUGH", "X"]
        );
        let mut all = base.to_vec();
        all.push(("BB_PRESERVE_ENV", "1"));
        assert_eq!(passthrough_env(env(&all)).len(), 5);
    }

    #[test]
    fn append_matching() {
        let apps = vec![
            PathBuf::from("/l/busybox_1.35.0.bbappend"),
            PathBuf::from("/l/busybox_%.bbappend"),
            PathBuf::from("/l/busybox_1.3%.bbappend"),
            PathBuf::from("/l/other_%.bbappend"),
        ];
        let got = appends_for(Path::new("/r/busybox_1.35.0.bb"), &apps);
        assert_eq!(got.len(), 3);
        let got = appends_for(Path::new("/r/busybox_1.4.bb"), &apps);
        assert_eq!(got, vec![&apps[1]]);
    }
}
