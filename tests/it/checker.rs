//! The linearizability checker against its references: simulated linearizable objects
//! (always valid), the same histories with a provably stale read (always invalid), a
//! brute-force checker on thousands of small random histories, budgets, and the
//! `faultline check` command's contract (exit codes, JSON, bad input).

use faultline::checker::brute;
use faultline::checker::model::{Kv, Model, ModelKind, ModelSpec, Register};
use faultline::checker::prepare::prepare;
use faultline::checker::simulate::{self, SimConfig, Workload};
use faultline::checker::value::Values;
use faultline::checker::{check, CheckOptions, Verdict};
use faultline::history::{HistoryError, Op};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn spec_of(workload: Workload) -> ModelSpec {
    match workload {
        Workload::Register => ModelSpec::new(ModelKind::Register),
        Workload::CasRegister => ModelSpec::new(ModelKind::CasRegister),
        Workload::Kv => ModelSpec::new(ModelKind::Kv),
    }
}

fn run(ops: &[Op], spec: &ModelSpec) -> Verdict {
    let stream = ops
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, op)| Ok::<_, HistoryError>((i + 1, op)));
    let opts = CheckOptions {
        time_limit: Duration::from_secs(30),
        counterexample: false,
        ..CheckOptions::default()
    };
    check(stream, Path::new("simulated"), spec, &opts)
        .unwrap_or_else(|e| panic!("{e}"))
        .verdict
}

fn random_config(workload: Workload, seed: u64) -> SimConfig {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    SimConfig {
        workload,
        seed,
        processes: rng.random_range(2..8),
        ops: rng.random_range(30..300),
        keys: rng.random_range(1..4),
        // Crashed kv appends are the hard case for a WGL search (each one may or may not
        // have happened, and no two are alike): keep them rarer than crashed writes.
        crash_fraction: match workload {
            Workload::Kv => rng.random_range(0.0..0.08),
            _ => rng.random_range(0.0..0.25),
        },
        fail_fraction: rng.random_range(0.0..0.15),
        max_latency_ns: rng.random_range(1_000..1_000_000),
    }
}

const WORKLOADS: [Workload; 3] = [Workload::Register, Workload::CasRegister, Workload::Kv];

#[test]
fn simulated_linearizable_objects_give_valid_histories() {
    for workload in WORKLOADS {
        for seed in 0..80 {
            let cfg = random_config(workload, seed);
            let ops = simulate::history(cfg.clone());
            assert_eq!(run(&ops, &spec_of(workload)), Verdict::Valid, "{cfg:?}");
        }
    }
}

#[test]
fn a_read_of_a_provably_overwritten_value_makes_the_history_invalid() {
    for workload in WORKLOADS {
        let mut mutated_histories = 0;
        for seed in 0..80 {
            let cfg = random_config(workload, 1000 + seed);
            let ops = simulate::history(cfg.clone());
            let Some(stale) = simulate::stale_read(&ops) else {
                continue;
            };
            mutated_histories += 1;
            assert_eq!(run(&stale, &spec_of(workload)), Verdict::Invalid, "{cfg:?}");
        }
        assert!(
            mutated_histories >= 60,
            "{workload:?}: only {mutated_histories} of 80 histories had a stale-read candidate"
        );
    }
}

/// Pair and encode `ops`, then ask the brute-force checker about every key.
fn brute_verdict<M: Model>(model: M, values: Values, ops: &[Op]) -> Verdict {
    let stream = ops
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, op)| Ok::<_, HistoryError>((i + 1, op)));
    let prepared =
        prepare(model, values, stream, Path::new("small"), true).unwrap_or_else(|e| panic!("{e}"));
    let all = prepared.partitions.iter().all(|p| {
        brute::linearizable(&prepared.model, &p.calls, &p.spans).unwrap_or_else(|e| panic!("{e}"))
    });
    if all {
        Verdict::Valid
    } else {
        Verdict::Invalid
    }
}

/// The brute-force verdict for a history of `workload`'s model.
fn brute_of(workload: Workload, nil_read_unknown: bool, ops: &[Op]) -> Verdict {
    let mut values = Values::new();
    match workload {
        Workload::Kv => brute_verdict(Kv::default(), values, ops),
        w => {
            let model = Register::new(
                w == Workload::CasRegister,
                &serde_json::Value::Null,
                nil_read_unknown,
                &mut values,
            );
            brute_verdict(model, values, ops)
        }
    }
}

#[test]
fn the_search_agrees_with_brute_force_on_small_random_histories() {
    let mut seen = [0usize; 2];
    for seed in 0..4000u64 {
        let workload = WORKLOADS[(seed % 3) as usize];
        let calls = 1 + (seed / 3 % 8) as usize;
        let nil_read_unknown = seed % 7 == 0;
        let ops = simulate::random_small(workload, seed, calls);
        let spec = spec_of(workload).with_nil_read_unknown(nil_read_unknown);
        let expected = brute_of(workload, nil_read_unknown, &ops);
        let got = run(&ops, &spec);
        assert_eq!(
            got, expected,
            "seed {seed}, {workload:?}, {calls} calls:\n{ops:#?}"
        );
        seen[usize::from(got == Verdict::Invalid)] += 1;
    }
    assert!(
        seen[0] > 400 && seen[1] > 400,
        "both verdicts must be common in the sample: {seen:?} (valid, invalid)"
    );
}

/// The pruning of open calls (merged unobserved values, deduplicated equal calls, open
/// calls placed only right before a call they enable) meets its hard cases where crashes
/// are common and many calls overlap: half the calls crash here, and histories go up to
/// 11 calls.
#[test]
fn the_search_agrees_with_brute_force_when_half_the_calls_crash() {
    let mut seen = [0usize; 2];
    for seed in 0..4500u64 {
        let workload = WORKLOADS[(seed % 3) as usize];
        let calls = 4 + (seed / 3 % 8) as usize;
        let ops = simulate::random_small_with(workload, 50_000 + seed, calls, 0.5);
        // For kv, open appends and puts: the just-in-time rule must keep an open append
        // that a later get needs, and drop one whose effect a put erases.
        let expected = brute_of(workload, false, &ops);
        let got = run(&ops, &spec_of(workload));
        assert_eq!(
            got, expected,
            "seed {seed}, {workload:?}, {calls} calls:\n{ops:#?}"
        );
        seen[usize::from(got == Verdict::Invalid)] += 1;
    }
    assert!(
        seen[0] > 300 && seen[1] > 300,
        "both verdicts must be common in the sample: {seen:?} (valid, invalid)"
    );
}

/// The reachability pruning (a read or cas needs its value produced in time; a value
/// whose producers all came before a call that surely left it is gone) decides most
/// invalid register histories: up to the brute-force limit of 12 calls, with reads and
/// cas calls dense, a third of the calls crashed, both verdicts common.
#[test]
fn the_search_agrees_with_brute_force_where_reads_need_their_values_produced() {
    let mut seen = [0usize; 2];
    for seed in 0..2400u64 {
        let workload = [Workload::Register, Workload::CasRegister][(seed % 2) as usize];
        let calls = 9 + (seed / 2 % 4) as usize;
        let ops = simulate::random_small_with(workload, 90_000 + seed, calls, 0.3);
        let expected = brute_of(workload, false, &ops);
        let got = run(&ops, &spec_of(workload));
        assert_eq!(
            got, expected,
            "seed {seed}, {workload:?}, {calls} calls:\n{ops:#?}"
        );
        seen[usize::from(got == Verdict::Invalid)] += 1;
    }
    assert!(
        seen[0] > 300 && seen[1] > 300,
        "both verdicts must be common in the sample: {seen:?} (valid, invalid)"
    );
}

/// A crashed write matters exactly when its value is read: the merged-values pruning
/// must keep it apart then, and must not let it take effect before it was invoked.
#[test]
fn a_crashed_write_whose_value_is_read_later_is_kept() {
    let op = |index: u64, process: u64, kind: &str, f: &str, value: serde_json::Value| -> Op {
        serde_json::from_value(serde_json::json!({"index": index, "time_ns": index, "process": process, "type": kind, "f": f, "value": value})).unwrap()
    };
    let history = |read_first: bool| {
        let mut ops = vec![
            op(0, 1, "invoke", "write", serde_json::json!(1)),
            op(1, 1, "ok", "write", serde_json::json!(1)),
            // Crashed writes: 2 is read later, 3 never.
            op(4, 2, "invoke", "write", serde_json::json!(2)),
            op(5, 3, "invoke", "write", serde_json::json!(3)),
            op(6, 2, "info", "write", serde_json::json!(2)),
            op(9, 5, "invoke", "read", serde_json::Value::Null),
            op(10, 5, "ok", "read", serde_json::json!(2)),
        ];
        if read_first {
            // The read of 2 completes before the write of 2 is invoked.
            ops.insert(2, op(2, 4, "invoke", "read", serde_json::Value::Null));
            ops.insert(3, op(3, 4, "ok", "read", serde_json::json!(2)));
        }
        ops
    };
    let spec = ModelSpec::new(ModelKind::CasRegister);
    assert_eq!(run(&history(false), &spec), Verdict::Valid);
    assert_eq!(run(&history(true), &spec), Verdict::Invalid);
}

#[test]
fn a_search_past_its_time_limit_answers_unknown_with_the_reason() {
    // 60 crashed appends of distinct strings and a get of a string none of them makes:
    // proving that takes every ordered subset of the appends.
    let op = |index: u64, process: u64, kind: &str, f: &str, value: serde_json::Value| -> Op {
        serde_json::from_value(serde_json::json!({"index": index, "time_ns": index, "process": process, "type": kind, "f": f, "key": "k", "value": value})).unwrap()
    };
    let mut ops: Vec<Op> = (0..60)
        .map(|p| {
            op(
                p,
                p,
                "invoke",
                "append",
                serde_json::json!(format!("[{p}]")),
            )
        })
        .collect();
    ops.push(op(60, 100, "invoke", "get", serde_json::Value::Null));
    ops.push(op(61, 100, "ok", "get", serde_json::json!("[none]")));
    let stream = ops
        .into_iter()
        .enumerate()
        .map(|(i, op)| Ok::<_, HistoryError>((i + 1, op)));
    let opts = CheckOptions {
        time_limit: Duration::from_millis(300),
        ..CheckOptions::default()
    };
    let report = check(
        stream,
        Path::new("hard"),
        &ModelSpec::new(ModelKind::Kv),
        &opts,
    )
    .unwrap();
    assert_eq!(report.verdict, Verdict::Unknown);
    assert!(
        report
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("time limit"),
        "{report}"
    );
}

#[test]
fn a_search_over_its_memory_limit_answers_unknown_with_the_reason() {
    let cfg = SimConfig {
        workload: Workload::CasRegister,
        processes: 20,
        ops: 5000,
        crash_fraction: 0.3,
        ..SimConfig::default()
    };
    let ops = simulate::history(cfg);
    let stream = ops
        .into_iter()
        .enumerate()
        .map(|(i, op)| Ok::<_, HistoryError>((i + 1, op)));
    let opts = CheckOptions {
        memory_limit_bytes: 1 << 20,
        ..CheckOptions::default()
    };
    let report = check(
        stream,
        Path::new("big"),
        &ModelSpec::new(ModelKind::CasRegister),
        &opts,
    )
    .unwrap();
    assert_eq!(report.verdict, Verdict::Unknown);
    assert!(
        report
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("memory limit"),
        "{report}"
    );
}

fn corpus(file: &str) -> std::path::PathBuf {
    std::env::var_os("FAULTLINE_CORPUS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"))
        .join(file)
}

fn faultline(args: &[&std::ffi::OsStr]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("check")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_exits_0_for_valid_and_1_for_invalid_with_a_counterexample() {
    let (code, out, _) = faultline(&[corpus("porcupine/jepsen/etcd_002.log").as_os_str()]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("verdict: VALID"), "{out}");
    let (code, out, _) = faultline(&[corpus("porcupine/jepsen/etcd_000.log").as_os_str()]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("failing call") && out.contains("smallest window"),
        "{out}"
    );
}

#[test]
fn check_writes_results_json_with_the_counterexample() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results.json");
    let (code, _, err) = faultline(&[
        corpus("porcupine/kv/c10-bad.txt").as_os_str(),
        "--json".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(code, Some(1), "{err}");
    let results: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(results["verdict"], "invalid");
    assert_eq!(results["model"], "kv");
    assert_eq!(results["format"], "kv-lines");
    let cx = &results["counterexample"];
    assert!(
        cx["window"].as_array().is_some_and(|w| !w.is_empty()),
        "{cx}"
    );
    assert!(cx["failing_call"]["invoke"]["index"].is_u64(), "{cx}");
    assert!(cx["key"].is_string(), "{cx}");
}

#[test]
fn check_rejects_a_completion_without_invocation_with_file_and_line_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history.jsonl");
    std::fs::write(
        &history,
        "{\"index\":0,\"time_ns\":1,\"process\":1,\"type\":\"invoke\",\"f\":\"write\",\"value\":1}\n{\"index\":1,\"time_ns\":2,\"process\":3,\"type\":\"ok\",\"f\":\"cas\",\"value\":[1,2]}\n",
    )
    .unwrap();
    let out = dir.path().join("results.json");
    let (code, _, err) = faultline(&[history.as_os_str(), "--json".as_ref(), out.as_os_str()]);
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains("history.jsonl:2: completion (ok) of process 3 (f cas) has no invocation"),
        "{err}"
    );
    assert!(!out.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary file left behind"
    );
}

#[test]
fn check_rejects_an_unknown_model_and_a_bad_init_with_exit_3() {
    let etcd = corpus("porcupine/jepsen/etcd_000.log");
    let (code, _, err) = faultline(&[etcd.as_os_str(), "--model".as_ref(), "queue".as_ref()]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("queue"), "{err}");
    let (code, _, err) = faultline(&[etcd.as_os_str(), "--init".as_ref(), "{not json".as_ref()]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("--init"), "{err}");
}

#[test]
fn check_help_lists_models_and_formats() {
    let (code, out, _) = faultline(&["--help".as_ref()]);
    assert_eq!(code, Some(0));
    for name in [
        "register",
        "cas-register",
        "multi-register",
        "mutex",
        "kv",
        "jsonl",
        "jepsen-log",
        "kv-lines",
        "edn",
    ] {
        assert!(out.contains(name), "--help does not mention {name}:\n{out}");
    }
}

#[test]
fn check_picks_the_model_from_the_history_when_none_is_given() {
    let (code, out, _) = faultline(&[corpus("knossos/mutex/bad/etcd.edn").as_os_str()]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("model: mutex"), "{out}");
    let (code, out, _) = faultline(&[
        corpus("knossos/multi-register/good/multi-register.edn").as_os_str(),
        "--init".as_ref(),
        "{\"x\":0,\"y\":0}".as_ref(),
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("model: multi-register"), "{out}");
}

#[test]
fn check_of_a_jsonl_history_whose_writes_never_succeeded_is_unknown_unless_told_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history.jsonl");
    std::fs::write(
        &history,
        concat!(
            "{\"index\":0,\"time_ns\":1,\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\n",
            "{\"index\":1,\"time_ns\":2,\"process\":0,\"type\":\"ok\",\"f\":\"read\"}\n",
            "{\"index\":2,\"time_ns\":3,\"process\":1,\"type\":\"invoke\",\"f\":\"write\",\"value\":1}\n",
            "{\"index\":3,\"time_ns\":4,\"process\":1,\"type\":\"info\",\"f\":\"write\",\"value\":1,\"error\":\"<b>timeout</b>\"}\n",
        ),
    )
    .unwrap();
    let out = dir.path().join("results.json");
    let (code, stdout, err) = faultline(&[history.as_os_str(), "--json".as_ref(), out.as_os_str()]);
    assert_eq!(code, Some(2), "{stdout}{err}");
    assert!(
        stdout.contains("unknown because: no write succeeded (0 of 1 ok: 1 info; most common errors: \"<b>timeout</b>\" ×1)"),
        "{stdout}"
    );
    let results: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(results["verdict"], "unknown");
    assert_eq!(results["checker_verdict"], "valid");
    assert_eq!(
        results["stats"]["fs"][1]["top_errors"][0]["error"],
        "<b>timeout</b>"
    );
    let (code, stdout, err) = faultline(&[history.as_os_str(), "--require-ok=false".as_ref()]);
    assert_eq!(code, Some(0), "{stdout}{err}");
}
