//! Command-line flags: the shell's common ones ([`NodeArgs`]) plus PBFT's, validated into
//! the settings the server runs with. Each rejection names the flag and the rule it broke.

use crate::bugs::{Bug, Bugs};
use crate::pbft;
use anyhow::{bail, Result};
use clap::Parser;
use nodeshell::cli::{Node, NodeArgs};

/// pbftkv: a PBFT-replicated key-value store (faultline's reference Byzantine target).
///
/// Clients speak the JSON lines of targets/pbftkv/README.md ("Client protocol") on
/// --client-listen, signing each request and sending it to every replica; replicas speak
/// to each other on --peer-listen. n = 3f + 1 members (this node and --peers) tolerate f
/// faulty ones. State lives in --data-dir and survives restarts.
#[derive(Debug, Parser)]
#[command(name = "pbftkv", version)]
pub struct Args {
    #[command(flatten)]
    pub node: NodeArgs<Bug>,
    /// Every replica's key is derived from this and its id (test clusters only: see
    /// src/keys.rs); the node keeps its own in DATA_DIR/node.key.
    #[arg(long, value_name = "SECRET")]
    pub cluster_secret: String,
    /// K: a checkpoint every this many sequence numbers.
    #[arg(long, default_value_t = 16, value_name = "SEQS")]
    pub checkpoint_interval: u64,
    /// L: how far past the stable checkpoint sequence numbers may run (a multiple of K).
    #[arg(long, default_value_t = 64, value_name = "SEQS")]
    pub window: u64,
    /// A backup with a request waiting this long starts a view change.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub view_change_ms: u64,
    /// Unfinished work's messages are sent again this often.
    #[arg(long, default_value_t = 200, value_name = "MS")]
    pub resend_ms: u64,
}

/// Validated settings for [`crate::server::run`].
#[derive(Debug, Clone)]
pub struct Settings {
    pub node: Node<Bug>,
    pub bugs: Bugs,
    pub pbft: pbft::Config,
    pub cluster_secret: String,
}

impl Args {
    /// Checks the flags against each other and resolves them into [`Settings`].
    pub fn validate(self) -> Result<Settings> {
        let node = self.node.validate()?;
        let n = node.peers.len() as u32 + 1;
        if n < 4 {
            bail!("--peers: PBFT needs n = 3f + 1 ≥ 4 members (this node and --peers), got {n}");
        }
        if self.cluster_secret.is_empty() {
            bail!("--cluster-secret must not be empty");
        }
        if self.checkpoint_interval == 0 {
            bail!("--checkpoint-interval must be at least 1");
        }
        if self.window == 0 || !self.window.is_multiple_of(self.checkpoint_interval) {
            bail!("--window must be a positive multiple of --checkpoint-interval");
        }
        let ticks = |ms: u64| (ms / node.tick_ms).max(1);
        if self.view_change_ms < 2 * node.tick_ms || self.resend_ms < node.tick_ms {
            bail!("--view-change-ms must be at least 2 ticks and --resend-ms at least 1 tick (--tick-ms)");
        }
        Ok(Settings {
            bugs: Bugs::from_list(&node.bugs),
            pbft: pbft::Config {
                n,
                checkpoint_interval: self.checkpoint_interval,
                window: self.window,
                view_change_ticks: ticks(self.view_change_ms),
                resend_ticks: ticks(self.resend_ms),
            },
            cluster_secret: self.cluster_secret,
            node,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Result<Settings> {
        let mut v = nodeshell::cli::MINIMAL_ARGS.to_vec();
        v.extend_from_slice(&["--cluster-secret", "s"]);
        v.extend_from_slice(extra);
        Args::try_parse_from(v)?.validate()
    }

    const PEERS: &str = "n2=127.0.0.1:7003,n3=127.0.0.1:7005,n4=127.0.0.1:7007";

    #[test]
    fn takes_the_shell_flags_the_bugs_and_the_sizes() {
        let s = args(&[
            "--peers",
            PEERS,
            "--bug",
            "no-digest-check",
            "--view-change-ms",
            "500",
        ])
        .unwrap();
        assert!(s.bugs.no_digest_check && !s.bugs.commit_quorum_2f);
        assert_eq!(
            (s.pbft.n, s.pbft.view_change_ticks, s.pbft.resend_ticks),
            (4, 50, 20)
        );
    }

    #[test]
    fn rejects_small_clusters_bad_windows_and_unknown_bugs() {
        let e = args(&["--peers", "n2=127.0.0.1:7003"]).unwrap_err();
        assert!(e.to_string().contains("3f + 1"), "{e}");
        let e = args(&["--peers", PEERS, "--window", "20"]).unwrap_err();
        assert!(e.to_string().contains("--window"), "{e}");
        assert!(args(&["--peers", PEERS, "--bug", "stale-read"]).is_err());
    }
}
