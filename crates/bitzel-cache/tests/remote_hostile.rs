//! A hostile remote cache: a scripted in-process server (`MiniDav`) serves
//! entries whose output tree holds a symlink parent (`a -> <dir outside>`
//! then `a/x`), a `..` path, an absolute path, and all of them with a
//! setuid file. Each lookup through the stacked cache must be a miss (so the
//! task runs), write nothing outside the cache directory, materialise no
//! setuid/setgid file, and warn naming the entry (key, label, tree) and the
//! server. A valid tree with setuid files is a hit whose layer and deploy
//! copy carry no setuid/setgid bit. Needs no nginx.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod hostile_trees;
mod remote_common;

use std::os::unix::fs::MetadataExt;

use bitzel_cache::remote::{BlobRef, RemoteCache, RemoteEntry};
use bitzel_cache::store::encode_result;
use bitzel_cache::{ActionKey, ActionResult, Cache, Digest, Lookup, MissReason};
use remote_common::{stacked, test_config, warnings, warnings_about, MiniDav};

/// Upload `r` and every blob it references (read from `cache`, the tree
/// manifest given as `manifest`) to the server, the way a hostile or broken
/// client could: straight through the protocol, no validation.
fn serve(
    remote: &RemoteCache,
    cache: &Cache,
    key: &ActionKey,
    r: &ActionResult,
    manifest: &[u8],
    files: &[Digest],
) {
    let mut blobs = vec![BlobRef::of_bytes(manifest)];
    assert!(remote.put_blob(&r.output, manifest).unwrap());
    for d in files.iter().chain(r.stdout.iter()) {
        let bytes = cache.read_blob(d).unwrap();
        assert!(remote.put_blob(d, &bytes).unwrap());
        blobs.push(BlobRef::of_bytes(&bytes));
    }
    let log = r
        .stdout
        .map(|d| BlobRef::of_bytes(&cache.read_blob(&d).unwrap()));
    let e = RemoteEntry {
        result: encode_result(r),
        exit_code: 0,
        stdout: log,
        stderr: None,
        blobs,
        started_unix_ms: Some(1),
        completed_unix_ms: Some(2),
    };
    assert!(remote.put_entry(key, &e).unwrap());
}

fn file_digests(entries: &[bitzel_cache::TreeEntry]) -> Vec<Digest> {
    entries
        .iter()
        .filter_map(|e| match e.kind {
            bitzel_cache::EntryKind::File { digest, .. } => Some(digest),
            _ => None,
        })
        .collect()
}

#[test]
fn hostile_trees_from_a_remote_are_misses_with_a_warning_and_write_nothing() {
    warnings();
    let server = MiniDav::start();
    let outside = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    // The attacker's side: blobs made in a scratch cache, uploaded raw.
    let scratch = Cache::open(&work.path().join("scratch")).unwrap();
    let uploader = RemoteCache::new(test_config(&server.url), None).unwrap();
    let cases = hostile_trees::hostile_trees(&scratch, outside.path());
    let mut served = Vec::new();
    for (name, entries) in &cases {
        let manifest = hostile_trees::manifest(entries);
        let tree = Digest::of_bytes(&manifest);
        let (key, r) = hostile_trees::result_with_output(&scratch, name, tree);
        serve(
            &uploader,
            &scratch,
            &key,
            &r,
            &manifest,
            &file_digests(entries),
        );
        served.push((*name, key, tree));
    }

    // The victim: an empty local cache with the remote behind it.
    let dir = work.path().join("victim");
    let (cache, remote) = stacked(&dir, test_config(&server.url));
    for (name, key, tree) in &served {
        assert_eq!(
            cache.lookup(key).unwrap(),
            Lookup::Miss(MissReason::NotFound),
            "{name}: the task must run"
        );
        let w = warnings_about(&key.to_hex());
        assert_eq!(w.len(), 1, "{name}: one warning naming the entry: {w:#?}");
        for needle in [server.url.as_str(), name, &tree.to_hex(), "rejected"] {
            assert!(
                w[0].contains(needle),
                "{name}: warning lacks {needle:?}: {}",
                w[0]
            );
        }
        assert!(
            cache.local().read_action(key).unwrap().is_none(),
            "{name}: not written back"
        );
        // Even asked directly, the cache refuses to materialise the tree.
        assert!(cache.ensure_layer(tree).is_err(), "{name}");
        assert!(
            cache.apply(&[*tree], &dir.join("deploy")).is_err(),
            "{name}"
        );
        hostile_trees::assert_empty(outside.path());
    }
    assert_eq!(remote.stats().rejected, served.len() as u64);
    assert_eq!(remote.stats().hits, 0);
    hostile_trees::assert_no_setid(&dir);
    hostile_trees::assert_empty(outside.path());
}

#[test]
fn a_valid_remote_tree_with_setuid_files_is_restored_without_the_bits() {
    warnings();
    let server = MiniDav::start();
    let work = tempfile::tempdir().unwrap();
    let scratch = Cache::open(&work.path().join("scratch")).unwrap();
    let uploader = RemoteCache::new(test_config(&server.url), None).unwrap();
    let tree = hostile_trees::setuid_tree(&scratch);
    let manifest = tree.encode();
    let (key, r) = hostile_trees::result_with_output(&scratch, "suid:do_install", tree.digest());
    serve(&uploader, &scratch, &key, &r, &manifest, &tree.blobs());

    let dir = work.path().join("victim");
    let (cache, remote) = stacked(&dir, test_config(&server.url));
    let Lookup::Hit(hit) = cache.lookup(&key).unwrap() else {
        panic!("a valid tree with setuid files is a hit");
    };
    assert_eq!(remote.stats().hits, 1);
    assert_eq!(
        cache.read_tree(&hit.output).unwrap(),
        tree,
        "bits kept as metadata"
    );
    let layer = cache.ensure_layer(&hit.output).unwrap();
    let deploy = work.path().join("deploy");
    cache.apply(&[hit.output], &deploy).unwrap();
    for root in [&layer, &deploy] {
        let su = std::fs::metadata(root.join("bin/su")).unwrap().mode();
        assert_eq!(su & 0o7777, 0o755, "{}", root.display());
    }
    hostile_trees::assert_no_setid(&dir);
    hostile_trees::assert_no_setid(&deploy);
}
