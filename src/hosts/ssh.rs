//! SSH hosts: nodes on other machines (VMs, bare metal), reached with the system OpenSSH
//! client.
//!
//! Every host operation the local backend has works here too: run a command (partitions
//! are `nft -f -` on the node, so the same faultline-owned tables), start a node as a
//! daemon in its own session and remember its PID and start time — inside a cgroup of its
//! own where the host has cgroup v2, as locally —, signal it, wait until it has really
//! exited, upload a binary, download logs.
//!
//! One `ssh -M` master per node, started by us and recorded in the cleanup registry, keeps a
//! connection open; every command reuses it (`ControlPath`), which makes a command cost
//! about 110 ms instead of 380 ms. If the master dies, commands fall back to connecting on
//! their own. A command is retried only when ssh failed before sending it (refused, or
//! dropped during the banner or key exchange); a command that was sent and got no answer,
//! or failed, is not (it may have had effects). Cleanup commands (teardown, sweep) give up
//! after [`CLEANUP_TIMEOUT`], so a hung host cannot hang the cleanup of everything else.

use super::cleanup::{ClockOrigin, ProcId, Registry};
use super::{NodeHost, SpawnSpec};
use crate::shell::{self, quote};
use crate::spec::inventory::{ClockMode, SshNode};
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Beside a remote node's output: "PID START_TICKS" of its latest start.
const NODE_PROC: &str = "node.proc";

/// How long a connection attempt may take before the host counts as unreachable.
const CONNECT_TIMEOUT_S: u32 = 5;
/// Attempts for a command whose connection failed before it was sent.
const ATTEMPTS: u32 = 3;
/// Limit for one remote command (uploads of large binaries included).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// Limit for one host's cleanup at teardown or in a sweep (its script waits up to 10 s for
/// killed processes to exit).
pub const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);

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

/// Shell functions for a node's whole process group, also after its leader died (a wrapper
/// shell that did not `exec`), with the same guard as [`super::cleanup::group_members`]:
/// `members PGID TICKS` prints the live processes of group PGID that started no earlier
/// than TICKS, and nothing if a process with PID PGID started at another time (our group
/// ended and its number was reused); `killgroup` SIGKILLs such a group, `gonegroup` waits
/// up to 10 s for it to be empty. One `cat` of every stat file: processes that vanish
/// meanwhile are skipped rather than failing the scan.
const GROUP_FN: &str = r#"members() { cat /proc/[0-9]*/stat 2>/dev/null | awk -v g="$1" -v t="$2" '{ p = $0; sub(/ .*/, "", p); s = $0; sub(/^.*\) /, "", s); split(s, a, " "); if (p == g && a[20] != t) reused = 1; if (a[3] == g && a[20] >= t && a[1] != "Z" && a[1] != "X") m = m " " p } END { if (!reused) print m }'; }
killgroup() { if [ -n "$(members "$1" "$2")" ]; then kill -s KILL -- "-$1" 2>/dev/null; fi; true; }
gonegroup() { i=0; while [ -n "$(members "$1" "$2")" ]; do i=$((i+1)); [ $i -gt 100 ] && echo "process group $1 survived SIGKILL" >&2 && return 1; sleep 0.1; done; true; }"#;

/// Shell functions for a node's cgroup (v2) on its host, the remote twin of
/// [`super::cgroup`]: `populated CG` (a process lives in it), `sigall CG SIG` (signal every
/// member, reading the list again until a pass finds nobody new, at most 16 passes),
/// `killcg CG` (`cgroup.kill`, then wait up to 10 s until it is empty; fine if it is gone).
const CGROUP_FN: &str = r#"populated() { grep -qx 'populated 1' "$1/cgroup.events" 2>/dev/null; }
sigall() { n=0; sent=' '; while [ $n -lt 16 ]; do fresh=; for p in $(cat "$1/cgroup.procs" 2>/dev/null); do case "$sent" in *" $p "*) ;; *) fresh=1; sent="$sent$p "; kill -s "$2" "$p" 2>/dev/null;; esac; done; [ -z "$fresh" ] && break; n=$((n+1)); done; true; }
killcg() { [ -d "$1" ] || return 0; if populated "$1"; then echo 1 > "$1/cgroup.kill" || return 1; fi; n=0; while populated "$1"; do n=$((n+1)); [ $n -gt 100 ] && echo "cgroup $1 still holds processes $(cat "$1/cgroup.procs" | tr '\n' ' ')after cgroup.kill" >&2 && return 1; sleep 0.1; done; true; }"#;

/// Prints `cgroup2=MOUNT` when node cgroups can be made on the host (cgroup v2 mounted,
/// `faultline/` creatable under it, `cgroup.kill` there), else `cgroup: WHY`. The mount
/// point is field 5 of the mountinfo line whose type (after the `-`) is cgroup2.
const CGROUP_PROBE: &str = r#"cg=$(awk '{ for (i = 7; i <= NF; i++) if ($i == "-") break; if ($(i+1) == "cgroup2") { print $5; exit } }' /proc/self/mountinfo)
if [ -z "$cg" ]; then echo 'cgroup: no cgroup v2 hierarchy is mounted'
elif ! mkdir -p "$cg/faultline" 2>/dev/null; then echo "cgroup: cannot create $cg/faultline (not root, or a read-only mount)"
elif [ ! -e "$cg/faultline/cgroup.kill" ]; then echo 'cgroup: this kernel has no cgroup.kill (Linux 5.14 or later needed)'
else echo "cgroup2=$cg"; fi
"#;

/// What a remote node's processes are doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteState {
    /// The process faultline started still runs.
    Running,
    /// The start command is gone but its cgroup still holds processes (a node that put
    /// itself in the background).
    Detached,
    Gone,
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

/// Whether ssh failed before it sent the command, so that sending it again cannot run it
/// twice: the TCP connection was refused or unroutable, or the server dropped it during
/// the banner or key exchange (before authentication, long before a session). Everything
/// else — a reset, a closed connection or a silent server after the command may have been
/// sent — is not retried. A connect timeout is not retried either: the host already had
/// `ConnectTimeout` to answer, and retrying would triple the wait for a host that is down.
fn never_sent(stderr: &str) -> bool {
    stderr.lines().any(|l| {
        (l.starts_with("ssh: connect to host")
            && (l.ends_with("Connection refused") || l.ends_with("No route to host")))
            || l.starts_with("kex_exchange_identification:")
            || l.starts_with("ssh_exchange_identification:")
            || l.contains("Connection timed out during banner exchange")
    })
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
    fn remote(&self, script: &str) -> Result<String> {
        if self.node.sudo {
            Ok(format!("sudo -n sh -c {}", quote(script)?))
        } else {
            Ok(script.to_string())
        }
    }

    fn command(&self, script: &str) -> Result<tokio::process::Command> {
        let mut cmd = tokio::process::Command::new("ssh");
        cmd.args(self.options(false))
            .arg(&self.node.ssh_host)
            .arg("--")
            .arg(self.remote(script)?)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        Ok(cmd)
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
            cgroup: None,
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
                .command(script)?
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
            match self.settle(out) {
                Ok(done) => return done,
                Err(unsent) => last = unsent,
            }
        }
        self.gave_up(&last)
    }

    /// An ssh result as the caller sees it: a connection failure ssh explains becomes an
    /// error saying what to do; anything else is the remote command's own result.
    fn explained(&self, out: Output) -> Result<Output> {
        if out.status.code() == Some(255) {
            let err = String::from_utf8_lossy(&out.stderr);
            if let Some(why) = explain(&err) {
                bail!(
                    "node {} ({}): {why}: {}",
                    self.node.name,
                    self.node.endpoint(),
                    err.trim()
                );
            }
        }
        Ok(out)
    }

    fn gave_up<T>(&self, last: &str) -> Result<T> {
        let why = explain(last).map(|w| format!("{w}: ")).unwrap_or_default();
        bail!(
            "node {} ({}): {why}connection failed {ATTEMPTS} times: {}",
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

    /// What an ssh attempt came to, or ssh's words when the command was never sent: only
    /// then is it safe to try again.
    fn settle(&self, out: Output) -> std::result::Result<Result<Output>, String> {
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        if out.status.code() == Some(255) && never_sent(&err) {
            Err(err)
        } else {
            Ok(self.explained(out))
        }
    }

    /// `ssh … -- script` for the blocking paths (no runtime there).
    fn blocking_command(&self, script: &str) -> Result<std::process::Command> {
        let mut cmd = std::process::Command::new("ssh");
        cmd.args(self.options(false))
            .arg(&self.node.ssh_host)
            .arg("--")
            .arg(self.remote(script)?);
        Ok(cmd)
    }

    /// The same as [`SshConn::run`] without a runtime, for teardown paths (Drop, sweep),
    /// and bounded by [`CLEANUP_TIMEOUT`].
    pub fn run_blocking(&self, script: &str) -> Result<Output> {
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(500 << attempt));
            }
            let out = bounded_output(self.blocking_command(script)?, CLEANUP_TIMEOUT)
                .with_context(|| format!("node {} ({})", self.node.name, self.node.endpoint()))?;
            match self.settle(out) {
                Ok(done) => return done,
                Err(unsent) => last = unsent,
            }
        }
        self.gave_up(&last)
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
            d = quote(&dir)?,
            t = quote(&tmp)?,
            r = quote(remote)?
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

    /// Copy remote directory `dir` into local `to`: one tar stream from the host, unpacked
    /// as it arrives (never whole in memory) and confined to `to` ([`super::tarball`]).
    /// Entries the host should not have sent (paths out of `to`, links out of it) are
    /// refused and named in the error, after everything else was unpacked.
    pub async fn download_dir(&self, dir: &str, to: &Path) -> Result<()> {
        let script = format!("cd {} && tar cf - .", quote(dir)?);
        let (conn, to_dir) = (self.clone(), to.to_path_buf());
        let refused = tokio::task::spawn_blocking(move || {
            conn.stream(&script, COMMAND_TIMEOUT, |out| {
                super::tarball::unpack_confined(out, &to_dir)
            })
        })
        .await
        .context("the log download panicked")?
        .with_context(|| format!("node {}: cannot download {dir}", self.node.name))?;
        if !refused.is_empty() {
            bail!(
                "node {}: refused {} entries of {dir}: {}",
                self.node.name,
                refused.len(),
                refused.join("; ")
            );
        }
        Ok(())
    }

    /// Run `script` on the node and hand its stdout to `consume` as it streams (blocking;
    /// stdin empty). Killed with everything it started once `limit` has passed. Retried
    /// only when ssh failed before sending the script, when `consume` saw no output.
    fn stream<T>(
        &self,
        script: &str,
        limit: Duration,
        mut consume: impl FnMut(&mut dyn std::io::Read) -> Result<T>,
    ) -> Result<T> {
        use std::io::Read;
        use std::os::unix::process::CommandExt;
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(500 << attempt));
            }
            let mut cmd = self.blocking_command(script)?;
            cmd.stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                // Ours alone, so the watchdog's kill reaches a ProxyCommand too.
                .process_group(0);
            let mut child = cmd.spawn().context("cannot run ssh")?;
            let group = ProcId::of(child.id() as i32);
            let (done, watch) = std::sync::mpsc::channel::<()>();
            let watchdog = std::thread::spawn(move || {
                if watch.recv_timeout(limit) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
                    if let Some(g) = group.filter(|g| !super::cleanup::group_members(g).is_empty())
                    {
                        let _ = nix::sys::signal::killpg(
                            nix::unistd::Pid::from_raw(g.pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                    return true;
                }
                false
            });
            let stderr = child.stderr.take().map(|mut e| {
                std::thread::spawn(move || {
                    let mut text = String::new();
                    let _ = e.read_to_string(&mut text);
                    text
                })
            });
            let mut out = child.stdout.take().context("ssh has no stdout")?;
            let got = consume(&mut out);
            // Whatever `consume` left unread, so ssh is not stuck on a full pipe.
            let _ = std::io::copy(&mut out, &mut std::io::sink());
            let status = child.wait().context("waiting for ssh")?;
            let _ = done.send(());
            let timed_out = watchdog.join().unwrap_or(false);
            let err = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
            if timed_out {
                bail!(
                    "node {} ({}): no answer within {}s (killed ssh): {}",
                    self.node.name,
                    self.node.endpoint(),
                    limit.as_secs(),
                    err.trim()
                );
            }
            if status.code() == Some(255) && never_sent(&err) {
                last = err;
                continue;
            }
            let got = got?;
            if !status.success() {
                let out = self.explained(Output {
                    status,
                    stdout: Vec::new(),
                    stderr: err.clone().into_bytes(),
                })?;
                bail!(
                    "node {} ({}): the command failed ({}): {}",
                    self.node.name,
                    self.node.endpoint(),
                    out.status,
                    err.trim()
                );
            }
            return Ok(got);
        }
        self.gave_up(&last)
    }

    /// Start a node daemon: its own session (so its PID is its process group), output to
    /// files on the node, its PID in `node.pid` beside them (for a person on the host), and
    /// PID and start time in `node.proc`, which host cleanup reads too: a controller
    /// killed before it recorded the node still leaves it findable. Returns the PID and
    /// start time.
    pub async fn spawn(&self, spec: &SpawnSpec) -> Result<RemoteProc> {
        let env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let dirs = [
            spec.cwd.display().to_string(),
            parent(&spec.stdout),
            parent(&spec.stderr),
        ];
        // The node starts as a subshell that records its own /proc stat line (`read` is
        // a builtin, so /proc/self is the subshell) and then becomes the node by exec: its
        // start time is known even if it exits at once (a start command that backgrounds
        // the real node). In a cgroup it first moves itself in (`0` is the writer), so the
        // node and everything it forks are inside before its first instruction. The
        // cgroup is recorded by the caller before it is created here; a restart reuses it.
        let logs = parent(&spec.stdout);
        let stat = quote(&format!("{logs}/node.stat"))?.into_owned();
        let (setup, join) = match &spec.cgroup {
            Some(cg) => {
                let cg = cg.display().to_string();
                (
                    format!(
                        "mkdir -p {p}\n[ -d {c} ] || mkdir {c}\n",
                        p = quote(&parent(Path::new(&cg)))?,
                        c = quote(&cg)?,
                    ),
                    format!("echo 0 > {} && ", quote(&format!("{cg}/cgroup.procs"))?),
                )
            }
            None => (String::new(), String::new()),
        };
        let script = format!(
            "set -e\nmkdir -p {dirs}\ncd {cwd}\n{setup}rm -f {stat}\n\
             ( read -r st < /proc/self/stat && echo \"$st\" > {stat}.tmp && mv {stat}.tmp {stat} && {join}exec env {env} setsid {argv} ) > {out} 2> {err} < /dev/null &\n\
             pid=$!\necho \"$pid\" > {pidfile}\n\
             i=0; while [ ! -f {stat} ]; do i=$((i+1)); [ $i -gt 100 ] && {{ echo 'the node did not start within 5 s' >&2; exit 1; }}; sleep 0.05; done\n\
             proc=\"$pid $(sed 's/^.*) //' {stat} | cut -d' ' -f20)\"\necho \"$proc\" > {procfile}\necho \"$proc\"\n",
            pidfile = quote(&format!("{logs}/node.pid"))?,
            procfile = quote(&format!("{logs}/{NODE_PROC}"))?,
            dirs = shell::join(&dirs)?,
            cwd = quote(&spec.cwd.display().to_string())?,
            env = shell::join(&env)?,
            argv = shell::join(&spec.argv)?,
            out = quote(&spec.stdout.display().to_string())?,
            err = quote(&spec.stderr.display().to_string())?,
        );
        let line = self.check(&script, "starting the node").await?;
        parse_proc(&line).ok_or_else(|| {
            anyhow!(
                "node {}: the start script printed {line:?}, not a PID and start time",
                self.node.name
            )
        })
    }

    /// Signal a node: every process of its cgroup when it has one, else its process group
    /// if it still runs.
    pub async fn signal(&self, p: RemoteProc, cgroup: Option<&str>, sig: &str) -> Result<()> {
        let script = match cgroup {
            Some(cg) => format!("{CGROUP_FN}\nsigall {} {sig}", quote(cg)?),
            None => format!(
                "{ALIVE_FN}\nif alive {pid} {t}; then kill -s {sig} -- -{pid}; fi",
                pid = p.pid,
                t = p.start_ticks
            ),
        };
        self.check(&script, &format!("kill -s {sig}")).await?;
        Ok(())
    }

    /// Whether the node runs: its process, or — with a cgroup — anything left in it.
    pub async fn state(&self, p: RemoteProc, cgroup: Option<&str>) -> Result<RemoteState> {
        let cg = match cgroup {
            Some(cg) => format!("elif populated {}; then echo detached; ", quote(cg)?),
            None => String::new(),
        };
        let script = format!(
            "{ALIVE_FN}\n{CGROUP_FN}\nif alive {} {}; then echo running; {cg}fi",
            p.pid, p.start_ticks
        );
        let out = self.check(&script, "checking the node").await?;
        Ok(match out.trim() {
            "running" => RemoteState::Running,
            "detached" => RemoteState::Detached,
            _ => RemoteState::Gone,
        })
    }

    /// Wait up to `limit` for the node to be gone (its cgroup empty, when it has one);
    /// true if it is.
    pub async fn wait_gone(
        &self,
        p: RemoteProc,
        cgroup: Option<&str>,
        limit: Duration,
    ) -> Result<bool> {
        let tries = (limit.as_millis() / 100).max(1);
        let test = match cgroup {
            Some(cg) => format!("populated {}", quote(cg)?),
            None => format!("alive {} {}", p.pid, p.start_ticks),
        };
        let script = format!(
            "{ALIVE_FN}\n{CGROUP_FN}\ni=0\nwhile {test}; do i=$((i+1)); [ $i -gt {tries} ] && exit 1; sleep 0.1; done\nexit 0"
        );
        Ok(self.run(&script, &[]).await?.status.success())
    }

    /// Kill everything in a node's cgroup (`cgroup.kill`) and wait until it is empty.
    pub async fn kill_cgroup(&self, cgroup: &str) -> Result<()> {
        self.check(
            &format!("{CGROUP_FN}\nkillcg {}", quote(cgroup)?),
            "killing the node's cgroup",
        )
        .await?;
        Ok(())
    }
}

/// Run `cmd` (stdin empty) to its end, or kill it — with everything it started — once
/// `limit` has passed. The output pipes are read by threads, so a chatty command cannot
/// block on a full pipe while we wait.
fn bounded_output(mut cmd: std::process::Command, limit: Duration) -> Result<Output> {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    let program = cmd.get_program().to_string_lossy().into_owned();
    // Its own process group (ours: created here), so a timeout kills whatever it spawned
    // (a ProxyCommand) along with it.
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run {program}"))?;
    let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
    let group = ProcId::of(child.id() as i32);
    let (tx, rx) = std::sync::mpsc::channel();
    for (which, pipe) in [
        (
            0,
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ),
        (
            1,
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            let _ = tx.send((which, buf));
        });
    }
    drop(tx);
    let deadline = std::time::Instant::now() + limit;
    // Once the leader is reaped, only while the group provably is still the one we made.
    let kill = || {
        if group.is_some_and(|g| !super::cleanup::group_members(&g).is_empty()) {
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        }
    };
    let status = loop {
        if let Some(st) = child.try_wait().context("waiting for ssh")? {
            break Some(st);
        }
        if std::time::Instant::now() >= deadline {
            kill();
            child.wait().context("waiting for ssh")?;
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let got = match rx.recv_timeout(left.max(Duration::from_millis(100))) {
            Ok(got) => got,
            Err(_) => {
                // Something of the group still holds a pipe open after the deadline.
                kill();
                match rx.recv_timeout(Duration::from_secs(1)) {
                    Ok(got) => got,
                    Err(_) => break,
                }
            }
        };
        match got {
            (0, b) => stdout = b,
            (_, b) => stderr = b,
        }
    }
    match status {
        Some(status) => Ok(Output {
            status,
            stdout,
            stderr,
        }),
        None => bail!(
            "no answer within {}s (killed {program}): {}",
            limit.as_secs(),
            String::from_utf8_lossy(&stderr).trim()
        ),
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

/// The script that removes everything a run left on one node: a `clock: system` host's
/// clock (restored once), its processes (whole process groups, guarded by start time: the
/// recorded ones and any a `node.proc` in the run's directory names), faultline's nftables
/// tables, and the run's directory (kept if the clock could not be restored, since it holds
/// the record of the step).
pub fn cleanup_script(host: &super::cleanup::RemoteHost) -> Result<String> {
    let run_dir = &host.dir;
    let mut s = format!("{GROUP_FN}\nclock_failed=\n");
    if host.clock_origin.is_some() {
        s.push_str(&clock_undo_script(run_dir)?);
    } else if host.clock_offset_ms != 0 {
        // A state file from before clock origins were recorded: step back as it was.
        s.push_str(&format!(
            "{} || clock_failed=1\n",
            legacy_step_clock_script(-host.clock_offset_ms)
        ));
    }
    let mut groups: Vec<String> = host
        .groups
        .iter()
        .map(|p| format!("{} {}", p.pid, p.start_ticks))
        .collect();
    groups.push(format!(
        "$(find {} -name {NODE_PROC} -exec cat {{}} + 2>/dev/null)",
        quote(run_dir)?
    ));
    if let Some(cg) = &host.cgroup {
        // Before the groups: the cgroup holds every process the node started, also one
        // that left its group. Removed only once empty (rmdir fails otherwise); the run's
        // cgroup above it goes with the last node of the host.
        s.push_str(&format!(
            "{CGROUP_FN}\nkillcg {c} || exit 1\nif [ -d {c} ] && ! rmdir {c}; then echo 'cannot remove cgroup '{c} >&2; exit 1; fi\nrmdir {p} 2>/dev/null || true\n",
            c = quote(cg)?,
            p = quote(&parent(Path::new(cg)))?,
        ));
    }
    s.push_str(&format!("groups=\"{}\"\n", groups.join("\n")));
    s.push_str(
        "valid() { case \"$1$2\" in ''|*[!0-9]*) return 1;; esac; }\n\
         echo \"$groups\" | while read -r pid t; do valid \"$pid\" \"$t\" && killgroup \"$pid\" \"$t\"; done\n\
         echo \"$groups\" | while read -r pid t; do valid \"$pid\" \"$t\" || continue; gonegroup \"$pid\" \"$t\" || exit 1; done || exit 1\n",
    );
    for t in [super::PARTITION_TABLE, super::LOSS_TABLE] {
        s.push_str(&format!(
            "if command -v nft >/dev/null; then nft delete table inet {t} 2>/dev/null || true; fi\n"
        ));
    }
    s.push_str("[ -z \"$clock_failed\" ] || exit 1\n");
    s.push_str(&format!("rm -rf {}\n", quote(run_dir)?));
    // The run's directory holds one directory per node; the last node out removes it
    // (several nodes may share a machine, so only when empty).
    if let Some(parent) = Path::new(run_dir).parent() {
        s.push_str(&format!(
            "rmdir {} 2>/dev/null || true\n",
            quote(&parent.display().to_string())?
        ));
    }
    Ok(s)
}

/// The record of a `clock: system` host's first step, in the run's directory on the host:
/// "BOOT_ID REAL UPTIME" (see [`ClockOrigin`]). It exists exactly while the clock may be
/// stepped, and whoever renames it away owns the one undo.
fn clock_record(run_dir: &str) -> String {
    format!("{}/clock.stepped", run_dir.trim_end_matches('/'))
}

/// Prints a host's [`ClockOrigin`]: boot id, real time, uptime (one line each).
pub const CLOCK_ORIGIN_SCRIPT: &str =
    "cat /proc/sys/kernel/random/boot_id && date +%s.%N && cut -d' ' -f1 /proc/uptime";

pub fn parse_clock_origin(text: &str) -> Option<ClockOrigin> {
    let mut it = text.split_whitespace();
    let origin = ClockOrigin {
        boot_id: it.next()?.to_string(),
        real: it.next()?.to_string(),
        uptime: it.next()?.to_string(),
    };
    let numeric = |s: &str| s.parse::<f64>().is_ok_and(f64::is_finite);
    (numeric(&origin.real) && numeric(&origin.uptime) && it.next().is_none()).then_some(origin)
}

/// Shell that sets the real clock to the origin's time plus the boot-time clock's progress
/// since, plus `offset_ms`, from the record in `$1`; fails after a reboot (then the
/// pairing means nothing).
fn set_from_record(offset_ms: i64) -> String {
    format!(
        "read -r boot real up < \"$m\" || exit 1\n\
         [ \"$boot\" = \"$(cat /proc/sys/kernel/random/boot_id)\" ] || {{ echo 'the host rebooted since its clock was first stepped' >&2; exit 1; }}\n\
         date -s \"@$(awk -v r=\"$real\" -v u=\"$up\" -v o={offset_ms} 'NR == 1 {{ printf \"%.3f\", r + ($1 - u) + o / 1000 }}' /proc/uptime)\" >/dev/null\n"
    )
}

/// A script that sets a `clock: system` host's real clock to `offset_ms` from the right
/// time: absolute (the origin plus elapsed boot time), so steps do not accumulate errors
/// and repeating one is harmless. Writes the record first, so that nothing can step the
/// clock without leaving the record cleanup undoes from.
pub fn step_clock_script(run_dir: &str, origin: &ClockOrigin, offset_ms: i64) -> Result<String> {
    Ok(format!(
        "m={m}\nmkdir -p {d} || exit 1\n\
         if [ ! -f \"$m\" ]; then printf '%s %s %s\\n' {b} {r} {u} > \"$m.tmp\" && mv \"$m.tmp\" \"$m\" || exit 1; fi\n{set}",
        m = quote(&clock_record(run_dir))?,
        d = quote(run_dir)?,
        b = quote(&origin.boot_id)?,
        r = quote(&origin.real)?,
        u = quote(&origin.uptime)?,
        set = set_from_record(offset_ms),
    ))
}

/// A script that restores a `clock: system` host's clock at most once: the record is
/// claimed by an atomic rename, so of two cleanups (teardown and a sweep, two sweeps, a heal
/// and a sweep) only one restores; the other finds no record and does nothing. A failed
/// restore puts the record back for the next attempt. Sets `clock_failed` on failure.
pub fn clock_undo_script(run_dir: &str) -> Result<String> {
    Ok(format!(
        "m={m}\n\
         if mv -f \"$m\" \"$m.undoing\" 2>/dev/null; then\n\
           if (m=\"$m.undoing\"\n{set}); then rm -f \"$m.undoing\"\n\
           elif [ \"$(cut -d' ' -f1 \"$m.undoing\")\" != \"$(cat /proc/sys/kernel/random/boot_id)\" ]; then rm -f \"$m.undoing\"; clock_failed=1\n\
           else mv -f \"$m.undoing\" \"$m\"; echo 'cannot restore the clock' >&2; clock_failed=1; fi\n\
         fi\n",
        m = quote(&clock_record(run_dir))?,
        set = set_from_record(0),
    ))
}

/// Steps the clock by `delta_ms` relative to its current time: only for undoing the steps
/// recorded by a faultline that did not record clock origins yet.
fn legacy_step_clock_script(delta_ms: i64) -> String {
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
    /// Each node's cgroup on its host (`<cgroup2 mount>/faultline/<run id>/<node>`), or
    /// why its host has none (the node is then tracked by process group only).
    cgroups: BTreeMap<String, CgroupSupport>,
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
            cgroups: BTreeMap::new(),
            _masters: Vec::new(),
        };
        let support = check_all(hosts.conns.values(), needs).await?;
        for (c, s) in hosts.conns.values().zip(support) {
            let name = &c.node.name;
            let cg = s.map(|mount| format!("{mount}/{}/{run_id}/{name}", super::cgroup::PARENT));
            match &cg {
                Ok(dir) => tracing::info!("{name}: node cgroup {dir} on its host"),
                Err(why) => tracing::info!(
                    "{name}: node processes on its host are tracked by process group only ({why}): a node that leaves its group (a daemon calling setsid) is neither killed nor seen"
                ),
            }
            hosts.cgroups.insert(name.clone(), cg);
        }
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
async fn check_all<'a>(
    conns: impl Iterator<Item = &'a SshConn>,
    needs: Needs,
) -> Result<Vec<CgroupSupport>> {
    let conns: Vec<&SshConn> = conns.collect();
    let mut problems = Vec::new();
    let mut support = Vec::new();
    for r in futures::future::join_all(conns.iter().map(|c| preflight(c, needs))).await {
        match r {
            Ok(s) => support.push(s),
            Err(e) => problems.push(format!("{e:#}")),
        }
    }
    if !problems.is_empty() {
        bail!(
            "{} of {} SSH hosts are not usable:\n  {}",
            problems.len(),
            conns.len(),
            problems.join("\n  ")
        );
    }
    Ok(support)
}

/// The checks a run makes before it starts, for callers that run many (a campaign checks
/// its inventory once, before its first run). Connects without a master.
pub async fn check_inventory(nodes: &[SshNode], needs: Needs) -> Result<()> {
    let dir = std::env::temp_dir();
    let conns: Vec<SshConn> = nodes
        .iter()
        .map(|n| SshConn::new(n.clone(), dir.join(format!("fl-nomaster-{}", n.name))))
        .collect();
    check_all(conns.iter(), needs).await.map(drop)
}

/// Whether a host can give its nodes cgroups: the cgroup2 mount, or why not.
type CgroupSupport = std::result::Result<String, String>;

/// One round trip that proves the node is reachable with the key, that sudo works
/// without a password when asked for, and that the tools the run needs are there; it also
/// finds out whether nodes can have cgroups there.
async fn preflight(c: &SshConn, needs: Needs) -> Result<CgroupSupport> {
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
        d = quote(&n.dir)?
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
    script.push_str(CGROUP_PROBE);
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
        let theirs = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with("cgroup"))
            .collect::<String>()
            .trim()
            .to_string();
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
    let stdout = String::from_utf8_lossy(&out.stdout);
    Ok(stdout
        .lines()
        .find_map(|l| l.strip_prefix("cgroup2=").map(str::to_string))
        .ok_or_else(|| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix("cgroup: ").map(str::to_string))
                .unwrap_or_else(|| "the host did not say whether it has cgroup v2".into())
        }))
}

impl SshHosts {
    pub fn conn(&self, node: &str) -> Result<&SshConn> {
        self.conns
            .get(node)
            .ok_or_else(|| anyhow!("no SSH host for node {node}"))
    }

    /// `node`'s cgroup on its host, if the host has cgroups.
    pub fn cgroup(&self, node: &str) -> Option<&str> {
        self.cgroups.get(node)?.as_deref().ok()
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

impl SshHosts {
    /// Run a target's clock probe (`argv`) on `node`'s host under the preload its node
    /// would get there (that host's libfaketime, [`crate::spec::target::preload_env`], an
    /// offset file in the run's directory set back 30 s), bounded like the local probe.
    /// `Ok(None)` when it ran cleanly, `Ok(Some(why))` in the local probe's words.
    pub async fn probe_clock(&self, node: &str, argv: &[String]) -> Result<Option<String>> {
        let limit_s = 10;
        let root = self.root(node)?;
        let file = format!("{root}/clock.probe");
        let lib = self.libfaketime(node).await?;
        let env: Vec<String> = crate::spec::target::preload_env(&lib, &file)
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let script = format!(
            "mkdir -p {d} && printf '%s\\n' -30.000 > {f} || exit 125\nenv {env} timeout -s KILL {limit_s} {argv} < /dev/null > /dev/null",
            d = quote(root)?,
            f = quote(&file)?,
            env = shell::join(&env)?,
            argv = shell::join(argv)?,
        );
        let out = self.conn(node)?.run(&script, &[]).await?;
        let err = String::from_utf8_lossy(&out.stderr);
        Ok(match out.status.code() {
            Some(0) => None,
            Some(125) => bail!("node {node}: cannot write {file}: {}", err.trim()),
            Some(137) => Some(format!(
                "`{}` did not finish within {limit_s} s under libfaketime",
                argv.join(" ")
            )),
            _ => Some(crate::spec::target::probe_failure(
                argv,
                &out.status.to_string(),
                &err,
            )),
        })
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
/// Hosts are cleaned in parallel, each bounded by [`CLEANUP_TIMEOUT`].
pub fn remove_remote(hosts: &[super::cleanup::RemoteHost]) -> Vec<String> {
    std::thread::scope(|scope| {
        let jobs: Vec<_> = hosts
            .iter()
            .map(|h| scope.spawn(move || remove_host(h)))
            .collect();
        jobs.into_iter()
            .filter_map(|j| {
                j.join()
                    .unwrap_or_else(|_| Some("host cleanup panicked".into()))
            })
            .collect()
    })
}

fn remove_host(h: &super::cleanup::RemoteHost) -> Option<String> {
    let conn = SshConn::new(h.ssh.clone(), h.control.clone());
    match cleanup_script(h).and_then(|script| conn.run_blocking(&script)) {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "node {} ({}): cleanup failed: {}",
            h.ssh.name,
            h.ssh.endpoint(),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Some(format!("{e:#}")),
    }
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
    }

    /// A directory with stand-ins for `date` (records what `date -s` is asked, fails while
    /// a `fail` file exists) and `nft` (does nothing), for running host scripts here
    /// without touching this machine's clock or firewall.
    struct Fakes {
        dir: PathBuf,
    }

    impl Fakes {
        fn new(test: &str) -> Fakes {
            let dir = std::env::temp_dir().join(format!("fl-{test}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let bin = dir.join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            let d = dir.display();
            for (name, body) in [
                (
                    "date",
                    format!("if [ \"$1\" = -s ]; then [ -e {d}/fail ] && exit 1; echo \"$2\" >> {d}/set; else echo 1000.500000000; fi\n"),
                ),
                ("nft", String::new()),
            ] {
                let f = bin.join(name);
                std::fs::write(&f, format!("#!/bin/sh\n{body}")).unwrap();
                std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                    .unwrap();
            }
            Fakes { dir }
        }

        /// Run `script` with the stand-ins first on PATH; refuses to run it at all unless
        /// `date` really is the stand-in.
        fn run(&self, script: &str) -> std::process::Output {
            let bin = self.dir.join("bin");
            let guard = format!(
                "[ \"$(command -v date)\" = {}/date ] || exit 99\n",
                bin.display()
            );
            let out = std::process::Command::new("sh")
                .args(["-c", &format!("{guard}{script}")])
                .env(
                    "PATH",
                    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
                )
                .output()
                .unwrap();
            assert_ne!(
                out.status.code(),
                Some(99),
                "the fake date is not first on PATH"
            );
            out
        }

        /// What `date -s` was asked so far, as seconds.
        fn steps(&self) -> Vec<f64> {
            std::fs::read_to_string(self.dir.join("set"))
                .unwrap_or_default()
                .lines()
                .map(|l| l.trim_start_matches('@').parse().unwrap())
                .collect()
        }
    }

    impl Drop for Fakes {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    pub(super) fn test_node() -> SshNode {
        SshNode {
            name: "n1".into(),
            address: std::net::Ipv4Addr::new(10, 213, 0, 2),
            ssh_host: "10.213.0.2".into(),
            ssh_port: 22,
            user: "root".into(),
            key: None,
            sudo: false,
            dir: "/tmp/faultline".into(),
            host_keys: crate::spec::inventory::HostKeys::Strict,
            known_hosts: None,
            clock: ClockMode::System,
        }
    }

    /// This machine's origin with the real time replaced by 1000 s, so steps are easy to
    /// read.
    fn origin_here() -> ClockOrigin {
        let text = std::process::Command::new("sh")
            .args(["-c", CLOCK_ORIGIN_SCRIPT])
            .output()
            .unwrap();
        let mut o = parse_clock_origin(&String::from_utf8_lossy(&text.stdout)).unwrap();
        o.real = "1000.000".into();
        o
    }

    fn near(got: f64, want: f64) -> bool {
        (got - want).abs() < 2.0
    }

    #[test]
    fn clock_steps_are_absolute_and_undone_exactly_once() {
        let fakes = Fakes::new("clock-once");
        let run_dir = fakes.dir.join("run").join("n1").display().to_string();
        let o = origin_here();
        for offset in [5_000, -60_000] {
            let out = fakes.run(&step_clock_script(&run_dir, &o, offset).unwrap());
            assert!(out.status.success(), "{out:?}");
        }
        let steps = fakes.steps();
        assert!(near(steps[0], 1005.0) && near(steps[1], 940.0), "{steps:?}");
        assert!(Path::new(&clock_record(&run_dir)).exists());
        // Teardown and a sweep (or two sweeps) both run the undo; one restores.
        let undo = format!(
            "{}[ -z \"$clock_failed\" ]",
            clock_undo_script(&run_dir).unwrap()
        );
        for _ in 0..2 {
            assert!(fakes.run(&undo).status.success());
        }
        let steps = fakes.steps();
        assert_eq!(steps.len(), 3, "{steps:?}");
        assert!(near(steps[2], 1000.0), "{steps:?}");
        assert!(!Path::new(&clock_record(&run_dir)).exists());
    }

    #[test]
    fn a_failed_clock_restore_keeps_the_record_and_the_run_directory() {
        let fakes = Fakes::new("clock-fail");
        let run_dir = fakes.dir.join("run").join("n1").display().to_string();
        assert!(fakes
            .run(&step_clock_script(&run_dir, &origin_here(), 5_000).unwrap())
            .status
            .success());
        let host = crate::hosts::cleanup::RemoteHost {
            ssh: test_node(),
            control: PathBuf::from("/nonexistent"),
            dir: run_dir.clone(),
            groups: Vec::new(),
            clock_offset_ms: 5_000,
            clock_origin: Some(origin_here()),
            cgroup: None,
        };
        std::fs::write(fakes.dir.join("fail"), "").unwrap();
        let out = fakes.run(&cleanup_script(&host).unwrap());
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("cannot restore the clock"));
        assert!(
            Path::new(&clock_record(&run_dir)).exists(),
            "kept for the next try"
        );
        std::fs::remove_file(fakes.dir.join("fail")).unwrap();
        let out = fakes.run(&cleanup_script(&host).unwrap());
        assert!(out.status.success(), "{out:?}");
        assert!(near(*fakes.steps().last().unwrap(), 1000.0));
        assert!(!Path::new(&run_dir).exists());
        // An old state file (offset, no origin) is still undone, relative to now.
        let old = crate::hosts::cleanup::RemoteHost {
            clock_origin: None,
            ..host
        };
        assert!(cleanup_script(&old)
            .unwrap()
            .contains(&legacy_step_clock_script(-5_000)));
    }

    /// A wrapper shell (the group's leader) whose `sleep` outlives it once the shell is
    /// SIGKILLed and reaped; returns the group as recorded and the sleep's PID.
    fn orphaned_group() -> (RemoteProc, i32) {
        use std::os::unix::process::CommandExt;
        let mut sh = std::process::Command::new("sh")
            .args(["-c", "sleep 1000 & wait"])
            .process_group(0)
            .spawn()
            .unwrap();
        let id = ProcId::of(sh.id() as i32).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let sleep = loop {
            let m = crate::hosts::cleanup::group_members(&id);
            if let Some(p) = m.iter().find(|p| **p != id.pid) {
                break *p;
            }
            assert!(std::time::Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(10));
        };
        sh.kill().unwrap();
        sh.wait().unwrap();
        (
            RemoteProc {
                pid: id.pid,
                start_ticks: id.start_ticks,
            },
            sleep,
        )
    }

    fn gone(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
    }

    #[test]
    fn host_cleanup_kills_whole_groups_recorded_or_named_in_node_proc() {
        let fakes = Fakes::new("groups");
        let run_dir = fakes.dir.join("run").join("n1");
        let logs = run_dir.join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let (recorded, sleep1) = orphaned_group();
        // A node the controller never recorded (killed right after starting it).
        let (unrecorded, sleep2) = orphaned_group();
        std::fs::write(
            logs.join(NODE_PROC),
            format!("{} {}\n", unrecorded.pid, unrecorded.start_ticks),
        )
        .unwrap();
        // A stale record naming this process with another start time: not ours, spared.
        let me = ProcId::of(std::process::id() as i32).unwrap();
        let impostor = RemoteProc {
            pid: me.pid,
            start_ticks: me.start_ticks + 1,
        };
        let host = crate::hosts::cleanup::RemoteHost {
            ssh: test_node(),
            control: PathBuf::from("/nonexistent"),
            dir: run_dir.display().to_string(),
            groups: vec![recorded, impostor],
            clock_offset_ms: 0,
            clock_origin: None,
            cgroup: None,
        };
        let out = fakes.run(&cleanup_script(&host).unwrap());
        assert!(out.status.success(), "{out:?}");
        assert!(gone(sleep1) && gone(sleep2));
        assert!(!run_dir.exists());
        assert!(fakes.steps().is_empty(), "no clock was touched");
    }

    #[test]
    fn the_teardown_message_claims_no_process_only_when_every_host_had_cgroups() {
        use crate::hosts::cleanup::{teardown_summary, RemoteHost, Resources};
        let host = |cgroup: Option<&str>| RemoteHost {
            ssh: test_node(),
            control: PathBuf::from("/nonexistent"),
            dir: "/tmp/x".into(),
            groups: Vec::new(),
            clock_offset_ms: 0,
            clock_origin: None,
            cgroup: cgroup.map(str::to_string),
        };
        let res = |hosts: Vec<RemoteHost>| Resources {
            remote: hosts,
            ..Resources::default()
        };
        let all = teardown_summary(&res(vec![host(Some("/cg/a")), host(Some("/cg/b"))]));
        assert!(all.contains("no node process left"), "{all}");
        let some = teardown_summary(&res(vec![host(Some("/cg/a")), host(None)]));
        assert!(!some.contains("no node process left"), "{some}");
        assert!(some.contains("not tracked"), "{some}");
    }

    /// The host's cleanup script, run here against this machine's cgroup v2: a daemon
    /// that left its process group (never recorded anywhere) is killed with its cgroup,
    /// and the cgroup and the run's cgroup above it are removed.
    #[test]
    fn host_cleanup_kills_and_removes_a_node_cgroup() {
        let probe = std::process::Command::new("sh")
            .args(["-c", CGROUP_PROBE])
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&probe.stdout).to_string();
        let Some(mount) = said.trim().strip_prefix("cgroup2=") else {
            eprintln!("skipped: no cgroups here: {said}");
            return;
        };
        let fakes = Fakes::new("cgroup");
        let run = format!("{mount}/faultline/sshtest-{}", std::process::id());
        let cg = format!("{run}/n1");
        let start = format!(
            "mkdir -p {run} && mkdir {cg} && ( echo 0 > {cg}/cgroup.procs && exec setsid sh -c 'sleep 1000 & echo $!' ) > {d}/pid 2> /dev/null",
            d = fakes.dir.display()
        );
        assert!(fakes.run(&start).status.success());
        std::thread::sleep(Duration::from_millis(200));
        let daemon: i32 = std::fs::read_to_string(fakes.dir.join("pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(!gone(daemon));
        let host = crate::hosts::cleanup::RemoteHost {
            ssh: test_node(),
            control: PathBuf::from("/nonexistent"),
            dir: fakes.dir.join("run").join("n1").display().to_string(),
            groups: Vec::new(),
            clock_offset_ms: 0,
            clock_origin: None,
            cgroup: Some(cg.clone()),
        };
        let out = fakes.run(&cleanup_script(&host).unwrap());
        assert!(out.status.success(), "{out:?}");
        assert!(gone(daemon), "the daemon outlived its cgroup");
        assert!(!Path::new(&cg).exists() && !Path::new(&run).exists());
        // Again (a sweep after teardown): nothing to do, and no error.
        assert!(fakes.run(&cleanup_script(&host).unwrap()).status.success());
    }

    #[test]
    fn only_failures_before_sending_are_retried() {
        for sent in [
            "ssh: connect to host 10.213.0.5 port 22: Connection refused",
            "ssh: connect to host 10.213.0.5 port 22: No route to host",
            "kex_exchange_identification: read: Connection reset by peer",
            "kex_exchange_identification: Connection closed by remote host",
            "Connection timed out during banner exchange",
        ] {
            assert!(never_sent(sent), "{sent}");
        }
        for maybe in [
            "Connection to 10.213.0.5 closed by remote host.",
            "client_loop: send disconnect: Broken pipe",
            "Timeout, server 10.213.0.5 not responding.",
            "read from socket failed: Connection reset by peer",
            "Connection closed by 10.213.0.5 port 22",
            "mux_client_request_session: read from master failed: Broken pipe",
            // The host had ConnectTimeout to answer; see `never_sent`.
            "ssh: connect to host 10.213.0.5 port 22: Connection timed out",
            "root@10.213.0.5: Permission denied (publickey).",
        ] {
            assert!(!never_sent(maybe), "{maybe}");
        }
    }

    #[test]
    fn a_hung_command_is_killed_at_its_limit() {
        let t0 = std::time::Instant::now();
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", "echo started >&2; sleep 1000 & wait"]);
        let err = bounded_output(cmd, Duration::from_millis(300)).unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        assert!(format!("{err:#}").contains("no answer within"), "{err:#}");
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 3"]);
        let out = bounded_output(cmd, Duration::from_secs(10)).unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
    }

    #[test]
    fn clock_origins_parse() {
        let o = parse_clock_origin("0b5c-11\n1700000000.123456789\n12345.67\n").unwrap();
        assert_eq!(o.real, "1700000000.123456789");
        assert_eq!(o.uptime, "12345.67");
        assert_eq!(parse_clock_origin("id\nnot-a-time\n1.0\n"), None);
        assert_eq!(parse_clock_origin("id\n1.0\n"), None);
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
