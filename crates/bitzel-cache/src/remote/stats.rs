//! Counters for the build summary: remote hits, uploads, bytes moved.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters, updated from the transfer threads.
#[derive(Debug, Default)]
pub struct RemoteStats {
    hits: AtomicU64,
    misses: AtomicU64,
    incomplete: AtomicU64,
    corrupt: AtomicU64,
    rejected: AtomicU64,
    uploads: AtomicU64,
    skipped_uploads: AtomicU64,
    blobs_uploaded: AtomicU64,
    bytes_uploaded: AtomicU64,
    blobs_downloaded: AtomicU64,
    bytes_downloaded: AtomicU64,
    retries: AtomicU64,
    unavailable: AtomicU64,
    on_demand_eager: AtomicU64,
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
    /// Of the misses: entries refused because a tree they reference is
    /// invalid (a path that could leave its root, an entry below a symlink,
    /// ...); nothing of them was written.
    pub rejected: u64,
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
    /// For the results adopted with their files left on the server (see
    /// `HttpStore::with_outputs_on_demand`): what downloading each result
    /// and every blob it lists would have been, to compare with
    /// `bytes_downloaded`.
    pub on_demand_eager_bytes: u64,
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
        note_rejected => rejected,
        note_action_upload => uploads,
        note_skipped_upload => skipped_uploads,
    }
    /// A request is being retried.
    pub fn note_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// The remote was given up.
    pub fn note_unavailable(&self) {
        self.unavailable.store(1, Ordering::Relaxed);
    }

    /// One blob of `bytes` was uploaded.
    pub fn note_upload(&self, bytes: u64) {
        self.blobs_uploaded.fetch_add(1, Ordering::Relaxed);
        self.bytes_uploaded.fetch_add(bytes, Ordering::Relaxed);
    }

    /// One blob of `bytes` was downloaded.
    pub fn note_download(&self, bytes: u64) {
        self.blobs_downloaded.fetch_add(1, Ordering::Relaxed);
        self.bytes_downloaded.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A result was adopted on demand; fetching it whole would have been `bytes`.
    pub fn note_on_demand(&self, bytes: u64) {
        self.on_demand_eager.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The current values.
    pub fn snapshot(&self) -> RemoteStatsSnapshot {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RemoteStatsSnapshot {
            hits: l(&self.hits),
            misses: l(&self.misses),
            incomplete: l(&self.incomplete),
            corrupt: l(&self.corrupt),
            rejected: l(&self.rejected),
            uploads: l(&self.uploads),
            skipped_uploads: l(&self.skipped_uploads),
            blobs_uploaded: l(&self.blobs_uploaded),
            bytes_uploaded: l(&self.bytes_uploaded),
            blobs_downloaded: l(&self.blobs_downloaded),
            bytes_downloaded: l(&self.bytes_downloaded),
            retries: l(&self.retries),
            unavailable: l(&self.unavailable),
            on_demand_eager_bytes: l(&self.on_demand_eager),
        }
    }
}

/// The build summary's cache figures: local hits, remote hits, misses,
/// uploads and bytes moved. Built from [`crate::Cache::counts`] (every hit,
/// wherever it came from) and the remote level's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheSummary {
    /// Hits answered by the local cache.
    pub local_hits: u64,
    /// Hits answered by the remote cache (and written back locally).
    pub remote_hits: u64,
    /// Lookups no level answered (the task ran).
    pub misses: u64,
    /// Action results uploaded to the remote.
    pub uploads: u64,
    /// Bytes uploaded.
    pub bytes_uploaded: u64,
    /// Bytes downloaded.
    pub bytes_downloaded: u64,
    /// Whether a remote was configured.
    pub remote: bool,
    /// Whether the remote was given up during the build.
    pub remote_unavailable: bool,
    /// Remote entries refused because a tree they reference is invalid.
    pub remote_rejected: u64,
}

impl CacheSummary {
    /// `counts` is `(hits, misses)` from [`crate::Cache::counts`]; `remote`
    /// the remote level's counters, if there is a remote.
    pub fn new(counts: (u64, u64), remote: Option<RemoteStatsSnapshot>) -> CacheSummary {
        let (hits, misses) = counts;
        let r = remote.unwrap_or_default();
        CacheSummary {
            local_hits: hits.saturating_sub(r.hits),
            remote_hits: r.hits.min(hits),
            misses,
            uploads: r.uploads,
            bytes_uploaded: r.bytes_uploaded,
            bytes_downloaded: r.bytes_downloaded,
            remote: remote.is_some(),
            remote_unavailable: r.unavailable > 0,
            remote_rejected: r.rejected,
        }
    }
}

impl std::fmt::Display for CacheSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cache: {} local hits, {} remote hits, {} misses",
            self.local_hits, self.remote_hits, self.misses
        )?;
        if self.remote {
            write!(
                f,
                "; remote: {} uploads, {} up, {} down",
                self.uploads,
                crate::human_bytes(self.bytes_uploaded),
                crate::human_bytes(self.bytes_downloaded)
            )?;
            if self.remote_rejected > 0 {
                write!(
                    f,
                    " ({} entries rejected: invalid trees, see the warnings)",
                    self.remote_rejected
                )?;
            }
            if self.remote_unavailable {
                f.write_str(" (remote unavailable: continued with the local cache only)")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_splits_hits_and_formats() {
        let remote = RemoteStatsSnapshot {
            hits: 3,
            uploads: 2,
            bytes_uploaded: 1536,
            bytes_downloaded: 5 << 20,
            unavailable: 1,
            ..Default::default()
        };
        let s = CacheSummary::new((10, 4), Some(remote));
        assert_eq!((s.local_hits, s.remote_hits, s.misses), (7, 3, 4));
        expect_test::expect!["cache: 7 local hits, 3 remote hits, 4 misses; remote: 2 uploads, 1.5 KiB up, 5.0 MiB down (remote unavailable: continued with the local cache only)"]
            .assert_eq(&s.to_string());
        let rejected = RemoteStatsSnapshot {
            rejected: 2,
            ..Default::default()
        };
        expect_test::expect!["cache: 10 local hits, 0 remote hits, 4 misses; remote: 0 uploads, 0 B up, 0 B down (2 entries rejected: invalid trees, see the warnings)"]
            .assert_eq(&CacheSummary::new((10, 4), Some(rejected)).to_string());
        expect_test::expect!["cache: 10 local hits, 0 remote hits, 4 misses"]
            .assert_eq(&CacheSummary::new((10, 4), None).to_string());
    }
}
