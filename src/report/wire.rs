//! The run page's Wire section: what the run cost on the wire. Its figures come from
//! results.json `wire` (written by the runner from the link counters: per-op figures, the
//! link matrix, and per fault window when present), its plot from the samples in
//! `wire.jsonl` ([`read_rates`]: packets per second between successive samples).
//!
//! Both files are read as generic JSON, field by field, so a run written before a field
//! existed (no `periods`, no payload counts) or before wire accounting (no `wire` at all)
//! still renders: a missing field shows as `—`, a missing `wire` as no section. Node names
//! come from the run's files and are escaped by maud like every other string.

use super::escape::value_text;
use super::layout::{plotters_svg, swatch};
use super::page::human_bytes;
use super::plots::Plot;
use super::run::{FaultKind, RunData};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// The samples file the runner writes into the run directory.
pub const WIRE_JSONL: &str = "wire.jsonl";

/// Most of `wire.jsonl` read (a day of 1-s samples of 29 nodes is well under this).
const MAX_WIRE_BYTES: u64 = 512 << 20;

/// Most intervals drawn: more samples are merged into longer intervals, which the
/// cumulative counts make exact (the rate over a merged interval is its true average).
const MAX_INTERVALS: usize = 600;

/// Most names in the link matrix (29 nodes and the client is the most a run has).
const MAX_MATRIX_NAMES: usize = 64;

/// Most fault windows listed in the per-period table (calm time is always listed).
const MAX_PERIOD_ROWS: usize = 200;

/// Peer and client packets per second over time, from `wire.jsonl`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rates {
    /// Consecutive intervals between samples, in time order.
    pub intervals: Vec<Interval>,
    /// Why part of the file was not read (a cut last line, a foreign file), for the page.
    pub problem: Option<String>,
}

/// The traffic between two samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub start_ns: u64,
    pub end_ns: u64,
    pub peer_pps: f64,
    pub client_pps: f64,
}

/// One `wire.jsonl` line, as much of it as the plot needs.
#[derive(Deserialize)]
struct Sample {
    time_ns: u64,
    #[serde(default)]
    links: Vec<LinkCount>,
}

#[derive(Deserialize)]
struct LinkCount {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    packets: u64,
}

impl LinkCount {
    fn is_client(&self) -> bool {
        match self.kind.as_deref() {
            Some(k) => k == "client",
            None => self.from == "client" || self.to == "client",
        }
    }
}

/// The rates of the run in `dir`; `None` when it has no `wire.jsonl` (an older run, or
/// hosts whose links are not counted). Lines that do not parse are skipped and counted,
/// so a file cut by a dying controller still draws what it holds.
pub fn read_rates(dir: &Path) -> Option<Rates> {
    let path = dir.join(WIRE_JSONL);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            return Some(Rates {
                intervals: Vec::new(),
                problem: Some(format!("cannot read {WIRE_JSONL}: {e}")),
            })
        }
    };
    let cut = file.metadata().is_ok_and(|m| m.len() > MAX_WIRE_BYTES);
    let mut reader = BufReader::new(file.take(MAX_WIRE_BYTES));
    // (time, peer packets, client packets), cumulative.
    let mut samples: Vec<(u64, u64, u64)> = Vec::new();
    let mut bad = 0usize;
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(_) => {
                bad += 1;
                break;
            }
        }
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Sample>(&line) {
            Ok(s) => {
                let (mut peer, mut client) = (0u64, 0u64);
                for l in &s.links {
                    let sum = if l.is_client() {
                        &mut client
                    } else {
                        &mut peer
                    };
                    *sum = sum.saturating_add(l.packets);
                }
                samples.push((s.time_ns, peer, client));
            }
            Err(_) => bad += 1,
        }
    }
    samples.sort_by_key(|s| s.0);
    let mut problems = Vec::new();
    if bad > 0 {
        problems.push(format!("{bad} line(s) of {WIRE_JSONL} could not be read"));
    }
    if cut {
        problems.push(format!(
            "only the first {} MiB of {WIRE_JSONL} were read",
            MAX_WIRE_BYTES >> 20
        ));
    }
    Some(Rates {
        intervals: intervals(&samples),
        problem: (!problems.is_empty()).then(|| problems.join("; ")),
    })
}

/// Rates between successive samples, merged so that at most [`MAX_INTERVALS`] remain.
fn intervals(samples: &[(u64, u64, u64)]) -> Vec<Interval> {
    if samples.len() < 2 {
        return Vec::new();
    }
    let stride = (samples.len() - 1).div_ceil(MAX_INTERVALS).max(1);
    let mut picked: Vec<&(u64, u64, u64)> = samples.iter().step_by(stride).collect();
    if picked.last() != samples.last().as_ref() {
        picked.extend(samples.last());
    }
    picked
        .windows(2)
        .filter_map(|w| {
            let (a, b) = (w[0], w[1]);
            let dt_s = b.0.checked_sub(a.0).filter(|&d| d > 0)? as f64 / 1e9;
            Some(Interval {
                start_ns: a.0,
                end_ns: b.0,
                peer_pps: b.1.saturating_sub(a.1) as f64 / dt_s,
                client_pps: b.2.saturating_sub(a.2) as f64 / dt_s,
            })
        })
        .collect()
}

use crate::checker::stats::thousands as grouped;

/// A count per op with one decimal, `—` when there was nothing to divide by (also on the
/// campaign page).
pub fn per_op_figure(x: Option<f64>) -> String {
    x.map_or("—".into(), |x| format!("{x:.1}"))
}

/// Bytes per op: `850 B`, `12.3 KiB`; `—` when absent (also on the campaign page).
pub fn bytes_figure(x: Option<f64>) -> String {
    match x {
        Some(x) if x < 1024.0 => format!("{x:.0} B"),
        Some(x) => human_bytes(x as u64),
        None => "—".into(),
    }
}

fn per_op(v: Option<&Value>) -> String {
    per_op_figure(v.and_then(Value::as_f64))
}

fn bytes_per_op(v: Option<&Value>) -> String {
    bytes_figure(v.and_then(Value::as_f64))
}

fn count(v: Option<&Value>) -> String {
    v.and_then(Value::as_u64).map_or("—".into(), grouped)
}

fn bytes(v: Option<&Value>) -> String {
    v.and_then(Value::as_u64).map_or("—".into(), human_bytes)
}

fn seconds(v: Option<&Value>) -> String {
    v.and_then(Value::as_f64)
        .map_or("—".into(), |s| format!("{s:.1} s"))
}

/// The page's Wire section: nothing for a run without `wire` in its results.json, one
/// line with the reason when links were not counted, else the figures, the link matrix,
/// the per-period table and `plot` (packets per second, drawn from `wire.jsonl`).
pub fn section(run: &RunData, plot: Option<&Plot>) -> Markup {
    let Some(w) = run.results.get("wire") else {
        return html! {};
    };
    let problem = run.wire.as_ref().and_then(|r| r.problem.as_deref());
    let figure = html! {
        @if let Some(p) = plot {
            figure id={ "plot-" (p.name) } {
                (plotters_svg(&p.svg))
                figcaption { (p.title) " · " a href=(p.png_file) { "PNG" } }
            }
        }
        @if let Some(why) = problem { p.muted #wire-problem { (why) } }
    };
    if !w.is_object() {
        let reason = run
            .results
            .get("wire_reason")
            .filter(|r| !r.is_null())
            .map_or("no reason recorded".into(), |r| value_text(r, 500));
        return html! {
            h2 #wire { "Wire" }
            p.muted #wire-reason { "Links were not counted: " (reason) }
            (figure)
        };
    }
    let ok = |k: &str| w.get(k).and_then(Value::as_u64);
    // `peer_payload_bytes` as the runner writes it; `payload_bytes` is the name it was
    // first announced under.
    let payload = w
        .get("peer_payload_bytes")
        .or_else(|| w.get("payload_bytes"));
    let acked = ok("ok_writes").unwrap_or(0) + ok("ok_reads").unwrap_or(0);
    let client_per_op = match (ok("client_packets"), acked) {
        (Some(p), n) if n > 0 => format!("{:.1}", p as f64 / n as f64),
        _ => "—".into(),
    };
    let mut cards = vec![
        (
            "peer packets per write",
            per_op(w.get("messages_per_write")),
            "messages_per_write",
        ),
        (
            "peer bytes per write",
            bytes_per_op(w.get("bytes_per_write")),
            "bytes_per_write",
        ),
        (
            "peer packets per read",
            per_op(w.get("messages_per_read")),
            "messages_per_read",
        ),
        (
            "peer bytes per read",
            bytes_per_op(w.get("bytes_per_read")),
            "bytes_per_read",
        ),
        (
            "client packets per op",
            client_per_op,
            "client_packets / (ok_writes + ok_reads)",
        ),
    ];
    if let Some(p) = w.get("payload_bytes_per_write").filter(|p| !p.is_null()) {
        cards.push((
            "peer payload bytes per write",
            bytes_per_op(Some(p)),
            "payload_bytes_per_write",
        ));
    }
    html! {
        h2 #wire { "Wire" }
        div.wire-figures #wire-figures {
            @for (label, value, field) in &cards {
                div.wire-figure title={ "results.json wire." (field) } {
                    div.value { (value) }
                    div.label { (label) }
                }
            }
        }
        p.muted {
            "Over " (seconds(w.get("interval_s"))) " of the main phase: "
            (count(w.get("ok_writes"))) " acknowledged writes and "
            (count(w.get("ok_reads"))) " reads; "
            (count(w.get("peer_packets"))) " packets (" (bytes(w.get("peer_bytes")))
            ") between nodes, " (count(w.get("client_packets"))) " packets ("
            (bytes(w.get("client_bytes"))) ") between clients and nodes"
            @if let Some(p) = payload.and_then(Value::as_u64) {
                "; " (human_bytes(p)) " of it between nodes was payload (TCP and UDP headers excluded)"
            }
            ". A packet is a data-carrying packet counted by the kernel at its sender, not a protocol message; each per-op figure divides all node-to-node traffic by the acknowledged ops of one kind."
        }
        @if let Some(links) = w.get("links").filter(|l| l.is_object()) {
            h3 { "Links" }
            (heatmap(links))
        }
        @if let Some(periods) = w.get("periods").and_then(Value::as_array).filter(|p| !p.is_empty()) {
            h3 { "Fault windows and calm time" }
            (periods_table(periods))
        }
        (figure)
    }
}

/// The link matrix as a table: rows send, columns receive, each cell shaded by its
/// packets. Node-to-node links share one scale and client links have their own, so a
/// client that sends far less (or more) than the peers still reads.
fn heatmap(links: &Value) -> Markup {
    let names: Vec<String> = links
        .get("nodes")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .take(MAX_MATRIX_NAMES)
                .map(|n| value_text(n, 40))
                .collect()
        })
        .unwrap_or_default();
    let total = links
        .get("nodes")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let cell = |m: &str, i: usize, j: usize| {
        links
            .get(m)
            .and_then(|r| r.get(i))
            .and_then(|r| r.get(j))
            .and_then(Value::as_u64)
    };
    // The controller's column and row are the ones named `client` (the runner puts it
    // last); a node can never have that name.
    let is_client = |i: usize| names[i] == "client";
    let mut max_peer = 0u64;
    let mut max_client = 0u64;
    for i in 0..names.len() {
        for j in 0..names.len() {
            let p = cell("packets", i, j).unwrap_or(0);
            let max = if is_client(i) || is_client(j) {
                &mut max_client
            } else {
                &mut max_peer
            };
            *max = (*max).max(p);
        }
    }
    let first_client = (0..names.len()).find(|&i| is_client(i));
    // Classes added to a row or column: the first client one carries the separating rule.
    let class = |i: usize| -> &'static str {
        if first_client == Some(i) {
            " client first-client"
        } else if is_client(i) {
            " client"
        } else {
            ""
        }
    };
    html! {
        div.scroll-x { table.heat #wire-links {
            thead { tr {
                th.corner title="rows send, columns receive" { "from ╲ to" }
                @for (j, to) in names.iter().enumerate() {
                    th class={ "col" (class(j)) } scope="col" { (to) }
                }
            } }
            tbody {
                @for (i, from) in names.iter().enumerate() {
                    tr class=[Some(class(i).trim()).filter(|c| !c.is_empty())] {
                        th scope="row" { (from) }
                        @for (j, to) in names.iter().enumerate() {
                            @let client = is_client(i) || is_client(j);
                            @let col = class(j);
                            @match (cell("packets", i, j), cell("bytes", i, j)) {
                                (Some(p), b) => {
                                    @let payload = cell("payload", i, j).map(|x| format!(" ({} of it payload)", human_bytes(x))).unwrap_or_default();
                                    @let max = if client { max_client } else { max_peer };
                                    @let share = if max == 0 { 0.0 } else { p as f64 / max as f64 };
                                    @let alpha = if p == 0 { 0.0 } else { 0.08 + 0.82 * share };
                                    @let (r, g, bl) = if client { (0x6e, 0x54, 0x94) } else { (0x2b, 0x6c, 0xb0) };
                                    @let ink = if alpha > 0.55 { "#fff" } else { "inherit" };
                                    td class={ "num" (col) }
                                        style={ "background:rgba(" (r) "," (g) "," (bl) "," (format_args!("{alpha:.2}")) ");color:" (ink) }
                                        data-packets=(p)
                                        title={ (from) " → " (to) ": " (grouped(p)) " packets, "
                                            (b.map_or("—".into(), human_bytes)) (payload)
                                            (format_args!("; {:.0} % of the busiest {} link", share * 100.0, if client { "client" } else { "node" })) } {
                                        span.p { (grouped(p)) }
                                        br;
                                        span.b { (b.map_or("—".into(), human_bytes)) }
                                    }
                                },
                                (None, _) => td class={ "none" (col) } title={ (from) " → " (to) ": not counted" } { "·" },
                            }
                        }
                    }
                }
            }
        } }
        p.muted {
            "Rows send, columns receive: packets, then bytes, between the first and the final sample. Shaded by packets, node links on one scale and client links (the controller's row and column) on their own."
            @if total > names.len() { " The first " (names.len()) " of " (total) " names are shown." }
        }
    }
}

/// results.json `wire.periods`: the traffic in each fault window and in calm time.
fn periods_table(periods: &[Value]) -> Markup {
    let windows: Vec<&Value> = periods
        .iter()
        .filter(|p| p.get("period").and_then(Value::as_str) != Some("calm"))
        .collect();
    let calm: Vec<&Value> = periods
        .iter()
        .filter(|p| p.get("period").and_then(Value::as_str) == Some("calm"))
        .collect();
    let shown = windows
        .iter()
        .take(MAX_PERIOD_ROWS)
        .chain(calm.iter())
        .copied();
    html! {
        div.scroll-x { table.grid.compact #wire-periods {
            thead { tr {
                th { "period" } th.num { "from" } th.num { "to" } th.num { "seconds" }
                th.num title="acknowledged writes" { "writes" }
                th.num title="acknowledged reads" { "reads" }
                th.num title="node-to-node packets" { "packets" }
                th.num title="node-to-node bytes" { "bytes" }
                th.num { "packets / write" } th.num { "bytes / write" }
                th.num { "packets / read" } th.num { "packets / s" }
            } }
            tbody {
                @for p in shown {
                    @let calm = p.get("period").and_then(Value::as_str) == Some("calm");
                    @let f = p.get("f").and_then(Value::as_str);
                    tr class=[calm.then_some("calm")] {
                        td.nowrap {
                            @if calm { "calm" } @else {
                                @if let Some((r, g, b)) = f.and_then(FaultKind::started_by).map(FaultKind::colour) {
                                    (swatch(&format!("rgba({r},{g},{b},.35)")))
                                }
                                (p.get("f").map_or("window".into(), |f| value_text(f, 60)))
                            }
                        }
                        td.num { (seconds(p.get("start_s"))) }
                        td.num { (if calm { "—".into() } else { p.get("end_s").filter(|e| !e.is_null()).map_or("never healed".into(), |e| seconds(Some(e))) }) }
                        td.num { (p.get("seconds").and_then(Value::as_f64).map_or("—".into(), |s| format!("{s:.1}"))) }
                        td.num { (count(p.get("ok_writes"))) }
                        td.num { (count(p.get("ok_reads"))) }
                        td.num { (count(p.get("peer_packets"))) }
                        td.num { (bytes(p.get("peer_bytes"))) }
                        td.num { (per_op(p.get("messages_per_write"))) }
                        td.num { (bytes_per_op(p.get("bytes_per_write"))) }
                        td.num { (per_op(p.get("messages_per_read"))) }
                        td.num { (per_op(p.get("peer_packets_per_s"))) }
                    }
                }
            }
        } }
        @if windows.len() > MAX_PERIOD_ROWS {
            p.muted { "and " (windows.len() - MAX_PERIOD_ROWS) " more windows (all of them are in results.json)" }
        }
        p.muted { "Node-to-node traffic and acknowledged ops in each fault window and in calm time (the main phase outside every window); — where no op of that kind was acknowledged." }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::PathBuf;

    const HOSTILE: &str = "<script>alert(1)</script>";
    const HOSTILE_HTML: &str = "&lt;script&gt;alert(1)&lt;/script&gt;";

    fn fixture(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fl-wire-page-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// One `wire.jsonl` line of two nodes (the second named `node2`) and the client.
    fn sample(t_s: u64, last: bool, k: u64, node2: &str) -> String {
        let link = |from: &str, to: &str, kind: &str, p: u64| json!({"from": from, "to": to, "kind": kind, "packets": p, "bytes": p * 100});
        json!({"time_ns": t_s * 1_000_000_000, "final": last, "links": [
            link("n1", node2, "peer", 16 * k),
            link(node2, "n1", "peer", 16 * k),
            link("client", "n1", "client", 2 * k),
            link("n1", "client", "client", 2 * k),
        ]})
        .to_string()
    }

    /// results.json `wire` as the runner writes it, with per-period figures.
    fn wire_results(node2: &str) -> Value {
        json!({"verdict": "valid", "name": "wire-test", "wire": {
            "interval_s": 4.0, "ok_writes": 8, "ok_reads": 2,
            "peer_packets": 128, "peer_bytes": 12800, "client_packets": 32, "client_bytes": 3200,
            "messages_per_write": 16.0, "bytes_per_write": 1600.0,
            "messages_per_read": 64.0, "bytes_per_read": 6400.0,
            "peer_payload_bytes": 64, "payload_bytes_per_write": 8.0,
            "links": {
                "nodes": ["n1", node2, "client"],
                "packets": [[null, 64, 16], [64, null, null], [16, null, null]],
                "bytes": [[null, 6400, 1600], [6400, null, null], [1600, null, null]],
                "payload": [[null, 4096, 800], [4096, null, null], [800, null, null]],
            },
            "periods": [
                {"period": "window", "f": "start-partition", "start_s": 1.0, "end_s": 2.0,
                 "seconds": 1.0, "ok_writes": 0, "ok_reads": 0, "peer_packets": 32,
                 "peer_bytes": 3200, "messages_per_write": null, "bytes_per_write": null,
                 "messages_per_read": null, "peer_packets_per_s": 32.0},
                {"period": "window", "f": "kill", "start_s": 3.0, "end_s": null,
                 "seconds": 1.0, "ok_writes": 2, "ok_reads": 0, "peer_packets": 32,
                 "peer_bytes": 3200, "messages_per_write": 16.0, "bytes_per_write": 1600.0,
                 "messages_per_read": null, "peer_packets_per_s": 32.0},
                {"period": "calm", "f": null, "start_s": null, "end_s": null,
                 "seconds": 2.0, "ok_writes": 6, "ok_reads": 2, "peer_packets": 64,
                 "peer_bytes": 6400, "messages_per_write": 10.7, "bytes_per_write": 1066.7,
                 "messages_per_read": 32.0, "peer_packets_per_s": 32.0},
            ],
        }})
    }

    fn write_run(dir: &Path, results: &Value, wire_jsonl: Option<&str>) {
        std::fs::write(dir.join("results.json"), results.to_string()).unwrap();
        let nemesis = |i: u64, t_ms: u64, f: &str| {
            json!({"index": i, "time_ns": t_ms * 1_000_000, "process": "nemesis",
                   "type": "info", "f": f, "value": {"nodes": ["n1"]}})
            .to_string()
        };
        let history = [
            nemesis(0, 1000, "start-partition"),
            nemesis(1, 2000, "stop-partition"),
            json!({"index": 2, "time_ns": 2_500_000_000u64, "process": 0, "type": "invoke", "f": "write", "key": "k", "value": 1}).to_string(),
            json!({"index": 3, "time_ns": 2_600_000_000u64, "process": 0, "type": "ok", "f": "write", "key": "k", "value": 1}).to_string(),
        ];
        std::fs::write(dir.join("history.jsonl"), history.join("\n") + "\n").unwrap();
        if let Some(w) = wire_jsonl {
            std::fs::write(dir.join(WIRE_JSONL), w).unwrap();
        }
    }

    fn page_of(dir: &Path) -> String {
        let run = RunData::load(dir, None).unwrap();
        let r = crate::report::render(&run).unwrap();
        std::fs::read_to_string(r.index_html).unwrap()
    }

    #[test]
    fn rates_are_differences_between_samples_over_elapsed_time() {
        let s = [
            (0, 0, 0),
            (1_000_000_000, 100, 10),
            (3_000_000_000, 300, 30),
        ];
        let iv = intervals(&s);
        assert_eq!(iv.len(), 2);
        assert_eq!((iv[0].peer_pps, iv[0].client_pps), (100.0, 10.0));
        assert_eq!(
            (iv[1].start_ns, iv[1].end_ns),
            (1_000_000_000, 3_000_000_000)
        );
        assert_eq!((iv[1].peer_pps, iv[1].client_pps), (100.0, 10.0));
        assert!(intervals(&s[..1]).is_empty(), "one sample is no interval");
    }

    #[test]
    fn many_samples_merge_into_fewer_intervals_with_the_same_traffic() {
        // 2,001 samples, 1 s apart, with a burst in the middle.
        let mut total = 0u64;
        let s: Vec<(u64, u64, u64)> = (0..=2000u64)
            .map(|i| {
                total += if (900..1000).contains(&i) { 500 } else { 10 };
                (i * 1_000_000_000, total, i)
            })
            .collect();
        let iv = intervals(&s);
        assert!(iv.len() <= MAX_INTERVALS, "{}", iv.len());
        assert_eq!(iv.first().unwrap().start_ns, 0);
        assert_eq!(iv.last().unwrap().end_ns, 2000 * 1_000_000_000);
        let drawn: f64 = iv
            .iter()
            .map(|i| i.peer_pps * (i.end_ns - i.start_ns) as f64 / 1e9)
            .sum();
        assert!((drawn - (total - s[0].1) as f64).abs() < 1e-6, "{drawn}");
        assert!(
            iv.iter().any(|i| i.peer_pps > 100.0),
            "the burst still shows"
        );
    }

    #[test]
    fn the_run_page_shows_figures_the_link_heatmap_periods_and_the_rate_plot() {
        let dir = fixture("full");
        let wire: String = (0..=4).map(|k| sample(k, k == 4, k, "n2") + "\n").collect();
        write_run(&dir, &wire_results("n2"), Some(&wire));
        let page = page_of(&dir);
        let at = |s: &str| page.find(s).unwrap_or_else(|| panic!("{s} in {page}"));
        assert!(at("id=\"wire\"") > at("id=\"plots\""));
        assert!(page.contains("href=\"#wire\""), "linked from the banner");
        for figure in [
            "<div class=\"value\">16.0</div><div class=\"label\">peer packets per write</div>",
            "<div class=\"value\">1.6 KiB</div><div class=\"label\">peer bytes per write</div>",
            "<div class=\"value\">64.0</div><div class=\"label\">peer packets per read</div>",
            "<div class=\"value\">3.2</div><div class=\"label\">client packets per op</div>",
            "<div class=\"value\">8 B</div><div class=\"label\">peer payload bytes per write</div>",
        ] {
            assert!(page.contains(figure), "{figure}");
        }
        // The heatmap: n1 → n2 is the busiest node link, drawn at full strength.
        assert!(
            page.contains(
                "style=\"background:rgba(43,108,176,0.90);color:#fff\" data-packets=\"64\" \
                 title=\"n1 → n2: 64 packets, 6.2 KiB (4.0 KiB of it payload); 100 % of the busiest node link\""
            ),
            "{page}"
        );
        assert!(page.contains("<span class=\"p\">64</span><br><span class=\"b\">6.2 KiB</span>"));
        // The client column and row are set apart, and shaded on their own scale.
        assert!(page.contains("<th class=\"col client first-client\" scope=\"col\">client</th>"));
        assert!(page.contains(
            "<td class=\"num client first-client\" style=\"background:rgba(110,84,148,0.90);color:#fff\" data-packets=\"16\""
        ));
        assert!(page.contains("<tr class=\"client first-client\"><th scope=\"row\">client</th>"));
        assert!(page.contains(
            "title=\"client → n1: 16 packets, 1.6 KiB (800 B of it payload); 100 % of the busiest client link\""
        ));
        assert_eq!(page.matches("data-packets=").count(), 4);
        assert!(page.contains("title=\"n1 → n1: not counted\""));
        // Per period: the partition window, the kill never healed, calm time.
        let periods = &page[at("id=\"wire-periods\"")..];
        assert!(periods.contains("start-partition"));
        assert!(periods.contains("never healed"));
        assert!(periods.contains("<tr class=\"calm\"><td class=\"nowrap\">calm</td>"));
        // The rate plot sits in the Wire section, not among the other plots.
        assert!(at("id=\"plot-wire\"") > at("id=\"wire\""));
        assert_eq!(page.matches("id=\"plot-wire\"").count(), 1);
        assert!(page.contains("Packets per second on the wire"));
        assert!(dir.join("wire.png").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn hostile_node_names_are_escaped_in_the_matrix() {
        let dir = fixture("hostile");
        let wire: String = (0..=2)
            .map(|k| sample(k, k == 2, k, HOSTILE) + "\n")
            .collect();
        write_run(&dir, &wire_results(HOSTILE), Some(&wire));
        let page = page_of(&dir);
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(page.contains(&format!(
            "<th class=\"col\" scope=\"col\">{HOSTILE_HTML}</th>"
        )));
        assert!(page.contains(&format!("title=\"n1 → {HOSTILE_HTML}: 64 packets")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn links_not_counted_show_the_reason_in_one_line() {
        let dir = fixture("null");
        let results = json!({"verdict": "valid", "wire": null,
                             "wire_reason": "loopback <b>shares</b> one stack"});
        write_run(&dir, &results, None);
        let page = page_of(&dir);
        assert!(page.contains(
            "<p class=\"muted\" id=\"wire-reason\">Links were not counted: loopback &lt;b&gt;shares&lt;/b&gt; one stack</p>"
        ), "{page}");
        assert!(!page.contains("id=\"wire-figures\"") && !page.contains("id=\"plot-wire\""));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_run_from_before_wire_accounting_has_no_wire_section() {
        let dir = fixture("old");
        write_run(&dir, &json!({"verdict": "valid"}), None);
        let page = page_of(&dir);
        assert!(!page.contains("id=\"wire\"") && !page.contains("href=\"#wire\""));
        assert!(!dir.join("wire.png").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_wire_object_without_periods_or_payload_still_renders() {
        let dir = fixture("lean");
        let mut results = wire_results("n2");
        let w = results["wire"].as_object_mut().unwrap();
        for k in ["periods", "peer_payload_bytes", "payload_bytes_per_write"] {
            w.remove(k);
        }
        // A cut last line (a controller that died mid-write) is skipped and said.
        let wire = format!(
            "{}\n{}\n{{\"time_ns\": 3",
            sample(0, false, 0, "n2"),
            sample(2, true, 2, "n2")
        );
        write_run(&dir, &results, Some(&wire));
        let page = page_of(&dir);
        assert!(page.contains("id=\"wire-links\""));
        assert!(!page.contains("id=\"wire-periods\"") && !page.contains("payload bytes"));
        assert!(page.contains("1 line(s) of wire.jsonl could not be read"));
        assert!(page.contains("id=\"plot-wire\""));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
