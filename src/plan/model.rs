//! The plan engine's inputs and outputs. Adapters translate the outside world into these types;
//! nothing here knows about HTTP, git or files.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{CommitmentTerm, Guardrails, InvoicedPeriod, Lock, Mapping, UpdatePolicy};
use crate::money::Money;
use crate::quantity::Quantity;

/// Whether a vendor count is a number of licences or a measured amount (GB, hours). Counts must be
/// whole numbers; measured amounts may carry decimals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnitKind {
    Count,
    Decimal,
}

/// One vendor record: how many units of a licence type an account uses. Several records for the
/// same account and licence type (one per site, say) add up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecord {
    pub account: String,
    pub license_type: String,
    pub units: Quantity,
    pub kind: UnitKind,
}

/// Lifecycle of a PSA record. Only `Active` records are ever changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RecordStatus {
    Active,
    Cancelled,
    Expired,
    Inactive,
}

/// A PSA customer company (ConnectWise company, Autotask company).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PsaCompany {
    pub id: u64,
    /// ConnectWise's unique short identifier; Autotask has none.
    pub identifier: Option<String>,
    pub name: String,
}

/// A billing contract (ConnectWise agreement, Autotask recurring-service contract).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PsaContract {
    pub id: u64,
    pub company_id: u64,
    pub name: String,
    pub status: RecordStatus,
}

/// A billed line on a contract (ConnectWise addition, Autotask contract service) and its current
/// quantity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PsaLine {
    pub id: u64,
    pub contract_id: u64,
    pub product_id: u64,
    /// Product identifier (ConnectWise catalog identifier, Autotask service SKU) when it has one.
    pub product_identifier: Option<String>,
    pub product_name: String,
    pub quantity: Quantity,
    pub status: RecordStatus,
    /// What the line bills and how much of it is invoiced, as far as the PSA tells.
    #[serde(default, skip_serializing_if = "LineBilling::is_unknown")]
    pub billing: LineBilling,
}

/// How long one billing period of a line is. A line's unit price is for one period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BillingCycle {
    Monthly,
    Quarterly,
    SemiAnnual,
    Annual,
}

impl BillingCycle {
    pub fn months(self) -> u32 {
        match self {
            BillingCycle::Monthly => 1,
            BillingCycle::Quarterly => 3,
            BillingCycle::SemiAnnual => 6,
            BillingCycle::Annual => 12,
        }
    }

    /// The cycle a period of `months` months is, for PSAs that give periods rather than a cycle.
    pub fn of_months(months: i64) -> Option<BillingCycle> {
        match months {
            1 => Some(BillingCycle::Monthly),
            3 => Some(BillingCycle::Quarterly),
            6 => Some(BillingCycle::SemiAnnual),
            12 => Some(BillingCycle::Annual),
            _ => None,
        }
    }
}

/// A line's price and invoicing state, read from the PSA. Every field may be unknown: a PSA or
/// record that does not say leaves it `None`, and nothing is inferred from a missing value (a
/// missing price is not a price of 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineBilling {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cycle: Option<BillingCycle>,
    /// Price of one unit for one period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_price: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_cost: Option<Money>,
    /// The first day no invoice covers yet: a change dated before it would change a period the
    /// customer was already invoiced for (ConnectWise: the agreement's next invoice date;
    /// Autotask: the day after the period the effective date falls in, once that period's
    /// units are approved and posted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_from: Option<jiff::civil::Date>,
    /// When the invoice (or Autotask posting) covering the days before `open_from` was made,
    /// where the PSA says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoiced_on: Option<jiff::civil::Date>,
}

impl LineBilling {
    pub fn is_unknown(&self) -> bool {
        *self == LineBilling::default()
    }

    /// Months in one billing period; a line whose cycle is unknown is taken as billed monthly.
    pub fn months(&self) -> u32 {
        self.cycle.map_or(1, BillingCycle::months)
    }
}

/// What the PSA holds for the records the mappings name. Adapters may fetch only those records;
/// anything absent is simply "not found".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PsaSnapshot {
    pub companies: Vec<PsaCompany>,
    pub contracts: Vec<PsaContract>,
    pub lines: Vec<PsaLine>,
}

/// What the PSA should end up holding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DesiredFrom {
    /// The vendor's counts (a local `plan`/`apply`, or `approval: automatic`): confirming the plan
    /// is the approval.
    Vendor,
    /// The counts approved in `units.lock.yaml` (GitOps): vendor counts that differ are proposals.
    Lock,
}

/// Everything the plan engine looks at.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    pub mappings: &'a [Mapping],
    pub usage: &'a [UsageRecord],
    pub psa: &'a PsaSnapshot,
    /// Approved units per mapping id (`units.lock.yaml`).
    pub approved: &'a BTreeMap<String, Quantity>,
    /// Units last written to the PSA per mapping id (from history), to tell drift from change.
    pub last_applied: &'a BTreeMap<String, Quantity>,
    pub desired: DesiredFrom,
    /// The PSA-wide update policy; a mapping may override it.
    pub default_update: UpdatePolicy,
    /// Limits that hold vendor-driven changes for a person to confirm (`guardrails:`).
    pub guardrails: Option<&'a Guardrails>,
    /// How many distinct vendor accounts the source returned on the last successful run
    /// (`history/last-source-accounts`), for `min_source_accounts_percent`.
    pub previous_source_accounts: Option<usize>,
    /// The first day this run's changes would bill, before invoices are taken into account.
    pub effective: EffectiveDates,
    /// What to do with a dated change that would fall in an invoiced period.
    pub invoiced_period: InvoicedPeriod,
    /// The currency of the PSA's prices (ISO 4217), for showing money.
    pub currency: &'a str,
    /// `billing.sync_price` / `billing.sync_cost`; a mapping may override either.
    pub sync_price: bool,
    pub sync_cost: bool,
}

/// The first day a change bills, by how it is written: an in-place change to a ConnectWise
/// addition bills from the day it is made; a cancel-and-readd line, and every Autotask
/// adjustment, from the PSA settings' effective date. The caller works them out from today; the
/// engine never reads a clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EffectiveDates {
    pub in_place: jiff::civil::Date,
    pub cancel_and_readd: jiff::civil::Date,
    /// Whether an in-place write carries a date (an Autotask adjustment's `effectiveDate`) or
    /// not (a ConnectWise quantity edit, which the next invoice bills).
    pub in_place_is_dated: bool,
}

impl EffectiveDates {
    /// One date for every policy.
    pub fn all(date: jiff::civil::Date) -> EffectiveDates {
        EffectiveDates {
            in_place: date,
            cancel_and_readd: date,
            in_place_is_dated: true,
        }
    }

    /// Whether a write under `policy` carries its effective date to the PSA.
    pub fn is_dated(&self, policy: UpdatePolicy) -> bool {
        policy == UpdatePolicy::CancelAndReadd || self.in_place_is_dated
    }

    pub fn for_policy(&self, policy: UpdatePolicy) -> jiff::civil::Date {
        match policy {
            UpdatePolicy::InPlace => self.in_place,
            UpdatePolicy::CancelAndReadd => self.cancel_and_readd,
        }
    }
}

/// The result of planning: one line per mapping, sorted by mapping id, and the vendor accounts no
/// mapping covers, sorted by account then licence type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub desired: DesiredFrom,
    /// The currency the PSA's prices are in (ISO 4217), from `billing.currency`.
    #[serde(default = "default_currency")]
    pub currency: String,
    pub lines: Vec<PlanLine>,
    pub unmapped: Vec<UnmappedUsage>,
}

fn default_currency() -> String {
    crate::config::DEFAULT_CURRENCY.to_string()
}

/// A vendor account and licence type that no mapping covers: revenue that is not being billed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnmappedUsage {
    pub account: String,
    pub license_type: String,
    pub units: Quantity,
    pub kind: UnitKind,
    /// What these units would bill a month at the price the mapped lines of the same licence
    /// type have, when they all have the same one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_value: Option<Money>,
}

/// One mapping's state and the action the plan takes for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanLine {
    pub mapping: String,
    pub account: String,
    pub license_type: String,
    /// The PSA records the mapping resolved to, as far as resolution got.
    pub target: ResolvedTarget,
    /// Units the vendor reports (absent when the source has no record for the account).
    pub vendor: Option<Quantity>,
    /// Units approved in the lock.
    pub approved: Option<Quantity>,
    /// Units the PSA line holds now.
    pub psa: Option<Quantity>,
    /// Units unitsync last wrote to this line.
    pub last_applied: Option<Quantity>,
    pub update: UpdatePolicy,
    pub action: Action,
    /// When a change (update, proposal or held change) would bill from, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective: Option<LineEffective>,
    /// The line's price and what the change does to the monthly revenue, where the PSA has a
    /// price for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub money: Option<LineMoney>,
    /// The unit price or cost this update also writes (`sync_price`/`sync_cost`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reprice: Option<Reprice>,
}

/// A price and a cost a mapping asks the PSA line to bill, where they differ from the line's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reprice {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_price: Option<PriceChange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_cost: Option<PriceChange>,
}

/// `from` is what the PSA line holds (unknown when the PSA did not say).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceChange {
    pub from: Option<Money>,
    pub to: Money,
}

impl PlanLine {
    /// What this line's update or proposal moves the monthly revenue by, where the price is
    /// known. A line whose change was held, refused or found stale moves nothing.
    pub fn monthly_change(&self) -> Option<Money> {
        match self.action {
            Action::Update { .. } | Action::Propose { .. } => self.money?.monthly_change,
            _ => None,
        }
    }
}

/// The first day a change bills, and why that day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineEffective {
    pub date: jiff::civil::Date,
    pub why: EffectiveWhy,
}

/// Why a change bills from its date. The texts are for the plan and the pull request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum EffectiveWhy {
    /// An in-place edit carries no date: it bills from the day it is written.
    #[error("an in-place change bills from the day it is written")]
    Today,
    /// The date the PSA settings' `effective` gives.
    #[error("psa.effective in unitsync.yaml")]
    Setting,
    /// An in-place edit made while the current period is invoiced shows on the next invoice.
    #[error(
        "the current period is already invoiced{}; an in-place change bills from the next invoice",
        on_text(*invoiced_on)
    )]
    NextInvoice {
        invoiced_on: Option<jiff::civil::Date>,
        /// The day it was written: the days from it to the next invoice billed the old count.
        /// Absent in plans saved before it was recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        written_on: Option<jiff::civil::Date>,
    },
    /// The settings' date fell in an invoiced period, so the change moved to the next open one.
    #[error(
        "{requested} falls in a period already invoiced{}; moved to the next period (billing.invoiced_period: roll-forward)",
        on_text(*invoiced_on)
    )]
    RolledForward {
        requested: jiff::civil::Date,
        invoiced_on: Option<jiff::civil::Date>,
    },
    /// The settings' date falls in an invoiced period and the settings refuse such changes: a
    /// proposal shows it; applying holds it.
    #[error(
        "falls in a period already invoiced{}, and billing.invoiced_period is refuse: applying holds it until {open_from}",
        on_text(*invoiced_on)
    )]
    InInvoicedPeriod {
        open_from: jiff::civil::Date,
        invoiced_on: Option<jiff::civil::Date>,
    },
}

fn on_text(date: Option<jiff::civil::Date>) -> String {
    date.map(|d| format!(" (on {d})")).unwrap_or_default()
}

/// A line's price, and the revenue its change moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineMoney {
    /// Price of one unit for one billing period.
    pub unit_price: Money,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_cost: Option<Money>,
    /// How long a period is; unknown periods are taken as a month, and say so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cycle: Option<BillingCycle>,
    /// What the change adds to (or takes from) the monthly revenue: the unit change times the
    /// unit price, per month. Absent on lines without a change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_change: Option<Money>,
}

/// Ids and labels of the PSA records behind a plan line, for display, history and applying.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedTarget {
    pub company_id: Option<u64>,
    /// Identifier when the PSA has one, else the name.
    pub company: String,
    pub contract_id: Option<u64>,
    pub contract: String,
    pub line_id: Option<u64>,
    pub product_id: Option<u64>,
    pub product: String,
}

/// What the plan does with one mapping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Set the PSA line from `from` to `to`.
    Update { from: Quantity, to: Quantity },
    /// The vendor's count differs from the approved one: propose `to` for approval.
    Propose {
        from: Option<Quantity>,
        to: Quantity,
    },
    /// Nothing to do.
    InSync,
    /// The PSA was changed outside unitsync since it last wrote the line: it holds `psa`, not
    /// `last_applied`. Left alone until someone decides which is right.
    Drift {
        last_applied: Quantity,
        psa: Quantity,
    },
    /// The line cannot be planned.
    Error { reason: LineError },
    /// A guardrail stopped the vendor-driven change `from` → `to`; the approved value stays.
    Hold {
        from: Quantity,
        to: Quantity,
        reason: HoldReason,
    },
}

/// Why a guardrail held a change, and how to release it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum HoldReason {
    #[error(
        "it would bill from {effective}, inside a period already invoiced{} (the next open period starts {open_from}), and billing.invoiced_period in unitsync.yaml is refuse; it is written once its date is open — or set invoiced_period: roll-forward to bill it from {open_from}",
        on_text(*invoiced_on)
    )]
    InvoicedPeriod {
        effective: jiff::civil::Date,
        open_from: jiff::civil::Date,
        invoiced_on: Option<jiff::civil::Date>,
    },
    #[error(
        "a decrease during the {term} commitment, which ends {ends}: it would bill from {effective}, while the vendor bills the committed count until the term ends; to release it, approve the new value on this line of units.lock.yaml, or move commitment.ends in the mapping when the term renews"
    )]
    Commitment {
        term: CommitmentTerm,
        ends: jiff::civil::Date,
        effective: jiff::civil::Date,
    },
    #[error(
        "the vendor reports 0, and unitsync never sets a line to 0 by itself; to bill nothing, approve 0 by writing it on this line of units.lock.yaml in the pull request"
    )]
    ToZero,
    #[error(
        "a decrease of {percent}% is more than guardrails.max_decrease_percent ({limit}%); to release it, approve the new value on this line of units.lock.yaml or raise the limit in unitsync.yaml"
    )]
    DecreasePercent { percent: f64, limit: f64 },
    #[error(
        "a decrease of {decrease} units is more than guardrails.max_decrease_units ({limit}); to release it, approve the new value on this line of units.lock.yaml or raise the limit in unitsync.yaml"
    )]
    DecreaseUnits { decrease: Quantity, limit: Quantity },
    #[error(
        "more than guardrails.max_changes_per_run ({limit}) changes in this run; the next run takes the next ones, or raise the limit in unitsync.yaml to take more at once"
    )]
    ChangeCap { limit: u32 },
    #[error(
        "the vendor source returned no records at all, which looks like an outage, so nothing is changed; check the source and run again"
    )]
    EmptySource,
    #[error(
        "the vendor source returned {accounts} accounts, fewer than guardrails.min_source_accounts_percent ({limit}%) of the {previous} on the last run, which looks like an outage; check the source and run again — if the drop is real, lower the limit in unitsync.yaml or delete history/last-source-accounts"
    )]
    FewSourceAccounts {
        accounts: usize,
        previous: usize,
        limit: f64,
    },
}

impl HoldReason {
    /// Whether the reason is about the whole run (the source), not this line.
    pub fn is_run_level(&self) -> bool {
        matches!(
            self,
            HoldReason::EmptySource | HoldReason::FewSourceAccounts { .. }
        )
    }
}

impl Action {
    pub fn is_update(&self) -> bool {
        matches!(self, Action::Update { .. })
    }

    pub fn is_hold(&self) -> bool {
        matches!(self, Action::Hold { .. })
    }
}

/// Why a mapping cannot be planned. Each message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum LineError {
    #[error("{what} not found in the PSA; check the id or identifier in the mapping")]
    NotFound { what: String },
    #[error(
        "{what} is {status}; only active records are updated — map an active one or remove the mapping"
    )]
    NotActive { what: String, status: String },
    #[error("{what} matches {} records ({}); name it by id instead", candidates.len(), candidates.join(", "))]
    Ambiguous {
        what: String,
        candidates: Vec<String>,
    },
    #[error(
        "{contract} has no services or additions, so there is no line to update; add one in the PSA or remove the mapping"
    )]
    ContractWithoutService { contract: String },
    #[error(
        "{contract} belongs to company id {actual_company}, not to {company}; fix the mapping's company or contract"
    )]
    WrongCompany {
        contract: String,
        company: String,
        actual_company: u64,
    },
    #[error(
        "the vendor source has no record for this account and licence type; the PSA is left as it is (approve 0 in units.lock.yaml to bill nothing)"
    )]
    NoVendorRecord,
    #[error(
        "the PSA line is also the target of mapping {other}; two mappings must not bill one line"
    )]
    SharedTarget { other: String },
    #[error(
        "the vendor reports this licence type both as a count and as a decimal quantity; fix the source's unit column"
    )]
    MixedUnits,
    #[error("the vendor's total overflows")]
    Overflow,
    #[error(
        "the saved plan saw {planned} units on this PSA line, but it now holds {found}; someone changed it since the plan was made — run plan again"
    )]
    Stale { planned: String, found: String },
    #[error("mapping names no {missing} for this PSA; add `{missing}:`")]
    IncompleteTarget { missing: String },
    #[error(
        "the saved plan saw the unit price or cost {planned} on this PSA line, but it has changed since; run plan again"
    )]
    PriceMoved { planned: String },
    #[error(
        "the saved plan dated this change {planned}, but it would now bill from {now} ({why}); an invoice was made since the plan — run plan again"
    )]
    EffectiveMoved {
        planned: jiff::civil::Date,
        now: jiff::civil::Date,
        why: String,
    },
}

/// Totals for the one-line summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub to_update: usize,
    pub units_added: Quantity,
    pub units_removed: Quantity,
    pub to_propose: usize,
    pub in_sync: usize,
    pub drift: usize,
    pub held: usize,
    pub unmapped: usize,
    pub errors: usize,
    /// The monthly revenue the updates and proposals move, over the lines with a known price;
    /// `None` when no changed line has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_change: Option<Money>,
    /// The plan's currency, for showing `monthly_change`.
    #[serde(skip)]
    pub currency: String,
}

impl Plan {
    pub fn summary(&self) -> Summary {
        let mut s = Summary {
            unmapped: self.unmapped.len(),
            currency: self.currency.clone(),
            ..Summary::default()
        };
        for line in &self.lines {
            if let Some(change) = line.monthly_change() {
                let total = s.monthly_change.unwrap_or_default();
                s.monthly_change = Some(total.checked_add(change).unwrap_or(total));
            }
            match &line.action {
                Action::Update { from, to } => {
                    s.to_update += 1;
                    if to > from {
                        s.units_added = s.units_added.saturating_add(to.saturating_sub(*from));
                    } else {
                        s.units_removed = s.units_removed.saturating_add(from.saturating_sub(*to));
                    }
                }
                Action::Propose { .. } => s.to_propose += 1,
                Action::InSync => s.in_sync += 1,
                Action::Drift { .. } => s.drift += 1,
                Action::Error { .. } => s.errors += 1,
                Action::Hold { .. } => s.held += 1,
            }
        }
        s
    }

    /// The lock a `propose` would write: `current` with every proposal (and, when the vendor's
    /// counts are the desired state, every update) written in, and entries for mappings that no
    /// longer exist dropped. Lines in error or drift keep their approved value, so a failing
    /// mapping never loses its approval.
    pub fn proposed_lock(&self, current: &Lock) -> Lock {
        let mut units = BTreeMap::new();
        for line in &self.lines {
            let value = match (&line.action, self.desired) {
                (Action::Propose { to, .. }, _) => Some(*to),
                (Action::Update { to, .. }, DesiredFrom::Vendor) => Some(*to),
                (Action::InSync, _) if line.approved.is_none() => line.vendor,
                _ => current.units.get(&line.mapping).copied(),
            };
            if let Some(value) = value {
                units.insert(line.mapping.clone(), value);
            }
        }
        Lock { units }
    }

    /// For `apply --plan FILE`: the saved plan with each update whose PSA line no longer looks as
    /// the plan saw it (per `fresh`, a plan computed from a new snapshot) turned into a
    /// [`LineError::Stale`] error, line by line, as Terraform does for a whole plan.
    pub fn refuse_stale(&self, fresh: &Plan) -> Plan {
        let fresh_lines: BTreeMap<&str, &PlanLine> = fresh
            .lines
            .iter()
            .map(|l| (l.mapping.as_str(), l))
            .collect();
        let mut checked = self.clone();
        for line in &mut checked.lines {
            let Action::Update { from, to } = line.action else {
                continue;
            };
            let now = fresh_lines.get(line.mapping.as_str());
            let planned_date = line.effective.as_ref().map(|e| e.date);
            if let Some(now) = now
                && now.target.line_id == line.target.line_id
                && now.psa == Some(from)
                && let (Some(planned), Some(fresh)) = (planned_date, now.effective.as_ref())
                && fresh.date != planned
            {
                line.action = Action::Error {
                    reason: LineError::EffectiveMoved {
                        planned,
                        now: fresh.date,
                        why: fresh.why.to_string(),
                    },
                };
                continue;
            }
            // A price or cost changed on the PSA since the plan (not to the one the plan writes,
            // which a killed run may have written): the saved change no longer starts from it.
            let moved = |pick: fn(&Reprice) -> Option<PriceChange>| {
                let saved = line.reprice.as_ref().and_then(pick)?;
                let fresh = now?.reprice.as_ref().and_then(pick)?;
                (fresh.from != saved.from).then(|| {
                    saved
                        .from
                        .map_or_else(|| "none".to_string(), |m| m.to_string())
                })
            };
            if let Some(planned) = moved(|r| r.unit_price).or_else(|| moved(|r| r.unit_cost)) {
                line.action = Action::Error {
                    reason: LineError::PriceMoved { planned },
                };
                continue;
            }
            let found = match now {
                Some(now) if now.target.line_id == line.target.line_id && now.psa == Some(from) => {
                    continue;
                }
                // Already written — by a run of this plan killed before it recorded the line:
                // nothing to write again; it is in sync, and the caller can record it.
                Some(now) if now.target.line_id == line.target.line_id && now.psa == Some(to) => {
                    line.action = Action::InSync;
                    line.psa = now.psa;
                    line.last_applied = now.last_applied;
                    continue;
                }
                Some(now) if now.target.line_id != line.target.line_id => {
                    "a different line (the mapping no longer resolves to the same PSA record)"
                        .into()
                }
                Some(now) => now.psa.map_or_else(|| "nothing".into(), |q| q.to_string()),
                None => "nothing (the mapping is gone)".into(),
            };
            line.action = Action::Error {
                reason: LineError::Stale {
                    planned: from.to_string(),
                    found,
                },
            };
        }
        checked
    }

    /// Whether applying or proposing would change anything. Held changes do not count.
    pub fn has_changes(&self) -> bool {
        self.lines
            .iter()
            .any(|l| matches!(l.action, Action::Update { .. } | Action::Propose { .. }))
    }
}

impl std::fmt::Display for Summary {
    /// `Plan: 3 to update (+5 / -2 units), 41 in sync, 2 unmapped, 1 error.` Proposals and drift
    /// are mentioned only when there are some, so the common line stays short.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Plan: {} to update (+{} / -{} units)",
            self.to_update, self.units_added, self.units_removed
        )?;
        if self.to_propose > 0 {
            write!(f, ", {} to propose", self.to_propose)?;
        }
        write!(f, ", {} in sync", self.in_sync)?;
        if self.drift > 0 {
            write!(f, ", {} drifted", self.drift)?;
        }
        if self.held > 0 {
            write!(f, ", {} held", self.held)?;
        }
        write!(
            f,
            ", {} unmapped, {} error{}.",
            self.unmapped,
            self.errors,
            if self.errors == 1 { "" } else { "s" }
        )?;
        if let Some(change) = self.monthly_change {
            write!(f, " Revenue: {}/month.", change.signed_text(&self.currency))?;
        }
        Ok(())
    }
}
