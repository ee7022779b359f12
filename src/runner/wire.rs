//! What the run cost on the wire: installs the per-link counters ([`crate::hosts::wire`])
//! before the clients start, samples them every second into the run directory's
//! `wire.jsonl`, and takes a last sample when the main phase ends.
//!
//! Each line of `wire.jsonl` is one sample: `time_ns` on the history's clock (0 = the
//! clients start), `final` (the sample taken as the main phase ended), and `links`, the
//! cumulative data packets and bytes of every directed link since the counters were
//! installed (`from`/`to` are node names or `client`, `kind` is `peer` or `client`).
//! Counters live in the namespaces, not in the node processes, so they survive node
//! restarts. Only local (namespace) hosts are counted: loopback nodes share one network
//! stack, and SSH hosts are refused for now.

use crate::hosts::wire::{self as counters, Count, Link, CLIENT};
use crate::hosts::{Hosts, NodeHost};
use crate::target::Cluster;
use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tracing::instrument::WithSubscriber;

/// How often the counters are read during the main phase.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Counters installed on every node, ready to be sampled.
pub struct Wire {
    cluster: Arc<Cluster>,
    nodes: Vec<NodeHost>,
}

/// Why links are not counted on these hosts; `None` when they can be.
pub fn unavailable(hosts: &Hosts) -> Option<String> {
    match hosts {
        Hosts::Local(_) => None,
        Hosts::Loopback(_) => Some(
            "nodes share the loopback network stack (no namespaces), so traffic cannot be told apart per link"
                .into(),
        ),
        Hosts::Ssh(_) => {
            Some("per-link counting is not built for SSH hosts yet".into())
        }
        #[cfg(test)]
        Hosts::Recording(_) => Some("recording fake hosts run no nft".into()),
    }
}

impl Wire {
    /// Installs the counter table in every node's namespace.
    pub async fn install(cluster: Arc<Cluster>) -> Result<Wire> {
        let client: Ipv4Addr = match cluster.hosts() {
            Hosts::Local(h) => h.gateway,
            other => bail!(
                "{}",
                unavailable(other).unwrap_or_else(|| "hosts without link counters".into())
            ),
        };
        let nodes = cluster.hosts().nodes().to_vec();
        for (i, n) in nodes.iter().enumerate() {
            let script = counters::install_script(&nodes, i, client);
            let out = cluster
                .hosts()
                .exec(n, &["nft", "-f", "-"], script.as_bytes())
                .await?;
            if !out.status.success() {
                bail!(
                    "node {}: installing the link counters failed: {}",
                    n.node,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
        Ok(Wire { cluster, nodes })
    }

    /// Every link's cumulative count now.
    pub async fn sample(&self) -> Result<BTreeMap<Link, Count>> {
        let mut links = BTreeMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let out = self
                .cluster
                .hosts()
                .exec(n, &counters::LIST_ARGV, b"")
                .await?;
            if !out.status.success() {
                bail!(
                    "node {}: reading the link counters failed: {}",
                    n.node,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            let found = counters::parse_counters(&String::from_utf8_lossy(&out.stdout))
                .with_context(|| format!("node {}", n.node))?;
            links.extend(counters::links_of(&self.nodes, i, &found)?);
        }
        Ok(links)
    }

    /// Removes the tables (best effort: the namespaces go at teardown anyway).
    pub async fn remove(&self) {
        for n in &self.nodes {
            let _ = self
                .cluster
                .hosts()
                .exec(n, &["nft", "-f", "-"], counters::remove_script().as_bytes())
                .await;
        }
    }

    /// Starts sampling every [`SAMPLE_EVERY`] into `path`, times relative to `origin`.
    pub fn start_sampling(self, path: &Path, origin: Instant) -> Result<Sampler> {
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let shared = Arc::new(Shared {
            wire: self,
            out: Mutex::new(file),
            origin,
        });
        let s = shared.clone();
        let task = tokio::spawn(
            async move {
                let mut tick = tokio::time::interval(SAMPLE_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut reported = false;
                loop {
                    tick.tick().await;
                    if let Err(e) = s.write_sample(false).await {
                        // Once: a broken nft would otherwise fill the log every second.
                        if !reported {
                            tracing::info!("wire: a sample failed: {e:#}");
                            reported = true;
                        }
                    }
                }
            }
            .with_current_subscriber(),
        );
        Ok(Sampler { shared, task })
    }
}

struct Shared {
    wire: Wire,
    out: Mutex<std::fs::File>,
    origin: Instant,
}

impl Shared {
    async fn write_sample(&self, last: bool) -> Result<BTreeMap<Link, Count>> {
        let time_ns = self.origin.elapsed().as_nanos() as u64;
        let links = self.wire.sample().await?;
        let line = sample_line(time_ns, last, &links);
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        writeln!(out, "{line}")
            .and_then(|_| out.flush())
            .context("cannot write wire.jsonl")?;
        Ok(links)
    }
}

/// Sampling under way.
pub struct Sampler {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    /// Stops sampling, writes the final sample and removes the counters; returns the final
    /// counts.
    pub async fn finish(mut self) -> Result<BTreeMap<Link, Count>> {
        self.task.abort();
        // A sample cut short by the abort wrote nothing or a whole line (the write is not
        // an await point), so the file stays line-complete.
        let _ = (&mut self.task).await;
        let last = self.shared.write_sample(true).await;
        self.shared.wire.remove().await;
        last
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        // An early return of the run must not leave the loop sampling forever.
        self.task.abort();
    }
}

/// One `wire.jsonl` line.
pub fn sample_line(time_ns: u64, last: bool, links: &BTreeMap<Link, Count>) -> Value {
    let links: Vec<Value> = links
        .iter()
        .map(|(l, c)| {
            let kind = if l.from == CLIENT || l.to == CLIENT {
                "client"
            } else {
                "peer"
            };
            json!({"from": l.from, "to": l.to, "kind": kind,
                   "packets": c.packets, "bytes": c.bytes})
        })
        .collect();
    json!({"time_ns": time_ns, "final": last, "links": links})
}

/// Parses one `wire.jsonl` line back into its time, finality and links.
pub fn parse_sample(line: &str) -> Result<(u64, bool, BTreeMap<Link, Count>)> {
    let v: Value = serde_json::from_str(line).context("wire.jsonl: invalid JSON")?;
    let time_ns = v["time_ns"]
        .as_u64()
        .ok_or_else(|| anyhow!("wire.jsonl: sample without time_ns"))?;
    let mut links = BTreeMap::new();
    for l in v["links"].as_array().into_iter().flatten() {
        let s = |f: &str| {
            l[f].as_str()
                .map(str::to_string)
                .ok_or_else(|| anyhow!("wire.jsonl: link without {f:?}"))
        };
        let n = |f: &str| {
            l[f].as_u64()
                .ok_or_else(|| anyhow!("wire.jsonl: link without {f:?}"))
        };
        links.insert(
            Link {
                from: s("from")?,
                to: s("to")?,
            },
            Count {
                packets: n("packets")?,
                bytes: n("bytes")?,
            },
        );
    }
    Ok((time_ns, v["final"] == true, links))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_line_reads_back_and_tells_client_links_apart() {
        let links: BTreeMap<Link, Count> = [
            (("n1", "n2"), (8, 900)),
            (("n1", CLIENT), (1, 80)),
            ((CLIENT, "n1"), (1, 90)),
        ]
        .into_iter()
        .map(|((f, t), (p, b))| {
            (
                Link {
                    from: f.into(),
                    to: t.into(),
                },
                Count {
                    packets: p,
                    bytes: b,
                },
            )
        })
        .collect();
        let line = sample_line(1_000_000_000, true, &links);
        let kinds: Vec<&str> = line["links"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["client", "peer", "client"]);
        let (t, last, back) = parse_sample(&line.to_string()).unwrap();
        assert_eq!((t, last, back), (1_000_000_000, true, links));
    }
}
