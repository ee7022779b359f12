//! `faultline campaign FILE`: decide the hosts, resolve every cell, start a campaign
//! directory or resume the unfinished one of the same file, run what is left, and map
//! the campaign's outcome to an exit code (see [`crate::campaign::summary`]).

use super::cli::CampaignArgs;
use crate::campaign::dir::{self, Previous};
use crate::campaign::{exec, max_parallel, summary, Campaign};
use crate::spec::{HostsChoice, SpecRoots};
use anyhow::{bail, Context, Result};
use std::process::ExitCode;

/// Exit code for bad input, a harness error or an interrupted campaign.
const HARNESS_ERROR: u8 = 3;

pub fn campaign(args: CampaignArgs) -> ExitCode {
    match run(&args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(HARNESS_ERROR)
        }
    }
}

/// The hosts the user asked for, with the subnet (local) or the inventory (SSH, made
/// absolute: every child run gets the same file).
fn requested_hosts(args: &CampaignArgs) -> Result<Option<HostsChoice>> {
    let inventory = match &args.where_.inventory {
        Some(p) => Some(
            p.canonicalize()
                .with_context(|| format!("cannot read inventory {}", p.display()))?,
        ),
        None => None,
    };
    let choice = super::run::hosts_choice(args.where_.hosts, inventory.as_deref())
        .map_err(anyhow::Error::msg)?;
    Ok(choice.map(|h| match h {
        HostsChoice::Local { .. } => HostsChoice::Local {
            subnet: args
                .where_
                .subnet
                .clone()
                .unwrap_or_else(|| crate::spec::plan::DEFAULT_SUBNET.into()),
        },
        other => other,
    }))
}

fn run(args: &CampaignArgs) -> Result<u8> {
    let source = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read campaign file {}", args.file.display()))?;
    let spec = crate::spec::campaign::CampaignSpec::parse(&args.file, &source)?;
    let previous = if args.fresh || args.dry_run {
        Previous::None
    } else {
        dir::find(&args.store, &spec.name, &source)?
    };

    // A resumed campaign keeps the hosts it started on: one matrix, one kind of host.
    let requested = requested_hosts(args)?;
    let hosts = match (&previous, requested) {
        (Previous::Unfinished(path, state), Some(h)) if h != state.hosts => bail!(
            "{} was started with --hosts {}{}; resume it with the same hosts, or start over with --fresh",
            path.display(),
            crate::campaign::hosts_arg(&state.hosts),
            match &state.hosts {
                HostsChoice::Local { subnet } => format!(" --subnet {subnet}"),
                HostsChoice::Loopback => String::new(),
                HostsChoice::Ssh { inventory, .. } =>
                    format!(" --inventory {}", inventory.display()),
            }
        ),
        (Previous::Unfinished(_, state), _) => state.hosts.clone(),
        (_, Some(h)) => h,
        (_, None) => {
            let (auto, warning) = crate::runner::auto_hosts();
            let auto = match (auto, &args.where_.subnet) {
                (HostsChoice::Local { .. }, Some(s)) => HostsChoice::Local { subnet: s.clone() },
                (h, _) => h,
            };
            if let (Some(w), HostsChoice::Loopback) = (&warning, &auto) {
                eprintln!("note: {w}");
            }
            auto
        }
    };

    let campaign = Campaign::resolve(&args.file, &SpecRoots::default_roots(), &hosts)?;
    if args.dry_run {
        print_runs(&campaign, &hosts);
        return Ok(0);
    }
    if let HostsChoice::Ssh { inventory, .. } = &hosts {
        // A bad host fails the campaign now, naming the node and the reason, instead of
        // failing every run one after another.
        let nodes = crate::spec::inventory::load(inventory)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(crate::hosts::ssh::check_inventory(&nodes, campaign.needs))?;
    }
    let cap = max_parallel(&hosts);
    let parallel = args.parallel.clamp(1, cap);
    if args.parallel > cap {
        eprintln!(
            "note: --parallel {} lowered to {cap}: that is as many runs as these hosts take at once",
            args.parallel
        );
    }

    let (cdir, mut state) = match previous {
        Previous::Unfinished(path, state) => {
            let (d, s) = dir::resume(&path, &campaign, state)?;
            let next = s
                .runs
                .iter()
                .find(|r| r.status != dir::Status::Done)
                .map_or(0, |r| r.index + 1);
            println!(
                "campaign {}: resuming {}: {} of {} runs done, continuing with run {next}",
                campaign.name(),
                d.path.display(),
                s.done(),
                s.runs.len()
            );
            (d, s)
        }
        Previous::Finished(_) | Previous::None => {
            if let Previous::Finished(last) = &previous {
                println!(
                    "campaign {}: {} finished every run; starting a new campaign directory",
                    campaign.name(),
                    last.display()
                );
            }
            let (d, s) = dir::create(&args.store, &campaign, &hosts)?;
            println!(
                "campaign {}: starting {}: {} runs in {} cells, hosts {}, {parallel} at a time{}",
                campaign.name(),
                d.path.display(),
                s.runs.len(),
                campaign.cells.len(),
                crate::campaign::hosts_arg(&hosts),
                if args.fresh { " (--fresh)" } else { "" }
            );
            (d, s)
        }
    };

    crate::campaign::write_outputs(&campaign, &cdir.path, &state)?;
    refresh_reports_index(&args.store);
    let settings = exec::Settings {
        exe: std::env::current_exe().context("cannot find the faultline binary")?,
        dir: cdir.path.clone(),
        parallel,
    };
    // One thread: children are the work; the campaign only waits, and PDEATHSIG of the
    // children follows the thread that forked them (see exec::child_command).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let interrupted = rt.block_on(exec::run(&campaign, &mut state, &settings))?;
    crate::campaign::write_outputs(&campaign, &cdir.path, &state)?;
    refresh_reports_index(&args.store);

    let counts = summary::Counts::of(&state.runs);
    let (_, code) = summary::outcome(&state);
    println!(
        "campaign {}: {} runs: {} as expected, {} not as expected, {} errors, {} pending{}{}; exit {code}",
        campaign.name(),
        counts.runs,
        counts.as_expected,
        counts.unexpected,
        counts.errors,
        counts.pending,
        if counts.skipped > 0 {
            format!(", {} skipped (their series had broken)", counts.skipped)
        } else {
            String::new()
        },
        if interrupted {
            " (interrupted: run the same command to resume)"
        } else {
            ""
        }
    );
    println!("{}", summary::scenarios_line(&state));
    let series = summary::series_of(&state);
    for cp in campaign.cells.iter().filter(|cp| cp.cell.series.is_some()) {
        if let Some(line) = summary::series_line(&series, cp.cell.index) {
            println!("{}: {line}", cp.name);
        }
    }
    println!("{}", cdir.path.join(crate::campaign::INDEX_HTML).display());
    Ok(code)
}

/// `<store>/index.html` lists campaigns too; it is for people, so a failure is a note.
fn refresh_reports_index(store: &std::path::Path) {
    if let Err(e) = crate::report::index::write(store) {
        eprintln!("note: cannot update {}/index.html: {e:#}", store.display());
    }
}

/// `--dry-run`: the runs the campaign would execute, in order.
fn print_runs(c: &Campaign, hosts: &HostsChoice) {
    // A reader that stops early (`| head`) closes the pipe: stop printing, not panic.
    let mut out = std::io::stdout().lock();
    let _ = print_runs_to(&mut out, c, hosts);
}

fn print_runs_to(
    out: &mut impl std::io::Write,
    c: &Campaign,
    hosts: &HostsChoice,
) -> std::io::Result<()> {
    writeln!(
        out,
        "campaign {}: {} runs in {} cells, hosts {} (dry run: every cell resolved, nothing started)",
        c.name(),
        c.runs.len(),
        c.cells.len(),
        crate::campaign::hosts_arg(hosts)
    )?;
    for (i, r) in c.runs.iter().enumerate() {
        let cell = &c.cells[r.cell];
        writeln!(
            out,
            "[{}/{}] {} {} seed {} time limit {} expect {}",
            i + 1,
            c.runs.len(),
            cell.cell.label(),
            cell.cell.run_label(r.repeat),
            r.seed,
            humantime::format_duration(cell.cell.time_limit),
            cell.cell.expect.as_str()
        )?;
    }
    Ok(())
}
