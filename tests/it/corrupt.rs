//! File corruption end to end (issue 23): a raftkv node stopped, bits of the files
//! raftkv declares (`data_files`) flipped, the node started again on them. The journal
//! must name every change (node, file, offset, length, kind) and the restart; the
//! verdict is raftkv's and is printed, not asserted (a finding either way). Refusals of
//! a corruption that cannot be carried out come before anything starts. The damage
//! itself is unit-tested (`nemesis::corrupt`): same seed, same damage.

use crate::run::{faultline, ids_from_log, leftovers, results, root_cluster, run_dir_of};
use serde_json::Value;

/// A timeline with one corruption of one node: bit flips at 1/10 000 per bit, so a few
/// in a log of a few hundred kB, and the node restarted 3 s later.
const ONE_BITFLIP: &str = "name: one-bitflip\ntimeline:\n  - {at: 4s, start: corrupt, damage: bitflip, probability: 0.0001, target: one}\n  - {at: 7s, stop: corrupt}\n";

#[test]
fn bit_flips_in_one_raftkv_node_are_journaled_and_the_node_restarts() {
    let Some((_cluster, store)) = root_cluster("corrupt-bitflip") else {
        return;
    };
    let nemesis = store.join("one-bitflip.yaml");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::write(&nemesis, ONE_BITFLIP).unwrap();
    let out = faultline()
        .args(["run", "--target", "raftkv", "--workload", "lost-writes"])
        .arg("--nemesis")
        .arg(&nemesis)
        .args([
            "--nodes",
            "3",
            "--time-limit",
            "12s",
            "--seed",
            "5",
            "--quiet",
        ])
        .arg("--store")
        .arg(&store)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // 0 valid, 1 invalid, 2 unknown: raftkv's verdict; 3 and above would be faultline's.
    assert!(
        matches!(out.status.code(), Some(0..=2)),
        "harness error: {stderr}"
    );
    let dir = run_dir_of(&out);
    let history: Vec<Value> = std::fs::read_to_string(dir.join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let corrupt: Vec<&Value> = history.iter().filter(|op| op["f"] == "corrupt").collect();
    assert_eq!(corrupt.len(), 1, "one corruption in the timeline");
    let v = &corrupt[0]["value"];
    assert!(corrupt[0]["error"].is_null(), "{v}");
    let node = v["stopped"][0].as_str().unwrap().to_string();
    assert_eq!(
        v["nodes"],
        serde_json::json!([node]),
        "it landed on {node}: {v}"
    );
    let changes = v["changes"].as_array().unwrap();
    assert!(!changes.is_empty());
    for c in changes {
        assert_eq!(c["node"], node.as_str());
        assert_eq!(c["damage"], "bitflip");
        assert_eq!(c["length"], 1);
        assert!(
            ["log.jsonl", "hard_state.json", "snapshot.json"]
                .contains(&c["file"].as_str().unwrap()),
            "{c}"
        );
        assert!(c["offset"].is_u64() && c["mask"].as_u64().is_some_and(|m| m > 0 && m < 256));
    }
    // The restart: journaled, and a second start of the node's process (its own log files).
    let restart = history
        .iter()
        .find(|op| op["f"] == "restart-corrupted")
        .expect("no restart-corrupted in the journal");
    assert_eq!(restart["value"]["nodes"], serde_json::json!([node]));
    assert!(dir.join("nodes").join(&node).join("stderr.1.log").exists());
    let r = results(&dir);
    assert_eq!(r["run"]["faults"]["planned"], 1, "{r}");
    assert_eq!(r["run"]["faults"]["landed"], 1, "{r}");
    // The run page and the timeline tell what was damaged.
    let timeline = std::fs::read_to_string(dir.join("timeline.html")).unwrap();
    assert!(
        timeline.contains("bit(s) flipped in bytes"),
        "timeline without the damage"
    );
    let (id, pids) = ids_from_log(&dir);
    assert_eq!(leftovers(&id, &pids), Vec::<String>::new());
    eprintln!(
        "raftkv after {} bit flip(s) in {node}'s files: {}; restart: {}; verdict {}",
        changes.len(),
        changes
            .iter()
            .map(|c| format!("{}@{}", c["file"].as_str().unwrap(), c["offset"]))
            .take(5)
            .collect::<Vec<_>>()
            .join(" "),
        restart["value"],
        r["verdict"]
    );
}

#[test]
fn a_corruption_of_a_target_without_data_files_is_refused_before_anything_starts() {
    let store = crate::run::store("corrupt-refused");
    let out = faultline()
        .args(["run", "--target", "tests/fixtures/lazykv/target.yaml"])
        .args(["--nemesis", "corrupt-bitflip", "--hosts", "loopback"])
        .arg("--store")
        .arg(&store)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code().is_some_and(|c| c >= 3), "{stderr}");
    // The file, its line (and column), the field and the rule.
    assert!(
        stderr.contains("nemesis/corrupt-bitflip.yaml:10:"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "faults[0].fault: nemesis corrupt-bitflip corrupts data files, but target lazykv"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("declares no `data_files:`"), "{stderr}");
    let made: Vec<_> = std::fs::read_dir(&store).into_iter().flatten().collect();
    assert!(made.is_empty(), "a run directory was made: {made:?}");
    std::fs::remove_dir_all(&store).ok();
}
