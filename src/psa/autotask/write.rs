//! Writing Autotask: a dated ContractServiceAdjustment per change, journalled before it is posted
//! so an interrupted run never posts it twice, and one-time true-up contract charges.

use super::*;

impl AutotaskClient {
    /// Settles intents an interrupted run left pending, by re-reading the units they would have
    /// changed. Never posts.
    pub(super) async fn resolve_pending(
        &self,
        cs: &ContractService,
        current: (jiff::civil::Date, i64),
    ) -> Result<(), PsaError> {
        for intent in self.journal.pending_for(cs.id).await? {
            let units = if intent.effective == current.0 {
                current.1
            } else {
                self.units_of(cs, intent.effective).await?
            };
            let outcome = if units == intent.to {
                "applied"
            } else if units == intent.from {
                "not-posted"
            } else {
                return Err(PsaError::Conflict {
                    what: format!("contract service {} on contract {}", cs.id, cs.contract_id),
                    reason: format!(
                        "an earlier run meant to post an adjustment of {:+} ({} → {}) effective {} (journal id {}) and was interrupted; the units are now {units}, neither, so unitsync cannot tell whether it was posted. Check the contract service's adjustments in Autotask, then append {{\"event\":\"resolved\",\"id\":\"{}\",\"outcome\":\"checked\",\"units\":{units},\"at\":\"…\"}} to {} and run apply again",
                        intent.unit_change,
                        intent.from,
                        intent.to,
                        intent.effective,
                        intent.id,
                        intent.id,
                        self.journal.path().display()
                    ),
                });
            };
            tracing::info!(
                id = %intent.id,
                outcome,
                "settled an interrupted Autotask adjustment from the units"
            );
            self.journal
                .record(Entry::Resolved {
                    id: intent.id.clone(),
                    outcome: outcome.into(),
                    units,
                    at: journal::now(),
                })
                .await?;
        }
        Ok(())
    }

    pub(super) async fn apply_impl(&self, change: &LineChange) -> Result<AppliedChange, PsaError> {
        let whole = |q: Quantity, which: &str| {
            q.as_whole()
                .filter(|n| i32::try_from(*n).is_ok())
                .ok_or_else(|| PsaError::UnsupportedRef {
                    mapping: change.mapping.clone(),
                    reason: format!(
                        "the {which} quantity {q} is not a whole number in Autotask's range; Autotask contract service units are whole numbers (int32), so round the vendor count or map a per-unit service"
                    ),
                })
        };
        let to = whole(change.to, "target")?;
        let from = whole(change.from, "planned")?;
        let done = AppliedChange::UpdatedInPlace {
            line_id: change.line_id,
            quantity: change.to,
        };
        let what = format!(
            "contract service {} on contract {}",
            change.line_id, change.contract_id
        );
        let cs = self
            .contract_service(change.contract_id, change.line_id)
            .await?;
        let period = self.period_of(&cs, change.effective).await?;
        let current = period.units;
        self.resolve_pending(&cs, (change.effective, current))
            .await?;
        // A synced price or cost the period does not bill yet still needs an adjustment (one
        // with a unit change of 0 when the count is right). Posting it twice sets the same price
        // twice, so a rerun may repeat it.
        let reprice = change
            .unit_price
            .filter(|p| period.unit_price != Some(*p))
            .is_some()
            || change
                .unit_cost
                .filter(|c| period.unit_cost != Some(*c))
                .is_some();
        if current == to && !reprice {
            return Ok(done);
        }
        // Checked on the period as it is now, not as planned: a period can be posted between the
        // plan and a merged approval days later.
        if let Some(posted_on) = period.posted_on {
            return Err(PsaError::Conflict {
                what,
                reason: format!(
                    "the billing period {} to {} containing the effective date {} was approved and posted on {posted_on}, so an adjustment would change an invoiced period; nothing was written — run plan again, which dates the change in the next open period",
                    period.start, period.end, change.effective
                ),
            });
        }
        if current != from {
            return Err(PsaError::Stale {
                what,
                expected: change.from,
                found: Quantity::from_units(current),
            });
        }
        let unit_change = to - current;
        if unit_change == 0 && !reprice {
            return Ok(done);
        }
        let service_id = cs.service_id.ok_or_else(|| PsaError::Conflict {
            what: what.clone(),
            reason: "it names no service id, which an adjustment needs".into(),
        })?;
        let intent = Intent {
            id: format!(
                "{}-{:016x}-{}",
                crate::clock::now().as_nanosecond(),
                crate::clock::unique_bits(),
                change.line_id
            ),
            mapping: change.mapping.clone(),
            contract_id: change.contract_id,
            contract_service_id: cs.id,
            service_id,
            effective: change.effective,
            from: current,
            to,
            unit_change,
            at: journal::now(),
        };
        let id = intent.id.clone();
        self.journal.record(Entry::Intent(intent)).await?;
        let body = serde_json::to_value(NewAdjustment {
            contract_id: change.contract_id,
            contract_service_id: cs.id,
            service_id,
            // A bare date: a date-time is an instant, and UTC midnight is the evening before
            // in the US Eastern time Autotask keeps dates in (see the module docs).
            effective_date: change.effective.to_string(),
            unit_change,
            adjusted_unit_price: change.unit_price,
            adjusted_unit_cost: change.unit_cost,
        })
        .expect("an adjustment serialises");
        let adjust_what = format!("an adjustment of {what}");
        let posted: Result<Created, PsaError> = self
            .transport
            .send_json(Request {
                method: Method::POST,
                entity: "ContractServiceAdjustments",
                target: Target::Api("ContractServiceAdjustments".into()),
                body: Some(body),
                repeat: Repeat::Once,
                what: &adjust_what,
            })
            .await;
        match posted {
            Ok(created) => {
                self.journal
                    .record(Entry::Posted {
                        id,
                        item_id: created.item_id,
                        at: journal::now(),
                    })
                    .await?;
                Ok(done)
            }
            Err(e) if e.is_transient() => {
                // The POST may have been carried out before the failure: look, never post again.
                tracing::warn!("{e}; re-reading the units to see whether it was applied");
                match self.units_of(&cs, change.effective).await {
                    Ok(units) if units == to => {
                        self.journal
                            .record(Entry::Resolved {
                                id,
                                outcome: "applied".into(),
                                units,
                                at: journal::now(),
                            })
                            .await?;
                        Ok(done)
                    }
                    // Left pending: the next run settles it from the units.
                    _ => Err(e),
                }
            }
            Err(e) => {
                self.journal
                    .record(Entry::Failed {
                        id,
                        reason: e.to_string(),
                        at: journal::now(),
                    })
                    .await?;
                Err(e)
            }
        }
    }

    /// A true-up is a contract charge (`ContractCharges`), not a pair of adjustments: one record,
    /// queryable by its name, so a rerun finds it instead of charging twice, and no second write
    /// that a cut-off run could leave out (a +N adjustment without its −N would bill +N every
    /// period after).
    pub(super) async fn write_true_up_impl(
        &self,
        t: &TrueUpCharge,
    ) -> Result<WrittenTrueUp, PsaError> {
        let what = format!("true-up {} on contract {}", t.id, t.contract_id);
        let marker = t.marker();
        let find = || async {
            let found = self
                .query::<ContractCharge>(
                    "ContractCharges",
                    &["name"],
                    vec![
                        Filter::new("eq", "contractID", t.contract_id),
                        Filter::new("eq", "name", &marker),
                    ],
                    &what,
                )
                .await?;
            Ok::<_, PsaError>(
                found
                    .into_iter()
                    .filter(|c| c.name.as_deref() == Some(marker.as_str()))
                    .map(|c| c.id)
                    .min(),
            )
        };
        if let Some(id) = find().await? {
            return Ok(WrittenTrueUp {
                record_id: id,
                found: true,
            });
        }
        let cs = self.contract_service(t.contract_id, t.line_id).await?;
        let service_id = cs.service_id.ok_or_else(|| PsaError::Conflict {
            what: what.clone(),
            reason: format!(
                "contract service {} names no service, whose billing code a charge needs",
                cs.id
            ),
        })?;
        let service_what = format!("service {service_id}");
        let (services, fields, period) = tokio::join!(
            self.query::<ServiceBillingCode>(
                "Services",
                &["billingCodeID"],
                vec![Filter::new("eq", "id", service_id)],
                &service_what,
            ),
            self.transport.send_json::<FieldInformation>(Request {
                method: Method::GET,
                entity: "ContractCharges",
                target: Target::Api("ContractCharges/entityInformation/fields".into()),
                body: None,
                repeat: Repeat::Idempotent,
                what: "the ContractCharges fields",
            }),
            self.period_of(&cs, t.first_day)
        );
        let billing_code_id = services?
            .into_iter()
            .find(|s| s.id == service_id)
            .and_then(|s| s.billing_code_id)
            .ok_or_else(|| PsaError::Conflict {
                what: what.clone(),
                reason: format!(
                    "service {service_id} has no billing code, which a contract charge bills under; give the service one in Autotask (Admin > Products & Services)"
                ),
            })?;
        let fields = fields?;
        let picklist_default = |field: &str| -> Result<i64, PsaError> {
            let values = fields
                .fields
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(field))
                .and_then(|f| f.picklist_values.as_deref())
                .unwrap_or_default();
            values
                .iter()
                .find(|v| v.is_default_value && v.is_active)
                .and_then(|v| v.value.trim().parse().ok())
                .ok_or_else(|| PsaError::Conflict {
                    what: what.clone(),
                    reason: format!(
                        "the ContractCharges {field} picklist has no active default value ({}), so unitsync cannot choose one; set a default in Autotask",
                        values
                            .iter()
                            .filter(|v| v.is_active)
                            .map(|v| v.label.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })
        };
        // The days were billed at their period's price; the correction bills at the same one.
        let (unit_price, unit_cost) = match period {
            Ok(p) => (p.unit_price, p.unit_cost),
            Err(_) => (
                cs.unit_price
                    .and_then(|p| crate::money::Money::from_f64(p).ok()),
                cs.unit_cost
                    .and_then(|c| crate::money::Money::from_f64(c).ok()),
            ),
        };
        let body = serde_json::to_value(NewCharge {
            contract_id: t.contract_id,
            contract_service_id: cs.id,
            billing_code_id,
            name: marker.clone(),
            description: t.description(),
            date_purchased: t.written_on.to_string(),
            unit_quantity: t.quantity,
            unit_price,
            unit_cost,
            is_billable_to_company: true,
            charge_type: picklist_default("chargeType")?,
            status: picklist_default("status")?,
        })
        .expect("a charge serialises");
        let posted: Result<Created, PsaError> = self
            .transport
            .send_json(Request {
                method: Method::POST,
                entity: "ContractCharges",
                target: Target::Api(format!("Contracts/{}/Charges", t.contract_id)),
                body: Some(body),
                repeat: Repeat::Once,
                what: &what,
            })
            .await;
        crate::psa::settle_true_up_post(posted.map(|c| c.item_id.unwrap_or(0)), find).await
    }
}
