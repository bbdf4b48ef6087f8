//! verify repairs, gc evicts least-recently-used entries without breaking
//! kept ones, stats counts builds, explain finds the closest earlier entry.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use bitzel_cache::{
    diff, now_unix_ms, Action, ActionKey, ActionResult, Cache, CacheOptions, Difference,
    Durability, GcOptions, Lookup,
};

fn opts() -> CacheOptions {
    CacheOptions {
        durability: Durability::Process,
        ..CacheOptions::default()
    }
}

/// Store an entry whose output is one file of `size` bytes derived from `seed`.
fn entry(
    cache: &Cache,
    scratch: &Path,
    label: &str,
    seed: u32,
    size: usize,
) -> (ActionKey, ActionResult) {
    let dir = scratch.join(format!("out-{label}-{seed}"));
    fs::create_dir_all(&dir).unwrap();
    let data: Vec<u8> = (0..size)
        .map(|i| (i as u32 ^ seed.wrapping_mul(2654435761)) as u8)
        .collect();
    fs::write(dir.join("data"), &data).unwrap();
    fs::write(dir.join("shared"), b"same in every entry").unwrap();
    let cap = cache.capture(&dir).unwrap();
    let a = Action {
        label: label.into(),
        script: format!("build {seed}\n"),
        vars: BTreeMap::from([("SEED".into(), seed.to_string())]),
        ..Action::default()
    };
    let r = ActionResult {
        label: label.into(),
        output: cap.digest,
        extra_outputs: BTreeMap::new(),
        exit_code: 0,
        stdout: Some(cache.put_blob(format!("log {seed}").as_bytes()).unwrap()),
        stderr: None,
        duration_ms: 1,
        created_unix_ms: now_unix_ms(),
        action: a.clone(),
    };
    let key = a.key();
    cache.put(&key, &r).unwrap();
    (key, r)
}

fn set_entry_mtime(cache: &Cache, key: &ActionKey, secs_ago: i64) {
    let p = cache.local().entry_path(key);
    let t = now_unix_ms() as i64 / 1000 - secs_ago;
    let st = std::process::Command::new("touch")
        .arg("-h")
        .arg("-d")
        .arg(format!("@{t}"))
        .arg(&p)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn verify_finds_and_repairs_corruption_and_rebuilds_the_index() {
    let t = tempfile::tempdir().unwrap();
    let cache = Cache::open_with(&t.path().join("c"), opts()).unwrap();
    let (k1, r1) = entry(&cache, t.path(), "a:do_compile", 1, 1000);
    let (k2, _) = entry(&cache, t.path(), "b:do_compile", 2, 1000);
    let layer = cache.ensure_layer(&r1.output).unwrap();
    assert!(cache.verify().unwrap().is_clean());

    // Tamper with entry 1's layer. The handle holds the layers it
    // materialised (a running build may have them mounted): verify neither
    // checks nor removes them.
    fs::write(layer.join("extra"), b"x").unwrap();
    let rep = cache.verify().unwrap();
    assert_eq!(rep.layers_in_use, 1, "{rep:?}");
    assert!(rep.is_clean(), "{rep:?}");
    assert!(layer.join("extra").exists());
    // Once the build is over, they are checked.
    drop(cache);
    let cache = Cache::open_with(&t.path().join("c"), opts()).unwrap();

    // Corrupt the data blob of entry 1.
    let tree = cache.read_tree(&r1.output).unwrap();
    let data = match &tree.get("data").unwrap().kind {
        bitzel_cache::EntryKind::File { digest, .. } => *digest,
        _ => unreachable!(),
    };
    let p = cache.cas().blob_path(&data);
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&p, b"bit rot").unwrap();
    // Wipe the index entirely.
    fs::remove_dir_all(cache.root().join("index")).unwrap();

    let rep = cache.verify().unwrap();
    assert_eq!(rep.corrupt_blobs, vec![data]);
    assert_eq!(rep.broken_entries.len(), 1);
    assert_eq!(rep.broken_entries[0].0, k1);
    assert_eq!(rep.broken_layers, vec![r1.output.to_hex()]);
    assert_eq!(rep.index_entries, 1);
    assert!(matches!(cache.lookup(&k1).unwrap(), Lookup::Miss(_)));
    assert!(matches!(cache.lookup(&k2).unwrap(), Lookup::Hit(_)));
    assert_eq!(cache.history("b:do_compile").unwrap()[0].key, k2);
    assert!(cache.verify().unwrap().is_clean());
}

#[test]
fn gc_evicts_lru_and_never_breaks_kept_entries() {
    let t = tempfile::tempdir().unwrap();
    let cache = Cache::open_with(&t.path().join("c"), opts()).unwrap();
    let mut keys = Vec::new();
    for i in 0..6u32 {
        let (k, r) = entry(&cache, t.path(), &format!("r{i}:do_compile"), i, 100_000);
        cache.ensure_layer(&r.output).unwrap();
        // Entry i was last used (10 - i) minutes ago: higher i = more recent.
        set_entry_mtime(&cache, &k, i64::from(10 - i) * 60);
        keys.push(k);
    }
    // The "build" is over: a new handle holds nothing.
    drop(cache);
    let cache = Cache::open_with(&t.path().join("c"), opts()).unwrap();
    let before = cache.stats().unwrap();
    assert_eq!(before.entries, 6);
    assert_eq!(before.layers, 6);
    // Room for about three entries (≈ 100 kB each: a layer's files are
    // hard links to the blobs, no second copy).
    let rep = cache
        .gc(&GcOptions {
            max_bytes: 350_000,
            grace: Duration::ZERO,
        })
        .unwrap();
    assert_eq!(rep.entries_kept, 3, "{rep:?}");
    assert_eq!(rep.entries_evicted, 3);
    assert!(rep.bytes_after <= 350_000, "{rep:?}");
    assert!(
        rep.blobs_removed >= 6,
        "data + log blobs of evicted entries: {rep:?}"
    );
    assert_eq!(rep.layers_removed, 3);
    for (i, k) in keys.iter().enumerate() {
        let hit = matches!(cache.lookup(k).unwrap(), Lookup::Hit(_));
        assert_eq!(hit, i >= 3, "entry {i}");
    }
    // Every kept entry is whole: verify finds nothing to repair.
    assert!(cache.verify().unwrap().is_clean());
    // The shared blob survived (kept entries reference it).
    assert_eq!(cache.stats().unwrap().entries, 3);

    // A size of zero evicts everything, leaving an empty but valid cache
    // (once nothing holds the entries the lookups above restored).
    drop(cache);
    let cache = Cache::open_with(&t.path().join("c"), opts()).unwrap();
    let rep = cache
        .gc(&GcOptions {
            max_bytes: 0,
            grace: Duration::ZERO,
        })
        .unwrap();
    assert_eq!(rep.entries_kept, 0);
    let s = cache.stats().unwrap();
    assert_eq!((s.entries, s.blobs, s.layers), (0, 0, 0));
}

#[test]
fn gc_grace_keeps_fresh_unreferenced_blobs() {
    let t = tempfile::tempdir().unwrap();
    let cache = Cache::open_with(&t.path().join("c"), opts()).unwrap();
    // A blob stored by a build that has not written its entry yet.
    let d = cache.put_blob(b"in flight").unwrap();
    cache.gc(&GcOptions::max_size(0)).unwrap();
    assert!(cache.cas().contains(&d));
}

#[test]
fn stats_count_builds_and_explain_finds_the_closest_entry() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("c");
    let scratch = t.path();
    {
        let cache = Cache::open_with(&dir, opts()).unwrap();
        let (k, _) = entry(&cache, scratch, "busybox:do_compile", 1, 10);
        entry(&cache, scratch, "busybox:do_compile", 2, 10);
        assert!(matches!(cache.lookup(&k).unwrap(), Lookup::Hit(_)));
        assert!(matches!(
            cache
                .lookup(&ActionKey(bitzel_cache::Digest::of_bytes(b"nope")))
                .unwrap(),
            Lookup::Miss(_)
        ));
        cache.close();
    }
    let cache = Cache::open_with(&dir, opts()).unwrap();
    let s = cache.stats().unwrap();
    assert_eq!(s.builds.len(), 1, "{s:?}");
    assert_eq!((s.builds[0].hits, s.builds[0].misses), (1, 1));
    assert_eq!(cache.history("busybox:do_compile").unwrap().len(), 2);

    // A new action differing from seed 2 only in one variable.
    let mut a = cache
        .local()
        .read_action(&cache.history("busybox:do_compile").unwrap()[0].key)
        .unwrap()
        .unwrap()
        .action;
    a.vars.insert("SEED".into(), "2".into());
    a.env.insert("CFLAGS".into(), "-O3".into());
    let (_, closest) = cache.closest_earlier(&a).unwrap().unwrap();
    let d = diff(&closest.action, &a);
    assert_eq!(
        d,
        vec![Difference::Env {
            name: "CFLAGS".into(),
            old: None,
            new: Some("-O3".into())
        }]
    );
    let _ = Duration::ZERO;
}

#[test]
fn a_corrupt_index_is_rebuilt_from_the_entries() {
    let t = tempfile::tempdir().unwrap();
    let cache = Cache::open_with(&t.path().join("c"), opts()).unwrap();
    let (k, _) = entry(&cache, t.path(), "z:do_fetch", 7, 10);
    assert_eq!(cache.history("z:do_fetch").unwrap()[0].key, k);
    // Overwrite every file of the sled database with garbage.
    let db = cache.root().join("index/db");
    for f in walk_files(&db) {
        fs::write(&f, b"\xffgarbage, not a sled page\x00\x01").unwrap();
    }
    let h = cache.history("z:do_fetch").unwrap();
    assert_eq!(h.len(), 1, "history rebuilt from ac/ entries");
    assert_eq!(h[0].key, k);
    assert!(matches!(cache.lookup(&k).unwrap(), Lookup::Hit(_)));
}

fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn forget_removes_the_matching_entries_and_only_their_own_blobs_and_layers() {
    let t = tempfile::tempdir().unwrap();
    let cache = Cache::open_with(&t.path().join("c"), opts()).unwrap();
    let (ka1, ra1) = entry(&cache, t.path(), "a:do_compile", 1, 3000);
    let (ka2, ra2) = entry(&cache, t.path(), "a:do_install", 2, 3000);
    let (kb, rb) = entry(&cache, t.path(), "ab:do_compile", 3, 3000);
    let layer = cache.ensure_layer(&ra1.output).unwrap();
    let kept_layer = cache.ensure_layer(&rb.output).unwrap();
    let own_blobs = |r: &ActionResult| -> Vec<bitzel_cache::Digest> {
        let tree = cache.read_tree(&r.output).unwrap();
        let shared = bitzel_cache::Digest::of_bytes(b"same in every entry");
        tree.blobs().into_iter().filter(|b| *b != shared).collect()
    };
    let a_blobs: Vec<_> = own_blobs(&ra1).into_iter().chain(own_blobs(&ra2)).collect();
    drop(cache);

    // A fresh handle, as `bitzel build -c cleansstate` would open.
    let cache = Cache::open_with(&t.path().join("c"), opts()).unwrap();
    let r = cache.forget(|l| l.starts_with("a:")).unwrap();
    assert_eq!(
        r.entries,
        vec![
            ("a:do_compile".to_string(), ka1),
            ("a:do_install".to_string(), ka2)
        ]
    );
    assert!(r.entry_bytes > 0);
    // Each entry: its data file, its manifest, its log; `shared` stays (ab uses it).
    assert_eq!(r.blobs_removed, 6, "{r:?}");
    assert!(r.blob_bytes >= 6000, "{r:?}");
    assert_eq!(r.layers_removed, 1);
    assert!(r.layer_bytes >= 3000);
    assert_eq!(
        r.total_bytes(),
        r.entry_bytes + r.blob_bytes + r.layer_bytes
    );
    assert!(!layer.exists());
    assert!(kept_layer.exists());
    for b in &a_blobs {
        assert!(
            !cache.cas().contains(b),
            "{b} of a forgotten entry is still there"
        );
    }
    assert!(matches!(cache.lookup(&ka1).unwrap(), Lookup::Miss(_)));
    assert!(matches!(cache.lookup(&ka2).unwrap(), Lookup::Miss(_)));
    assert!(matches!(cache.lookup(&kb).unwrap(), Lookup::Hit(_)));
    assert!(cache.history("a:do_compile").unwrap().is_empty());
    assert_eq!(cache.history("ab:do_compile").unwrap().len(), 1);

    // Nothing left to forget: an empty report.
    let again = cache.forget(|l| l.starts_with("a:")).unwrap();
    assert_eq!(again, bitzel_cache::ForgetReport::default());
}

#[test]
fn put_local_replaces_the_local_entry_and_leaves_further_levels_alone() {
    let t = tempfile::tempdir().unwrap();
    let remote = std::sync::Arc::new(
        bitzel_cache::LocalStore::open(&t.path().join("remote"), Durability::Process).unwrap(),
    );
    let cache = Cache::open_with(&t.path().join("c"), opts())
        .unwrap()
        .with_levels(vec![
            remote.clone() as std::sync::Arc<dyn bitzel_cache::Storage>
        ]);
    let (key, first) = entry(&cache, t.path(), "a:do_compile", 1, 100);
    use bitzel_cache::Storage as _;
    assert_eq!(remote.get_action(&key).unwrap().unwrap(), first);

    let mut forced = first.clone();
    forced.created_unix_ms = first.created_unix_ms + 1000;
    forced.duration_ms = 77;
    cache.put_local(&key, &forced).unwrap();
    assert_eq!(cache.local().read_action(&key).unwrap().unwrap(), forced);
    assert_eq!(remote.get_action(&key).unwrap().unwrap(), first);
}

#[test]
fn layers_share_their_blobs_inodes_and_survive_verify_and_gc() {
    use std::os::unix::fs::MetadataExt;
    let t = tempfile::tempdir().unwrap();
    let cache = Cache::open_with(&t.path().join("c"), opts()).unwrap();
    let (_, r) = entry(&cache, t.path(), "a:do_install", 1, 100_000);
    let (_, r2) = entry(&cache, t.path(), "b:do_install", 2, 50_000);
    let before = cache.stats().unwrap();
    assert_eq!(before.disk_bytes, before.total_bytes(), "{before:?}");
    let layer = cache.ensure_layer(&r.output).unwrap();
    cache.ensure_layer(&r2.output).unwrap();
    let s = cache.stats().unwrap();
    // The layers' files are hard links to the blobs: logical size grows,
    // on-disk size does not.
    assert!(s.layer_bytes >= 150_000, "{s:?}");
    assert_eq!(s.disk_bytes, before.disk_bytes, "{s:?}");
    assert_eq!(s.dedup_saved(), s.layer_bytes);
    assert!(s.disk_per_blob() <= 1.1, "{s:?}");
    let data = layer.join("data");
    let md = fs::metadata(&data).unwrap();
    assert_eq!(md.nlink(), 2, "linked, not copied");
    // The file is the blob, with the tree's mode.
    let (digest, mode) = cache
        .read_tree(&r.output)
        .unwrap()
        .entries()
        .iter()
        .find_map(|e| match &e.kind {
            bitzel_cache::EntryKind::File { digest, mode, .. } if e.path == "data" => {
                Some((*digest, *mode))
            }
            _ => None,
        })
        .unwrap();
    let blob = cache.cas().blob_path(&digest);
    assert_eq!(md.ino(), fs::metadata(&blob).unwrap().ino());
    assert_eq!(md.mode() & 0o7777, mode & 0o777);

    // verify and gc (grace zero: only what entries reference stays) keep it
    // all usable, and a second materialisation after removing the layers
    // links again.
    let v = cache.verify().unwrap();
    assert!(v.is_clean(), "{v:?}");
    cache.gc(&GcOptions::max_size(u64::MAX)).unwrap();
    let g = cache
        .gc(&GcOptions {
            max_bytes: u64::MAX,
            grace: Duration::ZERO,
        })
        .unwrap();
    assert_eq!(g.entries_evicted, 0, "{g:?}");
    assert_eq!(fs::read(&data).unwrap().len(), 100_000);
    let out = t.path().join("restored");
    cache.apply(&[r.output], &out).unwrap();
    assert_eq!(fs::read(out.join("data")).unwrap().len(), 100_000);
    assert_eq!(
        fs::metadata(out.join("data")).unwrap().nlink(),
        1,
        "publishing copies"
    );

    // A corrupted blob is found by verify; the layer sharing it is
    // found broken and removed; the next build makes it again.
    let mut perm = fs::metadata(&blob).unwrap().permissions();
    perm.set_mode(0o644);
    fs::set_permissions(&blob, perm).unwrap();
    fs::write(&blob, vec![0u8; 100_000]).unwrap();
    drop(cache); // the build is over: its layers are no longer held
    let cache = Cache::open_with(&t.path().join("c"), opts()).unwrap();
    let v = cache.verify().unwrap();
    assert_eq!(v.corrupt_blobs, vec![digest], "{v:?}");
    assert_eq!(v.broken_layers, vec![r.output.to_hex()], "{v:?}");
    assert!(!cache.layer_ready(&r.output));
}
