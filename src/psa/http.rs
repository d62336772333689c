//! What the ConnectWise and Autotask transports share: the retry policy, how a request may be
//! repeated, the `Retry-After` and backoff waits, and turning a reqwest failure into text that
//! names no credential. Each PSA's own `http.rs` keeps what is particular to it (URLs and
//! discovery, authentication headers, paging, error bodies); nothing here names a PSA's API.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use reqwest::header::HeaderMap;

/// Every transport passes error text through the redactor, so each PSA's client finds it next to
/// the retry policy.
pub(crate) use crate::redact::Redactor;

/// Timeouts and retries for PSA requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Per-request timeout, from connecting to the end of the body.
    pub timeout: Duration,
    /// Most attempts per request (the first one included).
    pub max_attempts: u32,
    /// First backoff delay; doubled each retry, with jitter.
    pub base_delay: Duration,
    /// Longest backoff delay.
    pub max_delay: Duration,
    /// Longest `Retry-After` honoured after a 429.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            timeout: Duration::from_secs(30),
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Exponential backoff with "equal jitter": half the delay fixed, half random.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let delay = exp.min(self.max_delay);
        let half = delay / 2;
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let jitter_nanos = if half.as_nanos() == 0 {
            0
        } else {
            (random as u128 % half.as_nanos()) as u64
        };
        half + Duration::from_nanos(jitter_nanos)
    }
}

/// How a request may be repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Repeat {
    /// A read, or a write that repeating cannot double (a ConnectWise PATCH with `replace`, an
    /// Autotask query POST).
    Idempotent,
    /// A create (POST): only a 429 (the server did not act) is retried here; a failure after
    /// the server may have acted is left to the caller, which checks for the created record
    /// before posting again.
    Once,
}

/// The wait a `Retry-After: <seconds>` header asks for (at most a day; the caller caps it at
/// [`RetryPolicy::max_retry_after`]).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let seconds: f64 = value.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(86_400.0)))
}

/// Names the setting to raise when a request ran out of time.
pub(crate) fn timeout_hint(timeout: Duration, psa: &str) -> String {
    format!(
        " (no complete answer within {} s; psa.{psa}.timeout_seconds sets the limit)",
        timeout.as_secs_f64()
    )
}

/// A reqwest error and its causes. The URL reqwest quotes loses its query, which may carry a
/// credential (Autotask's zone discovery sends the user name there); the caller names the path.
pub(crate) fn error_chain(e: &reqwest::Error) -> String {
    let mut parts = vec![if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        match e.url() {
            Some(url) if url.query().is_some() => {
                let mut shown = url.clone();
                shown.set_query(None);
                e.to_string().replace(url.as_str(), shown.as_str())
            }
            _ => e.to_string(),
        }
    }];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.contains(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::default();
        for attempt in 1..10 {
            let d = p.backoff(attempt);
            assert!(d <= p.max_delay, "{d:?}");
            assert!(d >= (p.base_delay * (1 << (attempt - 1))).min(p.max_delay) / 2);
        }
    }
}
