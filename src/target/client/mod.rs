//! Clients: how a worker performs one op against a node and classifies the answer.
//!
//! One file per protocol: [`raftkv`] (JSON lines over TCP), [`pbft`] (pbftkv's signed
//! JSON lines to every replica, f + 1 matching replies), [`etcd`] (etcd's v3 JSON
//! gateway, over the small [`http`] client) and [`stdio`] (a user's adapter program speaking
//! JSON lines on stdin/stdout, for any system without a built-in client).
//!
//! The classification rule is the heart of a sound history: `ok` = it happened, `fail` =
//! it certainly did not happen, `info` = unknown. A read has no effect, so a read that got
//! no answer may be recorded as `fail` (which keeps the checker's search small); a write or
//! cas without a definite answer is always `info`.

pub mod etcd;
pub mod http;
pub mod pbft;
pub mod raftkv;
pub mod stdio;

use crate::history::OpType;
use crate::spec::workload::OpKind;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;

pub use crate::history::Invocation;

/// How an op ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub kind: OpType,
    /// read: the value read; write/cas: the invocation's value.
    pub value: Value,
    pub error: Option<String>,
    /// The node that gave the answer (after following leader hints), or the node tried.
    pub node: String,
}

/// Where the controller reaches a copy's client port: a node's address from the
/// controller's namespace, or (a twin, which binds its node's address) that address from
/// inside the twin's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub netns: Option<String>,
}

impl Endpoint {
    pub fn direct(addr: SocketAddr) -> Endpoint {
        Endpoint { addr, netns: None }
    }

    pub async fn connect(&self) -> std::io::Result<TcpStream> {
        match &self.netns {
            None => TcpStream::connect(self.addr).await,
            Some(ns) => {
                let sock = crate::hosts::local::tcp_socket_in(ns).map_err(std::io::Error::other)?;
                sock.connect(self.addr).await
            }
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.netns {
            None => write!(f, "{}", self.addr),
            Some(ns) => write!(f, "{} in namespace {ns}", self.addr),
        }
    }
}

/// The client protocols (closed set).
#[derive(Debug)]
pub enum Client {
    Raftkv(raftkv::RaftkvClient),
    /// Boxed: its per-replica senders and the twins' watch make it the largest by far.
    Pbft(Box<pbft::PbftClient>),
    Etcd(etcd::EtcdClient),
    /// Boxed: it carries the adapter's spawn spec and pipes, many times the others' size.
    Stdio(Box<stdio::StdioClient>),
}

impl Client {
    pub async fn invoke(&mut self, inv: &Invocation, timeout: Duration) -> Completion {
        match self {
            Client::Raftkv(c) => c.invoke(inv, timeout).await,
            Client::Pbft(c) => c.invoke(inv, timeout).await,
            Client::Etcd(c) => c.invoke(inv, timeout).await,
            Client::Stdio(c) => c.invoke(inv, timeout).await,
        }
    }

    /// Make the client ready for its first op before the run's clock starts: a stdio
    /// adapter is started and answers a read of a key no workload uses (the other clients
    /// connect in microseconds on their first op and need nothing).
    pub async fn open(&mut self, timeout: Duration) -> Result<(), String> {
        match self {
            Client::Stdio(c) => c.cluster_ready(timeout).await,
            Client::Raftkv(_) | Client::Pbft(_) | Client::Etcd(_) => Ok(()),
        }
    }

    pub fn is_stdio(&self) -> bool {
        matches!(self, Client::Stdio(_))
    }

    /// Release what the client holds: a stdio adapter is killed and reaped here (dropping
    /// it kills it too, but only an await can reap it before the run ends).
    pub async fn close(mut self) {
        if let Client::Stdio(c) = &mut self {
            c.close().await;
        }
    }

    /// Whether this client's nodes agree that the cluster serves requests (used to decide
    /// readiness and recovery).
    pub async fn cluster_ready(&mut self, timeout: Duration) -> Result<(), String> {
        match self {
            Client::Raftkv(c) => c.cluster_ready(timeout).await,
            Client::Pbft(c) => c.cluster_ready(timeout).await,
            Client::Etcd(c) => c.cluster_ready(timeout).await,
            Client::Stdio(c) => c.cluster_ready(timeout).await,
        }
    }

    /// The nodes that currently believe they lead (for the `primaries` fault).
    pub async fn leaders(&mut self, timeout: Duration) -> Vec<String> {
        match self {
            Client::Raftkv(c) => c.leaders(timeout).await,
            Client::Pbft(c) => c.leaders(timeout).await,
            Client::Etcd(c) => c.leaders(timeout).await,
            Client::Stdio(c) => c.leaders(timeout).await,
        }
    }

    /// Whether this client can name leaders at all (built-in clients ask each node's status;
    /// a stdio adapter must answer `leaders`), with the reason when it cannot. Asked before
    /// a nemesis that aims at leaders starts, so it is refused rather than hitting nobody.
    pub async fn can_name_leaders(&mut self, timeout: Duration) -> Result<(), String> {
        match self {
            Client::Raftkv(_) | Client::Pbft(_) | Client::Etcd(_) => Ok(()),
            Client::Stdio(c) => c.name_leaders(timeout).await.map(|_| ()),
        }
    }
}

/// Pause before reporting that a node refused the connection (or, for raftkv, knows no
/// leader): a killed node refuses at once, and without a pause its workers would spin, flooding the history with thousands of
/// failed ops per second (seen with etcd: 400k in a 60 s kill run). The op certainly had no
/// effect, so completing it later changes nothing for the checker.
const REFUSED_BACKOFF: Duration = Duration::from_millis(50);

pub(crate) async fn refused_pause(deadline: tokio::time::Instant) {
    tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + REFUSED_BACKOFF)).await;
}

/// Why a node's answer to an admin request (`status`, `log`) is not an `ok`: its type and
/// its error text, as the raftkv-style protocols send them.
pub(crate) fn not_ok(node: &str, request: &str, kind: &str, error: Option<String>) -> String {
    format!(
        "{node} answered {request} with {kind} {}",
        error.unwrap_or_default()
    )
}

/// A read without a definite answer had no effect: record it as fail. Anything else is
/// unknown.
pub(crate) fn indefinite(f: OpKind) -> OpType {
    match f {
        OpKind::Read => OpType::Fail,
        OpKind::Write | OpKind::Cas => OpType::Info,
    }
}
