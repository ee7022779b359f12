//! The search's memo: the set of configurations (linearized calls, model state) already
//! explored. A configuration that was explored once and failed will fail again, whatever
//! path led to it, so the search never enters it twice.
//!
//! Entries live in flat arenas (one `Vec<u64>` of bitset words, one of states) indexed by
//! a `hashbrown::HashTable<u32>`, so an insert allocates nothing but amortised arena
//! growth, and the byte count for the memory budget is exact up to allocator slack.

use hashbrown::hash_table::{Entry, HashTable};

/// A set of `(bitset, state)` pairs with bitsets of a fixed number of words.
pub struct Visited {
    words: usize,
    table: HashTable<u32>,
    bits: Vec<u64>,
    states: Vec<u32>,
    /// The full hash of each entry, kept so that growing the table never rehashes
    /// bitsets.
    hashes: Vec<u64>,
}

/// Mix a set hash and a state into the table hash. The set hash is a XOR of random
/// per-call keys (Zobrist), already uniform; the multiply spreads the state over the
/// high bits hashbrown uses for its control bytes.
#[inline]
fn entry_hash(set_hash: u64, state: u32) -> u64 {
    (set_hash ^ u64::from(state).wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_mul(0xD6E8_FEB8_6659_FD93)
}

impl Visited {
    pub fn new(words: usize) -> Visited {
        Visited {
            words,
            table: HashTable::new(),
            bits: Vec::new(),
            states: Vec::new(),
            hashes: Vec::new(),
        }
    }

    /// Add the configuration; `true` if it was not there before.
    #[inline]
    pub fn insert(&mut self, set: &[u64], set_hash: u64, state: u32) -> bool {
        debug_assert_eq!(set.len(), self.words);
        let hash = entry_hash(set_hash, state);
        let Visited {
            words,
            table,
            bits,
            states,
            hashes,
        } = self;
        let words = *words;
        let entry = table.entry(
            hash,
            |&e| {
                let e = e as usize;
                states[e] == state && &bits[e * words..(e + 1) * words] == set
            },
            |&e| hashes[e as usize],
        );
        match entry {
            Entry::Occupied(_) => false,
            Entry::Vacant(v) => {
                let id = states.len() as u32;
                bits.extend_from_slice(set);
                states.push(state);
                hashes.push(hash);
                v.insert(id);
                true
            }
        }
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
        self.bits.capacity() * 8
            + self.states.capacity() * 4
            + self.hashes.capacity() * 8
            + 2 * table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_a_configuration_by_set_and_state() {
        let mut v = Visited::new(2);
        assert!(v.insert(&[1, 0], 11, 7));
        assert!(!v.insert(&[1, 0], 11, 7));
        assert!(v.insert(&[1, 0], 11, 8), "same set, other state");
        assert!(v.insert(&[3, 0], 12, 7), "other set, same state");
        assert_eq!(v.len(), 3);
    }

    #[test]
    fn a_hash_collision_does_not_merge_different_sets() {
        let mut v = Visited::new(1);
        assert!(v.insert(&[1], 5, 0));
        assert!(v.insert(&[2], 5, 0), "equal hashes, different sets");
        assert!(!v.insert(&[2], 5, 0));
    }

    #[test]
    fn survives_growth() {
        let mut v = Visited::new(1);
        for i in 0..10_000u64 {
            assert!(v.insert(&[i], i.wrapping_mul(0x1234_5678_9ABC_DEF1), 0));
        }
        for i in 0..10_000u64 {
            assert!(!v.insert(&[i], i.wrapping_mul(0x1234_5678_9ABC_DEF1), 0));
        }
        assert!(v.heap_bytes() > 10_000 * 12);
    }
}
