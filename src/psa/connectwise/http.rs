//! The ConnectWise transport: base URL and codebase discovery, headers, bounded concurrency,
//! `Link` paging, and turning failures into [`PsaError`]s that never carry a credential. Each
//! request goes through the retry loop both PSAs share ([`crate::psa::http`]: timeouts, retries
//! with backoff, `Retry-After`).

use std::collections::HashSet;
use std::sync::Arc;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use tokio::sync::{Mutex, Semaphore};

use super::wire::ErrorBody;
use crate::psa::PsaError;
pub use crate::psa::http::RetryPolicy;
use crate::psa::http::{Call, Vendor, client, decode, host_label};
pub(crate) use crate::psa::http::{Repeat, retry_after};
pub(crate) use crate::redact::Redactor;

/// The codebase used when `/login/companyinfo/{company}` does not say.
pub const DEFAULT_CODEBASE: &str = "v4_6_release/";
/// The API version pinned in `Accept` unless the settings name one.
pub const DEFAULT_API_VERSION: &str = "2025.8";
/// ConnectWise's hard page-size limit.
pub const PAGE_SIZE: &str = "1000";
/// Most pages followed for one listing, a guard against `Link` loops.
const MAX_PAGES: usize = 10_000;
/// How the shared retry loop names ConnectWise.
const VENDOR: Vendor = Vendor {
    name: "ConnectWise",
    key: "connectwise",
};

/// Where a request goes.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// `{host}/login/companyinfo/{company}`.
    CompanyInfo,
    /// A path under `{host}/{codebase}apis/3.0/` and its query.
    Api {
        path: String,
        query: Vec<(&'static str, String)>,
    },
    /// A `Link` URL, already rebased onto the host.
    Absolute(Url),
}

pub(crate) struct Request<'a> {
    pub method: Method,
    pub target: Target,
    pub body: Option<serde_json::Value>,
    pub repeat: Repeat,
    /// The record or listing, for error messages ("addition 5001 on agreement 1001").
    pub what: &'a str,
}

pub(crate) struct Response {
    pub body: Vec<u8>,
    pub next: Option<Url>,
    pub method: Method,
    pub path: String,
}

impl Response {
    pub fn json<T: DeserializeOwned>(&self, redact: &Redactor) -> Result<T, PsaError> {
        decode(&self.body, &self.method, &self.path, redact)
    }
}

pub(crate) struct Transport {
    http: reqwest::Client,
    /// `scheme://host[:port][/path]`, without a trailing slash.
    pub host: Url,
    pub company: String,
    headers: HeaderMap,
    auth: HeaderValue,
    codebase: Mutex<Option<String>>,
    limit: Arc<Semaphore>,
    pub retry: RetryPolicy,
    pub redactor: Redactor,
}

impl Transport {
    pub fn new(
        host: Url,
        company: String,
        headers: HeaderMap,
        auth: HeaderValue,
        concurrency: usize,
        redactor: Redactor,
    ) -> Result<Transport, PsaError> {
        let http = client(&host, crate::config::PsaKind::ConnectWise)?;
        Ok(Transport {
            http,
            host,
            company,
            headers,
            auth,
            codebase: Mutex::new(None),
            limit: Arc::new(Semaphore::new(concurrency.max(1))),
            retry: RetryPolicy::default(),
            redactor,
        })
    }

    fn join(&self, segments: &[&str]) -> Url {
        let mut url = self.host.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            for s in segments {
                path.push(s);
            }
        }
        url
    }

    /// The codebase, discovered on first use.
    pub async fn codebase(&self) -> Result<String, PsaError> {
        let mut cached = self.codebase.lock().await;
        if let Some(cb) = cached.as_ref() {
            return Ok(cb.clone());
        }
        let cb = self.discover().await?;
        *cached = Some(cb.clone());
        Ok(cb)
    }

    /// Discovers the codebase again after a 404, unless another request already did since `seen`.
    /// Returns whether it changed.
    async fn rediscover(&self, seen: &str) -> Result<bool, PsaError> {
        let mut cached = self.codebase.lock().await;
        if cached.as_deref() != Some(seen) {
            return Ok(true);
        }
        let cb = self.discover().await?;
        let changed = cb != seen;
        if changed {
            tracing::info!(old = seen, new = %cb, "ConnectWise codebase changed");
        }
        *cached = Some(cb);
        Ok(changed)
    }

    async fn discover(&self) -> Result<String, PsaError> {
        let request = Request {
            method: Method::GET,
            target: Target::CompanyInfo,
            body: None,
            repeat: Repeat::Idempotent,
            what: "company info",
        };
        match self.execute_inner(&request, "").await {
            Ok(response) => {
                // ConnectWise answers `null` (HTTP 200) for a login company it does not know;
                // falling back to the usual codebase would only fail later as a 401.
                if serde_json::from_slice::<serde_json::Value>(&response.body)
                    .is_ok_and(|v| v.is_null())
                {
                    return Err(PsaError::UnknownCompany {
                        method: response.method.to_string(),
                        path: response.path,
                        company: self.company.clone(),
                        host: host_label(&self.host),
                    });
                }
                let info: Result<super::wire::CompanyInfo, _> =
                    serde_json::from_slice(&response.body);
                match info.ok().and_then(|i| i.codebase) {
                    Some(cb) if !cb.trim().trim_matches('/').is_empty() => {
                        Ok(format!("{}/", cb.trim().trim_matches('/')))
                    }
                    _ => {
                        tracing::warn!(
                            "{} did not report a codebase; using {DEFAULT_CODEBASE}",
                            response.path
                        );
                        Ok(DEFAULT_CODEBASE.into())
                    }
                }
            }
            Err(e @ PsaError::Transport { .. }) => Err(e),
            Err(e) => {
                tracing::warn!("codebase discovery failed ({e}); using {DEFAULT_CODEBASE}");
                Ok(DEFAULT_CODEBASE.into())
            }
        }
    }

    /// The API base, `{host}/{codebase}apis/3.0/`, for messages.
    pub fn base_label(&self, codebase: &str) -> String {
        self.join(&[codebase.trim_end_matches('/'), "apis", "3.0", ""])
            .to_string()
    }

    fn url_for(&self, target: &Target, codebase: &str) -> Url {
        match target {
            Target::CompanyInfo => self.join(&["login", "companyinfo", &self.company]),
            Target::Api { path, query } => {
                let mut segments = vec![codebase.trim_end_matches('/'), "apis", "3.0"];
                segments.extend(path.split('/').filter(|s| !s.is_empty()));
                let mut url = self.join(&segments);
                if !query.is_empty() {
                    let q = query
                        .iter()
                        .map(|(k, v)| format!("{k}={}", encode_query_value(v)))
                        .collect::<Vec<_>>()
                        .join("&");
                    url.set_query(Some(&q));
                }
                url
            }
            Target::Absolute(url) => url.clone(),
        }
    }

    /// Sends a request with retries; on a 404 from the API, rediscovers the codebase once.
    pub async fn execute(&self, request: &Request<'_>) -> Result<Response, PsaError> {
        let codebase = match request.target {
            Target::CompanyInfo => String::new(),
            _ => self.codebase().await?,
        };
        match self.execute_inner(request, &codebase).await {
            Err(PsaError::NotFound { .. })
                if matches!(request.target, Target::Api { .. })
                    && self.rediscover(&codebase).await? =>
            {
                let codebase = self.codebase().await?;
                self.execute_inner(request, &codebase).await
            }
            other => other,
        }
    }

    async fn execute_inner(
        &self,
        request: &Request<'_>,
        codebase: &str,
    ) -> Result<Response, PsaError> {
        let url = self.url_for(&request.target, codebase);
        let method = request.method.to_string();
        let path = url.path().to_string();
        let call = Call {
            vendor: VENDOR,
            retry: &self.retry,
            redactor: &self.redactor,
            method: &method,
            path: &path,
            host: &host_label(&self.host),
            repeat: request.repeat,
        };
        let build = || {
            let mut builder = self
                .http
                .request(request.method.clone(), url.clone())
                .headers(self.headers.clone());
            if !matches!(request.target, Target::CompanyInfo) {
                builder = builder.header(reqwest::header::AUTHORIZATION, self.auth.clone());
            }
            if let Some(body) = &request.body {
                builder = builder
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.to_string());
            }
            builder
        };
        let answer = call.send(&self.limit, build, |_| true).await?;
        if answer.status.is_success() {
            let next = answer
                .headers
                .get_all(reqwest::header::LINK)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(next_link)
                .and_then(|link| Self::rebase(&self.host, &url, &link));
            return Ok(Response {
                body: answer.body,
                next,
                method: request.method.clone(),
                path,
            });
        }
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            return Err(PsaError::RateLimited {
                method,
                path,
                attempts: answer.attempts,
            });
        }
        Err(self.status_error(
            request,
            answer.status,
            &answer.body,
            method,
            path,
            codebase,
            answer.attempts,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn status_error(
        &self,
        request: &Request<'_>,
        status: StatusCode,
        body: &[u8],
        method: String,
        path: String,
        codebase: &str,
        attempts: u32,
    ) -> PsaError {
        let message = Self::error_message(&self.redactor, body);
        let detail = if body.iter().all(u8::is_ascii_whitespace) {
            String::new()
        } else {
            format!(" — ConnectWise said: {message}")
        };
        match status {
            StatusCode::UNAUTHORIZED => PsaError::Unauthorized {
                method,
                path,
                company: self.company.clone(),
                detail,
            },
            StatusCode::FORBIDDEN => PsaError::Forbidden {
                method,
                path,
                action: if request.method == Method::GET {
                    format!("read {}", request.what)
                } else {
                    format!("change {}", request.what)
                },
                detail,
            },
            StatusCode::NOT_FOUND => PsaError::NotFound {
                method,
                path,
                what: request.what.to_string(),
                base: if codebase.is_empty() {
                    self.host.to_string()
                } else {
                    self.base_label(codebase)
                },
            },
            s if s.is_server_error() => PsaError::Server {
                method,
                path,
                status: s.as_u16(),
                attempts,
                message,
            },
            s => PsaError::Rejected {
                method,
                path,
                status: s.as_u16(),
                message,
            },
        }
    }

    /// `message` and each `errors[].message` (with field) from a ConnectWise error body, or an
    /// excerpt of the body. Always redacted.
    pub(crate) fn error_message(redactor: &Redactor, body: &[u8]) -> String {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(parsed) if parsed.message.is_some() || !parsed.errors.is_empty() => {
                let mut parts = Vec::new();
                if let Some(m) = parsed.message {
                    parts.push(m);
                }
                for e in parsed.errors {
                    let text = match (e.field, e.message) {
                        (Some(f), Some(m)) => format!("{f}: {m}"),
                        (None, Some(m)) => m,
                        (Some(f), None) => format!("{f}: {}", e.code.unwrap_or_default()),
                        (None, None) => e.code.unwrap_or_default(),
                    };
                    if !text.is_empty() {
                        parts.push(text);
                    }
                }
                redactor.redact(&parts.join("; "))
            }
            _ => redactor.excerpt(body),
        }
    }

    /// A `Link` target on our own host. A link to another origin is rebased (path and query) so
    /// the credentials never leave for a host the settings do not name.
    /// `host` is the configured host.
    pub(crate) fn rebase(host: &Url, current: &Url, link: &str) -> Option<Url> {
        let parsed = current.join(link).ok()?;
        if parsed.origin() == host.origin() {
            return Some(parsed);
        }
        let mut url = host.clone();
        url.set_path(parsed.path());
        url.set_query(parsed.query());
        tracing::debug!(link, "rebased a paging link onto the configured host");
        Some(url)
    }

    /// GETs every page of a listing, following `Link: <…>; rel="next"`.
    pub async fn list_all<T: DeserializeOwned>(
        &self,
        path: String,
        query: Vec<(&'static str, String)>,
        what: &str,
    ) -> Result<Vec<T>, PsaError> {
        let mut target = Target::Api { path, query };
        let mut items = Vec::new();
        let mut seen = HashSet::new();
        for _ in 0..MAX_PAGES {
            let response = self
                .execute(&Request {
                    method: Method::GET,
                    target,
                    body: None,
                    repeat: Repeat::Idempotent,
                    what,
                })
                .await?;
            let page: Vec<T> = response.json(&self.redactor)?;
            let empty = page.is_empty();
            items.extend(page);
            match response.next {
                Some(next) if !empty && seen.insert(next.to_string()) => {
                    target = Target::Absolute(next);
                }
                _ => return Ok(items),
            }
        }
        Ok(items)
    }

    pub async fn send_json<T: DeserializeOwned>(
        &self,
        request: Request<'_>,
    ) -> Result<T, PsaError> {
        let response = self.execute(&request).await?;
        response.json(&self.redactor)
    }
}

/// The URL of the `rel="next"` entry in a `Link` header value.
pub(crate) fn next_link(header: &str) -> Option<String> {
    let mut rest = header;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        let close = after.find('>')?;
        let url = &after[..close];
        let params_end = after[close + 1..]
            .find('<')
            .map_or(after.len(), |i| close + 1 + i);
        let params = &after[close + 1..params_end];
        let is_next = params.split(';').any(|p| {
            let p = p.trim().trim_end_matches(',').trim();
            p.strip_prefix("rel=")
                .map(|v| v.trim_matches('"').split_whitespace().any(|r| r == "next"))
                .unwrap_or(false)
        });
        if is_next {
            return Some(url.trim().to_string());
        }
        rest = &after[params_end..];
    }
    None
}

/// Percent-encodes a query value, leaving only RFC 3986 unreserved characters (so a space is
/// `%20`, never `+`).
pub(crate) fn encode_query_value(value: &str) -> String {
    crate::redact::percent_encode(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_next_link_among_others() {
        let h = r#"<https://h/x?conditions=id in (1,2)&page=2>; rel="next", <https://h/x?page=9>; rel="last""#;
        assert_eq!(
            next_link(h).as_deref(),
            Some("https://h/x?conditions=id in (1,2)&page=2")
        );
        assert_eq!(
            next_link(r#"<https://h/x?page=1>; rel="first", <https://h/x?page=3>; rel=next"#)
                .as_deref(),
            Some("https://h/x?page=3")
        );
        assert_eq!(next_link(r#"<https://h/x?page=9>; rel="last""#), None);
        assert_eq!(next_link(""), None);
    }

    #[test]
    fn error_bodies_with_null_errors_decode() {
        let redactor = Redactor::new(Vec::new());
        let fixture = |name: &str| {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/connectwise")
                .join(name);
            std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        };
        assert_eq!(
            Transport::error_message(&redactor, &fixture("error-not-found-errors-null.json")),
            "Agreement recId 4242 not found."
        );
        assert_eq!(
            Transport::error_message(&redactor, &fixture("error-invalid-object.json")),
            "addition object is invalid; billCustomer: billCustomer is required"
        );
    }

    #[test]
    fn query_values_are_fully_encoded() {
        assert_eq!(
            encode_query_value(r#"identifier in ("A b","C")"#),
            "identifier%20in%20%28%22A%20b%22%2C%22C%22%29"
        );
    }

    #[test]
    fn paging_links_never_leave_the_configured_host() {
        let host = Url::parse("https://api-na.myconnectwise.net").unwrap();
        let t = Transport::new(
            host.clone(),
            "c".into(),
            HeaderMap::new(),
            HeaderValue::from_static("Basic x"),
            1,
            Redactor::new(Vec::new()),
        )
        .unwrap();
        let current = host.join("/v4_6_release/apis/3.0/x?page=1").unwrap();
        assert_eq!(
            Transport::rebase(
                &t.host,
                &current,
                "https://api-na.myconnectwise.net/v4_6_release/apis/3.0/x?page=2"
            )
            .unwrap()
            .as_str(),
            "https://api-na.myconnectwise.net/v4_6_release/apis/3.0/x?page=2"
        );
        assert_eq!(
            Transport::rebase(
                &t.host,
                &current,
                "https://evil.example/v4_6_release/apis/3.0/x?page=3"
            )
            .unwrap()
            .as_str(),
            "https://api-na.myconnectwise.net/v4_6_release/apis/3.0/x?page=3"
        );
        assert_eq!(
            Transport::rebase(&t.host, &current, "/v4_6_release/apis/3.0/x?page=4")
                .unwrap()
                .as_str(),
            "https://api-na.myconnectwise.net/v4_6_release/apis/3.0/x?page=4"
        );
    }
}
