//! The host-root digest (`bitzel_cache::hostroot`) three ways on a generated
//! tree — cold (empty machine-wide memo: every file hashed), warm memo (the
//! stored result dropped: walk + memo load + lookups) and the fast path
//! (fingerprint matches: walk only) — then the fast-path walk of this
//! machine's real host root (`/usr`, `/etc`, ... as the sandbox binds them).
//! `BITZEL_BENCH_HOST_COLD=1` also times the real root's first-time hashing
//! (into a temporary memo; minutes on a large `/usr`).
//!
//! Run: `scripts/bench hostroot` or `cargo bench -p bitzel-benches --bench hostroot`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bitzel_cache::hostroot::{host_root_digest, stat_fingerprint, HostDigestCache};

/// ~`files` small files (1-16 KiB) in 40-file directories, like an include tree.
fn generate(root: &Path, files: usize) -> u64 {
    let mut bytes = 0u64;
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..files {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let dir = root.join(format!("d{:03}/s{:02}", i / 400, (i / 40) % 10));
        fs::create_dir_all(&dir).unwrap();
        let size = 1024 + (x % (15 << 10)) as usize;
        let mut body = vec![(i % 251) as u8; size];
        body[..8].copy_from_slice(&(i as u64).to_le_bytes());
        fs::write(dir.join(format!("f{i}.h")), &body).unwrap();
        bytes += size as u64;
    }
    bytes
}

fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed())
}

fn main() {
    let files: usize = std::env::var("BITZEL_BENCH_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40_000);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("usr");
    let bytes = generate(&root, files);
    let paths = vec![root];
    let memo_dir = tmp.path().join("digests");
    // Freshly written files are racy by default; the bench wants the steady state.
    let cache = HostDigestCache::at(&memo_dir).with_racy_window(Duration::ZERO);
    println!(
        "generated tree: {files} files, {:.1} MiB",
        bytes as f64 / (1 << 20) as f64
    );

    let (cold, t_cold) = time(|| host_root_digest(&paths, &cache).unwrap());
    assert!(!cold.reused && cold.hashed_files as usize == files);
    fs::remove_dir_all(memo_dir.join("roots")).unwrap();
    let (warm, t_warm) = time(|| host_root_digest(&paths, &cache).unwrap());
    assert!(!warm.reused && warm.hashed_files == 0 && warm.digest == cold.digest);
    let (fast, t_fast) = time(|| host_root_digest(&paths, &cache).unwrap());
    assert!(fast.reused && fast.digest == cold.digest);
    println!(
        "cold memo (hash every file):     {:8.3} s  ({:.0} MiB/s)",
        t_cold.as_secs_f64(),
        bytes as f64 / (1 << 20) as f64 / t_cold.as_secs_f64()
    );
    println!(
        "warm memo (walk + memo lookups): {:8.3} s",
        t_warm.as_secs_f64()
    );
    println!(
        "fingerprint fast path (walk):    {:8.3} s",
        t_fast.as_secs_f64()
    );

    let host: Vec<PathBuf> = [
        "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
    ]
    .iter()
    .map(PathBuf::from)
    .filter(|p| p.symlink_metadata().is_ok())
    .collect();
    let mut walks = Vec::new();
    let mut entries = 0;
    for _ in 0..5 {
        let ((_, n), t) = time(|| stat_fingerprint(&host).unwrap());
        entries = n;
        walks.push(t);
    }
    walks.sort();
    println!(
        "host root {:?}: {entries} entries, fast-path walk min {:.3} s, median {:.3} s",
        host,
        walks[0].as_secs_f64(),
        walks[walks.len() / 2].as_secs_f64()
    );
    if std::env::var_os("BITZEL_BENCH_HOST_COLD").is_some() {
        let cold_cache = HostDigestCache::at(tmp.path().join("host-digests"));
        let (r, t) = time(|| host_root_digest(&host, &cold_cache).unwrap());
        println!(
            "host root first-time hashing: {:.1} s, {} files, {:.2} GiB",
            t.as_secs_f64(),
            r.hashed_files,
            r.hashed_bytes as f64 / (1u64 << 30) as f64
        );
        let (r, t) = time(|| host_root_digest(&host, &cold_cache).unwrap());
        println!(
            "host root again: {:.3} s (reused: {}, memo hits {})",
            t.as_secs_f64(),
            r.reused,
            r.memo_hits
        );
    }
}
