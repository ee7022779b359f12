//! A recording fake host, for unit tests that run without root: nodes are real processes
//! on loopback addresses (as [`super::loopback`]), but commands meant for a node's host
//! (`nft`, `iptables`) are recorded instead of run, and can be made to fail or to take
//! time. Runner, target and nemesis logic is tested on it; what the kernel does with the
//! rules is tested by the integration tests as root.

use super::loopback::LoopbackHosts;
use super::NodeHost;
use anyhow::{bail, Result};
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Output};
use std::sync::Mutex;
use std::time::Duration;

/// One command a node's host was asked to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    pub node: String,
    pub argv: Vec<String>,
    pub stdin: String,
}

impl Exec {
    /// The command line and its input, for matching in tests.
    pub fn text(&self) -> String {
        format!("{} {}", self.argv.join(" "), self.stdin)
    }
}

/// Commands that fail: on `node`, those whose text contains `needle`, `times` more times.
#[derive(Debug, Clone)]
struct Failure {
    node: String,
    needle: String,
    times: u32,
}

#[derive(Debug)]
pub struct RecordingHosts {
    hosts: LoopbackHosts,
    calls: Mutex<Vec<Exec>>,
    failures: Mutex<Vec<Failure>>,
    /// How long each command takes, to have a nemesis step under way when a test cancels.
    latency: Mutex<Duration>,
}

impl RecordingHosts {
    pub fn create(run_id: &str, nodes: &[String]) -> Result<RecordingHosts> {
        Ok(RecordingHosts {
            hosts: LoopbackHosts::create(run_id, nodes)?,
            calls: Mutex::new(Vec::new()),
            failures: Mutex::new(Vec::new()),
            latency: Mutex::new(Duration::ZERO),
        })
    }

    pub fn nodes(&self) -> &[NodeHost] {
        &self.hosts.nodes
    }

    /// Make the next `times` commands on `node` whose text contains `needle` fail.
    pub fn fail(&self, node: &str, needle: &str, times: u32) {
        lock(&self.failures).push(Failure {
            node: node.into(),
            needle: needle.into(),
            times,
        });
    }

    pub fn set_latency(&self, latency: Duration) {
        *lock(&self.latency) = latency;
    }

    /// Every command so far, in order.
    pub fn calls(&self) -> Vec<Exec> {
        lock(&self.calls).clone()
    }

    pub async fn exec(&self, node: &NodeHost, argv: &[&str], stdin: &[u8]) -> Result<Output> {
        if argv.is_empty() {
            bail!("empty command");
        }
        let call = Exec {
            node: node.node.clone(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            stdin: String::from_utf8_lossy(stdin).into_owned(),
        };
        let latency = *lock(&self.latency);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let failed = {
            let mut failures = lock(&self.failures);
            let text = call.text();
            match failures
                .iter_mut()
                .find(|f| f.times > 0 && f.node == call.node && text.contains(&f.needle))
            {
                Some(f) => {
                    f.times -= 1;
                    true
                }
                None => false,
            }
        };
        lock(&self.calls).push(call);
        Ok(Output {
            // Exit code 1 is a wait status of 256.
            status: ExitStatus::from_raw(if failed { 256 } else { 0 }),
            stdout: Vec::new(),
            stderr: if failed {
                b"injected failure".to_vec()
            } else {
                Vec::new()
            },
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
