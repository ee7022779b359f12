//! The names of the models a workload or `faultline check --model` can choose; the
//! models themselves are the checker's.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The closed set of models `faultline check --model` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// A single register: `read`, `write`.
    Register,
    /// A register with compare-and-set: `read`, `write`, `cas` (`[from, to]`).
    CasRegister,
    /// Several registers updated by transactions: `txn` of `[f, key, value]` micro-ops.
    MultiRegister,
    /// A lock: `acquire`, `release`.
    Mutex,
    /// A string map, partitioned by key: `get`, `put`, `append`; every key starts as `""`.
    Kv,
}

impl ModelKind {
    pub const ALL: [ModelKind; 5] = [
        ModelKind::Register,
        ModelKind::CasRegister,
        ModelKind::MultiRegister,
        ModelKind::Mutex,
        ModelKind::Kv,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Register => "register",
            ModelKind::CasRegister => "cas-register",
            ModelKind::MultiRegister => "multi-register",
            ModelKind::Mutex => "mutex",
            ModelKind::Kv => "kv",
        }
    }

    /// One line for `--help`.
    pub fn summary(self) -> &'static str {
        match self {
            ModelKind::Register => "read/write register (init --init, default null)",
            ModelKind::CasRegister => {
                "read/write/cas register, cas value [from, to] (init --init, default null)"
            }
            ModelKind::MultiRegister => {
                "txn of [read|write, key, value] micro-ops over named registers (--init map)"
            }
            ModelKind::Mutex => "acquire/release lock, initially free",
            ModelKind::Kv => "get/put/append string map, partitioned by key, keys start \"\"",
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ModelKind {
    type Err = String;
    fn from_str(s: &str) -> Result<ModelKind, String> {
        ModelKind::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = ModelKind::ALL.iter().map(|m| m.name()).collect();
                format!("unknown model {s:?} (models: {})", names.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_round_trip() {
        for kind in ModelKind::ALL {
            assert_eq!(kind.name().parse::<ModelKind>(), Ok(kind));
        }
    }

    #[test]
    fn rejects_an_unknown_model_name_listing_the_known_ones() {
        let err = "queue".parse::<ModelKind>().unwrap_err();
        assert!(
            err.contains("queue") && err.contains("cas-register"),
            "{err}"
        );
    }
}
