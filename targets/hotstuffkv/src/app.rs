//! The replicated application: key-value commands (read, write, compare-and-set) carried
//! in blocks, executed by hotstuff_rs's `App` calls into the library's app state.
//!
//! A block's data is one datum, the JSON of its [`Tx`]s; its data hash is the datum's
//! SHA-256. Executing a transaction writes the key (`k/<key>`, the value as decimal text)
//! and its **result** (`r/<client>/<seq>`, the [`Outcome`] as JSON) into the app state.
//! The result key does three jobs: the node that admitted the request answers it by
//! reading the result once the block is committed (so reads, too, are linearized by a
//! block); a transaction whose result already exists on the branch is skipped, so a
//! request that reaches two blocks (the mempool keeps it until it commits) takes effect
//! once; and a Byzantine leader that repeats one cannot make it act twice.
//!
//! Execution reads only the `AppBlockTreeView` the library hands in (committed state plus
//! the pending ancestors' updates), so every replica computes the same updates for a
//! block — the library's determinism rule.

use hotstuff_rs::app::{
    App, ProduceBlockRequest, ProduceBlockResponse, ValidateBlockRequest, ValidateBlockResponse,
};
use hotstuff_rs::block_tree::accessors::app::AppBlockTreeView;
use hotstuff_rs::block_tree::pluggables::KVStore;
use hotstuff_rs::types::data_types::{CryptoHash, Data, Datum};
use hotstuff_rs::types::update_sets::AppStateUpdates;
use nodeshell::kv::{Command, Outcome};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Most transactions one block carries; more wait for the node's next turn as leader.
pub const MAX_BLOCK_TXS: usize = 1024;

/// One client request in a block: who asked (a node-chosen client id, unique per node
/// and life) and its number, and the command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tx {
    pub client: u64,
    pub seq: u64,
    pub cmd: Command,
}

impl Tx {
    /// The transaction as the log request shows it.
    pub fn text(&self) -> String {
        format!("{}/{} {}", self.client, self.seq, self.cmd.text())
    }
}

/// The app-state key of `key`'s value.
pub fn value_key(key: &str) -> Vec<u8> {
    format!("k/{key}").into_bytes()
}

/// The app-state key of request (`client`, `seq`)'s result.
pub fn result_key(client: u64, seq: u64) -> Vec<u8> {
    format!("r/{client}/{seq}").into_bytes()
}

/// A result as the app state holds it.
pub fn decode_result(bytes: &[u8]) -> Option<Outcome> {
    serde_json::from_slice(bytes).ok()
}

/// The transactions in a block's datum.
pub fn decode_txs(datum: &[u8]) -> Option<Vec<Tx>> {
    serde_json::from_slice(datum).ok()
}

/// A block's transactions, if its data is what this app produces (one datum).
pub fn decode_block(data: &Data) -> Option<Vec<Tx>> {
    let mut it = data.iter();
    let (Some(datum), None) = (it.next(), it.next()) else {
        return None;
    };
    decode_txs(datum.bytes())
}

fn data_hash(bytes: &[u8]) -> CryptoHash {
    CryptoHash::new(Sha256::digest(bytes).into())
}

/// Requests waiting to be proposed, by (client, seq). Shared between the event loop
/// (which adds requests and removes committed or expired ones) and the library's
/// algorithm thread (which reads it when this node leads a view).
#[derive(Clone, Default)]
pub struct Mempool(Arc<Mutex<BTreeMap<(u64, u64), Tx>>>);

impl Mempool {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<(u64, u64), Tx>> {
        // Only whole inserts and removes happen under the lock: a poisoned map is intact.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn add(&self, tx: Tx) {
        self.lock().insert((tx.client, tx.seq), tx);
    }

    pub fn remove(&self, client: u64, seq: u64) {
        self.lock().remove(&(client, seq));
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn pending(&self) -> Vec<Tx> {
        self.lock().values().cloned().collect()
    }
}

/// Executes `txs` on top of `view`: the transactions that took effect (not executed on
/// this branch before) and the app-state updates they make.
fn execute<K: KVStore>(view: &AppBlockTreeView<'_, K>, txs: &[Tx]) -> (Vec<Tx>, AppStateUpdates) {
    let mut overlay: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let get = |overlay: &HashMap<Vec<u8>, Vec<u8>>, key: &[u8]| -> Option<Vec<u8>> {
        overlay.get(key).cloned().or_else(|| view.app_state(key))
    };
    let mut done = Vec::new();
    for tx in txs {
        let rkey = result_key(tx.client, tx.seq);
        if get(&overlay, &rkey).is_some() {
            continue;
        }
        let vkey = value_key(tx.cmd.key());
        let current = get(&overlay, &vkey)
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.parse::<i64>().ok());
        let (outcome, new) = match &tx.cmd {
            Command::Read { .. } => (Outcome::Value(current), None),
            Command::Write { value, .. } => (Outcome::Done, Some(*value)),
            Command::Cas { from, to, .. } if current == Some(*from) => (Outcome::Done, Some(*to)),
            Command::Cas { .. } => (Outcome::CompareFailed { current }, None),
        };
        if let Some(v) = new {
            overlay.insert(vkey, v.to_string().into_bytes());
        }
        // An `Outcome` always serializes.
        overlay.insert(rkey, serde_json::to_vec(&outcome).unwrap_or_default());
        done.push(tx.clone());
    }
    let mut updates = AppStateUpdates::new();
    for (k, v) in overlay {
        updates.insert(k, v);
    }
    (done, updates)
}

/// The `App` hotstuff_rs drives.
pub struct KvApp {
    mempool: Mempool,
    /// How long a leader with an empty mempool waits for a request before proposing an
    /// empty block: the library proposes every view, so without it an idle cluster makes
    /// blocks as fast as its disks sync. The library's docs suggest this very place.
    idle: Duration,
}

impl KvApp {
    pub fn new(mempool: Mempool, idle: Duration) -> Self {
        KvApp { mempool, idle }
    }
}

impl<K: KVStore> App<K> for KvApp {
    fn produce_block(&mut self, request: ProduceBlockRequest<K>) -> ProduceBlockResponse {
        let deadline = Instant::now() + self.idle;
        while self.mempool.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let pending = self.mempool.pending();
        let (mut txs, _) = execute(request.block_tree(), &pending);
        txs.truncate(MAX_BLOCK_TXS);
        // Execute again over what is proposed (the cut may drop a tx a later one saw).
        let (txs, updates) = execute(request.block_tree(), &txs);
        let bytes = serde_json::to_vec(&txs).unwrap_or_default();
        ProduceBlockResponse {
            data_hash: data_hash(&bytes),
            data: Data::new(vec![Datum::new(bytes)]),
            app_state_updates: Some(updates),
            validator_set_updates: None,
        }
    }

    fn validate_block(&mut self, request: ValidateBlockRequest<K>) -> ValidateBlockResponse {
        self.validate_block_for_sync(request)
    }

    fn validate_block_for_sync(
        &mut self,
        request: ValidateBlockRequest<K>,
    ) -> ValidateBlockResponse {
        let block = request.proposed_block();
        let Some(txs) = decode_block(&block.data) else {
            return ValidateBlockResponse::Invalid;
        };
        let Some(datum) = block.data.iter().next() else {
            return ValidateBlockResponse::Invalid;
        };
        if data_hash(&datum.bytes()[..]) != block.data_hash || txs.len() > MAX_BLOCK_TXS {
            return ValidateBlockResponse::Invalid;
        }
        let (_, updates) = execute(request.block_tree(), &txs);
        ValidateBlockResponse::Valid {
            app_state_updates: Some(updates),
            validator_set_updates: None,
        }
    }
}
