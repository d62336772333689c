//! Exact unit quantities.
//!
//! Unit counts end up on invoices, so they are never carried as binary floating point: `0.1 + 0.2`
//! must not become `0.30000000000000004` GB on a customer's bill. A [`Quantity`] is a fixed-point
//! number with six decimal places, which covers whole licence counts and storage measured in GB
//! alike. Values with more decimals are rounded half away from zero at the sixth place, far below
//! anything a PSA shows on an invoice line.

use std::fmt;
use std::str::FromStr;

/// Number of fixed-point steps per unit (six decimal places).
const SCALE: i64 = 1_000_000;

/// An exact, non-negative-or-negative fixed-point quantity with six decimal places.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Quantity(i64);

/// Why a text or number could not be read as a [`Quantity`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("{0:?} is not a number")]
    NotANumber(String),
    #[error("{0} is not a finite number")]
    NotFinite(String),
    #[error("{0} is too large")]
    TooLarge(String),
}

impl Quantity {
    pub const ZERO: Quantity = Quantity(0);

    /// A whole number of units.
    pub const fn from_units(units: i64) -> Quantity {
        Quantity(units * SCALE)
    }

    /// The raw fixed-point value, in millionths of a unit.
    pub const fn micros(self) -> i64 {
        self.0
    }

    pub const fn from_micros(micros: i64) -> Quantity {
        Quantity(micros)
    }

    pub fn is_whole(self) -> bool {
        self.0 % SCALE == 0
    }

    pub fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// The whole number of units, when the quantity has no fractional part.
    pub fn as_whole(self) -> Option<i64> {
        self.is_whole().then_some(self.0 / SCALE)
    }

    pub fn checked_add(self, other: Quantity) -> Option<Quantity> {
        self.0.checked_add(other.0).map(Quantity)
    }

    pub fn checked_sub(self, other: Quantity) -> Option<Quantity> {
        self.0.checked_sub(other.0).map(Quantity)
    }

    /// Saturating difference `self - other`, used for summaries where overflow cannot matter.
    pub fn saturating_sub(self, other: Quantity) -> Quantity {
        Quantity(self.0.saturating_sub(other.0))
    }

    pub fn saturating_add(self, other: Quantity) -> Quantity {
        Quantity(self.0.saturating_add(other.0))
    }

    pub fn abs(self) -> Quantity {
        Quantity(self.0.saturating_abs())
    }

    /// Converts a JSON/YAML float. The float's shortest round-trip text is parsed, so `135.5`
    /// stays exactly `135.5` rather than inheriting binary noise.
    pub fn from_f64(value: f64) -> Result<Quantity, QuantityError> {
        if !value.is_finite() {
            return Err(QuantityError::NotFinite(value.to_string()));
        }
        format!("{value}").parse()
    }

    /// The nearest `f64`, for wire formats (ConnectWise's `quantity` is a JSON number).
    pub fn to_f64(self) -> f64 {
        // Formatting then parsing yields the float closest to the decimal value.
        self.to_string().parse().unwrap_or(0.0)
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(text: &str) -> Result<Quantity, QuantityError> {
        let trimmed = text.trim();
        let bad = || QuantityError::NotANumber(text.to_string());
        let lower = trimmed.to_ascii_lowercase();
        if matches!(
            lower.trim_start_matches(['+', '-']),
            "nan" | "inf" | "infinity"
        ) {
            return Err(QuantityError::NotFinite(trimmed.to_string()));
        }
        let (negative, rest) = match trimmed.as_bytes().first() {
            Some(b'-') => (true, &trimmed[1..]),
            Some(b'+') => (false, &trimmed[1..]),
            _ => (false, trimmed),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(at) => (
                &rest[..at],
                rest[at + 1..].parse::<i32>().map_err(|_| bad())?,
            ),
            None => (rest, 0),
        };
        let (int_part, frac_part) = match mantissa.split_once('.') {
            Some((i, f)) => (i, f),
            None => (mantissa, ""),
        };
        if (int_part.is_empty() && frac_part.is_empty())
            || !int_part.bytes().all(|b| b.is_ascii_digit())
            || !frac_part.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        // All digits as one integer, with the decimal point `point` places from the right.
        let digits: String = format!("{int_part}{frac_part}");
        let digits = digits.trim_start_matches('0');
        let point = frac_part.len() as i64 - exponent as i64;
        let too_large = || QuantityError::TooLarge(trimmed.to_string());
        // Shift so that the value is expressed in millionths, keeping one extra digit to round.
        let shift = 6 - point; // digits * 10^shift = micros
        let micros: i128 = if digits.is_empty() {
            0
        } else if shift >= 0 {
            if digits.len() as i64 + shift > 30 {
                return Err(too_large());
            }
            let base: i128 = digits.parse().map_err(|_| too_large())?;
            base.checked_mul(10i128.pow(shift as u32))
                .ok_or_else(too_large)?
        } else {
            let cut = (-shift) as usize;
            if cut > digits.len() {
                // Everything is below a millionth; it may still round up to one.
                let first_dropped = if cut == digits.len() {
                    digits.as_bytes()[0] - b'0'
                } else {
                    0
                };
                i128::from(first_dropped >= 5)
            } else {
                let (kept, dropped) = digits.split_at(digits.len() - cut);
                if kept.len() > 30 {
                    return Err(too_large());
                }
                let kept: i128 = if kept.is_empty() {
                    0
                } else {
                    kept.parse().map_err(|_| too_large())?
                };
                kept + i128::from(dropped.as_bytes()[0] >= b'5')
            }
        };
        let micros = if negative { -micros } else { micros };
        i64::try_from(micros).map(Quantity).map_err(|_| too_large())
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let whole = abs / SCALE as u64;
        let frac = abs % SCALE as u64;
        if frac == 0 {
            write!(f, "{sign}{whole}")
        } else {
            let frac = format!("{frac:06}");
            write!(f, "{sign}{whole}.{}", frac.trim_end_matches('0'))
        }
    }
}

impl fmt::Debug for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Quantity {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.as_whole() {
            Some(whole) => serializer.serialize_i64(whole),
            None => serializer.serialize_f64(self.to_f64()),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Quantity {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Quantity, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Quantity;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of units, such as 4 or 135.5")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Quantity, E> {
                v.checked_mul(SCALE)
                    .map(Quantity)
                    .ok_or_else(|| E::custom(QuantityError::TooLarge(v.to_string())))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Quantity, E> {
                i64::try_from(v)
                    .ok()
                    .and_then(|v| v.checked_mul(SCALE))
                    .map(Quantity)
                    .ok_or_else(|| E::custom(QuantityError::TooLarge(v.to_string())))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Quantity, E> {
                Quantity::from_f64(v).map_err(E::custom)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Quantity, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl schemars::JsonSchema for Quantity {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Quantity".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "number",
            "description": "A number of units: a whole count of licences, or a decimal quantity such as GB (up to six decimal places)."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> Quantity {
        text.parse().unwrap()
    }

    #[test]
    fn parses_and_prints_exactly() {
        assert_eq!(q("4").to_string(), "4");
        assert_eq!(q("135.5").to_string(), "135.5");
        assert_eq!(q("135.50").to_string(), "135.5");
        assert_eq!(q("0.000001").to_string(), "0.000001");
        assert_eq!(q("-2").to_string(), "-2");
        assert_eq!(q("1e3").to_string(), "1000");
        assert_eq!(q("1.5E-2").to_string(), "0.015");
        assert_eq!(q(".5").to_string(), "0.5");
        assert_eq!(q("007").to_string(), "7");
    }

    #[test]
    fn rounds_beyond_six_decimals_half_away_from_zero() {
        assert_eq!(q("0.0000005").to_string(), "0.000001");
        assert_eq!(q("0.0000004").to_string(), "0");
        assert_eq!(q("2.1234565").to_string(), "2.123457");
        assert_eq!(q("-2.1234565").to_string(), "-2.123457");
    }

    #[test]
    fn floats_do_not_leak_binary_noise() {
        assert_eq!(Quantity::from_f64(0.1 + 0.2).unwrap().to_string(), "0.3");
        assert_eq!(Quantity::from_f64(135.5).unwrap(), q("135.5"));
        assert_eq!(q("135.5").to_f64(), 135.5);
    }

    #[test]
    fn rejects_non_numbers() {
        for bad in ["", "abc", "1.2.3", "NaN", "-inf", "1,5", "12a", "."] {
            assert!(bad.parse::<Quantity>().is_err(), "{bad:?} parsed");
        }
        assert!(matches!(
            "99999999999999999999".parse::<Quantity>(),
            Err(QuantityError::TooLarge(_))
        ));
    }
}
