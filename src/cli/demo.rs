//! `unitsync demo`: the user guide's story end to end, against the embedded ConnectWise sandbox.
//!
//! It builds a throwaway billing repo from `examples/billing-repo` (pointed at the sandbox), then
//! runs the same code as `plan` and `apply --yes`: nothing here is demo-only logic except the
//! narration.

use std::path::PathBuf;

use clap::Args;

use super::apply::{ApplyArgs, apply_interactive};
use super::workflow::{load_repo, make_plan, runtime};
use super::{CommandError, GlobalArgs, Outcome};
use crate::plan::DesiredFrom;
use crate::psa::{ConnectWiseClient, Credentials};
use crate::render::snapshot_table;
use crate::sandbox::{Faults, Sandbox, demo_seed};

const MAPPINGS: &str = include_str!("../../examples/billing-repo/mappings.yaml");
const USAGE: &str = include_str!("../../examples/billing-repo/usage.csv");

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo billing repo in DIR (created; must not exist) instead of a temporary folder.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
}

pub fn run(_global: &GlobalArgs, args: &DemoArgs) -> Result<Outcome, CommandError> {
    runtime()?.block_on(demo(args))
}

async fn demo(args: &DemoArgs) -> Result<Outcome, CommandError> {
    let seed = demo_seed();
    let sandbox = Sandbox::start(seed, Faults::none())
        .await
        .map_err(|e| CommandError::internal(format!("cannot start the sandbox: {e}")))?;
    let login = sandbox.login();

    let temp;
    let root = match &args.keep {
        Some(dir) => {
            std::fs::create_dir(dir).map_err(|e| {
                CommandError::user(format!("cannot create {}: {e}", dir.display()))
                    .hinted("name a folder that does not exist yet")
            })?;
            dir.clone()
        }
        None => {
            temp = tempdir()?;
            temp.clone()
        }
    };
    let settings = format!(
        "# The demo billing repo: the guide's story against the embedded sandbox.\n\
         psa:\n  connectwise:\n    site: {}\n    company: {}\n    update: in-place\n\
         source:\n  csv:\n    path: usage.csv\n\
         approval: manual\n",
        sandbox.base_url(),
        login.company
    );
    let write = |name: &str, text: &str| {
        std::fs::write(root.join(name), text)
            .map_err(|e| CommandError::internal(format!("cannot write the demo repo: {e}")))
    };
    write("unitsync.yaml", &settings)?;
    write(
        "mappings.yaml",
        &MAPPINGS.replace("../../schema/", "https://unitsync.invalid/schema/"),
    )?;
    write("usage.csv", USAGE)?;

    println!("unitsync demo — the StorageCraft PSA guide's story");
    println!(
        "ConnectWise sandbox: {} (login company {})",
        sandbox.base_url(),
        login.company
    );
    println!("Billing repo:        {}", root.display());
    println!(
        "\nBob's Dentistry bought a fourth desktop. The vendor now reports 4 ShadowProtect Desktop keys;\n\
         ConnectWise still bills 3. DigitalTorch's cloud storage grew from 120.25 GB to 135.5 GB.\n"
    );

    let repo = load_repo(&root)?;
    let credentials = Credentials::new(
        login.public_key.clone(),
        login.private_key.clone(),
        login.client_id.clone().unwrap_or_default(),
    );
    let settings = match &repo.settings.psa {
        crate::config::PsaSettings::Connectwise(cw) => cw.clone(),
        crate::config::PsaSettings::Autotask(_) => unreachable!("the demo repo is ConnectWise"),
    };
    let psa = ConnectWiseClient::new(&settings, credentials)?;

    let before = make_plan(&repo, &psa, DesiredFrom::Vendor).await?;
    println!("== The PSA before");
    print!("{}", snapshot_table(&before.snapshot));

    println!("\n== unitsync apply --yes");
    let apply_args = ApplyArgs {
        yes: true,
        plan: None,
        all: true,
        from_lock: false,
        gitops: false,
        force: false,
    };
    let outcome = apply_interactive(
        &repo,
        &psa,
        DesiredFrom::Vendor,
        None,
        &apply_args,
        &mut std::io::empty(),
    )
    .await?;

    if let Ok(records) = crate::history::read_all(&repo.root)
        && let Some((path, record)) = records.last()
    {
        let shown = path.strip_prefix(&repo.root).unwrap_or(path);
        println!("\n== {}", shown.display());
        print!("{}", record.to_yaml());
    }

    let after = make_plan(&repo, &psa, DesiredFrom::Vendor).await?;
    println!("\n== The PSA after");
    print!("{}", snapshot_table(&after.snapshot));
    println!(
        "\nSlate Gravel is reported by the vendor but mapped to nothing: add a mapping to bill it.\n\
         The history record above says who approved what, and when; it lives in the billing repo."
    );
    sandbox.shutdown();
    if args.keep.is_none() {
        let _ = std::fs::remove_dir_all(&root);
    }
    Ok(outcome)
}

fn tempdir() -> Result<PathBuf, CommandError> {
    let dir = std::env::temp_dir().join(format!(
        "unitsync-demo-{}-{:016x}",
        std::process::id(),
        crate::clock::unique_bits()
    ));
    std::fs::create_dir_all(&dir)
        .map_err(|e| CommandError::internal(format!("cannot create {}: {e}", dir.display())))?;
    Ok(dir)
}
