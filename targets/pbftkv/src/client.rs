//! The client side of PBFT: one request at a time per client, numbered by a growing
//! timestamp, sent to every replica and retransmitted until answered; the reply collector
//! accepts a result once f + 1 distinct replicas sent the same one (at least one of them
//! is correct, and a correct replica only replies with what the agreed order produced).
//!
//! Sending to all replicas from the start (rather than to the primary, then to all on a
//! timeout) costs messages but lets every backup start its view-change timer at once when
//! the primary ignores the request.

use crate::kv::{ClientId, Op, Outcome, Request};
use crate::pbft::{Message, Node, ReplicaId, Reply};
use std::collections::BTreeMap;

/// A request waiting for f + 1 matching replies.
#[derive(Debug, Clone)]
struct Waiting {
    request: Request,
    /// Each replica's latest reply to it.
    replies: BTreeMap<ReplicaId, Outcome>,
    resend_in: u64,
}

/// Builds the signed request for an op at a timestamp with the client's key
/// ([`crate::auth::ClientSigner::request`] for ed25519).
pub type RequestSigner = Box<dyn Fn(u64, Op) -> Request>;

/// One client's request state and reply collector.
pub struct Client {
    id: ClientId,
    signer: RequestSigner,
    n: u32,
    f: usize,
    timestamp: u64,
    resend_ticks: u64,
    waiting: Option<Waiting>,
}

impl Client {
    /// Client `id` (the id `signer`'s requests carry) of `n` replicas tolerating `f` faulty
    /// ones, retransmitting every
    /// `resend_ticks`. `first_timestamp` must exceed any timestamp this client id used
    /// before (a restarted client takes, say, the wall clock).
    pub fn new(
        id: ClientId,
        n: u32,
        f: usize,
        resend_ticks: u64,
        first_timestamp: u64,
        signer: RequestSigner,
    ) -> Self {
        Client {
            id,
            signer,
            n,
            f,
            timestamp: first_timestamp,
            resend_ticks,
            waiting: None,
        }
    }

    pub fn id(&self) -> ClientId {
        self.id
    }

    /// The request waiting for its result, if any.
    pub fn waiting(&self) -> Option<&Request> {
        self.waiting.as_ref().map(|w| &w.request)
    }

    fn to_all(&self, req: &Request) -> Vec<(Node, Message)> {
        (0..self.n)
            .map(|r| (Node::Replica(r), Message::Request(req.clone())))
            .collect()
    }

    /// Starts a request (replacing any unanswered one, whose fate stays unknown) and
    /// returns the messages to send.
    pub fn submit(&mut self, op: Op) -> (Request, Vec<(Node, Message)>) {
        self.timestamp += 1;
        let request = (self.signer)(self.timestamp, op);
        self.waiting = Some(Waiting {
            request: request.clone(),
            replies: BTreeMap::new(),
            resend_in: self.resend_ticks,
        });
        let msgs = self.to_all(&request);
        (request, msgs)
    }

    /// Collects a reply from `from`; returns the request and its result once f + 1
    /// replicas agree on it.
    pub fn on_reply(&mut self, from: Node, reply: Reply) -> Option<(Request, Outcome)> {
        if from != Node::Replica(reply.replica) || reply.replica >= self.n {
            return None; // a replica speaking for another
        }
        let w = self.waiting.as_mut()?;
        if reply.client != self.id || reply.timestamp != w.request.timestamp {
            return None;
        }
        w.replies.insert(reply.replica, reply.result.clone());
        let matching = w.replies.values().filter(|r| **r == reply.result).count();
        if matching > self.f {
            let w = self.waiting.take()?;
            return Some((w.request, reply.result));
        }
        None
    }

    /// Advances the retransmission timer; returns messages to send.
    pub fn tick(&mut self) -> Vec<(Node, Message)> {
        let Some(w) = self.waiting.as_mut() else {
            return Vec::new();
        };
        w.resend_in = w.resend_in.saturating_sub(1);
        if w.resend_in > 0 {
            return Vec::new();
        }
        w.resend_in = self.resend_ticks;
        let req = w.request.clone();
        self.to_all(&req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::ClientSigner;

    fn client(resend: u64) -> Client {
        let s = ClientSigner::from_secret([3; 32]);
        Client::new(
            s.id(),
            4,
            1,
            resend,
            0,
            Box::new(move |ts, op| s.request(ts, op)),
        )
    }

    fn reply(replica: ReplicaId, ts: u64, result: Outcome) -> Reply {
        Reply {
            view: 0,
            client: ClientSigner::from_secret([3; 32]).id(),
            timestamp: ts,
            result,
            replica,
        }
    }

    #[test]
    fn accepts_after_f_plus_one_matching_replies_only() {
        let mut c = client(5);
        let (req, msgs) = c.submit(Op::Read { key: "k".into() });
        assert_eq!(msgs.len(), 4);
        let v = |x| Outcome::Value(Some(x));
        assert_eq!(
            c.on_reply(Node::Replica(0), reply(0, req.timestamp, v(1))),
            None
        );
        // The same replica twice is still one voice.
        assert_eq!(
            c.on_reply(Node::Replica(0), reply(0, req.timestamp, v(1))),
            None
        );
        // A different result does not match.
        assert_eq!(
            c.on_reply(Node::Replica(1), reply(1, req.timestamp, v(2))),
            None
        );
        // A replica claiming to be another is ignored.
        assert_eq!(
            c.on_reply(Node::Replica(3), reply(2, req.timestamp, v(1))),
            None
        );
        // A reply to an older request is ignored.
        assert_eq!(
            c.on_reply(Node::Replica(2), reply(2, req.timestamp - 1, v(1))),
            None
        );
        let got = c.on_reply(Node::Replica(2), reply(2, req.timestamp, v(1)));
        assert_eq!(got, Some((req, v(1))));
        assert!(c.waiting().is_none());
    }

    #[test]
    fn retransmits_until_answered() {
        let mut c = client(3);
        c.submit(Op::Read { key: "k".into() });
        assert!(c.tick().is_empty());
        assert!(c.tick().is_empty());
        assert_eq!(c.tick().len(), 4);
    }
}
