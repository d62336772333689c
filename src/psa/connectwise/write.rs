//! Writing a ConnectWise agreement: a quantity patched in place, a cancel-and-readd that never
//! bills a day twice and resumes where an interrupted run stopped, and one-time true-up additions.

use super::*;

impl ConnectWiseClient {
    pub(super) async fn patch_addition<T: serde::Serialize>(
        &self,
        agreement_id: u64,
        addition_id: u64,
        field: &'static str,
        value: T,
    ) -> Result<Addition, PsaError> {
        let value = serde_json::to_value(value).expect("a patch value serialises");
        self.patch_addition_fields(agreement_id, addition_id, vec![(field, value)])
            .await
    }

    /// One PATCH of several fields: a quantity with its synced price and cost go together, so a
    /// line never bills the new count at the old price or the other way round.
    pub(super) async fn patch_addition_fields(
        &self,
        agreement_id: u64,
        addition_id: u64,
        fields: Vec<(&'static str, serde_json::Value)>,
    ) -> Result<Addition, PsaError> {
        let what = format!("addition {addition_id} on agreement {agreement_id}");
        let ops: Vec<PatchOp<serde_json::Value>> = fields
            .into_iter()
            .map(|(path, value)| PatchOp {
                op: "replace",
                path,
                value,
            })
            .collect();
        let body = serde_json::to_value(ops).expect("a patch serialises");
        self.transport
            .send_json(Request {
                method: Method::PATCH,
                target: api(format!(
                    "finance/agreements/{agreement_id}/additions/{addition_id}"
                )),
                body: Some(body),
                repeat: Repeat::Idempotent,
                what: &what,
            })
            .await
    }

    pub(super) async fn update_in_place(
        &self,
        change: &LineChange,
    ) -> Result<AppliedChange, PsaError> {
        let mut fields = vec![("quantity", serde_json::json!(change.to))];
        for (field, value) in [
            ("unitPrice", change.unit_price),
            ("unitCost", change.unit_cost),
        ] {
            if let Some(value) = value {
                fields.push((field, serde_json::json!(value)));
            }
        }
        let updated = self
            .patch_addition_fields(change.contract_id, change.line_id, fields)
            .await?;
        if let Some(quantity) = updated.quantity
            && quantity != change.to
        {
            return Err(PsaError::Conflict {
                what: format!(
                    "addition {} on agreement {}",
                    change.line_id, change.contract_id
                ),
                reason: format!(
                    "ConnectWise accepted the update to {} but the addition now holds {quantity}",
                    change.to
                ),
            });
        }
        Ok(AppliedChange::UpdatedInPlace {
            line_id: change.line_id,
            quantity: change.to,
        })
    }

    pub(super) async fn cancel_and_readd(
        &self,
        change: &LineChange,
    ) -> Result<AppliedChange, PsaError> {
        let (agreement_id, old_id) = (change.contract_id, change.line_id);
        let what = format!("addition {old_id} on agreement {agreement_id}");
        let old = self.get_addition(agreement_id, old_id).await?;
        let effective = change.effective.to_string();
        // The old addition's last day is the day before the copy starts, so the two never
        // bill the same day.
        let last_day = last_day_before(change.effective);
        let resumed = if old.cancelled_on(&last_day.to_string()) {
            true
        } else if let Some(date) = old
            .cancelled_date
            .as_deref()
            .filter(|d| !d.trim().is_empty())
        {
            return Err(PsaError::Conflict {
                what,
                reason: format!(
                    "it is already cancelled as of {date}; unitsync does not replace a line cancelled by someone else — map the active addition"
                ),
            });
        } else {
            let found = old.quantity.unwrap_or(Quantity::ZERO);
            if found != change.from {
                return Err(PsaError::Stale {
                    what,
                    expected: change.from,
                    found,
                });
            }
            false
        };
        let product_id =
            old.product
                .as_ref()
                .and_then(|p| p.id)
                .ok_or_else(|| PsaError::Conflict {
                    what: what.clone(),
                    reason: "it names no product id, so it cannot be re-added".into(),
                })?;
        let readd_failed = |source: PsaError| PsaError::ReaddFailed {
            cancelled: old_id,
            last_day,
            effective: change.effective,
            source: Box::new(source),
        };
        if resumed {
            if let Some(existing) = self
                .find_readded(agreement_id, &old, product_id, change)
                .await
                .map_err(readd_failed)?
            {
                return Ok(AppliedChange::CancelledAndReadded {
                    cancelled_line_id: old_id,
                    new_line_id: existing,
                    quantity: change.to,
                    effective: change.effective,
                    resumed: true,
                });
            }
        } else {
            self.patch_addition(
                agreement_id,
                old_id,
                "cancelledDate",
                format!("{last_day}T00:00:00Z"),
            )
            .await?;
        }

        let mut copy = NewAddition::copy_of(
            &old,
            product_id,
            change.to,
            format!("{effective}T00:00:00Z"),
            agreement_id,
        );
        // The copy bills the mapping's price and cost when they are synced.
        if let Some(price) = change.unit_price {
            copy.unit_price = Some(serde_json::json!(price));
        }
        if let Some(cost) = change.unit_cost {
            copy.unit_cost = Some(serde_json::json!(cost));
        }
        let body = serde_json::to_value(copy).expect("an addition serialises");
        let post_what = format!("a new addition on agreement {agreement_id}");
        let mut attempt = 1;
        loop {
            let posted: Result<Addition, PsaError> = self
                .transport
                .send_json(Request {
                    method: Method::POST,
                    target: api(format!("finance/agreements/{agreement_id}/additions")),
                    body: Some(body.clone()),
                    repeat: Repeat::Once,
                    what: &post_what,
                })
                .await;
            match posted {
                Ok(new) => {
                    return Ok(AppliedChange::CancelledAndReadded {
                        cancelled_line_id: old_id,
                        new_line_id: new.id,
                        quantity: change.to,
                        effective: change.effective,
                        resumed,
                    });
                }
                Err(e) if e.is_transient() && attempt < self.transport.retry.max_attempts => {
                    tracing::warn!(
                        "{e}; checking whether the addition was created before retrying"
                    );
                    tokio::time::sleep(self.transport.retry.backoff(attempt)).await;
                    // The POST may have been carried out before the failure: never add twice.
                    if let Some(existing) = self
                        .find_readded(agreement_id, &old, product_id, change)
                        .await
                        .map_err(readd_failed)?
                    {
                        return Ok(AppliedChange::CancelledAndReadded {
                            cancelled_line_id: old_id,
                            new_line_id: existing,
                            quantity: change.to,
                            effective: change.effective,
                            resumed,
                        });
                    }
                    attempt += 1;
                }
                Err(e) => return Err(readd_failed(e)),
            }
        }
    }

    /// A replacement for `old` that an earlier attempt created: same product, the new quantity,
    /// starting on the effective date, not cancelled.
    pub(super) async fn find_readded(
        &self,
        agreement_id: u64,
        old: &Addition,
        product_id: u64,
        change: &LineChange,
    ) -> Result<Option<u64>, PsaError> {
        let effective = change.effective.to_string();
        let additions = agreement_additions(&self.transport, agreement_id).await?;
        Ok(additions
            .iter()
            .filter(|a| {
                a.id != old.id
                    && a.product.as_ref().and_then(|p| p.id) == Some(product_id)
                    && a.quantity == Some(change.to)
                    && a.cancelled_date
                        .as_deref()
                        .is_none_or(|d| d.trim().is_empty())
                    && a.effective_date
                        .as_deref()
                        .is_some_and(|d| d.trim().starts_with(&effective))
            })
            .map(|a| a.id)
            .max())
    }

    /// Writes an approved true-up as its own addition, effective on the agreement's next invoice
    /// date and cancelled on the last day of that period, so it bills exactly once: one period
    /// of `quantity` units at the line's price, on the next invoice. The line itself is left
    /// alone.
    pub(super) async fn write_true_up_impl(
        &self,
        t: &TrueUpCharge,
    ) -> Result<WrittenTrueUp, PsaError> {
        let agreement_id = t.contract_id;
        let what = format!("true-up {} on agreement {agreement_id}", t.id);
        let marker = t.marker();
        let find = || async {
            let additions = agreement_additions(&self.transport, agreement_id).await?;
            Ok::<_, PsaError>(
                additions
                    .iter()
                    .filter(|a| {
                        a.description
                            .as_deref()
                            .is_some_and(|d| d.starts_with(&marker))
                    })
                    .map(|a| a.id)
                    .min(),
            )
        };
        if let Some(id) = find().await? {
            return Ok(WrittenTrueUp {
                record_id: id,
                found: true,
            });
        }
        let ids = BTreeSet::from([agreement_id]);
        let (line, agreements) = tokio::join!(
            self.get_addition(agreement_id, t.line_id),
            self.agreements_by_id(&ids)
        );
        let line = line?;
        let agreement = agreements?
            .into_iter()
            .find(|a| a.id == agreement_id)
            .ok_or_else(|| PsaError::Conflict {
                what: what.clone(),
                reason: format!("agreement {agreement_id} was not found"),
            })?;
        let effective = agreement.open_from().ok_or_else(|| PsaError::Conflict {
            what: what.clone(),
            reason: "the agreement has no next invoice date, so the period a one-time correction bills in is unknown; check the agreement's billing setup".into(),
        })?;
        let cycle = agreement.cycle().ok_or_else(|| PsaError::Conflict {
            what: what.clone(),
            reason: format!(
                "the agreement's billing cycle ({}) is not monthly, quarterly, semi-annual or annual, so the correction cannot be made to bill exactly one period; write it by hand",
                agreement
                    .billing_cycle
                    .as_ref()
                    .and_then(|c| c.name.as_deref())
                    .unwrap_or("not set")
            ),
        })?;
        let period_end = effective
            .checked_add(jiff::Span::new().months(i64::from(cycle.months())))
            .and_then(|d| d.yesterday())
            .map_err(|e| PsaError::Conflict {
                what: what.clone(),
                reason: format!("the period from {effective} has no end date: {e}"),
            })?;
        let product_id =
            line.product
                .as_ref()
                .and_then(|p| p.id)
                .ok_or_else(|| PsaError::Conflict {
                    what: what.clone(),
                    reason: format!(
                        "addition {} names no product id for the correction to bill",
                        line.id
                    ),
                })?;
        let mut copy = NewAddition::copy_of(
            &line,
            product_id,
            t.quantity,
            format!("{effective}T00:00:00Z"),
            agreement_id,
        );
        copy.cancelled_date = Some(format!("{period_end}T00:00:00Z"));
        copy.description = Some(t.description());
        copy.invoice_description = Some(format!(
            "{}: correction for {} to {}",
            line.invoice_description
                .as_deref()
                .or(line.description.as_deref())
                .filter(|d| !d.trim().is_empty())
                .unwrap_or("units"),
            t.first_day,
            t.last_day
        ));
        // A correction is billed once, whole: no proration against a period it starts in, and
        // no included units taken off a difference the line's own inclusion already covered.
        copy.prorate_current_period_flag = Some(false);
        copy.less_included = Some(serde_json::json!(0));
        copy.serial_number = None;
        copy.custom_fields = None;
        let body = serde_json::to_value(copy).expect("an addition serialises");
        let posted: Result<Addition, PsaError> = self
            .transport
            .send_json(Request {
                method: Method::POST,
                target: api(format!("finance/agreements/{agreement_id}/additions")),
                body: Some(body),
                repeat: Repeat::Once,
                what: &what,
            })
            .await;
        crate::psa::settle_true_up_post(posted.map(|a| a.id), find).await
    }
}

/// The day a cancel-and-readd ends the old addition: the last day of the period before the copy
/// starts on `effective`.
pub(super) fn last_day_before(effective: jiff::civil::Date) -> jiff::civil::Date {
    effective.yesterday().unwrap_or(effective)
}
