//! Interning of op values: every distinct JSON value of a history becomes a small integer.
//!
//! Register models compare values millions of times during a search; comparing `u32`s
//! instead of `serde_json::Value`s is what keeps their step function a few instructions.
//! This module owns that mapping and nothing else.

use rustc_hash::FxHashMap;
use serde_json::Value;

/// A value interned in a [`Values`] table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub u32);

/// A table of distinct JSON values, keyed by their canonical serialisation.
///
/// serde_json's objects are ordered maps, so two equal values serialise identically and
/// the serialisation is a sound hash key (floats included: `1.0` and `1` stay distinct,
/// as they are distinct values in the history).
#[derive(Debug, Default)]
pub struct Values {
    ids: FxHashMap<String, ValueId>,
    values: Vec<Value>,
}

impl Values {
    /// An empty table with `null` pre-interned (it is the initial value of most models).
    pub fn new() -> Values {
        let mut values = Values::default();
        values.intern(&Value::Null);
        values
    }

    /// The id of `null`.
    pub const NULL: ValueId = ValueId(0);

    /// The id of `value`, adding it to the table if it is new.
    pub fn intern(&mut self, value: &Value) -> ValueId {
        let key = value.to_string();
        if let Some(id) = self.ids.get(&key) {
            return *id;
        }
        let id = ValueId(self.values.len() as u32);
        self.ids.insert(key, id);
        self.values.push(value.clone());
        id
    }

    /// The value behind `id`. Ids come only from this table, so the lookup cannot miss;
    /// a foreign id yields `null` rather than a panic.
    pub fn get(&self, id: ValueId) -> &Value {
        self.values.get(id.0 as usize).unwrap_or(&Value::Null)
    }

    /// How many distinct values the table holds.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the table is empty (never true after [`Values::new`]).
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// A rough count of the heap bytes this table holds, for the memory budget.
    pub fn heap_bytes(&self) -> usize {
        let strings: usize = self.ids.keys().map(|k| k.capacity() + 48).sum();
        strings + self.values.capacity() * std::mem::size_of::<Value>() + self.ids.capacity() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_values_share_one_id() {
        let mut v = Values::new();
        let a = v.intern(&json!([1, {"b": 2, "a": 1}]));
        let b = v.intern(&json!([1, {"a": 1, "b": 2}]));
        assert_eq!(a, b);
        assert_eq!(v.get(a), &json!([1, {"a": 1, "b": 2}]));
    }

    #[test]
    fn null_is_preinterned_and_distinct_from_zero() {
        let mut v = Values::new();
        assert_eq!(v.intern(&Value::Null), Values::NULL);
        assert_ne!(v.intern(&json!(0)), Values::NULL);
        assert_ne!(v.intern(&json!("0")), v.intern(&json!(0)));
    }
}
