//! pbftkv: faultline's reference Byzantine-fault-tolerant target, a key-value store
//! replicated with PBFT (Castro & Liskov, OSDI 1999 / TOCS 2002) whose protocol bugs can be
//! switched on one by one.
//!
//! This crate is the deterministic core and its simulation harness; the node shell
//! (transport, storage, client server, CLI) comes from the library shared with raftkv.
//!
//! Module map, from the pure core outwards:
//! - [`kv`]: the state machine (string keys, `i64` values; read, write, compare-and-set)
//!   with the per-client table that makes execution at-most-once.
//! - [`pbft`]: the replica core — messages and ticks in; durable state, messages and
//!   executed requests out. No I/O, no clock.
//! - [`client`]: the client side: request timestamps, retransmission, and the reply
//!   collector that accepts a result once f + 1 replicas agree on it.
//! - [`auth`]: ed25519 signatures for replicas and self-certifying clients.
//! - [`bugs`]: the switchable bugs.
//! - [`protocol`]: the client port's JSON lines (signed requests, replies, status).

pub mod auth;
pub mod bugs;
pub mod client;
pub mod kv;
pub mod pbft;
pub mod protocol;

#[cfg(test)]
mod sim;
