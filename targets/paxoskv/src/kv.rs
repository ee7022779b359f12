//! The replicated state machine: a map from string keys to `i64` values, plus the client
//! session table that makes a retried request take effect once.
//!
//! Every client operation — reads included — is a [`Request`] chosen into a log slot and
//! applied here in slot order. A client numbers its requests 1, 2, 3 … and sends the next
//! only once the previous one was answered, so one (last sequence number, outcome) pair
//! per client is enough: a request at or below it is a duplicate (a retry that got chosen
//! into a second slot) and is answered from the table, not executed again. The table is
//! part of snapshots, so a node that catches up by snapshot deduplicates the same way.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A client operation on one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Command {
    /// The current value of `key`.
    Read { key: String },
    /// Set `key` to `value` unconditionally.
    Write { key: String, value: i64 },
    /// Set `key` to `to` only if it currently holds `from`.
    Cas { key: String, from: i64, to: i64 },
}

impl Command {
    /// The key the command reads or changes.
    pub fn key(&self) -> &str {
        match self {
            Command::Read { key } | Command::Write { key, .. } | Command::Cas { key, .. } => key,
        }
    }
}

/// A client request as it travels through the log: who sent it and its number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub client: u64,
    pub seq: u64,
    pub cmd: Command,
}

/// What applying a command did, reported back to the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The write or cas took effect.
    Done,
    /// A read's answer (None: never written).
    Value(Option<i64>),
    /// The cas compared against `current` (None: never written) and changed nothing.
    CompareFailed { current: Option<i64> },
}

/// The whole state: data and sessions. Ordered maps, so that two replicas that applied the
/// same slots compare (and would serialize) equal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kv {
    data: BTreeMap<String, i64>,
    /// Per client: the last sequence number applied and its outcome.
    sessions: BTreeMap<u64, (u64, Outcome)>,
}

impl Kv {
    /// The current value of `key`; `None` if it was never written.
    pub fn get(&self, key: &str) -> Option<i64> {
        self.data.get(key).copied()
    }

    /// The outcome of `client`'s request `seq` if it was already applied. `Some(None)`:
    /// an older request, whose answer the client no longer waits for.
    pub fn answered(&self, client: u64, seq: u64) -> Option<Option<&Outcome>> {
        match self.sessions.get(&client) {
            Some((last, out)) if *last == seq => Some(Some(out)),
            Some((last, _)) if *last > seq => Some(None),
            _ => None,
        }
    }

    /// Applies one chosen request, once: a duplicate returns the recorded outcome (or
    /// None when it is older than the client's last request) and changes nothing.
    pub fn apply(&mut self, req: &Request) -> Option<Outcome> {
        if let Some(prev) = self.answered(req.client, req.seq) {
            return prev.cloned();
        }
        let out = self.execute(&req.cmd);
        self.sessions.insert(req.client, (req.seq, out.clone()));
        Some(out)
    }

    /// Runs a command against the data, with no session bookkeeping.
    pub fn execute(&mut self, cmd: &Command) -> Outcome {
        match cmd {
            Command::Read { key } => Outcome::Value(self.get(key)),
            Command::Write { key, value } => {
                self.data.insert(key.clone(), *value);
                Outcome::Done
            }
            Command::Cas { key, from, to } => {
                let current = self.get(key);
                if current == Some(*from) {
                    self.data.insert(key.clone(), *to);
                    Outcome::Done
                } else {
                    Outcome::CompareFailed { current }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(client: u64, seq: u64, cmd: Command) -> Request {
        Request { client, seq, cmd }
    }

    #[test]
    fn cas_changes_value_only_when_it_matches() {
        let mut kv = Kv::default();
        let cas = Command::Cas {
            key: "k".into(),
            from: 1,
            to: 2,
        };
        assert_eq!(kv.execute(&cas), Outcome::CompareFailed { current: None });
        let w = Command::Write {
            key: "k".into(),
            value: 1,
        };
        assert_eq!(kv.execute(&w), Outcome::Done);
        assert_eq!(kv.execute(&cas), Outcome::Done);
        assert_eq!(kv.get("k"), Some(2));
        assert_eq!(
            kv.execute(&cas),
            Outcome::CompareFailed { current: Some(2) }
        );
    }

    #[test]
    fn a_duplicate_request_is_answered_from_the_session_and_not_executed_again() {
        let mut kv = Kv::default();
        let w = |v| Command::Write {
            key: "k".into(),
            value: v,
        };
        assert_eq!(kv.apply(&req(7, 1, w(1))), Some(Outcome::Done));
        kv.execute(&w(5));
        // The retry of request 1 must not set k back to 1.
        assert_eq!(kv.apply(&req(7, 1, w(1))), Some(Outcome::Done));
        assert_eq!(kv.get("k"), Some(5));
        let read = Command::Read { key: "k".into() };
        assert_eq!(
            kv.apply(&req(7, 2, read.clone())),
            Some(Outcome::Value(Some(5)))
        );
        // A retry older than the client's last request is answered with nothing.
        assert_eq!(kv.apply(&req(7, 1, w(1))), None);
        assert_eq!(kv.get("k"), Some(5));
    }
}
