//! Issue #7, point 4: secrets never leak and vendor text never injects.
//!
//! - The sweep runs the whole GitOps loop — `validate`, `plan` in every format, `doctor`,
//!   `status` (terminal, Markdown, JSON, HTML), `accounts`, `propose`, `apply --gitops`, `history`
//!   in every format, and runs with a wrong credential — with a distinctive value for every
//!   secret unitsync reads from the environment, `RUST_LOG=trace`, a job summary and step outputs,
//!   e-mail to a real SMTP server (`tests/support/smtp_sink.py`) and three webhooks, against the
//!   ConnectWise or the Autotask sandbox, a fake GitHub, an HTTP usage source and a bare git
//!   remote. Then every output is searched for every secret in its raw, percent-encoded and base64
//!   forms (and the Basic and SMTP `AUTH PLAIN` encodings): stdout, stderr, every file of the
//!   checkout, `git log -p --all` of the remote, every request the fake servers received, every
//!   e-mail. A credential may appear only where its server legitimately needs it.
//! - Hostile servers answer with bodies that echo the request's credentials back; the errors
//!   unitsync prints must still name the request but carry no secret.
//! - Vendor and PSA text full of Markdown, HTML, table breaks, Mermaid-breaking and terminal
//!   control characters comes out escaped, exactly, in every renderer.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde_json::{Value, json};
use unitsync::sandbox::{
    AutotaskSandbox, AutotaskSandboxHandle, Faults, Sandbox, SandboxHandle, autotask_demo_seed,
    demo_seed,
};

use super::cli_local::{Run, run};
use super::notify::{SmtpSink, free_port};

// ---------------------------------------------------------------------------------------------
// The secrets: distinctive, and with characters that percent-encoding changes.

const CW_PUBLIC: &str = "cwPubK7qXz9Lm/Ab=";
const CW_PRIVATE: &str = "cwPriv+Hn4/Ls8=Vt3Qm";
const CW_WRONG_PRIVATE: &str = "cwWrong+Jd6/Rp1Yc5Bx";
const CW_CLIENT_ID: &str = "7f3c9a2e-51b4-4d8e-a6c1-0e9b8d7f6a5c";
const CW_COMPANY: &str = "computech";
const AT_USERNAME: &str = "api.Zq7k@computech.example";
const AT_SECRET: &str = "atSecret+Kw9/Pm3=Lr";
const AT_WRONG_SECRET: &str = "atWrong+Tb5/Hy2=Qs";
const AT_INTEGRATION_CODE: &str = "ATINTEGR8CODEQX72MZ";
const GITHUB_TOKEN: &str = "ghp_Sx8Tk2Lm9Qw4Zr7Vb1Nc6Yh3Jd5Pf0Ga";
const SOURCE_TOKEN: &str = "srcTok-9Fq2/Wm7+Xk4=";
const SMTP_USER: &str = "smtpUser-R4nd0m7";
const SMTP_PASSWORD: &str = "smtpPw+Qz8/Lx3=Mv";
/// Webhook URLs carry a token in the path and in the query, as Slack's and Teams' do.
const HOOK_TOKENS: [(&str, &str, &str); 3] = [
    ("UNITSYNC_HOOK_JSON", "json", "whJsonTok7Hq2Rz"),
    ("UNITSYNC_HOOK_SLACK", "slack", "whSlackTok4Md9Pw"),
    ("UNITSYNC_HOOK_TEAMS", "teams", "whTeamsTok8Ln3Bx"),
];

const REPOSITORY: &str = "computech/billing";
const BRANCH: &str = "unitsync/pending";

fn source_header() -> String {
    format!("Bearer {SOURCE_TOKEN}")
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Percent-encoding of everything but RFC 3986's unreserved characters, in upper or lower case.
fn percent(text: &str, lower: bool) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else if lower {
                format!("%{b:02x}")
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// What to search for: (what it is, the text).
type Needles = Vec<(String, String)>;

/// `value` raw, percent-encoded (both cases, and with `+` for a space as forms do) and in base64.
fn forms(name: &str, value: &str) -> Needles {
    let mut out: Needles = vec![
        (name.to_string(), value.to_string()),
        (format!("{name} (percent-encoded)"), percent(value, false)),
        (format!("{name} (percent-encoded)"), percent(value, true)),
        (
            format!("{name} (form-encoded)"),
            percent(value, false).replace("%20", "+"),
        ),
        (format!("{name} (base64)"), b64(value)),
    ];
    out.dedup_by(|a, b| a.1 == b.1);
    out
}

fn needles(secrets: &[(&str, &str)], combined: &[(&str, String)]) -> Needles {
    let mut out: Needles = secrets
        .iter()
        .flat_map(|(name, value)| forms(name, value))
        .collect();
    out.extend(
        combined
            .iter()
            .map(|(name, value)| (name.to_string(), value.clone())),
    );
    out
}

/// Every secret of a run against `psa`, in every form.
fn all_needles(psa: Kind) -> Needles {
    let mut secrets = vec![
        ("GITHUB_TOKEN", GITHUB_TOKEN),
        ("UNITSYNC_SOURCE_TOKEN", SOURCE_TOKEN),
        ("UNITSYNC_SMTP_USERNAME", SMTP_USER),
        ("UNITSYNC_SMTP_PASSWORD", SMTP_PASSWORD),
    ];
    for (var, _, token) in HOOK_TOKENS {
        secrets.push((var, token));
    }
    let mut combined = vec![(
        "SMTP AUTH PLAIN",
        b64(&format!("\0{SMTP_USER}\0{SMTP_PASSWORD}")),
    )];
    match psa {
        Kind::ConnectWise => {
            secrets.extend([
                ("UNITSYNC_CW_PUBLIC_KEY", CW_PUBLIC),
                ("UNITSYNC_CW_PRIVATE_KEY", CW_PRIVATE),
                ("UNITSYNC_CW_PRIVATE_KEY (wrong)", CW_WRONG_PRIVATE),
                ("UNITSYNC_CW_CLIENT_ID", CW_CLIENT_ID),
            ]);
            for private in [CW_PRIVATE, CW_WRONG_PRIVATE] {
                combined.push((
                    "ConnectWise Basic auth",
                    b64(&format!("{CW_COMPANY}+{CW_PUBLIC}:{private}")),
                ));
            }
        }
        Kind::Autotask => secrets.extend([
            ("UNITSYNC_AT_USERNAME", AT_USERNAME),
            ("UNITSYNC_AT_SECRET", AT_SECRET),
            ("UNITSYNC_AT_SECRET (wrong)", AT_WRONG_SECRET),
            ("UNITSYNC_AT_INTEGRATION_CODE", AT_INTEGRATION_CODE),
        ]),
    }
    needles(&secrets, &combined)
}

/// Collects every place a secret shows up, so one failure lists them all.
#[derive(Default)]
struct Leaks(Vec<String>);

impl Leaks {
    fn check(&mut self, place: &str, text: &str, needles: &Needles) {
        for (name, needle) in needles {
            if let Some(at) = text.find(needle.as_str()) {
                let start = text[..at]
                    .char_indices()
                    .rev()
                    .nth(80)
                    .map_or(0, |(i, _)| i);
                let end = (at + needle.len() + 40).min(text.len());
                let end = (end..=text.len())
                    .find(|i| text.is_char_boundary(*i))
                    .unwrap_or(text.len());
                self.0.push(format!(
                    "{name} in {place}: …{}…",
                    &text[start..end].escape_debug()
                ));
            }
        }
    }

    fn assert_none(&self) {
        assert!(
            self.0.is_empty(),
            "{} leak(s):\n{}",
            self.0.len(),
            self.0.join("\n")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// A recording HTTP server on 127.0.0.1: every request as received, answered by a closure.

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    /// Path and query, as sent.
    uri: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or_default()
    }

    fn query(&self, name: &str) -> Option<String> {
        let url = reqwest::Url::parse(&format!("http://x{}", self.uri)).ok()?;
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// Every header as `name: value` lines, and the URI: what an echoing server sends back.
    fn echo(&self) -> String {
        let mut text = format!("{} {}\n", self.method, self.uri);
        for (k, v) in &self.headers {
            text.push_str(&format!("{k}: {v}\n"));
        }
        text
    }

    /// The request as text to search, without the headers named in `skip`.
    fn text_without(&self, skip: &[&str]) -> String {
        let mut text = format!("{} {}\n", self.method, self.uri);
        for (k, v) in &self.headers {
            if !skip.iter().any(|s| s.eq_ignore_ascii_case(k)) {
                text.push_str(&format!("{k}: {v}\n"));
            }
        }
        text.push_str(&self.body);
        text
    }
}

type Responder = Arc<dyn Fn(&Seen) -> (u16, String) + Send + Sync>;

struct Server {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Server {
    /// Serves on a background thread; `respond` gives the status and the (JSON) body.
    fn start(respond: impl Fn(&Seen) -> (u16, String) + Send + Sync + 'static) -> Server {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let respond: Responder = Arc::new(respond);
        let log = seen.clone();
        let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
            let log = log.clone();
            let respond = respond.clone();
            async move {
                let (parts, body) = request.into_parts();
                let body = axum::body::to_bytes(body, usize::MAX)
                    .await
                    .unwrap_or_default();
                let seen = Seen {
                    method: parts.method.to_string(),
                    uri: parts.uri.to_string(),
                    headers: parts
                        .headers
                        .iter()
                        .map(|(k, v)| {
                            (
                                k.to_string(),
                                String::from_utf8_lossy(v.as_bytes()).into_owned(),
                            )
                        })
                        .collect(),
                    body: String::from_utf8_lossy(&body).into_owned(),
                };
                let (status, text) = respond(&seen);
                log.lock().unwrap().push(seen);
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    text,
                )
            }
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
            });
        });
        Server {
            url,
            seen,
            _stop: tx,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

// ---------------------------------------------------------------------------------------------
// A fake GitHub: the pull-request calls unitsync makes, with the token checked.

struct GitHub {
    server: Server,
    pulls: Arc<Mutex<Vec<Value>>>,
}

impl GitHub {
    fn start() -> GitHub {
        let pulls: Arc<Mutex<Vec<Value>>> = Arc::default();
        let state = pulls.clone();
        let server = Server::start(move |req| github_reply(&state, req));
        GitHub { server, pulls }
    }

    fn pulls(&self) -> Vec<Value> {
        self.pulls.lock().unwrap().clone()
    }

    fn merge(&self, number: u64, by: &str, sha: &str) {
        let mut pulls = self.pulls.lock().unwrap();
        let pull = pulls.iter_mut().find(|p| p["number"] == number).unwrap();
        pull["state"] = json!("closed");
        pull["merged_at"] = json!("2026-11-25T10:00:00Z");
        pull["merge_commit_sha"] = json!(sha);
        pull["merged_by"] = json!({ "login": by });
    }
}

fn github_reply(pulls: &Mutex<Vec<Value>>, req: &Seen) -> (u16, String) {
    if req.header("authorization") != Some(&format!("Bearer {GITHUB_TOKEN}")) {
        return (401, json!({ "message": "Bad credentials" }).to_string());
    }
    let not_found = (404, json!({ "message": "Not Found" }).to_string());
    let Some(rest) = req.path().strip_prefix(&format!("/repos/{REPOSITORY}/")) else {
        return not_found;
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let mut pulls = pulls.lock().unwrap();
    match (req.method.as_str(), segments.as_slice()) {
        ("GET", ["pulls"]) => {
            let state = req.query("state").unwrap_or_else(|| "open".into());
            let list: Vec<&Value> = pulls.iter().filter(|p| p["state"] == state).collect();
            (200, json!(list).to_string())
        }
        ("POST", ["pulls"]) => {
            let body: Value = serde_json::from_str(&req.body).unwrap();
            let number = pulls.len() as u64 + 1;
            let pull = json!({
                "number": number,
                "title": body["title"],
                "body": body["body"],
                "state": "open",
                "html_url": format!("https://github.com/{REPOSITORY}/pull/{number}"),
                "head": { "ref": body["head"] },
                "base": { "ref": body["base"] },
                "merged_at": null,
                "merge_commit_sha": null,
                "merged_by": null,
            });
            pulls.push(pull.clone());
            (201, pull.to_string())
        }
        ("PATCH", ["pulls", n]) => {
            let body: Value = serde_json::from_str(&req.body).unwrap();
            let n: u64 = n.parse().unwrap();
            let Some(pull) = pulls.iter_mut().find(|p| p["number"] == n) else {
                return not_found;
            };
            for key in ["title", "body"] {
                if !body[key].is_null() {
                    pull[key] = body[key].clone();
                }
            }
            (200, pull.to_string())
        }
        ("GET", ["pulls", n]) => match pulls
            .iter()
            .find(|p| n.parse::<u64>().is_ok_and(|n| p["number"] == n))
        {
            Some(pull) => (200, pull.to_string()),
            None => not_found,
        },
        ("GET", ["commits", sha, "pulls"]) => {
            let list: Vec<&Value> = pulls
                .iter()
                .filter(|p| p["merge_commit_sha"] == *sha)
                .collect();
            (200, json!(list).to_string())
        }
        _ => not_found,
    }
}

/// The HTTP usage source: the records for the right bearer token, else 401.
fn usage_source(records: Value) -> Server {
    Server::start(move |req| {
        if req.header("authorization") == Some(source_header().as_str()) {
            (200, records.to_string())
        } else {
            (401, json!({ "error": "unauthorized" }).to_string())
        }
    })
}

// ---------------------------------------------------------------------------------------------
// git

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Jane Reviewer")
        .env("GIT_AUTHOR_EMAIL", "jdoe@computech.example")
        .env("GIT_COMMITTER_NAME", "Jane Reviewer")
        .env("GIT_COMMITTER_EMAIL", "jdoe@computech.example")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Every file under `dir` as (path, text), skipping what is not UTF-8 (git's packed objects and
/// index, which `git log -p` covers).
fn text_files(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.ends_with(".git/objects") {
                continue;
            }
            text_files(&path, out);
        } else if let Ok(text) = std::fs::read_to_string(&path) {
            out.push((path, text));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A billing repo on a bare remote, the PSA sandbox, GitHub, the source, webhooks and SMTP.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    ConnectWise,
    Autotask,
}

enum Psa {
    ConnectWise(SandboxHandle),
    Autotask(AutotaskSandboxHandle),
}

/// The billing repo's mappings, the vendor's records, and the approved lock.
struct Story {
    mappings: String,
    usage: Value,
    lock: String,
}

struct World {
    kind: Kind,
    dir: tempfile::TempDir,
    remote: PathBuf,
    work: PathBuf,
    psa: Option<Psa>,
    github: GitHub,
    source: Server,
    hooks: Server,
    smtp: SmtpSink,
    summary: PathBuf,
    output: PathBuf,
    /// Overrides of the credentials' environment variables.
    env: Vec<(String, String)>,
    /// Every run so far, with its arguments.
    runs: Mutex<Vec<(String, Run)>>,
}

fn cw_story() -> Story {
    Story {
        mappings: include_str!("../../examples/billing-repo/mappings.yaml").to_string(),
        usage: json!([
            { "account": "Bob's Dentistry", "license_type": "ShadowProtect Desktop", "units": 4 },
            { "account": "Angry Fox Co", "license_type": "ShadowProtect Server", "units": 2 },
            { "account": "DigitalTorch Inc", "license_type": "Cloud Premium GB", "units": 135.5, "unit": "GB" },
            { "account": "Slate Gravel", "license_type": "ShadowProtect Desktop", "units": 3 },
        ]),
        lock: "units:\n  angry-fox-co/shadowprotect-server: 2\n  bobs-dentistry/shadowprotect-desktop: 3\n  \
               digitaltorch-inc/cloud-premium-gb: 120.25\n"
            .into(),
    }
}

fn at_story() -> Story {
    Story {
        mappings: r#"mappings:
  - account: "Bob's Dentistry"
    license_type: ShadowProtect Desktop
    company: 250
    contract: 1001
    service: SP-DESKTOP
  - account: Angry Fox Co
    license_type: ShadowProtect Desktop
    company: 251
    contract: 1002
    service: 41002
  - account: DigitalTorch Inc
    license_type: Cloud Premium GB
    company: 252
    contract: 1003
    service: { name: StorageCraft Cloud Premium (GB) }
"#
        .into(),
        usage: json!([
            { "account": "Bob's Dentistry", "license_type": "ShadowProtect Desktop", "units": 4 },
            { "account": "Angry Fox Co", "license_type": "ShadowProtect Desktop", "units": 2 },
            { "account": "DigitalTorch Inc", "license_type": "Cloud Premium GB", "units": 135 },
            { "account": "Slate Gravel", "license_type": "ShadowProtect Desktop", "units": 3 },
        ]),
        lock: "units:\n  angry-fox-co/shadowprotect-desktop: 2\n  bobs-dentistry/shadowprotect-desktop: 3\n  \
               digitaltorch-inc/cloud-premium-gb: 120\n"
            .into(),
    }
}

fn cw_settings(site: &str) -> String {
    format!("  connectwise:\n    site: {site}\n    company: {CW_COMPANY}\n    update: in-place\n")
}

fn at_settings(url: &str) -> String {
    format!("  autotask:\n    url: {url}\n")
}

fn cw_seed() -> unitsync::sandbox::Seed {
    let mut seed = demo_seed();
    seed.login.company = CW_COMPANY.into();
    seed.login.public_key = CW_PUBLIC.into();
    seed.login.private_key = CW_PRIVATE.into();
    seed.login.client_id = Some(CW_CLIENT_ID.into());
    seed
}

/// The Autotask demo with its contracts around today (the CLI's effective date follows the
/// clock) and the distinctive login.
fn at_seed() -> unitsync::sandbox::AtSeed {
    let year = crate::support::today().year();
    let mut seed = autotask_demo_seed();
    for contract in &mut seed.contracts {
        contract.start_date = jiff::civil::date(year - 1, 1, 1);
        contract.end_date = jiff::civil::date(year + 1, 12, 31);
    }
    seed.login.username = AT_USERNAME.into();
    seed.login.secret = AT_SECRET.into();
    seed.login.integration_code = AT_INTEGRATION_CODE.into();
    seed
}

impl World {
    /// A world whose PSA is `psa_settings` (the `psa:` section's body), served by `psa` when
    /// it is a sandbox.
    fn new(kind: Kind, psa_settings: &str, psa: Option<Psa>, story: Story) -> World {
        let dir = tempfile::tempdir().unwrap();
        let github = GitHub::start();
        let source = usage_source(story.usage);
        let hooks = Server::start(|_| (200, "{}".into()));
        let smtp = SmtpSink::start(Some((SMTP_USER, SMTP_PASSWORD)));
        let webhooks: String = HOOK_TOKENS
            .iter()
            .map(|(var, format, _)| format!("    - {{ url_env: {var}, format: {format} }}\n"))
            .collect();
        let settings = format!(
            "psa:\n{psa_settings}source:\n  http:\n    url: {}/usage\n    auth_header: Authorization\n    \
             auth_env: UNITSYNC_SOURCE_TOKEN\napproval: manual\nnotifications:\n  email:\n    \
             to: [billing@computech.example]\n    from: unitsync@computech.example\n    \
             smtp: {{ host: 127.0.0.1, port: {}, security: none }}\n  webhooks:\n{webhooks}\
             github:\n  repository: {REPOSITORY}\n",
            source.url, smtp.port
        );
        let remote = dir.path().join("billing.git");
        let reviewer = dir.path().join("reviewer");
        let work = dir.path().join("work");
        git(
            dir.path(),
            &["init", "--quiet", "--bare", "-b", "main", "billing.git"],
        );
        git(dir.path(), &["clone", "--quiet", "billing.git", "reviewer"]);
        for (name, text) in [
            ("unitsync.yaml", settings.as_str()),
            ("mappings.yaml", story.mappings.as_str()),
            ("units.lock.yaml", story.lock.as_str()),
        ] {
            std::fs::write(reviewer.join(name), text).unwrap();
        }
        git(&reviewer, &["add", "."]);
        git(&reviewer, &["commit", "--quiet", "-m", "billing repo"]);
        git(&reviewer, &["push", "--quiet", "origin", "main"]);
        git(dir.path(), &["clone", "--quiet", "billing.git", "work"]);
        let summary = dir.path().join("step-summary.md");
        let output = dir.path().join("step-output.txt");
        World {
            kind,
            remote,
            work,
            psa,
            github,
            source,
            hooks,
            smtp,
            summary,
            output,
            env: Vec::new(),
            runs: Mutex::new(Vec::new()),
            dir,
        }
    }

    fn connectwise() -> World {
        let sandbox =
            Sandbox::start_in_background(cw_seed(), Faults::none(), "127.0.0.1:0".parse().unwrap())
                .unwrap();
        World::new(
            Kind::ConnectWise,
            &cw_settings(&sandbox.base_url()),
            Some(Psa::ConnectWise(sandbox)),
            cw_story(),
        )
    }

    fn autotask() -> World {
        let sandbox = AutotaskSandbox::start_in_background(
            at_seed(),
            Faults::none(),
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap();
        World::new(
            Kind::Autotask,
            &at_settings(&sandbox.zone_url()),
            Some(Psa::Autotask(sandbox)),
            at_story(),
        )
    }

    fn hook_url(&self, token: &str) -> String {
        format!("{}/hook/{token}?sig={token}", self.hooks.url)
    }

    fn set(&mut self, name: &str, value: &str) {
        self.env.retain(|(n, _)| n != name);
        self.env.push((name.into(), value.into()));
    }

    /// Runs `unitsync -C WORK ARGS…` with every secret in its environment, the most logging,
    /// and the job-summary and step-output files of a GitHub Actions step.
    fn run(&self, args: &[&str]) -> Run {
        let mut cmd = crate::support::unitsync_clean();
        cmd.env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("TMPDIR", self.dir.path())
            .env("USER", "tester")
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "trace")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_STEP_SUMMARY", &self.summary)
            .env("GITHUB_OUTPUT", &self.output)
            .env("GITHUB_API_URL", &self.github.server.url)
            .env("GITHUB_TOKEN", GITHUB_TOKEN)
            .env("UNITSYNC_SOURCE_TOKEN", source_header())
            .env("UNITSYNC_SMTP_USERNAME", SMTP_USER)
            .env("UNITSYNC_SMTP_PASSWORD", SMTP_PASSWORD);
        for (var, _, token) in HOOK_TOKENS {
            cmd.env(var, self.hook_url(token));
        }
        match self.kind {
            Kind::ConnectWise => cmd
                .env("UNITSYNC_CW_PUBLIC_KEY", CW_PUBLIC)
                .env("UNITSYNC_CW_PRIVATE_KEY", CW_PRIVATE)
                .env("UNITSYNC_CW_CLIENT_ID", CW_CLIENT_ID),
            Kind::Autotask => cmd
                .env("UNITSYNC_AT_USERNAME", AT_USERNAME)
                .env("UNITSYNC_AT_SECRET", AT_SECRET)
                .env("UNITSYNC_AT_INTEGRATION_CODE", AT_INTEGRATION_CODE),
        };
        for (name, value) in &self.env {
            cmd.env(name, value);
        }
        cmd.current_dir(self.dir.path())
            .arg("-C")
            .arg(&self.work)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let out = run(cmd, None);
        self.runs.lock().unwrap().push((
            args.join(" "),
            Run {
                code: out.code,
                stdout: out.stdout.clone(),
                stderr: out.stderr.clone(),
            },
        ));
        out
    }

    /// Runs and expects exit code `code`; returns stdout.
    fn expect(&self, code: i32, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.code,
            Some(code),
            "unitsync {args:?}:\n{}\n{}",
            out.stdout,
            tail(&out.stderr)
        );
        out.stdout
    }

    fn remote_git(&self, args: &[&str]) -> String {
        let mut all = vec!["--git-dir", self.remote.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = Command::new("git")
            .args(&all)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .unwrap();
        assert!(out.status.success(), "git {all:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The reviewer merges pull request `number`: main fast-forwards to the proposal branch.
    fn merge(&self, number: u64) {
        let sha = self.remote_git(&["rev-parse", &format!("refs/heads/{BRANCH}")]);
        self.remote_git(&["update-ref", "refs/heads/main", &sha]);
        self.github.merge(number, "jdoe", &sha);
        git(&self.work, &["pull", "--quiet", "--ff-only"]);
    }

    /// The PSA's count on the Bob's Dentistry line.
    fn bobs_units(&self) -> f64 {
        match self.psa.as_ref().expect("a sandbox") {
            Psa::ConnectWise(sandbox) => sandbox.addition(5001).unwrap().quantity,
            Psa::Autotask(sandbox) => {
                let next = crate::support::first_of_next_month();
                f64::from(sandbox.units_on(41001, next).unwrap())
            }
        }
    }

    /// Searches the runs' stdout and stderr for `needles`.
    fn sweep_outputs(&self, needles: &Needles) -> Leaks {
        let mut leaks = Leaks::default();
        for (args, run) in self.runs.lock().unwrap().iter() {
            leaks.check(&format!("stdout of `{args}`"), &run.stdout, needles);
            leaks.check(&format!("stderr of `{args}`"), &run.stderr, needles);
        }
        leaks
    }

    /// Replaces `from` by `to` in the checkout's unitsync.yaml.
    fn edit_settings(&self, from: &str, to: &str) {
        let path = self.work.join("unitsync.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{text}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    }

    /// Searches everything the runs left behind for `needles`; legitimate uses are checked
    /// exactly and left out.
    fn sweep(&self, needles: &Needles) -> Leaks {
        let mut leaks = self.sweep_outputs(needles);
        // Every file in the temp dir: the checkout (with .git's text files), the HTML page, the
        // saved plan, the job summary and outputs, the reviewer's clone.
        let mut files = Vec::new();
        text_files(self.dir.path(), &mut files);
        assert!(files.len() > 10, "{files:?}");
        for (path, text) in &files {
            leaks.check(&path.display().to_string(), text, needles);
        }
        let log = self.remote_git(&["log", "-p", "--all", "--format=fuller"]);
        assert!(log.contains("history/"), "{log}");
        leaks.check("git log -p --all of the remote", &log, needles);

        // GitHub: the token in the Authorization header of every call, and nowhere else.
        let calls = self.github.server.seen();
        assert!(!calls.is_empty());
        for call in &calls {
            assert_eq!(
                call.header("authorization"),
                Some(format!("Bearer {GITHUB_TOKEN}").as_str()),
                "{call:?}"
            );
            leaks.check(
                &format!("GitHub request {} {}", call.method, call.uri),
                &call.text_without(&["authorization"]),
                needles,
            );
        }
        // The source: its credential in its header only.
        for call in self.source.seen() {
            assert_eq!(call.header("authorization"), Some(source_header().as_str()));
            leaks.check(
                "a request to the usage source",
                &call.text_without(&["authorization"]),
                needles,
            );
        }
        // Webhooks: each token only in its own URL.
        for call in self.hooks.seen() {
            let (_, _, token) = HOOK_TOKENS
                .iter()
                .find(|(_, _, t)| call.path() == format!("/hook/{t}"))
                .unwrap_or_else(|| panic!("unexpected webhook call {call:?}"));
            assert_eq!(call.query("sig").as_deref(), Some(*token));
            let others: Needles = needles
                .iter()
                .filter(|(_, n)| n != token)
                .cloned()
                .collect();
            leaks.check(&format!("webhook URL {}", call.uri), &call.uri, &others);
            leaks.check(
                &format!("webhook request to /hook/{token}"),
                &format!("{}\n{}", call.text_without(&[]).replace(&call.uri, ""), ""),
                needles,
            );
        }
        // E-mail: the login is the SMTP user; nothing else carries a credential.
        for mut message in self.smtp.messages(0) {
            assert_eq!(message["auth_login"], SMTP_USER);
            message.as_object_mut().unwrap().remove("auth_login");
            leaks.check("an e-mail", &message.to_string(), needles);
            leaks.check(
                "an e-mail's DATA",
                message["data"].as_str().unwrap(),
                needles,
            );
        }
        leaks
    }
}

/// The end of a long stderr (trace logs), for failure messages.
fn tail(text: &str) -> &str {
    let start = text.char_indices().rev().nth(3000).map_or(0, |(i, _)| i);
    &text[start..]
}

// ---------------------------------------------------------------------------------------------
// 1. The sweep

/// The whole loop against `world`'s PSA; returns it for the sweep.
fn full_loop(world: &mut World) {
    let html = world.dir.path().join("status.html");
    let html = html.to_str().unwrap();
    let plan_file = world.dir.path().join("plan.json");
    let plan_file = plan_file.to_str().unwrap();
    world.expect(0, &["validate"]);
    let plan = world.expect(0, &["plan"]);
    assert!(
        plan.contains("bobs-dentistry/shadowprotect-desktop"),
        "{plan}"
    );
    world.expect(0, &["-vvv", "plan", "--all", "--format", "markdown"]);
    world.expect(0, &["plan", "--format", "json", "--out", plan_file]);
    world.expect(0, &["doctor"]);
    world.expect(0, &["status"]);
    world.expect(0, &["status", "--format", "markdown", "--html", html]);
    world.expect(0, &["status", "--format", "json"]);
    world.run(&["accounts", "--suggest"]);

    let proposed = world.expect(0, &["propose"]);
    assert!(proposed.contains("Opened #1: "), "{proposed}");
    let pulls = world.github.pulls();
    assert_eq!(pulls.len(), 1);
    assert!(
        pulls[0]["body"]
            .as_str()
            .unwrap()
            .contains("bobs-dentistry/shadowprotect-desktop"),
        "{}",
        pulls[0]["body"]
    );
    world.merge(1);
    let applied = world.expect(0, &["apply", "--gitops"]);
    assert!(
        applied.contains("Applying ") && applied.contains(" as merged in #1 by jdoe."),
        "{applied}"
    );
    assert_eq!(world.bobs_units(), 4.0);
    world.expect(0, &["history"]);
    world.expect(0, &["history", "--format", "csv"]);
    world.expect(0, &["history", "--format", "json"]);
    world.expect(0, &["status", "--format", "markdown"]);

    // Wrong credentials: the PSA refuses; the errors say so without the values.
    match world.kind {
        Kind::ConnectWise => world.set("UNITSYNC_CW_PRIVATE_KEY", CW_WRONG_PRIVATE),
        Kind::Autotask => world.set("UNITSYNC_AT_SECRET", AT_WRONG_SECRET),
    }
    for args in [&["plan"][..], &["doctor"], &["status"]] {
        let out = world.run(args);
        assert_eq!(out.code, Some(4), "{args:?}: {}", out.stdout);
        let shown = format!("{}{}", out.stdout, out.stderr);
        assert!(shown.contains("credentials rejected"), "{}", tail(&shown));
    }

    // Notifications: the proposal and the apply, by e-mail and to each webhook.
    let messages = world.smtp.messages(2);
    let subjects: Vec<&str> = messages
        .iter()
        .map(|m| m["headers"]["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    assert!(subjects[0].contains("proposed"), "{subjects:?}");
    assert!(subjects[1].contains("applied"), "{subjects:?}");
    let hooks: Vec<String> = world.hooks.seen().iter().map(|s| s.uri.clone()).collect();
    assert_eq!(hooks.len(), 6, "{hooks:?}");
    assert!(
        std::fs::read_to_string(&world.summary)
            .unwrap()
            .contains("Plan: ")
    );
    assert!(
        std::fs::read_to_string(&world.output)
            .unwrap()
            .contains("pr-number=1")
    );
}

#[test]
fn no_connectwise_secret_appears_in_any_output_of_the_whole_loop() {
    let mut world = World::connectwise();
    full_loop(&mut world);
    let needles = all_needles(Kind::ConnectWise);
    world.sweep(&needles).assert_none();
}

#[test]
fn no_autotask_secret_appears_in_any_output_of_the_whole_loop() {
    let mut world = World::autotask();
    full_loop(&mut world);
    let needles = all_needles(Kind::Autotask);
    world.sweep(&needles).assert_none();
}

#[test]
fn the_sweep_finds_every_form_of_a_secret() {
    let needles = all_needles(Kind::ConnectWise);
    for text in [
        format!("raw {CW_PRIVATE}"),
        format!("query ?k={}", percent(CW_PRIVATE, false)),
        format!("lower ?k={}", percent(CW_PRIVATE, true)),
        format!("base64 {}", b64(CW_PRIVATE)),
        format!(
            "Authorization: Basic {}",
            b64(&format!("{CW_COMPANY}+{CW_PUBLIC}:{CW_PRIVATE}"))
        ),
        format!(
            "AUTH PLAIN {}",
            b64(&format!("\0{SMTP_USER}\0{SMTP_PASSWORD}"))
        ),
    ] {
        let mut leaks = Leaks::default();
        leaks.check("text", &text, &needles);
        assert!(!leaks.0.is_empty(), "not found in {text}");
    }
    let mut leaks = Leaks::default();
    leaks.check("text", "computech+cwPubK7q cwPriv", &needles);
    assert_eq!(leaks.0, Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------------
// 2. Hostile servers: error bodies that echo the credentials back

/// What an echoing server sends: the request line, every header (with a Basic login decoded),
/// and the body — as a JSON error (`message` and `errors`, which both PSAs' clients quote) or as
/// plain text.
fn echo_text(req: &Seen) -> String {
    let mut text = req.echo();
    if let Some(basic) = req
        .header("authorization")
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
    {
        text.push_str(&format!("login: {}\n", String::from_utf8_lossy(&basic)));
    }
    text.push_str(&req.body);
    text
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EchoBody {
    Json,
    Text,
    /// Usage records whose `units` is the echo: valid JSON, invalid records.
    Records,
}

/// A server that answers every request with the status and body shape in `mode` (changeable
/// while it runs), echoing the request; `/login/companyinfo` (ConnectWise's codebase discovery)
/// answers normally so the requests that carry credentials are made.
fn echo_server(mode: Arc<Mutex<(u16, EchoBody)>>) -> Server {
    Server::start(move |req| {
        if req.path().starts_with("/login/companyinfo/") {
            return (200, json!({ "Codebase": "v4_6_release/" }).to_string());
        }
        let (status, body) = *mode.lock().unwrap();
        let echo = echo_text(req);
        let text = match body {
            EchoBody::Json => json!({
                "code": "Echo",
                "message": format!("you sent {echo}"),
                "errors": [{ "field": "credentials", "message": echo }],
            })
            .to_string(),
            EchoBody::Text => format!("you sent {echo}"),
            EchoBody::Records => json!([{
                "account": "Bob's Dentistry",
                "license_type": "ShadowProtect Desktop",
                "units": echo,
            }])
            .to_string(),
        };
        (status, text)
    })
}

#[test]
fn connectwise_errors_that_echo_the_credentials_name_the_request_but_not_the_secrets() {
    let mode = Arc::new(Mutex::new((401, EchoBody::Json)));
    let echo = echo_server(mode.clone());
    let world = World::new(Kind::ConnectWise, &cw_settings(&echo.url), None, cw_story());
    let companies = "GET /v4_6_release/apis/3.0/company/companies";
    for (status, body, says) in [
        (401, EchoBody::Json, "credentials rejected"),
        (403, EchoBody::Text, "the API member lacks permission"),
        (
            400,
            EchoBody::Json,
            "ConnectWise rejected the request (HTTP 400)",
        ),
        (200, EchoBody::Text, "unexpected response"),
    ] {
        *mode.lock().unwrap() = (status, body);
        let plan = world.run(&["plan"]);
        assert_eq!(plan.code, Some(4), "{plan:?}");
        // The error names the request and quotes the server, redacted.
        let error = plan
            .stderr
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap();
        assert!(error.contains(companies), "{error}");
        assert!(error.contains(says), "{error}");
        assert!(error.contains("[redacted]"), "{error}");
    }
    *mode.lock().unwrap() = (401, EchoBody::Text);
    let doctor = world.run(&["doctor"]);
    assert_eq!(doctor.code, Some(4), "{doctor:?}");
    assert!(doctor.stdout.contains("credentials rejected"), "{doctor:?}");
    // Every request carried the credentials the server echoed.
    let seen = echo.seen();
    assert!(
        seen.iter()
            .any(|r| r.header("clientid") == Some(CW_CLIENT_ID))
    );
    world
        .sweep_outputs(&all_needles(Kind::ConnectWise))
        .assert_none();
}

#[test]
fn autotask_errors_that_echo_the_credentials_name_the_request_but_not_the_secrets() {
    let mode = Arc::new(Mutex::new((401, EchoBody::Json)));
    let echo = echo_server(mode.clone());
    let world = World::new(
        Kind::Autotask,
        &at_settings(&format!("{}/atservicesrest/", echo.url)),
        None,
        at_story(),
    );
    for (status, body, says) in [
        (401, EchoBody::Json, "credentials rejected (HTTP 401)"),
        (403, EchoBody::Text, "the API user may not read"),
        (400, EchoBody::Json, "Autotask rejected the request"),
        (
            200,
            EchoBody::Json,
            "Autotask answered HTTP 200 but reported errors",
        ),
        (200, EchoBody::Text, "unexpected response"),
    ] {
        *mode.lock().unwrap() = (status, body);
        let plan = world.run(&["plan"]);
        assert_eq!(plan.code, Some(4), "{plan:?}");
        let error = plan
            .stderr
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap();
        assert!(error.contains("/atservicesrest/v1.0/"), "{error}");
        assert!(error.contains(says), "{error}");
        assert!(error.contains("[redacted]"), "{error}");
    }
    *mode.lock().unwrap() = (401, EchoBody::Text);
    let doctor = world.run(&["doctor"]);
    assert_eq!(doctor.code, Some(4), "{doctor:?}");
    assert!(
        echo.seen()
            .iter()
            .any(|r| r.header("secret") == Some(AT_SECRET))
    );
    world
        .sweep_outputs(&all_needles(Kind::Autotask))
        .assert_none();
}

/// Zone discovery sends the user name in the query string, percent-encoded
/// (`user=api.Zq7k%40computech.example`): a server that echoes the URL, or a connection that
/// breaks, must not put it into the error.
#[tokio::test]
async fn autotask_zone_discovery_errors_carry_no_user_name_in_any_encoding() {
    use unitsync::psa::autotask::{AutotaskOptions, Credentials};
    use unitsync::psa::{AutotaskClient, Psa, RetryPolicy};

    let mode = Arc::new(Mutex::new((400, EchoBody::Json)));
    let echo = echo_server(mode.clone());
    // A server that reads the request and hangs up without answering.
    let hang_up = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hang_up_url = format!("http://{}", hang_up.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in hang_up.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut line = String::new();
            let _ = BufReader::new(&mut stream).read_line(&mut line);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let mappings: Vec<unitsync::config::Mapping> = serde_json::from_value(json!([{
        "account": "Bob's Dentistry", "license_type": "ShadowProtect Desktop",
        "company": 250, "contract": 1001, "service": "SP-DESKTOP"
    }]))
    .unwrap();
    let needles = all_needles(Kind::Autotask);
    let mut leaks = Leaks::default();
    for (discovery, expected) in [
        (
            &echo.url,
            "GET /atservicesrest/v1.0/zoneInformation: Autotask rejected the request for the zone \
             of the API user (HTTP 400): credentials: GET /atservicesrest/v1.0/zoneInformation?user=[redacted] ",
        ),
        (
            &hang_up_url,
            "GET /atservicesrest/v1.0/zoneInformation: could not reach 127.0.0.1:",
        ),
    ] {
        let mut options = AutotaskOptions::new(
            dir.path().join("journal.jsonl"),
            jiff::civil::date(2026, 12, 1),
        );
        options.discovery_url = Some(format!("{discovery}/atservicesrest/"));
        options.retry = RetryPolicy {
            max_attempts: 2,
            base_delay: std::time::Duration::from_millis(1),
            ..RetryPolicy::default()
        };
        let client = AutotaskClient::new(
            &unitsync::config::AutotaskSettings {
                url: None,
                effective: Default::default(),
                timeout_seconds: None,
            },
            Credentials::new(AT_USERNAME, AT_SECRET, AT_INTEGRATION_CODE),
            options,
        )
        .unwrap();
        let error = client.snapshot(&mappings).await.unwrap_err().to_string();
        assert!(error.starts_with(expected), "{error}");
        if discovery == &hang_up_url {
            // reqwest's own message quotes the URL: without its query.
            assert!(
                error.contains("/atservicesrest/v1.0/zoneInformation): "),
                "{error}"
            );
        }
        leaks.check(&format!("the error {error:?}"), &error, &needles);
    }
    // The user name went out percent-encoded, as the echo shows.
    assert_eq!(
        echo.seen()[0].uri,
        "/atservicesrest/v1.0/zoneInformation?user=api.Zq7k%40computech.example"
    );
    leaks.assert_none();
}

/// A token in the source URL's query string (some vendors take their key there).
const QUERY_TOKEN: &str = "srcQueryTok5Vn8+Yt2=";

#[test]
fn usage_source_errors_that_echo_the_credentials_name_the_url_but_not_the_secrets() {
    let mode = Arc::new(Mutex::new((401, EchoBody::Json)));
    let echo = echo_server(mode.clone());
    let world = World::connectwise();
    let source_url = world.source.url.clone();
    let query = format!("?api_key={}&page=1", percent(QUERY_TOKEN, false));
    world.edit_settings(
        &format!("url: {source_url}/usage"),
        &format!("url: {}/usage{query}", echo.url),
    );
    let shown = format!("GET {}/usage?…", echo.url);
    // The vendor failing exits 4; an answer that does not fit the settings (`records`,
    // `fields`) exits 1, as bad settings do.
    for (status, body, says, code) in [
        (401, EchoBody::Json, "returned 401 Unauthorized: ", 4),
        (
            500,
            EchoBody::Text,
            "returned 500 Internal Server Error: ",
            4,
        ),
        (200, EchoBody::Text, "not valid JSON", 1),
        (200, EchoBody::Records, "record at index 0", 1),
    ] {
        *mode.lock().unwrap() = (status, body);
        let plan = world.run(&["plan"]);
        assert_eq!(plan.code, Some(code), "{plan:?}");
        let error = plan
            .stderr
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap();
        assert!(error.starts_with("error: vendor source: "), "{error}");
        assert!(error.contains(says), "{error}");
        if status != 200 {
            assert!(error.contains(&shown), "{error}");
            assert!(error.contains("[redacted]"), "{error}");
        }
    }
    // Exactly, for one: the request and the server's words, without the credentials.
    *mode.lock().unwrap() = (500, EchoBody::Text);
    let plan = world.run(&["plan"]);
    let host = echo.url.trim_start_matches("http://");
    assert_eq!(
        plan.stderr.lines().find(|l| l.starts_with("error: ")),
        Some(
            format!(
                "error: vendor source: GET {}/usage?… returned 500 Internal Server Error: you sent GET \
                 /usage?api_key=[redacted]&page=1 accept: application/json authorization: [redacted] host: \
                 {host}; the vendor's service failed; try again later",
                echo.url
            )
            .as_str()
        )
    );
    // Every request carried both credentials.
    for seen in echo.seen() {
        assert_eq!(seen.header("authorization"), Some(source_header().as_str()));
        assert_eq!(seen.query("api_key").as_deref(), Some(QUERY_TOKEN));
    }
    // Nothing listens: the connection error names the URL without its query.
    world.edit_settings(
        &format!("url: {}/usage", echo.url),
        &format!("url: http://127.0.0.1:{}/usage", free_port()),
    );
    let plan = world.run(&["plan"]);
    assert_eq!(plan.code, Some(4), "{plan:?}");
    let error = plan
        .stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap();
    assert!(
        error.starts_with("error: vendor source: GET http://127.0.0.1:")
            && error.contains("/usage?… failed: ")
            && error.ends_with("; check source.http.url and the network"),
        "{error}"
    );
    let mut needles = all_needles(Kind::ConnectWise);
    needles.extend(forms("the source URL's api_key", QUERY_TOKEN));
    world.sweep_outputs(&needles).assert_none();
}

#[test]
fn github_errors_that_echo_the_token_name_the_call_but_not_the_token() {
    let mode = Arc::new(Mutex::new((401, EchoBody::Json)));
    let echo = echo_server(mode.clone());
    let mut world = World::connectwise();
    world.set("GITHUB_API_URL", &echo.url);
    let list = format!("error: GitHub list open pull requests for {BRANCH}: ");
    for (status, body, says) in [
        (401, EchoBody::Json, "(HTTP 401); check GITHUB_TOKEN"),
        (404, EchoBody::Json, "(HTTP 404); check the repository name"),
        (422, EchoBody::Json, "(HTTP 422)"),
        (200, EchoBody::Text, ""),
    ] {
        *mode.lock().unwrap() = (status, body);
        let propose = world.run(&["propose"]);
        assert_eq!(propose.code, Some(4), "{propose:?}");
        let error = propose
            .stderr
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap();
        assert!(error.starts_with(&list), "{error}");
        assert!(error.contains(says), "{error}");
        if body == EchoBody::Json {
            assert!(error.contains("[redacted]"), "{error}");
        }
    }
    // Exactly, for one: the call, GitHub's message without the token, the status and a hint.
    *mode.lock().unwrap() = (401, EchoBody::Json);
    let propose = world.run(&["propose"]);
    let host = echo.url.trim_start_matches("http://");
    assert_eq!(
        propose.stderr.lines().find(|l| l.starts_with("error: ")),
        Some(
            format!(
                "{list}you sent GET /repos/{REPOSITORY}/pulls?state=open&head=computech%3Aunitsync%2Fpending\
                 &sort=updated&direction=desc&per_page=30 x-github-api-version: 2022-11-28 content-length: 0 \
                 authorization: Bearer [redacted] user-agent: octocrab host: {host} (HTTP 401); check GITHUB_TOKEN"
            )
            .as_str()
        )
    );
    // apply --gitops asks GitHub who merged the commit.
    *mode.lock().unwrap() = (401, EchoBody::Json);
    let apply = world.run(&["apply", "--gitops"]);
    assert_eq!(apply.code, Some(4), "{apply:?}");
    assert!(
        apply
            .stderr
            .contains("error: GitHub find the pull request of commit "),
        "{}",
        tail(&apply.stderr)
    );
    for seen in echo.seen() {
        assert_eq!(
            seen.header("authorization"),
            Some(format!("Bearer {GITHUB_TOKEN}").as_str())
        );
    }
    world
        .sweep_outputs(&all_needles(Kind::ConnectWise))
        .assert_none();
}

/// An SMTP server that offers AUTH and refuses it with a reply quoting the client's AUTH line
/// and the login it decodes from it.
fn hostile_smtp() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            std::thread::spawn(move || {
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::new(stream);
                let _ = writer.write_all(b"220 hostile.example ESMTP\r\n");
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                    let command = line.trim_end().to_string();
                    line.clear();
                    let upper = command.to_ascii_uppercase();
                    let reply = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                        "250-hostile.example\r\n250 AUTH PLAIN LOGIN\r\n".to_string()
                    } else if upper.starts_with("AUTH") {
                        let decoded = command
                            .split_whitespace()
                            .nth(2)
                            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                            .map(|d| String::from_utf8_lossy(&d).replace('\0', " "))
                            .unwrap_or_default();
                        format!("535 5.7.8 refused {command} (login{decoded})\r\n")
                    } else if upper.starts_with("QUIT") {
                        let _ = writer.write_all(b"221 bye\r\n");
                        break;
                    } else {
                        "250 OK\r\n".to_string()
                    };
                    if writer.write_all(reply.as_bytes()).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

#[test]
fn notification_failures_that_echo_credentials_are_warnings_without_them() {
    let failing = Server::start(|req| (500, json!({ "message": echo_text(req) }).to_string()));
    let redirecting = Server::start(|req| (302, echo_text(req)));
    let smtp = hostile_smtp();
    let mut world = World::connectwise();
    let (json_var, _, json_token) = HOOK_TOKENS[0];
    let (slack_var, _, slack_token) = HOOK_TOKENS[1];
    let (teams_var, _, teams_token) = HOOK_TOKENS[2];
    world.set(
        json_var,
        &format!("{}/hook/{json_token}?sig={json_token}", failing.url),
    );
    world.set(
        slack_var,
        &format!("{}/hook/{slack_token}?sig={slack_token}", redirecting.url),
    );
    world.set(
        teams_var,
        &format!(
            "http://127.0.0.1:{}/hook/{teams_token}?sig={teams_token}",
            free_port()
        ),
    );
    world.edit_settings(
        &format!("port: {}", world.smtp.port),
        &format!("port: {smtp}"),
    );
    git(&world.work, &["commit", "--quiet", "-am", "hostile SMTP"]);
    git(&world.work, &["push", "--quiet", "origin", "main"]);
    let out = world.run(&["propose"]);
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, tail(&out.stderr));
    let warnings: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("warning: notification not sent: "))
        .collect();
    assert_eq!(warnings.len(), 4, "{}", out.stdout);
    assert!(
        warnings[0].starts_with(&format!(
            "warning: notification not sent: e-mail to billing@computech.example (proposed) via \
             127.0.0.1:{smtp}: permanent error (535): 5.7.8 refused AUTH PLAIN [redacted] (login"
        )),
        "{}",
        warnings[0]
    );
    assert_eq!(
        warnings[1..],
        [
            "warning: notification not sent: webhook $UNITSYNC_HOOK_JSON (json) (proposed): HTTP 500 Internal Server Error",
            "warning: notification not sent: webhook $UNITSYNC_HOOK_SLACK (slack) (proposed): HTTP 302 Found",
            warnings[3],
        ]
    );
    assert!(
        warnings[3].starts_with(
            "warning: notification not sent: webhook $UNITSYNC_HOOK_TEAMS (teams) (proposed): "
        ),
        "{}",
        warnings[3]
    );
    assert_eq!(failing.seen().len(), 1);
    assert_eq!(redirecting.seen().len(), 1);
    world
        .sweep_outputs(&all_needles(Kind::ConnectWise))
        .assert_none();
}

// ---------------------------------------------------------------------------------------------
// 3. Vendor and PSA text cannot inject links, HTML, table breaks or terminal sequences

/// A vendor account name with a Markdown link, raw HTML, a table pipe, a line break, backticks,
/// quotes, a screen-clearing escape sequence, a carriage return, a mention, an issue reference
/// and a right-to-left override.
const EVIL: &str = "Evil [x](http://evil.example) <script>alert(1)</script> <img src=x onerror=alert(1)> \
                    a|b\nc `rm` \"q\" \x1b[2J\r@admin #1 \u{202e}txt";
/// A licence type that would end a Mermaid string and diagram, and colour a terminal.
const EVIL_TYPE: &str = "Desk|top <b>\"x\"</b> ```\n%%{init}%% ]; \x1b[31m";
/// The PSA's agreement name: a link, HTML, a heading on a new line, an OSC 8 terminal hyperlink.
const EVIL_AGREEMENT: &str = "Managed | <i>Backup</i> [y](javascript:alert(1))\n# Head \x1b]8;;http://evil.example\x07link\x1b]8;;\x07";

/// A YAML double-quoted scalar for any text.
fn yaml_quoted(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() || !c.is_ascii() => {
                out.push_str(&format!("\\u{:04X}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn evil_world() -> World {
    let mut seed = cw_seed();
    let agreement = seed.agreements.iter_mut().find(|a| a.id == 1001).unwrap();
    agreement.name = EVIL_AGREEMENT.into();
    let sandbox =
        Sandbox::start_in_background(seed, Faults::none(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let story = Story {
        mappings: format!(
            "mappings:\n  - id: evil-corp/desktop\n    account: {}\n    license_type: ShadowProtect Desktop\n    \
             company: BobsDentistry\n    agreement: 1001\n    addition: SP-DESKTOP\n",
            yaml_quoted(EVIL)
        ),
        usage: json!([
            { "account": EVIL, "license_type": "ShadowProtect Desktop", "units": 4 },
            { "account": EVIL, "license_type": EVIL_TYPE, "units": 2 },
        ]),
        lock: "units:\n  evil-corp/desktop: 3\n".into(),
    };
    World::new(
        Kind::ConnectWise,
        &cw_settings(&sandbox.base_url()),
        Some(Psa::ConnectWise(sandbox)),
        story,
    )
}

/// `EVIL` in Markdown: brackets, pipe, backticks, `:` (autolinks), `<`/`>` escaped, the line
/// break, escape and carriage return as spaces, mention and reference broken by a word joiner,
/// the right-to-left override dropped.
const EVIL_MD: &str = "Evil \\[x\\](http\\://evil.example) &lt;script&gt;alert(1)&lt;/script&gt; \
                       &lt;img src=x onerror=alert(1)&gt; a\\|b c \\`rm\\` \"q\"  \\[2J @\u{2060}admin #\u{2060}1 txt";
const EVIL_TYPE_MD: &str = "Desk\\|top &lt;b&gt;\"x\"&lt;/b&gt; \\`\\`\\` %%{init}%% \\];  \\[31m";
const EVIL_AGREEMENT_MD: &str = "Managed \\| &lt;i&gt;Backup&lt;/i&gt; \\[y\\](javascript\\:alert(1)) #\u{2060} Head  \
                                 \\]8;;http\\://evil.example link \\]8;; ";
/// `EVIL` for a terminal (and plain-text e-mail): control characters and the override shown as
/// escapes.
const EVIL_TERM: &str = "Evil [x](http://evil.example) <script>alert(1)</script> <img src=x onerror=alert(1)> \
                         a|b\\nc `rm` \"q\" \\u{1b}[2J\\r@admin #1 \\u{202e}txt";
const EVIL_TYPE_TERM: &str = "Desk|top <b>\"x\"</b> ```\\n%%{init}%% ]; \\u{1b}[31m";
/// In HTML: markup characters as entities, control characters as spaces (a line break is
/// whitespace there), the override dropped.
const EVIL_HTML: &str = "Evil [x](http://evil.example) &lt;script&gt;alert(1)&lt;/script&gt; \
                         &lt;img src=x onerror=alert(1)&gt; a|b\nc `rm` &quot;q&quot;  [2J @admin #1 txt";
const EVIL_TYPE_HTML: &str = "Desk|top &lt;b&gt;&quot;x&quot;&lt;/b&gt; ```\n%%{init}%% ];  [31m";

/// Nothing a terminal would interpret: no ESC, BEL, CR, C1 control or bidi override.
fn assert_terminal_safe(what: &str, text: &str) {
    let bad: Vec<char> = text
        .chars()
        .filter(|c| {
            (c.is_control() && *c != '\n')
                || ('\u{202A}'..='\u{202E}').contains(c)
                || ('\u{2066}'..='\u{2069}').contains(c)
        })
        .collect();
    assert!(bad.is_empty(), "{what} has {bad:?}:\n{text}");
}

#[test]
fn vendor_and_psa_text_is_escaped_in_every_renderer() {
    let world = evil_world();
    let html_path = world.dir.path().join("status.html");

    // The terminal: shown, not interpreted, and no line added.
    let table = world.expect(0, &["plan"]);
    assert_terminal_safe("plan", &table);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 8, "{table}");
    assert!(
        lines[1].starts_with(
            "evil-corp/desktop  BobsDentistry  Managed | <i>Backup</i> [y](javascript:alert(1))\\n# Head \
             \\u{1b}]8;;http://evil.example\\u{7}link\\u{1b}]8;;\\u{7}  SP-DESKTOP"
        ),
        "{}",
        lines[1]
    );
    assert_eq!(
        lines[5],
        format!("{EVIL_TERM}  {EVIL_TYPE_TERM}      2"),
        "{table}"
    );
    let status = world.expect(0, &["status"]);
    assert_terminal_safe("status", &status);
    assert!(
        status.contains(&format!(
            "\n  {EVIL_TYPE_TERM}           2           0\n  ShadowProtect Desktop{}4           3\n",
            " ".repeat(39)
        )),
        "{status}"
    );
    assert!(
        status.contains(&format!(
            "\n  warning: unmapped: {EVIL_TERM} / {EVIL_TYPE_TERM} (2 units not billed); see `unitsync accounts --suggest`\n"
        )),
        "{status}"
    );
    let accounts = world.expect(0, &["accounts"]);
    assert_terminal_safe("accounts", &accounts);
    assert_eq!(accounts.lines().count(), 3, "{accounts}");
    assert!(accounts.contains(&format!("\n{EVIL_TERM}  ShadowProtect Desktop ")));

    // Markdown: the whole plan, exactly.
    let markdown = world.expect(0, &["plan", "--format", "markdown"]);
    let changes = format!(
        "| `evil-corp/desktop` | {EVIL_MD} · ShadowProtect Desktop | BobsDentistry › {EVIL_AGREEMENT_MD} › SP-DESKTOP \
         | update | 3 | 4 | +1 | {} | +$12.50 |",
        crate::support::first_of_next_month()
    );
    let unmapped = format!("| {EVIL_MD} | {EVIL_TYPE_MD} | 2 |");
    assert_eq!(
        markdown,
        format!(
            "## unitsync plan\n\n**Plan: 1 to update (+1 / -0 units), 0 in sync, 1 unmapped, 0 errors. Revenue: +$12.50/month.**\n\n\
             ### Changes (1)\n\n| Mapping | Vendor account | PSA line | Action | From | To | Change | Effective | Revenue / month |\n\
             |---|---|---|---|--:|--:|--:|---|--:|\n{changes}\n\n\
             _In place: the edit carries no date, and the PSA bills it from the next invoice — the effective date shown._\n\n\
             ### Unmapped vendor accounts (1)\n\n\
             Not billed until a mapping covers them.\n\n| Account | Licence type | Units |\n|---|---|--:|\n\
             {unmapped}\n"
        )
    );
    // The status page in Markdown: the table row, the Mermaid label, the alert.
    let status_md = world.expect(
        0,
        &[
            "status",
            "--format",
            "markdown",
            "--html",
            html_path.to_str().unwrap(),
        ],
    );
    for expected in [
        format!("\n| {EVIL_TYPE_MD} | 2 | 0 |\n"),
        "\n    x-axis [\"Desk|top  b  x  /b         init         31m\", \"ShadowProtect Desktop\"]\n"
            .to_string(),
        format!(
            "\n- Warning: unmapped\\: {EVIL_MD} / {EVIL_TYPE_MD} (2 units not billed); see \\`unitsync accounts --suggest\\`\n"
        ),
    ] {
        assert!(status_md.contains(&expected), "{expected}\nnot in\n{status_md}");
    }
    // HTML: entities, no element from the data.
    let html = std::fs::read_to_string(&html_path).unwrap();
    for expected in [
        format!(
            "<tr><td>{EVIL_TYPE_HTML}</td><td class=\"num\">2</td><td class=\"num\">0</td></tr>"
        ),
        format!(
            "<li class=\"warning\">Warning: unmapped: {EVIL_HTML} / {EVIL_TYPE_HTML} (2 units not billed); \
             see `unitsync accounts --suggest`</li>"
        ),
        format!(
            "<text x=\"68.0\" y=\"154.0\" font-size=\"10\" text-anchor=\"middle\">{EVIL_TYPE_HTML}</text>"
        ),
    ] {
        assert!(html.contains(&expected), "{expected}\nnot in\n{html}");
    }
    for element in [
        "<script", "<img", "<b>", "<i>", "\u{1b}", "\u{202e}", "\u{7}",
    ] {
        assert!(!html.contains(element), "{element:?} in the HTML page");
    }

    // The pull request: the same escaped rows; its proposal notifications.
    world.expect(0, &["propose"]);
    let body = world.github.pulls()[0]["body"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        body.contains(&format!(
            "| `evil-corp/desktop` | {EVIL_MD} · ShadowProtect Desktop | BobsDentistry › {EVIL_AGREEMENT_MD} › \
             SP-DESKTOP | propose | 3 | 4 | +1 | {} | +$12.50 |\n",
            crate::support::first_of_next_month()
        )),
        "{body}"
    );
    assert!(body.contains(&format!("\n{unmapped}\n")), "{body}");
    for markup in ["<script", "<img", "](http://", "](javascript:", "\n# "] {
        assert!(!body.contains(markup), "{markup:?} in\n{body}");
    }

    // Apply, then the history table.
    world.merge(1);
    world.expect(0, &["apply", "--gitops"]);
    let history = world.expect(0, &["history"]);
    assert_terminal_safe("history", &history);
    assert_eq!(history.lines().count(), 3, "{history}");
    assert!(
        history.contains(&format!(
            "  {EVIL_TERM}  ShadowProtect Desktop  BobsDentistry  SP-DESKTOP  3 → 4      applied  jdoe         #1\n"
        )),
        "{history}"
    );

    // Notifications: e-mail, Slack and Teams, for the proposal and the apply.
    let line = format!(
        "{EVIL_TERM} / ShadowProtect Desktop (BobsDentistry, SP-DESKTOP): 3 → 4, from {}, +$12.50/month",
        crate::support::first_of_next_month()
    );
    let messages = world.smtp.messages(2);
    assert_eq!(messages.len(), 2);
    assert_eq!(
        messages[1]["body"],
        format!(
            "unitsync applied 1 unit change to ConnectWise PSA.\n\n\
             Account / licence type (company, product): from → to\n- {line}\n"
        )
    );
    assert!(
        messages[0]["body"]
            .as_str()
            .unwrap()
            .ends_with(&format!("\n- {line}\n"))
    );
    let hooks = world.hooks.seen();
    let payload = |token: &str, event: usize| -> Value {
        let calls: Vec<&Seen> = hooks
            .iter()
            .filter(|s| s.path() == format!("/hook/{token}"))
            .collect();
        serde_json::from_str(&calls[event].body).unwrap()
    };
    assert_eq!(
        payload(HOOK_TOKENS[1].2, 1),
        json!({
            "text": format!(
                "*unitsync: 1 change applied to ConnectWise PSA*\n• {}",
                line.replace('<', "&lt;").replace('>', "&gt;")
            )
        })
    );
    let teams = payload(HOOK_TOKENS[2].2, 1);
    assert_eq!(
        teams["attachments"][0]["content"]["body"][1]["text"],
        format!(
            "- Evil \\[x\\](http\\://evil.example) &lt;script&gt;alert(1)&lt;/script&gt; &lt;img src=x onerror=alert(1)&gt; \
             a\\|b\\\\nc \\`rm\\` \"q\" \\\\u{{1b}}\\[2J\\\\r@\u{2060}admin #\u{2060}1 \\\\u{{202e}}txt / \
             ShadowProtect Desktop (BobsDentistry, SP-DESKTOP)\\: 3 → 4, from {}, +\\$12.50/month",
            crate::support::first_of_next_month()
        )
    );
    // The JSON payload carries the data as it is: it is for programs.
    assert_eq!(payload(HOOK_TOKENS[0].2, 1)["changes"][0]["account"], EVIL);
}
