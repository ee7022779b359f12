//! The command-line surface: clap definitions of the subcommands, nothing else.
//!
//! What the user typed lives here; validated, resolved settings live in the modules that
//! use them.

use clap::{Parser, Subcommand};

/// A Jepsen-style fault-injection test harness for consensus systems.
#[derive(Debug, Parser)]
#[command(name = "faultline", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {}
