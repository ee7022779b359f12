//! The nemesis: runs a compiled schedule ([`crate::spec::schedule`]) against a cluster and
//! heals what it broke.
//!
//! One file per fault kind, each a verb and its named inverse: [`partition`]
//! (partition/heal), [`pause`] (pause/resume), [`kill`] (kill/start), [`clock`]
//! (bump or strobe/reset), [`loss`] (loss/stop loss), [`delay`] (delay/stop delay),
//! [`twin`] (start or switch a twin, or a Twins scenario's round/stop twins), [`power`]
//! (power-fail/power-restore), [`corrupt`] (corrupt/restart-corrupted), [`membership`]
//! (leave/join). This
//! file only dispatches, journals, resolves who leads, and keeps the in-force set.
//!
//! The in-force set follows the rule of the cleanup registry: a fault's intent is recorded
//! *before* it acts and removed only *after* its inverse succeeded. A start cut half-way
//! (an error, a step that overran and was aborted) therefore stays listed, and
//! [`Nemesis::heal_all`] heals exactly that set, every inverse being idempotent. The
//! schedule is stopped between steps through a cancellation signal, never in the middle of
//! one. Long-lived parts of a fault (the clock strobe task, the delay verdict threads) are
//! owned by its entry in the set and stop when it heals or is dropped.
//!
//! Each action is journaled as process `nemesis` with the affected nodes, so checkers
//! ignore it and reports can shade fault windows.
//!
//! Adding a fault kind: a file here with its verb and inverse, a field in [`InForce`], an
//! arm in [`Nemesis::apply`] and in [`Nemesis::heal_all`], and its entry in the schedule.

pub mod clock;
pub mod corrupt;
pub mod delay;
pub mod kill;
pub mod loss;
pub mod membership;
pub mod partition;
pub mod pause;
pub mod power;
#[cfg(test)]
pub(crate) mod tests;
pub mod twin;

use crate::history::{Journal, Op, OpType, Process};
use crate::hosts::clock::Clocks;
use crate::spec::schedule::{Action, Step, Targets};
use crate::target::Cluster;
use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Mutex, MutexGuard};
use tokio::time::Instant;

/// How long asking the target who leads may take.
const LEADER_QUERY_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a `next-primaries` fault waits for an election.
const NEXT_LEADER_WAIT: Duration = Duration::from_secs(10);
/// How often it asks who leads meanwhile: a new leader's first entries take a round trip
/// to reach its followers, and the fault should land inside that window when the network
/// is slowed by a delay fault.
const NEXT_LEADER_POLL: Duration = Duration::from_millis(20);

/// How late a step may run before the tally reports that the timeline slipped.
pub const SLIP_REPORTED: Duration = Duration::from_secs(1);
/// How often a fault waiting for the cluster to recover asks.
const RECOVERY_POLL: Duration = Duration::from_millis(100);

/// Faults in force, per kind: what each inverse must undo.
#[derive(Debug, Default)]
pub struct InForce {
    pub partitioned: BTreeSet<String>,
    pub paused: BTreeSet<String>,
    pub killed: BTreeSet<String>,
    pub clock: clock::Skewed,
    pub lossy: BTreeSet<String>,
    /// A node is listed before its verdict thread exists (`None`), so a start that failed
    /// after binding the queue or before adding the rule is still healed.
    pub delayed: BTreeMap<String, Option<delay::Delayer>>,
    /// Twinned node → the peers that see its twin.
    pub twins: BTreeMap<String, Vec<String>>,
    /// Nodes killed by a power failure, to be started again on what their disks kept.
    pub powered_off: BTreeSet<String>,
    /// Nodes stopped by a corruption, to be started again on their damaged files.
    pub corrupted: BTreeSet<String>,
    /// Nodes taken out of the cluster's configuration, to be added back.
    pub left: BTreeSet<String>,
}

impl InForce {
    pub fn is_empty(&self) -> bool {
        self.partitioned.is_empty()
            && self.paused.is_empty()
            && self.killed.is_empty()
            && self.clock.is_empty()
            && self.lossy.is_empty()
            && self.delayed.is_empty()
            && self.twins.is_empty()
            && self.powered_off.is_empty()
            && self.corrupted.is_empty()
            && self.left.is_empty()
    }
}

/// What one action did, for the journal.
#[derive(Debug)]
pub struct Landed {
    pub value: Value,
    /// Why it hit nothing (no leader to isolate), if so.
    pub note: Option<String>,
}

impl Landed {
    fn on(value: Value) -> Landed {
        Landed { value, note: None }
    }
}

/// Faults the schedule started and whether each landed: a run whose faults all hit nobody
/// tested nothing the nemesis promised.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct FaultTally {
    /// Starts the schedule reached before its deadline.
    pub planned: u64,
    /// Starts that hit at least one node.
    pub landed: u64,
    /// The starts that did not, in order: `f`, seconds into the run, why.
    pub missed: Vec<Missed>,
    /// Steps that ran more than [`SLIP_REPORTED`] after their planned time (an election
    /// waited for, a recovery waited for, a slow step before them).
    pub slipped: Vec<Slipped>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Slipped {
    pub f: String,
    pub at_s: u64,
    pub late_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Missed {
    pub f: String,
    pub at_s: u64,
    pub why: String,
}

/// How much of the in-force set a heal undoes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealMode {
    /// Everything, killed nodes restarted: the end of every schedule, before final reads.
    Full,
    /// Everything that would outlive the run, but killed nodes stay down: the teardown
    /// that follows an error or an interrupt stops every node anyway.
    Teardown,
}

pub struct Nemesis {
    cluster: Arc<Cluster>,
    journal: Arc<Journal>,
    clocks: Option<Arc<Clocks>>,
    in_force: Mutex<InForce>,
    tally: std::sync::Mutex<FaultTally>,
    /// The schedule's cancellation, while it runs: a step still waiting for an election
    /// has not acted yet, so it may stop waiting (a step that acts always finishes).
    cancel: std::sync::Mutex<Option<watch::Receiver<bool>>>,
    /// Earlier copies of the nodes' data files, which a `restore` corruption writes back.
    snapshots: std::sync::Mutex<corrupt::Snapshots>,
}

impl Nemesis {
    pub fn new(
        cluster: Arc<Cluster>,
        journal: Arc<Journal>,
        clocks: Option<Arc<Clocks>>,
    ) -> Nemesis {
        Nemesis {
            cluster,
            journal,
            clocks,
            in_force: Mutex::new(InForce::default()),
            tally: std::sync::Mutex::new(FaultTally::default()),
            cancel: std::sync::Mutex::new(None),
            snapshots: std::sync::Mutex::new(corrupt::Snapshots::default()),
        }
    }

    /// What the schedule started so far and what landed.
    pub fn tally(&self) -> FaultTally {
        self.tally.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The in-force set, locked. Never held across an action on a node.
    pub(crate) async fn in_force(&self) -> MutexGuard<'_, InForce> {
        self.in_force.lock().await
    }

    /// The earlier copies of data files, locked. Never held across an await.
    pub(crate) fn snapshots(&self) -> std::sync::MutexGuard<'_, corrupt::Snapshots> {
        self.snapshots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether no fault is in force.
    pub async fn is_clear(&self) -> bool {
        self.in_force().await.is_empty()
    }

    /// Faults currently in force, for the progress line.
    pub async fn describe(&self) -> String {
        let f = self.in_force().await;
        let mut parts = Vec::new();
        let mut add = |name: &str, set: &BTreeSet<String>| {
            if !set.is_empty() {
                parts.push(format!(
                    "{name} {}",
                    set.iter().cloned().collect::<Vec<_>>().join(",")
                ));
            }
        };
        add("partitioned", &f.partitioned);
        add("paused", &f.paused);
        add("killed", &f.killed);
        add("clock", &f.clock.nodes);
        add("loss", &f.lossy);
        add("delay", &f.delayed.keys().cloned().collect());
        add("twin", &f.twins.keys().cloned().collect());
        add("powered off", &f.powered_off);
        add("corrupted", &f.corrupted);
        add("left", &f.left);
        if parts.is_empty() {
            "no faults".into()
        } else {
            parts.join("; ")
        }
    }

    /// Run the schedule from `start` until `deadline` (steps due after it are not run) or
    /// until `cancel` says stop. A step that has begun runs to its end: the cancellation is
    /// looked at only between steps.
    pub async fn run(
        &self,
        steps: &[Step],
        start: Instant,
        deadline: Instant,
        mut cancel: watch::Receiver<bool>,
    ) -> Result<()> {
        *self.cancel.lock().unwrap_or_else(|p| p.into_inner()) = Some(cancel.clone());
        corrupt::arm(self, steps);
        let recover = self.cluster.plan().nemesis.recover;
        // How far waiting for recovery moved the rest of the timeline: a fault keeps its
        // planned length, its heal moves with its start.
        let mut shift = Duration::ZERO;
        for step in steps {
            let at = start + step.at + shift;
            if at >= deadline || *cancel.borrow() {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(at) => {}
                _ = cancelled(&mut cancel) => break,
            }
            if let (Some(bound), true) = (recover, step.action.is_start()) {
                shift += self.wait_recovered(&step.action, bound, &mut cancel).await;
                if *cancel.borrow() {
                    break;
                }
            }
            let late = Instant::now().saturating_duration_since(start + step.at);
            if late > SLIP_REPORTED {
                tracing::info!(
                    "nemesis: {} planned at {:.1} s runs {:.1} s late",
                    step.action.f(),
                    step.at.as_secs_f64(),
                    late.as_secs_f64()
                );
                self.tally
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .slipped
                    .push(Slipped {
                        f: step.action.f().into(),
                        at_s: step.at.as_secs(),
                        late_ms: late.as_millis() as u64,
                    });
            }
            let landed = self.apply(&step.action).await;
            if step.action.is_start() {
                let mut t = self.tally.lock().unwrap_or_else(|p| p.into_inner());
                t.planned += 1;
                match &landed {
                    Ok(None) => t.landed += 1,
                    Ok(Some(why)) => t.missed.push(Missed {
                        f: step.action.f().into(),
                        at_s: step.at.as_secs(),
                        why: why.clone(),
                    }),
                    Err(e) => t.missed.push(Missed {
                        f: step.action.f().into(),
                        at_s: step.at.as_secs(),
                        why: format!("{e:#}"),
                    }),
                }
            }
            landed?;
        }
        Ok(())
    }

    fn record(&self, f: &str, value: Value, error: Option<String>) -> Result<()> {
        self.journal.record(Op {
            index: 0,
            time_ns: 0,
            process: Process::Nemesis,
            kind: OpType::Info,
            f: f.to_string(),
            key: None,
            value,
            node: None,
            error,
        })?;
        Ok(())
    }

    /// Perform one action and journal it; a failed action is journaled with its error.
    /// `Ok(Some(why))` when it hit no node.
    pub async fn apply(&self, action: &Action) -> Result<Option<String>> {
        let f = action.f();
        let done = match action {
            Action::StartPartition { grudge, one_way } => {
                partition::start(self, grudge, *one_way).await
            }
            Action::StopPartition => partition::heal(self).await,
            Action::Pause { targets } => pause::pause(self, &self.resolve(targets).await).await,
            Action::Resume => pause::resume(self).await,
            Action::Kill { targets } => kill::kill(self, &self.resolve(targets).await).await,
            Action::Restart => kill::restart(self).await,
            Action::BumpClock {
                targets,
                offsets_ms,
                offset_ms,
            } => {
                let nodes = self.resolve(targets).await;
                clock::bump(self, &nodes, offsets_ms, *offset_ms).await
            }
            Action::StrobeClock {
                targets,
                offset_ms,
                period_ms,
            } => {
                let nodes = self.resolve(targets).await;
                clock::strobe(self, &nodes, *offset_ms, *period_ms).await
            }
            Action::ResetClock => clock::reset(self).await,
            Action::StartLoss { targets, percent } => {
                loss::start(self, &self.resolve(targets).await, *percent).await
            }
            Action::StopLoss => loss::stop(self).await,
            Action::StartDelay {
                targets,
                latency_ms,
                jitter_ms,
            } => {
                let nodes = self.resolve(targets).await;
                delay::start(self, &nodes, *latency_ms, *jitter_ms).await
            }
            Action::StopDelay => delay::stop(self).await,
            Action::StartTwin {
                node,
                sees_twin,
                state,
            } => twin::start(self, node, sees_twin, *state).await,
            Action::StopTwin => twin::stop(self).await,
            Action::PowerFail { targets } => {
                power::power_fail(self, &self.resolve(targets).await).await
            }
            Action::PowerRestore => power::restore(self).await,
            Action::Corrupt {
                targets,
                damage,
                probability,
                seed,
            } => {
                let nodes = self.resolve(targets).await;
                corrupt::corrupt(self, &nodes, *damage, *probability, *seed).await
            }
            Action::RestartCorrupted => corrupt::restart(self).await,
            Action::Leave { targets } => {
                membership::leave(self, &self.resolve(targets).await).await
            }
            Action::Join => membership::join(self).await,
            Action::TwinsRound {
                round,
                twins,
                groups,
                leader,
                state,
            } => twin::round(self, *round, twins, groups, leader.as_ref(), *state).await,
        };
        match done {
            Ok(l) => {
                let hit = l
                    .value
                    .get("nodes")
                    .and_then(Value::as_array)
                    .is_some_and(|n| !n.is_empty());
                let missed = (!hit).then(|| {
                    l.note
                        .clone()
                        .unwrap_or_else(|| "it hit no node".to_string())
                });
                self.record(f, l.value, l.note)?;
                Ok(missed)
            }
            Err(e) => {
                let _ = self.record(f, serde_json::json!({}), Some(format!("{e:#}")));
                Err(e.context(format!("nemesis {f}")))
            }
        }
    }

    /// Undo every fault in force, each kind by its inverse. Every kind is tried even when
    /// one fails (the first error is returned): a stuck firewall must not leave a node
    /// paused. What failed stays in force, so calling this again retries it.
    pub async fn heal_all(&self, mode: HealMode) -> Result<()> {
        let mut first_error = None;
        let mut heal = |r: Result<Option<String>>| {
            if let Err(e) = r {
                tracing::info!("nemesis: heal failed: {e:#}");
                first_error.get_or_insert(e);
            }
        };
        // Strobing first: its task would otherwise skew clocks again behind the reset.
        let (p, l, d, pa, c, k, t, po, co, le) = {
            let f = self.in_force().await;
            (
                !f.partitioned.is_empty(),
                !f.lossy.is_empty(),
                !f.delayed.is_empty(),
                !f.paused.is_empty(),
                !f.clock.is_empty(),
                !f.killed.is_empty(),
                !f.twins.is_empty(),
                !f.powered_off.is_empty(),
                !f.corrupted.is_empty(),
                !f.left.is_empty(),
            )
        };
        if c {
            heal(self.apply(&Action::ResetClock).await);
        }
        if p {
            heal(self.apply(&Action::StopPartition).await);
        }
        if l {
            heal(self.apply(&Action::StopLoss).await);
        }
        if d {
            heal(self.apply(&Action::StopDelay).await);
        }
        if pa {
            heal(self.apply(&Action::Resume).await);
        }
        // In both modes: a twin is not one of the nodes a teardown stops and restarts.
        if t {
            heal(self.apply(&Action::StopTwin).await);
        }
        if k && mode == HealMode::Full {
            heal(self.apply(&Action::Restart).await);
        }
        // Like killed nodes: the teardown stops every node anyway.
        if po && mode == HealMode::Full {
            heal(self.apply(&Action::PowerRestore).await);
        }
        if co && mode == HealMode::Full {
            heal(self.apply(&Action::RestartCorrupted).await);
        }
        // Last: a node joins a cluster that serves again.
        if le && mode == HealMode::Full {
            heal(self.apply(&Action::Join).await);
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Wait, up to `bound`, until the cluster serves again: someone leads (for a fault
    /// aimed at leaders) or the target's readiness probe passes. Returns how long it waited.
    async fn wait_recovered(
        &self,
        action: &Action,
        bound: Duration,
        cancel: &mut watch::Receiver<bool>,
    ) -> Duration {
        let began = Instant::now();
        loop {
            let served = if action.aims_at_leaders() {
                !self.leaders().await.is_empty()
            } else {
                self.cluster.serves(LEADER_QUERY_TIMEOUT).await
            };
            if served {
                break;
            }
            if began.elapsed() >= bound {
                tracing::info!(
                    "nemesis: the cluster did not recover within {} s; starting {} anyway",
                    bound.as_secs_f64(),
                    action.f()
                );
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(RECOVERY_POLL) => {}
                _ = cancelled(cancel) => break,
            }
        }
        began.elapsed()
    }

    async fn resolve(&self, t: &Targets) -> Vec<String> {
        match t {
            Targets::Nodes(n) => n.clone(),
            Targets::Primaries => self.leaders().await,
            Targets::NextPrimaries { settle_ms } => self.next_leaders(*settle_ms).await,
            Targets::Followers => {
                let leaders = self.leaders().await;
                self.cluster
                    .nodes()
                    .into_iter()
                    .filter(|n| !leaders.contains(n))
                    .collect()
            }
        }
    }

    /// The nodes that say they lead, asked now.
    async fn leaders(&self) -> Vec<String> {
        let first = self.cluster.nodes().first().cloned().unwrap_or_default();
        match self.cluster.client(&first) {
            Ok(mut c) => {
                let leaders = c.leaders(LEADER_QUERY_TIMEOUT).await;
                c.close().await;
                leaders
            }
            Err(_) => Vec::new(),
        }
    }

    /// Wait for an election: the first node(s) seen leading that did not lead when the wait
    /// began (or stopped leading since), then `settle_ms` more. Empty if no election
    /// happened within [`NEXT_LEADER_WAIT`].
    async fn next_leaders(&self, settle_ms: u64) -> Vec<String> {
        self.next_leaders_within(settle_ms, NEXT_LEADER_WAIT).await
    }

    /// [`Self::next_leaders`], waiting at most `wait` for the election (a Twins round
    /// waits half a round, so the schedule does not slip by whole rounds).
    async fn next_leaders_within(&self, settle_ms: u64, wait: Duration) -> Vec<String> {
        let began = Instant::now();
        let mut cancel = self
            .cancel
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| watch::channel(false).1);
        let mut before: BTreeSet<String> = self.leaders().await.into_iter().collect();
        while began.elapsed() < wait {
            tokio::select! {
                _ = tokio::time::sleep(NEXT_LEADER_POLL) => {}
                _ = cancelled(&mut cancel) => {
                    tracing::info!("nemesis: schedule stopped while waiting for an election; the fault hits nobody");
                    return Vec::new();
                }
            }
            let now: BTreeSet<String> = self.leaders().await.into_iter().collect();
            let new: Vec<String> = now.difference(&before).cloned().collect();
            if !new.is_empty() {
                tracing::info!(
                    "nemesis: {} leads now (waited {:.2} s)",
                    new.join(", "),
                    began.elapsed().as_secs_f64()
                );
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(settle_ms)) => return new,
                    _ = cancelled(&mut cancel) => {
                        tracing::info!("nemesis: schedule stopped while the fault settled; it hits nobody");
                        return Vec::new();
                    }
                }
            }
            // A leader that stepped down and wins again is a new leader too.
            before.retain(|n| now.contains(n));
        }
        tracing::info!("nemesis: no new leader was elected; the fault hits nobody");
        Vec::new()
    }

    fn ip(&self, node: &str) -> Result<Ipv4Addr> {
        self.cluster
            .hosts()
            .node(node)
            .map(|h| h.ip)
            .ok_or_else(|| anyhow!("no host for node {node}"))
    }

    /// The addresses of every node but `node`.
    fn peers_of(&self, node: &str) -> Result<Vec<Ipv4Addr>> {
        self.cluster
            .nodes()
            .iter()
            .filter(|p| *p != node)
            .map(|p| self.ip(p))
            .collect()
    }

    /// Run `argv` with `stdin` inside the node's host (its namespace) and fail with its
    /// stderr.
    async fn exec_checked(&self, node: &str, argv: &[&str], stdin: &[u8]) -> Result<()> {
        let host = self
            .cluster
            .hosts()
            .node(node)
            .ok_or_else(|| anyhow!("no host for node {node}"))?
            .clone();
        let out = self
            .cluster
            .hosts()
            .exec(&host, argv, stdin)
            .await
            .with_context(|| format!("node {node}: cannot run {}", argv[0]))?;
        if !out.status.success() {
            bail!(
                "node {node}: {} failed: {}{}",
                argv.join(" "),
                String::from_utf8_lossy(&out.stderr).trim(),
                if stdin.is_empty() {
                    String::new()
                } else {
                    format!("\ninput:\n{}", String::from_utf8_lossy(stdin))
                }
            );
        }
        Ok(())
    }

    async fn nft(&self, node: &str, script: &str) -> Result<()> {
        self.exec_checked(node, &["nft", "-f", "-"], script.as_bytes())
            .await
    }

    fn clocks(&self) -> Result<&Arc<Clocks>> {
        self.clocks
            .as_ref()
            .ok_or_else(|| anyhow!("clock fault without libfaketime set up for this run"))
    }
}

/// The first failure of an inverse applied node by node: one node that cannot be healed
/// must not keep the others broken.
#[derive(Debug, Default)]
struct Failed(Option<anyhow::Error>);

impl Failed {
    /// Whether `r` succeeded; keeps its error otherwise.
    fn keep<T>(&mut self, r: Result<T>) -> bool {
        match r {
            Ok(_) => true,
            Err(e) => {
                self.0.get_or_insert(e);
                false
            }
        }
    }

    fn into_result(self) -> Result<()> {
        match self.0 {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Resolves once `rx` says stop (never, if its sender is gone without saying so).
async fn cancelled(rx: &mut watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

fn nodes_list(nodes: &[String]) -> String {
    if nodes.is_empty() {
        "nobody".into()
    } else {
        nodes.join(", ")
    }
}
