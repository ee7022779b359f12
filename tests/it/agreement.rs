//! The agreement oracle end to end (issue 20 §3): real raftkv nodes inspected at the end of
//! a run, their committed logs saved and compared; and a fork that no client reads,
//! caught by agreement alone.

use crate::run::{faultline, results, root_cluster, run_dir_of};
use serde_json::Value;
use std::path::Path;

/// Every line of `logs/<node>.jsonl`, parsed.
fn saved_log(run_dir: &Path, node: &str) -> Vec<Value> {
    let path = run_dir.join("logs").join(format!("{node}.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn raftkv_logs_agree_after_a_partition_run_and_recheck_reads_them_back() {
    let Some((_cluster, store)) = root_cluster("agree") else {
        return;
    };
    let out = faultline()
        .args(["run", "--target", "raftkv", "--nemesis", "partition"])
        .args(["--nodes", "3", "--time-limit", "8s", "--quiet", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let run_dir = run_dir_of(&out);
    let r = results(&run_dir);
    let a = &r["agreement"];
    assert_eq!(a["verdict"], "valid", "{a}");
    let compared = a["positions_compared"].as_u64().unwrap();
    assert!(compared > 0, "{a}");
    for node in ["n1", "n2", "n3"] {
        let log = saved_log(&run_dir, node);
        assert!(!log.is_empty(), "{node} has committed entries");
        assert_eq!(a["nodes"][node]["entries"].as_u64(), Some(log.len() as u64));
        // Raft's log: the new leader's no-op first, then the ops, each with its term.
        assert!(
            log.iter()
                .any(|e| e["entry"].as_str().unwrap().contains(": write \"")),
            "{node}: {:?}",
            &log[..log.len().min(5)]
        );
    }
    let page = std::fs::read_to_string(run_dir.join("index.html")).unwrap();
    assert!(
        page.contains("id=\"agreement\""),
        "the page has an Agreement section"
    );
    assert!(page.contains(&format!("at {compared} position(s)")));

    // --recheck judges agreement again from the saved logs (the nodes are gone).
    let re = faultline()
        .args(["report", "--recheck"])
        .arg(&run_dir)
        .output()
        .unwrap();
    assert_eq!(
        re.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&re.stderr)
    );
    let again = results(&run_dir);
    assert_eq!(again["agreement"], r["agreement"]);
}

#[test]
fn a_fork_no_client_reads_makes_the_run_invalid_by_agreement_alone() {
    let Some((_cluster, store)) = root_cluster("fork") else {
        return;
    };
    let out = faultline()
        .args(["run", "--target", "tests/fixtures/forkraft/target.yaml"])
        .args(["--nemesis", "none", "--nodes", "3", "--time-limit", "4s"])
        .args(["--quiet", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let run_dir = run_dir_of(&out);
    let r = results(&run_dir);
    assert_eq!(r["verdict"], "invalid");
    // The history itself is linearizable: only the logs disagree.
    assert_eq!(r["check"]["verdict"], "valid", "{}", r["check"]);
    let a = &r["agreement"];
    assert_eq!(a["verdict"], "invalid", "{a}");
    let c = &a["conflict"];
    let n2_log = saved_log(&run_dir, "n2");
    let forged = n2_log.last().unwrap();
    assert_eq!(c["index"], forged["index"], "{c}");
    let sides = [&c["a"], &c["b"]];
    let forged_side = sides
        .iter()
        .find(|s| s["node"] == "n2")
        .expect("n2 in the conflict");
    assert_eq!(forged_side["entry"], "term 0: <forged by inspect.py>");
    let other = sides.iter().find(|s| s["node"] != "n2").unwrap();
    assert!(other["entry"].as_str().unwrap().starts_with("term "), "{c}");
    assert!(
        r["reason"].as_str().unwrap().contains("agreement:"),
        "{}",
        r["reason"]
    );

    let page = std::fs::read_to_string(run_dir.join("index.html")).unwrap();
    assert!(
        page.contains("id=\"agreement-conflict\""),
        "the conflict leads the page"
    );
    assert!(
        page.contains("term 0: &lt;forged by inspect.py&gt;"),
        "escaped"
    );
    assert!(!page.contains("<forged"), "never markup");
    assert!(
        !page.contains("recorded no counterexample"),
        "no empty linearizability counterexample for an agreement-only invalid run"
    );
}
