//! Packet delay: a node's packets to its peers are held for a latency (± jitter) before
//! they leave, as on a slow network.
//!
//! The kernel here has no `netem` and nftables has no `queue` statement, but iptables'
//! `NFQUEUE` target works: a rule in the node's own namespace hands each outgoing packet to
//! a netlink queue, and a thread of the controller, bound to that queue from inside the
//! namespace, gives the verdict "accept" once the packet's time has come. The rule carries
//! `--queue-bypass`, so if the controller dies the packets flow again undelayed, and it
//! lives in the node's namespace, which the run's teardown deletes.
//!
//! Only packets to other nodes are delayed, not the node's answers to clients: the fault
//! slows replication and elections, the thing under test, while the clients' view of time
//! stays honest. Release times never go backwards, so jitter never reorders packets (TCP
//! would answer reordering with duplicate ACKs and spurious retransmissions, a different
//! fault).
//!
//! The fault (delay / stop delay) owns its verdict threads: a node is listed in force before
//! its thread starts, the thread lives in that entry, and stopping the delay (or dropping
//! the entry) ends it.

use super::{nodes_list, Failed, Landed, Nemesis};
use anyhow::{anyhow, bail, Context, Result};
use nfq::{Queue, Verdict};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Hold each node's packets to its peers for `latency_ms` ± `jitter_ms`.
pub async fn start(
    n: &Nemesis,
    nodes: &[String],
    latency_ms: u64,
    jitter_ms: u64,
) -> Result<Landed> {
    for (i, node) in nodes.iter().enumerate() {
        let cfg = DelayConfig {
            latency: Duration::from_millis(latency_ms),
            jitter: Duration::from_millis(jitter_ms),
            seed: latency_ms ^ (i as u64) << 32,
        };
        start_one(n, node, cfg).await?;
    }
    tracing::info!(
        "nemesis: packets to peers delayed {latency_ms} ms ± {jitter_ms} ms on {}",
        nodes_list(nodes)
    );
    Ok(Landed::on(json!({
        "nodes": nodes, "latency_ms": latency_ms, "jitter_ms": jitter_ms
    })))
}

/// Bind the node's queue, then add the rule (until a program is bound, the bypass flag
/// lets packets through).
async fn start_one(n: &Nemesis, node: &str, cfg: DelayConfig) -> Result<()> {
    // Checked before the intent is recorded: the inverse flushes a mangle table, which
    // must only ever happen inside a namespace of our own.
    let netns = own_netns(n, node)?;
    let peers = n.peers_of(node)?;
    {
        let mut f = n.in_force().await;
        if f.delayed.contains_key(node) {
            return Ok(());
        }
        f.delayed.insert(node.to_string(), None);
    }
    let delayer = tokio::task::spawn_blocking(move || Delayer::start(&netns, cfg))
        .await
        .context("the delay start task failed")??;
    if let Some(slot) = n.in_force().await.delayed.get_mut(node) {
        *slot = Some(delayer);
    }
    let rule = rule_args(&peers);
    n.exec_checked(
        node,
        &rule.iter().map(String::as_str).collect::<Vec<_>>(),
        b"",
    )
    .await
}

/// The node's network namespace; delays act only there.
fn own_netns(n: &Nemesis, node: &str) -> Result<String> {
    n.cluster
        .hosts()
        .node(node)
        .and_then(|h| h.netns.clone())
        .ok_or_else(|| {
            anyhow!(
                "node {node}: delay faults need the node in a network namespace of this machine"
            )
        })
}

/// Remove every delayed node's rule and release what its queue holds.
pub async fn stop(n: &Nemesis) -> Result<Landed> {
    let nodes: Vec<String> = n.in_force().await.delayed.keys().cloned().collect();
    let mut held = BTreeMap::new();
    let mut lines = Vec::new();
    let mut failed = Failed::default();
    for node in &nodes {
        let s = match stop_one(n, node).await {
            Ok(s) => s,
            Err(e) => {
                failed.keep::<()>(Err(e));
                continue;
            }
        };
        let mean = (s.mean_held_ms * 10.0).round() / 10.0;
        lines.push(format!("{node} {} packets, {mean} ms mean", s.packets));
        held.insert(
            node.clone(),
            json!({"packets": s.packets, "mean_held_ms": mean, "max_held": s.max_held}),
        );
    }
    failed.into_result()?;
    tracing::info!("nemesis: delay stopped ({})", lines.join("; "));
    Ok(Landed::on(json!({ "nodes": nodes, "held": held })))
}

async fn stop_one(n: &Nemesis, node: &str) -> Result<DelayStats> {
    own_netns(n, node)?;
    n.exec_checked(node, &FLUSH_ARGS, b"").await?;
    // Taken only once the rule is gone, so no packet is queued to a thread that ended.
    let delayer = n.in_force().await.delayed.remove(node).flatten();
    Ok(match delayer {
        Some(d) => match tokio::task::spawn_blocking(move || d.stop()).await {
            Ok(Ok(s)) => s,
            // The thread already said why it ended; the heal itself (rule gone) holds.
            Ok(Err(_)) | Err(_) => DelayStats::default(),
        },
        None => DelayStats::default(),
    })
}

/// The queue number inside each node's namespace (queues are per namespace, so every node
/// can use the same one).
pub const QUEUE_NUM: u16 = 213;

/// Packets the kernel may hold for us before it lets new ones pass undelayed (fail-open):
/// a slow verdict loop must degrade the fault, never drop traffic.
const KERNEL_QUEUE_LEN: u32 = 65_536;

/// How long the verdict loop sleeps at most when nothing is due: new packets wait at most
/// this much beyond their latency.
const POLL: Duration = Duration::from_millis(1);

/// Latency and jitter of one delay fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DelayConfig {
    pub latency: Duration,
    pub jitter: Duration,
    pub seed: u64,
}

/// What a delay did, reported when it stops.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DelayStats {
    pub packets: u64,
    /// Mean time from arrival in our queue to the verdict.
    pub mean_held_ms: f64,
    pub max_held: usize,
    /// Verdicts the kernel refused because it no longer held the packet.
    pub gone: u64,
}

/// The verdict thread of one node's delay.
#[derive(Debug)]
pub struct Delayer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<DelayStats>>>,
}

impl Delayer {
    /// Bind the queue inside network namespace `netns` and start holding packets. Install
    /// the rule ([`rule_args`]) only after this returns: until a program is bound, the
    /// bypass flag lets packets through.
    pub fn start(netns: &str, cfg: DelayConfig) -> Result<Delayer> {
        let ns = File::open(format!("/run/netns/{netns}"))
            .with_context(|| format!("cannot open network namespace {netns}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let flag = stop.clone();
        // The thread logs into the run's log, like the task that starts it.
        let log = tracing::dispatcher::get_default(tracing::Dispatch::clone);
        let thread = std::thread::Builder::new()
            .name(format!("delay-{netns}"))
            .spawn({
                let netns = netns.to_string();
                move || {
                    let _logging = tracing::dispatcher::set_default(&log);
                    let r = verdict_thread(ns, cfg, flag, ready_tx);
                    if let Err(e) = &r {
                        // Without a listener the bypass flag lets packets pass: the fault
                        // has ended early, which the run log must say.
                        tracing::info!("nemesis: the delay in {netns} failed ({e:#}); its packets pass undelayed");
                    }
                    r
                }
            })
            .context("cannot start the delay thread")?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Delayer {
                stop,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e.context(format!("cannot bind packet queue {QUEUE_NUM} in {netns}")))
            }
            Err(_) => match thread.join() {
                Ok(Err(e)) => Err(e),
                _ => bail!("the delay thread for {netns} ended before binding its queue"),
            },
        }
    }

    /// Release every held packet and unbind. Delete the rule first, so nothing new arrives.
    pub fn stop(mut self) -> Result<DelayStats> {
        self.stop.store(true, Ordering::SeqCst);
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => bail!("the delay thread panicked"),
            None => Ok(DelayStats::default()),
        }
    }
}

impl Drop for Delayer {
    /// On error paths the thread is told to finish on its own (it releases what it holds);
    /// the namespace's deletion at teardown takes the rule with it.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// iptables arguments that queue the node's packets to `peers` (run inside its namespace).
pub fn rule_args(peers: &[Ipv4Addr]) -> Vec<String> {
    let list: Vec<String> = peers.iter().map(|p| format!("{p}/32")).collect();
    [
        "iptables",
        "-w",
        "-t",
        "mangle",
        "-A",
        "OUTPUT",
        "-d",
        &list.join(","),
        "-j",
        "NFQUEUE",
        "--queue-num",
        &QUEUE_NUM.to_string(),
        "--queue-bypass",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// iptables arguments that remove every delay rule. The mangle table of a node's namespace
/// holds nothing but ours: the namespace is faultline's own.
pub const FLUSH_ARGS: [&str; 6] = ["iptables", "-w", "-t", "mangle", "-F", "OUTPUT"];

fn verdict_thread(
    ns: File,
    cfg: DelayConfig,
    stop: Arc<AtomicBool>,
    ready: mpsc::Sender<Result<()>>,
) -> Result<DelayStats> {
    let opened = open_queue(&ns);
    let mut q = match opened {
        Ok(q) => {
            let _ = ready.send(Ok(()));
            q
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return Ok(DelayStats::default());
        }
    };
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut held: VecDeque<(Instant, Instant, nfq::Message)> = VecDeque::new();
    let mut last_release = Instant::now();
    let mut stats = DelayStats::default();
    let mut held_total = Duration::ZERO;
    let jitter_ms = cfg.jitter.as_secs_f64() * 1000.0;
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        loop {
            match q.recv() {
                Ok(m) => {
                    let now = Instant::now();
                    let offset = if jitter_ms > 0.0 {
                        rng.random_range(-jitter_ms..=jitter_ms)
                    } else {
                        0.0
                    };
                    let ms = (cfg.latency.as_secs_f64() * 1000.0 + offset).max(0.0);
                    let release = (now + Duration::from_secs_f64(ms / 1000.0)).max(last_release);
                    last_release = release;
                    held.push_back((now, release, m));
                    stats.max_held = stats.max_held.max(held.len());
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                // The kernel reports a verdict for a packet it no longer holds (it was
                // dropped with its device or flushed) as ENOENT on this socket: harmless.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    stats.gone += 1;
                    continue;
                }
                Err(e) => return Err(anyhow!(e).context("reading the packet queue")),
            }
        }
        let now = Instant::now();
        while let Some((arrived, release, _)) = held.front() {
            if *release > now && !stopping {
                break;
            }
            held_total += now.saturating_duration_since(*arrived);
            if let Some((_, _, mut m)) = held.pop_front() {
                m.set_verdict(Verdict::Accept);
                q.verdict(m).context("releasing a delayed packet")?;
                stats.packets += 1;
            }
        }
        if stopping {
            break;
        }
        let wait = held
            .front()
            .map_or(POLL, |(_, r, _)| r.saturating_duration_since(now).min(POLL));
        std::thread::sleep(wait);
    }
    let _ = q.unbind(QUEUE_NUM);
    if stats.packets > 0 {
        stats.mean_held_ms = held_total.as_secs_f64() * 1000.0 / stats.packets as f64;
    }
    Ok(stats)
}

fn open_queue(ns: &File) -> Result<Queue> {
    // Only this thread enters the namespace; the netlink socket it opens stays bound there.
    // SAFETY: setns on a valid namespace file descriptor, for the calling thread only.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error()).context("cannot enter the namespace");
    }
    let mut q = Queue::open().context("cannot open a netfilter queue socket")?;
    q.bind(QUEUE_NUM)
        .context("cannot bind the queue (is another program bound to it?)")?;
    // Only metadata: the verdict needs the packet's id, not its bytes.
    q.set_copy_range(QUEUE_NUM, 0)?;
    q.set_queue_max_len(QUEUE_NUM, KERNEL_QUEUE_LEN)?;
    q.set_fail_open(QUEUE_NUM, true)?;
    q.set_nonblocking(true);
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_queue_only_packets_to_peers_and_pass_without_us() {
        let args = rule_args(&["10.213.0.3".parse().unwrap(), "10.213.0.4".parse().unwrap()]);
        let line = args.join(" ");
        assert!(line.contains("-t mangle -A OUTPUT -d 10.213.0.3/32,10.213.0.4/32"));
        assert!(line.ends_with("-j NFQUEUE --queue-num 213 --queue-bypass"));
        assert_eq!(FLUSH_ARGS.join(" "), "iptables -w -t mangle -F OUTPUT");
    }
}
