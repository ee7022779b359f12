//! The PBFT replica core: a deterministic state machine (Castro & Liskov).
//!
//! Inputs are messages ([`Replica::step`], with the sender as the transport authenticated
//! it) and ticks ([`Replica::tick`]); outputs are collected in a [`Ready`]: whether the
//! durable state changed (the shell writes [`Replica::durable`] before sending), messages
//! to send, and the requests executed. No I/O, no clock, no randomness.
//!
//! With n = 3f + 1 replicas, the protocol parts are:
//! - **Normal case.** The primary of view v (replica v mod n) assigns a client request a
//!   sequence number in a signed pre-prepare; each backup that accepts it broadcasts a
//!   prepare. A request is *prepared* at a replica once it holds the pre-prepare and 2f
//!   matching prepares from distinct backups — no other request can be prepared at that
//!   sequence number in that view, since two such quorums share a correct replica. The
//!   replica then broadcasts a commit; it is *committed-local* with 2f + 1 matching commits,
//!   which guarantees f + 1 correct replicas prepared it, so every view-change quorum
//!   carries it. Replicas execute committed requests in sequence order and reply to the
//!   client, which accepts a result once f + 1 replicas sent the same one.
//! - **View changes.** A backup with a request waiting longer than its timer (in ticks;
//!   doubled after each view change that did not complete) stops taking part in the view
//!   and broadcasts a view-change for v + 1 carrying its stable checkpoint proof and its
//!   prepared certificates (the P set). A replica that sees f + 1 view-changes for later
//!   views joins the lowest. The new primary, with 2f + 1 valid view-changes, computes the
//!   O set: for every sequence number between the highest stable checkpoint and the highest
//!   prepared one, the request of the highest-view certificate, or the null request. It
//!   broadcasts it in a new-view; backups verify it by recomputing O, and the normal case
//!   resumes with those pre-prepares.
//! - **Checkpoints.** Every K sequence numbers a replica broadcasts a signed digest of its
//!   state. With 2f + 1 matching ones the checkpoint is *stable*: the log up to it is
//!   discarded, and the water marks move — a primary proposes, and backups accept, sequence
//!   numbers only in (stable, stable + L].
//! - **State transfer.** A replica that sees a stable checkpoint (2f + 1 matching
//!   checkpoint messages, or a new-view's proof) beyond what it executed fetches the state
//!   from any replica and checks it against the proven digest.
//! - **Authentication.** Every signed message must verify under its claimed sender's key,
//!   and that sender must be the peer the message came from (see [`message`]).
//!
//! Durable state is what a correct replica must not forget across a crash: its view, the
//! log (so it never votes for two requests at one (view, sequence number), and a primary
//! never reuses a number) and its stable checkpoint. Everything else is rebuilt by
//! re-executing the log from the stable checkpoint.

pub mod message;

pub use message::{
    request_digest, Authenticator, Checkpoint, Message, NewView, Node, PrePrepare, PreparedProof,
    ReplicaId, Reply, Sig, Signed, ViewChange, Vote,
};

use crate::bugs::Bugs;
use crate::kv::{ClientId, Digest, Kv, Outcome, Request};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Maps keyed by tuples as lists of (key, value) pairs: JSON object keys must be strings.
mod pairs {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<K: Serialize, V: Serialize, S: Serializer>(
        m: &BTreeMap<K, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(m.iter())
    }

    pub fn deserialize<'de, K, V, D>(d: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}

/// Cluster size and timing knobs, in ticks (the host decides how long a tick is).
#[derive(Debug, Clone)]
pub struct Config {
    /// Number of replicas, 3f + 1.
    pub n: u32,
    /// K: a checkpoint every this many sequence numbers.
    pub checkpoint_interval: u64,
    /// L: the high water mark is the stable checkpoint plus this (a multiple of K).
    pub window: u64,
    /// The view-change timer's first timeout.
    pub view_change_ticks: u64,
    /// Messages of unfinished work are sent again this often (the network may drop them).
    pub resend_ticks: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            n: 4,
            checkpoint_interval: 4,
            window: 16,
            view_change_ticks: 40,
            resend_ticks: 10,
        }
    }
}

impl Config {
    /// The number of Byzantine replicas tolerated.
    pub fn f(&self) -> usize {
        (self.n as usize - 1) / 3
    }

    pub fn primary(&self, view: u64) -> ReplicaId {
        (view % u64::from(self.n)) as ReplicaId
    }
}

/// One sequence number's log entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// The accepted pre-prepare of the highest view seen for this number.
    pub pre_prepare: Option<Signed<PrePrepare>>,
    /// Prepares by (view, sender); kept even before the pre-prepare arrives.
    #[serde(with = "pairs")]
    pub prepares: BTreeMap<(u64, ReplicaId), Signed<Vote>>,
    #[serde(with = "pairs")]
    pub commits: BTreeMap<(u64, ReplicaId), Signed<Vote>>,
    /// The highest-view prepared certificate this replica holds (for view changes).
    pub prepared: Option<PreparedProof>,
    /// The request to execute, once committed-local (Some(None): the null request).
    pub committed: Option<Option<Request>>,
}

/// The stable checkpoint: its number, digest, the 2f + 1 messages proving it and, once
/// known, the state itself. The default is the initial state at 0, which needs no proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stable {
    pub seq: u64,
    pub digest: Digest,
    pub proof: Vec<Signed<Checkpoint>>,
    /// None while the state is being fetched.
    pub state: Option<Kv>,
}

impl Default for Stable {
    fn default() -> Self {
        Stable {
            seq: 0,
            digest: Digest::default(),
            proof: Vec::new(),
            state: Some(Kv::default()),
        }
    }
}

/// What a replica keeps across crashes (see the module doc).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Durable {
    pub view: u64,
    pub changing: bool,
    pub slots: BTreeMap<u64, Slot>,
    pub stable: Stable,
    pub new_view: Option<Signed<NewView>>,
    pub my_view_change: Option<Signed<ViewChange>>,
}

/// A request executed at `seq` (None: the null request), with its result (None when it
/// was a retransmission executed before). The simulation's agreement checker reads these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executed {
    pub seq: u64,
    pub digest: Digest,
    pub request: Option<Request>,
    pub result: Option<Outcome>,
}

/// The outputs of the steps since the last [`Replica::take_ready`].
#[derive(Debug, Default)]
pub struct Ready {
    /// Durable state changed: write [`Replica::durable`] before sending `messages`.
    pub persist: bool,
    pub messages: Vec<(Node, Message)>,
    pub executed: Vec<Executed>,
}

/// One PBFT replica. See the module doc.
pub struct Replica {
    id: ReplicaId,
    cfg: Config,
    bugs: Bugs,
    auth: Box<dyn Authenticator>,
    d: Durable,
    kv: Kv,
    last_exec: u64,
    /// Primary: the last sequence number assigned in this view.
    next_seq: u64,
    /// This replica's own states at checkpoint numbers ≥ the stable one.
    own_checkpoints: BTreeMap<u64, Kv>,
    checkpoint_votes: BTreeMap<u64, BTreeMap<ReplicaId, Signed<Checkpoint>>>,
    view_changes: BTreeMap<u64, BTreeMap<ReplicaId, Signed<ViewChange>>>,
    /// Each client's newest request not yet executed.
    pub(crate) pending: BTreeMap<ClientId, Request>,
    /// Ticks until the view-change timer fires, when running.
    pub(crate) timer: Option<u64>,
    pub(crate) timeout: u64,
    resend_in: u64,
    state_transfers: u64,
    ready: Ready,
}

impl Replica {
    /// A replica starting from `durable` (the default for a fresh one).
    pub fn new(
        id: ReplicaId,
        cfg: Config,
        bugs: Bugs,
        auth: Box<dyn Authenticator>,
        durable: Durable,
    ) -> Self {
        let kv = durable.stable.state.clone().unwrap_or_default();
        let low = durable.stable.seq;
        let mut r = Replica {
            id,
            timeout: cfg.view_change_ticks,
            resend_in: cfg.resend_ticks,
            cfg,
            bugs,
            auth,
            kv,
            last_exec: 0,
            next_seq: low,
            own_checkpoints: BTreeMap::new(),
            checkpoint_votes: BTreeMap::new(),
            view_changes: BTreeMap::new(),
            pending: BTreeMap::new(),
            timer: None,
            state_transfers: 0,
            d: durable,
            ready: Ready::default(),
        };
        if let Some(vc) = r.d.my_view_change.clone() {
            r.view_changes
                .entry(vc.body.view)
                .or_default()
                .insert(r.id, vc);
        }
        if let Some(state) = r.d.stable.state.clone() {
            r.last_exec = low;
            r.own_checkpoints.insert(low, state);
        }
        // Never reuse a number this primary already assigned in this view.
        let view = r.d.view;
        r.next_seq =
            r.d.slots
                .iter()
                .filter(|(_, s)| s.pre_prepare.as_ref().is_some_and(|p| p.body.view == view))
                .map(|(n, _)| *n)
                .max()
                .unwrap_or(low)
                .max(low);
        r.try_execute();
        r
    }

    pub fn id(&self) -> ReplicaId {
        self.id
    }

    pub fn view(&self) -> u64 {
        self.d.view
    }

    /// True between sending a view-change and installing the new view.
    pub fn changing_view(&self) -> bool {
        self.d.changing
    }

    pub fn is_primary(&self) -> bool {
        self.cfg.primary(self.d.view) == self.id
    }

    pub fn last_executed(&self) -> u64 {
        self.last_exec
    }

    /// The low water mark: the stable checkpoint's sequence number.
    pub fn stable_checkpoint(&self) -> u64 {
        self.d.stable.seq
    }

    pub fn kv(&self) -> &Kv {
        &self.kv
    }

    /// States installed by state transfer since this replica started.
    pub fn state_transfers(&self) -> u64 {
        self.state_transfers
    }

    /// Log entries held (all above the stable checkpoint).
    pub fn log_len(&self) -> usize {
        self.d.slots.len()
    }

    /// What must survive a crash; written by the shell when [`Ready::persist`] is set.
    pub fn durable(&self) -> &Durable {
        &self.d
    }

    /// Takes the outputs accumulated since the last call.
    pub fn take_ready(&mut self) -> Ready {
        std::mem::take(&mut self.ready)
    }

    fn f(&self) -> usize {
        self.cfg.f()
    }

    fn prepare_quorum(&self) -> usize {
        if self.bugs.prepare_quorum_2f {
            2 * self.f() - 1
        } else {
            2 * self.f()
        }
    }

    fn commit_quorum(&self) -> usize {
        if self.bugs.commit_quorum_2f {
            2 * self.f()
        } else {
            2 * self.f() + 1
        }
    }

    /// A vote counts for a pre-prepare when view, number and digest match.
    fn vote_matches(&self, v: &Vote, pp: &PrePrepare) -> bool {
        v.view == pp.view && v.seq == pp.seq && (self.bugs.no_digest_check || v.digest == pp.digest)
    }

    fn in_window(&self, seq: u64) -> bool {
        seq > self.d.stable.seq && seq <= self.d.stable.seq + self.cfg.window
    }

    fn send(&mut self, to: Node, msg: Message) {
        self.ready.messages.push((to, msg));
    }

    fn broadcast(&mut self, msg: Message) {
        for r in 0..self.cfg.n {
            if r != self.id {
                self.send(Node::Replica(r), msg.clone());
            }
        }
    }

    fn sign<T: message::Body>(&self, body: T) -> Signed<T> {
        Signed::new(body, self.auth.as_ref())
    }

    /// Handles one message from `from` (as authenticated by the transport).
    pub fn step(&mut self, from: Node, msg: Message) {
        // Signed bodies: the claimed sender must be the authenticated peer.
        if let Some(claimed) = msg.claimed_replica() {
            if from != Node::Replica(claimed) || claimed == self.id {
                return;
            }
        }
        let auth = self.auth.as_ref();
        let valid = match &msg {
            Message::PrePrepare(s) => s.verify(auth),
            Message::Prepare(s) | Message::Commit(s) => s.verify(auth),
            Message::Checkpoint(s) => s.verify(auth),
            Message::ViewChange(s) => s.verify(auth),
            Message::NewView(s) => s.verify(auth),
            Message::Request(r) => from == Node::Client(r.client) && auth.verify_client(r),
            Message::Reply(_) => false,
            Message::FetchState { .. } | Message::State { .. } => {
                matches!(from, Node::Replica(r) if r != self.id)
            }
        };
        if !valid {
            return;
        }
        match msg {
            Message::Request(r) => self.on_request(r),
            Message::PrePrepare(s) => self.on_pre_prepare(s),
            Message::Prepare(s) => self.on_vote(s, false),
            Message::Commit(s) => self.on_vote(s, true),
            Message::Checkpoint(s) => self.on_checkpoint(s),
            Message::ViewChange(s) => self.on_view_change(s),
            Message::NewView(s) => self.on_new_view(s),
            Message::FetchState { seq } => self.on_fetch_state(from, seq),
            Message::State { seq, state } => self.on_state(seq, state),
            Message::Reply(_) => {}
        }
    }

    /// Advances timers by one tick.
    pub fn tick(&mut self) {
        self.resend_in = self.resend_in.saturating_sub(1);
        if self.resend_in == 0 {
            self.resend_in = self.cfg.resend_ticks;
            self.resend();
        }
        // The timer runs while a request waits, and during a view change once 2f + 1
        // replicas asked for it (or a later one) — not before, or a replica cut off from the rest
        // would climb views alone and be out of reach when the others change view.
        let stalled = if self.d.changing {
            // A view change for a later view is a vote to leave this one too.
            let askers: BTreeSet<ReplicaId> = self
                .view_changes
                .range(self.d.view..)
                .flat_map(|(_, m)| m.keys().copied())
                .collect();
            askers.len() > 2 * self.f()
        } else {
            !self.pending.is_empty()
        };
        if !stalled {
            self.timer = None;
            return;
        }
        match self.timer {
            None => self.timer = Some(self.timeout),
            Some(t) if t > 1 => self.timer = Some(t - 1),
            Some(_) => {
                let next = self.d.view + 1;
                self.start_view_change(next);
            }
        }
    }

    fn on_request(&mut self, req: Request) {
        match self.kv.executed(&req) {
            Some(Some(out)) => {
                let reply = Reply {
                    view: self.d.view,
                    client: req.client,
                    timestamp: req.timestamp,
                    result: out.clone(),
                    replica: self.id,
                };
                self.send(Node::Client(req.client), Message::Reply(reply));
                return;
            }
            Some(None) => return,
            None => {}
        }
        if self
            .pending
            .get(&req.client)
            .is_some_and(|p| p.timestamp >= req.timestamp)
        {
            // Already waiting; the primary may have missed it, so propose again below.
        } else {
            self.pending.insert(req.client, req);
        }
        self.try_propose();
    }

    /// The primary assigns numbers to waiting requests, within the water marks.
    fn try_propose(&mut self) {
        if !self.is_primary() || self.d.changing {
            return;
        }
        let view = self.d.view;
        let assigned: BTreeSet<Digest> = self
            .d
            .slots
            .values()
            .filter_map(|s| s.pre_prepare.as_ref())
            .filter(|p| p.body.view == view)
            .map(|p| p.body.digest)
            .collect();
        let waiting: Vec<Request> = self
            .pending
            .values()
            .filter(|r| !assigned.contains(&r.digest()))
            .cloned()
            .collect();
        for req in waiting {
            let seq = self.next_seq + 1;
            if !self.in_window(seq) {
                return;
            }
            self.next_seq = seq;
            let body = PrePrepare {
                view,
                seq,
                digest: req.digest(),
                request: Some(req),
                replica: self.id,
            };
            let pp = self.sign(body);
            self.accept_pre_prepare(pp.clone());
            self.broadcast(Message::PrePrepare(pp));
        }
    }

    fn on_pre_prepare(&mut self, pp: Signed<PrePrepare>) {
        let b = &pp.body;
        if self.d.changing
            || b.view != self.d.view
            || b.replica != self.cfg.primary(b.view)
            || !self.in_window(b.seq)
            || b.digest != request_digest(&b.request)
            || !self.auth.verify_request(&b.request)
        {
            return;
        }
        if let Some(have) = self
            .d
            .slots
            .get(&b.seq)
            .and_then(|s| s.pre_prepare.as_ref())
        {
            if have.body.view == b.view {
                // A duplicate, or an equivocating primary's second proposal: keep the first.
                return;
            }
        }
        if let Some(req) = &b.request {
            if self.kv.executed(req).is_none() {
                let newer = self
                    .pending
                    .get(&req.client)
                    .is_none_or(|p| p.timestamp < req.timestamp);
                if newer {
                    self.pending.insert(req.client, req.clone());
                }
            }
        }
        self.accept_pre_prepare(pp);
    }

    /// Logs a pre-prepare of the current view and, at a backup, votes for it.
    fn accept_pre_prepare(&mut self, pp: Signed<PrePrepare>) {
        let (view, seq, digest) = (pp.body.view, pp.body.seq, pp.body.digest);
        self.d.slots.entry(seq).or_default().pre_prepare = Some(pp);
        self.ready.persist = true;
        if !self.is_primary() {
            let vote = self.sign(Vote {
                view,
                seq,
                digest,
                replica: self.id,
            });
            self.d
                .slots
                .entry(seq)
                .or_default()
                .prepares
                .insert((view, self.id), vote.clone());
            self.broadcast(Message::Prepare(vote));
        }
        self.check(seq);
    }

    fn on_vote(&mut self, v: Signed<Vote>, commit: bool) {
        let b = &v.body;
        if b.view < self.d.view || !self.in_window(b.seq) {
            return;
        }
        let (seq, key) = (b.seq, (b.view, b.replica));
        let slot = self.d.slots.entry(seq).or_default();
        let votes = if commit {
            &mut slot.commits
        } else {
            &mut slot.prepares
        };
        if votes.contains_key(&key) {
            return;
        }
        votes.insert(key, v);
        self.ready.persist = true;
        self.check(seq);
    }

    /// Moves one log entry on: prepared → commit sent; committed-local → execute.
    fn check(&mut self, seq: u64) {
        if self.d.changing {
            return;
        }
        let view = self.d.view;
        let primary = self.cfg.primary(view);
        let (pq, cq) = (self.prepare_quorum(), self.commit_quorum());
        let Some(slot) = self.d.slots.get(&seq) else {
            return;
        };
        let Some(pp) = slot.pre_prepare.clone() else {
            return;
        };
        if pp.body.view != view {
            return;
        }
        let prepares: Vec<Signed<Vote>> = slot
            .prepares
            .values()
            .filter(|v| v.body.replica != primary && self.vote_matches(&v.body, &pp.body))
            .cloned()
            .collect();
        let commits = slot
            .commits
            .values()
            .filter(|v| self.vote_matches(&v.body, &pp.body))
            .count();
        let already_prepared = slot
            .prepared
            .as_ref()
            .is_some_and(|p| p.pre_prepare.body.view == view);
        let already_committed = slot.committed.is_some();
        if prepares.len() < pq {
            return;
        }
        if !already_prepared {
            let proof = PreparedProof {
                pre_prepare: pp.clone(),
                prepares,
            };
            let commit = self.sign(Vote {
                view,
                seq,
                digest: pp.body.digest,
                replica: self.id,
            });
            let slot = self.d.slots.entry(seq).or_default();
            slot.prepared = Some(proof);
            slot.commits.insert((view, self.id), commit.clone());
            self.ready.persist = true;
            self.broadcast(Message::Commit(commit));
            // Our own commit counts now.
            return self.check(seq);
        }
        let executable = commits >= cq || self.bugs.execute_before_commit;
        if executable && !already_committed {
            let slot = self.d.slots.entry(seq).or_default();
            slot.committed = Some(pp.body.request.clone());
            self.ready.persist = true;
            self.try_execute();
        }
    }

    /// Executes committed entries in sequence order.
    fn try_execute(&mut self) {
        if self.d.stable.state.is_none() && self.last_exec < self.d.stable.seq {
            return; // waiting for state transfer
        }
        loop {
            let seq = self.last_exec + 1;
            let Some(Some(req)) = self.d.slots.get(&seq).map(|s| s.committed.clone()) else {
                return;
            };
            let result = match &req {
                Some(r) => {
                    let out = self.kv.execute(r);
                    let cached = self.kv.executed(r).and_then(|o| o.cloned());
                    if let Some(result) = cached {
                        let reply = Reply {
                            view: self.d.view,
                            client: r.client,
                            timestamp: r.timestamp,
                            result,
                            replica: self.id,
                        };
                        self.send(Node::Client(r.client), Message::Reply(reply));
                    }
                    if self
                        .pending
                        .get(&r.client)
                        .is_some_and(|p| p.timestamp <= r.timestamp)
                    {
                        self.pending.remove(&r.client);
                    }
                    // Progress: the timer restarts for whatever still waits.
                    self.timer = None;
                    self.timeout = self.cfg.view_change_ticks;
                    out
                }
                None => None,
            };
            self.ready.executed.push(Executed {
                seq,
                digest: request_digest(&req),
                request: req,
                result,
            });
            self.last_exec = seq;
            if seq.is_multiple_of(self.cfg.checkpoint_interval) {
                self.take_checkpoint(seq);
            }
        }
    }

    fn take_checkpoint(&mut self, seq: u64) {
        self.own_checkpoints.insert(seq, self.kv.clone());
        let cp = self.sign(Checkpoint {
            seq,
            digest: self.kv.digest(),
            replica: self.id,
        });
        self.checkpoint_votes
            .entry(seq)
            .or_default()
            .insert(self.id, cp.clone());
        self.broadcast(Message::Checkpoint(cp));
        self.check_stable(seq);
    }

    fn on_checkpoint(&mut self, cp: Signed<Checkpoint>) {
        let seq = cp.body.seq;
        if seq <= self.d.stable.seq {
            return;
        }
        self.checkpoint_votes
            .entry(seq)
            .or_default()
            .insert(cp.body.replica, cp);
        self.check_stable(seq);
    }

    /// The digest 2f + 1 replicas signed for `seq`, with their messages.
    fn checkpoint_proof(&self, seq: u64) -> Option<(Digest, Vec<Signed<Checkpoint>>)> {
        let votes = self.checkpoint_votes.get(&seq)?;
        let mut by_digest: BTreeMap<Digest, Vec<Signed<Checkpoint>>> = BTreeMap::new();
        for v in votes.values() {
            by_digest.entry(v.body.digest).or_default().push(v.clone());
        }
        by_digest.into_iter().find(|(_, v)| v.len() > 2 * self.f())
    }

    fn check_stable(&mut self, seq: u64) {
        if seq <= self.d.stable.seq {
            return;
        }
        let Some((digest, proof)) = self.checkpoint_proof(seq) else {
            return;
        };
        match self.own_checkpoints.get(&seq) {
            Some(state) if state.digest() == digest => {
                let state = state.clone();
                self.make_stable(seq, digest, proof, Some(state));
            }
            Some(_) => {} // our state differs from a quorum's: nothing safe to do
            None if self.last_exec < seq => {
                // Behind: adopt the proven checkpoint and fetch its state.
                self.make_stable(seq, digest, proof, None);
                self.broadcast(Message::FetchState { seq });
            }
            None => {}
        }
    }

    /// Moves the low water mark to `seq`, discarding the log up to it.
    fn make_stable(
        &mut self,
        seq: u64,
        digest: Digest,
        proof: Vec<Signed<Checkpoint>>,
        state: Option<Kv>,
    ) {
        self.d.stable = Stable {
            seq,
            digest,
            proof,
            state,
        };
        self.d.slots = self.d.slots.split_off(&(seq + 1));
        self.own_checkpoints = self.own_checkpoints.split_off(&seq);
        self.checkpoint_votes = self.checkpoint_votes.split_off(&(seq + 1));
        self.next_seq = self.next_seq.max(seq);
        self.ready.persist = true;
        self.try_propose();
    }

    fn on_fetch_state(&mut self, from: Node, seq: u64) {
        let state = match self.own_checkpoints.get(&seq) {
            Some(s) => s.clone(),
            None => return,
        };
        self.send(from, Message::State { seq, state });
    }

    fn on_state(&mut self, seq: u64, state: Kv) {
        if self.d.stable.seq != seq
            || self.d.stable.state.is_some()
            || state.digest() != self.d.stable.digest
        {
            return;
        }
        self.kv = state.clone();
        self.last_exec = seq;
        self.own_checkpoints.insert(seq, state.clone());
        self.d.stable.state = Some(state);
        self.state_transfers += 1;
        self.ready.persist = true;
        let kv = &self.kv;
        self.pending.retain(|_, r| kv.executed(r).is_none());
        self.try_execute();
    }

    /// Sends again what others may have lost: our votes and proposals for unfinished log
    /// entries, our checkpoints, our view-change or new-view, and state requests.
    fn resend(&mut self) {
        if self.d.changing {
            if let Some(vc) = self.d.my_view_change.clone() {
                self.broadcast(Message::ViewChange(vc));
            }
            self.try_new_view();
            return;
        }
        if self.is_primary() {
            if let Some(nv) = self.d.new_view.clone() {
                self.broadcast(Message::NewView(nv));
            }
        }
        let view = self.d.view;
        let mut msgs = Vec::new();
        for slot in self.d.slots.values() {
            if let Some(pp) = &slot.pre_prepare {
                if pp.body.view == view && pp.body.replica == self.id {
                    msgs.push(Message::PrePrepare(pp.clone()));
                }
            }
            if let Some(v) = slot.prepares.get(&(view, self.id)) {
                msgs.push(Message::Prepare(v.clone()));
            }
            if let Some(v) = slot.commits.get(&(view, self.id)) {
                msgs.push(Message::Commit(v.clone()));
            }
        }
        for votes in self.checkpoint_votes.values() {
            if let Some(cp) = votes.get(&self.id) {
                msgs.push(Message::Checkpoint(cp.clone()));
            }
        }
        // Our checkpoint at the stable number lets a laggard assemble the proof.
        if let Some(cp) = self
            .d
            .stable
            .proof
            .iter()
            .find(|c| c.body.replica == self.id)
        {
            msgs.push(Message::Checkpoint(cp.clone()));
        }
        if self.d.stable.state.is_none() {
            msgs.push(Message::FetchState {
                seq: self.d.stable.seq,
            });
        }
        for m in msgs {
            self.broadcast(m);
        }
        self.try_propose();
    }

    /// Stops taking part in the current view and asks for `view`.
    fn start_view_change(&mut self, view: u64) {
        if view <= self.d.view && self.d.changing {
            return;
        }
        let prepared: Vec<PreparedProof> = self
            .d
            .slots
            .iter()
            .filter(|(n, _)| **n > self.d.stable.seq)
            .filter_map(|(_, s)| s.prepared.clone())
            .collect();
        let vc = self.sign(ViewChange {
            view,
            stable: self.d.stable.seq,
            stable_digest: self.d.stable.digest,
            checkpoint_proof: self.d.stable.proof.clone(),
            prepared,
            replica: self.id,
        });
        self.d.view = view;
        self.d.changing = true;
        self.d.my_view_change = Some(vc.clone());
        self.ready.persist = true;
        // If this view change does not complete either, wait longer for the next one.
        self.timer = None;
        self.timeout = self.timeout.saturating_mul(2);
        self.view_changes
            .entry(view)
            .or_default()
            .insert(self.id, vc.clone());
        self.broadcast(Message::ViewChange(vc));
        self.try_new_view();
    }

    fn on_view_change(&mut self, vc: Signed<ViewChange>) {
        let v = vc.body.view;
        if v < self.d.view || (v == self.d.view && !self.d.changing) {
            return;
        }
        if !self.valid_view_change(&vc.body) {
            return;
        }
        self.view_changes
            .entry(v)
            .or_default()
            .insert(vc.body.replica, vc);
        // f + 1 replicas want a later view: at least one is correct, so join the lowest.
        let current = self.d.view;
        let mut askers: BTreeMap<ReplicaId, u64> = BTreeMap::new();
        for (view, vcs) in self.view_changes.range(current + 1..) {
            for r in vcs.keys() {
                askers.entry(*r).or_insert(*view);
            }
        }
        if askers.len() > self.f() {
            if let Some(lowest) = askers.values().min().copied() {
                self.start_view_change(lowest);
            }
        }
        self.try_new_view();
    }

    /// A view change's checkpoint proof and prepared certificates are genuine.
    fn valid_view_change(&self, vc: &ViewChange) -> bool {
        let auth = self.auth.as_ref();
        let f = self.f();
        let proof_ok = if vc.stable == 0 {
            vc.stable_digest == Digest::default()
        } else {
            let signers: BTreeSet<ReplicaId> = vc
                .checkpoint_proof
                .iter()
                .filter(|c| {
                    c.body.seq == vc.stable && c.body.digest == vc.stable_digest && c.verify(auth)
                })
                .map(|c| c.body.replica)
                .collect();
            signers.len() > 2 * f
        };
        proof_ok
            && vc.prepared.iter().all(|p| {
                let pp = &p.pre_prepare.body;
                let primary = self.cfg.primary(pp.view);
                let voters: BTreeSet<ReplicaId> = p
                    .prepares
                    .iter()
                    .filter(|v| {
                        v.body.replica != primary
                            && self.vote_matches(&v.body, pp)
                            && v.verify(auth)
                    })
                    .map(|v| v.body.replica)
                    .collect();
                pp.view < vc.view
                    && pp.replica == primary
                    && p.pre_prepare.verify(auth)
                    && pp.seq > vc.stable
                    && pp.seq <= vc.stable + self.cfg.window
                    && pp.digest == request_digest(&pp.request)
                    && auth.verify_request(&pp.request)
                    && voters.len() >= self.prepare_quorum()
            })
    }

    /// The O set for `view` from valid view changes: the highest stable checkpoint among
    /// them (number, digest, proof) and, for each number above it up to the highest
    /// prepared one, the request of the highest-view certificate (the first one, in the
    /// view changes' order, among equal views — a correct quorum makes those identical).
    #[allow(clippy::type_complexity)]
    fn compute_o(
        &self,
        vcs: &[Signed<ViewChange>],
    ) -> (
        u64,
        Digest,
        Vec<Signed<Checkpoint>>,
        Vec<(u64, Option<Request>)>,
    ) {
        let Some(best) = vcs.iter().max_by_key(|v| v.body.stable) else {
            return (0, Digest::default(), Vec::new(), Vec::new());
        };
        let (min_s, digest, proof) = (
            best.body.stable,
            best.body.stable_digest,
            best.body.checkpoint_proof.clone(),
        );
        let mut chosen: BTreeMap<u64, (u64, Option<Request>)> = BTreeMap::new();
        if !self.bugs.view_change_ignore_prepared {
            for vc in vcs {
                for p in &vc.body.prepared {
                    let pp = &p.pre_prepare.body;
                    if pp.seq <= min_s {
                        continue;
                    }
                    let better = chosen.get(&pp.seq).is_none_or(|(v, _)| pp.view > *v);
                    if better {
                        chosen.insert(pp.seq, (pp.view, pp.request.clone()));
                    }
                }
            }
        }
        let max_s = chosen.keys().max().copied().unwrap_or(min_s);
        let proposals = (min_s + 1..=max_s)
            .map(|n| (n, chosen.get(&n).and_then(|(_, r)| r.clone())))
            .collect();
        (min_s, digest, proof, proposals)
    }

    /// The new primary: with 2f + 1 view changes for its view, announce the new view.
    fn try_new_view(&mut self) {
        let view = self.d.view;
        if !self.d.changing || self.cfg.primary(view) != self.id {
            return;
        }
        let vcs: Vec<Signed<ViewChange>> = match self.view_changes.get(&view) {
            Some(m) if m.len() > 2 * self.f() => m.values().cloned().collect(),
            _ => return,
        };
        let (_, _, _, proposals) = self.compute_o(&vcs);
        let pre_prepares = proposals
            .into_iter()
            .map(|(seq, request)| {
                self.sign(PrePrepare {
                    view,
                    seq,
                    digest: request_digest(&request),
                    request,
                    replica: self.id,
                })
            })
            .collect();
        let nv = self.sign(NewView {
            view,
            view_changes: vcs,
            pre_prepares,
            replica: self.id,
        });
        self.broadcast(Message::NewView(nv.clone()));
        self.install_new_view(nv);
    }

    fn on_new_view(&mut self, nv: Signed<NewView>) {
        let b = &nv.body;
        if b.view < self.d.view || (b.view == self.d.view && !self.d.changing) {
            return;
        }
        if b.replica != self.cfg.primary(b.view) {
            return;
        }
        let auth = self.auth.as_ref();
        let senders: BTreeSet<ReplicaId> = b
            .view_changes
            .iter()
            .filter(|vc| {
                vc.body.view == b.view && vc.verify(auth) && self.valid_view_change(&vc.body)
            })
            .map(|vc| vc.body.replica)
            .collect();
        if senders.len() != b.view_changes.len() || senders.len() <= 2 * self.f() {
            return;
        }
        let (_, _, _, proposals) = self.compute_o(&b.view_changes);
        let announced: Vec<(u64, Option<Request>)> = b
            .pre_prepares
            .iter()
            .filter(|pp| {
                pp.body.view == b.view
                    && pp.body.replica == b.replica
                    && pp.body.digest == request_digest(&pp.body.request)
                    && auth.verify_request(&pp.body.request)
                    && pp.verify(auth)
            })
            .map(|pp| (pp.body.seq, pp.body.request.clone()))
            .collect();
        if announced != proposals {
            return;
        }
        self.install_new_view(nv);
    }

    /// Enters the new view: adopts its stable checkpoint and its pre-prepares.
    fn install_new_view(&mut self, nv: Signed<NewView>) {
        let (min_s, digest, proof, _) = self.compute_o(&nv.body.view_changes);
        self.d.view = nv.body.view;
        self.d.changing = false;
        self.d.my_view_change = None;
        self.d.new_view = Some(nv.clone());
        self.ready.persist = true;
        self.timer = None;
        self.view_changes = self.view_changes.split_off(&(nv.body.view + 1));
        if min_s > self.d.stable.seq {
            match self.own_checkpoints.get(&min_s) {
                Some(state) if state.digest() == digest => {
                    let state = state.clone();
                    self.make_stable(min_s, digest, proof, Some(state));
                }
                Some(_) => {}
                None if self.last_exec < min_s => {
                    self.make_stable(min_s, digest, proof, None);
                    self.broadcast(Message::FetchState { seq: min_s });
                }
                None => {}
            }
        }
        self.next_seq = self.d.stable.seq;
        for pp in nv.body.pre_prepares {
            if !self.in_window(pp.body.seq) {
                continue;
            }
            self.next_seq = self.next_seq.max(pp.body.seq);
            self.accept_pre_prepare(pp);
        }
        self.try_propose();
    }
}
