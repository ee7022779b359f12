//! The node's event loop: wires the deterministic [`Replica`] to sockets, timers and the
//! data dir.
//!
//! One task owns the replica. It wakes for a tick, a peer message or a client request,
//! then drains everything else already queued (so one turn handles a whole batch), and
//! carries out the replica's [`ReplicaReady`](crate::replica::ReplicaReady) in the order
//! Raft needs: persist and fsync once for the batch (group commit), then send messages,
//! then answer clients. The fsync runs under `block_in_place`, so the network tasks keep
//! accepting and parsing on the other worker meanwhile — those requests form the next batch.
//!
//! Timers use the monotonic clock (tokio's `Instant`); only the `lease-read` bug looks at
//! the wall clock, which is what libfaketime moves in faultline's clock faults.

use crate::cli::Settings;
use crate::log_line;
use crate::protocol::{parse_request, render_bad_request, render_reply};
use crate::raft::{Envelope, NodeId};
use crate::replica::{Replica, Reply, Request};
use crate::storage::DiskStorage;
use crate::transport::{serve_peers, spawn_peer, PEER_QUEUE};
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::{timeout, Instant, MissedTickBehavior};

/// Client requests queued for the core before new ones fail "overloaded".
const CLIENT_QUEUE: usize = 8192;
/// Most inputs handled in one turn of the loop (one fsync).
const MAX_BATCH: usize = 8192;
/// Longest request line accepted.
const MAX_REQUEST_BYTES: u64 = 1 << 20;
/// Requests one client connection may have in flight (pipelining).
const MAX_INFLIGHT_PER_CONN: usize = 1024;

/// A client request on its way to the core, with where to send the answer.
struct Call {
    req: Request,
    reply: oneshot::Sender<Reply>,
}

/// Where to send each answer, by the token the replica knows the request by.
#[derive(Default)]
struct Calls {
    waiting: HashMap<u64, oneshot::Sender<Reply>>,
    next_token: u64,
}

impl Calls {
    fn admit(&mut self, replica: &mut Replica, call: Call) {
        self.next_token += 1;
        self.waiting.insert(self.next_token, call.reply);
        replica.request(self.next_token, call.req);
    }
}

/// The wall clock in ms since the epoch (faked by libfaketime if preloaded).
fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Runs the node until `shutdown` completes or the data dir fails.
pub async fn run(s: Settings, shutdown: impl Future<Output = ()>) -> Result<()> {
    let (mut storage, recovered) = DiskStorage::open(&s.data_dir)?;
    let peer_listener = TcpListener::bind(s.peer_listen)
        .await
        .with_context(|| format!("cannot listen for peers on {}", s.peer_listen))?;
    let client_listener = TcpListener::bind(s.client_listen)
        .await
        .with_context(|| format!("cannot listen for clients on {}", s.client_listen))?;
    let bugs = s.bugs.names();
    log_line(
        &s.id,
        &format!(
            "raftkv {} starting: peers [{}], peer-listen {}, client-listen {}, data-dir {}, bugs [{}]",
            env!("CARGO_PKG_VERSION"),
            s.peers
                .iter()
                .map(|(id, a)| format!("{id}={a}"))
                .collect::<Vec<_>>()
                .join(","),
            s.peer_listen,
            s.client_listen,
            s.data_dir.display(),
            bugs.join(",")
        ),
    );

    let (peer_tx, mut peer_rx) = mpsc::channel::<Envelope>(PEER_QUEUE);
    let (client_tx, mut client_rx) = mpsc::channel::<Call>(CLIENT_QUEUE);
    tokio::spawn(serve_peers(s.id.clone(), peer_listener, peer_tx));
    let call_timeout = Duration::from_millis(s.request_timeout_ms + 1000);
    tokio::spawn(serve_clients(
        s.id.clone(),
        client_listener,
        client_tx,
        call_timeout,
    ));
    let election_ms = s.raft.election_ticks * s.tick_ms;
    let stall = Duration::from_millis(election_ms.max(500));
    let senders: HashMap<NodeId, mpsc::Sender<Envelope>> = s
        .peers
        .iter()
        .map(|(id, addr)| {
            let tx = spawn_peer(s.id.clone(), id.clone(), addr.clone(), stall);
            (id.clone(), tx)
        })
        .collect();

    let peer_ids = s.peers.iter().map(|(id, _)| id.clone()).collect();
    let mut replica = Replica::new(
        s.id.clone(),
        peer_ids,
        s.raft.clone(),
        s.replica.clone(),
        s.bugs,
        recovered,
        s.seed,
    );
    let mut calls = Calls::default();

    let tick = Duration::from_millis(s.tick_ms);
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_tick = Instant::now();
    // After a SIGSTOP, time really passed: catch up in ticks, but a bounded number.
    let max_catch_up = 2 * s.raft.election_ticks + 1;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => {
                log_line(&s.id, "shutting down");
                return Ok(());
            }
            _ = interval.tick() => {
                let due = (last_tick.elapsed().as_millis() / tick.as_millis().max(1)) as u64;
                last_tick += tick * due as u32;
                for _ in 0..due.min(max_catch_up) {
                    replica.tick(wall_ms());
                }
            }
            Some(env) = peer_rx.recv() => replica.step(env),
            Some(call) = client_rx.recv() => calls.admit(&mut replica, call),
        }
        // Drain what else is queued: one batch, one fsync.
        let mut n = 0;
        while n < MAX_BATCH {
            let mut progressed = false;
            if let Ok(env) = peer_rx.try_recv() {
                replica.step(env);
                progressed = true;
                n += 1;
            }
            if let Ok(call) = client_rx.try_recv() {
                calls.admit(&mut replica, call);
                progressed = true;
                n += 1;
            }
            if !progressed {
                break;
            }
        }

        // Persisting can let the leader commit (it now counts itself): go round again
        // until there is nothing left, a bounded number of times.
        for _ in 0..8 {
            let ready = replica.ready();
            if ready.is_empty() {
                break;
            }
            for ev in &ready.events {
                log_line(&s.id, ev);
            }
            let send = |messages: Vec<Envelope>| {
                for m in messages {
                    if let Some(tx) = senders.get(&m.to) {
                        // A full queue means the peer is not keeping up: drop, like a
                        // lossy network would.
                        let _ = tx.try_send(m);
                    }
                }
            };
            let mut messages = Some(ready.messages);
            if ready.send_before_persist {
                send(messages.take().unwrap_or_default());
            }
            if !ready.persist.is_empty() {
                tokio::task::block_in_place(|| storage.persist(&ready.persist)).with_context(
                    || {
                        format!(
                            "cannot persist to data dir {}; stopping rather than answer without durable state",
                            s.data_dir.display()
                        )
                    },
                )?;
            }
            replica.persisted(ready.last_index);
            send(messages.take().unwrap_or_default());
            for (token, reply) in ready.replies {
                if let Some(tx) = calls.waiting.remove(&token) {
                    let _ = tx.send(reply);
                }
            }
        }
    }
}

async fn serve_clients(
    me: NodeId,
    listener: TcpListener,
    to_core: mpsc::Sender<Call>,
    call_timeout: Duration,
) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(client_conn(stream, to_core.clone(), call_timeout));
            }
            Err(e) => {
                log_line(&me, &format!("accepting a client connection failed: {e}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One client connection: reads request lines, answers each as soon as its reply comes
/// (possibly out of order), until the client closes.
async fn client_conn(stream: TcpStream, to_core: mpsc::Sender<Call>, call_timeout: Duration) {
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    let (out_tx, mut out_rx) = mpsc::channel::<String>(MAX_INFLIGHT_PER_CONN);
    let writer = tokio::spawn(async move {
        let mut wr = BufWriter::new(wr);
        while let Some(line) = out_rx.recv().await {
            if wr.write_all(line.as_bytes()).await.is_err() || wr.write_all(b"\n").await.is_err() {
                return;
            }
            if out_rx.is_empty() && wr.flush().await.is_err() {
                return;
            }
        }
        let _ = wr.flush().await;
    });
    // Bounds the requests in flight, so a client that floods us is slowed, not served OOM.
    let inflight = Arc::new(Semaphore::new(MAX_INFLIGHT_PER_CONN));
    let mut rd = BufReader::new(rd);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut rd)
            .take(MAX_REQUEST_BYTES)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if line.last() != Some(&b'\n') && line.len() as u64 >= MAX_REQUEST_BYTES {
            let bad = crate::protocol::BadRequest {
                id: serde_json::Value::Null,
                why: format!("request line longer than {MAX_REQUEST_BYTES} bytes"),
            };
            let _ = out_tx.send(render_bad_request(&bad)).await;
            break;
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        match parse_request(text) {
            Err(bad) => {
                if out_tx.send(render_bad_request(&bad)).await.is_err() {
                    break;
                }
            }
            Ok((id, req)) => {
                let Ok(permit) = inflight.clone().acquire_owned().await else {
                    break;
                };
                // Handed to the core here, in the order the lines arrived, so pipelined
                // requests of one connection are proposed in order; only the wait for
                // the answer runs concurrently.
                let answer = submit(&to_core, req, call_timeout).await;
                let out_tx = out_tx.clone();
                tokio::spawn(async move {
                    let reply = match answer {
                        Ok(rx) => wait(rx, call_timeout).await,
                        Err(reply) => reply,
                    };
                    let _ = out_tx.send(render_reply(&id, &reply)).await;
                    drop(permit);
                });
            }
        }
    }
    drop(out_tx);
    let _ = writer.await;
}

/// Hands a request to the core; the error is the answer when it never got there.
async fn submit(
    to_core: &mpsc::Sender<Call>,
    req: Request,
    call_timeout: Duration,
) -> Result<oneshot::Receiver<Reply>, Reply> {
    let (tx, rx) = oneshot::channel();
    match timeout(call_timeout, to_core.send(Call { req, reply: tx })).await {
        Ok(Ok(())) => Ok(rx),
        // Never reached the core: certainly not applied.
        Ok(Err(_)) => Err(Reply::Fail("shutting down".into())),
        Err(_) => Err(Reply::Fail("overloaded: request queue full".into())),
    }
}

async fn wait(rx: oneshot::Receiver<Reply>, call_timeout: Duration) -> Reply {
    match timeout(call_timeout, rx).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(_)) => Reply::Unknown("server shut down before answering".into()),
        Err(_) => Reply::Unknown("timeout inside the server".into()),
    }
}
