//! `unitsync sandbox`: serves a ConnectWise- (default) or Autotask-compatible API on 127.0.0.1 for
//! demos and trials.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::{CommandError, Outcome};
use crate::sandbox::{
    AUTOTASK_DEMO_SEED_YAML, AtSeed, AutotaskSandbox, DEMO_SEED_YAML, Faults, Sandbox, Seed,
    autotask_demo_seed, demo_seed,
};

/// Which PSA the sandbox imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum SandboxPsa {
    #[default]
    Connectwise,
    Autotask,
}

#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// The PSA API to serve.
    #[arg(long, value_enum, default_value_t = SandboxPsa::Connectwise)]
    pub psa: SandboxPsa,
    /// Seed YAML with the login, companies, agreements and additions (default: the built-in
    /// demo, MSP Computech).
    #[arg(long, value_name = "FILE")]
    pub seed: Option<PathBuf>,
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Delay every answer by this many milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub latency_ms: u64,
    /// Answer the first N requests with 429 Too Many Requests.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub rate_limit: u32,
    /// The Retry-After seconds sent with --rate-limit.
    #[arg(long, value_name = "SECONDS", default_value_t = 1)]
    pub retry_after: u64,
    /// Answer the first N requests (after any 429s) with a server error.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub server_errors: u32,
    /// The status --server-errors answers with.
    #[arg(long, value_name = "STATUS", default_value_t = 500)]
    pub server_error_status: u16,
    /// Close the first N connections as soon as they are accepted.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub drop_connections: u32,
    /// Print the state of the additions (ConnectWise) or contract service units (Autotask) on exit.
    #[arg(long)]
    pub dump_on_exit: bool,
    /// Print the built-in demo seed (a starting point for --seed) and exit.
    #[arg(long, conflicts_with = "seed")]
    pub print_seed: bool,
}

pub fn run(args: &SandboxArgs) -> Result<Outcome, CommandError> {
    if args.psa == SandboxPsa::Autotask {
        return run_autotask(args);
    }
    if args.print_seed {
        print!("{DEMO_SEED_YAML}");
        return Ok(Outcome::Done);
    }
    let seed = match &args.seed {
        Some(path) => Seed::load(path).map_err(|e| CommandError::user(e.to_string()))?,
        None => demo_seed(),
    };
    let faults = faults(args);
    let runtime = runtime()?;
    runtime.block_on(async {
        let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
        let handle = Sandbox::start_on(seed, faults, addr).await.map_err(|e| {
            CommandError::user(format!("cannot serve on {addr}: {e}"))
                .hinted("pick another port with --port, or --port 0 for any free one")
        })?;
        let login = handle.login();
        println!("ConnectWise sandbox at {}", handle.base_url());
        println!("API base: {}", handle.api_url());
        println!();
        println!(
            "# unitsync.yaml: psa: {{ connectwise: {{ site: {}, company: {} }} }}",
            handle.base_url(),
            login.company
        );
        println!("export UNITSYNC_CW_PUBLIC_KEY={}", login.public_key);
        println!("export UNITSYNC_CW_PRIVATE_KEY={}", login.private_key);
        println!(
            "export UNITSYNC_CW_CLIENT_ID={}",
            login
                .client_id
                .as_deref()
                .unwrap_or("00000000-0000-0000-0000-000000000000")
        );
        println!();
        println!("Press Ctrl-C to stop.");
        tokio::signal::ctrl_c()
            .await
            .map_err(|e| CommandError::internal(format!("cannot wait for Ctrl-C: {e}")))?;
        if args.dump_on_exit {
            for a in handle.additions() {
                println!(
                    "addition {} agreement {} {} quantity {}{}",
                    a.id,
                    a.agreement,
                    a.product.identifier,
                    a.quantity,
                    if a.cancelled_date.is_some() {
                        " (cancelled)"
                    } else {
                        ""
                    }
                );
            }
        }
        eprintln!("served {} requests", handle.requests().len());
        Ok(Outcome::Done)
    })
}

fn faults(args: &SandboxArgs) -> Faults {
    Faults {
        latency: Duration::from_millis(args.latency_ms),
        ..Faults::none()
    }
    .rate_limit(args.rate_limit, args.retry_after)
    .server_errors(args.server_errors, args.server_error_status)
    .drop_connections(args.drop_connections)
}

fn runtime() -> Result<tokio::runtime::Runtime, CommandError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CommandError::internal(format!("cannot start the async runtime: {e}")))
}

fn run_autotask(args: &SandboxArgs) -> Result<Outcome, CommandError> {
    if args.print_seed {
        print!("{AUTOTASK_DEMO_SEED_YAML}");
        return Ok(Outcome::Done);
    }
    let seed = match &args.seed {
        Some(path) => AtSeed::load(path).map_err(|e| CommandError::user(e.to_string()))?,
        None => autotask_demo_seed(),
    };
    let contract_services: Vec<i64> = seed.contract_services.iter().map(|c| c.id).collect();
    let faults = faults(args);
    runtime()?.block_on(async {
        let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
        let handle = AutotaskSandbox::start_on(seed, faults, addr)
            .await
            .map_err(|e| {
                CommandError::user(format!("cannot serve on {addr}: {e}"))
                    .hinted("pick another port with --port, or --port 0 for any free one")
            })?;
        let login = handle.login();
        println!("Autotask sandbox at {}", handle.base_url());
        println!("Zone URL: {}", handle.zone_url());
        println!("API base: {}", handle.api_url());
        println!();
        println!(
            "# unitsync.yaml: psa: {{ autotask: {{ url: {} }} }}  (the zone URL; zoneInformation also answers at {}/atservicesrest/v1.0/zoneInformation)",
            handle.zone_url(),
            handle.base_url()
        );
        println!("export UNITSYNC_AT_USERNAME={}", login.username);
        println!("export UNITSYNC_AT_SECRET={}", login.secret);
        println!(
            "export UNITSYNC_AT_INTEGRATION_CODE={}",
            login.integration_code
        );
        println!();
        println!("Press Ctrl-C to stop.");
        tokio::signal::ctrl_c()
            .await
            .map_err(|e| CommandError::internal(format!("cannot wait for Ctrl-C: {e}")))?;
        if args.dump_on_exit {
            for id in contract_services {
                for p in handle.unit_periods(id) {
                    println!(
                        "contract service {id} {} to {} units {}",
                        p.start_date, p.end_date, p.units
                    );
                }
            }
            for a in handle.adjustments() {
                println!(
                    "adjustment {} contract {} contract service {} effective {} change {:+}",
                    a.id, a.contract_id, a.contract_service_id, a.effective_date, a.unit_change
                );
            }
        }
        eprintln!("served {} requests", handle.requests().len());
        Ok(Outcome::Done)
    })
}
