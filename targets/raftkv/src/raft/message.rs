//! The values that cross the Raft core's boundary: log entries, persisted state,
//! snapshots, peer messages, and the [`Ready`] batch of effects the host carries out.

use nodeshell::kv::{Command, KvData};
use serde::{Deserialize, Serialize};

/// A node's name, as given by `--id` (n1, n2 …).
pub type NodeId = String;

/// One log entry. `cmd: None` is the no-op a new leader appends to commit an entry of
/// its own term (needed before it may serve ReadIndex reads or commit older entries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub index: u64,
    pub term: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Command>,
}

/// The part of a node's state that must survive a crash before it answers votes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    pub term: u64,
    pub voted_for: Option<NodeId>,
}

/// The state machine as of `index` (whose entry had `term`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub index: u64,
    pub term: u64,
    pub data: KvData,
}

/// What a node recovers from its data dir at start (empty for a fresh node).
#[derive(Debug, Clone, Default)]
pub struct Recovered {
    pub hard_state: HardState,
    pub snapshot: Option<Snapshot>,
    /// Entries after the snapshot, contiguous.
    pub entries: Vec<Entry>,
}

/// A message between two nodes. `term` is the sender's current term, except for PreVote,
/// where it is the term the sender *would* campaign in (it does not bump its own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub from: NodeId,
    pub to: NodeId,
    pub term: u64,
    pub msg: Message,
}

/// The shell's transport carries envelopes between nodes named by their string ids.
impl nodeshell::transport::PeerMessage for Envelope {
    type Peer = NodeId;
    fn sender(&self) -> &NodeId {
        &self.from
    }
    fn receiver(&self) -> &NodeId {
        &self.to
    }
}

/// The Raft RPCs and their answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// "Would you vote for me?" — asked before bumping the term, so an isolated node
    /// that keeps timing out cannot inflate terms and depose a healthy leader on return.
    PreVote {
        last_index: u64,
        last_term: u64,
    },
    PreVoteResp {
        granted: bool,
    },
    Vote {
        last_index: u64,
        last_term: u64,
    },
    VoteResp {
        granted: bool,
    },
    Append {
        prev_index: u64,
        prev_term: u64,
        entries: Vec<Entry>,
        commit: u64,
    },
    /// `match_index` is the follower's last index known to agree with the leader when
    /// `success`; on rejection `reject` is the prev_index refused and `hint` where the
    /// leader should retry from (last index, or the start of the conflicting term - 1).
    AppendResp {
        success: bool,
        match_index: u64,
        reject: u64,
        hint: u64,
    },
    /// Keeps followers from timing out and confirms leadership for ReadIndex rounds:
    /// `seq` identifies the round. `commit` is capped at what the follower is known to hold.
    Heartbeat {
        commit: u64,
        seq: u64,
    },
    HeartbeatResp {
        seq: u64,
    },
    InstallSnapshot {
        snapshot: Snapshot,
    },
    SnapshotResp {
        match_index: u64,
    },
}

/// A durable change the host must make, in order, and fsync before sending the
/// messages of the same [`Ready`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Persist {
    HardState(HardState),
    /// Drop every entry with index >= `from`.
    Truncate {
        from: u64,
    },
    Append(Vec<Entry>),
    /// Our own snapshot: keep the entries after it.
    Compact(Snapshot),
    /// A snapshot from the leader: it replaces the whole log.
    Install(Snapshot),
}

/// Something to apply to the state machine, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Apply {
    Entry(Entry),
    Snapshot(Snapshot),
}

/// A linearizable read that may be served once the state machine has applied `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadState {
    pub ctx: u64,
    pub index: u64,
}

/// Everything the core produced since the last call: persist (and fsync), then send,
/// then apply. Messages must never go out before the persistence they depend on.
#[derive(Debug, Default)]
pub struct Ready {
    pub persist: Vec<Persist>,
    pub messages: Vec<Envelope>,
    pub apply: Vec<Apply>,
    pub reads: Vec<ReadState>,
    /// Reads that will never be confirmed (leadership lost): answer them "unknown"
    /// is not needed — nothing happened — so the host answers not-leader.
    pub reads_failed: Vec<u64>,
    /// Human-readable lines for the node's stderr: elections, term changes, snapshots.
    pub events: Vec<String>,
    /// The messages depend on nothing being persisted in this batch (a leader's
    /// AppendEntries and heartbeats): send them first and fsync meanwhile, as the Raft
    /// thesis (§10.2.1) allows — the leader counts itself towards a majority only once
    /// [`RaftNode::persisted`](super::RaftNode::persisted) says its entries are durable.
    pub send_before_persist: bool,
    /// The log's last index when this batch was taken; durable once `persist` is done.
    pub last_index: u64,
    /// Pass back to [`RaftNode::persisted`](super::RaftNode::persisted) with `last_index`.
    pub log_epoch: u64,
}

impl Ready {
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.persist.is_empty()
            && self.messages.is_empty()
            && self.apply.is_empty()
            && self.reads.is_empty()
            && self.reads_failed.is_empty()
            && self.events.is_empty()
    }
}

impl Recovered {
    /// Applies one durable change to this in-memory image of a data dir — exactly what
    /// a restart would read back. The simulated cluster keeps its "disks" this way, and
    /// the disk storage is tested against it.
    pub fn apply(&mut self, p: &Persist) {
        match p {
            Persist::HardState(hs) => self.hard_state = hs.clone(),
            Persist::Truncate { from } => self.entries.retain(|e| e.index < *from),
            Persist::Append(es) => self.entries.extend(es.iter().cloned()),
            Persist::Compact(s) => {
                self.entries.retain(|e| e.index > s.index);
                self.snapshot = Some(s.clone());
            }
            Persist::Install(s) => {
                self.entries.clear();
                self.snapshot = Some(s.clone());
            }
        }
    }
}
