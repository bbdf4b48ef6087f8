//! The content digest of the host build root: everything a task in `host`
//! build-root mode can read from the host (the directories the sandbox binds
//! read-only, e.g. `/usr`, `/etc`), as one [`Digest`] that enters every key.
//!
//! [`host_root_digest`] walks the given paths (symlinks are recorded, never
//! followed) and digests every entry below them canonically: path, kind,
//! permission bits, size and content digest for files, target for symlinks,
//! `rdev` for device nodes (fifos and sockets by kind only). Owners and times
//! are left out, so two machines with identical trees get identical digests.
//!
//! **Speed.** Hashing a distribution's `/usr` (gigabytes) on every build is
//! out of the question, so there are two levels of reuse, both in a
//! machine-wide directory ([`HostDigestCache`]) shared by every project and
//! cache directory of the user:
//!
//! - the *digest memo*: file content digests keyed by (device, inode, size,
//!   mtime, ctime), as git's index and Bazel's file-digest cache do. An edit
//!   in place always moves ctime (no user can set it), so a stamp that
//!   matches means unchanged content.
//! - the *stat fingerprint*: the walk (parallel over directories) hashes every
//!   entry's stat tuple (and symlink target) into a Merkle fingerprint. If it
//!   equals the fingerprint stored with the last result for the same path
//!   list, that result is reused without loading the memo at all — the
//!   no-op build pays for one parallel `lstat` walk and nothing else.
//!
//! **Racy timestamps.** A file modified in the same clock tick as it was
//! examined can change without changing its stamp (git's "racy git"
//! problem). So an entry whose mtime or ctime is within the racy window
//! (2 s) of the moment it was examined is never memoised, and a walk that saw
//! one (or saw the tree change while it ran) stores no fingerprint result.
//!
//! **Exclusions.** Directories named `__pycache__` are left out: Python
//! writes compiled bytecode into `/usr/lib/python3*/…/__pycache__` whenever
//! root imports a module, and those files are derived from the `.py` sources
//! next to them (Python validates them by the source's mtime and size, or
//! hash) — keeping them would change every key whenever anyone runs Python
//! as root, without changing what a task computes.
//!
//! **Unreadable entries.** A file the walking user cannot open, or a
//! directory it cannot list, is recorded as unreadable with its metadata:
//! the task (which runs with no more rights) cannot read it either.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use rayon::prelude::*;

use crate::canon::Encoder;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::write_atomic;

/// Version of the host-root encoding and of the walk's rules (exclusions,
/// fields). Part of every digest and fingerprint.
pub const HOST_ROOT_VERSION: u32 = 1;

/// Directory names the walk leaves out (see the module documentation).
pub const EXCLUDED_DIR_NAMES: &[&str] = &["__pycache__"];

/// An entry whose mtime or ctime is this close to the moment it was examined
/// is neither memoised nor allowed into a stored fingerprint.
pub const RACY_WINDOW: Duration = Duration::from_secs(2);

/// The environment variable naming the machine-wide digest cache directory.
pub const HOST_DIGEST_CACHE_ENV: &str = "BITZEL_HOST_DIGEST_CACHE";

const MEMO_MAGIC: &[u8] = b"bitzel-host-digests-1\n";
const RESULT_MAGIC: &[u8] = b"bitzel-host-root-result-1\n";
/// dev, ino, size (u64 each), mtime, ctime (i128 ns each), digest.
const MEMO_ROW: usize = 8 * 3 + 16 * 2 + 32;
/// Beyond this many rows the memo keeps only the rows the last walk used.
const MEMO_MIN_CAP: usize = 500_000;

/// Where the machine-wide host digest cache lives (see [`HostDigestCache`]).
#[derive(Debug, Clone)]
pub struct HostDigestCache {
    dir: Option<PathBuf>,
    racy_window: Duration,
}

impl HostDigestCache {
    /// The cache in `dir` (created when first written).
    pub fn at(dir: impl Into<PathBuf>) -> HostDigestCache {
        HostDigestCache {
            dir: Some(dir.into()),
            racy_window: RACY_WINDOW,
        }
    }

    /// No persistence: every call hashes every file.
    pub fn none() -> HostDigestCache {
        HostDigestCache {
            dir: None,
            racy_window: RACY_WINDOW,
        }
    }

    /// The machine-wide default: `$BITZEL_HOST_DIGEST_CACHE` if set, else
    /// `/var/cache/bitzel/host-digests` for root, else
    /// `$XDG_CACHE_HOME/bitzel/host-digests` (`~/.cache/...`). `none()` when
    /// no location can be named (no `HOME`).
    pub fn machine_wide() -> HostDigestCache {
        match default_location() {
            Some(d) => HostDigestCache::at(d),
            None => HostDigestCache::none(),
        }
    }

    /// The racy window (default [`RACY_WINDOW`]); tests and benchmarks of
    /// freshly written trees set it to zero.
    pub fn with_racy_window(mut self, window: Duration) -> HostDigestCache {
        self.racy_window = window;
        self
    }

    /// The directory, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    fn memo_file(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join("memo"))
    }

    fn result_file(&self, paths: &[PathBuf]) -> Option<PathBuf> {
        let mut e = Encoder::new("bitzel-host-root-paths", HOST_ROOT_VERSION);
        e.u64(paths.len() as u64);
        for p in paths {
            e.bytes(p.as_os_str().as_bytes());
        }
        let name = Digest::of_bytes(&e.finish()).to_hex();
        self.dir.as_ref().map(|d| d.join("roots").join(name))
    }
}

/// See [`HostDigestCache::machine_wide`].
pub fn default_location() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os(HOST_DIGEST_CACHE_ENV).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(x));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return Some(PathBuf::from("/var/cache/bitzel/host-digests"));
    }
    crate::cache::default_cache_dir().map(|d| d.join("host-digests"))
}

/// The digest of a host build root and how it was obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRootDigest {
    /// The canonical content digest (what enters task keys).
    pub digest: Digest,
    /// The stat fingerprint of the walk it was computed from.
    pub fingerprint: Digest,
    /// Entries walked (files, directories, symlinks, ...), roots included.
    pub entries: u64,
    /// The fingerprint matched the stored one: the last result was reused
    /// and neither the memo nor any file content was read.
    pub reused: bool,
    /// Files whose content was hashed in this call.
    pub hashed_files: u64,
    /// Bytes hashed in this call.
    pub hashed_bytes: u64,
    /// File digests taken from the memo.
    pub memo_hits: u64,
    /// Time spent walking (stat calls and the fingerprint).
    pub walk_time: Duration,
}

/// The entry kinds, as encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Absent = 0,
    File = 1,
    Dir = 2,
    Symlink = 3,
    CharDevice = 4,
    BlockDevice = 5,
    Fifo = 6,
    Socket = 7,
    UnreadableFile = 8,
    UnreadableDir = 9,
}

fn kind_of(ft: fs::FileType) -> Kind {
    if ft.is_symlink() {
        Kind::Symlink
    } else if ft.is_dir() {
        Kind::Dir
    } else if ft.is_file() {
        Kind::File
    } else if ft.is_char_device() {
        Kind::CharDevice
    } else if ft.is_block_device() {
        Kind::BlockDevice
    } else if ft.is_fifo() {
        Kind::Fifo
    } else {
        Kind::Socket
    }
}

/// What `lstat` said about an entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Stat {
    dev: u64,
    ino: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    rdev: u64,
}

impl Stat {
    fn of(md: &fs::Metadata) -> Stat {
        Stat {
            dev: md.dev(),
            ino: md.ino(),
            mode: md.mode(),
            uid: md.uid(),
            gid: md.gid(),
            size: md.size(),
            mtime_ns: i128::from(md.mtime()) * 1_000_000_000 + i128::from(md.mtime_nsec()),
            ctime_ns: i128::from(md.ctime()) * 1_000_000_000 + i128::from(md.ctime_nsec()),
            rdev: md.rdev(),
        }
    }
    fn stamp(&self) -> Stamp {
        Stamp {
            size: self.size,
            mtime_ns: self.mtime_ns,
            ctime_ns: self.ctime_ns,
        }
    }
    fn racy(&self, now_ns: i128, window: Duration) -> bool {
        let w = i128::try_from(window.as_nanos()).unwrap_or(i128::MAX);
        (self.mtime_ns - now_ns).abs() < w || (self.ctime_ns - now_ns).abs() < w
    }
}

/// The memo's validity stamp of a file (besides its device and inode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
        .unwrap_or(0)
}

/// One walked entry.
#[derive(Debug)]
struct Node {
    /// The file name (for a root: its whole path).
    name: Box<[u8]>,
    kind: Kind,
    st: Stat,
    /// Symlink target bytes.
    target: Box<[u8]>,
    /// Directory entries, sorted by name.
    children: Vec<Node>,
    /// Directories: the Merkle hash of the entries' stat tuples (and of
    /// their subdirectories' fingerprints). Zero for other kinds.
    fp: Digest,
}

impl Node {
    fn path_in(&self, parent: &Path) -> PathBuf {
        parent.join(std::ffi::OsStr::from_bytes(&self.name))
    }
    fn count(&self) -> u64 {
        1 + self.children.iter().map(Node::count).sum::<u64>()
    }
}

/// Shared state of one walk.
struct Walk {
    racy_window: Duration,
    /// Something racy or changing was seen: store no fingerprint result.
    racy: AtomicBool,
}

fn is_excluded(name: &[u8]) -> bool {
    EXCLUDED_DIR_NAMES.iter().any(|x| x.as_bytes() == name)
}

/// Feed one entry's stat tuple into a fingerprint (fixed-width little-endian
/// fields, length-prefixed name and target; a directory's own fingerprint).
fn feed_tuple(h: &mut blake3::Hasher, n: &Node) {
    let st = &n.st;
    let mut b = [0u8; 1 + 4 * 3 + 8 * 4 + 16 * 2 + 8 * 2];
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        b[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    put(&[n.kind as u8]);
    put(&st.mode.to_le_bytes());
    put(&st.uid.to_le_bytes());
    put(&st.gid.to_le_bytes());
    put(&st.dev.to_le_bytes());
    put(&st.ino.to_le_bytes());
    put(&st.size.to_le_bytes());
    put(&st.rdev.to_le_bytes());
    put(&st.mtime_ns.to_le_bytes());
    put(&st.ctime_ns.to_le_bytes());
    put(&(n.name.len() as u64).to_le_bytes());
    put(&(n.target.len() as u64).to_le_bytes());
    h.update(&b);
    h.update(&n.name);
    h.update(&n.target);
    if n.kind == Kind::Dir {
        h.update(n.fp.as_bytes());
    }
}

fn dir_fingerprint(children: &[Node]) -> Digest {
    let mut h = blake3::Hasher::new();
    h.update(b"bitzel-host-dir\0");
    h.update(&HOST_ROOT_VERSION.to_le_bytes());
    h.update(&(children.len() as u64).to_le_bytes());
    for c in children {
        feed_tuple(&mut h, c);
    }
    Digest::from_bytes(*h.finalize().as_bytes())
}

/// Build the node of `name` in `parent` whose `lstat` gave `st`, walking
/// directories.
fn node_for(parent: &Path, name: Box<[u8]>, st: Stat, kind: Kind, w: &Walk) -> Result<Node> {
    let mut n = Node {
        name,
        kind,
        st,
        target: Box::default(),
        children: Vec::new(),
        fp: Digest::default(),
    };
    match kind {
        Kind::Symlink => {
            let path = n.path_in(parent);
            match fs::read_link(&path) {
                Ok(t) => n.target = t.into_os_string().into_vec().into_boxed_slice(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    w.racy.store(true, Ordering::Relaxed)
                }
                Err(e) => return Err(e).ctx("read the symlink", &path),
            }
        }
        Kind::Dir => match read_children(&n.path_in(parent), w)? {
            Some(c) => {
                n.fp = dir_fingerprint(&c);
                n.children = c;
            }
            None => n.kind = Kind::UnreadableDir,
        },
        _ => {}
    }
    Ok(n)
}

/// The entries of `dir`, walked (subdirectories in parallel), sorted by
/// name; `None` when the directory cannot be listed or its entries cannot
/// be examined.
fn read_children(dir: &Path, w: &Walk) -> Result<Option<Vec<Node>>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            w.racy.store(true, Ordering::Relaxed);
            return Ok(Some(Vec::new()));
        }
        Err(e) => return Err(e).ctx("list the host directory", dir),
    };
    let mut raw: Vec<(Box<[u8]>, Stat, Kind)> = Vec::new();
    for ent in rd {
        let ent = ent.ctx("list the host directory", dir)?;
        let md = match ent.metadata() {
            Ok(md) => md,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                w.racy.store(true, Ordering::Relaxed);
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return Ok(None),
            Err(e) => return Err(e).ctx("stat", ent.path()),
        };
        let name = ent.file_name().into_vec().into_boxed_slice();
        let kind = kind_of(md.file_type());
        if kind == Kind::Dir && is_excluded(&name) {
            continue;
        }
        raw.push((name, Stat::of(&md), kind));
    }
    let now = now_ns();
    if raw.iter().any(|(_, st, _)| st.racy(now, w.racy_window)) {
        w.racy.store(true, Ordering::Relaxed);
    }
    raw.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    raw.into_par_iter()
        .with_min_len(64)
        .map(|(name, st, kind)| node_for(dir, name, st, kind, w))
        .collect::<Result<Vec<Node>>>()
        .map(Some)
}

/// Walk every root path (absent ones are recorded as absent).
fn walk(paths: &[PathBuf], w: &Walk) -> Result<Vec<Node>> {
    paths
        .par_iter()
        .map(|p| {
            let name = p.as_os_str().as_bytes().into();
            match fs::symlink_metadata(p) {
                Ok(md) => {
                    let st = Stat::of(&md);
                    if st.racy(now_ns(), w.racy_window) {
                        w.racy.store(true, Ordering::Relaxed);
                    }
                    node_for(Path::new(""), name, st, kind_of(md.file_type()), w)
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Node {
                    name,
                    kind: Kind::Absent,
                    st: Stat::default(),
                    target: Box::default(),
                    children: Vec::new(),
                    fp: Digest::default(),
                }),
                Err(e) => Err(e).ctx("stat the host path", p),
            }
        })
        .collect()
}

fn root_fingerprint(roots: &[Node]) -> Digest {
    let mut h = blake3::Hasher::new();
    h.update(b"bitzel-host-root-stat\0");
    h.update(&HOST_ROOT_VERSION.to_le_bytes());
    for x in EXCLUDED_DIR_NAMES {
        h.update(&(x.len() as u64).to_le_bytes());
        h.update(x.as_bytes());
    }
    h.update(&(roots.len() as u64).to_le_bytes());
    for r in roots {
        feed_tuple(&mut h, r);
    }
    Digest::from_bytes(*h.finalize().as_bytes())
}

/// The stat fingerprint of `paths` and the number of entries walked: the
/// fast path's whole cost (exposed for benchmarks).
pub fn stat_fingerprint(paths: &[PathBuf]) -> Result<(Digest, u64)> {
    let w = Walk {
        racy_window: RACY_WINDOW,
        racy: AtomicBool::new(false),
    };
    let roots = walk(paths, &w)?;
    Ok((
        root_fingerprint(&roots),
        roots.iter().map(Node::count).sum(),
    ))
}

/// The canonical content digest of the host build root made of `paths`
/// (absolute host paths, bound at the same place in the sandbox), using and
/// updating the machine-wide `cache`. See the module documentation.
pub fn host_root_digest(paths: &[PathBuf], cache: &HostDigestCache) -> Result<HostRootDigest> {
    let t0 = Instant::now();
    let w = Walk {
        racy_window: cache.racy_window,
        racy: AtomicBool::new(false),
    };
    let roots = walk(paths, &w)?;
    let fingerprint = root_fingerprint(&roots);
    let entries = roots.iter().map(Node::count).sum();
    let walk_time = t0.elapsed();
    let result_file = cache.result_file(paths);
    if let Some(stored) = result_file.as_deref().and_then(read_result) {
        if stored.fingerprint == fingerprint {
            return Ok(HostRootDigest {
                digest: stored.digest,
                fingerprint,
                entries,
                reused: true,
                hashed_files: 0,
                hashed_bytes: 0,
                memo_hits: 0,
                walk_time,
            });
        }
    }

    let memo_file = cache.memo_file();
    let memo = memo_file.as_deref().map(read_memo).unwrap_or_default();
    if cache.dir.is_none() {
        tracing::warn!(
            "no host digest cache (set {HOST_DIGEST_CACHE_ENV} or HOME): the host root is hashed on every build"
        );
    } else if memo.is_empty() {
        tracing::info!("hashing the host root for task keys (first time on this machine)");
    }
    let h = Hashing {
        memo: &memo,
        racy_window: cache.racy_window,
        used: Mutex::new(Vec::new()),
        fresh: AtomicU64::new(0),
        hashed_files: AtomicU64::new(0),
        hashed_bytes: AtomicU64::new(0),
        memo_hits: AtomicU64::new(0),
        racy: &w.racy,
    };
    let digests = roots
        .par_iter()
        .map(|r| content_digest(r, Path::new(""), &h))
        .collect::<Result<Vec<Digest>>>()?;
    let mut e = Encoder::new("bitzel-host-root", HOST_ROOT_VERSION);
    e.u64(roots.len() as u64);
    for (r, d) in roots.iter().zip(&digests) {
        e.bytes(&r.name).digest(d);
    }
    let digest = Digest::of_bytes(&e.finish());

    let used = h.used.into_inner().unwrap_or_else(|p| p.into_inner());
    if let (Some(dir), Some(memo_file)) = (cache.dir(), memo_file.as_deref()) {
        if h.fresh.load(Ordering::Relaxed) > 0 {
            save_memo(dir, memo_file, used);
        }
        if let (Some(rf), false) = (result_file.as_deref(), w.racy.load(Ordering::Relaxed)) {
            save_result(dir, rf, fingerprint, digest, entries);
        }
    }
    let out = HostRootDigest {
        digest,
        fingerprint,
        entries,
        reused: false,
        hashed_files: h.hashed_files.load(Ordering::Relaxed),
        hashed_bytes: h.hashed_bytes.load(Ordering::Relaxed),
        memo_hits: h.memo_hits.load(Ordering::Relaxed),
        walk_time,
    };
    tracing::debug!(
        entries,
        hashed_files = out.hashed_files,
        hashed_bytes = out.hashed_bytes,
        memo_hits = out.memo_hits,
        secs = t0.elapsed().as_secs_f64(),
        "host root digested"
    );
    Ok(out)
}

type MemoTable = HashMap<(u64, u64), (Stamp, Digest)>;
type MemoRow = ((u64, u64), Stamp, Digest);

/// Shared state of the content phase.
struct Hashing<'a> {
    memo: &'a MemoTable,
    racy_window: Duration,
    /// Every memoisable (non-racy) file digest of this walk, for the memo.
    used: Mutex<Vec<MemoRow>>,
    /// How many of `used` were hashed now (0 = the memo needs no write).
    fresh: AtomicU64,
    hashed_files: AtomicU64,
    hashed_bytes: AtomicU64,
    memo_hits: AtomicU64,
    racy: &'a AtomicBool,
}

/// What reading a file gave.
#[derive(Debug, PartialEq, Eq)]
enum Content {
    Hashed(Digest),
    Unreadable,
}

/// How a failure to read a host file is recorded: `Unreadable` for what the
/// task could not read either (permission), `None` for a file that vanished
/// (the walk is then racy), an error otherwise.
fn classify_read_error(e: io::Error, path: &Path) -> Result<Option<Content>> {
    match e.kind() {
        io::ErrorKind::PermissionDenied => Ok(Some(Content::Unreadable)),
        io::ErrorKind::NotFound => Ok(None),
        _ => Err(Error::Io {
            op: "hash the host file",
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

fn file_content(n: &Node, path: &Path, h: &Hashing<'_>) -> Result<Content> {
    let key = (n.st.dev, n.st.ino);
    let stamp = n.st.stamp();
    let memoisable = !n.st.racy(now_ns(), h.racy_window);
    if let Some((s, d)) = h.memo.get(&key) {
        if *s == stamp && memoisable {
            h.memo_hits.fetch_add(1, Ordering::Relaxed);
            lock(&h.used).push((key, stamp, *d));
            return Ok(Content::Hashed(*d));
        }
    }
    let d = match Digest::of_file(path) {
        Ok((d, len)) => {
            h.hashed_files.fetch_add(1, Ordering::Relaxed);
            h.hashed_bytes.fetch_add(len, Ordering::Relaxed);
            d
        }
        Err(e) => {
            return match classify_read_error(e, path)? {
                Some(c) => Ok(c),
                None => {
                    h.racy.store(true, Ordering::Relaxed);
                    Ok(Content::Unreadable)
                }
            }
        }
    };
    // Memoise only what provably did not change while it was read.
    let after = fs::symlink_metadata(path).map(|md| Stat::of(&md));
    match after {
        Ok(a) if a.dev == n.st.dev && a.ino == n.st.ino && a.stamp() == stamp && memoisable => {
            h.fresh.fetch_add(1, Ordering::Relaxed);
            lock(&h.used).push((key, stamp, d));
        }
        _ => h.racy.store(true, Ordering::Relaxed),
    }
    Ok(Content::Hashed(d))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The canonical digest of one entry (Merkle: directories cover their
/// entries' names and digests).
fn content_digest(n: &Node, parent: &Path, h: &Hashing<'_>) -> Result<Digest> {
    let mut e = Encoder::new("bitzel-host-entry", HOST_ROOT_VERSION);
    let path = n.path_in(parent);
    let perms = n.st.mode & 0o7777;
    match n.kind {
        Kind::File => match file_content(n, &path, h)? {
            Content::Hashed(d) => {
                e.u8(Kind::File as u8).u32(perms).u64(n.st.size).digest(&d);
            }
            Content::Unreadable => {
                e.u8(Kind::UnreadableFile as u8).u32(perms).u64(n.st.size);
            }
        },
        Kind::Dir => {
            let kids = n
                .children
                .par_iter()
                .map(|c| content_digest(c, &path, h))
                .collect::<Result<Vec<Digest>>>()?;
            e.u8(Kind::Dir as u8)
                .u32(perms)
                .u64(n.children.len() as u64);
            for (c, d) in n.children.iter().zip(&kids) {
                e.bytes(&c.name).digest(d);
            }
        }
        Kind::Symlink => {
            e.u8(Kind::Symlink as u8).u32(perms).bytes(&n.target);
        }
        Kind::CharDevice | Kind::BlockDevice => {
            e.u8(n.kind as u8).u32(perms).u64(n.st.rdev);
        }
        Kind::Absent => {
            e.u8(Kind::Absent as u8);
        }
        Kind::Fifo | Kind::Socket | Kind::UnreadableDir | Kind::UnreadableFile => {
            e.u8(n.kind as u8).u32(perms);
        }
    }
    Ok(Digest::of_bytes(&e.finish()))
}

/// A checksummed record: `magic`, `body`, BLAKE3 of both.
fn seal(magic: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(magic.len() + body.len() + 32);
    out.extend_from_slice(magic);
    out.extend_from_slice(body);
    let sum = Digest::of_bytes(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

/// The body of a record written by [`seal`], if intact.
fn unseal<'a>(magic: &[u8], bytes: &'a [u8]) -> Option<&'a [u8]> {
    let split = bytes.len().checked_sub(32)?;
    let (data, sum) = bytes.split_at(split);
    let body = data.strip_prefix(magic)?;
    (Digest::of_bytes(data).as_bytes()[..] == *sum).then_some(body)
}

struct StoredResult {
    fingerprint: Digest,
    digest: Digest,
}

fn read_result(path: &Path) -> Option<StoredResult> {
    let bytes = fs::read(path).ok()?;
    let body = unseal(RESULT_MAGIC, &bytes)?;
    if body.len() != 72 {
        return None;
    }
    let d = |r: std::ops::Range<usize>| -> Option<Digest> {
        Some(Digest::from_bytes(body.get(r)?.try_into().ok()?))
    };
    Some(StoredResult {
        fingerprint: d(0..32)?,
        digest: d(32..64)?,
    })
}

fn save_result(dir: &Path, path: &Path, fingerprint: Digest, digest: Digest, entries: u64) {
    let mut body = Vec::with_capacity(72);
    body.extend_from_slice(fingerprint.as_bytes());
    body.extend_from_slice(digest.as_bytes());
    body.extend_from_slice(&entries.to_le_bytes());
    if let Err(e) = write_file(dir, path, &seal(RESULT_MAGIC, &body)) {
        tracing::warn!(error = %e, "could not store the host root digest (the next build walks and looks it up again)");
    }
}

/// Write `dest` atomically, creating `dir` (and missing parents) private to
/// the user: the memo holds content digests of files only root may read.
fn write_file(dir: &Path, dest: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .ctx("create directory", dir)?;
    write_atomic(dir, dest, bytes, false)
}

fn read_memo(path: &Path) -> MemoTable {
    let Ok(bytes) = fs::read(path) else {
        return MemoTable::new();
    };
    let Some(body) = unseal(MEMO_MAGIC, &bytes).filter(|b| b.len() % MEMO_ROW == 0) else {
        tracing::warn!(path = %path.display(), "the host digest memo is corrupt; rebuilding it");
        return MemoTable::new();
    };
    let mut t = MemoTable::with_capacity(body.len() / MEMO_ROW);
    for row in body.chunks_exact(MEMO_ROW) {
        if let Some((k, s, d)) = decode_row(row) {
            t.insert(k, (s, d));
        }
    }
    t
}

fn decode_row(row: &[u8]) -> Option<MemoRow> {
    let u =
        |i: usize| -> Option<u64> { Some(u64::from_le_bytes(row.get(i..i + 8)?.try_into().ok()?)) };
    let t = |i: usize| -> Option<i128> {
        Some(i128::from_le_bytes(row.get(i..i + 16)?.try_into().ok()?))
    };
    let digest = Digest::from_bytes(row.get(56..88)?.try_into().ok()?);
    Some((
        (u(0)?, u(8)?),
        Stamp {
            size: u(16)?,
            mtime_ns: t(24)?,
            ctime_ns: t(40)?,
        },
        digest,
    ))
}

fn encode_row(out: &mut Vec<u8>, (k, s, d): &MemoRow) {
    out.extend_from_slice(&k.0.to_le_bytes());
    out.extend_from_slice(&k.1.to_le_bytes());
    out.extend_from_slice(&s.size.to_le_bytes());
    out.extend_from_slice(&s.mtime_ns.to_le_bytes());
    out.extend_from_slice(&s.ctime_ns.to_le_bytes());
    out.extend_from_slice(d.as_bytes());
}

/// Merge `used` into the memo file (re-read, so concurrent writers lose
/// little) and write it back atomically. Failures only cost speed.
fn save_memo(dir: &Path, path: &Path, used: Vec<MemoRow>) {
    let mut table = read_memo(path);
    let used_len = used.len();
    for (k, s, d) in &used {
        table.insert(*k, (*s, *d));
    }
    // Inodes of removed files linger; past a cap keep only what this walk used.
    if table.len() > MEMO_MIN_CAP.max(4 * used_len) {
        table = used.iter().map(|(k, s, d)| (*k, (*s, *d))).collect();
    }
    let mut rows: Vec<MemoRow> = table.into_iter().map(|(k, (s, d))| (k, s, d)).collect();
    rows.sort_by_key(|r| r.0);
    let mut body = Vec::with_capacity(rows.len() * MEMO_ROW);
    for r in &rows {
        encode_row(&mut body, r);
    }
    if let Err(e) = write_file(dir, path, &seal(MEMO_MAGIC, &body)) {
        tracing::warn!(error = %e, "could not store the host digest memo (the next build rehashes the host root)");
    }
    remove_stale_temps(dir);
}

/// Temp files (`write_atomic`'s `w.*`) older than an hour are left-overs of
/// killed writers.
fn remove_stale_temps(dir: &Path) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for ent in rd.flatten() {
        let name = ent.file_name();
        let old = ent
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(3600));
        if old && name.as_bytes().starts_with(b"w.") {
            let _ = fs::remove_file(ent.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{FileTimes, OpenOptions};
    use std::io::{Seek, SeekFrom, Write};

    fn quick(dir: &Path) -> HostDigestCache {
        HostDigestCache::at(dir).with_racy_window(Duration::ZERO)
    }

    /// usr/{include/{stdio.h,sys/types.h},lib/{libc.a (3 MiB),libc.so -> libc.a}}
    fn tree(root: &Path) {
        fs::create_dir_all(root.join("include/sys")).unwrap();
        fs::write(
            root.join("include/stdio.h"),
            b"int printf(const char *, ...);\n",
        )
        .unwrap();
        fs::write(root.join("include/sys/types.h"), b"typedef int pid_t;\n").unwrap();
        fs::create_dir_all(root.join("lib")).unwrap();
        fs::write(root.join("lib/libc.a"), vec![7u8; 3 << 20]).unwrap();
        std::os::unix::fs::symlink("libc.a", root.join("lib/libc.so")).unwrap();
    }

    fn setup() -> (tempfile::TempDir, Vec<PathBuf>, HostDigestCache) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("usr");
        tree(&root);
        let cache = quick(&t.path().join("digests"));
        (t, vec![root], cache)
    }

    #[test]
    fn stable_then_reused_without_reading_the_memo() {
        let (t, paths, cache) = setup();
        let a = host_root_digest(&paths, &cache).unwrap();
        assert!(!a.reused);
        assert_eq!((a.hashed_files, a.hashed_bytes), (3, 31 + 19 + (3 << 20)));
        assert_eq!(a.entries, 8);
        let mode = fs::metadata(t.path().join("digests"))
            .unwrap()
            .permissions();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.mode() & 0o777, 0o700, "the memo directory is private");
        // Corrupt the memo: the fast path must not even read it.
        fs::write(t.path().join("digests/memo"), b"garbage").unwrap();
        let b = host_root_digest(&paths, &cache).unwrap();
        assert!(b.reused);
        assert_eq!((b.digest, b.hashed_files, b.memo_hits), (a.digest, 0, 0));
        // Without any persistence the digest is the same, all hashed again.
        let c = host_root_digest(&paths, &HostDigestCache::none()).unwrap();
        assert_eq!((c.digest, c.hashed_files, c.reused), (a.digest, 3, false));
    }

    #[test]
    fn in_place_edit_with_restored_mtime_changes_the_digest() {
        let (_t, paths, cache) = setup();
        let h = paths[0].join("include/stdio.h");
        let a = host_root_digest(&paths, &cache).unwrap();
        let mtime = fs::metadata(&h).unwrap().modified().unwrap();
        // Same size, same mtime, same inode: only ctime and content move.
        let mut f = OpenOptions::new().write(true).open(&h).unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        f.write_all(b"INT").unwrap();
        f.set_times(FileTimes::new().set_modified(mtime)).unwrap();
        drop(f);
        let b = host_root_digest(&paths, &cache).unwrap();
        assert!(!b.reused);
        assert_ne!(a.digest, b.digest);
        assert_eq!(b.hashed_files, 1, "only the edited file is rehashed");
        assert_eq!(b.memo_hits, 2);
    }

    #[test]
    fn every_kind_of_change_changes_the_digest() {
        let (_t, paths, cache) = setup();
        let root = &paths[0];
        let mut seen = vec![host_root_digest(&paths, &cache).unwrap().digest];
        let mut step = |what: &str, f: &dyn Fn()| {
            f();
            let d = host_root_digest(&paths, &cache).unwrap().digest;
            assert!(!seen.contains(&d), "{what} did not change the digest");
            seen.push(d);
        };
        step("new file", &|| {
            fs::write(root.join("include/new.h"), b"x").unwrap()
        });
        step("mode", &|| {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(
                root.join("include/new.h"),
                fs::Permissions::from_mode(0o600),
            )
            .unwrap()
        });
        step("symlink target", &|| {
            fs::remove_file(root.join("lib/libc.so")).unwrap();
            std::os::unix::fs::symlink("libc.so.6", root.join("lib/libc.so")).unwrap();
        });
        step("empty dir", &|| fs::create_dir(root.join("share")).unwrap());
        step("fifo", &|| {
            let p = std::ffi::CString::new(root.join("share/fifo").as_os_str().as_bytes()).unwrap();
            // SAFETY: p is a valid NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(p.as_ptr(), 0o644) }, 0);
        });
        step("removal", &|| {
            fs::remove_file(root.join("include/sys/types.h")).unwrap()
        });
    }

    #[test]
    fn symlinks_are_recorded_not_followed_and_absent_roots_count() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        fs::write(&outside, b"one").unwrap();
        let link = t.path().join("bin");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        let absent = t.path().join("lib32");
        let paths = vec![link.clone(), absent.clone()];
        let cache = quick(&t.path().join("digests"));
        let a = host_root_digest(&paths, &cache).unwrap();
        assert_eq!((a.entries, a.hashed_files), (2, 0));
        fs::write(&outside, b"two").unwrap();
        assert_eq!(host_root_digest(&paths, &cache).unwrap().digest, a.digest);
        fs::create_dir(&absent).unwrap();
        assert_ne!(host_root_digest(&paths, &cache).unwrap().digest, a.digest);
    }

    #[test]
    fn pycache_directories_are_left_out() {
        let (_t, paths, cache) = setup();
        let a = host_root_digest(&paths, &cache).unwrap();
        let pyc = paths[0].join("lib/python3/__pycache__");
        fs::create_dir_all(&pyc).unwrap();
        let with_parent = host_root_digest(&paths, &cache).unwrap();
        assert_ne!(
            with_parent.digest, a.digest,
            "the python3 dir itself counts"
        );
        fs::write(pyc.join("os.cpython-313.pyc"), b"bytecode").unwrap();
        let b = host_root_digest(&paths, &cache).unwrap();
        assert!(b.reused, "a new .pyc must not even change the fingerprint");
        assert_eq!(b.digest, with_parent.digest);
    }

    #[test]
    fn memo_is_shared_between_path_lists_and_survives_corruption() {
        let (t, paths, cache) = setup();
        let a = host_root_digest(&paths, &cache).unwrap();
        let etc = t.path().join("etc");
        fs::create_dir(&etc).unwrap();
        fs::write(etc.join("hosts"), b"127.0.0.1 localhost\n").unwrap();
        let both = vec![paths[0].clone(), etc];
        let b = host_root_digest(&both, &cache).unwrap();
        assert_eq!((b.hashed_files, b.memo_hits), (1, 3));
        assert_ne!(a.digest, b.digest);
        // The first list's result is still stored under its own name.
        assert!(host_root_digest(&paths, &cache).unwrap().reused);
        // Corrupt both files: everything is rebuilt, with the same answer.
        let dir = t.path().join("digests");
        fs::write(dir.join("memo"), b"bitzel-host-digests-1\nshort").unwrap();
        for e in fs::read_dir(dir.join("roots")).unwrap() {
            let p = e.unwrap().path();
            let mut bytes = fs::read(&p).unwrap();
            bytes[30] ^= 1;
            fs::write(&p, bytes).unwrap();
        }
        let c = host_root_digest(&both, &cache).unwrap();
        assert_eq!((c.digest, c.reused, c.hashed_files), (b.digest, false, 4));
        let d = host_root_digest(&both, &cache).unwrap();
        assert!(d.reused);
    }

    #[test]
    fn racy_files_are_neither_memoised_nor_fingerprinted() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("usr");
        tree(&root);
        // The default window: everything was just written, so all is racy.
        let cache = HostDigestCache::at(t.path().join("digests"));
        let paths = vec![root];
        let a = host_root_digest(&paths, &cache).unwrap();
        let b = host_root_digest(&paths, &cache).unwrap();
        assert!(!b.reused);
        assert_eq!((b.digest, b.hashed_files, b.memo_hits), (a.digest, 3, 0));
        assert!(!t.path().join("digests/memo").exists());
    }

    #[test]
    fn concurrent_callers_agree() {
        let (_t, paths, cache) = setup();
        let ds: Vec<Digest> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| s.spawn(|| host_root_digest(&paths, &cache).unwrap().digest))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(ds.windows(2).all(|w| w[0] == w[1]));
        assert!(host_root_digest(&paths, &cache).unwrap().reused);
    }

    #[test]
    fn permission_errors_are_unreadable_entries() {
        let p = Path::new("/x");
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        assert_eq!(
            classify_read_error(denied, p).unwrap(),
            Some(Content::Unreadable)
        );
        let gone = io::Error::from(io::ErrorKind::NotFound);
        assert_eq!(classify_read_error(gone, p).unwrap(), None);
        let eio = io::Error::from_raw_os_error(libc::EIO);
        assert!(classify_read_error(eio, p)
            .unwrap_err()
            .to_string()
            .contains("/x"));
    }

    #[test]
    fn location_follows_the_environment_variable() {
        // Only this test touches the variable.
        std::env::set_var(HOST_DIGEST_CACHE_ENV, "/some/where");
        assert_eq!(default_location(), Some(PathBuf::from("/some/where")));
        std::env::remove_var(HOST_DIGEST_CACHE_ENV);
        let d = default_location().unwrap();
        // SAFETY: no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            assert_eq!(d, PathBuf::from("/var/cache/bitzel/host-digests"));
        } else {
            assert!(d.ends_with("bitzel/host-digests"), "{}", d.display());
        }
    }
}
