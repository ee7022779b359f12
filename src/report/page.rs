//! The run page, `index.html` of a run directory: verdict banner, why it is invalid (the
//! counterexample view), test parameters with the command that reproduces the run, op
//! counts and latencies per `f`, the fault windows, the plots, what the run cost on the
//! wire ([`super::wire`]), the checker's summary and links to every file of the run, node
//! logs included.
//!
//! The page is one self-contained file (styles inlined, plots as inline SVG; the PNG
//! files beside it are for sharing), so it works from `file://` and from `serve` alike.
//! Written with maud ([`super::layout`]): every string that came from the target or from
//! a file is escaped where it is spliced in.

use super::counterexample;
use super::escape::{truncate, value_text};
use super::layout::{banner, document, plotters_svg, static_asset, swatch, Banner};
use super::plots::Plot;
use super::run::{FaultKind, Outcome, RunData};
use crate::checker::Verdict;
use maud::{html, Markup};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

pub const CSS: &str = include_str!("assets/report.css");

/// Characters escaped in one segment of a relative link.
pub const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'\\')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\'');

/// Most fault windows listed in the table (a long run can have thousands).
const MAX_FAULT_ROWS: usize = 200;

/// Most node log files linked per node (a target writing thousands is cut, and says so).
const MAX_LOG_LINKS_PER_NODE: usize = 50;

/// A relative link to `segments` joined by `/`, each percent-encoded.
pub fn href(segments: &[&str]) -> String {
    segments
        .iter()
        .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// `20261123T221542Z` → `2026-11-23 22:15:42 UTC`; anything else unchanged.
pub fn run_time(stamp: &str) -> String {
    let b = stamp.as_bytes();
    if b.len() >= 16 && b[8] == b'T' && b[15] == b'Z' && stamp.is_ascii() {
        format!(
            "{}-{}-{} {}:{}:{} UTC{}",
            &stamp[0..4],
            &stamp[4..6],
            &stamp[6..8],
            &stamp[9..11],
            &stamp[11..13],
            &stamp[13..15],
            &stamp[16..]
        )
    } else {
        stamp.to_string()
    }
}

pub fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Valid => "valid",
        Verdict::Invalid => "invalid",
        Verdict::Unknown => "unknown",
    }
}

fn plan_str(plan: &Value, path: &[&str]) -> Option<String> {
    let mut v = plan;
    for p in path {
        v = v.get(p)?;
    }
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Quote a word for a POSIX shell when it needs it.
fn sh(word: &str) -> String {
    crate::shell::show(word)
}

/// A spec on the command line: its name when the file is where a name resolves to
/// (`targets/NAME/target.yaml` …), else the file's path.
fn spec_arg(plan: &Value, file: &[&str], name: &[&str], layout: &str) -> Option<String> {
    let path = plan_str(plan, file)?;
    match plan_str(plan, name) {
        Some(n) if path.ends_with(&layout.replace("{}", &n)) => Some(n),
        _ => Some(path),
    }
}

/// The `faultline run` command that repeats this run (same specs, sizes and seed).
fn reproduce(run: &RunData) -> Option<String> {
    let p = &run.plan;
    if p.is_null() {
        return None;
    }
    let mut cmd = vec!["faultline".to_string(), "run".to_string()];
    let mut flag = |name: &str, v: Option<String>| {
        if let Some(v) = v {
            cmd.push(format!("--{name}"));
            cmd.push(sh(&v));
        }
    };
    flag(
        "target",
        spec_arg(
            p,
            &["target", "file"],
            &["target", "spec", "name"],
            "targets/{}/target.yaml",
        ),
    );
    flag(
        "workload",
        spec_arg(
            p,
            &["workload_file"],
            &["workload", "name"],
            "workloads/{}.yaml",
        ),
    );
    flag(
        "nemesis",
        spec_arg(
            p,
            &["nemesis_file"],
            &["nemesis", "name"],
            "nemesis/{}.yaml",
        ),
    );
    flag(
        "nodes",
        p.get("nodes")
            .and_then(Value::as_array)
            .map(|n| n.len().to_string()),
    );
    flag("concurrency", plan_str(p, &["concurrency"]));
    flag("time-limit", plan_str(p, &["time_limit"]));
    flag("rate", plan_str(p, &["rate"]));
    flag("seed", plan_str(p, &["seed"]));
    flag("recover", plan_str(p, &["nemesis", "recover"]));
    if let Some(args) = p.get("target_args").and_then(Value::as_array) {
        for a in args.iter().filter_map(Value::as_str) {
            cmd.push(sh(&format!("--target-arg={a}")));
        }
    }
    Some(cmd.join(" "))
}

/// Test parameters as (label, text) rows.
/// "landed of planned" for the faults the schedule started, with the first that missed.
fn faults_landed(run: &RunData) -> String {
    let Some(f) = run.results.pointer("/run/faults") else {
        return "not recorded".into();
    };
    let n = |k: &str| f.get(k).and_then(Value::as_u64).unwrap_or(0);
    let (planned, landed) = (n("planned"), n("landed"));
    if planned == 0 {
        return "none planned".into();
    }
    let mut s = format!("{landed} of {planned}");
    if let Some(m) = f
        .get("missed")
        .and_then(Value::as_array)
        .and_then(|m| m.first())
    {
        s.push_str(&format!(
            "; missed {} (first: {} at {} s: {})",
            planned - landed,
            value_text(&m["f"], 40),
            value_text(&m["at_s"], 20),
            value_text(&m["why"], 200)
        ));
    }
    if let Some(slips) = f
        .get("slipped")
        .and_then(Value::as_array)
        .filter(|s| !s.is_empty())
    {
        let worst = slips
            .iter()
            .filter_map(|s| s.get("late_ms").and_then(Value::as_u64))
            .max()
            .unwrap_or(0);
        s.push_str(&format!(
            "; the timeline slipped: {} step(s) ran late, up to {:.1} s",
            slips.len(),
            worst as f64 / 1000.0
        ));
    }
    s
}

fn parameters(run: &RunData) -> Vec<(&'static str, String)> {
    let p = &run.plan;
    let mut rows = vec![
        ("test", run.result_str("name")),
        ("target", run.result_str("target")),
        (
            "workload",
            match plan_str(p, &["workload", "model"]) {
                Some(m) => format!("{} (model {m})", run.result_str("workload")),
                None => run.result_str("workload"),
            },
        ),
        (
            "nemesis",
            match plan_str(p, &["nemesis", "description"]).filter(|d| !d.is_empty()) {
                Some(d) => format!("{}: {d}", run.result_str("nemesis")),
                None => run.result_str("nemesis"),
            },
        ),
        (
            "nodes",
            run.results
                .get("nodes")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|n| value_text(n, 40))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default(),
        ),
        ("faults landed", faults_landed(run)),
        ("concurrency", run.result_str("concurrency")),
        (
            "time limit",
            plan_str(p, &["time_limit"]).unwrap_or_default(),
        ),
        (
            "rate",
            plan_str(p, &["rate"]).map_or("as fast as the target answers".into(), |r| {
                format!("{r} ops/s")
            }),
        ),
        ("seed", run.result_str("seed")),
        ("hosts", plan_str(p, &["hosts", "kind"]).unwrap_or_default()),
        (
            "target args",
            p.get("target_args")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|x| value_text(x, 200))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default(),
        ),
        (
            "faultline",
            format!(
                "{} ({})",
                run.result_str("faultline_version"),
                match run.result_str("git_revision") {
                    r if r.is_empty() => "unknown revision".to_string(),
                    r => r,
                }
            ),
        ),
    ];
    // The real directory's name, also when the page is rendered through `latest`.
    let dir = run.dir.canonicalize().unwrap_or_else(|_| run.dir.clone());
    if let Some(leaf) = dir.file_name().and_then(|n| n.to_str()) {
        rows.push(("started", run_time(leaf)));
    }
    rows.retain(|(_, v)| !v.is_empty());
    rows
}

/// Per-f counts and latencies.
fn per_f(run: &RunData) -> Markup {
    #[derive(Default)]
    struct Row {
        n: [u64; 4],
        lat: Vec<u64>,
    }
    let mut rows: Vec<Row> = (0..run.fs.len()).map(|_| Row::default()).collect();
    let mut total = Row::default();
    for c in &run.calls {
        let Some(r) = rows.get_mut(c.f as usize) else {
            continue;
        };
        r.n[c.outcome.code() as usize] += 1;
        total.n[c.outcome.code() as usize] += 1;
        if c.outcome == Outcome::Ok {
            if let Some(l) = c.latency_ns() {
                r.lat.push(l);
                total.lat.push(l);
            }
        }
    }
    // A pending column only when some call never completed (a cut run).
    let shown: Vec<Outcome> = Outcome::ALL
        .into_iter()
        .filter(|&o| o != Outcome::Pending || total.n[o.code() as usize] > 0)
        .collect();
    let line = |name: &str, r: &mut Row, bold: bool| -> Markup {
        r.lat.sort_unstable();
        let q = |p: f64| -> String {
            if r.lat.is_empty() {
                return "—".into();
            }
            let rank = ((p * r.lat.len() as f64).ceil() as usize).clamp(1, r.lat.len());
            format!("{:.1} ms", r.lat[rank - 1] as f64 / 1e6)
        };
        html! {
            tr style=[bold.then_some("font-weight:600")] {
                td { (name) }
                td.num { (r.n.iter().sum::<u64>()) }
                @for o in &shown { td.num { (r.n[o.code() as usize]) } }
                td.num { (q(0.5)) }
                td.num { (q(0.99)) }
                td.num { (q(1.0)) }
            }
        }
    };
    let body: Vec<Markup> = rows
        .iter_mut()
        .enumerate()
        .map(|(i, r)| line(&run.fs[i], r, false))
        .chain((run.fs.len() > 1).then(|| line("all", &mut total, true)))
        .collect();
    html! {
        table.grid #per-f {
            thead { tr {
                th { "f" }
                th.num { "invoked" }
                @for o in &shown { th class={ "num " (o.name()) } { (o.name()) } }
                th.num title="latency of ok ops" { "p50" }
                th.num { "p99" }
                th.num { "max" }
            } }
            tbody { @for row in body { (row) } }
        }
        p.muted { "p50, p99, max: latency of the ok ops." }
    }
}

fn faults_table(run: &RunData) -> Markup {
    if run.faults.is_empty() {
        return html! { p.muted { "No fault was injected." } };
    }
    html! {
        table.grid #faults {
            thead { tr {
                th { "fault" } th.num { "from" } th.num { "to" } th { "nodes" } th { "what" }
            } }
            tbody {
                @for w in run.faults.iter().take(MAX_FAULT_ROWS) {
                    @let (r, g, b) = w.kind.colour();
                    tr {
                        td { (swatch(&format!("rgb({r},{g},{b})"))) (w.f) }
                        td.num { (format_args!("{:.2} s", w.start_ns as f64 / 1e9)) }
                        td.num {
                            @match w.end_ns {
                                Some(e) => (format_args!("{:.2} s", e as f64 / 1e9)),
                                None => "never healed",
                            }
                        }
                        td { (w.nodes.join(", ")) }
                        td { (truncate(&w.detail, 300)) }
                    }
                }
            }
        }
        @if run.faults.len() > MAX_FAULT_ROWS {
            p.muted {
                "and " (run.faults.len() - MAX_FAULT_ROWS)
                " more (all of them are in the plots, the timeline and history.jsonl)"
            }
        }
    }
}

/// Links to the run's files; node logs as found on disk.
fn files(run: &RunData) -> Markup {
    let nodes_dir = run.dir.join("nodes");
    let nodes = read_names(&nodes_dir);
    html! {
        p.files {
            @for (f, label) in [
                ("timeline.html", "timeline"),
                ("history.jsonl", "history.jsonl"),
                ("plan.yaml", "plan.yaml"),
                ("results.json", "results.json"),
                ("faultline.log", "faultline.log"),
            ] {
                @if run.dir.join(f).exists() || f == "timeline.html" {
                    a href=(f) { (label) }
                }
            }
            a href="../../index.html" { "all runs" }
            a.download hidden href="" { "download .tar.gz" }
        }
        @if !nodes.is_empty() {
            table #node-logs { tbody {
                @for node in &nodes {
                    @let logs = read_names(&nodes_dir.join(node));
                    tr {
                        th { (node) }
                        td.files {
                            @for log in logs.iter().take(MAX_LOG_LINKS_PER_NODE) {
                                @let size = std::fs::metadata(nodes_dir.join(node).join(log)).map_or(0, |m| m.len());
                                a href=(href(&["nodes", node, log])) { (log) }
                                " "
                                span.muted { (human_bytes(size)) }
                                " "
                            }
                            @if logs.len() > MAX_LOG_LINKS_PER_NODE {
                                span.muted { "and " (logs.len() - MAX_LOG_LINKS_PER_NODE) " more" }
                            }
                        }
                    }
                }
            } }
        }
    }
}

/// The names in `dir`, sorted; none when it cannot be read.
fn read_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

pub fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// How many keys an invalid run's checker found invalid, and how many it did not check.
fn keys_line(check: &Value) -> Option<String> {
    let n = |k: &str| check.get(k).and_then(Value::as_u64);
    let (keys, invalid) = (n("keys")?, n("keys_invalid")?);
    let mut line = format!(
        "{invalid} of {keys} key{} invalid",
        if keys == 1 { "" } else { "s" }
    );
    if let Some(unknown) = n("keys_unknown").filter(|&u| u > 0) {
        let _ = write!(line, ", {unknown} undecided (budget)");
    }
    if let Some(skipped) = n("keys_skipped").filter(|&s| s > 0) {
        let _ = write!(
            line,
            "; {skipped} not checked (the checker stops {} s after the first invalid key)",
            crate::checker::AFTER_INVALID.as_secs()
        );
    }
    line.push('.');
    Some(line)
}

/// The most common errors of each f's fail and info completions in the main phase
/// (results.json's `stats`), and which f never succeeded. Error texts come from the
/// target: escaped like everything else.
fn top_errors(run: &RunData) -> Markup {
    let Some(fs) = run
        .results
        .pointer("/stats/fs")
        .and_then(Value::as_array)
        .filter(|fs| !fs.is_empty())
    else {
        return html! {};
    };
    let never: Vec<String> = fs
        .iter()
        .filter(|f| f["required"].as_bool() == Some(true))
        .filter(|f| f["ok"].as_u64().unwrap_or(0) + f["compare_failed"].as_u64().unwrap_or(0) == 0)
        .map(|f| value_text(&f["f"], 40))
        .collect();
    let rows: Vec<(String, &Value)> = fs
        .iter()
        .flat_map(|f| {
            let name = value_text(&f["f"], 40);
            f["top_errors"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |e| (name.clone(), e))
        })
        .collect();
    html! {
        @if !never.is_empty() {
            p.note #never-succeeded {
                "Never succeeded in the main phase: " (never.join(", "))
                ". The run did not test " (if never.len() == 1 { "it" } else { "them" }) "."
            }
        }
        @if !rows.is_empty() {
            h3 { "Most common errors" }
            table.grid #top-errors {
                thead { tr { th { "f" } th { "error (fail and info)" } th.num { "count" } } }
                tbody {
                    @for (f, e) in &rows {
                        tr {
                            td { (f) }
                            td { code { (value_text(&e["error"], 300)) } }
                            td.num { (value_text(&e["count"], 20)) }
                        }
                    }
                }
            }
        }
    }
}

/// The checker's summary lines.
fn checker(run: &RunData) -> Markup {
    let check = run.results.get("check").cloned().unwrap_or(Value::Null);
    let get = |k: &str| check.get(k).map(|v| value_text(v, 200));
    let lines = [
        ("model", get("model")),
        ("keys", get("keys")),
        ("keys invalid", get("keys_invalid")),
        ("keys unknown", get("keys_unknown")),
        (
            "keys not checked",
            check
                .get("keys_skipped")
                .and_then(Value::as_u64)
                .filter(|&n| n > 0)
                .map(|n| n.to_string()),
        ),
        (
            "search",
            check.get("search").map(|s| {
                format!(
                    "{} steps, {} configurations",
                    value_text(&s["steps"], 30),
                    value_text(&s["configurations"], 30)
                )
            }),
        ),
        ("checked in", get("elapsed_ms").map(|m| format!("{m} ms"))),
        ("unknown because", get("reason")),
    ];
    let problems = check
        .get("problems")
        .and_then(Value::as_array)
        .filter(|p| !p.is_empty());
    let pretty = serde_json::to_string_pretty(&run.results).unwrap_or_default();
    html! {
        table {
            @for (label, v) in &lines {
                @if let Some(v) = v { tr { th { (label) } td { (v) } } }
            }
        }
        @if let Some(problems) = problems {
            h3 { "Keys that were not valid" }
            table.grid {
                thead { tr { th { "key" } th.num { "calls" } th { "verdict" } th { "why" } } }
                tbody {
                    @for p in problems.iter().take(100) {
                        tr {
                            td { code { (value_text(&p["key"], 80)) } }
                            td.num { (value_text(&p["calls"], 20)) }
                            td { (value_text(&p["verdict"], 20)) }
                            td { (p.get("reason").map(|r| value_text(r, 300)).unwrap_or_default()) }
                        }
                    }
                }
            }
        }
        details {
            summary { "results.json" }
            pre { (truncate(&pretty, 200_000)) }
        }
    }
}

/// The one-line summary under the verdict.
pub fn summary_line(run: &RunData) -> String {
    let invoked = run.calls.len();
    let elapsed = run
        .results
        .get("run")
        .and_then(|r| r.get("elapsed_s"))
        .and_then(Value::as_f64)
        .unwrap_or(run.end_ns as f64 / 1e9);
    let interrupted = run
        .results
        .get("run")
        .and_then(|r| r.get("interrupted"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    format!(
        "{} on {} · nemesis {} · {} ops in {:.1} s{}",
        run.result_str("workload"),
        run.result_str("target"),
        run.result_str("nemesis"),
        invoked,
        elapsed,
        if interrupted { " · interrupted" } else { "" }
    )
}

/// Render `index.html` of a run.
pub fn render(run: &RunData, plots: &[Plot]) -> String {
    let verdict = run.verdict();
    let class = verdict_class(verdict);
    let name = run.result_str("name");
    let upper = verdict.to_string().to_uppercase();
    let check = run.results.get("check").cloned().unwrap_or(Value::Null);
    let sub = format!("{name} — {}", summary_line(run));
    let wire_plot = plots.iter().find(|p| p.name == super::plots::WIRE);
    let agreement = super::agreement::of(run);
    let agreement_conflict = agreement.as_ref().and_then(|a| a.conflict.as_ref());
    let set = super::set::of(run);
    let set_invalid = set.as_ref().and_then(super::set::why_invalid);
    let appends = super::append::of(run);
    let append_invalid = appends.as_ref().and_then(super::append::why_invalid);
    let mut nav = vec![
        ("../../index.html", "all runs"),
        ("timeline.html", "timeline"),
        ("#plots", "plots"),
    ];
    if run.results.get("wire").is_some() {
        nav.push(("#wire", "wire"));
    }
    if agreement.is_some() {
        nav.push(("#agreement", "agreement"));
    }
    if set.is_some() {
        nav.push(("#set", "set"));
    }
    if appends.is_some() {
        nav.push(("#append", "append"));
    }
    nav.push(("#files", "files and logs"));
    let body = html! {
        (banner(&Banner {
            class,
            background: None,
            headline: &upper,
            headline_id: Some("verdict"),
            sub: &sub,
            sub_id: None,
            nav: &nav,
        }))
        main {
            @if verdict == Verdict::Invalid {
                @if let Some(why) = agreement.as_ref().and_then(super::agreement::why_invalid) { (why) }
                @if let Some(why) = &set_invalid { (why) }
                @if let Some(why) = &append_invalid { (why) }
                // Agreement, the set or the append checker alone can make a run invalid:
                // then the linearizability checker has no counterexample to show.
                @if (agreement_conflict.is_none() && set_invalid.is_none() && append_invalid.is_none()) || check.get("verdict").and_then(Value::as_str) == Some("invalid") {
                    @match counterexample::section(&check) {
                        Some(s) => (s),
                        None => div.why #counterexample {
                            h2 { "Why it is invalid" }
                            p { "The checker found the history invalid but recorded no counterexample; see the keys listed under Checker." }
                        },
                    }
                    @if let Some(line) = keys_line(&check) { p #keys-invalid { (line) } }
                }
            }
            (run_notes(run, verdict, &check))
            @if let Some(note) = unread_keys_note(run) { (note) }
            @if let Some(note) = liveness_note(run) { (note) }
            div.cols {
                div {
                    h2 { "Test" }
                    table #parameters {
                        @for (k, v) in parameters(run) { tr { th { (k) } td { (v) } } }
                    }
                    @if let Some(cmd) = reproduce(run) {
                        h3 { "Reproduce" }
                        pre #reproduce { (cmd) }
                    }
                }
                div {
                    h2 { "Operations" }
                    (per_f(run))
                    (top_errors(run))
                    h2 { "Faults" }
                    (faults_table(run))
                }
            }
            h2 #plots { "Plots" }
            @if !run.faults.is_empty() {
                p.muted {
                    "Shaded bands are fault windows: "
                    @for k in run.fault_kinds() {
                        @let (r, g, b) = FaultKind::colour(k);
                        (swatch(&format!("rgba({r},{g},{b},.35)"))) (k.name()) " "
                    }
                }
            }
            @for p in plots.iter().filter(|p| p.name != super::plots::WIRE) {
                figure id={ "plot-" (p.name) } {
                    (plotters_svg(&p.svg))
                    figcaption { (p.title) " · " a href=(p.png_file) { "PNG" } }
                }
            }
            (super::wire::section(run, wire_plot))
            (liveness_section(run))
            (super::agreement::section(run))
            (super::set::section(run))
            (super::append::section(run))
            h2 { "Checker" }
            (checker(run))
            h2 #files { "Files and logs" }
            (files(run))
            script { (static_asset(DOWNLOAD_JS)) }
        }
    };
    document(
        &format!("{upper} · {name} — faultline"),
        "",
        Some(class),
        body,
    )
    .into_string()
}

/// A run that failed before it could be checked (install error, a node that would not
/// start) says why at the top, not only inside results.json; an unknown run says why it
/// is unknown.
fn run_notes(run: &RunData, verdict: Verdict, check: &Value) -> Markup {
    if let Some(err) = run.results.get("error").filter(|e| !e.is_null()) {
        return html! { p.note #run-error { "The run failed: " (value_text(err, 2000)) } };
    }
    if verdict != Verdict::Unknown {
        return html! {};
    }
    // The run's own reason (the checker's and the stats rule's together); a run written
    // before the stats rule has only the checker's.
    let reason = match run.results.get("reason").filter(|r| !r.is_null()) {
        Some(r) => format!("Unknown: {}", value_text(r, 2000)),
        None => format!(
            "The checker could not decide: {}",
            check
                .get("reason")
                .map(|r| value_text(r, 500))
                .unwrap_or_else(|| "the checker gave no reason".into())
        ),
    };
    html! { p.note #unknown-reason { (reason) } }
}

/// Keys the final phase did not read back (results.json `final_reads`): whatever the
/// verdict, a lost write on one of them could not show.
fn unread_keys_note(run: &RunData) -> Option<Markup> {
    let f = run.results.get("final_reads")?;
    let keys = f.get("keys").and_then(Value::as_u64)?;
    let read = f.get("read").and_then(Value::as_u64)?;
    if read >= keys {
        return None;
    }
    let named: Vec<String> = f
        .get("unread")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|k| value_text(k, 80)).collect())
        .unwrap_or_default();
    let more = if (named.len() as u64) < keys - read {
        ", …"
    } else {
        ""
    };
    Some(html! {
        p.note #final-reads {
            "Final reads: " (keys - read) " of " (keys)
            " key(s) were not read back, so a write lost on them cannot show in this verdict: "
            code { (named.join(", ")) } (more)
        }
    })
}

/// A liveness failure (results.json `liveness.ok` false) at the top, beside the verdict
/// it does not change.
fn liveness_note(run: &RunData) -> Option<Markup> {
    let l = run.results.get("liveness")?;
    if l.get("ok").and_then(Value::as_bool)? {
        return None;
    }
    let reason = l
        .get("reason")
        .map(|r| value_text(r, 500))
        .unwrap_or_else(|| "no reason recorded".into());
    Some(html! {
        p.note #liveness-failed {
            "Liveness failed: " (reason) " — the verdict above is about safety only."
        }
    })
}

fn opt_s(v: Option<&Value>) -> String {
    v.and_then(Value::as_f64)
        .map_or("—".into(), |s| format!("{s:.2} s"))
}

fn opt_share(v: Option<&Value>) -> String {
    v.and_then(Value::as_f64)
        .map_or("—".into(), |a| format!("{:.1} %", a * 100.0))
}

/// results.json `liveness`: a badge, the final recovery against its bound, and per fault
/// window the availability in it and the time to the first acknowledged write after it.
/// Nothing for a run that has none (older runs, interrupted runs).
fn liveness_section(run: &RunData) -> Markup {
    let Some(l) = run.results.get("liveness").filter(|l| l.is_object()) else {
        return html! {};
    };
    let ok = l.get("ok").and_then(Value::as_bool).unwrap_or(false);
    let windows = l
        .get("windows")
        .and_then(Value::as_array)
        .filter(|w| !w.is_empty());
    html! {
        h2 #liveness {
            "Liveness "
            span.badge.(if ok { "valid" } else { "invalid" }) { (if ok { "OK" } else { "FAILED" }) }
        }
        p {
            "Final heal at " (opt_s(l.get("final_heal_s")))
            "; the cluster first served " (opt_s(l.get("final_recovery_s")))
            " after it (bound " (opt_s(l.get("bound_s")))
            "). Calm availability: " (opt_share(l.get("calm_availability"))) "."
            @if let Some(r) = l.get("reason").filter(|r| !r.is_null()) {
                " " (value_text(r, 500))
            }
        }
        @if let Some(windows) = windows {
            table.grid #liveness-windows {
                thead { tr {
                    th { "fault" } th.num { "from" } th.num { "to" }
                    th.num { "availability" } th.num { "first ok write after" }
                } }
                tbody {
                    @for w in windows.iter().take(MAX_FAULT_ROWS) {
                        tr {
                            td { (value_text(w.get("f").unwrap_or(&Value::Null), 80)) }
                            td.num { (opt_s(w.get("start_s"))) }
                            td.num { (opt_s(w.get("end_s"))) }
                            td.num { (opt_share(w.get("availability"))) }
                            td.num { (opt_s(w.get("recovery_s"))) }
                        }
                    }
                }
            }
            p.muted { "availability: the share of ops completed in the window that the cluster served (ok, or a cas answered compare-failed). Only the final heal is held to the bound: during the run the next fault may come before the cluster recovered." }
        }
    }
}

/// Under `serve`, offer the run as a .tar.gz (the link means nothing from `file://`).
const DOWNLOAD_JS: &str = r#"
(function () {
  if (!/^https?:$/.test(location.protocol)) return;
  var parts = location.pathname.replace(/\/(index\.html)?$/, "").split("/").filter(Boolean);
  if (parts.length < 2) return;
  var a = document.querySelector("a.download");
  a.href = "/download/" + parts.slice(-2).join("/") + ".tar.gz";
  a.hidden = false;
})();
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_left_unread_by_the_final_phase_are_named() {
        let run = |results| RunData::from_parts(Path::new("r"), results, Value::Null, Vec::new());
        let note = |results| unread_keys_note(&run(results)).map(Markup::into_string);
        assert_eq!(note(serde_json::json!({})), None);
        let all = serde_json::json!({"final_reads": {"keys": 3, "read": 3, "unread": []}});
        assert_eq!(note(all), None);
        let some =
            serde_json::json!({"final_reads": {"keys": 1003, "read": 390, "unread": ["k7", "k9"]}});
        let note = note(some).expect("a note");
        assert!(
            note.contains("613 of 1003 key(s) were not read back"),
            "{note}"
        );
        assert!(note.contains("<code>k7, k9</code>, …"), "{note}");
    }

    #[test]
    fn a_liveness_failure_has_its_own_note_and_section_beside_the_verdict() {
        let run = |results| RunData::from_parts(Path::new("r"), results, Value::Null, Vec::new());
        let none = run(serde_json::json!({"verdict": "valid"}));
        assert!(liveness_note(&none).is_none());
        assert_eq!(liveness_section(&none).into_string(), "");
        let failed = run(serde_json::json!({"verdict": "valid", "liveness": {
            "ok": false, "bound_s": 10.0, "final_heal_s": 20.0, "final_recovery_s": null,
            "calm_availability": 0.9,
            "reason": "nothing succeeded after the final heal at 20 s",
            "windows": [{"f": "kill", "start_s": 5.0, "end_s": 20.0, "availability": 0.25, "recovery_s": null}]
        }}));
        let note = liveness_note(&failed).expect("a note").into_string();
        assert!(
            note.contains("Liveness failed: nothing succeeded after the final heal at 20 s"),
            "{note}"
        );
        let out = liveness_section(&failed).into_string();
        assert!(
            out.contains("<span class=\"badge invalid\">FAILED</span>"),
            "{out}"
        );
        assert!(out.contains("<td class=\"num\">25.0 %</td>"), "{out}");
        assert!(out.contains("Calm availability: 90.0 %"), "{out}");
        let page = render(&failed, &[]);
        assert!(page.contains("id=\"liveness-failed\""));
        assert!(page.contains("id=\"liveness\""));
    }

    #[test]
    fn run_time_reads_the_run_directory_stamp() {
        assert_eq!(run_time("20261123T221542Z"), "2026-11-23 22:15:42 UTC");
        assert_eq!(run_time("20261123T221542Z-2"), "2026-11-23 22:15:42 UTC-2");
        assert_eq!(run_time("odd"), "odd");
    }

    #[test]
    fn links_encode_every_segment() {
        assert_eq!(
            href(&["nodes", "n1", "std out?.log"]),
            "nodes/n1/std%20out%3F.log"
        );
        assert_eq!(href(&["a/b", "..", "x\"y"]), "a%2Fb/../x%22y");
    }

    #[test]
    fn shell_words_are_quoted_when_needed() {
        assert_eq!(
            sh("targets/raftkv/target.yaml"),
            "targets/raftkv/target.yaml"
        );
        assert_eq!(sh("--target-arg=--bug stale"), "'--target-arg=--bug stale'");
        // shlex's choice for a word with a single quote: double quotes (sh reads the same).
        assert_eq!(sh("it's"), "\"it's\"");
    }
}
