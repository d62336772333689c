//! `unitsync apply`: show the plan, confirm, write the PSA, record history, re-read to show
//! convergence.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use clap::Args;

use super::workflow::{Planned, connect, load_repo, make_plan, runtime, today};
use super::{CommandError, GlobalArgs, Outcome};
use crate::apply::{ApplyOptions, FOUND_APPLIED, effective_date, execute, found_applied};
use crate::config::{BillingRepo, EffectiveDate};
use crate::history::{HistoryLine, HistoryRecord, LineOutcome};
use crate::plan::{Action, DesiredFrom, LineError, Plan};
use crate::psa::Psa;
use crate::render;

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Apply without asking for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Apply exactly this saved plan (from `plan --out`), refusing lines whose PSA value changed
    /// since it was made.
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// Also show lines that are already in sync.
    #[arg(long)]
    pub all: bool,
    /// Apply the counts approved in units.lock.yaml instead of the vendor's counts.
    #[arg(long)]
    pub from_lock: bool,
    /// GitOps: apply the units.lock.yaml merged on the default branch (HEAD must be it), record
    /// the pull request and its approver, and commit and push the history record. No prompt.
    #[arg(long, conflicts_with_all = ["plan", "from_lock"])]
    pub gitops: bool,
    /// With --gitops: also set lines the PSA changed by hand since unitsync last wrote them
    /// (drift) to the approved value; without it they are reported and skipped.
    #[arg(long, requires = "gitops")]
    pub force: bool,
}

pub fn run(global: &GlobalArgs, args: &ApplyArgs) -> Result<Outcome, CommandError> {
    let repo = load_repo(&global.dir)?;
    let psa = connect(&repo)?;
    if args.gitops {
        return runtime()?.block_on(super::gitops::apply_gitops(&repo, &psa, args.force));
    }
    let desired = if args.from_lock {
        DesiredFrom::Lock
    } else {
        DesiredFrom::Vendor
    };
    let saved = match &args.plan {
        Some(path) => Some(read_saved_plan(path)?),
        None => None,
    };
    runtime()?.block_on(apply_interactive(
        &repo,
        &psa,
        desired,
        saved,
        args,
        &mut std::io::stdin().lock(),
    ))
}

fn read_saved_plan(path: &PathBuf) -> Result<Plan, CommandError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CommandError::user(format!("cannot read {}: {e}", path.display())))?;
    render::parse_json(&text).map_err(|e| {
        CommandError::user(format!("{}: {e}", path.display()))
            .hinted("make the plan file with `unitsync plan --out FILE`")
    })
}

/// The whole local apply, with the confirmation answer read from `answers`.
pub async fn apply_interactive<P: Psa + Sync>(
    repo: &BillingRepo,
    psa: &P,
    desired: DesiredFrom,
    saved: Option<Plan>,
    args: &ApplyArgs,
    answers: &mut dyn BufRead,
) -> Result<Outcome, CommandError> {
    // A local apply in a git checkout applies the default branch only, and holds the run lock
    // (this machine's, and the remote's when there is one) from before it reads the PSA.
    let checkout = match super::checkout::Checkout::open(repo) {
        Ok(checkout) => {
            checkout.require_on_default_branch()?;
            Some(checkout)
        }
        Err(_) => None,
    };
    let lock = super::lock::RunLock::take(repo, checkout.as_ref())?;
    let result = apply_locked(repo, psa, desired, saved, args, answers, &lock).await;
    lock.release(checkout.as_ref());
    result
}

async fn apply_locked<P: Psa + Sync>(
    repo: &BillingRepo,
    psa: &P,
    desired: DesiredFrom,
    saved: Option<Plan>,
    args: &ApplyArgs,
    answers: &mut dyn BufRead,
    lock: &super::lock::RunLock,
) -> Result<Outcome, CommandError> {
    let started = crate::clock::now();
    // A saved plan says what it was made towards (vendor counts or the lock); the fresh plan it
    // is checked against, and the re-read after applying, must aim at the same counts.
    let desired = saved.as_ref().map_or(desired, |saved| saved.desired);
    let Planned {
        plan,
        source_accounts,
        ..
    } = make_plan(repo, psa, desired).await?;
    let (plan, found) = match saved {
        None => {
            let found = found_unrecorded(&plan);
            (plan, found)
        }
        // A saved plan refuses what changed since it was made, except a change to exactly its
        // own target: that is this plan, written by a run killed before recording it.
        Some(saved) => {
            let checked = saved.refuse_stale(&plan);
            let found = saved
                .lines
                .iter()
                .zip(&checked.lines)
                .filter_map(|(before, after)| match (&before.action, &after.action) {
                    (Action::Update { from, to }, Action::InSync) => Some(crate::apply::entry(
                        after,
                        *from,
                        *to,
                        LineOutcome::Applied,
                        Some(FOUND_APPLIED.to_string()),
                    )),
                    _ => None,
                })
                .collect();
            (checked, found)
        }
    };
    print!(
        "{}",
        render::table(
            &plan,
            &render::TableOptions {
                all: args.all,
                color: render::use_color(),
                vocabulary: repo.settings.psa.kind().vocabulary(),
            },
        )
    );
    print!("{}", render::holds(&plan));
    let updates = plan.lines.iter().filter(|l| l.action.is_update()).count();
    let stale = stale_lines(&plan);
    if updates == 0 {
        if !stale.is_empty() {
            // Every change of the saved plan was refused: say so, and where it is recorded,
            // rather than "nothing to apply" and a hint about fixing mappings.
            println!();
            print!("{}", render::outcomes(&stale));
            let path = write_history(repo, started, stale.clone(), false)?;
            println!("Recorded in {}.", path.display());
            crate::notify::send_and_print(
                repo.settings.notifications.as_ref(),
                &crate::notify::Event::applied(psa_name(repo), &stale, &plan, None),
            )
            .await;
            // The PSA moved on, as for a stale line among applied ones below.
            return Err(CommandError::external(format!(
                "{} line{} of the saved plan {} refused because the PSA changed since the plan was made; nothing was applied",
                stale.len(),
                if stale.len() == 1 { "" } else { "s" },
                if stale.len() == 1 { "was" } else { "were" },
            ))
            .hinted("run `unitsync plan` again to see the PSA as it is now, and apply a new plan"));
        }
        if !found.is_empty() {
            println!();
            print!("{}", render::outcomes(&found));
            let path = write_history(repo, started, found, false)?;
            println!("Recorded in {}.", path.display());
            super::workflow::record_source_accounts(repo, &plan, source_accounts)?;
            return super::plan::outcome(&plan, false);
        }
        println!("\nNothing to apply.");
        if let Some(held) = crate::notify::Event::held(psa_name(repo), &plan, None) {
            crate::notify::send_and_print(repo.settings.notifications.as_ref(), &[held]).await;
        }
        super::workflow::record_source_accounts(repo, &plan, source_accounts)?;
        return super::plan::outcome(&plan, false);
    }
    if !args.yes && !confirm(updates, psa_name(repo), answers)? {
        return Err(CommandError::user("apply cancelled; nothing was changed"));
    }

    let options = ApplyOptions {
        effective: effective_date(effective_policy(repo), today(repo)),
        concurrency: 4,
        deadline: Some(lock.write_deadline()),
    };
    let mut lines = execute(psa, &plan, &options).await;
    lines.extend(found);
    lines.extend(stale);
    // The outcomes first: should the record fail to be written, this output is the record.
    println!();
    print!("{}", render::outcomes(&lines));
    let changed = lines.iter().any(|l| l.outcome == LineOutcome::Applied);
    let path = write_history(repo, started, lines.clone(), changed)?;
    println!("Recorded in {}.", path.display());
    super::workflow::record_source_accounts(repo, &plan, source_accounts)?;
    crate::notify::send_and_print(
        repo.settings.notifications.as_ref(),
        &crate::notify::Event::applied(psa_name(repo), &lines, &plan, None),
    )
    .await;

    // Re-read the PSA: the proof that it now holds what was approved.
    let after = make_plan(repo, psa, desired).await?.plan;
    println!("\nPSA after apply:");
    let mut unconverged = 0;
    for line in lines.iter().filter(|l| l.outcome == LineOutcome::Applied) {
        let now = after
            .lines
            .iter()
            .find(|l| l.mapping == line.mapping)
            .and_then(|l| l.psa);
        let ok = now == Some(line.to);
        unconverged += usize::from(!ok);
        println!(
            "  {} {}: {}",
            if ok { "ok" } else { "!!" },
            line.mapping,
            now.map_or_else(|| "not found".to_string(), |q| q.to_string())
        );
    }
    println!("{}", after.summary());

    let count = |outcome: LineOutcome| lines.iter().filter(|l| l.outcome == outcome).count();
    let (failed, stale) = (count(LineOutcome::Failed), count(LineOutcome::Stale));
    if failed > 0 || stale > 0 || unconverged > 0 {
        let mut error = CommandError::external(format!(
            "{failed} line(s) failed, {stale} were refused as stale, and {unconverged} did not read back as written"
        ));
        if failed > 0 || unconverged > 0 {
            error = error.hinted("see the reasons above; run apply again to retry what failed (applied lines are not written twice)");
        }
        if stale > 0 {
            // Re-applying the same saved plan would refuse them again.
            error = error.hinted(
                "stale lines changed in the PSA since the plan was made: run `unitsync plan` again to see the PSA as it is now",
            );
        }
        return Err(error);
    }
    super::plan::outcome(&plan, false)
}

/// Lines an interrupted earlier run wrote but did not record: the PSA holds the count this run
/// wants while history still shows an earlier one. They plan as in sync, so they are never
/// written twice; recording them keeps the history complete.
///
/// [`found_applied`] compares the PSA with the approved count; what a local run approves is the
/// count it applies: the vendor's, or the lock's with `--from-lock`. Lines with no record at all
/// are left out: a local run records changes, not a baseline of every line already in sync.
fn found_unrecorded(plan: &Plan) -> Vec<HistoryLine> {
    let mut wanted = plan.clone();
    if plan.desired == DesiredFrom::Vendor {
        for line in &mut wanted.lines {
            line.approved = line.vendor;
        }
    }
    found_applied(&wanted)
        .into_iter()
        .filter(|line| line.reason.as_deref() == Some(FOUND_APPLIED))
        .collect()
}

/// Saved-plan lines refused as stale become history lines too, so the record shows every line
/// the person approved and what became of it.
fn stale_lines(plan: &Plan) -> Vec<HistoryLine> {
    plan.lines
        .iter()
        .filter_map(|line| match &line.action {
            Action::Error {
                reason: reason @ LineError::Stale { planned, .. },
            } => Some(crate::apply::entry(
                line,
                planned.parse().unwrap_or_default(),
                // The count the plan was heading for: the approved one for a plan made from
                // the lock, else the vendor's (the stale error no longer carries the update).
                match plan.desired {
                    DesiredFrom::Lock => line.approved,
                    DesiredFrom::Vendor => line.vendor,
                }
                .unwrap_or_default(),
                LineOutcome::Stale,
                Some(reason.to_string()),
            )),
            _ => None,
        })
        .collect()
}

fn write_history(
    repo: &BillingRepo,
    started: jiff::Timestamp,
    lines: Vec<HistoryLine>,
    psa_changed: bool,
) -> Result<PathBuf, CommandError> {
    let record = HistoryRecord {
        run: started
            .round(jiff::Unit::Second)
            .unwrap_or(started)
            .to_string(),
        commit: None,
        pull_request: None,
        approved_by: Some(format!(
            "local:{}",
            std::env::var("USER").unwrap_or_else(|_| "unknown".into())
        )),
        lines: crate::history::with_notes(lines, &repo.lock, &repo.lock_notes),
        true_ups: Vec::new(),
    };
    record.write(&repo.root).map_err(|e| {
        let error = CommandError::external(e.to_string());
        if psa_changed {
            error.hinted("the PSA was changed; keep this output as the record")
        } else {
            error.hinted("nothing was changed in the PSA")
        }
    })
}

fn confirm(updates: usize, psa: &str, answers: &mut dyn BufRead) -> Result<bool, CommandError> {
    print!(
        "\nApply {updates} change{} to {psa}? Only 'yes' will be accepted: ",
        if updates == 1 { "" } else { "s" }
    );
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let read = answers
        .read_line(&mut answer)
        .map_err(|e| CommandError::user(format!("cannot read the confirmation: {e}")))?;
    if read == 0 {
        println!();
        return Err(
            CommandError::user("no confirmation given; nothing was changed")
                .hinted("answer 'yes' at the prompt, or pass --yes"),
        );
    }
    Ok(answer.trim() == "yes")
}

fn psa_name(repo: &BillingRepo) -> &'static str {
    repo.settings.psa.kind().name()
}

fn effective_policy(repo: &BillingRepo) -> EffectiveDate {
    repo.settings.psa.effective()
}
