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

mod faults;
mod filter;
mod routes;
mod writes;

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

use faults::{Slot, header_text, outer};
use filter::{Parsed, get_ci, instant};
use routes::dispatch;
use writes::{charge_fields, create_adjustment, create_charge};

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
