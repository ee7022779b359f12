//! The `register` and `cas-register` models: one value, read and written (and, for
//! `cas-register`, compared-and-set).
//!
//! States are interned values ([`ValueId`]), so a step is a couple of integer compares.

use super::{show, Model, Outcome, RawCall, RegisterEffect};
use crate::checker::search::Transitions;
use crate::checker::value::{ValueId, Values};
use rustc_hash::FxHashSet;
use serde_json::Value;

/// A read/write register, optionally with compare-and-set.
#[derive(Debug, Clone)]
pub struct Register {
    cas: bool,
    init: ValueId,
    nil_read_unknown: bool,
}

/// One register call in compact form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegisterCall {
    /// A read that returned this value.
    Read(ValueId),
    Write(ValueId),
    /// A cas that succeeded (or may have, if open): the register held `from`, now `to`.
    Cas {
        from: ValueId,
        to: ValueId,
    },
    /// A cas whose comparison failed: the register did not hold `from`; nothing changed.
    CasFailed {
        from: ValueId,
    },
}

impl Register {
    /// A `register` (`cas == false`) or `cas-register` starting at `init`.
    pub fn new(cas: bool, init: &Value, nil_read_unknown: bool, values: &mut Values) -> Register {
        Register {
            cas,
            init: values.intern(init),
            nil_read_unknown,
        }
    }
}

impl Model for Register {
    type State = ValueId;
    type Call = RegisterCall;

    fn name(&self) -> &'static str {
        if self.cas {
            "cas-register"
        } else {
            "register"
        }
    }

    fn init(&self) -> ValueId {
        self.init
    }

    fn encode(
        &mut self,
        call: &RawCall<'_>,
        values: &mut Values,
    ) -> Result<Option<RegisterCall>, String> {
        match call.f {
            "read" => match (call.outcome, call.output) {
                (Outcome::Ok, Some(v)) if !(v.is_null() && self.nil_read_unknown) => {
                    Ok(Some(RegisterCall::Read(values.intern(v))))
                }
                (Outcome::Ok, None) if !self.nil_read_unknown => {
                    Ok(Some(RegisterCall::Read(Values::NULL)))
                }
                // An unknown result constrains nothing and a read changes nothing.
                _ => Ok(None),
            },
            "write" => match call.outcome {
                Outcome::CompareFailed => Ok(None),
                _ => Ok(Some(RegisterCall::Write(values.intern(call.input)))),
            },
            "cas" if self.cas => {
                let (from, to) = match call.input.as_array().map(Vec::as_slice) {
                    Some([from, to]) => (values.intern(from), values.intern(to)),
                    _ => {
                        return Err(format!(
                            "cas value must be [from, to], got {}",
                            show(call.input)
                        ))
                    }
                };
                Ok(Some(match call.outcome {
                    Outcome::CompareFailed => RegisterCall::CasFailed { from },
                    _ => RegisterCall::Cas { from, to },
                }))
            }
            "cas" => Err("model register has no cas (use --model cas-register)".to_string()),
            f => Err(format!(
                "model {} does not know f {f:?} (it knows read, write{})",
                self.name(),
                if self.cas { ", cas" } else { "" }
            )),
        }
    }

    fn step(&self, state: &ValueId, call: &RegisterCall) -> Option<ValueId> {
        step(*state, *call)
    }

    fn is_read_only(&self, call: &RegisterCall) -> bool {
        read_only(*call)
    }

    fn register_init(&self) -> Option<ValueId> {
        Some(self.init)
    }

    fn register_effect(&self, call: &RegisterCall) -> Option<RegisterEffect> {
        match *call {
            RegisterCall::Read(v) => Some(RegisterEffect::Read(v)),
            RegisterCall::Write(v) | RegisterCall::Cas { to: v, .. } => {
                Some(RegisterEffect::Set(v))
            }
            RegisterCall::CasFailed { .. } => None,
        }
    }

    /// A register's step compares the state only with the values reads returned and cas
    /// calls expected. Every other value (written, say, by a crashed write that no read
    /// saw, or overwritten before any read) behaves the same in every call, so all of them
    /// become one: the initial value if it is among them, else the first such one written.
    /// Crashed writes of such values then become equal calls, which the search tries once.
    fn merge_unobserved(&self, calls: &[RegisterCall]) -> Option<Vec<RegisterCall>> {
        let mut observed: FxHashSet<ValueId> = FxHashSet::default();
        for call in calls {
            match *call {
                RegisterCall::Read(v)
                | RegisterCall::Cas { from: v, .. }
                | RegisterCall::CasFailed { from: v } => {
                    observed.insert(v);
                }
                RegisterCall::Write(_) => {}
            }
        }
        let unobserved = |v: &ValueId| !observed.contains(v);
        let written = calls.iter().filter_map(|call| match *call {
            RegisterCall::Write(v) | RegisterCall::Cas { to: v, .. } => Some(v),
            _ => None,
        });
        let one = std::iter::once(self.init).chain(written).find(unobserved)?;
        let merge = |v: ValueId| if unobserved(&v) { one } else { v };
        let mut changed = false;
        let merged = calls
            .iter()
            .map(|call| {
                let m = match *call {
                    RegisterCall::Write(v) => RegisterCall::Write(merge(v)),
                    RegisterCall::Cas { from, to } => RegisterCall::Cas {
                        from,
                        to: merge(to),
                    },
                    other => other,
                };
                changed |= m != *call;
                m
            })
            .collect();
        changed.then_some(merged)
    }

    fn relax(&self, call: &RegisterCall) -> Option<RegisterCall> {
        match call {
            RegisterCall::Read(_) | RegisterCall::CasFailed { .. } => None,
            RegisterCall::Write(_) | RegisterCall::Cas { .. } => Some(*call),
        }
    }

    fn state_json(&self, state: &ValueId, values: &Values) -> Value {
        values.get(*state).clone()
    }

    type Steps<'a> = RegisterSteps<'a>;

    fn steps<'a>(&'a self, calls: &'a [RegisterCall]) -> RegisterSteps<'a> {
        let observed: FxHashSet<ValueId> = calls.iter().filter_map(|&c| observes(c)).collect();
        let written = calls.iter().filter_map(|call| match *call {
            RegisterCall::Write(v) | RegisterCall::Cas { to: v, .. } => Some(v),
            _ => None,
        });
        let dead = std::iter::once(self.init)
            .chain(written)
            .find(|v| !observed.contains(v));
        RegisterSteps {
            init: self.init,
            calls,
            dead,
        }
    }

    fn describe(&self, call: &RegisterCall, values: &Values) -> String {
        let v = |id: &ValueId| show(values.get(*id));
        match call {
            RegisterCall::Read(x) => format!("read → {}", v(x)),
            RegisterCall::Write(x) => format!("write {}", v(x)),
            RegisterCall::Cas { from, to } => format!("cas {} → {}", v(from), v(to)),
            RegisterCall::CasFailed { from } => {
                format!("cas from {} (compare failed)", v(from))
            }
        }
    }
}

/// Register states are interned values already: the search steps them directly, with no
/// state table.
pub struct RegisterSteps<'a> {
    init: ValueId,
    calls: &'a [RegisterCall],
    /// A value no call observes (see [`Transitions::dead`]).
    dead: Option<ValueId>,
}

impl Transitions for RegisterSteps<'_> {
    type State = ValueId;

    fn init(&mut self) -> u32 {
        self.init.0
    }

    #[inline]
    fn step(&mut self, state: u32, call: u32) -> Option<u32> {
        let call = *self.calls.get(call as usize)?;
        step(ValueId(state), call).map(|v| v.0)
    }

    fn state(&self, id: u32) -> Option<ValueId> {
        Some(ValueId(id))
    }

    fn heap_bytes(&self) -> usize {
        0
    }

    fn read_only(&self, call: u32) -> bool {
        self.calls.get(call as usize).is_some_and(|c| read_only(*c))
    }

    fn blind(&self, call: u32) -> bool {
        matches!(self.calls.get(call as usize), Some(RegisterCall::Write(_)))
    }

    fn observes(&self, call: u32) -> Option<u32> {
        self.calls
            .get(call as usize)
            .and_then(|&c| observes(c))
            .map(|v| v.0)
    }

    fn dead(&self) -> Option<u32> {
        self.dead.map(|v| v.0)
    }

    /// A register's value changes only by a write or a successful cas, to the value it
    /// names; a read and a cas need one value.
    fn flow(&self) -> bool {
        true
    }

    fn requires(&self, call: u32) -> Option<u32> {
        match self.calls.get(call as usize)? {
            RegisterCall::Read(v) | RegisterCall::Cas { from: v, .. } => Some(v.0),
            RegisterCall::Write(_) | RegisterCall::CasFailed { .. } => None,
        }
    }

    fn produces(&self, call: u32) -> Option<u32> {
        match self.calls.get(call as usize)? {
            RegisterCall::Write(v) | RegisterCall::Cas { to: v, .. } => Some(v.0),
            RegisterCall::Read(_) | RegisterCall::CasFailed { .. } => None,
        }
    }
}

/// The value a call tells apart from every other: [`step`] treats all the values a call
/// does not observe alike (illegal, to the same value, or unchanged for a compare-failed
/// cas), which is what [`Transitions::dead`] asks of the dead value.
fn observes(call: RegisterCall) -> Option<ValueId> {
    match call {
        RegisterCall::Read(v)
        | RegisterCall::Cas { from: v, .. }
        | RegisterCall::CasFailed { from: v } => Some(v),
        RegisterCall::Write(_) => None,
    }
}

fn read_only(call: RegisterCall) -> bool {
    match call {
        RegisterCall::Read(_) | RegisterCall::CasFailed { .. } => true,
        RegisterCall::Cas { from, to } => from == to,
        RegisterCall::Write(_) => false,
    }
}

/// The register's transition, on interned values. Kept free so the search can call it
/// without going through a state table.
#[inline]
pub fn step(state: ValueId, call: RegisterCall) -> Option<ValueId> {
    match call {
        RegisterCall::Read(v) => (state == v).then_some(state),
        RegisterCall::Write(v) => Some(v),
        RegisterCall::Cas { from, to } => (state == from).then_some(to),
        RegisterCall::CasFailed { from } => (state != from).then_some(state),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn encode(
        m: &mut Register,
        v: &mut Values,
        f: &str,
        input: Value,
        out: Option<Value>,
        outcome: Outcome,
    ) -> Result<Option<RegisterCall>, String> {
        m.encode(
            &RawCall {
                f,
                key: None,
                input: &input,
                output: out.as_ref(),
                outcome,
            },
            v,
        )
    }

    #[test]
    fn cas_succeeds_only_from_the_expected_value() {
        let mut v = Values::new();
        let mut m = Register::new(true, &json!(1), false, &mut v);
        let cas = encode(&mut m, &mut v, "cas", json!([1, 2]), None, Outcome::Ok)
            .unwrap()
            .unwrap();
        let two = m.step(&m.init(), &cas).unwrap();
        assert_eq!(v.get(two), &json!(2));
        assert_eq!(m.step(&two, &cas), None);
    }

    #[test]
    fn compare_failed_cas_is_legal_only_when_the_register_differs() {
        let mut v = Values::new();
        let mut m = Register::new(true, &json!(1), false, &mut v);
        let failed = encode(
            &mut m,
            &mut v,
            "cas",
            json!([1, 2]),
            None,
            Outcome::CompareFailed,
        )
        .unwrap()
        .unwrap();
        assert_eq!(m.step(&m.init(), &failed), None);
        let three = v.intern(&json!(3));
        assert_eq!(m.step(&three, &failed), Some(three));
    }

    #[test]
    fn nil_read_is_a_wildcard_only_under_the_knossos_rule() {
        let mut v = Values::new();
        let mut strict = Register::new(true, &json!(0), false, &mut v);
        let read = encode(
            &mut strict,
            &mut v,
            "read",
            Value::Null,
            Some(Value::Null),
            Outcome::Ok,
        )
        .unwrap();
        assert_eq!(read, Some(RegisterCall::Read(Values::NULL)));
        let mut knossos = Register::new(true, &json!(0), true, &mut v);
        let read = encode(
            &mut knossos,
            &mut v,
            "read",
            Value::Null,
            Some(Value::Null),
            Outcome::Ok,
        )
        .unwrap();
        assert_eq!(read, None);
    }

    #[test]
    fn reads_with_unknown_results_are_dropped() {
        let mut v = Values::new();
        let mut m = Register::new(false, &Value::Null, false, &mut v);
        assert_eq!(
            encode(&mut m, &mut v, "read", Value::Null, None, Outcome::Info).unwrap(),
            None
        );
    }

    #[test]
    fn rejects_cas_on_a_plain_register_and_unknown_fs() {
        let mut v = Values::new();
        let mut m = Register::new(false, &Value::Null, false, &mut v);
        let err = encode(&mut m, &mut v, "cas", json!([1, 2]), None, Outcome::Ok).unwrap_err();
        assert!(err.contains("cas-register"), "{err}");
        let err = encode(&mut m, &mut v, "incr", json!(1), None, Outcome::Ok).unwrap_err();
        assert!(err.contains("\"incr\""), "{err}");
    }

    #[test]
    fn calls_step_alike_from_values_they_do_not_observe() {
        // The contract of `Transitions::dead`: the search maps a value no unplaced call
        // observes to the dead one, which is only sound if no call can tell them apart.
        let mut v = Values::new();
        let ids = [0, 1, 2, 3].map(|i| v.intern(&json!(i)));
        use RegisterCall::*;
        for &a in &ids {
            for &b in &ids {
                let calls = [
                    Read(a),
                    Write(a),
                    Cas { from: a, to: b },
                    CasFailed { from: a },
                ];
                for call in calls {
                    let unobserved: Vec<ValueId> = ids
                        .iter()
                        .copied()
                        .filter(|&x| observes(call) != Some(x))
                        .collect();
                    for &x in &unobserved {
                        for &y in &unobserved {
                            let (sx, sy) = (step(x, call), step(y, call));
                            let alike =
                                sx == sy || (read_only(call) && sx == Some(x) && sy == Some(y));
                            assert!(alike, "{call:?} from {x:?} and {y:?}: {sx:?}, {sy:?}");
                        }
                    }
                }
            }
        }
        // The dead value is one nothing observes: here 3, only written.
        let calls = [
            Read(ids[0]),
            Write(ids[3]),
            CasFailed { from: ids[1] },
            Cas {
                from: ids[2],
                to: ids[0],
            },
        ];
        let reg = Register::new(true, &json!(0), false, &mut v);
        assert_eq!(reg.steps(&calls).dead(), Some(ids[3].0));
    }

    fn merged(init: i64, calls: &[RegisterCall], v: &mut Values) -> Option<Vec<RegisterCall>> {
        Register::new(true, &json!(init), false, v).merge_unobserved(calls)
    }

    #[test]
    fn values_no_call_observes_merge_into_the_initial_one() {
        let mut v = Values::new();
        let [zero, one, two, three] = [0, 1, 2, 3].map(|i| v.intern(&json!(i)));
        use RegisterCall::*;
        // 1 is read, 2 expected by a cas; 3 only written: it merges into the initial 0,
        // which nothing observes either.
        let calls = [
            Write(one),
            Read(one),
            Write(three),
            Cas {
                from: two,
                to: three,
            },
            Write(two),
        ];
        assert_eq!(
            merged(0, &calls, &mut v),
            Some(vec![
                Write(one),
                Read(one),
                Write(zero),
                Cas {
                    from: two,
                    to: zero
                },
                Write(two),
            ])
        );
    }

    #[test]
    fn a_read_or_a_compare_failed_cas_keeps_a_value_apart() {
        let mut v = Values::new();
        let [one, two] = [1, 2].map(|i| v.intern(&json!(i)));
        use RegisterCall::*;
        // A crashed write of 1 whose value is read later: 1 stays itself; so does 2, which
        // a compare-failed cas observed; the initial 0 is read.
        let zero = v.intern(&json!(0));
        let calls = [
            Write(one),
            Write(two),
            Read(one),
            CasFailed { from: two },
            Read(zero),
        ];
        assert_eq!(merged(0, &calls, &mut v), None);
    }

    #[test]
    fn without_an_unobserved_initial_value_the_first_unobserved_write_is_kept() {
        let mut v = Values::new();
        let [zero, five, six] = [0, 5, 6].map(|i| v.intern(&json!(i)));
        use RegisterCall::*;
        let calls = [
            Read(zero),
            Write(five),
            Write(six),
            Cas {
                from: zero,
                to: six,
            },
        ];
        assert_eq!(
            merged(0, &calls, &mut v),
            Some(vec![
                Read(zero),
                Write(five),
                Write(five),
                Cas {
                    from: zero,
                    to: five
                }
            ])
        );
    }

    #[test]
    fn rejects_a_malformed_cas_value() {
        let mut v = Values::new();
        let mut m = Register::new(true, &Value::Null, false, &mut v);
        let err = encode(&mut m, &mut v, "cas", json!(3), None, Outcome::Ok).unwrap_err();
        assert!(err.contains("[from, to]"), "{err}");
    }
}
