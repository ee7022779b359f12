//! Loopback hosts: without root or namespaces, every node gets its own address in 127/8
//! (Linux routes the whole range to `lo`), so nodes keep the target's fixed ports. Network
//! faults are unavailable here and the run says so.

use super::NodeHost;
use std::net::Ipv4Addr;

#[derive(Debug)]
pub struct LoopbackHosts {
    pub nodes: Vec<NodeHost>,
}

impl LoopbackHosts {
    /// Addresses 127.213.S.2, .3 … where S is picked from the run id so two runs rarely
    /// collide (a collision shows up as "address in use" at node start).
    pub fn create(run_id: &str, nodes: &[String]) -> LoopbackHosts {
        let s = u32::from_str_radix(run_id.get(..4).unwrap_or("0"), 16).unwrap_or(0) % 250 + 1;
        let nodes = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| NodeHost {
                node: n.clone(),
                ip: Ipv4Addr::new(127, 213, s as u8, 2 + i as u8),
                netns: None,
            })
            .collect();
        LoopbackHosts { nodes }
    }
}
