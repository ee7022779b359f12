//! nodeshell: the parts of a replicated key-value node that do not depend on its consensus
//! protocol, shared by faultline's reference targets (raftkv, paxoskv, pbftkv).
//!
//! A target brings a deterministic core (messages, ticks and client requests in; durable
//! records, messages and answers out) and its own event loop; the shell brings everything
//! around it. See README.md in this crate for the contract.
//!
//! Module map:
//! - [`kv`]: the state machine (string keys, `i64` values; read, write, compare-and-set)
//!   and a client table for at-most-once execution, which targets build on.
//! - [`client`]: the client protocol (JSON lines: read, write, cas, status, log pages),
//!   the client listener with pipelining, and the registry of waiting answers.
//! - [`transport`]: peer TCP connections for any serde message type (bounded queues,
//!   reconnect with back-off, stall detection, per-peer [`transport::WireStats`]).
//! - [`disk`]: the disk thread — group commit of a target's durable records, then the
//!   messages and answers that had to wait for them.
//! - [`event_loop`]: the tick clock and the draining of queued inputs into one batch.
//! - [`cli`]: the flags every node takes and their validation.
//! - [`log_line`] and [`runtime`]: the log format and the runtime/signal boilerplate.

pub mod cli;
pub mod client;
pub mod disk;
pub mod event_loop;
pub mod kv;
pub mod runtime;
pub mod transport;

use std::sync::OnceLock;

/// The program name log lines carry, set once by [`runtime::run`] (or [`set_program`]).
static PROGRAM: OnceLock<&'static str> = OnceLock::new();

/// Names the program in log lines ("raftkv", "paxoskv"); the first call wins.
pub fn set_program(name: &'static str) {
    let _ = PROGRAM.set(name);
}

/// Writes one log line to stderr: wall-clock time (as the node sees it, so clock faults
/// show), program, node id, message. faultline collects node stderr into the run directory.
pub fn log_line(node: &str, msg: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let program = PROGRAM.get().copied().unwrap_or("node");
    eprintln!(
        "{}.{:03} {program} {node}: {msg}",
        now.as_secs(),
        now.subsec_millis()
    );
}
