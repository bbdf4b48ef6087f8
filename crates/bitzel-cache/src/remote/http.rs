//! The HTTP transport: `GET`/`HEAD`/`PUT` of `<base>/ac/<hex>` and
//! `<base>/cas/<hex>` with retries, backoff, timeouts, and the switch to
//! local-only when the server cannot be reached.

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::path::Path;
use std::sync::Arc;

use sha2::Digest as _;

use super::config::{AuthHeader, RemoteConfig};
use super::gate::{Attempt, Gate};
use super::stats::RemoteStats;
use super::RemoteError;
use crate::digest::Digest;

/// Buffer size of streamed transfers (the memory a streamed blob costs).
const STREAM_BUF: usize = 256 << 10;

/// What a streamed download wrote, with the digests of exactly those bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Bytes written.
    pub len: u64,
    /// Their BLAKE3.
    pub blake3: Digest,
    /// Their SHA-256, when asked for.
    pub sha256: Option<[u8; 32]>,
}

/// The two namespaces of the Bazel HTTP cache protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Namespace {
    /// `ac/`: action results (REAPI `ActionResult` protobuf).
    Ac,
    /// `cas/`: content-addressed blobs.
    Cas,
}

impl Namespace {
    fn dir(self) -> &'static str {
        match self {
            Namespace::Ac => "ac",
            Namespace::Cas => "cas",
        }
    }
}

/// A remote cache's wire protocol: the Bazel HTTP protocol ([`Transport`])
/// or REAPI over gRPC (in the `bitzel-remote` crate). `size` is the blob's
/// size when known (gRPC names a blob by hash and size; HTTP ignores it).
pub trait BlobTransport: Send + Sync + std::fmt::Debug {
    /// Whether the remote has been given up.
    fn is_down(&self) -> bool;
    /// The endpoint for messages, credentials hidden.
    fn display_url(&self) -> &str;
    /// Give the remote up for the rest of the process, warning once.
    fn give_up(&self, reason: &str);
    /// Read an object: `Ok(None)` when absent or larger than `limit`.
    fn get(
        &self,
        ns: Namespace,
        hex: &str,
        size: Option<u64>,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, RemoteError>;
    /// Read an object streamed into `out` (see [`Transport::get_to_file`]).
    #[allow(clippy::too_many_arguments)]
    fn get_to_file(
        &self,
        ns: Namespace,
        hex: &str,
        size: Option<u64>,
        limit: u64,
        out: &mut File,
        out_path: &Path,
        want_sha256: bool,
    ) -> Result<Option<Received>, RemoteError>;
    /// Whether the server has an object.
    fn head(&self, ns: Namespace, hex: &str, size: Option<u64>) -> Result<bool, RemoteError>;
    /// Write an object.
    fn put(&self, ns: Namespace, hex: &str, body: &[u8]) -> Result<(), RemoteError>;
    /// Write an object from a file, checking on the way that its BLAKE3 is `expected`.
    fn put_file(
        &self,
        ns: Namespace,
        hex: &str,
        path: &Path,
        expected: &Digest,
    ) -> Result<(), RemoteError>;
}

impl BlobTransport for Transport {
    fn is_down(&self) -> bool {
        Transport::is_down(self)
    }
    fn display_url(&self) -> &str {
        Transport::display_url(self)
    }
    fn give_up(&self, reason: &str) {
        Transport::give_up(self, reason)
    }
    fn get(
        &self,
        ns: Namespace,
        hex: &str,
        _size: Option<u64>,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, RemoteError> {
        Transport::get(self, ns, hex, limit)
    }
    fn get_to_file(
        &self,
        ns: Namespace,
        hex: &str,
        _size: Option<u64>,
        limit: u64,
        out: &mut File,
        out_path: &Path,
        want_sha256: bool,
    ) -> Result<Option<Received>, RemoteError> {
        Transport::get_to_file(self, ns, hex, limit, out, out_path, want_sha256)
    }
    fn head(&self, ns: Namespace, hex: &str, _size: Option<u64>) -> Result<bool, RemoteError> {
        Transport::head(self, ns, hex)
    }
    fn put(&self, ns: Namespace, hex: &str, body: &[u8]) -> Result<(), RemoteError> {
        Transport::put(self, ns, hex, body)
    }
    fn put_file(
        &self,
        ns: Namespace,
        hex: &str,
        path: &Path,
        expected: &Digest,
    ) -> Result<(), RemoteError> {
        Transport::put_file(self, ns, hex, path, expected)
    }
}

/// A blocking HTTP client for one remote cache. Shared by reference between
/// the threads of the transfer pool.
pub struct Transport {
    agent: ureq::Agent,
    base: String,
    auth: Option<AuthHeader>,
    gate: Gate,
    stats: Arc<RemoteStats>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("url", &self.gate.display_url())
            .field("auth", &self.auth)
            .field("down", &self.is_down())
            .finish()
    }
}

impl Transport {
    /// A transport for `config`, counting into `stats`.
    pub fn new(config: &RemoteConfig, stats: Arc<RemoteStats>) -> Transport {
        let agent_config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(config.connect_timeout))
            // Silence limits, not total limits: a large blob on a slow but
            // moving link is fine; a server that stops answering is not.
            .timeout_recv_response(Some(config.request_timeout))
            .timeout_per_read(Some(config.request_timeout))
            .timeout_per_write(Some(config.request_timeout))
            .max_idle_connections_per_host(config.parallelism.max(1) * 2)
            .max_idle_connections(config.parallelism.max(1) * 4)
            .user_agent(concat!("bitzel/", env!("CARGO_PKG_VERSION")))
            .build();
        Transport {
            agent: ureq::Agent::new_with_config(agent_config),
            base: config.base(),
            auth: config.auth.clone(),
            gate: Gate::new(
                super::config::redact_url(&config.base()),
                config.attempts,
                config.backoff,
                stats.clone(),
            ),
            stats,
        }
    }

    /// Whether the remote has been given up (the build continues local-only).
    pub fn is_down(&self) -> bool {
        self.gate.is_down()
    }

    /// The base URL, credentials hidden.
    pub fn display_url(&self) -> &str {
        self.gate.display_url()
    }

    fn url(&self, ns: Namespace, hex: &str) -> String {
        format!("{}/{}/{}", self.base, ns.dir(), hex)
    }

    /// Give the remote up, warning once.
    pub(crate) fn give_up(&self, reason: &str) {
        self.gate.give_up(reason)
    }

    fn run<T>(&self, what: &str, attempt: impl FnMut() -> Attempt<T>) -> Result<T, RemoteError> {
        self.gate.run(what, attempt)
    }

    fn request(
        &self,
        builder_url: &str,
        method: Method,
    ) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        let b = match method {
            Method::Get => self.agent.get(builder_url),
            Method::Head => self.agent.head(builder_url),
        };
        match &self.auth {
            Some(a) => b.header(a.name(), a.value()),
            None => b,
        }
    }

    /// `GET <base>/<ns>/<hex>`: `Ok(None)` on 404. At most `limit` bytes are read.
    pub fn get(
        &self,
        ns: Namespace,
        hex: &str,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, RemoteError> {
        let url = self.url(ns, hex);
        let what = format!("GET {}/{hex}", ns.dir());
        self.run(&what, || {
            let mut resp = match self.request(&url, Method::Get).call() {
                Ok(r) => r,
                Err(e) => return classify(e),
            };
            match resp.status().as_u16() {
                200 => match resp.body_mut().with_config().limit(limit).read_to_vec() {
                    Ok(v) => {
                        self.stats.note_download(v.len() as u64);
                        Attempt::Done(Some(v))
                    }
                    Err(ureq::Error::BodyExceedsLimit(n)) => {
                        // Larger than the digest says: not this blob; treat as absent.
                        tracing::warn!(remote = %self.gate.display_url(), object = %what, limit, got = n, "remote object is larger than expected; ignoring it");
                        Attempt::Done(None)
                    }
                    Err(e) => classify(e),
                },
                404 => Attempt::Done(None),
                s => status_attempt(s),
            }
        })
    }

    /// `GET <base>/<ns>/<hex>` streamed into `out` (whose path is
    /// `out_path`, for messages), hashing what arrives: BLAKE3 always,
    /// SHA-256 too when `want_sha256`. `Ok(None)` on 404, or when the body is
    /// larger than `limit` (warned). Every attempt starts by truncating `out`,
    /// so a retried download never leaves the failed attempt's bytes behind;
    /// after `Ok(None)` or an error `out` holds an unusable partial body, which
    /// the caller removes. Memory: one [`STREAM_BUF`] buffer.
    pub fn get_to_file(
        &self,
        ns: Namespace,
        hex: &str,
        limit: u64,
        out: &mut File,
        out_path: &Path,
        want_sha256: bool,
    ) -> Result<Option<Received>, RemoteError> {
        let url = self.url(ns, hex);
        let what = format!("GET {}/{hex}", ns.dir());
        let mut buf = vec![0u8; STREAM_BUF];
        let spool = |op: &'static str, source: io::Error| {
            Attempt::Fail(RemoteError::Spool {
                op,
                path: out_path.to_path_buf(),
                object: what.clone(),
                source,
            })
        };
        self.run(&what, || {
            if let Err(e) = out.set_len(0).and_then(|()| out.rewind()) {
                return spool("truncate", e);
            }
            let mut resp = match self.request(&url, Method::Get).call() {
                Ok(r) => r,
                Err(e) => return classify(e),
            };
            match resp.status().as_u16() {
                200 => {}
                404 => return Attempt::Done(None),
                s => return status_attempt(s),
            }
            let mut body = resp.body_mut().as_reader();
            let mut blake = blake3::Hasher::new();
            let mut sha = want_sha256.then(sha2::Sha256::new);
            let mut len = 0u64;
            loop {
                let n = match body.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return classify(ureq::Error::from(e)),
                };
                len += n as u64;
                if len > limit {
                    // Larger than the digest says: not this blob; treat as absent.
                    tracing::warn!(remote = %self.gate.display_url(), object = %what, limit, "remote object is larger than expected; ignoring it");
                    return Attempt::Done(None);
                }
                let chunk = &buf[..n];
                blake.update(chunk);
                if let Some(h) = sha.as_mut() {
                    h.update(chunk);
                }
                if let Err(e) = out.write_all(chunk) {
                    return spool("write", e);
                }
            }
            self.stats.note_download(len);
            Attempt::Done(Some(Received {
                len,
                blake3: Digest(*blake.finalize().as_bytes()),
                sha256: sha.map(|h| h.finalize().into()),
            }))
        })
    }

    /// `PUT <base>/<ns>/<hex>` with the content of the file at `path`,
    /// streamed with its length as `Content-Length`, and checked against
    /// `expected` (BLAKE3) while it is read: the last byte is held back until
    /// the whole file has hashed right, so a file that does not match (or
    /// changes length) is never sent complete — the request is cut short, the
    /// server discards it, and [`RemoteError::CorruptLocal`] is returned
    /// (not retried; the remote is not given up). Memory: one buffer.
    pub fn put_file(
        &self,
        ns: Namespace,
        hex: &str,
        path: &Path,
        expected: &Digest,
    ) -> Result<(), RemoteError> {
        let url = self.url(ns, hex);
        let what = format!("PUT {}/{hex}", ns.dir());
        self.run(&what, || {
            let local = |source: io::Error| {
                Attempt::Fail(RemoteError::LocalFile {
                    digest: *expected,
                    path: path.to_path_buf(),
                    source,
                })
            };
            let file = match File::open(path) {
                Ok(f) => f,
                Err(e) => return local(e),
            };
            let len = match file.metadata() {
                Ok(m) => m.len(),
                Err(e) => return local(e),
            };
            let mut body = VerifiedFile::new(file, len, *expected);
            let corrupt = || {
                Attempt::Fail(RemoteError::CorruptLocal {
                    digest: *expected,
                    path: path.to_path_buf(),
                })
            };
            if len == 0 && Digest::of_bytes(b"") != *expected {
                return corrupt();
            }
            let b = self
                .agent
                .put(&url)
                .header("content-length", len.to_string());
            let b = match &self.auth {
                Some(a) => b.header(a.name(), a.value()),
                None => b,
            };
            let res = b.send(ureq::SendBody::from_reader(&mut body));
            if body.corrupt {
                return corrupt();
            }
            if let Some(e) = body.io_error.take() {
                return local(e);
            }
            match res {
                Ok(resp) => match resp.status().as_u16() {
                    200 | 201 | 204 => {
                        self.stats.note_upload(len);
                        Attempt::Done(())
                    }
                    s => status_attempt(s),
                },
                Err(e) => classify(e),
            }
        })
    }

    /// `HEAD <base>/<ns>/<hex>`: whether the object exists.
    pub fn head(&self, ns: Namespace, hex: &str) -> Result<bool, RemoteError> {
        let url = self.url(ns, hex);
        let what = format!("HEAD {}/{hex}", ns.dir());
        self.run(&what, || match self.request(&url, Method::Head).call() {
            Ok(resp) => match resp.status().as_u16() {
                200 => Attempt::Done(true),
                404 => Attempt::Done(false),
                s => status_attempt(s),
            },
            Err(e) => classify(e),
        })
    }

    /// `PUT <base>/<ns>/<hex>` with `body`.
    pub fn put(&self, ns: Namespace, hex: &str, body: &[u8]) -> Result<(), RemoteError> {
        let url = self.url(ns, hex);
        let what = format!("PUT {}/{hex}", ns.dir());
        self.run(&what, || {
            let b = self.agent.put(&url);
            let b = match &self.auth {
                Some(a) => b.header(a.name(), a.value()),
                None => b,
            };
            match b.send(body) {
                Ok(resp) => match resp.status().as_u16() {
                    200 | 201 | 204 => {
                        self.stats.note_upload(body.len() as u64);
                        Attempt::Done(())
                    }
                    s => status_attempt(s),
                },
                Err(e) => classify(e),
            }
        })
    }
}

/// A local file read as a request body, hashed on the way. It yields all
/// but its last byte freely; the last byte only once the whole file (exactly
/// `len` bytes, then end of file) has hashed to `expected` — otherwise the
/// read fails and `corrupt` is set, so the server never gets a complete body
/// that does not match its name. Local read errors are kept in `io_error`.
struct VerifiedFile {
    file: File,
    len: u64,
    sent: u64,
    expected: Digest,
    hasher: blake3::Hasher,
    corrupt: bool,
    io_error: Option<io::Error>,
}

impl VerifiedFile {
    fn new(file: File, len: u64, expected: Digest) -> VerifiedFile {
        VerifiedFile {
            file,
            len,
            sent: 0,
            expected,
            hasher: blake3::Hasher::new(),
            corrupt: false,
            io_error: None,
        }
    }

    fn fail_corrupt(&mut self) -> io::Error {
        self.corrupt = true;
        io::Error::other("local blob does not match its digest; upload aborted")
    }

    fn read_local(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.file.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let copy = io::Error::new(e.kind(), e.to_string());
                    self.io_error = Some(e);
                    return Err(copy);
                }
                Ok(n) => return Ok(n),
            }
        }
    }
}

impl Read for VerifiedFile {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let remaining = self.len - self.sent;
        if remaining == 0 || out.is_empty() {
            return Ok(0);
        }
        if remaining > 1 {
            let want = usize::try_from(remaining - 1)
                .unwrap_or(usize::MAX)
                .min(out.len());
            let n = self.read_local(&mut out[..want])?;
            if n == 0 {
                // Shorter than its length said: changed under us.
                return Err(self.fail_corrupt());
            }
            self.hasher.update(&out[..n]);
            self.sent += n as u64;
            return Ok(n);
        }
        // The last byte: read it, make sure nothing follows, check the hash.
        let mut last = [0u8; 2];
        let mut got = 0;
        while got < 2 {
            let n = self.read_local(&mut last[got..])?;
            if n == 0 {
                break;
            }
            got += n;
        }
        if got != 1 {
            return Err(self.fail_corrupt());
        }
        self.hasher.update(&last[..1]);
        if Digest(*self.hasher.finalize().as_bytes()) != self.expected {
            return Err(self.fail_corrupt());
        }
        out[0] = last[0];
        self.sent += 1;
        Ok(1)
    }
}

#[derive(Clone, Copy)]
enum Method {
    Get,
    Head,
}

fn status_attempt<T>(status: u16) -> Attempt<T> {
    match status {
        408 | 429 | 500..=599 => Attempt::Retry(format!("HTTP {status}")),
        401 | 403 => Attempt::GiveUp(format!(
            "HTTP {status}: access denied (check the auth header variable named by auth_header_env)"
        )),
        s => Attempt::GiveUp(format!("unexpected HTTP {s}")),
    }
}

fn classify<T>(e: ureq::Error) -> Attempt<T> {
    match e {
        ureq::Error::Timeout(_)
        | ureq::Error::Io(_)
        | ureq::Error::ConnectionFailed
        | ureq::Error::Protocol(_)
        | ureq::Error::BodyStalled => Attempt::Retry(e.to_string()),
        other => Attempt::GiveUp(other.to_string()),
    }
}
