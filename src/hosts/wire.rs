//! Per-link traffic counters on local hosts: an nftables table faultline owns in each
//! node's namespace, counting data-carrying packets (TCP segments with payload, UDP
//! datagrams) and their bytes per directed link.
//!
//! Links are counted **where they leave the sender** (the output hook of the sending
//! node's namespace), so every node→node link is counted once, by the one namespace that
//! sees all of its packets however the receiver fares: a receiver that is killed, paused
//! or partitioned still shows what was sent to it. The output chain sits after the
//! partition and loss tables (priority 100 > −90), so a link that a fault cuts reads what
//! really went onto the bridge, not what the sender tried; packets the delay fault holds
//! in userspace are counted once, when they are let go. Client traffic is kept apart:
//! answers to the controller (the bridge address) are counted on the way out, and the
//! controller's requests on the way in, since the controller lives in the root namespace
//! where faultline counts nothing.
//!
//! nftables cannot subtract header lengths, so "TCP with payload" is "not a packet whose
//! IP length equals 20 + 4 × data offset", one rule per data offset (5..=15); a node's
//! packets carry no IP options. Bytes are IP lengths (headers included). Segmentation
//! offload may hand the hook one large packet for what the NIC sends as several, which
//! makes the count closer to "socket writes" for bulk transfers; small messages are
//! unaffected.

use super::NodeHost;
use anyhow::{anyhow, Context, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// The nftables table faultline owns in a node's namespace for link counters.
pub const WIRE_TABLE: &str = "faultline_wire";
/// Counter of data sent to the controller (answers to clients).
const TO_CLIENT: &str = "to_client";
/// Counter of data received from the controller (client requests).
const FROM_CLIENT: &str = "from_client";

/// Packets and bytes counted on one link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    pub packets: u64,
    pub bytes: u64,
}

/// The counter name for data sent to the `i`-th node (names of nodes may hold characters
/// nft identifiers cannot, so counters go by position).
fn peer_counter(i: usize) -> String {
    format!("to_node{i}")
}

/// The nft script that (re)creates the counter table in `nodes[me]`'s namespace; the
/// controller is reached at `client`.
pub fn install_script(nodes: &[NodeHost], me: usize, client: Ipv4Addr) -> String {
    let t = WIRE_TABLE;
    // Declaring then deleting makes the script idempotent on nft versions without
    // `destroy`.
    let mut s = format!("table ip {t}\ndelete table ip {t}\ntable ip {t} {{\n");
    let peers: Vec<(usize, &NodeHost)> =
        nodes.iter().enumerate().filter(|(i, _)| *i != me).collect();
    for (i, _) in &peers {
        s.push_str(&format!("  counter {} {{}}\n", peer_counter(*i)));
    }
    s.push_str(&format!(
        "  counter {TO_CLIENT} {{}}\n  counter {FROM_CLIENT} {{}}\n"
    ));
    // `accept` ends only this table's chain: the partition and loss tables have already
    // decided, and nothing after us in these hooks is faultline's.
    let skip_empty = |s: &mut String| {
        for doff in 5..=15u32 {
            s.push_str(&format!(
                "    tcp doff {doff} ip length {} accept\n",
                20 + 4 * doff
            ));
        }
        s.push_str("    meta l4proto != { tcp, udp } accept\n");
    };
    s.push_str("  chain output {\n    type filter hook output priority 100; policy accept;\n");
    skip_empty(&mut s);
    for (i, n) in &peers {
        s.push_str(&format!(
            "    ip daddr {} counter name {}\n",
            n.ip,
            peer_counter(*i)
        ));
    }
    s.push_str(&format!(
        "    ip daddr {client} counter name {TO_CLIENT}\n  }}\n"
    ));
    s.push_str("  chain input {\n    type filter hook input priority 100; policy accept;\n");
    skip_empty(&mut s);
    s.push_str(&format!(
        "    ip saddr {client} counter name {FROM_CLIENT}\n  }}\n}}\n"
    ));
    s
}

/// The command that lists the table's counters as JSON.
pub const LIST_ARGV: [&str; 7] = ["nft", "-j", "list", "counters", "table", "ip", WIRE_TABLE];

/// The script that removes the table.
pub fn remove_script() -> String {
    format!("table ip {WIRE_TABLE}\ndelete table ip {WIRE_TABLE}\n")
}

/// One node's counters as `nft -j list counters table ip faultline_wire` prints them, by
/// counter name.
pub fn parse_counters(json: &str) -> Result<BTreeMap<String, Count>> {
    let v: Value = serde_json::from_str(json).context("nft printed invalid JSON")?;
    let items = v["nftables"]
        .as_array()
        .ok_or_else(|| anyhow!("nft JSON without an \"nftables\" array"))?;
    let mut out = BTreeMap::new();
    for c in items.iter().filter_map(|i| i.get("counter")) {
        if c["table"] != WIRE_TABLE {
            continue;
        }
        let field = |f: &str| {
            c[f].as_u64()
                .ok_or_else(|| anyhow!("nft counter without a numeric {f:?}: {c}"))
        };
        let name = c["name"]
            .as_str()
            .ok_or_else(|| anyhow!("nft counter without a name: {c}"))?;
        out.insert(
            name.to_string(),
            Count {
                packets: field("packets")?,
                bytes: field("bytes")?,
            },
        );
    }
    Ok(out)
}

/// A directed link: `from` and `to` are node names, or `"client"` for the controller.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Link {
    pub from: String,
    pub to: String,
}

/// Client-side name of the controller in links.
pub const CLIENT: &str = "client";

/// Names node `me`'s counters by the links they count.
pub fn links_of(
    nodes: &[NodeHost],
    me: usize,
    counters: &BTreeMap<String, Count>,
) -> Result<BTreeMap<Link, Count>> {
    let node = |i: usize| nodes[i].node.clone();
    let mut out = BTreeMap::new();
    let mut take = |name: &str, link: Link| -> Result<()> {
        let c = counters
            .get(name)
            .ok_or_else(|| anyhow!("node {}: counter {name} missing", node(me)))?;
        out.insert(link, *c);
        Ok(())
    };
    for i in (0..nodes.len()).filter(|i| *i != me) {
        take(
            &peer_counter(i),
            Link {
                from: node(me),
                to: node(i),
            },
        )?;
    }
    take(
        TO_CLIENT,
        Link {
            from: node(me),
            to: CLIENT.into(),
        },
    )?;
    take(
        FROM_CLIENT,
        Link {
            from: CLIENT.into(),
            to: node(me),
        },
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes() -> Vec<NodeHost> {
        (0..3)
            .map(|i| NodeHost {
                node: format!("n{}", i + 1),
                ip: Ipv4Addr::new(10, 213, 0, 2 + i),
                netns: None,
            })
            .collect()
    }

    #[test]
    fn script_counts_every_peer_and_the_client_and_only_touches_its_table() {
        let s = install_script(&nodes(), 1, Ipv4Addr::new(10, 213, 0, 1));
        assert!(s.contains("ip daddr 10.213.0.2 counter name to_node0"));
        assert!(s.contains("ip daddr 10.213.0.4 counter name to_node2"));
        assert!(!s.contains("10.213.0.3"), "a node counts no link to itself");
        assert!(s.contains("ip saddr 10.213.0.1 counter name from_client"));
        assert!(s.contains("tcp doff 15 ip length 80 accept"));
        assert!(!s.contains("flush ruleset"));
        assert!(remove_script().contains(&format!("delete table ip {WIRE_TABLE}")));
    }

    #[test]
    fn parses_nft_json_counters_into_links() {
        let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
          {"counter": {"family": "ip", "name": "to_node0", "table": "faultline_wire", "handle": 4, "packets": 5, "bytes": 243}},
          {"counter": {"family": "ip", "name": "to_node2", "table": "faultline_wire", "handle": 5, "packets": 1, "bytes": 60}},
          {"counter": {"family": "ip", "name": "to_client", "table": "faultline_wire", "handle": 6, "packets": 2, "bytes": 100}},
          {"counter": {"family": "ip", "name": "from_client", "table": "faultline_wire", "handle": 7, "packets": 3, "bytes": 150}},
          {"counter": {"family": "ip", "name": "to_node0", "table": "someone_else", "handle": 8, "packets": 99, "bytes": 99}}]}"#;
        let counters = parse_counters(json).unwrap();
        assert_eq!(counters.len(), 4);
        let links = links_of(&nodes(), 1, &counters).unwrap();
        let l = |f: &str, t: &str| {
            links[&Link {
                from: f.into(),
                to: t.into(),
            }]
        };
        assert_eq!(
            l("n2", "n1"),
            Count {
                packets: 5,
                bytes: 243
            }
        );
        assert_eq!(
            l("n2", "n3"),
            Count {
                packets: 1,
                bytes: 60
            }
        );
        assert_eq!(
            l("n2", "client"),
            Count {
                packets: 2,
                bytes: 100
            }
        );
        assert_eq!(
            l("client", "n2"),
            Count {
                packets: 3,
                bytes: 150
            }
        );
        assert!(parse_counters("{}").is_err());
        let mut short = counters.clone();
        short.remove("to_client");
        assert!(links_of(&nodes(), 1, &short).is_err());
    }
}
