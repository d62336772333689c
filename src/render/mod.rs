//! Renderers: how a [`Plan`](crate::plan::Plan) and the lock file look to people and programs.
//!
//! - [`table`]: the terminal view of `unitsync plan` (aligned columns, optional colour).
//! - [`markdown`]: the pull-request body and job summary, escaped and kept under GitHub's
//!   65,536-character limit.
//! - [`json`] / [`parse_json`]: the stable machine format (`format_version` 2), read back by
//!   `apply --plan FILE`.
//! - [`status`]: the `unitsync status` dashboard (terminal, Markdown with Mermaid, static HTML).
//! - [`history`]: the `unitsync history` listing (terminal table, CSV, JSON) and its totals.
//! - [`snapshot_table`]: the active lines a PSA holds, as `unitsync demo` shows them.
//! - [`outcomes`] / [`holds`] / [`true_up_outcomes`]: what an apply did, line by line.
//! - [`lock_text`] / [`lock_diff`]: the canonical `units.lock.yaml` and its unified diff.
//! - [`true_ups_text`] / [`true_ups_markdown`]: `true-ups.yaml` entries `propose` adds, and the
//!   pull-request section that explains them.
//!
//! Every renderer is a pure function from values to a `String`; callers decide where it goes.

pub mod history;
mod json;
mod lock;
mod markdown;
mod outcomes;
mod snapshot;
pub mod status;
mod table;
mod true_ups;

pub use json::{FORMAT_VERSION, PlanFileError, json, parse_json};
pub use lock::{LOCK_HEADER, lock_diff, lock_text};
pub use markdown::{GITHUB_COMMENT_LIMIT, MarkdownOptions, escape_markdown, markdown};
pub use outcomes::{holds, outcomes, true_up_outcomes};
pub use snapshot::snapshot_table;
pub use table::{TableOptions, color_policy, table, use_color};
pub use true_ups::{
    TRUE_UPS_HEADER, explanation as true_up_explanation, true_ups_markdown, true_ups_text,
    true_ups_text_fresh,
};

use crate::config::UpdatePolicy;
use crate::plan::Action;
use crate::quantity::Quantity;

/// Vendor or PSA text for a terminal, shown rather than interpreted: control characters
/// (escape sequences, `\r`, line breaks, C1 controls) and bidirectional overrides become visible
/// escapes such as `\u{1b}`, `\r` and `\u{202e}`, so a name can neither move the cursor, clear
/// the screen, change colours, add a line, nor reorder what follows it.
pub fn terminal_text(text: &str) -> String {
    let shown_escaped = |c: char| c.is_control() || is_bidi_control(c);
    if !text.chars().any(shown_escaped) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else if is_bidi_control(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// Bidirectional embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069), which
/// reorder the text after them.
pub(crate) fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `+1`, `-2`, `+15.25`: the signed change from `from` to `to`.
fn signed_delta(from: Quantity, to: Quantity) -> String {
    let delta = to.saturating_sub(from);
    if delta.is_negative() {
        delta.to_string()
    } else {
        format!("+{delta}")
    }
}

/// A quantity, or `-` when there is none.
fn qty_or_dash(q: Option<Quantity>) -> String {
    q.map_or_else(|| "-".to_string(), |q| q.to_string())
}

/// Whether an action changes units upwards (`Some(true)`), downwards (`Some(false)`) or not at all.
fn direction(action: &Action) -> Option<bool> {
    match action {
        Action::Update { from, to } => Some(to > from),
        Action::Propose { from, to } => Some(from.is_none_or(|from| *to > from)),
        _ => None,
    }
}

/// The one-line description of an action used by the terminal table: `update 3 → 4 (+1)`,
/// `propose 4`, `in sync`, `drift: PSA 5, last applied 4`, `error: <reason>`, `held: 5 → 0: <reason>`.
fn action_text(action: &Action, update: UpdatePolicy) -> String {
    match action {
        Action::Update { from, to } => {
            let how = match update {
                UpdatePolicy::InPlace => "",
                UpdatePolicy::CancelAndReadd => ", cancel and re-add",
            };
            format!("update {from} → {to} ({}{how})", signed_delta(*from, *to))
        }
        Action::Propose {
            from: Some(from),
            to,
        } => format!("propose {from} → {to} ({})", signed_delta(*from, *to)),
        Action::Propose { from: None, to } => format!("propose {to}"),
        Action::InSync => "in sync".to_string(),
        Action::Drift { last_applied, psa } => {
            format!("drift: PSA {psa}, last applied {last_applied}")
        }
        Action::Error { reason } => format!("error: {reason}"),
        Action::Hold { from, to, reason } => format!("held: {from} → {to}: {reason}"),
    }
}

/// `2026-12-01`, or `2027-01-01 (moved)` when invoices moved the date from the settings' one.
fn effective_cell(line: &crate::plan::PlanLine) -> String {
    use crate::plan::EffectiveWhy;
    match &line.effective {
        None => "-".to_string(),
        Some(e) => match e.why {
            EffectiveWhy::Today | EffectiveWhy::Setting | EffectiveWhy::NextInvoice { .. } => {
                e.date.to_string()
            }
            EffectiveWhy::RolledForward { .. } => format!("{} (moved)", e.date),
            EffectiveWhy::InInvoicedPeriod { .. } => format!("{} (invoiced)", e.date),
        },
    }
}

/// Why each changed line's date is not the one its write would normally get (the settings' date,
/// or the next invoice for an undated in-place edit), as (mapping, `date: why`), in plan order.
fn moved_dates(plan: &crate::plan::Plan) -> Vec<(String, String)> {
    use crate::plan::EffectiveWhy;
    plan.lines
        .iter()
        .filter_map(|line| {
            let e = line.effective.as_ref()?;
            matches!(
                e.why,
                EffectiveWhy::RolledForward { .. } | EffectiveWhy::InInvoicedPeriod { .. }
            )
            .then(|| (line.mapping.clone(), format!("{}: {}", e.date, e.why)))
        })
        .collect()
}

/// `+$84.00` a month, or `-` for a line without a price or a change.
fn money_cell(line: &crate::plan::PlanLine, currency: &str) -> String {
    line.monthly_change()
        .map_or_else(|| "-".to_string(), |m| m.signed_text(currency))
}

/// Whether some change is an undated in-place edit billed from the next invoice.
fn has_next_invoice_dates(plan: &crate::plan::Plan) -> bool {
    plan.lines.iter().any(|l| {
        matches!(
            l.effective.as_ref().map(|e| &e.why),
            Some(crate::plan::EffectiveWhy::NextInvoice { .. })
        ) && matches!(
            l.action,
            crate::plan::Action::Update { .. } | crate::plan::Action::Propose { .. }
        )
    })
}

/// Whether any line carries an effective date, so the column is worth showing (a plan saved or
/// built without dates shows none).
fn has_dates(plan: &crate::plan::Plan) -> bool {
    plan.lines.iter().any(|l| l.effective.is_some())
}

/// Whether any line carries a price, so the money column is worth showing.
fn has_prices(plan: &crate::plan::Plan) -> bool {
    plan.lines.iter().any(|l| l.money.is_some())
}

/// `price $12.50 → $14.00, cost $6.00 → $7.00`: what an update also writes.
fn reprice_text(line: &crate::plan::PlanLine, currency: &str) -> Option<String> {
    let r = line.reprice?;
    let part = |name: &str, change: Option<crate::plan::PriceChange>| {
        change.map(|c| {
            let from = c
                .from
                .map_or_else(|| "(none)".to_string(), |m| m.text(currency));
            format!("{name} {from} → {}", c.to.text(currency))
        })
    };
    let parts: Vec<String> = [part("price", r.unit_price), part("cost", r.unit_cost)]
        .into_iter()
        .flatten()
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// The action as the table shows it: [`action_text`], with a price or cost it also writes; an
/// update of the price alone reads `reprice: …`.
fn line_action_text(line: &crate::plan::PlanLine, currency: &str) -> String {
    match (reprice_text(line, currency), &line.action) {
        (Some(prices), Action::Update { from, to }) if from == to => format!("reprice: {prices}"),
        (Some(prices), _) => format!("{}; {prices}", action_text(&line.action, line.update)),
        (None, _) => action_text(&line.action, line.update),
    }
}

/// `1 line` / `2 lines`.
fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        s.parse().unwrap()
    }

    #[test]
    fn terminal_text_shows_control_characters_and_bidi_overrides_escaped() {
        assert_eq!(
            terminal_text("a\x1b[2Jb\r\nc\u{9b}31m\u{202e}d\tе"),
            "a\\u{1b}[2Jb\\r\\nc\\u{9b}31m\\u{202e}d\\tе"
        );
        assert_eq!(terminal_text("Bob's Dentistry"), "Bob's Dentistry");
    }

    #[test]
    fn deltas_carry_their_sign() {
        assert_eq!(signed_delta(q("3"), q("4")), "+1");
        assert_eq!(signed_delta(q("5"), q("3")), "-2");
        assert_eq!(signed_delta(q("120.25"), q("135.5")), "+15.25");
    }

    #[test]
    fn action_texts() {
        let up = Action::Update {
            from: q("3"),
            to: q("4"),
        };
        assert_eq!(action_text(&up, UpdatePolicy::InPlace), "update 3 → 4 (+1)");
        assert_eq!(
            action_text(&up, UpdatePolicy::CancelAndReadd),
            "update 3 → 4 (+1, cancel and re-add)"
        );
        assert_eq!(
            action_text(
                &Action::Propose {
                    from: None,
                    to: q("4")
                },
                UpdatePolicy::InPlace
            ),
            "propose 4"
        );
        assert_eq!(
            action_text(
                &Action::Propose {
                    from: Some(q("5")),
                    to: q("4")
                },
                UpdatePolicy::InPlace
            ),
            "propose 5 → 4 (-1)"
        );
        assert_eq!(
            action_text(
                &Action::Drift {
                    last_applied: q("4"),
                    psa: q("5")
                },
                UpdatePolicy::InPlace
            ),
            "drift: PSA 5, last applied 4"
        );
    }
}
