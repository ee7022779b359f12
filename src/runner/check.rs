//! Checking a run's history with its workload's model: the one place both `faultline run`
//! and `faultline report --recheck` decide a run's verdict (linearizability composed with
//! agreement over the nodes' committed logs), and its liveness.

use crate::checker::agreement::{self, Agreement, Inspected};
use crate::checker::append::{self, AppendChecker, AppendOptions, AppendReport};
use crate::checker::liveness::{self, Liveness};
use crate::checker::model::{ModelKind, ModelSpec};
use crate::checker::set::{self, SetChecker, SetOptions, SetReport};
use crate::checker::stats::{OpStats, Required, Tally};
use crate::checker::Results;
use crate::checker::{check, CheckOptions, Verdict};
use crate::history::{self, Format};
use crate::spec::workload::{OpKind, StalePolicy};
use crate::spec::Plan;
use anyhow::{anyhow, Context, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// A run's verdict and what it is made of.
#[derive(Debug)]
pub struct Checked {
    /// The checkers' verdicts composed (worst wins) and with the stats rule's
    /// ([`OpStats::compose`]).
    pub verdict: Verdict,
    /// Why `verdict` is unknown.
    pub reason: Option<String>,
    /// The linearizability checker's JSON result (with a counterexample when invalid);
    /// null for a set workload without a model.
    pub check: Value,
    /// The set checker's report, for a set workload (results.json `set`).
    pub set: Option<SetReport>,
    /// The append checker's report, for an append workload (results.json `append`).
    pub append: Option<AppendReport>,
    /// Per-f counts of the main phase and the stats rule's verdict.
    pub stats: OpStats,
}

/// Check `history` (a run's history.jsonl) with the plan's workload model and, for a set
/// workload, the set checker; apply the stats rule to the ops of its main phase: every f
/// of the workload's mix with a weight above 0 must have succeeded at least once.
pub fn check_history(plan: &Plan, history: &Path) -> Result<Checked> {
    let required = plan
        .workload
        .mix
        .iter()
        .filter(|(_, w)| **w > 0)
        // An append workload's `write` is journaled as the read and cas that did it: an
        // append succeeded when a cas did.
        .map(|(f, _)| match f {
            OpKind::Write if plan.workload.append.is_some() => "cas".to_string(),
            f => f.as_str().to_string(),
        })
        .collect();
    // The final reads come after the time limit (client time starts at 0 with the
    // clients): they run after every fault healed, so their successes say nothing about
    // whether the main phase tested anything.
    let until_ns = u64::try_from(plan.time_limit.as_nanos()).unwrap_or(u64::MAX);
    let mut tally = Tally::new(Required::Fs(required), Some(until_ns));
    let mut set = plan.workload.set.as_ref().map(|s| {
        SetChecker::new(SetOptions {
            // The same boundary: the final phase's reads are the final read of the set.
            final_from_ns: until_ns,
            stale_invalid: s.stale == StalePolicy::Invalid,
        })
    });
    let mut appends = plan.workload.append.as_ref().map(|a| {
        AppendChecker::new(AppendOptions {
            final_from_ns: until_ns,
            stale_invalid: a.stale == StalePolicy::Invalid,
        })
    });
    // The set and append checkers' time: they run while the history streams by.
    let started = Instant::now();
    let mut feed = |op: &crate::history::Op| {
        tally.add(op);
        if let Some(s) = &mut set {
            s.add(op);
        }
        if let Some(a) = &mut appends {
            a.add(op);
        }
    };
    let linear = if plan.workload.model.is_empty() {
        for item in history::open(history, Format::Jsonl)? {
            let (_, op) = item?;
            feed(&op);
        }
        None
    } else {
        let kind: ModelKind = plan
            .workload
            .model
            .parse()
            .map_err(|e: String| anyhow!("{}: model: {e}", plan.workload_file.display()))?;
        let stream = history::open(history, Format::Jsonl)?.inspect(|item| {
            if let Ok((_, op)) = item {
                feed(op);
            }
        });
        Some(check(
            stream,
            history,
            &ModelSpec::new(kind),
            &CheckOptions::default(),
        )?)
    };
    let set = set.map(|s| {
        let mut r = s.finish();
        r.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        tracing::info!("{}", set::summary_line(&r));
        r
    });
    let appends = appends.map(|a| {
        let mut r = a.finish();
        r.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        tracing::info!("{}", append::summary_line(&r));
        r
    });
    let (mut verdict, mut reason) = match &linear {
        Some(r) => (r.verdict, r.reason.clone()),
        None => (Verdict::Valid, None),
    };
    let mut compose = |name: &str, v: Verdict, why: Option<&str>| {
        let before = verdict;
        verdict = verdict.worst(v);
        if v == verdict && verdict != Verdict::Valid {
            let why = format!("{name}: {}", why.unwrap_or("no reason given"));
            reason = Some(match reason.take() {
                Some(r) if before == verdict => format!("{r}; {why}"),
                _ => why,
            });
        }
    };
    if let Some(s) = &set {
        compose("set", s.verdict, s.reason.as_deref());
    }
    if let Some(a) = &appends {
        compose("append", a.verdict, a.reason.as_deref());
    }
    let stats = tally.finish();
    let (verdict, reason) = stats.compose(verdict, reason.as_deref());
    let check = match &linear {
        Some(report) => serde_json::to_value(&Results {
            checker: "linearizability",
            history: history.display().to_string(),
            format: Format::Jsonl.to_string(),
            report,
        })?,
        None => Value::Null,
    };
    Ok(Checked {
        verdict,
        reason,
        check,
        set,
        append: appends,
        stats,
    })
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

pub use crate::target::LOGS_DIR;

/// Longest `<node>.error` text carried into results.json.
const MAX_WHY_BYTES: usize = 2000;

/// The agreement oracle over the logs the run saved in [`LOGS_DIR`]; `None` when the
/// target declares no `inspect`. A node with neither file was not inspected (the run was
/// interrupted or failed before its end), which the verdict's reason says.
pub fn agreement_of(plan: &Plan, run_dir: &Path) -> Result<Option<Agreement>> {
    if plan.target.spec.inspect.is_none() {
        return Ok(None);
    }
    let dir = run_dir.join(LOGS_DIR);
    // No logs directory: the run ended (interrupted) before the nodes were inspected. As
    // with liveness, agreement is then not judged rather than unknown, so it does not turn
    // an interrupted run's verdict; a run that reached inspection writes a log or an
    // `.error` for every node.
    if !dir.is_dir() {
        return Ok(None);
    }
    let mut logs = BTreeMap::new();
    for node in &plan.nodes {
        let inspected = read_saved(&dir, node)?.unwrap_or_else(|| {
            Inspected::Missing(
                "not inspected: the run ended before its nodes' logs were read".into(),
            )
        });
        logs.insert(node.clone(), inspected);
    }
    // Logs read while the run went on (every copy, twins included, just before the twins
    // of a scenario stopped): a twin's fork, and a node's entries a later leader
    // overwrote, are compared though the end of the run no longer holds them.
    for (label, inspected) in snapshot_logs(&dir)? {
        logs.insert(label, inspected);
    }
    Ok(Some(agreement::check(&logs)))
}

/// Every log saved in a subdirectory of `dir` (one per snapshot), labelled
/// `<copy> (<snapshot>)`, in name order.
fn snapshot_logs(dir: &Path) -> Result<Vec<(String, Inspected)>> {
    let mut out = Vec::new();
    let mut subs = list_dir(dir)?;
    subs.retain(|p| p.is_dir());
    for sub in subs {
        let snap = sub
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        for file in list_dir(&sub)? {
            if file
                .extension()
                .is_none_or(|e| e != "jsonl" && e != "error")
            {
                continue;
            }
            let Some(copy) = file.file_stem().map(|s| s.to_string_lossy().to_string()) else {
                continue;
            };
            let Some(inspected) = read_saved(&sub, &copy)? else {
                continue;
            };
            let label = format!("{copy} ({snap})");
            out.push((label, inspected));
        }
    }
    Ok(out)
}

/// What [`crate::target::Cluster::save_logs`] wrote for `copy` in `dir`: its log, why
/// it has none, or `None` when there is neither file.
fn read_saved(dir: &Path, copy: &str) -> Result<Option<Inspected>> {
    let log = dir.join(format!("{copy}.jsonl"));
    let error = dir.join(format!("{copy}.error"));
    Ok(Some(if log.is_file() {
        let text = std::fs::read_to_string(&log)
            .with_context(|| format!("cannot read {}", log.display()))?;
        match agreement::parse_log(&text) {
            Ok(entries) => Inspected::Log(entries),
            Err(e) => Inspected::Missing(format!("{}: {e}", log.display())),
        }
    } else if error.is_file() {
        let text =
            std::fs::read(&error).with_context(|| format!("cannot read {}", error.display()))?;
        let text = String::from_utf8_lossy(&text[..text.len().min(MAX_WHY_BYTES)]);
        Inspected::Missing(text.trim().to_string())
    } else {
        return Ok(None);
    }))
}

/// The entries of `dir`, sorted by name.
fn list_dir(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut v = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()
        .with_context(|| format!("cannot list {}", dir.display()))?;
    v.sort();
    Ok(v)
}

/// The run's verdict is the worst of linearizability's and agreement's; agreement's
/// reason joins the run's when it is what makes the run unknown or invalid. The one place
/// `faultline run` and `faultline report --recheck` compose them.
pub fn apply_agreement(checked: &mut Checked, a: &Agreement) {
    let before = checked.verdict;
    checked.verdict = before.worst(a.verdict);
    let why = match (&a.conflict, &a.reason) {
        (Some(c), _) => Some(format!(
            "agreement: {} and {} committed different entries at index {}",
            c.a.node, c.b.node, c.index
        )),
        (None, Some(r)) if a.verdict == Verdict::Unknown => Some(r.clone()),
        _ => None,
    };
    if let Some(why) = why.filter(|_| a.verdict == checked.verdict) {
        checked.reason = Some(match checked.reason.take() {
            Some(r) if before == checked.verdict => format!("{r}; {why}"),
            _ => why,
        });
    }
}
