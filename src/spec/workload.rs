//! `workloads/<name>.yaml`: what clients do, and which model judges the history.
//!
//! Independent keys (Jepsen's): workers are split into groups of `keys.threads_per_key`,
//! each group with keys of its own, so at most that many workers ever have an op open on
//! one key whatever the concurrency; a key is retired after a bounded number of ops, so
//! every per-key history stays short and narrow enough to check. A register is the special
//! case of one key per group.

use super::{load_yaml, Violations};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

pub use crate::history::OpKind;

/// Which of the generator's ops each checker model replays. The generator issues only
/// read, write and cas on keys; the other models (multi-register's txn, mutex's
/// acquire/release, kv's get/put/append) are for imported histories (`faultline check`),
/// and a run judged by one of them would fail only after the whole run.
fn model_ops(m: super::model::ModelKind) -> &'static [OpKind] {
    use super::model::ModelKind;
    match m {
        ModelKind::Register => &[OpKind::Read, OpKind::Write],
        ModelKind::CasRegister => &[OpKind::Read, OpKind::Write, OpKind::Cas],
        ModelKind::MultiRegister | ModelKind::Mutex | ModelKind::Kv => &[],
    }
}

/// The accepted forms, for messages.
const MODEL_FITS: &str = "accepted: cas-register (read, write, cas) or register (read, write)";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Relative weights of the operations.
    pub mix: BTreeMap<OpKind, u32>,
    /// Written and compared values are drawn from `0..values`; few values make conflicts
    /// (and so anomalies) likely.
    #[serde(default = "default_values")]
    pub values: u32,
    /// Pad every written value to this many bytes: value `v` is written as the string
    /// `"v:"` followed by `.`s, still one of `values` distinct values. What a write costs
    /// on the wire grows with what it carries; a realistic payload makes a target's own
    /// framing a small share of it. Absent = plain integers. Needs a client that carries
    /// strings (etcd, stdio), refused at plan time for others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_bytes: Option<u32>,
    #[serde(default)]
    pub keys: KeySpec,
    /// The model the checker replays (a name from `faultline check --help`). Optional
    /// for a `set` workload (empty = no linearizability check), required otherwise.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub model: String,
    /// Makes this a set workload: a `write` adds a fresh element (one key written once), a
    /// `read` reads an element added before, the final read reads every element, and the
    /// set checker judges the history (`checker::set`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<SetSpec>,
    /// Makes this an append workload: each key is a stream (a JSON list of unique
    /// elements); a `write` appends a fresh element (a read of the list, then a cas from
    /// it to it plus the element, again after a cas that failed), a `read` reads the list,
    /// the final read reads every stream, and the append checker judges the history
    /// (`checker::append`). Needs a client that carries lists and a cas from null that
    /// creates the key (etcd, stdio adapters that do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub append: Option<AppendSpec>,
    /// A request without an answer after this long is recorded as info.
    #[serde(with = "humantime_serde", default = "default_op_timeout")]
    pub op_timeout: Duration,
    /// After faults are healed, read every key once more.
    #[serde(default = "yes")]
    pub final_reads: bool,
    /// Ask for serializable reads (served by the node itself, possibly stale) where the
    /// target's client has them (etcd, stdio); refused at plan time for other targets.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub serializable: bool,
    /// How long a worker pauses after consecutive failures before its next op.
    #[serde(default)]
    pub backoff: BackoffSpec,
    /// After the final heal the cluster must serve (an `ok` op) within this long, or the
    /// run fails liveness (its safety verdict stands).
    #[serde(with = "humantime_serde", default = "default_recovery")]
    pub recovery: Duration,
}

/// A set workload's settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetSpec {
    /// What an acknowledged element missing from a read that began after the
    /// acknowledgement means: `invalid` (the default: the target promises linearizable
    /// reads) or `allowed` (it does not, e.g. serializable reads: stale elements are
    /// only counted).
    #[serde(default)]
    pub stale: StalePolicy,
}

/// An append workload's settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppendSpec {
    /// What a read (or an append's read) that misses an append acknowledged before it
    /// began means: `invalid` (the default) or `allowed` (serializable reads: only counted).
    #[serde(default)]
    pub stale: StalePolicy,
}

/// The longest a stream may grow (`keys.ops_per_key` of an append workload): every
/// append carries the whole list twice, and the checker compares lists.
pub const MAX_STREAM_OPS: u64 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StalePolicy {
    #[default]
    Invalid,
    Allowed,
}

/// A worker's pause after consecutive `fail`/`info` completions (a `fail` with
/// `compare-failed` is an answer, not a failure): none for the first `after - 1`, then
/// `initial`, doubling with each further failure up to `max`, each drawn between half and
/// all of that (seeded per worker, apart from the generator, so a seed's op sequence is
/// the same with or without pauses). An `ok` ends it.
///
/// Why the harness does it and not only the clients: a client whose target refuses at once
/// (a stdio adapter answering `fail` on "connection refused") otherwise turns a down
/// cluster into hundreds of thousands of failed ops, using up keys and the final reads'
/// budget while telling nothing new.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackoffSpec {
    /// Consecutive failures of a worker before it starts pausing.
    #[serde(default = "default_backoff_after")]
    pub after: u32,
    /// The first pause.
    #[serde(with = "humantime_serde", default = "default_backoff_initial")]
    pub initial: Duration,
    /// The longest pause; `0s` turns the back-off off.
    #[serde(with = "humantime_serde", default = "default_backoff_max")]
    pub max: Duration,
}

fn default_backoff_after() -> u32 {
    3
}

fn default_backoff_initial() -> Duration {
    Duration::from_millis(10)
}

fn default_backoff_max() -> Duration {
    Duration::from_secs(1)
}

impl Default for BackoffSpec {
    fn default() -> Self {
        BackoffSpec {
            after: default_backoff_after(),
            initial: default_backoff_initial(),
            max: default_backoff_max(),
        }
    }
}

fn default_values() -> u32 {
    5
}

fn default_op_timeout() -> Duration {
    Duration::from_secs(2)
}

/// raftkv elects a leader in about 1 s and a restarted node catches up in a few; 10 s
/// leaves room for a slower target without letting a stuck cluster pass.
fn default_recovery() -> Duration {
    Duration::from_secs(10)
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// Keys open for operations at once, at least: there is at least one per group of
    /// `threads_per_key` workers, and every group gets the same number.
    #[serde(default = "one")]
    pub in_flight: u32,
    /// Workers that share a key: the run's workers are split into groups of this many,
    /// each working on keys of its own. Absent = the number of nodes (see
    /// [`KeySpec::threads_per_key`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads_per_key: Option<u32>,
    /// Retire a key after this many ops and open a fresh one; absent = never.
    #[serde(default)]
    pub ops_per_key: Option<u64>,
    /// How an op picks among the keys in flight.
    #[serde(default)]
    pub distribution: KeyDistribution,
}

fn one() -> u32 {
    1
}

/// The largest padded value: etcd's default request limit is 1.5 MiB, and a history of
/// 1 MiB values would outgrow any disk.
pub const MAX_VALUE_BYTES: u32 = 65_536;

/// Most workers per key a workload may ask for: the most workers a run may have
/// (`concurrency`); more would only mean "all of them".
pub const MAX_THREADS_PER_KEY: u32 = 1000;

impl KeySpec {
    /// Workers per key in a run with `nodes` nodes. The default is one per node, as in
    /// Jepsen's linearizable-register test: workers are spread over nodes round-robin and
    /// a group is consecutive workers, so each key is then reached through every node once
    /// (a stale read needs a read and a write through different nodes), and a per-key
    /// history has as many concurrent ops as the cluster has nodes — few enough to check,
    /// however many workers the run has.
    pub fn threads_per_key(&self, nodes: usize) -> u32 {
        self.threads_per_key
            .unwrap_or_else(|| u32::try_from(nodes).unwrap_or(u32::MAX).max(1))
    }
}

impl Default for KeySpec {
    fn default() -> Self {
        KeySpec {
            in_flight: 1,
            threads_per_key: None,
            ops_per_key: None,
            distribution: KeyDistribution::Uniform,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum KeyDistribution {
    #[default]
    Uniform,
    /// The first key in flight is hit most (weight halves with each further key): hot keys.
    Exponential,
}

impl WorkloadSpec {
    pub fn load(path: &Path) -> Result<WorkloadSpec> {
        let spec: WorkloadSpec = load_yaml(path)?;
        spec.validate(path)?;
        Ok(spec)
    }

    pub fn validate(&self, path: &Path) -> Result<()> {
        let mut v = Violations::new(path);
        v.check(!self.name.is_empty(), "name", "must not be empty");
        v.check(
            self.mix.values().any(|w| *w > 0),
            "mix",
            "needs at least one operation with a weight above 0",
        );
        v.check(
            (1..=1_000_000).contains(&self.values),
            "values",
            "must be between 1 and 1000000",
        );
        v.check(
            self.value_bytes
                .is_none_or(|n| (1..=MAX_VALUE_BYTES).contains(&n)),
            "value_bytes",
            format!("must be between 1 and {MAX_VALUE_BYTES}"),
        );
        v.check(
            (1..=10_000).contains(&self.keys.in_flight),
            "keys.in_flight",
            "must be between 1 and 10000",
        );
        v.check(
            self.keys
                .threads_per_key
                .is_none_or(|n| (1..=MAX_THREADS_PER_KEY).contains(&n)),
            "keys.threads_per_key",
            format!(
                "must be between 1 and {MAX_THREADS_PER_KEY} (workers sharing a key; more than the run's concurrency means all of them)"
            ),
        );
        v.check(
            self.keys.ops_per_key.is_none_or(|n| n >= 1),
            "keys.ops_per_key",
            "must be at least 1 when set",
        );
        v.check(
            self.op_timeout >= Duration::from_millis(10)
                && self.op_timeout <= Duration::from_secs(600),
            "op_timeout",
            "must be between 10ms and 10m",
        );
        v.check(
            (1..=1000).contains(&self.backoff.after),
            "backoff.after",
            "must be between 1 and 1000",
        );
        v.check(
            self.backoff.max <= Duration::from_secs(60),
            "backoff.max",
            "must be at most 60s (0s turns the back-off off)",
        );
        v.check(
            self.backoff.max.is_zero()
                || (Duration::from_millis(1)..=self.backoff.max).contains(&self.backoff.initial),
            "backoff.initial",
            "must be between 1ms and backoff.max",
        );
        v.check(
            self.recovery >= Duration::from_millis(100)
                && self.recovery <= Duration::from_secs(600),
            "recovery",
            "must be between 100ms and 10m",
        );
        if self.set.is_some() {
            self.validate_set(&mut v);
        }
        if self.append.is_some() {
            self.validate_append(&mut v);
        }
        let model: Result<super::model::ModelKind, String> = self.model.parse();
        match model {
            Err(_) if self.model.is_empty() => v.check(
                self.set.is_some() || self.append.is_some(),
                "model",
                format!("is required (a model for the checker, or a `set:` or `append:` block; {MODEL_FITS})"),
            ),
            // An append's history is reads and cas ops on lists: a cas register's.
            Ok(m) if self.append.is_some() => v.check(
                m == super::model::ModelKind::CasRegister,
                "model",
                format!("model {} cannot judge an append workload, whose history is reads and cas ops (rule: cas-register, or no model)", m.name()),
            ),
            Ok(m) => {
                let fits = model_ops(m);
                let misfits: Vec<&str> = self
                    .mix
                    .iter()
                    .filter(|(op, w)| **w > 0 && !fits.contains(op))
                    .map(|(op, _)| op.as_str())
                    .collect();
                v.check(
                    misfits.is_empty(),
                    "model",
                    format!(
                        "model {} cannot judge the {} ops of `mix` (rule: the model must know every op the workload issues; {})",
                        m.name(),
                        misfits.join(", "),
                        MODEL_FITS
                    ),
                );
            }
            Err(e) => v.check(false, "model", e),
        }
        v.into_result()
    }

    /// The rules a set and an append workload share: `write` (its `add`s) and `read` only,
    /// judged by the final read, elements that are numbers. `what` names the workload in
    /// messages ("a set workload"), `rule` says what its ops mean and `element` what an
    /// element is.
    fn validate_writes_and_reads(
        &self,
        v: &mut Violations,
        what: &str,
        add: &str,
        rule: &str,
        element: &str,
    ) {
        let other: Vec<&str> = self
            .mix
            .iter()
            .filter(|(op, w)| **w > 0 && !matches!(op, OpKind::Read | OpKind::Write))
            .map(|(op, _)| op.as_str())
            .collect();
        v.check(
            other.is_empty(),
            "mix",
            format!("{what} has {} ops (rule: {rule})", other.join(", ")),
        );
        v.check(
            self.mix.get(&OpKind::Write).is_some_and(|w| *w > 0),
            "mix",
            format!("{what} needs `write` ({add}s) with a weight above 0"),
        );
        v.check(
            self.final_reads,
            "final_reads",
            format!(
                "must be true for {what} (rule: every acknowledged {add} is judged by the final read)"
            ),
        );
        v.check(
            self.value_bytes.is_none(),
            "value_bytes",
            format!("does not apply to {what} ({element})"),
        );
    }

    /// The rules of an append workload: reads and appends on streams of bounded length.
    fn validate_append(&self, v: &mut Violations) {
        v.check(
            self.set.is_none(),
            "append",
            "a workload is a set or an append workload, not both",
        );
        self.validate_writes_and_reads(
            v,
            "an append workload",
            "append",
            "`write` appends an element, `read` reads a stream",
            "an element is a number",
        );
        v.check(
            self.keys
                .ops_per_key
                .is_some_and(|n| (1..=MAX_STREAM_OPS).contains(&n)),
            "keys.ops_per_key",
            format!("an append workload needs it between 1 and {MAX_STREAM_OPS} (rule: a stream's list is carried whole by every append, so streams are retired)"),
        );
    }

    /// The rules of a set workload: it adds and reads elements and is judged by its final
    /// read, so settings about registers have no meaning in it.
    fn validate_set(&self, v: &mut Violations) {
        self.validate_writes_and_reads(
            v,
            "a set workload",
            "add",
            "a set adds elements with `write` and reads them with `read`",
            "an element's value is its number",
        );
        v.check(
            self.keys == KeySpec::default(),
            "keys",
            "does not apply to a set workload (every element is a key of its own, read back in sweeps; workers share elements in groups of one per node)",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse_yaml;

    #[test]
    fn a_register_needs_only_mix_and_model() {
        let p = Path::new("w.yaml");
        let w: WorkloadSpec = parse_yaml(
            p,
            "name: register\nmix: {read: 2, write: 1, cas: 1}\nmodel: cas-register\n",
        )
        .unwrap();
        w.validate(p).unwrap();
        assert_eq!(w.keys.in_flight, 1);
        assert_eq!(w.op_timeout, Duration::from_secs(2));
        assert_eq!(w.backoff, BackoffSpec::default());
    }

    #[test]
    fn a_set_needs_no_model_and_refuses_settings_that_have_no_meaning_in_it() {
        let p = Path::new("w-set.yaml");
        let w: WorkloadSpec =
            parse_yaml(p, "name: set\nmix: {write: 1, read: 3}\nset: {}\n").unwrap();
        w.validate(p).unwrap();
        assert_eq!(
            w.set,
            Some(SetSpec {
                stale: StalePolicy::Invalid
            })
        );
        let lenient: WorkloadSpec = parse_yaml(
            p,
            "name: set\nmix: {write: 1}\nset: {stale: allowed}\nmodel: register\n",
        )
        .unwrap();
        lenient.validate(p).unwrap();
        assert_eq!(lenient.set.unwrap().stale, StalePolicy::Allowed);
        let bad: WorkloadSpec = parse_yaml(
            p,
            "name: set\nmix: {read: 1, cas: 1}\nset: {}\nfinal_reads: false\nkeys: {in_flight: 4}\n",
        )
        .unwrap();
        let err = bad.validate(p).unwrap_err().to_string();
        for want in [
            "w-set.yaml: mix: a set workload has cas ops",
            "w-set.yaml: mix: a set workload needs `write`",
            "w-set.yaml: final_reads: must be true for a set workload",
            "w-set.yaml: keys: does not apply to a set workload",
        ] {
            assert!(err.contains(want), "{want}\n{err}");
        }
        let err = parse_yaml::<WorkloadSpec>(p, "name: s\nmix: {write: 1}\nset: {stale: maybe}\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("maybe"), "{err}");
        // Without `set`, a model is required.
        let plain: WorkloadSpec = parse_yaml(p, "name: r\nmix: {read: 1}\n").unwrap();
        let err = plain.validate(p).unwrap_err().to_string();
        assert!(err.contains("w-set.yaml: model: is required"), "{err}");
    }

    #[test]
    fn an_append_needs_bounded_streams_and_at_most_a_cas_register_model() {
        let p = Path::new("w-append.yaml");
        let w = WorkloadSpec::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads/append.yaml"),
        )
        .unwrap();
        assert_eq!(
            w.append.as_ref().map(|a| a.stale),
            Some(StalePolicy::Invalid)
        );
        let bare: WorkloadSpec = parse_yaml(
            p,
            "name: a\nmix: {write: 1}\nkeys: {ops_per_key: 10}\nappend: {}\n",
        )
        .unwrap();
        bare.validate(p).unwrap();
        let bad: WorkloadSpec = parse_yaml(
            p,
            "name: a\nmix: {write: 1, cas: 1}\nappend: {}\nset: {}\nmodel: register\nvalue_bytes: 8\n",
        )
        .unwrap();
        let err = bad.validate(p).unwrap_err().to_string();
        for want in [
            "w-append.yaml: append: a workload is a set or an append workload, not both",
            "w-append.yaml: mix: an append workload has cas ops",
            "w-append.yaml: keys.ops_per_key: an append workload needs it between 1 and 1000",
            "w-append.yaml: value_bytes: does not apply to an append workload",
            "w-append.yaml: model: model register cannot judge an append workload",
        ] {
            assert!(err.contains(want), "{want}\n{err}");
        }
    }

    #[test]
    fn the_shipped_set_workload_is_valid() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads/set.yaml");
        let w = WorkloadSpec::load(&p).unwrap();
        assert!(w.set.is_some() && w.model.is_empty());
    }

    #[test]
    fn a_backoff_takes_durations_and_refuses_an_initial_pause_above_its_cap() {
        let p = Path::new("w.yaml");
        let w: WorkloadSpec = parse_yaml(
            p,
            "name: r\nmix: {read: 1}\nmodel: register\nbackoff: {after: 5, initial: 2ms, max: 250ms}\n",
        )
        .unwrap();
        w.validate(p).unwrap();
        assert_eq!(
            (w.backoff.after, w.backoff.initial, w.backoff.max),
            (5, Duration::from_millis(2), Duration::from_millis(250))
        );
        let w: WorkloadSpec = parse_yaml(
            p,
            "name: r\nmix: {read: 1}\nmodel: register\nbackoff: {after: 0, initial: 2s, max: 1s}\n",
        )
        .unwrap();
        let err = w.validate(p).unwrap_err().to_string();
        assert!(
            err.contains("w.yaml: backoff.after: must be between 1"),
            "{err}"
        );
        assert!(
            err.contains("w.yaml: backoff.initial: must be between 1ms and backoff.max"),
            "{err}"
        );
        let off: WorkloadSpec = parse_yaml(
            p,
            "name: r\nmix: {read: 1}\nmodel: register\nbackoff: {max: 0s}\n",
        )
        .unwrap();
        off.validate(p).unwrap();
    }

    #[test]
    fn rejects_an_all_zero_mix_and_names_every_broken_rule() {
        let p = Path::new("workloads/bad.yaml");
        let w: WorkloadSpec = parse_yaml(
            p,
            "name: bad\nmix: {read: 0}\nmodel: kv\nkeys: {in_flight: 0}\n",
        )
        .unwrap();
        let err = w.validate(p).unwrap_err().to_string();
        assert!(
            err.contains("workloads/bad.yaml: mix: needs at least one"),
            "{err}"
        );
        assert!(
            err.contains("workloads/bad.yaml: keys.in_flight: must be between"),
            "{err}"
        );
    }

    #[test]
    fn threads_per_key_defaults_to_the_node_count_and_refuses_0_with_its_line() {
        let p = Path::new("w.yaml");
        let w: WorkloadSpec = parse_yaml(p, "name: r\nmix: {read: 1}\nmodel: register\n").unwrap();
        assert_eq!(w.keys.threads_per_key, None);
        assert_eq!(
            (w.keys.threads_per_key(5), w.keys.threads_per_key(3)),
            (5, 3)
        );
        let set: WorkloadSpec = parse_yaml(
            p,
            "name: r\nmix: {read: 1}\nmodel: register\nkeys: {threads_per_key: 2}\n",
        )
        .unwrap();
        set.validate(p).unwrap();
        assert_eq!(set.keys.threads_per_key(5), 2);
        // More than any run's workers would be a typo; as many as the most workers is not.
        let dir = tempfile::tempdir().unwrap();
        for (n, ok) in [(0, false), (1000, true), (1001, false)] {
            let path = dir.path().join("t.yaml");
            std::fs::write(
                &path,
                format!("name: r\nmix: {{read: 1}}\nmodel: register\nkeys:\n  in_flight: 2\n  threads_per_key: {n}\n"),
            )
            .unwrap();
            let r = WorkloadSpec::load(&path);
            assert_eq!(r.is_ok(), ok, "{n}: {r:?}");
            if let Err(e) = r {
                let e = e.to_string();
                assert!(
                    e.contains(&format!(
                        "{}:6:20: keys.threads_per_key: must be between 1 and 1000",
                        path.display()
                    )),
                    "{e}"
                );
            }
        }
    }

    #[test]
    fn rejects_an_unknown_operation() {
        let err = parse_yaml::<WorkloadSpec>(
            Path::new("w.yaml"),
            "name: x\nmix: {read: 1, delete: 1}\nmodel: kv\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("w.yaml:2:"), "{err}");
        assert!(err.contains("delete"), "{err}");
    }

    #[test]
    fn refuses_a_model_that_cannot_judge_the_mix() {
        let p = Path::new("w.yaml");
        for (model, ok) in [
            ("mutex", false),
            ("kv", false),
            ("multi-register", false),
            ("register", false),
            ("cas-register", true),
        ] {
            let w: WorkloadSpec = parse_yaml(
                p,
                &format!("name: kv\nmix: {{read: 2, write: 1, cas: 1}}\nmodel: {model}\n"),
            )
            .unwrap();
            let r = w.validate(p);
            assert_eq!(r.is_ok(), ok, "{model}: {r:?}");
            if let Err(e) = r {
                let e = e.to_string();
                assert!(
                    e.contains(&format!("w.yaml: model: model {model} cannot judge")),
                    "{e}"
                );
                assert!(e.contains("accepted: cas-register"), "{e}");
            }
        }
        let w: WorkloadSpec = parse_yaml(
            p,
            "name: r\nmix: {read: 1, write: 1, cas: 0}\nmodel: register\n",
        )
        .unwrap();
        w.validate(p).unwrap();
    }
}
