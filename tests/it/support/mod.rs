//! What every test of the integration binary shares: the pinned clock and the `unitsync` binary.
//!
//! **Today is pinned.** Before any test runs, this binary sets `UNITSYNC_NOW` (the one clock
//! setting unitsync has, read only by `unitsync::clock`) to [`DEFAULT_NOW`] unless the invoker
//! set it already, so the library code tests call in-process and every `unitsync` process they
//! start (through [`unitsync`] or [`unitsync_clean`], which pass the pin on) see the same date.
//! Tests derive their expectations from [`now`] and [`today`], never from the real clock, so
//! `UNITSYNC_NOW=2028-02-29 cargo test` runs the whole suite on a leap day (`.ci/dates` runs it
//! on a month's last and first days, a leap day and New Year's Eve).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use unitsync::clock::ENV_NOW;

/// The date the suite runs on unless `UNITSYNC_NOW` says otherwise: noon UTC, so the same date in
/// every time zone a billing repo of these tests names.
pub const DEFAULT_NOW: &str = "2026-11-25";

/// Sets `UNITSYNC_NOW` before `main`, while this process has one thread, so that no test can read
/// the environment while it changes (the reason `set_var` is unsafe).
#[used]
#[unsafe(link_section = ".init_array")]
static PIN_THE_CLOCK: extern "C" fn() = pin_the_clock;

extern "C" fn pin_the_clock() {
    if std::env::var_os(ENV_NOW).is_none_or(|v| v.is_empty()) {
        // SAFETY: runs from .init_array, before the test harness starts any thread.
        unsafe { std::env::set_var(ENV_NOW, DEFAULT_NOW) };
    }
}

/// The pinned instant, as the `unitsync` processes the tests start see it.
pub fn now() -> jiff::Timestamp {
    let pinned = unitsync::clock::check_env().expect("UNITSYNC_NOW is a date or an instant");
    pinned.expect("the test binary pins the clock before main")
}

/// The pinned date (UTC; the same date in the time zones the test repos use).
pub fn today() -> jiff::civil::Date {
    now().to_zoned_datetime(jiff::tz::TimeZone::UTC).date()
}

/// The first day of the month after [`today`]: the default effective date of a change.
pub fn first_of_next_month() -> jiff::civil::Date {
    today().first_of_month() + jiff::Span::new().months(1)
}

/// The plan towards the vendor's counts, with no lock, history or guardrails, and changes taking
/// effect on 1 December 2026 (a date these in-process plans pin themselves).
pub fn vendor_plan(
    mappings: &[unitsync::config::Mapping],
    usage: &[unitsync::plan::UsageRecord],
    snapshot: &unitsync::plan::PsaSnapshot,
    policy: unitsync::config::UpdatePolicy,
) -> unitsync::plan::Plan {
    let empty = std::collections::BTreeMap::new();
    unitsync::plan::plan(unitsync::plan::PlanInput {
        mappings,
        usage,
        psa: snapshot,
        invoiced_period: Default::default(),
        currency: "USD",
        sync_price: false,
        sync_cost: false,
        approved: &empty,
        last_applied: &empty,
        desired: unitsync::plan::DesiredFrom::Vendor,
        default_update: policy,
        guardrails: None,
        previous_source_accounts: None,
        effective: unitsync::plan::EffectiveDates::all(jiff::civil::date(2026, 12, 1)),
    })
}

/// The binary, linked (or copied) once to a private path: the target directory may be shared with
/// other worktrees, whose builds may replace `CARGO_BIN_EXE_unitsync` while these tests run.
/// Cargo replaces that file rather than rewriting it, so a hard link keeps this build's binary
/// without copying it. Leftovers of earlier runs (whose process is gone) are removed first.
pub fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let prefix = "it-bin-";
        if let Ok(entries) = std::fs::read_dir(base) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix(prefix)
                    && !Path::new("/proc").join(pid).exists()
                {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = base.join(format!("{prefix}{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bin = dir.join("unitsync");
        let _ = std::fs::remove_file(&bin);
        if std::fs::hard_link(env!("CARGO_BIN_EXE_unitsync"), &bin).is_err() {
            let partial = dir.join("unitsync.partial");
            std::fs::copy(env!("CARGO_BIN_EXE_unitsync"), &partial).unwrap();
            std::fs::rename(&partial, &bin).unwrap();
        }
        bin
    })
}

/// `unitsync` with this process's environment and the pinned clock.
pub fn unitsync() -> Command {
    let mut command = Command::new(binary());
    command.env(ENV_NOW, now().to_string());
    command
}

/// `unitsync` with an empty environment but for the pinned clock; callers add what it needs.
/// (Clearing the environment after [`unitsync`] would drop the pin, so there is this instead.)
pub fn unitsync_clean() -> Command {
    let mut command = Command::new(binary());
    command.env_clear().env(ENV_NOW, now().to_string());
    command
}

#[cfg(test)]
mod guard {
    //! The pin holds only if nothing goes around it: these read the tests' and the crate's
    //! sources, so a new test that starts the binary without the pin, or code that asks the
    //! system for the time, fails here instead of failing in December.

    use std::path::{Path, PathBuf};

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    fn sources(under: &str) -> Vec<(PathBuf, String)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        rust_files(&root.join(under), &mut files);
        files.sort();
        files
            .into_iter()
            .map(|p| {
                let text = std::fs::read_to_string(&p).unwrap();
                (p.strip_prefix(root).unwrap().to_path_buf(), text)
            })
            .collect()
    }

    /// Spelled in pieces so that this file does not match itself.
    fn system_clock_calls() -> [String; 4] {
        [
            format!("Timestamp::{}()", "now"),
            format!("Zoned::{}()", "now"),
            format!("SystemTime::{}()", "now"),
            format!("date_{}()", "now"),
        ]
    }

    #[test]
    fn only_the_clock_module_reads_the_system_time() {
        let mut found = Vec::new();
        for under in ["src", "tests"] {
            for (path, text) in sources(under) {
                if path == Path::new("src/clock.rs") {
                    continue;
                }
                for (n, line) in text.lines().enumerate() {
                    if system_clock_calls()
                        .iter()
                        .any(|c| line.contains(c.as_str()))
                    {
                        found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                    }
                }
            }
        }
        assert!(
            found.is_empty(),
            "read the time through unitsync::clock (tests: crate::support::now/today):\n{}",
            found.join("\n")
        );
    }

    #[test]
    fn every_unitsync_process_of_the_tests_gets_the_pinned_clock() {
        let mut found = Vec::new();
        for (path, text) in sources("tests/it") {
            if path.starts_with("tests/it/support") {
                continue;
            }
            let lines: Vec<&str> = text.lines().collect();
            for (n, line) in lines.iter().enumerate() {
                let at = format!("{}:{}: {}", path.display(), n + 1, line.trim());
                if line.contains(concat!("CARGO_BIN_EXE_", "unitsync")) {
                    found.push(format!("{at}  (start it with support::unitsync())"));
                }
                // A cleared environment drops the pin unless the same statement sets it again.
                if line.contains(".env_clear()")
                    && !lines[n..(n + 3).min(lines.len())]
                        .iter()
                        .any(|l| l.contains("ENV_NOW"))
                {
                    found.push(format!("{at}  (use support::unitsync_clean())"));
                }
            }
        }
        assert!(found.is_empty(), "{}", found.join("\n"));
    }

    #[test]
    fn every_file_under_tests_it_is_a_module_of_the_test_binary() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it");
        let main = std::fs::read_to_string(root.join("main.rs")).unwrap();
        let mut missing = Vec::new();
        for entry in std::fs::read_dir(&root).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let is_module = (path.is_dir() && path.join("mod.rs").exists())
                || path.extension().is_some_and(|e| e == "rs");
            if is_module && name != "main" && !main.contains(&format!("mod {name};")) {
                missing.push(path.display().to_string());
            }
        }
        assert!(
            missing.is_empty(),
            "not compiled, so never run: {missing:?}"
        );
    }
}
