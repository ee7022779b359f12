//! The partition fault: a grudge enforced by nftables rules in each node's own network
//! namespace, in a table faultline owns (never the root namespace, never anyone else's
//! rules); healing deletes that table and nothing else.

use super::{Failed, Landed, Nemesis};
use crate::hosts::PARTITION_TABLE;
use crate::spec::grudge::Grudge;
use anyhow::Result;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// Cut links as `grudge` says. Nodes whose rules may change are listed as partitioned
/// before any rule is loaded; after every node got its rules, only those that drop
/// something stay listed.
pub async fn start(n: &Nemesis, grudge: &Grudge, one_way: bool) -> Result<Landed> {
    let nodes = n.cluster.nodes();
    let drops = match grudge {
        Grudge::Drops(d) => d.clone(),
        around_leaders => {
            let leaders = match around_leaders {
                Grudge::NextPrimaries { settle_ms } => n.next_leaders(*settle_ms).await,
                _ => n.leaders().await,
            };
            if leaders.is_empty() {
                tracing::info!("nemesis: no node believes it leads; isolating nobody");
                return Ok(Landed {
                    value: json!({"grudge": {}}),
                    note: Some("no leader".into()),
                });
            }
            around_leaders.around(&leaders, &nodes)
        }
    };
    let cut = |node: &String| drops.get(node).is_some_and(|d| !d.is_empty());
    let touched: Vec<String> = {
        let mut f = n.in_force().await;
        let touched = nodes
            .iter()
            .filter(|node| cut(node) || f.partitioned.contains(*node))
            .cloned()
            .collect();
        f.partitioned
            .extend(nodes.iter().filter(|node| cut(node)).cloned());
        touched
    };
    for node in &touched {
        let from: Vec<Ipv4Addr> = drops
            .get(node)
            .into_iter()
            .flatten()
            .map(|p| n.ip(p))
            .collect::<Result<_>>()?;
        n.nft(node, &partition_script(&from, one_way)).await?;
        if from.is_empty() {
            n.in_force().await.partitioned.remove(node);
        }
    }
    let applied: BTreeSet<String> = nodes.iter().filter(|node| cut(node)).cloned().collect();
    let desc: BTreeMap<&String, &BTreeSet<String>> =
        drops.iter().filter(|(_, d)| !d.is_empty()).collect();
    tracing::info!("nemesis: partition {}", describe_grudge(&drops));
    Ok(Landed::on(
        json!({"nodes": applied, "grudge": desc, "one_way": one_way}),
    ))
}

/// Delete the partition table of every partitioned node.
pub async fn heal(n: &Nemesis) -> Result<Landed> {
    let nodes: Vec<String> = n.in_force().await.partitioned.iter().cloned().collect();
    let mut failed = Failed::default();
    for node in &nodes {
        if failed.keep(n.nft(node, &delete_script(PARTITION_TABLE)).await) {
            n.in_force().await.partitioned.remove(node);
        }
    }
    failed.into_result()?;
    tracing::info!("nemesis: partition healed");
    Ok(Landed::on(json!({ "nodes": nodes })))
}

fn describe_grudge(d: &BTreeMap<String, BTreeSet<String>>) -> String {
    let parts: Vec<String> = d
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| {
            format!(
                "{k} drops {}",
                v.iter().cloned().collect::<Vec<_>>().join(",")
            )
        })
        .collect();
    if parts.is_empty() {
        "(nobody)".into()
    } else {
        parts.join("; ")
    }
}

pub(super) fn addr_set(ips: &[Ipv4Addr]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// An nft script that (re)creates our partition table so that the node drops packets
/// from `drop` (and, unless one-way, to them). Loaded atomically with `nft -f -`: the
/// add-then-delete prelude makes it valid whether or not the table exists.
pub fn partition_script(drop: &[Ipv4Addr], one_way: bool) -> String {
    let mut s = format!("table inet {PARTITION_TABLE}\ndelete table inet {PARTITION_TABLE}\n");
    if drop.is_empty() {
        return s;
    }
    let set = addr_set(drop);
    s.push_str(&format!("table inet {PARTITION_TABLE} {{\n"));
    s.push_str(&format!(
        "  chain input {{ type filter hook input priority -100; policy accept; ip saddr {{ {set} }} drop; }}\n"
    ));
    if !one_way {
        s.push_str(&format!(
            "  chain output {{ type filter hook output priority -100; policy accept; ip daddr {{ {set} }} drop; }}\n"
        ));
    }
    s.push_str("}\n");
    s
}

/// An nft script that removes one of our tables if it exists.
pub fn delete_script(table: &str) -> String {
    format!("table inet {table}\ndelete table inet {table}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_touch_only_our_tables() {
        let s = partition_script(&[Ipv4Addr::new(10, 213, 0, 3)], false);
        assert!(s.starts_with(
            "table inet faultline_partition\ndelete table inet faultline_partition\n"
        ));
        assert!(s.contains("ip saddr { 10.213.0.3 } drop"));
        assert!(s.contains("ip daddr { 10.213.0.3 } drop"));
        let one_way = partition_script(&[Ipv4Addr::new(10, 213, 0, 3)], true);
        assert!(!one_way.contains("daddr"));
        assert!(!delete_script(PARTITION_TABLE).contains("flush ruleset"));
    }
}
