//! Remote-cache throughput against a loopback nginx WebDAV server
//! (`scripts/nginx-dav`): upload and download of large and small blobs with
//! the bounded transfer pool versus one transfer at a time, and the
//! stacked-cache round trip (machine A uploads one action, machine B with an
//! empty local cache restores it).
//!
//! Last: one large blob (256 MiB; a rootfs image) through the stacked cache,
//! with the process's peak RSS growth, which stays far below the blob's size
//! because large blobs stream (see `remote::store::STREAM_UPLOAD_BYTES`).
//!
//! Run: `cargo bench -p bitzel-benches --bench remote`
//! (`BITZEL_BENCH_QUICK=1` for a smoke run with small sizes).
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

#[path = "../crates/bitzel-cache/tests/remote_common/mod.rs"]
mod remote_common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bitzel_cache::remote::{BlobRef, Lookup, RemoteCache, RemoteConfig, RemoteEntry};
use bitzel_cache::{Action, ActionResult, Cache, Digest};
use remote_common::{as_refs, make_result, stacked, Nginx};

fn blobs(n: usize, size: usize, seed: u64) -> Vec<Vec<u8>> {
    (0..n as u64)
        .map(|i| remote_common::pseudo_random(size as u64, seed ^ (i + 1)))
        .collect()
}

fn config(url: &str, parallelism: usize) -> RemoteConfig {
    let mut c = RemoteConfig::new(url).unwrap();
    c.parallelism = parallelism;
    c
}

struct Figures {
    up: Duration,
    down: Duration,
}

/// Upload `data` as one action's blobs, then download them all into memory.
fn transfer(url: &str, parallelism: usize, data: &[Vec<u8>], tag: u64) -> Figures {
    let remote = RemoteCache::new(config(url, parallelism), None).unwrap();
    let refs: Vec<BlobRef> = data.iter().map(|b| BlobRef::of_bytes(b)).collect();
    let by_digest: HashMap<Digest, &Vec<u8>> =
        refs.iter().map(|r| r.digest).zip(data.iter()).collect();
    let entry = RemoteEntry {
        result: format!("bench result {tag}").into_bytes(),
        blobs: refs.clone(),
        ..RemoteEntry::default()
    };
    let key = Action {
        label: format!("bench:{tag}"),
        ..Action::default()
    }
    .key();
    let read = |d: &Digest| Ok(by_digest.get(d).map(|b| (*b).clone()));
    let t0 = Instant::now();
    assert!(remote.put_action(&key, &entry, &read).unwrap());
    let up = t0.elapsed();

    // A fresh client (nothing known present), as on another machine.
    let reader = RemoteCache::new(config(url, parallelism), None).unwrap();
    let got = AtomicU64::new(0);
    let t1 = Instant::now();
    let res = reader
        .lookup(&key, &|_| false, &|_, bytes| {
            got.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
    let down = t1.elapsed();
    assert!(matches!(res, Lookup::Hit(_)));
    assert_eq!(
        got.into_inner(),
        data.iter().map(|b| b.len() as u64).sum::<u64>()
    );
    Figures { up, down }
}

fn rate(bytes: u64, n: usize, d: Duration) -> String {
    let s = d.as_secs_f64().max(1e-9);
    format!(
        "{:8.1} MiB/s {:7.0} blobs/s ({:.3} s)",
        bytes as f64 / s / (1024.0 * 1024.0),
        n as f64 / s,
        s
    )
}

/// Peak resident set size of this process in KiB (`VmHWM`).
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Reset the peak RSS to the current RSS (Linux ≥ 4.0).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// An action whose output is one file of `size` bytes, written in 1 MiB
/// chunks (never whole in memory) and captured into `cache`.
fn big_result(cache: &Cache, size: usize) -> (bitzel_cache::ActionKey, ActionResult) {
    use std::io::Write;
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("rootfs.img");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut left = size;
    let mut seed = 7;
    while left > 0 {
        seed += 1;
        let chunk = &blobs(1, (1 << 20).min(left), seed)[0];
        f.write_all(chunk).unwrap();
        left -= chunk.len();
    }
    drop(f);
    let captured = cache.capture(work.path()).unwrap();
    let action = Action {
        label: "bench:rootfs".into(),
        ..Action::default()
    };
    let result = ActionResult {
        label: "bench:rootfs".into(),
        output: captured.digest,
        extra_outputs: Default::default(),
        exit_code: 0,
        stdout: None,
        stderr: None,
        duration_ms: 1,
        created_unix_ms: 1_700_000_000_000,
        action: action.clone(),
    };
    (action.key(), result)
}

fn main() {
    let quick = std::env::var_os("BITZEL_BENCH_QUICK").is_some();
    let nginx = Nginx::start();
    println!(
        "remote cache throughput, loopback nginx WebDAV at {}",
        nginx.url
    );
    let sets: Vec<(&str, usize, usize)> = if quick {
        vec![("large", 8, 1 << 20), ("small", 200, 4 << 10)]
    } else {
        vec![("large", 64, 1 << 20), ("small", 2000, 4 << 10)]
    };
    let mut tag = 0;
    for (name, n, size) in sets {
        let bytes = (n * size) as u64;
        let mut results = Vec::new();
        for parallelism in [1usize, 8] {
            tag += 1;
            let data = blobs(n, size, tag);
            let f = transfer(&nginx.url, parallelism, &data, tag);
            println!(
                "{name:5} {n:5} x {:>5} KiB, pool {parallelism}:  upload {}  download {}",
                size >> 10,
                rate(bytes, n, f.up),
                rate(bytes, n, f.down)
            );
            results.push(f);
        }
        println!(
            "{name:5} pool 8 vs pool 1: upload x{:.2}, download x{:.2}",
            results[0].up.as_secs_f64() / results[1].up.as_secs_f64().max(1e-9),
            results[0].down.as_secs_f64() / results[1].down.as_secs_f64().max(1e-9)
        );
    }

    // Through the stacked cache: one action with many files.
    let files = blobs(if quick { 100 } else { 1000 }, 8 << 10, 999);
    let named: Vec<(String, Vec<u8>)> = files
        .into_iter()
        .enumerate()
        .map(|(i, b)| (format!("usr/lib/f{i:05}"), b))
        .collect();
    let bytes: u64 = named.iter().map(|(_, b)| b.len() as u64).sum();
    let dir_a = tempfile::tempdir().unwrap();
    let (cache_a, remote_a) = stacked(dir_a.path(), RemoteConfig::new(&nginx.url).unwrap());
    let (key, result) = make_result(&cache_a, "bench:do_install", &as_refs(&named));
    let t0 = Instant::now();
    cache_a.put(&key, &result).unwrap();
    let up = t0.elapsed();
    let dir_b = tempfile::tempdir().unwrap();
    let (cache_b, remote_b) = stacked(dir_b.path(), RemoteConfig::new(&nginx.url).unwrap());
    let t1 = Instant::now();
    assert!(matches!(
        cache_b.lookup(&key).unwrap(),
        bitzel_cache::Lookup::Hit(_)
    ));
    let down = t1.elapsed();
    println!(
        "stacked cache, 1 action of {} files x 8 KiB: upload (cache A put) {}  restore (empty cache B lookup) {}",
        named.len(),
        rate(bytes, named.len(), up),
        rate(bytes, named.len(), down)
    );
    println!("  A: {:?}\n  B: {:?}", remote_a.stats(), remote_b.stats());

    // One large blob (a rootfs image) through the stacked cache.
    let size: usize = if quick { 16 << 20 } else { 256 << 20 };
    let dir_a = tempfile::tempdir().unwrap();
    let (cache_a, remote_a) = stacked(dir_a.path(), RemoteConfig::new(&nginx.url).unwrap());
    let (key, result) = big_result(&cache_a, size);
    reset_peak_rss();
    let base = peak_rss_kib();
    let t0 = Instant::now();
    cache_a.put(&key, &result).unwrap();
    remote_a.flush();
    let up = t0.elapsed();
    let up_rss = peak_rss_kib().saturating_sub(base);
    let dir_b = tempfile::tempdir().unwrap();
    let (cache_b, _remote_b) = stacked(dir_b.path(), RemoteConfig::new(&nginx.url).unwrap());
    reset_peak_rss();
    let base = peak_rss_kib();
    let t1 = Instant::now();
    assert!(matches!(
        cache_b.lookup(&key).unwrap(),
        bitzel_cache::Lookup::Hit(_)
    ));
    let down = t1.elapsed();
    let down_rss = peak_rss_kib().saturating_sub(base);
    println!(
        "stacked cache, 1 blob of {} MiB: upload {} (peak RSS +{} MiB)  restore {} (peak RSS +{} MiB)",
        size >> 20,
        rate(size as u64, 1, up),
        up_rss >> 10,
        rate(size as u64, 1, down),
        down_rss >> 10
    );
}
