//! `faultline hosts vagrant`: turn `vagrant ssh-config` output into an SSH inventory.
//!
//! Vagrant reports how to reach each VM over SSH (its management address or a forwarded
//! port on 127.0.0.1, the user and the private key); the address the nodes use among
//! themselves is the private network of our Vagrantfile (n1 = 192.168.56.11 … n5 = .15),
//! which `--address NODE=IP` overrides for other Vagrantfiles.

use anyhow::{anyhow, bail, Context, Result};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// One `Host` block of `vagrant ssh-config`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshConfigHost {
    pub name: String,
    pub host_name: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity: Option<String>,
}

/// Parse ssh_config-style text (`Host` blocks of `Key value` lines).
pub fn parse_ssh_config(text: &str) -> Result<Vec<SshConfigHost>> {
    let mut hosts: Vec<SshConfigHost> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once(char::is_whitespace)
            .map(|(k, v)| (k, v.trim().trim_matches('"')))
            .ok_or_else(|| anyhow!("ssh-config line {}: {line:?} has no value", i + 1))?;
        if key.eq_ignore_ascii_case("Host") {
            hosts.push(SshConfigHost {
                name: value.to_string(),
                ..SshConfigHost::default()
            });
            continue;
        }
        let Some(h) = hosts.last_mut() else {
            bail!("ssh-config line {}: {key} before any Host line", i + 1);
        };
        match key.to_ascii_lowercase().as_str() {
            "hostname" => h.host_name = Some(value.to_string()),
            "user" => h.user = Some(value.to_string()),
            "port" => {
                h.port = Some(
                    value
                        .parse()
                        .map_err(|_| anyhow!("ssh-config line {}: bad port {value:?}", i + 1))?,
                )
            }
            "identityfile" => h.identity = Some(value.to_string()),
            _ => {}
        }
    }
    Ok(hosts)
}

/// The private address our Vagrantfile gives node `n<i>`.
pub fn default_address(node: &str) -> Option<Ipv4Addr> {
    let i: u8 = node.strip_prefix('n')?.parse().ok()?;
    (1..=200)
        .contains(&i)
        .then(|| Ipv4Addr::new(192, 168, 56, 10 + i))
}

/// The inventory YAML for these hosts.
pub fn inventory(
    hosts: &[SshConfigHost],
    addresses: &BTreeMap<String, Ipv4Addr>,
) -> Result<String> {
    if hosts.is_empty() {
        bail!("vagrant ssh-config listed no hosts (are the VMs up? `vagrant up`)");
    }
    let mut out = String::from(
        "# Written by `faultline hosts vagrant`. Fresh VMs have unknown host keys: they are\n# accepted on first contact and recorded in known_hosts next to this file; a changed key\n# is refused after that.\ndefaults:\n  sudo: true\n  host_keys: accept-new\n  known_hosts: known_hosts\nnodes:\n",
    );
    for h in hosts {
        let address = addresses
            .get(&h.name)
            .copied()
            .or_else(|| default_address(&h.name))
            .ok_or_else(|| {
                anyhow!(
                    "no private address known for VM {}: pass --address {}=IP",
                    h.name,
                    h.name
                )
            })?;
        out.push_str(&format!("  - name: {}\n    address: {address}\n", h.name));
        // JSON strings are YAML strings: paths with spaces or colons survive.
        let q = |v: &str| serde_json::Value::from(v).to_string();
        if let Some(hn) = &h.host_name {
            out.push_str(&format!("    ssh_host: {}\n", q(hn)));
        }
        if let Some(p) = h.port {
            out.push_str(&format!("    ssh_port: {p}\n"));
        }
        if let Some(u) = &h.user {
            out.push_str(&format!("    user: {}\n", q(u)));
        }
        if let Some(k) = &h.identity {
            out.push_str(&format!("    key: {}\n", q(k)));
        }
    }
    Ok(out)
}

/// `--address NODE=IP` pairs.
pub fn parse_addresses(pairs: &[String]) -> Result<BTreeMap<String, Ipv4Addr>> {
    pairs
        .iter()
        .map(|p| {
            let (n, a) = p
                .split_once('=')
                .ok_or_else(|| anyhow!("--address {p:?}: expected NODE=IP"))?;
            let ip = a
                .parse()
                .map_err(|_| anyhow!("--address {p:?}: {a:?} is not an IPv4 address"))?;
            Ok((n.to_string(), ip))
        })
        .collect()
}

/// Run `vagrant ssh-config` in the current directory.
pub fn vagrant_ssh_config() -> Result<String> {
    let out = std::process::Command::new("vagrant")
        .arg("ssh-config")
        .output()
        .context(
            "cannot run `vagrant ssh-config` (is Vagrant installed? or pass --ssh-config FILE)",
        )?;
    if !out.status.success() {
        bail!(
            "`vagrant ssh-config` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::inventory::{resolve, InventorySpec};

    const SAMPLE: &str = "Host n1\n  HostName 127.0.0.1\n  User vagrant\n  Port 2222\n  UserKnownHostsFile /dev/null\n  StrictHostKeyChecking no\n  IdentityFile /home/u/vm/.vagrant/machines/n1/virtualbox/private_key\n  IdentitiesOnly yes\n\nHost n2\n  HostName 192.168.121.40\n  User vagrant\n  Port 22\n  IdentityFile \"/home/u/vm/.vagrant/machines/n2/libvirt/private_key\"\n";

    #[test]
    fn ssh_config_becomes_a_valid_inventory() {
        let hosts = parse_ssh_config(SAMPLE).unwrap();
        assert_eq!(hosts.len(), 2);
        assert_eq!(hosts[0].port, Some(2222));
        assert_eq!(
            hosts[1].identity.as_deref(),
            Some("/home/u/vm/.vagrant/machines/n2/libvirt/private_key")
        );
        let addrs = parse_addresses(&["n2=10.0.0.2".into()]).unwrap();
        let yaml = inventory(&hosts, &addrs).unwrap();
        let spec: InventorySpec =
            crate::spec::parse_yaml(std::path::Path::new("nodes.yaml"), &yaml).unwrap();
        assert_eq!(spec.nodes[0].address, Ipv4Addr::new(192, 168, 56, 11));
        assert_eq!(spec.nodes[1].address, Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(spec.nodes[0].ssh_host.as_deref(), Some("127.0.0.1"));
        // Key files do not exist here, so resolving reports them — by node and field.
        let e = resolve(std::path::Path::new("nodes.yaml"), &spec)
            .unwrap_err()
            .to_string();
        assert!(e.contains("nodes[0].key: no key file"), "{e}");
    }

    #[test]
    fn bad_input_is_named() {
        assert!(parse_ssh_config("  User x\n")
            .unwrap_err()
            .to_string()
            .contains("line 1"));
        assert!(parse_addresses(&["n1".into()]).is_err());
        assert!(inventory(&[], &BTreeMap::new())
            .unwrap_err()
            .to_string()
            .contains("vagrant up"));
        let odd = vec![SshConfigHost {
            name: "db".into(),
            ..SshConfigHost::default()
        }];
        assert!(inventory(&odd, &BTreeMap::new())
            .unwrap_err()
            .to_string()
            .contains("--address db=IP"));
    }
}
