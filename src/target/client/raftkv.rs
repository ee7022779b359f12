//! The built-in client for raftkv's JSON-lines protocol (targets/raftkv/README.md).
//!
//! A worker is bound to a home node; a `not-leader` answer is definite (nothing was
//! applied), so the client follows the leader hint for at most [`MAX_HOPS`] more nodes
//! within the op's timeout — as a real client library would. Connections are per node and
//! reused; after a timeout the connection is dropped, because a late answer on it would
//! otherwise be read as the answer to the next request.
//!
//! While twins run (the `twin` fault), every other op of a worker is sent from the *twin
//! side*: to its home node's twin if it has one, and a leader hint naming a twinned node
//! leads to that node's twin (reached from inside the twin's namespace); the other ops go
//! to the originals. The history's `node` names the copy that answered (`n1-twin`).

use super::{indefinite, Completion, Endpoint, Invocation};
use crate::history::{OpType, COMPARE_FAILED};
use crate::spec::schedule::{twin_name, twin_of};
use crate::spec::workload::OpKind;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

/// Redirects followed per op after the first node said `not-leader`.
const MAX_HOPS: usize = 2;
/// Longest response line accepted; a target sending more is broken.
const MAX_LINE_BYTES: usize = 64 * 1024;

#[derive(Debug)]
pub struct RaftkvClient {
    home: String,
    addrs: BTreeMap<String, SocketAddr>,
    /// The running twins (node → where its twin's client port is reached), kept by the
    /// cluster; `None` where twins cannot run.
    twins: Option<watch::Receiver<BTreeMap<String, Endpoint>>>,
    /// Reads are serializable ([`RaftkvClient::with_serializable`]).
    serializable: bool,
    /// Ops invoked, whose parity picks the side while twins run.
    ops: u64,
    conns: BTreeMap<String, BufReader<TcpStream>>,
    next_id: u64,
    /// Reused request and answer buffers: the client sits on every op's path, so it
    /// serialises into typed structs and allocates nothing per op that it can reuse.
    out: Vec<u8>,
    line: String,
}

/// One request line of raftkv's protocol.
#[derive(Debug, Serialize)]
struct Request<'a> {
    id: u64,
    op: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<&'a Value>,
    /// A read the node answers from its own applied state (target.yaml
    /// `client.serializable`, or the workload's `serializable`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    serializable: bool,
}

impl<'a> Request<'a> {
    fn new(op: &'static str, key: Option<&'a str>) -> Request<'a> {
        Request {
            id: 0,
            op,
            key,
            value: None,
            from: None,
            to: None,
            serializable: false,
        }
    }
}

/// One answer line; `leader` is the leader hint (a node name) on `not-leader`, and a
/// boolean in a status answer.
#[derive(Debug, Deserialize)]
struct Answer {
    #[serde(default)]
    id: Option<u64>,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    value: Option<Value>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    leader: Option<Value>,
}

/// Why one exchange did not produce an answer.
#[derive(Debug)]
enum Exchange {
    /// Could not connect or send: the request never reached the node.
    NotSent(String),
    /// Sent, but no (complete) answer: unknown.
    NoAnswer(String),
}

impl RaftkvClient {
    pub fn new(home: String, addrs: BTreeMap<String, SocketAddr>) -> RaftkvClient {
        RaftkvClient {
            home,
            addrs,
            twins: None,
            serializable: false,
            ops: 0,
            conns: BTreeMap::new(),
            next_id: 0,
            out: Vec::with_capacity(128),
            line: String::with_capacity(128),
        }
    }

    /// Reads ask for the node's own applied state (`"serializable": true`): answered by
    /// whichever node the read reaches, leader or not, possibly stale.
    pub fn with_serializable(mut self, serializable: bool) -> Self {
        self.serializable = serializable;
        self
    }

    /// The client also reaches the twins `twins` lists while they run.
    pub fn with_twins(mut self, twins: watch::Receiver<BTreeMap<String, Endpoint>>) -> Self {
        self.twins = Some(twins);
        self
    }

    /// Where `copy` (a node, or a running twin's name) is reached.
    fn endpoint(&self, copy: &str) -> Option<Endpoint> {
        if let Some(node) = twin_of(copy) {
            if let Some(at) = self
                .twins
                .as_ref()
                .and_then(|t| t.borrow().get(node).cloned())
            {
                return Some(at);
            }
        }
        self.addrs.get(copy).map(|a| Endpoint::direct(*a))
    }

    /// The copy of `node` this op's side talks to: its twin on the twin side, if it has
    /// one running.
    fn copy_of(&self, node: &str, twin_side: bool) -> String {
        let twinned = twin_side
            && self
                .twins
                .as_ref()
                .is_some_and(|t| t.borrow().contains_key(node));
        if twinned {
            twin_name(node)
        } else {
            node.to_string()
        }
    }

    async fn exchange(
        &mut self,
        node: &str,
        req: &mut Request<'_>,
        deadline: Instant,
    ) -> Result<Answer, Exchange> {
        let at = self
            .endpoint(node)
            .ok_or_else(|| Exchange::NotSent(format!("unknown node {node}")))?;
        if !self.conns.contains_key(node) {
            let stream = tokio::time::timeout_at(deadline, at.connect())
                .await
                .map_err(|_| Exchange::NotSent(format!("connect to {node} timed out")))?
                .map_err(|e| Exchange::NotSent(format!("connect to {node}: {e}")))?;
            let _ = stream.set_nodelay(true);
            self.conns.insert(node.to_string(), BufReader::new(stream));
        }
        self.next_id += 1;
        let id = self.next_id;
        req.id = id;
        self.out.clear();
        serde_json::to_writer(&mut self.out, &*req)
            .map_err(|e| Exchange::NotSent(format!("cannot encode the request: {e}")))?;
        self.out.push(b'\n');
        let result = {
            let Some(conn) = self.conns.get_mut(node) else {
                return Err(Exchange::NotSent(format!("no connection to {node}")));
            };
            let (out, buf) = (&self.out, &mut self.line);
            tokio::time::timeout_at(deadline, async {
                conn.get_mut()
                    .write_all(out)
                    .await
                    .map_err(|e| Exchange::NoAnswer(format!("send to {node}: {e}")))?;
                loop {
                    buf.clear();
                    let n = (&mut *conn)
                        .take(MAX_LINE_BYTES as u64)
                        .read_line(buf)
                        .await
                        .map_err(|e| Exchange::NoAnswer(format!("read from {node}: {e}")))?;
                    if n == 0 {
                        return Err(Exchange::NoAnswer(format!("{node} closed the connection")));
                    }
                    let a: Answer = serde_json::from_str(buf.trim()).map_err(|e| {
                        Exchange::NoAnswer(format!("{node} sent a malformed answer: {e}"))
                    })?;
                    // An answer to an earlier request on this connection (cannot happen
                    // after a timeout since we drop those connections, but be strict).
                    if a.id == Some(id) {
                        return Ok(a);
                    }
                }
            })
            .await
            .unwrap_or_else(|_| Err(Exchange::NoAnswer(format!("{node}: timed out"))))
        };
        if result.is_err() {
            self.conns.remove(node);
        }
        result
    }

    pub async fn invoke(&mut self, inv: &Invocation, timeout: Duration) -> Completion {
        let deadline = Instant::now() + timeout;
        let key = Some(inv.key.as_str());
        let mut req = match inv.f {
            OpKind::Read => Request {
                serializable: self.serializable,
                ..Request::new("read", key)
            },
            OpKind::Write => Request {
                value: Some(&inv.value),
                ..Request::new("write", key)
            },
            OpKind::Cas => Request {
                from: Some(inv.value.get(0).unwrap_or(&Value::Null)),
                to: Some(inv.value.get(1).unwrap_or(&Value::Null)),
                ..Request::new("cas", key)
            },
        };
        // While twins run, every other op is sent from the twin side; connections to twins
        // that stopped since go.
        let twin_side = match &self.twins {
            Some(t) => {
                let up = t.borrow();
                self.conns
                    .retain(|c, _| twin_of(c).is_none_or(|n| up.contains_key(n)));
                !up.is_empty() && self.ops % 2 == 1
            }
            None => false,
        };
        self.ops += 1;
        let mut node = self.copy_of(&self.home, twin_side);
        let mut hops = 0;
        loop {
            let answer = match self.exchange(&node, &mut req, deadline).await {
                Ok(a) => a,
                Err(Exchange::NotSent(e)) => {
                    super::refused_pause(deadline).await;
                    return Completion {
                        kind: OpType::Fail,
                        value: inv.value.clone(),
                        error: Some(e),
                        node,
                    };
                }
                Err(Exchange::NoAnswer(e)) => {
                    return Completion {
                        kind: indefinite(inv.f),
                        value: inv.value.clone(),
                        error: Some(e),
                        node,
                    }
                }
            };
            let error = answer.error;
            match answer.kind.as_str() {
                "ok" => {
                    let value = match inv.f {
                        OpKind::Read => answer.value.unwrap_or(Value::Null),
                        _ => inv.value.clone(),
                    };
                    return Completion {
                        kind: OpType::Ok,
                        value,
                        error: None,
                        node,
                    };
                }
                "fail" if error.as_deref() == Some("not-leader") => {
                    let hint = answer
                        .leader
                        .as_ref()
                        .and_then(Value::as_str)
                        .filter(|l| self.addrs.contains_key(*l))
                        .map(|l| self.copy_of(l, twin_side))
                        .filter(|l| *l != node);
                    match hint {
                        Some(leader) if hops < MAX_HOPS => {
                            hops += 1;
                            node = leader;
                        }
                        _ => {
                            // No leader known (an election is under way): answered at
                            // once, so without a pause the worker would spin.
                            super::refused_pause(deadline).await;
                            return Completion {
                                kind: OpType::Fail,
                                value: inv.value.clone(),
                                error,
                                node,
                            };
                        }
                    }
                }
                "fail" => {
                    // A failed comparison is an observation the checker uses; keep the
                    // protocol's error name as the history's convention.
                    let error = match error.as_deref() {
                        Some("compare-failed") => Some(COMPARE_FAILED.to_string()),
                        _ => error,
                    };
                    return Completion {
                        kind: OpType::Fail,
                        value: inv.value.clone(),
                        error,
                        node,
                    };
                }
                "info" => {
                    return Completion {
                        kind: indefinite(inv.f),
                        value: inv.value.clone(),
                        error,
                        node,
                    }
                }
                other => {
                    return Completion {
                        kind: indefinite(inv.f),
                        value: inv.value.clone(),
                        error: Some(format!("{node} answered with unknown type {other:?}")),
                        node,
                    }
                }
            }
        }
    }

    /// Whether `node` answers status and believes it leads.
    async fn status(&mut self, node: &str, timeout: Duration) -> Result<bool, String> {
        let deadline = Instant::now() + timeout;
        let mut req = Request::new("status", None);
        match self.exchange(node, &mut req, deadline).await {
            Ok(a) if a.kind == "ok" => Ok(a.leader.and_then(|l| l.as_bool()) == Some(true)),
            Ok(a) => Err(super::not_ok(node, "status", &a.kind, a.error)),
            Err(Exchange::NotSent(e) | Exchange::NoAnswer(e)) => Err(e),
        }
    }

    /// Every node answers status and one of them leads.
    pub async fn cluster_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let nodes: Vec<String> = self.addrs.keys().cloned().collect();
        let mut leaders = 0;
        for n in &nodes {
            if self.status(n, timeout).await? {
                leaders += 1;
            }
        }
        if leaders == 0 {
            return Err("no node is leader yet".into());
        }
        Ok(())
    }

    pub async fn leaders(&mut self, timeout: Duration) -> Vec<String> {
        let nodes: Vec<String> = self.addrs.keys().cloned().collect();
        let mut out = Vec::new();
        for n in nodes {
            if let Ok(true) = self.status(&n, timeout).await {
                out.push(n);
            }
        }
        out
    }
}

/// Entries asked for per `log` request (raftkv answers at most 1024).
const LOG_PAGE: u64 = 1024;
/// Longest `log` answer line accepted: a page of 1024 entries with long keys.
const MAX_LOG_LINE_BYTES: u64 = 8 << 20;

/// One page of raftkv's `log` answer.
#[derive(Debug, Deserialize)]
struct LogPage {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    entries: Vec<LogLine>,
}

#[derive(Debug, Deserialize)]
struct LogLine {
    index: u64,
    term: u64,
    op: String,
}

/// `node`'s committed log, paged through raftkv's `log` request on a connection of its
/// own, as agreement entries (`term T: op`: committed entries at one index must agree on
/// both). Entries compacted into a snapshot are not answered, so the log starts at the
/// node's first index. At most `cap_bytes` of entry text are read; beyond that, or after
/// `timeout`, it is an error.
pub async fn committed_log(
    node: &str,
    at: &super::Endpoint,
    timeout: Duration,
    cap_bytes: usize,
) -> Result<Vec<crate::checker::agreement::Entry>, String> {
    tokio::time::timeout(timeout, async {
        let stream = at
            .connect()
            .await
            .map_err(|e| format!("connect to {node} at {at}: {e}"))?;
        let mut conn = BufReader::new(stream);
        let (mut out, mut from, mut bytes, mut line) = (Vec::new(), 1u64, 0usize, String::new());
        for id in 1u64.. {
            let req = format!("{{\"id\":{id},\"op\":\"log\",\"from\":{from},\"max\":{LOG_PAGE}}}\n");
            conn.get_mut()
                .write_all(req.as_bytes())
                .await
                .map_err(|e| format!("send to {node}: {e}"))?;
            line.clear();
            let n = (&mut conn)
                .take(MAX_LOG_LINE_BYTES)
                .read_line(&mut line)
                .await
                .map_err(|e| format!("read from {node}: {e}"))?;
            if n == 0 || !line.ends_with('\n') {
                return Err(format!(
                    "{node} closed the connection or sent a line over {MAX_LOG_LINE_BYTES} bytes"
                ));
            }
            let page: LogPage = serde_json::from_str(line.trim())
                .map_err(|e| format!("{node} sent a malformed log answer: {e}"))?;
            if page.kind != "ok" {
                return Err(super::not_ok(node, "log", &page.kind, page.error));
            }
            let Some(last) = page.entries.last().map(|e| e.index) else {
                break;
            };
            if last < from {
                return Err(format!("{node} answered log from {from} with index {last}"));
            }
            for e in page.entries {
                bytes += e.op.len();
                if bytes > cap_bytes {
                    return Err(format!(
                        "{node}'s log is longer than the {cap_bytes} bytes the agreement oracle reads"
                    ));
                }
                out.push(crate::checker::agreement::Entry {
                    index: e.index,
                    entry: format!("term {}: {}", e.term, e.op),
                });
            }
            from = last + 1;
        }
        Ok(out)
    })
    .await
    .unwrap_or_else(|_| Err(format!("{node}: no complete log within {timeout:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> (RaftkvClient, watch::Sender<BTreeMap<String, Endpoint>>) {
        let addrs: BTreeMap<String, SocketAddr> = ["n1", "n2"]
            .iter()
            .enumerate()
            .map(|(i, n)| {
                (
                    n.to_string(),
                    SocketAddr::from(([10, 213, 0, i as u8 + 2], 7002)),
                )
            })
            .collect();
        let (tx, rx) = watch::channel(BTreeMap::new());
        (RaftkvClient::new("n1".into(), addrs).with_twins(rx), tx)
    }

    #[test]
    fn the_twin_side_reaches_a_running_twin_from_its_namespace() {
        let (c, tx) = client();
        // No twin: both sides talk to the originals.
        assert_eq!(c.copy_of("n1", true), "n1");
        let at = Endpoint {
            addr: SocketAddr::from(([10, 213, 0, 2], 7002)),
            netns: Some("fl-x-n1-twin".into()),
        };
        tx.send_modify(|t| {
            t.insert("n1".into(), at.clone());
        });
        assert_eq!(c.copy_of("n1", true), "n1-twin");
        assert_eq!(c.copy_of("n1", false), "n1");
        assert_eq!(c.copy_of("n2", true), "n2", "n2 has no twin");
        assert_eq!(c.endpoint("n1-twin"), Some(at));
        assert_eq!(c.endpoint("n1").and_then(|e| e.netns), None);
        // A stopped twin is no longer reachable: its name is unknown again.
        tx.send_modify(|t| {
            t.clear();
        });
        assert_eq!(c.endpoint("n1-twin"), None);
        assert_eq!(c.copy_of("n1", true), "n1");
    }
}
