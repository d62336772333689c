//! `unitsync history`: the sync history as a table, CSV or JSON, newest first, with filters and
//! totals; `unitsync history prune --before DATE` removes old record files in one git commit.
//!
//! CSV columns (one row per history line, header row first): `run, account, license_type, company,
//! product, from, to, outcome, approved_by, pull_request, mapping, contract, line, new_line,
//! reason, commit, file, note, effective, due`. JSON: `{ "format_version": 1, "lines": [...],
//! "totals": {...} }`, each line with the same fields as the CSV. Totals count every listed line; the unit change (`+A / -B
//! units`) adds up applied lines only, since failed and stale lines changed nothing.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use jiff::Timestamp;
use serde::Serialize;

use super::{CommandError, GlobalArgs, Outcome};
use crate::history::{HistoryLine, HistoryRecord, LineOutcome, read_all};
use crate::quantity::Quantity;
use crate::render::terminal_text;
use crate::review::git::{GitRepo, Push};

/// The JSON output's version; bumped when a field changes meaning or disappears.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct HistoryArgs {
    #[command(subcommand)]
    pub action: Option<HistoryAction>,
    #[command(flatten)]
    pub list: ListArgs,
}

#[derive(Debug, Subcommand)]
pub enum HistoryAction {
    /// Remove record files older than DATE in one git commit on the current branch. The files
    /// stay in git history (`git log --diff-filter=D -- history/`).
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only runs at or after DATE: YYYY-MM-DD (midnight UTC) or an RFC 3339 time.
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub since: Option<Timestamp>,
    /// Only vendor accounts containing TEXT (case-insensitive).
    #[arg(long, value_name = "TEXT")]
    pub account: Option<String>,
    /// Only lines with this outcome.
    #[arg(long, value_enum)]
    pub outcome: Option<OutcomeFilter>,
    /// Only the mapping with this id, such as bobs-dentistry/shadowprotect-desktop.
    #[arg(long, value_name = "ID")]
    pub mapping: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = HistoryFormat::Table)]
    pub format: HistoryFormat,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove records of runs before DATE: YYYY-MM-DD (midnight UTC) or an RFC 3339 time.
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub before: Timestamp,
    /// Push the commit to origin (otherwise push it yourself).
    #[arg(long)]
    pub push: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutcomeFilter {
    Applied,
    Failed,
    Stale,
}

impl OutcomeFilter {
    fn matches(self, outcome: LineOutcome) -> bool {
        matches!(
            (self, outcome),
            (OutcomeFilter::Applied, LineOutcome::Applied)
                | (OutcomeFilter::Failed, LineOutcome::Failed)
                | (OutcomeFilter::Stale, LineOutcome::Stale)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HistoryFormat {
    Table,
    Csv,
    Json,
}

/// `2026-11-01` (midnight UTC) or `2026-11-01T09:30:00Z` / `2026-11-01T09:30:00+01:00`.
pub fn parse_date(text: &str) -> Result<Timestamp, String> {
    if let Ok(date) = text.parse::<jiff::civil::Date>()
        && text.len() == 10
    {
        return jiff::tz::TimeZone::UTC
            .to_timestamp(date.to_datetime(jiff::civil::Time::midnight()))
            .map_err(|e| e.to_string());
    }
    text.parse::<Timestamp>().map_err(|_| {
        format!("{text:?} is not a date: write YYYY-MM-DD or an RFC 3339 time such as 2026-11-01T09:30:00Z")
    })
}

pub fn run(global: &GlobalArgs, args: &HistoryArgs) -> Result<Outcome, CommandError> {
    match &args.action {
        Some(HistoryAction::Prune(prune_args)) => prune(global, prune_args),
        None => list(global, &args.list),
    }
}

/// One history line with its record's facts, as listed.
#[derive(Debug, Serialize)]
struct Row<'a> {
    run: &'a str,
    account: &'a str,
    license_type: &'a str,
    company: &'a str,
    product: &'a str,
    from: Quantity,
    to: Quantity,
    outcome: LineOutcome,
    approved_by: Option<&'a str>,
    pull_request: Option<u64>,
    mapping: &'a str,
    contract: Option<u64>,
    line: Option<u64>,
    new_line: Option<u64>,
    reason: Option<&'a str>,
    commit: Option<&'a str>,
    file: String,
    /// The reviewer's note on the lock line (after the first columns, so they keep their place).
    note: Option<&'a str>,
    /// The day the change bills from, and the day it was due when an invoice moved it.
    effective: Option<jiff::civil::Date>,
    due: Option<jiff::civil::Date>,
}

#[derive(Debug, Default, Serialize)]
struct Totals {
    lines: usize,
    applied: usize,
    failed: usize,
    stale: usize,
    /// Units added by applied lines.
    units_added: Quantity,
    /// Units removed by applied lines.
    units_removed: Quantity,
}

impl Totals {
    fn add(&mut self, line: &HistoryLine) {
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
    fn summary(&self) -> String {
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

fn run_time(path: &Path, record: &HistoryRecord) -> Result<Timestamp, CommandError> {
    record.run.parse::<Timestamp>().map_err(|e| {
        CommandError::user(format!(
            "{}: run {:?} is not an RFC 3339 time: {e}",
            path.display(),
            record.run
        ))
    })
}

fn load(root: &Path) -> Result<Vec<(PathBuf, HistoryRecord)>, CommandError> {
    read_all(root).map_err(|e| CommandError::user(e.to_string()))
}

fn list(global: &GlobalArgs, args: &ListArgs) -> Result<Outcome, CommandError> {
    let records = load(&global.dir)?;
    let needle = args.account.as_deref().map(str::to_lowercase);
    let mut rows = Vec::new();
    let mut totals = Totals::default();
    for (path, record) in records.iter().rev() {
        if let Some(since) = args.since
            && run_time(path, record)? < since
        {
            continue;
        }
        let file = path
            .strip_prefix(&global.dir)
            .unwrap_or(path)
            .to_string_lossy()
            .replace('\\', "/");
        for line in &record.lines {
            if needle
                .as_deref()
                .is_some_and(|n| !line.account.to_lowercase().contains(n))
                || args.outcome.is_some_and(|o| !o.matches(line.outcome))
                || args.mapping.as_deref().is_some_and(|m| m != line.mapping)
            {
                continue;
            }
            totals.add(line);
            rows.push(Row {
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
                note: line.note.as_deref(),
                effective: line.effective,
                due: line.due,
                commit: record.commit.as_deref(),
                file: file.clone(),
            });
        }
    }
    match args.format {
        HistoryFormat::Table => print!("{}", table(&rows, &totals)),
        HistoryFormat::Csv => {
            print!("{}", csv_text(&rows)?);
            eprintln!("{}", totals.summary());
        }
        HistoryFormat::Json => {
            #[derive(Serialize)]
            struct Output<'a> {
                format_version: u32,
                lines: &'a [Row<'a>],
                totals: &'a Totals,
            }
            let value = Output {
                format_version: FORMAT_VERSION,
                lines: &rows,
                totals: &totals,
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&value).map_err(|e| CommandError::internal(
                    format!("cannot serialise the history: {e}")
                ))?
            );
        }
    }
    Ok(Outcome::Done)
}

/// `2026-11-25T09:30:00Z` → `2026-11-25 09:30` (UTC).
fn short_date(run: &str) -> String {
    match run.parse::<Timestamp>() {
        Ok(ts) => ts.strftime("%Y-%m-%d %H:%M").to_string(),
        Err(_) => run.to_string(),
    }
}

fn table(rows: &[Row<'_>], totals: &Totals) -> String {
    let mut cells: Vec<Vec<String>> = vec![
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
        .iter()
        .map(|s| s.to_string())
        .collect(),
    ];
    for row in rows {
        // Vendor and PSA text, and the approver's login, are shown, not interpreted.
        cells.push(vec![
            short_date(row.run),
            terminal_text(row.account),
            terminal_text(row.license_type),
            terminal_text(row.company),
            terminal_text(row.product),
            format!("{} → {}", row.from, row.to),
            outcome_text(row.outcome).to_string(),
            terminal_text(row.approved_by.unwrap_or("-")),
            row.pull_request
                .map(|n| format!("#{n}"))
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    let mut out = String::new();
    if !rows.is_empty() {
        let columns = cells[0].len();
        let mut widths = vec![0; columns];
        for row in &cells {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        for row in &cells {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                line.push_str(cell);
                if c + 1 < columns {
                    let pad = widths[c] - cell.chars().count() + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out.push_str(&totals.summary());
    out.push('\n');
    out
}

fn csv_text(rows: &[Row<'_>]) -> Result<String, CommandError> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let failed = |e: csv::Error| CommandError::internal(format!("cannot write CSV: {e}"));
    writer
        .write_record([
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
        ])
        .map_err(failed)?;
    let opt = |n: Option<u64>| n.map(|n| n.to_string()).unwrap_or_default();
    for row in rows {
        writer
            .write_record([
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
            ])
            .map_err(failed)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| CommandError::internal(format!("cannot write CSV: {e}")))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn prune(global: &GlobalArgs, args: &PruneArgs) -> Result<Outcome, CommandError> {
    let git_error = |e: crate::review::git::GitError| CommandError::external(e.to_string());
    let git = GitRepo::open(&global.dir).map_err(|e| {
        CommandError::user(e.to_string())
            .hinted("prune commits the removal; run it in the billing repo's git checkout")
    })?;
    let root = global
        .dir
        .canonicalize()
        .map_err(|e| CommandError::user(format!("cannot open {}: {e}", global.dir.display())))?;
    let workdir = git
        .workdir()
        .canonicalize()
        .unwrap_or_else(|_| git.workdir().to_path_buf());
    let prefix = root
        .strip_prefix(&workdir)
        .map_err(|_| {
            CommandError::internal(format!(
                "{} is not inside {}",
                root.display(),
                workdir.display()
            ))
        })?
        .to_path_buf();
    let history = join_repo_path(&prefix, Path::new(crate::config::HISTORY_DIR));
    let dirty = git.changes_under(&history).map_err(git_error)?;
    if !dirty.is_empty() {
        return Err(CommandError::user(format!(
            "the working tree has uncommitted changes under {history}/: {}",
            dirty.join(", ")
        ))
        .hinted("commit or discard them (git status), then prune again"));
    }
    let before_text = args.before.strftime("%Y-%m-%d").to_string();
    let before_label =
        if args.before.as_second() % 86_400 == 0 && args.before.subsec_nanosecond() == 0 {
            before_text
        } else {
            args.before.to_string()
        };
    let mut remove = Vec::new();
    for (path, record) in load(&root)? {
        if run_time(&path, &record)? < args.before {
            let relative = path.strip_prefix(&root).unwrap_or(&path);
            remove.push(join_repo_path(&prefix, relative));
        }
    }
    if remove.is_empty() {
        println!("nothing to prune: no history record is older than {before_label}");
        return Ok(Outcome::Done);
    }
    let count = remove.len();
    let noun = if count == 1 { "record" } else { "records" };
    let message = format!(
        "history: prune {count} {noun} from before {before_label}\n\n\
         The files stay in git history: git log --diff-filter=D --name-only -- {history}/\n"
    );
    let commit = git
        .commit_removal_on_head(&remove, &message)
        .map_err(git_error)?;
    let short = &commit.to_string()[..7];
    for path in &remove {
        println!("removed {path}");
    }
    println!(
        "Removed {count} history {noun} from before {before_label} in commit {short}; they stay in git history."
    );
    if args.push {
        let branch = git.head_branch().ok_or_else(|| {
            CommandError::user("HEAD is detached: cannot push the prune commit")
                .hinted("check out a branch, or push the commit by hand")
        })?;
        match git.push(commit, &branch, None).map_err(git_error)? {
            Push::Pushed => println!("Pushed to origin/{branch}."),
            Push::Rejected(why) => {
                return Err(CommandError::external(format!(
                    "origin refused the push to {branch}: {why}"
                ))
                .hinted("pull (rebase), then `git push`; the prune commit is on your branch"));
            }
        }
    } else {
        println!("Push it with `git push` (or run with --push).");
    }
    Ok(Outcome::Done)
}

/// `prefix/relative` with forward slashes, as git names paths.
fn join_repo_path(prefix: &Path, relative: &Path) -> String {
    prefix
        .join(relative)
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_midnight_utc_or_rfc3339() {
        assert_eq!(
            parse_date("2026-11-01").unwrap(),
            "2026-11-01T00:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(
            parse_date("2026-11-01T10:30:00+01:00").unwrap(),
            "2026-11-01T09:30:00Z".parse::<Timestamp>().unwrap()
        );
        for bad in ["2026-11", "11/01/2026", "2026-13-01", "yesterday", ""] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn repo_paths_use_forward_slashes() {
        assert_eq!(
            join_repo_path(Path::new(""), Path::new("history/2026/11/x.yaml")),
            "history/2026/11/x.yaml"
        );
        assert_eq!(
            join_repo_path(Path::new("billing"), Path::new("history")),
            "billing/history"
        );
    }
}
