//! Whether a subnet is free for faultline's namespaces on this machine.
//!
//! Local hosts put addresses of the subnet on a bridge in the root namespace, which adds a
//! route for it: if the machine already reaches that range (a LAN, a VPN, a container
//! network, a route in any table), the run would shadow it and its traffic could leave the
//! machine. So a subnet is refused when it overlaps any address or route of this machine
//! other than faultline's own bridges and the default route.

use anyhow::{bail, Context, Result};
use std::net::Ipv4Addr;

/// Interfaces whose names start with this are faultline's own bridges (`flbr<run id>`).
pub const OWN_BRIDGE_PREFIX: &str = "flbr";

/// A range this machine already uses, and what uses it (for the message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InUse {
    pub net: Ipv4Addr,
    pub len: u8,
    /// `route 192.168.1.0/24 dev eth0 (table main)` or `address 10.0.0.5/8 on wg0`.
    pub what: String,
}

/// The first range in `in_use` that overlaps `subnet`.
pub fn overlap(subnet: (Ipv4Addr, u8), in_use: &[InUse]) -> Option<&InUse> {
    let (net, len) = subnet;
    in_use.iter().find(|u| {
        // Two prefixes overlap when they agree on the bits of the shorter one.
        let shorter = len.min(u.len);
        let mask = if shorter == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(shorter))
        };
        u32::from(net) & mask == u32::from(u.net) & mask
    })
}

/// Refuse `subnet` if it overlaps a route or address of this machine (see the module doc).
pub fn check_free(subnet: (Ipv4Addr, u8)) -> Result<()> {
    let in_use = machine_ranges()?;
    if let Some(u) = overlap(subnet, &in_use) {
        bail!(
            "{}/{} overlaps {} of this machine (rule: the subnet must not overlap any address or route of this machine besides faultline's own bridges); choose another private range with --subnet or `subnet:`, e.g. 10.213.0.0/24 or 172.31.213.0/24",
            subnet.0,
            subnet.1,
            u.what
        );
    }
    Ok(())
}

/// Every IPv4 route (all tables) and address of this machine, without the default route
/// and faultline's bridges. `ip` is what local hosts use to build namespaces anyway; without
/// it, the main table from /proc/net/route.
fn machine_ranges() -> Result<Vec<InUse>> {
    let routes = ip_json(&["-4", "route", "show", "table", "all"]);
    let addrs = ip_json(&["-4", "addr", "show"]);
    let mut out = match routes {
        Some(r) => routes_from_json(&r),
        None => {
            let text = std::fs::read_to_string("/proc/net/route").context(
                "cannot read /proc/net/route to check the subnet against this machine's routes",
            )?;
            routes_from_proc(&text)
        }
    };
    if let Some(a) = addrs {
        out.extend(addrs_from_json(&a));
    }
    Ok(out)
}

fn ip_json(args: &[&str]) -> Option<serde_json::Value> {
    let out = std::process::Command::new("ip")
        .arg("-j")
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

fn own(dev: &str) -> bool {
    dev.starts_with(OWN_BRIDGE_PREFIX)
}

/// `10.0.0.0/8`, `10.0.0.5` (a host route) → (network, length).
fn prefix(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (a, l) = s.split_once('/').unwrap_or((s, "32"));
    let addr: Ipv4Addr = a.parse().ok()?;
    let len: u8 = l.parse().ok().filter(|l| *l <= 32)?;
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    };
    Some((Ipv4Addr::from(u32::from(addr) & mask), len))
}

fn routes_from_json(v: &serde_json::Value) -> Vec<InUse> {
    let mut out = Vec::new();
    for r in v.as_array().into_iter().flatten() {
        let dst = r.get("dst").and_then(|d| d.as_str()).unwrap_or("default");
        let dev = r.get("dev").and_then(|d| d.as_str()).unwrap_or("");
        if dst == "default" || own(dev) {
            continue;
        }
        let Some((net, len)) = prefix(dst) else {
            continue;
        };
        if len == 0 {
            continue;
        }
        let table = r.get("table").and_then(|t| t.as_str()).unwrap_or("main");
        out.push(InUse {
            net,
            len,
            what: format!("route {dst} dev {dev} (table {table})"),
        });
    }
    out
}

fn addrs_from_json(v: &serde_json::Value) -> Vec<InUse> {
    let mut out = Vec::new();
    for i in v.as_array().into_iter().flatten() {
        let dev = i.get("ifname").and_then(|d| d.as_str()).unwrap_or("");
        if own(dev) {
            continue;
        }
        let infos = i.get("addr_info").and_then(|a| a.as_array());
        for a in infos.into_iter().flatten() {
            let local = a.get("local").and_then(|l| l.as_str());
            let plen = a.get("prefixlen").and_then(|p| p.as_u64());
            let (Some(local), Some(plen)) = (local, plen) else {
                continue;
            };
            if let Some((net, len)) = prefix(&format!("{local}/{plen}")) {
                out.push(InUse {
                    net,
                    len,
                    what: format!("address {local}/{plen} on {dev}"),
                });
            }
        }
    }
    out
}

/// /proc/net/route: destination and mask are little-endian hex words.
fn routes_from_proc(text: &str) -> Vec<InUse> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 || own(f[0]) {
            continue;
        }
        // The kernel prints the network-order word as a host integer.
        let word = |s: &str| u32::from_str_radix(s, 16).ok().map(u32::from_be);
        let (Some(dst), Some(mask)) = (word(f[1]), word(f[7])) else {
            continue;
        };
        let len = mask.count_ones() as u8;
        if len == 0 {
            continue;
        }
        let net = Ipv4Addr::from(dst & mask);
        out.push(InUse {
            net,
            len,
            what: format!("route {net}/{len} dev {} (table main)", f[0]),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn overlap_is_symmetric_in_prefix_length() {
        let used = |s: &str| {
            let (net, len) = prefix(s).unwrap();
            InUse {
                net,
                len,
                what: s.to_string(),
            }
        };
        let sub = (Ipv4Addr::new(10, 213, 0, 0), 24);
        assert!(overlap(sub, &[used("10.0.0.0/8")]).is_some());
        assert!(overlap(sub, &[used("10.213.0.77")]).is_some());
        assert!(overlap(sub, &[used("10.213.1.0/24")]).is_none());
        assert!(overlap(sub, &[used("192.0.2.0/24")]).is_none());
        assert!(overlap((Ipv4Addr::new(10, 0, 0, 0), 16), &[used("10.0.3.0/24")]).is_some());
    }

    #[test]
    fn reads_routes_of_every_table_but_not_defaults_or_own_bridges() {
        let routes = json!([
            {"dst": "default", "gateway": "192.0.2.1", "dev": "eth0"},
            {"dst": "192.0.2.0/24", "dev": "eth0"},
            {"dst": "10.8.0.0/16", "dev": "tun0", "table": "52"},
            {"dst": "10.213.0.0/27", "dev": "flbr1234"},
            {"type": "local", "dst": "127.0.0.1", "dev": "lo", "table": "local"}
        ]);
        let r = routes_from_json(&routes);
        let nets: Vec<String> = r.iter().map(|u| format!("{}/{}", u.net, u.len)).collect();
        assert_eq!(nets, ["192.0.2.0/24", "10.8.0.0/16", "127.0.0.1/32"]);
        assert_eq!(r[1].what, "route 10.8.0.0/16 dev tun0 (table 52)");
        let addrs = json!([
            {"ifname": "wg0", "addr_info": [{"local": "10.213.0.9", "prefixlen": 24}]},
            {"ifname": "flbr77", "addr_info": [{"local": "10.213.0.1", "prefixlen": 27}]}
        ]);
        let a = addrs_from_json(&addrs);
        assert_eq!(a.len(), 1);
        let sub = (Ipv4Addr::new(10, 213, 0, 0), 24);
        assert_eq!(
            overlap(sub, &a).map(|u| u.what.as_str()),
            Some("address 10.213.0.9/24 on wg0")
        );
    }

    #[test]
    fn reads_proc_net_route() {
        let text =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        let r = routes_from_proc(text);
        let nets: Vec<String> = r.iter().map(|u| format!("{}/{}", u.net, u.len)).collect();
        assert_eq!(nets, ["192.0.2.0/24", "172.17.0.0/16"]);
    }
}
