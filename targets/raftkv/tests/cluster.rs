//! End-to-end tests: real `raftkv` processes on 127.0.0.1, spoken to over the documented
//! client protocol. Every process started here is SIGKILLed and reaped when the test ends,
//! also when it panics (the `Cluster` drop guard).

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_raftkv");

/// A port no other test of this process got, free right now. Taken from below the
/// kernel's ephemeral range so outgoing connections do not grab it meanwhile.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        20_000 + (std::process::id() % 1000) as u16 * 10,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        assert!(port < 32_000, "ran out of test ports");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

struct Node {
    id: String,
    peer_port: u16,
    client_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

/// A cluster of real processes; dropping it kills them all.
struct Cluster {
    nodes: Vec<Node>,
    root: PathBuf,
    extra: Vec<String>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.root);
        } else {
            eprintln!("node logs kept in {}", self.root.display());
        }
    }
}

impl Cluster {
    fn start(name: &str, n: usize, extra: &[&str]) -> Cluster {
        let root = std::env::temp_dir().join(format!("raftkv-it-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("temp dir");
        let nodes = (1..=n)
            .map(|i| Node {
                id: format!("n{i}"),
                peer_port: free_port(),
                client_port: free_port(),
                dir: root.join(format!("n{i}")),
                child: None,
            })
            .collect();
        let mut c = Cluster {
            nodes,
            root,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        for i in 0..n {
            c.spawn(i);
        }
        c
    }

    fn spawn(&mut self, i: usize) {
        let peers: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, p)| format!("{}=127.0.0.1:{}", p.id, p.peer_port))
            .collect();
        let n = &self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join(format!("{}.log", n.id)))
            .expect("log file");
        let child = Command::new(BIN)
            .args(["--id", &n.id])
            .args(["--peer-listen", &format!("127.0.0.1:{}", n.peer_port)])
            .args(["--client-listen", &format!("127.0.0.1:{}", n.client_port)])
            .args(["--peers", &peers.join(",")])
            .arg("--data-dir")
            .arg(&n.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("raftkv starts");
        self.nodes[i].child = Some(child);
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            c.kill().expect("SIGKILL");
            c.wait().expect("reaped");
        }
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.root.join(format!("{}.log", self.nodes[i].id)))
            .unwrap_or_default()
    }

    fn request(&self, i: usize, req: Value) -> Option<Value> {
        request(self.nodes[i].client_port, req)
    }

    fn status(&self, i: usize) -> Option<Value> {
        self.request(i, json!({"id": 0, "op": "status"}))
    }

    /// Waits until a node other than `except` says it leads; returns its index.
    fn wait_leader(&self, except: Option<usize>, within: Duration) -> usize {
        let start = Instant::now();
        while start.elapsed() < within {
            for i in 0..self.nodes.len() {
                if Some(i) == except || self.nodes[i].child.is_none() {
                    continue;
                }
                if self.status(i).is_some_and(|s| s["leader"] == true) {
                    return i;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no leader within {within:?}");
    }
}

/// One request on a fresh connection; None if the node did not answer.
fn request(port: u16, req: Value) -> Option<Value> {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(8))).ok()?;
    writeln!(s, "{req}").ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    let v: Value = serde_json::from_str(&line).ok()?;
    assert_eq!(v["id"], req["id"], "response carries the request's id");
    Some(v)
}

/// The node a `not-leader` answer points to, if any.
fn redirect(c: &Cluster, r: &Value) -> Option<usize> {
    let hint = r["leader"].as_str()?;
    c.nodes.iter().position(|n| n.id == hint)
}

/// Sends `req` starting at node `i`, following not-leader hints and retrying unknown
/// outcomes (the same write again is harmless here: no other writer races it) until an
/// ok; returns the answer and the node that gave it.
fn until_ok(c: &Cluster, mut i: usize, req: Value) -> (Value, usize) {
    let start = Instant::now();
    loop {
        let r = c.request(i, req.clone());
        match &r {
            Some(r) if r["type"] == "ok" => return (r.clone(), i),
            Some(r) if r["error"] == "not-leader" => {
                if let Some(j) = redirect(c, r) {
                    i = j;
                }
            }
            _ => {}
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{req} never succeeded; last answer {r:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Writes `key`=`value` starting at node `i`; returns the node that acknowledged it.
fn write_ok(c: &Cluster, i: usize, key: &str, value: i64) -> usize {
    until_ok(
        c,
        i,
        json!({"id": value, "op": "write", "key": key, "value": value}),
    )
    .1
}

/// Reads `key` starting at node `i` (a fresh leader may need a moment).
fn read_ok(c: &Cluster, i: usize, key: &str) -> Value {
    until_ok(c, i, json!({"id": 1, "op": "read", "key": key})).0["value"].clone()
}

fn leader_failover(n: usize) {
    let fast = [
        "--election-timeout-ms",
        "1000",
        "--heartbeat-ms",
        "50",
        "--snapshot-threshold",
        "50",
    ];
    let mut c = Cluster::start(&format!("failover{n}"), n, &fast);
    let mut l = c.wait_leader(None, Duration::from_secs(15));
    let mut acked = BTreeMap::new();
    for v in 0..120 {
        let key = format!("k{}", v % 10);
        l = write_ok(&c, l, &key, v);
        acked.insert(key, v);
    }
    let leader_id = c.nodes[l].id.clone();
    // A follower redirects, and says who leads.
    let f = (l + 1) % n;
    assert_eq!(c.status(l).expect("leader answers")["leader"], true);
    let r = c
        .request(f, json!({"id": 5, "op": "read", "key": "k1"}))
        .expect("an answer");
    assert_eq!(r["type"], "fail", "{r}");
    assert_eq!(r["error"], "not-leader", "{r}");
    assert_eq!(r["leader"], leader_id.as_str(), "{r}");
    for (k, v) in &acked {
        assert_eq!(read_ok(&c, l, k), json!(v));
    }

    c.kill(l);
    let mut l2 = c.wait_leader(Some(l), Duration::from_secs(15));
    for (k, v) in &acked {
        assert_eq!(
            read_ok(&c, l2, k),
            json!(v),
            "acknowledged write of {k} survived"
        );
    }
    for v in 120..300 {
        let key = format!("k{}", v % 10);
        l2 = write_ok(&c, l2, &key, v);
        acked.insert(key, v);
    }

    // The killed node comes back on its data dir and catches up (by snapshot: the
    // leader compacted past everything it had).
    c.spawn(l);
    let target = c.status(l2).expect("leader status")["commit_index"]
        .as_u64()
        .expect("commit index");
    let start = Instant::now();
    loop {
        let s = c.status(l);
        if s.as_ref().and_then(|s| s["applied_index"].as_u64()) >= Some(target) {
            assert_eq!(s.expect("status")["leader_id"], c.nodes[l2].id.as_str());
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "restarted node caught up: {s:?} vs {target}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        c.log(l).contains("installing snapshot"),
        "caught up through InstallSnapshot:\n{}",
        c.log(l)
    );
    for (k, v) in &acked {
        assert_eq!(read_ok(&c, l2, k), json!(v));
    }
}

#[test]
fn three_nodes_survive_leader_kill_and_restart() {
    leader_failover(3);
}

#[test]
fn five_nodes_survive_leader_kill_and_restart() {
    leader_failover(5);
}

fn signal(c: &Cluster, i: usize, sig: &str) {
    let pid = c.nodes[i].child.as_ref().expect("running").id();
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill runs")
        .success();
    assert!(ok, "kill {sig} {pid}");
}

#[test]
fn paused_leader_is_replaced_and_rejoins_as_follower() {
    let fast = ["--election-timeout-ms", "1000", "--heartbeat-ms", "50"];
    let c = Cluster::start("pause", 3, &fast);
    let l = c.wait_leader(None, Duration::from_secs(15));
    let l = write_ok(&c, l, "x", 1);
    signal(&c, l, "-STOP");
    let l2 = c.wait_leader(Some(l), Duration::from_secs(15));
    let l2 = write_ok(&c, l2, "x", 2);
    signal(&c, l, "-CONT");
    // The old leader learns of the new term and follows; no stale value is served by it.
    let start = Instant::now();
    loop {
        let s = c.status(l);
        if s.as_ref()
            .is_some_and(|s| s["leader"] == false && s["leader_id"] == c.nodes[l2].id.as_str())
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "old leader follows: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = c
        .request(l, json!({"id": 9, "op": "read", "key": "x"}))
        .expect("an answer");
    assert_eq!(r["error"], "not-leader", "{r}");
    assert_eq!(read_ok(&c, l2, "x"), json!(2));
}

#[test]
fn single_node_serves_pipelined_requests_and_bad_input() {
    let c = Cluster::start("single", 1, &[]);
    c.wait_leader(None, Duration::from_secs(10));
    let addr: SocketAddr = ([127, 0, 0, 1], c.nodes[0].client_port).into();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(8)))
        .expect("timeout");
    let lines = [
        r#"{"id":1,"op":"write","key":"a","value":1}"#,
        "this is not json",
        r#"{"id":2,"op":"cas","key":"a","from":1,"to":2}"#,
        r#"{"id":3,"op":"explode","key":"a"}"#,
        r#"{"id":4,"op":"cas","key":"b","from":1,"to":2}"#,
    ];
    for l in lines {
        writeln!(s, "{l}").expect("send");
    }
    let mut rd = BufReader::new(s.try_clone().expect("clone"));
    let mut by_id = BTreeMap::new();
    for _ in 0..lines.len() {
        let mut line = String::new();
        rd.read_line(&mut line).expect("answer");
        let v: Value = serde_json::from_str(&line).expect("JSON answer");
        by_id.insert(v["id"].to_string(), v);
    }
    assert_eq!(by_id["1"]["type"], "ok");
    assert_eq!(by_id["2"]["type"], "ok");
    assert!(by_id["null"]["error"]
        .as_str()
        .is_some_and(|e| e.starts_with("bad-request:")));
    assert!(by_id["3"]["error"]
        .as_str()
        .is_some_and(|e| e.contains("unknown op")));
    assert_eq!(
        by_id["4"],
        json!({"id":4,"type":"fail","error":"compare-failed","value":null})
    );
    writeln!(s, r#"{{"id":5,"op":"read","key":"a"}}"#).expect("send");
    let mut line = String::new();
    rd.read_line(&mut line).expect("answer");
    assert_eq!(
        serde_json::from_str::<Value>(&line).expect("JSON"),
        json!({"id":5,"type":"ok","value":2})
    );
}

#[test]
fn sigterm_stops_the_node_cleanly() {
    let mut c = Cluster::start("sigterm", 1, &[]);
    c.wait_leader(None, Duration::from_secs(10));
    let mut child = c.nodes[0].child.take().expect("running");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("wait") {
            assert!(st.success(), "exit status {st}");
            break;
        }
        if start.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("did not exit within 5 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(c.log(0).contains("received SIGTERM"));
}

fn run_bad(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN).args(args).output().expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn rejects_bad_flags_with_clear_errors() {
    let base = [
        "--id",
        "n1",
        "--peer-listen",
        "127.0.0.1:0",
        "--client-listen",
        "127.0.0.1:0",
    ];
    let with = |extra: &[&str]| {
        let mut v = base.to_vec();
        v.extend_from_slice(extra);
        run_bad(&v)
    };
    let tmp = std::env::temp_dir().join(format!("raftkv-it-flags-{}", std::process::id()));
    let tmp = tmp.to_str().expect("utf-8 path");

    let (code, err) = with(&[
        "--data-dir",
        tmp,
        "--peers",
        "n2=127.0.0.1:1,n2=127.0.0.1:2",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("\"n2\" twice"), "{err}");
    let (code, err) = with(&["--data-dir", tmp, "--peers", "n1=127.0.0.1:1"]);
    assert_eq!(code, 2);
    assert!(err.contains("own id"), "{err}");
    let (code, err) = with(&["--data-dir", tmp, "--bug", "typo"]);
    assert_eq!(code, 2);
    assert!(err.contains("typo"), "{err}");
    let (code, err) = with(&["--data-dir", "/proc/raftkv-no-such-dir"]);
    assert_eq!(code, 1);
    assert!(err.contains("/proc/raftkv-no-such-dir"), "{err}");
    let (code, err) = run_bad(&["--id", "n1"]);
    assert_eq!(code, 2);
    assert!(err.contains("--peer-listen"), "{err}");
    let out = Command::new(BIN).arg("--help").output().expect("runs");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--peer-listen",
        "--client-listen",
        "--peers",
        "--data-dir",
        "--bug",
    ] {
        assert!(help.contains(flag), "--help mentions {flag}");
    }
    let _ = std::fs::remove_dir_all(tmp);
}
