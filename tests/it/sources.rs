//! Vendor usage sources: exact records from each source, and every bad input as a clear error that
//! names the file and row (or record, URL, program).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use serde_json::json;
use unitsync::config::SourceSettings;
use unitsync::plan::{UnitKind, UsageRecord};
use unitsync::source::{
    EnvLookup, HttpUsageSource, SourceError, UsageSource, fetch_usage, from_settings,
};

fn rec(account: &str, license_type: &str, units: &str, kind: UnitKind) -> UsageRecord {
    UsageRecord {
        account: account.into(),
        license_type: license_type.into(),
        units: units.parse().unwrap(),
        kind,
    }
}

fn settings(value: serde_json::Value) -> SourceSettings {
    serde_json::from_value(value).expect("valid source settings")
}

fn repo_with(file: &str, contents: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(file), contents).unwrap();
    dir
}

async fn csv_error(contents: &str) -> (String, String) {
    let dir = repo_with("usage.csv", contents);
    let err = fetch_usage(&settings(json!({"csv": {"path": "usage.csv"}})), dir.path())
        .await
        .unwrap_err();
    let path = dir.path().join("usage.csv").display().to_string();
    (path, err.to_string())
}

// ---------------------------------------------------------------------------------------------
// CSV

#[tokio::test]
async fn csv_reads_exact_records_in_input_order_without_summing() {
    let dir = repo_with(
        "usage.csv",
        "\u{feff}Customer;Product;Qty;Measure;Notes\n\
         \n\
         Bob's Dentistry ; ShadowProtect Desktop ; 3 ; ;\n\
         DigitalTorch Inc;Cloud Premium;135.5;GB;monthly\n\
         ;;;;\n\
         Bob's Dentistry;ShadowProtect Desktop;1;Seats;new desktop\n\
         Acme;Backup Hours;0.25;hours;\n",
    );
    let settings = settings(json!({"csv": {
        "path": "usage.csv",
        "delimiter": ";",
        "columns": {"account": "Customer", "license_type": "Product", "units": "Qty", "unit": "Measure"}
    }}));
    let records = fetch_usage(&settings, dir.path()).await.unwrap();
    assert_eq!(
        records,
        vec![
            rec(
                "Bob's Dentistry",
                "ShadowProtect Desktop",
                "3",
                UnitKind::Count
            ),
            rec(
                "DigitalTorch Inc",
                "Cloud Premium",
                "135.5",
                UnitKind::Decimal
            ),
            rec(
                "Bob's Dentistry",
                "ShadowProtect Desktop",
                "1",
                UnitKind::Count
            ),
            rec("Acme", "Backup Hours", "0.25", UnitKind::Decimal),
        ]
    );
}

#[tokio::test]
async fn csv_without_unit_column_reads_counts() {
    let dir = repo_with(
        "usage.csv",
        "account,license_type,units\r\nBob's Dentistry,ShadowProtect Desktop,4\r\n\"Smith, Jones & Co\",ShadowProtect Server,\"2\"\r\n",
    );
    let records = fetch_usage(&settings(json!({"csv": {"path": "usage.csv"}})), dir.path())
        .await
        .unwrap();
    assert_eq!(
        records,
        vec![
            rec(
                "Bob's Dentistry",
                "ShadowProtect Desktop",
                "4",
                UnitKind::Count
            ),
            rec(
                "Smith, Jones & Co",
                "ShadowProtect Server",
                "2",
                UnitKind::Count
            ),
        ]
    );
}

#[tokio::test]
async fn csv_missing_column_lists_the_columns_found() {
    let (path, err) = csv_error("Account,License,Units\nBob,SP,4\n").await;
    assert_eq!(
        err,
        format!(
            "{path}: no column named \"license_type\" for the licence type; the header has \"Account\", \"License\", \"Units\"; rename the column or set source.csv.columns.license_type"
        )
    );
}

#[tokio::test]
async fn csv_empty_file_needs_a_header() {
    let (path, err) = csv_error("\u{feff}\n\n").await;
    assert_eq!(
        err,
        format!(
            "{path}: the file is empty; it needs a header row naming the columns (\"account\", \"license_type\", \"units\")"
        )
    );
}

#[tokio::test]
async fn csv_duplicate_column_is_an_error() {
    let (path, err) = csv_error("account,license_type,units,units\nBob,SP,4,5\n").await;
    assert_eq!(
        err,
        format!(
            "{path}:1: the header names column \"units\" 2 times; rename the copies so each column is unique"
        )
    );
}

#[tokio::test]
async fn csv_bad_rows_name_file_and_line() {
    let header = "account,license_type,units,unit\nGood,SP,1,\n\n";
    let cases: &[(&str, &str)] = &[
        (
            " ,SP,4,",
            "no account: the column \"account\" is empty or missing; every record needs one",
        ),
        (
            "Bob,  ,4,",
            "no licence type: the column \"license_type\" is empty or missing; every record needs one",
        ),
        (
            "Bob,SP,,",
            "no units: the column \"units\" is empty or missing; every record needs one",
        ),
        (
            "Bob,SP,-3,",
            "units -3 (column \"units\") is negative; a vendor cannot bill fewer than zero units, so fix the source data",
        ),
        (
            "Bob,SP,NaN,GB",
            "units \"NaN\" (column \"units\") is not a finite number; the vendor must report a real count",
        ),
        (
            "Bob,SP,inf,GB",
            "units \"inf\" (column \"units\") is not a finite number; the vendor must report a real count",
        ),
        (
            "Bob,SP,four,",
            "units \"four\" (column \"units\") is not a number; write plain digits such as 4 or 135.5, without thousands separators or unit names",
        ),
        (
            "Bob,SP,\"1,000\",",
            "units \"1,000\" (column \"units\") is not a number; write plain digits such as 4 or 135.5, without thousands separators or unit names",
        ),
        (
            "Bob,SP,2.5,",
            "2.5 units of a count; set the unit column (\"unit\") to e.g. GB if this is a measured quantity",
        ),
        (
            "Bob,SP,2.5,licences",
            "2.5 units of a count; set the unit column (\"unit\") to e.g. GB if this is a measured quantity",
        ),
        (
            "Bob, Inc,SP,2,",
            "the row has 5 cells but the header has 4; quote cells that contain the delimiter",
        ),
        (
            "Bob,SP,2",
            "the row has 3 cells but the header has 4; quote cells that contain the delimiter",
        ),
    ];
    for (row, problem) in cases {
        let (path, err) = csv_error(&format!("{header}{row}\nLater,SP,1,\n")).await;
        assert_eq!(err, format!("{path}:4: {problem}"), "row {row:?}");
    }
}

#[tokio::test]
async fn csv_not_utf8_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("usage.csv"),
        b"account,license_type,units\nCaf\xe9,SP,1\n",
    )
    .unwrap();
    let err = fetch_usage(&settings(json!({"csv": {"path": "usage.csv"}})), dir.path())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:2: the row is not valid UTF-8; save the file as UTF-8 (\"CSV UTF-8\" in Excel)",
            dir.path().join("usage.csv").display()
        )
    );
}

#[tokio::test]
async fn missing_file_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let err = fetch_usage(
        &settings(json!({"csv": {"path": "exports/usage.csv"}})),
        dir.path(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SourceError::ReadFile { .. }));
    assert!(
        err.to_string().starts_with(&format!(
            "cannot read {}: ",
            dir.path().join("exports/usage.csv").display()
        )),
        "{err}"
    );
    assert!(
        err.to_string()
            .ends_with("; check the source's `path` in unitsync.yaml")
    );
}

#[tokio::test]
async fn csv_bad_delimiter_setting() {
    let dir = repo_with("usage.csv", "account,license_type,units\n");
    let err = fetch_usage(
        &settings(json!({"csv": {"path": "usage.csv", "delimiter": "§"}})),
        dir.path(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "source.csv.delimiter: '§' cannot separate CSV fields; use a single ASCII character such as , ; or a tab"
    );
}

// ---------------------------------------------------------------------------------------------
// JSON file

#[tokio::test]
async fn json_file_reads_exact_records_from_nested_fields() {
    let doc = json!({
        "meta": {"month": "2026-11"},
        "data": {"items": [
            {"customer": {"name": "Bob's Dentistry"}, "sku": "ShadowProtect Desktop", "usage": {"qty": 4}},
            {"customer": {"name": "DigitalTorch Inc"}, "sku": "Cloud Premium", "usage": {"qty": "135.5", "unit": "GB"}},
            {"customer": {"name": 10042}, "sku": "ShadowProtect Server", "usage": {"qty": 2.0, "unit": null}},
            {"customer": {"name": "Bob's Dentistry"}, "sku": "ShadowProtect Desktop", "usage": {"qty": 0, "unit": "licenses"}}
        ]}
    });
    let dir = repo_with("usage.json", &doc.to_string());
    let settings = settings(json!({"json": {
        "path": "usage.json",
        "records": "/data/items",
        "fields": {"account": "/customer/name", "license_type": "sku", "units": "/usage/qty", "unit": "/usage/unit"}
    }}));
    let records = fetch_usage(&settings, dir.path()).await.unwrap();
    assert_eq!(
        records,
        vec![
            rec(
                "Bob's Dentistry",
                "ShadowProtect Desktop",
                "4",
                UnitKind::Count
            ),
            rec(
                "DigitalTorch Inc",
                "Cloud Premium",
                "135.5",
                UnitKind::Decimal
            ),
            rec("10042", "ShadowProtect Server", "2", UnitKind::Count),
            rec(
                "Bob's Dentistry",
                "ShadowProtect Desktop",
                "0",
                UnitKind::Count
            ),
        ]
    );
}

#[tokio::test]
async fn json_file_root_array_with_default_fields() {
    let dir = repo_with(
        "usage.json",
        r#"[{"account":" Bob's Dentistry ","license_type":"ShadowProtect Desktop","units":4,"unit":"count"}]"#,
    );
    let records = fetch_usage(
        &settings(json!({"json": {"path": "usage.json"}})),
        dir.path(),
    )
    .await
    .unwrap();
    assert_eq!(
        records,
        vec![rec(
            "Bob's Dentistry",
            "ShadowProtect Desktop",
            "4",
            UnitKind::Count
        )]
    );
}

async fn json_error(doc: &str, records: Option<&str>) -> (String, String) {
    let dir = repo_with("usage.json", doc);
    let mut s = json!({"json": {"path": "usage.json"}});
    if let Some(r) = records {
        s["json"]["records"] = json!(r);
    }
    let err = fetch_usage(&settings(s), dir.path()).await.unwrap_err();
    (
        dir.path().join("usage.json").display().to_string(),
        err.to_string(),
    )
}

#[tokio::test]
async fn json_bad_records_name_index_and_pointer() {
    let good = r#"{"account":"A","license_type":"L","units":1}"#;
    let cases: &[(&str, &str)] = &[
        (
            r#"{"license_type":"L","units":1}"#,
            "record at index 1 (/items/1/account): no account: the field \"account\" is empty or missing; every record needs one",
        ),
        (
            r#"{"account":"A","license_type":"","units":1}"#,
            "record at index 1 (/items/1/license_type): no licence type: the field \"license_type\" is empty or missing; every record needs one",
        ),
        (
            r#"{"account":"A","license_type":"L","units":null}"#,
            "record at index 1 (/items/1/units): no units: the field \"units\" is empty or missing; every record needs one",
        ),
        (
            r#"{"account":"A","license_type":"L","units":-1}"#,
            "record at index 1 (/items/1/units): units -1 (field \"units\") is negative; a vendor cannot bill fewer than zero units, so fix the source data",
        ),
        (
            r#"{"account":"A","license_type":"L","units":"NaN","unit":"GB"}"#,
            "record at index 1 (/items/1/units): units \"NaN\" (field \"units\") is not a finite number; the vendor must report a real count",
        ),
        (
            r#"{"account":"A","license_type":"L","units":"lots"}"#,
            "record at index 1 (/items/1/units): units \"lots\" (field \"units\") is not a number; write plain digits such as 4 or 135.5, without thousands separators or unit names",
        ),
        (
            r#"{"account":"A","license_type":"L","units":true}"#,
            "record at index 1 (/items/1/units): the units (field \"units\") must be a number or a numeric string, not a boolean",
        ),
        (
            r#"{"account":["A"],"license_type":"L","units":1}"#,
            "record at index 1 (/items/1/account): the account (field \"account\") must be a string, not an array",
        ),
        (
            r#"{"account":"A","license_type":"L","units":2.5,"unit":"Seats"}"#,
            "record at index 1 (/items/1/units): 2.5 units of a count; set the unit field (\"unit\") to e.g. GB if this is a measured quantity",
        ),
        (
            r#""A,L,1""#,
            "record at index 1 (/items/1): the record is a string, not an object with the usage fields",
        ),
    ];
    for (bad, problem) in cases {
        let doc = format!(r#"{{"items":[{good},{bad},{good}]}}"#);
        let (path, err) = json_error(&doc, Some("/items")).await;
        assert_eq!(err, format!("{path}: {problem}"), "record {bad}");
    }
}

#[tokio::test]
async fn json_document_shape_errors() {
    let (path, err) = json_error(r#"{"data":[]}"#, Some("/items")).await;
    assert_eq!(
        err,
        format!(
            "{path}: nothing at /items; set source.json.records to the JSON Pointer of the records array"
        )
    );
    let (path, err) = json_error(r#"{"items":{"a":1}}"#, None).await;
    assert_eq!(
        err,
        format!(
            "{path}: the document is an object, not an array of records; set source.json.records to the JSON Pointer of the records array"
        )
    );
    let (_, err) = json_error("[]", Some("items")).await;
    assert_eq!(
        err,
        "source.json.records: \"items\" is not a JSON Pointer; write it with a leading slash, such as \"/items\""
    );
    let (path, err) = json_error("[\n {\"account\": \"A\",}\n]", None).await;
    assert_eq!(
        err,
        format!("{path}:2:18: not valid JSON: trailing comma; fix the file there")
    );
    let (path, err) = json_error("  \n", None).await;
    assert_eq!(
        err,
        format!("{path}: the document is empty; it must hold a JSON array of usage records")
    );
}

// ---------------------------------------------------------------------------------------------
// HTTP

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<HeaderMap>>>);

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    format!("http://{addr}")
}

const SECRET: &str = "Bearer vendor-s3cr3t-9f8e7d";

fn env_with_secret() -> EnvLookup {
    Arc::new(|name| (name == "UNITSYNC_VENDOR_TOKEN").then(|| SECRET.to_string()))
}

fn http_settings(url: &str, extra: serde_json::Value) -> unitsync::config::HttpSource {
    let mut value = json!({
        "url": url,
        "auth_header": "Authorization",
        "auth_env": "UNITSYNC_VENDOR_TOKEN",
    });
    for (k, v) in extra.as_object().unwrap() {
        value[k] = v.clone();
    }
    serde_json::from_value(value).unwrap()
}

#[tokio::test]
async fn http_sends_the_credential_and_reads_exact_records() {
    let seen = Seen::default();
    let captured = seen.clone();
    let base = serve(Router::new().route(
        "/v1/usage",
        get(move |headers: HeaderMap| {
            let captured = captured.clone();
            async move {
                captured.0.lock().unwrap().push(headers);
                axum::Json(json!({"result": {"rows": [
                    {"tenant": "Bob's Dentistry", "plan": "ShadowProtect Desktop", "seats": 4},
                    {"tenant": "DigitalTorch Inc", "plan": "Cloud Premium", "seats": "135.5", "unit": "GB"}
                ]}}))
            }
        }),
    ))
    .await;
    let source = HttpUsageSource::new(http_settings(
        &format!("{base}/v1/usage?month=2026-11"),
        json!({"records": "/result/rows", "fields": {"account": "tenant", "license_type": "plan", "units": "seats"}, "timeout_seconds": 5}),
    ))
    .with_env(env_with_secret());
    assert_eq!(source.describe(), format!("HTTP GET {base}/v1/usage?…"));
    let records = source.fetch().await.unwrap();
    assert_eq!(
        records,
        vec![
            rec(
                "Bob's Dentistry",
                "ShadowProtect Desktop",
                "4",
                UnitKind::Count
            ),
            rec(
                "DigitalTorch Inc",
                "Cloud Premium",
                "135.5",
                UnitKind::Decimal
            ),
        ]
    );
    let requests = seen.0.lock().unwrap();
    assert_eq!(requests.len(), 1);
    let auth: Vec<_> = requests[0].get_all("authorization").iter().collect();
    assert_eq!(auth.len(), 1);
    assert_eq!(auth[0].to_str().unwrap(), SECRET);
    assert!(!format!("{source:?}").contains("s3cr3t"));
}

#[tokio::test]
async fn http_401_names_status_and_never_shows_the_secret() {
    let base = serve(Router::new().route(
        "/usage",
        get(|headers: HeaderMap| async move {
            // A careless server echoing the credential back.
            let sent = headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            let token = sent.trim_start_matches("Bearer ").to_string();
            (
                StatusCode::UNAUTHORIZED,
                format!("{{\"error\": \"invalid token\",\n \"token\": \"{token}\", \"header\": \"{sent}\"}}"),
            )
        }),
    ))
    .await;
    let source = HttpUsageSource::new(http_settings(&format!("{base}/usage"), json!({})))
        .with_env(env_with_secret());
    let err = source.fetch().await.unwrap_err();
    let display = err.to_string();
    let debug = format!("{err:?}");
    assert_eq!(
        display,
        format!(
            "GET {base}/usage returned 401 Unauthorized: {{\"error\": \"invalid token\", \"token\": \"[redacted]\", \"header\": \"[redacted]\"}}; check the credential in the auth_env variable and that auth_header names the header the vendor expects"
        )
    );
    for shown in [&display, &debug] {
        assert!(!shown.contains("vendor-s3cr3t-9f8e7d"), "{shown}");
    }
    assert!(matches!(err, SourceError::HttpStatus { .. }));
}

#[tokio::test]
async fn http_error_body_is_truncated() {
    let base = serve(Router::new().route(
        "/usage",
        get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "E".repeat(5000)) }),
    ))
    .await;
    let source = HttpUsageSource::new(http_settings(&format!("{base}/usage"), json!({})))
        .with_env(env_with_secret());
    let err = source.fetch().await.unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "GET {base}/usage returned 500 Internal Server Error: {}… (4800 more bytes); the vendor's service failed; try again later",
            "E".repeat(200)
        )
    );
}

#[tokio::test]
async fn http_missing_env_var_names_the_variable() {
    let s = settings(json!({"http": {
        "url": "https://vendor.example/usage?key=abc",
        "auth_header": "X-Api-Key",
        "auth_env": "UNITSYNC_TEST_SOURCES_SURELY_UNSET_TOKEN",
    }}));
    let err = fetch_usage(&s, Path::new(".")).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "environment variable UNITSYNC_TEST_SOURCES_SURELY_UNSET_TOKEN is not set; it must hold the value of the X-Api-Key header for https://vendor.example/usage?…"
    );
}

#[tokio::test]
async fn http_bad_json_and_bad_records_name_the_url() {
    let base = serve(
        Router::new()
            .route("/html", get(|| async { "<html>maintenance</html>" }))
            .route(
                "/neg",
                get(|| async {
                    axum::Json(json!([{"account": "A", "license_type": "L", "units": -4}]))
                }),
            ),
    )
    .await;
    let html = HttpUsageSource::new(http_settings(&format!("{base}/html?token=abc"), json!({})))
        .with_env(env_with_secret());
    assert_eq!(
        html.fetch().await.unwrap_err().to_string(),
        format!(
            "{base}/html?…:1:1: not valid JSON: expected value; the endpoint must answer with JSON; check source.http.url and its credential"
        )
    );
    let neg = HttpUsageSource::new(http_settings(&format!("{base}/neg"), json!({})))
        .with_env(env_with_secret());
    assert_eq!(
        neg.fetch().await.unwrap_err().to_string(),
        format!(
            "{base}/neg: record at index 0 (/0/units): units -4 (field \"units\") is negative; a vendor cannot bill fewer than zero units, so fix the source data"
        )
    );
}

#[tokio::test]
async fn http_rejects_credentials_in_the_url_and_reports_unreachable_hosts() {
    let source = HttpUsageSource::new(http_settings(
        "https://user:pw@vendor.example/usage",
        json!({}),
    ))
    .with_env(env_with_secret());
    let err = source.fetch().await.unwrap_err().to_string();
    assert_eq!(
        err,
        "source.http.url: contains a user name or password; remove it and pass the credential with auth_header and auth_env"
    );
    assert!(!err.contains("pw@"));

    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let source = HttpUsageSource::new(http_settings(
        &format!("http://{addr}/usage?key=zzz"),
        json!({}),
    ))
    .with_env(env_with_secret());
    let err = source.fetch().await.unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("GET http://{addr}/usage?… failed: ")),
        "{err}"
    );
    assert!(
        err.ends_with("; check source.http.url and the network"),
        "{err}"
    );
    assert!(!err.contains("zzz") && !err.contains("s3cr3t"), "{err}");
}

#[tokio::test]
async fn http_follows_same_origin_redirects_but_never_carries_the_credential_elsewhere() {
    let elsewhere = Seen::default();
    let captured = elsewhere.clone();
    let other = serve(Router::new().route(
        "/steal",
        get(move |headers: HeaderMap| {
            let captured = captured.clone();
            async move {
                captured.0.lock().unwrap().push(headers);
                axum::Json(json!([]))
            }
        }),
    ))
    .await;
    let target = format!("{other}/steal");
    let base = serve(
        Router::new()
            .route(
                "/away",
                get(move || {
                    let target = target.clone();
                    async move { axum::response::Redirect::temporary(&target) }
                }),
            )
            .route(
                "/old",
                get(|| async { axum::response::Redirect::permanent("/new") }),
            )
            .route(
                "/new",
                get(|headers: HeaderMap| async move {
                    let ok =
                        headers.get("authorization").map(|v| v.to_str().unwrap()) == Some(SECRET);
                    if ok {
                        (
                            StatusCode::OK,
                            r#"[{"account":"A","license_type":"L","units":3}]"#,
                        )
                    } else {
                        (StatusCode::UNAUTHORIZED, "no credential after redirect")
                    }
                }),
            ),
    )
    .await;

    let same = HttpUsageSource::new(http_settings(&format!("{base}/old"), json!({})))
        .with_env(env_with_secret());
    assert_eq!(
        same.fetch().await.unwrap(),
        vec![rec("A", "L", "3", UnitKind::Count)]
    );

    let away = HttpUsageSource::new(http_settings(&format!("{base}/away"), json!({})))
        .with_env(env_with_secret());
    let err = away.fetch().await.unwrap_err();
    assert!(err.is_external());
    assert_eq!(
        err.to_string(),
        format!(
            "GET {base}/away returned 307 Temporary Redirect; the endpoint redirects to another host; set source.http.url to the final address"
        )
    );
    assert!(elsewhere.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn http_auth_settings_must_come_in_pairs() {
    let s = settings(
        json!({"http": {"url": "https://vendor.example/usage", "auth_header": "X-Api-Key"}}),
    );
    let err = fetch_usage(&s, Path::new(".")).await.unwrap_err();
    assert!(!err.is_external());
    assert_eq!(
        err.to_string(),
        "source.http.auth_env: is missing; auth_header is set, so name the environment variable that holds its value"
    );
}

#[tokio::test]
async fn http_timeout() {
    let base = serve(Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            "[]"
        }),
    ))
    .await;
    let source = HttpUsageSource::new(http_settings(
        &format!("{base}/slow"),
        json!({"timeout_seconds": 1}),
    ))
    .with_env(env_with_secret());
    let started = Instant::now();
    let err = source.fetch().await.unwrap_err().to_string();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        err,
        format!(
            "GET {base}/slow failed: no complete response within 1 s; try again later or raise source.http.timeout_seconds"
        )
    );
}

// ---------------------------------------------------------------------------------------------
// Command

fn command(script: &str, timeout: Option<u32>) -> SourceSettings {
    let mut value = json!({"command": {"program": "sh", "args": ["-c", script]}});
    if let Some(t) = timeout {
        value["command"]["timeout_seconds"] = json!(t);
    }
    settings(value)
}

#[tokio::test]
async fn command_reads_exact_records_with_the_repo_as_working_directory() {
    let dir = repo_with(
        "vendor.json",
        r#"{"rows":[{"account":"Bob's Dentistry","license_type":"ShadowProtect Desktop","units":4},
                    {"account":"DigitalTorch Inc","license_type":"Cloud Premium","units":135.5,"unit":"GB"}]}"#,
    );
    let mut s = command("echo 'fetching…' >&2; cat vendor.json", None);
    if let SourceSettings::Command(c) = &mut s {
        c.records = Some("/rows".into());
    }
    let records = fetch_usage(&s, dir.path()).await.unwrap();
    assert_eq!(
        records,
        vec![
            rec(
                "Bob's Dentistry",
                "ShadowProtect Desktop",
                "4",
                UnitKind::Count
            ),
            rec(
                "DigitalTorch Inc",
                "Cloud Premium",
                "135.5",
                UnitKind::Decimal
            ),
        ]
    );
}

#[tokio::test]
async fn command_relative_program_path_is_in_the_repo() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("scripts")).unwrap();
    let script = dir.path().join("scripts/usage.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\necho '[{\"account\":\"A\",\"license_type\":\"L\",\"units\":\"7\"}]'\n",
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let s = settings(json!({"command": {"program": "scripts/usage.sh"}}));
    assert_eq!(
        from_settings(&s, dir.path()).describe(),
        "command `scripts/usage.sh`"
    );
    let records = fetch_usage(&s, dir.path()).await.unwrap();
    assert_eq!(records, vec![rec("A", "L", "7", UnitKind::Count)]);
}

#[tokio::test]
async fn command_failure_carries_exit_code_and_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let err = fetch_usage(
        &command(
            "echo partial; echo '  vendor API said: 403 Forbidden  ' >&2; exit 3",
            None,
        ),
        dir.path(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "`sh` failed (exit code 3): vendor API said: 403 Forbidden"
    );
    assert!(matches!(
        err,
        SourceError::CommandFailed { code: Some(3), .. }
    ));

    let err = fetch_usage(&command("exit 1", None), dir.path())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "`sh` failed (exit code 1); it printed nothing on stderr"
    );
}

#[tokio::test]
async fn command_long_stderr_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let err = fetch_usage(
        &command(
            "i=0; while [ $i -lt 300 ]; do printf 'xxxxxxxxxx' >&2; i=$((i+1)); done; exit 2",
            None,
        ),
        dir.path(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "`sh` failed (exit code 2): {}… (1000 more bytes)",
            "x".repeat(2000)
        )
    );
}

#[tokio::test]
async fn command_bad_json_names_the_program() {
    let dir = tempfile::tempdir().unwrap();
    let err = fetch_usage(&command("echo 'account,units'", None), dir.path())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "output of `sh`:1:1: not valid JSON: expected value; the program must print only JSON on stdout (messages belong on stderr)"
    );
    let err = fetch_usage(&command("true", None), dir.path())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "output of `sh`: the document is empty; it must hold a JSON array of usage records"
    );
    let err = fetch_usage(
        &command(
            r#"echo '[{"account":"A","license_type":"L","units":1.5}]'"#,
            None,
        ),
        dir.path(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "output of `sh`: record at index 0 (/0/units): 1.5 units of a count; set the unit field (\"unit\") to e.g. GB if this is a measured quantity"
    );
}

#[tokio::test]
async fn command_timeout_stops_the_program() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let err = fetch_usage(&command("sleep 30", Some(1)), dir.path())
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        err.to_string(),
        "`sh` did not finish within 1 s and was stopped; make it faster or raise source.command.timeout_seconds"
    );
}

#[tokio::test]
async fn command_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let err = fetch_usage(
        &settings(json!({"command": {"program": "unitsync-no-such-program"}})),
        dir.path(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("cannot run `unitsync-no-such-program`: "),
        "{err}"
    );
    assert!(
        err.ends_with("; install it or check source.command.program (a bare name is looked up on PATH, a path is relative to the billing repo)"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Dispatch

#[test]
fn describe_names_each_source() {
    let root = Path::new("/billing");
    assert_eq!(
        from_settings(&settings(json!({"csv": {"path": "usage.csv"}})), root).describe(),
        "CSV file /billing/usage.csv"
    );
    assert_eq!(
        from_settings(&settings(json!({"json": {"path": "usage.json"}})), root).describe(),
        "JSON file /billing/usage.json"
    );
    assert_eq!(
        from_settings(
            &settings(json!({"http": {"url": "https://u:p@vendor.example/usage?key=1"}})),
            root
        )
        .describe(),
        "HTTP GET https://vendor.example/usage?…"
    );
    assert_eq!(
        from_settings(
            &settings(json!({"command": {"program": "vendor-cli", "args": ["usage", "--json"]}})),
            root
        )
        .describe(),
        "command `vendor-cli usage --json`"
    );
}
