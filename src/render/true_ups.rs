//! `true-ups.yaml` as `propose` writes it, and the pull-request section that explains it.
//!
//! The file is for people first: each entry `propose` adds carries a comment that says, in
//! words, which days were billed what and what the correction charges, so a reviewer reads the
//! diff rather than recomputing it. Entries already in the file are left byte for byte as they
//! are (a reviewer's `decline: true` or edited quantity included).

use crate::plan::BillingCycle;
use crate::plan::true_up::Candidate;

use super::escape_markdown;
use super::lock::yaml_key;

/// The comment lines at the top of a `true-ups.yaml` unitsync creates.
pub const TRUE_UPS_HEADER: &str = "\
# yaml-language-server: $schema=schema/true-ups.schema.json
# true-ups.yaml — one-time corrections for days an invoice billed the old count.
# `unitsync propose` adds entries; merging its pull request approves them, and
# `unitsync apply --gitops` writes each one to the PSA once. Set `decline: true` on an entry to
# refuse it (it is kept, so it is never proposed again); change `quantity` to charge another amount.
";

/// `existing` (the file on the default branch, if any) with `new` appended.
///
/// `existing_is_empty` says the file holds no entries, so it is written afresh rather than
/// appended to (`true_ups: []` cannot take a block entry after it).
pub fn true_ups_text(
    existing: Option<&str>,
    existing_is_empty: bool,
    new: &[Candidate],
    currency: &str,
) -> String {
    let mut out = match existing {
        Some(text) if !existing_is_empty => {
            let mut text = text.to_string();
            if !text.ends_with('\n') {
                text.push('\n');
            }
            text
        }
        _ => format!("{TRUE_UPS_HEADER}true_ups:\n"),
    };
    for c in new {
        out.push_str(&entry_text(c, currency));
    }
    out
}

/// Every entry in `entries`, written afresh: for a file whose layout cannot be appended to.
pub fn true_ups_text_fresh(entries: &[crate::config::TrueUp]) -> String {
    let mut out = format!("{TRUE_UPS_HEADER}true_ups:\n");
    for e in entries {
        out.push_str(&fields_text(e));
    }
    out
}

fn entry_text(c: &Candidate, currency: &str) -> String {
    let e = &c.entry;
    let mut out = format!("  # {}\n", explanation(c, currency));
    out.push_str(&fields_text(e));
    out
}

fn fields_text(e: &crate::config::TrueUp) -> String {
    let mut out = format!(
        "  - id: {}\n    mapping: {}\n    first_day: {}\n    last_day: {}\n    billed: {}\n    approved: {}\n    quantity: {}\n",
        e.id,
        yaml_key(&e.mapping),
        e.first_day,
        e.last_day,
        e.billed,
        e.approved,
        e.quantity
    );
    if e.decline {
        out.push_str("    decline: true\n");
    }
    out
}

/// `29 days (2026-12-03 to 2026-12-31) billed 3 instead of 5: +1.87 of a monthly period at
/// $12.50 = +$23.38`.
pub fn explanation(c: &Candidate, currency: &str) -> String {
    let e = &c.entry;
    let days = days_between(e.first_day, e.last_day);
    let mut text = format!(
        "{days} day{} ({} to {}) billed {} instead of {}: {}{} of a {} period{}",
        if days == 1 { "" } else { "s" },
        e.first_day,
        e.last_day,
        e.billed,
        e.approved,
        if e.quantity.is_negative() { "" } else { "+" },
        e.quantity,
        cycle_word(c.cycle),
        if c.cycle_assumed {
            " (the PSA gives no billing cycle; monthly assumed)"
        } else {
            ""
        }
    );
    if let Some(amount) = c.amount {
        text.push_str(&format!(" = {}", amount.signed_text(currency)));
    }
    text
}

/// The pull-request section listing the true-ups this proposal adds; empty when there are none.
pub fn true_ups_markdown(new: &[Candidate], currency: &str) -> String {
    if new.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "### One-time corrections (true-ups)\n\n\
         These days were invoiced at the old count because the change reached the PSA after their \
         period was invoiced. Merging adds each correction below to `true-ups.yaml`, and `apply --gitops` \
         charges it once on the next invoice (a negative quantity credits). To refuse one, set \
         `decline: true` on its entry in `true-ups.yaml` on this branch; to charge another amount, \
         change its `quantity`.\n\n\
         | True-up | Mapping | Days | Billed → approved | Quantity | Amount |\n\
         |---|---|---|---|---:|---:|\n",
    );
    for c in new {
        let e = &c.entry;
        let days = days_between(e.first_day, e.last_day);
        out.push_str(&format!(
            "| `{}` | {} | {} to {} ({} day{}) | {} → {} | {}{}{} | {} |\n",
            e.id,
            escape_markdown(&e.mapping),
            e.first_day,
            e.last_day,
            days,
            if days == 1 { "" } else { "s" },
            e.billed,
            e.approved,
            if e.quantity.is_negative() { "" } else { "+" },
            e.quantity,
            if c.cycle_assumed {
                " (monthly assumed)"
            } else {
                ""
            },
            c.amount
                .map_or_else(|| "price unknown".to_string(), |a| a.signed_text(currency)),
        ));
    }
    out.push('\n');
    out
}

fn days_between(first: jiff::civil::Date, last: jiff::civil::Date) -> i32 {
    (last - first).get_days() + 1
}

fn cycle_word(cycle: BillingCycle) -> &'static str {
    match cycle {
        BillingCycle::Monthly => "monthly",
        BillingCycle::Quarterly => "quarterly",
        BillingCycle::SemiAnnual => "semi-annual",
        BillingCycle::Annual => "annual",
    }
}
