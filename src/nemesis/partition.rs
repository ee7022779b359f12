//! Partition topologies (grudges) and the nftables rules that enforce them.
//!
//! A grudge maps each node to the nodes whose packets it drops. Rules live in a table
//! owned by faultline inside each node's own network namespace (never the root
//! namespace, never anyone else's rules); healing deletes that table and nothing else.

use crate::spec::nemesis::{GrudgeName, GrudgeSpec};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// The nftables table faultline owns for partitions.
pub const PARTITION_TABLE: &str = "faultline_partition";
/// The nftables table faultline owns for packet loss.
pub const LOSS_TABLE: &str = "faultline_loss";

/// Who drops whose packets: fixed at compile time, or "isolate the leaders", decided when
/// the fault starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Grudge {
    /// node → nodes whose packets it drops.
    Drops(BTreeMap<String, BTreeSet<String>>),
    Primaries,
    /// The leaders and, in `order`, the first other nodes up to a minority, cut from the
    /// rest: a deposed leader that still reaches followers keeps appending to their logs.
    PrimariesMinority {
        order: Vec<String>,
    },
    /// Isolate the next node(s) to lead, `settle_ms` after they are seen leading.
    NextPrimaries {
        settle_ms: u64,
    },
}

/// Each node drops packets from every node outside its own component.
pub fn from_components(components: &[Vec<String>]) -> BTreeMap<String, BTreeSet<String>> {
    let mut g = BTreeMap::new();
    for (i, c) in components.iter().enumerate() {
        let others: BTreeSet<String> = components
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .flat_map(|(_, o)| o.iter().cloned())
            .collect();
        for n in c {
            g.insert(n.clone(), others.clone());
        }
    }
    g
}

impl Grudge {
    /// The drops of this grudge once `leaders` (asked from the target at fault time) are
    /// known; a fixed grudge ignores them.
    pub fn around(
        &self,
        leaders: &[String],
        nodes: &[String],
    ) -> BTreeMap<String, BTreeSet<String>> {
        match self {
            Grudge::Drops(d) => d.clone(),
            Grudge::Primaries | Grudge::NextPrimaries { .. } => isolate(leaders, nodes),
            Grudge::PrimariesMinority { order } => leaders_with_minority(leaders, order, nodes),
        }
    }
}

/// Resolve a grudge spec for these nodes with the schedule's rng; `settle_ms` is the
/// fault's `settle` (only `next-primaries` has one).
pub fn grudge_for(
    spec: &GrudgeSpec,
    nodes: &[String],
    settle_ms: u64,
    rng: &mut ChaCha8Rng,
) -> Grudge {
    let mut ring = nodes.to_vec();
    ring.shuffle(rng);
    let n = ring.len();
    match spec {
        GrudgeSpec::Explicit(map) => Grudge::Drops(
            map.iter()
                .map(|(k, v)| (k.clone(), v.iter().cloned().collect()))
                .collect(),
        ),
        GrudgeSpec::Named(GrudgeName::Primaries) => Grudge::Primaries,
        GrudgeSpec::Named(GrudgeName::NextPrimaries) => Grudge::NextPrimaries { settle_ms },
        GrudgeSpec::Named(GrudgeName::PrimariesMinority) => {
            Grudge::PrimariesMinority { order: ring }
        }
        GrudgeSpec::Named(GrudgeName::One) => {
            let (one, rest) = ring.split_at(1.min(n));
            Grudge::Drops(from_components(&[one.to_vec(), rest.to_vec()]))
        }
        GrudgeSpec::Named(GrudgeName::Majority) => {
            let (minority, majority) = ring.split_at(n / 2);
            Grudge::Drops(from_components(&[minority.to_vec(), majority.to_vec()]))
        }
        GrudgeSpec::Named(GrudgeName::Bridge) => {
            // a a | b | c c: the halves cannot talk, the bridge talks to both.
            let half = n.saturating_sub(1) / 2;
            let left: BTreeSet<String> = ring[..half].iter().cloned().collect();
            let right: BTreeSet<String> = ring[(half + 1).min(n)..].iter().cloned().collect();
            let mut g = BTreeMap::new();
            for x in &left {
                g.insert(x.clone(), right.clone());
            }
            for x in &right {
                g.insert(x.clone(), left.clone());
            }
            Grudge::Drops(g)
        }
        GrudgeSpec::Named(GrudgeName::MajoritiesRing) => {
            // Nodes on a ring each hear the k nearest on either side: 2k+1 >= a majority,
            // and every node's majority is a different set.
            let majority = n / 2 + 1;
            let k = (majority - 1).div_ceil(2);
            let mut g = BTreeMap::new();
            for (i, x) in ring.iter().enumerate() {
                let drops = ring
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| {
                        let d = i.abs_diff(*j);
                        d.min(n - d) > k
                    })
                    .map(|(_, y)| y.clone())
                    .collect();
                g.insert(x.clone(), drops);
            }
            Grudge::Drops(g)
        }
    }
}

/// The leaders together with the first other nodes of `order`, as many as make a minority
/// of `nodes` (the leaders alone if they already do), cut from the rest.
pub fn leaders_with_minority(
    leaders: &[String],
    order: &[String],
    nodes: &[String],
) -> BTreeMap<String, BTreeSet<String>> {
    let minority = nodes.len().saturating_sub(1) / 2;
    let mut side: Vec<String> = leaders.to_vec();
    for n in order {
        if side.len() >= minority {
            break;
        }
        if !side.contains(n) && nodes.contains(n) {
            side.push(n.clone());
        }
    }
    let rest: Vec<String> = nodes
        .iter()
        .filter(|n| !side.contains(n))
        .cloned()
        .collect();
    from_components(&[side, rest])
}

/// Isolate each of `leaders` from every other node.
pub fn isolate(leaders: &[String], nodes: &[String]) -> BTreeMap<String, BTreeSet<String>> {
    let mut comps: Vec<Vec<String>> = leaders.iter().map(|l| vec![l.clone()]).collect();
    comps.push(
        nodes
            .iter()
            .filter(|n| !leaders.contains(n))
            .cloned()
            .collect(),
    );
    from_components(&comps)
}

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
    use rand::SeedableRng;

    fn nodes(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    fn hears(g: &BTreeMap<String, BTreeSet<String>>, a: &str, b: &str) -> bool {
        !g.get(a).is_some_and(|d| d.contains(b)) && !g.get(b).is_some_and(|d| d.contains(a))
    }

    fn drops(spec: GrudgeSpec, n: usize, seed: u64) -> BTreeMap<String, BTreeSet<String>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        match grudge_for(&spec, &nodes(n), 0, &mut rng) {
            Grudge::Drops(d) => d,
            Grudge::Primaries | Grudge::PrimariesMinority { .. } | Grudge::NextPrimaries { .. } => {
                panic!("not a fixed grudge")
            }
        }
    }

    #[test]
    fn majority_splits_into_a_minority_and_a_majority() {
        let g = drops(GrudgeSpec::Named(GrudgeName::Majority), 5, 1);
        let sizes: BTreeSet<usize> = g.values().map(|d| d.len()).collect();
        // minority nodes drop the 3 others, majority nodes drop the 2 others
        assert_eq!(sizes, BTreeSet::from([2, 3]));
    }

    #[test]
    fn majorities_ring_gives_every_node_a_distinct_majority() {
        for seed in 0..20 {
            let g = drops(GrudgeSpec::Named(GrudgeName::MajoritiesRing), 5, seed);
            let mut seen = BTreeSet::new();
            for a in nodes(5) {
                let view: BTreeSet<String> =
                    nodes(5).into_iter().filter(|b| hears(&g, &a, b)).collect();
                assert_eq!(view.len(), 3, "{a} hears {view:?}");
                assert!(seen.insert(view), "two nodes share a majority");
            }
        }
    }

    #[test]
    fn bridge_leaves_one_node_talking_to_both_halves() {
        let g = drops(GrudgeSpec::Named(GrudgeName::Bridge), 5, 3);
        let all = nodes(5);
        let bridges: Vec<&String> = all
            .iter()
            .filter(|a| all.iter().all(|b| hears(&g, a, b)))
            .collect();
        assert_eq!(bridges.len(), 1);
        let cut = all
            .iter()
            .filter(|a| !g.get(*a).is_none_or(|d| d.is_empty()))
            .count();
        assert_eq!(cut, 4);
    }

    #[test]
    fn the_leader_keeps_a_minority_of_followers() {
        let order: Vec<String> = ["n4", "n2", "n1", "n5", "n3"].map(String::from).to_vec();
        let g = leaders_with_minority(&["n2".into()], &order, &nodes(5));
        // n2 leads; n4 is the first other node in the order: {n2, n4} | {n1, n3, n5}.
        assert!(hears(&g, "n2", "n4"));
        for a in ["n2", "n4"] {
            for b in ["n1", "n3", "n5"] {
                assert!(!hears(&g, a, b), "{a} hears {b}");
            }
        }
        assert!(hears(&g, "n1", "n3") && hears(&g, "n3", "n5"));
        // Three nodes: a minority is one, the leader alone.
        let g = leaders_with_minority(&["n3".into()], &order, &nodes(3));
        assert!(!hears(&g, "n3", "n1") && !hears(&g, "n3", "n2") && hears(&g, "n1", "n2"));
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let spec = GrudgeSpec::Named(GrudgeName::PrimariesMinority);
        match grudge_for(&spec, &nodes(5), 0, &mut rng) {
            Grudge::PrimariesMinority { order } => assert_eq!(order.len(), 5),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn isolating_the_leader_cuts_it_from_everyone() {
        let g = isolate(&["n2".into()], &nodes(3));
        assert!(!hears(&g, "n2", "n1") && !hears(&g, "n2", "n3"));
        assert!(hears(&g, "n1", "n3"));
    }

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
