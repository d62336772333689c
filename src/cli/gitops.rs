//! The GitOps side shared by `propose` and `apply --gitops`: GitHub, and applying the lock merged
//! on the default branch with its history committed and pushed (through [`super::checkout`]).

use super::checkout::{Checkout, commit_and_push};
use super::workflow::make_plan;
use super::{CommandError, Outcome};
use crate::apply::{ApplyOptions, effective_date, execute, force_drift, found_applied};
use crate::config::{BillingRepo, EffectiveDate};
use crate::history::{HistoryRecord, LineOutcome};
use crate::plan::{Action, DesiredFrom};
use crate::psa::Psa;
use crate::render;
use crate::review::{GitHub, GitHubConfig};

/// The GitHub client, when `GITHUB_TOKEN` is set.
pub fn github(repo: &BillingRepo) -> Result<Option<GitHub>, CommandError> {
    match GitHubConfig::from_env(repo.settings.github.as_ref())? {
        Some(config) => GitHub::new(&config).map(Some).map_err(CommandError::from),
        None => Ok(None),
    }
}

/// The proposal branch: `github.branch`, default `unitsync/pending`.
pub fn proposal_branch(repo: &BillingRepo) -> String {
    repo.settings
        .github
        .as_ref()
        .map(|g| g.branch.clone())
        .unwrap_or_else(|| "unitsync/pending".to_string())
}

/// Who approved what `apply --gitops` applies.
#[derive(Debug, Clone, Default)]
pub struct Approval {
    pub commit: Option<String>,
    pub pull_request: Option<u64>,
    pub approved_by: Option<String>,
}

/// Applies the lock in `repo` (merged on the default branch), records every line's outcome in a
/// history record, and commits it (with `extra_files`, such as the lock for automatic approval)
/// to the default branch. Drifted lines are skipped unless `force`.
///
/// The whole of it runs under the run lock, and only when the checkout is the remote's default
/// branch as it is now: a checkout made before another run recorded its history would apply an
/// older approval.
pub async fn apply_merged<P: Psa + Sync>(
    repo: &BillingRepo,
    psa: &P,
    checkout: &Checkout,
    approval: Approval,
    force: bool,
    extra_files: Vec<(String, Vec<u8>)>,
) -> Result<Outcome, CommandError> {
    let lock = super::lock::RunLock::take(repo, Some(checkout))?;
    let result = match checkout.require_up_to_date() {
        Ok(()) => {
            let deadline = lock.write_deadline();
            apply_merged_locked(repo, psa, checkout, approval, force, extra_files, deadline).await
        }
        Err(e) => Err(e),
    };
    lock.release(Some(checkout));
    result
}

async fn apply_merged_locked<P: Psa + Sync>(
    repo: &BillingRepo,
    psa: &P,
    checkout: &Checkout,
    approval: Approval,
    force: bool,
    extra_files: Vec<(String, Vec<u8>)>,
    deadline: jiff::Timestamp,
) -> Result<Outcome, CommandError> {
    let started = crate::clock::now();
    let leftovers = checkout.leftover_history()?;
    if !leftovers.is_empty() {
        println!(
            "Recording what an interrupted run left uncommitted: {}.",
            leftovers
                .iter()
                .map(|(path, _)| path.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let super::workflow::Planned {
        plan: planned,
        source_accounts,
        history,
        ..
    } = make_plan(repo, psa, DesiredFrom::Lock).await?;
    let plan = if force {
        force_drift(&planned)
    } else {
        planned
    };
    print!(
        "{}",
        render::table(
            &plan,
            &render::TableOptions {
                all: false,
                color: render::use_color(),
                vocabulary: repo.settings.psa.kind().vocabulary(),
            },
        )
    );
    let drifted: Vec<_> = plan
        .lines
        .iter()
        .filter(|l| matches!(l.action, Action::Drift { .. }))
        .collect();
    for line in &drifted {
        if let Action::Drift { last_applied, psa } = line.action {
            println!(
                "skipped  {}: the PSA holds {psa}, but unitsync last wrote {last_applied}; someone changed it by hand \
                 (run `unitsync apply --gitops --force` to set it to the approved {})",
                line.mapping,
                line.approved
                    .map_or_else(|| "value".to_string(), |q| q.to_string())
            );
        }
    }
    print!("{}", render::holds(&plan));

    let options = ApplyOptions {
        effective: effective_date(effective_policy(repo), super::workflow::today(repo)),
        concurrency: 4,
        deadline: Some(deadline),
    };
    let mut lines = execute(psa, &plan, &options).await;
    lines.extend(found_applied(&plan));
    let written = crate::history::written_true_ups(&history);
    let true_ups = if repo.settings.true_ups() {
        crate::apply::write_true_ups(
            psa,
            &plan,
            &repo.true_ups.true_ups,
            &written,
            super::workflow::today(repo),
            Some(deadline),
        )
        .await
    } else {
        let waiting = crate::apply::pending_true_ups(&repo.true_ups.true_ups, &written).count();
        if waiting > 0 {
            println!(
                "Not writing {waiting} approved true-up{} in true-ups.yaml: billing.true_ups is off.",
                if waiting == 1 { "" } else { "s" }
            );
        }
        Vec::new()
    };
    if lines.is_empty() && true_ups.is_empty() && extra_files.is_empty() && leftovers.is_empty() {
        println!("\nNothing to apply.");
        let psa_name = repo.settings.psa.kind().to_string();
        if let Some(held) = crate::notify::Event::held(&psa_name, &plan, approval.pull_request) {
            crate::notify::send_and_print(repo.settings.notifications.as_ref(), &[held]).await;
        }
        return super::plan::outcome(&plan, false);
    }

    let mut files = leftovers;
    files.extend(extra_files);
    if let Some((path, bytes)) =
        super::workflow::record_source_accounts(repo, &plan, source_accounts)?
    {
        files.push((checkout.repo_path(&path), bytes));
    }
    let applied = lines
        .iter()
        .filter(|l| l.outcome == LineOutcome::Applied)
        .count();
    let written_true_ups = true_ups
        .iter()
        .filter(|t| t.outcome == LineOutcome::Applied)
        .count();
    let mut history_path = None;
    if !lines.is_empty() || !true_ups.is_empty() {
        let record = HistoryRecord {
            run: started
                .round(jiff::Unit::Second)
                .unwrap_or(started)
                .to_string(),
            commit: approval.commit.clone(),
            pull_request: approval.pull_request,
            approved_by: approval.approved_by.clone(),
            lines: crate::history::with_notes(lines.clone(), &repo.lock, &repo.lock_notes),
            true_ups: true_ups.clone(),
        };
        let path = record.write(&repo.root).map_err(|e| {
            CommandError::external(e.to_string())
                .hinted("the PSA was changed; keep this output as the record")
        })?;
        files.push((checkout.repo_path(&path), record.to_yaml().into_bytes()));
        history_path = Some(path);
    }
    // The PSA client's state (the Autotask adjustment journal guards against posting an
    // adjustment twice); a throwaway CI checkout loses it unless it is committed with the record.
    for state in repo.settings.psa.kind().state_files() {
        if let Ok(bytes) = std::fs::read(repo.root.join(state)) {
            files.push((checkout.repo_path(std::path::Path::new(state)), bytes));
        }
    }
    // Written last, so this run's own version of a file (the journal, the marker) is the one
    // committed rather than a leftover's.
    let mut seen = std::collections::BTreeSet::new();
    files.reverse();
    files.retain(|(path, _)| seen.insert(path.clone()));
    files.reverse();
    let write_true_ups = format!(
        "write {written_true_ups} true-up{}",
        if written_true_ups == 1 { "" } else { "s" }
    );
    let mut message = if applied == 0 && lines.is_empty() && true_ups.is_empty() {
        "unitsync: record the history an interrupted run left uncommitted".to_string()
    } else if lines.is_empty() {
        format!("unitsync: {write_true_ups}")
    } else if true_ups.is_empty() {
        format!(
            "unitsync: apply {applied} unit change{}",
            if applied == 1 { "" } else { "s" }
        )
    } else {
        format!(
            "unitsync: apply {applied} unit change{} and {write_true_ups}",
            if applied == 1 { "" } else { "s" }
        )
    };
    if let Some(number) = approval.pull_request {
        message.push_str(&format!(" from #{number}"));
    }
    message.push_str("\n\n");
    if let Some(commit) = &approval.commit {
        message.push_str(&format!("Applied-commit: {commit}\n"));
    }
    if let Some(by) = &approval.approved_by {
        message.push_str(&format!("Approved-by: {by}\n"));
    }
    let (commit, attempts) = commit_and_push(checkout, &files, &message)?;

    println!();
    print!("{}", render::outcomes(&lines));
    print!("{}", render::true_up_outcomes(&true_ups));
    if let Some(path) = history_path {
        println!(
            "Recorded in {} and pushed to {} ({}{}).",
            path.display(),
            checkout.base,
            &commit.to_string()[..7],
            if attempts > 1 {
                format!(", after {attempts} attempts")
            } else {
                String::new()
            }
        );
    }
    crate::notify::send_and_print(
        repo.settings.notifications.as_ref(),
        &crate::notify::Event::applied(
            &repo.settings.psa.kind().to_string(),
            &lines,
            &plan,
            approval.pull_request,
        ),
    )
    .await;
    let failed = lines
        .iter()
        .filter(|l| l.outcome != LineOutcome::Applied)
        .count();
    let failed_true_ups = true_ups
        .iter()
        .filter(|t| t.outcome != LineOutcome::Applied)
        .count();
    if failed > 0 || failed_true_ups > 0 {
        let mut what = Vec::new();
        if failed > 0 {
            what.push(format!("{failed} line(s) were not applied"));
        }
        if failed_true_ups > 0 {
            what.push(format!("{failed_true_ups} true-up(s) were not written"));
        }
        return Err(CommandError::external(what.join(" and "))
        .hinted("see the reasons above; the next apply retries them (applied lines and written true-ups are not written twice)"));
    }
    super::plan::outcome(&plan, false)
}

fn effective_policy(repo: &BillingRepo) -> EffectiveDate {
    repo.settings.psa.effective()
}

/// `apply --gitops`: the lock merged on the default branch, approved by whoever merged it.
pub async fn apply_gitops<P: Psa + Sync>(
    repo: &BillingRepo,
    psa: &P,
    force: bool,
) -> Result<Outcome, CommandError> {
    let checkout = Checkout::open(repo)?;
    checkout.require_default_branch()?;
    let sha = checkout.git.head_commit()?.to_string();
    let mut approval = Approval {
        commit: Some(sha.clone()),
        ..Approval::default()
    };
    match github(repo)? {
        Some(github) => {
            use crate::review::Review;
            match github.pull_for_commit(&sha).await? {
                Some(pull) => {
                    println!(
                        "Applying {} as merged in #{}{}.",
                        &sha[..7],
                        pull.number,
                        pull.merged_by
                            .as_deref()
                            .map_or_else(String::new, |by| format!(" by {by}"))
                    );
                    approval.pull_request = Some(pull.number);
                    approval.approved_by = pull.merged_by;
                }
                None => println!(
                    "Applying {} ({}; no merged pull request found for it).",
                    &sha[..7],
                    checkout.base
                ),
            }
        }
        None => println!(
            "Applying {} ({}); GITHUB_TOKEN is not set, so the record names no pull request or approver.",
            &sha[..7],
            checkout.base
        ),
    }
    apply_merged(repo, psa, &checkout, approval, force, Vec::new()).await
}
