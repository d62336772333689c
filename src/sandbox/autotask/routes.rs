//! The sandbox's routes: authentication, zone discovery, the entity paths (queries, child
//! listings, field information) and the query paging the real API does.

use super::*;

pub(super) fn canonical_entity(segment: &str) -> Option<&'static str> {
    AT_QUERY_ENTITIES
        .iter()
        .chain([ADJUSTMENTS, "ThresholdInformation"].iter())
        .find(|e| e.eq_ignore_ascii_case(segment))
        .copied()
}

/// The object endpoint a request counts against for the thread limit.
pub(super) fn endpoint_key(rest: &[String]) -> String {
    if rest.len() >= 3
        && rest[0] == "contracts"
        && let Some(child) = match rest[2].as_str() {
            "serviceadjustments" => Some(ADJUSTMENTS),
            "services" => Some("ContractServices"),
            "serviceunits" => Some("ContractServiceUnits"),
            "charges" => Some("ContractCharges"),
            _ => None,
        }
    {
        return child.to_string();
    }
    rest.first()
        .map(|s| {
            canonical_entity(s)
                .map(str::to_string)
                .unwrap_or_else(|| s.clone())
        })
        .unwrap_or_default()
}

pub(super) async fn dispatch(State(shared): State<Arc<AtShared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let path = parts.uri.path().to_string();
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    let latency = lock(&shared.faults).faults.latency;
    let not_found = || {
        at_error(
            StatusCode::NOT_FOUND,
            format!(
                "The sandbox has no endpoint {path} (it serves /atservicesrest/v1.0/zoneInformation, ThresholdInformation, and Companies, Contracts, ContractServices, ContractServiceUnits, Services, ContractServiceAdjustments)"
            ),
        )
    };
    if segments.first().map(String::as_str) != Some("atservicesrest") {
        return not_found();
    }
    let rest = &segments[1..];
    let is_version = |s: &str| s == "v1.0" || s == "1.0";
    let version_info = match rest {
        [v] if v == "versioninformation" => true,
        [ver, v] if is_version(ver) && v == "versioninformation" => true,
        _ => false,
    };
    if version_info {
        sleep(latency).await;
        if parts.method != Method::GET {
            return method_not_allowed(&path);
        }
        return ok_json(json!({ "apiVersions": ["1.0"] }));
    }
    if rest.is_empty() || !is_version(&rest[0]) {
        return not_found();
    }
    let rest: Vec<String> = rest[1..].to_vec();
    if rest.len() == 1 && rest[0] == "zoneinformation" {
        sleep(latency).await;
        if parts.method != Method::GET {
            return method_not_allowed(&path);
        }
        return zone_information(&shared, &parts.uri);
    }

    // Auth.
    if let Err(r) = authenticate(&shared, &parts.headers) {
        return r;
    }
    // Request threshold.
    {
        let (threshold, timeframe) = {
            let store = lock_store(&shared);
            (store.threshold as usize, window_of(&store))
        };
        let mut limits = lock(&shared.limits);
        prune(&mut limits.window, timeframe);
        if limits.window.len() >= threshold {
            let wait = limits
                .window
                .front()
                .map(|t| timeframe.saturating_sub(t.elapsed()).as_secs() + 1)
                .unwrap_or(1);
            return too_many(
                format!(
                    "The API request threshold of {threshold} requests per {} minutes has been reached; API access is blocked until the window clears",
                    timeframe.as_secs() / 60
                ),
                wait,
            );
        }
        limits.window.push_back(Instant::now());
    }
    // Thread limit.
    let key = endpoint_key(&rest);
    let _slot = {
        let limit = lock_store(&shared).thread_limit;
        let mut limits = lock(&shared.limits);
        let now = limits.in_flight.get(&key).copied().unwrap_or(0) + 1;
        let max = limits.max_seen.entry(key.clone()).or_insert(0);
        *max = (*max).max(now);
        if now > limit {
            return too_many(
                format!(
                    "Thread limit exceeded: at most {limit} concurrent requests per object endpoint ({key}) and tracking identifier"
                ),
                1,
            );
        }
        limits.in_flight.insert(key.clone(), now);
        Slot {
            shared: shared.clone(),
            key: key.clone(),
        }
    };
    sleep(latency).await;

    if matches!(parts.method, Method::POST | Method::PUT | Method::PATCH) {
        let ct = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let essence = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if essence != "application/json" && !essence.ends_with("+json") {
            return at_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Type {ct:?} is not supported; send application/json"),
            );
        }
    }
    route(&shared, &parts.method, &parts.uri, &path, &rest, &bytes)
}

pub(super) async fn sleep(latency: Duration) {
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
}

pub(super) fn method_not_allowed(path: &str) -> Response {
    at_error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("The requested resource does not support this HTTP method ({path})"),
    )
}

pub(super) fn adjustments_read_only() -> Response {
    at_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "ContractServiceAdjustments can only be created; it cannot be queried, read or updated",
    )
}

pub(super) fn zone_information(shared: &AtShared, uri: &axum::http::Uri) -> Response {
    let query: Vec<(String, String)> = Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|q| q.0)
        .unwrap_or_default();
    let Some(user) = query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("user"))
        .map(|(_, v)| v.trim().to_string())
        .filter(|u| !u.is_empty())
    else {
        // django-autotask: "AT returns 500 if username is blank or incorrect".
        return zone_unknown();
    };
    let store = lock_store(shared);
    if !user.eq_ignore_ascii_case(&store.login.username) {
        return zone_unknown();
    }
    let base = format!("http://{}", shared.addr);
    ok_json(json!({
        "zoneName": store.zone_name,
        "url": format!("{base}/atservicesrest/"),
        "webUrl": format!("{base}/"),
        "ci": 0,
    }))
}

/// What zone discovery answers for a blank or unknown user name, in the real API's words
/// (measured by others: the @apigrate README's Error Handling section, py-autotask `auth.py`).
pub(super) fn zone_unknown() -> Response {
    at_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Zone information could not be determined",
    )
}

pub(super) fn authenticate(shared: &AtShared, headers: &HeaderMap) -> Result<(), Response> {
    let code = header_text(headers, "apiintegrationcode");
    let user = header_text(headers, "username");
    let secret = header_text(headers, "secret");
    let missing: Vec<&str> = [
        ("ApiIntegrationCode", &code),
        ("UserName", &user),
        ("Secret", &secret),
    ]
    .iter()
    .filter(|(_, v)| v.is_none())
    .map(|(n, _)| *n)
    .collect();
    if !missing.is_empty() {
        return Err(at_error(
            StatusCode::UNAUTHORIZED,
            format!("Missing required header(s): {}", missing.join(", ")),
        ));
    }
    let login = lock_store(shared).login.clone();
    // A wrong integration code is a 500 with its own message, not a 401 (the @apigrate README:
    // "An invalid API Integration key will lead to an HTTP 500 error", py-autotask `auth.py`).
    if code.as_deref() != Some(login.integration_code.as_str()) {
        return Err(at_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "IntegrationCode is invalid.",
        ));
    }
    let ok = user
        .as_deref()
        .is_some_and(|u| u.eq_ignore_ascii_case(&login.username))
        && secret.as_deref() == Some(login.secret.as_str());
    if !ok {
        // A wrong user name or secret: an empty 401, which cannot say which one is wrong
        // (measured live by the w6w Autotask connector: "Autotask answers every credential
        // failure with an empty 401").
        return Err(StatusCode::UNAUTHORIZED.into_response());
    }
    Ok(())
}

pub(super) fn route(
    shared: &Arc<AtShared>,
    method: &Method,
    uri: &axum::http::Uri,
    path: &str,
    rest: &[String],
    body: &Bytes,
) -> Response {
    let first = rest.first().map(String::as_str).unwrap_or("");
    if first == "thresholdinformation" && rest.len() == 1 {
        if *method != Method::GET {
            return method_not_allowed(path);
        }
        let store = lock_store(shared);
        let timeframe = window_of(&store);
        let count = {
            let mut limits = lock(&shared.limits);
            prune(&mut limits.window, timeframe);
            limits.window.len()
        };
        return ok_json(json!({
            "externalRequestThreshold": store.threshold,
            "requestThresholdTimeframe": store.timeframe_minutes,
            "currentTimeframeRequestCount": count,
        }));
    }
    if first == "contractserviceadjustments" {
        return match (rest.len(), method) {
            (1, &Method::POST) => create_adjustment(shared, None, body),
            _ => adjustments_read_only(),
        };
    }
    if first == "contracts" && rest.len() >= 3 {
        let parent = &rest[1];
        let Ok(parent_id) = parent.parse::<i64>() else {
            return bad_request(format!("{parent} is not a valid contract id"));
        };
        return match (rest[2].as_str(), rest.len(), method) {
            ("serviceadjustments", 3, &Method::POST) => {
                create_adjustment(shared, Some(parent_id), body)
            }
            ("serviceadjustments", _, _) => adjustments_read_only(),
            ("services", 3, &Method::GET) => children(shared, "ContractServices", parent_id),
            ("serviceunits", 3, &Method::GET) => {
                children(shared, "ContractServiceUnits", parent_id)
            }
            ("services", 4, &Method::GET) | ("serviceunits", 4, &Method::GET) => {
                let entity = if rest[2] == "services" {
                    "ContractServices"
                } else {
                    "ContractServiceUnits"
                };
                let Ok(id) = rest[3].parse::<i64>() else {
                    return bad_request(format!("{} is not a valid id", rest[3]));
                };
                let store = lock_store(shared);
                let item = store
                    .get(entity, id)
                    .filter(|r| r["contractID"].as_i64() == Some(parent_id))
                    .cloned()
                    .unwrap_or(Value::Null);
                ok_json(json!({ "item": item }))
            }
            ("services", _, _) | ("serviceunits", _, _) => method_not_allowed(path),
            ("charges", 3, &Method::POST) => create_charge(shared, parent_id, body),
            ("charges", 3, &Method::GET) => children(shared, "ContractCharges", parent_id),
            ("charges", 5, &Method::GET)
                if rest[3] == "entityinformation" && rest[4] == "fields" =>
            {
                charge_fields(shared)
            }
            ("charges", _, _) => method_not_allowed(path),
            _ => not_found_path(path),
        };
    }
    let Some(entity) = canonical_entity(first).filter(|e| AT_QUERY_ENTITIES.contains(e)) else {
        return not_found_path(path);
    };
    match (&rest[1..], method) {
        ([e, f], &Method::GET)
            if entity == "ContractCharges" && e == "entityinformation" && f == "fields" =>
        {
            charge_fields(shared)
        }
        ([q], &Method::POST) if q == "query" => {
            let parsed = match serde_json::from_slice::<Value>(body) {
                Ok(v) => v,
                Err(e) => return bad_request(format!("The query body is not valid JSON: {e}")),
            };
            run_query(shared, entity, &parsed, Paging::First, QueryForm::Post)
        }
        ([q], &Method::GET) if q == "query" => match search_param(uri) {
            Ok(parsed) => run_query(shared, entity, &parsed, Paging::First, QueryForm::Search),
            Err(r) => r,
        },
        // A next (or previous) page repeats the query: POSTed again as the body, or, for a
        // query made with GET `?search=`, carried in the link's own `search` parameter. A GET
        // of a link without `search` (what a POSTed query links to) is refused as Autotask
        // does, with its ASP.NET-style body.
        ([q, n], &Method::GET) if q == "query" && n == "next" => {
            if !has_param(uri, "search") {
                return get_not_supported();
            }
            let (token_query, paging) = match paging_param(uri) {
                Ok(p) => p,
                Err(r) => return r,
            };
            match search_param(uri) {
                Ok(parsed) if parsed == token_query => {
                    run_query(shared, entity, &parsed, paging, QueryForm::Search)
                }
                Ok(_) => bad_request(PAGING_MISMATCH),
                Err(r) => r,
            }
        }
        ([q, n], &Method::POST) if q == "query" && n == "next" => {
            let (token_query, paging) = match paging_param(uri) {
                Ok(p) => p,
                Err(r) => return r,
            };
            match serde_json::from_slice::<Value>(body) {
                Ok(parsed) if parsed == token_query => {
                    run_query(shared, entity, &parsed, paging, QueryForm::Post)
                }
                Ok(_) => bad_request(PAGING_MISMATCH),
                Err(e) => bad_request(format!(
                    "The query body is not valid JSON (a next page needs the query POSTed again): {e}"
                )),
            }
        }
        ([q, c], m) if q == "query" && c == "count" && (m == Method::GET || m == Method::POST) => {
            let parsed = if m == Method::GET {
                match search_param(uri) {
                    Ok(p) => p,
                    Err(r) => return r,
                }
            } else {
                match serde_json::from_slice::<Value>(body) {
                    Ok(v) => v,
                    Err(e) => {
                        return bad_request(format!("The query body is not valid JSON: {e}"));
                    }
                }
            };
            match Parsed::from_json(entity, &parsed) {
                Ok(q) => {
                    let store = lock_store(shared);
                    let n = store.records[entity]
                        .values()
                        .filter(|r| q.matches(r))
                        .count();
                    ok_json(json!({ "queryCount": n }))
                }
                Err(m) => bad_request(m),
            }
        }
        ([id], &Method::GET) if id != "query" => {
            let Ok(id) = id.parse::<i64>() else {
                return bad_request(format!("{id} is not a valid id"));
            };
            let item = lock_store(shared)
                .get(entity, id)
                .cloned()
                .unwrap_or(Value::Null);
            ok_json(json!({ "item": item }))
        }
        ([], _) | ([_], _) | ([_, _], _) => method_not_allowed(path),
        _ => not_found_path(path),
    }
}

pub(super) fn not_found_path(path: &str) -> Response {
    at_error(
        StatusCode::NOT_FOUND,
        format!("The sandbox has no endpoint {path}"),
    )
}

pub(super) fn children(shared: &AtShared, entity: &str, parent: i64) -> Response {
    let store = lock_store(shared);
    let items: Vec<Value> = store.records[entity]
        .values()
        .filter(|r| r["contractID"].as_i64() == Some(parent))
        .take(AT_MAX_RECORDS as usize)
        .cloned()
        .collect();
    ok_json(json!({
        "items": items,
        "pageDetails": {
            "count": items.len(), "requestCount": AT_MAX_RECORDS,
            "prevPageUrl": null, "nextPageUrl": null,
        },
    }))
}

pub(super) fn search_param(uri: &axum::http::Uri) -> Result<Value, Response> {
    let query: Vec<(String, String)> = Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|q| q.0)
        .unwrap_or_default();
    let Some((_, search)) = query.iter().find(|(k, _)| k.eq_ignore_ascii_case("search")) else {
        return Err(bad_request(
            "The search parameter is required: query?search={\"filter\":[…]}",
        ));
    };
    serde_json::from_str(search)
        .map_err(|e| bad_request(format!("The search parameter is not valid JSON: {e}")))
}

pub(super) enum Paging {
    First,
    After(i64),
    Before(i64),
}

pub(super) fn paging_param(uri: &axum::http::Uri) -> Result<(Value, Paging), Response> {
    let query: Vec<(String, String)> = Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|q| q.0)
        .unwrap_or_default();
    let invalid = || bad_request("The paging parameter is missing or not valid");
    let token = query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("paging"))
        .map(|(_, v)| v.clone())
        .ok_or_else(invalid)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim())
        .map_err(|_| invalid())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let paging = if let Some(a) = value["after"].as_i64() {
        Paging::After(a)
    } else if let Some(b) = value["before"].as_i64() {
        Paging::Before(b)
    } else {
        return Err(invalid());
    };
    Ok((value["q"].clone(), paging))
}

/// How a query reached the sandbox, which decides how its page links are followed.
#[derive(Clone, Copy)]
pub(super) enum QueryForm {
    /// `POST …/query`: the links carry only `paging` and must be POSTed with the same body.
    Post,
    /// `GET …/query?search=`: the links carry `search` too and are fetched with GET.
    Search,
}

pub(super) const PAGING_MISMATCH: &str =
    "The paging parameter does not belong to this query; send the same query as the first page";

pub(super) fn has_param(uri: &axum::http::Uri, name: &str) -> bool {
    Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|q| q.0.iter().any(|(k, _)| k.eq_ignore_ascii_case(name)))
        .unwrap_or(false)
}

/// What Autotask (ASP.NET Web API) answers a GET of a `…/query/next?paging=…` link: 405 with a
/// `{"Message": …}` body, not the usual `{"errors": […]}` (WYRE-AI/autotask-mcp PR #170).
pub(super) fn get_not_supported() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, HeaderValue::from_static("POST"))],
        axum::Json(json!({
            "Message": "The requested resource does not support http method 'GET'."
        })),
    )
        .into_response()
}

pub(super) fn paging_url(
    shared: &AtShared,
    entity: &str,
    query: &Value,
    form: QueryForm,
    key: &str,
    id: i64,
) -> String {
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({ "q": query, key: id }).to_string());
    let mut url = reqwest::Url::parse(&format!(
        "http://{}/atservicesrest/v1.0/{entity}/query/next",
        shared.addr
    ))
    .expect("a valid URL");
    url.query_pairs_mut().append_pair("paging", &token);
    if let QueryForm::Search = form {
        url.query_pairs_mut()
            .append_pair("search", &query.to_string());
    }
    url.to_string()
}

pub(super) fn run_query(
    shared: &AtShared,
    entity: &str,
    raw: &Value,
    paging: Paging,
    form: QueryForm,
) -> Response {
    let q = match Parsed::from_json(entity, raw) {
        Ok(q) => q,
        Err(m) => return bad_request(m),
    };
    let store = lock_store(shared);
    let matching: Vec<(&i64, &Value)> = store.records[entity]
        .iter()
        .filter(|(_, r)| q.matches(r))
        .collect();
    let max = q.max_records as usize;
    let page: Vec<(&i64, &Value)> = match paging {
        Paging::First => matching.iter().take(max).copied().collect(),
        Paging::After(after) => matching
            .iter()
            .filter(|(id, _)| **id > after)
            .take(max)
            .copied()
            .collect(),
        Paging::Before(before) => {
            let earlier: Vec<(&i64, &Value)> = matching
                .iter()
                .filter(|(id, _)| **id < before)
                .copied()
                .collect();
            earlier[earlier.len().saturating_sub(max)..].to_vec()
        }
    };
    let normalized = q.normalized.clone();
    let next = page.last().and_then(|(last, _)| {
        matching
            .iter()
            .any(|(id, _)| *id > *last)
            .then(|| paging_url(shared, entity, &normalized, form, "after", **last))
    });
    let prev = page.first().and_then(|(first, _)| {
        matching
            .iter()
            .any(|(id, _)| *id < *first)
            .then(|| paging_url(shared, entity, &normalized, form, "before", **first))
    });
    let items: Vec<Value> = page.iter().map(|(_, r)| q.project(r)).collect();
    ok_json(json!({
        "items": items,
        "pageDetails": {
            "count": items.len(),
            "requestCount": q.max_records,
            "prevPageUrl": prev,
            "nextPageUrl": next,
        },
    }))
}
