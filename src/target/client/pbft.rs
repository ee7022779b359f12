//! The built-in client for pbftkv's client port (targets/pbftkv/README.md, "Client
//! protocol"): JSON lines over TCP, one connection per replica.
//!
//! PBFT clients trust no single replica. Each worker holds its own ed25519 key (its client
//! id is derived from the public key by the replicas: clients are self-certifying, nobody
//! enrols them), signs every request, sends it to every replica and sends it again every
//! [`RESEND`] until f + 1 distinct replicas sent matching replies ([`Collector`]): at least
//! one of them is correct, and a correct replica replies only with what the agreed order
//! produced. n replicas tolerate f = ⌊(n − 1) / 3⌋ faulty ones.
//!
//! Classification: f + 1 matching `ok` replies are ok; f + 1 matching `fail` replies (a
//! failed compare-and-set, or a request every correct replica rejects) are fail; anything
//! short of that by the op's deadline is unknown — the op may have executed — unless the
//! request never left faultline (no replica reachable), which is fail. The history's `node`
//! is the replicas whose matching replies were accepted (`n1,n2`), so a twin's or a lying
//! replica's part in an answer stays visible.
//!
//! While a node's twin runs (the `twin` fault), each request reaches one copy of that
//! node, as a packet to the node's address would: the original for even timestamps, the
//! twin (from inside its namespace, [`super::Endpoint`]) for odd ones, retransmissions
//! included. So the two copies are handed different requests, as peers hand them
//! different messages — a twinned primary orders different requests than its other half
//! — and neither copy sees every request. A client cannot tell two copies with one key
//! apart, so their replies count as one replica's — the later replaces the earlier — and
//! the history's `node` names the copy that answered (`n1-twin,n2`).
//!
//! Each replica's connection lives in a task of its own that connects on demand, writes
//! what the worker hands it and forwards every answer line, so a replica cut off by a
//! partition (connects and writes that hang) never delays the exchange with the others.

use super::{indefinite, Completion, Endpoint, Invocation};
use crate::history::{OpType, COMPARE_FAILED};
use crate::spec::workload::OpKind;
use ed25519_dalek::{Signer, SigningKey};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// How often an unanswered request is sent to every replica again (PBFT's client
/// retransmission: a lost request or reply must not stall the op until its deadline).
const RESEND: Duration = Duration::from_millis(500);
/// A connect that takes longer is abandoned until the next (re)transmission.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// A write that takes longer drops the connection (the peer stopped reading).
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest answer line accepted; a replica sending more is broken.
const MAX_LINE_BYTES: usize = 64 * 1024;
/// Requests queued per replica connection; beyond that a retransmission is skipped.
const QUEUE: usize = 16;
/// Prefixes the bytes a client signs (pbftkv's `kv::REQUEST_DOMAIN`).
const REQUEST_DOMAIN: &[u8] = b"pbftkv request v1\0";

/// The bytes a request's signature covers, as pbftkv's `kv::signing_bytes` lays them
/// out (documented in targets/pbftkv/README.md): the domain, the 32-byte public key, the
/// timestamp (u64 LE), the op's tag (0 read, 1 write, 2 cas), the key's length (u64 LE)
/// and bytes, then the value or from, to (i64 LE).
fn signing_bytes(public: &[u8; 32], timestamp: u64, op: &WireOp) -> Vec<u8> {
    let mut b = Vec::with_capacity(REQUEST_DOMAIN.len() + 32 + 8 + 1 + 8 + op.key.len() + 16);
    b.extend_from_slice(REQUEST_DOMAIN);
    b.extend_from_slice(public);
    b.extend_from_slice(&timestamp.to_le_bytes());
    b.push(op.tag);
    b.extend_from_slice(&(op.key.len() as u64).to_le_bytes());
    b.extend_from_slice(op.key.as_bytes());
    for i in &op.ints {
        b.extend_from_slice(&i.to_le_bytes());
    }
    b
}

/// An op as signed and sent.
#[derive(Debug)]
struct WireOp {
    name: &'static str,
    tag: u8,
    key: String,
    ints: Vec<i64>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One answer line from a replica.
#[derive(Debug, Clone, Deserialize)]
struct Answer {
    /// The request timestamp the reply is for (absent on a rejection of an unparsable
    /// line).
    #[serde(default)]
    timestamp: Option<u64>,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    value: Option<Value>,
    #[serde(default)]
    error: Option<String>,
}

/// What a replica said about a request; replies match when these are equal.
#[derive(Debug, Clone, PartialEq)]
pub struct Vote {
    /// `ok` or `fail`.
    pub kind: String,
    pub value: Option<Value>,
    pub error: Option<String>,
}

/// Collects replies to one request (one timestamp) and accepts a result once f + 1
/// distinct replicas sent the same one. A replica counts once: its latest reply replaces
/// its earlier one, so a replica repeating itself (retransmissions, a reconnect) or
/// changing its mind never adds a voice.
#[derive(Debug)]
pub struct Collector {
    f: usize,
    timestamp: u64,
    /// Replica (a node's identity, whichever copy spoke) → the copy that sent its latest
    /// reply, and that reply.
    replies: BTreeMap<String, (String, Vote)>,
}

impl Collector {
    pub fn new(f: usize, timestamp: u64) -> Self {
        Collector {
            f,
            timestamp,
            replies: BTreeMap::new(),
        }
    }

    /// Adds the reply of `copy` (a node, or a node's twin) to request `timestamp`; the
    /// accepted vote and the copies that sent it, once f + 1 replicas match. Replies to
    /// other requests are ignored.
    pub fn add(&mut self, copy: &str, timestamp: u64, vote: Vote) -> Option<(Vote, Vec<String>)> {
        if timestamp != self.timestamp {
            return None;
        }
        let replica = crate::spec::schedule::twin_of(copy).unwrap_or(copy);
        self.replies
            .insert(replica.to_string(), (copy.to_string(), vote.clone()));
        let agree: Vec<String> = self
            .replies
            .values()
            .filter(|(_, v)| *v == vote)
            .map(|(c, _)| c.clone())
            .collect();
        (agree.len() > self.f).then_some((vote, agree))
    }

    /// The replies so far, for the error of an op left without a quorum.
    pub fn summary(&self) -> String {
        if self.replies.is_empty() {
            return "no replies".into();
        }
        self.replies
            .values()
            .map(|(n, v)| {
                let what = v.error.clone().unwrap_or_else(|| v.kind.clone());
                match &v.value {
                    Some(x) => format!("{n} {what} {x}"),
                    None => format!("{n} {what}"),
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What a replica's connection task reports.
#[derive(Debug)]
enum Event {
    /// Request `timestamp` was written to the replica's socket.
    Sent(u64),
    /// It was not (why).
    NotSent(u64, String),
    Answer(Answer),
}

type EventTx = mpsc::Sender<(String, Event)>;

/// A worker's client: its key, its timestamps and one connection task per replica.
#[derive(Debug)]
pub struct PbftClient {
    home: String,
    addrs: BTreeMap<String, SocketAddr>,
    /// The running twins (node → where its twin's client port is reached), kept by the
    /// cluster; `None` where twins cannot run.
    twins: Option<watch::Receiver<BTreeMap<String, Endpoint>>>,
    f: usize,
    key: SigningKey,
    timestamp: u64,
    /// Each replica's connection task takes (timestamp, line) here; dropping the client
    /// drops these, which ends the tasks and closes their connections.
    senders: BTreeMap<String, mpsc::Sender<(u64, String)>>,
    /// Every connection task's events, tagged with its node; made with the first task.
    events: Option<(EventTx, mpsc::Receiver<(String, Event)>)>,
}

impl PbftClient {
    /// A client of the replicas at `addrs` (every node of the cluster) with a fresh key.
    pub fn new(home: String, addrs: BTreeMap<String, SocketAddr>) -> PbftClient {
        let secret: [u8; 32] = rand::random();
        let f = addrs.len().saturating_sub(1) / 3;
        PbftClient {
            home,
            addrs,
            twins: None,
            f,
            key: SigningKey::from_bytes(&secret),
            timestamp: 0,
            senders: BTreeMap::new(),
            events: None,
        }
    }

    /// The client also sends to the twins `twins` lists while they run.
    pub fn with_twins(mut self, twins: watch::Receiver<BTreeMap<String, Endpoint>>) -> Self {
        self.twins = Some(twins);
        self
    }

    /// The request line for `op` at `timestamp`, signed.
    fn request_line(&self, timestamp: u64, op: &WireOp) -> String {
        let public = self.key.verifying_key().to_bytes();
        let sig = self.key.sign(&signing_bytes(&public, timestamp, op));
        let mut v = json!({
            "id": timestamp,
            "op": op.name,
            "key": op.key,
            "client_key": hex(&public),
            "timestamp": timestamp,
            "sig": hex(&sig.to_bytes()),
        });
        match op.ints.as_slice() {
            [value] => v["value"] = json!(value),
            [from, to] => {
                v["from"] = json!(from);
                v["to"] = json!(to);
            }
            _ => {}
        }
        let mut line = v.to_string();
        line.push('\n');
        line
    }

    /// Hands `line` to every replica's connection task (for a twinned node, the copy
    /// `timestamp` picks), starting tasks on first use.
    fn broadcast(&mut self, timestamp: u64, line: &str) {
        let events = self
            .events
            .get_or_insert_with(|| mpsc::channel(QUEUE * 8))
            .0
            .clone();
        let mut copies: Vec<(String, Endpoint)> = self
            .addrs
            .iter()
            .map(|(n, a)| (n.clone(), Endpoint::direct(*a)))
            .collect();
        if let Some(twins) = &self.twins {
            let twins = twins.borrow();
            // A stopped twin's task ends with its sender.
            self.senders.retain(|copy, _| {
                crate::spec::schedule::twin_of(copy).is_none_or(|n| twins.contains_key(n))
            });
            if timestamp % 2 == 1 {
                for (n, at) in twins.iter() {
                    if let Some(c) = copies.iter_mut().find(|(c, _)| c == n) {
                        *c = (crate::spec::schedule::twin_name(n), at.clone());
                    }
                }
            }
        }
        for (copy, at) in copies {
            let tx = self.senders.entry(copy.clone()).or_insert_with(|| {
                let (tx, rx) = mpsc::channel(QUEUE);
                tokio::spawn(connection(copy, at, rx, events.clone()));
                tx
            });
            // A full queue means the replica is far behind on writes; the next
            // retransmission tries again.
            let _ = tx.try_send((timestamp, line.to_string()));
        }
    }

    pub async fn invoke(&mut self, inv: &Invocation, timeout: Duration) -> Completion {
        let deadline = Instant::now() + timeout;
        let op = match wire_op(inv) {
            Ok(op) => op,
            Err(e) => {
                return Completion {
                    kind: OpType::Fail,
                    value: inv.value.clone(),
                    error: Some(e),
                    node: self.home.clone(),
                }
            }
        };
        self.timestamp += 1;
        let ts = self.timestamp;
        let line = self.request_line(ts, &op);
        let mut collector = Collector::new(self.f, ts);
        let (mut sent, mut not_sent) = (false, BTreeMap::new());
        loop {
            self.broadcast(ts, &line);
            let resend_at = deadline.min(Instant::now() + RESEND);
            while let Ok(Some((node, event))) = match self.events.as_mut() {
                Some((_, rx)) => tokio::time::timeout_at(resend_at, rx.recv()).await,
                None => Ok(None),
            } {
                match event {
                    Event::Sent(t) if t == ts => sent = true,
                    Event::NotSent(t, why) if t == ts => {
                        not_sent.insert(node, why);
                    }
                    Event::Answer(a) => {
                        let Some(t) = a.timestamp else { continue };
                        let vote = Vote {
                            kind: a.kind,
                            value: a.value,
                            error: a.error,
                        };
                        if let Some((vote, nodes)) = collector.add(&node, t, vote) {
                            return completion(inv, vote, nodes.join(","));
                        }
                    }
                    _ => {}
                }
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        if !sent {
            super::refused_pause(deadline).await;
            let why: Vec<String> = not_sent
                .into_iter()
                .map(|(n, e)| format!("{n}: {e}"))
                .collect();
            return Completion {
                kind: OpType::Fail,
                value: inv.value.clone(),
                error: Some(format!("reached no replica ({})", why.join("; "))),
                node: self.home.clone(),
            };
        }
        Completion {
            kind: indefinite(inv.f),
            value: inv.value.clone(),
            error: Some(format!(
                "timed out without {} matching replies ({})",
                self.f + 1,
                collector.summary()
            )),
            node: self.home.clone(),
        }
    }

    /// `node`'s status answer: whether it is the primary of the view it is in.
    async fn status(&self, node: &str, timeout: Duration) -> Result<bool, String> {
        let addr = *self
            .addrs
            .get(node)
            .ok_or_else(|| format!("unknown node {node}"))?;
        let line = one_exchange(node, addr, "{\"id\":1,\"op\":\"status\"}\n", timeout).await?;
        #[derive(Deserialize)]
        struct Status {
            #[serde(rename = "type")]
            kind: String,
            #[serde(default)]
            primary: bool,
            #[serde(default)]
            error: Option<String>,
        }
        let s: Status = serde_json::from_str(line.trim())
            .map_err(|e| format!("{node} sent a malformed status answer: {e}"))?;
        if s.kind != "ok" {
            return Err(super::not_ok(node, "status", &s.kind, s.error));
        }
        Ok(s.primary)
    }

    /// Every replica's status, asked in parallel: a replica cut off by a partition costs
    /// one timeout, not one per replica behind it.
    async fn statuses(&self, timeout: Duration) -> Vec<(String, Result<bool, String>)> {
        let asks = self
            .addrs
            .keys()
            .map(|n| async move { (n.clone(), self.status(n, timeout).await) });
        futures::future::join_all(asks).await
    }

    /// Every replica answers status and one of them is a primary in its view.
    pub async fn cluster_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let statuses = self.statuses(timeout).await;
        if let Some((_, Err(e))) = statuses.iter().find(|(_, s)| s.is_err()) {
            return Err(e.clone());
        }
        match statuses.iter().any(|(_, s)| *s == Ok(true)) {
            true => Ok(()),
            false => Err("no replica is primary of its view yet".into()),
        }
    }

    /// The replicas that say they are the primary of their current view.
    pub async fn leaders(&mut self, timeout: Duration) -> Vec<String> {
        let statuses = self.statuses(timeout).await;
        statuses
            .into_iter()
            .filter(|(_, s)| *s == Ok(true))
            .map(|(n, _)| n)
            .collect()
    }
}

/// The accepted vote as a completion answered by `nodes`.
fn completion(inv: &Invocation, vote: Vote, nodes: String) -> Completion {
    match vote.kind.as_str() {
        "ok" => Completion {
            kind: OpType::Ok,
            value: match inv.f {
                OpKind::Read => vote.value.unwrap_or(Value::Null),
                _ => inv.value.clone(),
            },
            error: None,
            node: nodes,
        },
        // f + 1 replicas, one of them correct, say it did not take effect: certain.
        "fail" => Completion {
            kind: OpType::Fail,
            value: inv.value.clone(),
            error: match vote.error.as_deref() {
                Some("compare-failed") => Some(COMPARE_FAILED.to_string()),
                _ => vote.error,
            },
            node: nodes,
        },
        other => Completion {
            kind: indefinite(inv.f),
            value: inv.value.clone(),
            error: Some(format!(
                "replicas {nodes} answered with unknown type {other:?}"
            )),
            node: nodes,
        },
    }
}

/// The op to sign, or why the invocation cannot be one (pbftkv stores i64 values).
fn wire_op(inv: &Invocation) -> Result<WireOp, String> {
    let int = |v: Option<&Value>, what: &str| {
        v.and_then(Value::as_i64)
            .ok_or_else(|| format!("pbftkv stores 64-bit integers; the {what} is {v:?}"))
    };
    let (name, tag, ints) = match inv.f {
        OpKind::Read => ("read", 0, vec![]),
        OpKind::Write => ("write", 1, vec![int(Some(&inv.value), "value")?]),
        OpKind::Cas => (
            "cas",
            2,
            vec![
                int(inv.value.get(0), "cas's from")?,
                int(inv.value.get(1), "cas's to")?,
            ],
        ),
    };
    Ok(WireOp {
        name,
        tag,
        key: inv.key.clone(),
        ints,
    })
}

/// One replica's connection: connects when there is something to send, writes every line
/// handed to it and forwards every answer; on any error drops the connection and reports,
/// and connects again with the next line. Ends when the client drops its sender.
async fn connection(
    node: String,
    at: Endpoint,
    mut lines: mpsc::Receiver<(u64, String)>,
    events: mpsc::Sender<(String, Event)>,
) {
    let mut conn: Option<BufReader<TcpStream>> = None;
    let mut buf = String::new();
    loop {
        let next = match conn.as_mut() {
            None => lines.recv().await.map(Ok),
            Some(c) => {
                let mut limited = (&mut *c).take(MAX_LINE_BYTES as u64);
                tokio::select! {
                    l = lines.recv() => l.map(Ok),
                    // A read cancelled by a send leaves the part of a line it read in
                    // `buf`, and the next read appends the rest: `buf` is cleared only
                    // once a whole line was handled.
                    r = limited.read_line(&mut buf) => Some(Err(r)),
                }
            }
        };
        let event = match next {
            None => return,
            Some(Ok((ts, line))) => {
                if conn.is_none() {
                    match tokio::time::timeout(CONNECT_TIMEOUT, at.connect()).await {
                        Ok(Ok(s)) => {
                            let _ = s.set_nodelay(true);
                            conn = Some(BufReader::new(s));
                        }
                        Ok(Err(e)) => {
                            let _ = events
                                .send((node.clone(), Event::NotSent(ts, format!("connect: {e}"))))
                                .await;
                            continue;
                        }
                        Err(_) => {
                            let _ = events
                                .send((
                                    node.clone(),
                                    Event::NotSent(ts, "connect timed out".into()),
                                ))
                                .await;
                            continue;
                        }
                    }
                }
                let Some(c) = conn.as_mut() else { continue };
                match tokio::time::timeout(WRITE_TIMEOUT, c.get_mut().write_all(line.as_bytes()))
                    .await
                {
                    Ok(Ok(())) => Event::Sent(ts),
                    _ => {
                        conn = None;
                        buf.clear();
                        Event::NotSent(ts, "write failed".into())
                    }
                }
            }
            Some(Err(Ok(n))) if n > 0 && buf.ends_with('\n') && buf.len() <= MAX_LINE_BYTES => {
                let answer = serde_json::from_str::<Answer>(buf.trim());
                buf.clear();
                match answer {
                    Ok(a) => Event::Answer(a),
                    // A malformed line from one replica is that replica's fault; it simply
                    // does not count towards a quorum.
                    Err(_) => continue,
                }
            }
            Some(Err(_)) => {
                // Closed, failed, or a line over the limit: start over with the next send.
                conn = None;
                buf.clear();
                continue;
            }
        };
        if events.send((node.clone(), event)).await.is_err() {
            return;
        }
    }
}

/// One request line on a fresh connection and its answer line.
async fn one_exchange(
    node: &str,
    addr: SocketAddr,
    line: &str,
    timeout: Duration,
) -> Result<String, String> {
    tokio::time::timeout(timeout, async {
        let mut s = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect to {node} at {addr}: {e}"))?;
        s.write_all(line.as_bytes())
            .await
            .map_err(|e| format!("send to {node}: {e}"))?;
        let mut r = BufReader::new(s);
        let mut out = String::new();
        let n = (&mut r)
            .take(MAX_LINE_BYTES as u64)
            .read_line(&mut out)
            .await
            .map_err(|e| format!("read from {node}: {e}"))?;
        if n == 0 || !out.ends_with('\n') {
            return Err(format!("{node} closed the connection"));
        }
        Ok(out)
    })
    .await
    .unwrap_or_else(|_| Err(format!("{node}: no answer within {timeout:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(v: i64) -> Vote {
        Vote {
            kind: "ok".into(),
            value: Some(json!(v)),
            error: None,
        }
    }

    #[test]
    fn accepts_f_plus_one_matching_replies_among_conflicting_ones() {
        let mut c = Collector::new(1, 7);
        assert_eq!(c.add("n1", 7, ok(1)), None);
        // A conflicting reply does not match.
        assert_eq!(c.add("n2", 7, ok(2)), None);
        let (vote, nodes) = c.add("n3", 7, ok(1)).expect("two replicas agree");
        assert_eq!(vote, ok(1));
        assert_eq!(nodes, vec!["n1".to_string(), "n3".to_string()]);
    }

    #[test]
    fn a_node_and_its_twin_are_one_replica_and_the_answering_copy_is_named() {
        let mut c = Collector::new(1, 7);
        assert_eq!(c.add("n1", 7, ok(1)), None);
        // The twin signs with n1's key: to the client it is n1 again, not a second voice.
        assert_eq!(c.add("n1-twin", 7, ok(1)), None);
        let (_, nodes) = c.add("n2", 7, ok(1)).expect("n1 and n2 agree");
        assert_eq!(nodes, vec!["n1-twin".to_string(), "n2".to_string()]);
        // n1's twin saying 2 replaces n1's 1: one replica, its latest reply.
        let mut c = Collector::new(1, 8);
        assert_eq!(c.add("n1", 8, ok(1)), None);
        assert_eq!(c.add("n1-twin", 8, ok(2)), None);
        assert_eq!(c.add("n2", 8, ok(1)), None, "n1 no longer says 1");
        assert!(c.summary().contains("n1-twin ok 2"), "{}", c.summary());
    }

    #[test]
    fn one_replica_repeating_itself_is_one_voice() {
        let mut c = Collector::new(1, 7);
        for _ in 0..5 {
            assert_eq!(c.add("n1", 7, ok(1)), None);
        }
        // Changing its mind replaces its reply rather than adding one.
        assert_eq!(c.add("n1", 7, ok(2)), None);
        assert_eq!(c.add("n2", 7, ok(1)), None, "n1 no longer says 1");
        assert!(c.add("n3", 7, ok(2)).is_none_or(|(_, n)| n == ["n1", "n3"]));
    }

    #[test]
    fn replies_to_another_request_are_ignored() {
        let mut c = Collector::new(1, 7);
        assert_eq!(c.add("n1", 6, ok(1)), None);
        assert_eq!(c.add("n2", 7, ok(1)), None, "n1's reply was to request 6");
        assert!(c.add("n3", 7, ok(1)).is_some());
    }

    #[test]
    fn f_plus_one_of_seven_is_three() {
        let mut c = Collector::new(2, 1);
        assert_eq!(c.add("n1", 1, ok(1)), None);
        assert_eq!(c.add("n2", 1, ok(1)), None);
        assert!(c.add("n3", 1, ok(1)).is_some());
    }

    /// The same vector as pbftkv's `auth::tests`: ed25519 is deterministic, so equal
    /// signatures prove both sides sign the same bytes.
    #[test]
    fn signs_the_bytes_pbftkv_verifies() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let op = WireOp {
            name: "write",
            tag: 1,
            key: "k".into(),
            ints: vec![1],
        };
        let public = key.verifying_key().to_bytes();
        let sig = key.sign(&signing_bytes(&public, 5, &op));
        assert_eq!(hex(&sig.to_bytes()), SHARED_VECTOR);
    }

    /// ed25519 over pbftkv's signing bytes of write k = 1 at timestamp 5, secret [7; 32].
    const SHARED_VECTOR: &str = "74ef30e57debdb92d250251fdfe3a793e0f928584e0cacb6a41ebbd819608bcaaf0d8e828985928cf14ffd1fbf8ea1a1b60831f30af1133e0f62e260bdd7680b";

    #[tokio::test]
    async fn a_request_line_carries_key_timestamp_and_signature() {
        let c = PbftClient::new("n1".into(), BTreeMap::new());
        let op = WireOp {
            name: "cas",
            tag: 2,
            key: "k".into(),
            ints: vec![1, 2],
        };
        let v: Value = serde_json::from_str(&c.request_line(3, &op)).expect("JSON");
        assert_eq!(v["op"], "cas");
        assert_eq!((v["from"].as_i64(), v["to"].as_i64()), (Some(1), Some(2)));
        assert_eq!(v["timestamp"], 3);
        assert_eq!(v["client_key"].as_str().map(str::len), Some(64));
        assert_eq!(v["sig"].as_str().map(str::len), Some(128));
    }
}
