//! The switchable bugs (`--bug NAME`): each one is a class of consensus bug that real
//! systems shipped. They exist so faultline can prove it finds such bugs; all are off
//! by default. See targets/raftkv/README.md for the fault that exposes each.

use clap::ValueEnum;
use std::time::Duration;

/// How often `--bug lazy-fsync` fsyncs the log, in the background: the window of
/// acknowledged writes a power failure takes with it (NATS's `sync_interval`, 2 min by
/// default, is the same bug at a larger scale).
pub const LAZY_FSYNC_INTERVAL: Duration = Duration::from_millis(1000);

/// One bug, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub enum Bug {
    /// The leader answers reads from its local state without confirming it is still
    /// leader, and (like etcd 0.4) never steps down for lack of a quorum.
    StaleRead,
    /// Reads are served under a leader lease timed with the wall clock (`SystemTime`).
    LeaseRead,
    /// Followers append entries without the prevLogIndex/prevLogTerm consistency check.
    NoPrevCheck,
    /// The leader commits earlier-term entries by counting replicas (Raft figure 8).
    CommitOldTerm,
    /// currentTerm and votedFor are not persisted.
    ForgetVote,
    /// The leader acknowledges a write as soon as it is in its own log.
    AckBeforeCommit,
    /// Log appends are acknowledged once written, not fsynced: a background thread
    /// fsyncs the log every second. A kill loses nothing (the kernel has
    /// the writes); a power failure loses the last interval's acknowledged writes.
    LazyFsync,
}

/// The set of enabled bugs, as flags the code branches on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bugs {
    pub stale_read: bool,
    pub lease_read: bool,
    pub no_prev_check: bool,
    pub commit_old_term: bool,
    pub forget_vote: bool,
    pub ack_before_commit: bool,
    pub lazy_fsync: bool,
}

impl Bugs {
    /// The flags for a list of bugs named on the command line.
    pub fn from_list(list: &[Bug]) -> Self {
        let mut b = Bugs::default();
        for bug in list {
            match bug {
                Bug::StaleRead => b.stale_read = true,
                Bug::LeaseRead => b.lease_read = true,
                Bug::NoPrevCheck => b.no_prev_check = true,
                Bug::CommitOldTerm => b.commit_old_term = true,
                Bug::ForgetVote => b.forget_vote = true,
                Bug::AckBeforeCommit => b.ack_before_commit = true,
                Bug::LazyFsync => b.lazy_fsync = true,
            }
        }
        b
    }

    /// The enabled bugs' names, for the start-up log line.
    pub fn names(&self) -> Vec<&'static str> {
        let all = [
            (self.stale_read, "stale-read"),
            (self.lease_read, "lease-read"),
            (self.no_prev_check, "no-prev-check"),
            (self.commit_old_term, "commit-old-term"),
            (self.forget_vote, "forget-vote"),
            (self.ack_before_commit, "ack-before-commit"),
            (self.lazy_fsync, "lazy-fsync"),
        ];
        all.iter().filter(|(on, _)| *on).map(|(_, n)| *n).collect()
    }
}
