//! The disk thread: a target's durable records written in order with one fsync for every
//! batch waiting (group commit), and then — only then — the messages and client answers
//! that depended on them.
//!
//! The event loop never waits for the disk: it hands a [`DiskJob`] over and carries on,
//! and learns from [`Disk::done`] when the job's records are durable. At most
//! [`MAX_DISK_JOBS`] jobs wait at once; at the bound ([`Disk::has_room`] false) the loop
//! should stop taking input until the disk catches up. Messages that did not need to
//! wait may go out at once — but while a queued job carries messages
//! ([`Disk::messages_queued`]), later messages must queue behind it to keep each link in
//! order.
//!
//! What a record is and how it is laid out on disk is the target's ([`Store`]);
//! [`write_atomic`] is the one file operation they share.

use crate::client::Reply;
use crate::transport::{send_all, PeerMessage, Peers};
use anyhow::{Context, Result};
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;
use tokio::sync::{mpsc, oneshot};

/// Most batches waiting for the disk at once.
pub const MAX_DISK_JOBS: usize = 64;

/// A target's data dir: makes records durable.
pub trait Store: Send + 'static {
    /// One durable change, as the target's core produces it.
    type Record: Send + 'static;
    /// Carries out `records` in order and makes them durable (fsync) before returning.
    fn persist(&mut self, records: &[Self::Record]) -> Result<()>;
}

/// One batch's durable changes, and what may only happen once they are durable.
pub struct DiskJob<R, M, T> {
    pub persist: Vec<R>,
    /// Sent once `persist` is durable.
    pub messages: Vec<M>,
    /// Answered once `persist` is durable.
    pub replies: Vec<(oneshot::Sender<Reply>, Reply)>,
    /// Handed back by [`Disk::done`] once the job is done (raftkv: the last log index
    /// the job made durable).
    pub report: T,
}

impl<R, M, T> DiskJob<R, M, T> {
    /// A job with nothing to do yet but report `report`.
    pub fn new(report: T) -> Self {
        DiskJob {
            persist: Vec::new(),
            messages: Vec::new(),
            replies: Vec::new(),
            report,
        }
    }

    /// True when the job would write, send and answer nothing.
    pub fn is_empty(&self) -> bool {
        self.persist.is_empty() && self.messages.is_empty() && self.replies.is_empty()
    }
}

/// A job done: its report, and whether it carried messages.
type Done<T> = Result<(T, bool)>;

/// The event loop's handle on the disk thread.
pub struct Disk<R, M, T> {
    jobs: std::sync::mpsc::Sender<DiskJob<R, M, T>>,
    done: mpsc::UnboundedReceiver<Done<T>>,
    in_flight: usize,
    with_messages: usize,
}

impl<R, M, T> Disk<R, M, T>
where
    R: Send + 'static,
    M: PeerMessage,
    T: Send + 'static,
{
    /// Starts the disk thread (named `name`) over `storage`; it sends the messages of
    /// durable jobs through `peers`.
    pub fn start<S: Store<Record = R>>(name: &str, storage: S, peers: Peers<M>) -> Result<Self> {
        let (done_tx, done) = mpsc::unbounded_channel();
        let (jobs, jobs_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || disk_thread(storage, jobs_rx, peers, done_tx))
            .context("starting the disk thread")?;
        Ok(Disk {
            jobs,
            done,
            in_flight: 0,
            with_messages: 0,
        })
    }

    /// True while fewer than [`MAX_DISK_JOBS`] jobs wait.
    pub fn has_room(&self) -> bool {
        self.in_flight < MAX_DISK_JOBS
    }

    /// True when no job waits: what the core produces next cannot overtake anything.
    pub fn is_idle(&self) -> bool {
        self.in_flight == 0
    }

    /// True while a waiting job carries messages (later messages must queue behind it).
    pub fn messages_queued(&self) -> bool {
        self.with_messages > 0
    }

    /// Queues a job. An error means the disk thread stopped.
    pub fn submit(&mut self, job: DiskJob<R, M, T>) -> Result<()> {
        self.with_messages += usize::from(!job.messages.is_empty());
        self.in_flight += 1;
        if self.jobs.send(job).is_err() {
            anyhow::bail!("the disk thread stopped");
        }
        Ok(())
    }

    /// The next job done, in submission order, with its report; an error (the data dir
    /// failed) should stop the node. Cancel-safe, for `select!`.
    pub async fn done(&mut self) -> Result<T> {
        let Some(done) = self.done.recv().await else {
            anyhow::bail!("the disk thread stopped");
        };
        let (report, had_messages) = done?;
        self.in_flight -= 1;
        self.with_messages -= usize::from(had_messages);
        Ok(report)
    }
}

/// Writes batches in order, one fsync for all the batches waiting (group commit across
/// batches too), then sends what depended on them. Runs on its own thread so the event
/// loop keeps handling answers and requests while the disk works.
fn disk_thread<S: Store, M: PeerMessage, T>(
    mut storage: S,
    jobs: std::sync::mpsc::Receiver<DiskJob<S::Record, M, T>>,
    senders: Peers<M>,
    done: mpsc::UnboundedSender<Done<T>>,
) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_DISK_JOBS {
            match jobs.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let persist: Vec<S::Record> = batch
            .iter_mut()
            .flat_map(|j| std::mem::take(&mut j.persist))
            .collect();
        if let Err(e) = storage.persist(&persist) {
            let _ = done.send(Err(e.context(
                "cannot persist to the data dir; stopping rather than answer without durable state",
            )));
            return;
        }
        for job in batch {
            let had_messages = !job.messages.is_empty();
            send_all(&senders, job.messages);
            for (tx, reply) in job.replies {
                let _ = tx.send(reply);
            }
            if done.send(Ok((job.report, had_messages))).is_err() {
                return;
            }
        }
    }
}

/// Writes `name` in `dir` so that a crash leaves either the old or the new content: a
/// temporary file, fsynced, renamed over it, and the directory fsynced.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let mut f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, &path).with_context(|| format!("renaming to {}", path.display()))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("fsync of dir {}", dir.display()))?;
    Ok(())
}
