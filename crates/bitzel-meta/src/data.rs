//! The datastore: variables, flags, the OVERRIDES mechanism and lazy `${...}`
//! expansion, following BitBake's data_smart semantics (manual: "Syntax and
//! Operators", in particular "Conditional Syntax (Overrides)", "Removal
//! (Override Style Syntax)" and "Inline Python Variable Expansion").
//!
//! Storage is copy-on-write: a datastore may sit on a frozen parent
//! (`Arc<DataStore>`); reading falls through to the parent, writing copies
//! the one variable into the local layer first. The base configuration is
//! parsed once and every recipe layers over it.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;

use hashbrown::{HashMap, HashSet};
use indexmap::IndexMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::localvars::{LocalVars, VarMap};
use crate::pyexpr::{self, PyContext};

/// One recorded operation on a variable (what `bitbake -e` prints in its
/// `# $VAR [N operations]` comment blocks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The file the operation came from.
    pub file: Arc<Path>,
    /// Its 1-based line (0 for operations bitzel makes itself).
    pub line: u32,
    /// BitBake's operation name: `set`, `set?`, `append`, `prepend`,
    /// `postdot`, `predot`, `immediate`, `:append`, `:remove[foo]`,
    /// `override[foo]:set`, `del`, `exported`, `rename from X`, ...
    pub op: Cow<'static, str>,
    /// The flag, for flag operations.
    pub flag: Option<Arc<str>>,
    /// The value as written.
    pub detail: Arc<str>,
}

/// An `:append`/`:prepend`/`:remove` entry: value and the override that
/// conditions it (`VAR:append:foo`).
pub(crate) type CondValue = (Arc<str>, Option<Arc<str>>);

/// Everything stored for one variable name.
#[derive(Debug, Clone, Default)]
pub(crate) struct VarEntry {
    pub(crate) content: Option<Arc<str>>,
    /// Weak default (`??=`), BitBake's `_defaultval`.
    pub(crate) default: Option<Arc<str>>,
    /// Flags, including BitBake's internal `_defaultval_flag_<f>`, in the
    /// order they were first set (a Python dict's order, which
    /// `getVarFlags` returns and metadata iterates).
    pub(crate) flags: IndexMap<Arc<str>, Arc<str>>,
    pub(crate) appends: Vec<CondValue>,
    pub(crate) prepends: Vec<CondValue>,
    pub(crate) removes: Vec<CondValue>,
    /// BitBake's `overridedata[var]`: (full variable name, override).
    pub(crate) overrides: Vec<(Arc<str>, Arc<str>)>,
    pub(crate) history: Vec<HistoryEntry>,
}

impl VarEntry {
    /// BitBake's "the variable's dict is non-empty".
    pub(crate) fn is_live(&self) -> bool {
        self.content.is_some()
            || self.default.is_some()
            || !self.flags.is_empty()
            || !self.appends.is_empty()
            || !self.prepends.is_empty()
            || !self.removes.is_empty()
    }

    fn clear_data(&mut self) {
        self.content = None;
        self.default = None;
        self.flags.clear();
        self.appends.clear();
        self.prepends.clear();
        self.removes.clear();
        self.overrides.clear();
    }
}

/// Why a value could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    /// `${A}` needs `${B}` which needs `${A}`.
    #[error("recursive variable expansion: {}; break the cycle", chain.join(" -> "))]
    Recursive {
        /// The variables in the cycle, first one repeated at the end.
        chain: Vec<String>,
    },
    /// Inline Python (`${@...}`) failed or is outside the supported subset.
    #[error("{}inline python `${{@{expr}}}`: {message}", var.as_ref().map(|v| format!("expanding {v}: ")).unwrap_or_default())]
    Python {
        /// The variable being expanded.
        var: Option<String>,
        /// The expression text.
        expr: String,
        /// What went wrong.
        message: String,
        /// Where the expression was written, when known.
        file: Option<Arc<Path>>,
        /// Its line.
        line: u32,
    },
    /// OVERRIDES does not reach a stable value.
    #[error("OVERRIDES could not be expanded into a stable state after 5 iterations: {0}")]
    UnstableOverrides(String),
}

/// The active override list (`OVERRIDES` split on `:`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Overrides {
    pub(crate) list: Vec<Arc<str>>,
    set: HashSet<Arc<str>>,
}

impl Overrides {
    fn from_value(v: Option<&str>) -> Overrides {
        let list: Vec<Arc<str>> = v.unwrap_or("").split(':').map(Arc::from).collect();
        let set = list.iter().cloned().collect();
        Overrides { list, set }
    }

    fn contains(&self, o: &str) -> bool {
        self.set.contains(o)
    }

    /// All `:`-separated parts of `o` are active (BitBake's `issubset` test).
    fn all_active(&self, o: &str) -> bool {
        o.split(':').all(|p| self.set.contains(p))
    }
}

type ExpandResult = Result<Option<Arc<str>>, ExpandError>;

/// Active overrides plus the base names of the variables they depend on.
type OverrideCache = (Arc<Overrides>, HashSet<Box<str>>);

/// A BitBake datastore.
pub struct DataStore {
    parent: Option<Arc<DataStore>>,
    vars: LocalVars,
    /// The active overrides and the (base) names of the variables their
    /// computation read: changing one of those invalidates them.
    overrides: Mutex<Option<OverrideCache>>,
    cache: Mutex<HashMap<Box<str>, ExpandResult>>,
    /// Names in this layer that contain `${` (computed once, for frozen
    /// parents).
    ref_keys: std::sync::OnceLock<Vec<Arc<str>>>,
    scratch: VarEntry,
    /// Undo records of an open transaction: each written variable's
    /// local-layer entry before its first write (`None`: it had none).
    journal: Option<HashMap<Arc<str>, Option<VarEntry>>>,
}

impl Default for DataStore {
    fn default() -> Self {
        DataStore::new()
    }
}

impl Clone for DataStore {
    fn clone(&self) -> Self {
        DataStore {
            parent: self.parent.clone(),
            vars: self.vars.clone(),
            overrides: Mutex::new(None),
            cache: Mutex::new(HashMap::new()),
            ref_keys: std::sync::OnceLock::new(),
            scratch: VarEntry::default(),
            journal: None,
        }
    }
}

impl fmt::Debug for DataStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataStore")
            .field("local_vars", &self.vars.len())
            .field("has_parent", &self.parent.is_some())
            .finish()
    }
}

fn is_override_start(o: &str) -> bool {
    o.chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// BitBake's `__setvar_regexp__`: `base:append[:override]` etc. Returns
/// (base, keyword index 0=append 1=prepend 2=remove, override).
pub(crate) fn split_keyword(var: &str) -> Option<(&str, usize, Option<&str>)> {
    const KWS: [&str; 3] = [":append", ":prepend", ":remove"];
    let mut search = 0;
    while search < var.len() {
        let hay = &var[search..];
        let found = KWS
            .iter()
            .enumerate()
            .filter_map(|(i, k)| hay.find(k).map(|p| (p, i, k.len())))
            .min_by_key(|(p, _, _)| *p)?;
        let (p, kw, klen) = found;
        let pos = search + p;
        let rest = &var[pos + klen..];
        if rest.is_empty() {
            return Some((&var[..pos], kw, None));
        }
        if let Some(add) = rest.strip_prefix(':') {
            if !add.chars().any(|c| c.is_ascii_uppercase()) {
                return Some((&var[..pos], kw, Some(add)));
            }
        }
        search = pos + 1;
    }
    None
}

impl DataStore {
    /// An empty datastore.
    pub fn new() -> DataStore {
        DataStore {
            parent: None,
            vars: LocalVars::default(),
            overrides: Mutex::new(None),
            cache: Mutex::new(HashMap::new()),
            ref_keys: std::sync::OnceLock::new(),
            scratch: VarEntry::default(),
            journal: None,
        }
    }

    /// A new, empty layer over a frozen `parent`.
    pub fn layered(parent: Arc<DataStore>) -> DataStore {
        DataStore {
            parent: Some(parent),
            ..DataStore::new()
        }
    }

    fn find(&self, var: &str) -> Option<&VarEntry> {
        let mut ds = self;
        loop {
            if let Some(e) = ds.vars.get(var) {
                return Some(e);
            }
            ds = ds.parent.as_deref()?;
        }
    }

    /// The entry if it holds data (not deleted).
    fn find_live(&self, var: &str) -> Option<&VarEntry> {
        self.find(var).filter(|e| e.is_live())
    }

    fn invalidate(&mut self, var: &str) {
        if let Ok(o) = self.overrides.get_mut() {
            let base = var.split(':').next().unwrap_or(var);
            if o.as_ref().is_some_and(|(_, deps)| deps.contains(base)) {
                *o = None;
            }
        }
        if let Ok(c) = self.cache.get_mut() {
            if !c.is_empty() {
                c.clear();
            }
        }
    }

    /// Copy-on-write access to `var` in the local layer.
    pub(crate) fn entry_mut(&mut self, var: &str) -> &mut VarEntry {
        self.invalidate(var);
        if let Some(j) = self.journal.as_mut() {
            if !j.contains_key(var) {
                j.insert(Arc::from(var), self.vars.get(var).cloned());
            }
        }
        if !self.vars.contains_key(var) {
            let copy = self
                .parent
                .as_deref()
                .and_then(|p| p.find(var))
                .cloned()
                .unwrap_or_default();
            self.vars.insert(Arc::from(var), copy);
        }
        match self.vars.get_mut(var) {
            Some(e) => e,
            // Inserted just above; a scratch entry keeps this panic-free.
            None => &mut self.scratch,
        }
    }

    /// Start recording undo information for every write (see
    /// [`DataStore::rollback`]); a transaction already open is kept.
    pub(crate) fn begin_transaction(&mut self) {
        if self.journal.is_none() {
            self.journal = Some(HashMap::new());
        }
    }

    /// Keep every write since [`DataStore::begin_transaction`].
    pub(crate) fn commit(&mut self) {
        self.journal = None;
    }

    /// Undo every write since [`DataStore::begin_transaction`]: the local
    /// layer gets back exactly the entries it had.
    pub(crate) fn rollback(&mut self) {
        let Some(j) = self.journal.take() else {
            return;
        };
        for (k, old) in j {
            match old {
                Some(e) => {
                    self.vars.insert(k, e);
                }
                None => {
                    self.vars.remove(&k);
                }
            }
        }
        if let Ok(o) = self.overrides.get_mut() {
            *o = None;
        }
        if let Ok(c) = self.cache.get_mut() {
            c.clear();
        }
    }

    /// BitBake's `_setvar_update_overrides`: register `var` (`BASE:o1:o2`)
    /// as an override form of its shorter names.
    fn update_overrides(&mut self, var: &str) {
        let Some(idx) = var.rfind(':') else { return };
        let mut override_ = Some(&var[idx + 1..]);
        let mut short = &var[..idx];
        while let Some(o) = override_.filter(|o| !o.is_empty() && is_override_start(o)) {
            let e = self.entry_mut(short);
            if !e.overrides.iter().any(|(v, ov)| &**v == var && &**ov == o) {
                e.overrides.push((Arc::from(var), Arc::from(o)));
            }
            override_ = None;
            if let Some(i) = short.rfind(':') {
                override_ = Some(&var[i + 1..]);
                short = &var[..i];
                if short.is_empty() {
                    override_ = None;
                }
            }
        }
    }

    /// `setVar(var, value, parsing=True)`.
    pub fn set_var(&mut self, var: &str, value: Arc<str>, hist: Option<HistoryEntry>) {
        if let Some((base, kw, add)) = split_keyword(var) {
            let add_arc = add.map(Arc::from);
            let e = self.entry_mut(base);
            let list = match kw {
                0 => &mut e.appends,
                1 => &mut e.prepends,
                _ => &mut e.removes,
            };
            list.push((value.clone(), add_arc));
            if let Some(mut h) = hist {
                let kwname = [":append", ":prepend", ":remove"][kw];
                h.op = match add {
                    Some(a) => Cow::Owned(format!("{kwname}[{a}]")),
                    None => Cow::Borrowed(kwname),
                };
                h.detail = value;
                e.history.push(h);
            }
            if base.contains(':') {
                self.update_overrides(base);
            }
            return;
        }
        let e = self.entry_mut(var);
        e.content = Some(value);
        if let Some(h) = hist {
            e.history.push(h);
        }
        if var.contains(':') {
            self.update_overrides(var);
        }
    }

    /// `setVar(var, value)` outside parsing (from Python): as BitBake's
    /// `parsing=False`, a plain name also drops its pending
    /// `:append`/`:prepend`/`:remove` and deletes its active override
    /// variants before taking the value.
    pub(crate) fn set_var_final(&mut self, var: &str, value: Arc<str>, hist: Option<HistoryEntry>) {
        if split_keyword(var).is_none() {
            let pending = self.find(var).is_some_and(|e| {
                !e.appends.is_empty()
                    || !e.prepends.is_empty()
                    || !e.removes.is_empty()
                    || !e.overrides.is_empty()
            });
            if pending {
                let ovs: Vec<(Arc<str>, Arc<str>)> = self
                    .find(var)
                    .map(|e| e.overrides.clone())
                    .unwrap_or_default();
                let active: Vec<Arc<str>> = match self.active_overrides() {
                    Ok(ov) => ovs
                        .into_iter()
                        .filter(|(_, o)| ov.contains(o) || (o.contains(':') && ov.all_active(o)))
                        .map(|(r, _)| r)
                        .collect(),
                    Err(_) => Vec::new(),
                };
                let e = self.entry_mut(var);
                e.appends.clear();
                e.prepends.clear();
                e.removes.clear();
                for a in active {
                    self.del_var(&a, None);
                }
                self.entry_mut(var).overrides.clear();
            }
        }
        self.set_var(var, value, hist);
    }

    /// `setVarFlag(var, flag, value)`.
    pub fn set_var_flag(
        &mut self,
        var: &str,
        flag: &str,
        value: Arc<str>,
        hist: Option<HistoryEntry>,
    ) {
        let e = self.entry_mut(var);
        if flag == "_defaultval" {
            e.default = Some(value);
        } else {
            e.flags.insert(Arc::from(flag), value);
        }
        if let Some(mut h) = hist {
            h.flag = Some(Arc::from(flag));
            e.history.push(h);
        }
        if flag == "_defaultval" && var.contains(':') {
            self.update_overrides(var);
        }
    }

    /// `delVar(var)`.
    pub fn del_var(&mut self, var: &str, hist: Option<HistoryEntry>) {
        let e = self.entry_mut(var);
        e.clear_data();
        if let Some(h) = hist {
            e.history.push(h);
        }
        if let Some(idx) = var.rfind(':') {
            let mut override_ = Some(&var[idx + 1..]);
            let mut short = &var[..idx];
            while let Some(o) = override_.filter(|o| !o.is_empty() && is_override_start(o)) {
                if self.find(short).is_some_and(|e| !e.overrides.is_empty()) {
                    let e = self.entry_mut(short);
                    e.overrides.retain(|(v, ov)| !(&**v == var && &**ov == o));
                }
                override_ = None;
                if let Some(i) = short.rfind(':') {
                    override_ = Some(&var[i + 1..]);
                    short = &var[..i];
                    if short.is_empty() {
                        override_ = None;
                    }
                }
            }
        }
    }

    /// `delVarFlag(var, flag)`.
    pub fn del_var_flag(&mut self, var: &str, flag: &str, hist: Option<HistoryEntry>) {
        let Some(existing) = self.find(var) else {
            return;
        };
        let has = if flag == "_defaultval" {
            existing.default.is_some()
        } else {
            existing.flags.contains_key(flag)
        };
        let e = self.entry_mut(var);
        if has {
            if flag == "_defaultval" {
                e.default = None;
            } else {
                e.flags.shift_remove(flag);
            }
            let dv = format!("_defaultval_flag_{flag}");
            e.flags.shift_remove(dv.as_str());
            if let Some(mut h) = hist {
                h.flag = Some(Arc::from(flag));
                e.history.push(h);
            }
        }
    }

    /// `getVar(var, expand=False, noweakdefault=True, parsing=True)`: the raw
    /// `_content`, as the `?=`/`+=` operators see it.
    pub(crate) fn content_parsing(&self, var: &str) -> Option<Arc<str>> {
        self.find(var).and_then(|e| e.content.clone())
    }

    /// `getVarFlag(var, flag, expand=False, noweakdefault=True)`.
    pub(crate) fn flag_raw(&self, var: &str, flag: &str, weak: bool) -> Option<Arc<str>> {
        let e = self.find(var)?;
        if flag == "_defaultval" {
            return e.default.clone();
        }
        if let Some(v) = e.flags.get(flag) {
            return Some(v.clone());
        }
        if weak {
            return e
                .flags
                .get(format!("_defaultval_flag_{flag}").as_str())
                .cloned();
        }
        None
    }

    /// BitBake's `renameVar(key, newkey)` (used by key expansion).
    pub(crate) fn rename_var(&mut self, key: &str, newkey: &str, hist: Option<HistoryEntry>) {
        if key == newkey {
            return;
        }
        let val = self
            .content_parsing(key)
            .or_else(|| self.find(key).and_then(|e| e.default.clone()));
        let old = self.find(key).cloned().unwrap_or_default();
        if let Some(v) = &val {
            let moved: Vec<HistoryEntry> = old.history.clone();
            let e = self.entry_mut(newkey);
            e.history.extend(moved);
            if let Some(mut h) = hist.clone() {
                h.op = Cow::Owned(format!("rename from {key}"));
                h.detail = v.clone();
                e.history.push(h);
            }
            self.set_var(newkey, v.clone(), None);
        }
        if !old.appends.is_empty() || !old.prepends.is_empty() || !old.removes.is_empty() {
            let e = self.entry_mut(newkey);
            e.appends.extend(old.appends.iter().cloned());
            e.prepends.extend(old.prepends.iter().cloned());
            e.removes.extend(old.removes.iter().cloned());
        }
        if !old.overrides.is_empty() {
            let mut newlist = Vec::new();
            let mut renames = Vec::new();
            for (v, o) in &old.overrides {
                let nv = v.replace(key, newkey);
                newlist.push((Arc::from(nv.as_str()), o.clone()));
                renames.push((v.to_string(), nv));
            }
            self.entry_mut(newkey).overrides = newlist;
            for (v, nv) in renames {
                self.rename_var(&v, &nv, hist.clone());
            }
        }
        if newkey.contains(':') && val.is_none() {
            self.update_overrides(newkey);
        }
        let mut h = hist;
        if let Some(h) = h.as_mut() {
            h.op = Cow::Borrowed("rename (to)");
            h.detail = Arc::from(newkey);
        }
        self.del_var(key, h);
    }

    /// Names of all variables BitBake would list (`d.keys()`), sorted:
    /// every variable holding data plus every variable with an active
    /// override form.
    pub fn keys(&self) -> Vec<String> {
        let mut seen: HashSet<&str> = HashSet::new();
        let mut out: BTreeSet<String> = BTreeSet::new();
        let mut with_overrides: Vec<&str> = Vec::new();
        let mut ds = Some(self);
        while let Some(d) = ds {
            for (k, e) in d.vars.iter() {
                if seen.insert(k) {
                    if e.is_live() {
                        out.insert(k.to_string());
                    }
                    if !e.overrides.is_empty() {
                        with_overrides.push(k);
                    }
                }
            }
            ds = d.parent.as_deref();
        }
        if let Ok(ov) = self.active_overrides() {
            for k in with_overrides {
                if let Some(e) = self.find(k) {
                    if e.overrides
                        .iter()
                        .any(|(_, o)| ov.contains(o) || (o.contains(':') && ov.all_active(o)))
                    {
                        out.insert(k.to_string());
                    }
                }
            }
        }
        out.into_iter().collect()
    }

    /// Live variable names containing `${` (candidates for key expansion).
    pub(crate) fn keys_with_refs(&self) -> Vec<String> {
        let mut names: BTreeSet<&str> = self
            .vars
            .keys()
            .filter(|k| k.contains("${"))
            .map(|k| &**k)
            .collect();
        let mut p = self.parent.as_deref();
        while let Some(d) = p {
            let cached = d.ref_keys.get_or_init(|| {
                d.vars
                    .keys()
                    .filter(|k| k.contains("${"))
                    .cloned()
                    .collect()
            });
            names.extend(cached.iter().map(|k| &**k));
            p = d.parent.as_deref();
        }
        names
            .into_iter()
            .filter(|k| self.find_live(k).is_some())
            .map(str::to_string)
            .collect()
    }

    /// A digest of every variable's stored data in this datastore and its
    /// parents (value, weak default, flags, `:append`/`:prepend`/`:remove`
    /// entries, override forms; not history), names in `ignore` left out:
    /// BitBake's configuration hash (`DataSmart.get_hash` with
    /// `BB_HASHCONFIG_IGNORE_VARS`), at least as sensitive. Values that
    /// configuration-time Python read from the host (a `:=` expression, a
    /// `ConfigParsed` handler reading os-release or running a tool) are in
    /// it. `object` maps a process-local object value to a stable form.
    pub(crate) fn config_digest(
        &self,
        ignore: &HashSet<&str>,
        object: &dyn Fn(&str) -> String,
    ) -> [u8; 32] {
        let mut chain = Vec::new();
        let mut ds = Some(self);
        while let Some(d) = ds {
            chain.push(d);
            ds = d.parent.as_deref();
        }
        let mut h = blake3::Hasher::new();
        let mut put = |s: &str| {
            let s = if s.starts_with(crate::python::PROCESS_LOCAL) {
                std::borrow::Cow::Owned(object(s))
            } else {
                std::borrow::Cow::Borrowed(s)
            };
            h.update(&(s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        };
        for (depth, d) in chain.iter().rev().enumerate() {
            put(&depth.to_string());
            let mut names: Vec<&Arc<str>> =
                d.vars.keys().filter(|k| !ignore.contains(&***k)).collect();
            names.sort();
            for k in names {
                let Some(e) = d.vars.get(k) else { continue };
                put(k);
                put(e.content.as_deref().unwrap_or("\0none"));
                put(e.default.as_deref().unwrap_or("\0none"));
                for (f, v) in &e.flags {
                    put(f);
                    put(v);
                }
                put("\0ops");
                for (v, o) in e.appends.iter().chain(&e.prepends).chain(&e.removes) {
                    put(v);
                    put(o.as_deref().unwrap_or("\0none"));
                }
                put(&format!(
                    "{} {} {}",
                    e.appends.len(),
                    e.prepends.len(),
                    e.removes.len()
                ));
                for (full, o) in &e.overrides {
                    put(full);
                    put(o);
                }
            }
        }
        *h.finalize().as_bytes()
    }

    /// Names of variables set in this layer only (not the parent).
    pub(crate) fn local_keys(&self) -> Vec<Arc<str>> {
        let mut v: Vec<Arc<str>> = self.vars.keys().cloned().collect();
        v.sort();
        v
    }

    /// The active overrides, computed as BitBake does: expand OVERRIDES with
    /// no overrides active, then again with the result, until stable (at
    /// most 5 rounds).
    pub(crate) fn active_overrides(&self) -> Result<Arc<Overrides>, ExpandError> {
        if let Ok(g) = self.overrides.lock() {
            if let Some((o, _)) = g.as_ref() {
                return Ok(o.clone());
            }
        }
        let mut cur = Overrides::default();
        let mut seen = Vec::new();
        let mut stable = false;
        let mut deps: HashSet<Box<str>> = HashSet::new();
        for _ in 0..6 {
            let mut ex = Expander::new(self, &cur, false);
            ex.deps = Some(RefCell::new(HashSet::new()));
            let v = ex.get_var("OVERRIDES")?;
            if let Some(d) = ex.deps.take() {
                deps.extend(d.into_inner());
            }
            let next = Overrides::from_value(v.as_deref());
            seen.push(v.map(|v| v.to_string()).unwrap_or_default());
            if next == cur {
                stable = true;
                break;
            }
            cur = next;
        }
        if !stable {
            return Err(ExpandError::UnstableOverrides(seen.join(" | ")));
        }
        let arc = Arc::new(cur);
        if let Ok(mut g) = self.overrides.lock() {
            *g = Some((arc.clone(), deps));
        }
        Ok(arc)
    }

    pub(crate) fn with_expander<T>(
        &self,
        f: impl FnOnce(&Expander<'_>) -> Result<T, ExpandError>,
    ) -> Result<T, ExpandError> {
        let ov = self.active_overrides()?;
        let ex = Expander::new(self, &ov, true);
        f(&ex)
    }

    /// The expanded final value of `var`, or the expansion error.
    pub fn try_get_var(&self, var: &str) -> Result<Option<String>, ExpandError> {
        self.with_expander(|ex| ex.get_var(var))
            .map(|v| v.map(|s| s.to_string()))
    }

    /// The expanded final value of `var` (`d.getVar(var)`): overrides,
    /// `:append`/`:prepend` and `:remove` applied, `${...}` expanded. `None`
    /// when the variable is unset **or** its expansion fails (the failure is
    /// logged; use [`DataStore::try_get_var`] to see it).
    pub fn get_var(&self, var: &str) -> Option<String> {
        match self.try_get_var(var) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(var, error = %e, "expansion failed");
                None
            }
        }
    }

    /// The value of `var` with overrides and `:append`/`:prepend` applied
    /// but not expanded (`d.getVar(var, False)`; `:remove` is applied only
    /// on expansion, as in BitBake).
    pub fn get_var_unexpanded(&self, var: &str) -> Option<String> {
        self.with_expander(|ex| ex.raw(var, false).map(|(v, _)| v))
            .ok()
            .flatten()
    }

    /// The expanded value of flag `flag` of `var`, or the expansion error.
    pub fn try_get_flag(&self, var: &str, flag: &str) -> Result<Option<String>, ExpandError> {
        self.with_expander(|ex| ex.get_flag(var, flag))
            .map(|v| v.map(|s| s.to_string()))
    }

    /// The expanded value of flag `flag` of `var` (`None` when unset or when
    /// expansion fails; see [`DataStore::try_get_flag`]).
    pub fn get_flag(&self, var: &str, flag: &str) -> Option<String> {
        match self.try_get_flag(var, flag) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(var, flag, error = %e, "flag expansion failed");
                None
            }
        }
    }

    /// The unexpanded flag value.
    pub fn get_flag_unexpanded(&self, var: &str, flag: &str) -> Option<String> {
        self.flag_raw(var, flag, true).map(|s| s.to_string())
    }

    /// All user-visible flags of `var`, unexpanded (BitBake's
    /// `getVarFlags`: internal `_...` flags hidden, weak flag defaults shown
    /// when no real value is set), in the order they were first set.
    pub fn flags(&self, var: &str) -> IndexMap<String, String> {
        let mut out = IndexMap::new();
        if let Some(e) = self.find(var) {
            for (k, v) in &e.flags {
                if let Some(f) = k.strip_prefix("_defaultval_flag_") {
                    if !e.flags.contains_key(f) {
                        out.insert(f.to_string(), v.to_string());
                    }
                } else if !k.starts_with('_') && !k.starts_with(':') {
                    out.insert(k.to_string(), v.to_string());
                }
            }
        }
        out
    }

    /// Every stored flag of `var`, internal ones (`_defaultval_flag_...`)
    /// included, unexpanded: `getVarFlags(var, internalflags=True)` without
    /// `_content` (the value is not a flag in bitzel's datastore).
    pub fn flags_internal(&self, var: &str) -> IndexMap<String, String> {
        self.find(var)
            .map(|e| {
                e.flags
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// BitBake's `hasOverrides`: override forms of `var` exist.
    pub fn has_overrides(&self, var: &str) -> bool {
        self.find(var).is_some_and(|e| !e.overrides.is_empty())
    }

    /// Expand `${...}` references (and `${@...}` inline Python) in `s`.
    pub fn expand(&self, s: &str) -> Result<String, ExpandError> {
        self.with_expander(|ex| ex.expand(s, None))
    }

    /// `expand` with the name of the variable being expanded (for
    /// self-reference detection and error messages).
    pub(crate) fn expand_named(&self, s: &str, var: Option<&str>) -> Result<String, ExpandError> {
        self.with_expander(|ex| ex.expand(s, var))
    }

    /// True when the variable is set (content, weak default or flags).
    pub fn contains(&self, var: &str) -> bool {
        self.find_live(var).is_some()
    }

    /// True when `var` is a function (`func` flag set).
    pub fn is_func(&self, name: &str) -> bool {
        self.flag_raw(name, "func", true)
            .is_some_and(|v| truthy(&v))
    }

    /// True when `var` is a Python function (`python` flag set).
    pub fn is_python(&self, name: &str) -> bool {
        self.flag_raw(name, "python", true)
            .is_some_and(|v| truthy(&v))
    }

    /// True when `var` is exported to task environments (`export` flag).
    pub fn is_exported(&self, name: &str) -> bool {
        self.flag_raw(name, "export", true)
            .is_some_and(|v| truthy(&v))
    }

    /// Task names in `addtask` order, after `deltask` (`__BBTASKS`).
    pub fn tasks(&self) -> Vec<String> {
        self.content_parsing("__BBTASKS")
            .map(|v| v.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// Same-recipe predecessors of `task` (its `deps` flag: `after`, plus
    /// every task that named it in `before`).
    pub fn task_deps(&self, task: &str) -> Vec<String> {
        self.flag_raw(task, "deps", false)
            .map(|v| v.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// Every recorded operation on `var`, in order, followed by the
    /// operations on its override forms (`override[o]:op`), as `bitbake -e`
    /// lists them.
    pub fn history(&self, var: &str) -> Vec<HistoryEntry> {
        let Some(e) = self.find(var) else {
            return Vec::new();
        };
        let mut out = e.history.clone();
        for (full, o) in &e.overrides {
            if let Some(oe) = self.find(full) {
                for h in &oe.history {
                    if h.flag
                        .as_deref()
                        .is_some_and(|f| !f.starts_with('_') && !f.starts_with(':'))
                    {
                        continue;
                    }
                    let mut h = h.clone();
                    h.op = Cow::Owned(format!("override[{o}]:{}", h.op));
                    out.push(h);
                }
            }
        }
        out
    }

    /// Freeze into a shareable parent for [`DataStore::layered`].
    pub fn freeze(self) -> Arc<DataStore> {
        Arc::new(self)
    }

    /// Local variables (for the parse cache).
    pub(crate) fn local_vars(&self) -> &HashMap<Arc<str>, VarEntry> {
        &self.vars
    }

    /// Every variable of the layers above `base` merged into one map (the
    /// part of a recipe's datastore the parse cache stores).
    pub(crate) fn vars_above(&self, base: &Arc<DataStore>) -> HashMap<Arc<str>, VarEntry> {
        let mut chain = Vec::new();
        let mut ds = Some(self);
        while let Some(d) = ds {
            if std::ptr::eq(d, &**base) {
                break;
            }
            chain.push(d);
            ds = d.parent.as_deref();
        }
        let mut out: HashMap<Arc<str>, VarEntry> = HashMap::new();
        for d in chain.into_iter().rev() {
            for (k, v) in d.vars.iter() {
                out.insert(k.clone(), v.clone());
            }
        }
        out
    }

    /// A layer over `parent` holding `vars` (for the parse cache: a
    /// decoder run on first use).
    /// A datastore of one layer holding `vars`.
    pub(crate) fn from_vars(vars: VarMap) -> DataStore {
        DataStore {
            vars: LocalVars::from(vars),
            ..DataStore::new()
        }
    }

    pub(crate) fn from_parts(parent: Arc<DataStore>, vars: LocalVars) -> DataStore {
        DataStore {
            parent: Some(parent),
            vars,
            ..DataStore::new()
        }
    }
}

/// BitBake's `bb.utils.to_boolean`-ish truthiness of a flag value.
fn truthy(v: &str) -> bool {
    if let Some(lit) = v.strip_prefix(crate::python::PY_LITERAL) {
        // A Python value: its own truth (0, False, None, empty are false).
        return !matches!(
            lit,
            "0" | "0.0" | "False" | "None" | "()" | "[]" | "{}" | "set()" | "frozenset()"
        );
    }
    !matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "" | "0" | "false" | "no" | "n" | "f" | "off"
    )
}

/// The expansion engine for one datastore and one override state.
pub(crate) struct Expander<'a> {
    ds: &'a DataStore,
    ov: &'a Overrides,
    use_cache: bool,
    stack: RefCell<Vec<Box<str>>>,
    /// An error raised inside a `PyContext` callback (which cannot return it).
    pending: RefCell<Option<ExpandError>>,
    /// When set, the base name of every variable read is recorded here.
    deps: Option<RefCell<HashSet<Box<str>>>>,
    /// Writes Python made while this expansion runs (`d.setVar` from a
    /// `${@...}`, as `oe.classextend` does): BitBake's non-parsing
    /// `setVar`/`delVar` give the variable exactly that value (appends,
    /// removes and active overrides dropped), so a written variable reads
    /// as the value here. They last for this expansion only (the
    /// datastore being expanded is not changed); once there is one, no
    /// value is cached.
    overlay: RefCell<HashMap<Box<str>, Option<Arc<str>>>>,
    /// When set, what one expansion itself reads, as BitBake's
    /// `VariableParse` records it (`crate::refs`).
    pub(crate) refs: RefCell<Option<crate::refs::RefsRecord>>,
    /// How deeply `expand` calls are nested right now (the expansion that
    /// `refs` records is the one at its `depth`).
    pub(crate) depth: Cell<u32>,
}

impl<'a> Expander<'a> {
    pub(crate) fn new(ds: &'a DataStore, ov: &'a Overrides, use_cache: bool) -> Expander<'a> {
        Expander {
            ds,
            ov,
            use_cache,
            stack: RefCell::new(Vec::new()),
            pending: RefCell::new(None),
            deps: None,
            overlay: RefCell::new(HashMap::new()),
            refs: RefCell::new(None),
            depth: Cell::new(0),
        }
    }

    fn caching(&self) -> bool {
        self.use_cache && self.overlay.borrow().is_empty()
    }

    fn overlaid(&self, var: &str) -> Option<Option<String>> {
        let o = self.overlay.borrow();
        if o.is_empty() {
            return None;
        }
        o.get(var).map(|v| v.as_deref().map(str::to_string))
    }

    /// A write from Python during the expansion (see `overlay`).
    fn write(&self, op: pyexpr::DataOp<'_>) -> Result<(), String> {
        use pyexpr::DataOp;
        let (var, value): (&str, Option<String>) = match op {
            DataOp::SetVar { var, value } => (var, Some(value.to_string())),
            DataOp::DelVar { var } => (var, None),
            DataOp::AppendVar { var, value } | DataOp::PrependVar { var, value } => {
                let cur = self.raw(var, false).map_err(|e| e.to_string())?.0;
                let cur = cur.unwrap_or_default();
                let new = if matches!(op, DataOp::AppendVar { .. }) {
                    format!("{cur}{value}")
                } else {
                    format!("{value}{cur}")
                };
                (var, Some(new))
            }
            other => return Err(format!("{other:?} while a value is being expanded")),
        };
        self.overlay
            .borrow_mut()
            .insert(Box::from(var), value.map(Arc::from));
        Ok(())
    }

    fn cached(&self, key: &str) -> Option<ExpandResult> {
        if !self.caching() {
            return None;
        }
        self.ds.cache.lock().ok().and_then(|c| c.get(key).cloned())
    }

    fn store(&self, key: &str, v: &ExpandResult) {
        if self.caching() {
            if let Ok(mut c) = self.ds.cache.lock() {
                c.insert(Box::from(key), v.clone());
            }
        }
    }

    /// getVarFlag(var, "_content", expand=False) plus the `:remove`
    /// values that must be applied after expansion.
    /// Returns (value, removes).
    pub(crate) fn raw(
        &self,
        var: &str,
        want_removes: bool,
    ) -> Result<(Option<String>, Vec<Arc<str>>), ExpandError> {
        let ds = self.ds;
        self.note_dep(var);
        if let Some(v) = self.overlaid(var) {
            return Ok((v, Vec::new()));
        }
        let entry = ds.find(var);
        let mut value: Option<String> = None;
        let mut removes: Vec<Arc<str>> = Vec::new();
        if let Some(e) = entry.filter(|e| !e.overrides.is_empty()) {
            // Python dict semantics: ordered, re-insertion moves to the end.
            let mut active: Vec<(String, Arc<str>)> = Vec::new();
            let put = |active: &mut Vec<(String, Arc<str>)>, k: String, v: Arc<str>| {
                if let Some(slot) = active.iter_mut().find(|(a, _)| *a == k) {
                    slot.1 = v;
                } else {
                    active.push((k, v));
                }
            };
            for (r, o) in &e.overrides {
                if self.ov.contains(o) || (o.contains(':') && self.ov.all_active(o)) {
                    put(&mut active, o.to_string(), r.clone());
                }
            }
            let mut matched: Option<Arc<str>> = None;
            let mut changed = true;
            while changed {
                changed = false;
                for o in &self.ov.list {
                    let suffix = format!(":{o}");
                    let keys: Vec<String> = active.iter().map(|(k, _)| k.clone()).collect();
                    for a in keys {
                        let Some(pos) = active.iter().position(|(k, _)| *k == a) else {
                            continue;
                        };
                        if a.ends_with(&suffix) {
                            let (_, t) = active.remove(pos);
                            put(&mut active, a.replace(&suffix, ""), t);
                            changed = true;
                        } else if a == **o {
                            let (_, t) = active.remove(pos);
                            matched = Some(t);
                        }
                    }
                }
            }
            if let Some(m) = matched {
                let (v, sub_removes) = self.raw(&m, true)?;
                if !sub_removes.is_empty() {
                    // BitBake carries only the removes that matched the
                    // overriding variable's own expanded value.
                    let expanded = match &v {
                        Some(s) => self.expand(s, Some(&m))?,
                        None => String::new(),
                    };
                    for r in sub_removes {
                        let words = self.expand(&r, None)?;
                        let hit = expanded
                            .split(|c: char| c.is_whitespace())
                            .any(|piece| words.split_whitespace().any(|w| w == piece));
                        if hit {
                            removes.push(r);
                        }
                    }
                }
                value = v;
            }
        }
        if value.is_none() {
            if let Some(e) = entry {
                value = e
                    .content
                    .as_deref()
                    .or(e.default.as_deref())
                    .map(str::to_string);
            }
        }
        if let Some(e) = entry {
            for (r, o) in &e.appends {
                if self.cond_active(o.as_deref()) {
                    value.get_or_insert_with(String::new).push_str(r);
                }
            }
            for (r, o) in &e.prepends {
                if self.cond_active(o.as_deref()) {
                    let v = value.get_or_insert_with(String::new);
                    v.insert_str(0, r);
                }
            }
            if want_removes {
                for (r, o) in &e.removes {
                    if self.cond_active(o.as_deref()) {
                        removes.push(r.clone());
                    }
                }
            }
        }
        Ok((value, removes))
    }

    /// Record a read of the expansion `refs` follows (`crate::refs`).
    fn record(&self, f: impl FnOnce(&mut crate::refs::RefsRecord)) {
        if let Ok(mut g) = self.refs.try_borrow_mut() {
            if let Some(r) = g.as_mut().filter(|r| r.depth() == self.depth.get()) {
                f(r);
            }
        }
    }

    /// A flag's stored value, unexpanded (its weak default when unset).
    pub(crate) fn flag_raw(&self, var: &str, flag: &str) -> Option<String> {
        self.ds.flag_raw(var, flag, true).map(|v| v.to_string())
    }

    fn note_dep(&self, var: &str) {
        if let Some(d) = &self.deps {
            let base = var.split(':').next().unwrap_or(var);
            if let Ok(mut d) = d.try_borrow_mut() {
                if !d.contains(base) {
                    d.insert(Box::from(base));
                }
            }
        }
    }

    fn cond_active(&self, o: Option<&str>) -> bool {
        match o {
            None | Some("") => true,
            Some(o) => o.split(':').all(|p| self.ov.list.iter().any(|x| &**x == p)),
        }
    }

    /// The expanded value of `var` with removes applied (getVar(var)).
    pub(crate) fn get_var(&self, var: &str) -> ExpandResult {
        if let Some(v) = self.cached(var) {
            return v;
        }
        {
            let stack = self.stack.borrow();
            if let Some(pos) = stack.iter().position(|s| &**s == var) {
                let mut chain: Vec<String> = stack[pos..].iter().map(|s| s.to_string()).collect();
                chain.push(var.to_string());
                return Err(ExpandError::Recursive { chain });
            }
        }
        self.stack.borrow_mut().push(Box::from(var));
        let r = self.get_var_uncached(var);
        self.stack.borrow_mut().pop();
        self.store(var, &r);
        r
    }

    fn get_var_uncached(&self, var: &str) -> ExpandResult {
        let (value, removes) = self.raw(var, true)?;
        let Some(value) = value else { return Ok(None) };
        let expanded = self
            .expand(&value, Some(var))
            .map_err(|e| self.locate(e, var))?;
        if expanded.is_empty() || removes.is_empty() {
            return Ok(Some(Arc::from(expanded)));
        }
        let mut remove_words: HashSet<String> = HashSet::new();
        for r in &removes {
            for w in self.expand(r, None)?.split_whitespace() {
                remove_words.insert(w.to_string());
            }
        }
        Ok(Some(Arc::from(apply_removes(&expanded, &remove_words))))
    }

    /// Attach the file:line of the assignment that wrote a failing inline
    /// Python expression.
    fn locate(&self, e: ExpandError, var: &str) -> ExpandError {
        match e {
            ExpandError::Python {
                var: v,
                expr,
                message,
                file: None,
                ..
            } => {
                let mut file = None;
                let mut line = 0;
                for h in self.ds.history(var).iter().rev() {
                    if h.detail.contains(expr.as_str()) {
                        file = Some(h.file.clone());
                        line = h.line;
                        break;
                    }
                }
                ExpandError::Python {
                    var: v.or_else(|| Some(var.to_string())),
                    expr,
                    message,
                    file,
                    line,
                }
            }
            other => other,
        }
    }

    pub(crate) fn get_flag(&self, var: &str, flag: &str) -> ExpandResult {
        let key = format!("{var}[{flag}]");
        if let Some(v) = self.cached(&key) {
            return v;
        }
        self.note_dep(var);
        let r = match self.ds.flag_raw(var, flag, true) {
            None => Ok(None),
            Some(v) => self.expand(&v, Some(&key)).map(|s| Some(Arc::from(s))),
        };
        self.store(&key, &r);
        r
    }

    /// BitBake's `expandWithRefs`: substitute `${VAR}` (innermost names
    /// first), then `${@...}`, until nothing changes.
    pub(crate) fn expand(&self, s: &str, varname: Option<&str>) -> Result<String, ExpandError> {
        self.depth.set(self.depth.get() + 1);
        let r = self.expand_passes(s, varname);
        self.depth.set(self.depth.get() - 1);
        r
    }

    fn expand_passes(&self, s: &str, varname: Option<&str>) -> Result<String, ExpandError> {
        let mut cur: Cow<'_, str> = Cow::Borrowed(s);
        while cur.contains("${") {
            let after_vars = self.sub_vars(&cur, varname)?;
            let after_py = match &after_vars {
                Some(v) => self.sub_python(v, varname)?,
                None => self.sub_python(&cur, varname)?,
            };
            let next = match (after_py, after_vars) {
                (Some(p), _) => p,
                (None, Some(v)) => v,
                (None, None) => break,
            };
            if next == *cur {
                break;
            }
            cur = Cow::Owned(next);
        }
        Ok(cur.into_owned())
    }

    /// One pass of `${NAME}` substitution; `None` when nothing matched.
    fn sub_vars(&self, s: &str, varname: Option<&str>) -> Result<Option<String>, ExpandError> {
        let bytes = s.as_bytes();
        let mut out = String::new();
        let mut last = 0;
        let mut i = 0;
        let mut any = false;
        while let Some(p) = s[i..].find("${") {
            let start = i + p;
            let name_start = start + 2;
            let mut j = name_start;
            while j < bytes.len() && is_ref_char(bytes[j]) {
                j += 1;
            }
            if j > name_start && j < bytes.len() && bytes[j] == b'}' {
                let key = &s[name_start..j];
                if varname == Some(key) {
                    return Err(ExpandError::Recursive {
                        chain: vec![key.to_string(), key.to_string()],
                    });
                }
                self.record(|r| r.reference(key));
                if let Some(v) = self.get_var(key)? {
                    out.push_str(&s[last..start]);
                    out.push_str(&v);
                    last = j + 1;
                    any = true;
                }
                i = j + 1;
            } else {
                i = start + 2;
            }
        }
        if !any {
            return Ok(None);
        }
        out.push_str(&s[last..]);
        Ok(Some(out))
    }

    /// One pass of `${@...}` evaluation; `None` when nothing was evaluated.
    /// The expressions are those of BitBake's `__expand_python_regexp__`
    /// (`\$\{@(?:\{.*?\}|.)+?\}`, the same in BitBake 2.8 and 2.19): code
    /// runs to the first `}` that does not close a `{` opened in it, on one
    /// line, so `${@{'a': 1}['a']}` is one expression.
    fn sub_python(&self, s: &str, varname: Option<&str>) -> Result<Option<String>, ExpandError> {
        static PYTHON_REF: std::sync::LazyLock<Option<regex::Regex>> =
            std::sync::LazyLock::new(|| regex::Regex::new(r"\$\{@(?:\{.*?\}|.)+?\}").ok());
        let Some(re) = PYTHON_REF.as_ref() else {
            return Ok(None);
        };
        let mut out = String::new();
        let mut last = 0;
        let mut any = false;
        for m in re.find_iter(s) {
            let code = &s[m.start() + 3..m.end() - 1];
            if contains_var_ref(code) {
                // BitBake leaves code with unexpanded references alone.
                continue;
            }
            self.record(|r| r.python(code));
            let value = self.eval_python(code, varname)?;
            out.push_str(&s[last..m.start()]);
            out.push_str(&value);
            last = m.end();
            any = true;
        }
        if !any {
            return Ok(None);
        }
        out.push_str(&s[last..]);
        Ok(Some(out))
    }

    fn eval_python(&self, code: &str, varname: Option<&str>) -> Result<String, ExpandError> {
        let ctx = PyCtx { ex: self };
        let host = crate::python::python_host();
        let mut r = match host {
            Some(h) if !h.fast_path() => h.eval_inline(code, &ctx),
            _ => pyexpr::eval_inline(code, &ctx),
        };
        // CPython (when installed) is the reference: whatever the Rust
        // subset does not evaluate (outside it, or a name it cannot see such
        // as a `def` or an `addpylib` module) is evaluated there.
        if r.as_ref().is_err_and(|e| !e.is_syntax_error()) {
            if let Some(host) = host.filter(|h| h.fast_path()) {
                *self.pending.borrow_mut() = None;
                r = host.eval_inline(code, &ctx);
            }
        }
        if let Some(e) = self.pending.borrow_mut().take() {
            return Err(e);
        }
        // BitBake leaves an expression whose code ends inside a string
        // literal unexpanded (data_smart.expandWithRefs).
        if let Err(e) = &r {
            if e.message.starts_with("SyntaxError: unterminated") {
                return Ok(format!("${{@{code}}}"));
            }
        }
        r.map_err(|e| ExpandError::Python {
            var: varname.map(str::to_string),
            expr: code.to_string(),
            message: e.message,
            file: None,
            line: 0,
        })
    }
}

fn is_ref_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'.' | b'/' | b'~' | b':')
}

fn contains_var_ref(code: &str) -> bool {
    let b = code.as_bytes();
    let mut i = 0;
    while let Some(p) = code[i..].find("${") {
        let mut j = i + p + 2;
        let st = j;
        while j < b.len() && is_ref_char(b[j]) {
            j += 1;
        }
        if j > st && j < b.len() && b[j] == b'}' {
            return true;
        }
        i = i + p + 2;
    }
    false
}

/// Remove whole words (BitBake splits on single whitespace characters and
/// keeps the separators, so removing `b` from `a b c` leaves `a  c`).
pub(crate) fn apply_removes(value: &str, words: &HashSet<String>) -> String {
    let mut out = String::with_capacity(value.len());
    let mut word_start = 0;
    for (i, c) in value.char_indices() {
        if c.is_whitespace() {
            let w = &value[word_start..i];
            if !words.contains(w) {
                out.push_str(w);
            }
            out.push(c);
            word_start = i + c.len_utf8();
        }
    }
    let w = &value[word_start..];
    if !words.contains(w) {
        out.push_str(w);
    }
    out
}

struct PyCtx<'e, 'a> {
    ex: &'e Expander<'a>,
}

impl PyCtx<'_, '_> {
    fn fail(&self, e: ExpandError) {
        let mut p = self.ex.pending.borrow_mut();
        if p.is_none() {
            *p = Some(e);
        }
    }
}

impl PyContext for PyCtx<'_, '_> {
    fn get_var(&self, name: &str, expand: bool) -> Option<String> {
        if expand {
            match self.ex.get_var(name) {
                Ok(v) => v.map(|s| s.to_string()),
                Err(e) => {
                    self.fail(e);
                    None
                }
            }
        } else {
            match self.ex.raw(name, false) {
                Ok((v, _)) => v,
                Err(e) => {
                    self.fail(e);
                    None
                }
            }
        }
    }

    fn get_var_flag(&self, name: &str, flag: &str, expand: bool) -> Option<String> {
        if expand {
            match self.ex.get_flag(name, flag) {
                Ok(v) => v.map(|s| s.to_string()),
                Err(e) => {
                    self.fail(e);
                    None
                }
            }
        } else {
            {
                self.ex.note_dep(name);
                self.ex.ds.flag_raw(name, flag, true)
            }
            .map(|s| s.to_string())
        }
    }

    fn expand(&self, s: &str) -> String {
        match self.ex.expand(s, None) {
            Ok(v) => v,
            Err(e) => {
                self.fail(e);
                s.to_string()
            }
        }
    }

    fn modify(&self, op: pyexpr::DataOp<'_>) -> Result<(), String> {
        self.ex.write(op)
    }

    fn var_flags(
        &self,
        var: &str,
        internal: bool,
    ) -> Result<Option<Vec<(String, String)>>, String> {
        self.ex.note_dep(var);
        let flags = if internal {
            self.ex.ds.flags_internal(var)
        } else {
            self.ex.ds.flags(var)
        };
        Ok((!flags.is_empty()).then(|| flags.into_iter().collect()))
    }

    fn keys(&self) -> Result<Vec<String>, String> {
        Ok(self.ex.ds.keys())
    }

    fn has_overrides(&self, var: &str) -> Result<bool, String> {
        Ok(self.ex.ds.has_overrides(var))
    }

    fn snapshot(&self) -> Result<DataStore, String> {
        Ok(self.ex.ds.clone())
    }

    fn expand_with_refs(
        &self,
        s: &str,
        varname: Option<&str>,
    ) -> Option<Result<crate::ExpansionRefs, ExpandError>> {
        Some(self.ex.expand_with_refs(Some(s), varname))
    }

    fn flag_with_refs(
        &self,
        var: &str,
        flag: &str,
    ) -> Option<Result<crate::FlagRefs, ExpandError>> {
        Some(self.ex.flag_with_refs(var, flag))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h() -> Option<HistoryEntry> {
        None
    }

    fn ds(pairs: &[(&str, &str)]) -> DataStore {
        let mut d = DataStore::new();
        for (k, v) in pairs {
            d.set_var(k, Arc::from(*v), h());
        }
        d
    }

    #[test]
    fn keyword_split() {
        assert_eq!(split_keyword("A:append"), Some(("A", 0, None)));
        assert_eq!(split_keyword("A:append:foo"), Some(("A", 0, Some("foo"))));
        assert_eq!(split_keyword("A:foo:remove"), Some(("A:foo", 2, None)));
        assert_eq!(split_keyword("A:prepend:B"), None);
        assert_eq!(split_keyword("A:appendix"), None);
        assert_eq!(split_keyword("A"), None);
    }

    #[test]
    fn expansion_basics() {
        let d = ds(&[
            ("A", "a${B}"),
            ("B", "b"),
            ("C", "${UNSET} x"),
            ("R", "${R2}"),
            ("R2", "${R}"),
        ]);
        assert_eq!(d.get_var("A").as_deref(), Some("ab"));
        assert_eq!(d.get_var("C").as_deref(), Some("${UNSET} x"));
        assert!(matches!(
            d.try_get_var("R"),
            Err(ExpandError::Recursive { .. })
        ));
        let d = ds(&[("S", "${S}")]);
        assert!(matches!(
            d.try_get_var("S"),
            Err(ExpandError::Recursive { .. })
        ));
        let d = ds(&[("N", "${${X}}"), ("X", "Y"), ("Y", "nested")]);
        assert_eq!(d.get_var("N").as_deref(), Some("nested"));
    }

    #[test]
    fn overrides_and_appends() {
        let d = ds(&[
            ("OVERRIDES", "a:b"),
            ("V", "base"),
            ("V:a", "va"),
            ("V:b", "vb"),
            ("V:append", " app"),
            ("V:append:c", " no"),
            ("V:prepend:a", "pre "),
            ("W", "x y z y"),
            ("W:remove", "y"),
            ("X:b:append", "onlyappend"),
        ]);
        assert_eq!(d.get_var("V").as_deref(), Some("pre vb app"));
        assert_eq!(d.get_var("W").as_deref(), Some("x  z "));
        assert_eq!(d.get_var("X").as_deref(), Some("onlyappend"));
        assert_eq!(d.get_var_unexpanded("W").as_deref(), Some("x y z y"));
    }

    #[test]
    fn removes_keep_separators() {
        let words: HashSet<String> = ["b".to_string()].into_iter().collect();
        assert_eq!(apply_removes("a b c", &words), "a  c");
        assert_eq!(apply_removes("b", &words), "");
    }

    #[test]
    fn cow_layering() {
        let mut base = ds(&[("A", "1"), ("B", "2")]);
        base.set_var_flag("A", "doc", Arc::from("d"), h());
        let base = base.freeze();
        let mut r = DataStore::layered(base.clone());
        r.set_var("A", Arc::from("x"), h());
        r.del_var("B", h());
        assert_eq!(r.get_var("A").as_deref(), Some("x"));
        assert_eq!(r.get_flag("A", "doc").as_deref(), Some("d"));
        assert_eq!(r.get_var("B"), None);
        assert_eq!(base.get_var("A").as_deref(), Some("1"));
        assert_eq!(base.get_var("B").as_deref(), Some("2"));
        assert_eq!(r.keys(), vec!["A".to_string()]);
    }
}
