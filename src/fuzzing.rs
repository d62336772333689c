//! Entry points for fuzzing: each takes arbitrary bytes and runs them through the real parsers of
//! one family of inputs, in memory. Nothing here is API; it is public only so that the fuzz
//! targets in `fuzz/` and the corpus replay in `tests/it/fuzz_corpus.rs` can call it.
//!
//! Every entry point must return (never panic, never hang) whatever the bytes are. Where a
//! parser's output can be written back (a lock file, a history record, a saved plan), the entry
//! point also checks that writing and reading again gives the same value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::{
    BillingDetailColumns, CloudUsageColumns, FieldNames, LOCK_FILE, MAPPINGS_FILE, SETTINGS_FILE,
};

/// A fuzz target: its name (the directory of its corpus under `fuzz/corpus/`) and entry point.
pub type Target = (&'static str, fn(&[u8]));

/// Every fuzz target, by name.
pub const TARGETS: [Target; 4] = [
    ("billing_repo", billing_repo),
    ("usage_source", usage_source),
    ("psa_response", psa_response),
    ("sandbox_conditions", sandbox_conditions),
];

const CONNECTWISE_SETTINGS: &str = "psa:\n  connectwise:\n    site: na.myconnectwise.net\n    company: computech\nsource:\n  csv: { path: usage.csv }\nschedule:\n  timezone: America/Los_Angeles\n  refresh: daily at 02:00\n  sync: on-merge\n";

const AUTOTASK_SETTINGS: &str =
    "psa:\n  autotask:\n    effective: today\nsource:\n  csv: { path: usage.csv }\n";

const MAPPINGS: &str = "mappings:\n  - account: \"Bob's Dentistry\"\n    license_type: ShadowProtect Desktop\n    company: BobsDentistry\n    agreement: 1001\n    addition: SP-DESKTOP\n  - account: DigitalTorch Inc\n    license_type: Cloud Premium GB\n    company: { id: 250 }\n    agreement: 1003\n    addition: { id: 5003 }\n";

const LOCK: &str = "units:\n  bobs-dentistry/shadowprotect-desktop: 3\n  digitaltorch-inc/cloud-premium-gb: 135.5\n";

/// The billing repo's files and what unitsync writes next to them: `data` as `unitsync.yaml`,
/// as a mappings file (under a ConnectWise and an Autotask repo), as `units.lock.yaml`, as a
/// history record, as a saved plan (`apply --plan`) and as a schedule.
pub fn billing_repo(data: &[u8]) {
    let repo = |files: &[(&str, &[u8])]| {
        let files: BTreeMap<PathBuf, Vec<u8>> = files
            .iter()
            .map(|(path, text)| (PathBuf::from(path), text.to_vec()))
            .collect();
        crate::config::check_in_memory(&files)
    };
    let (settings, _) = repo(&[(SETTINGS_FILE, data), (MAPPINGS_FILE, MAPPINGS.as_bytes())]);
    if let Some(schedule) = settings.and_then(|r| r.settings.schedule) {
        schedules(&schedule.timezone, [schedule.refresh, schedule.sync]);
    }
    for psa in [CONNECTWISE_SETTINGS, AUTOTASK_SETTINGS] {
        repo(&[
            (SETTINGS_FILE, psa.as_bytes()),
            (MAPPINGS_FILE, data),
            (LOCK_FILE, LOCK.as_bytes()),
        ]);
    }
    repo(&[
        (SETTINGS_FILE, CONNECTWISE_SETTINGS.as_bytes()),
        ("mappings/a.yaml", MAPPINGS.as_bytes()),
        ("mappings/b.yaml", data),
    ]);
    let (lock, _) = repo(&[
        (SETTINGS_FILE, CONNECTWISE_SETTINGS.as_bytes()),
        (MAPPINGS_FILE, MAPPINGS.as_bytes()),
        (LOCK_FILE, data),
    ]);
    if let Some(repo) = lock {
        // The lock as `propose` writes it reads back the same.
        let text = crate::render::lock_text(&repo.lock);
        let files = BTreeMap::from([
            (PathBuf::from(SETTINGS_FILE), CONNECTWISE_SETTINGS.into()),
            (PathBuf::from(MAPPINGS_FILE), MAPPINGS.into()),
            (PathBuf::from(LOCK_FILE), text.clone().into_bytes()),
        ]);
        let (again, diagnostics) = crate::config::check_in_memory(&files);
        assert_eq!(
            again.map(|r| r.lock),
            Some(repo.lock),
            "the lock file as written does not read back:\n{text}\n{diagnostics:?}"
        );
    }

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("history/2026/11/2026-11-25T093000Z.yaml");
    if let Ok(record) = crate::history::parse_record(path, text) {
        let written = record.to_yaml();
        let again = crate::history::parse_record(path, &written);
        assert_eq!(
            again.as_ref().ok(),
            Some(&record),
            "the history record as written does not read back:\n{written}\n{again:?}"
        );
        let _ = crate::history::last_applied(&[(path.to_path_buf(), record)]);
    }
    if let Ok(plan) = crate::render::parse_json(text) {
        let written = crate::render::json(&plan);
        let again = crate::render::parse_json(&written);
        assert_eq!(
            again.as_ref().ok(),
            Some(&plan),
            "the plan as written does not read back:\n{written}\n{again:?}"
        );
        let _ = crate::render::markdown(&plan, &Default::default());
        let _ = crate::render::table(
            &plan,
            &crate::render::TableOptions {
                all: false,
                color: false,
                vocabulary: crate::config::PsaKind::Autotask.vocabulary(),
            },
        );
    }
    for line in text.lines().take(16) {
        schedules("UTC", [Some(line.to_string()), None]);
    }
}

/// Reads each schedule and asks when it is next and was last due.
fn schedules(timezone: &str, texts: [Option<String>; 2]) {
    let Ok(tz) = jiff::tz::TimeZone::get(timezone) else {
        return;
    };
    let now = jiff::Timestamp::from_second(1_795_600_000).expect("a valid instant");
    for text in texts.iter().flatten() {
        if let Ok(cadence) = crate::schedule::parse(text) {
            let _ = crate::schedule::next_occurrence(cadence, &tz, now);
            let _ = crate::schedule::previous_occurrence(cadence, &tz, now);
            let _ = crate::schedule::is_due(cadence, &tz, now, Some(now)).is_due();
        }
    }
}

/// Vendor usage: `data` as a CSV export (three delimiters), a JSON document (whole, and with
/// the records under `/records`), and as StorageCraft billing-detail and cloud-usage reports.
pub fn usage_source(data: &[u8]) {
    let fields = FieldNames::default();
    for delimiter in [b',', b';', b'\t'] {
        let _ = crate::source::parse_csv(data, Path::new("usage.csv"), &fields, delimiter);
    }
    for records in [None, Some("/records"), Some("/data/0/items")] {
        let _ = crate::source::parse_json_records(
            data,
            "usage.json",
            crate::source::JsonDocument::File,
            records,
            &fields,
        );
    }
    let path = Path::new("billing-detail.csv");
    for (year, month) in [(2026, 11), (2024, 2)] {
        let _ = crate::source::parse_billing_detail(
            data,
            path,
            &BillingDetailColumns::default(),
            year,
            month,
        );
        for license_type in [None, Some("Cloud Premium GB")] {
            let _ = crate::source::parse_cloud_usage(
                data,
                path,
                &CloudUsageColumns::default(),
                license_type,
                year,
                month,
            );
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        for line in text.lines().take(16) {
            let _ = crate::source::parse_report_date(line);
        }
    }
}

/// A PSA response body: `data` decoded as every ConnectWise and Autotask response unitsync
/// reads, turned into snapshot records, read for error messages and paging links.
pub fn psa_response(data: &[u8]) {
    crate::psa::connectwise::fuzz_response(data);
    crate::psa::autotask::fuzz_response(data);
}

/// A ConnectWise `conditions` text, as the sandbox servers parse and evaluate it, against a
/// sample addition.
pub fn sandbox_conditions(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(expr) = crate::sandbox::conditions::parse(text) else {
        return;
    };
    let record = serde_json::json!({
        "id": 5001,
        "product": {"id": 9, "identifier": "SP-DESKTOP", "name": null},
        "quantity": 3,
        "lessIncluded": 0.5,
        "description": "ShadowProtect Desktop",
        "cancelledDate": null,
        "effectiveDate": "2026-11-01T00:00:00Z",
        "agreementId": 1001,
        "taxableFlag": true,
    });
    let _ = expr.unknown_path(&record);
    let _ = expr.matches(&record);
}
