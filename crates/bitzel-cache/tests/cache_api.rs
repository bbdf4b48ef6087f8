//! The action cache through the `Cache` handle: put/lookup, missing and
//! corrupt blobs turn hits into misses, corrupt entries are misses, layers
//! and flattening round-trip whiteouts and opaque directories, the storage
//! stack writes remote hits back, the read-only wrapper writes nothing,
//! hostile trees in the local cache are misses that write nothing, layers
//! never carry setuid/setgid bits and can be given an owner.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod hostile_trees;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use bitzel_cache::{
    now_unix_ms, Action, ActionResult, Cache, CacheOptions, Digest, Durability, EntryKind,
    LocalStore, Lookup, MissReason, ReadOnly, Storage,
};

fn opts() -> CacheOptions {
    CacheOptions {
        durability: Durability::Process,
        ..CacheOptions::default()
    }
}

fn action(label: &str, script: &str) -> Action {
    Action {
        label: label.into(),
        script: script.into(),
        env: BTreeMap::from([("LC_ALL".into(), "C".into())]),
        ..Action::default()
    }
}

fn write_tree(root: &Path) {
    fs::create_dir_all(root.join("usr/bin")).unwrap();
    fs::write(root.join("usr/bin/tool"), b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(root.join("usr/bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(root.join("usr/readme"), b"readme").unwrap();
    std::os::unix::fs::symlink("../../etc/outside", root.join("usr/bin/link")).unwrap();
}

fn result_for(cache: &Cache, a: &Action, out_dir: &Path) -> ActionResult {
    let cap = cache.capture(out_dir).unwrap();
    let log = cache.put_blob(b"compiling\n").unwrap();
    ActionResult {
        label: a.label.clone(),
        output: cap.digest,
        extra_outputs: BTreeMap::new(),
        exit_code: 0,
        stdout: Some(log),
        stderr: None,
        duration_ms: 12,
        created_unix_ms: now_unix_ms(),
        action: a.clone(),
    }
}

#[test]
fn put_then_lookup_hits_and_missing_blob_is_a_miss_then_repaired() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    write_tree(&out);
    let cache = Cache::open_with(&t.path().join("cache"), opts()).unwrap();
    let a = action("busybox:do_compile", "make\n");
    let key = a.key();
    assert_eq!(
        cache.lookup(&key).unwrap(),
        Lookup::Miss(MissReason::NotFound)
    );
    let r = result_for(&cache, &a, &out);
    cache.put(&key, &r).unwrap();
    match cache.lookup(&key).unwrap() {
        Lookup::Hit(h) => assert_eq!(*h, r),
        other => panic!("expected a hit, got {other:?}"),
    }

    // Delete one file blob: the hit becomes a miss naming it, and the entry is dropped.
    let tree = cache.read_tree(&r.output).unwrap();
    let victim = tree.blobs()[0];
    fs::remove_file(cache.cas().blob_path(&victim)).unwrap();
    assert_eq!(
        cache.lookup(&key).unwrap(),
        Lookup::Miss(MissReason::Incomplete { missing: victim })
    );
    assert_eq!(
        cache.lookup(&key).unwrap(),
        Lookup::Miss(MissReason::NotFound)
    );

    // Re-running (capture + put again) repairs it.
    let r2 = result_for(&cache, &a, &out);
    assert_eq!(r2.output, r.output, "same content, same tree digest");
    cache.put(&key, &r2).unwrap();
    assert!(matches!(cache.lookup(&key).unwrap(), Lookup::Hit(_)));
    assert_eq!(cache.counts(), (2, 3));
}

#[test]
fn corrupt_manifest_or_entry_is_a_miss() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    write_tree(&out);
    let cache = Cache::open_with(&t.path().join("cache"), opts()).unwrap();
    let a = action("x:do_install", "install\n");
    let key = a.key();
    let r = result_for(&cache, &a, &out);
    cache.put(&key, &r).unwrap();
    // Flip a byte of the tree manifest blob.
    let p = cache.cas().blob_path(&r.output);
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = fs::read(&p).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&p, bytes).unwrap();
    assert_eq!(
        cache.lookup(&key).unwrap(),
        Lookup::Miss(MissReason::Incomplete { missing: r.output })
    );
    assert!(!p.exists(), "corrupt manifest removed");

    // A torn entry file is a miss too.
    let r = result_for(&cache, &a, &out);
    cache.put(&key, &r).unwrap();
    let ep = cache.local().entry_path(&key);
    let bytes = fs::read(&ep).unwrap();
    fs::write(&ep, &bytes[..bytes.len() / 2]).unwrap();
    assert_eq!(
        cache.lookup(&key).unwrap(),
        Lookup::Miss(MissReason::NotFound)
    );
}

#[test]
fn put_refuses_entries_whose_blobs_are_absent() {
    let t = tempfile::tempdir().unwrap();
    let cache = Cache::open_with(&t.path().join("cache"), opts()).unwrap();
    let a = action("x:do_compile", "");
    let r = ActionResult {
        label: a.label.clone(),
        output: Digest::of_bytes(b"no such tree"),
        extra_outputs: BTreeMap::new(),
        exit_code: 0,
        stdout: None,
        stderr: None,
        duration_ms: 0,
        created_unix_ms: 0,
        action: a.clone(),
    };
    assert!(cache.put(&a.key(), &r).is_err());
    assert!(!cache.local().entry_path(&a.key()).exists());
}

#[test]
fn layer_round_trips_files_symlinks_whiteouts_and_opaque_dirs() {
    let t = tempfile::tempdir().unwrap();
    let up = t.path().join("upper");
    write_tree(&up);
    // An upperdir as overlayfs leaves it: whiteout device + opaque dir.
    fs::create_dir_all(up.join("etc/opaque")).unwrap();
    fs::write(up.join("etc/opaque/new"), b"n").unwrap();
    xattr_set(&up.join("etc/opaque"), "user.overlay.opaque", b"y");
    mknod_whiteout(&up.join("etc/deleted"));
    // An xattr whiteout (newer kernels): empty file + user.overlay.whiteout.
    fs::write(up.join("etc/xdeleted"), b"").unwrap();
    xattr_set(&up.join("etc/xdeleted"), "user.overlay.whiteout", b"");

    let cache = Cache::open_with(&t.path().join("cache"), opts()).unwrap();
    let cap = cache.capture(&up).unwrap();
    assert_eq!(cap.stats.whiteouts, 2);
    assert_eq!(cap.stats.opaque_dirs, 1);
    assert_eq!(
        cap.tree.get("etc/xdeleted").unwrap().kind,
        EntryKind::Whiteout
    );

    let layer = cache.ensure_layer(&cap.digest).unwrap();
    assert_eq!(layer, cache.layer_path(&cap.digest));
    assert_eq!(
        cache.ensure_layer(&cap.digest).unwrap(),
        layer,
        "idempotent"
    );
    let md = fs::symlink_metadata(layer.join("etc/deleted")).unwrap();
    assert!(md.file_type().is_char_device() && md.rdev() == 0);
    let md = fs::symlink_metadata(layer.join("etc/xdeleted")).unwrap();
    assert!(
        md.file_type().is_char_device(),
        "xattr whiteouts become device whiteouts"
    );
    assert_eq!(
        xattr_get(&layer.join("etc/opaque"), "user.overlay.opaque"),
        Some(b"y".to_vec())
    );
    assert_eq!(
        fs::read_link(layer.join("usr/bin/link")).unwrap().to_str(),
        Some("../../etc/outside")
    );
    let tool = fs::metadata(layer.join("usr/bin/tool")).unwrap();
    assert_eq!(tool.permissions().mode() & 0o777, 0o755);
    // Layers get a materialisation stamp: now, so restored objects are newer
    // than host headers (see layer.rs).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (now - tool.mtime()).abs() < 600,
        "mtime {} vs now {now}",
        tool.mtime()
    );
    // Capturing the layer gives back the same tree.
    let again = bitzel_cache::tree::capture(&layer, None).unwrap().0;
    let mut want = cap.tree.clone();
    // Dir modes may gain owner rwx; compare without dir modes.
    let strip = |t: &bitzel_cache::Tree| -> Vec<(String, String)> {
        t.entries()
            .iter()
            .map(|e| {
                let k = match &e.kind {
                    EntryKind::Dir { opaque, .. } => format!("dir opaque={opaque}"),
                    k => format!("{k:?}"),
                };
                (e.path.clone(), k)
            })
            .collect()
    };
    assert_eq!(strip(&again), strip(&want));
    want = again;
    let _ = want;
}

#[test]
fn apply_flattens_a_stack_deletions_delete_opaque_hides() {
    let t = tempfile::tempdir().unwrap();
    let cache = Cache::open_with(&t.path().join("cache"), opts()).unwrap();
    let lower = t.path().join("lower");
    fs::create_dir_all(lower.join("d/sub")).unwrap();
    fs::write(lower.join("d/sub/old"), b"old").unwrap();
    fs::write(lower.join("keep"), b"keep").unwrap();
    fs::write(lower.join("gone"), b"gone").unwrap();
    fs::write(lower.join("replaced"), b"v1").unwrap();
    let upper = t.path().join("upper");
    fs::create_dir_all(upper.join("d")).unwrap();
    fs::write(upper.join("d/new"), b"new").unwrap();
    xattr_set(&upper.join("d"), "user.overlay.opaque", b"y");
    mknod_whiteout(&upper.join("gone"));
    fs::write(upper.join("replaced"), b"v2").unwrap();
    let a = cache.capture(&lower).unwrap().digest;
    let b = cache.capture(&upper).unwrap().digest;
    let dest = t.path().join("deploy");
    cache.apply(&[a, b], &dest).unwrap();
    let (tree, _) = bitzel_cache::tree::capture(&dest, None).unwrap();
    let listing: Vec<String> = tree
        .entries()
        .iter()
        .map(|e| match &e.kind {
            EntryKind::File { .. } => {
                format!(
                    "{} = {}",
                    e.path,
                    fs::read_to_string(dest.join(&e.path)).unwrap()
                )
            }
            _ => e.path.clone(),
        })
        .collect();
    assert_eq!(
        listing,
        ["d", "d/new = new", "keep = keep", "replaced = v2"]
    );
}

#[test]
fn stacked_levels_write_remote_hits_back_and_read_only_writes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    write_tree(&out);
    // "Remote": another local store, filled by another cache.
    let filler = Cache::open_with(&t.path().join("remote"), opts()).unwrap();
    let a = action("busybox:do_compile", "make\n");
    let key = a.key();
    let r = result_for(&filler, &a, &out);
    filler.put(&key, &r).unwrap();
    let remote: Arc<dyn Storage> = Arc::new(ReadOnly(
        LocalStore::open(filler.root(), Durability::Process).unwrap(),
    ));

    let cache = Cache::open_with(&t.path().join("local"), opts())
        .unwrap()
        .with_levels(vec![remote.clone()]);
    assert!(!cache.local().entry_path(&key).exists());
    match cache.lookup(&key).unwrap() {
        Lookup::Hit(h) => assert_eq!(*h, r),
        other => panic!("expected a remote hit, got {other:?}"),
    }
    // Written back locally, blobs included.
    assert!(cache.local().entry_path(&key).exists());
    assert!(cache.first_missing_blob(&r).unwrap().is_none());
    let layer = cache.ensure_layer(&r.output).unwrap();
    assert_eq!(fs::read(layer.join("usr/readme")).unwrap(), b"readme");

    // A new result stored through the stack does not reach the read-only level.
    let b = action("busybox:do_install", "install\n");
    let rb = result_for(&cache, &b, &out);
    cache.put(&b.key(), &rb).unwrap();
    assert!(remote.get_action(&b.key()).unwrap().is_none());
    assert!(cache.lookup(&b.key()).is_ok());
}

fn xattr_set(p: &Path, name: &str, v: &[u8]) {
    let out = std::process::Command::new("setfattr")
        .arg("-n")
        .arg(name)
        .arg("-v")
        .arg(String::from_utf8_lossy(v).as_ref())
        .arg(p)
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        _ => {
            // Fallback without the attr package: use the library helper via a layer write.
            let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
            let n = std::ffi::CString::new(name).unwrap();
            // SAFETY: valid strings and buffer.
            let rc =
                unsafe { libc_setxattr(c.as_ptr(), n.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
            assert_eq!(rc, 0, "setxattr {name} on {}", p.display());
        }
    }
}

fn xattr_get(p: &Path, name: &str) -> Option<Vec<u8>> {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = [0u8; 64];
    // SAFETY: valid strings and buffer.
    let rc = unsafe { libc_getxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (rc >= 0).then(|| buf[..rc as usize].to_vec())
}

fn mknod_whiteout(p: &Path) {
    let st = std::process::Command::new("mknod")
        .arg(p)
        .args(["c", "0", "0"])
        .status()
        .expect("mknod(1) from coreutils");
    assert!(st.success(), "mknod {} c 0 0 failed", p.display());
}

extern "C" {
    #[link_name = "lsetxattr"]
    fn libc_setxattr(
        path: *const std::ffi::c_char,
        name: *const std::ffi::c_char,
        value: *const std::ffi::c_void,
        size: usize,
        flags: i32,
    ) -> i32;
    #[link_name = "lgetxattr"]
    fn libc_getxattr(
        path: *const std::ffi::c_char,
        name: *const std::ffi::c_char,
        value: *mut std::ffi::c_void,
        size: usize,
    ) -> isize;
}

#[test]
fn extra_output_subtrees_are_checked_by_lookup_and_kept_by_gc() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    write_tree(&out);
    let cache = Cache::open_with(&t.path().join("cache"), opts()).unwrap();
    let a = action("zlib:do_populate_sysroot", "install\n");
    let key = a.key();
    let mut r = result_for(&cache, &a, &out);
    let sub = cache.read_tree(&r.output).unwrap().subtree("usr/bin");
    assert_eq!(sub.entries().len(), 2, "{sub:?}");
    let sub_d = cache.put_tree(&sub).unwrap();
    r.extra_outputs.insert("sysroot".into(), sub_d);
    cache.put(&key, &r).unwrap();
    let layer = cache.ensure_layer(&sub_d).unwrap();
    assert!(layer.join("tool").is_file());
    cache
        .gc(&bitzel_cache::GcOptions {
            max_bytes: u64::MAX,
            grace: std::time::Duration::ZERO,
        })
        .unwrap();
    assert!(
        cache.cas().contains(&sub_d),
        "gc keeps a kept entry's extra trees"
    );
    assert!(cache.layer_path(&sub_d).is_dir(), "and their layers");
    assert!(matches!(cache.lookup(&key).unwrap(), Lookup::Hit(_)));
    // Losing the subtree manifest makes the entry incomplete.
    fs::remove_file(cache.cas().blob_path(&sub_d)).unwrap();
    assert_eq!(
        cache.lookup(&key).unwrap(),
        Lookup::Miss(MissReason::Incomplete { missing: sub_d })
    );
}

/// A layer is trusted only once its stamp (beside it, written last) exists:
/// a directory left without one (a crash between creation and stamp) is
/// made again by `ensure_layer` and removed by `verify`.
#[test]
fn a_layer_without_its_stamp_is_absent() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    write_tree(&src);
    let dir = t.path().join("c");
    for durability in [Durability::Full, Durability::Process] {
        let cache = Cache::open_with(
            &dir,
            CacheOptions {
                durability,
                ..CacheOptions::default()
            },
        )
        .unwrap();
        let d = cache.capture(&src).unwrap().digest;
        let layer = cache.ensure_layer(&d).unwrap();
        let stamp = cache.layer_stamp_path(&d);
        assert!(cache.layer_ready(&d));
        assert_eq!(
            stamp.parent(),
            layer.parent(),
            "the stamp is beside the layer"
        );
        let names: Vec<_> = fs::read_dir(&layer)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(!names.iter().any(|n| n.contains("stamp")), "{names:?}");

        // Cut short: no stamp, and only part of the content.
        fs::remove_file(&stamp).unwrap();
        fs::write(layer.join("half-written"), b"?").unwrap();
        assert!(!cache.layer_ready(&d));
        drop(cache);
        let cache = Cache::open_with(&dir, opts()).unwrap();
        let again = cache.ensure_layer(&d).unwrap();
        assert_eq!(again, layer);
        assert!(cache.layer_ready(&d));
        assert!(!layer.join("half-written").exists(), "made again");
        drop(cache);

        fs::remove_file(&stamp).unwrap();
        let cache = Cache::open_with(&dir, opts()).unwrap();
        let rep = cache.verify().unwrap();
        assert_eq!(rep.unfinished_layers, 1, "{rep:?}");
        assert!(rep.is_clean(), "{rep:?}");
        assert!(!layer.exists());
    }
}

#[test]
fn hand_encoded_manifests_match_tree_encode() {
    // The hostile-tree encoder is the real encoding: a valid tree encodes
    // identically, so a hostile manifest is refused for what it holds.
    let t = tempfile::tempdir().unwrap();
    let cache = Cache::open_with(&t.path().join("cache"), opts()).unwrap();
    let tree = hostile_trees::setuid_tree(&cache);
    assert_eq!(hostile_trees::manifest(tree.entries()), tree.encode());
}

#[test]
fn hostile_local_entries_are_misses_that_write_nothing() {
    let t = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let cache = Cache::open_with(&t.path().join("cache"), opts()).unwrap();
    for (name, entries) in hostile_trees::hostile_trees(&cache, outside.path()) {
        let bytes = hostile_trees::manifest(&entries);
        assert!(bitzel_cache::Tree::decode(&bytes).is_err(), "{name}");
        let d = cache.put_blob(&bytes).unwrap();
        let (key, r) = hostile_trees::result_with_output(&cache, name, d);
        // Written behind `put`'s back, as a hostile or broken process could.
        cache.local().put_action(&key, &r).unwrap();
        assert_eq!(
            cache.lookup(&key).unwrap(),
            Lookup::Miss(MissReason::Incomplete { missing: d }),
            "{name}"
        );
        assert!(
            cache.local().read_action(&key).unwrap().is_none(),
            "{name}: entry dropped"
        );
        assert!(cache.put(&key, &r).is_err(), "{name}: put refuses it");
        assert!(cache.ensure_layer(&d).is_err(), "{name}");
        assert!(!cache.layer_path(&d).exists(), "{name}");
        assert!(
            cache.apply(&[d], &t.path().join("deploy")).is_err(),
            "{name}"
        );
        hostile_trees::assert_empty(outside.path());
    }
    hostile_trees::assert_no_setid(t.path());
}

#[test]
fn setuid_bits_stay_in_the_tree_and_never_reach_the_host() {
    let t = tempfile::tempdir().unwrap();
    let cache = Cache::open_with(&t.path().join("cache"), opts()).unwrap();
    let tree = hostile_trees::setuid_tree(&cache);
    let d = cache.put_tree(&tree).unwrap();
    assert_eq!(cache.read_tree(&d).unwrap(), tree, "modes kept as metadata");
    let layer = cache.ensure_layer(&d).unwrap();
    let deploy = t.path().join("deploy");
    cache.apply(&[d], &deploy).unwrap();
    for root in [&layer, &deploy] {
        let mode = |p: &str| fs::metadata(root.join(p)).unwrap().mode() & 0o7777;
        assert_eq!(
            (mode("bin"), mode("bin/su"), mode("bin/wall")),
            (0o755, 0o755, 0o755)
        );
    }
    hostile_trees::assert_no_setid(t.path());
    // `verify` compares layers with their manifests the way they are
    // materialised, so the stripped layer is not "broken".
    let report = cache.verify().unwrap();
    assert!(report.broken_layers.is_empty(), "{report:?}");
}

#[test]
#[ignore = "needs root: run by scripts/test.d/15-cache-root.sh"]
fn as_root_existing_layers_take_the_configured_owner() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test changes owners and must run as root (scripts/test.d/15-cache-root.sh)"
    );
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    write_tree(&out);
    let dir = t.path().join("cache");
    let d = Cache::open_with(&dir, opts())
        .unwrap()
        .capture(&out)
        .unwrap()
        .digest;
    let plain = Cache::open_with(&dir, opts())
        .unwrap()
        .ensure_layer(&d)
        .unwrap();
    assert_eq!(fs::metadata(&plain).unwrap().uid(), 0);
    let owner = (61_000, 61_001);
    let owned = Cache::open_with(
        &dir,
        CacheOptions {
            layer_owner: Some(owner),
            ..opts()
        },
    )
    .unwrap();
    let layer = owned.ensure_layer(&d).unwrap();
    assert_eq!(layer, plain);
    for e in walkdir::WalkDir::new(&layer) {
        let md = fs::symlink_metadata(e.unwrap().path()).unwrap();
        assert_eq!((md.uid(), md.gid()), owner);
    }
    // A new layer is created with the owner directly.
    let out2 = t.path().join("out2");
    fs::create_dir_all(out2.join("d")).unwrap();
    fs::write(out2.join("d/f"), b"2").unwrap();
    let d2 = owned.capture(&out2).unwrap().digest;
    for e in walkdir::WalkDir::new(owned.ensure_layer(&d2).unwrap()) {
        let md = fs::symlink_metadata(e.unwrap().path()).unwrap();
        assert_eq!((md.uid(), md.gid()), owner);
    }
}

/// A blob source over another cache's CAS (standing in for an engine),
/// which can be made unreachable and counts what it fetched.
#[derive(Debug)]
struct Engine {
    cas: bitzel_cache::Cas,
    up: std::sync::atomic::AtomicBool,
    fetched: std::sync::atomic::AtomicU64,
}

impl bitzel_cache::BlobSource for Engine {
    fn describe(&self) -> String {
        "grpc://engine.test:1".into()
    }
    fn fetch_into(&self, blobs: &[(Digest, u64)], cas: &bitzel_cache::Cas) -> Result<(), String> {
        use std::sync::atomic::Ordering;
        if !self.up.load(Ordering::SeqCst) {
            return Err("connection refused".into());
        }
        for (d, size) in blobs {
            let bytes = self.cas.read(d).map_err(|e| e.to_string())?;
            assert_eq!(cas.put_bytes(&bytes).unwrap(), *d);
            self.fetched.fetch_add(*size, Ordering::SeqCst);
        }
        Ok(())
    }
}

#[test]
fn results_recorded_without_file_blobs_are_fetched_on_demand() {
    use std::sync::atomic::Ordering;
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    write_tree(&out);
    // The "engine" ran the task: its CAS holds everything.
    let remote = Cache::open_with(&t.path().join("remote"), opts()).unwrap();
    let a = action("busybox:do_compile", "make\n");
    let key = a.key();
    let r = result_for(&remote, &a, &out);
    // Locally: the manifest and the log only (what a lazy adoption fetches).
    let dir = t.path().join("local");
    let local = || Cache::open_with(&dir, opts()).unwrap();
    let cache = local();
    for d in [r.output, r.stdout.unwrap()] {
        cache.put_blob(&remote.read_blob(&d).unwrap()).unwrap();
    }
    let tree = cache.read_tree(&r.output).unwrap();
    assert!(tree.blobs().iter().all(|b| !cache.cas().contains(b)));
    // Without a source such an entry cannot be recorded.
    assert!(cache.put_local(&key, &r).is_err());
    let engine = Arc::new(Engine {
        cas: remote.cas().clone(),
        up: true.into(),
        fetched: 0.into(),
    });
    assert!(cache.set_blob_source(engine.clone()));
    cache.put_local(&key, &r).unwrap();
    assert!(matches!(cache.lookup(&key).unwrap(), Lookup::Hit(_)));
    assert_eq!(
        engine.fetched.load(Ordering::SeqCst),
        0,
        "nothing fetched yet"
    );
    // Unreachable: materialising is one error naming the source; nothing half-made.
    engine.up.store(false, Ordering::SeqCst);
    let err = cache.ensure_layer(&r.output).unwrap_err().to_string();
    assert!(
        err.contains("grpc://engine.test:1") && err.contains("connection refused"),
        "{err}"
    );
    assert!(!cache.layer_ready(&r.output));
    // Reachable: fetched when read, exactly the file bytes.
    engine.up.store(true, Ordering::SeqCst);
    let dest = t.path().join("deploy");
    cache.apply(&[r.output], &dest).unwrap();
    assert_eq!(fs::read(dest.join("usr/readme")).unwrap(), b"readme");
    let sizes: u64 = tree
        .entries()
        .iter()
        .filter_map(|e| match e.kind {
            EntryKind::File { size, .. } => Some(size),
            _ => None,
        })
        .sum();
    assert_eq!(engine.fetched.load(Ordering::SeqCst), sizes);
    drop(cache);
    // A later handle without the source: an entry whose blobs are gone is a miss.
    let cache = local();
    let victim = tree.blobs()[0];
    fs::remove_file(cache.cas().blob_path(&victim)).unwrap();
    assert_eq!(
        cache.lookup(&key).unwrap(),
        Lookup::Miss(MissReason::Incomplete { missing: victim })
    );
}

/// A cache level over another cache's store that serves its trees' files
/// on demand (as a remote executor's engine does), counting the blobs read
/// through it.
#[derive(Debug)]
struct OnDemandLevel {
    inner: LocalStore,
    read: std::sync::Mutex<Vec<Digest>>,
}

impl Storage for OnDemandLevel {
    fn describe(&self) -> String {
        "grpc://engine.test:1".into()
    }
    fn get_action(
        &self,
        key: &bitzel_cache::ActionKey,
    ) -> bitzel_cache::Result<Option<ActionResult>> {
        self.inner.get_action(key)
    }
    fn put_action(
        &self,
        key: &bitzel_cache::ActionKey,
        r: &ActionResult,
    ) -> bitzel_cache::Result<()> {
        self.inner.put_action(key, r)
    }
    fn has_blob(&self, d: &Digest) -> bitzel_cache::Result<bool> {
        self.inner.has_blob(d)
    }
    fn fetch_blob(&self, d: &Digest, dest: &Path) -> bitzel_cache::Result<bool> {
        self.read.lock().unwrap().push(*d);
        self.inner.fetch_blob(d, dest)
    }
    fn put_blob(&self, d: &Digest, src: &Path) -> bitzel_cache::Result<()> {
        self.inner.put_blob(d, src)
    }
    fn serves_files_on_demand(&self) -> bool {
        true
    }
}

#[test]
fn a_hit_in_a_level_serving_files_on_demand_brings_no_file_until_one_is_read() {
    use std::sync::atomic::Ordering;
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    write_tree(&out);
    let remote = Cache::open_with(&t.path().join("remote"), opts()).unwrap();
    let a = action("busybox:do_compile", "make\n");
    let key = a.key();
    let r = result_for(&remote, &a, &out);
    remote.put(&key, &r).unwrap();
    let level = Arc::new(OnDemandLevel {
        inner: remote.local().clone(),
        read: Default::default(),
    });
    let cache = Cache::open_with(&t.path().join("local"), opts())
        .unwrap()
        .with_levels(vec![level.clone() as Arc<dyn Storage>]);
    let engine = Arc::new(Engine {
        cas: remote.cas().clone(),
        up: true.into(),
        fetched: 0.into(),
    });
    assert!(cache.set_blob_source(engine.clone()));
    assert!(matches!(cache.lookup(&key).unwrap(), Lookup::Hit(_)));
    let tree = cache.read_tree(&r.output).unwrap();
    let read = level.read.lock().unwrap().clone();
    assert!(
        read.contains(&r.output),
        "the tree manifest came through the level"
    );
    for b in tree.blobs() {
        assert!(!read.contains(&b), "file blob {b} was read on a hit");
        assert!(
            !cache.cas().contains(&b),
            "file blob {b} is local after a hit"
        );
    }
    assert_eq!(engine.fetched.load(Ordering::SeqCst), 0);
    // The entry is local now: a second lookup is a hit without the level.
    level.read.lock().unwrap().clear();
    assert!(matches!(cache.lookup(&key).unwrap(), Lookup::Hit(_)));
    assert!(level.read.lock().unwrap().is_empty());
    // Reading the output fetches its files from the source.
    let dest = t.path().join("deploy");
    cache.apply(&[r.output], &dest).unwrap();
    assert_eq!(fs::read(dest.join("usr/readme")).unwrap(), b"readme");
    assert!(engine.fetched.load(Ordering::SeqCst) > 0);
}
