//! The campaign directory `<store>/campaigns/<name>/<timestamp>/` and its state file.
//!
//! | file | what |
//! | --- | --- |
//! | `source.yaml` | the campaign file as it was read: the same text later means the same campaign (resume) |
//! | `campaign.yaml` | the resolved matrix: every cell with its parameters, expectation and seeds |
//! | `cells/<cell>.yaml` | the test file each child `faultline run` of that cell gets |
//! | `state.json` | one entry per run: cell, repeat, seed, status, verdict, run dir, seconds |
//! | `runs/<cell>/<timestamp>/` | the runs themselves (ordinary run directories) |
//! | `index.html`, `summary.json`, `junit.xml` | the outputs, rewritten as runs end |
//!
//! The directory is locked (`flock` on `.lock`) while a campaign process works in it, so
//! two invocations never run the same campaign twice at once.

use super::Campaign;
use crate::checker::Verdict;
use crate::spec::campaign::{Expect, RunSlot};
use crate::spec::HostsChoice;
use crate::store;
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::path::{Path, PathBuf};

pub const SOURCE: &str = "source.yaml";
pub const RESOLVED: &str = "campaign.yaml";
pub const STATE: &str = "state.json";
pub const CELLS: &str = "cells";
pub const RUNS: &str = "runs";
const LOCK: &str = ".lock";

/// Where a run of the campaign stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    /// Started and not finished; found so at resume, the run is redone.
    Running,
    /// Finished: a verdict, or a harness error that was not an interruption.
    Done,
    /// Not run: an earlier run of its series broke safety, which ends the series.
    Skipped,
}

/// One run's entry in `state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// 0-based position in execution order (shown 1-based).
    pub index: usize,
    pub cell: usize,
    /// The cell's name (its runs' test name).
    pub name: String,
    /// 0-based (shown 1-based).
    pub repeat: u32,
    /// The series the run belongs to, in a cell run as series (0-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<u32>,
    pub seed: u64,
    pub expect: Expect,
    pub status: Status,
    pub verdict: Option<Verdict>,
    /// The child `faultline run`'s exit code (none when killed by a signal).
    pub exit_code: Option<i32>,
    /// The run directory, relative to the campaign directory.
    pub run_dir: Option<String>,
    /// Wall time of the whole run (install, start, clients, final reads, check, report).
    pub seconds: Option<f64>,
    /// From the start of the clients to the invocation of the op that could not be
    /// linearized (invalid runs).
    pub first_anomaly_s: Option<f64>,
    /// Why a finished run has no verdict (harness error, time budget exceeded).
    pub error: Option<String>,
    /// Why an unknown run is unknown (its results.json's `reason`: a checker budget, or
    /// an op kind that never succeeded). Absent in state files of older campaigns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Faults the run's schedule started and how many landed (its results.json's
    /// `run.faults`); absent for older runs and runs without a results.json.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faults: Option<FaultsLanded>,
    /// The run's history was valid but its cluster did not serve again in time after the
    /// final heal (exit 4): a liveness failure, kept apart from the safety verdict.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub liveness_failed: bool,
    /// What a write cost on the wire in this run (its results.json's `wire`); absent for
    /// older runs and runs whose links were not counted (loopback, SSH hosts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wire: Option<WireCost>,
    /// When the run ended (seconds since the UNIX epoch): with `seconds`, the span the
    /// campaign's scenarios-per-minute is measured over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_unix_s: Option<f64>,
    /// The oracles that judged an invalid run so (`linearizability`, `agreement`), from
    /// its results.json.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub broken_by: Vec<String>,
}

/// A run's node-to-node traffic per acknowledged write (results.json `wire`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WireCost {
    /// Peer packets per acknowledged write; null when no write was acknowledged.
    pub messages_per_write: Option<f64>,
    pub bytes_per_write: Option<f64>,
}

/// How many of a run's planned faults landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultsLanded {
    pub planned: u64,
    pub landed: u64,
}

impl RunState {
    /// Run `index` of the campaign, `slot` of cell `name`, not started.
    pub fn pending(
        index: usize,
        slot: &RunSlot,
        name: &str,
        expect: Expect,
        series: Option<u32>,
    ) -> RunState {
        RunState {
            index,
            cell: slot.cell,
            name: name.to_string(),
            repeat: slot.repeat,
            series,
            seed: slot.seed,
            expect,
            status: Status::Pending,
            verdict: None,
            exit_code: None,
            run_dir: None,
            seconds: None,
            first_anomaly_s: None,
            error: None,
            reason: None,
            faults: None,
            liveness_failed: false,
            wire: None,
            ended_unix_s: None,
            broken_by: Vec::new(),
        }
    }
}

/// `state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub campaign: String,
    pub file: PathBuf,
    pub hosts: HostsChoice,
    /// UTC timestamp of the first start (`20261124T010203Z`).
    pub started: String,
    pub runs: Vec<RunState>,
}

impl State {
    /// Every run pending.
    pub fn new(c: &Campaign, hosts: &HostsChoice) -> State {
        let runs = c
            .runs
            .iter()
            .enumerate()
            .map(|(index, r)| {
                let cell = &c.cells[r.cell];
                let series = cell.cell.series_of(r.repeat);
                RunState::pending(index, r, &cell.name, cell.cell.expect, series)
            })
            .collect();
        State {
            campaign: c.name().to_string(),
            file: c.file.clone(),
            hosts: hosts.clone(),
            started: store::timestamp(),
            runs,
        }
    }

    pub fn done(&self) -> usize {
        self.runs
            .iter()
            .filter(|r| r.status == Status::Done)
            .count()
    }

    pub fn finished(&self) -> bool {
        self.runs
            .iter()
            .all(|r| matches!(r.status, Status::Done | Status::Skipped))
    }

    /// Skip the pending runs of every series that has broken (a finished invalid run):
    /// the series has its answer. Returns how many were skipped.
    pub fn skip_broken_series(&mut self) -> usize {
        let broken: std::collections::BTreeSet<(usize, u32)> = self
            .runs
            .iter()
            .filter(|r| r.status == Status::Done && r.verdict == Some(Verdict::Invalid))
            .filter_map(|r| Some((r.cell, r.series?)))
            .collect();
        let mut skipped = 0;
        for r in &mut self.runs {
            let ended = r.series.is_some_and(|k| broken.contains(&(r.cell, k)));
            if ended && r.status == Status::Pending {
                r.status = Status::Skipped;
                skipped += 1;
            }
        }
        skipped
    }

    /// Does this state describe `c`'s runs (same cells, repeats and seeds, in order)?
    fn matches(&self, c: &Campaign) -> bool {
        let fresh = State::new(c, &self.hosts);
        self.runs.len() == fresh.runs.len()
            && self.runs.iter().zip(&fresh.runs).all(|(a, b)| {
                (a.cell, &a.name, a.repeat, a.series, a.seed, a.expect)
                    == (b.cell, &b.name, b.repeat, b.series, b.seed, b.expect)
            })
    }
}

/// A campaign directory this process holds the lock of.
#[derive(Debug)]
pub struct CampaignDir {
    pub path: PathBuf,
    /// Held while this process works in the directory; released when it exits.
    _lock: nix::fcntl::Flock<File>,
}

/// What [`find`] found for a campaign file.
#[derive(Debug)]
pub enum Previous {
    /// No earlier campaign directory holds this file's text.
    None,
    /// The newest one with this text finished every run.
    Finished(PathBuf),
    /// The newest one with this text has runs left.
    Unfinished(PathBuf, State),
}

/// `<store>/campaigns/<name>/`.
pub fn campaign_root(store: &Path, name: &str) -> PathBuf {
    store.join("campaigns").join(name)
}

/// The newest directory of campaign `name` whose `source.yaml` is `source`.
pub fn find(store: &Path, name: &str, source: &str) -> Result<Previous> {
    let root = campaign_root(store, name);
    let Ok(entries) = std::fs::read_dir(&root) else {
        return Ok(Previous::None);
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    // Timestamps sort by time.
    dirs.sort();
    for d in dirs.into_iter().rev() {
        if std::fs::read_to_string(d.join(SOURCE)).ok().as_deref() != Some(source) {
            continue;
        }
        let state = read_state(&d)?;
        return Ok(if state.finished() {
            Previous::Finished(d)
        } else {
            Previous::Unfinished(d, state)
        });
    }
    Ok(Previous::None)
}

pub fn read_state(dir: &Path) -> Result<State> {
    let path = dir.join(STATE);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a campaign state", path.display()))
}

pub fn write_state(dir: &Path, state: &State) -> Result<()> {
    store::write_atomic(&dir.join(STATE), &serde_json::to_vec_pretty(state)?)
}

fn lock(dir: &Path) -> Result<nix::fcntl::Flock<File>> {
    let path = dir.join(LOCK);
    let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(l) => Ok(l),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => bail!(
            "{} is in use by another `faultline campaign` process",
            dir.display()
        ),
        Err((_, e)) => Err(anyhow!("cannot lock {}: {e}", path.display())),
    }
}

/// Write the files that describe the campaign (source, resolved matrix, cell test files).
fn write_description(dir: &Path, c: &Campaign, hosts: &HostsChoice) -> Result<()> {
    store::write_atomic(&dir.join(SOURCE), c.source.as_bytes())?;
    store::write_atomic(&dir.join(RESOLVED), c.to_yaml(hosts)?.as_bytes())?;
    let cells = dir.join(CELLS);
    std::fs::create_dir_all(&cells)
        .with_context(|| format!("cannot create {}", cells.display()))?;
    for cell in &c.cells {
        let yaml = serde_yaml::to_string(&cell.test_spec()).context("cannot serialise a cell")?;
        store::write_atomic(&cell_file(dir, &cell.name), yaml.as_bytes())?;
    }
    Ok(())
}

/// The test file of cell `name`.
pub fn cell_file(dir: &Path, name: &str) -> PathBuf {
    dir.join(CELLS).join(format!("{name}.yaml"))
}

/// Start a new campaign directory with every run pending.
pub fn create(store: &Path, c: &Campaign, hosts: &HostsChoice) -> Result<(CampaignDir, State)> {
    let root = store.join("campaigns");
    let path = store::create_run_dir(&root, c.name())?;
    let lock = lock(&path)?;
    write_description(&path, c, hosts)?;
    let state = State::new(c, hosts);
    write_state(&path, &state)?;
    if let Some(leaf) = path.file_name() {
        store::relink(
            &campaign_root(store, c.name()).join("latest"),
            Path::new(leaf),
        )?;
    }
    Ok((CampaignDir { path, _lock: lock }, state))
}

/// Take over an unfinished campaign directory: runs that were running when it was
/// interrupted become pending again (their partial run directories stay on disk).
pub fn resume(path: &Path, c: &Campaign, mut state: State) -> Result<(CampaignDir, State)> {
    let lock = lock(path)?;
    if !state.matches(c) {
        bail!(
            "{}: its runs differ from what {} expands to now (another faultline version?); start over with --fresh",
            path.display(),
            c.file.display()
        );
    }
    for r in &mut state.runs {
        if r.status == Status::Running {
            r.status = Status::Pending;
        }
    }
    write_description(path, c, &state.hosts)?;
    write_state(path, &state)?;
    Ok((
        CampaignDir {
            path: path.to_path_buf(),
            _lock: lock,
        },
        state,
    ))
}
