//! The counterexample view of an invalid run: why the checker said no, drawn so a reader
//! sees it without opening JSON.
//!
//! It shows the offending key's window of calls as a per-process timeline (one lane per
//! process, a bar from invocation to completion, open calls fading out to the right), the
//! call that cannot be linearized highlighted, the states the model could be in just
//! before it, and the end of the longest linearizable prefix in linearization order.
//!
//! The diagram's x axis is *history order*, not wall time: linearizability depends only on
//! which invocations and completions precede which, and an ordinal axis keeps a 2 ms read
//! beside a 7 s timeout legible. Real times are in each bar's tooltip and in the table.
//!
//! Every call names the node that answered it, and the faults in force around the window
//! are listed, drawn as bands above the lanes, and marked on each call whose node they hit
//! while it ran (a stale read served by a node cut off from the majority).
//!
//! Input is the checker's JSON (`check.counterexample` of results.json), read into
//! [`crate::checker::counterexample::Counterexample`]; JSON this faultline cannot read
//! (written by another version) is shown as escaped JSON with a note instead.
//!
//! HTML and the diagram's SVG are written with maud, so the calls, values and node names
//! in it are escaped where they are spliced in.

use super::run::FaultKind;
use crate::checker::counterexample::{CallView, Counterexample, FaultInForce};
use crate::checker::model::Outcome as CallOutcome;
use maud::{html, Markup};
use serde_json::Value;
use std::collections::BTreeMap;

/// Most lanes (processes) and calls the diagram draws; a bigger window (shrinking ran out
/// of budget) is cut, and the table below says how many calls were left out.
const MAX_LANES: usize = 40;
const MAX_CALLS_DRAWN: usize = 120;
/// Most fault bands drawn above the lanes; the list above the diagram names them all.
const MAX_BANDS: usize = 8;

/// The view's HTML for `check` (the checker's JSON), or `None` when it has no
/// counterexample.
pub fn section(check: &Value) -> Option<Markup> {
    let raw = check.get("counterexample").filter(|v| !v.is_null())?;
    Some(
        match serde_json::from_value::<Counterexample>(raw.clone()) {
            Ok(cx) => render(&cx),
            Err(e) => {
                let pretty = serde_json::to_string_pretty(raw).unwrap_or_default();
                html! {
                    div.why #counterexample {
                        h2 { "Why it is invalid" }
                        p.note {
                            "This counterexample was written in a form this faultline cannot draw ("
                            (e) "); here it is as the checker wrote it."
                        }
                        pre { (pretty) }
                    }
                }
            }
        },
    )
}

fn outcome_text(o: CallOutcome) -> &'static str {
    match o {
        CallOutcome::Ok => "ok",
        CallOutcome::CompareFailed => "fail (compare failed)",
        CallOutcome::Info => "info (unknown)",
        CallOutcome::Pending => "never completed",
    }
}

fn same_call(a: &CallView, b: &CallView) -> bool {
    a.invoke.index == b.invoke.index
}

fn ms(ns: u64) -> String {
    format!("{:.3} s", ns as f64 / 1e9)
}

/// The band colour of the timeline for the same fault, so the two pages agree.
fn fault_colour(f: &FaultInForce) -> String {
    let (r, g, b) = FaultKind::started_by(&f.f).map_or((0x80, 0x80, 0x80), FaultKind::colour);
    format!("rgb({r},{g},{b})")
}

/// What a fault meant for a call on `node`: a partition says which side the node was on
/// when it was the smaller one, the case a stale read comes from.
fn fault_on(f: &FaultInForce, node: &str) -> String {
    let total: usize = f.sides.iter().map(Vec::len).sum();
    match f.sides.iter().find(|s| s.iter().any(|n| n == node)) {
        Some(side) if side.len() * 2 < total => format!("{} ({node} in the minority)", f.text),
        _ => f.text.clone(),
    }
}

/// The faults that hit `c`'s node while it ran, as text.
fn node_faults(c: &CallView, faults: &[FaultInForce]) -> Vec<String> {
    let node = c.node.as_deref().unwrap_or_default();
    c.node_faults
        .iter()
        .filter_map(|&i| faults.get(i))
        .map(|f| fault_on(f, node))
        .collect()
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn render(cx: &Counterexample) -> Markup {
    let failing = &cx.failing_call;
    let mut calls: Vec<&CallView> = cx.window.iter().collect();
    if !calls.iter().any(|c| same_call(c, failing)) {
        calls.push(failing);
    }
    calls.sort_by_key(|c| c.invoke.index);
    let faults = cx.faults.as_deref().unwrap_or_default();
    let prefix: Vec<&CallView> = cx.prefix.iter().collect();
    html! {
        div.why #counterexample {
            h2 { "Why it is invalid" }
            p {
                @match &cx.key {
                    Some(k) => { "Key " code { (k) } " cannot be linearized: " },
                    None => "The history cannot be linearized: ",
                }
                "no order of its calls that respects real time explains what the clients saw. The call that could not be placed is "
                b.failing-call { "process " (failing.process) " · " code { (failing.call) } }
                " (" (outcome_text(failing.outcome)) ", history indexes " (failing.invoke.index) "–"
                @match failing.complete {
                    Some(c) => (c.index),
                    None => "…",
                }
                ")."
            }
            p {
                "Just before it had to take effect, the model could be in "
                @if cx.states_before.is_empty() {
                    "no state at all (every order of the earlier calls already failed)."
                } @else {
                    (cx.states_before.len()) " state" (plural(cx.states_before.len())) ": "
                    @for s in &cx.states_before { span.state { (state_text(s)) } }
                    @if cx.states_before.len() == 1 {
                        " — and from it, " code { (failing.call) } " cannot happen."
                    } @else {
                        " — and from none of them can " code { (failing.call) } " happen."
                    }
                }
            }
            h3 {
                "The smallest window found: " (cx.window.len()) " call" (plural(cx.window.len()))
                @if cx.window_minimal { ", minimal" }
            }
            p.muted {
                @if cx.window_minimal {
                    "Remove any one of these calls and the rest can be linearized. "
                } @else {
                    "Shrinking stopped at its time budget: a smaller window may exist. "
                }
                @if cx.window_others > 0 {
                    "This holds whatever the " (cx.window_others) " other call"
                    (plural(cx.window_others))
                    " invoked before the failing call returned did (they may have taken effect at any time after their invocation, or never). "
                }
                "Bars run from invocation to completion in history order; a bar that fades out never completed (info: it may take effect at any later time)."
            }
            (faults_list(cx.faults.as_deref()))
            div.cx { (diagram(&calls, failing, faults)) }
            (calls_table(&calls, Some(failing), false, faults))
            @if let Some(r) = &cx.reappeared {
                h3 { "A value came back" }
                p {
                    "Process " (r.first.process) "'s " code { (r.first.call) } ", then process "
                    (r.between.process) "'s " code { (r.between.call) } " (ok), then process "
                    (r.again.process) "'s " code { (r.again.call) }
                    " again — yet one call alone ever set that value: process " (r.write.process)
                    "'s " code { (r.write.call) } " (" (outcome_text(r.write.outcome)) "). "
                    "These four calls alone are not linearizable: " (r.reading()) "."
                }
                (calls_table(&[&r.first, &r.between, &r.again, &r.write], None, false, faults))
            }
            h3 { "Longest linearizable prefix: " (cx.prefix_len) " call" (plural(cx.prefix_len)) }
            @if cx.prefix.is_empty() {
                p { "Not even the first call could be linearized." }
            } @else {
                p.muted {
                    "The search linearized this many calls before it got stuck; the last "
                    (cx.prefix.len()) " of them in the order they took effect:"
                }
                (calls_table(&prefix, None, true, faults))
            }
            p { a href={ "timeline.html#op=" (failing.invoke.index) } { "See the failing call in the timeline" } }
        }
    }
}

/// A model state as text: strings without quotes, `nil` for null.
fn state_text(v: &Value) -> String {
    match v {
        Value::Null => "nil".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The faults in force around the window (`None`: the counterexample predates them).
fn faults_list(faults: Option<&[FaultInForce]>) -> Markup {
    let Some(faults) = faults else {
        return html! {};
    };
    if faults.is_empty() {
        return html! { p.cx-faults.none { "No fault was in force during these calls." } };
    }
    html! {
        p { "Faults in force around these calls:" }
        ul.cx-faults {
            @for f in faults {
                li {
                    span.swatch style={
                        "display:inline-block;width:.8em;height:.8em;margin-right:.4em;background:"
                        (fault_colour(f)) ";opacity:.6"
                    } {}
                    b { (f.text) }
                    " — from " (ms(f.start.time_ns)) " (history index " (f.start.index) ") "
                    @match f.end {
                        Some(e) => { "to " (ms(e.time_ns)) " (index " (e.index) ")" },
                        None => "to the end of the history",
                    }
                }
            }
        }
    }
}

fn calls_table(
    calls: &[&CallView],
    failing: Option<&CallView>,
    numbered: bool,
    faults: &[FaultInForce],
) -> Markup {
    html! {
        table.grid {
            thead { tr {
                @if numbered { th.num { "#" } }
                th { "process" } th { "node" } th { "call" } th { "outcome" }
                th.num { "invoked" } th.num { "completed" } th.num { "history index" }
                th.num { "line" } th { "faults on its node" }
            } }
            tbody {
                @for (i, c) in calls.iter().enumerate() {
                    @let is_failing = failing.is_some_and(|f| same_call(c, f));
                    @let hit = node_faults(c, faults);
                    tr class=[is_failing.then_some("failing")] {
                        @if numbered { td.num { (i + 1) } }
                        td { (c.process) }
                        td.node { (c.node.as_deref().unwrap_or("—")) }
                        td { code { (c.call) } @if is_failing { " ← cannot be linearized" } }
                        td { (outcome_text(c.outcome)) }
                        td.num { (ms(c.invoke.time_ns)) }
                        td.num { (c.complete.map_or("—".into(), |e| ms(e.time_ns))) }
                        td.num {
                            (c.invoke.index) "–"
                            @match c.complete {
                                Some(e) => (e.index),
                                None => "…",
                            }
                        }
                        td.num { (c.invoke.line) }
                        td.node-faults {
                            @if hit.is_empty() { "—" } @else { (hit.join("; ")) }
                        }
                    }
                }
            }
        }
    }
}

/// The per-process diagram as inline SVG.
fn diagram(calls: &[&CallView], failing: &CallView, faults: &[FaultInForce]) -> Markup {
    let calls: Vec<&CallView> = calls.iter().copied().take(MAX_CALLS_DRAWN).collect();
    // Lanes: processes by first invocation.
    let mut lanes: BTreeMap<u64, usize> = BTreeMap::new();
    let mut order: Vec<u64> = Vec::new();
    for c in &calls {
        if !lanes.contains_key(&c.process) && lanes.len() < MAX_LANES {
            lanes.insert(c.process, order.len());
            order.push(c.process);
        }
    }
    // Ordinal x: every invocation and completion gets a slot in history order.
    let mut events: Vec<u64> = calls
        .iter()
        .flat_map(|c| std::iter::once(c.invoke.index).chain(c.complete.map(|e| e.index)))
        .collect();
    events.sort_unstable();
    events.dedup();
    let slot = |index: u64| events.partition_point(|&e| e < index);
    let bands: Vec<&FaultInForce> = faults.iter().take(MAX_BANDS).collect();
    let band_h = 20.0;
    let (left, lane_h, slot_w) = (100.0, 50.0, 64.0);
    let top = 30.0 + bands.len() as f64 * band_h;
    let open_tail = 1.5;
    let width = left + (events.len() as f64 + open_tail + 0.5) * slot_w + 20.0;
    let height = top + lanes.len() as f64 * lane_h + 10.0;
    let x = |s: usize| left + (s as f64 + 0.5) * slot_w;
    // A fault's edges fall between the calls' events: the boundary before the first event
    // after it.
    let edge = |index: u64| left + slot(index) as f64 * slot_w;
    let f1 = |v: f64| format!("{v:.1}");
    let band = |i: usize, f: &FaultInForce| -> Markup {
        let y = 26.0 + i as f64 * band_h;
        let x0 = edge(f.start.index);
        let x1 = f.end.map_or(width - 10.0, |e| edge(e.index).max(x0 + 4.0));
        let colour = fault_colour(f);
        let tip = format!(
            "{}\nfrom {} (index {}) {}",
            f.text,
            ms(f.start.time_ns),
            f.start.index,
            f.end
                .map_or("to the end of the history".into(), |e| format!(
                    "to {} (index {})",
                    ms(e.time_ns),
                    e.index
                ))
        );
        html! {
            g.fault {
                title { (tip) }
                rect x=(f1(x0)) y=(f1(y)) width=(f1(x1 - x0)) height=(f1(band_h - 4.0))
                    fill=(colour) fill-opacity=".22" stroke=(colour) {}
                text x=(f1(x0 + 4.0)) y=(f1(y + 12.0)) fill="#24292f" font-size="12" { (f.text) }
            }
        }
    };
    let call = |c: &CallView, lane: usize| -> Markup {
        let is_failing = same_call(c, failing);
        // The label sits above its bar, so it may be longer than the bar is wide.
        let y = top + lane as f64 * lane_h + 24.0;
        let h = 16.0;
        let x0 = x(slot(c.invoke.index)) - 6.0;
        let x1 = match c.complete {
            Some(e) => x(slot(e.index)) + 6.0,
            None => x(events.len()) + open_tail * slot_w,
        };
        let (fill, stroke) = match c.outcome {
            _ if is_failing => ("#ffd7d5", "#cf222e"),
            CallOutcome::Ok => ("#dbe9f7", "#2b6cb0"),
            CallOutcome::CompareFailed => ("#fbe3e3", "#d62728"),
            CallOutcome::Info | CallOutcome::Pending => ("url(#fade)", "#f08c00"),
        };
        let hit = node_faults(c, faults);
        let node = c.node.as_deref().unwrap_or("?");
        let tip = format!(
            "process {} · {} · {} · node {node}\ninvoked {} (index {}, line {})\n{}{}",
            c.process,
            c.call,
            outcome_text(c.outcome),
            ms(c.invoke.time_ns),
            c.invoke.index,
            c.invoke.line,
            match c.complete {
                Some(e) => format!("completed {} (index {})", ms(e.time_ns), e.index),
                None => "no completion: may take effect at any later time, or never".into(),
            },
            if hit.is_empty() {
                String::new()
            } else {
                format!("\non {node} meanwhile: {}", hit.join("; "))
            }
        );
        let open =
            c.complete.is_none() || matches!(c.outcome, CallOutcome::Info | CallOutcome::Pending);
        // The mark that the node answering was under a fault: first thing to check when
        // a read is stale.
        let marked = c.node_faults.first().and_then(|&i| faults.get(i));
        html! {
            g.call.failing[is_failing] data-index=(c.invoke.index) {
                title { (tip) }
                rect x=(f1(x0)) y=(f1(y)) width=(f1((x1 - x0).max(8.0))) height=(f1(h)) rx="4"
                    fill=(fill) stroke=(stroke) stroke-width=(if is_failing { 3 } else { 1 })
                    stroke-dasharray=[open.then_some("5 3")] {}
                text x=(f1(x0 + 1.0)) y=(f1(y - 5.0))
                    fill=(if is_failing { "#a40e26" } else { "#24292f" })
                    font-weight=(if is_failing { 700 } else { 400 }) {
                    (c.call)
                    @if let Some(n) = &c.node { " · " (n) }
                    @if is_failing { "  ✗" }
                }
            }
            @if let Some(f) = marked {
                circle.node-fault data-index=(c.invoke.index) cx=(f1(x0)) cy=(f1(y + h / 2.0))
                    r="6" fill=(fault_colour(f)) stroke="#fff" stroke-width="1.5" {
                    title { (hit.join("; ")) }
                }
            }
        }
    };
    // Never wider than drawn: a three-call window should not fill the screen.
    html! {
        svg style={ "max-width:" (format_args!("{width:.0}")) "px" }
            viewBox=(format_args!("0 0 {width:.0} {height:.0}"))
            xmlns="http://www.w3.org/2000/svg" font-family="system-ui, sans-serif"
            font-size="13" role="img" aria-label="per-process timeline of the window" {
            defs {
                linearGradient #fade x1="0" x2="1" {
                    stop offset="0" stop-color="#f08c00" stop-opacity=".85" {}
                    stop offset="1" stop-color="#f08c00" stop-opacity="0" {}
                }
            }
            text x=(left) y="18" fill="#57606a" font-size="12" { "history order →" }
            @for (i, f) in bands.iter().enumerate() { (band(i, f)) }
            @for (i, p) in order.iter().enumerate() {
                @let y = top + i as f64 * lane_h + 32.0;
                line x1=(left) x2=(format_args!("{:.0}", width - 10.0)) y1=(f1(y)) y2=(f1(y))
                    stroke="#d0d7de" {}
                text x="8" y=(f1(y + 4.0)) fill="#24292f" { "process " (p) }
            }
            @for c in &calls {
                @if let Some(&lane) = lanes.get(&c.process) { (call(c, lane)) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(process: u64, call: &str, inv: u64, done: Option<u64>, outcome: &str) -> Value {
        json!({
            "process": process, "f": "x", "call": call, "outcome": outcome,
            "invoke": {"index": inv, "time_ns": inv * 1000, "line": inv + 1},
            "complete": done.map(|d| json!({"index": d, "time_ns": d * 1000, "line": d + 1})),
        })
    }

    fn page(check: &Value) -> String {
        section(check).expect("a counterexample").into_string()
    }

    fn check() -> Value {
        let failing = call(3, "read → 1", 4, Some(5), "ok");
        json!({"counterexample": {
            "key": "k<1>",
            "failing_call": failing,
            "states_before": [2],
            "window": [call(1, "write 1", 0, Some(1), "ok"), call(2, "write 2", 2, Some(3), "ok"), failing],
            "window_minimal": true,
            "window_others": 0,
            "prefix_len": 2,
            "prefix": [call(1, "write 1", 0, Some(1), "ok"), call(2, "write 2", 2, Some(3), "ok")]
        }})
    }

    #[test]
    fn highlights_the_failing_call_and_names_the_states() {
        let s = page(&check());
        assert!(s.contains("k&lt;1&gt;"), "key escaped");
        assert_eq!(s.matches("class=\"call failing\"").count(), 1);
        assert!(s.contains("<span class=\"state\">2</span>"));
        assert!(s.contains("read → 1  ✗"));
        assert!(s.contains("Longest linearizable prefix: 2 calls"));
    }

    #[test]
    fn escapes_values_from_the_target() {
        let mut c = check();
        c["counterexample"]["failing_call"]["call"] =
            json!("read → </svg><script>alert(1)</script>");
        let s = page(&c);
        assert!(!s.contains("<script>"));
    }

    #[test]
    fn a_value_that_came_back_is_told_in_words_escaped() {
        let mut c = check();
        assert!(!page(&c).contains("A value came back"), "only when found");
        c["counterexample"]["reappeared"] = json!({
            "first": call(2, "read → <7>", 1, Some(2), "ok"),
            "between": call(2, "write 8", 3, Some(4), "ok"),
            "again": call(2, "read → <7>", 5, Some(6), "ok"),
            "write": call(1, "write <7>", 0, None, "info"),
            "write_running": true
        });
        let s = page(&c);
        assert!(s.contains("<h3>A value came back</h3>"), "{s}");
        assert!(s.contains("<code>write &lt;7&gt;</code>"));
        assert!(!s.contains("<7>"), "values are escaped");
        assert!(s.contains("took effect twice"));
    }

    #[test]
    fn unreadable_counterexample_is_shown_as_escaped_json() {
        let s = page(&json!({"counterexample": {"key": "<b>", "odd": true}}));
        assert!(s.contains("cannot draw") && s.contains("&lt;b&gt;"));
    }

    #[test]
    fn names_each_calls_node_and_the_faults_in_force_escaped() {
        let mut c = check();
        let cx = &mut c["counterexample"];
        let failing = &mut cx["failing_call"];
        failing["node"] = json!("<n1>");
        failing["node_faults"] = json!([0]);
        cx["window"][2] = failing.clone();
        cx["window"][0]["node"] = json!("n2");
        cx["faults"] = json!([{
            "f": "start-partition", "nodes": ["<n1>", "n2", "n3"],
            "sides": [["<n1>"], ["n2", "n3"]], "text": "partition: <n1> | n2,n3",
            "start": {"index": 3, "time_ns": 3000, "line": 4}, "end": null
        }]);
        let s = page(&c);
        assert!(!s.contains("<n1>"), "node names are escaped");
        assert!(s.contains("<td class=\"node\">&lt;n1&gt;</td>"));
        assert!(s.contains("<td class=\"node\">n2</td>"));
        assert!(s.contains(
            "<td class=\"node-faults\">partition: &lt;n1&gt; | n2,n3 (&lt;n1&gt; in the minority)</td>"
        ));
        assert!(s.contains("<b>partition: &lt;n1&gt; | n2,n3</b>"), "listed");
        assert_eq!(s.matches("<g class=\"fault\">").count(), 1, "one band");
        assert_eq!(
            s.matches("class=\"node-fault\" data-index=\"4\"").count(),
            1,
            "the failing call is marked"
        );
        assert!(s.contains("read → 1 · &lt;n1&gt;  ✗"));
    }

    #[test]
    fn says_when_no_fault_was_in_force_and_stays_quiet_for_older_files() {
        let mut c = check();
        assert!(!page(&c).contains("cx-faults"), "older file");
        c["counterexample"]["faults"] = json!([]);
        assert!(page(&c).contains("No fault was in force during these calls."));
    }

    #[test]
    fn no_counterexample_no_section() {
        assert!(section(&json!({"verdict": "valid"})).is_none());
    }
}
