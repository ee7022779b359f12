//! A simulated PBFT cluster for tests: replicas and clients connected by a seeded network
//! that delays, reorders and drops messages, with partitions, crashes and restarts from the
//! durable state the core declares, up to f Byzantine replicas, and safety checks on
//! everything that happens.
//!
//! Time moves in ticks; a message sent at tick t arrives at t + 1 + a random delay (so
//! messages overtake each other), unless dropped. A Byzantine replica runs the real core
//! but the simulation rewrites what it sends, following a [`Strategy`] — and re-signs it
//! with that replica's own key, which is all a Byzantine node can do.
//!
//! The checker records (instead of panicking) so a test can assert a bug *was* caught:
//! - agreement: two correct replicas executing different requests at one sequence number;
//! - client results: a client accepting (f + 1 matching replies) a result other than the
//!   one its request got at its place in the agreed order, or for a request no correct
//!   replica executed. PBFT executes requests one at a time in that order, after they were
//!   sent, so the agreed order is a linearization and this is the linearizability check.

mod tests;

use crate::auth::{replica_key, ClientSigner, Ed25519Auth};
use crate::bugs::Bugs;
use crate::client::Client;
use crate::kv::{digest_of, signing_bytes, ClientId, ClientKey, Digest, Kv, Op, Outcome, Request};
use crate::pbft::{
    request_digest, Authenticator, Config, Durable, Message, NewView, Node, Replica, ReplicaId,
    Sig, Signed, ViewChange, Vote,
};
use ed25519_dalek::VerifyingKey;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// How the simulated nodes authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// What nodes use: ed25519 ([`Ed25519Auth`]) and self-certifying ed25519 clients.
    Ed25519,
    /// Keyed SHA-256 standing in for signatures, ~100 times cheaper: every key is secret
    /// to its replica or client (only the simulation's verifier sees them all). The random
    /// runs use it; clients' ids are their handles, and the key a request carries is not
    /// looked at.
    Cheap,
}

/// Every secret of a simulated cluster.
struct Keys {
    mode: AuthMode,
    /// Replica i's secret.
    secrets: Vec<[u8; 32]>,
    public: Vec<VerifyingKey>,
}

impl Keys {
    fn new(mode: AuthMode, seeds: &[u64]) -> Self {
        let secrets: Vec<[u8; 32]> = seeds.iter().map(|s| digest_of(s).0).collect();
        let public = secrets
            .iter()
            .map(|s| replica_key(*s).verifying_key())
            .collect();
        Keys {
            mode,
            secrets,
            public,
        }
    }

    /// Client `handle`'s secret, derived from the replicas' secrets.
    fn client_secret(&self, handle: u64) -> [u8; 32] {
        digest_of(&(&self.secrets, "client", handle)).0
    }

    /// Client `handle`'s id and request signer.
    fn client(&self, handle: u64) -> (ClientId, Rc<dyn Fn(u64, Op) -> Request>) {
        let secret = self.client_secret(handle);
        match self.mode {
            AuthMode::Ed25519 => {
                let signer = ClientSigner::from_secret(secret);
                (signer.id(), Rc::new(move |ts, op| signer.request(ts, op)))
            }
            AuthMode::Cheap => {
                let id = ClientId::from(handle);
                let sign = move |ts, op: Op| {
                    let key = ClientKey::default();
                    let sig = cheap_sig(&secret, &signing_bytes(&key, ts, &op));
                    Request {
                        client: id,
                        key,
                        timestamp: ts,
                        op,
                        sig,
                    }
                };
                (id, Rc::new(sign))
            }
        }
    }
}

fn cheap_sig(secret: &[u8; 32], body: &[u8]) -> Sig {
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&digest_of(&(secret, body)).0);
    Sig(sig)
}

/// One replica's authenticator in either mode.
enum SimAuth {
    Ed25519(Box<Ed25519Auth>),
    Cheap { me: ReplicaId, keys: Rc<Keys> },
}

impl SimAuth {
    fn new(me: ReplicaId, keys: &Rc<Keys>) -> Self {
        match keys.mode {
            AuthMode::Ed25519 => SimAuth::Ed25519(Box::new(Ed25519Auth::new(
                replica_key(keys.secrets[me as usize]),
                keys.public.clone(),
            ))),
            AuthMode::Cheap => SimAuth::Cheap {
                me,
                keys: keys.clone(),
            },
        }
    }
}

/// The client the simulation's Byzantine replicas control (a handle, like the others).
pub const BYZANTINE_CLIENT: u64 = 1_000;

impl Authenticator for SimAuth {
    fn sign(&self, body: &Digest) -> Sig {
        match self {
            SimAuth::Ed25519(a) => a.sign(body),
            SimAuth::Cheap { me, keys } => cheap_sig(&keys.secrets[*me as usize], &body.0),
        }
    }

    fn verify(&self, signer: ReplicaId, body: &Digest, sig: &Sig) -> bool {
        match self {
            SimAuth::Ed25519(a) => a.verify(signer, body, sig),
            SimAuth::Cheap { keys, .. } => keys
                .secrets
                .get(signer as usize)
                .is_some_and(|k| cheap_sig(k, &body.0) == *sig),
        }
    }

    fn verify_client(&self, r: &Request) -> bool {
        match self {
            SimAuth::Ed25519(a) => a.verify_client(r),
            SimAuth::Cheap { keys, .. } => {
                // Handles are small; an id beyond u64 is no simulated client.
                u64::try_from(r.client)
                    .is_ok_and(|h| cheap_sig(&keys.client_secret(h), &r.signing_bytes()) == r.sig)
            }
        }
    }
}

/// What a Byzantine replica does to the messages its core sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    /// As primary, sends `victims` pre-prepares for a different request than everyone
    /// else (the same client and timestamp, another operation), and votes to them for it.
    Equivocate { victims: Vec<ReplicaId> },
    /// Sends view changes with an empty P set, as if it had prepared nothing.
    ForgetPrepared,
    /// Prepares and commits to odd-numbered replicas carry a bogus digest.
    ConflictingVotes,
    /// Sends nothing at all.
    Mute,
    /// As new primary, announces a new view whose O set is empty: the view changes it
    /// carries name prepared requests, but it proposes none of them.
    EmptyNewView,
}

/// The request an equivocating primary substitutes for `req`: another operation, from the
/// client the Byzantine side controls (it cannot sign for `req`'s client).
fn twin(keys: &Keys, req: &Request) -> Request {
    let op = match &req.op {
        Op::Read { key } => Op::Write {
            key: key.clone(),
            value: -1,
        },
        Op::Write { key, value } => Op::Write {
            key: key.clone(),
            value: value + 1000,
        },
        Op::Cas { key, from, to } => Op::Cas {
            key: key.clone(),
            from: *from,
            to: to + 1000,
        },
    };
    let (_, sign) = keys.client(BYZANTINE_CLIENT);
    sign(req.timestamp, op)
}

/// A test's predicate over messages (from, to, message): true drops it.
type Filter = Box<dyn FnMut(Node, Node, &Message) -> bool>;

/// See the module doc.
pub struct Sim {
    cfg: Config,
    bugs: Bugs,
    keys: Rc<Keys>,
    replicas: Vec<Option<Replica>>,
    disks: Vec<Durable>,
    byzantine: BTreeMap<ReplicaId, Strategy>,
    /// By handle (tests name clients 1, 2, …; their ids depend on the mode).
    clients: BTreeMap<u64, Client>,
    /// Client id to handle, to deliver replies.
    handles: BTreeMap<ClientId, u64>,
    queue: BTreeMap<(u64, u64), (Node, Node, Message)>,
    next_msg: u64,
    pub now: u64,
    rng: ChaCha8Rng,
    /// Probability that a message is lost.
    pub drop_rate: f64,
    /// Most extra ticks a message may take.
    pub max_delay: u64,
    cut: BTreeSet<(Node, Node)>,
    filter: Option<Filter>,
    /// The agreed order: the first correct replica to execute each number, and what.
    order: BTreeMap<u64, (Digest, ReplicaId, Option<Request>)>,
    /// Results clients accepted.
    pub accepted: Vec<(Request, Outcome)>,
    pub violations: Vec<String>,
    /// Messages delivered, for the cost figures in tests.
    pub delivered: u64,
    /// Print view changes and faults as they happen (debugging a seed).
    pub trace: bool,
    views: Vec<(u64, bool)>,
}

impl Sim {
    /// A cluster of `cfg.n` replicas and `clients` clients (handles 1..), all correct,
    /// authenticating with ed25519 as nodes do.
    pub fn new(cfg: Config, bugs: Bugs, seed: u64, clients: u64) -> Self {
        Sim::with_auth(cfg, bugs, seed, clients, AuthMode::Ed25519)
    }

    /// [`Sim::new`] with the authentication `mode`.
    pub fn with_auth(cfg: Config, bugs: Bugs, seed: u64, clients: u64, mode: AuthMode) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let seeds: Vec<u64> = (0..cfg.n).map(|_| rng.random()).collect();
        let keys = Rc::new(Keys::new(mode, &seeds));
        let f = cfg.f();
        let n = cfg.n;
        let mut handles = BTreeMap::new();
        let clients = (1..=clients)
            .map(|h| {
                let (id, sign) = keys.client(h);
                handles.insert(id, h);
                let signer = Box::new(move |ts, op| sign(ts, op));
                (h, Client::new(id, n, f, cfg.resend_ticks * 2, 0, signer))
            })
            .collect();
        let mut sim = Sim {
            replicas: (0..n).map(|_| None).collect(),
            disks: vec![Durable::default(); n as usize],
            byzantine: BTreeMap::new(),
            clients,
            handles,
            queue: BTreeMap::new(),
            next_msg: 0,
            now: 0,
            rng,
            drop_rate: 0.0,
            max_delay: 0,
            cut: BTreeSet::new(),
            filter: None,
            order: BTreeMap::new(),
            accepted: Vec::new(),
            violations: Vec::new(),
            delivered: 0,
            trace: false,
            views: vec![(0, false); n as usize],
            cfg,
            bugs,
            keys,
        };
        for r in 0..n {
            sim.restart(r);
        }
        sim
    }

    /// Replica `r`'s signing key, for tests that forge messages.
    pub fn auth(&self, r: ReplicaId) -> impl Authenticator {
        SimAuth::new(r, &self.keys)
    }

    /// Makes replica `r` Byzantine from now on.
    pub fn make_byzantine(&mut self, r: ReplicaId, s: Strategy) {
        self.byzantine.insert(r, s);
    }

    pub fn replica(&self, r: ReplicaId) -> &Replica {
        self.replicas[r as usize].as_ref().expect("replica is down")
    }

    /// Forgets everything not durable. The sim crashes only between steps, after the core's
    /// outputs were handled, so the disk holds exactly [`Replica::durable`].
    pub fn crash(&mut self, r: ReplicaId) {
        if let Some(rep) = self.replicas[r as usize].take() {
            self.disks[r as usize] = rep.durable().clone();
        }
    }

    /// Starts replica `r` again from its disk.
    pub fn restart(&mut self, r: ReplicaId) {
        if self.replicas[r as usize].is_some() {
            return;
        }
        let auth = Box::new(SimAuth::new(r, &self.keys));
        let rep = Replica::new(
            r,
            self.cfg.clone(),
            self.bugs,
            auth,
            self.disks[r as usize].clone(),
        );
        self.replicas[r as usize] = Some(rep);
        self.drain(r);
    }

    /// Drops every message between the two groups, both ways (clients reach everyone).
    pub fn partition(&mut self, a: &[ReplicaId], b: &[ReplicaId]) {
        for x in a {
            for y in b {
                self.cut.insert((Node::Replica(*x), Node::Replica(*y)));
                self.cut.insert((Node::Replica(*y), Node::Replica(*x)));
            }
        }
    }

    /// Cuts `r` off from every other replica.
    pub fn isolate(&mut self, r: ReplicaId) {
        let others: Vec<ReplicaId> = (0..self.cfg.n).filter(|x| *x != r).collect();
        self.partition(&[r], &others);
    }

    /// Restores every link (filters stay).
    pub fn heal(&mut self) {
        self.cut.clear();
    }

    pub fn set_filter(&mut self, f: impl FnMut(Node, Node, &Message) -> bool + 'static) {
        self.filter = Some(Box::new(f));
    }

    pub fn clear_filter(&mut self) {
        self.filter = None;
    }

    /// Client `c` submits `op` (abandoning any request still waiting).
    pub fn submit(&mut self, c: u64, op: Op) -> Request {
        let client = self.clients.get_mut(&c).expect("unknown client");
        let id = client.id();
        let (req, msgs) = client.submit(op);
        for (to, m) in msgs {
            self.enqueue(Node::Client(id), to, m);
        }
        req
    }

    pub fn write(&mut self, c: u64, key: &str, value: i64) -> Request {
        self.submit(
            c,
            Op::Write {
                key: key.into(),
                value,
            },
        )
    }

    /// The result client accepted for `req`, if any.
    pub fn result(&self, req: &Request) -> Option<&Outcome> {
        self.accepted.iter().find(|(r, _)| r == req).map(|(_, o)| o)
    }

    /// True while client `c` waits for a result.
    pub fn waiting(&self, c: u64) -> bool {
        self.clients[&c].waiting().is_some()
    }

    /// Clients with a request waiting.
    pub fn busy_clients(&self) -> Vec<u64> {
        self.clients
            .iter()
            .filter(|(_, c)| c.waiting().is_some())
            .map(|(id, _)| *id)
            .collect()
    }

    fn enqueue(&mut self, from: Node, to: Node, msg: Message) {
        if from == to || self.cut.contains(&(from, to)) {
            return;
        }
        if let Some(f) = self.filter.as_mut() {
            if f(from, to, &msg) {
                return;
            }
        }
        if self.drop_rate > 0.0 && self.rng.random_bool(self.drop_rate) {
            return;
        }
        let delay = 1 + if self.max_delay > 0 {
            self.rng.random_range(0..=self.max_delay)
        } else {
            0
        };
        self.next_msg += 1;
        self.queue
            .insert((self.now + delay, self.next_msg), (from, to, msg));
    }

    /// Handles replica `r`'s outputs: checks its executions, sends its messages (through
    /// its strategy if Byzantine).
    fn drain(&mut self, r: ReplicaId) {
        let Some(rep) = self.replicas[r as usize].as_mut() else {
            return;
        };
        let ready = rep.take_ready();
        let view = (rep.view(), rep.changing_view());
        if self.trace && view != self.views[r as usize] {
            eprintln!(
                "t{} r{r}: view {view:?} exec {}",
                self.now,
                rep.last_executed()
            );
        }
        self.views[r as usize] = view;
        let byz = self.byzantine.get(&r).cloned();
        if byz.is_none() {
            for e in ready.executed {
                match self.order.get(&e.seq) {
                    Some((d, who, req)) if *d != e.digest => {
                        self.violations.push(format!(
                            "agreement: seq {} executed as {:?} by replica {} and as {:?} by replica {}",
                            e.seq, req, who, e.request, r
                        ));
                    }
                    Some(_) => {}
                    None => {
                        self.order.insert(e.seq, (e.digest, r, e.request));
                    }
                }
            }
        }
        for (to, msg) in ready.messages {
            let msgs = match &byz {
                None => vec![msg],
                Some(s) => self.corrupt(r, s, to, msg),
            };
            for m in msgs {
                self.enqueue(Node::Replica(r), to, m);
            }
        }
    }

    /// What Byzantine replica `r` following `s` sends instead of `msg` to `to`.
    fn corrupt(&self, r: ReplicaId, s: &Strategy, to: Node, msg: Message) -> Vec<Message> {
        let auth = SimAuth::new(r, &self.keys);
        let victim = |v: &Vec<ReplicaId>| matches!(to, Node::Replica(x) if v.contains(&x));
        match (s, msg) {
            (Strategy::Mute, _) => Vec::new(),
            (Strategy::Equivocate { victims }, Message::PrePrepare(pp)) if victim(victims) => {
                let mut body = pp.body;
                body.request = body.request.as_ref().map(|q| twin(&self.keys, q));
                body.digest = request_digest(&body.request);
                vec![Message::PrePrepare(Signed::new(body, &auth))]
            }
            (Strategy::Equivocate { victims }, Message::Prepare(v)) if victim(victims) => {
                vec![Message::Prepare(self.twin_vote(r, v.body, &auth))]
            }
            (Strategy::Equivocate { victims }, Message::Commit(v)) if victim(victims) => {
                vec![Message::Commit(self.twin_vote(r, v.body, &auth))]
            }
            (Strategy::ForgetPrepared, Message::ViewChange(vc)) => {
                let body = ViewChange {
                    prepared: Vec::new(),
                    ..vc.body
                };
                vec![Message::ViewChange(Signed::new(body, &auth))]
            }
            (Strategy::EmptyNewView, Message::NewView(nv)) => {
                let body = NewView {
                    pre_prepares: Vec::new(),
                    ..nv.body
                };
                vec![Message::NewView(Signed::new(body, &auth))]
            }
            (Strategy::ConflictingVotes, Message::Prepare(v)) if matches!(to, Node::Replica(x) if x % 2 == 1) =>
            {
                let mut digest = v.body.digest;
                digest.0[0] ^= 1;
                let body = Vote { digest, ..v.body };
                vec![Message::Prepare(Signed::new(body, &auth))]
            }
            (Strategy::ConflictingVotes, Message::Commit(v)) if matches!(to, Node::Replica(x) if x % 2 == 1) =>
            {
                let mut digest = v.body.digest;
                digest.0[0] ^= 1;
                let body = Vote { digest, ..v.body };
                vec![Message::Commit(Signed::new(body, &auth))]
            }
            (_, m) => vec![m],
        }
    }

    /// A vote for the twin of the request this replica's log holds at the vote's number.
    fn twin_vote(&self, r: ReplicaId, mut v: Vote, auth: &SimAuth) -> Signed<Vote> {
        let logged = self.replicas[r as usize]
            .as_ref()
            .and_then(|rep| rep.durable().slots.get(&v.seq))
            .and_then(|s| s.pre_prepare.as_ref())
            .and_then(|pp| pp.body.request.clone());
        if let Some(req) = logged {
            v.digest = twin(&self.keys, &req).digest();
        }
        Signed::new(v, auth)
    }

    fn deliver(&mut self, from: Node, to: Node, msg: Message) {
        self.delivered += 1;
        match to {
            Node::Replica(r) => {
                if let Some(rep) = self.replicas[r as usize].as_mut() {
                    rep.step(from, msg);
                    self.drain(r);
                }
            }
            Node::Client(c) => {
                let client = self.handles.get(&c).and_then(|h| self.clients.get_mut(h));
                if let (Some(client), Message::Reply(reply)) = (client, msg) {
                    if let Some(done) = client.on_reply(from, reply) {
                        self.accepted.push(done);
                    }
                }
            }
        }
    }

    /// One tick: messages due arrive, then every replica and client ticks.
    pub fn tick(&mut self) {
        self.now += 1;
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            let (from, to, msg) = entry.remove();
            self.deliver(from, to, msg);
        }
        for r in 0..self.cfg.n {
            if let Some(rep) = self.replicas[r as usize].as_mut() {
                rep.tick();
                self.drain(r);
            }
        }
        let handles: Vec<u64> = self.clients.keys().copied().collect();
        for h in handles {
            let Some(cl) = self.clients.get_mut(&h) else {
                continue;
            };
            let id = cl.id();
            for (to, m) in cl.tick() {
                self.enqueue(Node::Client(id), to, m);
            }
        }
    }

    pub fn ticks(&mut self, n: u64) {
        for _ in 0..n {
            self.tick();
        }
    }

    /// Ticks until no client waits, at most `max` ticks; true if they all finished.
    pub fn run_until_idle(&mut self, max: u64) -> bool {
        for _ in 0..max {
            if self.busy_clients().is_empty() {
                return true;
            }
            self.tick();
        }
        self.busy_clients().is_empty()
    }

    /// Submits `op` from client `c` and ticks until it is answered (at most `max` ticks).
    pub fn call(&mut self, c: u64, op: Op, max: u64) -> Option<Outcome> {
        let req = self.submit(c, op);
        for _ in 0..max {
            if let Some(o) = self.result(&req) {
                return Some(o.clone());
            }
            self.tick();
        }
        self.result(&req).cloned()
    }

    /// The sequence numbers the correct replicas agreed on so far.
    pub fn agreed(&self) -> usize {
        self.order.len()
    }

    /// Checks every accepted client result against the agreed order (see the module doc);
    /// records violations.
    pub fn check_clients(&mut self) {
        let mut kv = Kv::default();
        let mut results: BTreeMap<Digest, Outcome> = BTreeMap::new();
        let mut complete = true;
        for (expected, (seq, (_, _, req))) in (1..).zip(&self.order) {
            if *seq != expected {
                // A number no correct replica executed (all learned it by state transfer
                // from one that is not checked): the replay stops there.
                complete = false;
                break;
            }
            if let Some(req) = req {
                if let Some(out) = kv.execute(req) {
                    results.insert(req.digest(), out);
                }
            }
        }
        for (req, out) in &self.accepted {
            match results.get(&req.digest()) {
                Some(want) if want != out => self.violations.push(format!(
                    "client {} accepted {out:?} for {:?} (ts {}), but at its place in the agreed order it returns {want:?}",
                    req.client, req.op, req.timestamp
                )),
                Some(_) => {}
                None if complete => self.violations.push(format!(
                    "client {} accepted {out:?} for {:?} (ts {}), which no correct replica executed",
                    req.client, req.op, req.timestamp
                )),
                None => {}
            }
        }
    }

    /// Random client traffic: each idle client submits an operation on a few keys with
    /// probability `p` per call.
    pub fn random_traffic(&mut self, p: f64) {
        let handles: Vec<u64> = self.clients.keys().copied().collect();
        for c in handles {
            if self.waiting(c) || !self.rng.random_bool(p) {
                continue;
            }
            let key = ["x", "y"][self.rng.random_range(0..2)].to_string();
            let op = match self.rng.random_range(0..3) {
                0 => Op::Read { key },
                1 => Op::Write {
                    key,
                    value: self.rng.random_range(0..5),
                },
                _ => Op::Cas {
                    key,
                    from: self.rng.random_range(0..5),
                    to: self.rng.random_range(0..5),
                },
            };
            self.submit(c, op);
        }
    }

    /// The simulation's own random source, for tests choosing faults.
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }
}
