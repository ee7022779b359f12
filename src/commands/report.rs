//! The `faultline report` and `faultline serve` subcommands.
//!
//! `report RUN_DIR [--recheck]` re-renders a run from its files; with `--recheck` it first
//! checks `history.jsonl` again with the run's plan, through the same function the runner
//! uses ([`crate::runner::check::check_history`]), and rewrites `results.json`. The exit
//! code is `faultline run`'s ([`crate::runner::verdict_exit_code`]): the verdict's (0 valid,
//! 1 invalid, 2 unknown), 4 for a valid run whose liveness failed, 3 on error.

use super::cli::{ReportArgs, ServeArgs};
use crate::checker::Verdict;
use crate::history::{OpType, Process};
use crate::report::run::{read_results, RunData};
use crate::spec::Plan;
use crate::store;
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::path::Path;
use std::process::ExitCode;

/// `faultline report`.
pub fn report(args: &ReportArgs) -> ExitCode {
    match report_run(&args.run_dir, args.recheck) {
        Ok(judged) => ExitCode::from(crate::runner::verdict_exit_code(
            judged.verdict,
            judged.liveness_failed.is_some(),
        )),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(3)
        }
    }
}

/// What a report found of a run: what its exit code is made of.
#[derive(Debug)]
pub struct Judged {
    pub verdict: Verdict,
    /// results.json `liveness.reason` when `liveness.ok` is false.
    pub liveness_failed: Option<String>,
}

/// Re-render (and optionally re-check) the run in `dir`; returns its verdict and liveness.
pub fn report_run(dir: &Path, recheck: bool) -> Result<Judged> {
    let results = if recheck {
        Some(recheck_run(dir)?)
    } else {
        None
    };
    let run = RunData::load(dir, results)?;
    let rendered = crate::report::render(&run)?;
    if let Err(e) = crate::report::update_store_index(dir) {
        eprintln!("warning: cannot update the reports index: {e:#}");
    }
    let liveness_failed = liveness_failure(&run.results);
    // As `faultline run` does: the reason on stderr, the verdict line marked.
    if let Some(why) = &liveness_failed {
        eprintln!("liveness failed: {why}");
    }
    println!(
        "{}{}: {} ({} calls; timeline: {})",
        rendered.verdict,
        if liveness_failed.is_some() {
            ", liveness failed"
        } else {
            ""
        },
        rendered.index_html.display(),
        rendered.calls,
        rendered.timeline_html.display()
    );
    Ok(Judged {
        verdict: rendered.verdict,
        liveness_failed,
    })
}

/// Why results.json says liveness failed; `None` when it passed or was not judged (an
/// interrupted run, or one written before liveness was checked).
fn liveness_failure(results: &Value) -> Option<String> {
    let l = results.get("liveness")?;
    (l.get("ok") == Some(&Value::Bool(false))).then(|| {
        l.get("reason")
            .and_then(Value::as_str)
            .unwrap_or("the cluster did not serve again after the final heal")
            .to_string()
    })
}

/// Check the run's history again and rewrite its results.json; returns the new results.
fn recheck_run(dir: &Path) -> Result<Value> {
    let plan_path = dir.join("plan.yaml");
    let text = std::fs::read_to_string(&plan_path).with_context(|| {
        format!(
            "cannot read {} (--recheck needs the run's plan)",
            plan_path.display()
        )
    })?;
    let plan: Plan = crate::spec::parse_yaml(&plan_path, &text)?;
    let history = dir.join("history.jsonl");
    let mut checked = crate::runner::check::check_history(&plan, &history)?;
    // From the logs the run saved: the nodes are long gone.
    let agreement = crate::runner::check::agreement_of(&plan, dir)?;
    let results = match read_results(dir)? {
        Some(mut r) => {
            // The faults a run started are facts of the run, not of its history: kept in
            // results.json, and judged again with the rest.
            if let Some(faults) = r
                .pointer("/run/faults")
                .and_then(|f| serde_json::from_value(f.clone()).ok())
            {
                crate::runner::apply_faults_rule(&mut checked, &faults);
            }
            if let Some(a) = &agreement {
                crate::runner::check::apply_agreement(&mut checked, a);
            }
            r["agreement"] = serde_json::to_value(&agreement)?;
            r["set"] = serde_json::to_value(&checked.set)?;
            r["append"] = serde_json::to_value(&checked.append)?;
            r["verdict"] = json!(checked.verdict);
            r["reason"] = json!(checked.reason);
            r["stats"] = serde_json::to_value(&checked.stats)?;
            r["check"] = checked.check;
            // An interrupted run had no chance to recover: its liveness is not judged.
            if r.pointer("/run/interrupted") != Some(&Value::Bool(true)) {
                let l = crate::runner::check::liveness_of(&plan, &history)?;
                r["liveness"] = serde_json::to_value(l)?;
            }
            r
        }
        None => {
            if let Some(a) = &agreement {
                crate::runner::check::apply_agreement(&mut checked, a);
            }
            let summary = summary_from_history(&history)?;
            let mut r = crate::report::results_json(
                &plan,
                summary,
                checked.verdict,
                checked.reason.as_deref(),
                checked.check,
                &checked.stats,
            );
            r["agreement"] = serde_json::to_value(&agreement)?;
            r["set"] = serde_json::to_value(&checked.set)?;
            r["append"] = serde_json::to_value(&checked.append)?;
            r
        }
    };
    store::write_atomic(
        &dir.join("results.json"),
        serde_json::to_vec_pretty(&results)?.as_slice(),
    )?;
    Ok(results)
}

/// The run summary of a run that never wrote results.json, counted from its history.
/// Whether it was interrupted is not known from the history alone (`null`).
fn summary_from_history(history: &Path) -> Result<Value> {
    let ops = crate::report::run::read_ops(history)?;
    let mut n = [0u64; 4];
    for op in ops
        .iter()
        .filter(|o| matches!(o.process, Process::Client(_)))
    {
        n[match op.kind {
            OpType::Invoke => 0,
            OpType::Ok => 1,
            OpType::Fail => 2,
            OpType::Info => 3,
        }] += 1;
    }
    let end_ns = ops.iter().map(|o| o.time_ns).max().unwrap_or(0);
    Ok(json!({
        "ops": n[0], "ok": n[1], "fail": n[2], "info": n[3],
        "elapsed_s": end_ns as f64 / 1e9,
        "interrupted": Value::Null,
    }))
}

/// `faultline serve`.
pub fn serve(args: &ServeArgs) -> ExitCode {
    match crate::report::serve::run_until_interrupted(&args.dir, &args.bind) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(3)
        }
    }
}
