//! Tests with real processes (harness = false: this binary is also the
//! helper it spawns, selected by `BITZEL_CACHE_HELPER`):
//! - a writer (entries and layers) killed with SIGKILL at random moments,
//!   many times, leaves a cache that verifies clean, with process
//!   durability and with full durability;
//! - `gc --max-size 0` keeps the layer and blobs a running build holds, and
//!   removes them once it has exited;
//! - two "builds" sharing one cache directory both succeed, and both
//!   builds' history reaches the index;
//! - a reader waits for the index holder, naming it, or times out saying who;
//! - capture → materialise → overlay mount in a user namespace round-trips
//!   whiteouts and opaque directories made by a real overlayfs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bitzel_cache::{
    now_unix_ms, Action, ActionResult, Cache, CacheOptions, Digest, Durability, EntryKind, Error,
    GcOptions, Lookup,
};

const HELPER: &str = "BITZEL_CACHE_HELPER";

fn main() {
    if let Ok(mode) = std::env::var(HELPER) {
        let args: Vec<String> = std::env::args().skip(1).collect();
        helper(&mode, &args);
        return;
    }
    let tests: &[(&str, fn())] = &[
        (
            "kill9_loop_leaves_a_cache_that_verifies_process_durability",
            || kill9_loop(Durability::Process),
        ),
        (
            "kill9_loop_leaves_a_cache_that_verifies_full_durability",
            || kill9_loop(Durability::Full),
        ),
        (
            "gc_keeps_what_a_running_build_holds",
            gc_keeps_what_a_running_build_holds,
        ),
        ("two_builds_share_one_cache_dir", two_builds),
        ("index_holder_is_waited_for_and_named", index_wait),
        (
            "overlay_whiteouts_and_opaque_dirs_round_trip",
            overlay_round_trip,
        ),
    ];
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut failed = Vec::new();
    for (name, f) in tests {
        if !filter.is_empty() && !filter.iter().any(|p| name.contains(p.as_str())) {
            continue;
        }
        let start = Instant::now();
        let ok = std::panic::catch_unwind(f).is_ok();
        println!(
            "test {name} ... {} ({:.1}s)",
            if ok { "ok" } else { "FAILED" },
            start.elapsed().as_secs_f64()
        );
        if !ok {
            failed.push(*name);
        }
    }
    if !failed.is_empty() {
        eprintln!("failed: {failed:?}");
        std::process::exit(1);
    }
}

fn spawn_helper(mode: &str, args: &[&str]) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .env(HELPER, mode)
        .args(args)
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

fn helper(mode: &str, args: &[String]) {
    match mode {
        // write <cache> <scratch> <process|full>: store entries and
        // materialise their layers forever (until killed).
        "write" => {
            let durability = match args[2].as_str() {
                "full" => Durability::Full,
                _ => Durability::Process,
            };
            let cache = Cache::open_with(
                Path::new(&args[0]),
                CacheOptions {
                    durability,
                    ..CacheOptions::default()
                },
            )
            .unwrap();
            let scratch = PathBuf::from(&args[1]);
            for i in 0u64.. {
                let out = store_entry(
                    &cache,
                    &scratch,
                    "stress:do_compile",
                    i,
                    64 * 1024 + (i as usize % 7) * 100_000,
                );
                cache.ensure_layer(&out).unwrap();
            }
        }
        // holdlayer <cache> <scratch>: store an entry, materialise its
        // layer, print its digest, then hold it until stdin closes.
        "holdlayer" => {
            let cache = Cache::open(Path::new(&args[0])).unwrap();
            let out = store_entry(&cache, Path::new(&args[1]), "held:do_install", 7, 300_000);
            cache.ensure_layer(&out).unwrap();
            println!("holding {}", out.to_hex());
            use std::io::Read;
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
        }
        // build <cache> <scratch> <tag> <n>: n lookups+puts, reading history as it goes.
        "build" => {
            let cache = Cache::open(Path::new(&args[0])).unwrap();
            let scratch = PathBuf::from(&args[1]);
            let tag = &args[2];
            let n: u64 = args[3].parse().unwrap();
            for i in 0..n {
                let label = format!("{tag}:do_task{}", i % 5);
                let shared = format!("shared:do_task{}", i % 3);
                for l in [label, shared] {
                    let a = action(&l, i);
                    if let Lookup::Miss(_) = cache.lookup(&a.key()).unwrap() {
                        store_entry(&cache, &scratch.join(tag), &l, i, 1000);
                    }
                }
                if i % 10 == 0 {
                    cache.history(&format!("{tag}:do_task0")).unwrap();
                }
            }
            cache.close();
        }
        // hold <cache> <ms>: keep the index open for a while.
        "hold" => {
            let cache = Cache::open(Path::new(&args[0])).unwrap();
            let ms: u64 = args[1].parse().unwrap();
            cache
                .with_index(|_| {
                    println!("holding");
                    std::thread::sleep(Duration::from_millis(ms));
                    Ok(())
                })
                .unwrap();
        }
        other => panic!("unknown helper mode {other}"),
    }
}

fn action(label: &str, i: u64) -> Action {
    Action {
        label: label.into(),
        script: format!("step {i}\n"),
        ..Action::default()
    }
}

/// Capture a small output tree and record an entry for it; returns the
/// output tree's digest.
fn store_entry(cache: &Cache, scratch: &Path, label: &str, i: u64, size: usize) -> Digest {
    let dir = scratch.join(format!("{}-{i}", std::process::id()));
    fs::create_dir_all(dir.join("sub")).unwrap();
    let data: Vec<u8> = (0..size)
        .map(|j| (j as u64 ^ i.wrapping_mul(0x9e37_79b9)) as u8)
        .collect();
    fs::write(dir.join("sub/data"), &data).unwrap();
    fs::write(dir.join("small"), i.to_string()).unwrap();
    let cap = cache.capture(&dir).unwrap();
    let a = action(label, i);
    let r = ActionResult {
        label: label.into(),
        output: cap.digest,
        extra_outputs: BTreeMap::new(),
        exit_code: 0,
        stdout: Some(cache.put_blob(format!("log {i}").as_bytes()).unwrap()),
        stderr: None,
        duration_ms: 1,
        created_unix_ms: now_unix_ms(),
        action: a.clone(),
    };
    cache.put(&a.key(), &r).unwrap();
    let _ = fs::remove_dir_all(&dir);
    cap.digest
}

/// A small xorshift for kill delays (no rand dependency).
fn delays(n: usize) -> Vec<u64> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d ^ now_unix_ms();
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            5 + x % 120
        })
        .collect()
}

fn kill9_loop(durability: Durability) {
    let mode = match durability {
        Durability::Full => "full",
        Durability::Process => "process",
    };
    let t = tempfile::tempdir().unwrap();
    let cache_dir = t.path().join("cache");
    let scratch = t.path().join("scratch");
    // At least 25 kills at random points; on a loaded machine (slow process
    // start) keep going, with longer lifetimes, until some entries exist.
    let stored = |dir: &Path| -> usize {
        Cache::open(dir)
            .ok()
            .and_then(|c| c.local().list_actions().ok())
            .map_or(0, |e| e.len())
    };
    let mut extra = 0u64;
    for (run, ms) in delays(200).into_iter().enumerate() {
        if run >= 25 && stored(&cache_dir) >= 5 {
            break;
        }
        let mut child = spawn_helper(
            "write",
            &[cache_dir.to_str().unwrap(), scratch.to_str().unwrap(), mode],
        );
        std::thread::sleep(Duration::from_millis(ms + extra));
        // SIGKILL: Child::kill sends SIGKILL on Unix.
        child.kill().unwrap();
        child.wait().unwrap();
        if run >= 25 {
            extra += 100;
        }
    }
    let cache = Cache::open(&cache_dir).unwrap();
    let entries = cache.local().list_actions().unwrap();
    assert!(
        entries.len() >= 5,
        "the writer should have stored some entries, got {}",
        entries.len()
    );
    let rep = cache.verify().unwrap();
    assert!(rep.corrupt_blobs.is_empty(), "{rep:?}");
    assert!(rep.unreadable_entries.is_empty(), "{rep:?}");
    assert!(rep.broken_entries.is_empty(), "{rep:?}");
    // A stamped layer is complete; unstamped ones (cut short) were removed.
    assert!(rep.broken_layers.is_empty(), "{rep:?}");
    assert!(rep.layers_checked >= 1, "some layers were stamped: {rep:?}");
    for (k, _, _) in entries {
        let Lookup::Hit(r) = cache.lookup(&k).unwrap() else {
            panic!("entry {k} is not a hit after verify");
        };
        cache.ensure_layer(&r.output).unwrap();
    }
    assert!(cache.verify().unwrap().is_clean());
    // Journals of killed writers were merged into the index.
    assert!(!cache.history("stress:do_compile").unwrap().is_empty());
}

fn gc_keeps_what_a_running_build_holds() {
    let t = tempfile::tempdir().unwrap();
    let cache_dir = t.path().join("cache");
    let scratch = t.path().join("scratch");
    let mut holder = Command::new(std::env::current_exe().unwrap())
        .env(HELPER, "holdlayer")
        .args([cache_dir.to_str().unwrap(), scratch.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let held: Digest = line
        .trim()
        .strip_prefix("holding ")
        .unwrap()
        .parse()
        .unwrap();

    let cache = Cache::open(&cache_dir).unwrap();
    let tree = cache.read_tree(&held).unwrap();
    let mut blobs = tree.blobs();
    blobs.push(held);
    assert!(cache.layer_ready(&held));
    let no_grace = GcOptions {
        max_bytes: 0,
        grace: Duration::ZERO,
    };
    let r = cache.gc(&no_grace).unwrap();
    assert_eq!(r.entries_evicted, 1, "{r:?}");
    assert_eq!(r.layers_in_use, 1, "{r:?}");
    assert!(r.blobs_in_use >= blobs.len() as u64, "{r:?}");
    assert!(cache.layer_ready(&held), "the held layer survives gc");
    for b in &blobs {
        assert!(cache.cas().contains(b), "held blob {b} survives gc");
    }
    assert!(cache.verify().unwrap().layers_in_use == 1);

    // The holder exits: everything it held is now collectable.
    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success());
    let r = cache.gc(&no_grace).unwrap();
    assert_eq!((r.layers_in_use, r.blobs_in_use), (0, 0), "{r:?}");
    assert!(r.layers_removed >= 1, "{r:?}");
    assert!(!cache.layer_path(&held).exists());
    assert!(!cache.layer_stamp_path(&held).exists());
    for b in &blobs {
        assert!(!cache.cas().contains(b), "blob {b} removed once released");
    }
}

fn two_builds() {
    let t = tempfile::tempdir().unwrap();
    let cache_dir = t.path().join("cache");
    let scratch = t.path().join("scratch");
    let (c, s) = (cache_dir.to_str().unwrap(), scratch.to_str().unwrap());
    let mut a = spawn_helper("build", &[c, s, "alpha", "60"]);
    let mut b = spawn_helper("build", &[c, s, "beta", "60"]);
    assert!(a.wait().unwrap().success(), "first build failed");
    assert!(b.wait().unwrap().success(), "second build failed");
    let cache = Cache::open(&cache_dir).unwrap();
    assert!(!cache.history("alpha:do_task0").unwrap().is_empty());
    assert!(!cache.history("beta:do_task0").unwrap().is_empty());
    let s = cache.stats().unwrap();
    assert_eq!(
        s.builds.len(),
        2,
        "both builds' hit counts recorded: {:?}",
        s.builds
    );
    assert!(cache.verify().unwrap().is_clean());
}

fn index_wait() {
    let t = tempfile::tempdir().unwrap();
    let cache_dir = t.path().join("cache");
    let c = cache_dir.to_str().unwrap();
    fs::create_dir_all(&cache_dir).unwrap();
    let mut holder = Command::new(std::env::current_exe().unwrap())
        .env(HELPER, "hold")
        .args([c, "1500"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it holds the index.
    let mut line = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "holding");
    let impatient = Cache::open_with(
        &cache_dir,
        CacheOptions {
            index_wait: Duration::from_millis(100),
            ..CacheOptions::default()
        },
    )
    .unwrap();
    match impatient.history("x:do_y") {
        Err(e @ Error::IndexLocked { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(&format!("pid {}", holder.id())), "{msg}");
        }
        other => panic!("expected IndexLocked, got {other:?}"),
    }
    // A patient reader just waits.
    let patient = Cache::open(&cache_dir).unwrap();
    let start = Instant::now();
    assert!(patient.history("x:do_y").unwrap().is_empty());
    assert!(start.elapsed() > Duration::from_millis(500));
    assert!(holder.wait().unwrap().success());
}

fn need(tool: &str) {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "`{tool}` is required by this test (util-linux; `scripts/install-deps --test` installs it)"
    );
}

fn in_userns(script: &str) -> String {
    let out = Command::new("unshare")
        .args(["-Urm", "sh", "-euc", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "unshare -Urm failed (unprivileged user namespaces and overlayfs in them are required): {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        script
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn overlay_round_trip() {
    need("unshare");
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    let base = r.join("base");
    fs::create_dir_all(base.join("d/inner")).unwrap();
    fs::write(base.join("a"), b"a").unwrap();
    fs::write(base.join("keep"), b"k1").unwrap();
    fs::write(base.join("d/x"), b"x").unwrap();
    fs::write(base.join("d/inner/y"), b"y").unwrap();
    for d in ["up", "work", "m", "w2", "m2"] {
        fs::create_dir_all(r.join(d)).unwrap();
    }
    let p = |s: &str| r.join(s).display().to_string();
    let list = "find . -mindepth 1 | LC_ALL=C sort | while read f; do if [ -f \"$f\" ]; then echo \"$f=$(cat \"$f\")\"; else echo \"$f\"; fi; done";
    // A real overlayfs makes the upperdir: a deletion, a replaced directory
    // (opaque), a modified file, a new symlink.
    let expected = in_userns(&format!(
        "mount -t overlay overlay -o lowerdir={base},upperdir={up},workdir={work},userxattr {m}
         cd {m}
         rm a
         rm -r d
         mkdir d
         echo new > d/z
         echo k2 > keep
         ln -s /nowhere link
         {list}",
        base = base.display(),
        up = p("up"),
        work = p("work"),
        m = p("m"),
    ));
    assert!(
        expected.contains("./d/z=new") && !expected.contains("./a"),
        "{expected}"
    );

    let cache = Cache::open(&r.join("cache")).unwrap();
    let upper = cache.capture(&r.join("up")).unwrap();
    assert_eq!(
        upper.tree.get("a").unwrap().kind,
        EntryKind::Whiteout,
        "{:?}",
        upper.tree
    );
    assert!(
        matches!(
            upper.tree.get("d").unwrap().kind,
            EntryKind::Dir { opaque: true, .. }
        ),
        "{:?}",
        upper.tree
    );
    let lower = cache.capture(&base).unwrap();
    let l_up = cache.ensure_layer(&upper.digest).unwrap();
    let l_base = cache.ensure_layer(&lower.digest).unwrap();
    // Stack the two materialised layers read-only (two lowerdirs).
    let got = in_userns(&format!(
        "mount -t overlay overlay -o lowerdir={}:{},userxattr {m2}
         cd {m2}
         {list}",
        l_up.display(),
        l_base.display(),
        m2 = p("m2"),
    ));
    assert_eq!(got, expected);

    // And flattened onto a plain directory, the same view.
    let flat = r.join("flat");
    cache.apply(&[lower.digest, upper.digest], &flat).unwrap();
    let out = Command::new("sh")
        .current_dir(&flat)
        .args(["-c", list])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
}
