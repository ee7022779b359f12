//! pbftkv: faultline's reference Byzantine-fault-tolerant target, a key-value store
//! replicated with PBFT (Castro & Liskov, OSDI 1999 / TOCS 2002) whose protocol bugs can be
//! switched on one by one.
//!
//! This crate is the deterministic core and its simulation harness; its state machine is
//! the node shell's (`nodeshell`, shared with raftkv and paxoskv), whose transport, disk
//! thread, client server and CLI a pbftkv node binary will use too.
//!
//! Module map, from the pure core outwards:
//! - [`kv`]: the shell's state machine (string keys, `i64` values; read, write,
//!   compare-and-set) with the per-client table that makes execution at-most-once, and
//!   the checkpoint digest over both.
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
