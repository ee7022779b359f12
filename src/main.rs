//! The `faultline` binary: parse the command line, call into the library, map the outcome
//! to an exit code (0 valid, 1 invalid, 2 unknown, 3 bad input or harness error).

use clap::Parser;
use faultline::commands::cli::{Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    // clap exits 2 on a usage error, which would read as an "unknown" verdict: bad input
    // is 3. Help and version still exit 0.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let usage_error = e.use_stderr();
            let _ = e.print();
            return if usage_error {
                ExitCode::from(3)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // Runs log to their own faultline.log; anything logged outside a run goes to stderr.
    faultline::log::init_outside_runs();
    match cli.command {
        Command::Export(args) => export(args),
        Command::Check(args) => faultline::commands::check::run(&args),
        Command::Report(args) => faultline::commands::report::report(&args),
        Command::Serve(args) => faultline::commands::report::serve(&args),
        Command::Run(args) => faultline::commands::run::run(args),
        Command::Campaign(args) => faultline::commands::campaign::campaign(args),
        Command::Cleanup(args) => faultline::commands::run::cleanup(args),
        Command::Hosts(cmd) => faultline::commands::hosts::run(cmd),
        Command::InitTarget(args) => faultline::commands::init_target::run(&args),
        Command::ProbeTarget(args) => faultline::commands::probe::run(args),
        Command::Compare(args) => faultline::commands::compare::run(&args),
    }
}

/// `faultline export`: 0 on success, 3 with `path:line: message` on bad input.
fn export(args: faultline::commands::cli::ExportArgs) -> ExitCode {
    match faultline::history::export_file(
        &args.history,
        args.format,
        args.to,
        args.output.as_deref(),
    ) {
        Ok(summary) => {
            if let Some(out) = &summary.output {
                eprintln!(
                    "exported {} ops from {} ({}) to {} ({})",
                    summary.ops,
                    args.history.display(),
                    summary.input_format,
                    out.display(),
                    args.to
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(3)
        }
    }
}
