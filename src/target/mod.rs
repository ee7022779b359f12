//! Targets: the lifecycle of a target's nodes as target.yaml describes it — install, start
//! (templates filled per node), readiness, graceful stop, kill, pause/resume, log
//! collection — and the built-in [`client`]s that speak to them.
//!
//! Hosts decide *where* a process runs; this module decides *what* runs and tracks each
//! node's process so that faults (kill, pause) and teardown act on exactly it.

pub mod client;

use crate::checker::agreement::Entry;
use crate::hosts::cgroup::{self, RunCgroups};
use crate::hosts::cleanup::ProcId;
use crate::hosts::ssh::{RemoteProc, RemoteState};
use crate::hosts::{Hosts, NodeHost, Registry, SpawnSpec, Spawned};
use crate::spec::nemesis::TwinState;
use crate::spec::target::{fill, signal_by_name, Inspect, Protocol, ReadyCheck};
use crate::spec::test::DataFs;
use crate::spec::Plan;
use anyhow::{anyhow, bail, Context, Result};
use client::Client;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Where a run keeps its copies' committed logs: `<node>.jsonl` (or `<node>.error`) read
/// at the end, and a subdirectory per Twins scenario or `stop-twin` with every copy's
/// log read just before the twins stopped ([`Cluster::save_logs`]).
pub const LOGS_DIR: &str = "logs";

/// How long inspecting one node may take.
pub const INSPECT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long inspecting one copy may take while the run goes on (the nemesis waits).
pub const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes of one node's log read by the agreement oracle (an inspect command's
/// stdout, or raftkv's entries); a longer log is an error, not silently cut.
pub const INSPECT_MAX_BYTES: usize = 64 << 20;

/// A command line as the shell would read it, for messages.
fn shown(argv: &[String]) -> String {
    argv.iter()
        .map(|a| crate::shell::show(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs a controller-side command of the target (inspect, membership) in its own process
/// group (killed with its children on timeout) with PDEATHSIG; returns its stdout, at
/// most [`INSPECT_MAX_BYTES`].
async fn run_inspect(argv: &[String], cwd: &Path, limit: Duration) -> Result<String, String> {
    use tokio::io::AsyncReadExt;
    let shown = shown(argv);
    let (prog, args) = argv
        .split_first()
        .ok_or_else(|| "the command is empty".to_string())?;
    let mut cmd = tokio::process::Command::new(prog);
    cmd.args(args)
        .current_dir(cwd)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    crate::hosts::local::die_with_controller(&mut cmd);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run `{shown}`: {e}"))?;
    let pgid = child.id().map(|p| p as i32);
    let (Some(mut out), Some(mut err)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(format!("`{shown}`: no pipes"));
    };
    let work = async {
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let cap = INSPECT_MAX_BYTES as u64 + 1;
        let mut out = (&mut out).take(cap);
        let mut err = (&mut err).take(64 * 1024);
        let (o, e) = tokio::join!(out.read_to_end(&mut stdout), err.read_to_end(&mut stderr));
        o.map_err(|e| format!("reading `{shown}`'s output: {e}"))?;
        let _ = e;
        if stdout.len() > INSPECT_MAX_BYTES {
            return Err(format!(
                "`{shown}` printed more than the {INSPECT_MAX_BYTES} bytes faultline reads of a target's command"
            ));
        }
        let status = child
            .wait()
            .await
            .map_err(|e| format!("waiting for `{shown}`: {e}"))?;
        if !status.success() {
            let last = String::from_utf8_lossy(&stderr)
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
                .to_string();
            return Err(format!("`{shown}` failed ({status}): {last}"));
        }
        String::from_utf8(stdout).map_err(|_| format!("`{shown}` printed bytes that are not UTF-8"))
    };
    match tokio::time::timeout(limit, work).await {
        Ok(r) => r,
        Err(_) => {
            // Not reaped yet, so the group is still its own: it goes with its children.
            if let Some(pg) = pgid {
                let _ = killpg(Pid::from_raw(pg), Signal::SIGKILL);
            }
            Err(format!("`{shown}` did not finish within {limit:?}"))
        }
    }
}

/// Lines of a node's stderr quoted when it fails to start.
const STDERR_TAIL_LINES: usize = 15;

/// A running (or stopped) node process.
#[derive(Debug)]
enum NodeProc {
    Local {
        /// Boxed: the variant would otherwise dwarf `Remote`.
        child: Box<tokio::process::Child>,
        id: ProcId,
        /// The node's cgroup: where it is tracked, when this machine has them.
        cgroup: Option<PathBuf>,
        /// The start command exited while the node lives on in its cgroup (a daemon); the
        /// run log says so once.
        detached: bool,
    },
    Remote {
        p: RemoteProc,
        /// The node's cgroup on its host, where the host has cgroups.
        cgroup: Option<String>,
        /// As for `Local`: the start command exited, the node lives on in its cgroup.
        detached: bool,
    },
}

impl NodeProc {
    fn pid(&self) -> i32 {
        match self {
            NodeProc::Local { id, .. } => id.pid,
            NodeProc::Remote { p, .. } => p.pid,
        }
    }
}

/// The nodes of one run and what the controller knows about their processes.
#[derive(Debug)]
pub struct Cluster {
    plan: Arc<Plan>,
    hosts: Arc<Hosts>,
    reg: Registry,
    run_dir: PathBuf,
    /// Where node data dirs live: outside the run directory, because targets preallocate
    /// large files (etcd's WAL) that do not belong in a report; removed at teardown.
    data_root: PathBuf,
    procs: Mutex<BTreeMap<String, NodeProc>>,
    /// How often each node has been started (names each start's log files).
    starts: Mutex<BTreeMap<String, usize>>,
    /// Per-node clock offset files when the run plans clock faults.
    clocks: Option<Arc<crate::hosts::clock::Clocks>>,
    /// Node cgroups on this machine; `None` on SSH hosts (whose cgroups `hosts::ssh` keeps)
    /// or where cgroup v2 is unavailable (nodes are then tracked by process group only).
    cgroups: Option<RunCgroups>,
    cluster_token: String,
    /// Each node's mount of the power-failure filesystem, when the plan puts data dirs
    /// there (`data_fs: lazyfs`): mounted before the node first starts, kept across its
    /// restarts (it is the node's disk), unmounted after it stopped for good. Dropping the
    /// cluster (a panic) unmounts them too.
    mounts: std::sync::Mutex<BTreeMap<String, crate::hosts::lazyfs::Mount>>,
    /// The running twins and where their client ports are reached: the built-in clients
    /// that can address a twin (`raftkv`, `pbft`) send to it too while it runs.
    twins_up: tokio::sync::watch::Sender<BTreeMap<String, client::Endpoint>>,
    /// Membership as the `leave` fault changed it: the nodes that left the configuration,
    /// and those that came back (started since with `{cluster_state}` = existing).
    membership: std::sync::Mutex<MemberState>,
}

/// Who left the cluster's configuration and who joined it again.
#[derive(Debug, Default)]
struct MemberState {
    left: BTreeSet<String>,
    joined: BTreeSet<String>,
}

/// A change of the cluster's members (target.yaml `membership`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberChange {
    Remove,
    Add,
}

impl MemberChange {
    fn as_str(self) -> &'static str {
        match self {
            MemberChange::Remove => "remove",
            MemberChange::Add => "add",
        }
    }
}

impl Cluster {
    pub fn new(
        plan: Arc<Plan>,
        hosts: Arc<Hosts>,
        reg: Registry,
        run_dir: &Path,
        clocks: Option<Arc<crate::hosts::clock::Clocks>>,
    ) -> Result<Cluster> {
        let data_root = data_root(&reg.run_id());
        reg.add_dir(&data_root)?;
        let cgroups = if hosts.remote().is_some() {
            None
        } else {
            match RunCgroups::create(&reg) {
                Ok(c) => Some(c),
                Err(reason) => {
                    tracing::info!("node processes are tracked by process group only ({reason}): a node that leaves its group (a daemon calling setsid) is neither killed nor seen");
                    None
                }
            }
        };
        Ok(Cluster {
            cgroups,
            cluster_token: format!("faultline-{}", reg.run_id()),
            plan,
            hosts,
            reg,
            run_dir: run_dir.to_path_buf(),
            data_root,
            procs: Mutex::new(BTreeMap::new()),
            starts: Mutex::new(BTreeMap::new()),
            clocks,
            mounts: std::sync::Mutex::new(BTreeMap::new()),
            twins_up: tokio::sync::watch::channel(BTreeMap::new()).0,
            membership: std::sync::Mutex::new(MemberState::default()),
        })
    }

    fn member_state(&self) -> std::sync::MutexGuard<'_, MemberState> {
        self.membership.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `node` is in the cluster's configuration (it has not left, or came back).
    pub fn is_member(&self, node: &str) -> bool {
        !self.member_state().left.contains(node)
    }

    /// Record that `node` left the configuration (`true`) or is back in it (`false`):
    /// from then on `{cluster}` and `{peers}` leave it out, or list it again, and a node
    /// that came back starts with `{cluster_state}` = existing.
    pub fn set_left(&self, node: &str, left: bool) {
        let mut m = self.member_state();
        if left {
            m.left.insert(node.to_string());
        } else if m.left.remove(node) {
            m.joined.insert(node.to_string());
        }
    }

    /// Run target.yaml's `membership` command for `node`, sent to `via` (a running
    /// member); its stdout, or why it failed.
    pub async fn change_membership(
        &self,
        change: MemberChange,
        node: &str,
        via: &str,
        limit: Duration,
    ) -> Result<String> {
        let spec = &self.plan.target.spec;
        let m = spec
            .membership
            .as_ref()
            .ok_or_else(|| anyhow!("target {} declares no `membership` commands", spec.name))?;
        let templates = match change {
            MemberChange::Remove => &m.remove,
            MemberChange::Add => &m.add,
        };
        let mut vars = self.vars(node)?;
        vars.insert("member_ip".into(), self.host(via)?.ip.to_string());
        let argv = self.command_argv(templates, &vars)?;
        run_inspect(&argv, &self.plan.target.dir, limit)
            .await
            .map_err(|e| anyhow!("membership {} of {node} via {via}: {e}", change.as_str()))
    }

    /// A target.yaml command filled with `vars`. A program named by a relative path
    /// (`./adapter.py`) is relative to target.yaml's directory; a bare name (`python3`)
    /// is looked up on PATH.
    fn command_argv(
        &self,
        templates: &[String],
        vars: &BTreeMap<String, String>,
    ) -> Result<Vec<String>> {
        let mut argv = templates
            .iter()
            .map(|t| fill(t, vars))
            .collect::<Result<Vec<_>>>()?;
        if let Some(prog) = argv.first_mut() {
            let p = Path::new(prog.as_str());
            if p.is_relative() && prog.contains('/') {
                *prog = self.plan.target.dir.join(p).display().to_string();
            }
        }
        Ok(argv)
    }

    /// Empty `node`'s data dir (a node that left must not come back with its old state);
    /// the directory itself stays, as it may be a mount point.
    pub fn wipe_data_dir(&self, node: &str) -> Result<()> {
        if self.hosts.remote().is_some() {
            bail!("faultline empties a data dir only on this machine's hosts (local or loopback)");
        }
        let dir = self.data_dir(node);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
        };
        for e in entries {
            let path = e
                .with_context(|| format!("cannot read {}", dir.display()))?
                .path();
            let removed = if path.is_dir() && !path.is_symlink() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.with_context(|| format!("cannot remove {}", path.display()))?;
        }
        Ok(())
    }

    pub fn nodes(&self) -> Vec<String> {
        self.plan.nodes.clone()
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    pub fn hosts(&self) -> &Hosts {
        &self.hosts
    }

    fn host(&self, node: &str) -> Result<&NodeHost> {
        self.hosts
            .node(node)
            .ok_or_else(|| anyhow!("no host for node {node}"))
    }

    pub fn node_dir(&self, node: &str) -> PathBuf {
        self.run_dir.join("nodes").join(node)
    }

    /// The node's data dir (on its host: for SSH hosts, a path on that machine).
    pub fn data_dir(&self, node: &str) -> PathBuf {
        match self.hosts.remote().and_then(|h| h.root(node).ok()) {
            Some(root) => Path::new(root).join("data"),
            None => self.data_root.join(node),
        }
    }

    /// Where the node's stdout/stderr files are written on its host.
    fn log_dir(&self, node: &str) -> PathBuf {
        match self.hosts.remote().and_then(|h| h.root(node).ok()) {
            Some(root) => Path::new(root).join("logs"),
            None => self.node_dir(node),
        }
    }

    /// The target's binary as the node's host sees it: uploaded to SSH hosts unless it is
    /// a system binary (under /usr, /bin, /sbin), which the host is expected to have.
    fn binary_on(&self, node: &str) -> PathBuf {
        let local = &self.plan.target.binary;
        match self.hosts.remote().and_then(|h| h.root(node).ok()) {
            Some(root) if uploads(local) => Path::new(root)
                .join("bin")
                .join(local.file_name().unwrap_or_default()),
            _ => local.clone(),
        }
    }

    /// Put the target's binary on every SSH host (no-op on this machine).
    pub async fn upload_binaries(&self) -> Result<()> {
        let Some(remote) = self.hosts.remote() else {
            return Ok(());
        };
        let local = &self.plan.target.binary;
        if !uploads(local) {
            return Ok(());
        }
        let uploads = self.plan.nodes.iter().map(|n| async move {
            let to = self.binary_on(n).display().to_string();
            remote.conn(n)?.upload(local, &to).await
        });
        for r in futures::future::join_all(uploads).await {
            r?;
        }
        tracing::info!(
            "uploaded {} to {} hosts",
            local.display(),
            self.plan.nodes.len()
        );
        Ok(())
    }

    /// Clock faults on SSH hosts: the target's clock probe, run on every `libfaketime`
    /// host under the preload as its node would get it, refuses the run (before any node
    /// starts) for the reason the plan gives locally. A host's Python may differ from
    /// ours, so the plan's probe on this machine cannot speak for it.
    async fn probe_remote_clocks(&self) -> Result<()> {
        let (Some(remote), Some(_)) = (self.hosts.remote(), &self.clocks) else {
            return Ok(());
        };
        let probes = self.plan.nodes.iter().map(|n| async move {
            let conn = remote.conn(n)?;
            if conn.node.clock != crate::spec::inventory::ClockMode::Libfaketime {
                return Ok(None);
            }
            let argv = self
                .plan
                .target
                .spec
                .clock_probe_argv(&self.binary_on(n).display().to_string());
            if argv.is_empty() {
                return Ok(None);
            }
            let why = remote.probe_clock(n, &argv).await?;
            anyhow::Ok(why.map(|w| format!("node {n} ({}): {w}", conn.node.endpoint())))
        });
        let mut failed = Vec::new();
        for r in futures::future::join_all(probes).await {
            failed.extend(r?);
        }
        if let Some(first) = failed.first() {
            let kind = self
                .plan
                .nemesis
                .kinds()
                .into_iter()
                .find(|k| k.is_clock())
                .map_or("clock", |k| k.as_str());
            bail!(
                "{}: nemesis {} injects {kind} faults, but {}{}",
                self.plan.nemesis_file.display(),
                self.plan.nemesis.name,
                crate::spec::target::clock_refusal(&self.plan.target.spec.name, first),
                if failed.len() > 1 {
                    format!(
                        " ({} of {} hosts failed the probe)",
                        failed.len(),
                        self.plan.nodes.len()
                    )
                } else {
                    String::new()
                }
            );
        }
        tracing::info!("clock probe passed on the SSH hosts");
        Ok(())
    }

    /// Template variables for one node.
    fn vars(&self, node: &str) -> Result<BTreeMap<String, String>> {
        let spec = &self.plan.target.spec;
        let host = self.host(node)?;
        let mut base = BTreeMap::new();
        base.insert("binary".into(), self.binary_on(node).display().to_string());
        base.insert(
            "target_dir".into(),
            self.plan.target.dir.display().to_string(),
        );
        base.insert("cluster_token".into(), self.cluster_token.clone());
        for (name, port) in &spec.ports {
            base.insert(format!("port.{name}"), port.to_string());
        }
        let entry = |h: &NodeHost| -> Result<String> {
            let mut v = base.clone();
            v.insert("node".into(), h.node.clone());
            v.insert("ip".into(), h.ip.to_string());
            match &spec.peer {
                Some(t) => fill(t, &v),
                None => Ok(String::new()),
            }
        };
        let (left, joined) = {
            let m = self.member_state();
            (m.left.clone(), m.joined.contains(node))
        };
        let mut peers = Vec::new();
        let mut cluster = Vec::new();
        for h in self.hosts.nodes() {
            if h.node != node && left.contains(&h.node) {
                continue;
            }
            let e = entry(h)?;
            if h.node != node {
                peers.push(e.clone());
            }
            cluster.push(e);
        }
        let mut v = base;
        v.insert("node".into(), node.to_string());
        v.insert("ip".into(), host.ip.to_string());
        v.insert("peers".into(), peers.join(&spec.peer_separator));
        v.insert("cluster".into(), cluster.join(&spec.peer_separator));
        v.insert("data_dir".into(), self.data_dir(node).display().to_string());
        v.insert(
            "cluster_state".into(),
            if joined { "existing" } else { "new" }.into(),
        );
        Ok(v)
    }

    /// The address a client reaches `node` at.
    pub fn client_addr(&self, node: &str) -> Result<SocketAddr> {
        let spec = &self.plan.target.spec;
        let port = spec
            .ports
            .get(&spec.client.port)
            .ok_or_else(|| anyhow!("client port {} is not declared", spec.client.port))?;
        Ok(SocketAddr::new(self.host(node)?.ip.into(), *port))
    }

    /// Where the `http` / `tcp` readiness probe connects on `node`: `ready.port`, or the
    /// client port.
    fn ready_addr(&self, node: &str) -> Result<SocketAddr> {
        let spec = &self.plan.target.spec;
        let Some(name) = &spec.ready.port else {
            return self.client_addr(node);
        };
        let port = spec
            .ports
            .get(name)
            .ok_or_else(|| anyhow!("ready port {name} is not declared"))?;
        Ok(SocketAddr::new(self.host(node)?.ip.into(), *port))
    }

    /// A fresh client bound to `home`.
    pub fn client(&self, home: &str) -> Result<Client> {
        let addrs = self
            .plan
            .nodes
            .iter()
            .map(|n| Ok((n.clone(), self.client_addr(n)?)))
            .collect::<Result<BTreeMap<_, _>>>()?;
        let spec = &self.plan.target.spec;
        let serializable = spec.client.serializable || self.plan.workload.serializable;
        Ok(match spec.client.protocol {
            Protocol::Raftkv => Client::Raftkv(
                client::raftkv::RaftkvClient::new(home.to_string(), addrs)
                    .with_twins(self.twins_up.subscribe())
                    .with_serializable(serializable),
            ),
            Protocol::Pbft => Client::Pbft(Box::new(
                client::pbft::PbftClient::new(home.to_string(), addrs)
                    .with_twins(self.twins_up.subscribe()),
            )),
            Protocol::Etcd => Client::Etcd(client::etcd::EtcdClient::new(
                home.to_string(),
                addrs,
                serializable,
            )),
            Protocol::Stdio => Client::Stdio(Box::new(client::stdio::StdioClient::new(
                home.to_string(),
                self.adapter_spec(home, &addrs, serializable)?,
            ))),
        })
    }

    /// How to start a stdio adapter for a worker bound to `home`: the command's templates
    /// filled for that node, and the `FAULTLINE_*` environment the README documents.
    fn adapter_spec(
        &self,
        home: &str,
        addrs: &BTreeMap<String, SocketAddr>,
        serializable: bool,
    ) -> Result<client::stdio::AdapterSpec> {
        let vars = self.vars(home)?;
        let argv = self.command_argv(&self.plan.target.spec.client.command, &vars)?;
        let home_addr = addrs
            .get(home)
            .ok_or_else(|| anyhow!("no client address for node {home}"))?;
        let endpoints = addrs
            .iter()
            .map(|(n, a)| format!("{n}={a}"))
            .collect::<Vec<_>>()
            .join(",");
        let dir = self.node_dir(home);
        let env = BTreeMap::from([
            ("FAULTLINE_NODE".to_string(), home.to_string()),
            ("FAULTLINE_ENDPOINT".to_string(), home_addr.to_string()),
            ("FAULTLINE_ENDPOINTS".to_string(), endpoints),
            (
                "FAULTLINE_SERIALIZABLE".to_string(),
                serializable.to_string(),
            ),
            (
                "FAULTLINE_OP_TIMEOUT_MS".to_string(),
                self.plan.workload.op_timeout.as_millis().to_string(),
            ),
            // Where an adapter may keep logs of its own (a client library's): the node's
            // directory of the run, kept with the report like adapter-stderr.log.
            ("FAULTLINE_LOG_DIR".to_string(), dir.display().to_string()),
        ]);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(client::stdio::AdapterSpec {
            argv,
            env,
            cwd: self.plan.target.dir.clone(),
            stderr: dir.join("adapter-stderr.log"),
        })
    }

    /// A copy's committed log for the agreement oracle, as target.yaml `inspect` says to
    /// read it; the error is why there is none (shown in results.json, so in words).
    /// `copy` is a node or a running twin ([`twin_key`]): a twin binds its node's
    /// address, so it is reached from inside its own namespace.
    pub async fn inspect(&self, copy: &str, limit: Duration) -> Result<Vec<Entry>, String> {
        let spec = &self.plan.target.spec;
        let (node, netns) = match self.twin_netns(copy) {
            Some(twin) => twin.map_err(|e| format!("{e:#}"))?,
            None => (copy.to_string(), None),
        };
        match &spec.inspect {
            None => Err("the target declares no `inspect`".into()),
            Some(Inspect::Client) => match spec.client.protocol {
                // pbftkv answers `log` in raftkv's page shape: sequence numbers as
                // indexes, term 0, the executed request's digest as the op.
                Protocol::Raftkv | Protocol::Pbft => {
                    let addr = self.client_addr(&node).map_err(|e| format!("{e:#}"))?;
                    let at = client::Endpoint { addr, netns };
                    client::raftkv::committed_log(copy, &at, limit, INSPECT_MAX_BYTES).await
                }
                // Refused when target.yaml is validated; kept as words for an old plan.
                p => Err(format!(
                    "the {} client has no request for a node's committed log",
                    p.as_str()
                )),
            },
            Some(Inspect::Command(templates)) => {
                let vars = if netns.is_some() {
                    self.twin_vars(&node)
                } else {
                    self.vars(&node)
                }
                .map_err(|e| format!("{e:#}"))?;
                let mut argv = self
                    .command_argv(templates, &vars)
                    .map_err(|e| format!("{e:#}"))?;
                // A twin's command runs in the twin's namespace, where the node's
                // address is the twin.
                if let Some(ns) = &netns {
                    let mut wrapped = vec!["ip".into(), "netns".into(), "exec".into(), ns.clone()];
                    wrapped.append(&mut argv);
                    argv = wrapped;
                }
                let text = run_inspect(&argv, &self.plan.target.dir, limit).await?;
                crate::checker::agreement::parse_log(&text)
                    .map_err(|e| format!("`{}` printed {e}", shown(&argv)))
            }
        }
    }

    /// For a twin's name: its node and its namespace; `None` for a node's own name.
    fn twin_netns(&self, copy: &str) -> Option<Result<(String, Option<String>)>> {
        let node = crate::spec::schedule::twin_of(copy)?;
        if !self.plan.nodes.iter().any(|n| n == node) {
            return None;
        }
        Some(self.twin_place(node).and_then(|p| {
            let ns = p
                .host
                .netns
                .ok_or_else(|| anyhow!("the twin of {node} has no namespace"))?;
            Ok((node.to_string(), Some(ns)))
        }))
    }

    /// Inspect `copies` (nodes or running twins) at once and write what each gave into
    /// `dir`: `<copy>.jsonl`, the log as JSON lines `{"index", "entry"}` (data, written as
    /// the target said it), or `<copy>.error`, why there is none. The runner's check reads
    /// them back, as `faultline report --recheck` does. Each copy may take `limit`.
    pub async fn save_logs(&self, dir: &Path, copies: &[String], limit: Duration) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let results = futures::future::join_all(copies.iter().map(|c| async move {
            if !self.running(c).await {
                return Err("not running when the logs were read".to_string());
            }
            self.inspect(c, limit).await
        }))
        .await;
        for (copy, r) in copies.iter().zip(results) {
            match r {
                Ok(entries) => {
                    let mut text = Vec::new();
                    for e in &entries {
                        serde_json::to_writer(&mut text, e)?;
                        text.push(b'\n');
                    }
                    crate::store::write_atomic(&dir.join(format!("{copy}.jsonl")), &text)?;
                    tracing::info!("inspect: {copy}: {} committed entries", entries.len());
                }
                Err(why) => {
                    crate::store::write_atomic(&dir.join(format!("{copy}.error")), why.as_bytes())?;
                    tracing::info!("inspect: {copy}: no log: {why}");
                }
            }
        }
        Ok(())
    }

    /// The directory a run keeps its copies' committed logs in ([`LOGS_DIR`]).
    pub fn logs_dir(&self) -> PathBuf {
        self.run_dir.join(LOGS_DIR)
    }

    /// Start one node (its data dir is kept across restarts).
    pub async fn start_node(&self, node: &str) -> Result<()> {
        let host = self.host(node)?.clone();
        let vars = self.vars(node)?;
        self.start_proc(node, node, &host, vars).await
    }

    /// Make `node`'s twin namespace (README: Nemesis, twin), on first use; the twin
    /// process is started by [`Cluster::start_twin`], once its peers' views are set.
    pub async fn prepare_twin(&self, node: &str) -> Result<crate::hosts::twin::TwinPlace> {
        let Hosts::Local(_) = &*self.hosts else {
            bail!("twins run only on local hosts (network namespaces of this machine)");
        };
        let (hosts, reg, node) = (self.hosts.clone(), self.reg.clone(), node.to_string());
        tokio::task::spawn_blocking(move || match &*hosts {
            Hosts::Local(l) => l.add_twin(&reg, &node),
            _ => bail!("twins run only on local hosts"),
        })
        .await
        .context("setting up a twin")?
    }

    /// Start `node`'s twin in its namespace ([`Cluster::prepare_twin`]): identity files
    /// are copied from the node's data dir, and it runs the node's start command with the
    /// node's template values but its own `{data_dir}`. With [`TwinState::Fork`] the
    /// twin's data dir is first a copy of the node's, taken while the node is frozen
    /// (unless `frozen` says a pause holds it already). Its output goes to
    /// `nodes/<node>-twin/`. A twin already running is left as it is.
    pub async fn start_twin(&self, node: &str, state: TwinState, frozen: bool) -> Result<()> {
        let identity =
            self.plan.target.spec.identity.clone().ok_or_else(|| {
                anyhow!("target {} declares no identity", self.plan.target.spec.name)
            })?;
        let place = self.twin_place(node)?;
        let key = twin_key(node);
        if self.running(&key).await {
            return Ok(());
        }
        let vars = self.vars(node)?;
        let twin_vars = self.twin_vars(node)?;
        // A fork's copy holds the identity files already (they live under `{data_dir}`),
        // as of the frozen instant: copying them again from the running node could tear
        // a file the node is writing.
        let copy_identity = match state {
            TwinState::Fork => {
                self.fork_data_dir(node, frozen).await?;
                &[][..]
            }
            TwinState::Fresh => &identity.files[..],
        };
        for t in copy_identity {
            let (from, to) = (
                PathBuf::from(fill(t, &vars)?),
                PathBuf::from(fill(t, &twin_vars)?),
            );
            if let Some(dir) = to.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            std::fs::copy(&from, &to).with_context(|| {
                format!(
                    "twin of {node}: cannot copy its identity file {} (target.yaml identity.files)",
                    from.display()
                )
            })?;
        }
        self.start_proc(&key, node, &place.host, twin_vars).await?;
        let at = client::Endpoint {
            addr: self.client_addr(node)?,
            netns: place.host.netns.clone(),
        };
        self.twins_up.send_modify(|t| {
            t.insert(node.to_string(), at);
        });
        Ok(())
    }

    /// Replace the twin's data dir with a copy of `node`'s. A running node is frozen
    /// (SIGSTOP to its group) for the copy and thawed after it, whether or not the copy
    /// worked, so the twin starts from one instant of the node's disk state — the state a
    /// crash at that instant would leave, which the node must recover from anyway.
    async fn fork_data_dir(&self, node: &str, frozen: bool) -> Result<()> {
        if self.hosts.remote().is_some() {
            bail!("twins run only on local hosts");
        }
        let from = self.data_dir(node);
        let to = self.data_root.join(twin_key(node));
        let freeze = !frozen && self.running(node).await;
        if freeze {
            self.signal(node, Signal::SIGSTOP)
                .await
                .with_context(|| format!("freezing {node} to fork its twin"))?;
            // kill() returns before every thread has stopped: one may still finish a
            // write or a rename. Copy only once the kernel says all are stopped.
            if let Some(pid) = self.pid(node).await {
                let deadline = Instant::now() + FREEZE_WAIT;
                while !all_threads_stopped(pid) && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
        let copied = {
            let (from, to) = (from.clone(), to.clone());
            tokio::task::spawn_blocking(move || {
                if to.exists() {
                    std::fs::remove_dir_all(&to)
                        .with_context(|| format!("cannot empty {}", to.display()))?;
                }
                copy_tree(&from, &to)
            })
            .await
            .context("copying a data dir")
            .and_then(|r| r)
        };
        if freeze {
            self.signal(node, Signal::SIGCONT)
                .await
                .with_context(|| format!("thawing {node} after forking its twin"))?;
        }
        let bytes = copied.with_context(|| {
            format!(
                "twin of {node}: cannot copy its data dir {} to {}",
                from.display(),
                to.display()
            )
        })?;
        tracing::info!("twin of {node}: forked from its data dir ({bytes} bytes)");
        Ok(())
    }

    /// A twin's template values: its node's, with a data dir of its own.
    fn twin_vars(&self, node: &str) -> Result<BTreeMap<String, String>> {
        let mut vars = self.vars(node)?;
        vars.insert(
            "data_dir".into(),
            self.data_root.join(twin_key(node)).display().to_string(),
        );
        Ok(vars)
    }

    /// Where `node`'s twin lives (whether or not it was started).
    pub fn twin_place(&self, node: &str) -> Result<crate::hosts::twin::TwinPlace> {
        match &*self.hosts {
            Hosts::Local(l) => l.twin_place(&self.reg.run_id(), node),
            _ => bail!("twins run only on local hosts (network namespaces of this machine)"),
        }
    }

    /// Fails, with the last lines of its stderr, if `node`'s twin has exited (it could not
    /// bind its node's address, its identity was refused): a twin that is not there
    /// must not count as a fault that landed.
    pub async fn twin_alive(&self, node: &str) -> Result<()> {
        let key = twin_key(node);
        self.check_exited(&key)
            .await
            .with_context(|| format!("twin of {node}"))?;
        if self.running(&key).await {
            Ok(())
        } else {
            bail!("the twin of {node} is not running")
        }
    }

    /// Stop `node`'s twin gracefully, as a node is stopped; its logs stay in
    /// `nodes/<node>-twin/`.
    pub async fn stop_twin(&self, node: &str) -> Result<()> {
        self.twins_up.send_modify(|t| {
            t.remove(node);
        });
        self.stop_node(&twin_key(node)).await
    }

    /// Start a process for `node` under `key` (the node's name, or its twin's) on `host`
    /// with template values `vars`.
    async fn start_proc(
        &self,
        key: &str,
        node: &str,
        host: &NodeHost,
        vars: BTreeMap<String, String>,
    ) -> Result<()> {
        let spec = &self.plan.target.spec;
        let mut argv = spec
            .start
            .iter()
            .map(|t| fill(t, &vars))
            .collect::<Result<Vec<_>>>()?;
        // Filled like `start`, so an argument can name a file beside target.yaml
        // (`-c {target_dir}/sync-always.conf`).
        for a in &self.plan.target_args {
            argv.push(fill(a, &vars)?);
        }
        let mut env = BTreeMap::new();
        for (k, t) in &spec.env {
            env.insert(k.clone(), fill(t, &vars)?);
        }
        if let Some(c) = &self.clocks {
            env.extend(c.env_for(node).await?);
        }
        let dir = self.node_dir(key);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let data = PathBuf::from(
            vars.get("data_dir")
                .ok_or_else(|| anyhow!("no data dir for {key}"))?,
        );
        let logs = self.log_dir(key);
        if self.hosts.remote().is_none() {
            std::fs::create_dir_all(&data)
                .with_context(|| format!("cannot create {}", data.display()))?;
        }
        if self.procs.lock().await.contains_key(key) {
            bail!("node {key} is already running");
        }
        let restarts = {
            let mut starts = self.starts.lock().await;
            let n = starts.entry(key.to_string()).or_insert(0);
            *n += 1;
            *n - 1
        };
        // Each start gets its own log files so a restart does not overwrite the evidence.
        let suffix = if restarts == 0 {
            String::new()
        } else {
            format!(".{restarts}")
        };
        let cgroup = match self.hosts.remote() {
            // Recorded before the start script creates it on the host.
            Some(h) => match h.cgroup(node) {
                Some(cg) => {
                    self.reg.set_remote_cgroup(node, cg)?;
                    Some(PathBuf::from(cg))
                }
                None => None,
            },
            None => self.cgroups.as_ref().map(|c| c.node(key)).transpose()?,
        };
        let spawn = SpawnSpec {
            argv: argv.clone(),
            env,
            cwd: data.clone(),
            stdout: logs.join(format!("stdout{suffix}.log")),
            stderr: logs.join(format!("stderr{suffix}.log")),
            die_with_controller: !self.plan.leave_running,
            cgroup: cgroup.clone(),
        };
        let spawned = self
            .hosts
            .spawn(host, &spawn)
            .await
            .with_context(|| format!("node {key}: cannot start `{}`", argv.join(" ")))?;
        let proc = match spawned {
            Spawned::Local(child) => {
                let pid = child
                    .id()
                    .ok_or_else(|| anyhow!("node {node}: exited before it could be recorded"))?
                    as i32;
                let id = ProcId::of(pid)
                    .ok_or_else(|| anyhow!("node {node}: process {pid} vanished at once"))?;
                self.reg.add_group(id)?;
                NodeProc::Local {
                    child: Box::new(child),
                    id,
                    cgroup,
                    detached: false,
                }
            }
            Spawned::Remote(p) => {
                self.reg.add_remote_group(node, p)?;
                NodeProc::Remote {
                    p,
                    cgroup: cgroup.map(|c| c.display().to_string()),
                    detached: false,
                }
            }
        };
        let pid = proc.pid();
        self.procs.lock().await.insert(key.to_string(), proc);
        tracing::info!("started {key} (pid {pid}): {}", argv.join(" "));
        Ok(())
    }

    /// If `node` has exited, a start-failure error with its command and stderr tail.
    async fn check_exited(&self, node: &str) -> Result<()> {
        let mut procs = self.procs.lock().await;
        let status = match procs.get_mut(node) {
            Some(NodeProc::Local {
                child,
                id,
                cgroup,
                detached,
            }) => match child.try_wait()? {
                Some(status) if cgroup.as_deref().is_some_and(cgroup::populated) => {
                    if !*detached {
                        *detached = true;
                        tracing::info!("{node}: its start command exited ({status}) and left the node running in the background; it is tracked in its cgroup");
                    }
                    return Ok(());
                }
                Some(status) => {
                    self.reg.remove_group(id.pid)?;
                    status.to_string()
                }
                None => return Ok(()),
            },
            Some(NodeProc::Remote {
                p,
                cgroup,
                detached,
            }) => match self.remote_state(node, *p, cgroup.as_deref()).await? {
                RemoteState::Running => return Ok(()),
                RemoteState::Detached => {
                    if !*detached {
                        *detached = true;
                        tracing::info!(
                            "{node}: its start command exited and left the node running in the background; it is tracked in its cgroup on its host"
                        );
                    }
                    return Ok(());
                }
                RemoteState::Gone => {
                    self.reg.remove_remote_group(node, p.pid)?;
                    "it is gone".into()
                }
            },
            None => return Ok(()),
        };
        procs.remove(node);
        drop(procs);
        self.fetch_logs(node).await;
        let tail = stderr_tail(&self.node_dir(node));
        bail!("node {node} exited during start-up ({status}); last lines of its stderr:\n{tail}")
    }

    async fn remote_state(
        &self,
        node: &str,
        p: RemoteProc,
        cgroup: Option<&str>,
    ) -> Result<RemoteState> {
        match self.hosts.remote() {
            Some(h) => h.conn(node)?.state(p, cgroup).await,
            None => Ok(RemoteState::Gone),
        }
    }

    /// Copy an SSH node's stdout/stderr files (and declared logs) into `nodes/<node>/`;
    /// problems are returned, not fatal: logs are evidence, not the run.
    async fn fetch_logs(&self, node: &str) -> Vec<String> {
        let Some(h) = self.hosts.remote() else {
            return Vec::new();
        };
        let mut problems = Vec::new();
        let conn = match h.conn(node) {
            Ok(c) => c,
            Err(e) => return vec![format!("{e:#}")],
        };
        let logs = self.log_dir(node).display().to_string();
        if let Err(e) = conn.download_dir(&logs, &self.node_dir(node)).await {
            problems.push(format!("{e:#}"));
        }
        problems
    }

    /// Start every node and wait until the cluster answers.
    pub async fn start_all(&self) -> Result<()> {
        self.upload_binaries().await?;
        self.probe_remote_clocks().await?;
        self.mount_data_dirs()?;
        for n in self.plan.nodes.clone() {
            self.start_node(&n).await?;
        }
        self.wait_ready(self.plan.target.spec.ready.timeout).await
    }

    /// Whether the cluster serves now, by the target's readiness probe (one try).
    pub async fn serves(&self, timeout: Duration) -> bool {
        match self.plan.target.spec.ready.check {
            ReadyCheck::Client => {
                let first = self.plan.nodes.first().cloned().unwrap_or_default();
                let Ok(mut c) = self.client(&first) else {
                    return false;
                };
                let r = c.cluster_ready(timeout).await;
                c.close().await;
                r.is_ok()
            }
            ReadyCheck::Tcp => self.tcp_ready().await.is_ok(),
            ReadyCheck::Http => self.http_ready().await.is_ok(),
        }
    }

    /// Wait until every node is up and the cluster serves, or fail naming what is missing.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            for n in self.plan.nodes.clone() {
                self.check_exited(&n).await?;
            }
            let probe = match self.plan.target.spec.ready.check {
                ReadyCheck::Client => {
                    let first = self.plan.nodes.first().cloned().unwrap_or_default();
                    let mut c = self.client(&first)?;
                    let r = c.cluster_ready(Duration::from_millis(500)).await;
                    c.close().await;
                    r
                }
                ReadyCheck::Tcp => self.tcp_ready().await,
                ReadyCheck::Http => self.http_ready().await,
            };
            let last = match probe {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                let mut tails = String::new();
                for n in &self.plan.nodes {
                    self.fetch_logs(n).await;
                    tails.push_str(&format!(
                        "--- {n} stderr (last lines) ---\n{}\n",
                        stderr_tail(&self.node_dir(n))
                    ));
                }
                bail!(
                    "the cluster was not ready within {}: {last}\n{tails}",
                    humantime::format_duration(timeout)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `GET ready.path` answers 200 on every node's probed port (`ready.port` or the
    /// client port).
    async fn http_ready(&self) -> Result<(), String> {
        let path = self.plan.target.spec.ready.path.as_deref().unwrap_or("/");
        for n in &self.plan.nodes {
            let addr = self.ready_addr(n).map_err(|e| e.to_string())?;
            let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
            let resp = client::http::HttpConn::new(addr)
                .request("GET", path, None, deadline)
                .await
                .map_err(|e| format!("{n}: GET {path}: {e}"))?;
            if resp.status != 200 {
                return Err(format!(
                    "{n}: GET {path} answered HTTP {}: {}",
                    resp.status,
                    String::from_utf8_lossy(&resp.body)
                ));
            }
        }
        Ok(())
    }

    async fn tcp_ready(&self) -> Result<(), String> {
        for n in &self.plan.nodes {
            let addr = self.ready_addr(n).map_err(|e| e.to_string())?;
            tokio::time::timeout(
                Duration::from_millis(500),
                tokio::net::TcpStream::connect(addr),
            )
            .await
            .map_err(|_| format!("{n}: connecting to {addr} (its readiness port) timed out"))?
            .map_err(|e| format!("{n}: cannot connect to {addr} (its readiness port): {e}"))?;
        }
        Ok(())
    }

    /// Send `sig` to a node's process group.
    pub async fn signal(&self, node: &str, sig: Signal) -> Result<()> {
        let procs = self.procs.lock().await;
        match procs
            .get(node)
            .ok_or_else(|| anyhow!("node {node} is not running"))?
        {
            NodeProc::Local {
                cgroup: Some(cg), ..
            } => cgroup::signal(cg, sig),
            NodeProc::Local { id, .. } => {
                if id.alive() {
                    killpg(Pid::from_raw(id.pid), sig)
                        .with_context(|| format!("cannot send {sig} to node {node}"))?;
                }
            }
            NodeProc::Remote { p, cgroup, .. } => {
                let (p, cgroup) = (*p, cgroup.clone());
                drop(procs);
                self.remote_signal(node, p, cgroup.as_deref(), sig).await?;
            }
        }
        Ok(())
    }

    async fn remote_signal(
        &self,
        node: &str,
        p: RemoteProc,
        cgroup: Option<&str>,
        sig: Signal,
    ) -> Result<()> {
        let name = sig.as_str().trim_start_matches("SIG");
        match self.hosts.remote() {
            Some(h) => h.conn(node)?.signal(p, cgroup, name).await,
            None => Ok(()),
        }
    }

    /// The PID of the node's process (its group's leader), while it runs.
    pub async fn pid(&self, node: &str) -> Option<i32> {
        self.procs.lock().await.get(node).map(NodeProc::pid)
    }

    /// Whether `node`'s process on this machine has exited (it is still listed, so the
    /// final phase reports its start-up failure as before); `false` while it runs, for
    /// a node not started, and on SSH hosts.
    pub async fn has_exited(&self, node: &str) -> bool {
        match self.procs.lock().await.get_mut(node) {
            Some(NodeProc::Local { child, cgroup, .. }) => {
                matches!(child.try_wait(), Ok(Some(_)))
                    && !cgroup.as_deref().is_some_and(cgroup::populated)
            }
            _ => false,
        }
    }

    pub async fn running(&self, node: &str) -> bool {
        self.procs.lock().await.contains_key(node)
    }

    /// SIGKILL the node's group and wait until the process is really gone (some targets
    /// hold their ports until then, so a restart would fail).
    pub async fn kill_node(&self, node: &str) -> Result<()> {
        self.end_node(node, Signal::SIGKILL, Duration::ZERO).await
    }

    /// Graceful stop: the target's stop signal, then SIGKILL after its grace period.
    pub async fn stop_node(&self, node: &str) -> Result<()> {
        let stop = &self.plan.target.spec.stop;
        let sig = signal_by_name(&stop.signal).unwrap_or(Signal::SIGTERM);
        self.end_node(node, sig, stop.grace).await
    }

    async fn end_node(&self, node: &str, sig: Signal, grace: Duration) -> Result<()> {
        let Some(p) = self.procs.lock().await.remove(node) else {
            return Ok(());
        };
        let (mut child, id) = match p {
            NodeProc::Local {
                child,
                id,
                cgroup: Some(cg),
                ..
            } => return self.end_cgroup(node, child, id, &cg, sig, grace).await,
            NodeProc::Local { child, id, .. } => (child, id),
            NodeProc::Remote { p, cgroup, .. } => {
                return self
                    .end_remote(node, p, cgroup.as_deref(), sig, grace)
                    .await
            }
        };
        let p = &mut child;
        let pg = Pid::from_raw(id.pid);
        if id.alive() {
            // A paused node cannot act on SIGTERM; let it run so it can exit.
            let _ = killpg(pg, Signal::SIGCONT);
            let _ = killpg(pg, sig);
        }
        let exited = if grace.is_zero() {
            false
        } else {
            tokio::time::timeout(grace, p.wait()).await.is_ok()
        };
        if !exited {
            let _ = killpg(pg, Signal::SIGKILL);
            tokio::time::timeout(Duration::from_secs(10), p.wait())
                .await
                .map_err(|_| anyhow!("node {node} (pid {}) did not exit after SIGKILL", id.pid))?
                .with_context(|| format!("waiting for node {node}"))?;
        }
        // The group may hold other processes the node started; wait for the leader only,
        // then kill the rest of the group for good measure.
        let _ = killpg(pg, Signal::SIGKILL);
        self.reg.remove_group(id.pid)?;
        tracing::info!("{node} ended ({sig})");
        Ok(())
    }

    /// [`Cluster::end_node`] for a node in its own cgroup: the node is ended when its cgroup
    /// is empty, not when the start command exits (which a daemonizing one did long ago).
    async fn end_cgroup(
        &self,
        node: &str,
        mut child: Box<tokio::process::Child>,
        id: ProcId,
        cg: &Path,
        sig: Signal,
        grace: Duration,
    ) -> Result<()> {
        if !grace.is_zero() {
            // A paused node cannot act on SIGTERM; let it run so it can exit.
            cgroup::signal(cg, Signal::SIGCONT);
            cgroup::signal(cg, sig);
        }
        if grace.is_zero() || !cgroup_empties(cg, grace).await {
            cgroup::kill_all(cg).with_context(|| format!("cannot kill node {node}"))?;
            if !cgroup_empties(cg, Duration::from_secs(10)).await {
                bail!(
                    "node {node}: processes {:?} in its cgroup {} did not exit after cgroup.kill",
                    cgroup::pids(cg),
                    cg.display()
                );
            }
        }
        // The start command was in the cgroup too, so it has exited: reap it.
        tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .map_err(|_| anyhow!("node {node} (pid {}) was never reaped", id.pid))?
            .with_context(|| format!("waiting for node {node}"))?;
        self.reg.remove_group(id.pid)?;
        tracing::info!("{node} ended ({sig})");
        Ok(())
    }

    /// [`Cluster::end_node`] for a daemon on an SSH host: the same signals, and the wait
    /// for its exit happens on the host. With a cgroup there, as locally: the node is
    /// ended when its cgroup is empty, and a kill is `cgroup.kill`.
    async fn end_remote(
        &self,
        node: &str,
        p: RemoteProc,
        cgroup: Option<&str>,
        sig: Signal,
        grace: Duration,
    ) -> Result<()> {
        let Some(h) = self.hosts.remote() else {
            return Ok(());
        };
        let conn = h.conn(node)?;
        if cgroup.is_none() || !grace.is_zero() {
            // A paused node cannot act on SIGTERM; let it run so it can exit.
            conn.signal(p, cgroup, "CONT").await?;
            self.remote_signal(node, p, cgroup, sig).await?;
        }
        let exited = !grace.is_zero() && conn.wait_gone(p, cgroup, grace).await?;
        if !exited {
            match cgroup {
                Some(cg) => conn
                    .kill_cgroup(cg)
                    .await
                    .with_context(|| format!("node {node}: cannot kill its cgroup"))?,
                None => {
                    conn.signal(p, None, "KILL").await?;
                    if !conn.wait_gone(p, None, Duration::from_secs(10)).await? {
                        bail!(
                            "node {node} (pid {} on its host) did not exit after SIGKILL",
                            p.pid
                        );
                    }
                }
            }
        }
        self.reg.remove_remote_group(node, p.pid)?;
        tracing::info!("{node} ended ({sig})");
        Ok(())
    }

    /// Stop every node and twin (gracefully, in parallel).
    pub async fn stop_all(&self) -> Vec<String> {
        let mut nodes = self.plan.nodes.clone();
        for key in self.procs.lock().await.keys() {
            if !nodes.contains(key) {
                nodes.push(key.clone());
            }
        }
        let results = futures::future::join_all(nodes.iter().map(|n| self.stop_node(n))).await;
        results
            .into_iter()
            .zip(nodes)
            .filter_map(|(r, n)| r.err().map(|e| format!("{n}: {e:#}")))
            .collect()
    }

    /// Copy the target's declared log files (and, from SSH hosts, the node's output) into
    /// `nodes/<node>/`.
    pub async fn collect_logs(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for node in &self.plan.nodes {
            problems.extend(self.fetch_logs(node).await);
            let Ok(vars) = self.vars(node) else { continue };
            for t in &self.plan.target.spec.logs {
                let Ok(src) = fill(t, &vars) else { continue };
                let src = PathBuf::from(src);
                let Some(name) = src.file_name() else {
                    continue;
                };
                let dst = self.node_dir(node).join(name);
                if let Some(h) = self.hosts.remote() {
                    let got = async {
                        let path = src.display().to_string();
                        let file = crate::shell::quote(&path)?;
                        let text = h
                            .conn(node)?
                            .check(&format!("cat {file}"), "reading a log")
                            .await?;
                        crate::store::write_atomic(&dst, text.as_bytes())
                    }
                    .await;
                    if let Err(e) = got {
                        problems.push(format!("{node}: cannot collect {}: {e:#}", src.display()));
                    }
                } else if let Err(e) = copy_atomic(&src, &dst) {
                    problems.push(format!("{node}: cannot collect {}: {e:#}", src.display()));
                }
            }
        }
        problems
    }
}

impl Cluster {
    fn lock_mounts(
        &self,
    ) -> std::sync::MutexGuard<'_, BTreeMap<String, crate::hosts::lazyfs::Mount>> {
        self.mounts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Put every node's data dir on a mount of its own of the power-failure filesystem,
    /// over a backing directory beside it (`<node>.disk`: what survives a power failure),
    /// if the plan asks for it. Each mount point is recorded in the registry before it is
    /// mounted. Nodes already mounted are left as they are.
    pub fn mount_data_dirs(&self) -> Result<()> {
        if self.plan.data_fs != DataFs::Lazyfs {
            return Ok(());
        }
        if self.hosts.remote().is_some() {
            bail!(
                "the power-failure filesystem is served on this machine; SSH hosts cannot have it"
            );
        }
        for node in &self.plan.nodes {
            if self.lock_mounts().contains_key(node) {
                continue;
            }
            let mountpoint = self.data_dir(node);
            let backing = self.data_root.join(format!("{node}.disk"));
            for d in [&mountpoint, &backing] {
                std::fs::create_dir_all(d)
                    .with_context(|| format!("cannot create {}", d.display()))?;
            }
            self.reg.add_mount(&mountpoint)?;
            let mount = crate::hosts::lazyfs::mount(&backing, &mountpoint)
                .with_context(|| format!("node {node}: data dir"))?;
            tracing::info!(
                "{node}: data dir {} on the power-failure filesystem (disk: {})",
                mountpoint.display(),
                backing.display()
            );
            self.lock_mounts().insert(node.clone(), mount);
        }
        Ok(())
    }

    /// Drop every write to `node`'s data dir that it did not fsync, as a power cut would:
    /// what was dropped. The node must be dead (the `power-fail` fault kills it first).
    pub fn power_fail(&self, node: &str) -> Result<crate::hosts::lazyfs::Lost> {
        let mounts = self.lock_mounts();
        let mount = mounts.get(node).ok_or_else(|| {
            anyhow!("node {node}: its data dir is not on the power-failure filesystem (data_fs: lazyfs)")
        })?;
        Ok(mount.power_fail())
    }

    /// The files of `node`'s data dir that match the target's `data_files` globs (filled
    /// with the node's template values), sorted: what a `corrupt` fault may damage. Only
    /// regular files count; a link is not followed out of the data dir.
    pub fn data_files(&self, node: &str) -> Result<Vec<PathBuf>> {
        if self.hosts.remote().is_some() {
            bail!("node {node}: its data dir is on an SSH host; faultline damages files only on this machine");
        }
        let spec = &self.plan.target.spec;
        if spec.data_files.is_empty() {
            bail!("target {} declares no data_files", spec.name);
        }
        let vars = self.vars(node)?;
        let dir = self.data_dir(node);
        // The data dir's own path is matched literally: only the declared part is a glob.
        let root = glob::Pattern::escape(&dir.display().to_string());
        let mut files = std::collections::BTreeSet::new();
        for t in &spec.data_files {
            let rel = fill(t, &vars)?;
            let pattern = format!("{root}/{rel}");
            let paths = glob::glob(&pattern).with_context(|| {
                format!("node {node}: data_files entry {t:?} is not a valid glob")
            })?;
            for p in paths.flatten() {
                if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_file()) {
                    files.insert(p);
                }
            }
        }
        Ok(files.into_iter().collect())
    }

    /// Unmount every node's power-failure filesystem (after the nodes stopped); problems
    /// are returned, and a mount that could not be unmounted stays recorded for the
    /// registry's teardown to detach.
    pub fn unmount_data_dirs(&self) -> Vec<String> {
        let mounts = std::mem::take(&mut *self.lock_mounts());
        let mut problems = Vec::new();
        for (node, mount) in mounts {
            let mountpoint = mount.mountpoint().to_path_buf();
            match mount.unmount() {
                Ok(()) => {
                    if let Err(e) = self.reg.remove_mount(&mountpoint) {
                        problems.push(format!("{node}: {e:#}"));
                    }
                }
                Err(e) => problems.push(format!("{node}: {e:#}")),
            }
        }
        problems
    }
}

/// How long a fork waits for a frozen node's threads to stop.
const FREEZE_WAIT: Duration = Duration::from_secs(2);

/// Whether every thread of process `pid` is stopped (state `T` or `t` in
/// `/proc/<pid>/task/<tid>/stat`); a process that is gone counts as stopped.
fn all_threads_stopped(pid: i32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return true;
    };
    tasks.filter_map(|t| t.ok()).all(|t| {
        std::fs::read_to_string(t.path().join("stat")).map_or(true, |stat| {
            // The state follows the command name, which is in parentheses and may hold
            // spaces or parentheses itself.
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_none_or(|state| matches!(state, "T" | "t" | "Z" | "X"))
        })
    })
}

/// Copy the directory tree `from` into `to` (created): directories and regular files,
/// their contents and permissions; anything else (a socket, a link) is left out, as it is
/// no part of a node's state on disk. A file that vanished between listing and copying
/// (a frozen node holds none open for that, but a node that was not running may have been
/// cleaned up by its own start) is left out too. The bytes copied.
fn copy_tree(from: &Path, to: &Path) -> Result<u64> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    let mut bytes = 0;
    for entry in
        std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?
    {
        let entry = entry.with_context(|| format!("cannot read {}", from.display()))?;
        let kind = entry.file_type()?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if kind.is_dir() {
            bytes += copy_tree(&src, &dst)?;
        } else if kind.is_file() {
            match std::fs::copy(&src, &dst) {
                Ok(n) => bytes += n,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("cannot copy {} to {}", src.display(), dst.display())
                    })
                }
            }
        }
    }
    Ok(bytes)
}

/// The name a node's twin runs under: its process, cgroup, data dir and `nodes/` dir.
pub fn twin_key(node: &str) -> String {
    crate::spec::schedule::twin_name(node)
}

/// Wait until no process is left in the cgroup, up to `limit`; whether none is.
async fn cgroup_empties(cg: &Path, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if !cgroup::populated(cg) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Copy a node's log file into the run directory through the store's atomic write, so a
/// report rendered meanwhile never reads a half-copied log.
fn copy_atomic(src: &Path, dst: &Path) -> Result<()> {
    let mut from =
        std::fs::File::open(src).with_context(|| format!("cannot open {}", src.display()))?;
    crate::store::write_atomic_with(dst, |w| {
        std::io::copy(&mut from, w).with_context(|| format!("cannot copy {}", src.display()))?;
        Ok(())
    })
}

/// Where a run's node data dirs (and clock files) live: outside the run directory, removed
/// at teardown.
pub fn data_root(run_id: &str) -> PathBuf {
    std::env::temp_dir().join(format!("faultline-data-{run_id}"))
}

/// Whether a binary is copied to SSH hosts: anything but system binaries, which the hosts
/// are provisioned with (the Vagrantfile installs etcd, for one).
fn uploads(binary: &Path) -> bool {
    !["/usr/", "/bin/", "/sbin/"]
        .iter()
        .any(|p| binary.starts_with(p))
}

/// The last lines of the newest stderr log of a node.
pub fn stderr_tail(dir: &Path) -> String {
    let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
    if let Ok(it) = std::fs::read_dir(dir) {
        for e in it.flatten() {
            if e.file_name().to_string_lossy().starts_with("stderr") {
                let t = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH);
                if newest.as_ref().is_none_or(|(nt, _)| t >= *nt) {
                    newest = Some((t, e.path()));
                }
            }
        }
    }
    let Some((_, path)) = newest else {
        return "(no stderr captured)".into();
    };
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(STDERR_TAIL_LINES);
    if lines.is_empty() {
        "(stderr is empty)".into()
    } else {
        lines[start..].join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forked_data_dir_holds_the_files_and_directories_of_the_original() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("n1"), dir.path().join("n1-twin"));
        std::fs::create_dir_all(from.join("wal")).unwrap();
        std::fs::write(from.join("state.json"), b"{\"view\":3}").unwrap();
        std::fs::write(from.join("wal/0001.log"), vec![7u8; 1000]).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", from.join("link")).unwrap();
        assert_eq!(copy_tree(&from, &to).unwrap(), 1010);
        assert_eq!(
            std::fs::read(to.join("state.json")).unwrap(),
            b"{\"view\":3}"
        );
        assert_eq!(std::fs::read(to.join("wal/0001.log")).unwrap().len(), 1000);
        assert!(
            !to.join("link").exists(),
            "a link is no part of the state and is not followed"
        );
        let err = copy_tree(&dir.path().join("absent"), &dir.path().join("x")).unwrap_err();
        assert!(format!("{err:#}").contains("cannot read"), "{err:#}");
    }

    #[test]
    fn a_stopped_process_is_seen_stopped_in_every_thread() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        assert!(!all_threads_stopped(pid), "running");
        nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGSTOP).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !all_threads_stopped(pid) {
            assert!(std::time::Instant::now() < deadline, "never seen stopped");
            std::thread::sleep(Duration::from_millis(1));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(all_threads_stopped(pid), "a process that is gone");
        assert!(!all_threads_stopped(std::process::id() as i32));
    }
}
