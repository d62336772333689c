//! Fault tolerance, end to end: the `unitsync` binary (`apply --yes`, local mode) against the
//! ConnectWise and Autotask sandboxes with injected faults — 429 with `Retry-After`, bursts of
//! 5xx, timeouts, answers lost after a write was committed, dropped connections, and the process
//! killed mid-apply. Each test checks that the run (or its rerun) converges, that no line is
//! written twice (counted per line in the sandbox's request log), and that the history records
//! every change exactly once.
//!
//! Every billing repo starts with a history record of the counts the PSA holds, as an earlier run
//! would have left it: that is how a rerun tells a line an interrupted run wrote from a line that
//! was always in sync.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use unitsync::apply::FOUND_APPLIED;
use unitsync::history::{HistoryLine, HistoryRecord, LineOutcome};
use unitsync::psa::autotask::JOURNAL_PATH;
use unitsync::sandbox::{
    AtSeed, AutotaskSandbox, AutotaskSandboxHandle, Faults, LostResponse, RecordedRequest, Sandbox,
    SandboxHandle, Seed, autotask_demo_seed, demo_seed,
};

use crate::cli_local::{Run, run};

const LICENSE: &str = "ShadowProtect Desktop";
/// The run of the history record every repo starts with.
const SEEDED_RUN: &str = "2000-01-01T00:00:00Z";
/// What `apply` says on stderr when one line failed.
const FAILED_ONE: [&str; 2] = [
    "error: 1 line(s) failed, 0 were refused as stale, and 0 did not read back as written",
    "hint: see the reasons above; run apply again to retry what failed (applied lines are not written twice)",
];
/// The `Retry-After` the sandbox sends with an injected 429.
const RETRY_AFTER: Duration = Duration::from_secs(1);

fn mapping_id(n: usize) -> String {
    format!("line-{n:02}")
}

fn account(n: usize) -> String {
    format!("Customer {n:02}")
}

fn company(n: usize) -> i64 {
    1000 + n as i64
}

/// The ConnectWise agreement or Autotask contract of line `n`.
fn contract(n: usize) -> i64 {
    2000 + n as i64
}

/// The ConnectWise addition of line `n`.
fn addition(n: usize) -> i64 {
    7000 + n as i64
}

/// The Autotask contract service of line `n`.
fn contract_service(n: usize) -> i64 {
    3000 + n as i64
}

/// The day changes take effect, as the binary works it out: the first of next month.
fn effective() -> jiff::civil::Date {
    crate::support::first_of_next_month()
}

// ---------------------------------------------------------------------------------------------
// The two sandboxes, as the harness needs them

trait Psa {
    fn requests(&self) -> Vec<RecordedRequest>;
    fn clear_requests(&self);
    fn set_faults(&self, faults: Faults);
    fn faults(&self) -> Faults;
    fn in_flight(&self) -> usize;
}

impl Psa for SandboxHandle {
    fn requests(&self) -> Vec<RecordedRequest> {
        SandboxHandle::requests(self)
    }
    fn clear_requests(&self) {
        SandboxHandle::clear_requests(self)
    }
    fn set_faults(&self, faults: Faults) {
        SandboxHandle::set_faults(self, faults)
    }
    fn faults(&self) -> Faults {
        SandboxHandle::faults(self)
    }
    fn in_flight(&self) -> usize {
        SandboxHandle::in_flight(self)
    }
}

impl Psa for AutotaskSandboxHandle {
    fn requests(&self) -> Vec<RecordedRequest> {
        AutotaskSandboxHandle::requests(self)
    }
    fn clear_requests(&self) {
        AutotaskSandboxHandle::clear_requests(self)
    }
    fn set_faults(&self, faults: Faults) {
        AutotaskSandboxHandle::set_faults(self, faults)
    }
    fn faults(&self) -> Faults {
        AutotaskSandboxHandle::faults(self)
    }
    fn in_flight(&self) -> usize {
        AutotaskSandboxHandle::in_flight(self)
    }
}

/// One mapped line per customer: its own company, contract and line, holding `psa` units while
/// the vendor reports `vendor`.
fn connectwise_seed(lines: &[(u32, u32)]) -> Seed {
    let mut seed = serde_json::to_value(demo_seed()).unwrap();
    for (n, (psa, _)) in lines.iter().enumerate() {
        seed["companies"].as_array_mut().unwrap().push(json!({
            "id": company(n), "identifier": format!("Customer{n:02}"), "name": account(n)
        }));
        seed["agreements"].as_array_mut().unwrap().push(json!({
            "id": contract(n), "name": "Managed Backup", "company": company(n),
            "type": "Managed Backup", "start_date": "2024-01-01T00:00:00Z"
        }));
        seed["additions"].as_array_mut().unwrap().push(json!({
            "id": addition(n), "agreement": contract(n),
            "product": {"id": 301, "identifier": "SP-DESKTOP", "description": LICENSE},
            "quantity": psa, "unit_price": 12.5, "unit_cost": 6.0,
            "effective_date": "2024-01-01T00:00:00Z", "billed_quantity": psa
        }));
    }
    serde_json::from_value(seed).unwrap()
}

/// Like [`connectwise_seed`] in Autotask terms, the contracts spanning last year to next year
/// (the binary takes the effective date from the clock).
fn autotask_seed(lines: &[(u32, u32)]) -> AtSeed {
    let year = crate::support::today().year();
    let mut seed = serde_json::to_value(autotask_demo_seed()).unwrap();
    for (n, (psa, _)) in lines.iter().enumerate() {
        seed["companies"]
            .as_array_mut()
            .unwrap()
            .push(json!({"id": company(n), "name": account(n)}));
        seed["contracts"].as_array_mut().unwrap().push(json!({
            "id": contract(n), "company": company(n), "name": "Managed Backup",
            "start_date": format!("{}-01-01", year - 1), "end_date": format!("{}-12-31", year + 1)
        }));
        seed["contract_services"]
            .as_array_mut()
            .unwrap()
            .push(json!({
                "id": contract_service(n), "contract": contract(n), "service": 12, "units": psa
            }));
    }
    serde_json::from_value(seed).unwrap()
}

// ---------------------------------------------------------------------------------------------
// A billing repo pointed at a sandbox

struct Billing<S: Psa> {
    sandbox: S,
    temp: tempfile::TempDir,
    repo: PathBuf,
    /// The vendor's count per line, as `usage.csv` has it.
    vendor: Vec<u32>,
    creds: Vec<(&'static str, String)>,
}

impl Billing<SandboxHandle> {
    /// `update` is the ConnectWise policy; `extra` goes under `psa.connectwise`.
    fn connectwise(lines: &[(u32, u32)], update: &str, extra: &str) -> Billing<SandboxHandle> {
        let sandbox = Sandbox::start_in_background(
            connectwise_seed(lines),
            Faults::none(),
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap();
        let settings = format!(
            "psa:\n  connectwise:\n    site: {}\n    company: computech\n    update: {update}\n{extra}source:\n  csv:\n    path: usage.csv\napproval: manual\n",
            sandbox.base_url()
        );
        let mappings: String = (0..lines.len())
            .map(|n| {
                format!(
                    "  - id: {}\n    account: {}\n    license_type: {LICENSE}\n    company: {}\n    agreement: {}\n    addition: SP-DESKTOP\n",
                    mapping_id(n),
                    account(n),
                    company(n),
                    contract(n)
                )
            })
            .collect();
        let login = sandbox.login();
        let creds = vec![
            ("UNITSYNC_CW_PUBLIC_KEY", login.public_key),
            ("UNITSYNC_CW_PRIVATE_KEY", login.private_key),
            ("UNITSYNC_CW_CLIENT_ID", login.client_id.unwrap()),
        ];
        Billing::write(sandbox, lines, &settings, &mappings, addition, creds)
    }
}

impl Billing<AutotaskSandboxHandle> {
    /// `extra` goes under `psa.autotask`.
    fn autotask(lines: &[(u32, u32)], extra: &str) -> Billing<AutotaskSandboxHandle> {
        let sandbox = AutotaskSandbox::start_in_background(
            autotask_seed(lines),
            Faults::none(),
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap();
        let settings = format!(
            "psa:\n  autotask:\n    url: {}\n{extra}source:\n  csv:\n    path: usage.csv\napproval: manual\n",
            sandbox.api_url()
        );
        let mappings: String = (0..lines.len())
            .map(|n| {
                format!(
                    "  - id: {}\n    account: {}\n    license_type: {LICENSE}\n    company: {}\n    contract: {}\n    service: SP-DESKTOP\n",
                    mapping_id(n),
                    account(n),
                    company(n),
                    contract(n)
                )
            })
            .collect();
        let login = sandbox.login();
        let creds = vec![
            ("UNITSYNC_AT_USERNAME", login.username),
            ("UNITSYNC_AT_SECRET", login.secret),
            ("UNITSYNC_AT_INTEGRATION_CODE", login.integration_code),
        ];
        Billing::write(
            sandbox,
            lines,
            &settings,
            &mappings,
            contract_service,
            creds,
        )
    }
}

impl<S: Psa> Billing<S> {
    fn write(
        sandbox: S,
        lines: &[(u32, u32)],
        settings: &str,
        mappings: &str,
        line_id: fn(usize) -> i64,
        creds: Vec<(&'static str, String)>,
    ) -> Billing<S> {
        let temp = tempfile::tempdir().unwrap();
        let repo = temp.path().join("billing");
        std::fs::create_dir_all(&repo).unwrap();
        std::fs::write(repo.join("unitsync.yaml"), settings).unwrap();
        std::fs::write(repo.join("mappings.yaml"), format!("mappings:\n{mappings}")).unwrap();
        HistoryRecord {
            run: SEEDED_RUN.into(),
            commit: None,
            pull_request: None,
            approved_by: Some("local:tester".into()),
            lines: lines
                .iter()
                .enumerate()
                .map(|(n, (psa, _))| HistoryLine {
                    effective: None,
                    due: None,
                    mapping: mapping_id(n),
                    account: account(n),
                    license_type: LICENSE.into(),
                    company: format!("Customer{n:02}"),
                    contract: Some(contract(n) as u64),
                    line: Some(line_id(n) as u64),
                    product: "SP-DESKTOP".into(),
                    from: psa.to_string().parse().unwrap(),
                    to: psa.to_string().parse().unwrap(),
                    outcome: LineOutcome::Applied,
                    new_line: None,
                    reason: None,
                    note: None,
                })
                .collect(),
            true_ups: Vec::new(),
        }
        .write(&repo)
        .unwrap();
        let billing = Billing {
            sandbox,
            temp,
            repo,
            vendor: lines.iter().map(|(_, vendor)| *vendor).collect(),
            creds,
        };
        billing.write_usage();
        billing
    }

    fn write_usage(&self) {
        let mut csv = String::from("account,license_type,units\n");
        for (n, units) in self.vendor.iter().enumerate() {
            csv.push_str(&format!("{},{LICENSE},{units}\n", account(n)));
        }
        std::fs::write(self.repo.join("usage.csv"), csv).unwrap();
    }

    /// The last mapping is re-added (`update: cancel-and-readd`) rather than changed in place.
    fn readd_last_line(&self) {
        let path = self.repo.join("mappings.yaml");
        let mappings = std::fs::read_to_string(&path).unwrap();
        std::fs::write(path, format!("{mappings}    update: cancel-and-readd\n")).unwrap();
    }

    /// The vendor now reports `units` for line `n`.
    fn set_vendor(&mut self, n: usize, units: u32) {
        self.vendor[n] = units;
        self.write_usage();
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = crate::support::unitsync_clean();
        cmd.env("NO_COLOR", "1")
            .env("USER", "tester")
            .env("TMPDIR", self.temp.path())
            .current_dir(self.temp.path())
            .arg("-C")
            .arg(&self.repo)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in &self.creds {
            cmd.env(name, value);
        }
        cmd
    }

    fn run(&self, args: &[&str]) -> Run {
        run(self.command(args), None)
    }

    /// `apply --yes`, and how long it took.
    fn apply(&self) -> (Run, Duration) {
        let started = Instant::now();
        let out = self.run(&["apply", "--yes"]);
        (out, started.elapsed())
    }

    /// `apply --yes`, which must succeed without a word on stderr.
    fn apply_ok(&self) -> Duration {
        let (out, took) = self.apply();
        assert_eq!(out.code, Some(0), "{out:?}");
        assert_eq!(out.stderr, "", "{out:?}");
        took
    }

    /// `apply --yes`, which must succeed; the messages it logged as warnings.
    fn apply_warned(&self) -> Vec<String> {
        let (out, _) = self.apply();
        assert_eq!(out.code, Some(0), "{out:?}");
        warnings(&out)
    }

    /// Starts `apply --yes` without waiting for it.
    fn spawn_apply(&self) -> Child {
        let mut cmd = self.command(&["apply", "--yes"]);
        // A just-linked binary can be briefly busy (ETXTBSY) while another test forks; retry.
        for _ in 0..50 {
            match cmd.spawn() {
                Ok(child) => return child,
                Err(e) if e.raw_os_error() == Some(26) => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("cannot run unitsync: {e}"),
            }
        }
        panic!("unitsync stayed busy");
    }

    /// Kills `child` once `ready` holds for the sandbox's log, then waits until no request it
    /// sent is still being handled (so the log is final).
    fn kill_when(&self, mut child: Child, ready: impl Fn(&[RecordedRequest]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if ready(&self.sandbox.requests()) {
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                let out = child.wait_with_output().unwrap();
                panic!(
                    "unitsync ended ({status}) before it was killed: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            assert!(Instant::now() < deadline, "{:#?}", self.sandbox.requests());
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        wait_for(|| self.sandbox.in_flight() == 0);
    }

    /// Each run's history record (the seeded one left out), one `mapping from → to outcome`
    /// line per history line, with `(re-added)` for a cancel-and-re-add and the reason if any.
    fn records(&self) -> Vec<Vec<String>> {
        unitsync::history::read_all(&self.repo)
            .unwrap()
            .into_iter()
            .filter(|(_, record)| record.run != SEEDED_RUN)
            .map(|(_, record)| {
                let mut lines: Vec<String> = record.lines.iter().map(describe).collect();
                lines.sort();
                lines
            })
            .collect()
    }

    /// The history lines of every run's record (the seeded one left out).
    fn recorded_lines(&self) -> Vec<HistoryLine> {
        unitsync::history::read_all(&self.repo)
            .unwrap()
            .into_iter()
            .filter(|(_, record)| record.run != SEEDED_RUN)
            .flat_map(|(_, record)| record.lines)
            .collect()
    }
}

/// The messages of stderr's `WARN` lines (after the timestamp and level); any other line is
/// kept whole, so that it shows in a failed comparison.
fn warnings(out: &Run) -> Vec<String> {
    out.stderr
        .lines()
        .map(|l| match l.split_once(" WARN ") {
            Some((_, message)) => message.trim().to_string(),
            None => l.to_string(),
        })
        .collect()
}

/// A warning about a failed request: its start and end are exact; the transport's own words
/// in between (which name the port and the HTTP library's error chain) only need `middle`.
fn transport_warning(warning: &str, start: &str, middle: &str, end: &str) {
    assert!(
        warning.starts_with(start) && warning.contains(middle) && warning.ends_with(end),
        "{warning}"
    );
}

fn describe(line: &HistoryLine) -> String {
    let outcome = match line.outcome {
        LineOutcome::Applied => "applied",
        LineOutcome::Failed => "failed",
        LineOutcome::Stale => "stale",
    };
    let mut text = format!("{} {} → {} {outcome}", line.mapping, line.from, line.to);
    if line.new_line.is_some() {
        text.push_str(" (re-added)");
    }
    if let Some(reason) = &line.reason {
        text.push_str(&format!(" ({reason})"));
    }
    text
}

/// A run's record as [`Billing::records`] shows it: each change `(line, from, to)` applied,
/// followed by `suffix`.
fn applied(changes: &[(usize, u32, u32)], suffix: &str) -> Vec<String> {
    let mut lines: Vec<String> = changes
        .iter()
        .map(|(n, from, to)| format!("{} {from} → {to} applied{suffix}", mapping_id(*n)))
        .collect();
    lines.sort();
    lines
}

/// Polls `condition` until it holds (failing after 30 s).
fn wait_for(condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting");
        std::thread::sleep(Duration::from_millis(2));
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the request log

/// `200`, or `200 lost` when the sandbox carried the request out but lost its answer.
fn status(r: &RecordedRequest) -> String {
    if r.response_lost {
        format!("{} lost", r.status)
    } else {
        r.status.to_string()
    }
}

/// The number after `segment` in a path such as `…/agreements/2001/additions/7001`.
fn id_after(path: &str, segment: &str) -> Option<i64> {
    let mut parts = path.split('/');
    parts.find(|p| *p == segment)?;
    parts.next()?.parse().ok()
}

/// The statuses of the PATCHes of each ConnectWise addition's quantity, in order, by addition.
fn quantity_patches(requests: &[RecordedRequest]) -> BTreeMap<i64, Vec<String>> {
    patches(requests, "quantity")
}

/// The statuses of the PATCHes that cancel each ConnectWise addition, by addition.
fn cancels(requests: &[RecordedRequest]) -> BTreeMap<i64, Vec<String>> {
    patches(requests, "cancelledDate")
}

fn patches(requests: &[RecordedRequest], field: &str) -> BTreeMap<i64, Vec<String>> {
    let mut out: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for r in requests.iter().filter(|r| r.method == "PATCH") {
        if r.body.as_ref().and_then(|b| b[0]["path"].as_str()) == Some(field) {
            let id = id_after(&r.path, "additions").unwrap();
            out.entry(id).or_default().push(status(r));
        }
    }
    out
}

/// The statuses of the POSTs that add an addition, by agreement.
fn readd_posts(requests: &[RecordedRequest]) -> BTreeMap<i64, Vec<String>> {
    let mut out: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for r in requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/additions"))
    {
        let id = id_after(&r.path, "agreements").unwrap();
        out.entry(id).or_default().push(status(r));
    }
    out
}

/// The statuses of the adjustment POSTs, by contract service.
fn adjustment_posts(requests: &[RecordedRequest]) -> BTreeMap<i64, Vec<String>> {
    let mut out: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for r in requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/ContractServiceAdjustments"))
    {
        let id = r.body.as_ref().unwrap()["contractServiceID"]
            .as_i64()
            .unwrap();
        out.entry(id).or_default().push(status(r));
    }
    out
}

/// The statuses of the requests whose path ends with `suffix`.
fn statuses(requests: &[RecordedRequest], method: &str, suffix: &str) -> Vec<String> {
    requests
        .iter()
        .filter(|r| r.method == method && r.path.ends_with(suffix))
        .map(status)
        .collect()
}

/// How long the client waited after each 429 before sending the same request again.
fn waits_after_429(requests: &[RecordedRequest]) -> Vec<Duration> {
    requests
        .iter()
        .enumerate()
        .filter(|(_, r)| r.status == 429)
        .map(|(i, limited)| {
            let again = requests[i + 1..]
                .iter()
                .find(|r| {
                    (&r.method, &r.path, &r.query, &r.body_text)
                        == (
                            &limited.method,
                            &limited.path,
                            &limited.query,
                            &limited.body_text,
                        )
                })
                .expect("the request was sent again");
            again.received - limited.received
        })
        .collect()
}

/// The same `statuses` for every line in `ns`, keyed by `id(line)`: what [`quantity_patches`]
/// and the like read when each line saw the same requests.
fn each(
    ns: impl IntoIterator<Item = usize>,
    id: fn(usize) -> i64,
    statuses: &[&str],
) -> BTreeMap<i64, Vec<String>> {
    ns.into_iter()
        .map(|n| (id(n), statuses.iter().map(|s| s.to_string()).collect()))
        .collect()
}

/// The addition(s) of a ConnectWise agreement still running (not cancelled), as (id, quantity).
fn running_additions(sandbox: &SandboxHandle, agreement: i64) -> Vec<(i64, f64)> {
    sandbox
        .additions()
        .into_iter()
        .filter(|a| a.agreement == agreement && a.cancelled_date.is_none())
        .map(|a| (a.id, a.quantity))
        .collect()
}

fn quantities(sandbox: &SandboxHandle, lines: usize) -> Vec<f64> {
    (0..lines)
        .map(|n| {
            let running = running_additions(sandbox, contract(n));
            assert_eq!(running.len(), 1, "agreement {}: {running:?}", contract(n));
            running[0].1
        })
        .collect()
}

fn units(sandbox: &AutotaskSandboxHandle, lines: usize) -> Vec<i32> {
    (0..lines)
        .map(|n| sandbox.units_on(contract_service(n), effective()).unwrap())
        .collect()
}

fn adjustments_per_line(sandbox: &AutotaskSandboxHandle) -> BTreeMap<i64, Vec<i32>> {
    let mut out: BTreeMap<i64, Vec<i32>> = BTreeMap::new();
    for a in sandbox.adjustments() {
        out.entry(a.contract_service_id)
            .or_default()
            .push(a.unit_change);
    }
    out
}

fn journal_events(billing: &Billing<AutotaskSandboxHandle>) -> Vec<String> {
    std::fs::read_to_string(billing.repo.join(JOURNAL_PATH))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            match v["outcome"].as_str() {
                Some(outcome) => format!("{} {outcome}", v["event"].as_str().unwrap()),
                None => v["event"].as_str().unwrap().to_string(),
            }
        })
        .collect()
}

fn float(units: &[u32]) -> Vec<f64> {
    units.iter().map(|u| f64::from(*u)).collect()
}

fn int(units: &[u32]) -> Vec<i32> {
    units.iter().map(|u| *u as i32).collect()
}

// ---------------------------------------------------------------------------------------------
// 1. 429 with Retry-After

#[test]
fn cw_a_429_on_the_snapshot_and_on_a_write_is_waited_out() {
    let mut b = Billing::connectwise(&[(10, 11), (20, 22), (30, 33)], "in-place", "");
    // The snapshot: one agreement's additions listing is refused once.
    b.sandbox.set_faults(
        Faults::none()
            .rate_limit(1, RETRY_AFTER.as_secs())
            .only_method("GET")
            .only_path_containing("/agreements/2001/additions"),
    );
    let log = apply_waiting_out_one_429(&b);
    // Refused, repeated, then read again after the apply.
    assert_eq!(
        statuses(&log, "GET", "/agreements/2001/additions"),
        ["429", "200", "200"]
    );
    assert_eq!(quantity_patches(&log), each(0..3, addition, &["200"]));
    assert_eq!(quantities(&b.sandbox, 3), [11.0, 22.0, 33.0]);
    assert_eq!(
        b.records(),
        [applied(&[(0, 10, 11), (1, 20, 22), (2, 30, 33)], "")]
    );

    // A write: the PATCH is refused once, waited for, and sent once more.
    b.set_vendor(1, 25);
    b.sandbox.clear_requests();
    b.sandbox.set_faults(
        Faults::none()
            .rate_limit(1, RETRY_AFTER.as_secs())
            .only_method("PATCH"),
    );
    let log = apply_waiting_out_one_429(&b);
    assert_eq!(quantity_patches(&log), each([1], addition, &["429", "200"]));
    assert_eq!(quantities(&b.sandbox, 3), [11.0, 25.0, 33.0]);
    assert_eq!(
        b.records(),
        [
            applied(&[(0, 10, 11), (1, 20, 22), (2, 30, 33)], ""),
            applied(&[(1, 22, 25)], "")
        ]
    );
}

/// Applies through exactly one 429, and returns the request log after checking that the run,
/// and the retry after the 429, waited at least `Retry-After`.
fn apply_waiting_out_one_429<S: Psa>(b: &Billing<S>) -> Vec<RecordedRequest> {
    let took = b.apply_ok();
    assert!(took >= RETRY_AFTER, "{took:?}");
    let log = b.sandbox.requests();
    let waits = waits_after_429(&log);
    assert_eq!(waits.len(), 1);
    assert!(waits[0] >= RETRY_AFTER, "{waits:?}");
    log
}

#[test]
fn at_a_429_on_the_snapshot_and_on_an_adjustment_is_waited_out() {
    let mut b = Billing::autotask(&[(10, 11), (20, 22), (30, 33)], "");
    b.sandbox.set_faults(
        Faults::none()
            .rate_limit(1, RETRY_AFTER.as_secs())
            .only_path_containing("/ContractServiceUnits/query"),
    );
    let log = apply_waiting_out_one_429(&b);
    // The snapshot's query (refused, repeated), one re-read per write, and the read-back.
    assert_eq!(
        statuses(&log, "POST", "/ContractServiceUnits/query"),
        ["429", "200", "200", "200", "200", "200"]
    );
    assert_eq!(
        adjustment_posts(&log),
        each(0..3, contract_service, &["200"])
    );
    assert_eq!(units(&b.sandbox, 3), [11, 22, 33]);
    assert_eq!(
        b.records(),
        [applied(&[(0, 10, 11), (1, 20, 22), (2, 30, 33)], "")]
    );

    // An adjustment: refused before Autotask acted, so it is sent again after the wait.
    b.set_vendor(1, 25);
    b.sandbox.clear_requests();
    b.sandbox.set_faults(
        Faults::none()
            .rate_limit(1, RETRY_AFTER.as_secs())
            .only_path_containing("/ContractServiceAdjustments"),
    );
    let log = apply_waiting_out_one_429(&b);
    assert_eq!(
        adjustment_posts(&log),
        each([1], contract_service, &["429", "200"])
    );
    assert_eq!(
        adjustments_per_line(&b.sandbox),
        BTreeMap::from([(3000, vec![1]), (3001, vec![2, 3]), (3002, vec![3])])
    );
    assert_eq!(units(&b.sandbox, 3), [11, 25, 33]);
    assert_eq!(
        b.records(),
        [
            applied(&[(0, 10, 11), (1, 20, 22), (2, 30, 33)], ""),
            applied(&[(1, 22, 25)], "")
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Bursts of 5xx

#[test]
fn cw_5xx_bursts_are_retried_on_reads_and_in_place_writes_and_a_rerun_converges() {
    let mut b = Billing::connectwise(&[(10, 11), (20, 22), (30, 33)], "in-place", "");
    // Reads: two 503s on one agreement's listing, then it answers.
    b.sandbox.set_faults(
        Faults::none()
            .server_errors(2, 503)
            .only_method("GET")
            .only_path_containing("/agreements/2001/additions"),
    );
    b.apply_ok();
    let log = b.sandbox.requests();
    assert_eq!(
        statuses(&log, "GET", "/agreements/2001/additions"),
        ["503", "503", "200", "200"]
    );
    assert_eq!(quantity_patches(&log), each(0..3, addition, &["200"]));
    assert_eq!(quantities(&b.sandbox, 3), [11.0, 22.0, 33.0]);

    // Writes: a PATCH sets an absolute quantity, so it is sent again; a burst longer than the
    // retries fails that line alone, and is recorded as failed.
    b.set_vendor(0, 12);
    b.set_vendor(1, 24);
    b.sandbox.clear_requests();
    b.sandbox.set_faults(
        Faults::none()
            .server_errors(4, 503)
            .only_method("PATCH")
            .only_path_containing("/additions/7001"),
    );
    let (out, _) = b.apply();
    assert_eq!(out.code, Some(4), "{out:?}");
    assert_eq!(warnings(&out), FAILED_ONE);
    let reason = "PATCH /v4_6_release/apis/3.0/finance/agreements/2001/additions/7001: server error (HTTP 503) after 4 attempt(s): An unexpected error occurred (injected by the sandbox)";
    assert!(
        out.stdout
            .contains(&format!("FAILED   line-01: 22 → 24: {reason}\n")),
        "{}",
        out.stdout
    );
    assert_eq!(
        quantity_patches(&b.sandbox.requests()),
        BTreeMap::from([
            (7000, vec!["200".to_string()]),
            (7001, vec!["503".to_string(); 4])
        ])
    );
    assert_eq!(quantities(&b.sandbox, 3), [12.0, 22.0, 33.0]);

    // The rerun writes what is left, once, through one more 502.
    b.sandbox.clear_requests();
    b.sandbox
        .set_faults(Faults::none().server_errors(1, 502).only_method("PATCH"));
    b.apply_ok();
    assert_eq!(
        quantity_patches(&b.sandbox.requests()),
        each([1], addition, &["502", "200"])
    );
    assert_eq!(quantities(&b.sandbox, 3), [12.0, 24.0, 33.0]);
    let mut failed_run = applied(&[(0, 11, 12)], "");
    failed_run.push(format!("line-01 22 → 24 failed ({reason})"));
    assert_eq!(
        b.records(),
        [
            applied(&[(0, 10, 11), (1, 20, 22), (2, 30, 33)], ""),
            failed_run,
            applied(&[(1, 22, 24)], ""),
        ]
    );
}

#[test]
fn cw_a_readd_post_that_got_a_5xx_is_looked_for_before_it_is_sent_again() {
    let mut b = Billing::connectwise(&[(10, 11), (20, 22)], "cancel-and-readd", "");
    // A cancel-and-readd ends the old addition on the day before the copy starts.
    let cancelled_as_of = format!("{}T00:00:00Z", effective().yesterday().unwrap());
    // A 503 before ConnectWise acted: the client looks for the addition, finds none, posts again.
    b.sandbox.set_faults(
        Faults::none()
            .server_errors(1, 503)
            .only_method("POST")
            .only_path_containing("/agreements/2000/"),
    );
    assert_eq!(
        b.apply_warned(),
        [
            "POST /v4_6_release/apis/3.0/finance/agreements/2000/additions: server error (HTTP 503) after 1 attempt(s): An unexpected error occurred (injected by the sandbox); checking whether the addition was created before retrying"
        ]
    );
    let log = b.sandbox.requests();
    let sequence: Vec<(String, String, String)> = log
        .iter()
        .filter(|r| r.path.contains("/agreements/2000/"))
        .map(|r| {
            (
                r.method.clone(),
                r.path.rsplit("/2000/").next().unwrap().to_string(),
                status(r),
            )
        })
        .collect();
    let step = |m: &str, p: &str, s: &str| (m.to_string(), p.to_string(), s.to_string());
    assert_eq!(
        sequence,
        [
            step("GET", "additions", "200"),
            step("GET", "additions/7000", "200"),
            step("PATCH", "additions/7000", "200"),
            step("POST", "additions", "503"),
            step("GET", "additions", "200"),
            step("POST", "additions", "201"),
            step("GET", "additions", "200"),
        ]
    );
    assert_eq!(cancels(&log), each(0..2, addition, &["200"]));
    assert_eq!(
        readd_posts(&log),
        BTreeMap::from([
            (2000, vec!["503".to_string(), "201".to_string()]),
            (2001, vec!["201".to_string()])
        ])
    );
    assert_eq!(quantities(&b.sandbox, 2), [11.0, 22.0]);
    for n in 0..2 {
        let old = b.sandbox.addition(addition(n)).unwrap();
        assert_eq!(
            old.cancelled_date.as_deref(),
            Some(cancelled_as_of.as_str())
        );
    }

    // A 504 after ConnectWise did add it (a proxy timing out): found, and never posted again.
    b.set_vendor(1, 25);
    b.sandbox.clear_requests();
    b.sandbox.set_faults(
        Faults::none()
            .lose_responses(1, LostResponse::ServerError(504))
            .only_method("POST"),
    );
    assert_eq!(
        b.apply_warned(),
        [
            "POST /v4_6_release/apis/3.0/finance/agreements/2001/additions: server error (HTTP 504) after 1 attempt(s): An unexpected error occurred (injected by the sandbox); checking whether the addition was created before retrying"
        ]
    );
    let log = b.sandbox.requests();
    assert_eq!(
        readd_posts(&log),
        BTreeMap::from([(2001, vec!["201 lost".to_string()])])
    );
    assert_eq!(quantities(&b.sandbox, 2), [11.0, 25.0]);
    assert_eq!(
        b.records(),
        [
            applied(&[(0, 10, 11), (1, 20, 22)], " (re-added)"),
            applied(&[(1, 22, 25)], " (re-added)"),
        ]
    );
    // Each record names the addition that now bills the line.
    let lines = b.recorded_lines();
    assert_eq!(
        lines.last().unwrap().new_line,
        Some(running_additions(&b.sandbox, contract(1))[0].0 as u64)
    );
}

#[test]
fn at_5xx_bursts_retry_reads_but_an_adjustment_is_never_posted_twice() {
    let mut b = Billing::autotask(&[(10, 11), (20, 22), (30, 33)], "");
    b.sandbox.set_faults(
        Faults::none()
            .server_errors(2, 503)
            .only_path_containing("/ContractServiceUnits/query"),
    );
    b.apply_ok();
    let log = b.sandbox.requests();
    assert_eq!(
        statuses(&log, "POST", "/ContractServiceUnits/query"),
        ["503", "503", "200", "200", "200", "200", "200"]
    );
    assert_eq!(
        adjustment_posts(&log),
        each(0..3, contract_service, &["200"])
    );
    assert_eq!(units(&b.sandbox, 3), [11, 22, 33]);

    // A 503 on the POST: Autotask did not act, but the client cannot know that. It re-reads the
    // units, sees them unchanged, and leaves the line failed rather than post again.
    b.set_vendor(1, 24);
    b.sandbox.clear_requests();
    b.sandbox.set_faults(
        Faults::none()
            .server_errors(1, 503)
            .only_path_containing("/ContractServiceAdjustments"),
    );
    let (out, _) = b.apply();
    assert_eq!(out.code, Some(4), "{out:?}");
    let reason = "POST /atservicesrest/v1.0/ContractServiceAdjustments: server error (HTTP 503) after 1 attempt(s): An unexpected error occurred (injected by the sandbox)";
    let mut expected = vec![format!(
        "{reason}; re-reading the units to see whether it was applied"
    )];
    expected.extend(FAILED_ONE.map(String::from));
    assert_eq!(warnings(&out), expected);
    assert!(
        out.stdout
            .contains(&format!("FAILED   line-01: 22 → 24: {reason}\n")),
        "{}",
        out.stdout
    );
    assert_eq!(
        adjustment_posts(&b.sandbox.requests()),
        each([1], contract_service, &["503"])
    );
    assert_eq!(units(&b.sandbox, 3), [11, 22, 33]);

    // The rerun settles the pending intent from the units (not posted) and posts it, once.
    b.sandbox.clear_requests();
    b.sandbox.set_faults(Faults::none());
    b.apply_ok();
    assert_eq!(
        adjustment_posts(&b.sandbox.requests()),
        each([1], contract_service, &["200"])
    );
    assert_eq!(units(&b.sandbox, 3), [11, 24, 33]);

    // A 504 after Autotask did post it: the re-read finds the units changed; nothing is re-sent.
    b.set_vendor(2, 35);
    b.sandbox.clear_requests();
    b.sandbox.set_faults(
        Faults::none()
            .lose_responses(1, LostResponse::ServerError(504))
            .only_path_containing("/ContractServiceAdjustments"),
    );
    assert_eq!(
        b.apply_warned(),
        [
            "POST /atservicesrest/v1.0/ContractServiceAdjustments: server error (HTTP 504) after 1 attempt(s): An unexpected error occurred (injected by the sandbox); re-reading the units to see whether it was applied"
        ]
    );
    assert_eq!(
        adjustment_posts(&b.sandbox.requests()),
        each([2], contract_service, &["200 lost"])
    );
    assert_eq!(units(&b.sandbox, 3), [11, 24, 35]);
    assert_eq!(
        adjustments_per_line(&b.sandbox),
        BTreeMap::from([(3000, vec![1]), (3001, vec![2, 2]), (3002, vec![3, 2])])
    );
    let mut failed_run = vec![format!("line-01 22 → 24 failed ({reason})")];
    failed_run.sort();
    assert_eq!(
        b.records(),
        [
            applied(&[(0, 10, 11), (1, 20, 22), (2, 30, 33)], ""),
            failed_run,
            applied(&[(1, 22, 24)], ""),
            applied(&[(2, 33, 35)], ""),
        ]
    );
    let events = journal_events(&b);
    let mut first_run = events[..6].to_vec();
    first_run.sort();
    assert_eq!(
        first_run,
        ["intent", "intent", "intent", "posted", "posted", "posted"]
    );
    assert_eq!(
        events[6..],
        [
            // The 503: left pending; the rerun settles it from the units, then posts.
            "intent",
            "resolved not-posted",
            "intent",
            "posted",
            // The 504: settled by the re-read in the same run.
            "intent",
            "resolved applied",
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Timeouts, and answers lost after the write was committed

/// Longer than the one-second timeout the repos below set.
const STALL: Duration = Duration::from_secs(3);

#[test]
fn cw_timeouts_retry_reads_and_never_double_a_write_the_psa_carried_out() {
    let lines = [(10, 11), (20, 22), (30, 33)];
    let mut b = Billing::connectwise(&lines, "in-place", "    timeout_seconds: 1\n");
    b.readd_last_line();

    // A read that outlasts the timeout is abandoned and sent again.
    b.sandbox.set_faults(
        Faults::none()
            .lose_responses(1, LostResponse::Stalled(STALL))
            .only_method("GET")
            .only_path_containing("/agreements/2001/additions"),
    );
    let took = b.apply_ok();
    assert!(took >= Duration::from_secs(1), "{took:?}");
    let log = b.sandbox.requests();
    assert_eq!(
        statuses(&log, "GET", "/agreements/2001/additions"),
        ["200 lost", "200", "200"]
    );
    assert_eq!(quantity_patches(&log), each(0..2, addition, &["200"]));
    assert_eq!(readd_posts(&log), each([2], contract, &["201"]));
    assert_eq!(quantities(&b.sandbox, 3), [11.0, 22.0, 33.0]);

    // An in-place PATCH that ConnectWise carried out but whose answer never came in time: the
    // PATCH sets the absolute quantity, so sending it again cannot add anything.
    b.set_vendor(1, 25);
    b.sandbox.clear_requests();
    b.sandbox.set_faults(
        Faults::none()
            .lose_responses(1, LostResponse::Stalled(STALL))
            .only_method("PATCH"),
    );
    b.apply_ok();
    let log = b.sandbox.requests();
    assert_eq!(
        quantity_patches(&log),
        each([1], addition, &["200 lost", "200"])
    );
    let bodies: Vec<&Value> = log
        .iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| r.body.as_ref().unwrap())
        .collect();
    assert_eq!(
        bodies,
        [&json!([{"op": "replace", "path": "quantity", "value": 25}]); 2]
    );
    assert_eq!(quantities(&b.sandbox, 3), [11.0, 25.0, 33.0]);

    // A re-add POST carried out but timed out: POST is not idempotent, so the client looks for
    // the new addition, finds it, and does not post again.
    b.set_vendor(2, 35);
    b.sandbox.clear_requests();
    b.sandbox.set_faults(
        Faults::none()
            .lose_responses(1, LostResponse::Stalled(STALL))
            .only_method("POST"),
    );
    let warned = b.apply_warned();
    assert_eq!(warned.len(), 1, "{warned:?}");
    transport_warning(
        &warned[0],
        "POST /v4_6_release/apis/3.0/finance/agreements/2002/additions: could not reach 127.0.0.1:",
        "timed out",
        " (no complete answer within 1 s; psa.connectwise.timeout_seconds sets the limit); checking whether the addition was created before retrying",
    );
    let log = b.sandbox.requests();
    assert_eq!(cancels(&log).len(), 1);
    assert_eq!(readd_posts(&log), each([2], contract, &["201 lost"]));
    assert_eq!(quantities(&b.sandbox, 3), [11.0, 25.0, 35.0]);
    let mut first = applied(&[(0, 10, 11), (1, 20, 22)], "");
    first.extend(applied(&[(2, 30, 33)], " (re-added)"));
    first.sort();
    assert_eq!(
        b.records(),
        [
            first,
            applied(&[(1, 22, 25)], ""),
            applied(&[(2, 33, 35)], " (re-added)"),
        ]
    );
}

#[test]
fn cw_a_connection_dropped_after_a_committed_write_never_doubles_it() {
    let mut b = Billing::connectwise(&[(10, 11), (20, 20)], "in-place", "");
    b.readd_last_line();
    b.sandbox.set_faults(
        Faults::none()
            .lose_responses(1, LostResponse::Dropped)
            .only_method("PATCH"),
    );
    b.apply_ok();
    assert_eq!(
        quantity_patches(&b.sandbox.requests()),
        each([0], addition, &["200 lost", "200"])
    );

    b.set_vendor(1, 23);
    b.sandbox.clear_requests();
    b.sandbox.set_faults(
        Faults::none()
            .lose_responses(1, LostResponse::Dropped)
            .only_method("POST"),
    );
    let warned = b.apply_warned();
    assert_eq!(warned.len(), 1, "{warned:?}");
    transport_warning(
        &warned[0],
        "POST /v4_6_release/apis/3.0/finance/agreements/2001/additions: could not reach 127.0.0.1:",
        "after 1 attempt(s): ",
        "; checking whether the addition was created before retrying",
    );
    let log = b.sandbox.requests();
    assert_eq!(cancels(&log), each([1], addition, &["200"]));
    assert_eq!(readd_posts(&log), each([1], contract, &["201 lost"]));
    assert_eq!(quantities(&b.sandbox, 2), [11.0, 23.0]);
    assert_eq!(
        b.records(),
        [
            applied(&[(0, 10, 11)], ""),
            applied(&[(1, 20, 23)], " (re-added)")
        ]
    );
}

#[test]
fn at_timeouts_and_dropped_answers_never_post_an_adjustment_twice() {
    let mut b = Billing::autotask(&[(10, 11), (20, 22), (30, 33)], "    timeout_seconds: 1\n");
    b.sandbox.set_faults(
        Faults::none()
            .lose_responses(1, LostResponse::Stalled(STALL))
            .only_path_containing("/ContractServiceUnits/query"),
    );
    let took = b.apply_ok();
    assert!(took >= Duration::from_secs(1), "{took:?}");
    let log = b.sandbox.requests();
    assert_eq!(
        statuses(&log, "POST", "/ContractServiceUnits/query"),
        ["200 lost", "200", "200", "200", "200", "200"]
    );
    assert_eq!(
        adjustment_posts(&log),
        each(0..3, contract_service, &["200"])
    );

    // Posted, but the answer came too late: re-read, found applied, not posted again.
    b.set_vendor(1, 25);
    b.sandbox.clear_requests();
    b.sandbox.set_faults(
        Faults::none()
            .lose_responses(1, LostResponse::Stalled(STALL))
            .only_path_containing("/ContractServiceAdjustments"),
    );
    let warned = b.apply_warned();
    assert_eq!(warned.len(), 1, "{warned:?}");
    transport_warning(
        &warned[0],
        "POST /atservicesrest/v1.0/ContractServiceAdjustments: could not reach 127.0.0.1:",
        "timed out",
        " (no complete answer within 1 s; psa.autotask.timeout_seconds sets the limit); re-reading the units to see whether it was applied",
    );
    assert_eq!(
        adjustment_posts(&b.sandbox.requests()),
        each([1], contract_service, &["200 lost"])
    );

    // Posted, but the connection dropped before the answer: the same.
    b.set_vendor(2, 36);
    b.sandbox.clear_requests();
    b.sandbox.set_faults(
        Faults::none()
            .lose_responses(1, LostResponse::Dropped)
            .only_path_containing("/ContractServiceAdjustments"),
    );
    let warned = b.apply_warned();
    assert_eq!(warned.len(), 1, "{warned:?}");
    transport_warning(
        &warned[0],
        "POST /atservicesrest/v1.0/ContractServiceAdjustments: could not reach 127.0.0.1:",
        "after 1 attempt(s): ",
        "; re-reading the units to see whether it was applied",
    );
    assert_eq!(
        adjustment_posts(&b.sandbox.requests()),
        each([2], contract_service, &["200 lost"])
    );
    assert_eq!(units(&b.sandbox, 3), [11, 25, 36]);
    assert_eq!(
        adjustments_per_line(&b.sandbox),
        BTreeMap::from([(3000, vec![1]), (3001, vec![2, 3]), (3002, vec![3, 3])])
    );
    assert_eq!(
        b.records(),
        [
            applied(&[(0, 10, 11), (1, 20, 22), (2, 30, 33)], ""),
            applied(&[(1, 22, 25)], ""),
            applied(&[(2, 33, 36)], ""),
        ]
    );
    assert_eq!(
        journal_events(&b)[6..],
        ["intent", "resolved applied", "intent", "resolved applied"]
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Dropped connections

/// Runs `plan` on fresh connections and counts its requests: the connections the snapshot of an
/// `apply` opens before its first write.
fn snapshot_connections<S: Psa>(b: &Billing<S>) -> u32 {
    b.sandbox.set_faults(Faults::none().close_connections());
    let out = b.run(&["plan"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let n = b.sandbox.requests().len() as u32;
    b.sandbox.clear_requests();
    n
}

/// Connections dropped right after the snapshot's (the first writes), then at the start of the
/// next run (the first reads): each line is written once, and the PSA converges both times.
fn dropped_connections_converge<S: Psa>(
    mut b: Billing<S>,
    writes: fn(&[RecordedRequest]) -> BTreeMap<i64, Vec<String>>,
    line: fn(usize) -> i64,
    values: impl Fn(&S) -> Vec<f64>,
) {
    let snapshot = snapshot_connections(&b);
    b.sandbox.set_faults(
        Faults::none()
            .close_connections()
            .drop_connections_after(snapshot, 2),
    );
    b.apply_ok();
    assert_eq!(
        b.sandbox.faults().dropped_connections,
        0,
        "both were dropped"
    );
    assert_eq!(writes(&b.sandbox.requests()), each(0..3, line, &["200"]));

    for n in 0..3 {
        b.set_vendor(n, 40 + n as u32);
    }
    b.sandbox.clear_requests();
    b.sandbox
        .set_faults(Faults::none().close_connections().drop_connections(2));
    b.apply_ok();
    assert_eq!(b.sandbox.faults().dropped_connections, 0);
    assert_eq!(writes(&b.sandbox.requests()), each(0..3, line, &["200"]));
    assert_eq!(values(&b.sandbox), [40.0, 41.0, 42.0]);
    assert_eq!(
        b.records(),
        [
            applied(&[(0, 10, 11), (1, 20, 22), (2, 30, 33)], ""),
            applied(&[(0, 11, 40), (1, 22, 41), (2, 33, 42)], ""),
        ]
    );
}

#[test]
fn cw_dropped_connections_during_the_snapshot_and_the_writes_converge() {
    dropped_connections_converge(
        Billing::connectwise(&[(10, 11), (20, 22), (30, 33)], "in-place", ""),
        quantity_patches,
        addition,
        |sandbox| quantities(sandbox, 3),
    );
}

#[test]
fn at_dropped_connections_during_the_snapshot_and_the_writes_converge() {
    dropped_connections_converge(
        Billing::autotask(&[(10, 11), (20, 22), (30, 33)], ""),
        adjustment_posts,
        contract_service,
        |sandbox| units(sandbox, 3).into_iter().map(f64::from).collect(),
    );
}

// ---------------------------------------------------------------------------------------------
// 5. The process killed mid-apply

/// `count` lines, each with a change.
fn many_changes(count: usize) -> Vec<(u32, u32)> {
    (0..count as u32)
        .map(|n| (10 + n, 11 + n + n % 3))
        .collect()
}

/// The rerun's record: every line once, applied; those the killed run wrote are found applied.
fn completed_record(lines: &[(u32, u32)], written_by_killed_run: &[usize]) -> Vec<String> {
    let mut record: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(n, (from, to))| {
            let found = if written_by_killed_run.contains(&n) {
                format!(" ({FOUND_APPLIED})")
            } else {
                String::new()
            };
            format!("{} {from} → {to} applied{found}", mapping_id(n))
        })
        .collect();
    record.sort();
    record
}

#[test]
fn cw_a_run_killed_mid_apply_is_completed_by_the_rerun_writing_each_line_once() {
    let lines = many_changes(30);
    let b = Billing::connectwise(&lines, "in-place", "");
    b.sandbox
        .set_faults(Faults::none().with_latency(Duration::from_millis(100)));
    let child = b.spawn_apply();
    b.kill_when(child, |log| {
        log.iter().filter(|r| r.method == "PATCH").count() >= 8
    });
    let killed: Vec<usize> = quantity_patches(&b.sandbox.requests())
        .keys()
        .map(|id| (id - 7000) as usize)
        .collect();
    assert!((8..30).contains(&killed.len()), "{killed:?}");
    assert_eq!(
        b.records(),
        Vec::<Vec<String>>::new(),
        "killed before recording"
    );

    b.sandbox.set_faults(Faults::none());
    b.apply_ok();
    // Across both runs, every addition was written exactly once.
    assert_eq!(
        quantity_patches(&b.sandbox.requests()),
        each(0..30, addition, &["200"])
    );
    let vendor: Vec<u32> = lines.iter().map(|(_, v)| *v).collect();
    assert_eq!(quantities(&b.sandbox, 30), float(&vendor));
    assert_eq!(b.records(), [completed_record(&lines, &killed)]);
}

#[test]
fn cw_a_run_killed_between_cancel_and_readd_is_resumed_by_the_rerun() {
    // Lines 10 and 11 (agreements 2010, 2011) wait 30 s on their re-add POST; the run is
    // killed there, after lines 0-9 were re-added in full.
    let lines = many_changes(12);
    let b = Billing::connectwise(&lines, "cancel-and-readd", "");
    // A cancel-and-readd ends the old addition on the day before the copy starts.
    let cancelled_as_of = format!("{}T00:00:00Z", effective().yesterday().unwrap());
    b.sandbox.set_faults(
        Faults::none()
            .rate_limit(2, 30)
            .only_method("POST")
            .only_path_containing("/agreements/201"),
    );
    let child = b.spawn_apply();
    b.kill_when(child, |log| {
        let posts = readd_posts(log);
        posts.values().flatten().filter(|s| *s == "201").count() == 10
            && posts.values().flatten().filter(|s| *s == "429").count() == 2
    });
    for n in 10..12 {
        let old = b.sandbox.addition(addition(n)).unwrap();
        assert_eq!(
            old.cancelled_date.as_deref(),
            Some(cancelled_as_of.as_str())
        );
        assert_eq!(running_additions(&b.sandbox, contract(n)), []);
    }
    assert_eq!(
        b.records(),
        Vec::<Vec<String>>::new(),
        "killed before recording"
    );

    b.sandbox.set_faults(Faults::none());
    b.apply_ok();
    let log = b.sandbox.requests();
    assert_eq!(cancels(&log), each(0..12, addition, &["200"]));
    let mut posts = each(0..10, contract, &["201"]);
    posts.extend(each(10..12, contract, &["429", "201"]));
    assert_eq!(readd_posts(&log), posts);
    let vendor: Vec<u32> = lines.iter().map(|(_, v)| *v).collect();
    assert_eq!(quantities(&b.sandbox, 12), float(&vendor));
    let killed: Vec<usize> = (0..10).collect();
    let mut record = completed_record(&lines, &killed);
    for (n, line) in record.iter_mut().enumerate().filter(|(n, _)| *n >= 10) {
        let (from, to) = lines[n];
        *line = format!("{} {from} → {to} applied (re-added)", mapping_id(n));
    }
    assert_eq!(b.records(), [record]);
}

#[test]
fn at_a_run_killed_mid_apply_is_completed_by_the_rerun_posting_each_adjustment_once() {
    let lines = many_changes(20);
    let b = Billing::autotask(&lines, "");
    b.sandbox
        .set_faults(Faults::none().with_latency(Duration::from_millis(100)));
    let child = b.spawn_apply();
    b.kill_when(child, |log| adjustment_posts(log).len() >= 6);
    let killed: Vec<usize> = adjustment_posts(&b.sandbox.requests())
        .keys()
        .map(|id| (id - 3000) as usize)
        .collect();
    assert!((6..20).contains(&killed.len()), "{killed:?}");
    assert_eq!(
        b.records(),
        Vec::<Vec<String>>::new(),
        "killed before recording"
    );

    b.sandbox.set_faults(Faults::none());
    // A kill in the middle of a journal write leaves a cut-off line, which is skipped with a
    // warning: the POST of that intent waits for the write, so it never happened.
    let warned = b.apply_warned();
    assert!(
        warned
            .iter()
            .all(|w| w.contains("ignoring an unreadable journal line")),
        "{warned:?}"
    );
    assert_eq!(
        adjustment_posts(&b.sandbox.requests()),
        each(0..20, contract_service, &["200"])
    );
    let per_line: BTreeMap<i64, Vec<i32>> = lines
        .iter()
        .enumerate()
        .map(|(n, (from, to))| (contract_service(n), vec![(to - from) as i32]))
        .collect();
    assert_eq!(adjustments_per_line(&b.sandbox), per_line);
    let vendor: Vec<u32> = lines.iter().map(|(_, v)| *v).collect();
    assert_eq!(units(&b.sandbox, 20), int(&vendor));
    assert_eq!(b.records(), [completed_record(&lines, &killed)]);
}
