//! Compile a nemesis spec, the run's nodes and seed into one deterministic list of steps.
//!
//! Everything random is decided here (which node is "one", the halves of a "majority",
//! each clock offset), so the same seed reproduces the same schedule and the schedule can
//! be written into plan.yaml before the run starts. Only who leads is left to fault time
//! (`primaries`, `primaries-minority`): it is a fact of the running cluster.

use super::grudge::{grudge_for, Grudge};
use crate::spec::nemesis::{
    Damage, FaultKind, FaultParams, FaultSpec, GrudgeSpec, NemesisSpec, NodeSelector, RoundLeader,
    SelectorName, TwinState, TwinsGroups,
};
use anyhow::{anyhow, bail, Result};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Nodes a fault acts on: fixed at compile time, or the leaders at fault time.
///
/// Adjacently tagged (`{kind: nodes, of: [n1]}`) because it sits inside the internally
/// tagged [`Action`]: serde buffers such a step before it knows the variant, and a
/// buffered YAML tag (`!nodes`) cannot be read back, so plan.yaml would not load again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "of")]
pub enum Targets {
    Nodes(Vec<String>),
    Primaries,
    /// The next node(s) to lead, waited for at fault time; the fault lands `settle_ms`
    /// after they are seen.
    NextPrimaries {
        settle_ms: u64,
    },
    /// Every node but the leaders at fault time.
    Followers,
}

/// One thing the nemesis does. Every start has a named inverse that heals all faults of
/// its kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "do")]
pub enum Action {
    StartPartition {
        grudge: Grudge,
        one_way: bool,
    },
    StopPartition,
    Pause {
        targets: Targets,
    },
    Resume,
    Kill {
        targets: Targets,
    },
    /// Start every killed node again on its data dir (history f: `start`).
    Restart,
    /// Offsets in milliseconds per node (negative = behind); `primaries` get `offset_ms`.
    BumpClock {
        targets: Targets,
        offsets_ms: BTreeMap<String, i64>,
        offset_ms: i64,
    },
    StrobeClock {
        targets: Targets,
        offset_ms: i64,
        period_ms: u64,
    },
    ResetClock,
    StartLoss {
        targets: Targets,
        percent: u8,
    },
    StopLoss,
    StartDelay {
        targets: Targets,
        latency_ms: u64,
        jitter_ms: u64,
    },
    StopDelay,
    /// Start a twin of `node` (or, if it has one, switch who sees it): `sees_twin` reach
    /// the twin at the node's address, the other nodes the original.
    StartTwin {
        node: String,
        sees_twin: Vec<String>,
        /// What the twin starts from, if it is not running yet.
        #[serde(default, skip_serializing_if = "TwinState::is_fresh")]
        state: TwinState,
    },
    /// Stop every twin; every node sees the originals again.
    StopTwin,
    /// SIGKILL the nodes, then drop every write to their data dirs they did not fsync.
    PowerFail {
        targets: Targets,
    },
    /// Start every power-failed node again on what its data dir kept (history f:
    /// `power-restore`).
    PowerRestore,
    /// SIGKILL the nodes, then damage the files their target declares (`data_files`);
    /// every random choice (bits, lengths, chunks, files) is drawn from `seed`, a draw of
    /// the schedule's own stream, so a seed gives the same damage to the same files.
    Corrupt {
        targets: Targets,
        damage: Damage,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        probability: Option<f64>,
        seed: u64,
    },
    /// Start every corrupted node again on its damaged files (history f:
    /// `restart-corrupted`).
    RestartCorrupted,
    /// Take the nodes out of the cluster's configuration, one by one, and stop each.
    Leave {
        targets: Targets,
    },
    /// Add every node that left back, one by one, and start it (history f: `join`).
    Join,
    /// One window of a Twins scenario: `twins` have twins (started in the first round),
    /// and nodes and twins (`n1-twin`) talk only within their group; a node sees the copy
    /// of a twinned node that is in its group. With `leader`, the leader asked for when
    /// the round starts is moved into `leader.group` first.
    TwinsRound {
        round: u32,
        twins: Vec<String>,
        groups: Vec<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        leader: Option<LeaderStep>,
        /// What the twins start from (they start in the first round).
        #[serde(default, skip_serializing_if = "TwinState::is_fresh")]
        state: TwinState,
    },
}

/// A round's leader-targeted step: whom it asks for, and the group (an index into the
/// round's groups, drawn at plan time) the leader's original is moved into.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaderStep {
    pub aim: RoundLeader,
    pub group: usize,
    /// How long a `next-primaries` round waits for an election (half a round).
    pub wait_ms: u64,
    pub settle_ms: u64,
}

/// What a nemesis step does to the faults in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultEdge {
    /// Starts a fault of this kind.
    Start(FaultKind),
    /// Heals every fault in force of this heal group ([`FaultKind::heal_group`]): one
    /// `reset-clock` heals a bump and a strobe.
    Heal(&'static str),
}

impl FaultEdge {
    /// The edge of the step journaled as `f`; `None` for an `f` that is neither (a
    /// nemesis op of an imported history). This reads back what [`Action::f`] writes, and
    /// it is the one such reading: the checker (counterexamples, liveness) and the report
    /// derive their fault windows from it.
    pub fn of(f: &str) -> Option<FaultEdge> {
        use FaultKind as K;
        let heal = |k: K| FaultEdge::Heal(k.heal_group());
        Some(match f {
            "start-partition" => FaultEdge::Start(K::Partition),
            "stop-partition" => heal(K::Partition),
            "pause" => FaultEdge::Start(K::Pause),
            "resume" => heal(K::Pause),
            "kill" => FaultEdge::Start(K::Kill),
            "start" => heal(K::Kill),
            "bump-clock" => FaultEdge::Start(K::ClockBump),
            "strobe-clock" => FaultEdge::Start(K::ClockStrobe),
            "reset-clock" => heal(K::ClockBump),
            "start-loss" => FaultEdge::Start(K::Loss),
            "stop-loss" => heal(K::Loss),
            "start-delay" => FaultEdge::Start(K::Delay),
            "stop-delay" => heal(K::Delay),
            "start-twin" => FaultEdge::Start(K::Twin),
            "stop-twin" => heal(K::Twin),
            "power-fail" => FaultEdge::Start(K::PowerFail),
            "power-restore" => heal(K::PowerFail),
            "corrupt" => FaultEdge::Start(K::Corrupt),
            "restart-corrupted" => heal(K::Corrupt),
            "leave" => FaultEdge::Start(K::Leave),
            "join" => heal(K::Leave),
            "twins-round" => FaultEdge::Start(K::Twins),
            _ => return None,
        })
    }

    /// Whether a start journaled as `f` ends the window the previous start of the same `f`
    /// opened, rather than adding one beside it: a Twins round replaces the round before
    /// it. Fault windows (the report's, liveness's) read it here.
    pub fn replaces_previous(f: &str) -> bool {
        f == "twins-round"
    }

    /// The heal group this edge opens a window in or closes windows of.
    pub fn heal_group(self) -> &'static str {
        match self {
            FaultEdge::Start(k) => k.heal_group(),
            FaultEdge::Heal(g) => g,
        }
    }
}

impl Action {
    /// What this step does to the faults in force.
    pub fn edge(&self) -> FaultEdge {
        use FaultKind as K;
        let heal = |k: K| FaultEdge::Heal(k.heal_group());
        match self {
            Action::StartPartition { .. } => FaultEdge::Start(K::Partition),
            Action::Pause { .. } => FaultEdge::Start(K::Pause),
            Action::Kill { .. } => FaultEdge::Start(K::Kill),
            Action::BumpClock { .. } => FaultEdge::Start(K::ClockBump),
            Action::StrobeClock { .. } => FaultEdge::Start(K::ClockStrobe),
            Action::StartLoss { .. } => FaultEdge::Start(K::Loss),
            Action::StartDelay { .. } => FaultEdge::Start(K::Delay),
            Action::StartTwin { .. } => FaultEdge::Start(K::Twin),
            Action::PowerFail { .. } => FaultEdge::Start(K::PowerFail),
            Action::Corrupt { .. } => FaultEdge::Start(K::Corrupt),
            Action::Leave { .. } => FaultEdge::Start(K::Leave),
            Action::TwinsRound { .. } => FaultEdge::Start(K::Twins),
            Action::StopPartition => heal(K::Partition),
            Action::Resume => heal(K::Pause),
            Action::Restart => heal(K::Kill),
            Action::ResetClock => heal(K::ClockBump),
            Action::StopLoss => heal(K::Loss),
            Action::StopDelay => heal(K::Delay),
            Action::StopTwin => heal(K::Twin),
            Action::PowerRestore => heal(K::PowerFail),
            Action::RestartCorrupted => heal(K::Corrupt),
            Action::Join => heal(K::Leave),
        }
    }

    /// The nodes a start names when compiled (none for heals and leader-relative targets).
    pub fn targets(&self) -> Option<&Targets> {
        match self {
            Action::Pause { targets }
            | Action::Kill { targets }
            | Action::PowerFail { targets }
            | Action::Corrupt { targets, .. }
            | Action::Leave { targets }
            | Action::BumpClock { targets, .. }
            | Action::StrobeClock { targets, .. }
            | Action::StartLoss { targets, .. }
            | Action::StartDelay { targets, .. } => Some(targets),
            _ => None,
        }
    }

    /// Whether this starts a fault (rather than healing one): the steps a run counts as
    /// planned faults and checks for having landed.
    pub fn is_start(&self) -> bool {
        matches!(self.edge(), FaultEdge::Start(_))
    }

    /// Whether whom it hits is decided by who leads when it starts, which the target's
    /// client must be able to say.
    pub fn aims_at_leaders(&self) -> bool {
        let leader_targets = |t: &Targets| {
            matches!(
                t,
                Targets::Primaries | Targets::NextPrimaries { .. } | Targets::Followers
            )
        };
        match self {
            Action::StartPartition { grudge, .. } => !matches!(grudge, Grudge::Drops(_)),
            Action::TwinsRound { leader, .. } => leader.is_some(),
            _ => self.targets().is_some_and(leader_targets),
        }
    }

    /// The `f` this action is journaled under ([`FaultEdge::of`] reads it back).
    pub fn f(&self) -> &'static str {
        match self {
            Action::StartPartition { .. } => "start-partition",
            Action::StopPartition => "stop-partition",
            Action::Pause { .. } => "pause",
            Action::Resume => "resume",
            Action::Kill { .. } => "kill",
            Action::Restart => "start",
            Action::BumpClock { .. } => "bump-clock",
            Action::StrobeClock { .. } => "strobe-clock",
            Action::ResetClock => "reset-clock",
            Action::StartLoss { .. } => "start-loss",
            Action::StopLoss => "stop-loss",
            Action::StartDelay { .. } => "start-delay",
            Action::StopDelay => "stop-delay",
            Action::StartTwin { .. } => "start-twin",
            Action::StopTwin => "stop-twin",
            Action::PowerFail { .. } => "power-fail",
            Action::PowerRestore => "power-restore",
            Action::Corrupt { .. } => "corrupt",
            Action::RestartCorrupted => "restart-corrupted",
            Action::Leave { .. } => "leave",
            Action::Join => "join",
            Action::TwinsRound { .. } => "twins-round",
        }
    }

    /// The inverse that heals a fault of `kind`.
    pub fn heal(kind: FaultKind) -> Action {
        match kind {
            FaultKind::Partition => Action::StopPartition,
            FaultKind::Pause => Action::Resume,
            FaultKind::Kill => Action::Restart,
            FaultKind::ClockBump | FaultKind::ClockStrobe => Action::ResetClock,
            FaultKind::Loss => Action::StopLoss,
            FaultKind::Delay => Action::StopDelay,
            FaultKind::Twin | FaultKind::Twins => Action::StopTwin,
            FaultKind::PowerFail => Action::PowerRestore,
            FaultKind::Corrupt => Action::RestartCorrupted,
            FaultKind::Leave => Action::Join,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Time since the clients started.
    #[serde(with = "humantime_serde")]
    pub at: Duration,
    #[serde(flatten)]
    pub action: Action,
}

/// A partition whose grudge, on these nodes, drops nothing anywhere. Grudges drawn from
/// the seed are tried once with a fixed stream: the degenerate ones (a majorities ring of
/// three) are empty for every draw.
fn cuts_nothing(f: &FaultSpec, nodes: &[String]) -> bool {
    if f.fault != FaultKind::Partition {
        return false;
    }
    let mut probe = ChaCha8Rng::seed_from_u64(0);
    matches!(
        start_action(f.fault, &f.params, nodes, nodes, &mut probe),
        Ok(Action::StartPartition { grudge: Grudge::Drops(d), .. }) if d.values().all(|s| s.is_empty())
    )
}

/// Compile `spec` for these nodes. Steps come out sorted by time.
pub fn compile(
    spec: &NemesisSpec,
    nodes: &[String],
    seed: u64,
    time_limit: Duration,
) -> Result<Vec<Step>> {
    // A stream of its own, so changing the workload does not change the fault schedule.
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6e65_6d65_7369_7321);
    let mut steps = Vec::new();
    // A fault that cuts nothing on this cluster (a majorities ring of three nodes: each
    // node's majority is everyone) is left out of the draw: drawn, it would be a window in
    // which nothing was tested. Faults that can land keep their place in the draw, so their
    // schedules for a seed do not change.
    let drawable: Vec<&FaultSpec> = spec
        .faults
        .iter()
        .filter(|f| !cuts_nothing(f, nodes))
        .collect();
    if drawable.is_empty() && !spec.faults.is_empty() && spec.interval.is_some() {
        bail!(
            "nemesis {}: on {} nodes none of its faults cuts a link (a partition of every node from nobody): use a grudge that separates nodes at this size",
            spec.name,
            nodes.len()
        );
    }
    if let (Some(interval), Some(duration)) = (spec.interval, spec.duration) {
        let mut t = interval;
        while t < time_limit && !drawable.is_empty() {
            let window: Vec<&FaultSpec> = if spec.concurrent {
                drawable.clone()
            } else {
                vec![drawable[rng.random_range(0..drawable.len())]]
            };
            let end = t + duration;
            let mut hit: Vec<String> = Vec::new();
            for f in &window {
                // Disjoint: later faults of the window draw from the nodes not hit yet, as
                // long as enough are left for their selector.
                let pool: Vec<String> = if spec.disjoint {
                    nodes.iter().filter(|n| !hit.contains(n)).cloned().collect()
                } else {
                    nodes.to_vec()
                };
                let action = start_action(f.fault, &f.params, nodes, &pool, &mut rng)
                    .map_err(|e| anyhow!("nemesis {}: {e}", spec.name))?;
                if let Some(Targets::Nodes(ns)) = action.targets() {
                    hit.extend(ns.iter().cloned());
                }
                steps.push(Step { at: t, action });
            }
            if end < time_limit {
                // Heal in reverse order of injection.
                for f in window.iter().rev() {
                    steps.push(Step {
                        at: end,
                        action: Action::heal(f.fault),
                    });
                }
            }
            t = end + interval;
        }
    }
    for (i, s) in spec.timeline.iter().enumerate() {
        if s.start == Some(FaultKind::Twins) {
            steps.extend(
                scenario(s.at, &s.params, nodes, &mut rng)
                    .map_err(|e| anyhow!("nemesis {}: timeline[{i}]: {e}", spec.name))?,
            );
            continue;
        }
        let action = match (s.start, s.stop) {
            (Some(k), _) => start_action(k, &s.params, nodes, nodes, &mut rng)
                .map_err(|e| anyhow!("nemesis {}: timeline[{i}]: {e}", spec.name))?,
            (None, Some(k)) => Action::heal(k),
            (None, None) => bail!(
                "nemesis {}: timeline[{i}] has neither start nor stop",
                spec.name
            ),
        };
        steps.push(Step { at: s.at, action });
    }
    steps.sort_by_key(|s| s.at);
    Ok(steps)
}

/// The start of a fault of `kind`; random selectors draw from `pool` when it holds enough
/// nodes for them, else from all `nodes`.
fn start_action(
    kind: FaultKind,
    p: &FaultParams,
    nodes: &[String],
    pool: &[String],
    rng: &mut ChaCha8Rng,
) -> Result<Action> {
    let settle_ms = p.settle.map_or(0, |d| d.as_millis() as u64);
    // A corruption hits a minority unless told otherwise: the cluster should be able to
    // survive it, so what it shows is whether the target notices.
    let default =
        (kind == FaultKind::Corrupt).then_some(NodeSelector::Named(SelectorName::Minority));
    let targets = |rng: &mut ChaCha8Rng| -> Result<Targets> {
        let sel = p
            .target
            .as_ref()
            .or(default.as_ref())
            .ok_or_else(|| anyhow!("{} needs a target", kind.as_str()))?;
        let from = match sel {
            NodeSelector::Named(_) if pool.len() >= wanted(sel, nodes.len()) => pool,
            _ => nodes,
        };
        select(sel, from, nodes.len(), settle_ms, rng)
    };
    Ok(match kind {
        FaultKind::Partition => {
            let spec = p
                .grudge
                .as_ref()
                .ok_or_else(|| anyhow!("a partition needs a grudge"))?;
            if let GrudgeSpec::Explicit(map) = spec {
                for n in map.keys().chain(map.values().flatten()) {
                    known(n, nodes)?;
                }
            }
            Action::StartPartition {
                grudge: grudge_for(spec, nodes, settle_ms, rng),
                one_way: p.one_way,
            }
        }
        FaultKind::Pause => Action::Pause {
            targets: targets(rng)?,
        },
        FaultKind::Kill => Action::Kill {
            targets: targets(rng)?,
        },
        FaultKind::PowerFail => Action::PowerFail {
            targets: targets(rng)?,
        },
        FaultKind::Leave => Action::Leave {
            targets: targets(rng)?,
        },
        FaultKind::Corrupt => Action::Corrupt {
            targets: targets(rng)?,
            damage: p
                .damage
                .ok_or_else(|| anyhow!("a corruption needs a damage kind"))?,
            probability: p.probability,
            seed: rng.random(),
        },
        FaultKind::ClockBump => {
            let max_ms = p.offset.map(|d| d.as_millis() as i64).unwrap_or(0).max(1);
            let t = targets(rng)?;
            let draw = |rng: &mut ChaCha8Rng| -> i64 {
                let mag = rng.random_range(max_ms / 2..=max_ms);
                let back = p.backwards.unwrap_or_else(|| rng.random_bool(0.5));
                if back {
                    -mag
                } else {
                    mag
                }
            };
            let offsets_ms = match &t {
                Targets::Nodes(ns) => ns.iter().map(|n| (n.clone(), draw(rng))).collect(),
                Targets::Primaries | Targets::NextPrimaries { .. } | Targets::Followers => {
                    BTreeMap::new()
                }
            };
            Action::BumpClock {
                targets: t,
                offsets_ms,
                offset_ms: draw(rng),
            }
        }
        FaultKind::ClockStrobe => Action::StrobeClock {
            targets: targets(rng)?,
            offset_ms: p.offset.map(|d| d.as_millis() as i64).unwrap_or(0),
            period_ms: p.period.map(|d| d.as_millis() as u64).unwrap_or(100),
        },
        FaultKind::Loss => Action::StartLoss {
            targets: targets(rng)?,
            percent: p.percent.unwrap_or(50),
        },
        FaultKind::Delay => Action::StartDelay {
            targets: targets(rng)?,
            latency_ms: p.latency.map_or(100, |d| d.as_millis() as u64),
            jitter_ms: p.jitter.map_or(0, |d| d.as_millis() as u64),
        },
        FaultKind::Twin => {
            let node = match targets(rng)? {
                Targets::Nodes(list) if list.len() == 1 => list[0].clone(),
                _ => bail!("a twin is of exactly one node"),
            };
            let peers: Vec<String> = nodes.iter().filter(|n| **n != node).cloned().collect();
            let sees_twin = match &p.see {
                Some(list) => {
                    for n in list {
                        known(n, &peers)?;
                    }
                    let mut v = list.clone();
                    v.sort();
                    v
                }
                None => random_split(&peers, rng),
            };
            Action::StartTwin {
                node,
                sees_twin,
                state: p.state.unwrap_or_default(),
            }
        }
        FaultKind::Twins => bail!("a twins scenario is a timeline step"),
    })
}

/// A Twins scenario from `at`: which nodes get twins, then one [`Action::TwinsRound`] per
/// round, each a partition of the nodes and twins drawn here (not enumerated), and the
/// stop of every twin after the last round.
fn scenario(
    at: Duration,
    p: &FaultParams,
    nodes: &[String],
    rng: &mut ChaCha8Rng,
) -> Result<Vec<Step>> {
    let count = p.twins.unwrap_or(1) as usize;
    if count == 0 || count > nodes.len() {
        bail!(
            "{count} twins, but this run has {} node(s) (at most one twin per node)",
            nodes.len()
        );
    }
    let (rounds, round) = (
        p.rounds.unwrap_or(1),
        p.round.unwrap_or(Duration::from_secs(3)),
    );
    let mut shuffled = nodes.to_vec();
    shuffled.shuffle(rng);
    let mut twins = shuffled[..count].to_vec();
    twins.sort();
    let mut steps = Vec::new();
    for r in 0..rounds {
        let groups = match p.groups.unwrap_or_default() {
            TwinsGroups::Any => draw_groups(nodes, &twins, rng),
            TwinsGroups::Quorums => draw_quorum_groups(nodes, &twins, rng),
        };
        let leader = p.leader.map(|aim| LeaderStep {
            aim,
            group: rng.random_range(0..groups.len()),
            wait_ms: (round / 2).as_millis() as u64,
            settle_ms: p.settle.map_or(0, |d| d.as_millis() as u64),
        });
        steps.push(Step {
            at: at + round * r,
            action: Action::TwinsRound {
                round: r + 1,
                twins: twins.clone(),
                groups,
                leader,
                state: p.state.unwrap_or_default(),
            },
        });
    }
    steps.push(Step {
        at: at + round * rounds,
        action: Action::StopTwin,
    });
    Ok(steps)
}

/// The name of node `node`'s twin as a member of a scenario's groups (and its process).
pub fn twin_name(node: &str) -> String {
    format!("{node}-twin")
}

/// The node whose twin `copy` names ([`twin_name`]'s inverse), if it names a twin.
pub fn twin_of(copy: &str) -> Option<&str> {
    copy.strip_suffix("-twin")
}

/// A partition of the nodes and the twins of `twins` into two or three groups (one to
/// three without twins), no group holding both copies of a node: each copy of a twinned
/// node lands in a different group, every other node in any. Empty groups are dropped;
/// members are sorted and groups ordered by their first member, so a plan reads the same
/// whatever order they were drawn in.
pub fn draw_groups(nodes: &[String], twins: &[String], rng: &mut ChaCha8Rng) -> Vec<Vec<String>> {
    let copies = nodes.len() + twins.len();
    let least = if twins.is_empty() { 1 } else { 2 };
    let k = rng.random_range(least..=3.max(least).min(copies.max(least)));
    let mut groups: Vec<Vec<String>> = vec![Vec::new(); k];
    for n in nodes {
        if twins.contains(n) {
            let mut slots: Vec<usize> = (0..k).collect();
            slots.shuffle(rng);
            groups[slots[0]].push(n.clone());
            groups[slots[1]].push(twin_name(n));
        } else {
            groups[rng.random_range(0..k)].push(n.clone());
        }
    }
    groups.retain(|g| !g.is_empty());
    for g in &mut groups {
        g.sort();
    }
    groups.sort();
    groups
}

/// Two groups of the nodes and the twins of `twins`, each with one copy of every twinned
/// node (which copy is drawn) and half of the other nodes (the odd one drawn): both groups
/// hold as many distinct nodes as the twins allow, so with more twins than a protocol
/// tolerates both may hold a quorum. Sorted as [`draw_groups`] sorts.
pub fn draw_quorum_groups(
    nodes: &[String],
    twins: &[String],
    rng: &mut ChaCha8Rng,
) -> Vec<Vec<String>> {
    let mut groups: Vec<Vec<String>> = vec![Vec::new(); 2];
    let mut others = Vec::new();
    for n in nodes {
        if twins.contains(n) {
            let first = rng.random_range(0..2);
            groups[first].push(n.clone());
            groups[1 - first].push(twin_name(n));
        } else {
            others.push(n.clone());
        }
    }
    others.shuffle(rng);
    let half = others.len() / 2 + rng.random_range(0..=others.len() % 2);
    for (i, n) in others.into_iter().enumerate() {
        groups[usize::from(i >= half)].push(n);
    }
    groups.retain(|g| !g.is_empty());
    for g in &mut groups {
        g.sort();
    }
    groups.sort();
    groups
}

/// The peers that see a twin when the nemesis does not say: a seeded random non-empty
/// part, leaving at least one peer to the original when there are two or more, so the
/// twin and the original each have someone to talk to.
fn random_split(peers: &[String], rng: &mut ChaCha8Rng) -> Vec<String> {
    if peers.is_empty() {
        return Vec::new();
    }
    let mut shuffled = peers.to_vec();
    shuffled.shuffle(rng);
    let k = if peers.len() == 1 {
        1
    } else {
        rng.random_range(1..peers.len())
    };
    let mut v = shuffled[..k].to_vec();
    v.sort();
    v
}

fn known(n: &str, nodes: &[String]) -> Result<()> {
    if nodes.iter().any(|x| x == n) {
        Ok(())
    } else {
        bail!("unknown node {n} (this run has {})", nodes.join(", "))
    }
}

/// How many nodes a random selector takes out of `n` (the size of the whole cluster, so a
/// disjoint draw keeps a `majority` a majority); 0 for the others.
fn wanted(sel: &NodeSelector, n: usize) -> usize {
    match sel {
        NodeSelector::Named(SelectorName::One) => 1,
        NodeSelector::Named(SelectorName::Minority) => (n.saturating_sub(1) / 2).max(1),
        NodeSelector::Named(SelectorName::Majority) => n / 2 + 1,
        NodeSelector::Named(SelectorName::All) => n,
        _ => 0,
    }
}

/// Resolve a selector to nodes drawn from `nodes` (or to primaries, decided at fault time);
/// `n` is the cluster's size, which `minority` and `majority` are counted against.
fn select(
    sel: &NodeSelector,
    nodes: &[String],
    n: usize,
    settle_ms: u64,
    rng: &mut ChaCha8Rng,
) -> Result<Targets> {
    let mut shuffled = nodes.to_vec();
    shuffled.shuffle(rng);
    let take = |k: usize| -> Targets {
        let mut v: Vec<String> = shuffled[..k.min(shuffled.len())].to_vec();
        v.sort();
        Targets::Nodes(v)
    };
    Ok(match sel {
        NodeSelector::Named(SelectorName::One) => take(1),
        NodeSelector::Named(SelectorName::Minority) => take((n.saturating_sub(1) / 2).max(1)),
        NodeSelector::Named(SelectorName::Majority) => take(n / 2 + 1),
        NodeSelector::Named(SelectorName::All) => take(n),
        NodeSelector::Named(SelectorName::Primaries) => Targets::Primaries,
        NodeSelector::Named(SelectorName::NextPrimaries) => Targets::NextPrimaries { settle_ms },
        NodeSelector::Named(SelectorName::Followers) => Targets::Followers,
        NodeSelector::Nodes(list) => {
            for x in list {
                known(x, nodes)?;
            }
            Targets::Nodes(list.clone())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_relative_starts_are_known_as_such() {
        let at_leaders = Action::Pause {
            targets: Targets::Primaries,
        };
        let fixed = Action::Pause {
            targets: Targets::Nodes(vec!["n1".into()]),
        };
        assert!(at_leaders.aims_at_leaders() && at_leaders.is_start());
        assert!(!fixed.aims_at_leaders());
        assert!(Action::StartPartition {
            grudge: Grudge::NextPrimaries { settle_ms: 0 },
            one_way: false
        }
        .aims_at_leaders());
        assert!(!Action::Resume.is_start() && !Action::Resume.aims_at_leaders());
    }

    #[test]
    fn every_journaled_f_reads_back_as_its_edge() {
        let t = || Targets::Nodes(vec!["n1".into()]);
        let all = [
            Action::StartPartition {
                grudge: Grudge::NextPrimaries { settle_ms: 0 },
                one_way: false,
            },
            Action::StopPartition,
            Action::Pause { targets: t() },
            Action::Resume,
            Action::Kill { targets: t() },
            Action::Restart,
            Action::BumpClock {
                targets: t(),
                offsets_ms: BTreeMap::new(),
                offset_ms: 0,
            },
            Action::StrobeClock {
                targets: t(),
                offset_ms: 0,
                period_ms: 1,
            },
            Action::ResetClock,
            Action::StartLoss {
                targets: t(),
                percent: 1,
            },
            Action::StopLoss,
            Action::StartDelay {
                targets: t(),
                latency_ms: 1,
                jitter_ms: 0,
            },
            Action::StopDelay,
            Action::StartTwin {
                node: "n1".into(),
                sees_twin: vec!["n2".into()],
                state: TwinState::Fork,
            },
            Action::StopTwin,
            Action::PowerFail { targets: t() },
            Action::PowerRestore,
            Action::Corrupt {
                targets: t(),
                damage: Damage::Bitflip,
                probability: Some(0.5),
                seed: 7,
            },
            Action::RestartCorrupted,
        ];
        for a in &all {
            assert_eq!(FaultEdge::of(a.f()), Some(a.edge()), "{}", a.f());
        }
        // Every kind's inverse heals its group, and one reset heals both clock faults.
        for a in all.iter().filter(|a| a.is_start()) {
            let FaultEdge::Start(k) = a.edge() else {
                unreachable!()
            };
            assert_eq!(Action::heal(k).edge(), FaultEdge::Heal(k.heal_group()));
        }
        assert_eq!(FaultEdge::of("read"), None);
    }
    use crate::spec::parse_yaml;
    use std::path::Path;

    fn nodes(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    fn spec(text: &str) -> NemesisSpec {
        let p = Path::new("n.yaml");
        let s: NemesisSpec = parse_yaml(p, text).unwrap();
        s.validate(p).unwrap();
        s
    }

    const MIXED: &str = "name: all\ninterval: 3s\nduration: 4s\nfaults:\n  - {fault: partition, grudge: majority}\n  - {fault: pause, target: one}\n  - {fault: kill, target: minority}\n  - {fault: clock-bump, target: all, offset: 60s}\n";

    #[test]
    fn the_same_seed_reproduces_the_same_schedule() {
        let s = spec(MIXED);
        let a = compile(&s, &nodes(5), 42, Duration::from_secs(60)).unwrap();
        let b = compile(&s, &nodes(5), 42, Duration::from_secs(60)).unwrap();
        let c = compile(&s, &nodes(5), 43, Duration::from_secs(60)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.len() >= 16, "a fault every 7s over 60s: {}", a.len());
    }

    #[test]
    fn a_grudge_that_cuts_nothing_on_this_cluster_is_never_drawn() {
        let s = spec("name: p\ninterval: 1s\nduration: 1s\nfaults:\n  - {fault: partition, grudge: majorities-ring}\n  - {fault: partition, grudge: one}\n");
        for seed in 0..20 {
            for step in compile(&s, &nodes(3), seed, Duration::from_secs(30)).unwrap() {
                if let Action::StartPartition {
                    grudge: Grudge::Drops(d),
                    ..
                } = &step.action
                {
                    assert!(d.values().any(|s| !s.is_empty()), "seed {seed}: {d:?}");
                }
            }
        }
        // At five nodes the ring cuts links, and is drawn.
        let five = compile(&s, &nodes(5), 1, Duration::from_secs(30)).unwrap();
        assert!(five.iter().any(|st| matches!(&st.action, Action::StartPartition { grudge: Grudge::Drops(d), .. } if d.values().all(|s| s.len() == 2))));
        let only = spec("name: ring\ninterval: 1s\nduration: 1s\nfaults:\n  - {fault: partition, grudge: majorities-ring}\n");
        let err = compile(&only, &nodes(3), 1, Duration::from_secs(30))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("nemesis ring: on 3 nodes none of its faults cuts a link"),
            "{err}"
        );
    }

    #[test]
    fn every_fault_is_followed_by_its_inverse_within_the_run() {
        let s = spec(MIXED);
        let steps = compile(&s, &nodes(5), 7, Duration::from_secs(60)).unwrap();
        for pair in steps.chunks(2) {
            if let [start, stop] = pair {
                let expected = match start.action {
                    Action::StartPartition { .. } => Action::StopPartition,
                    Action::Pause { .. } => Action::Resume,
                    Action::Kill { .. } => Action::Restart,
                    Action::BumpClock { .. } => Action::ResetClock,
                    ref other => panic!("unexpected start {other:?}"),
                };
                assert_eq!(stop.action, expected);
                assert_eq!(stop.at - start.at, Duration::from_secs(4));
            }
        }
    }

    #[test]
    fn the_timeline_keeps_its_times_and_rejects_unknown_nodes() {
        let s = spec("name: t\ntimeline:\n  - {at: 5s, start: pause, target: [n2]}\n  - {at: 1s, start: partition, grudge: one}\n  - {at: 9s, stop: pause}\n");
        let steps = compile(&s, &nodes(3), 1, Duration::from_secs(30)).unwrap();
        let times: Vec<u64> = steps.iter().map(|s| s.at.as_secs()).collect();
        assert_eq!(times, vec![1, 5, 9]);
        assert_eq!(
            steps[1].action,
            Action::Pause {
                targets: Targets::Nodes(vec!["n2".into()])
            }
        );
        let bad = spec("name: t\ntimeline:\n  - {at: 5s, start: kill, target: [n9]}\n");
        let err = compile(&bad, &nodes(3), 1, Duration::from_secs(30))
            .unwrap_err()
            .to_string();
        assert!(err.contains("timeline[0]: unknown node n9"), "{err}");
    }

    #[test]
    fn concurrent_faults_share_their_windows_and_heal_in_reverse() {
        let s = spec("name: cp\ninterval: 2s\nduration: 3s\nconcurrent: true\nfaults:\n  - {fault: clock-bump, target: primaries, offset: 60s, backwards: true}\n  - {fault: partition, grudge: primaries}\n");
        let steps = compile(&s, &nodes(5), 9, Duration::from_secs(12)).unwrap();
        let fs: Vec<(u64, &str)> = steps
            .iter()
            .map(|s| (s.at.as_secs(), s.action.f()))
            .collect();
        assert_eq!(
            fs,
            vec![
                (2, "bump-clock"),
                (2, "start-partition"),
                (5, "stop-partition"),
                (5, "reset-clock"),
                (7, "bump-clock"),
                (7, "start-partition"),
                (10, "stop-partition"),
                (10, "reset-clock"),
            ]
        );
        let p = Path::new("n.yaml");
        let dup: NemesisSpec = parse_yaml(p, "name: d\ninterval: 1s\nduration: 1s\nconcurrent: true\nfaults:\n  - {fault: partition, grudge: one}\n  - {fault: partition, grudge: majority}\n").unwrap();
        assert!(dup
            .validate(p)
            .unwrap_err()
            .to_string()
            .contains("its own inverse"));
    }

    #[test]
    fn clock_bumps_stay_within_the_offset() {
        let s = spec("name: c\ninterval: 1s\nduration: 1s\nfaults:\n  - {fault: clock-bump, target: all, offset: 2m}\n");
        for step in compile(&s, &nodes(5), 3, Duration::from_secs(30)).unwrap() {
            if let Action::BumpClock { offsets_ms, .. } = step.action {
                assert_eq!(offsets_ms.len(), 5);
                assert!(offsets_ms
                    .values()
                    .all(|o| (60_000..=120_000).contains(&o.abs())));
            }
        }
    }

    #[test]
    fn twins_split_the_peers_by_seed_or_as_told() {
        let s = spec("name: t\ntimeline:\n  - {at: 1s, start: twin, target: one}\n  - {at: 2s, start: twin, target: [n2], see: [n3, n1]}\n  - {at: 3s, stop: twin}\n");
        let mut splits = std::collections::BTreeSet::new();
        for seed in 0..20 {
            let steps = compile(&s, &nodes(5), seed, Duration::from_secs(30)).unwrap();
            let Action::StartTwin {
                node, sees_twin, ..
            } = &steps[0].action
            else {
                panic!("{:?}", steps[0]);
            };
            assert!(!sees_twin.contains(node));
            assert!((1..4).contains(&sees_twin.len()), "{sees_twin:?}");
            splits.insert(sees_twin.clone());
            assert_eq!(
                steps[1].action,
                Action::StartTwin {
                    node: "n2".into(),
                    sees_twin: vec!["n1".into(), "n3".into()],
                    state: TwinState::Fresh,
                }
            );
            assert_eq!(steps[2].action, Action::StopTwin);
            assert_eq!(
                compile(&s, &nodes(5), seed, Duration::from_secs(30)).unwrap(),
                steps,
                "the same seed draws the same split"
            );
        }
        assert!(
            splits.len() > 3,
            "the split varies with the seed: {splits:?}"
        );
        let yaml = serde_yaml::to_string(&steps_of(&s)).unwrap();
        let back: Vec<Step> = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(back, steps_of(&s), "plan.yaml reads back");
    }

    #[test]
    fn a_twins_scenario_draws_its_rounds_from_the_seed_and_stops_after_the_last() {
        let s = spec("name: t\ntimeline:\n  - {at: 2s, start: twins, twins: 2, rounds: 5, round: 3s, leader: next-primaries, settle: 100ms}\n");
        let mut drawn = std::collections::BTreeSet::new();
        for seed in 0..30 {
            let steps = compile(&s, &nodes(4), seed, Duration::from_secs(60)).unwrap();
            assert_eq!(steps.len(), 6, "five rounds and the stop");
            assert_eq!(
                steps[5],
                Step {
                    at: Duration::from_secs(17),
                    action: Action::StopTwin
                }
            );
            for (i, st) in steps[..5].iter().enumerate() {
                assert_eq!(st.at, Duration::from_secs(2 + 3 * i as u64));
                let Action::TwinsRound {
                    round,
                    twins,
                    groups,
                    leader,
                    ..
                } = &st.action
                else {
                    panic!("{st:?}");
                };
                assert_eq!(*round as usize, i + 1);
                assert_eq!(twins.len(), 2);
                let mut all: Vec<&String> = groups.iter().flatten().collect();
                all.sort();
                assert_eq!(all.len(), 6, "every node and twin once: {groups:?}");
                all.dedup();
                assert_eq!(all.len(), 6, "{groups:?}");
                assert!((2..=3).contains(&groups.len()), "{groups:?}");
                for t in twins {
                    assert!(
                        groups
                            .iter()
                            .all(|g| !(g.contains(t) && g.contains(&twin_name(t)))),
                        "{t} and its twin apart: {groups:?}"
                    );
                }
                let l = leader.as_ref().unwrap();
                assert!(l.group < groups.len());
                assert_eq!((l.wait_ms, l.settle_ms), (1500, 100));
                drawn.insert(groups.clone());
            }
            assert_eq!(
                compile(&s, &nodes(4), seed, Duration::from_secs(60)).unwrap(),
                steps
            );
            let yaml = serde_yaml::to_string(&steps).unwrap();
            let back: Vec<Step> = serde_yaml::from_str(&yaml).unwrap();
            assert_eq!(back, steps, "plan.yaml reads back");
        }
        assert!(drawn.len() > 20, "partitions vary: {}", drawn.len());
        assert!(steps_of(&s)
            .iter()
            .all(|st| !st.action.is_start() || st.action.aims_at_leaders()));
        assert_eq!(
            FaultEdge::of("twins-round"),
            Some(FaultEdge::Start(FaultKind::Twins))
        );
        assert_eq!(FaultKind::Twins.heal_group(), FaultKind::Twin.heal_group());
    }

    #[test]
    fn without_twins_a_round_may_keep_everyone_together() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let sizes: std::collections::BTreeSet<usize> = (0..50)
            .map(|_| draw_groups(&nodes(3), &[], &mut rng).len())
            .collect();
        assert_eq!(sizes, [1, 2, 3].into_iter().collect());
    }

    #[test]
    fn a_leave_is_healed_by_a_join_and_both_read_back_from_the_journal() {
        let s =
            spec("name: t\ninterval: 2s\nduration: 2s\nfaults:\n  - {fault: leave, target: one}\n");
        let steps = compile(&s, &nodes(5), 1, Duration::from_secs(10)).unwrap();
        assert!(
            matches!(&steps[0].action, Action::Leave { targets: Targets::Nodes(n) } if n.len() == 1),
            "{steps:?}"
        );
        assert!(steps.iter().any(|s| s.action == Action::Join), "{steps:?}");
        assert_eq!(
            FaultEdge::of("leave"),
            Some(FaultEdge::Start(FaultKind::Leave))
        );
        assert_eq!(FaultEdge::of("join"), Some(FaultEdge::Heal("leave")));
        assert_eq!(Action::heal(FaultKind::Leave).f(), "join");
    }

    #[test]
    fn quorum_groups_give_both_sides_every_twinned_node_and_half_the_rest() {
        let s = spec("name: t\ntimeline:\n  - {at: 1s, start: twins, twins: 3, rounds: 6, round: 2s, groups: quorums}\n");
        for seed in 0..20 {
            for st in compile(&s, &nodes(7), seed, Duration::from_secs(30)).unwrap() {
                let Action::TwinsRound { twins, groups, .. } = &st.action else {
                    continue;
                };
                assert_eq!(groups.len(), 2, "{groups:?}");
                for g in groups {
                    assert_eq!(g.len(), 5, "3 twinned + 2 of 4 others: {groups:?}");
                    let ids: std::collections::BTreeSet<&str> =
                        g.iter().map(|c| twin_of(c).unwrap_or(c)).collect();
                    assert_eq!(ids.len(), 5, "distinct nodes: {groups:?}");
                    for t in twins {
                        assert!(ids.contains(t.as_str()), "{t} on both sides: {groups:?}");
                    }
                }
            }
        }
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let sizes: std::collections::BTreeSet<Vec<usize>> = (0..40)
            .map(|_| {
                let g = draw_quorum_groups(&nodes(4), &["n2".to_string()], &mut rng);
                let mut v: Vec<usize> = g.iter().map(Vec::len).collect();
                v.sort();
                v
            })
            .collect();
        assert_eq!(
            sizes,
            [vec![2, 3]].into_iter().collect(),
            "the odd node drawn"
        );
        let p = Path::new("n.yaml");
        let bad: NemesisSpec = parse_yaml(
            p,
            "name: t\ntimeline:\n  - {at: 1s, start: kill, target: one, groups: quorums}\n",
        )
        .unwrap();
        let e = format!("{:#}", bad.validate(p).unwrap_err());
        assert!(e.contains("only a twins scenario takes `groups`"), "{e}");
    }

    fn steps_of(s: &NemesisSpec) -> Vec<Step> {
        compile(s, &nodes(3), 7, Duration::from_secs(30)).unwrap()
    }

    #[test]
    fn leader_relative_faults_are_left_to_fault_time_with_their_settle() {
        let s = spec("name: t\ntimeline:\n  - {at: 0s, start: delay, target: all, latency: 100ms, jitter: 20ms}\n  - {at: 1s, start: partition, grudge: next-primaries, settle: 600ms}\n  - {at: 2s, start: kill, target: followers}\n  - {at: 3s, start: pause, target: next-primaries}\n  - {at: 4s, stop: delay}\n");
        let steps = compile(&s, &nodes(5), 1, Duration::from_secs(30)).unwrap();
        let actions: Vec<&Action> = steps.iter().map(|s| &s.action).collect();
        assert_eq!(
            actions,
            [
                &Action::StartDelay {
                    targets: Targets::Nodes(nodes(5)),
                    latency_ms: 100,
                    jitter_ms: 20
                },
                &Action::StartPartition {
                    grudge: Grudge::NextPrimaries { settle_ms: 600 },
                    one_way: false
                },
                &Action::Kill {
                    targets: Targets::Followers
                },
                &Action::Pause {
                    targets: Targets::NextPrimaries { settle_ms: 0 }
                },
                &Action::StopDelay,
            ]
        );
        assert_eq!(
            (Action::heal(FaultKind::Delay).f(), actions[0].f()),
            ("stop-delay", "start-delay")
        );
    }

    #[test]
    fn a_disjoint_window_draws_each_fault_from_the_nodes_not_hit_yet() {
        let p = std::path::Path::new("os-crash.yaml");
        let text = "name: oc\ninterval: 1s\nduration: 1s\nconcurrent: true\ndisjoint: true\nfaults:\n  - {fault: power-fail, target: one}\n  - {fault: pause, target: minority}\n";
        let s: NemesisSpec = crate::spec::parse_yaml(p, text).unwrap();
        s.validate(p).unwrap();
        let nodes: Vec<String> = (1..=5).map(|i| format!("n{i}")).collect();
        let mut windows = 0;
        for seed in 0..20 {
            let steps = compile(&s, &nodes, seed, Duration::from_secs(30)).unwrap();
            for pair in steps.windows(2) {
                if let (
                    Action::PowerFail {
                        targets: Targets::Nodes(crashed),
                    },
                    Action::Pause {
                        targets: Targets::Nodes(paused),
                    },
                ) = (&pair[0].action, &pair[1].action)
                {
                    windows += 1;
                    assert_eq!(crashed.len(), 1);
                    // A minority of the cluster, not of the nodes left.
                    assert_eq!(paused.len(), 2);
                    assert!(!paused.contains(&crashed[0]), "seed {seed}: {pair:?}");
                }
            }
        }
        assert!(windows > 100, "{windows}");
        // Without `disjoint` the same draw may hit the crashed node again.
        let overlapping: NemesisSpec =
            crate::spec::parse_yaml(p, &text.replace("disjoint: true\n", "")).unwrap();
        let any_overlap = (0..20).any(|seed| {
            let steps = compile(&overlapping, &nodes, seed, Duration::from_secs(30)).unwrap();
            steps
                .windows(2)
                .any(|pair| match (&pair[0].action, &pair[1].action) {
                    (
                        Action::PowerFail {
                            targets: Targets::Nodes(c),
                        },
                        Action::Pause {
                            targets: Targets::Nodes(p),
                        },
                    ) => p.contains(&c[0]),
                    _ => false,
                })
        });
        assert!(any_overlap);
        let bad: NemesisSpec = crate::spec::parse_yaml(
            p,
            "name: d\ninterval: 1s\nduration: 1s\ndisjoint: true\nfaults:\n  - {fault: power-fail, target: one}\n",
        )
        .unwrap();
        let err = bad.validate(p).unwrap_err().to_string();
        assert!(
            err.contains("disjoint: only a `concurrent: true` nemesis"),
            "{err}"
        );
    }

    #[test]
    fn a_corruption_hits_a_minority_by_default_with_a_seed_of_its_own() {
        let s = spec("name: c\ninterval: 2s\nduration: 1s\nfaults:\n  - {fault: corrupt, damage: bitflip, probability: 0.01}\n");
        let a = compile(&s, &nodes(5), 7, Duration::from_secs(20)).unwrap();
        assert_eq!(
            a,
            compile(&s, &nodes(5), 7, Duration::from_secs(20)).unwrap()
        );
        let starts: Vec<&Action> = a
            .iter()
            .map(|s| &s.action)
            .filter(|a| a.is_start())
            .collect();
        assert!(starts.len() > 3);
        let mut seeds = Vec::new();
        for act in &starts {
            let Action::Corrupt {
                targets: Targets::Nodes(ns),
                damage,
                probability,
                seed,
            } = act
            else {
                panic!("{act:?}");
            };
            assert_eq!(ns.len(), 2, "a minority of five");
            assert_eq!((*damage, *probability), (Damage::Bitflip, Some(0.01)));
            seeds.push(*seed);
        }
        seeds.sort();
        seeds.dedup();
        assert_eq!(
            seeds.len(),
            starts.len(),
            "each corruption draws its own seed"
        );
        assert!(a.iter().any(|s| s.action == Action::RestartCorrupted));
        // plan.yaml holds the steps: they read back as written.
        let text = serde_yaml::to_string(&a).unwrap();
        let back: Vec<Step> = serde_yaml::from_str(&text).unwrap();
        assert_eq!(back, a);
    }
}
