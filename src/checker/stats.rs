//! The stats rule (Jepsen's stats checker): a history in which some kind of operation
//! never succeeded did not test that kind, so it cannot pass.
//!
//! A linearizability search over a history whose ops all failed finds nothing wrong —
//! there is nothing to linearize. A broken adapter, a client pointed at the wrong port or
//! a cluster that never elected a leader would then come out *valid*. [`Tally`] counts
//! the completions of every client `f` while the history streams into the checker;
//! [`OpStats`] says *unknown* when an `f` that had to succeed had no ok completion, with
//! the most common errors of that `f` as the reason. [`OpStats::compose`] joins that with
//! the checker's verdict: invalid stays invalid (a violation found is a violation),
//! valid becomes unknown.
//!
//! What counts as a success: an `ok`, and a `fail` with `compare-failed` (a cas whose
//! comparison failed observed the register's value; the checker keeps it as an
//! observation). Reads that all `fail` count as no success: nothing was observed.

use super::Verdict;
use crate::history::{Op, OpType, Process, COMPARE_FAILED};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

/// How many of an `f`'s most common errors are kept.
pub const TOP_ERRORS: usize = 5;
/// How many errors of an `f` the reason line quotes (the rest are in `top_errors`).
const REASON_ERRORS: usize = 3;
/// An error is kept (and counted) by its first this many characters: a target's error
/// text is unbounded, and one with a timestamp or request id in it would otherwise make
/// every error distinct.
const ERROR_CHARS: usize = 200;
/// Distinct errors counted per `f`; later distinct ones are only counted in total, so a
/// target that prints a new error on every op cannot grow the tally without bound.
const MAX_DISTINCT_ERRORS: usize = 1_000;
/// Characters of one error quoted in the reason line.
const REASON_ERROR_CHARS: usize = 160;
/// The error of a fail or info that gave none.
const NO_ERROR: &str = "(no error given)";

/// Which `f`s must have succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Required {
    /// These (a run's workload mix with a weight above 0), whether invoked or not.
    Fs(Vec<String>),
    /// Every client `f` the history invokes (a bare history: its workload is unknown).
    Invoked,
}

/// Counts of one `f`'s completions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FStats {
    pub f: String,
    /// Whether the rule asks this `f` to have succeeded.
    pub required: bool,
    pub invoked: u64,
    pub ok: u64,
    /// Including `compare_failed`.
    pub fail: u64,
    pub info: u64,
    pub compare_failed: u64,
    /// The most common `error`s of its fail and info completions, most common first.
    /// Errors that differ only in their digits count as one, shown as the first seen.
    pub top_errors: Vec<ErrorCount>,
    /// Fail and info completions whose error was not counted by text (past the bound
    /// on distinct errors).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub other_errors: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl FStats {
    /// An ok, or a compare-failed cas: the op reached the system and observed it.
    pub fn succeeded(&self) -> u64 {
        self.ok + self.compare_failed
    }
}

/// One error text and how often it occurred.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorCount {
    pub error: String,
    pub count: u64,
}

/// The rule's outcome for one history: `results.json`'s `stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpStats {
    /// `valid` when every required `f` succeeded at least once, else `unknown`.
    pub verdict: Verdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Ops invoked at or after this time are not counted (a run's final phase).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ns: Option<u64>,
    /// Per client `f`, in name order.
    pub fs: Vec<FStats>,
}

#[derive(Debug, Default)]
struct Counting {
    stats: FStats,
    /// By the error's text with its digits masked: the first text seen and the count.
    errors: HashMap<String, (String, u64)>,
}

/// Counts completions per `f` as ops stream past (see the module doc).
#[derive(Debug)]
pub struct Tally {
    required: Required,
    until_ns: Option<u64>,
    fs: BTreeMap<String, Counting>,
    /// Per client process, whether its open invocation is counted: a completion belongs
    /// to the phase its invocation was in.
    open: HashMap<u64, bool>,
}

impl Tally {
    /// `until_ns`: count only ops invoked before it (`None`: the whole history).
    pub fn new(required: Required, until_ns: Option<u64>) -> Tally {
        let mut fs = BTreeMap::new();
        if let Required::Fs(names) = &required {
            for f in names {
                fs.insert(f.clone(), Counting::default());
            }
        }
        Tally {
            required,
            until_ns,
            fs,
            open: HashMap::new(),
        }
    }

    /// Count one op of the history (nemesis ops are ignored).
    pub fn add(&mut self, op: &Op) {
        let Process::Client(p) = op.process else {
            return;
        };
        let in_scope = |t: u64| self.until_ns.is_none_or(|u| t < u);
        let counted = match op.kind {
            OpType::Invoke => {
                let counted = in_scope(op.time_ns);
                self.open.insert(p, counted);
                counted
            }
            // A completion without its invocation (a cut or hand-made history) is judged
            // by its own time.
            _ => self.open.remove(&p).unwrap_or_else(|| in_scope(op.time_ns)),
        };
        if !counted {
            return;
        }
        let c = self.fs.entry(op.f.clone()).or_default();
        let s = &mut c.stats;
        match op.kind {
            OpType::Invoke => s.invoked += 1,
            OpType::Ok => s.ok += 1,
            OpType::Fail | OpType::Info => {
                if op.kind == OpType::Fail {
                    s.fail += 1;
                    if op.error.as_deref() == Some(COMPARE_FAILED) {
                        s.compare_failed += 1;
                    }
                } else {
                    s.info += 1;
                }
                let error = clip(op.error.as_deref().unwrap_or(NO_ERROR), ERROR_CHARS);
                let room = c.errors.len() < MAX_DISTINCT_ERRORS;
                match c.errors.get_mut(&mask_digits(&error)) {
                    Some((_, n)) => *n += 1,
                    None if room => {
                        c.errors.insert(mask_digits(&error), (error, 1));
                    }
                    None => s.other_errors += 1,
                }
            }
        }
    }

    /// The rule applied to what was counted.
    pub fn finish(self) -> OpStats {
        let mut fs = Vec::with_capacity(self.fs.len());
        for (f, c) in self.fs {
            let mut s = c.stats;
            s.f = f;
            s.required = match &self.required {
                Required::Fs(names) => names.contains(&s.f),
                Required::Invoked => s.invoked > 0,
            };
            let mut errors: Vec<ErrorCount> = c
                .errors
                .into_values()
                .map(|(error, count)| ErrorCount { error, count })
                .collect();
            errors.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.error.cmp(&b.error)));
            errors.truncate(TOP_ERRORS);
            s.top_errors = errors;
            fs.push(s);
        }
        let phase = if self.until_ns.is_some() {
            " in the main phase"
        } else {
            ""
        };
        let clauses: Vec<String> = fs
            .iter()
            .filter(|s| s.required && s.succeeded() == 0)
            .map(|s| never_succeeded(s, phase))
            .collect();
        OpStats {
            verdict: if clauses.is_empty() {
                Verdict::Valid
            } else {
                Verdict::Unknown
            },
            reason: (!clauses.is_empty()).then(|| clauses.join("; ")),
            until_ns: self.until_ns,
            fs,
        }
    }
}

/// `no write succeeded in the main phase (0 of 1,234 ok: 1,200 info, 34 fail; most
/// common errors: "timeout" ×1,200, …)`. Errors are quoted with Rust's escaping, so a
/// hostile target cannot put control characters into a terminal or log line.
fn never_succeeded(s: &FStats, phase: &str) -> String {
    if s.invoked == 0 {
        return format!("no {} was invoked{phase}", s.f);
    }
    let mut out = format!(
        "no {} succeeded{phase} (0 of {} ok",
        s.f,
        thousands(s.invoked)
    );
    let mut parts = Vec::new();
    if s.info > 0 {
        parts.push(format!("{} info", thousands(s.info)));
    }
    if s.fail > 0 {
        parts.push(format!("{} fail", thousands(s.fail)));
    }
    let pending = s.invoked.saturating_sub(s.ok + s.fail + s.info);
    if pending > 0 {
        parts.push(format!("{} without an answer", thousands(pending)));
    }
    if !parts.is_empty() {
        let _ = write!(out, ": {}", parts.join(", "));
    }
    if !s.top_errors.is_empty() {
        let shown: Vec<String> = s
            .top_errors
            .iter()
            .take(REASON_ERRORS)
            .map(|e| {
                format!(
                    "{:?} ×{}",
                    clip(&e.error, REASON_ERROR_CHARS),
                    thousands(e.count)
                )
            })
            .collect();
        let _ = write!(out, "; most common errors: {}", shown.join(", "));
    }
    out.push(')');
    out
}

impl OpStats {
    /// The verdict of a history judged by the checker (`checker`, with its `reason` when
    /// unknown) and by this rule, and why when that is unknown. Invalid stays invalid:
    /// a violation found among the few ops that succeeded is still a violation.
    pub fn compose(&self, checker: Verdict, reason: Option<&str>) -> (Verdict, Option<String>) {
        let verdict = checker.worst(self.verdict);
        if verdict != Verdict::Unknown {
            return (verdict, None);
        }
        let reason = match (self.reason.as_deref(), checker, reason) {
            (Some(mine), Verdict::Unknown, Some(theirs)) => format!("{mine}; and {theirs}"),
            (Some(mine), _, _) => mine.to_string(),
            (None, _, Some(theirs)) => theirs.to_string(),
            (None, _, None) => "the checker gave no reason".to_string(),
        };
        (verdict, Some(reason))
    }
}

/// `s` with every run of digits replaced by `#`: errors that differ only in a request id,
/// a port or a time are one error (counted together, shown as the first one seen).
fn mask_digits(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_digits = false;
    for ch in s.chars() {
        if ch.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            out.push(ch);
            in_digits = false;
        }
    }
    out
}

/// The first `max` characters of `s` (with `…` when cut).
fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// `1234567` → `1,234,567` (also on the run page's Wire section).
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// A history builder: each call is an invoke and its completion on a fresh process.
    struct H {
        ops: Vec<Op>,
        next_process: u64,
    }

    impl H {
        fn new() -> H {
            H {
                ops: Vec::new(),
                next_process: 0,
            }
        }

        fn call(&mut self, f: &str, kind: OpType, error: Option<&str>) -> &mut H {
            let p = self.next_process;
            self.next_process += 1;
            let t = self.ops.len() as u64 * 10;
            for (k, time_ns, error) in [(OpType::Invoke, t, None), (kind, t + 5, error)] {
                self.ops.push(Op {
                    index: self.ops.len() as u64,
                    time_ns,
                    process: Process::Client(p),
                    kind: k,
                    f: f.to_string(),
                    key: Some("k".into()),
                    value: Value::Null,
                    node: None,
                    error: error.map(str::to_string),
                });
            }
            self
        }

        fn times(&mut self, n: usize, f: &str, kind: OpType, error: Option<&str>) -> &mut H {
            for _ in 0..n {
                self.call(f, kind, error);
            }
            self
        }

        fn stats(&self, required: Required) -> OpStats {
            let mut t = Tally::new(required, None);
            for op in &self.ops {
                t.add(op);
            }
            t.finish()
        }
    }

    fn mix(fs: &[&str]) -> Required {
        Required::Fs(fs.iter().map(|f| f.to_string()).collect())
    }

    #[test]
    fn reads_that_all_fail_make_a_run_with_ok_writes_unknown() {
        let s = H::new()
            .times(3, "read", OpType::Fail, Some("not leader"))
            .times(2, "write", OpType::Ok, None)
            .stats(mix(&["read", "write"]));
        assert_eq!(s.verdict, Verdict::Unknown);
        let reason = s.reason.unwrap_or_default();
        assert!(
            reason.starts_with("no read succeeded (0 of 3 ok: 3 fail"),
            "{reason}"
        );
        assert!(reason.contains("\"not leader\" ×3"), "{reason}");
        assert!(!reason.contains("write"), "{reason}");
    }

    #[test]
    fn a_cas_that_only_failed_its_comparison_counts_as_observed() {
        let s = H::new()
            .times(2, "read", OpType::Ok, None)
            .times(2, "write", OpType::Ok, None)
            .times(4, "cas", OpType::Fail, Some(COMPARE_FAILED))
            .stats(mix(&["read", "write", "cas"]));
        assert_eq!(s.verdict, Verdict::Valid, "{:?}", s.reason);
        let cas = s.fs.iter().find(|f| f.f == "cas").expect("cas counted");
        assert_eq!((cas.ok, cas.fail, cas.compare_failed), (0, 4, 4));
    }

    #[test]
    fn a_cas_that_failed_otherwise_is_not_observed() {
        let s = H::new()
            .times(2, "read", OpType::Ok, None)
            .times(2, "write", OpType::Ok, None)
            .times(2, "cas", OpType::Info, Some("timeout"))
            .stats(mix(&["read", "write", "cas"]));
        assert_eq!(s.verdict, Verdict::Unknown);
        assert!(s.reason.unwrap_or_default().starts_with("no cas succeeded"));
    }

    #[test]
    fn a_workload_without_cas_is_not_penalised_for_no_cas() {
        let s = H::new()
            .times(2, "read", OpType::Ok, None)
            .times(2, "write", OpType::Ok, None)
            .stats(mix(&["read", "write"]));
        assert_eq!(s.verdict, Verdict::Valid);
        assert!(s.fs.iter().all(|f| f.f != "cas"));
    }

    #[test]
    fn a_required_f_never_invoked_is_unknown() {
        let s = H::new()
            .times(2, "read", OpType::Ok, None)
            .stats(mix(&["read", "write"]));
        assert_eq!(s.verdict, Verdict::Unknown);
        assert_eq!(s.reason.as_deref(), Some("no write was invoked"));
    }

    #[test]
    fn a_bare_history_requires_every_f_it_invokes() {
        let h = {
            let mut h = H::new();
            h.times(2, "read", OpType::Ok, None)
                .times(1, "write", OpType::Info, None);
            h
        };
        let s = h.stats(Required::Invoked);
        assert_eq!(s.verdict, Verdict::Unknown);
        assert!(s.reason.unwrap_or_default().contains(
            "no write succeeded (0 of 1 ok: 1 info; most common errors: \"(no error given)\" ×1)"
        ));
        let s = H::new()
            .times(2, "read", OpType::Ok, None)
            .stats(Required::Invoked);
        assert_eq!(s.verdict, Verdict::Valid);
    }

    #[test]
    fn keeps_the_five_most_common_errors_in_order() {
        let mut h = H::new();
        for (i, e) in ["a", "b", "c", "d", "e", "f"].iter().enumerate() {
            h.times(i + 1, "write", OpType::Info, Some(e));
        }
        let s = h.stats(mix(&["write"]));
        let w = &s.fs[0];
        let top: Vec<(&str, u64)> = w
            .top_errors
            .iter()
            .map(|e| (e.error.as_str(), e.count))
            .collect();
        assert_eq!(top, [("f", 6), ("e", 5), ("d", 4), ("c", 3), ("b", 2)]);
        let reason = s.reason.unwrap_or_default();
        assert!(
            reason.ends_with("most common errors: \"f\" ×6, \"e\" ×5, \"d\" ×4)"),
            "{reason}"
        );
    }

    #[test]
    fn errors_are_bounded_and_escaped_in_the_reason() {
        let long = "x".repeat(1000);
        let s = H::new()
            .call("write", OpType::Info, Some("\u{1b}[31mred\nline"))
            .call("write", OpType::Info, Some(&long))
            .stats(mix(&["write"]));
        let reason = s.reason.unwrap_or_default();
        assert!(
            !reason.contains('\u{1b}') && !reason.contains('\n'),
            "{reason}"
        );
        assert!(reason.contains("\\u{1b}[31mred\\nline"), "{reason}");
        assert!(s.fs[0]
            .top_errors
            .iter()
            .all(|e| e.error.chars().count() <= ERROR_CHARS + 1));
        assert!(reason.len() < 400, "{reason}");
    }

    #[test]
    fn errors_that_differ_only_in_numbers_count_as_one() {
        let mut h = H::new();
        for id in [7, 12, 1003] {
            h.call(
                "write",
                OpType::Info,
                Some(&format!("answered request {id} late")),
            );
        }
        let s = h.stats(mix(&["write"]));
        assert_eq!(
            s.fs[0].top_errors,
            [ErrorCount {
                error: "answered request 7 late".into(),
                count: 3
            }]
        );
    }

    #[test]
    fn distinct_errors_past_the_bound_are_counted_apart() {
        let mut h = H::new();
        let letters = |mut i: usize| {
            let mut s = String::new();
            loop {
                s.push(char::from(b'a' + (i % 26) as u8));
                i /= 26;
                if i == 0 {
                    break s;
                }
            }
        };
        for i in 0..MAX_DISTINCT_ERRORS + 5 {
            h.call("write", OpType::Info, Some(&letters(i)));
        }
        let s = h.stats(mix(&["write"]));
        assert_eq!(s.fs[0].other_errors, 5);
        assert_eq!(s.fs[0].info, MAX_DISTINCT_ERRORS as u64 + 5);
    }

    #[test]
    fn ops_invoked_after_the_main_phase_are_not_counted() {
        let mut h = H::new();
        h.times(2, "read", OpType::Fail, Some("no leader"));
        // The final reads: invoked after the time limit, and ok.
        let cutoff = h.ops.last().map_or(0, |o| o.time_ns + 1);
        h.times(2, "read", OpType::Ok, None);
        let mut t = Tally::new(mix(&["read"]), Some(cutoff));
        for op in &h.ops {
            t.add(op);
        }
        let s = t.finish();
        assert_eq!(s.verdict, Verdict::Unknown);
        assert!(s
            .reason
            .unwrap_or_default()
            .starts_with("no read succeeded in the main phase (0 of 2 ok"));
        assert_eq!(s.fs[0].ok, 0);
    }

    #[test]
    fn a_completion_belongs_to_the_phase_of_its_invocation() {
        let mut h = H::new();
        h.call("read", OpType::Ok, None);
        // Invoked at 0, completed at 5: a cutoff of 3 still counts the ok.
        let mut t = Tally::new(mix(&["read"]), Some(3));
        for op in &h.ops {
            t.add(op);
        }
        assert_eq!(t.finish().verdict, Verdict::Valid);
    }

    #[test]
    fn composing_keeps_invalid_and_turns_valid_unknown() {
        let unknown = H::new()
            .times(1, "write", OpType::Info, Some("t"))
            .stats(mix(&["write"]));
        assert_eq!(
            unknown.compose(Verdict::Invalid, None),
            (Verdict::Invalid, None)
        );
        let (v, reason) = unknown.compose(Verdict::Valid, None);
        assert_eq!(v, Verdict::Unknown);
        assert!(reason.unwrap_or_default().starts_with("no write succeeded"));
        let (v, reason) = unknown.compose(Verdict::Unknown, Some("time limit of 1s reached"));
        assert_eq!(v, Verdict::Unknown);
        assert!(reason
            .unwrap_or_default()
            .ends_with("; and time limit of 1s reached"));
        let fine = H::new()
            .times(1, "write", OpType::Ok, None)
            .stats(mix(&["write"]));
        assert_eq!(fine.compose(Verdict::Valid, None), (Verdict::Valid, None));
        assert_eq!(
            fine.compose(Verdict::Unknown, Some("budget")),
            (Verdict::Unknown, Some("budget".to_string()))
        );
    }

    #[test]
    fn counts_get_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1234), "1,234");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
