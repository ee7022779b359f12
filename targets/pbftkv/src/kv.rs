//! The replicated state: the shell's key-value map (`nodeshell::kv`) plus the client table
//! PBFT keeps in the state so that execution is at-most-once per client timestamp, and the
//! digest over both that checkpoints carry.
//!
//! The client table is part of the checkpointed state: a replica that catches up by state
//! transfer must also know which requests were already executed and what they returned,
//! or it would execute a retransmitted request twice.

use nodeshell::kv::ClientTable;
use rustc_hash::FxHasher;
use std::hash::{Hash, Hasher};

/// A collision-*unlikely* digest (see Cargo.toml on FxHasher): of a request, a state or a
/// message body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Digest(pub u64);

/// The digest of any hashable value; deterministic across processes.
pub fn digest_of<T: Hash + ?Sized>(v: &T) -> Digest {
    let mut h = FxHasher::default();
    v.hash(&mut h);
    Digest(h.finish())
}

pub type ClientId = u64;

/// A client operation: the shell's command (read, write, cas). Reads are ordered like
/// writes (PBFT's read-only optimisation is not implemented), so every result comes from
/// one point in the total order.
pub use nodeshell::kv::Command as Op;
/// What executing an operation returned (the shell's outcome).
pub use nodeshell::kv::Outcome;

/// A client request: `timestamp` grows with each request of one client, and a replica
/// executes a given (client, timestamp) at most once. `sig` is the client's signature
/// over [`Request::signed_part`]: without it a Byzantine primary could order an operation
/// the client never asked for under the client's name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Request {
    pub client: ClientId,
    pub timestamp: u64,
    pub op: Op,
    pub sig: u64,
}

impl Request {
    pub fn digest(&self) -> Digest {
        digest_of(self)
    }

    /// What the client signs.
    pub fn signed_part(&self) -> Digest {
        digest_of(&(self.client, self.timestamp, &self.op))
    }
}

/// The whole replicated state, as checkpointed and shipped in state transfer.
/// `BTreeMap`s so the digest does not depend on insertion order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Kv {
    data: nodeshell::kv::Kv,
    /// Per client: the last executed timestamp and its result.
    clients: ClientTable,
}

impl Kv {
    pub fn get(&self, key: &str) -> Option<i64> {
        self.data.get(key)
    }

    /// The digest checkpoint messages carry.
    pub fn digest(&self) -> Digest {
        digest_of(self)
    }

    /// The cached result if `req` (or a later request of its client) was already executed:
    /// `Some(Some(result))` for this very request, `Some(None)` for an older one.
    pub fn executed(&self, req: &Request) -> Option<Option<&Outcome>> {
        self.clients.answered(req.client, req.timestamp)
    }

    /// Executes one ordered request; `None` when it (or a later one of its client) was
    /// executed before, which then changes nothing.
    pub fn execute(&mut self, req: &Request) -> Option<Outcome> {
        if self.executed(req).is_some() {
            return None;
        }
        self.clients
            .execute(&mut self.data, req.client, req.timestamp, &req.op)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(ts: u64, op: Op) -> Request {
        Request {
            client: 1,
            timestamp: ts,
            op,
            sig: 0,
        }
    }

    #[test]
    fn cas_and_at_most_once() {
        let mut kv = Kv::default();
        let cas = |ts| {
            req(
                ts,
                Op::Cas {
                    key: "k".into(),
                    from: 1,
                    to: 2,
                },
            )
        };
        assert_eq!(
            kv.execute(&cas(1)),
            Some(Outcome::CompareFailed { current: None })
        );
        let w = req(
            2,
            Op::Write {
                key: "k".into(),
                value: 1,
            },
        );
        assert_eq!(kv.execute(&w), Some(Outcome::Done));
        assert_eq!(
            kv.execute(&w),
            None,
            "a retransmission is not executed again"
        );
        assert_eq!(kv.executed(&w), Some(Some(&Outcome::Done)));
        assert_eq!(kv.execute(&cas(1)), None, "an older timestamp is stale");
        assert_eq!(kv.execute(&cas(3)), Some(Outcome::Done));
        assert_eq!(kv.get("k"), Some(2));
        let r = req(4, Op::Read { key: "k".into() });
        assert_eq!(kv.execute(&r), Some(Outcome::Value(Some(2))));
    }

    #[test]
    fn digest_covers_client_table() {
        let mut a = Kv::default();
        let mut b = Kv::default();
        a.execute(&req(1, Op::Read { key: "x".into() }));
        assert_ne!(a.digest(), b.digest());
        b.execute(&req(1, Op::Read { key: "x".into() }));
        assert_eq!(a.digest(), b.digest());
    }
}
