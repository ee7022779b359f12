//! `faultline run` and `faultline cleanup`: turn what the user typed into a plan, execute
//! it on a tokio runtime, and map the outcome to an exit code.

use super::cli::{CleanupArgs, HostsArg, RunArgs};
use crate::runner::{auto_hosts, execute};
use crate::spec::{HostsChoice, Overrides, Plan, SpecRoots};
use std::process::ExitCode;

/// Exit code for bad input or a harness error.
const HARNESS_ERROR: u8 = 3;

pub fn run(args: RunArgs) -> ExitCode {
    // Probing creates and deletes a network namespace: only when the user did not choose
    // the hosts (a campaign always does, and may interrupt a run while it starts; an
    // interrupt mid-probe would leave that namespace behind). A chosen `--hosts` makes
    // the fallback irrelevant.
    let (auto, warning) = match args.where_.hosts {
        Some(_) => (HostsChoice::Loopback, None),
        None => auto_hosts(),
    };
    let overrides = Overrides {
        test_file: args.test.clone(),
        target: args.target.clone(),
        workload: args.workload.clone(),
        nemesis: args.nemesis.clone(),
        nodes: args.nodes,
        concurrency: args.concurrency,
        time_limit: args.time_limit,
        rate: args.rate,
        seed: args.seed,
        target_args: args.target_args.clone(),
        leave_running: args.leave_running,
        store: Some(args.store.clone()),
        hosts: match hosts_choice(args.where_.hosts, args.where_.inventory.as_deref()) {
            Ok(h) => h,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(HARNESS_ERROR);
            }
        },
        subnet: args.where_.subnet.clone(),
        recover: args.recover,
        data_fs: args.data_fs.map(Into::into),
    };
    let plan = match Plan::resolve(&SpecRoots::default_roots(), &overrides, auto) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(HARNESS_ERROR);
        }
    };
    if let (Some(w), HostsChoice::Loopback) = (&warning, &plan.hosts) {
        eprintln!("note: {w}");
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(HARNESS_ERROR);
        }
    };
    match rt.block_on(execute(plan, args.quiet)) {
        Ok(outcome) => {
            let verdict = outcome
                .verdict
                .map(|v| v.to_string())
                .unwrap_or_else(|| "none".into());
            // The reason goes on a line of its own: the last line stays `DIR: verdict`,
            // which campaigns and scripts parse.
            if outcome.verdict == Some(crate::checker::Verdict::Unknown) {
                if let Some(reason) = unknown_reason(&outcome.run_dir) {
                    println!("unknown because: {reason}");
                }
            }
            // The reason goes to stderr: the last stdout line stays `DIR: verdict…`,
            // which a campaign parses, and a reason may contain ": ".
            if let Some(why) = &outcome.liveness_failed {
                eprintln!("liveness failed: {why}");
            }
            println!(
                "{}: {}{}{}",
                outcome.run_dir.display(),
                verdict,
                if outcome.liveness_failed.is_some() {
                    ", liveness failed"
                } else {
                    ""
                },
                if outcome.interrupted {
                    " (interrupted)"
                } else {
                    ""
                }
            );
            ExitCode::from(outcome.exit_code())
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(HARNESS_ERROR)
        }
    }
}

/// Why the run in `dir` is unknown, from its results.json (older runs: the checker's).
fn unknown_reason(dir: &std::path::Path) -> Option<String> {
    let results = crate::report::run::read_results(dir).ok()??;
    let reason = results
        .get("reason")
        .filter(|r| !r.is_null())
        .or_else(|| results.pointer("/check/reason"))?;
    reason.as_str().map(str::to_string)
}

/// What `--hosts` and `--inventory` ask for together.
pub fn hosts_choice(
    hosts: Option<HostsArg>,
    inventory: Option<&std::path::Path>,
) -> Result<Option<HostsChoice>, String> {
    match (hosts, inventory) {
        (Some(HostsArg::Ssh) | None, Some(inv)) => Ok(Some(HostsChoice::Ssh {
            inventory: inv.to_path_buf(),
            nodes: Vec::new(),
        })),
        (Some(HostsArg::Ssh), None) => {
            Err("--hosts ssh needs --inventory FILE (see `faultline hosts vagrant`)".into())
        }
        (Some(h), Some(_)) => Err(format!(
            "--inventory lists SSH hosts, but --hosts {} was asked for",
            if h == HostsArg::Local {
                "local"
            } else {
                "loopback"
            }
        )),
        (Some(HostsArg::Local), None) => Ok(Some(HostsChoice::Local {
            subnet: String::new(),
        })),
        (Some(HostsArg::Loopback), None) => Ok(Some(HostsChoice::Loopback)),
        (None, None) => Ok(None),
    }
}

pub fn cleanup(args: CleanupArgs) -> ExitCode {
    match args.run_id {
        Some(id) => match crate::hosts::cleanup::remove_run(&id) {
            Ok(problems) if problems.is_empty() => {
                println!("removed everything run {id} had left");
                ExitCode::SUCCESS
            }
            Ok(problems) => {
                for p in problems {
                    eprintln!("error: {p}");
                }
                ExitCode::from(HARNESS_ERROR)
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(HARNESS_ERROR)
            }
        },
        None => {
            let report = crate::hosts::cleanup::sweep_stale();
            if report.is_empty() {
                println!("nothing left behind");
            }
            for line in report {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
    }
}
