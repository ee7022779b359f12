//! The node's event loop: wires the deterministic PBFT [`Replica`] to the shell's peer
//! transport, ticks and disk thread, and serves the client port's JSON lines
//! ([`crate::protocol`]).
//!
//! Peers. Members' names, sorted, are replicas 0..n, the same on every node. Every peer
//! message travels in an [`Envelope`] naming sender and receiver and signed by the sender
//! with its replica key over both and the message: the transport's peer (the envelope's
//! `from`) is thereby authenticated, and the core then checks that every signed body's
//! claimed sender is that peer and that the body's own signature verifies
//! ([`Replica::step`]). An envelope whose signature fails, or addressed to another
//! replica, is dropped before the core sees it.
//!
//! Durability. When the core's state changed ([`Ready::persist`]) the whole durable state
//! goes to the **disk thread**, which writes it (fsync, rename, dir fsync), and only then
//! sends the batch's peer messages and the client replies. A batch with nothing to
//! persist goes out at once unless a job is still queued for the disk: nothing may
//! overtake the state it could rest on.
//!
//! Clients. Each connection's task parses lines, rejects malformed or wrongly signed
//! requests itself ("fail" with the reason: every correct replica rejects such a line
//! alike), and hands the rest to the loop, which remembers on which connection each client
//! (by its self-certifying id) last asked and under which `id`, and sends the core's reply
//! there. `status` and `log` are answered from the loop's state at once. `log` pages
//! through the digests of the requests this replica executed since it started, by
//! sequence number (`term` 0: views do not matter, one request per number does), which
//! faultline's agreement oracle compares across replicas; they are kept in the data dir
//! (`storage`), so numbers executed before a restart are answered too; numbers skipped
//! by state transfer are not.

use crate::auth::{verify_request, Ed25519Auth};
use crate::cli::Settings;
use crate::keys;
use crate::kv::{digest_of, Sig};
use crate::pbft::{Message, Node, Ready, Replica, ReplicaId};
use crate::protocol::{
    hex, parse_request, render_rejected, render_reply, render_status, ClientRequest,
};
use crate::storage::{PbftStorage, Record};
use anyhow::{Context, Result};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use nodeshell::disk::{Disk, DiskJob};
use nodeshell::event_loop::Ticker;
use nodeshell::log_line;
use nodeshell::transport::{send_all, serve_peers, spawn_peer, PeerMessage, WireStats, PEER_QUEUE};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// A peer message, signed by its sender over sender, receiver and message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    pub from: ReplicaId,
    pub to: ReplicaId,
    pub msg: Message,
    pub sig: Sig,
}

impl Envelope {
    fn body_digest(from: ReplicaId, to: ReplicaId, msg: &Message) -> [u8; 32] {
        digest_of(&("pbftkv envelope v1", from, to, msg)).0
    }

    /// `msg` from `from` to `to`, signed with `key`.
    pub fn seal(key: &SigningKey, from: ReplicaId, to: ReplicaId, msg: Message) -> Self {
        let sig = Sig(key.sign(&Self::body_digest(from, to, &msg)).to_bytes());
        Envelope { from, to, msg, sig }
    }

    /// The envelope is for `me` and signed by the replica it names as sender.
    pub fn opens(&self, me: ReplicaId, keys: &[VerifyingKey]) -> bool {
        self.to == me
            && self.from != me
            && keys.get(self.from as usize).is_some_and(|k| {
                k.verify_strict(
                    &Self::body_digest(self.from, self.to, &self.msg),
                    &Signature::from_bytes(&self.sig.0),
                )
                .is_ok()
            })
    }
}

/// The shell's transport carries envelopes between replicas named by their numbers.
impl PeerMessage for Envelope {
    type Peer = ReplicaId;
    fn sender(&self) -> &ReplicaId {
        &self.from
    }
    fn receiver(&self) -> &ReplicaId {
        &self.to
    }
}

/// A connection's outgoing lines.
type Lines = mpsc::Sender<String>;

/// What a client connection hands the loop.
enum ClientIn {
    /// A well-formed, correctly signed request, answered under `id` on `out`.
    Op {
        id: Value,
        request: crate::kv::Request,
        out: Lines,
    },
    Status {
        id: Value,
        out: Lines,
    },
    Log {
        id: Value,
        from: u64,
        max: u64,
        out: Lines,
    },
}

/// Most lines queued towards one client connection; beyond that answers are dropped (the
/// client retransmits).
const CONN_QUEUE: usize = 1024;
/// Longest request line accepted.
const MAX_LINE: u64 = 1 << 20;
/// Most entries in one `log` page.
const MAX_LOG_PAGE: u64 = 1024;
/// Requests queued towards the core; beyond that a request is dropped (the client
/// retransmits).
const CORE_QUEUE: usize = 4096;

/// Runs the node until `shutdown` completes or the data dir fails.
pub async fn run(s: Settings, shutdown: impl Future<Output = ()>) -> Result<()> {
    let n = &s.node;
    let mut members: Vec<String> = n.peers.iter().map(|(id, _)| id.clone()).collect();
    members.push(n.id.clone());
    members.sort();
    let number = |name: &str| members.iter().position(|m| m == name).unwrap_or(0) as ReplicaId;
    let me = number(&n.id);
    let (storage, durable, mut executed) = PbftStorage::open(&n.data_dir)?;
    let (key, public) = keys::load(&n.data_dir, &s.cluster_secret, &n.id, &members)?;
    let peer_listener = TcpListener::bind(n.peer_listen)
        .await
        .with_context(|| format!("cannot listen for peers on {}", n.peer_listen))?;
    let client_listener = TcpListener::bind(n.client_listen)
        .await
        .with_context(|| format!("cannot listen for clients on {}", n.client_listen))?;
    log_line(
        &n.id,
        &format!(
            "pbftkv {} starting (replica {me} of {}, view {}, stable checkpoint {}): {}, bugs [{}]",
            env!("CARGO_PKG_VERSION"),
            members.len(),
            durable.view,
            durable.stable.seq,
            n.describe(),
            s.bugs.names().join(",")
        ),
    );

    let stall = Duration::from_millis((s.pbft.view_change_ticks * n.tick_ms).max(500));
    let (peer_tx, mut peer_rx) = mpsc::channel::<Envelope>(PEER_QUEUE);
    let wire = Arc::new(WireStats::default());
    tokio::spawn(serve_peers(
        n.id.clone(),
        peer_listener,
        peer_tx,
        wire.clone(),
    ));
    let senders: HashMap<ReplicaId, mpsc::Sender<Envelope>> = n
        .peers
        .iter()
        .map(|(id, addr)| {
            let p = number(id);
            (
                p,
                spawn_peer(n.id.clone(), p, addr.clone(), stall, wire.clone()),
            )
        })
        .collect();
    let (client_tx, mut client_rx) = mpsc::channel::<ClientIn>(CORE_QUEUE);
    tokio::spawn(serve_clients(n.id.clone(), me, client_listener, client_tx));

    let auth = Ed25519Auth::new(key.clone(), public.clone());
    let mut core = Replica::new(me, s.pbft.clone(), s.bugs, Box::new(auth), durable);
    let mut disk: Disk<Record, Envelope, Vec<(Lines, String)>> =
        Disk::start("pbftkv-disk", storage, senders.clone())?;
    // Each client's connection and the id of its latest request.
    let mut routes: HashMap<crate::kv::ClientId, (Lines, Value)> = HashMap::new();
    let mut ticker = Ticker::new(n.tick_ms, 2 * s.pbft.view_change_ticks + 1);
    // `executed` (from the data dir): sequence number → digest of the request executed
    // there (the null request's is all zeros), what the `log` request pages through.
    let trace = std::env::var_os("PBFTKV_TRACE").is_some();
    let mut status = (core.view(), core.is_primary(), core.changing_view());
    tokio::pin!(shutdown);
    loop {
        let room = disk.has_room();
        let handle_peer = |env: Envelope, core: &mut Replica| {
            if trace {
                log_line(&n.id, &format!("in from {}: {}", env.from, brief(&env.msg)));
            }
            if env.opens(me, &public) {
                core.step(Node::Replica(env.from), env.msg);
            }
        };
        let mut handle_client = |c: ClientIn, core: &mut Replica| match c {
            ClientIn::Op { id, request, out } => {
                let client = request.client;
                routes.insert(client, (out, id));
                core.step(Node::Client(client), Message::Request(request));
            }
            ClientIn::Status { id, out } => {
                let line = render_status(
                    &id,
                    me,
                    core.view(),
                    core.is_primary() && !core.changing_view(),
                    core.changing_view(),
                );
                let _ = out.try_send(line);
            }
            ClientIn::Log { id, from, max, out } => {
                let entries: Vec<Value> = executed
                    .range(from..)
                    .take(max.min(MAX_LOG_PAGE) as usize)
                    .map(|(seq, d)| json!({"index": seq, "term": 0, "op": d}))
                    .collect();
                let _ = out.try_send(
                    json!({"id": id, "type": "ok", "replica": me, "entries": entries}).to_string(),
                );
            }
        };
        tokio::select! {
            _ = &mut shutdown => {
                log_line(&n.id, "shutting down");
                return Ok(());
            }
            done = disk.done() => {
                for (out, line) in done? {
                    let _ = out.try_send(line);
                }
            }
            due = ticker.due() => {
                for _ in 0..due {
                    core.tick();
                }
            }
            Some(env) = peer_rx.recv(), if room => handle_peer(env, &mut core),
            Some(c) = client_rx.recv(), if room => handle_client(c, &mut core),
        }
        // Drain what else is queued: one batch, one fsync.
        for _ in 0..nodeshell::event_loop::MAX_BATCH {
            let mut progressed = false;
            if let Ok(env) = peer_rx.try_recv() {
                handle_peer(env, &mut core);
                progressed = true;
            }
            if let Ok(c) = client_rx.try_recv() {
                handle_client(c, &mut core);
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
        routes.retain(|_, (out, _)| !out.is_closed());

        let now = (core.view(), core.is_primary(), core.changing_view());
        if now != status {
            status = now;
            let what = match now {
                (v, _, true) => format!("changing to view {v}"),
                (v, true, false) => format!("primary of view {v}"),
                (v, false, false) => format!("backup in view {v}"),
            };
            log_line(&n.id, &what);
        }
        let Ready {
            persist,
            messages,
            executed: done,
        } = core.take_ready();
        let mut job = DiskJob::new(Vec::new());
        if persist {
            job.persist
                .push(Record::State(Box::new(core.durable().clone())));
        }
        if !done.is_empty() {
            let fresh: Vec<(u64, String)> =
                done.iter().map(|e| (e.seq, hex(&e.digest.0))).collect();
            executed.extend(fresh.iter().cloned());
            job.persist.push(Record::Executed(fresh));
        }
        for (to, msg) in messages {
            if trace {
                log_line(&n.id, &format!("out to {to:?}: {}", brief(&msg)));
            }
            match (to, msg) {
                (Node::Replica(r), msg) => job.messages.push(Envelope::seal(&key, me, r, msg)),
                (Node::Client(c), Message::Reply(reply)) => {
                    if let Some((out, id)) = routes.get(&c) {
                        job.report.push((out.clone(), render_reply(id, &reply)));
                    }
                }
                (Node::Client(_), _) => {}
            }
        }
        if job.is_empty() && job.report.is_empty() {
            continue;
        }
        if job.persist.is_empty() && disk.is_idle() {
            send_all(&senders, job.messages);
            for (out, line) in job.report {
                let _ = out.try_send(line);
            }
        } else {
            disk.submit(job)?;
        }
    }
}

/// A message's kind and numbers, for PBFTKV_TRACE.
fn brief(m: &Message) -> String {
    match m {
        Message::PrePrepare(s) => format!("pre-prepare v{} n{}", s.body.view, s.body.seq),
        Message::Prepare(s) | Message::Commit(s) => {
            format!("{} v{} n{}", m.kind(), s.body.view, s.body.seq)
        }
        Message::Checkpoint(s) => format!("checkpoint n{}", s.body.seq),
        Message::ViewChange(s) => format!("view-change v{}", s.body.view),
        Message::NewView(s) => format!("new-view v{}", s.body.view),
        Message::Request(r) => format!("request ts{}", r.timestamp),
        Message::Reply(r) => format!("reply ts{}", r.timestamp),
        other => other.kind().to_string(),
    }
}

/// Accepts client connections.
async fn serve_clients(
    me: String,
    replica: ReplicaId,
    listener: TcpListener,
    to_core: mpsc::Sender<ClientIn>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(client_conn(stream, replica, to_core.clone()));
            }
            Err(e) => {
                log_line(&me, &format!("accepting a client connection failed: {e}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One client connection: lines in, answers out (in any order, by `id`).
async fn client_conn(stream: TcpStream, replica: ReplicaId, to_core: mpsc::Sender<ClientIn>) {
    let _ = stream.set_nodelay(true);
    let (rd, mut wr) = stream.into_split();
    let (out, mut lines) = mpsc::channel::<String>(CONN_QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(mut line) = lines.recv().await {
            line.push('\n');
            if wr.write_all(line.as_bytes()).await.is_err() {
                return;
            }
        }
    });
    let mut rd = BufReader::new(rd);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match (&mut rd).take(MAX_LINE).read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if buf.last() != Some(&b'\n') {
            break; // over the size limit, or cut off
        }
        let line = String::from_utf8_lossy(&buf);
        let answer = match parse_request(line.trim_end()) {
            Err(bad) => Some(render_rejected(&bad.id, replica, None, &bad.why)),
            Ok((id, ClientRequest::Status)) => {
                let _ = to_core.try_send(ClientIn::Status {
                    id,
                    out: out.clone(),
                });
                None
            }
            Ok((id, ClientRequest::Log { from, max })) => {
                let _ = to_core.try_send(ClientIn::Log {
                    id,
                    from,
                    max,
                    out: out.clone(),
                });
                None
            }
            Ok((id, ClientRequest::Op(request))) => {
                if verify_request(&request) {
                    // Full: dropped like a lost packet; the client retransmits.
                    let _ = to_core.try_send(ClientIn::Op {
                        id,
                        request,
                        out: out.clone(),
                    });
                    None
                } else {
                    Some(render_rejected(
                        &id,
                        replica,
                        Some(request.timestamp),
                        "bad signature",
                    ))
                }
            }
        };
        if let Some(a) = answer {
            if out.send(a).await.is_err() {
                break;
            }
        }
    }
    drop(out);
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::derive;

    #[test]
    fn an_envelope_opens_only_for_its_receiver_under_its_senders_key() {
        let keys: Vec<SigningKey> = ["n1", "n2", "n3"].iter().map(|n| derive("s", n)).collect();
        let public: Vec<VerifyingKey> = keys.iter().map(|k| k.verifying_key()).collect();
        let msg = Message::FetchState { seq: 4 };
        let env = Envelope::seal(&keys[1], 1, 2, msg.clone());
        let wire: Envelope = serde_json::from_str(&serde_json::to_string(&env).unwrap()).unwrap();
        assert!(wire.opens(2, &public));
        assert!(!wire.opens(0, &public), "addressed to another replica");
        // Relabelled as another sender, or signed by another key: refused.
        assert!(!Envelope {
            from: 0,
            ..wire.clone()
        }
        .opens(2, &public));
        assert!(!Envelope::seal(&keys[0], 1, 2, msg).opens(2, &public));
    }
}
