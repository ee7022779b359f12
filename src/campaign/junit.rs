//! `junit.xml`: the campaign as JUnit test results for CI systems (Jenkins, GitLab,
//! GitHub test reporters). One `<testsuite>` per campaign, one `<testcase>` per run:
//! classname `<campaign>.<cell>`, name `repeat N seed S`. A verdict other than the
//! expected one is a `<failure>`, a run without a verdict an `<error>`, a run not yet done
//! `<skipped>`.

use super::dir::State;
use super::summary::{assess, Assessment, Counts};
use super::Campaign;
use std::fmt::Write as _;

/// Escape text for XML content and quoted attributes: the HTML escaping (its five
/// entities are XML's too), after replacing what XML 1.0 cannot carry at all (most control
/// characters, e.g. from a target's error output) with U+FFFD.
pub fn xml(s: &str) -> String {
    let carried: String = s
        .chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            c if (c as u32) < 0x20 || matches!(c, '\u{FFFE}' | '\u{FFFF}') => '\u{FFFD}',
            c => c,
        })
        .collect();
    crate::report::escape::html(&carried)
}

/// `20261124T005153Z` → `2026-11-24T00:51:53` (JUnit's timestamp is ISO 8601 without a
/// zone; this one is UTC); anything else unchanged.
fn iso_timestamp(stamp: &str) -> String {
    let shown = crate::report::page::run_time(stamp);
    match shown.strip_suffix(" UTC") {
        Some(t) => t.replacen(' ', "T", 1),
        None => shown,
    }
}

/// Render `junit.xml`.
pub fn render(c: &Campaign, state: &State) -> String {
    let counts = Counts::of(&state.runs);
    let total_s: f64 = state.runs.iter().filter_map(|r| r.seconds).sum();
    let mut out = String::with_capacity(1024 + state.runs.len() * 300);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    // The campaign is one suite: both levels carry the same counts.
    let attrs = format!(
        "name=\"{name}\" tests=\"{t}\" failures=\"{f}\" errors=\"{e}\" skipped=\"{s}\" time=\"{time:.3}\"",
        name = xml(c.name()),
        t = counts.runs,
        f = counts.unexpected,
        e = counts.errors,
        s = counts.pending,
        time = total_s,
    );
    let _ = writeln!(out, "<testsuites {attrs}>");
    let _ = writeln!(
        out,
        "  <testsuite {attrs} timestamp=\"{}\">",
        xml(&iso_timestamp(&state.started))
    );
    let _ = writeln!(
        out,
        "    <properties><property name=\"file\" value=\"{}\"/><property name=\"hosts\" value=\"{}\"/></properties>",
        xml(&c.file.display().to_string()),
        super::hosts_arg(&state.hosts)
    );
    for r in &state.runs {
        let _ = write!(
            out,
            "    <testcase classname=\"{campaign}.{cell}\" name=\"repeat {rep} seed {seed}\" time=\"{time:.3}\"",
            campaign = xml(c.name()),
            cell = xml(&r.name),
            rep = r.repeat + 1,
            seed = r.seed,
            time = r.seconds.unwrap_or(0.0),
        );
        let dir = r.run_dir.as_deref().unwrap_or("(no run directory)");
        let verdict = r.verdict.map_or("none".to_string(), |v| v.to_string());
        match assess(r) {
            Assessment::AsExpected => out.push_str("/>\n"),
            Assessment::Pending => out.push_str("><skipped message=\"not run\"/></testcase>\n"),
            Assessment::Unexpected => {
                let _ = writeln!(
                    out,
                    "><failure message=\"expected {exp}, got {verdict}\" type=\"unexpected-verdict\">{body}</failure></testcase>",
                    exp = r.expect.as_str(),
                    body = xml(&format!("expected {}, got {verdict}; run {dir}", r.expect.as_str())),
                );
            }
            Assessment::Error => {
                let _ =
                    writeln!(
                    out,
                    "><error message=\"no verdict\" type=\"harness-error\">{}</error></testcase>",
                    xml(&format!(
                        "{}; run {dir}",
                        r.error.as_deref().unwrap_or("the run ended without a verdict")
                    )),
                );
            }
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::summary::tests::finished;
    use crate::checker::Verdict;

    #[test]
    fn failures_errors_and_skips_follow_the_expectations() {
        use Verdict::*;
        let (c, mut s) = finished([Some(Invalid), Some(Valid), Some(Valid), None]);
        s.runs.push(s.runs[0].clone());
        s.runs[4].status = crate::campaign::dir::Status::Pending;
        let x = render(&c, &s);
        assert!(x.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"ci\" tests=\"5\" failures=\"1\" errors=\"1\" skipped=\"1\""), "{x}");
        assert!(x.contains("<testcase classname=\"ci.raftkv-register-partition-primaries-stale-read\" name=\"repeat 1 seed 1\" time=\"20.000\"/>"), "{x}");
        assert!(
            x.contains("<failure message=\"expected invalid, got valid\""),
            "{x}"
        );
        assert!(
            x.contains("cannot start &lt;n1&gt; &amp; \u{FFFD} friends"),
            "{x}"
        );
        assert!(x.contains("<skipped message=\"not run\"/>"), "{x}");
        assert_eq!(x.matches("<testcase ").count(), 5);
        assert_eq!(iso_timestamp("20261124T005153Z"), "2026-11-24T00:51:53");
        assert_eq!(x.matches("</testcase>").count(), 3);
    }
}
