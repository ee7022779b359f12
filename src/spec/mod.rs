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
pub mod subnet;
pub mod target;
pub mod test;
pub mod workload;
pub mod yaml;

pub use plan::{HostsChoice, Overrides, Plan, ResolvedTarget};

use anyhow::{anyhow, bail, Context, Result};
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
    /// 1-based line and column of the field (or of its parent when it is missing), when
    /// the file could be read back.
    pub at: Option<(usize, usize)>,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some((line, column)) = self.at {
            write!(f, ":{line}:{column}")?;
        }
        write!(f, ": {}: {}", self.field, self.rule)
    }
}

/// Largest spec file read back to find a field's line for a message.
const MAX_LOCATE_BYTES: u64 = 4 << 20;

/// The text of `path` for locating fields in messages, if it is a readable, small file.
fn text_for_locating(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_LOCATE_BYTES {
        return None;
    }
    std::fs::read_to_string(path).ok()
}

/// `path:line:column` of `field` in the file at `path`, or just `path` when it cannot be
/// found (no such file, or the field came from elsewhere).
pub(crate) fn field_at(path: &Path, field: &str) -> String {
    let at = text_for_locating(path).and_then(|t| yaml::locate_exact(&t, field));
    match at {
        Some((l, c)) => format!("{}:{l}:{c}", path.display()),
        None => path.display().to_string(),
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
                at: None,
            });
        }
    }

    pub(crate) fn into_result(mut self) -> Result<()> {
        if self.found.is_empty() {
            return Ok(());
        }
        // Read back only on failure: validation needs no positions, messages do.
        if let Some(text) = text_for_locating(self.path) {
            for e in &mut self.found {
                e.at = yaml::locate(&text, &e.field);
            }
        }
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

/// Parse YAML text that came from `path` (used for error messages only). Every YAML
/// faultline reads comes through here (or [`check_yaml`]): documents over the bounds of
/// [`yaml::scan`] and empty ones are refused before serde expands anything.
pub fn parse_yaml<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T> {
    if check_yaml(path, text)?.empty {
        bail!(
            "{}: the file is empty or only comments (rule: a spec file must set its fields; see the YAML reference in README.md)",
            path.display()
        );
    }
    serde_yaml::from_str(text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(":{}:{}", l.line(), l.column()))
            .unwrap_or_default();
        // serde_yaml appends " at line X column Y" itself; we already put it up front.
        let msg = e.to_string();
        let msg = msg.split(" at line ").next().unwrap_or(&msg);
        anyhow!("{}{}: {}", path.display(), at, redact(msg))
    })
}

/// Refuse `text` (from `path`) if it breaks the bounds of [`yaml::scan`]: too many nodes
/// from aliases, or nesting too deep. For readers that parse into generic values.
pub fn check_yaml(path: &Path, text: &str) -> Result<yaml::Shape> {
    yaml::scan(text).map_err(|r| anyhow!("{}:{}:{}: {}", path.display(), r.line, r.column, r.rule))
}

/// `"word"` for a message, or a note of its length when it is too long to repeat.
pub(crate) fn short_echo(s: &str) -> String {
    if s.chars().count() <= MAX_ECHO {
        format!("{s:?}")
    } else {
        format!("(a string of {} characters)", s.chars().count())
    }
}

/// An inner serde error's message for wrapping in another one: without serde_yaml's
/// " at line X column Y", which the outer error gets again (and [`parse_yaml`] cuts at).
pub(crate) fn bare(e: impl fmt::Display) -> String {
    let s = e.to_string();
    s.split(" at line ").next().unwrap_or(&s).to_string()
}

/// Longest piece of a file's text echoed in a message.
const MAX_ECHO: usize = 40;

/// serde's message without the file's text: a spec name may point at any file (a test's
/// `workload: /etc/passwd`), and a message must not print a foreign file's contents. String
/// values are dropped (`invalid type: string "…"` → `a string`); names in backticks (an
/// unknown field or variant) are kept, cut to [`MAX_ECHO`] characters.
fn redact(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find("string \"") {
        out.push_str(&rest[..i]);
        out.push_str("a string");
        let after = &rest[i + "string \"".len()..];
        // serde writes the value with Debug escapes: the first unescaped quote ends it.
        let mut escaped = false;
        let end = after.char_indices().find(|&(_, c)| {
            let stop = c == '"' && !escaped;
            escaped = c == '\\' && !escaped;
            stop
        });
        rest = match end {
            Some((j, _)) => &after[j + 1..],
            None => "",
        };
    }
    out.push_str(rest);
    let mut cut = String::with_capacity(out.len());
    for (k, part) in out.split('`').enumerate() {
        if k > 0 {
            cut.push('`');
        }
        if k % 2 == 1 && part.chars().count() > MAX_ECHO {
            cut.extend(part.chars().take(MAX_ECHO));
            cut.push('…');
        } else {
            cut.push_str(part);
        }
    }
    cut
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
    fn refuses_an_empty_or_comment_only_file() {
        for text in ["", "# just a comment\n\n", "---\n"] {
            let err = parse_yaml::<test::TestSpec>(Path::new("t.yaml"), text)
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("t.yaml: the file is empty or only comments"),
                "{err}"
            );
        }
        assert_eq!(
            parse_yaml::<test::TestSpec>(Path::new("t.yaml"), "{}").unwrap(),
            test::TestSpec::default()
        );
    }

    #[test]
    fn refuses_alias_bombs_and_deep_nesting_with_file_and_line() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let p = i - 1;
            text.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
        }
        let err = parse_yaml::<serde_yaml::Value>(Path::new("c.yaml"), &text)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("c.yaml:4:"), "{err}");
        assert!(err.contains("aliases"), "{err}");
        let deep = format!("name: {}\n", "{a: ".repeat(80_000));
        let err = parse_yaml::<serde_yaml::Value>(Path::new("d.yaml"), &deep)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("d.yaml:1:"), "{err}");
        assert!(err.contains("nest deeper than 64 levels"), "{err}");
    }

    #[test]
    fn messages_never_echo_a_foreign_files_text() {
        let passwd =
            "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n";
        let err = parse_yaml::<workload::WorkloadSpec>(Path::new("/etc/passwd"), passwd)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("root"), "{err}");
        assert!(!err.contains("daemon"), "{err}");
        assert!(
            err.starts_with("/etc/passwd:1:1: invalid type: a string"),
            "{err}"
        );
        assert_eq!(
            redact(&format!(
                "unknown field `{}`, expected `name`",
                "k".repeat(100)
            )),
            format!("unknown field `{}…`, expected `name`", "k".repeat(MAX_ECHO))
        );
        assert_eq!(
            redact(r#"invalid value: string "a\"b", expected x; string "c""#),
            "invalid value: a string, expected x; a string"
        );
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
