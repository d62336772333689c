//! The ConnectWise sandbox, driven over 127.0.0.1 with reqwest.

use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};
use unitsync::sandbox::{
    Faults, Sandbox, SandboxHandle, Seed, SeedAddition, SeedAgreement, SeedCompany, SeedLogin,
    SeedProductRef, demo_seed,
};

const ACCEPT: &str = "application/vnd.connectwise.com+json; version=2025.8";

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().expect("client")
}

fn basic(user: &str, password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

struct Api {
    http: reqwest::Client,
    api: String,
    login: SeedLogin,
}

impl Api {
    fn new(sandbox: &SandboxHandle) -> Api {
        Api {
            http: client(),
            api: sandbox.api_url(),
            login: sandbox.login(),
        }
    }

    fn auth(&self) -> String {
        basic(
            &format!("{}+{}", self.login.company, self.login.public_key),
            &self.login.private_key,
        )
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{}", self.api, path)
        };
        self.http
            .request(method, url)
            .header("Authorization", self.auth())
            .header("clientId", self.login.client_id.clone().unwrap_or_default())
            .header("Accept", ACCEPT)
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.req(reqwest::Method::GET, path)
    }

    async fn list(&self, path: &str, query: &[(&str, &str)]) -> (StatusCode, Value) {
        let r = self.get(path).query(query).send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap())
    }

    async fn ids(&self, path: &str, conditions: &str) -> Vec<i64> {
        let (status, body) = self
            .list(path, &[("conditions", conditions), ("pageSize", "1000")])
            .await;
        assert_eq!(status, StatusCode::OK, "{conditions}: {body}");
        body.as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect()
    }

    async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .req(reqwest::Method::PATCH, path)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap())
    }
}

async fn demo() -> (SandboxHandle, Api) {
    let sandbox = Sandbox::start(demo_seed(), Faults::none()).await.unwrap();
    let api = Api::new(&sandbox);
    (sandbox, api)
}

#[tokio::test]
async fn company_info_gives_the_codebase_without_auth() {
    let (sandbox, api) = demo().await;
    let r = api
        .http
        .get(format!(
            "{}/login/companyinfo/Computech",
            sandbox.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["Codebase"], "v4_6_release/");
    assert_eq!(body["CompanyName"], "Computech");
    assert_eq!(body["CompanyID"], "computech");
    assert_eq!(body["IsCloud"], false);
    assert_eq!(body["VersionCode"], "v2025.8");
    assert_eq!(
        sandbox.api_url(),
        format!("{}/v4_6_release/apis/3.0/", sandbox.base_url())
    );

    let r = api
        .http
        .get(format!("{}/login/companyinfo/nobody", sandbox.base_url()))
        .send()
        .await
        .unwrap();
    // An unknown login company: HTTP 200 and a JSON `null`, as ConnectWise answers.
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "null");
}

#[tokio::test]
async fn auth_failures_answer_401_with_connectwise_bodies() {
    let (sandbox, api) = demo().await;
    let url = format!("{}company/companies", api.api);
    let client_id = api.login.client_id.clone().unwrap();

    let r = api
        .http
        .get(&url)
        .header("clientId", &client_id)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"code": "Unauthorized", "message": "Authentication failed: send Authorization: Basic base64(company+publicKey:privateKey)"})
    );

    let wrong_key = json!({"code": "Unauthorized", "message": "Authentication failed: the company, public key or private key is wrong"});
    for (user, password) in [
        ("computech+sandboxPublicKey", "wrong"),
        ("computech+wrong", "sandboxPrivateKey"),
        ("othercompany+sandboxPublicKey", "sandboxPrivateKey"),
        ("sandboxPublicKey", "sandboxPrivateKey"),
    ] {
        let r = api
            .http
            .get(&url)
            .header("Authorization", basic(user, password))
            .header("clientId", &client_id)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{user}:{password}");
        assert_eq!(r.json::<Value>().await.unwrap(), wrong_key);
    }

    // The login company is matched without regard to case.
    let r = api
        .http
        .get(&url)
        .header(
            "Authorization",
            basic("COMPUTECH+sandboxPublicKey", "sandboxPrivateKey"),
        )
        .header("clientId", &client_id)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let r = api
        .http
        .get(&url)
        .header("Authorization", api.auth())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"code": "Unauthorized", "message": "A clientId header is required; register one at https://developer.connectwise.com/ClientID"})
    );

    let r = api
        .http
        .get(&url)
        .header("Authorization", api.auth())
        .header("clientId", "not-registered")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"code": "Unauthorized", "message": "clientId not-registered is not registered"})
    );

    let statuses: Vec<u16> = sandbox.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401, 401, 401, 401, 401, 200, 401, 401]);
}

#[tokio::test]
async fn unknown_records_and_paths_answer_404() {
    let (_sandbox, api) = demo().await;
    for (path, message) in [
        (
            "company/companies/9999",
            "Company with id 9999 was not found",
        ),
        (
            "finance/agreements/9999",
            "Agreement with id 9999 was not found",
        ),
        (
            "finance/agreements/9999/additions",
            "Agreement with id 9999 was not found",
        ),
        (
            "finance/agreements/1002/additions/5001",
            "Addition with id 5001 was not found on agreement 1002",
        ),
    ] {
        let (status, body) = api.list(path, &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            body,
            json!({"code": "NotFound", "message": message}),
            "{path}"
        );
    }
    let (status, body) = api.list("finance/agreements/additions", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = api.list("finance/nothing", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "NotFound");
}

#[tokio::test]
async fn demo_records_look_like_connectwise() {
    let (_sandbox, api) = demo().await;
    let (status, bob) = api.list("company/companies/250", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bob["identifier"], "BobsDentistry");
    assert_eq!(bob["name"], "Bob's Dentistry");
    assert_eq!(bob["status"]["name"], "Active");

    let (_, agreement) = api.list("finance/agreements/1001", &[]).await;
    assert_eq!(agreement["company"]["id"], 250);
    assert_eq!(agreement["company"]["identifier"], "BobsDentistry");
    assert_eq!(agreement["type"]["name"], "Managed Backup");
    assert_eq!(agreement["agreementStatus"], "Active");
    assert_eq!(agreement["cancelledFlag"], false);
    assert!(
        agreement.get("dateCancelled").is_none(),
        "nulls are left out"
    );

    let (_, addition) = api
        .list("finance/agreements/1001/additions/5001", &[])
        .await;
    assert_eq!(addition["product"]["identifier"], "SP-DESKTOP");
    assert_eq!(addition["product"]["id"], 301);
    assert_eq!(addition["quantity"], 3.0);
    assert_eq!(addition["agreementId"], 1001);
    assert_eq!(addition["billCustomer"], "Billable");
    assert_eq!(addition["agreementStatus"], "Active");
    assert_eq!(addition["description"], "ShadowProtect Desktop");
    assert!(addition.get("cancelledDate").is_none());

    let (_, cloud) = api
        .list("finance/agreements/1003/additions/5005", &[])
        .await;
    assert_eq!(cloud["quantity"], 120.25);

    let (_, empty) = api.list("finance/agreements/1005/additions", &[]).await;
    assert_eq!(empty, json!([]));
    let (_, count) = api
        .list("finance/agreements/1005/additions/count", &[])
        .await;
    assert_eq!(count, json!({"count": 0}));

    let (_, info) = api.list("system/info", &[]).await;
    assert_eq!(info["version"], "v2025.8");
}

fn big_seed(n: i64) -> Seed {
    let mut seed = demo_seed();
    seed.companies.push(SeedCompany {
        id: 900,
        identifier: "BigCo".into(),
        name: "Big Co".into(),
        status: "Active".into(),
        deleted_flag: false,
    });
    seed.agreements.push(SeedAgreement {
        id: 9000,
        name: "Everything".into(),
        company: 900,
        agreement_type: "Managed Backup".into(),
        agreement_status: "Active".into(),
        ..SeedAgreement::default()
    });
    for i in 0..n {
        seed.additions.push(SeedAddition {
            id: 100_000 + i,
            agreement: 9000,
            product: SeedProductRef {
                id: 301,
                identifier: "SP-DESKTOP".into(),
                description: None,
            },
            quantity: (i % 7) as f64,
            bill_customer: "Billable".into(),
            ..SeedAddition::default()
        });
    }
    seed
}

fn link_rels(r: &reqwest::Response) -> Vec<(String, String)> {
    let Some(link) = r.headers().get("link") else {
        return Vec::new();
    };
    link.to_str()
        .unwrap()
        .split(", ")
        .map(|part| {
            let (url, rel) = part.split_once("; rel=").unwrap();
            (
                rel.trim_matches('"').to_string(),
                url.trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn paging_follows_link_headers_to_the_end() {
    let sandbox = Sandbox::start(big_seed(2345), Faults::none())
        .await
        .unwrap();
    let api = Api::new(&sandbox);

    let (_, count) = api
        .list("finance/agreements/9000/additions/count", &[])
        .await;
    assert_eq!(count, json!({"count": 2345}));

    let mut url = format!(
        "{}finance/agreements/9000/additions?pageSize=1000&conditions={}",
        api.api, "agreementId%20%3D%209000"
    );
    let mut ids = Vec::new();
    let mut pages = Vec::new();
    loop {
        let r = api.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let rels = link_rels(&r);
        let body: Vec<Value> = r.json().await.unwrap();
        pages.push((
            body.len(),
            rels.iter().map(|(rel, _)| rel.clone()).collect::<Vec<_>>(),
        ));
        ids.extend(body.iter().map(|a| a["id"].as_i64().unwrap()));
        match rels.into_iter().find(|(rel, _)| rel == "next") {
            Some((_, next)) => {
                assert!(next.starts_with(&sandbox.base_url()), "absolute: {next}");
                url = next;
            }
            None => break,
        }
    }
    assert_eq!(
        pages,
        [
            (1000, vec!["next".to_string(), "last".to_string()]),
            (
                1000,
                vec!["first".into(), "prev".into(), "next".into(), "last".into()]
            ),
            (345, vec!["first".into(), "prev".into()]),
        ]
    );
    assert_eq!(ids, (100_000..102_345).collect::<Vec<_>>());

    // The Link URLs keep the other parameters.
    let pages_requested: Vec<(Option<String>, Option<String>, Option<String>)> = sandbox
        .requests()
        .iter()
        .filter(|r| r.query_param("pageSize").is_some())
        .map(|r| {
            (
                r.query_param("page").map(str::to_string),
                r.query_param("pageSize").map(str::to_string),
                r.query_param("conditions").map(str::to_string),
            )
        })
        .collect();
    let cond = Some("agreementId = 9000".to_string());
    assert_eq!(
        pages_requested,
        [
            (None, Some("1000".into()), cond.clone()),
            (Some("2".into()), Some("1000".into()), cond.clone()),
            (Some("3".into()), Some("1000".into()), cond.clone()),
        ]
    );

    // pageSize above 1000 is clamped; the default is 25; pages past the end are empty.
    let r = api
        .get("finance/agreements/9000/additions?pageSize=5000")
        .send()
        .await
        .unwrap();
    let rels = link_rels(&r);
    assert_eq!(r.json::<Vec<Value>>().await.unwrap().len(), 1000);
    let last = &rels.iter().find(|(rel, _)| rel == "last").unwrap().1;
    assert!(last.contains("page=3"), "{last}");
    let (_, body) = api.list("finance/agreements/9000/additions", &[]).await;
    assert_eq!(body.as_array().unwrap().len(), 25);
    let (_, body) = api
        .list(
            "finance/agreements/9000/additions",
            &[("page", "99"), ("pageSize", "1000")],
        )
        .await;
    assert_eq!(body, json!([]));
    for bad in [("pageSize", "0"), ("page", "0"), ("page", "x")] {
        let (status, body) = api.list("finance/agreements/9000/additions", &[bad]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}");
        assert_eq!(body["code"], "InvalidObject");
    }
    // One page only: no Link header.
    let r = api
        .get("finance/agreements/1001/additions")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("link").is_none());
}

#[tokio::test]
async fn forward_only_paging_uses_page_id() {
    let sandbox = Sandbox::start(big_seed(1500), Faults::none())
        .await
        .unwrap();
    let api = Api::new(&sandbox);
    let mut url = format!("{}finance/agreements/9000/additions?pageSize=1000", api.api);
    let mut total = 0;
    let mut requests = 0;
    loop {
        let r = api
            .get(&url)
            .header("pagination-type", "forward-only")
            .send()
            .await
            .unwrap();
        requests += 1;
        let rels = link_rels(&r);
        total += r.json::<Vec<Value>>().await.unwrap().len();
        match rels.into_iter().find(|(rel, _)| rel == "next") {
            Some((_, next)) => {
                assert!(next.contains("pageId=100999"), "{next}");
                url = next;
            }
            None => break,
        }
    }
    assert_eq!((total, requests), (1500, 2));
}

#[tokio::test]
async fn conditions_filter_with_every_operator() {
    let (_sandbox, api) = demo().await;
    let companies = "company/companies";
    // Names repeat (the recycle-bin duplicate); identifiers do not.
    assert_eq!(
        api.ids(companies, r#"name = "Bob's Dentistry""#).await,
        [250, 298]
    );
    assert_eq!(
        api.ids(companies, r#"identifier = "BobsDentistry""#).await,
        [250]
    );
    assert_eq!(
        api.ids(companies, r#"identifier="bobsdentistry""#).await,
        [250]
    );
    assert_eq!(api.ids(companies, "id != 2 AND id < 252").await, [250, 251]);
    assert_eq!(api.ids(companies, "id > 252").await, [253, 298]);
    assert_eq!(
        api.ids(companies, "id >= 252 and id <= 253").await,
        [252, 253]
    );
    assert_eq!(
        api.ids(companies, "id in (2, 251,298)").await,
        [2, 251, 298]
    );
    assert_eq!(
        api.ids(companies, "id not in (2, 251,298)").await,
        [250, 252, 253]
    );
    assert_eq!(api.ids(companies, r#"name contains "torch""#).await, [252]);
    assert_eq!(
        api.ids(companies, r#"name like "%Dent%""#).await,
        [250, 298]
    );
    assert_eq!(api.ids(companies, r#"name like "Angry%""#).await, [251]);
    assert_eq!(api.ids(companies, "deletedFlag = true").await, [298]);
    assert_eq!(
        api.ids(companies, r#"status/name = "Inactive""#).await,
        [298]
    );
    assert_eq!(
        api.ids(
            companies,
            r#"(identifier = "AngryFox" or identifier = "DigitalTorch") and id > 251"#
        )
        .await,
        [252]
    );
    assert_eq!(
        api.ids(
            companies,
            r#"identifier = "AngryFox" or identifier = "DigitalTorch" and id > 251"#
        )
        .await,
        [251, 252]
    );

    let agreements = "finance/agreements";
    assert_eq!(
        api.ids(
            agreements,
            r#"company/id = 250 and agreementStatus = "Active" and type/name = "Managed Backup""#
        )
        .await,
        [1001]
    );
    assert_eq!(
        api.ids(agreements, r#"company/identifier = "BobsDentistry""#)
            .await,
        [1001, 1004]
    );
    assert_eq!(
        api.ids(
            agreements,
            "cancelledFlag = false and company/id in (250, 253)"
        )
        .await,
        [1001, 1005]
    );
    assert_eq!(api.ids(agreements, "dateCancelled != null").await, [1004]);
    assert_eq!(
        api.ids(agreements, "startDate >= [2024-01-01T00:00:00Z]")
            .await,
        [1001, 1003, 1005]
    );
    assert_eq!(
        api.ids(agreements, "startDate < [2024-01-01]").await,
        [1002, 1004]
    );

    let additions = "finance/agreements/1001/additions";
    assert_eq!(
        api.ids(
            additions,
            r#"product/identifier = "SP-DESKTOP" and cancelledDate = null"#
        )
        .await,
        [5001]
    );
    assert_eq!(api.ids(additions, "cancelledDate != null").await, [5002]);
    assert_eq!(
        api.ids(additions, "cancelledDate > [2024-06-01T00:00:00Z]")
            .await,
        [5002]
    );
    assert_eq!(api.ids(additions, "agreementId = 1001").await, [5001, 5002]);
    // Additions carry agreementId, not an agreement reference.
    let (status, _) = api
        .list(additions, &[("conditions", "agreement/id = 1001")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        api.ids(
            "finance/agreements/1003/additions",
            "quantity > 120 and quantity < 120.5"
        )
        .await,
        [5005]
    );

    // count honours conditions too
    let (_, count) = api
        .list(
            "company/companies/count",
            &[("conditions", r#"name = "Bob's Dentistry""#)],
        )
        .await;
    assert_eq!(count, json!({"count": 2}));

    // orderBy and fields
    let (_, body) = api
        .list(
            companies,
            &[
                ("orderBy", "name desc"),
                ("fields", "id,identifier,status/name"),
            ],
        )
        .await;
    let first = &body[0];
    assert_eq!(
        first,
        &json!({"id": 253, "identifier": "SlateGravel", "status": {"name": "Active"}})
    );
}

#[tokio::test]
async fn invalid_conditions_answer_400() {
    let (_sandbox, api) = demo().await;
    for bad in [
        "name = Bob",
        "id =",
        "(id = 1",
        "id = 1 id = 2",
        "id in 1",
        r#"name = "unterminated"#,
        "id > null",
        "noSuchField = 1",
        "company/nope = 1",
        "startDate > [yesterday]",
    ] {
        let (status, body) = api.list("company/companies", &[("conditions", bad)]).await;
        let (status, body) = if bad.starts_with("startDate") {
            api.list("finance/agreements", &[("conditions", bad)]).await
        } else {
            (status, body)
        };
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["code"], "InvalidObject", "{bad}");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.starts_with("Invalid conditions"),
            "{bad}: {message}"
        );
    }
    let (status, body) = api
        .list("company/companies", &[("conditions", "name = Bob")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["message"],
        "Invalid conditions \"name = Bob\": expected a value, found \"Bob\" (strings need \"double\" or 'single' quotes) (at character 8)"
    );
    let (status, _) = api
        .list("company/companies/count", &[("conditions", "id ==")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = api
        .list("company/companies", &[("orderBy", "nothing asc")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn patch_changes_the_quantity_and_returns_the_whole_addition() {
    let (sandbox, api) = demo().await;
    let (status, body) = api
        .patch(
            "finance/agreements/1001/additions/5001",
            json!([{"op": "replace", "path": "quantity", "value": 4}]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], 5001);
    assert_eq!(body["quantity"], 4.0);
    assert_eq!(body["product"]["identifier"], "SP-DESKTOP");
    assert_eq!(body["agreementId"], 1001);
    assert_eq!(body["unitPrice"], 12.5);
    assert_eq!(body["_info"]["updatedBy"], "APIMember");
    assert_eq!(sandbox.addition(5001).unwrap().quantity, 4.0);
    let (_, again) = api
        .list("finance/agreements/1001/additions/5001", &[])
        .await;
    assert_eq!(again, body);

    let (status, body) = api
        .patch(
            "finance/agreements/1003/additions/5005",
            json!([{"op": "replace", "path": "/quantity", "value": 135.5}]),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["quantity"], 135.5);

    // Cancel a line, with several operations at once.
    let (status, body) = api
        .patch(
            "finance/agreements/1002/additions/5003",
            json!([
                {"op": "replace", "path": "cancelledDate", "value": "2026-11-30T00:00:00Z"},
                {"op": "replace", "path": "effectiveDate", "value": "2023-06-01"}
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["cancelledDate"], "2026-11-30T00:00:00Z");
    assert_eq!(body["effectiveDate"], "2023-06-01T00:00:00Z");
    let state = sandbox.addition(5003).unwrap();
    assert_eq!(
        state.cancelled_date.as_deref(),
        Some("2026-11-30T00:00:00Z")
    );

    let (status, body) = api
        .patch(
            "finance/agreements/1002/additions/5003",
            json!([{"op": "remove", "path": "cancelledDate"}]),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.get("cancelledDate").is_none());
}

#[tokio::test]
async fn additions_store_and_return_every_settable_field() {
    let (sandbox, api) = demo().await;
    let (status, body) = api
        .patch(
            "finance/agreements/1001/additions/5001",
            json!([
                {"op": "replace", "path": "serialNumber", "value": "SPD-1"},
                {"op": "replace", "path": "sequenceNumber", "value": 4.0},
                {"op": "replace", "path": "uom", "value": "Device"},
                {"op": "replace", "path": "purchaseItemFlag", "value": true},
                {"op": "replace", "path": "specialOrderFlag", "value": true},
                {"op": "replace", "path": "prorateCurrentPeriodFlag", "value": true},
                {"op": "replace", "path": "invoiceGrouping", "value": {"id": 4}},
                {"op": "replace", "path": "opportunity", "value": {"id": 42, "name": "ignored"}},
                {"op": "replace", "path": "customFields", "value": [
                    {"id": 11, "caption": "Vendor SKU", "type": "Text", "entryMethod": "EntryField",
                     "numberOfDecimals": 0, "value": "SP-D-1Y"}
                ]}
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["serialNumber"], "SPD-1");
    assert_eq!(body["sequenceNumber"], 4.0);
    assert_eq!(body["uom"], "Device");
    assert_eq!(
        (
            &body["purchaseItemFlag"],
            &body["specialOrderFlag"],
            &body["prorateCurrentPeriodFlag"]
        ),
        (&json!(true), &json!(true), &json!(true))
    );
    // A reference is kept by id; its name is the server's, not the writer's.
    assert_eq!(body["invoiceGrouping"], json!({"id": 4}));
    assert_eq!(body["opportunity"], json!({"id": 42}));
    assert_eq!(body["customFields"][0]["value"], "SP-D-1Y");
    let (_, again) = api
        .list("finance/agreements/1001/additions/5001", &[])
        .await;
    assert_eq!(again, body);
    assert_eq!(
        sandbox.addition(5001).unwrap().uom.as_deref(),
        Some("Device")
    );

    // Computed fields stay read-only; a reference needs an id.
    for (path, value) in [
        ("extPrice", json!(1.0)),
        ("prorateCost", json!(1.0)),
        ("invoiceGrouping", json!({"name": "Backup"})),
        ("customFields", json!([{"value": 1}])),
    ] {
        let (status, body) = api
            .patch(
                "finance/agreements/1001/additions/5001",
                json!([{"op": "replace", "path": path, "value": value}]),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
    }
}

#[tokio::test]
async fn bad_patches_answer_400_and_change_nothing() {
    let (sandbox, api) = demo().await;
    let path = "finance/agreements/1001/additions/5001";
    let cases = [
        (
            json!([{"op": "replace", "path": "quantity", "value": "four"}]),
            json!({"code": "InvalidObject", "message": "addition object is invalid",
                "errors": [{"code": "InvalidValue", "message": "quantity must be a number", "resource": "addition", "field": "quantity"}]}),
        ),
        (
            json!([{"op": "replace", "path": "quantty", "value": 4}]),
            json!({"code": "InvalidObject", "message": "addition object is invalid",
                "errors": [{"code": "InvalidField", "message": "addition has no field \"quantty\"", "resource": "addition", "field": "quantty"}]}),
        ),
        (
            json!([{"op": "replace", "path": "agreementId", "value": 1002}]),
            json!({"code": "InvalidObject", "message": "addition object is invalid",
                "errors": [{"code": "ReadOnlyField", "message": "agreementId is read-only", "resource": "addition", "field": "agreementId"}]}),
        ),
        (
            json!([{"op": "move", "path": "quantity", "value": 4}]),
            json!({"code": "InvalidObject", "message": "Patch operation \"move\" is not supported; use add, replace or remove"}),
        ),
        (
            json!({"op": "replace", "path": "quantity", "value": 4}),
            json!({"code": "InvalidObject", "message": "The request body must be a non-empty JSON array of patch operations, such as [{\"op\":\"replace\",\"path\":\"quantity\",\"value\":4}]"}),
        ),
        (
            json!([{"op": "replace", "path": "quantity", "value": 5},
                   {"op": "replace", "path": "cancelledDate", "value": "tomorrow"}]),
            json!({"code": "InvalidObject", "message": "addition object is invalid",
                "errors": [{"code": "InvalidValue", "message": "cancelledDate must be a UTC datetime such as 2025-01-01T00:00:00Z, not \"tomorrow\"", "resource": "addition", "field": "cancelledDate"}]}),
        ),
        (
            json!([{"op": "remove", "path": "quantity"}]),
            json!({"code": "InvalidObject", "message": "addition object is invalid",
                "errors": [{"code": "InvalidValue", "message": "quantity must be a number", "resource": "addition", "field": "quantity"}]}),
        ),
    ];
    for (patch, expected) in cases {
        let (status, body) = api.patch(path, patch.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{patch}");
        assert_eq!(body, expected, "{patch}");
    }
    assert_eq!(sandbox.addition(5001).unwrap(), demo_seed().additions[0]);

    let (status, body) = api
        .patch(
            "finance/agreements/1002/additions/5001",
            json!([{"op": "replace", "path": "quantity", "value": 4}]),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "NotFound");
}

#[tokio::test]
async fn post_creates_an_addition() {
    let (sandbox, api) = demo().await;
    let r = api
        .req(reqwest::Method::POST, "finance/agreements/1005/additions")
        .json(
            &json!({"product": {"identifier": "SP-SERVER"}, "billCustomer": "Billable",
            "quantity": 1, "effectiveDate": "2026-12-01T00:00:00Z"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let body: Value = r.json().await.unwrap();
    let id = body["id"].as_i64().unwrap();
    assert_eq!(
        body["product"],
        json!({"id": 302, "identifier": "SP-SERVER", "serializedFlag": false,
        "_info": {"product_href": format!("{}procurement/catalog/302", api.api)}})
    );
    assert_eq!(body["quantity"], 1.0);
    assert_eq!(body["unitPrice"], 55.0);
    assert_eq!(body["agreementId"], 1005);
    assert_eq!(sandbox.addition(id).unwrap().agreement, 1005);
    let (_, count) = api
        .list("finance/agreements/1005/additions/count", &[])
        .await;
    assert_eq!(count, json!({"count": 1}));

    for (body, field) in [
        (json!({"product": {"id": 301}}), "billCustomer"),
        (json!({"billCustomer": "Billable"}), "product"),
    ] {
        let r = api
            .req(reqwest::Method::POST, "finance/agreements/1005/additions")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["errors"][0]["field"], field);
        assert_eq!(body["errors"][0]["code"], "NullValue");
    }
    // Writes must be JSON.
    let r = api
        .req(
            reqwest::Method::PATCH,
            "finance/agreements/1005/additions/1",
        )
        .body(r#"[{"op":"replace","path":"quantity","value":4}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"code": "UnsupportedMediaType", "message": "Content-Type \"\" is not supported; send application/json"})
    );

    // DELETE removes a line.
    let r = api
        .req(
            reqwest::Method::DELETE,
            &format!("finance/agreements/1005/additions/{id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(sandbox.addition(id).is_none());

    let r = api
        .req(reqwest::Method::POST, "finance/agreements/1005/additions")
        .json(&json!({"product": {"id": 999}, "billCustomer": "Billable"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json::<Value>().await.unwrap()["errors"][0]["code"],
        "NotFound"
    );
}

#[tokio::test]
async fn read_only_members_get_403_security() {
    let mut seed = demo_seed();
    seed.login.read_only = true;
    seed.login.deny = vec!["procurement/catalog".into()];
    let sandbox = Sandbox::start(seed, Faults::none()).await.unwrap();
    let api = Api::new(&sandbox);
    let (status, _) = api.list("finance/agreements/1001/additions", &[]).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api
        .patch(
            "finance/agreements/1001/additions/5001",
            json!([{"op": "replace", "path": "quantity", "value": 4}]),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "Security");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("You do not have security permission")
    );
    assert_eq!(sandbox.addition(5001).unwrap().quantity, 3.0);
    let (status, body) = api.list("procurement/catalog", &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "Security");

    // The login can change while running.
    let mut login = sandbox.login();
    login.read_only = false;
    sandbox.set_login(login);
    let (status, _) = api
        .patch(
            "finance/agreements/1001/additions/5001",
            json!([{"op": "replace", "path": "quantity", "value": 4}]),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn injected_429s_carry_retry_after() {
    let (sandbox, api) = demo().await;
    sandbox.set_faults(Faults::none().rate_limit(2, 7));
    for _ in 0..2 {
        let r = api.get("company/companies").send().await.unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()["retry-after"], "7");
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({"code": "TooManyRequests", "message": "Too many requests; retry after 7 seconds"})
        );
    }
    let r = api.get("company/companies").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(sandbox.faults().rate_limited, 0);

    // Only PATCH requests.
    sandbox.set_faults(Faults::none().rate_limit(1, 3).only_method("PATCH"));
    let (status, _) = api
        .list("finance/agreements/1001/additions/5001", &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    let patch = json!([{"op": "replace", "path": "quantity", "value": 4}]);
    let (status, _) = api
        .patch("finance/agreements/1001/additions/5001", patch.clone())
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        sandbox.addition(5001).unwrap().quantity,
        3.0,
        "a 429 changes nothing"
    );
    let (status, _) = api
        .patch("finance/agreements/1001/additions/5001", patch)
        .await;
    assert_eq!(status, StatusCode::OK);
    let statuses: Vec<(String, u16)> = sandbox
        .requests()
        .iter()
        .map(|r| (r.method.clone(), r.status))
        .collect();
    assert_eq!(
        statuses,
        [
            ("GET".to_string(), 429),
            ("GET".into(), 429),
            ("GET".into(), 200),
            ("GET".into(), 200),
            ("PATCH".into(), 429),
            ("PATCH".into(), 200)
        ]
    );
}

#[tokio::test]
async fn injected_server_errors() {
    let (sandbox, api) = demo().await;
    sandbox.set_faults(
        Faults::none()
            .server_errors(1, 500)
            .only_path_containing("/additions"),
    );
    let (status, _) = api.list("company/companies", &[]).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api.list("finance/agreements/1001/additions", &[]).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["code"], "InternalServerError");
    let (status, _) = api.list("finance/agreements/1001/additions", &[]).await;
    assert_eq!(status, StatusCode::OK);

    sandbox.set_faults(Faults::none().server_errors(2, 503));
    for _ in 0..2 {
        let (status, _) = api.list("company/companies", &[]).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }
    let (status, _) = api.list("company/companies", &[]).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn latency_and_dropped_connections() {
    let sandbox = Sandbox::start(
        demo_seed(),
        Faults::none().with_latency(Duration::from_millis(30)),
    )
    .await
    .unwrap();
    let api = Api::new(&sandbox);
    let start = Instant::now();
    let (status, _) = api.list("company/companies", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(start.elapsed() >= Duration::from_millis(30));

    sandbox.set_faults(Faults::none().drop_connections(1));
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let url = format!("{}/login/companyinfo/computech", sandbox.base_url());
    assert!(
        fresh.get(&url).send().await.is_err(),
        "the first connection is closed"
    );
    let r = fresh.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_request_log_records_what_was_sent() {
    let (sandbox, api) = demo().await;
    api.list(
        "finance/agreements",
        &[
            (
                "conditions",
                r#"company/id = 250 and type/name = "Managed Backup""#,
            ),
            ("pageSize", "1000"),
        ],
    )
    .await;
    api.patch(
        "finance/agreements/1001/additions/5001",
        json!([{"op": "replace", "path": "quantity", "value": 4}]),
    )
    .await;
    let log = sandbox.requests();
    assert_eq!(log.len(), 2);
    let get = &log[0];
    assert_eq!(get.method, "GET");
    assert_eq!(get.path, "/v4_6_release/apis/3.0/finance/agreements");
    assert_eq!(
        get.query,
        [
            (
                "conditions".to_string(),
                r#"company/id = 250 and type/name = "Managed Backup""#.to_string()
            ),
            ("pageSize".into(), "1000".into())
        ]
    );
    assert_eq!(get.header("Accept"), Some(ACCEPT));
    assert_eq!(
        get.header("clientId"),
        Some("5e4b6a4c-0d2c-4b8e-9a53-5a4b1c0ffee1")
    );
    assert_eq!(get.auth_user.as_deref(), Some("computech+sandboxPublicKey"));
    assert_eq!(get.body, None);
    assert_eq!(get.status, 200);
    let patch = &log[1];
    assert_eq!(patch.method, "PATCH");
    assert_eq!(
        patch.body,
        Some(json!([{"op": "replace", "path": "quantity", "value": 4}]))
    );
    assert_eq!(patch.header("content-type"), Some("application/json"));
    assert!(
        !format!("{log:?}").contains("sandboxPrivateKey"),
        "no private key in the log"
    );

    sandbox.clear_requests();
    assert!(sandbox.requests().is_empty());
}

#[test]
fn seeds_load_and_are_checked() {
    let seed = demo_seed();
    assert_eq!(seed.login.company, "computech");
    assert_eq!(seed.codebase, "v4_6_release/");
    let bob = seed.additions.iter().find(|a| a.id == 5001).unwrap();
    assert_eq!(
        (bob.agreement, bob.quantity, bob.product.identifier.as_str()),
        (1001, 3.0, "SP-DESKTOP")
    );

    let minimal = Seed::from_yaml(
        "login: { company: acme, public_key: p, private_key: s }\ncompanies: [{ id: 1, identifier: A, name: A }]\n",
    )
    .unwrap();
    assert_eq!(minimal.codebase, "v4_6_release/");
    assert_eq!(minimal.companies[0].status, "Active");
    assert!(minimal.login.client_id.is_none());

    let bad = Seed::from_yaml(
        "login: { company: acme, public_key: p, private_key: s }\nagreements: [{ id: 1, name: X, company: 7, type: T }]\n",
    )
    .unwrap_err();
    assert_eq!(
        bad.to_string(),
        "invalid seed: agreement 1 names unknown company 7"
    );
    assert!(
        Seed::from_yaml("login: { company: acme, public_key: p, private_key: s, colour: red }")
            .is_err()
    );
}

#[test]
fn background_sandbox_serves_synchronous_callers_and_the_cli_runs() {
    let sandbox =
        Sandbox::start_in_background(demo_seed(), Faults::none(), "127.0.0.1:0".parse().unwrap())
            .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = runtime.block_on(async {
        let api = Api::new(&sandbox);
        api.list("company/companies", &[]).await.0
    });
    assert_eq!(status, StatusCode::OK);
    sandbox.shutdown();

    // `unitsync sandbox --port 0` prints the URL and the credentials, then serves.
    use std::io::BufRead;
    let mut child = crate::support::unitsync()
        .args(["sandbox", "--port", "0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.starts_with("export UNITSYNC_CW_CLIENT_ID=");
        seen.push(line);
        if done {
            break;
        }
    }
    let base = seen[0]
        .strip_prefix("ConnectWise sandbox at ")
        .unwrap()
        .to_string();
    assert!(seen.contains(&"export UNITSYNC_CW_PUBLIC_KEY=sandboxPublicKey".to_string()));
    assert!(seen.contains(&"export UNITSYNC_CW_PRIVATE_KEY=sandboxPrivateKey".to_string()));
    let body = runtime.block_on(async {
        client()
            .get(format!("{base}/login/companyinfo/computech"))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(body["Codebase"], "v4_6_release/");

    // --print-seed writes the demo seed, which --seed reads back.
    let out = crate::support::unitsync()
        .args(["sandbox", "--print-seed"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(Seed::from_yaml(&text).unwrap(), demo_seed());
}

// ---------------------------------------------------------------------------------------------
// As third-party clients send it (issue 15).

#[tokio::test]
async fn trailing_and_doubled_slashes_are_accepted_like_the_real_api() {
    let (sandbox, api) = demo().await;
    let (status, plain) = api.list("company/companies", &[]).await;
    assert_eq!(status, StatusCode::OK);
    // connectpyse puts a trailing slash on every list and POST URL; django-connectwise sends
    // `projects/`; a doubled slash comes from joining a base that ends in one.
    for path in [
        "company/companies/",
        "company//companies",
        "/company/companies//",
    ] {
        let (status, body) = api.list(path, &[]).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(body, plain, "{path}");
    }
    let (status, body) = api.list("finance/agreements//1001", &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], 1001);
    let (status, body) = api.list("company/companies/count/", &[]).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"count": 6})));
    let (status, body) = api
        .list(
            "finance/agreements/1001/additions/",
            &[("conditions", "product/identifier=\"SP-DESKTOP\"")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body.as_array().unwrap().len(), 2);
    // Whole URLs too, with the slash doubled right after the codebase.
    let r = api
        .get(&format!(
            "{}/v4_6_release//apis/3.0//finance/agreements/1001/",
            sandbox.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Paging links name the clean path.
    let r = api
        .get("company/companies/")
        .query(&[("pageSize", "2")])
        .send()
        .await
        .unwrap();
    let link = r.headers()["link"].to_str().unwrap().to_string();
    assert!(
        link.contains("/apis/3.0/company/companies?") && !link.contains("companies/?"),
        "{link}"
    );

    // Writes: POST to the list URL with a trailing slash, PATCH through a doubled slash.
    let r = api
        .req(reqwest::Method::POST, "finance/agreements/1005/additions/")
        .json(&json!({"product": {"identifier": "SP-SERVER"}, "billCustomer": "Billable"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let (status, body) = api
        .patch(
            "finance/agreements/1001//additions/5001/",
            json!([{"op": "replace", "path": "quantity", "value": 4}]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(sandbox.addition(5001).unwrap().quantity, 4.0);

    // The log keeps the path as the client sent it.
    let log = sandbox.requests();
    assert!(
        log.iter().any(|r| r
            .path
            .ends_with("/apis/3.0/finance/agreements/1001//additions/5001/")),
        "{:?}",
        log.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    // Unknown paths still answer 404, slashes or not.
    let (status, body) = api.list("finance/nothing/", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "NotFound");
}

#[tokio::test]
async fn last_updated_in_conditions_is_the_alias_of_info_last_updated() {
    let (_sandbox, api) = demo().await;
    // django-connectwise's incremental syncs and connectwise-rest's docs send the bare name.
    let all = api
        .ids(
            "company/companies",
            "_info/lastUpdated > [2026-01-01T00:00:00Z]",
        )
        .await;
    assert_eq!(all.len(), 6);
    assert_eq!(
        api.ids("company/companies", "lastUpdated > [2026-01-01T00:00:00Z]")
            .await,
        all
    );
    assert!(
        api.ids("company/companies", "lastUpdated > [2026-11-02T00:00:00Z]")
            .await
            .is_empty()
    );
    // A change moves the addition's lastUpdated; the alias sees it.
    let (status, _) = api
        .patch(
            "finance/agreements/1001/additions/5001",
            json!([{"op": "replace", "path": "quantity", "value": 4}]),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        api.ids(
            "finance/agreements/1001/additions",
            "lastUpdated > [2026-11-02T00:00:00Z]"
        )
        .await,
        vec![5001]
    );
    let (status, body) = api
        .list(
            "finance/agreements/count",
            &[("conditions", "LastUpdated >= [2026-11-01]")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"count": 5}));
}

#[tokio::test]
async fn single_and_double_quoted_strings_in_conditions() {
    let (_sandbox, api) = demo().await;
    let double = api
        .ids("company/companies", "name=\"Bob's Dentistry\"")
        .await;
    assert_eq!(double, vec![250, 298]);
    for conditions in [
        "name='Bob''s Dentistry'",
        "name = 'bob''s dentistry'",
        "name like 'Bob''s%' and identifier != 'AngryFox'",
        "name in ('Nobody', 'Bob''s Dentistry')",
    ] {
        assert_eq!(
            api.ids("company/companies", conditions).await,
            double,
            "{conditions}"
        );
    }
    assert_eq!(
        api.ids(
            "company/companies",
            "status/name='Active' and name='Bob''s Dentistry'"
        )
        .await,
        vec![250]
    );
    let (status, body) = api
        .list("company/companies", &[("conditions", "name = 'Bob")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "InvalidObject");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("unterminated string"),
        "{body}"
    );
}

#[tokio::test]
async fn method_not_allowed_and_too_large_answers_carry_connectwise_json() {
    let (_sandbox, api) = demo().await;
    let r = api
        .req(reqwest::Method::DELETE, "company/companies")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(r.headers().contains_key("allow"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "MethodNotAllowed");
    assert!(
        body["message"].as_str().unwrap().contains("'DELETE'"),
        "{body}"
    );
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");

    // A body past the server's limit.
    let big = format!(
        "[{{\"op\":\"replace\",\"path\":\"description\",\"value\":\"{}\"}}]",
        "x".repeat(3 * 1024 * 1024)
    );
    let r = api
        .req(
            reqwest::Method::PATCH,
            "finance/agreements/1001/additions/5001",
        )
        .header("Content-Type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "PayloadTooLarge");
    assert!(body["message"].is_string());
}
