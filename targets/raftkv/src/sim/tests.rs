//! Deterministic tests of the Raft core and replica, driven through the simulated
//! cluster: elections, pre-vote, check-quorum, conflicts, figure 8, restarts, snapshots —
//! and, for each bug switch, a scenario where the bug changes what clients observe.

use super::Sim;
use crate::bugs::Bugs;
use crate::raft::{self, Message, Role};
use crate::replica::{ReplicaConfig, Reply, Request};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const MAX_TICKS: usize = 2_000;

fn one_entry_per_message() -> raft::Config {
    raft::Config {
        max_entries_per_msg: 1,
        ..raft::Config::default()
    }
}

fn settled_leader(sim: &mut Sim) -> String {
    let l = sim.wait_for_leader(MAX_TICKS).expect("a leader is elected");
    sim.ticks(10); // the no-op commits, followers learn the commit index
    l
}

#[test]
fn elects_one_leader_and_replicates_writes() {
    let mut sim = Sim::new(3, Bugs::default(), 1);
    let l = settled_leader(&mut sim);
    let w = sim.write(&l, "x", 7);
    assert_eq!(sim.reply(w), Some(&Reply::Done));
    let r = sim.read(&l, "x");
    assert_eq!(sim.reply(r), Some(&Reply::Value(Some(7))));
    sim.ticks(10);
    for id in ["n1", "n2", "n3"] {
        assert_eq!(
            sim.node(id).kv().get("x"),
            Some(7),
            "{id} applied the write"
        );
    }
    assert!(sim.violations.is_empty(), "{:?}", sim.violations);
}

#[test]
fn follower_answers_not_leader_with_a_hint() {
    let mut sim = Sim::new(3, Bugs::default(), 2);
    let l = settled_leader(&mut sim);
    let f = ["n1", "n2", "n3"].into_iter().find(|id| *id != l).unwrap();
    let w = sim.write(f, "x", 1);
    assert_eq!(sim.reply(w), Some(&Reply::NotLeader(Some(l.clone()))));
    let r = sim.read(f, "x");
    assert_eq!(sim.reply(r), Some(&Reply::NotLeader(Some(l))));
}

#[test]
fn cas_succeeds_only_on_the_expected_value() {
    let mut sim = Sim::new(3, Bugs::default(), 3);
    let l = settled_leader(&mut sim);
    let cas = |from, to| Request::Cas {
        key: "x".into(),
        from,
        to,
    };
    let t = sim.request(&l, cas(1, 2));
    assert_eq!(sim.reply(t), Some(&Reply::CompareFailed(None)));
    sim.write(&l, "x", 1);
    let t = sim.request(&l, cas(1, 2));
    assert_eq!(sim.reply(t), Some(&Reply::Done));
    let t = sim.request(&l, cas(1, 3));
    assert_eq!(sim.reply(t), Some(&Reply::CompareFailed(Some(2))));
}

#[test]
fn split_vote_is_resolved_in_a_later_term() {
    let mut sim = Sim::new(4, Bugs::default(), 4);
    // Both pass pre-vote; n3 only gets n1's vote request and n4 only n2's: two votes
    // each, no majority of three.
    sim.set_filter(|e| {
        matches!(e.msg, Message::Vote { .. })
            && matches!(
                (e.from.as_str(), e.to.as_str()),
                ("n1", "n4") | ("n2", "n3")
            )
    });
    for id in ["n1", "n2"] {
        sim.nodes
            .get_mut(id)
            .unwrap()
            .replica
            .as_mut()
            .unwrap()
            .raft_mut()
            .campaign();
        sim.process(id);
    }
    sim.run();
    assert_eq!(sim.node("n1").raft().role(), Role::Candidate);
    assert_eq!(sim.node("n2").raft().role(), Role::Candidate);
    let split_term = sim.node("n1").raft().term();
    assert_eq!(sim.node("n2").raft().term(), split_term);
    assert!(sim.leader().is_none());
    sim.clear_filter();
    let l = sim
        .wait_for_leader(MAX_TICKS)
        .expect("randomized timeouts break the tie");
    assert!(sim.node(&l).raft().term() > split_term);
    assert!(sim.violations.is_empty(), "{:?}", sim.violations);
}

#[test]
fn pre_vote_keeps_an_isolated_node_from_inflating_terms() {
    let mut sim = Sim::new(3, Bugs::default(), 5);
    let l = settled_leader(&mut sim);
    let term = sim.node(&l).raft().term();
    let f = ["n1", "n2", "n3"].into_iter().find(|id| *id != l).unwrap();
    let pre_votes = std::rc::Rc::new(std::cell::Cell::new(0));
    let counter = pre_votes.clone();
    sim.set_filter(move |e| {
        if e.from == f && matches!(e.msg, Message::PreVote { .. }) {
            counter.set(counter.get() + 1);
        }
        false
    });
    sim.isolate(f);
    sim.ticks(20 * 50);
    assert_eq!(
        sim.node(f).raft().term(),
        term,
        "pre-votes failed, term unchanged"
    );
    // At most one round (to each of 2 peers) per election timeout of at least 50 ticks.
    assert!(
        pre_votes.get() <= 2 * 20,
        "{} pre-votes in 20 timeouts",
        pre_votes.get()
    );
    assert_eq!(sim.node(f).raft().role(), Role::PreCandidate);
    sim.heal();
    sim.ticks(100);
    assert_eq!(
        sim.leader().as_deref(),
        Some(l.as_str()),
        "the leader was not disturbed"
    );
    assert_eq!(sim.node(&l).raft().term(), term);
}

#[test]
fn candidate_waits_a_whole_timeout_for_votes() {
    let mut sim = Sim::new(3, Bugs::default(), 15);
    // Vote answers are slow (here: lost); a candidate must not restart every tick.
    sim.set_filter(|e| matches!(e.msg, Message::VoteResp { .. }));
    let mut candidate = None;
    for _ in 0..MAX_TICKS {
        sim.tick();
        candidate = ["n1", "n2", "n3"]
            .into_iter()
            .find(|id| sim.node(id).raft().role() == Role::Candidate);
        if candidate.is_some() {
            break;
        }
    }
    let c = candidate.expect("someone campaigns");
    let term = sim.node(c).raft().term();
    sim.isolate(c);
    sim.ticks(49);
    assert_eq!(
        sim.node(c).raft().term(),
        term,
        "still waiting in the same term"
    );
}

#[test]
fn isolated_leader_steps_down_and_majority_elects_another() {
    let mut sim = Sim::new(5, Bugs::default(), 6);
    let old = settled_leader(&mut sim);
    sim.isolate(&old);
    let new = sim
        .wait_for_leader_except(&[&old], MAX_TICKS)
        .expect("majority elects a leader");
    sim.ticks(200);
    assert_eq!(sim.node(&old).raft().role(), Role::PreCandidate);
    assert!(sim.node(&new).raft().term() > 1);
}

#[test]
fn uncommitted_entries_of_a_deposed_leader_are_truncated() {
    let mut sim = Sim::new(3, Bugs::default(), 7);
    let old = settled_leader(&mut sim);
    sim.isolate(&old);
    let lost = sim.write(&old, "x", 1);
    let new = sim.wait_for_leader_except(&[&old], MAX_TICKS).unwrap();
    let w = sim.write(&new, "x", 2);
    assert_eq!(sim.reply(w), Some(&Reply::Done));
    sim.heal();
    sim.ticks(100);
    assert!(
        matches!(sim.reply(lost), Some(Reply::Unknown(_))),
        "the old leader's write is answered unknown when it steps down: {:?}",
        sim.reply(lost)
    );
    assert_eq!(sim.node(&old).kv().get("x"), Some(2));
    let (a, b) = (sim.node(&old).raft().log(), sim.node(&new).raft().log());
    assert_eq!(a.last_index(), b.last_index());
    assert_eq!(a.last_term(), b.last_term());
    assert!(sim.violations.is_empty(), "{:?}", sim.violations);
}

#[test]
fn restarted_cluster_recovers_its_state() {
    let mut sim = Sim::new(3, Bugs::default(), 8);
    let l = settled_leader(&mut sim);
    for i in 0..20 {
        sim.write(&l, "x", i);
    }
    let term = sim.node(&l).raft().term();
    for id in ["n1", "n2", "n3"] {
        sim.crash(id);
    }
    for id in ["n1", "n2", "n3"] {
        sim.restart(id);
        assert!(sim.node(id).raft().term() >= term);
    }
    let l = settled_leader(&mut sim);
    let r = sim.read(&l, "x");
    sim.ticks(5);
    assert_eq!(sim.reply(r), Some(&Reply::Value(Some(19))));
    assert!(sim.violations.is_empty(), "{:?}", sim.violations);
}

#[test]
fn lagging_follower_catches_up_by_install_snapshot() {
    let rcfg = ReplicaConfig {
        snapshot_threshold: 10,
        ..ReplicaConfig::default()
    };
    let mut sim = Sim::with_config(3, Bugs::default(), 9, raft::Config::default(), rcfg);
    let l = settled_leader(&mut sim);
    let f = ["n1", "n2", "n3"].into_iter().find(|id| *id != l).unwrap();
    sim.crash(f);
    for i in 0..100 {
        sim.write(&l, &format!("k{}", i % 7), i);
    }
    assert!(
        sim.node(&l).raft().log().len() <= 10,
        "the leader compacted its log"
    );
    let sent_snapshot = std::rc::Rc::new(std::cell::Cell::new(false));
    let seen = sent_snapshot.clone();
    sim.set_filter(move |e| {
        if matches!(e.msg, Message::InstallSnapshot { .. }) {
            seen.set(true);
        }
        false
    });
    sim.restart(f);
    sim.ticks(50);
    assert!(sent_snapshot.get(), "catching up needed InstallSnapshot");
    assert_eq!(sim.node(f).kv(), sim.node(&l).kv());
    // And the follower survives a restart from its installed snapshot.
    sim.crash(f);
    sim.restart(f);
    assert!(
        sim.node(f).kv().get("k1").is_some(),
        "state restored from the snapshot"
    );
    sim.ticks(20);
    assert_eq!(sim.node(f).kv(), sim.node(&l).kv());
    assert!(sim.violations.is_empty(), "{:?}", sim.violations);
}

/// n1 leads term 1 and appends a write at index 2 that no follower gets; n2 wins term 2
/// and appends its no-op at index 2 that nobody else gets either. n1, deposed, still
/// holds its client's write.
fn deposed_leader_with_a_waiting_write() -> (Sim, u64) {
    let mut sim = Sim::new(3, Bugs::default(), 12);
    assert!(sim.elect("n1"));
    sim.run();
    sim.ticks(5);
    assert_eq!(sim.node("n1").raft().log().last_index(), 1);
    sim.set_filter(|e| {
        (e.from == "n1" || e.from == "n2") && matches!(e.msg, Message::Append { .. })
    });
    let w = sim.write("n1", "x", 1);
    assert!(sim.elect("n2"));
    assert!(!sim.node("n1").raft().is_leader());
    (sim, w)
}

#[test]
fn a_write_survives_its_leaders_deposition_and_is_acknowledged_once_applied() {
    let (mut sim, w) = deposed_leader_with_a_waiting_write();
    assert_eq!(sim.reply(w), None, "still waiting, not written off");
    // n2 crashes; n1's log is ahead of n3's, so n1 wins term 3, and its no-op commits
    // the write at index 2 with it: the same entry, so the client is told it is done.
    sim.crash("n2");
    sim.clear_filter();
    assert!(sim.elect("n1"));
    sim.ticks(10);
    assert_eq!(sim.reply(w), Some(&Reply::Done));
    assert_eq!(sim.node("n3").kv().get("x"), Some(1));
    assert!(sim.violations.is_empty(), "{:?}", sim.violations);
}

#[test]
fn a_write_whose_index_another_leader_filled_is_not_acknowledged() {
    let (mut sim, w) = deposed_leader_with_a_waiting_write();
    // n2's no-op reaches everyone and replaces n1's write at index 2.
    sim.clear_filter();
    sim.ticks(10);
    assert_eq!(
        sim.reply(w),
        Some(&Reply::Unknown(
            "another entry was committed in its place".into()
        ))
    );
    assert_eq!(sim.node("n1").kv().get("x"), None);
    assert!(sim.violations.is_empty(), "{:?}", sim.violations);
}

/// The Raft paper's figure 8 on five nodes. `bugs` decides whether the leader of term 3
/// may commit the term-1 entry by counting replicas.
fn figure_8(bugs: Bugs) -> (Sim, u64) {
    let mut sim = Sim::with_config(
        5,
        bugs,
        10,
        one_entry_per_message(),
        ReplicaConfig::default(),
    );
    assert!(sim.elect("n1"));
    sim.run();
    // (a) n1 replicates a write at index 2 to n2 only.
    for p in ["n3", "n4", "n5"] {
        sim.cut_link("n1", p);
    }
    let w = sim.write("n1", "x", 1);
    sim.crash("n1");
    sim.heal();
    // (b) n5 wins with n3, n4 and appends its own entry at index 2 that nobody gets.
    sim.set_filter(|e| e.from == "n5" && matches!(e.msg, Message::Append { .. }));
    assert!(sim.elect("n5"));
    sim.crash("n5");
    sim.clear_filter();
    // (c) n1 comes back and wins; index 2 (term 1) reaches n3, its own no-op at 3 only n2.
    sim.restart("n1");
    sim.set_filter(|e| {
        e.from == "n1"
            && (e.to == "n3" || e.to == "n4")
            && matches!(&e.msg, Message::Append { entries, .. } if entries.iter().any(|x| x.index >= 3))
    });
    assert!(sim.elect("n1"));
    sim.run();
    (sim, w)
}

#[test]
fn figure_8_old_term_entry_is_not_committed_by_counting_replicas() {
    let (mut sim, w) = figure_8(Bugs::default());
    assert!(sim.node("n1").raft().commit_index() < 2);
    assert!(!sim.events.iter().any(|e| e.contains("commit-old-term")));
    // (d) n1 crashes; n5 wins with n3 and n4 and overwrites index 2 — legal, as it was
    // never committed nor acknowledged.
    sim.crash("n1");
    sim.clear_filter();
    sim.restart("n5");
    assert!(sim.elect("n5"));
    sim.ticks(20);
    assert_ne!(sim.reply(w), Some(&Reply::Done));
    assert!(sim.violations.is_empty(), "{:?}", sim.violations);
}

#[test]
fn commit_old_term_bug_lets_a_committed_entry_be_overwritten() {
    let bugs = Bugs {
        commit_old_term: true,
        ..Bugs::default()
    };
    let (mut sim, _) = figure_8(bugs);
    assert_eq!(
        sim.node("n1").raft().commit_index(),
        2,
        "committed by counting"
    );
    assert_eq!(sim.node("n1").kv().get("x"), Some(1), "and applied");
    assert!(
        sim.events.iter().any(|e| e
            == "n1: commit-old-term: committing index 2 of term 1 in term 3 by counting replicas"),
        "the node log names the moment: {:?}",
        sim.events
    );
    sim.crash("n1");
    sim.clear_filter();
    sim.restart("n5");
    assert!(sim.elect("n5"));
    sim.ticks(20);
    let r = sim.read("n5", "x");
    sim.ticks(5);
    assert_eq!(
        sim.reply(r),
        Some(&Reply::Value(None)),
        "the acknowledged write is gone"
    );
    assert!(
        sim.violations.iter().any(|v| v.starts_with("index 2:")),
        "{:?}",
        sim.violations
    );
}

/// n3 votes for n1 in term 1 without hearing from it again, restarts, and is asked by n2
/// for a vote in term 1.
fn vote_twice_scenario(bugs: Bugs) -> Sim {
    let mut sim = Sim::new(3, bugs, 11);
    sim.cut_link("n1", "n2");
    sim.set_filter(|e| {
        e.from == "n1" && matches!(e.msg, Message::Append { .. } | Message::Heartbeat { .. })
    });
    assert!(sim.elect("n1"));
    assert_eq!(sim.node("n1").raft().term(), 1);
    sim.crash("n3");
    sim.restart("n3");
    sim.elect("n2");
    sim
}

#[test]
fn persisted_vote_prevents_voting_twice_in_a_term() {
    let sim = vote_twice_scenario(Bugs::default());
    assert_eq!(
        sim.node("n3").raft().voted_for().map(String::as_str),
        Some("n2")
    );
    assert!(sim.node("n2").raft().term() > 1, "n2 had to move to term 2");
    assert!(sim.violations.is_empty(), "{:?}", sim.violations);
}

#[test]
fn forget_vote_bug_elects_two_leaders_in_one_term() {
    let bugs = Bugs {
        forget_vote: true,
        ..Bugs::default()
    };
    let sim = vote_twice_scenario(bugs);
    assert!(sim.node("n1").raft().is_leader() && sim.node("n2").raft().is_leader());
    assert_eq!(sim.node("n2").raft().term(), 1);
    assert!(
        sim.violations.iter().any(|v| v.contains("voted for"))
            && sim
                .violations
                .iter()
                .any(|v| v.contains("two leaders in term 1")),
        "{:?}",
        sim.violations
    );
}

/// n1 gets a write to index 2 onto n3 only, then n2 leads term 2 with n4, n5 and its
/// no-op lands at index 2: n3's log disagrees with the leader's at its last entry.
fn divergent_follower_scenario(bugs: Bugs) -> Sim {
    let mut sim = Sim::new(5, bugs, 12);
    assert!(sim.elect("n1"));
    sim.run();
    for p in ["n2", "n4", "n5"] {
        sim.cut_link("n1", p);
    }
    sim.write("n1", "x", 1);
    sim.crash("n1");
    sim.heal();
    assert!(sim.elect("n2"));
    sim.write("n2", "y", 2);
    sim.ticks(20);
    sim
}

#[test]
fn consistency_check_repairs_a_divergent_follower() {
    let sim = divergent_follower_scenario(Bugs::default());
    assert_eq!(sim.node("n3").kv().get("x"), None);
    assert_eq!(sim.node("n3").kv().get("y"), Some(2));
    assert!(sim.violations.is_empty(), "{:?}", sim.violations);
}

#[test]
fn no_prev_check_bug_leaves_a_follower_applying_a_divergent_log() {
    let bugs = Bugs {
        no_prev_check: true,
        ..Bugs::default()
    };
    let sim = divergent_follower_scenario(bugs);
    assert_eq!(
        sim.node("n3").kv().get("x"),
        Some(1),
        "n3 applied a never-committed write"
    );
    assert_eq!(sim.node("n2").kv().get("x"), None);
    assert!(
        sim.violations.iter().any(|v| v.starts_with("index 2:")),
        "{:?}",
        sim.violations
    );
}

/// n1 leads and x=1 is committed; n1 is cut off, the others elect a leader that writes
/// x=2; then a client reads x from n1. Returns the sim and that read's token.
fn isolated_leader_read(bugs: Bugs, skew_ms: i64) -> (Sim, u64) {
    let mut sim = Sim::new(3, bugs, 13);
    assert!(sim.elect("n1"));
    sim.ticks(10);
    let w = sim.write("n1", "x", 1);
    assert_eq!(sim.reply(w), Some(&Reply::Done));
    sim.isolate("n1");
    sim.skew_wall("n1", skew_ms);
    let new = sim.wait_for_leader_except(&["n1"], MAX_TICKS).unwrap();
    let w = sim.write(&new, "x", 2);
    assert_eq!(sim.reply(w), Some(&Reply::Done));
    let r = sim.read("n1", "x");
    sim.ticks(200);
    (sim, r)
}

#[test]
fn read_index_on_a_deposed_leader_never_returns_a_stale_value() {
    let (sim, r) = isolated_leader_read(Bugs::default(), 0);
    assert!(
        matches!(sim.reply(r), Some(Reply::NotLeader(_) | Reply::Unknown(_))),
        "{:?}",
        sim.reply(r)
    );
}

#[test]
fn stale_read_bug_lets_a_deposed_leader_answer_from_local_state() {
    let bugs = Bugs {
        stale_read: true,
        ..Bugs::default()
    };
    let (sim, r) = isolated_leader_read(bugs, 0);
    assert_eq!(sim.reply(r), Some(&Reply::Value(Some(1))), "stale: x is 2");
    assert!(sim.node("n1").raft().is_leader(), "it never stepped down");
}

#[test]
fn lease_read_bug_is_safe_while_clocks_agree() {
    let bugs = Bugs {
        lease_read: true,
        ..Bugs::default()
    };
    let (sim, r) = isolated_leader_read(bugs, 0);
    assert!(
        matches!(sim.reply(r), Some(Reply::NotLeader(_))),
        "the lease expired before the others could elect: {:?}",
        sim.reply(r)
    );
}

#[test]
fn lease_read_bug_serves_stale_reads_when_the_leaders_clock_jumps_back() {
    let bugs = Bugs {
        lease_read: true,
        ..Bugs::default()
    };
    let (sim, r) = isolated_leader_read(bugs, -60_000);
    assert_eq!(sim.reply(r), Some(&Reply::Value(Some(1))), "stale: x is 2");
}

/// n1 leads, is cut off, and a client writes x=1 to it; the others elect a leader.
fn write_to_isolated_leader(bugs: Bugs) -> (Sim, u64, String) {
    let mut sim = Sim::new(3, bugs, 14);
    assert!(sim.elect("n1"));
    sim.ticks(10);
    sim.isolate("n1");
    let w = sim.write("n1", "x", 1);
    let new = sim.wait_for_leader_except(&["n1"], MAX_TICKS).unwrap();
    sim.heal();
    sim.ticks(50);
    (sim, w, new)
}

#[test]
fn write_is_acknowledged_only_after_commit() {
    let (mut sim, w, new) = write_to_isolated_leader(Bugs::default());
    assert!(
        matches!(sim.reply(w), Some(Reply::Unknown(_))),
        "{:?}",
        sim.reply(w)
    );
    let r = sim.read(&new, "x");
    sim.ticks(2);
    assert_eq!(sim.reply(r), Some(&Reply::Value(None)));
}

#[test]
fn ack_before_commit_bug_acknowledges_a_write_that_is_then_lost() {
    let bugs = Bugs {
        ack_before_commit: true,
        ..Bugs::default()
    };
    let (mut sim, w, new) = write_to_isolated_leader(bugs);
    assert_eq!(sim.reply(w), Some(&Reply::Done));
    let r = sim.read(&new, "x");
    sim.ticks(2);
    assert_eq!(
        sim.reply(r),
        Some(&Reply::Value(None)),
        "the acknowledged write was lost"
    );
    assert_eq!(sim.node("n1").kv().get("x"), None);
}

#[test]
fn survives_random_loss_crashes_and_restarts() {
    for seed in 0..4u64 {
        let rcfg = ReplicaConfig {
            snapshot_threshold: 30,
            request_timeout_ticks: 200,
            ..ReplicaConfig::default()
        };
        let cfg = raft::Config {
            max_entries_per_msg: 8,
            max_inflight: 4,
            ..raft::Config::default()
        };
        let mut sim = Sim::with_config(5, Bugs::default(), seed, cfg, rcfg);
        let mut rng = StdRng::seed_from_u64(seed);
        let mut loss = StdRng::seed_from_u64(seed + 100);
        sim.set_filter(move |_| loss.random_bool(0.1));
        let mut acked = Vec::new();
        for step in 0..3_000u64 {
            if step % 3 == 0 {
                if let Some(l) = sim.leader() {
                    let t = sim.write(&l, "x", step as i64);
                    acked.push((t, step as i64));
                }
            }
            if step % 400 == 200 {
                let victim = format!("n{}", rng.random_range(1..=5));
                sim.crash(&victim);
                sim.ticks(30);
                sim.restart(&victim);
            }
            sim.tick();
        }
        sim.clear_filter();
        sim.ticks(300);
        let l = sim.leader().expect("a leader after healing");
        for id in ["n1", "n2", "n3", "n4", "n5"] {
            assert_eq!(
                sim.node(id).kv(),
                sim.node(&l).kv(),
                "seed {seed}: {id} converged"
            );
            assert!(
                sim.node(id).raft().log().len() < 200,
                "seed {seed}: log stays bounded"
            );
        }
        let done = acked
            .iter()
            .filter(|(t, _)| sim.reply(*t) == Some(&Reply::Done))
            .count();
        assert!(
            done > 100,
            "seed {seed}: progress despite faults ({done} writes)"
        );
        // The last acknowledged write is the value now (writes are issued in order).
        let last_done = acked
            .iter()
            .rev()
            .find(|(t, _)| sim.reply(*t) == Some(&Reply::Done))
            .map(|(_, v)| *v);
        let last_maybe = acked
            .iter()
            .rev()
            .find(|(t, _)| !matches!(sim.reply(*t), Some(Reply::NotLeader(_))))
            .map(|(_, v)| *v);
        let now = sim.node(&l).kv().get("x");
        assert!(
            now >= last_done && now <= last_maybe,
            "seed {seed}: x={now:?} between {last_done:?} and {last_maybe:?}"
        );
        assert!(
            sim.violations.is_empty(),
            "seed {seed}: {:?}",
            sim.violations
        );
    }
}

/// Every entry a node's `log` request answers, paging from index 1 with `page` entries.
fn committed_log(sim: &mut Sim, id: &str, page: u64) -> (u64, Vec<(u64, u64, String)>) {
    let mut from = 1;
    let mut out = Vec::new();
    let mut first = None;
    loop {
        let t = sim.request(id, Request::Log { from, max: page });
        let Some(Reply::Log(p)) = sim.reply(t).cloned() else {
            panic!("{id} did not answer log: {:?}", sim.reply(t));
        };
        first.get_or_insert(p.first);
        assert!(p.entries.len() as u64 <= page);
        let Some(last) = p.entries.last().map(|e| e.index) else {
            break;
        };
        assert!(last <= p.commit_index, "only committed entries");
        out.extend(p.entries.into_iter().map(|e| (e.index, e.term, e.op)));
        from = last + 1;
    }
    (first.unwrap_or(1), out)
}

#[test]
fn log_answers_the_same_committed_entries_on_every_node_in_pages() {
    let mut sim = Sim::new(3, Bugs::default(), 31);
    let l = settled_leader(&mut sim);
    for i in 0..25 {
        sim.write(&l, "k", i);
    }
    let c = sim.request(
        &l,
        Request::Cas {
            key: "k".into(),
            from: 24,
            to: 99,
        },
    );
    sim.ticks(20);
    assert_eq!(sim.reply(c), Some(&Reply::Done));
    let (first, leader_log) = committed_log(&mut sim, &l, 7);
    assert_eq!(first, 1);
    assert_eq!(leader_log.len(), 27, "the no-op, 25 writes and the cas");
    assert_eq!(leader_log[0].2, "noop");
    assert_eq!(leader_log[1].2, "write \"k\" 0");
    assert_eq!(leader_log[26].2, "cas \"k\" 24 99");
    assert!(leader_log
        .iter()
        .enumerate()
        .all(|(i, e)| e.0 == i as u64 + 1));
    for id in ["n1", "n2", "n3"] {
        assert_eq!(committed_log(&mut sim, id, 1000).1, leader_log, "{id}");
    }
}

#[test]
fn log_starts_at_the_first_index_not_compacted_into_a_snapshot() {
    let rcfg = ReplicaConfig {
        snapshot_threshold: 10,
        ..ReplicaConfig::default()
    };
    let mut sim = Sim::with_config(3, Bugs::default(), 32, raft::Config::default(), rcfg);
    let l = settled_leader(&mut sim);
    for i in 0..40 {
        sim.write(&l, "k", i);
    }
    sim.ticks(20);
    let (first, log) = committed_log(&mut sim, &l, 1000);
    assert!(first > 1, "compacted: first available index {first}");
    assert_eq!(log.first().map(|e| e.0), Some(first));
    assert_eq!(
        log.last().map(|e| e.0),
        Some(sim.node(&l).raft().commit_index())
    );
    // Asking below the snapshot is not an error: the answer starts where the log does.
    let t = sim.request(&l, Request::Log { from: 1, max: 3 });
    let Some(Reply::Log(p)) = sim.reply(t) else {
        panic!("no log answer");
    };
    assert_eq!(p.first, first);
    assert_eq!(p.entries.first().map(|e| e.index), Some(first));
    let held = p.commit_index - first + 1;
    assert_eq!(p.entries.len() as u64, held.min(3));
}
