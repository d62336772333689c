//! The steps `plan`, `apply` and `demo` share: load the billing repo, connect to its PSA, read the
//! vendor and the PSA side by side, and hand both to the pure plan engine.

use std::path::Path;

use crate::config::{BillingRepo, load};
use crate::ops;
pub use crate::ops::{Planned, today};
use crate::plan::{DesiredFrom, Plan};
use crate::psa::{AnyPsa, Psa};

use super::CommandError;

/// Loads and checks the billing repo; every problem is printed before the command fails.
pub fn load_repo(dir: &Path) -> Result<BillingRepo, CommandError> {
    load(dir).map_err(|e| {
        eprintln!("{e}");
        CommandError::user("the billing repo has errors")
            .hinted("fix them (see `unitsync validate`) and run again")
            .reported()
    })
}

/// The PSA client the settings name, with credentials from the environment (see
/// [`ops::connect`]).
pub fn connect(repo: &BillingRepo) -> Result<AnyPsa, CommandError> {
    Ok(ops::connect(repo)?)
}

/// [`ops::plan`], for a command.
pub async fn make_plan<P: Psa + Sync>(
    repo: &BillingRepo,
    psa: &P,
    desired: DesiredFrom,
) -> Result<Planned, CommandError> {
    Ok(ops::plan(repo, psa, desired).await?)
}

/// [`ops::record_source_accounts`], for a command.
pub fn record_source_accounts(
    repo: &BillingRepo,
    plan: &Plan,
    accounts: usize,
) -> Result<Option<(std::path::PathBuf, Vec<u8>)>, CommandError> {
    Ok(ops::record_source_accounts(repo, plan, accounts)?)
}

/// A Tokio runtime for one command. Commands are short-lived; a current-thread runtime would
/// serialise the bounded-concurrency reads, so this uses the multi-threaded one.
pub fn runtime() -> Result<tokio::runtime::Runtime, CommandError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CommandError::internal(format!("cannot start the async runtime: {e}")))
}
