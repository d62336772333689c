//! The middleware in front of every route: it records each request, holds the request
//! threshold and thread limit, and injects the faults a test asks for (429s, 5xx, lost answers).

use super::*;

/// Records every request and applies injected 429s and 5xx.
pub(super) async fn outer(
    State(shared): State<Arc<AtShared>>,
    req: Request,
    next: Next,
) -> Response {
    let _in_flight = InFlight::enter(&shared.in_flight);
    let received = Instant::now();
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, 64 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => return bad_request("The request body could not be read"),
    };
    let query: Vec<(String, String)> = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
        .map(|q| q.0)
        .unwrap_or_default();
    let mut headers = BTreeMap::new();
    for name in AT_LOGGED_HEADERS {
        if let Some(v) = parts.headers.get(*name) {
            headers.insert(
                (*name).to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            );
        }
    }
    let body_text = (!bytes.is_empty()).then(|| String::from_utf8_lossy(&bytes).into_owned());
    let mut entry = RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query,
        headers,
        auth_user: header_text(&parts.headers, "username"),
        body: body_text
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok()),
        body_text,
        status: 0,
        response_lost: false,
        received,
    };
    let fault = lock(&shared.faults)
        .next_fault(parts.method.as_str(), parts.uri.path())
        .1;
    let response = match fault {
        Some(Injected::RateLimited(secs)) => too_many(
            format!("Too many requests; retry after {secs} seconds (injected by the sandbox)"),
            secs,
        ),
        Some(Injected::ServerError(status)) => server_error(status),
        Some(Injected::LoseAfterCommit(how)) => {
            let response = next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await;
            entry.status = response.status().as_u16();
            entry.response_lost = true;
            lock(&shared.log).push(entry);
            return match how {
                LostResponse::ServerError(status) => server_error(status),
                other => lose_response(response, other).await,
            };
        }
        None => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
    };
    entry.status = response.status().as_u16();
    lock(&shared.log).push(entry);
    let mut response = response;
    if lock(&shared.faults).faults.close_connections {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// An injected 5xx (500 unless `status` is another 5xx).
pub(super) fn server_error(status: u16) -> Response {
    let status = StatusCode::from_u16(status)
        .ok()
        .filter(|s| s.is_server_error())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    at_error(
        status,
        "An unexpected error occurred (injected by the sandbox)",
    )
}

pub(super) fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Holds a thread-limit slot; gives it back when dropped.
pub(super) struct Slot {
    pub(super) shared: Arc<AtShared>,
    pub(super) key: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut limits = lock(&self.shared.limits);
        if let Some(n) = limits.in_flight.get_mut(&self.key) {
            *n = n.saturating_sub(1);
        }
    }
}
