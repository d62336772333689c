//! `unitsync status`: the dashboard — integration info, mapping counts, pending vs mapped, units
//! per licence type, last sync statistics and alerts — computed from a fresh plan.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::workflow::{connect, load_repo, make_plan, runtime};
use super::{CommandError, GlobalArgs, Outcome};
use crate::config::{Approval, BillingRepo};
use crate::history;
use crate::plan::DesiredFrom;
use crate::render::status::{Integration, StatusReport, status_html, status_markdown, status_text};
use crate::schedule::{self, RunKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    Terminal,
    Markdown,
    Json,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Output format on stdout.
    #[arg(long, value_enum, default_value = "terminal")]
    pub format: StatusFormat,
    /// Also write the dashboard as one self-contained static HTML page to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

pub fn run(global: &GlobalArgs, args: &StatusArgs) -> Result<Outcome, CommandError> {
    let repo = load_repo(&global.dir)?;
    let psa = connect(&repo)?;
    let desired = match repo.settings.approval {
        Approval::Manual => DesiredFrom::Lock,
        Approval::Automatic => DesiredFrom::Vendor,
    };
    let planned = runtime()?.block_on(make_plan(&repo, &psa, desired))?;
    let records = history::read_all(&repo.root).map_err(|e| CommandError::user(e.to_string()))?;
    let newest = records
        .iter()
        .map(|(_, r)| r)
        .max_by(|a, b| a.run.cmp(&b.run));
    let report = StatusReport::from_plan(integration(&repo)?, &planned.plan, newest);
    match args.format {
        StatusFormat::Terminal => print!("{}", status_text(&report)),
        StatusFormat::Markdown => print!("{}", status_markdown(&report)),
        StatusFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("the report serialises")
        ),
    }
    if let Some(path) = &args.html {
        std::fs::write(path, status_html(&report))
            .map_err(|e| CommandError::user(format!("cannot write {}: {e}", path.display())))?;
        eprintln!("Wrote the status page to {}.", path.display());
    }
    Ok(Outcome::Done)
}

fn integration(repo: &BillingRepo) -> Result<Integration, CommandError> {
    let (psa, site) = (
        repo.settings.psa.kind().short_name(),
        repo.settings.psa.address(),
    );
    let marker = |kind| {
        schedule::last_run(&repo.root, kind)
            .map(|t| t.map(|t| t.to_string()))
            .map_err(|e| CommandError::user(e.to_string()))
    };
    Ok(Integration {
        psa: psa.into(),
        site,
        approval: match repo.settings.approval {
            Approval::Manual => "manual",
            Approval::Automatic => "automatic",
        }
        .into(),
        last_refresh: marker(RunKind::Refresh)?,
        last_sync: marker(RunKind::Sync)?,
    })
}
