//! The GitOps side shared by `propose` and `apply --gitops`: the checkout, GitHub, and applying
//! the lock merged on the default branch with its history committed and pushed.

use std::path::{Path, PathBuf};

use git2::Oid;

use super::workflow::make_plan;
use super::{CommandError, Outcome};
use crate::apply::{ApplyOptions, effective_date, execute, force_drift, found_applied};
use crate::config::{BillingRepo, EffectiveDate};
use crate::history::{HistoryRecord, LineOutcome};
use crate::plan::{Action, DesiredFrom};
use crate::psa::Psa;
use crate::render;
use crate::review::git::{GitRepo, Push};
use crate::review::{GitHub, GitHubConfig};

/// How many times a history commit is rebuilt on a moved default branch before giving up.
pub const PUSH_ATTEMPTS: u32 = 5;

/// The billing repo's git checkout and its default branch.
pub struct Checkout {
    pub git: GitRepo,
    /// The default branch (`main`).
    pub base: String,
    /// The billing repo's folder inside the git repository (`""` at the top).
    prefix: PathBuf,
}

impl Checkout {
    pub fn open(repo: &BillingRepo) -> Result<Checkout, CommandError> {
        // Not a git clone (or a bare one) is where the command was run, not git failing.
        let git = GitRepo::open(&repo.root).map_err(|e| {
            CommandError::user(e.to_string())
                .hinted("propose and apply --gitops work in a git clone of the billing repo")
        })?;
        let base = git.default_branch()?;
        let root = std::fs::canonicalize(&repo.root).unwrap_or_else(|_| repo.root.clone());
        let workdir =
            std::fs::canonicalize(git.workdir()).unwrap_or_else(|_| git.workdir().to_path_buf());
        let prefix = root
            .strip_prefix(&workdir)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        Ok(Checkout { git, base, prefix })
    }

    /// A billing-repo-relative path as a path inside the git repository, `/`-separated.
    pub fn repo_path(&self, relative: &Path) -> String {
        self.prefix
            .join(relative)
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/")
    }

    /// Refuses to run unless HEAD is the default branch and tracked files are unchanged: what is
    /// applied must be exactly what was merged.
    pub fn require_default_branch(&self) -> Result<(), CommandError> {
        self.require_branch(
            "only merged counts are applied",
            format!("`git switch {}` and run again", self.base),
        )?;
        // history/ is unitsync's own: what an interrupted run left there is committed by the
        // next apply (see `leftover_history`), and stashing the adjustment journal would lose
        // the record that stops an Autotask adjustment being posted twice.
        let history = self.repo_path(Path::new(crate::config::HISTORY_DIR));
        if self.git.has_uncommitted_changes_outside(&history)? {
            return Err(CommandError::user(
                "the checkout has uncommitted changes; only committed counts are applied",
            )
            .hinted("commit or stash them, then run again"));
        }
        Ok(())
    }

    /// Whether `remote` only adds unitsync's own commits to `head`, changing nothing but
    /// history/, and every uncommitted file under history/ here is absent from `remote` or
    /// identical to it there (so catching up loses nothing).
    fn only_history_since(&self, head: Oid, remote: Oid) -> Result<bool, CommandError> {
        let git = &self.git;
        if !git.is_ancestor(head, remote)? || !git.foreign_commits(remote, head)?.is_empty() {
            return Ok(false);
        }
        let history = format!("{}/", self.repo_path(Path::new(crate::config::HISTORY_DIR)));
        if !git
            .changed_paths(head, remote)?
            .iter()
            .all(|path| path.starts_with(&history))
        {
            return Ok(false);
        }
        for (path, bytes) in self.leftover_history()? {
            if let Some(there) = git.read_file(remote, &path)?
                && there.as_bytes() != bytes.as_slice()
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Files under history/ that are new or changed in the working tree: records (and the
    /// Autotask journal, and the source-accounts marker) written by a run that was killed or
    /// failed to push before committing them. The next apply commits them with its own record,
    /// so the history on the remote is complete.
    pub fn leftover_history(&self) -> Result<Vec<(String, Vec<u8>)>, CommandError> {
        let history = self.repo_path(Path::new(crate::config::HISTORY_DIR));
        let mut files = Vec::new();
        for path in self.git.changes_under(&history)? {
            // A record being written when its run was killed (see `HistoryRecord::write`).
            if path.ends_with(".tmp") {
                continue;
            }
            match std::fs::read(self.git.workdir().join(&path)) {
                Ok(bytes) => files.push((path, bytes)),
                // Deleted in the working tree: not something a run leaves behind; leave it.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(CommandError::external(format!("cannot read {path}: {e}")));
                }
            }
        }
        Ok(files)
    }
}

impl Checkout {
    /// Refuses when HEAD is not on the default branch (tracked changes are allowed): a local
    /// apply on another branch would write counts nobody has approved.
    pub fn require_on_default_branch(&self) -> Result<(), CommandError> {
        self.require_branch(
            "apply runs only from the default branch",
            format!(
                "`git switch {}` and run again; `unitsync plan` shows what a branch would change",
                self.base
            ),
        )
    }

    /// Refuses unless HEAD is the default branch, saying `why` it must be and what to do.
    fn require_branch(&self, why: &str, hint: String) -> Result<(), CommandError> {
        match self.git.head_branch() {
            Some(head) if head == self.base => Ok(()),
            head => Err(CommandError::user(format!(
                "HEAD is {}, not the default branch {}; {why}",
                head.map_or_else(|| "detached".to_string(), |h| format!("branch {h}")),
                self.base
            ))
            .hinted(hint)),
        }
    }

    /// Refuses when the remote's default branch has commits this checkout lacks (another run
    /// recorded history, or a pull request was merged, since it was made). Without a remote
    /// there is nothing to compare with.
    pub fn require_up_to_date(&self) -> Result<(), CommandError> {
        if !self.git.has_remote() {
            return Ok(());
        }
        self.git.fetch()?;
        let head = self.git.head_commit()?;
        match self.git.remote_branch(&self.base) {
            Some(remote) if remote != head && self.only_history_since(head, remote)? => {
                // Another run (or this checkout's own run, killed after pushing) recorded
                // history: nothing approved changed, so catch up rather than refuse — the
                // records are what tells this run what is already applied.
                println!(
                    "Catching up with the history unitsync recorded on {} since this checkout ({} → {}).",
                    self.base,
                    &head.to_string()[..7],
                    &remote.to_string()[..7]
                );
                self.git.reset_hard(remote).map_err(CommandError::from)
            }
            Some(remote) if remote != head => Err(CommandError::external(format!(
                "origin/{} is at {}, but this checkout is at {}: the default branch moved since \
                 this checkout was made; nothing was changed",
                self.base,
                &remote.to_string()[..7],
                &head.to_string()[..7]
            ))
            .hinted(
                "`git pull` (or start the workflow again) and run again, so the latest approval \
                 and history are applied",
            )),
            _ => Ok(()),
        }
    }
}

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

/// Commits `files` on top of the checked-out default branch and pushes the commit there. When
/// the push is refused because the branch moved (someone else pushed), fetches and makes the same
/// commit again on the new tip — history records are new files, so this never conflicts with
/// what others push (a changed file, such as the lock under automatic approval, is only written
/// if nobody else changed it meanwhile) — up to [`PUSH_ATTEMPTS`] times.
/// Afterwards the checkout is at the pushed commit. Returns it and the attempts it took.
pub fn commit_and_push(
    checkout: &Checkout,
    files: &[(String, Vec<u8>)],
    message: &str,
) -> Result<(Oid, u32), CommandError> {
    let git = &checkout.git;
    let original = git.head_commit()?;
    let mut parent = original;
    for attempt in 1..=PUSH_ATTEMPTS {
        let commit = git.commit_files(parent, files, message)?;
        match git.push(commit, &checkout.base, None)? {
            Push::Pushed => {
                git.reset_hard(commit)?;
                return Ok((commit, attempt));
            }
            Push::Rejected(why) => {
                tracing::warn!(attempt, %why, "push refused; fetching and committing again on the new tip");
                println!(
                    "{} moved on the remote while recording (attempt {attempt}); committing again on top of it.",
                    checkout.base
                );
                git.fetch()?;
                let tip = git.remote_branch(&checkout.base).ok_or_else(|| {
                    CommandError::external(format!(
                        "origin/{} disappeared while recording history",
                        checkout.base
                    ))
                })?;
                // History files are new; a file that is not (the lock, under automatic
                // approval) must not have been changed by the push that got in first.
                for (path, _) in files {
                    if !git.same_file(original, tip, path)? {
                        return Err(CommandError::external(format!(
                            "{path} was changed on {} while unitsync was recording; not overwriting it",
                            checkout.base
                        ))
                        .hinted("the PSA was changed and the record is in history/ in this checkout; pull, then commit and push it by hand"));
                    }
                }
                parent = tip;
            }
        }
    }
    Err(CommandError::external(format!(
        "could not push the history commit to {} after {PUSH_ATTEMPTS} attempts: the branch keeps moving",
        checkout.base
    ))
    .hinted("the PSA was changed and the record is in history/ in this checkout; commit and push it by hand"))
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
    super::apply::print_holds(&plan);

    let options = ApplyOptions {
        effective: effective_date(effective_policy(repo), super::apply::today(repo)),
        concurrency: 4,
        deadline: Some(deadline),
    };
    let mut lines = execute(psa, &plan, &options).await;
    lines.extend(found_applied(&plan));
    let true_ups = if repo.settings.true_ups() {
        crate::apply::write_true_ups(
            psa,
            &plan,
            &repo.true_ups.true_ups,
            &crate::history::written_true_ups(&history),
            super::apply::today(repo),
            Some(deadline),
        )
        .await
    } else {
        let waiting = repo
            .true_ups
            .true_ups
            .iter()
            .filter(|t| !t.decline)
            .filter(|t| !crate::history::written_true_ups(&history).contains(&t.id))
            .count();
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
    let mut message = if applied == 0 && lines.is_empty() && true_ups.is_empty() {
        "unitsync: record the history an interrupted run left uncommitted".to_string()
    } else if lines.is_empty() {
        format!(
            "unitsync: write {written_true_ups} true-up{}",
            if written_true_ups == 1 { "" } else { "s" }
        )
    } else {
        format!(
            "unitsync: apply {applied} unit change{}{}",
            if applied == 1 { "" } else { "s" },
            if true_ups.is_empty() {
                String::new()
            } else {
                format!(
                    " and write {written_true_ups} true-up{}",
                    if written_true_ups == 1 { "" } else { "s" }
                )
            }
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
    super::apply::print_outcomes(&lines);
    print_true_ups(&true_ups);
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

/// One line per true-up attempted: what was written where, or why not.
fn print_true_ups(true_ups: &[crate::history::HistoryTrueUp]) {
    for t in true_ups {
        let record = t
            .record
            .map_or_else(String::new, |r| format!(" (PSA record {r})"));
        match (&t.outcome, &t.reason) {
            (LineOutcome::Applied, None) => println!(
                "true-up  {} {}: wrote {} once{record}",
                t.id, t.mapping, t.quantity
            ),
            (LineOutcome::Applied, Some(reason)) => {
                println!("true-up  {} {}: {reason}{record}", t.id, t.mapping)
            }
            (_, reason) => println!(
                "failed   true-up {} {}: {}",
                t.id,
                t.mapping,
                reason.as_deref().unwrap_or("not written")
            ),
        }
    }
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
