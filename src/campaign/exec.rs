//! Running a campaign's runs: each run is a child `faultline run <cell file> --seed S
//! --store <campaign>/runs --hosts H --quiet`, at most `parallel` at a time, in the
//! campaign's order, skipping runs already done.
//!
//! Why children rather than `runner::execute` in this process: a run's progress line is
//! the terminal's, a run installs process-wide SIGINT/SIGTERM handling, and the checker
//! may hold gigabytes; a child isolates all of that, lets runs go in parallel, and lets
//! the campaign stop a run that overstays its time budget without stopping itself. The
//! child is exactly what a user would type to reproduce the run.
//!
//! Interrupts: SIGINT or SIGTERM to the campaign starts no further run and forwards
//! SIGINT to the running children, which heal, tear down and exit (a terminal's Ctrl-C
//! reaches them directly too; a second SIGINT is harmless). Those runs go back to
//! pending, so the next `faultline campaign` redoes them.

use super::dir::{self, RunState, State, Status};
use super::summary::{assess, Assessment};
use super::{hosts_arg, write_outputs, Campaign};
use crate::checker::Verdict;
use crate::runner::stopped;
use crate::spec::HostsChoice;
use anyhow::{Context, Result};
use nix::sys::signal::Signal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Beyond its clients' time limit, a run may take this long for the rest: installing
/// the target (a first `cargo build --release` on a small machine), starting and probing
/// nodes, final reads (60 s budget), checking (60 s budget) and rendering.
const RUN_OVERHEAD_BUDGET: Duration = Duration::from_secs(15 * 60);
/// After SIGINT a run heals, tears down and checks what it has; past this it is killed
/// (its namespaces are then swept by the next run or `faultline cleanup`).
const INTERRUPT_GRACE: Duration = Duration::from_secs(120);
/// The end of a child's stderr kept as the error of a run without a verdict.
const ERROR_TAIL_CHARS: usize = 2000;

/// What running the campaign needs besides the campaign and its state.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The `faultline` binary to run children with (this one).
    pub exe: PathBuf,
    /// The campaign directory.
    pub dir: PathBuf,
    pub parallel: usize,
}

/// How a child ended.
#[derive(Debug)]
struct ChildEnd {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    seconds: f64,
    /// The campaign was interrupted while this run went on (it got SIGINT from us).
    interrupted: bool,
    /// It overstayed its time budget and was stopped.
    timed_out: bool,
}

/// Run every pending run of `state`; returns whether the campaign was interrupted.
pub async fn run(c: &Campaign, state: &mut State, s: &Settings) -> Result<bool> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let signals = tokio::spawn(watch_signals(stop_tx));
    let total = state.runs.len();
    let mut running = tokio::task::JoinSet::new();
    let mut next = 0;
    // A resumed campaign may hold series that broke before it stopped.
    state.skip_broken_series();
    loop {
        while running.len() < s.parallel && !*stop_rx.borrow() {
            let Some(i) = (next..total).find(|&i| state.runs[i].status == Status::Pending) else {
                break;
            };
            next = i + 1;
            let r = &mut state.runs[i];
            r.status = Status::Running;
            let cell = &c.cells[r.cell];
            println!(
                "[{}/{total}] start {} {} seed {}",
                i + 1,
                cell.cell.label(),
                cell.cell.run_label(r.repeat),
                r.seed
            );
            let cmd = child_command(s, &state.hosts, &cell.name, r.seed);
            let budget = cell.cell.time_limit + RUN_OVERHEAD_BUDGET;
            let stop = stop_rx.clone();
            running.spawn(async move { (i, run_child(cmd, budget, stop).await) });
            write_outputs(c, &s.dir, state)?;
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let (i, end) = joined.context("a campaign task panicked")?;
        let r = &mut state.runs[i];
        match end {
            Ok(end) => record(r, &s.dir, end),
            Err(e) => {
                r.status = Status::Done;
                r.error = Some(format!("{e:#}"));
            }
        }
        println!("[{}/{total}] {}", i + 1, end_line(r));
        let skipped = state.skip_broken_series();
        if skipped > 0 {
            println!("  its series broke: {skipped} run(s) of it skipped");
        }
        write_outputs(c, &s.dir, state)?;
    }
    signals.abort();
    let interrupted = *stop_rx.borrow();
    Ok(interrupted)
}

/// `faultline run cells/<cell>.yaml --seed S --store runs --hosts H [--subnet N |
/// --inventory F] --quiet`.
fn child_command(
    s: &Settings,
    hosts: &HostsChoice,
    cell: &str,
    seed: u64,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(&s.exe);
    cmd.arg("run")
        .arg(dir::cell_file(&s.dir, cell))
        .args(["--seed", &seed.to_string()])
        .arg("--store")
        .arg(s.dir.join(dir::RUNS))
        .args(["--hosts", hosts_arg(hosts)]);
    match hosts {
        HostsChoice::Local { subnet } => {
            cmd.args(["--subnet", subnet]);
        }
        HostsChoice::Ssh { inventory, .. } => {
            cmd.arg("--inventory").arg(inventory);
        }
        HostsChoice::Loopback => {}
    }
    cmd.arg("--quiet")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    // No kill_on_drop: a campaign that fails leaves its children to PDEATHSIG's SIGTERM,
    // an orderly stop, rather than SIGKILL, which would leave namespaces to the sweep.
    // SAFETY: the closure runs between fork and exec and only calls prctl, which is
    // async-signal-safe. The campaign runs on a current-thread runtime, so the thread
    // that forks (whose exit PDEATHSIG watches) lives as long as the campaign.
    unsafe {
        cmd.pre_exec(|| {
            // A SIGKILLed campaign must not leave runs going: SIGTERM is an orderly stop.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

fn signal_child(pid: Option<u32>, sig: Signal) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
    }
}

/// Run one child to its end: forward an interrupt, stop it when it overstays `budget`,
/// kill it when it does not stop within the grace period.
async fn run_child(
    mut cmd: tokio::process::Command,
    budget: Duration,
    mut stop: watch::Receiver<bool>,
) -> Result<ChildEnd> {
    let t0 = Instant::now();
    let child = cmd.spawn().context("cannot start `faultline run`")?;
    // The pid stays ours until the output future below reaps the child; we only signal
    // while that future is pending.
    let pid = child.id();
    let output = child.wait_with_output();
    tokio::pin!(output);
    let deadline = tokio::time::Instant::now() + budget;
    let mut kill_at = None;
    let (mut interrupted, mut timed_out) = (false, false);
    let out = loop {
        tokio::select! {
            out = &mut output => break out.context("cannot wait for `faultline run`")?,
            _ = stopped(&mut stop), if kill_at.is_none() => {
                interrupted = true;
                signal_child(pid, Signal::SIGINT);
                kill_at = Some(tokio::time::Instant::now() + INTERRUPT_GRACE);
            }
            _ = tokio::time::sleep_until(deadline), if kill_at.is_none() => {
                timed_out = true;
                signal_child(pid, Signal::SIGINT);
                kill_at = Some(tokio::time::Instant::now() + INTERRUPT_GRACE);
            }
            _ = tokio::time::sleep_until(kill_at.unwrap_or(deadline)), if kill_at.is_some() => {
                signal_child(pid, Signal::SIGKILL);
                kill_at = Some(tokio::time::Instant::now() + Duration::from_secs(3600));
            }
        }
    };
    Ok(ChildEnd {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        seconds: t0.elapsed().as_secs_f64(),
        interrupted,
        timed_out,
    })
}

/// The run directory a child printed (`DIR: verdict`), or named in its error.
fn run_dir_of(end: &ChildEnd) -> Option<PathBuf> {
    if let Some(line) = end.stdout.lines().rev().find(|l| !l.trim().is_empty()) {
        if let Some((d, _)) = line.rsplit_once(": ") {
            return Some(PathBuf::from(d));
        }
    }
    // `error: …: run directory DIR: cause` (runner::execute adds that context).
    let rest = end.stderr.split("run directory ").nth(1)?;
    let d = rest.split(": ").next()?.lines().next()?;
    Some(PathBuf::from(d.trim()))
}

/// Seconds from the start of the clients to the invocation of the op that could not be
/// linearized, from the run's results.json.
fn first_anomaly_s(run_dir: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(run_dir.join("results.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let ns = v
        .pointer("/check/counterexample/failing_call/invoke/time_ns")?
        .as_f64()?;
    Some(ns / 1e9)
}

/// How many of the planned faults of the run in `run_dir` landed, from its results.json.
fn faults_landed(run_dir: &Path) -> Option<super::dir::FaultsLanded> {
    let text = std::fs::read_to_string(run_dir.join("results.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let f = v.pointer("/run/faults")?;
    Some(super::dir::FaultsLanded {
        planned: f.get("planned")?.as_u64()?,
        landed: f.get("landed")?.as_u64()?,
    })
}

/// What a write cost on the wire in the run in `run_dir`, from its results.json; `None`
/// when its links were not counted.
fn wire_cost(run_dir: &Path) -> Option<super::dir::WireCost> {
    let text = std::fs::read_to_string(run_dir.join("results.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let w = v.get("wire").filter(|w| w.is_object())?;
    Some(super::dir::WireCost {
        messages_per_write: w.get("messages_per_write").and_then(|x| x.as_f64()),
        bytes_per_write: w.get("bytes_per_write").and_then(|x| x.as_f64()),
    })
}

/// The oracles whose verdict on the run in `run_dir` is invalid, from its results.json:
/// the linearizability checker's (`check`) and the agreement oracle's (`agreement`).
fn broken_by(run_dir: &Path) -> Vec<String> {
    let Some(v) = std::fs::read_to_string(run_dir.join("results.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
    else {
        return Vec::new();
    };
    [
        ("/check/verdict", "linearizability"),
        ("/agreement/verdict", "agreement"),
    ]
    .into_iter()
    .filter(|(at, _)| v.pointer(at).and_then(|x| x.as_str()) == Some("invalid"))
    .map(|(_, name)| name.to_string())
    .collect()
}

/// Why the run in `run_dir` is unknown, from its results.json (runs before the stats
/// rule: the checker's reason).
fn unknown_reason(run_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(run_dir.join("results.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let reason = v
        .get("reason")
        .filter(|r| !r.is_null())
        .or_else(|| v.pointer("/check/reason"))?;
    Some(head(reason.as_str()?, REASON_CHARS))
}

/// Characters of an unknown run's reason kept in state.json (it names up to three op
/// kinds with three errors each).
const REASON_CHARS: usize = 1_000;

/// The first `chars` characters of `s`, with `…` when cut.
fn head(s: &str, chars: usize) -> String {
    match s.char_indices().nth(chars) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn tail(s: &str, chars: usize) -> String {
    let s = s.trim();
    let n = s.chars().count();
    if n <= chars {
        return s.to_string();
    }
    let cut: String = s.chars().skip(n - chars).collect();
    format!("…{cut}")
}

/// Record a child's end in its run's state entry.
fn record(r: &mut RunState, campaign_dir: &Path, end: ChildEnd) {
    let run_dir = run_dir_of(&end);
    r.exit_code = end.code;
    r.seconds = Some(end.seconds);
    r.run_dir = run_dir.as_ref().map(|d| {
        d.strip_prefix(campaign_dir)
            .unwrap_or(d)
            .to_string_lossy()
            .into_owned()
    });
    r.verdict = match end.code {
        // 4: the history was valid but the cluster did not serve again in time; the
        // verdict is the safety verdict.
        Some(0) | Some(4) => Some(Verdict::Valid),
        Some(1) => Some(Verdict::Invalid),
        Some(2) => Some(Verdict::Unknown),
        _ => None,
    };
    r.first_anomaly_s = match (&run_dir, r.verdict) {
        (Some(d), Some(Verdict::Invalid)) => first_anomaly_s(d),
        _ => None,
    };
    r.reason = match (&run_dir, r.verdict) {
        (Some(d), Some(Verdict::Unknown)) => unknown_reason(d),
        _ => None,
    };
    r.broken_by = match (&run_dir, r.verdict) {
        (Some(d), Some(Verdict::Invalid)) => broken_by(d),
        _ => Vec::new(),
    };
    r.ended_unix_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs_f64());
    r.faults = run_dir.as_deref().and_then(faults_landed);
    r.wire = run_dir.as_deref().and_then(wire_cost);
    r.liveness_failed = end.code == Some(4);
    r.error = None;
    r.status = Status::Done;
    if r.verdict.is_none() {
        if end.interrupted && !end.timed_out {
            // Stopped by the campaign's interrupt: redo it next time.
            r.status = Status::Pending;
            r.error = Some("interrupted; redone when the campaign resumes".into());
        } else if end.timed_out {
            r.error = Some(format!(
                "stopped: it overstayed its time budget (time limit + {} s)",
                RUN_OVERHEAD_BUDGET.as_secs()
            ));
        } else {
            r.error = Some(tail(&end.stderr, ERROR_TAIL_CHARS));
        }
    }
}

/// The progress line of a run's end.
fn end_line(r: &RunState) -> String {
    let secs = r.seconds.map_or(String::new(), |s| format!(" ({s:.1} s)"));
    let dir = r.run_dir.as_deref().unwrap_or("-");
    match (assess(r), r.verdict) {
        // A series is judged whole: a scenario that did not break it is not yet a result.
        (Assessment::AsExpected, Some(Verdict::Valid)) if r.series.is_some() => {
            format!("valid, the series goes on{secs}: {dir}")
        }
        (Assessment::AsExpected, Some(v)) => format!("{v} as expected{secs}: {dir}"),
        (Assessment::Unexpected, Some(v)) => format!(
            "{} (expected {}){secs}: {dir}{}",
            v.to_string().to_uppercase(),
            r.expect.as_str(),
            r.reason
                .as_deref()
                .map(|why| format!("\n  unknown because: {why}"))
                .unwrap_or_default()
        ),
        (Assessment::Pending, _) => format!("interrupted{secs}; to be redone: {dir}"),
        _ => format!(
            "ERROR{secs}: {}",
            r.error
                .as_deref()
                .and_then(|e| e.lines().last())
                .unwrap_or("no verdict")
        ),
    }
}

/// SIGINT/SIGTERM: no new runs; running ones are stopped in order (see the module doc).
async fn watch_signals(stop: watch::Sender<bool>) {
    crate::runner::stop_signal().await;
    eprintln!("campaign interrupted: stopping the running run(s) in order; run the same command again to resume");
    let _ = stop.send(true);
    // Later signals land here too, so they cannot end the campaign before it has
    // recorded the state.
    loop {
        crate::runner::stop_signal().await;
        eprintln!("campaign: still waiting for running runs to tear down");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::campaign::Expect;

    fn entry() -> RunState {
        let slot = crate::spec::campaign::RunSlot {
            cell: 0,
            repeat: 0,
            seed: 1,
        };
        let mut r = RunState::pending(0, &slot, "c", Expect::Invalid, None);
        r.status = Status::Running;
        r
    }

    fn end(code: Option<i32>, stdout: &str, stderr: &str, interrupted: bool) -> ChildEnd {
        ChildEnd {
            code,
            stdout: stdout.into(),
            stderr: stderr.into(),
            seconds: 3.0,
            interrupted,
            timed_out: false,
        }
    }

    #[test]
    fn a_verdict_line_gives_verdict_and_relative_run_dir() {
        let mut r = entry();
        record(
            &mut r,
            Path::new("/c"),
            end(Some(1), "/c/runs/c/20261124T000000Z: invalid\n", "", false),
        );
        assert_eq!(r.status, Status::Done);
        assert_eq!(r.verdict, Some(Verdict::Invalid));
        assert_eq!(r.run_dir.as_deref(), Some("runs/c/20261124T000000Z"));
        assert_eq!(
            end_line(&r),
            "invalid as expected (3.0 s): runs/c/20261124T000000Z"
        );
        r.verdict = Some(Verdict::Valid);
        r.series = Some(1);
        assert_eq!(
            end_line(&r),
            "valid, the series goes on (3.0 s): runs/c/20261124T000000Z"
        );
    }

    #[test]
    fn an_interrupted_run_goes_back_to_pending_and_an_error_is_kept() {
        let mut r = entry();
        record(
            &mut r,
            Path::new("/c"),
            end(Some(3), "/c/runs/c/x: unknown (interrupted)\n", "", true),
        );
        assert_eq!(r.status, Status::Pending);
        let mut r = entry();
        record(
            &mut r,
            Path::new("/c"),
            end(
                Some(3),
                "",
                "note: x\nerror: run directory /c/runs/c/y: cannot start n1\n",
                false,
            ),
        );
        assert_eq!(r.status, Status::Done);
        assert_eq!(r.verdict, None);
        assert_eq!(r.run_dir.as_deref(), Some("runs/c/y"));
        assert!(r.error.as_deref().unwrap().ends_with("cannot start n1"));
        assert!(end_line(&r).starts_with("ERROR (3.0 s): error: run directory"));
    }
}
