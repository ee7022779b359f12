//! The built-in client for etcd's v3 JSON gateway (etcd 3.4: `/v3/kv/range`, `/v3/kv/put`,
//! `/v3/kv/txn`, `/v3/maintenance/status`, `/health`).
//!
//! A worker talks to its home node only, over one keep-alive connection; etcd forwards
//! writes to its leader itself. Keys and values travel base64-encoded; a value is stored as
//! its JSON text (`5` → `"NQ=="`), so a read gives back the JSON value that was written.
//! The gateway omits empty and false fields: a range of a missing key has no `kvs`, a txn
//! whose comparison failed has no `succeeded`.
//!
//! Outcomes: a connect failure means nothing was sent (fail); any other error — a timeout,
//! HTTP 503 `etcdserver: request timed out` (~7 s after a node is cut off from the
//! majority), a dropped connection, a malformed answer — is unknown: info for a write or
//! cas, fail for a read (it has no effect). A txn whose comparison failed is a definite
//! `fail` with error `compare-failed`, an observation the checker keeps.

use super::http::{HttpConn, HttpError};
use super::{indefinite, Completion, Invocation};
use crate::history::{OpType, COMPARE_FAILED};
use crate::spec::workload::OpKind;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug)]
pub struct EtcdClient {
    home: String,
    addrs: BTreeMap<String, SocketAddr>,
    /// Ask for `serializable` ranges: served by the home node from its own state.
    serializable: bool,
    /// One keep-alive client per node; its connection is dropped after any error or
    /// timeout, because a late response on it would be read as the answer to the next
    /// request.
    conns: BTreeMap<String, HttpConn>,
}

impl EtcdClient {
    pub fn new(
        home: String,
        addrs: BTreeMap<String, SocketAddr>,
        serializable: bool,
    ) -> EtcdClient {
        EtcdClient {
            home,
            addrs,
            serializable,
            conns: BTreeMap::new(),
        }
    }

    /// One request to `node`; `Ok` carries any complete HTTP response.
    async fn call(
        &mut self,
        node: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
        deadline: Instant,
    ) -> Result<(u16, Value), HttpError> {
        let addr = *self
            .addrs
            .get(node)
            .ok_or_else(|| HttpError::NotSent(format!("unknown node {node}")))?;
        let conn = self
            .conns
            .entry(node.to_string())
            .or_insert_with(|| HttpConn::new(addr));
        let bytes = body.map(|b| b.to_string().into_bytes());
        let resp = conn
            .request(method, path, bytes.as_deref(), deadline)
            .await
            .map_err(|e| match e {
                HttpError::NotSent(m) => HttpError::NotSent(format!("{node}: {m}")),
                HttpError::NoAnswer(m) => HttpError::NoAnswer(format!("{node}: {m}")),
            })?;
        let v = if resp.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&resp.body).map_err(|e| {
                HttpError::NoAnswer(format!(
                    "{node} answered HTTP {} with a body that is not JSON ({e}): {}",
                    resp.status,
                    String::from_utf8_lossy(&resp.body)
                ))
            })?
        };
        Ok((resp.status, v))
    }

    pub async fn invoke(&mut self, inv: &Invocation, timeout: Duration) -> Completion {
        let deadline = Instant::now() + timeout;
        let node = self.home.clone();
        let (path, body) = request(inv, self.serializable);
        let result = self.call(&node, "POST", path, Some(&body), deadline).await;
        if matches!(result, Err(HttpError::NotSent(_))) {
            super::refused_pause(deadline).await;
        }
        let (kind, value, error) = classify(inv, result);
        Completion {
            kind,
            value,
            error,
            node,
        }
    }

    /// `GET /health` answers `{"health":"true"}` on every node (etcd checks it has a leader
    /// and can serve a linearizable range).
    pub async fn cluster_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let nodes: Vec<String> = self.addrs.keys().cloned().collect();
        for n in &nodes {
            let deadline = Instant::now() + timeout;
            let (status, v) = self
                .call(n, "GET", "/health", None, deadline)
                .await
                .map_err(|e| e.to_string())?;
            if status != 200 || v.get("health").and_then(Value::as_str) != Some("true") {
                return Err(format!("{n} is not healthy yet (HTTP {status}: {v})"));
            }
        }
        Ok(())
    }

    /// The nodes whose own status names themselves as leader (`leader` is a member ID;
    /// the status header's `member_id` is the answering member's own).
    pub async fn leaders(&mut self, timeout: Duration) -> Vec<String> {
        let nodes: Vec<String> = self.addrs.keys().cloned().collect();
        let mut out = Vec::new();
        for n in nodes {
            let deadline = Instant::now() + timeout;
            let Ok((200, v)) = self
                .call(
                    &n,
                    "POST",
                    "/v3/maintenance/status",
                    Some(&json!({})),
                    deadline,
                )
                .await
            else {
                continue;
            };
            if believes_it_leads(&v) {
                out.push(n);
            }
        }
        out
    }
}

/// Whether a `/v3/maintenance/status` answer comes from the member it names as leader.
fn believes_it_leads(status: &Value) -> bool {
    let own = status.pointer("/header/member_id").and_then(Value::as_str);
    let leader = status.get("leader").and_then(Value::as_str);
    matches!((own, leader), (Some(a), Some(b)) if a == b && a != "0")
}

fn b64(s: &str) -> String {
    B64.encode(s.as_bytes())
}

/// A value as stored in etcd: its JSON text.
fn encode_value(v: &Value) -> String {
    b64(&v.to_string())
}

/// A stored value back: JSON when it parses, else the raw text (a key someone else wrote).
fn decode_value(b64_text: &str) -> Result<Value, String> {
    let bytes = B64
        .decode(b64_text)
        .map_err(|e| format!("value {b64_text:?} is not base64: {e}"))?;
    let text = String::from_utf8_lossy(&bytes);
    Ok(serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.into_owned())))
}

/// The gateway path and JSON body of an op.
fn request(inv: &Invocation, serializable: bool) -> (&'static str, Value) {
    let key = b64(&inv.key);
    match inv.f {
        OpKind::Read => {
            let mut body = json!({ "key": key });
            if serializable {
                body["serializable"] = json!(true);
            }
            ("/v3/kv/range", body)
        }
        OpKind::Write => (
            "/v3/kv/put",
            json!({"key": key, "value": encode_value(&inv.value)}),
        ),
        OpKind::Cas => {
            let from = inv.value.get(0).cloned().unwrap_or(Value::Null);
            let to = inv.value.get(1).cloned().unwrap_or(Value::Null);
            // From null (the register's initial value: the key is absent) = create: the
            // key's create revision is 0 only while it does not exist.
            let compare = if from.is_null() {
                json!({"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": "0"})
            } else {
                json!({"key": key, "target": "VALUE", "result": "EQUAL",
                       "value": encode_value(&from)})
            };
            (
                "/v3/kv/txn",
                json!({
                    "compare": [compare],
                    "success": [{"requestPut": {"key": key, "value": encode_value(&to)}}],
                }),
            )
        }
    }
}

/// Map a gateway exchange to an outcome: (type, value, error).
fn classify(
    inv: &Invocation,
    result: Result<(u16, Value), HttpError>,
) -> (OpType, Value, Option<String>) {
    let unknown = |e: String| (indefinite(inv.f), inv.value.clone(), Some(e));
    let (status, body) = match result {
        Ok(r) => r,
        Err(HttpError::NotSent(e)) => return (OpType::Fail, inv.value.clone(), Some(e)),
        Err(HttpError::NoAnswer(e)) => return unknown(e),
    };
    if status != 200 {
        let msg = body
            .get("error")
            .or_else(|| body.get("message"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| body.to_string());
        return unknown(format!("HTTP {status}: {msg}"));
    }
    match inv.f {
        OpKind::Read => {
            let value = match body.pointer("/kvs/0/value") {
                None => match body.get("kvs") {
                    // A present key with an empty value has `value` omitted.
                    Some(Value::Array(a)) if !a.is_empty() => Ok(Value::String(String::new())),
                    _ => Ok(Value::Null),
                },
                Some(Value::String(s)) => decode_value(s),
                Some(other) => Err(format!("kvs[0].value is not a string: {other}")),
            };
            match value {
                Ok(v) => (OpType::Ok, v, None),
                Err(e) => unknown(e),
            }
        }
        OpKind::Write => (OpType::Ok, inv.value.clone(), None),
        OpKind::Cas => {
            if body.get("succeeded").and_then(Value::as_bool) == Some(true) {
                (OpType::Ok, inv.value.clone(), None)
            } else if body.get("header").is_some() {
                (
                    OpType::Fail,
                    inv.value.clone(),
                    Some(COMPARE_FAILED.to_string()),
                )
            } else {
                unknown(format!("txn answer without a header: {body}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::http::test_support::read_request;
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    fn inv(f: OpKind, value: Value) -> Invocation {
        Invocation {
            f,
            key: "k1".into(),
            value,
        }
    }

    #[test]
    fn builds_gateway_requests_with_base64_keys_and_json_values() {
        let (p, b) = request(&inv(OpKind::Write, json!(3)), false);
        assert_eq!(p, "/v3/kv/put");
        assert_eq!(b, json!({"key": "azE=", "value": "Mw=="}));
        let (p, b) = request(&inv(OpKind::Read, Value::Null), true);
        assert_eq!(p, "/v3/kv/range");
        assert_eq!(b, json!({"key": "azE=", "serializable": true}));
        let (_, b) = request(&inv(OpKind::Read, Value::Null), false);
        assert!(b.get("serializable").is_none());
        let (p, b) = request(&inv(OpKind::Cas, json!([1, 2])), false);
        assert_eq!(p, "/v3/kv/txn");
        assert_eq!(b["compare"][0]["value"], "MQ==");
        assert_eq!(b["success"][0]["requestPut"]["value"], "Mg==");
        // A cas from null creates the key: it must not exist yet.
        let (_, b) = request(&inv(OpKind::Cas, json!([null, [7]])), false);
        assert_eq!(b["compare"][0]["target"], "CREATE");
        assert_eq!(b["compare"][0]["create_revision"], "0");
    }

    #[test]
    fn maps_gateway_answers_to_outcomes() {
        let header = json!({"header": {"revision": "7"}});
        let read = inv(OpKind::Read, Value::Null);
        let got = classify(
            &read,
            Ok((
                200,
                json!({"header": {}, "kvs": [{"key": "azE=", "value": "NA==", "mod_revision": "5"}], "count": "1"}),
            )),
        );
        assert_eq!(got, (OpType::Ok, json!(4), None));
        // A missing key: no `kvs` at all.
        assert_eq!(classify(&read, Ok((200, header.clone()))).1, Value::Null);

        let cas = inv(OpKind::Cas, json!([1, 2]));
        assert_eq!(
            classify(&cas, Ok((200, json!({"header": {}, "succeeded": true})))).0,
            OpType::Ok
        );
        // `succeeded` omitted = false: the comparison failed, nothing was written.
        assert_eq!(
            classify(&cas, Ok((200, header.clone()))),
            (OpType::Fail, json!([1, 2]), Some("compare-failed".into()))
        );

        let timed_out = json!({"error": "etcdserver: request timed out", "code": 14});
        let write = inv(OpKind::Write, json!(3));
        let (kind, _, error) = classify(&write, Ok((503, timed_out.clone())));
        assert_eq!(kind, OpType::Info);
        assert_eq!(
            error.as_deref(),
            Some("HTTP 503: etcdserver: request timed out")
        );
        assert_eq!(classify(&cas, Ok((503, timed_out.clone()))).0, OpType::Info);
        assert_eq!(classify(&read, Ok((503, timed_out))).0, OpType::Fail);
        let dropped = || Err(HttpError::NoAnswer("n1 closed the connection".into()));
        assert_eq!(classify(&write, dropped()).0, OpType::Info);
        assert_eq!(classify(&read, dropped()).0, OpType::Fail);
        let refused = Err(HttpError::NotSent("connect: refused".into()));
        assert_eq!(classify(&write, refused).0, OpType::Fail);
    }

    #[test]
    fn a_leader_is_a_member_whose_status_names_itself() {
        let me = json!({"header": {"member_id": "42"}, "leader": "42"});
        let other = json!({"header": {"member_id": "42"}, "leader": "7"});
        let none = json!({"header": {"member_id": "42"}});
        assert!(believes_it_leads(&me));
        assert!(!believes_it_leads(&other));
        assert!(!believes_it_leads(&none));
    }

    /// A gateway stand-in on 127.0.0.1: each accepted connection gets the next behaviour,
    /// `Some((status line, body))` or `None` (read the request, then drop the connection).
    async fn fake_gateway(behaviours: Vec<Option<(&'static str, &'static str)>>) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            for b in behaviours {
                let (s, _) = l.accept().await.unwrap();
                let mut s = tokio::io::BufReader::new(s);
                read_request(&mut s).await.unwrap();
                if let Some((status, body)) = b {
                    let r = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    s.get_mut().write_all(r.as_bytes()).await.unwrap();
                }
            }
        });
        addr
    }

    fn client(addr: SocketAddr) -> EtcdClient {
        EtcdClient::new(
            "n1".into(),
            BTreeMap::from([("n1".to_string(), addr)]),
            false,
        )
    }

    #[tokio::test]
    async fn a_503_or_a_dropped_connection_on_a_write_is_info() {
        let addr = fake_gateway(vec![
            Some((
                "503 Service Unavailable",
                r#"{"error":"etcdserver: request timed out","code":14}"#,
            )),
            None,
            Some(("200 OK", r#"{"header":{"revision":"3"}}"#)),
        ])
        .await;
        let mut c = client(addr);
        let w = inv(OpKind::Write, json!(1));
        let t = Duration::from_secs(5);
        let a = c.invoke(&w, t).await;
        assert_eq!(a.kind, OpType::Info, "{a:?}");
        assert!(a.error.unwrap().contains("request timed out"));
        let b = c.invoke(&w, t).await;
        assert_eq!(b.kind, OpType::Info, "{b:?}");
        let ok = c.invoke(&w, t).await;
        assert_eq!(ok.kind, OpType::Ok, "{ok:?}");
    }

    #[tokio::test]
    async fn a_silent_node_times_a_write_out_as_info() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        // Accepts (the kernel does) but never answers.
        let mut c = client(addr);
        let done = c
            .invoke(&inv(OpKind::Cas, json!([1, 2])), Duration::from_millis(200))
            .await;
        assert_eq!(done.kind, OpType::Info);
        assert!(done.error.unwrap().contains("timed out"));
        drop(l);
    }
}
