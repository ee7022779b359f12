//! The linearizability search for one key: Wing & Gong's depth-first search in Lowe's
//! just-in-time form, with memoisation of configurations (Lowe; Horn & Kroening).
//!
//! A configuration is the set of calls linearized so far plus the model state they
//! lead to. From a configuration, the calls that may go next are those invoked before the
//! earliest return among the calls not yet linearized. The search tries them in order,
//! skips configurations it has already explored ([`visited::Visited`]), and backtracks
//! when it reaches a return whose call it could not place.
//!
//! Three choices keep it fast:
//! - Completed calls live in one doubly-linked list of call and return events (Lowe), so
//!   placing a call and undoing it are O(1) unlinks and relinks.
//! - Open calls (`info` or never completed; they may take effect at any time after their
//!   invocation, or never) live in a second list and are tried only after every completed
//!   candidate: most open writes never need to happen, so the search does not start by
//!   assuming they did. The search succeeds as soon as every *completed* call is placed.
//! - The completed call returning first is tried first, then the other candidates in
//!   invocation order: it is the most constrained (every call invoked after its return
//!   must follow it), and trying an older write first sends the search into a subtree
//!   that holds no linearization but takes long to exhaust. The order changes no verdict.
//! - A state that no unplaced call observes any more (a register value whose reads and
//!   cas calls are all placed) is dead: the model promises every call steps from it as
//!   from its one never-observed state ([`Transitions::dead`]), so the search maps it to
//!   that one and the memo equates the configurations. Blind open calls into the dead
//!   state are then interchangeable (each leads there whenever it goes in): a scan tries
//!   only the first it meets.
//! - Among open calls that are equal (same model call, e.g. two crashed `write 3`s) only
//!   the earliest-invoked unplaced one is tried: any linearization using a later twin can
//!   use the earlier one instead, because an open call has no return bound.
//! - Among completed calls that are equal and may both go next, only the one that returns
//!   first is tried (earliest deadline first): in any linearization that places the later
//!   one now and the earlier one further on, the two can swap places. The states along
//!   the way do not change (the calls are equal), the one placed now may go next too, and
//!   the one moved later returns no earlier than the one that stood there. Under heavy
//!   overlap (a hundred calls in flight on a key whose values come from a handful) this
//!   turns dozens of equivalent choices into one per distinct call.
//! - A read-only call (a read, a compare-failed cas) that may go next and is legal in the
//!   current state is placed at once, and the configuration is not explored any other
//!   way: moving a read earlier, to a point where it is legal and allowed by real time,
//!   keeps any linearization a linearization, since it changes no state. So if placing
//!   it leads nowhere (or to a configuration already known to fail), neither does
//!   anything else from here.
//! - Open calls go in just in time (Lowe): only right before a call they enable, one
//!   that steps differently (or at all) without them, like the read of a crashed write's
//!   value. Any other linearization placing an open call `o` in state `s` and then `c`
//!   stays one with `o` left out, since `c` reaches the same state from `s`; the
//!   configuration without `o`, from which the search also tries `c`, can do everything
//!   this one can. So crashed writes nothing reads are never placed, and an open call
//!   that changes nothing neither. (A blind write — a write, a put — is the cheap case,
//!   checked before stepping: it never follows an open call.)
//! - Reachability ([`Transitions::flow`], registers): a completed call that needs one
//!   state (a read of `v`, a cas from `v`) must find it before it returns, and only a
//!   call producing `v` (a write of `v`, a cas to `v`) leads there. A placement after
//!   which the state is not `v` and no unplaced producer of `v` was invoked before the
//!   earliest such deadline leads nowhere, and is refused in O(1) (per required state,
//!   the unplaced needers by return and producers by invocation are dancing-link lists,
//!   and a placement can only hurt the state it leaves and the one it produced). Before
//!   the search, a needer whose producers all returned before some completed call W
//!   began, W surely leaving another state and returning before the needer began, is
//!   refused outright: the classic stale read, which the search would otherwise find
//!   only after exhausting every order of the calls before the last producer. Neither
//!   rule says anything new about a linearization; they only let the search stop
//!   earlier, so an invalid history needs far fewer configurations (and a read of a
//!   value nobody writes, none).
//!
//! States are small integers handed out by a [`Transitions`] implementation; the set of
//! placed calls is a bitset (completed calls first, by return, then open ones by
//! invocation) with an incrementally maintained Zobrist hash of its completed part. The
//! memo skips a configuration that one already explored dominates: the same completed
//! calls and state with fewer open calls placed; it stores each configuration trimmed to
//! the words that set it apart ([`visited`]).

mod interned;
pub mod visited;

pub use interned::Interned;

use super::budget::{Budget, Exhausted};
use visited::Visited;

/// `ret` of a call that never returned (info or pending).
pub const OPEN: u64 = u64::MAX;
/// "No call": the end of a list, or an open call with no earlier twin.
pub const NONE: u32 = u32::MAX;

/// When a call was invoked and when it returned, as positions in the history (any
/// strictly increasing numbering of events; [`OPEN`] for no return).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub invoke: u64,
    pub ret: u64,
}

impl Span {
    pub fn is_open(self) -> bool {
        self.ret == OPEN
    }
}

/// A model's transitions over interned states: `step` answers "in state `s`, may call
/// `c` happen, and what state follows?". Calls are indexes into the key's call list.
pub trait Transitions {
    /// The model state an id stands for.
    type State;
    fn init(&mut self) -> u32;
    fn step(&mut self, state: u32, call: u32) -> Option<u32>;
    /// The state behind an id this table handed out.
    fn state(&self, id: u32) -> Option<Self::State>;
    /// Heap bytes held (state tables, memos), for the memory budget.
    fn heap_bytes(&self) -> usize;
    /// Whether `call` never changes the state, whatever the state (a read). The search
    /// places such a call as soon as it is legal and never tries it later instead.
    fn read_only(&self, _call: u32) -> bool {
        false
    }
    /// Whether `call` is a blind write: legal in every state, and the state after it does
    /// not depend on the state before (a register write, a kv put). The search never
    /// places one right after an open call, since that would erase the open call's
    /// effect: leaving the open call out (it may never have happened) does as well.
    fn blind(&self, _call: u32) -> bool {
        false
    }
    /// The one state `call` tells apart from the others (a read of `v`, a cas from `v`),
    /// or `None`.
    fn observes(&self, _call: u32) -> Option<u32> {
        None
    }
    /// A state no call observes, or `None` (then the search merges no states). The search
    /// maps every state that no unplaced call observes any more to it, so the contract
    /// is: a call `c` steps from any two states it does not observe alike — illegal in
    /// both, to the same state, or (read-only `c`) to each state itself. Both are then
    /// dead for good, and the configurations bisimilar.
    fn dead(&self) -> Option<u32> {
        None
    }
    /// Whether [`Self::requires`] and [`Self::produces`] describe every call, so that the
    /// search may prune configurations from which a completed call can no longer reach
    /// the state it needs. The contract: `requires(c) == Some(v)` only if `c` is illegal
    /// in every state but `v`; and whenever `step(s, c) == Some(t)` with `t != s`,
    /// `produces(c) == Some(t)` (a call that may lead to several states cannot take part).
    fn flow(&self) -> bool {
        false
    }
    /// The one state `call` is legal in (a read of `v`, a cas from `v`), or `None`.
    fn requires(&self, _call: u32) -> Option<u32> {
        None
    }
    /// The one state `call` leads to when it changes the state (a write of `v`, a cas to
    /// `v`), or `None` when it never changes it.
    fn produces(&self, _call: u32) -> Option<u32> {
        None
    }
}

/// What the search found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchResult {
    Linearizable,
    NotLinearizable(Failure),
    Exhausted(Exhausted),
}

/// Where a failed search got furthest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The calls of the deepest partial linearization found, in linearization order.
    pub deepest: Vec<u32>,
    /// The completed call whose return the deepest partial linearization could not get
    /// past: it could not be placed before it returned.
    pub failing: u32,
    /// Distinct states (at most [`MAX_BLOCKED_STATES`]) the search was in when it had to
    /// give up because `failing` returned without having been placed.
    pub blocked_states: Vec<u32>,
}

/// How many states [`Failure::blocked_states`] keeps per call.
pub const MAX_BLOCKED_STATES: usize = 8;

/// Counters of one search, for reports and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SearchStats {
    pub steps: u64,
    pub configurations: u64,
    pub max_depth: u32,
}

/// How often (in loop iterations) the search looks at the clock and its memory.
const CHECK_EVERY: u64 = 4096;

/// Each call's previous "twin" (or [`NONE`]), the equal calls the search deduplicates:
/// for an open call, the previous equal open call by invocation; for a completed call,
/// the previous equal completed call by return. `calls[i]` is the model call of
/// `spans[i]`.
pub fn twins<C: Eq + std::hash::Hash>(calls: &[C], spans: &[Span]) -> Vec<u32> {
    let mut twins = vec![NONE; spans.len()];
    for open in [true, false] {
        let mut order: Vec<u32> = (0..spans.len() as u32)
            .filter(|&i| spans[i as usize].is_open() == open)
            .collect();
        // Open calls by invocation, completed ones by return (ties cannot happen: every
        // event has its own position).
        order.sort_by_key(|&i| {
            let s = spans[i as usize];
            if open {
                s.invoke
            } else {
                s.ret
            }
        });
        let mut last: rustc_hash::FxHashMap<&C, u32> = rustc_hash::FxHashMap::default();
        for i in order {
            if let Some(prev) = last.insert(&calls[i as usize], i) {
                twins[i as usize] = prev;
            }
        }
    }
    twins
}

/// Decide whether the calls of one key can be linearized.
///
/// `twins` comes from [`twins`] (or is all [`NONE`] to disable the deduplication).
/// Stops with [`SearchResult::Exhausted`] when `budget` runs out.
pub fn search<T: Transitions>(
    spans: &[Span],
    twins: &[u32],
    transitions: &mut T,
    budget: &Budget,
) -> (SearchResult, SearchStats) {
    let mut s = Searcher::new(spans, twins);
    let result = s.run(transitions, budget);
    let stats = SearchStats {
        steps: s.steps,
        configurations: s.visited.len() as u64,
        max_depth: s.max_depth,
    };
    (result, stats)
}

/// One stack frame: the call placed, the state before it, and (for an open call) the
/// completed call whose return bounded the candidates when it was placed.
#[derive(Clone, Copy)]
struct Frame {
    call: u32,
    state: u32,
    frontier: u32,
    /// The return position before which the candidates of the configuration this call was
    /// placed from were invoked (unused for forced reads, whose configuration is never
    /// scanned again).
    bound: u64,
    /// Placed as a legal read: its configuration has no other way forward.
    forced: bool,
    /// Placed as its configuration's first try, the completed call returning first: the
    /// scan of the configuration's other candidates starts after it is undone.
    first_try: bool,
    /// For an open call, the scan's `dead_done` to resume with.
    dead_done: bool,
}

#[derive(Clone, Copy)]
enum Cursor {
    /// Scanning the event list of completed calls at this node.
    Main(u32),
    /// Scanning open calls at `node`; candidates must be invoked before `frontier` returns.
    /// `dead_done`: a blind open call into the dead state was met already in this scan.
    Open {
        node: u32,
        frontier: u32,
        dead_done: bool,
    },
}

struct Searcher<'a> {
    spans: &'a [Span],
    twins: &'a [u32],
    /// Event list of completed calls: node `2c` is the invocation of call `c`, `2c + 1`
    /// its return; `head` and `tail` are sentinels.
    next: Vec<u32>,
    prev: Vec<u32>,
    head: u32,
    /// List of open calls by invocation: node `c` is call `c`. Only the first unplaced
    /// call of each class of equal open calls is in it (the others would be skipped
    /// anyway), so a scan meets each class once: with two thousand crashed calls open,
    /// most of them equal after merging, scanning them all cost more than anything else.
    open_next: Vec<u32>,
    open_prev: Vec<u32>,
    /// The next equal open call by invocation (the inverse of `twins` over open calls):
    /// it takes a placed call's turn in the open list.
    twin_next: Vec<u32>,
    open_head: u32,
    open_tail: u32,
    read_only: Vec<bool>,
    blind: Vec<bool>,
    /// [`Transitions::observes`] per call ([`NONE`] for none), and per state how many
    /// unplaced calls observe it; [`Transitions::dead`] or [`NONE`].
    observes: Vec<u32>,
    observers: Vec<u32>,
    dead: u32,
    /// Reachability pruning ([`Transitions::flow`]). The states some completed call
    /// requires get local numbers `k`; per call, the one it requires (completed calls
    /// only) and the one it produces, or [`NONE`]. Per `k`, two circular lists with
    /// sentinel node `n + k` (`n` calls): the unplaced completed calls requiring it by
    /// return, and the unplaced calls producing it by invocation. The first of each
    /// answers "can the earliest deadline still be met?" in O(1).
    need: Vec<u32>,
    make: Vec<u32>,
    need_state: Vec<u32>,
    need_of_state: rustc_hash::FxHashMap<u32, u32>,
    req_next: Vec<u32>,
    req_prev: Vec<u32>,
    prod_next: Vec<u32>,
    prod_prev: Vec<u32>,
    /// The earliest return among unplaced completed calls of the current configuration
    /// (known once its scan for a legal read found none): candidates are invoked before.
    bound: u64,
    /// The call returning at [`Self::bound`] (or [`NONE`]): tried first, skipped by the
    /// scan.
    first: u32,
    /// The placed calls: completed calls in the first words, open calls after them
    /// (`bit[c]` is call `c`'s position), so that the memo can compare the open part by
    /// inclusion ([`Visited`]). The hash covers the completed part only.
    placed: Vec<u64>,
    bit: Vec<u32>,
    placed_hash: u64,
    zobrist: Vec<u64>,
    visited: Visited,
    stack: Vec<Frame>,
    /// Completed calls not yet placed; zero means success.
    remaining: usize,
    blocked: Vec<[u32; MAX_BLOCKED_STATES]>,
    blocked_len: Vec<u8>,
    best: Option<(Vec<u32>, u32)>,
    steps: u64,
    max_depth: u32,
}

/// SplitMix64: a cheap, well-mixed 64-bit key per call for the Zobrist hash.
fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl<'a> Searcher<'a> {
    fn new(spans: &'a [Span], twins: &'a [u32]) -> Searcher<'a> {
        let n = spans.len();
        let head = 2 * n as u32;
        let tail = head + 1;
        let mut events: Vec<(u64, u32)> = Vec::with_capacity(2 * n);
        let mut open: Vec<(u64, u32)> = Vec::new();
        for (c, span) in spans.iter().enumerate() {
            let c = c as u32;
            if span.is_open() {
                open.push((span.invoke, c));
            } else {
                events.push((span.invoke, 2 * c));
                events.push((span.ret, 2 * c + 1));
            }
        }
        events.sort_unstable();
        open.sort_unstable();
        let mut next = vec![tail; 2 * n + 2];
        let mut prev = vec![head; 2 * n + 2];
        let mut last = head;
        for &(_, node) in &events {
            next[last as usize] = node;
            prev[node as usize] = last;
            last = node;
        }
        next[last as usize] = tail;
        prev[tail as usize] = last;

        let open_head = n as u32;
        let open_tail = open_head + 1;
        let mut open_next = vec![open_tail; n + 2];
        let mut open_prev = vec![open_head; n + 2];
        let mut last = open_head;
        let mut twin_next = vec![NONE; n];
        for &(_, c) in &open {
            let twin = twins[c as usize];
            if twin != NONE {
                twin_next[twin as usize] = c;
                continue;
            }
            open_next[last as usize] = c;
            open_prev[c as usize] = last;
            last = c;
        }
        open_next[last as usize] = open_tail;
        open_prev[open_tail as usize] = last;

        // Completed calls take bit positions 0.. by return, open ones start at a word
        // boundary, by invocation. By return, the placed completed calls are a run of
        // ones (every call returning before the earliest unplaced one) then a window a
        // few words wide: the memo stores only that window ([`Visited`]).
        let completed_words = (events.len() / 2).div_ceil(64).max(1);
        let mut bit = vec![0u32; n];
        let mut next_completed = 0u32;
        for &(_, node) in &events {
            if node & 1 == 1 {
                bit[(node >> 1) as usize] = next_completed;
                next_completed += 1;
            }
        }
        for (i, &(_, c)) in open.iter().enumerate() {
            bit[c as usize] = 64 * completed_words as u32 + i as u32;
        }
        let open_words = open.len().div_ceil(64);
        let words = completed_words + open_words;
        Searcher {
            spans,
            twins,
            next,
            prev,
            head,
            open_next,
            open_prev,
            twin_next,
            open_head,
            open_tail,
            read_only: Vec::new(),
            blind: Vec::new(),
            observes: Vec::new(),
            observers: Vec::new(),
            dead: NONE,
            need: Vec::new(),
            make: Vec::new(),
            need_state: Vec::new(),
            need_of_state: rustc_hash::FxHashMap::default(),
            req_next: Vec::new(),
            req_prev: Vec::new(),
            prod_next: Vec::new(),
            prod_prev: Vec::new(),
            bound: OPEN,
            first: NONE,
            placed: vec![0; words],
            bit,
            placed_hash: 0,
            zobrist: spans
                .iter()
                .enumerate()
                .map(|(c, span)| {
                    if span.is_open() {
                        0
                    } else {
                        splitmix(c as u64)
                    }
                })
                .collect(),
            visited: Visited::new(completed_words, open_words),
            stack: Vec::new(),
            remaining: events.len() / 2,
            blocked: Vec::new(),
            blocked_len: Vec::new(),
            best: None,
            steps: 0,
            max_depth: 0,
        }
    }

    fn bytes(&self) -> u64 {
        let lists = (self.next.capacity()
            + self.prev.capacity()
            + self.open_next.capacity()
            + self.open_prev.capacity()
            + self.twin_next.capacity()
            + self.need.capacity()
            + self.make.capacity()
            + self.need_state.capacity()
            + self.req_next.capacity()
            + self.req_prev.capacity()
            + self.prod_next.capacity()
            + self.prod_prev.capacity())
            * 4
            + self.need_of_state.capacity() * 9;
        let stack = self.stack.capacity() * std::mem::size_of::<Frame>();
        let blocked = self.blocked.capacity() * (MAX_BLOCKED_STATES * 4 + 1);
        (self.visited.heap_bytes()
            + lists
            + stack
            + blocked
            + (self.zobrist.capacity() * 8 + self.bit.capacity() * 4)) as u64
    }

    #[inline]
    fn is_placed(&self, c: u32) -> bool {
        let b = self.bit[c as usize];
        self.placed[(b >> 6) as usize] & (1 << (b & 63)) != 0
    }

    #[inline]
    fn flip(&mut self, c: u32) {
        let b = self.bit[c as usize];
        self.placed[(b >> 6) as usize] ^= 1 << (b & 63);
        self.placed_hash ^= self.zobrist[c as usize];
    }

    #[inline]
    fn unlink(next: &mut [u32], prev: &mut [u32], x: u32) {
        let (p, n) = (prev[x as usize], next[x as usize]);
        next[p as usize] = n;
        prev[n as usize] = p;
    }

    #[inline]
    fn relink(next: &mut [u32], prev: &mut [u32], x: u32) {
        let (p, n) = (prev[x as usize], next[x as usize]);
        next[p as usize] = x;
        prev[n as usize] = x;
    }

    /// Take open call `c` out of the open list; its next equal call, if any, goes in at
    /// its place by invocation.
    fn unlink_open(&mut self, c: u32) {
        let mut at = self.open_prev[c as usize];
        Self::unlink(&mut self.open_next, &mut self.open_prev, c);
        let twin = self.twin_next[c as usize];
        if twin == NONE {
            return;
        }
        let invoke = self.spans[twin as usize].invoke;
        let mut node = self.open_next[at as usize];
        while node != self.open_tail && self.spans[node as usize].invoke < invoke {
            at = node;
            node = self.open_next[node as usize];
        }
        self.open_next[twin as usize] = node;
        self.open_prev[twin as usize] = at;
        self.open_next[at as usize] = twin;
        self.open_prev[node as usize] = twin;
    }

    /// Undo [`Self::unlink_open`] (the last list change, as backtracking goes).
    fn relink_open(&mut self, c: u32) {
        let twin = self.twin_next[c as usize];
        if twin != NONE {
            Self::unlink(&mut self.open_next, &mut self.open_prev, twin);
        }
        Self::relink(&mut self.open_next, &mut self.open_prev, c);
    }

    /// Set up the reachability pruning (see [`Transitions::flow`]); `Some((call, state))`
    /// when a completed call can never reach the state it requires, even from the start
    /// (with a state it would find instead).
    fn setup_flow<T: Transitions>(&mut self, t: &mut T, init: u32) -> Option<(u32, u32)> {
        if !t.flow() {
            return None;
        }
        let n = self.spans.len() as u32;
        let mut need = vec![NONE; n as usize];
        for c in 0..n {
            if self.spans[c as usize].is_open() {
                continue;
            }
            if let Some(v) = t.requires(c) {
                let next = self.need_state.len() as u32;
                need[c as usize] = *self.need_of_state.entry(v).or_insert(next);
                if need[c as usize] == next {
                    self.need_state.push(v);
                }
            }
        }
        if self.need_state.is_empty() {
            return None;
        }
        self.make = (0..n)
            .map(|c| {
                t.produces(c)
                    .and_then(|v| self.need_of_state.get(&v).copied())
                    .unwrap_or(NONE)
            })
            .collect();
        self.need = need;
        let k = self.need_state.len() as u32;
        let sentinels = n..n + k;
        let circle = || -> (Vec<u32>, Vec<u32>) {
            let ends: Vec<u32> = (0..n).chain(sentinels.clone()).collect();
            (ends.clone(), ends)
        };
        (self.req_next, self.req_prev) = circle();
        (self.prod_next, self.prod_prev) = circle();
        let mut requirers: Vec<u32> = (0..n).filter(|&c| self.need[c as usize] != NONE).collect();
        requirers.sort_unstable_by_key(|&c| self.spans[c as usize].ret);
        thread(
            &requirers,
            &self.need,
            n,
            &mut self.req_next,
            &mut self.req_prev,
        );
        let mut producers: Vec<u32> = (0..n).filter(|&c| self.make[c as usize] != NONE).collect();
        producers.sort_unstable_by_key(|&c| self.spans[c as usize].invoke);
        thread(
            &producers,
            &self.make,
            n,
            &mut self.prod_next,
            &mut self.prod_prev,
        );
        (0..k)
            .find_map(|k| self.unreachable(k, NONE, init).map(|r| (r, init)))
            .or_else(|| self.overwritten(t))
    }

    /// A completed call whose required state is provably gone for good when it must take
    /// effect, found before any search: every call that may produce that state and was
    /// invoked before the call returned completed before some completed call W was
    /// invoked, and W, which surely leaves another state, returned before the call was
    /// invoked. In every linearization the producers come before W and W before the
    /// call, and no producer can come between them: the state the call needs is never
    /// there (the classic stale read). The dynamic check ([`Self::doomed`]) finds this
    /// only once the search has placed every producer, and an invalid history must then
    /// exhaust every order of the calls before; this finds it in O(n log n). Returns the
    /// call and the state W leaves.
    fn overwritten<T: Transitions>(&self, t: &mut T) -> Option<(u32, u32)> {
        let n = self.spans.len() as u32;
        let any = t.init();
        // Completed calls that surely leave one state whatever they start from: a blind
        // call, or one legal in a single state. By invocation, with suffix minima of the
        // return (the best and the best leaving another state than the best's).
        let mut setters: Vec<(u64, u64, u32)> = (0..n)
            .filter(|&c| !self.spans[c as usize].is_open())
            .filter_map(|c| {
                let from = if self.blind[c as usize] {
                    any
                } else {
                    t.requires(c)?
                };
                let span = self.spans[c as usize];
                Some((span.invoke, span.ret, t.step(from, c)?))
            })
            .collect();
        setters.sort_unstable();
        const NO: (u64, u32) = (OPEN, NONE);
        let mut best = vec![(NO, NO); setters.len() + 1];
        for i in (0..setters.len()).rev() {
            let (_, ret, after) = setters[i];
            let (mut first, mut second) = best[i + 1];
            if ret < first.0 {
                if after != first.1 {
                    second = first;
                }
                first = (ret, after);
            } else if ret < second.0 && after != first.1 {
                second = (ret, after);
            }
            best[i] = (first, second);
        }
        // A completed call W invoked after `after` and returned before `before` that leaves
        // a state other than `v`.
        let leaver = |after: Option<u64>, before: u64, v: u32| -> Option<u32> {
            let from = after.map_or(0, |a| setters.partition_point(|s| s.0 <= a));
            let (first, second) = best[from];
            [first, second]
                .into_iter()
                .find(|&(ret, state)| state != NONE && state != v && ret < before)
                .map(|(_, state)| state)
        };
        for k in 0..self.need_state.len() as u32 {
            let v = self.need_state[k as usize];
            let sentinel = n + k;
            // Producers by invocation, with the latest return so far (OPEN once an open
            // one is among them: it may take effect at any time).
            let mut producers: Vec<(u64, u64)> = Vec::new();
            let mut p = self.prod_next[sentinel as usize];
            while p != sentinel {
                let span = self.spans[p as usize];
                let latest = producers.last().map_or(0, |l| l.1).max(span.ret);
                producers.push((span.invoke, latest));
                p = self.prod_next[p as usize];
            }
            let mut r = self.req_next[sentinel as usize];
            while r != sentinel {
                let span = self.spans[r as usize];
                let before = producers.partition_point(|p| p.0 < span.ret);
                let latest = before.checked_sub(1).map(|i| producers[i].1);
                if latest != Some(OPEN) {
                    if let Some(state) = leaver(latest, span.invoke, v) {
                        return Some((r, state));
                    }
                }
                r = self.req_next[r as usize];
            }
        }
        None
    }

    /// Whether the unplaced completed calls that require local state `k` can no longer
    /// all get it: the state after the configuration is `state`, not that one, and no
    /// unplaced call (other than `c`, being placed) producing it was invoked before the
    /// earliest of them returns. Then that earliest one is returned: it cannot be placed
    /// in any extension (some call must lead to its state first, and only the producers
    /// listed do). Calls that could be placed only later make no difference to the
    /// earliest deadline, hence the lists sorted by return and by invocation.
    #[inline]
    fn unreachable(&self, k: u32, c: u32, state: u32) -> Option<u32> {
        if k == NONE || self.need_state[k as usize] == state {
            return None;
        }
        let sentinel = self.spans.len() as u32 + k;
        let mut r = self.req_next[sentinel as usize];
        if r == c {
            r = self.req_next[r as usize];
        }
        if r == sentinel {
            return None;
        }
        let mut p = self.prod_next[sentinel as usize];
        if p == c {
            p = self.prod_next[p as usize];
        }
        let reachable = p != sentinel && self.spans[p as usize].invoke < self.spans[r as usize].ret;
        (!reachable).then_some(r)
    }

    /// Whether placing `c`, taking the state from `before` to `after`, leaves a completed
    /// call that can never be placed ([`Self::unreachable`]); the configuration is then
    /// dead and the search does not enter it. Only two required states can become
    /// unreachable by this step: the one left (if required) and the one `c` produces (it
    /// stops being a producer). The others keep their state relation and producers, and
    /// lose at most a requirer, so checking them once at the start suffices.
    #[inline]
    fn doomed(&self, c: u32, before: u32, after: u32) -> Option<u32> {
        if self.need_state.is_empty() {
            return None;
        }
        let left = if after != before {
            self.need_of_state.get(&before).copied().unwrap_or(NONE)
        } else {
            NONE
        };
        self.unreachable(left, c, after)
            .or_else(|| self.unreachable(self.make[c as usize], c, after))
    }

    /// `c` was placed: it neither requires nor produces anything any more.
    #[inline]
    fn unlink_flow(&mut self, c: u32) {
        if let Some(&k) = self.need.get(c as usize) {
            if k != NONE {
                Self::unlink(&mut self.req_next, &mut self.req_prev, c);
            }
            if self.make[c as usize] != NONE {
                Self::unlink(&mut self.prod_next, &mut self.prod_prev, c);
            }
        }
    }

    /// Undo [`Self::unlink_flow`] (in stack order, so the lists come back as they were).
    #[inline]
    fn relink_flow(&mut self, c: u32) {
        if let Some(&k) = self.need.get(c as usize) {
            if self.make[c as usize] != NONE {
                Self::relink(&mut self.prod_next, &mut self.prod_prev, c);
            }
            if k != NONE {
                Self::relink(&mut self.req_next, &mut self.req_prev, c);
            }
        }
    }

    /// `c` leaves (`placed`) or rejoins the unplaced calls: its observed state loses or
    /// gains an observer.
    #[inline]
    fn observe(&mut self, c: u32, placed: bool) {
        let s = self.observes[c as usize];
        if let Some(n) = self.observers.get_mut(s as usize) {
            if placed {
                *n -= 1;
            } else {
                *n += 1;
            }
        }
    }

    /// `s`, or the dead state when no unplaced call observes `s` any more (states that
    /// nothing tells apart behave alike from here on, so the memo may equate them).
    #[inline]
    fn canon(&self, s: u32) -> u32 {
        if self.dead != NONE && self.observers.get(s as usize).is_none_or(|&n| n == 0) {
            self.dead
        } else {
            s
        }
    }

    /// Try to place call `c` next; on success push a frame and descend.
    #[inline]
    fn place<T: Transitions>(&mut self, t: &mut T, state: &mut u32, c: u32, frontier: u32) -> bool {
        if self.try_place(t, state, c, frontier) {
            return true;
        }
        self.observe(c, false);
        false
    }

    /// [`Self::place`], leaving `c` counted as placed by [`Self::observe`] when it fails.
    #[inline]
    fn try_place<T: Transitions>(
        &mut self,
        t: &mut T,
        state: &mut u32,
        c: u32,
        frontier: u32,
    ) -> bool {
        self.observe(c, true);
        // The state before the open call placed last, if the last call is open.
        let before_open = self
            .stack
            .last()
            .filter(|f| !f.forced && self.spans[f.call as usize].is_open())
            .map(|f| f.state);
        if self.blind[c as usize] && before_open.is_some() {
            return false;
        }
        let Some(after) = t.step(*state, c).map(|s| self.canon(s)) else {
            return false;
        };
        if self.spans[c as usize].is_open() && after == *state {
            // An open call that changes nothing can as well never have happened.
            return false;
        }
        if let Some(before) = before_open {
            // Just-in-time: an open call goes in only right before a call it enables (one
            // that steps differently without it); otherwise leaving it out, which the
            // search explores too, does the same.
            if t.step(before, c).map(|s| self.canon(s)) == Some(after) {
                return false;
            }
        }
        if let Some(r) = self.doomed(c, *state, after) {
            self.note_blocked(r, after, Some(c));
            return false;
        }
        self.flip(c);
        if !self.visited.insert(&self.placed, self.placed_hash, after) {
            self.flip(c);
            return false;
        }
        self.stack.push(Frame {
            call: c,
            state: *state,
            frontier,
            bound: self.bound,
            forced: false,
            first_try: false,
            dead_done: false,
        });
        self.max_depth = self.max_depth.max(self.stack.len() as u32);
        *state = after;
        self.unlink_flow(c);
        if self.spans[c as usize].is_open() {
            self.unlink_open(c);
        } else {
            Self::unlink(&mut self.next, &mut self.prev, 2 * c);
            Self::unlink(&mut self.next, &mut self.prev, 2 * c + 1);
            self.remaining -= 1;
        }
        true
    }

    /// Undo the top frame; returns where the scan resumes.
    fn unplace(&mut self, frame: Frame, state: &mut u32) -> Cursor {
        let c = frame.call;
        self.flip(c);
        self.observe(c, false);
        self.relink_flow(c);
        *state = frame.state;
        self.bound = frame.bound;
        self.first = frame.frontier;
        if self.spans[c as usize].is_open() {
            self.relink_open(c);
            Cursor::Open {
                node: self.open_next[c as usize],
                frontier: frame.frontier,
                dead_done: frame.dead_done,
            }
        } else {
            Self::relink(&mut self.next, &mut self.prev, 2 * c + 1);
            Self::relink(&mut self.next, &mut self.prev, 2 * c);
            self.remaining += 1;
            if frame.first_try {
                Cursor::Main(self.next[self.head as usize])
            } else {
                Cursor::Main(self.next[2 * c as usize])
            }
        }
    }

    /// A read-only call that may go next and is legal in `state`, with the state after it.
    /// When there is none, the scan has reached the earliest return among unplaced
    /// completed calls, which becomes [`Self::bound`].
    fn legal_read<T: Transitions>(&mut self, t: &mut T, state: u32) -> Option<(u32, u32)> {
        let mut node = self.next[self.head as usize];
        while node & 1 == 0 && node < self.head {
            let c = node >> 1;
            if self.read_only[c as usize] {
                if let Some(after) = t.step(state, c) {
                    return Some((c, after));
                }
            }
            node = self.next[node as usize];
        }
        self.bound = self.spans.get((node >> 1) as usize).map_or(OPEN, |s| s.ret);
        self.first = if node < self.head { node >> 1 } else { NONE };
        None
    }

    /// Whether completed candidate `c` has an equal unplaced candidate that returns
    /// earlier: then only that one is tried (see the module doc).
    fn has_earlier_twin(&self, c: u32) -> bool {
        let mut d = self.twins[c as usize];
        while d != NONE {
            let span = self.spans[d as usize];
            // Every completed call returning before the bound is placed already.
            if span.ret < self.bound {
                return false;
            }
            if !self.is_placed(d) && span.invoke < self.bound {
                return true;
            }
            d = self.twins[d as usize];
        }
        false
    }

    /// Pop frames until one whose configuration has other candidates left; `None` when
    /// the stack runs out (nothing is linearizable).
    fn backtrack(&mut self, state: &mut u32) -> Option<Cursor> {
        loop {
            let frame = self.stack.pop()?;
            let cursor = self.unplace(frame, state);
            if !frame.forced {
                return Some(cursor);
            }
        }
    }

    /// Remember `state` as one in which `c` returned unplaced (or, with `then`, one that
    /// placing `then` on top of the stack would leave `c` unable to leave).
    fn note_blocked(&mut self, c: u32, state: u32, then: Option<u32>) {
        if self.blocked.is_empty() {
            self.blocked = vec![[0; MAX_BLOCKED_STATES]; self.spans.len()];
            self.blocked_len = vec![0; self.spans.len()];
        }
        let len = self.blocked_len[c as usize] as usize;
        let seen = &mut self.blocked[c as usize];
        if len < MAX_BLOCKED_STATES && !seen[..len].contains(&state) {
            seen[len] = state;
            self.blocked_len[c as usize] += 1;
        }
        let depth = self.stack.len() + usize::from(then.is_some());
        if self
            .best
            .as_ref()
            .is_none_or(|(path, _)| depth > path.len())
        {
            let path = self.stack.iter().map(|f| f.call).chain(then).collect();
            self.best = Some((path, c));
        }
    }

    fn failure(&mut self) -> Failure {
        let (deepest, failing) = self.best.take().unwrap_or_default();
        let len = self.blocked_len.get(failing as usize).copied().unwrap_or(0) as usize;
        let blocked_states = self
            .blocked
            .get(failing as usize)
            .map(|s| s[..len].to_vec())
            .unwrap_or_default();
        Failure {
            deepest,
            failing,
            blocked_states,
        }
    }

    fn run<T: Transitions>(&mut self, t: &mut T, budget: &Budget) -> SearchResult {
        if self.remaining == 0 {
            return SearchResult::Linearizable;
        }
        let mut meter = budget.meter();
        let state = t.init();
        self.read_only = (0..self.spans.len() as u32)
            .map(|c| !self.spans[c as usize].is_open() && t.read_only(c))
            .collect();
        self.blind = (0..self.spans.len() as u32).map(|c| t.blind(c)).collect();
        self.observes = (0..self.spans.len() as u32)
            .map(|c| t.observes(c).unwrap_or(NONE))
            .collect();
        self.dead = t.dead().unwrap_or(NONE);
        if self.dead != NONE {
            let states = self.observes.iter().filter(|&&s| s != NONE).max();
            self.observers = vec![0; states.map_or(0, |&s| s as usize + 1)];
            for &s in &self.observes {
                if let Some(n) = self.observers.get_mut(s as usize) {
                    *n += 1;
                }
            }
        }
        let mut state = self.canon(state);
        if let Some((r, blocked)) = self.setup_flow(t, state) {
            self.note_blocked(r, blocked, None);
            return SearchResult::NotLinearizable(self.failure());
        }
        let mut cursor = Cursor::Main(self.next[self.head as usize]);
        // Whether the search just entered a new configuration (and should first look for
        // a legal read to force).
        let mut fresh = true;
        loop {
            self.steps += 1;
            if self.steps.is_multiple_of(CHECK_EVERY) {
                let bytes = self.bytes() + t.heap_bytes() as u64;
                if let Err(e) = meter.update(bytes) {
                    return SearchResult::Exhausted(e);
                }
            }
            if std::mem::take(&mut fresh) {
                if let Some((c, after)) = self.legal_read(t, state) {
                    self.observe(c, true);
                    let after = self.canon(after);
                    self.flip(c);
                    if self.visited.insert(&self.placed, self.placed_hash, after) {
                        self.stack.push(Frame {
                            call: c,
                            state,
                            frontier: NONE,
                            bound: OPEN,
                            forced: true,
                            first_try: false,
                            dead_done: false,
                        });
                        self.max_depth = self.max_depth.max(self.stack.len() as u32);
                        state = after;
                        self.unlink_flow(c);
                        Self::unlink(&mut self.next, &mut self.prev, 2 * c);
                        Self::unlink(&mut self.next, &mut self.prev, 2 * c + 1);
                        self.remaining -= 1;
                        if self.remaining == 0 {
                            return SearchResult::Linearizable;
                        }
                        fresh = true;
                    } else {
                        // Placing the read leads to a configuration known to fail, so
                        // this one fails too.
                        self.flip(c);
                        self.observe(c, false);
                        match self.backtrack(&mut state) {
                            Some(next) => cursor = next,
                            None => return SearchResult::NotLinearizable(self.failure()),
                        }
                    }
                    continue;
                }
                let first = self.first;
                if first != NONE && self.place(t, &mut state, first, first) {
                    if let Some(frame) = self.stack.last_mut() {
                        frame.first_try = true;
                    }
                    if self.remaining == 0 {
                        return SearchResult::Linearizable;
                    }
                    fresh = true;
                    continue;
                }
                cursor = Cursor::Main(self.next[self.head as usize]);
            }
            match cursor {
                Cursor::Main(node) => {
                    let c = node >> 1;
                    if node & 1 == 0 && node < self.head {
                        let first = self.first;
                        cursor = if c != first
                            && !self.has_earlier_twin(c)
                            && self.place(t, &mut state, c, first)
                        {
                            if self.remaining == 0 {
                                return SearchResult::Linearizable;
                            }
                            fresh = true;
                            cursor
                        } else {
                            Cursor::Main(self.next[node as usize])
                        };
                    } else {
                        // The earliest return among unplaced completed calls: only open
                        // calls invoked before it may still go first. (`node` cannot be
                        // the tail while completed calls remain: each one's return
                        // follows its invocation in the list.)
                        cursor = Cursor::Open {
                            node: self.open_next[self.open_head as usize],
                            frontier: c,
                            dead_done: false,
                        };
                    }
                }
                Cursor::Open {
                    node,
                    frontier,
                    dead_done,
                } => {
                    let bound = self.spans.get(frontier as usize).map_or(OPEN, |s| s.ret);
                    if node == self.open_tail || self.spans[node as usize].invoke > bound {
                        self.note_blocked(frontier, state, None);
                        match self.backtrack(&mut state) {
                            Some(next) => cursor = next,
                            None => return SearchResult::NotLinearizable(self.failure()),
                        }
                    } else {
                        debug_assert!({
                            let twin = self.twins[node as usize];
                            twin == NONE || self.is_placed(twin)
                        });
                        // Blind open calls whose value nothing observes any more are
                        // interchangeable from here on (each leads to the dead state
                        // whenever it goes in): only the first met is tried.
                        let dead_write = self.dead != NONE
                            && self.blind[node as usize]
                            && t.step(state, node).map(|s| self.canon(s)) == Some(self.dead);
                        let skip = dead_write && dead_done;
                        let dead_done = dead_done || dead_write;
                        cursor = if !skip && self.place(t, &mut state, node, frontier) {
                            if let Some(frame) = self.stack.last_mut() {
                                frame.dead_done = dead_done;
                            }
                            fresh = true;
                            cursor
                        } else {
                            Cursor::Open {
                                node: self.open_next[node as usize],
                                frontier,
                                dead_done,
                            }
                        };
                    }
                }
            }
        }
    }
}

/// Appends `calls`, in their order, to the circular list of each one's value
/// (`value[c]`), whose sentinel is `n + value[c]`.
fn thread(calls: &[u32], value: &[u32], n: u32, next: &mut [u32], prev: &mut [u32]) {
    for &c in calls {
        let sentinel = n + value[c as usize];
        let last = prev[sentinel as usize];
        (prev[c as usize], next[c as usize]) = (last, sentinel);
        next[last as usize] = c;
        prev[sentinel as usize] = c;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A register over small integers, with calls given directly: `(kind, a, b)`. With
    /// `flow`, it tells the search what each call requires and produces.
    struct Reg<'a> {
        calls: &'a [(char, u32, u32)],
        flow: bool,
    }

    impl Transitions for Reg<'_> {
        type State = u32;
        fn state(&self, id: u32) -> Option<u32> {
            Some(id)
        }
        fn init(&mut self) -> u32 {
            0
        }
        fn step(&mut self, s: u32, c: u32) -> Option<u32> {
            match self.calls[c as usize] {
                ('r', v, _) => (s == v).then_some(s),
                ('w', v, _) => Some(v),
                ('c', from, to) => (s == from).then_some(to),
                _ => None,
            }
        }
        fn heap_bytes(&self) -> usize {
            0
        }
        fn blind(&self, c: u32) -> bool {
            self.calls[c as usize].0 == 'w'
        }
        fn flow(&self) -> bool {
            self.flow
        }
        fn requires(&self, c: u32) -> Option<u32> {
            match self.calls[c as usize] {
                ('r', v, _) | ('c', v, _) => Some(v),
                _ => None,
            }
        }
        fn produces(&self, c: u32) -> Option<u32> {
            match self.calls[c as usize] {
                ('w', v, _) | ('c', _, v) => Some(v),
                _ => None,
            }
        }
    }

    fn span(invoke: u64, ret: u64) -> Span {
        Span { invoke, ret }
    }

    fn run_with(
        calls: &[(char, u32, u32)],
        spans: &[Span],
        flow: bool,
    ) -> (SearchResult, SearchStats) {
        let budget = Budget::new(Duration::from_secs(10), 1 << 30);
        let twins = twins(calls, spans);
        search(spans, &twins, &mut Reg { calls, flow }, &budget)
    }

    /// The search's answer with the reachability pruning, after checking that it agrees
    /// with the answer without.
    fn run(calls: &[(char, u32, u32)], spans: &[Span]) -> SearchResult {
        let with = run_with(calls, spans, true).0;
        let without = run_with(calls, spans, false).0;
        assert_eq!(
            matches!(with, SearchResult::Linearizable),
            matches!(without, SearchResult::Linearizable),
            "with pruning {with:?}, without {without:?}"
        );
        with
    }

    #[test]
    fn accepts_concurrent_write_and_read_of_the_new_value() {
        let calls = [('w', 1, 0), ('r', 1, 0)];
        assert_eq!(
            run(&calls, &[span(0, 3), span(1, 2)]),
            SearchResult::Linearizable
        );
    }

    #[test]
    fn rejects_a_stale_read_after_a_completed_write() {
        let calls = [('w', 1, 0), ('r', 0, 0)];
        let spans = [span(0, 1), span(2, 3)];
        for flow in [false, true] {
            let result = run_with(&calls, &spans, flow).0;
            let SearchResult::NotLinearizable(f) = result else {
                panic!("{result:?}")
            };
            assert_eq!(f.failing, 1, "the read could not be placed");
            assert_eq!(f.blocked_states, vec![1]);
            // With the pruning it is refused before any step.
            let deepest: &[u32] = if flow { &[] } else { &[0] };
            assert_eq!(f.deepest, deepest);
        }
    }

    #[test]
    fn an_open_write_may_take_effect_late() {
        // write 1 never returns; a read much later sees 1.
        let calls = [('w', 1, 0), ('r', 0, 0), ('r', 1, 0)];
        let spans = [span(0, OPEN), span(1, 2), span(3, 4)];
        assert_eq!(run(&calls, &spans), SearchResult::Linearizable);
    }

    #[test]
    fn an_open_write_may_never_take_effect() {
        let calls = [('w', 1, 0), ('r', 0, 0)];
        assert_eq!(
            run(&calls, &[span(0, OPEN), span(5, 6)]),
            SearchResult::Linearizable
        );
    }

    #[test]
    fn an_open_write_cannot_take_effect_before_its_invocation() {
        let calls = [('r', 1, 0), ('w', 1, 0)];
        let result = run(&calls, &[span(0, 1), span(2, OPEN)]);
        assert!(
            matches!(result, SearchResult::NotLinearizable(_)),
            "{result:?}"
        );
    }

    #[test]
    fn twin_open_writes_are_interchangeable_but_each_happens_at_most_once() {
        // Two crashed `write 1`s and a cas 0→2 between them; reads 1, 2, 1 need both.
        let calls = [
            ('w', 1, 0),
            ('w', 1, 0),
            ('r', 1, 0),
            ('c', 1, 2),
            ('r', 2, 0),
            ('r', 1, 0),
        ];
        let spans = [
            span(0, OPEN),
            span(1, OPEN),
            span(2, 3),
            span(4, 5),
            span(6, 7),
            span(8, 9),
        ];
        assert_eq!(run(&calls, &spans), SearchResult::Linearizable);
        // A third read of 1 after another overwrite needs a third write: impossible.
        let calls = [
            ('w', 1, 0),
            ('w', 1, 0),
            ('r', 1, 0),
            ('c', 1, 2),
            ('r', 2, 0),
            ('r', 1, 0),
            ('c', 1, 3),
            ('r', 3, 0),
            ('r', 1, 0),
        ];
        let spans = [
            span(0, OPEN),
            span(1, OPEN),
            span(2, 3),
            span(4, 5),
            span(6, 7),
            span(8, 9),
            span(10, 11),
            span(12, 13),
            span(14, 15),
        ];
        assert!(matches!(
            run(&calls, &spans),
            SearchResult::NotLinearizable(_)
        ));
    }

    #[test]
    fn equal_completed_writes_keep_both_orders_open() {
        // Two `write 1`s: A long, B short. After `write 2`, a read sees 1 again, so A must
        // go after `write 2` even though B (returning first) is the one tried first.
        let calls = [('w', 1, 0), ('w', 1, 0), ('w', 2, 0), ('r', 1, 0)];
        let spans = [span(0, 10), span(1, 3), span(4, 5), span(6, 7)];
        assert_eq!(run(&calls, &spans), SearchResult::Linearizable);
        // A returning before `write 2` begins: no `write 1` can follow it.
        let spans = [span(0, 2), span(1, 3), span(4, 5), span(6, 7)];
        assert!(matches!(
            run(&calls, &spans),
            SearchResult::NotLinearizable(_)
        ));
    }

    #[test]
    fn equal_completed_cas_calls_chain_in_either_order() {
        // cas 0→1 twice (A long, B short) around a cas 1→0; the read of 1 at the end
        // needs both, B first.
        let calls = [('c', 0, 1), ('c', 0, 1), ('c', 1, 0), ('r', 1, 0)];
        let spans = [span(0, 10), span(1, 3), span(4, 5), span(6, 7)];
        assert_eq!(run(&calls, &spans), SearchResult::Linearizable);
        // A third cas 0→1 cannot happen: a read of 0 after everything is impossible.
        let calls = [
            ('c', 0, 1),
            ('c', 0, 1),
            ('c', 1, 0),
            ('r', 1, 0),
            ('r', 0, 0),
        ];
        let spans = [
            span(0, 10),
            span(1, 3),
            span(4, 5),
            span(6, 7),
            span(11, 12),
        ];
        assert!(matches!(
            run(&calls, &spans),
            SearchResult::NotLinearizable(_)
        ));
    }

    #[test]
    fn twins_pair_open_calls_by_invocation_and_completed_ones_by_return() {
        let calls = [
            ('w', 1, 0),
            ('w', 1, 0),
            ('w', 1, 0),
            ('w', 1, 0),
            ('w', 2, 0),
        ];
        let spans = [
            span(0, 10),
            span(1, OPEN),
            span(2, 5),
            span(3, OPEN),
            span(4, 6),
        ];
        assert_eq!(twins(&calls, &spans), vec![2, NONE, NONE, 1, NONE]);
    }

    #[test]
    fn open_calls_go_in_only_before_a_call_they_enable() {
        // Sixty crashed writes and a read of a value none writes: without the
        // just-in-time rule the search would try every order of the writes (the test
        // below, with completed writes, shows how long that takes).
        let mut calls: Vec<(char, u32, u32)> = (0..60).map(|i| ('w', i + 1, 0)).collect();
        calls.push(('r', 1000, 0));
        let mut spans: Vec<Span> = (0..60).map(|i| span(i, OPEN)).collect();
        spans.push(span(100, 101));
        let budget = Budget::new(Duration::from_secs(10), 1 << 30);
        let twins = vec![NONE; spans.len()];
        let (result, stats) = search(
            &spans,
            &twins,
            &mut Reg {
                calls: &calls,
                flow: false,
            },
            &budget,
        );
        assert!(
            matches!(result, SearchResult::NotLinearizable(_)),
            "{result:?}"
        );
        assert!(stats.configurations < 100, "{stats:?}");
        // A chain of open calls, each enabling the next: write 1, cas 1→2, cas 2→3, all
        // crashed, then a read of 3.
        let calls = [('w', 1, 0), ('c', 1, 2), ('c', 2, 3), ('r', 3, 0)];
        let spans = [span(0, OPEN), span(1, OPEN), span(2, OPEN), span(3, 4)];
        assert_eq!(run(&calls, &spans), SearchResult::Linearizable);
        // The same with the chain broken by a crashed write of 9 nothing reads.
        let calls = [
            ('w', 1, 0),
            ('w', 9, 0),
            ('c', 1, 2),
            ('c', 2, 3),
            ('r', 3, 0),
        ];
        let spans = [
            span(0, OPEN),
            span(1, OPEN),
            span(2, OPEN),
            span(3, OPEN),
            span(4, 5),
        ];
        assert_eq!(run(&calls, &spans), SearchResult::Linearizable);
    }

    /// Forty overlapping completed writes of distinct values, invoked from `from`, each
    /// returning `len` later: each subset of them is a configuration, too many to exhaust.
    fn overlapping_writes(
        calls: &mut Vec<(char, u32, u32)>,
        spans: &mut Vec<Span>,
        from: u64,
        len: u64,
    ) {
        for i in 0..40 {
            calls.push(('w', 10 + i as u32, 0));
            spans.push(span(from + i, from + len + i));
        }
    }

    #[test]
    fn a_read_of_a_value_overwritten_for_good_fails_before_any_step() {
        // write 1, then write 2, then (after forty overlapping writes) a read of 1.
        let mut calls = vec![('w', 1, 0), ('w', 2, 0)];
        let mut spans = vec![span(0, 1), span(2, 3)];
        overlapping_writes(&mut calls, &mut spans, 4, 200);
        calls.push(('r', 1, 0));
        spans.push(span(300, 301));
        let (result, stats) = run_with(&calls, &spans, true);
        let SearchResult::NotLinearizable(f) = result else {
            panic!("{result:?}")
        };
        assert_eq!(f.failing, 42, "the read");
        assert_eq!(f.blocked_states, vec![2], "write 2 left 2");
        assert_eq!(stats.configurations, 0);
        // Without the pruning the search drowns in the subsets of the writes.
        let budget = Budget::new(Duration::from_millis(50), 1 << 30);
        let twins = vec![NONE; spans.len()];
        let reg = &mut Reg {
            calls: &calls,
            flow: false,
        };
        let result = search(&spans, &twins, reg, &budget).0;
        assert!(matches!(result, SearchResult::Exhausted(_)), "{result:?}");
    }

    #[test]
    fn a_value_gone_once_its_producers_are_placed_ends_the_branch() {
        // Not provable up front: writes of 1 and 2 overlap (either may go last), then a
        // long read of 2 and forty writes overlap a read of 1. Whichever write goes last,
        // once both are placed one of the reads has no producer left: the branch ends
        // there, before the forty writes are tried.
        let mut calls = vec![('w', 1, 0), ('w', 2, 0), ('r', 2, 0)];
        let mut spans = vec![span(0, 5), span(1, 6), span(7, 400)];
        overlapping_writes(&mut calls, &mut spans, 8, 412);
        calls.push(('r', 1, 0));
        spans.push(span(300, 301));
        let (result, stats) = run_with(&calls, &spans, true);
        assert!(
            matches!(result, SearchResult::NotLinearizable(_)),
            "{result:?}"
        );
        assert!(
            stats.configurations > 0 && stats.configurations < 100,
            "found by the search, early: {stats:?}"
        );
        let budget = Budget::new(Duration::from_millis(50), 1 << 30);
        let twins = vec![NONE; spans.len()];
        let reg = &mut Reg {
            calls: &calls,
            flow: false,
        };
        let result = search(&spans, &twins, reg, &budget).0;
        assert!(matches!(result, SearchResult::Exhausted(_)), "{result:?}");
        // Drop the read of 1 and it is valid.
        calls.pop();
        spans.pop();
        assert_eq!(run(&calls, &spans), SearchResult::Linearizable);
    }

    #[test]
    fn a_producer_invoked_after_the_deadline_does_not_count() {
        // A read of 1 that returns before the only write of 1 begins.
        let calls = [('r', 1, 0), ('w', 1, 0)];
        let result = run(&calls, &[span(0, 1), span(2, 3)]);
        let SearchResult::NotLinearizable(f) = result else {
            panic!("{result:?}")
        };
        assert_eq!(f.failing, 0);
        // A crashed write of 1 invoked before the read returns can explain it.
        assert_eq!(
            run(&calls, &[span(2, 3), span(1, OPEN)]),
            SearchResult::Linearizable
        );
    }

    #[test]
    fn an_open_producer_keeps_an_overwritten_value_reachable() {
        // write 1, write 2, read 1: invalid, unless a crashed write of 1 (or a crashed
        // cas 2→1) invoked before the read returned may take effect late.
        let base = [('w', 1, 0), ('w', 2, 0), ('r', 1, 0)];
        let spans = [span(0, 1), span(2, 3), span(4, 5)];
        assert!(matches!(
            run(&base, &spans),
            SearchResult::NotLinearizable(_)
        ));
        for late in [('w', 1, 0), ('c', 2, 1)] {
            let calls = [base[0], base[1], base[2], late];
            for invoke in [1, 3] {
                let mut spans = spans.to_vec();
                spans.push(span(invoke, OPEN));
                assert_eq!(run(&calls, &spans), SearchResult::Linearizable, "{late:?}");
            }
            // The same crashed call, invoked after the read returned, cannot help.
            let mut spans = spans.to_vec();
            spans.push(span(6, OPEN));
            assert!(matches!(
                run(&calls, &spans),
                SearchResult::NotLinearizable(_)
            ));
        }
        // A completed cas 2→1 overlapping the read also helps; one that must wait for
        // a value never there does not.
        let calls = [('w', 1, 0), ('w', 2, 0), ('r', 1, 0), ('c', 2, 1)];
        let mut spans = spans.to_vec();
        spans.push(span(3, 6));
        assert_eq!(run(&calls, &spans), SearchResult::Linearizable);
        let calls = [('w', 1, 0), ('w', 2, 0), ('r', 1, 0), ('c', 3, 1)];
        assert!(matches!(
            run(&calls, &spans),
            SearchResult::NotLinearizable(_)
        ));
    }

    #[test]
    fn reports_exhaustion_instead_of_running_past_its_deadline() {
        // Many concurrent completed writes and an impossible read: every subset of the
        // writes is a configuration to fail in, exponential without budget.
        let mut calls: Vec<(char, u32, u32)> = (0..60).map(|i| ('w', i + 1, 0)).collect();
        calls.push(('r', 1000, 0));
        let mut spans: Vec<Span> = (0..60).map(|i| span(i, 200 + i)).collect();
        spans.push(span(100, 101));
        let budget = Budget::new(Duration::from_millis(50), 1 << 30);
        let twins = vec![NONE; spans.len()];
        let (result, _) = search(
            &spans,
            &twins,
            &mut Reg {
                calls: &calls,
                flow: false,
            },
            &budget,
        );
        assert!(
            matches!(result, SearchResult::Exhausted(Exhausted::Time { .. })),
            "{result:?}"
        );
    }
}
