//! What an apply did, line by line, as `apply` and `apply --gitops` print it: one line per
//! written, failed or stale PSA line, per held change, and per true-up.

use crate::history::{HistoryLine, HistoryTrueUp, LineOutcome};
use crate::plan::{Action, Plan};

/// `applied  <mapping>: 3 → 4`, `FAILED   <mapping>: 3 → 4: <reason>`, one line each.
pub fn outcomes(lines: &[HistoryLine]) -> String {
    let mut out = String::new();
    for line in lines {
        match line.outcome {
            LineOutcome::Applied => match &line.reason {
                Some(reason) => out.push_str(&format!(
                    "applied  {}: {} → {} ({reason})\n",
                    line.mapping, line.from, line.to
                )),
                None => out.push_str(&format!(
                    "applied  {}: {} → {}\n",
                    line.mapping, line.from, line.to
                )),
            },
            LineOutcome::Failed | LineOutcome::Stale => out.push_str(&format!(
                "{:<8} {}: {} → {}: {}\n",
                if line.outcome == LineOutcome::Failed {
                    "FAILED"
                } else {
                    "STALE"
                },
                line.mapping,
                line.from,
                line.to,
                line.reason.as_deref().unwrap_or("")
            )),
        }
    }
    out
}

/// The changes a guardrail or an invoiced period held back, after a blank line; empty when none.
pub fn holds(plan: &Plan) -> String {
    let mut out = String::new();
    for line in &plan.lines {
        if let Action::Hold { from, to, reason } = &line.action {
            out.push_str(&format!(
                "held     {}: {from} → {to} not applied: {reason}\n",
                line.mapping
            ));
        }
    }
    if out.is_empty() {
        out
    } else {
        format!("\n{out}")
    }
}

/// One line per true-up attempted: what was written where, or why not.
pub fn true_up_outcomes(true_ups: &[HistoryTrueUp]) -> String {
    let mut out = String::new();
    for t in true_ups {
        let record = t
            .record
            .map_or_else(String::new, |r| format!(" (PSA record {r})"));
        out.push_str(&match (&t.outcome, &t.reason) {
            (LineOutcome::Applied, None) => format!(
                "true-up  {} {}: wrote {} once{record}\n",
                t.id, t.mapping, t.quantity
            ),
            (LineOutcome::Applied, Some(reason)) => {
                format!("true-up  {} {}: {reason}{record}\n", t.id, t.mapping)
            }
            (_, reason) => format!(
                "failed   true-up {} {}: {}\n",
                t.id,
                t.mapping,
                reason.as_deref().unwrap_or("not written")
            ),
        });
    }
    out
}
