//! Shared by the `remote_*` integration tests: a real nginx WebDAV server
//! started through `scripts/nginx-dav`, caches stacked in front of it, and
//! helpers to make action results.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bitzel_cache::remote::{HttpStore, RemoteConfig};
use bitzel_cache::{Action, ActionKey, ActionResult, Cache, CacheOptions, Durability, Storage};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// An nginx WebDAV server in a temp dir; stopped on drop.
pub struct Nginx {
    pub dir: tempfile::TempDir,
    pub url: String,
    running: bool,
}

/// `scripts/nginx-dav` of the checkout: the first ancestor of the including package's
/// manifest dir that has it (a crate under `crates/`, or the top-level `benches/`).
fn script() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .map(|d| d.join("scripts/nginx-dav"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("no scripts/nginx-dav above {}", manifest.display()))
}

impl Nginx {
    pub fn start() -> Nginx {
        Nginx::start_args(&[])
    }

    /// Requests without `Authorization: <value>` get 401.
    pub fn start_with_auth(value: &str) -> Nginx {
        Nginx::start_args(&["--auth", value])
    }

    fn start_args(extra: &[&str]) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(dir.path())
            .args(extra)
            .output()
            .expect("run scripts/nginx-dav");
        assert!(
            out.status.success(),
            "cannot start nginx for the remote-cache tests (install it with `scripts/install-deps --test`): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = String::from_utf8(out.stdout).unwrap().trim().to_string();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        Nginx {
            dir,
            url,
            running: true,
        }
    }

    /// The document root: `<url>/x` is `<root>/x`.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn stop(&mut self) {
        if self.running {
            let st = Command::new("bash")
                .arg(script())
                .arg("stop")
                .arg(self.dir.path())
                .status()
                .expect("run scripts/nginx-dav stop");
            assert!(st.success());
            self.running = false;
        }
    }

    /// Files under `<root>/<sub>` (sorted).
    pub fn files(&self, sub: &str) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = match std::fs::read_dir(self.root().join(sub)) {
            Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        };
        v.sort();
        v
    }

    /// The request lines of the access log (e.g. `PUT /cas/ab… HTTP/1.1`).
    /// nginx writes a line after the response has gone out, so this waits
    /// until the log stops growing.
    pub fn requests(&self) -> Vec<String> {
        let mut last = self.requests_now();
        loop {
            std::thread::sleep(std::time::Duration::from_millis(30));
            let now = self.requests_now();
            if now.len() == last.len() {
                return now;
            }
            last = now;
        }
    }

    fn requests_now(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
        log.lines()
            .filter_map(|l| l.split('"').nth(1).map(str::to_string))
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if self.running {
            let _ = Command::new("bash")
                .arg(script())
                .arg("stop")
                .arg(self.dir.path())
                .status();
        }
    }
}

/// A fast config for tests: short timeouts and backoff.
pub fn test_config(url: &str) -> RemoteConfig {
    let mut c = RemoteConfig::new(url).unwrap();
    c.backoff = std::time::Duration::from_millis(20);
    c.connect_timeout = std::time::Duration::from_secs(2);
    c.request_timeout = std::time::Duration::from_secs(10);
    c
}

/// A local cache in `dir` with the remote behind it.
pub fn stacked(dir: &Path, config: RemoteConfig) -> (Cache, Arc<HttpStore>) {
    let cache = Cache::open_with(
        dir,
        CacheOptions {
            durability: Durability::Process,
            ..CacheOptions::default()
        },
    )
    .unwrap();
    let remote = Arc::new(HttpStore::for_cache(config, &cache).unwrap());
    let level: Arc<dyn Storage> = remote.clone();
    (cache.with_levels(vec![level]), remote)
}

/// Capture `files` as a task output, store a stdout log, and return the
/// key and result of a made-up action labelled `label`.
pub fn make_result(
    cache: &Cache,
    label: &str,
    files: &[(&str, &[u8])],
) -> (ActionKey, ActionResult) {
    let work = tempfile::tempdir().unwrap();
    for (p, content) in files {
        let path = work.path().join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
    }
    let captured = cache.capture(work.path()).unwrap();
    let stdout = cache
        .put_blob(format!("log of {label}\n").as_bytes())
        .unwrap();
    let action = Action {
        label: label.to_string(),
        script: format!("echo {label}"),
        ..Action::default()
    };
    let result = ActionResult {
        label: label.to_string(),
        output: captured.digest,
        extra_outputs: Default::default(),
        exit_code: 0,
        stdout: Some(stdout),
        stderr: None,
        duration_ms: 1234,
        created_unix_ms: 1_700_000_000_000,
        action: action.clone(),
    };
    (action.key(), result)
}

/// A few files, one larger than the HEAD-before-PUT threshold.
pub fn sample_files(tag: &str) -> Vec<(String, Vec<u8>)> {
    let big: Vec<u8> = (0..300_000u32)
        .map(|i| (i % 251) as u8)
        .chain(tag.bytes())
        .collect();
    vec![
        (
            "usr/bin/hello".into(),
            format!("#!/bin/sh\necho {tag}\n").into_bytes(),
        ),
        (
            "usr/share/doc/README".into(),
            format!("readme {tag}\n").into_bytes(),
        ),
        ("usr/lib/libbig.so".into(), big),
        ("etc/empty".into(), Vec::new()),
    ]
}

pub fn as_refs(files: &[(String, Vec<u8>)]) -> Vec<(&str, &[u8])> {
    files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_slice()))
        .collect()
}

/// A minimal in-process HTTP object store (GET/HEAD/PUT with
/// Content-Length) that records every request in arrival order — to check
/// the order in which a client talks, which nginx's access log (written at
/// completion, per worker) cannot show.
pub struct MiniDav {
    pub url: String,
    pub log: Arc<std::sync::Mutex<Vec<String>>>,
}

impl MiniDav {
    pub fn start() -> MiniDav {
        use std::collections::HashMap;
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let objects: Arc<std::sync::Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (log, objects) = (log2.clone(), objects.clone());
                std::thread::spawn(move || {
                    let mut r = BufReader::new(conn.try_clone().unwrap());
                    let mut w = conn;
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let mut parts = line.split_whitespace();
                        let (method, path) = (
                            parts.next().unwrap_or("").to_string(),
                            parts.next().unwrap_or("").to_string(),
                        );
                        let mut len = 0usize;
                        loop {
                            let mut h = String::new();
                            if r.read_line(&mut h).unwrap_or(0) == 0 {
                                return;
                            }
                            if h == "\r\n" {
                                break;
                            }
                            if let Some((k, v)) = h.split_once(':') {
                                if k.eq_ignore_ascii_case("content-length") {
                                    len = v.trim().parse().unwrap();
                                }
                            }
                        }
                        let mut body = vec![0u8; len];
                        r.read_exact(&mut body).unwrap();
                        log.lock().unwrap().push(format!("{method} {path}"));
                        let mut objs = objects.lock().unwrap();
                        let _ = match (method.as_str(), objs.get(&path)) {
                            ("PUT", _) => {
                                objs.insert(path, body);
                                write!(w, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
                            }
                            ("GET", Some(b)) => {
                                write!(w, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", b.len())
                                    .and_then(|()| w.write_all(b))
                            }
                            ("HEAD", Some(b)) => {
                                write!(w, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", b.len())
                            }
                            _ => write!(w, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
                        };
                    }
                });
            }
        });
        MiniDav { url, log }
    }

    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

/// `len` pseudo-random bytes (xorshift), different per `seed`.
pub fn pseudo_random(len: u64, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A misbehaving HTTP server on loopback: for every request head it reads
/// (the `n`th across all connections, from 0) it calls `respond(n, stream)`,
/// which writes the answer and returns `false` to drop the connection.
/// Returns the base URL and the request count.
pub fn scripted_server(
    respond: impl Fn(usize, &mut TcpStream) -> bool + Send + Sync + 'static,
) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let (s2, respond) = (seen.clone(), Arc::new(respond));
    std::thread::spawn(move || {
        for c in listener.incoming().flatten() {
            let (seen, respond) = (s2.clone(), respond.clone());
            std::thread::spawn(move || {
                let mut r = BufReader::new(c.try_clone().unwrap());
                let mut w = c;
                let mut line = String::new();
                loop {
                    // Read one request head.
                    loop {
                        line.clear();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    if !respond(seen.fetch_add(1, Ordering::SeqCst), &mut w) {
                        return;
                    }
                }
            });
        }
    });
    (url, seen)
}

/// A global subscriber keeping every WARN/ERROR event as text, so a test can
/// count the warnings about its own server (filtered by its unique URL).
pub struct Keep(pub Mutex<Vec<String>>);

struct Text(String);
impl Visit for Text {
    fn record_debug(&mut self, f: &Field, v: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={:?} ", f.name(), v);
    }
}

impl Subscriber for &'static Keep {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        *m.level() <= Level::WARN
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, e: &Event<'_>) {
        let mut t = Text(String::new());
        e.record(&mut t);
        self.0.lock().unwrap().push(t.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

pub fn warnings() -> &'static Keep {
    static KEEP: OnceLock<&'static Keep> = OnceLock::new();
    KEEP.get_or_init(|| {
        let k: &'static Keep = Box::leak(Box::new(Keep(Mutex::new(Vec::new()))));
        tracing::subscriber::set_global_default(k).unwrap();
        k
    })
}

/// Warnings mentioning `needle`.
pub fn warnings_about(needle: &str) -> Vec<String> {
    warnings()
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|w| w.contains(needle))
        .cloned()
        .collect()
}
