//! `unitsync history`: the sync history as a table, CSV or JSON, newest first, with filters and
//! totals; `unitsync history prune --before DATE` removes old record files in one git commit.
//!
//! The columns, the CSV and the JSON are [`crate::render::history`]'s; this module picks the
//! lines.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use jiff::Timestamp;

use super::{CommandError, GlobalArgs, Outcome};
use crate::history::{HistoryRecord, LineOutcome, read_all};
use crate::render::history::{HistoryRow, Totals, history_csv, history_json, history_table};
use crate::review::git::{GitRepo, Push};

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
            rows.push(HistoryRow::new(record, line, file.clone()));
        }
    }
    match args.format {
        HistoryFormat::Table => print!("{}", history_table(&rows, &totals)),
        HistoryFormat::Csv => {
            let csv = history_csv(&rows)
                .map_err(|e| CommandError::internal(format!("cannot write CSV: {e}")))?;
            print!("{csv}");
            eprintln!("{}", totals.summary());
        }
        HistoryFormat::Json => {
            let json = history_json(&rows, &totals).map_err(|e| {
                CommandError::internal(format!("cannot serialise the history: {e}"))
            })?;
            println!("{json}");
        }
    }
    Ok(Outcome::Done)
}

fn prune(global: &GlobalArgs, args: &PruneArgs) -> Result<Outcome, CommandError> {
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
    let dirty = git.changes_under(&history)?;
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
    let commit = git.commit_removal_on_head(&remove, &message)?;
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
        match git.push(commit, &branch, None)? {
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
