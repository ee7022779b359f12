//! The `hotstuffkv` binary: parse flags, run the node until SIGTERM/SIGINT.
//!
//! Exit codes: 0 after a signal-initiated shutdown, 1 when the node fails (data dir,
//! listen address, a panic in the library's threads), 2 for invalid flags.

use clap::Parser;
use hotstuffkv::cli::Args;
use hotstuffkv::server;
use std::process::ExitCode;

fn main() -> ExitCode {
    let settings = Args::parse().validate().map(|s| (s.node.id.clone(), s));
    nodeshell::runtime::run("hotstuffkv", settings, server::run)
}
