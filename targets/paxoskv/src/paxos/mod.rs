//! The Multi-Paxos core: a deterministic state machine (Lamport, "Paxos Made Simple";
//! the engineering of "Paxos Made Live"; the leader/acceptor split of van Renesse and
//! Altinbuken, "Paxos Made Moderately Complex").
//!
//! Inputs are peer messages ([`Node::step`]), ticks ([`Node::tick`]) and client requests
//! ([`Node::request`]); outputs collect in a [`Ready`] ([`Node::take_ready`]): durable
//! changes, then messages and client replies that may only leave once those changes are
//! durable. No I/O, no clock; the only randomness (election timeouts) comes from a seeded
//! generator, so the simulated cluster in `sim` replays a seed exactly.
//!
//! Every node is acceptor, learner and (potential) leader:
//! - **Phase 1 once per ballot.** A node that hears nothing from a leader for its election
//!   timeout picks a ballot above every ballot it has seen and sends Prepare from its first
//!   slot not known chosen. Acceptors promise (persisting the promise first) and report
//!   their votes from that slot on. With a majority of promises the node leads: per slot it
//!   adopts the value of the highest-ballot vote reported, fills gaps with no-ops, and
//!   re-proposes them all in its own ballot.
//! - **Phase 2 per slot.** The leader gives each request the next slot and sends Accept;
//!   a slot is chosen once a majority (the leader included) accepted it in the ballot.
//!   Acceptors persist the vote before answering. Unanswered Accepts are resent with each
//!   heartbeat, so lost messages delay but do not stall a slot.
//! - **Learning.** Accepts and heartbeats carry the leader's commit point (its first slot
//!   not known chosen). A follower that accepted slot `s` in the leader's current ballot
//!   knows that vote is the chosen value, since a leader proposes one value per slot and
//!   ballot; for any other slot below the commit point it asks for the chosen values
//!   (Fetch), or gets a snapshot if the answering node compacted them. Chosen slots are
//!   applied in order; the log is compacted into a snapshot every `compact_every` slots.
//! - **Leadership ends** when a node sees a higher ballot (a Prepare it promises, or a
//!   Reject of one of its messages). A deposed leader's waiting clients are not told
//!   anything: their requests may still be chosen, and they are answered if applied.
//!
//! **Reads go through the log**: a read is a request in a slot, answered when that slot is
//! applied. A chosen slot orders the read after every operation that completed before it
//! began (their slots were chosen, so they precede any slot the current leader fills), and
//! a deposed leader cannot get a slot chosen, so it cannot answer stale. The alternative —
//! answering from the leader's state after a round of heartbeats confirms a majority still
//! holds its ballot — costs the same round trip, but needs its own bookkeeping (confirm
//! rounds, waiting for the applied point to reach the commit point seen at arrival) and
//! one more place to get wrong. Reads in the log also share the write path's batching,
//! retries and deduplication; the extra fsync per read is the price. The `local-read` bug
//! shows what skipping the confirmation costs.

mod message;

pub use message::{
    Ballot, ClientResult, Durable, Envelope, Message, NodeId, Persist, Ready, Reply, Snapshot,
    Value, Vote,
};

use crate::bugs::Bugs;
use crate::kv::{Command, Kv, Outcome, Request};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};

/// Timing and sizing knobs, in ticks (the host decides how long a tick is).
#[derive(Debug, Clone)]
pub struct Config {
    /// Minimum election timeout; each is drawn from `[election_ticks, 2*election_ticks)`.
    pub election_ticks: u64,
    /// A leader sends heartbeats (and resends unanswered Accepts) this often.
    pub heartbeat_ticks: u64,
    /// Take a snapshot once this many slots were applied since the last one.
    pub compact_every: u64,
    /// Most chosen values in one catch-up message.
    pub max_fetch: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            election_ticks: 20,
            heartbeat_ticks: 4,
            compact_every: 64,
            max_fetch: 64,
        }
    }
}

/// A slot the leader proposed and has not seen chosen yet.
#[derive(Debug, Clone)]
struct Proposal {
    value: Value,
    acks: BTreeSet<NodeId>,
}

/// Where a node stands. A follower's leader is `Node::leader_hint`.
#[derive(Debug, Clone)]
enum Role {
    Follower,
    /// Running phase 1 for `ballot` from `from_slot`; the promises so far.
    Candidate {
        ballot: Ballot,
        from_slot: u64,
        promised: BTreeSet<NodeId>,
        votes: BTreeMap<u64, (Ballot, Value)>,
    },
    /// Phase 1 done for `ballot`; `next_slot` is the next free slot.
    Leader {
        ballot: Ballot,
        next_slot: u64,
        proposals: BTreeMap<u64, Proposal>,
    },
}

/// One Multi-Paxos node. See the module doc.
pub struct Node {
    id: NodeId,
    peers: Vec<NodeId>,
    cfg: Config,
    bugs: Bugs,
    rng: ChaCha8Rng,

    // Acceptor.
    promised: Ballot,
    accepted: BTreeMap<u64, (Ballot, Value)>,
    /// The highest ballot seen anywhere, so the next one this node tries is above it.
    max_seen: Ballot,

    // Learner.
    kv: Kv,
    snapshot: Option<Snapshot>,
    /// Chosen values not compacted yet, applied or not (applied ones answer Fetch).
    chosen: BTreeMap<u64, Value>,
    /// First slot not applied; every slot below it is chosen and applied.
    next_apply: u64,

    // Leadership and timers.
    role: Role,
    leader_hint: Option<NodeId>,
    idle_ticks: u64,
    election_timeout: u64,
    heartbeat_elapsed: u64,
    fetch_wait: u64,

    /// Requests this node must answer when they are applied.
    waiting: BTreeSet<(u64, u64)>,
    ready: Ready,
}

impl Node {
    /// A node `id` among `peers` (the others), restarted from `durable` (default for a new
    /// node). `seed` drives the election timeouts.
    pub fn new(
        id: NodeId,
        peers: Vec<NodeId>,
        cfg: Config,
        bugs: Bugs,
        durable: Durable,
        seed: u64,
    ) -> Self {
        let (kv, next_apply) = match &durable.snapshot {
            Some(s) => (s.kv.clone(), s.slot + 1),
            None => (Kv::default(), 1),
        };
        let mut node = Node {
            id,
            peers,
            cfg,
            bugs,
            rng: ChaCha8Rng::seed_from_u64(seed),
            promised: durable.promised,
            accepted: durable.accepted,
            max_seen: durable.promised,
            kv,
            snapshot: durable.snapshot,
            chosen: BTreeMap::new(),
            next_apply,
            role: Role::Follower,
            leader_hint: None,
            idle_ticks: 0,
            election_timeout: 0,
            heartbeat_elapsed: 0,
            fetch_wait: 0,
            waiting: BTreeSet::new(),
            ready: Ready::default(),
        };
        // Correct code recovers a promise at least as high as any vote it persisted.
        if let Some(b) = node.accepted.values().map(|(b, _)| *b).max() {
            if !node.bugs.forget_promise {
                node.promised = node.promised.max(b);
            }
            node.max_seen = node.max_seen.max(b);
        }
        node.reset_election_timer();
        node
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The ballot this node leads, if it finished phase 1 and saw nothing higher since.
    pub fn leading(&self) -> Option<Ballot> {
        match &self.role {
            Role::Leader { ballot, .. } => Some(*ballot),
            _ => None,
        }
    }

    pub fn promised(&self) -> Ballot {
        self.promised
    }

    /// First slot not applied yet.
    pub fn next_apply(&self) -> u64 {
        self.next_apply
    }

    pub fn kv(&self) -> &Kv {
        &self.kv
    }

    /// The node that leads as far as this one knows: itself once phase 1 is done, else
    /// the last leader it heard from (None while a campaign is on or after a restart).
    pub fn leader(&self) -> Option<NodeId> {
        match self.role {
            Role::Leader { .. } => Some(self.id),
            Role::Candidate { .. } => None,
            Role::Follower => self.leader_hint,
        }
    }

    /// Up to `max` applied slots from `from` on, with their chosen values, in slot order;
    /// slots compacted into the snapshot are not answered (see [`Node::snapshot_slot`]).
    pub fn applied_values(&self, from: u64, max: usize) -> Vec<(u64, &Value)> {
        self.chosen
            .range(from..self.next_apply)
            .take(max)
            .map(|(s, v)| (*s, v))
            .collect()
    }

    /// Slot of the latest snapshot (0: none).
    pub fn snapshot_slot(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, |s| s.slot)
    }

    /// The effects collected since the last call.
    pub fn take_ready(&mut self) -> Ready {
        std::mem::take(&mut self.ready)
    }

    fn quorum(&self) -> usize {
        let cluster = self.peers.len() + 1;
        cluster / 2 + 1
    }

    fn send(&mut self, to: NodeId, msg: Message) {
        self.ready.messages.push(Envelope {
            from: self.id,
            to,
            msg,
        });
    }

    fn broadcast(&mut self, msg: Message) {
        for p in self.peers.clone() {
            self.send(p, msg.clone());
        }
    }

    fn reply(&mut self, client: u64, seq: u64, result: ClientResult) {
        self.ready.replies.push(Reply {
            client,
            seq,
            result,
        });
    }

    fn reset_election_timer(&mut self) {
        self.idle_ticks = 0;
        let t = self.cfg.election_ticks.max(1);
        self.election_timeout = self.rng.random_range(t..2 * t);
    }

    /// Raises the promise to `b`, persisting it (unless `forget-promise`).
    fn promise(&mut self, b: Ballot) {
        if b > self.promised {
            self.promised = b;
            if !self.bugs.forget_promise {
                self.ready.persist.push(Persist::Promise(b));
            }
        }
        self.see(b);
    }

    /// Notes a ballot seen anywhere; a higher one than ours ends our leadership or campaign.
    fn see(&mut self, b: Ballot) {
        self.max_seen = self.max_seen.max(b);
        let mine = match &self.role {
            Role::Follower => return,
            Role::Candidate { ballot, .. } | Role::Leader { ballot, .. } => *ballot,
        };
        if b > mine {
            self.role = Role::Follower;
            self.leader_hint = (b.node != self.id).then_some(b.node);
            self.reset_election_timer();
        }
    }

    /// One timer tick.
    pub fn tick(&mut self) {
        self.fetch_wait = self.fetch_wait.saturating_sub(1);
        if let Role::Leader { .. } = self.role {
            self.heartbeat_elapsed += 1;
            if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks {
                self.heartbeat_elapsed = 0;
                self.heartbeat();
            }
            return;
        }
        self.idle_ticks += 1;
        if self.idle_ticks >= self.election_timeout {
            self.campaign();
        }
    }

    /// Starts phase 1 with a ballot above every one seen. The host may call this to hand
    /// over leadership; the node also does when its election timer runs out.
    pub fn campaign(&mut self) {
        let ballot = Ballot {
            round: self.max_seen.round.max(self.promised.round) + 1,
            node: self.id,
        };
        self.promise(ballot);
        self.leader_hint = None;
        self.reset_election_timer();
        let from_slot = self.next_apply;
        let votes = self
            .accepted
            .range(from_slot..)
            .map(|(s, v)| (*s, v.clone()))
            .collect();
        self.role = Role::Candidate {
            ballot,
            from_slot,
            promised: BTreeSet::from([self.id]),
            votes,
        };
        self.broadcast(Message::Prepare { ballot, from_slot });
        self.maybe_lead();
    }

    /// Handles one message from a peer.
    pub fn step(&mut self, env: Envelope) {
        let from = env.from;
        match env.msg {
            Message::Prepare { ballot, from_slot } => self.on_prepare(from, ballot, from_slot),
            Message::Promise {
                ballot,
                votes,
                snapshot,
            } => self.on_promise(from, ballot, votes, snapshot),
            Message::Accept {
                ballot,
                slot,
                value,
                commit,
            } => self.on_accept(from, ballot, slot, value, commit),
            Message::Accepted { ballot, slot } => self.on_accepted(from, ballot, slot),
            Message::Reject { promised } => {
                self.see(promised);
            }
            Message::Heartbeat { ballot, commit } => {
                if ballot < self.promised {
                    let promised = self.promised;
                    self.send(from, Message::Reject { promised });
                    return;
                }
                self.see(ballot);
                self.heard_from_leader(from);
                self.learn_commit(ballot, commit);
            }
            Message::Fetch { from_slot } => self.on_fetch(from, from_slot),
            Message::Chosen { values, upto } => {
                for (slot, value) in values {
                    self.learn(slot, value);
                }
                if self.next_apply < upto {
                    self.fetch(from);
                }
            }
            Message::InstallSnapshot { snapshot } => self.install_snapshot(snapshot),
        }
    }

    fn heard_from_leader(&mut self, leader: NodeId) {
        if leader != self.id {
            self.leader_hint = Some(leader);
        }
        if !matches!(self.role, Role::Leader { .. }) {
            self.reset_election_timer();
        }
    }

    fn on_prepare(&mut self, from: NodeId, ballot: Ballot, from_slot: u64) {
        if ballot < self.promised {
            let promised = self.promised;
            self.send(from, Message::Reject { promised });
            return;
        }
        self.promise(ballot);
        // A higher candidate is running: give it time rather than competing.
        if !matches!(self.role, Role::Leader { .. }) {
            self.reset_election_timer();
        }
        let votes = self
            .accepted
            .range(from_slot..)
            .map(|(s, (b, v))| Vote {
                slot: *s,
                ballot: *b,
                value: v.clone(),
            })
            .collect();
        let snapshot = self
            .snapshot
            .as_ref()
            .filter(|s| s.slot >= from_slot)
            .cloned();
        self.send(
            from,
            Message::Promise {
                ballot,
                votes,
                snapshot,
            },
        );
    }

    fn on_promise(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        votes: Vec<Vote>,
        snapshot: Option<Snapshot>,
    ) {
        match &self.role {
            Role::Candidate { ballot: b, .. } if *b == ballot => {}
            _ => return,
        }
        if let Some(s) = snapshot {
            self.install_snapshot(s);
        }
        if let Role::Candidate {
            promised,
            votes: known,
            ..
        } = &mut self.role
        {
            promised.insert(from);
            for v in votes {
                let higher = known.get(&v.slot).is_none_or(|(b, _)| v.ballot > *b);
                if higher {
                    known.insert(v.slot, (v.ballot, v.value));
                }
            }
        }
        self.maybe_lead();
    }

    /// Becomes leader once a majority promised: re-proposes, per slot from the first one
    /// not known chosen, the highest-ballot value reported (a no-op where none was).
    fn maybe_lead(&mut self) {
        let (ballot, from_slot, votes) = match &self.role {
            Role::Candidate {
                ballot,
                from_slot,
                promised,
                votes,
            } if promised.len() >= self.quorum() => (*ballot, *from_slot, votes.clone()),
            _ => return,
        };
        // A snapshot installed during phase 1 may have moved the first unknown slot.
        let start = from_slot.max(self.next_apply);
        let mut plan: BTreeMap<u64, Value> = BTreeMap::new();
        if !self.bugs.ignore_accepted {
            let last = votes.keys().next_back().copied().unwrap_or(0);
            for slot in start..=last {
                let value = match (self.chosen.get(&slot), votes.get(&slot)) {
                    (Some(v), _) => v.clone(),
                    (None, Some((_, v))) => v.clone(),
                    (None, None) => Value::Noop,
                };
                plan.insert(slot, value);
            }
        }
        let next_slot = plan.keys().next_back().map_or(start, |s| s + 1);
        self.role = Role::Leader {
            ballot,
            next_slot,
            proposals: BTreeMap::new(),
        };
        self.leader_hint = None;
        self.heartbeat_elapsed = 0;
        for (slot, value) in plan {
            self.propose_at(ballot, slot, value);
        }
        // Tell everyone at once, so followers stop campaigning and learn the commit point.
        let commit = self.next_apply;
        self.broadcast(Message::Heartbeat { ballot, commit });
    }

    /// Phase 2 for one slot: accept locally (persisted), send Accept to the others.
    fn propose_at(&mut self, ballot: Ballot, slot: u64, value: Value) {
        if let Role::Leader { proposals, .. } = &mut self.role {
            proposals.insert(
                slot,
                Proposal {
                    value: value.clone(),
                    acks: BTreeSet::from([self.id]),
                },
            );
        }
        self.accept_locally(ballot, slot, value.clone());
        let commit = self.next_apply;
        self.broadcast(Message::Accept {
            ballot,
            slot,
            value,
            commit,
        });
        self.check_chosen(slot);
    }

    fn accept_locally(&mut self, ballot: Ballot, slot: u64, value: Value) {
        if slot <= self.snapshot_slot() {
            return;
        }
        self.accepted.insert(slot, (ballot, value.clone()));
        self.ready.persist.push(Persist::Accept {
            slot,
            ballot,
            value,
        });
    }

    fn on_accept(&mut self, from: NodeId, ballot: Ballot, slot: u64, value: Value, commit: u64) {
        if ballot < self.promised && !self.bugs.no_ballot_check {
            let promised = self.promised;
            self.send(from, Message::Reject { promised });
            return;
        }
        let current = ballot >= self.promised;
        if current {
            self.promise(ballot);
        }
        self.accept_locally(ballot, slot, value);
        self.send(from, Message::Accepted { ballot, slot });
        if current {
            self.heard_from_leader(from);
            self.learn_commit(ballot, commit);
        }
    }

    fn on_accepted(&mut self, from: NodeId, ballot: Ballot, slot: u64) {
        match &mut self.role {
            Role::Leader {
                ballot: b,
                proposals,
                ..
            } if *b == ballot => {
                if let Some(p) = proposals.get_mut(&slot) {
                    p.acks.insert(from);
                }
            }
            _ => return,
        }
        self.check_chosen(slot);
    }

    /// Learns a proposal as chosen once enough acceptors took it.
    fn check_chosen(&mut self, slot: u64) {
        let needed = if self.bugs.commit_on_first_ack {
            1
        } else {
            self.quorum()
        };
        let value = match &mut self.role {
            Role::Leader { proposals, .. } => match proposals.get(&slot) {
                Some(p) if p.acks.len() >= needed => proposals.remove(&slot).map(|p| p.value),
                _ => None,
            },
            _ => None,
        };
        if let Some(v) = value {
            self.learn(slot, v);
        }
    }

    /// A follower learns from the leader's commit point: its own votes in the leader's
    /// ballot below it are chosen; anything else below it is fetched.
    fn learn_commit(&mut self, ballot: Ballot, commit: u64) {
        while self.next_apply < commit {
            let slot = self.next_apply;
            match self.accepted.get(&slot) {
                Some((b, v)) if *b == ballot => {
                    let v = v.clone();
                    self.learn(slot, v);
                }
                _ => {
                    self.fetch(ballot.node);
                    return;
                }
            }
        }
    }

    fn fetch(&mut self, from: NodeId) {
        if self.fetch_wait > 0 || from == self.id {
            return;
        }
        self.fetch_wait = self.cfg.heartbeat_ticks;
        let from_slot = self.next_apply;
        self.send(from, Message::Fetch { from_slot });
    }

    fn on_fetch(&mut self, from: NodeId, from_slot: u64) {
        if from_slot >= self.next_apply {
            return;
        }
        if from_slot <= self.snapshot_slot() {
            if let Some(snapshot) = self.snapshot.clone() {
                self.send(from, Message::InstallSnapshot { snapshot });
            }
            return;
        }
        let values: Vec<(u64, Value)> = self
            .chosen
            .range(from_slot..self.next_apply)
            .take(self.cfg.max_fetch)
            .map(|(s, v)| (*s, v.clone()))
            .collect();
        let upto = self.next_apply;
        self.send(from, Message::Chosen { values, upto });
    }

    /// Records `slot` as chosen with `value`, and applies every slot now contiguous.
    fn learn(&mut self, slot: u64, value: Value) {
        if slot < self.next_apply || self.chosen.contains_key(&slot) {
            return;
        }
        self.chosen.insert(slot, value);
        while let Some(v) = self.chosen.get(&self.next_apply).cloned() {
            let slot = self.next_apply;
            self.apply(slot, &v);
            self.next_apply += 1;
        }
        if self.next_apply > self.snapshot_slot() + self.cfg.compact_every {
            self.compact();
        }
    }

    fn apply(&mut self, slot: u64, value: &Value) {
        if let Value::Request(req) = value {
            let out = self.kv.apply(req);
            if self.waiting.remove(&(req.client, req.seq)) {
                if let Some(out) = out {
                    self.reply(req.client, req.seq, ClientResult::Ok(out));
                }
            }
        }
        self.ready.applied.push((slot, value.clone()));
    }

    /// Snapshots everything applied and drops the log and votes it covers.
    fn compact(&mut self) {
        let snap = Snapshot {
            slot: self.next_apply - 1,
            kv: self.kv.clone(),
        };
        self.chosen = self.chosen.split_off(&self.next_apply);
        self.accepted = self.accepted.split_off(&self.next_apply);
        self.ready.persist.push(Persist::Snapshot(snap.clone()));
        self.snapshot = Some(snap);
    }

    fn install_snapshot(&mut self, snap: Snapshot) {
        if snap.slot < self.next_apply {
            return;
        }
        self.kv = snap.kv.clone();
        self.next_apply = snap.slot + 1;
        self.chosen = self.chosen.split_off(&self.next_apply);
        self.accepted = self.accepted.split_off(&self.next_apply);
        self.ready.persist.push(Persist::Snapshot(snap.clone()));
        self.snapshot = Some(snap);
        // Requests the snapshot covers will not be applied here one by one.
        let waiting = std::mem::take(&mut self.waiting);
        for (client, seq) in waiting {
            match self.kv.answered(client, seq) {
                Some(Some(out)) => {
                    let out = out.clone();
                    self.reply(client, seq, ClientResult::Ok(out));
                }
                Some(None) => {}
                None => {
                    self.waiting.insert((client, seq));
                }
            }
        }
        // Chosen values learned past the snapshot may now be contiguous.
        while let Some(v) = self.chosen.get(&self.next_apply).cloned() {
            let slot = self.next_apply;
            self.apply(slot, &v);
            self.next_apply += 1;
        }
    }

    /// The leader's heartbeat: the commit point, and every unanswered Accept again.
    fn heartbeat(&mut self) {
        let (ballot, resend) = match &self.role {
            Role::Leader {
                ballot, proposals, ..
            } => {
                let resend: Vec<(u64, Value, BTreeSet<NodeId>)> = proposals
                    .iter()
                    .map(|(s, p)| (*s, p.value.clone(), p.acks.clone()))
                    .collect();
                (*ballot, resend)
            }
            _ => return,
        };
        let commit = self.next_apply;
        self.broadcast(Message::Heartbeat { ballot, commit });
        for (slot, value, acks) in resend {
            for p in self.peers.clone() {
                if !acks.contains(&p) {
                    self.send(
                        p,
                        Message::Accept {
                            ballot,
                            slot,
                            value: value.clone(),
                            commit,
                        },
                    );
                }
            }
        }
    }

    /// A client request: answered when its slot is applied, at once if it already was,
    /// or with NotLeader (and a hint) by a node that does not lead.
    pub fn request(&mut self, req: Request) {
        let (client, seq) = (req.client, req.seq);
        if let Some(done) = self.kv.answered(client, seq) {
            if let Some(out) = done.cloned() {
                self.reply(client, seq, ClientResult::Ok(out));
            }
            return;
        }
        let ballot = match &self.role {
            Role::Leader { ballot, .. } => *ballot,
            _ => {
                let hint = self.leader_hint;
                self.reply(client, seq, ClientResult::NotLeader { hint });
                return;
            }
        };
        if self.bugs.local_read {
            if let Command::Read { key } = &req.cmd {
                let out = Outcome::Value(self.kv.get(key));
                self.reply(client, seq, ClientResult::Ok(out));
                return;
            }
        }
        self.waiting.insert((client, seq));
        let value = Value::Request(req);
        let slot = match &mut self.role {
            Role::Leader {
                next_slot,
                proposals,
                ..
            } => {
                // A retry of a request still in flight waits for the first copy.
                if proposals.values().any(|p| p.value == value) {
                    return;
                }
                let slot = *next_slot;
                *next_slot += 1;
                slot
            }
            _ => return,
        };
        self.propose_at(ballot, slot, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bugs::Bug;

    fn node(id: NodeId, bugs: Bugs) -> Node {
        let peers = (1..=3).filter(|p| *p != id).collect();
        Node::new(id, peers, Config::default(), bugs, Durable::default(), 1)
    }

    fn ballot(round: u64, node: NodeId) -> Ballot {
        Ballot { round, node }
    }

    fn write(v: i64) -> Value {
        Value::Request(Request {
            client: 1,
            seq: 1,
            cmd: Command::Write {
                key: "x".into(),
                value: v,
            },
        })
    }

    fn from(from: NodeId, msg: Message) -> Envelope {
        Envelope { from, to: 2, msg }
    }

    #[test]
    fn ballots_order_by_round_then_node() {
        assert!(ballot(1, 3) < ballot(2, 1));
        assert!(ballot(2, 1) < ballot(2, 2));
        assert!(Ballot::default() < ballot(1, 1));
    }

    #[test]
    fn an_acceptor_answers_only_together_with_the_records_to_persist_first() {
        let mut n = node(2, Bugs::default());
        let b = ballot(1, 1);
        n.step(from(
            1,
            Message::Prepare {
                ballot: b,
                from_slot: 1,
            },
        ));
        let r = n.take_ready();
        assert_eq!(r.persist, vec![Persist::Promise(b)]);
        assert!(matches!(r.messages[0].msg, Message::Promise { .. }));
        let accept = Message::Accept {
            ballot: b,
            slot: 1,
            value: write(5),
            commit: 1,
        };
        n.step(from(1, accept));
        let r = n.take_ready();
        let vote = Persist::Accept {
            slot: 1,
            ballot: b,
            value: write(5),
        };
        assert_eq!(r.persist, vec![vote]);
        assert_eq!(r.messages[0].msg, Message::Accepted { ballot: b, slot: 1 });
        // A restart from those records reports the vote to the next candidate.
        let mut disk = Durable::default();
        for p in [Persist::Promise(b), r.persist[0].clone()] {
            disk.record(&p);
        }
        let peers = vec![1, 3];
        let mut n = Node::new(2, peers, Config::default(), Bugs::default(), disk, 2);
        let b3 = ballot(2, 3);
        n.step(from(
            3,
            Message::Prepare {
                ballot: b3,
                from_slot: 1,
            },
        ));
        let r = n.take_ready();
        let expected = vec![Vote {
            slot: 1,
            ballot: b,
            value: write(5),
        }];
        assert!(matches!(&r.messages[0].msg, Message::Promise { votes, .. } if *votes == expected));
    }

    #[test]
    fn an_acceptor_rejects_ballots_below_its_promise() {
        let mut n = node(2, Bugs::default());
        let (low, high) = (ballot(1, 1), ballot(2, 3));
        n.step(from(
            3,
            Message::Prepare {
                ballot: high,
                from_slot: 1,
            },
        ));
        n.take_ready();
        n.step(from(
            1,
            Message::Prepare {
                ballot: low,
                from_slot: 1,
            },
        ));
        let accept = Message::Accept {
            ballot: low,
            slot: 1,
            value: write(1),
            commit: 1,
        };
        n.step(from(1, accept));
        let r = n.take_ready();
        assert!(r.persist.is_empty());
        let rejected = Message::Reject { promised: high };
        assert!(r.messages.iter().all(|m| m.msg == rejected));
        assert_eq!(r.messages.len(), 2);
    }

    #[test]
    fn forget_promise_bug_persists_no_promise() {
        let mut n = node(2, Bugs::from_list(&[Bug::ForgetPromise]));
        n.step(from(
            1,
            Message::Prepare {
                ballot: ballot(1, 1),
                from_slot: 1,
            },
        ));
        let r = n.take_ready();
        assert!(r.persist.is_empty());
        assert!(matches!(r.messages[0].msg, Message::Promise { .. }));
    }

    #[test]
    fn a_lone_node_leads_and_applies_its_own_requests() {
        let mut n = Node::new(
            1,
            vec![],
            Config::default(),
            Bugs::default(),
            Durable::default(),
            3,
        );
        n.campaign();
        assert_eq!(n.leading(), Some(ballot(1, 1)));
        let cmd = Command::Write {
            key: "x".into(),
            value: 7,
        };
        n.request(Request {
            client: 9,
            seq: 1,
            cmd,
        });
        let r = n.take_ready();
        assert_eq!(r.applied.len(), 1);
        let done = ClientResult::Ok(Outcome::Done);
        assert_eq!(r.replies[0].result, done);
        // The promise and the vote are in the same batch, ahead of the reply.
        assert!(matches!(
            r.persist[..],
            [Persist::Promise(_), Persist::Accept { .. }]
        ));
    }
}
