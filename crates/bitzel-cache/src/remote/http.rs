//! The HTTP transport: `GET`/`HEAD`/`PUT` of `<base>/ac/<hex>` and
//! `<base>/cas/<hex>` with retries, backoff, timeouts, and the switch to
//! local-only when the server cannot be reached.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::config::{AuthHeader, RemoteConfig};
use super::stats::RemoteStats;
use super::RemoteError;

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

/// One attempt's outcome.
enum Attempt<T> {
    Done(T),
    /// Worth trying again (5xx, 429, timeout, connection reset), with why.
    Retry(String),
    /// Not worth trying again; the remote is given up.
    GiveUp(String),
}

/// A blocking HTTP client for one remote cache. Shared by reference between
/// the threads of the transfer pool.
pub struct Transport {
    agent: ureq::Agent,
    base: String,
    display: String,
    auth: Option<AuthHeader>,
    attempts: u32,
    backoff: Duration,
    down: AtomicBool,
    stats: Arc<RemoteStats>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("url", &self.display)
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
            display: super::config::redact_url(&config.base()),
            auth: config.auth.clone(),
            attempts: config.attempts.max(1),
            backoff: config.backoff,
            down: AtomicBool::new(false),
            stats,
        }
    }

    /// Whether the remote has been given up (the build continues local-only).
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// The base URL, credentials hidden.
    pub fn display_url(&self) -> &str {
        &self.display
    }

    fn url(&self, ns: Namespace, hex: &str) -> String {
        format!("{}/{}/{}", self.base, ns.dir(), hex)
    }

    /// Give the remote up, warning once.
    pub(crate) fn give_up(&self, reason: &str) {
        if !self.down.swap(true, Ordering::SeqCst) {
            self.stats.note_unavailable();
            tracing::warn!(
                remote = %self.display,
                reason,
                "remote cache unavailable; continuing with the local cache only"
            );
        }
    }

    fn unavailable(&self) -> RemoteError {
        RemoteError::Unavailable {
            url: self.display.clone(),
        }
    }

    fn run<T>(
        &self,
        what: &str,
        mut attempt: impl FnMut() -> Attempt<T>,
    ) -> Result<T, RemoteError> {
        let mut delay = self.backoff;
        let mut last = String::new();
        for n in 0..self.attempts {
            if self.is_down() {
                return Err(self.unavailable());
            }
            if n > 0 {
                self.stats.note_retry();
                std::thread::sleep(jitter(delay));
                delay = delay.saturating_mul(2);
            }
            match attempt() {
                Attempt::Done(v) => return Ok(v),
                Attempt::Retry(why) => {
                    tracing::debug!(remote = %self.display, what, attempt = n + 1, reason = %why, "remote cache request failed; retrying");
                    last = why;
                }
                Attempt::GiveUp(why) => {
                    self.give_up(&format!("{what}: {why}"));
                    return Err(self.unavailable());
                }
            }
        }
        self.give_up(&format!(
            "{what}: {last} (after {} attempts)",
            self.attempts
        ));
        Err(self.unavailable())
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
                        tracing::warn!(remote = %self.display, object = %what, limit, got = n, "remote object is larger than expected; ignoring it");
                        Attempt::Done(None)
                    }
                    Err(e) => classify(e),
                },
                404 => Attempt::Done(None),
                s => status_attempt(s),
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

/// `d` ± up to 25%, from the clock's low bits (no RNG dependency; only spreads
/// retries of parallel transfers apart).
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    let frac = f64::from(nanos % 1000) / 1000.0; // 0..1
    d.mul_f64(0.75 + frac * 0.5)
}
