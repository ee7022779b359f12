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

/// A run left running after it ends (removed when the returned guard drops), with these
/// arguments; asserts it passed.
fn run_left_running(store: &Path, args: &[&str]) -> (std::path::PathBuf, Cleanup) {
    let out = faultline()
        .arg("run")
        .args(args)
        .args(["--leave-running", "--quiet"])
        .arg("--store")
        .arg(store)
        .output()
        .unwrap();
    let run_dir = run_dir_of(&out);
    let (id, _) = ids_from_log(&run_dir);
    let cleanup = Cleanup(id);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (run_dir, cleanup)
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
    let (run_dir, _cleanup) = run_left_running(
        &store,
        &[
            "--target",
            "raftkv",
            "--workload",
            "writes",
            "--nemesis",
            "none",
            "--nodes",
            "5",
            "--concurrency",
            "1",
            "--time-limit",
            "8s",
            // One entry per AppendEntries: a write is 4 appends and 4 answers.
            "--target-arg=--max-batch",
            "--target-arg=1",
        ],
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
}

/// An HTTP/1.0 GET to a node, its body.
fn http_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut s, &mut text).unwrap();
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// The value of the Prometheus sample `name{label="…"}` lines: label value → number.
fn samples(metrics: &str, name: &str) -> Vec<(String, f64)> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix('{'))
        .filter_map(|rest| {
            let (labels, value) = rest.split_once("} ")?;
            let label = labels.split_once("=\"")?.1.trim_end_matches('"');
            Some((label.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

#[test]
fn etcd_peer_payload_bytes_match_its_own_sent_bytes_within_five_percent() {
    let Some((_cluster, store)) = root_cluster("wire-etcd") else {
        return;
    };
    if let Some(why) = crate::etcd::missing_etcd(false) {
        eprintln!("skipped: {why}");
        return;
    }
    // 4 KiB values: etcd counts the protobuf size of each raft message, faultline the TCP
    // payload of its HTTP streams; with realistic entries the framing is a small share.
    let (run_dir, _cleanup) = run_left_running(
        &store,
        &[
            "--target",
            "etcd",
            "--workload",
            "writes-4k",
            "--nemesis",
            "none",
            "--nodes",
            "3",
            "--concurrency",
            "4",
            "--time-limit",
            "8s",
        ],
    );
    // Each node's name and client address, from the start lines of the run log.
    let log = std::fs::read_to_string(run_dir.join("faultline.log")).unwrap();
    let nodes: Vec<(String, String)> = log
        .lines()
        .filter_map(|l| {
            let name = l.split("] started ").nth(1)?.split_whitespace().next()?;
            let url = l.split("--listen-client-urls http://").nth(1)?;
            Some((name.to_string(), url.split_whitespace().next()?.to_string()))
        })
        .collect();
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    // etcd names peers by member id; each node says its own.
    let metrics: Vec<(String, String)> = nodes
        .iter()
        .map(|(n, a)| (n.clone(), http_get(a, "/metrics")))
        .collect();
    let name_of = |member: &str| {
        metrics
            .iter()
            .find(|(_, m)| {
                samples(m, "etcd_server_id")
                    .iter()
                    .any(|(id, _)| id == member)
            })
            .map(|(n, _)| n.clone())
            .unwrap_or_else(|| panic!("no node has member id {member}"))
    };
    // faultline's counts since the counters were installed, as of the final sample: etcd's
    // run from its start, which adds only the election and the readiness probes.
    let wire = std::fs::read_to_string(run_dir.join("wire.jsonl")).unwrap();
    let last: Value = serde_json::from_str(wire.lines().last().unwrap()).unwrap();
    let payload = |from: &str, to: &str| {
        last["links"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["from"] == from && l["to"] == to)
            .and_then(|l| l["payload"].as_u64())
            .unwrap_or_else(|| panic!("no link {from} -> {to} in {last}"))
    };
    let mut compared = 0;
    for (from, m) in &metrics {
        for (member, sent) in samples(m, "etcd_network_peer_sent_bytes_total") {
            let to = name_of(&member);
            let ours = payload(from, &to) as f64;
            eprintln!(
                "{from} -> {to}: etcd {sent:.0} bytes, faultline {ours:.0} payload bytes ({:+.2} %)",
                (ours - sent) / sent * 100.0
            );
            // Links that carry only probes (a few hundred bytes) are all framing.
            if sent < 1e6 {
                continue;
            }
            compared += 1;
            assert!(
                (ours - sent).abs() <= 0.05 * sent,
                "{from} -> {to}: faultline {ours} vs etcd {sent} bytes"
            );
        }
    }
    // The leader's appends to both followers, and the followers' answers.
    assert!(compared >= 2, "too little traffic to compare");
}

#[test]
fn compare_makes_one_row_of_a_calm_run_and_a_run_with_a_follower_cut_off() {
    let Some((_cluster, store)) = root_cluster("wire-compare") else {
        return;
    };
    for nemesis in ["none", "cut-follower"] {
        let out = faultline()
            .args(["run", "--target", "raftkv", "--workload", "writes"])
            .args(["--nemesis", nemesis, "--nodes", "3", "--concurrency", "2"])
            .args(["--time-limit", "6s", "--quiet"])
            .arg("--store")
            .arg(&store)
            .output()
            .unwrap();
        if out.status.code() != Some(0) {
            // Say which checker refused the run: the exit code alone does not.
            let dir = run_dir_of(&out);
            let why: String = std::fs::read_to_string(dir.join("results.json"))
                .unwrap_or_default()
                .chars()
                .take(4000)
                .collect();
            panic!(
                "{nemesis}: exit {:?}: {}\nresults.json: {why}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let out = faultline()
        .args(["compare", "--json"])
        .arg(&store)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");
    let r = &rows[0];
    assert_eq!(r["target"], "raftkv");
    assert_eq!(r["nodes"], 3);
    assert_eq!(r["tolerated"], "1 crashed or cut off");
    assert_eq!(
        (r["calm_runs"].clone(), r["partition_runs"].clone()),
        (1.into(), 1.into())
    );
    let rtt = r["rtt_ms"].as_f64().expect("a round trip measured");
    assert!(rtt > 0.0 && rtt < 50.0, "{rtt} ms over a local bridge");
    for part in ["calm", "partition"] {
        let f = &r[part];
        for k in [
            "messages_per_write",
            "payload_bytes_per_write",
            "write_p50_ms",
            "writes_per_s",
        ] {
            assert!(f[k].as_f64().is_some_and(|x| x > 0.0), "{part}.{k}: {r}");
        }
        // Latency is at least the round trip to the leader.
        assert!(f["write_p50_ms"].as_f64().unwrap() >= rtt, "{r}");
    }
    // With a follower cut off, a write goes to one follower fewer.
    let calm = r["calm"]["messages_per_write"].as_f64().unwrap();
    let cut = r["partition"]["messages_per_write"].as_f64().unwrap();
    assert!(
        cut < calm,
        "cut off {cut} vs calm {calm} messages per write"
    );
    let md = faultline().arg("compare").arg(&store).output().unwrap();
    let md = String::from_utf8_lossy(&md.stdout);
    assert!(
        md.starts_with("| target | nodes |")
            && md.contains("| raftkv | 3 | 1 crashed or cut off |"),
        "{md}"
    );
}
