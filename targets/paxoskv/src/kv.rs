//! The replicated state: the shell's key-value map (`nodeshell::kv`) plus its client
//! table, which makes a retried request take effect once.
//!
//! Every client operation — reads included — is a [`Request`] chosen into a log slot and
//! applied here in slot order. A client numbers its requests increasingly (the node
//! server numbers the requests of its process; the simulation's clients send one at a
//! time), so one (last sequence number, outcome) pair per client is enough: a request at
//! or below it is a duplicate (a retry that got chosen into a second slot) and is answered
//! from the table, not executed again. The table is part of snapshots, so a node that
//! catches up by snapshot deduplicates the same way.

use nodeshell::kv::ClientTable;
pub use nodeshell::kv::{Command, Outcome};
use serde::{Deserialize, Serialize};

/// A client request as it travels through the log: who sent it and its number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub client: u64,
    pub seq: u64,
    pub cmd: Command,
}

/// The whole state: data and sessions. Two replicas that applied the same slots compare
/// (and serialize) equal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kv {
    data: nodeshell::kv::Kv,
    sessions: ClientTable,
}

impl Kv {
    /// The current value of `key`; `None` if it was never written.
    pub fn get(&self, key: &str) -> Option<i64> {
        self.data.get(key)
    }

    /// The outcome of `client`'s request `seq` if it was already applied. `Some(None)`:
    /// an older request, whose answer the client no longer waits for.
    pub fn answered(&self, client: u64, seq: u64) -> Option<Option<&Outcome>> {
        self.sessions.answered(client, seq)
    }

    /// Applies one chosen request, once: a duplicate returns the recorded outcome (or
    /// None when it is older than the client's last request) and changes nothing.
    pub fn apply(&mut self, req: &Request) -> Option<Outcome> {
        self.sessions
            .execute(&mut self.data, req.client, req.seq, &req.cmd)
    }

    /// Runs a command against the data, with no session bookkeeping.
    pub fn execute(&mut self, cmd: &Command) -> Outcome {
        self.data.execute(cmd)
    }

    /// Number of keys, for log lines.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when no key was ever written.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}
