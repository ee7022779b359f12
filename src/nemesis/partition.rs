//! The partition fault: a grudge enforced by nftables rules in each node's own network
//! namespace, in a table faultline owns (never the root namespace, never anyone else's
//! rules); healing deletes that table and nothing else.

use crate::hosts::{LOSS_TABLE, PARTITION_TABLE};
use std::net::Ipv4Addr;

fn addr_set(ips: &[Ipv4Addr]) -> String {
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

/// An nft script that drops `percent`% of the packets to and from `peers`.
pub fn loss_script(peers: &[Ipv4Addr], percent: u8) -> String {
    let set = addr_set(peers);
    format!(
        "table inet {LOSS_TABLE}\ndelete table inet {LOSS_TABLE}\ntable inet {LOSS_TABLE} {{\n  chain input {{ type filter hook input priority -90; policy accept; ip saddr {{ {set} }} numgen random mod 100 < {percent} drop; }}\n  chain output {{ type filter hook output priority -90; policy accept; ip daddr {{ {set} }} numgen random mod 100 < {percent} drop; }}\n}}\n"
    )
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
        assert!(loss_script(&[Ipv4Addr::new(10, 213, 0, 4)], 30)
            .contains("numgen random mod 100 < 30 drop"));
        assert!(!delete_script(PARTITION_TABLE).contains("flush ruleset"));
    }
}
