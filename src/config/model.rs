//! The billing repo's files as Rust types.
//!
//! These types are the single source of truth for the file formats: `unitsync schema` derives the
//! JSON Schemas in `schema/` from them, and `validate` checks files against those schemas before
//! deserialising, so an editor, the schema and the program always agree on what a file may say.
//! Every struct denies unknown keys: a misspelt `licence_type` must be an error, not a silently
//! ignored line that leaves a customer unbilled.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::quantity::Quantity;

/// `unitsync.yaml`: how to reach the PSA and the vendor, and when and how to sync. No secrets:
/// keys and passwords come from environment variables only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The PSA whose agreement lines unitsync keeps in step with the vendor's counts.
    pub psa: PsaSettings,
    /// Where the vendor's licence and usage counts come from.
    pub source: SourceSettings,
    /// `manual` (default): changes wait for a merged pull request. `automatic`: changes are applied
    /// without review (still committed to the lock and history).
    #[serde(default)]
    pub approval: Approval,
    /// When to refresh vendor counts and when to sync approved counts to the PSA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// Limits that hold a change back for a person to confirm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guardrails: Option<Guardrails>,
    /// Who hears about proposed, applied and failed changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<Notifications>,
    /// Where pull requests are opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github: Option<GitHubSettings>,
    /// The lock that keeps two applies from writing the PSA at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_lock: Option<RunLockSettings>,
    /// How changes meet invoices: invoiced periods, prices and true-ups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing: Option<BillingSettings>,
}

/// The currency prices are shown in when `billing.currency` is not set.
pub const DEFAULT_CURRENCY: &str = "USD";

/// `billing:` in unitsync.yaml.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BillingSettings {
    /// What to do with a change whose effective date falls in a period the customer was already
    /// invoiced for: `roll-forward` (default) dates it on the first day no invoice covers yet;
    /// `refuse` holds it until its date is open.
    #[serde(default)]
    pub invoiced_period: InvoicedPeriod,
    /// The ISO 4217 code of the PSA's currency, for showing prices and revenue (default USD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z]{3}$"))]
    pub currency: Option<String>,
    /// Write each mapping's `price` to its PSA line (default false: prices are only read).
    #[serde(default)]
    pub sync_price: bool,
    /// Write each mapping's `cost` to its PSA line (default false: costs are only read).
    #[serde(default)]
    pub sync_cost: bool,
    /// Propose one-time corrections (`true-ups.yaml`) for days an invoice billed the old count
    /// because a change could only bill from the next period (default false). Each needs a merged
    /// pull request, so this needs `approval: manual`.
    #[serde(default)]
    pub true_ups: bool,
}

/// See [`BillingSettings::invoiced_period`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum InvoicedPeriod {
    #[default]
    RollForward,
    Refuse,
}

impl Settings {
    pub fn invoiced_period(&self) -> InvoicedPeriod {
        self.billing
            .as_ref()
            .map_or(InvoicedPeriod::default(), |b| b.invoiced_period)
    }

    /// Whether `propose` puts true-ups up for review (`billing.true_ups`).
    pub fn true_ups(&self) -> bool {
        self.billing.as_ref().is_some_and(|b| b.true_ups)
    }

    /// The currency code prices are shown in.
    pub fn currency(&self) -> String {
        self.billing
            .as_ref()
            .and_then(|b| b.currency.clone())
            .unwrap_or_else(|| DEFAULT_CURRENCY.to_string())
            .to_ascii_uppercase()
    }
}

impl Settings {
    /// How long an apply's lock lasts before another run may take it over.
    pub fn run_lock_expiry(&self) -> std::time::Duration {
        std::time::Duration::from_secs(
            self.run_lock
                .as_ref()
                .map_or(RunLockSettings::DEFAULT_EXPIRY_SECONDS, |l| {
                    l.expires_after_seconds
                }),
        )
    }
}

/// An apply holds a lock (on this machine, and on the git remote when there is one) from before
/// it reads the PSA until its history is recorded. A run that is killed cannot release the lock
/// on the remote, so that lock expires; the holder starts no PSA write in the last quarter of it
/// (at most the last two minutes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunLockSettings {
    /// Seconds after which a run's lock may be taken over (default 3600). Longer than the
    /// longest apply you expect; lines not started in time are left for the next run.
    #[schemars(range(min = 10))]
    pub expires_after_seconds: u64,
}

impl RunLockSettings {
    pub const DEFAULT_EXPIRY_SECONDS: u64 = 3600;
}

/// The one PSA this billing repo syncs to. Exactly one key: `connectwise` or `autotask`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum PsaSettings {
    Connectwise(ConnectWiseSettings),
    Autotask(AutotaskSettings),
}

/// What differs per PSA, in one place: the rest of unitsync asks these instead of matching on
/// the PSA. Adding a PSA adds a variant here, its settings, its client under `psa/` and its
/// sandbox under `sandbox/`.
impl PsaSettings {
    pub fn kind(&self) -> PsaKind {
        match self {
            PsaSettings::Connectwise(_) => PsaKind::ConnectWise,
            PsaSettings::Autotask(_) => PsaKind::Autotask,
        }
    }

    /// The day a dated write takes effect, as set (`effective:`).
    pub fn effective(&self) -> EffectiveDate {
        match self {
            PsaSettings::Connectwise(cw) => cw.effective,
            PsaSettings::Autotask(at) => at.effective,
        }
    }

    /// How a line's quantity is changed when the mapping does not say. Autotask has one way: an
    /// adjustment dated on the effective date, which `in-place` stands for.
    pub fn default_update(&self) -> UpdatePolicy {
        match self {
            PsaSettings::Connectwise(cw) => cw.update,
            PsaSettings::Autotask(_) => UpdatePolicy::InPlace,
        }
    }

    /// Whether an in-place change carries its own date. A ConnectWise in-place edit has none:
    /// the PSA bills it from the agreement's next invoice.
    pub fn in_place_is_dated(&self) -> bool {
        match self {
            PsaSettings::Connectwise(_) => false,
            PsaSettings::Autotask(_) => true,
        }
    }

    /// Where the PSA is, as the status page shows it.
    pub fn address(&self) -> String {
        match self {
            PsaSettings::Connectwise(cw) => cw.site.clone(),
            PsaSettings::Autotask(at) => at.url.clone().unwrap_or_else(|| "zone discovered".into()),
        }
    }
}

/// How a PSA names what unitsync reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vocabulary {
    /// What a customer's billing arrangement is called: `agreement`, `contract`.
    pub contract: &'static str,
}

/// Which PSA a billing repo talks to; decides how mapping targets are spelt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PsaKind {
    ConnectWise,
    Autotask,
}

impl PsaKind {
    /// The product's name without "PSA": `ConnectWise`, `Autotask`.
    pub fn short_name(self) -> &'static str {
        match self {
            PsaKind::ConnectWise => "ConnectWise",
            PsaKind::Autotask => "Autotask",
        }
    }

    /// `ConnectWise PSA`, `Autotask PSA`: how output names the PSA.
    pub fn name(self) -> &'static str {
        match self {
            PsaKind::ConnectWise => "ConnectWise PSA",
            PsaKind::Autotask => "Autotask PSA",
        }
    }

    pub fn vocabulary(self) -> Vocabulary {
        match self {
            PsaKind::ConnectWise => Vocabulary {
                contract: "agreement",
            },
            PsaKind::Autotask => Vocabulary {
                contract: "contract",
            },
        }
    }

    /// Files under the billing repo the PSA client keeps state in, committed with each history
    /// record so a throwaway CI checkout keeps them: the Autotask adjustment journal.
    pub fn state_files(self) -> &'static [&'static str] {
        match self {
            PsaKind::ConnectWise => &[],
            PsaKind::Autotask => &[AUTOTASK_JOURNAL_PATH],
        }
    }
}

/// Where the Autotask client journals the adjustments it posts (see `psa::autotask`).
pub const AUTOTASK_JOURNAL_PATH: &str = "history/.autotask-journal.jsonl";

impl std::fmt::Display for PsaKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// ConnectWise PSA connection facts. The API keys and client id come from `UNITSYNC_CW_PUBLIC_KEY`,
/// `UNITSYNC_CW_PRIVATE_KEY` and `UNITSYNC_CW_CLIENT_ID`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectWiseSettings {
    /// The site you log in to, such as `na.myconnectwise.net`, or a full URL
    /// (`https://cw.example.com`, `http://127.0.0.1:8080` for the sandbox).
    pub site: String,
    /// The company id typed at the ConnectWise login screen (not a customer company).
    pub company: String,
    /// Pins the API version sent in the `Accept` header, such as `2025.8`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// How a quantity change is written: `in-place` (default) or `cancel-and-readd`.
    #[serde(default)]
    pub update: UpdatePolicy,
    /// For `cancel-and-readd`: the date the new addition starts; the old one is cancelled as of
    /// the day before (the last day of the previous period), so the two never bill the same day.
    #[serde(default)]
    pub effective: EffectiveDate,
    /// Most requests in flight at once (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 16))]
    pub concurrency: Option<u8>,
    /// Seconds one request may take, from connecting to the end of the answer (default 30).
    /// A read or quantity update that runs out of time is sent again (it sets an absolute
    /// value); a re-add is looked for first, never posted twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 600))]
    pub timeout_seconds: Option<u32>,
}

/// Autotask PSA connection facts. The API user, secret and integration code come from
/// `UNITSYNC_AT_USERNAME`, `UNITSYNC_AT_SECRET` and `UNITSYNC_AT_INTEGRATION_CODE`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AutotaskSettings {
    /// The zone's REST base URL. Discovered from the API user when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The date unit adjustments take effect.
    #[serde(default)]
    pub effective: EffectiveDate,
    /// Seconds one request may take, from connecting to the end of the answer (default 30).
    /// A read that runs out of time is sent again; an adjustment is checked by re-reading the
    /// units, never posted twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 600))]
    pub timeout_seconds: Option<u32>,
}

/// How a changed quantity is written to a PSA line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum UpdatePolicy {
    /// Change the quantity on the existing line.
    #[default]
    InPlace,
    /// Cancel the existing line as of the day before the effective date (the last day of the
    /// previous period) and add a new one with the new quantity starting on the effective date, for
    /// lines that were already invoiced.
    CancelAndReadd,
}

/// The date a change takes effect in the PSA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum EffectiveDate {
    /// The first day of next month (billing in advance).
    #[default]
    FirstOfNextMonth,
    /// The day the change is applied.
    Today,
}

/// Whether changes wait for a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Approval {
    #[default]
    Manual,
    Automatic,
}

/// Where vendor counts come from. Exactly one key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum SourceSettings {
    /// A CSV export with one row per account and licence type (rows repeating a pair are added up).
    Csv(CsvSource),
    /// A JSON file holding an array of records.
    Json(JsonSource),
    /// An HTTP endpoint returning JSON.
    Http(HttpSource),
    /// A program that prints JSON records on stdout.
    Command(CommandSource),
    /// The StorageCraft MSP portal's Billing Detail report (product keys) and, optionally, its
    /// cloud usage report (GB), counted for one billing month with the portal's billing rule.
    Storagecraft(StorageCraftSource),
}

/// Names of the fields (CSV columns or JSON keys) that hold each part of a usage record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldNames {
    /// Default `account`.
    #[serde(default = "FieldNames::default_account")]
    pub account: String,
    /// Default `license_type`.
    #[serde(default = "FieldNames::default_license_type")]
    pub license_type: String,
    /// Default `units`.
    #[serde(default = "FieldNames::default_units")]
    pub units: String,
    /// Default `unit`: optional per record; empty or `count` means whole licences, anything else
    /// (such as `GB`) a decimal quantity.
    #[serde(default = "FieldNames::default_unit")]
    pub unit: String,
}

impl FieldNames {
    fn default_account() -> String {
        "account".into()
    }
    fn default_license_type() -> String {
        "license_type".into()
    }
    fn default_units() -> String {
        "units".into()
    }
    fn default_unit() -> String {
        "unit".into()
    }
}

impl Default for FieldNames {
    fn default() -> Self {
        FieldNames {
            account: Self::default_account(),
            license_type: Self::default_license_type(),
            units: Self::default_units(),
            unit: Self::default_unit(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CsvSource {
    /// Path of the CSV file, relative to the billing repo.
    pub path: String,
    /// Column names, when they differ from the defaults.
    #[serde(default)]
    pub columns: FieldNames,
    /// Field separator (default `,`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<char>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonSource {
    /// Path of the JSON file, relative to the billing repo.
    pub path: String,
    /// JSON Pointer to the array of records (default: the document itself, e.g. `/data/items`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<String>,
    /// Field names (or JSON Pointers starting with `/`) within each record.
    #[serde(default)]
    pub fields: FieldNames,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSource {
    /// The endpoint's URL (GET).
    pub url: String,
    /// Header that carries the credential, such as `Authorization` or `X-Api-Key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_header: Option<String>,
    /// Name of the environment variable holding that header's value. Never the value itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_env: Option<String>,
    /// JSON Pointer to the array of records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<String>,
    #[serde(default)]
    pub fields: FieldNames,
    /// Seconds before the request is abandoned (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandSource {
    /// The program to run (looked up on `PATH`, or relative to the billing repo).
    pub program: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// JSON Pointer to the array of records in its output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<String>,
    #[serde(default)]
    pub fields: FieldNames,
    /// Seconds before the program is stopped (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
}

/// `source.storagecraft`: the MSP portal's reports, exported as CSV.
///
/// A product key is billed for the billing month when it was active on MORE than 14 days of that
/// month: the activation date counts as an active day, the deactivation date does not, and a key
/// without a deactivation date is still active. Each (account, key type) pair in the Billing
/// Detail report becomes one record with the number of distinct billed keys (0 when none is
/// billed); sites are added into their account and a key listed twice is counted once. Cloud usage
/// rows in the billing month are summed per account and plan, in GB.
///
/// Dates may be ISO (`2026-11-03`, `2026-11-03T09:13:31`) or the portal's US style (`11/3/2026`,
/// `11/3/2026 9:13:31 AM`); slashed dates are always month/day/year, and the time is ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StorageCraftSource {
    /// Path of the Billing Detail report (CSV), relative to the billing repo.
    pub billing_detail: String,
    /// Path of the cloud usage report (CSV), relative to the billing repo. Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_usage: Option<String>,
    /// The billing month: `previous` (default: the month before today), `current`, or `YYYY-MM`.
    /// Today is the date in UTC when unitsync runs.
    #[serde(default)]
    pub month: BillingMonth,
    /// Column names in the Billing Detail report, when they differ from the defaults.
    #[serde(default)]
    pub columns: BillingDetailColumns,
    /// Column names in the cloud usage report, when they differ from the defaults.
    #[serde(default)]
    pub cloud_columns: CloudUsageColumns,
    /// A fixed licence type for every cloud usage row, such as `Cloud Premium GB`, instead of the
    /// plan column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub cloud_license_type: Option<String>,
}

/// Which calendar month the StorageCraft reports are counted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BillingMonth {
    /// The month before today's (UTC).
    #[default]
    Previous,
    /// Today's month (UTC), so far.
    Current,
    /// One explicit month.
    Month { year: i16, month: i8 },
}

impl BillingMonth {
    /// The (year, month) this stands for, given today's date.
    pub fn resolve(self, today: jiff::civil::Date) -> (i16, i8) {
        match self {
            BillingMonth::Current => (today.year(), today.month()),
            BillingMonth::Previous if today.month() == 1 => (today.year() - 1, 12),
            BillingMonth::Previous => (today.year(), today.month() - 1),
            BillingMonth::Month { year, month } => (year, month),
        }
    }
}

impl std::fmt::Display for BillingMonth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BillingMonth::Previous => f.write_str("previous"),
            BillingMonth::Current => f.write_str("current"),
            BillingMonth::Month { year, month } => write!(f, "{year:04}-{month:02}"),
        }
    }
}

impl std::str::FromStr for BillingMonth {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "{text:?} is not a billing month; write previous, current or a month such as 2026-11"
            )
        };
        match text.trim() {
            "previous" => Ok(BillingMonth::Previous),
            "current" => Ok(BillingMonth::Current),
            other => {
                let (y, m) = other.split_once('-').ok_or_else(bad)?;
                if y.len() != 4
                    || m.len() != 2
                    || !(y.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit())
                {
                    return Err(bad());
                }
                let year: i16 = y.parse().map_err(|_| bad())?;
                let month: i8 = m.parse().map_err(|_| bad())?;
                if !(1..=12).contains(&month) || year < 1 {
                    return Err(bad());
                }
                Ok(BillingMonth::Month { year, month })
            }
        }
    }
}

impl Serialize for BillingMonth {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BillingMonth {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for BillingMonth {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "BillingMonth".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^(previous|current|[0-9]{4}-(0[1-9]|1[0-2]))$",
            "description": "`previous` (the month before today, UTC), `current`, or a month such as `2026-11`."
        })
    }
}

/// Column names in the StorageCraft Billing Detail report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BillingDetailColumns {
    /// Default `Account`.
    #[serde(default = "BillingDetailColumns::default_account")]
    pub account: String,
    /// Default `Site`. Optional in the report: sites are added into their account.
    #[serde(default = "BillingDetailColumns::default_site")]
    pub site: String,
    /// Default `Product Key`.
    #[serde(default = "BillingDetailColumns::default_product_key")]
    pub product_key: String,
    /// Default `Key Type`: the licence type, such as `ShadowProtect Desktop`.
    #[serde(default = "BillingDetailColumns::default_key_type")]
    pub key_type: String,
    /// Default `Activation Date`. Empty: the key was never activated and is not billed.
    #[serde(default = "BillingDetailColumns::default_activated")]
    pub activated: String,
    /// Default `Deactivation Date`. Empty: the key is still active.
    #[serde(default = "BillingDetailColumns::default_deactivated")]
    pub deactivated: String,
}

impl BillingDetailColumns {
    fn default_account() -> String {
        "Account".into()
    }
    fn default_site() -> String {
        "Site".into()
    }
    fn default_product_key() -> String {
        "Product Key".into()
    }
    fn default_key_type() -> String {
        "Key Type".into()
    }
    fn default_activated() -> String {
        "Activation Date".into()
    }
    fn default_deactivated() -> String {
        "Deactivation Date".into()
    }
}

impl Default for BillingDetailColumns {
    fn default() -> Self {
        BillingDetailColumns {
            account: Self::default_account(),
            site: Self::default_site(),
            product_key: Self::default_product_key(),
            key_type: Self::default_key_type(),
            activated: Self::default_activated(),
            deactivated: Self::default_deactivated(),
        }
    }
}

/// Column names in the StorageCraft cloud usage report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CloudUsageColumns {
    /// Default `Account`.
    #[serde(default = "CloudUsageColumns::default_account")]
    pub account: String,
    /// Default `Plan`: the licence type, such as `Cloud Premium GB` (not read when
    /// `cloud_license_type` is set).
    #[serde(default = "CloudUsageColumns::default_plan")]
    pub plan: String,
    /// Default `Usage (GB)`.
    #[serde(default = "CloudUsageColumns::default_usage_gb")]
    pub usage_gb: String,
    /// Default `Date`. Optional in the report: when present, only rows dated in the billing month
    /// count; when absent, the whole report is taken as the billing month's.
    #[serde(default = "CloudUsageColumns::default_date")]
    pub date: String,
}

impl CloudUsageColumns {
    fn default_account() -> String {
        "Account".into()
    }
    fn default_plan() -> String {
        "Plan".into()
    }
    fn default_usage_gb() -> String {
        "Usage (GB)".into()
    }
    fn default_date() -> String {
        "Date".into()
    }
}

impl Default for CloudUsageColumns {
    fn default() -> Self {
        CloudUsageColumns {
            account: Self::default_account(),
            plan: Self::default_plan(),
            usage_gb: Self::default_usage_gb(),
            date: Self::default_date(),
        }
    }
}

/// When to refresh and when to sync. Times are wall-clock times in `timezone`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// IANA time zone name, such as `America/Los_Angeles`.
    pub timezone: String,
    /// When to propose new counts: `daily at HH:MM` or `monthly on day D at HH:MM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^(daily at \d{1,2}:\d{2}|monthly on day \d{1,2} at \d{1,2}:\d{2})$"
    ))]
    pub refresh: Option<String>,
    /// When to apply approved counts: `on-merge`, `daily at HH:MM` or `monthly on day D at HH:MM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^(on-merge|daily at \d{1,2}:\d{2}|monthly on day \d{1,2} at \d{1,2}:\d{2})$"
    ))]
    pub sync: Option<String>,
}

/// Limits that hold changes for a person to confirm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Guardrails {
    /// Largest decrease of one line, in percent of its current units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub max_decrease_percent: Option<f64>,
    /// Largest decrease of one line, in units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_decrease_units: Option<Quantity>,
    /// Refuse a run when the source returns fewer accounts than this share of last run's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub min_source_accounts_percent: Option<f64>,
    /// Most lines changed in one run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_changes_per_run: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Notifications {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailNotifications>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<Webhook>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailNotifications {
    /// Recipients.
    #[schemars(length(min = 1))]
    pub to: Vec<String>,
    /// Sender address (default `unitsync@` the SMTP host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub smtp: SmtpSettings,
}

/// SMTP server. The user name and password come from `UNITSYNC_SMTP_USERNAME` and
/// `UNITSYNC_SMTP_PASSWORD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `starttls` (default), `tls` or `none` (local relays only).
    #[serde(default)]
    pub security: SmtpSecurity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    #[default]
    Starttls,
    Tls,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// Name of the environment variable that holds the webhook URL (URLs often embed a token).
    pub url_env: String,
    /// Payload shape: `json` (default), `slack` or `teams`.
    #[serde(default)]
    pub format: WebhookFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    #[default]
    Json,
    Slack,
    Teams,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GitHubSettings {
    /// `owner/name` of the billing repo on GitHub.
    pub repository: String,
    /// Branch that carries proposed counts (default `unitsync/pending`).
    #[serde(default = "GitHubSettings::default_branch")]
    pub branch: String,
}

impl GitHubSettings {
    fn default_branch() -> String {
        "unitsync/pending".into()
    }
}

/// `mappings.yaml` (or each file in `mappings/`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MappingsFile {
    #[serde(default)]
    pub mappings: Vec<Mapping>,
}

/// One vendor account and licence type, and the PSA line that bills it.
///
/// ConnectWise targets are `company` / `agreement` / `addition`; Autotask targets are `company` /
/// `contract` / `service`. Targets are named by id (a number) or identifier (a string); a record's
/// display name is accepted only as `{ name: ... }`, a lookup that fails when it matches more than
/// one record, because PSA names repeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// Stable id used in `units.lock.yaml` and history. Default: derived from account and licence
    /// type, e.g. `bobs-dentistry/shadowprotect-desktop`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9._/-]*$"))]
    pub id: Option<String>,
    /// The vendor's account name, exactly as the source reports it.
    #[schemars(length(min = 1))]
    pub account: String,
    /// The vendor's licence type (product), exactly as the source reports it.
    #[schemars(length(min = 1))]
    pub license_type: String,
    /// The PSA company: identifier (string), id (number), or `{ name: ... }`.
    pub company: RecordRef,
    /// ConnectWise agreement: id (number) or `{ name: ... }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement: Option<RecordRef>,
    /// ConnectWise addition: product identifier (string), `{ id: N }` for one addition, or
    /// `{ name: ... }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addition: Option<RecordRef>,
    /// Autotask contract: id (number) or `{ name: ... }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<RecordRef>,
    /// Autotask contract service on `contract`: the contract service's id (a number or
    /// `{ id: N }`; not the service's id), the service's SKU (string), or the service's
    /// `{ name: ... }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<RecordRef>,
    /// Overrides the PSA's `update` policy for this line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<UpdatePolicy>,
    /// A term the MSP has committed to with the vendor for this line (such as a Microsoft NCE
    /// annual subscription): decreases that would take effect on or before `ends` are held;
    /// increases go through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commitment: Option<Commitment>,
    /// The unit price to bill (per unit, per billing period, in the PSA's currency). Written to
    /// the PSA line only with `sync_price: true` here or in `billing:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<crate::money::Money>,
    /// The unit cost to record on the line. Written only with `sync_cost: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<crate::money::Money>,
    /// Overrides `billing.sync_price` for this line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_price: Option<bool>,
    /// Overrides `billing.sync_cost` for this line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_cost: Option<bool>,
}

/// A vendor commitment: the MSP pays for the committed seats until the term ends, so the
/// customer's count may go up but not down before then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Commitment {
    /// The term's length, named in the reason a decrease is held.
    pub term: CommitmentTerm,
    /// The term's last day (YYYY-MM-DD). A decrease that takes effect after it goes through; when
    /// the term renews, move this date to the new term's last day.
    #[schemars(with = "String", regex(pattern = r"^\d{4}-\d{2}-\d{2}$"))]
    pub ends: jiff::civil::Date,
}

/// The length of a commitment term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CommitmentTerm {
    Monthly,
    Annual,
    Triennial,
}

impl fmt::Display for CommitmentTerm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CommitmentTerm::Monthly => "monthly",
            CommitmentTerm::Annual => "annual",
            CommitmentTerm::Triennial => "triennial",
        })
    }
}

impl Mapping {
    /// The explicit id, or one derived from account and licence type.
    pub fn effective_id(&self) -> String {
        match &self.id {
            Some(id) => id.clone(),
            None => derive_mapping_id(&self.account, &self.license_type),
        }
    }
}

/// `bobs-dentistry/shadowprotect-desktop` from `Bob's Dentistry` and `ShadowProtect Desktop`.
/// Apostrophes vanish (so "Bob's" is "bobs", not "bob-s"); every other run of non-alphanumeric
/// characters becomes one dash.
pub fn derive_mapping_id(account: &str, license_type: &str) -> String {
    format!("{}/{}", slug(account), slug(license_type))
}

fn slug(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut dash = false;
    for c in text.chars() {
        if matches!(c, '\'' | '’' | '`') {
            continue;
        }
        if c.is_alphanumeric() {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.extend(c.to_lowercase());
        } else {
            dash = true;
        }
    }
    if out.is_empty() { "x".into() } else { out }
}

/// How a mapping names a PSA record.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(untagged)]
pub enum RecordRef {
    /// The record's numeric id.
    Id(u64),
    /// The record's identifier (ConnectWise company identifier, product identifier).
    Identifier(String),
    /// Any of the three, spelt out.
    Explicit(ExplicitRef),
}

/// A record reference with its kind written out: `{ id: 5001 }`, `{ identifier: SP-DESKTOP }`
/// or `{ name: "Bob's Dentistry" }`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum ExplicitRef {
    Id(u64),
    Identifier(String),
    Name(String),
}

/// What a [`RecordRef`] means once its shorthand is expanded.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RefKind<'a> {
    Id(u64),
    Identifier(&'a str),
    Name(&'a str),
}

impl RecordRef {
    pub fn kind(&self) -> RefKind<'_> {
        match self {
            RecordRef::Id(id) | RecordRef::Explicit(ExplicitRef::Id(id)) => RefKind::Id(*id),
            RecordRef::Identifier(s) | RecordRef::Explicit(ExplicitRef::Identifier(s)) => {
                RefKind::Identifier(s)
            }
            RecordRef::Explicit(ExplicitRef::Name(s)) => RefKind::Name(s),
        }
    }
}

impl std::fmt::Display for RecordRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind() {
            RefKind::Id(id) => write!(f, "id {id}"),
            RefKind::Identifier(s) => write!(f, "identifier {s:?}"),
            RefKind::Name(s) => write!(f, "name {s:?}"),
        }
    }
}

/// `units.lock.yaml`: the approved unit count per mapping id. `propose` writes vendor counts here on
/// a branch; merging the pull request approves them.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    #[serde(default)]
    pub units: BTreeMap<String, Quantity>,
}

/// `true-ups.yaml`: one-time corrections for days an invoice billed the old count. `propose`
/// adds entries on its branch, merging the pull request approves them, and `apply --gitops`
/// writes each one once to the PSA.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrueUps {
    #[serde(default)]
    pub true_ups: Vec<TrueUp>,
}

/// One correction: the days `first_day`..=`last_day` billed `billed` units instead of
/// `approved`, so `quantity` units (the difference times the share of a billing period those
/// days make up) are charged once — or credited, when negative.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrueUp {
    /// `tu-` and 8 hex digits, made from the mapping and the dates. The PSA record carries it,
    /// which is how a rerun knows the correction is already written.
    #[schemars(regex(pattern = r"^tu-[0-9a-f]{8}$"))]
    pub id: String,
    /// The mapping whose line was billed the old count.
    pub mapping: String,
    /// The first day billed at the old count: the day the change was due.
    #[schemars(with = "String", regex(pattern = r"^\d{4}-\d{2}-\d{2}$"))]
    pub first_day: jiff::civil::Date,
    /// The last day billed at the old count: the day before the change billed.
    #[schemars(with = "String", regex(pattern = r"^\d{4}-\d{2}-\d{2}$"))]
    pub last_day: jiff::civil::Date,
    /// The count those days were billed at.
    pub billed: Quantity,
    /// The approved count they should have been billed at.
    pub approved: Quantity,
    /// What is charged once, in units of one billing period, to two decimals; negative credits.
    /// A reviewer may change it before merging: the merged value is what is written.
    pub quantity: Quantity,
    /// Decline the correction: it is kept here, so it is never proposed again, and never written.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub decline: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_match_the_documented_examples() {
        assert_eq!(
            derive_mapping_id("Bob's Dentistry", "ShadowProtect Desktop"),
            "bobs-dentistry/shadowprotect-desktop"
        );
        assert_eq!(
            derive_mapping_id("DigitalTorch Inc", "Cloud Premium (GB)"),
            "digitaltorch-inc/cloud-premium-gb"
        );
        assert_eq!(derive_mapping_id("  ", "Ü Ber"), "x/ü-ber");
    }
}
