//! End of a run: check the history with the workload's model, write `results.json`, then
//! hand over to [`crate::report`] for the run page, plots and timeline, and rebuild the
//! reports index of the store.

use super::RunSummary;
use crate::checker::Verdict;
use crate::spec::Plan;
use crate::store;
use anyhow::Result;
use std::path::Path;

/// Check `history.jsonl`, write results.json and the report; returns the verdict.
///
/// The report is for people: if drawing it fails, the run's verdict still stands (and
/// `faultline report RUN_DIR` can draw it later), so that failure is logged, not returned.
pub fn check_and_report(plan: &Plan, run_dir: &Path, summary: &RunSummary) -> Result<Verdict> {
    let history = run_dir.join("history.jsonl");
    let checked = super::check::check_history(plan, &history)?;
    let verdict = checked.verdict;
    match &checked.reason {
        Some(reason) => crate::log::line(&format!("checker: {verdict}: {reason}")),
        None => crate::log::line(&format!("checker: {verdict}")),
    }
    let results = crate::report::results_json(
        plan,
        serde_json::to_value(summary)?,
        verdict,
        checked.reason.as_deref(),
        checked.check,
        &checked.stats,
    );
    store::write_atomic(
        &run_dir.join("results.json"),
        serde_json::to_vec_pretty(&results)?.as_slice(),
    )?;
    match crate::report::render_run(run_dir) {
        Ok(r) => crate::log::line(&format!("report: {}", r.index_html.display())),
        Err(e) => crate::log::line(&format!(
            "report: cannot render (the verdict stands; retry with `faultline report {}`): {e:#}",
            run_dir.display()
        )),
    }
    if let Err(e) = crate::report::index::write(&plan.store) {
        crate::log::line(&format!("report: cannot update the reports index: {e:#}"));
    }
    Ok(verdict)
}
