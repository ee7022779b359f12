//! What the run's writes cost in time: results.json's `perf` — acknowledged writes per
//! second and their latency (invocation to `ok`), for the main phase and per fault window
//! and calm time, next to `rtt_ms`, the bridge round trip measured before the clients
//! started (latency in round trips is what tells protocols apart whatever the machine).
//!
//! A pure function of the history and the liveness windows, streamed: only the latencies
//! of acknowledged writes are kept.

use super::wire::{covered, overlap, spans_of};
use crate::checker::liveness::Window;
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;

/// One acknowledged write: when it completed and how long it took.
#[derive(Debug, Clone, Copy)]
struct Write {
    done_ns: u64,
    latency_ns: u64,
}

/// Nearest-rank quantile of sorted latencies, in milliseconds.
fn quantile_ms(sorted: &[u64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some((sorted[rank - 1] as f64 / 1e3).round() / 1e3)
}

/// Throughput and latency of `writes` over `seconds`.
fn figures(writes: &mut [u64], seconds: f64) -> Value {
    writes.sort_unstable();
    json!({
        "ok_writes": writes.len(),
        "writes_per_s": (seconds > 0.0).then(|| writes.len() as f64 / seconds),
        "write_p50_ms": quantile_ms(writes, 0.5),
        "write_p99_ms": quantile_ms(writes, 0.99),
    })
}

/// Acknowledged writes (`write`, `cas`) of the history with their latencies.
fn ok_writes(history_jsonl: &Path) -> Result<Vec<Write>> {
    let text = std::fs::read_to_string(history_jsonl)
        .with_context(|| format!("cannot read {}", history_jsonl.display()))?;
    let mut open: HashMap<String, u64> = HashMap::new();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let op: Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: invalid line", history_jsonl.display(), i + 1))?;
        let Some(t) = op["time_ns"].as_u64() else {
            continue;
        };
        // Numbers for clients, "nemesis" for the nemesis: either way a key.
        let process = op["process"].to_string();
        match op["type"].as_str() {
            Some("invoke") => {
                open.insert(process, t);
            }
            Some(kind) => {
                let Some(start) = open.remove(&process) else {
                    continue;
                };
                if kind == "ok" && matches!(op["f"].as_str(), Some("write" | "cas")) {
                    out.push(Write {
                        done_ns: t,
                        latency_ns: t.saturating_sub(start),
                    });
                }
            }
            None => {}
        }
    }
    Ok(out)
}

/// results.json's `perf` for the main phase `[0, main_end_ns]` (writes acknowledged after
/// it, in the final phase, are left out) and `rtt_ms`.
pub fn summarize(
    history_jsonl: &Path,
    windows: &[Window],
    main_end_ns: u64,
    rtt_ms: Option<f64>,
) -> Result<Value> {
    let writes: Vec<Write> = ok_writes(history_jsonl)?
        .into_iter()
        .filter(|w| w.done_ns <= main_end_ns)
        .collect();
    let main = (0, main_end_ns);
    let spans = spans_of(windows);
    let mut all: Vec<u64> = writes.iter().map(|w| w.latency_ns).collect();
    let mut periods = Vec::new();
    for (w, s) in windows.iter().zip(&spans) {
        let mut lat: Vec<u64> = writes
            .iter()
            .filter(|x| x.done_ns >= s.0 && x.done_ns <= s.1)
            .map(|x| x.latency_ns)
            .collect();
        let mut p = figures(&mut lat, overlap(*s, main) as f64 / 1e9);
        p["period"] = "window".into();
        p["f"] = w.f.clone().into();
        p["start_s"] = w.start_s.into();
        p["end_s"] = w.end_s.into();
        periods.push(p);
    }
    let mut calm: Vec<u64> = writes
        .iter()
        .filter(|x| !spans.iter().any(|s| x.done_ns >= s.0 && x.done_ns <= s.1))
        .map(|x| x.latency_ns)
        .collect();
    let calm_s = (main_end_ns - covered(main, &spans)) as f64 / 1e9;
    let mut c = figures(&mut calm, calm_s);
    c["period"] = "calm".into();
    periods.push(c);
    let mut out = figures(&mut all, main_end_ns as f64 / 1e9);
    out["rtt_ms"] = rtt_ms.into();
    let in_rtts = |ms: &Value| match (ms.as_f64(), rtt_ms) {
        (Some(ms), Some(rtt)) if rtt > 0.0 => Some(ms / rtt),
        _ => None,
    };
    out["write_p50_rtts"] = in_rtts(&out["write_p50_ms"]).into();
    out["write_p99_rtts"] = in_rtts(&out["write_p99_ms"]).into();
    out["periods"] = periods.into();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_per_second_and_latency_quantiles_per_window_and_calm() {
        let dir = tempfile::tempdir().unwrap();
        let history = dir.path().join("history.jsonl");
        let mut lines = String::new();
        let mut add = |t: u64, p: u64, ty: &str, f: &str| {
            lines.push_str(
                &json!({"time_ns": t, "process": p, "type": ty, "f": f, "key": "k"}).to_string(),
            );
            lines.push('\n');
        };
        // Calm: writes of 1, 2, 3 ms before 1 s; a window from 1 s to 2 s with writes of
        // 10 and 20 ms; a failed write and a read, which count for nothing; a write
        // acknowledged after the main phase.
        for (i, ms) in [1u64, 2, 3].into_iter().enumerate() {
            let t = 100_000_000 * (i as u64 + 1);
            add(t, i as u64, "invoke", "write");
            add(t + ms * 1_000_000, i as u64, "ok", "write");
        }
        add(1_100_000_000, 0, "invoke", "cas");
        add(1_110_000_000, 0, "ok", "cas");
        add(1_200_000_000, 1, "invoke", "write");
        add(1_220_000_000, 1, "ok", "write");
        add(1_300_000_000, 2, "invoke", "write");
        add(1_400_000_000, 2, "fail", "write");
        add(1_300_000_000, 3, "invoke", "read");
        add(1_300_000_001, 3, "ok", "read");
        add(3_900_000_000, 3, "invoke", "write");
        add(4_100_000_000, 3, "ok", "write");
        std::fs::write(&history, lines).unwrap();
        let window = Window {
            f: "start-partition".into(),
            start_s: 1.0,
            end_s: Some(2.0),
            availability: None,
            recovery_s: None,
        };
        let p = summarize(&history, &[window], 4_000_000_000, Some(0.1)).unwrap();
        assert_eq!(p["ok_writes"], 5);
        assert_eq!(p["writes_per_s"], 1.25);
        assert_eq!(p["write_p50_ms"], 3.0);
        assert_eq!(p["write_p99_ms"], 20.0);
        assert_eq!(p["write_p50_rtts"], 30.0);
        let periods = p["periods"].as_array().unwrap();
        let (w, calm) = (&periods[0], &periods[1]);
        assert_eq!(
            (w["period"].as_str(), w["f"].as_str()),
            (Some("window"), Some("start-partition"))
        );
        assert_eq!(w["ok_writes"], 2);
        assert_eq!(w["writes_per_s"], 2.0);
        assert_eq!(w["write_p50_ms"], 10.0);
        assert_eq!(calm["ok_writes"], 3);
        assert_eq!(calm["writes_per_s"], 1.0);
        assert_eq!(calm["write_p99_ms"], 3.0);
        // Nothing to measure: no figures, no division by zero.
        let empty = dir.path().join("empty.jsonl");
        std::fs::write(&empty, "").unwrap();
        let p = summarize(&empty, &[], 0, None).unwrap();
        assert_eq!(p["ok_writes"], 0);
        assert_eq!(p["writes_per_s"], Value::Null);
        assert_eq!(p["write_p50_rtts"], Value::Null);
    }
}
