//! The run page's Agreement section (results.json `agreement`, `checker::agreement`): the
//! verdict, the nodes and positions compared, and for a conflict the position with the
//! two entries side by side under their nodes. Entries come from the target: text only,
//! escaped by maud, and cut to a length a page can show.

use super::escape::truncate;
use super::run::RunData;
use crate::checker::agreement::{Agreement, Conflict};
use crate::checker::Verdict;
use maud::{html, Markup};

/// Characters of an entry shown (a digest or an op is short; a hostile one is not).
const MAX_ENTRY_CHARS: usize = 2000;
/// Nodes listed in the table (a run has a handful; results.json is hostile input).
const MAX_NODE_ROWS: usize = 100;

/// results.json `agreement`, when the run has one and it reads as one.
pub fn of(run: &RunData) -> Option<Agreement> {
    run.results
        .get("agreement")
        .filter(|a| a.is_object())
        .and_then(|a| serde_json::from_value(a.clone()).ok())
}

/// The note at the top of an invalid run that agreement made invalid.
pub fn why_invalid(a: &Agreement) -> Option<Markup> {
    let c = a.conflict.as_ref()?;
    Some(html! {
        div.why #agreement-conflict {
            h2 { "Why it is invalid: the nodes' committed logs disagree" }
            p {
                "At index " (c.index) ", " code { (c.a.node) } " and " code { (c.b.node) }
                " committed different entries"
                @if c.positions > 1 { " (" (c.positions) " conflicting positions in all)" }
                ". A fork like this one can escape the linearizability checker when no client reads both sides."
            }
            (conflict_table(c))
        }
    })
}

fn conflict_table(c: &Conflict) -> Markup {
    html! {
        table.grid.conflict {
            thead { tr { th.num { "index" } th { (c.a.node) } th { (c.b.node) } } }
            tbody { tr {
                td.num { (c.index) }
                td { code { (truncate(&c.a.entry, MAX_ENTRY_CHARS)) } }
                td { code { (truncate(&c.b.entry, MAX_ENTRY_CHARS)) } }
            } }
        }
    }
}

pub(super) fn badge(v: Verdict) -> Markup {
    let class = match v {
        Verdict::Valid => "valid",
        Verdict::Invalid => "invalid",
        Verdict::Unknown => "unknown",
    };
    html! { span.badge.(class) { (v.to_string().to_uppercase()) } }
}

/// The Agreement section: nothing for a run without inspect (`agreement` null or absent).
pub fn section(run: &RunData) -> Markup {
    let Some(a) = of(run) else {
        return html! {};
    };
    html! {
        h2 #agreement { "Agreement " (badge(a.verdict)) }
        p {
            "The committed logs of " (a.nodes.len()) " node(s) were compared at "
            (a.positions_compared) " position(s) held by two nodes or more."
            @if let Some(r) = &a.reason { " " (truncate(r, 1000)) }
        }
        @if let Some(c) = &a.conflict {
            p { "First conflict, at index " (c.index) ":" }
            (conflict_table(c))
        }
        table.grid #agreement-nodes {
            thead { tr { th { "node" } th.num { "entries" } th.num { "first" } th.num { "last" } th { "not inspected because" } } }
            tbody {
                @for (node, s) in a.nodes.iter().take(MAX_NODE_ROWS) {
                    tr {
                        td { (node) } td.num { (s.entries) }
                        td.num { (s.first.map_or("—".into(), |f| f.to_string())) }
                        td.num { (s.last.map_or("—".into(), |l| l.to_string())) }
                        td {}
                    }
                }
                @for (node, why) in a.not_inspected.iter().take(MAX_NODE_ROWS) {
                    tr {
                        td { (node) } td.num { "—" } td.num { "—" } td.num { "—" }
                        td { (truncate(why, 500)) }
                    }
                }
            }
        }
        p.muted { "Each node's log is in " code { "logs/<node>.jsonl" } ": one line per committed entry, as the target's inspect reported it. Positions only some nodes hold (a lagging node, entries compacted into a snapshot) are compared among those that hold them." }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::agreement::{check, Entry, Inspected};
    use std::collections::BTreeMap;

    fn run_with(agreement: serde_json::Value) -> RunData {
        RunData {
            dir: "/nonexistent".into(),
            results: serde_json::json!({ "agreement": agreement }),
            plan: serde_json::Value::Null,
            ops: Vec::new(),
            calls: Vec::new(),
            fs: Vec::new(),
            faults: Vec::new(),
            clocks: BTreeMap::new(),
            end_ns: 0,
            wire: None,
        }
    }

    #[test]
    fn a_conflict_shows_both_entries_under_their_nodes_escaped() {
        let log = |e: &str| {
            Inspected::Log(vec![Entry {
                index: 7,
                entry: e.into(),
            }])
        };
        let logs = BTreeMap::from([
            ("n1".to_string(), log("write \"k\" 1")),
            ("n<2>".to_string(), log("<script>alert(1)</script>")),
        ]);
        let a = check(&logs);
        let run = run_with(serde_json::to_value(&a).unwrap());
        let page = section(&run).into_string();
        assert!(
            page.contains("Agreement <span class=\"badge invalid\">INVALID"),
            "{page}"
        );
        assert!(page.contains("<th>n1</th><th>n&lt;2&gt;</th>"), "{page}");
        assert!(page.contains("write &quot;k&quot; 1"), "{page}");
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{page}"
        );
        assert!(!page.contains("<script>"), "{page}");
        let top = why_invalid(&of(&run).unwrap()).unwrap().into_string();
        assert!(top.contains("At index 7"), "{top}");
    }

    #[test]
    fn no_agreement_draws_nothing_and_a_valid_one_counts_what_was_compared() {
        assert_eq!(
            section(&run_with(serde_json::Value::Null)).into_string(),
            ""
        );
        let l = Inspected::Log(vec![Entry {
            index: 1,
            entry: "a".into(),
        }]);
        let logs = BTreeMap::from([
            ("n1".to_string(), l.clone()),
            ("n2".to_string(), l),
            ("n3".to_string(), Inspected::Missing("not running".into())),
        ]);
        let page = section(&run_with(serde_json::to_value(check(&logs)).unwrap())).into_string();
        assert!(page.contains("badge valid"), "{page}");
        assert!(
            page.contains("2 node(s) were compared at 1 position(s)"),
            "{page}"
        );
        assert!(page.contains("not running"), "{page}");
    }
}
