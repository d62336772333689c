//! PSA clients behind one small trait.
//!
//! A client reads what the mappings name into the plan engine's [`PsaSnapshot`], re-reads single
//! lines before writing, writes one quantity change at a time, and probes access for `doctor`.
//! Adding a PSA adds one module here; nothing in `plan/` changes.

use std::future::Future;

use serde::Serialize;

use crate::config::{Mapping, UpdatePolicy};
use crate::plan::{PsaLine, PsaSnapshot};
use crate::quantity::Quantity;

pub mod autotask;
pub mod connectwise;
mod http;

pub use autotask::AutotaskClient;
pub use connectwise::{ConnectWiseClient, Credentials};
pub use http::RetryPolicy;

/// A PSA that unitsync can read and write.
///
/// The methods return `Send` futures so callers may spawn them on a multi-threaded runtime.
/// A credential both PSAs require from the environment (through `lookup`): trimmed, with an
/// empty value counted as missing, so the error names the variable and what to set it to.
pub(crate) fn required_secret(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    hint: &'static str,
) -> Result<secrecy::SecretString, PsaError> {
    lookup(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .map(secrecy::SecretString::from)
        .ok_or(PsaError::MissingCredential(name, hint))
}

pub trait Psa {
    /// Reads the companies, contracts and lines the mappings name — and nothing else.
    fn snapshot(
        &self,
        mappings: &[Mapping],
    ) -> impl Future<Output = Result<PsaSnapshot, PsaError>> + Send;

    /// Reads one line again, to check it still holds what the plan saw before writing it.
    fn reread_line(
        &self,
        contract_id: u64,
        line_id: u64,
    ) -> impl Future<Output = Result<PsaLine, PsaError>> + Send;

    /// Writes one quantity change.
    fn apply(
        &self,
        change: &LineChange,
    ) -> impl Future<Output = Result<AppliedChange, PsaError>> + Send;

    /// Writes one approved true-up as a one-time charge on the contract of `charge.line_id`'s
    /// line, once: a charge already carrying [`TrueUpCharge::marker`] is reported, not
    /// written again.
    fn write_true_up(
        &self,
        charge: &TrueUpCharge,
    ) -> impl Future<Output = Result<WrittenTrueUp, PsaError>> + Send;

    /// Probes reachability, credentials and permissions for `doctor`. With `probe_write`, the
    /// write permission is probed by writing a line's current quantity back unchanged (ConnectWise;
    /// Autotask writes are create-only adjustments, so its write check is always skipped).
    fn check_access(
        &self,
        mappings: &[Mapping],
        probe_write: bool,
    ) -> impl Future<Output = Vec<AccessCheck>> + Send;

    /// Checks, before a run, that the PSA's request budget covers a run over `mappings` with up
    /// to `writes` writes. PSAs without a shared budget accept every run without a request.
    fn check_budget(
        &self,
        mappings: &[Mapping],
        writes: usize,
    ) -> impl Future<Output = Result<(), PsaError>> + Send {
        let _ = (mappings, writes);
        std::future::ready(Ok(()))
    }
}

/// The PSA the settings name, for commands that work with either.
#[derive(Debug, Clone)]
pub enum AnyPsa {
    ConnectWise(ConnectWiseClient),
    Autotask(AutotaskClient),
}

impl AnyPsa {
    /// The client `settings` name, with credentials from the environment. `effective` is this
    /// run's effective day for dated writes: the ConnectWise client resumes re-adds left
    /// cancelled the day before it, and the Autotask client reads the billing period holding it
    /// and keeps its adjustment journal in the billing repo at `root`.
    pub fn from_settings(
        settings: &crate::config::PsaSettings,
        mappings: &[Mapping],
        root: &std::path::Path,
        effective: jiff::civil::Date,
    ) -> Result<AnyPsa, PsaError> {
        use crate::config::PsaSettings;
        match settings {
            PsaSettings::Connectwise(cw) => {
                let client = ConnectWiseClient::new(cw, Credentials::from_env()?)?;
                // Only a cancel-and-readd leaves an addition cancelled the day before the
                // effective date for a rerun to resume.
                let readds = mappings
                    .iter()
                    .any(|m| m.update.unwrap_or(cw.update) == UpdatePolicy::CancelAndReadd);
                Ok(AnyPsa::ConnectWise(if readds {
                    client.resuming_readds_on(effective)
                } else {
                    client
                }))
            }
            PsaSettings::Autotask(at) => {
                let options =
                    autotask::AutotaskOptions::new(root.join(autotask::JOURNAL_PATH), effective);
                AutotaskClient::new(at, autotask::Credentials::from_env()?, options)
                    .map(AnyPsa::Autotask)
            }
        }
    }
}

impl Psa for AnyPsa {
    async fn snapshot(&self, mappings: &[Mapping]) -> Result<PsaSnapshot, PsaError> {
        match self {
            AnyPsa::ConnectWise(c) => c.snapshot(mappings).await,
            AnyPsa::Autotask(c) => c.snapshot(mappings).await,
        }
    }

    async fn reread_line(&self, contract_id: u64, line_id: u64) -> Result<PsaLine, PsaError> {
        match self {
            AnyPsa::ConnectWise(c) => c.reread_line(contract_id, line_id).await,
            AnyPsa::Autotask(c) => c.reread_line(contract_id, line_id).await,
        }
    }

    async fn apply(&self, change: &LineChange) -> Result<AppliedChange, PsaError> {
        match self {
            AnyPsa::ConnectWise(c) => c.apply(change).await,
            AnyPsa::Autotask(c) => c.apply(change).await,
        }
    }

    async fn write_true_up(&self, charge: &TrueUpCharge) -> Result<WrittenTrueUp, PsaError> {
        match self {
            AnyPsa::ConnectWise(c) => c.write_true_up(charge).await,
            AnyPsa::Autotask(c) => c.write_true_up(charge).await,
        }
    }

    async fn check_access(&self, mappings: &[Mapping], probe_write: bool) -> Vec<AccessCheck> {
        match self {
            AnyPsa::ConnectWise(c) => c.check_access(mappings, probe_write).await,
            AnyPsa::Autotask(c) => c.check_access(mappings, probe_write).await,
        }
    }

    async fn check_budget(&self, mappings: &[Mapping], writes: usize) -> Result<(), PsaError> {
        match self {
            AnyPsa::ConnectWise(c) => c.check_budget(mappings, writes).await,
            AnyPsa::Autotask(c) => c.check_budget(mappings, writes).await,
        }
    }
}

/// One quantity change to write.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LineChange {
    /// The mapping id, for messages.
    pub mapping: String,
    pub contract_id: u64,
    pub line_id: u64,
    /// What the plan saw on the line.
    pub from: Quantity,
    pub to: Quantity,
    pub policy: UpdatePolicy,
    /// For `cancel-and-readd`: the day the new line starts; the old one is cancelled as of the
    /// day before.
    pub effective: jiff::civil::Date,
    /// A unit price to write with the change (`sync_price`); `None` leaves the line's price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_price: Option<crate::money::Money>,
    /// A unit cost to write with the change (`sync_cost`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_cost: Option<crate::money::Money>,
}

/// One approved true-up to write: `quantity` units of the mapping's line, charged once, for the
/// days `first_day..=last_day` that were billed the old count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrueUpCharge {
    /// The true-up id (`tu-…`), which the PSA record carries.
    pub id: String,
    pub mapping: String,
    pub contract_id: u64,
    /// The line whose product (ConnectWise) or service (Autotask) and price the charge copies.
    pub line_id: u64,
    /// Units of one billing period; negative credits.
    pub quantity: Quantity,
    pub first_day: jiff::civil::Date,
    pub last_day: jiff::civil::Date,
    /// The day the approval is carried out, in the billing time zone: an Autotask charge's
    /// purchase date, which puts it on the next invoice.
    pub written_on: jiff::civil::Date,
}

impl TrueUpCharge {
    /// The text the PSA record starts with, by which a rerun finds it: short enough for the
    /// tightest name field either PSA has.
    pub fn marker(&self) -> String {
        format!("{TRUE_UP_MARKER}{}", self.id)
    }

    /// What the record says it is, for the people who read it in the PSA.
    pub fn description(&self) -> String {
        format!(
            "{}: correction for {} to {}, billed at the old count (mapping {})",
            self.marker(),
            self.first_day,
            self.last_day,
            self.mapping
        )
    }
}

/// How every true-up record's name or description starts.
pub const TRUE_UP_MARKER: &str = "unitsync true-up ";

/// What writing a true-up did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WrittenTrueUp {
    /// The record that carries it: a ConnectWise addition, an Autotask contract charge.
    pub record_id: u64,
    /// An earlier, interrupted run had already written it; nothing was written now.
    pub found: bool,
}

/// What a true-up POST that answered `posted` (the new record's id) did. A transient failure
/// may come after the PSA carried the POST out, so the record is looked for with `find` before
/// the failure is reported: a true-up is never posted twice.
pub(crate) async fn settle_true_up_post<F, Fut>(
    posted: Result<u64, PsaError>,
    find: F,
) -> Result<WrittenTrueUp, PsaError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Option<u64>, PsaError>>,
{
    match posted {
        Ok(record_id) => Ok(WrittenTrueUp {
            record_id,
            found: false,
        }),
        Err(e) if e.is_transient() => {
            tracing::warn!("{e}; looking for the true-up before reporting a failure");
            match find().await {
                Ok(Some(record_id)) => Ok(WrittenTrueUp {
                    record_id,
                    found: false,
                }),
                _ => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum AppliedChange {
    /// The line's quantity was changed in place.
    UpdatedInPlace { line_id: u64, quantity: Quantity },
    /// The old line was cancelled as of the day before `effective` (the last day of the previous
    /// period) and a new line added with the new quantity, starting on `effective`.
    CancelledAndReadded {
        cancelled_line_id: u64,
        new_line_id: u64,
        quantity: Quantity,
        effective: jiff::civil::Date,
        /// The cancellation had been written by an earlier, interrupted run; this run only
        /// completed it.
        resumed: bool,
    },
}

impl AppliedChange {
    /// The line that now carries the quantity.
    pub fn line_id(&self) -> u64 {
        match self {
            AppliedChange::UpdatedInPlace { line_id, .. } => *line_id,
            AppliedChange::CancelledAndReadded { new_line_id, .. } => *new_line_id,
        }
    }
}

/// What `doctor` checks, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckKind {
    /// The host answers; for ConnectWise, the codebase it reports.
    Host,
    /// The API keys and login company are accepted.
    Credentials,
    /// The client id is present and well-formed.
    ClientId,
    ReadContracts,
    ReadLines,
    UpdateLines,
}

impl std::fmt::Display for CheckKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CheckKind::Host => "host reachable",
            CheckKind::Credentials => "credentials accepted",
            CheckKind::ClientId => "client id",
            CheckKind::ReadContracts => "can read contracts",
            CheckKind::ReadLines => "can read contract lines",
            CheckKind::UpdateLines => "can update contract lines",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckOutcome {
    Pass,
    Warn,
    Fail,
    /// Not run: an earlier check failed, or there was nothing to probe.
    Skipped,
}

/// One `doctor` check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessCheck {
    pub kind: CheckKind,
    pub outcome: CheckOutcome,
    /// What was found, or what went wrong and what to do.
    pub detail: String,
}

/// A failed PSA call. Messages name the request (method and path, never credentials), the
/// record, and what to do next. Response bodies quoted here have the credentials redacted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PsaError {
    #[error("environment variable {0} is not set; {1}")]
    MissingCredential(&'static str, &'static str),
    /// The address setting (`psa.connectwise.site`, `psa.autotask.url`) cannot be used.
    #[error("invalid {vendor} address {site:?}: {reason}")]
    InvalidSite {
        vendor: crate::config::PsaKind,
        site: String,
        reason: String,
    },
    #[error("mapping {mapping}: {reason}")]
    UnsupportedRef { mapping: String, reason: String },
    #[error(
        "{method} {path}: credentials rejected: check UNITSYNC_CW_PUBLIC_KEY/PRIVATE_KEY and the login company ({company:?}){detail}"
    )]
    Unauthorized {
        method: String,
        path: String,
        company: String,
        detail: String,
    },
    #[error(
        "{method} {path}: unknown company {company}: check psa.connectwise.company in unitsync.yaml (the company id typed at the ConnectWise login screen; {host} answered null for it)"
    )]
    UnknownCompany {
        method: String,
        path: String,
        company: String,
        host: String,
    },
    #[error(
        "{method} {path}: the API member lacks permission to {action}; give its security role Finance > Agreements (Inquire, Edit, Add) and Companies > Company Maintenance (Inquire){detail}"
    )]
    Forbidden {
        method: String,
        path: String,
        action: String,
        detail: String,
    },
    #[error(
        "{method} {path}: {what} not found (HTTP 404); check the id in the mapping. If every request fails like this, check `site` and `company` in unitsync.yaml: ConnectWise answers 404 for a wrong host or codebase (used {base})"
    )]
    NotFound {
        method: String,
        path: String,
        what: String,
        base: String,
    },
    #[error("{method} {path}: ConnectWise rejected the request (HTTP {status}): {message}")]
    Rejected {
        method: String,
        path: String,
        status: u16,
        message: String,
    },
    #[error(
        "{method} {path}: ConnectWise kept answering 429 Too Many Requests after {attempts} attempts; try again later or lower `concurrency`"
    )]
    RateLimited {
        method: String,
        path: String,
        attempts: u32,
    },
    #[error("{method} {path}: server error (HTTP {status}) after {attempts} attempt(s): {message}")]
    Server {
        method: String,
        path: String,
        status: u16,
        attempts: u32,
        message: String,
    },
    #[error("{method} {path}: could not reach {host} after {attempts} attempt(s): {message}")]
    Transport {
        method: String,
        path: String,
        host: String,
        attempts: u32,
        message: String,
    },
    #[error("{method} {path}: unexpected response: {message}")]
    Decode {
        method: String,
        path: String,
        message: String,
    },
    #[error(
        "{what} holds {found}, not {expected} as planned; someone changed it meanwhile — run plan again"
    )]
    Stale {
        what: String,
        expected: Quantity,
        found: Quantity,
    },
    #[error("{what}: {reason}")]
    Conflict { what: String, reason: String },
    /// An Autotask request failed; the message says why and what to do.
    #[error("{method} {path}: {message}")]
    Autotask {
        method: String,
        path: String,
        /// The HTTP status (200 when Autotask answered 200 with an `errors` array).
        status: u16,
        message: String,
    },
    #[error(
        "this run needs ~{needed} Autotask API requests; only {remaining} of the hourly {threshold} remain (shared by every integration on this Autotask database); try after {retry_after}"
    )]
    RequestBudget {
        needed: u64,
        remaining: u64,
        /// The threshold as Autotask reports it, formatted (`10,000`).
        threshold: String,
        retry_after: String,
    },
    #[error("Autotask journal {path}: {reason}")]
    Journal { path: String, reason: String },
    #[error(
        "addition {cancelled} was cancelled as of {last_day} but its replacement starting {effective} could not be added: {source}; add the new addition by hand or run apply again (it resumes)"
    )]
    ReaddFailed {
        cancelled: u64,
        /// The old addition's `cancelledDate`: the day before `effective`.
        last_day: jiff::civil::Date,
        effective: jiff::civil::Date,
        source: Box<PsaError>,
    },
}

impl PsaError {
    /// Whether the request may have failed before or after the server acted on it (a server
    /// error or a lost connection), so a create must be checked before it is repeated.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            PsaError::Server { .. }
                | PsaError::Transport { .. }
                | PsaError::RateLimited { .. }
                | PsaError::Autotask { status: 429, .. }
        )
    }
}
