//! The command line: clap definitions, one module per command, and the one place that turns
//! results into exit codes.

mod accounts;
mod apply;
mod checkout;
mod completions;
mod demo;
mod doctor;
mod due;
mod error;
mod gitops;
mod history;
mod init;
mod lock;
mod plan;
mod propose;
mod sandbox;
mod schema;
mod status;
mod validate;
mod workflow;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

pub use error::{CommandError, ErrorKind};

/// Keeps PSA agreement unit counts equal to vendor licence counts, every change reviewed as a pull
/// request.
#[derive(Debug, Parser)]
#[command(
    name = "unitsync",
    version,
    about,
    propagate_version = true,
    after_help = "\
Exit status:
  0  success: nothing (left) to change; `due`: due
  1  bad arguments or billing-repo files, a credential variable not set, a mapping that cannot
     be planned, a declined confirmation
  2  `plan --detailed-exitcode`: the plan has changes
  3  `due`: not due
  4  the PSA, the vendor source, git or GitHub failed or refused (unreachable, rate-limited,
     credentials rejected, a line not applied, another apply running)
  5  a bug in unitsync"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Run in the billing repo DIR instead of the current directory.
    #[arg(short = 'C', value_name = "DIR", global = true, default_value = ".")]
    pub dir: PathBuf,
    /// More log output on stderr (-v info, -vv debug, -vvv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the billing repo's files: YAML syntax, schema, and meaning. Reports every problem.
    Validate,
    /// Show what would change: vendor counts against the PSA, per mapping.
    Plan(plan::PlanArgs),
    /// Write the vendor's counts into units.lock.yaml on the proposal branch and open or update
    /// its one pull request (with `approval: automatic`: apply them and commit to the default
    /// branch instead).
    Propose(propose::ProposeArgs),
    /// Show the plan, ask for confirmation, set the PSA, record history, and re-read the PSA.
    Apply(apply::ApplyArgs),
    /// The dashboard: integration, mapping counts, pending vs mapped, units per licence type,
    /// the last sync and alerts (terminal, Markdown, or a static HTML page with --html FILE).
    Status(status::StatusArgs),
    /// Every vendor account and licence type with its mapping status; --suggest proposes PSA
    /// records for unmapped ones (ConnectWise), --write appends them to mappings.yaml as comments.
    Accounts(accounts::AccountsArgs),
    /// Run the user guide's story end to end against the embedded ConnectWise sandbox.
    Demo(demo::DemoArgs),
    /// Check the PSA host, credentials, client id and permissions. One line per check.
    Doctor(doctor::DoctorArgs),
    /// Write the JSON Schemas of the billing repo's files.
    Schema(schema::SchemaArgs),
    /// Serve a ConnectWise-compatible API on 127.0.0.1 with demo (or your) data, until Ctrl-C.
    Sandbox(sandbox::SandboxArgs),
    /// Is a scheduled refresh or sync due now? Exit 0 when due, 3 when not, 1 on a bad file; for
    /// an hourly trigger: `unitsync due sync && unitsync apply`.
    Due(due::DueArgs),
    /// List the sync history (newest first) with filters and totals; `history prune` removes
    /// old record files in one git commit.
    History(history::HistoryArgs),
    /// Create a billing repo: settings for one PSA and source, empty mappings and lock, workflows
    /// and schemas. Never overwrites a file.
    Init(init::InitArgs),
    /// Print a shell completion script on stdout.
    Completions(completions::CompletionsArgs),
    /// Print the man page (or write one page per command with --out DIR).
    Man(completions::ManArgs),
}

/// How a successful run ended; errors are [`CommandError`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to change, or the work was done.
    Done,
    /// `--detailed-exitcode`: the plan has changes.
    Changes,
    /// `due`: no scheduled run is due now.
    NotDue,
}

/// Parses the command line. A usage error (unknown option, bad value, missing subcommand)
/// exits 1, not clap's default 2: 2 means "the plan has changes" with `--detailed-exitcode`,
/// and a typo in a CI script must not read as that. `--help` and `--version` exit 0.
pub fn parse() -> Result<Cli, ExitCode> {
    Cli::try_parse().map_err(|err| {
        let _ = err.print();
        if err.use_stderr() {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    })
}

pub fn run(cli: Cli) -> Result<Outcome, CommandError> {
    // A malformed pin must stop the run: falling back to the real clock would date changes by
    // a day the user did not ask for.
    if let Some(at) = crate::clock::check_env().map_err(|e| CommandError::user(e.to_string()))? {
        tracing::info!(%at, "the clock is pinned by {}", crate::clock::ENV_NOW);
    }
    match cli.command {
        Command::Validate => validate::run(&cli.global),
        Command::Schema(args) => schema::run(&cli.global, &args),
        Command::Plan(args) => plan::run(&cli.global, &args),
        Command::Propose(args) => propose::run(&cli.global, &args),
        Command::Apply(args) => apply::run(&cli.global, &args),
        Command::Status(args) => status::run(&cli.global, &args),
        Command::Accounts(args) => accounts::run(&cli.global, &args),
        Command::Doctor(args) => doctor::run(&cli.global, &args),
        Command::Demo(args) => demo::run(&cli.global, &args),
        Command::Sandbox(args) => sandbox::run(&args),
        Command::Due(args) => due::run(&cli.global, &args),
        Command::History(args) => history::run(&cli.global, &args),
        Command::Init(args) => init::run(&cli.global, &args),
        Command::Completions(args) => completions::completions(&args),
        Command::Man(args) => completions::man(&args),
    }
}

/// Exit codes, in one place: 0 success (no changes; for `due`, due), 2 changes present with
/// `--detailed-exitcode` (as Terraform does), 3 `due`: not due (so `unitsync due sync &&
/// unitsync apply` runs apply only when due, and scripts can tell "not due" from an error), and
/// for an error the code of its [`ErrorKind`]: 1 bad input, 4 a PSA, source, git or GitHub
/// failed or refused, 5 a bug (see [`ErrorKind::exit_code`] for why these numbers). The same
/// list is the `after_help` of [`Cli`] and the README's "Exit codes".
pub fn exit_code(result: Result<Outcome, CommandError>) -> ExitCode {
    match result {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Changes) => ExitCode::from(2),
        Ok(Outcome::NotDue) => ExitCode::from(3),
        Err(err) => {
            err.report();
            ExitCode::from(err.exit_code())
        }
    }
}

/// Logs go to stderr so that stdout carries only the requested output (a plan, JSON).
pub fn init_logging(global: &GlobalArgs) {
    crate::progress::enable(!global.quiet && crate::progress::stderr_is_terminal());
    let default = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
