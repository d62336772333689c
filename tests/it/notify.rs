//! Notifications against real servers on 127.0.0.1: e-mail to an aiosmtpd SMTP server
//! (`tests/support/smtp_sink.py`, run by the Python in `UNITSYNC_TEST_PYTHON`, else `python3`),
//! webhooks to an axum server; and the CLI: an apply notifies, and an unreachable SMTP server
//! is only a warning.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};
use unitsync::config::{EmailNotifications, SmtpSecurity, SmtpSettings, WebhookFormat};
use unitsync::notify::email::{self, Credentials};
use unitsync::notify::{Change, Event, EventKind, Report, webhook};

use super::cli_local::{Env, edit};

const HOSTILE: &str = "Evil <b>Corp</b> & *Sons* [x](http://e.vil) `rm`";

/// `UNITSYNC_TEST_PYTHON`, else the venv `.ci/setup` makes, else `python3`.
fn python() -> String {
    if let Ok(python) = std::env::var("UNITSYNC_TEST_PYTHON") {
        return python;
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/.venv/bin/python");
    if venv.exists() {
        return venv.to_string_lossy().into_owned();
    }
    "python3".to_string()
}

/// A running `smtp_sink.py`; killed on drop.
pub(super) struct SmtpSink {
    child: Child,
    pub(super) port: u16,
    dir: tempfile::TempDir,
}

impl SmtpSink {
    pub(super) fn start(auth: Option<(&str, &str)>) -> SmtpSink {
        let python = python();
        let check = Command::new(&python)
            .args(["-c", "import aiosmtpd"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run {python} ({e}); set UNITSYNC_TEST_PYTHON to a Python 3 with aiosmtpd"));
        assert!(
            check.status.success(),
            "{python} cannot import aiosmtpd, which the e-mail tests need as their SMTP server: \
             `{python} -m pip install aiosmtpd==1.4.6` (`bash .ci/setup` installs it in .ci/.venv, \
             which these tests use), or set UNITSYNC_TEST_PYTHON to a Python that has it\n{}",
            String::from_utf8_lossy(&check.stderr)
        );
        // The port is free when picked but another test may take it before the sink binds it,
        // so a sink that exits before READY is started again on a new port.
        let mut stderr_text = String::new();
        for _ in 0..5 {
            let port = free_port();
            let dir = tempfile::tempdir().unwrap();
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_sink.py");
            let mut cmd = Command::new(&python);
            cmd.arg(script).arg(port.to_string()).arg(dir.path());
            if let Some((user, password)) = auth {
                cmd.args([user, password]);
            }
            let mut log = tempfile::tempfile().unwrap();
            let mut child = cmd
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(log.try_clone().unwrap())
                .spawn()
                .unwrap();
            let mut line = String::new();
            std::io::BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            if line.trim() == "READY" {
                return SmtpSink { child, port, dir };
            }
            let _ = child.kill();
            let _ = child.wait();
            use std::io::{Read, Seek};
            stderr_text.clear();
            log.rewind().unwrap();
            log.read_to_string(&mut stderr_text).unwrap();
        }
        panic!("smtp_sink.py did not start:\n{stderr_text}");
    }

    /// The received messages, waiting up to 10 s for `n` of them.
    pub(super) fn messages(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect();
            if files.len() >= n || Instant::now() > deadline {
                files.sort();
                return files
                    .iter()
                    .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
                    .collect();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(super) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn q(text: &str) -> unitsync::quantity::Quantity {
    text.parse().unwrap()
}

fn change(account: &str, from: &str, to: &str, reason: Option<&str>) -> Change {
    Change {
        effective: None,
        monthly_change: None,
        mapping: "bobs-dentistry/shadowprotect-desktop".into(),
        account: account.into(),
        license_type: "ShadowProtect Desktop".into(),
        company: "BobsDentistry".into(),
        product: "SP-DESKTOP".into(),
        from: Some(q(from)),
        to: q(to),
        reason: reason.map(str::to_string),
    }
}

fn events() -> Vec<Event> {
    let mut cloud = change("DigitalTorch, Inc.", "120.25", "135.5", None);
    cloud.mapping = "digitaltorch-inc/cloud-premium-gb".into();
    cloud.license_type = "Cloud Premium GB".into();
    cloud.company = "DigitalTorch".into();
    cloud.product = "CLOUD-GB".into();
    vec![
        Event {
            kind: EventKind::Applied,
            psa: "ConnectWise PSA".into(),
            pull_request: Some(42),
            url: None,
            summary: None,
            changes: vec![change("Bob's Dentistry", "3", "4", None), cloud],
        },
        Event {
            kind: EventKind::Failed,
            psa: "ConnectWise PSA".into(),
            pull_request: Some(42),
            url: None,
            summary: None,
            changes: vec![change(HOSTILE, "2", "5", Some("HTTP 403: not allowed"))],
        },
    ]
}

fn email_settings(port: u16) -> EmailNotifications {
    EmailNotifications {
        to: vec![
            "billing@computech.example".into(),
            "ops@computech.example".into(),
        ],
        from: Some("unitsync@computech.example".into()),
        smtp: SmtpSettings {
            host: "127.0.0.1".into(),
            port: Some(port),
            security: SmtpSecurity::None,
        },
    }
}

const APPLIED_BODY: &str = "\
unitsync applied 2 unit changes to ConnectWise PSA.

Account / licence type (company, product): from → to
- Bob's Dentistry / ShadowProtect Desktop (BobsDentistry, SP-DESKTOP): 3 → 4
- DigitalTorch, Inc. / Cloud Premium GB (DigitalTorch, CLOUD-GB): 120.25 → 135.5
";

#[tokio::test]
async fn email_sends_one_exact_message_per_event_logged_in_over_a_local_relay() {
    let sink = SmtpSink::start(Some(("billing-bot", "s3cret-pw")));
    let mut report = Report::default();
    email::send_with(
        &email_settings(sink.port),
        Some(Credentials::new("billing-bot".into(), "s3cret-pw".into())),
        &events(),
        &mut report,
    )
    .await;
    assert_eq!(
        report,
        Report {
            sent: vec![
                "e-mail to billing@computech.example, ops@computech.example (applied)".into(),
                "e-mail to billing@computech.example, ops@computech.example (failed)".into(),
            ],
            warnings: vec![],
        }
    );
    let messages = sink.messages(2);
    assert_eq!(messages.len(), 2, "{messages:#?}");
    for m in &messages {
        assert_eq!(m["mail_from"], "unitsync@computech.example");
        assert_eq!(
            m["rcpt_tos"],
            json!(["billing@computech.example", "ops@computech.example"])
        );
        assert_eq!(m["auth_login"], "billing-bot");
        let headers = &m["headers"];
        assert_eq!(headers["from"], "unitsync@computech.example");
        assert_eq!(
            headers["to"],
            "billing@computech.example, ops@computech.example"
        );
        let id = headers["message-id"].as_str().unwrap();
        assert!(
            id.starts_with('<') && id.ends_with('>') && id.contains('@'),
            "{id}"
        );
        // RFC 2822 date, e.g. "Wed, 25 Nov 2026 11:30:00 +0000".
        let date = headers["date"].as_str().unwrap();
        assert!(date.ends_with("+0000") || date.ends_with("-0000"), "{date}");
        assert!(
            headers["content-type"]
                .as_str()
                .unwrap()
                .starts_with("text/plain")
        );
    }
    assert_eq!(
        messages[0]["headers"]["subject"],
        "unitsync: 2 changes applied to ConnectWise PSA"
    );
    assert_eq!(messages[0]["body"], APPLIED_BODY);
    assert_eq!(
        messages[1]["headers"]["subject"],
        "unitsync: 1 change failed on ConnectWise PSA"
    );
    assert_eq!(
        messages[1]["body"],
        format!(
            "unitsync could not apply 1 unit change to ConnectWise PSA; the next apply retries them.\n\n\
             Account / licence type (company, product): from → to\n\
             - {HOSTILE} / ShadowProtect Desktop (BobsDentistry, SP-DESKTOP): 2 → 5 — HTTP 403: not allowed\n"
        )
    );
}

#[tokio::test]
async fn email_with_a_wrong_password_or_a_closed_port_is_a_warning_per_event() {
    let sink = SmtpSink::start(Some(("billing-bot", "s3cret-pw")));
    let mut report = Report::default();
    email::send_with(
        &email_settings(sink.port),
        Some(Credentials::new("billing-bot".into(), "wrong-pw".into())),
        &events()[..1],
        &mut report,
    )
    .await;
    assert!(report.sent.is_empty(), "{report:?}");
    assert_eq!(report.warnings.len(), 1, "{report:?}");
    let warning = &report.warnings[0];
    assert!(
        warning.starts_with(&format!(
            "e-mail to billing@computech.example, ops@computech.example (applied) via 127.0.0.1:{}: ",
            sink.port
        )),
        "{warning}"
    );
    assert!(warning.contains("535"), "{warning}");
    assert!(!warning.contains("wrong-pw"), "{warning}");
    assert!(sink.messages(0).is_empty());

    let closed = free_port();
    let mut report = Report::default();
    email::send_with(&email_settings(closed), None, &events(), &mut report).await;
    assert!(report.sent.is_empty());
    assert_eq!(report.warnings.len(), 2, "{report:?}");
    assert!(
        report.warnings[0].contains("Connection refused"),
        "{report:?}"
    );
}

#[tokio::test]
async fn email_without_tls_refuses_to_send_credentials_to_a_remote_host() {
    let mut settings = email_settings(25);
    settings.smtp.host = "smtp.computech.example".into();
    let mut report = Report::default();
    email::send_with(
        &settings,
        Some(Credentials::new("billing-bot".into(), "s3cret-pw".into())),
        &events(),
        &mut report,
    )
    .await;
    assert_eq!(
        report.warnings,
        [
            "e-mail to billing@computech.example, ops@computech.example via smtp.computech.example: \
          security: none sends UNITSYNC_SMTP_USERNAME/UNITSYNC_SMTP_PASSWORD unencrypted, so it is only \
          allowed to a local relay (localhost, 127.0.0.1, ::1); use starttls or tls for smtp.computech.example"
        ]
    );
}

/// An axum server that records each POSTed JSON body and answers `status`.
async fn webhook_server(status: StatusCode) -> (String, Arc<Mutex<Vec<Value>>>) {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = bodies.clone();
    let app = Router::new().route(
        "/hook/{token}",
        post(move |axum::Json(body): axum::Json<Value>| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(body);
                status
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/hook/T0KEN-secret",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, bodies)
}

#[tokio::test]
async fn webhook_payloads_are_exact_for_each_format_and_escape_vendor_text() {
    let (url, bodies) = webhook_server(StatusCode::OK).await;
    let events = events();
    let failed = &events[1..];
    for format in [
        WebhookFormat::Json,
        WebhookFormat::Slack,
        WebhookFormat::Teams,
    ] {
        let mut report = Report::default();
        webhook::send_to("webhook $HOOK", format, &url, failed, &mut report).await;
        assert_eq!(report.sent, ["webhook $HOOK (failed)"]);
        assert!(report.warnings.is_empty());
    }
    let bodies = bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 3);
    assert_eq!(
        bodies[0],
        json!({
            "format_version": 1,
            "event": "failed",
            "title": "unitsync: 1 change failed on ConnectWise PSA",
            "psa": "ConnectWise PSA",
            "pull_request": 42,
            "changes": [{
                "mapping": "bobs-dentistry/shadowprotect-desktop",
                "account": HOSTILE,
                "license_type": "ShadowProtect Desktop",
                "company": "BobsDentistry",
                "product": "SP-DESKTOP",
                "from": 2,
                "to": 5,
                "reason": "HTTP 403: not allowed",
            }],
        })
    );
    assert_eq!(
        bodies[1],
        json!({
            "text": "*unitsync: 1 change failed on ConnectWise PSA*\n\
                     • Evil &lt;b&gt;Corp&lt;/b&gt; &amp; *Sons* [x](http://e.vil) `rm` / ShadowProtect Desktop \
                     (BobsDentistry, SP-DESKTOP): 2 → 5 — HTTP 403: not allowed"
        })
    );
    assert_eq!(
        bodies[2],
        json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": {
                    "type": "AdaptiveCard",
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "version": "1.4",
                    "body": [
                        {
                            "type": "TextBlock",
                            "text": "unitsync\\: 1 change failed on ConnectWise PSA",
                            "weight": "Bolder",
                            "size": "Medium",
                            "wrap": true,
                        },
                        {
                            "type": "TextBlock",
                            "text": "- Evil &lt;b&gt;Corp&lt;/b&gt; &amp; \\*Sons\\* \\[x\\](http\\://e.vil) \\`rm\\` / \
                                     ShadowProtect Desktop (BobsDentistry, SP-DESKTOP)\\: 2 → 5 — HTTP 403\\: not allowed",
                            "wrap": true,
                            "spacing": "None",
                        },
                    ],
                },
            }],
        })
    );
}

#[tokio::test]
async fn proposed_event_payload_links_the_pull_request() {
    let (url, bodies) = webhook_server(StatusCode::OK).await;
    let event = Event {
        kind: EventKind::Proposed,
        psa: "ConnectWise PSA".into(),
        pull_request: Some(7),
        url: Some("https://github.com/computech/billing/pull/7".into()),
        summary: Some("Plan: 0 to update (+0 / -0 units), 1 to propose.".into()),
        changes: vec![change("Bob's Dentistry", "3", "4", None)],
    };
    let mut report = Report::default();
    webhook::send_to(
        "w",
        WebhookFormat::Slack,
        &url,
        std::slice::from_ref(&event),
        &mut report,
    )
    .await;
    assert_eq!(report.sent, ["w (proposed)"]);
    assert_eq!(
        bodies.lock().unwrap()[0],
        json!({
            "text": "*unitsync: 1 change proposed for ConnectWise PSA in #7*\n\
                     <https://github.com/computech/billing/pull/7|Review the pull request>\n\
                     Plan: 0 to update (+0 / -0 units), 1 to propose.\n\
                     • Bob's Dentistry / ShadowProtect Desktop (BobsDentistry, SP-DESKTOP): 3 → 4"
        })
    );
    assert_eq!(
        email::body(&event),
        "unitsync proposes 1 unit change for ConnectWise PSA in pull request #7.\n\
         Review it: https://github.com/computech/billing/pull/7\n\
         Plan: 0 to update (+0 / -0 units), 1 to propose.\n\n\
         Account / licence type (company, product): from → to\n\
         - Bob's Dentistry / ShadowProtect Desktop (BobsDentistry, SP-DESKTOP): 3 → 4\n"
    );
}

#[tokio::test]
async fn webhook_failures_are_warnings_that_never_show_the_url() {
    let (url, _) = webhook_server(StatusCode::INTERNAL_SERVER_ERROR).await;
    let mut report = Report::default();
    webhook::send_to(
        "webhook $HOOK (json)",
        WebhookFormat::Json,
        &url,
        &events(),
        &mut report,
    )
    .await;
    assert_eq!(
        report.warnings,
        [
            "webhook $HOOK (json) (applied): HTTP 500 Internal Server Error",
            "webhook $HOOK (json) (failed): HTTP 500 Internal Server Error",
        ]
    );
    let closed = format!("http://127.0.0.1:{}/hook/T0KEN-secret", free_port());
    let mut report = Report::default();
    webhook::send_to(
        "webhook $HOOK (json)",
        WebhookFormat::Json,
        &closed,
        &events()[..1],
        &mut report,
    )
    .await;
    assert_eq!(report.warnings.len(), 1);
    assert!(
        report.warnings[0].starts_with("webhook $HOOK (json) (applied): "),
        "{report:?}"
    );
    assert!(!report.warnings[0].contains("T0KEN"), "{report:?}");
}

/// The example repo with e-mail to `port` on 127.0.0.1 (no TLS, a local relay) and a JSON
/// webhook whose URL is in `UNITSYNC_TEST_HOOK`.
fn env_notifying(port: u16) -> Env {
    let env = Env::new();
    edit(
        &env.repo.join("unitsync.yaml"),
        "github:",
        &format!(
            "notifications:\n  email:\n    to: [billing@computech.example]\n    from: unitsync@computech.example\n    \
             smtp: {{ host: 127.0.0.1, port: {port}, security: none }}\n  \
             webhooks:\n    - {{ url_env: UNITSYNC_TEST_HOOK, format: json }}\n\
             github:"
        ),
    );
    env
}

#[test]
fn apply_emails_what_it_applied_logged_in_with_the_env_credentials() {
    let sink = SmtpSink::start(Some(("billing-bot", "s3cret-pw")));
    let mut env = env_notifying(sink.port);
    env.creds
        .push(("UNITSYNC_SMTP_USERNAME", Some("billing-bot".into())));
    env.creds
        .push(("UNITSYNC_SMTP_PASSWORD", Some("s3cret-pw".into())));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (url, bodies) = runtime.block_on(webhook_server(StatusCode::OK));
    env.creds.push(("UNITSYNC_TEST_HOOK", Some(url)));
    let out = env.run_with_stdin(&["apply", "--yes"], None);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stderr, "");
    assert!(
        out.stdout.ends_with(
            "\nnotified: e-mail to billing@computech.example (applied)\n\
             notified: webhook $UNITSYNC_TEST_HOOK (json) (applied)\n\n\
             PSA after apply:\n  ok bobs-dentistry/shadowprotect-desktop: 4\n  \
             ok digitaltorch-inc/cloud-premium-gb: 135.5\n\
             Plan: 0 to update (+0 / -0 units), 3 in sync, 1 unmapped, 0 errors.\n"
        ),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("s3cret-pw") && !out.stdout.contains("T0KEN"));
    let hooks = bodies.lock().unwrap().clone();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0]["event"], "applied");
    assert_eq!(hooks[0]["changes"][1]["from"], 120.25);
    assert_eq!(hooks[0]["changes"][1]["to"], 135.5);
    let messages = sink.messages(1);
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert_eq!(messages[0]["auth_login"], "billing-bot");
    assert_eq!(
        messages[0]["rcpt_tos"],
        json!(["billing@computech.example"])
    );
    assert_eq!(
        messages[0]["headers"]["subject"],
        "unitsync: 2 changes applied to ConnectWise PSA"
    );
    assert_eq!(
        messages[0]["body"],
        format!(
            "unitsync applied 2 unit changes to ConnectWise PSA.\n\n\
             Account / licence type (company, product): from → to\n\
             - Bob's Dentistry / ShadowProtect Desktop (BobsDentistry, SP-DESKTOP): 3 → 4, from {next}, +$12.50/month\n\
             - DigitalTorch Inc / Cloud Premium GB (DigitalTorch, CLOUD-GB): 120.25 → 135.5, from {next}, +$3.81/month\n",
            next = crate::support::first_of_next_month()
        )
    );
}

#[test]
fn apply_with_an_unreachable_smtp_server_warns_and_still_succeeds() {
    let port = free_port();
    let env = env_notifying(port);
    let out = env.run_with_stdin(&["apply", "--yes"], None);
    assert_eq!(out.code, Some(0), "{out:?}");
    let warning = format!(
        "\nwarning: notification not sent: e-mail to billing@computech.example (applied) via 127.0.0.1:{port}: "
    );
    assert!(out.stdout.contains(&warning), "{}", out.stdout);
    assert!(out.stdout.contains("Connection refused"), "{}", out.stdout);
    assert!(
        out.stdout.contains(
            "\nwarning: notification not sent: webhook $UNITSYNC_TEST_HOOK (json): \
             environment variable UNITSYNC_TEST_HOOK is not set\n"
        ),
        "{}",
        out.stdout
    );
    // The PSA was written and stays written; the run goes on to show it converged.
    assert_eq!(env.quantities(), [(5001, 4.0), (5003, 2.0), (5005, 135.5)]);
    assert!(
        out.stdout
            .contains("  ok bobs-dentistry/shadowprotect-desktop: 4\n")
    );
    assert!(
        out.stderr.contains("WARN notification not sent"),
        "{}",
        out.stderr
    );
}

fn plan_line(mapping: &str, action: unitsync::plan::Action) -> unitsync::plan::PlanLine {
    unitsync::plan::PlanLine {
        reprice: None,
        effective: None,
        money: None,
        mapping: mapping.into(),
        account: format!("{mapping} account"),
        license_type: "ShadowProtect Desktop".into(),
        target: unitsync::plan::ResolvedTarget {
            company: "BobsDentistry".into(),
            product: "SP-DESKTOP".into(),
            ..Default::default()
        },
        vendor: None,
        approved: None,
        psa: None,
        last_applied: None,
        update: unitsync::config::UpdatePolicy::InPlace,
        action,
    }
}

#[test]
fn events_per_kind_leave_out_empty_kinds_and_held_back_proposals() {
    use unitsync::history::{HistoryLine, LineOutcome};
    use unitsync::plan::{Action, DesiredFrom, Plan};
    let plan = Plan {
        currency: "USD".into(),
        desired: DesiredFrom::Lock,
        lines: vec![
            plan_line(
                "a",
                Action::Propose {
                    from: Some(q("3")),
                    to: q("4"),
                },
            ),
            plan_line(
                "b",
                Action::Propose {
                    from: None,
                    to: q("2"),
                },
            ),
            plan_line(
                "c",
                Action::Drift {
                    last_applied: q("5"),
                    psa: q("6"),
                },
            ),
            plan_line("d", Action::InSync),
        ],
        unmapped: vec![],
    };
    // "a" was held back (rejected before): only "b" is in the proposed lock.
    let lock = unitsync::config::Lock {
        units: [("b".to_string(), q("2"))].into_iter().collect(),
    };
    let proposed = Event::proposed("ConnectWise PSA", &plan, &lock, Some(9), None).unwrap();
    assert_eq!(
        proposed.title(),
        "unitsync: 1 change proposed for ConnectWise PSA in #9"
    );
    assert_eq!(proposed.changes.len(), 1);
    assert_eq!(proposed.changes[0].from, None);
    assert_eq!(
        proposed.changes[0].line(),
        "b account / ShadowProtect Desktop (BobsDentistry, SP-DESKTOP): (none) → 2"
    );
    assert_eq!(
        proposed.summary.as_deref(),
        Some(plan.summary().to_string().as_str())
    );
    assert!(Event::proposed("ConnectWise PSA", &plan, &Default::default(), None, None).is_none());

    let history = |mapping: &str, outcome: LineOutcome| HistoryLine {
        effective: None,
        due: None,
        mapping: mapping.into(),
        account: "acct".into(),
        license_type: "lt".into(),
        company: "co".into(),
        contract: None,
        line: None,
        product: "p".into(),
        from: q("1"),
        to: q("2"),
        outcome,
        new_line: None,
        reason: None,
        note: None,
    };
    // Nothing failed: an applied and a drift event, no empty failed one.
    let events = Event::applied(
        "Autotask PSA",
        &[history("x", LineOutcome::Applied)],
        &plan,
        None,
    );
    let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EventKind::Applied, EventKind::Drift]);
    assert_eq!(
        events[0].title(),
        "unitsync: 1 change applied to Autotask PSA"
    );
    assert_eq!(
        events[1].title(),
        "unitsync: 1 line drifted in Autotask PSA"
    );
    assert_eq!(
        events[1].changes[0].line(),
        "c account / ShadowProtect Desktop (BobsDentistry, SP-DESKTOP): 5 → 6 — \
         the PSA holds 6, but unitsync last wrote 5; changed by hand"
    );
    // Failed and stale lines go into one failed event.
    let events = Event::applied(
        "Autotask PSA",
        &[
            history("x", LineOutcome::Failed),
            history("y", LineOutcome::Stale),
        ],
        &Plan {
            currency: "USD".into(),
            desired: DesiredFrom::Lock,
            lines: vec![],
            unmapped: vec![],
        },
        Some(3),
    );
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].title(),
        "unitsync: 2 changes failed on Autotask PSA"
    );
}

#[test]
fn a_run_held_by_an_emptied_source_tells_people_what_it_held_and_why() {
    let sink = SmtpSink::start(None);
    let env = env_notifying(sink.port);
    // The vendor export came back with its header and no rows: an outage, not a zero bill.
    let usage = env.repo.join("usage.csv");
    let header = std::fs::read_to_string(&usage)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    std::fs::write(&usage, format!("{header}\n")).unwrap();
    let out = env.run_with_stdin(&["apply", "--yes"], None);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout
            .contains("\nnotified: e-mail to billing@computech.example (held)\n"),
        "{}",
        out.stdout
    );
    let messages = sink.messages(1);
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert_eq!(
        messages[0]["headers"]["subject"],
        "unitsync: 3 changes held back for ConnectWise PSA"
    );
    insta::assert_snapshot!(messages[0]["body"].as_str().unwrap());
}
