//! ZooKeeper (ZAB), a third-party system, end to end: Debian's zookeeper 3.8 in three
//! network namespaces, spoken to through targets/zookeeper/adapter.py (kazoo).
//!
//! These need root (namespaces) and ZooKeeper with kazoo, which the target's install.sh
//! installs as root (`.ci/run` runs it); without them they print why and pass.

use crate::run::{expect_valid, faultline, ids_from_log, leftovers, missing_install, root_cluster};

const TARGET: &str = "targets/zookeeper";

/// One short run of three nodes under `nemesis`; it must be valid, leave nothing behind,
/// and have had its faults land. `None` (having said why) without root or ZooKeeper.
fn valid_run(name: &str, nemesis: &str) -> Option<(serde_json::Value, String)> {
    let (_lock, store) = root_cluster(name)?;
    if let Some(why) = missing_install(TARGET) {
        eprintln!("skipped: {why}");
        return None;
    }
    let out = faultline()
        .args(["run", "--target", TARGET, "--workload", "register"])
        .args(["--nemesis", nemesis, "--time-limit", "15s"])
        .args(["--nodes", "3", "--quiet", "--seed", "1"])
        .arg("--store")
        .arg(&store)
        .output()
        .unwrap();
    let (dir, r, log, ops) = expect_valid(&out);
    // Every kind of op went through: reads, writes and both cas outcomes.
    assert!(r["run"]["ok"].as_u64().unwrap_or(0) > 200, "{}", r["run"]);
    for (ty, f, error) in [("ok", "cas", None), ("fail", "cas", Some("compare-failed"))] {
        assert!(
            ops.iter()
                .any(|o| o["type"] == ty && o["f"] == f && error.is_none_or(|e| o["error"] == e)),
            "no {ty} {f} {error:?} in the history"
        );
    }
    // ZooKeeper's own log (slf4j-simple on stderr) shows a node that led, on its address.
    let n1 = std::fs::read_to_string(dir.join("nodes/n1/stderr.log")).unwrap_or_default();
    assert!(
        n1.contains("binding to port /10.213.0."),
        "n1 did not bind its namespace address:\n{n1}"
    );
    let (id, pids) = ids_from_log(&dir);
    assert_eq!(leftovers(&id, &pids), Vec::<String>::new());
    Some((r, log))
}

#[test]
fn zookeeper_without_faults_is_linearizable() {
    let Some((r, _)) = valid_run("zk-none", "none") else {
        return;
    };
    assert_eq!(r["run"]["faults"]["planned"], 0, "{}", r["run"]);
}

#[test]
fn zookeeper_under_partitions_is_linearizable() {
    let Some((r, log)) = valid_run("zk-partition", "partition") else {
        return;
    };
    let landed = r["run"]["faults"]["landed"].as_u64().unwrap_or(0);
    assert!(landed > 0, "no partition landed: {}\n{log}", r["run"]);
    assert!(
        log.contains("nemesis: partition n"),
        "no partition ran:\n{log}"
    );
}
