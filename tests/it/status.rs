//! `unitsync status` (terminal, Markdown, and the static HTML page rendered in headless
//! Chromium) and `unitsync accounts` (listing, `--suggest`, `--write`), each against its own
//! ConnectWise sandbox and a temporary copy of `examples/billing-repo`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use unitsync::sandbox::{Faults, Sandbox, SandboxHandle, demo_seed};

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

struct Env {
    sandbox: SandboxHandle,
    temp: tempfile::TempDir,
    repo: PathBuf,
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Env {
    fn new() -> Env {
        let sandbox = Sandbox::start_in_background(
            demo_seed(),
            Faults::none(),
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap();
        let temp = tempfile::tempdir().unwrap();
        let repo = temp.path().join("billing");
        copy_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/billing-repo"),
            &repo,
        );
        let settings = repo.join("unitsync.yaml");
        let text = std::fs::read_to_string(&settings).unwrap();
        std::fs::write(
            &settings,
            text.replacen(
                "site: na.myconnectwise.net",
                &format!("site: {}", sandbox.base_url()),
                1,
            ),
        )
        .unwrap();
        Env {
            sandbox,
            temp,
            repo,
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        let login = self.sandbox.login();
        let mut cmd = crate::support::unitsync_clean();
        cmd.env("NO_COLOR", "1")
            .env("UNITSYNC_CW_PUBLIC_KEY", login.public_key)
            .env("UNITSYNC_CW_PRIVATE_KEY", login.private_key)
            .current_dir(self.temp.path())
            .arg("-C")
            .arg(&self.repo)
            .args(args)
            .stdin(Stdio::null());
        if let Some(id) = login.client_id {
            cmd.env("UNITSYNC_CW_CLIENT_ID", id);
        }
        let mut tries = 0;
        let out = loop {
            match cmd.output() {
                Ok(out) => break out,
                // ETXTBSY right after the copy: retry.
                Err(e) if e.raw_os_error() == Some(26) && tries < 50 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("cannot run unitsync: {e}"),
            }
        };
        Run {
            code: out.status.code(),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert_eq!(
            run.code,
            Some(0),
            "{args:?}\nstdout:\n{}\nstderr:\n{}",
            run.stdout,
            run.stderr
        );
        run.stdout
    }

    fn append(&self, file: &str, text: &str) {
        let path = self.repo.join(file);
        let mut content = std::fs::read_to_string(&path).unwrap();
        content.push_str(text);
        std::fs::write(path, content).unwrap();
    }
}

const HOSTILE: &str = "Evil <img src=x onerror=alert(1)>";

/// One apply record: Angry Fox applied 1 → 2, Bob's Dentistry failed.
const HISTORY: &str = r#"run: 2026-11-20T09:30:00Z
approved_by: jdoe
lines:
  - { mapping: angry-fox-co/shadowprotect-server, account: Angry Fox Co, license_type: ShadowProtect Server, company: AngryFox, contract: 1002, line: 5003, product: SP-SERVER, from: 1, to: 2, outcome: applied }
  - { mapping: bobs-dentistry/shadowprotect-desktop, account: "Bob's Dentistry", license_type: ShadowProtect Desktop, company: BobsDentistry, contract: 1001, line: 5001, product: SP-DESKTOP, from: 3, to: 4, outcome: failed, reason: "HTTP 500 from ConnectWise" }
"#;

fn with_history(env: &Env) {
    let dir = env.repo.join("history/2026/11");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("2026-11-20T093000Z.yaml"), HISTORY).unwrap();
    std::fs::write(
        env.repo.join("history/last-refresh"),
        "2026-11-24T10:00:00Z\n",
    )
    .unwrap();
}

#[test]
fn status_shows_counts_units_last_sync_and_alerts_in_the_terminal() {
    let env = Env::new();
    with_history(&env);
    let out = env.ok(&["status"]);
    for expected in [
        &format!("  PSA           ConnectWise ({})", env.sandbox.base_url()) as &str,
        "  Approval      manual",
        "  Last refresh  2026-11-24T10:00:00Z",
        "  Last sync     2026-11-20T09:30:00Z",
        "  Mapped    3",
        "  Pending   2 of 3 mapped\n            +$16.31/month when applied\n",
        "  Unmapped  1\n            $37.50/month not billed (where the price is known)\n",
        "  Error     0",
        "  ShadowProtect Desktop           7           3",
        "  Cloud Premium GB            135.5      120.25",
        "  2026-11-20T09:30:00Z (approved by jdoe): 1 updated, 1 failed, 0 stale; 1 up to date now",
        "  error: the last sync failed on Bob's Dentistry / ShadowProtect Desktop (bobs-dentistry/shadowprotect-desktop): HTTP 500 from ConnectWise",
        "  warning: unmapped: Slate Gravel / ShadowProtect Desktop (3 units not billed)",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
}

#[test]
fn status_markdown_has_mermaid_charts_and_escapes_names() {
    let env = Env::new();
    env.append(
        "usage.csv",
        &format!("{HOSTILE},ShadowProtect Desktop,2,\n"),
    );
    let out = env.ok(&["status", "--format", "markdown"]);
    for expected in [
        "| 3 | 2 | 2 | 0 |",
        "```mermaid\npie title Mappings\n    \"Mapped, no change pending\" : 1\n    \"Pending\" : 2\n    \"Unmapped\" : 2\n    \"Error\" : 0\n```",
        "xychart-beta",
        "x-axis [\"Cloud Premium GB\", \"ShadowProtect Desktop\", \"ShadowProtect Server\"]",
        "bar [135.5, 9, 2]",
        "line [120.25, 3, 2]",
        "Evil &lt;img src=x onerror=alert(1)&gt;",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    assert!(!out.contains("<img"), "{out}");
}

fn chromium() -> &'static str {
    let found = Command::new("sh")
        .args(["-c", "command -v chromium"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "chromium is not on PATH: install it (`apt-get install -y --no-install-recommends chromium`; .ci/run does) — this test renders the status page in headless Chromium"
    );
    "chromium"
}

fn headless(profile: &Path, extra: &[&str], page: &Path) -> std::process::Output {
    Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .output()
        .expect("chromium runs")
}

#[test]
fn the_html_page_renders_in_headless_chromium() {
    let env = Env::new();
    with_history(&env);
    env.append(
        "usage.csv",
        &format!("{HOSTILE},ShadowProtect Desktop,2,\n"),
    );
    let page = env.temp.path().join("status.html");
    let run = env.run(&["status", "--html", page.to_str().unwrap()]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(!html.contains("<script"), "the page needs no JavaScript");

    let profile = tempfile::tempdir().unwrap();
    let dump = headless(profile.path(), &["--dump-dom"], &page);
    let dom = String::from_utf8_lossy(&dump.stdout);
    assert!(
        dump.status.success() && dom.contains("</html>"),
        "chromium --dump-dom failed: {}\n{dom}",
        String::from_utf8_lossy(&dump.stderr)
    );
    for expected in [
        r#"<div class="card" id="count-mapped"><div class="n">3</div>Mapped</div>"#,
        r#"<div class="card" id="count-pending"><div class="n">2</div>Pending</div>"#,
        r#"<div class="card" id="count-unmapped"><div class="n">2</div>Unmapped</div>"#,
        r#"<div class="card" id="count-error"><div class="n">0</div>Error</div>"#,
        "2 of 3 mapped lines pending",
        r#"<tr><td>ShadowProtect Desktop</td><td class="num">9</td><td class="num">3</td></tr>"#,
        r#"<tr><td>Cloud Premium GB</td><td class="num">135.5</td><td class="num">120.25</td></tr>"#,
        "Slate Gravel",
        "<td>jdoe</td>",
        "HTTP 500 from ConnectWise",
        "Evil &lt;img src=x onerror=alert(1)&gt;",
        "<svg class=\"pie\"",
        "<svg class=\"bars\"",
    ] {
        assert!(dom.contains(expected), "missing {expected:?} in:\n{dom}");
    }
    assert!(
        !dom.contains("<img"),
        "a vendor name became an element:\n{dom}"
    );

    let png = env.temp.path().join("status.png");
    let shot = headless(
        profile.path(),
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1100,1400",
            "--hide-scrollbars",
        ],
        &page,
    );
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 1000,
        "no screenshot ({size} bytes): {}",
        String::from_utf8_lossy(&shot.stderr)
    );
    if let Ok(dir) = std::env::var("UNITSYNC_KEEP_SCREENSHOT") {
        std::fs::copy(&png, Path::new(&dir).join("status.png")).unwrap();
    }
}

#[test]
fn accounts_lists_every_vendor_record_with_its_status() {
    let env = Env::new();
    let out = env.ok(&["accounts"]);
    let lines: Vec<&str> = out.lines().map(str::trim_end).collect();
    assert_eq!(
        lines,
        [
            "ACCOUNT           LICENCE TYPE           STATUS    DETAIL",
            "Angry Fox Co      ShadowProtect Server   mapped    angry-fox-co/shadowprotect-server → AngryFox / SP-SERVER",
            "Bob's Dentistry   ShadowProtect Desktop  mapped    bobs-dentistry/shadowprotect-desktop → BobsDentistry / SP-DESKTOP",
            "DigitalTorch Inc  Cloud Premium GB       mapped    digitaltorch-inc/cloud-premium-gb → DigitalTorch / CLOUD-GB",
            "Slate Gravel      ShadowProtect Desktop  unmapped  3 units not billed",
        ]
    );
    let unmapped = env.ok(&["accounts", "--unmapped"]);
    assert_eq!(unmapped.lines().count(), 2, "{unmapped}");
    assert!(unmapped.contains("Slate Gravel"));

    // A mapping whose agreement has no additions is an error with its reason.
    env.append(
        "mappings.yaml",
        "  - account: Slate Gravel\n    license_type: ShadowProtect Desktop\n    company: SlateGravel\n    agreement: 1005\n    addition: SP-DESKTOP\n",
    );
    let out = env.ok(&["accounts"]);
    assert!(
        out.contains("Slate Gravel      ShadowProtect Desktop  error     slate-gravel/shadowprotect-desktop: "),
        "{out}"
    );
    assert!(out.contains("has no services or additions"), "{out}");
}

#[test]
fn suggest_names_the_company_and_says_the_agreement_has_no_additions() {
    let env = Env::new();
    let out = env.ok(&["accounts", "--suggest"]);
    for expected in [
        "Suggestion for Slate Gravel / ShadowProtect Desktop:",
        "  company    Slate Gravel LLC (id 253, identifier SlateGravel) score 1.00",
        "  agreement  Managed Backup (id 1005)",
        "  note: agreement 1005 (Managed Backup) has no additions",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
}

#[test]
fn suggest_finds_the_matching_addition() {
    let env = Env::new();
    let mut addition = env.sandbox.addition(5001).unwrap();
    addition.id = 5099;
    addition.agreement = 1005;
    env.sandbox.put_addition(addition);
    let out = env.ok(&["accounts", "--suggest"]);
    assert!(
        out.contains("  addition   ShadowProtect Desktop (id 5099, product SP-DESKTOP) score 1.00"),
        "{out}"
    );
    assert!(!out.contains("no additions"), "{out}");
}

#[test]
fn write_appends_commented_suggestions_that_keep_the_yaml_valid() {
    let env = Env::new();
    let path = env.repo.join("mappings.yaml");
    let before = std::fs::read_to_string(&path).unwrap();
    let run = env.run(&["accounts", "--suggest", "--write"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let after = std::fs::read_to_string(&path).unwrap();
    let added = after.strip_prefix(before.as_str()).expect("appended only");
    assert_eq!(
        added,
        "  # Suggested by `unitsync accounts --suggest` (company score 1.00): confirm and uncomment.\n\
         \x20 # - account: \"Slate Gravel\"\n\
         \x20 #   license_type: \"ShadowProtect Desktop\"\n\
         \x20 #   company: \"SlateGravel\"   # \"Slate Gravel LLC\"\n\
         \x20 #   agreement: 1005   # \"Managed Backup\"\n\
         \x20 #   addition: TODO   # the agreement has no additions; add one in the PSA first\n"
    );
    env.ok(&["validate"]);

    // Idempotent: a second run adds nothing.
    env.ok(&["accounts", "--suggest", "--write"]);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), after);

    // Uncommented, the entry is a valid mapping (the TODO then fails to resolve in the PSA).
    let uncommented = after
        .replace("  # - account", "  - account")
        .replace("  #   ", "    ");
    let uncommented = uncommented
        .lines()
        .filter(|l| !l.trim_start().starts_with("# Suggested"))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    std::fs::write(&path, uncommented).unwrap();
    let out = env.ok(&["validate"]);
    assert!(out.contains("4 mappings"), "{out}");
}
