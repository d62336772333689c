//! `unitsync plan`: what would change, without changing anything.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::workflow::{connect, load_repo, make_plan, runtime};
use super::{CommandError, GlobalArgs, Outcome};
use crate::plan::{DesiredFrom, Plan};
use crate::render;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Markdown,
    Json,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Also show lines that are already in sync.
    #[arg(long)]
    pub all: bool,
    /// Exit 2 when the plan has changes (0 none, 1 error).
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Also save the plan as JSON, for `unitsync apply --plan FILE`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Plan towards the counts approved in units.lock.yaml instead of the vendor's counts.
    #[arg(long)]
    pub from_lock: bool,
}

pub fn run(global: &GlobalArgs, args: &PlanArgs) -> Result<Outcome, CommandError> {
    let repo = load_repo(&global.dir)?;
    let psa = connect(&repo)?;
    let desired = if args.from_lock {
        DesiredFrom::Lock
    } else {
        DesiredFrom::Vendor
    };
    let planned = runtime()?.block_on(make_plan(&repo, &psa, desired))?;
    print!("{}", show(&planned.plan, args.format, args.all));
    if let Some(out) = &args.out {
        std::fs::write(out, render::json(&planned.plan))
            .map_err(|e| CommandError::user(format!("cannot write {}: {e}", out.display())))?;
        eprintln!(
            "Saved the plan to {}; apply exactly it with `unitsync apply --plan {}`.",
            out.display(),
            out.display()
        );
    }
    outcome(&planned.plan, args.detailed_exitcode)
}

/// The plan in the requested format.
pub fn show(plan: &Plan, format: Format, all: bool) -> String {
    match format {
        Format::Table => render::table(
            plan,
            &render::TableOptions {
                all,
                color: render::use_color(),
            },
        ),
        Format::Markdown => render::markdown(plan, &render::MarkdownOptions::default()),
        Format::Json => render::json(plan),
    }
}

/// Lines in error fail the command (after the plan was shown): a mapping that cannot be planned
/// is a customer who may be billed wrongly.
pub fn outcome(plan: &Plan, detailed: bool) -> Result<Outcome, CommandError> {
    let summary = plan.summary();
    if summary.errors > 0 {
        return Err(CommandError::user(format!(
            "{} mapping{} cannot be planned; see the errors above",
            summary.errors,
            if summary.errors == 1 { "" } else { "s" }
        ))
        .hinted("fix the mappings or the PSA records they name, then run plan again"));
    }
    Ok(if detailed && plan.has_changes() {
        Outcome::Changes
    } else {
        Outcome::Done
    })
}
