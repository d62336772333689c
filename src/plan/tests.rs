//! Behaviour of the plan engine: the guide's story, every error a mapping can hit, and the two
//! properties a reconciler must have (convergence and order independence).

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::config::{ExplicitRef, Guardrails, Lock, Mapping, RecordRef, UpdatePolicy};
use crate::quantity::Quantity;

fn q(text: &str) -> Quantity {
    text.parse().unwrap()
}

fn company(id: u64, identifier: &str, name: &str) -> PsaCompany {
    PsaCompany {
        id,
        identifier: Some(identifier.into()),
        name: name.into(),
    }
}

fn contract(id: u64, company_id: u64, name: &str, status: RecordStatus) -> PsaContract {
    PsaContract {
        id,
        company_id,
        name: name.into(),
        status,
    }
}

fn line(id: u64, contract_id: u64, product: &str, quantity: &str, status: RecordStatus) -> PsaLine {
    PsaLine {
        billing: Default::default(),
        id,
        contract_id,
        product_id: id * 10,
        product_identifier: Some(product.into()),
        product_name: format!("{product} product"),
        quantity: q(quantity),
        status,
    }
}

fn mapping(
    account: &str,
    license: &str,
    company: RecordRef,
    agreement: u64,
    addition: RecordRef,
) -> Mapping {
    Mapping {
        id: None,
        account: account.into(),
        license_type: license.into(),
        company,
        agreement: Some(RecordRef::Id(agreement)),
        addition: Some(addition),
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

fn ident(s: &str) -> RecordRef {
    RecordRef::Identifier(s.into())
}

fn usage(account: &str, license: &str, units: &str) -> UsageRecord {
    UsageRecord {
        account: account.into(),
        license_type: license.into(),
        units: q(units),
        kind: if q(units).is_whole() && !license.ends_with("GB") {
            UnitKind::Count
        } else {
            UnitKind::Decimal
        },
    }
}

/// The user guide's MSP: Bob's Dentistry, Angry Fox Co and DigitalTorch Inc.
fn story_snapshot() -> PsaSnapshot {
    use RecordStatus::*;
    PsaSnapshot {
        companies: vec![
            company(250, "BobsDentistry", "Bob's Dentistry"),
            company(251, "AngryFox", "Angry Fox Co"),
            company(252, "DigitalTorch", "DigitalTorch Inc"),
            company(253, "BobsDentistryOld", "Bob's Dentistry"),
        ],
        contracts: vec![
            contract(1001, 250, "Managed Backup", Active),
            contract(1002, 251, "Managed Backup", Active),
            contract(1003, 252, "Cloud Storage", Active),
            contract(1004, 251, "Old Backup", Cancelled),
            contract(1005, 252, "Empty", Active),
        ],
        lines: vec![
            line(5001, 1001, "SP-DESKTOP", "3", Active),
            line(5000, 1001, "SP-DESKTOP", "2", Cancelled),
            line(5002, 1002, "SP-SERVER", "2", Active),
            line(5003, 1003, "CLOUD-GB", "120.25", Active),
            line(5004, 1004, "SP-SERVER", "1", Active),
        ],
    }
}

fn story_mappings() -> Vec<Mapping> {
    vec![
        mapping(
            "Bob's Dentistry",
            "ShadowProtect Desktop",
            ident("BobsDentistry"),
            1001,
            ident("SP-DESKTOP"),
        ),
        mapping(
            "Angry Fox Co",
            "ShadowProtect Server",
            ident("AngryFox"),
            1002,
            ident("SP-SERVER"),
        ),
        mapping(
            "DigitalTorch Inc",
            "Cloud Premium GB",
            ident("DigitalTorch"),
            1003,
            ident("CLOUD-GB"),
        ),
    ]
}

fn story_usage() -> Vec<UsageRecord> {
    vec![
        usage("Bob's Dentistry", "ShadowProtect Desktop", "4"),
        usage("Angry Fox Co", "ShadowProtect Server", "2"),
        usage("DigitalTorch Inc", "Cloud Premium GB", "100"),
        usage("DigitalTorch Inc", "Cloud Premium GB", "35.5"),
        usage("Slate Gravel", "ShadowProtect Desktop", "3"),
    ]
}

#[derive(Debug, Clone)]
struct Inputs {
    mappings: Vec<Mapping>,
    usage: Vec<UsageRecord>,
    psa: PsaSnapshot,
    approved: BTreeMap<String, Quantity>,
    last_applied: BTreeMap<String, Quantity>,
    desired: DesiredFrom,
    guardrails: Option<Guardrails>,
    previous_source_accounts: Option<usize>,
    effective: crate::plan::EffectiveDates,
    invoiced_period: crate::config::InvoicedPeriod,
}

impl Inputs {
    fn story() -> Self {
        Inputs {
            mappings: story_mappings(),
            usage: story_usage(),
            psa: story_snapshot(),
            approved: BTreeMap::new(),
            last_applied: BTreeMap::new(),
            desired: DesiredFrom::Vendor,
            guardrails: None,
            previous_source_accounts: None,
            effective: crate::plan::EffectiveDates::all(jiff::civil::date(2026, 12, 1)),
            invoiced_period: crate::config::InvoicedPeriod::RollForward,
        }
    }

    fn plan(&self) -> Plan {
        plan(PlanInput {
            mappings: &self.mappings,
            usage: &self.usage,
            psa: &self.psa,
            approved: &self.approved,
            last_applied: &self.last_applied,
            desired: self.desired,
            default_update: UpdatePolicy::InPlace,
            guardrails: self.guardrails.as_ref(),
            previous_source_accounts: self.previous_source_accounts,
            effective: self.effective,
            invoiced_period: self.invoiced_period,
            currency: "USD",
            sync_price: false,
            sync_cost: false,
        })
    }
}

fn action_of<'p>(plan: &'p Plan, mapping: &str) -> &'p Action {
    &plan
        .lines
        .iter()
        .find(|l| l.mapping == mapping)
        .unwrap_or_else(|| panic!("no line {mapping}"))
        .action
}

fn error_of(plan: &Plan, mapping: &str) -> String {
    match action_of(plan, mapping) {
        Action::Error { reason } => reason.to_string(),
        other => panic!("{mapping}: expected an error, got {other:?}"),
    }
}

#[test]
fn the_guides_story_updates_bob_from_3_to_4() {
    let plan = Inputs::story().plan();
    assert_eq!(
        plan.lines
            .iter()
            .map(|l| l.mapping.as_str())
            .collect::<Vec<_>>(),
        [
            "angry-fox-co/shadowprotect-server",
            "bobs-dentistry/shadowprotect-desktop",
            "digitaltorch-inc/cloud-premium-gb",
        ]
    );
    assert_eq!(
        action_of(&plan, "bobs-dentistry/shadowprotect-desktop"),
        &Action::Update {
            from: q("3"),
            to: q("4")
        }
    );
    assert_eq!(
        action_of(&plan, "digitaltorch-inc/cloud-premium-gb"),
        &Action::Update {
            from: q("120.25"),
            to: q("135.5")
        }
    );
    assert_eq!(
        action_of(&plan, "angry-fox-co/shadowprotect-server"),
        &Action::InSync
    );
    let bob = &plan.lines[1];
    assert_eq!(bob.target.company, "BobsDentistry");
    assert_eq!(bob.target.company_id, Some(250));
    assert_eq!(bob.target.contract_id, Some(1001));
    assert_eq!(
        bob.target.line_id,
        Some(5001),
        "the cancelled SP-DESKTOP line is ignored"
    );
    assert_eq!(bob.target.product, "SP-DESKTOP");
    assert_eq!(
        plan.unmapped,
        vec![UnmappedUsage {
            monthly_value: None,
            account: "Slate Gravel".into(),
            license_type: "ShadowProtect Desktop".into(),
            units: q("3"),
            kind: UnitKind::Count,
        }]
    );
    assert_eq!(
        plan.summary().to_string(),
        "Plan: 2 to update (+16.25 / -0 units), 1 in sync, 1 unmapped, 0 errors."
    );
}

#[test]
fn lock_mode_proposes_vendor_changes_and_applies_only_approved_values() {
    let mut inputs = Inputs::story();
    inputs.desired = DesiredFrom::Lock;
    // Nothing approved yet: vendor counts that differ from the PSA are proposals.
    let plan = inputs.plan();
    assert_eq!(
        action_of(&plan, "bobs-dentistry/shadowprotect-desktop"),
        &Action::Propose {
            from: None,
            to: q("4")
        }
    );
    assert_eq!(
        action_of(&plan, "angry-fox-co/shadowprotect-server"),
        &Action::InSync
    );
    assert!(!plan.lines.iter().any(|l| l.action.is_update()));

    // The proposal merged: the approved 4 is applied.
    inputs.approved = plan.proposed_lock(&Lock::default()).units;
    assert_eq!(
        inputs.approved,
        BTreeMap::from([
            ("angry-fox-co/shadowprotect-server".to_string(), q("2")),
            ("bobs-dentistry/shadowprotect-desktop".to_string(), q("4")),
            ("digitaltorch-inc/cloud-premium-gb".to_string(), q("135.5")),
        ])
    );
    let plan = inputs.plan();
    assert_eq!(
        action_of(&plan, "bobs-dentistry/shadowprotect-desktop"),
        &Action::Update {
            from: q("3"),
            to: q("4")
        }
    );

    // A reviewer approved 5 instead: 5 is applied, and the vendor's 4 is proposed again next time.
    inputs
        .approved
        .insert("bobs-dentistry/shadowprotect-desktop".into(), q("5"));
    let plan = inputs.plan();
    assert_eq!(
        action_of(&plan, "bobs-dentistry/shadowprotect-desktop"),
        &Action::Update {
            from: q("3"),
            to: q("5")
        }
    );
}

#[test]
fn a_hand_edited_psa_line_is_drift_not_an_update() {
    let mut inputs = Inputs::story();
    // unitsync last wrote 3, but someone set the PSA to 7 by hand.
    inputs.psa.lines[0].quantity = q("7");
    inputs
        .last_applied
        .insert("bobs-dentistry/shadowprotect-desktop".into(), q("3"));
    let plan = inputs.plan();
    assert_eq!(
        action_of(&plan, "bobs-dentistry/shadowprotect-desktop"),
        &Action::Drift {
            last_applied: q("3"),
            psa: q("7")
        }
    );
    // When the hand edit already matches what is wanted, it is simply in sync.
    inputs.psa.lines[0].quantity = q("4");
    let plan = inputs.plan();
    assert_eq!(
        action_of(&plan, "bobs-dentistry/shadowprotect-desktop"),
        &Action::InSync
    );
}

#[test]
fn a_missing_vendor_record_never_zeroes_the_line() {
    let mut inputs = Inputs::story();
    inputs.usage.retain(|u| u.account != "Bob's Dentistry");
    let plan = inputs.plan();
    assert_eq!(
        error_of(&plan, "bobs-dentistry/shadowprotect-desktop"),
        "the vendor source has no record for this account and licence type; the PSA is left as it is (approve 0 in units.lock.yaml to bill nothing)"
    );
    // An empty source touches nothing at all: every line is held for it.
    inputs.usage.clear();
    let plan = inputs.plan();
    assert!(!plan.has_changes());
    assert_eq!(plan.summary().errors, 0);
    assert_eq!(plan.summary().held, 3);
}

#[test]
fn target_errors_say_what_is_wrong_and_what_to_do() {
    let mut inputs = Inputs::story();
    inputs.usage.push(usage("X", "L", "1"));
    let cases: Vec<(Mapping, &str)> = vec![
        (
            mapping("X", "L", ident("NoSuchCo"), 1001, ident("SP-DESKTOP")),
            "company identifier \"NoSuchCo\" not found in the PSA; check the id or identifier in the mapping",
        ),
        (
            mapping(
                "X",
                "L",
                RecordRef::Explicit(ExplicitRef::Name("bob's dentistry".into())),
                1001,
                ident("SP-DESKTOP"),
            ),
            "company name \"bob's dentistry\" matches 2 records (BobsDentistry (id 250), BobsDentistryOld (id 253)); name it by id instead",
        ),
        (
            mapping("X", "L", ident("AngryFox"), 1004, ident("SP-SERVER")),
            "agreement 1004 (Old Backup) is cancelled; only active records are updated — map an active one or remove the mapping",
        ),
        (
            mapping("X", "L", ident("AngryFox"), 1001, ident("SP-DESKTOP")),
            "agreement 1001 belongs to company id 250, not to AngryFox; fix the mapping's company or contract",
        ),
        (
            mapping("X", "L", ident("DigitalTorch"), 1005, ident("CLOUD-GB")),
            "agreement 1005 (Empty) has no services or additions, so there is no line to update; add one in the PSA or remove the mapping",
        ),
        (
            mapping("X", "L", ident("BobsDentistry"), 1001, ident("SP-SERVER")),
            "addition identifier \"SP-SERVER\" on agreement 1001 (Managed Backup) not found in the PSA; check the id or identifier in the mapping",
        ),
        (
            mapping(
                "X",
                "L",
                ident("BobsDentistry"),
                1001,
                RecordRef::Explicit(ExplicitRef::Id(5000)),
            ),
            "addition 5000 (SP-DESKTOP product) is cancelled; only active records are updated — map an active one or remove the mapping",
        ),
        (
            mapping("X", "L", ident("BobsDentistry"), 9999, ident("SP-DESKTOP")),
            "agreement id 9999 of BobsDentistry not found in the PSA; check the id or identifier in the mapping",
        ),
    ];
    for (m, expected) in cases {
        inputs.mappings = vec![m];
        let plan = inputs.plan();
        assert_eq!(error_of(&plan, "x/l"), expected);
    }
}

#[test]
fn several_active_additions_of_one_product_are_ambiguous_unless_named_by_id() {
    let mut inputs = Inputs::story();
    inputs
        .psa
        .lines
        .push(line(5009, 1001, "SP-DESKTOP", "1", RecordStatus::Active));
    let plan = inputs.plan();
    assert_eq!(
        error_of(&plan, "bobs-dentistry/shadowprotect-desktop"),
        "addition identifier \"SP-DESKTOP\" on agreement 1001 (Managed Backup) matches 2 records (SP-DESKTOP (id 5001), SP-DESKTOP (id 5009)); name it by id instead"
    );
    inputs.mappings[0].addition = Some(RecordRef::Explicit(ExplicitRef::Id(5009)));
    let plan = inputs.plan();
    assert_eq!(
        action_of(&plan, "bobs-dentistry/shadowprotect-desktop"),
        &Action::Update {
            from: q("1"),
            to: q("4")
        }
    );
}

#[test]
fn an_agreement_named_by_name_is_the_one_live_record_among_its_namesakes() {
    use RecordStatus::*;
    let mut inputs = Inputs::story();
    // Angry Fox's renewal (1012) kept the name of the cancelled agreement it replaced (1011).
    inputs.psa.contracts.extend([
        contract(1011, 251, "Backup 2025", Cancelled),
        contract(1012, 251, "Backup 2025", Active),
    ]);
    inputs.psa.lines.extend([
        line(5011, 1011, "SP-SERVER", "1", Active),
        line(5012, 1012, "SP-SERVER", "2", Active),
    ]);
    inputs.mappings[1].agreement =
        Some(RecordRef::Explicit(ExplicitRef::Name("Backup 2025".into())));
    let mapping = "angry-fox-co/shadowprotect-server";
    let plan = inputs.plan();
    assert_eq!(action_of(&plan, mapping), &Action::InSync);
    let line = plan.lines.iter().find(|l| l.mapping == mapping).unwrap();
    assert_eq!(line.target.contract_id, Some(1012));

    // Two live namesakes stay ambiguous, and name only the live ones.
    inputs
        .psa
        .contracts
        .push(contract(1013, 251, "Backup 2025", Active));
    assert_eq!(
        error_of(&inputs.plan(), mapping),
        "agreement name \"Backup 2025\" of AngryFox matches 2 records (Backup 2025 (id 1012), Backup 2025 (id 1013)); name it by id instead"
    );

    // With no live namesake the mapping names a record that is not active.
    for c in inputs.psa.contracts.iter_mut().filter(|c| c.id > 1011) {
        c.status = Expired;
    }
    let error = error_of(&inputs.plan(), mapping);
    assert!(
        error.contains("1011") && error.contains("cancelled"),
        "{error}"
    );
}

#[test]
fn two_mappings_on_one_line_are_both_errors() {
    let mut inputs = Inputs::story();
    let mut twin = inputs.mappings[0].clone();
    twin.id = Some("bob-twin".into());
    inputs.mappings.push(twin);
    let plan = inputs.plan();
    assert_eq!(
        error_of(&plan, "bob-twin"),
        "the PSA line is also the target of mapping bobs-dentistry/shadowprotect-desktop; two mappings must not bill one line"
    );
    assert_eq!(
        error_of(&plan, "bobs-dentistry/shadowprotect-desktop"),
        "the PSA line is also the target of mapping bob-twin; two mappings must not bill one line"
    );
}

#[test]
fn a_licence_type_reported_as_count_and_decimal_is_an_error() {
    let mut inputs = Inputs::story();
    inputs
        .usage
        .push(usage("Angry Fox Co", "ShadowProtect Server", "0.5"));
    let plan = inputs.plan();
    assert!(
        error_of(&plan, "angry-fox-co/shadowprotect-server")
            .contains("both as a count and as a decimal")
    );
}

#[test]
fn proposed_lock_keeps_approvals_of_failing_lines_and_drops_unknown_ids() {
    let mut inputs = Inputs::story();
    inputs.desired = DesiredFrom::Lock;
    inputs.usage.retain(|u| u.account != "Angry Fox Co");
    let current = Lock {
        units: BTreeMap::from([
            ("angry-fox-co/shadowprotect-server".to_string(), q("2")),
            ("gone/mapping".to_string(), q("9")),
        ]),
    };
    inputs.approved = current.units.clone();
    let plan = inputs.plan();
    assert_eq!(
        plan.proposed_lock(&current).units,
        BTreeMap::from([
            ("angry-fox-co/shadowprotect-server".to_string(), q("2")),
            ("bobs-dentistry/shadowprotect-desktop".to_string(), q("4")),
            ("digitaltorch-inc/cloud-premium-gb".to_string(), q("135.5")),
        ])
    );
}

// ---- properties -------------------------------------------------------------------------------

/// A random world: companies with contracts and lines, mappings onto some of them (some broken),
/// vendor usage for some accounts, and a lock and history with arbitrary values.
fn world() -> impl Strategy<Value = Inputs> {
    let line_count = 1usize..12;
    (
        line_count,
        prop::collection::vec((0u64..40, 0u64..3, prop::bool::weighted(0.85)), 12),
        prop::collection::vec((0usize..14, prop::bool::ANY, 0u64..30), 0..14),
        prop::collection::vec((0usize..14, 0i64..30, prop::bool::ANY), 0..20),
        prop::collection::vec((0usize..14, 0i64..30), 0..8),
        prop::collection::vec((0usize..14, 0i64..30), 0..8),
        prop::bool::ANY,
    )
        .prop_map(
            |(n, line_specs, mapping_specs, usage_specs, lock_specs, applied_specs, lock_mode)| {
                let mut psa = PsaSnapshot::default();
                for c in 0..3u64 {
                    psa.companies
                        .push(company(c, &format!("C{c}"), &format!("Company {c}")));
                    psa.contracts
                        .push(contract(100 + c, c, "Agreement", RecordStatus::Active));
                }
                for (i, (qty, contract_off, active)) in line_specs.into_iter().take(n).enumerate() {
                    psa.lines.push(line(
                        1000 + i as u64,
                        100 + contract_off,
                        &format!("P{i}"),
                        &qty.to_string(),
                        if active {
                            RecordStatus::Active
                        } else {
                            RecordStatus::Cancelled
                        },
                    ));
                }
                let mappings: Vec<Mapping> = mapping_specs
                    .iter()
                    .enumerate()
                    .map(|(k, (line_idx, by_id, company))| {
                        let (contract_id, addition) = match psa.lines.get(*line_idx) {
                            Some(l) if *by_id => {
                                (l.contract_id, RecordRef::Explicit(ExplicitRef::Id(l.id)))
                            }
                            Some(l) => (
                                l.contract_id,
                                ident(l.product_identifier.as_deref().unwrap()),
                            ),
                            None => (100, ident("MISSING")),
                        };
                        let company_id = if *company % 5 == 0 {
                            99
                        } else {
                            contract_id - 100
                        };
                        let mut m = mapping(
                            &format!("Account {k}"),
                            "Licence",
                            ident(&format!("C{company_id}")),
                            contract_id,
                            addition,
                        );
                        m.id = Some(format!("m{k:02}"));
                        m
                    })
                    .collect();
                let key = |k: usize| format!("m{:02}", k % mappings.len().max(1));
                let usage = usage_specs
                    .iter()
                    .map(|(k, units, mapped)| {
                        let account = if *mapped {
                            format!("Account {k}")
                        } else {
                            format!("Other {k}")
                        };
                        usage(&account, "Licence", &units.to_string())
                    })
                    .collect();
                Inputs {
                    approved: lock_specs
                        .iter()
                        .map(|(k, v)| (key(*k), Quantity::from_units(*v)))
                        .collect(),
                    last_applied: applied_specs
                        .iter()
                        .map(|(k, v)| (key(*k), Quantity::from_units(*v)))
                        .collect(),
                    mappings,
                    usage,
                    psa,
                    desired: if lock_mode {
                        DesiredFrom::Lock
                    } else {
                        DesiredFrom::Vendor
                    },
                    guardrails: None,
                    previous_source_accounts: None,
                    effective: crate::plan::EffectiveDates::all(jiff::civil::date(2026, 12, 1)),
                    invoiced_period: crate::config::InvoicedPeriod::RollForward,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Applying every update (and recording it as last applied, as `apply` does) and planning again
    /// finds nothing more to update: the reconciler converges in one step.
    #[test]
    fn applying_a_plan_converges(mut inputs in world()) {
        let first = inputs.plan();
        for planned in &first.lines {
            if let Action::Update { to, .. } = planned.action {
                let id = planned.target.line_id.unwrap();
                inputs.psa.lines.iter_mut().find(|l| l.id == id).unwrap().quantity = to;
                inputs.last_applied.insert(planned.mapping.clone(), to);
            }
        }
        let second = inputs.plan();
        let again: Vec<_> = second.lines.iter().filter(|l| l.action.is_update()).collect();
        prop_assert!(again.is_empty(), "second plan still updates {:?}", again);
    }

    /// With guardrails on, held lines are never updates, keep their approved value in the
    /// proposed lock, and applying the plan still converges: the second plan has no update the
    /// guardrails let through the first time.
    #[test]
    fn guardrails_hold_and_still_converge(
        mut inputs in world(),
        percent in proptest::option::of(0u32..=100),
        units in proptest::option::of(0i64..5),
        cap in proptest::option::of(0u32..4),
        previous in proptest::option::of(0usize..12),
    ) {
        inputs.guardrails = Some(Guardrails {
            max_decrease_percent: percent.map(f64::from),
            max_decrease_units: units.map(Quantity::from_units),
            min_source_accounts_percent: Some(80.0),
            max_changes_per_run: cap,
        });
        inputs.previous_source_accounts = previous;
        let first = inputs.plan();
        let current = Lock { units: inputs.approved.clone() };
        let lock = first.proposed_lock(&current);
        let mut updates = 0u32;
        for planned in &first.lines {
            match planned.action {
                Action::Hold { ref reason, .. } => {
                    prop_assert_eq!(lock.units.get(&planned.mapping), current.units.get(&planned.mapping));
                    if let (Some(cap), HoldReason::ChangeCap { limit }) = (cap, reason) {
                        prop_assert_eq!(cap, *limit);
                    }
                }
                Action::Update { to, .. } => {
                    if inputs.desired == DesiredFrom::Vendor {
                        updates += 1;
                        prop_assert!(to != Quantity::ZERO || planned.approved == Some(to));
                    }
                    let id = planned.target.line_id.unwrap();
                    inputs.psa.lines.iter_mut().find(|l| l.id == id).unwrap().quantity = to;
                    inputs.last_applied.insert(planned.mapping.clone(), to);
                }
                _ => {}
            }
        }
        if let Some(cap) = cap {
            prop_assert!(updates <= cap);
        }
        let second = inputs.plan();
        for line in &second.lines {
            let before = first.lines.iter().find(|l| l.mapping == line.mapping).unwrap();
            prop_assert!(
                !(line.action.is_update() && before.action.is_update()),
                "{} updated twice: {:?}", line.mapping, line.action
            );
        }
    }

    /// Shuffling mappings, usage records and snapshot records changes nothing in the plan.
    #[test]
    fn the_plan_does_not_depend_on_input_order(inputs in world(), seed in any::<u64>()) {
        let expected = inputs.plan();
        let mut shuffled = Inputs { ..inputs };
        let mut rng = seed;
        let mut next = move |len: usize| {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (rng >> 33) as usize % len.max(1)
        };
        for i in (1..shuffled.mappings.len()).rev() { let j = next(i + 1); shuffled.mappings.swap(i, j); }
        for i in (1..shuffled.usage.len()).rev() { let j = next(i + 1); shuffled.usage.swap(i, j); }
        for i in (1..shuffled.psa.lines.len()).rev() { let j = next(i + 1); shuffled.psa.lines.swap(i, j); }
        shuffled.psa.companies.reverse();
        shuffled.psa.contracts.reverse();
        prop_assert_eq!(shuffled.plan(), expected);
    }
}

#[test]
fn a_saved_plan_refuses_lines_the_psa_changed_since() {
    let inputs = Inputs::story();
    let saved = inputs.plan();
    let mut later = inputs.clone();
    later.psa.lines[0].quantity = q("5"); // Bob's addition, edited by hand after the plan
    let checked = saved.refuse_stale(&later.plan());
    assert_eq!(
        error_of(&checked, "bobs-dentistry/shadowprotect-desktop"),
        "the saved plan saw 3 units on this PSA line, but it now holds 5; someone changed it since the plan was made — run plan again"
    );
    assert_eq!(
        action_of(&checked, "digitaltorch-inc/cloud-premium-gb"),
        &Action::Update {
            from: q("120.25"),
            to: q("135.5")
        },
        "an untouched line is still applied"
    );
}

fn guardrails() -> Guardrails {
    Guardrails {
        max_decrease_percent: None,
        max_decrease_units: None,
        min_source_accounts_percent: None,
        max_changes_per_run: None,
    }
}

fn hold_of(plan: &Plan, mapping: &str) -> (Quantity, Quantity, HoldReason) {
    match action_of(plan, mapping) {
        Action::Hold { from, to, reason } => (*from, *to, reason.clone()),
        other => panic!("{mapping}: expected a hold, got {other:?}"),
    }
}

const BOB: &str = "bobs-dentistry/shadowprotect-desktop";
const FOX: &str = "angry-fox-co/shadowprotect-server";
const TORCH: &str = "digitaltorch-inc/cloud-premium-gb";

fn with_usage(inputs: &mut Inputs, account: &str, units: &str) {
    for record in inputs.usage.iter_mut().filter(|r| r.account == account) {
        record.units = q(units);
    }
}

#[test]
fn a_vendor_count_of_0_is_held_with_how_to_approve_it() {
    // The guide's example: the vendor reports 0 for Bob's Dentistry.
    let mut inputs = Inputs::story();
    with_usage(&mut inputs, "Bob's Dentistry", "0");
    let plan = inputs.plan();
    let (from, to, reason) = hold_of(&plan, BOB);
    assert_eq!((from, to), (q("3"), q("0")));
    assert_eq!(reason, HoldReason::ToZero);
    assert_eq!(
        reason.to_string(),
        "the vendor reports 0, and unitsync never sets a line to 0 by itself; to bill nothing, \
         approve 0 by writing it on this line of units.lock.yaml in the pull request"
    );
    assert!(plan.has_changes(), "DigitalTorch still updates");
    assert_eq!(
        plan.summary().to_string(),
        "Plan: 1 to update (+15.25 / -0 units), 1 in sync, 1 held, 1 unmapped, 0 errors."
    );
    // Held lines keep the approved value: none here, so no entry is written for Bob.
    let lock = plan.proposed_lock(&Lock::default());
    assert_eq!(lock.units.get(BOB), None);

    // In lock mode the proposal of 0 is held, and the lock keeps the approved 3.
    inputs.desired = DesiredFrom::Lock;
    inputs.approved.insert(BOB.into(), q("3"));
    let plan = inputs.plan();
    assert_eq!(hold_of(&plan, BOB), (q("3"), q("0"), HoldReason::ToZero));
    let current = Lock {
        units: inputs.approved.clone(),
    };
    assert_eq!(plan.proposed_lock(&current).units.get(BOB), Some(&q("3")));

    // A person writes 0 into the lock: the update towards it is approved, not held.
    inputs.approved.insert(BOB.into(), q("0"));
    let plan = inputs.plan();
    assert_eq!(
        action_of(&plan, BOB),
        &Action::Update {
            from: q("3"),
            to: q("0")
        }
    );
    // And with the vendor's counts desired, an approved 0 releases the hold too.
    inputs.desired = DesiredFrom::Vendor;
    assert!(inputs.plan().lines.iter().all(|l| !l.action.is_hold()));
}

#[test]
fn a_decrease_over_the_percent_limit_is_held() {
    let mut inputs = Inputs::story();
    inputs.guardrails = Some(Guardrails {
        max_decrease_percent: Some(50.0),
        ..guardrails()
    });
    with_usage(&mut inputs, "Bob's Dentistry", "1");
    with_usage(&mut inputs, "DigitalTorch Inc", "40");
    let plan = inputs.plan();
    // 3 → 1 is 66.7% down; 120.25 → 80 (40 + 40) is 33.5%: allowed.
    let (from, to, reason) = hold_of(&plan, BOB);
    assert_eq!((from, to), (q("3"), q("1")));
    assert_eq!(
        reason.to_string(),
        "a decrease of 66.7% is more than guardrails.max_decrease_percent (50%); to release it, \
         approve the new value on this line of units.lock.yaml or raise the limit in unitsync.yaml"
    );
    assert_eq!(
        action_of(&plan, TORCH),
        &Action::Update {
            from: q("120.25"),
            to: q("80")
        }
    );
    // Exactly at the limit is allowed.
    with_usage(&mut inputs, "Bob's Dentistry", "1.5");
    assert!(action_of(&inputs.plan(), BOB).is_update());
    // Increases are never held.
    with_usage(&mut inputs, "Bob's Dentistry", "300");
    assert!(action_of(&inputs.plan(), BOB).is_update());
}

#[test]
fn a_decrease_over_the_unit_limit_is_held() {
    let mut inputs = Inputs::story();
    inputs.guardrails = Some(Guardrails {
        max_decrease_units: Some(q("10")),
        ..guardrails()
    });
    with_usage(&mut inputs, "DigitalTorch Inc", "50");
    let plan = inputs.plan();
    let (from, to, reason) = hold_of(&plan, TORCH);
    assert_eq!((from, to), (q("120.25"), q("100")));
    assert_eq!(
        reason.to_string(),
        "a decrease of 20.25 units is more than guardrails.max_decrease_units (10); to release it, \
         approve the new value on this line of units.lock.yaml or raise the limit in unitsync.yaml"
    );
    assert!(action_of(&plan, BOB).is_update());

    // Approving the new value in the lock releases it.
    inputs.approved.insert(TORCH.into(), q("100"));
    assert!(action_of(&inputs.plan(), TORCH).is_update());
}

#[test]
fn changes_beyond_the_cap_are_held_in_mapping_id_order() {
    let mut inputs = Inputs::story();
    inputs.guardrails = Some(Guardrails {
        max_changes_per_run: Some(1),
        ..guardrails()
    });
    with_usage(&mut inputs, "Angry Fox Co", "3");
    let plan = inputs.plan();
    assert!(action_of(&plan, FOX).is_update(), "first by mapping id");
    let (from, to, reason) = hold_of(&plan, BOB);
    assert_eq!((from, to), (q("3"), q("4")));
    assert_eq!(
        reason.to_string(),
        "more than guardrails.max_changes_per_run (1) changes in this run; the next run takes the \
         next ones, or raise the limit in unitsync.yaml to take more at once"
    );
    assert_eq!(hold_of(&plan, TORCH).2, HoldReason::ChangeCap { limit: 1 });
    assert_eq!(plan.summary().held, 2);
    assert_eq!(plan.summary().to_update, 1);

    // Lock mode: approved updates are not counted or held; proposals are capped.
    inputs.desired = DesiredFrom::Lock;
    inputs.approved.insert(FOX.into(), q("3"));
    inputs.approved.insert(BOB.into(), q("3"));
    inputs.approved.insert(TORCH.into(), q("120.25"));
    let plan = inputs.plan();
    assert!(action_of(&plan, FOX).is_update());
    assert!(matches!(
        action_of(&plan, BOB),
        Action::Propose { to, .. } if *to == q("4")
    ));
    assert_eq!(hold_of(&plan, TORCH).2, HoldReason::ChangeCap { limit: 1 });
}

#[test]
fn an_empty_source_holds_every_line() {
    let mut inputs = Inputs::story();
    inputs.usage.clear();
    let plan = inputs.plan();
    for id in [BOB, FOX, TORCH] {
        assert_eq!(hold_of(&plan, id).2, HoldReason::EmptySource, "{id}");
    }
    assert_eq!(
        hold_of(&plan, BOB),
        (q("3"), q("0"), HoldReason::EmptySource)
    );
    assert_eq!(
        HoldReason::EmptySource.to_string(),
        "the vendor source returned no records at all, which looks like an outage, so nothing is \
         changed; check the source and run again"
    );
    assert!(!plan.has_changes());
    assert_eq!(
        plan.summary().to_string(),
        "Plan: 0 to update (+0 / -0 units), 0 in sync, 3 held, 0 unmapped, 0 errors."
    );

    // Lock mode: nothing is proposed, the lock keeps every approved value.
    inputs.desired = DesiredFrom::Lock;
    inputs.approved.insert(BOB.into(), q("3"));
    let plan = inputs.plan();
    assert!(!plan.has_changes());
    assert_eq!(hold_of(&plan, BOB).2, HoldReason::EmptySource);
    let current = Lock {
        units: inputs.approved.clone(),
    };
    assert_eq!(plan.proposed_lock(&current), current);
}

#[test]
fn a_shrunken_source_holds_every_vendor_driven_change() {
    let mut inputs = Inputs::story();
    inputs.guardrails = Some(Guardrails {
        min_source_accounts_percent: Some(80.0),
        ..guardrails()
    });
    // 4 distinct accounts now (Slate Gravel included); 6 last time: 66.7% < 80%.
    inputs.previous_source_accounts = Some(6);
    let plan = inputs.plan();
    let reason = HoldReason::FewSourceAccounts {
        accounts: 4,
        previous: 6,
        limit: 80.0,
    };
    assert_eq!(hold_of(&plan, BOB), (q("3"), q("4"), reason.clone()));
    assert_eq!(hold_of(&plan, TORCH).2, reason);
    assert_eq!(action_of(&plan, FOX), &Action::InSync, "no change, no hold");
    assert_eq!(
        reason.to_string(),
        "the vendor source returned 4 accounts, fewer than guardrails.min_source_accounts_percent \
         (80%) of the 6 on the last run, which looks like an outage; check the source and run \
         again — if the drop is real, lower the limit in unitsync.yaml or delete \
         history/last-source-accounts"
    );
    // 4 of 5 is 80%: enough.
    inputs.previous_source_accounts = Some(5);
    assert!(action_of(&inputs.plan(), BOB).is_update());
    // No previous run: nothing to compare against.
    inputs.previous_source_accounts = None;
    assert!(action_of(&inputs.plan(), BOB).is_update());

    // Lock mode: an update towards an approved value is a person's decision and goes through.
    inputs.previous_source_accounts = Some(6);
    inputs.desired = DesiredFrom::Lock;
    inputs.approved.insert(BOB.into(), q("4"));
    let plan = inputs.plan();
    assert!(action_of(&plan, BOB).is_update());
    assert_eq!(hold_of(&plan, TORCH).2, reason, "a proposal is held");
}

#[test]
fn holds_serialize_with_their_reason() {
    let action = Action::Hold {
        from: q("5"),
        to: q("0"),
        reason: HoldReason::ToZero,
    };
    assert_eq!(
        serde_json::to_value(&action).unwrap(),
        serde_json::json!({"action": "hold", "from": 5, "to": 0, "reason": {"kind": "to-zero"}})
    );
}

fn annual_until(ends: &str) -> Option<crate::config::Commitment> {
    Some(crate::config::Commitment {
        term: crate::config::CommitmentTerm::Annual,
        ends: ends.parse().unwrap(),
    })
}

#[test]
fn a_commitment_holds_decreases_until_its_term_ends_and_lets_increases_through() {
    let mut inputs = Inputs::story();
    inputs.mappings[0].commitment = annual_until("2027-03-31");
    assert_eq!(inputs.mappings[0].effective_id(), BOB);
    // An increase during the term goes through.
    assert_eq!(
        action_of(&inputs.plan(), BOB),
        &Action::Update {
            from: q("3"),
            to: q("4")
        }
    );

    // A decrease that would bill from 1 December, inside the term, is held with its reason.
    with_usage(&mut inputs, "Bob's Dentistry", "2");
    let (from, to, reason) = hold_of(&inputs.plan(), BOB);
    assert_eq!((from, to), (q("3"), q("2")));
    assert_eq!(
        reason,
        HoldReason::Commitment {
            term: crate::config::CommitmentTerm::Annual,
            ends: jiff::civil::date(2027, 3, 31),
            effective: jiff::civil::date(2026, 12, 1),
        }
    );
    assert_eq!(
        reason.to_string(),
        "a decrease during the annual commitment, which ends 2027-03-31: it would bill from \
         2026-12-01, while the vendor bills the committed count until the term ends; to release \
         it, approve the new value on this line of units.lock.yaml, or move commitment.ends in \
         the mapping when the term renews"
    );
    // The other lines are not touched by Bob's commitment.
    assert!(action_of(&inputs.plan(), TORCH).is_update());

    // On the term's last day still held; from the day after, it goes through.
    inputs.effective = crate::plan::EffectiveDates::all(jiff::civil::date(2027, 3, 31));
    assert!(action_of(&inputs.plan(), BOB).is_hold());
    inputs.effective = crate::plan::EffectiveDates::all(jiff::civil::date(2027, 4, 1));
    assert_eq!(
        action_of(&inputs.plan(), BOB),
        &Action::Update {
            from: q("3"),
            to: q("2")
        }
    );

    // The line's update policy picks its date: in place bills today, a re-add from the effective
    // date.
    inputs.effective = crate::plan::EffectiveDates {
        in_place: jiff::civil::date(2027, 3, 15),
        cancel_and_readd: jiff::civil::date(2027, 4, 1),
        in_place_is_dated: false,
    };
    assert!(action_of(&inputs.plan(), BOB).is_hold());
    inputs.mappings[0].update = Some(UpdatePolicy::CancelAndReadd);
    assert!(action_of(&inputs.plan(), BOB).is_update());

    // A person's approval of the lower count releases it, as for every guardrail.
    inputs.mappings[0].update = None;
    inputs.approved.insert(BOB.into(), q("2"));
    assert!(action_of(&inputs.plan(), BOB).is_update());
}

#[test]
fn a_commitment_holds_a_proposed_decrease_and_keeps_the_approved_count() {
    let mut inputs = Inputs::story();
    inputs.mappings[0].commitment = annual_until("2027-03-31");
    inputs.desired = DesiredFrom::Lock;
    inputs.approved.insert(BOB.into(), q("3"));
    with_usage(&mut inputs, "Bob's Dentistry", "1");
    let plan = inputs.plan();
    let (from, to, reason) = hold_of(&plan, BOB);
    assert_eq!((from, to), (q("3"), q("1")));
    assert!(
        matches!(reason, HoldReason::Commitment { .. }),
        "{reason:?}"
    );
    assert_eq!(plan.proposed_lock(&Lock::default()).units.get(BOB), None);
    // A vendor 0 during the term is a commitment hold too (not "approve 0").
    with_usage(&mut inputs, "Bob's Dentistry", "0");
    assert!(matches!(
        hold_of(&inputs.plan(), BOB).2,
        HoldReason::Commitment { .. }
    ));
}

// Invoiced periods and money.

fn d(y: i16, m: i8, day: i8) -> jiff::civil::Date {
    jiff::civil::date(y, m, day)
}

/// The story with Bob's line invoiced up to `open_from` (exclusive) and priced.
fn invoiced_story(open_from: jiff::civil::Date) -> Inputs {
    let mut inputs = Inputs::story();
    inputs.psa.lines[0].billing = LineBilling {
        cycle: Some(BillingCycle::Monthly),
        unit_price: Some("12.5".parse().unwrap()),
        unit_cost: None,
        open_from: Some(open_from),
        invoiced_on: Some(d(2026, 11, 25)),
    };
    inputs
}

fn effective_of(plan: &Plan, mapping: &str) -> LineEffective {
    plan.lines
        .iter()
        .find(|l| l.mapping == mapping)
        .and_then(|l| l.effective.clone())
        .unwrap()
}

#[test]
fn a_dated_change_in_an_invoiced_period_rolls_forward_or_is_held() {
    // The settings date changes 1 December; December was invoiced on 25 November.
    let mut inputs = invoiced_story(d(2027, 1, 1));
    let plan = inputs.plan();
    assert_eq!(
        effective_of(&plan, BOB),
        LineEffective {
            date: d(2027, 1, 1),
            why: EffectiveWhy::RolledForward {
                requested: d(2026, 12, 1),
                invoiced_on: Some(d(2026, 11, 25)),
            },
        }
    );
    assert!(action_of(&plan, BOB).is_update());
    // The other lines know nothing of invoices: the settings' date.
    assert_eq!(
        effective_of(&plan, "digitaltorch-inc/cloud-premium-gb"),
        LineEffective {
            date: d(2026, 12, 1),
            why: EffectiveWhy::Setting,
        }
    );

    // Refused: held, even with the new count approved in the lock.
    inputs.invoiced_period = crate::config::InvoicedPeriod::Refuse;
    inputs.desired = DesiredFrom::Lock;
    inputs.approved.insert(BOB.into(), q("4"));
    let plan = inputs.plan();
    assert_eq!(
        hold_of(&plan, BOB),
        (
            q("3"),
            q("4"),
            HoldReason::InvoicedPeriod {
                effective: d(2026, 12, 1),
                open_from: d(2027, 1, 1),
                invoiced_on: Some(d(2026, 11, 25)),
            }
        )
    );
    assert_eq!(
        plan.lines[1].monthly_change(),
        None,
        "a held change moves no money"
    );

    // A proposal still goes to review, marked; it is checked again when applied.
    inputs.approved.insert(BOB.into(), q("3"));
    let plan = inputs.plan();
    assert_eq!(
        action_of(&plan, BOB),
        &Action::Propose {
            from: Some(q("3")),
            to: q("4")
        }
    );
    assert_eq!(
        effective_of(&plan, BOB).why,
        EffectiveWhy::InInvoicedPeriod {
            open_from: d(2027, 1, 1),
            invoiced_on: Some(d(2026, 11, 25)),
        }
    );

    // An open period changes nothing.
    let plan = invoiced_story(d(2026, 12, 1)).plan();
    assert_eq!(effective_of(&plan, BOB).why, EffectiveWhy::Setting);
}

#[test]
fn an_undated_in_place_edit_bills_from_the_next_invoice_and_is_never_held() {
    let mut inputs = invoiced_story(d(2026, 12, 1));
    inputs.effective = EffectiveDates {
        in_place: d(2026, 11, 25),
        cancel_and_readd: d(2026, 12, 1),
        in_place_is_dated: false,
    };
    inputs.invoiced_period = crate::config::InvoicedPeriod::Refuse;
    let plan = inputs.plan();
    assert!(action_of(&plan, BOB).is_update());
    assert_eq!(
        effective_of(&plan, BOB),
        LineEffective {
            date: d(2026, 12, 1),
            why: EffectiveWhy::NextInvoice {
                invoiced_on: Some(d(2026, 11, 25)),
                written_on: Some(d(2026, 11, 25)),
            },
        }
    );
    // Without invoice facts, an in-place edit bills the day it is written.
    assert_eq!(
        effective_of(&plan, "digitaltorch-inc/cloud-premium-gb"),
        LineEffective {
            date: d(2026, 11, 25),
            why: EffectiveWhy::Today,
        }
    );
}

#[test]
fn a_commitment_is_judged_on_the_date_the_decrease_really_bills() {
    // The term ends 31 December; the decrease, asked for 1 December, bills from 1 January.
    let mut inputs = invoiced_story(d(2027, 1, 1));
    with_usage(&mut inputs, "Bob's Dentistry", "2");
    inputs.mappings[0].commitment = annual_until("2026-12-31");
    assert!(action_of(&inputs.plan(), BOB).is_update());
    inputs.psa.lines[0].billing.open_from = Some(d(2026, 12, 1));
    assert!(action_of(&inputs.plan(), BOB).is_hold());
}

#[test]
fn revenue_moves_per_month_and_unmapped_accounts_are_valued_when_the_price_is_certain() {
    let mut inputs = invoiced_story(d(2026, 12, 1));
    // DigitalTorch's GB bill quarterly at 0.75 a GB: 0.25 a month.
    inputs.psa.lines[3].billing = LineBilling {
        cycle: Some(BillingCycle::Quarterly),
        unit_price: Some("0.75".parse().unwrap()),
        ..LineBilling::default()
    };
    let plan = inputs.plan();
    let money = |mapping: &str| {
        plan.lines
            .iter()
            .find(|l| l.mapping == mapping)
            .unwrap()
            .monthly_change()
    };
    assert_eq!(money(BOB), Some("12.5".parse().unwrap()));
    // (135.5 − 120.25) GB × 0.75 / 3 months = 3.8125.
    assert_eq!(
        money("digitaltorch-inc/cloud-premium-gb"),
        Some("3.8125".parse().unwrap())
    );
    assert_eq!(
        plan.summary().monthly_change,
        Some("16.3125".parse().unwrap())
    );
    assert!(
        plan.summary()
            .to_string()
            .ends_with(" Revenue: +$16.31/month.")
    );
    let slate = plan
        .unmapped
        .iter()
        .find(|u| u.account == "Slate Gravel")
        .unwrap();
    assert_eq!(slate.monthly_value, Some("37.5".parse().unwrap()));

    // Two desktop prices: an unmapped account's value is in doubt, so none is given. (Angry Fox
    // reports no desktops: its line still shows the price it bills.)
    inputs.mappings.push(mapping(
        "Angry Fox Co",
        "ShadowProtect Desktop",
        ident("AngryFox"),
        1002,
        ident("SP-SERVER"),
    ));
    inputs.psa.lines[2].billing.unit_price = Some("15".parse().unwrap());
    let plan = inputs.plan();
    let slate = plan
        .unmapped
        .iter()
        .find(|u| u.account == "Slate Gravel")
        .unwrap();
    assert_eq!(slate.monthly_value, None);
}

#[test]
fn a_saved_plan_whose_date_an_invoice_moved_is_refused() {
    let saved = invoiced_story(d(2026, 12, 1)).plan();
    // December was invoiced between the plan and the apply.
    let fresh = invoiced_story(d(2027, 1, 1)).plan();
    assert_eq!(
        error_of(&saved.refuse_stale(&fresh), BOB),
        "the saved plan dated this change 2026-12-01, but it would now bill from 2027-01-01 (2026-12-01 falls in a period already invoiced (on 2026-11-25); moved to the next period (billing.invoiced_period: roll-forward)); an invoice was made since the plan — run plan again"
    );
}

#[test]
fn a_synced_price_is_an_update_and_a_saved_one_the_psa_changed_since_is_refused() {
    let mut inputs = invoiced_story(d(2026, 12, 1));
    inputs.mappings[0].price = Some("14".parse().unwrap());
    inputs.mappings[0].sync_price = Some(true);
    // Bob's count is already right: the price alone makes the update.
    with_usage(&mut inputs, "Bob's Dentistry", "3");
    let saved = inputs.plan();
    assert_eq!(
        action_of(&saved, BOB),
        &Action::Update {
            from: q("3"),
            to: q("3")
        }
    );
    let line = saved.lines.iter().find(|l| l.mapping == BOB).unwrap();
    assert_eq!(
        line.reprice,
        Some(Reprice {
            unit_price: Some(PriceChange {
                from: Some("12.5".parse().unwrap()),
                to: "14".parse().unwrap()
            }),
            unit_cost: None
        })
    );
    // 3 × (14 − 12.50) a month.
    assert_eq!(line.monthly_change(), Some("4.5".parse().unwrap()));
    // Without sync, the mapping's price is never planned.
    let mut unsynced = inputs.clone();
    unsynced.mappings[0].sync_price = None;
    assert_eq!(action_of(&unsynced.plan(), BOB), &Action::InSync);

    // Someone set 13.00 in the PSA since: the saved change is refused.
    let mut later = inputs.clone();
    later.psa.lines[0].billing.unit_price = Some("13".parse().unwrap());
    assert_eq!(
        error_of(&saved.refuse_stale(&later.plan()), BOB),
        "the saved plan saw the unit price or cost 12.5 on this PSA line, but it has changed since; run plan again"
    );
    // A killed run already wrote 14.00: nothing is refused (the count is still written).
    let mut written = inputs.clone();
    written.psa.lines[0].billing.unit_price = Some("14".parse().unwrap());
    assert!(matches!(
        action_of(&saved.refuse_stale(&written.plan()), BOB),
        Action::Update { .. } | Action::InSync
    ));
}
