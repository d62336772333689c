//! ConnectWise JSON as this client reads and writes it (written from `reference/psa-apis.md`,
//! section A; deliberately independent of the sandbox's types). Only the fields unitsync uses are
//! declared; unknown fields are ignored.

use serde::{Deserialize, Serialize};

use crate::money::Money;
use crate::plan::{BillingCycle, LineBilling, PsaCompany, PsaContract, PsaLine, RecordStatus};
use crate::quantity::Quantity;

/// `GET /login/companyinfo/{company}`.
#[derive(Debug, Deserialize)]
pub(crate) struct CompanyInfo {
    #[serde(rename = "Codebase", default)]
    pub codebase: Option<String>,
}

/// An error body: `{"code","message","errors":[{"code","message","resource","field"}]}`.
/// ConnectWise sends `"errors": null` when there are no field errors.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub errors: Vec<ErrorItem>,
}

/// A list that may come as `null`: read as empty.
fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorItem {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub field: Option<String>,
}

/// A reference to another record: `{id, identifier, name}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Reference {
    #[serde(default)]
    pub id: Option<u64>,
    #[serde(default)]
    pub identifier: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Company {
    pub id: u64,
    #[serde(default)]
    pub identifier: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub deleted_flag: Option<bool>,
}

impl Company {
    /// Not in the recycle bin. Look-ups by identifier or name ask for live companies only; this
    /// also keeps out a deleted one a server returns anyway.
    pub fn live(&self) -> bool {
        self.deleted_flag != Some(true)
    }

    pub fn into_snapshot(self) -> PsaCompany {
        PsaCompany {
            id: self.id,
            name: self.name.unwrap_or_default(),
            identifier: self.identifier,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Agreement {
    pub id: u64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub company: Option<Reference>,
    #[serde(default)]
    pub agreement_status: Option<String>,
    #[serde(default)]
    pub cancelled_flag: Option<bool>,
    /// `{id, name}`: "Monthly", "Quarterly", … (names are set up per ConnectWise instance).
    #[serde(default)]
    pub billing_cycle: Option<Reference>,
    /// The date of the agreement's next invoice: everything before it is invoiced.
    #[serde(default)]
    pub next_invoice_date: Option<String>,
}

impl Agreement {
    /// The agreement's billing cycle, when its name is one of the usual ones.
    pub fn cycle(&self) -> Option<BillingCycle> {
        let name = self.billing_cycle.as_ref()?.name.as_deref()?;
        let key: String = name
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_ascii_lowercase();
        match key.as_str() {
            "monthly" => Some(BillingCycle::Monthly),
            "quarterly" => Some(BillingCycle::Quarterly),
            "semiannual" | "semiannually" | "biannual" | "biannually" => {
                Some(BillingCycle::SemiAnnual)
            }
            "annual" | "annually" | "yearly" => Some(BillingCycle::Annual),
            _ => None,
        }
    }

    /// The first day no invoice of this agreement covers yet: its next invoice date. An
    /// agreement invoices in advance, so the invoice dated D bills the period starting on D.
    pub fn open_from(&self) -> Option<jiff::civil::Date> {
        date_part(self.next_invoice_date.as_deref()?)
    }

    pub fn into_snapshot(self) -> PsaContract {
        let status = if self.cancelled_flag == Some(true) {
            RecordStatus::Cancelled
        } else {
            status_from(self.agreement_status.as_deref())
        };
        PsaContract {
            id: self.id,
            company_id: self.company.and_then(|c| c.id).unwrap_or(0),
            name: self.name.unwrap_or_default(),
            status,
        }
    }
}

/// The calendar date a ConnectWise date-time (`2026-12-01T00:00:00Z`) is written with.
fn date_part(text: &str) -> Option<jiff::civil::Date> {
    text.trim().get(..10)?.parse().ok()
}

/// A price as ConnectWise sent it (a JSON number), as exact money.
fn money(value: Option<&serde_json::Value>) -> Option<Money> {
    Money::from_f64(value?.as_f64()?).ok()
}

/// `agreementStatus`: `Active|Cancelled|Expired|Inactive`; absent means active.
fn status_from(text: Option<&str>) -> RecordStatus {
    match text.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("active") => RecordStatus::Active,
        Some("cancelled") | Some("canceled") => RecordStatus::Cancelled,
        Some("expired") => RecordStatus::Expired,
        Some(_) => RecordStatus::Inactive,
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Addition {
    pub id: u64,
    #[serde(default)]
    pub product: Option<Reference>,
    #[serde(default)]
    pub quantity: Option<Quantity>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub invoice_description: Option<String>,
    /// Kept as JSON so a price is copied exactly as ConnectWise sent it.
    #[serde(default)]
    pub unit_price: Option<serde_json::Value>,
    #[serde(default)]
    pub unit_cost: Option<serde_json::Value>,
    /// Units the agreement includes free of charge; a re-added copy must keep them.
    #[serde(default)]
    pub less_included: Option<serde_json::Value>,
    #[serde(default)]
    pub bill_customer: Option<String>,
    #[serde(default)]
    pub taxable_flag: Option<bool>,
    #[serde(default)]
    pub effective_date: Option<String>,
    #[serde(default)]
    pub cancelled_date: Option<String>,
    #[serde(default)]
    pub agreement_status: Option<String>,
    // The other fields a client may set (pyconnectwise `Addition`), read only to copy them onto
    // a re-added line: invoice order, grouping and integrations that find lines by serial number
    // depend on them.
    #[serde(default)]
    pub serial_number: Option<String>,
    #[serde(default)]
    pub sequence_number: Option<serde_json::Value>,
    #[serde(default)]
    pub uom: Option<String>,
    #[serde(default)]
    pub purchase_item_flag: Option<bool>,
    #[serde(default)]
    pub special_order_flag: Option<bool>,
    #[serde(default)]
    pub prorate_current_period_flag: Option<bool>,
    #[serde(default)]
    pub invoice_grouping: Option<Reference>,
    #[serde(default)]
    pub opportunity: Option<Reference>,
    /// `[{id, caption, type, entryMethod, numberOfDecimals, value}]`, copied as sent.
    #[serde(default)]
    pub custom_fields: Option<Vec<serde_json::Value>>,
}

impl Addition {
    /// The addition as a snapshot line.
    ///
    /// Any `cancelledDate` makes the line `Cancelled`, including a date still ahead: a line whose
    /// cancellation is scheduled is being replaced (cancel-and-re-add with a first-of-next-month
    /// date leaves the old line cancelled in the future and the new one starting then) or is
    /// ending, and in neither case should unitsync count it or change it. Treating it as active
    /// would make the old and new line ambiguous until the date passes.
    pub fn to_snapshot(&self, contract_id: u64) -> PsaLine {
        let cancelled = self
            .cancelled_date
            .as_deref()
            .is_some_and(|d| !d.trim().is_empty());
        let status = if cancelled {
            RecordStatus::Cancelled
        } else {
            status_from(self.agreement_status.as_deref())
        };
        let product = self.product.clone().unwrap_or_default();
        let product_name = self
            .description
            .clone()
            .filter(|d| !d.trim().is_empty())
            .or_else(|| product.name.clone())
            .or_else(|| product.identifier.clone())
            .unwrap_or_default();
        PsaLine {
            id: self.id,
            // The agreement it was listed under (or read from), whatever `agreementId` says.
            contract_id,
            product_id: product.id.unwrap_or(0),
            product_identifier: product.identifier,
            product_name,
            quantity: self.quantity.unwrap_or(Quantity::ZERO),
            status,
            billing: LineBilling {
                unit_price: money(self.unit_price.as_ref()),
                unit_cost: money(self.unit_cost.as_ref()),
                ..LineBilling::default()
            },
        }
    }

    /// Whether `cancelledDate` is set and falls on `date` (`yyyy-MM-dd…`).
    pub fn cancelled_on(&self, date: &str) -> bool {
        self.cancelled_date
            .as_deref()
            .is_some_and(|d| d.trim().starts_with(date))
    }

    /// Whether it still bills: no `cancelledDate`.
    pub fn running(&self) -> bool {
        self.cancelled_date
            .as_deref()
            .is_none_or(|d| d.trim().is_empty())
    }

    /// The snapshot of an addition whose cancel-and-readd stopped after the cancel: it is still
    /// the line that bills, so it reads as its agreement's status rather than as cancelled.
    pub fn to_snapshot_awaiting_readd(&self, contract_id: u64) -> PsaLine {
        PsaLine {
            status: status_from(self.agreement_status.as_deref()),
            ..self.to_snapshot(contract_id)
        }
    }
}

/// One JSON-patch operation: `{"op":"replace","path":"quantity","value":4}`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PatchOp<T: Serialize> {
    pub op: &'static str,
    pub path: &'static str,
    pub value: T,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct IdRef {
    pub id: u64,
}

/// The body of `POST /finance/agreements/{id}/additions` when re-adding a line: every field of
/// the Addition model a client may set, copied from the old line, except the quantity and dates.
/// Left out are the server's own: `id`, `agreementStatus`, `billedQuantity`, `extPrice`,
/// `extCost`, `margin`, the `prorate*`/`extendedProrate*` amounts and `_info`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NewAddition {
    pub product: IdRef,
    pub quantity: Quantity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit_price: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit_cost: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub less_included: Option<serde_json::Value>,
    pub bill_customer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub taxable_flag: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invoice_description: Option<String>,
    pub effective_date: String,
    /// Set only on a one-time correction, which ends with its period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancelled_date: Option<String>,
    pub agreement_id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uom: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purchase_item_flag: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub special_order_flag: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prorate_current_period_flag: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invoice_grouping: Option<IdRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opportunity: Option<IdRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_fields: Option<Vec<serde_json::Value>>,
}

impl NewAddition {
    /// A copy of `old` with `quantity`, starting on `effective_date`, on `agreement_id`.
    pub fn copy_of(
        old: &Addition,
        product_id: u64,
        quantity: Quantity,
        effective_date: String,
        agreement_id: u64,
    ) -> NewAddition {
        let id_of = |r: &Option<Reference>| r.as_ref().and_then(|r| r.id).map(|id| IdRef { id });
        NewAddition {
            product: IdRef { id: product_id },
            quantity,
            unit_price: old.unit_price.clone(),
            unit_cost: old.unit_cost.clone(),
            less_included: old.less_included.clone(),
            bill_customer: old
                .bill_customer
                .clone()
                .unwrap_or_else(|| "Billable".into()),
            taxable_flag: old.taxable_flag,
            description: old.description.clone(),
            invoice_description: old.invoice_description.clone(),
            effective_date,
            cancelled_date: None,
            agreement_id,
            serial_number: old.serial_number.clone(),
            sequence_number: old.sequence_number.clone().filter(|v| !v.is_null()),
            uom: old.uom.clone(),
            purchase_item_flag: old.purchase_item_flag,
            special_order_flag: old.special_order_flag,
            prorate_current_period_flag: old.prorate_current_period_flag,
            invoice_grouping: id_of(&old.invoice_grouping),
            opportunity: id_of(&old.opportunity),
            custom_fields: old.custom_fields.clone().filter(|f| !f.is_empty()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addition(json: serde_json::Value) -> PsaLine {
        serde_json::from_value::<Addition>(json)
            .unwrap()
            .to_snapshot(7)
    }

    #[test]
    fn additions_map_to_snapshot_lines() {
        let line = addition(serde_json::json!({
            "id": 5, "product": {"id": 9, "identifier": "SP-DESKTOP"}, "quantity": 135.5,
            "description": "ShadowProtect Desktop", "agreementStatus": "Active"
        }));
        assert_eq!(line.contract_id, 7);
        assert_eq!(line.product_id, 9);
        assert_eq!(line.product_identifier.as_deref(), Some("SP-DESKTOP"));
        assert_eq!(line.product_name, "ShadowProtect Desktop");
        assert_eq!(line.quantity.to_string(), "135.5");
        assert_eq!(line.status, RecordStatus::Active);

        let cancelled = addition(serde_json::json!({
            "id": 5, "quantity": 1, "cancelledDate": "2030-01-01T00:00:00Z"
        }));
        assert_eq!(cancelled.status, RecordStatus::Cancelled);
        let expired = addition(serde_json::json!({"id": 5, "agreementStatus": "Expired"}));
        assert_eq!(expired.status, RecordStatus::Expired);
        assert_eq!(expired.quantity, Quantity::ZERO);
    }

    #[test]
    fn agreements_map_status_and_cancelled_flag() {
        let a: Agreement = serde_json::from_value(serde_json::json!({
            "id": 1, "name": "Backup", "company": {"id": 250}, "agreementStatus": "Active",
            "cancelledFlag": true
        }))
        .unwrap();
        let c = a.into_snapshot();
        assert_eq!((c.company_id, c.status), (250, RecordStatus::Cancelled));
    }

    #[test]
    fn patch_values_are_integers_when_whole() {
        let op = PatchOp {
            op: "replace",
            path: "quantity",
            value: Quantity::from_units(4),
        };
        assert_eq!(
            serde_json::to_string(&[op]).unwrap(),
            r#"[{"op":"replace","path":"quantity","value":4}]"#
        );
        let half: Quantity = "2.5".parse().unwrap();
        assert_eq!(
            serde_json::to_value(PatchOp {
                op: "replace",
                path: "quantity",
                value: half
            })
            .unwrap()["value"],
            serde_json::json!(2.5)
        );
    }
}
