//! What a campaign came to: each run judged against its expected verdict, counts per
//! cell, the campaign's outcome and exit code, and `summary.json`.
//!
//! Exit code (the worst over all runs, in this order of precedence):
//!
//! | code | when |
//! | --- | --- |
//! | 3 | a run ended in a harness error, or runs are left (interrupted campaign): the results are incomplete |
//! | 1 | a run's verdict contradicts its expectation (invalid where valid was expected, or a bug not caught: valid where invalid was expected) |
//! | 2 | a run came out unknown (checker budget) and nothing contradicted an expectation |
//! | 0 | every run reached its expected verdict — also when that verdict is invalid |

use super::dir::{RunState, State, Status};
use super::Campaign;
use crate::checker::Verdict;
use serde::Serialize;
use serde_json::{json, Value};
use std::path::Path;

/// A run judged against its expectation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Assessment {
    /// Not run yet (or interrupted, to be redone).
    Pending,
    AsExpected,
    /// A verdict other than the expected one.
    Unexpected,
    /// Finished without a verdict.
    Error,
    /// Not run: its series had broken already.
    Skipped,
}

impl Assessment {
    pub fn as_str(self) -> &'static str {
        match self {
            Assessment::Pending => "pending",
            Assessment::AsExpected => "as expected",
            Assessment::Unexpected => "not as expected",
            Assessment::Error => "error",
            Assessment::Skipped => "skipped",
        }
    }
}

/// A run of a series is judged with its series ([`series_of`]): a scenario that did not
/// break is what most scenarios do, so valid and invalid are both as expected there, and
/// only an unknown verdict is not.
pub fn assess(r: &RunState) -> Assessment {
    match (r.status, r.verdict) {
        (Status::Skipped, _) => Assessment::Skipped,
        (Status::Pending | Status::Running, _) => Assessment::Pending,
        (Status::Done, None) => Assessment::Error,
        (Status::Done, Some(Verdict::Valid | Verdict::Invalid)) if r.series.is_some() => {
            Assessment::AsExpected
        }
        (Status::Done, Some(v)) if v == Verdict::from(r.expect) => Assessment::AsExpected,
        (Status::Done, Some(_)) => Assessment::Unexpected,
    }
}

/// The campaign as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    AsExpected,
    NotAsExpected,
    /// Errors or runs left: nothing can be said about the whole.
    Incomplete,
}

/// The campaign's outcome and exit code (see the module doc).
pub fn outcome(state: &State) -> (Outcome, u8) {
    let mut code = 0;
    for r in &state.runs {
        let c = match (assess(r), r.verdict) {
            (Assessment::Pending | Assessment::Error, _) => 3,
            (Assessment::Unexpected, Some(Verdict::Unknown)) => 2,
            (Assessment::Unexpected, _) => 1,
            (Assessment::AsExpected | Assessment::Skipped, _) => 0,
        };
        code = worse(code, c);
    }
    // A series that ran every run without breaking missed what it was run to find.
    for s in series_of(state) {
        if s.broken_at.is_none() && s.finished {
            code = worse(code, 1);
        }
    }
    let outcome = match code {
        0 => Outcome::AsExpected,
        3 => Outcome::Incomplete,
        _ => Outcome::NotAsExpected,
    };
    (outcome, code)
}

/// 3 beats 1 beats 2 beats 0.
fn worse(a: u8, b: u8) -> u8 {
    let rank = |c: u8| match c {
        3 => 3,
        1 => 2,
        2 => 1,
        _ => 0,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

/// Counts over one cell's runs (or the whole campaign).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counts {
    pub runs: usize,
    pub as_expected: usize,
    pub unexpected: usize,
    pub errors: usize,
    pub pending: usize,
    /// Not run, their series having broken (not counted in `runs`).
    pub skipped: usize,
    pub valid: usize,
    pub invalid: usize,
    pub unknown: usize,
}

impl Counts {
    pub fn of<'a>(runs: impl IntoIterator<Item = &'a RunState>) -> Counts {
        let mut c = Counts::default();
        for r in runs {
            if r.status == Status::Skipped {
                c.skipped += 1;
                continue;
            }
            c.runs += 1;
            match assess(r) {
                Assessment::Pending => c.pending += 1,
                Assessment::AsExpected => c.as_expected += 1,
                Assessment::Unexpected => c.unexpected += 1,
                Assessment::Error => c.errors += 1,
                Assessment::Skipped => {}
            }
            match (r.status, r.verdict) {
                (Status::Done, Some(Verdict::Valid)) => c.valid += 1,
                (Status::Done, Some(Verdict::Invalid)) => c.invalid += 1,
                (Status::Done, Some(Verdict::Unknown)) => c.unknown += 1,
                _ => {}
            }
        }
        c
    }
}

/// The median of a figure over the finished runs that have it (the middle pair's mean
/// for an even count).
fn median_of<'a>(
    runs: impl IntoIterator<Item = &'a RunState>,
    figure: impl Fn(&RunState) -> Option<f64>,
) -> Option<f64> {
    let mut t: Vec<f64> = runs
        .into_iter()
        .filter(|r| r.status == Status::Done)
        .filter_map(figure)
        .filter(|x| x.is_finite())
        .collect();
    if t.is_empty() {
        return None;
    }
    t.sort_by(f64::total_cmp);
    let m = t.len() / 2;
    Some(if t.len() % 2 == 1 {
        t[m]
    } else {
        (t[m - 1] + t[m]) / 2.0
    })
}

/// Median seconds to the first anomaly over the runs that have one.
pub fn median_first_anomaly_s<'a>(runs: impl IntoIterator<Item = &'a RunState>) -> Option<f64> {
    median_of(runs, |r| r.first_anomaly_s)
}

/// Median peer packets and bytes per acknowledged write over the runs whose links were
/// counted (`None` each when no run has the figure).
pub fn median_wire_per_write<'a>(
    runs: impl IntoIterator<Item = &'a RunState> + Clone,
) -> (Option<f64>, Option<f64>) {
    (
        median_of(runs.clone(), |r| r.wire?.messages_per_write),
        median_of(runs, |r| r.wire?.bytes_per_write),
    )
}

/// Finished runs (scenarios) per minute of wall time, from the first run's start to the
/// last one's end; `None` before any run finished.
pub fn scenarios_per_minute(state: &State) -> Option<f64> {
    let spans: Vec<(f64, f64)> = state
        .runs
        .iter()
        .filter(|r| r.status == Status::Done)
        .filter_map(|r| Some((r.ended_unix_s? - r.seconds?, r.ended_unix_s?)))
        .collect();
    let first = spans.iter().map(|s| s.0).reduce(f64::min)?;
    let last = spans.iter().map(|s| s.1).reduce(f64::max)?;
    let minutes = (last - first) / 60.0;
    (minutes > 0.0).then(|| spans.len() as f64 / minutes)
}

/// The first run, in execution order, that broke safety (invalid): with its cell file and
/// seed, `faultline run <cell file> --seed <seed>` runs the same scenario again.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FirstBroken {
    /// 1-based, as the page shows runs.
    pub run: usize,
    pub cell: String,
    pub cell_file: String,
    pub seed: u64,
    /// The oracles that judged it invalid (`linearizability`, `agreement`).
    pub broken_by: Vec<String>,
    pub run_dir: Option<String>,
}

pub fn first_broken(state: &State) -> Option<FirstBroken> {
    let r = state
        .runs
        .iter()
        .filter(|r| r.status == Status::Done && r.verdict == Some(Verdict::Invalid))
        .min_by_key(|r| r.index)?;
    Some(FirstBroken {
        run: r.index + 1,
        cell: r.name.clone(),
        cell_file: super::dir::cell_file(std::path::Path::new(""), &r.name)
            .display()
            .to_string(),
        seed: r.seed,
        broken_by: r.broken_by.clone(),
        run_dir: r.run_dir.clone(),
    })
}

/// The summary's line about scenarios: how many per minute, and the first that broke.
pub fn scenarios_line(state: &State) -> String {
    let rate = match scenarios_per_minute(state) {
        Some(r) => format!("{r:.1} scenarios/min"),
        None => "no scenario finished".to_string(),
    };
    let invalid = Counts::of(&state.runs).invalid;
    match first_broken(state) {
        Some(f) => format!(
            "{rate}; {invalid} broke safety, first run {} ({}, seed {}, {}): faultline run {} --seed {}",
            f.run,
            f.cell,
            f.seed,
            if f.broken_by.is_empty() {
                "invalid".to_string()
            } else {
                format!("invalid by {}", f.broken_by.join(" and "))
            },
            f.cell_file,
            f.seed
        ),
        None => format!("{rate}; none broke safety"),
    }
}

/// One series of a cell run as series: where it broke, and what it took to get there.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesResult {
    pub cell: usize,
    /// 0-based.
    pub series: u32,
    /// The 1-based position, within the series, of its first invalid run.
    pub broken_at: Option<u32>,
    /// Runs that finished, up to and including the break.
    pub runs: u32,
    /// Wall time of those runs, summed: what finding the break cost, run after run.
    pub minutes: f64,
    /// Every run is done or skipped: the series has its answer.
    pub finished: bool,
}

/// Every series of the campaign's series cells, in (cell, series) order.
pub fn series_of(state: &State) -> Vec<SeriesResult> {
    let mut by: std::collections::BTreeMap<(usize, u32), Vec<&RunState>> = Default::default();
    for r in &state.runs {
        if let Some(k) = r.series {
            by.entry((r.cell, k)).or_default().push(r);
        }
    }
    by.into_iter()
        .map(|((cell, series), mut runs)| {
            runs.sort_by_key(|r| r.repeat);
            let first = runs.first().map_or(0, |r| r.repeat);
            let broke = runs
                .iter()
                .find(|r| r.status == Status::Done && r.verdict == Some(Verdict::Invalid));
            let upto: Vec<&&RunState> = runs
                .iter()
                .filter(|r| r.status == Status::Done)
                .filter(|r| broke.is_none_or(|b| r.repeat <= b.repeat))
                .collect();
            SeriesResult {
                cell,
                series,
                broken_at: broke.map(|b| b.repeat - first + 1),
                runs: upto.len() as u32,
                minutes: upto.iter().filter_map(|r| r.seconds).sum::<f64>() / 60.0,
                finished: runs
                    .iter()
                    .all(|r| matches!(r.status, Status::Done | Status::Skipped)),
            }
        })
        .collect()
}

/// A series cell's line: how many series broke, and the scenarios and minutes it took.
pub fn series_line(all: &[SeriesResult], cell: usize) -> Option<String> {
    let s: Vec<&SeriesResult> = all.iter().filter(|s| s.cell == cell).collect();
    if s.is_empty() {
        return None;
    }
    let broke: Vec<&&SeriesResult> = s.iter().filter(|x| x.broken_at.is_some()).collect();
    let done = s.iter().filter(|x| x.finished).count();
    let mut line = format!(
        "{} of {} series broke safety ({} finished)",
        broke.len(),
        s.len(),
        done
    );
    if !broke.is_empty() {
        let most_runs = broke.iter().filter_map(|x| x.broken_at).max().unwrap_or(0);
        let most_min = broke.iter().map(|x| x.minutes).fold(0.0, f64::max);
        let mut at: Vec<u32> = broke.iter().filter_map(|x| x.broken_at).collect();
        at.sort_unstable();
        line.push_str(&format!(
            "; scenarios to the break: median {}, at most {most_runs}; at most {most_min:.1} min of runs",
            at[at.len() / 2]
        ));
    }
    Some(line)
}

/// The runs of cell `cell`, in repeat order.
pub fn runs_of(state: &State, cell: usize) -> Vec<&RunState> {
    let mut runs: Vec<&RunState> = state.runs.iter().filter(|r| r.cell == cell).collect();
    runs.sort_by_key(|r| r.repeat);
    runs
}

/// `summary.json`: the campaign, its outcome, per-cell counts and every run.
pub fn json(c: &Campaign, state: &State, dir: &Path) -> Value {
    let (outcome, exit_code) = outcome(state);
    let all_series = series_of(state);
    let cells: Vec<Value> = c
        .cells
        .iter()
        .map(|cp| {
            let runs = runs_of(state, cp.cell.index);
            let cell = &cp.cell;
            let (messages, bytes) = median_wire_per_write(runs.iter().copied());
            json!({
                "name": cp.name,
                "target": cell.target,
                "workload": cell.workload,
                "nemesis": cell.nemesis,
                "option": cell.option,
                "target_args": cell.target_args,
                "expect": cell.expect,
                "time_limit_s": cell.time_limit.as_secs_f64(),
                "counts": Counts::of(runs.iter().copied()),
                "median_first_anomaly_s": median_first_anomaly_s(runs.iter().copied()),
                "median_messages_per_write": messages,
                "median_bytes_per_write": bytes,
                "series": cell.series.map(|_| {
                    all_series
                        .iter()
                        .filter(|s| s.cell == cell.index)
                        .collect::<Vec<_>>()
                }),
            })
        })
        .collect();
    let runs: Vec<Value> = state
        .runs
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
            if let Value::Object(m) = &mut v {
                m.insert("assessment".into(), json!(assess(r)));
            }
            v
        })
        .collect();
    json!({
        "campaign": c.name(),
        "description": c.spec.description,
        "file": c.file,
        "dir": dir,
        "hosts": state.hosts,
        "started": state.started,
        "updated": crate::store::timestamp(),
        "finished": state.finished(),
        "outcome": outcome,
        "exit_code": exit_code,
        "counts": Counts::of(&state.runs),
        "scenarios_per_minute": scenarios_per_minute(state),
        "first_broken": first_broken(state),
        "cells": cells,
        "runs": runs,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::spec::campaign::Expect;

    pub(crate) const CI: &str = "name: ci
time_limit: 15s
matrix:
  target: [raftkv]
  workload: [register]
  nemesis: [partition-primaries, clock-partition]
  options:
    - {name: stale-read, target_args: [--bug, stale-read], expect: invalid}
    - {name: lease-read, target_args: [--bug, lease-read], expect: invalid}
overrides:
  - {option: lease-read, nemesis: partition-primaries, expect: valid}
";

    /// The CI campaign with its four runs finished as `verdicts` (None: harness error).
    pub(crate) fn finished(verdicts: [Option<Verdict>; 4]) -> (Campaign, State) {
        let c = Campaign::unresolved(Path::new("campaigns/ci.yaml"), CI).unwrap();
        let mut s = State::new(&c, &crate::spec::HostsChoice::Loopback);
        for (r, v) in s.runs.iter_mut().zip(verdicts) {
            r.status = Status::Done;
            r.verdict = v;
            r.exit_code = Some(v.map_or(3, |v| i32::from(v.exit_code())));
            r.run_dir = Some(format!("runs/{}/20261124T000000Z", r.name));
            r.seconds = Some(20.0);
            r.first_anomaly_s = (v == Some(Verdict::Invalid)).then_some(7.0);
            r.error = v
                .is_none()
                .then(|| "cannot start <n1> & \u{1} friends".into());
        }
        (c, s)
    }

    #[test]
    fn scenarios_per_minute_and_the_first_run_that_broke_safety() {
        let (_, mut s) = finished([
            Some(Verdict::Valid),
            None,
            Some(Verdict::Invalid),
            Some(Verdict::Invalid),
        ]);
        // Two at a time, 20 s each: runs end at 20, 20, 40, 40 s after the first start.
        for (i, r) in s.runs.iter_mut().enumerate() {
            r.ended_unix_s = Some(1000.0 + 20.0 * (1 + i / 2) as f64);
        }
        s.runs[2].broken_by = vec!["agreement".into()];
        s.runs[3].broken_by = vec!["linearizability".into()];
        let rate = scenarios_per_minute(&s).unwrap();
        assert!((rate - 6.0).abs() < 1e-9, "4 runs in 40 s: {rate}");
        let f = first_broken(&s).unwrap();
        assert_eq!((f.run, f.seed), (3, s.runs[2].seed));
        assert_eq!(f.cell_file, format!("cells/{}.yaml", s.runs[2].name));
        let line = scenarios_line(&s);
        assert!(
            line.starts_with("6.0 scenarios/min; 2 broke safety, first run 3 ("),
            "{line}"
        );
        assert!(
            line.contains("invalid by agreement): faultline run cells/"),
            "{line}"
        );
        let (_, clean) = finished([Some(Verdict::Valid); 4]);
        assert_eq!(first_broken(&clean), None);
        assert_eq!(scenarios_per_minute(&clean), None, "no end times recorded");
        assert!(scenarios_line(&clean).ends_with("none broke safety"));
    }

    const SERIES: &str = "name: control
time_limit: 15s
repeats: 3
matrix:
  target: [pbftkv]
  workload: [register]
  nemesis: [twins-2]
  options:
    - {name: two-twins, series: 2, expect: invalid}
";

    #[test]
    fn a_series_ends_at_its_first_break_and_one_that_never_broke_is_not_as_expected() {
        use Verdict::*;
        let c = Campaign::unresolved(Path::new("campaigns/control.yaml"), SERIES).unwrap();
        let mut s = State::new(&c, &crate::spec::HostsChoice::Loopback);
        assert_eq!(s.runs.len(), 6, "2 series of 3");
        let series: Vec<Option<u32>> = s.runs.iter().map(|r| r.series).collect();
        assert_eq!(series, [0, 0, 0, 1, 1, 1].map(Some));
        let seeds: Vec<u64> = s.runs.iter().map(|r| r.seed).collect();
        assert_eq!(
            seeds,
            [1, 2, 3, 4, 5, 6],
            "every scenario of every series is its own"
        );
        let finish = |s: &mut State, i: usize, v: Verdict| {
            s.runs[i].status = Status::Done;
            s.runs[i].verdict = Some(v);
            s.runs[i].seconds = Some(30.0);
            s.skip_broken_series()
        };
        // Series 1 breaks at its second scenario: its third is skipped.
        assert_eq!(finish(&mut s, 0, Valid), 0);
        assert_eq!(finish(&mut s, 1, Invalid), 1);
        assert_eq!(s.runs[2].status, Status::Skipped);
        assert_eq!(
            assess(&s.runs[0]),
            Assessment::AsExpected,
            "judged with its series"
        );
        assert_eq!(outcome(&s).0, Outcome::Incomplete, "series 2 has not run");
        // Series 2 runs out without a break: the bug was not found.
        for i in 3..6 {
            finish(&mut s, i, Valid);
        }
        assert!(s.finished());
        assert_eq!(outcome(&s), (Outcome::NotAsExpected, 1));
        let all = series_of(&s);
        assert_eq!(all[0].broken_at, Some(2));
        assert_eq!(all[0].runs, 2);
        assert!((all[0].minutes - 1.0).abs() < 1e-9, "{}", all[0].minutes);
        assert_eq!((all[1].broken_at, all[1].runs), (None, 3));
        let line = series_line(&all, 0).unwrap();
        assert_eq!(
            line,
            "1 of 2 series broke safety (2 finished); scenarios to the break: median 2, at most 2; at most 1.0 min of runs"
        );
        let counts = Counts::of(&s.runs);
        assert_eq!((counts.runs, counts.skipped, counts.invalid), (5, 1, 1));
        // Both series broke: as expected.
        s.runs[5].verdict = Some(Invalid);
        assert_eq!(outcome(&s), (Outcome::AsExpected, 0));
    }

    #[test]
    fn a_series_must_expect_invalid() {
        let text = SERIES.replace("expect: invalid", "expect: valid");
        let err = Campaign::unresolved(Path::new("c.yaml"), &text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("matrix.options[0].series"), "{err}");
        assert!(err.contains("expect: invalid"), "{err}");
    }

    #[test]
    fn invalid_as_expected_exits_0() {
        use Verdict::*;
        let (_, s) = finished([Some(Invalid), Some(Invalid), Some(Valid), Some(Invalid)]);
        assert_eq!(s.runs[2].expect, Expect::Valid);
        assert_eq!(outcome(&s), (Outcome::AsExpected, 0));
    }

    #[test]
    fn the_exit_code_is_the_worst_run_error_then_contradiction_then_unknown() {
        use Verdict::*;
        let (_, s) = finished([Some(Valid), Some(Invalid), Some(Valid), Some(Invalid)]);
        assert_eq!(outcome(&s), (Outcome::NotAsExpected, 1), "a bug not caught");
        let (_, s) = finished([Some(Unknown), Some(Invalid), Some(Valid), Some(Invalid)]);
        assert_eq!(outcome(&s), (Outcome::NotAsExpected, 2));
        let (_, s) = finished([Some(Unknown), Some(Valid), Some(Valid), Some(Invalid)]);
        assert_eq!(outcome(&s), (Outcome::NotAsExpected, 1), "1 beats 2");
        let (_, s) = finished([None, Some(Valid), Some(Valid), Some(Invalid)]);
        assert_eq!(outcome(&s), (Outcome::Incomplete, 3), "3 beats 1");
        let (_, mut s) = finished([Some(Invalid); 4]);
        s.runs[3].status = Status::Pending;
        assert_eq!(outcome(&s).1, 3, "an interrupted campaign");
    }

    #[test]
    fn summary_json_counts_cells_and_judges_every_run() {
        use Verdict::*;
        let (c, s) = finished([Some(Invalid), Some(Valid), Some(Valid), None]);
        let j = json(&c, &s, Path::new("reports/campaigns/ci/x"));
        assert_eq!(j["campaign"], "ci");
        assert_eq!(j["exit_code"], 3);
        assert_eq!(j["outcome"], "incomplete");
        assert_eq!(j["counts"]["runs"], 4);
        assert_eq!(j["counts"]["as_expected"], 2);
        assert_eq!(j["counts"]["unexpected"], 1);
        assert_eq!(j["counts"]["errors"], 1);
        let cells = j["cells"].as_array().unwrap();
        assert_eq!(cells.len(), 4);
        assert_eq!(
            cells[0]["name"],
            "raftkv-register-partition-primaries-stale-read"
        );
        assert_eq!(cells[0]["expect"], "invalid");
        assert_eq!(cells[0]["median_first_anomaly_s"], 7.0);
        assert_eq!(cells[2]["expect"], "valid");
        assert_eq!(j["runs"][1]["assessment"], "unexpected");
        assert_eq!(j["runs"][1]["seed"], 1);
    }

    #[test]
    fn summary_json_gives_each_cell_the_median_wire_cost_of_a_write() {
        use crate::campaign::dir::WireCost;
        let (c, mut s) = finished([Some(Verdict::Invalid); 4]);
        let cost = |m: f64, b: f64| {
            Some(WireCost {
                messages_per_write: Some(m),
                bytes_per_write: Some(b),
            })
        };
        // Two repeats of the first cell, one with no write acknowledged.
        s.runs[0].wire = cost(16.0, 2000.0);
        let mut again = s.runs[0].clone();
        again.index = 4;
        again.repeat = 1;
        again.wire = Some(WireCost {
            messages_per_write: None,
            bytes_per_write: None,
        });
        s.runs.push(again);
        let mut third = s.runs[0].clone();
        third.index = 5;
        third.repeat = 2;
        third.wire = cost(20.0, 3000.0);
        s.runs.push(third);
        s.runs[1].wire = cost(9.0, 900.0);
        let j = json(&c, &s, Path::new("reports/campaigns/ci/x"));
        let cells = j["cells"].as_array().unwrap();
        assert_eq!(cells[0]["median_messages_per_write"], 18.0);
        assert_eq!(cells[0]["median_bytes_per_write"], 2500.0);
        assert_eq!(cells[1]["median_messages_per_write"], 9.0);
        // A cell whose links were not counted (loopback): null, not 0.
        assert_eq!(cells[2]["median_messages_per_write"], Value::Null);
        assert_eq!(cells[2]["median_bytes_per_write"], Value::Null);
        assert_eq!(j["runs"][0]["wire"]["messages_per_write"], 16.0);
        assert!(
            j["runs"][2].get("wire").is_none(),
            "absent, as in older state files"
        );
        // An older state.json entry (no `wire`) still reads.
        let mut old = serde_json::to_value(&s.runs[2]).unwrap();
        old.as_object_mut().unwrap().remove("wire");
        let back: RunState = serde_json::from_value(old).unwrap();
        assert_eq!(back.wire, None);
    }

    #[test]
    fn the_median_first_anomaly_averages_the_middle_pair() {
        let (_, mut s) = finished([Some(Verdict::Invalid); 4]);
        for (r, t) in s.runs.iter_mut().zip([4.0, 9.0, 1.0, 7.0]) {
            r.first_anomaly_s = Some(t);
        }
        assert_eq!(median_first_anomaly_s(&s.runs), Some(5.5));
        assert_eq!(median_first_anomaly_s(&s.runs[..1]), Some(4.0));
    }
}
