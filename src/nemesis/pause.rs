//! The pause fault: SIGSTOP to a node's process group; its inverse, resume, is SIGCONT.
//! Both are idempotent (stopping a stopped group or continuing a running one is a no-op),
//! so a resume may be repeated until it succeeds.

use super::{nodes_list, Failed, Landed, Nemesis};
use anyhow::Result;
use nix::sys::signal::Signal;
use serde_json::json;

/// Freeze `nodes` (those running; a killed node has nothing to freeze).
pub async fn pause(n: &Nemesis, nodes: &[String]) -> Result<Landed> {
    let mut paused = Vec::new();
    for node in nodes {
        if !n.cluster.running(node).await {
            continue;
        }
        n.in_force().await.paused.insert(node.clone());
        n.cluster.signal(node, Signal::SIGSTOP).await?;
        paused.push(node.clone());
    }
    tracing::info!("nemesis: paused {}", nodes_list(&paused));
    Ok(Landed::on(json!({ "nodes": paused })))
}

/// Let every paused node run again.
pub async fn resume(n: &Nemesis) -> Result<Landed> {
    let nodes: Vec<String> = n.in_force().await.paused.iter().cloned().collect();
    let mut failed = Failed::default();
    for node in &nodes {
        // A node killed while paused has no process left to continue.
        let resumed = if n.cluster.running(node).await {
            n.cluster.signal(node, Signal::SIGCONT).await
        } else {
            Ok(())
        };
        if failed.keep(resumed) {
            n.in_force().await.paused.remove(node);
        }
    }
    failed.into_result()?;
    tracing::info!("nemesis: resumed {}", nodes_list(&nodes));
    Ok(Landed::on(json!({ "nodes": nodes })))
}
