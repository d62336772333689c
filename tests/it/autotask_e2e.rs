//! The real Autotask client against the real Autotask sandbox on 127.0.0.1.
//!
//! The two were written independently from `reference/psa-apis.md` section B and the swagger and
//! share no wire types, so these tests check that both read the documented API the same way: the
//! exact requests the client sends (as the sandbox recorded them), what it makes of the answers,
//! and what the sandbox holds afterwards.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use unitsync::config::{AutotaskSettings, Mapping, UpdatePolicy};
use unitsync::plan::{Action, Plan, PsaSnapshot, RecordStatus, UnitKind, UsageRecord};
use unitsync::psa::autotask::{AutotaskOptions, Credentials, JOURNAL_PATH};
use unitsync::psa::{AutotaskClient, CheckKind, CheckOutcome, LineChange, Psa, RetryPolicy};
use unitsync::quantity::Quantity;
use unitsync::sandbox::{
    AtLogin, AtSeed, AutotaskSandbox, AutotaskSandboxHandle, Faults, RecordedRequest,
    autotask_demo_seed,
};

const API: &str = "/atservicesrest/v1.0";

/// The in-process tests' effective date, pinned by these tests themselves.
fn effective() -> jiff::civil::Date {
    jiff::civil::date(2026, 12, 1)
}

fn q(text: &str) -> Quantity {
    text.parse().unwrap()
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        timeout: Duration::from_secs(10),
        max_attempts: 4,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(40),
        max_retry_after: Duration::from_secs(60),
    }
}

fn credentials(login: &AtLogin) -> Credentials {
    Credentials::new(
        login.username.clone(),
        login.secret.clone(),
        login.integration_code.clone(),
    )
}

/// A client that discovers the zone from the sandbox (no `url` in the settings).
fn client_in(sandbox: &AutotaskSandboxHandle, dir: &std::path::Path) -> AutotaskClient {
    client_with(sandbox, dir, credentials(&sandbox.login()))
}

fn client_with(
    sandbox: &AutotaskSandboxHandle,
    dir: &std::path::Path,
    credentials: Credentials,
) -> AutotaskClient {
    let mut options = AutotaskOptions::new(journal(dir), effective());
    options.retry = fast_retry();
    options.discovery_url = Some(sandbox.zone_url());
    let settings = AutotaskSettings {
        url: None,
        effective: Default::default(),
        timeout_seconds: None,
    };
    AutotaskClient::new(&settings, credentials, options).unwrap()
}

fn journal(dir: &std::path::Path) -> PathBuf {
    dir.join(JOURNAL_PATH)
}

async fn demo() -> AutotaskSandboxHandle {
    AutotaskSandbox::start(autotask_demo_seed(), Faults::none())
        .await
        .unwrap()
}

fn mapping(value: Value) -> Mapping {
    serde_json::from_value(value).unwrap()
}

/// The guide's mappings in Autotask terms: companies by id, contracts by id, services by the
/// contract service's id, the service's SKU, or its name.
fn story_mappings() -> Vec<Mapping> {
    vec![
        mapping(json!({
            "account": "Bob's Dentistry", "license_type": "ShadowProtect Desktop",
            "company": 250, "contract": 1001, "service": "SP-DESKTOP"
        })),
        mapping(json!({
            "account": "Angry Fox Co", "license_type": "ShadowProtect Desktop",
            "company": 251, "contract": 1002, "service": 41002
        })),
        mapping(json!({
            "account": "DigitalTorch Inc", "license_type": "Cloud Premium GB",
            "company": 252, "contract": 1003, "service": {"name": "StorageCraft Cloud Premium (GB)"}
        })),
    ]
}

fn story_usage() -> Vec<UsageRecord> {
    [
        ("Bob's Dentistry", "ShadowProtect Desktop", "4"),
        ("Angry Fox Co", "ShadowProtect Desktop", "2"),
        ("DigitalTorch Inc", "Cloud Premium GB", "135"),
    ]
    .iter()
    .map(|(account, license_type, units)| UsageRecord {
        account: (*account).into(),
        license_type: (*license_type).into(),
        units: q(units),
        kind: UnitKind::Count,
    })
    .collect()
}

fn plan_of(mappings: &[Mapping], usage: &[UsageRecord], snapshot: &PsaSnapshot) -> Plan {
    crate::support::vendor_plan(mappings, usage, snapshot, UpdatePolicy::InPlace)
}

fn actions(plan: &Plan) -> Vec<(String, String)> {
    plan.lines
        .iter()
        .map(|l| (l.mapping.clone(), format!("{:?}", l.action)))
        .collect()
}

fn changes(plan: &Plan) -> Vec<LineChange> {
    plan.lines
        .iter()
        .filter_map(|line| match line.action {
            Action::Update { from, to } => Some(LineChange {
                unit_price: None,
                unit_cost: None,
                mapping: line.mapping.clone(),
                contract_id: line.target.contract_id.unwrap(),
                line_id: line.target.line_id.unwrap(),
                from,
                to,
                policy: line.update,
                effective: effective(),
            }),
            _ => None,
        })
        .collect()
}

/// (method, path, JSON body) of a recorded request, with the sandbox's origin cut off paths.
fn summary(r: &RecordedRequest) -> (String, String, Option<Value>) {
    (r.method.clone(), r.path.clone(), r.body.clone())
}

fn assert_authenticated(r: &RecordedRequest, login: &AtLogin) {
    let what = format!("{} {}", r.method, r.path);
    // The sandbox records `UserName` as the auth user and never records `Secret` or
    // `ApiIntegrationCode`; it answers 401 when a header is missing or the user or secret is
    // wrong (500 for a wrong integration code).
    assert_eq!(
        r.auth_user.as_deref(),
        Some(login.username.as_str()),
        "{what}"
    );
    assert_ne!(r.status, 401, "{what}");
    assert_eq!(r.header("content-type"), Some("application/json"), "{what}");
}

fn posts(sandbox: &AutotaskSandboxHandle) -> usize {
    sandbox
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.contains("Adjustments"))
        .count()
}

fn query(entity: &str, body: Value) -> (String, String, Option<Value>) {
    ("POST".into(), format!("{API}/{entity}/query"), Some(body))
}

fn journal_events(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(journal(dir))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["event"].as_str().unwrap().to_string()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The guide's story

#[tokio::test]
async fn the_guides_story_snapshots_plans_and_applies() {
    let sandbox = demo().await;
    let dir = tempfile::tempdir().unwrap();
    let client = client_in(&sandbox, dir.path());
    let login = sandbox.login();
    let mappings = story_mappings();

    // Snapshot: zone discovery without credentials, then one filtered query per entity.
    let snapshot = client.snapshot(&mappings).await.unwrap();
    let requests = sandbox.requests();
    let zone = &requests[0];
    assert_eq!(
        (zone.method.as_str(), zone.path.as_str()),
        ("GET", "/atservicesrest/v1.0/zoneInformation")
    );
    assert_eq!(zone.query_param("user"), Some(login.username.as_str()));
    assert_eq!(
        zone.auth_user, None,
        "zone discovery is sent without credentials"
    );
    let rest: Vec<_> = requests[1..].iter().map(summary).collect();
    assert_eq!(
        rest,
        vec![
            query(
                "Companies",
                json!({"IncludeFields":["id","companyName"],"MaxRecords":500,
                       "filter":[{"field":"id","op":"in","value":[250,251,252]}]})
            ),
            query(
                "Contracts",
                json!({"IncludeFields":["id","companyID","contractName","status"],"MaxRecords":500,
                       "filter":[{"field":"id","op":"in","value":[1001,1002,1003]}]})
            ),
            query(
                "ContractServices",
                json!({"IncludeFields":["id","contractID","serviceID","unitPrice","unitCost"],"MaxRecords":500,
                       "filter":[{"field":"contractID","op":"in","value":[1001,1002,1003]}]})
            ),
            query(
                "Services",
                json!({"IncludeFields":["id","name","sku"],"MaxRecords":500,
                       "filter":[{"field":"id","op":"in","value":[12,14]}]})
            ),
            query(
                "ContractServiceUnits",
                json!({"IncludeFields":["id","contractServiceID","startDate","endDate","units","approveAndPostDate","price","cost"],
                       "MaxRecords":500,
                       "filter":[
                           {"field":"contractServiceID","op":"in","value":[41001,41002,41003]},
                           {"field":"startDate","op":"lt","value":"2026-12-02"},
                           {"field":"endDate","op":"gte","value":"2026-12-01"}]})
            ),
        ]
    );
    for r in &requests[1..] {
        assert_authenticated(r, &login);
        assert_eq!(r.status, 200, "{} {}", r.method, r.path);
    }

    // Plan: Bob 3 → 4 (by SKU), Angry Fox in sync (by contract service id), DigitalTorch 120 →
    // 135 (by service name). Autotask units are whole numbers.
    let plan = plan_of(&mappings, &story_usage(), &snapshot);
    assert_eq!(
        actions(&plan),
        vec![
            ("angry-fox-co/shadowprotect-desktop".into(), "InSync".into()),
            (
                "bobs-dentistry/shadowprotect-desktop".into(),
                "Update { from: 3, to: 4 }".into()
            ),
            (
                "digitaltorch-inc/cloud-premium-gb".into(),
                "Update { from: 120, to: 135 }".into()
            ),
        ]
    );
    let bob = plan
        .lines
        .iter()
        .find(|l| l.mapping.starts_with("bobs"))
        .unwrap();
    assert_eq!(bob.target.line_id, Some(41001));
    assert_eq!(bob.target.contract_id, Some(1001));
    assert_eq!(bob.target.product, "SP-DESKTOP");

    // Apply: exactly one adjustment POST per change, with the unit change and effective date.
    let changes = changes(&plan);
    sandbox.clear_requests();
    for change in &changes {
        client.apply(change).await.unwrap();
    }
    let adjustments = sandbox.adjustments();
    let posted: Vec<_> = adjustments
        .iter()
        .map(|a| {
            (
                a.contract_id,
                a.contract_service_id,
                a.service_id,
                a.effective_date,
                a.unit_change,
            )
        })
        .collect();
    assert_eq!(
        posted,
        vec![
            (1001, 41001, 12, effective(), 1),
            (1003, 41003, 14, effective(), 15)
        ]
    );
    assert_eq!(
        adjustments[0].body,
        json!({"contractID":1001,"contractServiceID":41001,"serviceID":12,
               "effectiveDate":"2026-12-01","unitChange":1})
    );
    let writes: Vec<_> = sandbox
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && !r.path.contains("/query"))
        .collect();
    assert_eq!(writes.len(), 2);
    for w in &writes {
        assert_eq!(w.path, format!("{API}/ContractServiceAdjustments"));
        assert_authenticated(w, &login);
    }
    // The effective period and later ones change; earlier ones don't.
    assert_eq!(sandbox.units_on(41001, effective()), Some(4));
    assert_eq!(
        sandbox.units_on(41001, jiff::civil::date(2026, 11, 15)),
        Some(3)
    );
    assert_eq!(sandbox.units_on(41003, effective()), Some(135));
    assert_eq!(
        journal_events(dir.path()),
        vec!["intent", "posted", "intent", "posted"]
    );

    // Plan again: in sync.
    let again = client.snapshot(&mappings).await.unwrap();
    let plan = plan_of(&mappings, &story_usage(), &again);
    assert!(
        plan.lines
            .iter()
            .all(|l| matches!(l.action, Action::InSync)),
        "{:?}",
        actions(&plan)
    );

    // A rerun of the same changes (a new client: only the journal and the PSA remember) posts
    // nothing: the units already show them.
    let rerun = client_in(&sandbox, dir.path());
    let before = posts(&sandbox);
    for change in &changes {
        let result = rerun.apply(change).await.unwrap();
        assert_eq!(result.line_id(), change.line_id);
    }
    assert_eq!(posts(&sandbox), before);
    assert_eq!(sandbox.adjustments().len(), 2);
    assert_eq!(sandbox.units_on(41001, effective()), Some(4));
}

// ---------------------------------------------------------------------------------------------
// Crash recovery

#[tokio::test]
async fn a_crash_after_the_post_before_its_result_was_recorded_posts_nothing_on_rerun() {
    let sandbox = demo().await;
    let dir = tempfile::tempdir().unwrap();
    let mappings = story_mappings();
    let client = client_in(&sandbox, dir.path());
    let plan = plan_of(
        &mappings,
        &story_usage(),
        &client.snapshot(&mappings).await.unwrap(),
    );
    let changes = changes(&plan);
    let bob = changes
        .iter()
        .find(|c| c.mapping.starts_with("bobs"))
        .unwrap()
        .clone();
    client.apply(&bob).await.unwrap();
    assert_eq!(sandbox.adjustments().len(), 1);

    // The crash: the intent was written and the POST done, but its result never recorded.
    let text = std::fs::read_to_string(journal(dir.path())).unwrap();
    let intent = text.lines().next().unwrap();
    assert!(intent.contains("\"event\":\"intent\""), "{intent}");
    std::fs::write(journal(dir.path()), format!("{intent}\n")).unwrap();

    // The rerun (a new process: a new client) plans from the same stale view and applies it.
    let rerun = client_in(&sandbox, dir.path());
    sandbox.clear_requests();
    let result = rerun.apply(&bob).await;
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(posts(&sandbox), 0, "the rerun must not post again");
    assert_eq!(sandbox.adjustments().len(), 1);
    assert_eq!(sandbox.units_on(41001, effective()), Some(4));
    assert_eq!(journal_events(dir.path()), vec!["intent", "resolved"]);
    // And the pending intent is settled: a third run neither posts nor re-resolves it.
    let third = client_in(&sandbox, dir.path());
    let plan = plan_of(
        &mappings,
        &story_usage(),
        &third.snapshot(&mappings).await.unwrap(),
    );
    let bob_line = plan
        .lines
        .iter()
        .find(|l| l.mapping.starts_with("bobs"))
        .unwrap();
    assert!(
        matches!(bob_line.action, Action::InSync),
        "{:?}",
        bob_line.action
    );
    assert_eq!(sandbox.adjustments().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Scale: the thread limit and paging

#[tokio::test]
async fn a_contract_named_by_name_skips_an_inactive_namesake() {
    // Angry Fox's cancelled contract 1004 is renamed to the name of its active renewal 1002.
    let mut seed = autotask_demo_seed();
    seed.contracts
        .iter_mut()
        .find(|c| c.id == 1004)
        .unwrap()
        .name = "Managed Backup".into();
    let sandbox = AutotaskSandbox::start(seed, Faults::none()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mappings = vec![mapping(json!({
        "account": "Angry Fox Co", "license_type": "ShadowProtect Desktop",
        "company": 251, "contract": {"name": "Managed Backup"}, "service": "SP-DESKTOP"
    }))];
    let snapshot = client_in(&sandbox, dir.path())
        .snapshot(&mappings)
        .await
        .unwrap();
    let mut named: Vec<u64> = snapshot
        .contracts
        .iter()
        .filter(|c| c.name == "Managed Backup")
        .map(|c| c.id)
        .collect();
    named.sort();
    assert_eq!(named, [1002, 1004], "both namesakes are read");
    let plan = plan_of(&mappings, &story_usage(), &snapshot);
    assert_eq!(plan.lines[0].target.contract_id, Some(1002), "{plan:#?}");
    assert_eq!(plan.lines[0].target.line_id, Some(41002));
    assert_eq!(plan.lines[0].action, Action::InSync);
}

/// The demo seed plus `contracts` one-service contracts for as many companies, and one contract
/// (9000, company 250) with `services` contract services.
fn large_seed(contracts: i64, services: i64) -> AtSeed {
    let mut seed = serde_json::to_value(autotask_demo_seed()).unwrap();
    for i in 0..contracts {
        seed["companies"].as_array_mut().unwrap().push(json!({
            "id": 10_000 + i, "name": format!("Customer {i}")
        }));
        seed["contracts"].as_array_mut().unwrap().push(json!({
            "id": 20_000 + i, "company": 10_000 + i, "name": format!("Backup {i}"),
            "start_date": "2026-01-01", "end_date": "2026-12-31"
        }));
        seed["contract_services"]
            .as_array_mut()
            .unwrap()
            .push(json!({
                "id": 30_000 + i, "contract": 20_000 + i, "service": 12, "units": 1 + i % 7
            }));
    }
    if services > 0 {
        seed["contracts"].as_array_mut().unwrap().push(json!({
            "id": 9000, "company": 250, "name": "Everything", "start_date": "2026-01-01",
            "end_date": "2026-12-31"
        }));
        for i in 0..services {
            seed["services"].as_array_mut().unwrap().push(json!({
                "id": 100 + i, "name": format!("Plan {i}"), "sku": format!("PLAN-{i}"), "unit_price": 1.0
            }));
            seed["contract_services"]
                .as_array_mut()
                .unwrap()
                .push(json!({
                    "id": 50_000 + i, "contract": 9000, "service": 100 + i, "units": i % 11
                }));
        }
    }
    serde_json::from_value(seed).unwrap()
}

fn many_mappings(contracts: i64) -> Vec<Mapping> {
    (0..contracts)
        .map(|i| {
            mapping(json!({
                "account": format!("Customer {i}"), "license_type": "ShadowProtect Desktop",
                "company": 10_000 + i, "contract": 20_000 + i, "service": 30_000 + i
            }))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_snapshot_keeps_to_three_requests_per_endpoint() {
    const N: i64 = 1600;
    let sandbox = AutotaskSandbox::start(
        large_seed(N, 0),
        Faults::none().with_latency(Duration::from_millis(30)),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let client = client_in(&sandbox, dir.path());
    let mappings = many_mappings(N);
    let snapshot = client.snapshot(&mappings).await.unwrap();

    let requests = sandbox.requests();
    assert!(
        requests.iter().all(|r| r.status == 200),
        "refused: {:?}",
        requests
            .iter()
            .filter(|r| r.status != 200)
            .map(|r| (r.status, r.path.clone()))
            .collect::<Vec<_>>()
    );
    let max = sandbox.max_concurrency();
    assert!(max.values().all(|&n| n <= 3), "{max:?}");
    // ≤ 500 ids a request: 4 requests each for companies, contracts, contract services, units.
    for entity in [
        "Companies",
        "Contracts",
        "ContractServices",
        "ContractServiceUnits",
    ] {
        let path = format!("{API}/{entity}/query");
        let n = requests.iter().filter(|r| r.path == path).count();
        assert_eq!(n, 4, "{entity}");
    }
    let usage: Vec<UsageRecord> = (0..N)
        .map(|i| UsageRecord {
            account: format!("Customer {i}"),
            license_type: "ShadowProtect Desktop".into(),
            units: Quantity::from_units(1 + i % 7),
            kind: UnitKind::Count,
        })
        .collect();
    let plan = plan_of(&mappings, &usage, &snapshot);
    assert_eq!(plan.lines.len(), N as usize);
    assert!(
        plan.lines
            .iter()
            .all(|l| matches!(l.action, Action::InSync))
    );
}

/// Many changes applied at once by clones of one client (as `apply` does), with latency: each
/// endpoint still sees at most three requests in flight, and none is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_snapshots_and_writes_keep_to_three_requests_per_endpoint() {
    const N: i64 = 24;
    let sandbox = AutotaskSandbox::start(
        large_seed(N, 0),
        Faults::none().with_latency(Duration::from_millis(40)),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let client = client_in(&sandbox, dir.path());
    let mappings = many_mappings(N);

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (client, mappings) = (client.clone(), mappings.clone());
        tasks.spawn(async move { client.snapshot(&mappings).await.map(|_| ()) });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap().unwrap();
    }
    let max = sandbox.max_concurrency();
    assert!(max.values().all(|&n| n <= 3), "{max:?}");
    assert_eq!(max.get("Contracts"), Some(&3), "{max:?}");

    let usage: Vec<UsageRecord> = (0..N)
        .map(|i| UsageRecord {
            account: format!("Customer {i}"),
            license_type: "ShadowProtect Desktop".into(),
            units: Quantity::from_units(2 + i % 7),
            kind: UnitKind::Count,
        })
        .collect();
    let snapshot = client.snapshot(&mappings).await.unwrap();
    let changes = changes(&plan_of(&mappings, &usage, &snapshot));
    assert_eq!(changes.len(), N as usize);
    sandbox.reset_max_concurrency();
    let mut tasks = tokio::task::JoinSet::new();
    for change in changes {
        let client = client.clone();
        tasks.spawn(async move { client.apply(&change).await.map(|_| ()) });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap().unwrap();
    }
    let max = sandbox.max_concurrency();
    assert!(max.values().all(|&n| n <= 3), "{max:?}");
    assert_eq!(max.get("ContractServiceAdjustments"), Some(&3), "{max:?}");
    assert!(sandbox.requests().iter().all(|r| r.status == 200));
    let adjustments = sandbox.adjustments();
    assert_eq!(adjustments.len(), N as usize);
    assert!(adjustments.iter().all(|a| a.unit_change == 1));
}

#[tokio::test]
async fn more_than_500_contract_services_are_paged_through() {
    let sandbox = AutotaskSandbox::start(large_seed(0, 620), Faults::none())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let client = client_in(&sandbox, dir.path());
    let mappings = vec![
        mapping(
            json!({"account": "Bob's Dentistry", "license_type": "Plan 0",
                       "company": 250, "contract": 9000, "service": "PLAN-0"}),
        ),
        mapping(
            json!({"account": "Bob's Dentistry", "license_type": "Plan 610",
                       "company": 250, "contract": 9000, "service": 50_610}),
        ),
    ];
    let snapshot = client.snapshot(&mappings).await.unwrap();
    let requests = sandbox.requests();
    let services: Vec<_> = requests
        .iter()
        .filter(|r| r.path.starts_with(&format!("{API}/ContractServices/query")))
        .collect();
    assert_eq!(services.len(), 2, "one query, one next page");
    assert_eq!(services[0].method, "POST");
    // The next page is POSTed again (a GET of it answers 405, as the real API does).
    assert_eq!(services[1].method, "POST");
    assert_eq!(
        services[1].path,
        format!("{API}/ContractServices/query/next")
    );
    assert!(services[1].query_param("paging").is_some());
    let usage: Vec<UsageRecord> = [("Plan 0", "0"), ("Plan 610", "6")]
        .iter()
        .map(|(lt, u)| UsageRecord {
            account: "Bob's Dentistry".into(),
            license_type: (*lt).into(),
            units: q(u),
            kind: UnitKind::Count,
        })
        .collect();
    let plan = plan_of(&mappings, &usage, &snapshot);
    assert_eq!(
        actions(&plan),
        vec![
            ("bobs-dentistry/plan-0".into(), "InSync".into()),
            (
                "bobs-dentistry/plan-610".into(),
                "Update { from: 5, to: 6 }".into()
            ),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Faults, the request threshold, auth, secrets, doctor

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried() {
    let sandbox = demo().await;
    let dir = tempfile::tempdir().unwrap();
    let client = client_in(&sandbox, dir.path());
    let mappings = story_mappings();
    sandbox.set_faults(
        Faults::none()
            .rate_limit(2, 1)
            .server_errors(2, 503)
            .only_path_containing("/query"),
    );
    let snapshot = client.snapshot(&mappings).await.unwrap();
    let statuses: Vec<u16> = sandbox.requests().iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 429).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 503).count(),
        2,
        "{statuses:?}"
    );
    let plan = plan_of(&mappings, &story_usage(), &snapshot);
    assert_eq!(changes(&plan).len(), 2);

    // A 5xx on the adjustment POST is not blindly repeated: at most one adjustment lands.
    sandbox.set_faults(
        Faults::none()
            .server_errors(1, 500)
            .only_method("POST")
            .only_path_containing("Adjustments"),
    );
    let bob = changes(&plan)
        .into_iter()
        .find(|c| c.mapping.starts_with("bobs"))
        .unwrap();
    let first = client.apply(&bob).await;
    let _ = client.apply(&bob).await;
    assert!(
        first.is_err(),
        "the injected 500 is reported, not retried: {first:?}"
    );
    assert_eq!(sandbox.adjustments().len(), 1, "{first:?}");
    assert_eq!(sandbox.units_on(41001, effective()), Some(4));
}

/// The sandbox keeps dates as Autotask does (midnight US Eastern, answered as
/// `…T05:00:00.000Z`): an adjustment meant for 1 December lands on 1 December, November keeps
/// its units, and the snapshot reads December's period, not November's, on both sides of the
/// change.
#[tokio::test]
async fn an_adjustment_for_the_first_of_december_never_lands_on_the_thirtieth_of_november() {
    let sandbox = demo().await;
    let dir = tempfile::tempdir().unwrap();
    let client = client_in(&sandbox, dir.path());
    let mappings = story_mappings();
    let periods = sandbox.unit_periods(41001);
    assert_eq!(
        sandbox
            .record("ContractServiceUnits", periods[11].id)
            .unwrap()["startDate"],
        "2026-12-01T05:00:00.000Z"
    );

    let snapshot = client.snapshot(&mappings).await.unwrap();
    let bob = snapshot.lines.iter().find(|l| l.id == 41001).unwrap();
    assert_eq!(bob.status, RecordStatus::Active);
    assert_eq!(bob.quantity, q("3"));
    let plan = plan_of(&mappings, &story_usage(), &snapshot);
    let change = changes(&plan)
        .into_iter()
        .find(|c| c.line_id == 41001)
        .unwrap();
    assert_eq!(change.effective, jiff::civil::date(2026, 12, 1));
    client.apply(&change).await.unwrap();

    let adjustment = &sandbox.adjustments()[0];
    assert_eq!(adjustment.body["effectiveDate"], "2026-12-01");
    assert_eq!(adjustment.effective_date, jiff::civil::date(2026, 12, 1));
    assert_eq!(
        sandbox.units_on(41001, jiff::civil::date(2026, 11, 30)),
        Some(3)
    );
    assert_eq!(
        sandbox.units_on(41001, jiff::civil::date(2026, 12, 1)),
        Some(4)
    );
    let again = client.snapshot(&mappings).await.unwrap();
    let bob = again.lines.iter().find(|l| l.id == 41001).unwrap();
    assert_eq!(bob.quantity, q("4"), "December's period, after the change");
}

#[tokio::test]
async fn a_low_request_threshold_refuses_the_run_before_any_write() {
    let sandbox = demo().await;
    let dir = tempfile::tempdir().unwrap();
    let client = client_in(&sandbox, dir.path());
    let mappings = story_mappings();
    client.check_budget(&mappings, 2).await.unwrap();
    sandbox.set_request_threshold(12);
    let err = client.check_budget(&mappings, 2).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("Autotask API requests"), "{text}");
    assert!(text.contains("of the hourly 12 remain"), "{text}");
    assert!(text.contains("shared by every integration"), "{text}");
    assert!(sandbox.adjustments().is_empty());
    assert_eq!(posts(&sandbox), 0);
}

#[tokio::test]
async fn rejected_credentials_are_reported_without_secrets() {
    let sandbox = demo().await;
    let dir = tempfile::tempdir().unwrap();
    let login = sandbox.login();
    let wrong = Credentials::new(
        login.username.clone(),
        "WrongSecret123",
        login.integration_code.clone(),
    );
    let client = client_with(&sandbox, dir.path(), wrong);
    let err = client.snapshot(&story_mappings()).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("401") || text.contains("rejected"), "{text}");
    assert!(text.contains("UNITSYNC_AT_"), "{text}");
    assert!(!text.contains("UNITSYNC_CW_"), "{text}");
    for secret in [
        "WrongSecret123",
        login.secret.as_str(),
        login.integration_code.as_str(),
    ] {
        assert!(!text.contains(secret), "{text}");
        assert!(!format!("{err:?}").contains(secret));
        assert!(!format!("{client:?}").contains(secret));
    }
}

/// The sandbox answers as the real API does (issue 15 point 4); the client must give the right
/// hint after exactly one request, without retrying (issue 12 point 2).
#[tokio::test]
async fn an_unknown_user_or_integration_code_is_named_after_one_request() {
    let sandbox = demo().await;
    let dir = tempfile::tempdir().unwrap();
    let login = sandbox.login();

    // An unknown user name: zone discovery answers 500 "Zone information could not be determined".
    let unknown_user = |login: &AtLogin| {
        Credentials::new(
            "nobody@computech.example",
            login.secret.clone(),
            login.integration_code.clone(),
        )
    };
    let client = client_with(&sandbox, dir.path(), unknown_user(&login));
    let err = client.snapshot(&story_mappings()).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("check UNITSYNC_AT_USERNAME"), "{text}");
    assert!(text.contains("not retried"), "{text}");
    assert!(
        text.ends_with("Autotask said: Zone information could not be determined"),
        "{text}"
    );
    let requests = sandbox.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].path, "/atservicesrest/v1.0/zoneInformation");
    assert_eq!(requests[0].status, 500);
    // The same client remembers the refusal rather than asking again.
    sandbox.clear_requests();
    assert_eq!(client.snapshot(&story_mappings()).await.unwrap_err(), err);
    assert!(sandbox.requests().is_empty());
    // The doctor (a new client, as in a new run) says the same at its zone check.
    let client = client_with(&sandbox, dir.path(), unknown_user(&login));
    let checks = client.check_access(&story_mappings(), false).await;
    assert_eq!(checks[0].kind, CheckKind::Host);
    assert_eq!(checks[0].outcome, CheckOutcome::Fail);
    assert!(
        checks[0].detail.contains("UNITSYNC_AT_USERNAME"),
        "{checks:#?}"
    );
    assert_eq!(sandbox.requests().len(), 1);

    // A wrong integration code: every call answers 500 "IntegrationCode is invalid.".
    sandbox.clear_requests();
    let wrong_code = Credentials::new(
        login.username.clone(),
        login.secret.clone(),
        "WRONGCODE0000000000000000XY",
    );
    let client = client_with(&sandbox, dir.path(), wrong_code);
    let err = client.snapshot(&story_mappings()).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("check UNITSYNC_AT_INTEGRATION_CODE"),
        "{text}"
    );
    assert!(
        text.ends_with("Autotask said: IntegrationCode is invalid."),
        "{text}"
    );
    assert!(!text.contains("WRONGCODE"), "{text}");
    // The snapshot's first queries go out together; each is refused once and none is repeated.
    let refused: Vec<(String, String)> = sandbox
        .requests()
        .into_iter()
        .filter(|r| !r.path.ends_with("/zoneInformation"))
        .map(|r| {
            assert_eq!(r.status, 500, "{r:?}");
            (r.method, r.path)
        })
        .collect();
    assert!(!refused.is_empty());
    let distinct: std::collections::BTreeSet<_> = refused.iter().collect();
    assert_eq!(distinct.len(), refused.len(), "{refused:?}");
    let checks = client.check_access(&story_mappings(), false).await;
    assert_eq!(checks[1].kind, CheckKind::Credentials);
    assert_eq!(checks[1].outcome, CheckOutcome::Fail);
    assert!(
        checks[1].detail.contains("UNITSYNC_AT_INTEGRATION_CODE"),
        "{checks:#?}"
    );
    // Refused requests do not count against the hourly threshold.
    assert_eq!(sandbox.threshold_count(), 0);
}

#[tokio::test]
async fn doctor_passes_and_skips_the_write_check_with_its_reason() {
    let sandbox = demo().await;
    let dir = tempfile::tempdir().unwrap();
    let client = client_in(&sandbox, dir.path());
    let checks = client.check_access(&story_mappings(), true).await;
    for c in &checks {
        let expected = if c.kind == CheckKind::UpdateLines {
            CheckOutcome::Skipped
        } else {
            CheckOutcome::Pass
        };
        assert_eq!(c.outcome, expected, "{}: {}", c.kind, c.detail);
    }
    let write = checks
        .iter()
        .find(|c| c.kind == CheckKind::UpdateLines)
        .unwrap();
    assert!(
        write.detail.contains("cannot be deleted"),
        "{}",
        write.detail
    );
    assert!(sandbox.adjustments().is_empty());
    let login = sandbox.login();
    for c in &checks {
        assert!(!c.detail.contains(&login.secret));
    }
}

// ---------------------------------------------------------------------------------------------
// The CLI end to end: the binary, with credentials only in its environment

mod cli {
    use std::path::{Path, PathBuf};
    use std::process::Stdio;

    use unitsync::sandbox::{AutotaskSandbox, AutotaskSandboxHandle, Faults, autotask_demo_seed};

    use crate::cli_local::{Run, run};

    const MAPPINGS: &str = r#"mappings:
  - account: "Bob's Dentistry"
    license_type: ShadowProtect Desktop
    company: 250
    contract: 1001
    service: SP-DESKTOP
  - account: Angry Fox Co
    license_type: ShadowProtect Desktop
    company: 251
    contract: 1002
    service: 41002
  - account: DigitalTorch Inc
    license_type: Cloud Premium GB
    company: 252
    contract: 1003
    service: { name: StorageCraft Cloud Premium (GB) }
"#;

    const USAGE: &str = "account,license_type,units,unit
Bob's Dentistry,ShadowProtect Desktop,4,
Angry Fox Co,ShadowProtect Desktop,2,
DigitalTorch Inc,Cloud Premium GB,135,
";

    const LOCK: &str = "units:
  bobs-dentistry/shadowprotect-desktop: 4
  angry-fox-co/shadowprotect-desktop: 2
  digitaltorch-inc/cloud-premium-gb: 135
";

    /// The demo seed with its contracts spanning last year to next year around the pinned today
    /// (the CLI's effective date is the first of next month, which may be in the next year).
    pub(super) fn seed_around_today() -> unitsync::sandbox::AtSeed {
        let year = crate::support::today().year();
        let mut seed = autotask_demo_seed();
        for contract in &mut seed.contracts {
            contract.start_date = jiff::civil::date(year - 1, 1, 1);
            contract.end_date = jiff::civil::date(year + 1, 12, 31);
        }
        seed
    }

    pub(super) struct Env {
        pub(super) sandbox: AutotaskSandboxHandle,
        temp: tempfile::TempDir,
        pub(super) repo: PathBuf,
        /// Sent instead of the seed's secret.
        pub(super) wrong_secret: Option<String>,
    }

    impl Env {
        pub(super) fn new(url: impl Fn(&AutotaskSandboxHandle) -> String) -> Env {
            Env::with_seed(url, seed_around_today())
        }

        pub(super) fn with_seed(
            url: impl Fn(&AutotaskSandboxHandle) -> String,
            seed: unitsync::sandbox::AtSeed,
        ) -> Env {
            let sandbox = AutotaskSandbox::start_in_background(
                seed,
                Faults::none(),
                "127.0.0.1:0".parse().unwrap(),
            )
            .unwrap();
            let temp = tempfile::tempdir().unwrap();
            let repo = temp.path().join("billing");
            std::fs::create_dir_all(&repo).unwrap();
            let settings = format!(
                "psa:\n  autotask:\n    url: {}\nsource:\n  csv:\n    path: usage.csv\napproval: manual\n",
                url(&sandbox)
            );
            for (name, text) in [
                ("unitsync.yaml", settings.as_str()),
                ("mappings.yaml", MAPPINGS),
                ("usage.csv", USAGE),
                ("units.lock.yaml", LOCK),
            ] {
                std::fs::write(repo.join(name), text).unwrap();
            }
            Env {
                sandbox,
                temp,
                repo,
                wrong_secret: None,
            }
        }

        pub(super) fn run(&self, args: &[&str]) -> Run {
            let login = self.sandbox.login();
            let mut cmd = crate::support::unitsync_clean();
            cmd.env("NO_COLOR", "1")
                .env("USER", "tester")
                .env("TMPDIR", self.temp.path())
                .env("UNITSYNC_AT_USERNAME", &login.username)
                .env(
                    "UNITSYNC_AT_SECRET",
                    self.wrong_secret.as_deref().unwrap_or(&login.secret),
                )
                .env("UNITSYNC_AT_INTEGRATION_CODE", &login.integration_code)
                .current_dir(self.temp.path())
                .arg("-C")
                .arg(&self.repo)
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            run(cmd, None)
        }

        pub(super) fn history(&self) -> Vec<PathBuf> {
            let mut out = Vec::new();
            collect(&self.repo.join("history"), &mut out);
            // The run markers (`history/last-*`) are not records.
            out.retain(|p| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("last-"))
            });
            out.sort();
            out
        }
    }

    fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                collect(&path, out);
            } else {
                out.push(path);
            }
        }
    }
}

#[test]
fn cli_plans_applies_records_and_doctors_against_the_sandbox() {
    let env = cli::Env::new(|s| s.zone_url());
    let login = env.sandbox.login();
    let secrets = [login.secret.clone(), login.integration_code.clone()];

    let plan = env.run(&["plan"]);
    assert_eq!(plan.code, Some(0), "{plan:?}");
    assert_eq!(plan.stderr, "");
    assert!(plan.stdout.contains("update 3 → 4 (+1)"), "{}", plan.stdout);
    // Autotask's words: contracts, not ConnectWise agreements.
    assert!(
        plan.stdout.starts_with("MAPPING ")
            && plan.stdout.lines().next().unwrap().contains("  CONTRACT  "),
        "{}",
        plan.stdout
    );
    assert!(!plan.stdout.contains("AGREEMENT"), "{}", plan.stdout);
    assert!(
        plan.stdout.contains("update 120 → 135 (+15)"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("Plan: 2 to update (+16 / -0 units), 1 in sync, 0 unmapped, 0 errors."),
        "{}",
        plan.stdout
    );
    assert!(env.sandbox.adjustments().is_empty());

    let apply = env.run(&["apply", "--yes"]);
    assert_eq!(apply.code, Some(0), "{apply:?}");
    assert_eq!(apply.stderr, "");
    assert!(
        apply
            .stdout
            .contains("applied  bobs-dentistry/shadowprotect-desktop: 3 → 4\n"),
        "{}",
        apply.stdout
    );
    let mut posted: Vec<_> = env
        .sandbox
        .adjustments()
        .iter()
        .map(|a| (a.contract_service_id, a.effective_date, a.unit_change))
        .collect();
    posted.sort();
    // The binary dates adjustments the first of the month after the pinned today.
    let next = crate::support::first_of_next_month();
    assert_eq!(posted, vec![(41001, next, 1), (41003, next, 15)]);
    assert_eq!(env.sandbox.units_on(41001, next), Some(4));
    assert_eq!(env.sandbox.units_on(41003, next), Some(135));
    let files = env.history();
    assert_eq!(files.len(), 2, "{files:?}");
    assert_eq!(files[0], env.repo.join(JOURNAL_PATH));
    let record = std::fs::read_to_string(&files[1]).unwrap();
    assert!(
        apply.stdout.contains("Recorded in history/"),
        "{}",
        apply.stdout
    );
    for expected in [
        "approved_by: local:tester",
        "  contract: 1001\n  line: 41001\n  product: SP-DESKTOP\n  from: 3\n  to: 4\n  outcome: applied",
        "  contract: 1003\n  line: 41003\n  product: CLOUD-GB\n  from: 120\n  to: 135\n  outcome: applied",
    ] {
        assert!(record.contains(expected), "{record}");
    }
    let journal = std::fs::read_to_string(&files[0]).unwrap();
    assert_eq!(
        journal.matches("\"event\":\"posted\"").count(),
        2,
        "{journal}"
    );

    // Again: nothing to do, nothing posted, no new record.
    let again = env.run(&["apply", "--yes"]);
    assert_eq!(again.code, Some(0), "{again:?}");
    assert!(
        again.stdout.ends_with("Nothing to apply.\n"),
        "{}",
        again.stdout
    );
    assert_eq!(env.sandbox.adjustments().len(), 2);
    assert_eq!(env.history().len(), 2);

    // Doctor: every check passes; the write check is skipped, with its reason.
    let doctor = env.run(&["doctor"]);
    assert_eq!(doctor.code, Some(0), "{doctor:?}");
    assert!(
        doctor.stdout.contains(
            "[skip] can update contract lines: not probed: Autotask changes units only by creating \
             ContractServiceAdjustments, which cannot be deleted or updated"
        ),
        "{}",
        doctor.stdout
    );
    for label in [
        "[pass] host reachable",
        "[pass] credentials accepted",
        "[pass] can read contracts",
        "[pass] can read contract lines",
    ] {
        assert!(doctor.stdout.contains(label), "{}", doctor.stdout);
    }
    assert!(
        doctor.stdout.ends_with("All checks passed.\n"),
        "{}",
        doctor.stdout
    );
    assert_eq!(env.sandbox.adjustments().len(), 2, "doctor writes nothing");

    // Secrets never reach outputs, history or the journal.
    let mut texts = vec![record, journal];
    for run in [&plan, &apply, &again, &doctor] {
        texts.push(run.stdout.clone());
        texts.push(run.stderr.clone());
    }
    for text in &texts {
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "{text}");
        }
    }
}

#[test]
fn cli_takes_the_api_url_and_names_rejected_credentials() {
    let env = cli::Env::new(|s| s.api_url());
    let plan = env.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, Some(2), "{plan:?}");
    assert!(plan.stdout.contains("update 3 → 4 (+1)"), "{}", plan.stdout);

    // Even the most verbose log keeps the secret and the integration code out.
    let login = env.sandbox.login();
    let traced = env.run(&["plan", "-vvv"]);
    assert_eq!(traced.code, Some(0), "{traced:?}");
    assert!(!traced.stderr.is_empty());
    for text in [&traced.stdout, &traced.stderr] {
        assert!(!text.contains(&login.secret), "{text}");
        assert!(!text.contains(&login.integration_code), "{text}");
    }

    let mut cmd_env = cli::Env::new(|s| s.api_url());
    cmd_env.wrong_secret = Some("WrongSecret-7Hq2".into());
    let out = cmd_env.run(&["plan"]);
    assert_eq!(out.code, Some(4), "{out:?}");
    assert!(
        out.stderr.contains("credentials rejected (HTTP 401)"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("UNITSYNC_AT_SECRET"), "{}", out.stderr);
    for text in [&out.stdout, &out.stderr] {
        assert!(!text.contains("WrongSecret-7Hq2"), "{text}");
        assert!(!text.contains(&login.secret), "{text}");
    }
}

#[test]
fn cli_validate_explains_connectwise_keys_in_an_autotask_repo() {
    let env = cli::Env::new(|s| s.zone_url());
    std::fs::write(
        env.repo.join("mappings.yaml"),
        "mappings:\n  - account: \"Bob's Dentistry\"\n    license_type: ShadowProtect Desktop\n    company: 250\n    agreement: 1001\n    addition: SP-DESKTOP\n",
    )
    .unwrap();
    std::fs::write(env.repo.join("units.lock.yaml"), "units: {}\n").unwrap();
    let out = env.run(&["validate"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(
        out.stderr,
        "mappings.yaml:5:5: error: mapping 1 uses \"agreement\", a ConnectWise field, but psa is autotask
  hint: Autotask calls a ConnectWise agreement a contract and an addition a contract service: rename agreement: to contract: (with the Autotask contract's id)
mappings.yaml:6:5: error: mapping 1 uses \"addition\", a ConnectWise field, but psa is autotask
  hint: Autotask calls a ConnectWise agreement a contract and an addition a contract service: rename addition: to service: (with the Autotask contract service's id, or the service's SKU)
2 errors in 1 file
"
    );
}

fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Jane Reviewer")
        .env("GIT_AUTHOR_EMAIL", "jdoe@computech.example")
        .env("GIT_COMMITTER_NAME", "Jane Reviewer")
        .env("GIT_COMMITTER_EMAIL", "jdoe@computech.example")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `apply --gitops` commits the adjustment journal with the history record, so a throwaway CI
/// checkout still knows what was posted.
#[test]
fn apply_gitops_commits_the_journal_with_the_record() {
    let env = cli::Env::new(|s| s.zone_url());
    let origin = init_git(&env);

    let out = env.run(&["apply", "--gitops"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(env.sandbox.adjustments().len(), 2);
    let files = git(&origin, &["ls-tree", "-r", "--name-only", "main"]);
    assert!(files.lines().any(|f| f == JOURNAL_PATH), "{files}");
    // The source's account count travels with the record, for the next run's guardrail.
    assert!(
        files.lines().any(|f| f == "history/last-source-accounts"),
        "{files}"
    );
    let journal = git(&origin, &["show", &format!("main:{JOURNAL_PATH}")]);
    assert_eq!(
        journal.matches("\"event\":\"posted\"").count(),
        2,
        "{journal}"
    );
    assert_eq!(
        journal,
        std::fs::read_to_string(env.repo.join(JOURNAL_PATH))
            .unwrap()
            .trim()
    );
    // One commit holds both.
    let changed = git(&origin, &["show", "--name-only", "--format=", "main"]);
    assert!(changed.lines().any(|f| f == JOURNAL_PATH), "{changed}");
    assert!(
        changed.lines().any(|f| f.starts_with("history/20")),
        "{changed}"
    );

    // The working tree is clean afterwards, so the next `apply --gitops` runs, and writes nothing.
    let again = env.run(&["apply", "--gitops"]);
    assert_eq!(again.code, Some(0), "{again:?}");
    assert_eq!(env.sandbox.adjustments().len(), 2);
}

/// `propose` with `approval: automatic` against Autotask: the vendor's counts go into the lock,
/// the adjustments are posted once, and lock, history and journal are pushed together; a second
/// run finds nothing to propose and posts nothing.
#[test]
fn propose_with_automatic_approval_posts_each_adjustment_once() {
    let env = cli::Env::new(|s| s.zone_url());
    let settings = env.repo.join("unitsync.yaml");
    let text = std::fs::read_to_string(&settings).unwrap();
    std::fs::write(
        &settings,
        text.replace("approval: manual", "approval: automatic"),
    )
    .unwrap();
    std::fs::write(env.repo.join("units.lock.yaml"), "units: {}\n").unwrap();
    let origin = init_git(&env);

    let out = env.run(&["propose"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let mut posted: Vec<i32> = env
        .sandbox
        .adjustments()
        .iter()
        .map(|a| a.unit_change)
        .collect();
    // Lines are applied concurrently, so the posting order varies.
    posted.sort();
    assert_eq!(posted, [1, 15], "Bob 3 → 4 and DigitalTorch 120 → 135");
    let lock = git(&origin, &["show", "main:units.lock.yaml"]);
    assert!(
        lock.contains("bobs-dentistry/shadowprotect-desktop: 4"),
        "{lock}"
    );
    assert!(
        lock.contains("digitaltorch-inc/cloud-premium-gb: 135"),
        "{lock}"
    );
    let files = git(&origin, &["ls-tree", "-r", "--name-only", "main"]);
    assert!(files.lines().any(|f| f == JOURNAL_PATH), "{files}");
    assert!(
        files.lines().any(|f| f.starts_with("history/20")),
        "{files}"
    );

    git(&env.repo, &["pull", "--quiet", "--ff-only"]);
    let again = env.run(&["propose"]);
    assert_eq!(again.code, Some(0), "{again:?}");
    assert_eq!(env.sandbox.adjustments().len(), 2, "nothing posted twice");
}

// ---------------------------------------------------------------------------------------------
// Invoiced periods

/// The demo with Bob's contract running through 2027 and December 2026 already approved and
/// posted on 25 November.
async fn december_posted() -> AutotaskSandboxHandle {
    let mut seed = autotask_demo_seed();
    let bob = seed.contracts.iter_mut().find(|c| c.id == 1001).unwrap();
    bob.end_date = jiff::civil::date(2027, 12, 31);
    bob.posted_through = Some(jiff::civil::date(2026, 12, 31));
    bob.posted_on = Some(jiff::civil::date(2026, 11, 25));
    AutotaskSandbox::start(seed, Faults::none()).await.unwrap()
}

#[tokio::test]
async fn an_adjustment_dated_in_a_posted_period_moves_to_the_next_open_period() {
    let sandbox = december_posted().await;
    let dir = tempfile::tempdir().unwrap();
    let client = client_in(&sandbox, dir.path());
    let mappings = story_mappings();
    let snapshot = client.snapshot(&mappings).await.unwrap();
    let bob = snapshot.lines.iter().find(|l| l.id == 41001).unwrap();
    assert_eq!(
        bob.billing,
        unitsync::plan::LineBilling {
            cycle: Some(unitsync::plan::BillingCycle::Monthly),
            unit_price: Some("8".parse().unwrap()),
            unit_cost: Some("4".parse().unwrap()),
            open_from: Some(jiff::civil::date(2027, 1, 1)),
            invoiced_on: Some(jiff::civil::date(2026, 11, 25)),
        }
    );
    // Angry Fox's December is open: its line is open from the period's first day.
    let fox = snapshot.lines.iter().find(|l| l.id == 41002).unwrap();
    assert_eq!(fox.billing.open_from, Some(jiff::civil::date(2026, 12, 1)));
    assert_eq!(fox.billing.invoiced_on, None);

    let plan = plan_of(&mappings, &story_usage(), &snapshot);
    let line = plan
        .lines
        .iter()
        .find(|l| l.target.line_id == Some(41001))
        .unwrap();
    assert_eq!(
        line.action,
        Action::Update {
            from: q("3"),
            to: q("4")
        }
    );
    assert_eq!(
        line.effective,
        Some(unitsync::plan::LineEffective {
            date: jiff::civil::date(2027, 1, 1),
            why: unitsync::plan::EffectiveWhy::RolledForward {
                requested: effective(),
                invoiced_on: Some(jiff::civil::date(2026, 11, 25)),
            },
        })
    );
    assert_eq!(line.monthly_change(), Some("8".parse().unwrap()));

    let changes = unitsync::apply::changes(&plan, effective());
    let bobs: Vec<&LineChange> = changes
        .iter()
        .map(|(_, c)| c)
        .filter(|c| c.line_id == 41001)
        .collect();
    assert_eq!(bobs.len(), 1);
    assert_eq!(bobs[0].effective, jiff::civil::date(2027, 1, 1));
    client.apply(bobs[0]).await.unwrap();
    let posted: Vec<(i64, jiff::civil::Date, i32)> = sandbox
        .adjustments()
        .iter()
        .map(|a| (a.contract_service_id, a.effective_date, a.unit_change))
        .collect();
    assert_eq!(posted, [(41001, jiff::civil::date(2027, 1, 1), 1)]);
    assert_eq!(
        sandbox.adjustments()[0].body["effectiveDate"],
        json!("2027-01-01")
    );
    // The posted December keeps the units it was invoiced with.
    assert_eq!(
        sandbox.units_on(41001, jiff::civil::date(2026, 12, 15)),
        Some(3)
    );
    assert_eq!(
        sandbox.units_on(41001, jiff::civil::date(2027, 1, 1)),
        Some(4)
    );
}

#[tokio::test]
async fn a_period_posted_after_the_plan_is_refused_before_anything_is_posted() {
    let sandbox = december_posted().await;
    let dir = tempfile::tempdir().unwrap();
    let client = client_in(&sandbox, dir.path());
    // A change dated in December, as a plan made before the posting would have dated it.
    let change = LineChange {
        unit_price: None,
        unit_cost: None,
        mapping: "bobs-dentistry/shadowprotect-desktop".into(),
        contract_id: 1001,
        line_id: 41001,
        from: q("3"),
        to: q("4"),
        policy: UpdatePolicy::InPlace,
        effective: effective(),
    };
    let err = client.apply(&change).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "contract service 41001 on contract 1001: the billing period 2026-12-01 to 2026-12-31 containing the effective date 2026-12-01 was approved and posted on 2026-11-25, so an adjustment would change an invoiced period; nothing was written — run plan again, which dates the change in the next open period"
    );
    assert_eq!(posts(&sandbox), 0);
}

#[tokio::test]
async fn a_synced_price_alone_is_an_adjustment_of_no_units_and_then_in_sync() {
    let sandbox = demo().await;
    let dir = tempfile::tempdir().unwrap();
    let client = client_in(&sandbox, dir.path());
    let mut mappings = story_mappings();
    mappings[1] = mapping(json!({
        "account": "Angry Fox Co", "license_type": "ShadowProtect Desktop",
        "company": 251, "contract": 1002, "service": 41002,
        "price": 9.5, "sync_price": true
    }));
    let snapshot = client.snapshot(&mappings).await.unwrap();
    let plan = plan_of(&mappings, &story_usage(), &snapshot);
    let fox = plan
        .lines
        .iter()
        .find(|l| l.target.line_id == Some(41002))
        .unwrap();
    assert_eq!(
        fox.action,
        Action::Update {
            from: q("2"),
            to: q("2")
        }
    );
    assert_eq!(
        fox.reprice.and_then(|r| r.unit_price),
        Some(unitsync::plan::PriceChange {
            from: Some("8".parse().unwrap()),
            to: "9.5".parse().unwrap()
        })
    );
    // 2 × (9.50 − 8.00) a month.
    assert_eq!(fox.monthly_change(), Some("3".parse().unwrap()));
    for (_, change) in unitsync::apply::changes(&plan, effective()) {
        client.apply(&change).await.unwrap();
    }
    let fox_adjustments: Vec<Value> = sandbox
        .adjustments()
        .into_iter()
        .filter(|a| a.contract_service_id == 41002)
        .map(|a| a.body)
        .collect();
    assert_eq!(
        fox_adjustments,
        [json!({
            "contractID": 1002, "contractServiceID": 41002, "serviceID": 12,
            "effectiveDate": "2026-12-01", "unitChange": 0, "adjustedUnitPrice": 9.5
        })]
    );
    // Bob's count change carries no price: his mapping does not sync one.
    let bob = sandbox
        .adjustments()
        .into_iter()
        .find(|a| a.contract_service_id == 41001)
        .unwrap();
    assert_eq!(bob.body.get("adjustedUnitPrice"), None);

    let again = plan_of(
        &mappings,
        &story_usage(),
        &client.snapshot(&mappings).await.unwrap(),
    );
    let fox = again
        .lines
        .iter()
        .find(|l| l.target.line_id == Some(41002))
        .unwrap();
    assert_eq!(fox.action, Action::InSync);
    assert_eq!(fox.reprice, None);

    // A later count change sends no price, and the units keep billing 9.50.
    let mut usage = story_usage();
    usage[1].units = q("3");
    let plan = plan_of(
        &mappings,
        &usage,
        &client.snapshot(&mappings).await.unwrap(),
    );
    for (_, change) in unitsync::apply::changes(&plan, effective()) {
        assert_eq!(change.unit_price, None);
        client.apply(&change).await.unwrap();
    }
    let snapshot = client.snapshot(&mappings).await.unwrap();
    let fox = snapshot.lines.iter().find(|l| l.id == 41002).unwrap();
    assert_eq!(fox.quantity, q("3"));
    assert_eq!(fox.billing.unit_price, Some("9.5".parse().unwrap()));
}

// ---------------------------------------------------------------------------------------------
// True-ups

/// A billing repo in git with a bare origin, as `apply --gitops` needs.
fn init_git(env: &cli::Env) -> PathBuf {
    let root = env.repo.parent().unwrap().to_path_buf();
    git(
        &root,
        &["init", "--quiet", "--bare", "-b", "main", "origin.git"],
    );
    git(&env.repo, &["init", "--quiet", "-b", "main"]);
    git(&env.repo, &["add", "."]);
    git(&env.repo, &["commit", "--quiet", "-m", "billing repo"]);
    let origin = root.join("origin.git");
    git(
        &env.repo,
        &["remote", "add", "origin", origin.to_str().unwrap()],
    );
    git(&env.repo, &["push", "--quiet", "-u", "origin", "main"]);
    origin
}

/// Bob's next month was approved and posted before his change reached Autotask: the adjustment
/// bills from the month after, history keeps the day it was due, and the approved true-up for
/// that month (merged into `true-ups.yaml`) becomes one contract charge on his service's billing
/// code, at the posted period's price. A declined one is never written, and a rerun writes
/// nothing.
#[test]
fn an_approved_true_up_is_charged_once_as_a_contract_charge() {
    let next = crate::support::first_of_next_month();
    let after = next + jiff::Span::new().months(1);
    let mut seed = cli::seed_around_today();
    let bob = seed.contracts.iter_mut().find(|c| c.id == 1001).unwrap();
    bob.posted_through = Some(next.last_of_month());
    bob.posted_on = Some(crate::support::today());
    let env = cli::Env::with_seed(|s| s.zone_url(), seed);
    let settings = env.repo.join("unitsync.yaml");
    let text = std::fs::read_to_string(&settings).unwrap();
    std::fs::write(&settings, format!("{text}billing:\n  true_ups: true\n")).unwrap();
    let origin = init_git(&env);

    let out = env.run(&["apply", "--gitops"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let changed = git(&origin, &["show", "--name-only", "--format=", "main"]);
    let record_file = changed
        .lines()
        .find(|f| f.starts_with("history/20"))
        .unwrap();
    let record = git(&origin, &["show", &format!("main:{record_file}")]);
    assert!(
        record.contains(&format!("  effective: \"{after}\"\n  due: \"{next}\"\n")),
        "{record}"
    );
    assert!(env.sandbox.charges().is_empty());

    // The reviewer's merge: Bob's correction approved, Angry Fox's (hand-added) declined.
    const BOB: &str = "bobs-dentistry/shadowprotect-desktop";
    let id = unitsync::plan::true_up::true_up_id(BOB, next, after);
    let last_day = next.last_of_month();
    std::fs::write(
        env.repo.join("true-ups.yaml"),
        format!(
            "true_ups:\n  - id: {id}\n    mapping: {BOB}\n    first_day: {next}\n    last_day: {last_day}\n    billed: 3\n    approved: 4\n    quantity: 1\n\
             \x20 - id: tu-0000000a\n    mapping: angry-fox-co/shadowprotect-desktop\n    first_day: {next}\n    last_day: {last_day}\n    billed: 2\n    approved: 1\n    quantity: -1\n    decline: true\n"
        ),
    )
    .unwrap();
    git(&env.repo, &["add", "true-ups.yaml"]);
    git(&env.repo, &["commit", "--quiet", "-m", "approve true-ups"]);
    git(&env.repo, &["push", "--quiet", "origin", "main"]);
    env.sandbox.clear_requests();

    let out = env.run(&["apply", "--gitops"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let posts: Vec<_> = env
        .sandbox
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && !r.path.contains("/query"))
        .map(|r| summary(&r))
        .collect();
    let marker = format!("unitsync true-up {id}");
    assert_eq!(
        posts,
        [(
            "POST".to_string(),
            format!("{API}/Contracts/1001/Charges"),
            Some(json!({
                "contractID": 1001,
                "contractServiceID": 41001,
                "billingCodeID": 29682801,
                "name": marker,
                "description": format!("{marker}: correction for {next} to {last_day}, billed at the old count (mapping {BOB})"),
                "datePurchased": crate::support::today().to_string(),
                "unitQuantity": 1,
                "unitPrice": 8,
                "unitCost": 4,
                "isBillableToCompany": true,
                // The instance's defaults: Operational, Pending Approval.
                "chargeType": 4,
                "status": 8,
            }))
        )]
    );
    let charges = env.sandbox.charges();
    assert_eq!(charges.len(), 1);
    assert_eq!(charges[0]["billableAmount"], json!(8.0));
    assert!(
        out.stdout.contains(&format!(
            "true-up  {id} {BOB}: wrote 1 once (PSA record {})",
            charges[0]["id"]
        )),
        "{}",
        out.stdout
    );
    let last = git(&origin, &["log", "-1", "--format=%s", "main"]);
    assert_eq!(last, "unitsync: write 1 true-up");
    let changed = git(&origin, &["show", "--name-only", "--format=", "main"]);
    let record_file = changed
        .lines()
        .find(|f| f.starts_with("history/20"))
        .unwrap();
    let record = git(&origin, &["show", &format!("main:{record_file}")]);
    assert!(
        record.ends_with(&format!(
            "true_ups:\n- id: {id}\n  mapping: {BOB}\n  contract: 1001\n  quantity: 1\n  outcome: applied\n  record: {}",
            charges[0]["id"]
        )),
        "{record}"
    );

    // Written once: the rerun finds it in history and asks Autotask nothing about charges.
    env.sandbox.clear_requests();
    let again = env.run(&["apply", "--gitops"]);
    assert_eq!(again.code, Some(0), "{again:?}");
    assert!(
        again.stdout.contains("Nothing to apply"),
        "{}",
        again.stdout
    );
    assert_eq!(env.sandbox.charges().len(), 1);
    assert!(
        !env.sandbox
            .requests()
            .iter()
            .any(|r| r.path.contains("Charges")),
        "{:#?}",
        env.sandbox.requests()
    );
}

/// A charge whose history was lost (an interrupted run) is found by its marker, not posted
/// again; the sandbox refuses what Autotask refuses.
#[tokio::test]
async fn a_true_up_charge_is_found_by_its_marker_and_bad_charges_are_refused() {
    let sandbox = AutotaskSandbox::start(cli::seed_around_today(), Faults::none())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let client = client_in(&sandbox, dir.path());
    let today = crate::support::today();
    let charge = unitsync::psa::TrueUpCharge {
        id: "tu-0000beef".into(),
        mapping: "digitaltorch-inc/cloud-premium-gb".into(),
        contract_id: 1003,
        line_id: 41003,
        quantity: q("-2.5"),
        first_day: today.first_of_month(),
        last_day: today,
        written_on: today,
    };
    let first = client.write_true_up(&charge).await.unwrap();
    assert!(!first.found);
    let again = client.write_true_up(&charge).await.unwrap();
    assert_eq!(
        again,
        unitsync::psa::WrittenTrueUp {
            record_id: first.record_id,
            found: true
        }
    );
    let charges = sandbox.charges();
    assert_eq!(charges.len(), 1, "a credit is posted once");

    // The charge is made but its answer lost: the client finds it instead of posting again.
    sandbox.set_faults(Faults {
        lose_responses_after_commit: 1,
        only_methods: vec!["POST".into()],
        only_path_containing: Some("/Charges".into()),
        ..Faults::none()
    });
    let lost = unitsync::psa::TrueUpCharge {
        id: "tu-0000cafe".into(),
        ..charge.clone()
    };
    let written = client.write_true_up(&lost).await.unwrap();
    assert!(!written.found);
    assert_eq!(sandbox.charges().len(), 2, "posted once");
    assert_eq!(
        written.record_id,
        sandbox.charges()[1]["id"].as_u64().unwrap()
    );
    assert_eq!(
        sandbox
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/Charges"))
            .count(),
        2,
        "one POST per true-up"
    );
    sandbox.set_faults(Faults::none());
    assert_eq!(charges[0]["unitQuantity"], json!(-2.5));
    assert_eq!(charges[0]["billingCodeID"], json!(29682802));

    // What the real API refuses, the sandbox refuses: no billing code or product, an inactive
    // status, another contract's service.
    let http = reqwest::Client::new();
    let login = sandbox.login();
    let post = |body: Value| {
        let http = http.clone();
        let url = format!("{}Contracts/1003/Charges", sandbox.api_url());
        let login = login.clone();
        async move {
            let response = http
                .post(url)
                .header("UserName", &login.username)
                .header("Secret", &login.secret)
                .header("ApiIntegrationCode", &login.integration_code)
                .json(&body)
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let good = json!({
        "contractID": 1003, "contractServiceID": 41003, "billingCodeID": 29682802,
        "name": "x", "datePurchased": today.to_string(), "unitQuantity": 1,
        "isBillableToCompany": true, "chargeType": 4, "status": 8,
    });
    let with = |key: &str, value: Value| {
        let mut body = good.clone();
        if value.is_null() {
            body.as_object_mut().unwrap().remove(key);
        } else {
            body[key] = value;
        }
        body
    };
    for (body, expected) in [
        (
            with("billingCodeID", Value::Null),
            "billingCodeID or a productID",
        ),
        (
            with("status", json!(1)),
            "1 is not an active value of the status picklist",
        ),
        (
            with("contractServiceID", json!(41001)),
            "ContractService 41001 does not belong to contract 1003",
        ),
        (
            with("datePurchased", Value::Null),
            "datePurchased is required",
        ),
    ] {
        let (status, text) = post(body).await;
        assert_eq!(status, 400, "{text}");
        assert!(text.contains(expected), "{text}");
    }
    assert_eq!(sandbox.charges().len(), 2);
}
