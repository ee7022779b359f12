//! The append checker: did every acknowledged append survive, in the order it was
//! acknowledged, and did every read see a state of the one stream the final read shows?
//!
//! A pure function over a history ([`AppendChecker::add`] each op, then
//! [`AppendChecker::finish`]), in the encoding the `append` workload uses over plain
//! key-value ops: a stream is a key holding a JSON list of unique elements (absent = the
//! empty list); an append of `e` is a `read` of the list followed by a
//! `cas [list, list + [e]]` (retried with a fresh read after a cas that failed). So every
//! `ok` read is a state of the stream, and so is the `to` of every `ok` cas — the
//! acknowledged append, whose list is everything the stream held before it, in order.
//!
//! Per stream, against its final read (the last `ok` read invoked at or after
//! [`AppendOptions::final_from_ns`], after every fault healed):
//!
//! | finding | meaning |
//! | --- | --- |
//! | `lost` | an acknowledged element is absent from the final read |
//! | `diverged` | a state (a read, an acknowledged append's list) is not a prefix of the final read: the stream's history was rewritten — elements dropped or reordered |
//! | `stale` | a read or append began after an append was acknowledged, yet its state is a strict prefix of that append's list |
//! | `duplicated` | an element appears twice in one state |
//! | `unexpected` | an element in a state whose every append failed, or that was never appended; a value that is not a list |
//! | `never-read` | an acknowledged element of a stream no final read succeeded on |
//! | `recovered` | an element whose append was unacknowledged (info) but which is in the final read |
//!
//! "In order" needs no check of its own: an acknowledged append's list is a prefix of the
//! final read (else `diverged`), and an append that began after another was acknowledged
//! must have read a list extending it (else `stale`), so the final read orders
//! acknowledged appends as real time did.

use super::{secs, Verdict};
use crate::history::{Op, OpType, Process};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Findings named in the report: a run may lose thousands of elements.
pub const LISTED: usize = 100;

/// The longest list a finding's text quotes in full.
const QUOTED: usize = 12;

/// What a history must be judged against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOptions {
    /// Reads invoked at or after this time (ns since the run's start) are final reads.
    pub final_from_ns: u64,
    /// Whether a stale state makes the history invalid; when not, it is only counted.
    pub stale_invalid: bool,
}

/// Counts by finding. Elements for lost, never-read, recovered, unexpected, ok; states
/// (ops) for diverged, stale, duplicated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub ok: usize,
    pub lost: usize,
    pub never_read: usize,
    pub recovered: usize,
    /// Appends that failed (certainly not done) and are in no state.
    pub not_appended: usize,
    pub unexpected: usize,
    pub diverged: usize,
    pub stale: usize,
    pub duplicated: usize,
}

/// One finding with the op that shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// `lost`, `diverged`, `stale`, `duplicated`, `unexpected` or `never-read`.
    pub kind: String,
    pub stream: String,
    /// The op that shows it (for `lost`: the acknowledged append).
    pub index: u64,
    pub invoked_ns: u64,
    pub completed_ns: u64,
    /// What happened, in words, with the lists involved (quoted up to [`QUOTED`]
    /// elements).
    pub text: String,
}

/// results.json `append`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppendReport {
    pub verdict: Verdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub stale_invalid: bool,
    /// Streams appended to or read.
    pub streams: usize,
    /// Distinct elements whose append was invoked.
    pub elements: usize,
    /// Elements whose append was acknowledged.
    pub acknowledged: usize,
    pub counts: Counts,
    /// Successful reads in the main phase and final reads.
    pub reads: usize,
    pub final_reads: usize,
    /// The longest final read, in elements.
    pub longest: usize,
    /// The first findings of each kind, in history order (at most [`LISTED`] in all).
    pub findings: Vec<Finding>,
    #[serde(default)]
    pub elapsed_ms: u64,
}

/// Where an op stands in the history.
#[derive(Debug, Clone, Copy)]
struct At {
    index: u64,
    invoked_ns: u64,
    completed_ns: u64,
}

/// A state of a stream observed by one op.
#[derive(Debug)]
struct State {
    at: At,
    list: Vec<Value>,
    /// Each element's JSON text, the key elements are known by.
    texts: Vec<String>,
    /// An acknowledged append (its `to`), not a read.
    append: bool,
    is_final: bool,
}

#[derive(Debug, Default)]
struct Stream {
    states: Vec<State>,
    /// Element (its JSON text) → the outcomes of its append attempts and, when one was
    /// acknowledged, that op's index, times and list length.
    elements: BTreeMap<String, Attempts>,
    /// Answers that were not lists (nobody writes those), with the answer's text.
    malformed: Vec<(At, String)>,
}

#[derive(Debug, Default)]
struct Attempts {
    first_index: u64,
    /// The acknowledged attempt.
    ok: Option<At>,
    info: bool,
}

impl State {
    fn new(at: At, list: Vec<Value>, append: bool, is_final: bool) -> State {
        let texts = list.iter().map(Value::to_string).collect();
        State {
            at,
            list,
            texts,
            append,
            is_final,
        }
    }
}

fn finding(kind: &str, stream: &str, at: At, text: String) -> Finding {
    Finding {
        kind: kind.to_string(),
        stream: stream.to_string(),
        index: at.index,
        invoked_ns: at.invoked_ns,
        completed_ns: at.completed_ns,
        text,
    }
}

#[derive(Debug)]
struct Open {
    f: String,
    key: String,
    index: u64,
    invoked_ns: u64,
    value: Value,
}

/// Streams a history in and judges it at the end.
#[derive(Debug)]
pub struct AppendChecker {
    opts: AppendOptions,
    open: HashMap<u64, Open>,
    streams: BTreeMap<String, Stream>,
}

/// A stream's list in a value: null is the empty stream.
fn as_list(v: &Value) -> Option<Vec<Value>> {
    match v {
        Value::Null => Some(Vec::new()),
        Value::Array(a) => Some(a.clone()),
        _ => None,
    }
}

/// The element a `cas [from, to]` appends, when it is an append.
fn appended(value: &Value) -> Option<(Vec<Value>, Value)> {
    let from = as_list(value.get(0)?)?;
    let to = as_list(value.get(1)?)?;
    (to.len() == from.len() + 1 && to.starts_with(&from))
        .then(|| (to.clone(), to[from.len()].clone()))
}

fn quote(list: &[Value]) -> String {
    let shown: Vec<String> = list.iter().take(QUOTED).map(Value::to_string).collect();
    let more = list.len().saturating_sub(QUOTED);
    if more > 0 {
        format!("[{}, … {more} more]", shown.join(", "))
    } else {
        format!("[{}]", shown.join(", "))
    }
}

impl AppendChecker {
    pub fn new(opts: AppendOptions) -> AppendChecker {
        AppendChecker {
            opts,
            open: HashMap::new(),
            streams: BTreeMap::new(),
        }
    }

    /// Take in the next op of the history (in history order). Nemesis ops, writes and
    /// cas ops that append nothing are passed over.
    pub fn add(&mut self, op: &Op) {
        let Process::Client(p) = op.process else {
            return;
        };
        if op.f != "read" && op.f != "cas" {
            return;
        }
        let Some(key) = &op.key else { return };
        if op.kind == OpType::Invoke {
            self.open.insert(
                p,
                Open {
                    f: op.f.clone(),
                    key: key.clone(),
                    index: op.index,
                    invoked_ns: op.time_ns,
                    value: op.value.clone(),
                },
            );
            return;
        }
        let Some(inv) = self.open.remove(&p) else {
            return;
        };
        let stream = self.streams.entry(inv.key.clone()).or_default();
        let is_final = inv.invoked_ns >= self.opts.final_from_ns;
        let at = At {
            index: inv.index,
            invoked_ns: inv.invoked_ns,
            completed_ns: op.time_ns,
        };
        if inv.f == "read" {
            if op.kind != OpType::Ok {
                return;
            }
            match as_list(&op.value) {
                Some(list) => stream.states.push(State::new(at, list, false, is_final)),
                None => stream.malformed.push((at, op.value.to_string())),
            }
            return;
        }
        let Some((to, element)) = appended(&inv.value) else {
            return;
        };
        let a = stream
            .elements
            .entry(element.to_string())
            .or_insert_with(|| Attempts {
                first_index: inv.index,
                ..Attempts::default()
            });
        match op.kind {
            OpType::Ok => {
                a.ok = Some(at);
                stream.states.push(State::new(at, to, true, false));
            }
            OpType::Info => a.info = true,
            _ => {}
        }
    }

    /// Judge every stream.
    pub fn finish(self) -> AppendReport {
        let mut r = AppendReport {
            verdict: Verdict::Valid,
            reason: None,
            stale_invalid: self.opts.stale_invalid,
            streams: self.streams.len(),
            elements: self.streams.values().map(|s| s.elements.len()).sum(),
            acknowledged: 0,
            counts: Counts::default(),
            reads: 0,
            final_reads: 0,
            longest: 0,
            findings: Vec::new(),
            elapsed_ms: 0,
        };
        let mut findings = Vec::new();
        for (key, s) in self.streams {
            judge(&key, s, &mut r, &mut findings);
        }
        // History order, each kind's first ones before the list is cut.
        findings.sort_by_key(|f: &Finding| f.index);
        r.findings = findings.into_iter().take(LISTED).collect();
        verdict(&mut r);
        r
    }
}

fn judge(key: &str, mut s: Stream, r: &mut AppendReport, findings: &mut Vec<Finding>) {
    s.states.sort_by_key(|st| (st.at.invoked_ns, st.at.index));
    let note = |findings: &mut Vec<Finding>, kind: &str, at: At, text: String| {
        findings.push(finding(kind, key, at, text));
    };
    for (at, v) in &s.malformed {
        r.counts.unexpected += 1;
        note(
            findings,
            "unexpected",
            *at,
            format!("a read returned {v}, not a list"),
        );
    }
    for st in &s.states {
        if st.is_final {
            r.final_reads += 1;
        } else if !st.append {
            r.reads += 1;
        }
    }
    // The final read's answer: the last successful one (a reader retries after failures).
    let fin = s.states.iter().rev().find(|st| st.is_final);
    if let Some(f) = fin {
        r.longest = r.longest.max(f.list.len());
    }
    let in_final: HashSet<&str> = fin
        .map(|f| f.texts.iter().map(String::as_str).collect())
        .unwrap_or_default();

    // Duplicates and strangers, in every state.
    let mut strangers = HashSet::new();
    for st in &s.states {
        let mut seen = HashSet::new();
        for t in &st.texts {
            if !seen.insert(t) {
                r.counts.duplicated += 1;
                note(
                    findings,
                    "duplicated",
                    st.at,
                    format!("element {t} appears twice in {}", quote(&st.list)),
                );
                break;
            }
            let known = s.elements.get(t).is_some_and(|a| a.ok.is_some() || a.info);
            if !known && strangers.insert(t.as_str()) {
                r.counts.unexpected += 1;
                let why = if s.elements.contains_key(t) {
                    "whose every append failed"
                } else {
                    "never appended"
                };
                note(
                    findings,
                    "unexpected",
                    st.at,
                    format!("element {t}, {why}, is in {}", quote(&st.list)),
                );
            }
        }
    }

    // Elements by outcome.
    let mut order: Vec<(&String, &Attempts)> = s.elements.iter().collect();
    order.sort_by_key(|(_, a)| a.first_index);
    for (t, a) in order {
        let t = t.as_str();
        match a.ok {
            Some(at) => {
                r.acknowledged += 1;
                match fin {
                    None => {
                        r.counts.never_read += 1;
                        if r.counts.never_read == 1 {
                            note(
                                findings,
                                "never-read",
                                at,
                                format!("element {t} was acknowledged, but no final read of the stream succeeded"),
                            );
                        }
                    }
                    Some(f) if !in_final.contains(t) => {
                        r.counts.lost += 1;
                        let last_seen = s
                            .states
                            .iter()
                            .filter(|st| !st.is_final && st.texts.iter().any(|e| e == t))
                            .max_by_key(|st| st.at.completed_ns)
                            .map_or(String::new(), |st| {
                                format!(
                                    ", last seen by op {} ({} – {})",
                                    st.at.index,
                                    secs(st.at.invoked_ns),
                                    secs(st.at.completed_ns)
                                )
                            });
                        note(
                            findings,
                            "lost",
                            at,
                            format!(
                                "element {t}, acknowledged at {}{last_seen}, is absent from the final read (op {}, {} element(s): {})",
                                secs(at.completed_ns),
                                f.at.index,
                                f.list.len(),
                                quote(&f.list)
                            ),
                        );
                    }
                    Some(_) => r.counts.ok += 1,
                }
            }
            None if a.info && in_final.contains(t) => r.counts.recovered += 1,
            None if !a.info && !strangers.contains(t) => r.counts.not_appended += 1,
            None => {}
        }
    }

    // Every state a prefix of the final read, and at least as long as the longest append
    // acknowledged before it began.
    let mut acks: Vec<(u64, &State)> = s
        .states
        .iter()
        .filter(|st| st.append)
        .map(|st| (st.at.completed_ns, st))
        .collect();
    acks.sort_by_key(|(t, _)| *t);
    let mut longest_acked: Option<&State> = None;
    let mut next_ack = 0;
    for st in &s.states {
        while next_ack < acks.len() && acks[next_ack].0 < st.at.invoked_ns {
            let a = acks[next_ack].1;
            if longest_acked.is_none_or(|l| a.list.len() > l.list.len()) {
                longest_acked = Some(a);
            }
            next_ack += 1;
        }
        if let Some(f) = fin {
            if !st.is_final && !f.list.starts_with(&st.list) {
                r.counts.diverged += 1;
                let what = if st.append {
                    "the list of an acknowledged append"
                } else {
                    "a read"
                };
                note(
                    findings,
                    "diverged",
                    st.at,
                    format!(
                        "{what}, {}, is not a prefix of the final read (op {}): {}",
                        quote(&st.list),
                        f.at.index,
                        quote(&f.list)
                    ),
                );
                continue;
            }
        }
        // What the op saw: an append saw its list without its own element. A final read
        // shorter than an acknowledged append is judged as lost, not stale.
        let saw = if st.append {
            &st.list[..st.list.len().saturating_sub(1)]
        } else {
            &st.list[..]
        };
        if let Some(a) = longest_acked.filter(|_| !st.is_final) {
            if saw.len() < a.list.len() && a.list.starts_with(saw) {
                r.counts.stale += 1;
                let what = if st.append { "an append" } else { "a read" };
                note(
                    findings,
                    "stale",
                    st.at,
                    format!(
                        "{what} began at {} but saw {} element(s), {}, though op {} had been acknowledged at {} with {} element(s)",
                        secs(st.at.invoked_ns),
                        saw.len(),
                        quote(saw),
                        a.at.index,
                        secs(a.at.completed_ns),
                        a.list.len()
                    ),
                );
            }
        }
    }
}

fn verdict(r: &mut AppendReport) {
    let c = &r.counts;
    let mut invalid = Vec::new();
    if c.lost > 0 {
        invalid.push(format!(
            "{} of {} acknowledged append(s) lost (absent from the final read)",
            c.lost, r.acknowledged
        ));
    }
    if c.diverged > 0 {
        invalid.push(format!(
            "{} state(s) not a prefix of the final read (the stream was rewritten)",
            c.diverged
        ));
    }
    if c.stale > 0 && r.stale_invalid {
        invalid.push(format!(
            "{} state(s) stale (shorter than an append acknowledged before they began)",
            c.stale
        ));
    }
    if c.duplicated > 0 {
        invalid.push(format!("{} state(s) hold an element twice", c.duplicated));
    }
    if c.unexpected > 0 {
        invalid.push(format!(
            "{} element(s) or value(s) unexpected (never appended, every append failed, or not a list)",
            c.unexpected
        ));
    }
    let unknown = super::unread_reason("append", r.acknowledged, r.final_reads, c.never_read);
    (r.verdict, r.reason) = super::lost_data_verdict(invalid, unknown);
}

/// Judge a whole history at once (tests and callers holding ops in memory).
pub fn check<'a>(ops: impl IntoIterator<Item = &'a Op>, opts: AppendOptions) -> AppendReport {
    let mut c = AppendChecker::new(opts);
    for op in ops {
        c.add(op);
    }
    c.finish()
}

/// The log's line: the verdict and the findings by kind.
pub fn summary_line(r: &AppendReport) -> String {
    let c = &r.counts;
    let parts = super::nonzero_counts(&[
        ("ok", c.ok),
        ("lost", c.lost),
        ("diverged", c.diverged),
        ("stale", c.stale),
        ("duplicated", c.duplicated),
        ("unexpected", c.unexpected),
        ("never-read", c.never_read),
        ("recovered", c.recovered),
        ("not-appended", c.not_appended),
    ]);
    format!(
        "append: {}: {} stream(s), {} element(s), {} acknowledged{}{parts} (checked in {} ms)",
        r.verdict,
        r.streams,
        r.elements,
        r.acknowledged,
        if parts.is_empty() { "" } else { ": " },
        r.elapsed_ms
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::checker::testkit::{build, Line};

    const OPTS: AppendOptions = AppendOptions {
        final_from_ns: 1_000_000_000,
        stale_invalid: true,
    };

    fn read(p: u64, k: &'static str, v: Value, from: u64, to: u64) -> [Line; 2] {
        [
            (p, "invoke", "read", k.to_string(), Value::Null, from),
            (p, "ok", "read", k.to_string(), v, to),
        ]
    }

    /// The cas of an append of `e` to `from` (a list), with its outcome.
    fn append(
        p: u64,
        k: &'static str,
        from: Value,
        e: u64,
        t: (u64, u64),
        outcome: &'static str,
    ) -> [Line; 2] {
        let mut to = as_list(&from).unwrap();
        to.push(json!(e));
        let v = json!([from, to]);
        [
            (p, "invoke", "cas", k.to_string(), v.clone(), t.0),
            (p, outcome, "cas", k.to_string(), v, t.1),
        ]
    }

    fn kinds(r: &AppendReport) -> Vec<&str> {
        r.findings.iter().map(|f| f.kind.as_str()).collect()
    }

    #[test]
    fn appends_kept_in_order_are_valid() {
        let h = build(&[
            append(0, "k0", Value::Null, 1, (0, 10), "ok"),
            append(1, "k0", json!([1]), 2, (20, 30), "ok"),
            // compare-failed, then retried on a fresh read: the failed attempt is no state.
            append(2, "k0", json!([1]), 3, (25, 35), "fail"),
            read(2, "k0", json!([1, 2]), 40, 45),
            append(2, "k0", json!([1, 2]), 3, (50, 60), "ok"),
            read(3, "k0", json!([1, 2, 3]), 1000, 1001),
        ]);
        let r = check(&h, OPTS);
        assert_eq!(r.verdict, Verdict::Valid, "{r:?}");
        assert_eq!(
            (r.streams, r.elements, r.acknowledged, r.counts.ok),
            (1, 3, 3, 3)
        );
        assert_eq!((r.reads, r.final_reads, r.longest), (1, 1, 3));
        assert!(r.findings.is_empty());
    }

    #[test]
    fn an_acknowledged_append_missing_from_the_final_read_is_lost() {
        let h = build(&[
            append(0, "k0", Value::Null, 1, (0, 10), "ok"),
            append(1, "k0", json!([1]), 2, (20, 30), "ok"),
            read(2, "k0", json!([1, 2]), 40, 45),
            // Power failure: the stream went back to [1] and grew again.
            append(2, "k0", json!([1]), 4, (500, 510), "ok"),
            read(3, "k0", json!([1, 4]), 1000, 1001),
        ]);
        let r = check(&h, OPTS);
        assert_eq!(r.verdict, Verdict::Invalid);
        assert_eq!(
            (r.counts.lost, r.counts.diverged, r.counts.stale),
            (1, 2, 1),
            "{r:#?}"
        );
        let lost = r.findings.iter().find(|f| f.kind == "lost").unwrap();
        assert!(
            lost.text
                .contains("element 2, acknowledged at 0.030 s, last seen by op"),
            "{}",
            lost.text
        );
        assert!(lost.text.contains("[1, 4]"), "{}", lost.text);
        assert!(r
            .reason
            .unwrap()
            .starts_with("1 of 3 acknowledged append(s) lost"));
    }

    #[test]
    fn a_read_shorter_than_an_earlier_acknowledged_append_is_stale_unless_allowed() {
        let h = build(&[
            append(0, "k0", Value::Null, 1, (0, 10), "ok"),
            append(1, "k0", json!([1]), 2, (20, 30), "ok"),
            read(2, "k0", json!([1]), 40, 45),
            read(3, "k0", json!([1, 2]), 1000, 1001),
        ]);
        let r = check(&h, OPTS);
        assert_eq!(r.verdict, Verdict::Invalid);
        assert_eq!(kinds(&r), ["stale"]);
        let allowed = check(
            &h,
            AppendOptions {
                stale_invalid: false,
                ..OPTS
            },
        );
        assert_eq!(allowed.verdict, Verdict::Valid);
        assert_eq!(allowed.counts.stale, 1);
        // A read concurrent with the append may miss it.
        let h = build(&[
            append(0, "k0", Value::Null, 1, (0, 10), "ok"),
            append(1, "k0", json!([1]), 2, (20, 30), "ok"),
            read(2, "k0", json!([1]), 25, 45),
            read(3, "k0", json!([1, 2]), 1000, 1001),
        ]);
        assert_eq!(check(&h, OPTS).verdict, Verdict::Valid);
    }

    #[test]
    fn reordered_duplicated_and_unknown_elements_are_invalid() {
        let h = build(&[
            append(0, "k0", Value::Null, 1, (0, 10), "ok"),
            append(1, "k0", json!([1]), 2, (20, 30), "ok"),
            read(3, "k0", json!([2, 1]), 1000, 1001),
        ]);
        let r = check(&h, OPTS);
        assert_eq!(r.verdict, Verdict::Invalid);
        assert!(r.counts.diverged >= 1 && r.counts.lost == 0, "{r:#?}");
        let h = build(&[
            append(0, "k0", Value::Null, 1, (0, 10), "ok"),
            append(1, "k0", json!([1]), 2, (20, 30), "fail"),
            read(2, "k0", json!([1, 1, 9]), 40, 45),
            read(3, "k0", json!([1, 2]), 1000, 1001),
            read(3, "k1", json!(7), 1002, 1003),
        ]);
        let r = check(&h, OPTS);
        assert_eq!(r.verdict, Verdict::Invalid);
        assert_eq!(r.counts.duplicated, 1);
        // 2 (its append failed) in the final read, and 7, not a list.
        assert_eq!(r.counts.unexpected, 2, "{r:#?}");
    }

    #[test]
    fn unacknowledged_appends_may_land_and_missing_final_reads_are_unknown() {
        let h = build(&[
            append(0, "k0", Value::Null, 1, (0, 10), "ok"),
            append(1, "k0", json!([1]), 2, (20, 30), "info"),
            append(2, "k0", json!([1]), 3, (25, 35), "info"),
            read(3, "k0", json!([1, 2]), 1000, 1001),
        ]);
        let r = check(&h, OPTS);
        assert_eq!(r.verdict, Verdict::Valid);
        assert_eq!((r.counts.recovered, r.counts.ok), (1, 1));
        let h = build(&[append(0, "k0", Value::Null, 1, (0, 10), "ok")]);
        let r = check(&h, OPTS);
        assert_eq!(r.verdict, Verdict::Unknown);
        assert_eq!(kinds(&r), ["never-read"]);
        assert_eq!(check(&[], OPTS).verdict, Verdict::Unknown);
    }
}
