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
//! Read like every other spec: serde checks the shape (an unknown field is an error that
//! lists the valid ones, a wrong type or a missing `name` or `address` is named at its
//! line), then [`resolve`] checks the rules across nodes and on disk, each reported as
//! `file:line:column: field: rule`, all before anything starts.

use super::{load_yaml, Violations};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
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

/// What `defaults` sets for every node; each node may set the same fields for itself.
/// A field missing here and at the node takes the built-in default.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    pub ssh_port: Option<u16>,
    pub user: Option<String>,
    pub key: Option<String>,
    pub sudo: Option<bool>,
    pub dir: Option<String>,
    pub host_keys: Option<HostKeys>,
    pub known_hosts: Option<String>,
    pub clock: Option<ClockMode>,
}

/// One node under `nodes`: its name and address (required: serde reports a missing one
/// at the node's line), where SSH reaches it if elsewhere, and any of the [`Defaults`]
/// fields for this node alone. Name, address and SSH host are per node, so `defaults`
/// has no such fields and naming one there is an unknown field.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeEntry {
    pub name: String,
    pub address: Ipv4Addr,
    pub ssh_host: Option<String>,
    pub ssh_port: Option<u16>,
    pub user: Option<String>,
    pub key: Option<String>,
    pub sudo: Option<bool>,
    pub dir: Option<String>,
    pub host_keys: Option<HostKeys>,
    pub known_hosts: Option<String>,
    pub clock: Option<ClockMode>,
}

/// The inventory file. Its shape (fields, types, what is required) is serde's to check,
/// with file, line and column and, for an unknown field, the valid ones; the rules that
/// span nodes or touch the disk are [`resolve`]'s, located in the file the same way.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventorySpec {
    #[serde(default)]
    pub defaults: Defaults,
    pub nodes: Vec<NodeEntry>,
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

/// Apply the defaults, make paths absolute and check the rules serde cannot: names and
/// addresses unique, names usable in file names, paths and user names well formed, key
/// files present. Every broken rule is reported at once, each at its field's line.
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
    let mut names = BTreeMap::new();
    let mut addresses = BTreeMap::new();
    let mut out = Vec::new();
    for (i, n) in spec.nodes.iter().enumerate() {
        let at = |f: &str| format!("nodes[{i}].{f}");
        let name = n.name.clone();
        v.check(
            !name.is_empty()
                && name.len() <= 8
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
            at("name"),
            "must be 1 to 8 lowercase letters or digits (it names files and chains)",
        );
        if let Some(first) = names.insert(name.clone(), i) {
            v.check(
                false,
                at("name"),
                format!(
                    "{} appears twice (also nodes[{first}]; rule: every node has its own name)",
                    super::short_echo(&name)
                ),
            );
        }
        let address = n.address;
        if let Some(first) = addresses.insert(address, i) {
            v.check(
                false,
                at("address"),
                format!("{address} is used by two nodes (also nodes[{first}])"),
            );
        }
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
        assert!(e.contains("nodes[1].name: \"n1\" appears twice"), "{e}");
        assert!(
            e.contains("nodes[1].address: 10.0.0.1 is used by two nodes"),
            "{e}"
        );
        let e = parse("nodes:\n  - {name: n1, address: 10.0.0.1, key: nokey}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("nodes[0].key: no key file /inv/nokey"), "{e}");
    }

    #[test]
    fn an_unknown_field_is_named_at_its_line_with_the_valid_ones() {
        let e = parse("nodes:\n  - {name: n1, address: 10.0.0.1, passwd: x}\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/inv/nodes.yaml:2:35: nodes[0]: unknown field `passwd`, expected one of `name`, `address`, `ssh_host`, `ssh_port`, `user`, `key`, `sudo`, `dir`, `host_keys`, `known_hosts`, `clock`"),
            "{e}"
        );
        // Name, address and SSH host are per node: in defaults they are unknown fields.
        let e = parse("defaults: {user: root, address: 10.0.0.9}\nnodes:\n  - {name: n1, address: 10.0.0.1}\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/inv/nodes.yaml:1:24: defaults: unknown field `address`, expected one of `ssh_port`, `user`, `key`, `sudo`, `dir`, `host_keys`, `known_hosts`, `clock`"),
            "{e}"
        );
        let e = parse("nodes: []\nhosts: []\n").unwrap_err().to_string();
        assert!(
            e.contains(":2:1: unknown field `hosts`, expected `defaults` or `nodes`"),
            "{e}"
        );
    }

    #[test]
    fn a_wrong_type_is_named_at_its_line() {
        for (text, want) in [
            (
                "nodes:\n  - {name: n1, address: 10.0.0.1, ssh_port: twenty}\n",
                "/inv/nodes.yaml:2:45: nodes[0].ssh_port: invalid type: a string, expected u16",
            ),
            (
                "nodes:\n  - name: n1\n    address: 10.0.0.300\n",
                "/inv/nodes.yaml:3:14: nodes[0].address: invalid IPv4 address syntax",
            ),
            (
                "defaults:\n  sudo: maybe\nnodes: [{name: n1, address: 10.0.0.1}]\n",
                "/inv/nodes.yaml:2:9: defaults.sudo: invalid type: a string, expected a boolean",
            ),
            (
                "defaults: {host_keys: ask}\nnodes: [{name: n1, address: 10.0.0.1}]\n",
                "/inv/nodes.yaml:1:23: defaults.host_keys: unknown variant `ask`, expected one of `strict`, `accept-new`, `off`",
            ),
            (
                "nodes: {name: n1, address: 10.0.0.1}\n",
                "/inv/nodes.yaml:1:8: nodes: invalid type: map, expected a sequence",
            ),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.starts_with(want), "{text}: {e}");
        }
    }

    #[test]
    fn a_missing_required_field_is_named_at_its_node() {
        let e = parse("nodes:\n  - {name: n1, address: 10.0.0.1}\n  - {name: n2}\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/inv/nodes.yaml:3:5: nodes[1]: missing field `address`"),
            "{e}"
        );
        let e = parse("nodes:\n  - address: 10.0.0.1\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/inv/nodes.yaml:2:5: nodes[0]: missing field `name`"),
            "{e}"
        );
        let e = parse("defaults: {user: root}\n").unwrap_err().to_string();
        assert!(e.contains("missing field `nodes`"), "{e}");
        let e = parse("nodes: []\n").unwrap_err().to_string();
        assert!(e.contains("nodes: must list at least one node"), "{e}");
    }

    #[test]
    fn rules_across_nodes_are_reported_at_their_line_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nodes.yaml");
        std::fs::write(
            &file,
            "defaults:\n  user: root\nnodes:\n  - name: n1\n    address: 10.0.0.1\n  - name: n2\n    address: 10.0.0.2\n  - name: n1\n    address: 10.0.0.2\n  - {name: Node_4, address: 10.0.0.4}\n",
        )
        .unwrap();
        let e = load(&file).unwrap_err().to_string();
        let f = file.display();
        // Every broken rule at once, each at its own line and column.
        assert!(
            e.contains(&format!("{f}:8:11: nodes[2].name: \"n1\" appears twice (also nodes[0]; rule: every node has its own name)")),
            "{e}"
        );
        assert!(
            e.contains(&format!(
                "{f}:9:14: nodes[2].address: 10.0.0.2 is used by two nodes (also nodes[1])"
            )),
            "{e}"
        );
        assert!(
            e.contains(&format!(
                "{f}:10:12: nodes[3].name: must be 1 to 8 lowercase letters or digits"
            )),
            "{e}"
        );
        assert_eq!(e.lines().count(), 3, "{e}");
    }

    #[test]
    fn alias_bombs_are_refused_before_serde_expands_them() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nodes.yaml");
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let p = i - 1;
            text.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
        }
        std::fs::write(&file, text).unwrap();
        let e = load(&file).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}:4:", file.display())), "{e}");
        assert!(e.contains("aliases"), "{e}");
    }
}
