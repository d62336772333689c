//! An Autotask PSA–compatible REST server on 127.0.0.1, for tests, demos and
//! `unitsync sandbox --psa autotask`. Written from `reference/psa-apis.md` section B and the
//! Autotask REST swagger, independently of the client in `crate::psa::autotask`.
//!
//! Wire behaviour (paths are matched case-insensitively; the version segment may be `v1.0` or
//! `1.0`; below, `…` is `/atservicesrest/v1.0`):
//! - `GET /atservicesrest/versioninformation` (also `…/versioninformation`) →
//!   `{"apiVersions":["1.0"]}`, no auth.
//! - `GET …/zoneInformation?user=NAME`, no auth → `{"zoneName","url","webUrl","ci"}` with `url`
//!   = `http://127.0.0.1:PORT/atservicesrest/`. No or blank `user`, or a user other than the
//!   seed's (compared case-insensitively) → 500 `{"errors":["Zone information could not be
//!   determined"]}`, as the real API answers.
//! - Everything else below `…/` needs the headers `ApiIntegrationCode`, `UserName` and `Secret`
//!   (`ImpersonationResourceId` is accepted and ignored). Any missing →
//!   401 `{"errors":["Missing required header(s): …"]}` naming the missing ones. A wrong
//!   integration code → 500 `{"errors":["IntegrationCode is invalid."]}` (checked before the
//!   user and secret); a wrong user name or secret → 401 with an empty body.
//!   POST bodies need `Content-Type: application/json` → else 415.
//! - Request threshold: every authenticated request counts in a rolling window
//!   (`threshold_timeframe_minutes`, default 60). When the window already holds
//!   `request_threshold` requests (default 10,000) every authenticated request answers 429 with
//!   `Retry-After` (seconds until the oldest request leaves the window) and is not counted.
//!   `GET …/ThresholdInformation` → `{"externalRequestThreshold","requestThresholdTimeframe",
//!   "currentTimeframeRequestCount"}` (the count includes that request). The latency Autotask
//!   adds past 50 % is not simulated.
//! - Thread limit: at most `thread_limit` (default 3) requests in flight per object endpoint
//!   (`Companies`, `Contracts`, `ContractServices`, `ContractServiceUnits`, `Services`,
//!   `ContractServiceAdjustments` (both POST forms), `ThresholdInformation`; the child lists
//!   `Contracts/{id}/Services|ServiceUnits` count as `ContractServices|ContractServiceUnits`;
//!   refused requests still count against the threshold). One more answers
//!   429 `{"errors":["Thread limit exceeded: …"]}` with `Retry-After: 1` at once (it is not
//!   queued). The highest number in flight, counting rejected ones, is recorded per endpoint:
//!   [`AutotaskSandboxHandle::max_concurrency`]. Injected latency is spent while holding the slot.
//! - `POST …/{Entity}/query` (JSON body) and `GET …/{Entity}/query?search=<JSON>` for
//!   `Companies`, `Contracts`, `ContractServices`, `ContractServiceUnits`, `Services`. The body is
//!   `{"MaxRecords":N,"IncludeFields":[…],"filter":[…]}` (keys in any case; other keys → 400). `MaxRecords`
//!   defaults to 500; outside 1–500 → 400. `filter` must hold at least one item (Autotask refuses
//!   unfiltered queries; use `{"op":"gte","field":"id","value":0}`). Top-level items are ANDed;
//!   `{"op":"and"|"or","items":[…]}` groups nest. Leaf ops: `eq noteq gt gte lt lte beginsWith
//!   endsWith contains exist notExist in notIn` (any case). Field names match case-insensitively
//!   against the swagger model; `udf: true` looks in `userDefinedFields` by name. Strings compare
//!   case-insensitively, date-times as instants (UTC unless they carry an offset; a bare
//!   `YYYY-MM-DD` is midnight US Eastern, where date-only values are kept), numbers as numbers.
//!   A null field matches only `notExist` (SQL semantics). Unknown fields, unknown ops, a missing
//!   or null `value`, a non-array `in`/`notIn` value, an empty group or malformed JSON → 400
//!   `{"errors":["…"]}`.
//! - Query answers `{"items":[…],"pageDetails":{"count","requestCount","prevPageUrl",
//!   "nextPageUrl"}}`, items ordered by id. `IncludeFields` keeps those fields plus `id` and,
//!   on entities that have them, `userDefinedFields` (as the real API does).
//!   `nextPageUrl`/`prevPageUrl` are absolute URLs
//!   `http://127.0.0.1:PORT/atservicesrest/v1.0/{Entity}/query/next?paging=<token>` (token:
//!   unpadded base64url of `{"q":<query>,"after":<last id>}` or `{"q":…,"before":<first id>}`),
//!   null on the last (first) page. Paging is by id, so it is stable while records change.
//!   As on the real API, the link of a POSTed query must be **POSTed with the same query body**
//!   (KelvinTegelaar/AutotaskAPI, django-autotask, n8n-nodes-autotask; live reproduction in
//!   WYRE-AI/autotask-mcp PR #170); a GET of it answers 405
//!   `{"Message":"The requested resource does not support http method 'GET'."}`, and a body that
//!   is not the first page's query answers 400. The links of a GET `?search=` query also carry
//!   `search=` and are followed with GET.
//!   `…/query/count` (POST or GET `search`) → `{"queryCount":n}`.
//! - `GET …/{Entity}/{id}` → `{"item":{…}}`, or `{"item":null}` for an unknown id (as Autotask
//!   does). `GET …/Contracts/{id}/Services` and `…/Contracts/{id}/ServiceUnits` list a contract's
//!   children (first 500, same envelope).
//! - `POST …/ContractServiceAdjustments` or `POST …/Contracts/{parentId}/ServiceAdjustments` with
//!   `{contractID, contractServiceID?, serviceID, effectiveDate, unitChange, adjustedUnitPrice?,
//!   adjustedUnitCost?, …}` → 200 `{"itemId":n}`. Validation failures → 400 `{"errors":[…]}`:
//!   unknown contract; contract not Recurring Service (7) or not active; unknown service;
//!   `contractServiceID` not on that contract or for another service; `unitChange` missing or
//!   not an int32; `effectiveDate` missing, unparseable or outside the contract; a unit count
//!   that would go below 0 in any affected period; `contractID` in the body differing from
//!   `parentId`. The change applies to every `ContractServiceUnits` row of the contract service
//!   whose period ends on or after the effective date (the period containing it and later
//!   ones); `price`/`cost` follow. Without `contractServiceID`, the contract's service is used or,
//!   if the contract lacks it, created (with 0-unit monthly rows) as Autotask does.
//!   Adjustments cannot be read: `…/ContractServiceAdjustments/query`, `…/{id}` → 405, GET on
//!   the collection → 405, all `{"errors":["ContractServiceAdjustments can only be created…"]}`.
//! - Other methods on known paths → 405, unknown paths → 404, both `{"errors":[…]}`.
//! - Injected faults (see [`Faults`]) come before auth: 429 `{"errors":["…"]}` with
//!   `Retry-After`, 5xx `{"errors":["…"]}`, dropped connections. A lost answer comes after the
//!   request was carried out (and logged with the status it would have had).
//! - Date-only fields (contract and unit-period `startDate`/`endDate`, `effectiveDate`) are kept as
//!   midnight US Eastern and answered in UTC with milliseconds, as captured Autotask responses
//!   show them: 1 December is `2026-12-01T05:00:00.000Z` (`T04:00:00.000Z` in summer). An
//!   `effectiveDate` sent as a date-time lands on its Eastern date, so UTC midnight of
//!   1 December is 30 November; a bare `2026-12-01` is 1 December. Other date-times are
//!   `YYYY-MM-DDTHH:MM:SSZ`. Unit rows are per calendar month of the contract.

// Handlers return `Result<_, Response>` so errors can be answered as they are found.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use jiff::civil::Date;
use serde_json::{Map, Value, json};

use super::autotask_seed::{
    AtContract, AtLogin, AtPicklistValue, AtSeed, CONTRACT_STATUS_ACTIVE,
    CONTRACT_TYPE_RECURRING_SERVICE,
};
use super::{
    DroppingListener, FaultState, Faults, HasFaults, InFlight, Injected, LostResponse,
    RecordedRequest, lock, lose_response,
};

/// Headers copied into the request log (lower case). `Secret` and `ApiIntegrationCode` are never
/// recorded; the `UserName` header becomes [`RecordedRequest::auth_user`].
pub const AT_LOGGED_HEADERS: &[&str] = &[
    "accept",
    "content-type",
    "impersonationresourceid",
    "user-agent",
];
/// The most records one query page returns.
pub const AT_MAX_RECORDS: i64 = 500;
/// The queryable entities, as the swagger spells them.
pub const AT_QUERY_ENTITIES: &[&str] = &[
    "Companies",
    "ContractCharges",
    "Contracts",
    "ContractServices",
    "ContractServiceUnits",
    "Services",
];
const ADJUSTMENTS: &str = "ContractServiceAdjustments";
const SEED_TIME: &str = "2026-01-01T00:00:00Z";

/// An adjustment the sandbox accepted, as posted (for test assertions; the API cannot read them).
#[derive(Debug, Clone, PartialEq)]
pub struct AtAdjustment {
    pub id: i64,
    pub contract_id: i64,
    pub contract_service_id: i64,
    pub service_id: i64,
    pub effective_date: Date,
    pub unit_change: i32,
    /// The request body as received.
    pub body: Value,
}

/// One `ContractServiceUnits` row as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtUnitPeriod {
    pub id: i64,
    pub contract_service_id: i64,
    pub start_date: Date,
    pub end_date: Date,
    pub units: i32,
}

/// State shared by the server and its handle.
pub(crate) struct AtShared {
    store: Mutex<AtStore>,
    faults: Mutex<FaultState>,
    log: Mutex<Vec<RecordedRequest>>,
    limits: Mutex<Limits>,
    in_flight: AtomicUsize,
    addr: SocketAddr,
}

impl HasFaults for AtShared {
    fn fault_state(&self) -> &Mutex<FaultState> {
        &self.faults
    }
}

#[derive(Default)]
struct Limits {
    window: VecDeque<Instant>,
    in_flight: BTreeMap<String, usize>,
    max_seen: BTreeMap<String, usize>,
}

struct AtStore {
    login: AtLogin,
    zone_name: String,
    threshold: u32,
    timeframe_minutes: u32,
    thread_limit: usize,
    /// Records by entity (swagger spelling) and id, in swagger field names.
    records: BTreeMap<&'static str, BTreeMap<i64, Value>>,
    adjustments: Vec<AtAdjustment>,
    next_adjustment_id: i64,
    next_unit_id: i64,
    next_contract_service_id: i64,
    next_charge_id: i64,
    charge_types: Vec<AtPicklistValue>,
    charge_statuses: Vec<AtPicklistValue>,
}

fn fields_of(entity: &str) -> &'static [&'static str] {
    match entity {
        "Companies" => COMPANY_FIELDS,
        "Contracts" => CONTRACT_FIELDS,
        "ContractCharges" => CONTRACT_CHARGE_FIELDS,
        "ContractServices" => CONTRACT_SERVICE_FIELDS,
        "ContractServiceUnits" => CONTRACT_SERVICE_UNIT_FIELDS,
        "Services" => SERVICE_FIELDS,
        _ => CONTRACT_SERVICE_ADJUSTMENT_FIELDS,
    }
}

/// A record with every swagger field, null unless set.
fn record(entity: &str, set: Value) -> Value {
    let mut map = Map::new();
    for f in fields_of(entity) {
        map.insert((*f).to_string(), Value::Null);
    }
    if let Value::Object(values) = set {
        for (k, v) in values {
            map.insert(k, v);
        }
    }
    Value::Object(map)
}

/// The zone Autotask keeps date-only values in: US Eastern, as its SOAP documentation says ("stores
/// and returns all time data in Eastern Standard Time", respecting daylight saving) and as
/// captured REST responses show (django-autotask's fixtures: `'createDate':
/// '2012-10-24T05:00:00.000Z'`, a task's `'startDate': '2012-08-27T05:00:00.000Z'`).
fn eastern() -> &'static jiff::tz::TimeZone {
    static EASTERN: std::sync::OnceLock<jiff::tz::TimeZone> = std::sync::OnceLock::new();
    EASTERN.get_or_init(|| {
        jiff::tz::TimeZone::get("America/New_York")
            .unwrap_or_else(|_| jiff::tz::TimeZone::fixed(jiff::tz::offset(-5)))
    })
}

/// A date-only field as Autotask answers it: midnight US Eastern, in UTC with milliseconds
/// (`2026-12-01T05:00:00.000Z`, `2026-07-01T04:00:00.000Z` in summer).
fn date_only(d: Date) -> String {
    let ts = eastern()
        .to_timestamp(d.at(0, 0, 0, 0))
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let utc = jiff::tz::TimeZone::UTC.to_datetime(ts);
    format!(
        "{}T{:02}:{:02}:{:02}.000Z",
        utc.date(),
        utc.hour(),
        utc.minute(),
        utc.second()
    )
}

/// The calendar date of a stored date-only value (its date in US Eastern time).
fn stored_date(text: &str) -> Option<Date> {
    instant(text).map(|ts| eastern().to_datetime(ts).date())
}

/// Calendar-month periods covering `start..=end`.
fn monthly_periods(start: Date, end: Date) -> Vec<(Date, Date)> {
    let mut out = Vec::new();
    let mut from = start;
    while from <= end {
        let last = from.last_of_month();
        let to = if last < end { last } else { end };
        out.push((from, to));
        match last.tomorrow() {
            Ok(next) => from = next,
            Err(_) => break,
        }
    }
    out
}

impl AtStore {
    fn new(seed: AtSeed) -> AtStore {
        let mut records: BTreeMap<&'static str, BTreeMap<i64, Value>> = BTreeMap::new();
        for e in AT_QUERY_ENTITIES {
            records.insert(e, BTreeMap::new());
        }
        let mut store = AtStore {
            login: seed.login.clone(),
            zone_name: seed.zone_name.clone().unwrap_or_else(|| "Sandbox".into()),
            threshold: seed.request_threshold,
            timeframe_minutes: seed.threshold_timeframe_minutes,
            thread_limit: seed.thread_limit,
            records,
            adjustments: Vec::new(),
            next_adjustment_id: 1,
            next_charge_id: 70_001,
            charge_types: seed.charge_types.clone(),
            charge_statuses: seed.charge_statuses.clone(),
            next_unit_id: 900_001,
            next_contract_service_id: seed
                .contract_services
                .iter()
                .map(|c| c.id + 1)
                .max()
                .unwrap_or(1)
                .max(50_001),
        };
        for c in &seed.companies {
            store.insert(
                "Companies",
                c.id,
                json!({
                    "id": c.id, "companyName": c.name, "companyNumber": c.number,
                    "companyType": c.company_type, "isActive": c.active,
                    "parentCompanyID": c.parent, "createDate": SEED_TIME,
                    "lastTrackedModifiedDateTime": SEED_TIME, "userDefinedFields": [],
                }),
            );
        }
        for s in &seed.services {
            store.insert(
                "Services",
                s.id,
                json!({
                    "id": s.id, "name": s.name, "sku": s.sku, "description": s.description,
                    "invoiceDescription": s.name, "unitPrice": s.unit_price,
                    "unitCost": s.unit_cost, "periodType": s.period_type, "isActive": s.active,
                    "billingCodeID": s.billing_code,
                    "createDate": SEED_TIME, "lastModifiedDate": SEED_TIME,
                    "userDefinedFields": [],
                }),
            );
        }
        for c in &seed.contracts {
            store.insert(
                "Contracts",
                c.id,
                json!({
                    "id": c.id, "companyID": c.company, "billToCompanyID": c.company,
                    "contractName": c.name, "contractNumber": c.number,
                    "contractType": c.contract_type, "contractPeriodType": 1, "status": c.status,
                    "startDate": date_only(c.start_date), "endDate": date_only(c.end_date),
                    "isDefaultContract": c.is_default, "isCompliant": true,
                    "lastModifiedDateTime": SEED_TIME, "userDefinedFields": [],
                }),
            );
        }
        let contracts: BTreeMap<i64, AtContract> =
            seed.contracts.iter().map(|c| (c.id, c.clone())).collect();
        for cs in &seed.contract_services {
            let service = store
                .get("Services", cs.service)
                .cloned()
                .unwrap_or(Value::Null);
            let price = cs
                .unit_price
                .or_else(|| service["unitPrice"].as_f64())
                .unwrap_or(0.0);
            let cost = service["unitCost"].as_f64().unwrap_or(0.0);
            store.add_contract_service(
                cs.id,
                &contracts[&cs.contract],
                cs.service,
                price,
                cost,
                cs.invoice_description.clone(),
                cs.units,
            );
        }
        store
    }

    fn insert(&mut self, entity: &'static str, id: i64, set: Value) {
        let r = record(entity, set);
        self.records.entry(entity).or_default().insert(id, r);
    }

    fn get(&self, entity: &str, id: i64) -> Option<&Value> {
        self.records.get(entity)?.get(&id)
    }

    #[allow(clippy::too_many_arguments)]
    fn add_contract_service(
        &mut self,
        id: i64,
        contract: &AtContract,
        service: i64,
        price: f64,
        cost: f64,
        invoice_description: Option<String>,
        units: i32,
    ) {
        self.insert(
            "ContractServices",
            id,
            json!({
                "id": id, "contractID": contract.id, "serviceID": service,
                "unitPrice": price, "unitCost": cost, "internalCurrencyUnitPrice": price,
                "internalCurrencyAdjustedPrice": price, "invoiceDescription": invoice_description,
            }),
        );
        let periods = monthly_periods(contract.start_date, contract.end_date);
        let posted_on = contract.posted_through.and_then(|through| {
            contract.posted_on.or_else(|| {
                periods
                    .iter()
                    .filter(|(_, to)| *to <= through)
                    .map(|(from, _)| *from)
                    .next_back()
            })
        });
        for (from, to) in periods {
            let unit_id = self.next_unit_id;
            self.next_unit_id += 1;
            // A posting is an instant (a user approved and posted at some time of day), unlike
            // the date-only period bounds.
            let posted = match (contract.posted_through, posted_on) {
                (Some(through), Some(on)) if to <= through => json!(format!("{on}T15:30:00.000Z")),
                _ => Value::Null,
            };
            self.insert(
                "ContractServiceUnits",
                unit_id,
                json!({
                    "id": unit_id, "contractID": contract.id, "contractServiceID": id,
                    "serviceID": service, "startDate": date_only(from), "endDate": date_only(to),
                    "units": units, "price": f64::from(units) * price,
                    "internalCurrencyPrice": f64::from(units) * price,
                    "cost": f64::from(units) * cost, "approveAndPostDate": posted,
                }),
            );
        }
    }

    /// A contract as the seed type, from its record.
    fn contract(&self, id: i64) -> Option<AtContract> {
        let r = self.get("Contracts", id)?;
        let date = |v: &Value| -> Option<Date> { stored_date(v.as_str()?) };
        Some(AtContract {
            id,
            company: r["companyID"].as_i64()?,
            name: r["contractName"].as_str().unwrap_or("").to_string(),
            number: r["contractNumber"].as_str().map(str::to_string),
            contract_type: r["contractType"].as_i64().unwrap_or(0),
            status: r["status"].as_i64().unwrap_or(0),
            start_date: date(&r["startDate"])?,
            end_date: date(&r["endDate"])?,
            is_default: r["isDefaultContract"].as_bool().unwrap_or(false),
            // Services a client adds to a contract later start with nothing posted.
            posted_through: None,
            posted_on: None,
        })
    }
}

fn lock_store(shared: &AtShared) -> std::sync::MutexGuard<'_, AtStore> {
    lock(&shared.store)
}

/// Starts Autotask-compatible sandbox servers.
pub struct AutotaskSandbox;

impl AutotaskSandbox {
    /// Serves `seed` on `127.0.0.1` at a free port, on the current tokio runtime.
    pub async fn start(seed: AtSeed, faults: Faults) -> io::Result<AutotaskSandboxHandle> {
        AutotaskSandbox::start_on(seed, faults, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Serves `seed` at `addr` (port 0 picks a free one), on the current tokio runtime.
    pub async fn start_on(
        seed: AtSeed,
        faults: Faults,
        addr: SocketAddr,
    ) -> io::Result<AutotaskSandboxHandle> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let (shared, app) = prepare(seed, faults, listener.local_addr()?)?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let listener = DroppingListener {
            inner: listener,
            shared: shared.clone(),
        };
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(AutotaskSandboxHandle {
            shared,
            shutdown: Some(tx),
            thread: None,
        })
    }

    /// Serves `seed` at `addr` on a background thread with its own runtime, for synchronous
    /// callers.
    pub fn start_in_background(
        seed: AtSeed,
        faults: Faults,
        addr: SocketAddr,
    ) -> io::Result<AutotaskSandboxHandle> {
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let (shared, app) = prepare(seed, faults, std_listener.local_addr()?)?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("unitsync-at-sandbox".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(inner) = tokio::net::TcpListener::from_std(std_listener) else {
                        return;
                    };
                    let listener = DroppingListener {
                        inner,
                        shared: thread_shared,
                    };
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = rx.await;
                        })
                        .await;
                });
            })?;
        Ok(AutotaskSandboxHandle {
            shared,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }
}

fn prepare(seed: AtSeed, faults: Faults, addr: SocketAddr) -> io::Result<(Arc<AtShared>, Router)> {
    seed.check()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let shared = Arc::new(AtShared {
        store: Mutex::new(AtStore::new(seed)),
        faults: Mutex::new(FaultState { faults }),
        log: Mutex::new(Vec::new()),
        limits: Mutex::new(Limits::default()),
        in_flight: AtomicUsize::new(0),
        addr,
    });
    let app = Router::new()
        .fallback(dispatch)
        .layer(middleware::from_fn_with_state(shared.clone(), outer))
        .with_state(shared.clone());
    Ok((shared, app))
}

/// A running Autotask sandbox. Dropping it stops the server.
pub struct AutotaskSandboxHandle {
    shared: Arc<AtShared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AutotaskSandboxHandle {
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `http://127.0.0.1:PORT`: where zone discovery starts (`…/atservicesrest/v1.0/zoneInformation`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// `http://127.0.0.1:PORT/atservicesrest/`: the zone `url`.
    pub fn zone_url(&self) -> String {
        format!("{}/atservicesrest/", self.base_url())
    }

    /// `http://127.0.0.1:PORT/atservicesrest/v1.0/`.
    pub fn api_url(&self) -> String {
        format!("{}v1.0/", self.zone_url())
    }

    /// The seed's API user.
    pub fn login(&self) -> AtLogin {
        lock_store(&self.shared).login.clone()
    }

    /// Every request so far, in the order they were answered.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.log).clone()
    }

    /// Requests being handled right now. After a client is killed, 0 means no request it sent
    /// can still change anything.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }

    /// The faults now in force, with their remaining counts.
    pub fn faults(&self) -> Faults {
        lock(&self.shared.faults).faults.clone()
    }

    pub fn set_faults(&self, faults: Faults) {
        lock(&self.shared.faults).faults = faults;
    }

    /// The most requests seen in flight at once per endpoint (`Companies`, …), counting
    /// requests refused by the thread limit.
    pub fn max_concurrency(&self) -> BTreeMap<String, usize> {
        lock(&self.shared.limits).max_seen.clone()
    }

    pub fn reset_max_concurrency(&self) {
        lock(&self.shared.limits).max_seen.clear();
    }

    /// Authenticated requests counted in the current threshold window.
    pub fn threshold_count(&self) -> usize {
        let timeframe = window_of(&lock_store(&self.shared));
        let mut limits = lock(&self.shared.limits);
        prune(&mut limits.window, timeframe);
        limits.window.len()
    }

    /// Changes `externalRequestThreshold` while running.
    pub fn set_request_threshold(&self, threshold: u32) {
        lock_store(&self.shared).threshold = threshold.max(1);
    }

    /// Empties the threshold window.
    pub fn reset_threshold_window(&self) {
        lock(&self.shared.limits).window.clear();
    }

    /// Accepted adjustments, in order.
    pub fn adjustments(&self) -> Vec<AtAdjustment> {
        lock_store(&self.shared).adjustments.clone()
    }

    /// Every contract charge, in id order.
    pub fn charges(&self) -> Vec<Value> {
        lock_store(&self.shared).records["ContractCharges"]
            .values()
            .cloned()
            .collect()
    }

    /// A record as the API renders it (`entity` as the swagger spells it).
    pub fn record(&self, entity: &str, id: i64) -> Option<Value> {
        lock_store(&self.shared).get(entity, id).cloned()
    }

    /// The `ContractServiceUnits` rows of a contract service, by period.
    pub fn unit_periods(&self, contract_service_id: i64) -> Vec<AtUnitPeriod> {
        let store = lock_store(&self.shared);
        let mut rows: Vec<AtUnitPeriod> = store.records["ContractServiceUnits"]
            .values()
            .filter(|r| r["contractServiceID"].as_i64() == Some(contract_service_id))
            .filter_map(unit_period)
            .collect();
        rows.sort_by_key(|r| r.start_date);
        rows
    }

    /// The units of a contract service in the period containing `day`.
    pub fn units_on(&self, contract_service_id: i64, day: Date) -> Option<i32> {
        self.unit_periods(contract_service_id)
            .into_iter()
            .find(|p| p.start_date <= day && day <= p.end_date)
            .map(|p| p.units)
    }

    /// Stops the server and, for [`AutotaskSandbox::start_in_background`], waits for its thread.
    pub fn shutdown(mut self) {
        self.signal_stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    fn signal_stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for AutotaskSandboxHandle {
    fn drop(&mut self) {
        self.signal_stop();
    }
}

impl std::fmt::Debug for AutotaskSandboxHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AutotaskSandboxHandle")
            .field("addr", &self.shared.addr)
            .finish_non_exhaustive()
    }
}

fn unit_period(r: &Value) -> Option<AtUnitPeriod> {
    Some(AtUnitPeriod {
        id: r["id"].as_i64()?,
        contract_service_id: r["contractServiceID"].as_i64()?,
        start_date: stored_date(r["startDate"].as_str()?)?,
        end_date: stored_date(r["endDate"].as_str()?)?,
        units: i32::try_from(r["units"].as_i64()?).ok()?,
    })
}

fn window_of(store: &AtStore) -> Duration {
    Duration::from_secs(u64::from(store.timeframe_minutes) * 60)
}

fn prune(window: &mut VecDeque<Instant>, timeframe: Duration) {
    let now = Instant::now();
    while window
        .front()
        .is_some_and(|t| now.duration_since(*t) >= timeframe)
    {
        window.pop_front();
    }
}

/// `{"errors":[message]}` with `status`.
pub(crate) fn at_error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "errors": [message.into()] }))).into_response()
}

fn bad_request(message: impl Into<String>) -> Response {
    at_error(StatusCode::BAD_REQUEST, message)
}

fn ok_json(value: Value) -> Response {
    (StatusCode::OK, axum::Json(value)).into_response()
}

fn too_many(message: impl Into<String>, retry_after: u64) -> Response {
    let mut r = at_error(StatusCode::TOO_MANY_REQUESTS, message);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    r
}

/// Records every request and applies injected 429s and 5xx.
async fn outer(State(shared): State<Arc<AtShared>>, req: Request, next: Next) -> Response {
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
fn server_error(status: u16) -> Response {
    let status = StatusCode::from_u16(status)
        .ok()
        .filter(|s| s.is_server_error())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    at_error(
        status,
        "An unexpected error occurred (injected by the sandbox)",
    )
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Holds a thread-limit slot; gives it back when dropped.
struct Slot {
    shared: Arc<AtShared>,
    key: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut limits = lock(&self.shared.limits);
        if let Some(n) = limits.in_flight.get_mut(&self.key) {
            *n = n.saturating_sub(1);
        }
    }
}

fn canonical_entity(segment: &str) -> Option<&'static str> {
    AT_QUERY_ENTITIES
        .iter()
        .chain([ADJUSTMENTS, "ThresholdInformation"].iter())
        .find(|e| e.eq_ignore_ascii_case(segment))
        .copied()
}

/// The object endpoint a request counts against for the thread limit.
fn endpoint_key(rest: &[String]) -> String {
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

async fn dispatch(State(shared): State<Arc<AtShared>>, req: Request) -> Response {
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

async fn sleep(latency: Duration) {
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
}

fn method_not_allowed(path: &str) -> Response {
    at_error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("The requested resource does not support this HTTP method ({path})"),
    )
}

fn adjustments_read_only() -> Response {
    at_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "ContractServiceAdjustments can only be created; it cannot be queried, read or updated",
    )
}

fn zone_information(shared: &AtShared, uri: &axum::http::Uri) -> Response {
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
fn zone_unknown() -> Response {
    at_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Zone information could not be determined",
    )
}

fn authenticate(shared: &AtShared, headers: &HeaderMap) -> Result<(), Response> {
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

fn route(
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

fn not_found_path(path: &str) -> Response {
    at_error(
        StatusCode::NOT_FOUND,
        format!("The sandbox has no endpoint {path}"),
    )
}

fn children(shared: &AtShared, entity: &str, parent: i64) -> Response {
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

fn search_param(uri: &axum::http::Uri) -> Result<Value, Response> {
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

enum Paging {
    First,
    After(i64),
    Before(i64),
}

fn paging_param(uri: &axum::http::Uri) -> Result<(Value, Paging), Response> {
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
enum QueryForm {
    /// `POST …/query`: the links carry only `paging` and must be POSTed with the same body.
    Post,
    /// `GET …/query?search=`: the links carry `search` too and are fetched with GET.
    Search,
}

const PAGING_MISMATCH: &str =
    "The paging parameter does not belong to this query; send the same query as the first page";

fn has_param(uri: &axum::http::Uri, name: &str) -> bool {
    Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|q| q.0.iter().any(|(k, _)| k.eq_ignore_ascii_case(name)))
        .unwrap_or(false)
}

/// What Autotask (ASP.NET Web API) answers a GET of a `…/query/next?paging=…` link: 405 with a
/// `{"Message": …}` body, not the usual `{"errors": […]}` (WYRE-AI/autotask-mcp PR #170).
fn get_not_supported() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, HeaderValue::from_static("POST"))],
        axum::Json(json!({
            "Message": "The requested resource does not support http method 'GET'."
        })),
    )
        .into_response()
}

fn paging_url(
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

fn run_query(
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

/// A parsed `QueryModel`.
struct Parsed {
    max_records: i64,
    include: Vec<&'static str>,
    filter: Vec<Cond>,
    /// The query as given, for paging tokens.
    normalized: Value,
}

enum Cond {
    Group {
        or: bool,
        items: Vec<Cond>,
    },
    Leaf {
        op: Op,
        field: &'static str,
        udf: Option<String>,
        value: Value,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    NotEq,
    Gt,
    Gte,
    Lt,
    Lte,
    BeginsWith,
    EndsWith,
    Contains,
    Exist,
    NotExist,
    In,
    NotIn,
}

fn get_ci<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

fn entity_singular(entity: &str) -> &str {
    match entity {
        "Companies" => "Company",
        "Contracts" => "Contract",
        "ContractServices" => "ContractService",
        "ContractServiceUnits" => "ContractServiceUnit",
        "Services" => "Service",
        other => other,
    }
}

fn field_of(entity: &str, name: &str) -> Result<&'static str, String> {
    fields_of(entity)
        .iter()
        .find(|f| f.eq_ignore_ascii_case(name))
        .copied()
        .ok_or_else(|| {
            format!(
                "Unable to find {name} in the {} Entity.",
                entity_singular(entity)
            )
        })
}

impl Parsed {
    fn from_json(entity: &str, raw: &Value) -> Result<Parsed, String> {
        let Some(obj) = raw.as_object() else {
            return Err("The query must be a JSON object {\"filter\":[…]}".into());
        };
        for key in obj.keys() {
            if !["maxrecords", "includefields", "filter"]
                .contains(&key.to_ascii_lowercase().as_str())
            {
                return Err(format!("Unknown query property {key}"));
            }
        }
        let max_records = match get_ci(obj, "MaxRecords") {
            None | Some(Value::Null) => AT_MAX_RECORDS,
            Some(v) => match v.as_i64() {
                Some(n) if (1..=AT_MAX_RECORDS).contains(&n) => n,
                _ => {
                    return Err(format!(
                        "MaxRecords must be a whole number from 1 to {AT_MAX_RECORDS}; got {v}"
                    ));
                }
            },
        };
        let mut include = Vec::new();
        match get_ci(obj, "IncludeFields") {
            None | Some(Value::Null) => {}
            Some(Value::Array(names)) => {
                for n in names {
                    let Some(n) = n.as_str() else {
                        return Err("IncludeFields must be an array of field names".into());
                    };
                    include.push(field_of(entity, n)?);
                }
            }
            Some(_) => return Err("IncludeFields must be an array of field names".into()),
        }
        let filter = match get_ci(obj, "filter") {
            Some(Value::Array(items)) if !items.is_empty() => items
                .iter()
                .map(|i| cond(entity, i))
                .collect::<Result<Vec<_>, _>>()?,
            _ => {
                return Err(
                    "A query needs at least one filter item, for example {\"op\":\"gte\",\"field\":\"id\",\"value\":0}"
                        .into(),
                );
            }
        };
        Ok(Parsed {
            max_records,
            include,
            filter,
            normalized: raw.clone(),
        })
    }

    fn matches(&self, record: &Value) -> bool {
        self.filter.iter().all(|c| eval(c, record))
    }

    fn project(&self, record: &Value) -> Value {
        if self.include.is_empty() {
            return record.clone();
        }
        let mut out = Map::new();
        out.insert("id".into(), record["id"].clone());
        for f in &self.include {
            out.insert((*f).to_string(), record[*f].clone());
        }
        // The real API keeps `userDefinedFields` (often `[]`) on entities that have them, whatever
        // `IncludeFields` names (the @apigrate README's limited-fields example shows it).
        if let Some(udfs) = record.get("userDefinedFields") {
            out.insert("userDefinedFields".into(), udfs.clone());
        }
        Value::Object(out)
    }
}

fn cond(entity: &str, item: &Value) -> Result<Cond, String> {
    let Some(obj) = item.as_object() else {
        return Err(format!("A filter item must be an object; got {item}"));
    };
    let op_text = get_ci(obj, "op")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("A filter item needs an op: {item}"))?;
    let op_lower = op_text.to_ascii_lowercase();
    if op_lower == "and" || op_lower == "or" {
        let items = match get_ci(obj, "items") {
            Some(Value::Array(items)) if !items.is_empty() => items,
            _ => return Err(format!("The {op_text} group needs a non-empty items array")),
        };
        return Ok(Cond::Group {
            or: op_lower == "or",
            items: items
                .iter()
                .map(|i| cond(entity, i))
                .collect::<Result<Vec<_>, _>>()?,
        });
    }
    let op = match op_lower.as_str() {
        "eq" => Op::Eq,
        "noteq" => Op::NotEq,
        "gt" => Op::Gt,
        "gte" => Op::Gte,
        "lt" => Op::Lt,
        "lte" => Op::Lte,
        "beginswith" => Op::BeginsWith,
        "endswith" => Op::EndsWith,
        "contains" => Op::Contains,
        "exist" => Op::Exist,
        "notexist" => Op::NotExist,
        "in" => Op::In,
        "notin" => Op::NotIn,
        _ => return Err(format!("Unknown filter op {op_text}")),
    };
    let name = get_ci(obj, "field")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("A filter item needs a field: {item}"))?;
    let udf = match get_ci(obj, "udf") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Bool(true)) => true,
        Some(v) => return Err(format!("udf must be true or false; got {v}")),
    };
    let (field, udf) = if udf {
        if !fields_of(entity).contains(&"userDefinedFields") {
            return Err(format!(
                "The {} Entity has no user-defined fields",
                entity_singular(entity)
            ));
        }
        ("userDefinedFields", Some(name.to_string()))
    } else {
        (field_of(entity, name)?, None)
    };
    let value = get_ci(obj, "value").cloned().unwrap_or(Value::Null);
    match op {
        Op::Exist | Op::NotExist => {}
        Op::In | Op::NotIn => {
            if !value.is_array() {
                return Err(format!("The {op_text} op needs an array value"));
            }
        }
        _ => {
            if value.is_null() || value.is_array() || value.is_object() {
                return Err(format!(
                    "The {op_text} op on {name} needs a value (string, number or boolean); got {value}"
                ));
            }
        }
    }
    Ok(Cond::Leaf {
        op,
        field,
        udf,
        value,
    })
}

fn field_value<'a>(record: &'a Value, field: &str, udf: &Option<String>) -> &'a Value {
    match udf {
        None => &record[field],
        Some(name) => record["userDefinedFields"]
            .as_array()
            .and_then(|a| {
                a.iter().find(|u| {
                    u["name"]
                        .as_str()
                        .is_some_and(|n| n.eq_ignore_ascii_case(name))
                })
            })
            .map(|u| &u["value"])
            .unwrap_or(&Value::Null),
    }
}

/// A date or date-time as the instant Autotask reads it: with `Z` or an offset, that instant; a
/// date-time without one, UTC (REST date-times are UTC); a bare `YYYY-MM-DD`, midnight of that
/// date in US Eastern time, where date-only values are kept, so a bare date compares equal to
/// the stored value of the same date and can never shift to the day before.
fn instant(text: &str) -> Option<jiff::Timestamp> {
    let text = text.trim();
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Some(ts);
    }
    if text.len() == 10
        && let Ok(d) = text.parse::<Date>()
    {
        return eastern().to_timestamp(d.at(0, 0, 0, 0)).ok();
    }
    let dt = text.parse::<jiff::civil::DateTime>().ok()?;
    jiff::tz::TimeZone::UTC.to_timestamp(dt).ok()
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn compare(record: &Value, wanted: &Value) -> Option<std::cmp::Ordering> {
    match record {
        Value::Number(n) => {
            let a = n.as_f64()?;
            let b = match wanted {
                Value::Number(m) => m.as_f64()?,
                Value::String(s) => s.trim().parse::<f64>().ok()?,
                _ => return None,
            };
            a.partial_cmp(&b)
        }
        Value::Bool(a) => {
            let b = match wanted {
                Value::Bool(b) => *b,
                Value::String(s) if s.eq_ignore_ascii_case("true") => true,
                Value::String(s) if s.eq_ignore_ascii_case("false") => false,
                _ => return None,
            };
            Some(a.cmp(&b))
        }
        Value::String(a) => {
            let b = as_text(wanted)?;
            if let (Some(x), Some(y)) = (instant(a), instant(&b)) {
                return Some(x.cmp(&y));
            }
            Some(a.to_lowercase().cmp(&b.to_lowercase()))
        }
        _ => None,
    }
}

fn eval(c: &Cond, record: &Value) -> bool {
    use std::cmp::Ordering::*;
    match c {
        Cond::Group { or: true, items } => items.iter().any(|i| eval(i, record)),
        Cond::Group { or: false, items } => items.iter().all(|i| eval(i, record)),
        Cond::Leaf {
            op,
            field,
            udf,
            value,
        } => {
            let v = field_value(record, field, udf);
            let present = !v.is_null();
            match op {
                Op::Exist => present,
                Op::NotExist => !present,
                _ if !present => false,
                Op::Eq => compare(v, value) == Some(Equal),
                Op::NotEq => compare(v, value).is_some_and(|o| o != Equal),
                Op::Gt => compare(v, value) == Some(Greater),
                Op::Gte => matches!(compare(v, value), Some(Greater | Equal)),
                Op::Lt => compare(v, value) == Some(Less),
                Op::Lte => matches!(compare(v, value), Some(Less | Equal)),
                Op::BeginsWith | Op::EndsWith | Op::Contains => {
                    let (Some(a), Some(b)) = (as_text(v), as_text(value)) else {
                        return false;
                    };
                    let (a, b) = (a.to_lowercase(), b.to_lowercase());
                    match op {
                        Op::BeginsWith => a.starts_with(&b),
                        Op::EndsWith => a.ends_with(&b),
                        _ => a.contains(&b),
                    }
                }
                Op::In | Op::NotIn => {
                    let any = value
                        .as_array()
                        .is_some_and(|vs| vs.iter().any(|w| compare(v, w) == Some(Equal)));
                    if *op == Op::In { any } else { !any }
                }
            }
        }
    }
}

/// The date an `effectiveDate` lands on. `effectiveDate` is a date-only value kept in US Eastern
/// time: a bare `YYYY-MM-DD` is that date; a date-time is an instant (UTC without an offset)
/// whose Eastern date counts, so `2026-12-01T00:00:00Z` (19:00 on 30 November in New York) lands
/// on 30 November and `2026-12-01T05:00:00.000Z` on 1 December.
fn parse_effective(text: &str) -> Option<Date> {
    stored_date(text)
}

/// `ContractCharges/entityInformation/fields`: the fields with their picklists, which differ
/// per instance (`FieldInformationModel` and `PickListValue` in the swagger).
fn charge_fields(shared: &AtShared) -> Response {
    let store = lock_store(shared);
    let picklist = |values: &[AtPicklistValue]| -> Value {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                json!({
                    "value": v.value.to_string(), "label": v.label,
                    "isDefaultValue": v.is_default, "sortOrder": i,
                    "parentValue": "", "isActive": v.active, "isSystem": true,
                })
            })
            .collect()
    };
    let required = [
        "chargeType",
        "contractID",
        "datePurchased",
        "isBillableToCompany",
        "name",
        "status",
        "unitQuantity",
    ];
    let fields: Vec<Value> = CONTRACT_CHARGE_FIELDS
        .iter()
        .map(|name| {
            let values = match *name {
                "chargeType" => Some(picklist(&store.charge_types)),
                "status" => Some(picklist(&store.charge_statuses)),
                _ => None,
            };
            json!({
                "name": name,
                "dataType": match *name {
                    "name" | "description" | "notes" | "purchaseOrderNumber"
                    | "internalPurchaseOrderNumber" => "string",
                    "datePurchased" | "createDate" | "statusLastModifiedDate" => "datetime",
                    "isBillableToCompany" | "isBilled" => "boolean",
                    "unitQuantity" | "unitPrice" | "unitCost" | "billableAmount"
                    | "extendedCost" | "internalCurrencyBillableAmount"
                    | "internalCurrencyUnitPrice" => "double",
                    _ => "long",
                },
                "length": if *name == "name" { CHARGE_NAME_LENGTH } else { 0 },
                "isRequired": required.contains(name),
                "isReadOnly": matches!(*name, "id" | "createDate" | "isBilled" | "creatorResourceID"),
                "isQueryable": true,
                "isReference": name.ends_with("ID"),
                "referenceEntityType": "",
                "isPickList": values.is_some(),
                "picklistValues": values.unwrap_or(Value::Null),
                "picklistParentValueField": "",
                "isSupportedWebhookField": false,
            })
        })
        .collect();
    ok_json(json!({ "fields": fields }))
}

/// `POST Contracts/{id}/Charges`: a one-time charge on a contract, checked the way Autotask
/// checks it: the required fields, picklist values that exist and are active on this instance,
/// and a billing code or product to bill it under.
fn create_charge(shared: &AtShared, parent: i64, body: &Bytes) -> Response {
    let raw: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return bad_request(format!("The request body is not valid JSON: {e}")),
    };
    let Some(obj) = raw.as_object() else {
        return bad_request("The request body must be a ContractCharge object");
    };
    let field = |name: &str| get_ci(obj, name).filter(|v| !v.is_null());
    let run = || -> Result<Response, Response> {
        for name in [
            "chargeType",
            "datePurchased",
            "isBillableToCompany",
            "name",
            "status",
            "unitQuantity",
        ] {
            if field(name).is_none() {
                return Err(bad_request(format!("{name} is required")));
            }
        }
        if let Some(b) = field("contractID").and_then(Value::as_i64)
            && b != parent
        {
            return Err(bad_request(format!(
                "contractID {b} does not match the parent contract {parent}"
            )));
        }
        let name = field("name").and_then(Value::as_str).unwrap_or_default();
        if name.trim().is_empty() || name.chars().count() > CHARGE_NAME_LENGTH {
            return Err(bad_request(format!(
                "name must be 1 to {CHARGE_NAME_LENGTH} characters"
            )));
        }
        let picklist_value = |name: &str, values: &[AtPicklistValue]| -> Result<i64, Response> {
            let v = field(name).expect("checked above");
            let n = v
                .as_i64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .ok_or_else(|| bad_request(format!("{name} must be a picklist value; got {v}")))?;
            if values.iter().any(|p| p.value == n && p.active) {
                Ok(n)
            } else {
                Err(bad_request(format!(
                    "{n} is not an active value of the {name} picklist"
                )))
            }
        };
        let mut store = lock_store(shared);
        let charge_type = picklist_value("chargeType", &store.charge_types)?;
        let status = picklist_value("status", &store.charge_statuses)?;
        let quantity = field("unitQuantity")
            .and_then(Value::as_f64)
            .ok_or_else(|| bad_request("unitQuantity must be a number"))?;
        if !field("isBillableToCompany").is_some_and(Value::is_boolean) {
            return Err(bad_request("isBillableToCompany must be true or false"));
        }
        let purchased = field("datePurchased")
            .and_then(Value::as_str)
            .and_then(parse_effective)
            .ok_or_else(|| bad_request("datePurchased must be an ISO-8601 date"))?;
        if field("billingCodeID").is_none() && field("productID").is_none() {
            return Err(bad_request(
                "A charge needs a billingCodeID or a productID to bill under",
            ));
        }
        for price in ["unitPrice", "unitCost"] {
            if field(price).is_some_and(|v| !v.is_number()) {
                return Err(bad_request(format!("{price} must be a number")));
            }
        }
        let Some(contract) = store.contract(parent) else {
            return Err(bad_request(format!("Contract {parent} does not exist")));
        };
        if contract.status != CONTRACT_STATUS_ACTIVE {
            return Err(bad_request(format!(
                "Contract {parent} is not active; charges cannot be added to an inactive contract"
            )));
        }
        if let Some(cs) = field("contractServiceID").and_then(Value::as_i64)
            && store
                .get("ContractServices", cs)
                .is_none_or(|r| r["contractID"].as_i64() != Some(parent))
        {
            return Err(bad_request(format!(
                "ContractService {cs} does not belong to contract {parent}"
            )));
        }
        let id = store.next_charge_id;
        store.next_charge_id += 1;
        let mut set = raw.clone();
        let map = set.as_object_mut().expect("an object");
        map.insert("id".into(), json!(id));
        map.insert("contractID".into(), json!(parent));
        map.insert("chargeType".into(), json!(charge_type));
        map.insert("status".into(), json!(status));
        map.insert("unitQuantity".into(), json!(quantity));
        map.insert("datePurchased".into(), json!(date_only(purchased)));
        map.insert("isBilled".into(), json!(false));
        map.insert("createDate".into(), json!(crate::clock::now().to_string()));
        let price = field("unitPrice").and_then(Value::as_f64).unwrap_or(0.0);
        map.insert("billableAmount".into(), json!(price * quantity));
        store.insert("ContractCharges", id, set);
        Ok(ok_json(json!({ "itemId": id })))
    };
    run().unwrap_or_else(|r| r)
}

fn create_adjustment(shared: &AtShared, parent: Option<i64>, body: &Bytes) -> Response {
    let raw: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return bad_request(format!("The request body is not valid JSON: {e}")),
    };
    let Some(obj) = raw.as_object() else {
        return bad_request("The request body must be a ContractServiceAdjustment object");
    };
    let int = |name: &str| -> Result<Option<i64>, Response> {
        match get_ci(obj, name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| bad_request(format!("{name} must be a whole number; got {v}"))),
        }
    };
    let run = || -> Result<Response, Response> {
        let body_contract = int("contractID")?;
        let contract_id = match (parent, body_contract) {
            (Some(p), Some(b)) if p != b => {
                return Err(bad_request(format!(
                    "contractID {b} does not match the parent contract {p}"
                )));
            }
            (Some(p), _) => p,
            (None, Some(b)) => b,
            (None, None) => return Err(bad_request("contractID is required")),
        };
        let service_id = int("serviceID")?.ok_or_else(|| bad_request("serviceID is required"))?;
        let contract_service_id = int("contractServiceID")?;
        let unit_change = match get_ci(obj, "unitChange") {
            None | Some(Value::Null) => return Err(bad_request("unitChange is required")),
            Some(v) => v
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(|| {
                    bad_request(format!(
                        "unitChange must be a whole number (int32); got {v}"
                    ))
                })?,
        };
        let effective = match get_ci(obj, "effectiveDate") {
            None | Some(Value::Null) => return Err(bad_request("effectiveDate is required")),
            Some(v) => v.as_str().and_then(parse_effective).ok_or_else(|| {
                bad_request(format!("effectiveDate must be an ISO-8601 date; got {v}"))
            })?,
        };
        for price in ["adjustedUnitPrice", "adjustedUnitCost"] {
            if let Some(v) = get_ci(obj, price).filter(|v| !v.is_null())
                && !v.is_number()
            {
                return Err(bad_request(format!("{price} must be a number; got {v}")));
            }
        }

        let mut store = lock_store(shared);
        let Some(contract) = store.contract(contract_id) else {
            return Err(bad_request(format!(
                "Contract {contract_id} does not exist"
            )));
        };
        if contract.contract_type != CONTRACT_TYPE_RECURRING_SERVICE {
            return Err(bad_request(format!(
                "Contract {contract_id} is not a Recurring Service contract (contractType {}); services can only be adjusted on contractType 7",
                contract.contract_type
            )));
        }
        if contract.status != CONTRACT_STATUS_ACTIVE {
            return Err(bad_request(format!(
                "Contract {contract_id} is not active; adjustments cannot be made to an inactive contract"
            )));
        }
        let Some(service) = store.get("Services", service_id).cloned() else {
            return Err(bad_request(format!("Service {service_id} does not exist")));
        };
        if effective < contract.start_date || effective > contract.end_date {
            return Err(bad_request(format!(
                "effectiveDate {effective} is outside contract {contract_id} ({} to {})",
                contract.start_date, contract.end_date
            )));
        }
        let existing = store.records["ContractServices"]
            .values()
            .find(|r| {
                r["contractID"].as_i64() == Some(contract_id)
                    && r["serviceID"].as_i64() == Some(service_id)
            })
            .and_then(|r| r["id"].as_i64());
        let cs_id = match (contract_service_id, existing) {
            (Some(given), _) => {
                let Some(cs) = store.get("ContractServices", given) else {
                    return Err(bad_request(format!(
                        "ContractService {given} does not exist"
                    )));
                };
                if cs["contractID"].as_i64() != Some(contract_id) {
                    return Err(bad_request(format!(
                        "ContractService {given} does not belong to contract {contract_id}"
                    )));
                }
                if cs["serviceID"].as_i64() != Some(service_id) {
                    return Err(bad_request(format!(
                        "ContractService {given} is for service {}, not service {service_id}",
                        cs["serviceID"]
                    )));
                }
                given
            }
            (None, Some(found)) => found,
            (None, None) => {
                let id = store.next_contract_service_id;
                store.next_contract_service_id += 1;
                let price = service["unitPrice"].as_f64().unwrap_or(0.0);
                let cost = service["unitCost"].as_f64().unwrap_or(0.0);
                store.add_contract_service(id, &contract, service_id, price, cost, None, 0);
                id
            }
        };
        let cs = store
            .get("ContractServices", cs_id)
            .cloned()
            .unwrap_or(Value::Null);
        // Without an adjusted price, the units keep the price the period bills now (an earlier
        // adjustment may have changed it from the contract service's own).
        let current = |field: &str| {
            store.records["ContractServiceUnits"]
                .values()
                .filter(|r| r["contractServiceID"].as_i64() == Some(cs_id))
                .find(|r| {
                    unit_period(r)
                        .is_some_and(|p| p.start_date <= effective && effective <= p.end_date)
                })
                .and_then(|r| {
                    let units = r["units"].as_f64().filter(|u| *u > 0.0)?;
                    Some(r[field].as_f64()? / units)
                })
        };
        let unit_price = get_ci(obj, "adjustedUnitPrice")
            .and_then(Value::as_f64)
            .or_else(|| current("price"))
            .or_else(|| cs["unitPrice"].as_f64())
            .unwrap_or(0.0);
        let unit_cost = get_ci(obj, "adjustedUnitCost")
            .and_then(Value::as_f64)
            .or_else(|| current("cost"))
            .or_else(|| cs["unitCost"].as_f64())
            .unwrap_or(0.0);
        let affected: Vec<(i64, i64)> = store.records["ContractServiceUnits"]
            .values()
            .filter_map(unit_period)
            .filter(|p| p.contract_service_id == cs_id && p.end_date >= effective)
            .map(|p| (p.id, i64::from(p.units) + i64::from(unit_change)))
            .collect();
        let posted = store.records["ContractServiceUnits"]
            .values()
            .filter(|r| r["contractServiceID"].as_i64() == Some(cs_id))
            .filter(|r| !r["approveAndPostDate"].is_null())
            .filter_map(unit_period)
            .any(|p| p.end_date >= effective);
        if posted {
            // Autotask's words for changing a posted recurring-service period (KB370000000540).
            return Err(bad_request(
                "Unable to make changes as it would result in the deletion/modification of an already approved and posted contract period"
                    .to_string(),
            ));
        }
        if let Some((id, units)) = affected.iter().find(|(_, u)| *u < 0) {
            return Err(bad_request(format!(
                "The adjustment would make the units of ContractServiceUnit {id} {units}; units cannot be negative"
            )));
        }
        if let Some((id, units)) = affected.iter().find(|(_, u)| *u > i64::from(i32::MAX)) {
            return Err(bad_request(format!(
                "The adjustment would make the units of ContractServiceUnit {id} {units}; units cannot exceed {} (int32)",
                i32::MAX
            )));
        }
        let units_map = store
            .records
            .get_mut("ContractServiceUnits")
            .expect("entity");
        for (id, units) in &affected {
            if let Some(r) = units_map.get_mut(id) {
                let u = *units as f64;
                r["units"] = json!(units);
                r["price"] = json!(u * unit_price);
                r["internalCurrencyPrice"] = json!(u * unit_price);
                r["cost"] = json!(u * unit_cost);
            }
        }
        let id = store.next_adjustment_id;
        store.next_adjustment_id += 1;
        store.adjustments.push(AtAdjustment {
            id,
            contract_id,
            contract_service_id: cs_id,
            service_id,
            effective_date: effective,
            unit_change,
            body: raw.clone(),
        });
        Ok(ok_json(json!({ "itemId": id })))
    };
    run().unwrap_or_else(|r| r)
}

/// `CompanyModel` fields (swagger).
const COMPANY_FIELDS: &[&str] = &[
    "id",
    "additionalAddressInformation",
    "address1",
    "address2",
    "alternatePhone1",
    "alternatePhone2",
    "apiVendorID",
    "assetValue",
    "billToCompanyLocationID",
    "billToAdditionalAddressInformation",
    "billingAddress1",
    "billingAddress2",
    "billToAddressToUse",
    "billToAttention",
    "billToCity",
    "billToCountryID",
    "billToState",
    "billToZipCode",
    "city",
    "classification",
    "companyCategoryID",
    "companyName",
    "companyNumber",
    "companyType",
    "competitorID",
    "countryID",
    "createDate",
    "createdByResourceID",
    "currencyID",
    "fax",
    "impersonatorCreatorResourceID",
    "invoiceEmailMessageID",
    "invoiceMethod",
    "invoiceNonContractItemsToParentCompany",
    "invoiceTemplateID",
    "isActive",
    "isClientPortalActive",
    "isEnabledForComanaged",
    "isSample",
    "isTaskFireActive",
    "isTaxExempt",
    "lastActivityDate",
    "lastTrackedModifiedDateTime",
    "marketSegmentID",
    "ownerResourceID",
    "parentCompanyID",
    "phone",
    "postalCode",
    "purchaseOrderTemplateID",
    "quoteEmailMessageID",
    "quoteTemplateID",
    "sicCode",
    "state",
    "stockMarket",
    "stockSymbol",
    "surveyCompanyRating",
    "taxID",
    "taxRegionID",
    "territoryID",
    "webAddress",
    "userDefinedFields",
];
/// `ContractModel` fields (swagger).
const CONTRACT_FIELDS: &[&str] = &[
    "id",
    "billingPreference",
    "billToCompanyContactID",
    "billToCompanyID",
    "companyID",
    "contactID",
    "contactName",
    "contractCategory",
    "contractExclusionSetID",
    "contractName",
    "contractNumber",
    "contractPeriodType",
    "contractType",
    "description",
    "endDate",
    "estimatedCost",
    "estimatedHours",
    "estimatedRevenue",
    "exclusionContractID",
    "internalCurrencyOverageBillingRate",
    "internalCurrencySetupFee",
    "isCompliant",
    "isDefaultContract",
    "lastModifiedDateTime",
    "opportunityID",
    "organizationalLevelAssociationID",
    "overageBillingRate",
    "purchaseOrderNumber",
    "renewedContractID",
    "serviceLevelAgreementID",
    "setupFee",
    "setupFeeBillingCodeID",
    "startDate",
    "status",
    "timeReportingRequiresStartAndStopTimes",
    "userDefinedFields",
];
/// `ContractServiceModel` fields (swagger).
const CONTRACT_SERVICE_FIELDS: &[&str] = &[
    "id",
    "contractID",
    "internalCurrencyAdjustedPrice",
    "internalCurrencyUnitPrice",
    "internalDescription",
    "invoiceDescription",
    "quoteItemID",
    "serviceID",
    "unitCost",
    "unitPrice",
];
/// `ContractServiceUnitModel` fields (swagger).
const CONTRACT_SERVICE_UNIT_FIELDS: &[&str] = &[
    "id",
    "approveAndPostDate",
    "contractID",
    "contractServiceID",
    "cost",
    "endDate",
    "internalCurrencyPrice",
    "organizationalLevelAssociationID",
    "price",
    "serviceID",
    "startDate",
    "units",
    "vendorCompanyID",
];
/// `ServiceModel` fields (swagger).
const SERVICE_FIELDS: &[&str] = &[
    "id",
    "billingCodeID",
    "createDate",
    "creatorResourceID",
    "description",
    "invoiceDescription",
    "isActive",
    "lastModifiedDate",
    "markupRate",
    "name",
    "periodType",
    "serviceLevelAgreementID",
    "unitCost",
    "unitPrice",
    "updateResourceID",
    "vendorCompanyID",
    "manufacturerServiceProvider",
    "manufacturerServiceProviderProductNumber",
    "catalogNumberPartNumber",
    "sku",
    "internalID",
    "externalID",
    "url",
    "userDefinedFields",
];
/// `ContractChargeModel` fields (swagger).
const CONTRACT_CHARGE_FIELDS: &[&str] = &[
    "id",
    "billableAmount",
    "billingCodeID",
    "chargeType",
    "contractID",
    "contractServiceBundleID",
    "contractServiceID",
    "createDate",
    "creatorResourceID",
    "datePurchased",
    "description",
    "extendedCost",
    "internalCurrencyBillableAmount",
    "internalCurrencyUnitPrice",
    "internalPurchaseOrderNumber",
    "isBillableToCompany",
    "isBilled",
    "name",
    "notes",
    "organizationalLevelAssociationID",
    "productID",
    "purchaseOrderNumber",
    "status",
    "statusLastModifiedBy",
    "statusLastModifiedDate",
    "unitCost",
    "unitPrice",
    "unitQuantity",
];
/// The longest `ContractCharges.name` the sandbox accepts (its `entityInformation/fields` says so).
const CHARGE_NAME_LENGTH: usize = 100;
/// `ContractServiceAdjustmentModel` fields (swagger).
const CONTRACT_SERVICE_ADJUSTMENT_FIELDS: &[&str] = &[
    "id",
    "adjustedUnitCost",
    "adjustedUnitPrice",
    "allowRepeatService",
    "contractID",
    "contractServiceID",
    "effectiveDate",
    "quoteItemID",
    "serviceID",
    "unitChange",
];
