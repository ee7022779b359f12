//! The replicated state machine: a map from string keys to `i64` values.
//!
//! This module owns the commands that travel through the Raft log ([`Command`]), what
//! applying one does ([`Kv::apply`]) and the snapshot form of the whole state
//! ([`KvData`]). It knows nothing about Raft, clients or disks.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The whole state, as stored in snapshots and shipped in InstallSnapshot. A `BTreeMap`
/// so that a snapshot serializes the same way every time (diffable, deterministic tests).
pub type KvData = BTreeMap<String, i64>;

/// A state-changing client operation, replicated through the log. Reads are not commands:
/// they are served by ReadIndex without writing the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Command {
    /// Set `key` to `value` unconditionally.
    Write { key: String, value: i64 },
    /// Set `key` to `to` only if it currently holds `from`.
    Cas { key: String, from: i64, to: i64 },
}

/// What applying a command did, reported back to the client that proposed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The write or cas took effect.
    Done,
    /// The cas compared against `current` (None: never written) and changed nothing.
    CompareFailed { current: Option<i64> },
}

/// The state machine itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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

    /// Applies one committed command.
    pub fn apply(&mut self, cmd: &Command) -> Outcome {
        match cmd {
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

    /// A copy of the whole state, for a snapshot.
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
        assert_eq!(kv.apply(&cas), Outcome::CompareFailed { current: None });
        kv.apply(&Command::Write {
            key: "k".into(),
            value: 1,
        });
        assert_eq!(kv.apply(&cas), Outcome::Done);
        assert_eq!(kv.get("k"), Some(2));
        assert_eq!(kv.apply(&cas), Outcome::CompareFailed { current: Some(2) });
    }
}
