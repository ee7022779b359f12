//! Campaigns: `faultline campaign FILE` runs a matrix of runs (targets × workloads ×
//! nemeses × option sets × repeats, see [`crate::spec::campaign`]) and writes one summary.
//!
//! Owns: resolving every cell to a [`Plan`] before the first run starts ([`Campaign`]),
//! the campaign directory with its state file and resumption ([`dir`]), running each run
//! as a child `faultline run` with a bounded number at a time ([`exec`]), and the
//! outputs: verdicts judged against expectations, `summary.json` and the exit code
//! ([`summary`]), `junit.xml` ([`junit`]) and the matrix page `index.html` ([`page`]).
//! Does not own: what a run does ([`crate::runner`]) or how a run page looks
//! ([`crate::report`]).

pub mod dir;
pub mod exec;
pub mod junit;
pub mod page;
pub mod summary;

use crate::spec::campaign::{CampaignSpec, Cell, RunSlot};
use crate::spec::test::TestSpec;
use crate::spec::{HostsChoice, Overrides, Plan, SpecRoots};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A campaign file read, checked and expanded, every cell named.
#[derive(Debug, Clone)]
pub struct Campaign {
    pub file: PathBuf,
    /// The file's text as read: an unfinished campaign directory holding the same text is
    /// the same campaign, and is resumed.
    pub source: String,
    pub spec: CampaignSpec,
    pub cells: Vec<CellPlan>,
    pub runs: Vec<RunSlot>,
    /// What the cells' nemeses need of SSH hosts (checked once before the first run).
    pub needs: crate::hosts::ssh::Needs,
}

/// A cell and the name its runs are stored under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellPlan {
    /// `<target>-<workload>-<nemesis>-<option>` from the specs' own names: the test name
    /// of its runs (`runs/<name>/<timestamp>/`) and of its test file (`cells/<name>.yaml`).
    pub name: String,
    #[serde(flatten)]
    pub cell: Cell,
}

impl CellPlan {
    /// The test file a child `faultline run` gets for this cell (the seed comes as a flag).
    pub fn test_spec(&self) -> TestSpec {
        let c = &self.cell;
        TestSpec {
            // Unnamed while the cell is being resolved (its name comes from the plan).
            name: (!self.name.is_empty()).then(|| self.name.clone()),
            target: Some(c.target.clone()),
            workload: Some(c.workload.clone()),
            nemesis: Some(c.nemesis.clone()),
            nodes: c.nodes,
            concurrency: c.concurrency,
            time_limit: Some(c.time_limit),
            rate: c.rate,
            seed: None,
            target_args: c.target_args.clone(),
            subnet: None,
            data_fs: None,
        }
    }
}

/// Replace what may not appear in a run name (it names a directory) with `_`.
fn name_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Campaign {
    /// Read `file` and resolve every cell to a plan for `hosts`: a missing target, a
    /// nemesis these hosts cannot apply, a bad size — every such error comes out here,
    /// naming the campaign file and the cell, before any run starts.
    pub fn resolve(file: &Path, roots: &SpecRoots, hosts: &HostsChoice) -> Result<Campaign> {
        let source = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read campaign file {}", file.display()))?;
        let spec = CampaignSpec::parse(file, &source)?;
        let (cells, runs) = spec.expand();
        let mut named = Vec::with_capacity(cells.len());
        let mut errors = Vec::new();
        let mut needs = crate::hosts::ssh::Needs::default();
        for cell in cells {
            let first_seed = runs
                .iter()
                .find(|r| r.cell == cell.index)
                .map_or(0, |r| r.seed);
            let provisional = CellPlan {
                name: String::new(),
                cell,
            };
            // Exactly what the child will resolve: the cell's test file plus its flags.
            let flags = Overrides {
                seed: Some(first_seed),
                hosts: Some(hosts.clone()),
                subnet: match hosts {
                    HostsChoice::Local { subnet } => Some(subnet.clone()),
                    HostsChoice::Loopback | HostsChoice::Ssh { .. } => None,
                },
                ..Overrides::default()
            };
            match Plan::resolve_test(roots, &provisional.test_spec(), file, &flags, hosts.clone()) {
                Ok(plan) => {
                    let kinds = plan.nemesis.kinds();
                    needs.nft |= kinds.iter().any(|k| k.is_network());
                    needs.clock |= kinds.iter().any(|k| k.is_clock());
                    named.push(CellPlan {
                        name: name_part(&format!(
                            "{}-{}-{}-{}",
                            plan.target.spec.name,
                            plan.workload.name,
                            plan.nemesis.name,
                            provisional.cell.option
                        )),
                        cell: provisional.cell,
                    });
                }
                Err(e) => errors.push(format!(
                    "{}: cell {}: {e:#}",
                    file.display(),
                    provisional.cell.label()
                )),
            }
        }
        if !errors.is_empty() {
            // One broken spec breaks every cell using it: show enough to see the pattern.
            const SHOWN: usize = 20;
            let more = errors.len().saturating_sub(SHOWN);
            errors.truncate(SHOWN);
            if more > 0 {
                errors.push(format!("… and {more} more cells"));
            }
            bail!("{}", errors.join("\n"));
        }
        let mut seen = BTreeMap::new();
        for c in &named {
            if let Some(other) = seen.insert(c.name.clone(), c.cell.label()) {
                bail!(
                    "{}: cells {other} and {} would both store their runs as {:?} (the same target, workload and nemesis named twice?)",
                    file.display(),
                    c.cell.label(),
                    c.name
                );
            }
        }
        Ok(Campaign {
            file: file.to_path_buf(),
            source,
            spec,
            cells: named,
            runs,
            needs,
        })
    }

    /// A campaign whose cells are named from the matrix as written, without resolving
    /// any spec: for rendering and tests where no target files are at hand.
    pub fn unresolved(file: &Path, source: &str) -> Result<Campaign> {
        let spec = CampaignSpec::parse(file, source)?;
        let (cells, runs) = spec.expand();
        let cells = cells
            .into_iter()
            .map(|cell| CellPlan {
                name: name_part(&format!(
                    "{}-{}-{}-{}",
                    cell.target, cell.workload, cell.nemesis, cell.option
                )),
                cell,
            })
            .collect();
        Ok(Campaign {
            file: file.to_path_buf(),
            source: source.to_string(),
            spec,
            cells,
            runs,
            needs: crate::hosts::ssh::Needs::default(),
        })
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The resolved matrix as written to `campaign.yaml`: every cell with its runs' seeds.
    pub fn to_yaml(&self, hosts: &HostsChoice) -> Result<String> {
        #[derive(Serialize)]
        struct Resolved<'a> {
            name: &'a str,
            description: Option<&'a str>,
            file: &'a Path,
            hosts: &'a HostsChoice,
            faultline_version: &'static str,
            runs: usize,
            cells: Vec<ResolvedCell<'a>>,
        }
        #[derive(Serialize)]
        struct ResolvedCell<'a> {
            #[serde(flatten)]
            cell: &'a CellPlan,
            seeds: Vec<u64>,
        }
        let resolved = Resolved {
            name: self.name(),
            description: self.spec.description.as_deref(),
            file: &self.file,
            hosts,
            faultline_version: env!("CARGO_PKG_VERSION"),
            runs: self.runs.len(),
            cells: self
                .cells
                .iter()
                .map(|c| ResolvedCell {
                    cell: c,
                    seeds: self
                        .runs
                        .iter()
                        .filter(|r| r.cell == c.cell.index)
                        .map(|r| r.seed)
                        .collect(),
                })
                .collect(),
        };
        serde_yaml::to_string(&resolved).context("cannot serialise the campaign")
    }
}

/// Rewrite the state file and the three outputs (`summary.json`, `junit.xml`,
/// `index.html`) from `state`: after every start and end of a run, so an interrupted
/// campaign still has a summary of what it did.
pub fn write_outputs(c: &Campaign, dir: &Path, state: &dir::State) -> Result<()> {
    dir::write_state(dir, state)?;
    let summary = summary::json(c, state, dir);
    crate::store::write_atomic(
        &dir.join(SUMMARY_JSON),
        &serde_json::to_vec_pretty(&summary)?,
    )?;
    crate::store::write_atomic(&dir.join(JUNIT_XML), junit::render(c, state).as_bytes())?;
    crate::store::write_atomic(&dir.join(INDEX_HTML), page::render(c, state).as_bytes())?;
    Ok(())
}

pub const SUMMARY_JSON: &str = "summary.json";
pub const JUNIT_XML: &str = "junit.xml";
pub const INDEX_HTML: &str = "index.html";

/// The `--hosts` value a child `faultline run` gets for `hosts`.
pub fn hosts_arg(hosts: &HostsChoice) -> &'static str {
    match hosts {
        HostsChoice::Local { .. } => "local",
        HostsChoice::Loopback => "loopback",
        HostsChoice::Ssh { .. } => "ssh",
    }
}

/// How many runs may share these hosts at once. Local hosts: one /27 slice of the subnet
/// per run. Loopback: addresses are plentiful but the machine is not; bounded anyway. SSH:
/// one run at a time — the hosts are the inventory's machines, and two runs would share
/// their firewall tables and ports.
pub fn max_parallel(hosts: &HostsChoice) -> usize {
    /// More simultaneous clusters than this only make runs time each other out.
    const CAP: usize = 8;
    match hosts {
        HostsChoice::Local { subnet } => match crate::spec::plan::parse_subnet(subnet) {
            Ok((_, len)) => {
                let slices = 1usize << (crate::hosts::local::SLICE_PREFIX.saturating_sub(len));
                slices.min(CAP)
            }
            Err(_) => 1,
        },
        HostsChoice::Loopback => CAP,
        HostsChoice::Ssh { .. } => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallelism_is_bounded_by_the_subnet_slices() {
        let local = |s: &str| HostsChoice::Local { subnet: s.into() };
        assert_eq!(max_parallel(&local("10.213.0.0/24")), 8);
        assert_eq!(max_parallel(&local("10.213.0.0/26")), 2);
        assert_eq!(max_parallel(&local("10.213.0.0/27")), 1);
        assert_eq!(max_parallel(&HostsChoice::Loopback), 8);
    }

    #[test]
    fn cell_names_are_safe_directory_names() {
        let c = Campaign::unresolved(
            Path::new("c.yaml"),
            "name: c\ntime_limit: 2s\nmatrix: {target: [tests/fixtures/lazykv/target.yaml], workload: [register], nemesis: [none]}\n",
        )
        .unwrap();
        assert_eq!(
            c.cells[0].name,
            "tests_fixtures_lazykv_target.yaml-register-none-default"
        );
        let t = c.cells[0].test_spec();
        assert_eq!(t.time_limit, Some(std::time::Duration::from_secs(2)));
        assert_eq!(t.seed, None, "the seed is given per run");
    }
}
