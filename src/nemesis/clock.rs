//! Clock faults on a node's view of time ([`crate::hosts::clock`]), never this machine's
//! clock: bump (a fixed offset per node) and strobe (flipping between +0 and an offset),
//! both undone by reset. The strobe's task belongs to the in-force entry: it stops when
//! the clocks are reset or the entry is dropped, never outliving the run.

use super::{nodes_list, Failed, Landed, Nemesis};
use anyhow::Result;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::task::JoinHandle;

/// Nodes whose clocks may be off, and the strobe that keeps flipping them.
#[derive(Debug, Default)]
pub struct Skewed {
    pub nodes: BTreeSet<String>,
    strobe: Option<Strobe>,
}

impl Skewed {
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty() && self.strobe.is_none()
    }
}

/// The task flipping clocks; aborted when dropped.
#[derive(Debug)]
struct Strobe(Option<JoinHandle<()>>);

impl Strobe {
    /// Abort the task and wait for it, so none of its writes lands after this returns.
    async fn stop(mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Strobe {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

/// Set each node's offset: `offsets_ms` per node, `offset_ms` for the others.
pub async fn bump(
    n: &Nemesis,
    nodes: &[String],
    offsets_ms: &BTreeMap<String, i64>,
    offset_ms: i64,
) -> Result<Landed> {
    let clocks = n.clocks()?;
    let mut applied = BTreeMap::new();
    for node in nodes {
        let o = offsets_ms.get(node).copied().unwrap_or(offset_ms);
        n.in_force().await.clock.nodes.insert(node.clone());
        clocks.set(node, o).await?;
        applied.insert(node.clone(), o);
    }
    tracing::info!("nemesis: clock offsets (ms) {applied:?}");
    Ok(Landed::on(json!({ "nodes": nodes, "offsets_ms": applied })))
}

/// Flip `nodes` between +0 and `offset_ms` every `period_ms` until reset.
pub async fn strobe(
    n: &Nemesis,
    nodes: &[String],
    offset_ms: i64,
    period_ms: u64,
) -> Result<Landed> {
    let clocks = n.clocks()?.clone();
    let period = Duration::from_millis(period_ms);
    let strobed = nodes.to_vec();
    {
        let mut f = n.in_force().await;
        f.clock.nodes.extend(nodes.iter().cloned());
        // A second strobe replaces the first; dropping the old one stops it.
        f.clock.strobe = Some(Strobe(Some(tokio::spawn(async move {
            let mut on = false;
            loop {
                on = !on;
                for node in &strobed {
                    let _ = clocks.set(node, if on { offset_ms } else { 0 }).await;
                }
                tokio::time::sleep(period).await;
            }
        }))));
    }
    tracing::info!(
        "nemesis: strobing clocks of {} between +0 and {offset_ms} ms every {period_ms} ms",
        nodes_list(nodes)
    );
    Ok(Landed::on(json!({
        "nodes": nodes, "offset_ms": offset_ms, "period_ms": period_ms
    })))
}

/// Stop any strobe, then put every skewed clock back to +0.
pub async fn reset(n: &Nemesis) -> Result<Landed> {
    let (strobe, nodes) = {
        let mut f = n.in_force().await;
        let nodes: Vec<String> = f.clock.nodes.iter().cloned().collect();
        (f.clock.strobe.take(), nodes)
    };
    if let Some(s) = strobe {
        s.stop().await;
    }
    if let Some(clocks) = &n.clocks {
        let mut failed = Failed::default();
        for node in &nodes {
            if failed.keep(clocks.set(node, 0).await) {
                n.in_force().await.clock.nodes.remove(node);
            }
        }
        failed.into_result()?;
    } else {
        n.in_force().await.clock.nodes.clear();
    }
    tracing::info!("nemesis: clocks reset on {}", nodes_list(&nodes));
    Ok(Landed::on(json!({ "nodes": nodes })))
}
