//! The GitOps loop end to end: the `unitsync` binary against the ConnectWise sandbox, real git
//! repositories (a bare remote and clones in a temp dir) and a fake GitHub API (axum, on
//! 127.0.0.1) that records every call so the tests can assert exactly what was asked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use serde_json::{Value, json};
use unitsync::history::{HistoryRecord, LineOutcome, read_all};
use unitsync::review::MARKER_START;
use unitsync::sandbox::{Faults, Sandbox, SandboxHandle, demo_seed};

const REPOSITORY: &str = "computech/billing";
const TOKEN: &str = "ghp_testtoken0123456789";
const BRANCH: &str = "unitsync/pending";
const BOB: &str = "bobs-dentistry/shadowprotect-desktop";
const FOX: &str = "angry-fox-co/shadowprotect-server";
const TORCH: &str = "digitaltorch-inc/cloud-premium-gb";

// ---------------------------------------------------------------------------------------------
// A fake GitHub

#[derive(Debug, Clone, PartialEq)]
struct Call {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    body: Value,
}

#[derive(Debug, Clone)]
struct FakePull {
    number: u64,
    title: String,
    body: String,
    head: String,
    base: String,
    open: bool,
    merged_by: Option<String>,
    merge_commit_sha: Option<String>,
    /// Larger is more recently updated.
    updated: u64,
}

impl FakePull {
    fn json(&self) -> Value {
        json!({
            "number": self.number,
            "title": self.title,
            "body": self.body,
            "state": if self.open { "open" } else { "closed" },
            "html_url": format!("https://github.com/{REPOSITORY}/pull/{}", self.number),
            "head": { "ref": self.head, "sha": "0000000", "label": format!("computech:{}", self.head) },
            "base": { "ref": self.base, "sha": "0000000" },
            "merged_at": self.merged_by.as_ref().map(|_| "2026-11-25T10:00:00Z"),
            "merge_commit_sha": self.merge_commit_sha,
            "merged_by": self.merged_by.as_ref().map(|login| json!({ "login": login })),
        })
    }
}

#[derive(Default)]
struct GhState {
    pulls: Vec<FakePull>,
    calls: Vec<Call>,
    tick: u64,
    bad_auth: usize,
}

type Gh = Arc<Mutex<GhState>>;

struct FakeGitHub {
    url: String,
    state: Gh,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl FakeGitHub {
    fn start() -> FakeGitHub {
        let state: Gh = Arc::default();
        let app = axum::Router::new()
            .route(
                "/repos/{owner}/{repo}/pulls",
                get(list_pulls).post(create_pull),
            )
            .route(
                "/repos/{owner}/{repo}/pulls/{number}",
                get(read_pull).patch(update_pull),
            )
            .route(
                "/repos/{owner}/{repo}/commits/{sha}/pulls",
                get(commit_pulls),
            )
            .with_state(state.clone());
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
        FakeGitHub {
            url,
            state,
            _shutdown: tx,
        }
    }

    fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    /// (method, path) of every call, cleared afterwards.
    fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut self.state.lock().unwrap().calls)
    }

    fn pulls(&self) -> Vec<FakePull> {
        self.state.lock().unwrap().pulls.clone()
    }

    /// The reviewer merges pull request `number` as `by`; `sha` is the merge commit.
    fn merge(&self, number: u64, by: &str, sha: &str) {
        let mut state = self.state.lock().unwrap();
        state.tick += 1;
        let tick = state.tick;
        let pull = state.pulls.iter_mut().find(|p| p.number == number).unwrap();
        pull.open = false;
        pull.merged_by = Some(by.into());
        pull.merge_commit_sha = Some(sha.into());
        pull.updated = tick;
    }

    fn close(&self, number: u64) {
        let mut state = self.state.lock().unwrap();
        state.tick += 1;
        let tick = state.tick;
        let pull = state.pulls.iter_mut().find(|p| p.number == number).unwrap();
        pull.open = false;
        pull.updated = tick;
    }
}

fn record(
    state: &Gh,
    method: &str,
    headers: &HeaderMap,
    path: String,
    query: BTreeMap<String, String>,
    body: Value,
) -> Result<(), (StatusCode, Json<Value>)> {
    let mut s = state.lock().unwrap();
    s.calls.push(Call {
        method: method.into(),
        path,
        query,
        body,
    });
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("Bearer {TOKEN}") {
        s.bad_auth += 1;
        return Err((
            StatusCode::UNAUTHORIZED,
            Json(json!({ "message": "Bad credentials" })),
        ));
    }
    Ok(())
}

type Reply = Result<Json<Value>, (StatusCode, Json<Value>)>;

async fn list_pulls(
    State(state): State<Gh>,
    UrlPath((owner, repo)): UrlPath<(String, String)>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Reply {
    let path = format!("/repos/{owner}/{repo}/pulls");
    record(&state, "GET", &headers, path, query.clone(), Value::Null)?;
    let s = state.lock().unwrap();
    let wanted_state = query.get("state").map(String::as_str).unwrap_or("open");
    let head = query.get("head").cloned().unwrap_or_default();
    let mut pulls: Vec<&FakePull> = s
        .pulls
        .iter()
        .filter(|p| match wanted_state {
            "open" => p.open,
            "closed" => !p.open,
            _ => true,
        })
        .filter(|p| head.is_empty() || head == format!("{owner}:{}", p.head))
        .collect();
    pulls.sort_by_key(|p| std::cmp::Reverse(p.updated));
    Ok(Json(Value::Array(pulls.iter().map(|p| p.json()).collect())))
}

async fn create_pull(
    State(state): State<Gh>,
    UrlPath((owner, repo)): UrlPath<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Reply {
    let path = format!("/repos/{owner}/{repo}/pulls");
    record(
        &state,
        "POST",
        &headers,
        path,
        BTreeMap::new(),
        body.clone(),
    )?;
    let mut s = state.lock().unwrap();
    let head = body["head"].as_str().unwrap_or_default().to_string();
    if s.pulls.iter().any(|p| p.open && p.head == head) {
        return Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(
                json!({ "message": format!("A pull request already exists for {owner}:{head}.") }),
            ),
        ));
    }
    s.tick += 1;
    let pull = FakePull {
        number: s.pulls.len() as u64 + 1,
        title: body["title"].as_str().unwrap_or_default().into(),
        body: body["body"].as_str().unwrap_or_default().into(),
        head,
        base: body["base"].as_str().unwrap_or_default().into(),
        open: true,
        merged_by: None,
        merge_commit_sha: None,
        updated: s.tick,
    };
    let reply = pull.json();
    s.pulls.push(pull);
    Ok(Json(reply))
}

async fn read_pull(
    State(state): State<Gh>,
    UrlPath((owner, repo, number)): UrlPath<(String, String, u64)>,
    headers: HeaderMap,
) -> Reply {
    let path = format!("/repos/{owner}/{repo}/pulls/{number}");
    record(&state, "GET", &headers, path, BTreeMap::new(), Value::Null)?;
    let s = state.lock().unwrap();
    match s.pulls.iter().find(|p| p.number == number) {
        Some(p) => Ok(Json(p.json())),
        None => Err((
            StatusCode::NOT_FOUND,
            Json(json!({ "message": "Not Found" })),
        )),
    }
}

async fn update_pull(
    State(state): State<Gh>,
    UrlPath((owner, repo, number)): UrlPath<(String, String, u64)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Reply {
    let path = format!("/repos/{owner}/{repo}/pulls/{number}");
    record(
        &state,
        "PATCH",
        &headers,
        path,
        BTreeMap::new(),
        body.clone(),
    )?;
    let mut s = state.lock().unwrap();
    s.tick += 1;
    let tick = s.tick;
    let Some(pull) = s.pulls.iter_mut().find(|p| p.number == number) else {
        return Err((
            StatusCode::NOT_FOUND,
            Json(json!({ "message": "Not Found" })),
        ));
    };
    if let Some(title) = body["title"].as_str() {
        pull.title = title.into();
    }
    if let Some(text) = body["body"].as_str() {
        pull.body = text.into();
    }
    pull.updated = tick;
    Ok(Json(pull.json()))
}

async fn commit_pulls(
    State(state): State<Gh>,
    UrlPath((owner, repo, sha)): UrlPath<(String, String, String)>,
    headers: HeaderMap,
) -> Reply {
    let path = format!("/repos/{owner}/{repo}/commits/{sha}/pulls");
    record(&state, "GET", &headers, path, BTreeMap::new(), Value::Null)?;
    let s = state.lock().unwrap();
    // The "simple" pull-request objects of this endpoint carry no merged_by.
    let pulls = s
        .pulls
        .iter()
        .filter(|p| p.merge_commit_sha.as_deref() == Some(sha.as_str()))
        .map(|p| {
            let mut v = p.json();
            v.as_object_mut().unwrap().remove("merged_by");
            v
        })
        .collect();
    Ok(Json(Value::Array(pulls)))
}

// ---------------------------------------------------------------------------------------------
// Git repositories and the binary

fn git_in(dir: &Path, args: &[&str]) -> String {
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
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

const MAPPINGS: &str = include_str!("../../examples/billing-repo/mappings.yaml");

/// `units.lock.yaml` as unitsync writes it.
fn lock_yaml(entries: &[(&str, &str)]) -> String {
    unitsync::render::lock_text(&unitsync::config::Lock {
        units: entries
            .iter()
            .map(|(id, units)| ((*id).to_string(), units.parse().unwrap()))
            .collect(),
    })
}

fn usage_csv(bob: &str, torch: &str) -> String {
    format!(
        "account,license_type,units,unit\nBob's Dentistry,ShadowProtect Desktop,{bob},\n\
         Angry Fox Co,ShadowProtect Server,2,\nDigitalTorch Inc,Cloud Premium GB,{torch},GB\n\
         Slate Gravel,ShadowProtect Desktop,3,\n"
    )
}

/// A billing repo on a bare remote, a clone where unitsync runs, a reviewer's clone, the
/// ConnectWise sandbox and the fake GitHub.
struct World {
    dir: tempfile::TempDir,
    remote: PathBuf,
    work: PathBuf,
    reviewer: PathBuf,
    sandbox: SandboxHandle,
    github: FakeGitHub,
}

impl World {
    fn new(approval: &str) -> World {
        let dir = tempfile::tempdir().unwrap();
        let sandbox = Sandbox::start_in_background(
            demo_seed(),
            Faults::none(),
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap();
        let github = FakeGitHub::start();
        let remote = dir.path().join("billing.git");
        let work = dir.path().join("work");
        let reviewer = dir.path().join("reviewer");
        git_in(
            dir.path(),
            &["init", "--quiet", "--bare", "-b", "main", "billing.git"],
        );
        git_in(dir.path(), &["clone", "--quiet", "billing.git", "reviewer"]);
        let settings = format!(
            "psa:\n  connectwise:\n    site: {}\n    company: computech\n    update: in-place\n\
             source:\n  csv:\n    path: usage.csv\napproval: {approval}\n\
             github:\n  repository: {REPOSITORY}\n",
            sandbox.base_url()
        );
        std::fs::write(reviewer.join("unitsync.yaml"), settings).unwrap();
        std::fs::write(reviewer.join("mappings.yaml"), MAPPINGS).unwrap();
        std::fs::write(reviewer.join("usage.csv"), usage_csv("4", "135.5")).unwrap();
        // The approved counts are what the PSA bills today.
        std::fs::write(
            reviewer.join("units.lock.yaml"),
            lock_yaml(&[(BOB, "3"), (FOX, "2"), (TORCH, "120.25")]),
        )
        .unwrap();
        git_in(&reviewer, &["add", "."]);
        git_in(&reviewer, &["commit", "--quiet", "-m", "billing repo"]);
        git_in(&reviewer, &["push", "--quiet", "origin", "main"]);
        git_in(dir.path(), &["clone", "--quiet", "billing.git", "work"]);
        World {
            dir,
            remote,
            work,
            reviewer,
            sandbox,
            github,
        }
    }

    fn unitsync(&self, args: &[&str]) -> Output {
        self.unitsync_with_token(args, Some(TOKEN))
    }

    fn unitsync_with_token(&self, args: &[&str], token: Option<&str>) -> Output {
        self.unitsync_with_env(args, token, &[])
    }

    /// Runs unitsync with `env` set on top of the usual environment.
    fn unitsync_with_env(
        &self,
        args: &[&str],
        token: Option<&str>,
        env: &[(&str, String)],
    ) -> Output {
        let mut command = self.command(&self.work, args, token);
        command.envs(env.iter().map(|(k, v)| (k, v)));
        let out = command.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.contains(TOKEN), "the token leaked: {text}");
        if let Some(token) = token {
            assert!(!text.contains(token), "the token leaked: {text}");
        }
        out
    }

    /// The unitsync command run in the checkout `dir`, pointed at this world's PSA and GitHub.
    fn command(&self, dir: &Path, args: &[&str], token: Option<&str>) -> Command {
        let login = self.sandbox.login();
        let mut command = crate::support::unitsync();
        command.env_remove("GITHUB_TOKEN");
        if let Some(token) = token {
            command.env("GITHUB_TOKEN", token);
        }
        command
            .arg("-C")
            .arg(dir)
            .args(args)
            .env_remove("GITHUB_REPOSITORY")
            .env_remove("RUST_LOG")
            .env("GITHUB_API_URL", &self.github.url)
            .env("UNITSYNC_CW_PUBLIC_KEY", &login.public_key)
            .env("UNITSYNC_CW_PRIVATE_KEY", &login.private_key)
            .env("UNITSYNC_CW_CLIENT_ID", login.client_id.unwrap_or_default())
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("NO_COLOR", "1");
        command
    }

    /// Runs unitsync and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.unitsync(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "unitsync {args:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    fn remote_git(&self, args: &[&str]) -> String {
        let mut all = vec!["--git-dir", self.remote.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = Command::new("git")
            .args(&all)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {all:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    fn remote_sha(&self, branch: &str) -> String {
        self.remote_git(&["rev-parse", &format!("refs/heads/{branch}")])
    }

    fn remote_file(&self, rev: &str, path: &str) -> String {
        self.remote_git(&["show", &format!("{rev}:{path}")])
    }

    /// The reviewer merges pull request `number`: the default branch fast-forwards to the
    /// proposal branch on the remote, and GitHub records who merged it.
    fn merge(&self, number: u64) -> String {
        let sha = self.remote_sha(BRANCH);
        self.remote_git(&["update-ref", "refs/heads/main", &sha]);
        self.github.merge(number, "jdoe", &sha);
        git_in(&self.work, &["pull", "--quiet", "--ff-only"]);
        sha
    }

    /// Someone commits `files` to the default branch; the unitsync clone pulls it if `pull`.
    fn commit_main(&self, files: &[(&str, &str)], message: &str, pull: bool) {
        git_in(&self.reviewer, &["checkout", "--quiet", "main"]);
        git_in(
            &self.reviewer,
            &["pull", "--quiet", "--ff-only", "origin", "main"],
        );
        for (path, text) in files {
            std::fs::write(self.reviewer.join(path), text).unwrap();
        }
        git_in(&self.reviewer, &["add", "."]);
        git_in(&self.reviewer, &["commit", "--quiet", "-m", message]);
        git_in(&self.reviewer, &["push", "--quiet", "origin", "main"]);
        if pull {
            git_in(&self.work, &["pull", "--quiet", "--ff-only"]);
        }
    }

    fn patches(&self) -> usize {
        self.sandbox
            .requests()
            .iter()
            .filter(|r| r.method == "PATCH")
            .count()
    }

    fn quantity(&self, addition: i64) -> f64 {
        self.sandbox.addition(addition).unwrap().quantity
    }

    /// The history records on the remote's default branch, read from a fresh clone.
    fn remote_history(&self) -> Vec<HistoryRecord> {
        let check = self
            .dir
            .path()
            .join(format!("check-{}", self.remote_sha("main")));
        if !check.exists() {
            git_in(
                self.dir.path(),
                &[
                    "clone",
                    "--quiet",
                    self.remote.to_str().unwrap(),
                    check.to_str().unwrap(),
                ],
            );
        }
        read_all(&check)
            .unwrap()
            .into_iter()
            .map(|(_, r)| r)
            .collect()
    }
}

fn paths(calls: &[Call]) -> Vec<(String, String)> {
    calls
        .iter()
        .map(|c| (c.method.clone(), c.path.clone()))
        .collect()
}

fn list_query(state: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("direction".to_string(), "desc".to_string()),
        ("head".to_string(), format!("computech:{BRANCH}")),
        ("per_page".to_string(), "30".to_string()),
        ("sort".to_string(), "updated".to_string()),
        ("state".to_string(), state.to_string()),
    ])
}

const PULLS: &str = "/repos/computech/billing/pulls";

/// The two look-ups every manual propose starts with.
fn assert_lookups(calls: &[Call]) {
    assert_eq!(calls[0].method, "GET");
    assert_eq!(calls[0].path, PULLS);
    assert_eq!(calls[0].query, list_query("open"));
    assert_eq!(calls[1].method, "GET");
    assert_eq!(calls[1].path, PULLS);
    assert_eq!(calls[1].query, list_query("closed"));
}

fn summary(record: &HistoryRecord) -> Vec<(String, String, String, LineOutcome, Option<String>)> {
    record
        .lines
        .iter()
        .map(|l| {
            (
                l.mapping.clone(),
                l.from.to_string(),
                l.to.to_string(),
                l.outcome,
                l.reason.clone(),
            )
        })
        .collect()
}

fn line(
    id: &str,
    from: &str,
    to: &str,
    reason: Option<&str>,
) -> (String, String, String, LineOutcome, Option<String>) {
    (
        id.into(),
        from.into(),
        to.into(),
        LineOutcome::Applied,
        reason.map(str::to_string),
    )
}

// ---------------------------------------------------------------------------------------------
// The tests

#[test]
fn the_whole_loop_propose_merge_apply() {
    let world = World::new("manual");
    let main_before = world.remote_sha("main");

    // propose: one branch, one pull request.
    let out = world.ok(&["propose"]);
    assert!(
        out.contains("Opened #1: unitsync: propose 2 unit changes"),
        "{out}"
    );
    let calls = world.github.take_calls();
    assert_eq!(
        paths(&calls),
        [
            ("GET".into(), PULLS.into()),
            ("GET".into(), PULLS.into()),
            ("POST".into(), PULLS.into()),
        ]
    );
    assert_lookups(&calls);
    let create = &calls[2].body;
    assert_eq!(create["title"], "unitsync: propose 2 unit changes");
    assert_eq!(create["head"], BRANCH);
    assert_eq!(create["base"], "main");
    let body = create["body"].as_str().unwrap();
    assert!(
        body.contains(
            "Plan: 0 to update (+0 / -0 units), 2 to propose, 1 in sync, 1 unmapped, 0 errors."
        ),
        "{body}"
    );
    assert!(body.contains("```diff"), "{body}");
    assert!(
        body.contains(&format!(
            "-  {BOB}: 3\n-  {TORCH}: 120.25\n+  {BOB}: 4\n+  {TORCH}: 135.5\n"
        )),
        "{body}"
    );
    assert!(
        body.contains("Slate Gravel"),
        "unmapped accounts are listed: {body}"
    );
    assert!(body.contains(&format!(
        "{MARKER_START}{{\"format_version\":1,\"units\":{{\"{BOB}\":4,\"{TORCH}\":135.5}}}} -->"
    )));
    assert!(body.chars().count() <= 65_536);

    // The branch: one unitsync commit on top of main, changing only the lock.
    let tip = world.remote_sha(BRANCH);
    assert_eq!(
        world.remote_git(&["rev-parse", &format!("{tip}^")]),
        main_before
    );
    assert_eq!(
        world.remote_git(&["log", "-1", "--format=%an <%ae>|%s", &tip]),
        "unitsync <unitsync@users.noreply.github.com>|unitsync: propose 2 unit changes"
    );
    assert_eq!(
        world.remote_git(&["diff", "--name-only", &main_before, &tip]),
        "units.lock.yaml"
    );
    let lock = world.remote_file(BRANCH, "units.lock.yaml");
    assert!(
        lock.ends_with(&format!("units:\n  {FOX}: 2\n  {BOB}: 4\n  {TORCH}: 135.5")),
        "{lock}"
    );
    assert_eq!(world.patches(), 0, "propose never writes the PSA");

    // propose again: the same data, so no commit and no new pull request.
    let out = world.ok(&["propose"]);
    assert!(out.contains("Already proposed"), "{out}");
    let calls = world.github.take_calls();
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert_lookups(&calls);
    assert_eq!(world.remote_sha(BRANCH), tip);
    assert_eq!(world.github.pulls().len(), 1);

    // The reviewer merges; apply sets the PSA and records who approved.
    let merged = world.merge(1);
    let out = world.ok(&["apply", "--gitops"]);
    assert!(out.contains("merged in #1 by jdoe"), "{out}");
    assert_eq!(
        paths(&world.github.take_calls()),
        [
            (
                "GET".into(),
                format!("/repos/computech/billing/commits/{merged}/pulls")
            ),
            ("GET".into(), format!("{PULLS}/1")),
        ]
    );
    assert_eq!(world.patches(), 2);
    assert_eq!(world.quantity(5001), 4.0);
    assert_eq!(world.quantity(5005), 135.5);
    assert_eq!(world.quantity(5003), 2.0);

    let history = world.remote_history();
    assert_eq!(history.len(), 1);
    let record = &history[0];
    assert_eq!(record.commit.as_deref(), Some(merged.as_str()));
    assert_eq!(record.pull_request, Some(1));
    assert_eq!(record.approved_by.as_deref(), Some("jdoe"));
    assert_eq!(
        summary(record),
        [
            line(BOB, "3", "4", None),
            line(TORCH, "120.25", "135.5", None),
            line(FOX, "2", "2", Some(unitsync::apply::FOUND_BASELINE)),
        ]
    );
    // The history commit sits on the merge, and the checkout is at it.
    let main_after = world.remote_sha("main");
    assert_eq!(
        world.remote_git(&["rev-parse", &format!("{main_after}^")]),
        merged
    );
    assert_eq!(git_in(&world.work, &["rev-parse", "HEAD"]), main_after);
    assert_eq!(git_in(&world.work, &["status", "--porcelain"]), "");

    // Nothing left: propose has nothing to do, apply writes nothing.
    let out = world.ok(&["propose"]);
    assert!(out.contains("Nothing to propose"), "{out}");
    assert_eq!(world.github.take_calls().len(), 2);
    let out = world.ok(&["apply", "--gitops"]);
    assert!(out.contains("Nothing to apply"), "{out}");
    assert_eq!(world.patches(), 2);
    assert_eq!(world.remote_sha("main"), main_after);
    assert_eq!(world.github.state.lock().unwrap().bad_auth, 0);
}

#[test]
fn reviewer_edits_are_applied_exactly_and_never_overwritten() {
    let world = World::new("manual");
    world.ok(&["propose"]);
    world.github.take_calls();

    // The reviewer approves 5 instead of 4 for Bob and deletes DigitalTorch's line.
    git_in(&world.reviewer, &["fetch", "--quiet", "origin"]);
    git_in(
        &world.reviewer,
        &[
            "checkout",
            "--quiet",
            "-b",
            "edit",
            &format!("origin/{BRANCH}"),
        ],
    );
    let lock = std::fs::read_to_string(world.reviewer.join("units.lock.yaml")).unwrap();
    let edited = lock
        .replace(&format!("  {BOB}: 4\n"), &format!("  {BOB}: 5\n"))
        .replace(&format!("  {TORCH}: 135.5\n"), "");
    assert_ne!(edited, lock);
    std::fs::write(world.reviewer.join("units.lock.yaml"), &edited).unwrap();
    git_in(
        &world.reviewer,
        &[
            "commit",
            "--quiet",
            "-am",
            "approve 5 for Bob; not DigitalTorch",
        ],
    );
    git_in(
        &world.reviewer,
        &["push", "--quiet", "origin", &format!("HEAD:{BRANCH}")],
    );
    let reviewed = world.remote_sha(BRANCH);

    // propose leaves the branch alone and only notes it in the pull request.
    let out = world.ok(&["propose"]);
    assert!(out.contains("left the branch alone"), "{out}");
    let calls = world.github.take_calls();
    assert_eq!(calls.len(), 3, "{calls:#?}");
    assert_lookups(&calls);
    assert_eq!(
        (calls[2].method.as_str(), calls[2].path.as_str()),
        ("PATCH", "/repos/computech/billing/pulls/1")
    );
    let body = calls[2].body["body"].as_str().unwrap();
    assert!(body.contains("commits unitsync did not make"), "{body}");
    assert!(body.contains("approve 5 for Bob"), "{body}");
    assert_eq!(calls[2].body["title"], "unitsync: propose 2 unit changes");
    assert_eq!(
        world.remote_sha(BRANCH),
        reviewed,
        "no force-push over the reviewer"
    );
    // Once noted, a rerun changes nothing.
    world.ok(&["propose"]);
    assert_eq!(world.github.take_calls().len(), 2);
    assert_eq!(world.remote_sha(BRANCH), reviewed);

    // Merged as edited: Bob gets exactly 5, DigitalTorch is left alone.
    world.merge(1);
    world.ok(&["apply", "--gitops"]);
    assert_eq!(world.quantity(5001), 5.0);
    assert_eq!(world.quantity(5005), 120.25);
    assert_eq!(world.patches(), 1);
    let history = world.remote_history();
    assert_eq!(
        summary(&history[0]),
        [
            line(BOB, "3", "5", None),
            line(FOX, "2", "2", Some(unitsync::apply::FOUND_BASELINE)),
        ]
    );
}

#[test]
fn a_closed_pull_request_is_not_proposed_again_until_the_vendor_count_changes() {
    let world = World::new("manual");
    world.ok(&["propose"]);
    world.github.take_calls();
    world.github.close(1);

    let out = world.ok(&["propose"]);
    assert!(out.contains("Nothing to propose"), "{out}");
    assert!(
        out.contains("rejected when #1 was closed without merging"),
        "{out}"
    );
    let calls = world.github.take_calls();
    assert_eq!(calls.len(), 2, "only the look-ups: {calls:#?}");
    assert_lookups(&calls);

    // Bob buys a fifth desktop: that is proposed; DigitalTorch's rejected 135.5 is not.
    world.commit_main(
        &[("usage.csv", &usage_csv("5", "135.5"))],
        "vendor export",
        true,
    );
    let out = world.ok(&["propose"]);
    assert!(
        out.contains("Opened #2: unitsync: propose 1 unit change"),
        "{out}"
    );
    let calls = world.github.take_calls();
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[2].method, "POST");
    let body = calls[2].body["body"].as_str().unwrap();
    assert!(body.contains(&format!("{{\"{BOB}\":5}}")), "{body}");
    let lock = world.remote_file(BRANCH, "units.lock.yaml");
    assert!(lock.contains(&format!("  {BOB}: 5\n")), "{lock}");
    assert!(lock.contains(&format!("  {TORCH}: 120.25")), "{lock}");
    // The leftover branch of #1 was replaced on top of the new main.
    assert_eq!(
        world.remote_git(&["rev-parse", &format!("{}^", world.remote_sha(BRANCH))]),
        world.remote_sha("main")
    );
}

#[test]
fn the_history_push_is_retried_when_the_default_branch_moved() {
    let world = World::new("manual");
    world.ok(&["propose"]);
    let merged = world.merge(1);
    // Someone pushes to main while the apply runs — after it checked that its checkout is
    // current, before it records history — so its first push is not a fast-forward. A `git`
    // wrapper on PATH pushes the reviewer's commit just before unitsync's first push to main.
    git_in(&world.reviewer, &["checkout", "--quiet", "main"]);
    git_in(
        &world.reviewer,
        &["pull", "--quiet", "--ff-only", "origin", "main"],
    );
    std::fs::write(world.reviewer.join("README.md"), "# billing\n").unwrap();
    git_in(&world.reviewer, &["add", "."]);
    git_in(&world.reviewer, &["commit", "--quiet", "-m", "readme"]);
    let readme = git_in(&world.reviewer, &["rev-parse", "HEAD"]);
    let bin = world.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let real_git = Command::new("sh")
        .args(["-c", "command -v git"])
        .output()
        .unwrap();
    let real_git = String::from_utf8(real_git.stdout)
        .unwrap()
        .trim()
        .to_string();
    let wrapper = bin.join("git");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n\
             case \" $* \" in *\" push \"*refs/heads/main*)\n\
               if mkdir '{marker}' 2>/dev/null; then\n\
                 '{real_git}' -C '{reviewer}' push --quiet origin main || exit 97\n\
               fi ;;\n\
             esac\n\
             exec '{real_git}' \"$@\"\n",
            marker = world.dir.path().join("moved").display(),
            reviewer = world.reviewer.display(),
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let out = world.unitsync_with_env(&["apply", "--gitops"], Some(TOKEN), &[("PATH", path)]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.contains("attempt 1"), "{out}");
    assert!(out.contains("after 2 attempts"), "{out}");
    let main = world.remote_sha("main");
    assert_eq!(
        world.remote_git(&["rev-parse", &format!("{main}^")]),
        readme
    );
    assert_eq!(world.remote_file("main", "README.md"), "# billing");
    let history = world.remote_history();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].commit.as_deref(), Some(merged.as_str()));
    assert_eq!(
        world.patches(),
        2,
        "the PSA is written once, whatever the pushes do"
    );
    assert_eq!(git_in(&world.work, &["rev-parse", "HEAD"]), main);
}

#[test]
fn an_interrupted_apply_is_completed_without_writing_a_line_twice() {
    let world = World::new("manual");
    world.ok(&["propose"]);
    world.merge(1);
    world.ok(&["apply", "--gitops"]);

    // Next month: Bob 6, DigitalTorch 140. Proposed and merged.
    world.commit_main(
        &[("usage.csv", &usage_csv("6", "140"))],
        "vendor export",
        true,
    );
    world.ok(&["propose"]);
    world.merge(2);

    // An apply that died after writing Bob's line, before committing history.
    let client = world.client();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(unitsync::psa::Psa::apply(
            &client,
            &unitsync::psa::LineChange {
                unit_price: None,
                unit_cost: None,
                mapping: BOB.into(),
                contract_id: 1001,
                line_id: 5001,
                from: "4".parse().unwrap(),
                to: "6".parse().unwrap(),
                policy: unitsync::config::UpdatePolicy::InPlace,
                effective: jiff::civil::date(2026, 12, 1),
            },
        ))
        .unwrap();
    world.sandbox.clear_requests();

    let out = world.ok(&["apply", "--gitops"]);
    assert!(out.contains("found applied"), "{out}");
    assert_eq!(world.patches(), 1, "only DigitalTorch is written");
    assert_eq!(world.quantity(5001), 6.0);
    assert_eq!(world.quantity(5005), 140.0);
    let history = world.remote_history();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].pull_request, Some(2));
    assert_eq!(
        summary(&history[1]),
        [
            line(TORCH, "135.5", "140", None),
            line(BOB, "4", "6", Some(unitsync::apply::FOUND_APPLIED)),
        ]
    );

    // And again: nothing written, nothing recorded.
    world.sandbox.clear_requests();
    let out = world.ok(&["apply", "--gitops"]);
    assert!(out.contains("Nothing to apply"), "{out}");
    assert_eq!(world.patches(), 0);
    assert_eq!(world.remote_history().len(), 2);
}

#[test]
fn automatic_approval_applies_and_commits_without_a_pull_request() {
    let world = World::new("automatic");
    let before = world.remote_sha("main");
    let out = world.ok(&["propose"]);
    assert!(out.contains("approval: automatic"), "{out}");
    assert!(world.github.calls().is_empty(), "no GitHub calls");
    assert_eq!(world.patches(), 2);
    assert_eq!(world.quantity(5001), 4.0);
    assert_eq!(world.quantity(5005), 135.5);

    let main = world.remote_sha("main");
    assert_eq!(
        world.remote_git(&["rev-parse", &format!("{main}^")]),
        before
    );
    let changed = world.remote_git(&["diff", "--name-only", &before, &main]);
    assert!(changed.starts_with("history/"), "{changed}");
    assert!(changed.ends_with("units.lock.yaml"), "{changed}");
    let lock = world.remote_file("main", "units.lock.yaml");
    assert!(lock.contains(&format!("  {BOB}: 4\n")), "{lock}");
    let history = world.remote_history();
    assert_eq!(history[0].approved_by.as_deref(), Some("automatic"));
    assert_eq!(history[0].pull_request, None);
    assert!(world.remote_git(&["branch", "--list", BRANCH]).is_empty());

    // Again: nothing to do.
    let out = world.ok(&["propose"]);
    assert!(out.contains("Nothing to apply"), "{out}");
    assert_eq!(world.remote_sha("main"), main);
    assert_eq!(world.patches(), 2);
}

#[test]
fn apply_gitops_refuses_off_the_default_branch() {
    let world = World::new("manual");
    git_in(&world.work, &["checkout", "--quiet", "-b", "feature"]);
    let out = world.unitsync(&["apply", "--gitops"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not the default branch main"), "{stderr}");
    assert_eq!(world.patches(), 0);
}

#[test]
fn drift_is_reported_and_skipped_unless_forced() {
    let world = World::new("manual");
    world.ok(&["propose"]);
    world.merge(1);
    world.ok(&["apply", "--gitops"]);
    let records = world.remote_history().len();

    // Someone sets Bob's line to 7 by hand in ConnectWise.
    let mut bob = world.sandbox.addition(5001).unwrap();
    bob.quantity = 7.0;
    world.sandbox.put_addition(bob);
    world.sandbox.clear_requests();

    let out = world.ok(&["apply", "--gitops"]);
    assert!(
        out.contains("skipped  bobs-dentistry/shadowprotect-desktop: the PSA holds 7, but unitsync last wrote 4"),
        "{out}"
    );
    assert!(out.contains("--force"), "{out}");
    assert_eq!(world.patches(), 0);
    assert_eq!(world.quantity(5001), 7.0);
    assert_eq!(world.remote_history().len(), records);

    let out = world.ok(&["apply", "--gitops", "--force"]);
    assert!(
        out.contains("applied  bobs-dentistry/shadowprotect-desktop: 7 → 4"),
        "{out}"
    );
    assert_eq!(world.patches(), 1);
    assert_eq!(world.quantity(5001), 4.0);
    let history = world.remote_history();
    assert_eq!(history.len(), records + 1);
    assert_eq!(summary(&history[records]), [line(BOB, "7", "4", None)]);
}

#[test]
fn github_credentials_are_required_and_never_printed() {
    let world = World::new("manual");
    let out = world.unitsync_with_token(&["propose"], None);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("GITHUB_TOKEN is not set"), "{stderr}");
    assert!(world.github.calls().is_empty());

    let wrong = "ghp_wrongtoken9876543210";
    let out = world.unitsync_with_token(&["propose"], Some(wrong));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Bad credentials (HTTP 401)"), "{stderr}");
    assert_eq!(world.github.state.lock().unwrap().bad_auth, 1);
    assert!(
        world.remote_git(&["branch", "--list", BRANCH]).is_empty(),
        "nothing pushed"
    );
    assert_eq!(world.patches(), 0);
}

// ---------------------------------------------------------------------------------------------
// The run lock: two applies never write the PSA at once
// ---------------------------------------------------------------------------------------------

const LEASE: &str = "refs/unitsync/apply-lock";

impl World {
    /// A ConnectWise client for this world's sandbox: the PSA as another program sees it.
    fn client(&self) -> unitsync::psa::ConnectWiseClient {
        let login = self.sandbox.login();
        let settings = unitsync::config::ConnectWiseSettings {
            site: self.sandbox.base_url(),
            company: "computech".into(),
            api_version: None,
            update: unitsync::config::UpdatePolicy::InPlace,
            effective: Default::default(),
            concurrency: None,
            timeout_seconds: None,
        };
        unitsync::psa::ConnectWiseClient::new(
            &settings,
            unitsync::psa::Credentials::new(
                login.public_key.clone(),
                login.private_key.clone(),
                login.client_id.clone().unwrap_or_default(),
            ),
        )
        .unwrap()
    }

    /// Whether the remote holds the apply lock.
    fn lease_held(&self) -> bool {
        Command::new("git")
            .args(["--git-dir", self.remote.to_str().unwrap()])
            .args(["show-ref", "--verify", "--quiet", LEASE])
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .status()
            .unwrap()
            .success()
    }

    /// A second clone of the billing repo: another machine.
    fn second_checkout(&self) -> PathBuf {
        git_in(
            self.dir.path(),
            &["clone", "--quiet", "billing.git", "work2"],
        );
        self.dir.path().join("work2")
    }

    /// Polls `condition` every 10 ms for up to 10 s.
    fn wait_for(&self, what: &str, condition: impl Fn() -> bool) {
        let start = std::time::Instant::now();
        while !condition() {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(10),
                "timed out waiting for {what}"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn two_applies_at_once_from_two_machines_never_both_write() {
    let world = World::new("manual");
    world.ok(&["propose"]);
    world.merge(1);
    let other = world.second_checkout();
    world.sandbox.clear_requests();
    // Slow enough that the first run is still applying when the second starts.
    world
        .sandbox
        .set_faults(Faults::none().with_latency(std::time::Duration::from_millis(300)));

    let first = world
        .command(&world.work, &["apply", "--gitops"], Some(TOKEN))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    world.wait_for("the first run's lock", || world.lease_held());
    let second = world
        .command(&other, &["apply", "--gitops"], Some(TOKEN))
        .output()
        .unwrap();
    let first = first.wait_with_output().unwrap();

    let (out, err) = text(&second);
    assert_eq!(second.status.code(), Some(4), "{out}{err}");
    assert!(
        err.starts_with("error: another unitsync apply holds the apply lock on origin ("),
        "{err}"
    );
    assert!(err.contains("; nothing was changed\n"), "{err}");
    assert!(
        err.contains(&format!(
            "hint: if that run is no longer running (killed or cancelled), release the lock with `git push origin --delete {LEASE}`"
        )),
        "{err}"
    );
    assert!(!out.contains("applied"), "{out}");
    let (out, err) = text(&first);
    assert!(first.status.success(), "{out}{err}");
    assert_eq!(
        world.patches(),
        2,
        "Bob's and DigitalTorch's lines, once each"
    );
    assert_eq!(world.remote_history().len(), 1);
    assert!(!world.lease_held(), "the lock is released after the run");

    // The other machine's checkout is now behind by the first run's history commit: it catches
    // up with it (nothing approved changed) and finds nothing left to do.
    world.sandbox.set_faults(Faults::none());
    let again = world
        .command(&other, &["apply", "--gitops"], Some(TOKEN))
        .output()
        .unwrap();
    let (out, err) = text(&again);
    assert!(again.status.success(), "{out}{err}");
    assert!(
        out.contains(
            "\nCatching up with the history unitsync recorded on main since this checkout ("
        ),
        "{out}"
    );
    assert!(out.contains("Nothing to apply."), "{out}");
    assert_eq!(world.patches(), 2);
    assert_eq!(world.remote_history().len(), 1);

    // But a checkout behind a merged pull request (a person's commit) is refused: it would
    // apply an older approval.
    world.commit_main(&[("README.md", "# billing\n")], "readme", false);
    let stale = world
        .command(&other, &["apply", "--gitops"], Some(TOKEN))
        .output()
        .unwrap();
    let (out, err) = text(&stale);
    assert_eq!(stale.status.code(), Some(4), "{out}{err}");
    assert!(
        err.contains("the default branch moved since this checkout was made; nothing was changed"),
        "{err}"
    );
    assert!(!world.lease_held(), "a refused run releases the lock too");
}

#[test]
fn two_applies_started_together_write_each_line_once() {
    let world = World::new("manual");
    world.ok(&["propose"]);
    world.merge(1);
    let other = world.second_checkout();
    world.sandbox.clear_requests();
    let runs: Vec<_> = [&world.work, &other]
        .into_iter()
        .map(|dir| {
            world
                .command(dir, &["apply", "--gitops"], Some(TOKEN))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<Output> = runs
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let succeeded = outs.iter().filter(|o| o.status.success()).count();
    assert_eq!(
        succeeded,
        1,
        "exactly one applies: {:?}",
        outs.iter().map(text).collect::<Vec<_>>()
    );
    let refused = outs.iter().find(|o| !o.status.success()).unwrap();
    let (_, err) = text(refused);
    assert!(
        err.contains("another unitsync apply holds the apply lock on origin")
            || err.contains("the default branch moved since this checkout was made"),
        "{err}"
    );
    assert_eq!(world.patches(), 2);
    assert_eq!(world.remote_history().len(), 1);
    assert!(!world.lease_held());
}

#[test]
fn a_killed_apply_blocks_the_next_until_its_lock_is_released_and_the_rerun_completes_it() {
    let world = World::new("manual");
    world.ok(&["propose"]);
    world.merge(1);
    world.sandbox.clear_requests();
    world
        .sandbox
        .set_faults(Faults::none().with_latency(std::time::Duration::from_millis(200)));
    let mut killed = world
        .command(&world.work, &["apply", "--gitops"], Some(TOKEN))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    world.wait_for("a PATCH", || world.patches() >= 1);
    killed.kill().unwrap();
    killed.wait().unwrap();
    let pid = killed.id();
    world.sandbox.set_faults(Faults::none());
    assert!(world.lease_held(), "a killed run cannot release its lock");

    let blocked = world.unitsync(&["apply", "--gitops"]);
    let (out, err) = text(&blocked);
    assert_eq!(blocked.status.code(), Some(4), "{out}{err}");
    assert!(
        err.contains(&format!(" pid {pid}, since ")),
        "names the holder: {err}"
    );
    let patches_before = world.patches();

    // The hint's command releases it; the rerun writes only what the killed run did not, and
    // records every line once.
    git_in(
        &world.work,
        &["push", "--quiet", "origin", "--delete", LEASE],
    );
    let out = world.ok(&["apply", "--gitops"]);
    assert_eq!(
        world.patches(),
        2,
        "each line written once over both runs: {out}"
    );
    assert!(patches_before >= 1);
    assert_eq!(world.quantity(5001), 4.0);
    assert_eq!(world.quantity(5005), 135.5);
    let history = world.remote_history();
    assert_eq!(history.len(), 1, "{out}");
    let mut lines: Vec<(&str, LineOutcome)> = history[0]
        .lines
        .iter()
        .map(|l| (l.mapping.as_str(), l.outcome))
        .collect();
    lines.sort_by_key(|(mapping, _)| *mapping);
    // Fox's line was already at its approved 2: recorded once as the starting point, as on
    // any first apply.
    assert_eq!(
        lines,
        [
            (FOX, LineOutcome::Applied),
            (BOB, LineOutcome::Applied),
            (TORCH, LineOutcome::Applied)
        ]
    );
    assert!(!world.lease_held());
}

#[test]
fn an_expired_lock_is_taken_over_and_a_foreign_reference_is_refused() {
    let world = World::new("manual");
    world.ok(&["propose"]);
    world.merge(1);
    // A lock left by a run that died a day before the pinned now.
    let acquired = crate::support::now() - jiff::SignedDuration::from_hours(25);
    let expires = acquired + jiff::SignedDuration::from_hours(1);
    let message = format!(
        "unitsync apply lock\n\nHolder: ci@old-runner pid 41\nAcquired: {acquired}\nExpires: {expires}\n"
    );
    let expired = git_in(
        &world.work,
        &["commit-tree", "HEAD^{tree}", "-p", "HEAD", "-m", &message],
    );
    git_in(
        &world.work,
        &["push", "--quiet", "origin", &format!("{expired}:{LEASE}")],
    );
    let out = world.ok(&["apply", "--gitops"]);
    assert!(
        out.contains(&format!(
            "\nTook over the apply lock left by ci@old-runner pid 41, since {acquired}, which expired at {expires}.\n"
        )),
        "{out}"
    );
    assert_eq!(world.patches(), 2);
    assert!(!world.lease_held());

    // Something else at that name is not ours to take over.
    let foreign = git_in(
        &world.work,
        &[
            "commit-tree",
            "HEAD^{tree}",
            "-p",
            "HEAD",
            "-m",
            "not a lock",
        ],
    );
    git_in(
        &world.work,
        &["push", "--quiet", "origin", &format!("{foreign}:{LEASE}")],
    );
    let refused = world.unitsync(&["apply", "--gitops"]);
    let (out, err) = text(&refused);
    assert_eq!(refused.status.code(), Some(4), "{out}{err}");
    assert!(
        err.starts_with(&format!(
            "error: origin has {LEASE} (commit {foreign}), but it is not a unitsync apply lock; nothing was changed\n"
        )),
        "{err}"
    );
}

#[test]
fn a_run_whose_lock_is_about_to_expire_starts_no_write() {
    let world = World::new("manual");
    let client = world.client();
    let q = |s: &str| s.parse::<unitsync::quantity::Quantity>().unwrap();
    let plan = unitsync::plan::Plan {
        currency: "USD".into(),
        desired: unitsync::plan::DesiredFrom::Lock,
        lines: vec![unitsync::plan::PlanLine {
            reprice: None,
            effective: None,
            money: None,
            mapping: BOB.into(),
            account: "Bob's Dentistry".into(),
            license_type: "ShadowProtect Desktop".into(),
            target: unitsync::plan::ResolvedTarget {
                contract_id: Some(1001),
                line_id: Some(5001),
                ..Default::default()
            },
            vendor: Some(q("4")),
            approved: Some(q("4")),
            psa: Some(q("3")),
            last_applied: None,
            update: unitsync::config::UpdatePolicy::InPlace,
            action: unitsync::plan::Action::Update {
                from: q("3"),
                to: q("4"),
            },
        }],
        unmapped: vec![],
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let options = |deadline| unitsync::apply::ApplyOptions {
        effective: jiff::civil::date(2026, 12, 1),
        concurrency: 4,
        deadline: Some(deadline),
    };
    world.sandbox.clear_requests();
    let past = crate::support::now() - jiff::SignedDuration::from_secs(1);
    let lines = runtime.block_on(unitsync::apply::execute(&client, &plan, &options(past)));
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].outcome, LineOutcome::Failed);
    assert_eq!(
        lines[0].reason.as_deref(),
        Some(
            format!("not attempted: this run's lock was about to expire ({past}); run apply again")
                .as_str()
        )
    );
    assert!(world.sandbox.requests().is_empty(), "not a single request");
    assert_eq!(world.quantity(5001), 3.0);

    let future = crate::support::now() + jiff::SignedDuration::from_secs(60);
    let lines = runtime.block_on(unitsync::apply::execute(&client, &plan, &options(future)));
    assert_eq!(lines[0].outcome, LineOutcome::Applied);
    assert_eq!(world.quantity(5001), 4.0);
}

// ---------------------------------------------------------------------------------------------
// True-ups

/// `units × days / month length`, to two decimals: the share the test expects, worked out here
/// rather than by the code under test (no case here lands on a half cent).
fn month_share(units: f64, first: jiff::civil::Date) -> String {
    let days = f64::from(first.last_of_month().day() - first.day() + 1);
    let q = (units * days / f64::from(first.days_in_month()) * 100.0).round() / 100.0;
    format!("{q}")
}

/// An in-place edit bills from the agreement's next invoice, so the days from the change to the
/// end of the invoiced month went out at the old count. With `billing.true_ups` on, the next
/// propose puts one correction per line up for review in `true-ups.yaml`; once merged, apply
/// writes each as an addition effective on the next invoice date and cancelled at that
/// period's end, and a rerun writes nothing.
#[test]
fn true_ups_for_invoiced_days_are_proposed_then_written_once_after_the_merge() {
    let world = World::with_late_changes();
    let today = crate::support::today();
    let next = crate::support::first_of_next_month();
    let month_end = next.yesterday().unwrap();
    let record = &world.remote_history()[0];
    assert_eq!(record.lines[0].due, Some(today));
    assert_eq!(record.lines[0].effective, Some(next));
    world.github.take_calls();

    // The second propose: the lock holds the counts already; the corrections are new.
    let out = world.ok(&["propose"]);
    assert!(
        out.contains("Opened #2: unitsync: propose 2 true-ups"),
        "{out}"
    );
    let bob_id = unitsync::plan::true_up::true_up_id(BOB, today, next);
    let torch_id = unitsync::plan::true_up::true_up_id(TORCH, today, next);
    let (bob_q, torch_q) = (month_share(1.0, today), month_share(15.25, today));
    let days = month_end.day() - today.day() + 1;
    let s = if days == 1 { "" } else { "s" };
    let bob_amount = format!("{:.2}", bob_q.parse::<f64>().unwrap() * 12.5);
    let torch_amount = format!("{:.2}", torch_q.parse::<f64>().unwrap() * 0.25);
    assert_eq!(
        world.remote_file(BRANCH, "true-ups.yaml") + "\n",
        format!(
            "{header}true_ups:\n\
             \x20 # {days} day{s} ({today} to {month_end}) billed 3 instead of 4: +{bob_q} of a monthly period = +${bob_amount}\n\
             \x20 - id: {bob_id}\n    mapping: {BOB}\n    first_day: {today}\n    last_day: {month_end}\n    billed: 3\n    approved: 4\n    quantity: {bob_q}\n\
             \x20 # {days} day{s} ({today} to {month_end}) billed 120.25 instead of 135.5: +{torch_q} of a monthly period = +${torch_amount}\n\
             \x20 - id: {torch_id}\n    mapping: {TORCH}\n    first_day: {today}\n    last_day: {month_end}\n    billed: 120.25\n    approved: 135.5\n    quantity: {torch_q}\n",
            header = unitsync::render::TRUE_UPS_HEADER
        )
    );
    let tip = world.remote_sha(BRANCH);
    assert_eq!(
        world.remote_git(&["diff", "--name-only", "main", &tip]),
        "true-ups.yaml"
    );
    let calls = world.github.take_calls();
    let body = calls[2].body["body"].as_str().unwrap();
    assert!(
        body.contains(&format!(
            "| `{bob_id}` | {} | {today} to {month_end} ({days} day{s}) | 3 → 4 | +{bob_q} | +${bob_amount} |\n",
            unitsync::render::escape_markdown(BOB)
        )),
        "{body}"
    );
    assert!(body.contains("`decline: true`"), "{body}");
    assert!(
        body.contains(&format!("\"true_ups\":[\"{bob_id}\",\"{torch_id}\"]")),
        "{body}"
    );
    assert_eq!(world.patches(), 2, "propose never writes the PSA");
    let posts = |w: &World| {
        w.sandbox
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST")
            .collect::<Vec<_>>()
    };
    assert!(posts(&world).is_empty());
    // Proposing again changes nothing.
    assert!(world.ok(&["propose"]).contains("Already proposed"));

    // Merged: each correction is one addition on the next invoice, cancelled at its period's end.
    world.merge(2);
    let out = world.ok(&["apply", "--gitops"]);
    let written = posts(&world);
    assert_eq!(written.len(), 2, "{written:#?}");
    assert_eq!(
        written[0].path,
        "/v4_6_release/apis/3.0/finance/agreements/1001/additions"
    );
    let period_end = (next + jiff::Span::new().months(1)).yesterday().unwrap();
    assert_eq!(
        written[0].body.clone().unwrap(),
        json!({
            "product": {"id": 301},
            "quantity": serde_json::from_str::<Value>(&bob_q).unwrap(),
            "unitPrice": 12.5,
            "unitCost": 6.0,
            "billCustomer": "Billable",
            "taxableFlag": false,
            "description": format!("unitsync true-up {bob_id}: correction for {today} to {month_end}, billed at the old count (mapping {BOB})"),
            "invoiceDescription": format!("ShadowProtect Desktop: correction for {today} to {month_end}"),
            "effectiveDate": format!("{next}T00:00:00Z"),
            "cancelledDate": format!("{period_end}T00:00:00Z"),
            "agreementId": 1001,
            // A difference: the line's own inclusion already took its included units off.
            "lessIncluded": 0,
            "prorateCurrentPeriodFlag": false,
            "purchaseItemFlag": false,
            "specialOrderFlag": false,
            "sequenceNumber": 0.0,
            "uom": "Each",
        })
    );
    assert!(
        out.contains(&format!("true-up  {bob_id} {BOB}: wrote {bob_q} once")),
        "{out}"
    );
    let history = world.remote_history();
    let record = history.last().unwrap();
    assert_eq!(record.pull_request, Some(2));
    assert!(record.lines.is_empty(), "{record:#?}");
    assert_eq!(
        record
            .true_ups
            .iter()
            .map(|t| (t.id.as_str(), t.contract, t.outcome, t.reason.as_deref()))
            .collect::<Vec<_>>(),
        [
            (bob_id.as_str(), Some(1001), LineOutcome::Applied, None),
            (torch_id.as_str(), Some(1003), LineOutcome::Applied, None)
        ]
    );
    // The true-up addition is not mistaken for the line: the plan is still in sync.
    let out = world.ok(&["apply", "--gitops"]);
    assert!(out.contains("Nothing to apply"), "{out}");
    assert_eq!(posts(&world).len(), 2);
    let out = world.ok(&["propose"]);
    assert!(out.contains("Nothing to propose"), "{out}");
}

impl World {
    /// A world with `billing.true_ups` on whose first proposal was merged and applied in place,
    /// so history shows Bob's and DigitalTorch's changes billing from the next invoice.
    fn with_late_changes() -> World {
        let world = World::new("manual");
        let settings = std::fs::read_to_string(world.reviewer.join("unitsync.yaml")).unwrap();
        world.commit_main(
            &[(
                "unitsync.yaml",
                &format!("{settings}billing:\n  true_ups: true\n"),
            )],
            "turn on true-ups",
            true,
        );
        world.ok(&["propose"]);
        world.merge(1);
        world.ok(&["apply", "--gitops"]);
        world
    }
}

/// Closing a true-up proposal unmerged rejects its corrections: they are not proposed again,
/// and nothing is written.
#[test]
fn a_closed_true_up_proposal_is_not_proposed_again() {
    let world = World::with_late_changes();
    let out = world.ok(&["propose"]);
    assert!(
        out.contains("Opened #2: unitsync: propose 2 true-ups"),
        "{out}"
    );
    world.github.close(2);
    world.github.take_calls();
    let out = world.ok(&["propose"]);
    assert!(out.contains("Nothing to propose"), "{out}");
    assert_eq!(world.github.take_calls().len(), 2, "only the look-ups");
    let out = world.ok(&["apply", "--gitops"]);
    assert!(out.contains("Nothing to apply"), "{out}");
    assert!(
        !world.sandbox.requests().iter().any(|r| r.method == "POST"),
        "nothing written"
    );
}
