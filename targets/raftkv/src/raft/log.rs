//! The in-memory Raft log: the entries after the last snapshot, plus the index and term
//! the snapshot ends at (so the consistency check still works at the compaction point).
//!
//! It owns indexing and truncation arithmetic only; what is persisted, and when, is
//! decided by [`super::RaftNode`] and carried out by the host.

use super::Entry;

/// Entries `snap_index + 1 ..= last_index()`, in order, without holes.
#[derive(Debug, Clone, Default)]
pub struct Log {
    /// Index of the last entry covered by the snapshot (0: no snapshot).
    snap_index: u64,
    /// Term of that entry, needed for the prevLogTerm check right after compaction.
    snap_term: u64,
    entries: Vec<Entry>,
}

impl Log {
    /// A log continuing a snapshot that ends at `snap_index`/`snap_term`.
    pub fn new(snap_index: u64, snap_term: u64) -> Self {
        Log {
            snap_index,
            snap_term,
            entries: Vec::new(),
        }
    }

    /// Index of the last entry covered by the snapshot.
    pub fn snap_index(&self) -> u64 {
        self.snap_index
    }

    /// Index of the last entry (the snapshot's if the log is empty).
    pub fn last_index(&self) -> u64 {
        self.snap_index + self.entries.len() as u64
    }

    /// Term of the last entry (the snapshot's if the log is empty).
    pub fn last_term(&self) -> u64 {
        self.entries.last().map_or(self.snap_term, |e| e.term)
    }

    /// Term of the entry at `index`; `None` if compacted away (below the snapshot) or
    /// beyond the end. Index 0 has term 0, so the very first AppendEntries always matches.
    pub fn term(&self, index: u64) -> Option<u64> {
        if index == self.snap_index {
            return Some(self.snap_term);
        }
        self.get(index).map(|e| e.term)
    }

    /// The entry at `index`, if it is held in memory.
    pub fn get(&self, index: u64) -> Option<&Entry> {
        if index <= self.snap_index {
            return None;
        }
        self.entries.get((index - self.snap_index - 1) as usize)
    }

    /// Up to `max` entries starting at `from` (which must be above the snapshot).
    pub fn slice(&self, from: u64, max: usize) -> Vec<Entry> {
        if from <= self.snap_index {
            return Vec::new();
        }
        let start = (from - self.snap_index - 1) as usize;
        if start >= self.entries.len() {
            return Vec::new();
        }
        let end = (start + max).min(self.entries.len());
        self.entries[start..end].to_vec()
    }

    /// Appends one entry; its index must be `last_index() + 1`.
    pub fn push(&mut self, entry: Entry) {
        debug_assert_eq!(entry.index, self.last_index() + 1);
        self.entries.push(entry);
    }

    /// Drops every entry with index >= `from` (conflict truncation).
    pub fn truncate_from(&mut self, from: u64) {
        if from <= self.snap_index {
            self.entries.clear();
        } else {
            self.entries.truncate((from - self.snap_index - 1) as usize);
        }
    }

    /// Forgets entries up to `index` (covered by a new snapshot of our own).
    pub fn compact(&mut self, index: u64, term: u64) {
        if index <= self.snap_index {
            return;
        }
        let n = ((index - self.snap_index) as usize).min(self.entries.len());
        self.entries.drain(..n);
        self.snap_index = index;
        self.snap_term = term;
    }

    /// Replaces the whole log by a snapshot received from the leader.
    pub fn reset(&mut self, index: u64, term: u64) {
        self.entries.clear();
        self.snap_index = index;
        self.snap_term = term;
    }

    /// The index of the first entry of the run of entries with the same term as the entry
    /// at `index` (for the follower's rejection hint: the leader skips a whole term at once).
    pub fn first_index_of_term_at(&self, index: u64) -> u64 {
        let Some(term) = self.term(index) else {
            return index;
        };
        let mut i = index;
        while i > self.snap_index + 1 && self.term(i - 1) == Some(term) {
            i -= 1;
        }
        i
    }

    /// Number of entries held in memory (bounded by snapshotting).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when every entry is covered by the snapshot.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            cmd: None,
        }
    }

    #[test]
    fn indexes_stay_right_across_compaction_and_truncation() {
        let mut log = Log::new(0, 0);
        for (i, t) in [(1, 1), (2, 1), (3, 2), (4, 2), (5, 3)] {
            log.push(entry(i, t));
        }
        assert_eq!(log.term(0), Some(0));
        assert_eq!(log.first_index_of_term_at(4), 3);
        log.compact(2, 1);
        assert_eq!(log.term(2), Some(1));
        assert_eq!(log.term(1), None);
        assert_eq!(log.slice(3, 10).len(), 3);
        log.truncate_from(4);
        assert_eq!(log.last_index(), 3);
        assert_eq!(log.last_term(), 2);
        log.reset(10, 4);
        assert_eq!((log.last_index(), log.last_term(), log.len()), (10, 4, 0));
    }
}
