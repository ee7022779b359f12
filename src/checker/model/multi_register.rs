//! The `multi-register` model (Knossos): named registers read and written together by
//! transactions. A `txn` value is a list of micro-ops `[f, key, value]` with `f` one of
//! `read`/`write` (or `r`/`w`); an `ok` completion carries the values its reads saw.
//!
//! Registers not named in the initial map start as `null`.

use super::{show, Model, Outcome, RawCall};
use crate::checker::search::Interned;
use crate::checker::value::{ValueId, Values};
use rustc_hash::FxHashMap;
use serde_json::Value;

/// Registers addressed by name; names become slots as they are first seen.
#[derive(Debug, Clone, Default)]
pub struct MultiRegister {
    slots: FxHashMap<String, u16>,
    names: Vec<String>,
    init: Vec<ValueId>,
    nil_read_unknown: bool,
}

/// One micro-op of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Micro {
    /// A read of a slot that returned this value (`None`: result unknown).
    Read(u16, Option<ValueId>),
    Write(u16, ValueId),
}

/// A transaction: micro-ops applied in order, atomically.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Txn(Box<[Micro]>);

impl MultiRegister {
    /// Registers starting from `init`, a JSON object (or `null` for all-`null`).
    pub fn new(
        init: &Value,
        nil_read_unknown: bool,
        values: &mut Values,
    ) -> Result<MultiRegister, String> {
        let mut m = MultiRegister {
            nil_read_unknown,
            ..MultiRegister::default()
        };
        match init {
            Value::Null => {}
            Value::Object(map) => {
                for (name, v) in map {
                    let slot = m.slot(name)?;
                    m.init[slot as usize] = values.intern(v);
                }
            }
            other => {
                return Err(format!(
                "multi-register --init must be a JSON object such as {{\"x\":0,\"y\":0}}, got {}",
                show(other)
            ))
            }
        }
        Ok(m)
    }

    fn slot(&mut self, name: &str) -> Result<u16, String> {
        if let Some(s) = self.slots.get(name) {
            return Ok(*s);
        }
        let s = u16::try_from(self.names.len())
            .map_err(|_| "more than 65536 registers in one multi-register history".to_string())?;
        self.slots.insert(name.to_string(), s);
        self.names.push(name.to_string());
        self.init.push(Values::NULL);
        Ok(s)
    }

    fn micro(&mut self, m: &Value, known: bool, values: &mut Values) -> Result<Micro, String> {
        let bad = || {
            format!(
                "txn micro-op must be [\"read\"|\"write\", key, value], got {}",
                show(m)
            )
        };
        let [f, key, v] = m.as_array().map(Vec::as_slice).ok_or_else(bad)? else {
            return Err(bad());
        };
        let name = match key {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return Err(bad()),
        };
        let slot = self.slot(&name)?;
        match f.as_str() {
            Some("read" | "r") => {
                let unknown = !known || (v.is_null() && self.nil_read_unknown);
                Ok(Micro::Read(slot, (!unknown).then(|| values.intern(v))))
            }
            Some("write" | "w") => Ok(Micro::Write(slot, values.intern(v))),
            _ => Err(bad()),
        }
    }
}

impl Model for MultiRegister {
    type State = Box<[ValueId]>;
    type Call = Txn;

    fn name(&self) -> &'static str {
        "multi-register"
    }

    fn init(&self) -> Box<[ValueId]> {
        self.init.clone().into_boxed_slice()
    }

    fn encode(&mut self, call: &RawCall<'_>, values: &mut Values) -> Result<Option<Txn>, String> {
        if call.f != "txn" {
            return Err(format!(
                "model multi-register does not know f {:?} (it knows txn)",
                call.f
            ));
        }
        if call.outcome == Outcome::CompareFailed {
            return Ok(None);
        }
        let known = call.outcome == Outcome::Ok;
        // The ok completion repeats the micro-ops with the reads filled in.
        let value = match call.output {
            Some(v) if known && !v.is_null() => v,
            _ => call.input,
        };
        let micros = value
            .as_array()
            .ok_or_else(|| format!("txn value must be a list of micro-ops, got {}", show(value)))?
            .iter()
            .map(|m| self.micro(m, known, values))
            .collect::<Result<Vec<_>, _>>()?;
        let matters = micros
            .iter()
            .any(|m| matches!(m, Micro::Write(..) | Micro::Read(_, Some(_))));
        Ok(matters.then(|| Txn(micros.into_boxed_slice())))
    }

    fn step(&self, state: &Box<[ValueId]>, call: &Txn) -> Option<Box<[ValueId]>> {
        let mut next: Option<Box<[ValueId]>> = None;
        for m in call.0.iter() {
            let cur = next.as_deref().unwrap_or(state);
            match *m {
                Micro::Read(slot, Some(v)) => {
                    if cur.get(slot as usize).copied().unwrap_or(Values::NULL) != v {
                        return None;
                    }
                }
                Micro::Read(_, None) => {}
                Micro::Write(slot, v) => {
                    let regs = next.get_or_insert_with(|| state.clone());
                    if let Some(r) = regs.get_mut(slot as usize) {
                        *r = v;
                    }
                }
            }
        }
        Some(next.unwrap_or_else(|| state.clone()))
    }

    fn is_read_only(&self, call: &Txn) -> bool {
        call.0.iter().all(|m| matches!(m, Micro::Read(..)))
    }

    fn relax(&self, call: &Txn) -> Option<Txn> {
        let writes: Vec<Micro> = call
            .0
            .iter()
            .map(|m| match *m {
                Micro::Read(slot, _) => Micro::Read(slot, None),
                w => w,
            })
            .collect();
        writes
            .iter()
            .any(|m| matches!(m, Micro::Write(..)))
            .then(|| Txn(writes.into_boxed_slice()))
    }

    fn state_json(&self, state: &Box<[ValueId]>, values: &Values) -> Value {
        let map = state
            .iter()
            .enumerate()
            .map(|(i, v)| {
                (
                    self.names.get(i).cloned().unwrap_or_default(),
                    values.get(*v).clone(),
                )
            })
            .collect();
        Value::Object(map)
    }

    fn state_bytes(&self, state: &Box<[ValueId]>) -> usize {
        16 + state.len() * 4
    }

    type Steps<'a> = Interned<'a, MultiRegister>;

    fn steps<'a>(&'a self, calls: &'a [Txn]) -> Interned<'a, MultiRegister> {
        Interned::new(self, calls)
    }

    fn describe(&self, call: &Txn, values: &Values) -> String {
        let name = |s: u16| {
            self.names
                .get(s as usize)
                .map(String::as_str)
                .unwrap_or("?")
        };
        let parts: Vec<String> = call
            .0
            .iter()
            .map(|m| match *m {
                Micro::Read(s, Some(v)) => format!("read {} → {}", name(s), show(values.get(v))),
                Micro::Read(s, None) => format!("read {} → ?", name(s)),
                Micro::Write(s, v) => format!("write {} {}", name(s), show(values.get(v))),
            })
            .collect();
        format!("txn [{}]", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn txn(m: &mut MultiRegister, v: &mut Values, value: Value, outcome: Outcome) -> Option<Txn> {
        let output = (outcome == Outcome::Ok).then_some(&value);
        m.encode(
            &RawCall {
                f: "txn",
                key: None,
                input: &value,
                output,
                outcome,
            },
            v,
        )
        .unwrap()
    }

    #[test]
    fn a_txn_reads_its_own_writes_and_sees_the_initial_map() {
        let mut v = Values::new();
        let mut m = MultiRegister::new(&json!({"x": 0, "y": 0}), false, &mut v).unwrap();
        let t = txn(
            &mut m,
            &mut v,
            json!([["read", "x", 0], ["write", "y", 2], ["read", "y", 2]]),
            Outcome::Ok,
        )
        .unwrap();
        let s = m.step(&m.init(), &t).unwrap();
        assert_eq!(m.state_json(&s, &v), json!({"x": 0, "y": 2}));
        assert_eq!(
            m.step(&s, &t),
            Some(s.clone()),
            "x is still 0, y becomes 2 again"
        );
        let bad = txn(&mut m, &mut v, json!([["read", "y", 0]]), Outcome::Ok).unwrap();
        assert_eq!(m.step(&s, &bad), None);
    }

    #[test]
    fn an_open_read_only_txn_is_dropped() {
        let mut v = Values::new();
        let mut m = MultiRegister::new(&Value::Null, false, &mut v).unwrap();
        assert_eq!(
            txn(&mut m, &mut v, json!([["read", "x", null]]), Outcome::Info),
            None
        );
    }

    #[test]
    fn rejects_a_non_object_init_and_malformed_micro_ops() {
        let mut v = Values::new();
        assert!(MultiRegister::new(&json!(3), false, &mut v)
            .unwrap_err()
            .contains("JSON object"));
        let mut m = MultiRegister::new(&Value::Null, false, &mut v).unwrap();
        let input = json!([["incr", "x", 1]]);
        let err = m
            .encode(
                &RawCall {
                    f: "txn",
                    key: None,
                    input: &input,
                    output: Some(&input),
                    outcome: Outcome::Ok,
                },
                &mut v,
            )
            .unwrap_err();
        assert!(err.contains("micro-op"), "{err}");
    }
}
