//! The client protocol: one JSON object per line over TCP, documented in
//! targets/raftkv/README.md. Requests carry a client-chosen integer `id` that the
//! response repeats, so a connection may pipeline requests and get answers out of order.
//!
//! This module owns parsing (with a reason for every rejection) and rendering; the
//! meaning of each answer (ok / fail = certainly not applied / info = unknown) is decided
//! by [`crate::replica`].

use crate::replica::{Reply, Request, MAX_LOG_PAGE};
use serde_json::{json, Map, Value};

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
        "read" => Request::Read { key: key(&obj)? },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::{LogEntry, LogPage, PeerCounts, Status};

    #[test]
    fn parses_every_op() {
        let (id, r) = parse_request(r#"{"id":1,"op":"read","key":"k"}"#).unwrap();
        assert_eq!((id, r), (json!(1), Request::Read { key: "k".into() }));
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
