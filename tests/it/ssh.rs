//! The SSH host backend end to end, against `faultline hosts lab`: one sshd per network
//! namespace with throwaway keys, which behaves like a set of VMs reached over SSH.

use crate::run::{faultline, ids_from_log, leftovers, results, root_cluster, run_dir_of, Store};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A running lab; SIGTERMed (and waited for) when dropped, so a failing test leaves
/// nothing behind either.
pub struct SshLab {
    child: Option<Child>,
    pub dir: PathBuf,
    pub inventory: PathBuf,
}

impl SshLab {
    /// `None` (saying why) when sshd is not installed.
    pub fn start(dir: &Path, nodes: u32) -> Option<SshLab> {
        if !Path::new("/usr/sbin/sshd").is_file() {
            eprintln!("skipped: needs sshd (apt-get install openssh-server)");
            return None;
        }
        let mut child = faultline()
            .args(["hosts", "lab", "--nodes", &nodes.to_string(), "--dir"])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(!line.trim().is_empty(), "the lab did not start");
        Some(SshLab {
            child: Some(child),
            dir: dir.to_path_buf(),
            inventory: PathBuf::from(line.trim()),
        })
    }

    /// Run a command on a lab node over SSH as a user would.
    pub fn ssh(&self, ip: &str, cmd: &str) -> String {
        let out = std::process::Command::new("ssh")
            .args(["-o", "BatchMode=yes", "-o"])
            .arg(format!(
                "UserKnownHostsFile={}",
                self.dir.join("known_hosts").display()
            ))
            .arg("-i")
            .arg(self.dir.join("client_key"))
            .arg(format!("root@{ip}"))
            .arg(cmd)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn addresses(&self) -> Vec<String> {
        std::fs::read_to_string(&self.inventory)
            .unwrap()
            .lines()
            .filter_map(|l| l.trim().strip_prefix("address: ").map(str::to_string))
            .collect()
    }

    /// Stop the lab and assert it removed its namespaces.
    pub fn stop(mut self) {
        let mut child = self.child.take().unwrap();
        terminate(&mut child);
        let status = child.wait().unwrap();
        assert!(status.success(), "the lab did not shut down cleanly");
    }
}

fn terminate(child: &mut Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
}

impl Drop for SshLab {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            terminate(&mut c);
            let _ = c.wait();
        }
    }
}

impl SshLab {
    /// `faultline run --inventory <lab> --nemesis <file with nemesis_yaml> --time-limit T
    /// --quiet --store <store>`.
    fn run(&self, store: &Path, nemesis_yaml: &str, time_limit: &str) -> std::process::Command {
        let nem = store.join("nemesis.yaml");
        std::fs::write(&nem, nemesis_yaml).unwrap();
        let mut c = faultline();
        c.args(["run", "--time-limit", time_limit, "--quiet", "--inventory"])
            .arg(&self.inventory)
            .arg("--nemesis")
            .arg(&nem)
            .arg("--store")
            .arg(store);
        c
    }
}

/// Root, namespaces and sshd: the lab, its directory and the store, or `None` saying why.
fn lab(name: &str, nodes: u32) -> Option<(std::sync::MutexGuard<'static, ()>, Store, SshLab)> {
    let (lock, store) = root_cluster(name)?;
    let lab = SshLab::start(&store.join("lab"), nodes)?;
    Some((lock, store, lab))
}

/// A majority/minority split from 2 s to 6 s: inside the 10 s run however loaded the machine.
const SHORT_PARTITION: &str = "name: ssh-partition
timeline:
  - {at: 2s, start: partition, grudge: majority}
  - {at: 6s, stop: partition}
";

#[test]
fn a_run_over_ssh_hosts_is_valid_and_leaves_nothing_on_them() {
    let Some((_lock, store, lab)) = lab("ssh-run", 5) else {
        return;
    };
    let out = lab.run(&store, SHORT_PARTITION, "10s").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let dir = run_dir_of(&out);
    assert_eq!(results(&dir)["verdict"], "valid");
    let log = std::fs::read_to_string(dir.join("faultline.log")).unwrap();
    assert!(log.contains("hosts: 5 SSH hosts"), "{log}");
    assert!(log.contains("uploaded"), "{log}");
    assert!(log.contains("nemesis: partition"), "{log}");
    // Node output came back from the hosts.
    for n in ["n1", "n5"] {
        let err = std::fs::read_to_string(dir.join("nodes").join(n).join("stderr.log")).unwrap();
        assert!(!err.is_empty(), "{n}'s stderr was not collected");
    }
    let (id, pids) = ids_from_log(&dir);
    assert_eq!(pids.len(), 5);
    assert_eq!(leftovers(&id, &pids), Vec::<String>::new());
    let remote = lab.dir.join("remote");
    let left: Vec<_> = std::fs::read_dir(&remote)
        .map(|it| it.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "the run left {left:?} on its hosts");
    assert!(!crate::run::state_file_exists(&id));
    lab.stop();
    std::fs::remove_dir_all(&store).ok();
}

const MID_FAULT: &str = "name: ssh-faults
timeline:
  - {at: 300ms, start: partition, grudge: {n1: [n2]}}
  - {at: 300ms, start: pause, target: [n2]}
  - {at: 300ms, start: clock-bump, target: [n3], offset: 60s, backwards: true}
";

#[test]
fn sigint_mid_fault_over_ssh_cleans_every_host() {
    let Some((_lock, store, lab)) = lab("ssh-midfault", 3) else {
        return;
    };
    let child = lab
        .run(&store, MID_FAULT, "60s")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let dir = crate::run::wait_for_history(&store.join("raftkv-register-ssh-faults"), |h| {
        h.matches("\"nemesis\"").count() >= 3
    });
    let (id, pids) = ids_from_log(&dir);
    let ips = lab.addresses();
    // The faults are in force on the hosts: n1's firewall, n2 stopped, n3's clock file.
    assert!(lab
        .ssh(&ips[0], "nft list ruleset")
        .contains("faultline_partition"));
    let stat = lab.ssh(&ips[1], &format!("cat /proc/{}/stat", pids[1]));
    assert!(stat.contains(") T"), "n2 should be SIGSTOPped: {stat}");
    let clock = lab.ssh(
        &ips[2],
        &format!("cat {}/remote/{id}/n3/clock.faketime", lab.dir.display()),
    );
    assert!(clock.starts_with('-'), "n3's clock offset: {clock:?}");

    crate::run::interrupt_and_expect_clean(child, &id, &pids);
    for ip in &ips {
        assert!(
            !lab.ssh(ip, "nft list ruleset").contains("faultline_"),
            "{ip} kept rules"
        );
    }
    assert!(!lab.dir.join("remote").join(&id).exists());
    assert!(!crate::run::state_file_exists(&id));
    lab.stop();
    std::fs::remove_dir_all(&store).ok();
}

#[test]
fn a_bad_inventory_fails_fast_naming_the_node_and_the_reason() {
    let Some((_lock, store, lab)) = lab("ssh-bad", 2) else {
        return;
    };
    let good = std::fs::read_to_string(&lab.inventory).unwrap();
    let ips = lab.addresses();
    // The bridge address answers but runs no sshd: refused.
    let gateway = {
        let mut o: Vec<u8> = ips[0].split('.').map(|x| x.parse().unwrap()).collect();
        o[3] -= 1;
        format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3])
    };
    let other_key = store.join("other_key");
    std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other_key)
        .status()
        .unwrap();
    let cases = [
        (
            "unreachable",
            good.replace(
                &format!("address: {}", ips[1]),
                &format!("address: {gateway}"),
            ),
            "node n2",
            "unreachable",
        ),
        (
            "wrong-key",
            good.replace(
                &format!("address: {}", ips[1]),
                &format!("address: {}\n    key: {}", ips[1], other_key.display()),
            ),
            "node n2",
            "the key was refused",
        ),
        (
            "no-sudo",
            good.replace("user: root", "user: root\n  sudo: true"),
            "node n1",
            "`sudo -n` does not work",
        ),
        (
            // The lab's hosts share this machine's kernel: stepping their clock would step
            // ours, so `clock: system` is refused before anything starts.
            "system-clock",
            good.replace("user: root", "user: root\n  clock: system"),
            "node n1",
            "would step this machine's own clock",
        ),
    ];
    for (name, text, node, reason) in cases {
        let nemesis: &[&str] = if name == "system-clock" {
            &["--nemesis", "clock"]
        } else {
            &[]
        };
        let inv = store.join(format!("{name}.yaml"));
        std::fs::write(&inv, text).unwrap();
        let t0 = Instant::now();
        let out = faultline()
            .args(["run", "--time-limit", "10s", "--quiet", "--inventory"])
            .arg(&inv)
            .args(nemesis)
            .arg("--store")
            .arg(store.join(name))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{name}: {err}");
        assert!(err.contains(node) && err.contains(reason), "{name}: {err}");
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "{name} took {:?}",
            t0.elapsed()
        );
        // Nothing started: no history was written.
        let histories = walk(&store.join(name))
            .into_iter()
            .filter(|p| p.ends_with("history.jsonl"))
            .count();
        assert_eq!(histories, 0, "{name}: a test started");
    }
    lab.stop();
    std::fs::remove_dir_all(&store).ok();
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(it) = std::fs::read_dir(dir) {
        for e in it.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A SIGKILLed controller cannot clean up: its nodes are daemons on their hosts and keep
/// running, with the partition in force. `faultline cleanup` removes all of it from the
/// state file (as the next run's sweep would).
#[test]
fn a_sigkilled_controller_over_ssh_is_cleaned_from_the_hosts() {
    let Some((_lock, store, lab)) = lab("ssh-sigkill", 3) else {
        return;
    };
    let cut = "name: cut\ntimeline:\n  - {at: 500ms, start: partition, grudge: {n1: [n2]}}\n";
    let mut child = lab
        .run(&store, cut, "60s")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let dir = crate::run::wait_for_history(&store.join("raftkv-register-cut"), |h| {
        h.contains("\"nemesis\"")
    });
    let (id, pids) = ids_from_log(&dir);
    child.kill().unwrap();
    child.wait().unwrap();
    let ips = lab.addresses();
    assert_eq!(
        crate::run::leftovers(&id, &pids).len(),
        3,
        "the nodes outlive a SIGKILLed controller until cleanup"
    );
    assert!(lab
        .ssh(&ips[0], "nft list tables")
        .contains("faultline_partition"));

    let out = faultline().args(["cleanup", &id]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(leftovers(&id, &pids), Vec::<String>::new());
    assert!(!lab.ssh(&ips[0], "nft list tables").contains("faultline_"));
    assert!(!lab.dir.join("remote").join(&id).exists());
    assert!(!crate::run::state_file_exists(&id));
    lab.stop();
    std::fs::remove_dir_all(&store).ok();
}

/// Clock faults against a Python target over SSH: the plan cannot probe the hosts' Python
/// from here, so each host runs the probe under its own preload before any node starts,
/// and the run is refused for the reason a local plan gives.
#[test]
fn clock_faults_over_ssh_are_refused_for_a_python_target_whose_sleep_the_preload_breaks() {
    let Some((_lock, store, lab)) = lab("ssh-clock-probe", 3) else {
        return;
    };
    if faultline::hosts::clock::find_libfaketime().is_err() {
        eprintln!("skipped: needs libfaketime");
        return;
    }
    let broken = faultline::spec::target::probe_clock(&[
        "/usr/bin/python3".into(),
        "-c".into(),
        "import time; time.sleep(0.01)".into(),
    ])
    .unwrap();
    let out = lab
        .run(&store, CLOCK_BUMP, "10s")
        .args(["--target", "tests/fixtures/sleepy/target.yaml"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    match broken {
        Some(_) => {
            assert_eq!(out.status.code(), Some(3), "{err}");
            assert!(
                err.contains("target sleepy's nodes would not survive them"),
                "{err}"
            );
            assert!(err.contains("Invalid argument"), "{err}");
            assert!(err.contains("node n1 ("), "names the host: {err}");
            // Refused before any node started: nothing runs and nothing is left on the hosts.
            assert!(!err.contains("started n1"), "{err}");
        }
        // A libfaketime that leaves sleep alone: the probe passes there too.
        None => assert!(!err.contains("would not survive"), "{err}"),
    }
    let remote = lab.dir.join("remote");
    let left: Vec<_> = std::fs::read_dir(&remote)
        .map(|it| it.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "the run left {left:?} on its hosts");
    lab.stop();
    std::fs::remove_dir_all(&store).ok();
}

const CLOCK_BUMP: &str = "name: ssh-clock
timeline:
  - {at: 2s, start: clock-bump, target: [n1], offset: 30s}
";

/// Live processes whose command line names run `id`'s directory on the lab's hosts (the
/// daemonkv fixture puts its data dir there).
fn remote_daemons_of(lab: &SshLab, id: &str) -> Vec<i32> {
    crate::run::processes_naming(&format!(
        "faultline-data={}",
        lab.dir.join("remote").join(id).display()
    ))
}

/// A start command that puts the node in the background and exits (the daemonkv
/// fixture) over SSH: each node runs in a cgroup of its own on its host, so the run
/// tracks it, and teardown kills it and removes the cgroup — nothing is left on the hosts.
#[test]
fn a_node_that_daemonizes_on_an_ssh_host_is_killed_with_its_cgroup() {
    let Some((_lock, store, lab)) = lab("ssh-daemon", 3) else {
        return;
    };
    let out = lab
        .run(&store, SHORT_PARTITION, "8s")
        .args(["--target", "tests/fixtures/daemonkv/target.yaml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(matches!(out.status.code(), Some(0..=2)), "{stderr}");
    let dir = run_dir_of(&out);
    let log = std::fs::read_to_string(dir.join("faultline.log")).unwrap();
    if log.contains("tracked by process group only") {
        eprintln!("skipped: the lab's hosts have no cgroups: {log}");
        return;
    }
    let (id, _) = ids_from_log(&dir);
    let cgroup = crate::run::run_cgroup(&id).unwrap();
    assert!(
        log.contains(&format!("n1: node cgroup {}/n1", cgroup.display())),
        "{log}"
    );
    assert!(
        log.contains("left the node running in the background"),
        "{log}"
    );
    assert!(
        log.contains("node cgroups on the SSH hosts empty and removed"),
        "{log}"
    );
    assert_eq!(
        remote_daemons_of(&lab, &id),
        Vec::<i32>::new(),
        "daemons outlived the run"
    );
    assert!(!cgroup.exists(), "{} is left", cgroup.display());
    assert!(!lab.dir.join("remote").join(&id).exists());
    assert!(!crate::run::state_file_exists(&id));
    lab.stop();
    std::fs::remove_dir_all(&store).ok();
}
