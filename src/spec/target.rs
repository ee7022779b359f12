//! `targets/<name>/target.yaml`: how to install, start, probe, stop and talk to a target.
//!
//! Start commands are argv templates; placeholders are filled per node when the plan is
//! executed. The set of placeholders is closed ([`PLACEHOLDERS`]) and checked here, so a
//! typo fails before any node starts.

use super::{load_yaml, Violations};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Placeholders a template may use (`{port.NAME}` for every port in `ports`).
pub const PLACEHOLDERS: &[&str] = &[
    "node",
    "ip",
    "peers",
    "cluster",
    "cluster_token",
    "data_dir",
    "binary",
    "target_dir",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// How to make `binary` available; skipped when the binary exists unless `always`.
    #[serde(default)]
    pub install: Option<Install>,
    /// The node program; relative paths are relative to the directory of target.yaml.
    pub binary: String,
    /// Named ports every node listens on (the same numbers on every node: each node has its
    /// own address).
    pub ports: BTreeMap<String, u16>,
    /// argv template of one node.
    pub start: Vec<String>,
    /// Template of one entry of `{peers}` / `{cluster}` (evaluated for each node).
    #[serde(default)]
    pub peer: Option<String>,
    #[serde(default = "default_separator")]
    pub peer_separator: String,
    /// Extra environment of node processes (values are templates).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub ready: Ready,
    #[serde(default)]
    pub stop: Stop,
    pub client: ClientSpec,
    /// How clock faults reach this target's nodes.
    #[serde(default)]
    pub clock: ClockSupport,
    /// Files a node writes that the run collects (templates, usually under `{data_dir}`).
    #[serde(default)]
    pub logs: Vec<String>,
}

fn default_separator() -> String {
    ",".to_string()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Install {
    /// argv run once before the nodes start.
    pub command: Vec<String>,
    /// Working directory of the command, relative to the directory of target.yaml.
    #[serde(default)]
    pub workdir: Option<String>,
    /// Run even when the binary already exists (a build that is a no-op when up to date).
    #[serde(default)]
    pub always: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ready {
    /// How long all nodes together may take to become ready.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default)]
    pub check: ReadyCheck,
}

/// How readiness is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ReadyCheck {
    /// Ask through the client protocol (raftkv: every node answers status and one is
    /// leader).
    #[default]
    Client,
    /// A TCP connect to the client port succeeds on every node.
    Tcp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stop {
    /// Signal for a graceful stop, e.g. `TERM`.
    #[serde(default = "default_stop_signal")]
    pub signal: String,
    /// How long to wait after `signal` before SIGKILL.
    #[serde(with = "humantime_serde", default = "default_grace")]
    pub grace: Duration,
}

fn default_stop_signal() -> String {
    "TERM".into()
}

fn default_grace() -> Duration {
    Duration::from_secs(5)
}

impl Default for Stop {
    fn default() -> Self {
        Stop {
            signal: default_stop_signal(),
            grace: default_grace(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    pub protocol: Protocol,
    /// Which of `ports` the client connects to.
    pub port: String,
}

/// The client protocols faultline speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// raftkv's JSON-lines protocol (targets/raftkv/README.md).
    Raftkv,
}

/// How a node's view of time can be moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum ClockSupport {
    /// Dynamically linked, reads time through libc: libfaketime preloaded works.
    Libfaketime,
    /// Clock faults cannot reach this target's nodes; `reason` is shown when asked for.
    Unsupported { reason: String },
}

impl Default for ClockSupport {
    fn default() -> Self {
        ClockSupport::Unsupported {
            reason: "the target does not declare how clock faults reach its nodes (`clock:` in target.yaml)".into(),
        }
    }
}

impl TargetSpec {
    pub fn load(path: &Path) -> Result<TargetSpec> {
        let spec: TargetSpec = load_yaml(path)?;
        spec.validate(path)?;
        Ok(spec)
    }

    pub fn validate(&self, path: &Path) -> Result<()> {
        let mut v = Violations::new(path);
        v.check(!self.name.is_empty(), "name", "must not be empty");
        v.check(!self.binary.is_empty(), "binary", "must not be empty");
        v.check(
            !self.start.is_empty(),
            "start",
            "must name at least the program",
        );
        v.check(
            self.ports.contains_key(&self.client.port),
            "client.port",
            format!(
                "must be one of the names in `ports` ({})",
                self.ports.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        );
        for (name, port) in &self.ports {
            v.check(*port != 0, format!("ports.{name}"), "must not be 0");
        }
        if let Some(install) = &self.install {
            v.check(
                !install.command.is_empty(),
                "install.command",
                "must name a program",
            );
        }
        v.check(
            self.ready.timeout > Duration::ZERO,
            "ready.timeout",
            "must be greater than zero",
        );
        v.check(
            signal_by_name(&self.stop.signal).is_some(),
            "stop.signal",
            "must be a signal name such as TERM, INT or KILL",
        );
        let uses_peers = self
            .start
            .iter()
            .chain(self.env.values())
            .any(|a| a.contains("{peers}") || a.contains("{cluster}"));
        v.check(
            !uses_peers || self.peer.is_some(),
            "peer",
            "must be set when a template uses {peers} or {cluster}",
        );
        let mut templates: Vec<(String, &String)> = Vec::new();
        for (i, a) in self.start.iter().enumerate() {
            templates.push((format!("start[{i}]"), a));
        }
        for (k, a) in &self.env {
            templates.push((format!("env.{k}"), a));
        }
        if let Some(p) = &self.peer {
            templates.push(("peer".into(), p));
        }
        for (i, a) in self.logs.iter().enumerate() {
            templates.push((format!("logs[{i}]"), a));
        }
        for (field, t) in templates {
            if let Err(rule) = check_template(t, &self.ports) {
                v.check(false, field, rule);
            }
        }
        v.into_result()
    }
}

/// Signal number for a name like `TERM` or `SIGTERM`.
pub fn signal_by_name(name: &str) -> Option<nix::sys::signal::Signal> {
    let n = name.trim_start_matches("SIG");
    format!("SIG{n}").parse().ok()
}

/// Check that every `{…}` in a template is a known placeholder.
fn check_template(t: &str, ports: &BTreeMap<String, u16>) -> Result<(), String> {
    for name in placeholders_of(t)? {
        let known = PLACEHOLDERS.contains(&name)
            || name
                .strip_prefix("port.")
                .is_some_and(|p| ports.contains_key(p));
        if !known {
            return Err(format!(
                "unknown placeholder {{{name}}}; known: {}, port.<one of ports>",
                PLACEHOLDERS
                    .iter()
                    .map(|p| format!("{{{p}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    Ok(())
}

/// The placeholder names used by a template, or why it is malformed.
pub(crate) fn placeholders_of(t: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("unclosed '{{' in {t:?}"))?;
        out.push(&after[..close]);
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return Err(format!("stray '}}' in {t:?}"));
    }
    Ok(out)
}

/// Fill a template; every placeholder must be in `vars` (validated earlier).
pub fn fill(t: &str, vars: &BTreeMap<String, String>) -> Result<String> {
    let mut out = String::with_capacity(t.len());
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| anyhow::anyhow!("unclosed '{{' in template {t:?}"))?;
        let name = &after[..close];
        let value = vars
            .get(name)
            .ok_or_else(|| anyhow::anyhow!("template {t:?} uses {{{name}}}, which has no value"))?;
        out.push_str(value);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse_yaml;

    const GOOD: &str = r#"
name: demo
binary: /bin/true
ports: {peer: 7001, client: 7002}
start: ["{binary}", "--id", "{node}", "--listen", "{ip}:{port.client}", "--peers", "{peers}"]
peer: "{node}={ip}:{port.peer}"
ready: {timeout: 10s}
client: {protocol: raftkv, port: client}
"#;

    #[test]
    fn accepts_a_complete_target() {
        let p = Path::new("t.yaml");
        let spec: TargetSpec = parse_yaml(p, GOOD).unwrap();
        spec.validate(p).unwrap();
        assert_eq!(spec.stop.signal, "TERM");
    }

    #[test]
    fn rejects_an_unknown_key_naming_file_and_line() {
        let text = format!("{GOOD}colour: blue\n");
        let err = parse_yaml::<TargetSpec>(Path::new("targets/x/target.yaml"), &text)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("targets/x/target.yaml:"), "{err}");
        assert!(err.contains("unknown field `colour`"), "{err}");
    }

    #[test]
    fn rejects_an_unknown_placeholder_naming_the_field() {
        let text = GOOD.replace("{node}\", \"--listen", "{nod}\", \"--listen");
        let p = Path::new("t.yaml");
        let spec: TargetSpec = parse_yaml(p, &text).unwrap();
        let err = spec.validate(p).unwrap_err().to_string();
        assert!(
            err.contains("t.yaml: start[2]: unknown placeholder {nod}"),
            "{err}"
        );
    }

    #[test]
    fn rejects_a_client_port_that_is_not_declared() {
        let text = GOOD.replace("port: client}", "port: api}");
        let p = Path::new("t.yaml");
        let spec: TargetSpec = parse_yaml(p, &text).unwrap();
        let err = spec.validate(p).unwrap_err().to_string();
        assert!(err.contains("client.port: must be one of"), "{err}");
    }

    #[test]
    fn fills_placeholders() {
        let mut vars = BTreeMap::new();
        vars.insert("node".to_string(), "n1".to_string());
        vars.insert("port.peer".to_string(), "7001".to_string());
        assert_eq!(fill("{node}:{port.peer}", &vars).unwrap(), "n1:7001");
        assert!(fill("{ip}", &vars).is_err());
    }
}
