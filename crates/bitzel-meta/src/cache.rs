//! The on-disk parse cache: one file per recipe file holding its parsed
//! datastores (the layers above the base configuration), keyed by the
//! content of every file that fed it.
//!
//! An entry is used only when it was written by the same parse semantics
//! ([`semantics`]: this crate's version and [`PARSE_SEMANTICS`]), the base
//! configuration's inputs are the same
//! (same paths, same content digests) and every file the recipe read —
//! recipe, appends, includes, classes, and the files looked for and not
//! found — still has the recorded digest (or is still missing). Entries are
//! written to a temporary name and renamed. Anything unreadable is a miss.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hashbrown::HashMap;

use crate::data::{CondValue, DataStore, HistoryEntry, VarEntry};
use crate::diag::{Diagnostic, MetaError, Severity};
use crate::eval::Env;
use crate::localvars::{LocalVars, VarMap};
use crate::workspace::BaseConfig;
use crate::Recipe;

const MAGIC: &[u8; 8] = b"BZPC\0\0\0\x06";

/// Bump whenever what a parse produces changes without the crate version
/// changing (a fix in the evaluator, the Python subset, anonymous
/// functions, the stored format...): entries made by older semantics are
/// then never used.
pub const PARSE_SEMANTICS: u32 = 9;

/// The parse semantics every entry is keyed by: the crate version (an
/// upgraded bitzel never reuses an older one's entries) and
/// [`PARSE_SEMANTICS`] (for changes between releases).
pub fn semantics() -> String {
    format!(
        "bitzel-meta {} parse-semantics {PARSE_SEMANTICS}",
        env!("CARGO_PKG_VERSION")
    )
}

#[cfg(test)]
thread_local! {
    /// Tests stand in for another bitzel version here.
    static SEMANTICS_OVERRIDE: std::cell::RefCell<Option<String>> =
        const { std::cell::RefCell::new(None) };
}

fn current_semantics() -> String {
    #[cfg(test)]
    if let Some(s) = SEMANTICS_OVERRIDE.with(|o| o.borrow().clone()) {
        return s;
    }
    semantics()
}

/// A parse cache directory.
pub(crate) struct ParseCache {
    dir: PathBuf,
    base_key: [u8; 32],
    digests: Mutex<std::collections::HashMap<PathBuf, Option<[u8; 32]>>>,
    /// Every string read from an entry, shared: most of a recipe's text
    /// (class functions, common values) is the same in hundreds of entries,
    /// and one copy of each keeps a warm load of poky small and fast.
    /// Shared with the recipes' lazy decoders, which outlive the cache.
    strings: Strings,
}

/// The set of strings shared by everything decoded from entries.
type Strings = Arc<Mutex<hashbrown::HashSet<Arc<str>>>>;

/// What a recipe parse produced, with the inputs it read.
pub(crate) type Parsed = (Vec<Recipe>, Vec<Diagnostic>);

/// [`DataStore::config_digest`] of the base configuration without the
/// variables its `BB_HASHCONFIG_IGNORE_VARS` names (`DATE`, `TIME`, ... in
/// poky). A process-local object value counts by its pickled state when the
/// Python host can keep it, else as "an object" (its identity differs in
/// every process).
fn config_digest(data: &DataStore) -> [u8; 32] {
    let ignored = data
        .try_get_var("BB_HASHCONFIG_IGNORE_VARS")
        .ok()
        .flatten()
        .unwrap_or_default();
    let ignore: hashbrown::HashSet<&str> = ignored.split_whitespace().collect();
    let host = crate::python::python_host();
    let object = |v: &str| -> String {
        host.as_ref()
            .and_then(|h| h.persist(v))
            .unwrap_or_else(|| crate::python::PROCESS_LOCAL.to_string())
    };
    data.config_digest(&ignore, &object)
}

impl ParseCache {
    pub(crate) fn open(dir: &Path, base: &BaseConfig) -> Result<ParseCache, MetaError> {
        let dir = dir.join("v2");
        std::fs::create_dir_all(&dir).map_err(|e| MetaError::Cache {
            path: dir.clone(),
            message: format!("cannot create: {e}"),
        })?;
        let mut h = blake3::Hasher::new();
        let semantics = current_semantics();
        h.update(&(semantics.len() as u64).to_le_bytes());
        h.update(semantics.as_bytes());
        // What the Python host imports (BitBake's library, addpylib
        // directories) decides values too: a change there is a new key.
        match crate::python::python_host() {
            Some(host) => h.update(&host.fingerprint()),
            None => h.update(b"no python host"),
        };
        for (p, d) in &base.inputs {
            h.update(p.to_string_lossy().as_bytes());
            h.update(&[0]);
            match d {
                Some(d) => h.update(d),
                None => h.update(b"-"),
            };
        }
        // The configuration's values too, as BitBake keys its recipe cache:
        // what configuration-time Python read from the host (os-release, a
        // tool's version, a handler's findings) is in them, so a change
        // there is a new key even though no file changed.
        h.update(&config_digest(&base.data));
        Ok(ParseCache {
            dir,
            base_key: *h.finalize().as_bytes(),
            strings: Strings::default(),
            digests: Mutex::new(std::collections::HashMap::new()),
        })
    }

    fn entry_path(&self, file: &Path, appends: &[&PathBuf], layer: &str) -> PathBuf {
        let mut h = blake3::Hasher::new();
        h.update(file.to_string_lossy().as_bytes());
        h.update(&[0]);
        for a in appends {
            h.update(a.to_string_lossy().as_bytes());
            h.update(&[0]);
        }
        h.update(layer.as_bytes());
        let hex = h.finalize().to_hex();
        self.dir.join(format!("{}.bin", &hex[..32]))
    }

    /// Current digest of a file (memoised for this load).
    fn digest(&self, env: &Env<'_>, path: &Path) -> Option<[u8; 32]> {
        if let Ok(g) = self.digests.lock() {
            if let Some(d) = g.get(path) {
                return *d;
            }
        }
        let d = match env.loader.read(path) {
            Ok(Some(text)) => Some(*blake3::hash(text.as_bytes()).as_bytes()),
            _ => None,
        };
        if let Ok(mut g) = self.digests.lock() {
            g.insert(path.to_path_buf(), d);
        }
        d
    }

    /// Whether `file` has an entry written under this base configuration
    /// (its inputs are not checked: a hint for sharding a parse).
    pub(crate) fn has_current_entry(&self, file: &Path, appends: &[&PathBuf], layer: &str) -> bool {
        use std::io::Read as _;
        let mut head = [0u8; 40];
        std::fs::File::open(self.entry_path(file, appends, layer))
            .and_then(|mut f| f.read_exact(&mut head))
            .is_ok_and(|()| head[..8] == MAGIC[..] && head[8..] == self.base_key[..])
    }

    pub(crate) fn lookup(
        &self,
        env: &Env<'_>,
        base: &BaseConfig,
        file: &Path,
        appends: &[&PathBuf],
        layer: &str,
    ) -> Option<Parsed> {
        let map = Arc::new(map_entry(&self.entry_path(file, appends, layer))?);
        let head = entry_head(&map, &self.base_key)?;
        let mut r = Reader::new(Arc::from(head), &self.strings)?;
        let n = r.u32()?;
        for _ in 0..n {
            let p = PathBuf::from(r.str()?.as_ref());
            let d = r.digest_opt()?;
            if self.digest(env, &p) != d {
                return None;
            }
        }
        let out = decode_parsed(&mut r, &base.data, &map, &self.strings).and_then(|parsed| {
            let n = r.u32()?;
            let modules = (0..n)
                .map(|_| r.str().map(|m| m.to_string()))
                .collect::<Option<Vec<String>>>()?;
            if let (false, Some(host)) = (modules.is_empty(), crate::python::python_host()) {
                host.require_modules(&modules);
            }
            Some(parsed)
        });
        if out.is_none() {
            tracing::debug!(file = %file.display(), "parse cache entry unreadable; reparsing");
        }
        out
    }

    pub(crate) fn store(
        &self,
        base: &BaseConfig,
        file: &Path,
        appends: &[&PathBuf],
        layer: &str,
        inputs: &[(PathBuf, Option<[u8; 32]>)],
        parsed: &Parsed,
    ) -> Result<(), String> {
        let mut w = Writer::default();
        w.u32(inputs.len() as u32);
        for (p, d) in inputs {
            w.str(&p.to_string_lossy());
            w.digest_opt(d.as_ref());
        }
        let mut blobs = encode_parsed(&mut w, parsed, &base.data);
        let modules = crate::python::python_host()
            .map(|h| h.loaded_modules())
            .unwrap_or_default();
        w.u32(modules.len() as u32);
        for m in &modules {
            w.str(m);
        }
        if !persist_objects(&mut w.table)
            || !blobs.iter_mut().all(|(_, b)| persist_objects(&mut b.table))
        {
            // A Python object that lives in this process only and cannot
            // be pickled: an entry would read back wrong, so there is none.
            tracing::debug!(file = %file.display(), "holds a Python object that cannot be kept; not cached");
            return Ok(());
        }
        let path = self.entry_path(file, appends, layer);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let data = entry_bytes(&self.base_key, w, blobs);
        std::fs::write(&tmp, &data).map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(())
    }
}

/// Replace every process-local Python object value in `table` (a
/// `ClassExtender`, say) with the form the host can read back in another
/// process (its pickled final state). False when one cannot be kept.
fn persist_objects(table: &mut [Arc<str>]) -> bool {
    let local = crate::python::PROCESS_LOCAL;
    for s in table.iter_mut() {
        if !s.contains(local) {
            continue;
        }
        if !s.starts_with(local) {
            return false;
        }
        match crate::python::python_host().and_then(|h| h.persist(s)) {
            Some(kept) if !kept.contains(local) => *s = Arc::from(kept),
            _ => return false,
        }
    }
    true
}

/// Binary writer with a string table: every string is written once and
/// referenced by index, so values shared by many variables stay small.
#[derive(Default)]
struct Writer {
    body: Vec<u8>,
    strings: HashMap<Arc<str>, u32>,
    table: Vec<Arc<str>>,
}

impl Writer {
    fn raw(&mut self, b: &[u8]) {
        self.body.extend_from_slice(b);
    }
    fn u32(&mut self, v: u32) {
        self.body.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        let idx = match self.strings.get(s) {
            Some(i) => *i,
            None => {
                let i = self.table.len() as u32;
                let a: Arc<str> = Arc::from(s);
                self.table.push(a.clone());
                self.strings.insert(a, i);
                i
            }
        };
        self.u32(idx);
    }
    fn arc(&mut self, s: &Arc<str>) {
        self.str(s);
    }
    fn opt(&mut self, s: Option<&str>) {
        match s {
            Some(s) => {
                self.body.push(1);
                self.str(s);
            }
            None => self.body.push(0),
        }
    }
    fn digest_opt(&mut self, d: Option<&[u8; 32]>) {
        match d {
            Some(d) => {
                self.body.push(1);
                self.raw(d);
            }
            None => self.body.push(0),
        }
    }
    /// A section: the string table, then the body.
    fn finish(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.table.len() as u32).to_le_bytes());
        for s in &self.table {
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        out.extend_from_slice(&self.body);
    }
}

/// An entry's bytes: magic, the base key, the head's length (u64), the head
/// (inputs, each recipe's name, version, skip reason and where its
/// variables are, diagnostics, modules), then each recipe's variables, a
/// section of their own. A listing reads the head only; a recipe's
/// variables are decoded from their section when first used.
fn entry_bytes(base_key: &[u8; 32], mut head: Writer, blobs: Vec<(usize, Writer)>) -> Vec<u8> {
    let mut sections = Vec::new();
    for (at, b) in blobs {
        let start = sections.len();
        b.finish(&mut sections);
        let len = (sections.len() - start) as u64;
        head.body[at..at + 8].copy_from_slice(&len.to_le_bytes());
    }
    let mut h = Vec::new();
    head.finish(&mut h);
    let mut out = Vec::with_capacity(h.len() + 48);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(base_key);
    out.extend_from_slice(&(h.len() as u64).to_le_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(&sections);
    out
}

/// The entry at `path`, memory-mapped: pages are read when touched, and
/// the mapping keeps this version of the file even when a later parse
/// renames a new entry over it (entries are never written in place).
fn map_entry(path: &Path) -> Option<memmap2::Mmap> {
    let file = std::fs::File::open(path).ok()?;
    // SAFETY: entries are only ever created under a temporary name and
    // renamed into place (`ParseCache::store`), never truncated or
    // rewritten, so the mapped file does not change while mapped.
    unsafe { memmap2::Mmap::map(&file) }.ok()
}

/// The head section of an entry written under `base_key` (None for another
/// one or a short file).
fn entry_head<'a>(map: &'a [u8], base_key: &[u8; 32]) -> Option<&'a [u8]> {
    if map.get(..8)? != MAGIC || map.get(8..40)? != base_key {
        return None;
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(map.get(40..48)?);
    let end = 48usize.checked_add(usize::try_from(u64::from_le_bytes(len)).ok()?)?;
    map.get(48..end)
}

struct Reader {
    b: Arc<[u8]>,
    pos: usize,
    table: Arc<[Arc<str>]>,
}

impl Reader {
    /// Read a section: its string table, each string shared through
    /// `strings`.
    fn new(b: Arc<[u8]>, strings: &Mutex<hashbrown::HashSet<Arc<str>>>) -> Option<Reader> {
        let mut r = Reader {
            b,
            pos: 0,
            table: Arc::from(Vec::new()),
        };
        let n = r.u32()? as usize;
        let mut spans = Vec::with_capacity(n.min(1 << 20));
        for _ in 0..n {
            let len = r.u32()? as usize;
            let start = r.pos;
            r.take(len)?;
            spans.push((start, len));
        }
        let mut shared = strings.lock().ok()?;
        let mut table = Vec::with_capacity(spans.len());
        for (start, len) in spans {
            let s = std::str::from_utf8(r.b.get(start..start + len)?).ok()?;
            table.push(match shared.get(s) {
                Some(a) => a.clone(),
                None => {
                    let a: Arc<str> = Arc::from(s);
                    shared.insert(a.clone());
                    a
                }
            });
        }
        r.table = Arc::from(table);
        Some(r)
    }

    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.b.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        let s = self.take(4)?;
        Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn str(&mut self) -> Option<Arc<str>> {
        let i = self.u32()? as usize;
        self.table.get(i).cloned()
    }
    fn opt(&mut self) -> Option<Option<Arc<str>>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(self.str()?)),
            _ => None,
        }
    }
    fn digest_opt(&mut self) -> Option<Option<[u8; 32]>> {
        match self.u8()? {
            0 => Some(None),
            1 => {
                let s = self.take(32)?;
                let mut d = [0u8; 32];
                d.copy_from_slice(s);
                Some(Some(d))
            }
            _ => None,
        }
    }
}

fn encode_cond(w: &mut Writer, l: &[CondValue]) {
    w.u32(l.len() as u32);
    for (v, o) in l {
        w.arc(v);
        w.opt(o.as_deref());
    }
}

fn decode_cond(r: &mut Reader) -> Option<Vec<CondValue>> {
    let n = r.u32()?;
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        out.push((r.str()?, r.opt()?));
    }
    Some(out)
}

fn encode_entry(w: &mut Writer, e: &VarEntry) {
    w.opt(e.content.as_deref());
    w.opt(e.default.as_deref());
    w.u32(e.flags.len() as u32);
    for (k, v) in &e.flags {
        w.arc(k);
        w.arc(v);
    }
    encode_cond(w, &e.appends);
    encode_cond(w, &e.prepends);
    encode_cond(w, &e.removes);
    w.u32(e.overrides.len() as u32);
    for (v, o) in &e.overrides {
        w.arc(v);
        w.arc(o);
    }
    w.u32(e.history.len() as u32);
    for h in &e.history {
        w.str(&h.file.to_string_lossy());
        w.u32(h.line);
        w.str(&h.op);
        w.opt(h.flag.as_deref());
        w.arc(&h.detail);
    }
}

/// A history operation name as read back: the common ones borrowed (no
/// allocation for each of the millions of entries a warm poky load reads).
fn static_op(op: &str) -> Cow<'static, str> {
    const OPS: [&str; 20] = [
        "set",
        "set?",
        "set??",
        "append",
        "prepend",
        "postdot",
        "predot",
        "immediate",
        "del",
        "delFlag",
        "exported",
        "EXPORT_FUNCTIONS",
        ":append",
        ":prepend",
        ":remove",
        "rename",
        "rename (to)",
        "set (BBCLASSEXTEND)",
        "set from file name",
        "inherit",
    ];
    match OPS.iter().find(|o| **o == op) {
        Some(o) => Cow::Borrowed(o),
        None => Cow::Owned(op.to_string()),
    }
}

fn decode_entry(r: &mut Reader, paths: &mut HashMap<Arc<str>, Arc<Path>>) -> Option<VarEntry> {
    let mut e = VarEntry {
        content: r.opt()?,
        default: r.opt()?,
        ..VarEntry::default()
    };
    for _ in 0..r.u32()? {
        let k = r.str()?;
        let v = r.str()?;
        e.flags.insert(k, v);
    }
    e.appends = decode_cond(r)?;
    e.prepends = decode_cond(r)?;
    e.removes = decode_cond(r)?;
    for _ in 0..r.u32()? {
        e.overrides.push((r.str()?, r.str()?));
    }
    let n = r.u32()?;
    e.history.reserve(n as usize);
    for _ in 0..n {
        let f = r.str()?;
        let file = paths
            .entry(f.clone())
            .or_insert_with(|| Arc::from(Path::new(f.as_ref())))
            .clone();
        let line = r.u32()?;
        let op = r.str()?;
        let flag = r.opt()?;
        let detail = r.str()?;
        e.history.push(HistoryEntry {
            file,
            line,
            op: static_op(&op),
            flag,
            detail,
        });
    }
    Some(e)
}

/// Write `parsed` into `w` (the head); each recipe's variables into a
/// section of their own, returned with where in the head's body its length
/// goes.
fn encode_parsed(w: &mut Writer, parsed: &Parsed, base: &Arc<DataStore>) -> Vec<(usize, Writer)> {
    let (recipes, diags) = parsed;
    let mut blobs = Vec::with_capacity(recipes.len());
    w.u32(recipes.len() as u32);
    for r in recipes {
        w.str(&r.file.to_string_lossy());
        w.opt(r.variant.as_deref());
        w.str(&r.layer);
        w.str(&r.pn);
        w.str(&r.pv);
        w.str(&r.pr);
        w.u32(r.inputs.len() as u32);
        for i in &r.inputs {
            w.str(&i.to_string_lossy());
        }
        w.u32(r.appends.len() as u32);
        for a in &r.appends {
            w.str(&a.to_string_lossy());
        }
        w.opt(r.skip.as_deref());
        let vars = r.data.vars_above(base);
        let mut keys: Vec<&Arc<str>> = vars.keys().collect();
        keys.sort();
        let mut b = Writer::default();
        b.u32(keys.len() as u32);
        for k in keys {
            b.arc(k);
            if let Some(e) = vars.get(k) {
                encode_entry(&mut b, e);
            }
        }
        // The section's length, known once its objects are kept
        // (`entry_bytes`).
        blobs.push((w.body.len(), b));
        w.raw(&[0; 8]);
    }
    w.u32(diags.len() as u32);
    for d in diags {
        w.body.push(match d.severity {
            Severity::Note => 0,
            Severity::Warning => 1,
            Severity::Error => 2,
        });
        w.str(&d.file.to_string_lossy());
        w.u32(d.line);
        w.u32(d.col);
        w.str(&d.message);
        w.str(&d.snippet);
        w.body.push(u8::from(d.fatal));
    }
    blobs
}

/// A whole datastore (every layer flattened: values, flags, history) as
/// bytes, for Python's pickling of `d` (BitBake's DataSmart pickles): one
/// section, as a recipe's variables are written in an entry.
pub fn datastore_bytes(ds: &DataStore) -> Vec<u8> {
    // A base no layer is: `vars_above` flattens the whole chain.
    let vars = ds.vars_above(&Arc::new(DataStore::new()));
    let mut keys: Vec<&Arc<str>> = vars.keys().collect();
    keys.sort();
    let mut w = Writer::default();
    w.u32(keys.len() as u32);
    for k in keys {
        w.arc(k);
        if let Some(e) = vars.get(k) {
            encode_entry(&mut w, e);
        }
    }
    let mut out = Vec::new();
    w.finish(&mut out);
    out
}

/// The datastore [`datastore_bytes`] wrote, or None when `bytes` is not
/// one (truncated, or another format).
pub fn datastore_from_bytes(bytes: &[u8]) -> Option<DataStore> {
    let strings = Mutex::new(hashbrown::HashSet::new());
    let mut r = Reader::new(Arc::from(bytes), &strings)?;
    let vars = read_vars(&mut r)?;
    (r.pos == r.b.len()).then(|| DataStore::from_vars(vars))
}

/// A section's variables, or None when the section is damaged.
fn read_vars(r: &mut Reader) -> Option<VarMap> {
    let mut paths: HashMap<Arc<str>, Arc<Path>> = HashMap::new();
    let nv = r.u32()?;
    let mut vars = VarMap::with_capacity(nv as usize);
    for _ in 0..nv {
        let (k, e) = r.str().zip(decode_entry(r, &mut paths))?;
        vars.insert(k, e);
    }
    Some(vars)
}

/// A recipe layer's variables, from its section (`map[start..end]`) of an
/// entry whose structure is checked here: a damaged file is logged and
/// gives no variables.
fn decode_vars(map: &memmap2::Mmap, start: usize, end: usize, strings: &Strings) -> VarMap {
    let vars = map
        .get(start..end)
        .and_then(|b| Reader::new(Arc::from(b), strings))
        .and_then(|mut r| read_vars(&mut r));
    vars.unwrap_or_else(|| {
        tracing::error!(
            "parse cache entry damaged; clear the parse cache (the cache directory's parse/)"
        );
        VarMap::default()
    })
}

/// The head's recipes and diagnostics; each recipe's variables are decoded
/// from their section of `map` when first used.
fn decode_parsed(
    r: &mut Reader,
    base: &Arc<DataStore>,
    map: &Arc<memmap2::Mmap>,
    strings: &Strings,
) -> Option<Parsed> {
    // The sections follow the head (`r` reads a copy of it).
    let mut next = 48 + r.b.len();
    let n = r.u32()?;
    let mut recipes = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let file = PathBuf::from(r.str()?.as_ref());
        let variant = r.opt()?.map(|s| s.to_string());
        let layer = r.str()?.to_string();
        let pn = r.str()?.to_string();
        let pv = r.str()?.to_string();
        let pr = r.str()?.to_string();
        let ni = r.u32()?;
        let mut inputs = Vec::with_capacity(ni as usize);
        for _ in 0..ni {
            inputs.push(PathBuf::from(r.str()?.as_ref()));
        }
        let na = r.u32()?;
        let mut appends = Vec::with_capacity(na as usize);
        for _ in 0..na {
            appends.push(PathBuf::from(r.str()?.as_ref()));
        }
        let skip = r.opt()?.map(|s| s.to_string());
        // The variables are decoded (and checked) when first used.
        let len = usize::try_from(u64::from_le_bytes(r.take(8)?.try_into().ok()?)).ok()?;
        let (start, end) = (next, next.checked_add(len)?);
        if end > map.len() {
            return None;
        }
        next = end;
        let (map, strings) = (map.clone(), strings.clone());
        let vars = LocalVars::lazy(Box::new(move || decode_vars(&map, start, end, &strings)));
        recipes.push(Recipe {
            file,
            variant,
            layer,
            pn,
            pv,
            pr,
            skip,
            data: DataStore::from_parts(base.clone(), vars),
            inputs,
            appends,
        });
    }
    let nd = r.u32()?;
    let mut diags = Vec::with_capacity(nd as usize);
    for _ in 0..nd {
        let severity = match r.u8()? {
            0 => Severity::Note,
            1 => Severity::Warning,
            _ => Severity::Error,
        };
        diags.push(Diagnostic {
            severity,
            file: PathBuf::from(r.str()?.as_ref()),
            line: r.u32()?,
            col: r.u32()?,
            message: r.str()?.to_string(),
            snippet: r.str()?.to_string(),
            fatal: r.u8()? != 0,
            log_as: None,
        });
    }
    Some((recipes, diags))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::os::unix::fs::MetadataExt;

    /// Inode of every entry file: a hit leaves an entry alone, a miss
    /// writes it again (a new file renamed into place).
    fn entries(dir: &Path) -> BTreeMap<PathBuf, u64> {
        std::fs::read_dir(dir.join("v2"))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.path(), e.metadata().unwrap().ino())
            })
            .collect()
    }

    /// The workspace of `layers` (meta-core, meta-app) parsed with the
    /// parse cache in `cache`.
    fn parse(layers: &Path, cache: &Path, jobs: usize) -> crate::Workspace {
        let rs = layers.to_string_lossy();
        let input = crate::ConfInput {
            topdir: cache.join("build"),
            bblayers_conf: Some(format!(
                "BBPATH = \"${{TOPDIR}}\"\nBBLAYERS = \"{rs}/meta-core {rs}/meta-app\"\n"
            )),
            local_conf: Some("MACHINE = \"qemux86-64\"\nDISTRO = \"testdistro\"\n".into()),
            env: BTreeMap::new(),
        };
        let opts = crate::ParseOptions {
            cache_dir: Some(cache.to_path_buf()),
            jobs: Some(jobs),
            ..Default::default()
        };
        crate::load_workspace(&input, &crate::FsLoader, &opts).unwrap()
    }

    fn load(cache: &Path, semantics: Option<&str>) {
        SEMANTICS_OVERRIDE.with(|o| *o.borrow_mut() = semantics.map(str::to_string));
        let layers = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/meta/basic");
        let ws = parse(&layers, cache, 1);
        assert!(ws.recipes.iter().any(|r| r.pn == "busybox"));
        SEMANTICS_OVERRIDE.with(|o| *o.borrow_mut() = None);
    }

    fn copy_tree(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                copy_tree(&e.path(), &to.join(e.file_name()));
            } else {
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
    }

    /// Every recipe (skipped ones too) as a listing shows it, with its
    /// whole environment (which decodes each recipe's variables).
    fn listing(layers: &Path, cache: &Path) -> Vec<String> {
        let ws = parse(layers, cache, 2);
        ws.recipes
            .iter()
            .chain(&ws.skipped)
            .map(|r| {
                let env = crate::emit_env(&r.data, &crate::EmitOptions::default());
                format!(
                    "{} {} {} {} {:?}\n{env}",
                    r.virtual_name(),
                    r.pn,
                    r.pv,
                    r.pr,
                    r.skip
                )
            })
            .collect()
    }

    #[test]
    fn a_warm_listing_equals_a_cold_one_and_a_changed_input_reparses() {
        let t = tempfile::tempdir().unwrap();
        let layers = t.path().join("layers");
        copy_tree(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/meta/basic"),
            &layers,
        );
        let cache = t.path().join("cache");
        let cold = listing(&layers, &cache);
        let written = entries(&cache);
        assert!(written.len() >= 2, "entries written: {written:?}");
        let warm = listing(&layers, &cache);
        assert_eq!(entries(&cache), written, "a warm load writes nothing");
        assert_eq!(warm, cold);
        assert!(
            cold.iter().any(|r| r.contains("SUMMARY=\"Tiny versions")),
            "{cold:?}"
        );
        // A bbappend's edit re-parses its recipe (a new entry), and only it.
        let append = layers.join("meta-app/recipes-core/busybox/busybox_%.bbappend");
        let text = std::fs::read_to_string(&append).unwrap();
        std::fs::write(&append, format!("{text}\nEDITED_BY_TEST = \"yes\"\n")).unwrap();
        let edited = listing(&layers, &cache);
        let after = entries(&cache);
        assert_eq!(
            after
                .iter()
                .filter(|(p, i)| written.get(*p) != Some(i))
                .count(),
            1,
            "exactly busybox's entry is written again"
        );
        assert!(edited.iter().any(|r| r.contains("EDITED_BY_TEST=\"yes\"")));
        std::fs::remove_dir_all(&cache).unwrap();
        assert_eq!(listing(&layers, &cache), edited, "equal to a cold parse");
    }

    #[test]
    fn semantics_name_the_version_and_the_constant() {
        let s = semantics();
        assert!(s.contains(env!("CARGO_PKG_VERSION")), "{s}");
        assert!(
            s.ends_with(&format!("parse-semantics {PARSE_SEMANTICS}")),
            "{s}"
        );
    }

    #[test]
    fn entries_of_other_semantics_are_never_used() {
        let t = tempfile::tempdir().unwrap();
        let cache = t.path();
        load(cache, Some("bitzel-meta 0.0.1 parse-semantics 1"));
        let old = entries(cache);
        assert!(old.len() >= 2, "entries written: {old:?}");
        load(cache, Some("bitzel-meta 0.0.1 parse-semantics 1"));
        assert_eq!(entries(cache), old, "same semantics: every entry is a hit");
        // An upgraded binary (or a bumped PARSE_SEMANTICS) reparses all.
        load(cache, None);
        let new = entries(cache);
        assert_eq!(new.len(), old.len());
        for (p, ino) in &new {
            assert_ne!(old.get(p), Some(ino), "{} was reused", p.display());
        }
        load(cache, None);
        assert_eq!(entries(cache), new, "and then hits again");
        load(cache, Some("bitzel-meta 0.0.1 parse-semantics 2"));
        assert!(entries(cache).iter().all(|(p, i)| new.get(p) != Some(i)));
    }
}
