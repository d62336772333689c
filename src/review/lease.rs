//! The apply lease: a lock held on the billing repo's remote, so two applies on different
//! machines (two GitHub Action runs, an Action and a workstation) never both write the PSA.
//!
//! The lease is the reference [`LEASE_REF`] on `origin`, pointing at a commit whose message
//! names the holder and when the lease expires. It is taken by a push that only succeeds if the
//! reference does not exist (or still points at the expired lease being taken over): the remote
//! checks and updates the reference in one step, so of two runs racing for it exactly one wins.
//! Nothing else is needed on the remote — no server, no GitHub permission beyond the push that
//! recording history already needs.
//!
//! A run that is killed cannot release its lease; the lease expires instead. Its holder stops
//! starting PSA writes a margin before expiry ([`Holder::write_deadline`]), so a lease taken over
//! after expiry never overlaps a write.

use git2::Oid;

use super::git::{GitError, GitRepo, Push};
use crate::apply::lock::Holder;

/// The reference on the remote that holds the lease. Outside `refs/heads/`, so it is not a branch
/// and cannot collide with one.
pub const LEASE_REF: &str = "refs/unitsync/apply-lock";

/// How many times a lost race for the lease is retried (re-reading who holds it) before giving up.
const ATTEMPTS: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error(
        "another unitsync apply holds the apply lock on origin ({}), until {}; nothing was changed",
        holder.describe(), holder.expires
    )]
    Held { holder: Holder },
    #[error(
        "origin has {LEASE_REF} (commit {commit}), but it is not a unitsync apply lock; nothing was changed"
    )]
    Foreign { commit: String },
    #[error(transparent)]
    Git(#[from] GitError),
}

impl LeaseError {
    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            LeaseError::Held { .. } | LeaseError::Foreign { .. } => Some(format!(
                "if that run is no longer running (killed or cancelled), release the lock with \
                 `git push origin --delete {LEASE_REF}`; otherwise wait for it to finish"
            )),
            LeaseError::Git(_) => Some(format!(
                "an apply takes its lock by pushing {LEASE_REF} to origin, which needs the same \
                 push access as recording history"
            )),
        }
    }
}

/// A lease this process holds. Release it with [`Lease::release`]; if the process dies first,
/// it expires.
#[derive(Debug)]
pub struct Lease {
    commit: Oid,
    pub holder: Holder,
    /// The expired lease this one replaced, if any.
    pub took_over: Option<Holder>,
}

/// Takes the lease for `holder`, on top of the checked-out commit `head`.
pub fn acquire(git: &GitRepo, head: Oid, holder: Holder) -> Result<Lease, LeaseError> {
    let message = format!("unitsync apply lock\n\n{}", holder.to_text());
    let mut last_rejection = String::new();
    for attempt in 1..=ATTEMPTS {
        let current = git.fetch_ref(LEASE_REF)?;
        let (expected, took_over) = match current {
            None => (None, None),
            Some(commit) => {
                let found = Holder::parse(&git.commit_message(commit)?).ok_or_else(|| {
                    LeaseError::Foreign {
                        commit: commit.to_string(),
                    }
                })?;
                if crate::clock::now() < found.expires {
                    return Err(LeaseError::Held { holder: found });
                }
                (Some(commit), Some(found))
            }
        };
        let commit = git.commit_files(head, &[], &message)?;
        match git.push_ref(Some(commit), LEASE_REF, Some(expected))? {
            Push::Pushed => {
                return Ok(Lease {
                    commit,
                    holder,
                    took_over,
                });
            }
            Push::Rejected(why) => {
                // Someone else took or released it between the read and the push: read again.
                tracing::debug!(attempt, %why, "lost the race for the apply lock");
                last_rejection = why;
            }
        }
    }
    Err(GitError::State(format!(
        "could not take the apply lock on origin after {ATTEMPTS} attempts: {last_rejection}"
    ))
    .into())
}

impl Lease {
    /// Deletes the lease from the remote, if it is still this one's.
    pub fn release(self, git: &GitRepo) -> Result<(), LeaseError> {
        match git.push_ref(None, LEASE_REF, Some(Some(self.commit)))? {
            Push::Pushed => Ok(()),
            Push::Rejected(why) => Err(GitError::State(format!(
                "the apply lock on origin was no longer this run's when releasing it \
                 (it expired and another run took it over?): {why}"
            ))
            .into()),
        }
    }
}
