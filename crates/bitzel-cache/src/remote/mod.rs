//! The remote cache: a second cache level speaking the Bazel HTTP
//! remote-cache protocol (`GET`/`PUT`/`HEAD` of `<base>[/<instance>]/ac/<hex>`
//! and `<base>[/<instance>]/cas/<hex>`), as served by nginx WebDAV,
//! bazel-remote, BuildBuddy, NativeLink or Buildbarn.
//!
//! - [`RemoteConfig`]: URL, instance, read-only, auth header (from an
//!   environment variable; never printed), digest function.
//! - [`RemoteCache`]: lookups and uploads in bitzel's terms ([`RemoteEntry`],
//!   [`BlobRef`]); `ac/` entries are REAPI `ActionResult` protobufs
//!   ([`entry`] documents the mapping).
//! - [`stack`]: the local cache with this one behind it.
//!
//! Failure policy: the build never fails because of the remote. Every
//! download is verified (a corrupt blob is counted and not used); an entry
//! whose blobs are missing on the server is a miss; 5xx, 429 and timeouts are
//! retried with exponential backoff; when a request still fails, or the server
//! refuses access, the remote is given up for the rest of the process with a
//! single warning and every later call returns [`RemoteError::Unavailable`]
//! at once, which the stack treats as a miss / a skipped upload.

pub mod config;
pub mod entry;
pub mod gate;
pub mod http;
mod pool;
pub mod proto;
pub mod shamap;
pub mod stats;
pub mod store;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use config::{AuthHeader, DigestFunction, RemoteConfig};
pub use entry::{BlobRef, RemoteEntry};
pub use gate::{Attempt, Gate};
pub use stats::{CacheSummary, RemoteStats, RemoteStatsSnapshot};
pub use store::HttpStore;

use crate::cas::Cas;
use crate::digest::{ActionKey, Digest};
use http::Transport;
pub use http::{BlobTransport, Namespace, Received};
use shamap::{hex32, sha256, Sha256Map};

/// Largest `ac/` entry accepted (an entry lists one line per referenced blob).
pub const MAX_AC_ENTRY_BYTES: u64 = 64 << 20;
/// Download limit for a blob whose size is not known.
pub const MAX_UNSIZED_BLOB_BYTES: u64 = 16 << 30;
/// Blobs at least this large are checked with `HEAD` before being uploaded.
pub const HEAD_BEFORE_PUT_BYTES: u64 = 64 << 10;

/// Errors of the remote cache.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The configured URL is unusable.
    #[error("remote cache URL `{url}` is invalid: {reason} (expected http://host[:port][/path] or https://…)")]
    BadUrl {
        /// The URL (credentials hidden).
        url: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The instance name is unusable.
    #[error("remote cache instance `{0}` is invalid: use path segments of letters, digits, `.`, `_` and `-` separated by `/`")]
    BadInstance(String),
    /// The digest function is not one bitzel knows.
    #[error("unknown remote cache digest function `{0}`: use `blake3` (default) or `sha256`")]
    UnknownDigestFunction(String),
    /// `auth_header_env` names a variable that is not set.
    #[error("environment variable `{var}` (named by remote_cache.auth_header_env) is not set: export it with the header, e.g. `Authorization: Bearer <token>`")]
    AuthEnvMissing {
        /// The variable's name.
        var: String,
    },
    /// The auth header variable holds something that is not a header.
    #[error("environment variable `{var}` does not hold a usable HTTP header (empty, or contains a line break): set it to `Name: value` or to the Authorization value")]
    BadAuthHeader {
        /// The variable's name.
        var: String,
    },
    /// The remote was given up (a warning said why); the build goes on locally.
    #[error("remote cache {url} is unavailable; continuing with the local cache only")]
    Unavailable {
        /// The base URL (credentials hidden).
        url: String,
    },
    /// A blob's SHA-256 is not known and its content is not at hand.
    #[error(
        "blob {digest} has no known SHA-256 name (upload it first, or use digest_function: blake3)"
    )]
    UnmappedBlob {
        /// The blob.
        digest: Digest,
    },
    /// The sha256 map directory cannot be created.
    #[error("cannot create the remote cache's sha256 map directory {}: {source}", path.display())]
    Map {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A streamed download could not be written locally.
    #[error("cannot {op} {} while downloading {object} from the remote cache: {source} (check free space and permissions of the cache directory)", path.display())]
    Spool {
        /// What was being done ("create", "write", "truncate").
        op: &'static str,
        /// The file being written.
        path: PathBuf,
        /// The request (`GET cas/<hex>`).
        object: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A local blob could not be read for upload.
    #[error("cannot read local blob {digest} at {} for upload: {source} (the local cache may have been cleaned meanwhile; the action result referencing it is not uploaded)", path.display())]
    LocalFile {
        /// The blob.
        digest: Digest,
        /// Its file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A local blob's content does not match its digest: it is not uploaded.
    #[error("local blob {} does not match its digest {digest}; not uploaded (run `bitzel cache verify` to remove corrupt blobs)", path.display())]
    CorruptLocal {
        /// The blob's name.
        digest: Digest,
        /// Its file.
        path: PathBuf,
    },
    /// The local side of a transfer (reading or storing a blob) failed.
    #[error("local cache error while transferring blob {digest}: {source}")]
    Local {
        /// The blob.
        digest: Digest,
        /// The local error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Reads a local blob for upload: `Ok(None)` if the local cache lacks it.
pub type BlobReader<'a> = dyn Fn(&Digest) -> Result<Option<Vec<u8>>, Box<dyn std::error::Error + Send + Sync>>
    + Sync
    + 'a;
/// Stores a downloaded, verified blob locally.
pub type BlobWriter<'a> =
    dyn Fn(&BlobRef, Vec<u8>) -> Result<(), Box<dyn std::error::Error + Send + Sync>> + Sync + 'a;

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// An entry whose every blob is now local (fetched or already there).
    Hit(RemoteEntry),
    /// No usable entry: absent, written by another client, corrupt, or
    /// referencing blobs the server no longer has.
    Miss,
}

/// A remote cache. Cheap to share (`&self` everywhere; internally parallel).
#[derive(Debug)]
pub struct RemoteCache {
    config: RemoteConfig,
    transport: Box<dyn BlobTransport>,
    stats: Arc<RemoteStats>,
    map: Sha256Map,
    /// Blobs known to be on the server (uploaded or checked) in this process.
    present: Mutex<HashSet<Digest>>,
    /// Sizes of blobs learned from entries (for download limits).
    sizes: Mutex<HashMap<Digest, u64>>,
}

impl RemoteCache {
    /// A remote cache for `config`. `map_dir` keeps the BLAKE3→SHA-256 map
    /// across runs (used with [`DigestFunction::Sha256`]; typically a
    /// directory inside the local cache); `None` keeps it in memory.
    /// No network traffic happens here.
    pub fn new(config: RemoteConfig, map_dir: Option<&Path>) -> Result<RemoteCache, RemoteError> {
        if config.is_grpc() {
            return Err(RemoteError::BadUrl {
                url: config.display_url(),
                reason:
                    "a grpc:// remote needs the REAPI transport (bitzel-remote), not the HTTP one",
            });
        }
        RemoteCache::with_transport(config, map_dir, &|c, stats| {
            Box::new(Transport::new(c, stats))
        })
    }

    /// A remote cache speaking through the transport `make` builds (given
    /// the config and the counters it must count into).
    #[allow(clippy::type_complexity)]
    pub fn with_transport(
        config: RemoteConfig,
        map_dir: Option<&Path>,
        make: &dyn Fn(&RemoteConfig, Arc<RemoteStats>) -> Box<dyn BlobTransport>,
    ) -> Result<RemoteCache, RemoteError> {
        let stats = Arc::new(RemoteStats::default());
        let map = match config.digest_function {
            DigestFunction::Sha256 => Sha256Map::open(map_dir)?,
            DigestFunction::Blake3 => Sha256Map::open(None)?,
        };
        Ok(RemoteCache {
            transport: make(&config, stats.clone()),
            config,
            stats,
            map,
            present: Mutex::new(HashSet::new()),
            sizes: Mutex::new(HashMap::new()),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RemoteConfig {
        &self.config
    }

    /// The counters so far.
    pub fn stats(&self) -> RemoteStatsSnapshot {
        self.stats.snapshot()
    }

    /// False once the remote has been given up for this process.
    pub fn is_available(&self) -> bool {
        !self.transport.is_down()
    }

    /// The server-side name of an action key.
    pub fn ac_name(&self, key: &ActionKey) -> String {
        match self.config.digest_function {
            DigestFunction::Blake3 => key.to_hex(),
            DigestFunction::Sha256 => {
                let mut buf = Vec::with_capacity(13 + 32);
                buf.extend_from_slice(b"bitzel/ac/v1\0");
                buf.extend_from_slice(&key.digest().0);
                hex32(&sha256(&buf))
            }
        }
    }

    /// The server-side name of a blob, if known without its content.
    pub fn blob_name(&self, d: &Digest) -> Option<String> {
        match self.config.digest_function {
            DigestFunction::Blake3 => Some(d.to_hex()),
            DigestFunction::Sha256 => self.map.get(d).map(|s| hex32(&s)),
        }
    }

    /// The server-side name of the blob `d` stored at `path` (hashed once,
    /// checking its BLAKE3, and remembered).
    pub fn blob_name_of_file(&self, d: &Digest, path: &Path) -> Result<String, RemoteError> {
        match self.config.digest_function {
            DigestFunction::Blake3 => Ok(d.to_hex()),
            DigestFunction::Sha256 => {
                if let Some(s) = self.map.get(d) {
                    return Ok(hex32(&s));
                }
                let s = sha256_checked(d, path)?;
                self.map.insert(d, s);
                Ok(hex32(&s))
            }
        }
    }

    /// Learn that the blob whose BLAKE3 is `d` (of `size` bytes) is named
    /// `remote` (lowercase hex) on the server, as an entry listing it would
    /// teach; downloads still verify both names.
    pub fn learn_name(&self, d: &Digest, size: u64, remote: &str) {
        if self.config.digest_function == DigestFunction::Sha256 {
            if let Ok(s) = remote.parse::<Digest>() {
                self.map.insert(d, s.0);
            }
        }
        if let Ok(mut sizes) = self.sizes.lock() {
            sizes.insert(*d, size);
        }
    }

    /// The server-side name of `bytes` whose BLAKE3 is `d` (learning the
    /// SHA-256 map entry on the way).
    fn blob_name_of(&self, d: &Digest, bytes: &[u8]) -> String {
        match self.config.digest_function {
            DigestFunction::Blake3 => d.to_hex(),
            DigestFunction::Sha256 => {
                let s = self.map.get(d).unwrap_or_else(|| {
                    let s = sha256(bytes);
                    self.map.insert(d, s);
                    s
                });
                hex32(&s)
            }
        }
    }

    fn mark_present(&self, d: &Digest) {
        if let Ok(mut p) = self.present.lock() {
            p.insert(*d);
        }
    }

    /// Whether this process has seen blob `d` on the server (uploaded,
    /// downloaded or checked with `HEAD`).
    pub fn is_known_present(&self, d: &Digest) -> bool {
        self.known_present(d)
    }

    fn known_present(&self, d: &Digest) -> bool {
        self.present.lock().map(|p| p.contains(d)).unwrap_or(false)
    }

    /// Check `bytes` against a blob's names (and size, when known). `remote`
    /// is its server-side hex.
    fn verify(&self, d: &Digest, size: Option<u64>, remote: &str, bytes: &[u8]) -> bool {
        if size.is_some_and(|s| s != bytes.len() as u64) || Digest::of_bytes(bytes) != *d {
            return false;
        }
        match self.config.digest_function {
            DigestFunction::Blake3 => remote == d.to_hex(),
            DigestFunction::Sha256 => remote == hex32(&sha256(bytes)),
        }
    }

    /// `GET cas/<name>` and verify it. `Ok(None)`: absent, or corrupt (counted, warned, not used).
    fn fetch_verified(
        &self,
        d: &Digest,
        size: Option<u64>,
        remote: &str,
    ) -> Result<Option<Vec<u8>>, RemoteError> {
        let limit = size.unwrap_or(MAX_UNSIZED_BLOB_BYTES);
        let Some(bytes) = self.transport.get(Namespace::Cas, remote, size, limit)? else {
            return Ok(None);
        };
        if !self.verify(d, size, remote, &bytes) {
            self.stats.note_corrupt();
            tracing::warn!(
                remote = %self.transport.display_url(),
                blob = %d,
                "blob downloaded from the remote cache does not match its digest; not used"
            );
            return Ok(None);
        }
        self.mark_present(d);
        Ok(Some(bytes))
    }

    /// Check what a streamed download received (see [`RemoteCache::verify`]).
    fn verify_received(&self, d: &Digest, size: Option<u64>, remote: &str, got: &Received) -> bool {
        if size.is_some_and(|s| s != got.len) || got.blake3 != *d {
            return false;
        }
        match self.config.digest_function {
            DigestFunction::Blake3 => remote == d.to_hex(),
            DigestFunction::Sha256 => got.sha256.is_some_and(|s| remote == hex32(&s)),
        }
    }

    /// `GET cas/<name>` of blob `d` streamed into a new file at `path`
    /// (created, must not exist), verified. `Ok(true)`: `path` holds exactly
    /// the blob. Otherwise — absent, corrupt (counted, warned, not used),
    /// server name unknown, or an error — nothing is left at `path`. Memory
    /// stays bounded whatever the blob's size.
    pub fn fetch_blob_to(
        &self,
        d: &Digest,
        size: Option<u64>,
        path: &Path,
    ) -> Result<bool, RemoteError> {
        let Some(remote) = self.blob_name(d) else {
            return Ok(false);
        };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|source| RemoteError::Spool {
                op: "create",
                path: path.to_path_buf(),
                object: format!("GET cas/{remote}"),
                source,
            })?;
        let limit = size.unwrap_or(MAX_UNSIZED_BLOB_BYTES);
        let want_sha = self.config.digest_function == DigestFunction::Sha256;
        let res = self.transport.get_to_file(
            Namespace::Cas,
            &remote,
            size,
            limit,
            &mut file,
            path,
            want_sha,
        );
        drop(file);
        let ok = match res {
            Ok(Some(got)) if self.verify_received(d, size, &remote, &got) => true,
            Ok(Some(_)) => {
                self.stats.note_corrupt();
                tracing::warn!(
                    remote = %self.transport.display_url(),
                    blob = %d,
                    "blob downloaded from the remote cache does not match its digest; not used"
                );
                false
            }
            Ok(None) => false,
            Err(e) => {
                let _ = std::fs::remove_file(path);
                return Err(e);
            }
        };
        if !ok {
            let _ = std::fs::remove_file(path);
            return Ok(false);
        }
        self.mark_present(d);
        Ok(true)
    }

    /// Download one blob by its BLAKE3 name, verified. `Ok(None)` if the
    /// server lacks it, it is corrupt, or (sha256) its server name is unknown.
    pub fn get_blob(&self, b: &BlobRef) -> Result<Option<Vec<u8>>, RemoteError> {
        let Some(remote) = self.blob_name(&b.digest) else {
            return Ok(None);
        };
        self.fetch_verified(&b.digest, Some(b.size), &remote)
    }

    /// Like [`RemoteCache::get_blob`] when the size is not known (the size
    /// learned from an entry is used if there is one).
    pub fn get_blob_by_digest(&self, d: &Digest) -> Result<Option<Vec<u8>>, RemoteError> {
        let Some(remote) = self.blob_name(d) else {
            return Ok(None);
        };
        self.fetch_verified(d, self.known_size(d), &remote)
    }

    /// Whether the server has the blob (`HEAD`). False if its server name is unknown.
    pub fn has_blob(&self, d: &Digest) -> Result<bool, RemoteError> {
        let Some(remote) = self.blob_name(d) else {
            return Ok(false);
        };
        let found = self
            .transport
            .head(Namespace::Cas, &remote, self.known_size(d))?;
        if found {
            self.mark_present(d);
        }
        Ok(found)
    }

    /// Upload one blob (not in read-only mode; then `Ok(false)`). The content
    /// is checked against `d` first, so a corrupt local blob is never spread.
    pub fn put_blob(&self, d: &Digest, bytes: &[u8]) -> Result<bool, RemoteError> {
        if self.config.read_only {
            return Ok(false);
        }
        if Digest::of_bytes(bytes) != *d {
            return Err(RemoteError::Local {
                digest: *d,
                source: "local blob content does not match its digest; not uploaded".into(),
            });
        }
        let name = self.blob_name_of(d, bytes);
        if bytes.len() as u64 >= HEAD_BEFORE_PUT_BYTES
            && self
                .transport
                .head(Namespace::Cas, &name, Some(bytes.len() as u64))?
        {
            self.mark_present(d);
            return Ok(true);
        }
        self.transport.put(Namespace::Cas, &name, bytes)?;
        self.mark_present(d);
        Ok(true)
    }

    /// Upload blob `d` from the file at `path` (`size` bytes) without
    /// holding it in memory (not in read-only mode; then `Ok(false)`). The
    /// content is checked against `d` while it is sent — a mismatch aborts
    /// the request before its last byte ([`RemoteError::CorruptLocal`]), so
    /// a corrupt local blob is never spread. With the `sha256` function and
    /// no known SHA-256 name the file is hashed first (both digests, checked).
    pub fn put_file(&self, d: &Digest, path: &Path, size: u64) -> Result<bool, RemoteError> {
        if self.config.read_only {
            return Ok(false);
        }
        let name = match self.config.digest_function {
            DigestFunction::Blake3 => d.to_hex(),
            DigestFunction::Sha256 => match self.map.get(d) {
                Some(s) => hex32(&s),
                None => {
                    let s = sha256_checked(d, path)?;
                    self.map.insert(d, s);
                    hex32(&s)
                }
            },
        };
        if size >= HEAD_BEFORE_PUT_BYTES
            && self.transport.head(Namespace::Cas, &name, Some(size))?
        {
            self.mark_present(d);
            return Ok(true);
        }
        self.transport.put_file(Namespace::Cas, &name, path, d)?;
        self.mark_present(d);
        Ok(true)
    }

    /// Fetch and decode the `ac/` entry for `key` and its result blob
    /// (verified); learn the server names of the blobs it lists. The blobs
    /// themselves are not checked: see [`RemoteCache::fetch_all`] and
    /// [`RemoteCache::check_all`]. `Ok(None)`: absent or unusable.
    pub fn get_entry(&self, key: &ActionKey) -> Result<Option<RemoteEntry>, RemoteError> {
        let name = self.ac_name(key);
        let Some(bytes) = self
            .transport
            .get(Namespace::Ac, &name, None, MAX_AC_ENTRY_BYTES)?
        else {
            return Ok(None);
        };
        self.entry_from_bytes(key, &bytes)
    }

    /// Decode an action-cache entry for `key` received some other way (a
    /// REAPI `ExecuteResponse`'s `ActionResult`), fetch its result blob
    /// (verified) and learn the server names of the blobs it lists, as
    /// [`RemoteCache::get_entry`] does. `Ok(None)`: unusable (warned).
    pub fn entry_from_bytes(
        &self,
        key: &ActionKey,
        bytes: &[u8],
    ) -> Result<Option<RemoteEntry>, RemoteError> {
        let decoded = match entry::decode(bytes) {
            Ok(d) => d,
            Err(reason) => {
                tracing::warn!(remote = %self.transport.display_url(), key = %key, %reason, "remote action-cache entry unusable; treated as a miss");
                return Ok(None);
            }
        };
        for (b, remote) in decoded.entry.blobs.iter().zip(&decoded.remote_names) {
            match self.config.digest_function {
                DigestFunction::Sha256 => {
                    if let Ok(s) = remote.parse::<Digest>() {
                        self.map.insert(&b.digest, s.0);
                    }
                }
                DigestFunction::Blake3 => {
                    if *remote != b.digest.to_hex() {
                        tracing::warn!(key = %key, blob = %b.digest, "remote entry names a blob inconsistently; treated as a miss");
                        return Ok(None);
                    }
                }
            }
            if let Ok(mut sizes) = self.sizes.lock() {
                sizes.insert(b.digest, b.size);
            }
        }
        // The result blob's BLAKE3 is unknown until it arrives: check the
        // server name, then take the BLAKE3 of what arrived.
        let Some(result) = self.transport.get(
            Namespace::Cas,
            &decoded.result_remote,
            Some(decoded.result_size),
            decoded.result_size,
        )?
        else {
            self.stats.note_incomplete();
            return Ok(None);
        };
        let result_d = Digest::of_bytes(&result);
        if !self.verify(
            &result_d,
            Some(decoded.result_size),
            &decoded.result_remote,
            &result,
        ) {
            self.stats.note_corrupt();
            tracing::warn!(remote = %self.transport.display_url(), key = %key, "result blob from the remote cache does not match its digest; treated as a miss");
            return Ok(None);
        }
        let mut e = decoded.entry;
        e.result = result;
        Ok(Some(e))
    }

    /// Download (in parallel, verified) every blob of `blobs` for which
    /// `have` is false, handing each to `store`. `Ok(false)` as soon as one
    /// is missing or corrupt on the server. Each blob is held in memory:
    /// [`RemoteCache::fetch_all_into`] streams into a local CAS instead.
    pub fn fetch_all(
        &self,
        blobs: &[BlobRef],
        have: &(dyn Fn(&Digest) -> bool + Sync),
        store: &BlobWriter<'_>,
    ) -> Result<bool, RemoteError> {
        self.fetch_each(blobs, have, &|b| match self.get_blob(b)? {
            Some(bytes) => store(b, bytes)
                .map(|()| true)
                .map_err(|source| RemoteError::Local {
                    digest: b.digest,
                    source,
                }),
            None => Ok(false),
        })
    }

    /// Like [`RemoteCache::fetch_all`], streaming every blob the CAS lacks
    /// into a temp file of `cas` and adopting it once verified: memory stays
    /// bounded (one buffer per transfer thread) whatever the blobs' sizes.
    pub fn fetch_all_into(&self, blobs: &[BlobRef], cas: &Cas) -> Result<bool, RemoteError> {
        self.fetch_each(blobs, &|d| cas.contains(d), &|b| {
            let tmp = cas.temp_path();
            if !self.fetch_blob_to(&b.digest, Some(b.size), &tmp)? {
                return Ok(false);
            }
            cas.adopt_temp(&tmp, &b.digest).map(|()| true).map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                RemoteError::Local {
                    digest: b.digest,
                    source: Box::new(e),
                }
            })
        })
    }

    fn fetch_each(
        &self,
        blobs: &[BlobRef],
        have: &(dyn Fn(&Digest) -> bool + Sync),
        fetch: &(dyn Fn(&BlobRef) -> Result<bool, RemoteError> + Sync),
    ) -> Result<bool, RemoteError> {
        let wanted: Vec<BlobRef> = blobs.iter().filter(|b| !have(&b.digest)).copied().collect();
        let outcomes = pool::map_bounded(self.config.parallelism, &wanted, fetch);
        for o in outcomes {
            if !o? {
                self.stats.note_incomplete();
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Whether the server has every blob of `blobs` (parallel `HEAD`s).
    pub fn check_all(&self, blobs: &[BlobRef]) -> Result<bool, RemoteError> {
        let outcomes = pool::map_bounded(self.config.parallelism, blobs, |b| {
            if self.known_present(&b.digest) {
                return Ok(true);
            }
            self.has_blob(&b.digest)
        });
        for o in outcomes {
            if !o? {
                self.stats.note_incomplete();
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Look `key` up: [`RemoteCache::get_entry`], then
    /// [`RemoteCache::fetch_all`] of its blobs. Any blob the server lacks or
    /// serves corrupt makes the whole lookup a [`Lookup::Miss`]. Counts hits
    /// and misses.
    pub fn lookup(
        &self,
        key: &ActionKey,
        have: &(dyn Fn(&Digest) -> bool + Sync),
        store: &BlobWriter<'_>,
    ) -> Result<Lookup, RemoteError> {
        let res = (|| {
            let Some(e) = self.get_entry(key)? else {
                return Ok(Lookup::Miss);
            };
            if !self.fetch_all(&e.blobs, have, store)? {
                return Ok(Lookup::Miss);
            }
            Ok(Lookup::Hit(e))
        })();
        match &res {
            Ok(Lookup::Hit(_)) => self.stats.note_hit(),
            Ok(Lookup::Miss) | Err(_) => self.stats.note_miss(),
        }
        res
    }

    /// Upload the result blob and the `ac/` entry for `key`. Every blob of
    /// `e` must already be on the server ([`RemoteCache::put_blob`]); with
    /// the `sha256` function their names must be known (they are after
    /// `put_blob`), else [`RemoteError::UnmappedBlob`] and nothing is written.
    pub fn put_entry(&self, key: &ActionKey, e: &RemoteEntry) -> Result<bool, RemoteError> {
        if self.config.read_only {
            return Ok(false);
        }
        let ac = self.encode_entry(e)?;
        let result_d = Digest::of_bytes(&e.result);
        self.put_blob(&result_d, &e.result)?;
        self.transport.put(Namespace::Ac, &self.ac_name(key), &ac)?;
        Ok(true)
    }

    /// `e` as the REAPI `ActionResult` bytes [`RemoteCache::put_entry`]
    /// writes (every blob's server name must be known).
    pub fn encode_entry(&self, e: &RemoteEntry) -> Result<Vec<u8>, RemoteError> {
        let result_d = Digest::of_bytes(&e.result);
        let result_name = self.blob_name_of(&result_d, &e.result);
        entry::encode(e, &result_name, &|b| self.blob_name(&b.digest))
    }

    /// Upload an action result: first every referenced blob the server is not
    /// known to have (in parallel, read through `read`), then
    /// [`RemoteCache::put_entry`] — so the entry never points at a missing
    /// blob. `Ok(false)` when nothing was uploaded (read-only mode, or a
    /// referenced blob is missing locally). Counts uploads.
    pub fn put_action(
        &self,
        key: &ActionKey,
        e: &RemoteEntry,
        read: &BlobReader<'_>,
    ) -> Result<bool, RemoteError> {
        if self.config.read_only {
            self.stats.note_skipped_upload();
            return Ok(false);
        }
        let res = (|| {
            let todo: Vec<BlobRef> = e
                .normalized_blobs()
                .into_iter()
                .filter(|b| !self.known_present(&b.digest))
                .collect();
            let outcomes = pool::map_bounded(self.config.parallelism, &todo, |b| {
                let bytes = read(&b.digest).map_err(|source| RemoteError::Local {
                    digest: b.digest,
                    source,
                })?;
                match bytes {
                    Some(bytes) => self.put_blob(&b.digest, &bytes),
                    None => Ok(false),
                }
            });
            for (b, o) in todo.iter().zip(outcomes) {
                if !o? {
                    tracing::debug!(key = %key, blob = %b.digest, "referenced blob missing locally; action result not uploaded");
                    return Ok(false);
                }
            }
            self.put_entry(key, e)
        })();
        match &res {
            Ok(true) => self.stats.note_action_upload(),
            _ => self.stats.note_skipped_upload(),
        }
        res
    }

    /// Note that an action result was uploaded outside [`RemoteCache::put_action`].
    pub(crate) fn count_upload(&self, done: bool) {
        if done {
            self.stats.note_action_upload();
        } else {
            self.stats.note_skipped_upload();
        }
    }

    /// Note an entry refused because a tree it references is invalid.
    pub(crate) fn note_rejected(&self) {
        self.stats.note_rejected();
    }

    /// Note a lookup's outcome decided outside [`RemoteCache::lookup`].
    pub(crate) fn count_lookup(&self, hit: bool) {
        if hit {
            self.stats.note_hit();
        } else {
            self.stats.note_miss();
        }
    }

    /// The size learned for blob `d` from an entry, if any.
    pub fn known_size(&self, d: &Digest) -> Option<u64> {
        self.sizes.lock().ok().and_then(|s| s.get(d).copied())
    }

    /// Give the remote up now (e.g. the user interrupted), with the one warning.
    pub fn disable(&self, reason: &str) {
        self.transport.give_up(reason);
    }
}

/// SHA-256 of the file at `path`, streamed, checking on the way that its
/// BLAKE3 is `d` ([`RemoteError::CorruptLocal`] if not).
fn sha256_checked(d: &Digest, path: &Path) -> Result<[u8; 32], RemoteError> {
    use sha2::Digest as _;
    use std::io::Read;
    let local = |source| RemoteError::LocalFile {
        digest: *d,
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(local)?;
    let mut blake = blake3::Hasher::new();
    let mut sha = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(local(e)),
        };
        blake.update(&buf[..n]);
        sha.update(&buf[..n]);
    }
    if Digest(*blake.finalize().as_bytes()) != *d {
        return Err(RemoteError::CorruptLocal {
            digest: *d,
            path: path.to_path_buf(),
        });
    }
    Ok(sha.finalize().into())
}
