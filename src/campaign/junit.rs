//! `junit.xml`: the campaign as JUnit test results for CI systems (Jenkins, GitLab,
//! GitHub test reporters), built with `quick-junit` (its writer escapes, drops what XML
//! cannot carry and keeps the counts in step with the cases).
//!
//! `<testsuites>` is the campaign; one `<testsuite>` per target (`<campaign>/<target>`)
//! with the campaign file, hosts, target and base seed as properties; one `<testcase>` per
//! run: classname `<campaign>.<cell>`, name `repeat N seed S`, the run's seed, expectation,
//! verdict and directory as properties and a one-line account in `<system-out>`. A verdict
//! other than the expected one is a `<failure>`, a run without a verdict an `<error>`, a
//! run not yet done `<skipped>` — the same judgement as the matrix page and the exit code.
//!
//! A run whose cluster did not serve again in time after the final heal (exit 4) is judged
//! by its safety verdict, as the campaign judges it; its liveness failure is the property
//! `liveness` = `failed` and a `<system-out>` line, not a failure of its own, so the
//! counts here are the campaign's counts.

use super::dir::{RunState, State};
use super::summary::{assess, Assessment};
use super::Campaign;
use crate::spec::campaign::DEFAULT_SEED;
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use std::time::Duration;

/// XML 1.0 cannot carry U+FFFE and U+FFFF, and quick-junit only drops control characters:
/// text from a target's error output goes through here first.
fn text(s: &str) -> String {
    s.replace(['\u{FFFE}', '\u{FFFF}'], "\u{FFFD}")
}

/// `20261124T005153Z` (the campaign's start, UTC) as the suites' timestamp.
fn timestamp(stamp: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ")
        .ok()
        .map(|t| t.and_utc().fixed_offset())
}

fn seconds(s: Option<f64>) -> Duration {
    Duration::try_from_secs_f64(s.unwrap_or(0.0)).unwrap_or_default()
}

/// What a finished run came to, in one line: the run's `<system-out>`.
fn account(r: &RunState) -> String {
    let verdict = r
        .verdict
        .map_or("no verdict".to_string(), |v| v.to_string());
    let mut t = format!(
        "{verdict} (expected {}, {})",
        r.expect.as_str(),
        assess(r).as_str()
    );
    if let Some(d) = &r.run_dir {
        t.push_str(&format!("; run {d}"));
    }
    if let Some(why) = &r.reason {
        t.push_str(&format!("; unknown because {why}"));
    }
    if let Some(f) = r.faults.filter(|f| f.planned > 0) {
        t.push_str(&format!("; faults landed {} of {}", f.landed, f.planned));
    }
    if r.liveness_failed {
        t.push_str(
            "; liveness failed: the cluster did not serve again in time after the final heal (exit 4; judged by its safety verdict)",
        );
    }
    t
}

fn test_case(c: &Campaign, r: &RunState) -> TestCase {
    let dir = r.run_dir.as_deref().unwrap_or("(no run directory)");
    let verdict = r.verdict.map_or("none".to_string(), |v| v.to_string());
    let status = match assess(r) {
        Assessment::AsExpected => TestCaseStatus::success(),
        Assessment::Pending => {
            let mut s = TestCaseStatus::skipped();
            s.set_message("not run");
            s
        }
        Assessment::Skipped => {
            let mut s = TestCaseStatus::skipped();
            s.set_message("not run: its series had broken safety already");
            s
        }
        Assessment::Unexpected => {
            let what = format!("expected {}, got {verdict}", r.expect.as_str());
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(what.as_str())
                .set_type("unexpected-verdict")
                .set_description(format!("{what}; run {dir}"));
            s
        }
        Assessment::Error => {
            let why = r
                .error
                .as_deref()
                .unwrap_or("the run ended without a verdict");
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
            s.set_message("no verdict")
                .set_type("harness-error")
                .set_description(text(&format!("{why}; run {dir}")));
            s
        }
    };
    let mut t = TestCase::new(format!("repeat {} seed {}", r.repeat + 1, r.seed), status);
    t.set_classname(format!("{}.{}", c.name(), r.name))
        .set_time(seconds(r.seconds));
    t.add_property(("seed", r.seed.to_string().as_str()))
        .add_property(("expect", r.expect.as_str()));
    if assess(r) != Assessment::Pending {
        t.add_property(("verdict", verdict.as_str()));
        if let Some(d) = &r.run_dir {
            t.add_property(("run_dir", d.as_str()));
        }
        if let Some(f) = r.faults.filter(|f| f.planned > 0) {
            t.add_property((
                "faults_landed",
                format!("{}/{}", f.landed, f.planned).as_str(),
            ));
        }
        if r.liveness_failed {
            t.add_property(("liveness", "failed"));
        }
        t.set_system_out(text(&account(r)));
    }
    t
}

/// Render `junit.xml`.
pub fn render(c: &Campaign, state: &State) -> String {
    let started = timestamp(&state.started);
    let target_of = |r: &RunState| {
        c.cells
            .iter()
            .find(|cp| cp.cell.index == r.cell)
            .map_or("(unknown target)", |cp| cp.cell.target.as_str())
    };
    // Suites in the order their targets first appear in the matrix.
    let mut targets: Vec<&str> = Vec::new();
    for r in &state.runs {
        if !targets.contains(&target_of(r)) {
            targets.push(target_of(r));
        }
    }
    let mut report = Report::new(c.name());
    if let Some(t) = started {
        report.set_timestamp(t);
    }
    report.set_time(seconds(Some(
        state.runs.iter().filter_map(|r| r.seconds).sum(),
    )));
    for target in targets {
        let runs: Vec<&RunState> = state
            .runs
            .iter()
            .filter(|r| target_of(r) == target)
            .collect();
        let mut suite = TestSuite::new(format!("{}/{target}", c.name()));
        if let Some(t) = started {
            suite.set_timestamp(t);
        }
        suite
            .set_time(seconds(Some(runs.iter().filter_map(|r| r.seconds).sum())))
            .add_property(("file", c.file.display().to_string().as_str()))
            .add_property(("hosts", super::hosts_arg(&state.hosts)))
            .add_property(("target", target))
            .add_property((
                "seed",
                c.spec.seed.unwrap_or(DEFAULT_SEED).to_string().as_str(),
            ));
        suite.add_test_cases(runs.iter().map(|r| test_case(c, r)));
        report.add_test_suite(suite);
    }
    // Serialising into memory fails only on a writer error, which a Vec never gives.
    report
        .to_string()
        .unwrap_or_else(|e| format!("<!-- junit.xml could not be written: {e} -->\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::summary::tests::finished;
    use crate::checker::Verdict;

    /// The `<testcase>` elements of a rendered junit.xml, parsed.
    fn cases<'a>(doc: &'a roxmltree::Document<'a>) -> Vec<roxmltree::Node<'a, 'a>> {
        doc.descendants()
            .filter(|n| n.has_tag_name("testcase"))
            .collect()
    }

    fn property<'a>(n: roxmltree::Node<'a, '_>, name: &str) -> Option<&'a str> {
        n.children()
            .filter(|p| p.has_tag_name("properties"))
            .flat_map(|p| p.children())
            .find(|p| p.attribute("name") == Some(name))
            .and_then(|p| p.attribute("value"))
    }

    fn child_text<'a>(n: roxmltree::Node<'a, '_>, tag: &str) -> Option<&'a str> {
        n.children()
            .find(|c| c.has_tag_name(tag))
            .and_then(|c| c.text())
    }

    #[test]
    fn failures_errors_and_skips_follow_the_expectations() {
        use Verdict::*;
        let (c, mut s) = finished([Some(Invalid), Some(Valid), Some(Valid), None]);
        s.runs.push(s.runs[0].clone());
        s.runs[4].status = crate::campaign::dir::Status::Pending;
        s.runs[4].seconds = None;
        s.runs[3].error = Some("cannot start <n1> & \u{1}\u{FFFF} friends".into());
        let x = render(&c, &s);
        assert!(
            x.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"ci\" tests=\"5\" skipped=\"1\" failures=\"1\" errors=\"1\""),
            "{x}"
        );
        let doc = roxmltree::Document::parse(&x).unwrap_or_else(|e| panic!("{e}\n{x}"));
        let suites: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("testsuite"))
            .collect();
        assert_eq!(suites.len(), 1, "one target, one suite");
        let suite = suites[0];
        assert_eq!(suite.attribute("name"), Some("ci/raftkv"));
        assert_eq!(suite.attribute("tests"), Some("5"));
        assert_eq!(suite.attribute("failures"), Some("1"));
        assert_eq!(suite.attribute("errors"), Some("1"));
        assert_eq!(suite.attribute("skipped"), Some("1"));
        assert_eq!(suite.attribute("time"), Some("80.000"));
        assert!(
            suite
                .attribute("timestamp")
                .is_some_and(|t| t.starts_with("20")),
            "{x}"
        );
        assert_eq!(property(suite, "hosts"), Some("loopback"));
        assert_eq!(property(suite, "file"), Some("campaigns/ci.yaml"));
        assert_eq!(property(suite, "seed"), Some("1"));

        let cases = cases(&doc);
        assert_eq!(cases.len(), 5);
        let first = cases[0];
        assert_eq!(
            first.attribute("classname"),
            Some("ci.raftkv-register-partition-primaries-stale-read")
        );
        assert_eq!(first.attribute("name"), Some("repeat 1 seed 1"));
        assert_eq!(first.attribute("time"), Some("20.000"));
        assert_eq!(property(first, "verdict"), Some("invalid"));
        assert_eq!(property(first, "expect"), Some("invalid"));
        assert!(first.children().all(|n| !n.has_tag_name("failure")));

        let failure = cases[1]
            .children()
            .find(|n| n.has_tag_name("failure"))
            .unwrap();
        assert_eq!(
            failure.attribute("message"),
            Some("expected invalid, got valid")
        );
        assert_eq!(failure.attribute("type"), Some("unexpected-verdict"));

        let error = cases[3]
            .children()
            .find(|n| n.has_tag_name("error"))
            .unwrap();
        // Markup escaped, a control character dropped, U+FFFF (not XML) replaced.
        assert_eq!(
            error.text(),
            Some("cannot start <n1> & \u{FFFD} friends; run runs/raftkv-register-clock-partition-lease-read/20261124T000000Z")
        );

        let skipped = cases[4]
            .children()
            .find(|n| n.has_tag_name("skipped"))
            .unwrap();
        assert_eq!(skipped.attribute("message"), Some("not run"));
        assert_eq!(child_text(cases[4], "system-out"), None);
        assert_eq!(
            timestamp("20261124T005153Z").unwrap().to_rfc3339(),
            "2026-11-24T00:51:53+00:00"
        );
    }

    #[test]
    fn a_run_whose_liveness_failed_passes_by_its_safety_verdict_and_says_so() {
        use Verdict::*;
        let (c, mut s) = finished([Some(Invalid), Some(Invalid), Some(Valid), Some(Invalid)]);
        // Exit 4: valid history, the cluster did not serve again after the final heal.
        s.runs[2].exit_code = Some(4);
        s.runs[2].liveness_failed = true;
        s.runs[2].faults = Some(crate::campaign::dir::FaultsLanded {
            planned: 3,
            landed: 2,
        });
        let x = render(&c, &s);
        let doc = roxmltree::Document::parse(&x).unwrap_or_else(|e| panic!("{e}\n{x}"));
        let root = doc.root_element();
        assert_eq!(root.attribute("failures"), Some("0"), "{x}");
        assert_eq!(root.attribute("errors"), Some("0"), "{x}");
        let cases = cases(&doc);
        let dead = cases[2];
        assert!(
            dead.children()
                .all(|n| !n.has_tag_name("failure") && !n.has_tag_name("error")),
            "{x}"
        );
        assert_eq!(property(dead, "liveness"), Some("failed"));
        assert_eq!(property(dead, "verdict"), Some("valid"));
        assert_eq!(property(dead, "faults_landed"), Some("2/3"));
        let out = child_text(dead, "system-out").unwrap();
        assert!(
            out.starts_with("valid (expected valid, as expected)"),
            "{out}"
        );
        assert!(out.contains("faults landed 2 of 3"), "{out}");
        assert!(out.contains("liveness failed"), "{out}");
        // The other runs say nothing about liveness.
        for (i, case) in cases.iter().enumerate().filter(|(i, _)| *i != 2) {
            assert_eq!(property(*case, "liveness"), None, "case {i}");
            assert!(
                !child_text(*case, "system-out")
                    .unwrap()
                    .contains("liveness"),
                "case {i}"
            );
        }
    }
}
