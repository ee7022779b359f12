//! The nemesis: injects faults on a compiled schedule and heals them.
//!
//! Every fault is a verb with a named inverse (partition/heal, pause/resume, kill/start,
//! bump or strobe/reset clock, loss/stop loss, delay/stop delay). Each action is journaled in the history as
//! process `nemesis` with the affected nodes, so checkers ignore it and reports can shade
//! fault windows. [`Nemesis::heal_all`] ends every plan before the final reads. What it
//! cannot undo (a run that dies) the teardown of hosts and processes removes: rules live
//! in node namespaces, offsets in node processes.

pub mod delay;
pub mod partition;

use crate::history::Journal;
use crate::history::{Op, OpType, Process};
use crate::hosts::clock::Clocks;
use crate::hosts::{LOSS_TABLE, PARTITION_TABLE};
use crate::log;
use crate::spec::grudge::Grudge;
use crate::spec::schedule::{Action, Step, Targets};
use crate::target::Cluster;
use anyhow::{anyhow, bail, Context, Result};
use nix::sys::signal::Signal;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// How long asking the target who leads may take.
const LEADER_QUERY_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a `next-primaries` fault waits for an election.
const NEXT_LEADER_WAIT: Duration = Duration::from_secs(10);
/// How often it asks who leads meanwhile: a new leader's first entries take a round trip
/// to reach its followers, and the fault should land inside that window when the network
/// is slowed by a delay fault.
const NEXT_LEADER_POLL: Duration = Duration::from_millis(20);

/// What is currently broken, so heals undo exactly that.
#[derive(Debug, Default)]
struct Broken {
    partitioned: BTreeSet<String>,
    paused: BTreeSet<String>,
    killed: BTreeSet<String>,
    skewed: BTreeSet<String>,
    lossy: BTreeSet<String>,
    delayed: BTreeMap<String, delay::Delayer>,
    strobe: Option<tokio::task::JoinHandle<()>>,
}

pub struct Nemesis {
    cluster: Arc<Cluster>,
    journal: Arc<Journal>,
    clocks: Option<Arc<Clocks>>,
    broken: Mutex<Broken>,
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
            broken: Mutex::new(Broken::default()),
        }
    }

    /// Faults currently in force, for the progress line.
    pub async fn describe(&self) -> String {
        let b = self.broken.lock().await;
        let mut parts = Vec::new();
        let mut add = |name: &str, set: &BTreeSet<String>| {
            if !set.is_empty() {
                parts.push(format!(
                    "{name} {}",
                    set.iter().cloned().collect::<Vec<_>>().join(",")
                ));
            }
        };
        add("partitioned", &b.partitioned);
        add("paused", &b.paused);
        add("killed", &b.killed);
        add("clock", &b.skewed);
        add("loss", &b.lossy);
        add("delay", &b.delayed.keys().cloned().collect());
        if parts.is_empty() {
            "no faults".into()
        } else {
            parts.join("; ")
        }
    }

    /// Run the schedule from `start` until `deadline` (steps after it are not run).
    pub async fn run(&self, steps: &[Step], start: Instant, deadline: Instant) -> Result<()> {
        for step in steps {
            let at = start + step.at;
            if at >= deadline {
                break;
            }
            tokio::time::sleep_until(at).await;
            self.apply(&step.action).await?;
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
        let began = Instant::now();
        let mut before: BTreeSet<String> = self.leaders().await.into_iter().collect();
        while began.elapsed() < NEXT_LEADER_WAIT {
            tokio::time::sleep(NEXT_LEADER_POLL).await;
            let now: BTreeSet<String> = self.leaders().await.into_iter().collect();
            let new: Vec<String> = now.difference(&before).cloned().collect();
            if !new.is_empty() {
                log::line(&format!(
                    "nemesis: {} leads now (waited {:.2} s)",
                    new.join(", "),
                    began.elapsed().as_secs_f64()
                ));
                tokio::time::sleep(Duration::from_millis(settle_ms)).await;
                return new;
            }
            // A leader that stepped down and wins again is a new leader too.
            before.retain(|n| now.contains(n));
        }
        log::line("nemesis: no new leader was elected; the fault hits nobody");
        Vec::new()
    }

    fn ip(&self, node: &str) -> Result<Ipv4Addr> {
        self.cluster
            .hosts()
            .node(node)
            .map(|h| h.ip)
            .ok_or_else(|| anyhow!("no host for node {node}"))
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

    /// Start holding `node`'s packets to its peers: bind the queue, then add the rule.
    async fn start_delay(&self, node: &str, cfg: delay::DelayConfig) -> Result<()> {
        if self.broken.lock().await.delayed.contains_key(node) {
            return Ok(());
        }
        let netns = self
            .cluster
            .hosts()
            .node(node)
            .and_then(|h| h.netns.clone())
            .ok_or_else(|| {
                anyhow!("node {node}: delay faults need the node in a network namespace of this machine")
            })?;
        let peers: Vec<Ipv4Addr> = self
            .cluster
            .nodes()
            .iter()
            .filter(|p| *p != node)
            .map(|p| self.ip(p))
            .collect::<Result<_>>()?;
        let delayer = tokio::task::spawn_blocking(move || delay::Delayer::start(&netns, cfg))
            .await
            .context("the delay start task failed")??;
        // Recorded before the rule exists, so a failing iptables still gets its queue
        // released by heal_all.
        self.broken
            .lock()
            .await
            .delayed
            .insert(node.to_string(), delayer);
        let rule = delay::rule_args(&peers);
        self.exec_checked(
            node,
            &rule.iter().map(String::as_str).collect::<Vec<_>>(),
            b"",
        )
        .await
    }

    /// Remove `node`'s delay rule and release what its queue holds.
    async fn stop_delay(&self, node: &str) -> Result<delay::DelayStats> {
        let flushed = self.exec_checked(node, &delay::FLUSH_ARGS, b"").await;
        let delayer = self.broken.lock().await.delayed.remove(node);
        let stats = match delayer {
            Some(d) => match tokio::task::spawn_blocking(move || d.stop()).await {
                Ok(Ok(s)) => s,
                // The thread already said why it ended; the heal itself (rule gone) holds.
                Ok(Err(_)) | Err(_) => delay::DelayStats::default(),
            },
            None => delay::DelayStats::default(),
        };
        flushed?;
        Ok(stats)
    }

    async fn nft(&self, node: &str, script: &str) -> Result<()> {
        self.exec_checked(node, &["nft", "-f", "-"], script.as_bytes())
            .await
    }

    /// Perform one action and journal it.
    pub async fn apply(&self, action: &Action) -> Result<()> {
        let f = action.f();
        match action {
            Action::StartPartition { grudge, one_way } => {
                let nodes = self.cluster.nodes();
                let drops = match grudge {
                    Grudge::Drops(d) => d.clone(),
                    around_leaders => {
                        let leaders = match around_leaders {
                            Grudge::NextPrimaries { settle_ms } => {
                                self.next_leaders(*settle_ms).await
                            }
                            _ => self.leaders().await,
                        };
                        if leaders.is_empty() {
                            log::line("nemesis: no node believes it leads; isolating nobody");
                            return self.record(f, json!({"grudge": {}}), Some("no leader".into()));
                        }
                        around_leaders.around(&leaders, &nodes)
                    }
                };
                let mut applied = BTreeSet::new();
                for node in &nodes {
                    let from: Vec<Ipv4Addr> = drops
                        .get(node)
                        .into_iter()
                        .flatten()
                        .map(|n| self.ip(n))
                        .collect::<Result<_>>()?;
                    if from.is_empty() && !self.broken.lock().await.partitioned.contains(node) {
                        continue;
                    }
                    self.nft(node, &partition::partition_script(&from, *one_way))
                        .await?;
                    if !from.is_empty() {
                        applied.insert(node.clone());
                    }
                }
                self.broken.lock().await.partitioned = applied.clone();
                let desc: BTreeMap<&String, &BTreeSet<String>> =
                    drops.iter().filter(|(_, d)| !d.is_empty()).collect();
                log::line(&format!("nemesis: partition {}", describe_grudge(&drops)));
                self.record(
                    f,
                    json!({"nodes": applied, "grudge": desc, "one_way": one_way}),
                    None,
                )
            }
            Action::StopPartition => {
                let nodes: Vec<String> = std::mem::take(&mut self.broken.lock().await.partitioned)
                    .into_iter()
                    .collect();
                for n in &nodes {
                    self.nft(n, &partition::delete_script(PARTITION_TABLE))
                        .await?;
                }
                log::line("nemesis: partition healed");
                self.record(f, json!({"nodes": nodes}), None)
            }
            Action::Pause { targets } => {
                let nodes = self.resolve(targets).await;
                for n in &nodes {
                    if self.cluster.running(n).await {
                        self.cluster.signal(n, Signal::SIGSTOP).await?;
                        self.broken.lock().await.paused.insert(n.clone());
                    }
                }
                log::line(&format!("nemesis: paused {}", nodes.join(", ")));
                self.record(f, json!({"nodes": nodes}), None)
            }
            Action::Resume => {
                let nodes: Vec<String> = std::mem::take(&mut self.broken.lock().await.paused)
                    .into_iter()
                    .collect();
                for n in &nodes {
                    if self.cluster.running(n).await {
                        self.cluster.signal(n, Signal::SIGCONT).await?;
                    }
                }
                log::line(&format!("nemesis: resumed {}", nodes.join(", ")));
                self.record(f, json!({"nodes": nodes}), None)
            }
            Action::Kill { targets } => {
                let nodes = self.resolve(targets).await;
                for n in &nodes {
                    self.cluster.kill_node(n).await?;
                    let mut b = self.broken.lock().await;
                    b.killed.insert(n.clone());
                    b.paused.remove(n);
                }
                log::line(&format!("nemesis: killed {}", nodes.join(", ")));
                self.record(f, json!({"nodes": nodes}), None)
            }
            Action::Restart => {
                let nodes: Vec<String> = std::mem::take(&mut self.broken.lock().await.killed)
                    .into_iter()
                    .collect();
                for n in &nodes {
                    self.cluster.start_node(n).await?;
                }
                log::line(&format!("nemesis: restarted {}", nodes.join(", ")));
                self.record(f, json!({"nodes": nodes}), None)
            }
            Action::BumpClock {
                targets,
                offsets_ms,
                offset_ms,
            } => {
                let clocks = self.clocks()?;
                let nodes = self.resolve(targets).await;
                let mut applied = BTreeMap::new();
                for n in &nodes {
                    let o = offsets_ms.get(n).copied().unwrap_or(*offset_ms);
                    clocks.set(n, o).await?;
                    applied.insert(n.clone(), o);
                    self.broken.lock().await.skewed.insert(n.clone());
                }
                log::line(&format!("nemesis: clock offsets (ms) {applied:?}"));
                self.record(f, json!({"nodes": nodes, "offsets_ms": applied}), None)
            }
            Action::StrobeClock {
                targets,
                offset_ms,
                period_ms,
            } => {
                let clocks = self.clocks()?.clone();
                let nodes = self.resolve(targets).await;
                let (o, p) = (*offset_ms, Duration::from_millis(*period_ms));
                let strobed = nodes.clone();
                let task = tokio::spawn(async move {
                    let mut on = false;
                    loop {
                        on = !on;
                        for n in &strobed {
                            let _ = clocks.set(n, if on { o } else { 0 }).await;
                        }
                        tokio::time::sleep(p).await;
                    }
                });
                let mut b = self.broken.lock().await;
                if let Some(old) = b.strobe.replace(task) {
                    old.abort();
                }
                b.skewed.extend(nodes.iter().cloned());
                drop(b);
                log::line(&format!(
                    "nemesis: strobing clocks of {} between +0 and {o} ms every {period_ms} ms",
                    nodes.join(", ")
                ));
                self.record(
                    f,
                    json!({"nodes": nodes, "offset_ms": o, "period_ms": period_ms}),
                    None,
                )
            }
            Action::ResetClock => {
                let nodes: Vec<String> = {
                    let mut b = self.broken.lock().await;
                    if let Some(t) = b.strobe.take() {
                        t.abort();
                    }
                    std::mem::take(&mut b.skewed).into_iter().collect()
                };
                if let Some(c) = &self.clocks {
                    for n in &nodes {
                        c.set(n, 0).await?;
                    }
                }
                log::line(&format!("nemesis: clocks reset on {}", nodes.join(", ")));
                self.record(f, json!({"nodes": nodes}), None)
            }
            Action::StartLoss { targets, percent } => {
                let nodes = self.resolve(targets).await;
                let all = self.cluster.nodes();
                for n in &nodes {
                    let peers: Vec<Ipv4Addr> = all
                        .iter()
                        .filter(|p| *p != n)
                        .map(|p| self.ip(p))
                        .collect::<Result<_>>()?;
                    self.nft(n, &partition::loss_script(&peers, *percent))
                        .await?;
                    self.broken.lock().await.lossy.insert(n.clone());
                }
                log::line(&format!(
                    "nemesis: {percent}% packet loss on {}",
                    nodes.join(", ")
                ));
                self.record(f, json!({"nodes": nodes, "percent": percent}), None)
            }
            Action::StopLoss => {
                let nodes: Vec<String> = std::mem::take(&mut self.broken.lock().await.lossy)
                    .into_iter()
                    .collect();
                for n in &nodes {
                    self.nft(n, &partition::delete_script(LOSS_TABLE)).await?;
                }
                log::line("nemesis: packet loss stopped");
                self.record(f, json!({"nodes": nodes}), None)
            }
            Action::StartDelay {
                targets,
                latency_ms,
                jitter_ms,
            } => {
                let nodes = self.resolve(targets).await;
                for (i, n) in nodes.iter().enumerate() {
                    let cfg = delay::DelayConfig {
                        latency: Duration::from_millis(*latency_ms),
                        jitter: Duration::from_millis(*jitter_ms),
                        seed: *latency_ms ^ (i as u64) << 32,
                    };
                    self.start_delay(n, cfg).await?;
                }
                log::line(&format!(
                    "nemesis: packets to peers delayed {latency_ms} ms ± {jitter_ms} ms on {}",
                    nodes.join(", ")
                ));
                self.record(
                    f,
                    json!({"nodes": nodes, "latency_ms": latency_ms, "jitter_ms": jitter_ms}),
                    None,
                )
            }
            Action::StopDelay => {
                let nodes: Vec<String> = self.broken.lock().await.delayed.keys().cloned().collect();
                let mut held = BTreeMap::new();
                let mut lines = Vec::new();
                for n in &nodes {
                    let s = self.stop_delay(n).await?;
                    let mean = (s.mean_held_ms * 10.0).round() / 10.0;
                    lines.push(format!("{n} {} packets, {mean} ms mean", s.packets));
                    held.insert(
                        n.clone(),
                        json!({"packets": s.packets, "mean_held_ms": mean, "max_held": s.max_held}),
                    );
                }
                log::line(&format!("nemesis: delay stopped ({})", lines.join("; ")));
                self.record(f, json!({"nodes": nodes, "held": held}), None)
            }
        }
    }

    fn clocks(&self) -> Result<&Arc<Clocks>> {
        self.clocks
            .as_ref()
            .ok_or_else(|| anyhow!("clock fault without libfaketime set up for this run"))
    }

    /// Undo every fault in force: the end of every nemesis plan, before final reads.
    pub async fn heal_all(&self) -> Result<()> {
        let (p, pa, k, c, l, d) = {
            let b = self.broken.lock().await;
            (
                !b.partitioned.is_empty(),
                !b.paused.is_empty(),
                !b.killed.is_empty(),
                !b.skewed.is_empty() || b.strobe.is_some(),
                !b.lossy.is_empty(),
                !b.delayed.is_empty(),
            )
        };
        if p {
            self.apply(&Action::StopPartition).await?;
        }
        if l {
            self.apply(&Action::StopLoss).await?;
        }
        if d {
            self.apply(&Action::StopDelay).await?;
        }
        if pa {
            self.apply(&Action::Resume).await?;
        }
        if c {
            self.apply(&Action::ResetClock).await?;
        }
        if k {
            self.apply(&Action::Restart).await?;
        }
        Ok(())
    }
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
