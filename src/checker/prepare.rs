//! Pairing: turn the op stream of a history into calls, grouped per key.
//!
//! Each invocation is matched with its process's next completion. An `ok` pair becomes a
//! completed call; a `fail` pair is dropped (it certainly did not happen) unless it is a
//! compare-failed cas, which is kept as an observation; an `info` pair and an invocation
//! never completed stay open to the end. Nemesis ops are skipped. Every call is encoded
//! by the model right away, so only compact per-key data is kept while streaming: the raw
//! text and JSON values of a million-op history are never held at once.
//!
//! A history that breaks the pairing rules (a completion with no invocation, a second
//! invocation while one is open, a completion whose `f` differs from its invocation's)
//! or an op the model does not understand is rejected with `file:line: rule`.

use super::model::{Model, Outcome, RawCall};
use super::search::{Span, OPEN};
use super::value::Values;
use crate::history::{HistoryError, Op, OpType, Process, COMPARE_FAILED};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;

/// Where an event of a call sits in the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The op's `index` as the history numbered it.
    pub index: u64,
    pub time_ns: u64,
    /// 1-based line of the history file on which the op starts.
    pub line: usize,
}

/// What a report needs to show a call besides its model form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallMeta {
    pub process: u64,
    /// Index into [`Prepared::f_names`].
    pub f: u16,
    pub outcome: Outcome,
    pub invoke: Event,
    pub complete: Option<Event>,
    /// Index into [`Prepared::nodes`] ([`NO_NODE`]: the history did not say), interned
    /// because this is held for every call of a million-op history.
    pub node: u16,
}

/// [`CallMeta::node`] of a call whose ops name no node.
pub const NO_NODE: u16 = u16::MAX;

/// A nemesis op, kept as recorded: a counterexample names the faults in force around its
/// calls, and there are few of these, unlike client ops.
#[derive(Debug, Clone, PartialEq)]
pub struct NemesisOp {
    pub event: Event,
    pub f: String,
    pub value: Value,
    pub error: Option<String>,
}

/// The calls of one key, ordered by invocation, as three parallel vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct Partition<C> {
    /// The key (`None` for ops without one, or when the history is not partitioned).
    pub key: Option<String>,
    pub calls: Vec<C>,
    pub spans: Vec<Span>,
    pub meta: Vec<CallMeta>,
}

impl<C> Partition<C> {
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }
}

/// Counts of what pairing saw and kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryStats {
    /// Client ops read (invocations and completions).
    pub ops: u64,
    /// Nemesis ops skipped.
    pub nemesis_ops: u64,
    /// Calls the search sees.
    pub calls: u64,
    pub ok: u64,
    pub compare_failed: u64,
    pub info: u64,
    pub pending: u64,
    /// `fail` pairs dropped because they certainly did not happen.
    pub failed_dropped: u64,
    /// Calls dropped because they neither change nor constrain the state (e.g. a read
    /// whose result is unknown).
    pub unconstraining_dropped: u64,
}

/// A history ready for the search: the model (with every key and value it has seen),
/// the interned values, and the calls per key.
pub struct Prepared<M: Model> {
    pub model: M,
    pub values: Values,
    pub partitions: Vec<Partition<M::Call>>,
    pub f_names: Vec<String>,
    /// The nodes client ops named, in order of first appearance.
    pub nodes: Vec<String>,
    /// The nemesis ops, in history order.
    pub nemesis: Vec<NemesisOp>,
    pub stats: HistoryStats,
}

impl<M: Model> Prepared<M> {
    /// Approximate bytes held, for the memory budget.
    pub fn heap_bytes(&self) -> usize {
        let per_call = std::mem::size_of::<M::Call>()
            + std::mem::size_of::<Span>()
            + std::mem::size_of::<CallMeta>();
        let calls: usize = self
            .partitions
            .iter()
            .map(|p| p.calls.capacity() * per_call + 64)
            .sum();
        // A nemesis op's value is a small map of node names; a rough size is enough.
        let nemesis = self.nemesis.len() * (std::mem::size_of::<NemesisOp>() + 256);
        calls + nemesis + self.values.heap_bytes()
    }
}

/// An invocation waiting for its completion.
struct Open {
    f: u16,
    key: Option<String>,
    input: Value,
    pos: u64,
    event: Event,
    node: u16,
}

struct Pairing<'p, M: Model> {
    path: &'p Path,
    model: M,
    values: Values,
    by_key: bool,
    f_ids: FxHashMap<String, u16>,
    f_names: Vec<String>,
    node_ids: FxHashMap<String, u16>,
    nodes: Vec<String>,
    partition_ids: FxHashMap<Option<String>, usize>,
    partitions: Vec<Vec<(M::Call, Span, CallMeta)>>,
    keys: Vec<Option<String>>,
    stats: HistoryStats,
}

impl<M: Model> Pairing<'_, M> {
    fn error(&self, line: usize, message: String) -> HistoryError {
        HistoryError::new(self.path, line, message)
    }

    fn f_id(&mut self, f: &str, line: usize) -> Result<u16, HistoryError> {
        if let Some(id) = self.f_ids.get(f) {
            return Ok(*id);
        }
        let id = u16::try_from(self.f_names.len())
            .map_err(|_| self.error(line, "more than 65536 distinct f names".to_string()))?;
        self.f_ids.insert(f.to_string(), id);
        self.f_names.push(f.to_string());
        Ok(id)
    }

    fn node_id(&mut self, node: Option<String>) -> u16 {
        let Some(node) = node else {
            return NO_NODE;
        };
        if let Some(id) = self.node_ids.get(&node) {
            return *id;
        }
        // Past 65535 distinct names (no real cluster) calls just go without a node.
        let id = match u16::try_from(self.nodes.len()) {
            Ok(id) if id != NO_NODE => id,
            _ => return NO_NODE,
        };
        self.node_ids.insert(node.clone(), id);
        self.nodes.push(node);
        id
    }

    /// Encode a paired call and file it under its key.
    fn finish(
        &mut self,
        process: u64,
        open: Open,
        output: Option<&Value>,
        outcome: Outcome,
        end: Option<(u64, Event)>,
        node: u16,
    ) -> Result<(), HistoryError> {
        let raw = RawCall {
            f: &self.f_names[open.f as usize],
            key: open.key.as_deref(),
            input: &open.input,
            output,
            outcome,
        };
        let encoded = self
            .model
            .encode(&raw, &mut self.values)
            .map_err(|message| {
                let message = match end {
                    Some((_, e)) if e.line != open.event.line => {
                        format!("{message} (op completed on line {})", e.line)
                    }
                    _ => message,
                };
                self.error(open.event.line, message)
            })?;
        let Some(call) = encoded else {
            self.stats.unconstraining_dropped += 1;
            return Ok(());
        };
        match outcome {
            Outcome::Ok => self.stats.ok += 1,
            Outcome::CompareFailed => self.stats.compare_failed += 1,
            Outcome::Info => self.stats.info += 1,
            Outcome::Pending => self.stats.pending += 1,
        }
        self.stats.calls += 1;
        let span = Span {
            invoke: open.pos,
            ret: match (outcome.is_completed(), end) {
                (true, Some((pos, _))) => pos,
                _ => OPEN,
            },
        };
        let meta = CallMeta {
            process,
            f: open.f,
            outcome,
            invoke: open.event,
            complete: end.map(|(_, e)| e),
            node,
        };
        let key = if self.by_key { open.key } else { None };
        let slot = match self.partition_ids.get(&key) {
            Some(slot) => *slot,
            None => {
                let slot = self.partitions.len();
                self.partition_ids.insert(key.clone(), slot);
                self.keys.push(key);
                self.partitions.push(Vec::new());
                slot
            }
        };
        self.partitions[slot].push((call, span, meta));
        Ok(())
    }
}

/// Pair and encode the ops of the history at `path` (used in messages only).
///
/// With `by_key`, calls are grouped by their op's `key`; otherwise all calls form one
/// partition (the model still sees each call's key).
pub fn prepare<M, I>(
    model: M,
    values: Values,
    ops: I,
    path: &Path,
    by_key: bool,
) -> Result<Prepared<M>, HistoryError>
where
    M: Model,
    I: IntoIterator<Item = Result<(usize, Op), HistoryError>>,
{
    let mut p = Pairing {
        path,
        model,
        values,
        by_key,
        f_ids: FxHashMap::default(),
        f_names: Vec::new(),
        node_ids: FxHashMap::default(),
        nodes: Vec::new(),
        partition_ids: FxHashMap::default(),
        partitions: Vec::new(),
        keys: Vec::new(),
        stats: HistoryStats::default(),
    };
    let mut open: FxHashMap<u64, Open> = FxHashMap::default();
    let mut nemesis = Vec::new();
    let mut pos: u64 = 0;
    for item in ops {
        let (line, op) = item?;
        let process = match op.process {
            Process::Client(p) => p,
            Process::Nemesis => {
                p.stats.nemesis_ops += 1;
                nemesis.push(NemesisOp {
                    event: Event {
                        index: op.index,
                        time_ns: op.time_ns,
                        line,
                    },
                    f: op.f,
                    value: op.value,
                    error: op.error,
                });
                continue;
            }
        };
        p.stats.ops += 1;
        pos += 1;
        let event = Event {
            index: op.index,
            time_ns: op.time_ns,
            line,
        };
        if op.kind == OpType::Invoke {
            if let Some(prev) = open.get(&process) {
                return Err(p.error(
                    line,
                    format!(
                        "process {process} invokes {} while its {} invoked on line {} has not completed (a process runs one op at a time)",
                        op.f, p.f_names[prev.f as usize], prev.event.line
                    ),
                ));
            }
            let f = p.f_id(&op.f, line)?;
            let node = p.node_id(op.node);
            open.insert(
                process,
                Open {
                    f,
                    key: op.key,
                    input: op.value,
                    pos,
                    event,
                    node,
                },
            );
            continue;
        }
        let Some(inv) = open.remove(&process) else {
            return Err(p.error(
                line,
                format!(
                    "completion ({}) of process {process} (f {}) has no invocation",
                    op.kind, op.f
                ),
            ));
        };
        if p.f_names[inv.f as usize] != op.f {
            return Err(p.error(
                line,
                format!(
                    "completion of process {process} has f {} but its invocation on line {} has f {}",
                    op.f, inv.event.line, p.f_names[inv.f as usize]
                ),
            ));
        }
        if let (Some(k), Some(ik)) = (&op.key, &inv.key) {
            if k != ik {
                return Err(p.error(
                    line,
                    format!(
                        "completion of process {process} has key {k:?} but its invocation on line {} has key {ik:?}",
                        inv.event.line
                    ),
                ));
            }
        }
        let end = Some((pos, event));
        // The node that answered, when the completion says; else the one it was sent to.
        let node = match op.node {
            Some(n) => p.node_id(Some(n)),
            None => inv.node,
        };
        match op.kind {
            OpType::Ok => p.finish(process, inv, Some(&op.value), Outcome::Ok, end, node)?,
            OpType::Fail if op.error.as_deref() == Some(COMPARE_FAILED) => {
                p.finish(process, inv, None, Outcome::CompareFailed, end, node)?
            }
            OpType::Fail => p.stats.failed_dropped += 1,
            OpType::Info => p.finish(process, inv, None, Outcome::Info, end, node)?,
            OpType::Invoke => {}
        }
    }
    let mut pending: Vec<(u64, Open)> = open.into_iter().collect();
    pending.sort_by_key(|(_, o)| o.pos);
    for (process, inv) in pending {
        let node = inv.node;
        p.finish(process, inv, None, Outcome::Pending, None, node)?;
    }
    let partitions = p
        .partitions
        .into_iter()
        .zip(p.keys)
        .map(|(mut calls, key)| {
            calls.sort_by_key(|(_, span, _)| span.invoke);
            let mut part = Partition {
                key,
                calls: Vec::with_capacity(calls.len()),
                spans: Vec::with_capacity(calls.len()),
                meta: Vec::with_capacity(calls.len()),
            };
            for (call, span, meta) in calls {
                part.calls.push(call);
                part.spans.push(span);
                part.meta.push(meta);
            }
            part
        })
        .collect();
    Ok(Prepared {
        model: p.model,
        values: p.values,
        partitions,
        f_names: p.f_names,
        nodes: p.nodes,
        nemesis,
        stats: p.stats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::model::Register;
    use serde_json::json;

    fn op(
        index: u64,
        process: u64,
        kind: OpType,
        f: &str,
        value: Value,
    ) -> Result<(usize, Op), HistoryError> {
        Ok((
            index as usize + 1,
            Op {
                index,
                time_ns: index * 10,
                process: Process::Client(process),
                kind,
                f: f.to_string(),
                key: None,
                value,
                node: None,
                error: None,
            },
        ))
    }

    fn prep(
        ops: Vec<Result<(usize, Op), HistoryError>>,
    ) -> Result<Prepared<Register>, HistoryError> {
        let mut values = Values::new();
        let model = Register::new(true, &Value::Null, false, &mut values);
        prepare(model, values, ops, Path::new("h.jsonl"), true)
    }

    #[test]
    fn pairs_invocations_with_completions_and_keeps_info_open() {
        let p = prep(vec![
            op(0, 1, OpType::Invoke, "write", json!(1)),
            op(1, 2, OpType::Invoke, "write", json!(2)),
            op(2, 1, OpType::Ok, "write", json!(1)),
            op(3, 2, OpType::Info, "write", json!(2)),
            op(4, 3, OpType::Invoke, "cas", json!([1, 3])),
        ])
        .unwrap();
        let part = &p.partitions[0];
        assert_eq!(part.len(), 3);
        assert_eq!(part.spans[0], Span { invoke: 1, ret: 3 });
        assert_eq!(
            part.spans[1],
            Span {
                invoke: 2,
                ret: OPEN
            }
        );
        assert_eq!(part.meta[1].outcome, Outcome::Info);
        assert_eq!(part.meta[2].outcome, Outcome::Pending);
        assert_eq!(part.meta[0].complete.map(|e| e.line), Some(3));
        assert_eq!((p.stats.ok, p.stats.info, p.stats.pending), (1, 1, 1));
    }

    #[test]
    fn drops_failed_ops_but_keeps_compare_failed_cas() {
        let mut failed_cas = op(1, 1, OpType::Fail, "cas", json!([0, 1])).unwrap();
        failed_cas.1.error = Some(COMPARE_FAILED.to_string());
        let p = prep(vec![
            op(0, 1, OpType::Invoke, "cas", json!([0, 1])),
            Ok(failed_cas),
            op(2, 1, OpType::Invoke, "write", json!(5)),
            op(3, 1, OpType::Fail, "write", json!(5)),
        ])
        .unwrap();
        assert_eq!(p.partitions[0].meta[0].outcome, Outcome::CompareFailed);
        assert_eq!(p.stats.failed_dropped, 1);
        assert_eq!(p.stats.calls, 1);
    }

    #[test]
    fn rejects_a_completion_without_invocation_naming_file_and_line() {
        let err = prep(vec![op(0, 3, OpType::Ok, "cas", json!([1, 2]))])
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "h.jsonl:1: completion (ok) of process 3 (f cas) has no invocation"
        );
    }

    #[test]
    fn rejects_a_second_invocation_while_one_is_open() {
        let err = prep(vec![
            op(0, 3, OpType::Invoke, "read", Value::Null),
            op(1, 3, OpType::Invoke, "read", Value::Null),
        ])
        .err()
        .unwrap();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("one op at a time"), "{err}");
    }

    #[test]
    fn rejects_a_completion_whose_f_differs_from_its_invocation() {
        let err = prep(vec![
            op(0, 3, OpType::Invoke, "read", Value::Null),
            op(1, 3, OpType::Ok, "write", json!(1)),
        ])
        .err()
        .unwrap();
        assert!(
            err.message
                .contains("has f write but its invocation on line 1 has f read"),
            "{err}"
        );
    }

    #[test]
    fn reports_a_model_error_at_the_invocation_line() {
        let err = prep(vec![
            op(0, 3, OpType::Invoke, "incr", json!(1)),
            op(1, 3, OpType::Ok, "incr", json!(1)),
        ])
        .err()
        .unwrap();
        assert_eq!(err.line, 1);
        assert!(
            err.message.contains("\"incr\"") && err.message.contains("line 2"),
            "{err}"
        );
    }

    #[test]
    fn skips_nemesis_ops() {
        let mut nemesis = op(0, 0, OpType::Info, "start-partition", json!(["n1"])).unwrap();
        nemesis.1.process = Process::Nemesis;
        let p = prep(vec![Ok(nemesis)]).unwrap();
        assert_eq!(p.stats.nemesis_ops, 1);
        assert!(p.partitions.is_empty());
    }
}
