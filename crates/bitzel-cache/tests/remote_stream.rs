//! Streamed transfers of large blobs (≥ `STREAM_UPLOAD_BYTES`): round trips
//! through a real nginx WebDAV server with both digest functions, corrupt and
//! interrupted downloads, and a local blob corrupted after it was queued.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod remote_common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bitzel_cache::remote::store::STREAM_UPLOAD_BYTES;
use bitzel_cache::remote::{DigestFunction, HttpStore, RemoteCache, RemoteError};
use bitzel_cache::{Digest, Lookup, Storage};
use remote_common::{make_result, pseudo_random, stacked, test_config, Nginx};

/// Names in `dir` (sorted).
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn large_round_trip(f: DigestFunction) {
    let nginx = Nginx::start();
    let mut config = test_config(&nginx.url);
    config.digest_function = f;
    let content = pseudo_random(3 * STREAM_UPLOAD_BYTES + 17, 1);
    let d = Digest::of_bytes(&content);

    let dir_a = tempfile::tempdir().unwrap();
    let (cache_a, remote_a) = stacked(dir_a.path(), config.clone());
    let (key, result) = make_result(
        &cache_a,
        "big",
        &[("rootfs.img", &content), ("small", b"small\n")],
    );
    cache_a.put(&key, &result).unwrap();
    remote_a.flush();
    let s = remote_a.stats();
    assert_eq!((s.uploads, s.skipped_uploads), (1, 0), "{s:?}");
    assert!(s.bytes_uploaded > content.len() as u64, "{s:?}");
    let on_server = match f {
        DigestFunction::Blake3 => d.to_hex(),
        DigestFunction::Sha256 => remote_a.remote().blob_name(&d).unwrap(),
    };
    assert_eq!(
        std::fs::read(nginx.root().join("cas").join(&on_server)).unwrap(),
        content
    );

    let dir_b = tempfile::tempdir().unwrap();
    let (cache_b, remote_b) = stacked(dir_b.path(), config);
    match cache_b.lookup(&key).unwrap() {
        Lookup::Hit(r) => assert_eq!(*r, result),
        other => panic!("expected a remote hit, got {other:?}"),
    }
    assert_eq!(cache_b.cas().read(&d).unwrap(), content);
    let s = remote_b.stats();
    assert_eq!((s.hits, s.corrupt), (1, 0), "{s:?}");
    // Nothing left behind in the CAS temp dir.
    assert!(names(cache_b.cas().tmp_dir()).is_empty());
}

#[test]
fn large_blob_round_trips_streamed_blake3() {
    large_round_trip(DigestFunction::Blake3);
}

#[test]
fn large_blob_round_trips_streamed_sha256() {
    large_round_trip(DigestFunction::Sha256);
}

/// `fetch_blob` without a local CAS streams to a temp name and renames.
#[test]
fn fetch_blob_streams_into_dest_and_leaves_nothing_else() {
    let nginx = Nginx::start();
    let content = pseudo_random(2 * STREAM_UPLOAD_BYTES, 2);
    let d = Digest::of_bytes(&content);
    std::fs::create_dir_all(nginx.root().join("cas")).unwrap();
    std::fs::write(nginx.root().join("cas").join(d.to_hex()), &content).unwrap();

    let store = HttpStore::new(test_config(&nginx.url), None, None).unwrap();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("blob");
    assert!(store.fetch_blob(&d, &dest).unwrap());
    assert_eq!(std::fs::read(&dest).unwrap(), content);
    assert_eq!(names(out.path()), ["blob"]);
    let missing = Digest::of_bytes(b"not on the server");
    assert!(!store.fetch_blob(&missing, &out.path().join("m")).unwrap());
    assert_eq!(names(out.path()), ["blob"]);
}

#[test]
fn corrupt_streamed_download_leaves_nothing_and_is_counted() {
    let nginx = Nginx::start();
    let content = pseudo_random(2 * STREAM_UPLOAD_BYTES, 3);
    let d = Digest::of_bytes(&content);
    let mut served = content.clone();
    served[STREAM_UPLOAD_BYTES as usize] ^= 0x40;
    std::fs::create_dir_all(nginx.root().join("cas")).unwrap();
    std::fs::write(nginx.root().join("cas").join(d.to_hex()), &served).unwrap();

    // Storage::fetch_blob: dest absent, no temp file.
    let store = HttpStore::new(test_config(&nginx.url), None, None).unwrap();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("blob");
    assert!(!store.fetch_blob(&d, &dest).unwrap());
    assert!(!dest.exists());
    assert!(names(out.path()).is_empty(), "{:?}", names(out.path()));
    assert_eq!(store.stats().corrupt, 1);
    assert!(store.remote().is_available());

    // RemoteCache::fetch_blob_to: same contract.
    let remote = RemoteCache::new(test_config(&nginx.url), None).unwrap();
    let path = out.path().join("direct");
    assert!(!remote
        .fetch_blob_to(&d, Some(content.len() as u64), &path)
        .unwrap());
    assert!(!path.exists());
    assert_eq!(remote.stats().corrupt, 1);
}

/// A server whose first `GET` sends half the body (with the full
/// `Content-Length`) and then drops the connection; later ones are whole.
fn interrupting_server(body: Vec<u8>) -> (String, Arc<AtomicUsize>) {
    remote_common::scripted_server(move |n, w| {
        let _ = write!(
            w,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        if n == 0 {
            let _ = w.write_all(&body[..body.len() / 2]);
            let _ = w.flush();
            let _ = w.shutdown(std::net::Shutdown::Both);
            return false;
        }
        let _ = w.write_all(&body);
        true
    })
}

#[test]
fn interrupted_download_is_retried_without_appended_garbage() {
    let content = pseudo_random(2 * STREAM_UPLOAD_BYTES + 5, 4);
    let d = Digest::of_bytes(&content);
    let (url, gets) = interrupting_server(content.clone());
    let store = HttpStore::new(test_config(&url), None, None).unwrap();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("blob");
    assert!(store.fetch_blob(&d, &dest).unwrap());
    assert_eq!(gets.load(Ordering::SeqCst), 2);
    let got = std::fs::read(&dest).unwrap();
    assert_eq!(got.len(), content.len());
    assert!(got == content);
    let s = store.stats();
    assert_eq!((s.retries, s.corrupt, s.unavailable), (1, 0, 0), "{s:?}");
    assert_eq!(names(out.path()), ["blob"]);
}

/// Overwrite the CAS file of `d` with the same length of different bytes.
fn corrupt_cas_file(path: &Path) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = std::fs::read(path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(path, &bytes).unwrap();
}

#[test]
fn local_blob_corrupted_after_queueing_is_not_uploaded_and_no_entry_is_written() {
    let nginx = Nginx::start();
    let content = pseudo_random(2 * STREAM_UPLOAD_BYTES, 5);
    let d = Digest::of_bytes(&content);
    let dir = tempfile::tempdir().unwrap();
    let (cache, remote) = stacked(dir.path(), test_config(&nginx.url));
    // Captured locally only (the stacked cache is not asked to store it).
    let (key, result) = make_result(&cache, "corrupt", &[("rootfs.img", &content)]);

    // Upload every referenced blob through the remote level the way
    // `Stacked` does (from a verified copy), but with the large blob's CAS
    // file — which is what gets streamed — corrupted meanwhile.
    corrupt_cas_file(&cache.cas().blob_path(&d));
    let scratch = tempfile::tempdir().unwrap();
    let good = scratch.path().join("good");
    std::fs::write(&good, &content).unwrap();
    remote.put_blob(&d, &good).unwrap();
    for other in [result.output, result.stdout.unwrap()] {
        let p = scratch.path().join(other.to_hex());
        std::fs::write(&p, cache.cas().read(&other).unwrap()).unwrap();
        remote.put_blob(&other, &p).unwrap();
    }
    remote.flush();
    remote.put_action(&key, &result).unwrap();

    assert!(!nginx.root().join("cas").join(d.to_hex()).exists());
    assert!(nginx.files("ac").is_empty(), "{:?}", nginx.files("ac"));
    let s = remote.stats();
    assert_eq!((s.uploads, s.skipped_uploads), (0, 1), "{s:?}");
    assert!(remote.remote().is_available());
    // nginx saw the cut-short PUT (or none): no complete body was stored.
    assert!(!nginx.files("cas").iter().any(|p| {
        let mut f = std::fs::File::open(p).unwrap();
        let mut buf = Vec::new();
        f.read_to_end(&mut buf).unwrap();
        buf.len() as u64 >= STREAM_UPLOAD_BYTES
    }));
}

#[test]
fn put_file_refuses_a_corrupt_file_with_both_digest_functions() {
    let nginx = Nginx::start();
    let content = pseudo_random(STREAM_UPLOAD_BYTES + 3, 6);
    let d = Digest::of_bytes(&content);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blob");
    let mut bad = content.clone();
    bad[0] ^= 0x80;
    std::fs::write(&path, &bad).unwrap();
    for f in [DigestFunction::Blake3, DigestFunction::Sha256] {
        let mut config = test_config(&nginx.url);
        config.digest_function = f;
        let remote = RemoteCache::new(config, None).unwrap();
        let err = remote
            .put_file(&d, &path, bad.len() as u64)
            .expect_err("a corrupt file must not be uploaded");
        assert!(matches!(err, RemoteError::CorruptLocal { .. }), "{err}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        assert!(remote.is_available());
        assert_eq!(remote.stats().blobs_uploaded, 0);
    }
    assert!(nginx.files("cas").is_empty(), "{:?}", nginx.files("cas"));

    // The same file made right uploads.
    std::fs::write(&path, &content).unwrap();
    let remote = RemoteCache::new(test_config(&nginx.url), None).unwrap();
    assert!(remote.put_file(&d, &path, content.len() as u64).unwrap());
    assert_eq!(
        std::fs::read(nginx.root().join("cas").join(d.to_hex())).unwrap(),
        content
    );
}
