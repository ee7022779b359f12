//! A simulator of linearizable objects, producing histories for tests and benchmarks.
//!
//! Workers invoke ops with random think times and latencies; each op takes effect at a
//! random instant between its invocation and completion (its linearization point) on a
//! real in-memory object, so every history it produces is linearizable by construction.
//! Some ops crash (completed `info`, or never completed: they took effect or not, at
//! random) and some fail without effect; a cas whose comparison fails is recorded as
//! `fail` with the [`COMPARE_FAILED`] error. Written values are unique, which makes
//! "this read saw a value that was provably overwritten" easy to construct
//! ([`stale_read`]). The simulation streams: it holds a few events per worker, never the
//! history, so it can write million-op files.

use crate::history::{Op, OpType, Process, COMPARE_FAILED};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Which object is simulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// `read`/`write` on registers starting at `null`.
    Register,
    /// `read`/`write`/`cas` on registers starting at `null`.
    CasRegister,
    /// `get`/`put`/`append` on strings starting at `""`.
    Kv,
}

/// Shape of a simulated history.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    pub workload: Workload,
    pub seed: u64,
    /// Concurrent workers; a worker whose op crashed continues as a new process id.
    pub processes: usize,
    /// Invocations in total.
    pub ops: usize,
    /// Keys (ops carry `key` when there is more than one key, or always for kv).
    pub keys: usize,
    /// Fraction of ops that crash: `info`, or (a third of them) never completed.
    pub crash_fraction: f64,
    /// Fraction of ops that fail without effect.
    pub fail_fraction: f64,
    /// Upper bound of the invocation-to-linearization and linearization-to-completion
    /// delays, and of think time between ops.
    pub max_latency_ns: u64,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            workload: Workload::CasRegister,
            seed: 0,
            processes: 5,
            ops: 100,
            keys: 1,
            crash_fraction: 0.05,
            fail_fraction: 0.05,
            max_latency_ns: 1_000_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Invoke,
    TakeEffect,
    Complete,
}

/// An op between invocation and completion.
#[derive(Debug, Clone)]
struct InFlight {
    process: u64,
    f: &'static str,
    key: usize,
    input: Value,
    fate: Fate,
    output: Value,
    compare_failed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Ok,
    Fail,
    /// Crashed after (or before) taking effect; completes `info` or never.
    Crash {
        effect: bool,
        recorded: bool,
    },
}

/// A streaming simulation: an iterator of ops in time order.
pub struct Simulation {
    cfg: SimConfig,
    rng: ChaCha8Rng,
    events: BinaryHeap<Reverse<(u64, u64, usize, Phase)>>,
    seq: u64,
    workers: Vec<Option<InFlight>>,
    next_process: u64,
    process_of: Vec<u64>,
    invoked: usize,
    index: u64,
    state: Vec<Value>,
    next_value: u64,
}

impl Simulation {
    pub fn new(cfg: SimConfig) -> Simulation {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let processes = cfg.processes.max(1);
        let mut events = BinaryHeap::new();
        for w in 0..processes {
            let t = rng.random_range(0..=cfg.max_latency_ns.max(1));
            events.push(Reverse((t, w as u64, w, Phase::Invoke)));
        }
        let initial = match cfg.workload {
            Workload::Kv => json!(""),
            _ => Value::Null,
        };
        Simulation {
            state: vec![initial; cfg.keys.max(1)],
            rng,
            events,
            seq: processes as u64,
            workers: vec![None; processes],
            next_process: processes as u64,
            process_of: (0..processes as u64).collect(),
            invoked: 0,
            index: 0,
            next_value: 1,
            cfg,
        }
    }

    fn schedule(&mut self, t: u64, worker: usize, phase: Phase) {
        self.seq += 1;
        self.events.push(Reverse((t, self.seq, worker, phase)));
    }

    fn delay(&mut self) -> u64 {
        self.rng.random_range(1..=self.cfg.max_latency_ns.max(1))
    }

    fn fresh(&mut self) -> u64 {
        self.next_value += 1;
        self.next_value - 1
    }

    fn key_name(&self, key: usize) -> Option<String> {
        (self.cfg.keys > 1 || self.cfg.workload == Workload::Kv).then(|| format!("k{key}"))
    }

    /// Choose the next op for a worker.
    fn choose(&mut self, process: u64) -> InFlight {
        let key = self.rng.random_range(0..self.cfg.keys.max(1));
        let roll: f64 = self.rng.random();
        let (f, input) = match self.cfg.workload {
            Workload::Register if roll < 0.5 => ("read", Value::Null),
            Workload::Register => ("write", json!(self.fresh())),
            Workload::CasRegister if roll < 0.4 => ("read", Value::Null),
            Workload::CasRegister if roll < 0.7 => ("write", json!(self.fresh())),
            Workload::CasRegister => {
                // Mostly from the current value, so that cas often succeeds.
                let from = if self.rng.random_bool(0.7) {
                    self.state[key].clone()
                } else {
                    json!(self.rng.random_range(0..self.next_value))
                };
                ("cas", json!([from, self.fresh()]))
            }
            Workload::Kv if roll < 0.5 => ("get", Value::Null),
            Workload::Kv if roll < 0.8 => ("append", json!(format!("[a{}]", self.fresh()))),
            Workload::Kv => ("put", json!(format!("[p{}]", self.fresh()))),
        };
        let fate_roll: f64 = self.rng.random();
        let fate = if fate_roll < self.cfg.crash_fraction {
            Fate::Crash {
                effect: self.rng.random_bool(0.5),
                recorded: !self.rng.random_bool(1.0 / 3.0),
            }
        } else if fate_roll < self.cfg.crash_fraction + self.cfg.fail_fraction {
            Fate::Fail
        } else {
            Fate::Ok
        };
        InFlight {
            process,
            f,
            key,
            input,
            fate,
            output: Value::Null,
            compare_failed: false,
        }
    }

    /// Apply an op to the object at its linearization point.
    fn take_effect(&mut self, op: &mut InFlight) {
        let effect = match op.fate {
            Fate::Ok => true,
            Fate::Fail => false,
            Fate::Crash { effect, .. } => effect,
        };
        let state = &mut self.state[op.key];
        match op.f {
            "read" | "get" => op.output = state.clone(),
            "write" | "put" if effect => *state = op.input.clone(),
            "append" if effect => {
                let joined = format!(
                    "{}{}",
                    state.as_str().unwrap_or(""),
                    op.input.as_str().unwrap_or("")
                );
                *state = Value::from(joined);
            }
            "cas" => {
                if op.input[0] == *state {
                    if effect {
                        *state = op.input[1].clone();
                    }
                } else if op.fate == Fate::Ok {
                    op.compare_failed = true;
                }
            }
            _ => {}
        }
    }

    fn op(&mut self, t: u64, flight: &InFlight, kind: OpType) -> Op {
        self.index += 1;
        let value = match kind {
            OpType::Ok if matches!(flight.f, "read" | "get") => flight.output.clone(),
            OpType::Invoke if matches!(flight.f, "read" | "get") => Value::Null,
            _ => flight.input.clone(),
        };
        Op {
            index: self.index - 1,
            time_ns: t,
            process: Process::Client(flight.process),
            kind,
            f: flight.f.to_string(),
            key: self.key_name(flight.key),
            value,
            node: None,
            error: match kind {
                OpType::Fail if flight.compare_failed => Some(COMPARE_FAILED.to_string()),
                OpType::Fail => Some("rejected".to_string()),
                OpType::Info => Some("timeout".to_string()),
                _ => None,
            },
        }
    }
}

impl Iterator for Simulation {
    type Item = Op;

    fn next(&mut self) -> Option<Op> {
        while let Some(Reverse((t, _, w, phase))) = self.events.pop() {
            match phase {
                Phase::Invoke => {
                    if self.invoked >= self.cfg.ops {
                        continue;
                    }
                    self.invoked += 1;
                    let flight = self.choose(self.process_of[w]);
                    let lin = t + self.delay();
                    let done = lin + self.delay();
                    self.schedule(lin, w, Phase::TakeEffect);
                    self.schedule(done, w, Phase::Complete);
                    let op = self.op(t, &flight, OpType::Invoke);
                    self.workers[w] = Some(flight);
                    return Some(op);
                }
                Phase::TakeEffect => {
                    if let Some(mut flight) = self.workers[w].take() {
                        self.take_effect(&mut flight);
                        self.workers[w] = Some(flight);
                    }
                }
                Phase::Complete => {
                    let Some(flight) = self.workers[w].take() else {
                        continue;
                    };
                    let next = t + self.delay();
                    self.schedule(next, w, Phase::Invoke);
                    let kind = match flight.fate {
                        Fate::Ok if flight.compare_failed => OpType::Fail,
                        Fate::Ok => OpType::Ok,
                        Fate::Fail => OpType::Fail,
                        Fate::Crash { .. } => {
                            // A crashed client continues as a fresh process.
                            self.process_of[w] = self.next_process;
                            self.next_process += 1;
                            OpType::Info
                        }
                    };
                    if let Fate::Crash {
                        recorded: false, ..
                    } = flight.fate
                    {
                        continue;
                    }
                    return Some(self.op(t, &flight, kind));
                }
            }
        }
        None
    }
}

/// A whole simulated history.
pub fn history(cfg: SimConfig) -> Vec<Op> {
    Simulation::new(cfg).collect()
}

/// The value an op leaves in its key if it takes effect (writes, puts, cas targets).
fn written(op: &Op) -> Option<&Value> {
    match op.f.as_str() {
        "write" | "put" => Some(&op.value),
        "cas" => op.value.get(1),
        _ => None,
    }
}

/// `history` with one successful read changed to return a value that was provably
/// overwritten before the read began: written by exactly one op W1 in the whole history,
/// which completed before another completed write W2 to the same key was invoked, and W2
/// completed before the read was invoked. Such a history cannot be linearizable.
/// Returns `None` when no such read exists. Needs unique written values (as
/// [`Simulation`] produces) and, for kv, only a `put` counts as W1 or W2.
pub fn stale_read(history: &[Op]) -> Option<Vec<Op>> {
    use std::collections::HashMap;
    // Invocation and completion position of every op, by index in `history`.
    let mut open: HashMap<Process, usize> = HashMap::new();
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    for (i, op) in history.iter().enumerate() {
        if op.kind == OpType::Invoke {
            open.insert(op.process, i);
        } else if let Some(inv) = open.remove(&op.process) {
            pairs.push((inv, i));
        }
    }
    let mut writers: HashMap<String, usize> = HashMap::new();
    for op in history.iter().filter(|o| o.kind == OpType::Invoke) {
        if let Some(v) = written(op) {
            *writers.entry(v.to_string()).or_default() += 1;
        }
    }
    let ok_writes: Vec<(usize, usize)> = pairs
        .iter()
        .copied()
        .filter(|&(inv, done)| {
            history[done].kind == OpType::Ok
                && matches!(history[inv].f.as_str(), "write" | "put" | "cas")
        })
        .collect();
    for &(r_inv, r_done) in pairs.iter().rev() {
        let read = &history[r_done];
        if read.kind != OpType::Ok || !matches!(read.f.as_str(), "read" | "get") {
            continue;
        }
        let same_key = |i: usize| history[i].key == read.key;
        for &(w2_inv, w2_done) in &ok_writes {
            if w2_done >= r_inv || !same_key(w2_inv) {
                continue;
            }
            for &(w1_inv, w1_done) in &ok_writes {
                if w1_done >= w2_inv || !same_key(w1_inv) {
                    continue;
                }
                let Some(v) = written(&history[w1_inv]) else {
                    continue;
                };
                let unique = writers.get(&v.to_string()) == Some(&1);
                if unique && *v != read.value && history[w1_inv].f != "cas" {
                    let mut mutated = history.to_vec();
                    mutated[r_done].value = v.clone();
                    return Some(mutated);
                }
            }
        }
    }
    None
}

/// A random small history that may or may not be linearizable, for cross-checking the
/// search against [`super::brute`]: `calls` ops on one register (or kv key), values from
/// a tiny domain so that coincidences (and violations) are common, random overlaps,
/// some crashed or never completed, some compare-failed cas.
pub fn random_small(workload: Workload, seed: u64, calls: usize) -> Vec<Op> {
    random_small_with(workload, seed, calls, 0.25)
}

/// [`random_small`] with `crashed` of the calls crashing (three fifths of them complete
/// `info`, the rest never): many crashed writes, some of whose values are read, are what
/// the search's pruning of open calls must get right.
pub fn random_small_with(workload: Workload, seed: u64, calls: usize, crashed: f64) -> Vec<Op> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Each call gets an invocation and (maybe) a completion slot on a shared timeline.
    let mut events: Vec<(u64, usize, bool)> = Vec::new();
    let mut ops: Vec<(Op, Option<Op>)> = Vec::new();
    let mut time = 0u64;
    for c in 0..calls {
        let start = time + rng.random_range(0..3);
        let end = start + rng.random_range(1..6);
        time = start;
        let small = |rng: &mut ChaCha8Rng| json!(rng.random_range(0..3));
        let (f, input, output) = match (workload, rng.random_range(0..3)) {
            (Workload::Kv, 0) => (
                "get",
                Value::Null,
                json!(["", "a", "ab", "b"][rng.random_range(0..4)]),
            ),
            (Workload::Kv, 1) => (
                "put",
                json!(["a", "b"][rng.random_range(0..2)]),
                Value::Null,
            ),
            (Workload::Kv, _) => (
                "append",
                json!(["a", "b"][rng.random_range(0..2)]),
                Value::Null,
            ),
            (_, 0) => ("read", Value::Null, small(&mut rng)),
            (Workload::CasRegister, 1) => (
                "cas",
                json!([small(&mut rng), small(&mut rng)]),
                Value::Null,
            ),
            _ => ("write", small(&mut rng), Value::Null),
        };
        let fate: f64 = rng.random();
        let (kind, error) = if fate < crashed * 0.6 {
            (Some(OpType::Info), Some("timeout".to_string()))
        } else if fate < crashed {
            (None, None)
        } else if fate < crashed + 0.1 && f == "cas" {
            (Some(OpType::Fail), Some(COMPARE_FAILED.to_string()))
        } else {
            (Some(OpType::Ok), None)
        };
        let key = (workload == Workload::Kv).then(|| "k".to_string());
        let make = |kind: OpType, value: Value, error: Option<String>| Op {
            index: 0,
            time_ns: 0,
            process: Process::Client(c as u64),
            kind,
            f: f.to_string(),
            key: key.clone(),
            value,
            node: None,
            error,
        };
        let invoke = make(OpType::Invoke, input.clone(), None);
        let completion = kind.map(|k| {
            let value = if k == OpType::Ok && matches!(f, "read" | "get") {
                output.clone()
            } else {
                input.clone()
            };
            make(k, value, error.clone())
        });
        events.push((start * 2 + 1, c, false));
        if completion.is_some() {
            events.push((end * 2, c, true));
        }
        ops.push((invoke, completion));
    }
    events.sort();
    let mut out = Vec::new();
    for (t, c, done) in events {
        let op = if done {
            ops[c].1.clone()
        } else {
            Some(ops[c].0.clone())
        };
        if let Some(mut op) = op {
            op.index = out.len() as u64;
            op.time_ns = t;
            out.push(op);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_simulation_is_deterministic_for_a_seed() {
        let cfg = SimConfig {
            seed: 7,
            ops: 200,
            ..SimConfig::default()
        };
        assert_eq!(history(cfg.clone()), history(cfg));
    }

    #[test]
    fn every_process_has_at_most_one_op_open() {
        let ops = history(SimConfig {
            ops: 500,
            processes: 8,
            crash_fraction: 0.2,
            ..SimConfig::default()
        });
        let mut open = std::collections::HashSet::new();
        for op in &ops {
            if op.kind == OpType::Invoke {
                assert!(open.insert(op.process), "{op:?}");
            } else {
                assert!(open.remove(&op.process), "{op:?}");
            }
        }
        assert_eq!(ops.iter().filter(|o| o.kind == OpType::Invoke).count(), 500);
    }

    #[test]
    fn stale_read_changes_exactly_one_read() {
        let ops = history(SimConfig {
            ops: 300,
            seed: 3,
            crash_fraction: 0.0,
            fail_fraction: 0.0,
            ..SimConfig::default()
        });
        let mutated = stale_read(&ops).expect("a 300-op history has a stale-read candidate");
        let changed: Vec<_> = ops.iter().zip(&mutated).filter(|(a, b)| a != b).collect();
        assert_eq!(changed.len(), 1);
        assert!(matches!(changed[0].0.f.as_str(), "read" | "get"));
    }
}
