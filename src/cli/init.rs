//! `unitsync init`: scaffolds a billing repo for one PSA and one source kind.
//!
//! Every YAML file starts with a `# yaml-language-server: $schema=…` comment. The billing repo's
//! own files point at `schema/*.json` by relative path, and init writes those schemas (the same
//! text `unitsync schema` writes): they work offline, match the unitsync version that wrote
//! them, and `unitsync schema --check` tells when they are stale. The workflows point at
//! SchemaStore's GitHub workflow schema. Nothing is ever overwritten: when any target file exists,
//! init writes nothing.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use super::{CommandError, GlobalArgs, Outcome};
use crate::config::schema::FileKind;

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The PSA to sync to.
    #[arg(long, value_enum, default_value_t = InitPsa::Connectwise)]
    pub psa: InitPsa,
    /// Where vendor counts come from.
    #[arg(long, value_enum, default_value_t = InitSource::Csv)]
    pub source: InitSource,
    /// Folder to create the billing repo in (relative to -C DIR; created when missing).
    #[arg(value_name = "DIR", default_value = ".")]
    pub path: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InitPsa {
    Connectwise,
    Autotask,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InitSource {
    Csv,
    Json,
    Http,
    Command,
    Storagecraft,
}

/// Where the workflows' schema comment points.
pub const WORKFLOW_SCHEMA: &str = "https://json.schemastore.org/github-workflow.json";

const WORKFLOWS: [(&str, &str); 2] = [
    (
        "unitsync-apply.yml",
        include_str!("../../examples/workflows/unitsync-apply.yml"),
    ),
    (
        "unitsync-propose.yml",
        include_str!("../../examples/workflows/unitsync-propose.yml"),
    ),
];

fn schema_comment(kind: FileKind) -> String {
    format!(
        "# yaml-language-server: $schema=schema/{}\n",
        kind.schema_file()
    )
}

fn psa_section(psa: InitPsa) -> &'static str {
    match psa {
        InitPsa::Connectwise => {
            "psa:
  connectwise:
    site: na.myconnectwise.net       # your ConnectWise site, or a full URL (on-premises, sandbox)
    company: your-company            # the company id typed at the ConnectWise login screen
    update: in-place                 # or cancel-and-readd, for additions already invoiced
    # effective: first-of-next-month # for cancel-and-readd: or today
    # timeout_seconds: 30            # per request; a slower read is retried, a write is checked first
    # API keys and client id come from UNITSYNC_CW_PUBLIC_KEY, UNITSYNC_CW_PRIVATE_KEY and
    # UNITSYNC_CW_CLIENT_ID, never from this file.
"
        }
        InitPsa::Autotask => {
            "psa:
  autotask:
    # url: https://webservices5.autotask.net/ATServicesRest  # the zone; discovered when left out
    effective: first-of-next-month   # when unit adjustments take effect: or today
    # timeout_seconds: 30            # per request; a slower read is retried, an adjustment re-checked
    # The API user, secret and integration code come from UNITSYNC_AT_USERNAME,
    # UNITSYNC_AT_SECRET and UNITSYNC_AT_INTEGRATION_CODE, never from this file.
"
        }
    }
}

fn source_section(source: InitSource) -> &'static str {
    match source {
        InitSource::Csv => {
            "source:
  csv:
    path: usage.csv                  # columns: account, license_type, units (and optional unit)
"
        }
        InitSource::Json => {
            "source:
  json:
    path: usage.json                 # an array of { account, license_type, units } records
    # records: /data/items           # JSON Pointer to the array, when it is not the document
"
        }
        InitSource::Http => {
            "source:
  http:
    url: https://vendor.example/api/usage   # GET, returns JSON records
    auth_header: Authorization
    auth_env: UNITSYNC_SOURCE_TOKEN  # the variable holding the header's value (never the value)
    # records: /data/items           # JSON Pointer to the array of records
"
        }
        InitSource::Command => {
            "source:
  command:
    program: ./vendor-usage          # prints JSON records on stdout
    args: [--format, json]
    # records: /data/items           # JSON Pointer to the array of records in its output
"
        }
        InitSource::Storagecraft => {
            "source:
  storagecraft:
    billing_detail: reports/billing-detail.csv  # the MSP portal's Billing Detail report
    # cloud_usage: reports/cloud-usage.csv      # the cloud usage report (GB), optional
    month: previous                  # the billing month: previous, current or YYYY-MM
"
        }
    }
}

fn settings_text(psa: InitPsa, source: InitSource) -> String {
    format!(
        "{}# unitsync settings: which PSA, where vendor counts come from, when and how to sync.
# No secrets here: credentials come from environment variables.
{}{}approval: manual                     # every change waits for a merged pull request; or automatic
schedule:
  timezone: UTC                      # an IANA time zone, such as America/Los_Angeles
  refresh: daily at 02:00            # when to propose new counts
  sync: on-merge                     # apply when the pull request is merged; or monthly on day 1 at 06:00
guardrails:
  max_decrease_percent: 50           # hold a line that drops by more than half
  min_source_accounts_percent: 80    # refuse a run when the source lost many accounts
# notifications:
#   email:
#     to: [billing@example.com]
#     smtp: {{ host: smtp.example.com, port: 587 }}  # UNITSYNC_SMTP_USERNAME / UNITSYNC_SMTP_PASSWORD
# github:
#   repository: your-org/billing     # owner/name of this repo on GitHub
#   branch: unitsync/pending
",
        schema_comment(FileKind::Settings),
        psa_section(psa),
        source_section(source),
    )
}

fn mappings_text(psa: InitPsa) -> String {
    let example = match psa {
        InitPsa::Connectwise => {
            "# Vendor account + licence type -> ConnectWise company, agreement and addition.
# mappings:
#   - account: \"Bob's Dentistry\"         # the vendor's account name, exactly as the source reports it
#     license_type: ShadowProtect Desktop
#     company: BobsDentistry             # company identifier (names repeat; identifiers don't)
#     agreement: 1001                    # agreement id
#     addition: SP-DESKTOP               # product identifier on that agreement (or { id: N })
"
        }
        InitPsa::Autotask => {
            "# Vendor account + licence type -> Autotask company, contract and contract service.
# mappings:
#   - account: \"Bob's Dentistry\"         # the vendor's account name, exactly as the source reports it
#     license_type: ShadowProtect Desktop
#     company: 174                       # company id
#     contract: 2001                     # contract id
#     service: 301                       # service id on that contract (or { id: N } for one contract service)
"
        }
    };
    format!(
        "{}{example}mappings: []\n",
        schema_comment(FileKind::Mappings)
    )
}

fn lock_text() -> String {
    format!(
        "{}# Written by `unitsync propose`, approved by merging its pull request.
# Change a value to approve another count; delete a line to leave that PSA line alone this time.
units: {{}}
",
        schema_comment(FileKind::Lock)
    )
}

fn workflow_text(text: &str) -> String {
    format!("# yaml-language-server: $schema={WORKFLOW_SCHEMA}\n{text}")
}

/// The files of a new billing repo: (relative path, contents).
pub fn scaffold(psa: InitPsa, source: InitSource) -> Vec<(String, String)> {
    let mut files = vec![
        ("unitsync.yaml".to_string(), settings_text(psa, source)),
        ("mappings.yaml".to_string(), mappings_text(psa)),
        ("units.lock.yaml".to_string(), lock_text()),
    ];
    for (name, text) in WORKFLOWS {
        files.push((format!(".github/workflows/{name}"), workflow_text(text)));
    }
    for kind in FileKind::ALL {
        files.push((format!("schema/{}", kind.schema_file()), kind.schema_text()));
    }
    files
}

pub fn run(global: &GlobalArgs, args: &InitArgs) -> Result<Outcome, CommandError> {
    let dir = if global.dir == Path::new(".") {
        args.path.clone()
    } else {
        global.dir.join(&args.path)
    };
    let files = scaffold(args.psa, args.source);
    // `mappings.yaml`, not `./mappings.yaml`, when initialising the current folder.
    let shown = |path: &str| {
        if dir == Path::new(".") {
            path.to_string()
        } else {
            dir.join(path).display().to_string()
        }
    };
    let existing: Vec<String> = files
        .iter()
        .filter(|(path, _)| dir.join(path).exists())
        .map(|(path, _)| shown(path))
        .collect();
    if !existing.is_empty() {
        return Err(CommandError::user(format!(
            "not overwriting existing files: {}",
            existing.join(", ")
        ))
        .hinted(
            "run init in an empty folder, or move these files away first; nothing was written",
        ));
    }
    for (path, text) in &files {
        write_new(&dir.join(path), text)?;
        println!("created {}", shown(path));
    }
    let (psa_name, vars, targets) = match args.psa {
        InitPsa::Connectwise => (
            "ConnectWise PSA",
            "UNITSYNC_CW_PUBLIC_KEY, UNITSYNC_CW_PRIVATE_KEY and UNITSYNC_CW_CLIENT_ID",
            "company / agreement / addition",
        ),
        InitPsa::Autotask => (
            "Autotask PSA",
            "UNITSYNC_AT_USERNAME, UNITSYNC_AT_SECRET and UNITSYNC_AT_INTEGRATION_CODE",
            "company / contract / service",
        ),
    };
    let c = if global.dir == Path::new(".") && args.path == Path::new(".") {
        String::new()
    } else {
        format!(" -C {}", dir.display())
    };
    println!(
        "\nA billing repo for {psa_name} is ready. Next steps:
  1. Fill in the placeholders in unitsync.yaml (the psa: and source: sections).
  2. Map vendor accounts to PSA lines in mappings.yaml ({targets}).
  3. In .github/workflows/, replace your-org/unitsync@main with a reviewed unitsync commit.
  4. git init, commit, and push to GitHub.
  5. Set {vars} in your environment (and as repository secrets for the workflows).
  6. unitsync{c} validate
  7. unitsync{c} doctor"
    );
    Ok(Outcome::Done)
}

fn write_new(path: &Path, text: &str) -> Result<(), CommandError> {
    use std::io::Write;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| CommandError::user(format!("cannot create {}: {e}", parent.display())))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| CommandError::user(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(text.as_bytes())
        .map_err(|e| CommandError::user(format!("cannot write {}: {e}", path.display())))
}
