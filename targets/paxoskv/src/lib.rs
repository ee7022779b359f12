//! paxoskv: faultline's reference Multi-Paxos target, a replicated key-value store whose
//! consensus bugs can be switched on one by one.
//!
//! This crate is so far the deterministic core and its simulation harness; the node shell
//! (transport, storage, client server, CLI) is to be shared with raftkv and comes later.
//!
//! Module map, from the pure core outwards:
//! - [`kv`]: the state machine (string keys, `i64` values; read, write, compare-and-set)
//!   with its table of client sessions, which answers duplicate requests once.
//! - [`paxos`]: the deterministic Multi-Paxos core — messages, ticks and client requests
//!   in; persistence, messages, replies and applied slots out. No I/O, no clock.
//! - [`bugs`]: the switchable bugs.
//! - `sim` (tests only): a seeded simulated cluster with faults, clients and safety checks.

pub mod bugs;
pub mod kv;
pub mod paxos;

#[cfg(test)]
mod sim;
