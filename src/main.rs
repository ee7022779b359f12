//! The `faultline` binary: parse the command line, call into the library, map the outcome
//! to an exit code (0 valid, 1 invalid, 2 unknown, 3 bad input or harness error).

use clap::Parser;
use faultline::cli::{Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {}
}
