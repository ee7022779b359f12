//! The cleanup registry: everything a run creates on this machine is recorded here first,
//! and removed on every exit path — success, error, panic (via `Drop`), SIGINT/SIGTERM
//! (the runner turns them into an orderly shutdown) — and, for a controller that was
//! SIGKILLed, by the next faultline invocation ([`sweep_stale`]) from the state file.
//!
//! Only resources this registry recorded are ever touched: processes are killed by process
//! group only while the group leader's start time still matches the one recorded (a
//! recycled PID is never signalled), namespaces and bridges only by their recorded names.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A process we started, identified so that a recycled PID is never mistaken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcId {
    pub pid: i32,
    /// Start time in clock ticks since boot (/proc/PID/stat field 22).
    pub start_ticks: u64,
}

impl ProcId {
    /// Identify a live process; `None` if it is already gone.
    pub fn of(pid: i32) -> Option<ProcId> {
        start_ticks(pid).map(|start_ticks| ProcId { pid, start_ticks })
    }

    /// Whether this very process still runs (not a zombie, not a recycled PID).
    pub fn alive(&self) -> bool {
        match proc_stat(self.pid) {
            Some((state, ticks)) => ticks == self.start_ticks && state != 'Z' && state != 'X',
            None => false,
        }
    }
}

/// What one run owns on this machine.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Resources {
    pub run_id: String,
    pub controller: Option<ProcId>,
    /// Node process groups (each node is the leader of its own group).
    pub groups: Vec<ProcId>,
    pub netns: Vec<String>,
    /// Links in the root namespace (veth host ends, bridges), deleted after the
    /// namespaces. Deleting a namespace removes its veth pair only asynchronously, so they
    /// are deleted explicitly to leave nothing behind by the time teardown returns.
    pub links: Vec<String>,
    /// Files to remove (e.g. a subnet lock).
    pub files: Vec<PathBuf>,
    /// Directories faultline created for this run alone (node data dirs), removed whole.
    #[serde(default)]
    pub dirs: Vec<PathBuf>,
    /// SSH hosts of the run and what it started there (removed first, while the
    /// connection masters — recorded in `groups` — still run).
    #[serde(default)]
    pub remote: Vec<RemoteHost>,
}

/// What a run owns on one SSH host: its node processes, its directory, and (implicitly)
/// faultline's nftables tables there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteHost {
    pub ssh: crate::spec::inventory::SshNode,
    pub control: PathBuf,
    /// This run's directory on the host, removed whole.
    pub dir: String,
    pub groups: Vec<super::ssh::RemoteProc>,
    /// How far a `clock: system` host's real clock is stepped now; stepped back at cleanup.
    #[serde(default)]
    pub clock_offset_ms: i64,
}

/// The registry of one run; cheap to clone, shared by hosts, target and nemesis.
#[derive(Debug, Clone)]
pub struct Registry {
    inner: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct State {
    res: Resources,
    state_file: Option<PathBuf>,
    torn_down: bool,
    /// `--leave-running`: keep everything, tell the user how to remove it later.
    keep: bool,
}

/// Directory of the per-run state files.
pub fn state_dir() -> PathBuf {
    if let Ok(d) = std::env::var("FAULTLINE_STATE_DIR") {
        return PathBuf::from(d);
    }
    let run = Path::new("/run");
    if nix::unistd::access(run, nix::unistd::AccessFlags::W_OK).is_ok() {
        run.join("faultline")
    } else {
        std::env::temp_dir().join("faultline-state")
    }
}

impl Registry {
    pub fn new(run_id: &str) -> Result<Registry> {
        let dir = state_dir();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create state directory {}", dir.display()))?;
        let res = Resources {
            run_id: run_id.to_string(),
            controller: ProcId::of(std::process::id() as i32),
            ..Resources::default()
        };
        let reg = Registry {
            inner: Arc::new(Mutex::new(State {
                res,
                state_file: Some(dir.join(format!("{run_id}.json"))),
                torn_down: false,
                keep: false,
            })),
        };
        reg.persist()?;
        Ok(reg)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock must not stop the cleanup of everything else.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn persist(&self) -> Result<()> {
        let st = self.lock();
        if let Some(path) = &st.state_file {
            let json = serde_json::to_vec_pretty(&st.res)?;
            crate::store::write_atomic(path, &json).context("cannot write the state file")?;
        }
        Ok(())
    }

    pub fn run_id(&self) -> String {
        self.lock().res.run_id.clone()
    }

    /// Record before creating, so a crash in between still leaves a record.
    pub fn add_netns(&self, name: &str) -> Result<()> {
        self.lock().res.netns.push(name.to_string());
        self.persist()
    }

    /// Record a root-namespace link (bridge or veth end) before creating it.
    pub fn add_link(&self, name: &str) -> Result<()> {
        self.lock().res.links.push(name.to_string());
        self.persist()
    }

    pub fn add_file(&self, path: &Path) -> Result<()> {
        self.lock().res.files.push(path.to_path_buf());
        self.persist()
    }

    pub fn add_dir(&self, path: &Path) -> Result<()> {
        self.lock().res.dirs.push(path.to_path_buf());
        self.persist()
    }

    /// Record a node process group right after spawning it.
    pub fn add_group(&self, id: ProcId) -> Result<()> {
        self.lock().res.groups.push(id);
        self.persist()
    }

    /// Forget a group that has been stopped and reaped.
    pub fn remove_group(&self, pid: i32) -> Result<()> {
        self.lock().res.groups.retain(|g| g.pid != pid);
        self.persist()
    }

    /// Record an SSH host before the run touches it.
    pub fn add_remote(
        &self,
        ssh: crate::spec::inventory::SshNode,
        control: &Path,
        dir: &str,
    ) -> Result<()> {
        self.lock().res.remote.push(RemoteHost {
            ssh,
            control: control.to_path_buf(),
            dir: dir.to_string(),
            groups: Vec::new(),
            clock_offset_ms: 0,
        });
        self.persist()
    }

    /// Record a node process started on an SSH host.
    pub fn add_remote_group(&self, node: &str, p: super::ssh::RemoteProc) -> Result<()> {
        self.edit_host(node, |h| h.groups.push(p))
    }

    /// Forget a remote node process that is known to be gone.
    pub fn remove_remote_group(&self, node: &str, pid: i32) -> Result<()> {
        self.edit_host(node, |h| h.groups.retain(|g| g.pid != pid))
    }

    /// Record how far a host's real clock is stepped, before stepping it.
    pub fn set_remote_clock(&self, node: &str, offset_ms: i64) -> Result<()> {
        self.edit_host(node, |h| h.clock_offset_ms = offset_ms)
    }

    fn edit_host(&self, node: &str, edit: impl FnOnce(&mut RemoteHost)) -> Result<()> {
        if let Some(h) = self
            .lock()
            .res
            .remote
            .iter_mut()
            .find(|h| h.ssh.name == node)
        {
            edit(h);
        }
        self.persist()
    }

    /// Keep everything at teardown (`--leave-running`).
    pub fn keep(&self) {
        self.lock().keep = true;
    }

    pub fn snapshot(&self) -> Resources {
        self.lock().res.clone()
    }

    /// Remove everything recorded. Idempotent; errors are collected, not fatal, so one
    /// stuck resource does not keep the others alive.
    pub fn teardown(&self) -> Vec<String> {
        let (res, state_file) = {
            let mut st = self.lock();
            if st.torn_down || st.keep {
                return Vec::new();
            }
            st.torn_down = true;
            (st.res.clone(), st.state_file.clone())
        };
        let problems = remove_resources(&res);
        if problems.is_empty() {
            if let Some(f) = state_file {
                let _ = std::fs::remove_file(f);
            }
        }
        problems
    }
}

impl Drop for State {
    fn drop(&mut self) {
        // Last handle gone (normal end, error or panic unwinding): nothing may outlive it.
        if !self.torn_down && !self.keep {
            self.torn_down = true;
            let problems = remove_resources(&self.res);
            for p in &problems {
                eprintln!("faultline: cleanup: {p}");
            }
            if problems.is_empty() {
                if let Some(f) = &self.state_file {
                    let _ = std::fs::remove_file(f);
                }
            }
        }
    }
}

/// Kill every recorded process group, then delete links, namespaces, files and dirs.
pub fn remove_resources(res: &Resources) -> Vec<String> {
    let mut problems = super::ssh::remove_remote(&res.remote);
    for g in &res.groups {
        if g.alive() {
            // SIGKILL also ends a SIGSTOPped group; no SIGCONT needed.
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(g.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for g in &res.groups {
        while g.alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if g.alive() {
            problems.push(format!(
                "process group {} did not exit after SIGKILL",
                g.pid
            ));
        }
    }
    // Newest first: veth ends (deleting one end removes its peer inside the namespace),
    // then the bridge they were enslaved to; then the namespaces.
    for br in res.links.iter().rev() {
        if link_exists(br) {
            if let Err(e) = run_ip(&["link", "del", br]) {
                if link_exists(br) {
                    problems.push(format!("cannot delete link {br}: {e}"));
                }
            }
        }
    }
    for ns in &res.netns {
        if netns_exists(ns) {
            if let Err(e) = run_ip(&["netns", "del", ns]) {
                problems.push(format!("cannot delete network namespace {ns}: {e}"));
            }
        }
    }
    for f in &res.files {
        if let Err(e) = std::fs::remove_file(f) {
            if e.kind() != std::io::ErrorKind::NotFound {
                problems.push(format!("cannot remove {}: {e}", f.display()));
            }
        }
    }
    for d in &res.dirs {
        if let Err(e) = std::fs::remove_dir_all(d) {
            if e.kind() != std::io::ErrorKind::NotFound {
                problems.push(format!("cannot remove {}: {e}", d.display()));
            }
        }
    }
    problems
}

/// Remove what runs whose controller is gone (SIGKILLed) left behind. Returns what was
/// cleaned, one line per run.
pub fn sweep_stale() -> Vec<String> {
    let mut report = sweep_probes();
    let Ok(entries) = std::fs::read_dir(state_dir()) else {
        return report;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().is_some_and(|x| x == "lock") {
            // A lock nobody holds is a killed run's: taking it and letting go removes it.
            if let Ok(Some(lock)) = super::local::try_lock(&path) {
                drop(lock);
            }
            continue;
        }
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let Ok(res) = serde_json::from_slice::<Resources>(&bytes) else {
            continue;
        };
        if res.controller.is_some_and(|c| c.alive()) {
            continue;
        }
        let problems = remove_resources(&res);
        if problems.is_empty() {
            let _ = std::fs::remove_file(&path);
            report.push(format!(
                "removed what run {} left behind ({} process groups, {} namespaces, {} links, {} SSH hosts)",
                res.run_id,
                res.groups.len(),
                res.netns.len(),
                res.links.len(),
                res.remote.len()
            ));
        } else {
            report.push(format!(
                "run {}: could not clean up: {}",
                res.run_id,
                problems.join("; ")
            ));
        }
    }
    report
}

/// The capability probe creates `fl-probe-<pid>` and deletes it at once; a prober killed
/// in between leaves it. Remove those whose prober is gone.
fn sweep_probes() -> Vec<String> {
    let mut report = Vec::new();
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return report;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("fl-probe-")
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if proc_stat(pid).is_some() {
            continue;
        }
        match run_ip(&["netns", "del", &name]) {
            Ok(()) => report.push(format!(
                "removed probe namespace {name} (its prober is gone)"
            )),
            Err(e) => report.push(format!("cannot remove probe namespace {name}: {e}")),
        }
    }
    report
}

/// Remove the resources of one run by id, live controller or not (`faultline cleanup`
/// after `--leave-running`).
pub fn remove_run(run_id: &str) -> Result<Vec<String>> {
    let path = state_dir().join(format!("{run_id}.json"));
    let bytes =
        std::fs::read(&path).with_context(|| format!("no state file {}", path.display()))?;
    let res: Resources = serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: not a faultline state file", path.display()))?;
    let problems = remove_resources(&res);
    if problems.is_empty() {
        std::fs::remove_file(&path).ok();
    }
    Ok(problems)
}

pub(crate) fn run_ip(args: &[&str]) -> Result<()> {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .context("cannot run `ip` (iproute2)")?;
    if out.status.success() {
        Ok(())
    } else {
        anyhow::bail!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )
    }
}

pub(crate) fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

pub(crate) fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses; fields resume after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    // Field 22 overall is index 19 after pid and comm.
    let ticks = fields.get(19)?.parse().ok()?;
    Some((state, ticks))
}

fn start_ticks(pid: i32) -> Option<u64> {
    proc_stat(pid).map(|(_, t)| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifies_this_process_and_rejects_a_recycled_pid() {
        let me = ProcId::of(std::process::id() as i32).unwrap();
        assert!(me.alive());
        let impostor = ProcId {
            pid: me.pid,
            start_ticks: me.start_ticks + 1,
        };
        assert!(!impostor.alive());
    }

    #[test]
    fn a_killed_group_is_gone_after_removal() {
        use std::os::unix::process::CommandExt;
        let child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let id = ProcId::of(child.id() as i32).unwrap();
        let res = Resources {
            run_id: "t".into(),
            groups: vec![id],
            ..Resources::default()
        };
        // Reap in the background so the zombie disappears as a real parent would.
        let waiter = std::thread::spawn(move || {
            let mut child = child;
            child.wait().unwrap()
        });
        assert!(remove_resources(&res).is_empty());
        assert!(!id.alive());
        waiter.join().unwrap();
    }
}
