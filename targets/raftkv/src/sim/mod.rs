//! A simulated cluster for tests: replicas connected by an in-memory message queue, with
//! cut links, message filters, crashes and restarts from an in-memory "disk", per-node
//! wall clocks, and safety checks on everything that happens.
//!
//! Delivery is FIFO per link and instantaneous; time moves only when a test ticks. The
//! checks record (instead of panicking) so a test can assert that a bug *was* caught:
//! two replicas applying different entries at one index, two leaders in one term, a
//! node granting its vote to two candidates in one term.

mod tests;

use crate::bugs::Bugs;
use crate::raft::{self, Envelope, Message, NodeId, Recovered};
use crate::replica::{Replica, ReplicaConfig, Reply, Request};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A test's predicate over messages: true drops the message.
type Filter = Box<dyn FnMut(&Envelope) -> bool>;

struct SimNode {
    replica: Option<Replica>,
    /// What a restart reads back: every persisted change, applied in order.
    disk: Recovered,
    wall_ms: u64,
    restarts: u64,
}

/// See the module doc.
pub struct Sim {
    ids: Vec<NodeId>,
    nodes: BTreeMap<NodeId, SimNode>,
    queue: VecDeque<Envelope>,
    cut: BTreeSet<(NodeId, NodeId)>,
    filter: Option<Filter>,
    replies: BTreeMap<u64, (NodeId, Reply)>,
    next_token: u64,
    /// First (term, node) seen applying each index.
    applied: BTreeMap<u64, (u64, NodeId)>,
    leaders: BTreeMap<u64, BTreeSet<NodeId>>,
    votes: BTreeMap<(u64, NodeId), BTreeSet<NodeId>>,
    pub violations: Vec<String>,
    /// Every node's event lines, as `node: line`, in the order they happened.
    pub events: Vec<String>,
    cfg: raft::Config,
    rcfg: ReplicaConfig,
    bugs: Bugs,
    seed: u64,
}

impl Sim {
    /// `n` nodes n1..nN with default timing.
    pub fn new(n: usize, bugs: Bugs, seed: u64) -> Self {
        Self::with_config(
            n,
            bugs,
            seed,
            raft::Config::default(),
            ReplicaConfig::default(),
        )
    }

    pub fn with_config(
        n: usize,
        bugs: Bugs,
        seed: u64,
        cfg: raft::Config,
        rcfg: ReplicaConfig,
    ) -> Self {
        let ids: Vec<NodeId> = (1..=n).map(|i| format!("n{i}")).collect();
        let mut sim = Sim {
            ids: ids.clone(),
            nodes: BTreeMap::new(),
            queue: VecDeque::new(),
            cut: BTreeSet::new(),
            filter: None,
            replies: BTreeMap::new(),
            next_token: 1,
            applied: BTreeMap::new(),
            leaders: BTreeMap::new(),
            votes: BTreeMap::new(),
            violations: Vec::new(),
            events: Vec::new(),
            cfg,
            rcfg,
            bugs,
            seed,
        };
        for id in ids {
            sim.nodes.insert(
                id.clone(),
                SimNode {
                    replica: None,
                    disk: Recovered::default(),
                    wall_ms: 1_000_000,
                    restarts: 0,
                },
            );
            sim.restart(&id);
        }
        sim
    }

    /// The live replica `id`. Panics (test code) if it is crashed.
    pub fn node(&self, id: &str) -> &Replica {
        self.nodes[id].replica.as_ref().expect("node is down")
    }

    /// Forgets everything not on the node's disk.
    pub fn crash(&mut self, id: &str) {
        if let Some(n) = self.nodes.get_mut(id) {
            n.replica = None;
        }
    }

    /// Starts the node again from its disk.
    pub fn restart(&mut self, id: &str) {
        let peers: Vec<NodeId> = self.ids.iter().filter(|p| *p != id).cloned().collect();
        let (cfg, rcfg, bugs, seed) = (self.cfg.clone(), self.rcfg.clone(), self.bugs, self.seed);
        let node = self.nodes.get_mut(id).expect("unknown node");
        node.restarts += 1;
        let idx: u64 = id[1..].parse().unwrap_or(0);
        let r = Replica::new(
            id.to_string(),
            peers,
            cfg,
            rcfg,
            bugs,
            node.disk.clone(),
            seed.wrapping_mul(1000)
                .wrapping_add(idx * 37 + node.restarts),
        );
        node.replica = Some(r);
        self.process(id);
    }

    /// Drops every message between `id` and the rest, both ways.
    pub fn isolate(&mut self, id: &str) {
        for p in self.ids.clone() {
            if p != id {
                self.cut.insert((id.to_string(), p.clone()));
                self.cut.insert((p, id.to_string()));
            }
        }
    }

    /// Drops messages between `a` and `b`, both ways.
    pub fn cut_link(&mut self, a: &str, b: &str) {
        self.cut.insert((a.to_string(), b.to_string()));
        self.cut.insert((b.to_string(), a.to_string()));
    }

    /// Restores every link (filters stay).
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

    /// Moves a node's wall clock (not its monotonic ticks), like libfaketime does.
    pub fn skew_wall(&mut self, id: &str, delta_ms: i64) {
        if let Some(n) = self.nodes.get_mut(id) {
            n.wall_ms = n.wall_ms.saturating_add_signed(delta_ms);
        }
    }

    /// A client request to `id`; returns the token its reply will carry.
    pub fn request(&mut self, id: &str, req: Request) -> u64 {
        let token = self.next_token;
        self.next_token += 1;
        if let Some(r) = self.nodes.get_mut(id).and_then(|n| n.replica.as_mut()) {
            r.request(token, req);
            self.process(id);
        }
        self.run();
        token
    }

    pub fn write(&mut self, id: &str, key: &str, value: i64) -> u64 {
        self.request(
            id,
            Request::Write {
                key: key.into(),
                value,
            },
        )
    }

    pub fn read(&mut self, id: &str, key: &str) -> u64 {
        self.request(id, Request::Read { key: key.into() })
    }

    /// The reply to `token`, if one came.
    pub fn reply(&self, token: u64) -> Option<&Reply> {
        self.replies.get(&token).map(|(_, r)| r)
    }

    /// Every live node ticks once, then messages flow until quiet.
    pub fn tick(&mut self) {
        for id in self.ids.clone() {
            let tick_ms = self.cfg.tick_ms;
            let Some(n) = self.nodes.get_mut(&id) else {
                continue;
            };
            n.wall_ms += tick_ms;
            let wall = n.wall_ms;
            if let Some(r) = n.replica.as_mut() {
                r.tick(wall);
                self.process(&id);
            }
        }
        self.run();
    }

    pub fn ticks(&mut self, n: usize) {
        for _ in 0..n {
            self.tick();
        }
    }

    /// The live leader with the highest term, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter_map(|(id, n)| n.replica.as_ref().map(|r| (id, r)))
            .filter(|(_, r)| r.raft().is_leader())
            .max_by_key(|(_, r)| r.raft().term())
            .map(|(id, _)| id.clone())
    }

    /// Ticks until some node other than those in `not` leads, at most `max_ticks`.
    pub fn wait_for_leader_except(&mut self, not: &[&str], max_ticks: usize) -> Option<NodeId> {
        for _ in 0..max_ticks {
            let found = self.nodes.iter().find(|(id, n)| {
                !not.contains(&id.as_str())
                    && n.replica.as_ref().is_some_and(|r| r.raft().is_leader())
            });
            if let Some((id, _)) = found {
                return Some(id.clone());
            }
            self.tick();
        }
        None
    }

    pub fn wait_for_leader(&mut self, max_ticks: usize) -> Option<NodeId> {
        self.wait_for_leader_except(&[], max_ticks)
    }

    /// Lets an election timeout pass on every live non-leader except `except`, with
    /// their own (pre-vote) messages lost: they forget the leader, terms unchanged.
    fn lose_leader(&mut self, except: &str) {
        let saved = self.cut.clone();
        let ids: Vec<NodeId> = self.ids.iter().filter(|i| *i != except).cloned().collect();
        for id in &ids {
            for p in &self.ids {
                self.cut.insert((id.clone(), p.clone()));
            }
        }
        let n = 2 * self.cfg.election_ticks as usize + 1;
        for id in ids {
            let Some(node) = self.nodes.get_mut(&id) else {
                continue;
            };
            let Some(r) = node.replica.as_mut() else {
                continue;
            };
            if r.raft().is_leader() {
                continue;
            }
            for _ in 0..n {
                node.wall_ms += self.cfg.tick_ms;
                if let Some(r) = node.replica.as_mut() {
                    r.tick(node.wall_ms);
                }
            }
            self.process(&id);
        }
        self.run();
        self.cut = saved;
    }

    /// Makes `id` campaign, after the others' election timeouts passed without news
    /// from a leader, until it leads; at most 5 tries.
    pub fn elect(&mut self, id: &str) -> bool {
        self.lose_leader(id);
        for _ in 0..5 {
            if let Some(r) = self.nodes.get_mut(id).and_then(|n| n.replica.as_mut()) {
                r.raft_mut().campaign();
                self.process(id);
                self.run();
            }
            if self.nodes[id]
                .replica
                .as_ref()
                .is_some_and(|r| r.raft().is_leader())
            {
                return true;
            }
        }
        false
    }

    /// Delivers queued messages until none are left (bounded, to catch livelock).
    pub fn run(&mut self) {
        for _ in 0..1_000_000 {
            let Some(env) = self.queue.pop_front() else {
                return;
            };
            // The filter sees every message sent, even over a cut link (tests count them).
            if let Some(f) = self.filter.as_mut() {
                if f(&env) {
                    continue;
                }
            }
            if self.cut.contains(&(env.from.clone(), env.to.clone())) {
                continue;
            }
            if std::env::var_os("SIM_TRACE").is_some_and(|v| v == "2") {
                eprintln!("  {} -> {} t{} {:?}", env.from, env.to, env.term, env.msg);
            }
            let to = env.to.clone();
            if let Some(r) = self.nodes.get_mut(&to).and_then(|n| n.replica.as_mut()) {
                r.step(env);
                self.process(&to);
            }
        }
        panic!("messages never stopped flowing");
    }

    /// Carries out one node's ready batch exactly as the server does: persist, send,
    /// answer — and checks safety on the way.
    fn process(&mut self, id: &str) {
        // Persisting can let a leader commit (it now counts itself), which makes more work.
        for _ in 0..8 {
            if !self.process_once(id) {
                return;
            }
        }
    }

    /// One ready batch; false when there was nothing to do.
    fn process_once(&mut self, id: &str) -> bool {
        let Some(node) = self.nodes.get_mut(id) else {
            return false;
        };
        let Some(r) = node.replica.as_mut() else {
            return false;
        };
        let ready = r.ready();
        if ready.is_empty() {
            return false;
        }
        self.events
            .extend(ready.events.iter().map(|ev| format!("{id}: {ev}")));
        if std::env::var_os("SIM_TRACE").is_some() {
            for ev in &ready.events {
                eprintln!("{id}: {ev}");
            }
            for (t, rep) in &ready.replies {
                eprintln!("{id}: reply {t} {rep:?}");
            }
        }
        let (term, is_leader) = (r.raft().term(), r.raft().is_leader());
        for p in &ready.persist {
            node.disk.apply(p);
        }
        r.persisted(ready.last_index, ready.log_epoch);
        for m in ready.messages {
            if let Message::VoteResp { granted: true } = m.msg {
                let set = self.votes.entry((m.term, m.from.clone())).or_default();
                set.insert(m.to.clone());
                if set.len() > 1 {
                    self.violations
                        .push(format!("{} voted for {set:?} in term {}", m.from, m.term));
                }
            }
            self.queue.push_back(m);
        }
        for (token, reply) in ready.replies {
            self.replies.insert(token, (id.to_string(), reply));
        }
        for (index, t) in ready.applied {
            match self.applied.get(&index) {
                Some((t0, n0)) if *t0 != t => self.violations.push(format!(
                    "index {index}: {n0} applied the entry of term {t0}, {id} the one of term {t}"
                )),
                Some(_) => {}
                None => {
                    self.applied.insert(index, (t, id.to_string()));
                }
            }
        }
        if is_leader {
            let set = self.leaders.entry(term).or_default();
            set.insert(id.to_string());
            if set.len() > 1 {
                self.violations
                    .push(format!("two leaders in term {term}: {set:?}"));
            }
        }
        true
    }
}
