//! Sequential models: the specifications a linearizability search replays.
//!
//! A model is pure: [`Model::step`] takes a state and a call and returns the next state,
//! or `None` when the call could not have returned what it returned in that state. The
//! search owns backtracking; models own only the meaning of `f` and `value`.
//!
//! Before a search, [`Model::encode`] turns each paired call of the history into the
//! model's compact form (values interned to integers, keys to slots) — that is also where
//! ops a model does not understand are rejected, with a message the caller prefixes with
//! file and line. The closed set of models the CLI offers is [`ModelKind`]; each lives in
//! its own file.

pub mod kv;
pub mod multi_register;
pub mod mutex;
pub mod register;

pub use kv::Kv;
pub use multi_register::MultiRegister;
pub use mutex::Mutex;
pub use register::Register;

use super::search::Transitions;
use super::value::Values;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::hash::Hash;

/// How a call ended, as far as a checker is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Completed `ok`: it happened, between its invocation and its completion.
    Ok,
    /// A `fail` cas whose comparison did not match: no effect, but it observed that the
    /// register did not hold the expected value.
    CompareFailed,
    /// Completed `info`: it may have happened at any time after its invocation, or never.
    Info,
    /// Never completed before the history ended: the same as `info`.
    Pending,
}

impl Outcome {
    /// Whether the call has a completion that bounds when it could have taken effect.
    pub fn is_completed(self) -> bool {
        matches!(self, Outcome::Ok | Outcome::CompareFailed)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Ok => "ok",
            Outcome::CompareFailed => "compare-failed",
            Outcome::Info => "info",
            Outcome::Pending => "pending",
        })
    }
}

/// One paired call as the history recorded it, before a model encodes it.
#[derive(Debug, Clone, Copy)]
pub struct RawCall<'a> {
    pub f: &'a str,
    pub key: Option<&'a str>,
    /// The value of the invocation (a write's value, a cas's `[from, to]`, a txn's
    /// micro-ops with unknown reads).
    pub input: &'a Value,
    /// The value of the `ok` completion (a read's result, a txn with its reads filled);
    /// `None` unless the outcome is [`Outcome::Ok`].
    pub output: Option<&'a Value>,
    pub outcome: Outcome,
}

/// A sequential specification.
///
/// `Call` equality must mean "interchangeable": two open (info) calls that compare equal
/// are treated as the same operation by the search, which tries only the earliest of them.
pub trait Model: Send + Sync {
    type State: Clone + Eq + Hash + Send + fmt::Debug;
    type Call: Clone + Eq + Hash + Send + Sync + fmt::Debug;

    /// The name the CLI and reports use (`cas-register`, `kv`, …).
    fn name(&self) -> &'static str;

    /// The state before any call.
    fn init(&self) -> Self::State;

    /// The compact form of `call`, `Ok(None)` when the call neither changes the state nor
    /// constrains it (a read whose result is unknown, a failed write), or an error naming
    /// the rule the call breaks (an `f` this model does not know, a malformed value).
    fn encode(
        &mut self,
        call: &RawCall<'_>,
        values: &mut Values,
    ) -> Result<Option<Self::Call>, String>;

    /// The state after `call` in `state`, or `None` if `call` could not have happened
    /// with the result it reported.
    fn step(&self, state: &Self::State, call: &Self::Call) -> Option<Self::State>;

    /// `call` with its result forgotten, as if it had completed `info`; `None` when what
    /// remains has no effect. Used to shrink counterexamples soundly: relaxing calls only
    /// adds linearizations, so a relaxed history that is still not linearizable proves
    /// the original is not either.
    fn relax(&self, call: &Self::Call) -> Option<Self::Call>;

    /// A state as JSON, for reports.
    fn state_json(&self, state: &Self::State, values: &Values) -> Value;

    /// A short human rendering of a call: `write 3`, `read → 3`, `cas 1 → 2`.
    fn describe(&self, call: &Self::Call, values: &Values) -> String;

    /// Whether `call` leaves every state unchanged (a read). Such calls are placed
    /// greedily by the search; `false` is always safe.
    fn is_read_only(&self, _call: &Self::Call) -> bool {
        false
    }

    /// `calls` with the values no call can tell apart merged into one, or `None` when
    /// nothing merges (the default). The search then meets fewer distinct states and more
    /// equal calls (which it deduplicates). Must keep every verdict: each merged call must
    /// step from each merged state exactly as the original steps from the original, up to
    /// the merge, and the initial state must map to itself.
    fn merge_unobserved(&self, _calls: &[Self::Call]) -> Option<Vec<Self::Call>> {
        None
    }

    /// What `call` did to a single register, for naming anomalies in reports: `None`
    /// (the default) for calls that neither read nor set one value, and for every call of
    /// a model that is not one register.
    fn register_effect(&self, _call: &Self::Call) -> Option<RegisterEffect> {
        None
    }

    /// The register's value before any call, for models that are one register (see
    /// [`Model::register_effect`]).
    fn register_init(&self) -> Option<super::value::ValueId> {
        None
    }

    /// Heap and inline bytes of a state, for the memory budget.
    fn state_bytes(&self, _state: &Self::State) -> usize {
        std::mem::size_of::<Self::State>()
    }

    /// How the search steps this model over one key's calls: normally
    /// [`Interned`](crate::checker::search::Interned); models whose states are already
    /// small integers step them directly.
    type Steps<'a>: Transitions<State = Self::State>
    where
        Self: 'a;

    fn steps<'a>(&'a self, calls: &'a [Self::Call]) -> Self::Steps<'a>;
}

pub use crate::spec::model::ModelKind;

/// A call's effect on a single register ([`Model::register_effect`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterEffect {
    /// A read that returned this value.
    Read(super::value::ValueId),
    /// A write or compare-and-set that (may have) put this value in the register.
    Set(super::value::ValueId),
}

/// A model with its parameters, as chosen on the command line or by a test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    pub kind: ModelKind,
    /// Initial value (registers) or initial map (multi-register); `null` = the model's
    /// default. Ignored by `mutex` and `kv`.
    pub init: Value,
    /// Knossos' rule: a completed read of `null` is always legal (the client could not
    /// tell what it read). Applies to the register models.
    pub nil_read_unknown: bool,
}

impl ModelSpec {
    pub fn new(kind: ModelKind) -> ModelSpec {
        ModelSpec {
            kind,
            init: Value::Null,
            nil_read_unknown: false,
        }
    }

    pub fn with_init(mut self, init: Value) -> ModelSpec {
        self.init = init;
        self
    }

    pub fn with_nil_read_unknown(mut self, on: bool) -> ModelSpec {
        self.nil_read_unknown = on;
        self
    }
}

impl fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if !self.init.is_null() {
            write!(f, " init {}", self.init)?;
        }
        if self.nil_read_unknown {
            f.write_str(" (null reads are unknown)")?;
        }
        Ok(())
    }
}

/// Render a value the way Jepsen users read it: strings quoted, everything else as JSON.
pub(crate) fn show(value: &Value) -> String {
    value.to_string()
}
