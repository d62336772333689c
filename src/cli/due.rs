//! `unitsync due refresh|sync`: is a scheduled run due now? For an hourly trigger:
//! `unitsync due sync && unitsync apply`.

use clap::Args;
use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::{CommandError, GlobalArgs, Outcome};
use crate::config::{SETTINGS_FILE, Settings};
use crate::schedule::{self, RunKind};

#[derive(Debug, Args)]
#[command(after_help = "\
Exit status:
  0  due: run it now
  3  not due (already run since the latest scheduled time, `on-merge`, or no schedule)
  1  error (unreadable unitsync.yaml, bad schedule or time zone, bad history/last-<kind>)

The last run of each kind is read from history/last-refresh or history/last-sync (one RFC 3339
line), which the run writes when it finishes. Never run before means due.")]
pub struct DueArgs {
    /// Which scheduled run: `refresh` (schedule.refresh) or `sync` (schedule.sync).
    #[arg(value_enum)]
    pub kind: RunKind,
    /// Decide as if the time were this RFC 3339 instant (such as 2026-11-25T10:05:00Z) instead of
    /// the clock.
    #[arg(long, value_name = "RFC3339")]
    pub now: Option<Timestamp>,
}

pub fn run(global: &GlobalArgs, args: &DueArgs) -> Result<Outcome, CommandError> {
    let kind = args.kind;
    let path = global.dir.join(SETTINGS_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        CommandError::user(format!("cannot read {}: {e}", path.display()))
            .hinted("run in the billing repo, or point at it with -C DIR")
    })?;
    // The full loader (schema first, then file:line:col errors) is `validate`'s; this reads just
    // enough to know the schedule.
    let settings = serde_saphyr::from_str::<Settings>(&text).map_err(|e| {
        CommandError::user(format!("{}: {e}", path.display()))
            .hinted("`unitsync validate` reports every problem in the billing repo's files")
    })?;
    let schedule = settings.schedule.as_ref();
    let written = schedule.and_then(|s| match kind {
        RunKind::Refresh => s.refresh.as_deref(),
        RunKind::Sync => s.sync.as_deref(),
    });
    let (Some(schedule), Some(written)) = (schedule, written) else {
        println!(
            "{kind} is not due: {} has no `schedule.{kind}`, so it never runs on the clock",
            SETTINGS_FILE
        );
        return Ok(Outcome::NotDue);
    };
    let cadence = schedule::parse_for(kind, written)
        .map_err(|e| CommandError::user(format!("{}: schedule.{kind}: {e}", path.display())))?;
    let tz = TimeZone::get(&schedule.timezone).map_err(|e| {
        CommandError::user(format!(
            "{}: schedule.timezone: `{}` is not a known IANA time zone ({e})",
            path.display(),
            schedule.timezone
        ))
        .hinted("write a name from the tz database, such as America/Los_Angeles or Europe/London")
    })?;
    let last =
        schedule::last_run(&global.dir, kind).map_err(|e| CommandError::user(e.to_string()))?;
    let now = args.now.unwrap_or_else(crate::clock::now);
    let due = schedule::is_due(cadence, &tz, now, last);
    println!("{}", due.explain(kind));
    Ok(if due.is_due() {
        Outcome::Done
    } else {
        Outcome::NotDue
    })
}
