//! `unitsync doctor` against Autotask: zone, login, reads and the write permission checked one
//! by one, so a failure names the one thing to fix.

use super::*;

impl AutotaskClient {
    pub(super) async fn check_access_impl(&self, mappings: &[Mapping]) -> Vec<AccessCheck> {
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
                CheckKind::ReadContracts,
                CheckKind::ReadLines,
            ] {
                if !checks.iter().any(|c: &AccessCheck| c.kind == kind) {
                    checks.push(AccessCheck {
                        kind,
                        outcome: CheckOutcome::Skipped,
                        detail: reason.to_string(),
                    });
                }
            }
            checks.push(AccessCheck {
                kind: CheckKind::UpdateLines,
                outcome: CheckOutcome::Skipped,
                detail: reason.to_string(),
            });
        };

        match self.transport.base().await {
            Ok(base) => checks.push(check(
                CheckKind::Host,
                CheckOutcome::Pass,
                if self.base_is_fixed {
                    format!("API base {base} (from `url`)")
                } else {
                    format!("zone discovered: API base {base}")
                },
            )),
            Err(e) => {
                checks.push(check(CheckKind::Host, CheckOutcome::Fail, e.to_string()));
                skip_rest(&mut checks, "the zone could not be found");
                return checks;
            }
        }
        match self.check_budget_impl(&[], 0).await {
            Ok(b) => checks.push(check(
                CheckKind::Credentials,
                CheckOutcome::Pass,
                format!(
                    "credentials accepted; {} of {} requests used this hour (shared by every integration)",
                    b.used,
                    thousands(b.threshold)
                ),
            )),
            Err(e @ PsaError::RequestBudget { .. }) => checks.push(check(
                CheckKind::Credentials,
                CheckOutcome::Warn,
                format!("credentials accepted, but {e}"),
            )),
            Err(e) => {
                checks.push(check(CheckKind::Credentials, CheckOutcome::Fail, e.to_string()));
                skip_rest(&mut checks, "the credential check failed");
                return checks;
            }
        }

        let probe = mappings
            .iter()
            .find_map(|m| match m.contract.as_ref().map(RecordRef::kind) {
                Some(RefKind::Id(id)) => Some((id, m)),
                _ => None,
            });
        let filter = match probe {
            Some((id, _)) => vec![Filter::new("eq", "id", id)],
            None => vec![Filter::new("gte", "id", 0)],
        };
        let query = QueryRequest {
            max_records: 1,
            include_fields: CONTRACT_FIELDS.to_vec(),
            filter,
        };
        let contracts = self
            .transport
            .send_json::<wire::QueryPage<Contract>>(Request {
                method: Method::POST,
                entity: "Contracts",
                target: Target::Api("Contracts/query".into()),
                body: Some(serde_json::to_value(&query).expect("a query serialises")),
                repeat: Repeat::Idempotent,
                what: "contracts",
            })
            .await;
        let contract = match contracts.map(|p| p.items.into_iter().next()) {
            Ok(Some(c)) => {
                checks.push(check(
                    CheckKind::ReadContracts,
                    CheckOutcome::Pass,
                    format!(
                        "read contract {} ({})",
                        c.id,
                        c.contract_name.as_deref().unwrap_or("unnamed")
                    ),
                ));
                Some(c)
            }
            Ok(None) => {
                checks.push(check(
                    CheckKind::ReadContracts,
                    match probe {
                        Some(_) => CheckOutcome::Warn,
                        None => CheckOutcome::Pass,
                    },
                    match probe {
                        Some((id, m)) => format!(
                            "contracts can be read, but contract {id} of mapping {} was not found",
                            m.effective_id()
                        ),
                        None => "contracts can be read (there are none)".into(),
                    },
                ));
                None
            }
            Err(e) => {
                checks.push(check(
                    CheckKind::ReadContracts,
                    CheckOutcome::Fail,
                    e.to_string(),
                ));
                skip_rest(&mut checks, "contracts could not be read");
                return checks;
            }
        };
        let Some(contract) = contract else {
            skip_rest(&mut checks, "no contract to read services from");
            return checks;
        };
        let services = self
            .query::<ContractService>(
                "ContractServices",
                CONTRACT_SERVICE_FIELDS,
                vec![Filter::new("eq", "contractID", contract.id)],
                &format!("contract services of contract {}", contract.id),
            )
            .await;
        let services = match services {
            Ok(s) => s,
            Err(e) => {
                checks.push(check(
                    CheckKind::ReadLines,
                    CheckOutcome::Fail,
                    e.to_string(),
                ));
                skip_rest(&mut checks, "contract services could not be read");
                return checks;
            }
        };
        let ids: BTreeSet<u64> = services.iter().map(|s| s.id).collect();
        match self.units(&ids, self.effective).await {
            Ok(units) => checks.push(check(
                CheckKind::ReadLines,
                CheckOutcome::Pass,
                format!(
                    "read {} contract service(s) of contract {} and units for {} of them for the period containing {}",
                    services.len(),
                    contract.id,
                    units.len(),
                    self.effective
                ),
            )),
            Err(e) => {
                checks.push(check(CheckKind::ReadLines, CheckOutcome::Fail, e.to_string()));
                skip_rest(&mut checks, "contract service units could not be read");
                return checks;
            }
        }
        checks.push(check(
            CheckKind::UpdateLines,
            CheckOutcome::Skipped,
            WRITE_PROBE_SKIPPED.into(),
        ));
        checks
    }
}
