//! What the ConnectWise and Autotask transports share: the retry policy, how a request may be
//! repeated, and the loop that sends one request until its answer is final — retrying timeouts,
//! 429s (after `Retry-After`) and 5xx answers with backoff, and turning a reqwest failure into
//! text that names no credential. Each PSA's own `http.rs` keeps what is particular to it (URLs
//! and discovery, authentication headers, concurrency limits, paging, what an error body says);
//! nothing here names a PSA's API.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use super::PsaError;

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

/// The HTTP client a PSA transport sends through. reqwest is built without a TLS provider, so
/// rustls gets ring here (once; a later call finds it installed). `site` is the setting the
/// error blames.
pub(crate) fn client(
    site: &Url,
    vendor: crate::config::PsaKind,
) -> Result<reqwest::Client, PsaError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(concat!("unitsync/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| PsaError::InvalidSite {
            vendor,
            site: site.to_string(),
            reason: format!("cannot build an HTTP client: {e}"),
        })
}

/// `host[:port]`, how a transport failure names where the request went.
pub(crate) fn host_label(url: &Url) -> String {
    match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or("?")),
        None => url.host_str().unwrap_or("?").to_string(),
    }
}

/// Decodes a successful answer's body; a failure names the request and quotes the body.
pub(crate) fn decode<T: DeserializeOwned>(
    body: &[u8],
    method: &Method,
    path: &str,
    redact: &Redactor,
) -> Result<T, PsaError> {
    serde_json::from_slice(body).map_err(|e| PsaError::Decode {
        method: method.to_string(),
        path: path.to_string(),
        // serde's message may quote the body, so it is redacted too.
        message: format!(
            "{} in {}",
            redact.redact(&e.to_string()),
            redact.excerpt(body)
        ),
    })
}

/// A PSA as the retry loop names it: in log lines, and in the setting a timeout points to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Vendor {
    /// "ConnectWise", for log lines.
    pub name: &'static str,
    /// Its key under `psa:` in the settings (`psa.connectwise.timeout_seconds`).
    pub key: &'static str,
}

/// One request as the retry loop sees it; the PSA's transport fills it in.
pub(crate) struct Call<'a> {
    pub vendor: Vendor,
    pub retry: &'a RetryPolicy,
    pub redactor: &'a Redactor,
    /// The method and path that name the request in logs and errors; never the query, which may
    /// carry a credential.
    pub method: &'a str,
    pub path: &'a str,
    /// The host a transport failure names.
    pub host: &'a str,
    pub repeat: Repeat,
}

/// The answer that ended the retries: a success, or a failure retrying did not or may not fix.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// Attempts made, this one included.
    pub attempts: u32,
}

impl Call<'_> {
    /// Sends the request `build` makes (once per attempt, with the policy's timeout), holding a
    /// permit of `limit` while it is in flight, until its answer is final:
    ///
    /// - a failure without an answer (timeout, connection) is retried with backoff if the
    ///   request is [`Repeat::Idempotent`], and is [`PsaError::Transport`] once it is not;
    /// - a 429 is retried whatever [`Repeat`] says, as the server did not act, after the
    ///   `Retry-After` it asks for (capped) or else backoff;
    /// - a 5xx is retried with backoff if the request is idempotent and `retryable` says so
    ///   (a PSA may know a 5xx that is a refusal, where retrying only spends its budget).
    ///
    /// Every other answer, and the last one once the attempts run out, is returned: what it
    /// means (a page, a rejection, an error body) is the PSA's to say.
    pub async fn send(
        &self,
        limit: &Semaphore,
        build: impl Fn() -> RequestBuilder,
        retryable: impl Fn(&Answer) -> bool,
    ) -> Result<Answer, PsaError> {
        let (method, path) = (self.method, self.path);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let builder = build().timeout(self.retry.timeout);
            let outcome = {
                let _permit = limit.acquire().await.expect("semaphore never closed");
                match builder.send().await {
                    Ok(response) => {
                        let status = response.status();
                        let headers = response.headers().clone();
                        response.bytes().await.map(|body| Answer {
                            status,
                            headers,
                            body: body.to_vec(),
                            attempts: attempt,
                        })
                    }
                    Err(e) => Err(e),
                }
            };
            let answer = match outcome {
                Ok(answer) => {
                    crate::progress::request_done();
                    answer
                }
                Err(e) => {
                    let mut message = self.redactor.redact(&error_chain(&e));
                    if e.is_timeout() {
                        message.push_str(&timeout_hint(self.retry.timeout, self.vendor.key));
                    }
                    if self.repeat == Repeat::Idempotent
                        && attempt < self.retry.max_attempts
                        && !e.is_builder()
                    {
                        let delay = self.retry.backoff(attempt);
                        tracing::debug!(%method, %path, attempt, ?delay, "{message}; retrying");
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    return Err(PsaError::Transport {
                        method: method.to_string(),
                        path: path.to_string(),
                        host: self.host.to_string(),
                        attempts: attempt,
                        message,
                    });
                }
            };
            let more = attempt < self.retry.max_attempts;
            if answer.status == StatusCode::TOO_MANY_REQUESTS && more {
                let delay = retry_after(&answer.headers)
                    .map(|d| d.min(self.retry.max_retry_after))
                    .unwrap_or_else(|| self.retry.backoff(attempt));
                let vendor = self.vendor.name;
                tracing::info!(%method, %path, ?delay, "{vendor} asked to slow down (429)");
                tokio::time::sleep(delay).await;
                continue;
            }
            if answer.status.is_server_error()
                && self.repeat == Repeat::Idempotent
                && more
                && retryable(&answer)
            {
                let delay = self.retry.backoff(attempt);
                let status = answer.status.as_u16();
                tracing::debug!(%method, %path, status, attempt, ?delay, "retrying");
                tokio::time::sleep(delay).await;
                continue;
            }
            return Ok(answer);
        }
    }
}

/// The wait a `Retry-After: <seconds>` header asks for (at most a day; the caller caps it at
/// [`RetryPolicy::max_retry_after`]).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let seconds: f64 = value.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(86_400.0)))
}

/// Names the setting to raise when a request ran out of time.
fn timeout_hint(timeout: Duration, psa: &str) -> String {
    format!(
        " (no complete answer within {} s; psa.{psa}.timeout_seconds sets the limit)",
        timeout.as_secs_f64()
    )
}

/// A reqwest error and its causes. The URL reqwest quotes loses its query, which may carry a
/// credential (Autotask's zone discovery sends the user name there); the caller names the path.
fn error_chain(e: &reqwest::Error) -> String {
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
