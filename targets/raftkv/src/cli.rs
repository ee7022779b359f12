//! Command-line flags (what the user typed) and their validation into the settings the
//! server runs with. Each rejection names the flag and the rule it broke.

use crate::bugs::{Bug, Bugs};
use crate::raft::{self, NodeId};
use crate::replica::ReplicaConfig;
use anyhow::{bail, Result};
use clap::Parser;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;

/// raftkv: a Raft-replicated key-value store (faultline's reference target).
///
/// Clients speak JSON lines on --client-listen (see targets/raftkv/README.md); nodes
/// speak to each other on --peer-listen. State lives in --data-dir and survives restarts.
#[derive(Debug, Parser)]
#[command(name = "raftkv", version)]
pub struct Args {
    /// This node's id (e.g. n1); unique in the cluster.
    #[arg(long)]
    pub id: String,
    /// Address to accept peer connections on (IP:PORT).
    #[arg(long, value_name = "ADDR")]
    pub peer_listen: SocketAddr,
    /// Address to accept client connections on (IP:PORT).
    #[arg(long, value_name = "ADDR")]
    pub client_listen: SocketAddr,
    /// The other members: ID=HOST:PORT, comma-separated (empty for a one-node cluster).
    #[arg(
        long,
        value_name = "ID=ADDR,...",
        value_delimiter = ',',
        default_value = ""
    )]
    pub peers: Vec<String>,
    /// Directory holding this node's log, vote and snapshot (created if missing).
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Switch on a known consensus bug (repeatable). See README.md for what each breaks.
    #[arg(long = "bug", value_enum, value_name = "NAME")]
    pub bugs: Vec<Bug>,
    /// Minimum election timeout; each timeout is drawn from [T, 2T).
    #[arg(long, default_value_t = 500, value_name = "MS")]
    pub election_timeout_ms: u64,
    /// Leader heartbeat interval.
    #[arg(long, default_value_t = 50, value_name = "MS")]
    pub heartbeat_ms: u64,
    /// Granularity of the Raft timers.
    #[arg(long, default_value_t = 10, value_name = "MS")]
    pub tick_ms: u64,
    /// Snapshot and compact the log after this many applied entries.
    #[arg(long, default_value_t = 10_000, value_name = "ENTRIES")]
    pub snapshot_threshold: u64,
    /// Answer "info: timeout" to a request not finished within this time.
    #[arg(long, default_value_t = 5_000, value_name = "MS")]
    pub request_timeout_ms: u64,
    /// Most log entries in one AppendEntries.
    #[arg(long, default_value_t = 4096, value_name = "ENTRIES")]
    pub max_batch: usize,
    /// Most AppendEntries in flight to one follower before the leader waits for answers.
    #[arg(long, default_value_t = 64, value_name = "MESSAGES")]
    pub max_inflight: usize,
    /// Seed of the election-timeout randomness (default: from the clock and the id).
    #[arg(long)]
    pub seed: Option<u64>,
}

/// Validated settings for [`crate::server::run`].
#[derive(Debug, Clone)]
pub struct Settings {
    pub id: NodeId,
    pub peer_listen: SocketAddr,
    pub client_listen: SocketAddr,
    /// (id, "host:port") of every other member.
    pub peers: Vec<(NodeId, String)>,
    pub data_dir: PathBuf,
    pub bugs: Bugs,
    pub raft: raft::Config,
    pub replica: ReplicaConfig,
    pub tick_ms: u64,
    pub request_timeout_ms: u64,
    pub seed: u64,
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

impl Args {
    /// Checks the flags against each other and resolves them into [`Settings`].
    pub fn validate(self) -> Result<Settings> {
        if !valid_id(&self.id) {
            bail!(
                "--id {:?}: an id must be non-empty and use only letters, digits, '-', '_' or '.'",
                self.id
            );
        }
        let mut peers = Vec::new();
        let mut seen = BTreeSet::new();
        for entry in self.peers.iter().filter(|e| !e.trim().is_empty()) {
            let Some((id, addr)) = entry.split_once('=') else {
                bail!("--peers entry {entry:?}: expected ID=HOST:PORT");
            };
            let (id, addr) = (id.trim(), addr.trim());
            if !valid_id(id) {
                bail!("--peers entry {entry:?}: {id:?} is not a valid node id");
            }
            let port_ok = addr
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !port_ok {
                bail!("--peers entry {entry:?}: address {addr:?} is not HOST:PORT");
            }
            if id == self.id {
                bail!("--peers lists this node's own id {id:?}; list only the other members");
            }
            if !seen.insert(id.to_string()) {
                bail!("--peers lists node id {id:?} twice; ids must be unique");
            }
            peers.push((id.to_string(), addr.to_string()));
        }
        if self.tick_ms == 0 {
            bail!("--tick-ms must be at least 1");
        }
        if self.heartbeat_ms < self.tick_ms {
            bail!(
                "--heartbeat-ms ({}) must be at least --tick-ms ({})",
                self.heartbeat_ms,
                self.tick_ms
            );
        }
        if self.election_timeout_ms < 2 * self.heartbeat_ms {
            bail!(
                "--election-timeout-ms ({}) must be at least twice --heartbeat-ms ({}), or followers time out between heartbeats",
                self.election_timeout_ms,
                self.heartbeat_ms
            );
        }
        if self.snapshot_threshold == 0 {
            bail!("--snapshot-threshold must be at least 1");
        }
        if self.max_batch == 0 {
            bail!("--max-batch must be at least 1");
        }
        if self.max_inflight == 0 {
            bail!("--max-inflight must be at least 1");
        }
        if self.request_timeout_ms < self.tick_ms {
            bail!("--request-timeout-ms must be at least --tick-ms");
        }
        let seed = self.seed.unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            let id_hash = self.id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
            });
            nanos ^ id_hash ^ std::process::id() as u64
        });
        Ok(Settings {
            raft: raft::Config {
                election_ticks: (self.election_timeout_ms / self.tick_ms).max(2),
                heartbeat_ticks: (self.heartbeat_ms / self.tick_ms).max(1),
                tick_ms: self.tick_ms,
                max_entries_per_msg: self.max_batch,
                max_inflight: self.max_inflight,
            },
            replica: ReplicaConfig {
                snapshot_threshold: self.snapshot_threshold,
                request_timeout_ticks: (self.request_timeout_ms / self.tick_ms).max(1),
                max_pending: 100_000,
            },
            id: self.id,
            peer_listen: self.peer_listen,
            client_listen: self.client_listen,
            peers,
            data_dir: self.data_dir,
            bugs: Bugs::from_list(&self.bugs),
            tick_ms: self.tick_ms,
            request_timeout_ms: self.request_timeout_ms,
            seed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Result<Settings> {
        let mut v = vec![
            "raftkv",
            "--id",
            "n1",
            "--peer-listen",
            "127.0.0.1:7001",
            "--client-listen",
            "127.0.0.1:7002",
            "--data-dir",
            "/tmp/x",
        ];
        v.extend_from_slice(extra);
        Args::try_parse_from(v)?.validate()
    }

    #[test]
    fn accepts_peers_and_bugs() {
        let s = args(&[
            "--peers",
            "n2=10.213.0.2:7001,n3=localhost:7001",
            "--bug",
            "stale-read",
            "--bug",
            "forget-vote",
        ])
        .unwrap();
        assert_eq!(s.peers.len(), 2);
        assert!(s.bugs.stale_read && s.bugs.forget_vote && !s.bugs.lease_read);
        assert_eq!(s.raft.election_ticks, 50);
    }

    #[test]
    fn empty_peers_is_a_one_node_cluster() {
        assert!(args(&["--peers", ""]).unwrap().peers.is_empty());
        assert!(args(&[]).unwrap().peers.is_empty());
    }

    #[test]
    fn rejects_duplicate_own_and_malformed_peers() {
        let e = args(&["--peers", "n2=127.0.0.1:1,n2=127.0.0.1:2"]).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
        let e = args(&["--peers", "n1=127.0.0.1:1"]).unwrap_err();
        assert!(e.to_string().contains("own id"), "{e}");
        let e = args(&["--peers", "n2"]).unwrap_err();
        assert!(e.to_string().contains("ID=HOST:PORT"), "{e}");
        let e = args(&["--peers", "n2=host"]).unwrap_err();
        assert!(e.to_string().contains("HOST:PORT"), "{e}");
    }

    #[test]
    fn rejects_unknown_bug_and_bad_timing() {
        assert!(args(&["--bug", "no-such-bug"]).is_err());
        let e = args(&["--election-timeout-ms", "60", "--heartbeat-ms", "50"]).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
    }
}
