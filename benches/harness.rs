//! Harness throughput against raftkv's own benchmark: `cargo bench --bench harness`.
//!
//! Alternates, `FAULTLINE_BENCH_PAIRS` times (default 3), a 10 s `faultline run` of the
//! write-only `writes` workload with 50 workers against 5 raftkv nodes (nemesis `none`)
//! with `raftkv-bench` on the same cluster shape, 50 clients, in both of its routings:
//! `--route home` (each client's writes go to its own node first and follow the leader
//! hint — what faultline's workers do) and `--route leader` (straight to the leader).
//! Prints ops/s, the controller's CPU per op (utime + stime from /proc, sampled while it
//! runs, so it includes the checker and report after the main phase) and the shares.
//!
//! Hosts: `loopback` by default, the network raftkv-bench uses; `cargo bench --bench
//! harness -- local` runs faultline's nodes in network namespaces instead (root).
//! Needs an otherwise idle machine: nodes, clients and controller share the cores.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const SECONDS: u64 = 10;
const CLIENTS: u32 = 50;
const NODES: u32 = 5;

/// Clock ticks per second of /proc's utime and stime (USER_HZ; 100 on Linux).
const TICKS_PER_S: f64 = 100.0;

struct Faultline {
    ops_per_s: f64,
    cpu_us_per_op: f64,
}

fn faultline_run(bin: &Path, hosts: &str, store: &Path) -> Result<Faultline> {
    let mut child = Command::new(bin)
        .args(["run", "--quiet", "--hosts", hosts, "--workload", "writes"])
        .args(["--nemesis", "none", "--seed", "1"])
        .args(["--nodes", &NODES.to_string()])
        .args(["--concurrency", &CLIENTS.to_string()])
        .args(["--time-limit", &format!("{SECONDS}s")])
        .arg("--store")
        .arg(store)
        .stdout(Stdio::piped())
        .spawn()
        .context("starting faultline")?;
    let stat = PathBuf::from(format!("/proc/{}/stat", child.id()));
    let mut ticks = 0u64;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        // The last sample before exit: the process's whole CPU but for its last 50 ms.
        if let Some(t) = std::fs::read_to_string(&stat)
            .ok()
            .and_then(|s| cpu_ticks(&s))
        {
            ticks = t;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    if let Some(mut so) = child.stdout.take() {
        std::io::Read::read_to_string(&mut so, &mut out)?;
    }
    if !status.success() {
        bail!("faultline run failed ({status}): {out}");
    }
    // The verdict line: "<run dir>: valid".
    let dir = out
        .lines()
        .last()
        .and_then(|l| l.rsplit_once(": "))
        .map(|(d, _)| PathBuf::from(d))
        .context("no verdict line from faultline run")?;
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("results.json"))?)?;
    let ops = results["run"]["ok"]
        .as_u64()
        .context("results.json has no run.ok")?;
    Ok(Faultline {
        ops_per_s: ops as f64 / SECONDS as f64,
        cpu_us_per_op: ticks as f64 / TICKS_PER_S * 1e6 / ops.max(1) as f64,
    })
}

/// utime + stime from a /proc/<pid>/stat line (fields 14 and 15; the command name in
/// field 2 may hold spaces, so count from its closing parenthesis).
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn raftkv_bench(bin: &Path, route: &str) -> Result<f64> {
    let out = Command::new(bin)
        .args([
            "--nodes",
            &NODES.to_string(),
            "--clients",
            &CLIENTS.to_string(),
        ])
        .args(["--duration-s", &SECONDS.to_string(), "--route", route])
        .output()
        .context("starting raftkv-bench")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "raftkv-bench failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    text.split_whitespace()
        .find_map(|w| w.strip_prefix("writes_per_s="))
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no writes_per_s in {text:?}"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let hosts = std::env::args()
        .skip(1)
        .find(|a| a == "local" || a == "loopback")
        .unwrap_or_else(|| "loopback".into());
    let pairs: usize = std::env::var("FAULTLINE_BENCH_PAIRS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let faultline = PathBuf::from(env!("CARGO_BIN_EXE_faultline"));
    let bench = faultline
        .parent()
        .context("locating the build directory")?
        .join("raftkv-bench");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(cargo)
        .args(["build", "--release", "--quiet", "-p", "raftkv"])
        .status()?;
    if !built.success() || !bench.exists() {
        bail!("cannot build raftkv-bench ({})", bench.display());
    }
    let store = tempfile::tempdir()?;
    println!(
        "{NODES} raftkv nodes, {CLIENTS} clients, {SECONDS} s each; faultline on {hosts} hosts"
    );
    println!(
        "pair  faultline ops/s  µs CPU/op  bench home  bench leader  share home  share leader"
    );
    let (mut f_all, mut home_all, mut leader_all) = (Vec::new(), Vec::new(), Vec::new());
    for pair in 1..=pairs {
        let f = faultline_run(&faultline, &hosts, store.path())?;
        let home = raftkv_bench(&bench, "home")?;
        let leader = raftkv_bench(&bench, "leader")?;
        println!(
            "{pair:>4}  {:>15.0}  {:>9.1}  {home:>10.0}  {leader:>12.0}  {:>9.1} %  {:>11.1} %",
            f.ops_per_s,
            f.cpu_us_per_op,
            100.0 * f.ops_per_s / home,
            100.0 * f.ops_per_s / leader
        );
        f_all.push(f.ops_per_s);
        home_all.push(home);
        leader_all.push(leader);
    }
    let (f, home, leader) = (median(f_all), median(home_all), median(leader_all));
    println!(
        "median  faultline {f:.0} ops/s; raftkv-bench home {home:.0} ({:.1} %), leader {leader:.0} ({:.1} %)",
        100.0 * f / home,
        100.0 * f / leader
    );
    Ok(())
}
