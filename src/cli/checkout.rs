//! The billing repo's git checkout: where it is, that it is safe to apply from, and committing
//! and pushing what a run records. Shared by `apply`, `apply --gitops`, `propose` and the run lock.

use std::path::{Path, PathBuf};

use git2::Oid;

use super::CommandError;
use crate::config::BillingRepo;
use crate::review::git::{GitRepo, Push};

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
