//! A replica: the Raft core plus the key-value state machine plus the client requests
//! waiting on them — still deterministic, still free of I/O.
//!
//! It owns what a client's request becomes: a proposal whose answer waits for the entry
//! to be applied, a ReadIndex read waiting for its heartbeat round and then for the state
//! machine to catch up, or an immediate "not leader". It decides when to snapshot, and it
//! holds the client-visible halves of the bug switches (`stale-read`, `lease-read`,
//! `ack-before-commit`). The async server (`server`) only moves bytes to and from it.

use crate::bugs::Bugs;
use crate::raft::{self, Apply, Envelope, NodeId, Persist, RaftNode, Recovered};
use nodeshell::kv::{Command, Kv, Outcome};
use std::collections::{BTreeMap, HashMap};

/// The client protocol's requests and answers are the shell's (see `nodeshell::client`).
pub use nodeshell::client::{LogEntry, LogPage, Reply, Request, Status, MAX_LOG_PAGE};

/// Replica-level knobs.
#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    /// Take a snapshot once this many entries were applied since the last one.
    pub snapshot_threshold: u64,
    /// A request still unanswered after this many ticks is answered "unknown" (writes) so
    /// that no client waits forever and no pending map grows without bound.
    pub request_timeout_ticks: u64,
    /// Most requests waiting at once; beyond it new ones fail "overloaded" (not applied).
    pub max_pending: usize,
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        ReplicaConfig {
            snapshot_threshold: 10_000,
            request_timeout_ticks: 500,
            max_pending: 100_000,
        }
    }
}

/// The effects of a batch of inputs, in the order the host must carry them out:
/// persist (one fsync), send, answer.
#[derive(Debug, Default)]
pub struct ReplicaReady {
    pub persist: Vec<Persist>,
    pub messages: Vec<Envelope>,
    pub replies: Vec<(u64, Reply)>,
    pub events: Vec<String>,
    /// (index, term) of every entry applied in this batch; the simulation checks that
    /// all replicas apply the same entry at each index.
    pub applied: Vec<(u64, u64)>,
    /// See [`raft::Ready::send_before_persist`].
    pub send_before_persist: bool,
    /// Report to [`Replica::persisted`] once `persist` is durable.
    pub last_index: u64,
    pub log_epoch: u64,
}

impl ReplicaReady {
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.persist.is_empty()
            && self.messages.is_empty()
            && self.replies.is_empty()
            && self.events.is_empty()
            && self.applied.is_empty()
    }
}

#[derive(Debug)]
struct PendingWrite {
    term: u64,
    token: u64,
    deadline: u64,
}

#[derive(Debug)]
struct PendingRead {
    key: String,
    deadline: u64,
}

#[derive(Debug)]
struct ConfirmedRead {
    index: u64,
    token: u64,
    key: String,
    deadline: u64,
}

/// See the module doc.
pub struct Replica {
    raft: RaftNode,
    kv: Kv,
    bugs: Bugs,
    cfg: ReplicaConfig,
    ticks: u64,
    /// Proposals by log index, answered when that index is applied — also after we
    /// stopped leading, since the entry may still be committed by a later leader.
    writes: BTreeMap<u64, PendingWrite>,
    /// Reads by token, waiting for their ReadIndex round.
    reads: HashMap<u64, PendingRead>,
    /// Reads confirmed by a round, waiting for the state machine to reach their index.
    confirmed: Vec<ConfirmedRead>,
    replies: Vec<(u64, Reply)>,
    events: Vec<String>,
}

impl Replica {
    /// A replica recovering `recovered` from its data dir.
    pub fn new(
        id: NodeId,
        peers: Vec<NodeId>,
        raft_cfg: raft::Config,
        cfg: ReplicaConfig,
        bugs: Bugs,
        recovered: Recovered,
        seed: u64,
    ) -> Self {
        let kv = recovered
            .snapshot
            .as_ref()
            .map(|s| Kv::from_data(s.data.clone()))
            .unwrap_or_default();
        let raft = RaftNode::new(id, peers, raft_cfg, bugs, recovered, seed);
        Replica {
            raft,
            kv,
            bugs,
            cfg,
            ticks: 0,
            writes: BTreeMap::new(),
            reads: HashMap::new(),
            confirmed: Vec::new(),
            replies: Vec::new(),
            events: Vec::new(),
        }
    }

    /// The Raft core, for status and tests.
    pub fn raft(&self) -> &RaftNode {
        &self.raft
    }

    /// Mutable access to the core, for tests that force an election.
    pub fn raft_mut(&mut self) -> &mut RaftNode {
        &mut self.raft
    }

    /// The state machine, for tests.
    pub fn kv(&self) -> &Kv {
        &self.kv
    }

    /// One tick; `wall_ms` is the wall clock now.
    pub fn tick(&mut self, wall_ms: u64) {
        self.ticks += 1;
        self.raft.tick(wall_ms);
        self.expire();
    }

    /// A message from a peer.
    pub fn step(&mut self, env: Envelope) {
        self.raft.step(env);
    }

    fn pending(&self) -> usize {
        self.writes.len() + self.reads.len() + self.confirmed.len()
    }

    /// A client request; its answer comes out of a later [`Replica::ready`] under `token`.
    pub fn request(&mut self, token: u64, req: Request) {
        let deadline = self.ticks + self.cfg.request_timeout_ticks;
        let queued = !matches!(req, Request::Status | Request::Log { .. });
        if queued && self.pending() >= self.cfg.max_pending {
            self.replies.push((
                token,
                Reply::Fail("overloaded: too many pending requests".into()),
            ));
            return;
        }
        match req {
            Request::Status => {
                let r = &self.raft;
                let status = Status {
                    node: r.id().to_string(),
                    leader: r.is_leader(),
                    leader_id: r.leader().cloned(),
                    term: r.term(),
                    commit_index: r.commit_index(),
                    applied_index: r.applied_index(),
                    peers: BTreeMap::new(),
                };
                self.replies.push((token, Reply::Status(status)));
            }
            Request::Log { from, max } => {
                let log = self.raft.log();
                let first = log.snap_index() + 1;
                let commit = self.raft.commit_index();
                let start = from.max(first);
                let room = commit.saturating_add(1).saturating_sub(start);
                let n = max.min(MAX_LOG_PAGE).min(room) as usize;
                let entries = log
                    .slice(start, n)
                    .into_iter()
                    .map(|e| LogEntry {
                        index: e.index,
                        term: e.term,
                        op: e.cmd.as_ref().map_or_else(|| "noop".into(), Command::text),
                    })
                    .collect();
                let page = LogPage {
                    first,
                    commit_index: commit,
                    entries,
                };
                self.replies.push((token, Reply::Log(page)));
            }
            Request::LocalRead { key } => {
                // Serializable: this node's applied state, whoever leads.
                self.replies.push((token, Reply::Value(self.kv.get(&key))));
            }
            Request::Read { key } => {
                if !self.raft.is_leader() {
                    let hint = self.raft.leader().cloned();
                    self.replies.push((token, Reply::NotLeader(hint)));
                } else if self.bugs.stale_read {
                    // The bug: "I am leader, so my state is the latest" — unconfirmed.
                    self.replies.push((token, Reply::Value(self.kv.get(&key))));
                } else if let Some(index) = self.raft.lease_read_index() {
                    self.confirmed.push(ConfirmedRead {
                        index,
                        token,
                        key,
                        deadline,
                    });
                } else {
                    match self.raft.read_index(token) {
                        Ok(()) => {
                            self.reads.insert(token, PendingRead { key, deadline });
                        }
                        Err(hint) => self.replies.push((token, Reply::NotLeader(hint))),
                    }
                }
            }
            Request::Write { key, value } => {
                let is_write = true;
                self.propose(token, Command::Write { key, value }, is_write, deadline)
            }
            Request::Cas { key, from, to } => {
                self.propose(token, Command::Cas { key, from, to }, false, deadline)
            }
        }
    }

    fn propose(&mut self, token: u64, cmd: Command, is_write: bool, deadline: u64) {
        match self.raft.propose(cmd) {
            Err(hint) => self.replies.push((token, Reply::NotLeader(hint))),
            Ok(_) if is_write && self.bugs.ack_before_commit => {
                // The bug: in our own (fsynced) log is not the same as committed.
                self.replies.push((token, Reply::Done));
            }
            Ok((index, term)) => {
                let replaced = self.writes.insert(
                    index,
                    PendingWrite {
                        term,
                        token,
                        deadline,
                    },
                );
                // A proposal of an earlier term of ours whose index we now reuse was cut
                // from our log when we followed another leader.
                if let Some(old) = replaced {
                    self.replies.push((
                        old.token,
                        Reply::Unknown("another entry was proposed in its place".into()),
                    ));
                }
            }
        }
    }

    /// The host finished persisting a batch; `index` and `epoch` are its `last_index`
    /// and `log_epoch`.
    pub fn persisted(&mut self, index: u64, epoch: u64) {
        self.raft.persisted(index, epoch);
    }

    /// Everything to do now: see [`ReplicaReady`].
    pub fn ready(&mut self) -> ReplicaReady {
        let r = self.raft.take_ready();
        let mut out = ReplicaReady {
            persist: r.persist,
            messages: r.messages,
            replies: Vec::new(),
            events: std::mem::take(&mut self.events),
            applied: Vec::new(),
            send_before_persist: r.send_before_persist,
            last_index: r.last_index,
            log_epoch: r.log_epoch,
        };
        out.events.extend(r.events);
        for a in r.apply {
            match a {
                Apply::Entry(e) => {
                    out.applied.push((e.index, e.term));
                    let outcome = e.cmd.as_ref().map(|c| self.kv.execute(c));
                    if let Some(p) = self.writes.remove(&e.index) {
                        let reply = match outcome {
                            _ if p.term != e.term => {
                                Reply::Unknown("another entry was committed in its place".into())
                            }
                            Some(Outcome::Done) => Reply::Done,
                            Some(Outcome::CompareFailed { current }) => {
                                Reply::CompareFailed(current)
                            }
                            // Reads are not proposed (ReadIndex), so none is applied here.
                            Some(Outcome::Value(v)) => Reply::Value(v),
                            None => Reply::Unknown("internal: no-op at a proposal's index".into()),
                        };
                        self.replies.push((p.token, reply));
                    }
                }
                Apply::Snapshot(s) => {
                    self.kv = Kv::from_data(s.data);
                    let covered: Vec<u64> =
                        self.writes.range(..=s.index).map(|(i, _)| *i).collect();
                    for i in covered {
                        if let Some(p) = self.writes.remove(&i) {
                            self.replies
                                .push((p.token, Reply::Unknown("replaced by a snapshot".into())));
                        }
                    }
                }
            }
        }
        for rs in r.reads {
            if let Some(p) = self.reads.remove(&rs.ctx) {
                self.confirmed.push(ConfirmedRead {
                    index: rs.index,
                    token: rs.ctx,
                    key: p.key,
                    deadline: p.deadline,
                });
            }
        }
        for ctx in r.reads_failed {
            if self.reads.remove(&ctx).is_some() {
                let hint = self.raft.leader().cloned();
                self.replies.push((ctx, Reply::NotLeader(hint)));
            }
        }
        let applied = self.raft.applied_index();
        let kv = &self.kv;
        let replies = &mut self.replies;
        self.confirmed.retain(|c| {
            if c.index <= applied {
                replies.push((c.token, Reply::Value(kv.get(&c.key))));
                false
            } else {
                true
            }
        });
        if applied >= self.raft.log().snap_index() + self.cfg.snapshot_threshold {
            if let Some(p) = self.raft.compact(applied, self.kv.data().clone()) {
                out.persist.push(p);
                out.events.push(format!(
                    "snapshot at index {applied} ({} keys), {} entries left in the log",
                    self.kv.len(),
                    self.raft.log().len()
                ));
            }
        }
        out.replies = std::mem::take(&mut self.replies);
        out
    }

    /// Answers "unknown" to requests older than the request timeout.
    fn expire(&mut self) {
        let now = self.ticks;
        let expired: Vec<u64> = self
            .writes
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(i, _)| *i)
            .collect();
        for i in expired {
            if let Some(p) = self.writes.remove(&i) {
                self.replies
                    .push((p.token, Reply::Unknown("timeout waiting for commit".into())));
            }
        }
        let replies = &mut self.replies;
        self.reads.retain(|token, p| {
            let keep = p.deadline > now;
            if !keep {
                replies.push((
                    *token,
                    Reply::Unknown("timeout confirming leadership".into()),
                ));
            }
            keep
        });
        self.confirmed.retain(|c| {
            let keep = c.deadline > now;
            if !keep {
                replies.push((c.token, Reply::Unknown("timeout waiting to apply".into())));
            }
            keep
        });
    }
}
