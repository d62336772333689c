//! The Autotask sandbox's seed: the API user, and the companies, services, Recurring Service
//! contracts and contract services it starts with. These are the sandbox's own types, written
//! from `reference/psa-apis.md` section B and the Autotask REST swagger; they share nothing with
//! the client in `crate::psa`.
//!
//! The YAML uses snake_case keys; the server renders records with the swagger's camelCase field
//! names (`companyName`, `contractID`, …). `ContractServiceUnits` are not seeded row by row: each
//! contract service gets one row per month of its contract (`start_date` to `end_date`), all
//! holding the contract service's `units`.

use std::collections::BTreeSet;
use std::path::Path;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use super::seed::SeedError;

/// The default `externalRequestThreshold`: Autotask's 10,000 requests per rolling hour.
pub const DEFAULT_REQUEST_THRESHOLD: u32 = 10_000;
/// The default `requestThresholdTimeframe`, in minutes.
pub const DEFAULT_THRESHOLD_TIMEFRAME_MINUTES: u32 = 60;
/// Autotask's thread limit: concurrent requests per object endpoint.
pub const DEFAULT_THREAD_LIMIT: usize = 3;
/// `contractType` of a Recurring Service contract (the only kind with contract services).
pub const CONTRACT_TYPE_RECURRING_SERVICE: i64 = 7;
/// `status` of an active contract (0 = inactive).
pub const CONTRACT_STATUS_ACTIVE: i64 = 1;

/// Everything the Autotask sandbox serves. Load with [`AtSeed::from_yaml`] or [`AtSeed::load`];
/// the demo data is [`super::autotask_demo_seed`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtSeed {
    pub login: AtLogin,
    /// `zoneName` in `zoneInformation` (default `Sandbox`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_name: Option<String>,
    /// `externalRequestThreshold`: authenticated requests allowed per timeframe (default 10,000).
    #[serde(default = "default_threshold")]
    pub request_threshold: u32,
    /// `requestThresholdTimeframe` in minutes (default 60).
    #[serde(default = "default_timeframe")]
    pub threshold_timeframe_minutes: u32,
    /// Concurrent requests allowed per object endpoint (default 3).
    #[serde(default = "default_thread_limit")]
    pub thread_limit: usize,
    #[serde(default)]
    pub companies: Vec<AtCompany>,
    #[serde(default)]
    pub services: Vec<AtService>,
    #[serde(default)]
    pub contracts: Vec<AtContract>,
    #[serde(default)]
    pub contract_services: Vec<AtContractService>,
    /// The `ContractCharges.chargeType` picklist. Picklists are defined per Autotask instance,
    /// so a client must read them (`entityInformation/fields`) rather than assume numbers; the
    /// default values here are deliberately not 1.
    #[serde(default = "default_charge_types")]
    pub charge_types: Vec<AtPicklistValue>,
    /// The `ContractCharges.status` picklist (per instance, like `charge_types`).
    #[serde(default = "default_charge_statuses")]
    pub charge_statuses: Vec<AtPicklistValue>,
}

/// One value of a picklist (`PickListValue` in the swagger).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtPicklistValue {
    pub value: i64,
    pub label: String,
    #[serde(default)]
    pub is_default: bool,
    #[serde(default = "yes")]
    pub active: bool,
}

fn picklist(values: &[(i64, &str, bool, bool)]) -> Vec<AtPicklistValue> {
    values
        .iter()
        .map(|&(value, label, is_default, active)| AtPicklistValue {
            value,
            label: label.into(),
            is_default,
            active,
        })
        .collect()
}

fn default_charge_types() -> Vec<AtPicklistValue> {
    picklist(&[
        (3, "Capitalized", false, true),
        (4, "Operational", true, true),
    ])
}

fn default_charge_statuses() -> Vec<AtPicklistValue> {
    picklist(&[
        (1, "Pending Purchase", false, false),
        (6, "Ready to Ship", false, true),
        (8, "Pending Approval", true, true),
    ])
}

fn default_threshold() -> u32 {
    DEFAULT_REQUEST_THRESHOLD
}

fn default_timeframe() -> u32 {
    DEFAULT_THRESHOLD_TIMEFRAME_MINUTES
}

fn default_thread_limit() -> usize {
    DEFAULT_THREAD_LIMIT
}

fn yes() -> bool {
    true
}

/// The API-only user's credentials (sent as the `UserName`, `Secret` and `ApiIntegrationCode`
/// headers).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtLogin {
    /// Matched case-insensitively, like an e-mail address.
    pub username: String,
    /// Matched exactly.
    pub secret: String,
    /// The API tracking identifier; matched exactly.
    pub integration_code: String,
}

/// A company (`CompanyModel`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtCompany {
    pub id: i64,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// `companyType`: 1 customer (default), 3 prospect, 5 vendor, 7 partner, …; the MSP itself
    /// is usually 0's "owner" record.
    #[serde(default = "customer_type")]
    pub company_type: i64,
    #[serde(default = "yes")]
    pub active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<i64>,
}

fn customer_type() -> i64 {
    1
}

/// A service in the catalogue (`ServiceModel`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtService {
    pub id: i64,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub unit_price: f64,
    #[serde(default)]
    pub unit_cost: f64,
    /// `periodType`: 1 monthly (default), 2 quarterly, 3 semi-annual, 4 yearly.
    #[serde(default = "monthly")]
    pub period_type: i64,
    /// `billingCodeID`: the service's billing (allocation) code, which a contract charge for it
    /// bills under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_code: Option<i64>,
    #[serde(default = "yes")]
    pub active: bool,
}

fn monthly() -> i64 {
    1
}

/// A contract (`ContractModel`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtContract {
    pub id: i64,
    pub company: i64,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// `contractType`: 7 = Recurring Service (default).
    #[serde(default = "recurring")]
    pub contract_type: i64,
    /// `status`: 1 active (default), 0 inactive.
    #[serde(default = "active_status")]
    pub status: i64,
    /// First day of the contract (a date, `YYYY-MM-DD`).
    pub start_date: Date,
    /// Last day of the contract.
    pub end_date: Date,
    #[serde(default)]
    pub is_default: bool,
    /// Periods ending on or before this day are approved and posted (invoiced): their
    /// `ContractServiceUnits` rows carry an `approveAndPostDate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posted_through: Option<Date>,
    /// The day they were posted (default: the first day of the last posted period).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posted_on: Option<Date>,
}

fn recurring() -> i64 {
    CONTRACT_TYPE_RECURRING_SERVICE
}

fn active_status() -> i64 {
    CONTRACT_STATUS_ACTIVE
}

/// A service on a contract (`ContractServiceModel`) with its unit count, which the sandbox
/// copies into one `ContractServiceUnits` row per month of the contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtContractService {
    pub id: i64,
    pub contract: i64,
    pub service: i64,
    /// Units in every period (int32, as in Autotask).
    pub units: i32,
    /// Defaults to the service's unit price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_price: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice_description: Option<String>,
}

impl AtSeed {
    /// Parses and checks a YAML seed.
    pub fn from_yaml(text: &str) -> Result<AtSeed, SeedError> {
        let seed: AtSeed =
            serde_saphyr::from_str(text).map_err(|e| SeedError::Yaml(e.to_string()))?;
        seed.check()?;
        Ok(seed)
    }

    /// Reads, parses and checks a YAML seed file.
    pub fn load(path: &Path) -> Result<AtSeed, SeedError> {
        let text = std::fs::read_to_string(path).map_err(|source| SeedError::Read {
            path: path.display().to_string(),
            source,
        })?;
        AtSeed::from_yaml(&text).map_err(|e| match e {
            SeedError::Yaml(m) => SeedError::Yaml(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Checks ids are unique, references resolve and numbers fit Autotask's types.
    pub fn check(&self) -> Result<(), SeedError> {
        let invalid = |m: String| Err(SeedError::Invalid(m));
        if self.login.username.is_empty()
            || self.login.secret.is_empty()
            || self.login.integration_code.is_empty()
        {
            return invalid("login needs username, secret and integration_code".into());
        }
        if self.request_threshold == 0 || self.threshold_timeframe_minutes == 0 {
            return invalid("request_threshold and threshold_timeframe_minutes must be ≥ 1".into());
        }
        if self.thread_limit == 0 {
            return invalid("thread_limit must be ≥ 1".into());
        }
        let unique = |what: &str, ids: Vec<i64>| -> Result<BTreeSet<i64>, SeedError> {
            let mut seen = BTreeSet::new();
            for id in ids {
                if !seen.insert(id) {
                    return Err(SeedError::Invalid(format!("{what} id {id} appears twice")));
                }
            }
            Ok(seen)
        };
        let companies = unique("company", self.companies.iter().map(|c| c.id).collect())?;
        let services = unique("service", self.services.iter().map(|s| s.id).collect())?;
        let contracts = unique("contract", self.contracts.iter().map(|c| c.id).collect())?;
        unique(
            "contract service",
            self.contract_services.iter().map(|c| c.id).collect(),
        )?;
        for c in &self.contracts {
            if !companies.contains(&c.company) {
                return invalid(format!(
                    "contract {} names unknown company {}",
                    c.id, c.company
                ));
            }
            if c.end_date < c.start_date {
                return invalid(format!("contract {} ends before it starts", c.id));
            }
        }
        let mut pairs = BTreeSet::new();
        for cs in &self.contract_services {
            if !contracts.contains(&cs.contract) {
                return invalid(format!(
                    "contract service {} names unknown contract {}",
                    cs.id, cs.contract
                ));
            }
            if !services.contains(&cs.service) {
                return invalid(format!(
                    "contract service {} names unknown service {}",
                    cs.id, cs.service
                ));
            }
            if cs.units < 0 {
                return invalid(format!("contract service {} has negative units", cs.id));
            }
            if !pairs.insert((cs.contract, cs.service)) {
                return invalid(format!(
                    "contract {} has service {} twice",
                    cs.contract, cs.service
                ));
            }
        }
        Ok(())
    }
}
