//! hotstuffkv end to end (issue 21): four replicas of the published hotstuff_rs 0.4
//! library on the node shell (fsynced block tree, TCP network, key-value app), through
//! faultline's raftkv client: under partitions (crash faults) and with a twin (a
//! Byzantine node within f), checked by linearizability and by the agreement oracle over
//! the replicas' committed blocks.

use crate::run::{assert_valid_and_agreed, faultline, results, root_cluster, run_dir_of};
use serde_json::Value;

/// The library's panic on a stale fallback timeout certificate (targets/hotstuffkv/README.md,
/// "What faultline found", 3): a replica that hits it exits.
const LIBRARY_PANIC: &str = "Pacemaker failure!: UpdateViewError(NonIncreasingViewError";

/// What a run came to: its results, or the results of a run stopped by an error.
enum Outcome {
    Results(Value),
    Error(Value),
}

/// Writes a run must acknowledge for its verdicts to say something.
const ENOUGH_WRITES: u64 = 10;

/// Runs hotstuffkv at 4 nodes under `nemesis` for `secs`, up to three times until a run
/// acknowledged [`ENOUGH_WRITES`]. The library stalls for seconds at a time with no
/// fault at all (targets/hotstuffkv/README.md, "What faultline found", 8: a replica that
/// sees a view's certificate before its proposal skips the view, cannot vote until block
/// sync, and as the next leader drops the certificate it collects), in about half of all
/// 15 s runs; at 4 nodes a fault window commits nothing besides (4). A stall that
/// spans the fault leaves a run with a handful of writes or none (the verdict is then
/// unknown, as it must be): such a run says nothing about safety, so another seed runs.
fn run(nemesis: &str, secs: &str) -> Option<Outcome> {
    let mut last = None;
    for attempt in 1..=3 {
        let outcome = run_once(nemesis, secs)?;
        let r = match &outcome {
            Outcome::Results(r) | Outcome::Error(r) => r,
        };
        let writes = r["perf"]["ok_writes"].as_u64().unwrap_or(0);
        if writes >= ENOUGH_WRITES || matches!(outcome, Outcome::Error(_)) && died(r) {
            return Some(outcome);
        }
        eprintln!(
            "attempt {attempt}: {writes} write(s) acknowledged, fewer than {ENOUGH_WRITES} \
             (the library's stalls, finding 8); seed {}, verdict {}",
            r["seed"], r["verdict"]
        );
        last = Some(outcome);
    }
    last
}

/// Whether a run's results name the library's known panic (finding 3).
fn died(r: &Value) -> bool {
    let text = r.to_string();
    text.contains(LIBRARY_PANIC) || text.contains("hotstuff_rs::algorithm")
}

/// One run at 4 nodes under `nemesis` for `secs`, with a fresh seed.
fn run_once(nemesis: &str, secs: &str) -> Option<Outcome> {
    let (_cluster, store) = root_cluster("hotstuffkv")?;
    let out = faultline()
        .args(["run", "--target", "hotstuffkv", "--nemesis", nemesis])
        .args([
            "--workload",
            "register",
            "--nodes",
            "4",
            "--time-limit",
            secs,
        ])
        .args(["--quiet", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    // 0: valid; 4: valid with a liveness failure — at 4 nodes the library commits
    // nothing while any one replica is down, and a replica that hit the library's panic
    // stays down (README, "Testing HotStuff"). 2: unknown — a twin that died of the panic
    // as it started is a fault that did not land, and with no other fault landing the run
    // is unknown, its results naming the twin's last words; or nothing was acknowledged.
    // Safety is what is asserted.
    let outcome = match out.status.code() {
        Some(0 | 4) => Outcome::Results(results(&run_dir_of(&out))),
        Some(2) => Outcome::Error(results(&run_dir_of(&out))),
        other => panic!("exit {other:?}: {stderr}"),
    };
    Some(outcome)
}

/// The verdicts and the evidence that they were not vacuous; a run stopped by an error
/// must have been stopped by the library's known panic, nothing of ours.
fn assert_safe(outcome: Outcome) {
    let r = match outcome {
        Outcome::Results(r) => r,
        Outcome::Error(e) => {
            // The panic's message, or (when the stderr tail shows only the backtrace) the
            // library's frames: the twin died in hotstuff_rs, nothing of ours.
            assert!(died(&e), "{e}");
            eprintln!("the twin died of hotstuff_rs's known panic (finding 3): {e}");
            return;
        }
    };
    // A twin that died of the library's panic as a round started is a fault that did not
    // land (its last words in the run's missed faults); the rounds after it start it again
    // and the cluster may commit little meanwhile, so only safety is held to then.
    let twin_died = r["run"]["faults"]["missed"]
        .as_array()
        .is_some_and(|m| m.iter().any(|x| died(&x["why"])));
    if twin_died {
        eprintln!("a twin died of hotstuff_rs's known panic (finding 3) as it started");
    }
    // The replicas' committed blocks were read back and compared height by height: of at
    // least n − f = 3 replicas, at the end or when the twins stopped (`n4-twin (twins-1)`
    // is n4) — the library's panic may have killed a replica or two by the end.
    let least = if twin_died { 0 } else { ENOUGH_WRITES - 1 };
    assert_valid_and_agreed(&r, least, least);
    let a = &r["agreement"];
    let inspected: std::collections::BTreeSet<&str> = a["nodes"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, v)| v["entries"].as_u64().unwrap_or(0) > 0)
        .map(|(copy, _)| {
            let copy = copy.split(' ').next().unwrap_or(copy);
            copy.strip_suffix("-twin").unwrap_or(copy)
        })
        .collect();
    assert!(inspected.len() >= 3, "{inspected:?}: {a}");
}

#[test]
fn hotstuffkv_four_replicas_under_partitions_are_valid_and_agree() {
    let Some(outcome) = run("partition", "15s") else {
        return;
    };
    assert_safe(outcome);
}

#[test]
fn hotstuffkv_with_one_twin_within_f_is_valid_and_agrees() {
    let Some(outcome) = run("twins", "20s") else {
        return;
    };
    assert_safe(outcome);
}

/// Serializable reads (`register-serializable`: `"serializable": true` on every read) are
/// answered by the node they reach from its own committed state, without a block: while a
/// partition stalls commits (at 4 nodes one replica cut off stops them), writes time out
/// and every read is still answered.
#[test]
fn hotstuffkv_serializable_reads_are_answered_locally_while_commits_stall() {
    let Some((_cluster, store)) = root_cluster("hotstuffkv") else {
        return;
    };
    let out = faultline()
        .args(["run", "--target", "hotstuffkv", "--nemesis", "partition"])
        .args(["--workload", "register-serializable", "--nodes", "4"])
        .args(["--time-limit", "15s", "--seed", "1", "--quiet", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Serializable reads are not linearizable: a stale one makes the run invalid (1).
    assert!(
        matches!(out.status.code(), Some(0 | 1 | 4)),
        "exit {:?}: {stderr}",
        out.status.code()
    );
    let dir = run_dir_of(&out);
    let r = results(&dir);
    let fs = r["stats"]["fs"].as_array().unwrap();
    let of = |f: &str| fs.iter().find(|x| x["f"] == f).unwrap().clone();
    let (reads, writes) = (of("read"), of("write"));
    assert!(reads["invoked"].as_u64().unwrap() > 20, "{reads}");
    // Every read is answered by the node it reaches — unless that node died of the
    // library's panic (finding 3; seen after the heal in 1 of 8 runs of this test), when
    // reads sent to it fail to connect: those are the only failures allowed.
    let dead: Vec<String> = ["n1", "n2", "n3", "n4"]
        .into_iter()
        .filter(|n| {
            std::fs::read_to_string(dir.join("nodes").join(n).join("stderr.log"))
                .is_ok_and(|e| e.contains(LIBRARY_PANIC))
        })
        .map(String::from)
        .collect();
    let to_the_dead: u64 = reads["top_errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            let text = e["error"].as_str().unwrap();
            dead.iter().any(|n| {
                text.starts_with(&format!("connect to {n}:"))
                    || text.starts_with(&format!("read from {n}:"))
            })
        })
        .map(|e| e["count"].as_u64().unwrap())
        .sum();
    assert_eq!(
        reads["ok"].as_u64().unwrap() + to_the_dead,
        reads["invoked"].as_u64().unwrap(),
        "every read answered by a live node: {reads} (died of the library's panic: {dead:?})"
    );
    if !dead.is_empty() {
        eprintln!("{dead:?} died of hotstuff_rs's known panic (finding 3)");
    }
    assert!(
        writes["info"].as_u64().unwrap() > 0,
        "writes stalled in the partition: {writes}"
    );
}
