//! A linearizability check of the simulated clients' history, one key at a time (a
//! history is linearizable iff each key's is, since every operation touches one key).
//!
//! Each key is a register with read, write and compare-and-set. The search (Wing & Gong,
//! with memoisation of (operations linearized, register value)) picks, among operations
//! not yet linearized, one invoked before every pending completion, checks its answer
//! against the register, and goes on. Operations never answered may take effect at any
//! point after they were invoked, or never; unanswered reads are left out entirely.

use crate::kv::{Command, Outcome};
use std::collections::{BTreeMap, HashSet};

/// One client operation: invoked and (if answered) completed at event counter values
/// that are all distinct.
#[derive(Debug, Clone)]
pub struct Op {
    pub client: u64,
    pub cmd: Command,
    pub invoke: u64,
    pub complete: Option<(u64, Outcome)>,
}

/// Ok, or the first key whose history no order explains, with that history.
pub fn check(history: &[Op]) -> Result<(), String> {
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in history {
        let unanswered_read = op.complete.is_none() && matches!(op.cmd, Command::Read { .. });
        if !unanswered_read {
            by_key.entry(op.cmd.key()).or_default().push(op);
        }
    }
    for (key, ops) in by_key {
        let mut search = Search {
            ops: &ops,
            seen: HashSet::new(),
        };
        let done = vec![0u64; ops.len().div_ceil(64)];
        if !search.dfs(&done, None) {
            let lines: Vec<String> = ops
                .iter()
                .map(|o| {
                    format!(
                        "client {}: {:?} {} -> {:?}",
                        o.client, o.cmd, o.invoke, o.complete
                    )
                })
                .collect();
            return Err(format!(
                "key {key:?} is not linearizable:\n{}",
                lines.join("\n")
            ));
        }
    }
    Ok(())
}

struct Search<'a> {
    ops: &'a [&'a Op],
    seen: HashSet<(Vec<u64>, Option<i64>)>,
}

impl Search<'_> {
    fn dfs(&mut self, done: &[u64], value: Option<i64>) -> bool {
        let is_done = |i: usize| done[i / 64] & (1 << (i % 64)) != 0;
        let open: Vec<usize> = (0..self.ops.len()).filter(|i| !is_done(*i)).collect();
        if open.iter().all(|i| self.ops[*i].complete.is_none()) {
            return true;
        }
        if !self.seen.insert((done.to_vec(), value)) {
            return false;
        }
        let first_completion = open
            .iter()
            .filter_map(|i| self.ops[*i].complete.as_ref().map(|c| c.0))
            .min()
            .unwrap_or(u64::MAX);
        for i in open {
            let op = self.ops[i];
            if op.invoke > first_completion {
                continue;
            }
            let Some(next) = step(&op.cmd, op.complete.as_ref().map(|c| &c.1), value) else {
                continue;
            };
            let mut d = done.to_vec();
            d[i / 64] |= 1 << (i % 64);
            if self.dfs(&d, next) {
                return true;
            }
        }
        false
    }
}

/// The register's value after `cmd` from `value`, if `answer` (None: unanswered) is what
/// that would have returned; None if it is not.
fn step(cmd: &Command, answer: Option<&Outcome>, value: Option<i64>) -> Option<Option<i64>> {
    let (after, out) = match cmd {
        Command::Read { .. } => (value, Outcome::Value(value)),
        Command::Write { value: v, .. } => (Some(*v), Outcome::Done),
        Command::Cas { from, to, .. } if value == Some(*from) => (Some(*to), Outcome::Done),
        Command::Cas { .. } => (value, Outcome::CompareFailed { current: value }),
    };
    match answer {
        Some(a) if *a != out => None,
        _ => Some(after),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(cmd: Command, invoke: u64, complete: Option<(u64, Outcome)>) -> Op {
        Op {
            client: invoke,
            cmd,
            invoke,
            complete,
        }
    }
    fn w(v: i64) -> Command {
        Command::Write {
            key: "k".into(),
            value: v,
        }
    }
    fn r() -> Command {
        Command::Read { key: "k".into() }
    }

    #[test]
    fn overlapping_operations_may_take_effect_in_either_order() {
        let h = vec![
            op(w(1), 1, Some((4, Outcome::Done))),
            op(r(), 2, Some((3, Outcome::Value(Some(1))))),
            op(r(), 5, Some((6, Outcome::Value(Some(1))))),
        ];
        assert!(check(&h).is_ok());
    }

    #[test]
    fn a_read_of_an_overwritten_value_is_caught() {
        let h = vec![
            op(w(1), 1, Some((2, Outcome::Done))),
            op(w(2), 3, Some((4, Outcome::Done))),
            op(r(), 5, Some((6, Outcome::Value(Some(1))))),
        ];
        assert!(check(&h).is_err());
    }

    #[test]
    fn an_unanswered_write_may_or_may_not_have_happened() {
        let cas = Command::Cas {
            key: "k".into(),
            from: 1,
            to: 3,
        };
        let h = vec![
            op(w(1), 1, Some((2, Outcome::Done))),
            op(w(2), 3, None),
            op(r(), 4, Some((5, Outcome::Value(Some(1))))),
            op(r(), 6, Some((7, Outcome::Value(Some(2))))),
            op(
                cas,
                8,
                Some((9, Outcome::CompareFailed { current: Some(2) })),
            ),
        ];
        assert!(check(&h).is_ok());
        let h2 = vec![
            op(w(1), 1, Some((2, Outcome::Done))),
            op(w(2), 3, None),
            op(r(), 4, Some((5, Outcome::Value(Some(2))))),
            op(r(), 6, Some((7, Outcome::Value(Some(1))))),
        ];
        assert!(check(&h2).is_err());
    }
}
