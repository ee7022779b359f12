//! The run loop on recording fake hosts (no root): lazykv nodes on loopback, host commands
//! recorded. What the runner must do on every path: heal what the schedule left in force,
//! stop the schedule between steps, and after an interrupt heal without restarting.

use super::*;
use crate::nemesis::tests::{isolate_n1, names, proc_state, Lab};
use crate::spec::schedule::{Action, Step, Targets};

/// Run the lab's plan through the run loop, uninterrupted.
async fn run_to_the_end(lab: &Lab) -> RunSummary {
    let (_stop_tx, stop) = watch::channel(false);
    run_cluster(
        lab.plan.clone(),
        lab.cluster.clone(),
        None,
        lab.run_dir.path(),
        stop,
    )
    .await
    .expect("run")
}

fn step(at_ms: u64, action: Action) -> Step {
    Step {
        at: Duration::from_millis(at_ms),
        action,
    }
}

fn lab(time_limit_ms: u64, steps: Vec<Step>) -> Lab {
    Lab::with_plan(3, false, |plan| {
        plan.time_limit = Duration::from_millis(time_limit_ms);
        plan.concurrency = 2;
        plan.workload.op_timeout = Duration::from_millis(500);
        plan.nemesis_schedule = steps;
    })
}

/// A 1.5 s run that isolates n1 at 200 ms.
fn partition_lab() -> Lab {
    lab(
        1500,
        vec![step(
            200,
            Action::StartPartition {
                grudge: isolate_n1(),
                one_way: false,
            },
        )],
    )
}

#[tokio::test]
async fn a_run_heals_what_its_schedule_left_in_force_before_the_final_reads() {
    let lab = partition_lab();
    let summary = run_to_the_end(&lab).await;
    assert!(!summary.interrupted);
    assert!(summary.ok > 0, "{summary:?}");
    let nft = lab.nft_calls();
    let cuts = nft.iter().filter(|(_, s)| s.contains("drop")).count();
    let heals = nft
        .iter()
        .filter(|(_, s)| {
            s.trim_end()
                .ends_with("delete table inet faultline_partition")
        })
        .count();
    assert_eq!((cuts, heals), (3, 3), "{nft:?}");
    let history = lab.history();
    let heal_at = history.find("stop-partition").expect("heal journaled");
    let final_read = history.rfind("\"read\"").expect("final reads");
    assert!(heal_at < final_read, "healed before the final reads");
    let _ = lab.cluster.stop_all().await;
}

#[tokio::test]
async fn an_interrupted_run_resumes_paused_nodes_but_restarts_none() {
    let lab = lab(
        20_000,
        vec![
            step(
                200,
                Action::Kill {
                    targets: Targets::Nodes(names(&["n2"])),
                },
            ),
            step(
                300,
                Action::Pause {
                    targets: Targets::Nodes(names(&["n1"])),
                },
            ),
            step(15_000, Action::Restart),
        ],
    );
    let (stop_tx, stop) = watch::channel(false);
    let run = tokio::spawn({
        let plan = lab.plan.clone();
        let cluster = lab.cluster.clone();
        let dir = lab.run_dir.path().to_path_buf();
        async move { run_cluster(plan, cluster, None, &dir, stop).await }
    });
    // Wait until n1 is paused, then interrupt.
    let began = Instant::now();
    let mut pid = None;
    while began.elapsed() < Duration::from_secs(15) {
        pid = lab.cluster.pid("n1").await;
        if pid.and_then(proc_state) == Some('T') {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = pid.expect("n1 runs");
    assert_eq!(proc_state(pid), Some('T'), "n1 was paused");
    stop_tx.send(true).unwrap();
    let summary = run
        .await
        .unwrap()
        .expect("an interrupted run still ends in order");
    assert!(summary.interrupted);
    assert!(
        began.elapsed() < Duration::from_secs(14),
        "the schedule was not waited out"
    );
    assert_ne!(proc_state(pid), Some('T'), "n1 resumed");
    assert!(
        !lab.cluster.running("n2").await,
        "no restart after an interrupt"
    );
    let history = lab.history();
    assert!(history.contains("\"resume\""));
    assert!(!history.contains("\"start\""), "{history}");
    let _ = lab.cluster.stop_all().await;
}

#[tokio::test]
async fn an_abandoned_install_kills_its_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let lab = Lab::with_plan(1, false, |plan| {
        plan.target.spec.install = Some(crate::spec::target::Install {
            // A wrapper that does not exec, with a grandchild: as cargo with rustc.
            command: vec![
                "sh".into(),
                "-c".into(),
                format!("sleep 300 & echo $$ $! > {}; wait", pids.display()),
            ],
            workdir: None,
            always: true,
        });
    });
    let abandoned = tokio::time::timeout(Duration::from_millis(500), install(&lab.plan)).await;
    assert!(
        abandoned.is_err(),
        "the install should still have been running"
    );
    let text = std::fs::read_to_string(&pids).expect("the install wrote its pids");
    let gone = |pid: &str| {
        let began = Instant::now();
        while began.elapsed() < Duration::from_secs(5) {
            match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Err(_) => return true,
                // A zombie waiting for its reaper is gone as far as work goes.
                Ok(s)
                    if s.rsplit_once(')')
                        .is_some_and(|(_, r)| r.trim_start().starts_with('Z')) =>
                {
                    return true
                }
                Ok(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        false
    };
    for pid in text.split_whitespace() {
        assert!(gone(pid), "process {pid} of the install outlived it");
    }
}

#[test]
fn a_run_whose_faults_all_missed_cannot_pass() {
    use crate::nemesis::{FaultTally, Missed};
    assert_eq!(
        page::faults_did_not_land(&FaultTally::default()),
        None,
        "none planned"
    );
    let some = FaultTally {
        planned: 3,
        landed: 1,
        ..FaultTally::default()
    };
    assert_eq!(page::faults_did_not_land(&some), None);
    let none = FaultTally {
        planned: 2,
        landed: 0,
        missed: vec![Missed {
            f: "start-partition".into(),
            at_s: 5,
            why: "no leader".into(),
        }],
        ..FaultTally::default()
    };
    let why = page::faults_did_not_land(&none).expect("flagged");
    assert!(
        why.contains("none hit a node") && why.contains("no leader"),
        "{why}"
    );
}

/// A stdio adapter that answers every op `fail` at once, as one that meets "connection
/// refused" and does not wait.
fn failing_adapter(dir: &Path) -> PathBuf {
    let path = dir.join("refuse.py");
    std::fs::write(
        &path,
        "import json, sys\nfor line in sys.stdin:\n    req = json.loads(line)\n    print(json.dumps({\"id\": req[\"id\"], \"type\": \"fail\", \"error\": \"connection refused\"}), flush=True)\n",
    )
    .unwrap();
    path
}

async fn run_against_failing_adapter(backoff: crate::spec::workload::BackoffSpec) -> RunSummary {
    let dir = tempfile::tempdir().unwrap();
    let adapter = failing_adapter(dir.path());
    let lab = Lab::with_plan(1, false, |plan| {
        plan.time_limit = Duration::from_millis(1500);
        plan.concurrency = 2;
        plan.workload.final_reads = false;
        plan.workload.backoff = backoff;
        plan.target.spec.ready.check = crate::spec::target::ReadyCheck::Tcp;
        plan.target.spec.client.protocol = crate::spec::target::Protocol::Stdio;
        plan.target.spec.client.command = vec!["python3".into(), adapter.display().to_string()];
    });
    let summary = run_to_the_end(&lab).await;
    let _ = lab.cluster.stop_all().await;
    summary
}

#[tokio::test]
async fn workers_pause_after_failures_in_a_row_instead_of_spinning() {
    let spec = crate::spec::workload::BackoffSpec::default();
    let paused = run_against_failing_adapter(spec.clone()).await;
    assert_eq!(paused.ok, 0, "{paused:?}");
    assert!(paused.backoffs > 0, "the back-off engaged: {paused:?}");
    // Pauses of at least half of 10, 20, 40 … 1000 ms: within 1.5 s a worker takes at most 8
    // of them, so it issues at most `after` + 8 + 1 ops.
    let bound = 2 * (u64::from(spec.after) + 9);
    assert!(paused.ops <= bound, "{} ops > {bound}", paused.ops);
    // The same adapter without a back-off: what the bound above is protecting against.
    let spinning = run_against_failing_adapter(crate::spec::workload::BackoffSpec {
        max: Duration::ZERO,
        ..spec
    })
    .await;
    assert_eq!(spinning.backoffs, 0);
    assert!(spinning.ops > 10 * bound, "{spinning:?}");
}

#[tokio::test]
async fn a_run_whose_ops_succeed_never_pauses() {
    let lab = lab(800, vec![]);
    let summary = run_to_the_end(&lab).await;
    assert!(summary.ok > 0, "{summary:?}");
    assert_eq!(summary.info, 0, "{summary:?}");
    // Failed comparisons are answers from a serving target, not failures to pause on.
    assert!(summary.fail > 0, "{summary:?}");
    let history = lab.history();
    let fails = history.lines().filter(|l| l.contains("\"type\":\"fail\""));
    assert!(
        fails
            .clone()
            .all(|l| l.contains(crate::history::COMPARE_FAILED)),
        "{:?}",
        fails.collect::<Vec<_>>()
    );
    assert_eq!(summary.backoffs, 0);
    let _ = lab.cluster.stop_all().await;
}

#[tokio::test]
async fn final_reads_read_every_key_concurrently_reusing_one_client_per_reader() {
    let lab = Lab::with_plan(3, false, |plan| {
        plan.concurrency = 4;
        plan.workload.op_timeout = Duration::from_millis(500);
        plan.workload.keys = crate::spec::workload::KeySpec {
            in_flight: 20,
            threads_per_key: None,
            ops_per_key: Some(2),
            distribution: crate::spec::workload::KeyDistribution::Uniform,
        };
    });
    lab.cluster.start_all().await.expect("cluster");
    let path = lab.run_dir.path().join("final.jsonl");
    let journal = Arc::new(Journal::create(&path, std::time::Instant::now()).unwrap());
    let ctx = Arc::new(Ctx::new(lab.plan.clone(), lab.cluster.clone(), journal));
    let keys = {
        let mut gen = ctx.gen.lock().unwrap();
        for i in 0..200 {
            gen.next_op(i % 4);
        }
        gen.keys_used().len()
    };
    assert!(keys >= 80, "{keys} keys");
    let (_stop_tx, mut stop) = watch::channel(false);
    let reads = final_phase(&ctx, &mut stop).await.expect("final reads");
    assert_eq!(
        reads,
        FinalReads {
            keys,
            read: keys,
            unread: vec![]
        }
    );
    assert_eq!(
        ctx.clients.load(Ordering::Relaxed),
        4,
        "one client per reader"
    );
    let history = std::fs::read_to_string(&path).unwrap();
    let (mut open, mut most_open) = (0i64, 0i64);
    let mut processes = std::collections::BTreeSet::new();
    for line in history.lines() {
        let op: Value = serde_json::from_str(line).unwrap();
        processes.insert(op["process"].as_u64().unwrap());
        if op["type"] == "invoke" {
            open += 1;
            most_open = most_open.max(open);
        } else {
            open -= 1;
        }
    }
    assert!(
        (2..=4).contains(&most_open),
        "{most_open} reads open at once"
    );
    assert_eq!(processes.len(), 4, "{processes:?}");
    let _ = lab.cluster.stop_all().await;
}

#[tokio::test]
async fn a_finished_run_writes_its_liveness_per_fault_window_into_results_json() {
    let store = tempfile::tempdir().expect("store");
    let store_path = store.path().to_path_buf();
    let lab = Lab::with_plan(3, false, |plan| {
        plan.time_limit = Duration::from_millis(1500);
        plan.concurrency = 2;
        plan.workload.op_timeout = Duration::from_millis(500);
        plan.store = store_path;
        plan.nemesis_schedule = vec![
            step(
                200,
                Action::Pause {
                    targets: Targets::Nodes(names(&["n1"])),
                },
            ),
            step(700, Action::Resume),
        ];
    });
    let summary = run_to_the_end(&lab).await;
    let _ = lab.cluster.stop_all().await;
    let (_, liveness) =
        page::check_and_report(&lab.plan, lab.run_dir.path(), &summary).expect("checked");
    let l = liveness.expect("judged: the run was not interrupted");
    assert!(l.ok, "{l:?}");
    let text = std::fs::read_to_string(lab.run_dir.path().join("results.json")).expect("results");
    let results: serde_json::Value = serde_json::from_str(&text).expect("json");
    let live = &results["liveness"];
    assert_eq!(live["ok"], true, "{live}");
    assert_eq!(live["bound_s"], 10.0);
    let windows = live["windows"].as_array().expect("windows");
    assert_eq!(windows.len(), 1, "{live}");
    assert_eq!(windows[0]["f"], "pause");
    assert!(windows[0]["end_s"].as_f64() > windows[0]["start_s"].as_f64());
    assert!(windows[0]["availability"].is_number(), "{live}");
    // lazykv answers at once after a resume: the first ok after the last heal is quick.
    let recovery = live["final_recovery_s"].as_f64().expect("measured");
    assert!(recovery < 10.0, "{live}");
    let page = std::fs::read_to_string(lab.run_dir.path().join("index.html")).expect("page");
    assert!(page.contains("id=\"liveness\""));
}

#[test]
fn a_valid_run_that_did_not_recover_exits_4_but_safety_codes_win() {
    let outcome = |verdict, liveness_failed: Option<&str>| RunOutcome {
        run_dir: PathBuf::from("r"),
        verdict: Some(verdict),
        interrupted: false,
        liveness_failed: liveness_failed.map(String::from),
    };
    assert_eq!(outcome(Verdict::Valid, None).exit_code(), 0);
    assert_eq!(outcome(Verdict::Valid, Some("stuck")).exit_code(), 4);
    assert_eq!(outcome(Verdict::Invalid, Some("stuck")).exit_code(), 1);
    assert_eq!(outcome(Verdict::Unknown, Some("stuck")).exit_code(), 2);
}

/// The most workers that had an op open on one key at once in a history: an invocation
/// opens one for its key, the same process's next completion closes it (an `info` too —
/// the worker moves on under a new process, as the runner's workers do).
fn most_open_on_one_key(history: &str) -> (usize, usize) {
    let mut open_by = std::collections::BTreeMap::<u64, String>::new();
    let mut on_key = std::collections::BTreeMap::<String, usize>::new();
    let mut most = 0;
    for line in history.lines() {
        let op: Value = serde_json::from_str(line).unwrap();
        let (Some(process), Some(key)) = (op["process"].as_u64(), op["key"].as_str()) else {
            continue;
        };
        if op["type"] == "invoke" {
            assert!(open_by.insert(process, key.to_string()).is_none());
            let n = on_key.entry(key.to_string()).or_default();
            *n += 1;
            most = most.max(*n);
        } else {
            let key = open_by
                .remove(&process)
                .expect("a completion of an open op");
            *on_key.get_mut(&key).unwrap() -= 1;
        }
    }
    (most, on_key.len())
}

#[tokio::test]
async fn two_hundred_workers_put_at_most_threads_per_key_ops_on_one_key() {
    let lab = Lab::with_plan(3, false, |plan| {
        plan.time_limit = Duration::from_millis(1000);
        plan.concurrency = 200;
        plan.workload.op_timeout = Duration::from_millis(500);
        plan.workload.final_reads = false;
        plan.workload.keys = crate::spec::workload::KeySpec {
            in_flight: 1,
            threads_per_key: Some(4),
            ops_per_key: Some(20),
            distribution: crate::spec::workload::KeyDistribution::Uniform,
        };
    });
    let summary = run_to_the_end(&lab).await;
    let _ = lab.cluster.stop_all().await;
    assert!(summary.ok > 200, "{summary:?}");
    let (most, keys) = most_open_on_one_key(&lab.history());
    assert!(most <= 4, "{most} workers had an op open on one key");
    // 50 groups of 4 workers, each on a key of its own, each key retired after 20 ops.
    assert!(most >= 2, "workers of a group do share its key: {most}");
    assert!(
        keys as u64 >= summary.ops / 20,
        "{keys} keys for {} ops",
        summary.ops
    );
}

/// Two runs in one process, each under its own run log on a multi-thread runtime: every
/// line — from the run's own future, its nemesis task, its node starts — lands in its own
/// `faultline.log`, none in the other's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_runs_in_one_process_keep_their_logs_apart() {
    let partitioned = Arc::new(partition_lab());
    let paused = Arc::new(lab(
        1500,
        vec![step(
            200,
            Action::Pause {
                targets: Targets::Nodes(names(&["n2"])),
            },
        )],
    ));
    let path = |l: &Lab| l.run_dir.path().join("faultline.log");
    let run = |l: &Arc<Lab>| {
        let log = RunLog::create(&path(l), true).expect("log");
        let l = l.clone();
        tokio::spawn(
            async move {
                tracing::info!("run id {}", l.reg.run_id());
                run_to_the_end(&l).await
            }
            .with_subscriber(log.dispatch()),
        )
    };
    let (a, b) = (run(&partitioned), run(&paused));
    a.await.expect("run a");
    b.await.expect("run b");
    let (la, lb) = (
        std::fs::read_to_string(path(&partitioned)).unwrap(),
        std::fs::read_to_string(path(&paused)).unwrap(),
    );
    // The run's own future, its nemesis task and its cluster each left their lines.
    let (ida, pida) = own_lines(&partitioned).await;
    let (idb, pidb) = own_lines(&paused).await;
    for line in [&ida, &pida, "nemesis: partition", "main phase over"] {
        assert!(la.contains(line), "{line:?} missing:\n{la}");
    }
    for line in [&idb, &pidb, "nemesis: paused", "main phase over"] {
        assert!(lb.contains(line), "{line:?} missing:\n{lb}");
    }
    for line in [&idb, &pidb, "nemesis: paused"] {
        assert!(!la.contains(line), "{line:?} in the other run's log:\n{la}");
    }
    for line in [&ida, &pida, "nemesis: partition"] {
        assert!(!lb.contains(line), "{line:?} in the other run's log:\n{lb}");
    }
    let _ = partitioned.cluster.stop_all().await;
    let _ = paused.cluster.stop_all().await;
}

/// Lines only lab `l`'s run log may hold: its run id and its n1's start.
async fn own_lines(l: &Lab) -> (String, String) {
    let pid = l.cluster.pid("n1").await.expect("n1 runs");
    (
        format!("run id {}", l.reg.run_id()),
        format!("started n1 (pid {pid})"),
    )
}

#[test]
fn final_reads_retry_a_given_up_key_only_after_another_key_was_read() {
    let q = FinalQueue::new(3);
    assert_eq!((q.take(), q.take()), (Some(0), Some(1)));
    // Key 0 had its attempts with nothing served yet: not taken again until a read lands.
    q.give_up(0);
    assert_eq!(q.take(), Some(2));
    assert_eq!(q.take(), None, "nothing read since key 0 was given up");
    q.read();
    assert_eq!(q.take(), Some(0), "the cluster serves again");
    // Given up again with no read since: a cluster that stopped serving ends the phase.
    q.give_up(0);
    q.give_up(1);
    assert_eq!(q.take(), None);
    q.read();
    assert_eq!((q.take(), q.take(), q.take()), (Some(0), Some(1), None));
}
