//! faultline: a Jepsen-style fault-injection test harness for consensus systems.
//!
//! # Vocabulary
//!
//! - **target**: the system under test (how to install, start, stop, kill it, and how a
//!   client talks to it).
//! - **node**: one member of the target's cluster (n1 … nN), on a **host**.
//! - **host**: where a node runs: a network namespace on this machine or a machine over SSH.
//! - **workload**: what clients do and which checker judges it.
//! - **nemesis**: what faults are injected and when; every fault has a named inverse.
//! - **op**: one event in the history: an invoke and later its completion ok / fail / info.
//! - **process**: a logical single-threaded client; retired after an info.
//! - **history**: the append-only list of ops of one run, streamed to `history.jsonl`.
//! - **checker** / **model**: turn a history into a verdict valid / invalid / unknown.
//! - **run** / **campaign**: one test execution / a matrix of runs.
//!
//! # Module map
//!
//! Listed bottom-up: a module imports only modules above it in this list (a test,
//! `tests/it/modules.rs`, fails on any cycle).
//!
//! - [`log`]: the run log: a `tracing` subscriber per run (`faultline.log` and stderr,
//!   around the progress line); other modules just emit `tracing` events.
//! - [`shell`]: quoting words for the POSIX shell (SSH scripts, commands on the page).
//! - [`store`]: the run directory, atomic writes, `latest` links.
//! - [`history`]: the op vocabulary ([`history::Op`], [`history::Invocation`]), the
//!   journal, the JSONL writer and reader, importers and exporters.
//! - [`spec`]: YAML specs → validated, resolved [`spec::Plan`], including the compiled
//!   nemesis schedule and partition grudges.
//! - [`checker`]: models and the linearizability search.
//! - [`hosts`]: network namespaces / loopback addresses / SSH hosts, spawning, a node's view
//!   of time, the cleanup registry.
//! - [`target`]: node lifecycle from target.yaml and the clients (raftkv, etcd, stdio adapters).
//! - [`generator`]: seeded, deterministic op sequences.
//! - [`nemesis`]: one file per fault kind; applying and healing faults, recording intent.
//! - [`report`]: plots, the run page, the timeline, the reports index, `serve`.
//! - [`runner`]: the one async loop of a run, from plan to verdict.
//! - [`campaign`]: a matrix of runs (each a child `faultline run`), resumable, with a
//!   summary page, summary.json and junit.xml.
//! - [`commands`]: the command-line surface ([`commands::cli`], clap definitions) and one
//!   file per subcommand; the only modules that import `cli`.
//!
//! # Lifecycle of a run
//!
//! Plan written → hosts prepared → target installed and started → clients and nemesis until
//! the time limit → every fault healed, final reads → nodes stopped, logs collected, hosts
//! torn down → history checked → results.json and the report written. See ARCHITECTURE.md.
//!
//! # Error policy
//!
//! Library code returns typed results where a caller branches (verdicts are values, never
//! errors) and `anyhow::Result` with `.context()` naming the file, node or command at the
//! edges. `main` maps the outcome to an exit code: 0 valid, 1 invalid, 2 unknown, 3 bad
//! input or harness error.

pub mod campaign;
pub mod checker;
pub mod commands;
pub mod generator;
pub mod history;
pub mod hosts;
pub mod log;
pub mod nemesis;
pub mod report;
pub mod runner;
pub mod shell;
pub mod spec;
pub mod store;
pub mod target;
