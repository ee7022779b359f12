//! The agreement oracle: do the nodes' committed logs agree at every position they share?
//!
//! A fork that no client reads escapes the linearizability checker: two nodes may commit
//! different entries at one position while every read happens to land on one side. Each
//! node's committed log (position → entry, an op or a digest of it, as the target reports
//! it) is read at the end of a run (`target.yaml` `inspect:`), and this pure function
//! compares them: two entries that differ at the same position are a conflict, named with
//! both nodes and both entries. Positions only some nodes hold (a node that lagged, or one
//! whose older entries are compacted into a snapshot) are compared among those that hold
//! them, so a shorter or later-starting log is not a conflict by itself.

use super::Verdict;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// One committed entry as a node reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub index: u64,
    /// The op or its digest, opaque: equal text is the same entry.
    pub entry: String,
}

/// What inspecting one node gave: its log, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inspected {
    Log(Vec<Entry>),
    Missing(String),
}

/// One node's side of a conflict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Side {
    pub node: String,
    pub entry: String,
}

/// The first position (lowest index) where two nodes hold different entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    pub index: u64,
    pub a: Side,
    pub b: Side,
    /// How many positions conflict in all.
    pub positions: u64,
}

/// The span of one node's log that was compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub entries: u64,
    /// Lowest and highest index reported (`None` for an empty log).
    pub first: Option<u64>,
    pub last: Option<u64>,
}

/// results.json `agreement`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    pub checker: String,
    pub verdict: Verdict,
    /// Why the verdict is unknown.
    pub reason: Option<String>,
    /// Nodes whose logs were compared, with what each held.
    pub nodes: BTreeMap<String, Span>,
    /// Nodes without a log, and why.
    pub not_inspected: BTreeMap<String, String>,
    /// Positions held by at least two nodes: the ones that could have disagreed.
    pub positions_compared: u64,
    pub conflict: Option<Conflict>,
}

/// Slot of one position while merging: the first entry seen there and who reported it.
struct Slot<'a> {
    node: usize,
    entry: &'a str,
    /// Distinct nodes that hold this position.
    holders: u32,
    last_holder: usize,
    conflict: bool,
}

/// Compare the logs of `logs` (node → what inspecting it gave).
pub fn check(logs: &BTreeMap<String, Inspected>) -> Agreement {
    let mut nodes = BTreeMap::new();
    let mut not_inspected = BTreeMap::new();
    let mut held: Vec<(&str, &[Entry])> = Vec::new();
    for (node, inspected) in logs {
        match inspected {
            Inspected::Log(entries) => {
                nodes.insert(
                    node.clone(),
                    Span {
                        entries: entries.len() as u64,
                        first: entries.iter().map(|e| e.index).min(),
                        last: entries.iter().map(|e| e.index).max(),
                    },
                );
                held.push((node.as_str(), entries.as_slice()));
            }
            Inspected::Missing(why) => {
                not_inspected.insert(node.clone(), why.clone());
            }
        }
    }
    let mut slots: HashMap<u64, Slot> = HashMap::new();
    // (index, holder of the first entry, node that differs, its entry)
    let mut first: Option<(u64, usize, usize, &str)> = None;
    let mut conflicts = 0u64;
    for (n, (_, entries)) in held.iter().enumerate() {
        for e in entries.iter() {
            let slot = slots.entry(e.index).or_insert(Slot {
                node: n,
                entry: &e.entry,
                holders: 1,
                last_holder: n,
                conflict: false,
            });
            if slot.last_holder != n {
                slot.holders += 1;
                slot.last_holder = n;
            }
            if slot.entry != e.entry {
                if !slot.conflict {
                    slot.conflict = true;
                    conflicts += 1;
                }
                if first.is_none_or(|(i, ..)| e.index < i) {
                    first = Some((e.index, slot.node, n, &e.entry));
                }
            }
        }
    }
    let positions_compared = slots.values().filter(|s| s.holders >= 2).count() as u64;
    let conflict = first.map(|(index, a, b, entry_b)| Conflict {
        index,
        a: Side {
            node: held[a].0.to_string(),
            entry: slots[&index].entry.to_string(),
        },
        b: Side {
            node: held[b].0.to_string(),
            entry: entry_b.to_string(),
        },
        positions: conflicts,
    });
    let (verdict, reason) = if conflict.is_some() {
        (Verdict::Invalid, None)
    } else if held.len() < 2 {
        let why = if not_inspected.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                not_inspected
                    .iter()
                    .map(|(n, w)| format!("{n}: {w}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        };
        (
            Verdict::Unknown,
            Some(format!(
                "agreement: {} node log(s) inspected, at least two are needed to compare{why}",
                held.len()
            )),
        )
    } else if positions_compared == 0 {
        let spans = nodes
            .iter()
            .map(|(n, s)| match (s.first, s.last) {
                (Some(f), Some(l)) => format!("{n} {f}..={l}"),
                _ => format!("{n} empty"),
            })
            .collect::<Vec<_>>()
            .join(", ");
        (
            Verdict::Unknown,
            Some(format!(
                "agreement: no position is held by two nodes, nothing to compare ({spans})"
            )),
        )
    } else {
        (Verdict::Valid, None)
    };
    Agreement {
        checker: "agreement".into(),
        verdict,
        reason,
        nodes,
        not_inspected,
        positions_compared,
        conflict,
    }
}

/// Parse one node's log as `inspect` prints it: JSON lines `{"index": N, "entry": "…"}`
/// (blank lines skipped). The first malformed line is the error, with its number.
pub fn parse_log(text: &str) -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let e: Entry = serde_json::from_str(line).map_err(|e| {
            format!(
                "line {}: {e} (expected {{\"index\": N, \"entry\": \"…\"}})",
                i + 1
            )
        })?;
        out.push(e);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(entries: &[(u64, &str)]) -> Inspected {
        Inspected::Log(
            entries
                .iter()
                .map(|(i, e)| Entry {
                    index: *i,
                    entry: e.to_string(),
                })
                .collect(),
        )
    }

    fn logs(nodes: Vec<(&str, Inspected)>) -> BTreeMap<String, Inspected> {
        nodes.into_iter().map(|(n, l)| (n.to_string(), l)).collect()
    }

    #[test]
    fn identical_logs_agree_and_count_the_shared_positions() {
        let l = [(1, "noop"), (2, "write k 1"), (3, "cas k 1 2")];
        let a = check(&logs(vec![
            ("n1", log(&l)),
            ("n2", log(&l)),
            ("n3", log(&l)),
        ]));
        assert_eq!(a.verdict, Verdict::Valid);
        assert_eq!(a.positions_compared, 3);
        assert_eq!(a.nodes.len(), 3);
        assert_eq!(a.nodes["n2"].first, Some(1));
        assert_eq!(a.nodes["n2"].last, Some(3));
        assert!(a.conflict.is_none() && a.reason.is_none());
    }

    #[test]
    fn the_first_conflicting_position_is_reported_with_both_nodes_and_entries() {
        let a = check(&logs(vec![
            ("n1", log(&[(1, "a"), (2, "b"), (3, "c"), (4, "d")])),
            ("n2", log(&[(1, "a"), (2, "b"), (3, "c"), (4, "d")])),
            // Differs at 4 and, earlier, at 3: 3 is the one shown.
            ("n3", log(&[(4, "X"), (3, "Y"), (1, "a")])),
        ]));
        assert_eq!(a.verdict, Verdict::Invalid);
        let c = a.conflict.expect("a conflict");
        assert_eq!(c.index, 3);
        assert_eq!(
            c.a,
            Side {
                node: "n1".into(),
                entry: "c".into()
            }
        );
        assert_eq!(
            c.b,
            Side {
                node: "n3".into(),
                entry: "Y".into()
            }
        );
        assert_eq!(c.positions, 2);
        assert_eq!(a.positions_compared, 4);
    }

    #[test]
    fn different_lengths_and_compaction_offsets_compare_only_the_overlap() {
        // n1 compacted up to 100, n2 lagged at 120, n3 holds everything from 1.
        let n1: Vec<(u64, String)> = (101..=150).map(|i| (i, format!("e{i}"))).collect();
        let n2: Vec<(u64, String)> = (1..=120).map(|i| (i, format!("e{i}"))).collect();
        let as_log = |v: &[(u64, String)]| {
            Inspected::Log(
                v.iter()
                    .map(|(i, e)| Entry {
                        index: *i,
                        entry: e.clone(),
                    })
                    .collect(),
            )
        };
        let a = check(&logs(vec![("n1", as_log(&n1)), ("n2", as_log(&n2))]));
        assert_eq!(a.verdict, Verdict::Valid);
        assert_eq!(a.positions_compared, 20, "101..=120 overlap");
        assert_eq!(a.nodes["n1"].first, Some(101));

        // Disjoint spans: nothing compared, so nothing is known.
        let n3: Vec<(u64, String)> = (1..=100).map(|i| (i, format!("e{i}"))).collect();
        let a = check(&logs(vec![("n1", as_log(&n1)), ("n3", as_log(&n3))]));
        assert_eq!(a.verdict, Verdict::Unknown);
        assert_eq!(a.positions_compared, 0);
        let why = a.reason.unwrap();
        assert!(
            why.contains("n1 101..=150") && why.contains("n3 1..=100"),
            "{why}"
        );
    }

    #[test]
    fn a_node_without_a_log_is_named_and_fewer_than_two_logs_is_unknown() {
        let l = [(1, "a"), (2, "b")];
        let a = check(&logs(vec![
            ("n1", log(&l)),
            ("n2", Inspected::Missing("not running".into())),
            ("n3", log(&l)),
        ]));
        assert_eq!(a.verdict, Verdict::Valid);
        assert_eq!(a.not_inspected["n2"], "not running");
        assert_eq!(a.positions_compared, 2);

        let a = check(&logs(vec![
            ("n1", log(&l)),
            ("n2", Inspected::Missing("connection refused".into())),
        ]));
        assert_eq!(a.verdict, Verdict::Unknown);
        let why = a.reason.unwrap();
        assert!(
            why.contains("1 node log(s)") && why.contains("n2: connection refused"),
            "{why}"
        );

        // Empty logs are logs, but hold nothing to compare.
        let a = check(&logs(vec![("n1", log(&[])), ("n2", log(&[]))]));
        assert_eq!(a.verdict, Verdict::Unknown);
        assert!(a.reason.unwrap().contains("n1 empty"));
    }

    #[test]
    fn a_node_contradicting_itself_is_a_conflict_but_not_a_second_holder() {
        let a = check(&logs(vec![
            ("n1", log(&[(1, "a"), (1, "b")])),
            ("n2", log(&[(2, "c")])),
        ]));
        assert_eq!(a.verdict, Verdict::Invalid);
        let c = a.conflict.unwrap();
        assert_eq!((c.a.node.as_str(), c.b.node.as_str()), ("n1", "n1"));
        assert_eq!(a.positions_compared, 0);
    }

    #[test]
    fn logs_parse_from_json_lines_and_bad_lines_are_named() {
        let text = "{\"index\":1,\"entry\":\"a\"}\n\n{\"index\": 2, \"entry\": \"<b>\"}\n";
        let l = parse_log(text).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[1].entry, "<b>");
        let err = parse_log("{\"index\":1,\"entry\":\"a\"}\n{\"index\":\"x\"}\n").unwrap_err();
        assert!(err.starts_with("line 2: "), "{err}");
    }
}
