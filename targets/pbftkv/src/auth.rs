//! ed25519 authentication for real nodes and clients: [`Ed25519Auth`] signs with one
//! replica's key and verifies every replica's and any self-certifying client's signature;
//! [`ClientSigner`] is a client's key pair.
//!
//! Replica bodies are signed over their 32-byte SHA-256 digest (see [`crate::kv::digest_of`]);
//! requests over [`crate::kv::Request::signing_bytes`], a documented layout a client in
//! another program can reproduce. Verification is `verify_strict`: no small-order keys or
//! malleable signatures, so a Byzantine replica cannot produce a second valid signature
//! for a body another replica signed.

use crate::kv::{client_id, signing_bytes, ClientId, ClientKey, Digest, Op, Request, Sig};
use crate::pbft::{Authenticator, ReplicaId};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// One replica's view of the keys: its own signing key and every replica's public key
/// (index = replica id).
pub struct Ed25519Auth {
    key: SigningKey,
    replicas: Vec<VerifyingKey>,
}

impl Ed25519Auth {
    /// `key` is this replica's; `replicas[i]` is replica i's public key.
    pub fn new(key: SigningKey, replicas: Vec<VerifyingKey>) -> Self {
        Ed25519Auth { key, replicas }
    }
}

impl Authenticator for Ed25519Auth {
    fn sign(&self, body: &Digest) -> Sig {
        Sig(self.key.sign(&body.0).to_bytes())
    }

    fn verify(&self, signer: ReplicaId, body: &Digest, sig: &Sig) -> bool {
        self.replicas.get(signer as usize).is_some_and(|k| {
            k.verify_strict(&body.0, &Signature::from_bytes(&sig.0))
                .is_ok()
        })
    }

    fn verify_client(&self, r: &Request) -> bool {
        verify_request(r)
    }
}

/// A self-certifying request's check, needing no replica keys: its client id is its
/// key's and the signature verifies under that key.
pub fn verify_request(r: &Request) -> bool {
    if r.client != client_id(&r.key) {
        return false;
    }
    let Ok(key) = VerifyingKey::from_bytes(&r.key.0) else {
        return false;
    };
    key.verify_strict(&r.signing_bytes(), &Signature::from_bytes(&r.sig.0))
        .is_ok()
}

/// A client's key pair; its id is [`client_id`] of the public key.
#[derive(Clone)]
pub struct ClientSigner {
    key: SigningKey,
}

impl ClientSigner {
    /// From a 32-byte secret (seeded in tests, random in a real client).
    pub fn from_secret(secret: [u8; 32]) -> Self {
        ClientSigner {
            key: SigningKey::from_bytes(&secret),
        }
    }

    pub fn public(&self) -> ClientKey {
        ClientKey(self.key.verifying_key().to_bytes())
    }

    pub fn id(&self) -> ClientId {
        client_id(&self.public())
    }

    /// The signed request for `op` at `timestamp`.
    pub fn request(&self, timestamp: u64, op: Op) -> Request {
        let key = self.public();
        let sig = Sig(self
            .key
            .sign(&signing_bytes(&key, timestamp, &op))
            .to_bytes());
        Request {
            client: client_id(&key),
            key,
            timestamp,
            op,
            sig,
        }
    }
}

/// A replica's signing key from its 32-byte secret.
pub fn replica_key(secret: [u8; 32]) -> SigningKey {
    SigningKey::from_bytes(&secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::digest_of;

    fn write(v: i64) -> Op {
        Op::Write {
            key: "k".into(),
            value: v,
        }
    }

    #[test]
    fn replica_signatures_verify_only_under_the_signers_key() {
        let keys: Vec<SigningKey> = (0..4u8).map(|i| replica_key([i + 1; 32])).collect();
        let public: Vec<VerifyingKey> = keys.iter().map(|k| k.verifying_key()).collect();
        let a = Ed25519Auth::new(keys[1].clone(), public.clone());
        let b = Ed25519Auth::new(keys[2].clone(), public);
        let body = digest_of(&("prepare", 1u64));
        let sig = a.sign(&body);
        assert!(b.verify(1, &body, &sig));
        assert!(!b.verify(2, &body, &sig), "another replica's signature");
        assert!(!b.verify(9, &body, &sig), "no such replica");
        assert!(
            !b.verify(1, &digest_of(&("prepare", 2u64)), &sig),
            "another body"
        );
    }

    #[test]
    fn a_request_is_bound_to_its_key_and_its_key_to_its_id() {
        let alice = ClientSigner::from_secret([7; 32]);
        let mallory = ClientSigner::from_secret([8; 32]);
        let r = alice.request(5, write(1));
        assert_eq!(r.client, alice.id());
        assert!(verify_request(&r));
        // Tampering with the op, the timestamp or the id breaks it.
        assert!(!verify_request(&Request {
            op: write(2),
            ..r.clone()
        }));
        assert!(!verify_request(&Request {
            timestamp: 6,
            ..r.clone()
        }));
        assert!(!verify_request(&Request {
            client: mallory.id(),
            ..r.clone()
        }));
        // Mallory cannot sign under Alice's id: her own key certifies another id.
        let m = mallory.request(5, write(2));
        assert!(!verify_request(&Request {
            client: alice.id(),
            ..m.clone()
        }));
        assert!(!verify_request(&Request {
            key: alice.public(),
            ..m
        }));
    }
}
