//! The node's event loop: wires the deterministic Multi-Paxos [`Node`] to the shell's
//! sockets, timers and disk thread.
//!
//! One task owns the core. It wakes for a tick, a peer message, a client request or a
//! report from the disk thread, drains everything else already queued (one turn handles a
//! whole batch), and hands the core's [`Ready`](crate::paxos::Ready) on as Paxos needs:
//! the promise and vote records go to the **disk thread**, which writes them in order,
//! fsyncs once for every batch waiting (group commit), and only then sends the batch's
//! messages (Promise, Accepted — and the leader's Accepts, which carry its own vote) and
//! client answers. A batch with nothing to persist goes out at once, unless a batch is
//! still on its way to the disk: nothing may overtake a record it could rest on.
//!
//! Nodes are named ("n1") on the command line and numbered in the core (ballots order by
//! node number): the members' names, sorted, are numbered from 1, the same on every node.
//!
//! Clients: a read, write or cas becomes a request in the log, numbered by this process
//! (client id from the data dir's incarnation and the node number, sequence number = the
//! shell's token), answered when its slot is applied here. The core never answers a
//! request whose slot another leader filled; the shell's call registry answers "info:
//! timeout" after --request-timeout-ms. Status and log pages are answered from the core's
//! state at once.

use crate::cli::Settings;
use crate::kv::{Outcome, Request as KvRequest};
use crate::paxos::{ClientResult, Envelope, Node, NodeId, Persist, Value};
use crate::storage::PaxosStorage;
use anyhow::Result;
use nodeshell::client::{Call, Calls, LogEntry, LogPage, Reply, Request, Status, MAX_LOG_PAGE};
use nodeshell::disk::{Disk, DiskJob};
use nodeshell::event_loop::{drain, Input, Listeners, Network, Ticker};
use nodeshell::log_line;
use nodeshell::transport::{send_all, PeerMessage, WireStats};
use std::future::Future;
use std::time::Duration;

/// The shell's transport carries envelopes between nodes named by their numbers.
impl PeerMessage for Envelope {
    type Peer = NodeId;
    fn sender(&self) -> &NodeId {
        &self.from
    }
    fn receiver(&self) -> &NodeId {
        &self.to
    }
}

/// Member names and their numbers in the core.
struct Members(Vec<String>);

impl Members {
    fn new(me: &str, peers: &[(String, String)]) -> Self {
        let mut names: Vec<String> = peers.iter().map(|(id, _)| id.clone()).collect();
        names.push(me.to_string());
        names.sort();
        Members(names)
    }

    fn number(&self, name: &str) -> NodeId {
        // Every name was put in by `new`.
        self.0
            .iter()
            .position(|n| n == name)
            .map_or(0, |i| i as NodeId + 1)
    }

    fn name(&self, number: NodeId) -> Option<String> {
        let i = usize::try_from(number).ok()?.checked_sub(1)?;
        self.0.get(i).cloned()
    }
}

/// The shell's answer for the core's.
fn reply(result: ClientResult, members: &Members) -> Reply {
    match result {
        ClientResult::Ok(Outcome::Done) => Reply::Done,
        ClientResult::Ok(Outcome::Value(v)) => Reply::Value(v),
        ClientResult::Ok(Outcome::CompareFailed { current }) => Reply::CompareFailed(current),
        ClientResult::NotLeader { hint } => Reply::NotLeader(hint.and_then(|h| members.name(h))),
    }
}

/// What the node answers itself; `None` for requests that go to the core.
fn answer_at_once(
    req: &Request,
    core: &Node,
    members: &Members,
    wire: &WireStats<NodeId>,
) -> Option<Reply> {
    let applied = core.next_apply() - 1;
    match req {
        Request::Status => Some(Reply::Status(Status {
            node: members.name(core.id()).unwrap_or_default(),
            leader: core.leading().is_some(),
            leader_id: core.leader().and_then(|l| members.name(l)),
            term: core.promised().round,
            commit_index: applied,
            applied_index: applied,
            peers: wire
                .snapshot()
                .into_iter()
                .filter_map(|(n, c)| Some((members.name(n)?, c)))
                .collect(),
        })),
        Request::Log { from, max } => {
            let first = core.snapshot_slot() + 1;
            let n = (*max).min(MAX_LOG_PAGE) as usize;
            let entries = core
                .applied_values((*from).max(first), n)
                .into_iter()
                .map(|(slot, v)| LogEntry {
                    index: slot,
                    // A chosen value has no ballot of its own (a later leader re-proposes
                    // it in its ballot): slots agree on the value alone.
                    term: 0,
                    op: match v {
                        Value::Noop => "noop".into(),
                        Value::Request(r) => r.cmd.text(),
                    },
                })
                .collect();
            Some(Reply::Log(LogPage {
                first,
                commit_index: applied,
                entries,
            }))
        }
        // Serializable: what this node has applied, whoever leads.
        Request::LocalRead { key } => Some(Reply::Value(core.kv().get(key))),
        Request::Read { .. } | Request::Write { .. } | Request::Cas { .. } => None,
    }
}

/// Runs the node until `shutdown` completes or the data dir fails.
pub async fn run(s: Settings, shutdown: impl Future<Output = ()>) -> Result<()> {
    let n = &s.node;
    let (storage, durable, incarnation) = PaxosStorage::open(&n.data_dir)?;
    let listeners = Listeners::bind(n.peer_listen, n.client_listen).await?;
    let members = Members::new(&n.id, &n.peers);
    let me = members.number(&n.id);
    log_line(
        &n.id,
        &format!(
            "paxoskv {} starting (node {me}, incarnation {incarnation}): {}, bugs [{}]",
            env!("CARGO_PKG_VERSION"),
            n.describe(),
            s.bugs.names().join(",")
        ),
    );

    let request_timeout = Duration::from_millis(n.request_timeout_ms);
    let call_timeout = request_timeout + Duration::from_millis(1000);
    let stall = Duration::from_millis((n.election_ticks * n.tick_ms).max(500));
    let peers = n
        .peers
        .iter()
        .map(|(id, addr)| (members.number(id), addr.clone()));
    let Network {
        to_peers: senders,
        from_peers: mut peer_rx,
        calls: mut client_rx,
        wire,
    } = listeners.start::<Envelope>(&n.id, peers.collect(), stall, call_timeout);

    let peer_numbers = n.peers.iter().map(|(id, _)| members.number(id)).collect();
    let mut core = Node::new(me, peer_numbers, s.paxos.clone(), s.bugs, durable, n.seed);
    // Unique per node and life, so request numbers can restart from 1 at every start.
    let client_id = (incarnation << 16) | me;
    let mut calls = Calls::default();
    let mut disk: Disk<Persist, Envelope, ()> =
        Disk::start("paxoskv-disk", storage, senders.clone())?;

    // After a SIGSTOP, time really passed: catch up in ticks, but a bounded number.
    let mut ticker = Ticker::new(n.tick_ms, 2 * n.election_ticks + 1);
    let mut leading = None;
    tokio::pin!(shutdown);
    loop {
        let room = disk.has_room();
        let mut admit = |call: Call, core: &mut Node| {
            let (token, req) = calls.admit(call);
            match answer_at_once(&req, core, &members, &wire) {
                Some(answer) => {
                    if let Some(tx) = calls.take(token) {
                        let _ = tx.send(answer);
                    }
                }
                None => {
                    let cmd = match req {
                        Request::Read { key } => crate::kv::Command::Read { key },
                        Request::Write { key, value } => crate::kv::Command::Write { key, value },
                        Request::Cas { key, from, to } => crate::kv::Command::Cas { key, from, to },
                        Request::Status | Request::Log { .. } | Request::LocalRead { .. } => return,
                    };
                    core.request(KvRequest {
                        client: client_id,
                        seq: token,
                        cmd,
                    });
                }
            }
        };
        tokio::select! {
            _ = &mut shutdown => {
                log_line(&n.id, "shutting down");
                return Ok(());
            }
            done = disk.done() => done?,
            due = ticker.due() => {
                for _ in 0..due {
                    core.tick();
                }
            }
            Some(env) = peer_rx.recv(), if room => core.step(env),
            Some(call) = client_rx.recv(), if room => admit(call, &mut core),
        }
        // Drain what else is queued: one batch, one fsync.
        drain(
            &mut peer_rx,
            &mut client_rx,
            || disk.has_room(),
            |input| match input {
                Input::Peer(env) => core.step(env),
                Input::Client(call) => admit(call, &mut core),
            },
        );
        calls.expire(request_timeout, || {
            Reply::Unknown("timeout waiting for the request's slot to be chosen".into())
        });

        if core.leading() != leading {
            leading = core.leading();
            let what = match leading {
                Some(b) => format!("leading in ballot ({}, {})", b.round, b.node),
                None => "no longer leading".into(),
            };
            log_line(&n.id, &what);
        }
        let ready = core.take_ready();
        if let Some(Persist::Snapshot(snap)) = ready
            .persist
            .iter()
            .find(|p| matches!(p, Persist::Snapshot(_)))
        {
            log_line(
                &n.id,
                &format!("snapshot at slot {} ({} keys)", snap.slot, snap.kv.len()),
            );
        }
        let mut job = DiskJob::new(());
        job.persist = ready.persist;
        job.messages = ready.messages;
        for r in ready.replies {
            if r.client != client_id {
                continue;
            }
            if let Some(tx) = calls.take(r.seq) {
                job.replies.push((tx, reply(r.result, &members)));
            }
        }
        if job.is_empty() {
            continue;
        }
        if job.persist.is_empty() && disk.is_idle() {
            send_all(&senders, job.messages);
            for (tx, answer) in job.replies {
                let _ = tx.send(answer);
            }
        } else {
            disk.submit(job)?;
        }
    }
}
