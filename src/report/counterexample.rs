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

use super::escape::{html, push_html};
use super::run::FaultKind;
use crate::checker::counterexample::{CallView, Counterexample, FaultInForce};
use crate::checker::model::Outcome as CallOutcome;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Most lanes (processes) and calls the diagram draws; a bigger window (shrinking ran out
/// of budget) is cut, and the table below says how many calls were left out.
const MAX_LANES: usize = 40;
const MAX_CALLS_DRAWN: usize = 120;
/// Most fault bands drawn above the lanes; the list above the diagram names them all.
const MAX_BANDS: usize = 8;

/// The view's HTML for `check` (the checker's JSON), or `None` when it has no
/// counterexample.
pub fn section(check: &Value) -> Option<String> {
    let raw = check.get("counterexample").filter(|v| !v.is_null())?;
    let mut out = String::new();
    match serde_json::from_value::<Counterexample>(raw.clone()) {
        Ok(cx) => render(&mut out, &cx),
        Err(e) => {
            let pretty = serde_json::to_string_pretty(raw).unwrap_or_default();
            let _ = write!(
                out,
                "<div class=\"why\" id=\"counterexample\"><h2>Why it is invalid</h2><p class=\"note\">This counterexample was written in a form this faultline cannot draw ({}); here it is as the checker wrote it.</p><pre>{}</pre></div>",
                html(&e.to_string()),
                html(&pretty)
            );
        }
    }
    Some(out)
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

fn render(out: &mut String, cx: &Counterexample) {
    let failing = &cx.failing_call;
    out.push_str("<div class=\"why\" id=\"counterexample\"><h2>Why it is invalid</h2>\n<p>");
    match &cx.key {
        Some(k) => {
            out.push_str("Key <code>");
            push_html(out, k);
            out.push_str("</code> cannot be linearized: ");
        }
        None => out.push_str("The history cannot be linearized: "),
    }
    let _ = writeln!(
        out,
        "no order of its calls that respects real time explains what the clients saw. The call that could not be placed is <b class=\"failing-call\">process {} · <code>{}</code></b> ({}, history indexes {}–{}).</p>",
        failing.process,
        html(&failing.call),
        outcome_text(failing.outcome),
        failing.invoke.index,
        failing
            .complete
            .map_or("…".to_string(), |c| c.index.to_string())
    );

    out.push_str("<p>Just before it had to take effect, the model could be in ");
    if cx.states_before.is_empty() {
        out.push_str("no state at all (every order of the earlier calls already failed).");
    } else {
        let _ = write!(
            out,
            "{} state{}: ",
            cx.states_before.len(),
            if cx.states_before.len() == 1 { "" } else { "s" }
        );
        for s in &cx.states_before {
            out.push_str("<span class=\"state\">");
            push_html(out, &state_text(s));
            out.push_str("</span>");
        }
        if cx.states_before.len() == 1 {
            let _ = write!(
                out,
                " — and from it, <code>{}</code> cannot happen.",
                html(&failing.call)
            );
        } else {
            let _ = write!(
                out,
                " — and from none of them can <code>{}</code> happen.",
                html(&failing.call)
            );
        }
    }
    out.push_str("</p>\n");

    let mut calls: Vec<&CallView> = cx.window.iter().collect();
    if !calls.iter().any(|c| same_call(c, failing)) {
        calls.push(failing);
    }
    calls.sort_by_key(|c| c.invoke.index);
    let _ = write!(
        out,
        "<h3>The smallest window found: {} call{}{}</h3>\n<p class=\"muted\">",
        cx.window.len(),
        if cx.window.len() == 1 { "" } else { "s" },
        if cx.window_minimal { ", minimal" } else { "" }
    );
    if cx.window_minimal {
        out.push_str("Remove any one of these calls and the rest can be linearized. ");
    } else {
        out.push_str("Shrinking stopped at its time budget: a smaller window may exist. ");
    }
    if cx.window_others > 0 {
        let _ = write!(
            out,
            "This holds whatever the {} other call{} invoked before the failing call returned did (they may have taken effect at any time after their invocation, or never). ",
            cx.window_others,
            if cx.window_others == 1 { "" } else { "s" }
        );
    }
    out.push_str("Bars run from invocation to completion in history order; a bar that fades out never completed (info: it may take effect at any later time).</p>\n");
    let faults = cx.faults.as_deref().unwrap_or_default();
    faults_list(out, cx.faults.as_deref());
    out.push_str("<div class=\"cx\">");
    diagram(out, &calls, failing, faults);
    out.push_str("</div>\n");
    calls_table(out, &calls, Some(failing), false, faults);

    let _ = writeln!(
        out,
        "<h3>Longest linearizable prefix: {} call{}</h3>",
        cx.prefix_len,
        if cx.prefix_len == 1 { "" } else { "s" }
    );
    if cx.prefix.is_empty() {
        out.push_str("<p>Not even the first call could be linearized.</p>\n");
    } else {
        let _ = writeln!(
            out,
            "<p class=\"muted\">The search linearized this many calls before it got stuck; the last {} of them in the order they took effect:</p>",
            cx.prefix.len()
        );
        let refs: Vec<&CallView> = cx.prefix.iter().collect();
        calls_table(out, &refs, None, true, faults);
    }
    let _ = writeln!(
        out,
        "<p><a href=\"timeline.html#op={}\">See the failing call in the timeline</a></p></div>",
        failing.invoke.index
    );
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
fn faults_list(out: &mut String, faults: Option<&[FaultInForce]>) {
    let Some(faults) = faults else {
        return;
    };
    if faults.is_empty() {
        out.push_str("<p class=\"cx-faults none\">No fault was in force during these calls.</p>\n");
        return;
    }
    out.push_str("<p>Faults in force around these calls:</p><ul class=\"cx-faults\">");
    for f in faults {
        let _ = write!(
            out,
            "<li><span class=\"swatch\" style=\"display:inline-block;width:.8em;height:.8em;margin-right:.4em;background:{};opacity:.6\"></span><b>{}</b> — from {} (history index {}) ",
            fault_colour(f),
            html(&f.text),
            ms(f.start.time_ns),
            f.start.index
        );
        match f.end {
            Some(e) => {
                let _ = write!(out, "to {} (index {})", ms(e.time_ns), e.index);
            }
            None => out.push_str("to the end of the history"),
        }
        out.push_str("</li>");
    }
    out.push_str("</ul>\n");
}

fn calls_table(
    out: &mut String,
    calls: &[&CallView],
    failing: Option<&CallView>,
    numbered: bool,
    faults: &[FaultInForce],
) {
    out.push_str("<table class=\"grid\"><thead><tr>");
    if numbered {
        out.push_str("<th class=\"num\">#</th>");
    }
    out.push_str("<th>process</th><th>node</th><th>call</th><th>outcome</th><th class=\"num\">invoked</th><th class=\"num\">completed</th><th class=\"num\">history index</th><th class=\"num\">line</th><th>faults on its node</th></tr></thead><tbody>\n");
    for (i, c) in calls.iter().enumerate() {
        let is_failing = failing.is_some_and(|f| same_call(c, f));
        out.push_str(if is_failing {
            "<tr class=\"failing\">"
        } else {
            "<tr>"
        });
        if numbered {
            let _ = write!(out, "<td class=\"num\">{}</td>", i + 1);
        }
        let hit = node_faults(c, faults);
        let _ = writeln!(
            out,
            "<td>{}</td><td class=\"node\">{}</td><td><code>{}</code>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}–{}</td><td class=\"num\">{}</td><td class=\"node-faults\">{}</td></tr>",
            c.process,
            c.node.as_deref().map_or("—".to_string(), html),
            html(&c.call),
            if is_failing { " ← cannot be linearized" } else { "" },
            outcome_text(c.outcome),
            ms(c.invoke.time_ns),
            c.complete.map_or("—".into(), |e| ms(e.time_ns)),
            c.invoke.index,
            c.complete.map_or("…".into(), |e| e.index.to_string()),
            c.invoke.line,
            if hit.is_empty() {
                "—".to_string()
            } else {
                html(&hit.join("; "))
            }
        );
    }
    out.push_str("</tbody></table>\n");
}

/// The per-process diagram as inline SVG.
fn diagram(out: &mut String, calls: &[&CallView], failing: &CallView, faults: &[FaultInForce]) {
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
    // Never wider than drawn: a three-call window should not fill the screen.
    let _ = write!(
        out,
        "<svg style=\"max-width:{width:.0}px\" viewBox=\"0 0 {width:.0} {height:.0}\" xmlns=\"http://www.w3.org/2000/svg\" font-family=\"system-ui, sans-serif\" font-size=\"13\" role=\"img\" aria-label=\"per-process timeline of the window\">\
<defs><linearGradient id=\"fade\" x1=\"0\" x2=\"1\"><stop offset=\"0\" stop-color=\"#f08c00\" stop-opacity=\".85\"/><stop offset=\"1\" stop-color=\"#f08c00\" stop-opacity=\"0\"/></linearGradient></defs>\
<text x=\"{left}\" y=\"18\" fill=\"#57606a\" font-size=\"12\">history order →</text>"
    );
    // A fault's edges fall between the calls' events: the boundary before the first event
    // after it.
    let edge = |index: u64| left + slot(index) as f64 * slot_w;
    for (i, f) in bands.iter().enumerate() {
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
        let _ = write!(
            out,
            "<g class=\"fault\"><title>{}</title><rect x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\" fill-opacity=\".22\" stroke=\"{colour}\"/><text x=\"{:.1}\" y=\"{:.1}\" fill=\"#24292f\" font-size=\"12\">{}</text></g>",
            html(&tip),
            x1 - x0,
            band_h - 4.0,
            x0 + 4.0,
            y + 12.0,
            html(&f.text)
        );
    }
    for (i, p) in order.iter().enumerate() {
        let y = top + i as f64 * lane_h + 32.0;
        let _ = write!(
            out,
            "<line x1=\"{left}\" x2=\"{:.0}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#d0d7de\"/><text x=\"8\" y=\"{:.1}\" fill=\"#24292f\">process {p}</text>",
            width - 10.0,
            y + 4.0
        );
    }
    for c in &calls {
        let Some(&lane) = lanes.get(&c.process) else {
            continue;
        };
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
        let _ = write!(
            out,
            "<g class=\"call{}\" data-index=\"{}\"><title>{}</title><rect x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\" rx=\"4\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"{}\"{}/>\
<text x=\"{:.1}\" y=\"{:.1}\" fill=\"{}\" font-weight=\"{}\">{}</text></g>",
            if is_failing { " failing" } else { "" },
            c.invoke.index,
            html(&tip),
            (x1 - x0).max(8.0),
            if is_failing { 3 } else { 1 },
            if open { " stroke-dasharray=\"5 3\"" } else { "" },
            x0 + 1.0,
            y - 5.0,
            if is_failing { "#a40e26" } else { "#24292f" },
            if is_failing { 700 } else { 400 },
            html(&format!(
                "{}{}{}",
                c.call,
                c.node.as_deref().map_or(String::new(), |n| format!(" · {n}")),
                if is_failing { "  ✗" } else { "" }
            ))
        );
        // The mark that the node answering was under a fault: first thing to check when
        // a read is stale.
        if let Some(f) = c.node_faults.first().and_then(|&i| faults.get(i)) {
            let _ = write!(
                out,
                "<circle class=\"node-fault\" data-index=\"{}\" cx=\"{x0:.1}\" cy=\"{:.1}\" r=\"6\" fill=\"{}\" stroke=\"#fff\" stroke-width=\"1.5\"><title>{}</title></circle>",
                c.invoke.index,
                y + h / 2.0,
                fault_colour(f),
                html(&hit.join("; "))
            );
        }
    }
    out.push_str("</svg>");
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
        let s = section(&check()).unwrap();
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
        let s = section(&c).unwrap();
        assert!(!s.contains("<script>"));
    }

    #[test]
    fn unreadable_counterexample_is_shown_as_escaped_json() {
        let s = section(&json!({"counterexample": {"key": "<b>", "odd": true}})).unwrap();
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
        let s = section(&c).unwrap();
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
        assert!(!section(&c).unwrap().contains("cx-faults"), "older file");
        c["counterexample"]["faults"] = json!([]);
        assert!(section(&c)
            .unwrap()
            .contains("No fault was in force during these calls."));
    }

    #[test]
    fn no_counterexample_no_section() {
        assert!(section(&json!({"verdict": "valid"})).is_none());
    }
}
