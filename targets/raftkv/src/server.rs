//! The node's event loop: wires the deterministic [`Replica`] to the shell's sockets,
//! timers and disk thread.
//!
//! One task owns the replica. It wakes for a tick, a peer message, a client request or a
//! report from the disk thread, drains everything else already queued (one turn handles
//! a whole batch), and hands the replica's output on in the order Raft needs:
//! - the durable changes go to the shell's **disk thread**, which writes them in order and fsyncs
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
use crate::raft::Envelope;
use crate::replica::{Replica, Reply};
use crate::storage::DiskStorage;
use anyhow::{Context, Result};
use nodeshell::client::{serve_clients, Call, Calls, CLIENT_QUEUE};
use nodeshell::disk::{Disk, DiskJob};
use nodeshell::event_loop::{drain, Input, Ticker};
use nodeshell::transport::{send_all, serve_peers, spawn_peer, Peers, WireStats, PEER_QUEUE};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// What a disk job reports back, for [`Replica::persisted`]: its `last_index` and
/// `log_epoch`.
type Persisted = (u64, u64);

fn admit(calls: &mut Calls, replica: &mut Replica, call: Call) {
    let (token, req) = calls.admit(call);
    replica.request(token, req);
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
    let (storage, recovered) = DiskStorage::open(&s.data_dir)?;
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
    let senders: Peers<Envelope> = s
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

    // Jobs handed to the disk thread and not yet reported back; at its bound the loop
    // stops taking input until the disk catches up.
    let mut disk: Disk<_, Envelope, Persisted> =
        Disk::start("raftkv-disk", storage, senders.clone())?;

    // After a SIGSTOP, time really passed: catch up in ticks, but a bounded number.
    let mut ticker = Ticker::new(s.tick_ms, 2 * s.raft.election_ticks + 1);
    tokio::pin!(shutdown);
    loop {
        let room = disk.has_room();
        tokio::select! {
            _ = &mut shutdown => {
                log_line(&s.id, "shutting down");
                return Ok(());
            }
            done = disk.done() => {
                let (last_index, log_epoch) = done?;
                replica.persisted(last_index, log_epoch);
            }
            due = ticker.due() => {
                for _ in 0..due {
                    replica.tick(wall_ms());
                }
            }
            Some(env) = peer_rx.recv(), if room => replica.step(env),
            Some(call) = client_rx.recv(), if room => admit(&mut calls, &mut replica, call),
        }
        // Drain what else is queued: one batch, one fsync.
        drain(
            &mut peer_rx,
            &mut client_rx,
            || disk.has_room(),
            |input| match input {
                Input::Peer(env) => replica.step(env),
                Input::Client(call) => admit(&mut calls, &mut replica, call),
            },
        );

        let ready = replica.ready();
        if ready.is_empty() {
            continue;
        }
        for ev in &ready.events {
            log_line(&s.id, ev);
        }
        let mut job = DiskJob::new((ready.last_index, ready.log_epoch));
        job.persist = ready.persist;
        if ready.send_before_persist && !disk.messages_queued() {
            send_all(&senders, ready.messages);
        } else {
            job.messages = ready.messages;
        }
        for (token, mut reply) in ready.replies {
            if let Reply::Status(status) = &mut reply {
                status.peers = wire.snapshot();
            }
            if let Some(tx) = calls.take(token) {
                if s.bugs.ack_before_commit {
                    // Its "ok" may rest on this very batch reaching our disk.
                    job.replies.push((tx, reply));
                } else {
                    // Answers rest on commitment (a durable majority) or on nothing.
                    let _ = tx.send(reply);
                }
            }
        }
        if job.is_empty() {
            continue;
        }
        disk.submit(job)?;
    }
}
