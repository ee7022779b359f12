//! hotstuffkv: faultline's HotStuff target — a key-value store replicated by the published
//! hotstuff_rs 0.4 library (ParallelChain Lab: pipelined HotStuff, a pacemaker with a
//! rotating leader, block sync), used unmodified, on the node shell shared with raftkv,
//! paxoskv and pbftkv.
//!
//! The library brings the consensus and asks for three pluggable parts; this crate is
//! those parts and the node around them:
//! - [`store`]: the library's `KVStore`, persistent (a write-ahead log, fsynced per
//!   batch), because the library resumes from it after a restart.
//! - [`net`]: the library's `Network` over the shell's TCP transport.
//! - [`app`]: the library's `App` — read, write and compare-and-set carried in blocks,
//!   results kept in the app state — and the mempool it proposes from.
//! - [`server`]: the node: keys, first-start initialisation, the replica, the client
//!   port (answers once a request's block commits), status and the committed-block log.
//! - [`cli`]: the flags (the shell's common ones flattened in) and their validation.

pub mod app;
pub mod cli;
pub mod net;
pub mod server;
pub mod store;
