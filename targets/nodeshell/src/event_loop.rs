//! Pieces of a target's event loop that do not depend on the protocol: the tick clock and
//! the draining of queued inputs into one batch.
//!
//! A target's loop owns its core and wakes for a tick, a peer message, a client call or a
//! disk report; after the first input it takes whatever else is queued ([`drain`]), so one
//! turn handles a whole batch and the disk thread fsyncs once for it.

use crate::client::Call;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, Interval, MissedTickBehavior};

/// Most inputs handled in one turn of the loop (one fsync).
pub const MAX_BATCH: usize = 8192;

/// The protocol's clock: ticks of a fixed length on the monotonic clock (tokio's
/// `Instant`, which libfaketime's clock faults do not move).
pub struct Ticker {
    interval: Interval,
    tick: Duration,
    last: Instant,
    max_catch_up: u64,
}

impl Ticker {
    /// Ticks of `tick_ms`; after a stall (a SIGSTOP: time really passed) at most
    /// `max_catch_up` ticks are made up at once.
    pub fn new(tick_ms: u64, max_catch_up: u64) -> Self {
        let tick = Duration::from_millis(tick_ms);
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Ticker {
            interval,
            tick,
            last: Instant::now(),
            max_catch_up,
        }
    }

    /// Waits for the next tick; returns how many ticks are due (bounded). Cancel-safe, for
    /// `select!`.
    pub async fn due(&mut self) -> u64 {
        self.interval.tick().await;
        let due = (self.last.elapsed().as_millis() / self.tick.as_millis().max(1)) as u64;
        self.last += self.tick * due as u32;
        due.min(self.max_catch_up)
    }
}

/// One queued input.
pub enum Input<M> {
    Peer(M),
    Client(Call),
}

/// Hands `handle` what else is queued, alternating peers and clients so neither starves,
/// up to [`MAX_BATCH`] inputs and only while `room()` (the disk thread has room).
pub fn drain<M>(
    peers: &mut mpsc::Receiver<M>,
    clients: &mut mpsc::Receiver<Call>,
    room: impl Fn() -> bool,
    mut handle: impl FnMut(Input<M>),
) {
    let mut taken = 0;
    while taken < MAX_BATCH && room() {
        let mut progressed = false;
        if let Ok(m) = peers.try_recv() {
            handle(Input::Peer(m));
            progressed = true;
            taken += 1;
        }
        if let Ok(call) = clients.try_recv() {
            handle(Input::Client(call));
            progressed = true;
            taken += 1;
        }
        if !progressed {
            break;
        }
    }
}
