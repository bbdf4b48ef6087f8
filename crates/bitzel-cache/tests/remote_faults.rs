//! Fault tests of the remote cache, against a real nginx WebDAV server and
//! two tiny misbehaving servers: the server stopped mid-build, a blob deleted
//! or corrupted behind an existing entry, a server that never answers, 5xx
//! responses, refused credentials. The build must never fail because of the
//! remote, and "the remote is unavailable" must be said exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod remote_common;

use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bitzel_cache::remote::{AuthHeader, RemoteCache};
use bitzel_cache::{Lookup, MissReason};
use remote_common::{
    as_refs, make_result, sample_files, stacked, test_config, warnings, warnings_about, Nginx,
};

fn unavailable_warnings(url: &str) -> usize {
    warnings_about(url)
        .iter()
        .filter(|w| w.contains("remote cache unavailable"))
        .count()
}

#[test]
fn server_stopped_mid_build_degrades_to_local_only_with_one_warning() {
    warnings();
    let mut nginx = Nginx::start();
    let dir = tempfile::tempdir().unwrap();
    let (cache, remote) = stacked(dir.path(), test_config(&nginx.url));
    let (k1, r1) = make_result(&cache, "t:do_1", &as_refs(&sample_files("1")));
    cache.put(&k1, &r1).unwrap();
    assert_eq!(remote.stats().uploads, 1);

    nginx.stop();
    let t0 = Instant::now();
    // Every operation still completes: puts succeed locally, lookups of
    // local entries hit, unknown keys miss.
    let mut keys = Vec::new();
    for i in 2..6 {
        let (k, r) = make_result(
            &cache,
            &format!("t:do_{i}"),
            &as_refs(&sample_files(&i.to_string())),
        );
        cache.put(&k, &r).unwrap();
        keys.push(k);
    }
    for k in &keys {
        assert!(matches!(cache.lookup(k).unwrap(), Lookup::Hit(_)));
    }
    let (unknown, _) = make_result(&cache, "t:never", &[("x", b"x")]);
    assert!(matches!(
        cache.lookup(&unknown).unwrap(),
        Lookup::Miss(MissReason::NotFound)
    ));
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t0.elapsed()
    );

    let s = remote.stats();
    assert_eq!(
        (s.uploads, s.skipped_uploads, s.unavailable),
        (1, 4, 1),
        "{s:?}"
    );
    assert!(!remote.remote().is_available());
    // One warning, and nothing else about this server.
    assert_eq!(
        unavailable_warnings(&nginx.url),
        1,
        "{:#?}",
        warnings_about(&nginx.url)
    );
    assert_eq!(warnings_about(&nginx.url).len(), 1);
}

#[test]
fn blob_deleted_on_the_server_makes_the_entry_a_miss() {
    warnings();
    let nginx = Nginx::start();
    let dir_a = tempfile::tempdir().unwrap();
    let (cache_a, _) = stacked(dir_a.path(), test_config(&nginx.url));
    let files = sample_files("del");
    let (k, r) = make_result(&cache_a, "del:do_install", &as_refs(&files));
    cache_a.put(&k, &r).unwrap();
    // Evict one file blob (the README) behind the entry's back.
    let victim = bitzel_cache::Digest::of_bytes(&files[1].1).to_hex();
    std::fs::remove_file(nginx.root().join("cas").join(&victim)).unwrap();

    let dir_b = tempfile::tempdir().unwrap();
    let (cache_b, remote_b) = stacked(dir_b.path(), test_config(&nginx.url));
    assert!(matches!(cache_b.lookup(&k).unwrap(), Lookup::Miss(_)));
    let s = remote_b.stats();
    assert_eq!(
        (s.hits, s.misses, s.incomplete, s.unavailable),
        (0, 1, 1, 0),
        "{s:?}"
    );
    assert!(
        cache_b.local().read_action(&k).unwrap().is_none(),
        "no entry written back"
    );
    // The remote stays in use.
    assert!(remote_b.remote().is_available());
}

#[test]
fn blob_corrupted_on_the_server_is_detected_and_not_used() {
    warnings();
    let nginx = Nginx::start();
    let dir_a = tempfile::tempdir().unwrap();
    let (cache_a, _) = stacked(dir_a.path(), test_config(&nginx.url));
    let files = sample_files("cor");
    let (k, r) = make_result(&cache_a, "cor:do_install", &as_refs(&files));
    cache_a.put(&k, &r).unwrap();
    let victim = bitzel_cache::Digest::of_bytes(&files[0].1);
    let path = nginx.root().join("cas").join(victim.to_hex());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 0x55; // same size, different content
    std::fs::write(&path, &bytes).unwrap();

    let dir_b = tempfile::tempdir().unwrap();
    let (cache_b, remote_b) = stacked(dir_b.path(), test_config(&nginx.url));
    assert!(matches!(cache_b.lookup(&k).unwrap(), Lookup::Miss(_)));
    let s = remote_b.stats();
    assert_eq!((s.hits, s.corrupt, s.unavailable), (0, 1, 0), "{s:?}");
    assert!(
        !cache_b.cas().contains(&victim),
        "corrupt blob must not enter the local CAS"
    );
    assert!(!cache_b
        .cas()
        .contains(&bitzel_cache::Digest::of_bytes(&bytes)));
    assert_eq!(warnings_about(&victim.to_hex()).len(), 1);

    // A corrupted ac/ entry is a miss too, not an error.
    let entry = nginx.files("ac").pop().unwrap();
    std::fs::write(&entry, b"\xff\xff not protobuf").unwrap();
    let dir_c = tempfile::tempdir().unwrap();
    let (cache_c, remote_c) = stacked(dir_c.path(), test_config(&nginx.url));
    assert!(matches!(cache_c.lookup(&k).unwrap(), Lookup::Miss(_)));
    assert!(remote_c.remote().is_available());
}

#[test]
fn server_that_never_answers_times_out_and_degrades() {
    warnings();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let held = Arc::new(Mutex::new(Vec::new()));
    let h2 = held.clone();
    std::thread::spawn(move || {
        for c in listener.incoming().flatten() {
            h2.lock().unwrap().push(c); // accept, never answer
        }
    });
    let mut config = test_config(&url);
    config.request_timeout = Duration::from_millis(300);
    config.attempts = 2;
    let dir = tempfile::tempdir().unwrap();
    let (cache, remote) = stacked(dir.path(), config);
    let (k, r) = make_result(&cache, "slow:do_x", &[("f", b"1")]);
    let t0 = Instant::now();
    assert!(matches!(cache.lookup(&k).unwrap(), Lookup::Miss(_)));
    let first = t0.elapsed();
    assert!(first < Duration::from_secs(3), "{first:?}");
    // Given up: later operations do not wait again.
    let t1 = Instant::now();
    cache.put(&k, &r).unwrap();
    assert!(matches!(cache.lookup(&k).unwrap(), Lookup::Hit(_)));
    assert!(
        t1.elapsed() < Duration::from_millis(250),
        "{:?}",
        t1.elapsed()
    );
    let s = remote.stats();
    assert_eq!((s.unavailable, s.retries, s.uploads), (1, 1, 0), "{s:?}");
    assert_eq!(unavailable_warnings(&url), 1);
    assert_eq!(warnings_about(&url).len(), 1, "{:#?}", warnings_about(&url));
}

/// A server answering 503 to the first `fail` requests, then 404.
fn flaky_server(fail: usize) -> (String, Arc<AtomicUsize>) {
    remote_common::scripted_server(move |n, w| {
        let status = if n < fail {
            "503 Service Unavailable"
        } else {
            "404 Not Found"
        };
        let _ = write!(w, "HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
        true
    })
}

#[test]
fn server_errors_are_retried_with_backoff() {
    warnings();
    let (url, seen) = flaky_server(2);
    let remote = RemoteCache::new(test_config(&url), None).unwrap();
    let key = bitzel_cache::Action::default().key();
    assert_eq!(remote.get_entry(&key).unwrap(), None);
    assert_eq!(seen.load(Ordering::SeqCst), 3);
    let s = remote.stats();
    assert_eq!((s.retries, s.unavailable), (2, 0), "{s:?}");
    assert!(remote.is_available());

    // Persistent 5xx: given up after the configured attempts, once.
    let (url, seen) = flaky_server(usize::MAX);
    let remote = RemoteCache::new(test_config(&url), None).unwrap();
    assert!(remote.get_entry(&key).is_err());
    assert!(remote.get_entry(&key).is_err());
    assert_eq!(seen.load(Ordering::SeqCst), 3);
    assert!(!remote.is_available());
    assert_eq!(unavailable_warnings(&url), 1);
}

#[test]
fn refused_credentials_degrade_and_the_secret_is_never_logged() {
    warnings();
    let nginx = Nginx::start_with_auth("Bearer right-token");
    std::env::set_var(
        "BITZEL_TEST_REMOTE_AUTH",
        "Authorization: Bearer wr0ng-t0ken-xyz",
    );
    let auth = AuthHeader::from_env("BITZEL_TEST_REMOTE_AUTH").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cache, remote) = stacked(dir.path(), test_config(&nginx.url).with_auth(Some(auth)));
    let (k, r) = make_result(&cache, "auth:do_x", &[("f", b"1")]);
    cache.put(&k, &r).unwrap();
    assert!(matches!(cache.lookup(&k).unwrap(), Lookup::Hit(_)));
    let s = remote.stats();
    assert_eq!((s.uploads, s.unavailable), (0, 1), "{s:?}");
    let w = warnings_about(&nginx.url);
    assert_eq!(unavailable_warnings(&nginx.url), 1, "{w:#?}");
    assert_eq!(w.len(), 1, "{w:#?}");
    assert!(w.iter().any(|w| w.contains("401")), "{w:#?}");
    let all = warnings().0.lock().unwrap().join("\n");
    assert!(!all.contains("wr0ng-t0ken-xyz"));
    assert!(!format!("{remote:?}").contains("wr0ng-t0ken-xyz"));
    assert!(nginx.files("ac").is_empty());
}
