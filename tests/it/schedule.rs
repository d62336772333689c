//! `unitsync due refresh|sync`: the binary on a billing repo in a temp dir, with `--now`.

use std::path::Path;
use std::process::Output;

const SETTINGS: &str = "\
psa:
  connectwise: { site: na.myconnectwise.net, company: computech }
source:
  csv: { path: usage.csv }
";

fn repo(schedule: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("unitsync.yaml"),
        format!("{SETTINGS}{schedule}"),
    )
    .unwrap();
    dir
}

fn marker(root: &Path, kind: &str, text: &str) {
    std::fs::create_dir_all(root.join("history")).unwrap();
    std::fs::write(root.join("history").join(format!("last-{kind}")), text).unwrap();
}

fn due_command(root: &Path, args: &[&str]) -> std::process::Command {
    let mut command = crate::support::unitsync();
    command.arg("-C").arg(root).arg("due").args(args);
    command
}

fn due(root: &Path, args: &[&str]) -> Output {
    due_command(root, args).output().unwrap()
}

/// (exit code, stdout, stderr)
fn outcome(output: Output) -> (i32, String, String) {
    (
        output.status.code().unwrap(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

const LA: &str = "\
schedule:
  timezone: America/Los_Angeles
  refresh: daily at 02:00
  sync: on-merge
";

#[test]
fn never_run_is_due_and_exits_0() {
    let dir = repo(LA);
    assert_eq!(
        outcome(due(
            dir.path(),
            &["refresh", "--now", "2026-11-25T10:47:00Z"]
        )),
        (
            0,
            "refresh is due: scheduled 2026-11-25 02:00 PST, never run before\n".into(),
            String::new()
        )
    );
}

#[test]
fn a_late_trigger_runs_once_then_not_due_exits_3() {
    let dir = repo(LA);
    marker(dir.path(), "refresh", "2026-11-24T10:03:00Z\n");
    // 02:47 PST, 47 minutes late: due.
    assert_eq!(
        outcome(due(
            dir.path(),
            &["refresh", "--now", "2026-11-25T10:47:00Z"]
        )),
        (
            0,
            "refresh is due: scheduled 2026-11-25 02:00 PST, last run 2026-11-24 02:03 PST\n"
                .into(),
            String::new()
        )
    );
    // The run records itself; the next hourly trigger is not due.
    unitsync::schedule::record_run(
        dir.path(),
        unitsync::schedule::RunKind::Refresh,
        "2026-11-25T10:47:00Z".parse().unwrap(),
    )
    .unwrap();
    assert_eq!(
        outcome(due(
            dir.path(),
            &["refresh", "--now", "2026-11-25T11:47:00Z"]
        )),
        (
            3,
            "refresh is not due: next 2026-11-26 02:00 PST; last run 2026-11-25 02:47 PST covers \
             2026-11-25 02:00 PST\n"
                .into(),
            String::new()
        )
    );
    // After a runner outage of days: due once.
    assert_eq!(
        outcome(due(
            dir.path(),
            &["refresh", "--now", "2026-11-29T18:05:00Z"]
        ))
        .0,
        0
    );
}

#[test]
fn on_merge_and_unscheduled_are_not_due() {
    let dir = repo(LA);
    assert_eq!(
        outcome(due(dir.path(), &["sync", "--now", "2026-11-25T10:47:00Z"])),
        (
            3,
            "sync is not due: it runs on merge (when the pull request is merged), not on the \
             clock\n"
                .into(),
            String::new()
        )
    );
    let dir = repo("");
    assert_eq!(
        outcome(due(dir.path(), &["refresh"])),
        (
            3,
            "refresh is not due: unitsync.yaml has no `schedule.refresh`, so it never runs on the \
             clock\n"
                .into(),
            String::new()
        )
    );
}

#[test]
fn monthly_day_31_runs_on_the_last_day_of_february() {
    let dir = repo("schedule:\n  timezone: Europe/London\n  sync: monthly on day 31 at 06:00\n");
    marker(dir.path(), "sync", "2026-01-31T06:05:00Z\n");
    assert_eq!(
        outcome(due(dir.path(), &["sync", "--now", "2026-02-27T23:00:00Z"])),
        (
            3,
            "sync is not due: next 2026-02-28 06:00 GMT; last run 2026-01-31 06:05 GMT covers \
             2026-01-31 06:00 GMT\n"
                .into(),
            String::new()
        )
    );
    assert_eq!(
        outcome(due(dir.path(), &["sync", "--now", "2026-02-28T06:05:00Z"])),
        (
            0,
            "sync is due: scheduled 2026-02-28 06:00 GMT, last run 2026-01-31 06:05 GMT\n".into(),
            String::new()
        )
    );
}

#[test]
fn errors_exit_1_and_say_what_to_fix() {
    let dir = repo("schedule:\n  timezone: America/Los_Angeles\n  refresh: on-merge\n");
    let (code, stdout, stderr) = outcome(due(dir.path(), &["refresh"]));
    assert_eq!((code, stdout.as_str()), (1, ""));
    assert!(
        stderr.ends_with(
            "unitsync.yaml: schedule.refresh: schedule `on-merge` is only for sync: refresh needs \
             a clock, `daily at HH:MM` or `monthly on day D at HH:MM` (D from 1 to 31)\n"
        ),
        "{stderr}"
    );

    let dir = repo("schedule:\n  timezone: Mars/Olympus\n  refresh: daily at 02:00\n");
    let (code, _, stderr) = outcome(due(dir.path(), &["refresh"]));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("schedule.timezone: `Mars/Olympus` is not a known IANA time zone"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: write a name from the tz database"),
        "{stderr}"
    );

    let dir = repo(LA);
    marker(dir.path(), "refresh", "last tuesday\n");
    let (code, _, stderr) = outcome(due(dir.path(), &["refresh"]));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("history/last-refresh: `last tuesday` is not an RFC 3339 time"),
        "{stderr}"
    );

    let empty = tempfile::tempdir().unwrap();
    let (code, _, stderr) = outcome(due(empty.path(), &["sync"]));
    assert_eq!(code, 1);
    assert!(stderr.contains("unitsync.yaml"), "{stderr}");
    assert!(
        stderr.contains("hint: run in the billing repo, or point at it with -C DIR"),
        "{stderr}"
    );
}

#[test]
fn help_documents_the_exit_codes() {
    let output = crate::support::unitsync()
        .args(["due", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(help.contains("0  due: run it now"), "{help}");
    assert!(help.contains("3  not due"), "{help}");
    assert!(help.contains("1  error"), "{help}");
}

/// `due` with the clock pinned at `now` instead of the suite's date.
fn due_pinned_at(root: &Path, args: &[&str], now: &str) -> Output {
    due_command(root, args)
        .env(unitsync::clock::ENV_NOW, now)
        .output()
        .unwrap()
}

/// Without `--now`, `due` asks unitsync's clock, which `UNITSYNC_NOW` pins for the whole process:
/// the same repo and marker are due or not by the pinned instant alone.
#[test]
fn without_now_due_follows_the_pinned_clock() {
    let dir = repo(LA);
    marker(dir.path(), "refresh", "2026-11-24T10:03:00Z\n");
    let at = |now: &str| outcome(due_pinned_at(dir.path(), &["refresh"], now));
    let (code, stdout, stderr) = at("2026-11-25T10:47:00Z");
    assert_eq!((code, stderr.as_str()), (0, ""), "{stdout}");
    assert!(
        stdout.starts_with("refresh is due: scheduled 2026-11-25 02:00 PST"),
        "{stdout}"
    );
    let (code, stdout, _) = at("2026-11-25T09:59:00Z");
    assert_eq!(code, 3, "{stdout}");
}

#[test]
fn a_malformed_pin_is_an_error_not_the_real_clock() {
    let dir = repo(LA);
    let (code, stdout, stderr) = outcome(due_pinned_at(dir.path(), &["refresh"], "2027-02-29"));
    assert_eq!((code, stdout.as_str()), (1, ""));
    assert!(
        stderr.starts_with(
            "error: UNITSYNC_NOW=`2027-02-29` is neither an RFC 3339 instant (2026-11-30T23:59:00Z) \
             nor a date (2026-11-30): "
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("unset it to use the real clock"),
        "{stderr}"
    );
}
