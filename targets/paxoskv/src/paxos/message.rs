//! The values that cross the Paxos core's boundary: ballots, log values, peer messages,
//! persisted records, and the [`Ready`] batch of effects the host carries out.

use crate::kv::{Kv, Outcome, Request};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A node's number, 1..=n.
pub type NodeId = u64;

/// A ballot: compared by round first, then by node, so two nodes never share one and every
/// pair is ordered. `Ballot::default()` (round 0) is below every real ballot.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Ballot {
    pub round: u64,
    pub node: NodeId,
}

/// What a slot holds: a client request, or the no-op a new leader fills gaps with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Value {
    Noop,
    Request(Request),
}

/// The state machine after applying every slot up to and including `slot`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub slot: u64,
    pub kv: Kv,
}

/// An acceptor's vote reported in phase 1: `slot` accepted `value` in `ballot`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    pub slot: u64,
    pub ballot: Ballot,
    pub value: Value,
}

/// A message between two nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub from: NodeId,
    pub to: NodeId,
    pub msg: Message,
}

/// The peer protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Phase 1a: "promise to ignore ballots below `ballot`, and tell me what you accepted
    /// from `from_slot` on" (the candidate's first slot not known chosen).
    Prepare { ballot: Ballot, from_slot: u64 },
    /// Phase 1b. `snapshot` is set when the acceptor compacted slots at or past
    /// `from_slot`: those are chosen, and the snapshot is what they add up to.
    Promise {
        ballot: Ballot,
        votes: Vec<Vote>,
        snapshot: Option<Snapshot>,
    },
    /// Phase 2a, with the leader's commit point: every slot below `commit` is chosen.
    Accept {
        ballot: Ballot,
        slot: u64,
        value: Value,
        commit: u64,
    },
    /// Phase 2b.
    Accepted { ballot: Ballot, slot: u64 },
    /// The answer to a Prepare, Accept or Heartbeat below the acceptor's promise.
    Reject { promised: Ballot },
    /// The leader is alive; every slot below `commit` is chosen.
    Heartbeat { ballot: Ballot, commit: u64 },
    /// Catch-up: "send me the chosen values from `from_slot` on".
    Fetch { from_slot: u64 },
    /// Chosen values, contiguous from the Fetch's slot; the sender knows slots below `upto`.
    Chosen {
        values: Vec<(u64, Value)>,
        upto: u64,
    },
    /// Catch-up past a compacted log.
    InstallSnapshot { snapshot: Snapshot },
}

/// A change to durable state. The host must make each one durable (fsync) before it sends
/// the messages or replies of the same [`Ready`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Persist {
    /// The acceptor promised `0` (it also does so when it accepts in a higher ballot).
    Promise(Ballot),
    /// The acceptor accepted `value` for `slot` in `ballot`.
    Accept {
        slot: u64,
        ballot: Ballot,
        value: Value,
    },
    /// A snapshot replaces every slot up to its own; acceptor votes there are dropped.
    Snapshot(Snapshot),
}

/// Everything a node keeps across a crash: what restart reads back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Durable {
    pub promised: Ballot,
    /// Per slot past the snapshot: the last vote.
    pub accepted: BTreeMap<u64, (Ballot, Value)>,
    pub snapshot: Option<Snapshot>,
}

impl Durable {
    /// Applies one persisted change, as a storage layer replaying its records would.
    pub fn record(&mut self, p: &Persist) {
        match p {
            Persist::Promise(b) => self.promised = *b,
            Persist::Accept {
                slot,
                ballot,
                value,
            } => {
                self.accepted.insert(*slot, (*ballot, value.clone()));
            }
            Persist::Snapshot(s) => {
                self.accepted = self.accepted.split_off(&(s.slot + 1));
                self.snapshot = Some(s.clone());
            }
        }
    }
}

/// The answer to a client request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientResult {
    Ok(Outcome),
    /// This node does not lead; try `hint` (the last leader it heard of), if any.
    NotLeader {
        hint: Option<NodeId>,
    },
}

/// A client answer, addressed by the request's client and sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub client: u64,
    pub seq: u64,
    pub result: ClientResult,
}

/// The effects of one or more inputs, in the order the host must carry them out: make
/// `persist` durable, then send `messages` and `replies`. `applied` lists the slots the
/// state machine applied, in order (for logs and the simulation's checks).
#[derive(Debug, Clone, Default)]
pub struct Ready {
    pub persist: Vec<Persist>,
    pub messages: Vec<Envelope>,
    pub replies: Vec<Reply>,
    pub applied: Vec<(u64, Value)>,
}
