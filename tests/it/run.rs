//! `faultline run` end to end: real node processes, real sockets, real namespaces.
//!
//! Tests that need root (network namespaces) say so and skip when run unprivileged; CI
//! runs as root, so there they run.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Tests that start a cluster take this first: clusters of real processes running side by
/// side on a 2-core machine would time each other out.
pub fn cluster_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// The preamble of a test that starts a cluster in network namespaces: `None` (saying
/// why) when not root, else the cluster lock and a fresh store directory.
pub fn root_cluster(name: &str) -> Option<(std::sync::MutexGuard<'static, ()>, Store)> {
    let lock = cluster_lock();
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces and nftables");
        return None;
    }
    Some((lock, Store(store(name))))
}

/// A cluster test's report store: removed when the test passes, kept (its path in the
/// panic's output) when it fails, for the run's logs and pages.
pub struct Store(PathBuf);

impl std::ops::Deref for Store {
    type Target = PathBuf;
    fn deref(&self) -> &PathBuf {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for Store {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_os_str()
    }
}

impl AsRef<Path> for Store {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept for a look: {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub fn faultline() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_faultline"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A fresh directory for a test's runs.
pub fn store(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fl-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

const LAZY: &str = "tests/fixtures/lazykv/target.yaml";
/// lazykv started through a wrapper that backgrounds it with setsid and exits.
const DAEMON: &str = "tests/fixtures/daemonkv/target.yaml";

/// The run directory and faultline.log of a run that reached a verdict, valid or invalid
/// (exit 0 or 1), for tests that look into what a third-party system did either way.
pub fn expect_verdict(out: &Output) -> (PathBuf, String) {
    let (dir, log) = run_dir_and_log(out);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "exit {:?}: {}\nlog:\n{log}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    (dir, log)
}

/// A finished run's directory and its faultline.log (empty when there is none).
pub fn run_dir_and_log(out: &Output) -> (PathBuf, String) {
    let dir = run_dir_of(out);
    let log = std::fs::read_to_string(dir.join("faultline.log")).unwrap_or_default();
    (dir, log)
}

/// The run directory a finished run printed as the first field of its verdict line.
pub fn run_dir_of(out: &Output) -> PathBuf {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    PathBuf::from(line.rsplit_once(": ").map(|(d, _)| d).unwrap_or(line))
}

pub fn results(run_dir: &Path) -> Value {
    let text = std::fs::read_to_string(run_dir.join("results.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Why the third-party target in `target_dir` (e.g. `targets/zookeeper`) cannot run here, if
/// it cannot: its install.sh installs what is missing (as root) and says what it could not.
pub fn missing_install(target_dir: &str) -> Option<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(target_dir)
        .join("install.sh");
    match Command::new("sh").arg(&script).output() {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Some(format!("cannot run {}: {e}", script.display())),
    }
}

/// A finished run that exited 0 with the verdict valid: its directory, results.json, its
/// log and its history's lines.
pub fn expect_valid(out: &Output) -> (PathBuf, Value, String, Vec<Value>) {
    let (dir, log) = run_dir_and_log(out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}\nlog:\n{log}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = results(&dir);
    assert_eq!(r["verdict"], "valid", "{r}");
    let ops = std::fs::read_to_string(dir.join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (dir, r, log, ops)
}

/// Resources of run `id` still present on this machine.
pub fn leftovers(run_id: &str, pids: &[i32]) -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(out) = Command::new("ip").args(["netns", "list"]).output() {
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            if l.starts_with(&format!("fl-{run_id}-")) {
                found.push(format!("netns {l}"));
            }
        }
    }
    if let Ok(it) = std::fs::read_dir("/sys/class/net") {
        for e in it.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n == format!("flbr{run_id}") || n.starts_with(&format!("fl{run_id}")) {
                found.push(format!("link {n}"));
            }
        }
    }
    for pid in pids {
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            if !stat.contains(") Z") {
                found.push(format!("process {pid}"));
            }
        }
    }
    found
}

/// Wait (up to 60 s) until the first run under `test_dir` (store/<test name>) has a history
/// that satisfies `ready`; returns that run's directory.
pub fn wait_for_history(test_dir: &Path, ready: impl Fn(&str) -> bool) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = std::fs::read_dir(test_dir).ok().and_then(|it| {
            it.flatten()
                .map(|e| e.path())
                .find(|p| !p.ends_with("latest"))
        });
        if let Some(d) = found {
            let h = std::fs::read_to_string(d.join("history.jsonl")).unwrap_or_default();
            if ready(&h) {
                return d;
            }
        }
        assert!(Instant::now() < deadline, "the run never got that far");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGINT a running `faultline run`, expect the interrupted exit code (3), and assert that
/// run `id`'s namespaces, links and node processes are gone.
pub fn interrupt_and_expect_clean(child: std::process::Child, id: &str, pids: &[i32]) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(leftovers(id, pids), Vec::<String>::new());
}

/// Whether the cleanup registry still has a state file for run `id`.
pub fn state_file_exists(id: &str) -> bool {
    std::path::Path::new("/run/faultline")
        .join(format!("{id}.json"))
        .exists()
}

/// Run id and node pids from a run's faultline.log.
pub fn ids_from_log(run_dir: &Path) -> (String, Vec<i32>) {
    let log = std::fs::read_to_string(run_dir.join("faultline.log")).unwrap_or_default();
    let id = log
        .lines()
        .find_map(|l| l.split("run id ").nth(1))
        .unwrap_or_default()
        .trim()
        .to_string();
    let pids = log
        .lines()
        .filter_map(|l| l.split("(pid ").nth(1))
        .filter_map(|r| r.split(')').next()?.parse().ok())
        .collect();
    (id, pids)
}

fn newest_run_dir(store: &Path) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(store)
        .ok()?
        .flatten()
        .filter(|e| e.path().is_dir())
        .flat_map(|t| std::fs::read_dir(t.path()).into_iter().flatten().flatten())
        .map(|e| e.path())
        .filter(|p| p.is_dir() && !p.ends_with("latest"))
        .collect();
    dirs.sort();
    dirs.pop()
}

/// Start a run in the background and wait until its history has at least `ops` lines.
/// The child is handed to the caller, who signals and waits for it.
fn start_and_wait(store: &Path, extra: &[&str], ops: usize) -> (std::process::Child, PathBuf) {
    start_target_and_wait(LAZY, store, extra, ops)
}

#[allow(clippy::zombie_processes)]
fn start_target_and_wait(
    target: &str,
    store: &Path,
    extra: &[&str],
    ops: usize,
) -> (std::process::Child, PathBuf) {
    let mut cmd = faultline();
    cmd.args([
        "run",
        "--target",
        target,
        "--nodes",
        "3",
        "--time-limit",
        "60s",
        "--quiet",
    ])
    .arg("--store")
    .arg(store)
    .args(extra)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(dir) = newest_run_dir(store) {
            let lines = std::fs::read_to_string(dir.join("history.jsonl"))
                .map(|t| t.lines().count())
                .unwrap_or(0);
            if lines >= ops {
                return (child, dir);
            }
        }
        if Instant::now() >= deadline {
            child.kill().ok();
            child.wait().ok();
            panic!("the run never produced {ops} ops");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_lazily_replicating_target_is_found_non_linearizable() {
    let _cluster = cluster_lock();
    let store = store("lazy");
    let hosts = if is_root() { "local" } else { "loopback" };
    let out = faultline()
        .args([
            "run",
            "--target",
            LAZY,
            "--nodes",
            "3",
            "--time-limit",
            "5s",
            "--quiet",
            "--seed",
            "1",
        ])
        .args(["--hosts", hosts])
        .arg("--store")
        .arg(&store)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    let dir = run_dir_of(&out);
    let r = results(&dir);
    assert_eq!(r["verdict"], "invalid");
    let ce = &r["check"]["counterexample"];
    assert!(
        ce.is_object(),
        "an invalid run must carry a counterexample: {r}"
    );
    assert!(dir.join("index.html").is_file());
    assert!(std::fs::read_to_string(dir.join("index.html"))
        .unwrap()
        .contains("INVALID"));
    assert!(dir.join("plan.yaml").is_file());
    let plan = std::fs::read_to_string(dir.join("plan.yaml")).unwrap();
    assert!(plan.contains("seed: 1"), "{plan}");
    std::fs::remove_dir_all(&store).ok();
}

#[test]
fn sigint_mid_run_tears_everything_down() {
    let Some((_cluster, store)) = root_cluster("sigint") else {
        return;
    };
    let (child, dir) = start_and_wait(&store, &[], 200);
    let (id, pids) = ids_from_log(&dir);
    assert!(
        !id.is_empty() && pids.len() == 3,
        "log lacks run id or pids"
    );
    assert!(!leftovers(&id, &pids).is_empty(), "the run should be up");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "an interrupted run exits 3");
    assert_eq!(leftovers(&id, &pids), Vec::<String>::new());
    // What it recorded up to the interrupt was still checked.
    assert!(results(&dir)["verdict"].is_string());
}

#[test]
fn a_sigkilled_controller_leaves_a_checkable_history_and_cleanup_removes_the_rest() {
    let Some((_cluster, store)) = root_cluster("sigkill") else {
        return;
    };
    let (mut child, dir) = start_and_wait(&store, &[], 200);
    let (id, pids) = ids_from_log(&dir);
    child.kill().unwrap();
    child.wait().unwrap();
    // Nodes die with the controller (PDEATHSIG); namespaces need a sweep.
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|p| !leftovers("-", &[*p]).is_empty()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let check = faultline()
        .arg("check")
        .arg(dir.join("history.jsonl"))
        .output()
        .unwrap();
    assert!(
        matches!(check.status.code(), Some(0..=2)),
        "check must accept a killed run's history: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let out = faultline().arg("cleanup").output().unwrap();
    assert!(out.status.success());
    assert_eq!(leftovers(&id, &pids), Vec::<String>::new());
}

/// Live processes of the daemonkv fixture that run `id` started (their command line holds
/// the run's data dir).
fn daemons_of(id: &str) -> Vec<i32> {
    processes_naming(&format!(
        "faultline-data={}",
        std::env::temp_dir()
            .join(format!("faultline-data-{id}"))
            .display()
    ))
}

/// Live processes whose command line contains `marker`.
pub fn processes_naming(marker: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
        .collect()
}

/// The run's cgroup directory, wherever the cgroup2 hierarchy is mounted.
pub fn run_cgroup(id: &str) -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mount = faultline::hosts::cgroup::cgroup2_mount(&info)?;
    Some(mount.join("faultline").join(id))
}

/// Whether the run's log says nodes had no cgroups (then the test has nothing to prove).
fn without_cgroups(run_dir: &Path) -> bool {
    let log = std::fs::read_to_string(run_dir.join("faultline.log")).unwrap_or_default();
    match log
        .lines()
        .find(|l| l.contains("tracked by process group only"))
    {
        Some(l) => {
            eprintln!("skipped: no cgroups here: {l}");
            true
        }
        None => false,
    }
}

#[test]
fn a_node_that_daemonizes_is_killed_with_its_cgroup_at_teardown() {
    let Some((_cluster, store)) = root_cluster("daemon") else {
        return;
    };
    let out = faultline()
        .args([
            "run",
            "--target",
            DAEMON,
            "--nodes",
            "3",
            "--time-limit",
            "3s",
        ])
        .args(["--quiet", "--seed", "1", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(matches!(out.status.code(), Some(0..=2)), "stderr: {stderr}");
    let dir = run_dir_of(&out);
    if without_cgroups(&dir) {
        return;
    }
    let (id, _) = ids_from_log(&dir);
    let log = std::fs::read_to_string(dir.join("faultline.log")).unwrap();
    assert!(
        log.contains("left the node running in the background"),
        "{log}"
    );
    assert!(log.contains("node cgroups empty and removed"), "{log}");
    assert_eq!(
        daemons_of(&id),
        Vec::<i32>::new(),
        "daemons outlived the run"
    );
    assert!(run_cgroup(&id).is_some_and(|c| !c.exists()));
}

#[test]
fn daemonized_nodes_of_a_sigkilled_controller_are_removed_by_cleanup() {
    let Some((_cluster, store)) = root_cluster("daemon-kill") else {
        return;
    };
    let (mut child, dir) = start_target_and_wait(DAEMON, &store, &[], 100);
    child.kill().unwrap();
    child.wait().unwrap();
    if without_cgroups(&dir) {
        faultline().arg("cleanup").output().unwrap();
        return;
    }
    let (id, _) = ids_from_log(&dir);
    // PDEATHSIG reached only the wrappers: forked daemons do not inherit it.
    assert_eq!(daemons_of(&id).len(), 3, "the daemons should outlive it");
    let cgroup = run_cgroup(&id).unwrap();
    assert!(cgroup.exists());
    let out = faultline().arg("cleanup").output().unwrap();
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(&format!("run {id}")), "{said}");
    assert_eq!(daemons_of(&id), Vec::<i32>::new(), "cleanup missed: {said}");
    assert!(!cgroup.exists());
    assert!(!state_file_exists(&id));
}

#[test]
fn a_cluster_left_running_outlives_later_sweeps_until_cleanup_names_it() {
    let Some((_cluster, store)) = root_cluster("leave-running") else {
        return;
    };
    let out = faultline()
        .args([
            "run",
            "--target",
            LAZY,
            "--nodes",
            "3",
            "--time-limit",
            "3s",
        ])
        .args(["--nemesis", "none", "--leave-running", "--quiet"])
        .arg("--store")
        .arg(&store)
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0..=2)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (id, pids) = ids_from_log(&run_dir_of(&out));
    assert_eq!(pids.len(), 3, "node pids of run {id}");
    // The sweep every later run starts with, and a cleanup without a run id, list the
    // kept cluster and leave it alone.
    let sweep = faultline().arg("cleanup").output().unwrap();
    let said = String::from_utf8_lossy(&sweep.stdout);
    assert!(
        said.contains(&format!("faultline cleanup {id}")),
        "the sweep names the kept run: {said}"
    );
    assert!(state_file_exists(&id));
    let kept = leftovers(&id, &pids);
    let count = |kind: &str| kept.iter().filter(|l| l.starts_with(kind)).count();
    assert_eq!((count("process"), count("netns")), (3, 3), "{kept:?}");
    let named = faultline().args(["cleanup", &id]).output().unwrap();
    assert!(
        named.status.success(),
        "{}",
        String::from_utf8_lossy(&named.stderr)
    );
    assert_eq!(leftovers(&id, &pids), Vec::<String>::new());
    assert!(!state_file_exists(&id));
}

#[test]
fn bad_specs_fail_before_anything_starts_naming_file_and_rule() {
    let store = store("badspec");
    let out = faultline()
        .args(["run", "--target", "no-such-target"])
        .arg("--store")
        .arg(&store)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown target \"no-such-target\""), "{err}");
    assert!(err.contains("raftkv"), "lists the known targets: {err}");

    let bad = store.join("bad-workload.yaml");
    std::fs::write(
        &bad,
        "name: w\nmix: {read: 1}\nmodel: cas-register\ncolour: red\n",
    )
    .unwrap();
    let out = faultline()
        .args(["run", "--workload"])
        .arg(&bad)
        .arg("--store")
        .arg(&store)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad-workload.yaml:4:"), "{err}");
    assert!(err.contains("unknown field `colour`"), "{err}");
    // Nothing ran: no run directory was created.
    assert!(newest_run_dir(&store).is_none());
    std::fs::remove_dir_all(&store).ok();
}

/// A run that fails before its nodes start still gets a page saying why, and `latest` points
/// at a run that has one.
#[test]
fn a_failed_run_has_a_page_that_says_why() {
    let store = store("failed-run");
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(LAZY)
        .unwrap()
        .replace("binary: /usr/bin/python3", "binary: /nonexistent/python3");
    assert!(text.contains("/nonexistent/python3"));
    let target = dir.path().join("target.yaml");
    std::fs::write(&target, text).unwrap();
    let out = faultline()
        .args(["run", "--target"])
        .arg(&target)
        .args([
            "--nodes",
            "3",
            "--time-limit",
            "2s",
            "--nemesis",
            "none",
            "--quiet",
        ])
        .arg("--store")
        .arg(&store)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let latest = store.join("latest");
    let page = std::fs::read_to_string(latest.join("index.html")).expect("a page");
    assert!(page.contains("id=\"run-error\""), "{page}");
    assert!(
        page.contains("/nonexistent/python3 does not exist"),
        "{page}"
    );
    assert!(
        store.join("index.html").exists(),
        "the reports index lists it"
    );
    std::fs::remove_dir_all(&store).ok();
}

/// A stdio adapter that answers every request with the wrong `id`: no op succeeds, so the
/// run tested nothing and must come out unknown (exit 2), with the adapter's error as the
/// reason in results.json, on the page and on the console.
#[test]
fn a_run_in_which_nothing_succeeded_is_unknown_with_its_most_common_errors() {
    let _cluster = cluster_lock();
    let store = store("wrong-id");
    let hosts = if is_root() { "local" } else { "loopback" };
    let out = faultline()
        .args([
            "run",
            "--target",
            "tests/fixtures/wrong-id/target.yaml",
            "--nemesis",
            "none",
            "--nodes",
            "3",
            "--concurrency",
            "2",
            "--time-limit",
            "3s",
            "--quiet",
        ])
        .args(["--hosts", hosts])
        .arg("--store")
        .arg(&store)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    let dir = run_dir_of(&out);
    assert!(stdout.contains("unknown because: no "), "{stdout}");
    assert!(
        stdout.contains("no read succeeded in the main phase"),
        "{stdout}"
    );
    let r = results(&dir);
    assert_eq!(r["verdict"], "unknown", "{r}");
    assert_eq!(
        r["check"]["verdict"], "valid",
        "the checker alone passes it: {r}"
    );
    let reason = r["reason"].as_str().unwrap_or_default();
    for f in ["read", "write", "cas"] {
        assert!(reason.contains(&format!("no {f} succeeded")), "{reason}");
    }
    assert!(reason.contains("its `id` must be"), "{reason}");
    assert_eq!(r["stats"]["verdict"], "unknown");
    let fs = r["stats"]["fs"].as_array().unwrap();
    let write = fs.iter().find(|f| f["f"] == "write").unwrap();
    assert_eq!(write["ok"], 0);
    let top = &write["top_errors"][0];
    assert!(
        top["error"].as_str().unwrap().contains("its `id` must be"),
        "{write}"
    );
    // Every write's error differs only in its request id: one entry counts them all.
    assert_eq!(top["count"], write["info"], "{write}");
    let page = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(page.contains("id=\"unknown-reason\">Unknown: no "));
    assert!(page.contains("id=\"never-succeeded\""));
    assert!(page.contains("id=\"top-errors\""));
    // The adapter's answer is quoted in the error, escaped on the page.
    assert!(page.contains("its `id` must be"));
    assert!(
        !page.contains("{\"id\""),
        "unescaped adapter output on the page"
    );
    std::fs::remove_dir_all(&store).ok();
}

/// A stdio adapter that hangs: every op times out, nothing succeeds, and the run says so
/// instead of passing.
#[test]
fn a_run_against_a_hung_adapter_is_unknown() {
    let _cluster = cluster_lock();
    let store = store("silent");
    let hosts = if is_root() { "local" } else { "loopback" };
    let out = faultline()
        .args([
            "run",
            "--target",
            "tests/fixtures/silent/target.yaml",
            "--workload",
            "tests/fixtures/silent/workload.yaml",
            "--nemesis",
            "none",
            "--nodes",
            "3",
            "--concurrency",
            "2",
            "--time-limit",
            "2s",
            "--quiet",
        ])
        .args(["--hosts", hosts])
        .arg("--store")
        .arg(&store)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    let r = results(&run_dir_of(&out));
    assert_eq!(r["verdict"], "unknown", "{r}");
    let reason = r["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("no write succeeded"), "{reason}");
    std::fs::remove_dir_all(&store).ok();
}

/// A quiet 5 s run of 3 nodes of `target` under `nemesis` into `store`.
fn short_run(target: &str, nemesis: &str, extra: &[&str], store: &Path) -> Output {
    faultline()
        .args(["run", "--target", target, "--nemesis", nemesis])
        .args(["--nodes", "3", "--time-limit", "5s", "--quiet"])
        .args(extra)
        .arg("--store")
        .arg(store)
        .output()
        .unwrap()
}

/// A nemesis aimed at leaders is refused at plan time when the target does not declare
/// that its adapter names leaders: it would otherwise hit nobody. Nothing starts: no run
/// directory, no node. (Until the target declared it, this was refused only after the
/// cluster had started.)
#[test]
fn a_leader_nemesis_is_refused_for_an_adapter_that_cannot_name_leaders() {
    let store = store("blind-faults");
    let out = short_run(
        "tests/fixtures/wrong-id/target.yaml",
        "pause",
        &["--hosts", "loopback"],
        &store,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    // The nemesis file at the line of the fault, the rule, and the target.yaml to change.
    assert!(
        stderr.contains("nemesis/pause.yaml:9:28: faults[2].target: `primaries` aims the fault at the leaders, but target wrong-id (tests/fixtures/wrong-id/target.yaml) cannot name its leaders"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`leaders: true` under `client:`"),
        "{stderr}"
    );
    assert_eq!(newest_run_dir(&store), None, "refused before the run began");
    std::fs::remove_dir_all(&store).ok();
}

/// The runner's backstop: an adapter that declares `leaders: true` but never names one is
/// refused once the cluster is up, before the clients start.
#[test]
fn an_adapter_that_declares_leaders_but_names_none_is_refused_before_the_clients_start() {
    let Some((_cluster, store)) = root_cluster("blind-declared") else {
        return;
    };
    let out = short_run(
        "tests/fixtures/wrong-id/leaders.yaml",
        "partition-primaries",
        &[],
        &store,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("cannot name its leaders"), "{stderr}");
    assert!(stderr.contains("declares `leaders: true`"), "{stderr}");
    let dir = newest_run_dir(&store).expect("a run directory");
    assert!(
        !dir.join("history.jsonl").exists()
            || std::fs::read_to_string(dir.join("history.jsonl"))
                .unwrap()
                .is_empty(),
        "no client started"
    );
}

/// A run refused before anything started: its stderr.
pub fn refused(name: &str, args: &[&str]) -> String {
    let store = store(name);
    let out = faultline()
        .arg("run")
        .args(args)
        .arg("--store")
        .arg(&store)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    // Nothing ran: no run directory.
    assert_eq!(std::fs::read_dir(&store).unwrap().count(), 0);
    std::fs::remove_dir_all(&store).ok();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A run's results say: valid by linearizability and by agreement, more than
/// `min_writes` writes acknowledged, at least one fault landed, and more than
/// `min_positions` log positions compared across nodes — not vacuous.
pub fn assert_valid_and_agreed(r: &serde_json::Value, min_writes: u64, min_positions: u64) {
    assert_eq!(r["check"]["verdict"], "valid", "{}", r["check"]);
    assert!(
        r["perf"]["ok_writes"].as_u64().unwrap() > min_writes,
        "{}",
        r["perf"]
    );
    assert!(
        r["run"]["faults"]["landed"].as_u64().unwrap() >= 1,
        "{}",
        r["run"]
    );
    let a = &r["agreement"];
    assert_eq!(a["verdict"], "valid", "{a}");
    assert!(
        a["positions_compared"].as_u64().unwrap() > min_positions,
        "{a}"
    );
}
