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
//! packets carry no IP options. Bytes are IP lengths (headers included). Each link counts
//! its packets per TCP data offset (and UDP apart) in a chain of its own, so the payload
//! bytes — what the target's sockets wrote, the figure a target's own byte counter can be
//! held against — are the bytes less each packet's exact header length. Segmentation
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
    /// IP lengths, headers included.
    pub bytes: u64,
    /// Bytes above the TCP and UDP headers.
    pub payload: u64,
}

impl Count {
    /// Adds `packets` packets of `bytes` bytes whose IP + transport headers are `header`
    /// bytes each.
    fn add(&mut self, packets: u64, bytes: u64, header: u64) {
        self.packets += packets;
        self.bytes += bytes;
        self.payload += bytes.saturating_sub(packets * header);
    }
}

/// The TCP data offsets a link's chain tells apart (in 32-bit words; 5 = no options).
const DOFFS: std::ops::RangeInclusive<u32> = 5..=15;
/// IPv4 (no options) and UDP header bytes.
const UDP_HEADER: u64 = 28;

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
    let mut names: Vec<String> = peers.iter().map(|(i, _)| peer_counter(*i)).collect();
    names.extend([TO_CLIENT.to_string(), FROM_CLIENT.to_string()]);
    // One chain per link, counting per header length: the output and input chains jump
    // to it by address.
    for name in &names {
        let mut chain = format!("  chain link_{name} {{\n");
        for doff in DOFFS {
            s.push_str(&format!("  counter {name}_d{doff} {{}}\n"));
            chain.push_str(&format!(
                "    tcp doff {doff} counter name {name}_d{doff} accept\n"
            ));
        }
        s.push_str(&format!("  counter {name}_udp {{}}\n"));
        chain.push_str(&format!(
            "    meta l4proto udp counter name {name}_udp accept\n  }}\n"
        ));
        s.push_str(&chain);
    }
    // `accept` ends only this table's chain: the partition and loss tables have already
    // decided, and nothing after us in these hooks is faultline's.
    let skip_empty = |s: &mut String| {
        for doff in DOFFS {
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
            "    ip daddr {} jump link_{}\n",
            n.ip,
            peer_counter(*i)
        ));
    }
    s.push_str(&format!(
        "    ip daddr {client} jump link_{TO_CLIENT}\n  }}\n"
    ));
    s.push_str("  chain input {\n    type filter hook input priority 100; policy accept;\n");
    skip_empty(&mut s);
    s.push_str(&format!(
        "    ip saddr {client} jump link_{FROM_CLIENT}\n  }}\n}}\n"
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
                payload: 0,
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
        let get = |part: String| {
            counters
                .get(&part)
                .ok_or_else(|| anyhow!("node {}: counter {part} missing", node(me)))
        };
        let mut c = Count::default();
        for doff in DOFFS {
            let d = get(format!("{name}_d{doff}"))?;
            c.add(d.packets, d.bytes, 20 + 4 * u64::from(doff));
        }
        let u = get(format!("{name}_udp"))?;
        c.add(u.packets, u.bytes, UDP_HEADER);
        out.insert(link, c);
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
        assert!(s.contains("ip daddr 10.213.0.2 jump link_to_node0"));
        assert!(s.contains("ip daddr 10.213.0.4 jump link_to_node2"));
        assert!(!s.contains("10.213.0.3"), "a node counts no link to itself");
        assert!(s.contains("ip saddr 10.213.0.1 jump link_from_client"));
        assert!(s.contains("tcp doff 15 ip length 80 accept"));
        assert!(s.contains("tcp doff 8 counter name to_node0_d8 accept"));
        assert!(s.contains("meta l4proto udp counter name to_client_udp accept"));
        assert!(!s.contains("flush ruleset"));
        assert!(remove_script().contains(&format!("delete table ip {WIRE_TABLE}")));
    }

    /// nft's JSON for node n2's counters: every counter zero but those given.
    fn nft_json(set: &[(&str, u64, u64)]) -> String {
        let mut items = vec![serde_json::json!({"metainfo": {"version": "1.0.6"}})];
        for link in ["to_node0", "to_node2", "to_client", "from_client"] {
            let parts = DOFFS
                .map(|d| format!("{link}_d{d}"))
                .chain([format!("{link}_udp")]);
            for name in parts {
                let (p, b) = set
                    .iter()
                    .find(|(n, _, _)| *n == name)
                    .map_or((0, 0), |(_, p, b)| (*p, *b));
                items.push(serde_json::json!({"counter": {"family": "ip", "name": name,
                    "table": WIRE_TABLE, "handle": 4, "packets": p, "bytes": b}}));
            }
        }
        items.push(
            serde_json::json!({"counter": {"family": "ip", "name": "to_node0_d8",
            "table": "someone_else", "handle": 8, "packets": 99, "bytes": 99}}),
        );
        serde_json::json!({ "nftables": items }).to_string()
    }

    #[test]
    fn parses_nft_json_counters_into_links_with_their_payload() {
        let json = nft_json(&[
            // 5 segments with timestamps (52-byte headers) and one without options.
            ("to_node0_d8", 5, 5 * 52 + 300),
            ("to_node0_d5", 1, 40 + 10),
            ("to_node2_udp", 1, 60),
            ("to_client_d8", 2, 100 + 104),
            ("from_client_d8", 3, 150 + 156),
        ]);
        let counters = parse_counters(&json).unwrap();
        assert_eq!(counters.len(), 4 * 12);
        assert_eq!(counters["to_node0_d8"].packets, 5, "other tables ignored");
        let links = links_of(&nodes(), 1, &counters).unwrap();
        let l = |f: &str, t: &str| {
            links[&Link {
                from: f.into(),
                to: t.into(),
            }]
        };
        let c = |packets, bytes, payload| Count {
            packets,
            bytes,
            payload,
        };
        assert_eq!(l("n2", "n1"), c(6, 5 * 52 + 300 + 50, 310));
        assert_eq!(l("n2", "n3"), c(1, 60, 32));
        assert_eq!(l("n2", "client"), c(2, 204, 100));
        assert_eq!(l("client", "n2"), c(3, 306, 150));
        assert!(parse_counters("{}").is_err());
        let mut short = counters.clone();
        short.remove("to_client_d7");
        let e = links_of(&nodes(), 1, &short).unwrap_err();
        assert!(format!("{e}").contains("to_client_d7 missing"), "{e}");
    }
}
