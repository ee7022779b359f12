//! The replicated state: the shell's key-value map (`nodeshell::kv`) plus the client table
//! PBFT keeps in the state so that execution is at-most-once per client timestamp, and the
//! digest over both that checkpoints carry.
//!
//! The client table is part of the checkpointed state: a replica that catches up by state
//! transfer must also know which requests were already executed and what they returned,
//! or it would execute a retransmitted request twice.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

/// Byte arrays cross the wire and the data dir as lower-case hex strings: serde derives
/// nothing for arrays longer than 32 ([u8; 64] signatures), and hex (unlike a JSON array of
/// 64 numbers) is compact and matches how the client protocol writes keys and signatures.
/// No crate for it: the two functions are `protocol::hex` / `protocol::hex_bytes`.
macro_rules! hex_serde {
    ($t:ty, $n:literal) => {
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&crate::protocol::hex(&self.0))
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                crate::protocol::hex_bytes::<$n>(&s)
                    .map(Self)
                    .ok_or_else(|| {
                        serde::de::Error::custom(concat!("expected ", $n, " bytes as hex"))
                    })
            }
        }
    };
}

/// A SHA-256 digest: of a request, a state or a message body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Digest(pub [u8; 32]);
hex_serde!(Digest, 32);

/// Feeds the bytes a value's `Hash` implementation writes into SHA-256.
///
/// Why `Hash` rather than a serialisation format: every message type already derives it,
/// and the derived encoding is unambiguous for the types digested here (enum variants
/// are prefixed by their discriminant, collections by their length, strings end in 0xff,
/// which UTF-8 never contains). Integers are fed little-endian and `usize` as 8 bytes, so
/// digests do not depend on the platform. The digest is not part of the wire protocol:
/// clients sign [`Request::signing_bytes`], whose layout is documented.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn write_u8(&mut self, i: u8) {
        self.0.update([i]);
    }
    fn write_u16(&mut self, i: u16) {
        self.0.update(i.to_le_bytes());
    }
    fn write_u32(&mut self, i: u32) {
        self.0.update(i.to_le_bytes());
    }
    fn write_u64(&mut self, i: u64) {
        self.0.update(i.to_le_bytes());
    }
    fn write_u128(&mut self, i: u128) {
        self.0.update(i.to_le_bytes());
    }
    fn write_usize(&mut self, i: usize) {
        self.0.update((i as u64).to_le_bytes());
    }
    fn write_i8(&mut self, i: i8) {
        self.write_u8(i as u8);
    }
    fn write_i16(&mut self, i: i16) {
        self.write_u16(i as u16);
    }
    fn write_i32(&mut self, i: i32) {
        self.write_u32(i as u32);
    }
    fn write_i64(&mut self, i: i64) {
        self.write_u64(i as u64);
    }
    fn write_i128(&mut self, i: i128) {
        self.write_u128(i as u128);
    }
    fn write_isize(&mut self, i: isize) {
        self.write_u64(i as i64 as u64);
    }
    /// Never used for digests (see [`digest_of`]); `Hasher` requires it.
    fn finish(&self) -> u64 {
        let d = self.0.clone().finalize();
        u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
    }
}

/// The SHA-256 digest of any hashable value; deterministic across processes and platforms.
pub fn digest_of<T: Hash + ?Sized>(v: &T) -> Digest {
    let mut h = Sha256Hasher(Sha256::new());
    v.hash(&mut h);
    Digest(h.0.finalize().into())
}

/// SHA-256 of raw bytes.
pub fn sha256(bytes: &[u8]) -> Digest {
    Digest(Sha256::digest(bytes).into())
}

/// A client's name in the client table: the first 16 bytes of the SHA-256 of its public
/// key (see [`client_id`]).
pub type ClientId = u128;

/// A client's ed25519 public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ClientKey(pub [u8; 32]);
hex_serde!(ClientKey, 32);

/// The id a key certifies. Clients are self-certifying: nobody enrols them, and a request
/// is accepted only if its `client` is the id of the key it carries and the signature
/// verifies under that key. Taking another client's id needs a key whose hash shares 128
/// bits with its key (a second preimage, 2^128 work); a birthday collision (2^64) only
/// gives an attacker two keys of its own under one id, which harms nobody else.
pub fn client_id(key: &ClientKey) -> ClientId {
    let d = sha256(&key.0).0;
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    u128::from_le_bytes(b)
}

/// A signature (ed25519's 64 bytes; the simulation's cheap stand-in fills the same shape).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sig(pub [u8; 64]);
hex_serde!(Sig, 64);

impl Default for Sig {
    fn default() -> Self {
        Sig([0; 64])
    }
}

/// A client operation: the shell's command (read, write, cas). Reads are ordered like
/// writes (PBFT's read-only optimisation is not implemented), so every result comes from
/// one point in the total order.
pub use nodeshell::kv::Command as Op;
/// What executing an operation returned (the shell's outcome).
pub use nodeshell::kv::Outcome;

/// A client request: `timestamp` grows with each request of one client, and a replica
/// executes a given (client, timestamp) at most once. `sig` is the client's signature
/// over [`Request::signing_bytes`] under `key`: without it a Byzantine primary could order
/// an operation the client never asked for under the client's name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Request {
    pub client: ClientId,
    pub key: ClientKey,
    pub timestamp: u64,
    pub op: Op,
    pub sig: Sig,
}

/// Prefixes the bytes a client signs, so a request signature is never valid as anything
/// else signed with the same key.
pub const REQUEST_DOMAIN: &[u8] = b"pbftkv request v1\0";

impl Request {
    pub fn digest(&self) -> Digest {
        digest_of(self)
    }

    /// What the client signs, a fixed layout that clients in other programs reproduce
    /// (faultline's `pbft` client does; targets/pbftkv/README.md documents it):
    /// [`REQUEST_DOMAIN`], the 32-byte public key, the timestamp (u64 little-endian), then
    /// the op: tag byte 0 read / 1 write / 2 cas, the key's length (u64 LE) and UTF-8
    /// bytes, then `value` or `from`, `to` (i64 LE). The client id is not signed: it is
    /// a function of the key.
    pub fn signing_bytes(&self) -> Vec<u8> {
        signing_bytes(&self.key, self.timestamp, &self.op)
    }
}

/// [`Request::signing_bytes`] of its parts.
pub fn signing_bytes(key: &ClientKey, timestamp: u64, op: &Op) -> Vec<u8> {
    let mut b = Vec::with_capacity(REQUEST_DOMAIN.len() + 32 + 8 + 1 + 8 + 16 + 16);
    b.extend_from_slice(REQUEST_DOMAIN);
    b.extend_from_slice(&key.0);
    b.extend_from_slice(&timestamp.to_le_bytes());
    let (tag, k, ints): (u8, &str, Vec<i64>) = match op {
        Op::Read { key } => (0, key, vec![]),
        Op::Write { key, value } => (1, key, vec![*value]),
        Op::Cas { key, from, to } => (2, key, vec![*from, *to]),
    };
    b.push(tag);
    b.extend_from_slice(&(k.len() as u64).to_le_bytes());
    b.extend_from_slice(k.as_bytes());
    for i in ints {
        b.extend_from_slice(&i.to_le_bytes());
    }
    b
}

/// The whole replicated state, as checkpointed and shipped in state transfer.
/// `BTreeMap`s so the digest does not depend on insertion order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Kv {
    data: nodeshell::kv::Kv,
    /// Per client: the last executed timestamp and its result. Not the shell's
    /// `ClientTable`: that one names clients by u64, and a self-certifying id needs 128
    /// bits (see [`client_id`]).
    clients: BTreeMap<ClientId, (u64, Outcome)>,
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
        match self.clients.get(&req.client) {
            Some((ts, out)) if *ts == req.timestamp => Some(Some(out)),
            Some((ts, _)) if *ts > req.timestamp => Some(None),
            _ => None,
        }
    }

    /// Executes one ordered request; `None` when it (or a later one of its client) was
    /// executed before, which then changes nothing.
    pub fn execute(&mut self, req: &Request) -> Option<Outcome> {
        if self.executed(req).is_some() {
            return None;
        }
        let out = self.data.execute(&req.op);
        self.clients
            .insert(req.client, (req.timestamp, out.clone()));
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(ts: u64, op: Op) -> Request {
        Request {
            client: 1,
            key: ClientKey::default(),
            timestamp: ts,
            op,
            sig: Sig::default(),
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
