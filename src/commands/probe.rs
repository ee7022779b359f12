//! `faultline probe-target`: before a first real run, start a target's cluster, send one
//! write, read, cas (one that must succeed, one that must fail its comparison) and
//! `leaders` through its client, print what each answered, and tear everything down.
//!
//! The cluster's lifecycle is the runner's ([`crate::runner::with_cluster`]); this file
//! only chooses the ops and judges the answers. Exit 0 when write, read and both cas
//! behave as a linearizable register must, 1 when one does not, 3 when the cluster could
//! not be started (or bad input).

use super::cli::ProbeTargetArgs;
use super::run::hosts_choice;
use crate::history::{Invocation, OpType};
use crate::spec::workload::OpKind;
use crate::spec::{HostsChoice, Overrides, Plan, SpecRoots};
use crate::target::client::Client;
use crate::target::Cluster;
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::instrument::WithSubscriber;

/// A key no workload uses, so a reader of the probe's table knows where it came from.
const PROBE_KEY: &str = "faultline-probe";
/// Error text of a cas whose comparison failed, as clients report it.
const COMPARE_FAILED: &str = "compare-failed";

/// One line of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub op: &'static str,
    /// What was asked, e.g. `1 -> 2`.
    pub request: String,
    pub outcome: OpType,
    /// The value read or named, or the error.
    pub detail: String,
    pub latency: Duration,
    /// `None`: it behaved as it must; else what is wrong.
    pub problem: Option<String>,
    /// A problem here does not fail the probe (leaders: only leader-aimed faults need it).
    pub optional: bool,
}

pub fn run(args: ProbeTargetArgs) -> ExitCode {
    match probe_command(args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(3)
        }
    }
}

fn probe_command(args: ProbeTargetArgs) -> Result<u8> {
    let (auto, warning) = match args.where_.hosts {
        Some(_) => (HostsChoice::Loopback, None),
        None => crate::runner::auto_hosts(),
    };
    let overrides = Overrides {
        target: args.target.clone(),
        // No faults: the probe asks whether the client works, not whether it survives.
        nemesis: Some("none".into()),
        nodes: args.nodes,
        target_args: args.target_args.clone(),
        hosts: hosts_choice(args.where_.hosts, args.where_.inventory.as_deref())
            .map_err(anyhow::Error::msg)?,
        subnet: args.where_.subnet.clone(),
        ..Overrides::default()
    };
    let plan = Plan::resolve(&SpecRoots::default_roots(), &overrides, auto)?;
    if let (Some(w), HostsChoice::Loopback) = (&warning, &plan.hosts) {
        eprintln!("note: {w}");
    }
    // Node and adapter logs go here; kept only when something did not work.
    let dir = tempfile::Builder::new()
        .prefix("faultline-probe-")
        .tempdir()
        .context("cannot create a directory for the probe's logs")?;
    let log = crate::log::RunLog::create(&dir.path().join("faultline.log"), false)
        .context("cannot create the probe's log")?;
    // The probe's own thread logs there (block_on polls its future here); spawned tasks
    // carry the subscriber along.
    let logging = tracing::dispatcher::set_default(&log.dispatch());
    tracing::info!(
        "probing target {} ({} nodes, {})",
        plan.target.spec.name,
        plan.nodes.len(),
        plan.target.file.display()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let timeout = plan.workload.op_timeout;
    let declared_leaders = plan.target.spec.client.names_leaders();
    let target_file = plan.target.file.clone();
    let result = rt.block_on(async {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let signals = tokio::spawn(
            async move {
                crate::runner::stop_signal().await;
                tracing::info!("interrupted: stopping and cleaning up");
                let _ = stop_tx.send(true);
            }
            .with_current_subscriber(),
        );
        let r =
            crate::runner::with_cluster(Arc::new(plan), dir.path(), stop_rx, |c| probe(c, timeout))
                .await;
        signals.abort();
        r
    });
    drop(logging);
    let rows = match result {
        Ok(rows) => rows,
        Err(e) => {
            let kept = dir.keep();
            eprintln!("error: {e:#}");
            eprintln!("logs kept in {}", kept.display());
            return Ok(3);
        }
    };
    print!("{}", table(&rows));
    // Planning trusts target.yaml, not this probe: say when the two disagree.
    let names_leaders = rows
        .iter()
        .any(|r| r.op == "leaders" && r.problem.is_none());
    if names_leaders && !declared_leaders {
        println!(
            "the adapter names leaders: declare `leaders: true` under `client:` in {} so that nemeses aimed at leaders can be planned",
            target_file.display()
        );
    } else if !names_leaders && declared_leaders {
        println!(
            "{} declares that the client names leaders, but it named none here: a run with a nemesis aimed at leaders will be refused",
            target_file.display()
        );
    }
    let broken = rows.iter().any(|r| r.problem.is_some() && !r.optional);
    if broken {
        let kept = dir.keep();
        println!(
            "the client does not work yet: see the last column; node and adapter logs (adapter-stderr.log) are in {}/nodes/",
            kept.display()
        );
        Ok(1)
    } else {
        println!(
            "the client works: next, `faultline run --target {} --nemesis none`, then with faults",
            args.target
                .as_deref()
                .unwrap_or(crate::spec::plan::DEFAULT_TARGET)
        );
        Ok(0)
    }
}

/// Send each op once through one client of the first node.
pub async fn probe(cluster: Arc<Cluster>, timeout: Duration) -> Result<Vec<Row>> {
    let node = cluster.nodes().first().cloned().unwrap_or_default();
    let mut client = cluster.client(&node)?;
    let mut rows = Vec::new();
    let steps = [
        ("write", OpKind::Write, json!(1)),
        ("read", OpKind::Read, Value::Null),
        ("cas", OpKind::Cas, json!([1, 2])),
        ("cas", OpKind::Cas, json!([1, 3])),
    ];
    for (i, (name, f, value)) in steps.into_iter().enumerate() {
        let inv = Invocation {
            f,
            key: PROBE_KEY.to_string(),
            value: value.clone(),
        };
        let t0 = Instant::now();
        let c = client.invoke(&inv, timeout).await;
        let latency = t0.elapsed();
        let (request, problem) = judge(i, &inv, c.kind, &c.value, c.error.as_deref());
        rows.push(Row {
            op: name,
            request,
            outcome: c.kind,
            detail: match (&c.error, f) {
                (Some(e), _) => e.clone(),
                (None, OpKind::Read) => c.value.to_string(),
                (None, _) => String::new(),
            },
            latency,
            problem,
            optional: false,
        });
        if c.kind == OpType::Info {
            // Its answer may still be on the way: the next op gets a fresh client.
            let old = std::mem::replace(&mut client, cluster.client(&node)?);
            old.close().await;
        }
    }
    let t0 = Instant::now();
    let leaders = match &mut client {
        Client::Stdio(c) => c.name_leaders(timeout).await,
        other => Ok(other.leaders(timeout).await),
    };
    let latency = t0.elapsed();
    client.close().await;
    rows.push(match leaders {
        Ok(l) if !l.is_empty() => Row {
            op: "leaders",
            request: String::new(),
            outcome: OpType::Ok,
            detail: l.join(","),
            latency,
            problem: None,
            optional: true,
        },
        Ok(_) => Row {
            op: "leaders",
            request: String::new(),
            outcome: OpType::Ok,
            detail: "[]".into(),
            latency,
            problem: Some("no node named as leader: leader-aimed faults would hit nobody".into()),
            optional: true,
        },
        Err(e) => Row {
            op: "leaders",
            request: String::new(),
            outcome: OpType::Fail,
            detail: e,
            latency,
            problem: Some("nemeses aimed at leaders will be refused".into()),
            optional: true,
        },
    });
    Ok(rows)
}

/// What step `i` asked, and what is wrong with its answer if anything. The steps run in
/// order on a fresh key: write 1, read (1), cas 1→2 (ok), cas 1→3 (compare-failed).
fn judge(
    i: usize,
    inv: &Invocation,
    kind: OpType,
    value: &Value,
    error: Option<&str>,
) -> (String, Option<String>) {
    let request = match inv.f {
        OpKind::Read => String::new(),
        OpKind::Write => format!("{} := {}", inv.key, inv.value),
        OpKind::Cas => format!("{} : {} -> {}", inv.key, inv.value[0], inv.value[1]),
    };
    let problem = match (i, kind) {
        (_, OpType::Info) => Some("no definite answer (a timeout or a crashed adapter?)".into()),
        (3, OpType::Fail) if error == Some(COMPARE_FAILED) => None,
        (3, OpType::Fail) => Some(format!(
            "a cas whose comparison fails must answer fail with error `{COMPARE_FAILED}`"
        )),
        (3, _) => Some("the value was 2, not 1: this cas must fail (does cas compare?)".into()),
        (_, OpType::Fail) => Some("failed".into()),
        (1, OpType::Ok) if *value != json!(1) => {
            Some(format!("read {value} right after writing 1"))
        }
        _ => None,
    };
    (request, problem)
}

/// The table as printed: one row per op, aligned columns.
pub fn table(rows: &[Row]) -> String {
    let mut lines = vec![[
        "op".to_string(),
        "request".into(),
        "answer".into(),
        "value / error".into(),
        "latency".into(),
        "works?".into(),
    ]];
    for r in rows {
        let mut detail = r.detail.clone();
        if detail.len() > 60 {
            detail.truncate(detail.floor_char_boundary(60));
            detail.push('…');
        }
        lines.push([
            r.op.to_string(),
            r.request.clone(),
            r.outcome.to_string(),
            detail,
            format!("{:.1} ms", r.latency.as_secs_f64() * 1000.0),
            match (&r.problem, r.optional) {
                (None, _) => "yes".into(),
                (Some(p), false) => format!("NO: {p}"),
                (Some(p), true) => format!("no (optional): {p}"),
            },
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|c| {
            lines
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for l in &lines {
        let cells: Vec<String> = l
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(f: OpKind, value: Value) -> Invocation {
        Invocation {
            f,
            key: PROBE_KEY.into(),
            value,
        }
    }

    #[test]
    fn a_cas_must_fail_its_comparison_with_compare_failed() {
        let cas = inv(OpKind::Cas, json!([1, 3]));
        let ok = judge(3, &cas, OpType::Fail, &cas.value, Some(COMPARE_FAILED));
        assert_eq!(ok.1, None);
        assert_eq!(ok.0, "faultline-probe : 1 -> 3");
        let wrong = judge(3, &cas, OpType::Ok, &cas.value, None);
        assert!(wrong.1.unwrap().contains("does cas compare"));
        let other = judge(3, &cas, OpType::Fail, &cas.value, Some("nope"));
        assert!(other.1.unwrap().contains(COMPARE_FAILED));
    }

    #[test]
    fn a_read_must_see_the_write_before_it() {
        let read = inv(OpKind::Read, Value::Null);
        assert_eq!(judge(1, &read, OpType::Ok, &json!(1), None).1, None);
        assert!(judge(1, &read, OpType::Ok, &Value::Null, None)
            .1
            .unwrap()
            .contains("read null"));
        assert!(judge(1, &read, OpType::Info, &Value::Null, None)
            .1
            .is_some());
    }

    #[test]
    fn the_table_aligns_its_columns_and_says_what_is_wrong() {
        let rows = vec![
            Row {
                op: "write",
                request: "k := 1".into(),
                outcome: OpType::Ok,
                detail: String::new(),
                latency: Duration::from_micros(1500),
                problem: None,
                optional: false,
            },
            Row {
                op: "leaders",
                request: String::new(),
                outcome: OpType::Fail,
                detail: "x".repeat(100),
                latency: Duration::from_millis(2),
                problem: Some("refused".into()),
                optional: true,
            },
        ];
        let t = table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[1].starts_with("write    k := 1   ok"), "{t}");
        assert!(
            lines[1].contains("1.5 ms") && lines[1].ends_with("yes"),
            "{t}"
        );
        assert!(lines[2].contains("no (optional): refused"), "{t}");
        assert!(lines[2].contains('…'), "long details are cut: {t}");
        let col = lines[0].find("answer").unwrap();
        assert_eq!(&lines[2][col..col + 4], "fail", "{t}");
    }
}
