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

use crate::checker::liveness::Window;
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
            nft(
                &cluster,
                n,
                &["nft", "-f", "-"],
                script.as_bytes(),
                "installing",
            )
            .await?;
        }
        Ok(Wire { cluster, nodes })
    }

    /// Every link's cumulative count now.
    pub async fn sample(&self) -> Result<BTreeMap<Link, Count>> {
        let mut links = BTreeMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let out = nft(&self.cluster, n, &counters::LIST_ARGV, b"", "reading").await?;
            let found =
                counters::parse_counters(&out).with_context(|| format!("node {}", n.node))?;
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

/// Runs an nft command in `node`'s namespace; its stdout, or why it failed (`doing` says
/// what to the counters, for the message).
async fn nft(
    cluster: &Cluster,
    node: &NodeHost,
    argv: &[&str],
    stdin: &[u8],
    doing: &str,
) -> Result<String> {
    let out = cluster.hosts().exec(node, argv, stdin).await?;
    if !out.status.success() {
        bail!(
            "node {}: {doing} the link counters failed: {}",
            node.node,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
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
            let kind = if is_client(l) { "client" } else { "peer" };
            json!({"from": l.from, "to": l.to, "kind": kind,
                   "packets": c.packets, "bytes": c.bytes, "payload": c.payload})
        })
        .collect();
    json!({"time_ns": time_ns, "final": last, "links": links})
}

fn is_client(l: &Link) -> bool {
    l.from == CLIENT || l.to == CLIENT
}

/// One parsed `wire.jsonl` line: its time, whether it is the final sample, the links.
pub type Sample = (u64, bool, BTreeMap<Link, Count>);

/// Parses one `wire.jsonl` line back into its time, finality and links.
pub fn parse_sample(line: &str) -> Result<Sample> {
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
                // Samples written before payloads were counted have none.
                payload: l["payload"].as_u64().unwrap_or(0),
            },
        );
    }
    Ok((time_ns, v["final"] == true, links))
}

/// Reads every sample of `wire.jsonl`.
pub fn read_samples(wire_jsonl: &Path) -> Result<Vec<Sample>> {
    let text = std::fs::read_to_string(wire_jsonl)
        .with_context(|| format!("cannot read {}", wire_jsonl.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            parse_sample(l).with_context(|| format!("{}:{}", wire_jsonl.display(), i + 1))
        })
        .collect()
}

/// Peer and client traffic, summed over links.
#[derive(Debug, Clone, Copy, Default)]
struct Traffic {
    peer: [f64; 3],
    client: [f64; 3],
}

impl Traffic {
    /// What every link carried from `before` to `after`.
    fn between(before: &BTreeMap<Link, Count>, after: &BTreeMap<Link, Count>) -> Traffic {
        let mut t = Traffic::default();
        for (l, c) in after {
            let b = before.get(l).copied().unwrap_or_default();
            let side = if is_client(l) {
                &mut t.client
            } else {
                &mut t.peer
            };
            side[0] += c.packets.saturating_sub(b.packets) as f64;
            side[1] += c.bytes.saturating_sub(b.bytes) as f64;
            side[2] += c.payload.saturating_sub(b.payload) as f64;
        }
        t
    }

    fn add_share(&mut self, other: &Traffic, share: f64) {
        for i in 0..3 {
            self.peer[i] += other.peer[i] * share;
            self.client[i] += other.client[i] * share;
        }
    }
}

/// A stretch of the run the figures are attributed to: a fault window, or calm time.
struct Period {
    /// The nemesis `f` that opened the window; `None` for calm time.
    f: Option<String>,
    start_ns: u64,
    end_ns: u64,
    /// Seconds of the main phase in the period.
    seconds: f64,
    traffic: Traffic,
    writes: u64,
    reads: u64,
}

/// How long spans `a` and `b` share.
pub(crate) fn overlap(a: (u64, u64), b: (u64, u64)) -> u64 {
    a.1.min(b.1).saturating_sub(a.0.max(b.0))
}

/// How much of `span` the union of `windows` covers.
pub(crate) fn covered(span: (u64, u64), windows: &[(u64, u64)]) -> u64 {
    let mut cut: Vec<(u64, u64)> = windows
        .iter()
        .map(|w| (w.0.max(span.0), w.1.min(span.1)))
        .filter(|w| w.0 < w.1)
        .collect();
    cut.sort_unstable();
    let (mut total, mut reach) = (0, span.0);
    for (s, e) in cut {
        let s = s.max(reach);
        if e > s {
            total += e - s;
            reach = e;
        }
    }
    total
}

/// results.json's `wire`: what the main phase cost on the wire, from `wire.jsonl` and the
/// history's acknowledged operations between the first and the final sample, in all and
/// per fault window (`windows`: the liveness windows of the same history) and calm time.
///
/// Per-op figures divide the whole peer traffic by the ops of one kind, so they describe a
/// workload of that kind alone (writes only, reads only); in a mix each one counts all of
/// it. Peer traffic includes everything nodes send each other (heartbeats, transport
/// acknowledgements, retransmissions): what a write costs on this target's wire.
///
/// Traffic is sampled once a second, so a sample interval that a window's edge cuts is
/// shared between the window and what lies beside it in proportion to time; ops are
/// attributed by their completion time. Overlapping windows each count the traffic they
/// share; calm time is what no window covers.
pub fn summarize(wire_jsonl: &Path, history_jsonl: &Path, windows: &[Window]) -> Result<Value> {
    let samples = read_samples(wire_jsonl)?;
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        bail!("{} holds no sample", wire_jsonl.display());
    };
    if !last.1 {
        bail!("{} has no final sample", wire_jsonl.display());
    }
    let (t0, t1) = (first.0, last.0);
    let delta: BTreeMap<&Link, Count> = last
        .2
        .iter()
        .map(|(l, c)| {
            let before = first.2.get(l).copied().unwrap_or_default();
            let d = Count {
                packets: c.packets.saturating_sub(before.packets),
                bytes: c.bytes.saturating_sub(before.bytes),
                payload: c.payload.saturating_sub(before.payload),
            };
            (l, d)
        })
        .collect();
    let sum = |client: bool| {
        delta
            .iter()
            .filter(|(l, _)| is_client(l) == client)
            .fold(Count::default(), |a, (_, c)| Count {
                packets: a.packets + c.packets,
                bytes: a.bytes + c.bytes,
                payload: a.payload + c.payload,
            })
    };
    let (peer, client) = (sum(false), sum(true));
    let ops = ok_ops_between(history_jsonl, t0, t1)?;
    let writes = ops.iter().filter(|(_, w)| *w).count() as u64;
    let reads = ops.len() as u64 - writes;
    let per = |n: u64, ops: u64| (ops > 0).then(|| n as f64 / ops as f64);
    // The matrix: rows send, columns receive; nodes in order, the controller last.
    let mut names: Vec<String> = Vec::new();
    for l in delta.keys() {
        for n in [&l.from, &l.to] {
            if n != CLIENT && !names.contains(n) {
                names.push(n.clone());
            }
        }
    }
    names.sort_by_key(|n| natural(n));
    names.push(CLIENT.into());
    let matrix = |f: fn(&Count) -> u64| -> Vec<Vec<Option<u64>>> {
        names
            .iter()
            .map(|from| {
                names
                    .iter()
                    .map(|to| {
                        delta
                            .get(&Link {
                                from: from.clone(),
                                to: to.clone(),
                            })
                            .map(f)
                    })
                    .collect()
            })
            .collect()
    };
    let periods = periods(&samples, &ops, windows);
    Ok(json!({
        "interval_s": (t1.saturating_sub(t0)) as f64 / 1e9,
        "ok_writes": writes,
        "ok_reads": reads,
        "peer_packets": peer.packets,
        "peer_bytes": peer.bytes,
        "peer_payload_bytes": peer.payload,
        "client_packets": client.packets,
        "client_bytes": client.bytes,
        "client_payload_bytes": client.payload,
        "messages_per_write": per(peer.packets, writes),
        "bytes_per_write": per(peer.bytes, writes),
        "payload_bytes_per_write": per(peer.payload, writes),
        "messages_per_read": per(peer.packets, reads),
        "bytes_per_read": per(peer.bytes, reads),
        "links": {
            "nodes": names,
            "packets": matrix(|c| c.packets),
            "bytes": matrix(|c| c.bytes),
            "payload": matrix(|c| c.payload),
        },
        "periods": periods.iter().map(period_json).collect::<Vec<_>>(),
    }))
}

/// The windows as nanosecond spans of the history's clock; one never healed lasts to the
/// end.
pub(crate) fn spans_of(windows: &[Window]) -> Vec<(u64, u64)> {
    let ns = |s: f64| (s * 1e9).round().max(0.0) as u64;
    windows
        .iter()
        .map(|w| (ns(w.start_s), w.end_s.map_or(u64::MAX, ns)))
        .collect()
}

/// The fault windows, then calm time, with the traffic and acknowledged ops of each.
fn periods(samples: &[Sample], ops: &[(u64, bool)], windows: &[Window]) -> Vec<Period> {
    let (t0, t1) = match (samples.first(), samples.last()) {
        (Some(a), Some(b)) => (a.0, b.0),
        _ => return Vec::new(),
    };
    let spans = spans_of(windows);
    let mut out: Vec<Period> = windows
        .iter()
        .zip(&spans)
        .map(|(w, s)| Period {
            f: Some(w.f.clone()),
            start_ns: s.0,
            end_ns: s.1.min(t1.max(s.0)),
            seconds: overlap(*s, (t0, t1)) as f64 / 1e9,
            traffic: Traffic::default(),
            writes: 0,
            reads: 0,
        })
        .collect();
    let main = t1.saturating_sub(t0);
    out.push(Period {
        f: None,
        start_ns: t0,
        end_ns: t1,
        seconds: (main - covered((t0, t1), &spans)) as f64 / 1e9,
        traffic: Traffic::default(),
        writes: 0,
        reads: 0,
    });
    for pair in samples.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let len = b.0.saturating_sub(a.0);
        if len == 0 {
            continue;
        }
        let t = Traffic::between(&a.2, &b.2);
        let mut calm = len;
        for (p, s) in out.iter_mut().zip(&spans) {
            p.traffic
                .add_share(&t, overlap(*s, (a.0, b.0)) as f64 / len as f64);
        }
        calm -= covered((a.0, b.0), &spans);
        if let Some(c) = out.last_mut() {
            c.traffic.add_share(&t, calm as f64 / len as f64);
        }
    }
    for &(time, write) in ops {
        let n = out.len() - 1;
        let mut in_any = false;
        for (p, s) in out[..n].iter_mut().zip(&spans) {
            if time >= s.0 && time <= s.1 {
                in_any = true;
                if write {
                    p.writes += 1;
                } else {
                    p.reads += 1;
                }
            }
        }
        if !in_any {
            if write {
                out[n].writes += 1;
            } else {
                out[n].reads += 1;
            }
        }
    }
    out
}

fn period_json(p: &Period) -> Value {
    let per = |x: f64, n: u64| (n > 0).then(|| x / n as f64);
    let secs = |ns: u64| (ns as f64 / 1e6).round() / 1e3;
    let [packets, bytes, payload] = p.traffic.peer;
    json!({
        "period": if p.f.is_some() { "window" } else { "calm" },
        "f": p.f,
        "start_s": p.f.as_ref().map(|_| secs(p.start_ns)),
        "end_s": p.f.as_ref().map(|_| secs(p.end_ns)),
        "seconds": p.seconds,
        "ok_writes": p.writes,
        "ok_reads": p.reads,
        "peer_packets": packets.round() as u64,
        "peer_bytes": bytes.round() as u64,
        "peer_payload_bytes": payload.round() as u64,
        "client_packets": p.traffic.client[0].round() as u64,
        "messages_per_write": per(packets, p.writes),
        "bytes_per_write": per(bytes, p.writes),
        "payload_bytes_per_write": per(payload, p.writes),
        "messages_per_read": per(packets, p.reads),
        "peer_packets_per_s": (p.seconds > 0.0).then(|| packets / p.seconds),
    })
}

/// Orders n2 before n10.
fn natural(name: &str) -> (String, u64) {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (stem, num) = name.split_at(name.len() - digits);
    (stem.to_string(), num.parse().unwrap_or(0))
}

/// The completion times of acknowledged ops completed in `(t0, t1]` of the history, each
/// with whether it was a write (`write`, `cas`) rather than a read.
fn ok_ops_between(history_jsonl: &Path, t0: u64, t1: u64) -> Result<Vec<(u64, bool)>> {
    let text = std::fs::read_to_string(history_jsonl)
        .with_context(|| format!("cannot read {}", history_jsonl.display()))?;
    let mut ops = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let op: Value = serde_json::from_str(line)
            .with_context(|| format!("{}: invalid line", history_jsonl.display()))?;
        let t = op["time_ns"].as_u64().unwrap_or(0);
        if op["type"] != "ok" || t <= t0 || t > t1 {
            continue;
        }
        match op["f"].as_str() {
            Some("write" | "cas") => ops.push((t, true)),
            Some("read") => ops.push((t, false)),
            _ => {}
        }
    }
    Ok(ops)
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
                    payload: b / 2,
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
        assert_eq!(kinds, ["client", "client", "peer"]);
        let (t, last, back) = parse_sample(&line.to_string()).unwrap();
        assert_eq!((t, last, back), (1_000_000_000, true, links));
    }

    #[test]
    fn summarizes_the_main_phase_per_acknowledged_op_with_a_link_matrix() {
        let dir = std::env::temp_dir().join(format!("fl-wire-sum-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let link = |f: &str, t: &str| Link {
            from: f.into(),
            to: t.into(),
        };
        let c = |packets, bytes| Count {
            packets,
            bytes,
            payload: bytes / 2,
        };
        let at = |t: u64, last: bool, k: u64| {
            let links: BTreeMap<Link, Count> = [
                (link("n1", "n2"), c(10 + 8 * k, 1000 + 800 * k)),
                (link("n2", "n1"), c(10 + 8 * k, 500 + 400 * k)),
                (link("n1", CLIENT), c(2 * k, 100 * k)),
                (link(CLIENT, "n1"), c(2 * k, 100 * k)),
            ]
            .into();
            sample_line(t, last, &links).to_string()
        };
        // From 0 to 2 s: 4 writes' worth of traffic (k = 4).
        let wire = format!(
            "{}\n{}\n{}\n",
            at(0, false, 0),
            at(1_000_000_000, false, 2),
            at(2_000_000_000, true, 4)
        );
        std::fs::write(dir.join("wire.jsonl"), wire).unwrap();
        let ops = [
            (100u64, "ok", "write"),
            (200, "ok", "cas"),
            (300, "fail", "write"),
            (400, "info", "write"),
            (1_500_000_000, "ok", "write"),
            (1_600_000_000, "ok", "write"),
            (1_700_000_000, "ok", "read"),
            // The final phase, after the last sample: not the main phase's.
            (3_000_000_000, "ok", "read"),
        ];
        let history: String = ops
            .iter()
            .map(|(t, ty, f)| {
                format!(
                    "{}\n",
                    json!({"time_ns": t, "type": ty, "f": f, "key": "k"})
                )
            })
            .collect();
        std::fs::write(dir.join("history.jsonl"), history).unwrap();
        let w = summarize(&dir.join("wire.jsonl"), &dir.join("history.jsonl"), &[]).unwrap();
        assert_eq!(w["ok_writes"], 4);
        assert_eq!(w["payload_bytes_per_write"], (3200.0 + 1600.0) / 8.0);
        assert_eq!(w["ok_reads"], 1);
        assert_eq!(w["peer_packets"], 64);
        assert_eq!(w["messages_per_write"], 16.0);
        assert_eq!(w["bytes_per_write"], (3200.0 + 1600.0) / 4.0);
        assert_eq!(w["messages_per_read"], 64.0);
        assert_eq!(w["client_packets"], 16);
        assert_eq!(w["interval_s"], 2.0);
        assert_eq!(w["links"]["nodes"], json!(["n1", "n2", "client"]));
        assert_eq!(
            w["links"]["packets"],
            json!([[null, 32, 8], [32, null, null], [8, null, null]])
        );
        // Without fault windows, all of it is calm.
        let periods = w["periods"].as_array().unwrap();
        assert_eq!(periods.len(), 1);
        assert_eq!(periods[0]["period"], "calm");
        assert_eq!(periods[0]["peer_packets"], 64);
        assert_eq!(periods[0]["ok_writes"], 4);
        assert_eq!(periods[0]["seconds"], 2.0);

        // A window from 0.5 s to 1.5 s takes half of each sample interval's traffic
        // (32 packets in all) and the ops completed inside it.
        let window = Window {
            f: "start-partition".into(),
            start_s: 0.5,
            end_s: Some(1.5),
            availability: None,
            recovery_s: None,
        };
        let w = summarize(
            &dir.join("wire.jsonl"),
            &dir.join("history.jsonl"),
            &[window],
        )
        .unwrap();
        let periods = w["periods"].as_array().unwrap();
        assert_eq!(periods.len(), 2);
        let (win, calm) = (&periods[0], &periods[1]);
        assert_eq!(win["period"], "window");
        assert_eq!(win["f"], "start-partition");
        assert_eq!(
            (win["start_s"].clone(), win["end_s"].clone()),
            (json!(0.5), json!(1.5))
        );
        assert_eq!(win["seconds"], 1.0);
        assert_eq!(win["peer_packets"], 32);
        assert_eq!(
            win["ok_writes"], 1,
            "the write at 1.5 s closes it; 1.6 s is after"
        );
        assert_eq!(win["messages_per_write"], 32.0);
        assert_eq!(win["peer_packets_per_s"], 32.0);
        assert_eq!(calm["period"], "calm");
        assert_eq!(calm["start_s"], Value::Null);
        assert_eq!(calm["seconds"], 1.0);
        assert_eq!(calm["peer_packets"], 32);
        assert_eq!(
            (calm["ok_writes"].clone(), calm["ok_reads"].clone()),
            (json!(3), json!(1))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn overlapping_windows_each_count_what_they_share_and_calm_is_the_rest() {
        assert_eq!(covered((0, 10), &[(2, 5), (4, 7), (9, 20)]), 6);
        assert_eq!(covered((0, 10), &[]), 0);
        assert_eq!(covered((5, 10), &[(0, 3)]), 0);
        assert_eq!(overlap((0, 10), (5, 20)), 5);
        assert_eq!(overlap((0, 4), (5, 20)), 0);
    }
}
