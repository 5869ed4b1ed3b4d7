//! Retries of idempotent calls: jittered exponential backoff, a bounded number of attempts, and
//! a retry budget shared by a client's clones (gRPC's retry throttling, proposal A6: each
//! retryable failure spends a token, each success earns a tenth of one, and retries stop while
//! fewer than half the tokens are left), so an outage does not multiply the load.
//!
//! Idempotent here means repeating the call cannot do twice what it does once: reads, an offer
//! (its interaction id is the key), a create with a `request_id`, a select or an unbind. Accept,
//! close, update, delete, link and unlink, and a create without a request id, are never retried.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tonic::Code;

use crate::client::Client;
use crate::error::SdkError;

/// How idempotent calls are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1: no retries).
    pub max_attempts: u32,
    /// The first wait's ceiling; each wait is drawn between zero and the ceiling ("full
    /// jitter"), which doubles after each attempt.
    pub initial_backoff: Duration,
    /// The largest ceiling.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// No retries.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }
}

/// The retry budget of a client (shared by its clones).
#[derive(Debug)]
pub(crate) struct RetryThrottle {
    tokens: Mutex<f64>,
}

const MAX_TOKENS: f64 = 10.0;
const TOKEN_RATIO: f64 = 0.1;

impl Default for RetryThrottle {
    fn default() -> Self {
        Self {
            tokens: Mutex::new(MAX_TOKENS),
        }
    }
}

impl RetryThrottle {
    fn with<T>(&self, f: impl FnOnce(&mut f64) -> T) -> T {
        let mut t = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut t)
    }

    fn success(&self) {
        self.with(|t| *t = (*t + TOKEN_RATIO).min(MAX_TOKENS));
    }

    /// Spends a token; true when a retry is still allowed.
    fn failure(&self) -> bool {
        self.with(|t| {
            *t = (*t - 1.0).max(0.0);
            *t > MAX_TOKENS / 2.0
        })
    }
}

/// Whether a call may be repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Idempotent {
    /// Repeating it cannot do twice what it does once.
    Yes,
    /// It must not be repeated blindly.
    No,
}

/// A random wait between zero and `ceiling` (full jitter).
pub(crate) fn jittered(ceiling: Duration) -> Duration {
    let ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(fastrand::u64(0..=ms))
}

impl Client {
    /// Runs `attempt` once, and again under the client's policy while it fails in a way a
    /// repetition can fix (unavailable, overloaded, a concurrent change, a deadline) and the
    /// call is idempotent.
    pub(crate) async fn run<T, F, Fut>(
        &self,
        idempotent: Idempotent,
        mut attempt: F,
    ) -> Result<T, SdkError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let mut ceiling = self.retry.initial_backoff;
        let mut attempts = 1;
        loop {
            match attempt().await {
                Ok(v) => {
                    self.throttle.success();
                    return Ok(v);
                }
                Err(status) => {
                    let e = SdkError::from(status);
                    let retryable = idempotent == Idempotent::Yes
                        && (e.is_retryable() || e.code() == Code::DeadlineExceeded);
                    if !retryable || attempts >= self.retry.max_attempts {
                        return Err(e);
                    }
                    if !self.throttle.failure() {
                        return Err(e);
                    }
                    let wait = e.detail().and_then(|d| d.retry_after).map_or_else(
                        || jittered(ceiling),
                        |after| after.min(self.retry.max_backoff),
                    );
                    tokio::time::sleep(wait).await;
                    ceiling = (ceiling * 2).min(self.retry.max_backoff);
                    attempts += 1;
                }
            }
        }
    }
}
