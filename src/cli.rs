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
pub enum Command {
    /// Convert a history (any readable format) to Jepsen EDN or to faultline's JSONL.
    Export(ExportArgs),
}

/// `faultline export HISTORY [--format F] [--to edn|jsonl] [-o OUT]`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The history file to convert.
    pub history: std::path::PathBuf,
    /// Format of HISTORY; detected from its content when omitted.
    #[arg(long)]
    pub format: Option<crate::history::Format>,
    /// Output format.
    #[arg(long, default_value = "edn")]
    pub to: crate::history::ExportFormat,
    /// Write here (atomically: nothing is left half-written) instead of stdout.
    #[arg(short, long)]
    pub output: Option<std::path::PathBuf>,
}

/// Lets any subcommand take `--format F` with the formats listed in `--help`.
impl clap::ValueEnum for crate::history::Format {
    fn value_variants<'a>() -> &'a [Self] {
        &crate::history::Format::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()).help(self.describe()))
    }
}

impl clap::ValueEnum for crate::history::ExportFormat {
    fn value_variants<'a>() -> &'a [Self] {
        &crate::history::ExportFormat::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()))
    }
}
