//! The `pbftkv` binary: parse flags, run the replica until SIGTERM/SIGINT.
//!
//! Exit codes: 0 after a signal-initiated shutdown, 1 when the node fails (data dir, key
//! file, listen address), 2 for invalid flags (the shell's `runtime::run`).

use clap::Parser;
use pbftkv::cli::Args;
use pbftkv::server;
use std::process::ExitCode;

fn main() -> ExitCode {
    let settings = Args::parse().validate().map(|s| (s.node.id.clone(), s));
    nodeshell::runtime::run("pbftkv", settings, server::run)
}
