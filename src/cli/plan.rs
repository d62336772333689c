//! `unitsync plan`: what would change, without changing anything.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::workflow::{connect, load_repo, make_plan, runtime};
use super::{CommandError, GlobalArgs, Outcome};
use crate::plan::{DesiredFrom, Plan};
use crate::{ci_env, render};

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
    /// Exit 2 when the plan has changes, 0 when none (an error exits 1, 4 or 5 as without it).
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Also save the plan as JSON, for `unitsync apply --plan FILE`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Plan towards the counts approved in units.lock.yaml instead of the vendor's counts.
    #[arg(long)]
    pub from_lock: bool,
    /// Also write the Markdown plan to the GitHub job summary and set the step outputs `changes`
    /// (true|false) and `summary` (the one summary line). On by itself under GitHub Actions
    /// (GITHUB_ACTIONS=true); a no-op where $GITHUB_STEP_SUMMARY and $GITHUB_OUTPUT are unset.
    #[arg(long, env = "GITHUB_ACTIONS")]
    pub github: bool,
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
    print!(
        "{}",
        show(
            &planned.plan,
            args.format,
            args.all,
            repo.settings.psa.kind().vocabulary()
        )
    );
    if args.github {
        // Before `outcome`, so a plan with lines in error still shows on the run's page.
        publish_to_github(&planned.plan)?;
    }
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

/// The plan as Markdown in the job summary, and the step outputs `changes` and `summary`.
pub fn publish_to_github(plan: &Plan) -> Result<(), CommandError> {
    let (markdown, outputs) = github_report(plan);
    ci_env::append_step_summary(&markdown)
        .and_then(|_| {
            outputs
                .iter()
                .try_for_each(|(name, value)| ci_env::set_output(name, value).map(drop))
        })
        .map_err(CommandError::from)
}

/// What [`publish_to_github`] writes: the Markdown for the job summary, and the step outputs.
pub fn github_report(plan: &Plan) -> (String, [(&'static str, String); 2]) {
    let markdown = render::markdown(
        plan,
        &render::MarkdownOptions {
            max_len: ci_env::STEP_SUMMARY_MAX_CHARS,
            ..render::MarkdownOptions::default()
        },
    );
    let changes = if plan.has_changes() { "true" } else { "false" };
    (
        markdown,
        [
            ("changes", changes.to_owned()),
            ("summary", plan.summary().to_string()),
        ],
    )
}

/// The plan in the requested format.
pub fn show(
    plan: &Plan,
    format: Format,
    all: bool,
    vocabulary: crate::config::Vocabulary,
) -> String {
    match format {
        Format::Table => render::table(
            plan,
            &render::TableOptions {
                all,
                color: render::use_color(),
                vocabulary,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::DesiredFrom;

    #[test]
    fn the_github_report_has_the_plan_and_its_outputs() {
        let plan = Plan {
            currency: "USD".into(),
            desired: DesiredFrom::Vendor,
            lines: Vec::new(),
            unmapped: Vec::new(),
        };
        let (markdown, outputs) = github_report(&plan);
        let summary = plan.summary().to_string();
        assert!(markdown.contains(&summary), "{markdown}");
        assert_eq!(
            outputs,
            [
                ("changes", "false".to_owned()),
                ("summary", summary.clone())
            ]
        );

        let dir = tempfile::tempdir().unwrap();
        let (summary_file, output_file) = (dir.path().join("summary"), dir.path().join("output"));
        ci_env::append_step_summary_to(&summary_file, &markdown).unwrap();
        for (name, value) in &outputs {
            ci_env::set_output_to(&output_file, name, value).unwrap();
        }
        assert!(
            std::fs::read_to_string(&summary_file)
                .unwrap()
                .contains(&summary)
        );
        assert_eq!(
            std::fs::read_to_string(&output_file).unwrap(),
            format!("changes=false\nsummary={summary}\n")
        );
    }

    #[test]
    fn the_github_flag_parses() {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from(["unitsync", "plan", "--github"]).unwrap();
        let crate::cli::Command::Plan(args) = cli.command else {
            panic!("not plan");
        };
        assert!(args.github);
    }
}
