//! Black-box tests of the local commands (`plan`, `apply`, `doctor`, `demo`): each test runs the
//! `unitsync` binary against its own ConnectWise sandbox and a temporary copy of
//! `examples/billing-repo`, and checks the exact output, exit code, PSA state and requests.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use unitsync::sandbox::{Faults, RecordedRequest, Sandbox, SandboxHandle, Seed, demo_seed};

pub(crate) use crate::support::binary;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
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

pub(crate) fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} lacks {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// What one run of the binary left behind.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// A sandbox and a billing repo pointed at it.
pub(crate) struct Env {
    pub(crate) sandbox: SandboxHandle,
    pub(crate) temp: tempfile::TempDir,
    pub(crate) repo: PathBuf,
    /// Credentials passed to the binary, as (variable, value); `None` leaves it unset.
    pub(crate) creds: Vec<(&'static str, Option<String>)>,
}

impl Env {
    pub(crate) fn new() -> Env {
        Env::with_seed(demo_seed())
    }

    fn with_seed(seed: Seed) -> Env {
        let sandbox =
            Sandbox::start_in_background(seed, Faults::none(), "127.0.0.1:0".parse().unwrap())
                .unwrap();
        let temp = tempfile::tempdir().unwrap();
        let repo = temp.path().join("billing");
        copy_dir(&manifest_dir().join("examples/billing-repo"), &repo);
        edit(
            &repo.join("unitsync.yaml"),
            "site: na.myconnectwise.net",
            &format!("site: {}", sandbox.base_url()),
        );
        // The example's SMTP host is a placeholder that never resolves: without this, every
        // apply would end with a "notification not sent" warning (tests/it/notify.rs covers them).
        edit(
            &repo.join("unitsync.yaml"),
            "notifications:\n  email:\n    to: [billing@computech.example]\n    smtp: { host: smtp.computech.example, port: 587 }\n",
            "",
        );
        let login = sandbox.login();
        let creds = vec![
            ("UNITSYNC_CW_PUBLIC_KEY", Some(login.public_key)),
            ("UNITSYNC_CW_PRIVATE_KEY", Some(login.private_key)),
            ("UNITSYNC_CW_CLIENT_ID", login.client_id),
        ];
        Env {
            sandbox,
            temp,
            repo,
            creds,
        }
    }

    fn set_cred(&mut self, name: &str, value: Option<&str>) {
        for (n, v) in &mut self.creds {
            if *n == name {
                *v = value.map(str::to_string);
            }
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, None)
    }

    /// Runs `unitsync -C REPO ARGS…` in the temp dir, with a clean environment; `stdin` is piped
    /// (empty when `Some("")`), or closed when `None`.
    pub(crate) fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Run {
        run(self.command(args, stdin.is_some()), stdin)
    }

    /// The command [`run_with_stdin`](Self::run_with_stdin) runs, to start it in the background.
    fn command(&self, args: &[&str], stdin: bool) -> Command {
        let mut cmd = crate::support::unitsync_clean();
        cmd.env("NO_COLOR", "1")
            .env("USER", "tester")
            .current_dir(self.temp.path())
            .arg("-C")
            .arg(&self.repo)
            .args(args)
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // The demo makes its throwaway repo under TMPDIR: keep it inside this test's folder.
        cmd.env("TMPDIR", self.temp.path());
        for (name, value) in &self.creds {
            if let Some(value) = value {
                cmd.env(name, value);
            }
        }
        cmd
    }

    /// The additions' quantities by id, for the three mapped lines.
    pub(crate) fn quantities(&self) -> Vec<(i64, f64)> {
        [5001, 5003, 5005]
            .into_iter()
            .map(|id| (id, self.sandbox.addition(id).unwrap().quantity))
            .collect()
    }

    /// A hand edit in the PSA (not through unitsync).
    fn hand_edit(&self, id: i64, quantity: f64) {
        let mut addition = self.sandbox.addition(id).unwrap();
        addition.quantity = quantity;
        self.sandbox.put_addition(addition);
    }

    fn writes(&self) -> Vec<RecordedRequest> {
        self.sandbox
            .requests()
            .into_iter()
            .filter(|r| r.method != "GET")
            .collect()
    }

    /// The history files, as (path relative to the repo, content); the run markers
    /// (`history/last-*`) are left out.
    fn history(&self) -> Vec<(String, String)> {
        let mut files = Vec::new();
        collect_files(&self.repo.join("history"), &mut files);
        files.retain(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("last-"))
        });
        files.sort();
        files
            .into_iter()
            .map(|p| {
                (
                    p.strip_prefix(&self.repo)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                    std::fs::read_to_string(&p).unwrap(),
                )
            })
            .collect()
    }
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

pub(crate) fn run(mut cmd: Command, stdin: Option<&str>) -> Run {
    // A freshly copied executable can be briefly "busy" (ETXTBSY) while a concurrently forked
    // child of another test still holds the copy's write handle; retry then.
    let mut child = {
        let mut tries = 0;
        loop {
            match cmd.spawn() {
                Ok(child) => break child,
                Err(e) if e.raw_os_error() == Some(26) && tries < 50 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("cannot run unitsync: {e}"),
            }
        }
    };
    if let Some(text) = stdin {
        use std::io::Write;
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(text.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// Filters for what changes from run to run: the sandbox port, history timestamps.
fn settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]");
    settings.add_filter(
        r"history/\d{4}/\d{2}/\d{4}-\d{2}-\d{2}T\d{6}Z(-\d+)?\.yaml",
        "history/[YYYY]/[MM]/[RUN].yaml",
    );
    settings.add_filter(
        r#"run: "\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z""#,
        r#"run: "[RUN]""#,
    );
    settings.add_filter(r"/\S*unitsync-demo-\d+-[0-9a-f]+", "[DEMO REPO]");
    // The sandbox's agreements invoice next on the first of next month, which is when the plan's
    // in-place changes bill: the date moves with the pinned day.
    settings.add_filter(
        &crate::support::first_of_next_month().to_string(),
        "[NEXT-MONTH]",
    );
    // An in-place edit was due the day it was written: today.
    settings.add_filter(
        &format!("due: \"{}\"", crate::support::today()),
        "due: \"[TODAY]\"",
    );
    settings.set_prepend_module_to_snapshot(false);
    settings
}

/// The demo's plan table, with its in-place changes billing from the agreements' next invoice.
fn plan_table() -> String {
    format!(
        "\
MAPPING                               COMPANY        AGREEMENT       PRODUCT     VENDOR  APPROVED     PSA  EFFECTIVE   REVENUE/MONTH  ACTION
bobs-dentistry/shadowprotect-desktop  BobsDentistry  Managed Backup  SP-DESKTOP       4         3       3  {next}        +$12.50  update 3 → 4 (+1)
digitaltorch-inc/cloud-premium-gb     DigitalTorch   Cloud Backup    CLOUD-GB     135.5     135.5  120.25  {next}         +$3.81  update 120.25 → 135.5 (+15.25)
1 line in sync not shown (plan --all shows it).

Unmapped vendor accounts (not billed until mapped):
ACCOUNT       LICENCE TYPE           UNITS  UNBILLED/MONTH
Slate Gravel  ShadowProtect Desktop      3          $37.50

Plan: 2 to update (+16.25 / -0 units), 1 in sync, 1 unmapped, 0 errors. Revenue: +$16.31/month.
",
        next = crate::support::first_of_next_month()
    )
}

const CONFIRM: &str = "\nApply 2 changes to ConnectWise PSA? Only 'yes' will be accepted: ";

// ---------------------------------------------------------------------------------------------
// plan

#[test]
fn plan_shows_the_table_and_changes_nothing() {
    let env = Env::new();
    let out = env.run(&["plan"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stderr, "");
    let _guard = settings().bind_to_scope();
    insta::assert_snapshot!(out.stdout, @"
    MAPPING                               COMPANY        AGREEMENT       PRODUCT     VENDOR  APPROVED     PSA  EFFECTIVE   REVENUE/MONTH  ACTION
    bobs-dentistry/shadowprotect-desktop  BobsDentistry  Managed Backup  SP-DESKTOP       4         3       3  [NEXT-MONTH]        +$12.50  update 3 → 4 (+1)
    digitaltorch-inc/cloud-premium-gb     DigitalTorch   Cloud Backup    CLOUD-GB     135.5     135.5  120.25  [NEXT-MONTH]         +$3.81  update 120.25 → 135.5 (+15.25)
    1 line in sync not shown (plan --all shows it).

    Unmapped vendor accounts (not billed until mapped):
    ACCOUNT       LICENCE TYPE           UNITS  UNBILLED/MONTH
    Slate Gravel  ShadowProtect Desktop      3          $37.50

    Plan: 2 to update (+16.25 / -0 units), 1 in sync, 1 unmapped, 0 errors. Revenue: +$16.31/month.
    ");
    assert_eq!(out.stdout, plan_table());
    assert_eq!(env.writes(), vec![], "plan must not write");
    assert!(!env.sandbox.requests().is_empty());
    assert_eq!(env.quantities(), [(5001, 3.0), (5003, 2.0), (5005, 120.25)]);
}

#[test]
fn plan_all_also_lists_lines_in_sync() {
    let env = Env::new();
    let out = env.run(&["plan", "--all"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let _guard = settings().bind_to_scope();
    insta::assert_snapshot!(out.stdout, @"
    MAPPING                               COMPANY        AGREEMENT       PRODUCT     VENDOR  APPROVED     PSA  EFFECTIVE   REVENUE/MONTH  ACTION
    angry-fox-co/shadowprotect-server     AngryFox       Managed Backup  SP-SERVER        2         2       2  -                       -  in sync
    bobs-dentistry/shadowprotect-desktop  BobsDentistry  Managed Backup  SP-DESKTOP       4         3       3  [NEXT-MONTH]        +$12.50  update 3 → 4 (+1)
    digitaltorch-inc/cloud-premium-gb     DigitalTorch   Cloud Backup    CLOUD-GB     135.5     135.5  120.25  [NEXT-MONTH]         +$3.81  update 120.25 → 135.5 (+15.25)

    Unmapped vendor accounts (not billed until mapped):
    ACCOUNT       LICENCE TYPE           UNITS  UNBILLED/MONTH
    Slate Gravel  ShadowProtect Desktop      3          $37.50

    Plan: 2 to update (+16.25 / -0 units), 1 in sync, 1 unmapped, 0 errors. Revenue: +$16.31/month.
    ");
    assert_eq!(env.writes(), vec![]);
}

#[test]
fn plan_json_carries_the_format_version_and_the_exact_actions() {
    let env = Env::new();
    let out = env.run(&["plan", "--format", "json"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stderr, "");
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).expect("stdout is JSON only");
    assert_eq!(plan["format_version"], 2);
    assert_eq!(plan["currency"], "USD");
    assert_eq!(plan["summary"]["monthly_change"], 16.3125);
    let bob = &plan["lines"][1];
    assert_eq!(
        bob["effective"],
        serde_json::json!({
            "date": crate::support::first_of_next_month().to_string(),
            "why": {
                "kind": "next-invoice",
                "invoiced_on": null,
                "written_on": crate::support::today().to_string()
            }
        })
    );
    assert_eq!(
        bob["money"],
        serde_json::json!({"unit_price": 12.5, "unit_cost": 6, "cycle": "monthly", "monthly_change": 12.5})
    );
    assert_eq!(plan["desired"], "vendor");
    let actions: Vec<(&str, &serde_json::Value)> = plan["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["mapping"].as_str().unwrap(), &l["action"]))
        .collect();
    assert_eq!(
        actions,
        [
            (
                "angry-fox-co/shadowprotect-server",
                &serde_json::json!({"action": "in-sync"})
            ),
            (
                "bobs-dentistry/shadowprotect-desktop",
                &serde_json::json!({"action": "update", "from": 3, "to": 4})
            ),
            (
                "digitaltorch-inc/cloud-premium-gb",
                &serde_json::json!({"action": "update", "from": 120.25, "to": 135.5})
            ),
        ]
    );
    assert_eq!(plan["lines"][1]["target"]["line_id"], 5001);
    assert_eq!(plan["lines"][2]["target"]["line_id"], 5005);
    assert_eq!(
        plan["summary"],
        serde_json::json!({
            "monthly_change": 16.3125,
            "to_update": 2, "units_added": 16.25, "units_removed": 0, "to_propose": 0,
            "in_sync": 1, "drift": 0, "held": 0, "unmapped": 1, "errors": 0
        })
    );
    assert_eq!(
        plan["unmapped"],
        serde_json::json!([{
            "account": "Slate Gravel", "license_type": "ShadowProtect Desktop",
            "units": 3, "kind": "count", "monthly_value": 37.5
        }])
    );
    assert_eq!(env.writes(), vec![]);
}

#[test]
fn plan_markdown_has_the_summary_line() {
    let env = Env::new();
    let out = env.run(&["plan", "--format", "markdown"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.starts_with("## unitsync plan\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(
            "**Plan: 2 to update (+16.25 / -0 units), 1 in sync, 1 unmapped, 0 errors. Revenue: +$16.31/month.**"
        ),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(
        "| `bobs-dentistry/shadowprotect-desktop` | Bob's Dentistry · ShadowProtect Desktop | BobsDentistry › Managed Backup › SP-DESKTOP | update | 3 | 4 | +1 |"
    ));
    assert_eq!(env.writes(), vec![]);
}

#[test]
fn plan_detailed_exitcode_is_2_with_changes_and_0_in_sync() {
    let env = Env::new();
    let out = env.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert_eq!(out.stdout, plan_table());
    assert_eq!(out.stderr, "");

    env.hand_edit(5001, 4.0);
    env.hand_edit(5005, 135.5);
    let out = env.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout
            .ends_with("Plan: 0 to update (+0 / -0 units), 3 in sync, 1 unmapped, 0 errors.\n"),
        "{}",
        out.stdout
    );
    assert_eq!(env.writes(), vec![]);
}

#[test]
fn plan_with_a_broken_mapping_prints_the_plan_and_exits_1_with_the_hint() {
    let env = Env::new();
    edit(
        &env.repo.join("mappings.yaml"),
        "agreement: 1002",
        "agreement: 9999",
    );
    let _guard = settings().bind_to_scope();
    for args in [&["plan"][..], &["plan", "--detailed-exitcode"]] {
        let out = env.run(args);
        assert_eq!(out.code, Some(1), "{out:?}");
        insta::allow_duplicates! { insta::assert_snapshot!(out.stdout, @"
        MAPPING                               COMPANY        AGREEMENT       PRODUCT     VENDOR  APPROVED     PSA  EFFECTIVE   REVENUE/MONTH  ACTION
        angry-fox-co/shadowprotect-server     AngryFox       agreement 9999                   2         2       -  -                       -  error: agreement id 9999 of AngryFox not found in the PSA; check the id or identifier in the mapping
        bobs-dentistry/shadowprotect-desktop  BobsDentistry  Managed Backup  SP-DESKTOP       4         3       3  [NEXT-MONTH]        +$12.50  update 3 → 4 (+1)
        digitaltorch-inc/cloud-premium-gb     DigitalTorch   Cloud Backup    CLOUD-GB     135.5     135.5  120.25  [NEXT-MONTH]         +$3.81  update 120.25 → 135.5 (+15.25)

        Unmapped vendor accounts (not billed until mapped):
        ACCOUNT       LICENCE TYPE           UNITS  UNBILLED/MONTH
        Slate Gravel  ShadowProtect Desktop      3          $37.50

        Plan: 2 to update (+16.25 / -0 units), 0 in sync, 1 unmapped, 1 error. Revenue: +$16.31/month.
        "); }
        assert_eq!(
            out.stderr,
            "error: 1 mapping cannot be planned; see the errors above\n\
             hint: fix the mappings or the PSA records they name, then run plan again\n"
        );
    }
    assert_eq!(env.writes(), vec![]);
}

// ---------------------------------------------------------------------------------------------
// apply

#[test]
fn apply_answered_no_changes_nothing() {
    let env = Env::new();
    let out = env.run_with_stdin(&["apply"], Some("no\n"));
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(out.stdout, format!("{}{CONFIRM}", plan_table()));
    assert_eq!(out.stderr, "error: apply cancelled; nothing was changed\n");
    assert_eq!(env.writes(), vec![]);
    assert_eq!(env.quantities(), [(5001, 3.0), (5003, 2.0), (5005, 120.25)]);
    assert_eq!(env.history(), vec![]);
}

#[test]
fn apply_without_an_answer_refuses() {
    let env = Env::new();
    for stdin in [Some(""), None] {
        let out = env.run_with_stdin(&["apply"], stdin);
        assert_eq!(out.code, Some(1), "{out:?}");
        assert_eq!(out.stdout, format!("{}{CONFIRM}\n", plan_table()));
        assert_eq!(
            out.stderr,
            "error: no confirmation given; nothing was changed\n\
             hint: answer 'yes' at the prompt, or pass --yes\n"
        );
    }
    assert_eq!(env.writes(), vec![]);
    assert_eq!(env.history(), vec![]);
}

/// A PATCH of one addition's quantity; `value` is the JSON number as sent (`4`, `135.5`).
fn patch(path: &str, value: &str) -> (String, String, serde_json::Value) {
    let value: serde_json::Value = serde_json::from_str(value).unwrap();
    (
        "PATCH".to_string(),
        format!("/v4_6_release/apis/3.0/finance/agreements/{path}"),
        serde_json::json!([{"op": "replace", "path": "quantity", "value": value}]),
    )
}

fn write_calls(env: &Env) -> Vec<(String, String, serde_json::Value)> {
    let mut calls: Vec<_> = env
        .writes()
        .into_iter()
        .map(|r| (r.method, r.path, r.body.unwrap_or_default()))
        .collect();
    calls.sort_by(|a, b| a.1.cmp(&b.1));
    calls
}

const HISTORY_APPLIED: &str = r#"run: "[RUN]"
approved_by: local:tester
lines:
- mapping: bobs-dentistry/shadowprotect-desktop
  account: Bob's Dentistry
  license_type: ShadowProtect Desktop
  company: BobsDentistry
  contract: 1001
  line: 5001
  product: SP-DESKTOP
  from: 3
  to: 4
  outcome: applied
  effective: "[NEXT-MONTH]"
  due: "[TODAY]"
- mapping: digitaltorch-inc/cloud-premium-gb
  account: DigitalTorch Inc
  license_type: Cloud Premium GB
  company: DigitalTorch
  contract: 1003
  line: 5005
  product: CLOUD-GB
  from: 120.25
  to: 135.5
  outcome: applied
  effective: "[NEXT-MONTH]"
  due: "[TODAY]"
"#;

/// Replaces the run timestamp and checks the file lives under `history/YYYY/MM/` of that run.
fn normalized_history(env: &Env) -> Vec<(String, String)> {
    env.history()
        .into_iter()
        .map(|(path, text)| {
            let run = text
                .lines()
                .find_map(|l| l.strip_prefix("run: "))
                .expect("a run line")
                .trim_matches('"')
                .to_string();
            // 2026-11-25T09:30:00Z -> history/2026/11/2026-11-25T093000Z.yaml
            let expected = format!(
                "history/{}/{}/{}.yaml",
                &run[0..4],
                &run[5..7],
                run.replace(':', "")
            );
            assert_eq!(path, expected);
            (
                path,
                text.replace(&format!("run: \"{run}\""), "run: \"[RUN]\"")
                    .replace(
                        &crate::support::first_of_next_month().to_string(),
                        "[NEXT-MONTH]",
                    )
                    .replace(
                        &format!("due: \"{}\"", crate::support::today()),
                        "due: \"[TODAY]\"",
                    ),
            )
        })
        .collect()
}

#[test]
fn apply_answered_yes_writes_exactly_the_changes_records_them_and_converges() {
    let env = Env::new();
    let out = env.run_with_stdin(&["apply"], Some("yes\n"));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stderr, "");
    let _guard = settings().bind_to_scope();
    insta::assert_snapshot!(out.stdout, @"
    MAPPING                               COMPANY        AGREEMENT       PRODUCT     VENDOR  APPROVED     PSA  EFFECTIVE   REVENUE/MONTH  ACTION
    bobs-dentistry/shadowprotect-desktop  BobsDentistry  Managed Backup  SP-DESKTOP       4         3       3  [NEXT-MONTH]        +$12.50  update 3 → 4 (+1)
    digitaltorch-inc/cloud-premium-gb     DigitalTorch   Cloud Backup    CLOUD-GB     135.5     135.5  120.25  [NEXT-MONTH]         +$3.81  update 120.25 → 135.5 (+15.25)
    1 line in sync not shown (plan --all shows it).

    Unmapped vendor accounts (not billed until mapped):
    ACCOUNT       LICENCE TYPE           UNITS  UNBILLED/MONTH
    Slate Gravel  ShadowProtect Desktop      3          $37.50

    Plan: 2 to update (+16.25 / -0 units), 1 in sync, 1 unmapped, 0 errors. Revenue: +$16.31/month.

    Apply 2 changes to ConnectWise PSA? Only 'yes' will be accepted: 
    applied  bobs-dentistry/shadowprotect-desktop: 3 → 4
    applied  digitaltorch-inc/cloud-premium-gb: 120.25 → 135.5
    Recorded in history/[YYYY]/[MM]/[RUN].yaml.

    PSA after apply:
      ok bobs-dentistry/shadowprotect-desktop: 4
      ok digitaltorch-inc/cloud-premium-gb: 135.5
    Plan: 0 to update (+0 / -0 units), 3 in sync, 1 unmapped, 0 errors.
    ");
    assert_eq!(
        write_calls(&env),
        [
            patch("1001/additions/5001", "4"),
            patch("1003/additions/5005", "135.5")
        ]
    );
    assert_eq!(env.quantities(), [(5001, 4.0), (5003, 2.0), (5005, 135.5)]);
    let history = normalized_history(&env);
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].1, HISTORY_APPLIED);
    assert!(
        out.stdout
            .contains(&format!("Recorded in {}.\n", history[0].0)),
        "{}",
        out.stdout
    );

    // Again: nothing left to do, nothing written, no new record.
    env.sandbox.clear_requests();
    let again = env.run(&["apply", "--yes"]);
    assert_eq!(again.code, Some(0), "{again:?}");
    assert_eq!(again.stderr, "");
    insta::assert_snapshot!(again.stdout, @"
    All 3 lines are in sync (plan --all shows them).

    Unmapped vendor accounts (not billed until mapped):
    ACCOUNT       LICENCE TYPE           UNITS  UNBILLED/MONTH
    Slate Gravel  ShadowProtect Desktop      3          $37.50

    Plan: 0 to update (+0 / -0 units), 3 in sync, 1 unmapped, 0 errors.

    Nothing to apply.
    ");
    assert_eq!(env.writes(), vec![]);
    assert_eq!(env.history().len(), 1);
}

#[test]
fn apply_of_a_saved_plan_refuses_a_line_edited_since_and_applies_the_rest() {
    let env = Env::new();
    let plan_file = env.temp.path().join("plan.json");
    let out = env.run(&["plan", "--out", plan_file.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, plan_table());
    assert_eq!(
        out.stderr,
        format!(
            "Saved the plan to {0}; apply exactly it with `unitsync apply --plan {0}`.\n",
            plan_file.display()
        )
    );
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan_file).unwrap()).unwrap();
    assert_eq!(saved["format_version"], 2);

    env.hand_edit(5001, 5.0);
    let out = env.run(&["apply", "--plan", plan_file.to_str().unwrap(), "--yes"]);
    assert_eq!(out.code, Some(4), "{out:?}");
    let _guard = settings().bind_to_scope();
    insta::assert_snapshot!(out.stdout, @"
    MAPPING                               COMPANY        AGREEMENT       PRODUCT     VENDOR  APPROVED     PSA  EFFECTIVE   REVENUE/MONTH  ACTION
    bobs-dentistry/shadowprotect-desktop  BobsDentistry  Managed Backup  SP-DESKTOP       4         3       3  [NEXT-MONTH]              -  error: the saved plan saw 3 units on this PSA line, but it now holds 5; someone changed it since the plan was made — run plan again
    digitaltorch-inc/cloud-premium-gb     DigitalTorch   Cloud Backup    CLOUD-GB     135.5     135.5  120.25  [NEXT-MONTH]         +$3.81  update 120.25 → 135.5 (+15.25)
    1 line in sync not shown (plan --all shows it).

    Unmapped vendor accounts (not billed until mapped):
    ACCOUNT       LICENCE TYPE           UNITS  UNBILLED/MONTH
    Slate Gravel  ShadowProtect Desktop      3          $37.50

    Plan: 1 to update (+15.25 / -0 units), 1 in sync, 1 unmapped, 1 error. Revenue: +$3.81/month.

    applied  digitaltorch-inc/cloud-premium-gb: 120.25 → 135.5
    STALE    bobs-dentistry/shadowprotect-desktop: 3 → 4: the saved plan saw 3 units on this PSA line, but it now holds 5; someone changed it since the plan was made — run plan again
    Recorded in history/[YYYY]/[MM]/[RUN].yaml.

    PSA after apply:
      ok digitaltorch-inc/cloud-premium-gb: 135.5
    Plan: 1 to update (+0 / -1 units), 2 in sync, 1 unmapped, 0 errors. Revenue: -$12.50/month.
    ");
    assert_eq!(
        out.stderr,
        "error: 0 line(s) failed, 1 were refused as stale, and 0 did not read back as written\n\
         hint: stale lines changed in the PSA since the plan was made: run `unitsync plan` again \
         to see the PSA as it is now\n"
    );
    assert_eq!(write_calls(&env), [patch("1003/additions/5005", "135.5")]);
    assert_eq!(env.quantities(), [(5001, 5.0), (5003, 2.0), (5005, 135.5)]);
    let history = normalized_history(&env);
    assert_eq!(history.len(), 1);
    assert_eq!(
        history[0].1,
        r#"run: "[RUN]"
approved_by: local:tester
lines:
- mapping: digitaltorch-inc/cloud-premium-gb
  account: DigitalTorch Inc
  license_type: Cloud Premium GB
  company: DigitalTorch
  contract: 1003
  line: 5005
  product: CLOUD-GB
  from: 120.25
  to: 135.5
  outcome: applied
  effective: "[NEXT-MONTH]"
  due: "[TODAY]"
- mapping: bobs-dentistry/shadowprotect-desktop
  account: Bob's Dentistry
  license_type: ShadowProtect Desktop
  company: BobsDentistry
  contract: 1001
  line: 5001
  product: SP-DESKTOP
  from: 3
  to: 4
  outcome: stale
  reason: >-
    the saved plan saw 3 units on this PSA line, but it now holds 5; someone
    changed it since the plan was made — run plan again
"#
    );
}

#[test]
fn apply_of_a_saved_plan_with_another_format_version_is_a_clear_error() {
    let env = Env::new();
    let plan_file = env.temp.path().join("plan.json");
    let out = env.run(&["plan", "--format", "json"]);
    let future = out
        .stdout
        .replacen("\"format_version\": 2", "\"format_version\": 99", 1);
    assert_ne!(future, out.stdout);
    std::fs::write(&plan_file, future).unwrap();
    let out = env.run(&["apply", "--plan", plan_file.to_str().unwrap(), "--yes"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(out.stdout, "");
    assert_eq!(
        out.stderr,
        format!(
            "error: {}: the plan file has format_version 99, but this unitsync reads version 2; \
             apply it with the unitsync version that wrote it, or plan again with this one\n\
             hint: make the plan file with `unitsync plan --out FILE`\n",
            plan_file.display()
        )
    );
    assert_eq!(env.writes(), vec![]);
    assert_eq!(env.history(), vec![]);
}

// ---------------------------------------------------------------------------------------------
// drift

#[test]
fn a_hand_edit_after_an_apply_is_drift_and_is_left_alone() {
    let env = Env::new();
    let out = env.run(&["apply", "--yes"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    env.hand_edit(5001, 7.0);
    env.sandbox.clear_requests();

    let out = env.run(&["plan", "--all", "--detailed-exitcode"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    insta::assert_snapshot!(out.stdout, @"
    MAPPING                               COMPANY        AGREEMENT       PRODUCT     VENDOR  APPROVED    PSA  REVENUE/MONTH  ACTION
    angry-fox-co/shadowprotect-server     AngryFox       Managed Backup  SP-SERVER        2         2      2              -  in sync
    bobs-dentistry/shadowprotect-desktop  BobsDentistry  Managed Backup  SP-DESKTOP       4         3      7              -  drift: PSA 7, last applied 4
    digitaltorch-inc/cloud-premium-gb     DigitalTorch   Cloud Backup    CLOUD-GB     135.5     135.5  135.5              -  in sync

    Unmapped vendor accounts (not billed until mapped):
    ACCOUNT       LICENCE TYPE           UNITS  UNBILLED/MONTH
    Slate Gravel  ShadowProtect Desktop      3          $37.50

    Plan: 0 to update (+0 / -0 units), 2 in sync, 1 drifted, 1 unmapped, 0 errors.
    ");

    let json = env.run(&["plan", "--format", "json"]);
    let plan: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let bob = &plan["lines"][1];
    assert_eq!(bob["mapping"], "bobs-dentistry/shadowprotect-desktop");
    assert_eq!(bob["psa"], 7);
    assert_eq!(bob["last_applied"], 4);
    assert_eq!(bob["action"]["action"], "drift");

    let out = env.run(&["apply", "--yes"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.ends_with("\nNothing to apply.\n"),
        "{}",
        out.stdout
    );
    assert_eq!(env.writes(), vec![]);
    assert_eq!(env.sandbox.addition(5001).unwrap().quantity, 7.0);
}

// ---------------------------------------------------------------------------------------------
// doctor

#[test]
fn doctor_passes_every_check_with_one_line_each() {
    let env = Env::new();
    let out = env.run(&["doctor"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stderr, "");
    let _guard = settings().bind_to_scope();
    insta::assert_snapshot!(out.stdout, @r#"
    [pass] billing repo: 3 mappings
    [pass] host reachable: http://127.0.0.1:[PORT]/ answers; API base http://127.0.0.1:[PORT]/v4_6_release/apis/3.0/
    [pass] credentials accepted: API keys accepted for login company "computech"
    [pass] client id: set, and sent as the clientId header on every request
    [pass] can read contracts: read agreement 1001 (Managed Backup)
    [pass] can read contract lines: read 2 addition(s) of agreement 1001
    [pass] can update contract lines: wrote addition 5001's quantity 3 back unchanged
    All checks passed.
    "#);
    assert_eq!(
        write_calls(&env),
        [patch("1001/additions/5001", "3")],
        "the probe writes the current quantity back"
    );
    assert_eq!(env.quantities(), [(5001, 3.0), (5003, 2.0), (5005, 120.25)]);
}

#[test]
fn doctor_without_the_write_probe_writes_nothing() {
    let env = Env::new();
    let out = env.run(&["doctor", "--no-write-probe"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 8, "{}", out.stdout);
    assert_eq!(
        lines[6],
        "[skip] can update contract lines: not probed (--no-write-probe); without it, doctor writes \
         one mapped addition's quantity back unchanged",
    );
    assert_eq!(lines[7], "All checks passed.");
    assert_eq!(env.writes(), vec![]);
}

#[test]
fn doctor_names_a_missing_private_key() {
    let mut env = Env::new();
    env.set_cred("UNITSYNC_CW_PRIVATE_KEY", None);
    let out = env.run(&["doctor"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(
        out.stdout,
        "[pass] billing repo: 3 mappings\n\
         [FAIL] credentials: environment variable UNITSYNC_CW_PRIVATE_KEY is not set; set it to \
         the API member's private key (shown once when the key is created)\n"
    );
    assert_eq!(out.stderr, "error: doctor found 1 problem\n");
    assert_eq!(env.sandbox.requests(), vec![]);

    let out = env.run(&["plan"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(out.stdout, "");
    assert!(
        out.stderr
            .starts_with("error: environment variable UNITSYNC_CW_PRIVATE_KEY is not set"),
        "{}",
        out.stderr
    );
}

#[test]
fn doctor_with_a_read_only_login_fails_the_update_check_with_its_hint() {
    let env = Env::new();
    let mut login = env.sandbox.login();
    login.read_only = true;
    env.sandbox.set_login(login);
    let out = env.run(&["doctor"]);
    assert_eq!(out.code, Some(4), "{out:?}");
    assert_eq!(out.stderr, "error: doctor found 1 problem\n");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 7, "{}", out.stdout);
    assert!(
        lines[..6].iter().all(|l| l.starts_with("[pass] ")),
        "{}",
        out.stdout
    );
    insta::assert_snapshot!(lines[6], @"[FAIL] can update contract lines: PATCH /v4_6_release/apis/3.0/finance/agreements/1001/additions/5001: the API member lacks permission to change addition 5001 on agreement 1001; give its security role Finance > Agreements (Inquire, Edit, Add) and Companies > Company Maintenance (Inquire) — ConnectWise said: You do not have security permission to edit finance/agreements/1001/additions/5001. Ask your administrator to update the API member's security role.");
    let patches: Vec<_> = env
        .sandbox
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| r.status)
        .collect();
    assert_eq!(patches, [403], "one refused probe, nothing else written");
    assert_eq!(env.quantities(), [(5001, 3.0), (5003, 2.0), (5005, 120.25)]);
}

// ---------------------------------------------------------------------------------------------
// demo

#[test]
fn demo_runs_the_story_to_the_end() {
    let env = Env::new();
    let out = env.run(&["demo"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stderr, "");
    let _guard = settings().bind_to_scope();
    insta::assert_snapshot!(out.stdout, @r#"
    unitsync demo — the StorageCraft PSA guide's story
    ConnectWise sandbox: http://127.0.0.1:[PORT] (login company computech)
    Billing repo:        [DEMO REPO]

    Bob's Dentistry bought a fourth desktop. The vendor now reports 4 ShadowProtect Desktop keys;
    ConnectWise still bills 3. DigitalTorch's cloud storage grew from 120.25 GB to 135.5 GB.

    == The PSA before
      COMPANY           AGREEMENT            ADDITION  PRODUCT     QUANTITY
      Bob's Dentistry   1001 Managed Backup  5001      SP-DESKTOP         3
      Angry Fox Co      1002 Managed Backup  5003      SP-SERVER          2
      DigitalTorch Inc  1003 Cloud Backup    5005      CLOUD-GB      120.25

    == unitsync apply --yes
    MAPPING                               COMPANY        AGREEMENT       PRODUCT     VENDOR  APPROVED     PSA  EFFECTIVE   REVENUE/MONTH  ACTION
    angry-fox-co/shadowprotect-server     AngryFox       Managed Backup  SP-SERVER        2         -       2  -                       -  in sync
    bobs-dentistry/shadowprotect-desktop  BobsDentistry  Managed Backup  SP-DESKTOP       4         -       3  [NEXT-MONTH]        +$12.50  update 3 → 4 (+1)
    digitaltorch-inc/cloud-premium-gb     DigitalTorch   Cloud Backup    CLOUD-GB     135.5         -  120.25  [NEXT-MONTH]         +$3.81  update 120.25 → 135.5 (+15.25)

    Unmapped vendor accounts (not billed until mapped):
    ACCOUNT       LICENCE TYPE           UNITS  UNBILLED/MONTH
    Slate Gravel  ShadowProtect Desktop      3          $37.50

    Plan: 2 to update (+16.25 / -0 units), 1 in sync, 1 unmapped, 0 errors. Revenue: +$16.31/month.

    applied  bobs-dentistry/shadowprotect-desktop: 3 → 4
    applied  digitaltorch-inc/cloud-premium-gb: 120.25 → 135.5
    Recorded in history/[YYYY]/[MM]/[RUN].yaml.

    PSA after apply:
      ok bobs-dentistry/shadowprotect-desktop: 4
      ok digitaltorch-inc/cloud-premium-gb: 135.5
    Plan: 0 to update (+0 / -0 units), 3 in sync, 1 unmapped, 0 errors.

    == history/[YYYY]/[MM]/[RUN].yaml
    run: "[RUN]"
    approved_by: local:tester
    lines:
    - mapping: bobs-dentistry/shadowprotect-desktop
      account: Bob's Dentistry
      license_type: ShadowProtect Desktop
      company: BobsDentistry
      contract: 1001
      line: 5001
      product: SP-DESKTOP
      from: 3
      to: 4
      outcome: applied
      effective: "[NEXT-MONTH]"
      due: "[TODAY]"
    - mapping: digitaltorch-inc/cloud-premium-gb
      account: DigitalTorch Inc
      license_type: Cloud Premium GB
      company: DigitalTorch
      contract: 1003
      line: 5005
      product: CLOUD-GB
      from: 120.25
      to: 135.5
      outcome: applied
      effective: "[NEXT-MONTH]"
      due: "[TODAY]"

    == The PSA after
      COMPANY           AGREEMENT            ADDITION  PRODUCT     QUANTITY
      Bob's Dentistry   1001 Managed Backup  5001      SP-DESKTOP         4
      Angry Fox Co      1002 Managed Backup  5003      SP-SERVER          2
      DigitalTorch Inc  1003 Cloud Backup    5005      CLOUD-GB       135.5

    Slate Gravel is reported by the vendor but mapped to nothing: add a mapping to bill it.
    The history record above says who approved what, and when; it lives in the billing repo.
    "#);
    // The throwaway demo repo is gone, and the test's own sandbox was not touched.
    let left: Vec<_> = std::fs::read_dir(env.temp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, ["billing"]);
    assert_eq!(env.sandbox.requests(), vec![]);
}

// ---------------------------------------------------------------------------------------------
// secrets

const PUBLIC: &str = "PubKey-q7Zr2Xw9";
const PRIVATE: &str = "PrivKey-Hn4Ls8Vt3Qm";
const WRONG_PRIVATE: &str = "WrongKey-Jd6Rp1Yc5Bx";

#[test]
fn secrets_never_appear_in_output_or_history() {
    let mut seed = demo_seed();
    seed.login.public_key = PUBLIC.into();
    seed.login.private_key = PRIVATE.into();
    let mut env = Env::with_seed(seed);
    assert_eq!(env.sandbox.login().private_key, PRIVATE);
    let mut runs = vec![
        env.run(&["plan"]),
        env.run(&["plan", "--format", "json"]),
        env.run(&["-vv", "apply", "--yes"]),
        env.run(&["-vv", "doctor"]),
        env.run(&["-vvv", "plan"]),
    ];
    assert_eq!(
        runs.iter().map(|r| r.code).collect::<Vec<_>>(),
        [Some(0), Some(0), Some(0), Some(0), Some(0)],
        "{runs:?}"
    );
    env.set_cred("UNITSYNC_CW_PRIVATE_KEY", Some(WRONG_PRIVATE));
    let failed = [
        env.run(&["-vvv", "plan"]),
        env.run(&["-vv", "apply", "--yes"]),
        env.run(&["-vv", "doctor"]),
    ];
    for run in &failed {
        assert_eq!(run.code, Some(4), "{run:?}");
        assert!(
            run.stderr.contains("credentials rejected")
                || run.stdout.contains("credentials rejected"),
            "{run:?}"
        );
    }
    runs.extend(failed);
    let history = env.history();
    assert_eq!(history.len(), 1);
    // Also the Basic auth header values, which carry the keys in base64.
    let encoded: Vec<String> = [PRIVATE, WRONG_PRIVATE]
        .iter()
        .map(|key| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(format!("computech+{PUBLIC}:{key}"))
        })
        .collect();
    let secrets = [PUBLIC, PRIVATE, WRONG_PRIVATE, &encoded[0], &encoded[1]];
    for secret in secrets {
        for run in &runs {
            assert!(
                !run.stdout.contains(secret),
                "{secret} in stdout: {}",
                run.stdout
            );
            assert!(
                !run.stderr.contains(secret),
                "{secret} in stderr: {}",
                run.stderr
            );
        }
        for (path, text) in &history {
            assert!(!text.contains(secret), "{secret} in {path}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// bad billing repos

#[test]
fn no_unitsync_yaml_in_the_directory() {
    let env = Env::new();
    std::fs::remove_file(env.repo.join("unitsync.yaml")).unwrap();
    let out = env.run(&["plan"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(out.stdout, "");
    assert_eq!(
        out.stderr
            .replace(&env.repo.display().to_string(), "[REPO]"),
        "unitsync.yaml:1:1: error: file not found: every billing repo has one\n  \
         hint: run unitsync in the billing repo or pass -C DIR; to start one, copy \
         examples/billing-repo/unitsync.yaml\n\
         1 error in 1 file in billing repo [REPO]\n"
    );
    assert_eq!(env.sandbox.requests(), vec![]);
}

#[test]
fn invalid_yaml_is_shown_with_file_line_and_column() {
    let env = Env::new();
    std::fs::write(
        env.repo.join("unitsync.yaml"),
        "psa:\n  connectwise:\n    site: [oops\n",
    )
    .unwrap();
    let out = env.run(&["plan"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(out.stdout, "");
    insta::assert_snapshot!(out.stderr.replace(&env.repo.display().to_string(), "[REPO]"), @r"
    unitsync.yaml:3:11: error: invalid YAML: unclosed bracket '['
    1 error in 1 file in billing repo [REPO]
    ");
    assert_eq!(env.sandbox.requests(), vec![]);
}

#[test]
fn a_negative_vendor_count_names_the_file_and_row() {
    let env = Env::new();
    edit(
        &env.repo.join("usage.csv"),
        "Angry Fox Co,ShadowProtect Server,2,",
        "Angry Fox Co,ShadowProtect Server,-2,",
    );
    for args in [&["plan"][..], &["apply", "--yes"]] {
        let out = env.run(args);
        assert_eq!(out.code, Some(1), "{out:?}");
        assert_eq!(out.stdout, "");
        assert_eq!(
            out.stderr
                .replace(&env.repo.display().to_string(), "[REPO]"),
            "error: vendor source: [REPO]/usage.csv:3: units -2 (column \"units\") is negative; \
             a vendor cannot bill fewer than zero units, so fix the source data\n"
        );
    }
    assert_eq!(env.writes(), vec![]);
}

#[test]
fn a_stale_line_of_a_saved_lock_plan_records_the_approved_count_it_was_refused() {
    let env = Env::new();
    edit(
        &env.repo.join("units.lock.yaml"),
        "bobs-dentistry/shadowprotect-desktop: 3",
        "bobs-dentistry/shadowprotect-desktop: 5",
    );
    let plan_file = env.temp.path().join("plan.json");
    let out = env.run(&["plan", "--from-lock", "--out", plan_file.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.contains("update 3 → 5 (+2)"),
        "the approved 5, not the vendor's 4: {}",
        out.stdout
    );

    env.hand_edit(5001, 6.0);
    let out = env.run(&[
        "apply",
        "--from-lock",
        "--plan",
        plan_file.to_str().unwrap(),
        "--yes",
    ]);
    assert_eq!(out.code, Some(4), "{out:?}");
    assert!(
        out.stdout.contains(
            "STALE    bobs-dentistry/shadowprotect-desktop: 3 → 5: the saved plan saw 3 units"
        ),
        "{}",
        out.stdout
    );
    assert_eq!(write_calls(&env), [patch("1003/additions/5005", "135.5")]);
    let history = normalized_history(&env);
    assert_eq!(history.len(), 1);
    let bob = history[0]
        .1
        .split("- mapping: ")
        .find(|l| l.starts_with("bobs-dentistry/"))
        .unwrap();
    assert!(
        bob.contains("  from: 3\n  to: 5\n  outcome: stale\n"),
        "{bob}"
    );
}

#[test]
fn a_saved_plan_whose_every_line_is_stale_applies_nothing_and_says_so() {
    let env = Env::new();
    let plan_file = env.temp.path().join("plan.json");
    let out = env.run(&["plan", "--out", plan_file.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{out:?}");
    env.hand_edit(5001, 6.0);
    env.hand_edit(5005, 100.0);
    env.sandbox.clear_requests();
    let out = env.run(&["apply", "--plan", plan_file.to_str().unwrap(), "--yes"]);
    assert_eq!(out.code, Some(4), "{out:?}");
    let _guard = settings().bind_to_scope();
    insta::assert_snapshot!(out.stdout, @"
    MAPPING                               COMPANY        AGREEMENT       PRODUCT     VENDOR  APPROVED     PSA  EFFECTIVE   REVENUE/MONTH  ACTION
    bobs-dentistry/shadowprotect-desktop  BobsDentistry  Managed Backup  SP-DESKTOP       4         3       3  [NEXT-MONTH]              -  error: the saved plan saw 3 units on this PSA line, but it now holds 6; someone changed it since the plan was made — run plan again
    digitaltorch-inc/cloud-premium-gb     DigitalTorch   Cloud Backup    CLOUD-GB     135.5     135.5  120.25  [NEXT-MONTH]              -  error: the saved plan saw 120.25 units on this PSA line, but it now holds 100; someone changed it since the plan was made — run plan again
    1 line in sync not shown (plan --all shows it).

    Unmapped vendor accounts (not billed until mapped):
    ACCOUNT       LICENCE TYPE           UNITS  UNBILLED/MONTH
    Slate Gravel  ShadowProtect Desktop      3          $37.50

    Plan: 0 to update (+0 / -0 units), 1 in sync, 1 unmapped, 2 errors.

    STALE    bobs-dentistry/shadowprotect-desktop: 3 → 4: the saved plan saw 3 units on this PSA line, but it now holds 6; someone changed it since the plan was made — run plan again
    STALE    digitaltorch-inc/cloud-premium-gb: 120.25 → 135.5: the saved plan saw 120.25 units on this PSA line, but it now holds 100; someone changed it since the plan was made — run plan again
    Recorded in history/[YYYY]/[MM]/[RUN].yaml.
    ");
    assert_eq!(
        out.stderr,
        "error: 2 lines of the saved plan were refused because the PSA changed since the plan \
         was made; nothing was applied\n\
         hint: run `unitsync plan` again to see the PSA as it is now, and apply a new plan\n"
    );
    assert_eq!(env.writes(), vec![]);
    assert_eq!(env.quantities(), [(5001, 6.0), (5003, 2.0), (5005, 100.0)]);
    let history = normalized_history(&env);
    assert_eq!(history.len(), 1);
    assert_eq!(
        history[0].1.matches("  outcome: stale\n").count(),
        2,
        "{}",
        history[0].1
    );
    assert!(
        out.stdout
            .contains(&format!("Recorded in {}.\n", history[0].0))
    );
}

#[test]
fn a_line_the_psa_keeps_refusing_fails_alone_and_is_recorded_as_failed() {
    let env = Env::new();
    env.sandbox.set_faults(
        Faults::none()
            .server_errors(100, 500)
            .only_method("PATCH")
            .only_path_containing("/additions/5005"),
    );
    let out = env.run(&["apply", "--yes"]);
    assert_eq!(out.code, Some(4), "{out:?}");
    let _guard = settings().bind_to_scope();
    insta::assert_snapshot!(out.stdout, @"
    MAPPING                               COMPANY        AGREEMENT       PRODUCT     VENDOR  APPROVED     PSA  EFFECTIVE   REVENUE/MONTH  ACTION
    bobs-dentistry/shadowprotect-desktop  BobsDentistry  Managed Backup  SP-DESKTOP       4         3       3  [NEXT-MONTH]        +$12.50  update 3 → 4 (+1)
    digitaltorch-inc/cloud-premium-gb     DigitalTorch   Cloud Backup    CLOUD-GB     135.5     135.5  120.25  [NEXT-MONTH]         +$3.81  update 120.25 → 135.5 (+15.25)
    1 line in sync not shown (plan --all shows it).

    Unmapped vendor accounts (not billed until mapped):
    ACCOUNT       LICENCE TYPE           UNITS  UNBILLED/MONTH
    Slate Gravel  ShadowProtect Desktop      3          $37.50

    Plan: 2 to update (+16.25 / -0 units), 1 in sync, 1 unmapped, 0 errors. Revenue: +$16.31/month.

    applied  bobs-dentistry/shadowprotect-desktop: 3 → 4
    FAILED   digitaltorch-inc/cloud-premium-gb: 120.25 → 135.5: PATCH /v4_6_release/apis/3.0/finance/agreements/1003/additions/5005: server error (HTTP 500) after 4 attempt(s): An unexpected error occurred (injected by the sandbox)
    Recorded in history/[YYYY]/[MM]/[RUN].yaml.

    PSA after apply:
      ok bobs-dentistry/shadowprotect-desktop: 4
    Plan: 1 to update (+15.25 / -0 units), 2 in sync, 1 unmapped, 0 errors. Revenue: +$3.81/month.
    ");
    assert_eq!(
        out.stderr,
        "error: 1 line(s) failed, 0 were refused as stale, and 0 did not read back as written\n\
         hint: see the reasons above; run apply again to retry what failed (applied lines are \
         not written twice)\n"
    );
    assert_eq!(env.quantities(), [(5001, 4.0), (5003, 2.0), (5005, 120.25)]);
    let history = normalized_history(&env);
    assert!(
        history[0].1.ends_with(
            "  from: 120.25\n  to: 135.5\n  outcome: failed\n  reason: \"PATCH \
             /v4_6_release/apis/3.0/finance/agreements/1003/additions/5005: server error (HTTP \
             500) after 4 attempt(s): An unexpected error occurred (injected by the sandbox)\"\n"
        ),
        "{}",
        history[0].1
    );

    // The PSA recovers: the next run writes only the failed line.
    env.sandbox.set_faults(Faults::none());
    env.sandbox.clear_requests();
    let out = env.run(&["apply", "--yes"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(write_calls(&env), [patch("1003/additions/5005", "135.5")]);
    assert_eq!(env.quantities(), [(5001, 4.0), (5003, 2.0), (5005, 135.5)]);
    assert_eq!(env.history().len(), 2);
}

#[test]
fn apply_with_a_broken_mapping_applies_the_other_lines_and_exits_1() {
    let env = Env::new();
    edit(
        &env.repo.join("mappings.yaml"),
        "agreement: 1002",
        "agreement: 9999",
    );
    let out = env.run_with_stdin(&["apply"], Some("yes\n"));
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stdout.contains(
            "applied  bobs-dentistry/shadowprotect-desktop: 3 → 4\n\
             applied  digitaltorch-inc/cloud-premium-gb: 120.25 → 135.5\n"
        ),
        "{}",
        out.stdout
    );
    assert!(out.stdout.ends_with(
        "\nPSA after apply:\n  ok bobs-dentistry/shadowprotect-desktop: 4\n  \
         ok digitaltorch-inc/cloud-premium-gb: 135.5\n\
         Plan: 0 to update (+0 / -0 units), 2 in sync, 1 unmapped, 1 error.\n"
    ));
    assert_eq!(
        out.stderr,
        "error: 1 mapping cannot be planned; see the errors above\n\
         hint: fix the mappings or the PSA records they name, then run plan again\n"
    );
    assert_eq!(
        write_calls(&env),
        [
            patch("1001/additions/5001", "4"),
            patch("1003/additions/5005", "135.5")
        ]
    );
    assert_eq!(normalized_history(&env)[0].1, HISTORY_APPLIED);
}

#[test]
fn doctor_with_a_broken_billing_repo_fails_its_first_check() {
    let env = Env::new();
    std::fs::write(env.repo.join("unitsync.yaml"), "psa: [\n").unwrap();
    let out = env.run(&["doctor"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(
        out.stdout,
        "[FAIL] billing repo: has errors (listed above); `unitsync validate` checks it\n"
    );
    assert_eq!(
        out.stderr
            .replace(&env.repo.display().to_string(), "[REPO]"),
        "unitsync.yaml:1:6: error: invalid YAML: unclosed bracket '['\n\
         1 error in 1 file in billing repo [REPO]\n"
    );
    assert_eq!(env.sandbox.requests(), vec![]);
}

#[test]
fn a_usage_error_exits_1_never_2_which_means_changes() {
    let env = Env::new();
    for args in [
        &["plan", "--detailed-exitcode", "--fromat", "json"][..],
        &["plan", "--format", "xml"],
        &[],
    ] {
        let out = env.run(args);
        assert_eq!(out.code, Some(1), "{args:?}: {out:?}");
        assert_eq!(out.stdout, "");
        assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
    }
    let out = env.run(&["plan", "--format", "xml"]);
    assert_eq!(
        out.stderr,
        "error: invalid value 'xml' for '--format <FORMAT>'\n  \
         [possible values: table, markdown, json]\n\n\
         For more information, try '--help'.\n"
    );
    let help = env.run(&["plan", "--help"]);
    assert_eq!(help.code, Some(0), "{help:?}");
    assert!(
        help.stdout.contains("--detailed-exitcode"),
        "{}",
        help.stdout
    );
    assert_eq!(env.sandbox.requests(), vec![]);
}

#[test]
fn plan_json_with_a_broken_mapping_is_still_json_and_exits_1() {
    let env = Env::new();
    edit(
        &env.repo.join("mappings.yaml"),
        "agreement: 1002",
        "agreement: 9999",
    );
    let out = env.run(&["plan", "--format", "json"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).expect("stdout is JSON only");
    assert_eq!(plan["summary"]["errors"], 1);
    assert_eq!(
        plan["lines"][0]["mapping"],
        "angry-fox-co/shadowprotect-server"
    );
    assert_eq!(plan["lines"][0]["action"]["action"], "error");
    assert!(
        out.stderr
            .starts_with("error: 1 mapping cannot be planned; see the errors above\n"),
        "{}",
        out.stderr
    );
}

#[test]
fn demo_keep_leaves_the_billing_repo_with_its_history() {
    let env = Env::new();
    let kept = env.temp.path().join("kept");
    let out = env.run(&["demo", "--keep", kept.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("Billing repo:        {}\n", kept.display())),
        "{}",
        out.stdout
    );
    let mut files = Vec::new();
    collect_files(&kept, &mut files);
    let mut names: Vec<String> = files
        .iter()
        .map(|p| {
            p.strip_prefix(&kept)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    assert_eq!(names.len(), 5, "{names:?}");
    assert_eq!(
        names[1..],
        [
            "history/last-source-accounts",
            "mappings.yaml",
            "unitsync.yaml",
            "usage.csv"
        ]
    );
    assert!(names[0].starts_with("history/2"), "{names:?}");

    // The folder must not exist yet.
    let again = env.run(&["demo", "--keep", kept.to_str().unwrap()]);
    assert_eq!(again.code, Some(1), "{again:?}");
    assert_eq!(again.stdout, "");
    assert!(
        again
            .stderr
            .starts_with(&format!("error: cannot create {}: ", kept.display())),
        "{}",
        again.stderr
    );
    assert!(
        again
            .stderr
            .ends_with("\nhint: name a folder that does not exist yet\n"),
        "{}",
        again.stderr
    );
}

#[test]
fn apply_that_cannot_write_history_still_shows_what_it_changed() {
    let env = Env::new();
    // A file where this year's history folder should be (written as root, so permissions
    // would not stop it).
    let year = crate::support::today().year().to_string();
    std::fs::create_dir(env.repo.join("history")).unwrap();
    std::fs::write(env.repo.join("history").join(year), "not a folder\n").unwrap();
    let out = env.run(&["apply", "--yes"]);
    assert_eq!(out.code, Some(4), "{out:?}");
    assert_eq!(env.quantities(), [(5001, 4.0), (5003, 2.0), (5005, 135.5)]);
    assert!(
        out.stdout.ends_with(
            "\napplied  bobs-dentistry/shadowprotect-desktop: 3 → 4\n\
             applied  digitaltorch-inc/cloud-premium-gb: 120.25 → 135.5\n"
        ),
        "the output is the only record left: {}",
        out.stdout
    );
    assert!(
        out.stderr
            .ends_with("\nhint: the PSA was changed; keep this output as the record\n"),
        "{}",
        out.stderr
    );
}

#[test]
fn apply_of_a_saved_lock_plan_checks_convergence_against_that_plan() {
    let env = Env::new();
    edit(
        &env.repo.join("units.lock.yaml"),
        "bobs-dentistry/shadowprotect-desktop: 3",
        "bobs-dentistry/shadowprotect-desktop: 5",
    );
    let plan_file = env.temp.path().join("plan.json");
    let out = env.run(&["plan", "--from-lock", "--out", plan_file.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{out:?}");
    // Applied without repeating --from-lock: the saved plan says what it was made from.
    let out = env.run(&["apply", "--plan", plan_file.to_str().unwrap(), "--yes"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(
        write_calls(&env),
        [
            patch("1001/additions/5001", "5"),
            patch("1003/additions/5005", "135.5")
        ]
    );
    assert!(
        out.stdout.ends_with(
            "\nPSA after apply:\n  ok bobs-dentistry/shadowprotect-desktop: 5\n  \
             ok digitaltorch-inc/cloud-premium-gb: 135.5\n\
             Plan: 0 to update (+0 / -0 units), 1 to propose, 2 in sync, 1 unmapped, 0 errors. Revenue: -$12.50/month.\n"
        ),
        "{}",
        out.stdout
    );
}

/// Runs `unitsync -C REPO ARGS…` on a pseudo-terminal (through util-linux `script`), returning
/// everything the terminal showed.
fn run_on_a_terminal(env: &Env, args: &[&str]) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut line = format!(
        "{} -C {}",
        quote(&binary().to_string_lossy()),
        quote(&env.repo.to_string_lossy())
    );
    for arg in args {
        line.push(' ');
        line.push_str(&quote(arg));
    }
    let mut cmd = Command::new("script");
    cmd.env_clear()
        .env(unitsync::clock::ENV_NOW, crate::support::now().to_string())
        .env("NO_COLOR", "1")
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args(["-q", "-e", "-c", &line, "/dev/null"]);
    for (name, value) in &env.creds {
        if let Some(value) = value {
            cmd.env(name, value);
        }
    }
    let out = cmd
        .output()
        .expect("util-linux `script` runs the command on a pseudo-terminal");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn progress_is_shown_on_a_terminal_only_and_cleared_before_the_plan() {
    let env = Env::new();
    let shown = run_on_a_terminal(&env, &["plan"]);
    assert!(
        shown.contains("\r\x1b[K  reading the PSA: 1 requests"),
        "no progress line on a terminal: {shown:?}"
    );
    let cleared = shown.rfind("\r\x1b[K").unwrap();
    let plan = shown.find("Plan: 2 to update").unwrap();
    assert!(
        cleared < plan,
        "the progress line is cleared before the plan"
    );
    // --quiet, or no terminal (every other test here: stderr is exactly empty), shows none.
    let quiet = run_on_a_terminal(&env, &["-q", "plan"]);
    assert!(!quiet.contains("reading the PSA"), "{quiet:?}");
    assert!(quiet.contains("Plan: 2 to update"));
}

#[test]
fn a_vendor_count_of_0_is_held_not_applied_and_apply_says_why() {
    // The guide's example: the vendor reports 0 for Bob's Dentistry.
    let env = Env::new();
    edit(
        &env.repo.join("usage.csv"),
        "Bob's Dentistry,ShadowProtect Desktop,4,",
        "Bob's Dentistry,ShadowProtect Desktop,0,",
    );
    let out = env.run(&["apply", "--yes"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stderr, "");
    let reason = "the vendor reports 0, and unitsync never sets a line to 0 by itself; to bill \
                  nothing, approve 0 by writing it on this line of units.lock.yaml in the pull request";
    assert!(
        out.stdout.contains(&format!(
            "held     bobs-dentistry/shadowprotect-desktop: 3 → 0 not applied: {reason}\n"
        )),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!("held: 3 → 0: {reason}")),
        "the table shows the hold: {}",
        out.stdout
    );
    assert!(
        out.stdout.contains(
            "Plan: 1 to update (+15.25 / -0 units), 1 in sync, 1 held, 1 unmapped, 0 errors."
        ),
        "{}",
        out.stdout
    );
    assert_eq!(
        write_calls(&env),
        [patch("1003/additions/5005", "135.5")],
        "only DigitalTorch is written"
    );
    assert_eq!(env.quantities(), [(5001, 3.0), (5003, 2.0), (5005, 135.5)]);
    // The run was healthy, so it records how many accounts the source returned.
    assert_eq!(
        std::fs::read_to_string(env.repo.join("history/last-source-accounts")).unwrap(),
        "4\n"
    );

    // The JSON plan carries the hold and its reason; holds are no changes for the exit code.
    let json = env.run(&["plan", "--format", "json", "--detailed-exitcode"]);
    assert_eq!(json.code, Some(0), "{json:?}");
    let value: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let bob = value["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["mapping"] == "bobs-dentistry/shadowprotect-desktop")
        .unwrap();
    assert_eq!(
        bob["action"],
        serde_json::json!({"action": "hold", "from": 3, "to": 0, "reason": {"kind": "to-zero"}})
    );

    // The Markdown plan has a "Held back" section with the reason and how to release it.
    let md = env.run(&["plan", "--format", "markdown"]);
    assert!(md.stdout.contains("### Held back (1)"), "{}", md.stdout);
    assert!(
        md.stdout.contains("units.lock.yaml in the pull request"),
        "{}",
        md.stdout
    );
}

#[test]
fn an_empty_vendor_source_holds_everything_and_changes_nothing() {
    let env = Env::new();
    std::fs::write(
        env.repo.join("usage.csv"),
        "account,license_type,units,unit\n",
    )
    .unwrap();
    let out = env.run(&["apply", "--yes"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.contains(
            "Plan: 0 to update (+0 / -0 units), 0 in sync, 3 held, 0 unmapped, 0 errors."
        ),
        "{}",
        out.stdout
    );
    for (mapping, from) in [
        ("angry-fox-co/shadowprotect-server", "2"),
        ("bobs-dentistry/shadowprotect-desktop", "3"),
        ("digitaltorch-inc/cloud-premium-gb", "120.25"),
    ] {
        assert!(
            out.stdout.contains(&format!(
                "held     {mapping}: {from} → 0 not applied: the vendor source returned no records at all"
            )),
            "{mapping}: {}",
            out.stdout
        );
    }
    assert!(
        out.stdout.contains("\nNothing to apply.\n"),
        "{}",
        out.stdout
    );
    assert_eq!(env.writes(), vec![]);
    assert_eq!(env.quantities(), [(5001, 3.0), (5003, 2.0), (5005, 120.25)]);
    // An outage never becomes the baseline the next run is compared against.
    assert!(!env.repo.join("history/last-source-accounts").exists());
}

// ---------------------------------------------------------------------------------------------
// The run lock and the default branch
// ---------------------------------------------------------------------------------------------

#[test]
fn a_second_apply_on_the_same_machine_is_refused_while_the_first_runs() {
    let env = Env::new();
    env.sandbox
        .set_faults(Faults::none().with_latency(std::time::Duration::from_millis(300)));
    let first = env.command(&["apply", "--yes"], false).spawn().unwrap();
    // The lock is taken before the PSA is read: once a request arrives, it is held.
    let start = std::time::Instant::now();
    while env.sandbox.requests().is_empty() {
        assert!(start.elapsed() < std::time::Duration::from_secs(10));
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let second = env.run(&["apply", "--yes"]);
    let first = first.wait_with_output().unwrap();
    assert_eq!(second.code, Some(4), "{second:?}");
    assert!(
        second
            .stderr
            .starts_with("error: another unitsync apply is running on this machine (tester@"),
        "{}",
        second.stderr
    );
    assert!(
        second
            .stderr
            .contains("; nothing was changed\nhint: wait for that run to finish; a run that was killed released this lock when it ended\n"),
        "{}",
        second.stderr
    );
    assert_eq!(second.stdout, "", "the second run read nothing");
    assert!(first.status.success(), "{first:?}");
    assert_eq!(
        env.writes().len(),
        2,
        "Bob's and DigitalTorch's lines, written once, by the first run"
    );
    // The first run is over: the lock is free again.
    env.sandbox.set_faults(Faults::none());
    let third = env.run(&["apply", "--yes"]);
    assert_eq!(third.code, Some(0), "{third:?}");
    assert!(
        third.stdout.contains("Nothing to apply."),
        "{}",
        third.stdout
    );
}

#[test]
fn apply_in_a_git_checkout_runs_only_from_the_default_branch() {
    let env = Env::new();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .arg("-C")
            .arg(&env.repo)
            .args(args)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    git(&["init", "--quiet", "-b", "main"]);
    git(&["add", "."]);
    git(&["commit", "--quiet", "-m", "billing repo"]);
    git(&["switch", "--quiet", "-c", "raise-bob"]);

    let refused = env.run(&["apply", "--yes"]);
    assert_eq!(refused.code, Some(1), "{refused:?}");
    assert_eq!(
        refused.stderr,
        "error: HEAD is branch raise-bob, not the default branch main; apply runs only from the default branch\n\
         hint: `git switch main` and run again; `unitsync plan` shows what a branch would change\n"
    );
    assert!(env.writes().is_empty());
    assert!(
        env.sandbox.requests().is_empty(),
        "refused before reading the PSA"
    );

    git(&["switch", "--quiet", "main"]);
    let applied = env.run(&["apply", "--yes"]);
    assert_eq!(applied.code, Some(0), "{applied:?}");
    assert_eq!(env.writes().len(), 2);
}

#[test]
fn a_command_source_never_sees_unitsyncs_own_secrets() {
    let mut env = Env::new();
    env.creds
        .push(("GITHUB_TOKEN", Some("ghp_never_for_the_vendor".into())));
    env.creds
        .push(("VENDOR_API_KEY", Some("the-vendors-own".into())));
    // The vendor's program reports, as account names, which variables it can see.
    edit(
        &env.repo.join("unitsync.yaml"),
        "  csv:\n    path: usage.csv\n",
        "  command:\n    program: sh\n    args: ['-c', 'printf \"[{\\\"account\\\": \\\"%s|%s|%s\\\", \\\"license_type\\\": \\\"x\\\", \\\"units\\\": 1}]\" \"${UNITSYNC_CW_PRIVATE_KEY:-withheld}\" \"${GITHUB_TOKEN:-withheld}\" \"${VENDOR_API_KEY:-unset}\"']\n",
    );
    let out = env.run(&["accounts", "--unmapped"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.contains("withheld|withheld|the-vendors-own"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_saved_plan_rerun_after_a_kill_records_what_was_written_and_writes_the_rest_once() {
    let env = Env::new();
    let plan_file = env.temp.path().join("plan.json");
    let out = env.run(&["plan", "--out", plan_file.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{out:?}");
    // A run of this plan wrote Bob's 4 and was killed before it recorded anything.
    env.hand_edit(5001, 4.0);
    let out = env.run(&["apply", "--plan", plan_file.to_str().unwrap(), "--yes"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(
        write_calls(&env),
        [patch("1003/additions/5005", "135.5")],
        "Bob's line is not written again"
    );
    assert_eq!(env.quantities(), [(5001, 4.0), (5003, 2.0), (5005, 135.5)]);
    let history = normalized_history(&env);
    assert_eq!(history.len(), 1);
    assert!(
        history[0].1.ends_with(&format!(
            "  from: 3\n  to: 4\n  outcome: applied\n  reason: {}\n  effective: \"[NEXT-MONTH]\"\n  due: \"[TODAY]\"\n",
            unitsync::apply::FOUND_APPLIED
        )),
        "{}",
        history[0].1
    );
    assert!(
        history[0]
            .1
            .contains("  from: 120.25\n  to: 135.5\n  outcome: applied\n")
    );
}

#[test]
fn a_decrease_during_a_commitment_is_held_and_goes_through_after_the_term() {
    let env = Env::new();
    edit(
        &env.repo.join("usage.csv"),
        "Bob's Dentistry,ShadowProtect Desktop,4,",
        "Bob's Dentistry,ShadowProtect Desktop,2,",
    );
    // In place, a change bills from the agreement's next invoice (the sandbox's is the first of
    // next month): a term that ends two months from today still holds it.
    let ends = crate::support::today() + jiff::Span::new().days(60);
    edit(
        &env.repo.join("mappings.yaml"),
        "    addition: SP-DESKTOP                 # product identifier on that agreement (or { id: N })\n",
        &format!("    addition: SP-DESKTOP\n    commitment: {{ term: annual, ends: {ends} }}\n"),
    );
    let out = env.run(&["apply", "--yes"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let today = crate::support::today();
    let bills = crate::support::first_of_next_month();
    assert!(
        out.stdout.contains(&format!(
            "held     bobs-dentistry/shadowprotect-desktop: 3 → 2 not applied: a decrease during \
             the annual commitment, which ends {ends}: it would bill from {bills}, while the \
             vendor bills the committed count until the term ends; to release it, approve the \
             new value on this line of units.lock.yaml, or move commitment.ends in the mapping \
             when the term renews\n"
        )),
        "{}",
        out.stdout
    );
    assert_eq!(write_calls(&env), [patch("1003/additions/5005", "135.5")]);
    assert_eq!(env.quantities(), [(5001, 3.0), (5003, 2.0), (5005, 135.5)]);

    // The term ended yesterday: the decrease goes through.
    let yesterday = today - jiff::Span::new().days(1);
    edit(
        &env.repo.join("mappings.yaml"),
        &format!("ends: {ends} }}"),
        &format!("ends: {yesterday} }}"),
    );
    let out = env.run(&["apply", "--yes"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout
            .contains("applied  bobs-dentistry/shadowprotect-desktop: 3 → 2\n"),
        "{}",
        out.stdout
    );
    assert_eq!(env.quantities(), [(5001, 2.0), (5003, 2.0), (5005, 135.5)]);
}

#[test]
fn a_reviewers_note_on_a_lock_line_is_kept_with_the_change_it_explains() {
    let env = Env::new();
    let lock = env.repo.join("units.lock.yaml");
    edit(
        &lock,
        "bobs-dentistry/shadowprotect-desktop: 3",
        "bobs-dentistry/shadowprotect-desktop: 4   # ticket 4411: Bob bought a fourth desktop",
    );
    // A note beside another value than the one applied explains that value, not this change.
    edit(
        &lock,
        "digitaltorch-inc/cloud-premium-gb: 135.5",
        "digitaltorch-inc/cloud-premium-gb: 130 # capped until the renewal",
    );
    let out = env.run(&["apply", "--yes"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let out = env.run(&["history", "--format", "csv"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let mut reader = csv::Reader::from_reader(out.stdout.as_bytes());
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let notes: Vec<(String, String)> = reader
        .records()
        .map(Result::unwrap)
        .map(|r| (r[col("mapping")].to_string(), r[col("note")].to_string()))
        .collect();
    assert_eq!(
        notes,
        [
            (
                "bobs-dentistry/shadowprotect-desktop".to_string(),
                "ticket 4411: Bob bought a fourth desktop".to_string()
            ),
            (
                "digitaltorch-inc/cloud-premium-gb".to_string(),
                String::new()
            ),
        ]
    );
    // The record itself carries it, for the audit trail in git.
    let record = std::fs::read_dir(
        env.repo
            .join("history")
            .join(crate::support::today().strftime("%Y/%m").to_string()),
    )
    .unwrap()
    .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
    .find(|text| text.contains("run:"))
    .unwrap();
    assert!(
        record.contains("  note: 'ticket 4411: Bob bought a fourth desktop'\n")
            || record.contains("  note: \"ticket 4411: Bob bought a fourth desktop\"\n"),
        "{record}"
    );
    assert_eq!(record.matches("note:").count(), 1, "{record}");
}

// ---------------------------------------------------------------------------------------------
// Invoiced periods

/// The demo with Bob's agreement already invoiced for next month (its next invoice is the month
/// after), his line written by cancel-and-readd, and `billing:` as given.
fn invoiced_ahead(billing: &str) -> (Env, jiff::civil::Date, jiff::civil::Date) {
    let next = crate::support::first_of_next_month();
    let after = next.checked_add(jiff::Span::new().months(1)).unwrap();
    let mut seed = demo_seed();
    let bob = seed.agreements.iter_mut().find(|a| a.id == 1001).unwrap();
    bob.next_invoice_date = Some(format!("{after}T00:00:00Z"));
    let env = Env::with_seed(seed);
    edit(
        &env.repo.join("unitsync.yaml"),
        "    update: in-place\n",
        &format!("    update: cancel-and-readd\n{billing}"),
    );
    (env, next, after)
}

#[test]
fn a_readd_dated_in_an_invoiced_period_rolls_forward_to_the_next_invoice() {
    let (env, next, after) = invoiced_ahead("");
    let out = env.run(&["plan"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let bob = out
        .stdout
        .lines()
        .find(|l| l.starts_with("bobs-dentistry/"))
        .unwrap();
    assert!(bob.contains(&format!("{after} (moved)")), "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!(
            "Dates moved for invoices:\n  bobs-dentistry/shadowprotect-desktop: {after}: {next} falls in a period already invoiced; moved to the next period (billing.invoiced_period: roll-forward)\n"
        )),
        "{}",
        out.stdout
    );
    // DigitalTorch's agreement is not invoiced ahead: its date stays the settings' one.
    let cloud = out
        .stdout
        .lines()
        .find(|l| l.starts_with("digitaltorch-inc/"))
        .unwrap();
    assert!(cloud.contains(&format!("{next}   ")), "{cloud}");

    let out = env.run(&["apply", "--yes"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let last_day = after.yesterday().unwrap();
    let writes: Vec<(String, String, serde_json::Value)> = env
        .writes()
        .into_iter()
        .filter(|r| r.path.contains("/agreements/1001/"))
        .map(|r| (r.method, r.path, r.body.unwrap_or_default()))
        .collect();
    assert_eq!(writes.len(), 2, "{writes:#?}");
    assert_eq!(
        writes[0],
        (
            "PATCH".to_string(),
            "/v4_6_release/apis/3.0/finance/agreements/1001/additions/5001".to_string(),
            serde_json::json!([{"op": "replace", "path": "cancelledDate", "value": format!("{last_day}T00:00:00Z")}])
        )
    );
    assert_eq!(writes[1].0, "POST");
    assert_eq!(
        writes[1].2["effectiveDate"],
        serde_json::json!(format!("{after}T00:00:00Z"))
    );
    assert_eq!(writes[1].2["quantity"], serde_json::json!(4));
    // History keeps both days: the one it bills from and the one it was due — the invoiced days
    // between billed the old count.
    let history = env.history();
    assert!(
        // (The copy's id depends on which of the two re-adds the sandbox saw first.)
        history[0]
            .1
            .contains("  from: 3\n  to: 4\n  outcome: applied\n  new_line: ")
            && history[0].1.contains(&format!(
                "  effective: \"{after}\"\n  due: \"{next}\"\n- mapping: digitaltorch-inc/"
            )),
        "{}",
        history[0].1
    );
}

#[test]
fn with_invoiced_period_refuse_a_change_dated_in_an_invoiced_period_is_held() {
    let (env, next, after) = invoiced_ahead("billing:\n  invoiced_period: refuse\n");
    let out = env.run(&["apply", "--yes"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.contains(&format!(
            "held     bobs-dentistry/shadowprotect-desktop: 3 → 4 not applied: it would bill from {next}, inside a period already invoiced (the next open period starts {after}), and billing.invoiced_period in unitsync.yaml is refuse; it is written once its date is open — or set invoiced_period: roll-forward to bill it from {after}\n"
        )),
        "{}",
        out.stdout
    );
    // Bob's agreement is untouched; DigitalTorch's, not invoiced ahead, is re-added as usual.
    let written: Vec<(String, String)> = env
        .writes()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    assert_eq!(
        written,
        [
            (
                "PATCH".to_string(),
                "/v4_6_release/apis/3.0/finance/agreements/1003/additions/5005".to_string()
            ),
            (
                "POST".to_string(),
                "/v4_6_release/apis/3.0/finance/agreements/1003/additions".to_string()
            ),
        ]
    );
    assert_eq!(env.sandbox.addition(5001).unwrap().cancelled_date, None);
}

// ---------------------------------------------------------------------------------------------
// Prices

#[test]
fn a_synced_price_is_written_with_the_count_and_alone_and_prices_are_never_written_otherwise() {
    let env = Env::new();
    // Without sync_price, a plan and an apply never touch a price.
    let out = env.run(&["apply", "--yes"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        env.writes()
            .iter()
            .all(|r| !r.body.as_ref().unwrap().to_string().contains("unitPrice")),
        "{:#?}",
        env.writes()
    );

    // Bob's desktops go to 14.00 with his count; Angry Fox's servers, in sync, from 55.00 to
    // 60.00 with a cost of 32.00.
    let env = Env::new();
    edit(
        &env.repo.join("mappings.yaml"),
        "    addition: SP-DESKTOP                 # product identifier on that agreement (or { id: N })\n",
        "    addition: SP-DESKTOP\n    price: 14.00\n    sync_price: true\n",
    );
    edit(
        &env.repo.join("mappings.yaml"),
        "    addition: SP-SERVER\n",
        "    addition: SP-SERVER\n    price: 60\n    cost: 32\n",
    );
    std::fs::write(
        env.repo.join("unitsync.yaml"),
        std::fs::read_to_string(env.repo.join("unitsync.yaml")).unwrap()
            + "billing:\n  sync_price: true\n  sync_cost: true\n",
    )
    .unwrap();
    let out = env.run(&["plan", "--all"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let row = |mapping: &str| {
        out.stdout
            .lines()
            .find(|l| l.starts_with(mapping))
            .unwrap()
            .to_string()
    };
    assert!(
        row("angry-fox-co/")
            .ends_with("+$10.00  reprice: price $55.00 → $60.00, cost $30.00 → $32.00"),
        "{}",
        out.stdout
    );
    // 4 × 14.00 − 3 × 12.50 = 18.50 a month.
    assert!(
        row("bobs-dentistry/").ends_with("+$18.50  update 3 → 4 (+1); price $12.50 → $14.00"),
        "{}",
        out.stdout
    );

    let before = env.writes().len();
    let out = env.run(&["apply", "--yes"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let mut writes: Vec<(String, serde_json::Value)> = env.writes()[before..]
        .iter()
        .map(|r| (r.path.clone(), r.body.clone().unwrap()))
        .collect();
    writes.sort_by(|a, b| a.0.cmp(&b.0));
    let path = |p: &str| format!("/v4_6_release/apis/3.0/finance/agreements/{p}");
    assert_eq!(
        writes,
        [
            (
                path("1001/additions/5001"),
                serde_json::json!([
                    {"op": "replace", "path": "quantity", "value": 4},
                    {"op": "replace", "path": "unitPrice", "value": 14}
                ])
            ),
            (
                path("1002/additions/5003"),
                serde_json::json!([
                    {"op": "replace", "path": "quantity", "value": 2},
                    {"op": "replace", "path": "unitPrice", "value": 60},
                    {"op": "replace", "path": "unitCost", "value": 32}
                ])
            ),
            (
                path("1003/additions/5005"),
                serde_json::json!([{"op": "replace", "path": "quantity", "value": 135.5}])
            ),
        ]
    );
    assert_eq!(env.sandbox.addition(5001).unwrap().unit_price, 14.0);
    assert_eq!(env.sandbox.addition(5003).unwrap().unit_cost, 32.0);
    // Converged: nothing left to write.
    let out = env.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.code, Some(0), "{out:?}");
}
