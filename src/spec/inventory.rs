//! The SSH inventory (`--hosts ssh --inventory nodes.yaml`): which machines the nodes run
//! on and how to reach them.
//!
//! ```yaml
//! defaults:                 # optional; every field may also be set per node
//!   user: root
//!   key: ~/.ssh/id_ed25519  # relative paths are relative to this file
//!   sudo: false             # prefix privileged commands with `sudo -n`
//!   dir: /tmp/faultline     # where runs keep binaries, data and logs on the node
//!   host_keys: strict       # strict | accept-new | off
//!   known_hosts: ~/.ssh/known_hosts
//!   clock: libfaketime      # or `system`: step the VM's own clock for clock faults
//! nodes:
//!   - name: n1
//!     address: 192.168.56.11    # the address peers and clients use
//!     ssh_host: 127.0.0.1       # optional: where SSH is reached, if elsewhere
//!     ssh_port: 2222
//! ```
//!
//! Validated like every other spec: unknown keys are errors, and each broken rule names
//! the file and the field.

use super::{load_yaml, Violations};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// How unknown host keys are treated (OpenSSH's `StrictHostKeyChecking`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeys {
    /// Only hosts whose key is already in known_hosts (the default: a changed key is an
    /// attack or a rebuilt VM, and either way the user should know).
    #[default]
    Strict,
    /// Record the key of a host seen for the first time (fresh VMs), refuse changed keys.
    AcceptNew,
    /// Accept any key (throwaway VMs whose keys change at every `vagrant up`).
    Off,
}

impl HostKeys {
    pub fn ssh_option(self) -> &'static str {
        match self {
            HostKeys::Strict => "yes",
            HostKeys::AcceptNew => "accept-new",
            HostKeys::Off => "no",
        }
    }
}

/// How clock faults reach a host's nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClockMode {
    /// Preload libfaketime into the node and rewrite its offset file: only the node's view
    /// of time moves (only for programs that read time through libc).
    #[default]
    Libfaketime,
    /// Step the host's real clock (`date -s`) and step it back at heal and teardown: what
    /// reaches every program, Go ones (etcd) included. Only for hosts that are machines of
    /// their own (VMs); refused for a host that shares this machine's clock.
    System,
}

/// One entry of the inventory: a node under `nodes`, or the `defaults` every node starts
/// from (which may not name a node, an address or an SSH host).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryEntry {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub address: Option<Ipv4Addr>,
    #[serde(default)]
    pub ssh_host: Option<String>,
    #[serde(default)]
    pub ssh_port: Option<u16>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub sudo: Option<bool>,
    #[serde(default)]
    pub dir: Option<String>,
    #[serde(default)]
    pub host_keys: Option<HostKeys>,
    #[serde(default)]
    pub known_hosts: Option<String>,
    #[serde(default)]
    pub clock: Option<ClockMode>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventorySpec {
    #[serde(default)]
    pub defaults: InventoryEntry,
    pub nodes: Vec<InventoryEntry>,
}

/// One node with every default applied and paths made absolute: what the SSH backend uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshNode {
    pub name: String,
    pub address: Ipv4Addr,
    pub ssh_host: String,
    pub ssh_port: u16,
    pub user: String,
    pub key: Option<PathBuf>,
    pub sudo: bool,
    pub dir: String,
    pub host_keys: HostKeys,
    pub known_hosts: Option<PathBuf>,
    #[serde(default)]
    pub clock: ClockMode,
}

impl SshNode {
    /// `user@host:port`, for messages.
    pub fn endpoint(&self) -> String {
        format!("{}@{}:{}", self.user, self.ssh_host, self.ssh_port)
    }
}

/// Where runs keep their files on a node unless the inventory says otherwise.
pub const DEFAULT_REMOTE_DIR: &str = "/tmp/faultline";

/// Load, validate and resolve an inventory file.
pub fn load(path: &Path) -> Result<Vec<SshNode>> {
    let spec: InventorySpec = load_yaml(path)?;
    resolve(path, &spec)
}

fn expand(base: &Path, p: &str) -> PathBuf {
    let p = match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    };
    if p.is_absolute() {
        p
    } else {
        base.join(p)
    }
}

pub fn resolve(path: &Path, spec: &InventorySpec) -> Result<Vec<SshNode>> {
    let base = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let d = &spec.defaults;
    let mut v = Violations::new(path);
    v.check(
        !spec.nodes.is_empty(),
        "nodes",
        "must list at least one node",
    );
    for (field, set) in [
        ("name", d.name.is_some()),
        ("address", d.address.is_some()),
        ("ssh_host", d.ssh_host.is_some()),
    ] {
        v.check(
            !set,
            format!("defaults.{field}"),
            "is set per node, not in defaults",
        );
    }
    let mut names = BTreeSet::new();
    let mut addresses = BTreeSet::new();
    let mut out = Vec::new();
    for (i, n) in spec.nodes.iter().enumerate() {
        let at = |f: &str| format!("nodes[{i}].{f}");
        let name = n.name.clone().unwrap_or_default();
        v.check(
            !name.is_empty()
                && name.len() <= 8
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
            at("name"),
            "must be 1 to 8 lowercase letters or digits (it names files and chains)",
        );
        v.check(
            names.insert(name.clone()),
            at("name"),
            format!("{name} appears twice"),
        );
        let Some(address) = n.address else {
            v.check(
                false,
                at("address"),
                "is required (the address peers and clients use)",
            );
            continue;
        };
        v.check(
            addresses.insert(address),
            at("address"),
            format!("{address} is used by two nodes"),
        );
        let dir = n
            .dir
            .clone()
            .or(d.dir.clone())
            .unwrap_or_else(|| DEFAULT_REMOTE_DIR.into());
        v.check(
            dir.starts_with('/') && !dir.contains(char::is_whitespace) && dir != "/",
            at("dir"),
            "must be an absolute path without spaces, not /",
        );
        let key = n.key.as_ref().or(d.key.as_ref()).map(|k| expand(&base, k));
        if let Some(k) = &key {
            v.check(
                k.is_file(),
                at("key"),
                format!("no key file {}", k.display()),
            );
        }
        let user = n
            .user
            .clone()
            .or(d.user.clone())
            .unwrap_or_else(|| "root".into());
        v.check(
            !user.is_empty() && !user.contains(['@', ' ', '\'']),
            at("user"),
            "must be a plain user name",
        );
        let ssh_host = n.ssh_host.clone().unwrap_or_else(|| address.to_string());
        v.check(
            !ssh_host.is_empty() && !ssh_host.contains([' ', '@', '\'']),
            at("ssh_host"),
            "must be a host name or address",
        );
        out.push(SshNode {
            name,
            address,
            ssh_host,
            ssh_port: n.ssh_port.or(d.ssh_port).unwrap_or(22),
            user,
            key,
            sudo: n.sudo.or(d.sudo).unwrap_or(false),
            dir,
            host_keys: n.host_keys.or(d.host_keys).unwrap_or_default(),
            known_hosts: n
                .known_hosts
                .as_ref()
                .or(d.known_hosts.as_ref())
                .map(|k| expand(&base, k)),
            clock: n.clock.or(d.clock).unwrap_or_default(),
        });
    }
    v.into_result()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse_yaml;

    fn parse(text: &str) -> Result<Vec<SshNode>> {
        let p = Path::new("/inv/nodes.yaml");
        let spec: InventorySpec = parse_yaml(p, text)?;
        resolve(p, &spec)
    }

    #[test]
    fn defaults_apply_and_nodes_override_them() {
        let nodes = parse(
            "defaults: {user: vagrant, sudo: true, host_keys: accept-new}\nnodes:\n  - {name: n1, address: 10.0.0.1}\n  - {name: n2, address: 10.0.0.2, user: root, sudo: false, ssh_host: 127.0.0.1, ssh_port: 2222}\n",
        )
        .unwrap();
        assert_eq!(nodes[0].user, "vagrant");
        assert!(nodes[0].sudo);
        assert_eq!(nodes[0].ssh_host, "10.0.0.1");
        assert_eq!(nodes[0].ssh_port, 22);
        assert_eq!(nodes[0].dir, DEFAULT_REMOTE_DIR);
        assert_eq!(nodes[0].host_keys, HostKeys::AcceptNew);
        assert_eq!(nodes[1].endpoint(), "root@127.0.0.1:2222");
        assert!(!nodes[1].sudo);
    }

    #[test]
    fn errors_name_file_field_and_rule() {
        let e = parse("nodes:\n  - {name: n1, address: 10.0.0.1, dir: rel}\n  - {name: n1, address: 10.0.0.1}\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/inv/nodes.yaml: nodes[0].dir: must be an absolute path"),
            "{e}"
        );
        assert!(e.contains("nodes[1].name: n1 appears twice"), "{e}");
        assert!(
            e.contains("nodes[1].address: 10.0.0.1 is used by two nodes"),
            "{e}"
        );
        let e = parse("nodes:\n  - {name: n1, address: 10.0.0.1, passwd: x}\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/inv/nodes.yaml:2:") && e.contains("unknown field `passwd`"),
            "{e}"
        );
        let e = parse("nodes:\n  - {name: n1, address: 10.0.0.1, key: nokey}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("nodes[0].key: no key file /inv/nokey"), "{e}");
        let e = parse("defaults: {address: 10.0.0.9}\nnodes:\n  - {name: n1}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("defaults.address: is set per node"), "{e}");
        assert!(e.contains("nodes[0].address: is required"), "{e}");
    }
}
