//! The nemesis on a recording fake host: no root, real node processes on loopback, host
//! commands (`nft`, `iptables`) recorded and made to fail or take time on demand.

use super::*;
use crate::hosts::recording::RecordingHosts;
use crate::hosts::{Hosts, Registry};
use crate::spec::grudge::Grudge;
use crate::spec::{HostsChoice, Overrides, Plan, SpecRoots};
use std::path::PathBuf;

/// A cluster of lazykv nodes (tests/fixtures) on recording hosts, torn down when dropped.
pub(crate) struct Lab {
    pub plan: Arc<Plan>,
    pub nemesis: Arc<Nemesis>,
    pub cluster: Arc<Cluster>,
    pub hosts: Arc<Hosts>,
    pub reg: Registry,
    pub run_dir: tempfile::TempDir,
}

impl Lab {
    pub(crate) fn new(nodes: u32, clocks: bool) -> Lab {
        Lab::with_plan(nodes, clocks, |_| {})
    }

    /// A lab whose plan `tweak` adjusts first (a schedule, a time limit).
    pub(crate) fn with_plan(nodes: u32, clocks: bool, tweak: impl FnOnce(&mut Plan)) -> Lab {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let roots = SpecRoots {
            dirs: vec![root.clone()],
        };
        let o = Overrides {
            target: Some(
                root.join("tests/fixtures/lazykv/target.yaml")
                    .display()
                    .to_string(),
            ),
            nodes: Some(nodes),
            nemesis: Some("none".into()),
            ..Default::default()
        };
        let mut plan = Plan::resolve(
            &roots,
            &o,
            HostsChoice::Local {
                subnet: "10.213.0.0/24".into(),
            },
        )
        .expect("plan");
        tweak(&mut plan);
        let plan = Arc::new(plan);
        let run_id = format!("t{:05x}", rand::random::<u32>() & 0xf_ffff);
        let reg = Registry::new(&run_id).expect("registry");
        let hosts = Arc::new(Hosts::Recording(
            RecordingHosts::create(&run_id, &plan.nodes).expect("hosts"),
        ));
        let run_dir = tempfile::tempdir().expect("run dir");
        let clocks = clocks.then(|| {
            Arc::new(
                Clocks::new(&crate::target::data_root(&run_id).join("clocks")).expect("clocks"),
            )
        });
        let cluster = Arc::new(
            Cluster::new(
                plan.clone(),
                hosts.clone(),
                reg.clone(),
                run_dir.path(),
                clocks.clone(),
            )
            .expect("cluster"),
        );
        let journal = Arc::new(
            Journal::create(
                &run_dir.path().join("history.jsonl"),
                std::time::Instant::now(),
            )
            .expect("journal"),
        );
        let nemesis = Arc::new(Nemesis::new(cluster.clone(), journal, clocks.clone()));
        Lab {
            plan,
            nemesis,
            cluster,
            hosts,
            reg,
            run_dir,
        }
    }

    pub(crate) fn fake(&self) -> &RecordingHosts {
        self.hosts.recording().expect("recording hosts")
    }

    pub(crate) fn nft_calls(&self) -> Vec<(String, String)> {
        self.fake()
            .calls()
            .into_iter()
            .filter(|c| c.argv[0] == "nft")
            .map(|c| (c.node, c.stdin))
            .collect()
    }

    pub(crate) fn history(&self) -> String {
        std::fs::read_to_string(self.run_dir.path().join("history.jsonl")).unwrap_or_default()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let problems = self.reg.teardown();
        assert!(problems.is_empty(), "{problems:?}");
    }
}

/// Run `steps` from now until `limit`, never cancelled; returns when they started.
async fn run_uncancelled(lab: &Lab, steps: &[Step], limit: Duration) -> Instant {
    let (_cancel, cancelled) = watch::channel(false);
    let start = Instant::now();
    lab.nemesis
        .run(steps, start, start + limit, cancelled)
        .await
        .expect("the schedule ran");
    start
}

/// Run `steps` from `start`, cancel the schedule `after` that, and wait for the run to end.
async fn run_then_cancel(lab: &Lab, steps: Vec<Step>, start: Instant, after: Duration) {
    let (cancel, cancelled) = watch::channel(false);
    let task = {
        let nemesis = lab.nemesis.clone();
        tokio::spawn(async move {
            nemesis
                .run(&steps, start, start + Duration::from_secs(60), cancelled)
                .await
        })
    };
    tokio::time::sleep(after).await;
    cancel.send(true).expect("the schedule listens");
    task.await.expect("no panic").expect("the schedule ran");
}

pub(crate) fn names(nodes: &[&str]) -> Vec<String> {
    nodes.iter().map(|s| s.to_string()).collect()
}

/// n1 cut from n2 and n3.
pub(crate) fn isolate_n1() -> Grudge {
    let mut d: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    d.insert("n1".into(), ["n2", "n3"].map(String::from).into());
    d.insert("n2".into(), ["n1"].map(String::from).into());
    d.insert("n3".into(), ["n1"].map(String::from).into());
    Grudge::Drops(d)
}

fn start_partition() -> Action {
    Action::StartPartition {
        grudge: isolate_n1(),
        one_way: false,
    }
}

/// State letter of a process (/proc/PID/stat field 3): `T` when stopped.
pub(crate) fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

#[tokio::test]
async fn a_partition_cut_half_way_stays_in_force_and_heal_all_heals_it() {
    let lab = Lab::new(3, false);
    lab.fake().fail("n2", "drop", 1);
    let err = lab.nemesis.apply(&start_partition()).await.unwrap_err();
    assert!(format!("{err:#}").contains("injected failure"), "{err:#}");
    // n3's rules were never loaded, but its intent was recorded before anything acted.
    assert_eq!(
        lab.nemesis.in_force().await.partitioned,
        ["n1", "n2", "n3"].map(String::from).into()
    );
    assert!(
        lab.history().contains("\"error\""),
        "a failed start is journaled"
    );
    lab.nemesis.heal_all(HealMode::Full).await.unwrap();
    assert!(lab.nemesis.is_clear().await);
    let deletes: BTreeSet<String> = lab
        .nft_calls()
        .into_iter()
        .filter(|(_, script)| {
            script
                .trim_end()
                .ends_with("delete table inet faultline_partition")
        })
        .map(|(node, _)| node)
        .collect();
    assert_eq!(deletes, ["n1", "n2", "n3"].map(String::from).into());
}

#[tokio::test]
async fn a_heal_that_fails_keeps_the_fault_in_force_until_a_retry_succeeds() {
    let lab = Lab::new(3, false);
    lab.nemesis.apply(&start_partition()).await.unwrap();
    lab.fake().fail("n1", "delete table", 1);
    assert!(lab.nemesis.heal_all(HealMode::Full).await.is_err());
    assert_eq!(
        lab.nemesis.in_force().await.partitioned,
        ["n1"].map(String::from).into(),
        "only what failed to heal stays"
    );
    assert!(lab.nemesis.describe().await.contains("partitioned n1"));
    lab.nemesis.heal_all(HealMode::Full).await.unwrap();
    assert!(lab.nemesis.is_clear().await);
}

#[tokio::test]
async fn a_second_partition_releases_nodes_the_new_grudge_spares() {
    let lab = Lab::new(3, false);
    lab.nemesis.apply(&start_partition()).await.unwrap();
    let mut d: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    d.insert("n2".into(), ["n3"].map(String::from).into());
    d.insert("n3".into(), ["n2"].map(String::from).into());
    lab.nemesis
        .apply(&Action::StartPartition {
            grudge: Grudge::Drops(d),
            one_way: false,
        })
        .await
        .unwrap();
    assert_eq!(
        lab.nemesis.in_force().await.partitioned,
        ["n2", "n3"].map(String::from).into()
    );
    // n1 got an empty table: its old rules are gone.
    let last_n1 = lab
        .nft_calls()
        .into_iter()
        .rfind(|(n, _)| n == "n1")
        .expect("n1 touched");
    assert!(!last_n1.1.contains("drop"), "{}", last_n1.1);
}

#[tokio::test]
async fn the_schedule_is_cancelled_between_steps_never_mid_step() {
    let lab = Lab::new(3, false);
    lab.fake().set_latency(Duration::from_millis(150));
    let steps = vec![
        Step {
            at: Duration::ZERO,
            action: start_partition(),
        },
        Step {
            at: Duration::from_millis(2000),
            action: Action::StopPartition,
        },
        Step {
            at: Duration::from_millis(2500),
            action: start_partition(),
        },
    ];
    let start = Instant::now();
    run_then_cancel(&lab, steps, start, Duration::from_millis(200)).await;
    // The cancel came while the first step was loading the second node's rules.
    let elapsed = start.elapsed();
    assert!(
        elapsed < Duration::from_millis(2000),
        "{elapsed:?}: a later step ran"
    );
    // The step under way finished: all three nodes got their rules, nothing after it ran.
    let calls = lab.nft_calls();
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert!(calls.iter().all(|(_, s)| s.contains("drop")));
    assert_eq!(lab.nemesis.in_force().await.partitioned.len(), 3);
    lab.nemesis.heal_all(HealMode::Full).await.unwrap();
    assert!(lab.nemesis.is_clear().await);
}

#[tokio::test]
async fn an_aborted_step_leaves_its_intent_for_heal_all() {
    let lab = Lab::new(3, false);
    lab.fake().set_latency(Duration::from_millis(300));
    let task = {
        let nemesis = lab.nemesis.clone();
        tokio::spawn(async move { nemesis.apply(&start_partition()).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    task.abort();
    let _ = task.await;
    assert_eq!(lab.nemesis.in_force().await.partitioned.len(), 3);
    lab.fake().set_latency(Duration::ZERO);
    lab.nemesis.heal_all(HealMode::Full).await.unwrap();
    assert!(lab.nemesis.is_clear().await);
}

#[tokio::test]
async fn delay_without_a_namespace_is_refused_before_anything_is_recorded() {
    let lab = Lab::new(3, false);
    let err = lab
        .nemesis
        .apply(&Action::StartDelay {
            targets: Targets::Nodes(names(&["n1"])),
            latency_ms: 50,
            jitter_ms: 0,
        })
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("network namespace"), "{err:#}");
    assert!(lab.nemesis.is_clear().await);
    lab.nemesis.heal_all(HealMode::Full).await.unwrap();
    // The inverse flushes a mangle table: never outside a namespace of our own.
    assert!(lab.fake().calls().is_empty(), "{:?}", lab.fake().calls());
}

#[tokio::test]
async fn pause_and_kill_are_healed_by_kind_and_teardown_leaves_killed_nodes_down() {
    let lab = Lab::new(3, false);
    lab.cluster.start_all().await.expect("lazykv starts");
    let n1 = lab.cluster.pid("n1").await.expect("n1 runs");
    lab.nemesis
        .apply(&Action::Pause {
            targets: Targets::Nodes(names(&["n1"])),
        })
        .await
        .unwrap();
    lab.nemesis
        .apply(&Action::Kill {
            targets: Targets::Nodes(names(&["n2"])),
        })
        .await
        .unwrap();
    assert_eq!(proc_state(n1), Some('T'));
    assert!(!lab.cluster.running("n2").await);

    lab.nemesis.heal_all(HealMode::Teardown).await.unwrap();
    assert_ne!(proc_state(n1), Some('T'), "n1 resumed");
    assert!(
        !lab.cluster.running("n2").await,
        "teardown does not restart"
    );
    assert_eq!(
        lab.nemesis.in_force().await.killed,
        ["n2"].map(String::from).into()
    );

    lab.nemesis.heal_all(HealMode::Full).await.unwrap();
    assert!(lab.cluster.running("n2").await, "a full heal restarts");
    assert!(lab.nemesis.is_clear().await);
    let problems = lab.cluster.stop_all().await;
    assert!(problems.is_empty(), "{problems:?}");
}

#[tokio::test]
async fn killing_a_paused_node_leaves_nothing_to_resume() {
    let lab = Lab::new(3, false);
    lab.cluster.start_all().await.expect("lazykv starts");
    let one = Targets::Nodes(names(&["n1"]));
    lab.nemesis
        .apply(&Action::Pause {
            targets: one.clone(),
        })
        .await
        .unwrap();
    lab.nemesis
        .apply(&Action::Kill { targets: one })
        .await
        .unwrap();
    assert!(lab.nemesis.in_force().await.paused.is_empty());
    lab.nemesis.heal_all(HealMode::Full).await.unwrap();
    assert!(lab.cluster.running("n1").await);
    let _ = lab.cluster.stop_all().await;
}

fn offset_file(lab: &Lab, node: &str) -> String {
    let run_id = lab.reg.run_id();
    let f = crate::target::data_root(&run_id)
        .join("clocks")
        .join(format!("{node}.faketime"));
    std::fs::read_to_string(&f).unwrap_or_default()
}

fn libfaketime_missing() -> bool {
    if crate::hosts::clock::find_libfaketime().is_err() {
        eprintln!("skipped: libfaketime is not installed");
        return true;
    }
    false
}

#[tokio::test]
async fn a_strobe_stops_with_reset_and_when_its_nemesis_is_dropped() {
    if libfaketime_missing() {
        return;
    }
    let lab = Lab::new(3, true);
    let strobe = Action::StrobeClock {
        targets: Targets::Nodes(names(&["n1"])),
        offset_ms: 5000,
        period_ms: 10,
    };
    lab.nemesis.apply(&strobe).await.unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    lab.nemesis.apply(&Action::ResetClock).await.unwrap();
    assert_eq!(offset_file(&lab, "n1").trim(), "+0.000");
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(offset_file(&lab, "n1").trim(), "+0.000", "the strobe ended");
    assert!(lab.nemesis.is_clear().await);

    // Dropping the in-force set (a panic unwinding the run) stops the task too.
    lab.nemesis.apply(&strobe).await.unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let dropped = std::mem::take(&mut lab.nemesis.in_force().await.clock);
    drop(dropped);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let settled = offset_file(&lab, "n1");
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(offset_file(&lab, "n1"), settled, "no write after the drop");
}

#[tokio::test]
async fn heal_all_resets_clocks_even_when_the_firewall_fails() {
    if libfaketime_missing() {
        return;
    }
    let lab = Lab::new(3, true);
    lab.nemesis.apply(&start_partition()).await.unwrap();
    lab.nemesis
        .apply(&Action::BumpClock {
            targets: Targets::Nodes(names(&["n2"])),
            offsets_ms: BTreeMap::new(),
            offset_ms: -3000,
        })
        .await
        .unwrap();
    assert_eq!(offset_file(&lab, "n2").trim(), "-3.000");
    lab.fake().fail("n1", "delete table", 1);
    assert!(lab.nemesis.heal_all(HealMode::Full).await.is_err());
    assert_eq!(offset_file(&lab, "n2").trim(), "+0.000");
    assert!(lab.nemesis.in_force().await.clock.is_empty());
}

#[tokio::test]
async fn the_tally_counts_planned_starts_and_those_that_hit_nobody() {
    let lab = Lab::new(3, false);
    let steps = vec![
        Step {
            at: Duration::ZERO,
            action: start_partition(),
        },
        // Nothing runs in this lab: a pause finds no process to stop.
        Step {
            at: Duration::from_millis(10),
            action: Action::Pause {
                targets: Targets::Nodes(names(&["n2"])),
            },
        },
        Step {
            at: Duration::from_millis(20),
            action: Action::StopPartition,
        },
    ];
    run_uncancelled(&lab, &steps, Duration::from_secs(5)).await;
    let t = lab.nemesis.tally();
    assert_eq!((t.planned, t.landed), (2, 1), "{t:?}");
    assert_eq!(t.missed[0].f, "pause");
    assert!(t.missed[0].why.contains("no node"), "{t:?}");
}

#[tokio::test]
async fn a_step_still_waiting_for_an_election_stops_when_cancelled() {
    // No node runs: no leader will ever be elected, so the step would wait 10 s.
    let lab = Lab::new(3, false);
    let steps = vec![Step {
        at: Duration::ZERO,
        action: Action::StartPartition {
            grudge: Grudge::NextPrimaries { settle_ms: 3000 },
            one_way: false,
        },
    }];
    let start = Instant::now();
    run_then_cancel(&lab, steps, start, Duration::from_millis(200)).await;
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(lab.nft_calls().is_empty(), "nothing acted");
    assert_eq!(lab.nemesis.tally().landed, 0);
}

#[tokio::test]
async fn with_recover_a_fault_waits_for_the_cluster_and_the_timeline_slip_is_reported() {
    let steps = vec![
        Step {
            at: Duration::ZERO,
            action: start_partition(),
        },
        Step {
            at: Duration::from_millis(200),
            action: Action::StopPartition,
        },
    ];
    // Nothing runs: the cluster never serves, so each start waits the whole bound.
    let lab = Lab::with_plan(3, false, |p| {
        p.nemesis.recover = Some(Duration::from_millis(1500))
    });
    let start = run_uncancelled(&lab, &steps, Duration::from_secs(30)).await;
    assert!(start.elapsed() >= Duration::from_millis(1500));
    let t = lab.nemesis.tally();
    let slipped: Vec<&str> = t.slipped.iter().map(|s| s.f.as_str()).collect();
    assert_eq!(slipped, ["start-partition", "stop-partition"], "{t:?}");
    assert!(
        t.slipped[1].late_ms >= 1400,
        "the heal moved with its start: {t:?}"
    );

    // A cluster that serves is not waited for.
    let lab = Lab::with_plan(3, false, |p| {
        p.nemesis.recover = Some(Duration::from_secs(10))
    });
    lab.cluster.start_all().await.expect("lazykv starts");
    run_uncancelled(&lab, &steps, Duration::from_secs(30)).await;
    assert!(
        lab.nemesis.tally().slipped.is_empty(),
        "{:?}",
        lab.nemesis.tally()
    );
    let _ = lab.cluster.stop_all().await;
}

#[tokio::test]
async fn a_power_failure_on_plain_data_dirs_fails_after_the_kill_and_is_still_healed() {
    let lab = Lab::new(3, false);
    lab.cluster.start_all().await.expect("lazykv starts");
    let err = lab
        .nemesis
        .apply(&Action::PowerFail {
            targets: Targets::Nodes(names(&["n1"])),
        })
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("not on the power-failure filesystem"),
        "{err:#}"
    );
    // Intent first: the node died and is listed, so the heal starts it again.
    assert!(!lab.cluster.running("n1").await);
    assert_eq!(
        lab.nemesis.in_force().await.powered_off,
        ["n1"].map(String::from).into()
    );
    lab.nemesis.heal_all(HealMode::Teardown).await.unwrap();
    assert!(
        !lab.cluster.running("n1").await,
        "teardown does not restart"
    );
    lab.nemesis.heal_all(HealMode::Full).await.unwrap();
    assert!(lab.cluster.running("n1").await);
    assert!(lab.nemesis.is_clear().await);
    let _ = lab.cluster.stop_all().await;
}

/// Where FUSE can be mounted: the data dirs are mounts, a power failure of a paused and a
/// running node journals what each lost, and the mounts are gone after the unmount.
#[tokio::test]
async fn a_power_failure_kills_drops_and_restores_on_lazyfs_data_dirs() {
    if !nix::unistd::geteuid().is_root() || !std::path::Path::new("/dev/fuse").exists() {
        eprintln!("skipped: needs root and /dev/fuse");
        return;
    }
    let lab = Lab::with_plan(3, false, |p| p.data_fs = crate::spec::test::DataFs::Lazyfs);
    lab.cluster.start_all().await.expect("lazykv starts");
    let root = crate::target::data_root(&lab.reg.run_id());
    let mounted = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| {
                l.contains(crate::hosts::lazyfs::FS_NAME) && l.contains(&*root.to_string_lossy())
            })
            .count()
    };
    assert_eq!(mounted(), 3);
    assert_eq!(lab.reg.snapshot().mounts.len(), 3);
    // Un-fsynced bytes in n2's data dir, as if the node had written them.
    std::fs::write(lab.cluster.data_dir("n2").join("unsynced"), b"gone soon").unwrap();
    lab.nemesis
        .apply(&Action::Pause {
            targets: Targets::Nodes(names(&["n1"])),
        })
        .await
        .unwrap();
    lab.nemesis
        .apply(&Action::PowerFail {
            targets: Targets::Nodes(names(&["n1", "n2"])),
        })
        .await
        .unwrap();
    {
        let f = lab.nemesis.in_force().await;
        assert!(f.paused.is_empty(), "a power-failed node is not paused");
        assert_eq!(f.powered_off, ["n1", "n2"].map(String::from).into());
    }
    assert!(!lab.cluster.running("n1").await && !lab.cluster.running("n2").await);
    assert_eq!(
        std::fs::read(lab.cluster.data_dir("n2").join("unsynced")).unwrap(),
        b"",
        "the file survives its creation, empty"
    );
    let history = std::fs::read_to_string(lab.run_dir.path().join("history.jsonl")).unwrap();
    let op: serde_json::Value = history
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|op| op["f"] == "power-fail")
        .unwrap();
    assert!(
        op["value"]["lost"]["n2"]["bytes"].as_u64().unwrap() >= 9,
        "{op}"
    );
    lab.nemesis.heal_all(HealMode::Full).await.unwrap();
    assert!(lab.cluster.running("n1").await && lab.cluster.running("n2").await);
    let problems = lab.cluster.stop_all().await;
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(lab.cluster.unmount_data_dirs(), Vec::<String>::new());
    assert_eq!(mounted(), 0);
    assert!(lab.reg.snapshot().mounts.is_empty());
}

/// A panic while nodes run on their power-failure filesystems (one of them powered off):
/// unwinding tears the registry down, which kills the nodes and detaches every mount
/// before it removes the data root.
#[tokio::test]
async fn a_panic_with_lazyfs_data_dirs_leaves_no_mount() {
    if !nix::unistd::geteuid().is_root() || !std::path::Path::new("/dev/fuse").exists() {
        eprintln!("skipped: needs root and /dev/fuse");
        return;
    }
    let lab = Lab::with_plan(3, false, |p| p.data_fs = crate::spec::test::DataFs::Lazyfs);
    let root = crate::target::data_root(&lab.reg.run_id());
    let mounted = move || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| {
                l.contains(crate::hosts::lazyfs::FS_NAME) && l.contains(&*root.to_string_lossy())
            })
            .count()
    };
    let task = tokio::spawn(async move {
        lab.cluster.start_all().await.expect("lazykv starts");
        lab.nemesis
            .apply(&Action::PowerFail {
                targets: Targets::Nodes(names(&["n3"])),
            })
            .await
            .unwrap();
        assert_eq!(lab.reg.snapshot().mounts.len(), 3);
        panic!("a bug in the middle of a run");
    });
    assert!(task.await.unwrap_err().is_panic());
    assert_eq!(mounted(), 0, "a mount outlived the panic");
}

/// A restore of a paused node: it dies and is no longer paused, its page from when the
/// schedule armed comes back and is journaled, and the heal restarts it. A node none of
/// whose files match is left alone and the fault says so.
#[tokio::test]
async fn a_corruption_kills_writes_back_an_earlier_page_and_restarts() {
    let lab = Lab::with_plan(3, false, |p| {
        p.target.spec.data_files = vec!["{node}.state".into()];
    });
    lab.cluster.start_all().await.expect("lazykv starts");
    let state = lab.cluster.data_dir("n1").join("n1.state");
    std::fs::write(&state, vec![b'a'; 8000]).unwrap();
    let restore = Action::Corrupt {
        targets: Targets::Nodes(names(&["n1"])),
        damage: crate::spec::nemesis::Damage::Restore,
        probability: None,
        seed: 3,
    };
    corrupt::arm(
        &lab.nemesis,
        &[crate::spec::schedule::Step {
            at: Duration::ZERO,
            action: restore.clone(),
        }],
    );
    // The node goes on writing after the copy.
    let mut now = vec![b'a'; 8000];
    now[5000..5005].copy_from_slice(b"bbbbb");
    std::fs::write(&state, &now).unwrap();
    lab.nemesis
        .apply(&Action::Pause {
            targets: Targets::Nodes(names(&["n1"])),
        })
        .await
        .unwrap();
    assert_eq!(
        lab.nemesis.apply(&restore).await.unwrap(),
        None,
        "it landed"
    );
    {
        let f = lab.nemesis.in_force().await;
        assert!(f.paused.is_empty(), "a corrupted node is not paused");
        assert_eq!(f.corrupted, ["n1"].map(String::from).into());
    }
    assert!(!lab.cluster.running("n1").await);
    assert_eq!(std::fs::read(&state).unwrap(), vec![b'a'; 8000]);
    let history = std::fs::read_to_string(lab.run_dir.path().join("history.jsonl")).unwrap();
    let op: serde_json::Value = history
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|op| op["f"] == "corrupt")
        .unwrap();
    assert_eq!(
        op["value"]["changes"],
        serde_json::json!([{"node": "n1", "file": "n1.state", "damage": "restore",
            "offset": 4096, "length": 3904, "changed": 5, "from": "armed"}]),
        "{op}"
    );
    let missed = lab
        .nemesis
        .apply(&Action::Corrupt {
            targets: Targets::Nodes(names(&["n2"])),
            damage: crate::spec::nemesis::Damage::Bitflip,
            probability: Some(0.5),
            seed: 1,
        })
        .await
        .unwrap();
    assert!(
        missed
            .as_deref()
            .is_some_and(|w| w.contains("no file matches the target's data_files")),
        "{missed:?}"
    );
    lab.nemesis.heal_all(HealMode::Full).await.unwrap();
    assert!(lab.cluster.running("n1").await && lab.cluster.running("n2").await);
    assert!(lab.nemesis.is_clear().await);
    let _ = lab.cluster.stop_all().await;
}
