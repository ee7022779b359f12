//! The set workload end to end: real clusters, a kill nemesis, and the set checker's
//! verdict in results.json and on the run page.

use crate::run::{cluster_lock, faultline, is_root, results, root_cluster, run_dir_of, store};
use serde_json::Value;
use std::path::Path;
use std::process::Output;

/// A quiet set run of `target` under `nemesis` into `store`.
fn set_run(target: &str, nemesis: &str, time_limit: &str, extra: &[&str], store: &Path) -> Output {
    faultline()
        .args(["run", "--target", target, "--workload", "set"])
        .args(["--nemesis", nemesis, "--time-limit", time_limit])
        .args(["--nodes", "3", "--quiet", "--seed", "1"])
        .args(extra)
        .arg("--store")
        .arg(store)
        .output()
        .unwrap()
}

fn log_of(out: &Output) -> String {
    let dir = run_dir_of(out);
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(dir.join("faultline.log")).unwrap_or_default()
    )
}

/// Every acknowledged add is checked, and all of them are ok.
fn assert_all_ok(r: &Value, out: &Output) {
    let set = &r["set"];
    assert_eq!(r["verdict"], "valid", "{set}\n{}", log_of(out));
    assert_eq!(set["verdict"], "valid", "{set}");
    let acked = set["acknowledged"].as_u64().unwrap();
    assert!(acked > 0, "no element checked: {set}");
    assert_eq!(set["counts"]["ok"].as_u64(), Some(acked), "{set}");
    for bad in ["lost", "stale", "never_read", "unexpected"] {
        assert_eq!(set["counts"][bad], 0, "{bad}: {set}");
    }
    assert!(set["final_reads"].as_u64().unwrap() >= acked, "{set}");
    assert!(set["reads"].as_u64().unwrap() > 0, "{set}");
    // The set workload has no model: no linearizability result, only the set's.
    assert!(r["check"].is_null(), "{}", r["check"]);
}

/// raftkv, 3 nodes, a node killed and restarted (by the `kill` nemesis) while elements are
/// added and read: every acknowledged add survives.
#[test]
fn a_set_over_raftkv_under_kills_keeps_every_acknowledged_add() {
    let Some((_cluster, store)) = root_cluster("set-raftkv") else {
        return;
    };
    let out = set_run("raftkv", "kill", "12s", &[], &store);
    assert_eq!(out.status.code(), Some(0), "{}", log_of(&out));
    let dir = run_dir_of(&out);
    let r = results(&dir);
    assert_all_ok(&r, &out);
    assert!(
        r["run"]["faults"]["landed"].as_u64().unwrap() > 0,
        "{}",
        r["run"]
    );
    let page = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(page.contains("id=\"set\"") && page.contains("id=\"set-counts\""));
    let log = std::fs::read_to_string(dir.join("faultline.log")).unwrap();
    assert!(log.contains("set: valid:"), "{log}");
}

/// A target that acknowledges writes from memory and forgets them when killed (the lazykv
/// fixture: local state, lazy replication) loses acknowledged adds, and the set checker
/// says which one first and where it disappeared.
#[test]
fn a_set_over_a_target_that_forgets_on_kill_is_invalid_with_its_first_lost_element() {
    let _cluster = cluster_lock();
    let store = store("set-lazy");
    let hosts = if is_root() { "local" } else { "loopback" };
    let out = set_run(
        "tests/fixtures/lazykv/target.yaml",
        "kill",
        "8s",
        &["--hosts", hosts],
        &store,
    );
    assert_eq!(out.status.code(), Some(1), "{}", log_of(&out));
    let dir = run_dir_of(&out);
    let r = results(&dir);
    let set = &r["set"];
    assert_eq!(set["verdict"], "invalid", "{set}");
    assert!(set["counts"]["lost"].as_u64().unwrap() > 0, "{set}");
    let w = &set["first_lost"];
    assert_eq!(w["element"], set["lost"][0], "{set}");
    assert!(
        w["add_completed_ns"].as_u64() >= w["add_invoked_ns"].as_u64(),
        "{w}"
    );
    assert!(
        w["first_missing"].is_object(),
        "a lost element has a read that missed it: {w}"
    );
    let page = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(page.contains("id=\"set-invalid\"") && page.contains("id=\"set-first-lost\""));
    // `report --recheck` judges the set again from the history alone, to the same counts.
    let again = faultline()
        .args(["report", "--recheck"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(
        again.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(results(&dir)["set"]["counts"], set["counts"]);
    std::fs::remove_dir_all(&store).ok();
}

/// etcd (Debian's etcd-server), 3 nodes, under kills: the same as raftkv.
#[test]
fn a_set_over_etcd_under_kills_keeps_every_acknowledged_add() {
    let Some((_cluster, store)) = root_cluster("set-etcd") else {
        return;
    };
    if let Some(why) = crate::etcd::missing_etcd(false) {
        eprintln!("skipped: {why}");
        return;
    }
    let out = set_run("etcd", "kill", "12s", &[], &store);
    assert_eq!(out.status.code(), Some(0), "{}", log_of(&out));
    assert_all_ok(&results(&run_dir_of(&out)), &out);
}
