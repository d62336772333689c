//! The GitHub Action (`action.yml`) and the example workflows (`examples/workflows/`): the
//! properties users rely on for safety, checked on the parsed YAML. CI also runs
//! check-jsonschema and actionlint on the same files (`.ci/run`).

use std::path::PathBuf;

use serde_json::{Map, Value};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn load(relative: &str) -> Value {
    let path = root().join(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn workflows() -> Vec<(String, Value)> {
    let dir = root().join("examples/workflows");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yml") || n.ends_with(".yaml"))
        .collect();
    names.sort();
    assert_eq!(names, ["unitsync-apply.yml", "unitsync-propose.yml"]);
    names
        .into_iter()
        .map(|n| {
            let value = load(&format!("examples/workflows/{n}"));
            (n, value)
        })
        .collect()
}

fn obj<'a>(value: &'a Value, what: &str) -> &'a Map<String, Value> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("{what} is not a mapping: {value}"))
}

/// Every string in `value` with the path of keys leading to it.
fn strings<'a>(value: &'a Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, &'a str)>) {
    match value {
        Value::String(s) => out.push((path.clone(), s)),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(i.to_string());
                strings(item, path, out);
                path.pop();
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                path.push(k.clone());
                strings(v, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn all_strings(value: &Value) -> Vec<(Vec<String>, &str)> {
    let mut out = Vec::new();
    strings(value, &mut Vec::new(), &mut out);
    out
}

/// Steps of a composite action or of every job of a workflow.
fn steps(value: &Value) -> Vec<&Value> {
    if let Some(steps) = value.pointer("/runs/steps") {
        return steps.as_array().unwrap().iter().collect();
    }
    obj(&value["jobs"], "jobs")
        .values()
        .flat_map(|job| job["steps"].as_array().unwrap().iter())
        .collect()
}

fn is_full_sha_pin(uses: &str) -> bool {
    uses.rsplit_once('@').is_some_and(|(_, r)| {
        r.len() == 40
            && r.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_uppercase())
    })
}

/// Our own action in the examples: its ref is the user's to pin (they fork or vendor it).
const OWN_ACTION: &str = "your-org/unitsync@";

/// Checks shared by action.yml and the workflows.
fn assert_common(name: &str, doc: &Value) {
    for (path, text) in all_strings(doc) {
        let key = path.last().map(String::as_str);
        // No expression expanded into a script: untrusted text would become shell code.
        let in_step = path.len() >= 3 && path[path.len() - 3] == "steps";
        if key == Some("run") && in_step {
            assert!(
                !text.contains("${{"),
                "{name}: {} expands an expression inside `run:`; pass it through env",
                path.join(".")
            );
        }
        // Secrets only as environment variables of a step.
        if text.contains("secrets.") {
            let parent = path.iter().rev().nth(1).map(String::as_str);
            assert_eq!(
                parent,
                Some("env"),
                "{name}: a secret at {} outside an `env:` map",
                path.join(".")
            );
            assert!(
                !path.iter().any(|p| p == "with"),
                "{name}: secret passed as an input at {}",
                path.join(".")
            );
        }
    }
    for step in steps(doc) {
        if let Some(uses) = step["uses"].as_str() {
            assert!(
                is_full_sha_pin(uses) || uses.starts_with(OWN_ACTION),
                "{name}: `{uses}` is not pinned to a full commit SHA"
            );
        }
    }
}

#[test]
fn the_action_is_composite_with_the_documented_inputs_and_outputs() {
    let action = load("action.yml");
    assert_eq!(action["runs"]["using"], "composite");

    let inputs = obj(&action["inputs"], "inputs");
    let names: Vec<&str> = inputs.keys().map(String::as_str).collect();
    // (serde_json's map is sorted.)
    assert_eq!(names, ["args", "billing-repo", "command", "version"]);
    assert_eq!(inputs["command"]["default"], "plan");
    assert_eq!(inputs["billing-repo"]["default"], ".");
    let described = inputs["command"]["description"].as_str().unwrap();
    for command in [
        "plan",
        "propose",
        "apply",
        "validate",
        "doctor",
        "due-refresh",
        "due-sync",
    ] {
        assert!(described.contains(command), "command input omits {command}");
    }
    // No input carries a credential: those come from the step's env.
    for name in inputs.keys() {
        for word in ["token", "key", "secret", "password"] {
            assert!(!name.contains(word), "input `{name}` looks like a secret");
        }
    }

    let outputs = obj(&action["outputs"], "outputs");
    for (name, expected) in [
        ("changes", "${{ steps.run.outputs.changes }}"),
        ("pr-number", "${{ steps.run.outputs.pr-number }}"),
        ("summary", "${{ steps.run.outputs.summary }}"),
        ("due", "${{ steps.run.outputs.due }}"),
    ] {
        assert_eq!(outputs[name]["value"], expected, "output {name}");
    }

    assert_common("action.yml", &action);
}

#[test]
fn the_action_builds_its_own_source_with_a_cache_and_no_secrets() {
    let action = load("action.yml");
    let steps = steps(&action);

    let cache = steps
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/cache@"))
        })
        .expect("an actions/cache step");
    let key = cache["with"]["key"].as_str().unwrap();
    assert!(key.contains("lock-hash"), "cache key {key}");
    let paths = cache["with"]["path"].as_str().unwrap();
    assert!(paths.contains("~/.cargo/registry"), "{paths}");
    assert!(paths.contains("target-dir"), "{paths}");
    let prepare = steps
        .iter()
        .find(|s| s["id"] == "prepare")
        .expect("prepare step");
    assert!(
        prepare["run"]
            .as_str()
            .unwrap()
            .contains("$GITHUB_ACTION_PATH/Cargo.lock")
    );

    let build = steps
        .iter()
        .find(|s| s["run"].as_str().is_some_and(|r| r.contains("cargo build")))
        .expect("a build step");
    let script = build["run"].as_str().unwrap();
    assert!(script.contains(
        "cargo build --release --locked --manifest-path \"$GITHUB_ACTION_PATH/Cargo.toml\""
    ));
    for secret in [
        "UNITSYNC_CW_PUBLIC_KEY",
        "UNITSYNC_CW_PRIVATE_KEY",
        "UNITSYNC_CW_CLIENT_ID",
        "GITHUB_TOKEN",
    ] {
        assert_eq!(
            build["env"][secret], "",
            "the build step must blank {secret}"
        );
    }

    // The run step takes every input through env and runs in the billing repo.
    let run = steps
        .iter()
        .find(|s| s["id"] == "run")
        .expect("the run step");
    let env = obj(&run["env"], "run env");
    assert_eq!(env["INPUT_COMMAND"], "${{ inputs.command }}");
    assert_eq!(env["INPUT_ARGS"], "${{ inputs.args }}");
    assert_eq!(env["INPUT_BILLING_REPO"], "${{ inputs.billing-repo }}");
    let script = run["run"].as_str().unwrap();
    assert!(script.contains("-C \"$INPUT_BILLING_REPO\""), "{script}");
    for step in steps {
        if step.get("run").is_some() {
            assert_eq!(step["shell"], "bash");
        }
    }
}

#[test]
fn workflows_ask_for_least_permissions() {
    for (name, wf) in workflows() {
        assert_eq!(
            wf["permissions"],
            Value::Object(Map::new()),
            "{name}: top-level permissions must be {{}}"
        );
        for (job_name, job) in obj(&wf["jobs"], "jobs") {
            let perms = obj(&job["permissions"], "job permissions");
            let command = unitsync_commands(job);
            for (scope, level) in perms {
                let level = level.as_str().unwrap();
                match (scope.as_str(), level) {
                    ("contents", "read") | ("pull-requests", "read") => {}
                    ("contents", "write") => assert!(
                        command.iter().any(|c| c == "propose" || c == "apply"),
                        "{name}/{job_name}: contents: write without propose or apply"
                    ),
                    ("pull-requests", "write") => assert!(
                        command.iter().any(|c| c == "propose"),
                        "{name}/{job_name}: pull-requests: write without propose"
                    ),
                    _ => panic!("{name}/{job_name}: unexpected permission {scope}: {level}"),
                }
            }
        }
        assert_common(&name, &wf);
    }
}

/// The `command` inputs of the unitsync steps of a job.
fn unitsync_commands(job: &Value) -> Vec<String> {
    job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with(OWN_ACTION))
        })
        .map(|s| s["with"]["command"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn writing_jobs_are_serialised_per_repo_and_never_cancelled() {
    for (name, wf) in workflows() {
        assert!(
            wf.get("concurrency").is_none(),
            "{name}: concurrency belongs on the writing job, so the hourly `due` check never \
             replaces a pending apply"
        );
        for (job_name, job) in obj(&wf["jobs"], "jobs") {
            let commands = unitsync_commands(job);
            if !commands.iter().any(|c| c == "propose" || c == "apply") {
                continue;
            }
            let concurrency = &job["concurrency"];
            assert_eq!(
                concurrency["cancel-in-progress"],
                Value::Bool(false),
                "{name}/{job_name}"
            );
            let group = concurrency["group"].as_str().unwrap();
            assert!(
                group.contains("${{ github.repository }}"),
                "{name}/{job_name}: group {group} is not per billing repo"
            );
        }
    }
}

#[test]
fn triggers_are_trusted_and_hourly() {
    for (name, wf) in workflows() {
        let on = obj(&wf["on"], "on");
        assert!(!on.contains_key("pull_request_target"), "{name}");
        assert!(!on.contains_key("pull_request"), "{name}");
        assert!(on.contains_key("workflow_dispatch"), "{name}");
        let cron = on["schedule"][0]["cron"].as_str().unwrap();
        let fields: Vec<&str> = cron.split_whitespace().collect();
        assert!(
            fields[0].parse::<u8>().is_ok_and(|m| m < 60) && fields[1..] == ["*", "*", "*", "*"],
            "{name}: cron `{cron}` is not hourly; `unitsync due` decides the local hour"
        );
    }
}

#[test]
fn propose_runs_due_refresh_then_propose() {
    let wf = load("examples/workflows/unitsync-propose.yml");
    assert_eq!(unitsync_commands(&wf["jobs"]["due"]), ["due-refresh"]);
    let propose = &wf["jobs"]["propose"];
    assert_eq!(unitsync_commands(propose), ["propose"]);
    assert_eq!(propose["needs"], "due");
    assert_eq!(propose["permissions"]["contents"], "write");
    assert_eq!(propose["permissions"]["pull-requests"], "write");
}

#[test]
fn apply_runs_on_a_lock_push_and_on_the_sync_schedule() {
    let wf = load("examples/workflows/unitsync-apply.yml");
    let push = &wf["on"]["push"];
    assert_eq!(push["paths"], serde_json::json!(["units.lock.yaml"]));
    assert!(push["branches"].as_array().is_some_and(|b| !b.is_empty()));
    assert_eq!(unitsync_commands(&wf["jobs"]["due"]), ["due-sync"]);
    let apply = &wf["jobs"]["apply"];
    assert_eq!(unitsync_commands(apply), ["apply"]);
    let step = apply["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["with"]["command"] == "apply")
        .unwrap();
    assert_eq!(step["with"]["args"], "--gitops");
    assert_eq!(apply["permissions"]["contents"], "write");
    assert_ne!(apply["permissions"]["pull-requests"], "write");
    // The push and manual runs skip the `due` check; the hourly schedule is gated by it.
    let run = wf["jobs"]["due"]["outputs"]["run"].as_str().unwrap();
    assert!(run.contains("github.event_name != 'schedule'"), "{run}");
}

#[test]
fn workflow_steps_with_secrets_get_them_as_env() {
    for (name, wf) in workflows() {
        for step in steps(&wf) {
            let Some(uses) = step["uses"].as_str() else {
                continue;
            };
            if !uses.starts_with(OWN_ACTION) {
                continue;
            }
            let command = step["with"]["command"].as_str().unwrap();
            if command == "propose" || command == "apply" {
                for secret in [
                    "UNITSYNC_CW_PUBLIC_KEY",
                    "UNITSYNC_CW_PRIVATE_KEY",
                    "UNITSYNC_CW_CLIENT_ID",
                    "GITHUB_TOKEN",
                ] {
                    assert_eq!(
                        step["env"][secret],
                        format!("${{{{ secrets.{secret} }}}}"),
                        "{name}: {command} step env {secret}"
                    );
                }
            } else {
                assert!(
                    step.get("env").is_none(),
                    "{name}: the {command} step needs no secrets"
                );
            }
        }
    }
}

#[test]
fn the_test_helpers_catch_what_they_should() {
    // A secret in an input and an expression in a script are both refused.
    let bad: Value = serde_saphyr::from_str(
        "jobs:\n  j:\n    steps:\n      - uses: actions/x@27d5ce7f107fe9357f9df03efb73ab90386fccae\n        with: { token: '${{ secrets.T }}' }\n",
    )
    .unwrap();
    assert!(std::panic::catch_unwind(|| assert_common("bad", &bad)).is_err());
    let bad: Value = serde_saphyr::from_str(
        "jobs:\n  j:\n    steps:\n      - run: echo ${{ github.event.issue.title }}\n",
    )
    .unwrap();
    assert!(std::panic::catch_unwind(|| assert_common("bad", &bad)).is_err());
    assert!(is_full_sha_pin(
        "actions/cache@27d5ce7f107fe9357f9df03efb73ab90386fccae"
    ));
    assert!(!is_full_sha_pin("actions/cache@v5"));
}
