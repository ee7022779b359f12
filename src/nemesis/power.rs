//! The power-fail fault: SIGKILL to the target nodes, then every write to their data dirs
//! that they did not fsync is dropped ([`crate::hosts::lazyfs`], through
//! [`crate::target::Cluster::power_fail`]), as a power cut loses the page cache. Its
//! inverse, `power-restore`, starts them again on what their disks kept. A plain `kill`
//! loses nothing the node wrote (the kernel, here the filesystem, still has it); only this
//! fault shows a target that acknowledges before it fsyncs.
//!
//! Every target node dies before any disk forgets, so with `all` no node outlives
//! another's loss (a coordinated power failure). How many files and bytes each node lost
//! is journaled with the fault.

use super::{nodes_list, Landed, Nemesis};
use anyhow::Result;
use serde_json::{json, Map};

/// Kill `nodes` together, then drop their un-fsynced writes; a paused node dies too and is
/// no longer paused.
pub async fn power_fail(n: &Nemesis, nodes: &[String]) -> Result<Landed> {
    {
        let mut f = n.in_force().await;
        f.powered_off.extend(nodes.iter().cloned());
    }
    super::kill::kill_together(n, nodes).await?;
    let mut lost = Map::new();
    let mut total = (0, 0);
    for node in nodes {
        let l = n.cluster.power_fail(node)?;
        total.0 += l.files;
        total.1 += l.bytes;
        lost.insert(node.clone(), json!({ "files": l.files, "bytes": l.bytes }));
    }
    tracing::info!(
        "nemesis: power failure of {}: {} un-fsynced bytes in {} files lost",
        nodes_list(nodes),
        total.1,
        total.0
    );
    Ok(Landed::on(json!({ "nodes": nodes, "lost": lost })))
}

/// Start every power-failed node again on what its data dir kept.
pub async fn restore(n: &Nemesis) -> Result<Landed> {
    let nodes = super::kill::start_listed(n, |f| &mut f.powered_off).await?;
    tracing::info!("nemesis: power restored to {}", nodes_list(&nodes));
    Ok(Landed::on(json!({ "nodes": nodes })))
}
