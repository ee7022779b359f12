//! Command-line flags (what the user typed) and their validation into the settings the
//! server runs with: the shell's common flags ([`NodeArgs`]) plus Raft's timing and
//! batching. Each rejection names the flag and the rule it broke.

use crate::bugs::{Bug, Bugs};
use crate::raft::{self, NodeId};
use crate::replica::ReplicaConfig;
use anyhow::{bail, Result};
use clap::Parser;
use nodeshell::cli::NodeArgs;
use std::net::SocketAddr;
use std::path::PathBuf;

/// raftkv: a Raft-replicated key-value store (faultline's reference target).
///
/// Clients speak JSON lines on --client-listen (see targets/raftkv/README.md); nodes
/// speak to each other on --peer-listen. State lives in --data-dir and survives restarts.
#[derive(Debug, Parser)]
#[command(name = "raftkv", version)]
pub struct Args {
    #[command(flatten)]
    pub node: NodeArgs<Bug>,
    /// Snapshot and compact the log after this many applied entries.
    #[arg(long, default_value_t = 10_000, value_name = "ENTRIES")]
    pub snapshot_threshold: u64,
    /// Most log entries in one AppendEntries.
    #[arg(long, default_value_t = 4096, value_name = "ENTRIES")]
    pub max_batch: usize,
    /// Most AppendEntries in flight to one follower before the leader waits for answers.
    #[arg(long, default_value_t = 64, value_name = "MESSAGES")]
    pub max_inflight: usize,
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

impl Args {
    /// Checks the flags against each other and resolves them into [`Settings`].
    pub fn validate(self) -> Result<Settings> {
        let node = self.node.validate()?;
        let tick_ms = node.tick_ms;
        if self.snapshot_threshold == 0 {
            bail!("--snapshot-threshold must be at least 1");
        }
        if self.max_batch == 0 {
            bail!("--max-batch must be at least 1");
        }
        if self.max_inflight == 0 {
            bail!("--max-inflight must be at least 1");
        }
        Ok(Settings {
            raft: raft::Config {
                election_ticks: node.election_ticks,
                heartbeat_ticks: node.heartbeat_ticks,
                tick_ms,
                max_entries_per_msg: self.max_batch,
                max_inflight: self.max_inflight,
            },
            replica: ReplicaConfig {
                snapshot_threshold: self.snapshot_threshold,
                request_timeout_ticks: node.request_timeout_ticks,
                max_pending: 100_000,
            },
            bugs: Bugs::from_list(&node.bugs),
            id: node.id,
            peer_listen: node.peer_listen,
            client_listen: node.client_listen,
            peers: node.peers,
            data_dir: node.data_dir,
            tick_ms,
            request_timeout_ms: node.request_timeout_ms,
            seed: node.seed,
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
    fn rejects_unknown_bug_and_bad_timing() {
        assert!(args(&["--bug", "no-such-bug"]).is_err());
        let e = args(&["--election-timeout-ms", "60", "--heartbeat-ms", "50"]).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
    }
}
