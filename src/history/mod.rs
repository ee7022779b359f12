//! The history: the append-only record of every op of a run.
//!
//! This module owns the [`Op`] type and everything that moves ops in and out of files:
//! the streaming JSONL journal a run writes (`history.jsonl`), its reader, importers for
//! the formats other tools produce (Jepsen/Knossos EDN, Jepsen log lines, Porcupine's kv
//! EDN lines) and an exporter to Jepsen EDN. It does not judge histories; that is
//! [`crate::checker`]'s job.
//!
//! Semantics are Jepsen's: an `invoke` is later completed by `ok` (it happened), `fail`
//! (it certainly did not happen) or `info` (unknown: it may take effect at any time after
//! its invocation, or never). A process is single-threaded: it has at most one op open.

pub mod edn;
mod export;
mod import;
mod journal;
mod jsonl;
mod op;

pub use export::{export_file, write_edn, write_jsonl, EdnWriter, ExportFormat, ExportSummary};
pub use import::{open, open_detect, read_all, Format};
pub use journal::Journal;
pub use jsonl::{HistoryWriter, JsonlReader};
pub use op::{Invocation, OpKind};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::fmt;
use std::path::{Path, PathBuf};

/// A history that cannot be read: which file, which line (1-based; 0 when the problem is
/// the file as a whole) and what rule the input broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryError {
    pub path: PathBuf,
    pub line: usize,
    pub message: String,
}

impl HistoryError {
    pub fn new(path: &Path, line: usize, message: impl Into<String>) -> Self {
        HistoryError {
            path: path.to_path_buf(),
            line,
            message: message.into(),
        }
    }
}

/// `path:line: message`, or `path: message` for whole-file problems, so editors and
/// terminals can jump to the spot.
impl fmt::Display for HistoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.path.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.path.display(), self.line, self.message)
        }
    }
}

impl std::error::Error for HistoryError {}

/// The ops of a history in file order, each with the 1-based source line on which it
/// starts. Streams: nothing but the current op is held. After the first error the stream
/// ends.
pub type OpStream = Box<dyn Iterator<Item = Result<(usize, Op), HistoryError>> + Send>;

/// The `error` of a `fail` cas whose comparison did not match: the op certainly had no
/// effect, *and* it observed that the register did not hold the expected value. Checkers
/// keep such ops as observations instead of dropping them like other `fail`s (Porcupine's
/// reading of Jepsen's etcd logs; our own clients record it the same way).
pub const COMPARE_FAILED: &str = "compare-failed";

/// Who performed an op: a logical single-threaded client, or the nemesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Process {
    /// A client process id. After an `info` the worker continues under a fresh id, so an
    /// id never has two ops open at once.
    Client(u64),
    /// The fault injector; its ops record faults and heals, not client operations.
    Nemesis,
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Process::Client(p) => write!(f, "{p}"),
            Process::Nemesis => f.write_str("nemesis"),
        }
    }
}

impl Serialize for Process {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Process::Client(p) => s.serialize_u64(*p),
            Process::Nemesis => s.serialize_str("nemesis"),
        }
    }
}

impl<'de> Deserialize<'de> for Process {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Process;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative integer process id or \"nemesis\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Process, E> {
                Ok(Process::Client(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Process, E> {
                u64::try_from(v)
                    .map(Process::Client)
                    .map_err(|_| E::custom(format!("process id {v} is negative")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Process, E> {
                if v == "nemesis" {
                    Ok(Process::Nemesis)
                } else {
                    Err(E::custom(format!(
                        "process {v:?} is neither an integer nor \"nemesis\""
                    )))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// The event type of an op: its invocation or one of the three completions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    Invoke,
    /// It happened.
    Ok,
    /// It certainly did not happen.
    Fail,
    /// Unknown whether it happened (timeout, dropped connection, crash).
    Info,
}

impl fmt::Display for OpType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OpType::Invoke => "invoke",
            OpType::Ok => "ok",
            OpType::Fail => "fail",
            OpType::Info => "info",
        })
    }
}

/// One event of a history: one line of `history.jsonl`.
///
/// `value` stays a JSON value because its shape depends on `f` and the workload: an integer
/// for a register write, `[from, to]` for a cas, a string for a kv append, a list of
/// micro-ops for a multi-register txn. Models interpret it; the history only carries it.
/// Unknown fields are ignored on reading so that newer journals stay readable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// Position in the history, stamped at the one journaling point (0, 1, 2 …).
    pub index: u64,
    /// Nanoseconds since the start of the run (monotonic clock of the controller).
    pub time_ns: u64,
    pub process: Process,
    #[serde(rename = "type")]
    pub kind: OpType,
    /// The operation: `read`, `write`, `cas`, `get`, `put`, `append`, `acquire`, … or a
    /// nemesis verb such as `start-partition`.
    pub f: String,
    /// The key the op acts on, for workloads with many independent keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub value: Value,
    /// The node the client spoke to (or, for the nemesis, not used: affected nodes go in
    /// `value`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Why a fail or info happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Op {
    /// Whether this op is a client op (as opposed to a nemesis record).
    pub fn is_client(&self) -> bool {
        matches!(self.process, Process::Client(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn op_round_trips_through_the_documented_json_shape() {
        let line = r#"{"index":0,"time_ns":1234,"process":3,"type":"invoke","f":"write","key":"k1","value":5}"#;
        let op: Op = serde_json::from_str(line).unwrap();
        assert_eq!(op.process, Process::Client(3));
        assert_eq!(op.kind, OpType::Invoke);
        assert_eq!(op.value, json!(5));
        assert_eq!(serde_json::to_string(&op).unwrap(), line);
    }

    #[test]
    fn nemesis_process_is_the_string_nemesis() {
        let op: Op = serde_json::from_str(
            r#"{"index":1,"time_ns":5,"process":"nemesis","type":"info","f":"start-partition","value":["n1"]}"#,
        )
        .unwrap();
        assert_eq!(op.process, Process::Nemesis);
        assert!(!op.is_client());
    }

    #[test]
    fn rejects_an_unknown_process_name() {
        let err = serde_json::from_str::<Op>(
            r#"{"index":1,"time_ns":5,"process":"bob","type":"info","f":"x"}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("bob"), "{err}");
    }
}
