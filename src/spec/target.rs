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
    "cluster_state",
];

/// Placeholders only a `membership` command may use: the member it is sent to.
pub const MEMBERSHIP_PLACEHOLDERS: &[&str] = &["member_ip"];

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
    /// The faults the protocol is built to survive, for the protocol comparison
    /// (`faultline compare`): absent = not said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault_model: Option<FaultModel>,
    /// How clock faults reach this target's nodes.
    #[serde(default)]
    pub clock: ClockSupport,
    /// argv run under the clock preload before a run with clock faults (only `{binary}` is
    /// filled); if it fails, clock faults are refused with its error. Defaults to a
    /// `time.sleep` for Python interpreters; `[]` turns it off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_probe: Option<Vec<String>>,
    /// Files a node writes that the run collects (templates, usually under `{data_dir}`).
    #[serde(default)]
    pub logs: Vec<String>,
    /// How to read a node's committed log for the agreement oracle (absent: not checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inspect: Option<Inspect>,
    /// What makes a node who it is, declared for twin faults: a twin of node nX runs the
    /// same start command with nX's template values (name, address, peers, cluster), all
    /// but `{data_dir}`, which is its own. Absent: the target cannot have twins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    /// The files a node keeps its durable state in, for the `corrupt` fault: globs
    /// relative to `{data_dir}` (`log.jsonl`, `wal/*.wal`, `**/*.db`), templated like the
    /// other per-node fields. Empty: the target cannot be corrupted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_files: Vec<String>,
    /// How to take a node out of the cluster's configuration and bring it back, for the
    /// `leave` fault. Absent: the target's membership cannot be changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership: Option<Membership>,
}

/// Commands that change a cluster's members (etcd: `etcdctl member remove/add`). Each is
/// an argv template filled for the node that leaves or joins, plus `{member_ip}`, the
/// address of a running member to ask; run on the controller, as `inspect` commands
/// are, and a non-zero exit fails the fault with its stderr.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Membership {
    /// Take the node out of the configuration; faultline then stops it.
    pub remove: Vec<String>,
    /// Put it back; faultline then empties its data dir (a removed member must not come
    /// back with the state it left with, unless `keep_data`) and starts it with
    /// `{cluster_state}` = `existing` and `{cluster}` = the current members and itself.
    pub add: Vec<String>,
    /// Start a returning node on the data dir it left with.
    #[serde(default)]
    pub keep_data: bool,
}

/// A node's identity beyond its template values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// Files under `{data_dir}` that carry the identity (keys a node was given or made at
    /// its first start): copied from nX's data dir into its twin's before the twin starts.
    /// Files elsewhere (keys in the target's directory) are read by both twins as they are.
    #[serde(default)]
    pub files: Vec<String>,
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
    /// `check: http`: the path every node's probed port must answer with HTTP 200
    /// (e.g. etcd's `/health`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `check: http` / `tcp`: which of `ports` is probed (default: `client.port`). A system
    /// whose health endpoint is on a monitoring port of its own (NATS's `/healthz`) names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
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
    /// `GET {path}` on every node's client port answers HTTP 200.
    Http,
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
    /// Which of `ports` the client connects to (`stdio`: the port whose address the adapter
    /// is given).
    pub port: String,
    /// `stdio` only: the adapter's argv, one process per worker; templates filled for the
    /// worker's node, relative programs resolved like `binary`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Reads served by the node a worker talks to, without a round of consensus (etcd's
    /// `serializable`): fast, possibly stale. Off by default; a workload may ask as well.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub serializable: bool,
    /// `stdio` only: the adapter answers `{"f":"leaders"}` with the nodes that lead, so
    /// faults aimed at leaders (`primaries`, `followers`, …) can be planned against this
    /// target. Absent: it does not (the built-in clients ask each node themselves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaders: Option<bool>,
}

impl ClientSpec {
    /// Whether this client can say which nodes lead, as faults aimed at leaders need.
    pub fn names_leaders(&self) -> bool {
        match self.protocol {
            Protocol::Raftkv | Protocol::Pbft | Protocol::Etcd => true,
            Protocol::Stdio => self.leaders == Some(true),
        }
    }
}

/// The client protocols faultline speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// raftkv's JSON-lines protocol (targets/raftkv/README.md).
    Raftkv,
    /// pbftkv's JSON-lines protocol (targets/pbftkv/README.md): signed requests to every
    /// replica, a result once f + 1 replicas agree; primaries are the leaders.
    Pbft,
    /// etcd's v3 JSON gateway (`/v3/kv/range`, `/v3/kv/put`, `/v3/kv/txn`).
    Etcd,
    /// A user-supplied adapter program speaking JSON lines on stdin/stdout (README,
    /// "Writing a stdio adapter").
    Stdio,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Raftkv => "raftkv",
            Protocol::Pbft => "pbft",
            Protocol::Etcd => "etcd",
            Protocol::Stdio => "stdio",
        }
    }

    /// Whether the client carries any JSON value (strings among them), not only integers.
    pub fn carries_any_value(self) -> bool {
        match self {
            Protocol::Raftkv | Protocol::Pbft => false,
            Protocol::Etcd | Protocol::Stdio => true,
        }
    }

    /// Whether the client can ask for serializable (local, possibly stale) reads.
    pub fn has_serializable_reads(self) -> bool {
        match self {
            // PBFT's reads are ordered like writes: there is no one node to trust alone.
            Protocol::Pbft => false,
            Protocol::Raftkv | Protocol::Etcd | Protocol::Stdio => true,
        }
    }
}

/// What a protocol tolerates, in the comparison's "faults tolerated" column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultModel {
    /// Any minority may crash or be cut off: ⌊(n − 1) / 2⌋ of n (Raft, Paxos, ZAB).
    Crash,
    /// Up to ⌊(n − 1) / 3⌋ of n may do anything, lie included (PBFT, HotStuff).
    Byzantine,
}

impl FaultModel {
    /// How many of `nodes` nodes may fail, and how, in words.
    pub fn tolerated(self, nodes: usize) -> String {
        let n = nodes.max(1);
        match self {
            FaultModel::Crash => format!("{} crashed or cut off", (n - 1) / 2),
            FaultModel::Byzantine => format!("{} arbitrary (Byzantine)", (n - 1) / 3),
        }
    }
}

/// How a node's view of time can be moved. In YAML: `clock: libfaketime` or
/// `clock: {unsupported: {reason: "…"}}` (a plain map, not a YAML tag, as users write it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "ClockSupportYaml")]
pub enum ClockSupport {
    /// Dynamically linked, reads time through libc: libfaketime preloaded works.
    Libfaketime,
    /// Clock faults cannot reach this target's nodes; `reason` is shown when asked for.
    Unsupported { reason: String },
}

/// The YAML shapes of [`ClockSupport`], as written.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
enum ClockSupportYaml {
    Word(String),
    Unsupported { unsupported: UnsupportedClock },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UnsupportedClock {
    reason: String,
}

const CLOCK_FORMS: &str =
    "accepted: `clock: libfaketime` or `clock: {unsupported: {reason: \"…\"}}`";

/// By hand rather than `untagged`: an untagged enum buffers the value and loses its
/// position (errors said 1:1) and says only "did not match any variant".
impl<'de> Deserialize<'de> for ClockSupport {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{self, MapAccess, Visitor};
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ClockSupport;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(CLOCK_FORMS)
            }
            fn visit_str<E: de::Error>(self, w: &str) -> Result<ClockSupport, E> {
                if w == "libfaketime" {
                    Ok(ClockSupport::Libfaketime)
                } else {
                    Err(E::custom(format!(
                        "unknown clock support {}; {CLOCK_FORMS}",
                        super::short_echo(w)
                    )))
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ClockSupport, A::Error> {
                let key: Option<String> = map.next_key()?;
                if key.as_deref() != Some("unsupported") {
                    return Err(de::Error::custom(format!(
                        "a map must have the one key `unsupported`; {CLOCK_FORMS}"
                    )));
                }
                let u: UnsupportedClock = map.next_value().map_err(|e| {
                    de::Error::custom(format!(
                        "{} (`unsupported` takes one field, `reason`); {CLOCK_FORMS}",
                        super::bare(e)
                    ))
                })?;
                if map.next_key::<String>()?.is_some() {
                    return Err(de::Error::custom(format!(
                        "a map must have the one key `unsupported`; {CLOCK_FORMS}"
                    )));
                }
                Ok(ClockSupport::Unsupported { reason: u.reason })
            }
        }
        d.deserialize_any(V)
    }
}

impl From<ClockSupport> for ClockSupportYaml {
    fn from(c: ClockSupport) -> Self {
        match c {
            ClockSupport::Libfaketime => ClockSupportYaml::Word("libfaketime".into()),
            ClockSupport::Unsupported { reason } => ClockSupportYaml::Unsupported {
                unsupported: UnsupportedClock { reason },
            },
        }
    }
}

impl Default for ClockSupport {
    fn default() -> Self {
        ClockSupport::Unsupported {
            reason: "the target does not declare how clock faults reach its nodes (`clock:` in target.yaml)".into(),
        }
    }
}

/// How a node's committed log is read at the end of a run (`checker::agreement`). In YAML:
/// `inspect: client` (the built-in client asks each node) or `inspect: {command: [argv]}`
/// (run on the controller once per node, templates filled for that node, printing JSON
/// lines `{"index": N, "entry": "…"}` on stdout).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "InspectYaml")]
pub enum Inspect {
    Client,
    Command(Vec<String>),
}

/// The YAML shapes of [`Inspect`], as written.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
enum InspectYaml {
    Word(String),
    Command { command: Vec<String> },
}

const INSPECT_FORMS: &str = "accepted: `inspect: client` or `inspect: {command: [program, args…]}`";

/// By hand, as for [`ClockSupport`]: positions in errors, and a message naming the forms.
impl<'de> Deserialize<'de> for Inspect {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{self, MapAccess, Visitor};
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Inspect;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(INSPECT_FORMS)
            }
            fn visit_str<E: de::Error>(self, w: &str) -> Result<Inspect, E> {
                if w == "client" {
                    Ok(Inspect::Client)
                } else {
                    Err(E::custom(format!(
                        "unknown inspect {}; {INSPECT_FORMS}",
                        super::short_echo(w)
                    )))
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Inspect, A::Error> {
                let key: Option<String> = map.next_key()?;
                if key.as_deref() != Some("command") {
                    return Err(de::Error::custom(format!(
                        "a map must have the one key `command`; {INSPECT_FORMS}"
                    )));
                }
                let command: Vec<String> = map.next_value().map_err(|e| {
                    de::Error::custom(format!(
                        "{} (`command` is a list of argv templates); {INSPECT_FORMS}",
                        super::bare(e)
                    ))
                })?;
                if map.next_key::<String>()?.is_some() {
                    return Err(de::Error::custom(format!(
                        "a map must have the one key `command`; {INSPECT_FORMS}"
                    )));
                }
                Ok(Inspect::Command(command))
            }
        }
        d.deserialize_any(V)
    }
}

impl From<Inspect> for InspectYaml {
    fn from(i: Inspect) -> Self {
        match i {
            Inspect::Client => InspectYaml::Word("client".into()),
            Inspect::Command(command) => InspectYaml::Command { command },
        }
    }
}

impl TargetSpec {
    /// The probe run under the clock preload before clock faults are allowed: the declared
    /// one, or for a Python interpreter a short `time.sleep` (what breaks there).
    pub fn clock_probe_argv(&self, binary: &str) -> Vec<String> {
        let argv = match &self.clock_probe {
            Some(argv) => argv.clone(),
            None if is_python(&self.binary) => {
                PYTHON_CLOCK_PROBE.iter().map(|a| a.to_string()).collect()
            }
            None => Vec::new(),
        };
        argv.into_iter()
            .map(|a| a.replace("{binary}", binary))
            .collect()
    }

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
            // Every node listens on every port at its own address: two names for one number
            // is a node that cannot start (found only when it fails to bind).
            let first = self.ports.iter().find(|(_, p)| *p == port).map(|(n, _)| n);
            if let Some(first) = first.filter(|f| *f != name) {
                v.check(
                    false,
                    format!("ports.{name}"),
                    format!("port {port} is also ports.{first}; every port of a node must have its own number (client: {}, the one clients use)", self.client.port),
                );
            }
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
        let stdio = self.client.protocol == Protocol::Stdio;
        v.check(
            !stdio || !self.client.command.is_empty(),
            "client.command",
            "must name the adapter program when client.protocol is stdio",
        );
        v.check(
            stdio || self.client.command.is_empty(),
            "client.command",
            format!(
                "is only for client.protocol stdio (the {} client is built in)",
                self.client.protocol.as_str()
            ),
        );
        v.check(
            stdio || self.client.leaders.is_none(),
            "client.leaders",
            format!(
                "is only for client.protocol stdio (the {} client asks each node who leads)",
                self.client.protocol.as_str()
            ),
        );
        v.check(
            !self.client.serializable || self.client.protocol.has_serializable_reads(),
            "client.serializable",
            format!(
                "the {} client has no serializable reads (the raftkv, etcd and stdio clients do)",
                self.client.protocol.as_str()
            ),
        );
        let http = self.ready.check == ReadyCheck::Http;
        v.check(
            !http
                || self
                    .ready
                    .path
                    .as_deref()
                    .is_some_and(|p| p.starts_with('/')),
            "ready.path",
            "must be set to a path starting with '/' when ready.check is http",
        );
        v.check(
            http || self.ready.path.is_none(),
            "ready.path",
            "is only used with `check: http`",
        );
        if let Some(port) = &self.ready.port {
            v.check(
                self.ready.check != ReadyCheck::Client,
                "ready.port",
                "is only used with `check: http` or `check: tcp` (`check: client` asks the client)",
            );
            v.check(
                self.ports.contains_key(port),
                "ready.port",
                format!(
                    "must be one of ports ({})",
                    self.ports.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            );
        }
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
        for (i, a) in self.client.command.iter().enumerate() {
            templates.push((format!("client.command[{i}]"), a));
        }
        if let Some(id) = &self.identity {
            for (i, f) in id.files.iter().enumerate() {
                let field = format!("identity.files[{i}]");
                let rel = f.strip_prefix("{data_dir}/").unwrap_or_default();
                v.check(
                    !rel.is_empty() && !rel.split('/').any(|c| c == ".." || c.is_empty()),
                    &field,
                    "must be a path under {data_dir} (`{data_dir}/node.key`), without `..`: a twin gets its own data dir and a copy of these files; a file outside it is shared by both twins as it is and needs no entry",
                );
                templates.push((field, f));
            }
        }
        for (i, f) in self.data_files.iter().enumerate() {
            let field = format!("data_files[{i}]");
            v.check(
                !f.is_empty()
                    && !f.starts_with('/')
                    && !f.contains("{data_dir}")
                    && !f.split('/').any(|c| c == ".." || c.is_empty()),
                &field,
                "must be a glob relative to the node's data dir (`log.jsonl`, `wal/*.wal`), without `/` at the start, `{data_dir}` or `..`: a corruption damages only what the node keeps there",
            );
            v.check(
                glob::Pattern::new(f).is_ok(),
                &field,
                "is not a valid glob (`*`, `?`, `[abc]`, `**` between slashes)",
            );
            templates.push((field, f));
        }
        let mut member_templates = Vec::new();
        if let Some(m) = &self.membership {
            for (name, argv) in [("remove", &m.remove), ("add", &m.add)] {
                v.check(
                    !argv.is_empty(),
                    format!("membership.{name}"),
                    "must name a program",
                );
                for (i, a) in argv.iter().enumerate() {
                    member_templates.push((format!("membership.{name}[{i}]"), a));
                }
            }
        }
        match &self.inspect {
            Some(Inspect::Client) => v.check(
                matches!(self.client.protocol, Protocol::Raftkv | Protocol::Pbft),
                "inspect",
                format!(
                    "`inspect: client` needs a client with a request for a node's committed log; the {} client has none ({}); declare `inspect: {{command: [program, args…]}}` instead, or leave inspect out",
                    self.client.protocol.as_str(),
                    match self.client.protocol {
                        Protocol::Etcd => "etcd's v3 gateway exposes no committed-log read",
                        _ => "a stdio adapter answers ops only",
                    }
                ),
            ),
            Some(Inspect::Command(argv)) => {
                v.check(
                    !argv.is_empty(),
                    "inspect.command",
                    "must name a program",
                );
                for (i, a) in argv.iter().enumerate() {
                    templates.push((format!("inspect.command[{i}]"), a));
                }
            }
            None => {}
        }
        for (field, t) in templates {
            if let Err(rule) = check_template(t, &self.ports) {
                v.check(false, field, rule);
            }
        }
        for (field, t) in member_templates {
            if let Err(rule) = check_template_with(t, &self.ports, MEMBERSHIP_PLACEHOLDERS) {
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
pub fn check_template(t: &str, ports: &BTreeMap<String, u16>) -> Result<(), String> {
    check_template_with(t, ports, &[])
}

/// [`check_template`] where `extra` placeholders are known too.
fn check_template_with(
    t: &str,
    ports: &BTreeMap<String, u16>,
    extra: &[&str],
) -> Result<(), String> {
    for name in placeholders_of(t)? {
        let known = PLACEHOLDERS.contains(&name)
            || extra.contains(&name)
            || name
                .strip_prefix("port.")
                .is_some_and(|p| ports.contains_key(p));
        if !known {
            let port_names: Vec<String> = ports.keys().map(|p| format!("{{port.{p}}}")).collect();
            return Err(format!(
                "unknown placeholder {{{name}}}; known: {}{}",
                PLACEHOLDERS
                    .iter()
                    .chain(extra)
                    .map(|p| format!("{{{p}}}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if port_names.is_empty() {
                    " (no ports declared)".to_string()
                } else {
                    format!(", {}", port_names.join(", "))
                }
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

/// CPython ≥ 3.11 sleeps with `clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)`, which
/// Debian's libfaketime 0.9.10 breaks when the monotonic clock is not faked (EINVAL).
const PYTHON_CLOCK_PROBE: &[&str] = &["{binary}", "-c", "import time; time.sleep(0.01)"];

/// How long a clock probe may take; a wedged sleep must not wedge planning.
const CLOCK_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `binary` is a Python interpreter (`python3`, `python3.11`, `pypy3`…).
fn is_python(binary: &str) -> bool {
    let name = Path::new(binary)
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    name.starts_with("python") || name.starts_with("pypy")
}

/// Where Debian's libfaketime lives; the multi-threaded variant, since targets are.
/// (Here rather than in `hosts::clock` because plan-time probes need it too.)
pub const LIBFAKETIME_CANDIDATES: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/faketime/libfaketimeMT.so.1",
    "/usr/local/lib/faketime/libfaketimeMT.so.1",
];

/// Find libfaketime, or say how to get it.
pub fn find_libfaketime() -> Result<std::path::PathBuf> {
    if let Ok(p) = std::env::var("FAULTLINE_LIBFAKETIME") {
        return Ok(std::path::PathBuf::from(p));
    }
    for c in LIBFAKETIME_CANDIDATES {
        if Path::new(c).is_file() {
            return Ok(std::path::PathBuf::from(c));
        }
    }
    anyhow::bail!("clock faults need libfaketime, which is not installed (Debian: apt-get install libfaketime faketime)")
}

/// The environment that makes a program read its wall clock through `offset_file`
/// (`hosts::clock` explains the choices); one definition, so a probe sees what nodes see.
pub fn preload_env(lib: &str, offset_file: &str) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert("LD_PRELOAD".into(), lib.to_string());
    env.insert("FAKETIME_TIMESTAMP_FILE".into(), offset_file.to_string());
    env.insert("FAKETIME_NO_CACHE".into(), "1".into());
    env.insert("DONT_FAKE_MONOTONIC".into(), "1".into());
    env
}

/// Why a clock probe failed, from how it ended (`exit status: 1`) and its stderr: the
/// same words whether it ran here or on an SSH host.
pub fn probe_failure(argv: &[String], status: &str, stderr: &str) -> String {
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    format!(
        "`{}` fails under libfaketime ({status}: {})",
        argv.join(" "),
        last.trim()
    )
}

/// Why clock faults are refused for a target whose probe failed (`why`, from
/// [`probe_clock`] or a probe on an SSH host), after "nemesis N injects K faults, but ".
pub fn clock_refusal(target: &str, why: &str) -> String {
    format!(
        "target {target}'s nodes would not survive them: {why}. With Debian's libfaketime 0.9.10, CPython 3.11's time.sleep() fails this way while the monotonic clock is left real (README, \"Clock faults\"); a target that never calls it can say so with `clock_probe: []`."
    )
}

/// Run `argv` on this machine under the clock preload, its wall clock set back 30 s (the
/// failure measured does not depend on the offset). `Ok(None)` when it ran cleanly or
/// there is nothing to probe with (no libfaketime: the run says so when it needs it);
/// `Ok(Some(why))` when it failed.
pub fn probe_clock(argv: &[String]) -> Result<Option<String>> {
    use anyhow::Context;
    let (Some(program), Ok(lib)) = (argv.first(), find_libfaketime()) else {
        return Ok(None);
    };
    let dir = tempfile::tempdir().context("cannot create a directory for the clock probe")?;
    let file = dir.path().join("probe.faketime");
    std::fs::write(&file, "-30.000\n")
        .with_context(|| format!("cannot write {}", file.display()))?;
    let env = preload_env(&lib.display().to_string(), &file.display().to_string());
    let mut child = std::process::Command::new(program)
        .args(&argv[1..])
        .envs(&env)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run the clock probe {program}"))?;
    let deadline = std::time::Instant::now() + CLOCK_PROBE_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for the clock probe")? {
            break status;
        }
        if std::time::Instant::now() > deadline {
            // Our own child: end it and reap it so no probe outlives planning.
            let _ = child.kill();
            let _ = child.wait();
            return Ok(Some(format!(
                "`{}` did not finish within {} s under libfaketime",
                argv.join(" "),
                CLOCK_PROBE_TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if status.success() {
        return Ok(None);
    }
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    Ok(Some(probe_failure(argv, &status.to_string(), &err)))
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

    /// The message `validate` gives for a target that parses but breaks a rule.
    fn validation_error(text: &str) -> String {
        let p = Path::new("t.yaml");
        let spec: TargetSpec = parse_yaml(p, text).unwrap();
        spec.validate(p).unwrap_err().to_string()
    }

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
        let err = validation_error(&text);
        assert!(
            err.contains("t.yaml: start[2]: unknown placeholder {nod}"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_port_placeholder_lists_the_ports_declared() {
        let text = GOOD.replace("{port.client}", "{port.api}");
        let err = validation_error(&text);
        assert!(err.contains("unknown placeholder {port.api}"), "{err}");
        assert!(
            err.contains("{port.client}") && err.contains("{port.peer}"),
            "{err}"
        );
    }

    #[test]
    fn rejects_a_client_port_that_is_not_declared() {
        let text = GOOD.replace("port: client}", "port: api}");
        let err = validation_error(&text);
        assert!(err.contains("client.port: must be one of"), "{err}");
    }

    #[test]
    fn a_stdio_client_needs_a_command() {
        let text = GOOD.replace(
            "protocol: raftkv, port: client}",
            "protocol: stdio, port: client}",
        );
        let err = validation_error(&text);
        assert!(
            err.contains("client.command: must name the adapter"),
            "{err}"
        );
        assert!(
            !err.contains("ready.check"),
            "check: client works through an adapter: {err}"
        );

        let text = GOOD
            .replace("ready: {timeout: 10s}", "ready: {timeout: 10s, check: http, path: /health}")
            .replace(
                "protocol: raftkv, port: client}",
                "protocol: stdio, port: client, command: [\"{target_dir}/a.py\", \"{nod}\"], serializable: true}",
            );
        let err = validation_error(&text);
        assert!(
            err.contains("client.command[1]: unknown placeholder {nod}"),
            "{err}"
        );
        assert!(!err.contains("ready"), "{err}");
    }

    #[test]
    fn serializable_reads_and_commands_are_refused_where_the_client_has_none() {
        let text = GOOD.replace(
            "protocol: raftkv, port: client}",
            "protocol: pbft, port: client, serializable: true, command: [x]}",
        );
        let err = validation_error(&text);
        assert!(
            err.contains("client.serializable: the pbft client has no serializable reads"),
            "{err}"
        );
        assert!(
            err.contains("client.command: is only for client.protocol stdio"),
            "{err}"
        );
    }

    #[test]
    fn only_a_stdio_adapter_declares_whether_it_names_leaders() {
        let p = Path::new("t.yaml");
        let client = |c: &str| {
            let text = GOOD.replace("{protocol: raftkv, port: client}", c);
            let spec: TargetSpec = parse_yaml(p, &text).unwrap();
            spec.validate(p).map(|()| spec.client.names_leaders())
        };
        assert!(client("{protocol: raftkv, port: client}").unwrap());
        let stdio = "{protocol: stdio, port: client, command: [a.py]";
        assert!(!client(&format!("{stdio}}}")).unwrap());
        assert!(!client(&format!("{stdio}, leaders: false}}")).unwrap());
        assert!(client(&format!("{stdio}, leaders: true}}")).unwrap());
        let err = client("{protocol: etcd, port: client, leaders: true}")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("client.leaders: is only for client.protocol stdio"),
            "{err}"
        );
    }

    #[test]
    fn clock_support_reads_and_writes_as_users_write_it() {
        let p = Path::new("t.yaml");
        let text =
            format!("{GOOD}clock: {{unsupported: {{reason: Go reads time via the vDSO}}}}\n");
        let spec: TargetSpec = parse_yaml(p, &text).unwrap();
        assert_eq!(
            spec.clock,
            ClockSupport::Unsupported {
                reason: "Go reads time via the vDSO".into()
            }
        );
        let back: TargetSpec = parse_yaml(p, &serde_yaml::to_string(&spec).unwrap()).unwrap();
        assert_eq!(back, spec);
        let text = format!("{GOOD}clock: libfaketime\n");
        assert_eq!(
            parse_yaml::<TargetSpec>(p, &text).unwrap().clock,
            ClockSupport::Libfaketime
        );
        let err = parse_yaml::<TargetSpec>(p, &format!("{GOOD}clock: faketime\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown clock support \"faketime\""), "{err}");
    }

    #[test]
    fn an_http_probe_needs_a_path() {
        let text = GOOD.replace(
            "ready: {timeout: 10s}",
            "ready: {timeout: 10s, check: http}",
        );
        let err = validation_error(&text);
        assert!(err.contains("ready.path: must be set"), "{err}");
    }

    #[test]
    fn a_readiness_port_must_be_declared_and_probed_by_http_or_tcp() {
        let ok = GOOD.replace(
            "ready: {timeout: 10s}",
            "ready: {timeout: 10s, check: http, path: /healthz, port: peer}",
        );
        let p = Path::new("t.yaml");
        let spec: TargetSpec = parse_yaml(p, &ok).unwrap();
        spec.validate(p).unwrap();
        let err = validation_error(&GOOD.replace(
            "ready: {timeout: 10s}",
            "ready: {timeout: 10s, check: tcp, port: monitor}",
        ));
        assert!(err.contains("ready.port: must be one of ports"), "{err}");
        let err = validation_error(
            &GOOD.replace("ready: {timeout: 10s}", "ready: {timeout: 10s, port: peer}"),
        );
        assert!(err.contains("ready.port: is only used with"), "{err}");
    }

    #[test]
    fn fills_placeholders() {
        let mut vars = BTreeMap::new();
        vars.insert("node".to_string(), "n1".to_string());
        vars.insert("port.peer".to_string(), "7001".to_string());
        assert_eq!(fill("{node}:{port.peer}", &vars).unwrap(), "n1:7001");
        assert!(fill("{ip}", &vars).is_err());
    }

    #[test]
    fn a_broken_clock_is_reported_at_its_line_with_the_accepted_forms() {
        let p = Path::new("targets/x/target.yaml");
        let lines = GOOD.lines().count();
        for bad in [
            "clock: {unsupported: {}}",
            "clock: {later: {reason: x}}",
            "clock: [1]",
        ] {
            let err = parse_yaml::<TargetSpec>(p, &format!("{GOOD}{bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("targets/x/target.yaml:{}:", lines + 1)),
                "{bad}: {err}"
            );
            assert!(err.contains("clock"), "{err}");
            assert!(err.contains("`clock: libfaketime`"), "{bad}: {err}");
        }
    }

    #[test]
    fn refuses_two_ports_with_one_number() {
        let p = Path::new("t.yaml");
        let spec: TargetSpec = parse_yaml(
            p,
            &GOOD.replace("{peer: 7001, client: 7002}", "{peer: 7001, client: 7001}"),
        )
        .unwrap();
        let err = spec.validate(p).unwrap_err().to_string();
        assert!(
            err.contains("t.yaml: ports.peer: port 7001 is also ports.client; every port of a node must have its own number"),
            "{err}"
        );
    }

    #[test]
    fn identity_files_must_live_under_the_data_dir_and_are_located() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("target.yaml");
        let text = format!(
            "{GOOD}identity:\n  files:\n    - \"{{data_dir}}/node.key\"\n    - \"{{target_dir}}/keys/{{node}}.pem\"\n    - \"{{data_dir}}/../escape\"\n    - \"{{data_dir}}/{{colour}}\"\n"
        );
        std::fs::write(&p, &text).unwrap();
        let spec: TargetSpec = parse_yaml(&p, &text).unwrap();
        let err = spec.validate(&p).unwrap_err().to_string();
        let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
        let at = |l: usize| format!("{}:{l}:", p.display());
        assert!(
            err.contains(&format!(
                "{}7: identity.files[1]: must be a path under {{data_dir}}",
                at(line_of("target_dir"))
            )),
            "{err}"
        );
        assert!(
            err.contains(&format!("{}7: identity.files[2]", at(line_of("escape")))),
            "{err}"
        );
        assert!(err.contains("unknown placeholder {colour}"), "{err}");
        assert!(!err.contains("files[0]"), "{err}");
        let ok: TargetSpec = parse_yaml(&p, &format!("{GOOD}identity: {{}}\n")).unwrap();
        ok.validate(&p).unwrap();
        assert_eq!(ok.identity, Some(Identity::default()));
    }

    #[test]
    fn membership_commands_may_name_the_member_they_ask_and_nothing_else_may() {
        let good = format!(
            "{GOOD}membership:\n  remove: [./m.sh, remove, \"{{member_ip}}:{{port.client}}\", \"{{node}}\"]\n  add: [./m.sh, add, \"{{member_ip}}\", \"{{node}}\", \"{{cluster_state}}\"]\n"
        );
        let p = Path::new("t.yaml");
        let spec: TargetSpec = parse_yaml(p, &good).unwrap();
        spec.validate(p).unwrap();
        let m = spec.membership.unwrap();
        assert_eq!(m.add.len(), 5);
        assert!(!m.keep_data);
        let err = validation_error(&GOOD.replace("\"--id\"", "\"--via\", \"{member_ip}\""));
        assert!(err.contains("unknown placeholder {member_ip}"), "{err}");
        let err = validation_error(&format!(
            "{GOOD}membership:\n  remove: []\n  add: [x, \"{{colour}}\"]\n"
        ));
        assert!(
            err.contains("membership.remove: must name a program"),
            "{err}"
        );
        assert!(
            err.contains("membership.add[1]: unknown placeholder {colour}"),
            "{err}"
        );
        assert!(
            err.contains("{member_ip}"),
            "the known list names it: {err}"
        );
    }

    #[test]
    fn inspect_has_two_forms_that_survive_a_round_trip() {
        let p = Path::new("t.yaml");
        for (yaml, want) in [
            ("inspect: client", Inspect::Client),
            (
                "inspect: {command: [\"{target_dir}/log.sh\", \"{ip}:{port.client}\", \"{node}\"]}",
                Inspect::Command(vec![
                    "{target_dir}/log.sh".into(),
                    "{ip}:{port.client}".into(),
                    "{node}".into(),
                ]),
            ),
        ] {
            let spec: TargetSpec = parse_yaml(p, &format!("{GOOD}{yaml}\n")).unwrap();
            spec.validate(p).unwrap();
            assert_eq!(spec.inspect.as_ref(), Some(&want));
            let again: TargetSpec = parse_yaml(p, &serde_yaml::to_string(&spec).unwrap()).unwrap();
            assert_eq!(again.inspect, Some(want));
        }
        let spec: TargetSpec = parse_yaml(p, GOOD).unwrap();
        assert_eq!(spec.inspect, None);
    }

    #[test]
    fn a_broken_inspect_is_reported_at_its_line_with_the_accepted_forms() {
        let p = Path::new("targets/x/target.yaml");
        let lines = GOOD.lines().count();
        for bad in [
            "inspect: log",
            "inspect: {cmd: [x]}",
            "inspect: {command: x}",
        ] {
            let err = parse_yaml::<TargetSpec>(p, &format!("{GOOD}{bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("targets/x/target.yaml:{}:", lines + 1)),
                "{bad}: {err}"
            );
            assert!(err.contains("`inspect: client`"), "{bad}: {err}");
        }
    }

    #[test]
    fn inspect_client_is_refused_for_clients_without_a_log_request_at_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("target.yaml");
        let text = format!(
            "{}inspect: client\n",
            GOOD.replace("protocol: raftkv", "protocol: etcd")
        );
        std::fs::write(&path, &text).unwrap();
        let spec: TargetSpec = parse_yaml(&path, &text).unwrap();
        let err = spec.validate(&path).unwrap_err().to_string();
        let line = text.lines().count();
        assert!(
            err.starts_with(&format!("{}:{line}:", path.display())),
            "{err}"
        );
        assert!(
            err.contains("inspect: `inspect: client` needs a client with a request for a node's committed log; the etcd client has none"),
            "{err}"
        );
        let err = validation_error(&format!("{GOOD}inspect: {{command: [\"{{nod}}\"]}}\n"));
        assert!(
            err.contains("inspect.command[0]: unknown placeholder {nod}"),
            "{err}"
        );
        let err = validation_error(&format!("{GOOD}inspect: {{command: []}}\n"));
        assert!(
            err.contains("inspect.command: must name a program"),
            "{err}"
        );
    }

    #[test]
    fn data_files_are_globs_under_the_data_dir() {
        let p = Path::new("target.yaml");
        let text = format!(
            "{GOOD}data_files:\n  - \"wal/*.wal\"\n  - \"{{node}}.db\"\n  - \"/var/lib/x\"\n  - \"../escape\"\n  - \"{{data_dir}}/log\"\n  - \"[oops\"\n  - \"{{colour}}.log\"\n"
        );
        let spec: TargetSpec = parse_yaml(p, &text).unwrap();
        let err = spec.validate(p).unwrap_err().to_string();
        for want in [
            "data_files[2]: must be a glob relative to the node's data dir",
            "data_files[3]: must be a glob relative",
            "data_files[4]: must be a glob relative",
            "data_files[5]: is not a valid glob",
            "data_files[6]: unknown placeholder {colour}",
        ] {
            assert!(err.contains(want), "{want} missing from {err}");
        }
        assert!(
            !err.contains("data_files[0]") && !err.contains("data_files[1]"),
            "{err}"
        );
    }
}
