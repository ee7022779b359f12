//! The `kv` model: a map from keys to strings with `get`, `put` and `append`; every key
//! starts as `""` (Porcupine's kv workload).
//!
//! Histories are normally partitioned by key before the search, so a state usually holds
//! one key; the state is a whole (sparse) map so the same model also checks a history
//! unpartitioned.

use super::{show, Model, Outcome, RawCall};
use crate::checker::search::Interned;
use crate::checker::value::Values;
use rustc_hash::FxHashMap;
use serde_json::Value;
use std::sync::Arc;

/// A string map. Keys are numbered as they are first seen.
#[derive(Debug, Clone, Default)]
pub struct Kv {
    key_ids: FxHashMap<String, u32>,
    key_names: Vec<String>,
}

/// The map: `(key, value)` sorted by key, empty values omitted so that equal maps are
/// equal vectors.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct KvState(Vec<(u32, Arc<str>)>);

impl KvState {
    fn get(&self, key: u32) -> &str {
        match self.0.binary_search_by_key(&key, |e| e.0) {
            Ok(i) => &self.0[i].1,
            Err(_) => "",
        }
    }

    fn set(&self, key: u32, value: Arc<str>) -> KvState {
        let mut next = self.0.clone();
        match next.binary_search_by_key(&key, |e| e.0) {
            Ok(i) if value.is_empty() => {
                next.remove(i);
            }
            Ok(i) => next[i].1 = value,
            Err(_) if value.is_empty() => {}
            Err(i) => next.insert(i, (key, value)),
        }
        KvState(next)
    }
}

/// One kv call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KvCall {
    key: u32,
    op: KvOp,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum KvOp {
    /// A get that returned this string.
    Get(Arc<str>),
    Put(Arc<str>),
    Append(Arc<str>),
}

/// A kv value as text: strings as they are, numbers and booleans in their JSON form,
/// `null` as `""` (a missing key).
fn text(value: &Value, what: &str) -> Result<Arc<str>, String> {
    match value {
        Value::String(s) => Ok(Arc::from(s.as_str())),
        Value::Null => Ok(Arc::from("")),
        Value::Number(_) | Value::Bool(_) => Ok(Arc::from(value.to_string())),
        _ => Err(format!(
            "kv {what} value must be a string, got {}",
            show(value)
        )),
    }
}

impl Kv {
    fn key_id(&mut self, key: &str) -> u32 {
        if let Some(id) = self.key_ids.get(key) {
            return *id;
        }
        let id = self.key_names.len() as u32;
        self.key_ids.insert(key.to_string(), id);
        self.key_names.push(key.to_string());
        id
    }
}

impl Model for Kv {
    type State = KvState;
    type Call = KvCall;

    fn name(&self) -> &'static str {
        "kv"
    }

    fn init(&self) -> KvState {
        KvState::default()
    }

    fn encode(&mut self, call: &RawCall<'_>, _: &mut Values) -> Result<Option<KvCall>, String> {
        let key = match call.key {
            Some(k) => self.key_id(k),
            None => return Err(format!("kv op {:?} has no key", call.f)),
        };
        let op = match (call.f, call.outcome) {
            (_, Outcome::CompareFailed) => return Ok(None),
            ("get", Outcome::Ok) => KvOp::Get(text(call.output.unwrap_or(&Value::Null), "get")?),
            ("get", _) => return Ok(None),
            ("put", _) => KvOp::Put(text(call.input, "put")?),
            ("append", _) => KvOp::Append(text(call.input, "append")?),
            (f, _) => {
                return Err(format!(
                    "model kv does not know f {f:?} (it knows get, put, append)"
                ))
            }
        };
        Ok(Some(KvCall { key, op }))
    }

    fn step(&self, state: &KvState, call: &KvCall) -> Option<KvState> {
        match &call.op {
            KvOp::Get(v) => (state.get(call.key) == &**v).then(|| state.clone()),
            KvOp::Put(v) => Some(state.set(call.key, v.clone())),
            KvOp::Append(v) if v.is_empty() => Some(state.clone()),
            KvOp::Append(v) => {
                let joined = format!("{}{}", state.get(call.key), v);
                Some(state.set(call.key, Arc::from(joined)))
            }
        }
    }

    fn relax(&self, call: &KvCall) -> Option<KvCall> {
        match call.op {
            KvOp::Get(_) => None,
            _ => Some(call.clone()),
        }
    }

    fn state_json(&self, state: &KvState, _: &Values) -> Value {
        if let [(_, v)] = state.0.as_slice() {
            return Value::from(&**v);
        }
        if state.0.is_empty() {
            return Value::from("");
        }
        let map = state
            .0
            .iter()
            .map(|(k, v)| {
                let name = self.key_names.get(*k as usize).cloned().unwrap_or_default();
                (name, Value::from(&**v))
            })
            .collect();
        Value::Object(map)
    }

    fn state_bytes(&self, state: &KvState) -> usize {
        // Values are shared `Arc<str>`s; count them in full anyway, as a state usually
        // holds the only reference to a freshly appended string.
        std::mem::size_of::<KvState>() + state.0.iter().map(|(_, v)| 40 + v.len()).sum::<usize>()
    }

    type Steps<'a> = Interned<'a, Kv>;

    fn steps<'a>(&'a self, calls: &'a [KvCall]) -> Interned<'a, Kv> {
        Interned::new(self, calls)
    }

    fn describe(&self, call: &KvCall, _: &Values) -> String {
        let key = self
            .key_names
            .get(call.key as usize)
            .map(String::as_str)
            .unwrap_or("?");
        match &call.op {
            KvOp::Get(v) => format!("get {key:?} → {v:?}"),
            KvOp::Put(v) => format!("put {key:?} {v:?}"),
            KvOp::Append(v) => format!("append {key:?} {v:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(m: &mut Kv, f: &str, key: &str, input: Value, output: Option<Value>) -> KvCall {
        let mut v = Values::new();
        m.encode(
            &RawCall {
                f,
                key: Some(key),
                input: &input,
                output: output.as_ref(),
                outcome: Outcome::Ok,
            },
            &mut v,
        )
        .unwrap()
        .unwrap()
    }

    #[test]
    fn append_concatenates_and_get_sees_the_whole_string() {
        let mut m = Kv::default();
        let a = call(&mut m, "append", "k", json!("x"), None);
        let b = call(&mut m, "append", "k", json!("y"), None);
        let get = call(&mut m, "get", "k", Value::Null, Some(json!("xy")));
        let s = m.step(&m.init(), &a).unwrap();
        let s = m.step(&s, &b).unwrap();
        assert!(m.step(&s, &get).is_some());
        assert!(m.step(&m.init(), &get).is_none());
    }

    #[test]
    fn keys_start_empty_and_are_independent() {
        let mut m = Kv::default();
        let put = call(&mut m, "put", "a", json!("1"), None);
        let get_b = call(&mut m, "get", "b", Value::Null, Some(json!("")));
        let s = m.step(&m.init(), &put).unwrap();
        assert!(m.step(&s, &get_b).is_some());
        assert_eq!(m.state_json(&s, &Values::new()), json!("1"));
    }

    #[test]
    fn putting_the_empty_string_equals_the_initial_state() {
        let mut m = Kv::default();
        let put = call(&mut m, "put", "a", json!("1"), None);
        let clear = call(&mut m, "put", "a", json!(""), None);
        let s = m.step(&m.init(), &put).unwrap();
        assert_eq!(m.step(&s, &clear), Some(m.init()));
    }

    #[test]
    fn rejects_an_op_without_a_key() {
        let mut m = Kv::default();
        let err = m
            .encode(
                &RawCall {
                    f: "get",
                    key: None,
                    input: &Value::Null,
                    output: None,
                    outcome: Outcome::Ok,
                },
                &mut Values::new(),
            )
            .unwrap_err();
        assert!(err.contains("no key"), "{err}");
    }
}
