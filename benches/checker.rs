//! Checker benchmarks: the corpus histories Porcupine is timed on, and generated ones.
//!
//! Run with `cargo bench --bench checker` (all) or `cargo bench --bench checker -- NAME`
//! (one: `etcd_all`, `etcd_002`, `etcd_007`, `kv_c50_ok`, `single_key_20p_10k`,
//! `kv_1m`, `single_key_file`, `heavy_key`). Parsing is excluded from the corpus timings, as in Porcupine's figures
//! (MANIFEST.tsv); the ops are read once, and each iteration checks them from memory.
//!
//! `kv_1m` and `single_key_file` are not criterion benchmarks: each writes a simulated
//! history to `target/checker-bench/` once (1,000,000 kv ops over 1,000 keys and 50
//! processes; one cas-register key with 20 processes, 10,000 ops, a third crashing),
//! then runs the real `faultline check` on the file three times and prints the verdicts,
//! wall times and the peak resident memory of the checking process, streaming included:
//! its own `VmHWM`, as `faultline check` reports it. (The kernel's rusage of a child
//! counts the memory of the spawning bench process until exec, about 70 MiB here, which
//! hid small figures.)
//!
//! `heavy_key` is one key as a 200-client run under every fault gives it (the run of
//! issue 18): 500 calls of 100 concurrent workers over five values, a third of them
//! crashed and open to the end, most during two pauses. [`heavy_key_history`] builds it
//! linearizable by construction (seeds 1–5) and, for each seed, an invalid variant with
//! one provably stale read; each file is checked once by the real `faultline check`, with
//! its wall time and peak RSS (`VmHWM`). `single_key_file` likewise checks the single-key
//! history once more with its last read made stale, as late as can be proven.

use criterion::{BenchmarkId, Criterion};
use faultline::checker::model::{ModelKind, ModelSpec};
use faultline::checker::simulate::{SimConfig, Simulation, Workload};
use faultline::checker::{check, CheckOptions, Verdict};
use faultline::history::{self, Format, HistoryError, Op, OpType, Process, COMPARE_FAILED};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn corpus() -> PathBuf {
    std::env::var_os("FAULTLINE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"))
}

fn load(path: &Path) -> Vec<(usize, Op)> {
    let format = Format::detect(path).unwrap_or_else(|e| panic!("{e}"));
    history::open(path, format)
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|r| r.unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

fn verdict(ops: &[(usize, Op)], spec: &ModelSpec, opts: &CheckOptions) -> Verdict {
    let stream = ops.iter().cloned().map(Ok::<_, HistoryError>);
    check(stream, Path::new("bench"), spec, opts)
        .unwrap_or_else(|e| panic!("{e}"))
        .verdict
}

fn etcd_spec() -> ModelSpec {
    ModelSpec::new(ModelKind::CasRegister)
}

/// Verdicts only, like Porcupine's timings (no counterexample shrinking).
fn verdict_only() -> CheckOptions {
    CheckOptions {
        counterexample: false,
        ..CheckOptions::default()
    }
}

fn corpus_benches(c: &mut Criterion) {
    let dir = corpus().join("porcupine/jepsen");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 102, "the corpus has 102 etcd histories");
    let histories: Vec<Vec<(usize, Op)>> = files.iter().map(|p| load(p)).collect();
    let opts = verdict_only();
    c.bench_function("etcd_all", |b| {
        b.iter(|| {
            histories
                .iter()
                .map(|h| verdict(h, &etcd_spec(), &opts) as u8 as u64)
                .sum::<u64>()
        })
    });
    c.bench_function("etcd_all_with_counterexamples", |b| {
        let opts = CheckOptions::default();
        b.iter(|| {
            histories
                .iter()
                .map(|h| verdict(h, &etcd_spec(), &opts) as u8 as u64)
                .sum::<u64>()
        })
    });
    for n in ["002", "007"] {
        let h = load(&dir.join(format!("etcd_{n}.log")));
        c.bench_function(&format!("etcd_{n}"), |b| {
            b.iter(|| verdict(&h, &etcd_spec(), &opts))
        });
    }
    let kv = load(&corpus().join("porcupine/kv/c50-ok.txt"));
    c.bench_function("kv_c50_ok", |b| {
        b.iter(|| verdict(&kv, &ModelSpec::new(ModelKind::Kv), &opts))
    });
}

/// One key, 20 processes, 10,000 invocations, a third of them crashing (info or never
/// completed), cas-register with unique written values.
fn single_key_config() -> SimConfig {
    SimConfig {
        workload: Workload::CasRegister,
        seed: 20,
        processes: 20,
        ops: 10_000,
        keys: 1,
        crash_fraction: 1.0 / 3.0,
        fail_fraction: 0.0,
        max_latency_ns: 1_000_000,
    }
}

fn generated_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("generated");
    group.sample_size(10);
    let cfg = single_key_config();
    let ops: Vec<(usize, Op)> = Simulation::new(cfg)
        .enumerate()
        .map(|(i, op)| (i + 1, op))
        .collect();
    let opts = CheckOptions {
        time_limit: Duration::from_secs(10),
        ..verdict_only()
    };
    group.bench_function(BenchmarkId::new("single_key_20p_10k", "third_info"), |b| {
        b.iter(|| verdict(&ops, &ModelSpec::new(ModelKind::CasRegister), &opts))
    });
    group.finish();
}

/// One run of the real `faultline check`, as its report tells it.
struct CheckRun {
    verdict: String,
    wall: Duration,
    /// `memory: peak RSS …`: the checking process's own `VmHWM`.
    peak_rss: String,
    search: String,
    /// `unknown because: …`, if said.
    why: Option<String>,
}

/// Run `faultline check ARGS FILE` and read its report.
fn check_run(args: &[&str], file: &Path) -> CheckRun {
    let started = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("check")
        .args(args)
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let wall = started.elapsed();
    let out = String::from_utf8_lossy(&out.stdout);
    let line = |prefix: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::to_string)
    };
    CheckRun {
        verdict: line("verdict: ")
            .unwrap_or_else(|| "?".into())
            .to_lowercase(),
        wall,
        peak_rss: line("memory: peak RSS ").unwrap_or_else(|| "?".into()),
        search: line("search: ").unwrap_or_else(|| "?".into()),
        why: line("unknown because: "),
    }
}

/// Write a simulated history to `target/checker-bench/NAME.jsonl` (once), then run the
/// real `faultline check` on it three times; print verdicts, wall times and the largest
/// peak RSS, streaming included.
fn cli_scenario(name: &str, cfg: SimConfig, args: &[&str]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/checker-bench");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let file = dir.join(format!("{name}.jsonl"));
    if !file.exists() {
        let started = Instant::now();
        let tmp = dir.join(format!("{name}.jsonl.tmp"));
        let mut w =
            std::io::BufWriter::new(std::fs::File::create(&tmp).unwrap_or_else(|e| panic!("{e}")));
        let mut n = 0u64;
        for op in Simulation::new(cfg) {
            serde_json::to_writer(&mut w, &op).unwrap_or_else(|e| panic!("{e}"));
            std::io::Write::write_all(&mut w, b"\n").unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
        drop(w);
        std::fs::rename(&tmp, &file).unwrap_or_else(|e| panic!("{e}"));
        println!(
            "{name}: wrote {n} ops to {} in {:.1?}",
            file.display(),
            started.elapsed()
        );
    }
    let runs: Vec<CheckRun> = (0..3).map(|_| check_run(args, &file)).collect();
    for run in &runs {
        assert_ne!(
            run.verdict, "invalid",
            "{name}: a simulated history is never invalid"
        );
    }
    let verdicts: Vec<&str> = runs.iter().map(|r| r.verdict.as_str()).collect();
    let mut walls: Vec<Duration> = runs.iter().map(|r| r.wall).collect();
    walls.sort();
    let rss: Vec<&str> = runs.iter().map(|r| r.peak_rss.as_str()).collect();
    println!(
        "{name}: faultline check {}: verdicts {verdicts:?}, median wall {:.2?} (runs {walls:.2?}), peak RSS {rss:?}; search: {}",
        args.join(" "),
        walls[1],
        runs[0].search
    );
}

fn kv_1m() {
    let cfg = SimConfig {
        workload: Workload::Kv,
        seed: 1,
        processes: 50,
        ops: 500_000,
        keys: 1_000,
        crash_fraction: 0.0,
        fail_fraction: 0.0,
        max_latency_ns: 1_000_000,
    };
    cli_scenario("kv-1m", cfg, &["--model", "kv"]);
}

fn single_key_file() {
    cli_scenario(
        "single-key-20p-10k",
        single_key_config(),
        &["--model", "cas-register", "--time-limit", "10s"],
    );
    let ops: Vec<Op> = Simulation::new(single_key_config()).collect();
    match late_stale_read(&ops) {
        Some(stale) => {
            let verdict = check_file_once(
                "single-key-20p-10k-stale",
                &stale,
                &["--model", "cas-register", "--time-limit", "10s"],
            );
            assert_ne!(verdict, "valid", "a provably stale read was accepted");
        }
        None => println!("single-key-20p-10k-stale: no read to make stale"),
    }
    match late_crossed_reads(&ops) {
        Some(crossed) => {
            let verdict = check_file_once(
                "single-key-20p-10k-crossed",
                &crossed,
                &["--model", "cas-register", "--time-limit", "10s"],
            );
            assert_ne!(verdict, "valid", "crossed reads were accepted");
        }
        None => println!("single-key-20p-10k-crossed: no reads to cross"),
    }
}

/// (invocation, completion) positions of every completed op of `ops`.
fn op_pairs(ops: &[Op]) -> Vec<(usize, usize)> {
    let mut open: std::collections::HashMap<Process, usize> = Default::default();
    let mut pairs = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        if op.kind == OpType::Invoke {
            open.insert(op.process, i);
        } else if let Some(inv) = open.remove(&op.process) {
            pairs.push((inv, i));
        }
    }
    pairs
}

/// `ops` (unique written values) with two overlapping ok reads changed to return the
/// values of two overlapping ok writes A and B that both returned before either read
/// began, one read each: the latest such writes with no call between them and the
/// reads. Whichever write takes effect last, the other's value is gone for good before
/// either read, so this cannot be linearized; but no single call proves it, and the
/// search finds out only once it has placed both writes, then must exhaust every order
/// of the calls before.
fn late_crossed_reads(ops: &[Op]) -> Option<Vec<Op>> {
    let pairs = op_pairs(ops);
    let ok = |f: &str, p: &(usize, usize)| ops[p.1].kind == OpType::Ok && ops[p.0].f == f;
    let mut writers: std::collections::HashMap<String, usize> = Default::default();
    for op in ops.iter().filter(|o| o.kind == OpType::Invoke) {
        let written = match op.f.as_str() {
            "write" => Some(&op.value),
            "cas" => op.value.get(1),
            _ => None,
        };
        if let Some(v) = written {
            *writers.entry(v.to_string()).or_default() += 1;
        }
    }
    let writes: Vec<(usize, usize)> = pairs
        .iter()
        .copied()
        .filter(|p| ok("write", p) && writers.get(&ops[p.0].value.to_string()) == Some(&1))
        .collect();
    let reads: Vec<(usize, usize)> = pairs.iter().copied().filter(|p| ok("read", p)).collect();
    for (i, a) in writes.iter().enumerate().rev() {
        for b in writes[i + 1..].iter().take(20) {
            if !(b.0 < a.1 && a.0 < b.1) {
                continue;
            }
            let after = a.1.max(b.1);
            let first = reads.partition_point(|r| r.0 < after);
            let Some(ra) = reads.get(first) else {
                continue;
            };
            let Some(rb) = reads[first + 1..].iter().find(|r| r.0 < ra.1) else {
                continue;
            };
            // No call may fit between the writes and the reads: one would show a state
            // other than the reads' values there, and prove the history invalid alone.
            let (from, to) = (a.1.min(b.1), ra.0.max(rb.0));
            if pairs.iter().any(|p| p.0 > from && p.1 < to) {
                continue;
            }
            let mut crossed = ops.to_vec();
            crossed[ra.1].value = ops[a.0].value.clone();
            crossed[rb.1].value = ops[b.0].value.clone();
            return Some(crossed);
        }
    }
    None
}

/// `ops` (unique written values, as [`Simulation`] writes them) with its last ok read
/// changed to a value that was overwritten as late as can be proven: the value of W1, an
/// ok write, the only call writing it, that returned before an ok write or cas W2 (of
/// another value, values being unique) was invoked, W2 returning before the read was
/// invoked; W2 the latest to return, then W1 the latest. The search must follow the
/// history nearly to the read before a linearization can run out of W1's value, and then
/// exhaust every order of the calls before that.
fn late_stale_read(ops: &[Op]) -> Option<Vec<Op>> {
    let mut open: std::collections::HashMap<Process, usize> = Default::default();
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    let mut writers: std::collections::HashMap<String, usize> = Default::default();
    for (i, op) in ops.iter().enumerate() {
        if op.kind == OpType::Invoke {
            open.insert(op.process, i);
            let written = match op.f.as_str() {
                "write" => Some(&op.value),
                "cas" => op.value.get(1),
                _ => None,
            };
            if let Some(v) = written {
                *writers.entry(v.to_string()).or_default() += 1;
            }
        } else if let Some(inv) = open.remove(&op.process) {
            pairs.push((inv, i));
        }
    }
    let ok = |&&(_, done): &&(usize, usize)| ops[done].kind == OpType::Ok;
    let (r_inv, r_done) = *pairs.iter().rev().find(|p| ok(p) && ops[p.0].f == "read")?;
    let (w2_inv, _) = *pairs
        .iter()
        .filter(|p| ok(p) && matches!(ops[p.0].f.as_str(), "write" | "cas") && p.1 < r_inv)
        .max_by_key(|p| p.1)?;
    let (w1_inv, _) = *pairs
        .iter()
        .filter(|p| {
            ok(p)
                && ops[p.0].f == "write"
                && p.1 < w2_inv
                && writers.get(&ops[p.0].value.to_string()) == Some(&1)
        })
        .max_by_key(|p| p.1)?;
    let mut stale = ops.to_vec();
    stale[r_done].value = ops[w1_inv].value.clone();
    Some(stale)
}

/// One call of [`heavy_key_history`] before it is written out.
struct HeavyCall {
    process: u64,
    f: &'static str,
    input: Value,
    invoke_us: u64,
    /// When it takes effect on the register, if it does.
    effect_us: Option<u64>,
    /// `None`: crashed and never completed.
    complete_us: Option<u64>,
    crashed: bool,
    output: Value,
    compare_failed: bool,
}

/// What a write or cas leaves in the register if it takes effect.
fn heavy_written(c: &HeavyCall) -> Option<&Value> {
    match c.f {
        "write" => Some(&c.input),
        "cas" => c.input.get(1),
        _ => None,
    }
}

/// One register as a 200-client run under every fault gave its hardest keys (up to 176
/// calls in flight on one key, ops taking 20 ms): 100 workers, 500 invocations over
/// values 0..4 (read 2 : write 1 : cas 1, the `register` workload's mix), ops 2–40 ms
/// long, up to 5 ms apart per worker. Most ops invoked during one of two pauses (the
/// node paused, ops to it pile up) and a fifth of the others crash, about a third in
/// all: half of them take effect up to 50 ms later, two thirds complete `info` after the
/// 2 s op timeout, the rest never; a crashed worker continues as a new process. Effects are applied to a real register in time order, so
/// the history is linearizable. With `stale`, one completed read is changed to a value
/// that was provably overwritten (every writer of that value invoked before the read
/// returned completed before some other completed write that returned before the read
/// began) or, when there is no such read, a read in the middle to a value never written.
fn heavy_key_history(seed: u64, stale: Stale) -> Option<Vec<Op>> {
    const WORKERS: u64 = 100;
    const CALLS: usize = 500;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let pauses = [(15_000u64, 45_000u64), (70_000, 90_000)];
    let paused = |t: u64| pauses.iter().any(|&(a, b)| (a..b).contains(&t));
    let mut next_invoke: Vec<u64> = (0..WORKERS).map(|_| rng.random_range(0..5_000)).collect();
    let mut process: Vec<u64> = (0..WORKERS).collect();
    let mut fresh_process = WORKERS;
    let mut calls: Vec<HeavyCall> = Vec::with_capacity(CALLS);
    while calls.len() < CALLS {
        let w = (0..WORKERS as usize)
            .min_by_key(|&w| next_invoke[w])
            .unwrap_or(0);
        let t = next_invoke[w];
        let value = |rng: &mut ChaCha8Rng| json!(rng.random_range(0..5));
        let (f, input) = match rng.random_range(0..4) {
            0 | 1 => ("read", Value::Null),
            2 => ("write", value(&mut rng)),
            _ => ("cas", json!([value(&mut rng), value(&mut rng)])),
        };
        let crashed = if paused(t) {
            rng.random_bool(0.8)
        } else {
            rng.random_bool(0.2)
        };
        let latency = rng.random_range(2_000..40_000);
        let (effect_us, complete_us) = if crashed {
            let effect = rng
                .random_bool(0.5)
                .then(|| t + rng.random_range(1..50_000));
            let complete = rng.random_bool(2.0 / 3.0).then_some(t + 2_000_000);
            (effect, complete)
        } else {
            (Some(t + rng.random_range(0..latency)), Some(t + latency))
        };
        calls.push(HeavyCall {
            process: process[w],
            f,
            input,
            invoke_us: t,
            effect_us,
            complete_us,
            crashed,
            output: Value::Null,
            compare_failed: false,
        });
        if crashed {
            process[w] = fresh_process;
            fresh_process += 1;
            next_invoke[w] = t + rng.random_range(100..5_000);
        } else {
            next_invoke[w] = t + latency + rng.random_range(100..5_000);
        }
    }
    // Apply the effects in time order to a real register.
    let mut order: Vec<usize> = (0..calls.len())
        .filter(|&i| calls[i].effect_us.is_some())
        .collect();
    order.sort_by_key(|&i| (calls[i].effect_us, i));
    let mut register = Value::Null;
    for i in order {
        let c = &mut calls[i];
        match c.f {
            "read" => c.output = register.clone(),
            "write" => register = c.input.clone(),
            _ if c.input[0] == register => register = c.input[1].clone(),
            _ => c.compare_failed = !c.crashed,
        }
    }
    match stale {
        Stale::No => {}
        Stale::Read => {
            // Failing a provably stale read, a read in the middle returns a value no call
            // writes.
            let (read, value) = stale_victim(&calls).or_else(|| {
                (calls.len() / 2..calls.len())
                    .find(|&i| calls[i].f == "read" && !calls[i].crashed)
                    .map(|i| (i, json!(5)))
            })?;
            calls[read].output = value;
        }
    }
    // Events: invocations and completions in time order.
    let mut events: Vec<(u64, usize, bool)> = Vec::new();
    for (i, c) in calls.iter().enumerate() {
        events.push((c.invoke_us, i, false));
        if let Some(done) = c.complete_us {
            events.push((done, i, true));
        }
    }
    events.sort();
    let ops = events
        .into_iter()
        .enumerate()
        .map(|(index, (t, i, done))| {
            let c = &calls[i];
            let (kind, value, error) = match (done, c.crashed, c.compare_failed) {
                (false, _, _) => (OpType::Invoke, c.input.clone(), None),
                (true, true, _) => (OpType::Info, c.input.clone(), Some("timeout".to_string())),
                (true, false, true) => (
                    OpType::Fail,
                    c.input.clone(),
                    Some(COMPARE_FAILED.to_string()),
                ),
                (true, false, false) if c.f == "read" => (OpType::Ok, c.output.clone(), None),
                (true, false, false) => (OpType::Ok, c.input.clone(), None),
            };
            Op {
                index: index as u64,
                time_ns: t * 1_000,
                process: Process::Client(c.process),
                kind,
                f: c.f.to_string(),
                key: None,
                value,
                node: None,
                error,
            }
        })
        .collect();
    Some(ops)
}

/// Which invalid variant of [`heavy_key_history`] to build.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stale {
    /// The history as run: linearizable.
    No,
    /// One read returns a value [`stale_victim`] proves overwritten, or else a value
    /// nobody writes. (With a third of the calls crashed and five values, every value
    /// has a crashed writer that could take effect late, so seeds 1–5 all take the
    /// second way.)
    Read,
}

/// A completed read and a value it cannot have returned: some completed write or cas W
/// (of another value) returned before the read was invoked, and every call that could
/// write the value and was invoked before the read returned completed `ok` before W was
/// invoked. Looks at the later reads first, where most calls are open.
fn stale_victim(calls: &[HeavyCall]) -> Option<(usize, Value)> {
    let ok = |c: &HeavyCall| !c.crashed && !c.compare_failed;
    for (r, read) in calls.iter().enumerate().rev() {
        let (false, "read", Some(r_done)) = (read.crashed, read.f, read.complete_us) else {
            continue;
        };
        for v in 0..5 {
            let v = json!(v);
            if v == read.output {
                continue;
            }
            let writers: Vec<&HeavyCall> = calls
                .iter()
                .filter(|c| heavy_written(c) == Some(&v) && c.invoke_us < r_done)
                .collect();
            let overwritten = calls.iter().any(|w| {
                ok(w)
                    && heavy_written(w).is_some_and(|x| *x != v)
                    && w.complete_us.is_some_and(|d| d < read.invoke_us)
                    && writers.iter().all(|c| {
                        ok(c) && c.f == "write" && c.complete_us.is_some_and(|d| d < w.invoke_us)
                    })
            });
            if overwritten && !writers.is_empty() {
                return Some((r, v));
            }
        }
    }
    None
}

/// Write `ops` to `target/checker-bench/NAME.jsonl` (replacing it), then run the real
/// `faultline check` on it once; print the verdict, the wall time, the search's counters
/// and the child's peak RSS.
fn check_file_once(name: &str, ops: &[Op], args: &[&str]) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/checker-bench");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let file = dir.join(format!("{name}.jsonl"));
    let mut w =
        std::io::BufWriter::new(std::fs::File::create(&file).unwrap_or_else(|e| panic!("{e}")));
    for op in ops {
        serde_json::to_writer(&mut w, op).unwrap_or_else(|e| panic!("{e}"));
        std::io::Write::write_all(&mut w, b"\n").unwrap_or_else(|e| panic!("{e}"));
    }
    drop(w);
    let run = check_run(args, &file);
    let why = run.why.map(|r| format!(" ({r})")).unwrap_or_default();
    println!(
        "{name}: {}{why} in {:.2?} wall, peak RSS {}; search: {}",
        run.verdict, run.wall, run.peak_rss, run.search
    );
    run.verdict
}

/// [`heavy_key_history`] for seeds 1–5, valid and with a stale read of each kind, each
/// checked once with a 10 s limit.
fn heavy_key() {
    for seed in 1..=5 {
        for stale in [Stale::No, Stale::Read] {
            let Some(ops) = heavy_key_history(seed, stale) else {
                println!("heavy-key seed {seed}: no read to make stale");
                continue;
            };
            let suffix = match stale {
                Stale::No => "",
                Stale::Read => "-stale",
            };
            let name = format!("heavy-key-{seed}{suffix}");
            let verdict = check_file_once(
                &name,
                &ops,
                &["--model", "cas-register", "--time-limit", "10s"],
            );
            let expected = if stale == Stale::No {
                "valid"
            } else {
                "invalid"
            };
            if verdict != expected && verdict != "unknown" {
                panic!("{name}: verdict {verdict}, built to be {expected}");
            }
        }
    }
}

fn main() {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wants = |name: &str| {
        filter
            .as_deref()
            .is_none_or(|f| name.contains(f) || f.contains(name))
    };
    let mut c = Criterion::default().configure_from_args();
    corpus_benches(&mut c);
    generated_benches(&mut c);
    c.final_summary();
    if wants("kv_1m") {
        kv_1m();
    }
    if wants("single_key_file") {
        single_key_file();
    }
    if wants("heavy_key") {
        heavy_key();
    }
}
