//! `nemesis/<name>.yaml`: which faults are injected and when.
//!
//! A nemesis with no faults (`nemesis/none.yaml`) is a real, useful plan: it tests the
//! target's behaviour under concurrency alone.

use super::{load_yaml, Violations};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NemesisSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

impl NemesisSpec {
    pub fn load(path: &Path) -> Result<NemesisSpec> {
        let spec: NemesisSpec = load_yaml(path)?;
        let mut v = Violations::new(path);
        v.check(!spec.name.is_empty(), "name", "must not be empty");
        v.into_result()?;
        Ok(spec)
    }
}
