//! The `mutex` model: a lock that is `acquire`d and `release`d, initially free.
//!
//! Acquiring a held lock or releasing a free one is illegal, so a history where two
//! clients both believe they hold the lock cannot be linearized.

use super::{Model, Outcome, RawCall};
use crate::checker::search::Interned;
use crate::checker::value::Values;
use serde_json::Value;

/// A lock (state: held or not).
#[derive(Debug, Clone, Default)]
pub struct Mutex;

/// One lock call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MutexCall {
    Acquire,
    Release,
}

impl Model for Mutex {
    /// Whether the lock is held.
    type State = bool;
    type Call = MutexCall;

    fn name(&self) -> &'static str {
        "mutex"
    }

    fn init(&self) -> bool {
        false
    }

    fn encode(&mut self, call: &RawCall<'_>, _: &mut Values) -> Result<Option<MutexCall>, String> {
        let op = match call.f {
            "acquire" => MutexCall::Acquire,
            "release" => MutexCall::Release,
            f => {
                return Err(format!(
                    "model mutex does not know f {f:?} (it knows acquire, release)"
                ))
            }
        };
        Ok(match call.outcome {
            Outcome::CompareFailed => None,
            _ => Some(op),
        })
    }

    fn step(&self, held: &bool, call: &MutexCall) -> Option<bool> {
        match call {
            MutexCall::Acquire => (!held).then_some(true),
            MutexCall::Release => held.then_some(false),
        }
    }

    fn relax(&self, call: &MutexCall) -> Option<MutexCall> {
        Some(*call)
    }

    fn state_json(&self, held: &bool, _: &Values) -> Value {
        Value::from(if *held { "held" } else { "free" })
    }

    type Steps<'a> = Interned<'a, Mutex>;

    fn steps<'a>(&'a self, calls: &'a [MutexCall]) -> Interned<'a, Mutex> {
        Interned::new(self, calls)
    }

    fn describe(&self, call: &MutexCall, _: &Values) -> String {
        match call {
            MutexCall::Acquire => "acquire".to_string(),
            MutexCall::Release => "release".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_cannot_be_acquired_again() {
        let m = Mutex;
        let held = m.step(&m.init(), &MutexCall::Acquire).unwrap();
        assert_eq!(m.step(&held, &MutexCall::Acquire), None);
        assert_eq!(m.step(&held, &MutexCall::Release), Some(false));
    }

    #[test]
    fn a_free_lock_cannot_be_released() {
        let m = Mutex;
        assert_eq!(m.step(&m.init(), &MutexCall::Release), None);
    }
}
