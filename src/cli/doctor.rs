//! `unitsync doctor`: can this billing repo reach its PSA with the permissions it needs?

use clap::Args;

use super::workflow::{connect, load_repo, runtime};
use super::{CommandError, GlobalArgs, Outcome};
use crate::psa::{CheckKind, CheckOutcome, Psa};

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Skip the write probe (which writes one mapped line's current quantity back unchanged).
    #[arg(long)]
    pub no_write_probe: bool,
}

pub fn run(global: &GlobalArgs, args: &DoctorArgs) -> Result<Outcome, CommandError> {
    let repo = match load_repo(&global.dir) {
        Ok(repo) => repo,
        Err(e) => {
            // The problems are on stderr already; keep doctor's one line per check.
            println!(
                "[FAIL] billing repo: has errors (listed above); `unitsync validate` checks it"
            );
            return Err(e);
        }
    };
    println!("[pass] billing repo: {} mappings", repo.mappings.len());
    let psa = match connect(&repo) {
        Ok(psa) => psa,
        Err(e) => {
            println!("[FAIL] credentials: {}", e.message);
            for hint in &e.hints {
                println!("       hint: {hint}");
            }
            // The kind `plan` exits with for the same problem (a variable that is not set, a
            // bad site: the user's to fix).
            return Err(CommandError {
                kind: e.kind,
                ..CommandError::user("doctor found 1 problem")
            });
        }
    };
    let checks = runtime()?.block_on(psa.check_access(&repo.mappings, !args.no_write_probe));
    let mut failures = 0;
    for check in &checks {
        let tag = match check.outcome {
            CheckOutcome::Pass => "[pass]",
            CheckOutcome::Warn => "[warn]",
            CheckOutcome::Fail => {
                failures += 1;
                "[FAIL]"
            }
            CheckOutcome::Skipped => "[skip]",
        };
        // The client's skip text is written for library callers ("ask for it explicitly");
        // here the probe is the default and the person turned it off.
        if args.no_write_probe
            && check.kind == CheckKind::UpdateLines
            && check.outcome == CheckOutcome::Skipped
        {
            println!(
                "{tag} {}: not probed (--no-write-probe); without it, doctor writes one mapped \
                 addition's quantity back unchanged",
                check.kind
            );
            continue;
        }
        println!("{tag} {}: {}", check.kind, check.detail);
    }
    if failures > 0 {
        let message = format!(
            "doctor found {failures} problem{}",
            if failures == 1 { "" } else { "s" }
        );
        // Every check is a request to the PSA, and a failed one is the PSA not answering or
        // refusing (the keys, the company, a permission): the kind `plan` exits with when the
        // same request fails there (see `workflow::psa_error`).
        Err(CommandError::external(message))
    } else {
        println!("All checks passed.");
        Ok(Outcome::Done)
    }
}
