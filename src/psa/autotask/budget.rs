//! Autotask's hourly request budget, shared by every integration on the database: how many
//! requests a run needs, and refusing one that would run out half-way.

use super::*;

impl AutotaskClient {
    /// Requests a run over `mappings` with up to `writes` adjustments needs: the budget check,
    /// every page of every query the snapshot makes, and three per write.
    ///
    /// A query is one request per page of 500 rows, so what it costs depends on how many rows it
    /// returns, and the reads by a parent id can return far more rows than there are mappings:
    /// the snapshot reads *every* contract service of the mapped contracts (and the services and
    /// units of all of them), not just the mapped ones. `contract_services` is the number of
    /// contract services of the contracts named by id, per `in` batch of 500 contracts, as
    /// [`Self::check_budget_impl`] counts them with `ContractServices/query/count`; without it
    /// every mapping is assumed to be the only line of its contract, which is a lower bound.
    /// Reads by id (companies, contracts, services) return at most one row per id, so one page
    /// per batch of 500 ids; units return one row per contract service (the period containing
    /// the effective date), so one page per batch of 500 contract services. Contracts named by
    /// name and their lines are not counted before the snapshot, so they enter as a lower bound.
    pub fn estimate_requests(
        &self,
        mappings: &[Mapping],
        writes: usize,
        contract_services: Option<&[u64]>,
    ) -> u64 {
        let max = u64::from(MAX_RECORDS);
        let batches = |n: u64| n.div_ceil(max);
        // A query is at least one request, and one more per further 500 rows.
        let pages = |rows: u64| rows.div_ceil(max).max(1);
        let refs = Refs::collect(mappings).unwrap_or_default();
        let mut n = 1; // ThresholdInformation
        if !self.base_is_fixed {
            n += 1; // zone discovery
        }
        n += batches(refs.company_ids.len() as u64) + refs.company_names.len() as u64;
        n += batches(refs.contract_ids.len() as u64);

        // Mappings whose contract is named by id, and by name.
        let by_id = mappings
            .iter()
            .filter(|m| {
                matches!(
                    m.contract
                        .as_ref()
                        .or(m.agreement.as_ref())
                        .map(RecordRef::kind),
                    Some(RefKind::Id(_))
                )
            })
            .count() as u64;
        let by_name = refs.named_contracts.len() as u64;
        // Contract services of the contracts named by id: counted, or at least one a mapping.
        let (id_rows, id_pages) = match contract_services {
            Some(counted) => {
                n += counted.len() as u64; // the count requests themselves
                (
                    counted.iter().sum::<u64>(),
                    counted.iter().map(|&r| pages(r)).sum::<u64>(),
                )
            }
            None => (
                by_id,
                batches(refs.contract_ids.len() as u64).max(by_id.div_ceil(max)),
            ),
        };
        if by_name > 0 {
            // The mapped companies' contracts, then the lines of the ones that match.
            n += pages(by_name);
            n += pages(by_name);
        }
        n += id_pages;
        let rows = id_rows + by_name;
        // Services (at most one per contract service) and units (one row per contract service).
        n += 2 * batches(rows);
        n + REQUESTS_PER_WRITE * writes as u64
    }

    /// The contract services of the contracts `mappings` name by id, per `in` batch of 500
    /// contracts (one `ContractServices/query/count` each).
    pub(super) async fn count_contract_services(
        &self,
        mappings: &[Mapping],
    ) -> Result<Vec<u64>, PsaError> {
        let refs = Refs::collect(mappings)?;
        let ids: Vec<u64> = refs.contract_ids.iter().copied().collect();
        let mut counts = Vec::new();
        for chunk in ids.chunks(MAX_RECORDS as usize) {
            let query = serde_json::json!({ "filter": [Filter::new("in", "contractID", chunk)] });
            let count: wire::QueryCount = self
                .transport
                .send_json(Request {
                    method: Method::POST,
                    entity: "ContractServices",
                    target: Target::Api("ContractServices/query/count".into()),
                    body: Some(query),
                    repeat: Repeat::Idempotent,
                    what: "the number of contract services of the mapped contracts",
                })
                .await?;
            counts.push(count.query_count.unwrap_or(0));
        }
        Ok(counts)
    }

    /// Reads `ThresholdInformation` and refuses when the run would need more requests than the
    /// hour has left.
    pub async fn check_budget_impl(
        &self,
        mappings: &[Mapping],
        writes: usize,
    ) -> Result<Budget, PsaError> {
        // The lower bound first: a run that cannot fit even that is refused without counting.
        let mut needed = self.estimate_requests(mappings, writes, None);
        let status: ThresholdStatus = self
            .transport
            .send_json(Request {
                method: Method::GET,
                entity: "ThresholdInformation",
                target: Target::Api("ThresholdInformation".into()),
                body: None,
                repeat: Repeat::Idempotent,
                what: "the API request threshold",
            })
            .await?;
        let mut budget = Budget {
            needed,
            threshold: status
                .external_request_threshold
                .map_or(10_000, |n| n.max(0) as u64),
            used: status.current_timeframe_request_count.unwrap_or(0).max(0) as u64,
            timeframe_minutes: status
                .request_threshold_timeframe
                .map_or(60, |n| n.max(1) as u64),
        };
        // Then the contract services the snapshot will page through, counted: the mapped
        // contracts' unmapped lines cost requests too.
        let by_id = Refs::collect(mappings).is_ok_and(|r| !r.contract_ids.is_empty());
        if needed <= budget.remaining() && by_id {
            let counted = self.count_contract_services(mappings).await?;
            needed = self.estimate_requests(mappings, writes, Some(&counted));
            budget.needed = needed;
        }
        if needed > budget.remaining() {
            let after = crate::clock::now()
                + jiff::SignedDuration::from_mins(budget.timeframe_minutes as i64);
            return Err(PsaError::RequestBudget {
                needed,
                remaining: budget.remaining(),
                threshold: thousands(budget.threshold),
                retry_after: format!(
                    "{} at the latest (the {}-minute window is rolling, so room may free up sooner)",
                    after.strftime("%Y-%m-%d %H:%M UTC"),
                    budget.timeframe_minutes
                ),
            });
        }
        tracing::info!(
            needed,
            used = budget.used,
            threshold = budget.threshold,
            "Autotask request budget"
        );
        Ok(budget)
    }
}
