//! memkv: a single-node, in-memory key-value server speaking raftkv's client protocol.
//!
//! A test and benchmark fixture: one mutex-protected map answers every request at once,
//! so it is trivially linearizable and costs the harness almost nothing. Running
//! `faultline run` against it measures the harness's own per-op overhead (scheduling,
//! client, journal) rather than a consensus system's latency.
//!
//! `memkv --id n1 --client-listen 127.0.0.1:7202`

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

type Store = Arc<Mutex<HashMap<String, i64>>>;

fn answer(store: &Store, id: &str, req: &serde_json::Value) -> serde_json::Value {
    use serde_json::json;
    let key = req
        .get("key")
        .and_then(|k| k.as_str())
        .unwrap_or("")
        .to_string();
    let mut map = store.lock().unwrap_or_else(|p| p.into_inner());
    match req.get("op").and_then(|o| o.as_str()) {
        Some("status") => json!({"id": req["id"], "type": "ok", "node": id, "leader": true,
            "leader_id": id, "term": 1, "commit_index": 0, "applied_index": 0}),
        Some("read") => json!({"id": req["id"], "type": "ok", "value": map.get(&key)}),
        Some("write") => match req.get("value").and_then(|v| v.as_i64()) {
            Some(v) => {
                map.insert(key, v);
                json!({"id": req["id"], "type": "ok"})
            }
            None => {
                json!({"id": req["id"], "type": "fail", "error": "bad-request: value must be an integer"})
            }
        },
        Some("cas") => {
            let from = req.get("from").and_then(|v| v.as_i64());
            let to = req.get("to").and_then(|v| v.as_i64());
            match (from, to) {
                (Some(f), Some(t)) if map.get(&key) == Some(&f) => {
                    map.insert(key, t);
                    json!({"id": req["id"], "type": "ok"})
                }
                (Some(_), Some(_)) => json!({"id": req["id"], "type": "fail",
                    "error": "compare-failed", "value": map.get(&key)}),
                _ => {
                    json!({"id": req["id"], "type": "fail", "error": "bad-request: from and to must be integers"})
                }
            }
        }
        _ => json!({"id": req.get("id"), "type": "fail", "error": "bad-request: unknown op"}),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| -> anyhow::Result<String> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
            .ok_or_else(|| {
                anyhow::anyhow!("usage: memkv --id NODE --client-listen ADDR (missing {name})")
            })
    };
    let id = arg("--id")?;
    let listen = arg("--client-listen")?;
    let listener = TcpListener::bind(&listen).await?;
    eprintln!("memkv {id} serving on {listen}");
    let store: Store = Arc::new(Mutex::new(HashMap::new()));
    loop {
        let (sock, _) = listener.accept().await?;
        let _ = sock.set_nodelay(true);
        let store = store.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let (r, mut w) = sock.into_split();
            let mut lines = BufReader::new(r).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let resp = match serde_json::from_str::<serde_json::Value>(&line) {
                    Ok(req) => answer(&store, &id, &req),
                    Err(e) => {
                        serde_json::json!({"id": null, "type": "fail", "error": format!("bad-request: {e}")})
                    }
                };
                let mut out = resp.to_string();
                out.push('\n');
                if w.write_all(out.as_bytes()).await.is_err() {
                    break;
                }
            }
        });
    }
}
