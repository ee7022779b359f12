//! Loopback hosts: without root or namespaces, every node gets its own address in 127/8
//! (Linux routes the whole range to `lo`), so nodes keep the target's fixed ports. Network
//! faults are unavailable here and the run says so.
//!
//! Runs at the same time (a campaign's `--parallel`) each lock their own 127.213.S.0/24
//! block, so their nodes never collide on an address and port.

use super::NodeHost;
use anyhow::{bail, Context, Result};
use std::net::Ipv4Addr;

/// The blocks 127.213.1.0 … 127.213.250.0.
const BLOCKS: u32 = 250;

#[derive(Debug)]
pub struct LoopbackHosts {
    pub nodes: Vec<NodeHost>,
    /// Holds this run's block; released when the run ends (or the process dies).
    _block_lock: super::local::StateLock,
}

impl LoopbackHosts {
    /// Addresses 127.213.S.2, .3 … where S is the first free block from one picked by the
    /// run id (so runs spread out without searching).
    pub fn create(run_id: &str, nodes: &[String]) -> Result<LoopbackHosts> {
        if nodes.len() > 250 {
            bail!(
                "loopback hosts hold at most 250 nodes per run, {} asked",
                nodes.len()
            );
        }
        let dir = super::cleanup::state_dir();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create state directory {}", dir.display()))?;
        let start = u32::from_str_radix(run_id.get(..4).unwrap_or("0"), 16).unwrap_or(0);
        for k in 0..BLOCKS {
            let s = (start + k) % BLOCKS + 1;
            let Some(lock) = super::local::try_lock(&dir.join(format!("loopback-{s}.lock")))?
            else {
                continue;
            };
            let nodes = nodes
                .iter()
                .enumerate()
                .map(|(i, n)| NodeHost {
                    node: n.clone(),
                    ip: Ipv4Addr::new(127, 213, s as u8, 2 + i as u8),
                    netns: None,
                })
                .collect();
            return Ok(LoopbackHosts {
                nodes,
                _block_lock: lock,
            });
        }
        bail!("all {BLOCKS} loopback address blocks are in use by other runs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_at_the_same_time_get_different_blocks() {
        let nodes = vec!["n1".to_string(), "n2".to_string()];
        let a = LoopbackHosts::create("abcd01", &nodes).unwrap();
        let b = LoopbackHosts::create("abcd01", &nodes).unwrap();
        assert_ne!(a.nodes[0].ip, b.nodes[0].ip);
        assert_eq!(a.nodes[1].ip.octets()[3], 3);
        let freed = a.nodes[0].ip;
        let lock_file = |ip: std::net::Ipv4Addr| {
            super::super::cleanup::state_dir().join(format!("loopback-{}.lock", ip.octets()[2]))
        };
        assert!(lock_file(freed).exists());
        drop(a);
        assert!(
            !lock_file(freed).exists(),
            "a finished run leaves no lock file"
        );
        let c = LoopbackHosts::create("abcd01", &nodes).unwrap();
        assert_eq!(c.nodes[0].ip, freed, "a released block is reused");
        let b_ip = b.nodes[0].ip;
        drop((b, c));
        assert!(!lock_file(freed).exists() && !lock_file(b_ip).exists());
    }
}
