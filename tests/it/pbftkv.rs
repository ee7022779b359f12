//! pbftkv end to end (issue 20): four real PBFT replicas on the node shell, signed peer
//! envelopes, fsynced state, faultline's `pbft` client (every request signed and sent to
//! every replica, f + 1 matching replies), under a partition that cuts a replica off —
//! the view-0 primary among them, whose loss forces a view change — checked by
//! linearizability and by the agreement oracle over the replicas' executed digests.

use crate::run::{assert_valid_and_agreed, faultline, results, root_cluster, run_dir_of};

#[test]
fn pbftkv_four_replicas_under_partitions_are_valid() {
    let Some((_cluster, store)) = root_cluster("pbftkv") else {
        return;
    };
    let out = faultline()
        .args(["run", "--target", "pbftkv", "--nemesis", "partition"])
        .args([
            "--workload",
            "register",
            "--nodes",
            "4",
            "--time-limit",
            "10s",
        ])
        .args(["--quiet", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let r = results(&run_dir_of(&out));
    // Ops were answered by f + 1 matching replies, the fault landed, and the agreement
    // oracle compared every replica's executed request digests.
    assert_valid_and_agreed(&r, 0, 0);
}

/// One forked twin (≤ f) in a Twins scenario: correct pbftkv stays valid, clients reach
/// the twin as a replica, the twin started from its node's history (its log holds the
/// node's first entries), and the agreement oracle compared the twin's own log, read from
/// inside its namespace before it stopped, with every replica's log of that moment and of
/// the end of the run.
#[test]
fn pbftkv_with_one_twin_is_valid_and_the_twins_log_is_compared() {
    let Some((_cluster, store)) = root_cluster("pbftkv") else {
        return;
    };
    let out = faultline()
        .args(["run", "--target", "pbftkv", "--nemesis", "twins-fork"])
        .args(["--workload", "register", "--nodes", "4"])
        .args(["--time-limit", "15s", "--seed", "3", "--quiet", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let dir = run_dir_of(&out);
    let r = results(&dir);
    assert_eq!(r["check"]["verdict"], "valid", "{}", r["check"]);
    let a = &r["agreement"];
    assert_eq!(a["verdict"], "valid", "{a}");
    let nodes = a["nodes"].as_object().unwrap();
    let twin = nodes
        .keys()
        .find(|k| k.ends_with("-twin (twins-1)"))
        .unwrap_or_else(|| panic!("no twin's log compared: {a}"));
    assert!(
        nodes.contains_key("n1 (twins-1)") && nodes.contains_key("n1"),
        "{a}"
    );
    let copy = twin.trim_end_matches(" (twins-1)");
    // Clients reached the twin too: some answers were accepted with its reply.
    let history = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    assert!(
        history.contains(&format!("\"node\":\"{copy},")) || history.contains(&format!(",{copy}\"")),
        "no op was answered by {copy}"
    );
    let log = std::fs::read_to_string(dir.join("logs/twins-1").join(format!("{copy}.jsonl")))
        .unwrap_or_else(|e| panic!("{copy}'s log in {}: {e}", dir.display()));
    let first: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert_eq!(
        first["index"], 1,
        "a forked twin holds its node's log from the start: {first}"
    );
    let journal = std::fs::read_to_string(dir.join("faultline.log")).unwrap();
    assert!(journal.contains("forked from its data dir"), "{journal}");
}
