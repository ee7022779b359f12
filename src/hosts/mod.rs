//! Hosts: where nodes run, and the operations the controller performs on them.
//!
//! Owns creating and tearing down the places nodes live (network namespaces joined by a
//! bridge, or bare loopback addresses), spawning a node's process inside its host, running
//! a command there (e.g. `nft`), and the registry that makes sure nothing outlives a run.
//! What a node *is* (its start command, readiness) belongs to [`crate::target`].
//!
//! The set of host kinds is closed, so it is an enum ([`Hosts`]), not a trait object.

pub mod cgroup;
pub mod cleanup;
pub mod clock;
pub mod lab;
pub mod lazyfs;
pub mod local;
pub mod loopback;
#[cfg(test)]
pub mod recording;
pub mod ssh;
pub mod tarball;
pub mod twin;
pub mod vagrant;
pub mod wire;

use anyhow::Result;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Output;

pub use cleanup::Registry;

/// The nftables table faultline owns in a node's host for partitions: faults add it,
/// heals and host cleanup delete it, and nothing else of the host's firewall is touched.
pub const PARTITION_TABLE: &str = "faultline_partition";
/// The nftables table faultline owns in a node's host for packet loss.
pub const LOSS_TABLE: &str = "faultline_loss";
pub use twin::TWIN_TABLE;
pub use wire::WIRE_TABLE;

/// One node's place: its name and the address the controller and its peers reach it at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeHost {
    pub node: String,
    pub ip: Ipv4Addr,
    /// The network namespace the node lives in, if any.
    pub netns: Option<String>,
}

/// A command to start as a node process.
#[derive(Debug, Clone)]
pub struct SpawnSpec {
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: PathBuf,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    /// Kill the node when the controller dies (off for `--leave-running`).
    pub die_with_controller: bool,
    /// The node's cgroup (v2) on the machine it runs on (this one, or its SSH host), which
    /// it joins before exec, so that nothing it starts can leave it; `None` where cgroups
    /// are unavailable.
    pub cgroup: Option<PathBuf>,
}

/// What this machine allows, decided once before planning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capability {
    /// Root with working network namespaces, veth and a bridge.
    Namespaces,
    /// Only loopback; the reason says what is missing.
    LoopbackOnly { reason: String },
}

/// Detect whether local namespaces can be used here.
pub fn detect() -> Capability {
    local::probe()
}

/// The hosts of one run.
#[derive(Debug)]
pub enum Hosts {
    Local(local::LocalHosts),
    Loopback(loopback::LoopbackHosts),
    Ssh(ssh::SshHosts),
    /// Unit tests: loopback nodes whose host commands are recorded, not run.
    #[cfg(test)]
    Recording(recording::RecordingHosts),
}

/// A node process as its host started it.
#[derive(Debug)]
pub enum Spawned {
    /// Our child on this machine (leader of its own process group).
    Local(tokio::process::Child),
    /// A daemon on an SSH host (leader of its own session).
    Remote(ssh::RemoteProc),
}

impl Hosts {
    pub fn nodes(&self) -> &[NodeHost] {
        match self {
            Hosts::Local(h) => &h.nodes,
            Hosts::Loopback(h) => &h.nodes,
            Hosts::Ssh(h) => &h.nodes,
            #[cfg(test)]
            Hosts::Recording(h) => h.nodes(),
        }
    }

    pub fn node(&self, name: &str) -> Option<&NodeHost> {
        self.nodes().iter().find(|n| n.node == name)
    }

    /// Whether network faults (partitions, loss) can be applied on these hosts.
    pub fn network_faults(&self) -> Result<(), String> {
        match self {
            Hosts::Local(_) | Hosts::Ssh(_) => Ok(()),
            #[cfg(test)]
            Hosts::Recording(_) => Ok(()),
            Hosts::Loopback(_) => Err(
                "nodes run on loopback addresses without network namespaces (not root, or namespaces unavailable), so partitions and packet loss cannot be applied"
                    .into(),
            ),
        }
    }

    /// Start a node's process inside its host, as the leader of its own process group.
    pub async fn spawn(&self, node: &NodeHost, spec: &SpawnSpec) -> Result<Spawned> {
        match self {
            Hosts::Ssh(h) => Ok(Spawned::Remote(h.conn(&node.node)?.spawn(spec).await?)),
            _ => Ok(Spawned::Local(local::spawn_in(
                node.netns.as_deref(),
                spec,
            )?)),
        }
    }

    /// Run a command inside a node's host and wait for it, feeding `stdin`.
    pub async fn exec(&self, node: &NodeHost, argv: &[&str], stdin: &[u8]) -> Result<Output> {
        match self {
            Hosts::Ssh(h) => {
                h.conn(&node.node)?
                    .run(&crate::shell::join(argv)?, stdin)
                    .await
            }
            #[cfg(test)]
            Hosts::Recording(h) => h.exec(node, argv, stdin).await,
            _ => local::exec_in(node.netns.as_deref(), argv, stdin).await,
        }
    }

    /// The SSH hosts, when nodes live on other machines (their files are not ours).
    /// The recording fake, in unit tests.
    #[cfg(test)]
    pub fn recording(&self) -> Option<&recording::RecordingHosts> {
        match self {
            Hosts::Recording(h) => Some(h),
            _ => None,
        }
    }

    pub fn remote(&self) -> Option<&ssh::SshHosts> {
        match self {
            Hosts::Ssh(h) => Some(h),
            _ => None,
        }
    }

    /// A short description for the run log.
    pub fn describe(&self) -> String {
        match self {
            Hosts::Local(h) => format!(
                "local network namespaces on bridge {} ({}/{})",
                h.bridge, h.gateway, h.prefix_len
            ),
            Hosts::Loopback(_) => "loopback addresses (no namespaces)".into(),
            Hosts::Ssh(h) => format!("{} SSH hosts", h.nodes.len()),
            #[cfg(test)]
            Hosts::Recording(_) => "recording fake hosts on loopback addresses".into(),
        }
    }
}
