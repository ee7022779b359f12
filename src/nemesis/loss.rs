//! The loss fault: a share of a node's packets to its peers dropped at random (nftables
//! `numgen random`), in a table faultline owns in the node's namespace; stopping it deletes
//! that table.

use super::partition::{addr_set, delete_script};
use super::{nodes_list, Failed, Landed, Nemesis};
use crate::hosts::LOSS_TABLE;
use anyhow::Result;
use serde_json::json;
use std::net::Ipv4Addr;

/// Drop `percent` % of each node's packets to its peers.
pub async fn start(n: &Nemesis, nodes: &[String], percent: u8) -> Result<Landed> {
    for node in nodes {
        let peers = n.peers_of(node)?;
        n.in_force().await.lossy.insert(node.clone());
        n.nft(node, &loss_script(&peers, percent)).await?;
    }
    tracing::info!("nemesis: {percent}% packet loss on {}", nodes_list(nodes));
    Ok(Landed::on(json!({ "nodes": nodes, "percent": percent })))
}

/// Delete the loss table of every lossy node.
pub async fn stop(n: &Nemesis) -> Result<Landed> {
    let nodes: Vec<String> = n.in_force().await.lossy.iter().cloned().collect();
    let mut failed = Failed::default();
    for node in &nodes {
        if failed.keep(n.nft(node, &delete_script(LOSS_TABLE)).await) {
            n.in_force().await.lossy.remove(node);
        }
    }
    failed.into_result()?;
    tracing::info!("nemesis: packet loss stopped");
    Ok(Landed::on(json!({ "nodes": nodes })))
}

/// An nft script that drops `percent`% of the packets to and from `peers`.
pub fn loss_script(peers: &[Ipv4Addr], percent: u8) -> String {
    let set = addr_set(peers);
    format!(
        "table inet {LOSS_TABLE}\ndelete table inet {LOSS_TABLE}\ntable inet {LOSS_TABLE} {{\n  chain input {{ type filter hook input priority -90; policy accept; ip saddr {{ {set} }} numgen random mod 100 < {percent} drop; }}\n  chain output {{ type filter hook output priority -90; policy accept; ip daddr {{ {set} }} numgen random mod 100 < {percent} drop; }}\n}}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_drops_a_share_of_packets_to_peers_in_our_table() {
        let s = loss_script(&[Ipv4Addr::new(10, 213, 0, 4)], 30);
        assert!(s.contains("numgen random mod 100 < 30 drop"), "{s}");
        assert!(s.contains(LOSS_TABLE));
        assert!(!delete_script(LOSS_TABLE).contains("flush ruleset"));
    }
}
