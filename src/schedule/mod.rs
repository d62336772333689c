//! Schedules: `refresh` and `sync`, each `daily at HH:MM` or `monthly on day D at HH:MM` in an
//! IANA time zone, and `on-merge` for sync; and the one question the hourly Action asks: "is a run
//! due now?".
//!
//! GitHub's `schedule:` trigger runs in UTC, fires late, and sometimes not at all. So the Action
//! fires every hour and the binary decides, from the clock and the time of the last run, whether
//! the latest scheduled instant has been served yet:
//!
//! - due exactly when the latest scheduled instant at or before now ([`previous_occurrence`]) is
//!   later than the last run; so a late cron (02:47 for a 02:00 schedule) still runs, and runs
//!   once, because the run it records (02:47) covers the 02:00 instant;
//! - after a runner outage, the missed instants collapse into one run for the latest of them;
//! - never run before → due.
//!
//! Wall times are resolved in the schedule's time zone:
//!
//! - `monthly on day 29`, `30` or `31` runs on the last day of shorter months (day 31 runs on
//!   28 February, or the 29th in a leap year);
//! - a wall time that does not exist that day (the spring-forward gap, e.g. 02:30 in
//!   America/Los_Angeles on 2026-03-08) runs at the first instant after the gap (03:00 PDT). This
//!   is *not* jiff's `compatible` disambiguation, which shifts by the gap's length (to 03:30);
//! - a wall time that happens twice (the fall-back fold, e.g. 01:30 on 2026-11-01) runs once, at
//!   the earlier instant (01:30 PDT).
//!
//! The last run of each kind lives in a one-line marker file, `history/last-refresh` or
//! `history/last-sync` ([`last_run`], [`record_run`]), which the GitOps loop commits with the rest
//! of `history/`.

use std::fmt;
use std::path::{Path, PathBuf};

use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{Timestamp, ZonedDateTime};

use crate::config::HISTORY_DIR;

/// The forms a schedule may take, for error messages.
pub const ACCEPTED_FORMS: &str = "accepted forms: `daily at HH:MM`, `monthly on day D at HH:MM` \
     (D from 1 to 31, HH:MM on a 24-hour clock), and `on-merge` (sync only)";

/// When a kind of run happens, as written in `unitsync.yaml`'s `schedule:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cadence {
    /// `daily at HH:MM`.
    Daily { hour: u8, minute: u8 },
    /// `monthly on day D at HH:MM`; a `day` past the month's end means the month's last day.
    Monthly { day: u8, hour: u8, minute: u8 },
    /// `on-merge`: when the lock file's pull request is merged, not on a clock (sync only).
    OnMerge,
}

impl fmt::Display for Cadence {
    /// The canonical spelling, which [`parse`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Cadence::Daily { hour, minute } => write!(f, "daily at {hour:02}:{minute:02}"),
            Cadence::Monthly { day, hour, minute } => {
                write!(f, "monthly on day {day} at {hour:02}:{minute:02}")
            }
            Cadence::OnMerge => f.write_str("on-merge"),
        }
    }
}

/// The two kinds of scheduled run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum RunKind {
    /// Read vendor counts and propose them (`schedule.refresh`).
    Refresh,
    /// Apply approved counts to the PSA (`schedule.sync`).
    Sync,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Refresh => "refresh",
            RunKind::Sync => "sync",
        }
    }

    /// The marker file holding this kind's last run, relative to the billing repo's root.
    pub fn marker_path(self) -> PathBuf {
        Path::new(HISTORY_DIR).join(format!("last-{}", self.as_str()))
    }
}

impl fmt::Display for RunKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A schedule that does not follow the grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("schedule `{text}` is not understood; {ACCEPTED_FORMS}")]
    Unrecognised { text: String },
    #[error(
        "schedule `{text}`: `{time}` is not a time of day (HH:MM, hours 0 to 23, minutes 00 to 59); \
         {ACCEPTED_FORMS}"
    )]
    Time { text: String, time: String },
    #[error(
        "schedule `{text}`: day {day} is not a day of the month (1 to 31; days past a month's end \
         run on its last day); {ACCEPTED_FORMS}"
    )]
    Day { text: String, day: String },
    #[error(
        "schedule `on-merge` is only for sync: refresh needs a clock, `daily at HH:MM` or \
         `monthly on day D at HH:MM` (D from 1 to 31)"
    )]
    OnMergeForRefresh,
}

/// Reads a schedule: `daily at HH:MM`, `monthly on day D at HH:MM` or `on-merge`. The text must
/// match exactly (lower case, single spaces), as the JSON Schema's pattern does. `on-merge` is
/// accepted here whatever the kind; [`parse_for`] also rejects it for refresh.
pub fn parse(text: &str) -> Result<Cadence, ScheduleError> {
    if text == "on-merge" {
        return Ok(Cadence::OnMerge);
    }
    if let Some(time) = text.strip_prefix("daily at ") {
        let (hour, minute) = parse_time(text, time)?;
        return Ok(Cadence::Daily { hour, minute });
    }
    if let Some(rest) = text.strip_prefix("monthly on day ")
        && let Some((day, time)) = rest.split_once(" at ")
    {
        let day_number = digits(day, 1..=2)
            .filter(|d| (1..=31).contains(d))
            .ok_or_else(|| ScheduleError::Day {
                text: text.to_string(),
                day: day.to_string(),
            })?;
        let (hour, minute) = parse_time(text, time)?;
        return Ok(Cadence::Monthly {
            day: day_number,
            hour,
            minute,
        });
    }
    Err(ScheduleError::Unrecognised {
        text: text.to_string(),
    })
}

/// [`parse`] for one kind of run: `on-merge` is only for sync.
pub fn parse_for(kind: RunKind, text: &str) -> Result<Cadence, ScheduleError> {
    match parse(text)? {
        Cadence::OnMerge if kind == RunKind::Refresh => Err(ScheduleError::OnMergeForRefresh),
        cadence => Ok(cadence),
    }
}

/// `H:MM` or `HH:MM`, 0:00 to 23:59.
fn parse_time(text: &str, time: &str) -> Result<(u8, u8), ScheduleError> {
    let bad = || ScheduleError::Time {
        text: text.to_string(),
        time: time.to_string(),
    };
    let (hour, minute) = time.split_once(':').ok_or_else(bad)?;
    let hour = digits(hour, 1..=2).filter(|h| *h < 24).ok_or_else(bad)?;
    let minute = digits(minute, 2..=2).filter(|m| *m < 60).ok_or_else(bad)?;
    Ok((hour, minute))
}

/// An ASCII decimal number of a length in `len`.
fn digits(s: &str, len: std::ops::RangeInclusive<usize>) -> Option<u8> {
    if !len.contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The instant a wall time on `date` is run in `tz`: in a spring-forward gap, the first instant
/// after the gap; in a fall-back fold, the earlier of the two instants.
fn resolve(tz: &TimeZone, date: Date, hour: u8, minute: u8) -> Option<Timestamp> {
    let dt: DateTime = date.at(hour as i8, minute as i8, 0, 0);
    match tz.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(dt).ok(),
        AmbiguousOffset::Fold { before, .. } => before.to_timestamp(dt).ok(),
        AmbiguousOffset::Gap { after, .. } => {
            // Read with the offset in force after the gap, the wall time lands strictly before
            // the transition (it is earlier than the gap's end); the transition itself is the
            // first instant after the gap. (`preceding` from the other side would miss a wall time
            // right at the gap's start, such as 02:00, which lands exactly on the transition.)
            let before_gap = after.to_timestamp(dt).ok()?;
            tz.following(before_gap)
                .next()
                .map(|transition| transition.timestamp())
        }
    }
}

/// The day a monthly schedule runs in the month of `year`-`month`: `day`, or the month's last day
/// when the month is shorter.
fn monthly_date(year: i16, month: i8, day: u8) -> Option<Date> {
    let first = Date::new(year, month, 1).ok()?;
    let day = (day as i8).min(first.days_in_month());
    Date::new(year, month, day).ok()
}

fn add_months(year: i16, month: i8, delta: i32) -> (i16, i8) {
    let index = year as i32 * 12 + (month as i32 - 1) + delta;
    (
        index.div_euclid(12) as i16,
        (index.rem_euclid(12) + 1) as i8,
    )
}

/// The scheduled instants near `now`, in order: a few days (daily) or months (monthly) either
/// side of `now`'s local date. Resolution can move an instant by at most a day (a skipped
/// calendar day), so three periods each side always bracket `now`.
fn candidates(cadence: Cadence, tz: &TimeZone, now: Timestamp) -> Vec<Timestamp> {
    let today = tz.to_datetime(now).date();
    let mut out: Vec<Timestamp> = match cadence {
        Cadence::OnMerge => return Vec::new(),
        Cadence::Daily { hour, minute } => {
            let mut date = today;
            for _ in 0..3 {
                date = date.yesterday().unwrap_or(date);
            }
            let mut dates = vec![date];
            for _ in 0..6 {
                if let Ok(next) = date.tomorrow() {
                    date = next;
                    dates.push(date);
                }
            }
            dates
                .into_iter()
                .filter_map(|date| resolve(tz, date, hour, minute))
                .collect()
        }
        Cadence::Monthly { day, hour, minute } => (-3..=3)
            .map(|delta| add_months(today.year(), today.month(), delta))
            .filter_map(|(year, month)| monthly_date(year, month, day))
            .filter_map(|date| resolve(tz, date, hour, minute))
            .collect(),
    };
    out.sort();
    out.dedup();
    out
}

/// The latest scheduled instant at or before `now`; `None` for [`Cadence::OnMerge`].
pub fn previous_occurrence(cadence: Cadence, tz: &TimeZone, now: Timestamp) -> Option<Timestamp> {
    candidates(cadence, tz, now)
        .into_iter()
        .rev()
        .find(|t| *t <= now)
}

/// The earliest scheduled instant after `now`; `None` for [`Cadence::OnMerge`].
pub fn next_occurrence(cadence: Cadence, tz: &TimeZone, now: Timestamp) -> Option<Timestamp> {
    candidates(cadence, tz, now).into_iter().find(|t| *t > now)
}

/// Whether a run is due, and why. Times carry the schedule's time zone, so the explanation shows
/// them as the schedule is written.
#[derive(Debug, Clone, PartialEq)]
pub enum Due {
    /// The latest scheduled instant, `occurrence`, has not been run yet.
    Due {
        occurrence: ZonedDateTime,
        last_run: Option<ZonedDateTime>,
    },
    /// The last run already covers the latest scheduled instant (or there has been none yet).
    NotDue {
        next: ZonedDateTime,
        last_run: Option<ZonedDateTime>,
        occurrence: Option<ZonedDateTime>,
    },
    /// `on-merge`: the clock never makes this due; merging the pull request does.
    OnMerge,
}

impl Due {
    pub fn is_due(&self) -> bool {
        matches!(self, Due::Due { .. })
    }

    /// The explanation with the kind of run in front: `refresh is due: scheduled …`.
    pub fn explain(&self, kind: RunKind) -> impl fmt::Display + '_ {
        struct Explained<'a>(RunKind, &'a Due);
        impl fmt::Display for Explained<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{} {}", self.0, self.1)
            }
        }
        Explained(kind, self)
    }
}

/// `2026-11-25 02:00 PST`.
fn show(at: &ZonedDateTime) -> impl fmt::Display + '_ {
    at.strftime("%Y-%m-%d %H:%M %Z")
}

impl fmt::Display for Due {
    /// Reads after the kind of run: `is due: scheduled 2026-11-25 02:00 PST, last run 2026-11-24
    /// 02:03 PST`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Due::Due {
                occurrence,
                last_run,
            } => {
                write!(f, "is due: scheduled {}, ", show(occurrence))?;
                match last_run {
                    Some(last) => write!(f, "last run {}", show(last)),
                    None => f.write_str("never run before"),
                }
            }
            Due::NotDue {
                next,
                last_run,
                occurrence,
            } => {
                write!(f, "is not due: next {}", show(next))?;
                if let (Some(last), Some(occurrence)) = (last_run, occurrence) {
                    write!(f, "; last run {} covers {}", show(last), show(occurrence))?;
                } else if let Some(last) = last_run {
                    write!(f, "; last run {}", show(last))?;
                }
                Ok(())
            }
            Due::OnMerge => f.write_str(
                "is not due: it runs on merge (when the pull request is merged), not on the clock",
            ),
        }
    }
}

/// Whether a run of `cadence` is due at `now`, given the last run: due when the latest scheduled
/// instant at or before `now` is later than the last run, or there was no last run.
///
/// However late the hourly trigger fires and however many instants it missed, this is due once:
/// the run it records is later than every instant it covered.
pub fn is_due(cadence: Cadence, tz: &TimeZone, now: Timestamp, last_run: Option<Timestamp>) -> Due {
    if cadence == Cadence::OnMerge {
        return Due::OnMerge;
    }
    let zoned = |t: Timestamp| t.to_zoned_datetime(tz.clone());
    let occurrence = previous_occurrence(cadence, tz, now);
    match (occurrence, last_run) {
        (Some(occurrence), last) if last.is_none_or(|last| last < occurrence) => Due::Due {
            occurrence: zoned(occurrence),
            last_run: last.map(zoned),
        },
        (occurrence, last) => Due::NotDue {
            // Within a few days (daily) or months (monthly) there is always a next instant; fall
            // back to `now` only at the ends of jiff's calendar.
            next: zoned(next_occurrence(cadence, tz, now).unwrap_or(now)),
            last_run: last.map(zoned),
            occurrence: occurrence.map(zoned),
        },
    }
}

/// A marker file that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RunMarkerError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: `{text}` is not an RFC 3339 time ({message}); it should hold one line such as \
         `2026-11-25T10:00:00Z`: fix it, or delete it to run at the next hourly check"
    )]
    Parse {
        path: PathBuf,
        text: String,
        message: String,
    },
}

/// The last run of `kind`, from `history/last-<kind>` under `root`; `None` when it was never run.
pub fn last_run(root: &Path, kind: RunKind) -> Result<Option<Timestamp>, RunMarkerError> {
    let path = root.join(kind.marker_path());
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(RunMarkerError::Read { path, source }),
    };
    let line = text.trim();
    line.parse::<Timestamp>()
        .map(Some)
        .map_err(|e| RunMarkerError::Parse {
            path,
            text: line.to_string(),
            message: e.to_string(),
        })
}

/// Records `at` (to the second) as the last run of `kind` in `history/last-<kind>` under `root`,
/// atomically: a temporary file in the same directory, then a rename over the marker. Returns the
/// path written, relative to `root`.
pub fn record_run(root: &Path, kind: RunKind, at: Timestamp) -> Result<PathBuf, RunMarkerError> {
    let relative = kind.marker_path();
    let path = root.join(&relative);
    let dir = root.join(HISTORY_DIR);
    std::fs::create_dir_all(&dir).map_err(|source| RunMarkerError::Write {
        path: dir.clone(),
        source,
    })?;
    // Truncating to the second never makes a run look later than it was, so a covered instant
    // stays covered.
    let at = Timestamp::from_second(at.as_second()).unwrap_or(at);
    let temp = dir.join(format!(
        ".last-{}.{}.tmp",
        kind.as_str(),
        std::process::id()
    ));
    std::fs::write(&temp, format!("{at}\n")).map_err(|source| RunMarkerError::Write {
        path: temp.clone(),
        source,
    })?;
    std::fs::rename(&temp, &path).map_err(|source| {
        let _ = std::fs::remove_file(&temp);
        RunMarkerError::Write { path, source }
    })?;
    Ok(relative)
}

#[cfg(test)]
mod tests;

/// Where the number of distinct vendor accounts of the last successful run is kept.
pub const SOURCE_ACCOUNTS_MARKER: &str = "last-source-accounts";

/// The number in `history/last-source-accounts`, if there is a readable one. A missing or garbled
/// marker means "no previous run", so the guardrail that compares against it stays quiet.
pub fn last_source_accounts(root: &Path) -> Option<usize> {
    let text = std::fs::read_to_string(root.join(HISTORY_DIR).join(SOURCE_ACCOUNTS_MARKER)).ok()?;
    text.trim().parse().ok()
}

/// Records `accounts` in `history/last-source-accounts` under `root`, atomically (as
/// [`record_run`] does). Returns the path written, relative to `root`.
pub fn record_source_accounts(root: &Path, accounts: usize) -> Result<PathBuf, RunMarkerError> {
    let relative = Path::new(HISTORY_DIR).join(SOURCE_ACCOUNTS_MARKER);
    let path = root.join(&relative);
    let dir = root.join(HISTORY_DIR);
    std::fs::create_dir_all(&dir).map_err(|source| RunMarkerError::Write {
        path: dir.clone(),
        source,
    })?;
    let temp = dir.join(format!(
        ".{SOURCE_ACCOUNTS_MARKER}.{}.tmp",
        std::process::id()
    ));
    std::fs::write(&temp, format!("{accounts}\n")).map_err(|source| RunMarkerError::Write {
        path: temp.clone(),
        source,
    })?;
    std::fs::rename(&temp, &path).map_err(|source| {
        let _ = std::fs::remove_file(&temp);
        RunMarkerError::Write { path, source }
    })?;
    Ok(relative)
}
