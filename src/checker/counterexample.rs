//! Counterexamples: what a person needs to act on an invalid verdict.
//!
//! For the key that could not be linearized this gives the *failing call* (the call the
//! deepest partial linearization could not place before it returned), the model states
//! the search stood in when that happened, the longest linearizable prefix, and a small
//! *window* of calls that cannot be linearized on their own terms.
//!
//! The window is found by shrinking, and every shrink step is checked by the search, so
//! the window is a proof, not a guess: the history is first cut at the failing call's
//! return (calls invoked later are dropped, calls still running then become open), then
//! calls are *relaxed* — made open, as if they had completed `info`, or dropped when that
//! leaves them without effect (a read) — for as long as the result stays
//! non-linearizable. Relaxing only ever adds linearizations, so "these calls cannot be
//! linearized even if every other call before the cut might or might not have taken
//! effect" implies the original history is not linearizable either. Shrinking runs under
//! its own time budget and reports whether it reached a 1-minimal window.
//!
//! Each call carries the node that answered it, and the counterexample lists the faults in
//! force around the window (from the history's nemesis ops), each call pointing at those
//! that hit its node while it ran: for a stale read, which node answered and whether it
//! was cut off is the whole story.

use super::budget::Budget;
use super::model::{Model, Outcome, RegisterEffect};
use super::prepare::{CallMeta, Event, NemesisOp, Partition, NO_NODE};
use super::search::{search, twins, Failure, SearchResult, Span, OPEN};
use super::value::{ValueId, Values};
use crate::spec::nemesis::FaultKind;
use crate::spec::schedule::FaultEdge;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};

/// How many calls of the longest linearizable prefix a counterexample lists (the last
/// ones, nearest the failure).
pub const PREFIX_SHOWN: usize = 20;

/// One call as a report shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallView {
    pub process: u64,
    pub f: String,
    /// The model's rendering: `write 3`, `read → 3`, `cas 1 → 2`.
    pub call: String,
    pub outcome: Outcome,
    pub invoke: Event,
    pub complete: Option<Event>,
    /// The node that answered (or, without an answer, the one asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Indexes into [`Counterexample::faults`] of the faults that hit this call's node
    /// while the call ran (an open call: up to the window's end).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_faults: Vec<usize>,
}

/// A fault in force around the window, from the history's nemesis ops.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultInForce {
    /// The nemesis `f` that started it (`start-partition`, `pause` …).
    pub f: String,
    /// The nodes it hit; for a partition every node that lost a link.
    pub nodes: Vec<String>,
    /// A partition into groups that each talk only among themselves: the groups, smallest
    /// first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sides: Vec<Vec<String>>,
    /// One line: `partition: n1 | n2,n3`, `paused n2`.
    pub text: String,
    pub start: Event,
    /// The heal; `None` when the history ended first.
    pub end: Option<Event>,
}

/// Why a key is not linearizable, in terms of its calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counterexample {
    pub key: Option<String>,
    pub failing_call: CallView,
    /// States the model could be in when the failing call had to take effect and could
    /// not (at most 8 distinct ones).
    pub states_before: Vec<Value>,
    /// The smallest set of calls found that cannot be linearized, by invocation.
    pub window: Vec<CallView>,
    /// Whether shrinking finished: removing any single call of the window would make it
    /// linearizable. `false` when the shrink budget ran out first.
    pub window_minimal: bool,
    /// Calls invoked before the failing call returned, outside the window: the window's
    /// proof treats them as open (they may or may not have taken effect).
    pub window_others: usize,
    /// Length of the longest linearizable prefix found.
    pub prefix_len: usize,
    /// Its last [`PREFIX_SHOWN`] calls, in linearization order.
    pub prefix: Vec<CallView>,
    /// Faults in force at some point between the first invocation shown and the window's
    /// last completion, by start. `None` in counterexamples written before faults were
    /// recorded; `Some(empty)` when none was.
    #[serde(default)]
    pub faults: Option<Vec<FaultInForce>>,
    /// On a register: a value read, then another, then the first again, though only one
    /// call ever set it (see [`Reappeared`]). Found over the key's whole history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reappeared: Option<Reappeared>,
}

/// A value that came back: `first` read it, `between` (invoked after `first` returned)
/// read or wrote another value and returned ok, and `again` (invoked after `between`
/// returned) read it once more, while `write` was the only call that ever set it: these
/// four calls alone are not linearizable. Either `again` was answered from a stale state, or the register held the
/// value twice -- the one write took effect twice (a client library that re-sent it, say),
/// which is the likelier story when the write was still running as the other value was
/// seen (`write_running`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reappeared {
    pub first: CallView,
    pub between: CallView,
    pub again: CallView,
    pub write: CallView,
    /// `write` had not returned when `between` was invoked.
    pub write_running: bool,
}

impl Reappeared {
    /// What the four calls mean, in one sentence.
    pub fn reading(&self) -> &'static str {
        if self.write_running {
            "the write, still running, took effect twice (a client library that re-sent it, \
             say), or the last read was answered from a stale state"
        } else {
            "the last read was answered from a stale state (or the write took effect again \
             after it had returned)"
        }
    }
}

/// Everything a counterexample needs from the checked key.
pub struct Context<'a, M: Model> {
    pub model: &'a M,
    pub values: &'a Values,
    pub f_names: &'a [String],
    pub partition: &'a Partition<M::Call>,
    /// [`crate::checker::prepare::Prepared::nodes`].
    pub nodes: &'a [String],
    /// [`crate::checker::prepare::Prepared::nemesis`].
    pub nemesis: &'a [NemesisOp],
}

impl<M: Model> Context<'_, M> {
    fn view(&self, i: u32) -> CallView {
        let i = i as usize;
        let meta: CallMeta = self.partition.meta[i];
        CallView {
            process: meta.process,
            f: self
                .f_names
                .get(meta.f as usize)
                .cloned()
                .unwrap_or_default(),
            call: self.model.describe(&self.partition.calls[i], self.values),
            outcome: meta.outcome,
            invoke: meta.invoke,
            complete: meta.complete,
            node: (meta.node != NO_NODE)
                .then(|| self.nodes.get(meta.node as usize).cloned())
                .flatten(),
            node_faults: Vec::new(),
        }
    }
}

/// Build the counterexample for a key whose search failed with `failure`.
///
/// `states_before` are the failure's blocked states, already rendered (only the search's
/// state table can name them). Shrinking stops after `shrink_time`.
pub fn build<M: Model>(
    cx: &Context<'_, M>,
    failure: &Failure,
    states_before: Vec<Value>,
    shrink_time: Duration,
    memory_limit_bytes: u64,
) -> Counterexample {
    let shrunk = shrink(cx, failure.failing, shrink_time, memory_limit_bytes);
    let skip = failure.deepest.len().saturating_sub(PREFIX_SHOWN);
    let mut found = Counterexample {
        key: cx.partition.key.clone(),
        failing_call: cx.view(failure.failing),
        states_before,
        window: shrunk.core.iter().map(|&i| cx.view(i)).collect(),
        window_minimal: shrunk.minimal,
        window_others: shrunk.members.saturating_sub(shrunk.core.len()),
        prefix_len: failure.deepest.len(),
        prefix: failure.deepest[skip..]
            .iter()
            .map(|&i| cx.view(i))
            .collect(),
        faults: None,
        reappeared: reappeared(cx, failure.failing),
    };
    attach_faults(&mut found, fault_windows(cx.nemesis, cx.nodes));
    found
}

/// A [`Reappeared`] value of the key, preferring one whose `again` is the failing call;
/// `None` when the model is not one register or no value came back.
///
/// For each value set exactly once (the initial value counts as a setting), the widest
/// pair of its reads -- the first to return, the last to be invoked -- is the one most
/// likely to enclose another value, so only that pair is tried: an ok read or write of
/// another value invoked after the first returned and returned before the last was
/// invoked (it took effect in between, so the register held something else there).
/// Those calls are sorted by invocation once, with the two earliest returns of different
/// values kept for every suffix, so the search is O(n log n).
fn reappeared<M: Model>(cx: &Context<'_, M>, failing: u32) -> Option<Reappeared> {
    let init = cx.model.register_init()?;
    let meta = &cx.partition.meta;
    let done = |i: usize| meta[i].complete.map(|e| e.index);
    // The one call that set each value; `None` once a value was set twice (the initial
    // value counts as set before every call).
    let mut setter: BTreeMap<ValueId, Option<usize>> = BTreeMap::from([(init, None)]);
    // Completed ok reads, and completed ok reads and sets (the witnesses of a value held
    // between two reads): (invoke, complete, value, call).
    let mut reads: Vec<(u64, u64, ValueId, usize)> = Vec::new();
    let mut held: Vec<(u64, u64, ValueId, usize)> = Vec::new();
    for (i, call) in cx.partition.calls.iter().enumerate() {
        let effect = cx.model.register_effect(call);
        if let Some(RegisterEffect::Set(v)) = effect {
            setter
                .entry(v)
                .and_modify(|only| *only = None)
                .or_insert(Some(i));
        }
        let (Some(RegisterEffect::Read(v) | RegisterEffect::Set(v)), Outcome::Ok, Some(c)) =
            (effect, meta[i].outcome, done(i))
        else {
            continue;
        };
        let seen = (meta[i].invoke.index, c, v, i);
        held.push(seen);
        if matches!(effect, Some(RegisterEffect::Read(_))) {
            reads.push(seen);
        }
    }
    held.sort_unstable();
    // For each suffix of `held`: the earliest return, and the earliest return of a value
    // other than that one.
    type Best = Option<(u64, ValueId, usize)>;
    let mut suffix: Vec<(Best, Best)> = vec![(None, None); held.len() + 1];
    for k in (0..held.len()).rev() {
        let (_, c, v, i) = held[k];
        let (mut a, mut b) = suffix[k + 1];
        let me = Some((c, v, i));
        if a.is_none_or(|(ac, _, _)| c < ac) {
            if a.is_some_and(|(_, av, _)| av != v) {
                b = a;
            }
            a = me;
        } else if a.is_some_and(|(_, av, _)| av != v) && b.is_none_or(|(bc, _, _)| c < bc) {
            b = me;
        }
        suffix[k] = (a, b);
    }
    // Another value's read or set invoked after `after` and returned before `before`.
    let between = |v: ValueId, after: u64, before: u64| {
        let k = held.partition_point(|r| r.0 <= after);
        let (a, b) = suffix[k];
        [a, b]
            .into_iter()
            .flatten()
            .find(|&(c, w, _)| w != v && c < before)
            .map(|(_, _, i)| i)
    };
    let mut first_done: BTreeMap<ValueId, (u64, usize)> = BTreeMap::new();
    let mut last_invoked: BTreeMap<ValueId, (u64, usize)> = BTreeMap::new();
    for &(inv, c, v, i) in &reads {
        first_done
            .entry(v)
            .and_modify(|e| {
                if c < e.0 {
                    *e = (c, i);
                }
            })
            .or_insert((c, i));
        last_invoked
            .entry(v)
            .and_modify(|e| {
                if inv > e.0 {
                    *e = (inv, i);
                }
            })
            .or_insert((inv, i));
    }
    let found = |v: ValueId, again: (u64, usize)| -> Option<Reappeared> {
        let only = setter.get(&v).copied().flatten()?;
        let (first_c, first) = *first_done.get(&v)?;
        let mid = between(v, first_c, again.0)?;
        Some(Reappeared {
            first: cx.view(first as u32),
            between: cx.view(mid as u32),
            again: cx.view(again.1 as u32),
            write: cx.view(only as u32),
            write_running: done(only).is_none_or(|c| c > meta[mid].invoke.index),
        })
    };
    let f = failing as usize;
    if let (Some(RegisterEffect::Read(v)), Some(_)) =
        (cx.model.register_effect(&cx.partition.calls[f]), done(f))
    {
        if let Some(r) = found(v, (meta[f].invoke.index, f)) {
            return Some(r);
        }
    }
    last_invoked.iter().find_map(|(&v, &again)| found(v, again))
}

/// Keep the faults of `all` in force around the calls shown and point each call at those
/// that hit its node while it ran.
fn attach_faults(cx: &mut Counterexample, all: Vec<FaultInForce>) {
    let shown = || {
        cx.window
            .iter()
            .chain(std::iter::once(&cx.failing_call))
            .chain(&cx.prefix)
    };
    let lo = shown().map(|c| c.invoke.index).min().unwrap_or(0);
    // The window is judged up to the failing call's return: later faults cannot explain
    // it, even while an open call of the window lingers.
    let hi = if cx.failing_call.complete.is_some() {
        cx.window
            .iter()
            .chain(std::iter::once(&cx.failing_call))
            .filter_map(|c| c.complete.map(|e| e.index))
            .max()
            .unwrap_or(u64::MAX)
    } else {
        u64::MAX
    };
    let overlaps = |f: &FaultInForce, from: u64, to: u64| {
        f.start.index <= to && f.end.is_none_or(|e| e.index >= from)
    };
    let kept: Vec<FaultInForce> = all.into_iter().filter(|f| overlaps(f, lo, hi)).collect();
    let mark = |c: &mut CallView| {
        let Some(node) = &c.node else {
            return;
        };
        let to = c
            .complete
            .map_or(hi, |e| e.index.min(hi).max(c.invoke.index));
        c.node_faults = kept
            .iter()
            .enumerate()
            .filter(|(_, f)| f.nodes.contains(node) && overlaps(f, c.invoke.index, to))
            .map(|(i, _)| i)
            .collect();
    };
    cx.window.iter_mut().for_each(mark);
    mark(&mut cx.failing_call);
    cx.prefix.iter_mut().for_each(mark);
    cx.faults = Some(kept);
}

/// Every fault of the history: a start opens one, the next heal of its group closes every
/// open one of the group (as the run page's timeline draws them: one `reset-clock` heals a
/// bump and a strobe). A start the nemesis could not apply (it carries an `error`) or that
/// hit no node opens nothing. `cluster` are the nodes known otherwise (those clients
/// spoke to): a partition's op names only the nodes that lost a link, and whether its
/// groups are a clean cut depends on the others too (a bridge node hears both sides).
pub fn fault_windows(nemesis: &[NemesisOp], cluster: &[String]) -> Vec<FaultInForce> {
    let mut windows: Vec<(FaultKind, FaultInForce)> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    for op in nemesis {
        match FaultEdge::of(&op.f) {
            Some(FaultEdge::Start(kind)) => {
                if op.error.is_some() {
                    continue;
                }
                let (nodes, sides, text) = describe(kind, &op.value, cluster);
                if nodes.is_empty() {
                    continue;
                }
                open.push(windows.len());
                windows.push((
                    kind,
                    FaultInForce {
                        f: op.f.clone(),
                        nodes,
                        sides,
                        text,
                        start: op.event,
                        end: None,
                    },
                ));
            }
            Some(FaultEdge::Heal(group)) => {
                open.retain(|&w| {
                    let (kind, fault) = &mut windows[w];
                    if kind.heal_group() == group {
                        fault.end = Some(op.event);
                        false
                    } else {
                        true
                    }
                });
            }
            None => {}
        }
    }
    windows.into_iter().map(|(_, f)| f).collect()
}

fn names(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|n| match n {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `+60 s`, `-250 ms`.
fn offset_text(ms: i64) -> String {
    if ms != 0 && ms % 1000 == 0 {
        format!("{:+} s", ms / 1000)
    } else {
        format!("{ms:+} ms")
    }
}

/// The nodes a fault hit, a partition's sides, and its one-line text.
fn describe(
    kind: FaultKind,
    v: &Value,
    cluster: &[String],
) -> (Vec<String>, Vec<Vec<String>>, String) {
    // Older journals and imports wrote a bare list of nodes as the value.
    let listed = if v.is_array() {
        names(Some(v))
    } else {
        names(v.get("nodes"))
    };
    let int = |k: &str| v.get(k).and_then(Value::as_i64).unwrap_or(0);
    let joined = listed.join(", ");
    match kind {
        FaultKind::Partition => {
            let Some(grudge) = v.get("grudge").and_then(Value::as_object) else {
                return (listed, Vec::new(), format!("partition: {joined}"));
            };
            let drops: BTreeMap<String, BTreeSet<String>> = grudge
                .iter()
                .map(|(n, d)| (n.clone(), names(Some(d)).into_iter().collect()))
                .filter(|(_, d): &(String, BTreeSet<String>)| !d.is_empty())
                .collect();
            let mut nodes: BTreeSet<String> = listed.into_iter().collect();
            for (n, d) in &drops {
                nodes.insert(n.clone());
                nodes.extend(d.iter().cloned());
            }
            let one_way = v.get("one_way").and_then(Value::as_bool) == Some(true);
            let what = if one_way {
                "partition (one way)"
            } else {
                "partition"
            };
            let mut everyone = nodes.clone();
            everyone.extend(cluster.iter().cloned());
            let sides = sides(&everyone, &drops);
            let text = if sides.len() >= 2 {
                let s: Vec<String> = sides.iter().map(|s| s.join(",")).collect();
                format!("{what}: {}", s.join(" | "))
            } else {
                let d: Vec<String> = drops
                    .iter()
                    .map(|(n, d)| {
                        format!(
                            "{n} drops {}",
                            d.iter().cloned().collect::<Vec<_>>().join(" ")
                        )
                    })
                    .collect();
                format!("{what}: {}", d.join("; "))
            };
            (nodes.into_iter().collect(), sides, text)
        }
        FaultKind::Pause => (listed, Vec::new(), format!("paused {joined}")),
        FaultKind::Kill => (listed, Vec::new(), format!("killed {joined}")),
        FaultKind::ClockBump => {
            let text = match v.get("offsets_ms").and_then(Value::as_object) {
                Some(m) => m
                    .iter()
                    .map(|(n, o)| format!("{n} {}", offset_text(o.as_i64().unwrap_or(0))))
                    .collect::<Vec<_>>()
                    .join(", "),
                None => joined,
            };
            (listed, Vec::new(), format!("clock: {text}"))
        }
        FaultKind::ClockStrobe => {
            let text = format!(
                "clock strobe: {joined} 0 ↔ {} every {} ms",
                offset_text(int("offset_ms")),
                int("period_ms")
            );
            (listed, Vec::new(), text)
        }
        FaultKind::Loss => {
            let text = match v.get("percent") {
                Some(p) => format!("loss: {joined} {p} %"),
                None => format!("loss: {joined}"),
            };
            (listed, Vec::new(), text)
        }
        FaultKind::Twin => {
            let sees = names(v.get("sees_twin")).join(", ");
            let text = if sees.is_empty() {
                format!("twin: {joined}")
            } else {
                format!("twin: {joined} (its twin seen by {sees})")
            };
            (listed, Vec::new(), text)
        }
        FaultKind::PowerFail => {
            let bytes: u64 = v
                .get("lost")
                .and_then(Value::as_object)
                .map_or(0, |m| m.values().filter_map(|l| l["bytes"].as_u64()).sum());
            (
                listed,
                Vec::new(),
                format!("power failure: {joined} ({bytes} un-fsynced bytes lost)"),
            )
        }
        FaultKind::Corrupt => {
            let changes = v.get("changes").and_then(Value::as_array);
            let files: BTreeSet<String> = changes
                .into_iter()
                .flatten()
                .filter_map(|c| Some(format!("{}:{}", c["node"].as_str()?, c["file"].as_str()?)))
                .collect();
            let damage = v.get("damage").and_then(Value::as_str).unwrap_or("damage");
            let stopped = names(v.get("stopped")).join(", ");
            let text = if files.is_empty() {
                format!("corrupt ({damage}): {stopped} stopped, no file damaged")
            } else {
                format!(
                    "corrupt ({damage}): {} change(s) in {}",
                    changes.map_or(0, Vec::len),
                    files.into_iter().collect::<Vec<_>>().join(", ")
                )
            };
            (listed, Vec::new(), text)
        }
        FaultKind::Leave => {
            // `via`: each node → the member its change was sent to.
            let via: Vec<String> = v
                .get("via")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .filter_map(|(n, m)| Some(format!("{n} via {}", m.as_str()?)))
                .collect();
            let text = if via.is_empty() {
                format!("leave: {joined} removed from the configuration")
            } else {
                format!(
                    "leave: {joined} removed from the configuration ({})",
                    via.join(", ")
                )
            };
            (listed, Vec::new(), text)
        }
        FaultKind::Twins => {
            let groups: Vec<Vec<String>> = v
                .get("groups")
                .and_then(Value::as_array)
                .map(|gs| gs.iter().map(|g| names(Some(g))).collect())
                .unwrap_or_default();
            let g: Vec<String> = groups.iter().map(|g| g.join(",")).collect();
            let round = v.get("round").and_then(Value::as_u64).unwrap_or(0);
            let lead = match v.get("leader").and_then(Value::as_str) {
                Some(l) => format!(", leader {l}"),
                None => String::new(),
            };
            let text = format!("twins round {round}: {}{lead}", g.join(" | "));
            (listed, groups, text)
        }
        FaultKind::Delay => {
            let text = format!(
                "delay: {joined} {} ms ± {} ms",
                int("latency_ms"),
                int("jitter_ms")
            );
            (listed, Vec::new(), text)
        }
    }
}

/// The groups of a partition in which every node hears every other of its group and none
/// outside it, smallest first; empty when the grudge is not such a clean cut (a bridge, a
/// ring of majorities).
fn sides(nodes: &BTreeSet<String>, drops: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let linked = |a: &String, b: &String| {
        !drops.get(a).is_some_and(|d| d.contains(b)) && !drops.get(b).is_some_and(|d| d.contains(a))
    };
    let mut groups: Vec<Vec<String>> = Vec::new();
    for n in nodes {
        match groups.iter_mut().find(|g| g.iter().all(|m| linked(n, m))) {
            Some(g) => g.push(n.clone()),
            None => groups.push(vec![n.clone()]),
        }
    }
    let clean = groups.iter().enumerate().all(|(i, g)| {
        groups[i + 1..]
            .iter()
            .all(|h| g.iter().all(|a| h.iter().all(|b| !linked(a, b))))
    });
    if !clean || groups.len() < 2 {
        return Vec::new();
    }
    groups.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    groups
}

struct Shrunk {
    /// Calls kept as they were recorded.
    core: Vec<u32>,
    /// Calls in the cut history (core plus relaxed ones).
    members: usize,
    minimal: bool,
}

/// Whether the history made of `members`, with every member outside `core` relaxed, is
/// provably not linearizable (`None`: the budget ran out before an answer).
fn unlinearizable<M: Model>(
    cx: &Context<'_, M>,
    members: &[u32],
    core: &[u32],
    budget: &Budget,
) -> Option<bool> {
    let p = cx.partition;
    let mut calls = Vec::with_capacity(members.len());
    let mut spans = Vec::with_capacity(members.len());
    let mut in_core = core.iter().peekable();
    for &m in members {
        let kept = in_core.peek() == Some(&&m);
        if kept {
            in_core.next();
            calls.push(p.calls[m as usize].clone());
            spans.push(p.spans[m as usize]);
        } else if let Some(relaxed) = cx.model.relax(&p.calls[m as usize]) {
            calls.push(relaxed);
            spans.push(Span {
                invoke: p.spans[m as usize].invoke,
                ret: OPEN,
            });
        }
    }
    if let Some(merged) = cx.model.merge_unobserved(&calls) {
        calls = merged;
    }
    let twins = twins(&calls, &spans);
    let mut steps = cx.model.steps(&calls);
    match search(&spans, &twins, &mut steps, budget).0 {
        SearchResult::NotLinearizable(_) => Some(true),
        SearchResult::Linearizable => Some(false),
        SearchResult::Exhausted(_) => None,
    }
}

/// Runs the shrinking tests: each gets a slice of the shrink time, so that one hard
/// sub-search (relaxed calls can make the search much wider) cannot eat the rest.
struct Tester<'c, 'a, M: Model> {
    cx: &'c Context<'a, M>,
    deadline: Instant,
    per_test: Duration,
    memory_limit_bytes: u64,
    /// Some test ran out of budget: a call was kept without proof that it is needed.
    inconclusive: bool,
}

impl<M: Model> Tester<'_, '_, M> {
    fn out_of_time(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Whether the history stays provably non-linearizable with only `core` kept.
    fn still_fails(&mut self, members: &[u32], core: &[u32]) -> bool {
        let left = self.deadline.saturating_duration_since(Instant::now());
        let budget = Budget::new(self.per_test.min(left), self.memory_limit_bytes);
        match unlinearizable(self.cx, members, core, &budget) {
            Some(fails) => fails,
            None => {
                self.inconclusive = true;
                false
            }
        }
    }

    /// Delta debugging (complements only): relax chunks of the `removable` calls of
    /// `core`, halving the chunks down to single calls, while the history still fails.
    fn ddmin(&mut self, members: &[u32], core: &mut Vec<u32>, removable: &dyn Fn(u32) -> bool) {
        let mut granularity = 2usize;
        loop {
            let candidates: Vec<u32> = core.iter().copied().filter(|&c| removable(c)).collect();
            if candidates.is_empty() || self.out_of_time() {
                return;
            }
            let granularity_now = granularity.min(candidates.len());
            let chunk = candidates.len().div_ceil(granularity_now);
            let mut reduced = false;
            for group in candidates.chunks(chunk) {
                let candidate: Vec<u32> = core
                    .iter()
                    .copied()
                    .filter(|c| !group.contains(c))
                    .collect();
                if self.still_fails(members, &candidate) {
                    *core = candidate;
                    granularity = granularity_now.saturating_sub(1).max(2);
                    reduced = true;
                    break;
                }
                if self.out_of_time() {
                    return;
                }
            }
            if !reduced {
                if chunk == 1 {
                    return;
                }
                granularity = (granularity_now * 2).min(candidates.len());
            }
        }
    }
}

fn shrink<M: Model>(
    cx: &Context<'_, M>,
    failing: u32,
    time: Duration,
    memory_limit_bytes: u64,
) -> Shrunk {
    let mut t = Tester {
        cx,
        deadline: Instant::now() + time,
        per_test: (time / 16).max(Duration::from_millis(10)),
        memory_limit_bytes,
        inconclusive: false,
    };
    let spans = &cx.partition.spans;
    let all: Vec<u32> = (0..spans.len() as u32).collect();
    let completed = |members: &[u32], cut: u64| -> Vec<u32> {
        members
            .iter()
            .copied()
            .filter(|&i| spans[i as usize].ret <= cut)
            .collect()
    };
    // Cut at the failing call's return; fall back to the whole key if the cut history
    // is not shown to fail (the failure point is a heuristic, not a proof).
    let cut = spans.get(failing as usize).map_or(OPEN, |s| s.ret);
    let members: Vec<u32> = all
        .iter()
        .copied()
        .filter(|&i| spans[i as usize].invoke < cut)
        .collect();
    let mut core = completed(&members, cut);
    let members = if t.still_fails(&members, &core) {
        members
    } else {
        core = completed(&all, OPEN - 1);
        all
    };
    t.inconclusive = false;
    // Reads first: dropping them is cheap and shrinks every later test.
    let calls = &cx.partition.calls;
    t.ddmin(&members, &mut core, &|c| {
        cx.model.is_read_only(&calls[c as usize])
    });
    t.ddmin(&members, &mut core, &|_| true);
    let minimal = core.len() < 2 || !(t.inconclusive || t.out_of_time());
    Shrunk {
        core,
        members: members.len(),
        minimal,
    }
}

fn line(f: &mut fmt::Formatter<'_>, c: &CallView, faults: &[FaultInForce]) -> fmt::Result {
    let done = match c.complete {
        Some(e) => format!("{:>6}", e.index),
        None => "     …".to_string(),
    };
    write!(
        f,
        "    {:>6}–{done}  process {:<4} {:<28} {:<14} (line {})",
        c.invoke.index,
        c.process,
        c.call,
        c.outcome.to_string(),
        c.invoke.line
    )?;
    if let Some(node) = &c.node {
        write!(f, " on {node}")?;
    }
    let hit: Vec<&str> = c
        .node_faults
        .iter()
        .filter_map(|&i| faults.get(i))
        .map(|x| x.text.as_str())
        .collect();
    if !hit.is_empty() {
        write!(f, " [{}]", hit.join("; "))?;
    }
    writeln!(f)
}

impl fmt::Display for Counterexample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(k) => writeln!(f, "key {k:?} cannot be linearized.")?,
            None => writeln!(f, "the history cannot be linearized.")?,
        }
        let faults = self.faults.as_deref().unwrap_or_default();
        writeln!(f, "  failing call (history indexes invoke–complete):")?;
        line(f, &self.failing_call, faults)?;
        let states: Vec<String> = self.states_before.iter().map(Value::to_string).collect();
        writeln!(
            f,
            "  just before it, the model could be in: {}",
            states.join(", ")
        )?;
        writeln!(
            f,
            "  smallest window found that cannot be linearized ({} calls{}):",
            self.window.len(),
            if self.window_minimal {
                ", minimal"
            } else {
                "; shrinking stopped at its time budget"
            }
        )?;
        for c in &self.window {
            line(f, c, faults)?;
        }
        if self.window_others > 0 {
            writeln!(
                f,
                "    (even if the {} other calls invoked before the failing call returned took effect at any time after their invocation, or never)",
                self.window_others
            )?;
        }
        if !faults.is_empty() {
            writeln!(f, "  faults in force around these calls:")?;
            for x in faults {
                let end = x.end.map_or("…".to_string(), |e| e.index.to_string());
                writeln!(f, "    {:>6}–{end:>6}  {}", x.start.index, x.text)?;
            }
        }
        if let Some(r) = &self.reappeared {
            writeln!(
                f,
                "  a value came back: read, another value read or written after, the first read \
                 again, and one call alone set it -- {}:",
                r.reading()
            )?;
            for c in [&r.first, &r.between, &r.again, &r.write] {
                line(f, c, faults)?;
            }
        }
        writeln!(
            f,
            "  longest linearizable prefix: {} calls",
            self.prefix_len
        )?;
        if !self.prefix.is_empty() {
            writeln!(
                f,
                "  its last {} in linearization order:",
                self.prefix.len()
            )?;
            for c in &self.prefix {
                line(f, c, faults)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leave_names_the_member_each_change_was_sent_to() {
        let v = serde_json::json!({"nodes": ["n3"], "via": {"n3": "n1"}});
        let (nodes, _, text) = describe(FaultKind::Leave, &v, &[]);
        assert_eq!(nodes, vec!["n3".to_string()]);
        assert_eq!(text, "leave: n3 removed from the configuration (n3 via n1)");
    }
    use crate::checker::model::{ModelKind, ModelSpec};
    use crate::checker::{check, CheckOptions};
    use crate::history::{HistoryError, Op, OpType, Process};
    use serde_json::json;
    use std::path::Path;

    fn client(p: u64, kind: OpType, f: &str, value: Value, node: &str) -> Op {
        Op {
            index: 0,
            time_ns: 0,
            process: Process::Client(p),
            kind,
            f: f.into(),
            key: Some("k".into()),
            value,
            node: Some(node.into()),
            error: None,
        }
    }

    fn nemesis(f: &str, value: Value) -> Op {
        Op {
            index: 0,
            time_ns: 0,
            process: Process::Nemesis,
            kind: OpType::Info,
            f: f.into(),
            key: None,
            value,
            node: None,
            error: None,
        }
    }

    fn counterexample(mut ops: Vec<Op>) -> Counterexample {
        for (i, o) in ops.iter_mut().enumerate() {
            o.index = i as u64;
            o.time_ns = i as u64 * 1_000_000;
        }
        let lines: Vec<Result<(usize, Op), HistoryError>> = ops
            .into_iter()
            .enumerate()
            .map(|(i, o)| Ok((i + 1, o)))
            .collect();
        let report = check(
            lines,
            Path::new("h.jsonl"),
            &ModelSpec::new(ModelKind::Register),
            &CheckOptions::default(),
        )
        .unwrap();
        report
            .counterexample
            .expect("invalid with a counterexample")
    }

    /// n1 is cut off from n2 and n3; a write goes through n2, then n1 serves the old value.
    fn stale_read_on_the_cut_off_node() -> Vec<Op> {
        use OpType::*;
        vec![
            client(0, Invoke, "write", json!(1), "n2"),
            client(0, Ok, "write", json!(1), "n2"),
            client(3, Invoke, "read", Value::Null, "n3"),
            client(3, Ok, "read", json!(1), "n3"),
            nemesis(
                "start-partition",
                json!({"nodes": ["n1", "n2", "n3"], "grudge": {"n1": ["n2", "n3"], "n2": ["n1"], "n3": ["n1"]}, "one_way": false}),
            ),
            client(1, Invoke, "write", json!(2), "n2"),
            client(1, Ok, "write", json!(2), "n2"),
            client(2, Invoke, "read", Value::Null, "n1"),
            client(2, Ok, "read", json!(1), "n1"),
            nemesis("stop-partition", json!({"nodes": ["n1", "n2", "n3"]})),
            // After the failing call returned: not part of the story.
            nemesis("pause", json!({"nodes": ["n1"]})),
        ]
    }

    /// Calls one after another, each invoked and then ok: (process, f, value, node); a
    /// read's value is what it returned.
    fn one_by_one(calls: &[(u64, &str, i64, &str)]) -> Vec<Op> {
        calls
            .iter()
            .flat_map(|&(p, f, v, n)| {
                let input = if f == "read" { Value::Null } else { json!(v) };
                [
                    client(p, OpType::Invoke, f, input, n),
                    client(p, OpType::Ok, f, json!(v), n),
                ]
            })
            .collect()
    }

    /// (call, invoke index) of the four calls of a value that came back.
    fn story(r: &Reappeared) -> [(&str, u64); 4] {
        [&r.first, &r.between, &r.again, &r.write].map(|c| (c.call.as_str(), c.invoke.index))
    }

    #[test]
    fn a_value_read_again_after_another_names_its_only_write() {
        // Process 0's write of 7 takes effect, process 1 reads it, writes and reads 8, then
        // reads 7 again: the write of 7 ran twice (or the last read was stale). The
        // acknowledged write of 8 is the earliest witness of another value in between.
        let mut ops = vec![client(0, OpType::Invoke, "write", json!(7), "n1")];
        ops.extend(one_by_one(&[
            (1, "read", 7, "n2"),
            (1, "write", 8, "n2"),
            (1, "read", 8, "n2"),
            (1, "read", 7, "n2"),
        ]));
        ops.push(client(0, OpType::Ok, "write", json!(7), "n1"));
        let cx = counterexample(ops);
        let r = cx.reappeared.as_ref().expect("the value came back");
        assert!(r.write_running);
        assert_eq!(
            story(r),
            [
                ("read → 7", 1),
                ("write 8", 3),
                ("read → 7", 7),
                ("write 7", 0)
            ]
        );
        assert_eq!(r.again.invoke.index, cx.failing_call.invoke.index);
        let text = cx.to_string();
        assert!(text.contains("a value came back"), "{text}");
        assert_eq!(
            serde_json::to_value(&cx).unwrap()["reappeared"]["write"]["call"],
            "write 7"
        );
    }

    #[test]
    fn a_stale_read_comes_back_too_but_a_value_written_twice_does_not() {
        // A stale read: 1 read, 2 written and acknowledged, 1 read again, and the one write
        // of 1 had returned before 2 was written.
        let cx = counterexample(stale_read_on_the_cut_off_node());
        let r = cx.reappeared.as_ref().expect("1 came back");
        assert!(!r.write_running);
        assert!(cx
            .to_string()
            .contains("stale state (or the write took effect again"));
        // Nothing came back: 7 read, 8 written, 9 read while its write runs, 8 read (stale).
        let mut ops = one_by_one(&[(0, "write", 7, "n1"), (1, "read", 7, "n2")]);
        ops.push(client(2, OpType::Invoke, "write", json!(9), "n3"));
        ops.extend(one_by_one(&[
            (1, "write", 8, "n2"),
            (1, "read", 9, "n2"),
            (1, "read", 8, "n2"),
        ]));
        let cx = counterexample(ops);
        assert_eq!(cx.reappeared, None, "{cx}");
        assert!(serde_json::to_value(&cx)
            .unwrap()
            .get("reappeared")
            .is_none());
        // 7 read, 8 read, 7 read again -- but 7 was written twice; then 8 again, which was
        // written once: that is the value that came back.
        let cx = counterexample(one_by_one(&[
            (0, "write", 7, "n1"),
            (1, "read", 7, "n2"),
            (1, "write", 8, "n2"),
            (1, "read", 8, "n2"),
            (0, "write", 7, "n1"),
            (1, "read", 7, "n2"),
            (1, "read", 8, "n2"),
        ]));
        assert_eq!(cx.failing_call.call, "read → 8");
        let r = cx.reappeared.expect("8 came back");
        assert_eq!(
            story(&r),
            [
                ("read → 8", 6),
                ("write 7", 8),
                ("read → 8", 12),
                ("write 8", 4)
            ]
        );
    }

    #[test]
    fn a_stale_read_names_its_node_and_the_partition_that_cut_it_off() {
        let cx = counterexample(stale_read_on_the_cut_off_node());
        assert_eq!(cx.failing_call.call, "read → 1");
        assert_eq!(cx.failing_call.node.as_deref(), Some("n1"));
        let faults = cx.faults.as_deref().unwrap();
        assert_eq!(faults.len(), 1, "the later pause is left out: {faults:?}");
        assert_eq!(faults[0].text, "partition: n1 | n2,n3");
        assert_eq!(faults[0].sides, vec![vec!["n1"], vec!["n2", "n3"]]);
        assert_eq!(faults[0].start.index, 4);
        assert_eq!(faults[0].end.map(|e| e.index), Some(9));
        assert_eq!(cx.failing_call.node_faults, vec![0]);
        let first_write = cx.window.iter().find(|c| c.call == "write 1").unwrap();
        assert_eq!(first_write.node.as_deref(), Some("n2"));
        assert!(
            first_write.node_faults.is_empty(),
            "it completed before the partition"
        );
        let text = cx.to_string();
        assert!(
            text.contains("on n1 [partition: n1 | n2,n3]"),
            "the terminal shows them too:\n{text}"
        );
        assert!(
            text.contains("faults in force around these calls"),
            "{text}"
        );
    }

    #[test]
    fn faults_and_nodes_are_additive_fields_of_the_json() {
        let cx = counterexample(stale_read_on_the_cut_off_node());
        let v = serde_json::to_value(&cx).unwrap();
        assert_eq!(v["failing_call"]["node"], "n1");
        assert_eq!(v["failing_call"]["node_faults"], json!([0]));
        assert_eq!(v["faults"][0]["f"], "start-partition");
        assert_eq!(v["faults"][0]["nodes"], json!(["n1", "n2", "n3"]));
        // A counterexample written before nodes and faults were recorded still reads.
        let mut old = v.clone();
        let o = old.as_object_mut().unwrap();
        o.remove("faults");
        let c = o["failing_call"].as_object_mut().unwrap();
        c.remove("node");
        c.remove("node_faults");
        let back: Counterexample = serde_json::from_value(old).unwrap();
        assert_eq!(back.faults, None);
        assert_eq!(back.failing_call.node, None);
    }

    fn op_at(index: u64, f: &str, value: Value, error: Option<&str>) -> NemesisOp {
        NemesisOp {
            event: Event {
                index,
                time_ns: index,
                line: index as usize + 1,
            },
            f: f.into(),
            value,
            error: error.map(String::from),
        }
    }

    #[test]
    fn fault_windows_describe_each_kind_and_close_at_their_heal() {
        let cluster: Vec<String> = ["n1", "n2", "n3"].map(String::from).to_vec();
        let w = fault_windows(
            &[
                // A bridge: n2 hears both sides, so there are no clean sides.
                op_at(
                    0,
                    "start-partition",
                    json!({"nodes": ["n1", "n3"], "grudge": {"n1": ["n3"], "n3": ["n1"]}}),
                    None,
                ),
                op_at(1, "pause", json!({"nodes": ["n2"]}), None),
                op_at(2, "kill", json!({}), Some("no leader")),
                op_at(
                    3,
                    "bump-clock",
                    json!({"nodes": ["n3"], "offsets_ms": {"n3": -60000}}),
                    None,
                ),
                op_at(4, "resume", json!({"nodes": ["n2"]}), None),
                op_at(
                    5,
                    "strobe-clock",
                    json!({"nodes": ["n1"], "offset_ms": 250, "period_ms": 10}),
                    None,
                ),
                op_at(6, "reset-clock", json!({"nodes": ["n1", "n3"]}), None),
                op_at(
                    7,
                    "start-loss",
                    json!({"nodes": ["n2"], "percent": 20}),
                    None,
                ),
                op_at(
                    8,
                    "start-delay",
                    json!({"nodes": ["n2"], "latency_ms": 50, "jitter_ms": 5}),
                    None,
                ),
            ],
            &cluster,
        );
        let got: Vec<(&str, Option<u64>)> = w
            .iter()
            .map(|f| (f.text.as_str(), f.end.map(|e| e.index)))
            .collect();
        assert_eq!(
            got,
            vec![
                ("partition: n1 drops n3; n3 drops n1", None),
                ("paused n2", Some(4)),
                ("clock: n3 -60 s", Some(6)),
                ("clock strobe: n1 0 ↔ +250 ms every 10 ms", Some(6)),
                ("loss: n2 20 %", None),
                ("delay: n2 50 ms ± 5 ms", None),
            ]
        );
        assert!(w[0].sides.is_empty());
    }
}
