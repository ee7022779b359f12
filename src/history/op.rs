//! The op vocabulary clients, generators and specs share: which operations exist and one
//! operation as a worker invokes it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Client operations a workload can mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    Read,
    Write,
    Cas,
}

impl OpKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Read => "read",
            OpKind::Write => "write",
            OpKind::Cas => "cas",
        }
    }
}

/// One operation a worker performs.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub f: OpKind,
    pub key: String,
    /// write: the value; cas: `[from, to]`; read: null.
    pub value: Value,
}
