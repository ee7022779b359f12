//! The nemesis on real processes: faults really happen, are journaled, and nothing
//! outlives a run — including one interrupted in the middle of its faults.

use crate::run::{faultline, ids_from_log, root_cluster, store};
use std::path::Path;
use std::process::Stdio;

const LAZY: &str = "tests/fixtures/lazykv/target.yaml";

/// Every fault at once, held until the run is interrupted.
const ALL_AT_ONCE: &str = "name: all-at-once
timeline:
  - {at: 300ms, start: partition, grudge: {n1: [n2, n3]}}
  - {at: 300ms, start: pause, target: [n2]}
  - {at: 300ms, start: clock-bump, target: [n3], offset: 60s, backwards: true}
  - {at: 300ms, start: loss, target: [n3], percent: 50}
";
/// Added to it where iptables is installed.
const DELAY_TOO: &str = "  - {at: 300ms, start: delay, target: [n1], latency: 200ms}\n";

/// Delay faults need iptables (its NFQUEUE target); `.ci/run` installs it.
fn has_iptables() -> bool {
    std::process::Command::new("iptables")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn nemesis_ops(history: &str) -> Vec<String> {
    history
        .lines()
        .filter(|l| l.contains("\"process\":\"nemesis\""))
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            Some(v["f"].as_str()?.to_string())
        })
        .collect()
}

/// `faultline run --quiet ARGS` with `nemesis` (YAML text) as its nemesis, stored in `store`.
fn run_with_nemesis(store: &Path, nemesis: &str, args: &[&str]) -> std::process::Output {
    let file = store.join("nemesis.yaml");
    std::fs::write(&file, nemesis).unwrap();
    faultline()
        .args(["run", "--quiet"])
        .args(args)
        .arg("--nemesis")
        .arg(&file)
        .arg("--store")
        .arg(store)
        .output()
        .unwrap()
}

/// [`run_with_nemesis`] that must exit 0 (valid); returns the run directory.
fn run_valid(store: &Path, nemesis: &str, args: &[&str]) -> std::path::PathBuf {
    let out = run_with_nemesis(store, nemesis, args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    crate::run::run_dir_of(&out)
}

#[test]
fn sigint_in_the_middle_of_every_fault_leaves_a_clean_machine() {
    let Some((_cluster, store)) = root_cluster("midfault") else {
        return;
    };
    let nem = store.join("all-at-once.yaml");
    let delay = has_iptables();
    if !delay {
        eprintln!("note: iptables missing, so this run has no delay fault");
    }
    std::fs::write(
        &nem,
        format!("{ALL_AT_ONCE}{}", if delay { DELAY_TOO } else { "" }),
    )
    .unwrap();
    let child = faultline()
        .args([
            "run",
            "--target",
            LAZY,
            "--nodes",
            "3",
            "--time-limit",
            "60s",
            "--quiet",
        ])
        .arg("--nemesis")
        .arg(&nem)
        .arg("--store")
        .arg(&store)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let dir = crate::run::wait_for_history(&store.join("lazykv-register-all-at-once"), |h| {
        nemesis_ops(h).len() >= 4 + usize::from(delay)
    });
    let (id, pids) = ids_from_log(&dir);
    // The faults are really in force: n2 is stopped, n3's clock file is set back.
    let n2 = pids[1];
    let stat = std::fs::read_to_string(format!("/proc/{n2}/stat")).unwrap();
    assert!(stat.contains(") T"), "n2 should be SIGSTOPped: {stat}");
    let clock = std::env::temp_dir()
        .join(format!("faultline-data-{id}"))
        .join("clocks/n3.faketime");
    assert!(std::fs::read_to_string(&clock).unwrap().starts_with('-'));
    let ruleset = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &format!("fl-{id}-n1"),
            "nft",
            "list",
            "ruleset",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&ruleset.stdout).contains("faultline_partition"));
    let rules = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &format!("fl-{id}-n1"),
            "iptables",
            "-t",
            "mangle",
            "-S",
        ])
        .output()
        .unwrap();
    assert!(
        !delay
            || String::from_utf8_lossy(&rules.stdout)
                .contains("NFQUEUE --queue-num 213 --queue-bypass"),
        "{}",
        String::from_utf8_lossy(&rules.stdout)
    );

    crate::run::interrupt_and_expect_clean(child, &id, &pids);
    assert!(
        !std::env::temp_dir()
            .join(format!("faultline-data-{id}"))
            .exists(),
        "clock files and data dirs must be gone"
    );
    // The root namespace's ruleset never had our tables.
    let root = std::process::Command::new("nft")
        .args(["list", "ruleset"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&root.stdout).contains("faultline_"));
}

#[test]
fn network_faults_are_refused_on_loopback_hosts_not_skipped() {
    let store = store("loopnet");
    let out = faultline()
        .args([
            "run",
            "--target",
            LAZY,
            "--hosts",
            "loopback",
            "--nemesis",
            "partition",
        ])
        .arg("--store")
        .arg(&store)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("partition faults, which need network namespaces"),
        "{err}"
    );
    std::fs::remove_dir_all(&store).ok();
}

#[test]
fn a_timeline_partition_is_journaled_and_healed_before_the_final_reads() {
    let Some((_cluster, store)) = root_cluster("timeline") else {
        return;
    };
    let out = run_with_nemesis(
        &store,
        "name: t\ntimeline:\n  - {at: 1s, start: partition, grudge: majority}\n  - {at: 2s, start: kill, target: [n1]}\n",
        &["--target", LAZY, "--nodes", "3", "--time-limit", "4s"],
    );
    assert!(
        matches!(out.status.code(), Some(0..=2)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = crate::run::run_dir_of(&out);
    let h = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    // Faults in order, then the heals of the final phase, then the final reads.
    assert_eq!(
        nemesis_ops(&h),
        vec!["start-partition", "kill", "stop-partition", "start"]
    );
    let lines: Vec<&str> = h.lines().collect();
    let last_nemesis = lines
        .iter()
        .rposition(|l| l.contains("\"nemesis\""))
        .unwrap();
    assert!(lines[last_nemesis..]
        .iter()
        .any(|l| l.contains("\"f\":\"read\"")));
}

/// The README's run command (shortened): raftkv, 5 nodes, register, the default nemesis.
#[test]
fn the_default_run_against_correct_raftkv_is_valid() {
    let Some((_cluster, store)) = root_cluster("default") else {
        return;
    };
    let out = faultline()
        .args(["run", "--time-limit", "15s", "--quiet", "--seed", "3"])
        .arg("--store")
        .arg(&store)
        .output()
        .unwrap();
    let dir = crate::run::run_dir_of(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(dir.join("faultline.log")).unwrap_or_default()
    );
    let plan = std::fs::read_to_string(dir.join("plan.yaml")).unwrap();
    assert!(plan.contains("name: raftkv") && plan.contains("name: partition"));
    let h = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    assert!(nemesis_ops(&h).contains(&"start-partition".to_string()));
}

/// A seeded bug is found: the deposed leader of `--bug stale-read` serves old values.
///
/// Finding it is a matter of chance (a stale read needs a write through the new leader and
/// then a read of the same key through the old one inside a window): a 35 s run caught it
/// in most runs here, one in four or so missed. The test asks for it within two seeds, so
/// it says whether faultline finds the bug rather than how lucky one run was.
#[test]
fn a_stale_read_bug_is_caught_under_leader_partitions() {
    let Some((_cluster, store)) = root_cluster("staleread") else {
        return;
    };
    let mut outcomes = Vec::new();
    for seed in ["1", "2"] {
        let out = faultline()
            .args([
                "run",
                "--nemesis",
                "partition-primaries",
                "--time-limit",
                "35s",
                "--quiet",
            ])
            .args([
                "--seed",
                seed,
                "--target-arg=--bug",
                "--target-arg=stale-read",
            ])
            .arg("--store")
            .arg(&store)
            .output()
            .unwrap();
        if out.status.code() == Some(1) {
            let r = crate::run::results(&crate::run::run_dir_of(&out));
            assert_eq!(r["verdict"], "invalid");
            assert!(
                r["check"]["counterexample"]["failing_call"].is_object(),
                "{r}"
            );
            return;
        }
        outcomes.push(format!(
            "seed {seed}: exit {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    panic!("the stale-read bug was not caught: {outcomes:?}");
}

/// `primaries-minority` cuts off the node that leads together with one follower (of five).
#[test]
fn primaries_minority_takes_the_leader_and_one_follower() {
    let Some((_cluster, store)) = root_cluster("primin") else {
        return;
    };
    let dir = run_valid(
        &store,
        "name: pm\ntimeline:\n  - {at: 2s, start: partition, grudge: primaries-minority}\n",
        &["--time-limit", "5s", "--seed", "2"],
    );
    let h = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    let start: serde_json::Value = h
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["f"] == "start-partition")
        .expect("a start-partition op");
    let grudge = start["value"]["grudge"].as_object().unwrap();
    // Two nodes each drop the other three; three nodes each drop the other two.
    let minority: Vec<&String> = grudge
        .iter()
        .filter(|(_, d)| d.as_array().unwrap().len() == 3)
        .map(|(n, _)| n)
        .collect();
    assert_eq!(minority.len(), 2, "{grudge:?}");
    assert_eq!(grudge.len(), 5, "{grudge:?}");
    // The first leader of the run led until the partition (no earlier fault): it is on
    // the minority side. Node logs start each line with a Unix timestamp.
    let mut elected: Vec<(f64, String)> = Vec::new();
    for n in ["n1", "n2", "n3", "n4", "n5"] {
        let log = std::fs::read_to_string(dir.join("nodes").join(n).join("stderr.log"))
            .unwrap_or_default();
        for line in log.lines().filter(|l| l.contains("became leader")) {
            let t: f64 = line.split_whitespace().next().unwrap().parse().unwrap();
            elected.push((t, n.to_string()));
        }
    }
    elected.sort_by(|a, b| a.0.total_cmp(&b.0));
    let first = &elected.first().expect("a leader was elected").1;
    assert!(
        minority.contains(&first),
        "leader {first} not in {minority:?}"
    );
}

/// Latency in ms of the ok writes invoked in [from, to) seconds, from history lines.
fn write_latencies_ms(history: &str, from: f64, to: f64) -> Vec<f64> {
    let mut invoked = std::collections::HashMap::new();
    let mut out = Vec::new();
    for l in history.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        if v["f"] != "write" {
            continue;
        }
        let t = v["time_ns"].as_f64().unwrap() / 1e9;
        let p = v["process"].to_string();
        match v["type"].as_str().unwrap() {
            "invoke" => {
                invoked.insert(p, t);
            }
            "ok" => {
                if let Some(t0) = invoked.remove(&p) {
                    if (from..to).contains(&t0) {
                        out.push((t - t0) * 1000.0);
                    }
                }
            }
            _ => {
                invoked.remove(&p);
            }
        }
    }
    out.sort_by(f64::total_cmp);
    out
}

#[test]
fn a_delay_holds_packets_to_peers_for_its_latency_and_releases_them() {
    let Some((_cluster, store)) = root_cluster("delay") else {
        return;
    };
    if !has_iptables() {
        eprintln!("skipped: needs iptables for delay faults");
        return;
    }
    let dir = run_valid(
        &store,
        "name: slow\ntimeline:\n  - {at: 1s, start: delay, target: all, latency: 100ms, jitter: 10ms}\n  - {at: 4s, stop: delay}\n",
        &[
            "--target",
            "raftkv",
            "--workload",
            "writes",
            "--time-limit",
            "6s",
            "--concurrency",
            "10",
        ],
    );
    let h = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    assert_eq!(nemesis_ops(&h), ["start-delay", "stop-delay"]);
    let stop: serde_json::Value = h
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["f"] == "stop-delay")
        .unwrap();
    for n in ["n1", "n2", "n3", "n4", "n5"] {
        let held = &stop["value"]["held"][n];
        assert!(held["packets"].as_u64().unwrap() > 0, "{n}: {held}");
        let mean = held["mean_held_ms"].as_f64().unwrap();
        assert!((95.0..130.0).contains(&mean), "{n}: {held}");
    }
    // A write is acknowledged after a round trip to the followers: while every node's
    // packets to its peers wait 100 ms, that takes at least 200 ms; before and after, a
    // few.
    let slow = write_latencies_ms(&h, 1.5, 3.5);
    let fast = write_latencies_ms(&h, 4.5, 6.0);
    assert!(
        slow.len() > 10 && fast.len() > 10,
        "{} {}",
        slow.len(),
        fast.len()
    );
    assert!(
        slow[slow.len() / 2] >= 190.0,
        "median {}",
        slow[slow.len() / 2]
    );
    assert!(
        fast[fast.len() / 2] < 50.0,
        "median {}",
        fast[fast.len() / 2]
    );
}

#[test]
fn next_primaries_waits_for_the_election_and_isolates_the_winner() {
    let Some((_cluster, store)) = root_cluster("nextpri") else {
        return;
    };
    let dir = run_valid(
        &store,
        "name: np\ntimeline:\n  - {at: 1s, start: kill, target: primaries}\n  - {at: 1100ms, start: partition, grudge: next-primaries}\n  - {at: 1200ms, stop: kill}\n",
        &["--target", "raftkv", "--time-limit", "5s", "--seed", "3"],
    );
    let h = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    let ops: Vec<serde_json::Value> = h
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["process"] == "nemesis")
        .collect();
    let killed = ops[0]["value"]["nodes"][0].as_str().unwrap().to_string();
    let part = ops.iter().find(|v| v["f"] == "start-partition").unwrap();
    // The isolated node drops the four others.
    let grudge = part["value"]["grudge"].as_object().unwrap();
    let isolated: Vec<&String> = grudge
        .iter()
        .filter(|(_, d)| d.as_array().unwrap().len() == 4)
        .map(|(n, _)| n)
        .collect();
    assert_eq!(isolated.len(), 1, "{grudge:?}");
    assert_ne!(isolated[0], &killed);
    // It is the node that won the election after the kill: its log says so, and the
    // partition came after that election (the wait), not at 1.1 s.
    let log = std::fs::read_dir(dir.join("nodes").join(isolated[0]))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap_or_default())
        .collect::<String>();
    assert!(log.contains("became leader"), "{log}");
    let waited = part["time_ns"].as_f64().unwrap() / 1e9;
    assert!(
        waited > 1.3,
        "partition at {waited} s: it did not wait for the election"
    );
}
