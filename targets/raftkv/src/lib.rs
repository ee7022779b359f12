//! raftkv: faultline's reference target, a Raft-replicated key-value store whose
//! consensus bugs can be switched on one by one (`--bug NAME`).
//!
//! The parts that do not depend on Raft — the state machine
//! (string keys, `i64` values), the client protocol and listener, peer transport, the disk
//! thread, the common flags — come from the shared node shell (`nodeshell`, in
//! targets/nodeshell).
//!
//! Module map, from the pure core outwards:
//! - [`raft`]: the deterministic Raft core — messages and ticks in; persistence, messages
//!   and committed entries out. No I/O.
//! - [`replica`]: core + state machine + waiting client requests; still deterministic.
//! - [`bugs`]: the switchable bugs.
//! - [`storage`]: the data dir (hard state, log, snapshot), fsynced.
//! - [`server`]: the tokio event loop that wires all of the above to the shell's
//!   sockets and disk thread.
//! - [`cli`]: Raft's command-line flags (the shell's common ones flattened in) and their
//!   validation.

pub mod bugs;
pub mod cli;
pub mod raft;
pub mod replica;
pub mod server;
pub mod storage;

#[cfg(test)]
mod sim;

/// Log lines name the program; the binary sets it (see `main.rs`).
pub use nodeshell::log_line;
