//! A ConnectWise PSA–compatible API server on 127.0.0.1, for tests, demos and `unitsync sandbox`,
//! and an Autotask-compatible one ([`AutotaskSandbox`], documented in `autotask/mod.rs`).
//!
//! It serves `GET /login/companyinfo/{company}` and, below `/{codebase}apis/3.0/`, companies,
//! agreements, agreement additions (list, count, get, PATCH, POST), the product catalog and
//! `system/info`, with ConnectWise's auth, paging (`page`/`pageSize`/`Link`, and forward-only
//! `pageId`), `conditions`, `orderBy` and `fields`. Faults (latency, 429 with `Retry-After`, 5xx,
//! dropped connections, answers lost after the request was carried out) can be injected at any
//! time through the [`SandboxHandle`], which also exposes a log of every request and the current
//! additions.
//!
//! The wire shapes here are written independently of the client in `crate::psa`, so that tests
//! against the sandbox check the client against the documented API rather than against itself.
//!
//! Behaviour choices (where ConnectWise's documentation is silent or unverified):
//! - Every REST call checks, in this order: Basic auth `company+publicKey:privateKey` (login
//!   company case-insensitive, keys exact), then a non-empty `clientId` header (equal to the
//!   seed's `client_id` when it sets one). Both failures answer 401
//!   `{"code":"Unauthorized","message":…}`. Then the seed's `deny` paths and `read_only` (any
//!   POST/PATCH/PUT/DELETE) answer 403 `{"code":"Security","message":"You do not have security
//!   permission…"}`. Then POST/PATCH/PUT need `Content-Type: application/json` (or `…+json`),
//!   else 415 `{"code":"UnsupportedMediaType",…}`. `/login/companyinfo/{company}` needs no auth.
//! - `Accept` is not checked, only recorded; REST responses carry `api-current-version: 2025.8`.
//! - Paths are matched after collapsing doubled slashes and dropping a trailing one, as the real
//!   API accepts `/company/companies/` and `/finance/agreements//1001`; the request log keeps the
//!   path as sent. A method a path does not serve answers 405 `{"code":"MethodNotAllowed",…}`
//!   (with `Allow`), a body past 2 MiB 413 `{"code":"PayloadTooLarge",…}`.
//! - `pageSize` defaults to 25 and is clamped to 1,000; `page`/`pageSize` that are not whole
//!   numbers ≥ 1 answer 400. Pages past the end are `[]`. The `Link` header (absolute URLs built
//!   from the `Host` header, other query parameters kept) is present only when there is more
//!   than one page: `first` and `prev` from page 2 on, `next` and `last` before the last page.
//!   With `pagination-type: forward-only`, `pageId` means "ids above", and `Link` has only `next`.
//! - Records are ordered by id unless `orderBy` (`field [asc|desc], …`) says otherwise; `fields`
//!   keeps only the named (nested) fields.
//! - `conditions`: see [`conditions`]. Invalid text, unknown fields, bad `orderBy`, and any
//!   `childConditions`/`customFieldConditions` answer 400 `{"code":"InvalidObject","message":
//!   "Invalid conditions …"}`. `x != value` does not match records where `x` is null (SQL
//!   semantics); `x = null` / `x != null` test for absence. Strings are `"double"` (inside, `\"`
//!   escapes a quote) or `'single'` quoted (`''` is an apostrophe); `lastUpdated` is the alias of
//!   `_info/lastUpdated`.
//! - PATCH takes `[{"op":"replace"|"add"|"remove","path":"quantity","value":4}, …]` (path with or
//!   without a leading `/`, any case) for `quantity`, `lessIncluded`, `unitPrice`, `unitCost`,
//!   `billCustomer`, `taxableFlag`, `effectiveDate`, `cancelledDate`, `description`,
//!   `invoiceDescription`, `serialNumber` and `product` (`{"id":N}` or `{"identifier":"…"}`).
//!   All operations apply or none do. Failures answer 400 `{"code":"InvalidObject","message":
//!   "addition object is invalid","errors":[{"code":"InvalidValue"|"InvalidField"|
//!   "ReadOnlyField"|"NullValue"|"MaxLengthField"|"NotFound","message":…,"resource":"addition",
//!   "field":…}]}`, or `{"code":"InvalidObject","message":…}` for a malformed body or operation.
//!   Success answers 200 with the whole addition. Datetimes are normalized to
//!   `YYYY-MM-DDTHH:MM:SSZ`; a date alone means midnight UTC.
//! - POST of an addition needs `product` and `billCustomer` (400 `NullValue` otherwise);
//!   quantity defaults to 1, prices to the catalog item's. It answers 201 with the object.
//!   DELETE answers 204.
//! - Additions changed through the API carry the API member's identifier (`login.member`,
//!   default `APIMember`) in `_info.updatedBy`, as ConnectWise names the member, never its keys.
//! - Unknown records answer 404 `{"code":"NotFound","message":…}`; an addition asked for under
//!   another agreement is unknown. Ids that are not positive numbers answer 400.
//! - Null fields are left out of responses, as ConnectWise does; numbers such as `quantity` are
//!   JSON floats (`3.0`, `120.25`).
//! - Injected 429s (with `Retry-After`) and 5xx bodies are `{"code":"TooManyRequests"|
//!   "InternalServerError","message":…}`. Fault counters count every request, including
//!   `/login/companyinfo` and requests that would fail auth, unless narrowed by method or path.
//! - A lost answer ([`Faults::lose_responses_after_commit`]) comes after the request was carried
//!   out and logged with the status it would have had (and [`RecordedRequest::response_lost`]).

mod autotask;
pub mod autotask_seed;
pub mod conditions;
mod connectwise;
pub mod seed;

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::Response;
use serde::Serialize;

pub use connectwise::{API_VERSION, DEFAULT_PAGE_SIZE, LOGGED_HEADERS, MAX_PAGE_SIZE};
pub use seed::{
    DEFAULT_API_MEMBER, DEFAULT_CODEBASE, Seed, SeedAddition, SeedAgreement, SeedCompany,
    SeedCustomField, SeedError, SeedLogin, SeedProduct, SeedProductRef, SeedReference,
};

pub(crate) use connectwise::{FaultState, Injected, lock};
use connectwise::{Shared, Store};

pub use autotask::{
    AT_LOGGED_HEADERS, AT_MAX_RECORDS, AT_QUERY_ENTITIES, AtAdjustment, AtUnitPeriod,
    AutotaskSandbox, AutotaskSandboxHandle,
};
pub use autotask_seed::{
    AtCompany, AtContract, AtContractService, AtLogin, AtPicklistValue, AtSeed, AtService,
    CONTRACT_STATUS_ACTIVE, CONTRACT_TYPE_RECURRING_SERVICE, DEFAULT_REQUEST_THRESHOLD,
    DEFAULT_THREAD_LIMIT, DEFAULT_THRESHOLD_TIMEFRAME_MINUTES,
};

/// The Autotask demo data: the same story as [`DEMO_SEED_YAML`] in Autotask terms.
pub const AUTOTASK_DEMO_SEED_YAML: &str = include_str!("autotask-demo-seed.yaml");

/// The Autotask demo seed (see `autotask-demo-seed.yaml`).
pub fn autotask_demo_seed() -> AtSeed {
    AtSeed::from_yaml(AUTOTASK_DEMO_SEED_YAML).expect("the embedded Autotask demo seed is valid")
}

/// The demo data: the StorageCraft guide's MSP Computech and its customers.
pub const DEMO_SEED_YAML: &str = include_str!("demo-seed.yaml");

/// The demo seed (see `demo-seed.yaml`).
pub fn demo_seed() -> Seed {
    Seed::from_yaml(DEMO_SEED_YAML).expect("the embedded demo seed is valid")
}

/// Faults to inject. Counters count down as requests (or connections) hit them; replace them at
/// any time with [`SandboxHandle::set_faults`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// Added before every request is answered.
    pub latency: Duration,
    /// The next N matching requests answer 429 with `Retry-After: retry_after_secs`.
    pub rate_limited: u32,
    pub retry_after_secs: u64,
    /// The next N matching requests (after any 429s) answer `server_error_status`.
    pub server_errors: u32,
    /// 500 (when 0 or not a 5xx) or, for example, 503.
    pub server_error_status: u16,
    /// The next N new TCP connections are closed as soon as they are accepted, before any
    /// request is read (requests on already-open keep-alive connections are not affected).
    pub dropped_connections: u32,
    /// Only requests with one of these methods (such as `PATCH`) get 429s, 5xx and lost
    /// answers; empty = all.
    pub only_methods: Vec<String>,
    /// Only requests whose path contains this text get 429s, 5xx and lost answers.
    pub only_path_containing: Option<String>,
    /// The next N matching requests (after any 429s and 5xx) are carried out — a write is
    /// committed — and then their answer is lost as [`Faults::lost_response`] says: the case
    /// where a client cannot know whether its write happened.
    pub lose_responses_after_commit: u32,
    pub lost_response: LostResponse,
    /// Every answer carries `Connection: close`, so every request opens a new connection and
    /// `dropped_connections` can reach requests in the middle of a run, not only its first ones.
    pub close_connections: bool,
    /// New connections accepted normally before `dropped_connections` start being dropped.
    pub drop_connections_after: u32,
}

/// How an answer is lost after the request was carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LostResponse {
    /// The connection is closed mid-answer: the client sees the connection drop.
    #[default]
    Dropped,
    /// The answer is held back this long (past the client's timeout), then sent.
    Stalled(Duration),
    /// The answer is replaced by this 5xx, as a proxy in front of a server that did commit
    /// answers 502 or 504.
    ServerError(u16),
}

impl Faults {
    pub fn none() -> Faults {
        Faults::default()
    }

    pub fn with_latency(mut self, latency: Duration) -> Faults {
        self.latency = latency;
        self
    }

    /// The next `n` requests answer 429 with `Retry-After: retry_after_secs`.
    pub fn rate_limit(mut self, n: u32, retry_after_secs: u64) -> Faults {
        self.rate_limited = n;
        self.retry_after_secs = retry_after_secs;
        self
    }

    /// The next `n` requests answer `status` (500, 502, 503, …).
    pub fn server_errors(mut self, n: u32, status: u16) -> Faults {
        self.server_errors = n;
        self.server_error_status = status;
        self
    }

    pub fn drop_connections(mut self, n: u32) -> Faults {
        self.dropped_connections = n;
        self
    }

    /// Accepts `skip` new connections, then closes the next `n` as soon as they are accepted.
    pub fn drop_connections_after(mut self, skip: u32, n: u32) -> Faults {
        self.drop_connections_after = skip;
        self.dropped_connections = n;
        self
    }

    /// Answers every request with `Connection: close`.
    pub fn close_connections(mut self) -> Faults {
        self.close_connections = true;
        self
    }

    /// The next `n` requests are carried out, then their answer is lost as `how` says.
    pub fn lose_responses(mut self, n: u32, how: LostResponse) -> Faults {
        self.lose_responses_after_commit = n;
        self.lost_response = how;
        self
    }

    /// Limits 429s, 5xx and lost answers to requests with this method.
    pub fn only_method(mut self, method: &str) -> Faults {
        self.only_methods.push(method.to_ascii_uppercase());
        self
    }

    /// Limits 429s, 5xx and lost answers to requests whose path contains `text`.
    pub fn only_path_containing(mut self, text: &str) -> Faults {
        self.only_path_containing = Some(text.to_string());
        self
    }
}

/// Answers `response` after it was lost as `how` says (a [`LostResponse::ServerError`] is the
/// caller's, in its own API's error shape). The caller has already carried out the request.
pub(crate) async fn lose_response(response: Response, how: LostResponse) -> Response {
    let (mut parts, body) = response.into_parts();
    // The replacement body has no known length; a stale Content-Length would make the client
    // wait for bytes that never come instead of seeing what happened.
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    let body = match how {
        LostResponse::Stalled(delay) => {
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            Body::from_stream(futures_util::stream::once(async move {
                tokio::time::sleep(delay).await;
                Ok::<_, io::Error>(bytes)
            }))
        }
        LostResponse::Dropped | LostResponse::ServerError(_) => {
            Body::from_stream(futures_util::stream::once(async {
                Err::<axum::body::Bytes, _>(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "the sandbox dropped this answer (injected fault)",
                ))
            }))
        }
    };
    Response::from_parts(parts, body)
}

/// Counts a request in flight until dropped (also when the server abandons it).
pub(crate) struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    pub(crate) fn enter(counter: &'a AtomicUsize) -> InFlight<'a> {
        counter.fetch_add(1, Ordering::SeqCst);
        InFlight(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One request as the sandbox received it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordedRequest {
    /// `GET`, `PATCH`, …
    pub method: String,
    /// The full path, such as `/v4_6_release/apis/3.0/finance/agreements/1001/additions`.
    pub path: String,
    /// Query parameters, percent-decoded, in order.
    pub query: Vec<(String, String)>,
    /// The headers named in [`LOGGED_HEADERS`] that were sent, by lower-case name.
    pub headers: BTreeMap<String, String>,
    /// The user part of Basic auth (`company+publicKey`); the private key is never recorded.
    pub auth_user: Option<String>,
    /// The body parsed as JSON, when it is JSON.
    pub body: Option<serde_json::Value>,
    /// The body as text, when there was one.
    pub body_text: Option<String>,
    /// The status the sandbox answered with (for a lost answer: the one it would have sent).
    pub status: u16,
    /// The request was carried out but its answer was lost ([`Faults::lose_responses_after_commit`]).
    pub response_lost: bool,
    /// When the sandbox received it, for tests that check how long a client waited.
    #[serde(skip)]
    pub received: Instant,
}

impl RecordedRequest {
    /// The first query value with this name (case-insensitive).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A header value by (any-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// Starts sandbox servers.
pub struct Sandbox;

impl Sandbox {
    /// Serves `seed` on `127.0.0.1` at a free port, on the current tokio runtime.
    pub async fn start(seed: Seed, faults: Faults) -> io::Result<SandboxHandle> {
        Sandbox::start_on(seed, faults, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Serves `seed` at `addr` (port 0 picks a free one), on the current tokio runtime.
    pub async fn start_on(
        seed: Seed,
        faults: Faults,
        addr: SocketAddr,
    ) -> io::Result<SandboxHandle> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let (shared, app) = prepare(seed, faults, listener.local_addr()?)?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let addr = shared.addr;
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
        Ok(SandboxHandle {
            addr,
            shared,
            shutdown: Some(tx),
            thread: None,
        })
    }

    /// Serves `seed` at `addr` on a background thread with its own runtime, for synchronous
    /// callers (tests that run the `unitsync` binary, for example).
    pub fn start_in_background(
        seed: Seed,
        faults: Faults,
        addr: SocketAddr,
    ) -> io::Result<SandboxHandle> {
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let (shared, app) = prepare(seed, faults, std_listener.local_addr()?)?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("unitsync-sandbox".into())
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
        Ok(SandboxHandle {
            addr: shared.addr,
            shared,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }
}

fn prepare(
    seed: Seed,
    faults: Faults,
    addr: SocketAddr,
) -> io::Result<(Arc<Shared>, axum::Router)> {
    seed.check()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let shared = Arc::new(Shared {
        store: Mutex::new(Store::new(seed, format!("http://{addr}"))),
        faults: Mutex::new(FaultState { faults }),
        log: Mutex::new(Vec::new()),
        in_flight: AtomicUsize::new(0),
        addr,
    });
    let app = connectwise::router(shared.clone());
    Ok((shared, app))
}

/// Server state that holds the faults in force.
pub(crate) trait HasFaults: Send + Sync + 'static {
    fn fault_state(&self) -> &Mutex<FaultState>;
}

impl HasFaults for Shared {
    fn fault_state(&self) -> &Mutex<FaultState> {
        &self.faults
    }
}

/// A TCP listener that closes the next N connections when told to.
pub(crate) struct DroppingListener<S: HasFaults> {
    pub(crate) inner: tokio::net::TcpListener,
    pub(crate) shared: Arc<S>,
}

impl<S: HasFaults> axum::serve::Listener for DroppingListener<S> {
    type Io = tokio::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = match self.inner.accept().await {
                Ok(pair) => pair,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let drop_it = {
                let mut state = lock(self.shared.fault_state());
                let f = &mut state.faults;
                if f.dropped_connections == 0 {
                    false
                } else if f.drop_connections_after > 0 {
                    f.drop_connections_after -= 1;
                    false
                } else {
                    f.dropped_connections -= 1;
                    true
                }
            };
            if drop_it {
                drop(stream);
                continue;
            }
            let _ = stream.set_nodelay(true);
            return (stream, addr);
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A running sandbox. Dropping it stops the server.
pub struct SandboxHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SandboxHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`: the "site" a client is configured with.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/v4_6_release/apis/3.0/`.
    pub fn api_url(&self) -> String {
        format!(
            "{}{}/",
            self.base_url(),
            lock(&self.shared.store).api_prefix()
        )
    }

    /// The seed's login (company, keys, clientId).
    pub fn login(&self) -> SeedLogin {
        lock(&self.shared.store).login.clone()
    }

    /// Changes the login (for example to make the member read-only) while running.
    pub fn set_login(&self, login: SeedLogin) {
        lock(&self.shared.store).login = login;
    }

    /// Every request so far, in the order they were answered.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.log).clone()
    }

    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }

    /// Requests being handled right now. After a client is killed, 0 means no request it sent
    /// can still change anything.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// The additions as they are now, by id.
    pub fn additions(&self) -> Vec<SeedAddition> {
        lock(&self.shared.store)
            .additions
            .values()
            .cloned()
            .collect()
    }

    pub fn addition(&self, id: i64) -> Option<SeedAddition> {
        lock(&self.shared.store).additions.get(&id).cloned()
    }

    /// Replaces an addition's state (or adds one), for tests that simulate a hand edit.
    pub fn put_addition(&self, addition: SeedAddition) {
        lock(&self.shared.store)
            .additions
            .insert(addition.id, addition);
    }

    /// The faults now in force, with their remaining counts.
    pub fn faults(&self) -> Faults {
        lock(&self.shared.faults).faults.clone()
    }

    pub fn set_faults(&self, faults: Faults) {
        lock(&self.shared.faults).faults = faults;
    }

    /// Stops the server and, for [`Sandbox::start_in_background`], waits for its thread to end
    /// (open keep-alive connections are closed first).
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

impl Drop for SandboxHandle {
    /// Signals the server to stop without waiting for it.
    fn drop(&mut self) {
        self.signal_stop();
    }
}

impl std::fmt::Debug for SandboxHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}
