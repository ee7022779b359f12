//! A test file: one YAML naming a target, a workload and a nemesis plus run parameters.
//! Command-line flags override its fields (see [`super::Overrides`]).

use super::load_yaml;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSpec {
    /// Names the run directory `reports/<name>/…`; default `<target>-<workload>-<nemesis>`.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub workload: Option<String>,
    #[serde(default)]
    pub nemesis: Option<String>,
    #[serde(default)]
    pub nodes: Option<u32>,
    #[serde(default)]
    pub concurrency: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    pub time_limit: Option<Duration>,
    /// Ops per second over all workers; absent = as fast as the target answers.
    #[serde(default)]
    pub rate: Option<f64>,
    #[serde(default)]
    pub seed: Option<u64>,
    /// Extra arguments appended to every node's start command (e.g. raftkv `--bug`).
    #[serde(default)]
    pub target_args: Vec<String>,
    /// Subnet for local hosts, e.g. `10.213.0.0/24`.
    #[serde(default)]
    pub subnet: Option<String>,
    /// What each node's data dir lives on: `plain` (a directory) or `lazyfs` (its own
    /// mount of the power-failure filesystem, which `power-fail` needs). Absent: `lazyfs`
    /// when the nemesis injects power failures, else `plain`.
    #[serde(default)]
    pub data_fs: Option<DataFs>,
}

/// What a node's data dir lives on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataFs {
    /// A directory of this machine's filesystem (or the SSH host's).
    #[default]
    Plain,
    /// A mount of faultline's power-failure filesystem (`hosts::lazyfs`) per node, over a
    /// backing directory beside it: un-fsynced writes are held in faultline's memory, and
    /// `power-fail` drops them.
    Lazyfs,
}

impl DataFs {
    pub fn as_str(self) -> &'static str {
        match self {
            DataFs::Plain => "plain",
            DataFs::Lazyfs => "lazyfs",
        }
    }
}

impl TestSpec {
    pub fn load(path: &Path) -> Result<TestSpec> {
        load_yaml(path)
    }
}
