//! The one place unitsync reads the time of day.
//!
//! Billing is all dates: "first of next month" for an effective date, the StorageCraft report of
//! the previous month, which Autotask billing period holds today, when a schedule is due, which
//! history folder a record goes to, when a run lock expires. Every one of them asks [`now`] (or
//! [`today_in`]), so that one setting moves them all together.
//!
//! That setting is the environment variable `UNITSYNC_NOW`, for tests and for rehearsing a month
//! end: `2026-11-30T23:59:00Z` (an RFC 3339 instant) or `2026-11-30` (noon UTC that day, which is
//! the same date in every time zone from UTC−11 to UTC+11). While it is set, the clock stands
//! still at that instant for the whole process: two runs under the same pin produce the same
//! dates and the same history file names (the history writer numbers records of the same second,
//! `…Z-2.yaml`), and no output depends on how long a run took. Durations — retry waits, time-outs,
//! progress redraws — are measured with [`std::time::Instant`], which the pin does not touch.
//!
//! The variable is read once, on first use. `unitsync` checks it before running any command
//! ([`check_env`]), so a malformed value is an error rather than a silent fall-back to the real
//! clock.

use std::sync::OnceLock;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

/// The environment variable that pins the clock.
pub const ENV_NOW: &str = "UNITSYNC_NOW";

/// `UNITSYNC_NOW` could not be read as a date or an instant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{ENV_NOW}=`{value}` is neither an RFC 3339 instant (2026-11-30T23:59:00Z) nor a date \
     (2026-11-30): {reason}; unset it to use the real clock"
)]
pub struct ClockError {
    pub value: String,
    pub reason: String,
}

fn pinned() -> &'static Result<Option<Timestamp>, ClockError> {
    static PINNED: OnceLock<Result<Option<Timestamp>, ClockError>> = OnceLock::new();
    PINNED.get_or_init(|| match std::env::var(ENV_NOW) {
        Ok(value) if !value.trim().is_empty() => parse(&value).map(Some),
        _ => Ok(None),
    })
}

/// Reads `value` as `UNITSYNC_NOW` does.
pub fn parse(value: &str) -> Result<Timestamp, ClockError> {
    let text = value.trim();
    let error = |reason: String| ClockError {
        value: value.to_string(),
        reason,
    };
    if text.len() == 10 {
        let date: Date = text
            .parse()
            .map_err(|e: jiff::Error| error(e.to_string()))?;
        return date
            .at(12, 0, 0, 0)
            .to_zoned_datetime(TimeZone::UTC)
            .map(|z| z.timestamp())
            .map_err(|e| error(e.to_string()));
    }
    text.parse::<Timestamp>().map_err(|e| error(e.to_string()))
}

/// Fails when `UNITSYNC_NOW` is set but malformed; the instant it pins, if any.
pub fn check_env() -> Result<Option<Timestamp>, ClockError> {
    pinned().clone()
}

/// The current instant: the pinned one while `UNITSYNC_NOW` is set, else the system's.
pub fn now() -> Timestamp {
    match pinned() {
        Ok(Some(at)) => *at,
        _ => Timestamp::now(),
    }
}

/// Today's date in `tz`.
pub fn today_in(tz: &TimeZone) -> Date {
    now().to_zoned_datetime(tz.clone()).date()
}

/// [`now`] as a [`std::time::SystemTime`], for libraries that take one (an e-mail's Date header).
pub fn now_system_time() -> std::time::SystemTime {
    let since_epoch = now().as_duration();
    let magnitude = since_epoch.unsigned_abs();
    if since_epoch.is_negative() {
        std::time::UNIX_EPOCH - magnitude
    } else {
        std::time::UNIX_EPOCH + magnitude
    }
}

/// 64 bits that differ between runs and between calls, for names that must never repeat (a
/// pinned clock repeats its instant, so time alone cannot make a name unique).
pub fn unique_bits() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(CALLS.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_pins_noon_utc_and_an_instant_pins_itself() {
        assert_eq!(
            parse("2028-02-29").unwrap().to_string(),
            "2028-02-29T12:00:00Z"
        );
        assert_eq!(
            parse(" 2026-12-31T23:59:30Z ").unwrap().to_string(),
            "2026-12-31T23:59:30Z"
        );
        assert_eq!(
            parse("2026-11-30T18:00:00-05:00").unwrap().to_string(),
            "2026-11-30T23:00:00Z"
        );
    }

    #[test]
    fn a_malformed_value_names_the_variable_and_both_forms() {
        let err = parse("2027-02-29").unwrap_err();
        assert_eq!(err.value, "2027-02-29");
        let text = err.to_string();
        assert!(
            text.starts_with("UNITSYNC_NOW=`2027-02-29` is neither"),
            "{text}"
        );
        assert!(text.contains("unset it"), "{text}");
        assert!(parse("yesterday").is_err());
        assert!(parse("2026-11-30 12:00").is_err());
    }

    #[test]
    fn unique_bits_differ_between_calls() {
        let a: std::collections::HashSet<u64> = (0..1000).map(|_| unique_bits()).collect();
        assert_eq!(a.len(), 1000);
    }
}
