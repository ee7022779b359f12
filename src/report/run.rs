//! A run directory read back for reporting: `results.json`, `plan.yaml` and
//! `history.jsonl` (and `wire.jsonl` when there is one), turned into what pages and plots
//! draw — client *calls* (an invoke paired with its completion), *fault windows* from the
//! nemesis ops, each node's clock offset over time, and packets per second on the wire.
//!
//! Everything is derived from the files alone, so `faultline report` re-renders any run,
//! including one whose controller died. The plan is kept as a generic YAML value: a page
//! must still render for a run written by an older faultline whose plan no longer parses
//! as today's [`crate::spec::Plan`].

use crate::history::{self, Format, Op, OpType, Process};
use crate::spec::schedule::FaultEdge;
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Largest history a report reads (about 1 GiB of ops in memory): past this, say so
/// instead of exhausting memory.
pub const MAX_OPS: usize = 5_000_000;

/// Largest `results.json` / `plan.yaml` read (they are small; a bigger one is not ours).
const MAX_SMALL_FILE_BYTES: u64 = 64 << 20;

/// How a call ended, for colouring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    Ok,
    Fail,
    Info,
    /// No completion before the history ended (a crashed controller, or the final phase
    /// gave up): drawn like info, open to the end.
    Pending,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [Outcome::Ok, Outcome::Fail, Outcome::Info, Outcome::Pending];

    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Info => "info",
            Outcome::Pending => "pending",
        }
    }

    /// The colour every page and plot uses for this outcome (#rrggbb).
    pub fn colour(self) -> (u8, u8, u8) {
        match self {
            Outcome::Ok => (0x2b, 0x6c, 0xb0),
            Outcome::Fail => (0xd6, 0x27, 0x28),
            Outcome::Info => (0xf0, 0x8c, 0x00),
            Outcome::Pending => (0x88, 0x88, 0x88),
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Outcome::Ok => 0,
            Outcome::Fail => 1,
            Outcome::Info => 2,
            Outcome::Pending => 3,
        }
    }
}

/// The fault kinds a nemesis injects; every plot shades their windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    Partition,
    Pause,
    Kill,
    Clock,
    Loss,
    Delay,
    Twin,
    PowerFail,
    Corrupt,
    Leave,
}

impl FaultKind {
    pub const ALL: [FaultKind; 10] = [
        FaultKind::Partition,
        FaultKind::Pause,
        FaultKind::Kill,
        FaultKind::Clock,
        FaultKind::Loss,
        FaultKind::Delay,
        FaultKind::Twin,
        FaultKind::PowerFail,
        FaultKind::Corrupt,
        FaultKind::Leave,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Partition => "partition",
            FaultKind::Pause => "pause",
            FaultKind::Kill => "kill",
            FaultKind::Clock => "clock",
            FaultKind::Loss => "loss",
            FaultKind::Delay => "delay",
            FaultKind::Twin => "twin",
            FaultKind::PowerFail => "power-fail",
            FaultKind::Corrupt => "corrupt",
            FaultKind::Leave => "leave",
        }
    }

    /// Band colour (drawn translucent); chosen apart from the outcome colours.
    pub fn colour(self) -> (u8, u8, u8) {
        match self {
            FaultKind::Partition => (0x94, 0x67, 0xbd),
            FaultKind::Pause => (0xbc, 0xbd, 0x22),
            FaultKind::Kill => (0x50, 0x50, 0x50),
            FaultKind::Clock => (0x17, 0xbe, 0xcf),
            FaultKind::Loss => (0xe3, 0x77, 0xc2),
            FaultKind::Delay => (0x8c, 0x56, 0x4b),
            FaultKind::Twin => (0x1f, 0x4e, 0x79),
            FaultKind::PowerFail => (0x99, 0x33, 0x00),
            FaultKind::Corrupt => (0x6b, 0x8e, 0x23),
            FaultKind::Leave => (0xd6, 0x27, 0x28),
        }
    }

    /// The kind a nemesis `f` starts, if it starts one.
    pub fn started_by(f: &str) -> Option<FaultKind> {
        match FaultEdge::of(f)? {
            FaultEdge::Start(k) => FaultKind::of_group(k.heal_group()),
            FaultEdge::Heal(_) => None,
        }
    }

    /// The kind a nemesis `f` heals, if it heals one.
    pub fn healed_by(f: &str) -> Option<FaultKind> {
        match FaultEdge::of(f)? {
            FaultEdge::Heal(group) => FaultKind::of_group(group),
            FaultEdge::Start(_) => None,
        }
    }

    /// A band is drawn per heal group ([`crate::spec::nemesis::FaultKind::heal_group`]):
    /// a clock bump and a strobe share one.
    fn of_group(group: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|k| k.name() == group)
    }
}

/// One client operation: its invocation and (if any) its completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    pub process: u64,
    /// Index into [`RunData::fs`].
    pub f: u16,
    pub outcome: Outcome,
    pub start_ns: u64,
    /// `None` while pending.
    pub end_ns: Option<u64>,
    /// Position of the invoke in [`RunData::ops`].
    pub invoke: u32,
    /// Position of the completion in [`RunData::ops`].
    pub complete: Option<u32>,
}

impl Call {
    /// Latency of a completed call.
    pub fn latency_ns(&self) -> Option<u64> {
        self.end_ns.map(|e| e.saturating_sub(self.start_ns))
    }
}

/// A fault in force from a start op to the next heal of its kind.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultWindow {
    pub kind: FaultKind,
    /// The nemesis `f` that started it (`bump-clock`, `start-partition` …).
    pub f: String,
    pub start_ns: u64,
    /// `None`: never healed before the history ended.
    pub end_ns: Option<u64>,
    pub nodes: Vec<String>,
    /// A one-line description: the grudge, the offsets, the loss percentage.
    pub detail: String,
    pub start_index: u64,
    pub end_index: Option<u64>,
}

/// One node's clock offset as a step function.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClockTrack {
    /// `(time_ns, offset_ms)` from that time on.
    pub steps: Vec<(u64, i64)>,
    /// Strobes too fast to draw as steps: `(start_ns, end_ns, offset_ms)`, the clock
    /// flipping between 0 and the offset throughout.
    pub bands: Vec<(u64, u64, i64)>,
}

/// Most step points drawn for one strobe; a faster strobe is drawn as a band.
const MAX_STROBE_STEPS: u64 = 2_000;

/// Everything a report shows about one run.
#[derive(Debug, Clone)]
pub struct RunData {
    pub dir: PathBuf,
    /// `results.json` (or what `--recheck` put in its place).
    pub results: Value,
    /// `plan.yaml` as a generic value; `Null` when the file is missing.
    pub plan: Value,
    pub ops: Vec<Op>,
    pub calls: Vec<Call>,
    /// The distinct client fs, in order of first appearance.
    pub fs: Vec<String>,
    pub faults: Vec<FaultWindow>,
    /// Per node, only when a clock fault ran.
    pub clocks: BTreeMap<String, ClockTrack>,
    /// Time of the last op (0 for an empty history).
    pub end_ns: u64,
    /// Packets per second on the wire, from `wire.jsonl` (`None` without one).
    pub wire: Option<super::wire::Rates>,
}

/// Read a small JSON or YAML file as a generic value, with its size bounded.
fn read_small(path: &Path) -> Result<String> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    if len > MAX_SMALL_FILE_BYTES {
        bail!(
            "{}: {len} bytes is more than the {MAX_SMALL_FILE_BYTES} bytes a report reads from it",
            path.display()
        );
    }
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// `results.json` of `dir`, `None` when the run has none (it was not checked).
pub fn read_results(dir: &Path) -> Result<Option<Value>> {
    let path = dir.join("results.json");
    if !path.exists() {
        return Ok(None);
    }
    let text = read_small(&path)?;
    let v: Value = serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "{}:{}: not valid JSON: {e}",
            path.display(),
            e.line().max(1)
        )
    })?;
    if !v.is_object() {
        bail!("{}: expected a JSON object", path.display());
    }
    Ok(Some(v))
}

/// `plan.yaml` of `dir` as a generic value (`Null` when missing).
pub fn read_plan(dir: &Path) -> Result<Value> {
    let path = dir.join("plan.yaml");
    if !path.exists() {
        return Ok(Value::Null);
    }
    let text = read_small(&path)?;
    crate::spec::check_yaml(&path, &text)?;
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| {
        let line = e.location().map_or(0, |l| l.line());
        anyhow::anyhow!("{}:{line}: not valid YAML: {e}", path.display())
    })?;
    Ok(yaml_to_json(yaml))
}

/// YAML to JSON for display. Enum variants (YAML tags such as `!one`, as serde writes
/// them) become `{"one": value}`; non-string keys are written as YAML text.
fn yaml_to_json(v: serde_yaml::Value) -> Value {
    use serde_yaml::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64().map_or(Value::Null, Value::from)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(seq) => Value::Array(seq.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        Y::String(s) => s,
                        other => serde_yaml::to_string(&other)
                            .map(|s| s.trim_end().to_string())
                            .unwrap_or_default(),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        Y::Tagged(t) => {
            let tag = t.tag.to_string();
            let mut m = serde_json::Map::new();
            m.insert(
                tag.trim_start_matches('!').to_string(),
                yaml_to_json(t.value),
            );
            Value::Object(m)
        }
    }
}

impl RunData {
    /// Load a run directory; `results` replaces `results.json` when given (a recheck).
    pub fn load(dir: &Path, results: Option<Value>) -> Result<RunData> {
        if !dir.is_dir() {
            bail!("{}: not a run directory", dir.display());
        }
        let results = match results {
            Some(r) => r,
            None => read_results(dir)?.with_context(|| {
                format!(
                    "{}: no results.json (the run was not checked); use --recheck",
                    dir.display()
                )
            })?,
        };
        let plan = read_plan(dir)?;
        let history = dir.join("history.jsonl");
        let ops = if history.exists() {
            read_ops(&history)?
        } else {
            Vec::new()
        };
        let mut run = RunData::from_parts(dir, results, plan, ops);
        run.wire = super::wire::read_rates(dir);
        Ok(run)
    }

    /// Derive calls, fault windows and clocks from ops already in memory.
    pub fn from_parts(dir: &Path, results: Value, plan: Value, ops: Vec<Op>) -> RunData {
        let end_ns = ops.iter().map(|o| o.time_ns).max().unwrap_or(0);
        let (calls, fs) = pair_calls(&ops);
        let faults = fault_windows(&ops);
        let clocks = clock_tracks(&ops, end_ns);
        RunData {
            dir: dir.to_path_buf(),
            results,
            plan,
            ops,
            calls,
            fs,
            faults,
            clocks,
            end_ns,
            wire: None,
        }
    }

    /// A top-level string field of results.json ("" when absent).
    pub fn result_str(&self, field: &str) -> String {
        match self.results.get(field) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(v) => v.to_string(),
        }
    }

    /// The verdict recorded in results.json ("unknown" when absent or unreadable).
    pub fn verdict(&self) -> crate::checker::Verdict {
        self.results
            .get("verdict")
            .cloned()
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or(crate::checker::Verdict::Unknown)
    }

    /// The fault kinds that occur in this run, in [`FaultKind::ALL`] order.
    pub fn fault_kinds(&self) -> Vec<FaultKind> {
        FaultKind::ALL
            .into_iter()
            .filter(|k| self.faults.iter().any(|w| w.kind == *k))
            .collect()
    }
}

/// Read every op of a JSONL history, bounded by [`MAX_OPS`].
pub fn read_ops(path: &Path) -> Result<Vec<Op>> {
    let mut ops = Vec::new();
    for item in history::open(path, Format::Jsonl)? {
        let (_, op) = item?;
        if ops.len() == MAX_OPS {
            bail!(
                "{}: more than {MAX_OPS} ops; a report of this size is not supported",
                path.display()
            );
        }
        ops.push(op);
    }
    Ok(ops)
}

/// Pair each client invoke with the next completion of the same process. Completions
/// without an invoke are left out (the checker reports such histories; a page still
/// shows what it can).
fn pair_calls(ops: &[Op]) -> (Vec<Call>, Vec<String>) {
    let mut fs: Vec<String> = Vec::new();
    let mut f_index: HashMap<&str, u16> = HashMap::new();
    let mut open: HashMap<u64, usize> = HashMap::new();
    let mut calls: Vec<Call> = Vec::new();
    for (pos, op) in ops.iter().enumerate() {
        let Process::Client(p) = op.process else {
            continue;
        };
        match op.kind {
            OpType::Invoke => {
                let f = match f_index.get(op.f.as_str()) {
                    Some(&i) => i,
                    None => {
                        // More distinct fs than u16 holds is not a real workload; fold
                        // the rest into the last slot rather than fail the page.
                        let i = u16::try_from(fs.len()).unwrap_or(u16::MAX);
                        if fs.len() <= u16::MAX as usize {
                            fs.push(op.f.clone());
                            f_index.insert(op.f.as_str(), i);
                        }
                        i
                    }
                };
                open.insert(p, calls.len());
                calls.push(Call {
                    process: p,
                    f,
                    outcome: Outcome::Pending,
                    start_ns: op.time_ns,
                    end_ns: None,
                    invoke: pos as u32,
                    complete: None,
                });
            }
            OpType::Ok | OpType::Fail | OpType::Info => {
                if let Some(c) = open.remove(&p) {
                    let call = &mut calls[c];
                    call.outcome = match op.kind {
                        OpType::Ok => Outcome::Ok,
                        OpType::Fail => Outcome::Fail,
                        _ => Outcome::Info,
                    };
                    call.end_ns = Some(op.time_ns);
                    call.complete = Some(pos as u32);
                }
            }
        }
    }
    (calls, fs)
}

/// The nodes listed in a nemesis op's value (`{"nodes": [...]}` or a bare list).
fn value_nodes(v: &Value) -> Vec<String> {
    let list = match v {
        Value::Array(a) => Some(a),
        Value::Object(m) => m.get("nodes").and_then(Value::as_array),
        _ => None,
    };
    list.map(|a| {
        a.iter()
            .map(|n| match n {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect()
    })
    .unwrap_or_default()
}

/// A one-line description of what a fault did.
fn fault_detail(f: &str, v: &Value) -> String {
    let nodes = value_nodes(v).join(", ");
    match f {
        "start-partition" => match v.get("grudge") {
            Some(Value::String(g)) => g.clone(),
            Some(Value::Object(g)) => {
                let parts: Vec<String> = g
                    .iter()
                    .map(|(n, drops)| {
                        let d: Vec<String> = drops
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .map(|x| crate::report::escape::value_text(x, 40))
                                    .collect()
                            })
                            .unwrap_or_default();
                        format!("{n} drops {}", d.join(" "))
                    })
                    .collect();
                parts.join("; ")
            }
            _ => nodes,
        },
        "bump-clock" => match v.get("offsets_ms").and_then(Value::as_object) {
            Some(m) => m
                .iter()
                .map(|(n, o)| format!("{n} {}", signed_ms(o.as_i64().unwrap_or(0))))
                .collect::<Vec<_>>()
                .join(", "),
            None => nodes,
        },
        "strobe-clock" => format!(
            "{nodes}: 0 ↔ {} every {} ms",
            signed_ms(v.get("offset_ms").and_then(Value::as_i64).unwrap_or(0)),
            v.get("period_ms").and_then(Value::as_i64).unwrap_or(0)
        ),
        "start-loss" => match v.get("percent") {
            Some(p) => format!("{nodes}: {p} % of packets dropped"),
            None => nodes,
        },
        "corrupt" => corrupt_detail(v),
        "twins-round" => {
            let groups: Vec<String> = v
                .get("groups")
                .and_then(Value::as_array)
                .map(|gs| gs.iter().map(|g| value_nodes(g).join(",")).collect())
                .unwrap_or_default();
            let lead = match v.get("leader").and_then(Value::as_str) {
                Some(l) => format!(" (leader {l})"),
                None => String::new(),
            };
            format!(
                "round {}: {}{lead}",
                v.get("round").and_then(Value::as_u64).unwrap_or(0),
                groups.join(" | ")
            )
        }
        _ => nodes,
    }
}

/// What a corruption changed, per file: `n2:log.jsonl 31 bits flipped in bytes 84…9120`,
/// `n1:log.jsonl cut by 37 bytes to 12345`, `n3:hard_state.json bytes 0..27 restored from
/// armed (2 changed)`.
fn corrupt_detail(v: &Value) -> String {
    let changes = v
        .get("changes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut per_file: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for c in &changes {
        let key = format!(
            "{}:{}",
            c["node"].as_str().unwrap_or("?"),
            c["file"].as_str().unwrap_or("?")
        );
        per_file.entry(key).or_default().push(c);
    }
    let num = |c: &Value, k: &str| c.get(k).and_then(Value::as_u64).unwrap_or(0);
    let parts: Vec<String> = per_file
        .iter()
        .map(|(file, cs)| match cs[0]["damage"].as_str() {
            Some("bitflip") => {
                let bits: u32 = cs.iter().map(|c| (num(c, "mask") as u8).count_ones()).sum();
                let first = cs.iter().map(|c| num(c, "offset")).min().unwrap_or(0);
                let last = cs.iter().map(|c| num(c, "offset")).max().unwrap_or(0);
                format!("{file} {bits} bit(s) flipped in bytes {first}…{last}")
            }
            Some("truncate") => format!(
                "{file} cut by {} bytes to {}",
                num(cs[0], "length"),
                num(cs[0], "offset")
            ),
            Some("restore") => format!(
                "{file} bytes {}..{} restored from {} ({} changed)",
                num(cs[0], "offset"),
                num(cs[0], "offset") + num(cs[0], "length"),
                cs[0]["from"].as_str().unwrap_or("an earlier copy"),
                num(cs[0], "changed")
            ),
            _ => file.clone(),
        })
        .collect();
    if parts.is_empty() {
        format!(
            "{} stopped, no file damaged",
            value_nodes(v.get("stopped").unwrap_or(&Value::Null)).join(", ")
        )
    } else {
        parts.join("; ")
    }
}

/// `+60000 ms` → `+60 s`; small offsets stay in ms.
pub fn signed_ms(ms: i64) -> String {
    if ms.abs() >= 1000 && ms % 1000 == 0 {
        format!("{:+} s", ms / 1000)
    } else if ms.abs() >= 1000 {
        format!("{:+.1} s", ms as f64 / 1000.0)
    } else {
        format!("{ms:+} ms")
    }
}

/// Fault windows: each start op opens a window of its kind, the next heal of that kind
/// closes every open window of the kind (one `reset-clock` heals a bump and a strobe).
/// A start the nemesis could not apply (it carries an `error`) opens nothing.
fn fault_windows(ops: &[Op]) -> Vec<FaultWindow> {
    let mut windows: Vec<FaultWindow> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    for op in ops.iter().filter(|o| o.process == Process::Nemesis) {
        if op.kind == OpType::Invoke {
            continue;
        }
        if let Some(kind) = FaultKind::started_by(&op.f) {
            if op.error.is_some() {
                continue;
            }
            // A Twins round replaces the one before it: one window per round.
            if FaultEdge::replaces_previous(&op.f) {
                open.retain(|&w| {
                    if windows[w].f == op.f {
                        windows[w].end_ns = Some(op.time_ns);
                        windows[w].end_index = Some(op.index);
                        false
                    } else {
                        true
                    }
                });
            }
            open.push(windows.len());
            windows.push(FaultWindow {
                kind,
                f: op.f.clone(),
                start_ns: op.time_ns,
                end_ns: None,
                nodes: value_nodes(&op.value),
                detail: fault_detail(&op.f, &op.value),
                start_index: op.index,
                end_index: None,
            });
        } else if let Some(kind) = FaultKind::healed_by(&op.f) {
            open.retain(|&w| {
                if windows[w].kind == kind {
                    windows[w].end_ns = Some(op.time_ns);
                    windows[w].end_index = Some(op.index);
                    false
                } else {
                    true
                }
            });
        }
    }
    windows
}

/// Every node's clock offset over time, from bump/strobe/reset ops (empty when no clock
/// fault ran). A strobe flips between the offset and 0 every period, starting at the
/// offset, as the nemesis does.
fn clock_tracks(ops: &[Op], end_ns: u64) -> BTreeMap<String, ClockTrack> {
    let mut tracks: BTreeMap<String, ClockTrack> = BTreeMap::new();
    // Strobes in force: node → (start_ns, offset_ms, period_ns).
    let mut strobing: BTreeMap<String, (u64, i64, u64)> = BTreeMap::new();
    let end_strobe = |tracks: &mut BTreeMap<String, ClockTrack>,
                      node: &str,
                      (start, offset, period): (u64, i64, u64),
                      until: u64| {
        let t = tracks.entry(node.to_string()).or_default();
        let flips = until.saturating_sub(start) / period.max(1);
        if flips > MAX_STROBE_STEPS {
            t.bands.push((start, until, offset));
        } else {
            for i in 0..=flips {
                let on = i % 2 == 0;
                t.steps
                    .push((start + i * period, if on { offset } else { 0 }));
            }
        }
    };
    for op in ops.iter().filter(|o| o.process == Process::Nemesis) {
        if op.kind == OpType::Invoke || op.error.is_some() {
            continue;
        }
        match op.f.as_str() {
            "bump-clock" => {
                if let Some(m) = op.value.get("offsets_ms").and_then(Value::as_object) {
                    for (node, o) in m {
                        if let Some(s) = strobing.remove(node) {
                            end_strobe(&mut tracks, node, s, op.time_ns);
                        }
                        let t = tracks.entry(node.clone()).or_default();
                        t.steps.push((op.time_ns, o.as_i64().unwrap_or(0)));
                    }
                }
            }
            "strobe-clock" => {
                let offset = op
                    .value
                    .get("offset_ms")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                let period_ms = op
                    .value
                    .get("period_ms")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                for node in value_nodes(&op.value) {
                    if let Some(s) = strobing.remove(&node) {
                        end_strobe(&mut tracks, &node, s, op.time_ns);
                    }
                    strobing.insert(node, (op.time_ns, offset, period_ms.max(1) * 1_000_000));
                }
            }
            "reset-clock" => {
                let mut nodes = value_nodes(&op.value);
                if nodes.is_empty() {
                    nodes = tracks.keys().chain(strobing.keys()).cloned().collect();
                }
                for node in nodes {
                    if let Some(s) = strobing.remove(&node) {
                        end_strobe(&mut tracks, &node, s, op.time_ns);
                    }
                    tracks.entry(node).or_default().steps.push((op.time_ns, 0));
                }
            }
            _ => {}
        }
    }
    for (node, s) in std::mem::take(&mut strobing) {
        end_strobe(&mut tracks, &node, s, end_ns);
    }
    for t in tracks.values_mut() {
        t.steps.sort_by_key(|&(time, _)| time);
    }
    tracks
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(index: u64, t_ms: u64, process: Process, kind: OpType, f: &str, value: Value) -> Op {
        Op {
            index,
            time_ns: t_ms * 1_000_000,
            process,
            kind,
            f: f.into(),
            key: None,
            value,
            node: None,
            error: None,
        }
    }

    #[test]
    fn pairs_invokes_with_completions_and_keeps_pending_calls() {
        let c = Process::Client;
        let ops = vec![
            op(0, 0, c(1), OpType::Invoke, "write", json!(1)),
            op(1, 1, c(2), OpType::Invoke, "read", Value::Null),
            op(2, 3, c(1), OpType::Ok, "write", json!(1)),
            op(3, 4, c(2), OpType::Info, "read", Value::Null),
            op(4, 5, c(3), OpType::Invoke, "read", Value::Null),
        ];
        let run = RunData::from_parts(Path::new("."), json!({}), Value::Null, ops);
        assert_eq!(run.fs, vec!["write", "read"]);
        let outcomes: Vec<Outcome> = run.calls.iter().map(|c| c.outcome).collect();
        assert_eq!(outcomes, vec![Outcome::Ok, Outcome::Info, Outcome::Pending]);
        assert_eq!(run.calls[0].latency_ns(), Some(3_000_000));
        assert_eq!(run.calls[2].end_ns, None);
    }

    #[test]
    fn fault_windows_run_from_start_to_the_next_heal_of_their_kind() {
        let n = Process::Nemesis;
        let ops = vec![
            op(
                0,
                10,
                n,
                OpType::Info,
                "start-partition",
                json!({"nodes": ["n1"], "grudge": {"n1": ["n2"]}}),
            ),
            op(1, 20, n, OpType::Info, "pause", json!({"nodes": ["n3"]})),
            op(
                2,
                30,
                n,
                OpType::Info,
                "stop-partition",
                json!({"nodes": ["n1"]}),
            ),
            op(
                3,
                40,
                n,
                OpType::Info,
                "bump-clock",
                json!({"nodes": ["n2"], "offsets_ms": {"n2": 60000}}),
            ),
        ];
        let run = RunData::from_parts(Path::new("."), json!({}), Value::Null, ops);
        assert_eq!(run.faults.len(), 3);
        assert_eq!(run.faults[0].kind, FaultKind::Partition);
        assert_eq!(run.faults[0].end_ns, Some(30_000_000));
        assert_eq!(run.faults[0].detail, "n1 drops n2");
        assert_eq!(run.faults[1].kind, FaultKind::Pause);
        assert_eq!(run.faults[1].end_ns, None, "never resumed: open to the end");
        assert_eq!(run.faults[2].detail, "n2 +60 s");
        assert_eq!(
            run.fault_kinds(),
            vec![FaultKind::Partition, FaultKind::Pause, FaultKind::Clock]
        );
    }

    #[test]
    fn a_start_the_nemesis_could_not_apply_opens_no_window() {
        let mut failed = op(
            0,
            1,
            Process::Nemesis,
            OpType::Info,
            "start-partition",
            json!({"grudge": {}}),
        );
        failed.error = Some("no leader".into());
        let run = RunData::from_parts(Path::new("."), json!({}), Value::Null, vec![failed]);
        assert!(run.faults.is_empty());
    }

    #[test]
    fn clock_tracks_follow_bumps_strobes_and_resets() {
        let n = Process::Nemesis;
        let ops = vec![
            op(
                0,
                1000,
                n,
                OpType::Info,
                "bump-clock",
                json!({"nodes": ["n1"], "offsets_ms": {"n1": -500}}),
            ),
            op(
                1,
                2000,
                n,
                OpType::Info,
                "strobe-clock",
                json!({"nodes": ["n2"], "offset_ms": 200, "period_ms": 100}),
            ),
            op(
                2,
                2350,
                n,
                OpType::Info,
                "reset-clock",
                json!({"nodes": ["n1", "n2"]}),
            ),
        ];
        let run = RunData::from_parts(Path::new("."), json!({}), Value::Null, ops);
        assert_eq!(
            run.clocks["n1"].steps,
            vec![(1_000_000_000, -500), (2_350_000_000, 0)]
        );
        let n2: Vec<i64> = run.clocks["n2"].steps.iter().map(|s| s.1).collect();
        assert_eq!(n2, vec![200, 0, 200, 0, 0]);
    }

    #[test]
    fn plan_yaml_with_enum_tags_reads_as_json() {
        let dir = std::env::temp_dir().join(format!("fl-plan-yaml-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("plan.yaml"),
            "seed: 7\nsteps:\n- targets: !one\n  at: 1s\nhosts:\n  kind: local\n",
        )
        .unwrap();
        let plan = read_plan(&dir).unwrap();
        assert_eq!(plan["seed"], 7);
        assert_eq!(plan["steps"][0]["targets"], json!({"one": null}));
        assert_eq!(plan["hosts"]["kind"], "local");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn signed_ms_reads_naturally() {
        assert_eq!(signed_ms(60_000), "+60 s");
        assert_eq!(signed_ms(-1500), "-1.5 s");
        assert_eq!(signed_ms(250), "+250 ms");
    }
}
