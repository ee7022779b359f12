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
}

impl TestSpec {
    pub fn load(path: &Path) -> Result<TestSpec> {
        load_yaml(path)
    }
}
