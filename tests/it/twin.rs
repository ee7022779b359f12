//! Twin nodes end to end (issue 20): a raftkv node's twin in a namespace of its own, seen
//! by the peers the nemesis assigned to it and by no other, switched, stopped, and
//! nothing of it left after the run or an interrupt. The verdict is not asserted: Raft
//! does not tolerate a node with two faces, so a run with a twin may well be invalid.

use crate::run::{
    faultline, ids_from_log, interrupt_and_expect_clean, leftovers, root_cluster, state_file_exists,
};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Ask a raftkv node for its status at `addr`, from the root namespace or from `netns`
/// (a twin listens on its node's address inside its own namespace only).
fn status(addr: SocketAddr, netns: Option<String>) -> Value {
    std::thread::spawn(move || {
        if let Some(ns) = netns {
            // Only this thread moves; the test's other threads stay where they are.
            let f = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
            nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        }
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.write_all(b"{\"id\":1,\"op\":\"status\"}\n").unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        serde_json::from_str::<Value>(&line).unwrap()
    })
    .join()
    .unwrap()
}

/// What `status` says node `me` exchanged with `peer`: (messages sent, received).
fn with(status: &Value, peer: &str) -> (u64, u64) {
    let c = &status["peers"][peer];
    (
        c["messages_sent"].as_u64().unwrap_or(0),
        c["messages_received"].as_u64().unwrap_or(0),
    )
}

/// The run directory under `store` once its history satisfies `ready` (240 s at most: the
/// run first builds raftkv, which on a busy 2-core machine takes minutes).
fn wait_for(store: &Path, ready: impl Fn(&str) -> bool) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let dirs = std::fs::read_dir(store)
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|t| std::fs::read_dir(t.path()).into_iter().flatten().flatten())
            .map(|e| e.path())
            .filter(|p| {
                p.is_dir() && !p.ends_with("latest") && !p.starts_with(store.join("latest"))
            });
        for d in dirs {
            if ready(&std::fs::read_to_string(d.join("history.jsonl")).unwrap_or_default()) {
                return d;
            }
        }
        assert!(Instant::now() < deadline, "the run never got that far");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// n1's client address, from the command line the run log shows for it.
fn n1_client_addr(dir: &Path) -> SocketAddr {
    client_addr(dir, "n1")
}

/// `node`'s client address, from the command line the run log shows for it.
fn client_addr(dir: &Path, node: &str) -> SocketAddr {
    let log = std::fs::read_to_string(dir.join("faultline.log")).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains(&format!("started {node} (pid")))
        .expect("the node's start in the log");
    let at = line.split("--client-listen ").nth(1).unwrap();
    at.split_whitespace().next().unwrap().parse().unwrap()
}

fn nemesis_file(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("twin-split.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

fn start_run(store: &Path, nemesis: &Path, time_limit: &str) -> std::process::Child {
    start_run_on(store, nemesis, time_limit, "3")
}

fn start_run_on(
    store: &Path,
    nemesis: &Path,
    time_limit: &str,
    nodes: &str,
) -> std::process::Child {
    faultline()
        .args([
            "run", "--target", "raftkv", "--nodes", nodes, "--quiet", "--seed", "3",
        ])
        .args(["--time-limit", time_limit, "--hosts", "local", "--nemesis"])
        .arg(nemesis)
        .arg("--store")
        .arg(store)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Sent to or received from `peer`, between two statuses.
fn grew(before: &Value, after: &Value, peer: &str) -> (bool, bool) {
    let (s0, r0) = with(before, peer);
    let (s1, r1) = with(after, peer);
    (s1 > s0, r1 > r0)
}

#[test]
fn peers_reach_the_twin_they_were_assigned_and_nothing_is_left() {
    let Some((_cluster, store)) = root_cluster("twin") else {
        return;
    };
    let nemesis = nemesis_file(
        &store,
        "name: twin-split\ntimeline:\n  - {at: 2s, start: twin, target: [n1], see: [n2]}\n  - {at: 14s, start: twin, target: [n1], see: [n3]}\n  - {at: 26s, stop: twin}\n",
    );
    let child = start_run(&store, &nemesis, "30s");
    let dir = wait_for(&store, |h| h.contains("\"start-twin\""));
    let (id, _) = ids_from_log(&dir);
    let addr = n1_client_addr(&dir);
    let twin_ns = Some(format!("fl-{id}-n1-twin"));

    // n2 sees the twin, n3 the original. Connections settle first (stall detection).
    std::thread::sleep(Duration::from_secs(3));
    let (o0, t0) = (status(addr, None), status(addr, twin_ns.clone()));
    std::thread::sleep(Duration::from_secs(5));
    let (o1, t1) = (status(addr, None), status(addr, twin_ns.clone()));
    assert_eq!(t1["node"], "n1", "the twin has n1's identity: {t1}");
    let (sent, recvd) = grew(&t0, &t1, "n2");
    assert!(
        sent || recvd,
        "the twin talks with n2, which sees it: {t0} → {t1}"
    );
    assert_eq!(
        with(&t1, "n3"),
        (0, 0),
        "n3 sees the original: the twin never reached it: {t1}"
    );
    assert!(
        !grew(&o0, &o1, "n2").1,
        "nothing from n2 reaches the original while n2 sees the twin: {o0} → {o1}"
    );

    // Switched at 14 s: n3 sees the twin, n2 the original.
    let dir2 = wait_for(&store, |h| h.matches("\"start-twin\"").count() >= 2);
    assert_eq!(dir2, dir);
    std::thread::sleep(Duration::from_secs(3));
    let (o2, t2) = (status(addr, None), status(addr, twin_ns.clone()));
    std::thread::sleep(Duration::from_secs(5));
    let (o3, t3) = (status(addr, None), status(addr, twin_ns));
    let (sent, recvd) = grew(&t2, &t3, "n3");
    assert!(
        sent || recvd,
        "after the switch the twin talks with n3: {t2} → {t3}"
    );
    assert!(
        !grew(&t2, &t3, "n2").1,
        "nothing from n2 reaches the twin once n2 sees the original: {t2} → {t3}"
    );
    assert!(
        !grew(&o2, &o3, "n3").1,
        "nothing from n3 reaches the original while n3 sees the twin: {o2} → {o3}"
    );

    let out = child.wait_with_output().unwrap();
    assert!(
        matches!(out.status.code(), Some(0..=2)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The history says which peers saw which twin; the twin's output is kept.
    let history = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    let twins: Vec<Value> = history
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|op| op["f"] == "start-twin")
        .collect();
    assert_eq!(twins.len(), 2, "{history}");
    assert_eq!(twins[0]["value"]["sees_twin"], serde_json::json!(["n2"]));
    assert_eq!(
        twins[0]["value"]["sees_original"],
        serde_json::json!(["n3"])
    );
    assert_eq!(twins[1]["value"]["sees_twin"], serde_json::json!(["n3"]));
    assert!(history.contains("\"stop-twin\""), "{history}");
    let twin_log = std::fs::read_to_string(dir.join("nodes/n1-twin/stderr.log")).unwrap();
    assert!(!twin_log.is_empty(), "the twin's stderr is kept");
    // Every node and the twin (their pids are in the log) are gone, with the namespaces.
    let (_, pids) = ids_from_log(&dir);
    assert_eq!(pids.len(), 4, "three nodes and a twin started");
    assert_eq!(leftovers(&id, &pids), Vec::<String>::new());
}

#[test]
fn an_interrupt_while_a_twin_runs_leaves_nothing() {
    let Some((_cluster, store)) = root_cluster("twin-sigint") else {
        return;
    };
    let nemesis = nemesis_file(
        &store,
        "name: twin-split\ntimeline:\n  - {at: 1s, start: twin, target: one}\n  - {at: 50s, stop: twin}\n",
    );
    let child = start_run(&store, &nemesis, "60s");
    let dir = wait_for(&store, |h| h.contains("\"start-twin\""));
    let (id, pids) = ids_from_log(&dir);
    assert_eq!(pids.len(), 4, "three nodes and a twin started");
    assert!(
        !leftovers(&id, &pids).is_empty(),
        "the run and its twin should be up"
    );
    interrupt_and_expect_clean(child, &id, &pids);
}

#[test]
fn a_sigkilled_controller_leaves_its_twin_to_faultline_cleanup() {
    let Some((_cluster, store)) = root_cluster("twin-sigkill") else {
        return;
    };
    let nemesis = nemesis_file(
        &store,
        "name: twin-split\ntimeline:\n  - {at: 1s, start: twin, target: [n2]}\n  - {at: 50s, stop: twin}\n",
    );
    let mut child = start_run(&store, &nemesis, "60s");
    let dir = wait_for(&store, |h| h.contains("\"start-twin\""));
    let (id, pids) = ids_from_log(&dir);
    assert_eq!(pids.len(), 4, "three nodes and a twin started");
    child.kill().unwrap();
    child.wait().unwrap();
    // Processes die with the controller (PDEATHSIG); the twin's namespace and veth stay
    // until the sweep.
    let twin_ns = format!("fl-{id}-n2-twin");
    assert!(
        Path::new("/run/netns").join(&twin_ns).exists(),
        "{twin_ns} outlives a SIGKILLed controller"
    );
    let out = faultline().arg("cleanup").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !leftovers(&id, &pids).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(leftovers(&id, &pids), Vec::<String>::new());
    assert!(!state_file_exists(&id));
}

/// After the run in `dir`: `started` processes (`what`) were started, their pids are in
/// the log, and none of them, nor any namespace or link of the run, is left.
fn nothing_left(dir: &Path, started: usize, what: &str) {
    let (id, pids) = ids_from_log(dir);
    assert_eq!(pids.len(), started, "{what} started");
    assert_eq!(leftovers(&id, &pids), Vec::<String>::new());
}

/// The nemesis ops `f` of a run's history, in order.
fn nemesis_ops(dir: &Path, f: &str) -> Vec<Value> {
    std::fs::read_to_string(dir.join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|op| op["process"] == "nemesis" && op["f"] == f)
        .collect()
}

#[test]
fn two_twins_at_once_each_seen_by_its_own_split_and_nothing_is_left() {
    let Some((_cluster, store)) = root_cluster("twins-two") else {
        return;
    };
    // n2 sees n1's twin; n3 and n4 see n2's twin; n1 (both copies) sees n2's original.
    let nemesis = nemesis_file(
        &store,
        "name: two-twins\ntimeline:\n  - {at: 2s, start: twin, target: [n1], see: [n2]}\n  - {at: 3s, start: twin, target: [n2], see: [n3, n4]}\n  - {at: 22s, stop: twin}\n",
    );
    let child = start_run_on(&store, &nemesis, "25s", "4");
    let dir = wait_for(&store, |h| h.matches("\"start-twin\"").count() >= 2);
    let (id, _) = ids_from_log(&dir);
    let addr = n1_client_addr(&dir);
    let n2_addr = client_addr(&dir, "n2");
    let (t1_ns, t2_ns) = (
        Some(format!("fl-{id}-n1-twin")),
        Some(format!("fl-{id}-n2-twin")),
    );
    std::thread::sleep(Duration::from_secs(3));
    let (a0, b0) = (status(addr, t1_ns.clone()), status(n2_addr, t2_ns.clone()));
    std::thread::sleep(Duration::from_secs(5));
    let (a1, b1) = (status(addr, t1_ns), status(n2_addr, t2_ns));
    assert_eq!(
        (a1["node"].as_str(), b1["node"].as_str()),
        (Some("n1"), Some("n2"))
    );
    let (sent, recvd) = grew(&a0, &a1, "n2");
    assert!(
        sent || recvd,
        "n1's twin talks with n2, which sees it: {a0} → {a1}"
    );
    for peer in ["n3", "n4"] {
        assert_eq!(with(&a1, peer), (0, 0), "{peer} sees n1's original: {a1}");
    }
    let (s3, r3) = grew(&b0, &b1, "n3");
    let (s4, r4) = grew(&b0, &b1, "n4");
    assert!(
        s3 || r3 || s4 || r4,
        "n2's twin talks with n3 and n4: {b0} → {b1}"
    );
    assert_eq!(
        with(&b1, "n1").1,
        0,
        "no copy of n1 sees n2's twin, so nothing of n1 reaches it: {b1}"
    );

    let out = child.wait_with_output().unwrap();
    assert!(
        matches!(out.status.code(), Some(0..=2)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let starts = nemesis_ops(&dir, "start-twin");
    assert_eq!(starts.len(), 2);
    assert_eq!(starts[1]["value"]["twins"], serde_json::json!(["n1", "n2"]));
    assert_eq!(
        starts[1]["value"]["sees_twin"],
        serde_json::json!(["n3", "n4"])
    );
    assert_eq!(nemesis_ops(&dir, "stop-twin").len(), 1);
    for t in ["n1-twin", "n2-twin"] {
        let log = std::fs::read_to_string(dir.join("nodes").join(t).join("stderr.log")).unwrap();
        assert!(!log.is_empty(), "{t}'s stderr is kept");
    }
    nothing_left(&dir, 6, "four nodes and two twins");
}

#[test]
fn a_twins_scenario_writes_its_rounds_into_the_plan_and_journals_each() {
    let Some((_cluster, store)) = root_cluster("twins-scenario") else {
        return;
    };
    let nemesis = nemesis_file(
        &store,
        "name: scenario\ntimeline:\n  - {at: 2s, start: twins, twins: 1, rounds: 3, round: 3s}\n",
    );
    let child = start_run_on(&store, &nemesis, "14s", "4");
    let out = child.wait_with_output().unwrap();
    assert!(
        matches!(out.status.code(), Some(0..=2)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = wait_for(&store, |h| h.contains("\"stop-twin\""));
    // The plan holds every window: which node is twinned and each round's groups.
    let plan: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(dir.join("plan.yaml")).unwrap()).unwrap();
    let steps = plan["nemesis_schedule"].as_sequence().unwrap();
    let rounds: Vec<&serde_yaml::Value> = steps
        .iter()
        .filter(|s| s["do"].as_str() == Some("twins-round"))
        .collect();
    assert_eq!(rounds.len(), 3, "{steps:?}");
    assert_eq!(
        steps.last().unwrap()["do"].as_str(),
        Some("stop-twin"),
        "the scenario ends by stopping its twin"
    );
    let twin = rounds[0]["twins"][0].as_str().unwrap().to_string();
    // The history journals each window with the groups the plan drew (no leader step, so
    // the same), and the report's timeline shows them.
    let journaled = nemesis_ops(&dir, "twins-round");
    assert_eq!(journaled.len(), 3);
    for (i, (op, planned)) in journaled.iter().zip(&rounds).enumerate() {
        assert!(op["error"].is_null(), "{op}");
        assert_eq!(op["value"]["round"], serde_json::json!(i + 1));
        let planned: Vec<Vec<String>> = serde_yaml::from_value(planned["groups"].clone()).unwrap();
        let got: Vec<Vec<String>> = serde_json::from_value(op["value"]["groups"].clone()).unwrap();
        assert_eq!(got, planned, "round {}", i + 1);
        let copies: Vec<&String> = got.iter().flatten().collect();
        assert_eq!(
            copies.len(),
            5,
            "four nodes and a twin in every round: {got:?}"
        );
        assert!(
            got.iter()
                .all(|g| !(g.contains(&twin) && g.contains(&format!("{twin}-twin")))),
            "a node and its twin never share a group: {got:?}"
        );
    }
    assert_eq!(nemesis_ops(&dir, "stop-twin").len(), 1);
    let timeline = std::fs::read_to_string(dir.join("timeline.html")).unwrap();
    assert!(
        timeline.contains("twins-round"),
        "the timeline shows the rounds"
    );
    assert!(timeline.contains("round 3: "), "each with its groups");
    nothing_left(&dir, 5, "four nodes and a twin");
}

#[test]
fn bad_twins_scenarios_are_refused_naming_file_field_and_rule() {
    let store = crate::run::store("twins-bad");
    std::fs::create_dir_all(&store).unwrap();
    let refused = |text: &str| -> String {
        let path = store.join("bad-twins.yaml");
        std::fs::write(&path, text).unwrap();
        // Local hosts named explicitly: the twins rules are checked whether or not this
        // user could make namespaces.
        let out = faultline()
            .args([
                "run", "--target", "raftkv", "--nodes", "4", "--hosts", "local",
            ])
            .arg("--nemesis")
            .arg(&path)
            .arg("--store")
            .arg(&store)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(3),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = refused(
        "name: t\ntimeline:\n  - {at: 1s, start: twins, twins: 0, rounds: 0, round: 50ms, target: [n1]}\n  - {at: 2s, start: kill, target: one, rounds: 3}\n",
    );
    for want in [
        "bad-twins.yaml:3:35: timeline[0].twins: needs the number of twinned nodes, at least 1",
        "timeline[0].rounds: needs a number of rounds between 1 and 10000",
        "timeline[0].round: needs a round length between 200ms and 10m",
        "timeline[0].target: a twins scenario draws its twinned nodes from the seed",
        "bad-twins.yaml:4:48: timeline[1].rounds: only a twins scenario takes `rounds`",
    ] {
        assert!(err.contains(want), "{want} missing from {err}");
    }
    let err =
        refused("name: t\ntimeline:\n  - {at: 1s, start: twins, twins: 5, rounds: 2, round: 1s}\n");
    assert!(
        err.contains("bad-twins.yaml")
            && err.contains("timeline[0].twins: 5 twins, but this run has 4 node(s)"),
        "{err}"
    );
    let err = refused(
        "name: t\ninterval: 1s\nduration: 1s\nfaults:\n  - {fault: twins, twins: 1, rounds: 2, round: 1s}\n",
    );
    assert!(
        err.contains("bad-twins.yaml")
            && err.contains("faults[0].fault: a twins scenario sets its own windows"),
        "{err}"
    );
    let err = refused(
        "name: t\ntimeline:\n  - {at: 1s, start: twins, twins: 1, rounds: 4, round: 1s}\n  - {at: 3s, start: twins, twins: 1, rounds: 2, round: 1s}\n",
    );
    assert!(
        err.contains("bad-twins.yaml")
            && err.contains("timeline[1].at: this twins scenario starts at 3 s, before the one of timeline[0] ends (5 s)"),
        "{err}"
    );
    std::fs::remove_dir_all(&store).ok();
}

#[test]
fn an_interrupt_during_a_two_twin_scenario_leaves_nothing() {
    let Some((_cluster, store)) = root_cluster("twins-sigint") else {
        return;
    };
    let nemesis = nemesis_file(
        &store,
        "name: scenario\ntimeline:\n  - {at: 1s, start: twins, twins: 2, rounds: 20, round: 2s}\n",
    );
    let child = start_run_on(&store, &nemesis, "60s", "4");
    let dir = wait_for(&store, |h| h.matches("\"twins-round\"").count() >= 2);
    let (id, pids) = ids_from_log(&dir);
    assert_eq!(pids.len(), 6, "four nodes and two twins started");
    assert!(
        !leftovers(&id, &pids).is_empty(),
        "the run and its twins should be up"
    );
    interrupt_and_expect_clean(child, &id, &pids);
}
