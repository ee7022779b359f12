//! A campaign file (`campaigns/<name>.yaml`): a matrix of runs — targets × workloads ×
//! nemeses × option sets × repeats — with per-run parameters and the verdict each run is
//! expected to reach.
//!
//! This module reads the file (`deny_unknown_fields`), checks its rules (all violations at
//! once, `file: field: rule`) and expands it into [`Cell`]s and [`RunSlot`]s, in a fixed
//! order with a seed per run. It runs nothing and resolves no target or nemesis file:
//! turning each cell into a [`super::Plan`] and running it is [`crate::campaign`]'s job.

use super::{parse_yaml, Violations};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// Most repeats of one cell: a campaign is a bounded experiment, not a soak test.
pub const MAX_REPEATS: u32 = 1000;
/// Most runs one campaign may expand to.
pub const MAX_RUNS: usize = 10_000;
/// Most series of one cell.
pub const MAX_SERIES: u32 = 100;
/// The base seed when the file names none: campaigns are reproducible experiments.
pub const DEFAULT_SEED: u64 = 1;

/// The verdict a run is expected to reach. Without one a run is expected to be valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    Valid,
    Invalid,
}

impl Expect {
    pub fn as_str(self) -> &'static str {
        match self {
            Expect::Valid => "valid",
            Expect::Invalid => "invalid",
        }
    }
}

/// The campaign file as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignSpec {
    /// Names the campaign directory `reports/campaigns/<name>/`.
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// How long clients run in each run (an option set or override may change it).
    #[serde(with = "humantime_serde")]
    pub time_limit: Duration,
    /// Runs per cell, each with its own seed.
    #[serde(default = "one")]
    pub repeats: u32,
    /// Base seed: repeat `r` (0-based) of every cell runs with seed `seed + r`.
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub nodes: Option<u32>,
    #[serde(default)]
    pub concurrency: Option<u32>,
    #[serde(default)]
    pub rate: Option<f64>,
    pub matrix: MatrixSpec,
    /// Changes for the cells a selector matches (e.g. one option set under one nemesis).
    #[serde(default)]
    pub overrides: Vec<OverrideSpec>,
}

fn one() -> u32 {
    1
}

/// The axes of the matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixSpec {
    /// Target names or paths, as `faultline run --target` takes them.
    pub target: Vec<String>,
    pub workload: Vec<String>,
    pub nemesis: Vec<String>,
    /// Named option sets; none = one set called `default` with no changes.
    #[serde(default)]
    pub options: Vec<OptionSet>,
}

/// A named set of run parameters: target arguments (raftkv's `--bug`), sizes, the
/// expected verdict, and optionally the nemeses it applies to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptionSet {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Extra arguments for every node's start command, e.g. `[--bug, stale-read]`.
    #[serde(default)]
    pub target_args: Vec<String>,
    #[serde(default)]
    pub nodes: Option<u32>,
    #[serde(default)]
    pub concurrency: Option<u32>,
    #[serde(default)]
    pub rate: Option<f64>,
    #[serde(default, with = "humantime_serde")]
    pub time_limit: Option<Duration>,
    #[serde(default)]
    pub repeats: Option<u32>,
    /// Run the cell as this many independent series of `repeats` runs each, every series
    /// ending at its first invalid run (the rest of it is skipped): "a conflict within N
    /// scenarios, in k of m campaigns", as the Twins paper measures a positive control.
    /// Such a cell expects `invalid`; a series that never broke is the unexpected outcome.
    #[serde(default)]
    pub series: Option<u32>,
    #[serde(default)]
    pub expect: Option<Expect>,
    /// Only these of `matrix.nemesis` (a bug is run under the faults that can expose it).
    #[serde(default)]
    pub nemesis: Option<Vec<String>>,
    /// Only these of `matrix.workload` (a bug shows in the histories some workloads make).
    #[serde(default)]
    pub workload: Option<Vec<String>>,
    /// Only these of `matrix.target` (a bug switch is one target's flag).
    #[serde(default)]
    pub target: Option<Vec<String>>,
}

/// A selector (any of target, workload, nemesis, option; absent = any) and what changes
/// for the cells it matches. Later overrides win over earlier ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideSpec {
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub workload: Option<String>,
    #[serde(default)]
    pub nemesis: Option<String>,
    #[serde(default)]
    pub option: Option<String>,
    #[serde(default)]
    pub expect: Option<Expect>,
    #[serde(default, with = "humantime_serde")]
    pub time_limit: Option<Duration>,
    #[serde(default)]
    pub repeats: Option<u32>,
}

impl OverrideSpec {
    fn matches(&self, target: &str, workload: &str, nemesis: &str, option: &str) -> bool {
        let ok = |sel: &Option<String>, v: &str| sel.as_deref().is_none_or(|s| s == v);
        ok(&self.target, target)
            && ok(&self.workload, workload)
            && ok(&self.nemesis, nemesis)
            && ok(&self.option, option)
    }
}

/// One point of the matrix: everything its runs share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// Position in expansion order (rows: target, workload, option; then nemesis).
    pub index: usize,
    pub target: String,
    pub workload: String,
    pub nemesis: String,
    pub option: String,
    pub target_args: Vec<String>,
    pub nodes: Option<u32>,
    pub concurrency: Option<u32>,
    pub rate: Option<f64>,
    #[serde(with = "humantime_serde")]
    pub time_limit: Duration,
    /// Runs per series when `series` is set, else the cell's runs.
    pub repeats: u32,
    /// Independent series, each ending at its first invalid run (the option set's
    /// `series`); absent: `repeats` runs, each judged on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<u32>,
    pub expect: Expect,
}

impl Cell {
    /// Every run slot of the cell: `repeats`, times `series` when set.
    pub fn slots(&self) -> u32 {
        self.repeats * self.series.unwrap_or(1)
    }

    /// How run `repeat` (0-based over the cell's slots) is named in progress lines:
    /// `repeat 3`, or `series 2 scenario 5` in a series cell (both 1-based).
    pub fn run_label(&self, repeat: u32) -> String {
        match self.series_of(repeat) {
            Some(k) => format!(
                "series {} scenario {}",
                k + 1,
                repeat - k * self.repeats + 1
            ),
            None => format!("repeat {}", repeat + 1),
        }
    }

    /// The series run `repeat` (0-based over all the cell's slots) belongs to.
    pub fn series_of(&self, repeat: u32) -> Option<u32> {
        self.series.map(|_| repeat / self.repeats.max(1))
    }

    /// `target / workload / nemesis / option`, for messages.
    pub fn label(&self) -> String {
        format!(
            "{} / {} / {} / {}",
            self.target, self.workload, self.nemesis, self.option
        )
    }
}

/// One run of a cell: which repeat, with which seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSlot {
    pub cell: usize,
    /// 0-based.
    pub repeat: u32,
    pub seed: u64,
}

/// The seed of repeat `repeat` (0-based): the base seed plus the repeat, so every cell
/// runs with the same seeds (1…N by default) and a run is reproduced by
/// `faultline run … --seed S`.
pub fn run_seed(base: u64, repeat: u32) -> u64 {
    base.wrapping_add(u64::from(repeat))
}

/// Names that become parts of file names and run names.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !s.starts_with('.')
}

impl CampaignSpec {
    /// Read and check a campaign file.
    pub fn load(path: &Path) -> Result<CampaignSpec> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read campaign file {}", path.display()))?;
        CampaignSpec::parse(path, &text)
    }

    /// Parse and check campaign text that came from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<CampaignSpec> {
        let spec: CampaignSpec = parse_yaml(path, text)?;
        spec.validate(path)?;
        Ok(spec)
    }

    /// The option sets, or the implicit `default` one.
    pub fn option_sets(&self) -> Vec<OptionSet> {
        if self.matrix.options.is_empty() {
            vec![OptionSet {
                name: "default".into(),
                description: None,
                target_args: Vec::new(),
                nodes: None,
                concurrency: None,
                rate: None,
                time_limit: None,
                repeats: None,
                series: None,
                expect: None,
                nemesis: None,
                workload: None,
                target: None,
            }]
        } else {
            self.matrix.options.clone()
        }
    }

    /// The rules of the file itself (what targets and nemeses exist is checked when each
    /// cell is resolved to a plan).
    pub fn validate(&self, path: &Path) -> Result<()> {
        let mut v = Violations::new(path);
        v.check(
            is_name(&self.name),
            "name",
            "must be 1-64 letters, digits, '-', '_' or '.' (it names a directory)",
        );
        check_time_limit(&mut v, "time_limit", self.time_limit);
        check_repeats(&mut v, "repeats", self.repeats);
        check_sizes(&mut v, "", self.nodes, self.concurrency, self.rate);
        for (field, list) in [
            ("matrix.target", &self.matrix.target),
            ("matrix.workload", &self.matrix.workload),
            ("matrix.nemesis", &self.matrix.nemesis),
        ] {
            v.check(!list.is_empty(), field, "must list at least one entry");
            let unique: BTreeSet<&String> = list.iter().collect();
            v.check(
                unique.len() == list.len(),
                field,
                "lists an entry twice (each would run the same cells again; use repeats)",
            );
            for (i, s) in list.iter().enumerate() {
                v.check(!s.trim().is_empty(), format!("{field}[{i}]"), "is empty");
            }
        }
        let mut names = BTreeSet::new();
        for (i, o) in self.matrix.options.iter().enumerate() {
            let at = format!("matrix.options[{i}]");
            v.check(
                is_name(&o.name),
                format!("{at}.name"),
                "must be 1-64 letters, digits, '-', '_' or '.' (it names runs)",
            );
            v.check(
                names.insert(o.name.as_str()),
                format!("{at}.name"),
                format!("option set {:?} is defined twice", o.name),
            );
            if let Some(t) = o.time_limit {
                check_time_limit(&mut v, &format!("{at}.time_limit"), t);
            }
            if let Some(r) = o.repeats {
                check_repeats(&mut v, &format!("{at}.repeats"), r);
            }
            if let Some(k) = o.series {
                v.check(
                    (1..=MAX_SERIES).contains(&k),
                    format!("{at}.series"),
                    format!("must be between 1 and {MAX_SERIES}"),
                );
                v.check(
                    o.expect == Some(Expect::Invalid),
                    format!("{at}.series"),
                    "a series runs until a run breaks safety, so the option set must say `expect: invalid`",
                );
            }
            check_sizes(&mut v, &format!("{at}."), o.nodes, o.concurrency, o.rate);
            for (field, subset, axis) in [
                ("nemesis", &o.nemesis, &self.matrix.nemesis),
                ("workload", &o.workload, &self.matrix.workload),
                ("target", &o.target, &self.matrix.target),
            ] {
                if let Some(ns) = subset {
                    v.check(
                        !ns.is_empty(),
                        format!("{at}.{field}"),
                        format!(
                            "must list at least one {field} (omit it for all of matrix.{field})"
                        ),
                    );
                    for n in ns {
                        v.check(
                            axis.contains(n),
                            format!("{at}.{field}"),
                            format!("{n:?} is not one of matrix.{field}"),
                        );
                    }
                }
            }
        }
        let options = self.option_sets();
        for (i, o) in self.overrides.iter().enumerate() {
            let at = format!("overrides[{i}]");
            for (field, sel, axis) in [
                ("target", &o.target, &self.matrix.target),
                ("workload", &o.workload, &self.matrix.workload),
                ("nemesis", &o.nemesis, &self.matrix.nemesis),
            ] {
                if let Some(s) = sel {
                    v.check(
                        axis.contains(s),
                        format!("{at}.{field}"),
                        format!("{s:?} is not one of matrix.{field}"),
                    );
                }
            }
            if let Some(s) = &o.option {
                v.check(
                    options.iter().any(|x| &x.name == s),
                    format!("{at}.option"),
                    format!("{s:?} is not the name of an option set"),
                );
            }
            v.check(
                o.expect.is_some() || o.time_limit.is_some() || o.repeats.is_some(),
                at.clone(),
                "changes nothing (give expect, time_limit or repeats)",
            );
            if let Some(t) = o.time_limit {
                check_time_limit(&mut v, &format!("{at}.time_limit"), t);
            }
            if let Some(r) = o.repeats {
                check_repeats(&mut v, &format!("{at}.repeats"), r);
            }
        }
        v.into_result()?;

        // Rules about the expansion: every override selects a cell, the size is bounded.
        let (cells, runs) = self.expand();
        let mut v = Violations::new(path);
        for (i, o) in self.overrides.iter().enumerate() {
            v.check(
                cells
                    .iter()
                    .any(|c| o.matches(&c.target, &c.workload, &c.nemesis, &c.option)),
                format!("overrides[{i}]"),
                "matches no cell of the matrix (an option set limited to other nemeses?)",
            );
        }
        v.check(
            runs.len() <= MAX_RUNS,
            "matrix",
            format!(
                "expands to {} runs; at most {MAX_RUNS} are allowed",
                runs.len()
            ),
        );
        v.into_result()
    }

    /// The cells (rows target × workload × option set, then the option's nemeses) and
    /// the runs in the order they execute: repeat 1 of every cell, then repeat 2 …, so an
    /// interrupted campaign has covered the whole matrix as early as possible.
    pub fn expand(&self) -> (Vec<Cell>, Vec<RunSlot>) {
        let mut cells = Vec::new();
        for target in &self.matrix.target {
            for workload in &self.matrix.workload {
                for o in self.option_sets() {
                    if o.workload.as_ref().is_some_and(|ws| !ws.contains(workload))
                        || o.target.as_ref().is_some_and(|ts| !ts.contains(target))
                    {
                        continue;
                    }
                    for nemesis in &self.matrix.nemesis {
                        if o.nemesis.as_ref().is_some_and(|ns| !ns.contains(nemesis)) {
                            continue;
                        }
                        let mut cell = Cell {
                            index: cells.len(),
                            target: target.clone(),
                            workload: workload.clone(),
                            nemesis: nemesis.clone(),
                            option: o.name.clone(),
                            target_args: o.target_args.clone(),
                            nodes: o.nodes.or(self.nodes),
                            concurrency: o.concurrency.or(self.concurrency),
                            rate: o.rate.or(self.rate),
                            time_limit: o.time_limit.unwrap_or(self.time_limit),
                            repeats: o.repeats.unwrap_or(self.repeats),
                            series: o.series,
                            expect: o.expect.unwrap_or(Expect::Valid),
                        };
                        for ov in &self.overrides {
                            if ov.matches(target, workload, nemesis, &o.name) {
                                cell.expect = ov.expect.unwrap_or(cell.expect);
                                cell.time_limit = ov.time_limit.unwrap_or(cell.time_limit);
                                cell.repeats = ov.repeats.unwrap_or(cell.repeats);
                            }
                        }
                        cells.push(cell);
                    }
                }
            }
        }
        let base = self.seed.unwrap_or(DEFAULT_SEED);
        let most = cells.iter().map(Cell::slots).max().unwrap_or(0);
        let mut runs = Vec::new();
        for repeat in 0..most {
            for c in cells.iter().filter(|c| repeat < c.slots()) {
                runs.push(RunSlot {
                    cell: c.index,
                    repeat,
                    seed: run_seed(base, repeat),
                });
                if runs.len() > MAX_RUNS {
                    // validate() reports it; stop before a typo costs memory.
                    return (cells, runs);
                }
            }
        }
        (cells, runs)
    }
}

fn check_time_limit(v: &mut Violations<'_>, field: &str, t: Duration) {
    v.check(
        t >= Duration::from_secs(1) && t <= Duration::from_secs(86_400),
        field,
        "must be between 1s and 24h",
    );
}

fn check_repeats(v: &mut Violations<'_>, field: &str, r: u32) {
    v.check(
        (1..=MAX_REPEATS).contains(&r),
        field,
        format!("must be between 1 and {MAX_REPEATS}"),
    );
}

/// The same bounds as a run's (spec::plan), checked here so the error names this file.
fn check_sizes(
    v: &mut Violations<'_>,
    at: &str,
    nodes: Option<u32>,
    concurrency: Option<u32>,
    rate: Option<f64>,
) {
    let max = super::plan::MAX_NODES;
    v.check(
        nodes.is_none_or(|n| (1..=max).contains(&n)),
        format!("{at}nodes"),
        format!("must be between 1 and {max}"),
    );
    v.check(
        concurrency.is_none_or(|c| (1..=1000).contains(&c)),
        format!("{at}concurrency"),
        "must be between 1 and 1000",
    );
    v.check(
        rate.is_none_or(|r| r.is_finite() && r > 0.0 && r <= 1_000_000.0),
        format!("{at}rate"),
        "must be a number of ops/s above 0 and at most 1000000",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUGS: &str = "name: bugs
time_limit: 15s
repeats: 2
seed: 10
matrix:
  target: [raftkv]
  workload: [register]
  nemesis: [partition-primaries, clock-partition]
  options:
    - name: stale-read
      target_args: [--bug, stale-read]
      expect: invalid
    - name: lease-read
      target_args: [--bug, lease-read]
      expect: invalid
    - name: correct
      nemesis: [clock-partition]
      repeats: 1
overrides:
  - {option: lease-read, nemesis: partition-primaries, expect: valid}
";

    fn parse(text: &str) -> Result<CampaignSpec> {
        CampaignSpec::parse(Path::new("c.yaml"), text)
    }

    #[test]
    fn expands_rows_then_nemeses_with_option_filters_and_overrides() {
        let (cells, _) = parse(BUGS).unwrap().expand();
        let got: Vec<(&str, &str, Expect, u32)> = cells
            .iter()
            .map(|c| (c.option.as_str(), c.nemesis.as_str(), c.expect, c.repeats))
            .collect();
        assert_eq!(
            got,
            vec![
                ("stale-read", "partition-primaries", Expect::Invalid, 2),
                ("stale-read", "clock-partition", Expect::Invalid, 2),
                ("lease-read", "partition-primaries", Expect::Valid, 2),
                ("lease-read", "clock-partition", Expect::Invalid, 2),
                ("correct", "clock-partition", Expect::Valid, 1),
            ]
        );
        assert_eq!(cells[0].target_args, vec!["--bug", "stale-read"]);
        assert_eq!(cells[0].time_limit, Duration::from_secs(15));
        assert!(cells.iter().enumerate().all(|(i, c)| c.index == i));
    }

    #[test]
    fn runs_go_repeat_by_repeat_with_base_plus_repeat_seeds() {
        let (_, runs) = parse(BUGS).unwrap().expand();
        let got: Vec<(usize, u32, u64)> = runs.iter().map(|r| (r.cell, r.repeat, r.seed)).collect();
        assert_eq!(
            got,
            vec![
                (0, 0, 10),
                (1, 0, 10),
                (2, 0, 10),
                (3, 0, 10),
                (4, 0, 10),
                (0, 1, 11),
                (1, 1, 11),
                (2, 1, 11),
                (3, 1, 11),
            ]
        );
        assert_eq!(run_seed(u64::MAX, 1), 0, "seeds wrap rather than overflow");
    }

    #[test]
    fn without_options_or_seed_there_is_one_default_set_from_seed_1() {
        let c = parse(
            "name: x\ntime_limit: 5s\nmatrix: {target: [raftkv], workload: [register], nemesis: [none]}\n",
        )
        .unwrap();
        let (cells, runs) = c.expand();
        assert_eq!(cells.len(), 1);
        assert_eq!(cells[0].option, "default");
        assert_eq!(cells[0].expect, Expect::Valid);
        assert_eq!(runs[0].seed, DEFAULT_SEED);
    }

    #[test]
    fn unknown_fields_are_named_with_their_line() {
        let err = parse("name: x\ntime_limit: 5s\ncolour: red\nmatrix: {target: [a], workload: [b], nemesis: [c]}\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("c.yaml:3:"), "{err}");
        assert!(err.contains("unknown field `colour`"), "{err}");
        let err = parse("name: x\ntime_limit: 5s\nmatrix: {target: [a], workload: [b], nemesis: [c], options: [{name: o, expect: maybe}]}\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown variant `maybe`"), "{err}");
    }

    #[test]
    fn every_broken_rule_is_reported_with_its_field() {
        let err = parse(
            "name: a/b
time_limit: 0s
repeats: 0
matrix:
  target: [raftkv, raftkv]
  workload: []
  nemesis: [partition]
  options:
    - {name: o, nemesis: [pause], nodes: 99}
    - {name: o}
overrides:
  - {option: nope, expect: valid}
  - {nemesis: partition}
",
        )
        .unwrap_err()
        .to_string();
        for needle in [
            "c.yaml: name: must be",
            "c.yaml: time_limit: must be between 1s and 24h",
            "c.yaml: repeats: must be between 1 and 1000",
            "c.yaml: matrix.target: lists an entry twice",
            "c.yaml: matrix.workload: must list at least one entry",
            "c.yaml: matrix.options[0].nemesis: \"pause\" is not one of matrix.nemesis",
            "c.yaml: matrix.options[0].nodes: must be between 1 and 29",
            "c.yaml: matrix.options[1].name: option set \"o\" is defined twice",
            "c.yaml: overrides[0].option: \"nope\" is not the name of an option set",
            "c.yaml: overrides[1]: changes nothing",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
        }
    }

    #[test]
    fn an_override_that_selects_no_cell_is_an_error() {
        let err = parse(
            "name: x
time_limit: 5s
matrix:
  target: [raftkv]
  workload: [register]
  nemesis: [kill, pause]
  options: [{name: o, nemesis: [kill]}]
overrides: [{option: o, nemesis: pause, expect: invalid}]
",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("overrides[0]: matches no cell"), "{err}");
    }

    #[test]
    fn an_option_set_may_run_under_a_subset_of_the_workloads() {
        let spec = parse(
            "name: x
time_limit: 5s
matrix:
  target: [raftkv]
  workload: [register, lost-writes]
  nemesis: [kill]
  options: [{name: a, workload: [lost-writes]}, {name: b}]
",
        )
        .unwrap();
        let (cells, _) = spec.expand();
        let got: Vec<(&str, &str)> = cells
            .iter()
            .map(|c| (c.option.as_str(), c.workload.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("b", "register"),
                ("a", "lost-writes"),
                ("b", "lost-writes")
            ]
        );
        let err = parse(
            "name: x
time_limit: 5s
matrix: {target: [raftkv], workload: [register], nemesis: [kill], options: [{name: a, workload: [kv]}]}
",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("matrix.options[0].workload: \"kv\" is not one of matrix.workload"),
            "{err}"
        );
    }

    #[test]
    fn an_option_set_may_belong_to_some_targets() {
        let spec = parse(
            "name: x
time_limit: 5s
matrix:
  target: [raftkv, pbftkv]
  workload: [register]
  nemesis: [kill]
  options: [{name: bug, target: [pbftkv], target_args: [--bug, b]}, {name: plain}]
",
        )
        .unwrap();
        let (cells, _) = spec.expand();
        let got: Vec<(&str, &str)> = cells
            .iter()
            .map(|c| (c.target.as_str(), c.option.as_str()))
            .collect();
        assert_eq!(
            got,
            [("raftkv", "plain"), ("pbftkv", "bug"), ("pbftkv", "plain")]
        );
        let err = parse(
            "name: x
time_limit: 5s
matrix: {target: [raftkv], workload: [register], nemesis: [kill], options: [{name: a, target: [etcd]}]}
",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("matrix.options[0].target: \"etcd\" is not one of matrix.target"),
            "{err}"
        );
    }
}
