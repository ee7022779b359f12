//! Checking a run's history with the workload's model (wiring to crate::checker).
use crate::checker::Verdict;
use crate::spec::Plan;
use anyhow::Result;
use serde_json::Value;
use std::path::Path;

pub fn check_history(_plan: &Plan, _history: &Path) -> Result<(Verdict, Value)> {
    anyhow::bail!("WIP: checker API not wired yet")
}
