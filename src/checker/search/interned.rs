//! [`Transitions`] for any [`Model`]: states are interned to integers as the search meets
//! them, and each `(state, call)` step is computed once and memoised, so the search's
//! inner loop never clones or hashes a model state twice.

use super::{Transitions, NONE};
use crate::checker::model::Model;
use rustc_hash::FxHashMap;

/// Interned states and memoised steps of one model over one key's calls.
pub struct Interned<'a, M: Model> {
    model: &'a M,
    calls: &'a [M::Call],
    states: Vec<M::State>,
    ids: FxHashMap<M::State, u32>,
    /// `(state << 32) | call` → next state, or [`NONE`] for "illegal".
    memo: FxHashMap<u64, u32>,
    state_bytes: usize,
}

impl<'a, M: Model> Interned<'a, M> {
    pub fn new(model: &'a M, calls: &'a [M::Call]) -> Interned<'a, M> {
        Interned {
            model,
            calls,
            states: Vec::new(),
            ids: FxHashMap::default(),
            memo: FxHashMap::default(),
            state_bytes: 0,
        }
    }

    fn intern(&mut self, state: M::State) -> u32 {
        if let Some(id) = self.ids.get(&state) {
            return *id;
        }
        let id = self.states.len() as u32;
        // Each state is held twice: in the table and as the map key.
        self.state_bytes += 2 * self.model.state_bytes(&state);
        self.ids.insert(state.clone(), id);
        self.states.push(state);
        id
    }
}

impl<M: Model> Transitions for Interned<'_, M> {
    type State = M::State;

    fn init(&mut self) -> u32 {
        let init = self.model.init();
        self.intern(init)
    }

    #[inline]
    fn step(&mut self, state: u32, call: u32) -> Option<u32> {
        let key = (u64::from(state) << 32) | u64::from(call);
        if let Some(&next) = self.memo.get(&key) {
            return (next != NONE).then_some(next);
        }
        let next = match (
            self.states.get(state as usize),
            self.calls.get(call as usize),
        ) {
            (Some(s), Some(c)) => self.model.step(s, c),
            _ => None,
        };
        let next = next.map(|s| self.intern(s));
        self.memo.insert(key, next.unwrap_or(NONE));
        next
    }

    fn state(&self, id: u32) -> Option<M::State> {
        self.states.get(id as usize).cloned()
    }

    fn read_only(&self, call: u32) -> bool {
        self.calls
            .get(call as usize)
            .is_some_and(|c| self.model.is_read_only(c))
    }

    fn heap_bytes(&self) -> usize {
        self.state_bytes
            + self.states.capacity() * std::mem::size_of::<M::State>()
            + self.ids.capacity() * 8
            + self.memo.capacity() * 13
    }
}
