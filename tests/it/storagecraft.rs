//! `source.storagecraft`: the guide's story counted month by month from the portal's Billing
//! Detail and cloud usage reports, the 14-day billing rule at its boundaries, and every error.

use std::path::{Path, PathBuf};

use jiff::civil::Date;
use serde_json::json;
use unitsync::config::{BillingDetailColumns, BillingMonth, SourceSettings, StorageCraftSource};
use unitsync::plan::{UnitKind, UsageRecord};
use unitsync::source::{
    StorageCraftUsageSource, UsageSource, fetch_usage, from_settings, parse_billing_detail,
};

/// The sample billing repo, whose reports follow the guide's story.
fn story_repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/samples/valid/storagecraft")
}

fn count(account: &str, license_type: &str, units: i64) -> UsageRecord {
    UsageRecord {
        account: account.into(),
        license_type: license_type.into(),
        units: unitsync::quantity::Quantity::from_units(units),
        kind: UnitKind::Count,
    }
}

fn gb(account: &str, license_type: &str, units: &str) -> UsageRecord {
    UsageRecord {
        account: account.into(),
        license_type: license_type.into(),
        units: units.parse().unwrap(),
        kind: UnitKind::Decimal,
    }
}

fn settings(value: serde_json::Value) -> SourceSettings {
    serde_json::from_value(json!({ "storagecraft": value })).expect("valid source settings")
}

fn story(month: &str) -> SourceSettings {
    settings(json!({
        "billing_detail": "reports/billing-detail.csv",
        "cloud_usage": "reports/cloud-usage.csv",
        "month": month,
    }))
}

/// The story's records for a month: Bob's desktops, Angry Fox's servers and SBS, DigitalTorch's
/// virtual servers, Slate Gravel's (unmapped) desktops, then cloud usage.
#[allow(clippy::too_many_arguments)]
fn expected(
    bob: i64,
    fox_server: i64,
    fox_sbs: i64,
    torch_virtual: i64,
    slate: i64,
    torch_cloud: &str,
    fox_cloud: &str,
) -> Vec<UsageRecord> {
    vec![
        count("Bob's Dentistry", "ShadowProtect Desktop", bob),
        count("Angry Fox Co", "ShadowProtect Server", fox_server),
        count("Angry Fox Co", "ShadowProtect SBS", fox_sbs),
        count("DigitalTorch Inc", "ShadowProtect Virtual", torch_virtual),
        count("Slate Gravel", "ShadowProtect Desktop", slate),
        gb("DigitalTorch Inc", "Cloud Premium GB", torch_cloud),
        gb("Angry Fox Co", "Cloud Basic GB", fox_cloud),
    ]
}

#[tokio::test]
async fn bobs_fourth_desktop_is_billed_from_the_month_after_it_was_activated() {
    let root = story_repo();
    // October (31 days): Bob's fourth key, activated on the 20th, was active 12 days: 3 billed.
    // DigitalTorch's second virtual key was active 10–19 October only: not billed.
    assert_eq!(
        fetch_usage(&story("2026-10"), &root).await.unwrap(),
        expected(3, 2, 1, 1, 1, "120.25", "0")
    );
    // November (30 days): all four of Bob's keys. Angry Fox's key deactivated on the 15th was
    // active 14 days (not billed); the Warehouse key activated on the 16th, 15 days (billed); the
    // key listed for both sites counts once. DigitalTorch's two cloud rows add up to 135.5 GB.
    assert_eq!(
        fetch_usage(&story("2026-11"), &root).await.unwrap(),
        expected(4, 2, 1, 1, 1, "135.5", "12")
    );
    // September: Slate Gravel's key, activated on the 28th, was active 3 days; its other key was
    // never activated. The pair still yields a record of 0.
    assert_eq!(
        fetch_usage(&story("2026-09"), &root).await.unwrap(),
        expected(3, 2, 1, 1, 0, "0", "0")
    );
    // December: Angry Fox's deactivated key is gone for good.
    assert_eq!(
        fetch_usage(&story("2026-12"), &root).await.unwrap(),
        expected(4, 2, 1, 1, 1, "0", "0")
    );
}

/// Without `with_today`, as the binary builds it, the month follows unitsync's one clock, which
/// the test binary pins (`UNITSYNC_NOW`), so this holds on any pinned date, a year's turn included.
#[test]
fn the_configured_source_takes_today_from_the_pinned_clock() {
    let today = crate::support::today();
    let previous = today.first_of_month() - jiff::Span::new().months(1);
    let describe = |month: &str| {
        from_settings(
            &settings(json!({"billing_detail": "b.csv", "month": month})),
            Path::new("/repo"),
        )
        .describe()
    };
    assert_eq!(
        describe("previous"),
        format!(
            "StorageCraft Billing Detail report /repo/b.csv for {}",
            previous.strftime("%Y-%m")
        )
    );
    assert_eq!(
        describe("current"),
        format!(
            "StorageCraft Billing Detail report /repo/b.csv for {}",
            today.strftime("%Y-%m")
        )
    );
}

#[tokio::test]
async fn previous_and_current_months_follow_today() {
    let root = story_repo();
    let source = |month: &str, today: &str| {
        let SourceSettings::Storagecraft(s) = story(month) else {
            unreachable!()
        };
        StorageCraftUsageSource::new(s, &root).with_today(today.parse::<Date>().unwrap())
    };
    let run = |month: &str, today: &str| {
        let source = source(month, today);
        async move { (source.billing_month(), source.fetch().await.unwrap()) }
    };
    assert_eq!(
        run("previous", "2026-11-25").await,
        ((2026, 10), expected(3, 2, 1, 1, 1, "120.25", "0"))
    );
    assert_eq!(run("previous", "2026-12-01").await.0, (2026, 11));
    assert_eq!(
        run("current", "2026-11-25").await,
        ((2026, 11), expected(4, 2, 1, 1, 1, "135.5", "12"))
    );
    assert_eq!(run("previous", "2027-01-10").await.0, (2026, 12));
    assert_eq!(run("current", "2027-01-10").await.0, (2027, 1));
    assert_eq!(run("2026-09", "2027-01-10").await.0, (2026, 9));
    assert_eq!(
        source("2026-11", "2027-01-10").describe(),
        format!(
            "StorageCraft Billing Detail report {} and cloud usage report {} for 2026-11",
            root.join("reports/billing-detail.csv").display(),
            root.join("reports/cloud-usage.csv").display()
        )
    );
    assert_eq!(
        from_settings(
            &settings(json!({"billing_detail": "b.csv", "month": "2026-02"})),
            Path::new("/repo")
        )
        .describe(),
        "StorageCraft Billing Detail report /repo/b.csv for 2026-02"
    );
}

#[test]
fn settings_have_documented_defaults() {
    let SourceSettings::Storagecraft(s) = settings(json!({"billing_detail": "billing.csv"})) else {
        unreachable!()
    };
    assert_eq!(
        s,
        StorageCraftSource {
            billing_detail: "billing.csv".into(),
            cloud_usage: None,
            month: BillingMonth::Previous,
            columns: BillingDetailColumns::default(),
            cloud_columns: Default::default(),
            cloud_license_type: None,
        }
    );
    assert_eq!(
        (
            s.columns.account.as_str(),
            s.columns.site.as_str(),
            s.columns.product_key.as_str(),
            s.columns.key_type.as_str(),
            s.columns.activated.as_str(),
            s.columns.deactivated.as_str(),
        ),
        (
            "Account",
            "Site",
            "Product Key",
            "Key Type",
            "Activation Date",
            "Deactivation Date"
        )
    );
    assert_eq!(
        (
            s.cloud_columns.account.as_str(),
            s.cloud_columns.plan.as_str(),
            s.cloud_columns.usage_gb.as_str(),
            s.cloud_columns.date.as_str(),
        ),
        ("Account", "Plan", "Usage (GB)", "Date")
    );
    for (text, month) in [
        ("previous", BillingMonth::Previous),
        ("current", BillingMonth::Current),
        (
            "2026-02",
            BillingMonth::Month {
                year: 2026,
                month: 2,
            },
        ),
    ] {
        assert_eq!(text.parse::<BillingMonth>(), Ok(month));
        assert_eq!(month.to_string(), text);
        assert_eq!(serde_json::to_value(month).unwrap(), json!(text));
    }
    for bad in [
        "2026-13", "2026-00", "2026-1", "26-01", "last", "2026/11", "",
    ] {
        let err = serde_json::from_value::<SourceSettings>(
            json!({"storagecraft": {"billing_detail": "b.csv", "month": bad}}),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            format!(
                "{bad:?} is not a billing month; write previous, current or a month such as 2026-11"
            )
        );
    }
}

/// Counts a Billing Detail report with the default columns.
fn billed(report: &str, year: i16, month: i8) -> Result<Vec<UsageRecord>, String> {
    parse_billing_detail(
        report.as_bytes(),
        Path::new("billing.csv"),
        &BillingDetailColumns::default(),
        year,
        month,
    )
    .map_err(|e| e.to_string())
}

const HEADER: &str = "Account,Site,Product Key,Key Type,Activation Date,Deactivation Date\n";

/// One key per account, so each account's count says whether that key is billed.
fn billed_per_key(rows: &[(&str, &str, &str)], year: i16, month: i8) -> Vec<(String, i64)> {
    let mut report = HEADER.to_string();
    for (i, (account, on, off)) in rows.iter().enumerate() {
        report.push_str(&format!(
            "\"{account}\",HQ,KEY-{i},ShadowProtect Desktop,{on},{off}\n"
        ));
    }
    billed(&report, year, month)
        .unwrap()
        .into_iter()
        .map(|r| (r.account, r.units.as_whole().unwrap()))
        .collect()
}

#[test]
fn a_key_is_billed_when_active_more_than_14_days_of_the_month() {
    let rows = [
        ("before the month, still active", "2025-06-01", ""),
        ("17th of 31 days: 15 days", "2026-10-17", ""),
        ("18th of 31 days: 14 days", "2026-10-18", ""),
        (
            "deactivated on the 15th: 14 days",
            "2025-06-01",
            "2026-10-15",
        ),
        (
            "deactivated on the 16th: 15 days",
            "2025-06-01",
            "2026-10-16",
        ),
        ("1st to 16th: 15 days", "2026-10-01", "2026-10-16"),
        ("1st to 15th: 14 days", "2026-10-01", "2026-10-15"),
        ("same day: 0 days", "2026-10-05", "2026-10-05"),
        ("after the month", "2026-11-01", ""),
        ("ended on the 1st", "2026-09-01", "2026-10-01"),
        ("ended before the month", "2026-01-01", "2026-09-30"),
        ("never activated", "", ""),
        (
            "ends after the month",
            "10/3/2026 11:59:59 PM",
            "1/2/2027 1:00:00 AM",
        ),
    ];
    let expected: Vec<(String, i64)> = [1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1]
        .iter()
        .zip(rows)
        .map(|(n, (account, ..))| (account.to_string(), *n))
        .collect();
    assert_eq!(billed_per_key(&rows, 2026, 10), expected);

    // November has 30 days: the 16th gives 15 days, the 17th 14.
    assert_eq!(
        billed_per_key(
            &[("16th", "11/16/2026", ""), ("17th", "11/17/2026", "")],
            2026,
            11
        ),
        [("16th".to_string(), 1), ("17th".to_string(), 0)]
    );
}

#[test]
fn february_has_fewer_days_to_be_billed_in() {
    let rows = [("14th", "2/14/2026", ""), ("15th", "2/15/2026", "")];
    assert_eq!(
        billed_per_key(&rows, 2026, 2),
        [("14th".to_string(), 1), ("15th".to_string(), 0)]
    );
    // 2028 is a leap year: the 15th of 29 days is 15 days.
    let rows = [("15th", "2/15/2028", ""), ("16th", "2/16/2028", "")];
    assert_eq!(
        billed_per_key(&rows, 2028, 2),
        [("15th".to_string(), 1), ("16th".to_string(), 0)]
    );
}

#[test]
fn a_key_listed_twice_is_one_key_active_on_the_days_of_both_rows() {
    let report = format!(
        "{HEADER}\
         Angry Fox Co,Headquarters,SPSV-1,ShadowProtect Server,2026-01-05,\n\
         Angry Fox Co,Warehouse,spsv-1,ShadowProtect Server,2026-01-05,\n\
         Angry Fox Co,Headquarters,SPSV-2,ShadowProtect Server,2026-01-05,2026-11-08\n\
         Angry Fox Co,Warehouse,SPSV-2,ShadowProtect Server,2026-11-20,\n\
         Angry Fox Co,Headquarters,SPSV-3,ShadowProtect Server,2026-01-05,2026-11-08\n\
         Angry Fox Co,Warehouse,SPSV-3,ShadowProtect Server,2026-11-24,\n"
    );
    // SPSV-1: once (keys compare without case). SPSV-2: 1–7 and 20–30 November, 18 days: billed.
    // SPSV-3: 1–7 and 24–30, 14 days: not billed.
    assert_eq!(
        billed(&report, 2026, 11).unwrap(),
        [count("Angry Fox Co", "ShadowProtect Server", 2)]
    );
}

#[test]
fn sites_add_up_into_their_account_and_key_types_stay_apart() {
    let report = format!(
        "{HEADER}\
         Bob's Dentistry,Main Office,K1,ShadowProtect Desktop,2026-01-01,\n\
         Bob's Dentistry,Branch,K2,ShadowProtect Desktop,2026-01-01,\n\
         Bob's Dentistry,Branch,K3,ShadowProtect Server,2026-01-01,\n\
         Bob's Dentistry,Main Office,K4,ShadowProtect Desktop,2026-01-01,\n"
    );
    assert_eq!(
        billed(&report, 2026, 11).unwrap(),
        [
            count("Bob's Dentistry", "ShadowProtect Desktop", 3),
            count("Bob's Dentistry", "ShadowProtect Server", 1),
        ]
    );
    assert_eq!(billed(HEADER, 2026, 11).unwrap(), []);
}

#[tokio::test]
async fn columns_and_a_fixed_cloud_licence_type_are_configurable() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("keys.csv"),
        "\u{feff}Customer,Serial,Edition,Activated On,Deactivated On\r\n\
         DigitalTorch Inc,V-1,ShadowProtect Virtual,2026-08-01T09:00:00Z,\r\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("cloud.csv"),
        "Customer,GB Used\nDigitalTorch Inc,100.25\n\nDigitalTorch Inc,35.25\n",
    )
    .unwrap();
    let s = settings(json!({
        "billing_detail": "keys.csv",
        "cloud_usage": "cloud.csv",
        "month": "2026-11",
        "columns": {
            "account": "Customer",
            "product_key": "Serial",
            "key_type": "Edition",
            "activated": "Activated On",
            "deactivated": "Deactivated On",
        },
        "cloud_columns": { "account": "Customer", "usage_gb": "GB Used" },
        "cloud_license_type": "Cloud Premium GB",
    }));
    assert_eq!(
        fetch_usage(&s, dir.path()).await.unwrap(),
        [
            count("DigitalTorch Inc", "ShadowProtect Virtual", 1),
            gb("DigitalTorch Inc", "Cloud Premium GB", "135.5"),
        ]
    );
}

/// The error for a Billing Detail report (and an optional cloud usage report) in November 2026.
async fn error(billing: &str, cloud: Option<&str>, extra: serde_json::Value) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("billing.csv"), billing).unwrap();
    let mut value = json!({"billing_detail": "billing.csv", "month": "2026-11"});
    if let Some(cloud) = cloud {
        std::fs::write(dir.path().join("cloud.csv"), cloud).unwrap();
        value["cloud_usage"] = json!("cloud.csv");
    }
    for (k, v) in extra.as_object().unwrap() {
        value[k] = v.clone();
    }
    let err = fetch_usage(&settings(value), dir.path()).await.unwrap_err();
    err.to_string()
        .replace(&format!("{}/", dir.path().display()), "")
}

const GOOD_ROW: &str = "Bob's Dentistry,Main Office,K1,ShadowProtect Desktop,2026-01-01,\n";

#[tokio::test]
async fn every_billing_detail_error_names_the_file_and_line() {
    let none = json!({});
    let cases: Vec<(String, &str)> = vec![
        (
            format!(
                "{HEADER}{GOOD_ROW}Bob's Dentistry,Main Office,K2,ShadowProtect Desktop,11/31/2026,\n"
            ),
            "billing.csv:3: activation date \"11/31/2026\" (column \"Activation Date\") is not a date; write 2026-11-03 or 11/3/2026 (month/day/year), optionally followed by a time such as 9:13:31 AM",
        ),
        (
            format!(
                "{HEADER}\n{GOOD_ROW}\r\nBob's Dentistry,Main Office,K2,ShadowProtect Desktop,2026-01-01,03.11.2026\n"
            ),
            "billing.csv:5: deactivation date \"03.11.2026\" (column \"Deactivation Date\") is not a date; write 2026-11-03 or 11/3/2026 (month/day/year), optionally followed by a time such as 9:13:31 AM",
        ),
        (
            format!(
                "{HEADER}Bob's Dentistry,Main Office,K2,ShadowProtect Desktop,11/5/2026 9:00:00 AM,11/4/2026 5:00:00 PM\n"
            ),
            "billing.csv:2: product key \"K2\" is deactivated on 2026-11-04 (column \"Deactivation Date\"), before it was activated on 2026-11-05 (column \"Activation Date\"); fix the dates in the report",
        ),
        (
            format!("{HEADER}Bob's Dentistry,Main Office,K2,ShadowProtect Desktop,,2026-11-04\n"),
            "billing.csv:2: product key \"K2\" has a deactivation date (2026-11-04) but no activation date (column \"Activation Date\"); fix the dates in the report",
        ),
        (
            format!("{HEADER}Bob's Dentistry,Main Office, ,ShadowProtect Desktop,2026-01-01,\n"),
            "billing.csv:2: no product key: the column \"Product Key\" is empty; every row of the Billing Detail report needs one",
        ),
        (
            format!("{HEADER}{GOOD_ROW},Main Office,K2,ShadowProtect Desktop,2026-01-01,\n"),
            "billing.csv:3: no account: the column \"Account\" is empty; every row of the Billing Detail report needs one",
        ),
        (
            format!("{HEADER}Bob's Dentistry,Main Office,K2,,2026-01-01,\n"),
            "billing.csv:2: no key type: the column \"Key Type\" is empty; every row of the Billing Detail report needs one",
        ),
        (
            format!("{HEADER}{GOOD_ROW}Slate Gravel,Quarry,k1,ShadowProtect Desktop,2026-01-01,\n"),
            "billing.csv:3: product key \"k1\" is listed for \"Slate Gravel\" (ShadowProtect Desktop) here and for \"Bob's Dentistry\" (ShadowProtect Desktop) on line 2; a key belongs to one account and key type, so fix the report",
        ),
        (
            format!(
                "{HEADER}{GOOD_ROW}Bob's Dentistry,Main Office,K1,ShadowProtect Server,2026-01-01,\n"
            ),
            "billing.csv:3: product key \"K1\" is listed for \"Bob's Dentistry\" (ShadowProtect Server) here and for \"Bob's Dentistry\" (ShadowProtect Desktop) on line 2; a key belongs to one account and key type, so fix the report",
        ),
        (
            format!("{HEADER}Bob's Dentistry,Main Office,K2,ShadowProtect Desktop,2026-01-01\n"),
            "billing.csv:2: the row has 5 cells but the header has 6; quote cells that contain the delimiter",
        ),
        (
            format!("{HEADER}Bob's Dentistry,\"Main Office,K2,ShadowProtect Desktop,2026-01-01,\n"),
            "billing.csv:2: the row has 2 cells but the header has 6; quote cells that contain the delimiter",
        ),
        (
            "Account,Site,Product Key,Key Type,Activated,Deactivation Date\n".to_string(),
            "billing.csv: no column named \"Activation Date\" for the activation date; the header has \"Account\", \"Site\", \"Product Key\", \"Key Type\", \"Activated\", \"Deactivation Date\"; rename the column or set source.storagecraft.columns.activated",
        ),
        (
            "Account,Product Key,Key Type,Activation Date\n".to_string(),
            "billing.csv: no column named \"Deactivation Date\" for the deactivation date; the header has \"Account\", \"Product Key\", \"Key Type\", \"Activation Date\"; rename the column or set source.storagecraft.columns.deactivated",
        ),
        (
            "\n\nAccount,Product Key,Key Type,Activation Date,Deactivation Date,Product Key\n"
                .to_string(),
            "billing.csv:3: the header names column \"Product Key\" 2 times; rename the copies so each column is unique",
        ),
        (
            "\n \n".to_string(),
            "billing.csv: the file is empty; it needs a header row naming the columns (\"Account\", \"Product Key\", \"Key Type\", \"Activation Date\", \"Deactivation Date\")",
        ),
    ];
    for (report, message) in cases {
        assert_eq!(
            error(&report, None, none.clone()).await,
            message,
            "{report}"
        );
    }
    // Bytes that are not UTF-8.
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = format!("{HEADER}{GOOD_ROW}").into_bytes();
    bytes.extend_from_slice(b"Bob\xff,HQ,K9,ShadowProtect Desktop,2026-01-01,\n");
    std::fs::write(dir.path().join("billing.csv"), bytes).unwrap();
    let err = fetch_usage(
        &settings(json!({"billing_detail": "billing.csv", "month": "2026-11"})),
        dir.path(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert_eq!(
        err.replace(&format!("{}/", dir.path().display()), ""),
        "billing.csv:3: the row is not valid UTF-8; save the file as UTF-8 (\"CSV UTF-8\" in Excel)"
    );

    // A site column named explicitly must exist; the default one may be absent.
    assert_eq!(
        error(
            &format!("{HEADER}{GOOD_ROW}"),
            None,
            json!({"columns": {"site": "Location"}})
        )
        .await,
        "billing.csv: no column named \"Location\" for the site; the header has \"Account\", \"Site\", \"Product Key\", \"Key Type\", \"Activation Date\", \"Deactivation Date\"; rename the column or set source.storagecraft.columns.site"
    );
    assert_eq!(
        error(
            &format!("{HEADER}{GOOD_ROW}"),
            None,
            json!({"columns": {"key_type": " "}})
        )
        .await,
        "source.storagecraft.columns.key_type: is empty; name the column that holds it"
    );
}

#[tokio::test]
async fn every_cloud_usage_error_names_the_file_and_line() {
    let billing = format!("{HEADER}{GOOD_ROW}");
    let none = json!({});
    let cases = [
        (
            "Account,Plan,Usage (GB)\nDigitalTorch Inc,Cloud Premium GB,-3.5\n",
            none.clone(),
            "cloud.csv:2: usage -3.5 GB (column \"Usage (GB)\") is negative; usage cannot be below zero, so fix the report",
        ),
        (
            "Account,Plan,Usage (GB)\nDigitalTorch Inc,Cloud Premium GB,\"1,024\"\n",
            none.clone(),
            "cloud.csv:2: usage \"1,024\" (column \"Usage (GB)\") is not a number; write plain digits such as 135.5, without thousands separators or unit names",
        ),
        (
            "Account,Plan,Usage (GB)\nDigitalTorch Inc,Cloud Premium GB,135.5 GB\n",
            none.clone(),
            "cloud.csv:2: usage \"135.5 GB\" (column \"Usage (GB)\") is not a number; write plain digits such as 135.5, without thousands separators or unit names",
        ),
        (
            "Account,Plan,Usage (GB)\nDigitalTorch Inc,Cloud Premium GB,NaN\n",
            none.clone(),
            "cloud.csv:2: usage \"NaN\" (column \"Usage (GB)\") is not a finite number; the report must hold real usage",
        ),
        (
            "Account,Plan,Usage (GB)\n\nDigitalTorch Inc,,1\n",
            none.clone(),
            "cloud.csv:3: no plan: the column \"Plan\" is empty; every row of the cloud usage report needs one",
        ),
        (
            "Account,Plan,Usage (GB)\nDigitalTorch Inc,Cloud Premium GB,\n",
            none.clone(),
            "cloud.csv:2: no usage: the column \"Usage (GB)\" is empty; every row of the cloud usage report needs one",
        ),
        (
            "Account,Plan,Usage (GB),Date\nDigitalTorch Inc,Cloud Premium GB,1,\n",
            none.clone(),
            "cloud.csv:2: no date: the column \"Date\" is empty; every row of the cloud usage report needs one when the report has that column",
        ),
        (
            "Account,Plan,Usage (GB),Date\nDigitalTorch Inc,Cloud Premium GB,1,November 2026\n",
            none.clone(),
            "cloud.csv:2: date \"November 2026\" (column \"Date\") is not a date; write 2026-11-03 or 11/3/2026 (month/day/year), optionally followed by a time such as 9:13:31 AM",
        ),
        (
            "Account,Plan,Usage\n",
            none.clone(),
            "cloud.csv: no column named \"Usage (GB)\" for the usage in GB; the header has \"Account\", \"Plan\", \"Usage\"; rename the column or set source.storagecraft.cloud_columns.usage_gb",
        ),
        (
            "Account,Usage (GB)\n",
            none.clone(),
            "cloud.csv: no column named \"Plan\" for the plan; the header has \"Account\", \"Usage (GB)\"; rename the column or set source.storagecraft.cloud_columns.plan",
        ),
        (
            "Account,Usage (GB)\n",
            json!({"cloud_columns": {"date": "Day"}, "cloud_license_type": "Cloud Premium GB"}),
            "cloud.csv: no column named \"Day\" for the date; the header has \"Account\", \"Usage (GB)\"; rename the column or set source.storagecraft.cloud_columns.date",
        ),
        (
            "",
            json!({"cloud_license_type": "Cloud Premium GB"}),
            "cloud.csv: the file is empty; it needs a header row naming the columns (\"Account\", \"Usage (GB)\")",
        ),
        (
            "Account,Usage (GB)\n",
            json!({"cloud_license_type": "  "}),
            "source.storagecraft.cloud_license_type: is empty; name the licence type, such as Cloud Premium GB, or remove it to read the plan column",
        ),
    ];
    for (cloud, extra, message) in cases {
        assert_eq!(
            error(&billing, Some(cloud), extra).await,
            message,
            "{cloud}"
        );
    }
}

#[tokio::test]
async fn missing_reports_say_which_setting_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let err = fetch_usage(
        &settings(json!({"billing_detail": "nope.csv", "month": "2026-11"})),
        dir.path(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with(&format!(
            "cannot read {}: ",
            dir.path().join("nope.csv").display()
        )),
        "{err}"
    );
    assert!(
        err.ends_with("; check source.storagecraft.billing_detail in unitsync.yaml"),
        "{err}"
    );
    std::fs::write(dir.path().join("billing.csv"), HEADER).unwrap();
    let err = fetch_usage(
        &settings(json!({"billing_detail": "billing.csv", "cloud_usage": "cloud.csv", "month": "2026-11"})),
        dir.path(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with(&format!(
            "cannot read {}: ",
            dir.path().join("cloud.csv").display()
        )),
        "{err}"
    );
    assert!(
        err.ends_with("; check source.storagecraft.cloud_usage in unitsync.yaml"),
        "{err}"
    );
}
