//! Peer-to-peer transport: one outgoing TCP connection per peer, carrying a target's
//! [`PeerMessage`]s as JSON lines one way, and a listener for the peers' connections to us.
//!
//! Consensus protocols tolerate lost messages but not a stuck event loop, so nothing here ever blocks
//! the core: the core hands messages over with `try_send` into a bounded queue per peer
//! (a full queue drops, like a lossy network), and each peer's own task connects with a
//! timeout, reconnects with exponential back-off and discards what queued up while the
//! peer was unreachable. A connection that silently stalls — packets dropped by a
//! partition, a SIGSTOPped peer — is noticed because the receiver acknowledges frames
//! (a count on the reverse direction): unacknowledged frames for longer than the stall
//! timeout make the sender drop the connection and dial again, instead of waiting for
//! TCP's retransmission back-off after the partition heals.
//!
//! Every message, write and acknowledgement is counted per peer in [`WireStats`], which
//! the status request reports, so a measurement from outside can be checked against it.

use crate::log_line;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep, timeout, Instant};

/// Messages queued per peer before new ones are dropped.
pub const PEER_QUEUE: usize = 4096;
/// Largest frame accepted (a snapshot travels in one frame).
const MAX_FRAME_BYTES: u64 = 256 << 20;
/// Most bytes written in one go, so one big batch does not delay the stall check forever.
const MAX_WRITE_BYTES: usize = 4 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const MIN_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_millis(1000);

/// A message between two nodes, as a target's core produces it: the transport needs to
/// know who it goes to (which connection) and who sent it (whose counts it adds to).
pub trait PeerMessage: Serialize + DeserializeOwned + Send + 'static {
    /// How the target names nodes in its messages (raftkv: "n1"; paxoskv: 1).
    type Peer: Clone + Eq + Ord + Hash + Display + Send + Sync + 'static;
    /// The sending node.
    fn sender(&self) -> &Self::Peer;
    /// The node it is for.
    fn receiver(&self) -> &Self::Peer;
}

/// One peer's traffic as the transport saw it, the truth a wire measurement (faultline's
/// per-link counters) is checked against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerCounts {
    /// Protocol messages written to the peer's connection.
    pub messages_sent: u64,
    /// Their bytes, newline framing included (TCP/IP headers not).
    pub bytes_sent: u64,
    /// Socket writes carrying those messages: queued messages go out together, so with
    /// batching this is below `messages_sent`.
    pub writes_sent: u64,
    /// Acknowledgement lines written back on the peer's connection to us; each is a
    /// data-carrying segment on the wire too.
    pub acks_sent: u64,
    /// Protocol messages read from the peer's connections.
    pub messages_received: u64,
    /// Their bytes, newline framing included.
    pub bytes_received: u64,
}

/// Per-peer traffic counts, shared by all the transport's tasks.
#[derive(Debug)]
pub struct WireStats<P>(Mutex<BTreeMap<P, PeerCounts>>);

impl<P> Default for WireStats<P> {
    fn default() -> Self {
        WireStats(Mutex::new(BTreeMap::new()))
    }
}

impl<P: Clone + Ord> WireStats<P> {
    fn add(&self, peer: &P, f: impl FnOnce(&mut PeerCounts)) {
        // A poisoned lock only means another task panicked mid-count: keep counting.
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match map.get_mut(peer) {
            Some(c) => f(c),
            None => f(map.entry(peer.clone()).or_default()),
        }
    }

    /// The counts so far, by peer.
    pub fn snapshot(&self) -> BTreeMap<P, PeerCounts> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The queue feeding each peer's connection, by peer.
pub type Peers<M> = HashMap<<M as PeerMessage>::Peer, mpsc::Sender<M>>;

/// Hands each message to its peer's queue. Never blocks: a full queue means the peer is
/// not keeping up, and the message is dropped, like a lossy network's.
pub fn send_all<M: PeerMessage>(peers: &Peers<M>, messages: Vec<M>) {
    for m in messages {
        if let Some(tx) = peers.get(m.receiver()) {
            let _ = tx.try_send(m);
        }
    }
}

/// Starts the task that owns the connection to `peer`; returns the queue feeding it.
pub fn spawn_peer<M: PeerMessage>(
    me: String,
    peer: M::Peer,
    addr: String,
    stall: Duration,
    stats: Arc<WireStats<M::Peer>>,
) -> mpsc::Sender<M> {
    let (tx, rx) = mpsc::channel(PEER_QUEUE);
    tokio::spawn(outbound(me, peer, addr, rx, stall, stats));
    tx
}

enum End {
    /// The core is gone: stop.
    Shutdown,
    /// The connection broke or stalled: reconnect.
    Broken(String),
}

async fn outbound<M: PeerMessage>(
    me: String,
    peer: M::Peer,
    addr: String,
    mut rx: mpsc::Receiver<M>,
    stall: Duration,
    stats: Arc<WireStats<M::Peer>>,
) {
    let mut backoff = MIN_BACKOFF;
    let mut reported_down = false;
    loop {
        let why = match timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                log_line(&me, &format!("connected to peer {peer} at {addr}"));
                reported_down = false;
                backoff = MIN_BACKOFF;
                match run_connection(stream, &mut rx, stall, &peer, &stats).await {
                    End::Shutdown => return,
                    End::Broken(why) => why,
                }
            }
            Ok(Err(e)) => format!("connect failed: {e}"),
            Err(_) => format!("connect timed out after {CONNECT_TIMEOUT:?}"),
        };
        if !reported_down {
            log_line(
                &me,
                &format!("peer {peer} at {addr} unreachable ({why}); retrying"),
            );
            reported_down = true;
        }
        // What queued up meanwhile is stale; the protocol resends what still matters.
        loop {
            match rx.try_recv() {
                Ok(_) => {}
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return,
            }
        }
        sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Aborts the acknowledgement reader when the connection ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn run_connection<M: PeerMessage>(
    stream: TcpStream,
    rx: &mut mpsc::Receiver<M>,
    stall: Duration,
    peer: &M::Peer,
    stats: &WireStats<M::Peer>,
) -> End {
    let (rd, mut wr) = stream.into_split();
    let acked = Arc::new(AtomicU64::new(0));
    let acked_w = acked.clone();
    let reader = AbortOnDrop(tokio::spawn(async move {
        let mut lines = BufReader::new(rd).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(n) = line.trim().parse::<u64>() {
                acked_w.fetch_max(n, Ordering::Relaxed);
            }
        }
    }));
    let mut sent = 0u64;
    let mut last_acked = 0u64;
    let mut waiting_since: Option<Instant> = None;
    let mut buf = Vec::with_capacity(64 << 10);
    loop {
        let first = tokio::select! {
            m = rx.recv() => match m {
                Some(m) => Some(m),
                None => return End::Shutdown,
            },
            _ = sleep(stall / 4) => None,
        };
        if let Some(m) = first {
            buf.clear();
            let mut next = Some(m);
            let mut messages = 0u64;
            while let Some(m) = next.take() {
                if serde_json::to_writer(&mut buf, &m).is_ok() {
                    buf.push(b'\n');
                    messages += 1;
                }
                if buf.len() < MAX_WRITE_BYTES {
                    next = rx.try_recv().ok();
                }
            }
            match timeout(stall, wr.write_all(&buf)).await {
                Ok(Ok(())) => {
                    sent += messages;
                    stats.add(peer, |c| {
                        c.messages_sent += messages;
                        c.bytes_sent += buf.len() as u64;
                        c.writes_sent += 1;
                    });
                }
                Ok(Err(e)) => return End::Broken(format!("write failed: {e}")),
                Err(_) => return End::Broken("write stalled".into()),
            }
        }
        if reader.0.is_finished() {
            return End::Broken("peer closed the connection".into());
        }
        let a = acked.load(Ordering::Relaxed);
        if a >= sent {
            waiting_since = None;
        } else if waiting_since.is_none() || a != last_acked {
            waiting_since = Some(Instant::now());
        }
        last_acked = a;
        if waiting_since.is_some_and(|t| t.elapsed() > stall) {
            return End::Broken(format!("no acknowledgement for {stall:?}"));
        }
    }
}

/// Accepts peers' connections and forwards their messages to the core.
pub async fn serve_peers<M: PeerMessage>(
    me: String,
    listener: TcpListener,
    to_core: mpsc::Sender<M>,
    stats: Arc<WireStats<M::Peer>>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(inbound(me.clone(), stream, to_core.clone(), stats.clone()));
            }
            Err(e) => {
                log_line(&me, &format!("accepting a peer connection failed: {e}"));
                sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn inbound<M: PeerMessage>(
    me: String,
    stream: TcpStream,
    to_core: mpsc::Sender<M>,
    stats: Arc<WireStats<M::Peer>>,
) {
    let _ = stream.set_nodelay(true);
    let (rd, mut wr) = stream.into_split();
    // Acknowledgements go out from their own task so a peer that stopped reading them
    // never stalls our reading of its messages. The watch carries the count and who the
    // sender is (known from its first message, which always precedes the first ack).
    let (ack_tx, mut ack_rx) = watch::channel::<(u64, Option<M::Peer>)>((0, None));
    let ack_stats = stats.clone();
    let _acker = AbortOnDrop(tokio::spawn(async move {
        while ack_rx.changed().await.is_ok() {
            let (n, from) = ack_rx.borrow_and_update().clone();
            let line = format!("{n}\n");
            match timeout(Duration::from_secs(5), wr.write_all(line.as_bytes())).await {
                Ok(Ok(())) => {
                    if let Some(from) = &from {
                        ack_stats.add(from, |c| c.acks_sent += 1);
                    }
                }
                _ => return,
            }
        }
    }));
    let mut from: Option<M::Peer> = None;
    let mut rd = BufReader::with_capacity(256 << 10, rd);
    let mut line = Vec::new();
    let mut count = 0u64;
    loop {
        line.clear();
        match (&mut rd)
            .take(MAX_FRAME_BYTES)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if line.last() != Some(&b'\n') {
            if line.len() as u64 >= MAX_FRAME_BYTES {
                log_line(&me, "peer sent a frame over the size limit; closing");
            }
            return;
        }
        match serde_json::from_slice::<M>(&line) {
            Ok(env) => {
                if from.as_ref() != Some(env.sender()) {
                    from = Some(env.sender().clone());
                }
                stats.add(env.sender(), |c| {
                    c.messages_received += 1;
                    c.bytes_received += line.len() as u64;
                });
                if to_core.send(env).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                log_line(&me, &format!("peer sent a malformed frame ({e}); closing"));
                return;
            }
        }
        count += 1;
        if rd.buffer().is_empty() {
            let _ = ack_tx.send((count, from.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    /// A message shaped like a target's: addressed, with a body.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    struct Ping {
        from: String,
        to: String,
        seq: u64,
    }

    impl PeerMessage for Ping {
        type Peer = String;
        fn sender(&self) -> &String {
            &self.from
        }
        fn receiver(&self) -> &String {
            &self.to
        }
    }

    fn heartbeat(seq: u64) -> Ping {
        Ping {
            from: "n1".into(),
            to: "n2".into(),
            seq,
        }
    }

    #[tokio::test]
    async fn delivers_in_order_and_gets_acknowledged() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (to_core, mut core) = mpsc::channel(16);
        let theirs = Arc::new(WireStats::default());
        tokio::spawn(serve_peers::<Ping>(
            "n2".into(),
            listener,
            to_core,
            theirs.clone(),
        ));
        let ours = Arc::new(WireStats::default());
        let tx = spawn_peer::<Ping>(
            "n1".into(),
            "n2".into(),
            addr,
            Duration::from_millis(300),
            ours.clone(),
        );
        for seq in 1..=5 {
            tx.send(heartbeat(seq)).await.unwrap();
        }
        for seq in 1..=5 {
            let got = timeout(Duration::from_secs(5), core.recv()).await.unwrap();
            assert_eq!(got, Some(heartbeat(seq)));
        }
        // Both ends count the same five messages and bytes, each under the other's name.
        let frame_bytes: u64 = (1..=5)
            .map(|seq| serde_json::to_vec(&heartbeat(seq)).unwrap().len() as u64 + 1)
            .sum();
        let sent = ours.snapshot()["n2"];
        assert_eq!((sent.messages_sent, sent.bytes_sent), (5, frame_bytes));
        assert!((1..=5).contains(&sent.writes_sent), "{sent:?}");
        let start = Instant::now();
        loop {
            let got = theirs.snapshot().get("n1").copied().unwrap_or_default();
            if got.messages_received == 5 && got.acks_sent >= 1 {
                assert_eq!(got.bytes_received, frame_bytes);
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(5), "{got:?}");
            sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn redials_a_peer_that_stops_acknowledging() {
        // A "peer" that accepts connections and never reads from them: what a SIGSTOPped
        // process or a partition that drops packets looks like from here.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let tx = spawn_peer::<Ping>(
            "n1".into(),
            "n2".into(),
            addr,
            Duration::from_millis(200),
            Arc::default(),
        );
        let mut held = Vec::new();
        let start = Instant::now();
        let mut seq = 0;
        while held.len() < 2 {
            tokio::select! {
                conn = listener.accept() => held.push(conn.unwrap().0),
                _ = sleep(Duration::from_millis(20)) => {
                    seq += 1;
                    // Never blocks, whatever the peer does: a full queue drops.
                    let _ = tx.try_send(heartbeat(seq));
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no reconnection after the peer went silent"
            );
        }
    }
}
