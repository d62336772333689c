//! `unitsync validate` and config loading: the sample corpora, the example repo, the committed
//! schemas, and the real binary.

use std::path::{Path, PathBuf};

use unitsync::config::schema::FileKind;
use unitsync::config::{Diagnostic, PsaKind, check, load};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn render(diagnostics: &[Diagnostic]) -> String {
    diagnostics.iter().map(|d| format!("{d}\n")).collect()
}

fn cases(kind: &str) -> Vec<PathBuf> {
    let dir = manifest_dir().join("tests/samples").join(kind);
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    cases
}

/// Compares the diagnostics of one case with its `expected.txt`; with `UPDATE_EXPECT=1`, rewrites
/// the file instead. Returns a description of the mismatch.
fn compare(case: &Path, actual: &str) -> Option<String> {
    let path = case.join("expected.txt");
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        if actual.is_empty() {
            let _ = std::fs::remove_file(&path);
        } else {
            std::fs::write(&path, actual).unwrap();
        }
        return None;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    (expected != actual).then(|| {
        format!(
            "{}:\n--- expected\n{expected}--- actual\n{actual}",
            case.display()
        )
    })
}

#[test]
fn every_invalid_sample_reports_exactly_its_expected_diagnostics() {
    let cases = cases("invalid");
    assert!(cases.len() >= 13, "only {} invalid samples", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let (repo, diagnostics) = check(case);
        if repo.is_some() || !diagnostics.iter().any(Diagnostic::is_error) {
            failures.push(format!("{}: accepted, but should fail", case.display()));
            continue;
        }
        if !case.join("expected.txt").exists() && std::env::var_os("UPDATE_EXPECT").is_none() {
            failures.push(format!("{}: no expected.txt", case.display()));
            continue;
        }
        failures.extend(compare(case, &render(&diagnostics)));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_valid_sample_loads_with_only_its_expected_warnings() {
    let cases = cases("valid");
    assert!(cases.len() >= 3);
    let mut failures = Vec::new();
    for case in &cases {
        let (repo, diagnostics) = check(case);
        if repo.is_none() {
            failures.push(format!(
                "{}: rejected:\n{}",
                case.display(),
                render(&diagnostics)
            ));
            continue;
        }
        assert!(diagnostics.iter().all(|d| !d.is_error()));
        failures.extend(compare(case, &render(&diagnostics)));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_example_billing_repo_is_clean_and_tells_the_guides_story() {
    let root = manifest_dir().join("examples/billing-repo");
    let (repo, diagnostics) = check(&root);
    assert!(diagnostics.is_empty(), "{}", render(&diagnostics));
    let repo = repo.expect("loads");
    assert_eq!(repo.settings.psa.kind(), PsaKind::ConnectWise);
    let ids: Vec<String> = repo.mappings.iter().map(|m| m.effective_id()).collect();
    assert_eq!(
        ids,
        [
            "bobs-dentistry/shadowprotect-desktop",
            "angry-fox-co/shadowprotect-server",
            "digitaltorch-inc/cloud-premium-gb",
        ]
    );
    assert_eq!(repo.lock.units.len(), 3);
    assert_eq!(
        repo.lock.units["digitaltorch-inc/cloud-premium-gb"].to_string(),
        "135.5"
    );
    assert_eq!(repo.mapping_sources[1].to_string(), "mappings.yaml:9:5");
    for file in ["unitsync.yaml", "mappings.yaml", "units.lock.yaml"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        assert!(
            text.starts_with("# yaml-language-server: $schema=../../schema/"),
            "{file} lacks the schema comment"
        );
    }
}

#[test]
fn load_fails_with_every_diagnostic_in_its_message() {
    let err = load(&manifest_dir().join("tests/samples/invalid/unknown-key-suggestion"))
        .expect_err("invalid");
    assert_eq!(err.diagnostics.len(), 1);
    let text = err.to_string();
    assert!(
        text.starts_with(
            "mappings.yaml:8:5: error: unknown key \"licence_type\" in mapping 2; did you mean \"license_type\"?\n1 error in 1 file in billing repo "
        ),
        "{text}"
    );
}

#[test]
fn committed_schema_files_match_the_model() {
    for kind in FileKind::ALL {
        let path = manifest_dir().join("schema").join(kind.schema_file());
        let committed =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            committed == kind.schema_text(),
            "{} is out of date: run `cargo run -- schema` and commit the result",
            path.display()
        );
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} lacks {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

fn unitsync(dir: &Path) -> std::process::Output {
    crate::support::unitsync()
        .arg("-C")
        .arg(dir)
        .arg("validate")
        .output()
        .expect("runs")
}

#[test]
fn the_binary_reports_every_problem_in_one_run_and_exits_1() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path();
    copy_dir(&manifest_dir().join("examples/billing-repo"), repo);
    edit(
        &repo.join("unitsync.yaml"),
        "timezone: America/Los_Angeles",
        "timezone: America/LosAngeles",
    );
    edit(
        &repo.join("unitsync.yaml"),
        "daily at 02:00",
        "daily at 24:00",
    );
    edit(
        &repo.join("mappings.yaml"),
        "license_type: ShadowProtect Server",
        "licence_type: ShadowProtect Server",
    );
    edit(
        &repo.join("mappings.yaml"),
        "    addition: CLOUD-GB",
        "    service: CLOUD-GB",
    );
    edit(&repo.join("units.lock.yaml"), ": 135.5", ": lots");

    let out = unitsync(repo);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("  hint: "))
        .collect();
    assert_eq!(
        lines,
        [
            "unitsync.yaml:13:13: error: schedule.timezone: unknown time zone \"America/LosAngeles\"; did you mean \"America/Los_Angeles\"?",
            "unitsync.yaml:14:12: error: schedule.refresh: \"daily at 24:00\": hour 24 does not exist; hours run from 00 to 23",
            "mappings.yaml:10:5: error: unknown key \"licence_type\" in mapping 2; did you mean \"license_type\"?",
            "mappings.yaml:18:5: error: mapping 3 uses \"service\", an Autotask field, but psa is connectwise",
            "units.lock.yaml:7:38: error: units.\"digitaltorch-inc/cloud-premium-gb\": \"lots\" is not a number",
            "5 errors in 3 files",
        ],
        "{stderr}"
    );
}

#[test]
fn the_binary_accepts_the_example_repo_and_exits_0() {
    let out = unitsync(&manifest_dir().join("examples/billing-repo"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "ok: 1 settings file, 3 mappings, 3 lock entries\n"
    );
}
