//! [`Gate`]: the one retry, backoff and give-up policy of every remote
//! transport (the HTTP remote cache's and the gRPC engine's). A request is
//! tried up to `attempts` times while it fails in a retryable way (the
//! delay doubles from `backoff`, with jitter); a failure that is not worth
//! retrying, or the last retryable one, gives the remote up for the rest of
//! the process with one warning; later requests fail at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::stats::RemoteStats;
use super::RemoteError;

/// One attempt's outcome.
#[derive(Debug)]
pub enum Attempt<T> {
    /// It worked.
    Done(T),
    /// Worth trying again (5xx, 429, timeout, connection reset, gRPC
    /// `UNAVAILABLE`), with why.
    Retry(String),
    /// Not worth trying again; the remote is given up.
    GiveUp(String),
    /// A local failure (spool file, local blob): returned as is, not
    /// retried, and the remote is not given up.
    Fail(RemoteError),
}

/// The retry policy and the given-up state of one remote.
#[derive(Debug)]
pub struct Gate {
    display: String,
    attempts: u32,
    backoff: Duration,
    down: AtomicBool,
    stats: Arc<RemoteStats>,
}

impl Gate {
    /// A gate for the remote shown as `display` (credentials hidden).
    pub fn new(display: String, attempts: u32, backoff: Duration, stats: Arc<RemoteStats>) -> Gate {
        Gate {
            display,
            attempts: attempts.max(1),
            backoff,
            down: AtomicBool::new(false),
            stats,
        }
    }

    /// The remote's URL, credentials hidden.
    pub fn display_url(&self) -> &str {
        &self.display
    }

    /// The counters this gate reports into.
    pub fn stats(&self) -> &RemoteStats {
        &self.stats
    }

    /// Whether the remote has been given up.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Give the remote up, warning once.
    pub fn give_up(&self, reason: &str) {
        if !self.down.swap(true, Ordering::SeqCst) {
            self.stats.note_unavailable();
            tracing::warn!(
                remote = %self.display,
                reason,
                "remote cache unavailable; continuing with the local cache only"
            );
        }
    }

    /// The error of a request to a given-up remote.
    pub fn unavailable(&self) -> RemoteError {
        RemoteError::Unavailable {
            url: self.display.clone(),
        }
    }

    /// Run `attempt` under the policy.
    pub fn run<T>(
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
                    tracing::debug!(remote = %self.display, what, attempt = n + 1, reason = %why, "remote request failed; retrying");
                    last = why;
                }
                Attempt::GiveUp(why) => {
                    self.give_up(&format!("{what}: {why}"));
                    return Err(self.unavailable());
                }
                Attempt::Fail(e) => return Err(e),
            }
        }
        self.give_up(&format!(
            "{what}: {last} (after {} attempts)",
            self.attempts
        ));
        Err(self.unavailable())
    }
}

/// `d` scaled by a factor in 0.75..1.25, so retries from parallel
/// transfers do not arrive in step.
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    let frac = f64::from(nanos % 1000) / 1000.0; // 0..1
    d.mul_f64(0.75 + frac * 0.5)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn retries_then_gives_up_once_and_fails_fast_after() {
        let stats = Arc::new(RemoteStats::default());
        let g = Gate::new(
            "grpc://x".into(),
            3,
            Duration::from_millis(1),
            stats.clone(),
        );
        let mut n = 0;
        let r: Result<(), _> = g.run("get", || {
            n += 1;
            Attempt::Retry("reset".into())
        });
        assert!(matches!(r, Err(RemoteError::Unavailable { .. })));
        assert_eq!(n, 3);
        assert!(g.is_down());
        let mut m = 0;
        let r: Result<(), _> = g.run("get", || {
            m += 1;
            Attempt::Done(())
        });
        assert!(r.is_err());
        assert_eq!(m, 0, "a given-up remote is not asked again");
        let s = stats.snapshot();
        assert_eq!((s.retries, s.unavailable), (2, 1));
    }

    #[test]
    fn a_retry_that_succeeds_keeps_the_remote() {
        let g = Gate::new("x".into(), 3, Duration::from_millis(1), Arc::default());
        let mut n = 0;
        let r = g.run("get", || {
            n += 1;
            if n < 2 {
                Attempt::Retry("503".into())
            } else {
                Attempt::Done(7)
            }
        });
        assert_eq!(r.unwrap(), 7);
        assert!(!g.is_down());
    }
}
