//! `bitzel cache stats | verify | gc`: sizes and hit rates, full
//! verification with repair, and size-bounded LRU eviction that never
//! breaks a kept entry.
//!
//! `verify` and `gc` run under the exclusive maintenance lock and keep
//! whatever a live process holds (its leases: trees it restored, captured
//! or mounted, blobs it stored) — see `lease.rs`.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rayon::prelude::*;

use crate::cache::{rebuild_history, Cache};
use crate::digest::{ActionKey, Digest};
use crate::error::{Error, Result};
use crate::fsutil::remove_any;
use crate::index::BuildRecord;
use crate::layer::{host_dir_mode, host_file_mode};
use crate::tree::{capture, EntryKind, Tree};

/// Parse a size such as `500M`, `10G`, `1.5T`, `4096` (bytes; K/M/G/T are
/// powers of 1024, an optional trailing `B`/`iB` is accepted).
pub fn parse_size(s: &str) -> Result<u64> {
    let bad = || Error::BadSize {
        input: s.to_string(),
    };
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, mult) = match t.chars().last() {
        Some(c @ ('k' | 'K' | 'm' | 'M' | 'g' | 'G' | 't' | 'T')) => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                _ => 1 << 40,
            };
            (&t[..t.len() - 1], m)
        }
        _ => (t, 1),
    };
    let v: f64 = num.trim().parse().map_err(|_| bad())?;
    if !v.is_finite() || v < 0.0 {
        return Err(bad());
    }
    Ok((v * mult as f64) as u64)
}

/// A byte count for people: `512 B`, `1.5 KiB`, `512.0 MiB` (powers of 1024,
/// the inverse of [`parse_size`]).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    match UNITS.get(u) {
        Some(unit) if u > 0 => format!("{v:.1} {unit}"),
        _ => format!("{bytes} B"),
    }
}

/// The bytes of the regular files below `p` that `keep` accepts (by metadata).
fn file_bytes(p: &Path, keep: impl Fn(&std::fs::Metadata) -> bool) -> u64 {
    walkdir::WalkDir::new(p)
        .follow_links(false)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .filter(|m| keep(m))
        .map(|m| m.len())
        .sum()
}

fn dir_bytes(p: &Path) -> u64 {
    file_bytes(p, |_| true)
}

/// The bytes a layer holds on its own: files not linked elsewhere (a file
/// hard-linked to a CAS blob is the blob's bytes, counted with the blob and
/// not freed by removing the layer).
fn layer_own_bytes(p: &Path) -> u64 {
    file_bytes(p, |m| m.nlink() == 1)
}

/// The bytes of the distinct files below `dirs`: a file with several hard
/// links (here or in another of `dirs`) counts once, by its inode.
fn distinct_file_bytes(dirs: &[PathBuf]) -> u64 {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    for dir in dirs {
        for e in walkdir::WalkDir::new(dir)
            .follow_links(false)
            .into_iter()
            .flatten()
        {
            if !e.file_type().is_file() {
                continue;
            }
            if let Ok(m) = e.metadata() {
                if seen.insert((m.dev(), m.ino())) {
                    total += m.len();
                }
            }
        }
    }
    total
}

/// Sizes and statistics of a cache.
#[derive(Debug, Clone, Default)]
pub struct CacheStats {
    /// Blobs in the CAS.
    pub blobs: u64,
    /// Their total size.
    pub blob_bytes: u64,
    /// Action-cache entries.
    pub entries: u64,
    /// Their total size.
    pub entry_bytes: u64,
    /// Materialised layers.
    pub layers: u64,
    /// Their total size.
    pub layer_bytes: u64,
    /// What blobs, entries and layers take on disk: each distinct file
    /// (inode) once, so hard links between them count once.
    pub disk_bytes: u64,
    /// Recent builds (newest first), empty if the index could not be read.
    pub builds: Vec<BuildRecord>,
    /// Why `builds` is empty, when it is because of the index.
    pub index_note: Option<String>,
}

impl CacheStats {
    /// The logical size: blobs, entries and layers, each file counted
    /// wherever it appears.
    pub fn total_bytes(&self) -> u64 {
        self.blob_bytes + self.entry_bytes + self.layer_bytes
    }

    /// What blobs and layers take on disk per byte of distinct blobs
    /// (action-cache entries, never linked, left out): 1.0 when every layer
    /// file is a hard link to its blob, 2.0 when layers hold copies.
    pub fn disk_per_blob(&self) -> f64 {
        self.disk_bytes.saturating_sub(self.entry_bytes) as f64 / self.blob_bytes.max(1) as f64
    }

    /// What sharing files (hard links) saves: logical minus on-disk size.
    pub fn dedup_saved(&self) -> u64 {
        self.total_bytes().saturating_sub(self.disk_bytes)
    }
}

/// What [`Cache::verify`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Blobs rehashed.
    pub blobs_checked: u64,
    /// Blobs whose content did not match their name (removed).
    pub corrupt_blobs: Vec<Digest>,
    /// Entries checked.
    pub entries_checked: u64,
    /// Entries that did not decode (removed).
    pub unreadable_entries: Vec<ActionKey>,
    /// Entries referencing a missing blob (removed): key, label, blob.
    pub broken_entries: Vec<(ActionKey, String, Digest)>,
    /// Layers checked against their manifest.
    pub layers_checked: u64,
    /// Layers that differed from their manifest or had none (removed).
    pub broken_layers: Vec<String>,
    /// Layers without their completion stamp (creation cut short by a
    /// crash; removed, made again on demand). Not an inconsistency.
    pub unfinished_layers: u64,
    /// Layers a running build holds (possibly mounted): not checked, kept.
    pub layers_in_use: u64,
    /// Stale temp files and directories, and stamps or lock files of
    /// absent layers, removed.
    pub temp_removed: u64,
    /// Entries the rebuilt index knows.
    pub index_entries: u64,
}

impl VerifyReport {
    /// True when nothing was wrong.
    pub fn is_clean(&self) -> bool {
        self.corrupt_blobs.is_empty()
            && self.unreadable_entries.is_empty()
            && self.broken_entries.is_empty()
            && self.broken_layers.is_empty()
    }
}

/// Options of [`Cache::gc`].
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Target size of the whole cache directory.
    pub max_bytes: u64,
    /// Unreferenced blobs and temp files younger than this are kept: a
    /// running build may have stored them and not yet written its entry.
    pub grace: Duration,
}

impl GcOptions {
    /// `max_bytes` with the default 10-minute grace period.
    pub fn max_size(max_bytes: u64) -> GcOptions {
        GcOptions {
            max_bytes,
            grace: Duration::from_secs(600),
        }
    }
}

/// What [`Cache::gc`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Size before.
    pub bytes_before: u64,
    /// Size after.
    pub bytes_after: u64,
    /// Entries kept.
    pub entries_kept: u64,
    /// Entries evicted (least recently used first).
    pub entries_evicted: u64,
    /// Blobs deleted.
    pub blobs_removed: u64,
    /// Layers deleted.
    pub layers_removed: u64,
    /// Blobs kept because a running build holds them.
    pub blobs_in_use: u64,
    /// Layers kept because a running build holds them.
    pub layers_in_use: u64,
}

/// What [`Cache::forget`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForgetReport {
    /// The entries forgotten, as (label, key), sorted.
    pub entries: Vec<(String, ActionKey)>,
    /// The entries' size on disk.
    pub entry_bytes: u64,
    /// Blobs only those entries referenced (deleted).
    pub blobs_removed: u64,
    /// Their size.
    pub blob_bytes: u64,
    /// Materialised layers of trees only those entries referenced (deleted).
    pub layers_removed: u64,
    /// Their size.
    pub layer_bytes: u64,
}

impl ForgetReport {
    /// Everything deleted, in bytes.
    pub fn total_bytes(&self) -> u64 {
        self.entry_bytes + self.blob_bytes + self.layer_bytes
    }
}

fn older_than(p: &Path, cutoff: i64) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.mtime() < cutoff)
}

fn now_secs() -> i64 {
    i64::try_from(crate::action::now_unix_ms() / 1000).unwrap_or(i64::MAX)
}

/// Normalise a tree for comparing a layer with its manifest: modes as
/// materialised on the host (no setuid/setgid, directories with the
/// owner's rwx added).
fn normalised(t: &Tree) -> Vec<(String, EntryKind)> {
    t.entries()
        .iter()
        .map(|e| {
            let k = match &e.kind {
                EntryKind::Dir { mode, opaque } => EntryKind::Dir {
                    mode: host_dir_mode(*mode),
                    opaque: *opaque,
                },
                EntryKind::File { digest, size, mode } => EntryKind::File {
                    digest: *digest,
                    size: *size,
                    mode: host_file_mode(*mode),
                },
                k => k.clone(),
            };
            (e.path.clone(), k)
        })
        .collect()
}

impl Cache {
    /// Sizes, counts and recent builds' hit rates.
    pub fn stats(&self) -> Result<CacheStats> {
        let blobs = self.cas().list()?;
        let entries = self.local().list_actions()?;
        let mut s = CacheStats {
            blobs: blobs.len() as u64,
            blob_bytes: blobs.iter().map(|b| b.size).sum(),
            entries: entries.len() as u64,
            entry_bytes: entries.iter().map(|e| e.2).sum(),
            ..CacheStats::default()
        };
        let mut roots = vec![self.cas().dir().to_path_buf(), self.root().join("ac")];
        for l in self.layer_dirs()? {
            s.layers += 1;
            let p = self.layer_path(&l);
            s.layer_bytes += dir_bytes(&p);
            roots.push(p);
        }
        s.disk_bytes = distinct_file_bytes(&roots);
        match self.with_index(|idx| idx.builds()) {
            Ok(b) => s.builds = b,
            Err(e) => s.index_note = Some(e.to_string()),
        }
        Ok(s)
    }

    fn layer_dirs(&self) -> Result<Vec<Digest>> {
        let dir = self.root().join("layers");
        let mut out = Vec::new();
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(_) => return Ok(out),
        };
        for e in rd.flatten() {
            if let Some(d) = e.file_name().to_str().and_then(|n| n.parse().ok()) {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Remove stamps and lock files whose layer directory is gone. Under
    /// the exclusive lock (no layer is being created).
    fn clean_layer_files(&self) -> u64 {
        let dir = self.root().join("layers");
        let Ok(rd) = fs::read_dir(&dir) else { return 0 };
        let mut n = 0;
        for e in rd.flatten() {
            let name = e.file_name();
            let Some((hex, ext)) = name.to_str().and_then(|n| n.split_once('.')) else {
                continue;
            };
            if !matches!(ext, "stamp" | "lock") || hex.parse::<Digest>().is_err() {
                continue;
            }
            if !dir.join(hex).is_dir() && remove_any(&e.path()).is_ok() {
                n += 1;
            }
        }
        n
    }

    fn clean_temp(&self, cutoff: i64) -> u64 {
        let mut n = 0;
        let tmp = self.cas().tmp_dir().to_path_buf();
        let layers = self.root().join("layers");
        for (dir, only_dot) in [(tmp, false), (layers, true)] {
            let Ok(rd) = fs::read_dir(&dir) else { continue };
            for e in rd.flatten() {
                let name = e.file_name();
                let is_tmp = !only_dot || name.to_str().is_some_and(|n| n.starts_with(".tmp"));
                if is_tmp && older_than(&e.path(), cutoff) && remove_any(&e.path()).is_ok() {
                    n += 1;
                }
            }
        }
        n
    }

    /// Full verification: rehash every blob (removing corrupt ones), check
    /// every entry's references (removing broken entries), check every
    /// layer against its manifest (removing bad ones and unstamped ones),
    /// remove stale temp files, rebuild the index. Afterwards every entry
    /// is usable. Waits for running builds' steps in progress (not for the
    /// builds); layers a running build holds are neither checked nor
    /// removed. Corrupt blobs are removed even when held: a build reading
    /// one removes it itself.
    pub fn verify(&self) -> Result<VerifyReport> {
        let excl = self.leases.exclusive()?;
        let held = self.leases.live(&excl);
        let mut r = VerifyReport {
            temp_removed: self.clean_temp(now_secs() - 600) + self.clean_layer_files(),
            ..VerifyReport::default()
        };
        let blobs = self.cas().list()?;
        r.blobs_checked = blobs.len() as u64;
        let corrupt: Vec<Digest> = blobs
            .par_iter()
            .filter_map(|b| match self.cas().verify(&b.digest) {
                Err(Error::CorruptBlob { .. }) => Some(b.digest),
                _ => None,
            })
            .collect();
        r.corrupt_blobs = corrupt;
        for (key, _, _) in self.local().list_actions()? {
            r.entries_checked += 1;
            match self.local().read_action(&key) {
                Ok(Some(res)) => {
                    if let Some(missing) = self.first_missing_blob(&res)? {
                        self.local().remove_action(&key)?;
                        r.broken_entries.push((key, res.label.clone(), missing));
                    }
                }
                Ok(None) => {}
                Err(Error::Corrupt { .. }) => {
                    self.local().remove_action(&key)?;
                    r.unreadable_entries.push(key);
                }
                Err(e) => return Err(e),
            }
        }
        for d in self.layer_dirs()? {
            if held.trees.contains(&d) {
                r.layers_in_use += 1;
                continue;
            }
            if !self.layer_ready(&d) {
                self.remove_layer(&d)?;
                r.unfinished_layers += 1;
                continue;
            }
            r.layers_checked += 1;
            let path = self.layer_path(&d);
            let good = match (self.read_tree(&d), capture(&path, None)) {
                (Ok(want), Ok((have, _))) => normalised(&want) == normalised(&have),
                _ => false,
            };
            if !good {
                self.remove_layer(&d)?;
                r.broken_layers.push(d.to_hex());
            }
        }
        let local = self.local().clone();
        r.index_entries = self.with_index(|idx| rebuild_history(idx, &local))? as u64;
        Ok(r)
    }

    /// Evict least-recently-used entries until the cache fits in
    /// `opts.max_bytes`, then delete every blob and layer no kept entry
    /// references, except what a running build holds (its leases) and
    /// blobs younger than the grace period. A kept entry never loses a
    /// blob; a running build never loses a blob or layer it holds. Waits
    /// for running builds' steps in progress, not for the builds.
    pub fn gc(&self, opts: &GcOptions) -> Result<GcReport> {
        let excl = self.leases.exclusive()?;
        let held = self.leases.live(&excl);
        let before = self.stats_sizes()?;
        let cutoff = now_secs() - i64::try_from(opts.grace.as_secs()).unwrap_or(i64::MAX);
        self.clean_temp(cutoff);
        self.clean_layer_files();
        let mut entries = self.local().list_actions()?;
        // Most recently used first; ties broken by key for determinism.
        entries.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let sizes: std::collections::BTreeMap<Digest, u64> = self
            .cas()
            .list()?
            .into_iter()
            .map(|b| (b.digest, b.size))
            .collect();
        let mut report = GcReport {
            bytes_before: before,
            ..GcReport::default()
        };
        // Unfinished layers go at once; held ones stay whatever their state.
        let mut existing_layers: BTreeSet<Digest> = BTreeSet::new();
        for d in self.layer_dirs()? {
            if self.layer_ready(&d) {
                existing_layers.insert(d);
            } else if !held.trees.contains(&d) {
                self.remove_layer(&d)?;
                report.layers_removed += 1;
            }
        }
        // What running builds hold is kept first and counts towards the size.
        let mut kept_blobs: BTreeSet<Digest> = held.blobs.clone();
        let mut kept_layers: BTreeSet<Digest> = BTreeSet::new();
        for t in &held.trees {
            kept_blobs.insert(*t);
            if let Ok(tree) = self.read_tree(t) {
                kept_blobs.extend(tree.blobs());
            }
            if self.layer_path(t).is_dir() {
                kept_layers.insert(*t);
            }
        }
        kept_blobs.retain(|b| sizes.contains_key(b));
        report.blobs_in_use = kept_blobs.len() as u64;
        report.layers_in_use = kept_layers.len() as u64;
        let mut used: u64 = kept_blobs.iter().filter_map(|b| sizes.get(b)).sum::<u64>()
            + kept_layers
                .iter()
                .map(|l| layer_own_bytes(&self.layer_path(l)))
                .sum::<u64>();
        let mut full = false;
        let mut evicted_labels = Vec::new();
        for (key, _, entry_size) in entries {
            let res = match self.local().read_action(&key) {
                Ok(Some(res)) => res,
                _ => {
                    self.local().remove_action(&key)?;
                    continue;
                }
            };
            // What keeping this entry adds.
            let mut new_blobs = BTreeSet::new();
            let mut new_layers = BTreeSet::new();
            let mut complete = true;
            for t in res.trees() {
                let Ok(tree) = self.read_tree(&t) else {
                    complete = false;
                    break;
                };
                new_blobs.insert(t);
                new_blobs.extend(tree.blobs());
                if existing_layers.contains(&t) {
                    new_layers.insert(t);
                }
            }
            new_blobs.extend(res.log_blobs());
            let mut add = entry_size;
            for b in &new_blobs {
                if !kept_blobs.contains(b) {
                    match sizes.get(b) {
                        Some(s) => add += s,
                        None => complete = false,
                    }
                }
            }
            for l in &new_layers {
                if !kept_layers.contains(l) {
                    add += layer_own_bytes(&self.layer_path(l));
                }
            }
            if !complete {
                self.local().remove_action(&key)?;
                evicted_labels.push((res.label.clone(), key));
                continue;
            }
            if !full && used + add <= opts.max_bytes {
                used += add;
                kept_blobs.extend(new_blobs);
                kept_layers.extend(new_layers);
                report.entries_kept += 1;
            } else {
                full = true;
                self.local().remove_action(&key)?;
                report.entries_evicted += 1;
                evicted_labels.push((res.label.clone(), key));
            }
        }
        for b in self.cas().list()? {
            if !kept_blobs.contains(&b.digest) && (opts.grace.is_zero() || b.mtime < cutoff) {
                self.cas().remove(&b.digest)?;
                report.blobs_removed += 1;
            }
        }
        for l in existing_layers {
            if !kept_layers.contains(&l) {
                self.remove_layer(&l)?;
                report.layers_removed += 1;
            }
        }
        if !evicted_labels.is_empty() {
            let res = self.with_index(|idx| {
                for (label, key) in &evicted_labels {
                    idx.forget(label, key)?;
                }
                Ok(())
            });
            if let Err(e) = res {
                tracing::warn!(
                    "evicted entries stay in the explain history until `bitzel cache verify`: {e}"
                );
            }
        }
        report.bytes_after = self.stats_sizes()?;
        Ok(report)
    }

    /// Forget every local entry whose label `matches` (`bitzel build -c
    /// cleansstate`: the tasks of one recipe), then delete the blobs and
    /// layers only those entries referenced. What another entry references
    /// or a running build holds stays; nothing but this cache directory's
    /// local level is touched (a remote keeps its entries). Entries that do
    /// not decode are left to [`Cache::verify`]. Waits for running builds'
    /// steps in progress, not for the builds.
    pub fn forget(&self, matches: impl Fn(&str) -> bool) -> Result<ForgetReport> {
        let excl = self.leases.exclusive()?;
        let held = self.leases.live(&excl);
        let mut report = ForgetReport::default();
        let mut keep: BTreeSet<Digest> = held.blobs.clone();
        for t in &held.trees {
            keep.extend(self.closure(&[*t], &[]));
        }
        let mut doomed: BTreeSet<Digest> = BTreeSet::new();
        let mut doomed_trees: BTreeSet<Digest> = BTreeSet::new();
        for (key, _, size) in self.local().list_actions()? {
            let Ok(Some(res)) = self.local().read_action(&key) else {
                continue;
            };
            let refs = self.closure(&res.trees(), &res.log_blobs());
            if matches(&res.label) {
                self.local().remove_action(&key)?;
                report.entry_bytes += size;
                report.entries.push((res.label.clone(), key));
                doomed.extend(refs);
                doomed_trees.extend(res.trees());
            } else {
                keep.extend(refs);
            }
        }
        report.entries.sort();
        for b in doomed.difference(&keep) {
            let path = self.cas().blob_path(b);
            let Ok(md) = fs::symlink_metadata(&path) else {
                continue;
            };
            self.cas().remove(b)?;
            report.blobs_removed += 1;
            report.blob_bytes += md.len();
        }
        for t in doomed_trees.difference(&keep) {
            let path = self.layer_path(t);
            if path.is_dir() && !held.trees.contains(t) {
                report.layer_bytes += layer_own_bytes(&path);
                self.remove_layer(t)?;
                report.layers_removed += 1;
            }
        }
        if !report.entries.is_empty() {
            let res = self.with_index(|idx| {
                for (label, key) in &report.entries {
                    idx.forget(label, key)?;
                }
                Ok(())
            });
            if let Err(e) = res {
                tracing::warn!(
                    "forgotten entries stay in the explain history until `bitzel cache verify`: {e}"
                );
            }
        }
        Ok(report)
    }

    /// The trees `trees` (manifests and the blobs they list, as far as they
    /// can be read) and the plain blobs `blobs`.
    fn closure(&self, trees: &[Digest], blobs: &[Digest]) -> BTreeSet<Digest> {
        let mut out: BTreeSet<Digest> = blobs.iter().copied().collect();
        for t in trees {
            out.insert(*t);
            if let Ok(tree) = self.read_tree(t) {
                out.extend(tree.blobs());
            }
        }
        out
    }

    fn stats_sizes(&self) -> Result<u64> {
        let blobs: u64 = self.cas().list()?.iter().map(|b| b.size).sum();
        let entries: u64 = self.local().list_actions()?.iter().map(|e| e.2).sum();
        let layers: u64 = self
            .layer_dirs()?
            .iter()
            .map(|l| layer_own_bytes(&self.layer_path(l)))
            .sum();
        Ok(blobs + entries + layers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("500M").unwrap(), 500 << 20);
        assert_eq!(parse_size("10G").unwrap(), 10 << 30);
        assert_eq!(parse_size("10GiB").unwrap(), 10 << 30);
        assert_eq!(parse_size("1.5k").unwrap(), 1536);
        for bad in ["", "G", "-1G", "ten", "1X"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
