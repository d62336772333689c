//! An HTTP endpoint that returns JSON usage records.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};

use super::json::{JsonDocument, parse_json_records};
use super::{BoxFuture, SourceError, UsageSource, truncate_chars};
use crate::config::HttpSource;
use crate::plan::UsageRecord;
use crate::redact::Redactor;

const DEFAULT_TIMEOUT_SECONDS: u32 = 30;
/// Most characters of an error response's body quoted in an error.
const BODY_EXCERPT_CHARS: usize = 200;

/// Looks up an environment variable; replaceable so tests need not touch the process environment.
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// GETs `source.http.url`, sending the header `auth_header` with the value of the environment
/// variable `auth_env`, and reads the records like a JSON file.
#[derive(Clone)]
pub struct HttpUsageSource {
    settings: HttpSource,
    env: EnvLookup,
}

impl fmt::Debug for HttpUsageSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpUsageSource")
            .field("url", &redact_url(&self.settings.url))
            .field("auth_header", &self.settings.auth_header)
            .field("auth_env", &self.settings.auth_env)
            .finish_non_exhaustive()
    }
}

impl HttpUsageSource {
    /// Reads the credential from the process environment when fetching.
    pub fn new(settings: HttpSource) -> HttpUsageSource {
        HttpUsageSource {
            settings,
            env: Arc::new(|name| std::env::var(name).ok()),
        }
    }

    /// Reads environment variables through `lookup` instead of the process environment.
    pub fn with_env(mut self, lookup: EnvLookup) -> HttpUsageSource {
        self.env = lookup;
        self
    }

    /// The URL as shown in messages: no user info, no query string.
    pub fn shown_url(&self) -> String {
        redact_url(&self.settings.url)
    }

    fn invalid(setting: &str, problem: impl Into<String>) -> SourceError {
        SourceError::InvalidSettings {
            setting: format!("source.http.{setting}"),
            problem: problem.into(),
        }
    }

    /// The header name and secret value to send, if any.
    fn credential(&self) -> Result<Option<(HeaderName, SecretString)>, SourceError> {
        let (header, variable) = match (&self.settings.auth_header, &self.settings.auth_env) {
            (None, None) => return Ok(None),
            (Some(h), Some(v)) => (h.trim(), v.trim()),
            (Some(_), None) => {
                return Err(Self::invalid(
                    "auth_env",
                    "is missing; auth_header is set, so name the environment variable that holds its value",
                ));
            }
            (None, Some(_)) => {
                return Err(Self::invalid(
                    "auth_header",
                    "is missing; auth_env is set, so name the header that carries it, such as Authorization",
                ));
            }
        };
        let name = HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
            Self::invalid(
                "auth_header",
                format!("{header:?} is not a valid HTTP header name"),
            )
        })?;
        let value = (self.env)(variable).ok_or_else(|| SourceError::MissingEnv {
            variable: variable.to_string(),
            header: header.to_string(),
            url: self.shown_url(),
        })?;
        if value.trim().is_empty() {
            return Err(Self::invalid(
                "auth_env",
                format!(
                    "environment variable {variable} is empty; set it to the value of the {header} header"
                ),
            ));
        }
        Ok(Some((name, SecretString::from(value))))
    }

    async fn get(&self) -> Result<Vec<UsageRecord>, SourceError> {
        let shown = self.shown_url();
        let url = Url::parse(self.settings.url.trim())
            .map_err(|e| Self::invalid("url", format!("{shown:?} is not a valid URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Self::invalid(
                "url",
                format!("{shown} is not an http:// or https:// URL"),
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Self::invalid(
                "url",
                "contains a user name or password; remove it and pass the credential with auth_header and auth_env",
            ));
        }
        let seconds = match self.settings.timeout_seconds {
            None => DEFAULT_TIMEOUT_SECONDS,
            Some(0) => return Err(Self::invalid("timeout_seconds", "must be at least 1")),
            Some(n) => n,
        };
        let credential = self.credential()?;
        let redactor = redactor(&url, credential.as_ref().map(|(_, secret)| secret));

        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(seconds.into()))
            // Never carry the credential to another host: follow same-origin redirects only.
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                let same_origin = attempt
                    .previous()
                    .first()
                    .is_some_and(|first| first.origin() == attempt.url().origin());
                if same_origin && attempt.previous().len() < 5 {
                    attempt.follow()
                } else {
                    attempt.stop()
                }
            }))
            .build()
            .map_err(|e| SourceError::Http {
                url: shown.clone(),
                problem: describe_reqwest(e),
            })?;
        let mut request = client
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some((name, secret)) = &credential {
            let mut value = HeaderValue::from_str(secret.expose_secret()).map_err(|_| {
                Self::invalid(
                    "auth_env",
                    format!(
                        "the value of {} is not a valid HTTP header value (no line breaks or control characters)",
                        self.settings.auth_env.as_deref().unwrap_or_default()
                    ),
                )
            })?;
            value.set_sensitive(true);
            request = request.header(name.clone(), value);
        }

        let failed = |e: reqwest::Error| SourceError::Http {
            url: shown.clone(),
            problem: if e.is_timeout() {
                format!(
                    "no complete response within {seconds} s; try again later or raise source.http.timeout_seconds"
                )
            } else {
                format!(
                    "{}; check source.http.url and the network",
                    describe_reqwest(e)
                )
            },
        };
        let response = request.send().await.map_err(failed)?;
        let status = response.status();
        let body = response.bytes().await.map_err(failed)?;
        if !status.is_success() {
            return Err(SourceError::HttpStatus {
                url: shown,
                status: status.to_string(),
                body: sanitize_body(&body, &redactor),
                hint: status_hint(status),
            });
        }
        parse_json_records(
            &body,
            &shown,
            JsonDocument::Http,
            self.settings.records.as_deref(),
            &self.settings.fields,
        )
        .map_err(|e| {
            // A record or syntax error quotes what the server sent; a server that echoes the
            // request would have it quote the credential.
            let text = e.to_string();
            if !redactor.finds(&text) {
                return e;
            }
            let problem = text
                .strip_prefix(shown.as_str())
                .map_or(text.as_str(), |rest| {
                    rest.trim_start_matches(':').trim_start()
                });
            SourceError::JsonShape {
                origin: shown.clone(),
                problem: redactor.redact(problem),
            }
        })
    }
}

impl UsageSource for HttpUsageSource {
    fn describe(&self) -> String {
        format!("HTTP GET {}", self.shown_url())
    }

    fn fetch(&self) -> BoxFuture<'_, Result<Vec<UsageRecord>, SourceError>> {
        Box::pin(self.get())
    }
}

fn status_hint(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 | 403 => {
            "check the credential in the auth_env variable and that auth_header names the header the vendor expects"
        }
        404 => "check source.http.url",
        429 => "the vendor is limiting requests; try again later",
        300..=399 => {
            "the endpoint redirects to another host; set source.http.url to the final address"
        }
        500..=599 => "the vendor's service failed; try again later",
        _ => "check source.http.url and the vendor's API documentation",
    }
}

/// The URL without user info, query or fragment, which may carry credentials.
pub(crate) fn redact_url(url: &str) -> String {
    match Url::parse(url.trim()) {
        Ok(mut parsed) => {
            let had_query = parsed.query().is_some();
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.set_fragment(None);
            let mut shown = parsed.to_string();
            if had_query {
                shown.push_str("?…");
            }
            shown
        }
        // Unparseable: show only what comes before any `@`, `?` or `#`.
        Err(_) => {
            let cut = url.find(['@', '?', '#']).unwrap_or(url.len());
            let mut shown = url[..cut].to_string();
            if cut < url.len() {
                shown.push('…');
            }
            shown
        }
    }
}

/// Shortest query value treated as a credential: `?api_key=…` is, `?page=2` is not.
const MIN_QUERY_SECRET_CHARS: usize = 6;

/// What a server's reply may echo of the request's credentials: the header's value (and, for
/// `Bearer abc…`, the token alone), the URL's user info, and every query value of at least
/// [`MIN_QUERY_SECRET_CHARS`] characters (vendors put API keys there).
fn redactor(url: &Url, credential: Option<&SecretString>) -> Redactor {
    let mut secrets = Vec::new();
    if let Some(secret) = credential {
        let value = secret.expose_secret().trim();
        secrets.push(SecretString::from(value));
        if let Some((_, token)) = value.rsplit_once(' ')
            && token.len() >= MIN_QUERY_SECRET_CHARS
        {
            secrets.push(SecretString::from(token));
        }
    }
    for value in url
        .query_pairs()
        .map(|(_, v)| v)
        .chain([url.username().into()])
        .chain(url.password().map(Into::into))
    {
        if value.chars().count() >= MIN_QUERY_SECRET_CHARS {
            secrets.push(SecretString::from(value.into_owned()));
        }
    }
    Redactor::new(secrets)
}

/// A short, single-line excerpt of an error body with the credentials blanked.
fn sanitize_body(body: &[u8], redactor: &Redactor) -> String {
    let text = redactor.redact(&String::from_utf8_lossy(body));
    let single_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    truncate_chars(&single_line, BODY_EXCERPT_CHARS)
}

/// A reqwest error and its causes, without the URL (which may carry a query with a token).
fn describe_reqwest(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut parts = vec![error.to_string()];
    let mut cause = std::error::Error::source(&error);
    while let Some(c) = cause {
        let text = c.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cause = c.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_credentials_and_queries() {
        assert_eq!(
            redact_url("https://user:pw@api.example.com/v1/usage?key=abc#x"),
            "https://api.example.com/v1/usage?…"
        );
        assert_eq!(
            redact_url("http://127.0.0.1:8080/u"),
            "http://127.0.0.1:8080/u"
        );
        assert_eq!(redact_url("not a url?key=1"), "not a url…");
    }

    #[test]
    fn bodies_are_short_single_line_and_redacted() {
        let secret = SecretString::from("Bearer s3cr3t-token");
        let url = Url::parse("http://h/u?page=2&key=k3y%2Bvalue").unwrap();
        let redactor = redactor(&url, Some(&secret));
        let body = b"{\"error\":\"bad token s3cr3t-token\",\n \"sent\":\"Bearer s3cr3t-token\", \"url\":\"/u?page=2&key=k3y%2Bvalue\", \"key\":\"k3y+value\"}";
        assert_eq!(
            sanitize_body(body, &redactor),
            "{\"error\":\"bad token [redacted]\", \"sent\":\"[redacted]\", \"url\":\"/u?page=2&key=[redacted]\", \"key\":\"[redacted]\"}"
        );
        let long = "x".repeat(500);
        assert_eq!(
            sanitize_body(long.as_bytes(), &Redactor::new(Vec::new())),
            format!("{}… (300 more bytes)", "x".repeat(200))
        );
    }
}
