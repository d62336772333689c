//! `unitsync completions SHELL` and `unitsync man`: generated from the clap definitions, so they
//! cannot drift from the real options.

use std::path::PathBuf;

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::{Cli, CommandError, Outcome};

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write unitsync.1 and one page per subcommand (unitsync-plan.1, …) into DIR instead of
    /// printing unitsync.1 on stdout.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Prints the completion script on stdout, e.g. `unitsync completions bash >
/// ~/.local/share/bash-completion/completions/unitsync`.
pub fn completions(args: &CompletionsArgs) -> Result<Outcome, CommandError> {
    let mut cmd = Cli::command();
    let mut text = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "unitsync", &mut text);
    write_stdout(&text)
}

/// Writes to stdout without panicking when the reader went away (`| head`).
fn write_stdout(bytes: &[u8]) -> Result<Outcome, CommandError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(Outcome::Done),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(Outcome::Done),
        Err(e) => Err(CommandError::external(format!(
            "cannot write to stdout: {e}"
        ))),
    }
}

pub fn man(args: &ManArgs) -> Result<Outcome, CommandError> {
    match &args.out {
        None => {
            let mut text = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut text)
                .map_err(|e| CommandError::internal(format!("cannot render the man page: {e}")))?;
            return write_stdout(&text);
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| CommandError::user(format!("cannot create {}: {e}", dir.display())))?;
            clap_mangen::generate_to(Cli::command(), dir).map_err(|e| {
                CommandError::user(format!("cannot write man pages to {}: {e}", dir.display()))
            })?;
            let mut pages: Vec<String> = std::fs::read_dir(dir)
                .map_err(|e| CommandError::user(format!("cannot read {}: {e}", dir.display())))?
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("unitsync") && n.ends_with(".1"))
                .collect();
            pages.sort();
            for page in pages {
                println!("wrote {}", dir.join(page).display());
            }
        }
    }
    Ok(Outcome::Done)
}
