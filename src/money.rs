//! Exact money amounts: unit prices and costs read from the PSA, and the revenue a change moves.
//!
//! Like [`Quantity`], an amount is fixed-point with six decimal places, so a unit price of
//! `4.125` times 12 units is exactly `49.5`, not a float that prints as `49.49999`. Amounts are
//! rounded to cents only when shown, half away from zero, the way invoices round.

use std::fmt;

use crate::quantity::{Quantity, QuantityError};

/// A money amount in the PSA's currency (six decimal places; negative for a decrease or credit).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(Quantity);

/// Millionths per currency unit.
const SCALE: i128 = 1_000_000;

impl Money {
    pub const ZERO: Money = Money(Quantity::ZERO);

    /// Converts a PSA's JSON number (`unitPrice`, `unitCost`).
    pub fn from_f64(value: f64) -> Result<Money, QuantityError> {
        Quantity::from_f64(value).map(Money)
    }

    /// The nearest `f64`, for wire formats.
    pub fn to_f64(self) -> f64 {
        self.0.to_f64()
    }

    pub fn is_zero(self) -> bool {
        self == Money::ZERO
    }

    pub fn is_negative(self) -> bool {
        self.0.is_negative()
    }

    /// `self` per unit times `units`: what a line of `units` at this unit price bills a period.
    /// `None` when it overflows (far beyond any invoice).
    pub fn times(self, units: Quantity) -> Option<Money> {
        let product = i128::from(self.0.micros()) * i128::from(units.micros());
        let micros = div_round(product, SCALE);
        i64::try_from(micros)
            .ok()
            .map(|m| Money(Quantity::from_micros(m)))
    }

    /// The amount for one month of a period `months` long (a quarterly price is a third a month).
    pub fn per_month(self, months: u32) -> Money {
        let micros = div_round(i128::from(self.0.micros()), i128::from(months.max(1)));
        Money(Quantity::from_micros(micros as i64))
    }

    /// `self − other` (saturating: far beyond any invoice).
    pub fn minus(self, other: Money) -> Money {
        Money(self.0.saturating_sub(other.0))
    }

    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }

    /// The amount in whole cents, rounded half away from zero.
    pub fn cents(self) -> i64 {
        div_round(i128::from(self.0.micros()), 10_000) as i64
    }

    /// `$84.00`, `-$12.50`, `€3.10`: two decimals and the currency's sign.
    pub fn text(self, currency: &str) -> String {
        self.formatted(currency, false)
    }

    /// Like [`Money::text`], with `+` in front of a positive amount: `+$84.00`.
    pub fn signed_text(self, currency: &str) -> String {
        self.formatted(currency, true)
    }

    fn formatted(self, currency: &str, plus: bool) -> String {
        let cents = self.cents();
        let sign = match (cents < 0, plus && cents > 0) {
            (true, _) => "-",
            (false, true) => "+",
            (false, false) => "",
        };
        let abs = cents.unsigned_abs();
        let whole = group_thousands(abs / 100);
        let (prefix, suffix) = currency_marks(currency);
        format!("{sign}{prefix}{whole}.{:02}{suffix}", abs % 100)
    }
}

/// Integer division rounding half away from zero.
pub(crate) fn div_round(n: i128, d: i128) -> i128 {
    let q = n / d;
    let r = n % d;
    if r.abs() * 2 >= d.abs() {
        q + n.signum() * d.signum()
    } else {
        q
    }
}

fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The sign written before (or the code written after) an amount in `currency` (ISO 4217).
fn currency_marks(currency: &str) -> (String, String) {
    let code = currency.trim().to_ascii_uppercase();
    let prefix = match code.as_str() {
        "USD" | "" => "$",
        "EUR" => "€",
        "GBP" => "£",
        "AUD" => "A$",
        "CAD" => "CA$",
        "NZD" => "NZ$",
        _ => return (String::new(), format!(" {code}")),
    };
    (prefix.to_string(), String::new())
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::str::FromStr for Money {
    type Err = QuantityError;
    fn from_str(text: &str) -> Result<Money, QuantityError> {
        text.parse().map(Money)
    }
}

impl serde::Serialize for Money {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Money {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Money, D::Error> {
        Quantity::deserialize(deserializer).map(Money)
    }
}

impl schemars::JsonSchema for Money {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Money".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "number",
            "description": "An amount in the PSA's currency, such as 4.25 (up to six decimal places)."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(text: &str) -> Money {
        text.parse().unwrap()
    }

    #[test]
    fn products_are_exact_and_shown_in_cents() {
        let q = |t: &str| t.parse::<Quantity>().unwrap();
        assert_eq!(m("4.125").times(q("12")).unwrap(), m("49.5"));
        assert_eq!(m("0.1").times(q("3")).unwrap().text("USD"), "$0.30");
        assert_eq!(m("21").times(q("4")).unwrap().signed_text("USD"), "+$84.00");
        assert_eq!(m("-12.5").signed_text("EUR"), "-€12.50");
        assert_eq!(m("1234567.891").text("GBP"), "£1,234,567.89");
        assert_eq!(m("3").text("CHF"), "3.00 CHF");
        assert_eq!(Money::ZERO.signed_text("USD"), "$0.00");
    }

    #[test]
    fn cents_round_half_away_from_zero() {
        assert_eq!(m("0.005").cents(), 1);
        assert_eq!(m("-0.005").cents(), -1);
        assert_eq!(m("0.004999").cents(), 0);
        assert_eq!(m("90").per_month(12), m("7.5"));
        assert_eq!(m("100").per_month(3), m("33.333333"));
    }
}
