//! The run page's Append section (results.json `append`, `checker::append`): elements
//! and states by finding, and the first findings with the ops that show them. Stream
//! names and lists come from the history: escaped by maud and cut short like everything
//! else a page splices in.

use super::agreement::badge;
use super::escape::truncate;
use super::run::RunData;
use crate::checker::append::{AppendReport, Finding};
use crate::checker::{secs, Verdict};
use maud::{html, Markup};

/// Findings listed on the page (results.json keeps up to `checker::append::LISTED`).
const SHOWN: usize = 30;

/// results.json `append`, when the run has one and it reads as one.
pub fn of(run: &RunData) -> Option<AppendReport> {
    run.results
        .get("append")
        .filter(|s| s.is_object())
        .and_then(|s| serde_json::from_value(s.clone()).ok())
}

fn findings(id: &str, list: &[Finding]) -> Markup {
    html! {
        table.grid id=(id) {
            thead { tr { th { "finding" } th { "stream" } th { "op" } th { "when" } th { "what" } } }
            tbody {
                @for f in list.iter().take(SHOWN) {
                    tr {
                        td { (truncate(&f.kind, 40)) }
                        td { code { (truncate(&f.stream, 80)) } }
                        td.num { (f.index) }
                        td { (secs(f.invoked_ns)) " – " (secs(f.completed_ns)) }
                        td { (truncate(&f.text, 600)) }
                    }
                }
            }
        }
    }
}

/// The note at the top of a run the append checker found invalid.
pub fn why_invalid(a: &AppendReport) -> Option<Markup> {
    if a.verdict != Verdict::Invalid {
        return None;
    }
    let first: Vec<Finding> = a.findings.iter().take(3).cloned().collect();
    Some(html! {
        div.why #append-invalid {
            h2 { "Why it is invalid: the streams lost or reordered data" }
            p { (truncate(a.reason.as_deref().unwrap_or("the append checker gave no reason"), 1000)) "." }
            (findings("append-first-findings", &first))
        }
    })
}

/// The Append section: nothing for a run without an append workload.
pub fn section(run: &RunData) -> Markup {
    let Some(a) = of(run) else {
        return html! {};
    };
    let c = &a.counts;
    let rows = [
        ("ok", c.ok, "acknowledged, in the final read"),
        ("lost", c.lost, "acknowledged, absent from the final read"),
        (
            "never-read",
            c.never_read,
            "acknowledged, on a stream no final read succeeded on",
        ),
        (
            "recovered",
            c.recovered,
            "not acknowledged (info), in the final read anyway",
        ),
        (
            "not-appended",
            c.not_appended,
            "every append failed, and it is nowhere",
        ),
        (
            "unexpected",
            c.unexpected,
            "never appended or every append failed, yet present; or a value that is not a list",
        ),
        (
            "diverged",
            c.diverged,
            "states (reads, appends) that are not a prefix of the final read",
        ),
        (
            "stale",
            c.stale,
            "states shorter than an append acknowledged before they began",
        ),
        (
            "duplicated",
            c.duplicated,
            "states holding an element twice",
        ),
    ];
    html! {
        h2 #append { "Append " (badge(a.verdict)) }
        p {
            (a.streams) " stream(s), " (a.elements) " element(s) appended, " (a.acknowledged) " acknowledged; "
            (a.reads) " read(s) during the run, " (a.final_reads) " final read(s); the longest stream held " (a.longest) " element(s). "
            "Stale states " @if a.stale_invalid { "make the run invalid" } @else { "are counted, not judged (append.stale: allowed)" } "."
            @if let Some(r) = &a.reason { " " (truncate(r, 1000)) "." }
        }
        table.grid #append-counts {
            thead { tr { th { "finding" } th.num { "count" } th { "meaning" } } }
            tbody {
                @for (name, n, meaning) in rows {
                    tr { td { (name) } td.num { (n) } td { (meaning) } }
                }
            }
        }
        @if !a.findings.is_empty() {
            h3 { "Findings" }
            (findings("append-findings", &a.findings))
            @if a.findings.len() > SHOWN { p.muted { "The first " (SHOWN) " of " (a.findings.len()) " shown; results.json lists them all." } }
        }
        p.muted { "Each key is a stream: a JSON list of unique elements. An append reads the list and swaps it, by cas, for the list plus its element; the final read reads every stream after the faults healed. Checked in " (a.elapsed_ms) " ms." }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::append::{check, AppendOptions};
    use crate::checker::testkit::build;
    use serde_json::{json, Value};

    fn run_with(append: Value) -> RunData {
        RunData::from_parts(
            std::path::Path::new("/nonexistent"),
            json!({ "append": append }),
            Value::Null,
            Vec::new(),
        )
    }

    #[test]
    fn a_lost_append_is_shown_and_markup_in_stream_names_is_escaped() {
        let k = "k<b>0";
        let k = k.to_string();
        let h = build(&[
            [
                (0, "invoke", "cas", k.clone(), json!([null, [1]]), 0),
                (0, "ok", "cas", k.clone(), json!([null, [1]]), 10),
            ],
            [
                (2, "invoke", "read", k.clone(), Value::Null, 1000),
                (2, "ok", "read", k.clone(), Value::Null, 1001),
            ],
        ]);
        let r = check(
            &h,
            AppendOptions {
                final_from_ns: 1_000_000_000,
                stale_invalid: true,
            },
        );
        let run = run_with(serde_json::to_value(&r).unwrap());
        let html = section(&run).into_string();
        assert!(html.contains("id=\"append-findings\""), "{html}");
        assert!(
            html.contains("k&lt;b&gt;0") && !html.contains("k<b>0"),
            "{html}"
        );
        let why = why_invalid(&of(&run).unwrap()).unwrap().into_string();
        assert!(why.contains("1 of 1 acknowledged append(s) lost"), "{why}");
        assert!(section(&run_with(Value::Null)).into_string().is_empty());
    }
}
