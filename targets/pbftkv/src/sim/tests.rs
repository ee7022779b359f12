//! Deterministic tests of the PBFT core, driven through the simulated cluster: the normal
//! case, view changes, checkpoints and state transfer, crashes, authentication, random
//! faults over many seeds — and, for each bug switch, a scenario where the checker catches
//! the bug.

#![cfg(test)]

use super::{Sim, Strategy};
use crate::bugs::Bugs;
use crate::kv::{Op, Outcome};
use crate::pbft::{Config, Message, Node, Signed, Vote};

const MAX: u64 = 2_000;

fn sim(seed: u64) -> Sim {
    Sim::new(Config::default(), Bugs::default(), seed, 3)
}

fn write(key: &str, value: i64) -> Op {
    Op::Write {
        key: key.into(),
        value,
    }
}

fn read(key: &str) -> Op {
    Op::Read { key: key.into() }
}

fn assert_safe(sim: &mut Sim) {
    sim.check_clients();
    assert!(sim.violations.is_empty(), "{:#?}", sim.violations);
}

#[test]
fn normal_case_orders_writes_reads_and_cas() {
    let mut s = sim(1);
    assert_eq!(s.call(1, write("x", 7), MAX), Some(Outcome::Done));
    assert_eq!(s.call(2, read("x"), MAX), Some(Outcome::Value(Some(7))));
    let cas = |from, to| Op::Cas {
        key: "x".into(),
        from,
        to,
    };
    assert_eq!(s.call(3, cas(1, 2), MAX), Some(Outcome::CompareFailed(Some(7))));
    assert_eq!(s.call(3, cas(7, 8), MAX), Some(Outcome::Done));
    assert_eq!(s.call(1, read("y"), MAX), Some(Outcome::Value(None)));
    s.ticks(5);
    for r in 0..4 {
        assert_eq!(s.replica(r).kv().get("x"), Some(8), "replica {r}");
        assert_eq!(s.replica(r).last_executed(), 5);
        assert_eq!(s.replica(r).view(), 0);
    }
    assert_safe(&mut s);
}

#[test]
fn a_retransmitted_request_executes_once() {
    let mut s = sim(2);
    s.call(1, write("x", 1), MAX);
    let cas = s.submit(
        1,
        Op::Cas {
            key: "x".into(),
            from: 1,
            to: 2,
        },
    );
    // The client retransmits several times before and after it executes.
    s.ticks(200);
    assert_eq!(s.result(&cas), Some(&Outcome::Done));
    assert_eq!(s.agreed(), 2, "the cas got one sequence number");
    assert_eq!(s.replica(0).kv().get("x"), Some(2));
    assert_safe(&mut s);
}

#[test]
fn a_crashed_primary_is_replaced_by_a_view_change() {
    let mut s = sim(3);
    s.call(1, write("x", 1), MAX);
    s.crash(0);
    assert_eq!(s.call(2, write("x", 2), MAX), Some(Outcome::Done));
    assert!(s.replica(1).view() >= 1);
    assert_eq!(s.call(3, read("x"), MAX), Some(Outcome::Value(Some(2))));
    // The old primary comes back, learns the new view and catches up.
    s.restart(0);
    s.call(1, write("z", 3), MAX);
    s.ticks(100);
    assert_eq!(s.replica(0).view(), s.replica(1).view());
    assert_eq!(s.replica(0).kv().get("x"), Some(2));
    assert_safe(&mut s);
}

#[test]
fn prepared_requests_survive_a_view_change() {
    let mut s = sim(4);
    // View 0's commits are lost: the write prepares everywhere but commits nowhere, so
    // only the view change's prepared certificates carry it into view 1.
    s.set_filter(|_, _, m| matches!(m, Message::Commit(c) if c.body.view == 0));
    let w = s.write(1, "x", 5);
    s.ticks(20);
    assert_eq!(s.result(&w), None);
    assert!(s.replica(1).durable().slots[&1].prepared.is_some());
    s.crash(0);
    s.ticks(MAX);
    assert_eq!(s.result(&w), Some(&Outcome::Done));
    assert_eq!(s.replica(1).kv().get("x"), Some(5));
    assert!(s.replica(1).view() >= 1);
    assert_safe(&mut s);
}

#[test]
fn checkpoints_become_stable_and_truncate_the_log() {
    let mut s = sim(5);
    for i in 0..10 {
        s.call(1 + (i % 3), write("x", i as i64), MAX);
    }
    s.ticks(20);
    for r in 0..4 {
        let rep = s.replica(r);
        assert_eq!(rep.last_executed(), 10);
        assert_eq!(rep.stable_checkpoint(), 8, "replica {r}");
        assert!(rep.log_len() <= 2, "log truncated below the checkpoint");
    }
    assert_safe(&mut s);
}

#[test]
fn the_window_holds_proposals_until_a_checkpoint_is_stable() {
    let mut s = sim(6);
    // Checkpoint messages are lost: after L numbers the primary must stop.
    s.set_filter(|_, _, m| matches!(m, Message::Checkpoint(_)));
    for i in 0..16 {
        s.call(1, write("x", i), MAX);
    }
    let w = s.write(2, "x", 100);
    s.ticks(30);
    assert_eq!(s.result(&w), None, "no number beyond the high water mark");
    assert_eq!(s.replica(0).last_executed(), 16);
    s.clear_filter();
    s.ticks(100);
    assert_eq!(s.result(&w), Some(&Outcome::Done));
    assert_safe(&mut s);
}

#[test]
fn a_replica_that_fell_behind_catches_up_by_state_transfer() {
    let mut s = sim(7);
    s.isolate(3);
    for i in 0..12 {
        s.call(1, write("x", i), MAX);
    }
    assert_eq!(s.replica(3).last_executed(), 0);
    assert!(s.replica(0).stable_checkpoint() >= 8);
    s.heal();
    s.ticks(100);
    let rep = s.replica(3);
    assert_eq!(rep.last_executed(), 12);
    assert_eq!(rep.kv().get("x"), Some(11));
    assert!(rep.stable_checkpoint() >= 8);
    assert_safe(&mut s);
}

#[test]
fn a_restarted_cluster_recovers_from_durable_state() {
    let mut s = sim(8);
    for i in 0..7 {
        s.call(1, write("x", i), MAX);
    }
    for r in 0..4 {
        s.crash(r);
    }
    for r in 0..4 {
        s.restart(r);
    }
    assert_eq!(s.replica(2).kv().get("x"), Some(6), "re-executed from the log");
    assert_eq!(s.call(2, read("x"), MAX), Some(Outcome::Value(Some(6))));
    assert_safe(&mut s);
}

#[test]
fn messages_whose_sender_is_not_the_signer_are_rejected() {
    let mut s = sim(9);
    let w = s.write(1, "x", 1);
    s.ticks(1); // the pre-prepare is out, no prepare yet
    let vote = |replica| Vote {
        view: 0,
        seq: 1,
        digest: w.digest(),
        replica,
    };
    // Replica 1 relays a prepare signed by replica 2 as if it were a fresh one; replica 2's
    // own message arrives with a signature that is not its own.
    let relayed = Message::Prepare(Signed::new(vote(2), &s.auth(2)));
    let forged = Message::Prepare(Signed::new(vote(2), &s.auth(1)));
    let before = s.replica(3).durable().slots.get(&1).cloned();
    if let Some(rep) = s.replicas[3].as_mut() {
        rep.step(Node::Replica(1), relayed);
        rep.step(Node::Replica(2), forged);
    }
    assert_eq!(s.replica(3).durable().slots.get(&1).cloned(), before);
    // The genuine one counts.
    let genuine = Message::Prepare(Signed::new(vote(2), &s.auth(2)));
    if let Some(rep) = s.replicas[3].as_mut() {
        rep.step(Node::Replica(2), genuine);
    }
    assert_ne!(s.replica(3).durable().slots.get(&1).cloned(), before);
    s.ticks(50);
    assert_eq!(s.result(&w), Some(&Outcome::Done));
    assert_safe(&mut s);
}
