//! The reconcile loop as a library: what `plan`, `propose` and `apply` run, callable from any
//! program and from tests in-process, with no printing. The command layer (`crate::cli`) parses,
//! calls these, renders what they return and maps [`OpsError`] to an exit code.
//!
//! Today this holds the plan step every command shares: connect to the PSA the settings name,
//! read the vendor and the PSA side by side, and hand both, with the lock and history, to the
//! pure plan engine.

use crate::config::BillingRepo;
use crate::history;
use crate::plan::{DesiredFrom, EffectiveDates, Plan, PlanInput, PsaSnapshot};
use crate::psa::{AnyPsa, Psa, PsaError};
use crate::source::{self, SourceError};

/// Why an operation failed; each keeps the error of the layer it came from.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(transparent)]
    Psa(#[from] PsaError),
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A history record that cannot be read: the plan would not know what was last written.
    #[error(transparent)]
    History(history::HistoryError),
    /// A run marker (`history/last-*`) that cannot be written.
    #[error(transparent)]
    RunMarker(crate::schedule::RunMarkerError),
}

/// The PSA client the settings name, with credentials from the environment.
///
/// The Autotask client reads units for the billing period containing the effective date and
/// keeps its adjustment journal at `history/.autotask-journal.jsonl` in the billing repo.
pub fn connect(repo: &BillingRepo) -> Result<AnyPsa, PsaError> {
    AnyPsa::from_settings(
        &repo.settings.psa,
        &repo.mappings,
        &repo.root,
        crate::apply::effective_date(repo.settings.psa.effective(), today(repo)),
    )
}

/// A plan and the snapshot it was made from.
pub struct Planned {
    pub plan: Plan,
    pub snapshot: PsaSnapshot,
    /// Distinct vendor accounts the source returned, for `history/last-source-accounts`.
    pub source_accounts: usize,
    /// The history records read for the plan, oldest first.
    pub history: Vec<(std::path::PathBuf, history::HistoryRecord)>,
}

/// Reads the vendor counts and the PSA at the same time, then plans.
///
/// First the PSA's request budget is checked for a run that reads every mapping and writes at
/// most one change per mapping (Autotask's hourly limit is shared by every integration; a
/// run refused up front is better than one cut off half-way).
pub async fn plan<P: Psa + Sync>(
    repo: &BillingRepo,
    psa: &P,
    desired: DesiredFrom,
) -> Result<Planned, OpsError> {
    psa.check_budget(&repo.mappings, repo.mappings.len())
        .await?;
    let (usage, snapshot) = tokio::join!(
        source::fetch_usage(&repo.settings.source, &repo.root),
        psa.snapshot(&repo.mappings)
    );
    crate::progress::finish();
    let usage = usage?;
    let snapshot = snapshot?;
    tracing::info!(
        records = usage.len(),
        companies = snapshot.companies.len(),
        contracts = snapshot.contracts.len(),
        lines = snapshot.lines.len(),
        "read vendor usage and PSA snapshot"
    );
    let records = history::read_all(&repo.root).map_err(OpsError::History)?;
    let last_applied = history::last_applied(&records);
    let currency = repo.settings.currency();
    let plan = crate::plan::plan(PlanInput {
        mappings: &repo.mappings,
        usage: &usage,
        psa: &snapshot,
        approved: &repo.lock.units,
        last_applied: &last_applied,
        desired,
        default_update: default_update(repo),
        guardrails: repo.settings.guardrails.as_ref(),
        previous_source_accounts: crate::schedule::last_source_accounts(&repo.root),
        effective: effective_dates(repo),
        invoiced_period: repo.settings.invoiced_period(),
        currency: &currency,
        sync_price: repo.settings.billing.as_ref().is_some_and(|b| b.sync_price),
        sync_cost: repo.settings.billing.as_ref().is_some_and(|b| b.sync_cost),
    });
    let source_accounts = crate::plan::source_accounts(&usage);
    Ok(Planned {
        plan,
        snapshot,
        source_accounts,
        history: records,
    })
}

/// Records the number of vendor accounts this run's source returned in
/// `history/last-source-accounts`, for the next run's `min_source_accounts_percent` guardrail —
/// unless the run was held for its source (an outage must not become the new baseline). Returns
/// the path written, relative to the repo root, and its contents.
pub fn record_source_accounts(
    repo: &BillingRepo,
    plan: &Plan,
    accounts: usize,
) -> Result<Option<(std::path::PathBuf, Vec<u8>)>, OpsError> {
    let source_held = plan.lines.iter().any(
        |l| matches!(&l.action, crate::plan::Action::Hold { reason, .. } if reason.is_run_level()),
    );
    if source_held || accounts == 0 {
        return Ok(None);
    }
    let path = crate::schedule::record_source_accounts(&repo.root, accounts)
        .map_err(OpsError::RunMarker)?;
    Ok(Some((path, format!("{accounts}\n").into_bytes())))
}

/// When this run's changes would bill, from today in the billing time zone.
pub fn effective_dates(repo: &BillingRepo) -> EffectiveDates {
    let today = today(repo);
    let dated = crate::apply::effective_date(repo.settings.psa.effective(), today);
    if repo.settings.psa.in_place_is_dated() {
        EffectiveDates::all(dated)
    } else {
        EffectiveDates {
            in_place: today,
            cancel_and_readd: dated,
            in_place_is_dated: false,
        }
    }
}

fn default_update(repo: &BillingRepo) -> crate::config::UpdatePolicy {
    repo.settings.psa.default_update()
}

/// Today in the schedule's time zone (the MSP's billing day), else the machine's.
pub fn today(repo: &BillingRepo) -> jiff::civil::Date {
    let tz = repo
        .settings
        .schedule
        .as_ref()
        .and_then(|s| jiff::tz::TimeZone::get(&s.timezone).ok())
        .unwrap_or_else(jiff::tz::TimeZone::system);
    crate::clock::today_in(&tz)
}
