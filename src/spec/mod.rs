//! YAML → typed specs → validated, resolved [`Plan`].
//!
//! Owns the files a user writes (`targets/<name>/target.yaml`, `workloads/<name>.yaml`,
//! `nemesis/<name>.yaml`, a test file combining them) and the one resolved plan a run
//! executes. Every spec is read with `deny_unknown_fields` and validated once, before
//! anything starts; errors name the file, the field and the broken rule. Running things is
//! not this module's business.

pub mod campaign;
pub mod grudge;
pub mod inventory;
pub mod model;
pub mod nemesis;
pub mod plan;
pub mod schedule;
pub mod target;
pub mod test;
pub mod workload;

pub use plan::{HostsChoice, Overrides, Plan, ResolvedTarget};

use anyhow::{anyhow, Context, Result};
use serde::de::DeserializeOwned;
use std::fmt;
use std::path::{Path, PathBuf};

/// A spec that broke a rule: which file, which field, what rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub path: PathBuf,
    /// Dotted path of the field, e.g. `keys.in_flight` or `start[3]`.
    pub field: String,
    pub rule: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.path.display(), self.field, self.rule)
    }
}

impl std::error::Error for SpecError {}

/// Collects rule violations of one file so the user sees all of them at once.
pub(crate) struct Violations<'a> {
    path: &'a Path,
    found: Vec<SpecError>,
}

impl<'a> Violations<'a> {
    pub(crate) fn new(path: &'a Path) -> Self {
        Violations {
            path,
            found: Vec::new(),
        }
    }

    pub(crate) fn check(&mut self, ok: bool, field: impl Into<String>, rule: impl Into<String>) {
        if !ok {
            self.found.push(SpecError {
                path: self.path.to_path_buf(),
                field: field.into(),
                rule: rule.into(),
            });
        }
    }

    pub(crate) fn into_result(self) -> Result<()> {
        match self.found.len() {
            0 => Ok(()),
            1 => Err(anyhow!(self.found[0].clone())),
            _ => Err(anyhow!(self
                .found
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"))),
        }
    }
}

/// Read one YAML file into a typed spec; errors say `file:line:column: what is wrong`.
pub fn load_yaml<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read spec file {}", path.display()))?;
    parse_yaml(path, &text)
}

/// Parse YAML text that came from `path` (used for error messages only).
pub fn parse_yaml<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T> {
    serde_yaml::from_str(text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(":{}:{}", l.line(), l.column()))
            .unwrap_or_default();
        // serde_yaml appends " at line X column Y" itself; we already put it up front.
        let msg = e.to_string();
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
        anyhow!("{}{}: {}", path.display(), at, msg)
    })
}

/// What kind of spec a name refers to; decides where the file is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecKind {
    Target,
    Workload,
    Nemesis,
}

impl SpecKind {
    fn noun(self) -> &'static str {
        match self {
            SpecKind::Target => "target",
            SpecKind::Workload => "workload",
            SpecKind::Nemesis => "nemesis",
        }
    }

    fn path_in(self, root: &Path, name: &str) -> PathBuf {
        match self {
            SpecKind::Target => root.join("targets").join(name).join("target.yaml"),
            SpecKind::Workload => root.join("workloads").join(format!("{name}.yaml")),
            SpecKind::Nemesis => root.join("nemesis").join(format!("{name}.yaml")),
        }
    }

    fn known_in(self, root: &Path) -> Vec<String> {
        let mut names = Vec::new();
        let dir = match self {
            SpecKind::Target => root.join("targets"),
            SpecKind::Workload => root.join("workloads"),
            SpecKind::Nemesis => root.join("nemesis"),
        };
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let p = e.path();
                match self {
                    SpecKind::Target if p.join("target.yaml").is_file() => {
                        names.push(e.file_name().to_string_lossy().into_owned())
                    }
                    SpecKind::Workload | SpecKind::Nemesis
                        if p.extension().is_some_and(|x| x == "yaml") =>
                    {
                        if let Some(stem) = p.file_stem() {
                            names.push(stem.to_string_lossy().into_owned())
                        }
                    }
                    _ => {}
                }
            }
        }
        names.sort();
        names
    }
}

/// Where named specs are looked up: the current directory first, then the faultline
/// checkout this binary was built from (so `faultline run` works from anywhere on the
/// machine that built it).
#[derive(Debug, Clone)]
pub struct SpecRoots {
    pub dirs: Vec<PathBuf>,
}

impl SpecRoots {
    /// The default search path (cwd, then the checkout this binary was built from).
    pub fn default_roots() -> Self {
        let mut dirs = Vec::new();
        if let Ok(cwd) = std::env::current_dir() {
            dirs.push(cwd);
        }
        let built = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        if !dirs.contains(&built) {
            dirs.push(built);
        }
        SpecRoots { dirs }
    }

    /// Resolve a name (`raftkv`) or a path (`./my-target.yaml`) of the given kind.
    pub fn resolve(&self, kind: SpecKind, name_or_path: &str) -> Result<PathBuf> {
        let looks_like_path = name_or_path.contains('/')
            || name_or_path.ends_with(".yaml")
            || name_or_path.ends_with(".yml");
        if looks_like_path {
            let p = PathBuf::from(name_or_path);
            let p = if p.is_dir() && kind == SpecKind::Target {
                p.join("target.yaml")
            } else {
                p
            };
            if p.is_file() {
                return Ok(p);
            }
            return Err(anyhow!(
                "{} file {} does not exist",
                kind.noun(),
                p.display()
            ));
        }
        let valid_name = !name_or_path.is_empty()
            && name_or_path
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid_name {
            return Err(anyhow!(
                "{} name {name_or_path:?} may only contain letters, digits, '-' and '_'",
                kind.noun()
            ));
        }
        for root in &self.dirs {
            let p = kind.path_in(root, name_or_path);
            if p.is_file() {
                return Ok(p);
            }
        }
        let mut known: Vec<String> = self.dirs.iter().flat_map(|r| kind.known_in(r)).collect();
        known.sort();
        known.dedup();
        Err(anyhow!(
            "unknown {} {name_or_path:?}: no {} under {} (known: {})",
            kind.noun(),
            kind.path_in(Path::new(""), name_or_path).display(),
            self.dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(" or "),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml_files(dir: &str) -> Vec<PathBuf> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        files.sort();
        files
    }

    #[test]
    fn every_shipped_workload_and_nemesis_validates() {
        let workloads = yaml_files("workloads");
        assert!(workloads.len() >= 3);
        for p in workloads {
            workload::WorkloadSpec::load(&p).unwrap_or_else(|e| panic!("{e:#}"));
        }
        let nemeses = yaml_files("nemesis");
        assert!(nemeses.len() >= 5);
        for p in nemeses {
            nemesis::NemesisSpec::load(&p).unwrap_or_else(|e| panic!("{e:#}"));
        }
    }
}
