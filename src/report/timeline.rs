//! `timeline.html`: every op of the run on a canvas, one row per process (or, when infos
//! made many short-lived processes, processes packed into lanes), time flowing right, bars coloured by outcome, fault windows as bands; hover for details, click to
//! pin them, Ctrl+wheel or the buttons to zoom, drag to pan.
//!
//! It stays usable at 100,000 ops and more because nothing per op lives in the DOM: the
//! ops are embedded once as column arrays of JSON (one array per field, strings
//! interned), and the script draws only the rows on screen and, within a row, only the ops
//! in the visible time range (found by binary search), merging bars narrower than a pixel.
//!
//! Every string from the target (values, errors, node names, keys) reaches the page only
//! inside the escaped JSON ([`super::escape::json_for_script`]) and is shown with
//! `textContent`, never as HTML; the page around it is written with maud.

use super::escape::{json_for_script, value_text};
use super::layout::{document, static_asset, swatch};
use super::page::verdict_class;
use super::run::{Call, Outcome, RunData};
use anyhow::{Context, Result};
use maud::html;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

const SCRIPT: &str = include_str!("assets/timeline.js");

/// The timeline fills the window: the canvas scrolls, the page does not.
const TIMELINE_CSS: &str = "
html, body { height: 100%; overflow: hidden; }
body { display: flex; flex-direction: column; }
#bar { display: flex; flex-wrap: wrap; align-items: center; gap: .4em 1.2em; padding: .45em 1em; border-bottom: 1px solid var(--line); background: var(--soft); font-size: .92em; }
#bar .badge { font-size: .8em; }
#bar button { font: inherit; padding: .1em .6em; }
#bar input { width: 7em; font: inherit; }
#wrap { flex: 1; display: flex; min-height: 0; }
#scroll { flex: 1; overflow-y: auto; overflow-x: hidden; position: relative; cursor: grab; }
#scroll.dragging { cursor: grabbing; }
#canvas { position: sticky; top: 0; left: 0; display: block; }
#details { width: 22em; border-left: 1px solid var(--line); padding: .6em .9em; overflow-y: auto; font-size: .9em; white-space: pre-wrap; word-break: break-word; }
#tip { position: fixed; pointer-events: none; background: #24292f; color: #fff; padding: .35em .6em; border-radius: 4px; font-size: .85em; white-space: pre; max-width: 40em; overflow: hidden; z-index: 10; }
";

/// Longest value text embedded per op (the history has the rest).
const MAX_VALUE_CHARS: usize = 120;

/// Strings that repeat (keys, nodes, errors) stored once.
#[derive(Default)]
struct Interner {
    strings: Vec<String>,
    index: HashMap<String, i32>,
}

impl Interner {
    fn id(&mut self, s: Option<&str>) -> i32 {
        let Some(s) = s else { return -1 };
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.strings.len() as i32;
        self.strings.push(s.to_string());
        self.index.insert(s.to_string(), i);
        i
    }
}

#[derive(Serialize)]
struct Fault {
    kind: &'static str,
    f: String,
    s: u64,
    /// -1: never healed.
    e: i64,
    nodes: String,
    detail: String,
    colour: String,
}

/// The page's data, column by column (parallel arrays, one entry per call).
#[derive(Serialize)]
struct Data {
    name: String,
    verdict: String,
    end_us: u64,
    /// Process id of each row, rows in order of first invocation.
    procs: Vec<u64>,
    fs: Vec<String>,
    keys: Vec<String>,
    nodes: Vec<String>,
    errors: Vec<String>,
    outcomes: Vec<&'static str>,
    colours: Vec<String>,
    /// Row of each call.
    p: Vec<u32>,
    /// Invocation time, µs since the run started.
    s: Vec<u64>,
    /// Completion time in µs; -1 while pending.
    e: Vec<i64>,
    /// Outcome code ([`Outcome::code`]).
    o: Vec<u8>,
    f: Vec<u16>,
    k: Vec<i32>,
    n: Vec<i32>,
    x: Vec<i32>,
    /// History index of the invocation and of the completion (-1: none).
    i: Vec<u64>,
    c: Vec<i64>,
    /// Value text: the invocation's value, `→` and the completion's when it differs.
    v: Vec<String>,
    faults: Vec<Fault>,
    /// History index of the invocation to highlight (the counterexample's failing call).
    focus: Option<u64>,
    /// Invocation indexes of the counterexample's window, outlined.
    window: Vec<u64>,
}

fn value_pair(inv: &Value, done: Option<&Value>) -> String {
    let a = if inv.is_null() {
        String::new()
    } else {
        value_text(inv, MAX_VALUE_CHARS)
    };
    match done {
        Some(d) if d != inv && !d.is_null() => {
            let b = value_text(d, MAX_VALUE_CHARS);
            if a.is_empty() {
                format!("→ {b}")
            } else {
                format!("{a} → {b}")
            }
        }
        _ => a,
    }
}

fn hex((r, g, b): (u8, u8, u8)) -> String {
    format!("#{r:02x}{g:02x}{b:02x}")
}

fn data(run: &RunData) -> Data {
    let n = run.calls.len();
    let mut rows: BTreeMap<u64, u32> = BTreeMap::new();
    let mut procs = Vec::new();
    for c in &run.calls {
        rows.entry(c.process).or_insert_with(|| {
            procs.push(c.process);
            (procs.len() - 1) as u32
        });
    }
    let (mut keys, mut nodes, mut errors) = (
        Interner::default(),
        Interner::default(),
        Interner::default(),
    );
    let mut d = Data {
        name: run.result_str("name"),
        verdict: verdict_class(run.verdict()).to_string(),
        end_us: run.end_ns / 1000,
        procs,
        fs: run.fs.clone(),
        keys: Vec::new(),
        nodes: Vec::new(),
        errors: Vec::new(),
        outcomes: Outcome::ALL.iter().map(|o| o.name()).collect(),
        colours: Outcome::ALL.iter().map(|o| hex(o.colour())).collect(),
        p: Vec::with_capacity(n),
        s: Vec::with_capacity(n),
        e: Vec::with_capacity(n),
        o: Vec::with_capacity(n),
        f: Vec::with_capacity(n),
        k: Vec::with_capacity(n),
        n: Vec::with_capacity(n),
        x: Vec::with_capacity(n),
        i: Vec::with_capacity(n),
        c: Vec::with_capacity(n),
        v: Vec::with_capacity(n),
        faults: Vec::new(),
        focus: None,
        window: Vec::new(),
    };
    for c in &run.calls {
        let Call {
            process,
            invoke,
            complete,
            ..
        } = *c;
        let inv = &run.ops[invoke as usize];
        let done = complete.map(|i| &run.ops[i as usize]);
        d.p.push(rows.get(&process).copied().unwrap_or(0));
        d.s.push(c.start_ns / 1000);
        d.e.push(c.end_ns.map_or(-1, |e| (e / 1000) as i64));
        d.o.push(c.outcome.code());
        d.f.push(c.f);
        d.k.push(keys.id(inv.key.as_deref()));
        d.n.push(nodes.id(done.and_then(|o| o.node.as_deref()).or(inv.node.as_deref())));
        d.x.push(errors.id(done.and_then(|o| o.error.as_deref())));
        d.i.push(inv.index);
        d.c.push(done.map_or(-1, |o| o.index as i64));
        d.v.push(value_pair(&inv.value, done.map(|o| &o.value)));
    }
    d.keys = keys.strings;
    d.nodes = nodes.strings;
    d.errors = errors.strings;
    d.faults = run
        .faults
        .iter()
        .map(|w| Fault {
            kind: w.kind.name(),
            f: w.f.clone(),
            s: w.start_ns / 1000,
            e: w.end_ns.map_or(-1, |e| (e / 1000) as i64),
            nodes: w.nodes.join(", "),
            detail: w.detail.clone(),
            colour: hex(w.kind.colour()),
        })
        .collect();
    if let Some(cx) = run
        .results
        .get("check")
        .and_then(|c| c.get("counterexample"))
    {
        d.focus = cx
            .pointer("/failing_call/invoke/index")
            .and_then(Value::as_u64);
        d.window = cx
            .get("window")
            .and_then(Value::as_array)
            .map(|w| {
                w.iter()
                    .filter_map(|c| c.pointer("/invoke/index").and_then(Value::as_u64))
                    .collect()
            })
            .unwrap_or_default();
    }
    d
}

/// Render `timeline.html`.
pub fn render(run: &RunData) -> Result<String> {
    let d = data(run);
    let json = json_for_script(&d).context("cannot serialise the timeline data")?;
    let verdict = run.verdict();
    let class = verdict_class(verdict);
    let name = run.result_str("name");
    let body = html! {
        div #bar {
            b { (name) }
            span.badge.(class) { (verdict.to_string().to_uppercase()) }
            a href="index.html" { "run page" }
            "\n"
            span {
                @for o in Outcome::ALL {
                    @let (r, g, b) = o.colour();
                    span { (swatch(&format!("rgb({r},{g},{b})"))) (o.name()) } " "
                }
                @for k in run.fault_kinds() {
                    @let (r, g, b) = k.colour();
                    span { (swatch(&format!("rgba({r},{g},{b},.35)"))) (k.name()) } " "
                }
            }
            "\n"
            span {
                button #zoom-in title="zoom in (+)" { "+" } " "
                button #zoom-out title="zoom out (−)" { "−" } " "
                button #fit title="whole run (0)" { "fit" } " "
                button #rows title="one row per process, or processes packed into lanes (a worker continues as a new process after an info)" { "rows" }
            }
            "\n"
            label { "op index " input #goto type="number" min="0" placeholder="e.g. 1234"; }
            "\n"
            span.muted #status {}
        }
        div #wrap {
            div #scroll { canvas #canvas {} div #spacer {} }
            div #details {
                b { "Details" }
                "\n"
                span.muted { "Hover over an op; click to pin it here. Ctrl+wheel or +/− zooms, drag pans, wheel scrolls processes." }
            }
        }
        div #tip hidden {}
        script #data type="application/json" { (json) }
        script { (static_asset(SCRIPT)) }
    };
    Ok(document(
        &format!("Timeline · {name} — faultline"),
        TIMELINE_CSS,
        Some(class),
        body,
    )
    .into_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Op, OpType, Process};
    use serde_json::json;
    use std::path::Path;

    #[test]
    fn target_strings_cannot_break_out_of_the_data_script() {
        let evil = "</script><script>alert(1)</script>";
        let ops = vec![
            Op {
                index: 0,
                time_ns: 0,
                process: Process::Client(1),
                kind: OpType::Invoke,
                f: "write".into(),
                key: Some(evil.into()),
                value: json!(evil),
                node: Some(evil.into()),
                error: None,
            },
            Op {
                index: 1,
                time_ns: 5,
                process: Process::Client(1),
                kind: OpType::Info,
                f: "write".into(),
                key: Some(evil.into()),
                value: json!(evil),
                node: Some(evil.into()),
                error: Some(evil.into()),
            },
        ];
        let run = RunData::from_parts(Path::new("."), json!({"name": evil}), Value::Null, ops);
        let page = render(&run).unwrap();
        assert_eq!(
            page.matches("<script").count(),
            2,
            "only the page's own scripts"
        );
        assert!(!page.contains("alert(1)</script>"));
    }

    #[test]
    fn columns_have_one_entry_per_call() {
        let ops = crate::report::sample::history(500, 4, 2, 3);
        let run = RunData::from_parts(Path::new("."), json!({}), Value::Null, ops);
        let d = data(&run);
        let n = run.calls.len();
        for len in [
            d.p.len(),
            d.s.len(),
            d.e.len(),
            d.o.len(),
            d.f.len(),
            d.k.len(),
            d.v.len(),
            d.i.len(),
        ] {
            assert_eq!(len, n);
        }
        assert_eq!(d.faults.len(), 6);
        assert!(d.keys.len() <= 2);
    }
}
