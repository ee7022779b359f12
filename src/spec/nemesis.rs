//! `nemesis/<name>.yaml`: which faults are injected and when.
//!
//! Two ways to say "when", one per nemesis: a random schedule (`interval`, `duration`, a
//! list of `faults` to draw from, seeded) or an explicit `timeline` of steps. Either
//! compiles, with the run's seed, into one deterministic list of steps ([`crate::spec::schedule`]) that
//! is written into plan.yaml. A nemesis with no faults (`nemesis/none.yaml`) tests the
//! target under concurrency alone.

use super::{load_yaml, Violations};
use anyhow::Result;
use serde::de::{self, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NemesisSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Random schedule: quiet time before each fault starts.
    #[serde(default, with = "humantime_serde")]
    pub interval: Option<Duration>,
    /// Random schedule: how long each fault holds before its inverse heals it.
    #[serde(default, with = "humantime_serde")]
    pub duration: Option<Duration>,
    /// Random schedule: the faults drawn from (uniformly, with the run's seed).
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
    /// Instead of drawing one fault at a time, inject every listed fault together in each
    /// window (start in list order, heal together): e.g. skew the leader's clock and then
    /// isolate it. The faults must have distinct inverses.
    #[serde(default)]
    pub concurrent: bool,
    /// With `concurrent`: each fault's random target (`one`, `minority`, `majority`) is
    /// drawn from the nodes the window's earlier faults did not hit, while enough remain,
    /// so that an OS crash of one node and a pause of others hit different nodes
    /// (`nemesis/os-crash.yaml`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disjoint: bool,
    /// Explicit steps at fixed times.
    #[serde(default)]
    pub timeline: Vec<TimelineStep>,
    /// Before each fault starts, wait up to this long for the cluster to serve again (a
    /// leader for faults aimed at leaders, else the target's readiness probe), so a slow
    /// target is not hit again while it still recovers from the last fault. Later steps
    /// move with it; how far the timeline slipped is reported. Off when absent.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub recover: Option<Duration>,
}

/// The kinds of fault; each has a named inverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// Drop packets between nodes (nftables); inverse: heal.
    Partition,
    /// SIGSTOP the node's process group; inverse: SIGCONT.
    Pause,
    /// SIGKILL the node; inverse: start it again on the same data dir.
    Kill,
    /// Offset the node's wall clock; inverse: reset it.
    ClockBump,
    /// Flip the node's wall clock between +0 and an offset every period; inverse: reset.
    ClockStrobe,
    /// Drop a percentage of the node's packets; inverse: stop dropping.
    Loss,
    /// Hold the node's packets to its peers for a latency (± jitter); inverse: release.
    Delay,
    /// Start a second process with the node's identity in a namespace of its own; each
    /// other node sees one of the two at the node's address (`see`); inverse: stop it.
    Twin,
    /// SIGKILL the node and drop every write to its data dir it did not fsync (its data dir
    /// lives on the power-failure filesystem, `hosts::lazyfs`); inverse: start it again on
    /// what survived.
    PowerFail,
    /// Stop the node (SIGKILL), damage the files its target declares (`data_files` in
    /// target.yaml) as a disk would — flipped bits, a truncated tail, a stale copy of a
    /// chunk written back — and keep it down; inverse: start it again on the damaged files.
    Corrupt,
    /// Take the node out of the cluster's configuration (target.yaml `membership.remove`,
    /// asked of a running member) and stop it; inverse: `join`, add it back
    /// (`membership.add`) and start it, on an emptied data dir unless the target keeps it.
    Leave,
    /// A Twins-style scenario (Bano et al.): `twins` nodes get twins, and for `rounds`
    /// windows of `round` each, nodes and twins are partitioned into groups drawn from the
    /// seed (who sees which copy, which groups talk); inverse: stop the twins.
    Twins,
}

impl FaultKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Partition => "partition",
            FaultKind::Pause => "pause",
            FaultKind::Kill => "kill",
            FaultKind::ClockBump => "clock-bump",
            FaultKind::ClockStrobe => "clock-strobe",
            FaultKind::Loss => "loss",
            FaultKind::Delay => "delay",
            FaultKind::Twin => "twin",
            FaultKind::PowerFail => "power-fail",
            FaultKind::Corrupt => "corrupt",
            FaultKind::Leave => "leave",
            FaultKind::Twins => "twins",
        }
    }

    /// Whether the fault needs network namespaces (nftables inside the node).
    pub fn is_network(self) -> bool {
        matches!(
            self,
            FaultKind::Partition
                | FaultKind::Loss
                | FaultKind::Delay
                | FaultKind::Twin
                | FaultKind::Twins
        )
    }

    /// Faults healed by the same inverse share a group.
    pub fn heal_group(self) -> &'static str {
        match self {
            FaultKind::ClockBump | FaultKind::ClockStrobe => "clock",
            // One `stop-twin` ends every twin, a scenario's too.
            FaultKind::Twin | FaultKind::Twins => "twin",
            k => k.as_str(),
        }
    }

    pub fn is_clock(self) -> bool {
        matches!(self, FaultKind::ClockBump | FaultKind::ClockStrobe)
    }

    /// Whether it starts twins (a twin of one node, or a Twins scenario).
    pub fn is_twin(self) -> bool {
        matches!(self, FaultKind::Twin | FaultKind::Twins)
    }
}

/// What a `corrupt` fault does to the files it hits. Each kind records its intent in the
/// journal before the next one acts: file, offset, length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Damage {
    /// Every bit of every matched file flips with `probability` (seeded): a bad disk or a
    /// bad cable. A file with no flipped bit is left alone.
    Bitflip,
    /// One matched file (seeded) loses a Zipf-distributed number of bytes from its end,
    /// mostly a few, sometimes most of it: a lost tail after a crash the target did not
    /// expect.
    Truncate,
    /// One chunk of one matched file is overwritten by its copy from an earlier point of
    /// the run (when the nemesis armed, or this node's previous corruption): a stale or
    /// misdirected write.
    Restore,
}

impl Damage {
    pub fn as_str(self) -> &'static str {
        match self {
            Damage::Bitflip => "bitflip",
            Damage::Truncate => "truncate",
            Damage::Restore => "restore",
        }
    }
}

/// Whom a Twins scenario's leader-targeted step aims at in each round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoundLeader {
    /// The node(s) that say they lead when the round starts.
    Primaries,
    /// The next node to win an election, waited for (at most half a round) when the
    /// round starts.
    NextPrimaries,
}

/// What a twin starts from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TwinState {
    /// Its identity files only: a copy of the node that remembers nothing (amnesia).
    #[default]
    Fresh,
    /// A copy of the node's whole data dir, taken while the node is frozen: the twin and
    /// the original share their history up to that instant and fork there, as the twins of
    /// the Twins paper, which run side by side from the start.
    Fork,
}

/// How a Twins scenario draws each round's groups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TwinsGroups {
    /// Two or three groups, every copy anywhere (no group holds both copies of a node).
    #[default]
    Any,
    /// Two groups, each with one copy of every twinned node and half of the other nodes:
    /// the rounds in which both sides may hold a quorum of distinct nodes, the only ones
    /// in which a protocol that needs more than a quorum to commit (a run of leaders, as
    /// HotStuff's three consecutive views) can commit on both.
    Quorums,
}

impl TwinState {
    pub fn is_fresh(&self) -> bool {
        *self == TwinState::Fresh
    }
}

/// Who cannot hear whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum GrudgeSpec {
    Named(GrudgeName),
    /// node → the nodes whose packets it drops (`{n1: [n2, n3]}`).
    Explicit(BTreeMap<String, Vec<String>>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GrudgeName {
    /// Isolate one random node.
    One,
    /// Random halves: a minority and a majority.
    Majority,
    /// Every node sees a majority, but no two nodes see the same one.
    MajoritiesRing,
    /// Two halves joined only through one bridge node.
    Bridge,
    /// Isolate the node(s) that believe they lead (asked from the target at fault time).
    Primaries,
    /// Cut the leader(s) off together with random followers up to a minority: the deposed
    /// leader keeps replicating to them, so their logs diverge from the majority's.
    PrimariesMinority,
    /// Isolate the next node to win an election (one that did not lead when the fault
    /// started), as soon as the target reports it leads, or `settle` later.
    NextPrimaries,
    /// Isolate one node that does not lead (a random one, decided when the fault starts):
    /// the leader stays, and the cluster works on with one replica fewer.
    Follower,
}

/// Which nodes a process or clock fault hits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum NodeSelector {
    Named(SelectorName),
    Nodes(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SelectorName {
    One,
    Minority,
    Majority,
    Primaries,
    /// The next node to win an election (see the grudge of that name).
    NextPrimaries,
    /// Every node that does not say it leads (asked at fault time).
    Followers,
    All,
}

impl GrudgeName {
    /// Whether the nodes it cuts off are decided by who leads when the fault starts.
    pub fn aims_at_leaders(self) -> bool {
        matches!(
            self,
            GrudgeName::Primaries
                | GrudgeName::PrimariesMinority
                | GrudgeName::NextPrimaries
                | GrudgeName::Follower
        )
    }
}

impl SelectorName {
    /// Whether the nodes it names are decided by who leads when the fault starts.
    pub fn aims_at_leaders(self) -> bool {
        matches!(
            self,
            SelectorName::Primaries | SelectorName::NextPrimaries | SelectorName::Followers
        )
    }
}

/// A unit variant as written in YAML (`primaries-minority`).
fn kebab(v: &impl Serialize) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

const GRUDGE_FORMS: &str = "accepted: one, majority, majorities-ring, bridge, primaries, primaries-minority, next-primaries, follower, or a map {n1: [n2, n3]} (n1 drops packets from n2 and n3)";
const TARGET_FORMS: &str = "accepted: one, minority, majority, primaries, next-primaries, followers, all, or a list of nodes [n1, n2]";

// GrudgeSpec and NodeSelector are read by hand rather than as `untagged` enums, whose only
// error is "data did not match any variant of untagged enum": these name the field and
// list the accepted forms.
impl<'de> Deserialize<'de> for GrudgeSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = GrudgeSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a grudge ({GRUDGE_FORMS})")
            }
            fn visit_str<E: de::Error>(self, w: &str) -> Result<GrudgeSpec, E> {
                GrudgeName::deserialize(w.into_deserializer())
                    .map(GrudgeSpec::Named)
                    .map_err(|_: E| {
                        E::custom(format!(
                            "grudge: unknown grudge {}; {GRUDGE_FORMS}",
                            super::short_echo(w)
                        ))
                    })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<GrudgeSpec, A::Error> {
                BTreeMap::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(GrudgeSpec::Explicit)
                    .map_err(|e| {
                        de::Error::custom(format!("grudge: {}; {GRUDGE_FORMS}", super::bare(e)))
                    })
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for NodeSelector {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NodeSelector;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a target ({TARGET_FORMS})")
            }
            fn visit_str<E: de::Error>(self, w: &str) -> Result<NodeSelector, E> {
                SelectorName::deserialize(w.into_deserializer())
                    .map(NodeSelector::Named)
                    .map_err(|_: E| {
                        E::custom(format!(
                            "target: unknown target {}; {TARGET_FORMS}",
                            super::short_echo(w)
                        ))
                    })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<NodeSelector, A::Error> {
                Vec::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(NodeSelector::Nodes)
                    .map_err(|e| {
                        de::Error::custom(format!("target: {}; {TARGET_FORMS}", super::bare(e)))
                    })
            }
        }
        d.deserialize_any(V)
    }
}

/// One fault with its parameters (which ones apply depends on `fault`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    pub fault: FaultKind,
    #[serde(flatten)]
    pub params: FaultParams,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultParams {
    /// partition: the topology.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grudge: Option<GrudgeSpec>,
    /// partition: drop only incoming packets on the grudging node (the other side still
    /// hears it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub one_way: bool,
    /// pause, kill, clock, loss: which nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<NodeSelector>,
    /// clock-bump: the largest offset (a random offset of up to ± this); clock-strobe: the
    /// offset flipped to.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub offset: Option<Duration>,
    /// clock-bump: only move clocks backwards (or forwards with `false`); absent = either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backwards: Option<bool>,
    /// clock-strobe: time between flips.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub period: Option<Duration>,
    /// loss: percentage of packets dropped (1–100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
    /// next-primaries: how long after the new leader is seen the fault lands.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub settle: Option<Duration>,
    /// delay: how long each packet to a peer is held.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub latency: Option<Duration>,
    /// delay: each packet's latency is drawn from latency ± jitter (never reordering).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub jitter: Option<Duration>,
    /// twin: the other nodes that see the twin at the node's address (the rest see the
    /// original); absent = a seeded random split with at least one node on each side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub see: Option<Vec<String>>,
    /// twin, twins: what a twin starts from (`fresh`, the default, or `fork`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<TwinState>,
    /// twins: how many nodes get a twin (drawn from the seed; at most the run's nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub twins: Option<u32>,
    /// twins: how each round's groups are drawn (`any`, the default, or `quorums`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<TwinsGroups>,
    /// twins: how many windows the scenario draws.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rounds: Option<u32>,
    /// twins: how long each window holds.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub round: Option<Duration>,
    /// twins: each round, move the leader (`primaries`, or the `next-primaries` the round
    /// waits for) into a group drawn from the seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<RoundLeader>,
    /// corrupt: what is done to the files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damage: Option<Damage>,
    /// corrupt with `damage: bitflip`: the chance that each bit of a file flips
    /// (0 < probability ≤ 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
}

/// `- at: 5s\n  start: partition\n  grudge: majorities-ring` or `- at: 15s\n  stop: partition`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimelineStep {
    #[serde(with = "humantime_serde")]
    pub at: Duration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<FaultKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<FaultKind>,
    #[serde(flatten)]
    pub params: FaultParams,
}

impl NemesisSpec {
    pub fn load(path: &Path) -> Result<NemesisSpec> {
        let spec: NemesisSpec = load_yaml(path)?;
        spec.validate(path)?;
        Ok(spec)
    }

    /// Every fault kind this nemesis may inject.
    pub fn kinds(&self) -> Vec<FaultKind> {
        let mut k: Vec<FaultKind> = self
            .faults
            .iter()
            .map(|f| f.fault)
            .chain(self.timeline.iter().filter_map(|s| s.start))
            .collect();
        k.sort();
        k.dedup();
        k
    }

    /// Faults with their fields: `faults[i]` and the start steps `timeline[i]`.
    fn fault_params(&self) -> impl Iterator<Item = (String, &FaultParams)> {
        let random = self
            .faults
            .iter()
            .enumerate()
            .map(|(i, f)| (format!("faults[{i}]"), &f.params));
        let timeline = self
            .timeline
            .iter()
            .enumerate()
            .filter(|(_, s)| s.start.is_some())
            .map(|(i, s)| (format!("timeline[{i}]"), &s.params));
        random.chain(timeline)
    }

    /// Every node a fault names must be a node of the run. Checked for all faults and
    /// steps when the plan is resolved, not when the seed happens to draw the fault.
    pub fn check_nodes(&self, path: &Path, nodes: &[String]) -> Result<()> {
        let mut v = Violations::new(path);
        let rule = |n: &str| {
            format!(
                "{} is not a node of this run (its nodes: {})",
                super::short_echo(n),
                nodes.join(", ")
            )
        };
        let known = |n: &str| nodes.iter().any(|x| x == n);
        for (field, p) in self.fault_params() {
            if let Some(NodeSelector::Nodes(list)) = &p.target {
                for (j, n) in list.iter().enumerate() {
                    v.check(known(n), format!("{field}.target[{j}]"), rule(n));
                }
            }
            if let Some(see) = &p.see {
                let twinned = match &p.target {
                    Some(NodeSelector::Nodes(list)) => list.first().map(String::as_str),
                    _ => None,
                };
                for (j, n) in see.iter().enumerate() {
                    v.check(known(n), format!("{field}.see[{j}]"), rule(n));
                    v.check(
                        twinned != Some(n.as_str()),
                        format!("{field}.see[{j}]"),
                        format!(
                            "{} is the twinned node itself; `see` lists the other nodes that see its twin",
                            super::short_echo(n)
                        ),
                    );
                }
            }
            if let Some(t) = p.twins {
                v.check(
                    t as usize <= nodes.len(),
                    format!("{field}.twins"),
                    format!(
                        "{t} twins, but this run has {} node(s): a twin is of one node, and a node has at most one",
                        nodes.len()
                    ),
                );
            }
            if let Some(GrudgeSpec::Explicit(map)) = &p.grudge {
                for (k, drops) in map {
                    v.check(known(k), format!("{field}.grudge.{k}"), rule(k));
                    for (j, n) in drops.iter().enumerate() {
                        v.check(known(n), format!("{field}.grudge.{k}[{j}]"), rule(n));
                    }
                }
            }
        }
        v.into_result()
    }

    /// The faults whose nodes are decided by who leads when they start, by field
    /// (`faults[1].grudge`, `timeline[0].target`) with the form written there. Every fault
    /// counts, not just those the seed happens to draw.
    pub fn leader_fields(&self) -> Vec<(String, String)> {
        let mut found = Vec::new();
        for (field, p) in self.fault_params() {
            if let Some(GrudgeSpec::Named(g)) = &p.grudge {
                if g.aims_at_leaders() {
                    found.push((format!("{field}.grudge"), kebab(g)));
                }
            }
            if let Some(NodeSelector::Named(t)) = &p.target {
                if t.aims_at_leaders() {
                    found.push((format!("{field}.target"), kebab(t)));
                }
            }
            if let Some(l) = &p.leader {
                found.push((format!("{field}.leader"), kebab(l)));
            }
        }
        found
    }

    /// The fields that start faults of `kind` (`faults[0].fault`, `timeline[2].start`), to
    /// name where a host kind that cannot inject them refuses them.
    pub fn fields_of(&self, kind: FaultKind) -> Vec<String> {
        self.fields_where(|k| k == kind)
    }

    fn fields_where(&self, pick: impl Fn(FaultKind) -> bool) -> Vec<String> {
        let random = self
            .faults
            .iter()
            .enumerate()
            .filter(|(_, f)| pick(f.fault))
            .map(|(i, _)| format!("faults[{i}].fault"));
        let timeline = self
            .timeline
            .iter()
            .enumerate()
            .filter(|(_, s)| s.start.is_some_and(&pick))
            .map(|(i, _)| format!("timeline[{i}].start"));
        random.chain(timeline).collect()
    }

    /// The fields that start twins, one at a time or in a scenario.
    pub fn twin_fields(&self) -> Vec<String> {
        self.fields_where(FaultKind::is_twin)
    }

    /// Refuse every fault of `kind` with `why` (the hosts cannot inject it), each at its
    /// line.
    pub fn refuse(&self, path: &Path, kind: FaultKind, why: &str) -> Result<()> {
        Self::refuse_at(path, self.fields_of(kind), why)
    }

    /// Refuse every twin fault with `why` (the hosts cannot run twins), each at its line.
    pub fn refuse_twins(&self, path: &Path, why: &str) -> Result<()> {
        Self::refuse_at(path, self.twin_fields(), why)
    }

    fn refuse_at(path: &Path, fields: Vec<String>, why: &str) -> Result<()> {
        let mut v = Violations::new(path);
        for field in fields {
            v.check(false, field, why);
        }
        v.into_result()
    }

    /// Refuse faults aimed at leaders ([`Self::leader_fields`]) for a target whose client
    /// cannot say who leads (`why`, naming the target): each would hit nobody.
    pub fn check_leaders(&self, path: &Path, why: &str) -> Result<()> {
        let mut v = Violations::new(path);
        for (field, form) in self.leader_fields() {
            v.check(
                false,
                field,
                format!("`{form}` aims the fault at the leaders, but {why}"),
            );
        }
        v.into_result()
    }

    pub fn validate(&self, path: &Path) -> Result<()> {
        let mut v = Violations::new(path);
        v.check(!self.name.is_empty(), "name", "must not be empty");
        let random = self.interval.is_some() || self.duration.is_some() || !self.faults.is_empty();
        v.check(
            !random || self.timeline.is_empty(),
            "timeline",
            "a nemesis has either a random schedule (interval, duration, faults) or a timeline, not both; accepted: drop `interval`, `duration` and `faults`, or write those faults as timeline steps (`- {at: 5s, start: pause, target: one}` and `- {at: 10s, stop: pause}`)",
        );
        if random {
            v.check(
                self.interval
                    .is_some_and(|d| d >= Duration::from_millis(100)),
                "interval",
                "a random schedule needs an interval of at least 100ms",
            );
            v.check(
                self.duration
                    .is_some_and(|d| d >= Duration::from_millis(100)),
                "duration",
                "a random schedule needs a fault duration of at least 100ms",
            );
            v.check(
                !self.faults.is_empty(),
                "faults",
                "a random schedule needs at least one fault to draw from",
            );
        }
        for (i, f) in self.faults.iter().enumerate() {
            check_params(&mut v, &format!("faults[{i}]"), f.fault, &f.params);
            v.check(
                f.fault != FaultKind::Twins,
                format!("faults[{i}].fault"),
                "a twins scenario sets its own windows (rounds of `round` each), so it is a timeline step, not a fault a random schedule draws: `- {at: 2s, start: twins, twins: 1, rounds: 8, round: 3s}`",
            );
        }
        // Two scenarios at once would interleave their rounds: each owns its span.
        let mut spans: Vec<(usize, Duration, Duration)> = self
            .timeline
            .iter()
            .enumerate()
            .filter(|(_, s)| s.start == Some(FaultKind::Twins))
            .filter_map(|(i, s)| {
                let len = s.params.round? * s.params.rounds?;
                Some((i, s.at, s.at + len))
            })
            .collect();
        spans.sort_by_key(|s| s.1);
        for w in spans.windows(2) {
            v.check(
                w[1].1 >= w[0].2,
                format!("timeline[{}].at", w[1].0),
                format!(
                    "this twins scenario starts at {} s, before the one of timeline[{}] ends ({} s): scenarios must not overlap",
                    w[1].1.as_secs_f64(),
                    w[0].0,
                    w[0].2.as_secs_f64()
                ),
            );
        }
        v.check(
            !self.disjoint || self.concurrent,
            "disjoint",
            "only a `concurrent: true` nemesis draws its faults' nodes apart",
        );
        if self.concurrent {
            let mut heals: Vec<&str> = self.faults.iter().map(|f| f.fault.heal_group()).collect();
            heals.sort();
            let n = heals.len();
            heals.dedup();
            v.check(
                heals.len() == n,
                "faults",
                "with `concurrent: true` every fault must have its own inverse (one partition, one clock fault, …)",
            );
        }
        for (i, s) in self.timeline.iter().enumerate() {
            let field = format!("timeline[{i}]");
            match (s.start, s.stop) {
                (Some(k), None) => check_params(&mut v, &field, k, &s.params),
                (None, Some(_)) => v.check(
                    s.params == FaultParams::default(),
                    &field,
                    "a stop step takes no parameters besides `at`",
                ),
                _ => v.check(false, &field, "needs exactly one of `start` or `stop`"),
            }
        }
        v.into_result()
    }
}

fn check_params(v: &mut Violations<'_>, field: &str, kind: FaultKind, p: &FaultParams) {
    let has_target = p.target.is_some();
    if let Some(NodeSelector::Nodes(list)) = &p.target {
        let mut sorted = list.clone();
        sorted.sort();
        sorted.dedup();
        v.check(
            !list.is_empty() && sorted.len() == list.len(),
            format!("{field}.target"),
            "a list of nodes must name at least one node, each once",
        );
    }
    match kind {
        FaultKind::Partition => {
            v.check(p.grudge.is_some(), format!("{field}.grudge"), "a partition needs a grudge (one, majority, majorities-ring, bridge, primaries, or {node: [nodes]})");
            v.check(
                !has_target,
                format!("{field}.target"),
                "a partition takes a grudge, not a target",
            );
        }
        FaultKind::Corrupt => {
            v.check(
                p.damage.is_some(),
                format!("{field}.damage"),
                "a corruption needs a damage kind: bitflip (with a probability), truncate or restore",
            );
            if p.damage == Some(Damage::Bitflip) {
                v.check(
                    p.probability.is_some_and(|x| x > 0.0 && x <= 1.0),
                    format!("{field}.probability"),
                    "bitflip needs the chance that each bit flips, a probability above 0 and at most 1 (`probability: 0.001`)",
                );
            } else {
                v.check(
                    p.probability.is_none(),
                    format!("{field}.probability"),
                    "only bitflip damage takes a probability",
                );
            }
        }
        FaultKind::Pause | FaultKind::Kill | FaultKind::PowerFail | FaultKind::Leave => {
            v.check(
                has_target,
                format!("{field}.target"),
                "needs a target (one, minority, majority, primaries, all, or [nodes])",
            );
        }
        FaultKind::ClockBump | FaultKind::ClockStrobe => {
            v.check(has_target, format!("{field}.target"), "needs a target");
            v.check(
                p.offset
                    .is_some_and(|d| d > Duration::ZERO && d <= Duration::from_secs(24 * 3600)),
                format!("{field}.offset"),
                "needs an offset between 1ms and 24h",
            );
            if kind == FaultKind::ClockStrobe {
                v.check(
                    p.period.is_some_and(|d| d >= Duration::from_millis(10)),
                    format!("{field}.period"),
                    "needs a period of at least 10ms",
                );
            }
        }
        FaultKind::Loss => {
            v.check(has_target, format!("{field}.target"), "needs a target");
            v.check(
                p.percent.is_some_and(|x| (1..=100).contains(&x)),
                format!("{field}.percent"),
                "needs a percentage between 1 and 100",
            );
        }
        FaultKind::Twin => {
            let single = match &p.target {
                Some(NodeSelector::Named(SelectorName::One)) => true,
                Some(NodeSelector::Nodes(list)) => list.len() == 1,
                _ => false,
            };
            v.check(
                single,
                format!("{field}.target"),
                "a twin is of exactly one node: `one` or a list of one node ([n1])",
            );
            if let Some(see) = &p.see {
                let mut sorted = see.clone();
                sorted.sort();
                sorted.dedup();
                v.check(
                    sorted.len() == see.len(),
                    format!("{field}.see"),
                    "names each node at most once",
                );
            }
        }
        FaultKind::Twins => {
            v.check(
                !has_target,
                format!("{field}.target"),
                "a twins scenario draws its twinned nodes from the seed: it takes `twins: N`, not a target",
            );
            v.check(
                p.twins.is_some_and(|t| t >= 1),
                format!("{field}.twins"),
                "needs the number of twinned nodes, at least 1 (`twins: 1`)",
            );
            v.check(
                p.rounds.is_some_and(|r| (1..=10_000).contains(&r)),
                format!("{field}.rounds"),
                "needs a number of rounds between 1 and 10000",
            );
            v.check(
                p.round.is_some_and(|d| {
                    d >= Duration::from_millis(200) && d <= Duration::from_secs(600)
                }),
                format!("{field}.round"),
                "needs a round length between 200ms and 10m",
            );
        }
        FaultKind::Delay => {
            v.check(has_target, format!("{field}.target"), "needs a target");
            v.check(
                p.latency
                    .is_some_and(|d| d >= Duration::from_millis(1) && d <= Duration::from_secs(10)),
                format!("{field}.latency"),
                "needs a latency between 1ms and 10s",
            );
            v.check(
                p.jitter.is_none_or(|j| Some(j) <= p.latency),
                format!("{field}.jitter"),
                "jitter must not exceed the latency",
            );
        }
    }
    let next = matches!(p.grudge, Some(GrudgeSpec::Named(GrudgeName::NextPrimaries)))
        || matches!(
            p.target,
            Some(NodeSelector::Named(SelectorName::NextPrimaries))
        )
        || p.leader == Some(RoundLeader::NextPrimaries);
    v.check(
        p.settle.is_none() || next,
        format!("{field}.settle"),
        "only next-primaries takes a settle time",
    );
    v.check(
        p.settle.is_none_or(|d| d <= Duration::from_secs(10)),
        format!("{field}.settle"),
        "settle must be at most 10s",
    );
    if kind != FaultKind::Delay {
        v.check(
            p.latency.is_none() && p.jitter.is_none(),
            format!("{field}.latency"),
            "only a delay takes a latency and jitter",
        );
    }
    v.check(
        kind == FaultKind::Twin || p.see.is_none(),
        format!("{field}.see"),
        "only a twin takes `see`",
    );
    v.check(
        kind.is_twin() || p.state.is_none(),
        format!("{field}.state"),
        "only a twin or a twins scenario takes `state` (fresh or fork)",
    );
    if kind != FaultKind::Twins {
        for (name, set) in [
            ("twins", p.twins.is_some()),
            ("rounds", p.rounds.is_some()),
            ("round", p.round.is_some()),
            ("leader", p.leader.is_some()),
            ("groups", p.groups.is_some()),
        ] {
            v.check(
                !set,
                format!("{field}.{name}"),
                format!("only a twins scenario takes `{name}`"),
            );
        }
    }
    if kind != FaultKind::Corrupt {
        for (name, set) in [
            ("damage", p.damage.is_some()),
            ("probability", p.probability.is_some()),
        ] {
            v.check(
                !set,
                format!("{field}.{name}"),
                format!("only a corruption takes `{name}`"),
            );
        }
    }
    if kind != FaultKind::Partition {
        v.check(
            p.grudge.is_none(),
            format!("{field}.grudge"),
            "only a partition takes a grudge",
        );
        v.check(
            !p.one_way,
            format!("{field}.one_way"),
            "only a partition can be one-way",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse_yaml;

    #[test]
    fn reads_the_timeline_form_of_the_issue() {
        let p = Path::new("n.yaml");
        let n: NemesisSpec = parse_yaml(
            p,
            "name: t\ntimeline:\n  - at: 5s\n    start: partition\n    grudge: majorities-ring\n  - at: 15s\n    stop: partition\n",
        )
        .unwrap();
        n.validate(p).unwrap();
        assert_eq!(
            n.timeline[0].params.grudge,
            Some(GrudgeSpec::Named(GrudgeName::MajoritiesRing))
        );
        assert_eq!(n.kinds(), vec![FaultKind::Partition]);
    }

    #[test]
    fn reads_a_random_schedule_with_explicit_grudges_and_node_lists() {
        let p = Path::new("n.yaml");
        let n: NemesisSpec = parse_yaml(
            p,
            "name: r\ninterval: 5s\nduration: 5s\nfaults:\n  - {fault: partition, grudge: {n1: [n2, n3]}, one_way: true}\n  - {fault: pause, target: [n1, n2]}\n  - {fault: clock-strobe, target: one, offset: 200ms, period: 50ms}\n",
        )
        .unwrap();
        n.validate(p).unwrap();
        assert_eq!(
            n.faults[1].params.target,
            Some(NodeSelector::Nodes(vec!["n1".into(), "n2".into()]))
        );
    }

    #[test]
    fn names_every_missing_parameter() {
        let p = Path::new("nemesis/bad.yaml");
        let n: NemesisSpec = parse_yaml(
            p,
            "name: b\ninterval: 5s\nduration: 5s\nfaults:\n  - {fault: partition}\n  - {fault: loss, target: all, percent: 0}\n",
        )
        .unwrap();
        let err = n.validate(p).unwrap_err().to_string();
        assert!(
            err.contains("nemesis/bad.yaml: faults[0].grudge: a partition needs a grudge"),
            "{err}"
        );
        assert!(
            err.contains("faults[1].percent: needs a percentage"),
            "{err}"
        );
    }

    #[test]
    fn rejects_an_unknown_fault_with_its_line() {
        let err = parse_yaml::<NemesisSpec>(
            Path::new("n.yaml"),
            "name: x\ninterval: 1s\nduration: 1s\nfaults:\n  - {fault: meteor}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("n.yaml:"), "{err}");
        assert!(err.contains("meteor"), "{err}");
    }

    #[test]
    fn delay_and_settle_are_checked_where_they_belong() {
        let p = Path::new("nemesis/slow.yaml");
        let n: NemesisSpec = parse_yaml(
            p,
            "name: s\ntimeline:\n  - {at: 0s, start: delay, target: all, latency: 20s}\n  - {at: 1s, start: delay, target: one, latency: 10ms, jitter: 50ms}\n  - {at: 2s, start: kill, target: all, latency: 5ms}\n  - {at: 3s, start: partition, grudge: primaries, settle: 1s}\n  - {at: 4s, start: kill, target: next-primaries, settle: 20s}\n",
        )
        .unwrap();
        let err = n.validate(p).unwrap_err().to_string();
        for want in [
            "timeline[0].latency: needs a latency between 1ms and 10s",
            "timeline[1].jitter: jitter must not exceed the latency",
            "timeline[2].latency: only a delay takes a latency",
            "timeline[3].settle: only next-primaries takes a settle time",
            "timeline[4].settle: settle must be at most 10s",
        ] {
            assert!(err.contains(want), "{want} missing from {err}");
        }
        let ok: NemesisSpec = parse_yaml(
            p,
            "name: s\ntimeline:\n  - {at: 0s, start: delay, target: all, latency: 100ms, jitter: 20ms}\n  - {at: 1s, start: partition, grudge: next-primaries, settle: 600ms}\n  - {at: 2s, start: kill, target: followers}\n",
        )
        .unwrap();
        ok.validate(p).unwrap();
        assert!(ok.kinds().iter().any(|k| k.is_network()));
    }

    #[test]
    fn unknown_grudges_and_targets_list_the_accepted_forms_at_their_line() {
        let p = Path::new("nemesis/bad.yaml");
        let err = parse_yaml::<NemesisSpec>(
            p,
            "name: b\ninterval: 5s\nduration: 5s\nfaults:\n  - fault: partition\n    grudge: everyone\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("nemesis/bad.yaml:5:"), "{err}");
        assert!(err.contains("grudge: unknown grudge \"everyone\""), "{err}");
        assert!(err.contains("majorities-ring"), "{err}");
        assert!(err.contains("{n1: [n2, n3]}"), "{err}");
        assert!(!err.contains("untagged"), "{err}");
        let err = parse_yaml::<NemesisSpec>(
            p,
            "name: b\ntimeline:\n  - {at: 1s, start: pause, target: everyone}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("nemesis/bad.yaml:3:"), "{err}");
        assert!(err.contains("target: unknown target \"everyone\""), "{err}");
        assert!(err.contains("a list of nodes [n1, n2]"), "{err}");
    }

    #[test]
    fn refuses_faults_and_timeline_together_and_empty_node_lists() {
        let p = Path::new("n.yaml");
        let n: NemesisSpec = parse_yaml(
            p,
            "name: both\ninterval: 5s\nduration: 5s\nfaults: [{fault: kill, target: []}]\ntimeline:\n  - {at: 1s, start: pause, target: one}\n",
        )
        .unwrap();
        let err = n.validate(p).unwrap_err().to_string();
        assert!(
            err.contains("timeline: a nemesis has either a random schedule (interval, duration, faults) or a timeline, not both"),
            "{err}"
        );
        assert!(
            err.contains("faults[0].target: a list of nodes must name at least one node"),
            "{err}"
        );
    }

    #[test]
    fn every_named_node_is_checked_whatever_the_seed_draws() {
        let p = Path::new("n.yaml");
        let n: NemesisSpec = parse_yaml(
            p,
            "name: r\ninterval: 5s\nduration: 5s\nfaults:\n  - {fault: kill, target: one}\n  - {fault: pause, target: [n1, n99]}\n  - {fault: partition, grudge: {n1: [n2, n7]}}\n",
        )
        .unwrap();
        n.validate(p).unwrap();
        let nodes: Vec<String> = ["n1", "n2", "n3"].map(String::from).to_vec();
        let err = n.check_nodes(p, &nodes).unwrap_err().to_string();
        assert!(
            err.contains("n.yaml: faults[1].target[1]: \"n99\" is not a node of this run (its nodes: n1, n2, n3)"),
            "{err}"
        );
        assert!(
            err.contains("faults[2].grudge.n1[1]: \"n7\" is not a node"),
            "{err}"
        );
        let t: NemesisSpec = parse_yaml(
            p,
            "name: t\ntimeline:\n  - {at: 1s, start: kill, target: [n4]}\n  - {at: 2s, stop: kill}\n",
        )
        .unwrap();
        let err = t.check_nodes(p, &nodes).unwrap_err().to_string();
        assert!(err.contains("timeline[0].target[0]: \"n4\""), "{err}");
        assert!(t.check_nodes(p, &["n4".to_string()]).is_ok());
    }

    #[test]
    fn a_twin_is_of_one_node_and_only_a_twin_takes_see() {
        let p = Path::new("nemesis/twins.yaml");
        let n: NemesisSpec = parse_yaml(
            p,
            "name: t\ntimeline:\n  - {at: 1s, start: twin, target: all}\n  - {at: 2s, start: twin, target: [n1], see: [n2, n2]}\n  - {at: 3s, start: kill, target: one, see: [n2], state: fork}\n  - {at: 4s, stop: twin}\n",
        )
        .unwrap();
        let err = n.validate(p).unwrap_err().to_string();
        for want in [
            "timeline[0].target: a twin is of exactly one node: `one` or a list of one node ([n1])",
            "timeline[1].see: names each node at most once",
            "timeline[2].see: only a twin takes `see`",
            "timeline[2].state: only a twin or a twins scenario takes `state` (fresh or fork)",
        ] {
            assert!(err.contains(want), "{want} missing from {err}");
        }
        let ok: NemesisSpec = parse_yaml(
            p,
            "name: t\ntimeline:\n  - {at: 1s, start: twin, target: [n1], see: [n1, n7], state: fork}\n  - {at: 2s, start: twin, target: one, state: fresh}\n  - {at: 3s, stop: twin}\n",
        )
        .unwrap();
        ok.validate(p).unwrap();
        let nodes: Vec<String> = ["n1", "n2", "n3"].map(String::from).to_vec();
        let err = ok.check_nodes(p, &nodes).unwrap_err().to_string();
        assert!(
            err.contains("timeline[0].see[0]: \"n1\" is the twinned node itself"),
            "{err}"
        );
        assert!(
            err.contains("timeline[0].see[1]: \"n7\" is not a node of this run"),
            "{err}"
        );
        assert_eq!(ok.twin_fields(), ["timeline[0].start", "timeline[1].start"]);
        assert!(ok.kinds().iter().all(|k| k.is_network()));
    }

    #[test]
    fn corruptions_are_checked_for_damage_and_probability_at_their_fields() {
        let p = Path::new("nemesis/corrupt.yaml");
        let err = parse_yaml::<NemesisSpec>(
            p,
            "name: c\ntimeline:\n  - {at: 1s, start: corrupt, damage: shred}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("nemesis/corrupt.yaml:3:"), "{err}");
        assert!(err.contains("shred"), "{err}");
        assert!(err.contains("bitflip"), "{err}");
        let n: NemesisSpec = parse_yaml(
            p,
            "name: c\ninterval: 5s\nduration: 3s\nfaults:\n  - {fault: corrupt, damage: bitflip, probability: 1.5}\n  - {fault: corrupt, damage: bitflip}\n  - {fault: corrupt, damage: truncate, probability: 0.1}\n  - {fault: corrupt}\n  - {fault: kill, target: one, damage: restore}\n  - {fault: corrupt, damage: bitflip, probability: 0}\n",
        )
        .unwrap();
        let err = n.validate(p).unwrap_err().to_string();
        for want in [
            "faults[0].probability: bitflip needs the chance that each bit flips, a probability above 0 and at most 1",
            "faults[1].probability: bitflip needs",
            "faults[2].probability: only bitflip damage takes a probability",
            "faults[3].damage: a corruption needs a damage kind",
            "faults[4].damage: only a corruption takes `damage`",
            "faults[5].probability: bitflip needs",
        ] {
            assert!(err.contains(want), "{want} missing from {err}");
        }
        // No target: a minority, drawn at plan time.
        let ok: NemesisSpec = parse_yaml(
            p,
            "name: c\ninterval: 5s\nduration: 3s\nfaults:\n  - {fault: corrupt, damage: bitflip, probability: 0.001}\n  - {fault: corrupt, damage: restore, target: all}\n",
        )
        .unwrap();
        ok.validate(p).unwrap();
        assert_eq!(ok.fields_of(FaultKind::Corrupt).len(), 2);
        assert!(!FaultKind::Corrupt.is_network());
    }
}
