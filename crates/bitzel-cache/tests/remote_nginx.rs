//! The remote cache against a real nginx WebDAV server (Debian's `nginx`,
//! started by `scripts/nginx-dav`), through the stacked storage: a local
//! cache with the remote behind it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod remote_common;

use bitzel_cache::remote::proto;
use bitzel_cache::remote::shamap::{hex32, sha256};
use bitzel_cache::remote::{DigestFunction, RemoteCache};
use bitzel_cache::{Digest, Lookup};
use prost::Message;
use remote_common::{as_refs, make_result, sample_files, stacked, test_config, Nginx};

/// Every `ac/` entry on the server decodes as a REAPI ActionResult and every
/// digest it mentions names a file in `cas/` whose content hashes to it.
fn assert_entries_are_valid_reapi(nginx: &Nginx, sub: &str, f: DigestFunction) {
    let entries = nginx.files(&format!("{sub}ac"));
    assert!(!entries.is_empty(), "no ac/ entries under {sub}");
    for e in entries {
        let ar = proto::ActionResult::decode(&std::fs::read(&e).unwrap()[..]).unwrap();
        let mut digests: Vec<proto::Digest> = ar
            .output_files
            .iter()
            .filter_map(|o| o.digest.clone())
            .collect();
        digests.extend(ar.stdout_digest.clone());
        assert!(digests.len() >= 3, "{ar:?}");
        for d in digests {
            let blob = std::fs::read(nginx.root().join(format!("{sub}cas/{}", d.hash)))
                .unwrap_or_else(|_| {
                    panic!("entry {} references missing cas/{}", e.display(), d.hash)
                });
            assert_eq!(blob.len() as i64, d.size_bytes);
            let actual = match f {
                DigestFunction::Blake3 => Digest::of_bytes(&blob).to_hex(),
                DigestFunction::Sha256 => hex32(&sha256(&blob)),
            };
            assert_eq!(actual, d.hash);
        }
    }
}

fn round_trip(f: DigestFunction, instance: Option<&str>) {
    let nginx = Nginx::start();
    let mut config = test_config(&nginx.url).with_digest_function(f);
    if let Some(i) = instance {
        config = config.with_instance(i).unwrap();
    }
    let files = sample_files("a");

    // Machine A: empty local cache, builds and uploads.
    let dir_a = tempfile::tempdir().unwrap();
    let (cache_a, remote_a) = stacked(dir_a.path(), config.clone());
    let (key, result) = make_result(&cache_a, "busybox:do_install", &as_refs(&files));
    cache_a.put(&key, &result).unwrap();
    let up = remote_a.stats();
    assert_eq!((up.uploads, up.skipped_uploads), (1, 0), "{up:?}");
    assert!(up.bytes_uploaded > 300_000, "{up:?}");
    let sub = instance.map(|i| format!("{i}/")).unwrap_or_default();
    assert_entries_are_valid_reapi(&nginx, &sub, f);

    // Machine B: empty local cache, same remote: a remote hit written back locally.
    let dir_b = tempfile::tempdir().unwrap();
    let (cache_b, remote_b) = stacked(dir_b.path(), config.clone());
    match cache_b.lookup(&key).unwrap() {
        Lookup::Hit(r) => assert_eq!(*r, result),
        other => panic!("expected a remote hit, got {other:?}"),
    }
    let down = remote_b.stats();
    assert_eq!(
        (down.hits, down.misses, down.corrupt),
        (1, 0, 0),
        "{down:?}"
    );
    assert!(down.bytes_downloaded > 300_000, "{down:?}");
    // Every blob is now local: the tree materialises with the right bytes.
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("o");
    cache_b.apply(&[result.output], &dest).unwrap();
    for (p, content) in &files {
        assert_eq!(&std::fs::read(dest.join(p)).unwrap(), content, "{p}");
    }
    // Second lookup is a local hit: no further remote traffic.
    let before = nginx.requests().len();
    assert!(matches!(cache_b.lookup(&key).unwrap(), Lookup::Hit(_)));
    assert_eq!(remote_b.stats().hits, 1);
    assert_eq!(nginx.requests().len(), before);

    // A key nobody built is a miss on both levels.
    let (other_key, _) = make_result(&cache_b, "never:uploaded", &[("x", b"y")]);
    assert!(matches!(
        cache_b.lookup(&other_key).unwrap(),
        Lookup::Miss(_)
    ));
    assert_eq!(remote_b.stats().misses, 1);
}

#[test]
fn blake3_round_trip_between_two_empty_local_caches() {
    round_trip(DigestFunction::Blake3, None);
}

#[test]
fn sha256_round_trip_between_two_empty_local_caches() {
    round_trip(DigestFunction::Sha256, None);
}

#[test]
fn instance_prefix_namespaces_the_server() {
    round_trip(DigestFunction::Blake3, Some("ci/x86_64"));
}

#[test]
fn shared_blobs_are_uploaded_once() {
    let nginx = Nginx::start();
    let dir = tempfile::tempdir().unwrap();
    let (cache, remote) = stacked(dir.path(), test_config(&nginx.url));
    let files = sample_files("same");
    let (k1, r1) = make_result(&cache, "a:do_x", &as_refs(&files));
    let (k2, r2) = make_result(&cache, "b:do_x", &as_refs(&files));
    cache.put(&k1, &r1).unwrap();
    let puts_after_first = nginx
        .requests()
        .iter()
        .filter(|r| r.starts_with("PUT /cas/"))
        .count();
    cache.put(&k2, &r2).unwrap();
    let puts: Vec<String> = nginx
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("PUT /cas/"))
        .collect();
    // The second action shares the tree and files; only its log and result blob are new.
    assert_eq!(puts.len() - puts_after_first, 2, "{puts:#?}");
    assert_eq!(remote.stats().uploads, 2);
}

#[test]
fn auth_header_is_sent() {
    let nginx = Nginx::start_with_auth("Bearer s3cret-token");
    let auth = bitzel_cache::remote::AuthHeader::parse("Bearer s3cret-token", "TEST").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cache, remote) = stacked(dir.path(), test_config(&nginx.url).with_auth(Some(auth)));
    let (k, r) = make_result(&cache, "auth:do_x", &[("f", b"1")]);
    cache.put(&k, &r).unwrap();
    let s = remote.stats();
    assert_eq!((s.uploads, s.unavailable), (1, 0), "{s:?}");
    assert_eq!(nginx.files("ac").len(), 1);
}

#[test]
fn read_only_mode_uploads_nothing_but_still_reads() {
    let nginx = Nginx::start();
    // Fill the remote from a writer.
    let dir_w = tempfile::tempdir().unwrap();
    let (cache_w, _) = stacked(dir_w.path(), test_config(&nginx.url));
    let (k1, r1) = make_result(&cache_w, "ro:do_a", &as_refs(&sample_files("ro")));
    cache_w.put(&k1, &r1).unwrap();
    let files_before: Vec<_> = nginx.files("cas");
    let puts_before = nginx
        .requests()
        .iter()
        .filter(|r| r.starts_with("PUT"))
        .count();

    let dir = tempfile::tempdir().unwrap();
    let (cache, remote) = stacked(dir.path(), test_config(&nginx.url).with_read_only(true));
    let (k2, r2) = make_result(&cache, "ro:do_b", &as_refs(&sample_files("other")));
    cache.put(&k2, &r2).unwrap();
    assert!(matches!(cache.lookup(&k1).unwrap(), Lookup::Hit(_)));
    let puts_after = nginx
        .requests()
        .iter()
        .filter(|r| r.starts_with("PUT"))
        .count();
    assert_eq!(puts_after, puts_before, "{:#?}", nginx.requests());
    assert_eq!(nginx.files("cas"), files_before);
    assert_eq!(nginx.files("ac").len(), 1);
    let s = remote.stats();
    assert_eq!(
        (s.uploads, s.skipped_uploads, s.blobs_uploaded, s.hits),
        (0, 1, 0, 1),
        "{s:?}"
    );
}

#[test]
fn blobs_are_uploaded_before_the_entry_that_references_them() {
    let dav = remote_common::MiniDav::start();
    let dir = tempfile::tempdir().unwrap();
    let (cache, remote) = stacked(dir.path(), test_config(&dav.url));
    let mut keys = Vec::new();
    for i in 0..3 {
        let (k, r) = make_result(
            &cache,
            &format!("order:do_{i}"),
            &as_refs(&sample_files(&i.to_string())),
        );
        cache.put(&k, &r).unwrap();
        keys.push(k);
    }
    assert_eq!(remote.stats().uploads, 3);
    let log = dav.requests();
    for k in &keys {
        let ac = log
            .iter()
            .position(|l| *l == format!("PUT /ac/{k}"))
            .unwrap_or_else(|| panic!("no ac PUT for {k}: {log:#?}"));
        // Every blob the entry names, and its result blob, arrived (and was
        // answered) before it.
        let reader = RemoteCache::new(test_config(&dav.url), None).unwrap();
        let e = reader.get_entry(k).unwrap().unwrap();
        let mut named = 0;
        let result_blob = bitzel_cache::remote::BlobRef::of_bytes(&e.result);
        for b in e.normalized_blobs().into_iter().chain([result_blob]) {
            let put = log
                .iter()
                .position(|l| *l == format!("PUT /cas/{}", b.digest))
                .unwrap_or_else(|| panic!("blob {} never uploaded", b.digest));
            assert!(put < ac, "blob {} uploaded after its entry", b.digest);
            named += 1;
        }
        assert!(named >= 5, "{named}");
    }
    // Large blobs are checked with HEAD first; small ones are PUT directly.
    assert!(log.iter().any(|l| l.starts_with("HEAD /cas/")));
    assert_eq!(log.iter().filter(|l| l.starts_with("HEAD /ac/")).count(), 0);
}

#[test]
fn without_a_local_cas_hits_are_checked_with_head() {
    use bitzel_cache::remote::HttpStore;
    use bitzel_cache::Storage;
    let nginx = Nginx::start();
    let dir = tempfile::tempdir().unwrap();
    let (cache, _) = stacked(dir.path(), test_config(&nginx.url));
    let files = sample_files("head");
    let (k, r) = make_result(&cache, "head:do_x", &as_refs(&files));
    cache.put(&k, &r).unwrap();

    let bare = HttpStore::new(test_config(&nginx.url), None, None).unwrap();
    assert_eq!(bare.get_action(&k).unwrap(), Some(r.clone()));
    let heads = nginx
        .requests()
        .iter()
        .filter(|l| l.starts_with("HEAD /cas/"))
        .count();
    assert!(heads >= 5, "{heads}");
    let victim = Digest::of_bytes(&files[0].1);
    std::fs::remove_file(nginx.root().join("cas").join(victim.to_hex())).unwrap();
    let bare = HttpStore::new(test_config(&nginx.url), None, None).unwrap();
    assert_eq!(bare.get_action(&k).unwrap(), None);
    let s = bare.stats();
    assert_eq!((s.hits, s.misses, s.incomplete), (0, 1, 1), "{s:?}");
}
