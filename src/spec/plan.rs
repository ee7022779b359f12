//! The resolved plan: everything a run needs, decided once, written to `plan.yaml` before
//! the first node starts so the run can be reproduced from it (with seed and revision).

use super::nemesis::{FaultKind, NemesisSpec};
use super::target::TargetSpec;
use super::test::{DataFs, TestSpec};
use super::workload::WorkloadSpec;
use super::{SpecKind, SpecRoots};
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Most nodes a run may have (a local subnet slice holds the bridge plus the nodes).
pub const MAX_NODES: u32 = 29;

/// Where the nodes run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum HostsChoice {
    /// One network namespace per node on this machine, addresses from `subnet`.
    Local { subnet: String },
    /// Every node on its own 127.x.y.z address, no namespaces: no partitions or loss.
    Loopback,
    /// Nodes on machines reached over SSH, as the inventory file lists them (`nodes` is
    /// filled in when the plan is resolved).
    Ssh {
        inventory: PathBuf,
        #[serde(default)]
        nodes: Vec<super::inventory::SshNode>,
    },
}

/// What the user asked for on the command line; every field overrides the test file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub test_file: Option<PathBuf>,
    pub target: Option<String>,
    pub workload: Option<String>,
    pub nemesis: Option<String>,
    pub nodes: Option<u32>,
    pub concurrency: Option<u32>,
    pub time_limit: Option<Duration>,
    pub rate: Option<f64>,
    pub seed: Option<u64>,
    pub target_args: Vec<String>,
    pub leave_running: bool,
    pub store: Option<PathBuf>,
    /// `None` = decide from what this machine allows.
    pub hosts: Option<HostsChoice>,
    pub subnet: Option<String>,
    /// `--recover`: the nemesis file's `recover`, set or replaced for this run.
    pub recover: Option<Duration>,
    /// `--data-fs`: the test file's `data_fs`, set or replaced.
    pub data_fs: Option<DataFs>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedTarget {
    pub file: PathBuf,
    /// Directory of target.yaml; relative paths in the spec are relative to it.
    pub dir: PathBuf,
    pub binary: PathBuf,
    pub spec: TargetSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub name: String,
    pub seed: u64,
    pub faultline_version: String,
    pub git_revision: Option<String>,
    pub target: ResolvedTarget,
    pub workload_file: PathBuf,
    pub workload: WorkloadSpec,
    pub nemesis_file: PathBuf,
    pub nemesis: NemesisSpec,
    /// The nemesis spec compiled with the seed: exactly what the run will do, and when.
    pub nemesis_schedule: Vec<crate::spec::schedule::Step>,
    pub nodes: Vec<String>,
    pub concurrency: u32,
    #[serde(with = "humantime_serde")]
    pub time_limit: Duration,
    pub rate: Option<f64>,
    pub target_args: Vec<String>,
    pub hosts: HostsChoice,
    pub leave_running: bool,
    pub store: PathBuf,
    /// What the nodes' data dirs live on (`lazyfs` for power failures). Absent in plans
    /// written before it existed: plain.
    #[serde(default)]
    pub data_fs: DataFs,
}

/// Defaults of a run with no arguments at all: the README's run command.
pub const DEFAULT_TARGET: &str = "raftkv";
pub const DEFAULT_WORKLOAD: &str = "register";
/// The default nemesis where namespaces exist (partitions are what Raft must survive).
pub const DEFAULT_NEMESIS: &str = "partition";
/// The default nemesis on loopback hosts, which cannot partition.
pub const DEFAULT_NEMESIS_LOOPBACK: &str = "kill";
pub const DEFAULT_NODES: u32 = 5;
pub const DEFAULT_CONCURRENCY: u32 = 10;
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(30);
/// Nodes of a run with twin faults: each node has a spare address for its twin in the
/// run's /27 slice (29 usable addresses besides the bridge's).
pub const MAX_NODES_WITH_TWINS: u32 = 14;
pub const DEFAULT_SUBNET: &str = "10.213.0.0/24";

impl Plan {
    /// Merge test file and flags, load and validate every spec, and resolve paths.
    /// `hosts` is what the caller decided when the user did not say.
    pub fn resolve(roots: &SpecRoots, o: &Overrides, auto_hosts: HostsChoice) -> Result<Plan> {
        let test = match &o.test_file {
            Some(p) => TestSpec::load(p)?,
            None => TestSpec::default(),
        };
        let test_path = o
            .test_file
            .clone()
            .unwrap_or_else(|| PathBuf::from("(command line)"));
        Plan::resolve_test(roots, &test, &test_path, o, auto_hosts)
    }

    /// [`Plan::resolve`] with the test spec in hand (a campaign's cell); errors about
    /// its fields name `test_path`. `o.test_file` is not read.
    pub fn resolve_test(
        roots: &SpecRoots,
        test: &TestSpec,
        test_path: &Path,
        o: &Overrides,
        auto_hosts: HostsChoice,
    ) -> Result<Plan> {
        let target_name = o
            .target
            .clone()
            .or(test.target.clone())
            .unwrap_or_else(|| DEFAULT_TARGET.into());
        let workload_name = o
            .workload
            .clone()
            .or(test.workload.clone())
            .unwrap_or_else(|| DEFAULT_WORKLOAD.into());
        let hosts_kind = o.hosts.clone().unwrap_or(auto_hosts.clone());
        let nemesis_name = o
            .nemesis
            .clone()
            .or(test.nemesis.clone())
            .unwrap_or_else(|| match hosts_kind {
                HostsChoice::Loopback => DEFAULT_NEMESIS_LOOPBACK.into(),
                HostsChoice::Local { .. } | HostsChoice::Ssh { .. } => DEFAULT_NEMESIS.into(),
            });

        // Only a name from a file needs its origin said: a flag's value is on the user's
        // command line, and a default names a shipped spec.
        let referenced = |field: &str, cli: bool, in_test: bool| Referenced {
            field: field.to_string(),
            from: (in_test && !cli)
                .then(|| format!("{}: {field}", super::field_at(test_path, field))),
        };
        let by = referenced("target", o.target.is_some(), test.target.is_some());
        let target_file = by.wrap(&target_name, roots.resolve(SpecKind::Target, &target_name))?;
        let target_spec = by.wrap(&target_name, TargetSpec::load(&target_file))?;
        let target_dir = target_file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let target_dir = target_dir
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", target_dir.display()))?;
        let binary = resolve_binary(&target_dir, &target_spec.binary);

        let by = referenced("workload", o.workload.is_some(), test.workload.is_some());
        let workload_file = by.wrap(
            &workload_name,
            roots.resolve(SpecKind::Workload, &workload_name),
        )?;
        let workload = by.wrap(&workload_name, WorkloadSpec::load(&workload_file))?;
        let by = referenced("nemesis", o.nemesis.is_some(), test.nemesis.is_some());
        let nemesis_file = by.wrap(
            &nemesis_name,
            roots.resolve(SpecKind::Nemesis, &nemesis_name),
        )?;
        let mut nemesis = by.wrap(&nemesis_name, NemesisSpec::load(&nemesis_file))?;
        if let Some(bound) = o.recover {
            // Checked here rather than by clap so the message names the flag's rule the
            // way a nemesis file's would be named.
            if bound.is_zero() {
                bail!("--recover: must be longer than 0 s (it bounds the wait for the cluster to serve again before each fault)");
            }
            nemesis.recover = Some(bound);
        }

        let inventory = match &hosts_kind {
            HostsChoice::Ssh { inventory, .. } => Some(super::inventory::load(inventory)?),
            _ => None,
        };
        let nodes = o
            .nodes
            .or(test.nodes)
            .or(inventory.as_ref().map(|i| i.len() as u32))
            .unwrap_or(DEFAULT_NODES);
        let concurrency = o
            .concurrency
            .or(test.concurrency)
            .unwrap_or(DEFAULT_CONCURRENCY);
        let time_limit = o
            .time_limit
            .or(test.time_limit)
            .unwrap_or(DEFAULT_TIME_LIMIT);
        let rate = o.rate.or(test.rate);
        let mut v = super::Violations::new(test_path);
        v.check(
            (1..=MAX_NODES).contains(&nodes),
            "nodes",
            format!("must be between 1 and {MAX_NODES}"),
        );
        v.check(
            (1..=1000).contains(&concurrency),
            "concurrency",
            "must be between 1 and 1000",
        );
        v.check(
            time_limit >= Duration::from_secs(1) && time_limit <= Duration::from_secs(86_400),
            "time_limit",
            "must be between 1s and 24h",
        );
        v.check(
            rate.is_none_or(|r| r.is_finite() && r > 0.0 && r <= 1_000_000.0),
            "rate",
            "must be a number of ops/s above 0 and at most 1000000",
        );
        if let (Some(inv), HostsChoice::Ssh { inventory, .. }) = (&inventory, &hosts_kind) {
            v.check(
                nodes as usize <= inv.len(),
                "nodes",
                format!(
                    "{nodes} nodes asked, but inventory {} lists {}",
                    inventory.display(),
                    inv.len()
                ),
            );
        }
        v.into_result()?;

        let subnet = o
            .subnet
            .clone()
            .or(test.subnet.clone())
            .unwrap_or_else(|| DEFAULT_SUBNET.into());
        let subnet_origin = if o.subnet.is_some() {
            "--subnet".to_string()
        } else if test.subnet.is_some() {
            format!("{}: subnet", super::field_at(test_path, "subnet"))
        } else {
            format!("subnet (default {DEFAULT_SUBNET})")
        };
        let parsed = parse_subnet(&subnet).with_context(|| subnet_origin.clone())?;
        if matches!(hosts_kind, HostsChoice::Local { .. }) {
            super::subnet::check_free(parsed).with_context(|| subnet_origin.clone())?;
        }
        let hosts = match hosts_kind {
            HostsChoice::Local { .. } => HostsChoice::Local { subnet },
            HostsChoice::Loopback => HostsChoice::Loopback,
            HostsChoice::Ssh {
                inventory: path, ..
            } => HostsChoice::Ssh {
                inventory: path,
                nodes: inventory
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .take(nodes as usize)
                    .collect(),
            },
        };

        let kinds = nemesis.kinds();
        let data_fs = resolve_data_fs(
            test_path,
            test,
            o,
            &hosts,
            &nemesis,
            &nemesis_file,
            lazyfs_unavailable(),
        )?;
        if kinds.iter().any(|k| k.is_twin()) {
            let hosts_why = match &hosts {
                HostsChoice::Local { .. } => None,
                HostsChoice::Loopback => Some("these hosts are loopback addresses in one network stack (not root, or namespaces unavailable), where a twin cannot own its node's address beside the node: twins need local hosts (network namespaces, root)"),
                HostsChoice::Ssh { .. } => Some("these are SSH hosts, and twins are built only for local hosts (a namespace of this machine per twin, rules in its peers' namespaces); run them with hosts: local"),
            };
            let why = hosts_why.map(str::to_string).or_else(|| match &target_spec.identity {
                None => Some(format!(
                    "target {} ({}) declares no `identity:`, so faultline cannot tell what a second copy of a node must share with it; declare it (README: \"Nemesis\", twin)",
                    target_spec.name,
                    target_file.display()
                )),
                Some(_) if nodes > MAX_NODES_WITH_TWINS => Some(format!(
                    "a twin takes a spare address of the run's /27 slice, so a run with twins has at most {MAX_NODES_WITH_TWINS} nodes ({nodes} asked)"
                )),
                Some(_) => None,
            });
            if let Some(why) = why {
                nemesis.refuse_twins(
                    &nemesis_file,
                    &format!("nemesis {} starts a twin, but {why}", nemesis.name),
                )?;
            }
        }
        // Faults that touch a node's data dir from this machine, each with what the
        // target must declare for it.
        let declared = [
            (
                FaultKind::Corrupt,
                "corrupts data files",
                "faultline damages a node's files from this machine",
                (!target_spec.data_files.is_empty(), "`data_files:`, so faultline cannot tell which files hold a node's durable state; declare globs relative to {data_dir} there (README: \"Nemesis\", corrupt)"),
            ),
            (
                FaultKind::Leave,
                "changes the cluster's members",
                "a node that joins again starts on a data dir faultline empties from this machine",
                (target_spec.membership.is_some(), "`membership:` commands to remove and add a member; declare them there (README: \"Membership changes\")"),
            ),
        ];
        for (kind, does, ssh, (has, missing)) in declared {
            if !kinds.contains(&kind) {
                continue;
            }
            let why = match &hosts {
                HostsChoice::Ssh { .. } => Some(format!(
                    "these are SSH hosts, and {ssh} (hosts: local or loopback)"
                )),
                _ => None,
            }
            .or_else(|| {
                (!has).then(|| {
                    format!(
                        "target {} ({}) declares no {missing}",
                        target_spec.name,
                        target_file.display()
                    )
                })
            });
            if let Some(why) = why {
                nemesis.refuse(
                    &nemesis_file,
                    kind,
                    &format!("nemesis {} {does}, but {why}", nemesis.name),
                )?;
            }
        }
        if let (Some(k), HostsChoice::Loopback) = (kinds.iter().find(|k| k.is_network()), &hosts) {
            bail!(
                "{}: nemesis {} injects {} faults, which need network namespaces (root); these hosts are loopback addresses, so they cannot be applied. Run as root, or pick a nemesis without partition/loss.",
                nemesis_file.display(),
                nemesis.name,
                k.as_str()
            );
        }
        if kinds.contains(&FaultKind::Delay) {
            // The verdict loop that holds delayed packets is a thread of this controller,
            // bound to a queue inside each node's namespace: it cannot reach another machine.
            if matches!(&hosts, HostsChoice::Ssh { .. }) {
                bail!(
                    "{}: nemesis {} injects delay faults, which need the nodes in network namespaces of this machine (hosts: local); SSH hosts are other machines.",
                    nemesis_file.display(),
                    nemesis.name
                );
            }
            if !iptables_available() {
                bail!(
                    "{}: nemesis {} injects delay faults, which need iptables (its NFQUEUE target): install the Debian package `iptables`.",
                    nemesis_file.display(),
                    nemesis.name
                );
            }
        }
        // Stepping VMs' real clocks reaches every program, whatever the target declares.
        let system_clocks = matches!(&hosts, HostsChoice::Ssh { nodes, .. }
            if !nodes.is_empty() && nodes.iter().all(|n| n.clock == super::inventory::ClockMode::System));
        if let (Some(k), false) = (kinds.iter().find(|k| k.is_clock()), system_clocks) {
            if let super::target::ClockSupport::Unsupported { reason } = &target_spec.clock {
                bail!(
                    "{}: nemesis {} injects {} faults, but they cannot reach target {}'s nodes: {reason}",
                    nemesis_file.display(),
                    nemesis.name,
                    k.as_str(),
                    target_spec.name
                );
            }
            // The probe runs on this machine, so it speaks only for nodes on this machine;
            // SSH hosts run it themselves before any node starts (`target::Cluster`).
            if matches!(&hosts, HostsChoice::Local { .. } | HostsChoice::Loopback) {
                let argv = target_spec.clock_probe_argv(&binary.display().to_string());
                if let Some(why) = super::target::probe_clock(&argv)? {
                    bail!(
                        "{}: nemesis {} injects {} faults, but {}",
                        nemesis_file.display(),
                        nemesis.name,
                        k.as_str(),
                        super::target::clock_refusal(&target_spec.name, &why)
                    );
                }
            }
        }

        // A fault aimed at leaders would hit nobody: refused before anything starts. The
        // runner still asks the client once before the clients start, for an adapter that
        // declares `leaders` and then names none.
        if !target_spec.client.names_leaders() {
            nemesis.check_leaders(
                &nemesis_file,
                &format!(
                    "target {} ({}) cannot name its leaders: its stdio adapter is not declared to answer them; once the adapter answers {{\"f\":\"leaders\"}} (README: \"Writing a stdio adapter\"), declare it with `leaders: true` under `client:` there, or aim the fault at fixed nodes",
                    target_spec.name,
                    target_file.display()
                ),
            )?;
        }

        if workload.value_bytes.is_some() && !target_spec.client.protocol.carries_any_value() {
            bail!(
                "{}: value_bytes: workload {} pads values into strings, but target {}'s {} client carries integers only (etcd and stdio targets carry strings)",
                workload_file.display(),
                workload.name,
                target_spec.name,
                target_spec.client.protocol.as_str()
            );
        }
        if workload.append.is_some() && !target_spec.client.protocol.carries_any_value() {
            bail!(
                "{}: append: workload {} keeps each stream as a list, but target {}'s {} client carries integers only (etcd and stdio targets carry lists)",
                workload_file.display(),
                workload.name,
                target_spec.name,
                target_spec.client.protocol.as_str()
            );
        }
        if workload.serializable && !target_spec.client.protocol.has_serializable_reads() {
            bail!(
                "{}: serializable: workload {} asks for serializable reads, but target {}'s {} client has none (the raftkv, etcd and stdio clients do)",
                workload_file.display(),
                workload.name,
                target_spec.name,
                target_spec.client.protocol.as_str()
            );
        }

        let mut target_args = test.target_args.clone();
        target_args.extend(o.target_args.iter().cloned());
        // Filled like `start` when a node starts: an unknown placeholder is refused here.
        for a in &target_args {
            if let Err(rule) = crate::spec::target::check_template(a, &target_spec.ports) {
                bail!("target argument {a:?} (--target-arg / target_args): {rule}");
            }
        }
        let name = test
            .name
            .clone()
            .unwrap_or_else(|| format!("{}-{}-{}", target_spec.name, workload.name, nemesis.name));
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            bail!(
                "{}: name: {name:?} may only contain letters, digits, '-', '_' and '.' (it names a directory)",
                test_path.display()
            );
        }
        let seed = o.seed.or(test.seed).unwrap_or_else(rand::random);

        let node_names: Vec<String> = match &hosts {
            HostsChoice::Ssh { nodes, .. } => nodes.iter().map(|n| n.name.clone()).collect(),
            _ => (1..=nodes).map(|i| format!("n{i}")).collect(),
        };
        nemesis.check_nodes(&nemesis_file, &node_names)?;
        let nemesis_schedule =
            crate::spec::schedule::compile(&nemesis, &node_names, seed, time_limit)
                .with_context(|| format!("{}", nemesis_file.display()))?;
        Ok(Plan {
            name,
            seed,
            faultline_version: env!("CARGO_PKG_VERSION").to_string(),
            git_revision: git_revision(),
            target: ResolvedTarget {
                file: target_file,
                dir: target_dir,
                binary,
                spec: target_spec,
            },
            workload_file,
            workload,
            nemesis_file,
            nemesis,
            nemesis_schedule,
            nodes: node_names,
            concurrency,
            time_limit,
            rate,
            target_args,
            hosts,
            leave_running: o.leave_running,
            store: o.store.clone().unwrap_or_else(|| PathBuf::from("reports")),
            data_fs,
        })
    }

    /// The plan as YAML, as written to `plan.yaml`.
    pub fn to_yaml(&self) -> Result<String> {
        serde_yaml::to_string(self).context("cannot serialise the plan")
    }
}

/// Which field of a test file named a spec file (`tests/t.yaml:3:11: workload`), so an
/// error about that file also says where the reference is.
struct Referenced {
    field: String,
    /// `None` for a flag or a default.
    from: Option<String>,
}

impl Referenced {
    fn wrap<T>(&self, name: &str, r: Result<T>) -> Result<T> {
        match &self.from {
            Some(from) => r.with_context(|| {
                format!(
                    "{from}: {name} cannot be used as a {} spec (rule: it must name a shipped {} or a valid {} YAML file)",
                    self.field, self.field, self.field
                )
            }),
            None => r,
        }
    }
}

fn resolve_binary(target_dir: &Path, binary: &str) -> PathBuf {
    let p = PathBuf::from(binary);
    if p.is_absolute() {
        p
    } else {
        target_dir.join(p)
    }
}

/// Parse `a.b.c.d/len` into (network address, prefix length).
pub fn parse_subnet(s: &str) -> Result<(Ipv4Addr, u8)> {
    let (addr, len) = s
        .split_once('/')
        .ok_or_else(|| anyhow!("{s:?} is not of the form a.b.c.d/len"))?;
    let addr: Ipv4Addr = addr
        .parse()
        .map_err(|_| anyhow!("{addr:?} is not an IPv4 address"))?;
    let len: u8 = len
        .parse()
        .map_err(|_| anyhow!("{len:?} is not a prefix length"))?;
    if !(16..=27).contains(&len) {
        bail!("prefix length /{len} must be between /16 and /27 (room for a bridge and nodes)");
    }
    let mask = u32::MAX << (32 - len);
    if u32::from(addr) & !mask != 0 {
        bail!(
            "{s} has host bits set; did you mean {}/{len}?",
            Ipv4Addr::from(u32::from(addr) & mask)
        );
    }
    if !addr.is_private() {
        bail!("{s} is not a private (RFC 1918) range; faultline only uses private subnets inside its own namespaces");
    }
    Ok((addr, len))
}

/// The git revision this binary was built from (`build.rs`), with `-dirty` when tracked
/// files had uncommitted changes: `unknown` when the build had no git checkout.
pub const BUILD_REVISION: &str = env!("FAULTLINE_GIT_REVISION");

/// The revision plan.yaml records: the build's, never the checkout's at run time (which
/// may have moved on since the build); `None` when the build could not tell.
/// What the nodes' data dirs live on: the flag, else the test file, else `lazyfs` when
/// the nemesis injects power failures. Refused, naming the field that asked for it, where
/// it cannot be: power failures on plain data dirs, the power-failure filesystem on SSH
/// hosts (it is served by this process, on this machine) or without FUSE (`fuse_missing`).
fn resolve_data_fs(
    test_path: &Path,
    test: &TestSpec,
    o: &Overrides,
    hosts: &HostsChoice,
    nemesis: &NemesisSpec,
    nemesis_file: &Path,
    fuse_missing: Option<String>,
) -> Result<DataFs> {
    let power = nemesis.kinds().contains(&FaultKind::PowerFail);
    let asked = o.data_fs.or(test.data_fs);
    let data_fs = asked.unwrap_or(if power { DataFs::Lazyfs } else { DataFs::Plain });
    let refuse_power = |why: String| {
        nemesis.refuse(
            nemesis_file,
            FaultKind::PowerFail,
            &format!("nemesis {} injects power failures, but {why}", nemesis.name),
        )
    };
    if power && data_fs == DataFs::Plain {
        let by = if o.data_fs.is_some() {
            "--data-fs plain".to_string()
        } else {
            format!("{}: data_fs: plain", super::field_at(test_path, "data_fs"))
        };
        refuse_power(format!(
            "{by} keeps the data dirs on plain directories, whose un-fsynced writes the kernel keeps; drop it, or set data_fs: lazyfs"
        ))?;
    }
    if data_fs == DataFs::Plain {
        return Ok(data_fs);
    }
    if o.leave_running {
        bail!("--leave-running: the nodes' data dirs are on the power-failure filesystem (data_fs: lazyfs), which this controller serves and which ends with it; run without --leave-running, or with --data-fs plain and a nemesis without power-fail");
    }
    let why = match hosts {
        HostsChoice::Ssh { .. } => Some("these are SSH hosts, and the power-failure filesystem is served by this controller on this machine (hosts: local or loopback)".to_string()),
        _ => fuse_missing,
    };
    let Some(why) = why else {
        return Ok(data_fs);
    };
    if power {
        refuse_power(format!(
            "the data dirs cannot live on the power-failure filesystem: {why}"
        ))?;
    }
    if o.data_fs.is_some() {
        bail!("--data-fs lazyfs: {why}");
    }
    let mut v = super::Violations::new(test_path);
    v.check(false, "data_fs", format!("lazyfs: {why}"));
    v.into_result()?;
    Ok(data_fs)
}

/// Why this machine cannot mount the power-failure filesystem, if it cannot.
fn lazyfs_unavailable() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("mounting it needs root".into());
    }
    if !Path::new("/dev/fuse").exists() {
        return Some("there is no /dev/fuse (load the fuse module: `modprobe fuse`)".into());
    }
    None
}

fn git_revision() -> Option<String> {
    (BUILD_REVISION != "unknown").then(|| BUILD_REVISION.to_string())
}

/// Whether `iptables` is on PATH (checked when a plan uses delay faults).
fn iptables_available() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join("iptables").is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnet_must_be_private_and_aligned() {
        assert_eq!(
            parse_subnet("10.213.0.0/24").unwrap(),
            (Ipv4Addr::new(10, 213, 0, 0), 24)
        );
        assert!(parse_subnet("10.213.0.5/24")
            .unwrap_err()
            .to_string()
            .contains("host bits"));
        assert!(parse_subnet("8.8.8.0/24")
            .unwrap_err()
            .to_string()
            .contains("private"));
        assert!(parse_subnet("10.0.0.0/30").is_err());
    }

    /// `faultline report --recheck` reads plan.yaml back: every shipped nemesis's compiled
    /// schedule (node lists, grudges of every kind) must survive the round trip.
    #[test]
    fn every_shipped_nemesis_plan_reads_back_from_its_yaml() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let roots = SpecRoots {
            dirs: vec![root.clone()],
        };
        let mut names: Vec<String> = std::fs::read_dir(root.join("nemesis"))
            .unwrap()
            .flatten()
            .filter_map(|e| {
                e.path()
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .map(String::from)
            })
            .collect();
        names.sort();
        assert!(names.len() > 10, "{names:?}");
        for name in names {
            let o = Overrides {
                nemesis: Some(name.clone()),
                nodes: Some(match name.as_str() {
                    // A majorities ring of three cuts nothing and is refused at that size.
                    "partition-majorities-ring" => 5,
                    // Written for pbftkv's 4 replicas: they name n4.
                    "twin-primary"
                    | "twin-primary-vc"
                    | "twin-primary-fork"
                    | "twin-primary-vc-fork" => 4,
                    // Four twins, one per node at most.
                    "twins-4-fork" => 7,
                    _ => 3,
                }),
                // Membership changes need a target that declares them.
                target: (name == "leave").then(|| "etcd".to_string()),
                seed: Some(7),
                time_limit: Some(std::time::Duration::from_secs(60)),
                ..Overrides::default()
            };
            let hosts = HostsChoice::Local {
                subnet: DEFAULT_SUBNET.into(),
            };
            let plan = Plan::resolve(&roots, &o, hosts).unwrap();
            let text = plan.to_yaml().unwrap();
            let back: Plan = crate::spec::parse_yaml(std::path::Path::new("plan.yaml"), &text)
                .unwrap_or_else(|e| panic!("nemesis {name}: {e:#}"));
            assert_eq!(
                back.nemesis_schedule, plan.nemesis_schedule,
                "nemesis {name}"
            );
        }
    }

    #[test]
    fn plan_yaml_records_the_revision_the_binary_was_built_from() {
        // build.rs's constant: a commit (optionally `-dirty`) or `unknown`.
        let commit = BUILD_REVISION.trim_end_matches("-dirty");
        assert!(
            BUILD_REVISION == "unknown"
                || (commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit())),
            "{BUILD_REVISION:?}"
        );
        let roots = SpecRoots {
            dirs: vec![PathBuf::from(env!("CARGO_MANIFEST_DIR"))],
        };
        let hosts = HostsChoice::Local {
            subnet: DEFAULT_SUBNET.into(),
        };
        let plan = Plan::resolve(&roots, &Overrides::default(), hosts).unwrap();
        let want = (BUILD_REVISION != "unknown").then(|| BUILD_REVISION.to_string());
        assert_eq!(plan.git_revision, want);
        if let Some(rev) = want {
            assert!(plan
                .to_yaml()
                .unwrap()
                .contains(&format!("git_revision: {rev}")));
        }
    }

    /// Resolve a test file with `text` (and extra files beside it) on loopback hosts.
    fn resolve_text(text: &str, files: &[(&str, &str)], seed: u64) -> Result<Plan> {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in files {
            std::fs::write(dir.path().join(name), body).unwrap();
        }
        let test = dir.path().join("t.yaml");
        std::fs::write(&test, text).unwrap();
        let o = Overrides {
            test_file: Some(test),
            seed: Some(seed),
            ..Overrides::default()
        };
        Plan::resolve(&SpecRoots::default_roots(), &o, HostsChoice::Loopback)
    }

    #[test]
    fn recover_on_the_command_line_sets_the_nemesis_bound_and_refuses_zero() {
        let with = |recover: Option<Duration>| {
            let o = Overrides {
                nemesis: Some("crash-restart".into()),
                seed: Some(1),
                recover,
                ..Overrides::default()
            };
            Plan::resolve(&SpecRoots::default_roots(), &o, HostsChoice::Loopback)
        };
        assert_eq!(with(None).unwrap().nemesis.recover, None);
        let plan = with(Some(Duration::from_secs(10))).unwrap();
        assert_eq!(plan.nemesis.recover, Some(Duration::from_secs(10)));
        // plan.yaml keeps it, so a re-rendered page's reproduce command carries it too.
        let yaml = serde_yaml::to_string(&plan).unwrap();
        assert!(yaml.contains("recover: 10s"), "{yaml}");
        let err = format!("{:#}", with(Some(Duration::ZERO)).unwrap_err());
        assert!(err.contains("--recover: must be longer than 0 s"), "{err}");
    }

    #[test]
    fn refuses_an_empty_test_file_instead_of_running_the_default() {
        for text in ["", "# nothing yet\n"] {
            let err = format!("{:#}", resolve_text(text, &[], 1).unwrap_err());
            assert!(
                err.contains("t.yaml: the file is empty or only comments"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_bad_referenced_file_names_the_reference_not_its_contents() {
        let text = "name: x\nworkload: /etc/passwd\n";
        let err = format!("{:#}", resolve_text(text, &[], 1).unwrap_err());
        assert!(
            err.contains("t.yaml:2:11: workload: /etc/passwd cannot be used as a workload spec"),
            "{err}"
        );
        assert!(
            err.contains("/etc/passwd:1:1: invalid type: a string"),
            "{err}"
        );
        assert!(!err.contains("root:"), "{err}");
    }

    #[test]
    fn nodes_of_every_fault_are_checked_at_plan_time_for_any_seed() {
        let dir = tempfile::tempdir().unwrap();
        let nemesis = dir.path().join("odd.yaml");
        std::fs::write(
            &nemesis,
            "name: odd\ninterval: 1s\nduration: 1s\nfaults:\n  - {fault: kill, target: one}\n  - {fault: pause, target: [n1, n99]}\n",
        )
        .unwrap();
        for seed in 0..8 {
            let o = Overrides {
                nemesis: Some(nemesis.display().to_string()),
                nodes: Some(3),
                time_limit: Some(Duration::from_millis(1500)),
                seed: Some(seed),
                ..Overrides::default()
            };
            let err = format!(
                "{:#}",
                Plan::resolve(&SpecRoots::default_roots(), &o, HostsChoice::Loopback).unwrap_err()
            );
            assert!(
                err.contains("odd.yaml:6:33: faults[1].target[1]: \"n99\" is not a node of this run (its nodes: n1, n2, n3)"),
                "seed {seed}: {err}"
            );
        }
    }

    #[test]
    fn padded_values_and_lists_are_refused_at_plan_time_for_a_client_that_carries_integers_only() {
        let resolve = |target: &str, workload: &str| {
            let o = Overrides {
                target: Some(target.into()),
                workload: Some(workload.into()),
                nemesis: Some("none".into()),
                nodes: Some(3),
                ..Overrides::default()
            };
            Plan::resolve(&SpecRoots::default_roots(), &o, HostsChoice::Loopback)
        };
        let err = format!("{:#}", resolve("raftkv", "writes-4k").unwrap_err());
        assert!(
            err.contains("writes-4k.yaml: value_bytes: workload writes-4k pads values into strings, but target raftkv's raftkv client carries integers only"),
            "{err}"
        );
        let plan = resolve("tests/fixtures/wrong-id/leaders.yaml", "writes-4k").unwrap();
        assert_eq!(plan.workload.value_bytes, Some(4096));
        let err = format!("{:#}", resolve("raftkv", "append").unwrap_err());
        assert!(
            err.contains("append.yaml: append: workload append keeps each stream as a list, but target raftkv's raftkv client carries integers only"),
            "{err}"
        );
        assert!(resolve("etcd", "append").unwrap().workload.append.is_some());
    }

    #[test]
    fn a_leader_fault_is_refused_at_plan_time_for_an_adapter_that_cannot_name_leaders() {
        let dir = tempfile::tempdir().unwrap();
        let timeline = dir.path().join("blind.yaml");
        std::fs::write(
            &timeline,
            "name: blind\ntimeline:\n  - {at: 1s, start: pause, target: [n1]}\n  - {at: 2s, stop: pause}\n  - {at: 3s, start: kill, target: followers}\n",
        )
        .unwrap();
        let timeline = timeline.display().to_string();
        let blind = "tests/fixtures/wrong-id/target.yaml";
        let declared = "tests/fixtures/wrong-id/leaders.yaml";
        let resolve = |target: &str, nemesis: &str, seed: u64| {
            let o = Overrides {
                target: Some(target.into()),
                nemesis: Some(nemesis.into()),
                nodes: Some(3),
                seed: Some(seed),
                ..Overrides::default()
            };
            Plan::resolve(&SpecRoots::default_roots(), &o, HostsChoice::Loopback)
        };
        let err = format!("{:#}", resolve(blind, &timeline, 1).unwrap_err());
        assert!(
            err.contains(&format!(
                "blind.yaml:5:35: timeline[2].target: `followers` aims the fault at the leaders, but target wrong-id ({blind}) cannot name its leaders"
            )),
            "{err}"
        );
        assert!(err.contains("`leaders: true` under `client:`"), "{err}");
        assert!(!err.contains("timeline[0]"), "fixed nodes are fine: {err}");
        // Every fault of a random schedule counts, whichever the seed draws.
        for seed in 0..4 {
            let err = format!("{:#}", resolve(blind, "pause", seed).unwrap_err());
            assert!(
                err.contains("pause.yaml:") && err.contains(": faults[2].target: `primaries` aims"),
                "{err}"
            );
        }
        // Declared, or aimed at fixed nodes only, the plan stands.
        resolve(declared, &timeline, 1).unwrap();
        resolve(declared, "pause", 1).unwrap();
        resolve(blind, "none", 1).unwrap();
    }

    /// An SSH inventory of n1…n3 in `dir`.
    fn three_ssh_hosts(dir: &Path) -> PathBuf {
        let inventory = dir.join("hosts.yaml");
        std::fs::write(
            &inventory,
            "nodes:\n  - {name: n1, address: 10.0.0.1}\n  - {name: n2, address: 10.0.0.2}\n  - {name: n3, address: 10.0.0.3}\n",
        )
        .unwrap();
        inventory
    }

    /// A 3-node plan of `target` under the nemesis file `nemesis`, seed 1, on `hosts`.
    fn resolve_three(target: &str, nemesis: &Path, hosts: HostsChoice) -> Result<Plan, String> {
        let o = Overrides {
            target: Some(target.into()),
            nemesis: Some(nemesis.display().to_string()),
            nodes: Some(3),
            seed: Some(1),
            hosts: Some(hosts.clone()),
            ..Overrides::default()
        };
        Plan::resolve(&SpecRoots::default_roots(), &o, hosts).map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn twins_are_refused_at_plan_time_on_loopback_and_ssh_hosts_and_without_identity() {
        let dir = tempfile::tempdir().unwrap();
        let nemesis = dir.path().join("twin.yaml");
        std::fs::write(
            &nemesis,
            "name: twin\ntimeline:\n  - {at: 1s, start: twin, target: [n1]}\n  - {at: 2s, stop: twin}\n",
        )
        .unwrap();
        let inventory = three_ssh_hosts(dir.path());
        let resolve = |target: &str, hosts: HostsChoice| resolve_three(target, &nemesis, hosts);
        let at = format!("{}:3:", nemesis.display());
        let err = resolve("raftkv", HostsChoice::Loopback).unwrap_err();
        assert!(err.starts_with(&at), "{err}");
        assert!(
            err.contains("timeline[0].start: nemesis twin starts a twin, but these hosts are loopback addresses"),
            "{err}"
        );
        let ssh = HostsChoice::Ssh {
            inventory: inventory.clone(),
            nodes: Vec::new(),
        };
        let err = resolve("raftkv", ssh.clone()).unwrap_err();
        assert!(err.starts_with(&at), "{err}");
        assert!(
            err.contains("these are SSH hosts, and twins are built only for local hosts"),
            "{err}"
        );
        let local = HostsChoice::Local {
            subnet: DEFAULT_SUBNET.into(),
        };
        let err = resolve("tests/fixtures/lazykv/target.yaml", local.clone()).unwrap_err();
        assert!(err.starts_with(&at), "{err}");
        assert!(err.contains("target lazykv"), "{err}");
        assert!(err.contains("declares no `identity:`"), "{err}");
        let plan = resolve("raftkv", local).unwrap();
        assert!(matches!(
            &plan.nemesis_schedule[0].action,
            crate::spec::schedule::Action::StartTwin { node, sees_twin, .. } if node == "n1" && !sees_twin.is_empty()
        ));
    }

    #[test]
    fn corruptions_are_refused_at_plan_time_without_data_files_and_on_ssh_hosts() {
        let dir = tempfile::tempdir().unwrap();
        let nemesis = dir.path().join("c.yaml");
        std::fs::write(
            &nemesis,
            "name: c\ninterval: 5s\nduration: 3s\nfaults:\n  - {fault: kill, target: one}\n  - {fault: corrupt, damage: truncate}\n",
        )
        .unwrap();
        let inventory = three_ssh_hosts(dir.path());
        let resolve = |target: &str, hosts: HostsChoice| resolve_three(target, &nemesis, hosts);
        let at = format!("{}:6:", nemesis.display());
        let err = resolve("tests/fixtures/lazykv/target.yaml", HostsChoice::Loopback).unwrap_err();
        assert!(err.starts_with(&at), "{err}");
        assert!(
            err.contains("faults[1].fault: nemesis c corrupts data files, but target lazykv"),
            "{err}"
        );
        assert!(err.contains("declares no `data_files:`"), "{err}");
        let ssh = HostsChoice::Ssh {
            inventory,
            nodes: Vec::new(),
        };
        let err = resolve("raftkv", ssh).unwrap_err();
        assert!(err.starts_with(&at), "{err}");
        assert!(err.contains("these are SSH hosts"), "{err}");
        let plan = resolve("raftkv", HostsChoice::Loopback).unwrap();
        assert!(plan
            .nemesis_schedule
            .iter()
            .any(|s| matches!(s.action, crate::spec::schedule::Action::Corrupt { .. })));
    }

    #[test]
    fn power_failures_are_refused_at_plan_time_where_data_dirs_cannot_be_on_lazyfs() {
        let dir = tempfile::tempdir().unwrap();
        let nemesis = dir.path().join("pf.yaml");
        std::fs::write(
            &nemesis,
            "name: pf\ninterval: 5s\nduration: 3s\nfaults:\n  - {fault: kill, target: one}\n  - {fault: power-fail, target: all}\n",
        )
        .unwrap();
        let inventory = three_ssh_hosts(dir.path());
        let resolve = |hosts: HostsChoice, data_fs: Option<DataFs>| {
            let o = Overrides {
                nemesis: Some(nemesis.display().to_string()),
                nodes: Some(3),
                seed: Some(1),
                hosts: Some(hosts.clone()),
                data_fs,
                ..Overrides::default()
            };
            Plan::resolve(&SpecRoots::default_roots(), &o, hosts).map_err(|e| format!("{e:#}"))
        };
        let at = format!("{}:6:", nemesis.display());
        let ssh = HostsChoice::Ssh {
            inventory,
            nodes: Vec::new(),
        };
        let err = resolve(ssh, None).unwrap_err();
        assert!(err.starts_with(&at), "{err}");
        assert!(
            err.contains("faults[1].fault: nemesis pf injects power failures, but the data dirs cannot live on the power-failure filesystem: these are SSH hosts"),
            "{err}"
        );
        let err = resolve(HostsChoice::Loopback, Some(DataFs::Plain)).unwrap_err();
        assert!(err.starts_with(&at), "{err}");
        assert!(
            err.contains("--data-fs plain keeps the data dirs on plain directories"),
            "{err}"
        );
        // Without FUSE (decided by the machine, so asked of the rule directly).
        let test = TestSpec::default();
        let spec = NemesisSpec::load(&nemesis).unwrap();
        let err = resolve_data_fs(
            Path::new("t.yaml"),
            &test,
            &Overrides::default(),
            &HostsChoice::Loopback,
            &spec,
            &nemesis,
            Some("there is no /dev/fuse".into()),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("faults[1].fault:") && err.contains("there is no /dev/fuse"),
            "{err}"
        );
        let asked = TestSpec {
            data_fs: Some(DataFs::Lazyfs),
            ..TestSpec::default()
        };
        let none = NemesisSpec::load(Path::new("nemesis/none.yaml")).unwrap();
        let err = resolve_data_fs(
            Path::new("t.yaml"),
            &asked,
            &Overrides::default(),
            &HostsChoice::Loopback,
            &none,
            Path::new("nemesis/none.yaml"),
            Some("mounting it needs root".into()),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("t.yaml: data_fs: lazyfs: mounting it needs root"),
            "{err}"
        );
        // Where it can be, power failures turn the filesystem on; other nemeses do not.
        let on = resolve_data_fs(
            Path::new("t.yaml"),
            &test,
            &Overrides::default(),
            &HostsChoice::Loopback,
            &spec,
            &nemesis,
            None,
        )
        .unwrap();
        assert_eq!(on, DataFs::Lazyfs);
        let off = resolve_data_fs(
            Path::new("t.yaml"),
            &test,
            &Overrides::default(),
            &HostsChoice::Loopback,
            &none,
            Path::new("nemesis/none.yaml"),
            None,
        )
        .unwrap();
        assert_eq!(off, DataFs::Plain);
    }

    /// The plan refuses by the nemesis file's fields, the runner by the compiled steps:
    /// both must agree on which faults aim at leaders, for every shipped nemesis.
    #[test]
    fn the_fields_refused_at_plan_time_are_the_steps_aimed_at_leaders() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("nemesis");
        let nodes: Vec<String> = (1..=5).map(|i| format!("n{i}")).collect();
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let spec = NemesisSpec::load(&entry.path()).unwrap();
            let aimed = (0..8).any(|seed| {
                crate::spec::schedule::compile(&spec, &nodes, seed, Duration::from_secs(60))
                    .unwrap()
                    .iter()
                    .any(|s| s.action.aims_at_leaders())
            });
            assert_eq!(
                !spec.leader_fields().is_empty(),
                aimed,
                "{}: {:?}",
                spec.name,
                spec.leader_fields()
            );
        }
    }

    #[test]
    fn a_model_that_does_not_fit_the_workload_is_refused_before_the_run() {
        let w = "name: kv\nmix: {read: 2, write: 1, cas: 1}\nkeys: {in_flight: 8}\nmodel: mutex\n";
        let dir = tempfile::tempdir().unwrap();
        let wf = dir.path().join("kvm.yaml");
        std::fs::write(&wf, w).unwrap();
        let text = format!("workload: {}\n", wf.display());
        let err = format!("{:#}", resolve_text(&text, &[], 1).unwrap_err());
        assert!(
            err.contains("kvm.yaml:4:8: model: model mutex cannot judge the read, write, cas ops"),
            "{err}"
        );
    }

    #[test]
    fn clock_faults_are_refused_for_a_python_target_whose_sleep_the_preload_breaks() {
        let python = "/usr/bin/python3";
        if super::super::target::find_libfaketime().is_err() || !Path::new(python).is_file() {
            eprintln!("skipped: needs libfaketime and {python}");
            return;
        }
        let probe = vec![
            python.to_string(),
            "-c".into(),
            "import time; time.sleep(0.01)".into(),
        ];
        let broken = super::super::target::probe_clock(&probe).unwrap();
        let resolve = |target: &str| {
            let o = Overrides {
                target: Some(target.into()),
                nemesis: Some("clock".into()),
                nodes: Some(3),
                seed: Some(1),
                ..Overrides::default()
            };
            Plan::resolve(&SpecRoots::default_roots(), &o, HostsChoice::Loopback)
        };
        match (broken, resolve("tests/fixtures/sleepy/target.yaml")) {
            (Some(_), Ok(_)) => panic!("clock faults planned against a node whose sleep fails"),
            (Some(_), Err(e)) => {
                let err = format!("{e:#}");
                assert!(
                    err.contains("target sleepy's nodes would not survive them"),
                    "{err}"
                );
                assert!(err.contains("Invalid argument"), "{err}");
                assert!(err.contains("clock_probe: []"), "{err}");
            }
            (None, r) => {
                r.unwrap();
            }
        }
        // lazykv sleeps only through asyncio and says so: its clock faults stay allowed.
        resolve("tests/fixtures/lazykv/target.yaml").unwrap();
    }
}
