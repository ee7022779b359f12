//! The `raftkv` binary: parse flags, run the node until SIGTERM/SIGINT.
//!
//! Exit codes: 0 after a signal-initiated shutdown, 1 when the node fails (data dir,
//! listen address), 2 for invalid flags (the shell's `runtime::run`).

use clap::Parser;
use raftkv::cli::Args;
use raftkv::server;
use std::process::ExitCode;

fn main() -> ExitCode {
    let settings = Args::parse().validate().map(|s| (s.id.clone(), s));
    nodeshell::runtime::run("raftkv", settings, server::run)
}
