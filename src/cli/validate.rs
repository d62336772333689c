//! `unitsync validate`: checks every file of the billing repo and reports every problem.
//!
//! Diagnostics go to stderr, compiler style (`file:line:column: error: message`, then a `hint:`
//! line), followed by a count such as `3 errors in 2 files`; stdout stays empty on failure. A clean
//! repo prints one `ok:` line on stdout. Warnings are shown but do not fail the run.

use super::{CommandError, GlobalArgs, Outcome};
use crate::config::diagnostic::{plural, summary};
use crate::config::{BillingRepo, check};

pub fn run(global: &GlobalArgs) -> Result<Outcome, CommandError> {
    let (repo, diagnostics) = check(&global.dir);
    for d in &diagnostics {
        eprintln!("{d}");
    }
    match repo {
        Some(repo) => {
            let mut line = ok_line(&repo);
            if !diagnostics.is_empty() {
                line.push_str(&format!(" ({})", summary(&diagnostics)));
            }
            println!("{line}");
            Ok(Outcome::Done)
        }
        None => {
            let message = summary(&diagnostics);
            eprintln!("{message}");
            Err(CommandError::user(message).reported())
        }
    }
}

/// `ok: 1 settings file, 5 mappings, 2 lock entries`.
fn ok_line(repo: &BillingRepo) -> String {
    let mut files: Vec<&std::path::Path> = repo
        .mapping_sources
        .iter()
        .map(|s| s.file.as_path())
        .collect();
    files.dedup();
    let mappings = if files.len() > 1 {
        format!(
            "{} in {}",
            plural(repo.mappings.len(), "mapping"),
            plural(files.len(), "file")
        )
    } else {
        plural(repo.mappings.len(), "mapping")
    };
    format!(
        "ok: 1 settings file, {mappings}, {}",
        plural(repo.lock.units.len(), "lock entry")
    )
}
