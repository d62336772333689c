//! Executes a plan's updates against a PSA and records each line's outcome.
//!
//! Every update is attempted independently: one failing line never stops the others, and every
//! outcome (applied, failed, stale) becomes a history line, so a rerun knows exactly what is left.

use futures_util::stream::{self, StreamExt};

use crate::history::{HistoryLine, LineOutcome};
use crate::plan::{Action, Plan, PlanLine};
use crate::psa::{AppliedChange, LineChange, Psa, PsaError};
use crate::quantity::Quantity;

/// How to apply.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// The day a cancel-and-re-add takes effect.
    pub effective: jiff::civil::Date,
    /// Most writes in flight at once (the client bounds its own requests too).
    pub concurrency: usize,
}

/// The updates in `plan`, as PSA changes, in plan order.
pub fn changes(plan: &Plan, effective: jiff::civil::Date) -> Vec<(&PlanLine, LineChange)> {
    plan.lines
        .iter()
        .filter_map(|line| match line.action {
            Action::Update { from, to } => Some((
                line,
                LineChange {
                    mapping: line.mapping.clone(),
                    contract_id: line.target.contract_id?,
                    line_id: line.target.line_id?,
                    from,
                    to,
                    policy: line.update,
                    effective,
                },
            )),
            _ => None,
        })
        .collect()
}

/// Writes every update of `plan` and returns one history line per update, in plan order.
pub async fn execute<P: Psa + Sync>(
    psa: &P,
    plan: &Plan,
    options: &ApplyOptions,
) -> Vec<HistoryLine> {
    let work = changes(plan, options.effective);
    let mut results: Vec<(usize, HistoryLine)> = stream::iter(work.into_iter().enumerate())
        .map(|(index, (line, change))| async move {
            let result = psa.apply(&change).await;
            (index, history_line(line, change.from, change.to, result))
        })
        .buffer_unordered(options.concurrency.max(1))
        .collect()
        .await;
    results.sort_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, line)| line).collect()
}

/// The history line for one attempted update.
pub fn history_line(
    line: &PlanLine,
    from: Quantity,
    to: Quantity,
    result: Result<AppliedChange, PsaError>,
) -> HistoryLine {
    let (outcome, new_line, reason) = match result {
        Ok(AppliedChange::UpdatedInPlace { .. }) => (LineOutcome::Applied, None, None),
        Ok(AppliedChange::CancelledAndReadded { new_line_id, .. }) => {
            (LineOutcome::Applied, Some(new_line_id), None)
        }
        Err(e @ PsaError::Stale { .. }) => (LineOutcome::Stale, None, Some(e.to_string())),
        Err(e) => (LineOutcome::Failed, None, Some(e.to_string())),
    };
    HistoryLine {
        mapping: line.mapping.clone(),
        account: line.account.clone(),
        license_type: line.license_type.clone(),
        company: line.target.company.clone(),
        contract: line.target.contract_id,
        line: line.target.line_id,
        product: line.target.product.clone(),
        from,
        to,
        outcome,
        new_line,
        reason,
    }
}

/// The day a change takes effect under `policy`, seen from `today`.
pub fn effective_date(
    policy: crate::config::EffectiveDate,
    today: jiff::civil::Date,
) -> jiff::civil::Date {
    match policy {
        crate::config::EffectiveDate::Today => today,
        crate::config::EffectiveDate::FirstOfNextMonth => today
            .first_of_month()
            .checked_add(jiff::Span::new().months(1))
            .unwrap_or(today),
    }
}
