//! The reconcile loop called as a library (`unitsync::ops`), in-process: no binary, no output,
//! the plan and its errors returned as values.

use unitsync::cli::CommandError;
use unitsync::config::PsaSettings;
use unitsync::ops::{self, OpsError};
use unitsync::plan::{Action, DesiredFrom};
use unitsync::psa::{ConnectWiseClient, Credentials, PsaError};

fn client(repo: &unitsync::config::BillingRepo, credentials: Credentials) -> ConnectWiseClient {
    let PsaSettings::Connectwise(settings) = &repo.settings.psa else {
        panic!("the test repo is ConnectWise")
    };
    ConnectWiseClient::new(settings, credentials).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_operation_reads_both_sides_and_returns_the_plan_without_writing() {
    let env = crate::cli_local::Env::new();
    let repo = unitsync::config::load(&env.repo).unwrap();
    let login = env.sandbox.login();
    let psa = client(
        &repo,
        Credentials::new(
            login.public_key.clone(),
            login.private_key.clone(),
            login.client_id.clone().unwrap_or_default(),
        ),
    );
    let planned = ops::plan(&repo, &psa, DesiredFrom::Vendor).await.unwrap();
    let actions: Vec<(&str, String)> = planned
        .plan
        .lines
        .iter()
        .map(|l| {
            (
                l.mapping.as_str(),
                match &l.action {
                    Action::Update { from, to } => format!("update {from} → {to}"),
                    Action::InSync => "in sync".to_string(),
                    other => format!("{other:?}"),
                },
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("angry-fox-co/shadowprotect-server", "in sync".to_string()),
            (
                "bobs-dentistry/shadowprotect-desktop",
                "update 3 → 4".to_string()
            ),
            (
                "digitaltorch-inc/cloud-premium-gb",
                "update 120.25 → 135.5".to_string()
            ),
        ]
    );
    assert_eq!(planned.source_accounts, 4, "Slate Gravel is unmapped");
    assert!(planned.history.is_empty());
    let requests = env.sandbox.requests();
    assert!(!requests.is_empty());
    assert!(
        requests.iter().all(|r| r.method == "GET"),
        "planning only reads: {requests:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_error_keeps_the_psa_error_and_maps_to_its_exit_code() {
    let env = crate::cli_local::Env::new();
    let repo = unitsync::config::load(&env.repo).unwrap();
    let psa = client(&repo, Credentials::new("wrong", "keys", "client"));
    let err = match ops::plan(&repo, &psa, DesiredFrom::Vendor).await {
        Err(e) => e,
        Ok(_) => panic!("planned with wrong keys"),
    };
    assert!(
        matches!(err, OpsError::Psa(PsaError::Unauthorized { .. })),
        "{err:?}"
    );
    let command = CommandError::from(err);
    assert_eq!(command.exit_code(), 4);
    assert!(
        std::error::Error::source(&command).is_some(),
        "the PSA error is kept"
    );
}
