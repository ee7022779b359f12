//! The flags every node takes (its id, the cluster, its addresses and data dir, bug
//! switches, the leader timers and their granularity, the request timeout, seed) and
//! their validation. A target flattens
//! [`NodeArgs`] into its own clap parser, supplying its bug enum, adds its protocol's
//! flags, and calls [`NodeArgs::validate`]. Each rejection names the flag and the rule.

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The common flags; `B` is the target's bug enum (`--bug NAME`, repeatable).
#[derive(Debug, Args)]
pub struct NodeArgs<B: ValueEnum + Clone + Send + Sync + 'static> {
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
    /// Directory holding this node's durable state (created if missing).
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Switch on a known consensus bug (repeatable). See README.md for what each breaks.
    #[arg(long = "bug", value_enum, value_name = "NAME")]
    pub bugs: Vec<B>,
    /// Minimum election timeout (how long without a leader before a node campaigns);
    /// each timeout is drawn from [T, 2T).
    #[arg(long, default_value_t = 500, value_name = "MS")]
    pub election_timeout_ms: u64,
    /// Leader heartbeat interval.
    #[arg(long, default_value_t = 50, value_name = "MS")]
    pub heartbeat_ms: u64,
    /// Granularity of the protocol's timers.
    #[arg(long, default_value_t = 10, value_name = "MS")]
    pub tick_ms: u64,
    /// Answer "info: timeout" to a request not finished within this time.
    #[arg(long, default_value_t = 5_000, value_name = "MS")]
    pub request_timeout_ms: u64,
    /// Seed of the node's randomness, e.g. election timeouts (default: from the clock,
    /// the id and the process id).
    #[arg(long)]
    pub seed: Option<u64>,
}

/// The common flags, validated.
#[derive(Debug, Clone)]
pub struct Node<B> {
    pub id: String,
    pub peer_listen: SocketAddr,
    pub client_listen: SocketAddr,
    /// (id, "host:port") of every other member, in the order given.
    pub peers: Vec<(String, String)>,
    pub data_dir: PathBuf,
    pub bugs: Vec<B>,
    pub tick_ms: u64,
    /// The election timeout and heartbeat interval in ticks.
    pub election_ticks: u64,
    pub heartbeat_ticks: u64,
    pub request_timeout_ms: u64,
    /// The request timeout in ticks.
    pub request_timeout_ticks: u64,
    pub seed: u64,
}

impl<B> Node<B> {
    /// The start-up log line's description of the node (the target adds its name and
    /// version in front and the bug names at the end).
    pub fn describe(&self) -> String {
        format!(
            "peers [{}], peer-listen {}, client-listen {}, data-dir {}",
            self.peers
                .iter()
                .map(|(id, a)| format!("{id}={a}"))
                .collect::<Vec<_>>()
                .join(","),
            self.peer_listen,
            self.client_listen,
            self.data_dir.display(),
        )
    }
}

/// True for an id made of letters, digits, '-', '_' and '.'.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

impl<B: ValueEnum + Clone + Send + Sync + 'static> NodeArgs<B> {
    /// Checks the common flags and resolves them into a [`Node`].
    pub fn validate(self) -> Result<Node<B>> {
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
        Ok(Node {
            id: self.id,
            peer_listen: self.peer_listen,
            client_listen: self.client_listen,
            peers,
            data_dir: self.data_dir,
            bugs: self.bugs,
            tick_ms: self.tick_ms,
            election_ticks: (self.election_timeout_ms / self.tick_ms).max(2),
            heartbeat_ticks: (self.heartbeat_ms / self.tick_ms).max(1),
            request_timeout_ms: self.request_timeout_ms,
            request_timeout_ticks: (self.request_timeout_ms / self.tick_ms).max(1),
            seed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
    enum Bug {
        StaleRead,
        ForgetVote,
    }

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        node: NodeArgs<Bug>,
    }

    fn args(extra: &[&str]) -> Result<Node<Bug>> {
        let mut v = vec![
            "node",
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
        Cli::try_parse_from(v)?.node.validate()
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
        assert_eq!(s.bugs, vec![Bug::StaleRead, Bug::ForgetVote]);
        assert_eq!(
            (s.tick_ms, s.election_ticks, s.heartbeat_ticks),
            (10, 50, 5)
        );
    }

    #[test]
    fn empty_peers_is_a_one_node_cluster() {
        assert!(args(&["--peers", ""]).unwrap().peers.is_empty());
        assert!(args(&[]).unwrap().peers.is_empty());
    }

    #[test]
    fn rejects_duplicate_own_and_malformed_peers_bad_ids_and_ticks() {
        let e = args(&["--peers", "n2=127.0.0.1:1,n2=127.0.0.1:2"]).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
        let e = args(&["--peers", "n1=127.0.0.1:1"]).unwrap_err();
        assert!(e.to_string().contains("own id"), "{e}");
        let e = args(&["--peers", "n2"]).unwrap_err();
        assert!(e.to_string().contains("ID=HOST:PORT"), "{e}");
        let e = args(&["--peers", "n2=host"]).unwrap_err();
        assert!(e.to_string().contains("HOST:PORT"), "{e}");
        let e = args(&["--peers", "n 2=host:1"]).unwrap_err();
        assert!(e.to_string().contains("not a valid node id"), "{e}");
        let e = args(&["--tick-ms", "0"]).unwrap_err();
        assert!(e.to_string().contains("--tick-ms"), "{e}");
        assert!(args(&["--bug", "no-such-bug"]).is_err());
        let e = args(&["--election-timeout-ms", "60", "--heartbeat-ms", "50"]).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
        let e = args(&["--heartbeat-ms", "5"]).unwrap_err();
        assert!(e.to_string().contains("--heartbeat-ms (5)"), "{e}");
    }
}
