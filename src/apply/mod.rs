//! Executes a plan's updates against a PSA and records each line's outcome.
//!
//! Every update is attempted independently: one failing line never stops the others, and every
//! outcome (applied, failed, stale) becomes a history line, so a rerun knows exactly what is left.

pub mod lock;

use futures_util::stream::{self, StreamExt};

use crate::config::TrueUp;
use crate::history::{HistoryLine, HistoryTrueUp, LineOutcome};
use crate::plan::{Action, Plan, PlanLine};
use crate::psa::{AppliedChange, LineChange, Psa, PsaError, TrueUpCharge};
use crate::quantity::Quantity;

/// How to apply.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// The day a cancel-and-re-add takes effect.
    pub effective: jiff::civil::Date,
    /// Most writes in flight at once (the client bounds its own requests too).
    pub concurrency: usize,
    /// No write starts after this moment: the run's lock may be taken over soon after, and two
    /// runs must never write at once. Lines not started are failed lines the next run picks up.
    pub deadline: Option<jiff::Timestamp>,
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
                    // The line's own date (moved past invoiced periods); the run's date for
                    // lines of a plan saved without one.
                    effective: line.effective.as_ref().map_or(effective, |e| e.date),
                    unit_price: line.reprice.and_then(|r| r.unit_price).map(|p| p.to),
                    unit_cost: line.reprice.and_then(|r| r.unit_cost).map(|p| p.to),
                },
            )),
            _ => None,
        })
        .collect()
}

/// The approved true-ups of `entries` still to write: not declined, and not in `written` (the
/// ids history records as written).
pub fn pending_true_ups<'a>(
    entries: &'a [TrueUp],
    written: &'a std::collections::BTreeSet<String>,
) -> impl Iterator<Item = &'a TrueUp> {
    entries
        .iter()
        .filter(|t| !t.decline && !written.contains(&t.id))
}

/// Writes each of the [`pending_true_ups`] of `entries`, one at a time, on the line `plan` resolves its mapping to.
/// Returns one history entry per true-up attempted, in file order; a failure never stops the
/// others, and a failed one is attempted again by the next run.
pub async fn write_true_ups<P: Psa + Sync>(
    psa: &P,
    plan: &Plan,
    entries: &[TrueUp],
    written: &std::collections::BTreeSet<String>,
    today: jiff::civil::Date,
    deadline: Option<jiff::Timestamp>,
) -> Vec<HistoryTrueUp> {
    let mut out = Vec::new();
    for t in pending_true_ups(entries, written) {
        let line = plan.lines.iter().find(|l| l.mapping == t.mapping);
        let target = line.and_then(|l| Some((l.target.contract_id?, l.target.line_id?)));
        let failed = |contract: Option<u64>, reason: String| HistoryTrueUp {
            id: t.id.clone(),
            mapping: t.mapping.clone(),
            contract,
            quantity: t.quantity,
            outcome: LineOutcome::Failed,
            record: None,
            reason: Some(reason),
        };
        let Some((contract_id, line_id)) = target else {
            out.push(failed(
                None,
                match line {
                    None => "no mapping has this id any more; decline it (`decline: true`) or restore the mapping".into(),
                    Some(_) => "the mapping does not resolve to one PSA line now (see the plan); the next apply tries again".into(),
                },
            ));
            continue;
        };
        if deadline.is_some_and(|d| crate::clock::now() >= d) {
            out.push(failed(
                Some(contract_id),
                "not started: the run reached its write deadline; the next apply writes it".into(),
            ));
            continue;
        }
        let charge = TrueUpCharge {
            id: t.id.clone(),
            mapping: t.mapping.clone(),
            contract_id,
            line_id,
            quantity: t.quantity,
            first_day: t.first_day,
            last_day: t.last_day,
            written_on: today,
        };
        out.push(match psa.write_true_up(&charge).await {
            Ok(w) => HistoryTrueUp {
                id: t.id.clone(),
                mapping: t.mapping.clone(),
                contract: Some(contract_id),
                quantity: t.quantity,
                outcome: LineOutcome::Applied,
                record: Some(w.record_id),
                reason: w.found.then(|| {
                    "already in the PSA (an interrupted run wrote it); not written again"
                        .to_string()
                }),
            },
            Err(e) => failed(Some(contract_id), e.to_string()),
        });
    }
    out
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
            if let Some(deadline) = options.deadline
                && crate::clock::now() >= deadline
            {
                let reason = format!(
                    "not attempted: this run's lock was about to expire ({deadline}); run apply again"
                );
                let line = entry(line, change.from, change.to, LineOutcome::Failed, Some(reason));
                return (index, line);
            }
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
    entry(line, from, to, outcome, reason).with_new_line(new_line)
}

/// The history line recording what became of one plan line.
pub fn entry(
    line: &PlanLine,
    from: Quantity,
    to: Quantity,
    outcome: LineOutcome,
    reason: Option<String>,
) -> HistoryLine {
    // Only a change that was written bills from a date.
    let effective = line
        .effective
        .as_ref()
        .filter(|_| outcome == LineOutcome::Applied);
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
        new_line: None,
        reason,
        note: None,
        effective: effective.map(|e| e.date),
        due: match effective.map(|e| &e.why) {
            Some(crate::plan::EffectiveWhy::RolledForward { requested, .. }) => Some(*requested),
            Some(crate::plan::EffectiveWhy::NextInvoice { written_on, .. }) => *written_on,
            _ => None,
        },
    }
}

/// The reason recorded for a line an interrupted run wrote but did not record.
pub const FOUND_APPLIED: &str = "found applied; an earlier run was interrupted before recording it";
/// The reason recorded for an approved line found at its value with no earlier record.
pub const FOUND_BASELINE: &str =
    "found at the approved value; no earlier record of this line, recorded as the starting point";

/// History lines for approved values the PSA already holds but history does not: the PSA line
/// equals the approved value while the value last recorded as applied differs (or there is none).
///
/// This is how a run killed after writing some lines but before committing its history is
/// completed by the next run: those lines plan as in sync (so they are never written twice),
/// and this records them as applied.
pub fn found_applied(plan: &Plan) -> Vec<HistoryLine> {
    plan.lines
        .iter()
        .filter_map(|line| {
            let (Some(approved), Some(psa)) = (line.approved, line.psa) else {
                return None;
            };
            // In sync, or in sync with a newer vendor count waiting to be proposed.
            let settled = matches!(line.action, Action::InSync | Action::Propose { .. });
            if !settled || psa != approved || line.last_applied == Some(approved) {
                return None;
            }
            let reason = if line.last_applied.is_some() {
                FOUND_APPLIED
            } else {
                FOUND_BASELINE
            };
            Some(entry(
                line,
                line.last_applied.unwrap_or(approved),
                approved,
                LineOutcome::Applied,
                Some(reason.to_string()),
            ))
        })
        .collect()
}

/// `plan` with every drifted line that has an approved value turned into an update from what the
/// PSA holds to the approved value: `apply --force`, for when the approved value is right and the
/// hand edit in the PSA is not.
pub fn force_drift(plan: &Plan) -> Plan {
    let mut forced = plan.clone();
    for line in &mut forced.lines {
        if let (Action::Drift { psa, .. }, Some(approved)) = (&line.action, line.approved)
            && *psa != approved
        {
            line.action = Action::Update {
                from: *psa,
                to: approved,
            };
        }
    }
    forced
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UpdatePolicy;
    use crate::plan::{DesiredFrom, ResolvedTarget};

    fn q(s: &str) -> Quantity {
        s.parse().unwrap()
    }

    fn line(
        id: &str,
        approved: Option<&str>,
        psa: &str,
        last: Option<&str>,
        action: Action,
    ) -> PlanLine {
        PlanLine {
            reprice: None,
            effective: None,
            money: None,
            mapping: id.into(),
            account: "A".into(),
            license_type: "L".into(),
            target: ResolvedTarget {
                contract_id: Some(1),
                line_id: Some(2),
                ..ResolvedTarget::default()
            },
            vendor: None,
            approved: approved.map(q),
            psa: Some(q(psa)),
            last_applied: last.map(q),
            update: UpdatePolicy::InPlace,
            action,
        }
    }

    fn plan(lines: Vec<PlanLine>) -> Plan {
        Plan {
            currency: "USD".into(),
            desired: DesiredFrom::Lock,
            lines,
            unmapped: vec![],
        }
    }

    #[test]
    fn lines_written_but_not_recorded_are_found_applied_once() {
        let plan = plan(vec![
            // Interrupted: the PSA holds the approved 4, history still says 3.
            line("interrupted", Some("4"), "4", Some("3"), Action::InSync),
            // Same, and the vendor has moved on since (a proposal is pending).
            line(
                "interrupted-moved",
                Some("4"),
                "4",
                Some("3"),
                Action::Propose {
                    from: Some(q("4")),
                    to: q("5"),
                },
            ),
            // Recorded already: nothing to add.
            line("recorded", Some("4"), "4", Some("4"), Action::InSync),
            // Never recorded: the starting point.
            line("baseline", Some("2"), "2", None, Action::InSync),
            // Not approved (a reviewer deleted the line): left alone.
            line("unapproved", None, "2", None, Action::InSync),
            // Still to do: not found applied.
            line(
                "pending",
                Some("5"),
                "3",
                Some("3"),
                Action::Update {
                    from: q("3"),
                    to: q("5"),
                },
            ),
        ]);
        let found = found_applied(&plan);
        let summary: Vec<(&str, String, String, &str)> = found
            .iter()
            .map(|l| {
                (
                    l.mapping.as_str(),
                    l.from.to_string(),
                    l.to.to_string(),
                    l.reason.as_deref().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("interrupted", "3".into(), "4".into(), FOUND_APPLIED),
                ("interrupted-moved", "3".into(), "4".into(), FOUND_APPLIED),
                ("baseline", "2".into(), "2".into(), FOUND_BASELINE),
            ]
        );
        assert!(found.iter().all(|l| l.outcome == LineOutcome::Applied));
    }

    #[test]
    fn force_turns_drift_into_updates_to_the_approved_value() {
        let drift = Action::Drift {
            last_applied: q("4"),
            psa: q("6"),
        };
        let plan = plan(vec![
            line("approved", Some("4"), "6", Some("4"), drift.clone()),
            line("unapproved", None, "6", Some("4"), drift.clone()),
        ]);
        let forced = force_drift(&plan);
        assert_eq!(
            forced.lines[0].action,
            Action::Update {
                from: q("6"),
                to: q("4")
            }
        );
        assert_eq!(forced.lines[1].action, drift);
    }
}
