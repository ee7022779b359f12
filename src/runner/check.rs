//! Checking a run's history with its workload's model: the one place both `faultline run`
//! and `faultline report --recheck` decide a run's verdict, and its liveness.

use crate::checker::liveness::{self, Liveness};
use crate::checker::model::{ModelKind, ModelSpec};
use crate::checker::Results;
use crate::checker::{check, CheckOptions, Verdict};
use crate::history::{self, Format};
use crate::spec::Plan;
use anyhow::{anyhow, Context, Result};
use serde_json::Value;
use std::path::Path;

/// Check `history` (a run's history.jsonl) with the plan's workload model; returns the
/// verdict and the checker's JSON result (with a counterexample when invalid).
pub fn check_history(plan: &Plan, history: &Path) -> Result<(Verdict, Value)> {
    let kind: ModelKind = plan
        .workload
        .model
        .parse()
        .map_err(|e: String| anyhow!("{}: model: {e}", plan.workload_file.display()))?;
    let spec = ModelSpec::new(kind);
    let stream = history::open(history, Format::Jsonl)?;
    let report = check(stream, history, &spec, &CheckOptions::default())?;
    let results = Results {
        checker: "linearizability",
        history: history.display().to_string(),
        format: Format::Jsonl.to_string(),
        report: &report,
    };
    Ok((report.verdict, serde_json::to_value(&results)?))
}

/// Whether the cluster served again after the faults in `history` were healed, within the
/// workload's `recovery` bound. Streams the history.
pub fn liveness_of(plan: &Plan, history: &Path) -> Result<Liveness> {
    let stream = history::open(history, Format::Jsonl)?;
    let mut error = None;
    let ops = stream.map_while(|r| match r {
        Ok((_, op)) => Some(op),
        Err(e) => {
            error = Some(e);
            None
        }
    });
    let l = liveness::assess(ops, plan.workload.recovery);
    match error {
        Some(e) => Err(e).context("liveness"),
        None => Ok(l),
    }
}

/// The log's and the console's line about liveness.
pub fn liveness_line(l: &Liveness) -> String {
    match (&l.reason, l.ok, l.final_recovery_s) {
        (Some(r), false, _) => format!("liveness: FAILED: {r}"),
        (Some(r), true, _) => format!("liveness: ok ({r})"),
        (None, _, Some(s)) => format!(
            "liveness: ok (served {s} s after the final heal; bound {} s)",
            l.bound_s
        ),
        (None, _, None) => "liveness: ok (no fault to recover from)".to_string(),
    }
}
