//! The Autotask transport: zone discovery, the three authentication headers, a concurrency limit
//! per entity endpoint, `nextPageUrl` paging (re-POSTing the query body), the retry loop both
//! PSAs share ([`crate::psa::http`]: timeouts, backoff, `Retry-After`), and turning failures
//! (including `{"errors":[…]}` bodies sent with HTTP 200, and `{"Message":…}` bodies) into
//! [`PsaError`]s that never carry a credential. A 500 from zone discovery, or one whose body says
//! the integration code is invalid or a permission is missing, is Autotask refusing the
//! credentials, not failing: it is not retried, and the error names what to check.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use tokio::sync::{Mutex, OnceCell, Semaphore};

use super::wire::{ErrorBody, QueryPage, QueryRequest, ZoneInformation};
use super::{ENV_INTEGRATION_CODE, ENV_SECRET, ENV_USERNAME};
use crate::psa::PsaError;
pub(crate) use crate::psa::http::Repeat;
use crate::psa::http::{Answer, Call, RetryPolicy, Vendor, client, decode, host_label};
use crate::redact::Redactor;

/// Autotask's page-size limit for queries.
pub const MAX_RECORDS: u32 = 500;
/// At most this many requests are in flight per entity endpoint (Autotask's thread limit).
pub const PER_ENTITY_CONCURRENCY: usize = 3;
/// Most pages followed for one query, a guard against `nextPageUrl` loops.
const MAX_PAGES: usize = 10_000;
/// Where zone discovery starts unless the settings name the zone.
pub const DEFAULT_DISCOVERY: &str = "https://webservices.autotask.net/atservicesrest/";
/// How the shared retry loop names Autotask.
const VENDOR: Vendor = Vendor {
    name: "Autotask",
    key: "autotask",
};

pub(crate) struct Request<'a> {
    pub method: Method,
    /// The entity endpoint the request counts against (`Contracts`, `ContractServiceUnits`).
    pub entity: &'a str,
    /// A path under the API base (`Contracts/query`), or an absolute URL (a `nextPageUrl`).
    pub target: Target,
    pub body: Option<serde_json::Value>,
    pub repeat: Repeat,
    /// The record or listing, for error messages.
    pub what: &'a str,
}

#[derive(Debug, Clone)]
pub(crate) enum Target {
    Api(String),
    Absolute(Url),
}

pub(crate) struct Transport {
    http: reqwest::Client,
    /// Where the zone is discovered (`…/atservicesrest/`), unless `fixed_base` is set.
    discovery: Url,
    /// The API base (`…/atservicesrest/v1.0/`) when the settings name it.
    fixed_base: Option<Url>,
    base: OnceCell<Url>,
    /// Held while the zone is discovered; keeps a refusal (an unknown user) so that the requests
    /// waiting for the zone report it instead of asking again.
    refused: Mutex<Option<PsaError>>,
    username: String,
    headers: HeaderMap,
    limits: Mutex<HashMap<String, Arc<Semaphore>>>,
    pub retry: RetryPolicy,
    pub redactor: Redactor,
}

impl Transport {
    pub fn new(
        discovery: Url,
        fixed_base: Option<Url>,
        username: String,
        headers: HeaderMap,
        retry: RetryPolicy,
        redactor: Redactor,
    ) -> Result<Transport, PsaError> {
        let http = client(&discovery, crate::config::PsaKind::Autotask)?;
        Ok(Transport {
            http,
            discovery,
            fixed_base,
            base: OnceCell::new(),
            refused: Mutex::new(None),
            username,
            headers,
            limits: Mutex::new(HashMap::new()),
            retry,
            redactor,
        })
    }

    /// The API base, `https://webservicesN.autotask.net/atservicesrest/v1.0/`, discovered once.
    pub async fn base(&self) -> Result<Url, PsaError> {
        if let Some(base) = &self.fixed_base {
            return Ok(base.clone());
        }
        if let Some(base) = self.base.get() {
            return Ok(base.clone());
        }
        let mut refused = self.refused.lock().await;
        if let Some(base) = self.base.get() {
            return Ok(base.clone());
        }
        if let Some(e) = refused.as_ref() {
            return Err(e.clone());
        }
        match self.discover().await {
            Ok(base) => {
                let _ = self.base.set(base.clone());
                Ok(base)
            }
            Err(e) => {
                if !e.is_transient() {
                    *refused = Some(e.clone());
                }
                Err(e)
            }
        }
    }

    async fn discover(&self) -> Result<Url, PsaError> {
        let mut url = join(&self.discovery, &["v1.0", "zoneInformation"]);
        url.query_pairs_mut().append_pair("user", &self.username);
        let response = self
            .send_to(
                &Request {
                    method: Method::GET,
                    entity: "zoneInformation",
                    target: Target::Absolute(url.clone()),
                    body: None,
                    repeat: Repeat::Idempotent,
                    what: "the zone of the API user",
                },
                url,
                true,
            )
            .await?;
        let zone: ZoneInformation = response.json(&self.redactor)?;
        let zone_url = zone
            .url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| PsaError::Autotask {
                method: "GET".into(),
                path: response.path.clone(),
                status: 200,
                message: "zone discovery returned no zone URL; check UNITSYNC_AT_USERNAME (the API user's user name) or set `url` in unitsync.yaml".into(),
            })?;
        let parsed = Url::parse(zone_url).map_err(|e| PsaError::Autotask {
            method: "GET".into(),
            path: response.path.clone(),
            status: 200,
            message: format!("zone discovery returned an invalid URL {zone_url:?}: {e}"),
        })?;
        let base = api_base(&parsed);
        tracing::debug!(zone = zone.zone_name.as_deref().unwrap_or("?"), %base, "Autotask zone");
        Ok(base)
    }

    async fn limit(&self, entity: &str) -> Arc<Semaphore> {
        let mut limits = self.limits.lock().await;
        Arc::clone(
            limits
                .entry(entity.to_ascii_lowercase())
                .or_insert_with(|| Arc::new(Semaphore::new(PER_ENTITY_CONCURRENCY))),
        )
    }

    pub async fn execute(&self, request: &Request<'_>) -> Result<Response, PsaError> {
        let url = match &request.target {
            Target::Api(path) => {
                let base = self.base().await?;
                join(&base, &path.split('/').collect::<Vec<_>>())
            }
            Target::Absolute(url) => url.clone(),
        };
        self.send_to(request, url, false).await
    }

    async fn send_to(
        &self,
        request: &Request<'_>,
        url: Url,
        anonymous: bool,
    ) -> Result<Response, PsaError> {
        let method = request.method.to_string();
        let path = url.path().to_string();
        let host = host_label(&url);
        let limit = self.limit(request.entity).await;
        let call = Call {
            vendor: VENDOR,
            retry: &self.retry,
            redactor: &self.redactor,
            method: &method,
            path: &path,
            host: &host,
            repeat: request.repeat,
        };
        let build = || {
            let mut builder = self
                .http
                .request(request.method.clone(), url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json");
            if !anonymous {
                builder = builder.headers(self.headers.clone());
            }
            if let Some(body) = &request.body {
                builder = builder.body(body.to_string());
            }
            builder
        };
        // Zone discovery answers 500 for a blank or unknown user, and any endpoint answers 500
        // for a wrong integration code or a missing permission. Retrying cannot help and would
        // spend the hourly budget every integration on the database shares.
        let retryable =
            |answer: &Answer| Refusal::of(answer.status, &answer.body, anonymous).is_none();
        let Answer {
            status,
            body,
            attempts,
            ..
        } = call.send(&limit, build, retryable).await?;
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(PsaError::Autotask {
                method,
                path,
                status: 429,
                message: format!(
                    "Autotask kept answering 429 Too Many Requests after {attempts} attempts; its 10,000 requests per hour are shared by every integration on the database — try again later"
                ),
            });
        }
        if let Some(refusal) = Refusal::of(status, &body, anonymous) {
            let said = self.said(&body);
            return Err(PsaError::Autotask {
                method,
                path,
                status: status.as_u16(),
                message: refusal.message(request, &said),
            });
        }
        let errors = Self::errors_in(&self.redactor, &body);
        if status.is_success() && errors.is_none() {
            return Ok(Response {
                body,
                method: request.method.clone(),
                path,
            });
        }
        Err(self.status_error(request, status, &body, errors, method, path, attempts))
    }

    /// The messages of a `{"errors":[…]}` body, if it has any.
    pub(crate) fn errors_in(redactor: &Redactor, body: &[u8]) -> Option<String> {
        let parsed: ErrorBody = serde_json::from_slice(body).ok()?;
        let parts: Vec<String> = parsed
            .errors?
            .into_iter()
            .filter_map(|e| match e {
                serde_json::Value::String(s) => Some(s),
                serde_json::Value::Object(o) => {
                    let message = o.get("message").and_then(|m| m.as_str());
                    let field = o.get("field").and_then(|m| m.as_str());
                    match (field, message) {
                        (Some(f), Some(m)) => Some(format!("{f}: {m}")),
                        (None, Some(m)) => Some(m.to_string()),
                        _ => Some(serde_json::Value::Object(o).to_string()),
                    }
                }
                serde_json::Value::Null => None,
                other => Some(other.to_string()),
            })
            .filter(|s| !s.trim().is_empty())
            .collect();
        (!parts.is_empty()).then(|| redactor.redact(&parts.join("; ")))
    }

    /// What an error body says: its `errors`, else its `Message`, else an excerpt (redacted).
    fn said(&self, body: &[u8]) -> String {
        Self::errors_in(&self.redactor, body)
            .or_else(|| Self::message_in(&self.redactor, body))
            .unwrap_or_else(|| self.redactor.excerpt(body))
    }

    /// The `Message` of a `{"Message":"…"}` body, if it has one.
    pub(crate) fn message_in(redactor: &Redactor, body: &[u8]) -> Option<String> {
        let parsed: ErrorBody = serde_json::from_slice(body).ok()?;
        let text = match parsed.message? {
            serde_json::Value::String(s) => s,
            serde_json::Value::Null => return None,
            other => other.to_string(),
        };
        (!text.trim().is_empty()).then(|| redactor.redact(text.trim()))
    }

    #[allow(clippy::too_many_arguments)]
    fn status_error(
        &self,
        request: &Request<'_>,
        status: StatusCode,
        body: &[u8],
        errors: Option<String>,
        method: String,
        path: String,
        attempts: u32,
    ) -> PsaError {
        let said = errors
            .or_else(|| Self::message_in(&self.redactor, body))
            .unwrap_or_else(|| self.redactor.excerpt(body));
        let message = match status {
            s if s.is_success() => format!(
                "Autotask answered HTTP {} but reported errors: {said}",
                s.as_u16()
            ),
            StatusCode::UNAUTHORIZED => format!(
                "credentials rejected (HTTP 401): check {ENV_USERNAME} and {ENV_SECRET} (an API-only user's user name and its secret; Autotask does not say which is wrong, and reports a wrong {ENV_INTEGRATION_CODE} as \"IntegrationCode is invalid\") — Autotask said: {said}"
            ),
            StatusCode::FORBIDDEN => format!(
                "the API user may not {} (HTTP 403); {} — Autotask said: {said}",
                action(request),
                access_hint(request)
            ),
            StatusCode::NOT_FOUND => format!(
                "{} not found (HTTP 404); check the id in the mapping. If every request fails like this, check `url` in unitsync.yaml (used {}) — Autotask said: {said}",
                request.what,
                self.fixed_base
                    .as_ref()
                    .or(self.base.get())
                    .map_or_else(|| self.discovery.to_string(), Url::to_string)
            ),
            s if s.is_server_error() => {
                return PsaError::Server {
                    method,
                    path,
                    status: s.as_u16(),
                    attempts,
                    message: said,
                };
            }
            s => format!(
                "Autotask rejected the request for {} (HTTP {}): {said}",
                request.what,
                s.as_u16()
            ),
        };
        PsaError::Autotask {
            method,
            path,
            status: status.as_u16(),
            message,
        }
    }

    /// A `nextPageUrl` on our own host. A link to another origin is rebased (path and query) so
    /// the credentials never leave for a host the settings or the zone do not name.
    pub(crate) fn rebase(base: &Url, link: &str) -> Option<Url> {
        let parsed = base.join(link).ok()?;
        if parsed.origin() == base.origin() {
            return Some(parsed);
        }
        let mut url = base.clone();
        url.set_path(parsed.path());
        url.set_query(parsed.query());
        tracing::debug!(link, "rebased a nextPageUrl onto the API host");
        Some(url)
    }

    /// POSTs a query and follows `pageDetails.nextPageUrl` until it is empty, repeats, or a page
    /// is empty. Each next page is a POST of the **same query body** to that link: Autotask
    /// answers a GET of `…/query/next?paging=…` with 405 (`{"Message":"The requested resource
    /// does not support http method 'GET'."}`), as KelvinTegelaar/AutotaskAPI, django-autotask
    /// and n8n-nodes-autotask page and WYRE-AI/autotask-mcp PR #170 reproduced on a live tenant.
    pub async fn query<T: DeserializeOwned>(
        &self,
        entity: &str,
        query: &QueryRequest,
        what: &str,
    ) -> Result<Vec<T>, PsaError> {
        let base = self.base().await?;
        let body = serde_json::to_value(query).expect("a query serialises");
        let mut request = Request {
            method: Method::POST,
            entity,
            target: Target::Api(format!("{entity}/query")),
            body: Some(body.clone()),
            repeat: Repeat::Idempotent,
            what,
        };
        let mut items = Vec::new();
        let mut seen = HashSet::new();
        for _ in 0..MAX_PAGES {
            let response = self.execute(&request).await?;
            let page: QueryPage<T> = response.json(&self.redactor)?;
            let empty = page.items.is_empty();
            items.extend(page.items);
            let next = page
                .page_details
                .and_then(|p| p.next_page_url)
                .filter(|u| !u.trim().is_empty())
                .and_then(|u| Self::rebase(&base, u.trim()));
            match next {
                Some(next) if !empty && seen.insert(next.to_string()) => {
                    request = Request {
                        method: Method::POST,
                        entity,
                        target: Target::Absolute(next),
                        body: Some(body.clone()),
                        repeat: Repeat::Idempotent,
                        what,
                    };
                }
                Some(next) if !empty => {
                    tracing::warn!(%next, "Autotask repeated a nextPageUrl; stopped paging");
                    return Ok(items);
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

pub(crate) struct Response {
    pub body: Vec<u8>,
    pub method: Method,
    pub path: String,
}

impl Response {
    pub fn json<T: DeserializeOwned>(&self, redact: &Redactor) -> Result<T, PsaError> {
        decode(&self.body, &self.method, &self.path, redact)
    }
}

/// A 500 that is Autotask refusing the credentials or a permission, not a server failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// "Zone information could not be determined": the user name is blank or unknown.
    UnknownUser,
    /// Another 500 from zone discovery, which Autotask answers for a blank or unknown user too.
    ZoneDiscovery,
    /// "IntegrationCode is invalid."
    IntegrationCode,
    /// "The logged in Resource does not have the adequate permissions to …"
    Permission,
}

impl Refusal {
    /// Whether an answer is such a refusal: a 500 whose body says so. Every 500 from zone
    /// discovery is one: it needs no credential, and Autotask answers 500 there for a blank or
    /// unknown user (django-autotask `get_zone_info`, py-autotask `auth.py`).
    fn of(status: StatusCode, body: &[u8], zone_discovery: bool) -> Option<Refusal> {
        if status != StatusCode::INTERNAL_SERVER_ERROR {
            return None;
        }
        let text = String::from_utf8_lossy(body).to_ascii_lowercase();
        if text.contains("integrationcode is invalid") {
            Some(Refusal::IntegrationCode)
        } else if text.contains("does not have the adequate permissions") {
            Some(Refusal::Permission)
        } else if text.contains("zone information could not be determined") {
            Some(Refusal::UnknownUser)
        } else if zone_discovery {
            Some(Refusal::ZoneDiscovery)
        } else {
            None
        }
    }

    fn message(self, request: &Request<'_>, said: &str) -> String {
        match self {
            Refusal::UnknownUser => format!(
                "Autotask does not know the API user (HTTP 500, not retried): check {ENV_USERNAME}; it must be the API-only user's user name as Autotask shows it (Admin > Resources/Users), or set `url` in unitsync.yaml to the zone's API URL — Autotask said: {said}"
            ),
            Refusal::ZoneDiscovery => format!(
                "zone discovery failed (HTTP 500, not retried; Autotask answers 500 there for a blank or unknown user): check {ENV_USERNAME}, or set `url` in unitsync.yaml to the zone's API URL — Autotask said: {said}"
            ),
            Refusal::IntegrationCode => format!(
                "Autotask refused the integration code (HTTP 500, not retried): check {ENV_INTEGRATION_CODE}; it must be the API tracking identifier on the API user's Security tab — Autotask said: {said}"
            ),
            Refusal::Permission => format!(
                "the API user's security level may not {} (HTTP 500, not retried); {} — Autotask said: {said}",
                action(request),
                access_hint(request)
            ),
        }
    }
}

/// "read contracts", "create the adjustment of …".
fn action(request: &Request<'_>) -> String {
    match request.repeat {
        Repeat::Once => format!("create {}", request.what),
        Repeat::Idempotent => format!("read {}", request.what),
    }
}

/// What the API user's security level needs, for a permission refusal.
fn access_hint(request: &Request<'_>) -> &'static str {
    match request.repeat {
        Repeat::Once => {
            "give its security level access to Contracts (view, add adjustments) and Companies (view)"
        }
        Repeat::Idempotent => {
            "give its security level access to Contracts (view) and Companies (view)"
        }
    }
}

/// `url` with `segments` appended to its path.
fn join(url: &Url, segments: &[&str]) -> Url {
    let mut url = url.clone();
    url.set_query(None);
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty();
        for s in segments.iter().filter(|s| !s.is_empty()) {
            path.push(s);
        }
    }
    url
}

/// The API base for a zone or base URL: a URL whose path ends in `v1.0` is the base itself; a
/// bare host gets `/atservicesrest/v1.0/`; anything else (a zone URL such as
/// `https://webservices5.autotask.net/atservicesrest/`) gets `v1.0/` appended.
pub fn api_base(url: &Url) -> Url {
    let mut url = url.clone();
    url.set_query(None);
    url.set_fragment(None);
    let path = url.path().trim_matches('/').to_string();
    let last = path.rsplit('/').next().unwrap_or_default();
    let segments: Vec<&str> = if last.eq_ignore_ascii_case("v1.0") {
        vec![""]
    } else if path.is_empty() {
        vec!["atservicesrest", "v1.0", ""]
    } else {
        vec!["v1.0", ""]
    };
    if let Ok(mut p) = url.path_segments_mut() {
        p.pop_if_empty();
        for s in segments {
            p.push(s);
        }
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_bases() {
        let b = |s: &str| api_base(&Url::parse(s).unwrap()).to_string();
        assert_eq!(
            b("https://webservices5.autotask.net/atservicesrest/"),
            "https://webservices5.autotask.net/atservicesrest/v1.0/"
        );
        assert_eq!(
            b("https://webservices5.autotask.net/ATServicesRest"),
            "https://webservices5.autotask.net/ATServicesRest/v1.0/"
        );
        assert_eq!(
            b("http://127.0.0.1:9/atservicesrest/v1.0"),
            "http://127.0.0.1:9/atservicesrest/v1.0/"
        );
        assert_eq!(
            b("http://127.0.0.1:9"),
            "http://127.0.0.1:9/atservicesrest/v1.0/"
        );
    }
}
