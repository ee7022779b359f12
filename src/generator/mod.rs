//! Generators: deterministic, seeded sources of client operations.
//!
//! No async and no clocks in here: given a seed, a workload and the number of workers,
//! each group's sequence of invocations is always the same (which of a group's workers
//! receives which op, and how the groups interleave, depends on timing; the sequences do
//! not). Rate limiting and the time limit are applied by the runner, which owns time.
//!
//! Bounded concurrency per key (Jepsen's independent keys): worker `w` belongs to group
//! `w / threads_per_key`, and each group draws its ops only from keys of its own, so at
//! most `threads_per_key` workers ever have an op open on one key — also when a key is
//! retired, since its successor belongs to the same group. More workers mean more groups,
//! so more keys in flight, never more ops on one key.
//!
//! A set workload (`set:` in the workload) draws from the same mix with other meanings:
//! a `write` adds a fresh element — key `s<n>`, written once with the value `n`, numbered
//! per group like keys so elements never collide — and a `read` reads one of the group's
//! elements added so far, null meaning absent. Reads take turns between two cursors: one
//! sweeps every element of the group, newest to oldest, so a sweep is a (spread out) read
//! of the group's part of the set; the other cycles over the [`RECENT`] newest elements,
//! so an element is read soon after its add however large the set has grown — where a
//! stale read shows. Every element is also a key of `keys_used`, so the final phase
//! reads the whole set.
//!
//! An append workload (`append:` in the workload) draws like a register workload — keys
//! in flight, retired after `keys.ops_per_key` ops — but a `write` carries a fresh element
//! (numbered per group like a set's, so no two appends of a run carry the same one),
//! which the runner appends to the key's list; a `read` reads the list.

use crate::history::Invocation;
use crate::spec::workload::{KeyDistribution, OpKind, WorkloadSpec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

/// Elements the second read cursor of a set workload cycles over: the newest few.
pub const RECENT: usize = 8;

/// One key open for operations.
#[derive(Debug, Clone)]
struct Slot {
    key: String,
    /// Ops this key may still receive before it is retired (None = unbounded).
    ops_left: Option<u64>,
}

/// What every group draws with: the workload's mix, values and key rules.
#[derive(Debug)]
struct Shape {
    mix: Vec<(OpKind, u32)>,
    total_weight: u64,
    values: u32,
    value_bytes: Option<u32>,
    distribution: KeyDistribution,
    ops_per_key: Option<u64>,
    groups: u64,
    /// A set workload: writes add elements, reads read them.
    set: bool,
    /// An append workload: writes carry fresh elements.
    append: bool,
}

/// A group's share of a set workload: its elements and its two read cursors.
#[derive(Debug, Default)]
struct SetState {
    /// Keys of the elements added so far, oldest first.
    added: Vec<String>,
    /// Position of the sweep (counts down to 0, then starts again at the newest).
    sweep: usize,
    /// Position among the newest elements.
    recent: usize,
    /// Which cursor the next read takes.
    turn: bool,
}

/// The workers that share keys, with the keys they share and their own random stream.
#[derive(Debug)]
struct Group {
    /// The group's index: its keys are numbered `g`, `g + groups`, `g + 2 × groups`, …
    /// so names never collide between groups and do not depend on timing.
    index: u64,
    rng: ChaCha8Rng,
    slots: Vec<Slot>,
    /// Keys this group has opened so far.
    opened: u64,
    set: SetState,
    /// Elements this group has handed out (append workload).
    appended: u64,
}

#[derive(Debug)]
pub struct Generator {
    shape: Shape,
    threads_per_key: u32,
    groups: Vec<Group>,
    /// Every key ever opened, in order (the final phase reads all of them).
    used: Vec<String>,
}

impl Generator {
    /// A generator for `workers` workers, `threads_per_key` of them per key (clamped to
    /// 1..=workers). Keys in flight: one group per `threads_per_key` workers (rounded up),
    /// each with `ceil(keys.in_flight / groups)` keys.
    pub fn new(spec: &WorkloadSpec, seed: u64, workers: u32, threads_per_key: u32) -> Generator {
        let mix: Vec<(OpKind, u32)> = spec
            .mix
            .iter()
            .filter(|(_, w)| **w > 0)
            .map(|(k, w)| (*k, *w))
            .collect();
        let total_weight = mix.iter().map(|(_, w)| u64::from(*w)).sum();
        let workers = workers.max(1);
        let threads_per_key = threads_per_key.clamp(1, workers);
        let groups = workers.div_ceil(threads_per_key);
        let per_group = spec.keys.in_flight.max(1).div_ceil(groups);
        let mut g = Generator {
            shape: Shape {
                mix,
                total_weight,
                values: spec.values,
                value_bytes: spec.value_bytes,
                distribution: spec.keys.distribution,
                ops_per_key: spec.keys.ops_per_key,
                groups: u64::from(groups),
                set: spec.set.is_some(),
                append: spec.append.is_some(),
            },
            threads_per_key,
            groups: Vec::with_capacity(groups as usize),
            used: Vec::new(),
        };
        // A set has no slots: its keys are its elements, opened by its adds.
        let slots = if spec.set.is_some() { 0 } else { per_group };
        for index in 0..u64::from(groups) {
            // One ChaCha stream per group of the one seed: group 0's is the stream a
            // single-group run always used, so a register run's sequence is unchanged.
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(index);
            let mut group = Group {
                index,
                rng,
                slots: Vec::with_capacity(slots as usize),
                opened: 0,
                set: SetState::default(),
                appended: 0,
            };
            for _ in 0..slots {
                let slot = group.fresh_slot(&g.shape, &mut g.used);
                group.slots.push(slot);
            }
            g.groups.push(group);
        }
        g
    }

    /// The next invocation for worker `worker` (0-based; a worker past the last is
    /// counted in the last group).
    pub fn next_op(&mut self, worker: u32) -> Invocation {
        let g = ((worker / self.threads_per_key) as usize).min(self.groups.len() - 1);
        self.groups[g].next_op(&self.shape, &mut self.used)
    }

    /// Every key handed out so far.
    pub fn keys_used(&self) -> &[String] {
        &self.used
    }

    /// Keys open for operations at any moment.
    pub fn keys_in_flight(&self) -> usize {
        self.groups.iter().map(|g| g.slots.len()).sum()
    }

    /// Workers that share a key (the workload's setting, at most the number of workers).
    pub fn threads_per_key(&self) -> u32 {
        self.threads_per_key
    }
}

impl Group {
    fn fresh_slot(&mut self, shape: &Shape, used: &mut Vec<String>) -> Slot {
        let key = format!("k{}", self.opened * shape.groups + self.index);
        self.opened += 1;
        used.push(key.clone());
        Slot {
            key,
            ops_left: shape.ops_per_key,
        }
    }

    fn pick_slot(&mut self, shape: &Shape) -> usize {
        let n = self.slots.len();
        match shape.distribution {
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

    fn pick_kind(&mut self, shape: &Shape) -> OpKind {
        let mut r = self.rng.random_range(0..shape.total_weight);
        for (k, w) in &shape.mix {
            let w = u64::from(*w);
            if r < w {
                return *k;
            }
            r -= w;
        }
        // Weights sum to total_weight, so the loop always returns; keep a total function.
        shape.mix.last().map(|(k, _)| *k).unwrap_or(OpKind::Read)
    }

    fn value(&mut self, shape: &Shape) -> Value {
        let v = self.rng.random_range(0..shape.values);
        match shape.value_bytes {
            None => json!(v),
            Some(n) => Value::String(padded(v, n)),
        }
    }

    fn next_op(&mut self, shape: &Shape, used: &mut Vec<String>) -> Invocation {
        if shape.set {
            return self.next_set_op(shape, used);
        }
        let i = self.pick_slot(shape);
        let key = self.slots[i].key.clone();
        if let Some(left) = &mut self.slots[i].ops_left {
            *left = left.saturating_sub(1);
            if *left == 0 {
                self.slots[i] = self.fresh_slot(shape, used);
            }
        }
        let f = self.pick_kind(shape);
        let value = match f {
            OpKind::Read => Value::Null,
            OpKind::Write if shape.append => {
                let n = self.appended * shape.groups + self.index;
                self.appended += 1;
                json!(n)
            }
            OpKind::Write => self.value(shape),
            OpKind::Cas => json!([self.value(shape), self.value(shape)]),
        };
        Invocation { f, key, value }
    }
}

impl Group {
    /// A set workload's next op: an add of a fresh element, or a read of an added one
    /// (an add while nothing is added yet).
    fn next_set_op(&mut self, shape: &Shape, used: &mut Vec<String>) -> Invocation {
        let f = self.pick_kind(shape);
        let st = &mut self.set;
        if f == OpKind::Write || st.added.is_empty() {
            let n = self.opened * shape.groups + self.index;
            self.opened += 1;
            let key = format!("s{n}");
            used.push(key.clone());
            st.added.push(key.clone());
            return Invocation {
                f: OpKind::Write,
                key,
                value: json!(n),
            };
        }
        st.turn = !st.turn;
        let len = st.added.len();
        let i = if st.turn {
            if st.sweep == 0 {
                st.sweep = len;
            }
            st.sweep -= 1;
            st.sweep
        } else {
            let window = len.min(RECENT);
            st.recent = (st.recent + 1) % window;
            len - 1 - st.recent
        };
        Invocation {
            f: OpKind::Read,
            key: st.added[i].clone(),
            value: Value::Null,
        }
    }
}

/// Value `v` as a string of `bytes` bytes (longer only when `v` itself needs more).
fn padded(v: u32, bytes: u32) -> String {
    let mut s = format!("{v}:");
    let want = bytes as usize;
    if s.len() < want {
        s.extend(std::iter::repeat_n('.', want - s.len()));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse_yaml;
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    fn kv() -> WorkloadSpec {
        parse_yaml(
            Path::new("w.yaml"),
            "name: kv\nmix: {read: 2, write: 1, cas: 1}\nkeys: {in_flight: 3, ops_per_key: 10}\nmodel: cas-register\n",
        )
        .unwrap()
    }

    #[test]
    fn padded_values_keep_the_integer_sequence_and_reach_their_size() {
        let plain: Vec<Invocation> = {
            let mut g = Generator::new(&kv(), 3, 1, 1);
            (0..100).map(|_| g.next_op(0)).collect()
        };
        let mut spec = kv();
        spec.value_bytes = Some(64);
        let mut g = Generator::new(&spec, 3, 1, 1);
        let mut written = 0;
        for p in &plain {
            let op = g.next_op(0);
            let expect = |v: &Value| Value::String(padded(v.as_u64().unwrap() as u32, 64));
            match p.f {
                OpKind::Read => assert_eq!(op.value, Value::Null),
                OpKind::Write => {
                    assert_eq!(op.value, expect(&p.value));
                    written += 1;
                }
                OpKind::Cas => {
                    assert_eq!(op.value[0], expect(&p.value[0]));
                    assert_eq!(op.value[1], expect(&p.value[1]));
                }
            }
            assert_eq!((op.f, &op.key), (p.f, &p.key));
        }
        assert!(written > 10);
        assert_eq!(padded(7, 8), "7:......");
        assert_eq!(padded(12345, 3), "12345:", "never cut a value short");
    }

    #[test]
    fn the_same_seed_gives_the_same_sequence() {
        let run = |seed| {
            let mut g = Generator::new(&kv(), seed, 1, 1);
            (0..200).map(|_| g.next_op(0)).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    /// Drives `workers` workers in an order drawn from `schedule_seed`: at each step one
    /// worker either invokes its next op or completes the one it has open, as workers
    /// whose ops take random times would. Returns each worker group's sequence of ops and
    /// the most workers that ever had an op open on one key at once.
    fn simulate(
        spec: &WorkloadSpec,
        seed: u64,
        workers: u32,
        threads_per_key: u32,
        schedule_seed: u64,
        steps: usize,
    ) -> (Generator, BTreeMap<u32, Vec<Invocation>>, usize) {
        let mut g = Generator::new(spec, seed, workers, threads_per_key);
        let mut schedule = ChaCha8Rng::seed_from_u64(schedule_seed);
        let mut open: Vec<Option<String>> = vec![None; workers as usize];
        let mut on_key = BTreeMap::<String, usize>::new();
        let mut per_group = BTreeMap::<u32, Vec<Invocation>>::new();
        let mut most = 0;
        for _ in 0..steps {
            let w = schedule.random_range(0..workers);
            match open[w as usize].take() {
                Some(key) => {
                    let n = on_key.get_mut(&key).expect("open key counted");
                    *n -= 1;
                }
                None => {
                    let inv = g.next_op(w);
                    let n = on_key.entry(inv.key.clone()).or_default();
                    *n += 1;
                    most = most.max(*n);
                    open[w as usize] = Some(inv.key.clone());
                    per_group
                        .entry(w / g.threads_per_key())
                        .or_default()
                        .push(inv);
                }
            }
        }
        (g, per_group, most)
    }

    #[test]
    fn at_most_threads_per_key_workers_have_an_op_open_on_one_key() {
        let spec = kv();
        for t in [1, 2, 3, 5, 7, 8, 16] {
            let (g, _, most) = simulate(&spec, 5, 200, t, u64::from(t), 100_000);
            assert!(most <= t as usize, "{t} per key: {most} open on one key");
            // The bound is reached, so the check above is not vacuous: a group's workers
            // do pile up on its one key (16 all open at once is too rare to wait for).
            if t <= 8 {
                assert_eq!(most, t as usize, "{t} per key");
            }
            // One group per t workers, each with ceil(3 / groups) = 1 key.
            assert_eq!(g.keys_in_flight(), 200usize.div_ceil(t as usize), "{t}");
            // Keys were retired after 10 ops many times over, and all of them are named.
            assert!(g.keys_used().len() > 5 * g.keys_in_flight(), "{t}");
        }
    }

    #[test]
    fn keys_in_flight_grow_with_the_workers_and_never_fall_below_the_workload() {
        let mut spec = kv();
        spec.keys.in_flight = 100;
        // 4 groups of 5 workers share the 100 keys, 25 each.
        assert_eq!(Generator::new(&spec, 1, 20, 5).keys_in_flight(), 100);
        // 40 groups: ceil(100 / 40) = 3 keys each.
        assert_eq!(Generator::new(&spec, 1, 200, 5).keys_in_flight(), 120);
        // More threads per key than workers: one group of all of them.
        let g = Generator::new(&spec, 1, 3, 5);
        assert_eq!((g.threads_per_key(), g.keys_in_flight()), (3, 100));
    }

    #[test]
    fn each_groups_sequence_depends_on_the_seed_and_not_on_timing() {
        let spec = kv();
        let (_, a, _) = simulate(&spec, 7, 200, 5, 1, 50_000);
        let (_, b, _) = simulate(&spec, 7, 200, 5, 2, 50_000);
        // Different interleavings hand out different numbers of ops per group; what each
        // group got is a prefix of the same sequence.
        assert_eq!(a.len(), 40);
        for (group, ops) in &a {
            let other = &b[group];
            let n = ops.len().min(other.len());
            assert!(n > 100, "group {group}: {n}");
            assert_eq!(ops[..n], other[..n], "group {group}");
        }
        let (_, c, _) = simulate(&spec, 8, 200, 5, 1, 50_000);
        assert_ne!(a[&0][..100], c[&0][..100], "another seed, other ops");
        // The setting is part of what a seed means: 2 per key splits the workers otherwise.
        let (_, d, _) = simulate(&spec, 7, 200, 2, 1, 50_000);
        assert_eq!(d.len(), 100);
    }

    #[test]
    fn groups_never_share_a_key_and_every_key_is_named_for_the_final_reads() {
        let (g, per_group, _) = simulate(&kv(), 3, 200, 5, 9, 100_000);
        let mut owner = BTreeMap::<&str, u32>::new();
        for (group, ops) in &per_group {
            for op in ops {
                let o = *owner.entry(op.key.as_str()).or_insert(*group);
                assert_eq!(o, *group, "{} used by groups {o} and {group}", op.key);
            }
        }
        let used: BTreeSet<&String> = g.keys_used().iter().collect();
        assert_eq!(used.len(), g.keys_used().len(), "key names are unique");
        assert!(owner.keys().all(|k| used.contains(&k.to_string())));
        // Only keys opened and not yet given an op are named without having been used.
        assert!(used.len() <= owner.len() + g.keys_in_flight());
    }

    #[test]
    fn keys_are_retired_after_their_ops_and_replaced() {
        let mut g = Generator::new(&kv(), 1, 1, 1);
        let mut per_key = BTreeMap::<String, u64>::new();
        for _ in 0..300 {
            *per_key.entry(g.next_op(0).key).or_default() += 1;
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
        let mut g = Generator::new(&kv(), 3, 10, 5);
        let ops: Vec<_> = (0..4000).map(|i| g.next_op(i % 10)).collect();
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

#[cfg(test)]
mod set_tests {
    use super::*;
    use crate::spec::parse_yaml;
    use std::collections::BTreeSet;
    use std::path::Path;

    fn set() -> WorkloadSpec {
        parse_yaml(
            Path::new("set.yaml"),
            "name: set\nmix: {write: 1, read: 3}\nset: {}\n",
        )
        .unwrap()
    }

    #[test]
    fn a_set_adds_each_element_once_and_reads_only_elements_already_added() {
        let mut g = Generator::new(&set(), 4, 6, 3);
        let mut added = BTreeSet::new();
        let (mut adds, mut reads) = (0, 0);
        for i in 0..6000u32 {
            let op = g.next_op(i % 6);
            match op.f {
                OpKind::Write => {
                    let n = op.key.strip_prefix('s').unwrap().parse::<u64>().unwrap();
                    assert_eq!(op.value, json!(n), "the value names the element");
                    assert!(added.insert(op.key), "each element is added once");
                    adds += 1;
                }
                OpKind::Read => {
                    assert!(added.contains(&op.key), "{} read before its add", op.key);
                    assert!(op.value.is_null());
                    reads += 1;
                }
                OpKind::Cas => panic!("a set issues no cas"),
            }
        }
        assert!((1300..1700).contains(&adds), "{adds}");
        assert_eq!(adds + reads, 6000);
        // The final phase reads every element, and nothing else.
        let used: BTreeSet<String> = g.keys_used().iter().cloned().collect();
        assert_eq!(used, added);
        assert_eq!(g.keys_in_flight(), 0);
    }

    #[test]
    fn a_groups_reads_sweep_all_its_elements_and_keep_returning_to_the_newest() {
        let mut spec = set();
        spec.mix = [(OpKind::Read, 1)].into_iter().collect();
        // Reads only: the first op must add (nothing to read yet); then 20 more adds.
        let mut g = Generator::new(&spec, 1, 1, 1);
        assert_eq!(g.next_op(0).f, OpKind::Write);
        spec.mix = [(OpKind::Write, 1)].into_iter().collect();
        let mut adder = Generator::new(&spec, 1, 1, 1);
        for _ in 0..20 {
            adder.next_op(0);
        }
        // Move the adder's elements into the reader's group, as if it had added them.
        g.groups[0].set.added = adder.groups[0].set.added.clone();
        let reads: Vec<String> = (0..40).map(|_| g.next_op(0).key).collect();
        let swept: Vec<&String> = reads.iter().step_by(2).collect();
        // The sweep goes newest to oldest over all 20 elements.
        assert_eq!(swept[0], "s19");
        assert_eq!(swept[19], "s0");
        let recent: BTreeSet<&String> = reads.iter().skip(1).step_by(2).collect();
        assert_eq!(recent.len(), RECENT);
        assert!(recent.iter().all(|k| k[1..].parse::<u32>().unwrap() >= 12));
    }

    #[test]
    fn a_sets_sequence_depends_only_on_the_seed() {
        let run = |seed| {
            let mut g = Generator::new(&set(), seed, 5, 5);
            (0..500).map(|i| g.next_op(i % 5)).collect::<Vec<_>>()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }
}

#[cfg(test)]
mod append_tests {
    use super::*;
    use crate::spec::parse_yaml;
    use std::collections::BTreeSet;
    use std::path::Path;

    #[test]
    fn an_append_workload_hands_out_every_element_once_on_retiring_keys() {
        let spec: WorkloadSpec = parse_yaml(
            Path::new("append.yaml"),
            "name: a\nmix: {write: 1, read: 1}\nkeys: {in_flight: 2, ops_per_key: 5}\nappend: {}\n",
        )
        .unwrap();
        let mut g = Generator::new(&spec, 9, 6, 3);
        let mut elements = BTreeSet::new();
        let mut writes = 0;
        for i in 0..300 {
            let inv = g.next_op(i % 6);
            match inv.f {
                OpKind::Write => {
                    writes += 1;
                    assert!(elements.insert(inv.value.as_u64().unwrap()), "{inv:?}");
                }
                OpKind::Read => assert!(inv.value.is_null()),
                OpKind::Cas => panic!("an append workload issues no cas of its own"),
            }
        }
        assert_eq!(elements.len(), writes);
        // 300 ops, 5 per key: keys were retired and fresh ones opened.
        assert!(g.keys_used().len() >= 60, "{}", g.keys_used().len());
    }
}
