//! The kill fault: SIGKILL to a node's process group; its inverse starts the node again on
//! its data dir (journaled as `start`). Restarting a node that already runs is a no-op,
//! so a restart cut half-way can be repeated.

use super::{nodes_list, Failed, Landed, Nemesis};
use anyhow::Result;
use serde_json::json;

/// Kill `nodes`; a paused node dies too and is no longer paused.
pub async fn kill(n: &Nemesis, nodes: &[String]) -> Result<Landed> {
    for node in nodes {
        n.in_force().await.killed.insert(node.clone());
        n.cluster.kill_node(node).await?;
        n.in_force().await.paused.remove(node);
    }
    tracing::info!("nemesis: killed {}", nodes_list(nodes));
    Ok(Landed::on(json!({ "nodes": nodes })))
}

/// Start every killed node again.
pub async fn restart(n: &Nemesis) -> Result<Landed> {
    let nodes: Vec<String> = n.in_force().await.killed.iter().cloned().collect();
    let mut failed = Failed::default();
    for node in &nodes {
        // A kill that failed half-way may have left the process running.
        let started = if n.cluster.running(node).await {
            Ok(())
        } else {
            n.cluster.start_node(node).await
        };
        if failed.keep(started) {
            n.in_force().await.killed.remove(node);
        }
    }
    failed.into_result()?;
    tracing::info!("nemesis: restarted {}", nodes_list(&nodes));
    Ok(Landed::on(json!({ "nodes": nodes })))
}
