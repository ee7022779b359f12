//! Checker benchmarks: the corpus histories Porcupine is timed on, and generated ones.
//!
//! Run with `cargo bench --bench checker` (all) or `cargo bench --bench checker -- NAME`
//! (one: `etcd_all`, `etcd_002`, `etcd_007`, `kv_c50_ok`, `single_key_20p_10k`,
//! `kv_1m`, `single_key_file`). Parsing is excluded from the corpus timings, as in Porcupine's figures
//! (MANIFEST.tsv); the ops are read once, and each iteration checks them from memory.
//!
//! `kv_1m` and `single_key_file` are not criterion benchmarks: each writes a simulated
//! history to `target/checker-bench/` once (1,000,000 kv ops over 1,000 keys and 50
//! processes; one cas-register key with 20 processes, 10,000 ops, a third crashing),
//! then runs the real `faultline check` on the file three times and prints the verdicts,
//! wall times and the peak resident memory of the child (getrusage), streaming included.

use criterion::{BenchmarkId, Criterion};
use faultline::checker::model::{ModelKind, ModelSpec};
use faultline::checker::simulate::{SimConfig, Simulation, Workload};
use faultline::checker::{check, CheckOptions, Verdict};
use faultline::history::{self, Format, HistoryError, Op};
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

/// Peak RSS (KiB) of the largest child waited for so far.
fn children_max_rss_kib() -> i64 {
    // SAFETY: getrusage only writes into the struct we pass.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage.ru_maxrss
    }
}

/// Write a simulated history to `target/checker-bench/NAME.jsonl` (once), then run the
/// real `faultline check` on it three times; print verdicts, wall times and the peak RSS
/// of the children (getrusage), streaming included.
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
    let mut walls = Vec::new();
    let mut verdicts = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_faultline"))
            .args(["check", "--quiet"])
            .args(args)
            .arg(&file)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        walls.push(started.elapsed());
        verdicts.push(String::from_utf8_lossy(&out.stdout).trim().to_string());
        assert!(
            matches!(out.status.code(), Some(0 | 2)),
            "{name}: a simulated history is never invalid"
        );
    }
    walls.sort();
    println!(
        "{name}: faultline check {}: verdicts {verdicts:?}, median wall {:.2?} (runs {walls:.2?}), peak RSS {} MiB",
        args.join(" "),
        walls[1],
        children_max_rss_kib() / 1024
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
}
