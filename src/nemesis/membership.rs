//! The leave fault: a node is taken out of the cluster's configuration by the target's own
//! command (target.yaml `membership.remove`, asked of a running member) and stopped. Its
//! inverse, `join`, adds it back (`membership.add`) and starts it as a new member: on an
//! emptied data dir (a removed member that came back with its old log would be a
//! different fault) with `{cluster_state}` = existing and `{cluster}` = the members it
//! joins. Both go node by node, as an operator would: a configuration change waits for
//! the one before it.
//!
//! Unlike the other faults, a leave is listed in force once its remove command succeeded,
//! not before: a remove that failed leaves the node a member, and adding a member that
//! never left fails. The cluster tracks where each node stands
//! ([`crate::target::Cluster::is_member`]), so a join cut half-way (added, not started) is
//! finished, not added twice.

use super::{nodes_list, Failed, Landed, Nemesis};
use crate::target::MemberChange;
use anyhow::{anyhow, Result};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long one membership change may take, tries included: a change needs a quorum, and
/// a client without one waits out its own timeout first.
const COMMAND_LIMIT: Duration = Duration::from_secs(30);

/// The pause between tries of a membership command.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Send `change` about `node` to a running member, again (to whichever member is best
/// then) after a failure until [`COMMAND_LIMIT`] is spent: a cluster that just lost its
/// leader to a remove answers the next change with a timeout (etcd: `context deadline
/// exceeded`) for a few seconds. The target's commands must therefore be idempotent — an
/// add that timed out may have been applied (README "Membership changes"). Returns the
/// member that took it.
async fn change_with_retries(n: &Nemesis, change: MemberChange, node: &str) -> Result<String> {
    let until = tokio::time::Instant::now() + COMMAND_LIMIT;
    loop {
        let via = via(n, node).await?;
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        match n.cluster.change_membership(change, node, &via, left).await {
            Ok(_) => return Ok(via),
            Err(e) if tokio::time::Instant::now() + RETRY_PAUSE >= until => return Err(e),
            Err(e) => {
                tracing::info!("nemesis: {e:#}; trying again");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
}

/// Take `nodes` out of the configuration, one by one, and stop each.
pub async fn leave(n: &Nemesis, nodes: &[String]) -> Result<Landed> {
    let mut left = Vec::new();
    let mut via_of = BTreeMap::new();
    let mut failed = Failed::default();
    for node in nodes {
        if !n.cluster.is_member(node) {
            continue;
        }
        let step = async {
            let via = change_with_retries(n, MemberChange::Remove, node).await?;
            // Out of the configuration from here, whatever follows: the heal adds it back.
            n.in_force().await.left.insert(node.clone());
            n.cluster.set_left(node, true);
            // A removed member may stop by itself (etcd does); either way it is down now.
            n.cluster.stop_node(node).await?;
            // It comes back by `join` alone: a restart of a killed (or powered-off,
            // corrupted) node would start a removed member on its old data.
            let mut f = n.in_force().await;
            f.paused.remove(node);
            f.killed.remove(node);
            f.powered_off.remove(node);
            f.corrupted.remove(node);
            anyhow::Ok(via)
        }
        .await;
        match step {
            Ok(via) => {
                left.push(node.clone());
                via_of.insert(node.clone(), via);
            }
            Err(e) => {
                failed.keep::<()>(Err(e));
            }
        }
    }
    if left.is_empty() {
        failed.into_result()?;
    }
    tracing::info!("nemesis: {} left the cluster", nodes_list(&left));
    Ok(Landed::on(json!({ "nodes": left, "via": via_of })))
}

/// Add every node that left back, one by one, and start it.
pub async fn join(n: &Nemesis) -> Result<Landed> {
    let nodes: Vec<String> = n.in_force().await.left.iter().cloned().collect();
    let keep_data = n
        .cluster
        .plan()
        .target
        .spec
        .membership
        .as_ref()
        .is_some_and(|m| m.keep_data);
    let mut failed = Failed::default();
    let mut joined = Vec::new();
    let mut via_of = BTreeMap::new();
    for node in &nodes {
        let step = async {
            if !n.cluster.is_member(node) {
                let via = change_with_retries(n, MemberChange::Add, node).await?;
                via_of.insert(node.clone(), via);
                // A fault aimed at it since it left may have started it on its old data.
                n.cluster.stop_node(node).await?;
                if !keep_data {
                    n.cluster.wipe_data_dir(node)?;
                }
                n.cluster.set_left(node, false);
            }
            if !n.cluster.running(node).await {
                n.cluster.start_node(node).await?;
            }
            anyhow::Ok(())
        }
        .await;
        if failed.keep(step) {
            n.in_force().await.left.remove(node);
            joined.push(node.clone());
        }
    }
    failed.into_result()?;
    tracing::info!("nemesis: {} joined the cluster again", nodes_list(&joined));
    Ok(Landed::on(
        json!({ "nodes": joined, "via": via_of, "data": if keep_data { "kept" } else { "emptied" } }),
    ))
}

/// A member to send a change about `node` to: one that runs and no fault holds, else
/// any that runs.
async fn via(n: &Nemesis, node: &str) -> Result<String> {
    let mut running = Vec::new();
    for m in n.cluster.nodes() {
        if m != node && n.cluster.is_member(&m) && n.cluster.running(&m).await {
            running.push(m);
        }
    }
    let f = n.in_force().await;
    let free = running.iter().find(|m| {
        !f.paused.contains(*m)
            && !f.partitioned.contains(*m)
            && !f.killed.contains(*m)
            && !f.twins.contains_key(*m)
    });
    free.or(running.first())
        .cloned()
        .ok_or_else(|| anyhow!("no running member to ask to change {node}'s membership"))
}
