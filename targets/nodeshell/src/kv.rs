//! The replicated state machine every reference target runs: a map from string keys to
//! `i64` values with read, write and compare-and-set, and a client table for protocols
//! whose clients number their requests (at-most-once execution of a retried request).
//!
//! It knows nothing about consensus, clients or disks. Targets build on it: raftkv keeps
//! the bare [`Kv`] (reads are not in its log); paxoskv and pbftkv pair it with a
//! [`ClientTable`] in their snapshots (pbftkv also hashes the pair into its checkpoint
//! digest, which is why everything here derives `Hash`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The whole data, as stored in snapshots. A `BTreeMap` so that a snapshot serializes
/// (and hashes) the same way every time.
pub type KvData = BTreeMap<String, i64>;

/// A client operation on one key. The serde form (`{"op":"write","key":…}`) is what
/// raftkv's log files hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

    /// The command as a log request shows it; keys are quoted, so the text is unambiguous.
    pub fn text(&self) -> String {
        match self {
            Command::Read { key } => format!("read {key:?}"),
            Command::Write { key, value } => format!("write {key:?} {value}"),
            Command::Cas { key, from, to } => format!("cas {key:?} {from} {to}"),
        }
    }
}

/// What executing a command did.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// The write or cas took effect.
    Done,
    /// A read's answer (None: never written).
    Value(Option<i64>),
    /// The cas compared against `current` (None: never written) and changed nothing.
    CompareFailed { current: Option<i64> },
}

/// The data. Serialized as the bare map.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Kv {
    data: KvData,
}

impl Kv {
    /// A state machine restored from a snapshot.
    pub fn from_data(data: KvData) -> Self {
        Kv { data }
    }

    /// The current value of `key`; `None` if it was never written.
    pub fn get(&self, key: &str) -> Option<i64> {
        self.data.get(key).copied()
    }

    /// Executes one command.
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

    /// The whole data, for a snapshot.
    pub fn data(&self) -> &KvData {
        &self.data
    }

    /// Number of keys, reported in snapshot log lines.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when no key was ever written.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// Per client, the last request number executed and its outcome: enough for at-most-once
/// execution when each client numbers its requests increasingly (a retry, ordered a second
/// time, is answered from here and not executed again). It belongs in snapshots, so a node
/// that catches up by snapshot deduplicates the same way.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClientTable {
    last: BTreeMap<u64, (u64, Outcome)>,
}

impl ClientTable {
    /// The outcome of `client`'s request `seq` if it was already executed. `Some(None)`:
    /// an older request, whose answer the client no longer waits for.
    pub fn answered(&self, client: u64, seq: u64) -> Option<Option<&Outcome>> {
        match self.last.get(&client) {
            Some((last, out)) if *last == seq => Some(Some(out)),
            Some((last, _)) if *last > seq => Some(None),
            _ => None,
        }
    }

    /// Executes `client`'s request `seq` on `kv` once: a duplicate returns the recorded
    /// outcome (or None when it is older than the client's last request) and changes
    /// nothing.
    pub fn execute(
        &mut self,
        kv: &mut Kv,
        client: u64,
        seq: u64,
        cmd: &Command,
    ) -> Option<Outcome> {
        if let Some(prev) = self.answered(client, seq) {
            return prev.cloned();
        }
        let out = kv.execute(cmd);
        self.last.insert(client, (seq, out.clone()));
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let read = Command::Read { key: "k".into() };
        assert_eq!(kv.execute(&read), Outcome::Value(Some(2)));
    }

    #[test]
    fn a_duplicate_request_is_answered_from_the_table_and_not_executed_again() {
        let (mut kv, mut table) = (Kv::default(), ClientTable::default());
        let w = |v| Command::Write {
            key: "k".into(),
            value: v,
        };
        assert_eq!(table.execute(&mut kv, 7, 1, &w(1)), Some(Outcome::Done));
        kv.execute(&w(5));
        // The retry of request 1 must not set k back to 1.
        assert_eq!(table.execute(&mut kv, 7, 1, &w(1)), Some(Outcome::Done));
        assert_eq!(kv.get("k"), Some(5));
        let read = Command::Read { key: "k".into() };
        assert_eq!(
            table.execute(&mut kv, 7, 2, &read),
            Some(Outcome::Value(Some(5)))
        );
        // A retry older than the client's last request is answered with nothing.
        assert_eq!(table.execute(&mut kv, 7, 1, &w(1)), None);
        assert_eq!(kv.get("k"), Some(5));
    }

    #[test]
    fn log_file_form_of_commands_is_stable() {
        let w = Command::Write {
            key: "k".into(),
            value: 3,
        };
        assert_eq!(
            serde_json::to_string(&w).unwrap(),
            r#"{"op":"write","key":"k","value":3}"#
        );
        assert_eq!(w.text(), "write \"k\" 3");
        let kv = Kv::from_data([("a".to_string(), 1)].into());
        assert_eq!(serde_json::to_string(&kv).unwrap(), r#"{"a":1}"#);
    }
}
