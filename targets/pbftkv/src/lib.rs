//! pbftkv: faultline's reference Byzantine-fault-tolerant target, a key-value store
//! replicated with PBFT (Castro & Liskov, OSDI 1999 / TOCS 2002) whose protocol bugs can be
//! switched on one by one.
//!
//! The deterministic core and its simulation harness, and a node binary (`pbftkv`) on the
//! node shell shared with raftkv and paxoskv (`nodeshell`: transport, disk thread, common
//! flags, the key-value state machine).
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
//! - [`keys`]: replica keys derived from a cluster secret (test clusters), the node's own
//!   kept in its data dir.
//! - [`storage`]: the data dir's replica state, replaced atomically and fsynced.
//! - [`server`]: the tokio event loop: signed peer envelopes, the disk thread, the client
//!   port.
//! - [`cli`]: the flags (the shell's common ones flattened in) and their validation.

pub mod auth;
pub mod bugs;
pub mod cli;
pub mod client;
pub mod keys;
pub mod kv;
pub mod pbft;
pub mod protocol;
pub mod server;
pub mod storage;

#[cfg(test)]
mod sim;
