//! The real ConnectWise client against the real ConnectWise sandbox on 127.0.0.1.
//!
//! The two were written independently from `reference/psa-apis.md` section A and share no wire
//! types, so these tests check that both read the documented API the same way: the exact requests
//! the client sends (as the sandbox recorded them), what it makes of the answers, and what the
//! sandbox holds afterwards.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use unitsync::config::{ConnectWiseSettings, Mapping, UpdatePolicy};
use unitsync::plan::{
    Action, LineError, Plan, PsaSnapshot, RecordStatus, UnitKind, UnmappedUsage, UsageRecord,
};
use unitsync::psa::{
    AccessCheck, AppliedChange, CheckKind, CheckOutcome, ConnectWiseClient, Credentials,
    LineChange, Psa, PsaError, RetryPolicy,
};
use unitsync::quantity::Quantity;
use unitsync::sandbox::{
    Faults, RecordedRequest, Sandbox, SandboxHandle, Seed, SeedAddition, SeedAgreement,
    SeedCompany, SeedCustomField, SeedLogin, SeedProductRef, SeedReference, demo_seed,
};

const API: &str = "/v4_6_release/apis/3.0";
const ACCEPT: &str = "application/vnd.connectwise.com+json; version=2025.8";

// ---------------------------------------------------------------------------------------------
// Helpers

fn q(text: &str) -> Quantity {
    text.parse().unwrap()
}

fn api(path: &str) -> String {
    format!("{API}/{path}")
}

fn settings(sandbox: &SandboxHandle) -> ConnectWiseSettings {
    ConnectWiseSettings {
        site: sandbox.base_url(),
        company: "computech".into(),
        api_version: None,
        update: UpdatePolicy::InPlace,
        effective: Default::default(),
        concurrency: None,
        timeout_seconds: None,
    }
}

/// Short backoffs so retries do not slow the suite; `Retry-After` is still honoured in full.
fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        timeout: Duration::from_secs(10),
        max_attempts: 4,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(40),
        max_retry_after: Duration::from_secs(60),
    }
}

fn login_credentials(login: &SeedLogin) -> Credentials {
    Credentials::new(
        login.public_key.clone(),
        login.private_key.clone(),
        login.client_id.clone().unwrap_or_default(),
    )
}

fn client_with(sandbox: &SandboxHandle, credentials: Credentials) -> ConnectWiseClient {
    ConnectWiseClient::with_retry_policy(&settings(sandbox), credentials, fast_retry()).unwrap()
}

fn client(sandbox: &SandboxHandle) -> ConnectWiseClient {
    client_with(sandbox, login_credentials(&sandbox.login()))
}

/// The demo as seen by a run on 25 November: every agreement invoices next on 1 December, the
/// effective date these in-process tests pin (the sandbox would otherwise date the next invoice
/// from its clock, which the date matrix moves).
async fn demo() -> SandboxHandle {
    let mut seed = demo_seed();
    for agreement in &mut seed.agreements {
        agreement.next_invoice_date = Some("2026-12-01T00:00:00Z".into());
    }
    Sandbox::start(seed, Faults::none()).await.unwrap()
}

fn mapping(value: Value) -> Mapping {
    serde_json::from_value(value).unwrap()
}

/// The guide's three mappings.
fn story_mappings() -> Vec<Mapping> {
    vec![
        mapping(json!({
            "account": "Bob's Dentistry", "license_type": "ShadowProtect Desktop",
            "company": "BobsDentistry", "agreement": 1001, "addition": "SP-DESKTOP"
        })),
        mapping(json!({
            "account": "Angry Fox Co", "license_type": "ShadowProtect Server",
            "company": "AngryFox", "agreement": 1002, "addition": "SP-SERVER"
        })),
        mapping(json!({
            "account": "DigitalTorch Inc", "license_type": "Cloud Premium GB",
            "company": "DigitalTorch", "agreement": 1003, "addition": "CLOUD-GB"
        })),
    ]
}

fn usage(records: &[(&str, &str, &str, UnitKind)]) -> Vec<UsageRecord> {
    records
        .iter()
        .map(|(account, license_type, units, kind)| UsageRecord {
            account: (*account).into(),
            license_type: (*license_type).into(),
            units: q(units),
            kind: *kind,
        })
        .collect()
}

fn story_usage() -> Vec<UsageRecord> {
    usage(&[
        (
            "Bob's Dentistry",
            "ShadowProtect Desktop",
            "4",
            UnitKind::Count,
        ),
        ("Angry Fox Co", "ShadowProtect Server", "2", UnitKind::Count),
        (
            "DigitalTorch Inc",
            "Cloud Premium GB",
            "135.5",
            UnitKind::Decimal,
        ),
        (
            "Slate Gravel",
            "ShadowProtect Desktop",
            "3",
            UnitKind::Count,
        ),
    ])
}

fn plan_of(
    mappings: &[Mapping],
    usage: &[UsageRecord],
    snapshot: &PsaSnapshot,
    policy: UpdatePolicy,
) -> Plan {
    crate::support::vendor_plan(mappings, usage, snapshot, policy)
}

/// The changes a plan's updates ask for.
fn changes(plan: &Plan, effective: jiff::civil::Date) -> Vec<LineChange> {
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
                effective,
            }),
            _ => None,
        })
        .collect()
}

fn bobs_change(policy: UpdatePolicy, from: &str, to: &str) -> LineChange {
    LineChange {
        unit_price: None,
        unit_cost: None,
        mapping: "bobs-dentistry/shadowprotect-desktop".into(),
        contract_id: 1001,
        line_id: 5001,
        from: q(from),
        to: q(to),
        policy,
        effective: jiff::civil::date(2026, 12, 1),
    }
}

/// (method, path, decoded `conditions`, `pageSize`) of a recorded request.
type Summary = (String, String, Option<String>, Option<String>);

fn summary(r: &RecordedRequest) -> Summary {
    (
        r.method.clone(),
        r.path.clone(),
        r.query_param("conditions").map(str::to_string),
        r.query_param("pageSize").map(str::to_string),
    )
}

fn get(path: &str, conditions: Option<&str>, page_size: Option<&str>) -> Summary {
    (
        "GET".into(),
        path.into(),
        conditions.map(str::to_string),
        page_size.map(str::to_string),
    )
}

/// Asserts a REST request carries the login, the client id and the pinned version.
fn assert_authenticated(r: &RecordedRequest, login: &SeedLogin) {
    let user = format!("computech+{}", login.public_key);
    assert_eq!(
        r.auth_user.as_deref(),
        Some(user.as_str()),
        "{} {}",
        r.method,
        r.path
    );
    assert_eq!(
        r.header("clientid"),
        login.client_id.as_deref(),
        "{}",
        r.path
    );
    assert_eq!(r.header("accept"), Some(ACCEPT), "{}", r.path);
}

fn outcomes(checks: &[AccessCheck]) -> Vec<(CheckKind, CheckOutcome)> {
    checks.iter().map(|c| (c.kind, c.outcome)).collect()
}

// ---------------------------------------------------------------------------------------------
// 1. The guide's story

#[tokio::test]
async fn the_guides_story_plans_and_applies_in_place() {
    let sandbox = demo().await;
    let login = sandbox.login();
    let client = client(&sandbox);
    let mappings = story_mappings();
    let usage = story_usage();

    let snapshot = client.snapshot(&mappings).await.unwrap();
    let requests = sandbox.requests();
    assert_eq!(requests.len(), 6, "{requests:#?}");
    // Discovery first, without credentials.
    assert_eq!(
        summary(&requests[0]),
        get("/login/companyinfo/computech", None, None)
    );
    assert_eq!(requests[0].auth_user, None);
    // Companies and agreements side by side, then the three additions listings side by side.
    let mut lookups: Vec<Summary> = requests[1..3].iter().map(summary).collect();
    lookups.sort();
    assert_eq!(
        lookups,
        [
            get(
                &api("company/companies"),
                Some(
                    r#"identifier in ("AngryFox","BobsDentistry","DigitalTorch") and deletedFlag = false"#
                ),
                Some("1000")
            ),
            get(
                &api("finance/agreements"),
                Some("id in (1001,1002,1003)"),
                Some("1000")
            ),
        ]
    );
    let mut listings: Vec<Summary> = requests[3..].iter().map(summary).collect();
    listings.sort();
    assert_eq!(
        listings,
        [1001, 1002, 1003]
            .map(|id| get(
                &api(&format!("finance/agreements/{id}/additions")),
                None,
                Some("1000")
            ))
            .to_vec()
    );
    for r in &requests[1..] {
        assert_authenticated(r, &login);
        assert_eq!(r.query.len(), r.query_param("conditions").map_or(1, |_| 2));
        assert_eq!(r.status, 200);
    }

    let lines: Vec<(u64, u64, Option<&str>, RecordStatus, Quantity)> = snapshot
        .lines
        .iter()
        .map(|l| {
            (
                l.contract_id,
                l.id,
                l.product_identifier.as_deref(),
                l.status,
                l.quantity,
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            (1001, 5001, Some("SP-DESKTOP"), RecordStatus::Active, q("3")),
            (
                1001,
                5002,
                Some("SP-DESKTOP"),
                RecordStatus::Cancelled,
                q("2")
            ),
            (1002, 5003, Some("SP-SERVER"), RecordStatus::Active, q("2")),
            (
                1002,
                5004,
                Some("SP-DESKTOP"),
                RecordStatus::Cancelled,
                q("5")
            ),
            (
                1003,
                5005,
                Some("CLOUD-GB"),
                RecordStatus::Active,
                q("120.25")
            ),
        ]
    );
    assert_eq!(snapshot.lines[0].product_id, 301);
    assert_eq!(snapshot.lines[0].product_name, "ShadowProtect Desktop");

    let first = plan_of(&mappings, &usage, &snapshot, UpdatePolicy::InPlace);
    let actions: Vec<(&str, &Action)> = first
        .lines
        .iter()
        .map(|l| (l.mapping.as_str(), &l.action))
        .collect();
    assert_eq!(
        actions,
        [
            ("angry-fox-co/shadowprotect-server", &Action::InSync),
            (
                "bobs-dentistry/shadowprotect-desktop",
                &Action::Update {
                    from: q("3"),
                    to: q("4")
                }
            ),
            (
                "digitaltorch-inc/cloud-premium-gb",
                &Action::Update {
                    from: q("120.25"),
                    to: q("135.5")
                }
            ),
        ]
    );
    assert_eq!(
        first.unmapped,
        [UnmappedUsage {
            // Bob's desktops bill 12.50 each: Slate Gravel's three would bill 37.50 a month.
            monthly_value: Some("37.5".parse().unwrap()),
            account: "Slate Gravel".into(),
            license_type: "ShadowProtect Desktop".into(),
            units: q("3"),
            kind: UnitKind::Count,
        }]
    );
    let s = first.summary();
    assert_eq!((s.to_update, s.in_sync, s.unmapped, s.errors), (2, 1, 1, 0));

    sandbox.clear_requests();
    let todo = changes(&first, jiff::civil::date(2026, 12, 1));
    let mut applied = Vec::new();
    for change in &todo {
        applied.push(client.apply(change).await.unwrap());
    }
    assert_eq!(
        applied,
        [
            AppliedChange::UpdatedInPlace {
                line_id: 5001,
                quantity: q("4")
            },
            AppliedChange::UpdatedInPlace {
                line_id: 5005,
                quantity: q("135.5")
            },
        ]
    );
    let writes = sandbox.requests();
    let seen: Vec<(String, String, Option<Value>, u16)> = writes
        .iter()
        .map(|r| (r.method.clone(), r.path.clone(), r.body.clone(), r.status))
        .collect();
    assert_eq!(
        seen,
        [
            (
                "PATCH".to_string(),
                api("finance/agreements/1001/additions/5001"),
                Some(json!([{"op": "replace", "path": "quantity", "value": 4}])),
                200
            ),
            (
                "PATCH".to_string(),
                api("finance/agreements/1003/additions/5005"),
                Some(json!([{"op": "replace", "path": "quantity", "value": 135.5}])),
                200
            ),
        ]
    );
    assert_eq!(
        writes[0].body_text.as_deref(),
        Some(r#"[{"op":"replace","path":"quantity","value":4}]"#)
    );
    for r in &writes {
        assert_authenticated(r, &login);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert!(r.query.is_empty());
    }
    assert_eq!(sandbox.addition(5001).unwrap().quantity, 4.0);
    assert_eq!(sandbox.addition(5005).unwrap().quantity, 135.5);
    assert_eq!(sandbox.addition(5003).unwrap().quantity, 2.0);

    let again = plan_of(
        &mappings,
        &usage,
        &client.snapshot(&mappings).await.unwrap(),
        UpdatePolicy::InPlace,
    );
    assert_eq!(again.summary().to_update, 0, "{again:#?}");
    assert_eq!(again.summary().in_sync, 3);
}

// ---------------------------------------------------------------------------------------------
// 2. Cancel and re-add

#[tokio::test]
async fn cancel_and_readd_ends_the_old_addition_and_adds_a_copy_once() {
    let mut seed = demo_seed();
    let old = seed.additions.iter_mut().find(|a| a.id == 5001).unwrap();
    // Non-default values, so a copy that drops them shows.
    old.taxable_flag = true;
    old.bill_customer = "NoCharge".into();
    old.invoice_description = Some("Desktop backup, per machine".into());
    let sandbox = Sandbox::start(seed, Faults::none()).await.unwrap();
    let client = client(&sandbox);
    let before = sandbox.addition(5001).unwrap();

    let change = bobs_change(UpdatePolicy::CancelAndReadd, "3", "4");
    let applied = client.apply(&change).await.unwrap();
    let new_id = applied.line_id();
    assert_eq!(
        applied,
        AppliedChange::CancelledAndReadded {
            cancelled_line_id: 5001,
            new_line_id: new_id,
            quantity: q("4"),
            effective: jiff::civil::date(2026, 12, 1),
            resumed: false,
        }
    );
    let requests: Vec<(String, String, u16)> = sandbox
        .requests()
        .iter()
        .map(|r| (r.method.clone(), r.path.clone(), r.status))
        .collect();
    assert_eq!(
        requests,
        [
            ("GET".into(), "/login/companyinfo/computech".into(), 200),
            (
                "GET".into(),
                api("finance/agreements/1001/additions/5001"),
                200
            ),
            (
                "PATCH".into(),
                api("finance/agreements/1001/additions/5001"),
                200
            ),
            ("POST".into(), api("finance/agreements/1001/additions"), 201),
        ]
    );
    let recorded = sandbox.requests();
    assert_eq!(
        recorded[2].body,
        Some(json!([{"op": "replace", "path": "cancelledDate", "value": "2026-11-30T00:00:00Z"}]))
    );

    let old = sandbox.addition(5001).unwrap();
    // The old line's last day is the day before the copy's first: never both billed one day.
    assert_eq!(old.cancelled_date.as_deref(), Some("2026-11-30T00:00:00Z"));
    assert_eq!(old.quantity, 3.0);
    let new = sandbox.addition(new_id as i64).unwrap();
    assert_eq!(new.agreement, 1001);
    assert_eq!(new.product.id, before.product.id);
    assert_eq!(new.product.identifier, "SP-DESKTOP");
    assert_eq!(new.quantity, 4.0);
    assert_eq!(new.unit_price, before.unit_price);
    assert_eq!(new.unit_cost, before.unit_cost);
    assert_eq!(new.bill_customer, "NoCharge");
    assert!(new.taxable_flag);
    assert_eq!(
        new.invoice_description.as_deref(),
        Some("Desktop backup, per machine")
    );
    assert_eq!(new.effective_date.as_deref(), Some("2026-12-01T00:00:00Z"));
    assert_eq!(new.cancelled_date, None);

    // The same change again (a rerun after an interruption) finds the copy and adds nothing.
    let count = sandbox.additions().len();
    sandbox.clear_requests();
    let rerun = client.apply(&change).await.unwrap();
    assert_eq!(
        rerun,
        AppliedChange::CancelledAndReadded {
            cancelled_line_id: 5001,
            new_line_id: new_id,
            quantity: q("4"),
            effective: jiff::civil::date(2026, 12, 1),
            resumed: true,
        }
    );
    assert_eq!(sandbox.additions().len(), count);
    assert!(
        sandbox
            .requests()
            .iter()
            .all(|r| r.method == "GET" && r.status == 200),
        "{:#?}",
        sandbox.requests()
    );

    // Planning again sees one active desktop line on 1001: the new one, in sync.
    let mappings = story_mappings();
    let snapshot = client.snapshot(&mappings).await.unwrap();
    let active: Vec<(u64, Quantity)> = snapshot
        .lines
        .iter()
        .filter(|l| l.contract_id == 1001 && l.status == RecordStatus::Active)
        .map(|l| (l.id, l.quantity))
        .collect();
    assert_eq!(active, [(new_id, q("4"))]);
    let again = plan_of(
        &mappings,
        &story_usage(),
        &snapshot,
        UpdatePolicy::CancelAndReadd,
    );
    let bob = &again.lines[1];
    assert_eq!(bob.mapping, "bobs-dentistry/shadowprotect-desktop");
    assert_eq!(bob.action, Action::InSync);
    assert_eq!(bob.target.line_id, Some(new_id));
}

// ---------------------------------------------------------------------------------------------
// 3. Paging

#[tokio::test]
async fn a_long_additions_listing_is_followed_through_link_headers() {
    let mut seed = Seed {
        login: demo_seed().login,
        codebase: "v4_6_release/".into(),
        companies: vec![SeedCompany {
            id: 700,
            identifier: "BigCo".into(),
            name: "Big Co".into(),
            status: "Active".into(),
            deleted_flag: false,
        }],
        agreements: vec![SeedAgreement {
            id: 2001,
            name: "Everything".into(),
            company: 700,
            agreement_type: "Managed Backup".into(),
            agreement_status: "Active".into(),
            ..SeedAgreement::default()
        }],
        ..Seed::default()
    };
    for i in 1..=2345i64 {
        seed.additions.push(SeedAddition {
            id: 100_000 + i,
            agreement: 2001,
            product: SeedProductRef {
                id: 10_000 + i,
                identifier: format!("P-{i:04}"),
                description: None,
            },
            quantity: i as f64,
            bill_customer: "Billable".into(),
            ..SeedAddition::default()
        });
    }
    let sandbox = Sandbox::start(seed, Faults::none()).await.unwrap();
    let mappings = vec![mapping(json!({
        "account": "Big Co", "license_type": "Last product",
        "company": "BigCo", "agreement": 2001, "addition": "P-2345"
    }))];
    let snapshot = client(&sandbox).snapshot(&mappings).await.unwrap();
    assert_eq!(snapshot.lines.len(), 2345);

    let pages: Vec<(Vec<(String, String)>, usize)> = sandbox
        .requests()
        .iter()
        .filter(|r| r.path == api("finance/agreements/2001/additions"))
        .map(|r| (r.query.clone(), r.status as usize))
        .collect();
    let page = |extra: Option<&str>| {
        let mut query = vec![("pageSize".to_string(), "1000".to_string())];
        if let Some(p) = extra {
            query.push(("page".into(), p.into()));
        }
        (query, 200)
    };
    assert_eq!(pages, [page(None), page(Some("2")), page(Some("3"))]);
    assert_eq!(sandbox.requests().len(), 6);

    let plan = plan_of(
        &mappings,
        &usage(&[("Big Co", "Last product", "2346", UnitKind::Count)]),
        &snapshot,
        UpdatePolicy::InPlace,
    );
    assert_eq!(plan.lines[0].target.line_id, Some(102_345));
    assert_eq!(
        plan.lines[0].action,
        Action::Update {
            from: q("2345"),
            to: q("2346")
        }
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Faults

#[tokio::test]
async fn rate_limits_are_waited_out() {
    let sandbox = Sandbox::start(demo_seed(), Faults::none().rate_limit(2, 1))
        .await
        .unwrap();
    let started = Instant::now();
    let snapshot = client(&sandbox).snapshot(&story_mappings()).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(snapshot.lines.len(), 5);
    // Discovery is the first request: it meets both 429s, one after the other.
    assert!(elapsed >= Duration::from_secs(2), "{elapsed:?}");
    let requests = sandbox.requests();
    let first: Vec<(String, u16)> = requests[..3]
        .iter()
        .map(|r| (r.path.clone(), r.status))
        .collect();
    assert_eq!(
        first,
        [
            ("/login/companyinfo/computech".to_string(), 429),
            ("/login/companyinfo/computech".to_string(), 429),
            ("/login/companyinfo/computech".to_string(), 200),
        ]
    );
    assert_eq!(requests.len(), 8);
    assert!(requests[3..].iter().all(|r| r.status == 200));

    // Once the codebase is known, the two concurrent lookups each meet one 429 and retry once.
    let client = client(&sandbox);
    client.codebase().await.unwrap();
    sandbox.clear_requests();
    sandbox.set_faults(Faults::none().rate_limit(2, 1));
    let started = Instant::now();
    client.snapshot(&story_mappings()).await.unwrap();
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    let mut statuses: Vec<(String, u16)> = sandbox
        .requests()
        .iter()
        .map(|r| (r.path.clone(), r.status))
        .collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [
            (api("company/companies"), 200),
            (api("company/companies"), 429),
            (api("finance/agreements"), 200),
            (api("finance/agreements"), 429),
            (api("finance/agreements/1001/additions"), 200),
            (api("finance/agreements/1002/additions"), 200),
            (api("finance/agreements/1003/additions"), 200),
        ]
    );
}

#[tokio::test]
async fn server_errors_on_patch_are_retried_up_to_the_limit() {
    let sandbox = demo().await;
    let client = client(&sandbox);
    client.codebase().await.unwrap();

    sandbox.set_faults(Faults::none().server_errors(3, 503).only_method("PATCH"));
    sandbox.clear_requests();
    let applied = client
        .apply(&bobs_change(UpdatePolicy::InPlace, "3", "4"))
        .await
        .unwrap();
    assert_eq!(applied.line_id(), 5001);
    let statuses: Vec<(String, u16)> = sandbox
        .requests()
        .iter()
        .map(|r| (r.method.clone(), r.status))
        .collect();
    assert_eq!(
        statuses,
        [
            ("PATCH".to_string(), 503),
            ("PATCH".to_string(), 503),
            ("PATCH".to_string(), 503),
            ("PATCH".to_string(), 200),
        ]
    );
    assert_eq!(sandbox.addition(5001).unwrap().quantity, 4.0);

    sandbox.set_faults(Faults::none().server_errors(5, 503).only_method("PATCH"));
    sandbox.clear_requests();
    let err = client
        .apply(&bobs_change(UpdatePolicy::InPlace, "4", "5"))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        PsaError::Server {
            status: 503,
            attempts: 4,
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        format!(
            "PATCH {}: server error (HTTP 503) after 4 attempt(s): An unexpected error occurred (injected by the sandbox)",
            api("finance/agreements/1001/additions/5001")
        )
    );
    assert_eq!(sandbox.requests().len(), 4);
    assert_eq!(sandbox.addition(5001).unwrap().quantity, 4.0);
}

#[tokio::test]
async fn dropped_connections_are_retried() {
    let sandbox = Sandbox::start(demo_seed(), Faults::none().drop_connections(2))
        .await
        .unwrap();
    let snapshot = client(&sandbox).snapshot(&story_mappings()).await.unwrap();
    assert_eq!(snapshot.lines.len(), 5);
    assert_eq!(sandbox.faults().dropped_connections, 0);
    // The dropped connections never got as far as a request; the log holds the usual six.
    let requests = sandbox.requests();
    assert_eq!(requests.len(), 6);
    assert!(requests.iter().all(|r| r.status == 200));
}

#[tokio::test]
async fn latency_does_not_break_anything() {
    let sandbox = Sandbox::start(
        demo_seed(),
        Faults::none().with_latency(Duration::from_millis(20)),
    )
    .await
    .unwrap();
    let client = client(&sandbox);
    let mappings = story_mappings();
    let usage = story_usage();
    let first = plan_of(
        &mappings,
        &usage,
        &client.snapshot(&mappings).await.unwrap(),
        UpdatePolicy::InPlace,
    );
    for change in changes(&first, jiff::civil::date(2026, 12, 1)) {
        client.apply(&change).await.unwrap();
    }
    let again = plan_of(
        &mappings,
        &usage,
        &client.snapshot(&mappings).await.unwrap(),
        UpdatePolicy::InPlace,
    );
    assert_eq!(again.summary().in_sync, 3);
    assert!(sandbox.requests().iter().all(|r| r.status < 300));
}

// ---------------------------------------------------------------------------------------------
// 5. Auth and bad targets

#[tokio::test]
async fn a_wrong_private_key_is_reported_as_rejected_credentials() {
    let sandbox = demo().await;
    let login = sandbox.login();
    let client = client_with(
        &sandbox,
        Credentials::new(
            login.public_key.clone(),
            "not-the-key",
            login.client_id.clone().unwrap(),
        ),
    );
    let err = client.reread_line(1001, 5001).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "GET {}: credentials rejected: check UNITSYNC_CW_PUBLIC_KEY/PRIVATE_KEY and the login company (\"computech\") — ConnectWise said: Authentication failed: the company, public key or private key is wrong",
            api("finance/agreements/1001/additions/5001")
        )
    );
    let err = client.snapshot(&story_mappings()).await.unwrap_err();
    assert!(matches!(err, PsaError::Unauthorized { .. }), "{err:?}");
    // A 401 is not retried.
    assert!(
        sandbox
            .requests()
            .iter()
            .filter(|r| r.status == 401)
            .count()
            <= 3
    );
}

#[tokio::test]
async fn a_missing_or_unknown_client_id_is_rejected() {
    let sandbox = demo().await;
    let login = sandbox.login();
    let path = api("finance/agreements/1001/additions/5001");

    let missing = client_with(
        &sandbox,
        Credentials::new(login.public_key.clone(), login.private_key.clone(), ""),
    );
    let err = missing.reread_line(1001, 5001).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "GET {path}: credentials rejected: check UNITSYNC_CW_PUBLIC_KEY/PRIVATE_KEY and the login company (\"computech\") — ConnectWise said: A clientId header is required; register one at https://developer.connectwise.com/ClientID"
        )
    );

    let unknown = client_with(
        &sandbox,
        Credentials::new(
            login.public_key.clone(),
            login.private_key.clone(),
            "00000000-0000-0000-0000-000000000000",
        ),
    );
    let err = unknown.reread_line(1001, 5001).await.unwrap_err();
    // The server quotes the client id back; the client redacts it.
    assert_eq!(
        err.to_string(),
        format!(
            "GET {path}: credentials rejected: check UNITSYNC_CW_PUBLIC_KEY/PRIVATE_KEY and the login company (\"computech\") — ConnectWise said: clientId [redacted] is not registered"
        )
    );
}

#[tokio::test]
async fn a_read_only_member_cannot_patch() {
    let sandbox = demo().await;
    sandbox.set_login(SeedLogin {
        read_only: true,
        ..sandbox.login()
    });
    let client = client(&sandbox);
    // Reading still works.
    assert_eq!(
        client.reread_line(1001, 5001).await.unwrap().quantity,
        q("3")
    );
    sandbox.clear_requests();
    let err = client
        .apply(&bobs_change(UpdatePolicy::InPlace, "3", "4"))
        .await
        .unwrap_err();
    assert!(matches!(err, PsaError::Forbidden { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "PATCH {}: the API member lacks permission to change addition 5001 on agreement 1001; give its security role Finance > Agreements (Inquire, Edit, Add) and Companies > Company Maintenance (Inquire) — ConnectWise said: You do not have security permission to edit finance/agreements/1001/additions/5001. Ask your administrator to update the API member's security role.",
            api("finance/agreements/1001/additions/5001")
        )
    );
    // Not retried, nothing changed.
    assert_eq!(sandbox.requests().len(), 1);
    assert_eq!(sandbox.requests()[0].status, 403);
    assert_eq!(sandbox.addition(5001).unwrap().quantity, 3.0);
}

#[tokio::test]
async fn unknown_and_cancelled_agreements_are_plan_errors() {
    let sandbox = demo().await;
    let mappings = vec![
        mapping(json!({
            "account": "Bob's Dentistry", "license_type": "ShadowProtect Desktop",
            "company": "BobsDentistry", "agreement": 9999, "addition": "SP-DESKTOP"
        })),
        mapping(json!({
            "account": "Bob's Dentistry", "license_type": "ShadowProtect Old",
            "company": "BobsDentistry", "agreement": 1004, "addition": "SP-DESKTOP"
        })),
    ];
    let snapshot = client(&sandbox).snapshot(&mappings).await.unwrap();
    let conditions: Vec<Option<String>> = sandbox
        .requests()
        .iter()
        .filter(|r| r.path == api("finance/agreements"))
        .map(|r| r.query_param("conditions").map(str::to_string))
        .collect();
    assert_eq!(conditions, [Some("id in (1004,9999)".to_string())]);
    assert_eq!(
        snapshot.contracts.iter().map(|c| c.id).collect::<Vec<_>>(),
        [1004]
    );
    assert_eq!(snapshot.contracts[0].status, RecordStatus::Cancelled);

    let plan = plan_of(
        &mappings,
        &usage(&[
            (
                "Bob's Dentistry",
                "ShadowProtect Desktop",
                "4",
                UnitKind::Count,
            ),
            ("Bob's Dentistry", "ShadowProtect Old", "1", UnitKind::Count),
        ]),
        &snapshot,
        UpdatePolicy::InPlace,
    );
    let actions: Vec<(&str, &Action)> = plan
        .lines
        .iter()
        .map(|l| (l.mapping.as_str(), &l.action))
        .collect();
    assert_eq!(
        actions,
        [
            (
                "bobs-dentistry/shadowprotect-desktop",
                &Action::Error {
                    reason: LineError::NotFound {
                        what: "agreement id 9999 of BobsDentistry".into()
                    }
                }
            ),
            (
                "bobs-dentistry/shadowprotect-old",
                &Action::Error {
                    reason: LineError::NotActive {
                        what: "agreement 1004 (Managed Backup 2023)".into(),
                        status: "cancelled".into()
                    }
                }
            ),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Secrets

const SECRET_PUBLIC: &str = "PUBKEY-S3CR3T-1234";
const SECRET_PRIVATE: &str = "PRIVKEY-S3CR3T-5678";
const SECRET_CLIENT_ID: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
const WRONG_PRIVATE: &str = "PRIVKEY-S3CR3T-WRONG";
const WRONG_CLIENT_ID: &str = "CLIENTID-S3CR3T-9999";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn secrets_never_appear_in_errors_logs_or_debug_output() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // The test runtime is single-threaded, so every task logs to this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut seed = demo_seed();
    seed.login.public_key = SECRET_PUBLIC.into();
    seed.login.private_key = SECRET_PRIVATE.into();
    seed.login.client_id = Some(SECRET_CLIENT_ID.into());
    let sandbox = Sandbox::start(seed, Faults::none()).await.unwrap();
    let mappings = story_mappings();
    let credentials = Credentials::new(SECRET_PUBLIC, SECRET_PRIVATE, SECRET_CLIENT_ID);
    let good = client_with(&sandbox, credentials.clone());
    let mut texts = vec![format!("{credentials:?}"), format!("{good:?}")];

    // A full cycle: snapshot, plan, apply (in place and cancel-and-readd), doctor.
    let snapshot = good.snapshot(&mappings).await.unwrap();
    let plan = plan_of(&mappings, &story_usage(), &snapshot, UpdatePolicy::InPlace);
    let todo = changes(&plan, jiff::civil::date(2026, 12, 1));
    assert_eq!(todo.len(), 2);
    good.apply(&todo[0]).await.unwrap();
    good.apply(&LineChange {
        policy: UpdatePolicy::CancelAndReadd,
        ..todo[1].clone()
    })
    .await
    .unwrap();
    texts.extend(
        good.check_access(&mappings, true)
            .await
            .iter()
            .map(|c| format!("{c:?} {}", c.detail)),
    );

    // And every kind of failure.
    let mut errors = Vec::new();
    let wrong_key = client_with(
        &sandbox,
        Credentials::new(SECRET_PUBLIC, WRONG_PRIVATE, SECRET_CLIENT_ID),
    );
    errors.push(wrong_key.snapshot(&mappings).await.unwrap_err());
    texts.extend(
        wrong_key
            .check_access(&mappings, true)
            .await
            .iter()
            .map(|c| format!("{c:?}")),
    );
    let wrong_client = client_with(
        &sandbox,
        Credentials::new(SECRET_PUBLIC, SECRET_PRIVATE, WRONG_CLIENT_ID),
    );
    errors.push(wrong_client.reread_line(1001, 5001).await.unwrap_err());
    errors.push(good.reread_line(1001, 424_242).await.unwrap_err());
    sandbox.set_faults(Faults::none().server_errors(4, 500));
    errors.push(good.reread_line(1001, 5001).await.unwrap_err());
    sandbox.set_faults(Faults::none().rate_limit(4, 0));
    errors.push(good.reread_line(1001, 5001).await.unwrap_err());
    sandbox.set_faults(Faults::none());
    sandbox.set_login(SeedLogin {
        read_only: true,
        ..sandbox.login()
    });
    errors.push(
        good.apply(&bobs_change(UpdatePolicy::InPlace, "4", "5"))
            .await
            .unwrap_err(),
    );
    texts.extend(
        good.check_access(&mappings, true)
            .await
            .iter()
            .map(|c| format!("{c:?}")),
    );
    let kinds: Vec<&str> = errors
        .iter()
        .map(|e| match e {
            PsaError::Unauthorized { .. } => "unauthorized",
            PsaError::NotFound { .. } => "not-found",
            PsaError::Server { .. } => "server",
            PsaError::RateLimited { .. } => "rate-limited",
            PsaError::Forbidden { .. } => "forbidden",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "unauthorized",
            "unauthorized",
            "not-found",
            "server",
            "rate-limited",
            "forbidden"
        ]
    );
    for e in &errors {
        texts.push(e.to_string());
        texts.push(format!("{e:?}"));
    }
    // What the PSA now holds about the writes (ConnectWise's `_info.updatedBy` names the API
    // member, never its key), as any later read would see it.
    texts.push(format!("{:?}", sandbox.additions()));
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(!logs.is_empty(), "the subscriber captured nothing");
    texts.push(logs);

    let basic = |private: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .encode(format!("computech+{SECRET_PUBLIC}:{private}"))
    };
    let secrets = [
        SECRET_PUBLIC.to_string(),
        SECRET_PRIVATE.to_string(),
        SECRET_CLIENT_ID.to_string(),
        WRONG_PRIVATE.to_string(),
        WRONG_CLIENT_ID.to_string(),
        basic(SECRET_PRIVATE),
        basic(WRONG_PRIVATE),
    ];
    for text in &texts {
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "{secret} in: {text}");
        }
        assert!(!text.contains("S3CR3T"), "{text}");
    }
}

// ---------------------------------------------------------------------------------------------
// 7. doctor

#[tokio::test]
async fn doctor_passes_every_check_for_the_demo_login() {
    let sandbox = demo().await;
    let checks = client(&sandbox).check_access(&story_mappings(), true).await;
    assert_eq!(
        outcomes(&checks),
        [
            (CheckKind::Host, CheckOutcome::Pass),
            (CheckKind::Credentials, CheckOutcome::Pass),
            (CheckKind::ClientId, CheckOutcome::Pass),
            (CheckKind::ReadContracts, CheckOutcome::Pass),
            (CheckKind::ReadLines, CheckOutcome::Pass),
            (CheckKind::UpdateLines, CheckOutcome::Pass),
        ],
        "{checks:#?}"
    );
    assert_eq!(checks[3].detail, "read agreement 1001 (Managed Backup)");
    assert_eq!(checks[4].detail, "read 2 addition(s) of agreement 1001");
    assert_eq!(
        checks[5].detail,
        "wrote addition 5001's quantity 3 back unchanged"
    );
    // The probe wrote the mapped addition's own quantity back.
    let patches: Vec<(String, Option<Value>)> = sandbox
        .requests()
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| (r.method.clone() + " " + &r.path, r.body.clone()))
        .collect();
    assert_eq!(
        patches,
        [(
            format!("PATCH {}", api("finance/agreements/1001/additions/5001")),
            Some(json!([{"op": "replace", "path": "quantity", "value": 3}]))
        )]
    );
    assert_eq!(sandbox.addition(5001).unwrap().quantity, 3.0);
}

#[tokio::test]
async fn doctor_names_the_failing_check() {
    let sandbox = demo().await;
    sandbox.set_login(SeedLogin {
        read_only: true,
        ..sandbox.login()
    });
    let checks = client(&sandbox).check_access(&story_mappings(), true).await;
    assert_eq!(
        outcomes(&checks),
        [
            (CheckKind::Host, CheckOutcome::Pass),
            (CheckKind::Credentials, CheckOutcome::Pass),
            (CheckKind::ClientId, CheckOutcome::Pass),
            (CheckKind::ReadContracts, CheckOutcome::Pass),
            (CheckKind::ReadLines, CheckOutcome::Pass),
            (CheckKind::UpdateLines, CheckOutcome::Fail),
        ],
        "{checks:#?}"
    );
    assert!(
        checks[5].detail.contains("lacks permission"),
        "{}",
        checks[5].detail
    );
    assert_eq!(sandbox.addition(5001).unwrap().quantity, 3.0);

    let login = SeedLogin {
        read_only: false,
        ..sandbox.login()
    };
    sandbox.set_login(login.clone());
    let wrong = client_with(
        &sandbox,
        Credentials::new(
            login.public_key.clone(),
            "wrong",
            login.client_id.clone().unwrap(),
        ),
    );
    let checks = wrong.check_access(&story_mappings(), true).await;
    assert_eq!(
        outcomes(&checks),
        [
            (CheckKind::Host, CheckOutcome::Pass),
            (CheckKind::Credentials, CheckOutcome::Fail),
            (CheckKind::ClientId, CheckOutcome::Pass),
            (CheckKind::ReadContracts, CheckOutcome::Skipped),
            (CheckKind::ReadLines, CheckOutcome::Skipped),
            (CheckKind::UpdateLines, CheckOutcome::Skipped),
        ],
        "{checks:#?}"
    );
    assert!(
        checks[1].detail.contains("credentials rejected"),
        "{}",
        checks[1].detail
    );
}

// ---------------------------------------------------------------------------------------------
// More of the API surface: lookups by name, paging with conditions, POST failures, codebases

#[tokio::test]
async fn names_resolve_through_the_sandbox_and_only_live_namesakes_are_ambiguous() {
    // The demo's company 298 is a deleted (recycle bin) namesake of Bob's Dentistry (250).
    let sandbox = demo().await;
    let mappings = vec![
        mapping(json!({
            "account": "Angry Fox Co", "license_type": "ShadowProtect Server",
            "company": {"name": "Angry Fox Co"}, "agreement": {"name": "Managed Backup"},
            "addition": {"name": "ShadowProtect Server"}
        })),
        mapping(json!({
            "account": "Bob's Dentistry", "license_type": "ShadowProtect Desktop",
            "company": {"name": "Bob's Dentistry"}, "agreement": 1001, "addition": "SP-DESKTOP"
        })),
    ];
    let snapshot = client(&sandbox).snapshot(&mappings).await.unwrap();
    let mut lookups: Vec<Summary> = sandbox.requests()[1..].iter().map(summary).collect();
    lookups.sort();
    assert_eq!(
        lookups,
        [
            get(
                &api("company/companies"),
                Some(r#"name = "Angry Fox Co" and deletedFlag = false"#),
                Some("1000")
            ),
            get(
                &api("company/companies"),
                Some(r#"name = "Bob's Dentistry" and deletedFlag = false"#),
                Some("1000")
            ),
            get(
                &api("finance/agreements"),
                Some("company/id in (251)"),
                Some("1000")
            ),
            get(
                &api("finance/agreements"),
                Some("id in (1001)"),
                Some("1000")
            ),
            get(
                &api("finance/agreements/1001/additions"),
                None,
                Some("1000")
            ),
            get(
                &api("finance/agreements/1002/additions"),
                None,
                Some("1000")
            ),
        ]
    );
    let plan = plan_of(&mappings, &story_usage(), &snapshot, UpdatePolicy::InPlace);
    assert_eq!(plan.lines[0].mapping, "angry-fox-co/shadowprotect-server");
    assert_eq!(plan.lines[0].action, Action::InSync);
    assert_eq!(plan.lines[0].target.line_id, Some(5003));
    assert_eq!(
        plan.lines[1].mapping,
        "bobs-dentistry/shadowprotect-desktop"
    );
    assert_eq!(plan.lines[1].target.company_id, Some(250));
    assert_eq!(plan.lines[1].target.line_id, Some(5001));
    // The company list behind `accounts --suggest` leaves it out too.
    assert!(
        client(&sandbox)
            .list_companies()
            .await
            .unwrap()
            .iter()
            .all(|c| c.id != 298)
    );

    // A second live company of that name is ambiguous — and the deleted one is not named.
    let mut seed = demo_seed();
    seed.companies.push(SeedCompany {
        id: 299,
        identifier: "BobsDentistryNew".into(),
        name: "Bob's Dentistry".into(),
        status: "Active".into(),
        deleted_flag: false,
    });
    let sandbox = Sandbox::start(seed, Faults::none()).await.unwrap();
    let snapshot = client(&sandbox).snapshot(&mappings).await.unwrap();
    let plan = plan_of(&mappings, &story_usage(), &snapshot, UpdatePolicy::InPlace);
    assert_eq!(
        plan.lines[1].action,
        Action::Error {
            reason: LineError::Ambiguous {
                what: "company name \"Bob's Dentistry\"".into(),
                candidates: vec![
                    "BobsDentistry (id 250)".into(),
                    "BobsDentistryNew (id 299)".into()
                ],
            }
        }
    );
}

#[tokio::test]
async fn a_company_in_the_recycle_bin_is_not_found_by_identifier() {
    let sandbox = demo().await;
    let mappings = vec![mapping(json!({
        "account": "Bob's Dentistry", "license_type": "ShadowProtect Desktop",
        "company": "BobsDentistryOld", "agreement": 1001, "addition": "SP-DESKTOP"
    }))];
    let snapshot = client(&sandbox).snapshot(&mappings).await.unwrap();
    assert!(snapshot.companies.is_empty(), "{:?}", snapshot.companies);
    let lookups: Vec<Summary> = sandbox
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("company/companies"))
        .map(summary)
        .collect();
    assert_eq!(
        lookups,
        [get(
            &api("company/companies"),
            Some(r#"identifier in ("BobsDentistryOld") and deletedFlag = false"#),
            Some("1000")
        )]
    );
    let plan = plan_of(&mappings, &story_usage(), &snapshot, UpdatePolicy::InPlace);
    assert!(
        matches!(
            &plan.lines[0].action,
            Action::Error { reason: LineError::NotFound { what } } if what.contains("BobsDentistryOld")
        ),
        "{:?}",
        plan.lines[0].action
    );
}

#[tokio::test]
async fn an_agreement_named_by_name_skips_a_cancelled_namesake() {
    // Bob's renewal (1101) kept the name of the agreement it replaced (1001, now cancelled).
    let mut seed = demo_seed();
    let old = seed.agreements.iter_mut().find(|a| a.id == 1001).unwrap();
    old.agreement_status = "Cancelled".into();
    old.cancelled_flag = true;
    let renewal = SeedAgreement {
        id: 1101,
        agreement_status: "Active".into(),
        cancelled_flag: false,
        date_cancelled: None,
        ..old.clone()
    };
    let name = renewal.name.clone();
    seed.agreements.push(renewal);
    let copy = SeedAddition {
        id: 5101,
        agreement: 1101,
        quantity: 3.0,
        ..seed
            .additions
            .iter()
            .find(|a| a.id == 5001)
            .unwrap()
            .clone()
    };
    seed.additions.push(copy);
    let sandbox = Sandbox::start(seed, Faults::none()).await.unwrap();
    let mappings = vec![mapping(json!({
        "account": "Bob's Dentistry", "license_type": "ShadowProtect Desktop",
        "company": "BobsDentistry", "agreement": {"name": name}, "addition": "SP-DESKTOP"
    }))];
    let snapshot = client(&sandbox).snapshot(&mappings).await.unwrap();
    let plan = plan_of(&mappings, &story_usage(), &snapshot, UpdatePolicy::InPlace);
    assert_eq!(plan.lines[0].target.contract_id, Some(1101), "{plan:#?}");
    assert_eq!(plan.lines[0].target.line_id, Some(5101));
    assert_eq!(
        plan.lines[0].action,
        Action::Update {
            from: q("3"),
            to: q("4")
        }
    );
}

#[tokio::test]
async fn paging_links_keep_the_conditions() {
    let mut seed = demo_seed();
    for i in 1..=1500i64 {
        seed.agreements.push(SeedAgreement {
            id: 20_000 + i,
            name: format!("Agreement {i:04}"),
            company: 251,
            agreement_type: "Managed Backup".into(),
            agreement_status: "Active".into(),
            ..SeedAgreement::default()
        });
    }
    seed.additions.push(SeedAddition {
        id: 8000,
        agreement: 21_500,
        product: SeedProductRef {
            id: 302,
            identifier: "SP-SERVER".into(),
            description: None,
        },
        quantity: 7.0,
        bill_customer: "Billable".into(),
        ..SeedAddition::default()
    });
    let sandbox = Sandbox::start(seed, Faults::none()).await.unwrap();
    let mappings = vec![mapping(json!({
        "account": "Angry Fox Co", "license_type": "Last agreement",
        "company": "AngryFox", "agreement": {"name": "Agreement 1500"}, "addition": "SP-SERVER"
    }))];
    let snapshot = client(&sandbox).snapshot(&mappings).await.unwrap();
    let pages: Vec<Vec<(String, String)>> = sandbox
        .requests()
        .iter()
        .filter(|r| r.path == api("finance/agreements"))
        .map(|r| r.query.clone())
        .collect();
    let page = |n: Option<&str>| {
        let mut query = vec![
            ("conditions".to_string(), "company/id in (251)".to_string()),
            ("pageSize".to_string(), "1000".to_string()),
        ];
        if let Some(n) = n {
            query.push(("page".into(), n.into()));
        }
        query
    };
    assert_eq!(pages, [page(None), page(Some("2"))]);
    let plan = plan_of(
        &mappings,
        &usage(&[("Angry Fox Co", "Last agreement", "7", UnitKind::Count)]),
        &snapshot,
        UpdatePolicy::InPlace,
    );
    assert_eq!(plan.lines[0].action, Action::InSync, "{plan:#?}");
    assert_eq!(plan.lines[0].target.line_id, Some(8000));
}

#[tokio::test]
async fn a_readd_post_that_fails_is_checked_and_repeated_but_never_doubled() {
    let sandbox = demo().await;
    let client = client(&sandbox);
    client.codebase().await.unwrap();
    let count = sandbox.additions().len();
    sandbox.set_faults(Faults::none().server_errors(2, 503).only_method("POST"));
    sandbox.clear_requests();
    let applied = client
        .apply(&bobs_change(UpdatePolicy::CancelAndReadd, "3", "4"))
        .await
        .unwrap();
    assert_eq!(sandbox.additions().len(), count + 1);
    let seen: Vec<(String, String, u16)> = sandbox
        .requests()
        .iter()
        .map(|r| (r.method.clone(), r.path.clone(), r.status))
        .collect();
    let listing = (
        "GET".to_string(),
        api("finance/agreements/1001/additions"),
        200,
    );
    let post = |status| {
        (
            "POST".to_string(),
            api("finance/agreements/1001/additions"),
            status,
        )
    };
    assert_eq!(
        seen,
        [
            (
                "GET".into(),
                api("finance/agreements/1001/additions/5001"),
                200
            ),
            (
                "PATCH".into(),
                api("finance/agreements/1001/additions/5001"),
                200
            ),
            post(503),
            listing.clone(),
            post(503),
            listing,
            post(201),
        ]
    );
    let new = sandbox.addition(applied.line_id() as i64).unwrap();
    assert_eq!((new.product.id, new.quantity), (301, 4.0));
}

#[tokio::test]
async fn cancel_and_readd_keeps_the_included_units() {
    let mut seed = demo_seed();
    let old = seed.additions.iter_mut().find(|a| a.id == 5001).unwrap();
    old.less_included = 1.0;
    let sandbox = Sandbox::start(seed, Faults::none()).await.unwrap();
    let applied = client(&sandbox)
        .apply(&bobs_change(UpdatePolicy::CancelAndReadd, "3", "4"))
        .await
        .unwrap();
    let new = sandbox.addition(applied.line_id() as i64).unwrap();
    assert_eq!(new.quantity, 4.0);
    // One unit is included in the agreement: the copy must not start billing it.
    assert_eq!(new.less_included, 1.0);
}

/// An addition as the sandbox's REST API answers it (its own JSON, not the client's reading).
async fn addition_json(sandbox: &SandboxHandle, agreement: u64, id: u64) -> Value {
    let login = sandbox.login();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}+{}:{}",
        login.company, login.public_key, login.private_key
    ));
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
        .get(format!(
            "{}finance/agreements/{agreement}/additions/{id}",
            sandbox.api_url()
        ))
        .header("Authorization", format!("Basic {basic}"))
        .header("clientId", login.client_id.clone().unwrap_or_default())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn cancel_and_readd_copies_every_settable_field_of_the_old_addition() {
    let mut seed = demo_seed();
    let old = seed.additions.iter_mut().find(|a| a.id == 5001).unwrap();
    // A value other than the default in every field a client may set.
    *old = SeedAddition {
        less_included: 1.0,
        unit_price: 12.75,
        unit_cost: 7.5,
        bill_customer: "DoNotBill".into(),
        taxable_flag: true,
        description: Some("ShadowProtect Desktop (per machine)".into()),
        invoice_description: Some("Desktop backup, per machine".into()),
        serial_number: Some("SPD-000123".into()),
        sequence_number: 3.0,
        uom: Some("Device".into()),
        purchase_item_flag: true,
        special_order_flag: true,
        prorate_current_period_flag: true,
        invoice_grouping: Some(SeedReference {
            id: 4,
            name: Some("Backup".into()),
        }),
        opportunity: Some(SeedReference {
            id: 77,
            name: Some("Bob's desktops".into()),
        }),
        custom_fields: vec![
            SeedCustomField {
                id: 11,
                caption: Some("Vendor SKU".into()),
                field_type: Some("Text".into()),
                entry_method: Some("EntryField".into()),
                number_of_decimals: Some(0),
                value: Some(json!("SP-D-1Y")),
            },
            SeedCustomField {
                id: 12,
                caption: Some("Auto-renew".into()),
                field_type: Some("Checkbox".into()),
                entry_method: Some("EntryField".into()),
                number_of_decimals: Some(0),
                value: Some(json!(true)),
            },
        ],
        ..old.clone()
    };
    let sandbox = Sandbox::start(seed, Faults::none()).await.unwrap();
    let before = addition_json(&sandbox, 1001, 5001).await;
    let applied = client(&sandbox)
        .apply(&bobs_change(UpdatePolicy::CancelAndReadd, "3", "4"))
        .await
        .unwrap();
    let after = addition_json(&sandbox, 1001, applied.line_id()).await;
    assert_eq!(after["quantity"], json!(4.0));
    assert_eq!(after["effectiveDate"], "2026-12-01T00:00:00Z");

    // Every field but the id, the dates, the quantity and what the server works out from them.
    let settable = |record: &Value| -> BTreeMap<String, Value> {
        let skip = [
            "id",
            "quantity",
            "effectiveDate",
            "cancelledDate",
            "_info",
            "billedQuantity",
            "extPrice",
            "extCost",
            "margin",
        ];
        record
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| !skip.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let (old_fields, new_fields) = (settable(&before), settable(&after));
    for key in [
        "serialNumber",
        "sequenceNumber",
        "uom",
        "invoiceGrouping",
        "opportunity",
        "customFields",
        "purchaseItemFlag",
        "specialOrderFlag",
        "prorateCurrentPeriodFlag",
        "lessIncluded",
    ] {
        assert!(old_fields.contains_key(key), "the sandbox shows no {key}");
    }
    assert_eq!(new_fields, old_fields);
}

#[tokio::test]
async fn another_codebase_is_discovered() {
    let mut seed = demo_seed();
    seed.codebase = "v2025_1/".into();
    let sandbox = Sandbox::start(seed, Faults::none()).await.unwrap();
    let client = client(&sandbox);
    assert_eq!(client.codebase().await.unwrap(), "v2025_1/");
    assert_eq!(
        client.reread_line(1001, 5001).await.unwrap().quantity,
        q("3")
    );
    assert_eq!(
        sandbox.requests().last().unwrap().path,
        "/v2025_1/apis/3.0/finance/agreements/1001/additions/5001"
    );
}

#[tokio::test]
async fn an_unknown_addition_is_not_found_after_one_rediscovery() {
    let sandbox = demo().await;
    let client = client(&sandbox);
    client.codebase().await.unwrap();
    sandbox.clear_requests();
    let err = client.reread_line(1001, 424_242).await.unwrap_err();
    let path = api("finance/agreements/1001/additions/424242");
    assert_eq!(
        err.to_string(),
        format!(
            "GET {path}: addition 424242 on agreement 1001 not found (HTTP 404); check the id in the mapping. If every request fails like this, check `site` and `company` in unitsync.yaml: ConnectWise answers 404 for a wrong host or codebase (used {}{API}/)",
            sandbox.base_url()
        )
    );
    let seen: Vec<(String, u16)> = sandbox
        .requests()
        .iter()
        .map(|r| (r.path.clone(), r.status))
        .collect();
    // The codebase is checked again (it can change on hosted ConnectWise); it did not, so the
    // request is not repeated.
    assert_eq!(
        seen,
        [(path, 404), ("/login/companyinfo/computech".into(), 200)]
    );
}

#[tokio::test]
async fn an_unknown_login_company_is_named_before_any_api_call() {
    let sandbox = demo().await;
    let client = ConnectWiseClient::with_retry_policy(
        &ConnectWiseSettings {
            company: "nosuchco".into(),
            ..settings(&sandbox)
        },
        login_credentials(&sandbox.login()),
        fast_retry(),
    )
    .unwrap();
    // companyinfo answers `null` for a company it does not know: that is the error, not a
    // reason to guess the usual codebase and fail later with a 401.
    let err = client.codebase().await.unwrap_err();
    assert!(matches!(err, PsaError::UnknownCompany { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("unknown company nosuchco: check psa.connectwise.company"),
        "{err}"
    );
    let err = client.reread_line(1001, 5001).await.unwrap_err();
    assert!(matches!(err, PsaError::UnknownCompany { .. }), "{err:?}");
    let checks = client.check_access(&story_mappings(), false).await;
    assert_eq!(checks[0].kind, CheckKind::Host);
    assert_eq!(checks[0].outcome, CheckOutcome::Fail);
    assert!(
        checks[0].detail.contains("unknown company nosuchco"),
        "{checks:?}"
    );
    let seen: Vec<(String, Option<String>, u16)> = sandbox
        .requests()
        .iter()
        .map(|r| (r.path.clone(), r.auth_user.clone(), r.status))
        .collect();
    // Nothing but companyinfo, and never with the keys.
    assert!(!seen.is_empty());
    assert!(
        seen.iter()
            .all(|s| *s == ("/login/companyinfo/nosuchco".into(), None, 200)),
        "{seen:?}"
    );
}

#[tokio::test]
async fn an_unreachable_host_fails_the_first_doctor_check() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let site = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = ConnectWiseClient::with_retry_policy(
        &ConnectWiseSettings {
            site,
            company: "computech".into(),
            api_version: None,
            update: UpdatePolicy::InPlace,
            effective: Default::default(),
            concurrency: None,
            timeout_seconds: None,
        },
        Credentials::new("p", "k", "5e4b6a4c-0d2c-4b8e-9a53-5a4b1c0ffee1"),
        fast_retry(),
    )
    .unwrap();
    let checks = client.check_access(&story_mappings(), true).await;
    assert_eq!(
        outcomes(&checks),
        [
            (CheckKind::Host, CheckOutcome::Fail),
            (CheckKind::Credentials, CheckOutcome::Skipped),
            (CheckKind::ClientId, CheckOutcome::Skipped),
            (CheckKind::ReadContracts, CheckOutcome::Skipped),
            (CheckKind::ReadLines, CheckOutcome::Skipped),
            (CheckKind::UpdateLines, CheckOutcome::Skipped),
        ]
    );
    assert!(
        checks[0]
            .detail
            .starts_with("GET /login/companyinfo/computech: could not reach 127.0.0.1:"),
        "{}",
        checks[0].detail
    );
    assert!(checks[0].detail.contains("after 4 attempt(s)"));
}

#[tokio::test]
async fn cancel_and_readd_refuses_stale_and_foreign_lines_and_resumes_its_own() {
    let sandbox = demo().await;
    let client = client(&sandbox);
    let change = bobs_change(UpdatePolicy::CancelAndReadd, "3", "4");

    // Someone set 5 by hand since the plan.
    let original = sandbox.addition(5001).unwrap();
    sandbox.put_addition(SeedAddition {
        quantity: 5.0,
        ..original.clone()
    });
    let err = client.apply(&change).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "addition 5001 on agreement 1001 holds 5, not 3 as planned; someone changed it meanwhile — run plan again"
    );
    assert!(sandbox.requests().iter().all(|r| r.method == "GET"));

    // Someone cancelled it on another date.
    sandbox.put_addition(SeedAddition {
        cancelled_date: Some("2026-11-15T00:00:00Z".into()),
        ..original.clone()
    });
    let err = client.apply(&change).await.unwrap_err();
    assert!(matches!(err, PsaError::Conflict { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("already cancelled as of 2026-11-15T00:00:00Z"),
        "{err}"
    );

    // Someone cancelled it on the effective date itself: not how unitsync cancels, so not
    // resumed either.
    sandbox.put_addition(SeedAddition {
        cancelled_date: Some("2026-12-01T00:00:00Z".into()),
        ..original.clone()
    });
    let err = client.apply(&change).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("already cancelled as of 2026-12-01T00:00:00Z"),
        "{err}"
    );

    // An earlier run cancelled it as of the day before the effective date and stopped before
    // adding the copy.
    sandbox.put_addition(SeedAddition {
        cancelled_date: Some("2026-11-30T00:00:00Z".into()),
        ..original
    });
    sandbox.clear_requests();
    let count = sandbox.additions().len();
    let applied = client.apply(&change).await.unwrap();
    assert!(
        matches!(
            applied,
            AppliedChange::CancelledAndReadded { resumed: true, .. }
        ),
        "{applied:?}"
    );
    assert_eq!(sandbox.additions().len(), count + 1);
    let methods: Vec<String> = sandbox
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        methods,
        [
            format!("GET {}", api("finance/agreements/1001/additions/5001")),
            format!("GET {}", api("finance/agreements/1001/additions")),
            format!("POST {}", api("finance/agreements/1001/additions")),
        ]
    );
}

#[tokio::test]
async fn a_snapshot_reads_a_line_cancelled_the_day_before_with_no_copy_as_awaiting_its_readd() {
    let sandbox = demo().await;
    let original = sandbox.addition(5001).unwrap();
    let effective = jiff::civil::date(2026, 12, 1);
    let status_of_5001 = |snapshot: &PsaSnapshot| {
        snapshot
            .lines
            .iter()
            .find(|l| l.id == 5001)
            .map(|l| l.status)
            .unwrap()
    };
    let mappings = story_mappings();

    // Cancelled as of 30 November with nothing replacing it: what a run killed between the
    // cancel and the re-add of a 1 December change leaves. It still bills, so it is in force.
    sandbox.put_addition(SeedAddition {
        cancelled_date: Some("2026-11-30T00:00:00Z".into()),
        ..original.clone()
    });
    let resuming = client(&sandbox).resuming_readds_on(effective);
    let snapshot = resuming.snapshot(&mappings).await.unwrap();
    assert_eq!(status_of_5001(&snapshot), RecordStatus::Active);
    // Without a re-add to resume it is simply cancelled.
    let snapshot = client(&sandbox).snapshot(&mappings).await.unwrap();
    assert_eq!(status_of_5001(&snapshot), RecordStatus::Cancelled);

    // Cancelled on the effective date itself: not a cancel of unitsync's.
    sandbox.put_addition(SeedAddition {
        cancelled_date: Some("2026-12-01T00:00:00Z".into()),
        ..original
    });
    let snapshot = resuming.snapshot(&mappings).await.unwrap();
    assert_eq!(status_of_5001(&snapshot), RecordStatus::Cancelled);
}

#[tokio::test]
async fn a_rate_limited_patch_waits_and_succeeds() {
    let sandbox = demo().await;
    let client = client(&sandbox);
    client.codebase().await.unwrap();
    sandbox.set_faults(Faults::none().rate_limit(1, 1).only_method("PATCH"));
    sandbox.clear_requests();
    let started = Instant::now();
    client
        .apply(&bobs_change(UpdatePolicy::InPlace, "3", "4"))
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
    let statuses: Vec<u16> = sandbox.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 200]);
    assert_eq!(sandbox.addition(5001).unwrap().quantity, 4.0);
}

#[tokio::test]
async fn doctor_without_the_write_probe_writes_nothing() {
    let sandbox = demo().await;
    let checks = client(&sandbox)
        .check_access(&story_mappings(), false)
        .await;
    assert_eq!(checks[5].kind, CheckKind::UpdateLines);
    assert_eq!(checks[5].outcome, CheckOutcome::Skipped);
    assert!(checks[..5].iter().all(|c| c.outcome == CheckOutcome::Pass));
    let requests: Vec<String> = sandbox
        .requests()
        .iter()
        .map(|r| format!("{} {} {:?}", r.method, r.path, r.query_param("conditions")))
        .collect();
    assert_eq!(
        requests,
        [
            "GET /login/companyinfo/computech None".to_string(),
            format!("GET {} None", api("system/info")),
            format!("GET {} Some(\"id = 1001\")", api("finance/agreements")),
            format!("GET {} None", api("finance/agreements/1001/additions")),
        ]
    );
}

#[tokio::test]
async fn a_member_that_cannot_read_companies_gets_a_permission_error() {
    let sandbox = demo().await;
    sandbox.set_login(SeedLogin {
        deny: vec!["company/companies".into()],
        ..sandbox.login()
    });
    let client = client(&sandbox);
    let err = client.snapshot(&story_mappings()).await.unwrap_err();
    assert!(matches!(err, PsaError::Forbidden { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with(&format!(
            "GET {}: the API member lacks permission to read companies by identifier;",
            api("company/companies")
        )),
        "{err}"
    );
    // Not retried: a 403 will not change.
    assert_eq!(
        sandbox
            .requests()
            .iter()
            .filter(|r| r.status == 403)
            .count(),
        1
    );
}
