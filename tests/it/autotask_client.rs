//! The Autotask client against its own small, recording stub on 127.0.0.1 (not the sandbox: these
//! tests pin the exact requests the client sends, and share no wire types with the sandbox).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use unitsync::config::{AutotaskSettings, Mapping, UpdatePolicy};
use unitsync::plan::RecordStatus;
use unitsync::psa::autotask::{AutotaskOptions, Credentials, JOURNAL_PATH};
use unitsync::psa::{
    AppliedChange, AutotaskClient, CheckKind, CheckOutcome, LineChange, Psa, PsaError, RetryPolicy,
};
use unitsync::quantity::Quantity;

const USER: &str = "apiuser@computech.example";
const SECRET: &str = "s3cretVALUE9876";
const CODE: &str = "INTEGRATIONCODE42";
const API: &str = "/atservicesrest/v1.0";

fn effective() -> jiff::civil::Date {
    jiff::civil::date(2026, 12, 1)
}

// ---------------------------------------------------------------------------------------------
// The stub: a tiny Autotask look-alike that records every request.

#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    body: Option<Value>,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn entity(&self) -> String {
        self.path
            .strip_prefix(&format!("{API}/"))
            .unwrap_or(&self.path)
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string()
    }
}

struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Value,
}

fn ok(body: Value) -> Reply {
    Reply {
        status: 200,
        headers: Vec::new(),
        body,
    }
}

fn status(code: u16, body: Value) -> Reply {
    Reply {
        status: code,
        headers: Vec::new(),
        body,
    }
}

/// Returns `Some` to override the fake world's answer (n = requests with this method and path
/// before this one).
type Hook = Box<dyn Fn(&Recorded, usize) -> Option<Reply> + Send + Sync>;

#[derive(Default)]
struct World {
    companies: Vec<Value>,
    contracts: Vec<Value>,
    contract_services: Vec<Value>,
    services: Vec<Value>,
    units: Mutex<Vec<Value>>,
    adjustments: Mutex<Vec<Value>>,
    /// (threshold, used)
    threshold: (u64, u64),
    base: Mutex<String>,
    /// Saved queries for `nextPageUrl`, by key.
    pages: Mutex<Vec<Value>>,
}

impl World {
    fn rows(&self, entity: &str) -> Vec<Value> {
        match entity {
            "Companies" => self.companies.clone(),
            "Contracts" => self.contracts.clone(),
            "ContractServices" => self.contract_services.clone(),
            "Services" => self.services.clone(),
            "ContractServiceUnits" => self.units.lock().unwrap().clone(),
            _ => Vec::new(),
        }
    }

    fn query(&self, entity: &str, query: &Value, offset: usize) -> Reply {
        let max = query["MaxRecords"].as_u64().unwrap_or(500) as usize;
        let filters = query["filter"].as_array().cloned().unwrap_or_default();
        let matched: Vec<Value> = self
            .rows(entity)
            .into_iter()
            .filter(|row| filters.iter().all(|f| matches(row, f)))
            .collect();
        let page: Vec<Value> = matched.iter().skip(offset).take(max).cloned().collect();
        let next = if offset + max < matched.len() {
            let mut pages = self.pages.lock().unwrap();
            pages.push(query.clone());
            Value::String(format!(
                "{}{API}/{entity}/query/next?key={}&offset={}",
                self.base.lock().unwrap(),
                pages.len() - 1,
                offset + max
            ))
        } else {
            Value::Null
        };
        ok(json!({
            "items": page,
            "pageDetails": {"count": page.len(), "requestCount": max, "prevPageUrl": null, "nextPageUrl": next}
        }))
    }

    fn answer(&self, r: &Recorded) -> Reply {
        let rest = r.path.strip_prefix(API).unwrap_or(&r.path);
        let parts: Vec<&str> = rest.trim_matches('/').split('/').collect();
        match (r.method.as_str(), parts.as_slice()) {
            ("GET", ["zoneInformation"]) => ok(json!({
                "zoneName": "Stub Zone",
                "url": format!("{}/atservicesrest/", self.base.lock().unwrap()),
                "webUrl": "https://ww1.example/",
                "ci": 1
            })),
            ("GET", ["ThresholdInformation"]) => ok(json!({
                "externalRequestThreshold": self.threshold.0,
                "requestThresholdTimeframe": 60,
                "currentTimeframeRequestCount": self.threshold.1
            })),
            ("POST", [entity, "query"]) => self.query(entity, r.body.as_ref().unwrap(), 0),
            ("POST", [entity, "query", "count"]) => {
                let filters = r.body.as_ref().unwrap()["filter"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let n = self
                    .rows(entity)
                    .iter()
                    .filter(|row| filters.iter().all(|f| matches(row, f)))
                    .count();
                ok(json!({"queryCount": n}))
            }
            ("GET", [_, "query", "next"]) => status(
                405,
                json!({"Message": "The requested resource does not support http method 'GET'."}),
            ),
            ("POST", [entity, "query", "next"]) => {
                let param = |n: &str| {
                    r.query
                        .iter()
                        .find(|(k, _)| k == n)
                        .map(|(_, v)| v.parse::<usize>().unwrap())
                        .unwrap()
                };
                let saved = self.pages.lock().unwrap()[param("key")].clone();
                if r.body.as_ref() != Some(&saved) {
                    return status(400, json!({"errors": ["not the first page's query"]}));
                }
                self.query(entity, &saved, param("offset"))
            }
            ("POST", ["ContractServiceAdjustments"]) => {
                let body = r.body.clone().unwrap();
                let cs = body["contractServiceID"].as_u64().unwrap();
                let from = body["effectiveDate"].as_str().unwrap()[..10].to_string();
                let change = body["unitChange"].as_i64().unwrap();
                for row in self.units.lock().unwrap().iter_mut() {
                    if row["contractServiceID"].as_u64() == Some(cs)
                        && row["endDate"].as_str().unwrap()[..10] >= *from
                    {
                        row["units"] = json!(row["units"].as_i64().unwrap() + change);
                    }
                }
                let mut adjustments = self.adjustments.lock().unwrap();
                adjustments.push(body);
                ok(json!({"itemId": 90000 + adjustments.len()}))
            }
            _ => status(404, json!({"errors": [format!("no route {}", r.path)]})),
        }
    }
}

fn matches(row: &Value, filter: &Value) -> bool {
    let field = filter["field"].as_str().unwrap();
    let value = &filter["value"];
    let actual = row
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(field))
        .map(|(_, v)| v.clone())
        .unwrap_or(Value::Null);
    let same = |a: &Value, b: &Value| match (a, b) {
        (Value::String(x), Value::String(y)) => x.eq_ignore_ascii_case(y),
        _ => a == b,
    };
    let cmp = |a: &Value, b: &Value| match (a, b) {
        (Value::String(x), Value::String(y)) => x.as_str().cmp(y.as_str()),
        _ => a
            .as_f64()
            .unwrap()
            .partial_cmp(&b.as_f64().unwrap())
            .unwrap(),
    };
    match filter["op"].as_str().unwrap() {
        "eq" => same(&actual, value),
        "in" => value.as_array().unwrap().iter().any(|v| same(&actual, v)),
        "lt" => cmp(&actual, value).is_lt(),
        "lte" => cmp(&actual, value).is_le(),
        "gte" => cmp(&actual, value).is_ge(),
        op => panic!("stub does not know op {op}"),
    }
}

struct StubState {
    world: World,
    hook: Option<Hook>,
    delay: Duration,
    requests: Mutex<Vec<Recorded>>,
    in_flight: Mutex<BTreeMap<String, (usize, usize)>>,
}

struct Stub {
    url: String,
    state: Arc<StubState>,
    dir: tempfile::TempDir,
}

async fn handle(
    State(state): State<Arc<StubState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = Query::<Vec<(String, String)>>::try_from_uri(&uri)
        .map(|q| q.0)
        .unwrap_or_default();
    let recorded = Recorded {
        method: method.to_string(),
        path: uri.path().to_string(),
        query,
        headers,
        body: (!body.is_empty()).then(|| serde_json::from_slice(&body).unwrap()),
    };
    let entity = recorded.entity();
    {
        let mut flights = state.in_flight.lock().unwrap();
        let e = flights.entry(entity.clone()).or_default();
        e.0 += 1;
        e.1 = e.1.max(e.0);
    }
    if !state.delay.is_zero() {
        tokio::time::sleep(state.delay).await;
    }
    let n = {
        let mut requests = state.requests.lock().unwrap();
        let n = requests
            .iter()
            .filter(|r| r.method == recorded.method && r.path == recorded.path)
            .count();
        requests.push(recorded.clone());
        n
    };
    let reply = state
        .hook
        .as_ref()
        .and_then(|hook| hook(&recorded, n))
        .unwrap_or_else(|| state.world.answer(&recorded));
    state.in_flight.lock().unwrap().get_mut(&entity).unwrap().0 -= 1;
    let mut response = (
        StatusCode::from_u16(reply.status).unwrap(),
        axum::Json(reply.body),
    )
        .into_response();
    for (name, value) in reply.headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

impl Stub {
    async fn start(world: World, hook: Option<Hook>) -> Stub {
        Stub::start_with(world, hook, Duration::ZERO).await
    }

    async fn start_with(world: World, hook: Option<Hook>, delay: Duration) -> Stub {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        *world.base.lock().unwrap() = url.clone();
        let state = Arc::new(StubState {
            world,
            hook,
            delay,
            requests: Mutex::new(Vec::new()),
            in_flight: Mutex::new(BTreeMap::new()),
        });
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&state));
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Stub {
            url,
            state,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    fn posts(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.entity() == "ContractServiceAdjustments")
            .collect()
    }

    fn journal(&self) -> PathBuf {
        self.dir.path().join(JOURNAL_PATH)
    }

    fn options(&self) -> AutotaskOptions {
        let mut options = AutotaskOptions::new(self.journal(), effective());
        options.discovery_url = Some(format!("{}/atservicesrest/", self.url));
        options.retry = RetryPolicy {
            timeout: Duration::from_secs(5),
            max_attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(40),
            max_retry_after: Duration::from_secs(2),
        };
        options
    }

    /// A client that discovers its zone through the stub.
    fn client(&self) -> AutotaskClient {
        AutotaskClient::new(&settings(None), credentials(), self.options()).unwrap()
    }

    /// A client whose settings name the API base (no discovery).
    fn fixed_client(&self) -> AutotaskClient {
        AutotaskClient::new(
            &settings(Some(format!("{}/atservicesrest/v1.0", self.url))),
            credentials(),
            self.options(),
        )
        .unwrap()
    }
}

fn settings(url: Option<String>) -> AutotaskSettings {
    AutotaskSettings {
        url,
        effective: Default::default(),
        timeout_seconds: None,
    }
}

fn credentials() -> Credentials {
    Credentials::new(USER, SECRET, CODE)
}

fn mapping(value: Value) -> Mapping {
    serde_json::from_value(value).unwrap()
}

fn period(id: u64, cs: u64, start: &str, end: &str, units: i64) -> Value {
    json!({"id": id, "contractID": 0, "contractServiceID": cs, "serviceID": 0,
           "startDate": format!("{start}T00:00:00"), "endDate": format!("{end}T23:59:59"), "units": units})
}

/// Three customers: Bob (company 250, contract 1001, contract service 5001 of service 12 "SP-DESKTOP"),
/// DigitalTorch (251, 1002, 6001 of service 13) and Acme (252, "Backup Contract" 1003, 7001 of
/// service 14 "ShadowProtect Server"). Units: November and December periods.
fn world() -> World {
    World {
        companies: vec![
            json!({"id": 250, "companyName": "Bob's Dentistry", "isActive": true}),
            json!({"id": 251, "companyName": "DigitalTorch Inc", "isActive": true}),
            json!({"id": 252, "companyName": "Acme", "isActive": true}),
        ],
        contracts: vec![
            json!({"id": 1001, "companyID": 250, "contractName": "Bob Backup", "status": 1, "contractType": 7}),
            json!({"id": 1002, "companyID": 251, "contractName": "Torch Cloud", "status": 1, "contractType": 7}),
            json!({"id": 1003, "companyID": 252, "contractName": "Backup Contract", "status": 1, "contractType": 7}),
            json!({"id": 1004, "companyID": 252, "contractName": "Old Contract", "status": 0, "contractType": 7}),
        ],
        contract_services: vec![
            json!({"id": 5001, "contractID": 1001, "serviceID": 12}),
            json!({"id": 6001, "contractID": 1002, "serviceID": 13}),
            json!({"id": 7001, "contractID": 1003, "serviceID": 14}),
        ],
        services: vec![
            json!({"id": 12, "name": "ShadowProtect Desktop", "sku": "SP-DESKTOP", "isActive": true}),
            json!({"id": 13, "name": "Cloud Premium", "sku": "CLOUD-GB", "isActive": true}),
            json!({"id": 14, "name": "ShadowProtect Server", "sku": null, "isActive": true}),
        ],
        units: Mutex::new(vec![
            period(1, 5001, "2026-11-01", "2026-11-30", 2),
            period(2, 5001, "2026-12-01", "2026-12-31", 3),
            period(3, 6001, "2026-12-01", "2026-12-31", 135),
            period(4, 7001, "2026-12-01", "2026-12-31", 1),
            period(5, 7001, "2027-01-01", "2027-01-31", 1),
        ]),
        threshold: (10_000, 120),
        ..World::default()
    }
}

fn three_mappings() -> Vec<Mapping> {
    vec![
        mapping(json!({
            "account": "Bob's Dentistry", "license_type": "ShadowProtect Desktop",
            "company": 250, "contract": 1001, "service": "SP-DESKTOP"
        })),
        mapping(json!({
            "account": "DigitalTorch Inc", "license_type": "Cloud Premium (GB)",
            "company": 251, "contract": 1002, "service": {"id": 6001}
        })),
        mapping(json!({
            "account": "Acme", "license_type": "ShadowProtect Server",
            "company": {"name": "Acme"}, "contract": {"name": "Backup Contract"},
            "service": {"name": "ShadowProtect Server"}
        })),
    ]
}

fn change(from: i64, to: i64) -> LineChange {
    LineChange {
        unit_price: None,
        unit_cost: None,
        mapping: "bobs-dentistry/shadowprotect-desktop".into(),
        contract_id: 1001,
        line_id: 5001,
        from: Quantity::from_units(from),
        to: Quantity::from_units(to),
        policy: UpdatePolicy::InPlace,
        effective: effective(),
    }
}

fn journal_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn assert_no_secret(text: &str) {
    for s in [SECRET, CODE, USER] {
        assert!(!text.contains(s), "{s} leaked in: {text}");
    }
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn snapshot_sends_exactly_these_requests() {
    let stub = Stub::start(world(), None).await;
    let snapshot = stub.client().snapshot(&three_mappings()).await.unwrap();

    let requests = stub.requests();
    // Zone discovery first, without credentials.
    let zone = &requests[0];
    assert_eq!(zone.method, "GET");
    assert_eq!(zone.path, format!("{API}/zoneInformation"));
    assert_eq!(zone.query, vec![("user".to_string(), USER.to_string())]);
    for h in ["apiintegrationcode", "username", "secret"] {
        assert!(zone.header(h).is_none(), "{h} sent to zone discovery");
    }
    // Every other call carries the three headers and JSON.
    for r in &requests[1..] {
        assert_eq!(r.header("ApiIntegrationCode"), Some(CODE), "{r:?}");
        assert_eq!(r.header("UserName"), Some(USER));
        assert_eq!(r.header("Secret"), Some(SECRET));
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
    let mut calls: Vec<(String, String, Value)> = requests[1..]
        .iter()
        .map(|r| {
            (
                r.method.clone(),
                r.path.clone(),
                r.body.clone().unwrap_or(Value::Null),
            )
        })
        .collect();
    calls.sort_by_key(|c| format!("{c:?}"));
    let q = |entity: &str, fields: Value, filter: Value| {
        (
            "POST".to_string(),
            format!("{API}/{entity}/query"),
            json!({"MaxRecords": 500, "IncludeFields": fields, "filter": filter}),
        )
    };
    let mut expected = vec![
        q(
            "Companies",
            json!(["id", "companyName"]),
            json!([{"op": "in", "field": "id", "value": [250, 251]}]),
        ),
        q(
            "Companies",
            json!(["id", "companyName"]),
            json!([{"op": "eq", "field": "companyName", "value": "Acme"}]),
        ),
        q(
            "Contracts",
            json!(["id", "companyID", "contractName", "status"]),
            json!([{"op": "in", "field": "id", "value": [1001, 1002]}]),
        ),
        q(
            "Contracts",
            json!(["id", "companyID", "contractName", "status"]),
            json!([{"op": "in", "field": "companyID", "value": [252]}]),
        ),
        q(
            "ContractServices",
            json!(["id", "contractID", "serviceID", "unitPrice", "unitCost"]),
            json!([{"op": "in", "field": "contractID", "value": [1001, 1002, 1003]}]),
        ),
        q(
            "Services",
            json!(["id", "name", "sku"]),
            json!([{"op": "in", "field": "id", "value": [12, 13, 14]}]),
        ),
        q(
            "ContractServiceUnits",
            json!([
                "id",
                "contractServiceID",
                "startDate",
                "endDate",
                "units",
                "approveAndPostDate",
                "price",
                "cost"
            ]),
            json!([
                {"op": "in", "field": "contractServiceID", "value": [5001, 6001, 7001]},
                {"op": "lt", "field": "startDate", "value": "2026-12-02"},
                {"op": "gte", "field": "endDate", "value": "2026-12-01"}
            ]),
        ),
    ];
    expected.sort_by_key(|c| format!("{c:?}"));
    assert_eq!(calls, expected);

    assert_eq!(snapshot.companies.len(), 3);
    assert!(snapshot.companies.iter().all(|c| c.identifier.is_none()));
    let contracts: Vec<(u64, RecordStatus)> = snapshot
        .contracts
        .iter()
        .map(|c| (c.id, c.status))
        .collect();
    assert_eq!(
        contracts,
        vec![
            (1001, RecordStatus::Active),
            (1002, RecordStatus::Active),
            (1003, RecordStatus::Active)
        ]
    );
    type Line<'a> = (u64, u64, u64, Option<&'a str>, &'a str, Quantity);
    let lines: Vec<Line> = snapshot
        .lines
        .iter()
        .map(|l| {
            (
                l.id,
                l.contract_id,
                l.product_id,
                l.product_identifier.as_deref(),
                l.product_name.as_str(),
                l.quantity,
            )
        })
        .collect();
    assert_eq!(
        lines,
        vec![
            (
                5001,
                1001,
                12,
                Some("SP-DESKTOP"),
                "ShadowProtect Desktop",
                Quantity::from_units(3)
            ),
            (
                6001,
                1002,
                13,
                Some("CLOUD-GB"),
                "Cloud Premium",
                Quantity::from_units(135)
            ),
            (
                7001,
                1003,
                14,
                None,
                "ShadowProtect Server",
                Quantity::from_units(1)
            ),
        ]
    );
}

#[tokio::test]
async fn a_configured_base_skips_zone_discovery() {
    let stub = Stub::start(world(), None).await;
    stub.fixed_client()
        .snapshot(&three_mappings()[..1])
        .await
        .unwrap();
    assert!(
        stub.requests()
            .iter()
            .all(|r| r.path != format!("{API}/zoneInformation"))
    );
}

#[tokio::test]
async fn contract_statuses_and_periods_become_record_statuses() {
    let mut w = world();
    w.contract_services
        .push(json!({"id": 8001, "contractID": 1004, "serviceID": 12}));
    let stub = Stub::start(w, None).await;
    let m = vec![mapping(
        json!({"account": "A", "license_type": "L", "company": 252, "contract": 1004, "service": {"id": 8001}}),
    )];
    let snapshot = stub.client().snapshot(&m).await.unwrap();
    assert_eq!(snapshot.contracts[0].status, RecordStatus::Inactive);
    // No billing period contains the effective date: the line is reported expired.
    assert_eq!(snapshot.lines[0].status, RecordStatus::Expired);
}

#[tokio::test]
async fn a_company_identifier_is_refused_with_advice() {
    let stub = Stub::start(world(), None).await;
    let m = vec![mapping(json!({
        "account": "Bob", "license_type": "L", "company": "BobsDentistry", "contract": 1001, "service": 12
    }))];
    let err = stub.client().snapshot(&m).await.unwrap_err();
    assert!(matches!(err, PsaError::UnsupportedRef { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("no identifier"), "{text}");
    assert!(text.contains("{ name:"), "{text}");
    assert!(stub.requests().is_empty());
}

#[tokio::test]
async fn pages_follow_next_page_url_and_ids_are_batched_by_500() {
    let mut w = world();
    w.contract_services.clear();
    let mut units = Vec::new();
    for i in 0..1200u64 {
        w.contract_services
            .push(json!({"id": 20_000 + i, "contractID": 1001, "serviceID": 12}));
        units.push(period(i, 20_000 + i, "2026-12-01", "2026-12-31", i as i64));
    }
    *w.units.lock().unwrap() = units;
    let stub = Stub::start(w, None).await;
    let snapshot = stub
        .fixed_client()
        .snapshot(&three_mappings()[..1])
        .await
        .unwrap();
    assert_eq!(snapshot.lines.len(), 1200);
    assert_eq!(snapshot.lines[1199].quantity, Quantity::from_units(1199));

    let requests = stub.requests();
    let services: Vec<&Recorded> = requests
        .iter()
        .filter(|r| r.entity() == "ContractServices")
        .collect();
    // One POST of the query, then two POSTs of the same body to nextPageUrl (500 + 500 + 200).
    assert_eq!(services.len(), 3);
    assert_eq!(services[0].method, "POST");
    for r in &services[1..] {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, format!("{API}/ContractServices/query/next"));
        assert_eq!(r.body, services[0].body);
        assert_eq!(r.header("Secret"), Some(SECRET));
        assert_eq!(r.header("Content-Type"), Some("application/json"));
    }
    // 1200 contract service ids: `in` batches of 500, 500 and 200.
    let unit_batches: Vec<usize> = requests
        .iter()
        .filter(|r| r.entity() == "ContractServiceUnits" && r.method == "POST")
        .map(|r| {
            r.body.as_ref().unwrap()["filter"][0]["value"]
                .as_array()
                .unwrap()
                .len()
        })
        .collect();
    assert_eq!(unit_batches, vec![500, 500, 200]);
}

#[tokio::test]
async fn a_repeated_next_page_url_stops_paging() {
    let hook: Hook = Box::new(|r, _| {
        (r.entity() == "Companies").then(|| {
            ok(json!({
                "items": [{"id": 250, "companyName": "Bob's Dentistry"}],
                "pageDetails": {"nextPageUrl": "/atservicesrest/v1.0/Companies/query/next?loop=1"}
            }))
        })
    });
    let stub = Stub::start(world(), Some(hook)).await;
    let snapshot = stub
        .fixed_client()
        .snapshot(&three_mappings()[..1])
        .await
        .unwrap();
    let company_calls = stub
        .requests()
        .iter()
        .filter(|r| r.entity() == "Companies")
        .count();
    assert_eq!(
        company_calls, 2,
        "the POST and the one POST of the looping link"
    );
    assert_eq!(snapshot.companies.len(), 1);
}

#[tokio::test]
async fn an_errors_array_with_http_200_is_an_error() {
    let hook: Hook = Box::new(|r, _| {
        (r.entity() == "Contracts").then(|| {
            ok(json!({"items": [], "errors": ["Invalid filter: field contractNam does not exist"]}))
        })
    });
    let stub = Stub::start(world(), Some(hook)).await;
    let err = stub
        .fixed_client()
        .snapshot(&three_mappings())
        .await
        .unwrap_err();
    match &err {
        PsaError::Autotask { status, .. } => assert_eq!(*status, 200),
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("Invalid filter"), "{text}");
    assert!(
        text.contains("POST /atservicesrest/v1.0/Contracts/query"),
        "{text}"
    );
}

#[tokio::test]
async fn http_errors_say_what_to_do_and_never_leak_credentials() {
    for (code, wanted) in [
        (401, "UNITSYNC_AT_SECRET"),
        (403, "security level"),
        (404, "not found (HTTP 404)"),
        (422, "rejected the request"),
    ] {
        let hook: Hook = Box::new(move |r, _| {
            (r.entity() == "Contracts").then(|| {
                status(
                    code,
                    json!({"errors": [format!("user {USER} with secret {SECRET} and code {CODE}: nope")]}),
                )
            })
        });
        let stub = Stub::start(world(), Some(hook)).await;
        let err = stub
            .fixed_client()
            .snapshot(&three_mappings())
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains(wanted), "{code}: {text}");
        assert!(text.contains("nope"), "{code}: {text}");
        assert!(text.contains(&format!("HTTP {code}")), "{code}: {text}");
        assert_no_secret(&text);
        assert_no_secret(&format!("{err:?}"));
        // Client errors are not retried.
        let tries = stub
            .requests()
            .iter()
            .filter(|r| r.entity() == "Contracts")
            .count();
        assert_eq!(tries, 1, "{code}");
    }
}

#[tokio::test]
async fn secrets_never_appear_in_debug_output() {
    let stub = Stub::start(world(), None).await;
    let client = stub.client();
    assert_no_secret(&format!("{client:?}"));
    assert_no_secret(&format!("{:?}", credentials()));
    let err =
        Credentials::from_lookup(|n| (n != "UNITSYNC_AT_SECRET").then(|| "x".into())).unwrap_err();
    assert!(err.to_string().contains("UNITSYNC_AT_SECRET"));
}

#[tokio::test]
async fn too_many_requests_waits_for_retry_after() {
    let hook: Hook = Box::new(|r, n| {
        (r.entity() == "Companies" && n == 0).then(|| Reply {
            status: 429,
            headers: vec![("retry-after", "1".into())],
            body: json!({"errors": ["slow down"]}),
        })
    });
    let stub = Stub::start(world(), Some(hook)).await;
    let started = Instant::now();
    stub.fixed_client()
        .snapshot(&three_mappings()[..1])
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(950));
    let tries = stub
        .requests()
        .iter()
        .filter(|r| r.entity() == "Companies")
        .count();
    assert_eq!(tries, 2);
}

#[tokio::test]
async fn server_errors_are_retried_for_reads() {
    let hook: Hook = Box::new(|r, n| {
        (r.entity() == "ContractServices" && n < 2)
            .then(|| status(503, json!({"errors": ["busy"]})))
    });
    let stub = Stub::start(world(), Some(hook)).await;
    let snapshot = stub
        .fixed_client()
        .snapshot(&three_mappings())
        .await
        .unwrap();
    assert_eq!(snapshot.lines.len(), 3);
    let tries = stub
        .requests()
        .iter()
        .filter(|r| r.entity() == "ContractServices")
        .count();
    assert_eq!(tries, 3);
}

#[tokio::test]
async fn server_errors_give_up_after_the_last_attempt() {
    let hook: Hook = Box::new(|r, _| {
        (r.entity() == "Contracts").then(|| status(500, json!({"errors": ["boom"]})))
    });
    let stub = Stub::start(world(), Some(hook)).await;
    let err = stub
        .fixed_client()
        .snapshot(&three_mappings())
        .await
        .unwrap_err();
    assert!(
        matches!(err, PsaError::Server { attempts: 3, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn at_most_three_requests_per_entity_are_in_flight() {
    let stub = Stub::start_with(world(), None, Duration::from_millis(60)).await;
    let client = stub.fixed_client();
    let mut tasks = Vec::new();
    for _ in 0..9 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move { c.reread_line(1001, 5001).await }));
    }
    for t in tasks {
        let line = t.await.unwrap().unwrap();
        assert_eq!(line.quantity, Quantity::from_units(3));
    }
    let flights = stub.state.in_flight.lock().unwrap().clone();
    for (entity, (_, max)) in &flights {
        assert!(*max <= 3, "{entity}: {max} in flight");
    }
    assert_eq!(flights["ContractServices"].1, 3, "{flights:?}");
}

#[tokio::test]
async fn apply_posts_exactly_one_adjustment() {
    let stub = Stub::start(world(), None).await;
    let client = stub.fixed_client();
    let applied = client.apply(&change(3, 5)).await.unwrap();
    assert_eq!(
        applied,
        AppliedChange::UpdatedInPlace {
            line_id: 5001,
            quantity: Quantity::from_units(5)
        }
    );
    let posts = stub.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].path, format!("{API}/ContractServiceAdjustments"));
    assert_eq!(
        posts[0].body,
        Some(json!({
            "contractID": 1001, "contractServiceID": 5001, "serviceID": 12,
            "effectiveDate": "2026-12-01", "unitChange": 2
        }))
    );
    assert_eq!(posts[0].header("Secret"), Some(SECRET));
    assert_eq!(
        client.reread_line(1001, 5001).await.unwrap().quantity,
        Quantity::from_units(5)
    );
    // The journal holds the intent and the result with Autotask's item id.
    let journal = journal_lines(&stub.journal());
    assert_eq!(journal.len(), 2, "{journal:?}");
    assert_eq!(journal[0]["event"], "intent");
    assert_eq!(journal[0]["unit_change"], 2);
    assert_eq!(journal[0]["from"], 3);
    assert_eq!(journal[0]["to"], 5);
    assert_eq!(journal[1]["event"], "posted");
    assert_eq!(journal[1]["item_id"], 90001);
    assert_eq!(journal[1]["id"], journal[0]["id"]);

    // A decrease posts a negative change.
    client.apply(&change(5, 1)).await.unwrap();
    assert_eq!(stub.posts()[1].body.as_ref().unwrap()["unitChange"], -4);
}

#[tokio::test]
async fn apply_posts_nothing_when_the_units_already_match() {
    let stub = Stub::start(world(), None).await;
    let client = stub.fixed_client();
    // Already at the target (another run, or a person, did it).
    client.apply(&change(2, 3)).await.unwrap();
    // No change at all.
    client.apply(&change(3, 3)).await.unwrap();
    assert!(stub.posts().is_empty());
    assert!(journal_lines(&stub.journal()).is_empty());
}

#[tokio::test]
async fn apply_refuses_stale_lines() {
    let stub = Stub::start(world(), None).await;
    let err = stub.fixed_client().apply(&change(7, 9)).await.unwrap_err();
    assert!(
        matches!(&err, PsaError::Stale { found, .. } if *found == Quantity::from_units(3)),
        "{err:?}"
    );
    assert!(stub.posts().is_empty());
}

#[tokio::test]
async fn decimal_targets_are_refused() {
    let stub = Stub::start(world(), None).await;
    let mut c = change(3, 4);
    c.to = "4.5".parse().unwrap();
    let err = stub.fixed_client().apply(&c).await.unwrap_err();
    assert!(err.to_string().contains("whole number"), "{err}");
    assert!(stub.requests().is_empty());
}

#[tokio::test]
async fn a_refused_adjustment_is_journalled_as_failed() {
    let hook: Hook = Box::new(|r, _| {
        (r.entity() == "ContractServiceAdjustments").then(|| {
            status(
                422,
                json!({"errors": ["effectiveDate is outside the contract"]}),
            )
        })
    });
    let stub = Stub::start(world(), Some(hook)).await;
    let err = stub.fixed_client().apply(&change(3, 4)).await.unwrap_err();
    assert!(err.to_string().contains("outside the contract"), "{err}");
    assert_eq!(stub.posts().len(), 1);
    let journal = journal_lines(&stub.journal());
    assert_eq!(journal[1]["event"], "failed");
}

#[tokio::test]
async fn a_post_that_fails_with_a_server_error_is_not_repeated() {
    let hook: Hook = Box::new(|r, _| {
        (r.entity() == "ContractServiceAdjustments").then(|| status(500, json!({"errors": ["x"]})))
    });
    let stub2 = Stub::start(world(), Some(hook)).await;
    let err = stub2.fixed_client().apply(&change(3, 4)).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(stub2.posts().len(), 1, "a create is never retried on 5xx");
    // The intent stays pending; the next run settles it from the units (see the crash tests).
    let journal = journal_lines(&stub2.journal());
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0]["event"], "intent");
}

fn write_intent(path: &Path, from: i64, to: i64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let intent = json!({
        "event": "intent", "id": "1764000000000000000-5001",
        "mapping": "bobs-dentistry/shadowprotect-desktop", "contract_id": 1001,
        "contract_service_id": 5001, "service_id": 12, "effective": "2026-12-01",
        "from": from, "to": to, "unit_change": to - from, "at": "2026-11-25T09:30:00Z"
    });
    // A crash may also leave half a line behind.
    std::fs::write(path, format!("{intent}\n{{\"event\":\"pos")).unwrap();
}

#[tokio::test]
async fn crash_after_the_post_rerun_posts_nothing_and_marks_it_done() {
    let w = world();
    // The earlier run posted +2 (3 → 5) and died before writing the result.
    w.units.lock().unwrap()[1]["units"] = json!(5);
    let stub = Stub::start(w, None).await;
    write_intent(&stub.journal(), 3, 5);
    let applied = stub.fixed_client().apply(&change(3, 5)).await.unwrap();
    assert_eq!(applied.line_id(), 5001);
    assert!(stub.posts().is_empty(), "never post twice");
    let text = std::fs::read_to_string(stub.journal()).unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "resolved");
    assert_eq!(last["outcome"], "applied");
    assert_eq!(last["id"], "1764000000000000000-5001");
    // And a third run finds nothing pending and nothing to do.
    stub.fixed_client().apply(&change(3, 5)).await.unwrap();
    assert!(stub.posts().is_empty());
}

#[tokio::test]
async fn crash_before_the_post_rerun_posts_once() {
    let stub = Stub::start(world(), None).await;
    write_intent(&stub.journal(), 3, 5);
    stub.fixed_client().apply(&change(3, 5)).await.unwrap();
    let posts = stub.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].body.as_ref().unwrap()["unitChange"], 2);
    let text = std::fs::read_to_string(stub.journal()).unwrap();
    let events: Vec<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| {
            format!(
                "{}:{}",
                v["event"].as_str().unwrap(),
                v["outcome"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        events,
        vec!["intent:", "resolved:not-posted", "intent:", "posted:"]
    );
    // Rerunning again posts nothing.
    stub.fixed_client().apply(&change(3, 5)).await.unwrap();
    assert_eq!(stub.posts().len(), 1);
}

#[tokio::test]
async fn an_unresolvable_intent_blocks_the_line_with_instructions() {
    let w = world();
    w.units.lock().unwrap()[1]["units"] = json!(9);
    let stub = Stub::start(w, None).await;
    write_intent(&stub.journal(), 3, 5);
    let err = stub.fixed_client().apply(&change(9, 5)).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("cannot tell whether it was posted"), "{text}");
    assert!(text.contains(".autotask-journal.jsonl"), "{text}");
    assert!(stub.posts().is_empty());
}

#[tokio::test]
async fn the_request_budget_refuses_a_run_that_does_not_fit() {
    let mut w = world();
    w.threshold = (10_000, 9_995);
    let stub = Stub::start(w, None).await;
    let client = stub.fixed_client();
    let mappings = three_mappings();
    let needed = client.estimate_requests(&mappings, 3, None);
    assert!(needed > 5, "{needed}");
    let err = client.check_budget(&mappings, 3).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&format!("this run needs ~{needed} Autotask API requests; only 5 of the hourly 10,000 remain (shared by every integration")),
        "{text}"
    );
    assert!(text.contains("try after"), "{text}");
    let threshold = stub
        .requests()
        .iter()
        .filter(|r| r.path == format!("{API}/ThresholdInformation") && r.method == "GET")
        .count();
    assert_eq!(threshold, 1);

    let mut roomy = world();
    roomy.threshold = (10_000, 100);
    let stub = Stub::start(roomy, None).await;
    stub.fixed_client()
        .check_budget(&mappings, 3)
        .await
        .unwrap();
}

/// One mapped line on a contract with 1,200 contract services: the snapshot pages through all of
/// them (and their units), so the budget check counts them first instead of assuming one page
/// per query.
#[tokio::test]
async fn the_request_budget_counts_the_pages_of_a_contract_with_many_services() {
    let mut w = world();
    w.contract_services.clear();
    let mut units = Vec::new();
    for i in 0..1200u64 {
        let cs = if i == 0 { 5001 } else { 20_000 + i };
        w.contract_services
            .push(json!({"id": cs, "contractID": 1001, "serviceID": 12}));
        units.push(period(i, cs, "2026-12-01", "2026-12-31", 1));
    }
    *w.units.lock().unwrap() = units;
    let stub = Stub::start(w, None).await;
    let client = stub.fixed_client();
    let mappings = three_mappings()[..1].to_vec();

    let budget = client.check_budget_impl(&mappings, 0).await.unwrap();
    let snapshot = client.snapshot(&mappings).await.unwrap();
    assert_eq!(snapshot.lines.len(), 1200);
    let made = stub.requests().len() as u64;
    // ThresholdInformation, the count, Companies, Contracts, 3 pages of ContractServices,
    // Services (one id) and 3 batches of ContractServiceUnits.
    assert_eq!(made, 11, "{:#?}", stub.requests());
    // Counted: 3 pages of contract services, and up to 3 batches each of services and units.
    assert_eq!(budget.needed, 13);
    assert!(budget.needed >= made);
    // Without the count (one page a query, as before) the estimate was about half the cost.
    assert_eq!(client.estimate_requests(&mappings, 0, None), 6);
    assert_eq!(
        client.estimate_requests(&mappings, 2, Some(&[1200])),
        13 + 6
    );

    // A run that fits the lower bound but not the counted need is refused before any read.
    let mut w = world();
    w.contract_services = stub.state.world.contract_services.clone();
    *w.units.lock().unwrap() = stub.state.world.units.lock().unwrap().clone();
    w.threshold = (10_000, 9_990);
    let tight = Stub::start(w, None).await;
    let err = tight
        .fixed_client()
        .check_budget(&mappings, 0)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(
            "this run needs ~13 Autotask API requests; only 10 of the hourly 10,000 remain"
        ),
        "{text}"
    );
    let paths: Vec<String> = tight.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        vec![
            format!("{API}/ThresholdInformation"),
            format!("{API}/ContractServices/query/count")
        ]
    );
}

#[tokio::test]
async fn doctor_checks_zone_credentials_and_reads_and_skips_the_write_probe() {
    let stub = Stub::start(world(), None).await;
    let checks = stub.client().check_access(&three_mappings(), true).await;
    let kinds: Vec<(CheckKind, CheckOutcome)> =
        checks.iter().map(|c| (c.kind, c.outcome)).collect();
    assert_eq!(
        kinds,
        vec![
            (CheckKind::Host, CheckOutcome::Pass),
            (CheckKind::Credentials, CheckOutcome::Pass),
            (CheckKind::ReadContracts, CheckOutcome::Pass),
            (CheckKind::ReadLines, CheckOutcome::Pass),
            (CheckKind::UpdateLines, CheckOutcome::Skipped),
        ],
        "{checks:#?}"
    );
    assert!(checks[2].detail.contains("1001"), "{}", checks[2].detail);
    assert!(checks[4].detail.contains("cannot be deleted"));
    assert!(stub.posts().is_empty());

    let hook: Hook = Box::new(|r, _| {
        (r.entity() == "ThresholdInformation")
            .then(|| status(401, json!({"errors": ["bad login"]})))
    });
    let stub = Stub::start(world(), Some(hook)).await;
    let checks = stub.client().check_access(&three_mappings(), false).await;
    assert_eq!(checks[1].outcome, CheckOutcome::Fail);
    assert!(checks[1].detail.contains("UNITSYNC_AT_USERNAME"));
    assert!(
        checks[2..]
            .iter()
            .all(|c| c.outcome == CheckOutcome::Skipped)
    );
}

// ---------------------------------------------------------------------------------------------
// Regression data: response bodies in Autotask's real shapes (tests/fixtures/autotask/README.md)

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/autotask")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// Serves the fixture for each request the client makes, as Autotask would answer it.
fn fixture_hook() -> Hook {
    Box::new(|r, _| {
        let field = r
            .body
            .as_ref()
            .and_then(|b| b["filter"][0]["field"].as_str())
            .unwrap_or_default()
            .to_string();
        let last = r.path.rsplit('/').next().unwrap_or_default().to_string();
        let name = match (r.method.as_str(), r.entity().as_str(), last.as_str()) {
            ("GET", _, "next") => return Some(status(405, fixture("next_page_get_405.json"))),
            ("GET", "ThresholdInformation", _) => "threshold_information.json",
            ("POST", "ContractServices", "count") => "contract_services_count.json",
            ("POST", "Companies", "query") if field == "id" => "companies_by_id.json",
            ("POST", "Companies", "query") => "companies_by_name.json",
            ("POST", "Contracts", "query") if field == "id" => "contracts_by_id.json",
            ("POST", "Contracts", "query") => "contracts_of_companies.json",
            ("POST", "ContractServices", "query") => "contract_services_page1.json",
            ("POST", "ContractServices", "next") => "contract_services_page2.json",
            ("POST", "Services", "query") => "services.json",
            ("POST", "ContractServiceUnits", "query") => "contract_service_units.json",
            ("POST", "ContractServiceAdjustments", _) => "adjustment_created.json",
            _ => return None,
        };
        Some(ok(fixture(name)))
    })
}

/// Companies, contracts with `userDefinedFields: ""` and a string `contractPeriodType`, contract
/// services with a null `unitCost`, unit periods with Eastern-midnight dates
/// (`…T05:00:00.000Z`), a `nextPageUrl` on Autotask's own host with its JSON `paging` token, the
/// threshold, the count and the created item, all through the client's real decoders.
#[tokio::test]
async fn captured_response_shapes_replay_through_the_client() {
    let stub = Stub::start(World::default(), Some(fixture_hook())).await;
    let client = stub.fixed_client();
    let mappings = three_mappings();

    let budget = client.check_budget_impl(&mappings, 1).await.unwrap();
    assert_eq!((budget.used, budget.threshold), (1873, 10_000));
    assert_eq!(
        budget.needed,
        client.estimate_requests(&mappings, 1, Some(&[3]))
    );

    let snapshot = client.snapshot(&mappings).await.unwrap();
    let companies: Vec<(u64, &str)> = snapshot
        .companies
        .iter()
        .map(|c| (c.id, c.name.as_str()))
        .collect();
    assert_eq!(
        companies,
        vec![
            (250, "Bob's Dentistry"),
            (251, "DigitalTorch Inc"),
            (252, "Acme")
        ]
    );
    let contracts: Vec<(u64, u64, RecordStatus)> = snapshot
        .contracts
        .iter()
        .map(|c| (c.id, c.company_id, c.status))
        .collect();
    assert_eq!(
        contracts,
        vec![
            (1001, 250, RecordStatus::Active),
            (1002, 251, RecordStatus::Active),
            (1003, 252, RecordStatus::Active)
        ]
    );
    let lines: Vec<(u64, Option<&str>, &str, Quantity, RecordStatus)> = snapshot
        .lines
        .iter()
        .map(|l| {
            (
                l.id,
                l.product_identifier.as_deref(),
                l.product_name.as_str(),
                l.quantity,
                l.status,
            )
        })
        .collect();
    assert_eq!(
        lines,
        vec![
            // December's period (3), not November's (2), though both came back.
            (
                5001,
                Some("SP-DESKTOP"),
                "ShadowProtect Desktop",
                Quantity::from_units(3),
                RecordStatus::Active
            ),
            (
                6001,
                Some("CLOUD-GB"),
                "Cloud Premium",
                Quantity::from_units(135),
                RecordStatus::Active
            ),
            (
                7001,
                None,
                "ShadowProtect Server",
                Quantity::from_units(1),
                RecordStatus::Active
            ),
        ]
    );

    // The second page: Autotask's link (on its own host) rebased onto the API base, POSTed
    // with the first page's body, its `paging` token passed on untouched.
    let requests = stub.requests();
    let services: Vec<&Recorded> = requests
        .iter()
        .filter(|r| r.entity() == "ContractServices" && !r.path.ends_with("/count"))
        .collect();
    assert_eq!(services.len(), 2);
    assert_eq!(services[1].method, "POST");
    assert_eq!(
        services[1].path,
        format!("{API}/ContractServices/query/next")
    );
    assert_eq!(services[1].body, services[0].body);
    assert_eq!(
        services[1].query,
        vec![(
            "paging".to_string(),
            r#"{"pageSize":500,"previousIds":[],"nextIds":[7001]}"#.to_string()
        )]
    );

    // A write: the created item's id lands in the journal.
    stub.state.requests.lock().unwrap().clear();
    client.apply(&change(3, 5)).await.unwrap();
    let posts = stub.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(
        posts[0].body.as_ref().unwrap()["effectiveDate"],
        "2026-12-01"
    );
    assert_eq!(posts[0].body.as_ref().unwrap()["unitChange"], 2);
    let journal = journal_lines(&stub.journal());
    assert_eq!(journal.last().unwrap()["event"], "posted");
    assert_eq!(journal.last().unwrap()["item_id"], 98765);
}

// HTTP 500s that are Autotask refusing the credentials (issue 12 point 2, issue 15 point 4).

#[tokio::test]
async fn zone_discovery_500_is_not_retried_and_names_the_user_name_variable() {
    for (body, wanted) in [
        // The real answer for a blank or unknown user (the @apigrate README, py-autotask).
        (
            json!({"errors": ["Zone information could not be determined"]}),
            "Autotask does not know the API user (HTTP 500, not retried)",
        ),
        // Any other 500 there: still the user name to check, still one request.
        (
            json!({"Message": "An error has occurred."}),
            "zone discovery failed (HTTP 500, not retried",
        ),
    ] {
        let reply = body.clone();
        let hook: Hook = Box::new(move |r, _| {
            (r.entity() == "zoneInformation").then(|| status(500, reply.clone()))
        });
        let stub = Stub::start(world(), Some(hook)).await;
        let err = stub.client().snapshot(&three_mappings()).await.unwrap_err();
        assert!(
            matches!(err, PsaError::Autotask { status: 500, .. }),
            "{err:?}"
        );
        assert!(!err.is_transient(), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(wanted), "{text}");
        assert!(text.contains("UNITSYNC_AT_USERNAME"), "{text}");
        assert!(
            text.starts_with("GET /atservicesrest/v1.0/zoneInformation: "),
            "{text}"
        );
        // The body's message is quoted, `{"Message": …}` as well as `{"errors": […]}`.
        let said = body["errors"][0]
            .as_str()
            .or(body["Message"].as_str())
            .unwrap();
        assert!(text.ends_with(&format!("Autotask said: {said}")), "{text}");
        assert_no_secret(&text);
        assert_no_secret(&format!("{err:?}"));
        // Exactly one request: the zone lookup, not retried, and nothing after it.
        let requests = stub.requests();
        assert_eq!(
            requests
                .iter()
                .map(|r| (r.method.as_str(), r.path.as_str()))
                .collect::<Vec<_>>(),
            vec![("GET", "/atservicesrest/v1.0/zoneInformation")]
        );
    }
}

#[tokio::test]
async fn doctor_reports_an_unknown_user_after_one_zone_request() {
    let hook: Hook = Box::new(|r, _| {
        (r.entity() == "zoneInformation").then(|| {
            status(
                500,
                json!({"errors": ["Zone information could not be determined"]}),
            )
        })
    });
    let stub = Stub::start(world(), Some(hook)).await;
    let checks = stub.client().check_access(&three_mappings(), true).await;
    assert_eq!(checks[0].kind, CheckKind::Host);
    assert_eq!(checks[0].outcome, CheckOutcome::Fail);
    assert!(
        checks[0].detail.contains("check UNITSYNC_AT_USERNAME"),
        "{}",
        checks[0].detail
    );
    assert!(
        checks[1..]
            .iter()
            .all(|c| c.outcome == CheckOutcome::Skipped),
        "{checks:#?}"
    );
    assert_eq!(stub.requests().len(), 1);
}

#[tokio::test]
async fn a_500_refusing_the_integration_code_or_a_permission_is_not_retried() {
    for (body, wanted) in [
        (
            json!({"errors": ["IntegrationCode is invalid."]}),
            "Autotask refused the integration code (HTTP 500, not retried): check UNITSYNC_AT_INTEGRATION_CODE",
        ),
        // django-autotask handles this one on 500; other clients quote it with the entity.
        (
            json!({"errors": ["The logged in Resource does not have the adequate permissions to query this entity type."]}),
            "the API user's security level may not read contracts by id (HTTP 500, not retried); give its security level access to Contracts (view)",
        ),
        (
            json!({"Message": "The logged in Resource does not have the adequate permissions to query this entity type."}),
            "security level may not read contracts by id (HTTP 500, not retried)",
        ),
    ] {
        let reply = body.clone();
        let hook: Hook =
            Box::new(move |r, _| (r.entity() == "Contracts").then(|| status(500, reply.clone())));
        let stub = Stub::start(world(), Some(hook)).await;
        let err = stub
            .fixed_client()
            .snapshot(&three_mappings())
            .await
            .unwrap_err();
        assert!(
            matches!(err, PsaError::Autotask { status: 500, .. }),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains(wanted), "{text}");
        assert!(text.contains("Autotask said: "), "{text}");
        assert_no_secret(&text);
        let tries = stub
            .requests()
            .iter()
            .filter(|r| r.entity() == "Contracts")
            .count();
        assert_eq!(tries, 1, "{body}");
    }

    // The doctor names the integration code at the credential check, after one request.
    let hook: Hook = Box::new(|r, _| {
        (r.entity() == "ThresholdInformation")
            .then(|| status(500, json!({"errors": ["IntegrationCode is invalid."]})))
    });
    let stub = Stub::start(world(), Some(hook)).await;
    let checks = stub
        .fixed_client()
        .check_access(&three_mappings(), false)
        .await;
    assert_eq!(checks[1].kind, CheckKind::Credentials);
    assert_eq!(checks[1].outcome, CheckOutcome::Fail);
    assert!(
        checks[1].detail.contains("UNITSYNC_AT_INTEGRATION_CODE"),
        "{}",
        checks[1].detail
    );
    assert_eq!(
        stub.requests()
            .iter()
            .filter(|r| r.entity() == "ThresholdInformation")
            .count(),
        1
    );

    // A creation refused for want of permission names the adjustment right, and is not repeated.
    let hook: Hook = Box::new(|r, _| {
        (r.entity() == "ContractServiceAdjustments").then(|| {
            status(
                500,
                json!({"errors": ["The logged in Resource does not have the adequate permissions to create this entity type."]}),
            )
        })
    });
    let stub = Stub::start(world(), Some(hook)).await;
    let err = stub.fixed_client().apply(&change(3, 4)).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("add adjustments"), "{text}");
    assert!(text.contains("not retried"), "{text}");
    // Autotask refused it, so nothing was created: the journal says failed, not pending.
    assert!(!err.is_transient(), "{err:?}");
    assert_eq!(stub.posts().len(), 1);
    let journal = journal_lines(&stub.journal());
    assert_eq!(journal[1]["event"], "failed");
}

#[tokio::test]
async fn a_plain_500_is_still_retried_and_message_bodies_are_quoted() {
    let hook: Hook = Box::new(|r, _| {
        (r.entity() == "Contracts")
            .then(|| status(500, json!({"Message": "An error has occurred."})))
    });
    let stub = Stub::start(world(), Some(hook)).await;
    let err = stub
        .fixed_client()
        .snapshot(&three_mappings())
        .await
        .unwrap_err();
    assert!(
        matches!(err, PsaError::Server { attempts: 3, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().ends_with(": An error has occurred."),
        "{err}"
    );
    // A 405 in the framework's `{"Message": …}` shape says what the server said.
    let hook: Hook = Box::new(|r, _| {
        (r.entity() == "Contracts").then(|| {
            status(
                405,
                json!({"Message": "The requested resource does not support http method 'GET'."}),
            )
        })
    });
    let stub = Stub::start(world(), Some(hook)).await;
    let err = stub
        .fixed_client()
        .snapshot(&three_mappings())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("(HTTP 405): The requested resource does not support http method 'GET'."),
        "{text}"
    );
}
