//! `unitsync history` and `unitsync history prune`, run as the binary against history records
//! written with `HistoryRecord::write` (and, for prune, a real git repository).

use std::path::Path;
use std::process::Command;

use unitsync::history::{HistoryLine, HistoryRecord, LineOutcome};

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn unitsync(dir: &Path, args: &[&str]) -> Run {
    let output = crate::support::unitsync()
        .arg("-C")
        .arg(dir)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    Run {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

#[allow(clippy::too_many_arguments)]
fn line(
    mapping: &str,
    account: &str,
    license_type: &str,
    company: &str,
    product: &str,
    from: &str,
    to: &str,
    outcome: LineOutcome,
) -> HistoryLine {
    HistoryLine {
        effective: None,
        due: None,
        mapping: mapping.into(),
        account: account.into(),
        license_type: license_type.into(),
        company: company.into(),
        contract: Some(1001),
        line: Some(5001),
        product: product.into(),
        from: from.parse().unwrap(),
        to: to.parse().unwrap(),
        outcome,
        new_line: None,
        reason: None,
        note: None,
    }
}

const BOB: &str = "bobs-dentistry/shadowprotect-desktop";
const FOX: &str = "angry-fox-co/shadowprotect-server";
const TORCH: &str = "digitaltorch-inc/cloud-premium-gb";
const SMITH: &str = "smith-jones-co/shadowprotect-desktop";

fn records() -> Vec<HistoryRecord> {
    use LineOutcome::*;
    let mut failed = line(
        FOX,
        "Angry Fox Co",
        "ShadowProtect Server",
        "AngryFox",
        "SP-SERVER",
        "1",
        "0",
        Failed,
    );
    failed.reason = Some("HTTP 500: \"internal\", try later".into());
    let mut torch = line(
        TORCH,
        "DigitalTorch Inc",
        "Cloud Premium GB",
        "DigitalTorch",
        "CLOUD-GB",
        "100",
        "135.5",
        Applied,
    );
    torch.note = Some("ticket 4411: storage grew, confirmed with Tom".into());
    // October was invoiced before the change: it bills from November, a month late.
    torch.effective = Some(jiff::civil::date(2026, 11, 1));
    torch.due = Some(jiff::civil::date(2026, 10, 1));
    vec![
        HistoryRecord {
            run: "2026-09-30T06:00:00Z".into(),
            commit: Some("aaaaaaa".into()),
            pull_request: Some(40),
            approved_by: Some("alice".into()),
            lines: vec![
                line(
                    BOB,
                    "Bob's Dentistry",
                    "ShadowProtect Desktop",
                    "BobsDentistry",
                    "SP-DESKTOP",
                    "2",
                    "3",
                    Applied,
                ),
                line(
                    FOX,
                    "Angry Fox Co",
                    "ShadowProtect Server",
                    "AngryFox",
                    "SP-SERVER",
                    "2",
                    "1",
                    Applied,
                ),
            ],
            true_ups: Vec::new(),
        },
        HistoryRecord {
            run: "2026-10-31T06:00:00Z".into(),
            commit: Some("bbbbbbb".into()),
            pull_request: Some(41),
            approved_by: Some("bob".into()),
            lines: vec![torch, failed],
            true_ups: Vec::new(),
        },
        HistoryRecord {
            run: "2026-11-25T09:30:00Z".into(),
            commit: None,
            pull_request: None,
            approved_by: Some("local:jdoe".into()),
            lines: vec![
                line(
                    BOB,
                    "Bob's Dentistry",
                    "ShadowProtect Desktop",
                    "BobsDentistry",
                    "SP-DESKTOP",
                    "3",
                    "4",
                    Applied,
                ),
                line(
                    SMITH,
                    "Smith, \"Jones\" & Co",
                    "ShadowProtect Desktop",
                    "SmithJones",
                    "SP-DESKTOP",
                    "5",
                    "6",
                    Stale,
                ),
            ],
            true_ups: Vec::new(),
        },
    ]
}

fn history_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for record in records() {
        record.write(dir.path()).unwrap();
    }
    dir
}

#[test]
fn table_lists_every_line_newest_first_with_totals() {
    let dir = history_repo();
    let run = unitsync(dir.path(), &["history"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stderr, "");
    assert_eq!(
        run.stdout,
        "\
DATE (UTC)        ACCOUNT              LICENCE TYPE           COMPANY        PRODUCT     FROM → TO    OUTCOME  APPROVED BY  PR
2026-11-25 09:30  Bob's Dentistry      ShadowProtect Desktop  BobsDentistry  SP-DESKTOP  3 → 4        applied  local:jdoe   -
2026-11-25 09:30  Smith, \"Jones\" & Co  ShadowProtect Desktop  SmithJones     SP-DESKTOP  5 → 6        stale    local:jdoe   -
2026-10-31 06:00  DigitalTorch Inc     Cloud Premium GB       DigitalTorch   CLOUD-GB    100 → 135.5  applied  bob          #41
2026-10-31 06:00  Angry Fox Co         ShadowProtect Server   AngryFox       SP-SERVER   1 → 0        failed   bob          #41
2026-09-30 06:00  Bob's Dentistry      ShadowProtect Desktop  BobsDentistry  SP-DESKTOP  2 → 3        applied  alice        #40
2026-09-30 06:00  Angry Fox Co         ShadowProtect Server   AngryFox       SP-SERVER   2 → 1        applied  alice        #40
6 lines: 4 applied, 1 failed, 1 stale; +37.5 / -1 units
"
    );
}

/// The table's first column of each line, and the totals line.
fn dates_and_totals(stdout: &str) -> (Vec<String>, String) {
    let lines: Vec<&str> = stdout.lines().collect();
    let (totals, rows) = lines.split_last().unwrap();
    let rows = rows
        .iter()
        .skip(1)
        .map(|l| l.split("  ").take(2).collect::<Vec<_>>().join(" | "))
        .collect();
    (rows, totals.to_string())
}

#[test]
fn filters_since_account_outcome_and_mapping() {
    let dir = history_repo();
    let check = |args: &[&str], rows: &[&str], totals: &str| {
        let mut all = vec!["history"];
        all.extend_from_slice(args);
        let run = unitsync(dir.path(), &all);
        assert_eq!(run.code, Some(0), "{args:?}: {}", run.stderr);
        let (got_rows, got_totals) = dates_and_totals(&run.stdout);
        assert_eq!(got_rows, rows, "{args:?}");
        assert_eq!(got_totals, totals, "{args:?}");
    };
    check(
        &["--since", "2026-10-31"],
        &[
            "2026-11-25 09:30 | Bob's Dentistry",
            "2026-11-25 09:30 | Smith, \"Jones\" & Co",
            "2026-10-31 06:00 | DigitalTorch Inc",
            "2026-10-31 06:00 | Angry Fox Co",
        ],
        "4 lines: 2 applied, 1 failed, 1 stale; +36.5 / -0 units",
    );
    check(
        &["--since", "2026-10-31T06:00:01Z"],
        &[
            "2026-11-25 09:30 | Bob's Dentistry",
            "2026-11-25 09:30 | Smith, \"Jones\" & Co",
        ],
        "2 lines: 1 applied, 0 failed, 1 stale; +1 / -0 units",
    );
    // An offset is honoured: 08:00+02:00 is 06:00Z.
    check(
        &["--since", "2026-10-31T08:00:00+02:00", "--account", "FOX"],
        &["2026-10-31 06:00 | Angry Fox Co"],
        "1 line: 0 applied, 1 failed, 0 stale; +0 / -0 units",
    );
    check(
        &["--account", "angry fox"],
        &[
            "2026-10-31 06:00 | Angry Fox Co",
            "2026-09-30 06:00 | Angry Fox Co",
        ],
        "2 lines: 1 applied, 1 failed, 0 stale; +0 / -1 units",
    );
    check(
        &["--outcome", "stale"],
        &["2026-11-25 09:30 | Smith, \"Jones\" & Co"],
        "1 line: 0 applied, 0 failed, 1 stale; +0 / -0 units",
    );
    check(
        &["--outcome", "applied", "--mapping", BOB],
        &[
            "2026-11-25 09:30 | Bob's Dentistry",
            "2026-09-30 06:00 | Bob's Dentistry",
        ],
        "2 lines: 2 applied, 0 failed, 0 stale; +2 / -0 units",
    );
    // Nothing matches: no table, just the totals.
    let run = unitsync(dir.path(), &["history", "--mapping", "nobody/nothing"]);
    assert_eq!(run.code, Some(0));
    assert_eq!(
        run.stdout,
        "0 lines: 0 applied, 0 failed, 0 stale; +0 / -0 units\n"
    );
    // A bad date is a usage error, exit 1.
    let run = unitsync(dir.path(), &["history", "--since", "31/10/2026"]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("is not a date"), "{}", run.stderr);
}

#[test]
fn csv_has_a_header_and_quotes_fields() {
    let dir = history_repo();
    let run = unitsync(
        dir.path(),
        &["history", "--format", "csv", "--since", "2026-10-01"],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "\
run,account,license_type,company,product,from,to,outcome,approved_by,pull_request,mapping,contract,line,new_line,reason,commit,file,note,effective,due
2026-11-25T09:30:00Z,Bob's Dentistry,ShadowProtect Desktop,BobsDentistry,SP-DESKTOP,3,4,applied,local:jdoe,,bobs-dentistry/shadowprotect-desktop,1001,5001,,,,history/2026/11/2026-11-25T093000Z.yaml,,,
2026-11-25T09:30:00Z,\"Smith, \"\"Jones\"\" & Co\",ShadowProtect Desktop,SmithJones,SP-DESKTOP,5,6,stale,local:jdoe,,smith-jones-co/shadowprotect-desktop,1001,5001,,,,history/2026/11/2026-11-25T093000Z.yaml,,,
2026-10-31T06:00:00Z,DigitalTorch Inc,Cloud Premium GB,DigitalTorch,CLOUD-GB,100,135.5,applied,bob,41,digitaltorch-inc/cloud-premium-gb,1001,5001,,,bbbbbbb,history/2026/10/2026-10-31T060000Z.yaml,\"ticket 4411: storage grew, confirmed with Tom\",2026-11-01,2026-10-01
2026-10-31T06:00:00Z,Angry Fox Co,ShadowProtect Server,AngryFox,SP-SERVER,1,0,failed,bob,41,angry-fox-co/shadowprotect-server,1001,5001,,\"HTTP 500: \"\"internal\"\", try later\",bbbbbbb,history/2026/10/2026-10-31T060000Z.yaml,,,
"
    );
    // Any CSV reader gets the fields back.
    let mut reader = csv::Reader::from_reader(run.stdout.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 4);
    assert_eq!(&rows[1][1], "Smith, \"Jones\" & Co");
    assert_eq!(&rows[3][14], "HTTP 500: \"internal\", try later");
    assert_eq!(
        &rows[2][17],
        "ticket 4411: storage grew, confirmed with Tom"
    );
    assert_eq!(
        run.stderr,
        "4 lines: 2 applied, 1 failed, 1 stale; +36.5 / -0 units\n"
    );
}

#[test]
fn json_carries_a_format_version_and_totals() {
    let dir = history_repo();
    let run = unitsync(
        dir.path(),
        &[
            "history",
            "--format",
            "json",
            "--since",
            "2026-10-01",
            "--account",
            "fox",
        ],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.stdout,
        r#"{
  "format_version": 1,
  "lines": [
    {
      "run": "2026-10-31T06:00:00Z",
      "account": "Angry Fox Co",
      "license_type": "ShadowProtect Server",
      "company": "AngryFox",
      "product": "SP-SERVER",
      "from": 1,
      "to": 0,
      "outcome": "failed",
      "approved_by": "bob",
      "pull_request": 41,
      "mapping": "angry-fox-co/shadowprotect-server",
      "contract": 1001,
      "line": 5001,
      "new_line": null,
      "reason": "HTTP 500: \"internal\", try later",
      "commit": "bbbbbbb",
      "file": "history/2026/10/2026-10-31T060000Z.yaml",
      "note": null,
      "effective": null,
      "due": null
    }
  ],
  "totals": {
    "lines": 1,
    "applied": 0,
    "failed": 1,
    "stale": 0,
    "units_added": 0,
    "units_removed": 0
  }
}
"#
    );
    let value: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(value["format_version"], 1);
}

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A git repository with the history records and a settings file committed on `main`.
fn git_repo() -> tempfile::TempDir {
    let dir = history_repo();
    let p = dir.path();
    git(p, &["init", "--quiet", "--initial-branch=main"]);
    git(p, &["config", "user.name", "Jane Doe"]);
    git(p, &["config", "user.email", "jdoe@computech.example"]);
    std::fs::write(p.join("unitsync.yaml"), "# settings\n").unwrap();
    git(p, &["add", "."]);
    git(p, &["commit", "--quiet", "-m", "billing repo"]);
    dir
}

#[test]
fn prune_commits_the_removal_and_keeps_the_files_in_git_history() {
    let dir = git_repo();
    let p = dir.path();
    // A staged change elsewhere stays staged and out of the prune commit.
    std::fs::write(p.join("unitsync.yaml"), "# settings, edited\n").unwrap();
    git(p, &["add", "unitsync.yaml"]);

    let run = unitsync(p, &["history", "prune", "--before", "2026-10-31"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let head = git(p, &["rev-parse", "--short=7", "HEAD"]);
    assert_eq!(
        run.stdout,
        format!(
            "removed history/2026/09/2026-09-30T060000Z.yaml\n\
             Removed 1 history record from before 2026-10-31 in commit {}; they stay in git history.\n\
             Push it with `git push` (or run with --push).\n",
            head.trim()
        )
    );
    assert_eq!(
        git(p, &["log", "--format=%s|%an", "main"]),
        "history: prune 1 record from before 2026-10-31|Jane Doe\nbilling repo|Jane Doe\n"
    );
    assert_eq!(
        git(p, &["show", "--name-status", "--format=", "HEAD"]),
        "D\thistory/2026/09/2026-09-30T060000Z.yaml\n"
    );
    assert!(!p.join("history/2026/09").exists());
    assert!(p.join("history/2026/10/2026-10-31T060000Z.yaml").is_file());
    assert!(p.join("history/2026/11/2026-11-25T093000Z.yaml").is_file());
    // The file is still in git history, and the staged edit is still staged.
    assert_eq!(
        git(
            p,
            &[
                "log",
                "--diff-filter=D",
                "--name-only",
                "--format=%s",
                "--",
                "history/"
            ]
        ),
        "history: prune 1 record from before 2026-10-31\n\nhistory/2026/09/2026-09-30T060000Z.yaml\n"
    );
    assert_eq!(
        git(
            p,
            &["show", "HEAD~1:history/2026/09/2026-09-30T060000Z.yaml"]
        ),
        records()[0].to_yaml()
    );
    assert_eq!(git(p, &["status", "--porcelain"]), "M  unitsync.yaml\n");
    // The listing follows.
    let run = unitsync(p, &["history"]);
    assert!(
        run.stdout
            .ends_with("4 lines: 2 applied, 1 failed, 1 stale; +36.5 / -0 units\n")
    );

    // Again with an RFC 3339 time: both remaining records go, in one commit.
    let run = unitsync(p, &["history", "prune", "--before", "2026-12-01T00:00:00Z"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout
            .contains("Removed 2 history records from before 2026-12-01 in commit")
    );
    assert_eq!(
        git(p, &["log", "-1", "--format=%B"]),
        "history: prune 2 records from before 2026-12-01\n\n\
         The files stay in git history: git log --diff-filter=D --name-only -- history/\n\n"
    );
    assert!(!p.join("history").exists());
    // Nothing left: no commit.
    let run = unitsync(p, &["history", "prune", "--before", "2027-01-01"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "nothing to prune: no history record is older than 2027-01-01\n"
    );
    assert_eq!(git(p, &["rev-list", "--count", "HEAD"]), "3\n");
}

#[test]
fn prune_refuses_uncommitted_history_changes() {
    let dir = git_repo();
    let p = dir.path();
    let before = git(p, &["rev-parse", "HEAD"]);
    let edited = p.join("history/2026/10/2026-10-31T060000Z.yaml");
    let text = std::fs::read_to_string(&edited).unwrap();
    std::fs::write(&edited, text.replace("bob", "carol")).unwrap();
    let untracked = HistoryRecord {
        run: "2026-09-01T00:00:00Z".into(),
        ..records()[0].clone()
    };
    untracked.write(p).unwrap();
    let run = unitsync(p, &["history", "prune", "--before", "2026-10-31"]);
    assert_eq!(run.code, Some(1));
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr,
        "error: the working tree has uncommitted changes under history/: \
         history/2026/09/2026-09-01T000000Z.yaml, history/2026/10/2026-10-31T060000Z.yaml\n\
         hint: commit or discard them (git status), then prune again\n"
    );
    assert_eq!(git(p, &["rev-parse", "HEAD"]), before);
    assert!(p.join("history/2026/09/2026-09-30T060000Z.yaml").is_file());
}

#[test]
fn prune_push_publishes_the_commit() {
    let dir = git_repo();
    let p = dir.path();
    let remote = tempfile::tempdir().unwrap();
    git(
        remote.path(),
        &["init", "--quiet", "--bare", "--initial-branch=main"],
    );
    git(
        p,
        &["remote", "add", "origin", remote.path().to_str().unwrap()],
    );
    git(p, &["push", "--quiet", "origin", "main"]);
    let run = unitsync(p, &["history", "prune", "--before", "2026-10-01", "--push"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout.ends_with("Pushed to origin/main.\n"),
        "{}",
        run.stdout
    );
    assert_eq!(
        git(remote.path(), &["log", "-1", "--format=%s", "main"]),
        "history: prune 1 record from before 2026-10-01\n"
    );
}

#[test]
fn prune_works_for_a_billing_repo_in_a_subfolder() {
    let top = tempfile::tempdir().unwrap();
    let p = top.path();
    let billing = p.join("billing");
    for record in records() {
        record.write(&billing).unwrap();
    }
    std::fs::create_dir_all(p.join("other/history")).unwrap();
    std::fs::write(p.join("other/history/keep.yaml"), "x: 1\n").unwrap();
    git(p, &["init", "--quiet", "--initial-branch=main"]);
    git(p, &["config", "user.name", "Jane Doe"]);
    git(p, &["config", "user.email", "jdoe@computech.example"]);
    git(p, &["add", "."]);
    git(p, &["commit", "--quiet", "-m", "monorepo"]);
    let run = unitsync(&billing, &["history", "prune", "--before", "2026-11-01"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        git(p, &["show", "--name-status", "--format=%s", "HEAD"]),
        "history: prune 2 records from before 2026-11-01\n\n\
         D\tbilling/history/2026/09/2026-09-30T060000Z.yaml\n\
         D\tbilling/history/2026/10/2026-10-31T060000Z.yaml\n"
    );
    assert_eq!(git(p, &["status", "--porcelain"]), "");
    assert!(p.join("other/history/keep.yaml").is_file());
}
