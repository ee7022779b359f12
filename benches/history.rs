//! History I/O throughput: `cargo bench --bench history`.
//!
//! Generates a 2,000,000-line `history.jsonl` (a kv workload over 1,000 keys and 50
//! processes: invocations, completions, cas pairs, some info ops), then measures reading
//! it back through [`faultline::history::open`], reading the same history as Jepsen EDN,
//! exporting it to EDN, and journaling ops through [`HistoryWriter`] (one write(2) per op).
//! Prints the median of a few runs per case. Plain `main` rather than criterion: each case
//! takes seconds, so statistics over many samples add nothing but build time.
//!
//! `FAULTLINE_BENCH_OPS` overrides the op count (e.g. for a quick run); a `jsonl`
//! argument (`cargo bench --bench history -- jsonl`) runs only the JSONL read case.

use faultline::history::{
    open, write_edn, write_jsonl, Format, HistoryWriter, Op, OpType, Process,
};
use serde_json::json;
use std::fs::File;
use std::hint::black_box;
use std::time::{Duration, Instant};

const RUNS: usize = 5;

fn generate(n: u64) -> Vec<Op> {
    // A cheap deterministic mix (LCG) so the file looks like a real run, not one line
    // repeated.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        state >> 33
    };
    (0..n)
        .map(|i| {
            let r = next();
            let process = (i / 2) % 50;
            let kind = match (i % 2, r % 20) {
                (0, _) => OpType::Invoke,
                (_, 0) => OpType::Info,
                (_, 1) => OpType::Fail,
                _ => OpType::Ok,
            };
            let (f, value) = match r % 3 {
                0 => (
                    "read",
                    if kind == OpType::Ok {
                        json!(r % 100)
                    } else {
                        json!(null)
                    },
                ),
                1 => ("write", json!(r % 100)),
                _ => ("cas", json!([r % 100, (r >> 8) % 100])),
            };
            Op {
                index: i,
                time_ns: i * 1_000 + r % 997,
                process: Process::Client(process),
                kind,
                f: f.into(),
                key: Some(format!("k{}", r % 1000)),
                value,
                node: Some(format!("n{}", r % 5 + 1)),
                error: (kind == OpType::Info).then(|| "timeout".into()),
            }
        })
        .collect()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn report(name: &str, n: u64, bytes: u64, d: Duration) {
    let secs = d.as_secs_f64();
    println!(
        "{name:<40} {:>8.3} s  {:>6.2} M ops/s  {:>7.1} MB/s",
        secs,
        n as f64 / secs / 1e6,
        bytes as f64 / secs / 1e6
    );
}

/// CPU time (user + system) of the whole process so far: with other builds sharing the
/// two cores, wall time alone over-states the cost.
fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

fn read_case(path: &std::path::Path, format: Format) -> BenchResult<(u64, Duration, Duration)> {
    let mut wall = Vec::new();
    let mut cpu = Vec::new();
    let mut count = 0;
    for _ in 0..RUNS {
        let start = Instant::now();
        let cpu_start = cpu_time();
        count = 0;
        for item in open(path, format)? {
            black_box(item?);
            count += 1;
        }
        wall.push(start.elapsed());
        cpu.push(cpu_time() - cpu_start);
    }
    Ok((count, median(wall), median(cpu)))
}

fn main() -> BenchResult<()> {
    // `cargo bench` passes --bench; `cargo test --benches` runs benches without it: then
    // only check that the bench works on a tiny history.
    let benching = std::env::args().any(|a| a == "--bench");
    // `cargo bench --bench history -- jsonl`: only the JSONL read case.
    let only_jsonl = std::env::args().skip(1).any(|a| a == "jsonl");
    let n: u64 = std::env::var("FAULTLINE_BENCH_OPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if benching { 2_000_000 } else { 1_000 });
    let dir = tempfile::tempdir()?;
    let ops = generate(n);

    let jsonl = dir.path().join("history.jsonl");
    write_jsonl(&ops, File::create(&jsonl)?)?;
    let jsonl_bytes = std::fs::metadata(&jsonl)?.len();
    let edn = dir.path().join("history.edn");
    let start = Instant::now();
    write_edn(&ops, File::create(&edn)?)?;
    let export_time = start.elapsed();
    let edn_bytes = std::fs::metadata(&edn)?.len();

    println!("history I/O, {n} ops, median of {RUNS} runs");
    let (count, d, cpu) = read_case(&jsonl, Format::Jsonl)?;
    assert_eq!(count, n);
    report("read history.jsonl", n, jsonl_bytes, d);
    report("read history.jsonl (CPU time)", n, jsonl_bytes, cpu);
    if only_jsonl {
        return Ok(());
    }
    let (count, d, cpu) = read_case(&edn, Format::Edn)?;
    assert_eq!(count, n);
    report("read history.edn", n, edn_bytes, d);
    report("read history.edn (CPU time)", n, edn_bytes, cpu);
    report("export EDN (single run)", n, edn_bytes, export_time);

    // Journaling: one write(2) per op is the price of surviving SIGKILL.
    let journal_ops = (n / 10).max(1);
    let journal = dir.path().join("journal.jsonl");
    let mut samples = Vec::new();
    for _ in 0..RUNS {
        let mut w = HistoryWriter::create(&journal)?;
        let start = Instant::now();
        for op in ops.iter().take(journal_ops as usize) {
            w.append_stamped(op.clone())?;
        }
        samples.push(start.elapsed());
    }
    let journal_bytes = std::fs::metadata(&journal)?.len();
    report(
        "journal via HistoryWriter",
        journal_ops,
        journal_bytes,
        median(samples),
    );
    Ok(())
}
