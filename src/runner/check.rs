//! Checking a run's history with its workload's model: the one place both `faultline run`
//! and `faultline report --recheck` decide a run's verdict.

use crate::checker::model::{ModelKind, ModelSpec};
use crate::checker::Results;
use crate::checker::{check, CheckOptions, Verdict};
use crate::history::{self, Format};
use crate::spec::Plan;
use anyhow::{anyhow, Result};
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
