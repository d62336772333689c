//! Autotask REST wire types: only the fields unitsync reads or writes. Private to the client (the
//! sandbox server keeps its own).

use serde::{Deserialize, Serialize};

/// `POST /v1.0/{Entity}/query` body.
#[derive(Debug, Clone, Serialize)]
pub struct QueryRequest {
    #[serde(rename = "MaxRecords")]
    pub max_records: u32,
    #[serde(rename = "IncludeFields")]
    pub include_fields: Vec<&'static str>,
    pub filter: Vec<Filter>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Filter {
    pub op: &'static str,
    pub field: &'static str,
    pub value: serde_json::Value,
}

impl Filter {
    pub fn new(op: &'static str, field: &'static str, value: impl Serialize) -> Filter {
        Filter {
            op,
            field,
            value: serde_json::to_value(value).expect("a filter value serialises"),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct QueryPage<T> {
    #[serde(default = "Vec::new")]
    pub items: Vec<T>,
    #[serde(default, rename = "pageDetails")]
    pub page_details: Option<PageDetails>,
}

#[derive(Debug, Deserialize)]
pub struct PageDetails {
    #[serde(default, rename = "nextPageUrl")]
    pub next_page_url: Option<String>,
}

/// `POST /v1.0/{Entity}/query/count` answer.
#[derive(Debug, Deserialize)]
pub struct QueryCount {
    #[serde(default, rename = "queryCount")]
    pub query_count: Option<u64>,
}

/// An error body: Autotask's own `{"errors":[…]}`, or the `{"Message":"…"}` its web framework
/// answers with (a 405 for GET on a query's next page, for example).
#[derive(Debug, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub errors: Option<Vec<serde_json::Value>>,
    #[serde(default, rename = "Message", alias = "message")]
    pub message: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
pub struct ZoneInformation {
    #[serde(default, rename = "zoneName")]
    pub zone_name: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ThresholdStatus {
    #[serde(default, rename = "externalRequestThreshold")]
    pub external_request_threshold: Option<i64>,
    #[serde(default, rename = "requestThresholdTimeframe")]
    pub request_threshold_timeframe: Option<i64>,
    #[serde(default, rename = "currentTimeframeRequestCount")]
    pub current_timeframe_request_count: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Company {
    pub id: u64,
    #[serde(default, rename = "companyName")]
    pub company_name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Contract {
    pub id: u64,
    #[serde(default, rename = "companyID")]
    pub company_id: Option<u64>,
    #[serde(default, rename = "contractName")]
    pub contract_name: Option<String>,
    /// 1 = active, 0 = inactive.
    #[serde(default)]
    pub status: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ContractService {
    pub id: u64,
    #[serde(rename = "contractID")]
    pub contract_id: u64,
    #[serde(default, rename = "serviceID")]
    pub service_id: Option<u64>,
    /// Price of one unit for one period, in the customer's currency.
    #[serde(default, rename = "unitPrice")]
    pub unit_price: Option<f64>,
    #[serde(default, rename = "unitCost")]
    pub unit_cost: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Service {
    pub id: u64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub sku: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ContractServiceUnit {
    #[serde(rename = "contractServiceID")]
    pub contract_service_id: u64,
    #[serde(default, rename = "startDate")]
    pub start_date: Option<String>,
    #[serde(default, rename = "endDate")]
    pub end_date: Option<String>,
    /// Autotask's units are int32; a larger number fails the decode rather than overflowing
    /// the fixed-point [`Quantity`](crate::quantity::Quantity) later.
    #[serde(default)]
    pub units: Option<i32>,
    /// Set once the period's units were approved and posted: the period is invoiced.
    #[serde(default, rename = "approveAndPostDate")]
    pub approve_and_post_date: Option<String>,
    /// The period's price and cost for all its units.
    #[serde(default)]
    pub price: Option<f64>,
    #[serde(default)]
    pub cost: Option<f64>,
}

/// `POST /v1.0/ContractServiceAdjustments` body.
#[derive(Debug, Clone, Serialize)]
pub struct NewAdjustment {
    #[serde(rename = "contractID")]
    pub contract_id: u64,
    #[serde(rename = "contractServiceID")]
    pub contract_service_id: u64,
    #[serde(rename = "serviceID")]
    pub service_id: u64,
    #[serde(rename = "effectiveDate")]
    pub effective_date: String,
    #[serde(rename = "unitChange")]
    pub unit_change: i64,
    /// The unit price from `effectiveDate` on (`sync_price`); absent keeps the price.
    #[serde(rename = "adjustedUnitPrice", skip_serializing_if = "Option::is_none")]
    pub adjusted_unit_price: Option<crate::money::Money>,
    #[serde(rename = "adjustedUnitCost", skip_serializing_if = "Option::is_none")]
    pub adjusted_unit_cost: Option<crate::money::Money>,
}

/// `POST /v1.0/Contracts/{id}/Charges` body: a one-time charge (`ContractChargeModel`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewCharge {
    #[serde(rename = "contractID")]
    pub contract_id: u64,
    #[serde(rename = "contractServiceID")]
    pub contract_service_id: u64,
    /// The service's billing code: a charge bills under a billing code or a product.
    #[serde(rename = "billingCodeID")]
    pub billing_code_id: u64,
    pub name: String,
    pub description: String,
    /// A bare date, like an adjustment's `effectiveDate` (see the module docs).
    pub date_purchased: String,
    pub unit_quantity: crate::quantity::Quantity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit_price: Option<crate::money::Money>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit_cost: Option<crate::money::Money>,
    pub is_billable_to_company: bool,
    /// Picklist values: per instance, read from `entityInformation/fields`.
    pub charge_type: i64,
    pub status: i64,
}

/// A `ContractCharges` row, as far as finding a written true-up needs.
#[derive(Debug, Clone, Deserialize)]
pub struct ContractCharge {
    pub id: u64,
    #[serde(default)]
    pub name: Option<String>,
}

/// `GET …/entityInformation/fields` (`FieldInformationResultModel`).
#[derive(Debug, Clone, Deserialize)]
pub struct FieldInformation {
    #[serde(default)]
    pub fields: Vec<FieldInfo>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldInfo {
    pub name: String,
    #[serde(default)]
    pub picklist_values: Option<Vec<PicklistValue>>,
}

/// `PickListValue`: the value is a string holding the number the field stores.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PicklistValue {
    pub value: String,
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub is_default_value: bool,
    #[serde(default)]
    pub is_active: bool,
}

/// A service's billing code (`ServiceModel.billingCodeID`).
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceBillingCode {
    pub id: u64,
    #[serde(default, rename = "billingCodeID")]
    pub billing_code_id: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct Created {
    #[serde(default, rename = "itemId")]
    pub item_id: Option<u64>,
}
