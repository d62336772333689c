//! A CSV export with a header row and one row per account and licence type.

use std::path::{Path, PathBuf};

use super::{
    BoxFuture, Field, Noun, RawRecord, RecordProblem, SourceError, UsageSource, read_file,
    validate_record,
};
use crate::config::{CsvSource, FieldNames};
use crate::plan::UsageRecord;

/// Reads `source.csv`: `path` relative to the billing repo, configurable `columns` and
/// `delimiter`.
#[derive(Debug, Clone)]
pub struct CsvUsageSource {
    settings: CsvSource,
    path: PathBuf,
}

impl CsvUsageSource {
    pub fn new(settings: CsvSource, root: &Path) -> CsvUsageSource {
        let path = root.join(&settings.path);
        CsvUsageSource { settings, path }
    }

    /// The file read, as named in errors.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn delimiter(&self) -> Result<u8, SourceError> {
        match self.settings.delimiter {
            None => Ok(b','),
            Some(c) if c.is_ascii() && c != '"' && c != '\n' && c != '\r' => Ok(c as u8),
            Some(c) => Err(SourceError::InvalidSettings {
                setting: "source.csv.delimiter".into(),
                problem: format!(
                    "{c:?} cannot separate CSV fields; use a single ASCII character such as , ; or a tab"
                ),
            }),
        }
    }
}

impl UsageSource for CsvUsageSource {
    fn describe(&self) -> String {
        format!("CSV file {}", self.path.display())
    }

    fn fetch(&self) -> BoxFuture<'_, Result<Vec<UsageRecord>, SourceError>> {
        Box::pin(async move {
            let delimiter = self.delimiter()?;
            let (path, bytes) = read_file(self.path.clone()).await?;
            parse_csv(&bytes, &path, &self.settings.columns, delimiter)
        })
    }
}

/// Parses CSV text (`path` is only for messages). A UTF-8 byte-order mark is skipped; cells are
/// trimmed; rows whose cells are all empty are skipped; every other row becomes one record.
pub fn parse_csv(
    bytes: &[u8],
    path: &Path,
    columns: &FieldNames,
    delimiter: u8,
) -> Result<Vec<UsageRecord>, SourceError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(bytes);
    let mut rows = reader.records();
    let mut lines = LineCounter::new(bytes);

    let syntax = |err: ::csv::Error, lines: &mut LineCounter<'_>| {
        let line = lines.line_at(err.position().map_or(0, |p| p.byte()));
        let problem = match err.kind() {
            ::csv::ErrorKind::Utf8 { .. } => {
                "the row is not valid UTF-8; save the file as UTF-8 (\"CSV UTF-8\" in Excel)"
                    .to_string()
            }
            _ => format!("cannot read the row: {err}"),
        };
        SourceError::CsvSyntax {
            path: path.to_path_buf(),
            line,
            problem,
        }
    };

    // The header is the first row that is not blank.
    let header = loop {
        match rows.next() {
            None => {
                return Err(SourceError::CsvNoHeader {
                    path: path.to_path_buf(),
                    expected: [&columns.account, &columns.license_type, &columns.units]
                        .iter()
                        .map(|c| format!("{c:?}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            Some(row) => {
                let row = row.map_err(|e| syntax(e, &mut lines))?;
                if !is_blank(&row) {
                    break row;
                }
            }
        }
    };
    let header_line = lines.line_at(header.position().map_or(0, |p| p.byte()));
    let found: Vec<String> = header.iter().map(|c| c.trim().to_string()).collect();

    let find = |field: Field, required: bool| -> Result<Option<usize>, SourceError> {
        let name = field.name(columns).trim();
        if name.is_empty() {
            return Err(SourceError::InvalidSettings {
                setting: format!("source.csv.columns.{}", field.key()),
                problem: "is empty; name the column that holds it".into(),
            });
        }
        let exact: Vec<usize> = (0..found.len()).filter(|&i| found[i] == name).collect();
        let matches = if exact.is_empty() {
            (0..found.len())
                .filter(|&i| found[i].eq_ignore_ascii_case(name))
                .collect()
        } else {
            exact
        };
        match matches.as_slice() {
            [one] => Ok(Some(*one)),
            [] if !required => Ok(None),
            [] => Err(SourceError::CsvMissingColumn {
                path: path.to_path_buf(),
                field,
                key: field.key(),
                column: name.to_string(),
                found: found.clone(),
            }),
            many => Err(SourceError::CsvDuplicateColumn {
                path: path.to_path_buf(),
                line: header_line,
                column: found[many[0]].clone(),
                count: many.len(),
            }),
        }
    };
    let account = find(Field::Account, true)?.unwrap_or_default();
    let license_type = find(Field::LicenseType, true)?.unwrap_or_default();
    let units = find(Field::Units, true)?.unwrap_or_default();
    // The unit column is optional, unless the settings name one explicitly.
    let unit_required = columns.unit != FieldNames::default().unit;
    let unit = find(Field::Unit, unit_required)?;

    let mut records = Vec::new();
    for row in rows {
        let row = row.map_err(|e| syntax(e, &mut lines))?;
        if is_blank(&row) {
            continue;
        }
        let line = lines.line_at(row.position().map_or(0, |p| p.byte()));
        let located = |problem: RecordProblem| SourceError::Row {
            path: path.to_path_buf(),
            line,
            problem,
        };
        if row.len() != found.len() {
            return Err(located(RecordProblem::CellCount {
                found: row.len(),
                expected: found.len(),
            }));
        }
        let raw = RawRecord {
            account: row.get(account),
            license_type: row.get(license_type),
            units: row.get(units),
            unit: unit.and_then(|i| row.get(i)),
        };
        records.push(validate_record(raw, columns, Noun::Column).map_err(located)?);
    }
    Ok(records)
}

/// A CSV report read as text: the trimmed header cells and every non-blank row with the 1-based
/// line it starts on. For sources that interpret the columns themselves (StorageCraft reports).
#[derive(Debug)]
pub(crate) struct Table {
    pub header: Vec<String>,
    pub header_line: u64,
    pub rows: Vec<(u64, ::csv::StringRecord)>,
}

impl Table {
    /// Reads `bytes` (`path` is only for messages). `None` when the file has no header row. Skips
    /// a UTF-8 byte-order mark and blank rows; a row with a different number of cells than the
    /// header is an error.
    pub(crate) fn read(bytes: &[u8], path: &Path) -> Result<Option<Table>, SourceError> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let mut reader = ::csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(bytes);
        let mut lines = LineCounter::new(bytes);
        let mut header: Option<(u64, Vec<String>)> = None;
        let mut rows = Vec::new();
        for row in reader.records() {
            let row = row.map_err(|err| {
                let line = lines.line_at(err.position().map_or(0, |p| p.byte()));
                let problem = match err.kind() {
                    ::csv::ErrorKind::Utf8 { .. } => {
                        "the row is not valid UTF-8; save the file as UTF-8 (\"CSV UTF-8\" in Excel)"
                            .to_string()
                    }
                    _ => format!("cannot read the row: {err}"),
                };
                SourceError::CsvSyntax {
                    path: path.to_path_buf(),
                    line,
                    problem,
                }
            })?;
            if is_blank(&row) {
                continue;
            }
            let line = lines.line_at(row.position().map_or(0, |p| p.byte()));
            match &header {
                None => header = Some((line, row.iter().map(|c| c.trim().to_string()).collect())),
                Some((_, cells)) => {
                    if row.len() != cells.len() {
                        return Err(SourceError::Row {
                            path: path.to_path_buf(),
                            line,
                            problem: RecordProblem::CellCount {
                                found: row.len(),
                                expected: cells.len(),
                            },
                        });
                    }
                    rows.push((line, row));
                }
            }
        }
        Ok(header.map(|(header_line, header)| Table {
            header,
            header_line,
            rows,
        }))
    }

    /// The index of the column called `name`: an exact match, else the one case-insensitive match.
    /// `Ok(None)` when there is none; `Err` with the count when several match.
    pub(crate) fn column(&self, name: &str) -> Result<Option<usize>, usize> {
        let name = name.trim();
        let exact: Vec<usize> = (0..self.header.len())
            .filter(|&i| self.header[i] == name)
            .collect();
        let matches = if exact.is_empty() {
            (0..self.header.len())
                .filter(|&i| self.header[i].eq_ignore_ascii_case(name))
                .collect()
        } else {
            exact
        };
        match matches.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(*one)),
            many => Err(many.len()),
        }
    }
}

/// 1-based line numbers from the byte offsets the csv crate reports. Its own line numbers miss
/// blank lines and CRLF endings, and its offsets point just past the previous record's first
/// terminator byte, so line breaks are skipped before counting. Offsets only grow, so counting is
/// incremental.
struct LineCounter<'a> {
    bytes: &'a [u8],
    offset: usize,
    line: u64,
}

impl<'a> LineCounter<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        LineCounter {
            bytes,
            offset: 0,
            line: 1,
        }
    }

    fn line_at(&mut self, byte: u64) -> u64 {
        let mut at = usize::try_from(byte)
            .unwrap_or(usize::MAX)
            .min(self.bytes.len());
        while at < self.bytes.len() && matches!(self.bytes[at], b'\r' | b'\n') {
            at += 1;
        }
        if at < self.offset {
            // Not expected; count from the start rather than guess.
            self.offset = 0;
            self.line = 1;
        }
        self.line += self.bytes[self.offset..at]
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u64;
        self.offset = at;
        self.line
    }
}

fn is_blank(row: &::csv::StringRecord) -> bool {
    row.iter().all(|cell| cell.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::UnitKind;

    fn parse(text: &str) -> Result<Vec<UsageRecord>, String> {
        parse_csv(
            text.as_bytes(),
            Path::new("usage.csv"),
            &FieldNames::default(),
            b',',
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn reads_rows_in_order_with_bom_blank_lines_and_trimming() {
        let records = parse(
            "\u{feff}account,license_type,units,unit\n\n  Bob's Dentistry , ShadowProtect Desktop , 4 ,\n,,,\n\"DigitalTorch, Inc\",Cloud,135.5,GB\nBob's Dentistry,ShadowProtect Desktop,1,seats\n",
        )
        .unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].account, "Bob's Dentistry");
        assert_eq!(records[0].license_type, "ShadowProtect Desktop");
        assert_eq!(records[0].units.to_string(), "4");
        assert_eq!(records[0].kind, UnitKind::Count);
        assert_eq!(records[1].account, "DigitalTorch, Inc");
        assert_eq!(records[1].kind, UnitKind::Decimal);
        assert_eq!(records[2].units.to_string(), "1");
    }

    #[test]
    fn line_numbers_count_blank_lines_and_quoted_newlines() {
        let err =
            parse("account,license_type,units\n\n\"Bob\nDentistry\",SP,1\nBob,SP,x\n").unwrap_err();
        assert!(err.starts_with("usage.csv:5: units \"x\""), "{err}");
    }

    #[test]
    fn line_numbers_survive_crlf_and_blank_lines_after_empty_cells() {
        let err =
            parse("account,license_type,units,unit\r\nG,S,1,\r\n\r\n\r\nX,SP,-1,\r\n").unwrap_err();
        assert!(err.starts_with("usage.csv:5: units -1"), "{err}");
        let err = parse("account,license_type,units,unit\nG,S,1,\n\nX,SP,-1,\n").unwrap_err();
        assert!(err.starts_with("usage.csv:4: units -1"), "{err}");
        let err = parse("\n\naccount,license_type,units\nX,SP,-1\n").unwrap_err();
        assert!(err.starts_with("usage.csv:4: units -1"), "{err}");
    }

    #[test]
    fn header_matching_is_case_insensitive_when_unambiguous() {
        let records = parse("Account,License_Type,Units\nBob,SP,2\n").unwrap();
        assert_eq!(records[0].units.to_string(), "2");
    }

    #[test]
    fn explicitly_named_unit_column_must_exist() {
        let columns = FieldNames {
            unit: "Measure".into(),
            ..FieldNames::default()
        };
        let err = parse_csv(
            b"account,license_type,units\nBob,SP,2\n",
            Path::new("usage.csv"),
            &columns,
            b',',
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "usage.csv: no column named \"Measure\" for the unit; the header has \"account\", \"license_type\", \"units\"; rename the column or set source.csv.columns.unit"
        );
    }
}
