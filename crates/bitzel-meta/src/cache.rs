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
use crate::workspace::BaseConfig;
use crate::Recipe;

const MAGIC: &[u8; 8] = b"BZPC\0\0\0\x02";

/// Bump whenever what a parse produces changes without the crate version
/// changing (a fix in the evaluator, the Python subset, anonymous
/// functions, the stored format...): entries made by older semantics are
/// then never used.
pub const PARSE_SEMANTICS: u32 = 4;

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
}

/// What a recipe parse produced, with the inputs it read.
pub(crate) type Parsed = (Vec<Recipe>, Vec<Diagnostic>);

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
        Ok(ParseCache {
            dir,
            base_key: *h.finalize().as_bytes(),
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

    pub(crate) fn lookup(
        &self,
        env: &Env<'_>,
        base: &BaseConfig,
        file: &Path,
        appends: &[&PathBuf],
        layer: &str,
    ) -> Option<Parsed> {
        let bytes = std::fs::read(self.entry_path(file, appends, layer)).ok()?;
        let mut r = Reader::new(&bytes)?;
        if r.take(32)? != self.base_key {
            return None;
        }
        let n = r.u32()?;
        for _ in 0..n {
            let p = PathBuf::from(r.str()?.as_ref());
            let d = r.digest_opt()?;
            if self.digest(env, &p) != d {
                return None;
            }
        }
        let out = decode_parsed(&mut r, &base.data);
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
        w.raw(&self.base_key);
        w.u32(inputs.len() as u32);
        for (p, d) in inputs {
            w.str(&p.to_string_lossy());
            w.digest_opt(d.as_ref());
        }
        encode_parsed(&mut w, parsed, &base.data);
        if w.table
            .iter()
            .any(|s| s.contains(crate::python::PROCESS_LOCAL))
        {
            // A Python object that lives in this process only: an entry
            // would read back wrong, so there is none.
            tracing::debug!(file = %file.display(), "holds a process-local Python object; not cached");
            return Ok(());
        }
        let path = self.entry_path(file, appends, layer);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let data = w.finish();
        std::fs::write(&tmp, &data).map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(())
    }
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
    fn finish(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 64);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.table.len() as u32).to_le_bytes());
        for s in &self.table {
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        out.extend_from_slice(&self.body);
        out
    }
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
    table: Vec<Arc<str>>,
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8]) -> Option<Reader<'a>> {
        let mut r = Reader {
            b,
            pos: 0,
            table: Vec::new(),
        };
        if r.take(8)? != MAGIC {
            return None;
        }
        let n = r.u32()? as usize;
        let mut table = Vec::with_capacity(n.min(1 << 20));
        for _ in 0..n {
            let len = r.u32()? as usize;
            let s = std::str::from_utf8(r.take(len)?).ok()?;
            table.push(Arc::from(s));
        }
        r.table = table;
        Some(r)
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
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

fn decode_cond(r: &mut Reader<'_>) -> Option<Vec<CondValue>> {
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

fn decode_entry(r: &mut Reader<'_>, paths: &mut HashMap<Arc<str>, Arc<Path>>) -> Option<VarEntry> {
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
            op: Cow::Owned(op.to_string()),
            flag,
            detail,
        });
    }
    Some(e)
}

fn encode_parsed(w: &mut Writer, parsed: &Parsed, base: &Arc<DataStore>) {
    let (recipes, diags) = parsed;
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
        let vars = r.data.vars_above(base);
        let mut keys: Vec<&Arc<str>> = vars.keys().collect();
        keys.sort();
        w.u32(keys.len() as u32);
        for k in keys {
            w.arc(k);
            if let Some(e) = vars.get(k) {
                encode_entry(w, e);
            }
        }
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
    }
}

fn decode_parsed(r: &mut Reader<'_>, base: &Arc<DataStore>) -> Option<Parsed> {
    let mut paths: HashMap<Arc<str>, Arc<Path>> = HashMap::new();
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
        let nv = r.u32()?;
        let mut vars: HashMap<Arc<str>, VarEntry> = HashMap::with_capacity(nv as usize);
        for _ in 0..nv {
            let k = r.str()?;
            let e = decode_entry(r, &mut paths)?;
            vars.insert(k, e);
        }
        recipes.push(Recipe {
            file,
            variant,
            layer,
            pn,
            pv,
            pr,
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

    fn load(cache: &Path, semantics: Option<&str>) {
        SEMANTICS_OVERRIDE.with(|o| *o.borrow_mut() = semantics.map(str::to_string));
        let layers = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/meta/basic");
        let rs = layers.to_string_lossy();
        let input = crate::ConfInput {
            topdir: cache.join("build"),
            bblayers_conf: format!(
                "BBPATH = \"${{TOPDIR}}\"\nBBLAYERS = \"{rs}/meta-core {rs}/meta-app\"\n"
            ),
            local_conf: "MACHINE = \"qemux86-64\"\nDISTRO = \"testdistro\"\n".into(),
            env: BTreeMap::new(),
        };
        let opts = crate::ParseOptions {
            cache_dir: Some(cache.to_path_buf()),
            jobs: Some(1),
        };
        let ws = crate::load_workspace(&input, &crate::FsLoader, &opts).unwrap();
        assert!(ws.recipes.iter().any(|r| r.pn == "busybox"));
        SEMANTICS_OVERRIDE.with(|o| *o.borrow_mut() = None);
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
