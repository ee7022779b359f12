//! The `kv` model: a map from keys to strings with `get`, `put` and `append`; every key
//! starts as `""` (Porcupine's kv workload).
//!
//! Histories are normally partitioned by key before the search, so a state usually holds
//! one key; the state is a whole (sparse) map so the same model also checks a history
//! unpartitioned.

use super::{show, Model, Outcome, RawCall};
use crate::checker::search::Transitions;
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

    fn is_read_only(&self, call: &KvCall) -> bool {
        matches!(call.op, KvOp::Get(_))
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

    type Steps<'a> = KvSteps<'a>;

    fn steps<'a>(&'a self, calls: &'a [KvCall]) -> KvSteps<'a> {
        KvSteps::new(calls)
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

/// The search's view of kv: strings interned to integers in one byte arena.
///
/// A kv state is a map of strings, and an `append` makes a new string: done naively,
/// every step would allocate, hash and free a state. Here every distinct string is
/// stored once in an arena (the `put` and `get` values up front), so equal strings have
/// equal ids and a `get` is an integer compare. A new string is built in a scratch
/// buffer and added only if it was never seen. On one key (the usual, partitioned case)
/// a state *is* a string id; over several keys a state is an interned list of
/// `(key, string id)`.
pub struct KvSteps<'a> {
    calls: &'a [KvCall],
    /// String id of each call's value (`get` result, `put`/`append` argument).
    arg: Vec<u32>,
    strings: Strings,
    /// The key every call is on, when there is only one: states are then string ids.
    single_key: Option<u32>,
    /// Over several keys: state id → its sorted `(key, string id)` entries.
    maps: Vec<Box<[(u32, u32)]>>,
    map_ids: FxHashMap<Box<[(u32, u32)]>, u32>,
    scratch: Vec<u8>,
    entries: Vec<(u32, u32)>,
}

/// Distinct strings, back to back in one buffer, found by content through a table of ids.
#[derive(Default)]
struct Strings {
    bytes: Vec<u8>,
    spans: Vec<(usize, usize)>,
    hashes: Vec<u64>,
    table: hashbrown::HashTable<u32>,
}

impl Strings {
    fn get(&self, id: u32) -> &[u8] {
        let (start, len) = self.spans[id as usize];
        &self.bytes[start..start + len]
    }

    fn intern(&mut self, text: &[u8]) -> u32 {
        let hash = std::hash::BuildHasher::hash_one(&rustc_hash::FxBuildHasher, text);
        let Strings {
            bytes,
            spans,
            hashes,
            table,
        } = self;
        let entry = table.entry(
            hash,
            |&id| {
                let (start, len) = spans[id as usize];
                &bytes[start..start + len] == text
            },
            |&id| hashes[id as usize],
        );
        match entry {
            hashbrown::hash_table::Entry::Occupied(e) => *e.get(),
            hashbrown::hash_table::Entry::Vacant(v) => {
                let id = spans.len() as u32;
                spans.push((bytes.len(), text.len()));
                bytes.extend_from_slice(text);
                hashes.push(hash);
                v.insert(id);
                id
            }
        }
    }

    fn heap_bytes(&self) -> usize {
        self.bytes.capacity()
            + self.spans.capacity() * 16
            + self.hashes.capacity() * 8
            + self.table.capacity() * 5
    }
}

impl<'a> KvSteps<'a> {
    fn new(calls: &'a [KvCall]) -> KvSteps<'a> {
        let mut strings = Strings::default();
        strings.intern(b"");
        let arg = calls
            .iter()
            .map(|call| {
                let (KvOp::Get(v) | KvOp::Put(v) | KvOp::Append(v)) = &call.op;
                strings.intern(v.as_bytes())
            })
            .collect();
        let single_key = match calls.first() {
            None => Some(0),
            Some(first) => calls
                .iter()
                .all(|c| c.key == first.key)
                .then_some(first.key),
        };
        KvSteps {
            calls,
            arg,
            strings,
            single_key,
            maps: Vec::new(),
            map_ids: FxHashMap::default(),
            scratch: Vec::new(),
            entries: Vec::new(),
        }
    }

    /// The string id of `key` in `state`.
    fn value(&self, state: u32, key: u32) -> u32 {
        if self.single_key.is_some() {
            return state;
        }
        let entries = &self.maps[state as usize];
        match entries.binary_search_by_key(&key, |e| e.0) {
            Ok(i) => entries[i].1,
            Err(_) => 0,
        }
    }

    /// The id of `state` with `key` set to string `value`.
    fn with(&mut self, state: u32, key: u32, value: u32) -> u32 {
        if self.single_key.is_some() {
            return value;
        }
        self.entries.clear();
        self.entries.extend_from_slice(&self.maps[state as usize]);
        match self.entries.binary_search_by_key(&key, |e| e.0) {
            Ok(i) if value == 0 => {
                self.entries.remove(i);
            }
            Ok(i) => self.entries[i].1 = value,
            Err(_) if value == 0 => {}
            Err(i) => self.entries.insert(i, (key, value)),
        }
        if let Some(id) = self.map_ids.get(self.entries.as_slice()) {
            return *id;
        }
        let id = self.maps.len() as u32;
        let entries: Box<[(u32, u32)]> = self.entries.as_slice().into();
        self.map_ids.insert(entries.clone(), id);
        self.maps.push(entries);
        id
    }
}

impl Transitions for KvSteps<'_> {
    type State = KvState;

    fn init(&mut self) -> u32 {
        if self.single_key.is_none() && self.maps.is_empty() {
            self.maps.push(Box::new([]));
            self.map_ids.insert(Box::new([]), 0);
        }
        0
    }

    #[inline]
    fn step(&mut self, state: u32, call: u32) -> Option<u32> {
        let c = self.calls.get(call as usize)?;
        let arg = self.arg[call as usize];
        match c.op {
            KvOp::Get(_) => (self.value(state, c.key) == arg).then_some(state),
            KvOp::Put(_) => Some(self.with(state, c.key, arg)),
            KvOp::Append(_) if arg == 0 => Some(state),
            KvOp::Append(_) => {
                let current = self.value(state, c.key);
                let mut text = std::mem::take(&mut self.scratch);
                text.clear();
                text.extend_from_slice(self.strings.get(current));
                text.extend_from_slice(self.strings.get(arg));
                let joined = self.strings.intern(&text);
                self.scratch = text;
                Some(self.with(state, c.key, joined))
            }
        }
    }

    fn state(&self, id: u32) -> Option<KvState> {
        let text = |v: u32| Arc::from(String::from_utf8_lossy(self.strings.get(v)).as_ref());
        let entries = match self.single_key {
            Some(_) if id == 0 => Vec::new(),
            Some(key) => vec![(key, text(id))],
            None => self
                .maps
                .get(id as usize)?
                .iter()
                .map(|&(k, v)| (k, text(v)))
                .collect(),
        };
        Some(KvState(entries))
    }

    fn heap_bytes(&self) -> usize {
        let maps: usize = self.maps.iter().map(|m| 2 * (m.len() * 8 + 32)).sum();
        self.strings.heap_bytes() + maps + self.arg.capacity() * 4 + self.scratch.capacity()
    }

    fn read_only(&self, call: u32) -> bool {
        self.calls
            .get(call as usize)
            .is_some_and(|c| matches!(c.op, KvOp::Get(_)))
    }

    fn blind(&self, call: u32) -> bool {
        // Over several keys a put leaves the other keys as they were: not blind.
        self.single_key.is_some()
            && self
                .calls
                .get(call as usize)
                .is_some_and(|c| matches!(c.op, KvOp::Put(_)))
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
