//! The `unitsync` binary: parse arguments, start logging, run, and turn the outcome into an exit
//! code. Everything else lives in the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match unitsync::cli::parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    unitsync::cli::init_logging(&cli.global);
    unitsync::cli::exit_code(unitsync::cli::run(cli))
}
