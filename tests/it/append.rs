//! The append workload end to end: streams kept as lists by a real etcd cluster under
//! kills, judged by the append checker and the cas-register model, in results.json, on
//! the run page and again by `report --recheck`. (NATS losing appends under a coordinated
//! power failure is in `nats`.)

use crate::run::{faultline, results, root_cluster, run_dir_and_log};

/// etcd, 3 nodes, nodes killed and restarted while workers append and read: every
/// acknowledged append is in the final read, in order, and the history is linearizable.
#[test]
fn appends_to_etcd_under_kills_are_all_kept_in_order() {
    let Some((_cluster, store)) = root_cluster("append-etcd") else {
        return;
    };
    if let Some(why) = crate::etcd::missing_etcd(false) {
        eprintln!("skipped: {why}");
        return;
    }
    let out = faultline()
        .args(["run", "--target", "etcd", "--workload", "append"])
        .args(["--nemesis", "kill", "--time-limit", "12s"])
        .args(["--nodes", "3", "--quiet", "--seed", "1", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    let (dir, log) = run_dir_and_log(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    let r = results(&dir);
    let a = &r["append"];
    assert_eq!(a["verdict"], "valid", "{a}");
    let acked = a["acknowledged"].as_u64().unwrap();
    assert!(acked > 0, "no append acknowledged: {a}");
    assert_eq!(a["counts"]["ok"].as_u64(), Some(acked), "{a}");
    for bad in [
        "lost",
        "diverged",
        "stale",
        "duplicated",
        "unexpected",
        "never_read",
    ] {
        assert_eq!(a["counts"][bad], 0, "{bad}: {a}");
    }
    // Streams started empty and grew: a cas from null created each one.
    assert!(a["longest"].as_u64().unwrap() > 1, "{a}");
    assert!(a["reads"].as_u64().unwrap() > 0, "{a}");
    // The same history is a cas register's over lists: linearizable.
    assert_eq!(r["check"]["verdict"], "valid", "{}", r["check"]);
    assert!(
        r["run"]["faults"]["landed"].as_u64().unwrap() > 0,
        "{}",
        r["run"]
    );
    let history = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    assert!(
        history.contains(r#""f":"cas""#) && !history.contains(r#""f":"write""#),
        "an append is journaled as the read and cas that did it"
    );
    let page = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(page.contains("id=\"append\"") && page.contains("id=\"append-counts\""));
    assert!(log.contains("append: valid:"), "{log}");
    let again = faultline()
        .args(["report", "--recheck"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(results(&dir)["append"]["counts"], a["counts"]);
}
