//! The ConnectWise-compatible HTTP server: routes, auth, listing semantics, PATCH/POST of
//! agreement additions, fault injection and the request log. The JSON shapes here are the
//! sandbox's own, written from `reference/psa-apis.md` section A.

// The error half of these results is the HTTP response itself, returned as it is.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::Uri;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use serde_json::{Map, Value, json};
use tower::ServiceExt;

use super::conditions::{self, normalize_datetime};
use super::seed::{
    Seed, SeedAddition, SeedAgreement, SeedCompany, SeedCustomField, SeedLogin, SeedProduct,
    SeedReference,
};
use super::{Faults, InFlight, LostResponse, RecordedRequest, lose_response};

/// The API version the sandbox claims (`api-current-version`, `/login/companyinfo`).
pub const API_VERSION: &str = "2025.8";
/// Records per page when `pageSize` is absent.
pub const DEFAULT_PAGE_SIZE: usize = 25;
/// The most records one page returns; larger `pageSize` values are clamped to it.
pub const MAX_PAGE_SIZE: usize = 1000;
/// Headers copied into the request log (lower case).
pub const LOGGED_HEADERS: &[&str] = &[
    "accept",
    "clientid",
    "content-type",
    "pagination-type",
    "cache-control",
    "user-agent",
];

const BILL_CUSTOMER: &[&str] = &["Billable", "DoNotBill", "NoCharge"];
/// `YYYY-MM-01T00:00:00Z` of the month after today (UTC).
fn next_month_invoice() -> String {
    let today = crate::clock::today_in(&jiff::tz::TimeZone::UTC);
    let next = today
        .first_of_month()
        .checked_add(jiff::Span::new().months(1))
        .unwrap_or(today);
    format!("{next}T00:00:00Z")
}

const SEED_TIME: &str = "2026-11-01T00:00:00Z";

/// State shared by the server and its handle.
pub(crate) struct Shared {
    pub store: Mutex<Store>,
    pub faults: Mutex<FaultState>,
    pub log: Mutex<Vec<RecordedRequest>>,
    pub in_flight: AtomicUsize,
    pub addr: SocketAddr,
}

/// Faults plus the counters still to fire.
#[derive(Debug, Default)]
pub(crate) struct FaultState {
    pub faults: Faults,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The records the sandbox serves, as they are now.
pub(crate) struct Store {
    pub login: SeedLogin,
    pub codebase: String,
    pub companies: BTreeMap<i64, SeedCompany>,
    pub agreements: BTreeMap<i64, SeedAgreement>,
    pub additions: BTreeMap<i64, SeedAddition>,
    pub products: BTreeMap<i64, SeedProduct>,
    type_ids: BTreeMap<String, i64>,
    /// Names of the invoice groupings and opportunities the seed's additions refer to, by
    /// (field, id): a reference written as `{"id": N}` reads back with its name, as ConnectWise
    /// fills it in from the record.
    reference_names: BTreeMap<(&'static str, i64), String>,
    next_addition_id: i64,
    /// `http://127.0.0.1:PORT`, for the `_info` links.
    base_url: String,
}

impl Store {
    pub fn new(seed: Seed, base_url: String) -> Store {
        let mut products: BTreeMap<i64, SeedProduct> =
            seed.products.into_iter().map(|p| (p.id, p)).collect();
        for a in &seed.additions {
            products.entry(a.product.id).or_insert_with(|| SeedProduct {
                id: a.product.id,
                identifier: a.product.identifier.clone(),
                description: a
                    .product
                    .description
                    .clone()
                    .unwrap_or_else(|| a.product.identifier.clone()),
                price: a.unit_price,
                cost: a.unit_cost,
                inactive_flag: false,
            });
        }
        let mut type_ids = BTreeMap::new();
        for a in &seed.agreements {
            let next = type_ids.len() as i64 + 1;
            type_ids.entry(a.agreement_type.clone()).or_insert(next);
        }
        let mut reference_names = BTreeMap::new();
        for a in &seed.additions {
            for (field, r) in [
                ("invoicegrouping", &a.invoice_grouping),
                ("opportunity", &a.opportunity),
            ] {
                if let Some(SeedReference {
                    id,
                    name: Some(name),
                }) = r
                {
                    reference_names.insert((field, *id), name.clone());
                }
            }
        }
        let next_addition_id = seed
            .additions
            .iter()
            .map(|a| a.id)
            .max()
            .unwrap_or(0)
            .max(9000)
            + 1;
        Store {
            login: seed.login,
            codebase: seed.codebase,
            companies: seed.companies.into_iter().map(|c| (c.id, c)).collect(),
            agreements: seed.agreements.into_iter().map(|a| (a.id, a)).collect(),
            additions: seed.additions.into_iter().map(|a| (a.id, a)).collect(),
            products,
            type_ids,
            reference_names,
            next_addition_id,
            base_url,
        }
    }

    /// The path prefix of the REST API, such as `/v4_6_release/apis/3.0`.
    pub fn api_prefix(&self) -> String {
        format!("/{}apis/3.0", self.codebase)
    }

    fn company_ref(&self, id: i64) -> Value {
        match self.companies.get(&id) {
            Some(c) => json!({"id": c.id, "identifier": c.identifier, "name": c.name,
                "_info": {"company_href": format!("{}{}/company/companies/{}", self.base_url, self.api_prefix(), c.id)}}),
            None => json!({"id": id}),
        }
    }

    fn company_json(&self, c: &SeedCompany) -> Value {
        let status_id = match c.status.as_str() {
            "Active" => 1,
            "Inactive" => 2,
            _ => 3,
        };
        json!({
            "id": c.id,
            "identifier": c.identifier,
            "name": c.name,
            "status": {"id": status_id, "name": c.status},
            "deletedFlag": c.deleted_flag,
            "_info": {"lastUpdated": SEED_TIME, "updatedBy": "admin"},
        })
    }

    fn agreement_json(&self, a: &SeedAgreement) -> Value {
        json!({
            "id": a.id,
            "name": a.name,
            "type": {"id": self.type_ids.get(&a.agreement_type).copied().unwrap_or(0), "name": a.agreement_type},
            "company": self.company_ref(a.company),
            "contact": null,
            "startDate": a.start_date,
            "endDate": null,
            "noEndingDateFlag": true,
            "cancelledFlag": a.cancelled_flag,
            "dateCancelled": a.date_cancelled,
            "reasonCancelled": null,
            "billingCycle": match a.billing_cycle.as_deref().unwrap_or("Monthly") {
                "Monthly" => json!({"id": 1, "name": "Monthly"}),
                "Quarterly" => json!({"id": 2, "name": "Quarterly"}),
                "Annual" => json!({"id": 3, "name": "Annual"}),
                other => json!({"id": 9, "name": other}),
            },
            // A live agreement's next invoice is always ahead; without one in the seed it is the
            // first of next month (monthly billing in advance), from the sandbox's clock.
            "nextInvoiceDate": a.next_invoice_date.clone().unwrap_or_else(next_month_invoice),
            "agreementStatus": a.agreement_status,
            "parentAgreement": null,
            "_info": {"lastUpdated": SEED_TIME, "updatedBy": "admin"},
        })
    }

    fn addition_json(&self, a: &SeedAddition) -> Value {
        let status = a.agreement_status.clone().or_else(|| {
            self.agreements
                .get(&a.agreement)
                .map(|ag| ag.agreement_status.clone())
        });
        let description = a.description.clone().or_else(|| {
            a.product.description.clone().or_else(|| {
                self.products
                    .get(&a.product.id)
                    .map(|p| p.description.clone())
            })
        });
        let billed_units = a.quantity - a.less_included;
        json!({
            "id": a.id,
            "product": {"id": a.product.id, "identifier": a.product.identifier, "serializedFlag": false,
                "_info": {"product_href": format!("{}{}/procurement/catalog/{}", self.base_url, self.api_prefix(), a.product.id)}},
            "quantity": a.quantity,
            "lessIncluded": a.less_included,
            "unitPrice": a.unit_price,
            "unitCost": a.unit_cost,
            "billCustomer": a.bill_customer,
            "effectiveDate": a.effective_date,
            "cancelledDate": a.cancelled_date,
            "taxableFlag": a.taxable_flag,
            "serialNumber": a.serial_number,
            "invoiceDescription": a.invoice_description,
            "purchaseItemFlag": a.purchase_item_flag,
            "specialOrderFlag": a.special_order_flag,
            "agreementId": a.agreement,
            "description": description,
            "billedQuantity": a.billed_quantity,
            "uom": a.uom.clone().unwrap_or_else(|| "Each".to_string()),
            "sequenceNumber": a.sequence_number,
            "prorateCurrentPeriodFlag": a.prorate_current_period_flag,
            "invoiceGrouping": a.invoice_grouping.as_ref().map(reference_json),
            "customFields": a.custom_fields.iter().map(custom_field_json).collect::<Vec<_>>(),
            "extPrice": billed_units * a.unit_price,
            "extCost": billed_units * a.unit_cost,
            "margin": billed_units * (a.unit_price - a.unit_cost),
            "opportunity": a.opportunity.as_ref().map(reference_json),
            "agreementStatus": status,
            "_info": {
                "lastUpdated": a.last_updated.clone().unwrap_or_else(|| SEED_TIME.to_string()),
                "updatedBy": a.updated_by.clone().unwrap_or_else(|| "admin".to_string()),
            },
        })
    }

    fn product_json(&self, p: &SeedProduct) -> Value {
        json!({
            "id": p.id,
            "identifier": p.identifier,
            "description": p.description,
            "customerDescription": p.description,
            "inactiveFlag": p.inactive_flag,
            "subcategory": {"id": 1, "name": "Backup"},
            "type": {"id": 1, "name": "Service"},
            "price": p.price,
            "cost": p.cost,
            "recurringFlag": true,
            "_info": {"lastUpdated": SEED_TIME, "updatedBy": "admin"},
        })
    }
}

fn reference_json(r: &SeedReference) -> Value {
    json!({"id": r.id, "name": r.name})
}

fn custom_field_json(f: &SeedCustomField) -> Value {
    json!({
        "id": f.id,
        "caption": f.caption,
        "type": f.field_type,
        "entryMethod": f.entry_method,
        "numberOfDecimals": f.number_of_decimals,
        "value": f.value,
    })
}

// ---------------------------------------------------------------------------------------------
// Error bodies

/// A ConnectWise-style error response: `{"code": …, "message": …}`.
pub(crate) fn cw_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"code": code, "message": message.into()})),
    )
        .into_response()
}

/// A 400 `InvalidObject` with one `errors` entry, as ConnectWise reports validation failures.
fn invalid_field(resource: &str, field: &str, code: &str, message: impl Into<String>) -> Response {
    let message = message.into();
    (
        StatusCode::BAD_REQUEST,
        Json(json!({
            "code": "InvalidObject",
            "message": format!("{resource} object is invalid"),
            "errors": [{"code": code, "message": message, "resource": resource, "field": field}],
        })),
    )
        .into_response()
}

fn bad_request(message: impl Into<String>) -> Response {
    cw_error(StatusCode::BAD_REQUEST, "InvalidObject", message)
}

fn not_found(message: impl Into<String>) -> Response {
    cw_error(StatusCode::NOT_FOUND, "NotFound", message)
}

fn parse_id(text: &str, what: &str) -> Result<i64, Response> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| bad_request(format!("{text:?} is not a valid {what} id")))
}

// ---------------------------------------------------------------------------------------------
// Router

/// The server: [`routes`] behind a path normalization that treats a trailing slash and doubled
/// slashes as the real API does (`/company/companies/` is `/company/companies`,
/// `/finance/agreements//1001` is `/finance/agreements/1001`; connectpyse, for one, puts a
/// trailing slash on every list and POST URL). It runs before routing, so it wraps the router.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let inner = routes(shared);
    Router::new().fallback(move |req: Request| {
        let inner = inner.clone();
        async move {
            match inner.oneshot(normalize_path(req)).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
    })
}

/// The path as the client sent it, kept for the request log when [`normalize_path`] changed it.
#[derive(Clone)]
struct SentPath(String);

/// Collapses runs of `/` into one and drops a trailing `/` (the root stays `/`).
fn normalized(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    while out.len() > 1 && out.ends_with('/') {
        out.pop();
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

fn normalize_path(mut req: Request) -> Request {
    let path = req.uri().path().to_string();
    let clean = normalized(&path);
    if clean == path {
        return req;
    }
    let target = match req.uri().query() {
        Some(q) => format!("{clean}?{q}"),
        None => clean,
    };
    let mut parts = req.uri().clone().into_parts();
    if let Ok(pq) = target.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
            req.extensions_mut().insert(SentPath(path));
        }
    }
    req
}

fn routes(shared: Arc<Shared>) -> Router {
    let prefix = lock(&shared.store).api_prefix();
    let at = |p: &str| format!("{prefix}{p}");
    let api: Router<Arc<Shared>> = Router::new()
        .route(&at("/company/companies"), get(companies))
        .route(&at("/company/companies/count"), get(companies_count))
        .route(&at("/company/companies/{id}"), get(company))
        .route(&at("/finance/agreements"), get(agreements))
        .route(&at("/finance/agreements/count"), get(agreements_count))
        .route(&at("/finance/agreements/{id}"), get(agreement))
        .route(
            &at("/finance/agreements/{parent}/additions"),
            get(additions).post(create_addition),
        )
        .route(
            &at("/finance/agreements/{parent}/additions/count"),
            get(additions_count),
        )
        .route(
            &at("/finance/agreements/{parent}/additions/{id}"),
            get(addition).patch(patch_addition).delete(delete_addition),
        )
        .route(&at("/procurement/catalog"), get(catalog))
        .route(&at("/procurement/catalog/count"), get(catalog_count))
        .route(&at("/procurement/catalog/{id}"), get(catalog_item))
        .route(&at("/system/info"), get(system_info))
        .route_layer(middleware::from_fn_with_state(shared.clone(), api_guard));
    Router::new()
        .route("/login/companyinfo/{company}", get(company_info))
        .merge(api)
        .fallback(fallback)
        .layer(middleware::from_fn_with_state(shared.clone(), outer))
        .with_state(shared)
}

async fn fallback(uri: Uri) -> Response {
    not_found(format!(
        "The sandbox has no endpoint {} (it serves /login/companyinfo and, below {{codebase}}apis/3.0/, companies, agreements, additions, catalog and system/info)",
        uri.path()
    ))
}

/// Records every request, applies latency and injected faults.
async fn outer(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let _in_flight = InFlight::enter(&shared.in_flight);
    let received = std::time::Instant::now();
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, 64 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => return bad_request("The request body could not be read"),
    };
    let query: Vec<(String, String)> = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
        .map(|q| q.0)
        .unwrap_or_default();
    let mut headers = BTreeMap::new();
    for name in LOGGED_HEADERS {
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
        path: parts
            .extensions
            .get::<SentPath>()
            .map_or_else(|| parts.uri.path().to_string(), |p| p.0.clone()),
        query,
        headers,
        auth_user: basic_user(&parts.headers).map(|(user, _)| user),
        body: body_text
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok()),
        body_text,
        status: 0,
        response_lost: false,
        received,
    };

    let (latency, fault) = lock(&shared.faults).next_fault(parts.method.as_str(), parts.uri.path());
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let response = match fault {
        Some(Injected::RateLimited(secs)) => {
            let mut r = cw_error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                format!("Too many requests; retry after {secs} seconds"),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            r
        }
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
    let response = with_json_body(response, &entry.method, &entry.path);
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

/// The answers axum makes by itself (405 for a method a path does not serve, 413 for a body past
/// the limit) get ConnectWise's `{"code", "message"}` body, like every other error; the `Allow`
/// header of a 405 is kept.
fn with_json_body(response: Response, method: &str, path: &str) -> Response {
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    let replacement = match response.status() {
        _ if json => return response,
        StatusCode::METHOD_NOT_ALLOWED => cw_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("The requested resource does not support http method '{method}' ({path})"),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => cw_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            "The request body is too large",
        ),
        _ => return response,
    };
    let mut replacement = replacement;
    if let Some(allow) = response.headers().get(header::ALLOW) {
        replacement
            .headers_mut()
            .insert(header::ALLOW, allow.clone());
    }
    replacement
}

/// An injected 5xx (500 unless `status` is another 5xx).
fn server_error(status: u16) -> Response {
    let status = StatusCode::from_u16(status)
        .ok()
        .filter(|s| s.is_server_error())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    cw_error(
        status,
        "InternalServerError",
        "An unexpected error occurred (injected by the sandbox)",
    )
}

/// A fault chosen for one request.
pub(crate) enum Injected {
    RateLimited(u64),
    ServerError(u16),
    /// Carry the request out, then lose the answer.
    LoseAfterCommit(LostResponse),
}

impl FaultState {
    /// The latency to add and the fault (if any) for a request, counting the fault down.
    pub(crate) fn next_fault(
        &mut self,
        method: &str,
        path: &str,
    ) -> (std::time::Duration, Option<Injected>) {
        let f = &mut self.faults;
        let applies = (f.only_methods.is_empty()
            || f.only_methods
                .iter()
                .any(|m| m.eq_ignore_ascii_case(method)))
            && f.only_path_containing
                .as_deref()
                .is_none_or(|p| path.contains(p));
        let fault = if !applies {
            None
        } else if f.rate_limited > 0 {
            f.rate_limited -= 1;
            Some(Injected::RateLimited(f.retry_after_secs))
        } else if f.server_errors > 0 {
            f.server_errors -= 1;
            Some(Injected::ServerError(f.server_error_status))
        } else if f.lose_responses_after_commit > 0 {
            f.lose_responses_after_commit -= 1;
            Some(Injected::LoseAfterCommit(f.lost_response))
        } else {
            None
        };
        (f.latency, fault)
    }
}

/// `company+public:private` from a Basic `Authorization` header, split at the first `:`.
fn basic_user(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Auth, clientId and security-role checks for every REST call.
async fn api_guard(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let login = lock(&shared.store).login.clone();
    let unauthorized = |message: &str| cw_error(StatusCode::UNAUTHORIZED, "Unauthorized", message);
    match basic_user(req.headers()) {
        None => {
            return unauthorized(
                "Authentication failed: send Authorization: Basic base64(company+publicKey:privateKey)",
            );
        }
        Some((user, private)) => {
            let ok = user.split_once('+').is_some_and(|(company, public)| {
                company.eq_ignore_ascii_case(&login.company)
                    && public == login.public_key
                    && private == login.private_key
            });
            if !ok {
                return unauthorized(
                    "Authentication failed: the company, public key or private key is wrong",
                );
            }
        }
    }
    let client_id = req
        .headers()
        .get("clientid")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or("");
    if client_id.is_empty() {
        return unauthorized(
            "A clientId header is required; register one at https://developer.connectwise.com/ClientID",
        );
    }
    if login
        .client_id
        .as_deref()
        .is_some_and(|id| !id.eq_ignore_ascii_case(client_id))
    {
        return unauthorized(&format!("clientId {client_id} is not registered"));
    }
    let prefix = lock(&shared.store).api_prefix();
    let full = req.uri().path();
    let path = full
        .strip_prefix(&prefix)
        .unwrap_or(full)
        .trim_start_matches('/')
        .to_string();
    if login
        .deny
        .iter()
        .any(|d| path.starts_with(d.trim_matches('/')))
    {
        return cw_error(
            StatusCode::FORBIDDEN,
            "Security",
            format!(
                "You do not have security permission to access {path}. Ask your administrator to update the API member's security role."
            ),
        );
    }
    let writes = matches!(
        *req.method(),
        Method::POST | Method::PATCH | Method::PUT | Method::DELETE
    );
    if login.read_only && writes {
        return cw_error(
            StatusCode::FORBIDDEN,
            "Security",
            format!(
                "You do not have security permission to edit {path}. Ask your administrator to update the API member's security role."
            ),
        );
    }
    if matches!(*req.method(), Method::POST | Method::PATCH | Method::PUT) {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if essence != "application/json" && !essence.ends_with("+json") {
            return cw_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                format!("Content-Type {content_type:?} is not supported; send application/json"),
            );
        }
    }
    let mut response = next.run(req).await;
    response
        .headers_mut()
        .insert("api-current-version", HeaderValue::from_static(API_VERSION));
    response
}

async fn company_info(State(shared): State<Arc<Shared>>, Path(company): Path<String>) -> Response {
    let store = lock(&shared.store);
    if !company.eq_ignore_ascii_case(&store.login.company) {
        // What ConnectWise answers for a login company it does not know: HTTP 200 with `null`
        // (django-connectwise `CompanyInfoManager.get_company_info`).
        return Json(Value::Null).into_response();
    }
    Json(json!({
        "CompanyName": store.login.company_name.clone().unwrap_or_else(|| store.login.company.clone()),
        "Codebase": store.codebase,
        "VersionCode": format!("v{API_VERSION}"),
        "VersionNumber": "v4.6.2025.8",
        "CompanyID": store.login.company,
        "IsCloud": false,
        "SiteUrl": shared.addr.to_string(),
        "AllowCompanyIdOverride": false,
    }))
    .into_response()
}

async fn system_info() -> Response {
    Json(json!({
        "version": format!("v{API_VERSION}"),
        "isCloud": false,
        "serverTimeZone": "Eastern Standard Time",
        "cloudRegion": "NA",
    }))
    .into_response()
}

// ---------------------------------------------------------------------------------------------
// Listing

/// What a list or count call needs from its request.
pub(crate) struct ListCtx {
    pairs: Vec<(String, String)>,
    host: String,
    path: String,
    forward_only: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for ListCtx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let pairs = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map(|q| q.0)
            .map_err(|e| bad_request(format!("The query string is invalid: {e}")))?;
        let path = parts.uri.path().to_string();
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1")
            .to_string();
        let forward_only = parts
            .headers
            .get("pagination-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("forward-only"));
        Ok(ListCtx {
            pairs,
            host,
            path,
            forward_only,
        })
    }
}

impl ListCtx {
    fn param(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// This URL with `replace` params set (others kept in order).
    fn url_with(&self, replace: &[(&str, String)]) -> String {
        let mut pairs: Vec<(String, String)> = self
            .pairs
            .iter()
            .filter(|(k, _)| !replace.iter().any(|(r, _)| k.eq_ignore_ascii_case(r)))
            .cloned()
            .collect();
        for (k, v) in replace {
            pairs.push(((*k).to_string(), v.clone()));
        }
        let query: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        format!("http://{}{}?{}", self.host, self.path, query.join("&"))
    }
}

fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/' | b',') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Filters by `conditions`; the sample shows which fields the resource has.
fn filter(records: Vec<Value>, sample: &Value, ctx: &ListCtx) -> Result<Vec<Value>, Response> {
    for unsupported in ["childConditions", "customFieldConditions"] {
        if ctx.param(unsupported).is_some_and(|v| !v.trim().is_empty()) {
            return Err(bad_request(format!(
                "{unsupported} is not supported by the unitsync sandbox"
            )));
        }
    }
    let Some(text) = ctx.param("conditions").filter(|c| !c.trim().is_empty()) else {
        return Ok(records);
    };
    let expr = conditions::parse(text)
        .map_err(|e| bad_request(format!("Invalid conditions {text:?}: {e}")))?;
    if let Some(path) = expr.unknown_path(sample) {
        return Err(bad_request(format!(
            "Invalid conditions {text:?}: unknown field {path:?}"
        )));
    }
    Ok(records.into_iter().filter(|r| expr.matches(r)).collect())
}

fn count_response(records: Vec<Value>, sample: &Value, ctx: &ListCtx) -> Response {
    match filter(records, sample, ctx) {
        Ok(r) => Json(json!({"count": r.len()})).into_response(),
        Err(e) => e,
    }
}

fn positive(ctx: &ListCtx, name: &str) -> Result<Option<usize>, Response> {
    match ctx.param(name) {
        None => Ok(None),
        Some(v) if v.trim().is_empty() => Ok(None),
        Some(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .map(Some)
            .ok_or_else(|| {
                bad_request(format!(
                    "{name} must be a whole number of 1 or more, not {v:?}"
                ))
            }),
    }
}

fn compare_values(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .unwrap_or(0.0)
            .partial_cmp(&y.as_f64().unwrap_or(0.0))
            .unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.to_lowercase().cmp(&y.to_lowercase()),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => a.to_string().cmp(&b.to_string()),
    }
}

fn strip_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        other => other,
    }
}

/// Keeps only the comma-separated `fields` (nested with `/`).
fn project(record: &Value, fields: &[&str]) -> Value {
    let mut out = Map::new();
    for field in fields {
        let parts: Vec<&str> = field.split('/').collect();
        let mut src = record;
        let mut found = true;
        for part in &parts {
            match src.get(part) {
                Some(v) => src = v,
                None => {
                    found = false;
                    break;
                }
            }
        }
        if !found {
            continue;
        }
        let mut dst = &mut out;
        for part in &parts[..parts.len() - 1] {
            let entry = dst
                .entry(part.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            dst = entry.as_object_mut().expect("object");
        }
        dst.insert(parts[parts.len() - 1].to_string(), src.clone());
    }
    Value::Object(out)
}

fn list_response(records: Vec<Value>, sample: &Value, ctx: &ListCtx) -> Response {
    match list_inner(records, sample, ctx) {
        Ok(r) | Err(r) => r,
    }
}

fn list_inner(records: Vec<Value>, sample: &Value, ctx: &ListCtx) -> Result<Response, Response> {
    let mut records = filter(records, sample, ctx)?;
    let page_size = positive(ctx, "pageSize")?
        .unwrap_or(DEFAULT_PAGE_SIZE)
        .min(MAX_PAGE_SIZE);
    let page = positive(ctx, "page")?.unwrap_or(1);

    // orderBy: "field [asc|desc], …"; default id ascending.
    let mut keys: Vec<(String, bool)> = Vec::new();
    if let Some(order) = ctx.param("orderBy").filter(|o| !o.trim().is_empty()) {
        for item in order.split(',') {
            let mut words = item.split_whitespace();
            let field = words.next().unwrap_or("");
            let desc = match words.next().map(str::to_ascii_lowercase).as_deref() {
                None | Some("asc") => false,
                Some("desc") => true,
                Some(other) => {
                    return Err(bad_request(format!(
                        "orderBy: expected asc or desc, found {other:?}"
                    )));
                }
            };
            if field.is_empty() || !conditions::has_path(sample, field) || words.next().is_some() {
                return Err(bad_request(format!("orderBy: cannot order by {item:?}")));
            }
            keys.push((field.to_string(), desc));
        }
    }
    keys.push(("id".to_string(), false));
    records.sort_by(|a, b| {
        for (field, desc) in &keys {
            let o = compare_values(conditions::lookup(a, field), conditions::lookup(b, field));
            let o = if *desc { o.reverse() } else { o };
            if o.is_ne() {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    });

    let fields: Vec<&str> = ctx
        .param("fields")
        .map(|f| {
            f.split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let shape = |r: &Value| {
        let r = if fields.is_empty() {
            r.clone()
        } else {
            project(r, &fields)
        };
        strip_nulls(r)
    };

    let mut links = Vec::new();
    let body: Vec<Value> = if ctx.forward_only {
        let after = match ctx.param("pageId").filter(|v| !v.trim().is_empty()) {
            None => 0,
            Some(v) => v
                .trim()
                .parse::<i64>()
                .map_err(|_| bad_request(format!("pageId must be a record id, not {v:?}")))?,
        };
        records.sort_by_key(|r| r["id"].as_i64().unwrap_or(0));
        let rest: Vec<&Value> = records
            .iter()
            .filter(|r| r["id"].as_i64().unwrap_or(0) > after)
            .collect();
        let page: Vec<&Value> = rest.iter().take(page_size).copied().collect();
        if rest.len() > page.len()
            && let Some(last) = page.last()
        {
            let id = last["id"].as_i64().unwrap_or(0);
            links.push(format!(
                "<{}>; rel=\"next\"",
                ctx.url_with(&[("pageId", id.to_string())])
            ));
        }
        page.into_iter().map(shape).collect()
    } else {
        let total = records.len();
        let last = total.div_ceil(page_size).max(1);
        if last > 1 {
            let url = |p: usize| ctx.url_with(&[("page", p.to_string())]);
            if page > 1 {
                links.push(format!("<{}>; rel=\"first\"", url(1)));
                links.push(format!("<{}>; rel=\"prev\"", url((page - 1).min(last))));
            }
            if page < last {
                links.push(format!("<{}>; rel=\"next\"", url(page + 1)));
                links.push(format!("<{}>; rel=\"last\"", url(last)));
            }
        }
        records
            .iter()
            .skip((page - 1).saturating_mul(page_size))
            .take(page_size)
            .map(shape)
            .collect()
    };
    let mut response = Json(Value::Array(body)).into_response();
    if !links.is_empty()
        && let Ok(v) = HeaderValue::from_str(&links.join(", "))
    {
        response.headers_mut().insert(header::LINK, v);
    }
    Ok(response)
}

// ---------------------------------------------------------------------------------------------
// Resources

fn sample_company(store: &Store) -> Value {
    store.company_json(&SeedCompany::default())
}
fn sample_agreement(store: &Store) -> Value {
    let mut v = store.agreement_json(&SeedAgreement::default());
    v["company"] = json!({"id": 0, "identifier": "", "name": ""});
    v
}
fn sample_addition(store: &Store) -> Value {
    store.addition_json(&SeedAddition::default())
}
fn sample_product(store: &Store) -> Value {
    store.product_json(&SeedProduct::default())
}

fn all_companies(store: &Store) -> Vec<Value> {
    store
        .companies
        .values()
        .map(|c| store.company_json(c))
        .collect()
}
fn all_agreements(store: &Store) -> Vec<Value> {
    store
        .agreements
        .values()
        .map(|a| store.agreement_json(a))
        .collect()
}
fn all_products(store: &Store) -> Vec<Value> {
    store
        .products
        .values()
        .map(|p| store.product_json(p))
        .collect()
}
fn agreement_additions(store: &Store, parent: &str) -> Result<Vec<Value>, Response> {
    let parent = parse_id(parent, "agreement")?;
    if !store.agreements.contains_key(&parent) {
        return Err(not_found(format!(
            "Agreement with id {parent} was not found"
        )));
    }
    Ok(store
        .additions
        .values()
        .filter(|a| a.agreement == parent)
        .map(|a| store.addition_json(a))
        .collect())
}

async fn companies(State(s): State<Arc<Shared>>, ctx: ListCtx) -> Response {
    let store = lock(&s.store);
    list_response(all_companies(&store), &sample_company(&store), &ctx)
}
async fn companies_count(State(s): State<Arc<Shared>>, ctx: ListCtx) -> Response {
    let store = lock(&s.store);
    count_response(all_companies(&store), &sample_company(&store), &ctx)
}
async fn company(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let store = lock(&s.store);
    let id = match parse_id(&id, "company") {
        Ok(id) => id,
        Err(r) => return r,
    };
    match store.companies.get(&id) {
        Some(c) => Json(strip_nulls(store.company_json(c))).into_response(),
        None => not_found(format!("Company with id {id} was not found")),
    }
}

async fn agreements(State(s): State<Arc<Shared>>, ctx: ListCtx) -> Response {
    let store = lock(&s.store);
    list_response(all_agreements(&store), &sample_agreement(&store), &ctx)
}
async fn agreements_count(State(s): State<Arc<Shared>>, ctx: ListCtx) -> Response {
    let store = lock(&s.store);
    count_response(all_agreements(&store), &sample_agreement(&store), &ctx)
}
async fn agreement(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let store = lock(&s.store);
    let id = match parse_id(&id, "agreement") {
        Ok(id) => id,
        Err(r) => return r,
    };
    match store.agreements.get(&id) {
        Some(a) => Json(strip_nulls(store.agreement_json(a))).into_response(),
        None => not_found(format!("Agreement with id {id} was not found")),
    }
}

async fn catalog(State(s): State<Arc<Shared>>, ctx: ListCtx) -> Response {
    let store = lock(&s.store);
    list_response(all_products(&store), &sample_product(&store), &ctx)
}
async fn catalog_count(State(s): State<Arc<Shared>>, ctx: ListCtx) -> Response {
    let store = lock(&s.store);
    count_response(all_products(&store), &sample_product(&store), &ctx)
}
async fn catalog_item(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let store = lock(&s.store);
    let id = match parse_id(&id, "catalog item") {
        Ok(id) => id,
        Err(r) => return r,
    };
    match store.products.get(&id) {
        Some(p) => Json(strip_nulls(store.product_json(p))).into_response(),
        None => not_found(format!("Catalog item with id {id} was not found")),
    }
}

async fn additions(
    State(s): State<Arc<Shared>>,
    Path(parent): Path<String>,
    ctx: ListCtx,
) -> Response {
    let store = lock(&s.store);
    match agreement_additions(&store, &parent) {
        Ok(records) => list_response(records, &sample_addition(&store), &ctx),
        Err(r) => r,
    }
}
async fn additions_count(
    State(s): State<Arc<Shared>>,
    Path(parent): Path<String>,
    ctx: ListCtx,
) -> Response {
    let store = lock(&s.store);
    match agreement_additions(&store, &parent) {
        Ok(records) => count_response(records, &sample_addition(&store), &ctx),
        Err(r) => r,
    }
}

/// The addition `id` on agreement `parent`, or the 400/404 response.
fn find_addition(store: &Store, parent: &str, id: &str) -> Result<(i64, i64), Response> {
    let parent = parse_id(parent, "agreement")?;
    let id = parse_id(id, "addition")?;
    if !store.agreements.contains_key(&parent) {
        return Err(not_found(format!(
            "Agreement with id {parent} was not found"
        )));
    }
    match store.additions.get(&id) {
        Some(a) if a.agreement == parent => Ok((parent, id)),
        _ => Err(not_found(format!(
            "Addition with id {id} was not found on agreement {parent}"
        ))),
    }
}

async fn addition(
    State(s): State<Arc<Shared>>,
    Path((parent, id)): Path<(String, String)>,
) -> Response {
    let store = lock(&s.store);
    match find_addition(&store, &parent, &id) {
        Ok((_, id)) => {
            Json(strip_nulls(store.addition_json(&store.additions[&id]))).into_response()
        }
        Err(r) => r,
    }
}

fn now() -> String {
    crate::clock::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Sets one field of an addition from a JSON value (`None` = remove).
/// Addition fields ConnectWise computes or assigns (lower-cased): a PATCH of one is refused, and
/// a POST ignores them.
const READ_ONLY_ADDITION_FIELDS: [&str; 12] = [
    "id",
    "agreementid",
    "agreementstatus",
    "extprice",
    "extcost",
    "margin",
    "billedquantity",
    "_info",
    "prorateprice",
    "proratecost",
    "extendedprorateprice",
    "extendedproratecost",
];

fn set_field(
    store: &Store,
    a: &mut SeedAddition,
    path: &str,
    value: Option<&Value>,
) -> Result<(), Response> {
    let field = path.trim_start_matches('/');
    let invalid =
        |code: &str, message: String| Err(invalid_field("addition", field, code, message));
    let number = |v: Option<&Value>| -> Result<f64, Response> {
        match v.and_then(Value::as_f64) {
            Some(n) if n.is_finite() => Ok(n),
            _ => Err(invalid_field(
                "addition",
                field,
                "InvalidValue",
                format!("{field} must be a number"),
            )),
        }
    };
    let text = |v: Option<&Value>, max: usize| -> Result<Option<String>, Response> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(s.clone())),
            Some(Value::String(_)) => Err(invalid_field(
                "addition",
                field,
                "MaxLengthField",
                format!("{field} is longer than {max} characters"),
            )),
            Some(_) => Err(invalid_field(
                "addition",
                field,
                "InvalidValue",
                format!("{field} must be a string"),
            )),
        }
    };
    let date = |v: Option<&Value>| -> Result<Option<String>, Response> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => normalize_datetime(s).map(Some).ok_or_else(|| {
                invalid_field(
                    "addition",
                    field,
                    "InvalidValue",
                    format!(
                        "{field} must be a UTC datetime such as 2025-01-01T00:00:00Z, not {s:?}"
                    ),
                )
            }),
            Some(_) => Err(invalid_field(
                "addition",
                field,
                "InvalidValue",
                format!("{field} must be a datetime string"),
            )),
        }
    };
    let flag = |v: Option<&Value>| -> Result<bool, Response> {
        match v {
            Some(Value::Bool(b)) => Ok(*b),
            _ => Err(invalid_field(
                "addition",
                field,
                "InvalidValue",
                format!("{field} must be true or false"),
            )),
        }
    };
    // `{"id": N, …}` (other keys of a reference are ignored, as ConnectWise does); null clears.
    let reference = |v: Option<&Value>| -> Result<Option<SeedReference>, Response> {
        let lower = field.to_ascii_lowercase();
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(r) => match r.get("id").and_then(Value::as_i64).filter(|id| *id > 0) {
                Some(id) => Ok(Some(SeedReference {
                    id,
                    name: store
                        .reference_names
                        .iter()
                        .find(|((f, i), _)| *f == lower && *i == id)
                        .map(|(_, name)| name.clone()),
                })),
                None => Err(invalid_field(
                    "addition",
                    field,
                    "InvalidValue",
                    format!("{field} must be a reference such as {{\"id\": 1}}"),
                )),
            },
        }
    };
    let custom_fields = |v: Option<&Value>| -> Result<Vec<SeedCustomField>, Response> {
        let bad = || {
            invalid_field(
                "addition",
                field,
                "InvalidValue",
                format!("{field} must be a list of {{\"id\": N, \"value\": …}}"),
            )
        };
        match v {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    let id = item.get("id").and_then(Value::as_i64).ok_or_else(bad)?;
                    let text = |k: &str| item.get(k).and_then(Value::as_str).map(str::to_string);
                    let value = match item.get("value") {
                        None | Some(Value::Null) => None,
                        Some(v @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) => {
                            Some(v.clone())
                        }
                        Some(_) => return Err(bad()),
                    };
                    Ok(SeedCustomField {
                        id,
                        caption: text("caption"),
                        field_type: text("type"),
                        entry_method: text("entryMethod"),
                        number_of_decimals: item.get("numberOfDecimals").and_then(Value::as_i64),
                        value,
                    })
                })
                .collect(),
            Some(_) => Err(bad()),
        }
    };
    let required = |v: Option<&Value>| -> Result<(), Response> {
        if v.is_none_or(Value::is_null) {
            Err(invalid_field(
                "addition",
                field,
                "NullValue",
                format!("{field} is required"),
            ))
        } else {
            Ok(())
        }
    };
    match field.to_ascii_lowercase().as_str() {
        "quantity" => a.quantity = number(value)?,
        "lessincluded" => a.less_included = number(value)?,
        "unitprice" => a.unit_price = number(value)?,
        "unitcost" => a.unit_cost = number(value)?,
        "billcustomer" => {
            required(value)?;
            match value
                .and_then(Value::as_str)
                .and_then(|s| BILL_CUSTOMER.iter().find(|b| b.eq_ignore_ascii_case(s)))
            {
                Some(b) => a.bill_customer = (*b).to_string(),
                None => {
                    return invalid(
                        "InvalidValue",
                        format!("billCustomer must be one of {}", BILL_CUSTOMER.join(", ")),
                    );
                }
            }
        }
        "taxableflag" => a.taxable_flag = flag(value)?,
        "effectivedate" => a.effective_date = date(value)?,
        "cancelleddate" => a.cancelled_date = date(value)?,
        "description" => a.description = text(value, 6000)?,
        "invoicedescription" => a.invoice_description = text(value, 6000)?,
        "serialnumber" => a.serial_number = text(value, 50)?,
        "uom" => a.uom = text(value, 6000)?,
        "sequencenumber" => a.sequence_number = number(value)?,
        "purchaseitemflag" => a.purchase_item_flag = flag(value)?,
        "specialorderflag" => a.special_order_flag = flag(value)?,
        "proratecurrentperiodflag" => a.prorate_current_period_flag = flag(value)?,
        "invoicegrouping" => a.invoice_grouping = reference(value)?,
        "opportunity" => a.opportunity = reference(value)?,
        "customfields" => a.custom_fields = custom_fields(value)?,
        "product" => {
            required(value)?;
            let v = value.expect("checked");
            let found = match (
                v.get("id").and_then(Value::as_i64),
                v.get("identifier").and_then(Value::as_str),
            ) {
                (Some(id), _) => store.products.get(&id),
                (None, Some(ident)) => store
                    .products
                    .values()
                    .find(|p| p.identifier.eq_ignore_ascii_case(ident)),
                _ => {
                    return invalid(
                        "InvalidValue",
                        "product must be {\"id\": N} or {\"identifier\": \"…\"}".into(),
                    );
                }
            };
            match found {
                Some(p) => {
                    a.product = super::seed::SeedProductRef {
                        id: p.id,
                        identifier: p.identifier.clone(),
                        description: Some(p.description.clone()),
                    }
                }
                None => {
                    return invalid(
                        "NotFound",
                        format!("Product {v} was not found in the catalog"),
                    );
                }
            }
        }
        f if READ_ONLY_ADDITION_FIELDS.contains(&f) => {
            return invalid("ReadOnlyField", format!("{field} is read-only"));
        }
        _ => return invalid("InvalidField", format!("addition has no field {field:?}")),
    }
    Ok(())
}

async fn patch_addition(
    State(s): State<Arc<Shared>>,
    Path((parent, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let mut store = lock(&s.store);
    let id = match find_addition(&store, &parent, &id) {
        Ok((_, id)) => id,
        Err(r) => return r,
    };
    let ops: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad_request(format!("The request body is not valid JSON: {e}")),
    };
    let Some(ops) = ops.as_array().filter(|o| !o.is_empty()) else {
        return bad_request(
            "The request body must be a non-empty JSON array of patch operations, such as [{\"op\":\"replace\",\"path\":\"quantity\",\"value\":4}]",
        );
    };
    let mut updated = store.additions[&id].clone();
    for op in ops {
        let (Some(kind), Some(path)) = (
            op.get("op").and_then(Value::as_str),
            op.get("path").and_then(Value::as_str),
        ) else {
            return bad_request("Every patch operation needs \"op\" and \"path\" strings");
        };
        let result = match kind.to_ascii_lowercase().as_str() {
            "replace" | "add" => match op.get("value") {
                Some(v) => set_field(&store, &mut updated, path, Some(v)),
                None => Err(bad_request(format!(
                    "The {kind} operation on {path:?} needs a \"value\""
                ))),
            },
            "remove" => set_field(&store, &mut updated, path, None),
            other => Err(bad_request(format!(
                "Patch operation {other:?} is not supported; use add, replace or remove"
            ))),
        };
        if let Err(r) = result {
            return r;
        }
    }
    updated.last_updated = Some(now());
    updated.updated_by = Some(store.login.member_identifier().to_string());
    let json = strip_nulls(store.addition_json(&updated));
    store.additions.insert(id, updated);
    Json(json).into_response()
}

async fn create_addition(
    State(s): State<Arc<Shared>>,
    Path(parent): Path<String>,
    body: Bytes,
) -> Response {
    let mut store = lock(&s.store);
    let parent = match parse_id(&parent, "agreement") {
        Ok(p) => p,
        Err(r) => return r,
    };
    if !store.agreements.contains_key(&parent) {
        return not_found(format!("Agreement with id {parent} was not found"));
    }
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad_request(format!("The request body is not valid JSON: {e}")),
    };
    let Some(fields) = body.as_object() else {
        return bad_request("The request body must be a JSON object (an addition)");
    };
    for required in ["product", "billCustomer"] {
        if fields.get(required).is_none_or(Value::is_null) {
            return invalid_field(
                "addition",
                required,
                "NullValue",
                format!("{required} is required"),
            );
        }
    }
    let mut a = SeedAddition {
        id: store.next_addition_id,
        agreement: parent,
        quantity: 1.0,
        ..SeedAddition::default()
    };
    let order = ["product"];
    let mut keys: Vec<&String> = fields.keys().collect();
    keys.sort_by_key(|k| !order.contains(&k.as_str()));
    for key in keys {
        let lower = key.to_ascii_lowercase();
        if READ_ONLY_ADDITION_FIELDS.contains(&lower.as_str()) {
            continue; // read-only (computed) fields are ignored on create
        }
        if let Err(r) = set_field(&store, &mut a, key, Some(&fields[key])) {
            return r;
        }
        if lower == "product"
            && let Some(p) = store.products.get(&a.product.id)
        {
            if !fields.keys().any(|k| k.eq_ignore_ascii_case("unitPrice")) {
                a.unit_price = p.price;
            }
            if !fields.keys().any(|k| k.eq_ignore_ascii_case("unitCost")) {
                a.unit_cost = p.cost;
            }
        }
    }
    a.last_updated = Some(now());
    a.updated_by = Some(store.login.member_identifier().to_string());
    store.next_addition_id += 1;
    let json = strip_nulls(store.addition_json(&a));
    store.additions.insert(a.id, a);
    (StatusCode::CREATED, Json(json)).into_response()
}

async fn delete_addition(
    State(s): State<Arc<Shared>>,
    Path((parent, id)): Path<(String, String)>,
) -> Response {
    let mut store = lock(&s.store);
    match find_addition(&store, &parent, &id) {
        Ok((_, id)) => {
            store.additions.remove(&id);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(r) => r,
    }
}
