//! `unitsync doctor` against ConnectWise: each step of reaching, logging in to and reading and
//! writing the PSA checked on its own, so a failure names the one thing to fix.

use super::*;

impl ConnectWiseClient {
    pub(super) async fn check_access_impl(
        &self,
        mappings: &[Mapping],
        probe_write: bool,
    ) -> Vec<AccessCheck> {
        let t = &self.transport;
        let mut checks = Vec::new();
        let check = |kind, outcome, detail: String| AccessCheck {
            kind,
            outcome,
            detail,
        };
        let skip_rest = |checks: &mut Vec<AccessCheck>, reason: &str| {
            for kind in [
                CheckKind::Host,
                CheckKind::Credentials,
                CheckKind::ClientId,
                CheckKind::ReadContracts,
                CheckKind::ReadLines,
                CheckKind::UpdateLines,
            ] {
                if !checks.iter().any(|c: &AccessCheck| c.kind == kind) {
                    checks.push(AccessCheck {
                        kind,
                        outcome: CheckOutcome::Skipped,
                        detail: reason.to_string(),
                    });
                }
            }
        };

        match t.codebase().await {
            Ok(codebase) => checks.push(check(
                CheckKind::Host,
                CheckOutcome::Pass,
                format!("{} answers; API base {}", t.host, t.base_label(&codebase)),
            )),
            Err(e) => {
                checks.push(check(CheckKind::Host, CheckOutcome::Fail, e.to_string()));
                skip_rest(&mut checks, "the host did not answer");
                return checks;
            }
        }

        let info = t
            .execute(&Request {
                method: Method::GET,
                target: api("system/info".into()),
                body: None,
                repeat: Repeat::Idempotent,
                what: "system info",
            })
            .await;
        match info {
            Ok(_) => checks.push(check(
                CheckKind::Credentials,
                CheckOutcome::Pass,
                format!("API keys accepted for login company {:?}", t.company),
            )),
            Err(PsaError::Forbidden { .. }) => checks.push(check(
                CheckKind::Credentials,
                CheckOutcome::Pass,
                format!(
                    "API keys accepted for login company {:?} (system info is not permitted, which unitsync does not need)",
                    t.company
                ),
            )),
            Err(e @ PsaError::Unauthorized { .. }) => {
                checks.push(check(CheckKind::Credentials, CheckOutcome::Fail, e.to_string()));
                checks.push(self.client_id_check());
                skip_rest(&mut checks, "the credentials were rejected");
                return checks;
            }
            Err(e @ PsaError::NotFound { .. }) => checks.push(check(
                CheckKind::Credentials,
                CheckOutcome::Warn,
                format!("could not verify the keys: {e}"),
            )),
            Err(e) => {
                checks.push(check(CheckKind::Credentials, CheckOutcome::Fail, e.to_string()));
                checks.push(self.client_id_check());
                skip_rest(&mut checks, "the credential check failed");
                return checks;
            }
        }
        checks.push(self.client_id_check());

        // Read agreements: the first mapped agreement id, or any one agreement.
        let probe = mappings
            .iter()
            .find_map(|m| match m.agreement.as_ref().map(RecordRef::kind) {
                Some(RefKind::Id(id)) => Some((id, m)),
                _ => None,
            });
        let mut query = vec![("pageSize", "1".to_string())];
        if let Some((id, _)) = probe {
            query.insert(0, ("conditions", format!("id = {id}")));
        }
        let agreements = t
            .send_json::<Vec<Agreement>>(Request {
                method: Method::GET,
                target: Target::Api {
                    path: "finance/agreements".into(),
                    query,
                },
                body: None,
                repeat: Repeat::Idempotent,
                what: "agreements",
            })
            .await;
        let agreement = match agreements {
            Ok(list) => match (list.into_iter().next(), probe) {
                (Some(a), _) => {
                    checks.push(check(
                        CheckKind::ReadContracts,
                        CheckOutcome::Pass,
                        format!(
                            "read agreement {} ({})",
                            a.id,
                            a.name.as_deref().unwrap_or("unnamed")
                        ),
                    ));
                    Some(a)
                }
                (None, Some((id, m))) => {
                    checks.push(check(
                        CheckKind::ReadContracts,
                        CheckOutcome::Warn,
                        format!(
                            "agreements can be read, but agreement {id} of mapping {} was not found",
                            m.effective_id()
                        ),
                    ));
                    None
                }
                (None, None) => {
                    checks.push(check(
                        CheckKind::ReadContracts,
                        CheckOutcome::Pass,
                        "agreements can be read (there are none)".into(),
                    ));
                    None
                }
            },
            Err(e) => {
                checks.push(check(
                    CheckKind::ReadContracts,
                    CheckOutcome::Fail,
                    e.to_string(),
                ));
                skip_rest(&mut checks, "agreements could not be read");
                return checks;
            }
        };
        let Some(agreement) = agreement else {
            skip_rest(&mut checks, "no agreement to read additions from");
            return checks;
        };

        let additions = agreement_additions(t, agreement.id).await;
        let additions = match additions {
            Ok(list) => {
                checks.push(check(
                    CheckKind::ReadLines,
                    CheckOutcome::Pass,
                    format!(
                        "read {} addition(s) of agreement {}",
                        list.len(),
                        agreement.id
                    ),
                ));
                list
            }
            Err(e) => {
                checks.push(check(
                    CheckKind::ReadLines,
                    CheckOutcome::Fail,
                    e.to_string(),
                ));
                skip_rest(&mut checks, "additions could not be read");
                return checks;
            }
        };

        if !probe_write {
            checks.push(check(
                CheckKind::UpdateLines,
                CheckOutcome::Skipped,
                "not probed: the probe writes an addition's current quantity back unchanged (it leaves an audit-trail entry); ask for it explicitly".into(),
            ));
            return checks;
        }
        // Prefer the mapped addition of the probed agreement; else any active one.
        let lines: Vec<(PsaLine, &Addition)> = additions
            .iter()
            .map(|a| (a.to_snapshot(agreement.id), a))
            .filter(|(l, _)| l.status == RecordStatus::Active)
            .collect();
        let mapped = probe.and_then(|(_, m)| {
            let wanted = m.addition.as_ref()?;
            lines.iter().find(|(l, _)| match wanted.kind() {
                RefKind::Id(id) => l.id == id,
                RefKind::Identifier(s) => l
                    .product_identifier
                    .as_deref()
                    .is_some_and(|i| same_text(i, s)),
                RefKind::Name(s) => same_text(&l.product_name, s),
            })
        });
        let Some((line, _)) = mapped.or_else(|| lines.first()) else {
            checks.push(check(
                CheckKind::UpdateLines,
                CheckOutcome::Skipped,
                format!("agreement {} has no active addition to probe", agreement.id),
            ));
            return checks;
        };
        match self
            .patch_addition(agreement.id, line.id, "quantity", line.quantity)
            .await
        {
            Ok(_) => checks.push(check(
                CheckKind::UpdateLines,
                CheckOutcome::Pass,
                format!(
                    "wrote addition {}'s quantity {} back unchanged",
                    line.id, line.quantity
                ),
            )),
            Err(e) => checks.push(check(
                CheckKind::UpdateLines,
                CheckOutcome::Fail,
                e.to_string(),
            )),
        }
        checks
    }

    pub(super) fn client_id_check(&self) -> AccessCheck {
        if self.client_id_is_guid {
            AccessCheck {
                kind: CheckKind::ClientId,
                outcome: CheckOutcome::Pass,
                detail: "set, and sent as the clientId header on every request".into(),
            }
        } else {
            AccessCheck {
                kind: CheckKind::ClientId,
                outcome: CheckOutcome::Warn,
                detail: format!(
                    "{ENV_CLIENT_ID} does not look like a GUID; register a client id at developer.connectwise.com/ClientID"
                ),
            }
        }
    }
}
