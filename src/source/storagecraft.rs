//! `source.storagecraft`: the StorageCraft MSP portal's Billing Detail report and cloud usage
//! report, exported as CSV, counted for one billing month.
//!
//! **The billing rule.** The billing month runs from its first to its last day. A product key's
//! active days in the month are the days from its activation date (an active day) up to but not
//! including its deactivation date (not an active day); no deactivation date means it is still
//! active, and no activation date means it was never activated. A key is billed for the month when
//! it was active on MORE than [`BILLED_AFTER_DAYS`] (14) days of it. So in a 30-day month a key
//! activated on the 16th (15 days) is billed and one activated on the 17th (14 days) is not; a key
//! active since before the month and deactivated on the 15th (days 1–14) is not billed, one
//! deactivated on the 16th is.
//!
//! **Counting.** Each (account, key type) pair in the Billing Detail report becomes one
//! [`UnitKind::Count`] record: the number of distinct billed product keys, 0 when none is billed
//! (so a customer who stopped is billed 0, not left at last month's count). The key type is the
//! licence type (`ShadowProtect Desktop`, `ShadowProtect Server`, …). Sites are added into their
//! account. A key listed on several rows (per site, or deactivated and reactivated) is one key,
//! active on the union of its rows' days, and a warning names the rows; a key listed under two
//! accounts or key types is an error, because it cannot be billed twice.
//!
//! **Cloud usage.** Rows of the cloud usage report are summed per account and plan (or the fixed
//! `cloud_license_type`) into [`UnitKind::Decimal`] GB. When the report has a date column, only
//! rows dated in the billing month count; every pair in the report still yields a record.
//!
//! **Dates** are ISO (`2026-11-03`, `2026-11-03T09:13:31`, `2026-11-03 09:13`) or the portal's US
//! style (`11/3/2026`, `11/3/2026 9:13:31 AM`); slashed dates are always month/day/year. A time of
//! day is checked but ignored: the date as written is the day.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use jiff::civil::Date;

use super::csv::Table;
use super::{BoxFuture, SourceError, UsageSource, read_file};
use crate::config::{BillingDetailColumns, CloudUsageColumns, StorageCraftSource};
use crate::plan::{UnitKind, UsageRecord};
use crate::quantity::{Quantity, QuantityError};

/// A key must be active on more than this many days of the billing month to be billed.
pub const BILLED_AFTER_DAYS: u32 = 14;

/// Reads `source.storagecraft`: report paths relative to the billing repo.
#[derive(Debug, Clone)]
pub struct StorageCraftUsageSource {
    settings: StorageCraftSource,
    billing_detail: PathBuf,
    cloud_usage: Option<PathBuf>,
    today: Option<Date>,
}

impl StorageCraftUsageSource {
    pub fn new(settings: StorageCraftSource, root: &Path) -> StorageCraftUsageSource {
        let billing_detail = root.join(&settings.billing_detail);
        let cloud_usage = settings.cloud_usage.as_ref().map(|p| root.join(p));
        StorageCraftUsageSource {
            settings,
            billing_detail,
            cloud_usage,
            today: None,
        }
    }

    /// Uses `today` instead of today's date in UTC to resolve `previous` and `current`.
    pub fn with_today(mut self, today: Date) -> StorageCraftUsageSource {
        self.today = Some(today);
        self
    }

    /// The billing month as (year, month).
    pub fn billing_month(&self) -> (i16, i8) {
        let today = self
            .today
            .unwrap_or_else(|| crate::clock::today_in(&jiff::tz::TimeZone::UTC));
        self.settings.month.resolve(today)
    }
}

impl UsageSource for StorageCraftUsageSource {
    fn describe(&self) -> String {
        let (year, month) = self.billing_month();
        let mut text = format!(
            "StorageCraft Billing Detail report {}",
            self.billing_detail.display()
        );
        if let Some(cloud) = &self.cloud_usage {
            text.push_str(&format!(" and cloud usage report {}", cloud.display()));
        }
        text.push_str(&format!(" for {year:04}-{month:02}"));
        text
    }

    fn fetch(&self) -> BoxFuture<'_, Result<Vec<UsageRecord>, SourceError>> {
        Box::pin(async move {
            let (year, month) = self.billing_month();
            let (path, bytes) = read_report(
                self.billing_detail.clone(),
                "source.storagecraft.billing_detail",
            )
            .await?;
            let mut records =
                parse_billing_detail(&bytes, &path, &self.settings.columns, year, month)?;
            if let Some(cloud) = &self.cloud_usage {
                let (path, bytes) =
                    read_report(cloud.clone(), "source.storagecraft.cloud_usage").await?;
                records.extend(parse_cloud_usage(
                    &bytes,
                    &path,
                    &self.settings.cloud_columns,
                    self.settings.cloud_license_type.as_deref(),
                    year,
                    month,
                )?);
            }
            Ok(records)
        })
    }
}

/// Reads a report, naming the setting that names it when it cannot.
async fn read_report(
    path: PathBuf,
    setting: &'static str,
) -> Result<(PathBuf, Vec<u8>), SourceError> {
    read_file(path).await.map_err(|e| match e {
        SourceError::ReadFile { path, source } => SourceError::ReadReport {
            path,
            setting,
            source,
        },
        other => other,
    })
}

/// The first and last day of a month.
fn month_bounds(year: i16, month: i8) -> Result<(Date, Date), SourceError> {
    let first = Date::new(year, month, 1).map_err(|_| SourceError::InvalidSettings {
        setting: "source.storagecraft.month".into(),
        problem: format!("{year:04}-{month:02} is not a month"),
    })?;
    Ok((first, first.last_of_month()))
}

/// The days (bit `d - 1` for day `d`) of the month `first..=last` on which a key activated on
/// `activated` and deactivated on `deactivated` was active.
fn active_mask(activated: Option<Date>, deactivated: Option<Date>, first: Date, last: Date) -> u32 {
    let Some(activated) = activated else {
        return 0;
    };
    if activated > last {
        return 0;
    }
    let start = if activated < first {
        1
    } else {
        activated.day()
    };
    let end = match deactivated {
        None => last.day() + 1,
        Some(d) if d > last => last.day() + 1,
        Some(d) if d < first => return 0,
        Some(d) => d.day(),
    };
    (start..end).fold(0u32, |mask, day| mask | 1 << (day - 1))
}

/// How many days of the month `year`-`month` a key was active: from `activated` (counted) up to
/// `deactivated` (not counted; `None` = still active). `None` for `activated` = never activated.
pub fn active_days(
    activated: Option<Date>,
    deactivated: Option<Date>,
    year: i16,
    month: i8,
) -> u32 {
    match month_bounds(year, month) {
        Ok((first, last)) => active_mask(activated, deactivated, first, last).count_ones(),
        Err(_) => 0,
    }
}

/// Whether a key active on `days` days of the billing month is billed for it.
pub fn is_billed(days: u32) -> bool {
    days > BILLED_AFTER_DAYS
}

/// Reads a report date: `2026-11-03`, `11/3/2026` (month/day/year), either followed by a time of
/// day (`T09:13:31`, ` 09:13`, ` 9:13:31 AM`, with an optional `Z`) that is checked and ignored.
pub fn parse_report_date(text: &str) -> Option<Date> {
    let text = text.trim();
    let (date, time) = match text.find([' ', 'T']) {
        Some(at) => (&text[..at], Some(text[at + 1..].trim())),
        None => (text, None),
    };
    let number = |part: &str, min: usize, max: usize| -> Option<i16> {
        if part.len() < min || part.len() > max || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let parts: Vec<&str> = date.split(['-', '/']).collect();
    let (year, month, day) = match parts.as_slice() {
        [y, m, d] if date.contains('-') && !date.contains('/') => {
            (number(y, 4, 4)?, number(m, 1, 2)?, number(d, 1, 2)?)
        }
        [m, d, y] if date.contains('/') && !date.contains('-') => {
            (number(y, 4, 4)?, number(m, 1, 2)?, number(d, 1, 2)?)
        }
        _ => return None,
    };
    if let Some(time) = time
        && !is_time_of_day(time)
    {
        return None;
    }
    Date::new(year, i8::try_from(month).ok()?, i8::try_from(day).ok()?).ok()
}

/// `9:13`, `09:13:31`, `09:13:31.250`, `9:13:31 AM`, `09:13:31Z`.
fn is_time_of_day(text: &str) -> bool {
    let text = text.strip_suffix('Z').unwrap_or(text);
    let (clock, twelve_hour) = match text.rsplit_once(' ') {
        Some((clock, half))
            if half.eq_ignore_ascii_case("AM") || half.eq_ignore_ascii_case("PM") =>
        {
            (clock.trim(), true)
        }
        _ => (text, false),
    };
    let parts: Vec<&str> = clock.split(':').collect();
    if !(2..=3).contains(&parts.len()) {
        return false;
    }
    let field = |part: &str, max: u32| -> bool {
        (1..=2).contains(&part.len())
            && part.bytes().all(|b| b.is_ascii_digit())
            && part.parse::<u32>().is_ok_and(|n| n <= max)
    };
    let seconds_ok = match parts.get(2) {
        None => true,
        Some(s) => {
            let (whole, fraction) = s.split_once('.').unwrap_or((s, "0"));
            field(whole, 59) && !fraction.is_empty() && fraction.bytes().all(|b| b.is_ascii_digit())
        }
    };
    let hours_ok = if twelve_hour {
        field(parts[0], 12) && parts[0].parse::<u32>().is_ok_and(|h| h >= 1)
    } else {
        field(parts[0], 23)
    };
    hours_ok && parts[1].len() == 2 && field(parts[1], 59) && seconds_ok
}

/// Finds the columns of a report, with errors naming the file and the setting to change.
struct Columns<'a> {
    table: &'a Table,
    path: &'a Path,
    setting: &'static str,
}

impl Columns<'_> {
    /// The index of the column `name` (configured as `key`); `required` decides whether a missing
    /// column is an error or `None`.
    fn find(
        &self,
        what: &'static str,
        key: &str,
        name: &str,
        required: bool,
    ) -> Result<Option<usize>, SourceError> {
        let setting = format!("{}.{key}", self.setting);
        if name.trim().is_empty() {
            return Err(SourceError::InvalidSettings {
                setting,
                problem: "is empty; name the column that holds it".into(),
            });
        }
        match self.table.column(name) {
            Ok(Some(at)) => Ok(Some(at)),
            Ok(None) if !required => Ok(None),
            Ok(None) => Err(SourceError::ReportMissingColumn {
                path: self.path.to_path_buf(),
                what,
                setting,
                column: name.trim().to_string(),
                found: self.table.header.clone(),
            }),
            Err(count) => Err(SourceError::CsvDuplicateColumn {
                path: self.path.to_path_buf(),
                line: self.table.header_line,
                column: name.trim().to_string(),
                count,
            }),
        }
    }
}

fn read_table(bytes: &[u8], path: &Path, expected: &[&str]) -> Result<Table, SourceError> {
    Table::read(bytes, path)?.ok_or_else(|| SourceError::CsvNoHeader {
        path: path.to_path_buf(),
        expected: expected
            .iter()
            .map(|c| format!("{c:?}"))
            .collect::<Vec<_>>()
            .join(", "),
    })
}

fn row_error(path: &Path, line: u64, problem: String) -> SourceError {
    SourceError::ReportRow {
        path: path.to_path_buf(),
        line,
        problem,
    }
}

/// A required text cell, trimmed.
fn required_cell<'r>(
    row: &'r ::csv::StringRecord,
    at: usize,
    what: &str,
    column: &str,
    report: &str,
) -> Result<&'r str, String> {
    match row.get(at).map(str::trim) {
        Some(text) if !text.is_empty() => Ok(text),
        _ => Err(format!(
            "no {what}: the column {:?} is empty; every row of the {report} needs one",
            column.trim()
        )),
    }
}

/// An optional date cell: `None` when empty.
fn date_cell(
    row: &::csv::StringRecord,
    at: usize,
    what: &str,
    column: &str,
) -> Result<Option<Date>, String> {
    let text = row.get(at).map(str::trim).unwrap_or("");
    if text.is_empty() {
        return Ok(None);
    }
    parse_report_date(text).map(Some).ok_or_else(|| {
        format!(
            "{what} {text:?} (column {:?}) is not a date; write 2026-11-03 or 11/3/2026 (month/day/year), optionally followed by a time such as 9:13:31 AM",
            column.trim()
        )
    })
}

/// One distinct product key while counting.
struct Key {
    line: u64,
    pair: usize,
    days: u32,
}

/// Counts billed product keys per account and key type for the billing month `year`-`month`
/// (see the module documentation for the rule). `path` is only for messages.
pub fn parse_billing_detail(
    bytes: &[u8],
    path: &Path,
    columns: &BillingDetailColumns,
    year: i16,
    month: i8,
) -> Result<Vec<UsageRecord>, SourceError> {
    let (first, last) = month_bounds(year, month)?;
    let table = read_table(
        bytes,
        path,
        &[
            &columns.account,
            &columns.product_key,
            &columns.key_type,
            &columns.activated,
            &columns.deactivated,
        ],
    )?;
    let cols = Columns {
        table: &table,
        path,
        setting: "source.storagecraft.columns",
    };
    let account = cols
        .find("account", "account", &columns.account, true)?
        .unwrap_or_default();
    let site_required = columns.site != BillingDetailColumns::default().site;
    let site = cols.find("site", "site", &columns.site, site_required)?;
    let product_key = cols
        .find("product key", "product_key", &columns.product_key, true)?
        .unwrap_or_default();
    let key_type = cols
        .find("key type", "key_type", &columns.key_type, true)?
        .unwrap_or_default();
    let activated = cols
        .find("activation date", "activated", &columns.activated, true)?
        .unwrap_or_default();
    let deactivated = cols
        .find(
            "deactivation date",
            "deactivated",
            &columns.deactivated,
            true,
        )?
        .unwrap_or_default();

    const REPORT: &str = "Billing Detail report";
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut pair_index: HashMap<(String, String), usize> = HashMap::new();
    let mut keys: HashMap<String, Key> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    for (line, row) in &table.rows {
        let line = *line;
        let fail = |problem: String| row_error(path, line, problem);
        let account =
            required_cell(row, account, "account", &columns.account, REPORT).map_err(fail)?;
        let key_text = required_cell(
            row,
            product_key,
            "product key",
            &columns.product_key,
            REPORT,
        )
        .map_err(fail)?;
        let key_type =
            required_cell(row, key_type, "key type", &columns.key_type, REPORT).map_err(fail)?;
        let on = date_cell(row, activated, "activation date", &columns.activated).map_err(fail)?;
        let off =
            date_cell(row, deactivated, "deactivation date", &columns.deactivated).map_err(fail)?;
        match (on, off) {
            (Some(on), Some(off)) if off < on => {
                return Err(fail(format!(
                    "product key {key_text:?} is deactivated on {off} (column {:?}), before it was activated on {} (column {:?}); fix the dates in the report",
                    columns.deactivated.trim(),
                    on,
                    columns.activated.trim()
                )));
            }
            (None, Some(off)) => {
                return Err(fail(format!(
                    "product key {key_text:?} has a deactivation date ({off}) but no activation date (column {:?}); fix the dates in the report",
                    columns.activated.trim()
                )));
            }
            _ => {}
        }
        let pair_key = (account.to_string(), key_type.to_string());
        let pair = match pair_index.get(&pair_key) {
            Some(&at) => at,
            None => {
                pairs.push(pair_key.clone());
                pair_index.insert(pair_key, pairs.len() - 1);
                pairs.len() - 1
            }
        };
        let days = active_mask(on, off, first, last);
        let id = key_text.to_uppercase();
        match keys.get_mut(&id) {
            Some(known) if known.pair != pair => {
                let (other_account, other_type) = &pairs[known.pair];
                return Err(fail(format!(
                    "product key {key_text:?} is listed for {account:?} ({key_type}) here and for {other_account:?} ({other_type}) on line {}; a key belongs to one account and key type, so fix the report",
                    known.line
                )));
            }
            Some(known) => {
                tracing::warn!(
                    file = %path.display(),
                    line,
                    first_line = known.line,
                    site = site.and_then(|s| row.get(s)).map(str::trim).unwrap_or(""),
                    "product key {key_text:?} is listed again; counted once"
                );
                known.days |= days;
            }
            None => {
                keys.insert(id.clone(), Key { line, pair, days });
                order.push(id);
            }
        }
    }

    let mut counts = vec![0i64; pairs.len()];
    for id in &order {
        let key = &keys[id];
        if is_billed(key.days.count_ones()) {
            counts[key.pair] += 1;
        }
    }
    Ok(pairs
        .into_iter()
        .zip(counts)
        .map(|((account, license_type), count)| UsageRecord {
            account,
            license_type,
            units: Quantity::from_units(count),
            kind: UnitKind::Count,
        })
        .collect())
}

/// Sums cloud usage (GB) per account and plan (or `fixed_license_type`) for the billing month
/// `year`-`month`. `path` is only for messages.
pub fn parse_cloud_usage(
    bytes: &[u8],
    path: &Path,
    columns: &CloudUsageColumns,
    fixed_license_type: Option<&str>,
    year: i16,
    month: i8,
) -> Result<Vec<UsageRecord>, SourceError> {
    let (first, last) = month_bounds(year, month)?;
    let fixed_license_type = fixed_license_type.map(str::trim);
    if fixed_license_type == Some("") {
        return Err(SourceError::InvalidSettings {
            setting: "source.storagecraft.cloud_license_type".into(),
            problem: "is empty; name the licence type, such as Cloud Premium GB, or remove it to read the plan column".into(),
        });
    }
    let mut expected = vec![columns.account.as_str()];
    if fixed_license_type.is_none() {
        expected.push(&columns.plan);
    }
    expected.push(&columns.usage_gb);
    let table = read_table(bytes, path, &expected)?;
    let cols = Columns {
        table: &table,
        path,
        setting: "source.storagecraft.cloud_columns",
    };
    let account = cols
        .find("account", "account", &columns.account, true)?
        .unwrap_or_default();
    let plan = match fixed_license_type {
        Some(_) => None,
        None => cols.find("plan", "plan", &columns.plan, true)?,
    };
    let usage = cols
        .find("usage in GB", "usage_gb", &columns.usage_gb, true)?
        .unwrap_or_default();
    let date_required = columns.date != CloudUsageColumns::default().date;
    let date = cols.find("date", "date", &columns.date, date_required)?;

    const REPORT: &str = "cloud usage report";
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut sums: Vec<Quantity> = Vec::new();
    let mut pair_index: HashMap<(String, String), usize> = HashMap::new();
    for (line, row) in &table.rows {
        let fail = |problem: String| row_error(path, *line, problem);
        let account =
            required_cell(row, account, "account", &columns.account, REPORT).map_err(fail)?;
        let license_type = match (fixed_license_type, plan) {
            (Some(fixed), _) => fixed,
            (None, Some(at)) => {
                required_cell(row, at, "plan", &columns.plan, REPORT).map_err(fail)?
            }
            (None, None) => unreachable!("the plan column is required without cloud_license_type"),
        };
        let text = required_cell(row, usage, "usage", &columns.usage_gb, REPORT).map_err(fail)?;
        let name = columns.usage_gb.trim();
        let gb: Quantity = text.parse().map_err(|e| {
            fail(match e {
                QuantityError::NotANumber(_) => format!(
                    "usage {text:?} (column {name:?}) is not a number; write plain digits such as 135.5, without thousands separators or unit names"
                ),
                QuantityError::NotFinite(_) => format!(
                    "usage {text:?} (column {name:?}) is not a finite number; the report must hold real usage"
                ),
                QuantityError::TooLarge(_) => format!("usage {text:?} (column {name:?}) is too large"),
            })
        })?;
        if gb.is_negative() {
            return Err(fail(format!(
                "usage {text} GB (column {name:?}) is negative; usage cannot be below zero, so fix the report"
            )));
        }
        let pair_key = (account.to_string(), license_type.to_string());
        let pair = match pair_index.get(&pair_key) {
            Some(&at) => at,
            None => {
                pairs.push(pair_key.clone());
                sums.push(Quantity::ZERO);
                pair_index.insert(pair_key, pairs.len() - 1);
                pairs.len() - 1
            }
        };
        if let Some(at) = date {
            let day = date_cell(row, at, "date", &columns.date).map_err(fail)?;
            match day {
                None => {
                    return Err(fail(format!(
                        "no date: the column {:?} is empty; every row of the {REPORT} needs one when the report has that column",
                        columns.date.trim()
                    )));
                }
                Some(day) if day < first || day > last => continue,
                Some(_) => {}
            }
        }
        sums[pair] = sums[pair].checked_add(gb).ok_or_else(|| {
            fail(format!(
                "the usage of {:?} ({}) adds up to more than unitsync can hold",
                pairs[pair].0, pairs[pair].1
            ))
        })?;
    }
    Ok(pairs
        .into_iter()
        .zip(sums)
        .map(|((account, license_type), units)| UsageRecord {
            account,
            license_type,
            units,
            kind: UnitKind::Decimal,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Date {
        text.parse().unwrap()
    }

    fn days(on: Option<&str>, off: Option<&str>, year: i16, month: i8) -> u32 {
        active_days(on.map(d), off.map(d), year, month)
    }

    #[test]
    fn activation_day_counts_and_deactivation_day_does_not() {
        // Active the whole month, before and after.
        assert_eq!(days(Some("2026-01-15"), None, 2026, 11), 30);
        assert_eq!(days(Some("2026-01-15"), Some("2027-01-01"), 2026, 10), 31);
        // Activated on the 17th of a 31-day month: 17..=31 = 15 days, billed.
        assert_eq!(days(Some("2026-10-17"), None, 2026, 10), 15);
        assert!(is_billed(15));
        // Activated on the 18th: 14 days, not billed.
        assert_eq!(days(Some("2026-10-18"), None, 2026, 10), 14);
        assert!(!is_billed(14));
        // Deactivated on the 15th after being active all month: days 1..=14.
        assert_eq!(days(Some("2025-06-01"), Some("2026-11-15"), 2026, 11), 14);
        assert_eq!(days(Some("2025-06-01"), Some("2026-11-16"), 2026, 11), 15);
        // Activated and deactivated on the same day: never active.
        assert_eq!(days(Some("2026-11-05"), Some("2026-11-05"), 2026, 11), 0);
        // Deactivated on the 1st: not active in that month.
        assert_eq!(days(Some("2026-10-01"), Some("2026-11-01"), 2026, 11), 0);
        assert_eq!(days(Some("2026-10-01"), Some("2026-11-01"), 2026, 10), 31);
        // Outside the month either way, or never activated.
        assert_eq!(days(Some("2026-12-01"), None, 2026, 11), 0);
        assert_eq!(days(Some("2026-01-01"), Some("2026-03-01"), 2026, 11), 0);
        assert_eq!(days(None, None, 2026, 11), 0);
    }

    #[test]
    fn february() {
        // 28 days in 2026: activated on the 14th is 15 days (billed), on the 15th 14 days.
        assert_eq!(days(Some("2026-02-14"), None, 2026, 2), 15);
        assert_eq!(days(Some("2026-02-15"), None, 2026, 2), 14);
        // 29 days in 2028: the 15th gives 15 days.
        assert_eq!(days(Some("2028-02-15"), None, 2028, 2), 15);
        assert_eq!(days(Some("2028-02-16"), None, 2028, 2), 14);
        assert_eq!(days(Some("2027-12-01"), None, 2028, 2), 29);
    }

    #[test]
    fn report_dates() {
        for (text, expected) in [
            ("2026-11-03", "2026-11-03"),
            ("11/3/2026", "2026-11-03"),
            ("11/03/2026", "2026-11-03"),
            ("11/3/2026 9:13:31 AM", "2026-11-03"),
            ("11/3/2026 11:59:59 pm", "2026-11-03"),
            ("2026-11-03T09:13:31", "2026-11-03"),
            ("2026-11-03T09:13:31.5Z", "2026-11-03"),
            ("2026-11-03 21:13", "2026-11-03"),
            (" 2/29/2028 ", "2028-02-29"),
        ] {
            assert_eq!(parse_report_date(text), Some(d(expected)), "{text}");
        }
        for text in [
            "",
            "3.11.2026",
            "2026/11/03",
            "13/3/2026",
            "2/29/2026",
            "11/3/26",
            "2026-11-03 25:00",
            "11/3/2026 0:10 AM",
            "11/3/2026 9:13:31 XM",
            "2026-11",
            "Nov 3, 2026",
        ] {
            assert_eq!(parse_report_date(text), None, "{text}");
        }
    }
}
