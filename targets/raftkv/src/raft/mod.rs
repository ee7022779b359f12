//! The Raft core: a deterministic state machine (Ongaro & Ousterhout).
//!
//! Inputs are peer messages ([`RaftNode::step`]), ticks ([`RaftNode::tick`], carrying the
//! wall-clock reading only the `lease-read` bug looks at), proposals and read requests.
//! Outputs are collected in a [`Ready`]: durable changes to make and fsync, messages to
//! send after that, entries to apply, and confirmed reads. There is no I/O, no clock and no
//! thread in here — randomness comes from a seeded generator — so the simulated cluster in
//! `tests` can drive elections, partitions, crashes and every bug switch step by step.
//!
//! What it implements: pre-vote plus randomized election timeouts; log replication with
//! the prevLogIndex/prevLogTerm check, conflict truncation and a fast back-off hint;
//! pipelined, batched AppendEntries with a bounded number in flight; commitment only by a
//! majority in the leader's own term; check-quorum (a leader that hears from no majority
//! for an election timeout steps down); ReadIndex reads confirmed by a heartbeat round;
//! snapshots, log compaction and InstallSnapshot.

pub mod log;
mod message;

pub use message::{
    Apply, Entry, Envelope, HardState, Message, NodeId, Persist, ReadState, Ready, Recovered,
    Snapshot,
};

use crate::bugs::Bugs;
use log::Log;
use nodeshell::kv::{Command, KvData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, VecDeque};

/// Timing and batching knobs, in ticks (the host decides how long a tick is).
#[derive(Debug, Clone)]
pub struct Config {
    /// Minimum election timeout; each timeout is drawn from `[election_ticks, 2*election_ticks)`.
    pub election_ticks: u64,
    /// A leader sends heartbeats this often.
    pub heartbeat_ticks: u64,
    /// Length of a tick, used only to turn the lease (one election timeout) into wall-clock ms.
    pub tick_ms: u64,
    /// Most entries in one AppendEntries.
    pub max_entries_per_msg: usize,
    /// Most AppendEntries in flight to one follower before waiting for answers.
    pub max_inflight: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            election_ticks: 50,
            heartbeat_ticks: 5,
            tick_ms: 10,
            max_entries_per_msg: 4096,
            max_inflight: 64,
        }
    }
}

/// Where a node stands in the election protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Follower,
    /// Asking for pre-votes without having bumped its term.
    PreCandidate,
    Candidate,
    Leader,
}

/// How the leader is replicating to one follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReplState {
    /// Unsure where the follower's log matches: one AppendEntries at a time.
    Probe,
    /// Known match: stream AppendEntries without waiting (pipelining).
    Replicate,
    /// An InstallSnapshot is on its way; wait for its answer.
    Snapshot,
}

/// The leader's view of one follower.
#[derive(Debug, Clone)]
struct Progress {
    next: u64,
    matched: u64,
    state: ReplState,
    /// In Probe: a probe is out and unanswered.
    paused: bool,
    /// Last index and heartbeat round at the time of sending, per AppendEntries in flight.
    /// A heartbeat answer for a later round while these are unanswered means they were lost.
    inflight: VecDeque<(u64, u64)>,
    /// Heard from since the last check-quorum period.
    active: bool,
    /// Tick at which the last snapshot was sent, to resend it if lost.
    snapshot_sent_tick: u64,
}

impl Progress {
    fn new(next: u64) -> Self {
        Progress {
            next,
            matched: 0,
            state: ReplState::Probe,
            paused: false,
            inflight: VecDeque::new(),
            active: true,
            snapshot_sent_tick: 0,
        }
    }

    fn reset_to_probe(&mut self) {
        self.state = ReplState::Probe;
        self.next = self.matched + 1;
        self.paused = false;
        self.inflight.clear();
    }
}

/// A read waiting for its heartbeat round `seq` to be acknowledged by a majority.
#[derive(Debug, Clone, Copy)]
struct PendingRead {
    ctx: u64,
    index: u64,
    seq: u64,
}

/// One Raft participant. See the module doc.
pub struct RaftNode {
    id: NodeId,
    peers: Vec<NodeId>,
    cfg: Config,
    bugs: Bugs,
    rng: StdRng,

    term: u64,
    voted_for: Option<NodeId>,
    log: Log,
    /// Our latest snapshot, kept to send to followers that fell behind the compacted log.
    snapshot: Option<Snapshot>,
    commit: u64,
    /// Highest index handed out for applying.
    applied: u64,
    /// Highest index known to be fsynced here; a leader counts itself only up to it.
    durable: u64,
    /// Bumped whenever entries are removed from the log, so that a persistence report
    /// for a batch taken before the removal cannot vouch for entries written after it.
    log_epoch: u64,

    role: Role,
    leader: Option<NodeId>,
    ticks: u64,
    election_elapsed: u64,
    election_timeout: u64,
    heartbeat_elapsed: u64,
    quorum_elapsed: u64,
    votes: BTreeMap<NodeId, bool>,
    progress: BTreeMap<NodeId, Progress>,

    /// Heartbeat round counter; rounds confirm leadership for reads.
    seq: u64,
    acked_seq: BTreeMap<NodeId, u64>,
    /// Wall-clock send time of recent rounds, for the `lease-read` bug's lease.
    seq_wall: VecDeque<(u64, u64)>,
    /// A read arrived: send a heartbeat round at the next `take_ready` (batches reads).
    need_round: bool,
    /// Proposals arrived: replicate at the next `take_ready` (batches writes).
    need_broadcast: bool,
    pending_reads: VecDeque<PendingRead>,
    /// Reads that arrived before the leader committed an entry of its own term.
    reads_awaiting_commit: Vec<u64>,
    wall_ms: u64,
    lease_until_ms: u64,

    out: Ready,
}

impl RaftNode {
    /// A node recovering `recovered` (empty for a fresh one). `seed` drives election
    /// timeouts, so a simulation replays exactly.
    pub fn new(
        id: NodeId,
        peers: Vec<NodeId>,
        cfg: Config,
        bugs: Bugs,
        recovered: Recovered,
        seed: u64,
    ) -> Self {
        let (snap_index, snap_term) = recovered
            .snapshot
            .as_ref()
            .map_or((0, 0), |s| (s.index, s.term));
        let mut log = Log::new(snap_index, snap_term);
        for e in recovered.entries {
            if e.index > log.last_index() && e.index == log.last_index() + 1 {
                log.push(e);
            }
        }
        // Under forget-vote nothing was persisted: the best a node can do is the term of
        // its last entry, and it believes it has not voted in it.
        let term = recovered.hard_state.term.max(log.last_term());
        let voted_for = if recovered.hard_state.term == term {
            recovered.hard_state.voted_for
        } else {
            None
        };
        let mut node = RaftNode {
            id,
            peers,
            bugs,
            rng: StdRng::seed_from_u64(seed),
            term,
            voted_for,
            log,
            snapshot: recovered.snapshot,
            commit: snap_index,
            applied: snap_index,
            durable: 0,
            log_epoch: 0,
            role: Role::Follower,
            leader: None,
            ticks: 0,
            election_elapsed: 0,
            election_timeout: cfg.election_ticks,
            heartbeat_elapsed: 0,
            quorum_elapsed: 0,
            votes: BTreeMap::new(),
            progress: BTreeMap::new(),
            seq: 0,
            acked_seq: BTreeMap::new(),
            seq_wall: VecDeque::new(),
            need_round: false,
            need_broadcast: false,
            pending_reads: VecDeque::new(),
            reads_awaiting_commit: Vec::new(),
            wall_ms: 0,
            lease_until_ms: 0,
            cfg,
            out: Ready::default(),
        };
        node.durable = node.log.last_index();
        node.reset_election_timeout();
        node.event(format!(
            "starting at term {} with log up to {} (snapshot at {})",
            node.term,
            node.log.last_index(),
            snap_index
        ));
        node
    }

    // ----- accessors -----

    pub fn id(&self) -> &str {
        &self.id
    }
    pub fn term(&self) -> u64 {
        self.term
    }
    pub fn role(&self) -> Role {
        self.role
    }
    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }
    /// Who we believe leads our term, if anyone.
    pub fn leader(&self) -> Option<&NodeId> {
        self.leader.as_ref()
    }
    pub fn voted_for(&self) -> Option<&NodeId> {
        self.voted_for.as_ref()
    }
    pub fn commit_index(&self) -> u64 {
        self.commit
    }
    pub fn applied_index(&self) -> u64 {
        self.applied
    }
    pub fn log(&self) -> &Log {
        &self.log
    }
    fn quorum(&self) -> usize {
        let cluster_size = self.peers.len() + 1;
        cluster_size / 2 + 1
    }
    fn lease_ms(&self) -> u64 {
        self.cfg.election_ticks * self.cfg.tick_ms
    }

    // ----- inputs -----

    /// One tick of the monotonic clock; `wall_ms` is the wall clock at this moment.
    pub fn tick(&mut self, wall_ms: u64) {
        if self.wall_ms == 0 && self.role == Role::Leader {
            // Elected before the first tick told us the time: the lease starts now.
            self.lease_until_ms = wall_ms + self.lease_ms();
        }
        self.wall_ms = wall_ms;
        self.ticks += 1;
        if self.role == Role::Leader {
            self.tick_leader();
        } else {
            self.election_elapsed += 1;
            if self.election_elapsed >= self.election_timeout {
                self.campaign();
            }
        }
    }

    fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            self.broadcast_heartbeat();
        }
        if self.bugs.lease_read {
            // The bug: leadership is trusted for as long as the wall clock says the lease
            // runs, instead of counting monotonic time since a majority last answered.
            if self.wall_ms >= self.lease_until_ms {
                self.event("leader lease expired (wall clock): stepping down".into());
                self.become_follower(self.term, None);
            }
        } else if !self.bugs.stale_read {
            self.quorum_elapsed += 1;
            if self.quorum_elapsed >= self.cfg.election_ticks {
                self.quorum_elapsed = 0;
                let active = 1 + self.progress.values().filter(|p| p.active).count();
                for p in self.progress.values_mut() {
                    p.active = false;
                }
                if active < self.quorum() {
                    self.event(format!(
                        "heard from {active} of {} nodes in an election timeout: stepping down",
                        self.peers.len() + 1
                    ));
                    self.become_follower(self.term, None);
                }
            }
        }
    }

    /// Starts an election now (as if the election timer fired), beginning with pre-vote.
    pub fn campaign(&mut self) {
        if self.role == Role::Leader {
            return;
        }
        if self.peers.is_empty() {
            self.start_election();
            return;
        }
        self.role = Role::PreCandidate;
        self.leader = None;
        self.votes.clear();
        self.votes.insert(self.id.clone(), true);
        self.election_elapsed = 0;
        self.reset_election_timeout();
        self.event(format!(
            "election timeout: pre-vote for term {}",
            self.term + 1
        ));
        let (last_index, last_term) = (self.log.last_index(), self.log.last_term());
        for p in self.peers.clone() {
            self.send_with_term(
                p,
                self.term + 1,
                Message::PreVote {
                    last_index,
                    last_term,
                },
            );
        }
    }

    /// Proposes a command. On a leader, returns the (index, term) it was appended at;
    /// elsewhere, the leader hint.
    pub fn propose(&mut self, cmd: Command) -> Result<(u64, u64), Option<NodeId>> {
        if self.role != Role::Leader {
            return Err(self.leader.clone());
        }
        let index = self.append_local(Some(cmd));
        self.need_broadcast = true;
        Ok((index, self.term))
    }

    /// Asks for a linearizable read. It shows up in [`Ready::reads`] once a majority has
    /// confirmed this node was still leader after the request arrived.
    pub fn read_index(&mut self, ctx: u64) -> Result<(), Option<NodeId>> {
        if self.role != Role::Leader {
            return Err(self.leader.clone());
        }
        if self.log.term(self.commit) != Some(self.term) {
            self.reads_awaiting_commit.push(ctx);
            return Ok(());
        }
        self.pending_reads.push_back(PendingRead {
            ctx,
            index: self.commit,
            seq: self.seq + 1,
        });
        self.need_round = true;
        Ok(())
    }

    /// Under the `lease-read` bug: the index a read may be served at without a round,
    /// if the wall clock says the lease still runs.
    pub fn lease_read_index(&self) -> Option<u64> {
        let ok = self.bugs.lease_read
            && self.role == Role::Leader
            && self.wall_ms < self.lease_until_ms
            && self.log.term(self.commit) == Some(self.term);
        ok.then_some(self.commit)
    }

    /// Takes a snapshot at `index` (already applied) holding `data`, and forgets the log
    /// up to it. Returns the durable change for the host, or None if there is nothing to do.
    pub fn compact(&mut self, index: u64, data: KvData) -> Option<Persist> {
        if index <= self.log.snap_index() || index > self.applied {
            return None;
        }
        let term = self.log.term(index)?;
        self.log.compact(index, term);
        let snap = Snapshot { index, term, data };
        self.snapshot = Some(snap.clone());
        Some(Persist::Compact(snap))
    }

    /// Handles one message from a peer.
    pub fn step(&mut self, env: Envelope) {
        if env.to != self.id || !self.peers.contains(&env.from) {
            return;
        }
        if env.term > self.term {
            let bump = match env.msg {
                Message::PreVote { .. } => false,
                Message::PreVoteResp { granted } => !granted,
                _ => true,
            };
            if bump {
                let leader = matches!(
                    env.msg,
                    Message::Append { .. }
                        | Message::Heartbeat { .. }
                        | Message::InstallSnapshot { .. }
                )
                .then(|| env.from.clone());
                self.event(format!(
                    "term {} -> {} on a {} from {}",
                    self.term,
                    env.term,
                    msg_name(&env.msg),
                    env.from
                ));
                self.become_follower(env.term, leader);
            }
        } else if env.term < self.term {
            match env.msg {
                // Tell a stale leader or candidate about the newer term.
                Message::Append { .. }
                | Message::Heartbeat { .. }
                | Message::InstallSnapshot { .. } => self.send(
                    env.from,
                    Message::AppendResp {
                        success: false,
                        match_index: 0,
                        reject: 0,
                        hint: 0,
                    },
                ),
                Message::PreVote { .. } => {
                    self.send(env.from, Message::PreVoteResp { granted: false })
                }
                _ => {}
            }
            return;
        }

        let from = env.from;
        match env.msg {
            Message::PreVote {
                last_index,
                last_term,
            } => self.on_pre_vote(from, env.term, last_index, last_term),
            Message::Vote {
                last_index,
                last_term,
            } => self.on_vote(from, last_index, last_term),
            Message::PreVoteResp { granted } => {
                if self.role == Role::PreCandidate && env.term == self.term + 1 {
                    self.votes.insert(from, granted);
                    if self.granted_votes() >= self.quorum() {
                        self.start_election();
                    }
                }
            }
            Message::VoteResp { granted } => {
                if self.role == Role::Candidate {
                    self.votes.insert(from, granted);
                    if self.granted_votes() >= self.quorum() {
                        self.become_leader();
                    }
                }
            }
            Message::Append {
                prev_index,
                prev_term,
                entries,
                commit,
            } => {
                self.follow(&from);
                self.on_append(from, prev_index, prev_term, entries, commit);
            }
            Message::Heartbeat { commit, seq } => {
                self.follow(&from);
                // The leader caps `commit` at what it knows we hold, so this is safe
                // without a log check.
                let c = commit.min(self.log.last_index());
                if c > self.commit {
                    self.commit = c;
                }
                self.send(from, Message::HeartbeatResp { seq });
            }
            Message::InstallSnapshot { snapshot } => {
                self.follow(&from);
                self.on_install_snapshot(from, snapshot);
            }
            Message::AppendResp {
                success,
                match_index,
                reject,
                hint,
            } => {
                if self.role == Role::Leader {
                    self.on_append_resp(from, success, match_index, reject, hint);
                }
            }
            Message::HeartbeatResp { seq } => {
                if self.role == Role::Leader {
                    self.on_heartbeat_resp(from, seq);
                }
            }
            Message::SnapshotResp { match_index } => {
                if self.role == Role::Leader {
                    self.on_snapshot_resp(from, match_index);
                }
            }
        }
    }

    /// The host finished persisting a [`Ready`] whose `last_index` was `index` and whose
    /// `log_epoch` was `epoch` (reports may arrive after later batches were taken).
    pub fn persisted(&mut self, index: u64, epoch: u64) {
        if epoch == self.log_epoch && index > self.durable {
            self.durable = index;
            if self.role == Role::Leader {
                self.maybe_commit();
            }
        }
    }

    /// Everything produced since the last call. See [`Ready`] for the order to act in.
    pub fn take_ready(&mut self) -> Ready {
        if self.role == Role::Leader {
            if self.need_broadcast {
                self.need_broadcast = false;
                for p in self.peers.clone() {
                    self.send_append(&p);
                }
            }
            if self.need_round {
                self.broadcast_heartbeat();
            }
        }
        while self.applied < self.commit {
            let Some(e) = self.log.get(self.applied + 1) else {
                break;
            };
            self.out.apply.push(Apply::Entry(e.clone()));
            self.applied += 1;
        }
        self.out.last_index = self.log.last_index();
        self.out.log_epoch = self.log_epoch;
        self.out.send_before_persist = self.role == Role::Leader
            && !self.out.persist.iter().any(|p| {
                matches!(
                    p,
                    Persist::HardState(_) | Persist::Truncate { .. } | Persist::Install(_)
                )
            });
        std::mem::take(&mut self.out)
    }

    // ----- elections -----

    fn granted_votes(&self) -> usize {
        self.votes.values().filter(|g| **g).count()
    }

    fn log_up_to_date(&self, last_index: u64, last_term: u64) -> bool {
        (last_term, last_index) >= (self.log.last_term(), self.log.last_index())
    }

    fn on_pre_vote(&mut self, from: NodeId, term: u64, last_index: u64, last_term: u64) {
        // Leader stickiness: while we hear from a leader, nobody needs a new one.
        let leader_alive = self.role == Role::Leader
            || (self.leader.is_some() && self.election_elapsed < self.cfg.election_ticks);
        let granted =
            term > self.term && !leader_alive && self.log_up_to_date(last_index, last_term);
        let reply_term = if granted { term } else { self.term };
        self.send_with_term(from, reply_term, Message::PreVoteResp { granted });
    }

    fn on_vote(&mut self, from: NodeId, last_index: u64, last_term: u64) {
        let free = self.voted_for.is_none() || self.voted_for.as_ref() == Some(&from);
        let granted = free && self.log_up_to_date(last_index, last_term);
        if granted {
            self.voted_for = Some(from.clone());
            self.persist_hard_state();
            self.election_elapsed = 0;
            self.event(format!("voted for {from} in term {}", self.term));
        }
        self.send(from, Message::VoteResp { granted });
    }

    fn start_election(&mut self) {
        self.term += 1;
        self.voted_for = Some(self.id.clone());
        self.persist_hard_state();
        self.role = Role::Candidate;
        self.leader = None;
        self.votes.clear();
        self.votes.insert(self.id.clone(), true);
        // A full timeout for the votes to come back before trying again.
        self.election_elapsed = 0;
        self.reset_election_timeout();
        self.event(format!("campaigning for term {}", self.term));
        let (last_index, last_term) = (self.log.last_index(), self.log.last_term());
        for p in self.peers.clone() {
            self.send(
                p,
                Message::Vote {
                    last_index,
                    last_term,
                },
            );
        }
        if self.granted_votes() >= self.quorum() {
            self.become_leader();
        }
    }

    fn become_leader(&mut self) {
        self.role = Role::Leader;
        self.leader = Some(self.id.clone());
        // The no-op lets us commit (and so learn the commit index) in our own term.
        self.event(format!("became leader for term {}", self.term));
        self.append_local(None);
        // Probing starts after the no-op: the first AppendEntries carries no entries, so a
        // follower's log is located before anything is sent to it.
        let next = self.log.last_index() + 1;
        self.progress = self
            .peers
            .iter()
            .map(|p| (p.clone(), Progress::new(next)))
            .collect();
        self.acked_seq = self.peers.iter().map(|p| (p.clone(), 0)).collect();
        self.seq_wall.clear();
        self.heartbeat_elapsed = 0;
        self.quorum_elapsed = 0;
        self.lease_until_ms = self.wall_ms + self.lease_ms();
        for p in self.peers.clone() {
            self.send_append(&p);
        }
    }

    /// A valid leader for our term spoke: follow it.
    fn follow(&mut self, leader: &NodeId) {
        if self.role != Role::Follower || self.leader.as_ref() != Some(leader) {
            if self.leader.as_ref() != Some(leader) {
                self.event(format!("following {leader} in term {}", self.term));
            }
            self.become_follower(self.term, Some(leader.clone()));
        }
        self.election_elapsed = 0;
    }

    fn become_follower(&mut self, term: u64, leader: Option<NodeId>) {
        let was_leader = self.role == Role::Leader;
        if term > self.term {
            self.term = term;
            self.voted_for = None;
            self.persist_hard_state();
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.election_elapsed = 0;
        self.reset_election_timeout();
        if was_leader {
            self.event(format!("no longer leader (term {})", self.term));
            self.progress.clear();
            self.need_round = false;
            self.need_broadcast = false;
            let failed = self
                .pending_reads
                .drain(..)
                .map(|r| r.ctx)
                .chain(self.reads_awaiting_commit.drain(..));
            self.out.reads_failed.extend(failed);
        }
    }

    fn reset_election_timeout(&mut self) {
        let t = self.cfg.election_ticks.max(1);
        self.election_timeout = self.rng.random_range(t..2 * t);
    }

    // ----- replication, leader side -----

    fn append_local(&mut self, cmd: Option<Command>) -> u64 {
        let entry = Entry {
            index: self.log.last_index() + 1,
            term: self.term,
            cmd,
        };
        let index = entry.index;
        self.log.push(entry.clone());
        self.persist_entry(entry);
        index
    }

    fn send_append(&mut self, peer: &NodeId) {
        loop {
            let Some(pr) = self.progress.get(peer) else {
                return;
            };
            match pr.state {
                ReplState::Snapshot => return,
                ReplState::Probe if pr.paused => return,
                ReplState::Replicate if pr.inflight.len() >= self.cfg.max_inflight => return,
                _ => {}
            }
            let (next, state) = (pr.next, pr.state);
            let prev_index = next - 1;
            let Some(prev_term) = self.log.term(prev_index) else {
                self.send_snapshot(peer);
                return;
            };
            let entries = self.log.slice(next, self.cfg.max_entries_per_msg);
            if entries.is_empty() && state == ReplState::Replicate {
                return;
            }
            let last = prev_index + entries.len() as u64;
            let (seq, commit) = (self.seq, self.commit);
            self.send(
                peer.clone(),
                Message::Append {
                    prev_index,
                    prev_term,
                    entries,
                    commit,
                },
            );
            let Some(pr) = self.progress.get_mut(peer) else {
                return;
            };
            if state == ReplState::Probe {
                pr.paused = true;
                return;
            }
            pr.next = last + 1;
            pr.inflight.push_back((last, seq));
        }
    }

    fn send_snapshot(&mut self, peer: &NodeId) {
        let Some(snapshot) = self.snapshot.clone() else {
            return;
        };
        let ticks = self.ticks;
        if let Some(pr) = self.progress.get_mut(peer) {
            pr.state = ReplState::Snapshot;
            pr.snapshot_sent_tick = ticks;
        }
        self.event(format!(
            "sending snapshot at index {} to {peer}",
            snapshot.index
        ));
        self.send(peer.clone(), Message::InstallSnapshot { snapshot });
    }

    fn on_append_resp(
        &mut self,
        from: NodeId,
        success: bool,
        match_index: u64,
        reject: u64,
        hint: u64,
    ) {
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.active = true;
        if success {
            if match_index > pr.matched {
                pr.matched = match_index;
            }
            pr.next = pr.next.max(pr.matched + 1);
            while pr.inflight.front().is_some_and(|(l, _)| *l <= pr.matched) {
                pr.inflight.pop_front();
            }
            match pr.state {
                ReplState::Probe => {
                    pr.state = ReplState::Replicate;
                    pr.paused = false;
                    pr.inflight.clear();
                    pr.next = pr.matched + 1;
                }
                ReplState::Snapshot => {}
                ReplState::Replicate => {}
            }
            self.maybe_commit();
            self.send_append(&from);
        } else {
            let retry = match pr.state {
                ReplState::Replicate => reject > pr.matched,
                ReplState::Probe => reject + 1 == pr.next,
                ReplState::Snapshot => false,
            };
            if !retry {
                return; // a stale rejection
            }
            let matched = pr.matched;
            pr.reset_to_probe();
            pr.next = (matched + 1).max(reject.min(hint + 1));
            self.send_append(&from);
        }
    }

    fn on_snapshot_resp(&mut self, from: NodeId, match_index: u64) {
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.active = true;
        pr.matched = pr.matched.max(match_index);
        pr.reset_to_probe();
        self.maybe_commit();
        self.send_append(&from);
    }

    fn on_heartbeat_resp(&mut self, from: NodeId, seq: u64) {
        let (ticks, election_ticks, last) =
            (self.ticks, self.cfg.election_ticks, self.log.last_index());
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.active = true;
        match pr.state {
            // FIFO delivery: an answer to a later round while AppendEntries sent before it
            // are unanswered means those were lost (e.g. a dropped connection).
            ReplState::Replicate if pr.inflight.front().is_some_and(|(_, s)| *s < seq) => {
                pr.reset_to_probe();
            }
            ReplState::Probe => pr.paused = false,
            ReplState::Snapshot if ticks - pr.snapshot_sent_tick >= election_ticks => {
                pr.reset_to_probe();
            }
            _ => {}
        }
        let behind = pr.matched < last;
        if let Some(a) = self.acked_seq.get_mut(&from) {
            *a = (*a).max(seq);
        }
        if behind {
            self.send_append(&from);
        }
        self.advance_reads();
    }

    fn broadcast_heartbeat(&mut self) {
        self.need_round = false;
        self.seq += 1;
        self.seq_wall.push_back((self.seq, self.wall_ms));
        while self.seq_wall.len() > 1024 {
            self.seq_wall.pop_front();
        }
        let seq = self.seq;
        let sends: Vec<(NodeId, u64)> = self
            .progress
            .iter()
            .map(|(p, pr)| (p.clone(), pr.matched.min(self.commit)))
            .collect();
        for (p, commit) in sends {
            self.send(p, Message::Heartbeat { commit, seq });
        }
        self.advance_reads();
    }

    /// The highest heartbeat round a majority (counting us) has answered.
    fn confirmed_seq(&self) -> u64 {
        let mut acks: Vec<u64> = self.acked_seq.values().copied().collect();
        acks.push(self.seq);
        acks.sort_unstable_by(|a, b| b.cmp(a));
        acks[self.quorum() - 1]
    }

    fn advance_reads(&mut self) {
        let confirmed = self.confirmed_seq();
        while self
            .pending_reads
            .front()
            .is_some_and(|r| r.seq <= confirmed)
        {
            if let Some(r) = self.pending_reads.pop_front() {
                self.out.reads.push(ReadState {
                    ctx: r.ctx,
                    index: r.index,
                });
            }
        }
        if self.bugs.lease_read {
            while let Some(&(s, wall)) = self.seq_wall.front() {
                if s > confirmed {
                    break;
                }
                self.lease_until_ms = self.lease_until_ms.max(wall + self.lease_ms());
                self.seq_wall.pop_front();
            }
        }
    }

    fn maybe_commit(&mut self) {
        let mut matched: Vec<u64> = self.progress.values().map(|p| p.matched).collect();
        matched.push(self.durable.min(self.log.last_index()));
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let n = matched[self.quorum() - 1];
        if n <= self.commit {
            return;
        }
        // Figure 8: counting replicas is only proof of commitment for our own term.
        let old_term = self.log.term(n) != Some(self.term);
        if old_term && !self.bugs.commit_old_term {
            return;
        }
        if old_term {
            // The bug's own moment, logged so a run's node logs show whether it fired.
            self.event(format!(
                "commit-old-term: committing index {n} of term {:?} in term {} by counting replicas",
                self.log.term(n).unwrap_or(0),
                self.term
            ));
        }
        self.commit = n;
        if self.log.term(self.commit) == Some(self.term) && !self.reads_awaiting_commit.is_empty() {
            let index = self.commit;
            let seq = self.seq + 1;
            for ctx in std::mem::take(&mut self.reads_awaiting_commit) {
                self.pending_reads
                    .push_back(PendingRead { ctx, index, seq });
            }
            self.need_round = true;
        }
    }

    // ----- replication, follower side -----

    fn on_append(
        &mut self,
        from: NodeId,
        prev_index: u64,
        prev_term: u64,
        entries: Vec<Entry>,
        leader_commit: u64,
    ) {
        if prev_index < self.commit {
            // Already committed here; tell the leader to continue after our commit.
            let match_index = self.commit;
            self.send(
                from,
                Message::AppendResp {
                    success: true,
                    match_index,
                    reject: 0,
                    hint: 0,
                },
            );
            return;
        }
        let matches = if self.bugs.no_prev_check {
            // The bug: only "do I have that many entries", never "is it the same entry".
            prev_index <= self.log.last_index()
        } else {
            self.log.term(prev_index) == Some(prev_term)
        };
        if !matches {
            let hint = if prev_index > self.log.last_index() {
                self.log.last_index()
            } else {
                self.log
                    .first_index_of_term_at(prev_index)
                    .saturating_sub(1)
            }
            .max(self.commit);
            self.send(
                from,
                Message::AppendResp {
                    success: false,
                    match_index: 0,
                    reject: prev_index,
                    hint,
                },
            );
            return;
        }
        let last_new = prev_index + entries.len() as u64;
        let mut appending = false;
        for e in entries {
            if !appending {
                match self.log.term(e.index) {
                    Some(t) if t == e.term => continue,
                    Some(_) => {
                        if e.index <= self.commit {
                            self.event(format!(
                                "SAFETY: truncating committed entry {} (commit {})",
                                e.index, self.commit
                            ));
                        }
                        self.event(format!(
                            "log conflict at index {}: truncating {} entries",
                            e.index,
                            self.log.last_index() + 1 - e.index
                        ));
                        self.log.truncate_from(e.index);
                        self.durable = self.durable.min(e.index - 1);
                        self.log_epoch += 1;
                        self.out.persist.push(Persist::Truncate { from: e.index });
                    }
                    None if e.index <= self.log.snap_index() => continue,
                    None => {}
                }
                appending = true;
            }
            self.log.push(e.clone());
            self.persist_entry(e);
        }
        let c = leader_commit.min(last_new);
        if c > self.commit {
            self.commit = c;
        }
        self.send(
            from,
            Message::AppendResp {
                success: true,
                match_index: last_new,
                reject: 0,
                hint: 0,
            },
        );
    }

    fn on_install_snapshot(&mut self, from: NodeId, snapshot: Snapshot) {
        if snapshot.index <= self.commit {
            let match_index = self.commit;
            self.send(from, Message::SnapshotResp { match_index });
            return;
        }
        self.event(format!(
            "installing snapshot at index {} (term {}) from {from}",
            snapshot.index, snapshot.term
        ));
        self.log.reset(snapshot.index, snapshot.term);
        self.durable = self.durable.min(snapshot.index);
        self.log_epoch += 1;
        self.commit = snapshot.index;
        self.applied = snapshot.index;
        let match_index = snapshot.index;
        self.out.persist.push(Persist::Install(snapshot.clone()));
        self.out.apply.push(Apply::Snapshot(snapshot.clone()));
        self.snapshot = Some(snapshot);
        self.send(from, Message::SnapshotResp { match_index });
    }

    // ----- output helpers -----

    fn send(&mut self, to: NodeId, msg: Message) {
        let term = self.term;
        self.send_with_term(to, term, msg);
    }

    fn send_with_term(&mut self, to: NodeId, term: u64, msg: Message) {
        self.out.messages.push(Envelope {
            from: self.id.clone(),
            to,
            term,
            msg,
        });
    }

    fn persist_hard_state(&mut self) {
        if self.bugs.forget_vote {
            return; // the bug: term and vote live only in memory
        }
        self.out.persist.push(Persist::HardState(HardState {
            term: self.term,
            voted_for: self.voted_for.clone(),
        }));
    }

    fn persist_entry(&mut self, entry: Entry) {
        if let Some(Persist::Append(v)) = self.out.persist.last_mut() {
            v.push(entry);
        } else {
            self.out.persist.push(Persist::Append(vec![entry]));
        }
    }

    fn event(&mut self, line: String) {
        self.out.events.push(line);
    }
}

fn msg_name(m: &Message) -> &'static str {
    match m {
        Message::PreVote { .. } => "pre-vote",
        Message::PreVoteResp { .. } => "pre-vote answer",
        Message::Vote { .. } => "vote request",
        Message::VoteResp { .. } => "vote answer",
        Message::Append { .. } => "append",
        Message::AppendResp { .. } => "append answer",
        Message::Heartbeat { .. } => "heartbeat",
        Message::HeartbeatResp { .. } => "heartbeat answer",
        Message::InstallSnapshot { .. } => "snapshot",
        Message::SnapshotResp { .. } => "snapshot answer",
    }
}
