//! Partition topologies (grudges): who drops whose packets, drawn at plan time from a
//! nemesis spec, or resolved around the leaders when the fault starts.

use crate::spec::nemesis::{GrudgeName, GrudgeSpec};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Who drops whose packets: fixed at compile time, or "isolate the leaders", decided when
/// the fault starts.
///
/// Adjacently tagged for the reason given at [`super::schedule::Targets`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "of")]
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
    /// Isolate the first node of `order` that does not lead.
    Follower {
        order: Vec<String>,
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
            Grudge::Follower { order } => match order.iter().find(|n| !leaders.contains(n)) {
                Some(f) => isolate(std::slice::from_ref(f), nodes),
                None => BTreeMap::new(),
            },
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
        GrudgeSpec::Named(GrudgeName::Follower) => Grudge::Follower { order: ring },
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
            Grudge::Primaries
            | Grudge::PrimariesMinority { .. }
            | Grudge::NextPrimaries { .. }
            | Grudge::Follower { .. } => {
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
    fn follower_isolates_the_first_node_of_its_order_that_does_not_lead() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let g = grudge_for(
            &GrudgeSpec::Named(GrudgeName::Follower),
            &nodes(3),
            0,
            &mut rng,
        );
        let Grudge::Follower { order } = &g else {
            panic!("{g:?}")
        };
        let leader = order[0].clone();
        let d = g.around(std::slice::from_ref(&leader), &nodes(3));
        let cut = &order[1];
        assert_eq!(d[cut].len(), 2, "{d:?}");
        assert!(d[&leader].contains(cut) && !d[&leader].contains(&order[2]));
        // Every node leads (or says so): nobody to cut.
        assert!(g.around(&nodes(3), &nodes(3)).is_empty());
        assert!(GrudgeName::Follower.aims_at_leaders());
    }

    #[test]
    fn isolating_the_leader_cuts_it_from_everyone() {
        let g = isolate(&["n2".into()], &nodes(3));
        assert!(!hears(&g, "n2", "n1") && !hears(&g, "n2", "n3"));
        assert!(hears(&g, "n1", "n3"));
    }
}
