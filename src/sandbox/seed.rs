//! The sandbox's seed file: the login, and the companies, agreements, additions and catalog
//! products the sandbox starts with. These are the sandbox's own types, written from the
//! ConnectWise field lists in `reference/psa-apis.md`; they share nothing with the client in
//! `crate::psa`.
//!
//! The YAML uses snake_case keys; the server renders the records in ConnectWise's camelCase JSON.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The ConnectWise codebase most cloud and on-premises servers report.
pub const DEFAULT_CODEBASE: &str = "v4_6_release/";

/// Everything the sandbox serves. Load with [`Seed::from_yaml`] or [`Seed::load`]; the demo data
/// is [`super::demo_seed`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    pub login: SeedLogin,
    /// What `/login/companyinfo/{company}` reports as `Codebase`; ends with `/`.
    #[serde(default = "default_codebase")]
    pub codebase: String,
    #[serde(default)]
    pub companies: Vec<SeedCompany>,
    #[serde(default)]
    pub agreements: Vec<SeedAgreement>,
    #[serde(default)]
    pub additions: Vec<SeedAddition>,
    /// Catalog items (`/procurement/catalog`). Products referenced by additions are added to the
    /// catalog automatically when missing here.
    #[serde(default)]
    pub products: Vec<SeedProduct>,
}

fn default_codebase() -> String {
    DEFAULT_CODEBASE.to_string()
}

impl SeedLogin {
    /// The identifier that records changed by this member show as `_info.updatedBy`.
    pub fn member_identifier(&self) -> &str {
        self.member.as_deref().unwrap_or(DEFAULT_API_MEMBER)
    }
}

/// The member identifier in `_info.updatedBy` when the login names none.
pub const DEFAULT_API_MEMBER: &str = "APIMember";

/// The API member's credentials and what it may do.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedLogin {
    /// The login company id (typed at the ConnectWise login screen); matched case-insensitively.
    pub company: String,
    /// `CompanyName` in `/login/companyinfo`; defaults to `company`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_name: Option<String>,
    pub public_key: String,
    pub private_key: String,
    /// The API member's identifier (System > Members > API Members), which records it changes
    /// carry as `_info.updatedBy`; defaults to [`DEFAULT_API_MEMBER`]. The keys are credentials
    /// and never appear in a record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// The `clientId` header value every API call must carry. When absent, any non-empty
    /// `clientId` is accepted (a missing one is still refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The member's security role cannot add or edit: PATCH and POST answer 403 `Security`.
    #[serde(default)]
    pub read_only: bool,
    /// API paths (below `apis/3.0/`, such as `finance/agreements`) the member may not use at all:
    /// any request whose path starts with one of them answers 403 `Security`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

/// A company (customer) record.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedCompany {
    pub id: i64,
    /// Unique short name, such as `BobsDentistry`.
    pub identifier: String,
    /// Display name; names repeat.
    pub name: String,
    /// `status/name`, such as `Active` (default) or `Inactive`.
    #[serde(default = "active")]
    pub status: String,
    /// In the recycle bin (`deletedFlag`).
    #[serde(default)]
    pub deleted_flag: bool,
}

fn active() -> String {
    "Active".to_string()
}

/// An agreement (contract) of a company.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedAgreement {
    pub id: i64,
    pub name: String,
    /// The company's id.
    pub company: i64,
    /// The agreement type's name (`type/name`), such as `Managed Backup`.
    #[serde(rename = "type")]
    pub agreement_type: String,
    /// `Active` (default), `Cancelled`, `Expired` or `Inactive`.
    #[serde(default = "active")]
    pub agreement_status: String,
    #[serde(default)]
    pub cancelled_flag: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_cancelled: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_invoice_date: Option<String>,
    /// `billingCycle/name` (default `Monthly`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_cycle: Option<String>,
}

/// A catalog item (`/procurement/catalog`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedProduct {
    pub id: i64,
    pub identifier: String,
    pub description: String,
    #[serde(default)]
    pub price: f64,
    #[serde(default)]
    pub cost: f64,
    #[serde(default)]
    pub inactive_flag: bool,
}

/// How an addition names its product (`product` in ConnectWise: `{id, identifier}`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedProductRef {
    pub id: i64,
    pub identifier: String,
    /// Defaults to the catalog item's description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// An agreement addition (a billed line). Also the shape [`super::SandboxHandle::additions`]
/// reports the sandbox's current state in.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedAddition {
    pub id: i64,
    /// The agreement's id (`agreementId`).
    pub agreement: i64,
    pub product: SeedProductRef,
    /// Units billed; decimals allowed (cloud storage in GB).
    pub quantity: f64,
    #[serde(default)]
    pub less_included: f64,
    #[serde(default)]
    pub unit_price: f64,
    #[serde(default)]
    pub unit_cost: f64,
    /// `Billable` (default), `DoNotBill` or `NoCharge`.
    #[serde(default = "billable")]
    pub bill_customer: String,
    #[serde(default)]
    pub taxable_flag: bool,
    /// ISO-8601 UTC, such as `2025-01-01T00:00:00Z`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_date: Option<String>,
    /// Set when the line was cancelled (ended); such lines are history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_date: Option<String>,
    /// Defaults to the agreement's status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement_status: Option<String>,
    /// Defaults to the product's description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice_description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    /// The line's position on the agreement and its invoices (`sequenceNumber`).
    #[serde(default)]
    pub sequence_number: f64,
    /// Unit of measure (`uom`); `Each` when not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uom: Option<String>,
    #[serde(default)]
    pub purchase_item_flag: bool,
    #[serde(default)]
    pub special_order_flag: bool,
    #[serde(default)]
    pub prorate_current_period_flag: bool,
    /// `invoiceGrouping`: how the line is grouped on invoices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice_grouping: Option<SeedReference>,
    /// `opportunity` the line was sold on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opportunity: Option<SeedReference>,
    /// `customFields`: the values of the addition's user-defined fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_fields: Vec<SeedCustomField>,
    /// Units already on an invoice (`billedQuantity`); non-zero means the line was invoiced.
    #[serde(default)]
    pub billed_quantity: f64,
    /// `_info.lastUpdated`; the server sets it on every change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<String>,
    /// `_info.updatedBy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
}

/// A reference to another record by id, with its name (`{id, name}`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedReference {
    pub id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// One user-defined field value (`CustomFieldValue`: `{id, caption, type, entryMethod,
/// numberOfDecimals, value}`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedCustomField {
    pub id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// `Text`, `Number`, `Checkbox`, `Date`, …
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub field_type: Option<String>,
    /// `EntryField`, `List`, `Option` or `Date`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_decimals: Option<i64>,
    /// A string, number or boolean.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
}

fn billable() -> String {
    "Billable".to_string()
}

/// A seed file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Yaml(String),
    #[error("invalid seed: {0}")]
    Invalid(String),
}

impl Seed {
    /// Parses and checks a YAML seed.
    pub fn from_yaml(text: &str) -> Result<Seed, SeedError> {
        let seed: Seed =
            serde_saphyr::from_str(text).map_err(|e| SeedError::Yaml(e.to_string()))?;
        seed.check()?;
        Ok(seed)
    }

    /// Reads, parses and checks a YAML seed file.
    pub fn load(path: &Path) -> Result<Seed, SeedError> {
        let text = std::fs::read_to_string(path).map_err(|source| SeedError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Seed::from_yaml(&text).map_err(|e| match e {
            SeedError::Yaml(m) => SeedError::Yaml(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Checks ids are unique and references resolve.
    pub fn check(&self) -> Result<(), SeedError> {
        let invalid = |m: String| Err(SeedError::Invalid(m));
        if !self.codebase.is_empty()
            && (!self.codebase.ends_with('/')
                || self.codebase[..self.codebase.len() - 1].contains('/'))
        {
            return invalid(format!(
                "codebase {:?} must be one path segment ending with '/', such as {DEFAULT_CODEBASE:?}",
                self.codebase
            ));
        }
        if self.login.company.is_empty() {
            return invalid("login.company is empty".into());
        }
        let mut ids = BTreeSet::new();
        for c in &self.companies {
            if !ids.insert(c.id) {
                return invalid(format!("company id {} is used twice", c.id));
            }
        }
        let mut identifiers = BTreeSet::new();
        for c in &self.companies {
            if !identifiers.insert(c.identifier.to_lowercase()) {
                return invalid(format!(
                    "company identifier {:?} is used twice",
                    c.identifier
                ));
            }
        }
        let mut agreements = BTreeSet::new();
        for a in &self.agreements {
            if !agreements.insert(a.id) {
                return invalid(format!("agreement id {} is used twice", a.id));
            }
            if !ids.contains(&a.company) {
                return invalid(format!(
                    "agreement {} names unknown company {}",
                    a.id, a.company
                ));
            }
        }
        let mut products = BTreeSet::new();
        for p in &self.products {
            if !products.insert(p.id) {
                return invalid(format!("product id {} is used twice", p.id));
            }
        }
        let mut additions = BTreeSet::new();
        for a in &self.additions {
            if !additions.insert(a.id) {
                return invalid(format!("addition id {} is used twice", a.id));
            }
            if !agreements.contains(&a.agreement) {
                return invalid(format!(
                    "addition {} names unknown agreement {}",
                    a.id, a.agreement
                ));
            }
            if !a.quantity.is_finite() {
                return invalid(format!(
                    "addition {} has a quantity that is not a number",
                    a.id
                ));
            }
        }
        Ok(())
    }
}
