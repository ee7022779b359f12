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

use super::budget::Budget;
use super::model::{Model, Outcome};
use super::prepare::{CallMeta, Event, Partition};
use super::search::{open_twins, search, Failure, SearchResult, Span, OPEN};
use super::value::Values;
use serde::{Deserialize, Serialize};
use serde_json::Value;
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
}

/// Everything a counterexample needs from the checked key.
pub struct Context<'a, M: Model> {
    pub model: &'a M,
    pub values: &'a Values,
    pub f_names: &'a [String],
    pub partition: &'a Partition<M::Call>,
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
    Counterexample {
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
    }
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
    let twins = open_twins(&calls, &spans);
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

fn line(f: &mut fmt::Formatter<'_>, c: &CallView) -> fmt::Result {
    let done = match c.complete {
        Some(e) => format!("{:>6}", e.index),
        None => "     …".to_string(),
    };
    writeln!(
        f,
        "    {:>6}–{done}  process {:<4} {:<28} {:<14} (line {})",
        c.invoke.index,
        c.process,
        c.call,
        c.outcome.to_string(),
        c.invoke.line
    )
}

impl fmt::Display for Counterexample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(k) => writeln!(f, "key {k:?} cannot be linearized.")?,
            None => writeln!(f, "the history cannot be linearized.")?,
        }
        writeln!(f, "  failing call (history indexes invoke–complete):")?;
        line(f, &self.failing_call)?;
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
            line(f, c)?;
        }
        if self.window_others > 0 {
            writeln!(
                f,
                "    (even if the {} other calls invoked before the failing call returned took effect at any time after their invocation, or never)",
                self.window_others
            )?;
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
                line(f, c)?;
            }
        }
        Ok(())
    }
}
