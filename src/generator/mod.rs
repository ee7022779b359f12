//! Generators: deterministic, seeded sources of client operations.
//!
//! No async and no clocks in here: given a seed and a workload, the sequence of
//! invocations handed out is always the same (which worker receives which op depends on
//! timing, the sequence does not). Rate limiting and the time limit are applied by the
//! runner, which owns time.

use crate::history::Invocation;
use crate::spec::workload::{KeyDistribution, OpKind, WorkloadSpec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

/// One key open for operations.
#[derive(Debug, Clone)]
struct Slot {
    key: String,
    /// Ops this key may still receive before it is retired (None = unbounded).
    ops_left: Option<u64>,
}

#[derive(Debug)]
pub struct Generator {
    rng: ChaCha8Rng,
    mix: Vec<(OpKind, u32)>,
    total_weight: u64,
    values: u32,
    distribution: KeyDistribution,
    ops_per_key: Option<u64>,
    slots: Vec<Slot>,
    next_key: u64,
    /// Every key ever opened, in order (the final phase reads all of them).
    used: Vec<String>,
}

impl Generator {
    pub fn new(spec: &WorkloadSpec, seed: u64) -> Generator {
        let mix: Vec<(OpKind, u32)> = spec
            .mix
            .iter()
            .filter(|(_, w)| **w > 0)
            .map(|(k, w)| (*k, *w))
            .collect();
        let total_weight = mix.iter().map(|(_, w)| u64::from(*w)).sum();
        let mut g = Generator {
            rng: ChaCha8Rng::seed_from_u64(seed),
            mix,
            total_weight,
            values: spec.values,
            distribution: spec.keys.distribution,
            ops_per_key: spec.keys.ops_per_key,
            slots: Vec::new(),
            next_key: 0,
            used: Vec::new(),
        };
        for _ in 0..spec.keys.in_flight {
            let slot = g.fresh_slot();
            g.slots.push(slot);
        }
        g
    }

    fn fresh_slot(&mut self) -> Slot {
        let key = format!("k{}", self.next_key);
        self.next_key += 1;
        self.used.push(key.clone());
        Slot {
            key,
            ops_left: self.ops_per_key,
        }
    }

    fn pick_slot(&mut self) -> usize {
        let n = self.slots.len();
        match self.distribution {
            KeyDistribution::Uniform => self.rng.random_range(0..n),
            KeyDistribution::Exponential => {
                // Slot i with probability ~2^-(i+1); what is left over goes to the last.
                let mut i = 0;
                while i + 1 < n && self.rng.random_bool(0.5) {
                    i += 1;
                }
                i
            }
        }
    }

    fn pick_kind(&mut self) -> OpKind {
        let mut r = self.rng.random_range(0..self.total_weight);
        for (k, w) in &self.mix {
            let w = u64::from(*w);
            if r < w {
                return *k;
            }
            r -= w;
        }
        // Weights sum to total_weight, so the loop always returns; keep a total function.
        self.mix.last().map(|(k, _)| *k).unwrap_or(OpKind::Read)
    }

    fn value(&mut self) -> Value {
        json!(self.rng.random_range(0..self.values))
    }

    /// The next invocation.
    pub fn next_op(&mut self) -> Invocation {
        let i = self.pick_slot();
        let key = self.slots[i].key.clone();
        if let Some(left) = &mut self.slots[i].ops_left {
            *left = left.saturating_sub(1);
            if *left == 0 {
                self.slots[i] = self.fresh_slot();
            }
        }
        let f = self.pick_kind();
        let value = match f {
            OpKind::Read => Value::Null,
            OpKind::Write => self.value(),
            OpKind::Cas => json!([self.value(), self.value()]),
        };
        Invocation { f, key, value }
    }

    /// Every key handed out so far.
    pub fn keys_used(&self) -> &[String] {
        &self.used
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse_yaml;
    use std::path::Path;

    fn kv() -> WorkloadSpec {
        parse_yaml(
            Path::new("w.yaml"),
            "name: kv\nmix: {read: 2, write: 1, cas: 1}\nkeys: {in_flight: 3, ops_per_key: 10}\nmodel: cas-register\n",
        )
        .unwrap()
    }

    #[test]
    fn the_same_seed_gives_the_same_sequence() {
        let a: Vec<_> = {
            let mut g = Generator::new(&kv(), 7);
            (0..200).map(|_| g.next_op()).collect()
        };
        let b: Vec<_> = {
            let mut g = Generator::new(&kv(), 7);
            (0..200).map(|_| g.next_op()).collect()
        };
        let c: Vec<_> = {
            let mut g = Generator::new(&kv(), 8);
            (0..200).map(|_| g.next_op()).collect()
        };
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn keys_are_retired_after_their_ops_and_replaced() {
        let mut g = Generator::new(&kv(), 1);
        let mut per_key = std::collections::BTreeMap::<String, u64>::new();
        for _ in 0..300 {
            *per_key.entry(g.next_op().key).or_default() += 1;
        }
        assert!(per_key.values().all(|n| *n <= 10), "{per_key:?}");
        assert!(per_key.len() >= 30);
        // Every key that received ops was handed out; at most the 3 slots in flight are
        // open without having received an op yet.
        assert!(per_key.keys().all(|k| g.keys_used().contains(k)));
        assert!(g.keys_used().len() <= per_key.len() + 3);
    }

    #[test]
    fn the_mix_is_respected_and_values_stay_in_range() {
        let mut g = Generator::new(&kv(), 3);
        let ops: Vec<_> = (0..4000).map(|_| g.next_op()).collect();
        let reads = ops.iter().filter(|o| o.f == OpKind::Read).count();
        assert!((1800..2200).contains(&reads), "{reads}");
        for o in &ops {
            match o.f {
                OpKind::Read => assert!(o.value.is_null()),
                OpKind::Write => assert!(o.value.as_u64().unwrap() < 5),
                OpKind::Cas => assert_eq!(o.value.as_array().unwrap().len(), 2),
            }
        }
    }
}
