//! ConnectWise PSA (Manage) REST client.
//!
//! Wire behaviour, all under `{host}/{codebase}apis/3.0/` (codebase from
//! `GET {host}/login/companyinfo/{company}`, default `v4_6_release/`, rediscovered once on a 404):
//!
//! - companies: `GET company/companies?conditions=id in (1,2)&pageSize=1000`,
//!   `…conditions=identifier in ("A","B") and deletedFlag = false…`, and one
//!   `…conditions=name = "X" and deletedFlag = false…` per `{name: X}`;
//! - agreements: `GET finance/agreements?conditions=id in (1001,1002)&pageSize=1000`; agreements
//!   named by name list their company's agreements, `conditions=company/id in (250)`;
//! - additions: `GET finance/agreements/{id}/additions?pageSize=1000` per agreement, concurrently;
//! - every listing follows `Link: <…>; rel="next"`;
//! - writes: `PATCH finance/agreements/{a}/additions/{id}` with
//!   `[{"op":"replace","path":"quantity","value":N}]`, or for cancel-and-re-add a `PATCH` of
//!   `cancelledDate` (the day before the effective date) followed by a
//!   `POST finance/agreements/{a}/additions` starting on the effective date.
//!
//! Headers: `Authorization: Basic base64(company+public:private)`, `clientId`,
//! `Accept: application/vnd.connectwise.com+json; version=…`, `Content-Type: application/json`
//! on writes. At most `concurrency` requests are in flight at once.

mod doctor;
pub(crate) mod http;
mod wire;
mod write;

use write::last_day_before;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use reqwest::Method;
use reqwest::Url;
use reqwest::header::{ACCEPT, HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use tokio::task::JoinSet;

pub use http::RetryPolicy;
use http::{DEFAULT_API_VERSION, PAGE_SIZE, Redactor, Repeat, Request, Target, Transport};
use wire::{Addition, Agreement, Company, NewAddition, PatchOp};

use super::{
    AccessCheck, AppliedChange, CheckKind, CheckOutcome, LineChange, Psa, PsaError, TRUE_UP_MARKER,
    TrueUpCharge, WrittenTrueUp,
};
use crate::config::{ConnectWiseSettings, Mapping, RecordRef, RefKind, UpdatePolicy};
use crate::plan::{PsaCompany, PsaContract, PsaLine, PsaSnapshot, RecordStatus};
use crate::quantity::Quantity;

/// Leaves out companies in the recycle bin, which keep their name (the usual source of duplicate
/// names) and are still listed unless filtered; django-connectwise adds the same condition.
const NOT_DELETED: &str = "deletedFlag = false";
/// Ids per `conditions=id in (…)` request, keeping URLs well under common 8 KB limits.
const IDS_PER_REQUEST: usize = 100;
/// Identifiers (up to 30 characters each) per `identifier in (…)` request.
const IDENTIFIERS_PER_REQUEST: usize = 50;

pub const ENV_PUBLIC_KEY: &str = "UNITSYNC_CW_PUBLIC_KEY";
pub const ENV_PRIVATE_KEY: &str = "UNITSYNC_CW_PRIVATE_KEY";
pub const ENV_CLIENT_ID: &str = "UNITSYNC_CW_CLIENT_ID";

/// An API member's keys and the integration's client id. Never printed.
#[derive(Clone)]
pub struct Credentials {
    public_key: SecretString,
    private_key: SecretString,
    client_id: SecretString,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials { public_key: [redacted], private_key: [redacted], client_id: [redacted] }")
    }
}

impl Credentials {
    pub fn new(
        public_key: impl Into<String>,
        private_key: impl Into<String>,
        client_id: impl Into<String>,
    ) -> Credentials {
        Credentials {
            public_key: SecretString::from(public_key.into()),
            private_key: SecretString::from(private_key.into()),
            client_id: SecretString::from(client_id.into()),
        }
    }

    /// Reads `UNITSYNC_CW_PUBLIC_KEY`, `UNITSYNC_CW_PRIVATE_KEY` and `UNITSYNC_CW_CLIENT_ID`.
    pub fn from_env() -> Result<Credentials, PsaError> {
        Credentials::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`Credentials::from_env`], reading variables through `lookup`. Empty values count
    /// as missing.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Credentials, PsaError> {
        let get = |name, hint| crate::psa::required_secret(&lookup, name, hint);
        Ok(Credentials {
            public_key: get(
                ENV_PUBLIC_KEY,
                "set it to the API member's public key (System > Members > API Members > API Keys)",
            )?,
            private_key: get(
                ENV_PRIVATE_KEY,
                "set it to the API member's private key (shown once when the key is created)",
            )?,
            client_id: get(
                ENV_CLIENT_ID,
                "set it to the integration's client id (a GUID from developer.connectwise.com/ClientID)",
            )?,
        })
    }
}

/// Maps the settings' `site` to the API host: `na|eu|au|aus|za.myconnectwise.net` →
/// `https://api-na.myconnectwise.net` etc.; any other host name gets `https://`; a full URL
/// (`http://127.0.0.1:8080`, `https://cw.example.com`) is used as it is.
pub fn api_host(site: &str) -> Result<Url, PsaError> {
    let trimmed = site.trim();
    let invalid = |reason: &str| PsaError::InvalidSite {
        vendor: crate::config::PsaKind::ConnectWise,
        site: site.to_string(),
        reason: reason.to_string(),
    };
    if trimmed.is_empty() {
        return Err(invalid("it is empty"));
    }
    let text = if trimmed.contains("://") {
        trimmed.trim_end_matches('/').to_string()
    } else {
        let host = trimmed.trim_end_matches('/').to_ascii_lowercase();
        let cloud = ["na", "eu", "au", "aus", "za"]
            .into_iter()
            .find(|region| host == format!("{region}.myconnectwise.net"));
        match cloud {
            Some(region) => format!("https://api-{region}.myconnectwise.net"),
            None => format!("https://{host}"),
        }
    };
    let url = Url::parse(&text).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid(
            "use a host name such as na.myconnectwise.net or an http(s) URL",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "put no credentials in the URL; they come from UNITSYNC_CW_* variables",
        ));
    }
    Ok(url)
}

/// A ConnectWise PSA client. Cheap to clone; clones share the connection pool, the codebase and
/// the concurrency limit.
#[derive(Clone)]
pub struct ConnectWiseClient {
    transport: Arc<Transport>,
    client_id_is_guid: bool,
    /// See [`ConnectWiseClient::resuming_readds_on`].
    readds_effective: Option<jiff::civil::Date>,
}

impl fmt::Debug for ConnectWiseClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectWiseClient")
            .field("host", &self.transport.host.as_str())
            .field("company", &self.transport.company)
            .finish_non_exhaustive()
    }
}

impl ConnectWiseClient {
    pub fn new(
        settings: &ConnectWiseSettings,
        credentials: Credentials,
    ) -> Result<ConnectWiseClient, PsaError> {
        ConnectWiseClient::with_retry_policy(settings, credentials, RetryPolicy::default())
    }

    pub fn with_retry_policy(
        settings: &ConnectWiseSettings,
        credentials: Credentials,
        retry: RetryPolicy,
    ) -> Result<ConnectWiseClient, PsaError> {
        let host = api_host(&settings.site)?;
        let company = settings.company.trim().to_string();
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{company}+{}:{}",
            credentials.public_key.expose_secret(),
            credentials.private_key.expose_secret()
        ));
        let header_error = |what: &str| PsaError::InvalidSite {
            vendor: crate::config::PsaKind::ConnectWise,
            site: settings.site.clone(),
            reason: format!("the {what} contains characters not allowed in an HTTP header"),
        };
        let mut auth = HeaderValue::from_str(&format!("Basic {basic}"))
            .map_err(|_| header_error("login company or API key"))?;
        auth.set_sensitive(true);
        let mut client_id = HeaderValue::from_str(credentials.client_id.expose_secret())
            .map_err(|_| header_error("client id"))?;
        client_id.set_sensitive(true);
        let version = settings
            .api_version
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .unwrap_or(DEFAULT_API_VERSION);
        let accept = HeaderValue::from_str(&format!(
            "application/vnd.connectwise.com+json; version={version}"
        ))
        .map_err(|_| header_error("api_version"))?;
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, accept);
        headers.insert(HeaderName::from_static("clientid"), client_id);
        headers.insert(
            reqwest::header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        );
        let client_id_is_guid = looks_like_guid(credentials.client_id.expose_secret());
        let redactor = Redactor::new(vec![
            credentials.private_key.clone(),
            credentials.public_key.clone(),
            credentials.client_id.clone(),
            SecretString::from(basic),
        ]);
        let concurrency = usize::from(settings.concurrency.unwrap_or(4).max(1));
        let mut transport = Transport::new(host, company, headers, auth, concurrency, redactor)?;
        transport.retry = retry;
        if let Some(seconds) = settings.timeout_seconds {
            transport.retry.timeout = std::time::Duration::from_secs(seconds.into());
        }
        Ok(ConnectWiseClient {
            transport: Arc::new(transport),
            client_id_is_guid,
            readds_effective: None,
        })
    }

    /// Reads an addition cancelled on the day before `effective` (the date this run's re-adds
    /// start) with no copy of its product still running as the line in force, not as cancelled.
    ///
    /// That is what a cancel-and-readd stopped between its two writes (a killed run) leaves
    /// behind. Read as cancelled, the mapping would be a plan error and the line would stay
    /// without a replacement; read as in force, it plans as an update and applying it resumes
    /// the re-add (the cancel is not repeated). Like that resume, this takes an addition
    /// cancelled on exactly that day, with nothing replacing it, to be unitsync's own.
    pub fn resuming_readds_on(mut self, effective: jiff::civil::Date) -> ConnectWiseClient {
        self.readds_effective = Some(effective);
        self
    }

    /// The codebase in use (discovering it if needed), e.g. `v4_6_release/`.
    pub async fn codebase(&self) -> Result<String, PsaError> {
        self.transport.codebase().await
    }

    async fn companies(&self, refs: &CompanyRefs) -> Result<Vec<Company>, PsaError> {
        let t = &self.transport;
        let mut found = Vec::new();
        let ids: Vec<u64> = refs.ids.iter().copied().collect();
        for chunk in ids.chunks(IDS_PER_REQUEST) {
            found.extend(
                t.list_all::<Company>(
                    "company/companies".into(),
                    conditions(format!("id in ({})", join_ids(chunk))),
                    "companies by id",
                )
                .await?,
            );
        }
        let identifiers: Vec<&String> = refs.identifiers.iter().collect();
        for chunk in identifiers.chunks(IDENTIFIERS_PER_REQUEST) {
            let list = chunk
                .iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(",");
            found.extend(
                t.list_all::<Company>(
                    "company/companies".into(),
                    conditions(format!("identifier in ({list}) and {NOT_DELETED}")),
                    "companies by identifier",
                )
                .await?
                .into_iter()
                .filter(Company::live),
            );
        }
        for name in &refs.names {
            found.extend(
                t.list_all::<Company>(
                    "company/companies".into(),
                    conditions(format!("name = \"{name}\" and {NOT_DELETED}")),
                    "companies by name",
                )
                .await?
                .into_iter()
                .filter(Company::live),
            );
        }
        Ok(found)
    }

    async fn agreements_by_id(&self, ids: &BTreeSet<u64>) -> Result<Vec<Agreement>, PsaError> {
        let ids: Vec<u64> = ids.iter().copied().collect();
        let mut found = Vec::new();
        for chunk in ids.chunks(IDS_PER_REQUEST) {
            found.extend(
                self.transport
                    .list_all::<Agreement>(
                        "finance/agreements".into(),
                        conditions(format!("id in ({})", join_ids(chunk))),
                        "agreements by id",
                    )
                    .await?,
            );
        }
        Ok(found)
    }

    async fn agreements_of_companies(
        &self,
        company_ids: &BTreeSet<u64>,
    ) -> Result<Vec<Agreement>, PsaError> {
        let ids: Vec<u64> = company_ids.iter().copied().collect();
        let mut found = Vec::new();
        for chunk in ids.chunks(IDS_PER_REQUEST) {
            found.extend(
                self.transport
                    .list_all::<Agreement>(
                        "finance/agreements".into(),
                        conditions(format!("company/id in ({})", join_ids(chunk))),
                        "agreements of the mapped companies",
                    )
                    .await?,
            );
        }
        Ok(found)
    }

    async fn snapshot_impl(&self, mappings: &[Mapping]) -> Result<PsaSnapshot, PsaError> {
        let mut company_refs = CompanyRefs::default();
        let mut agreement_ids = BTreeSet::new();
        // (mapping's company ref, agreement name) for agreements named by name.
        let mut named_agreements: Vec<(&RecordRef, &str)> = Vec::new();
        for mapping in mappings {
            let id = mapping.effective_id();
            match mapping.company.kind() {
                RefKind::Id(n) => {
                    company_refs.ids.insert(n);
                }
                RefKind::Identifier(s) => {
                    check_quotable(&id, "company identifier", s)?;
                    company_refs.identifiers.insert(s.trim().to_string());
                }
                RefKind::Name(s) => {
                    check_quotable(&id, "company name", s)?;
                    company_refs.names.insert(s.trim().to_string());
                }
            }
            match mapping
                .agreement
                .as_ref()
                .or(mapping.contract.as_ref())
                .map(RecordRef::kind)
            {
                Some(RefKind::Id(n)) => {
                    agreement_ids.insert(n);
                }
                Some(RefKind::Identifier(s) | RefKind::Name(s)) => {
                    named_agreements.push((&mapping.company, s));
                }
                None => {}
            }
        }

        let (companies, by_id) = tokio::join!(
            self.companies(&company_refs),
            self.agreements_by_id(&agreement_ids)
        );
        let companies: BTreeMap<u64, Company> = companies?.into_iter().map(|c| (c.id, c)).collect();
        let mut agreements: BTreeMap<u64, Agreement> =
            by_id?.into_iter().map(|a| (a.id, a)).collect();

        if !named_agreements.is_empty() {
            // The companies each name lookup may belong to, and the names wanted per company.
            let mut wanted: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
            for (company_ref, name) in &named_agreements {
                for c in companies
                    .values()
                    .filter(|c| company_matches(c, company_ref))
                {
                    wanted.entry(c.id).or_default().push(name);
                }
            }
            let company_ids: BTreeSet<u64> = wanted.keys().copied().collect();
            for a in self.agreements_of_companies(&company_ids).await? {
                let company_id = a.company.as_ref().and_then(|c| c.id).unwrap_or(0);
                let name = a.name.as_deref().unwrap_or_default();
                if wanted
                    .get(&company_id)
                    .is_some_and(|names| names.iter().any(|n| same_text(n, name)))
                {
                    agreements.insert(a.id, a);
                }
            }
        }

        let mut tasks = JoinSet::new();
        for &agreement_id in agreements.keys() {
            let transport = Arc::clone(&self.transport);
            tasks.spawn(async move {
                let additions = agreement_additions(&transport, agreement_id).await?;
                Ok::<_, PsaError>((agreement_id, additions))
            });
        }
        let mut lines = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let (agreement_id, additions) = joined.map_err(|e| PsaError::Conflict {
                what: "reading additions".into(),
                reason: format!("a reader task failed: {e}"),
            })??;
            // A re-add is dated on the effective date, or on the agreement's next invoice date
            // when the effective date is already invoiced (`invoiced_period: roll-forward`).
            let awaiting = self
                .readds_effective
                .map(|effective| {
                    let open_from = agreements.get(&agreement_id).and_then(Agreement::open_from);
                    awaiting_readd(
                        &additions,
                        open_from.map_or(effective, |o| o.max(effective)),
                    )
                })
                .unwrap_or_default();
            lines.extend(additions.iter().map(|a| {
                if awaiting.contains(&a.id) {
                    a.to_snapshot_awaiting_readd(agreement_id)
                } else {
                    a.to_snapshot(agreement_id)
                }
            }));
        }
        lines.sort_by_key(|l| (l.contract_id, l.id));
        for line in &mut lines {
            if let Some(agreement) = agreements.get(&line.contract_id) {
                line.billing.cycle = agreement.cycle();
                line.billing.open_from = agreement.open_from();
            }
        }

        Ok(PsaSnapshot {
            companies: companies
                .into_values()
                .map(Company::into_snapshot)
                .collect(),
            contracts: agreements
                .into_values()
                .map(Agreement::into_snapshot)
                .collect(),
            lines,
        })
    }

    /// Every company in the PSA (for `accounts --suggest`, which matches unmapped vendor
    /// accounts against them by name). Not part of the [`Psa`](crate::psa::Psa) trait yet:
    /// suggestions are ConnectWise-only for now; Autotask suggestions come later.
    pub async fn list_companies(&self) -> Result<Vec<PsaCompany>, PsaError> {
        let companies = self
            .transport
            .list_all::<Company>(
                "company/companies".into(),
                vec![("pageSize", PAGE_SIZE.into())],
                "all companies",
            )
            .await?;
        Ok(companies
            .into_iter()
            .filter(Company::live)
            .map(Company::into_snapshot)
            .collect())
    }

    /// The agreements of one company.
    pub async fn list_agreements(&self, company_id: u64) -> Result<Vec<PsaContract>, PsaError> {
        let ids = BTreeSet::from([company_id]);
        Ok(self
            .agreements_of_companies(&ids)
            .await?
            .into_iter()
            .map(Agreement::into_snapshot)
            .collect())
    }

    /// The additions of one agreement.
    pub async fn list_additions(&self, agreement_id: u64) -> Result<Vec<PsaLine>, PsaError> {
        let additions = agreement_additions(&self.transport, agreement_id).await?;
        Ok(additions
            .iter()
            .map(|a| a.to_snapshot(agreement_id))
            .collect())
    }

    async fn get_addition(
        &self,
        agreement_id: u64,
        addition_id: u64,
    ) -> Result<Addition, PsaError> {
        let what = format!("addition {addition_id} on agreement {agreement_id}");
        self.transport
            .send_json(Request {
                method: Method::GET,
                target: api(format!(
                    "finance/agreements/{agreement_id}/additions/{addition_id}"
                )),
                body: None,
                repeat: Repeat::Idempotent,
                what: &what,
            })
            .await
    }
}

impl Psa for ConnectWiseClient {
    async fn snapshot(&self, mappings: &[Mapping]) -> Result<PsaSnapshot, PsaError> {
        self.snapshot_impl(mappings).await
    }

    async fn reread_line(&self, contract_id: u64, line_id: u64) -> Result<PsaLine, PsaError> {
        Ok(self
            .get_addition(contract_id, line_id)
            .await?
            .to_snapshot(contract_id))
    }

    async fn apply(&self, change: &LineChange) -> Result<AppliedChange, PsaError> {
        match change.policy {
            UpdatePolicy::InPlace => self.update_in_place(change).await,
            UpdatePolicy::CancelAndReadd => self.cancel_and_readd(change).await,
        }
    }

    async fn write_true_up(&self, charge: &TrueUpCharge) -> Result<WrittenTrueUp, PsaError> {
        self.write_true_up_impl(charge).await
    }

    async fn check_access(&self, mappings: &[Mapping], probe_write: bool) -> Vec<AccessCheck> {
        self.check_access_impl(mappings, probe_write).await
    }
}

/// The additions of one agreement a cancel-and-readd (copies starting on `effective`) cancelled
/// and did not get to re-add: per product, the newest one cancelled on the day before
/// `effective`, when no addition of that product is still running (a finished re-add leaves its
/// copy running).
fn awaiting_readd(additions: &[Addition], effective: jiff::civil::Date) -> BTreeSet<u64> {
    let last_day = last_day_before(effective).to_string();
    let product = |a: &Addition| a.product.as_ref().and_then(|p| p.id);
    let mut newest: BTreeMap<u64, u64> = BTreeMap::new();
    // A true-up is cancelled at its period's end by design; it never awaits a re-add.
    let true_up = |a: &Addition| {
        a.description
            .as_deref()
            .is_some_and(|d| d.starts_with(TRUE_UP_MARKER))
    };
    for a in additions
        .iter()
        .filter(|a| a.cancelled_on(&last_day) && !true_up(a))
    {
        if let Some(p) = product(a) {
            let id = newest.entry(p).or_insert(a.id);
            *id = (*id).max(a.id);
        }
    }
    newest
        .into_iter()
        .filter(|(p, _)| {
            !additions
                .iter()
                .any(|a| a.running() && product(a) == Some(*p))
        })
        .map(|(_, id)| id)
        .collect()
}

#[derive(Default)]
struct CompanyRefs {
    ids: BTreeSet<u64>,
    identifiers: BTreeSet<String>,
    names: BTreeSet<String>,
}

/// Every addition of one agreement, as ConnectWise sends them, all pages.
async fn agreement_additions(
    transport: &Transport,
    agreement_id: u64,
) -> Result<Vec<Addition>, PsaError> {
    transport
        .list_all::<Addition>(
            format!("finance/agreements/{agreement_id}/additions"),
            vec![("pageSize", PAGE_SIZE.into())],
            &format!("additions of agreement {agreement_id}"),
        )
        .await
}

fn api(path: String) -> Target {
    Target::Api {
        path,
        query: Vec::new(),
    }
}

/// The query of a filtered listing: `conditions=…&pageSize=1000`.
fn conditions(text: String) -> Vec<(&'static str, String)> {
    vec![("conditions", text), ("pageSize", PAGE_SIZE.into())]
}

fn join_ids(ids: &[u64]) -> String {
    ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

/// How ConnectWise escapes a `"` inside a quoted condition value is undocumented, so such values
/// are refused rather than guessed at.
fn check_quotable(mapping: &str, what: &str, value: &str) -> Result<(), PsaError> {
    if value.contains('"') || value.contains('\\') {
        return Err(PsaError::UnsupportedRef {
            mapping: mapping.to_string(),
            reason: format!(
                "the {what} {value:?} contains a quote or backslash, which ConnectWise queries cannot safely express; name the record by id instead"
            ),
        });
    }
    Ok(())
}

fn same_text(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

fn company_matches(company: &Company, reference: &RecordRef) -> bool {
    match reference.kind() {
        RefKind::Id(id) => company.id == id,
        RefKind::Identifier(s) => company
            .identifier
            .as_deref()
            .is_some_and(|i| same_text(i, s)),
        RefKind::Name(s) => company.name.as_deref().is_some_and(|n| same_text(n, s)),
    }
}

fn looks_like_guid(text: &str) -> bool {
    let t = text.trim().trim_start_matches('{').trim_end_matches('}');
    let groups: Vec<&str> = t.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Decodes `body` as each ConnectWise response unitsync reads and runs what follows the decode
/// (snapshot records, error messages, paging links): for [`crate::fuzzing`].
#[doc(hidden)]
pub fn fuzz_response(body: &[u8]) {
    let redactor = Redactor::new(vec![SecretString::from("s3cret-private-key")]);
    if let Ok(companies) = serde_json::from_slice::<Vec<Company>>(body) {
        companies.into_iter().for_each(|c| drop(c.into_snapshot()));
    }
    if let Ok(agreements) = serde_json::from_slice::<Vec<Agreement>>(body) {
        agreements.into_iter().for_each(|a| drop(a.into_snapshot()));
    }
    if let Ok(additions) = serde_json::from_slice::<Vec<Addition>>(body) {
        for a in additions {
            let _ = (a.to_snapshot(1001), a.cancelled_on("2026-12-01"));
        }
    }
    if let Ok(addition) = serde_json::from_slice::<Addition>(body) {
        let _ = addition.to_snapshot(1001);
    }
    let _ = serde_json::from_slice::<wire::CompanyInfo>(body);
    let _ = Transport::error_message(&redactor, body);
    let _ = redactor.excerpt(body);
    // The same bytes as a `Link` and a `Retry-After` header.
    if let Ok(text) = std::str::from_utf8(body) {
        let host = Url::parse("https://api-na.myconnectwise.net").expect("a valid URL");
        let current = host
            .join("/v4_6_release/apis/3.0/finance/agreements?page=1")
            .expect("a valid URL");
        if let Some(link) = http::next_link(text) {
            let _ = Transport::rebase(&host, &current, &link);
        }
    }
    if let Ok(value) = HeaderValue::from_bytes(body) {
        let headers = HeaderMap::from_iter([(reqwest::header::RETRY_AFTER, value)]);
        let _ = http::retry_after(&headers);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_sites_map_to_api_hosts() {
        for region in ["na", "eu", "au", "aus", "za"] {
            assert_eq!(
                api_host(&format!("{region}.myconnectwise.net"))
                    .unwrap()
                    .as_str(),
                format!("https://api-{region}.myconnectwise.net/")
            );
        }
        assert_eq!(
            api_host("NA.myconnectwise.net/").unwrap().as_str(),
            "https://api-na.myconnectwise.net/"
        );
        assert_eq!(
            api_host("cw.example.com").unwrap().as_str(),
            "https://cw.example.com/"
        );
        assert_eq!(
            api_host("http://127.0.0.1:8080/").unwrap().as_str(),
            "http://127.0.0.1:8080/"
        );
        assert!(api_host("").is_err());
        assert!(api_host("ftp://x").is_err());
        assert!(api_host("https://u:p@x").is_err());
    }

    #[test]
    fn credentials_name_the_missing_variable_and_never_print() {
        let err =
            Credentials::from_lookup(|name| (name != ENV_PRIVATE_KEY).then(|| "value".to_string()))
                .unwrap_err();
        assert!(err.to_string().contains(ENV_PRIVATE_KEY), "{err}");
        let creds = Credentials::new("pub-SECRET", "priv-SECRET", "cid-SECRET");
        assert!(!format!("{creds:?}").contains("SECRET"));
    }

    #[test]
    fn only_the_newest_unreplaced_addition_cancelled_the_day_before_the_effective_date_awaits_a_readd()
     {
        let addition = |id: u64, product: u64, cancelled: Option<&str>| -> Addition {
            serde_json::from_value(serde_json::json!({
                "id": id, "product": {"id": product}, "cancelledDate": cancelled
            }))
            .unwrap()
        };
        let additions = [
            // Re-added once this month, then cancelled again and stopped: the newest awaits.
            addition(1, 301, Some("2026-11-30T00:00:00Z")),
            addition(2, 301, Some("2026-11-30T00:00:00Z")),
            // Its copy is running: the re-add finished.
            addition(3, 302, Some("2026-11-30T00:00:00Z")),
            addition(4, 302, None),
            // Cancelled on another day: not a re-add of this run's.
            addition(5, 303, Some("2026-11-15T00:00:00Z")),
            // Cancelled on the effective date itself: not how unitsync cancels.
            addition(6, 304, Some("2026-12-01T00:00:00Z")),
        ];
        assert_eq!(
            awaiting_readd(&additions, jiff::civil::date(2026, 12, 1)),
            BTreeSet::from([2])
        );
    }

    #[test]
    fn guids_are_recognised() {
        assert!(looks_like_guid("3f2504e0-4f89-11d3-9a0c-0305e82c3301"));
        assert!(looks_like_guid("{3F2504E0-4F89-11D3-9A0C-0305E82C3301}"));
        assert!(!looks_like_guid("not-a-guid"));
    }
}
