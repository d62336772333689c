//! The Autotask sandbox, driven over 127.0.0.1 with reqwest.

use std::time::Duration;

use jiff::civil::date;
use reqwest::StatusCode;
use serde_json::{Value, json};
use unitsync::sandbox::{
    AtCompany, AtLogin, AtSeed, AutotaskSandbox, AutotaskSandboxHandle, Faults, autotask_demo_seed,
};

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().expect("client")
}

struct Api {
    http: reqwest::Client,
    api: String,
    login: AtLogin,
}

impl Api {
    fn new(sandbox: &AutotaskSandboxHandle) -> Api {
        Api {
            http: client(),
            api: sandbox.api_url(),
            login: sandbox.login(),
        }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{}", self.api, path)
        };
        self.http
            .request(method, url)
            .header("ApiIntegrationCode", &self.login.integration_code)
            .header("UserName", &self.login.username)
            .header("Secret", &self.login.secret)
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.req(reqwest::Method::GET, path)
    }

    fn post(&self, path: &str, body: &Value) -> reqwest::RequestBuilder {
        self.req(reqwest::Method::POST, path).json(body)
    }

    async fn query(&self, entity: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .post(&format!("{entity}/query"), &body)
            .send()
            .await
            .expect("send");
        let status = r.status();
        (status, r.json().await.expect("json"))
    }

    /// The ids a filter matches (one page).
    async fn ids(&self, entity: &str, filter: Value) -> Vec<i64> {
        let (status, body) = self.query(entity, json!({ "filter": filter })).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["id"].as_i64().expect("id"))
            .collect()
    }

    async fn adjust(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self.post(path, &body).send().await.expect("send");
        let status = r.status();
        (status, r.json().await.expect("json"))
    }
}

async fn demo() -> (AutotaskSandboxHandle, Api) {
    let sandbox = AutotaskSandbox::start(autotask_demo_seed(), Faults::none())
        .await
        .expect("start");
    let api = Api::new(&sandbox);
    (sandbox, api)
}

fn all() -> Value {
    json!([{ "op": "gte", "field": "id", "value": 0 }])
}

#[tokio::test]
async fn auth_headers_are_required_and_checked() {
    let (sandbox, api) = demo().await;
    let url = format!("{}Companies/query", sandbox.api_url());
    let body = json!({ "filter": all() });

    let r = api.http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"errors": ["Missing required header(s): ApiIntegrationCode, UserName, Secret"]})
    );

    let r = api
        .http
        .post(&url)
        .header("ApiIntegrationCode", "SANDBOXINTEGRATIONCODE")
        .header("UserName", "unitsync@computech.example")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"errors": ["Missing required header(s): Secret"]})
    );

    // As the real API answers (issue 15): a wrong integration code is a 500 with its own message
    // (the @apigrate README's Error Handling section, py-autotask `auth.py`), checked before the
    // user and secret; a wrong user name or secret is an empty 401.
    let send = |code: &'static str, user: &'static str, secret: &'static str| {
        api.http
            .post(&url)
            .header("ApiIntegrationCode", code)
            .header("UserName", user)
            .header("Secret", secret)
            .json(&body)
            .send()
    };
    for (code, user, secret) in [
        (
            "sandboxintegrationcode",
            "unitsync@computech.example",
            "sandboxSecret",
        ),
        ("WRONGCODE", "someone@computech.example", "wrong"),
    ] {
        let r = send(code, user, secret).await.unwrap();
        assert_eq!(
            r.status(),
            StatusCode::INTERNAL_SERVER_ERROR,
            "{code} {user} {secret}"
        );
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({"errors": ["IntegrationCode is invalid."]})
        );
    }
    for (user, secret) in [
        ("unitsync@computech.example", "wrong"),
        ("someone@computech.example", "sandboxSecret"),
        ("unitsync@computech.example", "sandboxsecret"),
    ] {
        let r = send("SANDBOXINTEGRATIONCODE", user, secret).await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{user} {secret}");
        assert_eq!(r.text().await.unwrap(), "", "{user} {secret}");
    }

    // The user name is matched case-insensitively; ImpersonationResourceId is ignored.
    let r = api
        .http
        .post(&url)
        .header("ApiIntegrationCode", "SANDBOXINTEGRATIONCODE")
        .header("UserName", "UnitSync@Computech.Example")
        .header("Secret", "sandboxSecret")
        .header("ImpersonationResourceId", "29682885")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Every authenticated endpoint checks, including ThresholdInformation and item reads.
    for path in [
        "ThresholdInformation",
        "Companies/250",
        "Contracts/1001/ServiceUnits",
    ] {
        let r = api
            .http
            .get(format!("{}{path}", sandbox.api_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    // Failed auth is not counted against the threshold.
    assert_eq!(sandbox.threshold_count(), 1);
}

#[tokio::test]
async fn zone_and_version_information_need_no_auth() {
    let (sandbox, api) = demo().await;
    let http = &api.http;
    for path in [
        "/atservicesrest/v1.0/zoneInformation?user=unitsync@computech.example",
        "/ATServicesRest/V1.0/ZoneInformation?user=UNITSYNC@computech.example",
        "/atservicesrest/1.0/zoneinformation?user=unitsync%40computech.example",
    ] {
        let r = http
            .get(format!("{}{path}", sandbox.base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({
                "zoneName": "Sandbox",
                "url": sandbox.zone_url(),
                "webUrl": format!("{}/", sandbox.base_url()),
                "ci": 0,
            })
        );
    }
    assert_eq!(
        sandbox.zone_url(),
        format!("{}/atservicesrest/", sandbox.base_url())
    );

    let r = http
        .get(format!(
            "{}/atservicesrest/v1.0/zoneInformation?user=nobody@example.com",
            sandbox.base_url()
        ))
        .send()
        .await
        .unwrap();
    // An unknown, blank or missing user: HTTP 500 with this exact body, as the real API answers
    // (the @apigrate README; django-autotask `get_zone_info`: "AT returns 500 if username is
    // blank or incorrect"), not a 404 or 400.
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"errors": ["Zone information could not be determined"]})
    );
    for query in ["?user=", "?user=%20", ""] {
        let r = http
            .get(format!(
                "{}/atservicesrest/v1.0/zoneInformation{query}",
                sandbox.base_url()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR, "{query:?}");
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({"errors": ["Zone information could not be determined"]}),
            "{query:?}"
        );
    }

    for path in [
        "/atservicesrest/versioninformation",
        "/ATServicesRest/VersionInformation",
    ] {
        let r = http
            .get(format!("{}{path}", sandbox.base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({"apiVersions": ["1.0"]})
        );
    }
    // Zone and version lookups are not counted.
    assert_eq!(sandbox.threshold_count(), 0);
}

#[tokio::test]
async fn paths_and_field_names_are_case_insensitive() {
    let (sandbox, api) = demo().await;
    let upper = format!("{}/ATServicesRest/V1.0/Companies/query", sandbox.base_url());
    let r = api
        .post(
            &upper,
            &json!({"maxRecords": 10, "includeFields": ["COMPANYNAME"], "Filter": [{"OP": "EQ", "Field": "ID", "Value": 250}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["items"],
        json!([{"id": 250, "companyName": "Bob's Dentistry", "userDefinedFields": []}])
    );
    assert_eq!(body["pageDetails"]["requestCount"], 10);

    let lower = format!("{}/atservicesrest/1.0/companies/250", sandbox.base_url());
    let r = api.get(&lower).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().await.unwrap()["item"]["companyName"],
        "Bob's Dentistry"
    );
}

#[tokio::test]
async fn records_carry_the_swagger_fields() {
    let (_sandbox, api) = demo().await;
    let r = api.get("Contracts/1001").send().await.unwrap();
    let item = r.json::<Value>().await.unwrap()["item"].clone();
    assert_eq!(item["id"], 1001);
    assert_eq!(item["companyID"], 250);
    assert_eq!(item["contractType"], 7);
    assert_eq!(item["status"], 1);
    assert_eq!(item["contractName"], "Managed Backup");
    // Date-only fields are midnight US Eastern, answered in UTC (as captured responses show).
    assert_eq!(item["startDate"], "2026-01-01T05:00:00.000Z");
    assert_eq!(item["endDate"], "2026-12-31T05:00:00.000Z");
    assert!(item.as_object().unwrap().contains_key("opportunityID"));

    let r = api.get("ContractServices/41001").send().await.unwrap();
    let item = r.json::<Value>().await.unwrap()["item"].clone();
    assert_eq!(item["contractID"], 1001);
    assert_eq!(item["serviceID"], 12);
    assert_eq!(item["unitPrice"], 8.0);
    assert!(
        item.get("units").is_none(),
        "units live in ContractServiceUnits"
    );

    let r = api.get("Services/12").send().await.unwrap();
    let item = r.json::<Value>().await.unwrap()["item"].clone();
    assert_eq!(item["sku"], "SP-DESKTOP");
    assert_eq!(item["name"], "ShadowProtect Desktop");

    // Unknown ids answer {"item": null}; non-numeric ids 400.
    let r = api.get("Companies/999999").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"item": null}));
    let r = api.get("Companies/abc").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // The demo story: one monthly unit row per period of 2026.
    let (status, body) = api
        .query(
            "ContractServiceUnits",
            json!({"filter": [{"op": "in", "field": "contractServiceID", "value": [41001, 41002, 41003]}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 36);
    for (cs, units) in [(41001, 3), (41002, 2), (41003, 120)] {
        let rows: Vec<&Value> = items
            .iter()
            .filter(|i| i["contractServiceID"] == cs)
            .collect();
        assert_eq!(rows.len(), 12);
        assert!(rows.iter().all(|r| r["units"] == units), "{cs}");
        assert_eq!(rows[0]["startDate"], "2026-01-01T05:00:00.000Z");
        assert_eq!(rows[1]["endDate"], "2026-02-28T05:00:00.000Z");
        // Summer dates are midnight EDT.
        assert_eq!(rows[6]["startDate"], "2026-07-01T04:00:00.000Z");
    }

    // Child collections.
    let r = api.get("Contracts/1001/ServiceUnits").send().await.unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["items"].as_array().unwrap().len(), 12);
    assert!(body["pageDetails"]["nextPageUrl"].is_null());
    let r = api.get("Contracts/1005/Services").send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["items"], json!([]));
}

#[tokio::test]
async fn every_filter_op() {
    let (_sandbox, api) = demo().await;
    let c = "Companies";
    let f =
        |op: &str, field: &str, value: Value| json!([{ "op": op, "field": field, "value": value }]);
    assert_eq!(api.ids(c, f("eq", "id", json!(250))).await, vec![250]);
    assert_eq!(
        api.ids(c, f("eq", "companyName", json!("bob's dentistry")))
            .await,
        vec![250, 298]
    );
    assert_eq!(
        api.ids(c, f("noteq", "id", json!(250))).await,
        vec![0, 251, 252, 253, 298]
    );
    assert_eq!(api.ids(c, f("gt", "id", json!(252))).await, vec![253, 298]);
    assert_eq!(
        api.ids(c, f("gte", "id", json!("252"))).await,
        vec![252, 253, 298]
    );
    assert_eq!(api.ids(c, f("lt", "id", json!(251))).await, vec![0, 250]);
    assert_eq!(
        api.ids(c, f("lte", "id", json!(251))).await,
        vec![0, 250, 251]
    );
    assert_eq!(
        api.ids(c, f("beginsWith", "companyName", json!("BOB")))
            .await,
        vec![250, 298]
    );
    assert_eq!(
        api.ids(c, f("endsWith", "companyName", json!(" inc")))
            .await,
        vec![252]
    );
    assert_eq!(
        api.ids(c, f("contains", "companyName", json!("fox"))).await,
        vec![251]
    );
    assert_eq!(
        api.ids(c, f("in", "id", json!([251, 252, 7]))).await,
        vec![251, 252]
    );
    assert_eq!(
        api.ids(c, f("notIn", "id", json!([0, 250, 298]))).await,
        vec![251, 252, 253]
    );
    assert_eq!(
        api.ids(c, f("eq", "isActive", json!(false))).await,
        vec![298]
    );
    // exist / notExist on a nullable field; a null field matches no comparison.
    assert_eq!(
        api.ids(c, json!([{ "op": "exist", "field": "parentCompanyID" }]))
            .await,
        Vec::<i64>::new()
    );
    assert_eq!(
        api.ids(c, json!([{ "op": "notExist", "field": "parentCompanyID" }]))
            .await
            .len(),
        6
    );
    assert_eq!(
        api.ids(c, f("noteq", "parentCompanyID", json!(1))).await,
        Vec::<i64>::new()
    );
    // Dates compare as instants, a bare date being midnight UTC.
    assert_eq!(
        api.ids("Contracts", f("lt", "endDate", json!("2026-01-01")))
            .await,
        vec![1004]
    );
    assert_eq!(
        api.ids(
            "ContractServiceUnits",
            json!([
                { "op": "eq", "field": "contractServiceID", "value": 41001 },
                { "op": "lte", "field": "startDate", "value": "2026-11-25T09:30:00Z" },
                { "op": "gte", "field": "endDate", "value": "2026-11-25" },
            ])
        )
        .await
        .len(),
        1
    );
    // Numbers compare as numbers.
    assert_eq!(
        api.ids("Services", f("gt", "unitPrice", json!(7.5))).await,
        vec![12, 13]
    );
}

#[tokio::test]
async fn filter_groups_nest_and_top_level_items_are_anded() {
    let (_sandbox, api) = demo().await;
    // Active companies named Bob's or Angry Fox.
    let ids = api
        .ids(
            "Companies",
            json!([
                { "op": "eq", "field": "isActive", "value": true },
                { "op": "or", "items": [
                    { "op": "beginsWith", "field": "companyName", "value": "Bob" },
                    { "op": "and", "items": [
                        { "op": "contains", "field": "companyName", "value": "fox" },
                        { "op": "eq", "field": "id", "value": 251 },
                    ]},
                ]},
            ]),
        )
        .await;
    assert_eq!(ids, vec![250, 251]);
    let ids = api
        .ids(
            "Contracts",
            json!([
                { "op": "and", "items": [
                    { "op": "eq", "field": "contractType", "value": 7 },
                    { "op": "eq", "field": "status", "value": 1 },
                ]},
                { "op": "notIn", "field": "id", "value": [1005] },
            ]),
        )
        .await;
    assert_eq!(ids, vec![1001, 1002, 1003]);
}

#[tokio::test]
async fn bad_queries_answer_400_with_errors() {
    let (_sandbox, api) = demo().await;
    let cases = [
        (
            json!({"filter": [{"op": "eq", "field": "companyNam", "value": "x"}]}),
            "Unable to find companyNam in the Company Entity.",
        ),
        (
            json!({"filter": [{"op": "like", "field": "companyName", "value": "x"}]}),
            "Unknown filter op like",
        ),
        (
            json!({"filter": []}),
            "A query needs at least one filter item, for example {\"op\":\"gte\",\"field\":\"id\",\"value\":0}",
        ),
        (
            json!({"MaxRecords": 10}),
            "A query needs at least one filter item, for example {\"op\":\"gte\",\"field\":\"id\",\"value\":0}",
        ),
        (
            json!({"filter": [{"op": "eq", "field": "isActive", "value": null}]}),
            "The eq op on isActive needs a value (string, number or boolean); got null",
        ),
        (
            json!({"filter": [{"op": "in", "field": "id", "value": 5}]}),
            "The in op needs an array value",
        ),
        (
            json!({"filter": [{"op": "or", "items": []}]}),
            "The or group needs a non-empty items array",
        ),
        (
            json!({"filter": all(), "IncludeFields": ["nope"]}),
            "Unable to find nope in the Company Entity.",
        ),
    ];
    for (body, message) in cases {
        let (status, answer) = api.query("Companies", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer, json!({ "errors": [message] }), "{body}");
    }
    let r = api
        .req(reqwest::Method::POST, "Companies/query")
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = api
        .req(reqwest::Method::POST, "Companies/query")
        .header("Content-Type", "text/plain")
        .body(json!({"filter": all()}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn max_records_bounds() {
    let (_sandbox, api) = demo().await;
    for bad in [json!(0), json!(501), json!(-1), json!("10"), json!(2.5)] {
        let (status, body) = api
            .query("Companies", json!({"MaxRecords": bad, "filter": all()}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(
            body["errors"][0],
            format!("MaxRecords must be a whole number from 1 to 500; got {bad}")
        );
    }
    let (status, body) = api
        .query("Companies", json!({"MaxRecords": 1, "filter": all()}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
    assert_eq!(body["pageDetails"]["count"], 1);
    assert_eq!(body["pageDetails"]["requestCount"], 1);
    assert!(body["pageDetails"]["nextPageUrl"].is_string());
    let (_, body) = api
        .query("Companies", json!({"MaxRecords": 500, "filter": all()}))
        .await;
    assert_eq!(body["pageDetails"]["count"], 6);
    assert!(body["pageDetails"]["nextPageUrl"].is_null());
    assert!(body["pageDetails"]["prevPageUrl"].is_null());
    let (_, body) = api.query("Companies", json!({"filter": all()})).await;
    assert_eq!(body["pageDetails"]["requestCount"], 500);
}

fn big_seed(n: i64) -> AtSeed {
    let mut seed = autotask_demo_seed();
    for i in 0..n {
        seed.companies.push(AtCompany {
            id: 10_000 + i,
            name: format!("Customer {i:04}"),
            number: None,
            company_type: 1,
            active: i % 3 != 0,
            parent: None,
        });
    }
    seed
}

#[tokio::test]
async fn paging_follows_next_page_url_to_the_exact_total() {
    let sandbox = AutotaskSandbox::start(big_seed(1234), Faults::none())
        .await
        .unwrap();
    let api = Api::new(&sandbox);
    let filter = json!([{ "op": "beginsWith", "field": "companyName", "value": "Customer" }]);
    let query = json!({"MaxRecords": 500, "IncludeFields": ["companyName"], "filter": filter});
    let (status, first) = api.query("Companies", query.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let mut ids: Vec<i64> = Vec::new();
    let mut page = first.clone();
    let mut pages = 0;
    let mut second_prev = None;
    loop {
        pages += 1;
        let items = page["items"].as_array().unwrap();
        assert_eq!(page["pageDetails"]["count"], items.len());
        ids.extend(items.iter().map(|i| i["id"].as_i64().unwrap()));
        // id, companyName and the userDefinedFields the real API always keeps.
        assert!(items.iter().all(|i| i.as_object().unwrap().len() == 3));
        if pages == 2 {
            second_prev = page["pageDetails"]["prevPageUrl"]
                .as_str()
                .map(str::to_string);
        }
        let Some(next) = page["pageDetails"]["nextPageUrl"].as_str() else {
            break;
        };
        let prefix = format!("{}Companies/query/next?paging=", sandbox.api_url());
        assert!(next.starts_with(&prefix), "{next}");
        assert!(!next.contains("search="), "{next}");
        // The link of a POSTed query is POSTed again with the same body.
        let r = api.post(next, &query).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        page = r.json().await.unwrap();
    }
    assert_eq!(pages, 3);
    assert_eq!(ids.len(), 1234);
    let expected: Vec<i64> = (10_000..10_000 + 1234).collect();
    assert_eq!(ids, expected);
    assert!(page["pageDetails"]["prevPageUrl"].is_string());

    // prevPageUrl of page 2 answers page 1 again.
    let r = api
        .post(&second_prev.expect("prev"), &query)
        .send()
        .await
        .unwrap();
    let again: Value = r.json().await.unwrap();
    assert_eq!(again["items"], first["items"]);

    // A GET of that link is refused as the real API refuses it (WYRE-AI/autotask-mcp PR #170).
    let next = first["pageDetails"]["nextPageUrl"].as_str().unwrap();
    let r = api.get(next).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"Message": "The requested resource does not support http method 'GET'."})
    );
    // A POST with another query, or no body, is a 400.
    let other = json!({"MaxRecords": 500, "filter": [{ "op": "gte", "field": "id", "value": 0 }]});
    let r = api.post(next, &other).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = api
        .req(reqwest::Method::POST, next)
        .header("Content-Type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Next pages need auth too, and a broken token is a 400.
    let r = api.http.post(next).json(&query).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = api
        .post("Companies/query/next?paging=garbage!", &query)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // A GET `?search=` query links to pages that carry `search` and are fetched with GET.
    let r = api
        .get("Companies/query")
        .query(&[("search", query.to_string())])
        .send()
        .await
        .unwrap();
    let page: Value = r.json().await.unwrap();
    let next = page["pageDetails"]["nextPageUrl"].as_str().unwrap();
    assert!(next.contains("search="), "{next}");
    let r = api.get(next).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let second: Value = r.json().await.unwrap();
    assert_eq!(second["items"][0]["id"], 10_500);

    // The GET ?search= form and the count.
    let search = json!({"MaxRecords": 100, "filter": [{ "op": "eq", "field": "isActive", "value": false }, { "op": "gte", "field": "id", "value": 10000 }]});
    let r = api
        .get("Companies/query")
        .query(&[("search", search.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["pageDetails"]["count"], 100);
    let r = api
        .post(
            "Companies/query/count",
            &json!({"filter": search["filter"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"queryCount": 412}));
}

/// Autotask keeps date-only values as midnight US Eastern: a bare `YYYY-MM-DD` names that date in
/// filters and in `effectiveDate`, while a date-time is an instant, so UTC midnight of
/// 1 December (19:00 on 30 November in New York) is still November.
#[tokio::test]
async fn date_only_values_are_eastern_midnight_and_a_bare_date_never_shifts() {
    let (sandbox, api) = demo().await;
    let starts = |filter: Value| {
        let api = &api;
        async move {
            let (status, body) = api
                .query(
                    "ContractServiceUnits",
                    json!({"IncludeFields": ["startDate"], "filter": [
                        {"op": "eq", "field": "contractServiceID", "value": 41001}, filter]}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["startDate"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    let dec = "2026-12-01T05:00:00.000Z".to_string();
    // A bare date equals the stored value of that date.
    assert_eq!(
        starts(json!({"op": "eq", "field": "startDate", "value": "2026-12-01"})).await,
        vec![dec.clone()]
    );
    assert_eq!(
        starts(json!({"op": "gte", "field": "startDate", "value": "2026-12-01"})).await,
        vec![dec.clone()]
    );
    // UTC midnight is five hours before the stored 1 December: `lte` misses it.
    let before =
        starts(json!({"op": "lte", "field": "startDate", "value": "2026-12-01T00:00:00"})).await;
    assert_eq!(before.len(), 11, "{before:?}");
    assert!(!before.contains(&dec));
    assert_eq!(
        starts(json!({"op": "eq", "field": "startDate", "value": "2026-12-01T05:00:00Z"})).await,
        vec![dec]
    );

    // effectiveDate: the bare date and Eastern midnight land on 1 December, UTC midnight on
    // 30 November (so it changes November's units too).
    for (sent, lands) in [
        ("2026-12-01", date(2026, 12, 1)),
        ("2026-12-01T05:00:00.000Z", date(2026, 12, 1)),
        ("2026-12-01T00:00:00Z", date(2026, 11, 30)),
        ("2026-12-01T00:00:00", date(2026, 11, 30)),
    ] {
        let (status, body) = api
            .adjust(
                "ContractServiceAdjustments",
                json!({"contractID": 1001, "contractServiceID": 41001, "serviceID": 12,
                       "effectiveDate": sent, "unitChange": 1}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{sent}: {body}");
        assert_eq!(
            sandbox.adjustments().last().unwrap().effective_date,
            lands,
            "{sent}"
        );
    }
    // Two of the four reached November.
    assert_eq!(sandbox.units_on(41001, date(2026, 11, 30)), Some(5));
    assert_eq!(sandbox.units_on(41001, date(2026, 12, 1)), Some(7));
}

#[tokio::test]
async fn adjustments_change_units_from_the_effective_period_on() {
    let (sandbox, api) = demo().await;
    let (status, body) = api
        .adjust(
            "ContractServiceAdjustments",
            json!({"contractID": 1001, "contractServiceID": 41001, "serviceID": 12,
                   "effectiveDate": "2026-11-15", "unitChange": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"itemId": 1}));
    let units: Vec<i32> = sandbox
        .unit_periods(41001)
        .iter()
        .map(|p| p.units)
        .collect();
    assert_eq!(units, vec![3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4, 4]);
    assert_eq!(sandbox.units_on(41001, date(2026, 11, 25)), Some(4));
    assert_eq!(sandbox.units_on(41001, date(2026, 10, 31)), Some(3));

    // Through the API too, with price following units.
    let (_, body) = api
        .query(
            "ContractServiceUnits",
            json!({"filter": [
                { "op": "eq", "field": "contractServiceID", "value": 41001 },
                { "op": "gte", "field": "startDate", "value": "2026-11-01" },
            ]}),
        )
        .await;
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|i| i["units"] == 4 && i["price"] == 32.0));

    // The child form; a period start counts as inside that period. Negative changes work.
    let (status, body) = api
        .adjust(
            "Contracts/1003/ServiceAdjustments",
            json!({"contractServiceID": 41003, "serviceID": 14,
                   "effectiveDate": "2026-12-01", "unitChange": -20}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"itemId": 2}));
    assert_eq!(sandbox.units_on(41003, date(2026, 11, 30)), Some(120));
    assert_eq!(sandbox.units_on(41003, date(2026, 12, 1)), Some(100));

    // Without contractServiceID the contract's service is found.
    let (status, _) = api
        .adjust(
            "ContractServiceAdjustments",
            json!({"contractID": 1002, "serviceID": 12, "effectiveDate": "2026-06-30T23:00:00Z", "unitChange": 3}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let units: Vec<i32> = sandbox
        .unit_periods(41002)
        .iter()
        .map(|p| p.units)
        .collect();
    assert_eq!(units, vec![2, 2, 2, 2, 2, 5, 5, 5, 5, 5, 5, 5]);

    // ... or created when the contract lacks it.
    let (status, _) = api
        .adjust(
            "ContractServiceAdjustments",
            json!({"contractID": 1005, "serviceID": 13, "effectiveDate": "2026-03-01", "unitChange": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let ids = api
        .ids(
            "ContractServices",
            json!([{ "op": "eq", "field": "contractID", "value": 1005 }]),
        )
        .await;
    assert_eq!(ids.len(), 1);
    let units: Vec<i32> = sandbox
        .unit_periods(ids[0])
        .iter()
        .map(|p| p.units)
        .collect();
    assert_eq!(units, vec![0, 0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2]);

    let adjustments = sandbox.adjustments();
    assert_eq!(adjustments.len(), 4);
    assert_eq!(adjustments[0].unit_change, 1);
    assert_eq!(adjustments[0].effective_date, date(2026, 11, 15));
    assert_eq!(adjustments[1].contract_id, 1003);
}

#[tokio::test]
async fn bad_adjustments_are_refused_and_change_nothing() {
    let (sandbox, api) = demo().await;
    let base = json!({"contractID": 1001, "contractServiceID": 41001, "serviceID": 12,
                      "effectiveDate": "2026-11-01", "unitChange": 1});
    let with = |key: &str, value: Value| {
        let mut b = base.clone();
        if value.is_null() {
            b.as_object_mut().unwrap().remove(key);
        } else {
            b[key] = value;
        }
        b
    };
    let cases = [
        (
            with("unitChange", json!(-4)),
            "The adjustment would make the units of ContractServiceUnit 900011 -1; units cannot be negative",
        ),
        (
            with("unitChange", json!(i32::MAX)),
            "The adjustment would make the units of ContractServiceUnit 900011 2147483650; units cannot exceed 2147483647 (int32)",
        ),
        (
            with("unitChange", json!(1.5)),
            "unitChange must be a whole number (int32); got 1.5",
        ),
        (
            with("unitChange", json!(3_000_000_000_i64)),
            "unitChange must be a whole number (int32); got 3000000000",
        ),
        (
            with("unitChange", json!("1")),
            "unitChange must be a whole number (int32); got \"1\"",
        ),
        (with("unitChange", Value::Null), "unitChange is required"),
        (
            with("effectiveDate", Value::Null),
            "effectiveDate is required",
        ),
        (
            with("effectiveDate", json!("next month")),
            "effectiveDate must be an ISO-8601 date; got \"next month\"",
        ),
        (
            with("effectiveDate", json!("2027-01-01")),
            "effectiveDate 2027-01-01 is outside contract 1001 (2026-01-01 to 2026-12-31)",
        ),
        (
            with("contractServiceID", json!(41002)),
            "ContractService 41002 does not belong to contract 1001",
        ),
        (
            with("serviceID", json!(13)),
            "ContractService 41001 is for service 12, not service 13",
        ),
        (with("serviceID", json!(99)), "Service 99 does not exist"),
        (
            with("contractID", json!(4242)),
            "Contract 4242 does not exist",
        ),
        (
            with("contractServiceID", json!(777)),
            "ContractService 777 does not exist",
        ),
        (with("contractID", Value::Null), "contractID is required"),
        (with("serviceID", Value::Null), "serviceID is required"),
    ];
    for (body, message) in cases {
        let (status, answer) = api.adjust("ContractServiceAdjustments", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer, json!({ "errors": [message] }), "{body}");
    }
    // An inactive (cancelled) contract.
    let (status, answer) = api
        .adjust(
            "ContractServiceAdjustments",
            json!({"contractID": 1004, "contractServiceID": 41004, "serviceID": 12,
                   "effectiveDate": "2025-06-01", "unitChange": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer["errors"][0],
        "Contract 1004 is not active; adjustments cannot be made to an inactive contract"
    );
    // The child form checks the body's contractID against the parent.
    let (status, answer) = api
        .adjust("Contracts/1002/ServiceAdjustments", base.clone())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer["errors"][0],
        "contractID 1001 does not match the parent contract 1002"
    );

    assert!(sandbox.adjustments().is_empty());
    assert!(sandbox.unit_periods(41001).iter().all(|p| p.units == 3));

    // -3 to exactly 0 is fine.
    let (status, _) = api
        .adjust("ContractServiceAdjustments", with("unitChange", json!(-3)))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sandbox.units_on(41001, date(2026, 11, 1)), Some(0));
}

#[tokio::test]
async fn adjustments_cannot_be_read() {
    let (_sandbox, api) = demo().await;
    let message = json!({"errors": ["ContractServiceAdjustments can only be created; it cannot be queried, read or updated"]});
    for (method, path) in [
        (reqwest::Method::POST, "ContractServiceAdjustments/query"),
        (reqwest::Method::GET, "ContractServiceAdjustments/query"),
        (reqwest::Method::GET, "ContractServiceAdjustments"),
        (reqwest::Method::GET, "ContractServiceAdjustments/1"),
        (reqwest::Method::PATCH, "ContractServiceAdjustments"),
        (reqwest::Method::GET, "Contracts/1001/ServiceAdjustments"),
    ] {
        let r = api
            .req(method.clone(), path)
            .json(&json!({"filter": all()}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(r.json::<Value>().await.unwrap(), message);
    }
    // ContractServiceUnits are read-only.
    let r = api
        .post("ContractServiceUnits", &json!({"units": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let r = api.get("Tickets/query").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.json::<Value>().await.unwrap()["errors"][0].is_string());
}

#[tokio::test]
async fn threshold_counts_requests_and_blocks_at_the_limit() {
    let mut seed = autotask_demo_seed();
    seed.request_threshold = 5;
    let sandbox = AutotaskSandbox::start(seed, Faults::none()).await.unwrap();
    let api = Api::new(&sandbox);
    for _ in 0..3 {
        let (status, _) = api.query("Companies", json!({"filter": all()})).await;
        assert_eq!(status, StatusCode::OK);
    }
    let r = api.get("ThresholdInformation").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"externalRequestThreshold": 5, "requestThresholdTimeframe": 60, "currentTimeframeRequestCount": 4})
    );
    let (status, _) = api.query("Services", json!({"filter": all()})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sandbox.threshold_count(), 5);

    // At 100 %, everything authenticated answers 429.
    for path in ["ThresholdInformation", "Companies/250"] {
        let r = api.get(path).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "{path}");
        let retry: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((3590..=3601).contains(&retry), "{retry}");
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({"errors": ["The API request threshold of 5 requests per 60 minutes has been reached; API access is blocked until the window clears"]})
        );
    }
    assert_eq!(sandbox.threshold_count(), 5);
    // Zone discovery still works.
    let r = api
        .http
        .get(format!(
            "{}/atservicesrest/v1.0/zoneInformation?user=unitsync@computech.example",
            sandbox.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    sandbox.set_request_threshold(6);
    assert_eq!(
        api.get("Companies/250").send().await.unwrap().status(),
        StatusCode::OK
    );
    sandbox.reset_threshold_window();
    assert_eq!(sandbox.threshold_count(), 0);
    assert_eq!(
        api.get("Companies/250").send().await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_fourth_concurrent_request_per_endpoint_gets_429() {
    let (sandbox, api) = demo().await;
    sandbox.set_faults(Faults::none().with_latency(Duration::from_millis(1200)));
    let q = || api.query("Companies", json!({"filter": all()}));
    let send = |path: &'static str| {
        let api = &api;
        async move { api.get(path).send().await.unwrap() }
    };
    let (a, b, c, d) = tokio::join!(
        send("Companies/250"),
        send("Companies/251"),
        send("Companies/252"),
        async {
            tokio::time::sleep(Duration::from_millis(400)).await;
            send("Companies/253").await
        }
    );
    let statuses = [a.status(), b.status(), c.status(), d.status()];
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(d.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(d.headers()["retry-after"], "1");
    assert_eq!(
        d.json::<Value>().await.unwrap(),
        json!({"errors": ["Thread limit exceeded: at most 3 concurrent requests per object endpoint (Companies) and tracking identifier"]})
    );
    assert_eq!(sandbox.max_concurrency()["Companies"], 4);

    // Three per endpoint on two endpoints at once are fine.
    sandbox.reset_max_concurrency();
    let (r1, r2, r3, r4, r5, r6) = tokio::join!(
        q(),
        q(),
        q(),
        api.query("Contracts", json!({"filter": all()})),
        api.query("Contracts", json!({"filter": all()})),
        api.query("Contracts", json!({"filter": all()})),
    );
    for (status, body) in [r1, r2, r3, r4, r5, r6] {
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let max = sandbox.max_concurrency();
    assert_eq!(max["Companies"], 3);
    assert_eq!(max["Contracts"], 3);

    // The slots are given back.
    sandbox.set_faults(Faults::none());
    assert_eq!(q().await.0, StatusCode::OK);
}

#[tokio::test]
async fn injected_faults() {
    let (sandbox, api) = demo().await;
    sandbox.set_faults(Faults::none().rate_limit(1, 7));
    let r = api.get("Companies/250").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "7");
    assert!(r.json::<Value>().await.unwrap()["errors"][0].is_string());
    assert_eq!(
        api.get("Companies/250").send().await.unwrap().status(),
        StatusCode::OK
    );

    sandbox.set_faults(Faults::none().server_errors(2, 503).only_method("POST"));
    assert_eq!(
        api.get("Companies/250").send().await.unwrap().status(),
        StatusCode::OK
    );
    let (status, body) = api.query("Companies", json!({"filter": all()})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        json!({"errors": ["An unexpected error occurred (injected by the sandbox)"]})
    );
    let (status, _) = api.query("Companies", json!({"filter": all()})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _) = api.query("Companies", json!({"filter": all()})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sandbox.faults().server_errors, 0);

    sandbox.set_faults(Faults::none().drop_connections(1));
    let fresh = client();
    let url = format!("{}Companies/250", sandbox.api_url());
    let login = sandbox.login();
    let send = || {
        fresh
            .get(&url)
            .header("ApiIntegrationCode", &login.integration_code)
            .header("UserName", &login.username)
            .header("Secret", &login.secret)
            .send()
    };
    assert!(send().await.is_err());
    assert_eq!(send().await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn request_log_records_requests_without_secrets() {
    let (sandbox, api) = demo().await;
    let (status, _) = api
        .query("Companies", json!({"MaxRecords": 2, "filter": all()}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let r = api
        .get("Companies/query")
        .query(&[("search", json!({"filter": all()}).to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let log = sandbox.requests();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].method, "POST");
    assert_eq!(log[0].path, "/atservicesrest/v1.0/Companies/query");
    assert_eq!(
        log[0].auth_user.as_deref(),
        Some("unitsync@computech.example")
    );
    assert_eq!(log[0].body.as_ref().unwrap()["MaxRecords"], 2);
    assert_eq!(log[0].header("content-type"), Some("application/json"));
    assert_eq!(log[0].status, 200);
    assert_eq!(log[1].method, "GET");
    let search: Value = serde_json::from_str(log[1].query_param("search").unwrap()).unwrap();
    assert_eq!(search["filter"], all());
    let text = serde_json::to_string(&log).unwrap();
    assert!(!text.contains("sandboxSecret"));
    assert!(!text.contains("SANDBOXINTEGRATIONCODE"));

    let r = api
        .http
        .get(format!("{}Companies/1", sandbox.api_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(sandbox.requests().last().unwrap().status, 401);
    sandbox.clear_requests();
    assert!(sandbox.requests().is_empty());
}

#[test]
fn demo_seed_tells_the_guides_story() {
    let seed = autotask_demo_seed();
    assert_eq!(seed.login.username, "unitsync@computech.example");
    assert_eq!(seed.request_threshold, 10_000);
    assert_eq!(seed.thread_limit, 3);
    let bobs: Vec<_> = seed
        .companies
        .iter()
        .filter(|c| c.name == "Bob's Dentistry")
        .collect();
    assert_eq!(bobs.len(), 2);
    assert!(bobs.iter().any(|c| c.id == 250 && c.active));
    assert!(bobs.iter().any(|c| !c.active));
    let cs = seed
        .contract_services
        .iter()
        .find(|c| c.id == 41001)
        .unwrap();
    assert_eq!((cs.contract, cs.service, cs.units), (1001, 12, 3));
    assert!(
        seed.services
            .iter()
            .any(|s| s.sku.as_deref() == Some("CLOUD-GB"))
    );
    assert!(seed.contracts.iter().any(|c| c.status == 0));

    assert!(AtSeed::from_yaml("login: {username: u, secret: s, integration_code: c}\ncontracts: [{id: 1, company: 9, name: x, start_date: 2026-01-01, end_date: 2026-12-31}]\n").is_err());
    assert!(AtSeed::from_yaml("login: {username: u, secret: s, integration_code: c}\n").is_ok());
}

#[test]
fn cli_prints_the_autotask_environment() {
    let out = crate::support::unitsync()
        .args(["sandbox", "--psa", "autotask", "--print-seed"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(AtSeed::from_yaml(&text).is_ok());

    let mut child = crate::support::unitsync()
        .args(["sandbox", "--psa", "autotask", "--port", "0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().unwrap();
    let mut lines = Vec::new();
    use std::io::BufRead;
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let done = line.starts_with("Press Ctrl-C");
        lines.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = lines.join("\n");
    assert!(
        text.starts_with("Autotask sandbox at http://127.0.0.1:"),
        "{text}"
    );
    assert!(text.contains("export UNITSYNC_AT_USERNAME=unitsync@computech.example"));
    assert!(text.contains("export UNITSYNC_AT_SECRET=sandboxSecret"));
    assert!(text.contains("export UNITSYNC_AT_INTEGRATION_CODE=SANDBOXINTEGRATIONCODE"));
}

#[tokio::test]
async fn include_fields_keep_user_defined_fields_as_the_real_api_does() {
    let (_sandbox, api) = demo().await;
    // The @apigrate README's limited-fields example: `userDefinedFields: []` stays.
    let (status, body) = api
        .query(
            "Contracts",
            json!({"IncludeFields": ["contractName"], "filter": [{"op": "eq", "field": "id", "value": 1001}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["items"],
        json!([{"id": 1001, "contractName": "Managed Backup", "userDefinedFields": []}])
    );
    // Entities without user-defined fields get none.
    let (status, body) = api
        .query(
            "ContractServiceUnits",
            json!({"IncludeFields": ["units"], "MaxRecords": 1, "filter": all()}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let item = body["items"][0].as_object().unwrap();
    assert_eq!(
        item.keys().collect::<Vec<_>>(),
        vec!["id", "units"],
        "{body}"
    );
}

/// Autotask refuses to change a period that was approved and posted (KB370000000540); so does
/// the sandbox, for an adjustment effective in or before one.
#[tokio::test]
async fn an_adjustment_into_a_posted_period_is_refused() {
    let mut seed = unitsync::sandbox::autotask_demo_seed();
    let bob = seed.contracts.iter_mut().find(|c| c.id == 1001).unwrap();
    bob.posted_through = Some(jiff::civil::date(2026, 11, 30));
    let sandbox =
        unitsync::sandbox::AutotaskSandbox::start(seed, unitsync::sandbox::Faults::none())
            .await
            .unwrap();
    let login = sandbox.login();
    let http = reqwest::Client::new();
    let post = |date: &'static str| {
        http.post(format!("{}ContractServiceAdjustments", sandbox.api_url()))
            .header("UserName", &login.username)
            .header("Secret", &login.secret)
            .header("ApiIntegrationCode", &login.integration_code)
            .json(&serde_json::json!({
                "contractID": 1001, "contractServiceID": 41001, "serviceID": 12,
                "effectiveDate": date, "unitChange": 1
            }))
            .send()
    };
    let refused = post("2026-11-15").await.unwrap();
    assert_eq!(refused.status(), 400);
    assert_eq!(
        refused.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"errors": ["Unable to make changes as it would result in the deletion/modification of an already approved and posted contract period"]})
    );
    assert_eq!(
        sandbox.units_on(41001, jiff::civil::date(2026, 11, 15)),
        Some(3)
    );
    // The first open day is accepted; the posted November's row shows when it was posted.
    let accepted = post("2026-12-01").await.unwrap();
    assert_eq!(accepted.status(), 200);
    assert_eq!(
        sandbox.units_on(41001, jiff::civil::date(2026, 12, 1)),
        Some(4)
    );
    let november = sandbox
        .unit_periods(41001)
        .into_iter()
        .find(|p| p.start_date == jiff::civil::date(2026, 11, 1))
        .unwrap();
    let row = sandbox.record("ContractServiceUnits", november.id).unwrap();
    assert_eq!(
        row["approveAndPostDate"],
        serde_json::json!("2026-11-01T15:30:00.000Z")
    );
}
