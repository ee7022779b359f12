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
    /// Run one test against a real cluster: start nodes, drive clients and faults, record
    /// the history, check it, write the report. With no arguments: raftkv, 5 nodes, the
    /// register workload, 30 s.
    Run(RunArgs),
    /// Run a campaign: a matrix of runs (targets × workloads × nemeses × option sets ×
    /// repeats) from campaigns/NAME.yaml, with a summary page, summary.json and junit.xml.
    /// Resumes an interrupted campaign of the same file. Exit 0 when every run reached its
    /// expected verdict, 1 when one contradicted it, 2 unknown, 3 error or interrupted.
    Campaign(CampaignArgs),
    /// Remove what a run left behind (after --leave-running, or a SIGKILLed controller):
    /// node processes, network namespaces, bridges. Without RUN_ID: every run whose
    /// controller is gone, except clusters kept with --leave-running, which it lists.
    Cleanup(CleanupArgs),
    /// Convert a history (any readable format) to Jepsen EDN or to faultline's JSONL.
    Export(ExportArgs),
    /// Check a history file for linearizability: verdict, summary and, if invalid, a
    /// counterexample. Exit 0 valid, 1 invalid, 2 unknown, 3 bad input.
    Check(CheckArgs),
    /// Re-render a run's report (index.html, timeline.html, plots) from its files; with
    /// --recheck, check its history again first. Exit 0 valid, 1 invalid, 2 unknown, 3 error.
    Report(ReportArgs),
    /// SSH hosts: `vagrant` writes an inventory from `vagrant ssh-config`; `lab` runs SSH
    /// servers in local network namespaces (no VMs needed) until Ctrl-C.
    #[command(subcommand)]
    Hosts(HostsCommand),
    /// Browse a reports tree over HTTP (loopback only by default); a run downloads as
    /// /download/<test>/<run>.tar.gz.
    Serve(ServeArgs),
    /// Start a new target: write DIR/target.yaml (every field explained) and DIR/adapter.py
    /// (a stdio adapter skeleton with TODOs). Never overwrites a file.
    InitTarget(InitTargetArgs),
    /// Before a first run: start a target's cluster, send one write, read, cas and
    /// leaders through its client, print a table of what works, tear everything down.
    /// Exit 0 when write, read and cas work, 1 when one does not, 3 when the cluster
    /// did not start.
    ProbeTarget(ProbeTargetArgs),
    /// The protocol comparison: one row per target and cluster size from the runs found
    /// below the given directories (run dirs, a store, a campaign dir) — peer messages and
    /// bytes per write, write latency in ms and round trips, writes/s, calm and with one
    /// node cut off. `faultline campaign campaigns/protocols.yaml` makes the runs.
    Compare(CompareArgs),
}

/// `faultline compare DIR...`.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// Directories holding runs (searched up to 4 levels down).
    #[arg(required = true)]
    pub dirs: Vec<std::path::PathBuf>,
    /// Print the rows as JSON instead of a Markdown table.
    #[arg(long)]
    pub json: bool,
}

/// `faultline init-target DIR [--name NAME]`.
#[derive(Debug, clap::Args)]
pub struct InitTargetArgs {
    /// Where target.yaml and adapter.py go (created if missing), e.g. targets/mykv.
    pub dir: std::path::PathBuf,
    /// The target's name (default: DIR's own name).
    #[arg(long)]
    pub name: Option<String>,
}

/// `faultline probe-target [--target T] [--nodes N] [--target-arg ARG]… [--hosts H]`.
#[derive(Debug, clap::Args)]
pub struct ProbeTargetArgs {
    /// Target name (targets/NAME/target.yaml) or path to a target.yaml or its directory.
    #[arg(long)]
    pub target: Option<String>,
    /// Number of nodes (n1 … nN).
    #[arg(long)]
    pub nodes: Option<u32>,
    /// Extra argument for every node's start command (repeatable).
    #[arg(long = "target-arg", allow_hyphen_values = true)]
    pub target_args: Vec<String>,
    #[command(flatten)]
    pub where_: HostsFlags,
}

#[derive(Debug, Subcommand)]
pub enum HostsCommand {
    /// Print an inventory (nodes.yaml) for the VMs of the Vagrantfile in this directory:
    /// `faultline hosts vagrant > nodes.yaml`.
    Vagrant {
        /// Read this `vagrant ssh-config` output instead of running vagrant.
        #[arg(long)]
        ssh_config: Option<std::path::PathBuf>,
        /// The address a VM's peers use (repeatable), for Vagrantfiles other than ours,
        /// e.g. --address n1=192.168.56.11.
        #[arg(long)]
        address: Vec<String>,
    },
    /// Start NODES network namespaces, each with its own sshd and throwaway keys, print the
    /// inventory's path, and keep them until SIGINT/SIGTERM (needs root and openssh-server).
    Lab {
        /// How many SSH hosts.
        #[arg(long, default_value_t = 5)]
        nodes: u32,
        /// Where keys, sshd configs and nodes.yaml go.
        #[arg(long, default_value = "ssh-lab")]
        dir: std::path::PathBuf,
        /// Subnet for the namespaces (a free /27 of it is taken).
        #[arg(long, default_value = crate::spec::plan::DEFAULT_SUBNET)]
        subnet: String,
    },
}

/// `faultline report RUN_DIR [--recheck]`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The run directory (reports/<test>/<timestamp>, or a `latest` link).
    pub run_dir: std::path::PathBuf,
    /// Check history.jsonl again with the run's plan and rewrite results.json.
    #[arg(long)]
    pub recheck: bool,
}

/// `faultline serve [DIR] [--bind ADDR]`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The reports directory to serve.
    #[arg(default_value = "reports")]
    pub dir: std::path::PathBuf,
    /// Address to listen on; anything but loopback makes the reports reachable from
    /// other machines.
    #[arg(long, default_value = crate::report::serve::DEFAULT_BIND)]
    pub bind: String,
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

/// `faultline check HISTORY [--model M] [--format F] [--init V] [--time-limit D]
/// [--memory-limit SIZE] [--nil-read-unknown] [--json OUT]`.
#[derive(Debug, clap::Args)]
#[command(after_help = super::check::AFTER_HELP)]
pub struct CheckArgs {
    /// The history file to check.
    pub history: std::path::PathBuf,
    /// The model to check against (default: by format, see below).
    #[arg(long)]
    pub model: Option<crate::checker::model::ModelKind>,
    /// Format of HISTORY; detected from its content when omitted.
    #[arg(long)]
    pub format: Option<crate::history::Format>,
    /// Initial state as JSON: a register value (0, "a", null) or a multi-register map.
    #[arg(long)]
    pub init: Option<String>,
    /// Give up with verdict unknown after this long, e.g. 30s, 500ms, 2m.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub time_limit: std::time::Duration,
    /// Give up with verdict unknown when the search would hold more memory than this,
    /// e.g. 2GiB, 512MiB.
    #[arg(long, default_value = "2GiB", value_parser = crate::checker::budget::parse_bytes)]
    pub memory_limit: u64,
    /// Treat a completed read of null as unknown (Knossos' rule). Default: on for edn
    /// histories, off otherwise.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub nil_read_unknown: Option<bool>,
    /// The stats rule: a client f the history invokes that never succeeded (no ok; for
    /// a cas, no compare-failed either) makes a valid verdict unknown. Default: on for
    /// jsonl (faultline's runs), off for imported formats (their tests judged that).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub require_ok: Option<bool>,
    /// Check all ops as one history instead of key by key.
    #[arg(long)]
    pub no_partition: bool,
    /// Search threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Also write the results as JSON to this file (atomically).
    #[arg(long, value_name = "OUT")]
    pub json: Option<std::path::PathBuf>,
    /// Print only the verdict.
    #[arg(long, short)]
    pub quiet: bool,
}

impl clap::ValueEnum for crate::checker::model::ModelKind {
    fn value_variants<'a>() -> &'a [Self] {
        &crate::checker::model::ModelKind::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()).help(self.summary()))
    }
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

/// `faultline run [TEST.yaml] [flags]`: flags override the test file.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// A test file naming target, workload, nemesis and parameters.
    pub test: Option<std::path::PathBuf>,
    /// Target name (targets/NAME/target.yaml) or path to a target.yaml.
    #[arg(long)]
    pub target: Option<String>,
    /// Workload name (workloads/NAME.yaml) or path.
    #[arg(long)]
    pub workload: Option<String>,
    /// Nemesis name (nemesis/NAME.yaml) or path.
    #[arg(long)]
    pub nemesis: Option<String>,
    /// Number of nodes (n1 … nN).
    #[arg(long)]
    pub nodes: Option<u32>,
    /// Number of concurrent client workers.
    #[arg(long)]
    pub concurrency: Option<u32>,
    /// How long clients run, e.g. 30s, 2m.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub time_limit: Option<std::time::Duration>,
    /// Ops per second over all workers (default: as fast as the target answers).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seed of the generators and the nemesis schedule (default: random, recorded in plan.yaml).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Before each fault, wait up to this long for the cluster to serve again (a leader for
    /// faults aimed at leaders, else readiness), e.g. 10s: the nemesis file's `recover`, for
    /// targets slower than raftkv to restart or elect.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub recover: Option<std::time::Duration>,
    /// What each node's data dir lives on: `plain`, or `lazyfs` (its own mount of the
    /// power-failure filesystem; root and /dev/fuse). Default: lazyfs when the nemesis
    /// injects power failures, else plain.
    #[arg(long)]
    pub data_fs: Option<DataFsArg>,
    /// Extra argument for every node's start command (repeatable), e.g. --target-arg=--bug --target-arg=stale-read.
    #[arg(long = "target-arg", allow_hyphen_values = true)]
    pub target_args: Vec<String>,
    /// Keep the cluster running after the run (remove it later with `faultline cleanup`).
    #[arg(long)]
    pub leave_running: bool,
    /// Directory runs are stored under.
    #[arg(long, default_value = "reports")]
    pub store: std::path::PathBuf,
    #[command(flatten)]
    pub where_: HostsFlags,
    /// Print only the verdict line, not the run log.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Where nodes run: `faultline run` and `faultline campaign` take the same flags.
#[derive(Debug, Clone, clap::Args)]
pub struct HostsFlags {
    /// Where nodes run: `local` (a network namespace per node; needs root), `loopback`, or
    /// `ssh` (machines listed in --inventory). Default: local when this machine allows it.
    #[arg(long)]
    pub hosts: Option<HostsArg>,
    /// The SSH inventory (nodes.yaml: name, address, user, port, key, sudo per node); implies
    /// --hosts ssh.
    #[arg(long)]
    pub inventory: Option<std::path::PathBuf>,
    /// Subnet for local hosts (each run takes a free /27 of it).
    #[arg(long)]
    pub subnet: Option<String>,
}

/// `faultline campaign FILE [--hosts H] [--parallel N] [--fresh] [--dry-run]`.
#[derive(Debug, clap::Args)]
pub struct CampaignArgs {
    /// The campaign file (e.g. campaigns/ci.yaml).
    pub file: std::path::PathBuf,
    /// Where the nodes of every run live (a resumed campaign keeps the hosts it started on).
    #[command(flatten)]
    pub where_: HostsFlags,
    /// Runs at a time, at most as many as the hosts take (local: one /27 of the subnet
    /// per run).
    #[arg(long, default_value_t = 1)]
    pub parallel: usize,
    /// Start a new campaign directory even if an unfinished one of this file exists.
    #[arg(long)]
    pub fresh: bool,
    /// Resolve every cell and list the runs; start nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Directory runs and campaigns are stored under (campaigns go to STORE/campaigns/).
    #[arg(long, default_value = "reports")]
    pub store: std::path::PathBuf,
}

/// What node data dirs live on, as `--data-fs` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DataFsArg {
    Plain,
    Lazyfs,
}

impl From<DataFsArg> for crate::spec::test::DataFs {
    fn from(a: DataFsArg) -> Self {
        match a {
            DataFsArg::Plain => crate::spec::test::DataFs::Plain,
            DataFsArg::Lazyfs => crate::spec::test::DataFs::Lazyfs,
        }
    }
}

/// Where nodes run, as `--hosts` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HostsArg {
    Local,
    Loopback,
    Ssh,
}

/// `faultline cleanup [RUN_ID]`.
#[derive(Debug, clap::Args)]
pub struct CleanupArgs {
    /// The run id printed by `faultline run --leave-running`.
    pub run_id: Option<String>,
}
