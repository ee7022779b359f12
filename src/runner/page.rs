//! End of a run: check the history with the workload's model, write `results.json`, then
//! hand over to [`crate::report`] for the run page, plots and timeline, and rebuild the
//! reports index of the store.

use super::RunSummary;
use crate::checker::liveness::{Liveness, Window};
use crate::checker::Verdict;
use crate::spec::Plan;
use crate::store;
use anyhow::Result;
use std::path::Path;

/// Why a run whose schedule started faults tested none of them: every start hit nobody
/// (no leader to isolate, nothing running to pause) or failed. Such a run may not pass:
/// the history is only as good as the faults it was recorded under.
pub fn faults_did_not_land(t: &crate::nemesis::FaultTally) -> Option<String> {
    if t.planned == 0 || t.landed > 0 {
        return None;
    }
    let first = t
        .missed
        .first()
        .map(|m| format!("; first: {} at {} s: {}", m.f, m.at_s, m.why))
        .unwrap_or_default();
    Some(format!(
        "no fault landed: the nemesis started {} fault(s) and none hit a node{first}",
        t.planned
    ))
}

/// A run whose faults all missed tested nothing the nemesis promised: never valid. Its
/// reason joins the checker's and the stats rule's. The one place `faultline run` and
/// `faultline report --recheck` apply it.
pub fn apply_faults_rule(checked: &mut super::check::Checked, faults: &crate::nemesis::FaultTally) {
    let Some(why) = faults_did_not_land(faults) else {
        return;
    };
    if checked.verdict == Verdict::Valid {
        checked.verdict = Verdict::Unknown;
    }
    if checked.verdict == Verdict::Unknown {
        checked.reason = Some(match checked.reason.take() {
            Some(r) => format!("{r}; {why}"),
            None => why,
        });
    }
}

/// The log's line about agreement.
pub fn agreement_line(a: &crate::checker::agreement::Agreement) -> String {
    match (&a.conflict, &a.reason) {
        (Some(c), _) => format!(
            "agreement: invalid: at index {} {} committed {:?} and {} committed {:?} ({} conflicting position(s))",
            c.index, c.a.node, c.a.entry, c.b.node, c.b.entry, c.positions
        ),
        (None, Some(r)) => format!("agreement: {}: {r}", a.verdict),
        (None, None) => format!(
            "agreement: {}: {} position(s) compared across {} node(s)",
            a.verdict,
            a.positions_compared,
            a.nodes.len()
        ),
    }
}

/// results.json's `wire` and, when it is null, why.
fn wire_of(
    run_dir: &Path,
    summary: &RunSummary,
    windows: &[Window],
) -> (serde_json::Value, Option<String>) {
    if let Some(why) = &summary.wire_unavailable {
        return (serde_json::Value::Null, Some(why.clone()));
    }
    match super::wire::summarize(
        &run_dir.join("wire.jsonl"),
        &run_dir.join("history.jsonl"),
        windows,
    ) {
        Ok(w) => {
            let f = |k: &str| w[k].as_f64().map_or("-".into(), |x| format!("{x:.1}"));
            tracing::info!(
                "wire: {} peer packets and {} peer bytes per acknowledged write, {} packets per read",
                f("messages_per_write"),
                f("bytes_per_write"),
                f("messages_per_read")
            );
            (w, None)
        }
        Err(e) => {
            tracing::info!("wire: cannot summarize: {e:#}");
            (serde_json::Value::Null, Some(format!("{e:#}")))
        }
    }
}

/// Check `history.jsonl`, write results.json and the report; returns the verdict and,
/// unless the run was interrupted, its liveness.
///
/// The report is for people: if drawing it fails, the run's verdict still stands (and
/// `faultline report RUN_DIR` can draw it later), so that failure is logged, not returned.
pub fn check_and_report(
    plan: &Plan,
    run_dir: &Path,
    summary: &RunSummary,
) -> Result<(Verdict, Option<Liveness>)> {
    let history = run_dir.join("history.jsonl");
    let mut checked = super::check::check_history(plan, &history)?;
    apply_faults_rule(&mut checked, &summary.faults);
    let agreement = super::check::agreement_of(plan, run_dir)?;
    if let Some(a) = &agreement {
        tracing::info!("{}", agreement_line(a));
        super::check::apply_agreement(&mut checked, a);
    }
    let verdict = checked.verdict;
    let shortfall = summary.final_reads.as_ref().and_then(|f| f.shortfall());
    let mut line = format!("checker: {verdict}");
    if let Some(reason) = &checked.reason {
        line.push_str(&format!(": {reason}"));
    }
    // A valid verdict over keys never read back is weaker than it looks: say so.
    if let Some(s) = &shortfall {
        line.push_str(&format!(" ({s})"));
    }
    tracing::info!("{line}");
    let mut results = crate::report::results_json(
        plan,
        serde_json::to_value(summary)?,
        verdict,
        checked.reason.as_deref(),
        checked.check,
        &checked.stats,
    );
    if let (Some(f), Some(obj)) = (&summary.final_reads, results.as_object_mut()) {
        obj.insert("final_reads".into(), serde_json::to_value(f)?);
    }
    if let Some(obj) = results.as_object_mut() {
        obj.insert("agreement".into(), serde_json::to_value(&agreement)?);
        if let Some(set) = &checked.set {
            obj.insert("set".into(), serde_json::to_value(set)?);
        }
        if let Some(a) = &checked.append {
            obj.insert("append".into(), serde_json::to_value(a)?);
        }
    }
    // Fault windows come from the history whether or not liveness is judged: the wire
    // figures are attributed to them.
    let assessed = super::check::liveness_of(plan, &history)?;
    if let Some(obj) = results.as_object_mut() {
        let (wire, why) = wire_of(run_dir, summary, &assessed.windows);
        obj.insert("wire".into(), wire);
        if let Some(why) = why {
            obj.insert("wire_reason".into(), why.into());
        }
        let main_end_ns = (summary.main_phase_s * 1e9) as u64;
        match super::perf::summarize(&history, &assessed.windows, main_end_ns, summary.rtt_ms) {
            Ok(p) => {
                obj.insert("perf".into(), p);
            }
            Err(e) => tracing::info!("perf: cannot summarize: {e:#}"),
        }
    }
    // An interrupted run neither restarted its killed nodes nor read back: it had no
    // chance to recover, so its liveness is not judged.
    let liveness = if summary.interrupted {
        None
    } else {
        tracing::info!("{}", super::check::liveness_line(&assessed));
        Some(assessed)
    };
    if let (Some(l), Some(obj)) = (&liveness, results.as_object_mut()) {
        obj.insert("liveness".into(), serde_json::to_value(l)?);
    }
    store::write_atomic(
        &run_dir.join("results.json"),
        serde_json::to_vec_pretty(&results)?.as_slice(),
    )?;
    match crate::report::render_run(run_dir) {
        Ok(r) => tracing::info!("report: {}", r.index_html.display()),
        Err(e) => tracing::info!(
            "report: cannot render (the verdict stands; retry with `faultline report {}`): {e:#}",
            run_dir.display()
        ),
    }
    if let Err(e) = crate::report::index::write(&plan.store) {
        tracing::info!("report: cannot update the reports index: {e:#}");
    }
    Ok((verdict, liveness))
}
