//! Vendor usage sources: where the licence counts come from.
//!
//! Every source (a CSV export, a JSON file, an HTTP endpoint, a program's output) implements
//! [`UsageSource`] and yields [`UsageRecord`]s in input order, one per input row, never summed
//! (the plan engine adds up rows that repeat an account and licence type). A wrong number here is
//! a wrong invoice, so nothing is dropped, zeroed or guessed: a bad row is a [`SourceError`] that
//! names the file and row (or the record's JSON Pointer, the URL, the program) and says what to
//! fix.
//!
//! The rules every source applies to a record:
//! - `account` and `license_type` are required and must not be empty after trimming;
//! - `units` is required: a number or a numeric string, finite and not negative;
//! - `unit` is optional: empty, absent, `count`, `licenses`, `licences` or `seats` (any case, and
//!   their singulars) make the record a [`UnitKind::Count`], which must be whole; anything else
//!   (`GB`, `TB`, `hours`) makes it a [`UnitKind::Decimal`].

mod command;
mod csv;
mod http;
mod json;
mod storagecraft;

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use crate::config::{FieldNames, SourceSettings};
use crate::plan::{UnitKind, UsageRecord};
use crate::quantity::{Quantity, QuantityError};

pub use self::command::CommandUsageSource;
pub use self::csv::{CsvUsageSource, parse_csv};
pub use self::http::{EnvLookup, HttpUsageSource};
pub use self::json::{JsonDocument, JsonUsageSource, parse_json_records};
pub use self::storagecraft::{
    BILLED_AFTER_DAYS, StorageCraftUsageSource, active_days, is_billed, parse_billing_detail,
    parse_cloud_usage, parse_report_date,
};

/// A boxed, sendable future, so that [`UsageSource`] can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A place vendor usage comes from.
pub trait UsageSource: fmt::Debug + Send + Sync {
    /// A short description for logs, such as `CSV file ./usage.csv`. Never contains a secret.
    fn describe(&self) -> String;

    /// Reads every usage record, in input order.
    fn fetch(&self) -> BoxFuture<'_, Result<Vec<UsageRecord>, SourceError>>;
}

/// The source configured in `unitsync.yaml`. Paths in `settings` are relative to the billing
/// repo `root`; a command runs with `root` as its working directory.
pub fn from_settings(settings: &SourceSettings, root: &Path) -> Box<dyn UsageSource> {
    match settings {
        SourceSettings::Csv(s) => Box::new(CsvUsageSource::new(s.clone(), root)),
        SourceSettings::Json(s) => Box::new(JsonUsageSource::new(s.clone(), root)),
        SourceSettings::Http(s) => Box::new(HttpUsageSource::new(s.clone())),
        SourceSettings::Command(s) => Box::new(CommandUsageSource::new(s.clone(), root)),
        SourceSettings::Storagecraft(s) => Box::new(StorageCraftUsageSource::new(s.clone(), root)),
    }
}

/// Reads the vendor usage from the configured source.
pub async fn fetch_usage(
    settings: &SourceSettings,
    root: &Path,
) -> Result<Vec<UsageRecord>, SourceError> {
    let source = from_settings(settings, root);
    tracing::debug!(source = %source.describe(), "reading vendor usage");
    let records = source.fetch().await?;
    tracing::debug!(source = %source.describe(), records = records.len(), "read vendor usage");
    Ok(records)
}

/// Why vendor usage could not be read. Every variant names the place (file and row, record and
/// JSON Pointer, URL without credentials, program) and says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    #[error("{setting}: {problem}")]
    InvalidSettings { setting: String, problem: String },

    #[error("cannot read {}: {source}; check the source's `path` in unitsync.yaml", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot read {}: {source}; check {setting} in unitsync.yaml", path.display())]
    ReadReport {
        path: PathBuf,
        /// The setting that names the file, such as `source.storagecraft.billing_detail`.
        setting: &'static str,
        #[source]
        source: std::io::Error,
    },

    #[error("{}: the file is empty; it needs a header row naming the columns ({expected})", path.display())]
    CsvNoHeader { path: PathBuf, expected: String },

    #[error(
        "{}: no column named {column:?} for the {field}; the header has {}; rename the column or set source.csv.columns.{key}",
        path.display(),
        list_columns(found)
    )]
    CsvMissingColumn {
        path: PathBuf,
        /// What the column holds, such as `licence type`.
        field: Field,
        /// The configuration key, such as `license_type`.
        key: &'static str,
        column: String,
        found: Vec<String>,
    },

    #[error("{}:{line}: the header names column {column:?} {count} times; rename the copies so each column is unique", path.display())]
    CsvDuplicateColumn {
        path: PathBuf,
        line: u64,
        column: String,
        count: usize,
    },

    #[error("{}:{line}: {problem}", path.display())]
    CsvSyntax {
        path: PathBuf,
        line: u64,
        problem: String,
    },

    #[error(
        "{}: no column named {column:?} for the {what}; the header has {}; rename the column or set {setting}",
        path.display(),
        list_columns(found)
    )]
    ReportMissingColumn {
        path: PathBuf,
        /// What the column holds, such as `product key`.
        what: &'static str,
        /// The setting that names it, such as `source.storagecraft.columns.product_key`.
        setting: String,
        column: String,
        found: Vec<String>,
    },

    #[error("{}:{line}: {problem}", path.display())]
    ReportRow {
        path: PathBuf,
        /// The 1-based line number in the file where the row starts.
        line: u64,
        problem: String,
    },

    #[error("{}:{line}: {problem}", path.display())]
    Row {
        path: PathBuf,
        /// The 1-based line number in the file where the row starts.
        line: u64,
        problem: RecordProblem,
    },

    #[error("{origin}:{line}:{column}: not valid JSON: {problem}; {hint}")]
    JsonSyntax {
        origin: String,
        line: usize,
        column: usize,
        problem: String,
        hint: &'static str,
    },

    #[error("{origin}: {problem}")]
    JsonShape { origin: String, problem: String },

    #[error("{origin}: record at index {index} ({pointer}): {problem}")]
    Record {
        origin: String,
        /// The 0-based position in the records array.
        index: usize,
        /// JSON Pointer, within the whole document, to the offending value.
        pointer: String,
        problem: RecordProblem,
    },

    #[error(
        "environment variable {variable} is not set; it must hold the value of the {header} header for {url}"
    )]
    MissingEnv {
        variable: String,
        header: String,
        url: String,
    },

    #[error("GET {url} failed: {problem}")]
    Http { url: String, problem: String },

    #[error("GET {url} returned {status}{}; {hint}", excerpt(body))]
    HttpStatus {
        url: String,
        status: String,
        /// A short excerpt of the response body with secrets redacted, or empty.
        body: String,
        hint: &'static str,
    },

    #[error("cannot run `{program}`: {source}; {hint}")]
    CommandSpawn {
        program: String,
        #[source]
        source: std::io::Error,
        hint: &'static str,
    },

    #[error(
        "`{program}` did not finish within {seconds} s and was stopped; make it faster or raise source.command.timeout_seconds"
    )]
    CommandTimeout { program: String, seconds: u64 },

    #[error("`{program}` failed ({status}){}", stderr_part(stderr))]
    CommandFailed {
        program: String,
        /// `exit code 3`, or `killed by signal 9`.
        status: String,
        /// Exit code, when the program exited normally.
        code: Option<i32>,
        /// Its standard error, trimmed and truncated.
        stderr: String,
    },
}

impl SourceError {
    /// Whether the vendor's side failed (network, HTTP status, the program), as opposed to bad
    /// settings or bad data in the billing repo or the vendor's records. Decides the error class
    /// at the command-line edge.
    pub fn is_external(&self) -> bool {
        matches!(
            self,
            SourceError::Http { .. }
                | SourceError::HttpStatus { .. }
                | SourceError::CommandSpawn { .. }
                | SourceError::CommandTimeout { .. }
                | SourceError::CommandFailed { .. }
        )
    }
}

fn list_columns(found: &[String]) -> String {
    if found.is_empty() {
        "no columns".to_string()
    } else {
        found
            .iter()
            .map(|c| format!("{c:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn excerpt(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

fn stderr_part(stderr: &str) -> String {
    if stderr.is_empty() {
        "; it printed nothing on stderr".to_string()
    } else {
        format!(": {stderr}")
    }
}

/// What part of a usage record something is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Account,
    LicenseType,
    Units,
    Unit,
}

impl Field {
    /// The configured column or key name for this field.
    pub fn name(self, names: &FieldNames) -> &str {
        match self {
            Field::Account => &names.account,
            Field::LicenseType => &names.license_type,
            Field::Units => &names.units,
            Field::Unit => &names.unit,
        }
    }

    /// The `columns:` / `fields:` key that configures it.
    pub fn key(self) -> &'static str {
        match self {
            Field::Account => "account",
            Field::LicenseType => "license_type",
            Field::Units => "units",
            Field::Unit => "unit",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Account => "account",
            Field::LicenseType => "licence type",
            Field::Units => "units",
            Field::Unit => "unit",
        })
    }
}

/// Whether a field is a CSV column or a JSON field, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Noun {
    Column,
    Field,
}

impl fmt::Display for Noun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Noun::Column => "column",
            Noun::Field => "field",
        })
    }
}

/// What is wrong with one record. The [`SourceError`] around it says where the record is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordProblem {
    #[error("no {field}: the {noun} {name:?} is empty or missing; every record needs one")]
    Missing {
        field: Field,
        noun: Noun,
        name: String,
    },
    #[error("the {field} ({noun} {name:?}) must be {expected}, not {found}")]
    WrongType {
        field: Field,
        noun: Noun,
        name: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error(
        "units {value:?} ({noun} {name:?}) is not a number; write plain digits such as 4 or 135.5, without thousands separators or unit names"
    )]
    NotANumber {
        noun: Noun,
        name: String,
        value: String,
    },
    #[error(
        "units {value:?} ({noun} {name:?}) is not a finite number; the vendor must report a real count"
    )]
    NotFinite {
        noun: Noun,
        name: String,
        value: String,
    },
    #[error("units {value:?} ({noun} {name:?}) is too large")]
    TooLarge {
        noun: Noun,
        name: String,
        value: String,
    },
    #[error(
        "units {value} ({noun} {name:?}) is negative; a vendor cannot bill fewer than zero units, so fix the source data"
    )]
    Negative {
        noun: Noun,
        name: String,
        value: String,
    },
    #[error(
        "{units} units of a count; set the unit {noun} ({name:?}) to e.g. GB if this is a measured quantity"
    )]
    FractionalCount {
        /// The units as written.
        units: String,
        noun: Noun,
        name: String,
    },
    #[error(
        "the row has {found} cells but the header has {expected}; quote cells that contain the delimiter"
    )]
    CellCount { found: usize, expected: usize },
    #[error("the record is {found}, not an object with the usage fields")]
    NotAnObject { found: &'static str },
}

impl RecordProblem {
    /// The field the problem is about, if any (to point at it).
    pub fn field(&self) -> Option<Field> {
        match self {
            RecordProblem::Missing { field, .. } | RecordProblem::WrongType { field, .. } => {
                Some(*field)
            }
            RecordProblem::NotANumber { .. }
            | RecordProblem::NotFinite { .. }
            | RecordProblem::TooLarge { .. }
            | RecordProblem::Negative { .. } => Some(Field::Units),
            RecordProblem::FractionalCount { .. } => Some(Field::Units),
            RecordProblem::CellCount { .. } | RecordProblem::NotAnObject { .. } => None,
        }
    }
}

/// Text of one record's fields, before validation. `None` means absent (or JSON `null`).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RawRecord<'a> {
    pub account: Option<&'a str>,
    pub license_type: Option<&'a str>,
    pub units: Option<&'a str>,
    pub unit: Option<&'a str>,
}

/// Whether a `unit` value means whole licences.
pub fn unit_kind(unit: Option<&str>) -> UnitKind {
    let unit = unit.map(str::trim).unwrap_or("");
    const COUNT_WORDS: [&str; 8] = [
        "count", "licenses", "licences", "seats", "license", "licence", "seat", "",
    ];
    if COUNT_WORDS.iter().any(|w| unit.eq_ignore_ascii_case(w)) {
        UnitKind::Count
    } else {
        UnitKind::Decimal
    }
}

/// Applies the record rules shared by every source.
pub(crate) fn validate_record(
    raw: RawRecord<'_>,
    names: &FieldNames,
    noun: Noun,
) -> Result<UsageRecord, RecordProblem> {
    let required = |field: Field, value: Option<&str>| -> Result<String, RecordProblem> {
        match value.map(str::trim) {
            Some(text) if !text.is_empty() => Ok(text.to_string()),
            _ => Err(RecordProblem::Missing {
                field,
                noun,
                name: field.name(names).to_string(),
            }),
        }
    };
    let account = required(Field::Account, raw.account)?;
    let license_type = required(Field::LicenseType, raw.license_type)?;
    let units_text = required(Field::Units, raw.units)?;
    let name = || names.units.clone();
    let units: Quantity = units_text.parse().map_err(|e| match e {
        QuantityError::NotANumber(_) => RecordProblem::NotANumber {
            noun,
            name: name(),
            value: units_text.clone(),
        },
        QuantityError::NotFinite(_) => RecordProblem::NotFinite {
            noun,
            name: name(),
            value: units_text.clone(),
        },
        QuantityError::TooLarge(_) => RecordProblem::TooLarge {
            noun,
            name: name(),
            value: units_text.clone(),
        },
    })?;
    if units.is_negative() {
        return Err(RecordProblem::Negative {
            noun,
            name: name(),
            value: units_text,
        });
    }
    let kind = unit_kind(raw.unit);
    // Checked on the text too: Quantity keeps six decimals, so 4.0000001 would round to a whole 4.
    if kind == UnitKind::Count && !(units.is_whole() && is_integer_text(&units_text)) {
        return Err(RecordProblem::FractionalCount {
            units: units_text,
            noun,
            name: names.unit.clone(),
        });
    }
    Ok(UsageRecord {
        account,
        license_type,
        units,
        kind,
    })
}

/// Whether a number that parsed as a [`Quantity`] has no non-zero digit after the decimal point,
/// exponent applied (`4.00`, `1e3` and `2.5e1` do; `4.0000001` and `25e-1` do not).
fn is_integer_text(text: &str) -> bool {
    let unsigned = text.trim().trim_start_matches(['+', '-']);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (
            &unsigned[..at],
            unsigned[at + 1..].parse::<i64>().unwrap_or(0),
        ),
        None => (unsigned, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: Vec<u8> = int_part.bytes().chain(frac_part.bytes()).collect();
    // Digits from `point` on are after the decimal point.
    let point = (int_part.len() as i64).saturating_add(exponent).max(0);
    let point = usize::try_from(point)
        .unwrap_or(usize::MAX)
        .min(digits.len());
    digits[point..].iter().all(|&d| d == b'0')
}

/// Truncates `text` to at most `max` characters, saying how much was left out.
pub(crate) fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((at, _)) => format!("{}… ({} more bytes)", &text[..at], text.len() - at),
    }
}

/// Reads `path` off the async runtime's worker threads.
pub(crate) async fn read_file(path: PathBuf) -> Result<(PathBuf, Vec<u8>), SourceError> {
    tokio::task::spawn_blocking(move || match std::fs::read(&path) {
        Ok(bytes) => Ok((path, bytes)),
        Err(source) => Err(SourceError::ReadFile { path, source }),
    })
    .await
    .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw<'a>(units: &'a str, unit: Option<&'a str>) -> RawRecord<'a> {
        RawRecord {
            account: Some(" Bob's Dentistry "),
            license_type: Some("ShadowProtect Desktop"),
            units: Some(units),
            unit,
        }
    }

    fn check(units: &str, unit: Option<&str>) -> Result<UsageRecord, String> {
        validate_record(raw(units, unit), &FieldNames::default(), Noun::Column)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn counts_and_decimals() {
        let r = check(" 4 ", None).unwrap();
        assert_eq!(r.account, "Bob's Dentistry");
        assert_eq!(r.units, Quantity::from_units(4));
        assert_eq!(r.kind, UnitKind::Count);
        for word in [
            "", "count", "COUNT", "Licenses", "licences", "Seats", " seat ",
        ] {
            assert_eq!(
                check("4", Some(word)).unwrap().kind,
                UnitKind::Count,
                "{word}"
            );
        }
        for word in ["GB", "TB", "hours"] {
            let r = check("135.5", Some(word)).unwrap();
            assert_eq!(r.kind, UnitKind::Decimal);
            assert_eq!(r.units.to_string(), "135.5");
        }
        assert_eq!(check("4.0", Some("seats")).unwrap().units.to_string(), "4");
        assert_eq!(check("0", None).unwrap().units, Quantity::ZERO);
        assert_eq!(check("1e3", None).unwrap().units.to_string(), "1000");
        assert_eq!(check("2.5e1", None).unwrap().units.to_string(), "25");
        assert_eq!(check("4.000", None).unwrap().units.to_string(), "4");
    }

    #[test]
    fn bad_units() {
        assert_eq!(
            check("2.5", None).unwrap_err(),
            "2.5 units of a count; set the unit column (\"unit\") to e.g. GB if this is a measured quantity"
        );
        assert_eq!(
            check("-1", Some("GB")).unwrap_err(),
            "units -1 (column \"units\") is negative; a vendor cannot bill fewer than zero units, so fix the source data"
        );
        assert!(
            check("NaN", None)
                .unwrap_err()
                .contains("is not a finite number")
        );
        assert!(
            check("inf", None)
                .unwrap_err()
                .contains("is not a finite number")
        );
        assert!(
            check("1,000", None)
                .unwrap_err()
                .contains("is not a number")
        );
        assert!(
            check("   ", None)
                .unwrap_err()
                .starts_with("no units: the column \"units\" is empty or missing")
        );
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate_chars("héllo", 10), "héllo");
        assert_eq!(truncate_chars("héllo", 2), "hé… (3 more bytes)");
    }
}
