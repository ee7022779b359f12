//! `faultline compare DIR...`: the protocol comparison table of the runs below the given
//! directories ([`crate::report::compare`]), as Markdown or JSON on stdout; runs left out
//! are listed on stderr with why. Exit 0, or 3 when no run could be read.

use super::cli::CompareArgs;
use crate::report::compare;
use std::process::ExitCode;

/// `faultline compare`.
pub fn run(args: &CompareArgs) -> ExitCode {
    let (rows, skipped) = match compare::rows(&args.dirs) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(3);
        }
    };
    for s in &skipped {
        eprintln!("left out: {s}");
    }
    if args.json {
        match serde_json::to_string_pretty(&rows) {
            Ok(j) => println!("{j}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(3);
            }
        }
    } else {
        print!("{}", compare::markdown(&rows));
    }
    ExitCode::SUCCESS
}
