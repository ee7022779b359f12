//! Twin hosts: a second place for node nX, where a process with nX's identity runs beside
//! the original (issue 20, "Twins"), indistinguishable to its peers.
//!
//! A twin's network namespace is joined to the run's bridge by its own veth, with a spare
//! address of the run's /27 slice (its *bridge address*) on `eth0` and nX's own address as
//! a /32 on `lo`: the twin process binds nX's address exactly as nX does, and the route to
//! the slice carries `src nX`, so its packets leave with nX's address. ARP is kept honest
//! in the twin's namespace (`arp_ignore=1`: it never answers for nX's address, so the
//! bridge and the controller keep reaching the original; `arp_announce=2`: its requests
//! name its bridge address, so no neighbour cache learns its MAC for nX's address).
//!
//! Which copy a peer hears is set in the peer's namespace, no NAT involved (the nemesis,
//! `nemesis::twin`, decides who hears whom; several nodes may have twins at once):
//! - to reach nX's twin: a host route `nX/32 via <twin's bridge address> src <own address>`
//!   (packets for nX go to the twin's MAC, which delivers them locally; `src`, because in a
//!   twin's namespace the `eth0` address is not the one it speaks with);
//! - to reach the original: no such route;
//! - in an nft table faultline owns ([`TWIN_TABLE`]), a drop of the frames whose Ethernet
//!   source is a copy it must not hear: the other copy of each twinned node, and in a Twins
//!   scenario's round every copy outside its group.
//!
//! Switching a peer replaces both; its TCP connections to nX then meet a stack that does
//! not know them (RST) or silence, and it reconnects to whichever it now hears. A twin
//! and its original never hear each other. Everything here lives in namespaces the run
//! owns: the twin's namespace and veth are in the cleanup registry, and the routes and
//! tables in the peers' namespaces go with them.

use super::cleanup::{netns_exists, run_ip, Registry};
use super::local::{LocalHosts, SLICE_PREFIX};
use super::NodeHost;
use anyhow::{anyhow, bail, Context, Result};
use std::net::Ipv4Addr;

/// The nftables table faultline owns in a namespace for the twin view: the MACs of the
/// copies it does not hear.
pub const TWIN_TABLE: &str = "faultline_twin";

/// Where node `node`'s twin lives: nX's name and address in a namespace of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwinPlace {
    /// The twin as a host: `node` and `ip` are nX's, `netns` the twin's namespace.
    pub host: NodeHost,
    /// The twin's own address on the bridge, its peers' next hop to it.
    pub bridge_ip: Ipv4Addr,
    /// The veth end in the root namespace.
    pub veth: String,
    pub prefix_len: u8,
    /// The run's slice (network address), whose route in the twin carries `src nX`.
    pub slice: Ipv4Addr,
    pub bridge: String,
}

/// The name of node `node`'s twin namespace in run `run_id` (under the run's `fl-<id>-`
/// prefix, so the sweep and the leftover checks see it).
pub fn netns_name(run_id: &str, node: &str) -> String {
    format!("fl-{run_id}-{node}-twin")
}

impl LocalHosts {
    /// Where `node`'s twin goes. Its bridge address is fixed by the node's position,
    /// beyond the nodes' own: node i of N gets slice + 2 + N + i, so a run with twins has
    /// at most 14 nodes (checked at plan time).
    pub fn twin_place(&self, run_id: &str, node: &str) -> Result<TwinPlace> {
        let i = self
            .nodes
            .iter()
            .position(|n| n.node == node)
            .ok_or_else(|| anyhow!("no host for node {node}"))?;
        let slice = Ipv4Addr::from(u32::from(self.gateway) - 1);
        let offset = 2 + self.nodes.len() + i;
        if offset >= (1 << (32 - SLICE_PREFIX)) - 1 {
            bail!(
                "node {node}'s twin needs a spare address of the run's /{SLICE_PREFIX} slice, and {} nodes leave none (at most 14 nodes with twins)",
                self.nodes.len()
            );
        }
        Ok(TwinPlace {
            host: NodeHost {
                node: node.to_string(),
                ip: self.nodes[i].ip,
                netns: Some(netns_name(run_id, node)),
            },
            bridge_ip: Ipv4Addr::from(u32::from(slice) + offset as u32),
            veth: format!("fl{run_id}{node}t"),
            prefix_len: self.prefix_len,
            slice,
            bridge: self.bridge.clone(),
        })
    }

    /// Create `node`'s twin namespace (once per run: a twin stopped and started again
    /// reuses it). Every resource is recorded in the registry before it is created.
    pub fn add_twin(&self, reg: &Registry, node: &str) -> Result<TwinPlace> {
        let place = self.twin_place(&reg.run_id(), node)?;
        let ns = place.host.netns.clone().unwrap_or_default();
        if netns_exists(&ns) {
            return Ok(place);
        }
        reg.add_netns(&ns)?;
        run_ip(&["netns", "add", &ns])?;
        for argv in setup_commands(&place) {
            let args: Vec<&str> = argv.iter().map(String::as_str).collect();
            if args.first() == Some(&"link") && args.get(2) == Some(&place.veth.as_str()) {
                reg.add_link(&place.veth)?;
            }
            run_ip(&args).with_context(|| format!("setting up the twin of {node}"))?;
        }
        Ok(place)
    }
}

/// The `ip` commands (after `ip netns add`) that set up a twin's namespace, in order.
pub fn setup_commands(p: &TwinPlace) -> Vec<Vec<String>> {
    let ns = p.host.netns.clone().unwrap_or_default();
    let node_ip = p.host.ip.to_string();
    let v = |s: &[&str]| s.iter().map(|w| w.to_string()).collect::<Vec<String>>();
    vec![
        // Before any address exists, so no ARP ever goes out under the old rules.
        v(&[
            "netns",
            "exec",
            &ns,
            "sysctl",
            "-q",
            "-w",
            "net.ipv4.conf.all.arp_ignore=1",
            "net.ipv4.conf.all.arp_announce=2",
        ]),
        v(&[
            "link", "add", &p.veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ]),
        v(&["link", "set", &p.veth, "master", &p.bridge, "up"]),
        v(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{}/{}", p.bridge_ip, p.prefix_len),
            "dev",
            "eth0",
        ]),
        v(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{node_ip}/32"),
            "dev",
            "lo",
        ]),
        v(&["-n", &ns, "link", "set", "lo", "up"]),
        v(&["-n", &ns, "link", "set", "eth0", "up"]),
        // The twin speaks as nX: what it sends on the bridge carries nX's address.
        v(&[
            "-n",
            &ns,
            "route",
            "replace",
            &format!("{}/{}", p.slice, p.prefix_len),
            "dev",
            "eth0",
            "src",
            &node_ip,
        ]),
    ]
}

/// The MAC address of `eth0` in namespace `netns`.
pub fn mac_of(netns: &str) -> Result<String> {
    let out = std::process::Command::new("ip")
        .args(["-n", netns, "-j", "link", "show", "dev", "eth0"])
        .output()
        .context("cannot run `ip` (iproute2)")?;
    if !out.status.success() {
        bail!(
            "cannot read eth0's address in {netns}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    parse_mac(&String::from_utf8_lossy(&out.stdout))
        .ok_or_else(|| anyhow!("no MAC address for eth0 in {netns}"))
}

/// The `address` of the first link in `ip -j link show` output, if it is a MAC.
pub fn parse_mac(json: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let mac = v.get(0)?.get("address")?.as_str()?;
    let ok = mac.len() == 17
        && mac
            .split(':')
            .all(|b| b.len() == 2 && b.chars().all(|c| c.is_ascii_hexdigit()));
    ok.then(|| mac.to_ascii_lowercase())
}

/// An nft script that (re)creates our twin table so that the namespace drops every frame
/// from `macs` (the copies it must not hear); none leaves the table out. Loaded atomically
/// with `nft -f -`.
pub fn drop_macs_script(macs: &[&str]) -> String {
    let mut s = format!("table inet {TWIN_TABLE}\ndelete table inet {TWIN_TABLE}\n");
    if !macs.is_empty() {
        s.push_str(&format!(
            "table inet {TWIN_TABLE} {{\n  chain input {{ type filter hook input priority -200; policy accept; ether saddr {{ {} }} drop; }}\n}}\n",
            macs.join(", ")
        ));
    }
    s
}

/// The `ip` command a copy speaking as `src` runs to reach node `node_ip` through its
/// twin (`Some(twin's bridge address)`) or directly (`None`: the host route is removed;
/// none is no error). `src` matters in a twin's namespace, whose `eth0` address is not
/// the one it speaks with.
pub fn route_command(node_ip: Ipv4Addr, via_twin: Option<Ipv4Addr>, src: Ipv4Addr) -> Vec<String> {
    let dst = format!("{node_ip}/32");
    match via_twin {
        Some(via) => [
            "ip",
            "route",
            "replace",
            &dst,
            "via",
            &via.to_string(),
            "dev",
            "eth0",
            "src",
            &src.to_string(),
        ]
        .map(String::from)
        .to_vec(),
        None => ["ip", "route", "flush", "exact", &dst]
            .map(String::from)
            .to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place() -> TwinPlace {
        TwinPlace {
            host: NodeHost {
                node: "n1".into(),
                ip: Ipv4Addr::new(10, 213, 0, 34),
                netns: Some(netns_name("abc123", "n1")),
            },
            bridge_ip: Ipv4Addr::new(10, 213, 0, 37),
            veth: "flabc123n1t".into(),
            prefix_len: 27,
            slice: Ipv4Addr::new(10, 213, 0, 32),
            bridge: "flbrabc123".into(),
        }
    }

    #[test]
    fn the_twin_binds_the_node_address_on_lo_and_speaks_with_it() {
        let cmds: Vec<String> = setup_commands(&place())
            .iter()
            .map(|c| c.join(" "))
            .collect();
        assert_eq!(
            cmds,
            [
                "netns exec fl-abc123-n1-twin sysctl -q -w net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2",
                "link add flabc123n1t type veth peer name eth0 netns fl-abc123-n1-twin",
                "link set flabc123n1t master flbrabc123 up",
                "-n fl-abc123-n1-twin addr add 10.213.0.37/27 dev eth0",
                "-n fl-abc123-n1-twin addr add 10.213.0.34/32 dev lo",
                "-n fl-abc123-n1-twin link set lo up",
                "-n fl-abc123-n1-twin link set eth0 up",
                "-n fl-abc123-n1-twin route replace 10.213.0.32/27 dev eth0 src 10.213.0.34",
            ]
        );
        // The veth fits the kernel's 15-byte interface names, beside the node's own.
        assert!(place().veth.len() <= 15);
        assert!(place().host.netns.unwrap().starts_with("fl-abc123-"));
    }

    #[test]
    fn a_peer_switches_by_route_and_by_mac() {
        let ip = Ipv4Addr::new(10, 213, 0, 34);
        let me = Ipv4Addr::new(10, 213, 0, 35);
        assert_eq!(
            route_command(ip, Some(Ipv4Addr::new(10, 213, 0, 37)), me).join(" "),
            "ip route replace 10.213.0.34/32 via 10.213.0.37 dev eth0 src 10.213.0.35"
        );
        assert_eq!(
            route_command(ip, None, me).join(" "),
            "ip route flush exact 10.213.0.34/32"
        );
        let s = drop_macs_script(&["02:ab:cd:ef:00:01", "02:ab:cd:ef:00:02"]);
        assert!(s.starts_with("table inet faultline_twin\ndelete table inet faultline_twin\n"));
        assert!(s.contains("type filter hook input priority -200; policy accept; ether saddr { 02:ab:cd:ef:00:01, 02:ab:cd:ef:00:02 } drop;"));
        assert!(!s.contains("flush ruleset"));
        assert_eq!(
            drop_macs_script(&[]),
            "table inet faultline_twin\ndelete table inet faultline_twin\n",
            "nothing to drop: no table"
        );
    }

    #[test]
    fn macs_are_read_from_ip_json_and_checked() {
        let json = r#"[{"ifindex":2,"ifname":"eth0","address":"AE:0b:7c:11:22:33","broadcast":"ff:ff:ff:ff:ff:ff"}]"#;
        assert_eq!(parse_mac(json).as_deref(), Some("ae:0b:7c:11:22:33"));
        assert_eq!(parse_mac(r#"[{"address":"ae:0b; drop"}]"#), None);
        assert_eq!(parse_mac("[]"), None);
    }

    /// Root only: the commands really set up a namespace as described (no bridge: a
    /// bridge of our own stands in for the run's).
    #[test]
    fn the_setup_commands_build_the_namespace() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root for network namespaces");
            return;
        }
        let id = format!("u{:05x}", rand::random::<u32>() & 0xf_ffff);
        let mut p = place();
        p.host.netns = Some(netns_name(&id, "n1"));
        p.veth = format!("fl{id}n1t");
        p.bridge = format!("flbr{id}");
        let ns = p.host.netns.clone().unwrap();
        let cleanup = || {
            let _ = run_ip(&["link", "del", &p.veth]);
            let _ = run_ip(&["link", "del", &p.bridge]);
            let _ = run_ip(&["netns", "del", &ns]);
        };
        let r = (|| -> Result<()> {
            run_ip(&["link", "add", &p.bridge, "type", "bridge"])?;
            run_ip(&["netns", "add", &ns])?;
            for c in setup_commands(&p) {
                run_ip(&c.iter().map(String::as_str).collect::<Vec<_>>())?;
            }
            Ok(())
        })();
        let routes = std::process::Command::new("ip")
            .args(["-n", &ns, "route", "show"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
        let mac = mac_of(&ns);
        let sysctl = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns,
                "sysctl",
                "-n",
                "net.ipv4.conf.all.arp_ignore",
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        cleanup();
        r.unwrap();
        assert!(
            routes
                .unwrap()
                .contains("10.213.0.32/27 dev eth0 scope link src 10.213.0.34"),
            "the slice route speaks as the node"
        );
        assert_eq!(mac.unwrap().len(), 17);
        assert_eq!(sysctl.unwrap(), "1");
        assert!(!netns_exists(&ns));
    }
}
