//! The run page's Set section (results.json `set`, `checker::set`): elements by outcome,
//! the first lost and first stale element with the reads that bracket their
//! disappearance, and the elements of each bad outcome. Element names come from the
//! history: escaped by maud and cut short like everything else a page splices in.

use super::agreement::badge;
use super::escape::{truncate, value_text};
use super::run::RunData;
use crate::checker::set::{ElementWindow, ReadAt, SetReport};
use crate::checker::{secs, Verdict};
use maud::{html, Markup};

/// Elements of one outcome shown on the page (results.json keeps up to
/// `checker::set::LISTED`).
const SHOWN: usize = 50;

/// results.json `set`, when the run has one and it reads as one.
pub fn of(run: &RunData) -> Option<SetReport> {
    run.results
        .get("set")
        .filter(|s| s.is_object())
        .and_then(|s| serde_json::from_value(s.clone()).ok())
}

fn read_cell(r: &Option<ReadAt>) -> Markup {
    match r {
        None => html! { "none" },
        Some(r) => html! {
            (secs(r.invoked_ns)) " – " (secs(r.completed_ns))
            " (op " (r.index) @if r.is_final { ", final read" } ")"
        },
    }
}

fn window_table(id: &str, w: &ElementWindow) -> Markup {
    html! {
        table.grid id=(id) {
            tbody {
                tr { th { "element" } td { code { (truncate(&w.element, 200)) } " = " code { (value_text(&w.value, 200)) } } }
                tr { th { "added" } td { (secs(w.add_invoked_ns)) " – " (secs(w.add_completed_ns)) " (op " (w.add_index) ", acknowledged)" } }
                tr { th { "last read that saw it" } td { (read_cell(&w.last_seen)) } }
                tr { th { "first read after that did not" } td { (read_cell(&w.first_missing)) } }
            }
        }
    }
}

/// The note at the top of a run the set checker found invalid.
pub fn why_invalid(s: &SetReport) -> Option<Markup> {
    if s.verdict != Verdict::Invalid {
        return None;
    }
    Some(html! {
        div.why #set-invalid {
            h2 { "Why it is invalid: the set lost data" }
            p { (truncate(s.reason.as_deref().unwrap_or("the set checker gave no reason"), 1000)) "." }
            @if let Some(w) = &s.first_lost {
                p { "The first lost element, and where it disappeared:" }
                (window_table("set-first-lost-top", w))
            }
        }
    })
}

fn names(label: &str, id: &str, keys: &[String], count: usize) -> Markup {
    html! {
        @if !keys.is_empty() {
            p id=(id) {
                (label) " (" (count) "): "
                @for (i, k) in keys.iter().take(SHOWN).enumerate() {
                    @if i > 0 { ", " }
                    code { (truncate(k, 80)) }
                }
                @if count > keys.len().min(SHOWN) { ", …" }
            }
        }
    }
}

/// The Set section: nothing for a run without a set workload.
pub fn section(run: &RunData) -> Markup {
    let Some(s) = of(run) else {
        return html! {};
    };
    let c = &s.counts;
    let rows = [
        ("ok", c.ok, "acknowledged, present in the final read, never missing after its acknowledgement"),
        ("lost", c.lost, "acknowledged, absent from the final read"),
        ("stale", c.stale, "acknowledged, present at the end, but missing from a read that began after the acknowledgement"),
        ("never-read", c.never_read, "acknowledged, no final read of it succeeded"),
        ("recovered", c.recovered, "not acknowledged (info), present anyway"),
        ("not-added", c.not_added, "not acknowledged or failed, never present"),
        ("unexpected", c.unexpected, "present after a failed add, or read with a value never added"),
    ];
    html! {
        h2 #set { "Set " (badge(s.verdict)) }
        p {
            (s.elements) " element(s) added, " (s.acknowledged) " acknowledged; "
            (s.reads) " read(s) of elements during the run, " (s.final_reads) " in the final read. "
            "Stale elements " @if s.stale_invalid { "make the run invalid" } @else { "are counted, not judged (set.stale: allowed)" } "."
            @if let Some(r) = &s.reason { " " (truncate(r, 1000)) "." }
        }
        table.grid #set-counts {
            thead { tr { th { "outcome" } th.num { "elements" } th { "meaning" } } }
            tbody {
                @for (name, n, meaning) in rows {
                    tr { td { (name) } td.num { (n) } td { (meaning) } }
                }
            }
        }
        @if let Some(w) = s.worst_stale_ms {
            p #set-worst-stale { "The longest an acknowledged element stayed invisible: " (format!("{w:.1}")) " ms after its acknowledgement." }
        }
        @if let Some(w) = &s.first_lost {
            h3 { "First lost element" }
            (window_table("set-first-lost", w))
        }
        @if let Some(w) = &s.first_stale {
            h3 { "First stale element" }
            (window_table("set-first-stale", w))
        }
        (names("Lost", "set-lost", &s.lost, c.lost))
        (names("Stale", "set-stale", &s.stale, c.stale))
        (names("Never read", "set-never-read", &s.never_read, c.never_read))
        (names("Unexpected", "set-unexpected", &s.unexpected, c.unexpected))
        p.muted { "Each element is a key written once (" code { "s<n>" } " = n); a read of the set is a sweep of reads of its elements, and the final read reads every element after the faults healed. Checked in " (s.elapsed_ms) " ms." }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::set::{check, SetOptions};
    use crate::history::{Op, OpType, Process};
    use serde_json::{json, Value};

    fn op(i: u64, ms: u64, p: u64, kind: OpType, f: &str, k: &str, v: Value) -> Op {
        Op {
            index: i,
            time_ns: ms * 1_000_000,
            process: Process::Client(p),
            kind,
            f: f.into(),
            key: Some(k.into()),
            value: v,
            node: None,
            error: None,
        }
    }

    fn run_with(set: Value) -> RunData {
        RunData::from_parts(
            std::path::Path::new("/nonexistent"),
            json!({ "set": set }),
            Value::Null,
            Vec::new(),
        )
    }

    #[test]
    fn a_lost_element_is_named_with_its_window_and_markup_in_names_is_escaped() {
        let k = "s<b>0";
        let h = vec![
            op(0, 0, 0, OpType::Invoke, "write", k, json!(0)),
            op(1, 10, 0, OpType::Ok, "write", k, json!(0)),
            op(2, 20, 1, OpType::Invoke, "read", k, Value::Null),
            op(3, 25, 1, OpType::Ok, "read", k, json!(0)),
            op(4, 1000, 2, OpType::Invoke, "read", k, Value::Null),
            op(5, 1001, 2, OpType::Ok, "read", k, Value::Null),
        ];
        let r = check(
            &h,
            SetOptions {
                final_from_ns: 1_000_000_000,
                stale_invalid: true,
            },
        );
        let run = run_with(serde_json::to_value(&r).unwrap());
        let html = section(&run).into_string();
        assert!(html.contains("id=\"set-first-lost\""), "{html}");
        assert!(
            html.contains("s&lt;b&gt;0") && !html.contains("s<b>0"),
            "{html}"
        );
        assert!(html.contains("0.020 s – 0.025 s (op 2)"), "{html}");
        assert!(html.contains("(op 4, final read)"), "{html}");
        let why = why_invalid(&of(&run).unwrap()).unwrap().into_string();
        assert!(why.contains("1 of 1 acknowledged add(s) lost"), "{why}");
    }

    #[test]
    fn a_run_without_a_set_has_no_section() {
        assert!(section(&run_with(Value::Null)).into_string().is_empty());
    }
}
