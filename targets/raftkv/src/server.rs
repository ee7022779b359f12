//! The node's event loop: wires the deterministic [`Replica`] to sockets, timers and the
//! data dir.
//!
//! One task owns the replica. It wakes for a tick, a peer message, a client request or a
//! report from the disk thread, drains everything else already queued (one turn handles
//! a whole batch), and hands the replica's output on in the order Raft needs:
//! - the durable changes go to the **disk thread**, which writes them in order and fsyncs
//!   once for every batch waiting (group commit), and only then sends the messages and
//!   answers that depended on them (votes, AppendEntries answers), and reports back;
//! - a leader's AppendEntries and heartbeats go out at once, in parallel with its own
//!   fsync (Raft thesis §10.2.1); the core counts the leader towards a majority only
//!   when the disk thread reports its entries durable;
//! - client answers go out at once: they rest on commitment (a durable majority) or on
//!   nothing — except under `ack-before-commit`, whose answers wait for the disk.
//!
//! The event loop therefore never waits for the disk, and keeps a bounded number of
//! batches queued for it.
//!
//! Timers use the monotonic clock (tokio's `Instant`); only the `lease-read` bug looks at
//! the wall clock, which is what libfaketime moves in faultline's clock faults.

use crate::cli::Settings;
use crate::log_line;
use crate::protocol::{parse_request, render_bad_request, render_reply};
use crate::raft::{Envelope, NodeId, Persist};
use crate::replica::{Replica, Reply, Request};
use crate::storage::DiskStorage;
use crate::transport::{serve_peers, spawn_peer, WireStats, PEER_QUEUE};
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
    let (storage, recovered) = DiskStorage::open_with(&s.data_dir, s.bugs)?;
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
    let wire = Arc::new(WireStats::default());
    tokio::spawn(serve_peers(
        s.id.clone(),
        peer_listener,
        peer_tx,
        wire.clone(),
    ));
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
            let tx = spawn_peer(s.id.clone(), id.clone(), addr.clone(), stall, wire.clone());
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

    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<DiskDone>();
    let (jobs_tx, jobs_rx) = std::sync::mpsc::channel::<DiskJob>();
    let disk_senders = senders.clone();
    std::thread::Builder::new()
        .name("raftkv-disk".into())
        .spawn(move || disk_thread(storage, jobs_rx, disk_senders, done_tx))
        .context("starting the disk thread")?;
    // Jobs handed to the disk thread and not yet reported back; at the bound the loop
    // stops taking input until the disk catches up.
    let mut jobs_in_flight = 0usize;
    // Of those, jobs carrying messages: while any is queued, later messages must queue
    // behind it to keep each link in order.
    let mut jobs_with_messages = 0usize;

    let tick = Duration::from_millis(s.tick_ms);
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_tick = Instant::now();
    // After a SIGSTOP, time really passed: catch up in ticks, but a bounded number.
    let max_catch_up = 2 * s.raft.election_ticks + 1;
    tokio::pin!(shutdown);
    loop {
        let room = jobs_in_flight < MAX_DISK_JOBS;
        tokio::select! {
            _ = &mut shutdown => {
                log_line(&s.id, "shutting down");
                return Ok(());
            }
            Some(done) = done_rx.recv() => {
                let Persisted { last_index, log_epoch, had_messages } = done?;
                replica.persisted(last_index, log_epoch);
                jobs_in_flight -= 1;
                jobs_with_messages -= usize::from(had_messages);
            }
            _ = interval.tick() => {
                let due = (last_tick.elapsed().as_millis() / tick.as_millis().max(1)) as u64;
                last_tick += tick * due as u32;
                for _ in 0..due.min(max_catch_up) {
                    replica.tick(wall_ms());
                }
            }
            Some(env) = peer_rx.recv(), if room => replica.step(env),
            Some(call) = client_rx.recv(), if room => calls.admit(&mut replica, call),
        }
        // Drain what else is queued: one batch, one fsync.
        let mut n = 0;
        while n < MAX_BATCH && jobs_in_flight < MAX_DISK_JOBS {
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

        let ready = replica.ready();
        if ready.is_empty() {
            continue;
        }
        for ev in &ready.events {
            log_line(&s.id, ev);
        }
        let mut job = DiskJob {
            persist: ready.persist,
            last_index: ready.last_index,
            log_epoch: ready.log_epoch,
            messages: Vec::new(),
            replies: Vec::new(),
        };
        if ready.send_before_persist && jobs_with_messages == 0 {
            send_all(&senders, ready.messages);
        } else {
            job.messages = ready.messages;
        }
        for (token, mut reply) in ready.replies {
            if let Reply::Status(status) = &mut reply {
                status.peers = wire.snapshot();
            }
            if let Some(tx) = calls.waiting.remove(&token) {
                if s.bugs.ack_before_commit {
                    // Its "ok" may rest on this very batch reaching our disk.
                    job.replies.push((tx, reply));
                } else {
                    // Answers rest on commitment (a durable majority) or on nothing.
                    let _ = tx.send(reply);
                }
            }
        }
        if job.persist.is_empty() && job.messages.is_empty() && job.replies.is_empty() {
            continue;
        }
        jobs_with_messages += usize::from(!job.messages.is_empty());
        jobs_in_flight += 1;
        if jobs_tx.send(job).is_err() {
            anyhow::bail!("the disk thread stopped");
        }
    }
}

/// Most batches waiting for the disk at once.
const MAX_DISK_JOBS: usize = 64;

/// One batch's durable changes, and what may only happen once they are durable.
struct DiskJob {
    persist: Vec<Persist>,
    last_index: u64,
    log_epoch: u64,
    messages: Vec<Envelope>,
    replies: Vec<(oneshot::Sender<Reply>, Reply)>,
}

/// A job done: report for [`Replica::persisted`]. An error stops the node.
type DiskDone = Result<Persisted>;

struct Persisted {
    last_index: u64,
    log_epoch: u64,
    had_messages: bool,
}

fn send_all(senders: &HashMap<NodeId, mpsc::Sender<Envelope>>, messages: Vec<Envelope>) {
    for m in messages {
        if let Some(tx) = senders.get(&m.to) {
            // A full queue means the peer is not keeping up: drop, like a lossy network.
            let _ = tx.try_send(m);
        }
    }
}

/// Writes batches in order, one fsync for all the batches waiting (group commit across
/// batches too), then sends what depended on them. Runs on its own thread so the event
/// loop keeps handling answers and requests while the disk works.
fn disk_thread(
    mut storage: DiskStorage,
    jobs: std::sync::mpsc::Receiver<DiskJob>,
    senders: HashMap<NodeId, mpsc::Sender<Envelope>>,
    done: mpsc::UnboundedSender<DiskDone>,
) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_DISK_JOBS {
            match jobs.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let persist: Vec<Persist> = batch
            .iter_mut()
            .flat_map(|j| std::mem::take(&mut j.persist))
            .collect();
        if let Err(e) = storage.persist(&persist) {
            let _ = done.send(Err(e.context(
                "cannot persist to the data dir; stopping rather than answer without durable state",
            )));
            return;
        }
        for job in batch {
            let had_messages = !job.messages.is_empty();
            send_all(&senders, job.messages);
            for (tx, reply) in job.replies {
                let _ = tx.send(reply);
            }
            let report = Persisted {
                last_index: job.last_index,
                log_epoch: job.log_epoch,
                had_messages,
            };
            if done.send(Ok(report)).is_err() {
                return;
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
