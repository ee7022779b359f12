//! A simulated cluster for tests: nodes joined by a seeded, unreliable in-memory network,
//! crashes that keep only what was persisted, clients with retries, and safety checks.
//!
//! Time is a tick counter. Each message is delivered after a random delay (so links
//! reorder), may be dropped or duplicated, and is lost if its link is cut or its receiver
//! is down at delivery. A node's [`Ready`] is carried out in the order its contract
//! demands: persisted changes first go to the node's simulated disk, then messages and
//! replies leave; a crash between two inputs keeps exactly that disk.
//!
//! The checks record (instead of panicking) so a test can assert a bug *was* caught:
//! - **chosen**: from every persisted vote, a value is chosen for a slot once a majority
//!   of acceptors voted for it in one ballot; two different chosen values for one slot
//!   are a violation (whatever any node believes);
//! - **applied**: every node must apply the same value at each slot;
//! - **clients**: [`Sim::check_linearizable`] checks the client history per key.

mod linear;
mod tests;

use crate::bugs::Bugs;
use crate::kv::{Command, Outcome, Request};
use crate::paxos::{
    Ballot, ClientResult, Config, Durable, Envelope, Message, Node, NodeId, Persist, Value,
};
use linear::Op;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};

/// How unreliable the network is.
#[derive(Debug, Clone)]
pub struct Net {
    /// Delivery delay, uniform in `[min_delay, max_delay]` ticks.
    pub min_delay: u64,
    pub max_delay: u64,
    /// Chance that a message is lost, and that it is delivered twice.
    pub drop: f64,
    pub dup: f64,
}

impl Net {
    /// Every message arrives one tick later, in order.
    pub fn reliable() -> Self {
        Net {
            min_delay: 1,
            max_delay: 1,
            drop: 0.0,
            dup: 0.0,
        }
    }

    /// Reordering, loss and duplication.
    pub fn lossy() -> Self {
        Net {
            min_delay: 1,
            max_delay: 6,
            drop: 0.05,
            dup: 0.03,
        }
    }
}

/// A message's kind, for [`Sim::delivered`].
fn kind(m: &Message) -> &'static str {
    match m {
        Message::Prepare { .. } => "prepare",
        Message::Promise { .. } => "promise",
        Message::Accept { .. } => "accept",
        Message::Accepted { .. } => "accepted",
        Message::Reject { .. } => "reject",
        Message::Heartbeat { .. } => "heartbeat",
        Message::Fetch { .. } => "fetch",
        Message::Chosen { .. } => "chosen",
        Message::InstallSnapshot { .. } => "install_snapshot",
    }
}

/// A test's predicate over messages: true drops the message.
type Filter = Box<dyn FnMut(&Envelope) -> bool>;

/// A client: one request at a time, retried (same sequence number) until answered.
struct Client {
    id: u64,
    seq: u64,
    /// The history index of the request in flight, where it went, and when.
    pending: Option<(usize, NodeId, u64)>,
    target: NodeId,
    /// Scripted clients send one request and never retry.
    retry: bool,
}

/// See the module doc.
pub struct Sim {
    n: u64,
    cfg: Config,
    bugs: Bugs,
    seed: u64,
    rng: ChaCha8Rng,
    pub now: u64,
    nodes: BTreeMap<NodeId, Option<Node>>,
    disks: BTreeMap<NodeId, Durable>,
    restarts: u64,
    /// Messages in flight by (delivery tick, random tie-break).
    in_flight: BTreeMap<(u64, u64), Envelope>,
    pub net: Net,
    cut: BTreeSet<(NodeId, NodeId)>,
    filter: Option<Filter>,
    clients: BTreeMap<u64, Client>,
    /// Ticks a client waits for an answer before retrying elsewhere.
    pub client_timeout: u64,
    history: Vec<Op>,
    events: u64,
    /// Acceptors that persisted a vote, per (slot, ballot), and the value.
    votes: BTreeMap<(u64, Ballot), (Value, BTreeSet<NodeId>)>,
    chosen: BTreeMap<u64, Value>,
    applied: BTreeMap<u64, (NodeId, Value)>,
    pub violations: Vec<String>,
    /// Messages delivered, by kind, and every ballot that finished phase 1: evidence that
    /// a schedule exercised what a test claims.
    pub delivered: BTreeMap<&'static str, u64>,
    pub led: BTreeSet<Ballot>,
}

impl Sim {
    /// `n` nodes 1..=n on a reliable network.
    pub fn new(n: u64, bugs: Bugs, seed: u64) -> Self {
        Self::with(n, bugs, seed, Config::default(), Net::reliable())
    }

    pub fn with(n: u64, bugs: Bugs, seed: u64, cfg: Config, net: Net) -> Self {
        let mut sim = Sim {
            n,
            cfg,
            bugs,
            seed,
            rng: ChaCha8Rng::seed_from_u64(seed),
            now: 0,
            nodes: BTreeMap::new(),
            disks: BTreeMap::new(),
            restarts: 0,
            in_flight: BTreeMap::new(),
            net,
            cut: BTreeSet::new(),
            filter: None,
            clients: BTreeMap::new(),
            client_timeout: 0,
            history: Vec::new(),
            events: 0,
            votes: BTreeMap::new(),
            chosen: BTreeMap::new(),
            applied: BTreeMap::new(),
            violations: Vec::new(),
            delivered: BTreeMap::new(),
            led: BTreeSet::new(),
        };
        sim.client_timeout = 3 * sim.cfg.election_ticks;
        for id in 1..=n {
            sim.disks.insert(id, Durable::default());
            sim.nodes.insert(id, None);
            sim.restart(id);
        }
        sim
    }

    /// Number of nodes.
    pub fn size(&self) -> u64 {
        self.n
    }

    /// The live node `id`. Panics (test code) if it is down.
    pub fn node(&self, id: NodeId) -> &Node {
        self.nodes[&id].as_ref().expect("node is down")
    }

    pub fn is_up(&self, id: NodeId) -> bool {
        self.nodes[&id].is_some()
    }

    /// Forgets everything not on the node's disk.
    pub fn crash(&mut self, id: NodeId) {
        self.nodes.insert(id, None);
    }

    /// Starts the node again from its disk.
    pub fn restart(&mut self, id: NodeId) {
        self.restarts += 1;
        let peers = (1..=self.n).filter(|p| *p != id).collect();
        let seed = self.seed.wrapping_mul(1_000_003) ^ (id << 32) ^ self.restarts;
        let node = Node::new(
            id,
            peers,
            self.cfg.clone(),
            self.bugs,
            self.disks[&id].clone(),
            seed,
        );
        self.nodes.insert(id, Some(node));
    }

    /// Drops every message between `id` and the others, both ways.
    pub fn isolate(&mut self, id: NodeId) {
        for p in 1..=self.n {
            if p != id {
                self.cut_link(id, p);
            }
        }
    }

    /// Drops messages between `a` and `b`, both ways.
    pub fn cut_link(&mut self, a: NodeId, b: NodeId) {
        self.cut.insert((a, b));
        self.cut.insert((b, a));
    }

    /// Restores every link (a filter stays).
    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Drops every message for which `f` returns true, until cleared.
    pub fn set_filter(&mut self, f: impl FnMut(&Envelope) -> bool + 'static) {
        self.filter = Some(Box::new(f));
    }

    pub fn clear_filter(&mut self) {
        self.filter = None;
    }

    /// Runs `f` on the live node `id`, then carries out its effects.
    fn with_node(&mut self, id: NodeId, f: impl FnOnce(&mut Node)) {
        let Some(Some(node)) = self.nodes.get_mut(&id) else {
            return;
        };
        f(node);
        if let Some(b) = node.leading() {
            self.led.insert(b);
        }
        let ready = node.take_ready();
        // Durable first: this is the fsync that must finish before anything is sent.
        for p in &ready.persist {
            self.disks.get_mut(&id).expect("known node").record(p);
            if let Persist::Accept {
                slot,
                ballot,
                value,
            } = p
            {
                self.record_vote(id, *slot, *ballot, value);
            }
        }
        for (slot, value) in ready.applied {
            match self.applied.get(&slot) {
                Some((first, v)) if *v != value => self.violations.push(format!(
                    "slot {slot}: n{id} applied {value:?}, n{first} applied {v:?}"
                )),
                Some(_) => {}
                None => {
                    self.applied.insert(slot, (id, value));
                }
            }
        }
        for env in ready.messages {
            self.send(env);
        }
        for r in ready.replies {
            self.client_reply(r.client, r.seq, r.result);
        }
    }

    fn record_vote(&mut self, id: NodeId, slot: u64, ballot: Ballot, value: &Value) {
        let quorum = (self.n / 2 + 1) as usize;
        let entry = self
            .votes
            .entry((slot, ballot))
            .or_insert_with(|| (value.clone(), BTreeSet::new()));
        if entry.0 != *value {
            self.violations.push(format!(
                "slot {slot}: two values proposed in ballot {ballot:?}"
            ));
            return;
        }
        entry.1.insert(id);
        if entry.1.len() < quorum {
            return;
        }
        match self.chosen.get(&slot) {
            Some(v) if v != value => self.violations.push(format!(
                "slot {slot}: {value:?} chosen in ballot {ballot:?}, but {v:?} was chosen before"
            )),
            Some(_) => {}
            None => {
                self.chosen.insert(slot, value.clone());
            }
        }
    }

    fn send(&mut self, env: Envelope) {
        if self.rng.random_bool(self.net.drop) {
            return;
        }
        let copies = if self.rng.random_bool(self.net.dup) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = self
                .rng
                .random_range(self.net.min_delay..=self.net.max_delay);
            let key = (self.now + delay, self.rng.random());
            self.in_flight.insert(key, env.clone());
        }
    }

    /// Forces node `id` to start phase 1 now.
    pub fn campaign(&mut self, id: NodeId) {
        self.with_node(id, Node::campaign);
    }

    /// One tick: due messages are delivered, then every live node and client ticks.
    pub fn tick(&mut self) {
        self.now += 1;
        while let Some(entry) = self.in_flight.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            let env = entry.remove();
            if self.cut.contains(&(env.from, env.to)) {
                continue;
            }
            if let Some(f) = self.filter.as_mut() {
                if f(&env) {
                    continue;
                }
            }
            let to = env.to;
            if self.is_up(to) {
                *self.delivered.entry(kind(&env.msg)).or_default() += 1;
            }
            self.with_node(to, |n| n.step(env));
        }
        for id in 1..=self.n {
            self.with_node(id, Node::tick);
        }
        self.tick_clients();
    }

    pub fn run(&mut self, ticks: u64) {
        for _ in 0..ticks {
            self.tick();
        }
    }

    /// The live leader with the highest ballot, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .values()
            .flatten()
            .filter_map(|n| n.leading().map(|b| (b, n.id())))
            .max()
            .map(|(_, id)| id)
    }

    /// Ticks until some node not in `not` leads (at most `max` ticks).
    pub fn wait_for_leader_except(&mut self, not: &[NodeId], max: u64) -> Option<NodeId> {
        for _ in 0..max {
            let found = self
                .nodes
                .values()
                .flatten()
                .find(|n| n.leading().is_some() && !not.contains(&n.id()));
            if let Some(n) = found {
                return Some(n.id());
            }
            self.tick();
        }
        None
    }

    pub fn wait_for_leader(&mut self, max: u64) -> Option<NodeId> {
        self.wait_for_leader_except(&[], max)
    }

    fn event(&mut self) -> u64 {
        self.events += 1;
        self.events
    }

    /// Adds a client; `retry` ones resend on timeout and follow NotLeader hints.
    fn add_client(&mut self, target: NodeId, retry: bool) -> u64 {
        let id = self.clients.len() as u64 + 1;
        self.clients.insert(
            id,
            Client {
                id,
                seq: 0,
                pending: None,
                target,
                retry,
            },
        );
        id
    }

    /// Sends `cmd` from client `client` (which must be idle); returns the history index.
    fn invoke(&mut self, client: u64, cmd: Command) -> usize {
        let invoke = self.event();
        let c = self.clients.get_mut(&client).expect("known client");
        c.seq += 1;
        let (seq, target) = (c.seq, c.target);
        let idx = self.history.len();
        c.pending = Some((idx, target, self.now));
        self.history.push(Op {
            client,
            cmd: cmd.clone(),
            invoke,
            complete: None,
        });
        self.with_node(target, |n| n.request(Request { client, seq, cmd }));
        idx
    }

    /// A one-shot request from a fresh client to node `to`; returns its history index.
    pub fn request(&mut self, to: NodeId, cmd: Command) -> usize {
        let c = self.add_client(to, false);
        self.invoke(c, cmd)
    }

    pub fn write(&mut self, to: NodeId, key: &str, value: i64) -> usize {
        let key = key.into();
        self.request(to, Command::Write { key, value })
    }

    pub fn read(&mut self, to: NodeId, key: &str) -> usize {
        let key = key.into();
        self.request(to, Command::Read { key })
    }

    /// The answer to history entry `op`, if one came.
    pub fn outcome(&self, op: usize) -> Option<&Outcome> {
        self.history[op].complete.as_ref().map(|c| &c.1)
    }

    fn client_reply(&mut self, client: u64, seq: u64, result: ClientResult) {
        let Some(c) = self.clients.get_mut(&client) else {
            return;
        };
        let Some((idx, _, _)) = c.pending else {
            return;
        };
        if seq != c.seq {
            return;
        }
        match result {
            ClientResult::Ok(out) => {
                c.pending = None;
                let at = self.event();
                self.history[idx].complete = Some((at, out));
            }
            ClientResult::NotLeader { hint } if c.retry => {
                // Try the hint (or the next node) at the next tick.
                let next = hint.unwrap_or(c.target % self.n + 1);
                c.target = next;
                c.pending = Some((idx, next, 0));
            }
            ClientResult::NotLeader { .. } => {}
        }
    }

    /// Retrying clients resend requests that timed out (or were redirected).
    fn tick_clients(&mut self) {
        let mut resend = Vec::new();
        for c in self.clients.values_mut() {
            let Some((idx, to, sent)) = c.pending else {
                continue;
            };
            if !c.retry || self.now < sent + self.client_timeout && sent != 0 {
                continue;
            }
            let to = if sent == 0 { to } else { to % self.n + 1 };
            c.target = to;
            c.pending = Some((idx, to, self.now));
            resend.push((c.id, c.seq, to, self.history[idx].cmd.clone()));
        }
        for (client, seq, to, cmd) in resend {
            self.with_node(to, |n| n.request(Request { client, seq, cmd }));
        }
    }

    /// Adds `k` retrying clients for [`Sim::workload_tick`].
    pub fn add_workload_clients(&mut self, k: u64) {
        for i in 0..k {
            self.add_client(i % self.n + 1, true);
        }
    }

    /// Idle retrying clients start a new random operation with probability `p`: reads,
    /// writes of unique values, and cas from a value written before, on keys x and y.
    pub fn workload_tick(&mut self, p: f64) {
        let idle: Vec<u64> = self
            .clients
            .values()
            .filter(|c| c.retry && c.pending.is_none())
            .map(|c| c.id)
            .collect();
        for client in idle {
            if !self.rng.random_bool(p) {
                continue;
            }
            let key = if self.rng.random_bool(0.5) { "x" } else { "y" }.to_string();
            let fresh = (client * 1_000_000 + self.clients[&client].seq + 1) as i64;
            let cmd = match self.rng.random_range(0..10) {
                0..4 => Command::Read { key },
                4..8 => Command::Write { key, value: fresh },
                _ => {
                    let written: Vec<i64> = self
                        .history
                        .iter()
                        .filter_map(|o| match &o.cmd {
                            Command::Write { key: k, value } if *k == key => Some(*value),
                            _ => None,
                        })
                        .collect();
                    let from = if written.is_empty() {
                        0
                    } else {
                        written[self.rng.random_range(0..written.len())]
                    };
                    Command::Cas {
                        key,
                        from,
                        to: fresh,
                    }
                }
            };
            self.invoke(client, cmd);
        }
    }

    /// Retrying clients with a request not answered yet.
    pub fn clients_waiting(&self) -> usize {
        self.clients
            .values()
            .filter(|c| c.retry && c.pending.is_some())
            .count()
    }

    /// Number of client operations so far, and how many were answered.
    pub fn ops(&self) -> (usize, usize) {
        let done = self.history.iter().filter(|o| o.complete.is_some()).count();
        (self.history.len(), done)
    }

    /// The client history's linearizability verdict (see `linear`).
    pub fn check_linearizable(&self) -> Result<(), String> {
        linear::check(&self.history)
    }

    /// Slots some acceptor majority chose, per the persisted votes.
    pub fn chosen_slots(&self) -> usize {
        self.chosen.len()
    }
}
