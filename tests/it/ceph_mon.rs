//! Ceph monitors (Multi-Paxos), a third-party system, end to end: Debian's ceph-mon 16.2 in
//! three network namespaces, spoken to through targets/ceph-mon/adapter.py (python3-rados)
//! as a register without compare-and-set (config-key get / set).
//!
//! These need root (namespaces) and ceph-mon with python3-rados, which the target's
//! install.sh installs as root (`.ci/run` runs it); without them they print why and pass.

use crate::run::{
    expect_valid, expect_verdict, faultline, ids_from_log, leftovers, missing_install, results,
    root_cluster, run_dir_of,
};
use std::path::Path;
use std::process::Output;

const TARGET: &str = "targets/ceph-mon";

/// librados' own account of a run (targets/ceph-mon/double-sets.py): the sets it sent
/// twice and why it dropped sessions. `Some(report)` when a set was re-sent or ran twice.
fn double_sets(dir: &Path) -> Option<String> {
    let out = std::process::Command::new("python3")
        .arg(format!("{TARGET}/double-sets.py"))
        .arg(dir)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    match out.status.code() {
        Some(0) => None,
        Some(1) => Some(report),
        _ => panic!(
            "double-sets.py failed: {report}{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// One short run of three monitors under `nemesis` with `seed`, librados logging every
/// command it sends.
fn run_three(store: &Path, nemesis: &str, seed: u32) -> Output {
    faultline()
        .args(["run", "--target", TARGET, "--workload", "register-rw"])
        .args(["--nemesis", nemesis, "--time-limit", "15s"])
        .args(["--nodes", "3", "--quiet", "--seed", &seed.to_string()])
        .arg("--store")
        .arg(store)
        .env("CEPH_ADAPTER_DEBUG_MONC", "10")
        .output()
        .unwrap()
}

/// One short run of three monitors under `nemesis`; it must be valid, leave nothing
/// behind, and have read back what it wrote. `None` (having said why) without root or Ceph.
///
/// librados 16.2 runs a set twice now and then with no fault at all (README, "Finding:
/// librados runs a `config-key set` twice"), which a register sees as going back in time:
/// a run found invalid that way (its librados logs show the set re-sent) is run again with
/// the next seed, at most three times; an invalid run without a re-sent set fails.
fn valid_run(name: &str, nemesis: &str) -> Option<(serde_json::Value, String)> {
    let (_lock, store) = root_cluster(name)?;
    if let Some(why) = missing_install(TARGET) {
        eprintln!("skipped: {why}");
        return None;
    }
    let mut out = run_three(&store, nemesis, 1);
    for seed in 2..=3 {
        if out.status.code() != Some(1) {
            break;
        }
        let dir = run_dir_of(&out);
        let Some(report) = double_sets(&dir) else {
            break;
        };
        eprintln!(
            "seed {}: {}, by librados' re-sent set (the finding):\n{report}again with seed {seed}",
            seed - 1,
            results(&dir)["verdict"]
        );
        out = run_three(&store, nemesis, seed);
    }
    let (dir, r, log, ops) = expect_valid(&out);
    assert!(r["run"]["ok"].as_u64().unwrap_or(0) > 200, "{}", r["run"]);
    // Writes went through and reads saw written values (not only missing keys), and the
    // workload asked for no cas, which config-key cannot do.
    assert!(ops.iter().any(|o| o["type"] == "ok" && o["f"] == "write"));
    assert!(ops
        .iter()
        .any(|o| o["type"] == "ok" && o["f"] == "read" && o["value"].is_u64()));
    assert!(!ops.iter().any(|o| o["f"] == "cas"), "a cas in the history");
    // The monitor's own log (ceph-mon -d, on stderr): n1 bound its namespace address and a
    // quorum of all three formed.
    let n1 = std::fs::read_to_string(dir.join("nodes/n1/stderr.log")).unwrap_or_default();
    assert!(
        n1.contains("bind addrs v2:10.213.0."),
        "n1 did not bind its namespace address:\n{n1}"
    );
    assert!(
        n1.contains("in quorum (ranks 0,1,2)"),
        "no quorum of three in n1's log"
    );
    // Each adapter kept librados' log in its node's directory (FAULTLINE_LOG_DIR): the
    // sessions it opened.
    let librados = std::fs::read_dir(dir.join("nodes/n1"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("librados-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect::<Vec<_>>();
    assert!(
        librados.iter().any(|l| l.contains("monclient: found mon.")),
        "no librados log with a session in nodes/n1 ({} files)",
        librados.len()
    );
    let (id, pids) = ids_from_log(&dir);
    assert_eq!(leftovers(&id, &pids), Vec::<String>::new());
    Some((r, log))
}

#[test]
fn ceph_mon_without_faults_is_linearizable() {
    let Some((r, _)) = valid_run("ceph-none", "none") else {
        return;
    };
    assert_eq!(r["run"]["faults"]["planned"], 0, "{}", r["run"]);
}

#[test]
fn ceph_mon_under_partitions_is_linearizable() {
    let Some((r, log)) = valid_run("ceph-partition", "partition") else {
        return;
    };
    let landed = r["run"]["faults"]["landed"].as_u64().unwrap_or(0);
    assert!(landed > 0, "no partition landed: {}\n{log}", r["run"]);
    assert!(
        log.contains("nemesis: partition n"),
        "no partition ran:\n{log}"
    );
}

/// The finding's smallest scenario (README, "Finding: librados runs a `config-key set`
/// twice"): one monitor, two workers on one key, no fault, librados' session check every
/// 50 ms instead of once a second. librados 16.2 then drops healthy sessions on a keepalive
/// acknowledgement dated after the check's "now" (a negative interval read as 2^32 s) and
/// re-sends the set in flight, which the monitor runs again: in each of 10 runs of 20 s
/// here. Whether the history also shows it depends on the other worker's timing (2 in
/// 10), so the verdict is not asserted; if a Ceph release fixes this, this test says so.
#[test]
fn ceph_mon_librados_resends_a_set_after_dropping_a_healthy_session() {
    let Some((_lock, store)) = root_cluster("ceph-resend") else {
        return;
    };
    if let Some(why) = missing_install(TARGET) {
        eprintln!("skipped: {why}");
        return;
    }
    let out = faultline()
        .args([
            "run",
            "--target",
            TARGET,
            "--workload",
            "register-rw-unique",
        ])
        .args(["--nemesis", "none", "--time-limit", "20s", "--nodes", "1"])
        .args(["--concurrency", "2", "--quiet", "--seed", "1", "--store"])
        .arg(&store)
        .env("CEPH_ADAPTER_PING_INTERVAL", "0.05")
        .env("CEPH_ADAPTER_DEBUG_MONC", "10")
        .env("CEPH_ARGS", "--debug_mon 2")
        .output()
        .unwrap();
    let (dir, _) = expect_verdict(&out);
    let report = double_sets(&dir).unwrap_or_else(|| panic!("no set re-sent or run twice"));
    assert!(
        report.contains("'negative interval'"),
        "no session dropped on a negative interval:\n{report}"
    );
    assert!(
        !report.contains("sets re-sent: 0\n"),
        "no set re-sent:\n{report}"
    );
    let (id, pids) = ids_from_log(&dir);
    assert_eq!(leftovers(&id, &pids), Vec::<String>::new());
}
