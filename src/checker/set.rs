//! The set checker (in the spirit of Jepsen's set-full): did every acknowledged add
//! survive, and was it visible whenever it should have been?
//!
//! A pure function over a history ([`SetChecker::add`] each op, then
//! [`SetChecker::finish`]), in the encoding the `set` workload uses over plain key-value
//! ops: an element is a key written once, an add of it is a `write` of its value, and a
//! read of it is a `read` of the key, present when it returns the value and absent when it
//! returns null (anything else is a value nobody added). "A read of the set" is then a
//! sweep of such reads, and "the final read" the reads invoked at or after
//! [`SetOptions::final_from_ns`] (the runner's final phase, after every fault healed).
//! Reads of different elements are not one snapshot, and need not be: every judgement
//! below is about one element at a time.
//!
//! Per element, from its add's outcome and the reads that began after that add was
//! acknowledged:
//!
//! | outcome | add | reads |
//! | --- | --- | --- |
//! | `ok` | acknowledged | present in the final read, never absent from a read that began after the acknowledgement |
//! | `lost` | acknowledged | absent from the final read |
//! | `stale` | acknowledged | present in the final read, absent from a read that began after the acknowledgement |
//! | `never-read` | acknowledged | no final read of it succeeded: nothing says whether it survived |
//! | `recovered` | unacknowledged (info, or never answered) | present in some read |
//! | `not-added` | unacknowledged or failed | never present |
//! | `unexpected` | failed (certainly not done), or any | present after a failed add, or a read returned a value that was never added |

use super::Verdict;
use crate::history::{Op, OpType, Process};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

/// Elements named per list in the report (lost, stale, …): a run may lose thousands.
pub const LISTED: usize = 100;

/// What a history must be judged against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetOptions {
    /// Reads invoked at or after this time (ns since the run's start) form the final read.
    pub final_from_ns: u64,
    /// Whether a stale element (absent from a read that began after its add was
    /// acknowledged) makes the history invalid; when not, it is only counted.
    pub stale_invalid: bool,
}

/// One read of an element, as the report names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadAt {
    /// The read's invocation in the history.
    pub index: u64,
    pub invoked_ns: u64,
    pub completed_ns: u64,
    /// Whether the read was part of the final read.
    #[serde(rename = "final")]
    pub is_final: bool,
}

/// When an element was added and the reads that bracket its disappearance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ElementWindow {
    /// The element's key.
    pub element: String,
    pub value: Value,
    pub add_index: u64,
    pub add_invoked_ns: u64,
    pub add_completed_ns: u64,
    /// The last read that saw it (none if no read ever did).
    pub last_seen: Option<ReadAt>,
    /// The first read that did not see it, begun after the acknowledgement and after
    /// `last_seen` completed: the element vanished between the two.
    pub first_missing: Option<ReadAt>,
}

/// Counts of elements by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub ok: usize,
    pub lost: usize,
    pub stale: usize,
    pub never_read: usize,
    pub recovered: usize,
    pub not_added: usize,
    pub unexpected: usize,
}

/// results.json `set`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetReport {
    pub verdict: Verdict,
    /// Why the verdict is invalid or unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether stale elements count against the verdict.
    pub stale_invalid: bool,
    /// Elements whose add was invoked.
    pub elements: usize,
    /// Adds acknowledged (`ok`): the elements checked.
    pub acknowledged: usize,
    pub counts: Counts,
    /// Successful reads of elements in the main phase and in the final read.
    pub reads: usize,
    pub final_reads: usize,
    /// The longest an acknowledged element stayed invisible: from its acknowledgement to
    /// the start of the last read after it that did not see it (stale elements only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worst_stale_ms: Option<f64>,
    /// The lost element whose add was invoked first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_lost: Option<ElementWindow>,
    /// The stale element whose add was invoked first: `first_missing` is the first read
    /// after its acknowledgement that missed it, `last_seen` the last sighting before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_stale: Option<ElementWindow>,
    /// The first elements of each non-ok outcome, in the order their adds were invoked
    /// (at most [`LISTED`] each).
    pub lost: Vec<String>,
    pub stale: Vec<String>,
    pub never_read: Vec<String>,
    pub unexpected: Vec<String>,
    /// Wall time of the check (set by the caller: the function itself is pure).
    #[serde(default)]
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Present,
    Absent,
    /// A value that is neither the element's nor null.
    Other,
}

#[derive(Debug)]
struct Obs {
    at: ReadAt,
    seen: Seen,
}

#[derive(Debug)]
struct Element {
    value: Value,
    add_index: u64,
    add_invoked_ns: u64,
    /// The add's completion: its type and time.
    add_done: Option<(OpType, u64)>,
    reads: Vec<Obs>,
    /// A second add of the same key: the history is not a set history.
    readded: bool,
}

/// An open client op: what the completion is paired with.
#[derive(Debug)]
struct Open {
    f: String,
    key: String,
    index: u64,
    invoked_ns: u64,
}

/// Streams a history in and judges it at the end.
#[derive(Debug)]
pub struct SetChecker {
    opts: SetOptions,
    open: HashMap<u64, Open>,
    elements: HashMap<String, Element>,
    /// Reads of keys no add has been invoked for (yet): kept until the end, since a read
    /// may be invoked before an add that a concurrent worker invokes later.
    orphans: HashMap<String, Vec<(Value, Obs)>>,
}

impl SetChecker {
    pub fn new(opts: SetOptions) -> SetChecker {
        SetChecker {
            opts,
            open: HashMap::new(),
            elements: HashMap::new(),
            orphans: HashMap::new(),
        }
    }

    /// Take in the next op of the history (in history order). Nemesis ops and ops other
    /// than write and read are not part of the set and are passed over.
    pub fn add(&mut self, op: &Op) {
        let Process::Client(p) = op.process else {
            return;
        };
        if op.f != "write" && op.f != "read" {
            return;
        }
        let Some(key) = &op.key else { return };
        if op.kind == OpType::Invoke {
            if op.f == "write" {
                match self.elements.get_mut(key) {
                    Some(e) => e.readded = true,
                    None => {
                        self.elements.insert(
                            key.clone(),
                            Element {
                                value: op.value.clone(),
                                add_index: op.index,
                                add_invoked_ns: op.time_ns,
                                add_done: None,
                                reads: Vec::new(),
                                readded: false,
                            },
                        );
                    }
                }
            }
            self.open.insert(
                p,
                Open {
                    f: op.f.clone(),
                    key: key.clone(),
                    index: op.index,
                    invoked_ns: op.time_ns,
                },
            );
            return;
        }
        let Some(inv) = self.open.remove(&p) else {
            return;
        };
        if inv.f == "write" {
            if let Some(e) = self.elements.get_mut(&inv.key) {
                if e.add_index == inv.index {
                    e.add_done = Some((op.kind, op.time_ns));
                }
            }
            return;
        }
        // Only an `ok` read observed anything.
        if op.kind != OpType::Ok {
            return;
        }
        let at = ReadAt {
            index: inv.index,
            invoked_ns: inv.invoked_ns,
            completed_ns: op.time_ns,
            is_final: inv.invoked_ns >= self.opts.final_from_ns,
        };
        match self.elements.get_mut(&inv.key) {
            Some(e) => {
                let seen = observe(&e.value, &op.value);
                e.reads.push(Obs { at, seen });
            }
            None => self.orphans.entry(inv.key).or_default().push((
                op.value.clone(),
                Obs {
                    at,
                    seen: Seen::Absent,
                },
            )),
        }
    }

    /// Judge every element.
    pub fn finish(mut self) -> SetReport {
        for (key, reads) in std::mem::take(&mut self.orphans) {
            match self.elements.get_mut(&key) {
                Some(e) => {
                    for (v, mut o) in reads {
                        o.seen = observe(&e.value, &v);
                        e.reads.push(o);
                    }
                }
                // A key read and never added: only a non-null answer says something.
                None => {
                    if reads.iter().any(|(v, _)| !v.is_null()) {
                        self.elements.insert(
                            key,
                            Element {
                                value: Value::Null,
                                add_index: u64::MAX,
                                add_invoked_ns: 0,
                                add_done: Some((OpType::Fail, 0)),
                                reads: reads
                                    .into_iter()
                                    .map(|(_, mut o)| {
                                        o.seen = Seen::Other;
                                        o
                                    })
                                    .collect(),
                                readded: false,
                            },
                        );
                    }
                }
            }
        }
        let mut elements: Vec<(String, Element)> = self.elements.into_iter().collect();
        elements.sort_by_key(|(k, e)| (e.add_index, k.clone()));
        let mut r = SetReport {
            verdict: Verdict::Valid,
            reason: None,
            stale_invalid: self.opts.stale_invalid,
            elements: elements
                .iter()
                .filter(|(_, e)| e.add_index != u64::MAX)
                .count(),
            acknowledged: 0,
            counts: Counts::default(),
            reads: 0,
            final_reads: 0,
            worst_stale_ms: None,
            first_lost: None,
            first_stale: None,
            lost: Vec::new(),
            stale: Vec::new(),
            never_read: Vec::new(),
            unexpected: Vec::new(),
            elapsed_ms: 0,
        };
        for (key, e) in &mut elements {
            e.reads.sort_by_key(|o| o.at.invoked_ns);
            for o in &e.reads {
                if o.at.is_final {
                    r.final_reads += 1;
                } else {
                    r.reads += 1;
                }
            }
            judge(key, e, &mut r);
        }
        verdict(&mut r);
        r
    }
}

fn observe(added: &Value, read: &Value) -> Seen {
    if read.is_null() {
        Seen::Absent
    } else if read == added {
        Seen::Present
    } else {
        Seen::Other
    }
}

fn list(v: &mut Vec<String>, key: &str) {
    if v.len() < LISTED {
        v.push(key.to_string());
    }
}

fn judge(key: &str, e: &Element, r: &mut SetReport) {
    let present_anywhere = e.reads.iter().any(|o| o.seen == Seen::Present);
    if e.readded || e.reads.iter().any(|o| o.seen == Seen::Other) {
        r.counts.unexpected += 1;
        list(&mut r.unexpected, key);
        return;
    }
    let ack_ns = match e.add_done {
        Some((OpType::Ok, t)) => t,
        Some((OpType::Fail, _)) => {
            if present_anywhere {
                r.counts.unexpected += 1;
                list(&mut r.unexpected, key);
            } else {
                r.counts.not_added += 1;
            }
            return;
        }
        _ => {
            if present_anywhere {
                r.counts.recovered += 1;
            } else {
                r.counts.not_added += 1;
            }
            return;
        }
    };
    r.acknowledged += 1;
    // The final read's answer: the last successful one (a reader retries after failures).
    let last_final = e.reads.iter().rev().find(|o| o.at.is_final).map(|o| o.seen);
    let missing_after_ack: Vec<&Obs> = e
        .reads
        .iter()
        .filter(|o| o.at.invoked_ns > ack_ns && o.seen == Seen::Absent)
        .collect();
    match last_final {
        None => {
            r.counts.never_read += 1;
            list(&mut r.never_read, key);
        }
        Some(Seen::Absent) => {
            r.counts.lost += 1;
            list(&mut r.lost, key);
            if r.first_lost.is_none() {
                r.first_lost = Some(window(key, e, ack_ns, false));
            }
        }
        Some(_) if !missing_after_ack.is_empty() => {
            r.counts.stale += 1;
            list(&mut r.stale, key);
            if r.first_stale.is_none() {
                r.first_stale = Some(window(key, e, ack_ns, true));
            }
            if let Some(last) = missing_after_ack.last() {
                let ms = (last.at.invoked_ns - ack_ns) as f64 / 1e6;
                r.worst_stale_ms = Some(r.worst_stale_ms.map_or(ms, |w: f64| w.max(ms)));
            }
        }
        Some(_) => r.counts.ok += 1,
    }
}

/// The element's add, the last read that saw it and the first read after both that did
/// not: where it disappeared. A lost element's window ends its last sighting; a stale
/// element's opens at the first read after the acknowledgement that missed it.
fn window(key: &str, e: &Element, ack_ns: u64, stale: bool) -> ElementWindow {
    let absent_after = |t: u64| {
        e.reads
            .iter()
            .find(|o| o.seen == Seen::Absent && o.at.invoked_ns > t)
            .map(|o| o.at)
    };
    let present = e.reads.iter().filter(|o| o.seen == Seen::Present);
    let (last_seen, first_missing) = if stale {
        let missing = absent_after(ack_ns);
        let before = missing.map_or(u64::MAX, |m| m.invoked_ns);
        let seen = present
            .filter(|o| o.at.completed_ns < before)
            .max_by_key(|o| o.at.completed_ns)
            .map(|o| o.at);
        (seen, missing)
    } else {
        let seen = present.max_by_key(|o| o.at.completed_ns).map(|o| o.at);
        let after = seen.map_or(ack_ns, |s| s.completed_ns.max(ack_ns));
        (seen, absent_after(after))
    };
    ElementWindow {
        element: key.to_string(),
        value: e.value.clone(),
        add_index: e.add_index,
        add_invoked_ns: e.add_invoked_ns,
        add_completed_ns: ack_ns,
        last_seen,
        first_missing,
    }
}

fn verdict(r: &mut SetReport) {
    let c = &r.counts;
    let mut invalid = Vec::new();
    if c.lost > 0 {
        invalid.push(format!(
            "{} of {} acknowledged add(s) lost (absent from the final read)",
            c.lost, r.acknowledged
        ));
    }
    if c.stale > 0 && r.stale_invalid {
        invalid.push(format!(
            "{} acknowledged add(s) stale (absent from a read that began after the add was acknowledged)",
            c.stale
        ));
    }
    if c.unexpected > 0 {
        invalid.push(format!(
            "{} element(s) unexpected (present after a failed add, or read with a value never added)",
            c.unexpected
        ));
    }
    let unknown = super::unread_reason("add", r.acknowledged, r.final_reads, c.never_read);
    (r.verdict, r.reason) = super::lost_data_verdict(invalid, unknown);
}

/// Judge a whole history at once (tests and callers holding ops in memory).
pub fn check<'a>(ops: impl IntoIterator<Item = &'a Op>, opts: SetOptions) -> SetReport {
    let mut c = SetChecker::new(opts);
    for op in ops {
        c.add(op);
    }
    c.finish()
}

/// The log's line: the verdict and the elements by outcome.
pub fn summary_line(r: &SetReport) -> String {
    let c = &r.counts;
    let parts = super::nonzero_counts(&[
        ("ok", c.ok),
        ("lost", c.lost),
        ("stale", c.stale),
        ("never-read", c.never_read),
        ("recovered", c.recovered),
        ("not-added", c.not_added),
        ("unexpected", c.unexpected),
    ]);
    format!(
        "set: {}: {} element(s), {} acknowledged{}{parts} (checked in {} ms)",
        r.verdict,
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

    /// Final reads begin at 1000 ms.
    const OPTS: SetOptions = SetOptions {
        final_from_ns: 1_000_000_000,
        stale_invalid: true,
    };

    /// An add of `k` = `v` invoked at `from` ms and completed (`ok`, `fail`, `info`) at `to`.
    fn add(p: u64, k: &str, v: u64, from: u64, to: u64, outcome: &'static str) -> [Line; 2] {
        [
            (p, "invoke", "write", k.to_string(), json!(v), from),
            (p, outcome, "write", k.to_string(), json!(v), to),
        ]
    }

    /// A read of `k` answering `v`.
    fn read(p: u64, k: &str, v: Value, from: u64, to: u64) -> [Line; 2] {
        [
            (p, "invoke", "read", k.to_string(), Value::Null, from),
            (p, "ok", "read", k.to_string(), v, to),
        ]
    }

    #[test]
    fn acknowledged_adds_present_throughout_are_valid() {
        let h = build(&[
            add(0, "s0", 0, 0, 10, "ok"),
            add(1, "s1", 1, 5, 20, "ok"),
            read(2, "s0", json!(0), 30, 35),
            read(2, "s1", json!(1), 40, 45),
            read(3, "s0", json!(0), 1000, 1001),
            read(3, "s1", json!(1), 1002, 1003),
        ]);
        let r = check(&h, OPTS);
        assert_eq!(r.verdict, Verdict::Valid, "{r:?}");
        assert_eq!((r.elements, r.acknowledged, r.counts.ok), (2, 2, 2));
        assert_eq!((r.reads, r.final_reads), (2, 2));
        assert!(r.first_lost.is_none() && r.reason.is_none());
    }

    #[test]
    fn an_acknowledged_add_absent_from_the_final_read_is_lost_with_its_window() {
        let h = build(&[
            add(0, "s0", 0, 0, 10, "ok"),
            add(1, "s1", 1, 5, 20, "ok"),
            read(2, "s0", json!(0), 30, 35),
            read(2, "s0", Value::Null, 50, 55),
            read(3, "s0", Value::Null, 1000, 1001),
            read(3, "s1", json!(1), 1002, 1003),
        ]);
        let r = check(&h, OPTS);
        assert_eq!(r.verdict, Verdict::Invalid);
        assert_eq!((r.counts.lost, r.counts.ok), (1, 1));
        assert_eq!(r.lost, vec!["s0"]);
        let w = r.first_lost.expect("window");
        assert_eq!(
            (w.element.as_str(), w.add_invoked_ns, w.add_completed_ns),
            ("s0", 0, 10_000_000)
        );
        let seen = w.last_seen.expect("seen once");
        assert_eq!((seen.invoked_ns, seen.is_final), (30_000_000, false));
        let gone = w.first_missing.expect("missing");
        assert_eq!((gone.invoked_ns, gone.is_final), (50_000_000, false));
        assert!(r
            .reason
            .unwrap()
            .contains("1 of 2 acknowledged add(s) lost"));
    }

    #[test]
    fn an_element_missing_from_a_read_after_its_ack_is_stale_and_invalid_only_if_asked() {
        let h = build(&[
            add(0, "s0", 0, 0, 10, "ok"),
            // Concurrent with the add: absent is allowed.
            read(1, "s0", Value::Null, 5, 12),
            // Began after the acknowledgement: stale.
            read(1, "s0", Value::Null, 40, 45),
            read(1, "s0", json!(0), 60, 65),
            read(3, "s0", json!(0), 1000, 1001),
        ]);
        let r = check(&h, OPTS);
        assert_eq!((r.verdict, r.counts.stale), (Verdict::Invalid, 1));
        assert_eq!(r.worst_stale_ms, Some(30.0));
        let w = r.first_stale.expect("window");
        assert_eq!(w.first_missing.map(|m| m.invoked_ns), Some(40_000_000));
        let lenient = check(
            &h,
            SetOptions {
                stale_invalid: false,
                ..OPTS
            },
        );
        assert_eq!((lenient.verdict, lenient.counts.stale), (Verdict::Valid, 1));
        // Only the read concurrent with the add: nothing stale.
        let h = build(&[
            add(0, "s0", 0, 0, 10, "ok"),
            read(1, "s0", Value::Null, 5, 12),
            read(3, "s0", json!(0), 1000, 1001),
        ]);
        assert_eq!(check(&h, OPTS).counts.ok, 1);
    }

    #[test]
    fn an_acknowledged_add_without_a_final_read_is_never_read_and_unknown() {
        let h = build(&[
            add(0, "s0", 0, 0, 10, "ok"),
            add(1, "s1", 1, 0, 10, "ok"),
            read(3, "s0", json!(0), 1000, 1001),
        ]);
        let r = check(&h, OPTS);
        assert_eq!((r.verdict, r.counts.never_read), (Verdict::Unknown, 1));
        assert_eq!(r.never_read, vec!["s1"]);
        assert!(r
            .reason
            .unwrap()
            .contains("1 of 2 acknowledged add(s) never read"));
    }

    #[test]
    fn an_unacknowledged_add_that_shows_up_is_recovered_and_a_failed_one_unexpected() {
        let h = build(&[
            add(0, "s0", 0, 0, 10, "ok"),
            add(1, "s1", 1, 0, 2000, "info"),
            add(2, "s2", 2, 0, 5, "info"),
            read(3, "s0", json!(0), 1000, 1001),
            read(3, "s1", json!(1), 1002, 1003),
            read(3, "s2", Value::Null, 1004, 1005),
        ]);
        let r = check(&h, OPTS);
        assert_eq!(r.verdict, Verdict::Valid, "{r:?}");
        assert_eq!(
            (r.counts.ok, r.counts.recovered, r.counts.not_added),
            (1, 1, 1)
        );
        let h = build(&[
            add(0, "s0", 0, 0, 10, "ok"),
            add(1, "s1", 1, 0, 5, "fail"),
            read(3, "s0", json!(0), 1000, 1001),
            read(3, "s1", json!(1), 1002, 1003),
        ]);
        let r = check(&h, OPTS);
        assert_eq!((r.verdict, r.counts.unexpected), (Verdict::Invalid, 1));
        assert_eq!(r.unexpected, vec!["s1"]);
    }

    #[test]
    fn a_read_of_a_value_never_added_is_unexpected_even_before_its_add_is_journaled() {
        let h = build(&[
            read(2, "s0", json!(7), 1, 3),
            add(0, "s0", 0, 2, 10, "ok"),
            read(3, "s0", json!(0), 1000, 1001),
        ]);
        let r = check(&h, OPTS);
        assert_eq!((r.verdict, r.counts.unexpected), (Verdict::Invalid, 1));
        // A read answered before the add was even invoked, null: not stale, not lost.
        let h = build(&[
            read(2, "s0", Value::Null, 1, 3),
            add(0, "s0", 0, 2, 10, "ok"),
            read(3, "s0", json!(0), 1000, 1001),
        ]);
        assert_eq!(check(&h, OPTS).verdict, Verdict::Valid);
    }

    #[test]
    fn an_empty_history_or_one_without_acknowledged_adds_or_final_reads_is_unknown() {
        let r = check(&Vec::<Op>::new(), OPTS);
        assert_eq!(r.verdict, Verdict::Unknown);
        assert!(r.reason.unwrap().contains("no add was acknowledged"));
        let h = build(&[
            add(0, "s0", 0, 0, 10, "info"),
            read(3, "s0", Value::Null, 1000, 1001),
        ]);
        assert_eq!(check(&h, OPTS).verdict, Verdict::Unknown);
        let h = build(&[
            add(0, "s0", 0, 0, 10, "ok"),
            read(1, "s0", json!(0), 20, 30),
        ]);
        let r = check(&h, OPTS);
        assert_eq!(r.verdict, Verdict::Unknown);
        assert!(
            r.reason.as_deref().unwrap().contains("no final read"),
            "{r:?}"
        );
    }

    #[test]
    fn nemesis_ops_and_failed_reads_are_passed_over() {
        let mut h = build(&[
            add(0, "s0", 0, 0, 10, "ok"),
            read(3, "s0", json!(0), 1000, 1001),
        ]);
        h.insert(
            1,
            Op {
                index: 99,
                time_ns: 1,
                process: Process::Nemesis,
                kind: OpType::Info,
                f: "kill".into(),
                key: None,
                value: json!(["n1"]),
                node: None,
                error: None,
            },
        );
        // A failed final read before the successful one.
        let mut failed = build(&[read(4, "s0", Value::Null, 999, 1000)]);
        failed[1].kind = OpType::Fail;
        h.extend(failed);
        let r = check(&h, OPTS);
        assert_eq!(
            (r.verdict, r.final_reads, r.counts.ok),
            (Verdict::Valid, 1, 1)
        );
    }
}
