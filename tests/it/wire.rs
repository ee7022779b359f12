//! What a write costs on the wire (issue 19): faultline's per-link counters against the
//! target's own count, on real raftkv processes in network namespaces.

use crate::run::{faultline, ids_from_log, results, root_cluster, run_dir_of};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

/// Removes a cluster left running, however the test ends.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = faultline().args(["cleanup", &self.0]).output();
    }
}

/// Each node's client address, from the start lines of the run log.
fn client_addrs(run_dir: &Path) -> Vec<String> {
    let log = std::fs::read_to_string(run_dir.join("faultline.log")).unwrap();
    log.lines()
        .filter(|l| l.contains("] started n"))
        .filter_map(|l| l.split("--client-listen ").nth(1))
        .filter_map(|r| r.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

fn status(addr: &str) -> Value {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"{\"id\":1,\"op\":\"status\"}\n").unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap()
}

#[test]
fn raftkv_peer_packets_per_write_match_its_own_count_within_ten_percent() {
    let Some((_cluster, store)) = root_cluster("wire") else {
        return;
    };
    let out = faultline()
        .args(["run", "--target", "raftkv", "--workload", "writes"])
        .args(["--nemesis", "none", "--nodes", "5", "--concurrency", "1"])
        .args(["--time-limit", "8s", "--leave-running", "--quiet"])
        // One entry per AppendEntries: a write is 4 appends and 4 answers.
        .args(["--target-arg=--max-batch", "--target-arg=1"])
        .arg("--store")
        .arg(&store)
        .output()
        .unwrap();
    let run_dir = run_dir_of(&out);
    let (id, _) = ids_from_log(&run_dir);
    let _cleanup = Cleanup(id);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wire = results(&run_dir)["wire"].clone();
    let measured = wire["messages_per_write"].as_f64().expect("wire measured");
    let writes = wire["ok_writes"].as_u64().unwrap();
    assert!(writes > 100, "too few writes to measure: {wire}");

    // raftkv's truth: each socket write of messages and each acknowledgement line is one
    // data segment (nodelay, small frames). Its counts run from node start to now, a
    // little longer than the main phase faultline measured, which only adds heartbeats.
    let addrs = client_addrs(&run_dir);
    assert_eq!(addrs.len(), 5, "{addrs:?}");
    let (mut segments, mut messages) = (0u64, 0u64);
    for a in &addrs {
        let st = status(a);
        for c in st["peers"].as_object().expect("peers in status").values() {
            segments += c["writes_sent"].as_u64().unwrap() + c["acks_sent"].as_u64().unwrap();
            messages += c["messages_sent"].as_u64().unwrap();
        }
    }
    let truth = segments as f64 / writes as f64;
    let raft = messages as f64 / writes as f64;
    eprintln!(
        "{writes} writes: faultline {measured:.2} peer packets/write, raftkv {truth:.2} segments/write, {raft:.2} Raft messages/write"
    );
    assert!(
        (measured - truth).abs() <= 0.1 * truth,
        "faultline {measured:.2} vs raftkv {truth:.2} packets per write"
    );
    // 4 appends and 4 answers per write, and not far above: batching is off.
    assert!(
        (8.0..12.0).contains(&raft),
        "{raft:.2} Raft messages per write"
    );
    std::fs::remove_dir_all(&store).ok();
}
