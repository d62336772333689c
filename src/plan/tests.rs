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
    // An empty source touches nothing at all.
    inputs.usage.clear();
    let plan = inputs.plan();
    assert!(!plan.has_changes());
    assert_eq!(plan.summary().errors, 3);
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
