//! SSH hosts: nodes on other machines (VMs, bare metal), reached with the system OpenSSH
//! client.
//!
//! Every host operation the local backend has works here too: run a command (partitions
//! are `nft -f -` on the node, so the same faultline-owned tables), start a node as a
//! daemon in its own session and remember its PID and start time, signal its process
//! group, wait until it has really exited, upload a binary, download logs.
//!
//! One `ssh -M` master per node, started by us and recorded in the cleanup registry, keeps a
//! connection open; every command reuses it (`ControlPath`), which makes a command cost
//! about 110 ms instead of 380 ms. If the master dies, commands fall back to connecting on
//! their own. Transient connection failures are retried; failures of the remote command are
//! not (it may have had effects).

use super::cleanup::{ProcId, Registry};
use super::{NodeHost, SpawnSpec};
use crate::spec::inventory::{ClockMode, SshNode};
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// How long a connection attempt may take before the host counts as unreachable.
const CONNECT_TIMEOUT_S: u32 = 5;
/// Attempts for a command whose connection failed before it ran.
const ATTEMPTS: u32 = 3;
/// Limit for one remote command (uploads of large binaries included).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// A node process on a remote host: the leader of its own session and process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteProc {
    pub pid: i32,
    /// Start time in clock ticks since the node's boot, so a recycled PID is never hit.
    pub start_ticks: u64,
}

/// Shell function `alive PID TICKS`: the process runs, is not a zombie, and started when
/// recorded. Field 22 of /proc/PID/stat is the start time; the command name (field 2) may
/// contain spaces, so the fields are counted after its closing parenthesis.
const ALIVE_FN: &str = r#"alive() { [ -r /proc/$1/stat ] && awk -v t="$2" '{ s=$0; sub(/^.*\) /, "", s); split(s, a, " "); exit !(a[20] == t && a[1] != "Z" && a[1] != "X") }' /proc/$1/stat; }"#;

/// Quote one word for a POSIX shell.
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

pub fn quote_argv<S: AsRef<str>>(argv: &[S]) -> String {
    argv.iter()
        .map(|a| quote(a.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// How one node is reached.
#[derive(Debug, Clone)]
pub struct SshConn {
    pub node: SshNode,
    /// The master's control socket.
    pub control: PathBuf,
}

/// Why a connection failed, in words a user can act on.
fn explain(stderr: &str) -> Option<&'static str> {
    let s = stderr;
    if s.contains("Permission denied") {
        Some("the key was refused (wrong key or user)")
    } else if s.contains("Host key verification failed")
        || s.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
        || s.contains("No ED25519 host key is known")
        || s.contains("host key is known")
    {
        Some("its host key is not in known_hosts (fresh VM? set `host_keys: accept-new` in the inventory, see README)")
    } else if s.contains("Connection refused") {
        Some("unreachable: connection refused (is sshd running?)")
    } else if s.contains("timed out") || s.contains("No route to host") {
        Some("unreachable: no answer")
    } else if s.contains("Could not resolve hostname") {
        Some("unreachable: unknown host name")
    } else {
        None
    }
}

/// Failures worth another attempt: the connection broke before the command ran.
fn transient(stderr: &str) -> bool {
    [
        "Connection reset",
        "Connection closed by",
        "kex_exchange_identification",
        "Broken pipe",
        "Connection timed out during banner exchange",
    ]
    .iter()
    .any(|p| stderr.contains(p))
}

impl SshConn {
    pub fn new(node: SshNode, control: PathBuf) -> SshConn {
        SshConn { node, control }
    }

    /// The options every ssh invocation for this node shares.
    fn options(&self, master: bool) -> Vec<String> {
        let n = &self.node;
        let mut o: Vec<String> = vec![
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            format!("ConnectTimeout={CONNECT_TIMEOUT_S}"),
            "-o".into(),
            "ServerAliveInterval=5".into(),
            "-o".into(),
            "ServerAliveCountMax=3".into(),
            "-o".into(),
            format!("StrictHostKeyChecking={}", n.host_keys.ssh_option()),
            "-o".into(),
            format!("ControlPath={}", self.control.display()),
            "-o".into(),
            if master {
                "ControlMaster=yes".into()
            } else {
                "ControlMaster=no".into()
            },
            "-o".into(),
            "LogLevel=ERROR".into(),
            "-p".into(),
            n.ssh_port.to_string(),
            "-l".into(),
            n.user.clone(),
        ];
        if let Some(k) = &n.key {
            o.extend([
                "-i".into(),
                k.display().to_string(),
                "-o".into(),
                "IdentitiesOnly=yes".into(),
            ]);
        }
        match &n.known_hosts {
            Some(kh) => o.extend(["-o".into(), format!("UserKnownHostsFile={}", kh.display())]),
            None if n.host_keys == crate::spec::inventory::HostKeys::Off => {
                o.extend(["-o".into(), "UserKnownHostsFile=/dev/null".into()])
            }
            None => {}
        }
        o
    }

    /// `script` as the remote shell should run it (with `sudo -n` when configured).
    fn remote(&self, script: &str) -> String {
        if self.node.sudo {
            format!("sudo -n sh -c {}", quote(script))
        } else {
            script.to_string()
        }
    }

    fn command(&self, script: &str) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("ssh");
        cmd.args(self.options(false))
            .arg(&self.node.ssh_host)
            .arg("--")
            .arg(self.remote(script))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Start the connection master for this node as our own child, recorded for cleanup
    /// (it dies with the controller too). If it exits early, commands connect on their own.
    pub fn start_master(&self, log: &Path, reg: &Registry) -> Result<tokio::process::Child> {
        let mut argv = vec!["ssh".to_string()];
        argv.extend(self.options(true));
        argv.extend(["-N".into(), "-o".into(), "ControlPersist=no".into()]);
        argv.push(self.node.ssh_host.clone());
        let spec = SpawnSpec {
            argv,
            env: BTreeMap::new(),
            cwd: PathBuf::from("/"),
            stdout: PathBuf::from("/dev/null"),
            stderr: log.to_path_buf(),
            die_with_controller: true,
        };
        let child = super::local::spawn_in(None, &spec)
            .with_context(|| format!("node {}: cannot start the ssh master", self.node.name))?;
        if let Some(id) = child.id().and_then(|pid| ProcId::of(pid as i32)) {
            reg.add_group(id)?;
        }
        Ok(child)
    }

    /// Run a shell script on the node, feeding `stdin`; retries connection failures.
    pub async fn run(&self, script: &str, stdin: &[u8]) -> Result<Output> {
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
            }
            let mut child = self
                .command(script)
                .spawn()
                .with_context(|| format!("node {}: cannot run ssh", self.node.name))?;
            if let Some(mut input) = child.stdin.take() {
                // A command that does not read its input closes the pipe early; that is
                // its business, not an error.
                let _ = input.write_all(stdin).await;
            }
            let out = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
                .await
                .map_err(|_| {
                    anyhow!(
                        "node {} ({}): command took longer than {}s",
                        self.node.name,
                        self.node.endpoint(),
                        COMMAND_TIMEOUT.as_secs()
                    )
                })??;
            let err = String::from_utf8_lossy(&out.stderr).to_string();
            if out.status.code() == Some(255) && transient(&err) {
                last = err;
                continue;
            }
            if out.status.code() == Some(255) {
                if let Some(why) = explain(&err) {
                    bail!(
                        "node {} ({}): {why}: {}",
                        self.node.name,
                        self.node.endpoint(),
                        err.trim()
                    );
                }
            }
            return Ok(out);
        }
        bail!(
            "node {} ({}): connection failed {ATTEMPTS} times: {}",
            self.node.name,
            self.node.endpoint(),
            last.trim()
        )
    }

    /// Run a script and require success; returns its stdout.
    pub async fn check(&self, script: &str, what: &str) -> Result<String> {
        let out = self.run(script, &[]).await?;
        if !out.status.success() {
            bail!(
                "node {} ({}): {what} failed ({}): {}",
                self.node.name,
                self.node.endpoint(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    }

    /// The same as [`SshConn::run`] without a runtime, for teardown paths (Drop, sweep).
    pub fn run_blocking(&self, script: &str) -> Result<Output> {
        let mut cmd = std::process::Command::new("ssh");
        cmd.args(self.options(false))
            .arg(&self.node.ssh_host)
            .arg("--")
            .arg(self.remote(script))
            .stdin(Stdio::null());
        cmd.output()
            .with_context(|| format!("node {}: cannot run ssh", self.node.name))
    }

    /// Copy a local file to `remote` (made executable), atomically.
    pub async fn upload(&self, local: &Path, remote: &str) -> Result<()> {
        let bytes =
            std::fs::read(local).with_context(|| format!("cannot read {}", local.display()))?;
        let tmp = format!("{remote}.part");
        let dir = Path::new(remote)
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "/".into());
        let script = format!(
            "mkdir -p {d} && cat > {t} && chmod 755 {t} && mv {t} {r}",
            d = quote(&dir),
            t = quote(&tmp),
            r = quote(remote)
        );
        let out = self.run(&script, &bytes).await?;
        if !out.status.success() {
            bail!(
                "node {}: cannot upload {} to {remote}: {}",
                self.node.name,
                local.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// Copy every regular file of remote directory `dir` into local `to` (one tar stream).
    pub async fn download_dir(&self, dir: &str, to: &Path) -> Result<()> {
        let out = self
            .run(&format!("cd {} && tar cf - .", quote(dir)), &[])
            .await?;
        if !out.status.success() {
            bail!(
                "node {}: cannot read {dir}: {}",
                self.node.name,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
        let mut tar = tokio::process::Command::new("tar")
            .args(["xf", "-", "-C"])
            .arg(to)
            .stdin(Stdio::piped())
            .spawn()
            .context("cannot run tar")?;
        if let Some(mut input) = tar.stdin.take() {
            input.write_all(&out.stdout).await?;
        }
        let st = tar.wait().await?;
        if !st.success() {
            bail!(
                "node {}: tar could not unpack the logs of {dir}",
                self.node.name
            );
        }
        Ok(())
    }

    /// Start a node daemon: its own session (so its PID is its process group), output to
    /// files on the node, its PID in `node.pid` beside them (for a person on the host;
    /// faultline itself keeps PID and start time). Returns the PID and start time.
    pub async fn spawn(&self, spec: &SpawnSpec) -> Result<RemoteProc> {
        let env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let dirs = [
            spec.cwd.display().to_string(),
            parent(&spec.stdout),
            parent(&spec.stderr),
        ];
        let script = format!(
            "set -e\nmkdir -p {dirs}\ncd {cwd}\nenv {env} setsid {argv} > {out} 2> {err} < /dev/null &\npid=$!\necho \"$pid\" > {pidfile}\necho \"$pid $(sed 's/^.*) //' /proc/$pid/stat | cut -d' ' -f20)\"\n",
            pidfile = quote(&format!("{}/node.pid", parent(&spec.stdout))),
            dirs = quote_argv(&dirs),
            cwd = quote(&spec.cwd.display().to_string()),
            env = quote_argv(&env),
            argv = quote_argv(&spec.argv),
            out = quote(&spec.stdout.display().to_string()),
            err = quote(&spec.stderr.display().to_string()),
        );
        let line = self.check(&script, "starting the node").await?;
        parse_proc(&line).ok_or_else(|| {
            anyhow!(
                "node {}: the start script printed {line:?}, not a PID and start time",
                self.node.name
            )
        })
    }

    /// Signal a node's process group if it still runs.
    pub async fn signal(&self, p: RemoteProc, sig: &str) -> Result<()> {
        let script = format!(
            "{ALIVE_FN}\nif alive {pid} {t}; then kill -s {sig} -- -{pid}; fi",
            pid = p.pid,
            t = p.start_ticks
        );
        self.check(&script, &format!("kill -s {sig}")).await?;
        Ok(())
    }

    pub async fn alive(&self, p: RemoteProc) -> Result<bool> {
        let out = self
            .run(
                &format!("{ALIVE_FN}\nalive {} {}", p.pid, p.start_ticks),
                &[],
            )
            .await?;
        Ok(out.status.success())
    }

    /// Wait up to `limit` for the process to be gone; true if it is.
    pub async fn wait_gone(&self, p: RemoteProc, limit: Duration) -> Result<bool> {
        let tries = (limit.as_millis() / 100).max(1);
        let script = format!(
            "{ALIVE_FN}\ni=0\nwhile alive {pid} {t}; do i=$((i+1)); [ $i -gt {tries} ] && exit 1; sleep 0.1; done\nexit 0",
            pid = p.pid,
            t = p.start_ticks
        );
        Ok(self.run(&script, &[]).await?.status.success())
    }
}

fn parent(p: &Path) -> String {
    p.parent()
        .map(|d| d.display().to_string())
        .unwrap_or_else(|| "/".into())
}

fn parse_proc(line: &str) -> Option<RemoteProc> {
    let mut it = line.split_whitespace();
    Some(RemoteProc {
        pid: it.next()?.parse().ok()?,
        start_ticks: it.next()?.parse().ok()?,
    })
}

/// The script that removes everything a run left on one node: its processes (by group,
/// start time checked), faultline's nftables tables, and the run's directory.
pub fn cleanup_script(procs: &[RemoteProc], run_dir: &str, clock_offset_ms: i64) -> String {
    let mut s = format!("{ALIVE_FN}\n");
    if clock_offset_ms != 0 {
        s.push_str(&step_clock_script(-clock_offset_ms));
        s.push('\n');
    }
    for p in procs {
        s.push_str(&format!(
            "if alive {pid} {t}; then kill -s KILL -- -{pid}; fi\n",
            pid = p.pid,
            t = p.start_ticks
        ));
    }
    for p in procs {
        s.push_str(&format!(
            "i=0; while alive {pid} {t}; do i=$((i+1)); [ $i -gt 100 ] && echo \"process group {pid} survived SIGKILL\" >&2 && exit 1; sleep 0.1; done\n",
            pid = p.pid,
            t = p.start_ticks
        ));
    }
    for t in [super::PARTITION_TABLE, super::LOSS_TABLE] {
        s.push_str(&format!(
            "if command -v nft >/dev/null; then nft delete table inet {t} 2>/dev/null || true; fi\n"
        ));
    }
    s.push_str(&format!("rm -rf {}\n", quote(run_dir)));
    // The run's directory holds one directory per node; the last node out removes it
    // (several nodes may share a machine, so only when empty).
    if let Some(parent) = Path::new(run_dir).parent() {
        s.push_str(&format!(
            "rmdir {} 2>/dev/null || true\n",
            quote(&parent.display().to_string())
        ));
    }
    s
}

/// A script that steps the host's real clock by `delta_ms` (for `clock: system` hosts).
pub fn step_clock_script(delta_ms: i64) -> String {
    format!(
        "now=$(date +%s.%N) && date -s \"@$(awk -v n=\"$now\" 'BEGIN {{ printf \"%.3f\", n + ({}) / 1000 }}')\" >/dev/null",
        delta_ms
    )
}

/// The hosts of a run over SSH.
#[derive(Debug)]
pub struct SshHosts {
    pub nodes: Vec<NodeHost>,
    conns: BTreeMap<String, SshConn>,
    /// This run's directory on each node: `<dir>/<run id>/<node>`.
    roots: BTreeMap<String, String>,
    /// The connection masters; kept so that they are reaped when the hosts go away.
    _masters: Vec<tokio::process::Child>,
}

/// What a run needs of its hosts, checked before anything starts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    pub nft: bool,
    /// Clock faults: libfaketime on `libfaketime` hosts; on `system` hosts, proof that the
    /// host's clock is not this machine's.
    pub clock: bool,
}

impl SshHosts {
    /// Connect to every node (masters), record the remote resources for cleanup, and check
    /// that each node can do what the run needs — all before any test starts. Master logs
    /// go to `log_dir/<node>/ssh.log`.
    pub async fn create(
        reg: &Registry,
        inventory: &[SshNode],
        log_dir: &Path,
        needs: Needs,
    ) -> Result<SshHosts> {
        let run_id = reg.run_id();
        let sockets = super::cleanup::state_dir().join("ssh");
        std::fs::create_dir_all(&sockets)
            .with_context(|| format!("cannot create {}", sockets.display()))?;
        let mut conns = BTreeMap::new();
        let mut roots = BTreeMap::new();
        let mut nodes = Vec::new();
        for n in inventory {
            let conn = SshConn::new(n.clone(), sockets.join(format!("{run_id}-{}", n.name)));
            let root = format!("{}/{run_id}/{}", n.dir.trim_end_matches('/'), n.name);
            nodes.push(NodeHost {
                node: n.name.clone(),
                ip: n.address,
                netns: None,
            });
            roots.insert(n.name.clone(), root);
            conns.insert(n.name.clone(), conn);
        }
        let mut hosts = SshHosts {
            nodes,
            conns,
            roots,
            _masters: Vec::new(),
        };
        check_all(hosts.conns.values(), needs).await?;
        // Recorded only now: a run refused by the checks above did nothing on any host, and
        // must not leave a cleanup job behind for hosts that may never answer.
        for c in hosts.conns.values() {
            reg.add_remote(c.node.clone(), &c.control, hosts.root(&c.node.name)?)?;
        }
        for c in hosts.conns.values() {
            let dir = log_dir.join(&c.node.name);
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let m = c.start_master(&dir.join("ssh.log"), reg)?;
            hosts._masters.push(m);
        }
        Ok(hosts)
    }
}

/// Check every host in parallel (see [`preflight`]); one error lists every bad host.
async fn check_all<'a>(conns: impl Iterator<Item = &'a SshConn>, needs: Needs) -> Result<()> {
    let conns: Vec<&SshConn> = conns.collect();
    let problems: Vec<String> =
        futures::future::join_all(conns.iter().map(|c| preflight(c, needs)))
            .await
            .into_iter()
            .filter_map(|r| r.err().map(|e| format!("{e:#}")))
            .collect();
    if !problems.is_empty() {
        bail!(
            "{} of {} SSH hosts are not usable:\n  {}",
            problems.len(),
            conns.len(),
            problems.join("\n  ")
        );
    }
    Ok(())
}

/// The checks a run makes before it starts, for callers that run many (a campaign checks
/// its inventory once, before its first run). Connects without a master.
pub async fn check_inventory(nodes: &[SshNode], needs: Needs) -> Result<()> {
    let dir = std::env::temp_dir();
    let conns: Vec<SshConn> = nodes
        .iter()
        .map(|n| SshConn::new(n.clone(), dir.join(format!("fl-nomaster-{}", n.name))))
        .collect();
    check_all(conns.iter(), needs).await
}

/// One round trip that proves the node is reachable with the key, that sudo works
/// without a password when asked for, and that the tools the run needs are there.
async fn preflight(c: &SshConn, needs: Needs) -> Result<()> {
    let n = &c.node;
    let who = format!("node {} ({})", n.name, n.endpoint());
    let out = c.run("true", &[]).await?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if n.sudo {
            bail!(
                "{who}: `sudo -n` does not work (missing sudo, or it wants a password): {}",
                err.trim()
            );
        }
        bail!("{who}: cannot run commands: {}", err.trim());
    }
    let mut script = format!(
        "mkdir -p {d} && [ -w {d} ] || {{ echo 'cannot write {d}' >&2; exit 1; }}\n",
        d = quote(&n.dir)
    );
    if !n.sudo && n.user != "root" {
        script.push_str(
                "[ \"$(id -u)\" = 0 ] || { echo 'needs root for firewall rules and signals: set `sudo: true` or `user: root`' >&2; exit 1; }\n",
            );
    }
    if needs.nft {
        script.push_str(
                "command -v nft >/dev/null || { echo 'nft is not installed (apt-get install nftables)' >&2; exit 1; }\n",
            );
    }
    if needs.clock && n.clock == ClockMode::Libfaketime {
        script.push_str(&format!(
                "{} || {{ echo 'libfaketime is not installed (apt-get install libfaketime)' >&2; exit 1; }}\n",
                libfaketime_probe()
            ));
    }
    if needs.clock && n.clock == ClockMode::System {
        script.push_str("cat /proc/sys/kernel/random/boot_id\n");
    }
    let out = c.run(&script, &[]).await?;
    if !out.status.success() {
        bail!("{who}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    if needs.clock && n.clock == ClockMode::System {
        // Stepping the clock of a "host" that is really this machine (a container, the
        // SSH lab) would step ours: never.
        let theirs = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let ours = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .unwrap_or_default()
            .trim()
            .to_string();
        if theirs.is_empty() || theirs == ours {
            bail!(
                    "{who}: `clock: system` would step this machine's own clock (the host shares its kernel); use `clock: libfaketime` for it"
                );
        }
    }
    Ok(())
}

impl SshHosts {
    pub fn conn(&self, node: &str) -> Result<&SshConn> {
        self.conns
            .get(node)
            .ok_or_else(|| anyhow!("no SSH host for node {node}"))
    }

    /// This run's directory on `node`.
    pub fn root(&self, node: &str) -> Result<&str> {
        self.roots
            .get(node)
            .map(String::as_str)
            .ok_or_else(|| anyhow!("no SSH host for node {node}"))
    }

    /// Where libfaketime lives on `node`.
    pub async fn libfaketime(&self, node: &str) -> Result<String> {
        let out = self
            .conn(node)?
            .check(
                &format!("{} && echo \"$lib\"", libfaketime_probe()),
                "finding libfaketime",
            )
            .await?;
        Ok(out.trim().to_string())
    }
}

/// A shell snippet that sets `$lib` to the first libfaketime found, or fails.
fn libfaketime_probe() -> String {
    let candidates = crate::hosts::clock::LIBFAKETIME_CANDIDATES.join(" ");
    format!(
        "lib=''; for f in {candidates}; do [ -f \"$f\" ] && lib=$f && break; done; [ -n \"$lib\" ]"
    )
}

/// Remove what a run left on its SSH hosts (blocking: used by teardown, Drop and sweep).
pub fn remove_remote(hosts: &[super::cleanup::RemoteHost]) -> Vec<String> {
    let mut problems = Vec::new();
    for h in hosts {
        let conn = SshConn::new(h.ssh.clone(), h.control.clone());
        match conn.run_blocking(&cleanup_script(&h.groups, &h.dir, h.clock_offset_ms)) {
            Ok(out) if out.status.success() => {}
            Ok(out) => problems.push(format!(
                "node {} ({}): cleanup failed: {}",
                h.ssh.name,
                h.ssh.endpoint(),
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => problems.push(format!("{e:#}")),
        }
    }
    problems
}

/// Identify the master processes of a run in the registry (for tests).
pub fn control_socket(run_id: &str, node: &str) -> PathBuf {
    super::cleanup::state_dir()
        .join("ssh")
        .join(format!("{run_id}-{node}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_the_shell() {
        assert_eq!(quote("abc-1.2/x=y"), "abc-1.2/x=y");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        let argv = ["echo", "a b", "it's", "$HOME", "x;y"];
        let out = std::process::Command::new("sh")
            .args(["-c", &quote_argv(&argv)])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a b it's $HOME x;y\n");
    }

    #[test]
    fn the_alive_function_knows_a_live_process_from_a_recycled_pid() {
        let me = ProcId::of(std::process::id() as i32).unwrap();
        let run = |t: u64| {
            std::process::Command::new("sh")
                .args(["-c", &format!("{ALIVE_FN}\nalive {} {t}", me.pid)])
                .status()
                .unwrap()
                .success()
        };
        assert!(run(me.start_ticks));
        assert!(!run(me.start_ticks + 1));
    }

    #[test]
    fn connection_failures_are_explained() {
        assert!(explain("root@10.0.0.1: Permission denied (publickey).")
            .unwrap()
            .contains("key was refused"));
        assert!(
            explain("ssh: connect to host 10.0.0.1 port 22: Connection refused")
                .unwrap()
                .contains("unreachable")
        );
        assert!(explain("Host key verification failed.")
            .unwrap()
            .contains("known_hosts"));
        assert!(transient(
            "kex_exchange_identification: read: Connection reset by peer"
        ));
        assert!(!transient("Permission denied"));
    }

    #[test]
    fn clock_steps_add_the_delta_to_the_current_time_and_cleanup_undoes_them() {
        // A stand-in `date` on PATH records what the script asks for; the real clock is
        // never touched.
        let dir = std::env::temp_dir().join(format!("fl-date-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fake = dir.join("date");
        std::fs::write(
            &fake,
            format!(
                "#!/bin/sh\nif [ \"$1\" = -s ]; then echo \"$2\" > {}/set; else echo 1000.500000000; fi\n",
                dir.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap());
        for (delta, want) in [(1250, "@1001.750"), (-60_000, "@940.500")] {
            let ok = std::process::Command::new("sh")
                .args(["-c", &step_clock_script(delta)])
                .env("PATH", &path)
                .status()
                .unwrap()
                .success();
            assert!(ok);
            let set = std::fs::read_to_string(dir.join("set")).unwrap();
            assert_eq!(set.trim(), want);
        }
        assert!(cleanup_script(&[], "/x/y", 5000).contains(&step_clock_script(-5000)));
        assert!(!cleanup_script(&[], "/x/y", 0).contains("date -s"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_spawn_output_parses() {
        assert_eq!(
            parse_proc("1234 98765\n"),
            Some(RemoteProc {
                pid: 1234,
                start_ticks: 98765
            })
        );
        assert_eq!(parse_proc("oops"), None);
    }
}
