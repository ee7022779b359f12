//! Synthetic runs for the report's tests and benchmarks: a simulated, linearizable
//! history (from [`crate::checker::simulate`]) with nemesis ops of every fault kind laid
//! over it, so every plot, band and page section has something to draw without a live
//! cluster. Not used by `faultline run`.

use crate::checker::simulate::{self, SimConfig, Workload};
use crate::history::{Op, OpType, Process};
use serde_json::{json, Value};
use std::collections::HashMap;

/// A cas-register history of `calls` invocations over `keys` keys by `processes`
/// workers, with a partition, a pause, a kill, a clock bump, a clock strobe and packet
/// loss, one after another, each over a tenth of the run. Indexes are renumbered in time
/// order, as a journal would have stamped them.
pub fn history(calls: usize, processes: usize, keys: usize, seed: u64) -> Vec<Op> {
    let client = simulate::history(SimConfig {
        workload: Workload::CasRegister,
        seed,
        processes,
        ops: calls,
        keys,
        crash_fraction: 0.01,
        fail_fraction: 0.02,
        max_latency_ns: 10_000_000,
    });
    let end = client.iter().map(|o| o.time_ns).max().unwrap_or(0).max(1);
    let at = |frac: f64| (end as f64 * frac) as u64;
    let nemesis = |t: u64, f: &str, value: Value| Op {
        index: 0,
        time_ns: t,
        process: Process::Nemesis,
        kind: OpType::Info,
        f: f.to_string(),
        key: None,
        value,
        node: None,
        error: None,
    };
    let faults = vec![
        nemesis(
            at(0.05),
            "start-partition",
            json!({"nodes": ["n1", "n2", "n3", "n4", "n5"], "grudge": {"n1": ["n3", "n4", "n5"], "n2": ["n3", "n4", "n5"], "n3": ["n1", "n2"], "n4": ["n1", "n2"], "n5": ["n1", "n2"]}, "one_way": false}),
        ),
        nemesis(
            at(0.15),
            "stop-partition",
            json!({"nodes": ["n1", "n2", "n3", "n4", "n5"]}),
        ),
        nemesis(at(0.20), "pause", json!({"nodes": ["n2"]})),
        nemesis(at(0.30), "resume", json!({"nodes": ["n2"]})),
        nemesis(at(0.35), "kill", json!({"nodes": ["n4", "n5"]})),
        nemesis(at(0.45), "start", json!({"nodes": ["n4", "n5"]})),
        nemesis(
            at(0.50),
            "bump-clock",
            json!({"nodes": ["n1", "n3"], "offsets_ms": {"n1": 60000, "n3": -30000}}),
        ),
        nemesis(at(0.60), "reset-clock", json!({"nodes": ["n1", "n3"]})),
        nemesis(
            at(0.65),
            "strobe-clock",
            json!({"nodes": ["n2"], "offset_ms": 5000, "period_ms": ((end / 1_000_000) / 100).max(1)}),
        ),
        nemesis(at(0.75), "reset-clock", json!({"nodes": ["n2"]})),
        nemesis(
            at(0.80),
            "start-loss",
            json!({"nodes": ["n5"], "percent": 30}),
        ),
        nemesis(at(0.90), "stop-loss", json!({"nodes": ["n5"]})),
    ];
    // The simulator leaves some crashed calls without a completion; a faultline run
    // records a timed-out call as info instead (a pending call only ever appears at the
    // end of a cut run). Complete them as the runner would, one timeout later: info may
    // take effect at any time after its invocation, so the history stays linearizable.
    let mut open: HashMap<Process, &Op> = HashMap::new();
    for op in &client {
        match op.kind {
            OpType::Invoke => open.insert(op.process, op),
            _ => open.remove(&op.process),
        };
    }
    let timeouts: Vec<Op> = open
        .into_values()
        .map(|inv| Op {
            kind: OpType::Info,
            time_ns: (inv.time_ns + 2 * 10_000_000).min(end),
            error: Some("timeout".into()),
            ..inv.clone()
        })
        .collect();
    let mut ops: Vec<Op> = client.into_iter().chain(timeouts).chain(faults).collect();
    // Stable: client ops keep their order; a nemesis op goes after client ops at its time.
    ops.sort_by_key(|o| o.time_ns);
    for (i, op) in ops.iter_mut().enumerate() {
        op.index = i as u64;
        if let (Process::Client(p), None) = (op.process, &op.node) {
            op.node = Some(format!("n{}", 1 + p % 5));
        }
    }
    ops
}
