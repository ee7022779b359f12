//! The kill fault: SIGKILL to a node's process group; its inverse starts the node again on
//! its data dir (journaled as `start`). Restarting a node that already runs is a no-op,
//! so a restart cut half-way can be repeated.

use super::{nodes_list, Failed, InForce, Landed, Nemesis};
use anyhow::Result;
use serde_json::json;
use std::collections::BTreeSet;

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

/// SIGKILL `nodes` at once (a power cut or a disk failure reaches them together); those
/// that died are no longer paused. Fails if any may still run: its disk must not be
/// changed under it.
pub(super) async fn kill_together(n: &Nemesis, nodes: &[String]) -> Result<()> {
    let killed =
        futures::future::join_all(nodes.iter().map(|node| n.cluster.kill_node(node))).await;
    {
        let mut f = n.in_force().await;
        for (node, k) in nodes.iter().zip(&killed) {
            if k.is_ok() {
                f.paused.remove(node);
            }
        }
    }
    killed.into_iter().collect::<Result<Vec<()>>>()?;
    Ok(())
}

/// Start every killed node again.
pub async fn restart(n: &Nemesis) -> Result<Landed> {
    let nodes = start_listed(n, |f| &mut f.killed).await?;
    tracing::info!("nemesis: restarted {}", nodes_list(&nodes));
    Ok(Landed::on(json!({ "nodes": nodes })))
}

/// Start again every node listed in one in-force set of dead nodes (`killed`,
/// `powered_off`), each leaving the set once it runs; the nodes it went through.
pub(super) async fn start_listed(
    n: &Nemesis,
    set: fn(&mut InForce) -> &mut BTreeSet<String>,
) -> Result<Vec<String>> {
    let nodes: Vec<String> = set(&mut *n.in_force().await).iter().cloned().collect();
    let mut failed = Failed::default();
    for node in &nodes {
        // A kill that failed half-way may have left the process running.
        let started = if n.cluster.running(node).await {
            Ok(())
        } else {
            n.cluster.start_node(node).await
        };
        if failed.keep(started) {
            set(&mut *n.in_force().await).remove(node);
        }
    }
    failed.into_result()?;
    Ok(nodes)
}
