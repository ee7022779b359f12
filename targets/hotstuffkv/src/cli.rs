//! Command-line flags: the shell's common ones ([`NodeArgs`]) plus hotstuffkv's, validated
//! into the settings the server runs with. Each rejection names the flag and the rule.

use anyhow::{bail, Result};
use clap::{Parser, ValueEnum};
use nodeshell::cli::{Node, NodeArgs};

/// hotstuffkv plants no bugs of its own: the consensus is the published library's, and
/// what faultline finds in it is a finding. The one switch puts back a library bug the
/// wrapper works around, so the finding stays reproducible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Bug {
    /// Use hotstuff_rs 0.4.0's own `KVGet::block_data`, which returns every block without
    /// its data (src/store.rs): blocks sent by block sync fail their data hash, and a
    /// replica that fell behind never catches up.
    StockBlockData,
}

/// hotstuffkv: a key-value store replicated by hotstuff_rs 0.4 (pipelined HotStuff with
/// a rotating leader), faultline's HotStuff target.
///
/// Clients speak raftkv's JSON lines (targets/raftkv/README.md) on --client-listen; any
/// node takes any request and answers it once the block holding it is committed.
/// Replicas speak to each other on --peer-listen. n = 3f + 1 members (this node and
/// --peers) tolerate f Byzantine ones. The block tree lives in --data-dir and survives
/// restarts. --election-timeout-ms is the library's maximum view time, rounded up to
/// whole seconds (the library truncates it to seconds).
#[derive(Debug, Parser)]
#[command(name = "hotstuffkv", version)]
pub struct Args {
    #[command(flatten)]
    pub node: NodeArgs<Bug>,
    /// Every replica's key is derived from this and its id (test clusters only:
    /// pbftkv's src/keys.rs); the node keeps its own in DATA_DIR/node.key.
    #[arg(long, value_name = "SECRET")]
    pub cluster_secret: String,
    /// A leader with nothing to propose waits up to this long for a request before it
    /// proposes an empty block (the library proposes a block every view, and would
    /// otherwise go as fast as the disks let it).
    #[arg(long, default_value_t = 20, value_name = "MS")]
    pub idle_block_ms: u64,
    /// Views between the pacemaker's all-to-all view synchronisations (default: the
    /// number of members). The pacemaker fixes every view's deadline at the start of its
    /// epoch (epoch start + (views into the epoch + 1) × the maximum view time), so after
    /// fast views a stuck one waits out the rest of the epoch's budget: with the
    /// library's example value of 50 and 1 s views, a cluster stalled for 30 s and more
    /// after a partition healed. One rotation of leaders per epoch bounds that wait.
    #[arg(long, value_name = "VIEWS")]
    pub epoch_length: Option<u32>,
    /// Log every event of the library's (blocks inserted and committed, votes, views,
    /// syncs) in the node log. Costs a thread that polls without sleeping.
    #[arg(long)]
    pub log_events: bool,
}

/// Validated settings for [`crate::server::run`].
#[derive(Debug, Clone)]
pub struct Settings {
    pub node: Node<Bug>,
    pub cluster_secret: String,
    pub idle_block_ms: u64,
    pub epoch_length: u32,
    /// The library's maximum view time (--election-timeout-ms rounded up to seconds).
    pub max_view_ms: u64,
    pub log_events: bool,
    /// `--bug stock-block-data`.
    pub stock_block_data: bool,
}

impl Args {
    /// Checks the flags against each other and resolves them into [`Settings`].
    pub fn validate(self) -> Result<Settings> {
        // hotstuff_rs 0.4's pacemaker computes view deadlines from `max_view_time.as_secs()`
        // (src/pacemaker/implementation.rs, lines 527 and 563): a fraction of a second is
        // dropped, and under one second every view times out the moment it starts. Round
        // up to whole seconds, so the timeout the flag asks for is at least the one used.
        let max_view_ms = self.node.election_timeout_ms.div_ceil(1000).max(1) * 1000;
        let node = self.node.validate()?;
        if self.cluster_secret.is_empty() {
            bail!("--cluster-secret must not be empty");
        }
        let epoch_length = self.epoch_length.unwrap_or(node.peers.len() as u32 + 1);
        if epoch_length == 0 {
            bail!("--epoch-length must be at least 1");
        }
        // The library's timing rule: producing and validating a block, plus four network
        // delays, must fit in a view.
        if 4 * self.idle_block_ms >= max_view_ms {
            bail!("--idle-block-ms must be under a quarter of --election-timeout-ms (the maximum view time)");
        }
        Ok(Settings {
            cluster_secret: self.cluster_secret,
            idle_block_ms: self.idle_block_ms,
            epoch_length,
            max_view_ms,
            log_events: self.log_events,
            stock_block_data: node.bugs.contains(&Bug::StockBlockData),
            node,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Result<Settings> {
        let mut v = nodeshell::cli::MINIMAL_ARGS.to_vec();
        v.extend_from_slice(extra);
        Args::try_parse_from(v)?.validate()
    }

    #[test]
    fn takes_the_shell_flags_and_its_own() {
        let s = args(&[
            "--peers",
            "n2=127.0.0.1:7003",
            "--cluster-secret",
            "t",
            "--election-timeout-ms",
            "1500",
        ])
        .unwrap();
        assert_eq!(s.node.peers.len(), 1);
        // Whole seconds, rounded up: the library drops fractions of a second.
        assert_eq!(
            (s.max_view_ms, s.idle_block_ms, s.epoch_length),
            (2000, 20, 2)
        );
    }

    #[test]
    fn rejects_a_missing_secret_and_a_view_too_short_for_idle_blocks() {
        assert!(args(&[]).is_err());
        let e = args(&["--cluster-secret", ""]).unwrap_err();
        assert!(e.to_string().contains("--cluster-secret"), "{e}");
        let e = args(&["--cluster-secret", "t", "--idle-block-ms", "300"]).unwrap_err();
        assert!(e.to_string().contains("--idle-block-ms"), "{e}");
        assert!(args(&["--cluster-secret", "t", "--bug", "anything"]).is_err());
    }
}
