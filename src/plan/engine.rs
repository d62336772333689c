//! The reconciliation logic: join mappings, vendor usage and the PSA snapshot into a [`Plan`].
//!
//! Pure and deterministic: the same inputs in any order give the same plan, so a plan can be
//! reviewed, saved and re-checked, and the property tests below can hold the engine to it.

use std::collections::{BTreeMap, HashMap};

use crate::config::{Mapping, RefKind};
use crate::plan::model::*;
use crate::quantity::Quantity;

/// Computes the plan. See [`PlanInput`] for what each input means.
pub fn plan(input: PlanInput<'_>) -> Plan {
    let usage = total_usage(input.usage);
    let psa = SnapshotIndex::new(input.psa);

    let mut planned: Vec<(PlanLine, LineBilling)> = input
        .mappings
        .iter()
        .map(|mapping| plan_line(mapping, &usage, &psa, &input))
        .collect();
    planned.sort_by(|(a, _), (b, _)| {
        a.mapping
            .cmp(&b.mapping)
            .then_with(|| a.account.cmp(&b.account))
            .then_with(|| a.license_type.cmp(&b.license_type))
    });
    let (mut lines, billing): (Vec<PlanLine>, Vec<LineBilling>) = planned.into_iter().unzip();
    flag_shared_targets(&mut lines);
    apply_guardrails(&mut lines, &input);
    hold_refused_dates(&mut lines);
    for (line, billing) in lines.iter_mut().zip(&billing) {
        line.money = line_money(line, billing);
        if !matches!(
            line.action,
            Action::Update { .. } | Action::Propose { .. } | Action::Hold { .. }
        ) {
            line.effective = None;
        }
    }
    let prices = prices_by_license_type(&lines, &billing);

    let covered: std::collections::HashSet<(&str, &str)> = input
        .mappings
        .iter()
        .map(|m| (m.account.trim(), m.license_type.trim()))
        .collect();
    let unmapped = usage
        .iter()
        .filter(|((account, license_type), _)| {
            !covered.contains(&(account.as_str(), license_type.as_str()))
        })
        .filter_map(|((account, license_type), total)| {
            let (units, kind) = total.as_ref().ok()?;
            Some(UnmappedUsage {
                account: account.clone(),
                license_type: license_type.clone(),
                units: *units,
                kind: *kind,
                monthly_value: prices
                    .get(license_type.as_str())
                    .copied()
                    .flatten()
                    .and_then(|price| price.times(*units)),
            })
        })
        .collect();

    Plan {
        desired: input.desired,
        currency: input.currency.to_string(),
        lines,
        unmapped,
    }
}

/// When a change bills from, and why: the settings' date for its write, moved to the first day
/// no invoice covers when it falls in an invoiced period (or, with `invoiced_period: refuse`,
/// marked to be held when applied). An undated in-place edit is never moved — the PSA bills it
/// from its next invoice, which is what the date then says.
fn line_effective(
    policy: crate::config::UpdatePolicy,
    dates: &EffectiveDates,
    billing: &LineBilling,
    rule: crate::config::InvoicedPeriod,
) -> LineEffective {
    let requested = dates.for_policy(policy);
    let invoiced_on = billing.invoiced_on;
    let open_from = billing.open_from.filter(|open| *open > requested);
    match (open_from, dates.is_dated(policy), rule) {
        (None, false, _) => LineEffective {
            date: requested,
            why: EffectiveWhy::Today,
        },
        (None, true, _) => LineEffective {
            date: requested,
            why: EffectiveWhy::Setting,
        },
        (Some(open), false, _) => LineEffective {
            date: open,
            why: EffectiveWhy::NextInvoice {
                invoiced_on,
                written_on: Some(requested),
            },
        },
        (Some(open), true, crate::config::InvoicedPeriod::RollForward) => LineEffective {
            date: open,
            why: EffectiveWhy::RolledForward {
                requested,
                invoiced_on,
            },
        },
        (Some(open), true, crate::config::InvoicedPeriod::Refuse) => LineEffective {
            date: requested,
            why: EffectiveWhy::InInvoicedPeriod {
                open_from: open,
                invoiced_on,
            },
        },
    }
}

/// With `invoiced_period: refuse`, an update dated inside an invoiced period is held — even one
/// a person approved, because approving a count does not make an invoiced period open. A
/// proposal still goes to review: it changes only the lock, and it is checked again when applied.
fn hold_refused_dates(lines: &mut [PlanLine]) {
    for line in lines {
        let (Action::Update { from, to }, Some(effective)) = (&line.action, &line.effective) else {
            continue;
        };
        let EffectiveWhy::InInvoicedPeriod {
            open_from,
            invoiced_on,
        } = effective.why
        else {
            continue;
        };
        line.action = Action::Hold {
            from: *from,
            to: *to,
            reason: HoldReason::InvoicedPeriod {
                effective: effective.date,
                open_from,
                invoiced_on,
            },
        };
    }
}

type UsageTotals = BTreeMap<(String, String), Result<(Quantity, UnitKind), LineError>>;

/// Adds up the records per account and licence type (trimmed), keeping the unit kind.
fn total_usage(records: &[UsageRecord]) -> UsageTotals {
    let mut totals: UsageTotals = BTreeMap::new();
    for record in records {
        let key = (
            record.account.trim().to_string(),
            record.license_type.trim().to_string(),
        );
        let entry = totals
            .entry(key)
            .or_insert(Ok((Quantity::ZERO, record.kind)));
        if let Ok((units, kind)) = entry {
            *entry = if *kind != record.kind {
                Err(LineError::MixedUnits)
            } else {
                units
                    .checked_add(record.units)
                    .map(|sum| (sum, *kind))
                    .ok_or(LineError::Overflow)
            };
        }
    }
    totals
}

/// Lookup tables over the snapshot, built once per plan.
struct SnapshotIndex<'a> {
    companies_by_id: HashMap<u64, &'a PsaCompany>,
    /// Keyed by [`text_key`] of the identifier / name, since lookups ignore case and padding.
    companies_by_identifier: HashMap<String, Vec<&'a PsaCompany>>,
    companies_by_name: HashMap<String, Vec<&'a PsaCompany>>,
    contracts_by_company: HashMap<u64, Vec<&'a PsaContract>>,
    contracts_by_id: HashMap<u64, &'a PsaContract>,
    lines_by_contract: HashMap<u64, Vec<&'a PsaLine>>,
}

impl<'a> SnapshotIndex<'a> {
    fn new(snapshot: &'a PsaSnapshot) -> Self {
        let mut companies_by_id = HashMap::new();
        let mut companies_by_identifier: HashMap<String, Vec<&PsaCompany>> = HashMap::new();
        let mut companies_by_name: HashMap<String, Vec<&PsaCompany>> = HashMap::new();
        for company in &snapshot.companies {
            // An adapter may list a company twice (found by id and by identifier); once is enough.
            if companies_by_id.insert(company.id, company).is_some() {
                continue;
            }
            if let Some(identifier) = &company.identifier {
                companies_by_identifier
                    .entry(text_key(identifier))
                    .or_default()
                    .push(company);
            }
            companies_by_name
                .entry(text_key(&company.name))
                .or_default()
                .push(company);
        }
        let mut contracts_by_company: HashMap<u64, Vec<&PsaContract>> = HashMap::new();
        let mut contracts_by_id = HashMap::new();
        for contract in &snapshot.contracts {
            contracts_by_company
                .entry(contract.company_id)
                .or_default()
                .push(contract);
            contracts_by_id.insert(contract.id, contract);
        }
        let mut lines_by_contract: HashMap<u64, Vec<&PsaLine>> = HashMap::new();
        for line in &snapshot.lines {
            lines_by_contract
                .entry(line.contract_id)
                .or_default()
                .push(line);
        }
        SnapshotIndex {
            companies_by_id,
            companies_by_identifier,
            companies_by_name,
            contracts_by_company,
            contracts_by_id,
            lines_by_contract,
        }
    }
}

/// How identifiers and names are compared: trimmed, ASCII case ignored (what [`same_text`] does).
fn text_key(text: &str) -> String {
    text.trim().to_ascii_lowercase()
}

fn same_text(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

fn company_label(c: &PsaCompany) -> String {
    c.identifier.clone().unwrap_or_else(|| c.name.clone())
}

fn status_text(status: RecordStatus) -> String {
    format!("{status:?}").to_lowercase()
}

/// Picks exactly one of `candidates`, or says why not.
fn exactly_one<T>(
    what: impl FnOnce() -> String,
    mut candidates: Vec<&T>,
    label: impl Fn(&T) -> String,
    id: impl Fn(&T) -> u64,
) -> Result<&T, LineError> {
    match candidates.len() {
        0 => Err(LineError::NotFound { what: what() }),
        1 => Ok(candidates[0]),
        _ => {
            candidates.sort_by_key(|c| id(c));
            Err(LineError::Ambiguous {
                what: what(),
                candidates: candidates
                    .iter()
                    .map(|c| format!("{} (id {})", label(c), id(c)))
                    .collect(),
            })
        }
    }
}

fn plan_line(
    mapping: &Mapping,
    usage: &UsageTotals,
    psa: &SnapshotIndex<'_>,
    input: &PlanInput<'_>,
) -> (PlanLine, LineBilling) {
    let id = mapping.effective_id();
    let mut target = ResolvedTarget::default();
    let resolved = resolve(mapping, psa, &mut target);
    let vendor_total = usage.get(&(
        mapping.account.trim().to_string(),
        mapping.license_type.trim().to_string(),
    ));
    let vendor = vendor_total.and_then(|t| t.as_ref().ok()).map(|(q, _)| *q);
    let approved = input.approved.get(&id).copied();
    let last_applied = input.last_applied.get(&id).copied();
    let psa_units = resolved.as_ref().ok().map(|line| line.quantity);
    let billing = resolved
        .as_ref()
        .map(|line| line.billing)
        .unwrap_or_default();

    let mut action = match (&resolved, vendor_total) {
        (Err(reason), _) => Action::Error {
            reason: reason.clone(),
        },
        (Ok(_), Some(Err(reason))) => Action::Error {
            reason: reason.clone(),
        },
        (Ok(line), _) => decide(line.quantity, vendor, approved, last_applied, input.desired),
    };
    // A price or cost to write rides on the line's update, or makes one of a line in sync.
    let reprice = match (&resolved, &action) {
        (Ok(_), Action::Update { .. } | Action::InSync) => reprice(mapping, &billing, input),
        _ => None,
    };
    if let (Some(_), Ok(line), Action::InSync) = (&reprice, &resolved, &action) {
        action = Action::Update {
            from: line.quantity,
            to: line.quantity,
        };
    }

    let update = mapping.update.unwrap_or(input.default_update);
    let effective = line_effective(update, &input.effective, &billing, input.invoiced_period);
    let line = PlanLine {
        mapping: id,
        account: mapping.account.clone(),
        license_type: mapping.license_type.clone(),
        target,
        vendor,
        approved,
        psa: psa_units,
        last_applied,
        update,
        action,
        effective: Some(effective),
        money: None,
        reprice,
    };
    (line, billing)
}

/// The price and cost `mapping` asks to write (with sync on) where the line bills another.
fn reprice(mapping: &Mapping, billing: &LineBilling, input: &PlanInput<'_>) -> Option<Reprice> {
    let change =
        |wanted: Option<crate::money::Money>, sync: bool, now: Option<crate::money::Money>| {
            let to = wanted.filter(|_| sync)?;
            (now != Some(to)).then_some(PriceChange { from: now, to })
        };
    let found = Reprice {
        unit_price: change(
            mapping.price,
            mapping.sync_price.unwrap_or(input.sync_price),
            billing.unit_price,
        ),
        unit_cost: change(
            mapping.cost,
            mapping.sync_cost.unwrap_or(input.sync_cost),
            billing.unit_cost,
        ),
    };
    (found != Reprice::default()).then_some(found)
}

/// The line's price and the monthly revenue its change moves (an update's, or a proposal's
/// from what the PSA holds now). Held, drifted and failing lines move nothing.
fn line_money(line: &PlanLine, billing: &LineBilling) -> Option<LineMoney> {
    let new_price = line.reprice.and_then(|r| r.unit_price).map(|p| p.to);
    let unit_price = billing.unit_price.or(new_price)?;
    let to_price = new_price.unwrap_or(unit_price);
    let per_period = match (&line.action, line.psa) {
        // The revenue after (new count at the new price) less the revenue before.
        (Action::Update { from, to }, _) if billing.unit_price.is_some() => to_price
            .times(*to)
            .zip(unit_price.times(*from))
            .map(|(after, before)| after.minus(before)),
        (Action::Propose { to, .. }, Some(psa)) => to
            .checked_sub(psa)
            .and_then(|delta| unit_price.times(delta)),
        _ => None,
    };
    Some(LineMoney {
        unit_price,
        unit_cost: billing.unit_cost,
        cycle: billing.cycle,
        monthly_change: per_period.map(|m| m.per_month(billing.months())),
    })
}

/// The monthly price of one unit per licence type, over the resolved lines that have one:
/// `None` for a licence type whose lines disagree, so an unmapped account is valued only when
/// the price is not in doubt.
fn prices_by_license_type<'a>(
    lines: &'a [PlanLine],
    billing: &[LineBilling],
) -> HashMap<&'a str, Option<crate::money::Money>> {
    let mut prices: HashMap<&str, Option<crate::money::Money>> = HashMap::new();
    for (line, billing) in lines.iter().zip(billing) {
        let Some(price) = billing.unit_price else {
            continue;
        };
        let monthly = price.per_month(billing.months());
        prices
            .entry(line.license_type.trim())
            .and_modify(|known| {
                if *known != Some(monthly) {
                    *known = None;
                }
            })
            .or_insert(Some(monthly));
    }
    prices
}

/// The action for a line whose PSA target was found.
fn decide(
    psa: Quantity,
    vendor: Option<Quantity>,
    approved: Option<Quantity>,
    last_applied: Option<Quantity>,
    desired_from: DesiredFrom,
) -> Action {
    let desired = match desired_from {
        DesiredFrom::Vendor => vendor,
        DesiredFrom::Lock => approved,
    };
    if desired == Some(psa) {
        // The PSA already holds what is wanted; a pending vendor change still gets proposed.
        return match (desired_from, vendor) {
            (DesiredFrom::Lock, Some(v)) if Some(v) != approved => Action::Propose {
                from: approved,
                to: v,
            },
            _ => Action::InSync,
        };
    }
    if let Some(last) = last_applied
        && last != psa
    {
        return Action::Drift {
            last_applied: last,
            psa,
        };
    }
    match (desired_from, desired, vendor) {
        (_, Some(to), _) => Action::Update { from: psa, to },
        (DesiredFrom::Lock, None, Some(v)) => {
            if v == psa {
                Action::InSync
            } else {
                Action::Propose { from: None, to: v }
            }
        }
        (_, None, _) => Action::Error {
            reason: LineError::NoVendorRecord,
        },
    }
}

/// Follows the mapping's company → contract → line references through the snapshot, filling in
/// `target` as far as it gets so that errors still show what was found.
fn resolve<'a>(
    mapping: &Mapping,
    psa: &SnapshotIndex<'a>,
    target: &mut ResolvedTarget,
) -> Result<&'a PsaLine, LineError> {
    let company_ref = &mapping.company;
    target.company = match company_ref.kind() {
        RefKind::Identifier(s) | RefKind::Name(s) => s.to_string(),
        RefKind::Id(id) => format!("company {id}"),
    };
    let company_what = || format!("company {company_ref}");
    let companies: Vec<&PsaCompany> = match company_ref.kind() {
        RefKind::Id(id) => psa.companies_by_id.get(&id).copied().into_iter().collect(),
        RefKind::Identifier(s) => psa
            .companies_by_identifier
            .get(&text_key(s))
            .cloned()
            .unwrap_or_default(),
        RefKind::Name(s) => psa
            .companies_by_name
            .get(&text_key(s))
            .cloned()
            .unwrap_or_default(),
    };
    let company = exactly_one(company_what, companies, company_label, |c| c.id)?;
    target.company_id = Some(company.id);
    target.company = company_label(company);

    let (contract_key, contract_ref) = match (&mapping.agreement, &mapping.contract) {
        (Some(r), _) => ("agreement", r),
        (None, Some(r)) => ("contract", r),
        (None, None) => {
            return Err(LineError::IncompleteTarget {
                missing: "agreement".into(),
            });
        }
    };
    target.contract = match contract_ref.kind() {
        RefKind::Id(id) => format!("{contract_key} {id}"),
        RefKind::Identifier(s) | RefKind::Name(s) => s.to_string(),
    };
    let contract_what = || format!("{contract_key} {contract_ref} of {}", target.company);
    let contract = match contract_ref.kind() {
        RefKind::Id(id) => match psa.contracts_by_id.get(&id) {
            Some(c) if c.company_id != company.id => {
                return Err(LineError::WrongCompany {
                    contract: format!("{contract_key} {id}"),
                    company: target.company.clone(),
                    actual_company: c.company_id,
                });
            }
            Some(c) => *c,
            None => {
                return Err(LineError::NotFound {
                    what: contract_what(),
                });
            }
        },
        RefKind::Identifier(s) | RefKind::Name(s) => {
            let found: Vec<&PsaContract> = psa
                .contracts_by_company
                .get(&company.id)
                .map(|cs| {
                    cs.iter()
                        .copied()
                        .filter(|c| same_text(&c.name, s))
                        .collect()
                })
                .unwrap_or_default();
            // A renewal often keeps the name of the cancelled or expired agreement it replaces:
            // the one live record is meant, and only several live ones are ambiguous. With none
            // live, the oldest is reported as not active below.
            let live: Vec<&PsaContract> = found
                .iter()
                .copied()
                .filter(|c| c.status == RecordStatus::Active)
                .collect();
            let candidates = match (live.is_empty(), found.iter().min_by_key(|c| c.id)) {
                (true, Some(oldest)) => vec![*oldest],
                _ => live,
            };
            exactly_one(contract_what, candidates, |c| c.name.clone(), |c| c.id)?
        }
    };
    target.contract_id = Some(contract.id);
    target.contract = contract.name.clone();
    if contract.status != RecordStatus::Active {
        return Err(LineError::NotActive {
            what: format!("{contract_key} {} ({})", contract.id, contract.name),
            status: status_text(contract.status),
        });
    }

    let (line_key, line_ref) = match (&mapping.addition, &mapping.service) {
        (Some(r), _) => ("addition", r),
        (None, Some(r)) => ("service", r),
        (None, None) => {
            return Err(LineError::IncompleteTarget {
                missing: if contract_key == "agreement" {
                    "addition".into()
                } else {
                    "service".into()
                },
            });
        }
    };
    target.product = match line_ref.kind() {
        RefKind::Id(id) => format!("{line_key} {id}"),
        RefKind::Identifier(s) | RefKind::Name(s) => s.to_string(),
    };
    let lines = psa
        .lines_by_contract
        .get(&contract.id)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let contract_label = format!("{contract_key} {} ({})", contract.id, contract.name);
    if lines.is_empty() {
        return Err(LineError::ContractWithoutService {
            contract: contract_label,
        });
    }
    let matching: Vec<&PsaLine> = lines
        .iter()
        .copied()
        .filter(|l| match line_ref.kind() {
            RefKind::Id(id) => l.id == id,
            RefKind::Identifier(s) => l
                .product_identifier
                .as_deref()
                .is_some_and(|i| same_text(i, s)),
            RefKind::Name(s) => same_text(&l.product_name, s),
        })
        .collect();
    let line_what = || format!("{line_key} {line_ref} on {contract_label}");
    let active: Vec<&PsaLine> = matching
        .iter()
        .copied()
        .filter(|l| l.status == RecordStatus::Active)
        .collect();
    if active.is_empty()
        && let Some(inactive) = matching.iter().min_by_key(|l| l.id)
    {
        return Err(LineError::NotActive {
            what: format!("{line_key} {} ({})", inactive.id, inactive.product_name),
            status: status_text(inactive.status),
        });
    }
    let line = exactly_one(
        line_what,
        active,
        |l| {
            l.product_identifier
                .clone()
                .unwrap_or_else(|| l.product_name.clone())
        },
        |l| l.id,
    )?;
    target.line_id = Some(line.id);
    target.product_id = Some(line.product_id);
    target.product = line
        .product_identifier
        .clone()
        .unwrap_or_else(|| line.product_name.clone());
    Ok(line)
}

/// Two mappings that resolve to the same PSA line would fight over its quantity every run; both
/// become errors naming each other.
fn flag_shared_targets(lines: &mut [PlanLine]) {
    let mut by_line: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (i, line) in lines.iter().enumerate() {
        if let (Some(line_id), false) = (
            line.target.line_id,
            matches!(line.action, Action::Error { .. }),
        ) {
            by_line.entry(line_id).or_default().push(i);
        }
    }
    for indices in by_line.values().filter(|v| v.len() > 1) {
        for &i in indices {
            let other = indices
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| lines[j].mapping.clone())
                .collect::<Vec<_>>()
                .join(", ");
            lines[i].action = Action::Error {
                reason: LineError::SharedTarget { other },
            };
        }
    }
}

/// Holds the changes the vendor drives (updates when the vendor's counts are the desired state,
/// proposals when the lock is) that a guardrail stops. Changes towards a value a person approved in
/// the lock are never held. Run-level reasons (an empty or shrunken source) come first, then the
/// per-line ones (0, large decreases), then the cap on changes per run in mapping-id order.
fn apply_guardrails(lines: &mut [PlanLine], input: &PlanInput<'_>) {
    let run_hold = run_level_hold(input);
    let limits = input.guardrails;
    let commitments: std::collections::HashMap<String, &crate::config::Commitment> = input
        .mappings
        .iter()
        .filter_map(|m| Some((m.effective_id(), m.commitment.as_ref()?)))
        .collect();
    let mut changes: u32 = 0;
    for line in lines.iter_mut() {
        if let Some(reason) = &run_hold
            && *reason == HoldReason::EmptySource
            && line.vendor.is_none()
            && let Some(psa) = line.psa
            && matches!(
                line.action,
                Action::InSync
                    | Action::Error {
                        reason: LineError::NoVendorRecord
                    }
            )
        {
            // Nothing from the source reads as 0 for every line; hold that instead of erroring.
            line.action = Action::Hold {
                from: psa,
                to: Quantity::ZERO,
                reason: reason.clone(),
            };
            continue;
        }
        let (from, to) = match (&line.action, input.desired) {
            (Action::Update { from, to }, DesiredFrom::Vendor) => (*from, *to),
            (Action::Propose { from, to }, DesiredFrom::Lock) => match from.or(line.psa) {
                Some(from) => (from, *to),
                None => (Quantity::ZERO, *to),
            },
            _ => continue,
        };
        let reason = run_hold
            .clone()
            .or_else(|| {
                let commitment = commitments.get(&line.mapping)?;
                let effective = line
                    .effective
                    .as_ref()
                    .map_or(input.effective.for_policy(line.update), |e| e.date);
                commitment_hold(from, to, line.approved, commitment, effective)
            })
            .or_else(|| line_hold(from, to, line.approved, limits))
            .or_else(|| {
                let cap = limits?.max_changes_per_run?;
                (changes >= cap).then_some(HoldReason::ChangeCap { limit: cap })
            });
        match reason {
            Some(reason) => line.action = Action::Hold { from, to, reason },
            None => changes = changes.saturating_add(1),
        }
    }
}

/// Why the whole run's vendor-driven changes are held, if they are.
fn run_level_hold(input: &PlanInput<'_>) -> Option<HoldReason> {
    if input.usage.is_empty() {
        return Some(HoldReason::EmptySource);
    }
    let limit = input.guardrails?.min_source_accounts_percent?;
    let previous = input.previous_source_accounts?;
    let accounts = source_accounts(input.usage);
    ((accounts as f64) < previous as f64 * limit / 100.0).then_some(HoldReason::FewSourceAccounts {
        accounts,
        previous,
        limit,
    })
}

/// How many distinct vendor accounts the records name (trimmed), as `history/last-source-accounts`
/// records them.
pub fn source_accounts(usage: &[UsageRecord]) -> usize {
    usage
        .iter()
        .map(|r| r.account.trim())
        .collect::<std::collections::BTreeSet<_>>()
        .len()
}

/// A decrease that would bill from `effective`, on or before the last day of the mapping's
/// commitment, is held; an increase, or a value a person approved in the lock, is not.
fn commitment_hold(
    from: Quantity,
    to: Quantity,
    approved: Option<Quantity>,
    commitment: &crate::config::Commitment,
    effective: jiff::civil::Date,
) -> Option<HoldReason> {
    (to < from && approved != Some(to) && effective <= commitment.ends).then_some(
        HoldReason::Commitment {
            term: commitment.term,
            ends: commitment.ends,
            effective,
        },
    )
}

/// Why one vendor-driven change `from` → `to` is held, if it is. A value already approved in the
/// lock is a person's decision and releases the line's hold.
fn line_hold(
    from: Quantity,
    to: Quantity,
    approved: Option<Quantity>,
    limits: Option<&crate::config::Guardrails>,
) -> Option<HoldReason> {
    if approved == Some(to) {
        return None;
    }
    if to == Quantity::ZERO && from != Quantity::ZERO {
        return Some(HoldReason::ToZero);
    }
    let limits = limits?;
    let decrease = from.checked_sub(to).filter(|d| *d > Quantity::ZERO)?;
    if let Some(limit) = limits.max_decrease_units
        && decrease > limit
    {
        return Some(HoldReason::DecreaseUnits { decrease, limit });
    }
    if let Some(limit) = limits.max_decrease_percent
        && from > Quantity::ZERO
    {
        let percent = decrease.to_f64() / from.to_f64() * 100.0;
        if percent > limit {
            return Some(HoldReason::DecreasePercent {
                percent: (percent * 10.0).round() / 10.0,
                limit,
            });
        }
    }
    None
}
