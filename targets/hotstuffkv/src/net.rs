//! hotstuff_rs's `Network` over the node shell's TCP transport.
//!
//! The library names replicas by ed25519 verifying keys and calls `send` / `broadcast` /
//! `recv` from its own threads without blocking; the shell names nodes ("n1") and runs
//! on tokio. A [`Frame`] is one library message, borsh-encoded as the library derives it,
//! carried base64 inside the shell's JSON lines between named nodes; each node's key is
//! the one the cluster secret gives its name (`pbftkv::keys`), so the mapping is the same
//! on every node. Sending hands the frame to the peer's bounded queue (`try_send`: a full
//! queue drops, as a lossy network would, and the library's timeouts and block sync cope).
//!
//! Two departures from a plain socket:
//! - **Loopback.** The library expects its own broadcasts back — a proposer votes on its
//!   proposal when it receives it, and the next leader may be the voter itself — so
//!   `broadcast` and `send` to our own key go straight into our inbox.
//! - **`recv` waits a little.** The trait says `recv` returns at once when nothing is
//!   there, and the library's poller thread calls it in a loop with only a
//!   `thread::yield_now()` between calls, which spins a core per replica. `recv` waits
//!   up to [`RECV_WAIT`] for a message instead; it still returns the moment one arrives,
//!   and the poller (its only caller) checks for shutdown between calls.

use anyhow::{Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::VerifyingKey;
use hotstuff_rs::networking::messages::Message;
use hotstuff_rs::networking::network::Network;
use hotstuff_rs::types::update_sets::ValidatorSetUpdates;
use hotstuff_rs::types::validator_set::ValidatorSet;
use nodeshell::log_line;
use nodeshell::transport::{PeerMessage, Peers};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc as tokio_mpsc;

/// Longest `recv` waits for a message before answering None.
pub const RECV_WAIT: Duration = Duration::from_millis(5);

/// One library message between two nodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Frame {
    pub from: String,
    pub to: String,
    /// The borsh encoding of a `hotstuff_rs` `Message`, base64.
    pub msg: String,
}

impl PeerMessage for Frame {
    type Peer = String;
    fn sender(&self) -> &String {
        &self.from
    }
    fn receiver(&self) -> &String {
        &self.to
    }
}

/// Who is who: every member's name and key.
#[derive(Debug)]
pub struct Directory {
    pub me: String,
    pub my_key: VerifyingKey,
    by_key: HashMap<[u8; 32], String>,
    by_name: HashMap<String, VerifyingKey>,
}

impl Directory {
    /// `members` are (name, key) pairs, this node among them.
    pub fn new(me: &str, members: &[(String, VerifyingKey)]) -> Result<Directory> {
        let my_key = members
            .iter()
            .find(|(n, _)| n == me)
            .map(|(_, k)| *k)
            .with_context(|| format!("{me} is not among the members"))?;
        Ok(Directory {
            me: me.to_string(),
            my_key,
            by_key: members
                .iter()
                .map(|(n, k)| (k.to_bytes(), n.clone()))
                .collect(),
            by_name: members.iter().cloned().collect(),
        })
    }

    pub fn name(&self, key: &VerifyingKey) -> Option<&str> {
        self.by_key.get(&key.to_bytes()).map(String::as_str)
    }

    pub fn key(&self, name: &str) -> Option<VerifyingKey> {
        self.by_name.get(name).copied()
    }
}

/// The `Network` the library is given; clones (one per library thread) share everything.
#[derive(Clone)]
pub struct TcpNetwork {
    dir: Arc<Directory>,
    to_peers: Arc<Peers<Frame>>,
    /// Our own messages, and the peers' once decoded (fed by [`forward_incoming`]).
    inbox_tx: Sender<(VerifyingKey, Message)>,
    inbox: Arc<Mutex<Receiver<(VerifyingKey, Message)>>>,
}

impl TcpNetwork {
    /// The network, and the sender [`forward_incoming`] feeds the inbox with.
    pub fn new(
        dir: Arc<Directory>,
        to_peers: Peers<Frame>,
    ) -> (TcpNetwork, Sender<(VerifyingKey, Message)>) {
        let (inbox_tx, inbox) = mpsc::channel();
        let net = TcpNetwork {
            dir,
            to_peers: Arc::new(to_peers),
            inbox_tx: inbox_tx.clone(),
            inbox: Arc::new(Mutex::new(inbox)),
        };
        (net, inbox_tx)
    }

    fn encode(message: &Message) -> Option<String> {
        message.try_to_vec().ok().map(|b| B64.encode(b))
    }

    fn send_encoded(&self, name: &str, msg: String) {
        if let Some(tx) = self.to_peers.get(name) {
            let _ = tx.try_send(Frame {
                from: self.dir.me.clone(),
                to: name.to_string(),
                msg,
            });
        }
    }
}

impl Network for TcpNetwork {
    // The members are fixed by --peers (the app never changes the validator set), and the
    // shell dials all of them from the start.
    fn init_validator_set(&mut self, _: ValidatorSet) {}

    fn update_validator_set(&mut self, _: ValidatorSetUpdates) {}

    fn broadcast(&mut self, message: Message) {
        if let Some(msg) = Self::encode(&message) {
            for name in self.to_peers.keys() {
                self.send_encoded(name, msg.clone());
            }
        }
        let _ = self.inbox_tx.send((self.dir.my_key, message));
    }

    fn send(&mut self, peer: VerifyingKey, message: Message) {
        if peer == self.dir.my_key {
            let _ = self.inbox_tx.send((peer, message));
            return;
        }
        let Some(name) = self.dir.name(&peer).map(str::to_string) else {
            return;
        };
        if let Some(msg) = Self::encode(&message) {
            self.send_encoded(&name, msg);
        }
    }

    fn recv(&mut self) -> Option<(VerifyingKey, Message)> {
        let inbox = self.inbox.lock().unwrap_or_else(|e| e.into_inner());
        inbox.recv_timeout(RECV_WAIT).ok()
    }
}

/// Decodes the peers' frames into the library's inbox, until the transport closes. A
/// frame from a name we do not know, for another node, or that does not decode is
/// dropped with a log line (a peer on another version, or a Byzantine one).
pub async fn forward_incoming(
    dir: Arc<Directory>,
    mut from_peers: tokio_mpsc::Receiver<Frame>,
    inbox: Sender<(VerifyingKey, Message)>,
) {
    let mut complaints = 0u64;
    while let Some(frame) = from_peers.recv().await {
        let decoded = (frame.to == dir.me)
            .then(|| dir.key(&frame.from))
            .flatten()
            .and_then(|key| {
                let bytes = B64.decode(frame.msg.as_bytes()).ok()?;
                Some((key, Message::try_from_slice(&bytes).ok()?))
            });
        match decoded {
            Some(m) => {
                if inbox.send(m).is_err() {
                    return;
                }
            }
            None => {
                complaints += 1;
                // One line per power of two: a flood must not fill the log.
                if complaints.is_power_of_two() {
                    log_line(
                        &dir.me,
                        &format!(
                            "dropped an undecodable frame from {:?} to {:?} ({complaints} so far)",
                            frame.from, frame.to
                        ),
                    );
                }
            }
        }
    }
}
