//! Counters for the build summary: remote hits, uploads, bytes moved.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters, updated from the transfer threads.
#[derive(Debug, Default)]
pub struct RemoteStats {
    hits: AtomicU64,
    misses: AtomicU64,
    incomplete: AtomicU64,
    corrupt: AtomicU64,
    uploads: AtomicU64,
    skipped_uploads: AtomicU64,
    blobs_uploaded: AtomicU64,
    bytes_uploaded: AtomicU64,
    blobs_downloaded: AtomicU64,
    bytes_downloaded: AtomicU64,
    retries: AtomicU64,
    unavailable: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemoteStatsSnapshot {
    /// Action-cache lookups answered by the remote (and all their blobs obtained).
    pub hits: u64,
    /// Lookups the remote did not answer (absent, foreign, incomplete, corrupt or unreachable).
    pub misses: u64,
    /// Of the misses: entries found whose blobs were missing on the server.
    pub incomplete: u64,
    /// Downloads whose content did not match its digest (never used).
    pub corrupt: u64,
    /// Action results uploaded.
    pub uploads: u64,
    /// Action results not uploaded (read-only mode, or the remote was given up).
    pub skipped_uploads: u64,
    /// Objects (`ac/` + `cas/`) uploaded.
    pub blobs_uploaded: u64,
    /// Bytes uploaded.
    pub bytes_uploaded: u64,
    /// Objects downloaded.
    pub blobs_downloaded: u64,
    /// Bytes downloaded.
    pub bytes_downloaded: u64,
    /// Requests retried after a 5xx, timeout or reset.
    pub retries: u64,
    /// 1 if the remote was given up during the build, else 0.
    pub unavailable: u64,
}

macro_rules! bump {
    ($($fn_name:ident => $field:ident),* $(,)?) => {
        $(pub(crate) fn $fn_name(&self) { self.$field.fetch_add(1, Ordering::Relaxed); })*
    };
}

impl RemoteStats {
    bump! {
        note_hit => hits,
        note_miss => misses,
        note_incomplete => incomplete,
        note_corrupt => corrupt,
        note_action_upload => uploads,
        note_skipped_upload => skipped_uploads,
        note_retry => retries,
    }

    pub(crate) fn note_unavailable(&self) {
        self.unavailable.store(1, Ordering::Relaxed);
    }

    pub(crate) fn note_upload(&self, bytes: u64) {
        self.blobs_uploaded.fetch_add(1, Ordering::Relaxed);
        self.bytes_uploaded.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn note_download(&self, bytes: u64) {
        self.blobs_downloaded.fetch_add(1, Ordering::Relaxed);
        self.bytes_downloaded.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The current values.
    pub fn snapshot(&self) -> RemoteStatsSnapshot {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RemoteStatsSnapshot {
            hits: l(&self.hits),
            misses: l(&self.misses),
            incomplete: l(&self.incomplete),
            corrupt: l(&self.corrupt),
            uploads: l(&self.uploads),
            skipped_uploads: l(&self.skipped_uploads),
            blobs_uploaded: l(&self.blobs_uploaded),
            bytes_uploaded: l(&self.bytes_uploaded),
            blobs_downloaded: l(&self.blobs_downloaded),
            bytes_downloaded: l(&self.bytes_downloaded),
            retries: l(&self.retries),
            unavailable: l(&self.unavailable),
        }
    }
}
