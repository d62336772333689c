//! Benchmarks at MSP scale, printing figures rather than asserting them (timed tests are flaky on
//! shared machines; the figures go into the README).
//!
//! `cargo bench --bench scale` runs all three; `cargo bench --bench scale -- engine|snapshot|apply`
//! runs one. The network is the cost, so the PSA benchmarks count requests as well as seconds
//! and compare both with the floor the ConnectWise API allows:
//!
//! * snapshot: 5,000 mappings over 2,000 agreements, 20 ms latency per request. Floor: the
//!   agreement pages (2,000 / 1,000 per page) plus one additions call per agreement; wall time
//!   floor = requests × latency ÷ allowed concurrency (4).
//! * apply: 1,000 in-place changes at 20 ms: floor = 1,000 requests, 1,000 × 20 ms ÷ 4.
//! * engine: the pure plan engine on 100,000 mappings (time and peak memory of the process).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use unitsync::apply::{ApplyOptions, execute};
use unitsync::config::{ConnectWiseSettings, Mapping, RecordRef, UpdatePolicy};
use unitsync::plan::{
    DesiredFrom, Plan, PlanInput, PsaCompany, PsaContract, PsaLine, PsaSnapshot, RecordStatus,
    UnitKind, UsageRecord, plan,
};
use unitsync::psa::{ConnectWiseClient, Credentials, Psa};
use unitsync::quantity::Quantity;
use unitsync::sandbox::{
    Faults, Sandbox, Seed, SeedAddition, SeedAgreement, SeedCompany, SeedProductRef, demo_seed,
};

const LATENCY: Duration = Duration::from_millis(20);
const CONCURRENCY: usize = 4;

fn main() {
    let which: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wants = |name: &str| which.is_empty() || which.iter().any(|w| w == name);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if wants("snapshot") || wants("apply") {
        runtime.block_on(psa_benchmarks(wants("snapshot"), wants("apply")));
    }
    if wants("engine") {
        engine_benchmark();
    }
}

fn mapping(i: usize, company: usize, agreement: u64, product: &str) -> Mapping {
    Mapping {
        id: Some(format!("m{i:06}")),
        account: format!("Account {company:05}"),
        license_type: format!("Licence {i:06}"),
        company: RecordRef::Identifier(format!("C{company:05}")),
        agreement: Some(RecordRef::Id(agreement)),
        addition: Some(RecordRef::Identifier(product.into())),
        contract: None,
        service: None,
        update: None,
        commitment: None,
        price: None,
        cost: None,
        sync_price: None,
        sync_cost: None,
    }
}

/// 1,000 companies × 2 agreements × 2–3 additions = 5,000 mapped lines over 2,000 agreements.
fn scale_seed() -> (Seed, Vec<Mapping>) {
    let mut seed = Seed {
        login: demo_seed().login,
        codebase: "v4_6_release/".into(),
        ..Seed::default()
    };
    let mut mappings = Vec::new();
    let mut addition_id = 100_000i64;
    for c in 0..1000usize {
        seed.companies.push(SeedCompany {
            id: 10_000 + c as i64,
            identifier: format!("C{c:05}"),
            name: format!("Company {c:05}"),
            status: "Active".into(),
            deleted_flag: false,
        });
        for a in 0..2usize {
            let agreement = 20_000 + (c * 2 + a) as i64;
            seed.agreements.push(SeedAgreement {
                id: agreement,
                name: format!("Agreement {a}"),
                company: 10_000 + c as i64,
                agreement_type: "Managed Backup".into(),
                agreement_status: "Active".into(),
                ..SeedAgreement::default()
            });
            let lines = if a == 0 { 3 } else { 2 };
            for p in 0..lines {
                addition_id += 1;
                let product = format!("P{p}");
                seed.additions.push(SeedAddition {
                    id: addition_id,
                    agreement,
                    product: SeedProductRef {
                        id: 300 + p as i64,
                        identifier: product.clone(),
                        description: None,
                    },
                    quantity: 10.0,
                    bill_customer: "Billable".into(),
                    ..SeedAddition::default()
                });
                mappings.push(mapping(mappings.len(), c, agreement as u64, &product));
            }
        }
    }
    (seed, mappings)
}

async fn psa_benchmarks(snapshot: bool, apply: bool) {
    let (seed, mappings) = scale_seed();
    let login = seed.login.clone();
    let sandbox = Sandbox::start(seed, Faults::none().with_latency(LATENCY))
        .await
        .unwrap();
    let settings = ConnectWiseSettings {
        site: sandbox.base_url(),
        company: login.company.clone(),
        api_version: None,
        update: UpdatePolicy::InPlace,
        effective: Default::default(),
        concurrency: Some(CONCURRENCY as u8),
        timeout_seconds: None,
    };
    let client = ConnectWiseClient::new(
        &settings,
        Credentials::new(
            login.public_key,
            login.private_key,
            login.client_id.unwrap_or_default(),
        ),
    )
    .unwrap();
    // Discover the codebase outside the measurement: it is one request per run.
    client.codebase().await.unwrap();

    sandbox.clear_requests();
    let started = Instant::now();
    let snap = client.snapshot(&mappings).await.unwrap();
    let elapsed = started.elapsed();
    let requests = sandbox.requests().len();
    assert_eq!(snap.lines.len(), 5000);
    if snapshot {
        let floor_requests = 2000usize.div_ceil(1000) + 2000;
        report(
            "snapshot: 5,000 mappings over 2,000 agreements",
            requests,
            floor_requests,
            elapsed,
        );
    }

    if apply {
        let usage: Vec<UsageRecord> = mappings
            .iter()
            .enumerate()
            .map(|(i, m)| UsageRecord {
                account: m.account.clone(),
                license_type: m.license_type.clone(),
                units: Quantity::from_units(if i % 5 == 0 { 11 } else { 10 }),
                kind: UnitKind::Count,
            })
            .collect();
        let planned = plan_for(&mappings, &usage, &snap);
        let changes = planned.summary().to_update;
        assert_eq!(changes, 1000);
        sandbox.clear_requests();
        let options = ApplyOptions {
            effective: jiff::civil::date(2026, 12, 1),
            concurrency: CONCURRENCY,
            deadline: None,
        };
        let started = Instant::now();
        let lines = execute(&client, &planned, &options).await;
        let elapsed = started.elapsed();
        assert!(
            lines
                .iter()
                .all(|l| l.outcome == unitsync::history::LineOutcome::Applied)
        );
        report(
            "apply: 1,000 in-place changes",
            sandbox.requests().len(),
            changes,
            elapsed,
        );
    }
    sandbox.shutdown();
}

fn plan_for(mappings: &[Mapping], usage: &[UsageRecord], snapshot: &PsaSnapshot) -> Plan {
    plan(PlanInput {
        mappings,
        usage,
        psa: snapshot,
        invoiced_period: Default::default(),
        currency: "USD",
        sync_price: false,
        sync_cost: false,
        approved: &BTreeMap::new(),
        last_applied: &BTreeMap::new(),
        desired: DesiredFrom::Vendor,
        default_update: UpdatePolicy::InPlace,
        guardrails: None,
        previous_source_accounts: None,
        effective: unitsync::plan::EffectiveDates::all(jiff::civil::date(2026, 12, 1)),
    })
}

fn report(name: &str, requests: usize, floor_requests: usize, elapsed: Duration) {
    let floor_wall = LATENCY * floor_requests as u32 / CONCURRENCY as u32;
    println!("{name}");
    println!(
        "  requests  {requests:>7}   floor {floor_requests:>7}   ratio {:.3}",
        requests as f64 / floor_requests as f64
    );
    println!(
        "  wall      {:>6.2}s   floor {:>6.2}s   ratio {:.3}   ({} ms latency, {} in flight)",
        elapsed.as_secs_f64(),
        floor_wall.as_secs_f64(),
        elapsed.as_secs_f64() / floor_wall.as_secs_f64(),
        LATENCY.as_millis(),
        CONCURRENCY
    );
}

fn engine_benchmark() {
    const N: usize = 100_000;
    let mut snapshot = PsaSnapshot::default();
    let mut mappings = Vec::with_capacity(N);
    let mut usage = Vec::with_capacity(N);
    for i in 0..N {
        let company = i / 10;
        let contract = (i / 5) as u64;
        if i % 10 == 0 {
            snapshot.companies.push(PsaCompany {
                id: company as u64,
                identifier: Some(format!("C{company:05}")),
                name: format!("Company {company}"),
            });
        }
        if i % 5 == 0 {
            snapshot.contracts.push(PsaContract {
                id: contract,
                company_id: company as u64,
                name: "Agreement".into(),
                status: RecordStatus::Active,
            });
        }
        let product = format!("P{}", i % 5);
        snapshot.lines.push(PsaLine {
            billing: Default::default(),
            id: i as u64,
            contract_id: contract,
            product_id: (i % 5) as u64,
            product_identifier: Some(product.clone()),
            product_name: product.clone(),
            quantity: Quantity::from_units(10),
            status: RecordStatus::Active,
        });
        let m = mapping(i, company, contract, &product);
        usage.push(UsageRecord {
            account: m.account.clone(),
            license_type: m.license_type.clone(),
            units: Quantity::from_units(10 + (i % 3) as i64),
            kind: UnitKind::Count,
        });
        mappings.push(m);
    }
    let before = peak_rss_kib();
    let started = Instant::now();
    let result = plan_for(&mappings, &usage, &snapshot);
    let elapsed = started.elapsed();
    let after = peak_rss_kib();
    println!("engine: plan of 100,000 mappings");
    println!(
        "  time      {:>6.3}s   (target < 0.5 s)",
        elapsed.as_secs_f64()
    );
    println!(
        "  peak RSS  {:>6.1} MiB for the whole process, inputs included (target < 200 MB); {:.1} MiB before planning",
        after as f64 / 1024.0,
        before as f64 / 1024.0
    );
    println!("  {}", result.summary());
}

/// The process's peak resident set size (Linux `VmHWM`), in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
