//! The listing of `unitsync history`: one row per history line with its record's facts, as a
//! terminal table, CSV or JSON, and the totals line.
//!
//! CSV columns (one row per history line, header row first): `run, account, license_type, company,
//! product, from, to, outcome, approved_by, pull_request, mapping, contract, line, new_line,
//! reason, commit, file, note, effective, due`. JSON: `{ "format_version": 1, "lines": [...],
//! "totals": {...} }`, each line with the same fields as the CSV. Totals count every listed line;
//! the unit change (`+A / -B units`) adds up applied lines only, since failed and stale lines
//! changed nothing.
//!
//! Which lines are listed is the caller's choice; the renderers are pure functions of the rows.

use jiff::Timestamp;
use serde::Serialize;

use super::table::{Cell, grid};
use crate::history::{HistoryLine, HistoryRecord, LineOutcome};
use crate::quantity::Quantity;

/// The JSON output's version; bumped when a field changes meaning or disappears.
pub const FORMAT_VERSION: u32 = 1;

/// One history line with its record's facts, as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryRow<'a> {
    pub run: &'a str,
    pub account: &'a str,
    pub license_type: &'a str,
    pub company: &'a str,
    pub product: &'a str,
    pub from: Quantity,
    pub to: Quantity,
    pub outcome: LineOutcome,
    pub approved_by: Option<&'a str>,
    pub pull_request: Option<u64>,
    pub mapping: &'a str,
    pub contract: Option<u64>,
    pub line: Option<u64>,
    pub new_line: Option<u64>,
    pub reason: Option<&'a str>,
    pub commit: Option<&'a str>,
    /// The record's file, relative to the billing repo, `/`-separated.
    pub file: String,
    /// The reviewer's note on the lock line (after the first columns, so they keep their place).
    pub note: Option<&'a str>,
    /// The day the change bills from, and the day it was due when an invoice moved it.
    pub effective: Option<jiff::civil::Date>,
    pub due: Option<jiff::civil::Date>,
}

impl<'a> HistoryRow<'a> {
    /// `line` of `record`, which is stored in `file`.
    pub fn new(record: &'a HistoryRecord, line: &'a HistoryLine, file: String) -> HistoryRow<'a> {
        HistoryRow {
            run: &record.run,
            account: &line.account,
            license_type: &line.license_type,
            company: &line.company,
            product: &line.product,
            from: line.from,
            to: line.to,
            outcome: line.outcome,
            approved_by: record.approved_by.as_deref(),
            pull_request: record.pull_request,
            mapping: &line.mapping,
            contract: line.contract,
            line: line.line,
            new_line: line.new_line,
            reason: line.reason.as_deref(),
            commit: record.commit.as_deref(),
            file,
            note: line.note.as_deref(),
            effective: line.effective,
            due: line.due,
        }
    }
}

/// What the listed lines add up to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub lines: usize,
    pub applied: usize,
    pub failed: usize,
    pub stale: usize,
    /// Units added by applied lines.
    pub units_added: Quantity,
    /// Units removed by applied lines.
    pub units_removed: Quantity,
}

impl Totals {
    /// Counts `line` in.
    pub fn add(&mut self, line: &HistoryLine) {
        self.lines += 1;
        match line.outcome {
            LineOutcome::Applied => {
                self.applied += 1;
                if line.to >= line.from {
                    self.units_added = self
                        .units_added
                        .saturating_add(line.to.saturating_sub(line.from));
                } else {
                    self.units_removed = self
                        .units_removed
                        .saturating_add(line.from.saturating_sub(line.to));
                }
            }
            LineOutcome::Failed => self.failed += 1,
            LineOutcome::Stale => self.stale += 1,
        }
    }

    /// `4 lines: 2 applied, 1 failed, 1 stale; +3 / -1 units`.
    pub fn summary(&self) -> String {
        format!(
            "{} {}: {} applied, {} failed, {} stale; +{} / -{} units",
            self.lines,
            if self.lines == 1 { "line" } else { "lines" },
            self.applied,
            self.failed,
            self.stale,
            self.units_added,
            self.units_removed
        )
    }
}

fn outcome_text(outcome: LineOutcome) -> &'static str {
    match outcome {
        LineOutcome::Applied => "applied",
        LineOutcome::Failed => "failed",
        LineOutcome::Stale => "stale",
    }
}

/// `2026-11-25T09:30:00Z` → `2026-11-25 09:30` (UTC).
fn short_date(run: &str) -> String {
    match run.parse::<Timestamp>() {
        Ok(ts) => ts.strftime("%Y-%m-%d %H:%M").to_string(),
        Err(_) => run.to_string(),
    }
}

/// The terminal table, newest first as given, then the totals line:
///
/// ```text
/// DATE (UTC)        ACCOUNT          LICENCE TYPE           COMPANY        PRODUCT     FROM → TO  OUTCOME  APPROVED BY  PR
/// 2026-11-25 12:00  Bob's Dentistry  ShadowProtect Desktop  BobsDentistry  SP-DESKTOP  3 → 4      applied  jdoe         #1
/// 1 line: 1 applied, 0 failed, 0 stale; +1 / -0 units
/// ```
///
/// Without rows, only the totals line. Vendor and PSA text, and the approver's login, are shown,
/// not interpreted (see [`terminal_text`](super::terminal_text)).
pub fn history_table(rows: &[HistoryRow<'_>], totals: &Totals) -> String {
    let mut out = String::new();
    if !rows.is_empty() {
        let mut cells: Vec<Vec<Cell>> = vec![
            [
                "DATE (UTC)",
                "ACCOUNT",
                "LICENCE TYPE",
                "COMPANY",
                "PRODUCT",
                "FROM → TO",
                "OUTCOME",
                "APPROVED BY",
                "PR",
            ]
            .into_iter()
            .map(Cell::plain)
            .collect(),
        ];
        cells.extend(rows.iter().map(|row| {
            vec![
                Cell::plain(short_date(row.run)),
                Cell::plain(row.account),
                Cell::plain(row.license_type),
                Cell::plain(row.company),
                Cell::plain(row.product),
                Cell::plain(format!("{} → {}", row.from, row.to)),
                Cell::plain(outcome_text(row.outcome)),
                Cell::plain(row.approved_by.unwrap_or("-")),
                Cell::plain(
                    row.pull_request
                        .map_or_else(|| "-".to_string(), |n| format!("#{n}")),
                ),
            ]
        }));
        out.push_str(&grid(&cells, &[], false));
    }
    out.push_str(&totals.summary());
    out.push('\n');
    out
}

/// The rows as CSV, header first (the columns in the module docs). Writing to memory fails only
/// on a bug in the writer.
pub fn history_csv(rows: &[HistoryRow<'_>]) -> Result<String, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record([
        "run",
        "account",
        "license_type",
        "company",
        "product",
        "from",
        "to",
        "outcome",
        "approved_by",
        "pull_request",
        "mapping",
        "contract",
        "line",
        "new_line",
        "reason",
        "commit",
        "file",
        "note",
        "effective",
        "due",
    ])?;
    let opt = |n: Option<u64>| n.map(|n| n.to_string()).unwrap_or_default();
    for row in rows {
        writer.write_record([
            row.run.to_string(),
            row.account.to_string(),
            row.license_type.to_string(),
            row.company.to_string(),
            row.product.to_string(),
            row.from.to_string(),
            row.to.to_string(),
            outcome_text(row.outcome).to_string(),
            row.approved_by.unwrap_or_default().to_string(),
            opt(row.pull_request),
            row.mapping.to_string(),
            opt(row.contract),
            opt(row.line),
            opt(row.new_line),
            row.reason.unwrap_or_default().to_string(),
            row.commit.unwrap_or_default().to_string(),
            row.file.clone(),
            row.note.unwrap_or_default().to_string(),
            row.effective.map(|d| d.to_string()).unwrap_or_default(),
            row.due.map(|d| d.to_string()).unwrap_or_default(),
        ])?;
    }
    let bytes = writer.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// `{ "format_version": 1, "lines": [...], "totals": {...} }`, pretty-printed.
pub fn history_json(rows: &[HistoryRow<'_>], totals: &Totals) -> Result<String, serde_json::Error> {
    #[derive(Serialize)]
    struct Output<'a> {
        format_version: u32,
        lines: &'a [HistoryRow<'a>],
        totals: &'a Totals,
    }
    serde_json::to_string_pretty(&Output {
        format_version: FORMAT_VERSION,
        lines: rows,
        totals,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(run: &str, account: &str, outcome: LineOutcome) -> HistoryRecord {
        HistoryRecord {
            run: run.into(),
            commit: None,
            pull_request: Some(7),
            approved_by: Some("jdoe".into()),
            lines: vec![HistoryLine {
                mapping: "m".into(),
                account: account.into(),
                license_type: "ShadowProtect Desktop".into(),
                company: "BobsDentistry".into(),
                contract: Some(1001),
                line: Some(5001),
                product: "SP-DESKTOP".into(),
                from: "3".parse().unwrap(),
                to: "4".parse().unwrap(),
                outcome,
                new_line: None,
                reason: None,
                note: None,
                effective: None,
                due: None,
            }],
            true_ups: Vec::new(),
        }
    }

    #[test]
    fn the_table_aligns_columns_shows_names_escaped_and_ends_with_the_totals() {
        let records = [
            record("2026-11-25T09:30:00Z", "Bob's\x1b[2J", LineOutcome::Applied),
            record("2026-11-24T08:00:00Z", "Ünïcödé Co", LineOutcome::Failed),
        ];
        let mut totals = Totals::default();
        let rows: Vec<HistoryRow<'_>> = records
            .iter()
            .map(|r| {
                totals.add(&r.lines[0]);
                HistoryRow::new(r, &r.lines[0], "history/x.yaml".into())
            })
            .collect();
        assert_eq!(
            history_table(&rows, &totals),
            "DATE (UTC)        ACCOUNT         LICENCE TYPE           COMPANY        PRODUCT     FROM → TO  OUTCOME  APPROVED BY  PR\n\
             2026-11-25 09:30  Bob's\\u{1b}[2J  ShadowProtect Desktop  BobsDentistry  SP-DESKTOP  3 → 4      applied  jdoe         #7\n\
             2026-11-24 08:00  Ünïcödé Co      ShadowProtect Desktop  BobsDentistry  SP-DESKTOP  3 → 4      failed   jdoe         #7\n\
             2 lines: 1 applied, 1 failed, 0 stale; +1 / -0 units\n"
        );
        assert_eq!(
            history_table(&[], &Totals::default()),
            "0 lines: 0 applied, 0 failed, 0 stale; +0 / -0 units\n"
        );
    }
}
