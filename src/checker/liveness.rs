//! Liveness: after a heal, a correct cluster must serve again.
//!
//! A pure function over a history ([`assess`]): fault windows come from the nemesis ops
//! (a start opens a window of its kind, the next successful heal of that kind closes
//! it), and client completions are measured against them — the share of completions the
//! cluster served (`ok`, or a cas answered `compare-failed`: the target compared, so it
//! served) inside each window and outside every window (calm), the time from each heal to the
//! first acknowledged (`ok`) write after it, and the time from the final heal to the
//! first `ok` op of any kind (the final reads, when the main phase ended first).
//!
//! Only the final heal is judged against the bound. After a heal during the run the next
//! fault may come before the cluster had a chance to recover, so those times are
//! measurements, not a verdict; after the final heal nothing stands in its way.
//!
//! This is kept apart from the safety verdict: a run can be linearizable and still never
//! serve again, and callers report the two separately.

use crate::history::{Op, OpType, Process, COMPARE_FAILED};
use crate::spec::schedule::FaultEdge;
use serde::Serialize;
use std::time::Duration;

/// What a liveness assessment found: results.json `liveness`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Liveness {
    /// The cluster served within the bound after the final heal (or there was nothing to
    /// judge: no fault, or no op after the final heal — then `reason` says so).
    pub ok: bool,
    pub bound_s: f64,
    pub windows: Vec<Window>,
    /// Share of the client completions outside every fault window that were served;
    /// `None` without any.
    pub calm_availability: Option<f64>,
    /// When the last fault was healed (seconds since the run's start).
    pub final_heal_s: Option<f64>,
    /// From the final heal to the first `ok` op completed after it.
    pub final_recovery_s: Option<f64>,
    /// Why liveness failed, or why it could not be measured.
    pub reason: Option<String>,
}

/// One fault window and how the cluster served in and after it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Window {
    /// The nemesis `f` that opened it.
    pub f: String,
    pub start_s: f64,
    /// `None`: never healed before the history ended.
    pub end_s: Option<f64>,
    /// Share of the client completions inside the window that were served (`ok`, or a
    /// cas answered `compare-failed`); `None` without any.
    pub availability: Option<f64>,
    /// From the heal to the first acknowledged write after it; `None` when no write was
    /// acknowledged after it (or it was never healed).
    pub recovery_s: Option<f64>,
}

/// One client completion, all that liveness needs of it.
#[derive(Debug, Clone, Copy)]
struct Completion {
    time_ns: u64,
    ok: bool,
    /// `ok`, or a definite answer that did not change the state (`compare-failed`).
    served: bool,
    /// Not a read: an acknowledged one changed the state, so the cluster committed.
    write: bool,
}

struct OpenWindow {
    group: &'static str,
    f: String,
    start_ns: u64,
    end_ns: Option<u64>,
}

fn secs(ns: u64) -> f64 {
    (ns as f64 / 1e6).round() / 1e3
}

fn share(ok: usize, all: usize) -> Option<f64> {
    (all > 0).then(|| (ok as f64 / all as f64 * 1e4).round() / 1e4)
}

/// Assess a history (in stamp order, as a run journals it) against `bound`.
///
/// Streams the ops and keeps only the nemesis windows and one small record per client
/// completion, so a long history costs little memory.
pub fn assess(ops: impl IntoIterator<Item = Op>, bound: Duration) -> Liveness {
    let mut windows: Vec<OpenWindow> = Vec::new();
    let mut completions: Vec<Completion> = Vec::new();
    let mut last_heal_ns: Option<u64> = None;
    for op in ops {
        match op.process {
            Process::Client(_) => {
                if op.kind != OpType::Invoke {
                    let ok = op.kind == OpType::Ok;
                    completions.push(Completion {
                        time_ns: op.time_ns,
                        ok,
                        served: ok
                            || (op.kind == OpType::Fail
                                && op.error.as_deref() == Some(COMPARE_FAILED)),
                        write: op.f != "read",
                    });
                }
            }
            Process::Nemesis => {
                // A start that failed opened nothing; a heal that failed healed nothing
                // (the fault stays in force, and the run says so elsewhere). A start that
                // names no node hit nobody (a majorities ring of three nodes cuts no link):
                // there is nothing to heal, and the run's stats already say no fault landed.
                if op.kind == OpType::Invoke || op.error.is_some() {
                    continue;
                }
                let hit_nobody = op
                    .value
                    .get("nodes")
                    .and_then(serde_json::Value::as_array)
                    .is_some_and(|n| n.is_empty());
                if hit_nobody && matches!(FaultEdge::of(&op.f), Some(FaultEdge::Start(_))) {
                    continue;
                }
                match FaultEdge::of(&op.f) {
                    Some(FaultEdge::Start(kind)) => {
                        if FaultEdge::replaces_previous(&op.f) {
                            for w in windows
                                .iter_mut()
                                .filter(|w| w.f == op.f && w.end_ns.is_none())
                            {
                                w.end_ns = Some(op.time_ns);
                            }
                        }
                        windows.push(OpenWindow {
                            group: kind.heal_group(),
                            f: op.f.clone(),
                            start_ns: op.time_ns,
                            end_ns: None,
                        })
                    }
                    Some(FaultEdge::Heal(group)) => {
                        let mut closed = false;
                        for w in windows
                            .iter_mut()
                            .filter(|w| w.group == group && w.end_ns.is_none())
                        {
                            w.end_ns = Some(op.time_ns);
                            closed = true;
                        }
                        if closed {
                            last_heal_ns = Some(op.time_ns);
                        }
                    }
                    None => {}
                }
            }
        }
    }
    // Completions are journaled in stamp order, but sort anyway: a hand-made or imported
    // history need not be.
    completions.sort_by_key(|c| c.time_ns);
    let end_of_history = completions.last().map(|c| c.time_ns);

    let inside = |c: &Completion, w: &OpenWindow| {
        c.time_ns >= w.start_ns && w.end_ns.is_none_or(|e| c.time_ns <= e)
    };
    let first_ok_after = |t: u64, write_only: bool| {
        let from = completions.partition_point(|c| c.time_ns < t);
        completions[from..]
            .iter()
            .find(|c| c.ok && (c.write || !write_only))
            .map(|c| c.time_ns - t)
    };

    let out_windows: Vec<Window> = windows
        .iter()
        .map(|w| {
            let (ok, all) = completions
                .iter()
                .filter(|c| inside(c, w))
                .fold((0, 0), |(ok, all), c| (ok + usize::from(c.served), all + 1));
            Window {
                f: w.f.clone(),
                start_s: secs(w.start_ns),
                end_s: w.end_ns.map(secs),
                availability: share(ok, all),
                recovery_s: w.end_ns.and_then(|e| first_ok_after(e, true)).map(secs),
            }
        })
        .collect();
    let (calm_ok, calm_all) = completions
        .iter()
        .filter(|c| !windows.iter().any(|w| inside(c, w)))
        .fold((0, 0), |(ok, all), c| (ok + usize::from(c.served), all + 1));

    let mut out = Liveness {
        ok: true,
        bound_s: bound.as_secs_f64(),
        windows: out_windows,
        calm_availability: share(calm_ok, calm_all),
        final_heal_s: last_heal_ns.map(secs),
        final_recovery_s: None,
        reason: None,
    };
    if let Some(w) = windows.iter().find(|w| w.end_ns.is_none()) {
        out.ok = false;
        out.reason = Some(format!(
            "{} at {} s was never healed",
            w.f,
            secs(w.start_ns)
        ));
        return out;
    }
    let Some(heal) = last_heal_ns else {
        return out;
    };
    let bound_ns = u64::try_from(bound.as_nanos()).unwrap_or(u64::MAX);
    match first_ok_after(heal, false) {
        Some(r) => {
            out.final_recovery_s = Some(secs(r));
            if r > bound_ns {
                out.ok = false;
                out.reason = Some(format!(
                    "the cluster first served {} s after the final heal at {} s (bound {} s)",
                    secs(r),
                    secs(heal),
                    out.bound_s
                ));
            }
        }
        None => {
            let after: Vec<&Completion> =
                completions.iter().filter(|c| c.time_ns >= heal).collect();
            // Ops that ended before the bound was up do not show the cluster stuck: the
            // run simply stopped asking (no final reads), so there is nothing to judge.
            match end_of_history.filter(|e| *e >= heal && e - heal >= bound_ns) {
                Some(last) => {
                    out.ok = false;
                    out.reason = Some(format!(
                        "nothing succeeded after the final heal at {} s: {} op(s) completed over {} s, none ok (bound {} s)",
                        secs(heal),
                        after.len(),
                        secs(last - heal),
                        out.bound_s
                    ));
                }
                None => {
                    out.reason = Some(format!(
                        "not measured: no op succeeded after the final heal at {} s, and the ops after it ({}) span less than the bound of {} s",
                        secs(heal),
                        after.len(),
                        out.bound_s
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const S: u64 = 1_000_000_000;

    /// A tiny history builder: times in milliseconds.
    struct H(Vec<Op>);

    impl H {
        fn new() -> H {
            H(Vec::new())
        }
        fn push(&mut self, ms: u64, process: Process, kind: OpType, f: &str) {
            let index = self.0.len() as u64;
            self.0.push(Op {
                index,
                time_ns: ms * S / 1000,
                process,
                kind,
                f: f.into(),
                key: None,
                value: Value::Null,
                node: None,
                error: None,
            });
        }
        fn nemesis(mut self, ms: u64, f: &str) -> H {
            self.push(ms, Process::Nemesis, OpType::Info, f);
            self
        }
        /// One call of process `p`, invoked 5 ms before it completes with `kind`.
        fn call(mut self, ms: u64, p: u64, f: &str, kind: OpType) -> H {
            self.push(ms.saturating_sub(5), Process::Client(p), OpType::Invoke, f);
            self.push(ms, Process::Client(p), kind, f);
            self
        }
    }

    #[test]
    fn a_heal_followed_by_ok_writes_within_the_bound_is_live() {
        let h = H::new()
            .call(500, 1, "write", OpType::Ok)
            .nemesis(1000, "start-partition")
            .call(1500, 1, "write", OpType::Info)
            .nemesis(3000, "stop-partition")
            .call(3400, 2, "read", OpType::Ok)
            .call(4200, 2, "write", OpType::Ok);
        let l = assess(h.0, Duration::from_secs(10));
        assert!(l.ok, "{l:?}");
        assert_eq!(l.reason, None);
        assert_eq!(l.final_heal_s, Some(3.0));
        // The final heal is judged by the first ok op of any kind, a window by a write.
        assert_eq!(l.final_recovery_s, Some(0.4));
        assert_eq!(l.windows.len(), 1);
        assert_eq!(l.windows[0].f, "start-partition");
        assert_eq!(l.windows[0].start_s, 1.0);
        assert_eq!(l.windows[0].end_s, Some(3.0));
        assert_eq!(l.windows[0].recovery_s, Some(1.2));
        assert_eq!(l.bound_s, 10.0);
    }

    #[test]
    fn each_twins_round_is_a_window_of_its_own() {
        let h = H::new()
            .nemesis(1000, "twins-round")
            .call(1500, 1, "write", OpType::Ok)
            .nemesis(2000, "twins-round")
            .call(2500, 1, "write", OpType::Info)
            .nemesis(3000, "stop-twin")
            .call(3400, 2, "write", OpType::Ok);
        let l = assess(h.0, Duration::from_secs(10));
        let spans: Vec<(f64, Option<f64>, Option<f64>)> = l
            .windows
            .iter()
            .map(|w| (w.start_s, w.end_s, w.availability))
            .collect();
        assert_eq!(
            spans,
            [(1.0, Some(2.0), Some(1.0)), (2.0, Some(3.0), Some(0.0))]
        );
        assert_eq!(l.final_heal_s, Some(3.0));
    }

    #[test]
    fn a_heal_after_which_nothing_succeeds_is_a_liveness_failure_with_its_reason() {
        let mut h = H::new()
            .call(500, 1, "write", OpType::Ok)
            .nemesis(1000, "kill")
            .nemesis(2000, "start");
        for i in 0..30 {
            h = h.call(2500 + i * 500, 10 + i, "read", OpType::Fail);
        }
        let l = assess(h.0, Duration::from_secs(10));
        assert!(!l.ok);
        assert_eq!(l.final_recovery_s, None);
        assert_eq!(l.windows[0].recovery_s, None);
        let reason = l.reason.unwrap_or_default();
        assert!(
            reason.contains("nothing succeeded after the final heal at 2 s"),
            "{reason}"
        );
        assert!(reason.contains("30 op(s)"), "{reason}");
    }

    #[test]
    fn recovery_slower_than_the_bound_fails_and_says_how_slow() {
        let h = H::new()
            .nemesis(1000, "pause")
            .nemesis(2000, "resume")
            .call(2500, 1, "write", OpType::Info)
            .call(9000, 2, "read", OpType::Ok);
        let l = assess(h.0, Duration::from_secs(5));
        assert!(!l.ok);
        assert_eq!(l.final_recovery_s, Some(7.0));
        let reason = l.reason.unwrap_or_default();
        assert!(
            reason.contains("7 s after the final heal at 2 s (bound 5 s)"),
            "{reason}"
        );
        // No write was acknowledged after the heal.
        assert_eq!(l.windows[0].recovery_s, None);
    }

    #[test]
    fn availability_is_the_ok_share_of_completions_inside_each_window_and_in_calm() {
        let h = H::new()
            .call(100, 1, "write", OpType::Ok)
            .call(200, 1, "read", OpType::Ok)
            .call(300, 1, "write", OpType::Fail)
            .nemesis(1000, "start-partition")
            .call(1100, 1, "write", OpType::Ok)
            .call(1200, 1, "write", OpType::Info)
            .call(1300, 2, "read", OpType::Fail)
            .call(1400, 3, "cas", OpType::Info)
            .nemesis(2000, "stop-partition")
            .nemesis(3000, "bump-clock")
            .call(3100, 3, "read", OpType::Ok)
            .nemesis(4000, "reset-clock")
            .call(4100, 3, "write", OpType::Ok);
        let l = assess(h.0, Duration::from_secs(10));
        assert_eq!(l.windows.len(), 2);
        assert_eq!(l.windows[0].availability, Some(0.25));
        assert_eq!(l.windows[1].f, "bump-clock");
        assert_eq!(l.windows[1].availability, Some(1.0));
        // Calm: the three before the partition and the write after the clock reset.
        assert_eq!(l.calm_availability, Some(0.75));
        // The first acknowledged write after the partition's heal came 2.1 s later,
        // under the clock fault: recovery is measured to it regardless.
        assert_eq!(l.windows[0].recovery_s, Some(2.1));
        assert_eq!(l.windows[1].recovery_s, Some(0.1));
        assert_eq!(l.final_heal_s, Some(4.0));
        assert!(l.ok);
    }

    #[test]
    fn a_cas_answered_compare_failed_was_served_but_is_no_acknowledged_write() {
        let mut h = H::new()
            .nemesis(1000, "start-partition")
            .call(1100, 1, "cas", OpType::Fail)
            .call(1200, 1, "read", OpType::Fail)
            .nemesis(2000, "stop-partition")
            .call(2100, 1, "cas", OpType::Fail)
            .call(2600, 1, "write", OpType::Ok);
        h.0[2].error = Some(COMPARE_FAILED.into());
        h.0[7].error = Some(COMPARE_FAILED.into());
        let l = assess(h.0, Duration::from_secs(10));
        assert_eq!(l.windows[0].availability, Some(0.5));
        assert_eq!(l.calm_availability, Some(1.0));
        assert_eq!(l.windows[0].recovery_s, Some(0.6));
    }

    #[test]
    fn a_window_without_completions_has_no_availability() {
        let h = H::new()
            .nemesis(1000, "start-loss")
            .nemesis(1100, "stop-loss")
            .call(1200, 1, "write", OpType::Ok);
        let l = assess(h.0, Duration::from_secs(10));
        assert_eq!(l.windows[0].availability, None);
        assert_eq!(l.windows[0].recovery_s, Some(0.1));
    }

    #[test]
    fn a_fault_never_healed_is_a_liveness_failure() {
        let h = H::new()
            .nemesis(1000, "kill")
            .call(1200, 1, "write", OpType::Ok);
        let l = assess(h.0, Duration::from_secs(10));
        assert!(!l.ok);
        assert_eq!(l.windows[0].end_s, None);
        assert_eq!(l.reason.as_deref(), Some("kill at 1 s was never healed"));
    }

    #[test]
    fn a_start_that_hit_no_node_opens_no_window() {
        let mut h = H::new()
            .call(100, 1, "write", OpType::Ok)
            .nemesis(1000, "start-partition");
        h.0[2].value = serde_json::json!({"grudge": {}, "nodes": [], "one_way": false});
        let h = h.call(1200, 1, "write", OpType::Ok);
        let l = assess(h.0, Duration::from_secs(10));
        assert!(l.ok, "{:?}", l.reason);
        assert!(l.windows.is_empty());
    }

    #[test]
    fn failed_starts_open_no_window_and_failed_heals_close_none() {
        let mut h = H::new().nemesis(1000, "start-partition");
        h.0[0].error = Some("nft: no such table".into());
        let mut h = h.nemesis(2000, "kill").nemesis(3000, "start");
        h.0[2].error = Some("cannot start n1".into());
        let l = assess(h.0, Duration::from_secs(10));
        assert_eq!(l.windows.len(), 1);
        assert_eq!(l.windows[0].f, "kill");
        assert!(!l.ok);
    }

    #[test]
    fn without_faults_there_is_nothing_to_judge() {
        let h = H::new().call(100, 1, "write", OpType::Fail);
        let l = assess(h.0, Duration::from_secs(10));
        assert!(l.ok);
        assert_eq!(l.final_heal_s, None);
        assert_eq!(l.final_recovery_s, None);
        assert_eq!(l.calm_availability, Some(0.0));
        assert_eq!(l.reason, None);
    }

    #[test]
    fn a_run_that_stopped_asking_right_after_the_final_heal_is_not_measured() {
        let h = H::new()
            .nemesis(1000, "start-partition")
            .nemesis(2000, "stop-partition")
            .call(2300, 1, "write", OpType::Info);
        let l = assess(h.0, Duration::from_secs(10));
        assert!(l.ok);
        assert_eq!(l.final_recovery_s, None);
        let reason = l.reason.unwrap_or_default();
        assert!(reason.starts_with("not measured"), "{reason}");
    }
}
