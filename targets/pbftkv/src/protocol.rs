//! The client port's protocol: one JSON object per line over TCP, documented in
//! targets/pbftkv/README.md ("Client protocol"); faultline's `pbft` client speaks it.
//!
//! A request line carries the op, the client's ed25519 public key (`client_key`, hex),
//! its `timestamp` and its signature (`sig`, hex) over [`crate::kv::signing_bytes`]; the
//! client id is derived from the key (self-certifying clients). `id` is the client's
//! correlation number, repeated in every answer. `status` and `log` are unsigned reads of
//! one replica's own state. This module owns parsing (with a reason for every rejection)
//! and rendering; whether a request is authentic is the core's check.

use crate::kv::{client_id, ClientKey, Op, Outcome, Request, Sig};
use crate::pbft::{ReplicaId, Reply};
use serde_json::{json, Map, Value};

/// What a client line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientRequest {
    /// An op to order, signed by its client.
    Op(Request),
    /// This replica's view and whether it is the view's primary.
    Status,
    /// Committed log entries from sequence number `from`, at most `max`.
    Log { from: u64, max: u64 },
}

/// A line that could not be turned into a request: the id to answer under (if any) and
/// why.
#[derive(Debug, Clone, PartialEq)]
pub struct BadRequest {
    pub id: Value,
    pub why: String,
}

/// The `N` bytes `s` spells in hex, if it does.
pub fn hex_bytes<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses one request line.
pub fn parse_request(line: &str) -> Result<(Value, ClientRequest), BadRequest> {
    let v: Value = serde_json::from_str(line).map_err(|e| BadRequest {
        id: Value::Null,
        why: format!("not valid JSON ({e})"),
    })?;
    let Value::Object(obj) = v else {
        return Err(BadRequest {
            id: Value::Null,
            why: "expected a JSON object".into(),
        });
    };
    let id = obj.get("id").cloned().unwrap_or(Value::Null);
    let bad = |why: String| BadRequest {
        id: id.clone(),
        why,
    };
    let str_field = |obj: &Map<String, Value>, f: &str| match obj.get(f) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(bad(format!("\"{f}\" must be a string, got {other}"))),
        None => Err(bad(format!("missing \"{f}\""))),
    };
    let int = |obj: &Map<String, Value>, f: &str| {
        obj.get(f)
            .and_then(Value::as_i64)
            .ok_or_else(|| bad(format!("\"{f}\" must be a 64-bit signed integer")))
    };
    let uint = |obj: &Map<String, Value>, f: &str| {
        obj.get(f)
            .and_then(Value::as_u64)
            .ok_or_else(|| bad(format!("\"{f}\" must be a non-negative integer")))
    };
    let op = str_field(&obj, "op")?;
    let op = match op.as_str() {
        "status" => return Ok((id.clone(), ClientRequest::Status)),
        "log" => {
            let from = uint(&obj, "from")?;
            let max = if obj.contains_key("max") {
                uint(&obj, "max")?
            } else {
                1024
            };
            return Ok((id.clone(), ClientRequest::Log { from, max }));
        }
        "read" => Op::Read {
            key: str_field(&obj, "key")?,
        },
        "write" => Op::Write {
            key: str_field(&obj, "key")?,
            value: int(&obj, "value")?,
        },
        "cas" => Op::Cas {
            key: str_field(&obj, "key")?,
            from: int(&obj, "from")?,
            to: int(&obj, "to")?,
        },
        other => {
            return Err(bad(format!(
                "unknown op {other:?} (expected read, write, cas, status or log)"
            )))
        }
    };
    let key = hex_bytes::<32>(&str_field(&obj, "client_key")?)
        .map(ClientKey)
        .ok_or_else(|| bad("\"client_key\" must be 64 hex digits".into()))?;
    let sig = hex_bytes::<64>(&str_field(&obj, "sig")?)
        .map(Sig)
        .ok_or_else(|| bad("\"sig\" must be 128 hex digits".into()))?;
    let timestamp = uint(&obj, "timestamp")?;
    let request = Request {
        client: client_id(&key),
        key,
        timestamp,
        op,
        sig,
    };
    Ok((id, ClientRequest::Op(request)))
}

/// A replica's reply to a request, as a line (without the newline).
pub fn render_reply(id: &Value, reply: &Reply) -> String {
    let base = |kind: &str| {
        json!({"id": id, "type": kind, "replica": reply.replica, "view": reply.view,
               "timestamp": reply.timestamp})
    };
    let v = match &reply.result {
        Outcome::Value(v) => {
            let mut o = base("ok");
            o["value"] = json!(v);
            o
        }
        Outcome::Done => base("ok"),
        Outcome::CompareFailed { current: v } => {
            let mut o = base("fail");
            o["error"] = json!("compare-failed");
            o["value"] = json!(v);
            o
        }
    };
    v.to_string()
}

/// A line rejected before it reached the core (`timestamp` if the line had one): every
/// correct replica rejects an unparsable or wrongly signed request alike, so f + 1 of
/// these are a definite failure.
pub fn render_rejected(
    id: &Value,
    replica: ReplicaId,
    timestamp: Option<u64>,
    why: &str,
) -> String {
    json!({"id": id, "type": "fail", "error": why, "replica": replica, "timestamp": timestamp})
        .to_string()
}

/// The status answer: the replica's view and whether it is that view's primary (not
/// while it is changing views), so faults aimed at primaries can find it.
pub fn render_status(
    id: &Value,
    replica: ReplicaId,
    view: u64,
    primary: bool,
    changing: bool,
) -> String {
    json!({"id": id, "type": "ok", "replica": replica, "view": view, "primary": primary,
           "changing": changing})
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{verify_request, ClientSigner};

    #[test]
    fn a_signed_request_line_parses_into_a_request_that_verifies() {
        let alice = ClientSigner::from_secret([7; 32]);
        let r = alice.request(
            5,
            Op::Write {
                key: "k".into(),
                value: 1,
            },
        );
        let line = json!({"id": 5, "op": "write", "key": "k", "value": 1,
            "client_key": hex(&r.key.0), "timestamp": 5, "sig": hex(&r.sig.0)})
        .to_string();
        let (id, parsed) = parse_request(&line).expect("parses");
        assert_eq!(id, json!(5));
        assert_eq!(parsed, ClientRequest::Op(r.clone()));
        assert!(verify_request(&r));
    }

    /// faultline's `pbft` client asserts the same signature for the same request: ed25519
    /// is deterministic, so both sides sign the same bytes.
    #[test]
    fn the_signature_vector_faultline_shares() {
        let r = ClientSigner::from_secret([7; 32]).request(
            5,
            Op::Write {
                key: "k".into(),
                value: 1,
            },
        );
        assert_eq!(
            hex(&r.sig.0),
            "74ef30e57debdb92d250251fdfe3a793e0f928584e0cacb6a41ebbd819608bcaaf0d8e828985928cf14ffd1fbf8ea1a1b60831f30af1133e0f62e260bdd7680b"
        );
    }

    #[test]
    fn bad_lines_say_why() {
        let why = |l: &str| parse_request(l).expect_err("rejected").why;
        assert!(why("nope").contains("not valid JSON"));
        assert!(why(r#"{"id":1,"op":"drop"}"#).contains("unknown op"));
        assert!(why(
            r#"{"id":1,"op":"read","key":"k","client_key":"00","sig":"00","timestamp":1}"#
        )
        .contains("64 hex digits"));
        assert_eq!(
            parse_request(r#"{"id":2,"op":"log","from":3}"#).map(|(_, r)| r),
            Ok(ClientRequest::Log { from: 3, max: 1024 })
        );
    }

    #[test]
    fn replies_name_replica_and_timestamp() {
        let reply = Reply {
            view: 1,
            client: 9,
            timestamp: 4,
            result: Outcome::CompareFailed { current: Some(2) },
            replica: 3,
        };
        let v: Value = serde_json::from_str(&render_reply(&json!(4), &reply)).expect("JSON");
        assert_eq!(v["type"], "fail");
        assert_eq!(v["error"], "compare-failed");
        assert_eq!(
            (v["replica"].clone(), v["timestamp"].clone()),
            (json!(3), json!(4))
        );
    }
}
