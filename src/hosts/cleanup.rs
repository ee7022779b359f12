//! The cleanup registry: everything a run creates on this machine is recorded here first,
//! and removed on every exit path — success, error, panic (via `Drop`), SIGINT/SIGTERM
//! (the runner turns them into an orderly shutdown) — and, for a controller that was
//! SIGKILLed, by the next faultline invocation ([`sweep_stale`]) from the state file.
//!
//! Only resources this registry recorded are ever touched: node cgroups by their recorded
//! paths (everything in them is ours: nodes join them before exec), processes by process
//! group, and only a group that is still the one we created (see [`group_members`]: a
//! recycled PID is never signalled), namespaces and bridges only by their recorded names.
//!
//! A run kept with `--leave-running` is marked `kept` in its state file: sweeps leave it
//! alone (and say so), and only `faultline cleanup RUN_ID` ([`remove_run`]) removes it.

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
    /// Node cgroups (v2) and the run's cgroup above them, in creation order; removed
    /// newest first, before the process groups. Empty where cgroups are unavailable.
    #[serde(default)]
    pub cgroups: Vec<PathBuf>,
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
    /// Mount points of the power-failure filesystem (`super::lazyfs`), recorded before
    /// mounting and detached after the node processes are gone and before the
    /// directories they lie in are removed.
    #[serde(default)]
    pub mounts: Vec<PathBuf>,
    /// SSH hosts of the run and what it started there (removed first, while the
    /// connection masters — recorded in `groups` — still run).
    #[serde(default)]
    pub remote: Vec<RemoteHost>,
    /// `--leave-running`: the run's controller is gone on purpose; only a cleanup that
    /// names the run removes it.
    #[serde(default)]
    pub kept: bool,
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
    /// How far a `clock: system` host's real clock is stepped now (for the record: the
    /// undo restores from `clock_origin`, not by stepping back).
    #[serde(default)]
    pub clock_offset_ms: i64,
    /// A `clock: system` host's time before its clock was first stepped, recorded before
    /// that step; cleanup restores the clock from it (once: see
    /// [`super::ssh::clock_undo_script`]).
    #[serde(default)]
    pub clock_origin: Option<ClockOrigin>,
    /// The node's cgroup on the host, recorded before it is created; cleanup kills
    /// everything in it and removes it. `None` where the host has no usable cgroup v2.
    #[serde(default)]
    pub cgroup: Option<String>,
}

/// A host's real time paired with its boot-time clock (which stepping the real clock does
/// not move), so the right time can be computed at any later moment of the same boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockOrigin {
    /// `/proc/sys/kernel/random/boot_id`: after a reboot the pairing means nothing.
    pub boot_id: String,
    /// Seconds since the epoch, as the host's `date +%s.%N` printed them.
    pub real: String,
    /// Seconds since boot, as `/proc/uptime` printed them at the same moment.
    pub uptime: String,
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
            })),
        };
        reg.persist()?;
        Ok(reg)
    }

    /// A registry without a state file, for tests that must not touch the state directory.
    #[cfg(test)]
    pub(crate) fn in_memory(run_id: &str) -> Registry {
        Registry {
            inner: Arc::new(Mutex::new(State {
                res: Resources {
                    run_id: run_id.to_string(),
                    ..Resources::default()
                },
                state_file: None,
                torn_down: false,
            })),
        }
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

    /// Record a mount point before mounting there.
    pub fn add_mount(&self, path: &Path) -> Result<()> {
        self.lock().res.mounts.push(path.to_path_buf());
        self.persist()
    }

    /// Forget a mount point that was unmounted (or never mounted).
    pub fn remove_mount(&self, path: &Path) -> Result<()> {
        self.lock().res.mounts.retain(|m| m != path);
        self.persist()
    }

    /// Record a cgroup before creating it.
    pub fn add_cgroup(&self, path: &Path) -> Result<()> {
        self.lock().res.cgroups.push(path.to_path_buf());
        self.persist()
    }

    /// Forget a cgroup that turned out not to be ours (it could not be created).
    pub fn forget_cgroup(&self, path: &Path) -> Result<()> {
        self.lock().res.cgroups.retain(|c| c != path);
        self.persist()
    }

    /// Record a node process group right after spawning it.
    pub fn add_group(&self, id: ProcId) -> Result<()> {
        self.lock().res.groups.push(id);
        self.persist()
    }

    /// Forget a group whose leader has been stopped and reaped — unless other members of
    /// it survive (a wrapper shell's children), which teardown must still kill.
    pub fn remove_group(&self, pid: i32) -> Result<()> {
        self.lock()
            .res
            .groups
            .retain(|g| g.pid != pid || !group_members(g).is_empty());
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
            clock_origin: None,
            cgroup: None,
        });
        self.persist()
    }

    /// Record a node process started on an SSH host.
    pub fn add_remote_group(&self, node: &str, p: super::ssh::RemoteProc) -> Result<()> {
        self.edit_host(node, |h| h.groups.push(p))
    }

    /// Record a node's cgroup on its SSH host, before it is created there.
    pub fn set_remote_cgroup(&self, node: &str, cgroup: &str) -> Result<()> {
        self.edit_host(node, |h| h.cgroup = Some(cgroup.to_string()))
    }

    /// Forget a remote node process that is known to be gone.
    pub fn remove_remote_group(&self, node: &str, pid: i32) -> Result<()> {
        self.edit_host(node, |h| h.groups.retain(|g| g.pid != pid))
    }

    /// Record how far a host's real clock is stepped, before stepping it.
    pub fn set_remote_clock(&self, node: &str, offset_ms: i64) -> Result<()> {
        self.edit_host(node, |h| h.clock_offset_ms = offset_ms)
    }

    /// Record a `clock: system` host's time before its clock is first stepped.
    pub fn set_remote_clock_origin(&self, node: &str, origin: ClockOrigin) -> Result<()> {
        self.edit_host(node, |h| h.clock_origin = Some(origin))
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

    /// Keep everything at teardown (`--leave-running`). Marked in the state file too, so
    /// the next run's sweep does not take the cluster for a killed run's leftovers; a
    /// failure to write that is logged (the cluster is kept in this process either way).
    pub fn keep(&self) {
        if let Err(e) = self.try_keep() {
            tracing::info!("cleanup: {e:#}; the next run's sweep may remove the kept cluster");
        }
    }

    /// [`Registry::keep`], reporting whether the mark reached the state file.
    pub fn try_keep(&self) -> Result<()> {
        self.lock().res.kept = true;
        self.persist()
    }

    pub fn snapshot(&self) -> Resources {
        self.lock().res.clone()
    }

    /// Remove everything recorded. Idempotent; errors are collected, not fatal, so one
    /// stuck resource does not keep the others alive.
    pub fn teardown(&self) -> Vec<String> {
        let (res, state_file) = {
            let mut st = self.lock();
            if st.torn_down || st.res.kept {
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
        if !self.torn_down && !self.res.kept {
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

/// The run log's last word on a teardown that reported no problem: it claims that no
/// node process is left only where the cgroups proved it (removing a cgroup succeeds only
/// once it is empty); without them a node that left its process group goes unseen.
pub fn teardown_summary(res: &Resources) -> String {
    if !res.cgroups.is_empty() {
        "teardown complete: node cgroups empty and removed; no node process, namespace or bridge left".into()
    } else if !res.remote.is_empty() && res.remote.iter().all(|h| h.cgroup.is_some()) {
        "teardown complete: node cgroups on the SSH hosts empty and removed; no node process left"
            .into()
    } else if res.remote.is_empty() {
        "teardown complete: no namespace or bridge left, and no process in the nodes' process groups (without cgroups, a node process that left its group is not tracked)".into()
    } else {
        "teardown complete: no node process group left on the SSH hosts (on a host without cgroups, a node process that left its group is not tracked)".into()
    }
}

/// Kill and remove every recorded cgroup, kill every recorded process group, then delete
/// links, namespaces, files and dirs.
pub fn remove_resources(res: &Resources) -> Vec<String> {
    let mut problems = super::ssh::remove_remote(&res.remote);
    let deadline = Instant::now() + Duration::from_secs(10);
    // Node cgroups before the run's cgroup above them (rmdir needs it childless).
    for cg in res.cgroups.iter().rev() {
        if let Err(e) = super::cgroup::remove(cg, deadline) {
            problems.push(e);
        }
    }
    let procs = processes();
    for g in &res.groups {
        // The whole group, not only its leader: a node started through a wrapper shell
        // that does not `exec` leaves its real process behind when the shell dies.
        if !members_in(&procs, g).is_empty() {
            // SIGKILL also ends a SIGSTOPped group; no SIGCONT needed.
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(g.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for g in &res.groups {
        while !group_members(g).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let left = group_members(g);
        if !left.is_empty() {
            problems.push(format!(
                "process group {} did not exit after SIGKILL (pids {left:?})",
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
    // After the processes (a node's working directory keeps its mount busy) and before
    // the directories: removing a data root through a live mount would delete through it,
    // and through a dead one fails with ENOTCONN.
    problems.extend(super::lazyfs::detach(&res.mounts));
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

/// Remove what runs whose controller is gone (SIGKILLed) left behind. Returns one line
/// per run cleaned, per kept (`--leave-running`) run left alone, and per state file that
/// could not be read.
pub fn sweep_stale() -> Vec<String> {
    let mut report = sweep_probes();
    report.extend(sweep_dir(&state_dir()));
    report.extend(super::lazyfs::sweep_stale_mounts());
    report
}

fn sweep_dir(dir: &Path) -> Vec<String> {
    let mut report = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return report,
        Err(e) => {
            report.push(format!(
                "cannot read the state directory {}: {e}; runs killed earlier may have left resources behind",
                dir.display()
            ));
            return report;
        }
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
        // A file we cannot read may stand for resources nobody will ever remove: say so
        // (and leave it for a person to look at) rather than skip it.
        let res = match read_state(&path) {
            Ok(res) => res,
            Err(e) => {
                report.push(format!("skipped a state file: {e:#}"));
                continue;
            }
        };
        if res.kept {
            report.push(format!(
                "run {} was left running (--leave-running); `faultline cleanup {}` removes it",
                res.run_id, res.run_id
            ));
            continue;
        }
        if res.controller.is_some_and(|c| c.alive()) {
            continue;
        }
        let problems = remove_resources(&res);
        if problems.is_empty() {
            let _ = std::fs::remove_file(&path);
            report.push(format!(
                "removed what run {} left behind ({} cgroups, {} process groups, {} namespaces, {} links, {} mounts, {} SSH hosts)",
                res.run_id,
                res.cgroups.len(),
                res.groups.len(),
                res.netns.len(),
                res.links.len(),
                res.mounts.len(),
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

fn read_state(path: &Path) -> Result<Resources> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read state file {}", path.display()))?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: not a faultline state file", path.display()))
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

/// Remove the resources of one run by id, live controller or not (`faultline cleanup
/// RUN_ID`, the way to remove a `--leave-running` cluster).
pub fn remove_run(run_id: &str) -> Result<Vec<String>> {
    remove_run_in(&state_dir(), run_id)
}

fn remove_run_in(dir: &Path, run_id: &str) -> Result<Vec<String>> {
    let path = dir.join(format!("{run_id}.json"));
    if !path.exists() {
        anyhow::bail!(
            "no state file {} (no such run left anything)",
            path.display()
        );
    }
    let res = read_state(&path)?;
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

/// The fields of /proc/PID/stat that cleanup needs.
#[derive(Debug, Clone, Copy)]
struct Stat {
    pid: i32,
    state: char,
    pgid: i32,
    /// Field 22: start time in clock ticks since boot.
    start_ticks: u64,
}

fn stat_of(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses; fields resume after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        pid,
        state: fields.first()?.chars().next()?,
        // Fields 5 and 22 overall are indexes 2 and 19 after pid and comm.
        pgid: fields.get(2)?.parse().ok()?,
        start_ticks: fields.get(19)?.parse().ok()?,
    })
}

fn proc_stat(pid: i32) -> Option<(char, u64)> {
    stat_of(pid).map(|s| (s.state, s.start_ticks))
}

fn start_ticks(pid: i32) -> Option<u64> {
    proc_stat(pid).map(|(_, t)| t)
}

/// Every process visible in /proc (those that vanish while we look are left out).
fn processes() -> Vec<Stat> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(stat_of)
        .collect()
}

/// The live members of process group `g`, which we created with `g` as its leader — also
/// after the leader died. The kernel hands out no PID that is still some group's ID, so
/// while a member lives, `g.pid` names our group; a process whose PID is `g.pid` but that
/// started at another time proves that our group ended and the number was reused (then
/// nothing is ours). Members started no earlier than the leader, which the start-time
/// filter checks as well. What this cannot tell apart: our group gone, its ID reused by a
/// new group whose own leader is gone too — a chain of two PID wraps around within one
/// run's cleanup, which the sweep accepts.
pub fn group_members(g: &ProcId) -> Vec<i32> {
    members_in(&processes(), g)
}

fn members_in(procs: &[Stat], g: &ProcId) -> Vec<i32> {
    if procs
        .iter()
        .any(|p| p.pid == g.pid && p.start_ticks != g.start_ticks)
    {
        return Vec::new();
    }
    procs
        .iter()
        .filter(|p| {
            p.pgid == g.pid && p.start_ticks >= g.start_ticks && p.state != 'Z' && p.state != 'X'
        })
        .map(|p| p.pid)
        .collect()
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

    /// A group whose leader is a shell that started `sleep` without `exec`; returns the
    /// shell (our child) and the group's recorded identity once the sleep runs.
    fn wrapper_group() -> (std::process::Child, ProcId) {
        use std::os::unix::process::CommandExt;
        let child = std::process::Command::new("sh")
            .args(["-c", "sleep 1000 & wait"])
            .process_group(0)
            .spawn()
            .unwrap();
        let id = ProcId::of(child.id() as i32).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while group_members(&id).len() < 2 {
            assert!(Instant::now() < deadline, "the wrapper never started sleep");
            std::thread::sleep(Duration::from_millis(10));
        }
        (child, id)
    }

    /// Kill only the leader and reap it, as a node's death by a fault or a crash would.
    fn orphan(mut leader: std::process::Child) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(leader.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        leader.wait().unwrap();
    }

    #[test]
    fn cleanup_kills_the_rest_of_a_group_whose_leader_died() {
        let (leader, id) = wrapper_group();
        orphan(leader);
        let left = group_members(&id);
        assert_eq!(left.len(), 1, "the sleep outlives its shell: {left:?}");
        let res = Resources {
            run_id: "t".into(),
            groups: vec![id],
            ..Resources::default()
        };
        assert_eq!(remove_resources(&res), Vec::<String>::new());
        assert!(group_members(&id).is_empty());
        // Gone, or a zombie waiting for whoever adopted it.
        assert!(proc_stat(left[0]).is_none_or(|(state, _)| state == 'Z'));
    }

    #[test]
    fn a_reused_group_id_is_not_ours() {
        let me = stat_of(std::process::id() as i32).unwrap();
        let procs = [
            Stat {
                pgid: me.pid,
                start_ticks: 100,
                ..me
            },
            Stat {
                pid: me.pid + 1,
                pgid: me.pid,
                start_ticks: 200,
                ..me
            },
        ];
        let recorded = ProcId {
            pid: me.pid,
            start_ticks: 100,
        };
        assert_eq!(members_in(&procs, &recorded), vec![me.pid, me.pid + 1]);
        // The leader's PID now belongs to a process started at another time: the group
        // we recorded is gone, whatever shares its number now is someone else's.
        let older = ProcId {
            pid: me.pid,
            start_ticks: 50,
        };
        assert!(members_in(&procs, &older).is_empty());
        // Members older than the recorded leader cannot be its group's.
        let orphans = [procs[1]];
        let newer = ProcId {
            pid: me.pid,
            start_ticks: 300,
        };
        assert!(members_in(&orphans, &newer).is_empty());
    }

    #[test]
    fn a_group_with_survivors_stays_recorded_when_its_leader_is_reaped() {
        let reg = Registry::in_memory("t");
        let (leader, id) = wrapper_group();
        reg.add_group(id).unwrap();
        orphan(leader);
        reg.remove_group(id.pid).unwrap();
        assert_eq!(reg.snapshot().groups, vec![id]);
        assert!(reg.teardown().is_empty());
        assert!(group_members(&id).is_empty());
        reg.remove_group(id.pid).unwrap();
        assert!(reg.snapshot().groups.is_empty());
    }

    fn state_dir_for(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fl-sweep-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A controller that is gone (this process with another start time).
    fn dead_controller() -> Option<ProcId> {
        let me = ProcId::of(std::process::id() as i32).unwrap();
        Some(ProcId {
            pid: me.pid,
            start_ticks: me.start_ticks + 1,
        })
    }

    fn sleeper() -> (std::process::Child, ProcId) {
        use std::os::unix::process::CommandExt;
        let child = std::process::Command::new("sleep")
            .arg("1000")
            .process_group(0)
            .spawn()
            .unwrap();
        let id = ProcId::of(child.id() as i32).unwrap();
        (child, id)
    }

    fn write_state(dir: &Path, res: &Resources) -> PathBuf {
        let path = dir.join(format!("{}.json", res.run_id));
        std::fs::write(&path, serde_json::to_vec(res).unwrap()).unwrap();
        path
    }

    #[test]
    fn a_kept_run_survives_sweeps_until_it_is_named() {
        let dir = state_dir_for("kept");
        let (mut kept_node, kept_id) = sleeper();
        let (mut stale_node, stale_id) = sleeper();
        let kept = write_state(
            &dir,
            &Resources {
                run_id: "kept1".into(),
                controller: dead_controller(),
                groups: vec![kept_id],
                kept: true,
                ..Resources::default()
            },
        );
        let stale = write_state(
            &dir,
            &Resources {
                run_id: "stale1".into(),
                controller: dead_controller(),
                groups: vec![stale_id],
                ..Resources::default()
            },
        );
        for _ in 0..2 {
            let report = sweep_dir(&dir);
            let about_kept: Vec<_> = report.iter().filter(|l| l.contains("kept1")).collect();
            assert_eq!(about_kept.len(), 1, "{report:?}");
            assert!(about_kept[0].contains("faultline cleanup kept1"));
            assert!(kept.exists());
            assert!(kept_id.alive());
        }
        assert!(!stale.exists());
        stale_node.wait().unwrap();

        assert!(remove_run_in(&dir, "kept1").unwrap().is_empty());
        assert!(!kept.exists());
        kept_node.wait().unwrap();
        assert!(remove_run_in(&dir, "kept1").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn keep_marks_the_state_file() {
        let reg = Registry::in_memory("k");
        let dir = state_dir_for("keep");
        let path = dir.join("k.json");
        reg.lock().state_file = Some(path.clone());
        reg.try_keep().unwrap();
        assert!(read_state(&path).unwrap().kept);
        // Kept means kept: neither teardown nor the last handle remove anything.
        assert!(reg.teardown().is_empty());
        drop(reg);
        assert!(path.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unreadable_state_file_is_reported_with_its_path() {
        let dir = state_dir_for("unreadable");
        let garbage = dir.join("garbled.json");
        std::fs::write(&garbage, b"{\"run_id\": ").unwrap();
        // A directory by a state file's name cannot be read as one, even by root.
        let unreadable = dir.join("dir.json");
        std::fs::create_dir(&unreadable).unwrap();
        let report = sweep_dir(&dir);
        for path in [&garbage, &unreadable] {
            let name = path.display().to_string();
            assert!(
                report.iter().any(|l| l.contains(&name)),
                "{name} not in {report:?}"
            );
        }
        assert!(garbage.exists(), "left for a person to look at");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
