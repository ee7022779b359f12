//! Command-line flags: the shell's common ones ([`NodeArgs`]) plus Multi-Paxos's sizing,
//! validated into the settings the server runs with. Each rejection names the flag and
//! the rule it broke.

use crate::bugs::{Bug, Bugs};
use crate::paxos;
use anyhow::{bail, Result};
use clap::Parser;
use nodeshell::cli::{Node, NodeArgs};

/// paxoskv: a Multi-Paxos-replicated key-value store (faultline's reference target).
///
/// Clients speak raftkv's JSON-lines protocol on --client-listen (see
/// targets/raftkv/README.md); nodes speak to each other on --peer-listen. State lives in
/// --data-dir and survives restarts.
#[derive(Debug, Parser)]
#[command(name = "paxoskv", version)]
pub struct Args {
    #[command(flatten)]
    pub node: NodeArgs<Bug>,
    /// Snapshot the state machine and drop the votes it covers after this many applied
    /// slots.
    #[arg(long, default_value_t = 10_000, value_name = "SLOTS")]
    pub snapshot_threshold: u64,
    /// Most chosen values in one catch-up message.
    #[arg(long, default_value_t = 1024, value_name = "SLOTS")]
    pub max_fetch: usize,
}

/// Validated settings for [`crate::server::run`].
#[derive(Debug, Clone)]
pub struct Settings {
    pub node: Node<Bug>,
    pub bugs: Bugs,
    pub paxos: paxos::Config,
}

impl Args {
    /// Checks the flags against each other and resolves them into [`Settings`].
    pub fn validate(self) -> Result<Settings> {
        let node = self.node.validate()?;
        if self.snapshot_threshold == 0 {
            bail!("--snapshot-threshold must be at least 1");
        }
        if self.max_fetch == 0 {
            bail!("--max-fetch must be at least 1");
        }
        Ok(Settings {
            bugs: Bugs::from_list(&node.bugs),
            paxos: paxos::Config {
                election_ticks: node.election_ticks,
                heartbeat_ticks: node.heartbeat_ticks,
                compact_every: self.snapshot_threshold,
                max_fetch: self.max_fetch,
            },
            node,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Result<Settings> {
        let mut v = vec![
            "paxoskv",
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
    fn takes_the_shell_flags_and_the_bugs() {
        let s = args(&[
            "--peers",
            "n2=127.0.0.1:7003",
            "--bug",
            "no-ballot-check",
            "--snapshot-threshold",
            "7",
        ])
        .unwrap();
        assert!(s.bugs.no_ballot_check && !s.bugs.local_read);
        assert_eq!(s.node.peers.len(), 1);
        assert_eq!((s.paxos.election_ticks, s.paxos.compact_every), (50, 7));
    }

    #[test]
    fn rejects_zero_sizes_and_unknown_bugs() {
        let e = args(&["--snapshot-threshold", "0"]).unwrap_err();
        assert!(e.to_string().contains("--snapshot-threshold"), "{e}");
        let e = args(&["--max-fetch", "0"]).unwrap_err();
        assert!(e.to_string().contains("--max-fetch"), "{e}");
        assert!(args(&["--bug", "stale-read"]).is_err());
    }
}
