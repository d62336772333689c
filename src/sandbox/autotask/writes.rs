//! The sandbox's create routes, checked the way Autotask checks them: contract service
//! adjustments (create only, dated in US Eastern time, refused in a posted period) and contract
//! charges with their field picklists.

use super::*;

/// The date an `effectiveDate` lands on. `effectiveDate` is a date-only value kept in US Eastern
/// time: a bare `YYYY-MM-DD` is that date; a date-time is an instant (UTC without an offset)
/// whose Eastern date counts, so `2026-12-01T00:00:00Z` (19:00 on 30 November in New York) lands
/// on 30 November and `2026-12-01T05:00:00.000Z` on 1 December.
pub(super) fn parse_effective(text: &str) -> Option<Date> {
    stored_date(text)
}

/// `ContractCharges/entityInformation/fields`: the fields with their picklists, which differ
/// per instance (`FieldInformationModel` and `PickListValue` in the swagger).
pub(super) fn charge_fields(shared: &AtShared) -> Response {
    let store = lock_store(shared);
    let picklist = |values: &[AtPicklistValue]| -> Value {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                json!({
                    "value": v.value.to_string(), "label": v.label,
                    "isDefaultValue": v.is_default, "sortOrder": i,
                    "parentValue": "", "isActive": v.active, "isSystem": true,
                })
            })
            .collect()
    };
    let required = [
        "chargeType",
        "contractID",
        "datePurchased",
        "isBillableToCompany",
        "name",
        "status",
        "unitQuantity",
    ];
    let fields: Vec<Value> = CONTRACT_CHARGE_FIELDS
        .iter()
        .map(|name| {
            let values = match *name {
                "chargeType" => Some(picklist(&store.charge_types)),
                "status" => Some(picklist(&store.charge_statuses)),
                _ => None,
            };
            json!({
                "name": name,
                "dataType": match *name {
                    "name" | "description" | "notes" | "purchaseOrderNumber"
                    | "internalPurchaseOrderNumber" => "string",
                    "datePurchased" | "createDate" | "statusLastModifiedDate" => "datetime",
                    "isBillableToCompany" | "isBilled" => "boolean",
                    "unitQuantity" | "unitPrice" | "unitCost" | "billableAmount"
                    | "extendedCost" | "internalCurrencyBillableAmount"
                    | "internalCurrencyUnitPrice" => "double",
                    _ => "long",
                },
                "length": if *name == "name" { CHARGE_NAME_LENGTH } else { 0 },
                "isRequired": required.contains(name),
                "isReadOnly": matches!(*name, "id" | "createDate" | "isBilled" | "creatorResourceID"),
                "isQueryable": true,
                "isReference": name.ends_with("ID"),
                "referenceEntityType": "",
                "isPickList": values.is_some(),
                "picklistValues": values.unwrap_or(Value::Null),
                "picklistParentValueField": "",
                "isSupportedWebhookField": false,
            })
        })
        .collect();
    ok_json(json!({ "fields": fields }))
}

/// `POST Contracts/{id}/Charges`: a one-time charge on a contract, checked the way Autotask
/// checks it: the required fields, picklist values that exist and are active on this instance,
/// and a billing code or product to bill it under.
pub(super) fn create_charge(shared: &AtShared, parent: i64, body: &Bytes) -> Response {
    let raw: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return bad_request(format!("The request body is not valid JSON: {e}")),
    };
    let Some(obj) = raw.as_object() else {
        return bad_request("The request body must be a ContractCharge object");
    };
    let field = |name: &str| get_ci(obj, name).filter(|v| !v.is_null());
    let run = || -> Result<Response, Response> {
        for name in [
            "chargeType",
            "datePurchased",
            "isBillableToCompany",
            "name",
            "status",
            "unitQuantity",
        ] {
            if field(name).is_none() {
                return Err(bad_request(format!("{name} is required")));
            }
        }
        if let Some(b) = field("contractID").and_then(Value::as_i64)
            && b != parent
        {
            return Err(bad_request(format!(
                "contractID {b} does not match the parent contract {parent}"
            )));
        }
        let name = field("name").and_then(Value::as_str).unwrap_or_default();
        if name.trim().is_empty() || name.chars().count() > CHARGE_NAME_LENGTH {
            return Err(bad_request(format!(
                "name must be 1 to {CHARGE_NAME_LENGTH} characters"
            )));
        }
        let picklist_value = |name: &str, values: &[AtPicklistValue]| -> Result<i64, Response> {
            let v = field(name).expect("checked above");
            let n = v
                .as_i64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .ok_or_else(|| bad_request(format!("{name} must be a picklist value; got {v}")))?;
            if values.iter().any(|p| p.value == n && p.active) {
                Ok(n)
            } else {
                Err(bad_request(format!(
                    "{n} is not an active value of the {name} picklist"
                )))
            }
        };
        let mut store = lock_store(shared);
        let charge_type = picklist_value("chargeType", &store.charge_types)?;
        let status = picklist_value("status", &store.charge_statuses)?;
        let quantity = field("unitQuantity")
            .and_then(Value::as_f64)
            .ok_or_else(|| bad_request("unitQuantity must be a number"))?;
        if !field("isBillableToCompany").is_some_and(Value::is_boolean) {
            return Err(bad_request("isBillableToCompany must be true or false"));
        }
        let purchased = field("datePurchased")
            .and_then(Value::as_str)
            .and_then(parse_effective)
            .ok_or_else(|| bad_request("datePurchased must be an ISO-8601 date"))?;
        if field("billingCodeID").is_none() && field("productID").is_none() {
            return Err(bad_request(
                "A charge needs a billingCodeID or a productID to bill under",
            ));
        }
        for price in ["unitPrice", "unitCost"] {
            if field(price).is_some_and(|v| !v.is_number()) {
                return Err(bad_request(format!("{price} must be a number")));
            }
        }
        let Some(contract) = store.contract(parent) else {
            return Err(bad_request(format!("Contract {parent} does not exist")));
        };
        if contract.status != CONTRACT_STATUS_ACTIVE {
            return Err(bad_request(format!(
                "Contract {parent} is not active; charges cannot be added to an inactive contract"
            )));
        }
        if let Some(cs) = field("contractServiceID").and_then(Value::as_i64)
            && store
                .get("ContractServices", cs)
                .is_none_or(|r| r["contractID"].as_i64() != Some(parent))
        {
            return Err(bad_request(format!(
                "ContractService {cs} does not belong to contract {parent}"
            )));
        }
        let id = store.next_charge_id;
        store.next_charge_id += 1;
        let mut set = raw.clone();
        let map = set.as_object_mut().expect("an object");
        map.insert("id".into(), json!(id));
        map.insert("contractID".into(), json!(parent));
        map.insert("chargeType".into(), json!(charge_type));
        map.insert("status".into(), json!(status));
        map.insert("unitQuantity".into(), json!(quantity));
        map.insert("datePurchased".into(), json!(date_only(purchased)));
        map.insert("isBilled".into(), json!(false));
        map.insert("createDate".into(), json!(crate::clock::now().to_string()));
        let price = field("unitPrice").and_then(Value::as_f64).unwrap_or(0.0);
        map.insert("billableAmount".into(), json!(price * quantity));
        store.insert("ContractCharges", id, set);
        Ok(ok_json(json!({ "itemId": id })))
    };
    run().unwrap_or_else(|r| r)
}

pub(super) fn create_adjustment(shared: &AtShared, parent: Option<i64>, body: &Bytes) -> Response {
    let raw: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return bad_request(format!("The request body is not valid JSON: {e}")),
    };
    let Some(obj) = raw.as_object() else {
        return bad_request("The request body must be a ContractServiceAdjustment object");
    };
    let int = |name: &str| -> Result<Option<i64>, Response> {
        match get_ci(obj, name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| bad_request(format!("{name} must be a whole number; got {v}"))),
        }
    };
    let run = || -> Result<Response, Response> {
        let body_contract = int("contractID")?;
        let contract_id = match (parent, body_contract) {
            (Some(p), Some(b)) if p != b => {
                return Err(bad_request(format!(
                    "contractID {b} does not match the parent contract {p}"
                )));
            }
            (Some(p), _) => p,
            (None, Some(b)) => b,
            (None, None) => return Err(bad_request("contractID is required")),
        };
        let service_id = int("serviceID")?.ok_or_else(|| bad_request("serviceID is required"))?;
        let contract_service_id = int("contractServiceID")?;
        let unit_change = match get_ci(obj, "unitChange") {
            None | Some(Value::Null) => return Err(bad_request("unitChange is required")),
            Some(v) => v
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(|| {
                    bad_request(format!(
                        "unitChange must be a whole number (int32); got {v}"
                    ))
                })?,
        };
        let effective = match get_ci(obj, "effectiveDate") {
            None | Some(Value::Null) => return Err(bad_request("effectiveDate is required")),
            Some(v) => v.as_str().and_then(parse_effective).ok_or_else(|| {
                bad_request(format!("effectiveDate must be an ISO-8601 date; got {v}"))
            })?,
        };
        for price in ["adjustedUnitPrice", "adjustedUnitCost"] {
            if let Some(v) = get_ci(obj, price).filter(|v| !v.is_null())
                && !v.is_number()
            {
                return Err(bad_request(format!("{price} must be a number; got {v}")));
            }
        }

        let mut store = lock_store(shared);
        let Some(contract) = store.contract(contract_id) else {
            return Err(bad_request(format!(
                "Contract {contract_id} does not exist"
            )));
        };
        if contract.contract_type != CONTRACT_TYPE_RECURRING_SERVICE {
            return Err(bad_request(format!(
                "Contract {contract_id} is not a Recurring Service contract (contractType {}); services can only be adjusted on contractType 7",
                contract.contract_type
            )));
        }
        if contract.status != CONTRACT_STATUS_ACTIVE {
            return Err(bad_request(format!(
                "Contract {contract_id} is not active; adjustments cannot be made to an inactive contract"
            )));
        }
        let Some(service) = store.get("Services", service_id).cloned() else {
            return Err(bad_request(format!("Service {service_id} does not exist")));
        };
        if effective < contract.start_date || effective > contract.end_date {
            return Err(bad_request(format!(
                "effectiveDate {effective} is outside contract {contract_id} ({} to {})",
                contract.start_date, contract.end_date
            )));
        }
        let existing = store.records["ContractServices"]
            .values()
            .find(|r| {
                r["contractID"].as_i64() == Some(contract_id)
                    && r["serviceID"].as_i64() == Some(service_id)
            })
            .and_then(|r| r["id"].as_i64());
        let cs_id = match (contract_service_id, existing) {
            (Some(given), _) => {
                let Some(cs) = store.get("ContractServices", given) else {
                    return Err(bad_request(format!(
                        "ContractService {given} does not exist"
                    )));
                };
                if cs["contractID"].as_i64() != Some(contract_id) {
                    return Err(bad_request(format!(
                        "ContractService {given} does not belong to contract {contract_id}"
                    )));
                }
                if cs["serviceID"].as_i64() != Some(service_id) {
                    return Err(bad_request(format!(
                        "ContractService {given} is for service {}, not service {service_id}",
                        cs["serviceID"]
                    )));
                }
                given
            }
            (None, Some(found)) => found,
            (None, None) => {
                let id = store.next_contract_service_id;
                store.next_contract_service_id += 1;
                let price = service["unitPrice"].as_f64().unwrap_or(0.0);
                let cost = service["unitCost"].as_f64().unwrap_or(0.0);
                store.add_contract_service(id, &contract, service_id, price, cost, None, 0);
                id
            }
        };
        let cs = store
            .get("ContractServices", cs_id)
            .cloned()
            .unwrap_or(Value::Null);
        // Without an adjusted price, the units keep the price the period bills now (an earlier
        // adjustment may have changed it from the contract service's own).
        let current = |field: &str| {
            store.records["ContractServiceUnits"]
                .values()
                .filter(|r| r["contractServiceID"].as_i64() == Some(cs_id))
                .find(|r| {
                    unit_period(r)
                        .is_some_and(|p| p.start_date <= effective && effective <= p.end_date)
                })
                .and_then(|r| {
                    let units = r["units"].as_f64().filter(|u| *u > 0.0)?;
                    Some(r[field].as_f64()? / units)
                })
        };
        let unit_price = get_ci(obj, "adjustedUnitPrice")
            .and_then(Value::as_f64)
            .or_else(|| current("price"))
            .or_else(|| cs["unitPrice"].as_f64())
            .unwrap_or(0.0);
        let unit_cost = get_ci(obj, "adjustedUnitCost")
            .and_then(Value::as_f64)
            .or_else(|| current("cost"))
            .or_else(|| cs["unitCost"].as_f64())
            .unwrap_or(0.0);
        let affected: Vec<(i64, i64)> = store.records["ContractServiceUnits"]
            .values()
            .filter_map(unit_period)
            .filter(|p| p.contract_service_id == cs_id && p.end_date >= effective)
            .map(|p| (p.id, i64::from(p.units) + i64::from(unit_change)))
            .collect();
        let posted = store.records["ContractServiceUnits"]
            .values()
            .filter(|r| r["contractServiceID"].as_i64() == Some(cs_id))
            .filter(|r| !r["approveAndPostDate"].is_null())
            .filter_map(unit_period)
            .any(|p| p.end_date >= effective);
        if posted {
            // Autotask's words for changing a posted recurring-service period (KB370000000540).
            return Err(bad_request(
                "Unable to make changes as it would result in the deletion/modification of an already approved and posted contract period"
                    .to_string(),
            ));
        }
        if let Some((id, units)) = affected.iter().find(|(_, u)| *u < 0) {
            return Err(bad_request(format!(
                "The adjustment would make the units of ContractServiceUnit {id} {units}; units cannot be negative"
            )));
        }
        if let Some((id, units)) = affected.iter().find(|(_, u)| *u > i64::from(i32::MAX)) {
            return Err(bad_request(format!(
                "The adjustment would make the units of ContractServiceUnit {id} {units}; units cannot exceed {} (int32)",
                i32::MAX
            )));
        }
        let units_map = store
            .records
            .get_mut("ContractServiceUnits")
            .expect("entity");
        for (id, units) in &affected {
            if let Some(r) = units_map.get_mut(id) {
                let u = *units as f64;
                r["units"] = json!(units);
                r["price"] = json!(u * unit_price);
                r["internalCurrencyPrice"] = json!(u * unit_price);
                r["cost"] = json!(u * unit_cost);
            }
        }
        let id = store.next_adjustment_id;
        store.next_adjustment_id += 1;
        store.adjustments.push(AtAdjustment {
            id,
            contract_id,
            contract_service_id: cs_id,
            service_id,
            effective_date: effective,
            unit_change,
            body: raw.clone(),
        });
        Ok(ok_json(json!({ "itemId": id })))
    };
    run().unwrap_or_else(|r| r)
}
