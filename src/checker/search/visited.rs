//! The search's memo: the configurations (linearized calls, model state) already
//! explored. A configuration that was explored once and failed will fail again, whatever
//! path led to it, so the search never enters it twice.
//!
//! It also never enters one that an explored configuration dominates: the same completed
//! calls placed and the same state, with a subset of the open calls placed. Open calls
//! are optional (a crashed write may never have happened), so the configuration with
//! fewer of them placed can do everything the other can: if it failed, so does this one.
//! Proving a history with a hundred crashed calls invalid needs this: the orders in which
//! the search placed them differ, the placed sets often include one another.
//!
//! Entries live in one flat arena of words, indexed by a `hashbrown::HashTable<u32>` on
//! the completed part and the state; entries that share those are chained and compared
//! by inclusion of their open parts. Each entry keeps only what sets it apart: the
//! completed calls are numbered by return, so their placed set is a run of whole words
//! of ones (every call returning before the earliest unplaced one) and then a short
//! window; the entry stores the run's length and the window, and of the open part the
//! words from the first to the last non-zero one. A configuration of the 10,000-op
//! single-key history took 1.1 KB as a full bitset. An insert allocates nothing but
//! amortised arena growth, and the byte count for the memory budget is exact up to
//! allocator slack.

use hashbrown::hash_table::{Entry, HashTable};

/// A set of `(bitset, state)` pairs: each bitset is `completed` words of completed
/// calls then `open` words of open calls.
pub struct Visited {
    completed: usize,
    open: usize,
    table: HashTable<u32>,
    /// Per entry: two header words (`lead | clen << 32`, `ofirst | olen << 32`), then
    /// `clen` completed words from word `lead` on (the ones before are all ones), then
    /// `olen` open words from open word `ofirst` on (the others are zero).
    arena: Vec<u64>,
    start: Vec<u64>,
    states: Vec<u32>,
    /// The full hash of each chain's head entry, kept so that growing the table never
    /// rehashes bitsets.
    hashes: Vec<u64>,
    /// The next entry with the same completed part and state, or `u32::MAX`.
    chain: Vec<u32>,
}

/// Mix a set hash and a state into the table hash. The set hash is a XOR of random
/// per-call keys (Zobrist), already uniform; the multiply spreads the state over the
/// high bits hashbrown uses for its control bytes.
#[inline]
fn entry_hash(set_hash: u64, state: u32) -> u64 {
    (set_hash ^ u64::from(state).wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_mul(0xD6E8_FEB8_6659_FD93)
}

const END: u32 = u32::MAX;

/// How many entries of a chain [`Visited::insert`] compares by inclusion.
const MAX_CHAIN_WALK: u32 = 8;

/// The trimmed form of a bitset: `(lead, completed window, first open word, open words)`.
#[inline]
fn trim(set: &[u64], completed: usize) -> (usize, &[u64], usize, &[u64]) {
    let (done, open) = set.split_at(completed);
    let lead = done.iter().take_while(|&&w| w == u64::MAX).count();
    let end = done
        .iter()
        .rposition(|&w| w != 0)
        .map_or(lead, |e| e + 1)
        .max(lead);
    let first = open.iter().position(|&w| w != 0).unwrap_or(0);
    let last = open.iter().rposition(|&w| w != 0).map_or(first, |e| e + 1);
    (lead, &done[lead..end], first, &open[first..last])
}

impl Visited {
    /// A memo for bitsets of `completed` words (completed calls, compared for equality)
    /// then `open` words (open calls, compared by inclusion).
    pub fn new(completed: usize, open: usize) -> Visited {
        Visited {
            completed,
            open,
            table: HashTable::new(),
            arena: Vec::new(),
            start: Vec::new(),
            states: Vec::new(),
            hashes: Vec::new(),
            chain: Vec::new(),
        }
    }

    /// Entry `e`'s `(lead, completed window, first open word, open words)`.
    #[inline]
    fn entry<'a>(arena: &'a [u64], start: &[u64], e: u32) -> (usize, &'a [u64], usize, &'a [u64]) {
        let at = start[e as usize] as usize;
        let (h0, h1) = (arena[at], arena[at + 1]);
        let (lead, clen) = ((h0 & 0xFFFF_FFFF) as usize, (h0 >> 32) as usize);
        let (first, olen) = ((h1 & 0xFFFF_FFFF) as usize, (h1 >> 32) as usize);
        let done = &arena[at + 2..at + 2 + clen];
        let open = &arena[at + 2 + clen..at + 2 + clen + olen];
        (lead, done, first, open)
    }

    /// Add the configuration; `true` if neither it nor one dominating it was there
    /// before. `set_hash` hashes the completed part only.
    #[inline]
    pub fn insert(&mut self, set: &[u64], set_hash: u64, state: u32) -> bool {
        debug_assert_eq!(set.len(), self.completed + self.open);
        let (lead, done, first, open) = trim(set, self.completed);
        let hash = entry_hash(set_hash, state);
        let Visited {
            table,
            arena,
            start,
            states,
            hashes,
            chain,
            ..
        } = self;
        let entry = table.entry(
            hash,
            |&e| {
                if states[e as usize] != state {
                    return false;
                }
                let (l, d, _, _) = Self::entry(arena, start, e);
                l == lead && d == done
            },
            |&e| hashes[e as usize],
        );
        let id = states.len() as u32;
        match entry {
            Entry::Occupied(mut o) => {
                let head = *o.get();
                let mut e = head;
                // Only the newest entries of a chain are compared: skipping a check only
                // explores more, and walking chains of thousands cost more time than the
                // dominance saved (heavy_key's invalid variants went from 9 M to 0.6 M
                // configurations per 10 s).
                let mut budget = MAX_CHAIN_WALK;
                while e != END && budget > 0 {
                    budget -= 1;
                    let (_, _, old_first, old) = Self::entry(arena, start, e);
                    // Each placed open call of the old entry is placed in the new one.
                    let subset = old.iter().enumerate().all(|(i, &w)| {
                        let new = (old_first + i)
                            .checked_sub(first)
                            .and_then(|j| open.get(j))
                            .copied()
                            .unwrap_or(0);
                        w & !new == 0
                    });
                    if subset {
                        return false;
                    }
                    e = chain[e as usize];
                }
                *o.get_mut() = id;
                chain.push(head);
            }
            Entry::Vacant(v) => {
                v.insert(id);
                chain.push(END);
            }
        }
        start.push(arena.len() as u64);
        arena.push(lead as u64 | (done.len() as u64) << 32);
        arena.push(first as u64 | (open.len() as u64) << 32);
        arena.extend_from_slice(done);
        arena.extend_from_slice(open);
        states.push(state);
        hashes.push(hash);
        true
    }

    /// How many configurations are stored.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// Whether nothing is stored yet.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// Heap bytes held, counting reserved capacity (what the allocator really gave us),
    /// plus the next growth of the table, so that a budget check made now still holds
    /// after the next doubling.
    pub fn heap_bytes(&self) -> usize {
        let table = self.table.capacity() * (std::mem::size_of::<u32>() + 1);
        self.arena.capacity() * 8
            + self.start.capacity() * 8
            + self.states.capacity() * 4
            + self.hashes.capacity() * 8
            + self.chain.capacity() * 4
            + 2 * table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_a_configuration_by_set_and_state() {
        let mut v = Visited::new(2, 0);
        assert!(v.insert(&[1, 0], 11, 7));
        assert!(!v.insert(&[1, 0], 11, 7));
        assert!(v.insert(&[1, 0], 11, 8), "same set, other state");
        assert!(v.insert(&[3, 0], 12, 7), "other set, same state");
        assert_eq!(v.len(), 3);
    }

    #[test]
    fn a_hash_collision_does_not_merge_different_sets() {
        let mut v = Visited::new(1, 0);
        assert!(v.insert(&[1], 5, 0));
        assert!(v.insert(&[2], 5, 0), "equal hashes, different sets");
        assert!(!v.insert(&[2], 5, 0));
    }

    #[test]
    fn fewer_open_calls_placed_dominates() {
        let mut v = Visited::new(1, 1);
        assert!(v.insert(&[1, 0b0110], 5, 0));
        assert!(!v.insert(&[1, 0b0111], 5, 0), "a superset of open calls");
        assert!(v.insert(&[1, 0b0011], 5, 0), "neither includes the other");
        assert!(v.insert(&[1, 0b0010], 5, 0), "a subset is new");
        assert!(
            !v.insert(&[1, 0b1011], 5, 0),
            "includes the last one in the chain"
        );
        assert!(v.insert(&[1, 0b0111], 5, 1), "other state");
        assert!(v.insert(&[3, 0b0111], 6, 0), "other completed calls");
    }

    #[test]
    fn trimmed_entries_keep_their_words_apart() {
        let all = u64::MAX;
        let mut v = Visited::new(3, 3);
        assert!(v.insert(&[all, 1, 0, 0, 0, 0], 1, 0));
        assert!(
            v.insert(&[all, 0, 1, 0, 0, 0], 1, 0),
            "same window length, shifted"
        );
        assert!(
            v.insert(&[all, all, 1, 0, 0, 0], 1, 0),
            "a longer run of ones"
        );
        assert!(v.insert(&[1, 0, 0, 0, 0, 0], 1, 0), "no run at all");
        assert!(v.insert(&[0, 0, 0, 0, 0, 0], 1, 0), "nothing placed");
        assert!(
            v.insert(&[all, all, all, 0, 0, 0], 1, 0),
            "everything placed"
        );
        for set in [
            [all, 1, 0, 0, 0, 0],
            [all, 0, 1, 0, 0, 0],
            [all, all, 1, 0, 0, 0],
            [1, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0],
            [all, all, all, 0, 0, 0],
        ] {
            assert!(!v.insert(&set, 1, 0), "{set:?} is there");
        }
        // Open parts stored from their first non-zero word on still compare by inclusion.
        let mut v = Visited::new(1, 3);
        assert!(v.insert(&[7, 0, 0b10, 0], 9, 0));
        assert!(!v.insert(&[7, 1, 0b11, 4], 9, 0), "includes it, wider");
        assert!(v.insert(&[7, 0b10, 0, 0b10], 9, 0), "the bit moved a word");
        assert!(!v.insert(&[7, 0b10, 0, 0b110], 9, 0));
        assert!(
            v.insert(&[7, 0, 0, 0], 9, 0),
            "no open call is a subset of all"
        );
        assert!(!v.insert(&[7, 0, 0, 1], 9, 0));
    }

    #[test]
    fn survives_growth() {
        let mut v = Visited::new(1, 0);
        for i in 0..10_000u64 {
            assert!(v.insert(&[i], i.wrapping_mul(0x1234_5678_9ABC_DEF1), 0));
        }
        for i in 0..10_000u64 {
            assert!(!v.insert(&[i], i.wrapping_mul(0x1234_5678_9ABC_DEF1), 0));
        }
        assert!(v.heap_bytes() > 10_000 * 12);
    }
}
