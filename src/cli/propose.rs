//! `unitsync propose`: write the vendor's counts into `units.lock.yaml` on the proposal branch and
//! open or update the one pull request that asks for their approval.
//!
//! - Idempotent: the same data gives the same commit content, so a second run pushes nothing and
//!   opens nothing.
//! - Never force-pushes over a reviewer: when the open pull request's branch has commits unitsync
//!   did not make, the branch is left alone and only the pull request's body is updated, with a
//!   note saying so. (A branch left over from a merged or closed pull request is replaced, with
//!   `--force-with-lease` so nothing unseen is lost.)
//! - A rejection sticks: values proposed by the latest pull request closed without merging are
//!   not proposed again until the vendor's count moves to something else.
//! - `approval: automatic` skips the pull request: the new lock and the history of applying it
//!   are committed straight to the default branch.

use clap::Args;

use super::checkout::Checkout;
use super::gitops::{Approval, apply_merged, github, proposal_branch};
use super::workflow::{Planned, connect, load_repo, make_plan, runtime};
use super::{CommandError, GlobalArgs, Outcome};
use crate::config::{self, BillingRepo, Lock};
use crate::history::HistoryRecord;
use crate::plan::true_up::{Candidate, LineTerms, candidates};
use crate::plan::{DesiredFrom, Plan, PsaSnapshot, drop_rejected, lock_change_count, lock_changes};
use crate::psa::Psa;
use crate::render::{self, GITHUB_COMMENT_LIMIT, MarkdownOptions};
use crate::review::git::{ForeignCommit, Push};
use crate::review::{ProposalMarker, PullRequest, Review};

#[derive(Debug, Args)]
pub struct ProposeArgs {}

pub fn run(global: &GlobalArgs, _args: &ProposeArgs) -> Result<Outcome, CommandError> {
    let repo = load_repo(&global.dir)?;
    let psa = connect(&repo)?;
    runtime()?.block_on(async {
        let checkout = Checkout::open(&repo)?;
        if repo.settings.approval == config::Approval::Automatic {
            return propose_automatic(&repo, &psa, &checkout).await;
        }
        let github = github(&repo)?.ok_or_else(|| {
            CommandError::user("GITHUB_TOKEN is not set; propose opens a pull request on GitHub")
                .hinted("in a GitHub Action pass `GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}`; locally, `unitsync plan` shows the same changes")
        })?;
        propose(&repo, &psa, &checkout, &github).await
    })
}

/// What happened to the proposal branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BranchState {
    Created,
    Updated,
    Unchanged,
    /// A reviewer's commits are on it; left alone.
    Edited(Vec<ForeignCommit>),
}

/// `propose` with manual approval, through `review`.
pub async fn propose<P: Psa + Sync, R: Review + Sync>(
    repo: &BillingRepo,
    psa: &P,
    checkout: &Checkout,
    review: &R,
) -> Result<Outcome, CommandError> {
    let git = &checkout.git;
    let base = &checkout.base;
    let branch = proposal_branch(repo);
    let lock_path = checkout.repo_path(std::path::Path::new(config::LOCK_FILE));
    let true_ups_path = checkout.repo_path(std::path::Path::new(config::TRUE_UPS_FILE));

    git.fetch()?;
    let base_head = git
        .remote_branch(base)
        .ok_or_else(|| CommandError::external(format!("the remote has no branch {base}")))?;
    // The plan is made from this checkout's files: they must be the default branch's.
    let base_text = |path: &str, file: &str| -> Result<Option<String>, CommandError> {
        let there = git.read_file(base_head, path)?;
        if there != std::fs::read_to_string(repo.root.join(file)).ok() {
            return Err(CommandError::user(format!(
                "{file} in this checkout differs from the one on origin/{base}"
            ))
            .hinted(format!(
                "`git pull` on {base} first: proposals are made against the default branch"
            )));
        }
        Ok(there)
    };
    let base_lock_text = base_text(&lock_path, config::LOCK_FILE)?;
    let base_true_ups_text = if repo.settings.true_ups() {
        base_text(&true_ups_path, config::TRUE_UPS_FILE)?
    } else {
        git.read_file(base_head, &true_ups_path)?
    };

    let Planned {
        plan,
        snapshot,
        history,
        ..
    } = make_plan(repo, psa, DesiredFrom::Lock).await?;
    super::plan::publish_to_github(&plan)?;
    let wanted = plan.proposed_lock(&repo.lock);

    let open = review.open_pull(&branch).await?;
    let closed = review.last_closed_unmerged(&branch).await?;
    let closed_marker = closed.as_ref().and_then(|p| ProposalMarker::find(&p.body));
    let rejected = closed_marker
        .as_ref()
        .map(|m| m.units.clone())
        .unwrap_or_default();
    let new_true_ups = if repo.settings.true_ups() {
        let rejected = closed_marker.map(|m| m.true_ups).unwrap_or_default();
        true_up_candidates(repo, &plan, &snapshot, &history, &rejected)
    } else {
        Vec::new()
    };
    let (proposed, held_back) = drop_rejected(&repo.lock, &wanted, &rejected);
    let held_note = held_back_note(&held_back, closed.as_ref());
    if let Some(note) = &held_note {
        println!("{note}");
    }

    if proposed == repo.lock && new_true_ups.is_empty() {
        println!("{}", plan.summary());
        match &open {
            Some(pr) => println!(
                "Nothing to propose: units.lock.yaml on {base} already holds these counts (pull request #{} is still open).",
                pr.number
            ),
            None => println!(
                "Nothing to propose: units.lock.yaml on {base} already holds these counts."
            ),
        }
        // Everything held (an emptied source, say) proposes nothing: say so to people anyway.
        let held = crate::notify::Event::held(
            &repo.settings.psa.kind().to_string(),
            &plan,
            open.as_ref().map(|pr| pr.number),
        );
        if let Some(held) = held {
            crate::notify::send_and_print(repo.settings.notifications.as_ref(), &[held]).await;
        }
        return Ok(Outcome::Done);
    }

    let count = lock_change_count(&repo.lock, &proposed);
    let title = proposal_title(count, new_true_ups.len());
    let new_text = render::lock_text(&proposed);
    let true_ups_text = (!new_true_ups.is_empty()).then(|| {
        new_true_ups_text(
            repo,
            base_true_ups_text.as_deref(),
            &new_true_ups,
            &plan.currency,
        )
    });
    let mut files = vec![(lock_path.clone(), new_text.clone().into_bytes())];
    if let Some(text) = &true_ups_text {
        files.push((true_ups_path.clone(), text.clone().into_bytes()));
    }
    let wanted_true_ups_text = true_ups_text.clone().or(base_true_ups_text.clone());
    let diff = render::lock_diff(
        base_lock_text.as_deref().unwrap_or(""),
        &new_text,
        config::LOCK_FILE,
    );

    // The branch: made from the default branch with the new lock, unless a reviewer is on it.
    let state = match git.remote_branch(&branch) {
        None => {
            let commit = git.commit_files(base_head, &files, &title)?;
            push(checkout, commit, &branch, None)?;
            BranchState::Created
        }
        Some(tip) => {
            let foreign = git.foreign_commits(tip, base_head)?;
            let current = git.parent(tip)? == Some(base_head)
                && git.read_file(tip, &lock_path)?.as_deref() == Some(new_text.as_str())
                && git.read_file(tip, &true_ups_path)? == wanted_true_ups_text;
            if !foreign.is_empty() && open.is_some() {
                BranchState::Edited(foreign)
            } else if current && foreign.is_empty() {
                BranchState::Unchanged
            } else {
                let commit = git.commit_files(base_head, &files, &title)?;
                push(checkout, commit, &branch, Some(tip))?;
                BranchState::Updated
            }
        }
    };

    let body = pull_body(
        &plan,
        &diff,
        &repo.lock,
        &proposed,
        &new_true_ups,
        &state,
        held_note.as_deref(),
    );
    let edited = matches!(state, BranchState::Edited(_));
    let (pull, pull_changed) = match &open {
        // The title describes the branch; once a reviewer owns it, keep theirs.
        Some(pr) if pr.body == body && (edited || pr.title == title) => (pr.clone(), false),
        Some(pr) => {
            let title = if edited {
                pr.title.as_str()
            } else {
                title.as_str()
            };
            let updated = review.update_pull(pr.number, title, &body).await?;
            (updated, true)
        }
        None => {
            let created = review.create_pull(&branch, base, &title, &body).await?;
            (created, true)
        }
    };

    let psa_name = repo.settings.psa.kind().to_string();
    let mut events = Vec::new();
    if pull_changed {
        events.extend(crate::notify::Event::proposed(
            &psa_name,
            &plan,
            &proposed,
            Some(pull.number),
            pull.html_url.clone(),
        ));
    }
    events.extend(crate::notify::Event::held(
        &psa_name,
        &plan,
        Some(pull.number),
    ));
    if !events.is_empty() {
        crate::notify::send_and_print(repo.settings.notifications.as_ref(), &events).await;
    }
    crate::ci_env::set_output("pr-number", &pull.number.to_string())?;
    println!("{}", plan.summary());
    let link = pull
        .html_url
        .as_deref()
        .map_or_else(String::new, |u| format!(" {u}"));
    match &state {
        BranchState::Edited(foreign) => println!(
            "{branch} has {} commit{} unitsync did not make (a reviewer edited it): left the branch alone and \
             did not force-push; {} the description of #{}{link}.",
            foreign.len(),
            if foreign.len() == 1 { "" } else { "s" },
            if pull_changed {
                "updated only"
            } else {
                "nothing to change in"
            },
            pull.number
        ),
        BranchState::Unchanged if !pull_changed => println!(
            "Already proposed: {branch} and #{} are up to date; nothing pushed.{link}",
            pull.number
        ),
        _ if open.is_some() => println!("Updated {branch} and #{}: {title}{link}", pull.number),
        _ => println!("Opened #{}: {title}{link}", pull.number),
    }
    Ok(Outcome::Done)
}

fn push(
    checkout: &Checkout,
    commit: git2::Oid,
    branch: &str,
    expected: Option<git2::Oid>,
) -> Result<(), CommandError> {
    match checkout.git.push(commit, branch, Some(expected))? {
        Push::Pushed => Ok(()),
        Push::Rejected(why) => Err(CommandError::external(format!(
            "{branch} changed on the remote while proposing; nothing was overwritten: {why}"
        ))
        .hinted("run propose again")),
    }
}

fn held_back_note(held_back: &[String], closed: Option<&PullRequest>) -> Option<String> {
    let closed = closed?;
    if held_back.is_empty() {
        return None;
    }
    Some(format!(
        "Not proposed again (rejected when #{} was closed without merging; proposed again when the vendor's count changes): {}",
        closed.number,
        held_back.join(", ")
    ))
}

/// The pull-request body: notes, the plan with the lock diff, and the hidden marker; at most
/// GitHub's 65,536 characters.
fn pull_body(
    plan: &Plan,
    diff: &str,
    current: &Lock,
    proposed: &Lock,
    true_ups: &[Candidate],
    state: &BranchState,
    held_note: Option<&str>,
) -> String {
    let mut head = String::new();
    if let BranchState::Edited(foreign) = state {
        head.push_str(
            "> [!NOTE]\n> This branch has commits unitsync did not make, so unitsync leaves it alone and does not \
             force-push over them. Merging applies the lock **as it is on the branch**. The plan below is what \
             unitsync would propose now; to get a fresh proposal instead, close this pull request and delete the branch.\n>\n",
        );
        for c in foreign.iter().take(10) {
            head.push_str(&format!(
                "> - `{}` {} — {}\n",
                &c.sha[..7.min(c.sha.len())],
                render::escape_markdown(&c.author),
                render::escape_markdown(&c.summary)
            ));
        }
        head.push('\n');
    }
    let mut tail = String::new();
    if !true_ups.is_empty() {
        tail.push_str("\n\n");
        tail.push_str(&render::true_ups_markdown(true_ups, &plan.currency));
    }
    tail.push_str(
        "\n\n---\nMerging this pull request approves the counts in `units.lock.yaml`; `unitsync apply --gitops` then \
         sets them in the PSA and records who approved them. Change a value to approve another count; delete a line \
         to leave that PSA line alone this time; close the pull request to reject these values.\n",
    );
    if let Some(note) = held_note {
        tail.push_str(&format!("\n{}\n", render::escape_markdown(note)));
    }
    tail.push('\n');
    // The marker gets at most half of the body; the rendered plan shrinks to fit the rest.
    let mut marker = ProposalMarker::new(lock_changes(current, proposed));
    marker.true_ups = true_ups.iter().map(|c| c.entry.id.clone()).collect();
    tail.push_str(&marker.to_comment_within(GITHUB_COMMENT_LIMIT / 2));
    tail.push('\n');
    let room = GITHUB_COMMENT_LIMIT.saturating_sub(head.chars().count() + tail.chars().count());
    let markdown = render::markdown(
        plan,
        &MarkdownOptions {
            lock_diff: Some(diff.to_string()),
            max_len: room,
        },
    );
    format!("{head}{markdown}{tail}")
}

/// `unitsync: propose 2 unit changes and 1 true-up`.
fn proposal_title(unit_changes: usize, true_ups: usize) -> String {
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    match (unit_changes, true_ups) {
        (n, 0) => format!("unitsync: propose {n} unit change{}", plural(n)),
        (0, t) => format!("unitsync: propose {t} true-up{}", plural(t)),
        (n, t) => format!(
            "unitsync: propose {n} unit change{} and {t} true-up{}",
            plural(n),
            plural(t)
        ),
    }
}

/// The true-ups history calls for that are not in `true-ups.yaml` yet, not written, and not
/// `rejected` by the latest pull request closed without merging. The line terms come from the
/// PSA line each mapping resolves to now, which is also the line `apply` charges.
fn true_up_candidates(
    repo: &BillingRepo,
    plan: &Plan,
    snapshot: &PsaSnapshot,
    history: &[(std::path::PathBuf, HistoryRecord)],
    rejected: &[String],
) -> Vec<Candidate> {
    let mut known: std::collections::BTreeSet<String> = repo
        .true_ups
        .true_ups
        .iter()
        .map(|t| t.id.clone())
        .collect();
    known.extend(crate::history::written_true_ups(history));
    known.extend(rejected.iter().cloned());
    let late = crate::plan::true_up::recent(
        crate::history::late_changes(history),
        super::workflow::today(repo),
    );
    candidates(&late, &known, |mapping| {
        let line = plan.lines.iter().find(|l| l.mapping == mapping)?;
        let (contract_id, line_id) = (line.target.contract_id?, line.target.line_id?);
        let billing = snapshot
            .lines
            .iter()
            .find(|l| l.id == line_id && l.contract_id == contract_id)
            .map(|l| l.billing)
            .unwrap_or_default();
        Some(LineTerms {
            cycle: billing.cycle,
            unit_price: billing.unit_price,
        })
    })
}

/// `true-ups.yaml` with `new` added: the default branch's text with the new entries appended,
/// unless that text does not read back as the old entries plus the new ones (a layout appending
/// cannot extend), in which case every entry is written afresh.
fn new_true_ups_text(
    repo: &BillingRepo,
    base_text: Option<&str>,
    new: &[Candidate],
    currency: &str,
) -> String {
    let mut all = repo.true_ups.true_ups.clone();
    all.extend(new.iter().map(|c| c.entry.clone()));
    let appended =
        render::true_ups_text(base_text, repo.true_ups.true_ups.is_empty(), new, currency);
    if config::parse_true_ups(&appended).is_some_and(|t| t.true_ups == all) {
        appended
    } else {
        render::true_ups_text_fresh(&all)
    }
}

/// `approval: automatic`: no pull request. The new lock and the history of applying it go
/// straight to the default branch in one commit.
async fn propose_automatic<P: Psa + Sync>(
    repo: &BillingRepo,
    psa: &P,
    checkout: &Checkout,
) -> Result<Outcome, CommandError> {
    checkout.require_default_branch()?;
    let plan = make_plan(repo, psa, DesiredFrom::Lock).await?.plan;
    let proposed = plan.proposed_lock(&repo.lock);
    let mut files = Vec::new();
    let mut approved = repo.clone();
    if proposed != repo.lock {
        let count = lock_change_count(&repo.lock, &proposed);
        println!(
            "approval: automatic — approving {count} unit change{} without a pull request.",
            if count == 1 { "" } else { "s" }
        );
        files.push((
            checkout.repo_path(std::path::Path::new(config::LOCK_FILE)),
            render::lock_text(&proposed).into_bytes(),
        ));
        approved.lock = proposed;
    }
    let approval = Approval {
        commit: Some(checkout.git.head_commit()?.to_string()),
        pull_request: None,
        approved_by: Some("automatic".to_string()),
    };
    apply_merged(&approved, psa, checkout, approval, false, files).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UpdatePolicy;
    use crate::plan::{Action, PlanLine, ResolvedTarget};
    use crate::quantity::Quantity;

    #[test]
    fn a_huge_proposal_still_fits_a_pull_request_body_with_its_marker() {
        let q = |n: usize| -> Quantity { n.to_string().parse().unwrap() };
        let lines: Vec<PlanLine> = (0..5_000)
            .map(|i| PlanLine {
                reprice: None,
                effective: None,
                money: None,
                mapping: format!("customer-{i:05}/cloud-backup-premium-storage"),
                account: format!("Customer number {i} with a long company name"),
                license_type: "Cloud Backup Premium Storage".into(),
                target: ResolvedTarget::default(),
                vendor: Some(q(i + 1)),
                approved: Some(q(i)),
                psa: Some(q(i)),
                last_applied: None,
                update: UpdatePolicy::InPlace,
                action: Action::Propose {
                    from: Some(q(i)),
                    to: q(i + 1),
                },
            })
            .collect();
        let plan = Plan {
            currency: "USD".into(),
            desired: DesiredFrom::Lock,
            lines,
            unmapped: vec![],
        };
        let current = Lock::default();
        let proposed = plan.proposed_lock(&current);
        let diff = render::lock_diff("", &render::lock_text(&proposed), "units.lock.yaml");
        let foreign = vec![ForeignCommit {
            sha: "0123456789abcdef".into(),
            author: "Jane".into(),
            summary: "edit".into(),
        }];
        let body = pull_body(
            &plan,
            &diff,
            &current,
            &proposed,
            &[],
            &BranchState::Edited(foreign),
            Some("held back"),
        );
        assert!(
            body.chars().count() <= GITHUB_COMMENT_LIMIT,
            "{}",
            body.len()
        );
        assert!(body.contains("Plan: 0 to update (+0 / -0 units), 5000 to propose"));
        assert!(body.contains("commits unitsync did not make"));
        // The marker is there; too many values for one body, so it says it is partial.
        let marker = ProposalMarker::find(&body).expect("marker");
        assert!(marker.truncated);
        assert!(marker.units.len() > 100, "{}", marker.units.len());
    }
}
