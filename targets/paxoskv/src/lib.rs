//! paxoskv: faultline's reference Multi-Paxos target, a replicated key-value store whose
//! consensus bugs can be switched on one by one.
//!
//! The deterministic core and its simulation harness, and a node binary (`paxoskv`) built
//! on the node shell shared with raftkv and pbftkv (`nodeshell`: transport, client server,
//! disk thread, common flags, the key-value state machine).
//!
//! Module map, from the pure core outwards:
//! - [`kv`]: the shell's state machine (string keys, `i64` values; read, write,
//!   compare-and-set) with its table of client sessions, which answers duplicates once.
//! - [`paxos`]: the deterministic Multi-Paxos core — messages, ticks and client requests
//!   in; persistence, messages, replies and applied slots out. No I/O, no clock.
//! - [`bugs`]: the switchable bugs.
//! - [`storage`]: the data dir (promise, votes, snapshot as records), fsynced.
//! - [`server`]: the tokio event loop wiring the core to the shell's sockets and disk.
//! - [`cli`]: the flags (the shell's common ones flattened in) and their validation.
//! - `sim` (tests only): a seeded simulated cluster with faults, clients and safety checks.

pub mod bugs;
pub mod cli;
pub mod kv;
pub mod paxos;
pub mod server;
pub mod storage;

#[cfg(test)]
mod sim;
