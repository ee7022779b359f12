//! raftkv: faultline's reference target, a Raft-replicated key-value store whose
//! consensus bugs can be switched on one by one (`--bug NAME`).
//!
//! Module map, from the pure core outwards:
//! - [`kv`]: the state machine (string keys, `i64` values, write and compare-and-set).
//! - [`raft`]: the deterministic Raft core — messages and ticks in; persistence, messages
//!   and committed entries out. No I/O.
//! - [`replica`]: core + state machine + waiting client requests; still deterministic.
//! - [`bugs`]: the switchable bugs.
//! - [`storage`]: the data dir (hard state, log, snapshot), fsynced.
//! - [`protocol`]: the client protocol, one JSON object per line.
//! - [`transport`]: peer TCP connections (timeouts, reconnect with back-off).
//! - [`server`]: the tokio event loop that wires all of the above to sockets and disk.
//! - [`cli`]: command-line flags and their validation.

pub mod bugs;
pub mod cli;
pub mod kv;
pub mod protocol;
pub mod raft;
pub mod replica;
pub mod server;
pub mod storage;
pub mod transport;

#[cfg(test)]
mod sim;

/// Writes one log line to stderr: wall-clock time (as the node sees it, so clock faults
/// show), node id, message. faultline collects node stderr into the run directory.
pub fn log_line(node: &str, msg: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    eprintln!(
        "{}.{:03} raftkv {node}: {msg}",
        now.as_secs(),
        now.subsec_millis()
    );
}
