//! Replica keys for a test cluster: every replica's ed25519 key is derived from a cluster
//! secret and the replica's name, and each node keeps its own in `{data_dir}/node.key`.
//!
//! Why derivation, and why it is test-only: a node must know every replica's public key
//! before it can check one message, and faultline starts nodes from one command template
//! with no step in which keys could be generated and handed around. Deriving them from
//! `--cluster-secret` (faultline passes its per-run `{cluster_token}`) gives every node
//! all public keys with no exchange — but also lets anyone holding the secret derive every
//! private key, so a real deployment would generate keys apart and distribute only the
//! public ones. For faultline's Byzantine faults that is no loss: a twin is meant to hold
//! its node's key (target.yaml copies `node.key` into the twin's data dir), and no test
//! relies on a replica being unable to sign as another.
//!
//! `node.key` is written at the first start and read at every later one, and must match
//! the key the secret derives for this node: a data dir from another run or another node
//! is refused with a message naming the file.

use crate::kv::sha256;
use crate::protocol::{hex, hex_bytes};
use anyhow::{bail, Context, Result};
use ed25519_dalek::{SigningKey, VerifyingKey};
use nodeshell::disk::write_atomic;
use std::fs;
use std::path::Path;

/// The key file's name in the data dir (target.yaml's `identity.files`).
pub const KEY_FILE: &str = "node.key";

/// The secret key the cluster secret gives replica `name`.
pub fn derive(cluster_secret: &str, name: &str) -> SigningKey {
    let mut input = b"pbftkv test replica key v1\0".to_vec();
    input.extend_from_slice(cluster_secret.as_bytes());
    input.push(0);
    input.extend_from_slice(name.as_bytes());
    SigningKey::from_bytes(&sha256(&input).0)
}

/// This node's signing key (from `dir`/node.key, written there at the first start) and
/// every member's public key, in `members` order.
pub fn load(
    dir: &Path,
    cluster_secret: &str,
    me: &str,
    members: &[String],
) -> Result<(SigningKey, Vec<VerifyingKey>)> {
    let derived = derive(cluster_secret, me);
    let path = dir.join(KEY_FILE);
    let key = match fs::read_to_string(&path) {
        Ok(text) => {
            let Some(secret) = hex_bytes::<32>(text.trim()) else {
                bail!(
                    "{}: expected 64 hex digits (an ed25519 secret key)",
                    path.display()
                );
            };
            let key = SigningKey::from_bytes(&secret);
            if key.verifying_key() != derived.verifying_key() {
                bail!(
                    "{}: not the key --cluster-secret gives node {me} (a data dir from another run or node?)",
                    path.display()
                );
            }
            key
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            write_atomic(
                dir,
                KEY_FILE,
                format!("{}\n", hex(&derived.to_bytes())).as_bytes(),
            )
            .with_context(|| format!("writing {}", path.display()))?;
            derived
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let public = members
        .iter()
        .map(|m| derive(cluster_secret, m).verifying_key())
        .collect();
    Ok((key, public))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_file_is_written_once_and_must_match_the_secret() {
        let dir = std::env::temp_dir().join(format!("pbftkv-keys-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let members = vec!["n1".to_string(), "n2".to_string()];
        let (k1, public) = load(&dir, "s", "n2", &members).unwrap();
        assert_eq!(public[1], k1.verifying_key());
        assert_ne!(public[0], public[1]);
        let (k2, _) = load(&dir, "s", "n2", &members).unwrap();
        assert_eq!(k1.to_bytes(), k2.to_bytes());
        let err = format!("{:#}", load(&dir, "other", "n2", &members).unwrap_err());
        assert!(err.contains("node.key") && err.contains("n2"), "{err}");
        fs::write(dir.join(KEY_FILE), "zz").unwrap();
        let err = format!("{:#}", load(&dir, "s", "n2", &members).unwrap_err());
        assert!(err.contains("64 hex digits"), "{err}");
        let _ = fs::remove_dir_all(&dir);
    }
}
