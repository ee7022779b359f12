//! PBFT's messages, their signatures, and the abstract authenticator.
//!
//! Every replica-to-replica message body names its sender (`replica`) and is signed. Two
//! checks authenticate it: the signature must verify under the claimed sender's key, and
//! the claimed sender must be the peer the transport says the message came from (a replica
//! must not relay another's vote as if it were a fresh one). Bodies carried inside other
//! messages — the checkpoint and prepared certificates in a view change, the view changes
//! in a new view — are checked by signature alone, which is why PBFT uses signatures for
//! them rather than MACs. The [`Authenticator`] is abstract: nodes use ed25519
//! ([`crate::auth::Ed25519Auth`]); the simulation's random runs use a cheap keyed digest.

pub use crate::kv::Sig;
use crate::kv::{digest_of, ClientId, Digest, Outcome, Request};
use serde::{Deserialize, Serialize};
use std::hash::Hash;

/// Replicas are numbered 0..n; the primary of view v is v mod n.
pub type ReplicaId = u32;

/// Signs with this replica's key and verifies any replica's or client's signature.
pub trait Authenticator {
    fn sign(&self, body: &Digest) -> Sig;
    fn verify(&self, signer: ReplicaId, body: &Digest, sig: &Sig) -> bool;
    /// The request is signed by the key it carries, and its client id is that key's
    /// (clients are self-certifying: [`crate::kv::client_id`]).
    fn verify_client(&self, request: &Request) -> bool;

    /// A request (or the null request) carries its client's signature.
    fn verify_request(&self, request: &Option<Request>) -> bool {
        request.as_ref().is_none_or(|r| self.verify_client(r))
    }
}

/// A message body and its sender's signature.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Signed<T> {
    pub body: T,
    pub sig: Sig,
}

/// A body that names its sender.
pub trait Body: Hash {
    fn sender(&self) -> ReplicaId;
}

impl<T: Body> Signed<T> {
    pub fn new(body: T, auth: &dyn Authenticator) -> Self {
        let sig = auth.sign(&digest_of(&body));
        Signed { body, sig }
    }

    /// The signature is the claimed sender's.
    pub fn verify(&self, auth: &dyn Authenticator) -> bool {
        auth.verify(self.body.sender(), &digest_of(&self.body), &self.sig)
    }
}

/// The primary's proposal: `request` (None: the null request that fills a gap after a
/// view change) gets sequence number `seq` in `view`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PrePrepare {
    pub view: u64,
    pub seq: u64,
    pub digest: Digest,
    pub request: Option<Request>,
    pub replica: ReplicaId,
}

/// The digest a pre-prepare's request must have (the null request's is fixed).
pub fn request_digest(request: &Option<Request>) -> Digest {
    match request {
        Some(r) => r.digest(),
        None => Digest::default(),
    }
}

/// A prepare or commit vote for (view, seq, digest).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Vote {
    pub view: u64,
    pub seq: u64,
    pub digest: Digest,
    pub replica: ReplicaId,
}

/// "My state after executing up to `seq` has digest `digest`."
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: u64,
    pub digest: Digest,
    pub replica: ReplicaId,
}

/// Proof that a request prepared at a replica: the pre-prepare and 2f matching prepares
/// from distinct backups.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PreparedProof {
    pub pre_prepare: Signed<PrePrepare>,
    pub prepares: Vec<Signed<Vote>>,
}

/// A replica's vote to move to `view`, with its stable checkpoint (`stable`, proven by
/// 2f + 1 checkpoint messages; empty at 0) and the P set: for every sequence number above
/// it, the highest-view prepared certificate it holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ViewChange {
    pub view: u64,
    pub stable: u64,
    pub stable_digest: Digest,
    pub checkpoint_proof: Vec<Signed<Checkpoint>>,
    pub prepared: Vec<PreparedProof>,
    pub replica: ReplicaId,
}

/// The new primary's announcement: the view changes it chose (2f + 1 or more) and the O
/// set it computed from them — one signed pre-prepare for the new view per sequence number
/// between their highest stable checkpoint and their highest prepared certificate, null
/// where no certificate names a request. Backups recompute O to check it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NewView {
    pub view: u64,
    pub view_changes: Vec<Signed<ViewChange>>,
    pub pre_prepares: Vec<Signed<PrePrepare>>,
    pub replica: ReplicaId,
}

/// The result of executing a request, sent by every replica to the client.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Reply {
    pub view: u64,
    pub client: ClientId,
    pub timestamp: u64,
    pub result: Outcome,
    pub replica: ReplicaId,
}

macro_rules! body {
    ($($t:ty),*) => {$(
        impl Body for $t {
            fn sender(&self) -> ReplicaId {
                self.replica
            }
        }
    )*};
}
body!(PrePrepare, Vote, Checkpoint, ViewChange, NewView, Reply);

/// Who is at either end of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Node {
    Replica(ReplicaId),
    Client(ClientId),
}

/// Everything that travels between replicas and clients.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Message {
    /// Client to replicas, signed by the client (self-certifying: the request carries
    /// the public key its client id derives from).
    Request(Request),
    /// Replica to client; the client's collector checks the sender.
    Reply(Reply),
    PrePrepare(Signed<PrePrepare>),
    Prepare(Signed<Vote>),
    Commit(Signed<Vote>),
    Checkpoint(Signed<Checkpoint>),
    ViewChange(Signed<ViewChange>),
    NewView(Signed<NewView>),
    /// "Send me your state at checkpoint `seq`."
    FetchState {
        seq: u64,
    },
    /// A state at checkpoint `seq`; the receiver checks its digest against the stable
    /// checkpoint proof it holds, so the sender need not be trusted.
    State {
        seq: u64,
        state: crate::kv::Kv,
    },
}

impl Message {
    /// The replica a signed body claims to come from.
    pub fn claimed_replica(&self) -> Option<ReplicaId> {
        match self {
            Message::PrePrepare(s) => Some(s.body.replica),
            Message::Prepare(s) | Message::Commit(s) => Some(s.body.replica),
            Message::Checkpoint(s) => Some(s.body.replica),
            Message::ViewChange(s) => Some(s.body.replica),
            Message::NewView(s) => Some(s.body.replica),
            Message::Reply(r) => Some(r.replica),
            Message::Request(_) | Message::FetchState { .. } | Message::State { .. } => None,
        }
    }

    /// A short name for logs and test filters.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Request(_) => "request",
            Message::Reply(_) => "reply",
            Message::PrePrepare(_) => "pre-prepare",
            Message::Prepare(_) => "prepare",
            Message::Commit(_) => "commit",
            Message::Checkpoint(_) => "checkpoint",
            Message::ViewChange(_) => "view-change",
            Message::NewView(_) => "new-view",
            Message::FetchState { .. } => "fetch-state",
            Message::State { .. } => "state",
        }
    }
}
