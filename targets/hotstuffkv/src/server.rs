//! The node: keys, the block tree's first-start initialisation, the hotstuff_rs replica,
//! the client port, and the watching of commits that answers clients.
//!
//! **Start.** Members are this node and `--peers`, sorted by name; each one's key is
//! derived from `--cluster-secret` (pbftkv's test-only derivation; `node.key` in the data
//! dir), and all of them, power 1 each, are the validator set. The library's
//! `Replica::initialize` runs only when the store is empty: it resets the locked and
//! highest phase certificates, so running it again after a crash would let the replica
//! forget what it locked on.
//!
//! **Clients.** Any node takes any request. A read, write or cas becomes a [`Tx`] under
//! this node's client id (unique per process: incarnation, pid, node) and the shell's token as its
//! sequence number, and waits in the mempool until this node leads a view and proposes
//! it. Every tick the loop looks at the committed chain: for each newly committed block
//! it answers the requests of ours the block carries from their results in the committed
//! app state, and drops them from the mempool. A request not committed within
//! `--request-timeout-ms` is answered "info" (it may still commit: it may sit in a block
//! not yet committed). Nothing is ever answered before its block commits, so reads are
//! linearized by the chain like writes.
//!
//! **Status and log.** `status` names the leader of the view this node is in (the
//! library's round-robin `select_leader`, restated for equal powers) and reports the committed height; it reports
//! `leader: true` on the view's leader once a block has committed, so faultline's
//! readiness probe waits for a chain that makes progress. `log` pages through the
//! committed blocks by height (index = height + 1), each as its hash and its
//! transactions, for the agreement oracle.
//!
//! **The library's threads.** A panic in any of them is fatal to the node (hook below):
//! the library's threads `expect` on its own invariants, and a replica whose algorithm
//! thread died would otherwise keep its ports open and answer nothing. Its block-sync
//! server thread polls with `thread::yield_now()` and never sleeps; it is given the
//! lowest CPU priority so that, with several nodes on one machine, it takes only idle
//! time (see `deprioritize_sync_server`).

use crate::app::{decode_result, decode_txs, result_key, KvApp, Mempool, Tx};
use crate::cli::Settings;
use crate::net::{forward_incoming, Directory, Frame, TcpNetwork};
use crate::store::DiskStore;
use anyhow::{Context, Result};
use hotstuff_rs::block_tree::accessors::public::BlockTreeSnapshot;
use hotstuff_rs::block_tree::pluggables::KVGet;
use hotstuff_rs::replica::{Configuration, Replica, ReplicaSpec};
use hotstuff_rs::types::data_types::{BlockHeight, BufferSize, ChainID, EpochLength, Power};
use hotstuff_rs::types::update_sets::AppStateUpdates;
use hotstuff_rs::types::validator_set::{ValidatorSet, ValidatorSetState};
use nodeshell::client::{Call, Calls, LogEntry, LogPage, Reply, Request, Status, MAX_LOG_PAGE};
use nodeshell::disk::write_atomic;
use nodeshell::event_loop::{Listeners, Network};
use nodeshell::kv::{Command, Outcome};
use nodeshell::log_line;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// The incarnation counter's file in the data dir.
const INCARNATION_FILE: &str = "incarnation";

/// This start's number: one more than the last start's (client ids must not repeat).
fn next_incarnation(dir: &std::path::Path) -> Result<u64> {
    let path = dir.join(INCARNATION_FILE);
    let last = match std::fs::read_to_string(&path) {
        Ok(s) => s
            .trim()
            .parse::<u64>()
            .with_context(|| format!("{}: expected a number", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    write_atomic(dir, INCARNATION_FILE, format!("{}\n", last + 1).as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(last + 1)
}

/// The committed chain's height + 1 (0: nothing committed yet).
fn committed_len<S: KVGet>(snap: &BlockTreeSnapshot<S>) -> u64 {
    snap.highest_committed_block()
        .ok()
        .flatten()
        .and_then(|b| snap.block_height(&b).ok().flatten())
        .map_or(0, |h| h.int() + 1)
}

/// The committed block at `height` and its transactions (None: not committed here, or
/// not data this app produces).
fn committed_block<S: KVGet>(
    snap: &BlockTreeSnapshot<S>,
    height: u64,
) -> Option<(String, Vec<Tx>)> {
    let hash = snap.block_at_height(BlockHeight::new(height)).ok()??;
    // One datum per block (crate::app); read it alone, not through `block_data`, so the
    // node answers the same with the library's broken `block_data` (crate::store).
    let datum = snap.block_datum(&hash, 0)?;
    let hex: String = hash.bytes()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some((hex, decode_txs(datum.bytes())?))
}

fn reply_for(outcome: Outcome) -> Reply {
    match outcome {
        Outcome::Done => Reply::Done,
        Outcome::Value(v) => Reply::Value(v),
        Outcome::CompareFailed { current } => Reply::CompareFailed(current),
    }
}

/// Logs a panic on any thread (the library's included) and ends the process.
fn install_panic_hook(node: String) {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        log_line(&node, &format!("fatal: a thread panicked: {info}"));
        default(info);
        std::process::exit(1);
    }));
}

/// The library's event log lines (`--log-events`) as node log lines.
struct EventLog(String);

impl log::Log for EventLog {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Info
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            log_line(&self.0, &format!("{}", r.args()));
        }
    }
    fn flush(&self) {}
}

/// The ids and names of this process's threads.
fn threads() -> Vec<(i32, String)> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let tid = e.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            Some((tid, comm.trim().to_string()))
        })
        .collect()
}

/// Starts the replica from a thread named [`STARTER`], names the three threads the
/// library spawns there (they inherit the name; `ReplicaSpec::start` spawns the poller,
/// the block-sync server and the algorithm thread, in that order, so their ids rise in
/// that order) and gives the block-sync server the lowest priority (nice 19): it spins
/// on `yield_now`, and at normal priority each replica's would take a core.
const STARTER: &str = "hs-start";

fn start_replica(
    spec: ReplicaSpec<DiskStore, KvApp, TcpNetwork>,
    node: &str,
) -> Result<Replica<DiskStore>> {
    let node = node.to_string();
    std::thread::Builder::new()
        .name(STARTER.into())
        .spawn(move || {
            let replica = spec.start();
            // SAFETY: gettid has no preconditions.
            let me = unsafe { libc::syscall(libc::SYS_gettid) } as i32;
            let mut spawned: Vec<i32> = threads()
                .into_iter()
                .filter(|(tid, comm)| *tid != me && comm == STARTER)
                .map(|(tid, _)| tid)
                .collect();
            spawned.sort_unstable();
            // With --log-events a fourth, the event bus, comes last.
            if let [poller, sync_server, algorithm, ..] = spawned[..] {
                for (tid, name) in [
                    (poller, "hs-poller"),
                    (sync_server, "hs-sync-server"),
                    (algorithm, "hs-algorithm"),
                ] {
                    let _ = std::fs::write(format!("/proc/self/task/{tid}/comm"), name);
                }
                // SAFETY: setpriority on one of our own threads' ids.
                let r =
                    unsafe { libc::setpriority(libc::PRIO_PROCESS, sync_server as libc::id_t, 19) };
                if r != 0 {
                    log_line(
                        &node,
                        "could not lower the block-sync server thread's priority",
                    );
                }
            } else {
                log_line(
                    &node,
                    &format!(
                        "expected 3 library threads, found {}: priorities left as they are",
                        spawned.len()
                    ),
                );
            }
            replica
        })
        .context("spawning the replica's starter thread")?
        .join()
        .map_err(|_| anyhow::anyhow!("the replica's starter thread panicked"))
}

/// Runs the node until `shutdown` completes.
pub async fn run(s: Settings, shutdown: impl Future<Output = ()>) -> Result<()> {
    let n = &s.node;
    install_panic_hook(n.id.clone());
    if s.log_events && log::set_boxed_logger(Box::new(EventLog(n.id.clone()))).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
    std::fs::create_dir_all(&n.data_dir)
        .with_context(|| format!("creating {}", n.data_dir.display()))?;
    let mut names: Vec<String> = n.peers.iter().map(|(id, _)| id.clone()).collect();
    names.push(n.id.clone());
    names.sort();
    let (signing_key, keys) = pbftkv::keys::load(&n.data_dir, &s.cluster_secret, &n.id, &names)?;
    let members: Vec<_> = names.iter().cloned().zip(keys.iter().copied()).collect();
    let dir = Arc::new(Directory::new(&n.id, &members)?);
    let me_number = names.iter().position(|m| *m == n.id).unwrap_or(0) as u64 + 1;

    let store = DiskStore::open(&n.data_dir, &n.id, s.stock_block_data)?;
    let mut validators = ValidatorSet::new();
    for k in &keys {
        validators.put(k, Power::new(1));
    }
    if store.is_empty() {
        Replica::initialize(
            store.clone(),
            AppStateUpdates::new(),
            ValidatorSetState::new(validators.clone(), validators.clone(), None, true),
        );
    }
    let incarnation = next_incarnation(&n.data_dir)?;
    // Unique per process, not only per node and start: a twin starts from a copy of its
    // node's data dir (the same incarnation count), and two processes numbering requests
    // under one client id would find each other's results under their own numbers.
    let client_id =
        (incarnation << 40) | (u64::from(std::process::id() & 0xff_ffff) << 16) | me_number;

    let listeners = Listeners::bind(n.peer_listen, n.client_listen).await?;
    log_line(
        &n.id,
        &format!(
            "hotstuffkv {} (hotstuff_rs 0.4.0) starting (incarnation {incarnation}): {}, max view {} ms",
            env!("CARGO_PKG_VERSION"),
            n.describe(),
            s.max_view_ms
        ),
    );
    let request_timeout = Duration::from_millis(n.request_timeout_ms);
    let stall = Duration::from_millis(s.max_view_ms.max(500));
    let Network {
        to_peers,
        from_peers,
        calls: mut client_rx,
        wire,
    } = listeners.start::<Frame>(
        &n.id,
        n.peers.clone(),
        stall,
        request_timeout + Duration::from_millis(1000),
    );
    let (network, inbox) = TcpNetwork::new(dir.clone(), to_peers);
    tokio::spawn(forward_incoming(dir.clone(), from_peers, inbox));

    // The chain id is the same on every node of the run and differs between runs, so a
    // message from another run's cluster (a reused address) is ignored by the library.
    let chain_id = s
        .cluster_secret
        .bytes()
        .fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        });
    let max_view = Duration::from_millis(s.max_view_ms);
    let configuration = Configuration::builder()
        .me(signing_key)
        .chain_id(ChainID::new(chain_id))
        .block_sync_request_limit(64)
        .block_sync_server_advertise_time(Duration::from_secs(1))
        .block_sync_response_timeout(max_view * 2)
        .block_sync_blacklist_expiry_time(Duration::from_secs(5))
        .block_sync_trigger_min_view_difference(2)
        .block_sync_trigger_timeout(max_view * 4)
        .progress_msg_buffer_capacity(BufferSize::new(16 << 20))
        .epoch_length(EpochLength::new(s.epoch_length))
        .max_view_time(max_view)
        .log_events(s.log_events)
        .build();
    let mempool = Mempool::default();
    let spec = ReplicaSpec::builder()
        .app(KvApp::new(
            mempool.clone(),
            Duration::from_millis(s.idle_block_ms),
        ))
        .network(network)
        .kv_store(store.clone())
        .configuration(configuration)
        .build();
    let replica = start_replica(spec, &n.id)?;
    let camera = replica.block_tree_camera();

    let mut calls = Calls::default();
    // Blocks below this height were looked at already.
    let mut seen = committed_len(&camera.snapshot());
    let mut tick = tokio::time::interval(Duration::from_millis(n.tick_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => {
                log_line(&n.id, "shutting down");
                break;
            }
            Some(call) = client_rx.recv() => {
                admit(call, &mut calls, &mempool, client_id, &dir, &validators, camera, &wire, &n.id);
            }
            _ = tick.tick() => {
                let snap = camera.snapshot();
                let len = committed_len(&snap);
                while seen < len {
                    let Some((_, txs)) = committed_block(&snap, seen) else {
                        seen += 1;
                        continue;
                    };
                    for tx in txs.iter().filter(|t| t.client == client_id) {
                        mempool.remove(tx.client, tx.seq);
                        let Some(reply) = calls.take(tx.seq) else { continue };
                        let answer = snap
                            .committed_app_state(&result_key(tx.client, tx.seq))
                            .and_then(|b| decode_result(&b))
                            .map_or_else(|| Reply::Unknown("committed without a result".into()), reply_for);
                        let _ = reply.send(answer);
                    }
                    seen += 1;
                }
                drop(snap);
                for token in calls.expire(request_timeout, || {
                    Reply::Unknown("timeout waiting for the request's block to commit".into())
                }) {
                    mempool.remove(client_id, token);
                }
            }
        }
    }
    // Dropping the replica joins the library's threads (each checks for shutdown at
    // least once per view).
    tokio::task::block_in_place(|| drop(replica));
    Ok(())
}

/// Takes one client call: status and log answered at once, the rest into the mempool.
#[allow(clippy::too_many_arguments)]
fn admit(
    call: Call,
    calls: &mut Calls,
    mempool: &Mempool,
    client_id: u64,
    dir: &Directory,
    validators: &ValidatorSet,
    camera: &hotstuff_rs::block_tree::accessors::public::BlockTreeCamera<DiskStore>,
    wire: &nodeshell::transport::WireStats<String>,
    me: &str,
) {
    let (token, req) = calls.admit(call);
    let cmd = match req {
        Request::Read { key } => Command::Read { key },
        Request::LocalRead { key } => {
            // Serializable: the committed state this node has, in no block of its own.
            let value = camera
                .snapshot()
                .committed_app_state(&crate::app::value_key(&key))
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.parse::<i64>().ok());
            answer(calls, token, Reply::Value(value));
            return;
        }
        Request::Write { key, value } => Command::Write { key, value },
        Request::Cas { key, from, to } => Command::Cas { key, from, to },
        Request::Status => {
            let snap = camera.snapshot();
            let view = snap.highest_view_entered().ok();
            let len = committed_len(&snap);
            // The library's `select_leader` (private to it) with every power 1: the
            // validator at position view mod n.
            let leader = view.and_then(|v| {
                let n = validators.len().max(1) as u64;
                validators.validators().nth((v.int() % n) as usize).copied()
            });
            let leader_id = leader.and_then(|k| dir.name(&k)).map(str::to_string);
            let status = Status {
                node: me.to_string(),
                leader: len > 0 && leader_id.as_deref() == Some(me),
                leader_id,
                term: view.map_or(0, |v| v.int()),
                commit_index: len,
                applied_index: len,
                peers: wire.snapshot(),
            };
            answer(calls, token, Reply::Status(status));
            return;
        }
        Request::Log { from, max } => {
            let snap = camera.snapshot();
            let len = committed_len(&snap);
            let from = from.max(1);
            let count = max.min(MAX_LOG_PAGE);
            let entries = (from..len.saturating_add(1).min(from.saturating_add(count)))
                .filter_map(|index| {
                    let (hash, txs) = committed_block(&snap, index - 1)?;
                    let ops: Vec<String> = txs.iter().map(Tx::text).collect();
                    Some(LogEntry {
                        index,
                        term: 0,
                        op: format!("block {hash}: [{}]", ops.join("; ")),
                    })
                })
                .collect();
            answer(
                calls,
                token,
                Reply::Log(LogPage {
                    first: 1,
                    commit_index: len,
                    entries,
                }),
            );
            return;
        }
    };
    mempool.add(Tx {
        client: client_id,
        seq: token,
        cmd,
    });
}

fn answer(calls: &mut Calls, token: u64, reply: Reply) {
    if let Some(tx) = calls.take(token) {
        let _ = tx.send(reply);
    }
}
