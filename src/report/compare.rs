//! The protocol comparison (`faultline compare`): one row per target and cluster size,
//! from the `wire` and `perf` figures of finished runs — what a write costs on the wire
//! and in time, calm and while one node is cut off.
//!
//! A run with no fault window gives the calm figures (its whole main phase); a run whose
//! windows are all partitions gives the "under partition" figures (its longest window).
//! Figures of several runs of one row are medians. Only valid runs count: the throughput
//! of a run that lost writes says nothing good.

use crate::spec::target::FaultModel;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How deep below a given directory run directories are looked for: a store's
/// `test/run`, a campaign's `runs/cell/run`.
const MAX_DEPTH: usize = 4;

/// What one run measured, calm or in its partition window.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Figures {
    pub messages_per_write: Option<f64>,
    pub payload_bytes_per_write: Option<f64>,
    pub write_p50_ms: Option<f64>,
    pub write_p99_ms: Option<f64>,
    pub writes_per_s: Option<f64>,
}

/// One row of the table: latency and the per-write wire cost from the runs with the
/// fewest clients (a write's own cost, not queueing), throughput from those with the most.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub target: String,
    pub nodes: usize,
    pub tolerated: Option<String>,
    pub rtt_ms: Option<f64>,
    /// Clients of the runs latency and cost come from, and of those throughput comes from.
    pub clients: (u64, u64),
    /// Calm, fewest clients.
    pub calm: Figures,
    /// Calm, most clients.
    pub calm_loaded: Figures,
    /// One node cut off, fewest clients.
    pub partition: Figures,
    /// One node cut off, most clients.
    pub partition_loaded: Figures,
    pub calm_runs: usize,
    pub partition_runs: usize,
}

/// Every run directory (holding results.json and plan.yaml) at or below `dir`.
fn run_dirs(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    if dir.join("results.json").is_file() && dir.join("plan.yaml").is_file() {
        out.push(dir.to_path_buf());
        return;
    }
    if depth == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut subdirs: Vec<PathBuf> = entries
        .flatten()
        // `latest` links would count a run twice.
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    subdirs.sort();
    for d in subdirs {
        run_dirs(&d, depth - 1, out);
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// A run's figures: calm (`None` window) or of one period index.
fn figures(results: &Value, period: Option<usize>) -> Figures {
    let (wire, perf) = match period {
        None => (results["wire"].clone(), results["perf"].clone()),
        Some(i) => (
            results["wire"]["periods"][i].clone(),
            results["perf"]["periods"][i].clone(),
        ),
    };
    Figures {
        messages_per_write: wire["messages_per_write"].as_f64(),
        payload_bytes_per_write: wire["payload_bytes_per_write"].as_f64(),
        write_p50_ms: perf["write_p50_ms"].as_f64(),
        write_p99_ms: perf["write_p99_ms"].as_f64(),
        writes_per_s: perf["writes_per_s"].as_f64(),
    }
}

/// What one run contributes: calm figures, or its longest partition window's.
enum Part {
    Calm(Figures),
    Partition(Figures),
}

fn part_of(results: &Value) -> Option<Part> {
    let periods = results["perf"]["periods"].as_array()?;
    let windows: Vec<(usize, &Value)> = periods
        .iter()
        .enumerate()
        .filter(|(_, p)| p["period"] == "window")
        .collect();
    if windows.is_empty() {
        return Some(Part::Calm(figures(results, None)));
    }
    if !windows.iter().all(|(_, p)| p["f"] == "start-partition") {
        return None;
    }
    let length =
        |p: &Value| p["end_s"].as_f64().unwrap_or(f64::MAX) - p["start_s"].as_f64().unwrap_or(0.0);
    let (i, _) = windows
        .iter()
        .max_by(|a, b| length(a.1).total_cmp(&length(b.1)))?;
    Some(Part::Partition(figures(results, Some(*i))))
}

fn merge(runs: &[Figures]) -> Figures {
    let m = |f: fn(&Figures) -> Option<f64>| median(runs.iter().filter_map(f).collect());
    Figures {
        messages_per_write: m(|f| f.messages_per_write),
        payload_bytes_per_write: m(|f| f.payload_bytes_per_write),
        write_p50_ms: m(|f| f.write_p50_ms),
        write_p99_ms: m(|f| f.write_p99_ms),
        writes_per_s: m(|f| f.writes_per_s),
    }
}

/// The table's rows from the runs at or below `paths`, and the runs left out with why.
pub fn rows(paths: &[PathBuf]) -> Result<(Vec<Row>, Vec<String>)> {
    let mut dirs = Vec::new();
    for p in paths {
        if !p.is_dir() {
            bail!("{}: not a directory", p.display());
        }
        run_dirs(p, MAX_DEPTH, &mut dirs);
    }
    if dirs.is_empty() {
        bail!("no run directory (results.json and plan.yaml) found below the given paths");
    }
    #[derive(Default)]
    struct Acc {
        tolerated: Option<String>,
        rtt: Vec<f64>,
        /// (clients, figures) per run.
        calm: Vec<(u64, Figures)>,
        partition: Vec<(u64, Figures)>,
    }
    let mut acc: BTreeMap<(String, usize), Acc> = BTreeMap::new();
    let mut skipped = Vec::new();
    for dir in dirs {
        let text = std::fs::read_to_string(dir.join("results.json"))
            .with_context(|| format!("cannot read {}/results.json", dir.display()))?;
        let results: Value = serde_json::from_str(&text)
            .with_context(|| format!("{}/results.json: invalid JSON", dir.display()))?;
        if results["verdict"] != "valid" {
            skipped.push(format!("{}: verdict {}", dir.display(), results["verdict"]));
            continue;
        }
        if results["wire"].is_null() && results["perf"].is_null() {
            skipped.push(format!("{}: no wire or perf figures", dir.display()));
            continue;
        }
        let Some(part) = part_of(&results) else {
            skipped.push(format!("{}: faults other than partitions", dir.display()));
            continue;
        };
        let target = results["target"].as_str().unwrap_or("?").to_string();
        let nodes = results["nodes"].as_array().map_or(0, Vec::len);
        // Older plans have no fault model; an unreadable plan leaves the column blank.
        let model = super::run::read_plan(&dir).ok().and_then(|p| {
            serde_json::from_value::<FaultModel>(p["target"]["spec"]["fault_model"].clone()).ok()
        });
        let a = acc.entry((target, nodes)).or_default();
        a.tolerated = model.map(|m: FaultModel| m.tolerated(nodes));
        if let Some(r) = results["perf"]["rtt_ms"].as_f64() {
            a.rtt.push(r);
        }
        let clients = results["concurrency"].as_u64().unwrap_or(0);
        match part {
            Part::Calm(f) => a.calm.push((clients, f)),
            Part::Partition(f) => a.partition.push((clients, f)),
        }
    }
    let rows = acc
        .into_iter()
        .map(|((target, nodes), a)| {
            let all = a.calm.iter().chain(&a.partition).map(|(c, _)| *c);
            let fewest = all.clone().min().unwrap_or(0);
            let most = all.max().unwrap_or(0);
            let at = |runs: &[(u64, Figures)], clients: u64| {
                let of: Vec<Figures> = runs
                    .iter()
                    .filter(|(c, _)| *c == clients)
                    .map(|(_, f)| f.clone())
                    .collect();
                merge(&of)
            };
            Row {
                target,
                nodes,
                tolerated: a.tolerated,
                rtt_ms: median(a.rtt),
                clients: (fewest, most),
                calm: at(&a.calm, fewest),
                calm_loaded: at(&a.calm, most),
                partition: at(&a.partition, fewest),
                partition_loaded: at(&a.partition, most),
                calm_runs: a.calm.len(),
                partition_runs: a.partition.len(),
            }
        })
        .collect();
    Ok((rows, skipped))
}

fn num(x: Option<f64>, digits: usize) -> String {
    x.map_or("—".into(), |v| format!("{v:.digits$}"))
}

/// Latency in milliseconds and in round trips.
fn latency(ms: Option<f64>, rtt: Option<f64>) -> String {
    match (ms, rtt) {
        (Some(ms), Some(rtt)) if rtt > 0.0 => format!("{ms:.2} ({:.0})", ms / rtt),
        (Some(ms), _) => format!("{ms:.2}"),
        _ => "—".into(),
    }
}

/// The rows as a Markdown table. Target names come from results.json, so `|` and line
/// breaks in them are escaped.
pub fn markdown(rows: &[Row]) -> String {
    let cell = |s: &str| s.replace('|', "\\|").replace(['\n', '\r'], " ");
    let mut out = String::from(
        "| target | nodes | faults tolerated | clients (latency / max) | peer msgs/write | peer bytes/write | write p50 ms (RTTs) | write p99 ms (RTTs) | max writes/s | msgs/write at max | one node cut off: msgs/write | p50 ms (RTTs) | p99 ms (RTTs) | max writes/s | RTT ms | runs (calm + cut off) |\n\
         | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in rows {
        let (c, cl, p, pl) = (&r.calm, &r.calm_loaded, &r.partition, &r.partition_loaded);
        out.push_str(&format!(
            "| {} | {} | {} | {} / {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} + {} |\n",
            cell(&r.target),
            r.nodes,
            cell(r.tolerated.as_deref().unwrap_or("—")),
            r.clients.0,
            r.clients.1,
            num(c.messages_per_write, 1),
            num(c.payload_bytes_per_write, 0),
            latency(c.write_p50_ms, r.rtt_ms),
            latency(c.write_p99_ms, r.rtt_ms),
            num(cl.writes_per_s, 0),
            num(cl.messages_per_write, 2),
            num(p.messages_per_write, 1),
            latency(p.write_p50_ms, r.rtt_ms),
            latency(p.write_p99_ms, r.rtt_ms),
            num(pl.writes_per_s, 0),
            num(r.rtt_ms, 3),
            r.calm_runs,
            r.partition_runs,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A run directory with results.json (and a plan.yaml that need not parse: the fault
    /// model is then unknown).
    fn run(dir: &Path, name: &str, results: Value) {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("results.json"), results.to_string()).unwrap();
        std::fs::write(d.join("plan.yaml"), "not a plan").unwrap();
    }

    fn results(
        target: &str,
        clients: u64,
        windows: &[(&str, f64, f64)],
        mpw: f64,
        wps: f64,
    ) -> Value {
        let mut wire_periods = Vec::new();
        let mut perf_periods = Vec::new();
        for (f, s, e) in windows {
            wire_periods.push(json!({"period": "window", "f": f, "start_s": s, "end_s": e,
                "messages_per_write": mpw * 2.0, "payload_bytes_per_write": 100.0}));
            perf_periods.push(json!({"period": "window", "f": f, "start_s": s, "end_s": e,
                "writes_per_s": wps / 2.0, "write_p50_ms": 2.0, "write_p99_ms": 9.0}));
        }
        wire_periods.push(json!({"period": "calm"}));
        perf_periods.push(json!({"period": "calm"}));
        json!({"target": target, "verdict": "valid", "nodes": ["n1", "n2", "n3"],
               "concurrency": clients,
               "wire": {"messages_per_write": mpw, "payload_bytes_per_write": 80.0,
                        "periods": wire_periods},
               "perf": {"writes_per_s": wps, "write_p50_ms": 1.0, "write_p99_ms": 4.0,
                        "rtt_ms": 0.1, "periods": perf_periods}})
    }

    #[test]
    fn calm_and_partition_runs_make_one_row_with_medians() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        run(d, "a/1", results("kv|x", 1, &[], 8.0, 1000.0));
        run(d, "a/2", results("kv|x", 1, &[], 10.0, 3000.0));
        run(d, "a/3", results("kv|x", 1, &[], 12.0, 2000.0));
        // Throughput comes from the runs with the most clients.
        run(d, "a/4", results("kv|x", 50, &[], 0.5, 9000.0));
        // The longest partition window counts.
        let windows = [("start-partition", 1.0, 2.0), ("start-partition", 3.0, 9.0)];
        run(d, "b/1", results("kv|x", 1, &windows, 5.0, 800.0));
        run(d, "b/2", results("kv|x", 50, &windows, 0.3, 7000.0));
        run(
            d,
            "c/1",
            results("kv|x", 1, &[("start-pause", 1.0, 2.0)], 5.0, 800.0),
        );
        let mut invalid = results("kv|x", 1, &[], 99.0, 1.0);
        invalid["verdict"] = "invalid".into();
        run(d, "c/2", invalid);
        let (found, skipped) = rows(&[d.to_path_buf()]).unwrap();
        assert_eq!(found.len(), 1);
        let r = &found[0];
        assert_eq!(
            (r.target.as_str(), r.nodes, r.calm_runs, r.partition_runs),
            ("kv|x", 3, 4, 2)
        );
        assert_eq!(r.clients, (1, 50));
        assert_eq!(r.calm.messages_per_write, Some(10.0));
        assert_eq!(r.calm_loaded.writes_per_s, Some(9000.0));
        assert_eq!(r.partition.messages_per_write, Some(10.0));
        assert_eq!(r.partition_loaded.writes_per_s, Some(3500.0));
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        let md = markdown(&found);
        assert!(
            md.contains("| kv\\|x | 3 | — | 1 / 50 | 10.0 | 80 | 1.00 (10) | 4.00 (40) | 9000 | 0.50 | 10.0 | 2.00 (20) | 9.00 (90) | 3500 | 0.100 | 4 + 2 |"),
            "{md}"
        );
        assert!(rows(&[d.join("nowhere")]).is_err());
        let empty = tempfile::tempdir().unwrap();
        assert!(rows(&[empty.path().to_path_buf()]).is_err());
    }

    #[test]
    fn faults_tolerated_follow_the_fault_model() {
        assert_eq!(FaultModel::Crash.tolerated(5), "2 crashed or cut off");
        assert_eq!(FaultModel::Crash.tolerated(3), "1 crashed or cut off");
        assert_eq!(
            FaultModel::Byzantine.tolerated(4),
            "1 arbitrary (Byzantine)"
        );
        assert_eq!(
            FaultModel::Byzantine.tolerated(7),
            "2 arbitrary (Byzantine)"
        );
    }
}
