//! Ceph monitors (Multi-Paxos), a third-party system, end to end: Debian's ceph-mon 16.2 in
//! three network namespaces, spoken to through targets/ceph-mon/adapter.py (python3-rados)
//! as a register without compare-and-set (config-key get / set).
//!
//! These need root (namespaces) and ceph-mon with python3-rados, which the target's
//! install.sh installs as root (`.ci/run` runs it); without them they print why and pass.

use crate::run::{expect_valid, faultline, ids_from_log, leftovers, missing_install, root_cluster};

const TARGET: &str = "targets/ceph-mon";

/// One short run of three monitors under `nemesis`; it must be valid, leave nothing
/// behind, and have read back what it wrote. `None` (having said why) without root or Ceph.
fn valid_run(name: &str, nemesis: &str) -> Option<(serde_json::Value, String)> {
    let (_lock, store) = root_cluster(name)?;
    if let Some(why) = missing_install(TARGET) {
        eprintln!("skipped: {why}");
        return None;
    }
    let out = faultline()
        .args(["run", "--target", TARGET, "--workload", "register-rw"])
        .args(["--nemesis", nemesis, "--time-limit", "15s"])
        .args(["--nodes", "3", "--quiet", "--seed", "1"])
        .arg("--store")
        .arg(&store)
        .output()
        .unwrap();
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
    let (id, pids) = ids_from_log(&dir);
    assert_eq!(leftovers(&id, &pids), Vec::<String>::new());
    std::fs::remove_dir_all(&store).ok();
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
