//! Taking and releasing the run lock around an apply: the machine's lock file, and the lease on
//! the git remote when the billing repo has one (see [`crate::apply::lock`] and
//! [`crate::review::lease`] for why both).

use std::path::PathBuf;

use super::CommandError;
use super::checkout::Checkout;
use crate::apply::lock::{Holder, LocalLock, LockError};
use crate::config::BillingRepo;
use crate::review::lease::{self, Lease, LeaseError};

/// The locks one apply holds. Taken before the PSA is read, so the plan it applies is made
/// while no other run can write.
#[derive(Debug)]
pub struct RunLock {
    _local: LocalLock,
    lease: Option<Lease>,
    holder: Holder,
}

impl RunLock {
    /// Takes the local lock, then — when `checkout` has a remote — the remote lease, failing at
    /// once (no waiting) when another run holds either.
    pub fn take(repo: &BillingRepo, checkout: Option<&Checkout>) -> Result<RunLock, CommandError> {
        let holder = Holder::this_process(repo.settings.run_lock_expiry());
        let path: PathBuf = match checkout {
            Some(checkout) => checkout.git.common_dir().join(LocalLock::FILE_NAME),
            // Not a git checkout: a file in the temporary directory named after the folder,
            // rather than a stray file among the billing repo's own.
            None => {
                let root = std::fs::canonicalize(&repo.root).unwrap_or_else(|_| repo.root.clone());
                std::env::temp_dir().join(format!(
                    "unitsync-apply-{:016x}.lock",
                    crate::stable_hash::fnv1a(root.as_os_str().as_encoded_bytes())
                ))
            }
        };
        let local = LocalLock::acquire(&path, &holder).map_err(|e| match e {
            LockError::Held { .. } => CommandError::external(e.to_string()).hinted(
                "wait for that run to finish; a run that was killed released this lock when it ended",
            ),
            LockError::Io { .. } => CommandError::external(e.to_string()),
        })?;
        let lease = match checkout {
            Some(checkout) if checkout.git.has_remote() => {
                let head = checkout.git.head_commit()?;
                let lease =
                    lease::acquire(&checkout.git, head, holder.clone()).map_err(lease_error)?;
                if let Some(old) = &lease.took_over {
                    println!(
                        "Took over the apply lock left by {}, which expired at {}.",
                        old.describe(),
                        old.expires
                    );
                }
                Some(lease)
            }
            _ => None,
        };
        Ok(RunLock {
            _local: local,
            lease,
            holder,
        })
    }

    /// The moment after which this run starts no PSA write.
    pub fn write_deadline(&self) -> jiff::Timestamp {
        self.holder.write_deadline()
    }

    /// Releases the remote lease. A failure is a warning, not a failed run: whatever the run did
    /// is done and recorded, and the lease expires on its own.
    pub fn release(self, checkout: Option<&Checkout>) {
        if let (Some(lease), Some(checkout)) = (self.lease, checkout)
            && let Err(e) = lease.release(&checkout.git)
        {
            eprintln!(
                "warning: could not release the apply lock on origin: {e}\n\
                 hint: it expires at {}; or delete it now with `git push origin --delete {}`",
                self.holder.expires,
                lease::LEASE_REF
            );
        }
    }
}

fn lease_error(e: LeaseError) -> CommandError {
    let hint = e.hint();
    let error = CommandError::external(e.to_string());
    match hint {
        Some(hint) => error.hinted(hint),
        None => error,
    }
}
