//! True-ups: one-time corrections for the days an invoice billed the old count.
//!
//! A change whose date fell in a period the customer was already invoiced for bills from the
//! next period (`invoiced_period: roll-forward`, or a ConnectWise in-place edit, which the PSA
//! bills from its next invoice). The days from the day it was due to the day before it billed
//! went out at the old count. History records both dates; this works out, for each such change,
//! the one-time quantity that bills the difference for exactly those days, for a person to
//! approve. Nothing here is written anywhere: `propose` puts the result up for review.
//!
//! The quantity is in units of one billing period, because that is what a PSA line's price is
//! for: `(approved − billed) × share`, where the share is the days' part of a period, counted
//! per calendar month (29 days of a 31-day month are 29/31 of a month; a quarter is 3 months).
//! It is rounded to two decimals, half away from zero, once, at the end.

use std::collections::BTreeSet;

use jiff::civil::Date;

use super::BillingCycle;
use crate::config::TrueUp;
use crate::money::Money;
use crate::quantity::Quantity;

/// A change history says billed later than it was due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateChange {
    pub mapping: String,
    /// The day the change was due to bill from.
    pub due: Date,
    /// The day it billed from.
    pub effective: Date,
    /// The count the days in between were billed at.
    pub from: Quantity,
    /// The count they should have been billed at.
    pub to: Quantity,
}

/// What the PSA says about the line a true-up would be charged on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LineTerms {
    /// `None` when the PSA does not say; a month is assumed, and the proposal says so.
    pub cycle: Option<BillingCycle>,
    /// The price of one unit for one period, when known.
    pub unit_price: Option<Money>,
}

/// A true-up worked out for review, with what the pull request shows about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub entry: TrueUp,
    /// The period the quantity is a share of.
    pub cycle: BillingCycle,
    /// Whether `cycle` was assumed (the PSA gave none).
    pub cycle_assumed: bool,
    /// `entry.quantity` times the line's unit price, when the price is known.
    pub amount: Option<Money>,
}

/// The stable id of the true-up for `mapping`'s change due on `due` that billed from
/// `effective`: the same history always gives the same id, so a correction is never proposed,
/// or written, twice.
pub fn true_up_id(mapping: &str, due: Date, effective: Date) -> String {
    let hash = crate::stable_hash::fnv1a(format!("{mapping}\0{due}\0{effective}").as_bytes());
    format!("tu-{:08x}", hash as u32)
}

/// A common multiple of every month's length (28, 29, 30 and 31 days), so a sum of per-month
/// shares is an exact fraction over it.
const MONTH_LENGTHS_LCM: i128 = 377_580;

/// The share of one `cycle` period that the days `first..=last` make up, as an exact fraction
/// `numerator / denominator`. Empty (`0`) when `last` is before `first`.
pub fn period_share(first: Date, last: Date, cycle: BillingCycle) -> (i128, i128) {
    let mut numerator = 0i128;
    let mut day = first;
    while day <= last {
        let month_end = day.last_of_month();
        let until = month_end.min(last);
        let days = i128::from(until.day() - day.day() + 1);
        numerator += days * MONTH_LENGTHS_LCM / i128::from(day.days_in_month());
        match month_end.tomorrow() {
            Ok(next) => day = next,
            Err(_) => break,
        }
    }
    (numerator, MONTH_LENGTHS_LCM * i128::from(cycle.months()))
}

/// `units × share`, rounded to two decimals (half away from zero).
pub fn true_up_quantity(units: Quantity, (numerator, denominator): (i128, i128)) -> Quantity {
    // Micros → hundredths: one rounding, on the exact product.
    let hundredths =
        crate::money::div_round(i128::from(units.micros()) * numerator, denominator * 10_000);
    Quantity::from_micros(i64::try_from(hundredths * 10_000).unwrap_or(i64::MAX))
}

/// How far back a change may have started billing and still get a true-up proposed: about a
/// quarter. Turning `billing.true_ups` on must not put every moved change in years of history up
/// for billing at once; a correction older than that is a conversation with the customer, not a
/// line on the next invoice.
pub const LOOKBACK_DAYS: i64 = 92;

/// The changes of `late` that started billing on or after [`LOOKBACK_DAYS`] before `today` (or
/// will start later): the ones a true-up is still proposed for.
pub fn recent(late: Vec<LateChange>, today: Date) -> Vec<LateChange> {
    let cutoff = today
        .checked_sub(jiff::Span::new().days(LOOKBACK_DAYS))
        .unwrap_or(today);
    late.into_iter().filter(|c| c.effective >= cutoff).collect()
}

/// The true-ups `late` changes call for, leaving out the ids in `known` (already in
/// `true-ups.yaml`, written, or rejected) and changes whose line `terms` cannot find (a mapping
/// since removed: there is no line left to charge).
pub fn candidates(
    late: &[LateChange],
    known: &BTreeSet<String>,
    terms: impl Fn(&str) -> Option<LineTerms>,
) -> Vec<Candidate> {
    let mut seen = BTreeSet::new();
    late.iter()
        .filter(|c| c.due < c.effective && c.from != c.to)
        .filter_map(|c| {
            let id = true_up_id(&c.mapping, c.due, c.effective);
            if known.contains(&id) || !seen.insert(id.clone()) {
                return None;
            }
            let terms = terms(&c.mapping)?;
            let last_day = c.effective.yesterday().ok()?;
            let cycle = terms.cycle.unwrap_or(BillingCycle::Monthly);
            let units = c.to.checked_sub(c.from)?;
            let quantity = true_up_quantity(units, period_share(c.due, last_day, cycle));
            if quantity == Quantity::ZERO {
                return None;
            }
            Some(Candidate {
                amount: terms.unit_price.and_then(|p| p.times(quantity)),
                entry: TrueUp {
                    id,
                    mapping: c.mapping.clone(),
                    first_day: c.due,
                    last_day,
                    billed: c.from,
                    approved: c.to,
                    quantity,
                    decline: false,
                },
                cycle,
                cycle_assumed: terms.cycle.is_none(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn q(text: &str) -> Quantity {
        text.parse().unwrap()
    }

    fn late(due: Date, effective: Date, from: &str, to: &str) -> LateChange {
        LateChange {
            mapping: "bobs-dentistry/shadowprotect-desktop".into(),
            due,
            effective,
            from: q(from),
            to: q(to),
        }
    }

    fn monthly(price: &str) -> Option<LineTerms> {
        Some(LineTerms {
            cycle: Some(BillingCycle::Monthly),
            unit_price: Some(price.parse().unwrap()),
        })
    }

    #[test]
    fn only_changes_that_started_billing_in_the_last_quarter_are_proposed() {
        let today = date(2027, 6, 15);
        let kept = recent(
            vec![
                // Billed from 92 days ago: kept; 93 days ago: too old; next month: kept.
                late(date(2027, 3, 1), date(2027, 3, 15), "3", "5"),
                late(date(2027, 3, 1), date(2027, 3, 14), "3", "5"),
                late(date(2027, 6, 10), date(2027, 7, 1), "3", "5"),
            ],
            today,
        );
        assert_eq!(
            kept.iter().map(|c| c.effective).collect::<Vec<_>>(),
            [date(2027, 3, 15), date(2027, 7, 1)]
        );
    }

    #[test]
    fn the_days_of_a_month_are_its_share_and_round_once_at_the_end() {
        // Due 3 December, billed from 1 January: 29 of December's 31 days at 3 instead of 5.
        let found = candidates(
            &[late(date(2026, 12, 3), date(2027, 1, 1), "3", "5")],
            &BTreeSet::new(),
            |_| monthly("12.50"),
        );
        assert_eq!(found.len(), 1);
        let c = &found[0];
        assert_eq!(c.entry.first_day, date(2026, 12, 3));
        assert_eq!(c.entry.last_day, date(2026, 12, 31));
        // 2 × 29/31 = 1.870967… → 1.87.
        assert_eq!(c.entry.quantity, q("1.87"));
        // 1.87 × 12.50 = 23.375: the amount of what is charged, not of the unrounded share.
        assert_eq!(c.amount, Some("23.375".parse().unwrap()));
        assert_eq!(
            c.entry.id,
            true_up_id(&c.entry.mapping, c.entry.first_day, date(2027, 1, 1))
        );
        assert!(c.entry.id.starts_with("tu-") && c.entry.id.len() == 11);
    }

    #[test]
    fn a_decrease_is_a_credit_and_spans_months_day_by_day() {
        // 17 to 31 January (15 of 31 days) and all of February (28 of 28): 1 + 15/31 months.
        let share = period_share(date(2027, 1, 17), date(2027, 2, 28), BillingCycle::Monthly);
        let found = candidates(
            &[late(date(2027, 1, 17), date(2027, 3, 1), "10", "7")],
            &BTreeSet::new(),
            |_| monthly("2"),
        );
        // −3 × 46/31 = −4.451612… → −4.45.
        assert_eq!(found[0].entry.quantity, q("-4.45"));
        assert_eq!(true_up_quantity(q("31"), share), q("46"));
        assert_eq!(found[0].amount, Some("-8.9".parse().unwrap()));
    }

    #[test]
    fn a_quarterly_line_charges_a_share_of_a_quarter() {
        // A whole month of a quarterly line is a third of its period: 6 × 1/3 = 2.
        let found = candidates(
            &[late(date(2026, 12, 1), date(2027, 1, 1), "4", "10")],
            &BTreeSet::new(),
            |_| {
                Some(LineTerms {
                    cycle: Some(BillingCycle::Quarterly),
                    unit_price: None,
                })
            },
        );
        assert_eq!(found[0].entry.quantity, q("2"));
        assert_eq!(found[0].cycle, BillingCycle::Quarterly);
        assert!(!found[0].cycle_assumed);
        assert_eq!(found[0].amount, None);
    }

    #[test]
    fn an_unknown_cycle_is_taken_as_a_month_and_says_so() {
        let found = candidates(
            &[late(date(2026, 12, 1), date(2027, 1, 1), "1", "2")],
            &BTreeSet::new(),
            |_| Some(LineTerms::default()),
        );
        assert_eq!(found[0].entry.quantity, q("1"));
        assert!(found[0].cycle_assumed);
    }

    #[test]
    fn known_ids_on_time_changes_and_removed_mappings_propose_nothing() {
        let change = late(date(2026, 12, 3), date(2027, 1, 1), "3", "5");
        let id = true_up_id(&change.mapping, change.due, change.effective);
        let known = BTreeSet::from([id]);
        assert!(candidates(std::slice::from_ref(&change), &known, |_| monthly("1")).is_empty());
        // Billed from the day it was due: nothing was missed.
        let on_time = late(date(2027, 1, 1), date(2027, 1, 1), "3", "5");
        assert!(candidates(&[on_time], &BTreeSet::new(), |_| monthly("1")).is_empty());
        // The mapping is gone: no line to charge.
        assert!(candidates(std::slice::from_ref(&change), &BTreeSet::new(), |_| None).is_empty());
        // The same change recorded twice (a resumed run) is one true-up.
        assert_eq!(
            candidates(&[change.clone(), change], &BTreeSet::new(), |_| monthly(
                "1"
            ))
            .len(),
            1
        );
    }

    #[test]
    fn ids_are_stable_across_releases() {
        // Written into true-ups.yaml and PSA records: must never change.
        assert_eq!(
            true_up_id(
                "bobs-dentistry/shadowprotect-desktop",
                date(2026, 12, 3),
                date(2027, 1, 1)
            ),
            "tu-6b9cfcae"
        );
        assert_ne!(
            true_up_id("a/b", date(2026, 12, 3), date(2027, 1, 1)),
            true_up_id("a/b", date(2026, 12, 4), date(2027, 1, 1))
        );
    }
}
