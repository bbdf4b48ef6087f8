//! Hashing, capture and restore throughput on a generated tree of mixed
//! file sizes (default 1 GiB; `BITZEL_BENCH_BYTES=256M` for less), next to
//! `b3sum` on the same files in the same run.
//!
//! Run: `scripts/bench-hash` (installs b3sum if missing) or
//! `cargo bench -p bitzel-benches --bench hash`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use bitzel_cache::{tree::capture, Cache, CacheOptions, Durability};

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// Mixed sizes: many small files, some medium, a few large — like a build tree.
fn generate(root: &Path, total: u64) -> (Vec<PathBuf>, u64) {
    let mut seed = 0x1234_5678_9abc_def1u64;
    let mut files = Vec::new();
    let mut written = 0u64;
    let mut buf = vec![0u8; 64 << 20];
    for chunk in buf.chunks_mut(8) {
        let v = xorshift(&mut seed).to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    let mut i = 0u64;
    while written < total {
        let r = xorshift(&mut seed) % 1000;
        let size = if r < 850 {
            1024 + xorshift(&mut seed) % (16 << 10)
        } else if r < 990 {
            (64 << 10) + xorshift(&mut seed) % (1 << 20)
        } else {
            (8 << 20) + xorshift(&mut seed) % (56 << 20)
        };
        let size = size.min(total - written).max(1);
        let dir = root.join(format!("d{:03}/s{:02}", i % 97, i % 13));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join(format!("f{i}"));
        let off = (xorshift(&mut seed) % (buf.len() as u64 - size.min(buf.len() as u64))) as usize;
        let body = &buf[off..off + size as usize];
        // Make every file unique (no dedup flattering the capture numbers).
        let mut content = body.to_vec();
        let n = 8.min(content.len());
        content[..n].copy_from_slice(&i.to_le_bytes()[..n]);
        fs::write(&p, &content).unwrap();
        files.push(p);
        written += size;
        i += 1;
    }
    (files, written)
}

fn gib_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / secs / (1u64 << 30) as f64
}

fn b3sum_time(files: &[PathBuf]) -> Option<f64> {
    if Command::new("b3sum")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        return None;
    }
    let start = Instant::now();
    for chunk in files.chunks(2000) {
        let st = Command::new("b3sum")
            .args(chunk)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
    }
    Some(start.elapsed().as_secs_f64())
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let total = std::env::var("BITZEL_BENCH_BYTES")
        .ok()
        .map(|s| bitzel_cache::parse_size(&s).unwrap())
        .unwrap_or(1 << 30);
    let base = std::env::var_os("BITZEL_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let t = tempfile::tempdir_in(base).unwrap();
    let tree_dir = t.path().join("tree");
    let gen = Instant::now();
    let (files, bytes) = generate(&tree_dir, total);
    println!(
        "generated {} files, {:.2} GiB in {:.1}s under {}",
        files.len(),
        bytes as f64 / (1u64 << 30) as f64,
        gen.elapsed().as_secs_f64(),
        t.path().display()
    );
    // Warm the page cache so both hashers read from memory.
    capture(&tree_dir, None).unwrap();

    let start = Instant::now();
    let (tree, _) = capture(&tree_dir, None).unwrap();
    let ours = start.elapsed().as_secs_f64();
    assert_eq!(tree.content_bytes(), bytes);
    println!(
        "bitzel hash     {:>7.2} GiB/s  ({ours:.2}s)",
        gib_s(bytes, ours)
    );
    match b3sum_time(&files) {
        Some(peer) => println!(
            "b3sum           {:>7.2} GiB/s  ({peer:.2}s)   bitzel/b3sum time ratio {:.2} (target ≤ 2)",
            gib_s(bytes, peer),
            ours / peer
        ),
        None => println!("b3sum           not installed (scripts/bench-hash installs it): no peer figure"),
    }

    let cache = Cache::open_with(
        &t.path().join("cache"),
        CacheOptions {
            durability: Durability::Process,
            ..CacheOptions::default()
        },
    )
    .unwrap();
    let start = Instant::now();
    let cap = cache.capture(&tree_dir).unwrap();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "capture to CAS  {:>7.2} GiB/s  ({secs:.2}s)",
        gib_s(bytes, secs)
    );
    let start = Instant::now();
    cache.ensure_layer(&cap.digest).unwrap();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "restore layer   {:>7.2} GiB/s  ({secs:.2}s, verified copy)",
        gib_s(bytes, secs)
    );
    let start = Instant::now();
    cache.ensure_layer(&cap.digest).unwrap();
    println!(
        "layer reuse     {:>7.3} ms",
        start.elapsed().as_secs_f64() * 1000.0
    );
}
