//! The nemesis: injects faults on a compiled schedule and heals them.
//!
//! Every fault is a verb with a named inverse (partition/heal, pause/resume, kill/start,
//! bump or strobe/reset clock, loss/stop loss). Each action is journaled in the history as
//! process `nemesis` with the affected nodes, so checkers ignore it and reports can shade
//! fault windows. [`Nemesis::heal_all`] ends every plan before the final reads. What it
//! cannot undo (a run that dies) the teardown of hosts and processes removes: rules live
//! in node namespaces, offsets in node processes.

pub mod clock;
pub mod partition;
pub mod schedule;

use crate::history::{Op, OpType, Process};
use crate::runner::log;
use crate::runner::Journal;
use crate::target::Cluster;
use anyhow::{anyhow, bail, Context, Result};
use clock::Clocks;
use nix::sys::signal::Signal;
use partition::{Grudge, LOSS_TABLE, PARTITION_TABLE};
use schedule::{Action, Step, Targets};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// How long asking the target who leads may take.
const LEADER_QUERY_TIMEOUT: Duration = Duration::from_millis(500);

/// What is currently broken, so heals undo exactly that.
#[derive(Debug, Default)]
struct Broken {
    partitioned: BTreeSet<String>,
    paused: BTreeSet<String>,
    killed: BTreeSet<String>,
    skewed: BTreeSet<String>,
    lossy: BTreeSet<String>,
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
            Targets::Primaries => {
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
        }
    }

    fn ip(&self, node: &str) -> Result<Ipv4Addr> {
        self.cluster
            .hosts()
            .node(node)
            .map(|h| h.ip)
            .ok_or_else(|| anyhow!("no host for node {node}"))
    }

    async fn nft(&self, node: &str, script: &str) -> Result<()> {
        let host = self
            .cluster
            .hosts()
            .node(node)
            .ok_or_else(|| anyhow!("no host for node {node}"))?
            .clone();
        let out = self
            .cluster
            .hosts()
            .exec(&host, &["nft", "-f", "-"], script.as_bytes())
            .await
            .with_context(|| format!("node {node}: cannot run nft"))?;
        if !out.status.success() {
            bail!(
                "node {node}: nft failed: {}\nscript:\n{script}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
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
                        let leaders = self.resolve(&Targets::Primaries).await;
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
        }
    }

    fn clocks(&self) -> Result<&Arc<Clocks>> {
        self.clocks
            .as_ref()
            .ok_or_else(|| anyhow!("clock fault without libfaketime set up for this run"))
    }

    /// Undo every fault in force: the end of every nemesis plan, before final reads.
    pub async fn heal_all(&self) -> Result<()> {
        let (p, pa, k, c, l) = {
            let b = self.broken.lock().await;
            (
                !b.partitioned.is_empty(),
                !b.paused.is_empty(),
                !b.killed.is_empty(),
                !b.skewed.is_empty() || b.strobe.is_some(),
                !b.lossy.is_empty(),
            )
        };
        if p {
            self.apply(&Action::StopPartition).await?;
        }
        if l {
            self.apply(&Action::StopLoss).await?;
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
