//! Local hosts: one network namespace per node, each joined by a veth pair to a bridge in
//! the root namespace that carries an address of the same subnet, so the controller (which
//! stays in the root namespace, so that partitioning a node never cuts its clients) reaches
//! every node.
//!
//! Two runs can coexist: names carry the run id, and each run locks its own /27 slice of the
//! configured subnet (bridge .1, nodes .2 …, at most 29 nodes).

use super::cleanup::{link_exists, netns_exists, run_ip, state_dir, Registry};
use super::{Capability, NodeHost, SpawnSpec};
use anyhow::{anyhow, bail, Context, Result};
use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{Output, Stdio};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Addresses per run: a /27.
pub const SLICE_PREFIX: u8 = 27;

#[derive(Debug)]
pub struct LocalHosts {
    pub nodes: Vec<NodeHost>,
    pub bridge: String,
    pub gateway: Ipv4Addr,
    pub prefix_len: u8,
    /// Holds this run's subnet slice; released when the run ends (or the process dies).
    _slice_lock: StateLock,
}

/// Root with working namespaces? Checked by creating and deleting a namespace.
pub fn probe() -> Capability {
    if !nix::unistd::geteuid().is_root() {
        return Capability::LoopbackOnly {
            reason: "not running as root".into(),
        };
    }
    let name = format!("fl-probe-{}", std::process::id());
    match run_ip(&["netns", "add", &name]) {
        Ok(()) => {
            let _ = run_ip(&["netns", "del", &name]);
            Capability::Namespaces
        }
        Err(e) => Capability::LoopbackOnly {
            reason: format!("network namespaces are unavailable: {e}"),
        },
    }
}

impl LocalHosts {
    /// Create the bridge and one namespace per node. Every resource is recorded in the
    /// registry before it is created.
    pub fn create(reg: &Registry, subnet: (Ipv4Addr, u8), nodes: &[String]) -> Result<LocalHosts> {
        if nodes.len() > 29 {
            bail!(
                "local hosts hold at most 29 nodes per run, {} asked",
                nodes.len()
            );
        }
        let (base, lock) = claim_slice(subnet)?;
        let run_id = reg.run_id();
        let bridge = format!("flbr{run_id}");
        let gateway = Ipv4Addr::from(u32::from(base) + 1);
        let cidr = |ip: Ipv4Addr| format!("{ip}/{SLICE_PREFIX}");

        reg.add_link(&bridge)?;
        run_ip(&["link", "add", &bridge, "type", "bridge"])?;
        run_ip(&["addr", "add", &cidr(gateway), "dev", &bridge])?;
        run_ip(&["link", "set", &bridge, "up"])?;

        let mut hosts = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            let ns = format!("fl-{run_id}-{node}");
            let veth = format!("fl{run_id}{node}");
            let ip = Ipv4Addr::from(u32::from(base) + 2 + i as u32);
            reg.add_netns(&ns)?;
            run_ip(&["netns", "add", &ns])?;
            reg.add_link(&veth)?;
            run_ip(&[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            run_ip(&["link", "set", &veth, "master", &bridge, "up"])?;
            run_ip(&["-n", &ns, "addr", "add", &cidr(ip), "dev", "eth0"])?;
            run_ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            run_ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            hosts.push(NodeHost {
                node: node.clone(),
                ip,
                netns: Some(ns),
            });
        }
        Ok(LocalHosts {
            nodes: hosts,
            bridge,
            gateway,
            prefix_len: SLICE_PREFIX,
            _slice_lock: lock,
        })
    }

    /// Whether every namespace and the bridge of this run exist (for tests).
    pub fn all_present(&self) -> bool {
        link_exists(&self.bridge)
            && self
                .nodes
                .iter()
                .all(|n| n.netns.as_deref().is_some_and(netns_exists))
    }
}

/// Lock a free /27 of `subnet`: not locked by another run and not already on an interface.
fn claim_slice(subnet: (Ipv4Addr, u8)) -> Result<(Ipv4Addr, StateLock)> {
    let (net, len) = subnet;
    let slots = 1u32 << (SLICE_PREFIX - len);
    let dir = state_dir();
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create state directory {}", dir.display()))?;
    let in_use = addresses_in_use();
    for k in 0..slots {
        let base = Ipv4Addr::from(u32::from(net) + k * (1 << (32 - SLICE_PREFIX)));
        let end = u32::from(base) + (1 << (32 - SLICE_PREFIX));
        if in_use
            .iter()
            .any(|a| (u32::from(base)..end).contains(&u32::from(*a)))
        {
            continue;
        }
        if let Some(lock) = try_lock(&dir.join(format!("slice-{base}.lock")))? {
            return Ok((base, lock));
        }
    }
    bail!(
        "every /{SLICE_PREFIX} slice of {net}/{len} is in use by other runs or interfaces; choose another subnet (--subnet)"
    )
}

/// An exclusive lock on a file in the state directory. Dropping it removes the file while
/// the lock is still held, so finished runs leave no lock files behind; a SIGKILLed run's
/// file stays, unlocked, and the next run that takes it removes it.
#[derive(Debug)]
pub(crate) struct StateLock {
    path: std::path::PathBuf,
    _lock: nix::fcntl::Flock<File>,
}

impl Drop for StateLock {
    fn drop(&mut self) {
        // Runs before `_lock` is released: whoever opened this inode meanwhile and locks it
        // next sees that the path no longer names it (`try_lock`) and tries again.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Take the exclusive lock on `path` if nobody holds it; it is released when the returned
/// lock is dropped or the process dies, so a crashed run never blocks the next one.
pub(crate) fn try_lock(path: &std::path::Path) -> Result<Option<StateLock>> {
    use std::os::unix::fs::MetadataExt;
    // A few rounds: each lost one means a holder removed the file just as we opened it.
    for _ in 0..8 {
        let file = File::create(path)
            .with_context(|| format!("cannot create lock file {}", path.display()))?;
        let lock = match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        {
            Ok(lock) => lock,
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => return Ok(None),
            Err((_, e)) => return Err(anyhow!("cannot lock {}: {e}", path.display())),
        };
        let held = lock
            .metadata()
            .with_context(|| format!("cannot stat {}", path.display()))?;
        let named = std::fs::metadata(path).ok();
        if named.is_some_and(|m| m.ino() == held.ino() && m.dev() == held.dev()) {
            return Ok(Some(StateLock {
                path: path.to_path_buf(),
                _lock: lock,
            }));
        }
    }
    Ok(None)
}

/// IPv4 addresses configured on interfaces of the root namespace.
fn addresses_in_use() -> Vec<Ipv4Addr> {
    let Ok(out) = std::process::Command::new("ip")
        .args(["-o", "-4", "addr", "show"])
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            it.position(|w| w == "inet")?;
            it.next()?.split('/').next()?.parse().ok()
        })
        .collect()
}

fn open_netns(netns: Option<&str>) -> Result<Option<OwnedFd>> {
    netns
        .map(|ns| {
            File::open(format!("/run/netns/{ns}"))
                .map(OwnedFd::from)
                .with_context(|| format!("cannot open network namespace {ns}"))
        })
        .transpose()
}

/// Configure a command to join a cgroup (through its open `cgroup.procs`), to enter
/// `netns` (if any) and, optionally, to die with us.
fn prepare(
    cmd: &mut tokio::process::Command,
    ns_fd: Option<&OwnedFd>,
    cgroup_procs: Option<&File>,
    die_with_parent: bool,
) {
    let raw = ns_fd.map(|f| f.as_raw_fd());
    let procs = cgroup_procs.map(|f| f.as_raw_fd());
    // SAFETY: the closure runs between fork and exec and calls only async-signal-safe
    // system calls (write, setns, prctl) on file descriptors opened before the fork.
    unsafe {
        cmd.pre_exec(move || {
            // Joined before exec, so the node cannot fork anything outside its cgroup.
            // "0" means the writing process itself.
            if let Some(fd) = procs {
                if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if let Some(fd) = raw {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if die_with_parent && libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Make a command's process die with the controller (PDEATHSIG), for helper processes the
/// controller starts in its own namespace (stdio client adapters).
pub fn die_with_controller(cmd: &mut tokio::process::Command) {
    prepare(cmd, None, None, true);
}

/// Spawn a node process in its namespace (and cgroup, if any) as the leader of a new
/// process group.
pub fn spawn_in(netns: Option<&str>, spec: &SpawnSpec) -> Result<tokio::process::Child> {
    let fd = open_netns(netns)?;
    let cgroup_procs = spec
        .cgroup
        .as_ref()
        .map(|dir| {
            let path = dir.join("cgroup.procs");
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .with_context(|| format!("cannot open {}", path.display()))
        })
        .transpose()?;
    let (prog, args) = spec
        .argv
        .split_first()
        .ok_or_else(|| anyhow!("empty start command"))?;
    let stdout = File::create(&spec.stdout)
        .with_context(|| format!("cannot create {}", spec.stdout.display()))?;
    let stderr = File::create(&spec.stderr)
        .with_context(|| format!("cannot create {}", spec.stderr.display()))?;
    let mut cmd = tokio::process::Command::new(prog);
    cmd.args(args)
        .envs(&spec.env)
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(false);
    prepare(
        &mut cmd,
        fd.as_ref(),
        cgroup_procs.as_ref(),
        spec.die_with_controller,
    );
    cmd.spawn()
        .with_context(|| format!("cannot start `{}`", spec.argv.join(" ")))
}

/// A TCP socket made inside network namespace `netns`, for the controller to reach a
/// process there by an address the root namespace routes elsewhere (a twin binds its
/// node's address, which the bridge delivers to the original). A socket keeps the
/// namespace it was made in, so it is made on a short-lived thread of its own that enters
/// the namespace; the caller's threads never change namespace.
pub fn tcp_socket_in(netns: &str) -> Result<tokio::net::TcpSocket> {
    let fd = open_netns(Some(netns))?.ok_or_else(|| anyhow!("no namespace named"))?;
    std::thread::scope(|s| {
        s.spawn(|| -> Result<tokio::net::TcpSocket> {
            // SAFETY: setns on a valid namespace file descriptor, for this thread only,
            // which ends right after making the socket.
            if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error())
                    .with_context(|| format!("cannot enter namespace {netns}"));
            }
            tokio::net::TcpSocket::new_v4()
                .with_context(|| format!("cannot make a socket in namespace {netns}"))
        })
        .join()
        .map_err(|_| anyhow!("the thread making a socket in {netns} panicked"))?
    })
}

/// Run a short command inside `netns` (or here), with a 30 s limit.
pub async fn exec_in(netns: Option<&str>, argv: &[&str], stdin: &[u8]) -> Result<Output> {
    let fd = open_netns(netns)?;
    let (prog, args) = argv.split_first().ok_or_else(|| anyhow!("empty command"))?;
    let mut cmd = tokio::process::Command::new(prog);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    prepare(&mut cmd, fd.as_ref(), None, true);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run `{}`", argv.join(" ")))?;
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin).await?;
    }
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .map_err(|_| anyhow!("`{}` took longer than 30s", argv.join(" ")))??;
    Ok(out)
}
