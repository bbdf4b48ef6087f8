//! bitzel-cache: digests, the canonical action encoding, the content-addressed
//! store, trees (capture and materialisation, overlayfs whiteouts included),
//! the action cache with its storage stack, the rebuildable sled index,
//! `explain` diffs, host-tool and host-root digests, verification and garbage collection.
//!
//! Start at [`Cache`]. See ARCHITECTURE.md for the invariants.

pub mod action;
pub(crate) mod beneath;
pub mod cache;
pub mod canon;
pub mod cas;
pub mod delta;
pub mod digest;
pub mod error;
pub mod explain;
pub(crate) mod fsutil;
pub mod hostroot;
pub mod hosttools;
pub mod index;
pub mod layer;
pub(crate) mod lease;
pub mod lock;
pub mod maintenance;
pub mod remote;
pub mod store;
pub mod tree;

pub use action::{now_unix_ms, Action, ActionResult, FORMAT_VERSION};
pub use cache::{default_cache_dir, BlobSource, Cache, CacheOptions, Captured, Lookup, MissReason};
pub use cas::Cas;
pub use delta::Baseline;
pub use digest::{ActionKey, Digest};
pub use error::{Error, Result};
pub use explain::{diff, Difference, LineChange};
pub use fsutil::MATERIALIZED_MTIME;
pub use hostroot::{host_root_digest, HostDigestCache, HostRootDigest};
pub use hosttools::hosttools_file_digest;
pub use lock::{FileLock, LockMode};
pub use maintenance::{
    human_bytes, parse_size, CacheStats, ForgetReport, GcOptions, GcReport, VerifyReport,
};
pub use store::{Durability, LocalStore, ReadOnly, Stacked, Storage};
pub use tree::{CaptureStats, EntryKind, Tree, TreeEntry};
