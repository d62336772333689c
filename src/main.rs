//! The `unitsync` binary: parse arguments, start logging, run, and turn the outcome into an exit
//! code. Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = unitsync::cli::Cli::parse();
    unitsync::cli::init_logging(&cli.global);
    unitsync::cli::exit_code(unitsync::cli::run(cli))
}
