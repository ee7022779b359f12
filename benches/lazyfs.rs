//! The power-failure filesystem's overhead: `cargo bench --bench lazyfs` (root, /dev/fuse).
//!
//! Part 1, write loops, each on a plain directory and through a `hosts::lazyfs` mount over
//! a sibling directory on the same disk (so both fsyncs reach the same device):
//! 4 KiB writes each followed by fdatasync; 100-byte WAL appends each followed by
//! fdatasync; 4 KiB writes without fsync. Median of `FAULTLINE_BENCH_REPS` (default 3).
//!
//! Part 2, raftkv's own benchmark (`target/release/raftkv-bench`, built with `cargo build
//! --release -p raftkv`; skipped if absent): 3 nodes, 50 clients, 10 s, with the nodes'
//! data dirs on a plain directory and on one mount (one FUSE server thread for all three
//! nodes), alternating `FAULTLINE_BENCH_PAIRS` times (default 2).
//!
//! Prints the load average before and after: the figures need an otherwise idle machine.

use anyhow::{bail, Context, Result};
use faultline::hosts::lazyfs;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// One case: ops/s of `ops` operations on a fresh file in `dir`.
type Case = fn(&Path, usize) -> Result<()>;

fn write_fsync_4k(dir: &Path, ops: usize) -> Result<()> {
    let f = File::create(dir.join("f"))?;
    let buf = [7u8; 4096];
    for i in 0..ops {
        f.write_all_at(&buf, (i * 4096) as u64)?;
        f.sync_data()?;
    }
    Ok(())
}

fn wal_append_fsync(dir: &Path, ops: usize) -> Result<()> {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("wal"))?;
    let rec = [b'r'; 100];
    for _ in 0..ops {
        f.write_all(&rec)?;
        f.sync_data()?;
    }
    Ok(())
}

fn write_4k_no_fsync(dir: &Path, ops: usize) -> Result<()> {
    let f = File::create(dir.join("f"))?;
    let buf = [7u8; 4096];
    for i in 0..ops {
        f.write_all_at(&buf, (i * 4096) as u64)?;
    }
    Ok(())
}

fn measure(case: Case, dir: &Path, ops: usize, reps: usize) -> Result<f64> {
    let mut rates = Vec::new();
    for _ in 0..reps {
        for e in std::fs::read_dir(dir)? {
            std::fs::remove_file(e?.path())?;
        }
        let start = Instant::now();
        case(dir, ops)?;
        rates.push(ops as f64 / start.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    Ok(rates[rates.len() / 2])
}

fn raftkv_bench(bench: &Path, dir: &Path) -> Result<String> {
    let out = Command::new(bench)
        .args(["--nodes", "3", "--clients", "50", "--duration-s", "10"])
        .arg("--dir")
        .arg(dir)
        .output()
        .context("running raftkv-bench")?;
    if !out.status.success() {
        bail!("raftkv-bench: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() -> Result<()> {
    if !nix::unistd::geteuid().is_root() || !Path::new("/dev/fuse").exists() {
        println!("skipped: the lazyfs benchmark needs root and /dev/fuse");
        return Ok(());
    }
    let reps = env_usize("FAULTLINE_BENCH_REPS", 3);
    println!("load average before: {}", loadavg());
    // Both directories on the disk the target dir is on (not a tmpfs /tmp).
    let base = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let plain = base.path().join("plain");
    let backing = base.path().join("backing");
    let mnt = base.path().join("mnt");
    for d in [&plain, &backing, &mnt] {
        std::fs::create_dir(d)?;
    }
    let mount = lazyfs::mount(&backing, &mnt)?;

    let cases: [(&str, Case, usize); 3] = [
        ("4 KiB write + fdatasync", write_fsync_4k, 300),
        ("100 B WAL append + fdatasync", wal_append_fsync, 300),
        ("4 KiB write, no fsync", write_4k_no_fsync, 5000),
    ];
    println!("| case | ops | plain dir ops/s | through lazyfs ops/s | ratio |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (name, case, ops) in cases {
        let p = measure(case, &plain, ops, reps)?;
        let l = measure(case, &mnt, ops, reps)?;
        println!("| {name} | {ops} | {p:.0} | {l:.0} | {:.2} |", l / p);
    }
    for e in std::fs::read_dir(&mnt)? {
        std::fs::remove_file(e?.path())?;
    }

    let bench = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/raftkv-bench");
    if bench.exists() {
        for _ in 0..env_usize("FAULTLINE_BENCH_PAIRS", 2) {
            println!("plain:  {}", raftkv_bench(&bench, &plain)?);
            println!("lazyfs: {}", raftkv_bench(&bench, &mnt)?);
        }
        println!("(lazyfs held {:?} un-fsynced at the end)", mount.pending());
    } else {
        println!("raftkv-bench not built: cargo build --release -p raftkv");
    }
    mount.unmount()?;
    println!("load average after: {}", loadavg());
    Ok(())
}
