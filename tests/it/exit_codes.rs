//! The exit code says what kind of failure it was, the same for every command that meets it:
//! 1 when the user's own input is wrong (here a billing-repo file), 4 when the PSA fails (here it
//! does not answer). The successes keep theirs: 2 for `plan --detailed-exitcode` with changes
//! (`cli_local::plan_detailed_exitcode_is_2_with_changes_and_0_in_sync`) and 3 for `due` when
//! not due (`schedule`), and a usage error exits 1
//! (`cli_local::a_usage_error_exits_1_never_2_which_means_changes`).

use crate::cli_local::{Env, Run, edit};
use crate::notify::free_port;

fn run(env: &Env, args: &[&str]) -> Run {
    env.run_with_stdin(args, None)
}

#[test]
fn a_bad_billing_repo_file_exits_1_from_every_command_that_reads_it() {
    let env = Env::new();
    // A typo in a key: the schema refuses it, so nothing reads the vendor or the PSA.
    edit(
        &env.repo.join("mappings.yaml"),
        "    addition: SP-DESKTOP",
        "    addtion: SP-DESKTOP",
    );
    for args in [
        &["validate"][..],
        &["plan"],
        &["plan", "--detailed-exitcode"],
        &["apply", "--yes"],
        &["doctor"],
        &["status"],
        &["accounts"],
    ] {
        let out = run(&env, args);
        assert_eq!(out.code, Some(1), "{args:?}: {out:?}");
        assert!(
            out.stderr.contains("mappings.yaml:") && out.stderr.contains("addtion"),
            "{args:?} names the file and the key: {}",
            out.stderr
        );
    }
    assert_eq!(env.sandbox.requests(), vec![]);
    assert!(!env.repo.join("history").exists(), "nothing was recorded");
}

#[test]
fn a_psa_that_does_not_answer_exits_4_not_1_nor_2() {
    let env = Env::new();
    // Nothing listens on a port that was free a moment ago: every connection is refused at
    // once, and the one-second timeout bounds a connection that is not.
    let closed = format!("http://127.0.0.1:{}", free_port());
    edit(
        &env.repo.join("unitsync.yaml"),
        &format!("site: {}", env.sandbox.base_url()),
        &format!("site: {closed}\n    timeout_seconds: 1"),
    );
    let host = closed.trim_start_matches("http://");
    // At once: each run spends its seconds in the retries' backoff.
    let commands: [&[&str]; 4] = [
        &["plan", "--detailed-exitcode"],
        &["apply", "--yes"],
        &["status"],
        &["doctor"],
    ];
    let mut runs: Vec<(&[&str], Run)> = std::thread::scope(|s| {
        let started: Vec<_> = commands
            .iter()
            .map(|args| (*args, s.spawn(|| run(&env, args))))
            .collect();
        started
            .into_iter()
            .map(|(args, run)| (args, run.join().unwrap()))
            .collect()
    });
    let (_, doctor) = runs.pop().unwrap();
    for (args, out) in &runs {
        assert_eq!(out.code, Some(4), "{args:?}: {out:?}");
        assert!(
            out.stderr.starts_with("error: ")
                && out.stderr.contains(&format!("could not reach {host}")),
            "{args:?}: {}",
            out.stderr
        );
    }
    assert_eq!(doctor.code, Some(4), "{doctor:?}");
    assert!(
        doctor.stdout.contains("[FAIL] host reachable: ")
            && doctor.stdout.contains(&format!("could not reach {host}")),
        "{}",
        doctor.stdout
    );
    assert_eq!(doctor.stderr, "error: doctor found 1 problem\n");
    assert!(!env.repo.join("history").exists(), "nothing was recorded");
}

#[test]
fn help_lists_every_exit_code() {
    let output = crate::support::unitsync().arg("--help").output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8(output.stdout).unwrap();
    let listed: Vec<&str> = help
        .lines()
        .skip_while(|l| *l != "Exit status:")
        .filter_map(|l| l.strip_prefix("  ")?.split_once("  ").map(|(code, _)| code))
        .filter(|code| !code.is_empty())
        .collect();
    assert_eq!(listed, ["0", "1", "2", "3", "4", "5"], "{help}");
}
