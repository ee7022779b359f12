//! Checkers: turn a history into a verdict.
//!
//! Owns the sequential models and the linearizability search. Verdicts are values, never
//! errors: a checker that runs out of time or memory says [`Verdict::Unknown`].
//!
//! The pipeline of [`check`]: [`prepare`] pairs the op stream into calls, encoded by a
//! [`model`] and grouped per key; [`search`] decides each key (keys in parallel, the
//! worst verdict wins — P-compositionality: a history is linearizable iff each key's
//! sub-history is); for an invalid key [`counterexample`] explains why. [`budget`]
//! bounds time and memory throughout. [`simulate`] and [`brute`] exist to test all this;
//! The `faultline check` subcommand is [`crate::commands::check`]. Apart from all this,
//! [`liveness`] judges whether the cluster served again after its faults were healed.

pub mod agreement;
pub mod append;
pub mod brute;
pub mod budget;
pub mod counterexample;
pub mod liveness;
pub mod model;
pub mod prepare;
pub mod search;
pub mod set;
pub mod simulate;
pub mod stats;
pub mod value;

use crate::history::{HistoryError, Op};
use budget::{Budget, Exhausted};
use counterexample::Counterexample;
use model::{Kv, Model, ModelKind, ModelSpec, MultiRegister, Mutex, Register};
use prepare::{HistoryStats, Partition, Prepared};
use search::{Failure, SearchResult, SearchStats, Transitions};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The outcome of checking a history. When verdicts are composed, the worst wins
/// (invalid > unknown > valid).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Valid,
    Invalid,
    Unknown,
}

/// A campaign's expectation is one of the verdicts.
impl From<crate::spec::campaign::Expect> for Verdict {
    fn from(e: crate::spec::campaign::Expect) -> Verdict {
        match e {
            crate::spec::campaign::Expect::Valid => Verdict::Valid,
            crate::spec::campaign::Expect::Invalid => Verdict::Invalid,
        }
    }
}

impl Verdict {
    /// The process exit code for this verdict (0 valid, 1 invalid, 2 unknown).
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Valid => 0,
            Verdict::Invalid => 1,
            Verdict::Unknown => 2,
        }
    }

    /// Combine two verdicts: invalid beats unknown beats valid.
    pub fn worst(self, other: Verdict) -> Verdict {
        use Verdict::*;
        match (self, other) {
            (Invalid, _) | (_, Invalid) => Invalid,
            (Unknown, _) | (_, Unknown) => Unknown,
            _ => Valid,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Valid => "valid",
            Verdict::Invalid => "invalid",
            Verdict::Unknown => "unknown",
        })
    }
}

/// Limits and switches of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOptions {
    pub time_limit: Duration,
    pub memory_limit_bytes: u64,
    /// Check each key on its own (P-compositionality). Off = one search over all ops.
    pub partition_by_key: bool,
    /// Worker threads for the per-key searches; 0 = one per core.
    pub threads: usize,
    /// Build a counterexample for an invalid verdict (shrinking takes extra time).
    pub counterexample: bool,
    /// How long the other keys are still searched once one is invalid.
    pub after_invalid: Duration,
}

impl Default for CheckOptions {
    fn default() -> CheckOptions {
        CheckOptions {
            time_limit: Duration::from_secs(60),
            memory_limit_bytes: 2 << 30,
            partition_by_key: true,
            threads: 0,
            counterexample: true,
            after_invalid: AFTER_INVALID,
        }
    }
}

/// A key that did not come out valid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyProblem {
    pub key: Option<String>,
    pub calls: usize,
    pub verdict: Verdict,
    /// Why the key is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Search effort summed over keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchTotals {
    pub steps: u64,
    pub configurations: u64,
    /// The largest number of calls placed at once on any key.
    pub max_depth: u32,
}

/// The result of checking a history for linearizability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    pub verdict: Verdict,
    pub model: String,
    /// Why the verdict is unknown (time or memory budget).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub history: HistoryStats,
    pub keys: usize,
    pub keys_invalid: usize,
    pub keys_unknown: usize,
    /// Keys not searched, or not finished, within [`AFTER_INVALID`] of the verdict being
    /// decided by an invalid key.
    pub keys_skipped: usize,
    /// The keys that were not valid (at most [`MAX_PROBLEMS_LISTED`]).
    pub problems: Vec<KeyProblem>,
    pub search: SearchTotals,
    pub elapsed_ms: u64,
    /// The process's peak resident memory while checking (reading and pairing the
    /// history included), where the kernel says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counterexample: Option<Counterexample>,
}

/// Time a counterexample's shrinking may take: what is left of the time limit, but at
/// least [`SHRINK_MIN`] (an invalid verdict found at the deadline still gets a window)
/// and at most [`SHRINK_MAX`] (an answer should not wait long for its explanation).
pub const SHRINK_MIN: Duration = Duration::from_millis(100);
pub const SHRINK_MAX: Duration = Duration::from_secs(2);

/// How many non-valid keys a report lists.
pub const MAX_PROBLEMS_LISTED: usize = 100;

/// How long the other keys are still searched once a key is invalid: the verdict is
/// decided, but how many keys are invalid tells a user whether one key or the whole run
/// went wrong. Bounded (and never past the time limit) so that an invalid answer does
/// not wait long on hard keys; keys not decided by then are counted as not checked.
pub const AFTER_INVALID: Duration = Duration::from_secs(10);

/// Why a check could not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckError {
    /// The history is malformed or breaks a pairing or model rule.
    History(HistoryError),
    /// The model parameters are wrong (e.g. a multi-register `--init` that is not a map).
    Model(String),
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::History(e) => e.fmt(f),
            CheckError::Model(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for CheckError {}

impl From<HistoryError> for CheckError {
    fn from(e: HistoryError) -> CheckError {
        CheckError::History(e)
    }
}

/// Check the ops of a history (read from `path`, named in messages) for linearizability
/// under `spec`.
pub fn check<I>(
    ops: I,
    path: &Path,
    spec: &ModelSpec,
    opts: &CheckOptions,
) -> Result<CheckReport, CheckError>
where
    I: IntoIterator<Item = Result<(usize, Op), HistoryError>>,
{
    let started = Instant::now();
    budget::reset_peak_rss();
    let mut values = value::Values::new();
    let name = spec.to_string();
    let report = match spec.kind {
        ModelKind::Register | ModelKind::CasRegister => {
            let cas = spec.kind == ModelKind::CasRegister;
            let model = Register::new(cas, &spec.init, spec.nil_read_unknown, &mut values);
            run(model, values, ops, path, opts, name)?
        }
        ModelKind::MultiRegister => {
            let model = MultiRegister::new(&spec.init, spec.nil_read_unknown, &mut values)
                .map_err(CheckError::Model)?;
            run(model, values, ops, path, opts, name)?
        }
        ModelKind::Mutex => run(Mutex, values, ops, path, opts, name)?,
        ModelKind::Kv => run(Kv::default(), values, ops, path, opts, name)?,
    };
    Ok(CheckReport {
        elapsed_ms: started.elapsed().as_millis() as u64,
        peak_rss_bytes: budget::peak_rss_bytes(),
        ..report
    })
}

/// The outcome of one key's search.
enum KeyOutcome {
    Valid,
    /// With the blocked states rendered while the search's state table was alive.
    Invalid(Failure, Vec<Value>),
    Unknown(Exhausted),
    /// The search panicked (a bug in a model or the search), with the panic's message.
    /// Caught per key so the other keys are still decided and this one reads as unknown.
    Panicked(String),
}

fn search_key<M: Model>(
    model: &M,
    values: &value::Values,
    part: &Partition<M::Call>,
    budget: &Budget,
) -> (KeyOutcome, SearchStats) {
    let merged = model.merge_unobserved(&part.calls);
    let calls = merged.as_deref().unwrap_or(&part.calls);
    let twins = search::twins(calls, &part.spans);
    let mut steps = model.steps(calls);
    let (result, stats) = search::search(&part.spans, &twins, &mut steps, budget);
    let outcome = match result {
        SearchResult::Linearizable => KeyOutcome::Valid,
        SearchResult::NotLinearizable(failure) => {
            let states = failure
                .blocked_states
                .iter()
                .filter_map(|&id| steps.state(id))
                .map(|s| model.state_json(&s, values))
                .collect();
            KeyOutcome::Invalid(failure, states)
        }
        SearchResult::Exhausted(e) => KeyOutcome::Unknown(e),
    };
    (outcome, stats)
}

fn run<M, I>(
    model: M,
    values: value::Values,
    ops: I,
    path: &Path,
    opts: &CheckOptions,
    name: String,
) -> Result<CheckReport, HistoryError>
where
    M: Model,
    I: IntoIterator<Item = Result<(usize, Op), HistoryError>>,
{
    let budget = Budget::new(opts.time_limit, opts.memory_limit_bytes);
    let prepared: Prepared<M> = prepare::prepare(model, values, ops, path, opts.partition_by_key)?;
    let mut base = budget.meter();
    let parts = &prepared.partitions;
    let mut outcomes: Vec<Option<(KeyOutcome, SearchStats)>> =
        (0..parts.len()).map(|_| None).collect();
    match base.update(prepared.heap_bytes() as u64) {
        Err(e) => {
            for slot in outcomes.iter_mut() {
                *slot = Some((KeyOutcome::Unknown(e), SearchStats::default()));
            }
        }
        Ok(()) => search_all(&prepared, &budget, opts, &mut outcomes),
    }

    let mut report = CheckReport {
        verdict: Verdict::Valid,
        model: name,
        reason: None,
        history: prepared.stats,
        keys: parts.len(),
        keys_invalid: 0,
        keys_unknown: 0,
        keys_skipped: 0,
        problems: Vec::new(),
        search: SearchTotals::default(),
        elapsed_ms: 0,
        peak_rss_bytes: None,
        counterexample: None,
    };
    let mut first_invalid: Option<usize> = None;
    for (i, slot) in outcomes.iter().enumerate() {
        let Some((outcome, stats)) = slot else {
            report.keys_skipped += 1;
            continue;
        };
        report.search.steps += stats.steps;
        report.search.configurations += stats.configurations;
        report.search.max_depth = report.search.max_depth.max(stats.max_depth);
        let (verdict, reason) = match outcome {
            KeyOutcome::Valid => continue,
            KeyOutcome::Unknown(Exhausted::Cancelled) => {
                report.keys_skipped += 1;
                continue;
            }
            KeyOutcome::Invalid(..) => {
                report.keys_invalid += 1;
                if first_invalid.is_none_or(|f| parts[i].len() < parts[f].len()) {
                    first_invalid = Some(i);
                }
                (Verdict::Invalid, None)
            }
            KeyOutcome::Unknown(e) => {
                report.keys_unknown += 1;
                let reason = match &parts[i].key {
                    Some(k) => format!("{e} on key {k:?} ({} calls)", parts[i].len()),
                    None => format!("{e} ({} calls)", parts[i].len()),
                };
                report.reason.get_or_insert_with(|| reason.clone());
                (Verdict::Unknown, Some(reason))
            }
            KeyOutcome::Panicked(msg) => {
                report.keys_unknown += 1;
                let reason = match &parts[i].key {
                    Some(k) => format!(
                        "checker panicked on key {k:?} ({} calls): {msg}",
                        parts[i].len()
                    ),
                    None => format!("checker panicked ({} calls): {msg}", parts[i].len()),
                };
                report.reason.get_or_insert_with(|| reason.clone());
                (Verdict::Unknown, Some(reason))
            }
        };
        report.verdict = report.verdict.worst(verdict);
        if report.problems.len() < MAX_PROBLEMS_LISTED {
            report.problems.push(KeyProblem {
                key: parts[i].key.clone(),
                calls: parts[i].len(),
                verdict,
                reason,
            });
        }
    }
    // Keys are skipped legitimately only once another key proved the history invalid;
    // otherwise an undecided key leaves the verdict open, whatever the others say.
    if report.verdict == Verdict::Valid && report.keys_skipped > 0 {
        report.verdict = Verdict::Unknown;
        report.reason = Some(format!(
            "{} of {} keys were not decided",
            report.keys_skipped, report.keys
        ));
    }
    if report.verdict == Verdict::Invalid {
        report.reason = None;
    }
    if let (Some(i), true) = (first_invalid, opts.counterexample) {
        if let Some((KeyOutcome::Invalid(failure, states), _)) = &outcomes[i] {
            let cx = counterexample::Context {
                model: &prepared.model,
                values: &prepared.values,
                f_names: &prepared.f_names,
                partition: &parts[i],
                nodes: &prepared.nodes,
                nemesis: &prepared.nemesis,
            };
            let shrink_time = budget.remaining().clamp(SHRINK_MIN, SHRINK_MAX);
            let limit = budget
                .memory_limit_bytes()
                .saturating_sub(prepared.heap_bytes() as u64);
            report.counterexample = Some(counterexample::build(
                &cx,
                failure,
                states.clone(),
                shrink_time,
                limit,
            ));
        }
    }
    Ok(report)
}

/// Search every key, largest first, on `threads` workers; once a key is invalid (the
/// verdict is decided) the rest get `opts.after_invalid` more to be counted.
fn search_all<M: Model>(
    prepared: &Prepared<M>,
    budget: &Budget,
    opts: &CheckOptions,
    outcomes: &mut [Option<(KeyOutcome, SearchStats)>],
) {
    let parts = &prepared.partitions;
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(parts[i].len()));
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .min(order.len())
    .max(1);
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        while let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
            // A panic is caught here, per key, rather than at join: the thread's other
            // keys keep their results and this key is reported with the panic's message.
            let (outcome, stats) = std::panic::catch_unwind(AssertUnwindSafe(|| {
                search_key(&prepared.model, &prepared.values, &parts[i], budget)
            }))
            .unwrap_or_else(|payload| {
                (
                    KeyOutcome::Panicked(panic_message(payload.as_ref())),
                    SearchStats::default(),
                )
            });
            if matches!(outcome, KeyOutcome::Invalid(..)) {
                budget.cancel_after(opts.after_invalid);
            }
            let stop = matches!(outcome, KeyOutcome::Unknown(Exhausted::Cancelled));
            done.push((i, outcome, stats));
            if stop {
                break;
            }
        }
        done
    };
    let results: Vec<Vec<(usize, KeyOutcome, SearchStats)>> = if threads == 1 {
        vec![work()]
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads).map(|_| s.spawn(work)).collect();
            // A thread that still died leaves its keys `None`: `run` counts them as not
            // decided, which makes the verdict unknown unless another key is invalid.
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        })
    };
    for (i, outcome, stats) in results.into_iter().flatten() {
        outcomes[i] = Some((outcome, stats));
    }
}

/// The text of a panic payload (`panic!` with a literal gives `&str`, with arguments
/// `String`).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = &self.history;
        writeln!(f, "verdict: {}", self.verdict.to_string().to_uppercase())?;
        writeln!(f, "model: {}", self.model)?;
        writeln!(
            f,
            "history: {} ops, {} calls checked ({} ok, {} compare-failed, {} info, {} pending; {} failed and {} unconstraining dropped)",
            h.ops, h.calls, h.ok, h.compare_failed, h.info, h.pending, h.failed_dropped, h.unconstraining_dropped
        )?;
        writeln!(
            f,
            "keys: {} ({} invalid, {} unknown, {} not searched)",
            self.keys, self.keys_invalid, self.keys_unknown, self.keys_skipped
        )?;
        writeln!(
            f,
            "search: {} steps, {} configurations, {} ms",
            self.search.steps, self.search.configurations, self.elapsed_ms
        )?;
        if let Some(bytes) = self.peak_rss_bytes {
            writeln!(f, "memory: peak RSS {}", budget::format_bytes(bytes))?;
        }
        if let Some(reason) = &self.reason {
            writeln!(f, "unknown because: {reason}")?;
        }
        if let Some(cx) = &self.counterexample {
            write!(f, "\n{cx}")?;
        }
        Ok(())
    }
}

/// The results file `--json` writes (and a run directory's `results.json` embeds).
#[derive(Debug, Serialize)]
pub struct Results<'a> {
    pub checker: &'static str,
    pub history: String,
    pub format: String,
    #[serde(flatten)]
    pub report: &'a CheckReport,
}

/// A history time (ns since the clients started) as the checkers' texts and the run page
/// show it: `"12.345 s"`.
pub(crate) fn secs(ns: u64) -> String {
    format!("{:.3} s", ns as f64 / 1e9)
}

/// `"3 lost, 1 stale"`: the kinds whose count is above 0, for the set's and the append
/// checker's log lines.
pub(crate) fn nonzero_counts(parts: &[(&str, usize)]) -> String {
    parts
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a lost-data check (set, append) that found nothing wrong still cannot say valid:
/// nothing of `what` (an add, an append) was acknowledged, no final read succeeded, or
/// acknowledged ones were never read in the final read. A run in which nothing was tested
/// never passes.
pub(crate) fn unread_reason(
    what: &str,
    acknowledged: usize,
    final_reads: usize,
    never_read: usize,
) -> Option<String> {
    if acknowledged == 0 {
        Some(format!("no {what} was acknowledged: nothing was tested"))
    } else if final_reads == 0 {
        Some(format!(
            "no final read succeeded: whether the acknowledged {what}s survived is not known"
        ))
    } else if never_read > 0 {
        Some(format!(
            "{never_read} of {acknowledged} acknowledged {what}(s) never read in the final read"
        ))
    } else {
        None
    }
}

/// A lost-data check's verdict: invalid with every reason found, else unknown when
/// `unknown` says why, else valid.
pub(crate) fn lost_data_verdict(
    invalid: Vec<String>,
    unknown: Option<String>,
) -> (Verdict, Option<String>) {
    if !invalid.is_empty() {
        (Verdict::Invalid, Some(invalid.join("; ")))
    } else if let Some(why) = unknown {
        (Verdict::Unknown, Some(why))
    } else {
        (Verdict::Valid, None)
    }
}

/// Hand-built client histories for the checkers' tests.
#[cfg(test)]
pub(crate) mod testkit {
    use crate::history::{Op, OpType, Process};
    use serde_json::Value;

    /// One line: `(process, type, f, key, value, time_ms)`.
    pub type Line = (u64, &'static str, &'static str, String, Value, u64);

    /// The ops in time order (the journal's), indexed by position.
    pub fn build(parts: &[[Line; 2]]) -> Vec<Op> {
        let mut lines: Vec<&Line> = parts.iter().flatten().collect();
        lines.sort_by_key(|l| l.5);
        lines
            .into_iter()
            .enumerate()
            .map(|(i, (p, t, f, k, v, ms))| Op {
                index: i as u64,
                time_ns: ms * 1_000_000,
                process: Process::Client(*p),
                kind: match *t {
                    "invoke" => OpType::Invoke,
                    "ok" => OpType::Ok,
                    "fail" => OpType::Fail,
                    _ => OpType::Info,
                },
                f: f.to_string(),
                key: Some(k.clone()),
                value: v.clone(),
                node: None,
                error: None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::model::RawCall;
    use crate::checker::search::Interned;
    use crate::history::{OpType, Process};
    use serde_json::json;

    /// A register of integers whose step panics on a write of [`Bomb::FUSE`]: a stand-in
    /// for a bug in a model or in the search.
    struct Bomb;

    impl Bomb {
        const FUSE: i64 = 666;
    }

    impl Model for Bomb {
        type State = i64;
        type Call = i64;

        fn name(&self) -> &'static str {
            "bomb"
        }
        fn init(&self) -> i64 {
            0
        }
        fn encode(
            &mut self,
            call: &RawCall<'_>,
            _: &mut value::Values,
        ) -> Result<Option<i64>, String> {
            match call.f {
                "write" => Ok(call.input.as_i64()),
                _ => Ok(None),
            }
        }
        fn step(&self, _: &i64, call: &i64) -> Option<i64> {
            assert!(*call != Bomb::FUSE, "boom on write {call}");
            Some(*call)
        }
        fn relax(&self, call: &i64) -> Option<i64> {
            Some(*call)
        }
        fn state_json(&self, state: &i64, _: &value::Values) -> Value {
            json!(state)
        }
        fn describe(&self, call: &i64, _: &value::Values) -> String {
            format!("write {call}")
        }
        type Steps<'a> = Interned<'a, Bomb>;
        fn steps<'a>(&'a self, calls: &'a [i64]) -> Interned<'a, Bomb> {
            Interned::new(self, calls)
        }
    }

    /// Write `value` to `key` and complete ok, one process per write.
    fn writes(keys: &[(&str, i64)]) -> Vec<Result<(usize, Op), HistoryError>> {
        let mut ops = Vec::new();
        for (p, (key, value)) in keys.iter().enumerate() {
            for kind in [OpType::Invoke, OpType::Ok] {
                let index = ops.len() as u64;
                ops.push(Ok((
                    ops.len() + 1,
                    Op {
                        index,
                        time_ns: index * 10,
                        process: Process::Client(p as u64),
                        kind,
                        f: "write".to_string(),
                        key: Some(key.to_string()),
                        value: json!(value),
                        node: None,
                        error: None,
                    },
                )));
            }
        }
        ops
    }

    fn check_bomb(keys: &[(&str, i64)], threads: usize) -> CheckReport {
        let opts = CheckOptions {
            threads,
            ..CheckOptions::default()
        };
        let ops = writes(keys);
        run(
            Bomb,
            value::Values::new(),
            ops,
            Path::new("h.jsonl"),
            &opts,
            "bomb".into(),
        )
        .expect("history prepares")
    }

    #[test]
    fn a_panicking_key_makes_the_verdict_unknown_with_the_message() {
        for threads in [1, 2, 4] {
            let keys = [("a", 1), ("b", Bomb::FUSE), ("c", 3), ("d", 4)];
            let report = check_bomb(&keys, threads);
            assert_eq!(
                report.verdict,
                Verdict::Unknown,
                "threads {threads}: {report}"
            );
            assert_eq!(report.keys_unknown, 1);
            assert_eq!(report.keys_skipped, 0);
            let reason = report.reason.as_deref().unwrap_or_default();
            assert!(reason.contains("panicked on key \"b\""), "{reason}");
            assert!(reason.contains("boom on write 666"), "{reason}");
            let problem = &report.problems[0];
            assert_eq!(problem.key.as_deref(), Some("b"));
            assert_eq!(problem.verdict, Verdict::Unknown);
            assert!(problem
                .reason
                .as_deref()
                .unwrap_or_default()
                .contains("boom"));
        }
    }

    /// A read in [`register_keys`] that makes its key invalid only deep in the search:
    /// the last two writes overlap, and so do a read of each value after both.
    const CROSSED: i64 = -2;

    /// Per key: `writes` sequential writes of 1, 2 … then a read of `read` (invalid
    /// unless it is the last value written), or the [`CROSSED`] ending. Enough writes
    /// make a key's search look at its budget, which is where a decided verdict stops it.
    fn register_keys(writes: i64, reads: &[i64]) -> Vec<Result<(usize, Op), HistoryError>> {
        let mut ops = Vec::new();
        for (k, &read) in reads.iter().enumerate() {
            // (second process of the key, f, kind, value)
            let call = |second: bool, f: &'static str, input: Value, output: Value| {
                [
                    (second, f, OpType::Invoke, input),
                    (second, f, OpType::Ok, output),
                ]
            };
            let sequential = if read == CROSSED { writes - 2 } else { writes };
            let mut events: Vec<(bool, &str, OpType, Value)> = (1..=sequential)
                .flat_map(|v| call(false, "write", json!(v), json!(v)))
                .collect();
            if read == CROSSED {
                let (a, b) = (json!(writes - 1), json!(writes));
                events.extend([
                    (false, "write", OpType::Invoke, a.clone()),
                    (true, "write", OpType::Invoke, b.clone()),
                    (false, "write", OpType::Ok, a.clone()),
                    (true, "write", OpType::Ok, b.clone()),
                    (false, "read", OpType::Invoke, Value::Null),
                    (true, "read", OpType::Invoke, Value::Null),
                    (false, "read", OpType::Ok, a),
                    (true, "read", OpType::Ok, b),
                ]);
            } else {
                events.extend(call(false, "read", Value::Null, json!(read)));
            }
            for (second, f, kind, value) in events {
                let index = ops.len() as u64;
                ops.push(Ok((
                    ops.len() + 1,
                    Op {
                        index,
                        time_ns: index * 10,
                        process: Process::Client(2 * k as u64 + u64::from(second)),
                        kind,
                        f: f.to_string(),
                        key: Some(format!("k{k}")),
                        value,
                        node: None,
                        error: None,
                    },
                )));
            }
        }
        ops
    }

    const LONG: i64 = 10_000;

    fn check_register(reads: &[i64], opts: &CheckOptions) -> CheckReport {
        let spec = ModelSpec::new(ModelKind::Register).with_init(json!(0));
        check(
            register_keys(LONG, reads),
            Path::new("h.jsonl"),
            &spec,
            opts,
        )
        .expect("checks")
    }

    #[test]
    fn every_invalid_key_is_counted_not_only_the_first() {
        for threads in [1, 2] {
            let opts = CheckOptions {
                threads,
                counterexample: false,
                ..CheckOptions::default()
            };
            let report = check_register(&[-1, LONG, -1, -1], &opts);
            assert_eq!(report.verdict, Verdict::Invalid, "{report}");
            assert_eq!(
                (report.keys_invalid, report.keys_skipped),
                (3, 0),
                "threads {threads}: {report}"
            );
            assert_eq!(report.problems.len(), 3);
        }
    }

    #[test]
    fn keys_left_when_the_grace_after_an_invalid_key_is_over_are_not_checked() {
        let opts = CheckOptions {
            threads: 1,
            counterexample: false,
            after_invalid: Duration::ZERO,
            ..CheckOptions::default()
        };
        // Keys the search must walk to the end to find invalid (a plain stale read is
        // refused before any step).
        let report = check_register(&[CROSSED, CROSSED, CROSSED], &opts);
        assert_eq!(report.verdict, Verdict::Invalid, "{report}");
        assert_eq!(
            (report.keys_invalid, report.keys_skipped),
            (1, 2),
            "{report}"
        );
        assert!(report.to_string().contains("2 not searched"), "{report}");
    }

    #[test]
    fn keys_without_a_panic_stay_valid() {
        let report = check_bomb(&[("a", 1), ("b", 2)], 2);
        assert_eq!(report.verdict, Verdict::Valid, "{report}");
        assert_eq!(report.keys_skipped, 0);
    }
}
