//! etcd, a third-party Raft system, end to end: through the built-in v3-gateway client and
//! through the stdio adapter (targets/etcd-stdio/adapter.py, one etcdctl per op).
//!
//! These need root (namespaces) and Debian's `etcd-server` (and `etcd-client` for the
//! adapter); without them they print why and pass. `.ci/run` installs both.

use crate::run::{
    faultline, ids_from_log, leftovers, refused, results, root_cluster, run_dir_and_log, Store,
};
use std::path::Path;
use std::process::Output;

/// Why etcd tests cannot run here, if they cannot.
pub fn missing_etcd(with_etcdctl: bool) -> Option<String> {
    let mut need = vec!["/usr/bin/etcd"];
    if with_etcdctl {
        need.push("/usr/bin/etcdctl");
    }
    let missing: Vec<&str> = need
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "{} missing (apt-get install etcd-server etcd-client)",
            missing.join(", ")
        )
    })
}

/// What one test runs (10 workers, seed 1).
struct Run {
    name: &'static str,
    target: &'static str,
    nodes: u32,
    workload: &'static str,
    nemesis: &'static str,
    time_limit: &'static str,
}

/// Run faultline against a fresh store; the store is returned for cleanup. `None` (having
/// said why) without root or etcd.
fn run(r: Run) -> Option<(Output, Store)> {
    let (_lock, store) = root_cluster(r.name)?;
    if let Some(why) = missing_etcd(r.target == "etcd-stdio") {
        eprintln!("skipped: {why}");
        return None;
    }
    let out = faultline()
        .args(["run", "--target", r.target, "--workload", r.workload])
        .args(["--nemesis", r.nemesis, "--time-limit", r.time_limit])
        .args(["--nodes", &r.nodes.to_string(), "--quiet", "--seed", "1"])
        .arg("--store")
        .arg(&store)
        .output()
        .unwrap();
    Some((out, store))
}

/// What a finished run left to look at.
struct Finished {
    results: serde_json::Value,
    dir: std::path::PathBuf,
    log: String,
}

/// The run finished with `code`, left nothing behind, and its results say `verdict`.
fn assert_run(out: &Output, code: i32, verdict: &str) -> Finished {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let (dir, log) = run_dir_and_log(out);
    assert_eq!(
        out.status.code(),
        Some(code),
        "stderr: {stderr}\nlog:\n{log}"
    );
    let r = results(&dir);
    assert_eq!(r["verdict"], verdict, "{r}");
    let (id, pids) = ids_from_log(&dir);
    assert_eq!(leftovers(&id, &pids), Vec::<String>::new());
    assert!(
        r["run"]["ok"].as_u64().unwrap_or(0) > 50,
        "too few ops succeeded: {}",
        r["run"]
    );
    Finished {
        results: r,
        dir,
        log,
    }
}

/// Processes whose command line runs this checkout's etcd-stdio adapter.
fn adapters_running() -> Vec<String> {
    let adapter = concat!(env!("CARGO_MANIFEST_DIR"), "/targets/etcd-stdio/adapter.py");
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(adapter) {
            found.push(format!("{}: {cmd}", e.file_name().to_string_lossy()));
        }
    }
    found
}

#[test]
fn etcd_clock_faults_are_refused_naming_go_and_the_vdso() {
    for nemesis in ["clock", "clock-partition"] {
        let err = refused("etcd-clock", &["--target", "etcd", "--nemesis", nemesis]);
        assert!(
            err.contains("cannot reach target etcd's nodes")
                && err.contains("Go program")
                && err.contains("vDSO")
                && err.contains("libfaketime"),
            "{err}"
        );
    }
}

#[test]
fn serializable_reads_are_refused_for_pbftkv() {
    let err = refused(
        "serializable-pbftkv",
        &["--target", "pbftkv", "--workload", "register-serializable"],
    );
    assert!(
        err.contains("register-serializable.yaml: serializable:")
            && err.contains("pbft client has none"),
        "{err}"
    );
}

#[test]
fn etcd_under_partitions_is_linearizable() {
    let Some((out, store)) = run(Run {
        name: "etcd-partition",
        target: "etcd",
        nodes: 5,
        workload: "register",
        nemesis: "partition",
        time_limit: "20s",
    }) else {
        return;
    };
    let Finished {
        results: r,
        dir,
        log,
    } = assert_run(&out, 0, "valid");
    assert!(
        log.contains("nemesis: partition n"),
        "no partition ran:\n{log}"
    );
    // etcd's own logs were collected for every node.
    for n in 1..=5 {
        let stderr = dir.join(format!("nodes/n{n}/stderr.log"));
        assert!(
            std::fs::metadata(&stderr).map(|m| m.len()).unwrap_or(0) > 0,
            "{} is empty",
            stderr.display()
        );
    }
    assert!(r["run"]["ops"].as_u64().unwrap() > 500, "{}", r["run"]);
    std::fs::remove_dir_all(&store).ok();
}

#[test]
fn etcd_restarts_killed_members_after_they_have_exited() {
    let Some((out, store)) = run(Run {
        name: "etcd-kill",
        target: "etcd",
        nodes: 3,
        workload: "register",
        nemesis: "kill",
        time_limit: "15s",
    }) else {
        return;
    };
    let Finished { dir, log, .. } = assert_run(&out, 0, "valid");
    // A member was killed and started again on its ports (etcd holds them until it has
    // exited, so a restart that did not wait would fail with "address already in use").
    assert!(log.contains("ended (SIGKILL)"), "no kill ran:\n{log}");
    let restarted = std::fs::read_dir(dir.join("nodes"))
        .unwrap()
        .flatten()
        .any(|n| n.path().join("stderr.1.log").is_file());
    assert!(restarted, "no member was restarted:\n{log}");
    std::fs::remove_dir_all(&store).ok();
}

#[test]
fn etcd_members_leave_and_join_again_on_an_empty_data_dir() {
    let Some((out, store)) = run(Run {
        name: "etcd-leave",
        target: "etcd",
        nodes: 5,
        workload: "register",
        nemesis: "leave",
        time_limit: "20s",
    }) else {
        return;
    };
    let Finished { dir, log, .. } = assert_run(&out, 0, "valid");
    let history = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    let nemesis: Vec<serde_json::Value> = history
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|op: &serde_json::Value| op["process"] == "nemesis")
        .collect();
    let landed = |f: &str| {
        nemesis
            .iter()
            .filter(|op| op["f"] == f && op["error"].is_null())
            .flat_map(|op| op["value"]["nodes"].as_array().cloned().unwrap_or_default())
            .filter_map(|n| n.as_str().map(String::from))
            .collect::<Vec<_>>()
    };
    let (left, joined) = (landed("leave"), landed("join"));
    assert!(!left.is_empty(), "no member left:\n{log}");
    assert_eq!(left, joined, "every member that left joined again:\n{log}");
    let node = &left[0];
    // The member that came back is a new one: etcd's log on its second start shows the
    // cluster adding it again after removing it, and it started as `existing`.
    let second =
        std::fs::read_to_string(dir.join("nodes").join(node).join("stderr.1.log")).unwrap();
    assert!(second.contains("removed member"), "{second}");
    assert!(log.contains("--initial-cluster-state existing"), "{log}");
    std::fs::remove_dir_all(&store).ok();
}

#[test]
fn leave_is_refused_for_a_target_without_membership_commands() {
    let err = refused(
        "leave-raftkv",
        &["--target", "raftkv", "--nemesis", "leave"],
    );
    assert!(
        err.contains("nemesis/leave.yaml:") && err.contains("declares no `membership:`"),
        "{err}"
    );
}

#[test]
fn etcd_serializable_reads_are_found_stale_with_a_counterexample() {
    let Some((out, store)) = run(Run {
        name: "etcd-serializable",
        target: "etcd",
        nodes: 5,
        workload: "register-serializable",
        nemesis: "partition-primaries",
        time_limit: "20s",
    }) else {
        return;
    };
    let r = assert_run(&out, 1, "invalid").results;
    let ce = &r["check"]["counterexample"];
    assert_eq!(ce["failing_call"]["f"], "read", "a stale read: {ce}");
    std::fs::remove_dir_all(&store).ok();
}

#[test]
fn etcd_through_the_stdio_adapter_is_linearizable_and_adapters_are_reaped() {
    let Some((out, store)) = run(Run {
        name: "etcd-stdio",
        target: "etcd-stdio",
        nodes: 3,
        workload: "register",
        nemesis: "partition-primaries",
        time_limit: "15s",
    }) else {
        return;
    };
    let Finished { log, .. } = assert_run(&out, 0, "valid");
    // The adapter's `leaders` answer let the primaries partition isolate a leader.
    assert!(
        log.contains("nemesis: partition n"),
        "no leader was isolated:\n{log}"
    );
    // Every worker's adapter was started and answered before the clock started.
    assert!(
        log.contains("clients: 10 adapter(s) started in"),
        "adapters not opened before the run:\n{log}"
    );
    assert_eq!(adapters_running(), Vec::<String>::new());
    std::fs::remove_dir_all(&store).ok();
}
