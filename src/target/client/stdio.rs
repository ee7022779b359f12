//! The `stdio` client: a user-supplied adapter program, one per worker, exchanging one
//! JSON object per line on its stdin/stdout (README, "Writing a stdio adapter").
//!
//! Requests: `{"id":1,"f":"read","key":"k"}`, `{"id":2,"f":"write","key":"k","value":3}`,
//! `{"id":3,"f":"cas","key":"k","value":[3,4]}`, and `{"id":4,"f":"leaders"}` (optional:
//! the node names that currently lead, for the `primaries` faults). Answers:
//! `{"id":1,"type":"ok","value":3}`, `{"id":3,"type":"fail","error":"compare-failed"}`,
//! `{"id":2,"type":"info","error":"timeout"}`.
//!
//! An adapter that crashes, answers a malformed line or stays silent past the op's timeout
//! is killed (its whole process group, so an `etcdctl` it started dies too) and waited
//! for; the op is unknown (info; a read: fail) and the next op starts a fresh adapter.
//! Adapters are the controller's children with PDEATHSIG, so a SIGKILLed controller takes
//! them along; [`StdioClient::close`] kills and reaps one at the end of a worker.

use super::{indefinite, Completion, Invocation};
use crate::history::{OpType, COMPARE_FAILED};
use crate::spec::workload::OpKind;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::time::Instant;

/// Longest answer line accepted from an adapter.
const MAX_LINE_BYTES: usize = 64 * 1024;
/// How long a killed adapter may take to be reaped.
const REAP_TIMEOUT: Duration = Duration::from_secs(2);
/// Least time an adapter gets to answer `leaders`.
const LEADERS_TIMEOUT_FLOOR: Duration = Duration::from_secs(3);
/// The key `ready: {check: client}` reads through an adapter; no workload uses it.
pub const READY_KEY: &str = "faultline-ready";
/// Where the protocol is documented, quoted in errors about malformed answers.
const PROTOCOL_DOC: &str = "README.md, \"Writing a stdio adapter\"";

/// How to start an adapter for one worker (resolved by [`crate::target::Cluster`]).
#[derive(Debug, Clone)]
pub struct AdapterSpec {
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: PathBuf,
    /// The adapter's stderr is appended here (one file per node, shared by its workers).
    pub stderr: PathBuf,
}

/// A running adapter process.
#[derive(Debug)]
struct Adapter {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// Leader of the adapter's own process group.
    pgid: i32,
}

impl Drop for Adapter {
    fn drop(&mut self) {
        // Not yet reaped: kill the whole group (tokio's kill_on_drop reaches the leader
        // only). A reaped leader's group id is never signalled, as it may be reused.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = killpg(Pid::from_raw(self.pgid), Signal::SIGKILL);
        }
    }
}

impl Adapter {
    fn spawn(spec: &AdapterSpec) -> Result<Adapter, String> {
        let (prog, args) = spec
            .argv
            .split_first()
            .ok_or_else(|| "the adapter command is empty".to_string())?;
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.stderr)
            .map_err(|e| format!("cannot open {}: {e}", spec.stderr.display()))?;
        let mut cmd = tokio::process::Command::new(prog);
        cmd.args(args)
            .envs(&spec.env)
            .current_dir(&spec.cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .process_group(0)
            .kill_on_drop(true);
        crate::hosts::local::die_with_controller(&mut cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start adapter `{}`: {e}", spec.argv.join(" ")))?;
        let pgid = child
            .id()
            .ok_or_else(|| "the adapter exited at once".to_string())? as i32;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("the adapter's stdin/stdout are not pipes".into());
        };
        Ok(Adapter {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            pgid,
        })
    }

    /// Kill the group and reap the leader (bounded).
    async fn kill(mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = killpg(Pid::from_raw(self.pgid), Signal::SIGKILL);
        }
        let _ = tokio::time::timeout(REAP_TIMEOUT, self.child.wait()).await;
    }
}

#[derive(Debug)]
pub struct StdioClient {
    home: String,
    spec: AdapterSpec,
    /// Started on first use and after every failure, so a crashed adapter costs one op.
    adapter: Option<Adapter>,
    next_id: u64,
}

/// Why an exchange gave no answer.
#[derive(Debug)]
enum Exchange {
    /// The adapter could not be started: nothing was sent anywhere.
    NotSent(String),
    /// Sent; no usable answer.
    NoAnswer(String),
}

impl StdioClient {
    pub fn new(home: String, spec: AdapterSpec) -> StdioClient {
        StdioClient {
            home,
            spec,
            adapter: None,
            next_id: 0,
        }
    }

    /// Kill and reap the adapter, if one runs.
    pub async fn close(&mut self) {
        if let Some(a) = self.adapter.take() {
            a.kill().await;
        }
    }

    async fn exchange(&mut self, mut req: Value, deadline: Instant) -> Result<Value, Exchange> {
        if self.adapter.is_none() {
            self.adapter = Some(Adapter::spawn(&self.spec).map_err(Exchange::NotSent)?);
        }
        self.next_id += 1;
        let id = self.next_id;
        req["id"] = json!(id);
        let mut line = req.to_string();
        line.push('\n');
        let result = match self.adapter.as_mut() {
            Some(a) => tokio::time::timeout_at(deadline, exchange_on(a, &line, id))
                .await
                .unwrap_or_else(|_| Err("the adapter did not answer in time".into())),
            None => Err("no adapter".into()),
        };
        match result {
            Ok(v) => Ok(v),
            Err(e) => {
                self.close().await;
                Err(Exchange::NoAnswer(e))
            }
        }
    }

    pub async fn invoke(&mut self, inv: &Invocation, timeout: Duration) -> Completion {
        let deadline = Instant::now() + timeout;
        let mut req = json!({"f": inv.f.as_str(), "key": inv.key});
        if inv.f != OpKind::Read {
            req["value"] = inv.value.clone();
        }
        let result = self.exchange(req, deadline).await;
        let (kind, value, error) = classify(inv, result);
        Completion {
            kind,
            value,
            error,
            node: self.home.clone(),
        }
    }

    /// Ready when an op through the adapter succeeds: a read of a key no workload uses (a
    /// read has no effect). A TCP probe passes before the cluster has a leader; this does
    /// not.
    pub async fn cluster_ready(&mut self, timeout: Duration) -> Result<(), String> {
        // An adapter often starts a process per op; it gets the same floor as `leaders`.
        let deadline = Instant::now() + timeout.max(LEADERS_TIMEOUT_FLOOR);
        let req = json!({"f": "read", "key": READY_KEY});
        match self.exchange(req, deadline).await {
            Ok(v) if v.get("type").and_then(Value::as_str) == Some("ok") => Ok(()),
            Ok(v) => {
                let mut answer = v.to_string();
                if answer.len() > 200 {
                    answer.truncate(answer.floor_char_boundary(200));
                    answer.push('…');
                }
                Err(format!(
                    "{}: a read through the adapter answered {answer}",
                    self.home
                ))
            }
            Err(Exchange::NotSent(e)) | Err(Exchange::NoAnswer(e)) => Err(format!(
                "{}: a read through the adapter failed: {e}",
                self.home
            )),
        }
    }

    /// Ask the adapter `{"f":"leaders"}`; an adapter without it answers fail: nobody.
    pub async fn leaders(&mut self, timeout: Duration) -> Vec<String> {
        self.name_leaders(timeout).await.unwrap_or_default()
    }

    /// [`StdioClient::leaders`], or why the adapter named none: one that does not answer
    /// `leaders` with `ok` cannot tell a leader-relative fault whom to hit.
    pub async fn name_leaders(&mut self, timeout: Duration) -> Result<Vec<String>, String> {
        // `timeout` is meant per node; an adapter asks every node, often by starting a
        // process per question (etcdctl), so it gets a floor.
        let deadline = Instant::now() + timeout.max(LEADERS_TIMEOUT_FLOOR);
        match self.exchange(json!({"f": "leaders"}), deadline).await {
            Ok(v) if v.get("type").and_then(Value::as_str) == Some("ok") => Ok(v
                .get("value")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()),
            Ok(v) => Err(format!(
                "the adapter answered `leaders` with {}",
                v.get("error")
                    .and_then(Value::as_str)
                    .map_or_else(|| "no ok".to_string(), |e| format!("an error: {e}"))
            )),
            Err(Exchange::NotSent(e)) | Err(Exchange::NoAnswer(e)) => Err(e),
        }
    }
}

/// Write one request line and read lines until the answer with `id`.
async fn exchange_on(a: &mut Adapter, line: &str, id: u64) -> Result<Value, String> {
    a.stdin
        .write_all(line.as_bytes())
        .await
        .map_err(|e| format!("cannot write to the adapter (did it exit?): {e}"))?;
    a.stdin
        .flush()
        .await
        .map_err(|e| format!("cannot write to the adapter: {e}"))?;
    loop {
        let mut buf = String::new();
        let n = (&mut a.stdout)
            .take(MAX_LINE_BYTES as u64)
            .read_line(&mut buf)
            .await
            .map_err(|e| format!("cannot read from the adapter: {e}"))?;
        if n == 0 {
            let status = match a.child.try_wait() {
                Ok(Some(s)) => format!(" ({s})"),
                _ => String::new(),
            };
            return Err(format!("the adapter closed its stdout{status}"));
        }
        let text = buf.trim();
        if text.is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(text).map_err(|e| {
            format!("the adapter sent a line that is not a JSON object ({e}): {text:?}; see {PROTOCOL_DOC}")
        })?;
        match v.get("id").and_then(Value::as_u64) {
            Some(got) if got == id => return Ok(v),
            // An answer to an earlier request cannot arrive (an adapter that missed a
            // deadline is killed), but skip rather than mistake it for this one.
            Some(got) if got < id => continue,
            _ => {
                return Err(format!(
                    "the adapter answered request {id} with {text:?} (its `id` must be {id}); see {PROTOCOL_DOC}"
                ))
            }
        }
    }
}

/// Map an adapter's answer to an outcome: (type, value, error).
fn classify(inv: &Invocation, result: Result<Value, Exchange>) -> (OpType, Value, Option<String>) {
    let answer = match result {
        Ok(a) => a,
        Err(Exchange::NotSent(e)) => return (OpType::Fail, inv.value.clone(), Some(e)),
        Err(Exchange::NoAnswer(e)) => return (indefinite(inv.f), inv.value.clone(), Some(e)),
    };
    let error = answer
        .get("error")
        .and_then(Value::as_str)
        .map(str::to_string);
    match answer.get("type").and_then(Value::as_str) {
        Some("ok") => {
            let value = match inv.f {
                OpKind::Read => answer.get("value").cloned().unwrap_or(Value::Null),
                _ => inv.value.clone(),
            };
            (OpType::Ok, value, None)
        }
        Some("fail") => {
            // A cas whose comparison failed is an observation; name it as the history does.
            let error = match (inv.f, error.as_deref()) {
                (OpKind::Cas, Some(COMPARE_FAILED)) => Some(COMPARE_FAILED.to_string()),
                _ => error.or_else(|| Some("fail".into())),
            };
            (OpType::Fail, inv.value.clone(), error)
        }
        Some("info") => (indefinite(inv.f), inv.value.clone(), error),
        other => (
            indefinite(inv.f),
            inv.value.clone(),
            Some(format!(
                "the adapter answered with type {other:?} (expected ok, fail or info); see {PROTOCOL_DOC}"
            )),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(f: OpKind, value: Value) -> Invocation {
        Invocation {
            f,
            key: "k".into(),
            value,
        }
    }

    /// A client whose adapter is a shell script.
    fn sh(script: &str, dir: &std::path::Path) -> StdioClient {
        StdioClient::new(
            "n1".into(),
            AdapterSpec {
                argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
                env: BTreeMap::new(),
                cwd: dir.to_path_buf(),
                stderr: dir.join("adapter-stderr.log"),
            },
        )
    }

    #[test]
    fn maps_answers_to_outcomes() {
        let read = inv(OpKind::Read, Value::Null);
        assert_eq!(
            classify(&read, Ok(json!({"id": 1, "type": "ok", "value": 4}))),
            (OpType::Ok, json!(4), None)
        );
        let cas = inv(OpKind::Cas, json!([1, 2]));
        assert_eq!(
            classify(&cas, Ok(json!({"type": "fail", "error": "compare-failed"}))),
            (OpType::Fail, json!([1, 2]), Some("compare-failed".into()))
        );
        assert_eq!(
            classify(&cas, Ok(json!({"type": "info", "error": "timeout"}))).0,
            OpType::Info
        );
        assert_eq!(classify(&read, Ok(json!({"type": "info"}))).0, OpType::Fail);
        assert_eq!(classify(&cas, Ok(json!({"type": "maybe"}))).0, OpType::Info);
        assert_eq!(
            classify(&cas, Err(Exchange::NotSent("cannot start".into()))).0,
            OpType::Fail
        );
    }

    #[tokio::test]
    async fn ready_means_a_read_through_the_adapter_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let t = Duration::from_millis(200);
        // Answers every request with ok, echoing its id.
        let mut ok = sh(
            r#"while read -r line; do id=$(echo "$line" | sed 's/.*"id":\([0-9]*\).*/\1/'); echo "{\"id\":$id,\"type\":\"ok\",\"value\":null}"; done"#,
            dir.path(),
        );
        ok.cluster_ready(t).await.unwrap();
        ok.close().await;
        // Up, but without a leader: every op fails.
        let mut no_leader = sh(
            r#"while read -r line; do id=$(echo "$line" | sed 's/.*"id":\([0-9]*\).*/\1/'); echo "{\"id\":$id,\"type\":\"fail\",\"error\":\"no leader\"}"; done"#,
            dir.path(),
        );
        let err = no_leader.cluster_ready(t).await.unwrap_err();
        assert!(err.contains("no leader") && err.starts_with("n1:"), "{err}");
        no_leader.close().await;
        let mut missing = sh("exit 3", dir.path());
        assert!(missing.cluster_ready(t).await.is_err());
        missing.close().await;
    }

    #[tokio::test]
    async fn an_adapter_that_fails_leaders_cannot_name_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = sh(
            r#"while read -r line; do id=$(echo "$line" | sed 's/.*"id":\([0-9]*\).*/\1/'); echo "{\"id\":$id,\"type\":\"fail\",\"error\":\"unsupported\"}"; done"#,
            dir.path(),
        );
        let why = c
            .name_leaders(Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(why.contains("unsupported"), "{why}");
        assert!(c.leaders(Duration::from_millis(200)).await.is_empty());
        c.close().await;
    }

    #[tokio::test]
    async fn speaks_json_lines_with_an_adapter() {
        let dir = tempfile::tempdir().unwrap();
        // Answers every request with ok and value 7, echoing its id.
        let mut c = sh(
            r#"while read -r line; do id=$(echo "$line" | sed 's/.*"id":\([0-9]*\).*/\1/'); echo "{\"id\":$id,\"type\":\"ok\",\"value\":7}"; done"#,
            dir.path(),
        );
        let t = Duration::from_secs(5);
        let a = c.invoke(&inv(OpKind::Read, Value::Null), t).await;
        assert_eq!((a.kind, a.value), (OpType::Ok, json!(7)));
        let b = c.invoke(&inv(OpKind::Write, json!(3)), t).await;
        assert_eq!((b.kind, b.value), (OpType::Ok, json!(3)));
        c.close().await;
    }

    #[tokio::test]
    async fn a_crashed_adapter_is_info_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("started");
        // The first adapter dies on its first request; later ones answer ok.
        let script = format!(
            r#"if [ -e {m} ]; then while read -r l; do id=$(echo "$l" | sed 's/.*"id":\([0-9]*\).*/\1/'); echo "{{\"id\":$id,\"type\":\"ok\"}}"; done; else touch {m}; read -r l; exit 3; fi"#,
            m = marker.display()
        );
        let mut c = sh(&script, dir.path());
        let t = Duration::from_secs(5);
        let w = inv(OpKind::Write, json!(1));
        let a = c.invoke(&w, t).await;
        assert_eq!(a.kind, OpType::Info, "{a:?}");
        assert!(a.error.unwrap().contains("closed its stdout"));
        let b = c.invoke(&w, t).await;
        assert_eq!(b.kind, OpType::Ok, "{b:?}");
        c.close().await;
    }

    #[tokio::test]
    async fn a_silent_adapter_is_killed_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("child.pid");
        // Starts a grandchild (as an adapter running etcdctl would) and never answers.
        let script = format!(
            "sleep 600 & echo $! > {}; cat > /dev/null",
            pidfile.display()
        );
        let mut c = sh(&script, dir.path());
        let a = c
            .invoke(&inv(OpKind::Cas, json!([1, 2])), Duration::from_millis(500))
            .await;
        assert_eq!(a.kind, OpType::Info);
        assert!(a.error.unwrap().contains("did not answer in time"));
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The grandchild was killed with the group (it may linger as a zombie of init).
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if stat.is_empty() || stat.contains(") Z") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "grandchild {pid} survived: {stat}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn a_malformed_line_names_the_protocol_doc() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = sh("read -r l; echo 'hello'; cat > /dev/null", dir.path());
        let a = c
            .invoke(&inv(OpKind::Read, Value::Null), Duration::from_secs(5))
            .await;
        assert_eq!(a.kind, OpType::Fail);
        let e = a.error.unwrap();
        assert!(
            e.contains("\"hello\"") && e.contains("Writing a stdio adapter"),
            "{e}"
        );
    }
}
