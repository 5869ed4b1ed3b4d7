//! Retries of idempotent calls: jittered exponential backoff, a bounded number of attempts, and
//! a retry budget shared by a client's clones (gRPC's retry throttling, proposal A6: each
//! retryable failure spends a token, each success earns a tenth of one, and retries stop while
//! fewer than half the tokens are left), so an outage does not multiply the load.
//!
//! Idempotent here means repeating the call cannot do twice what it does once: reads, an offer
//! (its interaction id is the key), a create with a `request_id`, a select or an unbind. Accept,
//! close, update, delete, link and unlink, and a create without a request id, are never retried.
//!
//! Imports only `error` of the crate: the policy and the budget are plain values that the
//! client hands in.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tonic::Code;

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

/// Runs `attempt` once, and again under `policy` while it fails in a way a repetition can fix
/// (unavailable, overloaded, a concurrent change, a deadline), the call is idempotent, and
/// `throttle` still allows a retry.
pub(crate) async fn run<T, F, Fut>(
    policy: &RetryPolicy,
    throttle: &RetryThrottle,
    idempotent: Idempotent,
    mut attempt: F,
) -> Result<T, SdkError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, tonic::Status>>,
{
    let mut ceiling = policy.initial_backoff;
    let mut attempts = 1;
    loop {
        match attempt().await {
            Ok(v) => {
                throttle.success();
                return Ok(v);
            }
            Err(status) => {
                let e = SdkError::from(status);
                let retryable = idempotent == Idempotent::Yes
                    && (e.is_retryable() || e.code() == Code::DeadlineExceeded);
                if !retryable || attempts >= policy.max_attempts {
                    return Err(e);
                }
                if !throttle.failure() {
                    return Err(e);
                }
                let wait = e
                    .detail()
                    .and_then(|d| d.retry_after)
                    .map_or_else(|| jittered(ceiling), |after| after.min(policy.max_backoff));
                tokio::time::sleep(wait).await;
                ceiling = (ceiling * 2).min(policy.max_backoff);
                attempts += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn quick(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
        }
    }

    #[tokio::test]
    async fn an_idempotent_call_is_retried_until_the_attempts_run_out() {
        let calls = Cell::new(0);
        let result: Result<(), SdkError> = run(
            &quick(3),
            &RetryThrottle::default(),
            Idempotent::Yes,
            || {
                calls.set(calls.get() + 1);
                async { Err(tonic::Status::unavailable("down")) }
            },
        )
        .await;
        assert_eq!(result.err().map(|e| e.code()), Some(Code::Unavailable));
        assert_eq!(calls.get(), 3);
    }

    #[tokio::test]
    async fn a_retry_that_succeeds_returns_the_value() {
        let calls = Cell::new(0);
        let result = run(
            &quick(3),
            &RetryThrottle::default(),
            Idempotent::Yes,
            || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move {
                    if n < 2 {
                        Err(tonic::Status::unavailable("down"))
                    } else {
                        Ok(n)
                    }
                }
            },
        )
        .await;
        assert_eq!(result.ok(), Some(2));
    }

    #[tokio::test]
    async fn a_call_that_is_not_idempotent_runs_once() {
        let calls = Cell::new(0);
        let result: Result<(), SdkError> =
            run(&quick(3), &RetryThrottle::default(), Idempotent::No, || {
                calls.set(calls.get() + 1);
                async { Err(tonic::Status::unavailable("down")) }
            })
            .await;
        assert_eq!(result.err().map(|e| e.code()), Some(Code::Unavailable));
        assert_eq!(calls.get(), 1);
    }

    #[tokio::test]
    async fn a_failure_a_repetition_cannot_fix_is_not_retried() {
        let calls = Cell::new(0);
        let result: Result<(), SdkError> = run(
            &quick(3),
            &RetryThrottle::default(),
            Idempotent::Yes,
            || {
                calls.set(calls.get() + 1);
                async { Err(tonic::Status::not_found("no such contact")) }
            },
        )
        .await;
        assert_eq!(result.err().map(|e| e.code()), Some(Code::NotFound));
        assert_eq!(calls.get(), 1);
    }
}
