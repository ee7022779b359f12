//! Node cgroups: on this machine (local and loopback hosts) every node runs in a cgroup v2
//! of its own, `<cgroup2 mount>/faultline/<run id>/<node>/`, joined between fork and exec,
//! so nothing the node starts can leave it — not a daemon that double-forks and calls
//! `setsid`, which escapes any process group. Killing the node is one write to
//! `cgroup.kill`, and "no node process is left" is the kernel's `populated 0`, not a guess.
//!
//! Owns finding the cgroup2 hierarchy, creating a run's cgroups (recorded in the cleanup
//! [`Registry`] before each is created), signalling, killing and removing them. Where
//! cgroup v2 is missing or not writable (not root, a read-only mount, a kernel before 5.14
//! without `cgroup.kill`), [`RunCgroups::create`] says why and nodes are tracked by process
//! group only, as before.
//!
//! Plain file writes rather than a cgroup crate: cgroup v2 is a filesystem and faultline
//! needs five of its files (`cgroup.procs`, `cgroup.kill`, `cgroup.events`, mkdir, rmdir)
//! and no controllers; the crates wrap controller configuration this does not use.

use super::cleanup::Registry;
use anyhow::{Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The directory under the cgroup2 mount that holds every run's cgroups. Shared by runs
/// and never removed: removing it could race another run creating its own cgroup in it.
pub const PARENT: &str = "faultline";

/// The cgroups of one run's nodes on this machine.
#[derive(Debug)]
pub struct RunCgroups {
    /// `<mount>/faultline/<run id>`: holds only the node cgroups, never a process (cgroup
    /// v2 allows processes only in leaves once controllers are enabled).
    dir: PathBuf,
    reg: Registry,
    /// Node cgroups this run created; a restarted node reuses its own.
    made: Mutex<BTreeSet<String>>,
}

impl RunCgroups {
    /// Create the run's cgroup, or say why nodes cannot have cgroups here.
    pub fn create(reg: &Registry) -> Result<RunCgroups, String> {
        let mount = std::fs::read_to_string("/proc/self/mountinfo")
            .ok()
            .and_then(|t| cgroup2_mount(&t))
            .ok_or_else(|| "no cgroup v2 hierarchy is mounted".to_string())?;
        let parent = mount.join(PARENT);
        std::fs::create_dir_all(&parent)
            .map_err(|e| format!("cannot create cgroup {}: {e}", parent.display()))?;
        let dir = parent.join(reg.run_id());
        make(reg, &dir).map_err(|e| format!("{e:#}"))?;
        let cgroups = RunCgroups {
            dir,
            reg: reg.clone(),
            made: Mutex::new(BTreeSet::new()),
        };
        if !cgroups.dir.join("cgroup.kill").exists() {
            // Removing it now leaves the registry entry pointing at nothing, which cleanup
            // skips.
            let _ = std::fs::remove_dir(&cgroups.dir);
            return Err("this kernel has no cgroup.kill (Linux 5.14 or later needed)".into());
        }
        Ok(cgroups)
    }

    /// The node's cgroup, created (and recorded) on its first start.
    pub fn node(&self, node: &str) -> Result<PathBuf> {
        let dir = self.dir.join(node);
        let mut made = self.made.lock().unwrap_or_else(|p| p.into_inner());
        if !made.contains(node) {
            make(&self.reg, &dir)?;
            made.insert(node.to_string());
        }
        Ok(dir)
    }
}

/// Record `dir`, then create it. A directory that already exists is someone else's: it
/// is forgotten again and never touched.
fn make(reg: &Registry, dir: &Path) -> Result<()> {
    reg.add_cgroup(dir)?;
    if let Err(e) = std::fs::create_dir(dir) {
        reg.forget_cgroup(dir)?;
        return Err(e).with_context(|| format!("cannot create cgroup {}", dir.display()));
    }
    Ok(())
}

/// The mount point of the cgroup2 hierarchy in a `/proc/self/mountinfo` text. Not always
/// `/sys/fs/cgroup`: hybrid systems (this project's CI machines among them) mount it at
/// `/sys/fs/cgroup/unified` beside the v1 controllers.
pub fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        if after.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        // Field 5 is the mount point, with space, tab, newline and backslash octal-escaped.
        before
            .split_whitespace()
            .nth(4)
            .map(|p| PathBuf::from(unescape(p)))
    })
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 4);
        match code.and_then(|c| u8::from_str_radix(c, 8).ok()) {
            Some(b) => {
                out.push(char::from(b));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Whether any process lives in the cgroup (a cgroup that is gone holds none). Zombies do
/// not count: the kernel takes a process out of its cgroup when it exits.
pub fn populated(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("cgroup.events"))
        .map(|t| t.lines().any(|l| l == "populated 1"))
        .unwrap_or(false)
}

/// The processes in the cgroup now.
pub fn pids(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// SIGKILL every process in the cgroup, including those it forks meanwhile.
pub fn kill_all(dir: &Path) -> Result<()> {
    std::fs::write(dir.join("cgroup.kill"), b"1")
        .with_context(|| format!("cannot write {}/cgroup.kill", dir.display()))
}

/// Send `sig` to every process in the cgroup. A process forked while the list is read
/// would miss it, so the list is read again until a pass finds nobody new (bounded: a
/// node forking without end still gets the signal on its first 16 generations).
pub fn signal(dir: &Path, sig: Signal) {
    let mut sent = BTreeSet::new();
    for _ in 0..16 {
        let fresh: Vec<i32> = pids(dir).into_iter().filter(|p| sent.insert(*p)).collect();
        if fresh.is_empty() {
            return;
        }
        for pid in fresh {
            // Only members of a cgroup we created; one that exited meanwhile is fine.
            let _ = kill(Pid::from_raw(pid), sig);
        }
    }
}

/// Wait until the cgroup is empty or `deadline` passes; whether it is empty.
pub fn wait_empty(dir: &Path, deadline: Instant) -> bool {
    loop {
        if !populated(dir) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kill everything in a recorded cgroup and remove it; a cgroup that is gone is fine.
/// Fails only if processes survive `cgroup.kill` until `deadline` or rmdir fails, so
/// success means the kernel had no process left in it.
pub fn remove(dir: &Path, deadline: Instant) -> Result<(), String> {
    if !dir.exists() {
        return Ok(());
    }
    if populated(dir) {
        kill_all(dir).map_err(|e| format!("{e:#}"))?;
        if !wait_empty(dir, deadline) {
            return Err(format!(
                "cgroup {} still holds processes {:?} after cgroup.kill",
                dir.display(),
                pids(dir)
            ));
        }
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot remove cgroup {}: {e}", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount_of_a_hybrid_system() {
        let hybrid = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
        assert_eq!(
            cgroup2_mount(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let unified =
            "25 30 0:23 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            cgroup2_mount(unified),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        let spaced = "25 30 0:23 / /mnt/my\\040cgroups rw - cgroup2 none rw\n";
        assert_eq!(
            cgroup2_mount(spaced),
            Some(PathBuf::from("/mnt/my cgroups"))
        );
        assert_eq!(cgroup2_mount(&hybrid[..hybrid.find("41 ").unwrap()]), None);
    }

    /// The run's cgroups in a registry without a state file, or `None` (saying why) where
    /// this machine gives us none.
    fn run_cgroups(name: &str) -> Option<(Registry, RunCgroups)> {
        let reg = Registry::in_memory(&format!("cgtest-{name}-{}", std::process::id()));
        match RunCgroups::create(&reg) {
            Ok(c) => Some((reg, c)),
            Err(reason) => {
                eprintln!("skipped: no cgroups here ({reason})");
                None
            }
        }
    }

    #[tokio::test]
    async fn a_daemon_that_left_its_group_is_recorded_killed_and_removed_with_its_cgroup() {
        let Some((reg, cgroups)) = run_cgroups("daemon") else {
            return;
        };
        let n1 = cgroups.node("n1").unwrap();
        // Recorded run first, node second: cleanup removes them newest first, so the run's
        // cgroup is childless by the time its turn comes.
        assert_eq!(
            reg.snapshot().cgroups,
            vec![cgroups.dir.clone(), n1.clone()]
        );
        assert_eq!(
            cgroups.node("n1").unwrap(),
            n1,
            "a restart reuses its cgroup"
        );
        assert_eq!(reg.snapshot().cgroups.len(), 2);

        let out = std::env::temp_dir().join(format!("fl-cg-{}.log", std::process::id()));
        let spec = crate::hosts::SpawnSpec {
            argv: ["sh", "-c", "setsid sleep 1000 & echo $!"]
                .map(String::from)
                .to_vec(),
            env: Default::default(),
            cwd: std::env::temp_dir(),
            stdout: out.clone(),
            stderr: out.with_extension("err"),
            die_with_controller: true,
            cgroup: Some(n1.clone()),
        };
        let mut shell = super::super::local::spawn_in(None, &spec).unwrap();
        assert!(shell.wait().await.unwrap().success());
        let daemon: i32 = std::fs::read_to_string(&out)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let daemon_id = super::super::cleanup::ProcId::of(daemon).unwrap();
        assert!(populated(&n1));
        assert_eq!(
            pids(&n1),
            vec![daemon],
            "the daemon stayed in the node's cgroup"
        );

        let problems = super::super::cleanup::remove_resources(&reg.snapshot());
        assert_eq!(problems, Vec::<String>::new());
        assert!(!daemon_id.alive(), "the daemon outlived cleanup");
        assert!(!n1.exists() && !cgroups.dir.exists());
        let _ = std::fs::remove_file(&out);
        let _ = std::fs::remove_file(out.with_extension("err"));
    }

    #[test]
    fn a_cgroup_that_already_exists_is_not_recorded_nor_removed() {
        let Some((reg, cgroups)) = run_cgroups("exists") else {
            return;
        };
        let theirs = cgroups.dir.join("n2");
        std::fs::create_dir(&theirs).unwrap();
        assert!(cgroups.node("n2").is_err());
        assert_eq!(reg.snapshot().cgroups, vec![cgroups.dir.clone()]);
        std::fs::remove_dir(&theirs).unwrap();
        assert!(super::super::cleanup::remove_resources(&reg.snapshot()).is_empty());
        assert!(!cgroups.dir.exists());
    }

    #[test]
    fn the_teardown_message_claims_no_process_only_with_cgroups() {
        use super::super::cleanup::{teardown_summary, Resources};
        let with = Resources {
            cgroups: vec![PathBuf::from("/x")],
            ..Resources::default()
        };
        assert!(teardown_summary(&with).contains("no node process"));
        let without = teardown_summary(&Resources::default());
        assert!(!without.contains("no node process"), "{without}");
        assert!(without.contains("not tracked"), "{without}");
    }
}
