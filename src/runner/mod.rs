//! The runner: the one async loop of a run — workers, the nemesis, per-op timeouts,
//! journaling, the final phase and a clean shutdown on every exit path.
//!
//! Lifecycle (DESIGN.md): plan written → hosts prepared → target installed and started →
//! clients (and the nemesis) until the time limit → heal, recover, final reads → nodes
//! stopped, logs collected, hosts torn down → history checked, results and page written.

mod backoff;
pub mod check;
mod page;
pub mod perf;
pub mod wire;
pub use page::apply_faults_rule;
#[cfg(test)]
mod tests;

use crate::checker::Verdict;
use crate::generator::Generator;
use crate::history::{Journal, Op, OpType, Process};
use crate::hosts::{self, Capability, Hosts, Registry};
use crate::log::{self, RunLog};
use crate::nemesis::{HealMode, Nemesis};
use crate::spec::workload::OpKind;
use crate::spec::{HostsChoice, Plan};
use crate::store;
use crate::target::client::{Client, Completion, Invocation};
use crate::target::{Cluster, INSPECT_TIMEOUT};
use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::instrument::WithSubscriber;

/// Read attempts per key in the final phase before giving up on that key.
const FINAL_READ_ATTEMPTS: u32 = 10;
/// How long a nemesis step may go on after the schedule was told to stop: the longest
/// step waits up to 10 s for an election, then settles.
const NEMESIS_STEP_GRACE: Duration = Duration::from_secs(30);
/// At most this many unread keys are named in results.json and on the run page.
const UNREAD_SHOWN: usize = 50;
/// The whole final-read phase may take this long: a cluster that never recovers must not
/// turn many keys × attempts × timeouts into a run that seems to hang.
const FINAL_READS_BUDGET: Duration = Duration::from_secs(60);

/// How a run ended, for `main` to map to an exit code.
#[derive(Debug)]
pub struct RunOutcome {
    pub run_dir: PathBuf,
    pub verdict: Option<Verdict>,
    pub interrupted: bool,
    /// Why the cluster failed to serve again after the final heal; `None` when it did, or
    /// when liveness was not judged.
    pub liveness_failed: Option<String>,
}

/// Exit code of a run whose history is valid but whose cluster did not recover in time.
pub const LIVENESS_FAILED: u8 = 4;

impl RunOutcome {
    pub fn exit_code(&self) -> u8 {
        match (self.interrupted, self.verdict) {
            (true, _) | (_, None) => 3,
            (false, Some(v)) => verdict_exit_code(v, self.liveness_failed.is_some()),
        }
    }
}

/// The exit code of a checked run, for `faultline run` and `faultline report` alike.
/// Safety first: an invalid (1) or unknown (2) history keeps its code whatever the
/// liveness; only a valid one becomes 4 when the cluster did not serve again.
pub fn verdict_exit_code(verdict: Verdict, liveness_failed: bool) -> u8 {
    match verdict {
        Verdict::Valid if liveness_failed => LIVENESS_FAILED,
        v => v.exit_code(),
    }
}

/// Counters shown on the progress line and written to results.json.
#[derive(Debug, Default)]
struct Stats {
    invoked: AtomicU64,
    ok: AtomicU64,
    fail: AtomicU64,
    info: AtomicU64,
    /// Pauses of workers after consecutive failures (`workload.backoff`).
    backoffs: AtomicU64,
}

impl Stats {
    fn count(&self, kind: OpType) {
        let c = match kind {
            OpType::Invoke => &self.invoked,
            OpType::Ok => &self.ok,
            OpType::Fail => &self.fail,
            OpType::Info => &self.info,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn line(&self) -> String {
        format!(
            "ops {} ok {} fail {} info {}",
            self.invoked.load(Ordering::Relaxed),
            self.ok.load(Ordering::Relaxed),
            self.fail.load(Ordering::Relaxed),
            self.info.load(Ordering::Relaxed)
        )
    }
}

/// Spreads ops evenly at the planned rate over all workers.
#[derive(Debug)]
struct Rate {
    interval: Option<Duration>,
    next: Mutex<Instant>,
}

impl Rate {
    fn new(rate: Option<f64>) -> Rate {
        Rate {
            interval: rate.map(|r| Duration::from_secs_f64(1.0 / r)),
            next: Mutex::new(Instant::now()),
        }
    }

    /// The instant this worker may issue its next op.
    fn slot(&self) -> Option<Instant> {
        let iv = self.interval?;
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let slot = (*next).max(Instant::now());
        *next = slot + iv;
        Some(slot)
    }
}

/// What every worker shares.
struct Ctx {
    plan: Arc<Plan>,
    cluster: Arc<Cluster>,
    journal: Arc<Journal>,
    gen: Mutex<Generator>,
    stats: Stats,
    rate: Rate,
    /// Fresh process ids: a worker whose op ended in info continues under a new id.
    next_process: AtomicU64,
    /// Clients made so far: each may be an adapter process started for it.
    clients: AtomicU64,
    /// The first back-off is logged, later ones only counted.
    backoff_logged: AtomicBool,
}

impl Ctx {
    fn new(plan: Arc<Plan>, cluster: Arc<Cluster>, journal: Arc<Journal>) -> Ctx {
        Ctx {
            gen: Mutex::new(Generator::new(
                &plan.workload,
                plan.seed,
                plan.concurrency,
                plan.workload.keys.threads_per_key(plan.nodes.len()),
            )),
            stats: Stats::default(),
            rate: Rate::new(plan.rate),
            next_process: AtomicU64::new(u64::from(plan.concurrency)),
            clients: AtomicU64::new(0),
            backoff_logged: AtomicBool::new(false),
            plan,
            cluster,
            journal,
        }
    }

    fn client(&self, node: &str) -> Result<Client> {
        self.clients.fetch_add(1, Ordering::Relaxed);
        self.cluster.client(node)
    }

    /// One client event as the journal takes it; the single place client ops are built.
    fn op(
        &self,
        process: u64,
        kind: OpType,
        inv: &Invocation,
        value: Value,
        node: &str,
        error: Option<String>,
    ) -> Op {
        self.stats.count(kind);
        Op {
            index: 0,
            time_ns: 0,
            process: Process::Client(process),
            kind,
            f: inv.f.as_str().to_string(),
            key: Some(inv.key.clone()),
            value,
            node: Some(node.to_string()),
            error,
        }
    }

    fn invoke_op(&self, process: u64, inv: &Invocation, node: &str) -> Result<()> {
        // A read's invocation carries no value; the completion brings it.
        let value = match inv.f {
            crate::spec::workload::OpKind::Read => Value::Null,
            _ => inv.value.clone(),
        };
        self.journal
            .record(self.op(process, OpType::Invoke, inv, value, node, None))?;
        Ok(())
    }

    fn complete_op(
        &self,
        process: u64,
        inv: &Invocation,
        c: &Completion,
        then: Then,
    ) -> Result<()> {
        let op = self.op(
            process,
            c.kind,
            inv,
            c.value.clone(),
            &c.node,
            c.error.clone(),
        );
        match then {
            Then::Write => self.journal.record(op)?,
            Then::InvokeNext => self.journal.stage(op)?,
        };
        Ok(())
    }
}

/// What a worker does right after journaling a completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    /// Waits, stops or switches clients: the line is written now.
    Write,
    /// Invokes its next op at once: the line is written with that invocation's.
    InvokeNext,
}

/// Resolve the hosts choice for this machine and say what it means for faults.
pub fn auto_hosts() -> (HostsChoice, Option<String>) {
    match hosts::detect() {
        Capability::Namespaces => (
            HostsChoice::Local {
                subnet: crate::spec::plan::DEFAULT_SUBNET.to_string(),
            },
            None,
        ),
        Capability::LoopbackOnly { reason } => (
            HostsChoice::Loopback,
            Some(format!(
                "{reason}: nodes run on loopback addresses; partitions and packet loss are unavailable (pauses, kills and clock faults still work)"
            )),
        ),
    }
}

/// Execute a resolved plan end to end.
pub async fn execute(plan: Plan, quiet: bool) -> Result<RunOutcome> {
    let plan = Arc::new(plan);
    let run_dir = store::create_run_dir(&plan.store, &plan.name)?;
    store::write_atomic(&run_dir.join("plan.yaml"), plan.to_yaml()?.as_bytes())?;
    let log = RunLog::create(&run_dir.join("faultline.log"), quiet)
        .with_context(|| format!("cannot create {}/faultline.log", run_dir.display()))?;
    // Everything the run logs, in this future and the tasks it spawns, goes to its log.
    execute_logged(plan, run_dir)
        .with_subscriber(log.dispatch())
        .await
}

/// [`execute`] once the run directory and its log exist.
async fn execute_logged(plan: Arc<Plan>, run_dir: PathBuf) -> Result<RunOutcome> {
    tracing::info!("run directory {}", run_dir.display());
    for line in hosts::cleanup::sweep_stale() {
        tracing::info!("{line}");
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let signals = tokio::spawn(watch_signals(stop_tx).with_current_subscriber());

    let result = run_phases(plan.clone(), &run_dir, stop_rx.clone()).await;
    signals.abort();
    let interrupted = *stop_rx.borrow();

    let outcome = match result {
        Ok(checked) => RunOutcome {
            run_dir: run_dir.clone(),
            verdict: checked.as_ref().map(|c| c.0),
            interrupted,
            liveness_failed: checked
                .and_then(|c| c.1)
                .filter(|l| !l.ok)
                .map(|l| l.reason.unwrap_or_default()),
        },
        Err(e) => {
            tracing::info!("run failed: {e:#}");
            let results = serde_json::json!({
                "verdict": Value::Null,
                "error": format!("{e:#}"),
                "interrupted": interrupted,
            });
            let _ = store::write_atomic(
                &run_dir.join("results.json"),
                serde_json::to_vec_pretty(&results)?.as_slice(),
            );
            // Its page says why it failed, so `latest` never points at a run without one.
            if let Err(pe) = crate::report::render_run(&run_dir) {
                tracing::info!("report: cannot write the page of the failed run: {pe:#}");
            }
            let _ = crate::report::index::write(&plan.store);
            let _ = store::update_latest(&plan.store, &run_dir);
            return Err(e.context(format!("run directory {}", run_dir.display())));
        }
    };
    store::update_latest(&plan.store, &run_dir)?;
    Ok(outcome)
}

/// SIGINT/SIGTERM → orderly stop; the run then heals, tears down and still checks what
/// it recorded.
async fn watch_signals(stop: watch::Sender<bool>) {
    match stop_signal().await {
        StopSignal::Interrupt => tracing::info!("interrupted (SIGINT): stopping and cleaning up"),
        StopSignal::Terminate => tracing::info!("terminated (SIGTERM): stopping and cleaning up"),
    }
    let _ = stop.send(true);
}

/// The signals that ask a run (or a campaign) to stop in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopSignal {
    Interrupt,
    Terminate,
}

/// The next SIGINT or SIGTERM to this process. Never resolves if the handlers cannot be
/// installed (the default action, ending the process, then still applies).
pub(crate) async fn stop_signal() -> StopSignal {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => StopSignal::Interrupt,
        _ = term.recv() => StopSignal::Terminate,
    }
}

/// Resolves once `rx` says stop (never, if its sender is gone without saying so).
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            // Sender gone: no signal can arrive any more.
            std::future::pending::<()>().await;
        }
    }
}

/// Run `fut` unless the run is interrupted first.
async fn unless_stopped<T>(
    rx: &mut watch::Receiver<bool>,
    what: &str,
    fut: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    tokio::select! {
        r = fut => r,
        _ = stopped(rx) => bail!("interrupted while {what}"),
    }
}

async fn run_phases(
    plan: Arc<Plan>,
    run_dir: &Path,
    mut stop: watch::Receiver<bool>,
) -> Result<Option<(Verdict, Option<crate::checker::liveness::Liveness>)>> {
    let run_id = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
    tracing::info!("run id {run_id}");
    tracing::info!("plan: target {} ({} nodes), workload {}, nemesis {}, concurrency {}, time limit {}, seed {}",
        plan.target.spec.name,
        plan.nodes.len(),
        plan.workload.name,
        plan.nemesis.name,
        plan.concurrency,
        humantime::format_duration(plan.time_limit),
        plan.seed);

    unless_stopped(&mut stop, "installing the target", install(&plan)).await?;

    let reg = Registry::new(&run_id)?;
    let hosts = Arc::new(create_hosts(&plan, &reg, run_dir, &mut stop).await?);
    let clocks = if !plan.nemesis.kinds().iter().any(|k| k.is_clock()) {
        None
    } else if hosts.remote().is_some() {
        Some(Arc::new(crate::hosts::clock::Clocks::remote(
            hosts.clone(),
            reg.clone(),
        )))
    } else {
        let dir = crate::target::data_root(&run_id).join("clocks");
        Some(Arc::new(crate::hosts::clock::Clocks::new(&dir)?))
    };
    let cluster = Arc::new(Cluster::new(
        plan.clone(),
        hosts.clone(),
        reg.clone(),
        run_dir,
        clocks.clone(),
    )?);

    let body = run_cluster(plan.clone(), cluster.clone(), clocks, run_dir, stop.clone()).await;

    // Teardown on every path: stop nodes, collect logs, remove hosts.
    if plan.leave_running && body.is_ok() {
        reg.keep();
        tracing::info!("leaving the cluster running (--leave-running); remove it with `faultline cleanup {run_id}`");
    } else {
        tear_down(&cluster, &reg).await;
    }
    let summary = body?;

    let check = page::check_and_report(&plan, run_dir, &summary)?;
    Ok(Some(check))
}

/// The hosts the plan asks for, registered in `reg` before anything is created.
async fn create_hosts(
    plan: &Plan,
    reg: &Registry,
    run_dir: &Path,
    stop: &mut watch::Receiver<bool>,
) -> Result<Hosts> {
    let hosts = match &plan.hosts {
        HostsChoice::Local { subnet } => {
            let subnet = crate::spec::plan::parse_subnet(subnet)?;
            Hosts::Local(crate::hosts::local::LocalHosts::create(
                reg,
                subnet,
                &plan.nodes,
            )?)
        }
        HostsChoice::Loopback => Hosts::Loopback(crate::hosts::loopback::LoopbackHosts::create(
            &reg.run_id(),
            &plan.nodes,
        )?),
        HostsChoice::Ssh { nodes, .. } => {
            let kinds = plan.nemesis.kinds();
            let needs = crate::hosts::ssh::Needs {
                nft: kinds.iter().any(|k| k.is_network()),
                clock: kinds.iter().any(|k| k.is_clock()),
            };
            let ssh = unless_stopped(
                stop,
                "connecting to the SSH hosts",
                crate::hosts::ssh::SshHosts::create(reg, nodes, &run_dir.join("nodes"), needs),
            )
            .await?;
            Hosts::Ssh(ssh)
        }
    };
    tracing::info!("hosts: {}", hosts.describe());
    for n in hosts.nodes() {
        tracing::info!("  {} at {}", n.node, n.ip);
    }
    Ok(hosts)
}

/// Stop every node, collect its logs and remove the hosts; problems go to the run log.
async fn tear_down(cluster: &Cluster, reg: &Registry) {
    for p in cluster.stop_all().await {
        tracing::info!("stop: {p}");
    }
    for p in cluster.collect_logs().await {
        tracing::info!("logs: {p}");
    }
    for p in cluster.unmount_data_dirs() {
        tracing::info!("unmount: {p}");
    }
    let problems = reg.teardown();
    for p in &problems {
        tracing::info!("cleanup: {p}");
    }
    if problems.is_empty() {
        tracing::info!("{}", hosts::cleanup::teardown_summary(&reg.snapshot()));
    }
}

/// Install the plan's target, start its cluster on the plan's hosts, wait until it is
/// ready, hand it to `body`, and tear everything down on every path: an install or start
/// failure, `body`'s error, an interrupt (`stop`), or success. No clients, nemesis or
/// history: for callers that only need a live cluster for a while (`faultline
/// probe-target`). Node logs land in `run_dir/nodes/`.
pub async fn with_cluster<T, F, Fut>(
    plan: Arc<Plan>,
    run_dir: &Path,
    mut stop: watch::Receiver<bool>,
    body: F,
) -> Result<T>
where
    F: FnOnce(Arc<Cluster>) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let run_id = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
    tracing::info!("run id {run_id}");
    unless_stopped(&mut stop, "installing the target", install(&plan)).await?;
    let reg = Registry::new(&run_id)?;
    let hosts = Arc::new(create_hosts(&plan, &reg, run_dir, &mut stop).await?);
    let cluster = Arc::new(Cluster::new(
        plan.clone(),
        hosts,
        reg.clone(),
        run_dir,
        None,
    )?);
    let result = async {
        unless_stopped(&mut stop, "starting the cluster", cluster.start_all()).await?;
        unless_stopped(&mut stop, "using the cluster", body(cluster.clone())).await
    }
    .await;
    tear_down(&cluster, &reg).await;
    result
}

/// Facts about the run that results.json and the page show.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// Faults the schedule started and which of them landed.
    pub faults: crate::nemesis::FaultTally,
    pub ops: u64,
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
    pub elapsed_s: f64,
    pub interrupted: bool,
    /// Pauses of workers after consecutive failures.
    pub backoffs: u64,
    /// From the clients' start to the end of the main phase (before the final reads).
    pub main_phase_s: f64,
    /// The median time to open a TCP connection to a node's client port from the
    /// controller before the clients started: one round trip over the bridge (or the
    /// network to SSH hosts); `None` when no node accepted one.
    pub rtt_ms: Option<f64>,
    /// Written as results.json's own `final_reads`, not under `run`.
    #[serde(skip)]
    pub final_reads: Option<FinalReads>,
    /// Why links were not counted (results.json `wire` is then null, with this as
    /// `wire_reason`); `None` when `wire.jsonl` was written.
    #[serde(skip)]
    pub wire_unavailable: Option<String>,
}

/// What the final phase read back: results.json `final_reads`, shown on the run page.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FinalReads {
    /// Keys the run used, each to be read once more.
    pub keys: usize,
    /// Keys read back (`ok`).
    pub read: usize,
    /// The first [`UNREAD_SHOWN`] keys not read back, in the order the run opened them.
    pub unread: Vec<String>,
}

impl FinalReads {
    /// The sentence a run with unread keys says; none when every key was read.
    pub fn shortfall(&self) -> Option<String> {
        (self.read < self.keys).then(|| {
            format!(
                "{} of {} key(s) not read back in the final phase",
                self.keys - self.read,
                self.keys
            )
        })
    }
}

async fn run_cluster(
    plan: Arc<Plan>,
    cluster: Arc<Cluster>,
    clocks: Option<Arc<crate::hosts::clock::Clocks>>,
    run_dir: &Path,
    mut stop: watch::Receiver<bool>,
) -> Result<RunSummary> {
    let t0 = Instant::now();
    unless_stopped(&mut stop, "starting the cluster", cluster.start_all()).await?;
    refuse_blind_faults(&plan, &cluster).await?;
    tracing::info!("cluster ready after {:.1}s", t0.elapsed().as_secs_f64());
    let rtt_ms = round_trip_ms(&cluster).await;
    if let Some(ms) = rtt_ms {
        tracing::info!("round trip to the nodes: {ms:.3} ms (median TCP connect)");
    }
    let mut wire_unavailable = wire::unavailable(cluster.hosts());
    let wire = match &wire_unavailable {
        Some(_) => None,
        None => wire::Wire::install(cluster.clone())
            .await
            .map_err(|e| wire_unavailable = Some(format!("{e:#}")))
            .ok(),
    };

    let clients = unless_stopped(
        &mut stop,
        "opening the clients",
        open_clients(&plan, &cluster),
    )
    .await?;

    // time_ns in the history and the nemesis schedule share one origin: the moment the
    // clients start (not the install step or cluster start-up before it).
    let start = Instant::now();
    let journal = Arc::new(Journal::create(
        &run_dir.join("history.jsonl"),
        start.into_std(),
    )?);
    let sampler = wire.and_then(|w| {
        w.start_sampling(&run_dir.join("wire.jsonl"), start)
            .map_err(|e| wire_unavailable = Some(format!("{e:#}")))
            .ok()
    });
    if let Some(why) = &wire_unavailable {
        tracing::info!("wire: links not counted: {why}");
    }
    let ctx = Arc::new(Ctx::new(plan.clone(), cluster.clone(), journal.clone()));
    ctx.clients
        .fetch_add(clients.len() as u64, Ordering::Relaxed);
    {
        let gen = ctx.gen.lock().unwrap_or_else(|p| p.into_inner());
        if plan.workload.set.is_some() {
            tracing::info!(
                "set: workers add and read elements in groups of {} (a key per element)",
                gen.threads_per_key()
            );
        } else {
            tracing::info!(
                "keys: {} in flight, at most {} worker(s) on one key (workload keys.threads_per_key)",
                gen.keys_in_flight(),
                gen.threads_per_key()
            );
        }
    }

    let nemesis = Arc::new(Nemesis::new(cluster.clone(), journal.clone(), clocks));
    let deadline = start + plan.time_limit;
    // Stops the schedule between steps: at the deadline, on an interrupt or an error.
    let (cancel_schedule, schedule_cancelled) = watch::channel(false);
    let mut nemesis_task = {
        let nemesis = nemesis.clone();
        let steps = plan.nemesis_schedule.clone();
        tokio::spawn(
            async move {
                nemesis
                    .run(&steps, start, deadline, schedule_cancelled)
                    .await
            }
            .with_current_subscriber(),
        )
    };
    let bar = progress_bar(&plan);
    log::set_bar(bar.clone());
    let ticker = {
        let ctx = ctx.clone();
        let nemesis = nemesis.clone();
        let bar = bar.clone();
        let limit = plan.time_limit;
        tokio::spawn(
            async move {
                let start = Instant::now();
                let mut last_log = Instant::now();
                loop {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    let el = start.elapsed().min(limit);
                    let faults = nemesis.describe().await;
                    let msg = format!(
                        "{:>5.1}s/{}s  {}  [{faults}]",
                        el.as_secs_f64(),
                        limit.as_secs(),
                        ctx.stats.line()
                    );
                    match &bar {
                        Some(b) => {
                            b.set_position(el.as_millis() as u64);
                            b.set_message(format!("{}  [{faults}]", ctx.stats.line()));
                        }
                        None if last_log.elapsed() >= Duration::from_secs(5) => {
                            tracing::info!("{msg}");
                            last_log = Instant::now();
                        }
                        None => {}
                    }
                }
            }
            .with_current_subscriber(),
        )
    };

    let mut workers = tokio::task::JoinSet::new();
    for (slot, client) in (0..plan.concurrency).zip(clients) {
        let ctx = ctx.clone();
        let stop = stop.clone();
        workers.spawn(
            async move { worker(slot, ctx, deadline, stop, client).await }
                .with_current_subscriber(),
        );
    }
    let mut first_error = None;
    while let Some(r) = workers.join_next().await {
        let r = r
            .map_err(|e| anyhow!("a worker panicked: {e}"))
            .and_then(|r| r);
        if let Err(e) = r {
            first_error.get_or_insert(e);
        }
    }
    ticker.abort();
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    log::set_bar(None);
    // The schedule stops between steps; a step under way finishes first, unless it
    // overruns (a hung host): then it is aborted, and what it began is still in the
    // in-force set, which the heal below undoes.
    let _ = cancel_schedule.send(true);
    match tokio::time::timeout(NEMESIS_STEP_GRACE, &mut nemesis_task).await {
        Ok(Ok(Err(e))) => {
            first_error.get_or_insert(e.context("nemesis"));
        }
        Ok(Err(e)) if e.is_panic() => {
            first_error.get_or_insert(anyhow!("the nemesis panicked: {e}"));
        }
        Ok(_) => {}
        Err(_) => {
            nemesis_task.abort();
            tracing::info!(
                "nemesis: a step still ran {} s after the schedule was stopped; aborted it",
                NEMESIS_STEP_GRACE.as_secs()
            );
        }
    }
    let interrupted = *stop.borrow();
    let main_phase_s = start.elapsed().as_secs_f64();
    tracing::info!("main phase over: {}", ctx.stats.line());
    if let Some(sampler) = sampler {
        if let Err(e) = sampler.finish().await {
            tracing::info!("wire: the final sample failed: {e:#}");
            wire_unavailable = Some(format!("the final sample failed: {e:#}"));
        }
    }
    // Healed on every path. After an error or an interrupt, killed nodes stay down (the
    // teardown stops every node), but nothing else in force may outlive the run: a paused
    // group, a strobing clock, a delay thread, rules on an SSH host.
    let mode = if interrupted || first_error.is_some() {
        HealMode::Teardown
    } else {
        HealMode::Full
    };
    let healed = nemesis.heal_all(mode).await;
    if let Some(e) = first_error {
        return Err(e);
    }
    healed.context("healing faults")?;

    let final_reads = if !interrupted && plan.workload.final_reads {
        Some(final_phase(&ctx, &mut stop).await?)
    } else {
        None
    };
    // The nodes are still up: read their committed logs for the agreement oracle before
    // the teardown stops them (an interrupted run has no verdict to add it to).
    if !*stop.borrow() && plan.target.spec.inspect.is_some() {
        cluster
            .save_logs(&cluster.logs_dir(), &cluster.nodes(), INSPECT_TIMEOUT)
            .await?;
    }
    journal.sync();
    Ok(RunSummary {
        faults: nemesis.tally(),
        ops: ctx.stats.invoked.load(Ordering::Relaxed),
        ok: ctx.stats.ok.load(Ordering::Relaxed),
        fail: ctx.stats.fail.load(Ordering::Relaxed),
        info: ctx.stats.info.load(Ordering::Relaxed),
        elapsed_s: t0.elapsed().as_secs_f64(),
        interrupted,
        backoffs: ctx.stats.backoffs.load(Ordering::Relaxed),
        main_phase_s,
        rtt_ms,
        final_reads,
        wire_unavailable,
    })
}

/// Connections opened to each node's client port to time a round trip.
const RTT_PROBES: usize = 10;

/// The median time to open a TCP connection to the nodes' client ports: the SYN and its
/// answer, one round trip, answered by the node's kernel whatever the target does.
async fn round_trip_ms(cluster: &Cluster) -> Option<f64> {
    let mut times = Vec::new();
    for node in cluster.hosts().nodes() {
        let Ok(addr) = cluster.client_addr(&node.node) else {
            continue;
        };
        for _ in 0..RTT_PROBES {
            let t = Instant::now();
            let connect = tokio::net::TcpStream::connect(addr);
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(1), connect).await {
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    times.sort_by(f64::total_cmp);
    times.get(times.len() / 2).copied()
}

/// A fault that aims at leaders hits nobody when the client cannot say who leads. A target
/// that does not declare it is refused at plan time (`spec::plan`); this is the backstop
/// for an adapter that declares `leaders: true` and then does not answer it: refused
/// before the clients start instead of running a test without its faults.
async fn refuse_blind_faults(plan: &Plan, cluster: &Cluster) -> Result<()> {
    let Some(step) = plan
        .nemesis_schedule
        .iter()
        .find(|s| s.action.aims_at_leaders())
    else {
        return Ok(());
    };
    let first = plan.nodes.first().cloned().unwrap_or_default();
    let mut c = cluster.client(&first)?;
    let r = c.can_name_leaders(Duration::from_secs(2)).await;
    c.close().await;
    r.map_err(|why| {
        anyhow!(
            "{}: nemesis {} aims `{}` at the leaders, but target {} cannot name its leaders ({why}), \
             although {} declares `leaders: true`; answer {{\"f\":\"leaders\"}} in the adapter \
             (README: Writing a stdio adapter) or choose a nemesis with fixed nodes",
            plan.nemesis_file.display(),
            plan.nemesis.name,
            step.action.f(),
            plan.target.spec.name,
            plan.target.file.display()
        )
    })
}

fn progress_bar(plan: &Plan) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(plan.time_limit.as_millis() as u64);
    let style =
        indicatif::ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {percent:>3}%  {msg}")
            .ok()?
            .progress_chars("=> ");
    bar.set_style(style);
    Some(bar)
}

/// The node worker (or final reader) `slot` talks to: they are spread over the nodes
/// round-robin.
fn home(plan: &Plan, slot: usize) -> &str {
    &plan.nodes[slot % plan.nodes.len()]
}

/// Every worker's client, opened before the clock starts, as Jepsen opens its clients
/// before the first op: worker `slot` talks to node `slot mod nodes`. A stdio adapter is
/// started and asked one read of a key no workload uses, all at once, within the target's
/// readiness timeout. Started lazily by the first op instead, fifty adapters in Python
/// (kazoo) on a 2-core machine took longer than the op timeout to import and connect: their
/// first ops were info, each replaced its adapter, and the fresh ones timed out again — a
/// ZooKeeper run with fifty clients acknowledged 21 writes in 15 s, and 18,306 with the same
/// settings when they happened to start in time. An adapter that does not answer here
/// is left to start again on its first op; the run goes on.
async fn open_clients(plan: &Plan, cluster: &Arc<Cluster>) -> Result<Vec<Client>> {
    let mut clients = Vec::with_capacity(plan.concurrency as usize);
    for slot in 0..plan.concurrency {
        clients.push(cluster.client(home(plan, slot as usize))?);
    }
    let limit = plan.target.spec.ready.timeout;
    let t0 = Instant::now();
    let answers = futures::future::join_all(clients.iter_mut().map(|c| c.open(limit))).await;
    let failed: Vec<String> = answers.into_iter().filter_map(Result::err).collect();
    if let Some(first) = failed.first() {
        tracing::info!(
            "clients: {} of {} did not open before the clock started ({first}); each starts again on its first op",
            failed.len(),
            clients.len()
        );
    } else if clients.iter().any(Client::is_stdio) {
        tracing::info!(
            "clients: {} adapter(s) started in {:.1}s",
            clients.len(),
            t0.elapsed().as_secs_f64()
        );
    }
    Ok(clients)
}

async fn worker(
    slot: u32,
    ctx: Arc<Ctx>,
    deadline: Instant,
    mut stop: watch::Receiver<bool>,
    mut client: Client,
) -> Result<()> {
    let node = home(&ctx.plan, slot as usize).to_string();
    let r = work(slot, &ctx, &node, deadline, &mut stop, &mut client).await;
    // A stdio adapter is reaped here rather than left to die with the controller.
    client.close().await;
    r
}

/// A worker's loop of ops until the deadline or an interrupt.
async fn work(
    slot: u32,
    ctx: &Ctx,
    node: &str,
    deadline: Instant,
    stop: &mut watch::Receiver<bool>,
    client: &mut Client,
) -> Result<()> {
    let mut process = u64::from(slot);
    let mut backoff = backoff::Backoff::new(&ctx.plan.workload.backoff, ctx.plan.seed, slot);
    // Every path out of this loop other than the next invocation writes the completion
    // staged at the bottom, so no line waits on anything slower than the generator.
    loop {
        if *stop.borrow() || Instant::now() >= deadline {
            return ctx.journal.flush();
        }
        if let Some(slot) = ctx.rate.slot() {
            ctx.journal.flush()?;
            if slot >= deadline {
                return Ok(());
            }
            tokio::select! {
                _ = tokio::time::sleep_until(slot) => {}
                _ = stopped(stop) => return Ok(()),
            }
        }
        // By slot, not process: a worker that went on under a new process id after an
        // `info` keeps its group, so its group's bound on one key still holds.
        let inv = ctx
            .gen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next_op(slot);
        let completion = if ctx.plan.workload.append.is_some() && inv.f == OpKind::Write {
            append(ctx, process, &inv, node, client, stop).await?
        } else {
            perform(ctx, process, &inv, node, client, stop).await?
        };
        if completion.kind == OpType::Info {
            ctx.journal.flush()?;
            // Jepsen's rule: the process that may still have an op in flight is retired.
            process = ctx.next_process.fetch_add(1, Ordering::Relaxed);
            let old = std::mem::replace(client, ctx.client(node)?);
            old.close().await;
        }
        if let Some(pause) = backoff.after(&completion) {
            ctx.stats.backoffs.fetch_add(1, Ordering::Relaxed);
            if !ctx.backoff_logged.swap(true, Ordering::Relaxed) {
                tracing::info!("worker {slot}: {} failures in a row (last: {}); pausing between its ops, up to {} (workload backoff)",
                    ctx.plan.workload.backoff.after,
                    completion.error.as_deref().unwrap_or("no reason given"),
                    humantime::format_duration(ctx.plan.workload.backoff.max));
            }
            ctx.journal.flush()?;
            tokio::select! {
                _ = tokio::time::sleep_until((Instant::now() + pause).min(deadline)) => {}
                _ = stopped(stop) => return Ok(()),
            }
        }
    }
}

/// Journal `inv`'s invocation, perform it through `client` (an interrupt ends it as
/// unknown) and journal its completion.
async fn perform(
    ctx: &Ctx,
    process: u64,
    inv: &Invocation,
    node: &str,
    client: &mut Client,
    stop: &mut watch::Receiver<bool>,
) -> Result<Completion> {
    ctx.invoke_op(process, inv, node)?;
    let completion = tokio::select! {
        c = client.invoke(inv, ctx.plan.workload.op_timeout) => c,
        _ = stopped(stop) => Completion {
            kind: crate::target::client::indefinite(inv.f),
            value: inv.value.clone(),
            error: Some("interrupted".into()),
            node: node.to_string(),
        },
    };
    ctx.complete_op(process, inv, &completion, Then::InvokeNext)?;
    Ok(completion)
}

/// Times an append reads its stream and tries its cas before it gives up: a failed cas
/// mostly means another worker of the group appended in between.
const APPEND_ATTEMPTS: usize = 8;

/// An append workload's `write` of element `inv.value` to stream `inv.key`: a read of the
/// list, then a cas from it to it plus the element, again after a cas that failed. Both are
/// journaled as they happened — the history stays one of a cas register over lists,
/// which the append checker (and the cas-register model) judge; the completion returned
/// is the one that ended the attempt (a read that failed, a cas's outcome).
async fn append(
    ctx: &Ctx,
    process: u64,
    inv: &Invocation,
    node: &str,
    client: &mut Client,
    stop: &mut watch::Receiver<bool>,
) -> Result<Completion> {
    let read = Invocation {
        f: OpKind::Read,
        key: inv.key.clone(),
        value: Value::Null,
    };
    let mut last = None;
    for _ in 0..APPEND_ATTEMPTS {
        let r = perform(ctx, process, &read, node, client, stop).await?;
        if r.kind != OpType::Ok || *stop.borrow() {
            return Ok(r);
        }
        // A value that is not a list is the checker's to report, not ours to overwrite.
        let mut to = match &r.value {
            Value::Null => Vec::new(),
            Value::Array(a) => a.clone(),
            _ => return Ok(r),
        };
        to.push(inv.value.clone());
        let cas = Invocation {
            f: OpKind::Cas,
            key: inv.key.clone(),
            value: serde_json::json!([r.value, to]),
        };
        let c = perform(ctx, process, &cas, node, client, stop).await?;
        // A cas that certainly did not happen may be tried again on a fresh read: above
        // all `compare-failed` (another worker appended in between), but also an adapter's
        // own word for it (NATS's `revision-changed`).
        if c.kind != OpType::Fail {
            return Ok(c);
        }
        last = Some(c);
    }
    Ok(last.unwrap_or_else(|| Completion {
        kind: OpType::Fail,
        value: inv.value.clone(),
        error: Some("no attempt made".into()),
        node: node.to_string(),
    }))
}

/// After the main phase: wait for the cluster to serve again, then read every key.
///
/// Keys are read by up to `concurrency` readers at once, each with one client (for a stdio
/// target, one adapter process) kept for all its keys and replaced only after an `info`:
/// one fresh client per key, one key at a time, cost ~150 ms per key through an adapter
/// and left most keys of a `lost-writes` run unread when the budget ran out — the very
/// reads that show lost writes.
async fn final_phase(ctx: &Arc<Ctx>, stop: &mut watch::Receiver<bool>) -> Result<FinalReads> {
    let ready = ctx.plan.target.spec.ready.timeout;
    match unless_stopped(stop, "waiting for recovery", ctx.cluster.wait_ready(ready)).await {
        Ok(()) => {}
        Err(e) => tracing::info!("final phase: the cluster did not recover: {e:#}"),
    }
    let keys: Arc<Vec<String>> = Arc::new(
        ctx.gen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys_used()
            .to_vec(),
    );
    let readers = (ctx.plan.concurrency as usize).clamp(1, keys.len().max(1));
    tracing::info!(
        "final reads of {} key(s) by {readers} reader(s)",
        keys.len()
    );
    let budget_end = Instant::now() + FINAL_READS_BUDGET;
    let queue = Arc::new(FinalQueue::new(keys.len()));
    let mut tasks = tokio::task::JoinSet::new();
    for r in 0..readers {
        let ctx = ctx.clone();
        let keys = keys.clone();
        let queue = queue.clone();
        let stop = stop.clone();
        tasks.spawn(
            async move { final_reader(r, &ctx, &keys, &queue, budget_end, stop).await }
                .with_current_subscriber(),
        );
    }
    let mut read = vec![false; keys.len()];
    let mut first_error = None;
    while let Some(r) = tasks.join_next().await {
        match r
            .map_err(|e| anyhow!("a final reader panicked: {e}"))
            .and_then(|r| r)
        {
            Ok(done) => done.into_iter().for_each(|i| read[i] = true),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let unread: Vec<&String> = keys
        .iter()
        .zip(&read)
        .filter(|(_, r)| !**r)
        .map(|(k, _)| k)
        .collect();
    let out = FinalReads {
        keys: keys.len(),
        read: keys.len() - unread.len(),
        unread: unread
            .iter()
            .take(UNREAD_SHOWN)
            .map(|k| k.to_string())
            .collect(),
    };
    if let Some(short) = out.shortfall() {
        let budget_spent = Instant::now() >= budget_end;
        let shown: Vec<&str> = unread.iter().take(20).map(|k| k.as_str()).collect();
        tracing::info!(
            "final phase: {short}{}: {}{}",
            if budget_spent {
                format!(" (the {}s budget was spent)", FINAL_READS_BUDGET.as_secs())
            } else {
                String::new()
            },
            shown.join(", "),
            if unread.len() > shown.len() {
                ", …"
            } else {
                ""
            }
        );
    }
    Ok(out)
}

/// Which key a final reader takes next: every key once, then a key given up after
/// [`FINAL_READ_ATTEMPTS`] again, but only once some other key has been read since —
/// the cluster serves again. A NATS stream whose leader was removed took 7.6 s to move
/// (longer than a key's attempts) while the first keys' readers gave up on them, which
/// left a run unknown with a cluster that had recovered; a cluster that never serves
/// still ends the phase once every key has had its attempts.
struct FinalQueue(Mutex<FinalQueueState>);

struct FinalQueueState {
    next: usize,
    len: usize,
    /// Keys read so far in the phase: a given-up key is stamped with it.
    reads: u64,
    given_up: std::collections::VecDeque<(usize, u64)>,
}

impl FinalQueue {
    fn new(len: usize) -> Self {
        FinalQueue(Mutex::new(FinalQueueState {
            next: 0,
            len,
            reads: 0,
            given_up: Default::default(),
        }))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FinalQueueState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(&self) -> Option<usize> {
        let mut s = self.state();
        if s.next < s.len {
            s.next += 1;
            return Some(s.next - 1);
        }
        let reads = s.reads;
        let at = s.given_up.iter().position(|&(_, stamp)| stamp < reads)?;
        s.given_up.remove(at).map(|(i, _)| i)
    }

    fn read(&self) {
        self.state().reads += 1;
    }

    fn give_up(&self, i: usize) {
        let mut s = self.state();
        let stamp = s.reads;
        s.given_up.push_back((i, stamp));
    }
}

/// One reader of the final phase: takes the next unread key until none is left, the
/// budget is spent or the run is interrupted; returns the indexes of the keys it read.
async fn final_reader(
    r: usize,
    ctx: &Ctx,
    keys: &[String],
    queue: &FinalQueue,
    budget_end: Instant,
    mut stop: watch::Receiver<bool>,
) -> Result<Vec<usize>> {
    let node = home(&ctx.plan, r);
    let timeout = ctx.plan.workload.op_timeout;
    let mut process = ctx.next_process.fetch_add(1, Ordering::Relaxed);
    let mut client: Option<Client> = None;
    let mut read = Vec::new();
    let over = |stop: &watch::Receiver<bool>| *stop.borrow() || Instant::now() >= budget_end;
    let result = async {
        while !over(&stop) {
            let Some((i, key)) = queue.take().and_then(|i| Some((i, keys.get(i)?))) else {
                break;
            };
            let inv = Invocation {
                f: crate::spec::workload::OpKind::Read,
                key: key.clone(),
                value: Value::Null,
            };
            let mut got = false;
            for attempt in 0..FINAL_READ_ATTEMPTS {
                if over(&stop) {
                    break;
                }
                if attempt > 0 {
                    tokio::select! {
                        _ = tokio::time::sleep_until((Instant::now() + Duration::from_millis(500)).min(budget_end)) => {}
                        _ = stopped(&mut stop) => break,
                    }
                }
                let c = match &mut client {
                    Some(c) => c,
                    None => client.insert(ctx.client(node)?),
                };
                ctx.invoke_op(process, &inv, node)?;
                let done = tokio::select! {
                    done = c.invoke(&inv, timeout) => done,
                    _ = stopped(&mut stop) => Completion {
                        kind: crate::target::client::indefinite(inv.f),
                        value: Value::Null,
                        error: Some("interrupted".into()),
                        node: node.to_string(),
                    },
                };
                ctx.complete_op(process, &inv, &done, Then::Write)?;
                if done.kind == OpType::Ok {
                    queue.read();
                    read.push(i);
                    got = true;
                    break;
                }
                if done.kind == OpType::Info {
                    process = ctx.next_process.fetch_add(1, Ordering::Relaxed);
                    if let Some(old) = client.take() {
                        old.close().await;
                    }
                }
            }
            if !got {
                queue.give_up(i);
            }
        }
        Ok::<(), anyhow::Error>(())
    }
    .await;
    if let Some(c) = client {
        c.close().await;
    }
    result.map(|()| read)
}

/// Run the target's install step (e.g. build raftkv) unless its binary is there already.
/// The process group of a running install command, killed whole when dropped before the
/// command finished.
struct InstallGroup(Option<u32>);

impl Drop for InstallGroup {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pgid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

async fn install(plan: &Plan) -> Result<()> {
    let t = &plan.target;
    let Some(inst) = &t.spec.install else {
        if !t.binary.exists() {
            bail!(
                "{}: binary {} does not exist and the target has no install step",
                t.file.display(),
                t.binary.display()
            );
        }
        return Ok(());
    };
    if t.binary.exists() && !inst.always {
        return Ok(());
    }
    let workdir = match &inst.workdir {
        Some(w) => t.dir.join(w),
        None => t.dir.clone(),
    };
    let (prog, args) = inst
        .command
        .split_first()
        .ok_or_else(|| anyhow!("{}: install.command is empty", t.file.display()))?;
    tracing::info!(
        "installing {}: {} (in {})",
        t.spec.name,
        inst.command.join(" "),
        workdir.display()
    );
    // Its own process group, ended whole if the install is abandoned (an interrupt drops
    // this future): killing `cargo` alone left its `rustc` children compiling on.
    let child = tokio::process::Command::new(prog)
        .args(args)
        .current_dir(&workdir)
        .process_group(0)
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run install command `{}`", inst.command.join(" ")))?;
    let mut group = InstallGroup(child.id());
    let out = child
        .wait_with_output()
        .await
        .with_context(|| format!("install command `{}`", inst.command.join(" ")))?;
    // Finished: the group's ID may be reused from now on.
    group.0 = None;
    if !out.status.success() {
        bail!(
            "install of {} failed ({}): `{}`\n{}",
            t.spec.name,
            out.status,
            inst.command.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if !t.binary.exists() {
        bail!(
            "install of {} succeeded but {} does not exist",
            t.spec.name,
            t.binary.display()
        );
    }
    Ok(())
}
