//! Per-task sandbox overhead: the native backend, bubblewrap with the same spec, and
//! `unshare -Urmpn --fork true`, measured in the same run. Every sandbox run `true` over the
//! host build root with a 50-layer overlay at /bitzel/work (fresh upperdir).
//!
//! `cargo bench -p bitzel-benches --bench sandbox [-- ITERATIONS]`
//!
//! With `BITZEL_BENCH_ROOTFS_LAYER` set to a `rootfs` build root's layer (what
//! `bitzel rootfs build` prints; `scripts/bench-rootfs` does it), the native and bwrap
//! runs are repeated with that layer as the whole root instead of the host's `/usr`, and
//! the rootfs/host ratio printed.
//!
//! This binary is its own sandbox helper (`HelperExe::CurrentExe`, as `bitzel` itself): a
//! bench target of another package cannot name bitzel-sandbox's helper binary.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)]

use std::time::{Duration, Instant};

use bitzel_sandbox::*;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Stats {
    name: String,
    min: Duration,
    p10: Duration,
    p50: Duration,
}

fn measure(name: &str, iters: usize, mut f: impl FnMut()) -> Stats {
    for _ in 0..iters / 10 + 2 {
        f();
    }
    let mut v: Vec<Duration> = (0..iters)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    v.sort();
    Stats {
        name: name.to_owned(),
        min: v[0],
        p10: percentile(&v, 0.10),
        p50: percentile(&v, 0.50),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    if is_helper_invocation() {
        helper_main();
    }
    let iters: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::Builder::new()
        .prefix("bitzel-bench-")
        .tempdir()
        .unwrap();
    let mut lowers = Vec::new();
    for i in 0..50 {
        let d = dir.path().join(format!("layer{i:02}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("f{i}")), "x").unwrap();
        lowers.push(d);
    }
    let (up, wk) = (dir.path().join("up"), dir.path().join("wk"));
    std::fs::create_dir_all(&up).unwrap();
    std::fs::create_dir_all(&wk).unwrap();
    let mut spec = SandboxSpec::new(vec!["true".into()], SandboxSpec::default_host_paths());
    spec.env.insert("PATH".into(), "/usr/bin:/bin".into());
    spec.mounts.push(Mount::Overlay {
        lowers,
        upper: Some((up, wk)),
        dst: "/bitzel/work".into(),
    });
    let cfg = SandboxConfig::new(HelperExe::CurrentExe);
    let native = NativeBackend::new(cfg.clone());
    let bwrap = BwrapBackend::new(cfg);
    let check = |b: &dyn Backend| {
        let o = b.run(&spec).unwrap_or_else(|e| panic!("{}: {e}", b.name()));
        assert_eq!(o.status, ExitStatus::Code(0), "{}", b.name());
    };
    check(&native);
    check(&bwrap);

    println!("sandbox overhead, {iters} runs each (`true`, host root, 50-layer overlay):");
    let mut rows = vec![
        measure("native (this crate)", iters, || check(&native)),
        measure("bwrap, same spec", iters, || check(&bwrap)),
        measure("unshare -Urmpn --fork true", iters, || {
            let s = std::process::Command::new("unshare")
                .args(["-Urmpn", "--fork", "true"])
                .status()
                .unwrap();
            assert!(s.success());
        }),
        measure("/bin/true (fork+exec)", iters, || {
            assert!(std::process::Command::new("/bin/true")
                .status()
                .unwrap()
                .success());
        }),
    ];
    // Second native pass: the first one competes with a cold page cache.
    rows[0] = measure("native (this crate)", iters, || check(&native));
    let rootfs = std::env::var_os("BITZEL_BENCH_ROOTFS_LAYER").map(|layer| {
        let mut s = spec.clone();
        s.root = RootSpec::Layers(vec![layer.into()]);
        let run = |b: &dyn Backend| {
            let o = b
                .run(&s)
                .unwrap_or_else(|e| panic!("{} (rootfs): {e}", b.name()));
            assert_eq!(o.status, ExitStatus::Code(0), "{} (rootfs)", b.name());
        };
        [
            measure("native, rootfs root", iters, || run(&native)),
            measure("bwrap, rootfs root", iters, || run(&bwrap)),
        ]
    });
    println!("{:<30} {:>9} {:>9} {:>9}", "", "min ms", "p10 ms", "p50 ms");
    for r in &rows {
        println!(
            "{:<30} {:>9.2} {:>9.2} {:>9.2}",
            r.name,
            ms(r.min),
            ms(r.p10),
            ms(r.p50)
        );
    }
    if let Some(r) = &rootfs {
        for x in r {
            println!(
                "{:<30} {:>9.2} {:>9.2} {:>9.2}",
                x.name,
                ms(x.min),
                ms(x.p10),
                ms(x.p50)
            );
        }
        println!(
            "rootfs/host p50: native {:.2}, bwrap {:.2} (per-task overhead of the rootfs build root)",
            r[0].p50.as_secs_f64() / rows[0].p50.as_secs_f64(),
            r[1].p50.as_secs_f64() / rows[1].p50.as_secs_f64()
        );
    }
    let ratio = rows[0].p50.as_secs_f64() / rows[1].p50.as_secs_f64();
    println!("native p50 / bwrap p50 = {ratio:.2} (target <= 0.60)");
    println!(
        "native p50 / unshare p50 = {:.2}",
        rows[0].p50.as_secs_f64() / rows[2].p50.as_secs_f64()
    );
}
