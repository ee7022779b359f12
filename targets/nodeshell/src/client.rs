//! The client side of a node: the protocol (one JSON object per line over TCP, documented
//! in targets/raftkv/README.md) and the listener that serves it.
//!
//! Requests carry a client-chosen integer `id` that the response repeats, so a connection
//! may pipeline requests and get answers out of order. Every request — read, write, cas,
//! status, a page of the committed log — reaches the target's event loop as a [`Call`] on
//! a channel; how the core answers it is the target's business. The meaning of each
//! answer (ok / fail = certainly not applied / info = unknown) is the target's to decide
//! and this module's to render.

use crate::log_line;
use crate::transport::PeerCounts;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::{timeout, Instant};

/// Client requests queued for the core before new ones fail "overloaded".
pub const CLIENT_QUEUE: usize = 8192;
/// Longest request line accepted.
const MAX_REQUEST_BYTES: u64 = 1 << 20;
/// Requests one client connection may have in flight (pipelining).
const MAX_INFLIGHT_PER_CONN: usize = 1024;

/// A client request, already parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Read {
        key: String,
    },
    /// A read with `"serializable": true`: answered at once from the node's own applied
    /// state, leader or not — fast, and possibly stale (etcd's serializable read).
    LocalRead {
        key: String,
    },
    Write {
        key: String,
        value: i64,
    },
    Cas {
        key: String,
        from: i64,
        to: i64,
    },
    Status,
    /// Committed entries from index `from`, at most `max` of them (capped at
    /// [`MAX_LOG_PAGE`]): the agreement oracle's view of this node's log.
    Log {
        from: u64,
        max: u64,
    },
}

/// Most entries one `log` answer carries; a client pages through longer logs.
pub const MAX_LOG_PAGE: u64 = 1024;

/// What the node tells the client. `NotLeader`, `Fail` and `CompareFailed` mean the
/// request certainly had no effect; `Unknown` means it may or may not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Value(Option<i64>),
    Done,
    CompareFailed(Option<i64>),
    NotLeader(Option<String>),
    Fail(String),
    Unknown(String),
    Status(Status),
    Log(LogPage),
}

/// The answer to a log request: committed entries only, never ones that may still be
/// replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPage {
    /// The first index this node still holds: entries below it are compacted into a
    /// snapshot and cannot be answered (0 entries are skipped silently, so the caller
    /// compares only the positions it got).
    pub first: u64,
    pub commit_index: u64,
    pub entries: Vec<LogEntry>,
}

/// One committed entry, with its op as text (`write "k" 5`, `cas "k" 1 2`, `noop`;
/// see [`crate::kv::Command::text`]). `term` is the protocol's epoch for the entry
/// (Raft's term; 0 where the protocol keeps none per entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub index: u64,
    pub term: u64,
    pub op: String,
}

/// The answer to a status request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub node: String,
    pub leader: bool,
    pub leader_id: Option<String>,
    pub term: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    /// What this node's transport sent to and received from each peer since it started;
    /// the core leaves it empty and the event loop fills it in (the core sees no sockets).
    pub peers: BTreeMap<String, PeerCounts>,
}

/// A client request on its way to the core, with where to send the answer.
pub struct Call {
    pub req: Request,
    pub reply: oneshot::Sender<Reply>,
}

/// Where to send each answer, by the token the core knows the request by. Tokens grow
/// with admission, so the map's order is arrival order.
#[derive(Default)]
pub struct Calls {
    waiting: BTreeMap<u64, (Instant, oneshot::Sender<Reply>)>,
    next_token: u64,
}

impl Calls {
    /// Registers a call; returns the token (increasing, from 1) and the request to hand to
    /// the core under it.
    pub fn admit(&mut self, call: Call) -> (u64, Request) {
        self.next_token += 1;
        self.waiting
            .insert(self.next_token, (Instant::now(), call.reply));
        (self.next_token, call.req)
    }

    /// Where the answer to `token` goes, once (None: answered already, or unknown).
    pub fn take(&mut self, token: u64) -> Option<oneshot::Sender<Reply>> {
        self.waiting.remove(&token).map(|(_, tx)| tx)
    }

    /// Answers `reply()` to every call admitted more than `max_age` ago, for a core that
    /// does not time its requests out itself (one it never answers must not wait, or be
    /// remembered, for ever). Returns their tokens.
    pub fn expire(&mut self, max_age: Duration, reply: impl Fn() -> Reply) -> Vec<u64> {
        let mut expired = Vec::new();
        while let Some(entry) = self.waiting.first_entry() {
            if entry.get().0.elapsed() <= max_age {
                break;
            }
            let (token, (_, tx)) = entry.remove_entry();
            let _ = tx.send(reply());
            expired.push(token);
        }
        expired
    }

    /// Calls still waiting for their answer.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// True when no call waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

/// A line that could not be turned into a request, with the id to answer under (if the
/// line had a usable one) and why.
#[derive(Debug, Clone, PartialEq)]
pub struct BadRequest {
    pub id: Value,
    pub why: String,
}

/// Parses one request line into its id and request.
pub fn parse_request(line: &str) -> Result<(Value, Request), BadRequest> {
    let bad = |id: &Value, why: String| BadRequest {
        id: id.clone(),
        why,
    };
    let v: Value = serde_json::from_str(line)
        .map_err(|e| bad(&Value::Null, format!("not valid JSON ({e})")))?;
    let Value::Object(obj) = v else {
        return Err(bad(&Value::Null, "expected a JSON object".into()));
    };
    let id = match obj.get("id") {
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Value::Number(n.clone()),
        Some(other) => {
            return Err(bad(
                &Value::Null,
                format!("\"id\" must be an integer, got {other}"),
            ))
        }
        None => return Err(bad(&Value::Null, "missing \"id\"".into())),
    };
    let op = match obj.get("op") {
        Some(Value::String(s)) => s.as_str(),
        Some(other) => return Err(bad(&id, format!("\"op\" must be a string, got {other}"))),
        None => return Err(bad(&id, "missing \"op\"".into())),
    };
    let key = |obj: &Map<String, Value>| match obj.get("key") {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(bad(&id, format!("\"key\" must be a string, got {other}"))),
        None => Err(bad(&id, format!("missing \"key\" for {op}"))),
    };
    let int = |obj: &Map<String, Value>, field: &str| match obj.get(field) {
        Some(v @ Value::Number(n)) => n.as_i64().ok_or_else(|| {
            bad(
                &id,
                format!("\"{field}\" must be a 64-bit signed integer, got {v}"),
            )
        }),
        Some(other) => Err(bad(
            &id,
            format!("\"{field}\" must be a 64-bit signed integer, got {other}"),
        )),
        None => Err(bad(&id, format!("missing \"{field}\" for {op}"))),
    };
    let req = match op {
        "read" => match obj.get("serializable") {
            None | Some(Value::Bool(false)) => Request::Read { key: key(&obj)? },
            Some(Value::Bool(true)) => Request::LocalRead { key: key(&obj)? },
            Some(other) => {
                return Err(bad(
                    &id,
                    format!("\"serializable\" must be true or false, got {other}"),
                ))
            }
        },
        "write" => Request::Write {
            key: key(&obj)?,
            value: int(&obj, "value")?,
        },
        "cas" => Request::Cas {
            key: key(&obj)?,
            from: int(&obj, "from")?,
            to: int(&obj, "to")?,
        },
        "status" => Request::Status,
        "log" => {
            let from = int(&obj, "from")?;
            let max = match obj.get("max") {
                None => MAX_LOG_PAGE as i64,
                Some(_) => int(&obj, "max")?,
            };
            if from < 0 || max < 0 {
                return Err(bad(&id, "\"from\" and \"max\" must not be negative".into()));
            }
            Request::Log {
                from: from as u64,
                max: max as u64,
            }
        }
        other => {
            return Err(bad(
                &id,
                format!("unknown op {other:?} (expected read, write, cas, status or log)"),
            ))
        }
    };
    Ok((id, req))
}

/// The response line (without the newline) for `reply` to request `id`.
pub fn render_reply(id: &Value, reply: &Reply) -> String {
    let v = match reply {
        Reply::Value(v) => json!({"id": id, "type": "ok", "value": v}),
        Reply::Done => json!({"id": id, "type": "ok"}),
        Reply::CompareFailed(v) => {
            json!({"id": id, "type": "fail", "error": "compare-failed", "value": v})
        }
        Reply::NotLeader(l) => {
            json!({"id": id, "type": "fail", "error": "not-leader", "leader": l})
        }
        Reply::Fail(e) => json!({"id": id, "type": "fail", "error": e}),
        Reply::Unknown(e) => json!({"id": id, "type": "info", "error": e}),
        Reply::Status(s) => {
            let peers: Map<String, Value> = s
                .peers
                .iter()
                .map(|(peer, c)| {
                    let counts = json!({
                        "messages_sent": c.messages_sent, "bytes_sent": c.bytes_sent,
                        "writes_sent": c.writes_sent, "acks_sent": c.acks_sent,
                        "messages_received": c.messages_received,
                        "bytes_received": c.bytes_received,
                    });
                    (peer.clone(), counts)
                })
                .collect();
            json!({
                "id": id, "type": "ok", "node": s.node, "leader": s.leader,
                "leader_id": s.leader_id, "term": s.term,
                "commit_index": s.commit_index, "applied_index": s.applied_index,
                "peers": peers,
            })
        }
        Reply::Log(page) => {
            let entries: Vec<Value> = page
                .entries
                .iter()
                .map(|e| json!({"index": e.index, "term": e.term, "op": e.op}))
                .collect();
            json!({
                "id": id, "type": "ok", "first": page.first,
                "commit_index": page.commit_index, "entries": entries,
            })
        }
    };
    v.to_string()
}

/// The response line for a request that could not be parsed.
pub fn render_bad_request(bad: &BadRequest) -> String {
    json!({"id": bad.id, "type": "fail", "error": format!("bad-request: {}", bad.why)}).to_string()
}

/// Accepts client connections and serves each on its own task; every parsed request goes
/// to `to_core` as a [`Call`], answered (or timed out) after at most `call_timeout`.
pub async fn serve_clients(
    me: String,
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
            let bad = BadRequest {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_op() {
        let (id, r) = parse_request(r#"{"id":1,"op":"read","key":"k"}"#).unwrap();
        assert_eq!((id, r), (json!(1), Request::Read { key: "k".into() }));
        let (_, r) =
            parse_request(r#"{"id":1,"op":"read","key":"k","serializable":true}"#).unwrap();
        assert_eq!(r, Request::LocalRead { key: "k".into() });
        let e = parse_request(r#"{"id":1,"op":"read","key":"k","serializable":1}"#).unwrap_err();
        assert!(
            e.why.contains("\"serializable\" must be true or false"),
            "{}",
            e.why
        );
        let (_, r) = parse_request(r#"{"id":2,"op":"write","key":"k","value":-5}"#).unwrap();
        assert_eq!(
            r,
            Request::Write {
                key: "k".into(),
                value: -5
            }
        );
        let (_, r) = parse_request(r#"{"id":3,"op":"cas","key":"k","from":1,"to":2}"#).unwrap();
        assert_eq!(
            r,
            Request::Cas {
                key: "k".into(),
                from: 1,
                to: 2
            }
        );
        let (_, r) = parse_request(r#"{"id":4,"op":"status"}"#).unwrap();
        assert_eq!(r, Request::Status);
        let (_, r) = parse_request(r#"{"id":5,"op":"log","from":3,"max":10}"#).unwrap();
        assert_eq!(r, Request::Log { from: 3, max: 10 });
        let (_, r) = parse_request(r#"{"id":6,"op":"log","from":1}"#).unwrap();
        assert_eq!(
            r,
            Request::Log {
                from: 1,
                max: MAX_LOG_PAGE
            }
        );
    }

    #[test]
    fn rejects_malformed_requests_with_a_reason() {
        let cases = [
            ("nonsense", Value::Null, "not valid JSON"),
            ("[1,2]", Value::Null, "expected a JSON object"),
            (r#"{"op":"read","key":"k"}"#, Value::Null, "missing \"id\""),
            (
                r#"{"id":"x","op":"read"}"#,
                Value::Null,
                "must be an integer",
            ),
            (
                r#"{"id":7,"op":"delete","key":"k"}"#,
                json!(7),
                "unknown op",
            ),
            (
                r#"{"id":8,"op":"write","key":"k"}"#,
                json!(8),
                "missing \"value\"",
            ),
            (
                r#"{"id":9,"op":"write","key":"k","value":1.5}"#,
                json!(9),
                "64-bit",
            ),
            (
                r#"{"id":10,"op":"read","key":3}"#,
                json!(10),
                "\"key\" must be a string",
            ),
            (r#"{"id":11,"op":"log"}"#, json!(11), "missing \"from\""),
            (
                r#"{"id":12,"op":"log","from":-1}"#,
                json!(12),
                "must not be negative",
            ),
            (
                r#"{"id":13,"op":"log","from":1,"max":"all"}"#,
                json!(13),
                "\"max\" must be a 64-bit",
            ),
        ];
        for (line, id, why) in cases {
            let err = parse_request(line).unwrap_err();
            assert_eq!(err.id, id, "{line}");
            assert!(err.why.contains(why), "{line}: {}", err.why);
            let out: Value = serde_json::from_str(&render_bad_request(&err)).unwrap();
            assert_eq!(out["type"], "fail");
            assert!(out["error"].as_str().unwrap().starts_with("bad-request: "));
        }
    }

    #[test]
    fn renders_the_documented_shapes() {
        let id = json!(5);
        let r = |reply| serde_json::from_str::<Value>(&render_reply(&id, &reply)).unwrap();
        assert_eq!(
            r(Reply::Value(None)),
            json!({"id":5,"type":"ok","value":null})
        );
        assert_eq!(r(Reply::Done), json!({"id":5,"type":"ok"}));
        assert_eq!(
            r(Reply::CompareFailed(Some(3))),
            json!({"id":5,"type":"fail","error":"compare-failed","value":3})
        );
        assert_eq!(
            r(Reply::NotLeader(Some("n2".into()))),
            json!({"id":5,"type":"fail","error":"not-leader","leader":"n2"})
        );
        assert_eq!(
            r(Reply::Unknown("timeout".into())),
            json!({"id":5,"type":"info","error":"timeout"})
        );
        let status = Status {
            node: "n1".into(),
            leader: true,
            leader_id: Some("n1".into()),
            term: 7,
            commit_index: 123,
            applied_index: 120,
            peers: [(
                "n2".to_string(),
                PeerCounts {
                    messages_sent: 10,
                    bytes_sent: 900,
                    writes_sent: 8,
                    acks_sent: 6,
                    messages_received: 9,
                    bytes_received: 500,
                },
            )]
            .into(),
        };
        assert_eq!(
            r(Reply::Status(status)),
            json!({"id":5,"type":"ok","node":"n1","leader":true,"leader_id":"n1",
                   "term":7,"commit_index":123,"applied_index":120,
                   "peers":{"n2":{"messages_sent":10,"bytes_sent":900,"writes_sent":8,
                   "acks_sent":6,"messages_received":9,"bytes_received":500}}})
        );
        let page = LogPage {
            first: 4,
            commit_index: 5,
            entries: vec![
                LogEntry {
                    index: 4,
                    term: 2,
                    op: "noop".into(),
                },
                LogEntry {
                    index: 5,
                    term: 2,
                    op: "write \"k\" 1".into(),
                },
            ],
        };
        assert_eq!(
            r(Reply::Log(page)),
            json!({"id":5,"type":"ok","first":4,"commit_index":5,"entries":[
                {"index":4,"term":2,"op":"noop"},{"index":5,"term":2,"op":"write \"k\" 1"}]})
        );
    }
}
