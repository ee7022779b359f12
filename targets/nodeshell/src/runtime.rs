//! The `main` of a node binary: runtime, signals, exit codes, the same for every target.
//!
//! Exit codes: 0 after a signal-initiated shutdown, 1 when the node fails (data dir,
//! listen address), 2 for invalid flags.

use crate::{log_line, set_program};
use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

/// Completes when the node should stop (SIGTERM or SIGINT), after logging which.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs a node: `settings` is the validated command line (an error exits 2 with its
/// message) with the node's id; `serve` runs the node until the shutdown future completes.
pub fn run<S, Fut>(
    program: &'static str,
    settings: anyhow::Result<(String, S)>,
    serve: impl FnOnce(S, Shutdown) -> Fut,
) -> ExitCode
where
    Fut: Future<Output = anyhow::Result<()>>,
{
    set_program(program);
    let (id, settings) = match settings {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{program}: error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{program} {id}: error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(async {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let shutdown: Shutdown = {
            let id = id.clone();
            Box::pin(async move {
                let name = tokio::select! {
                    _ = term.recv() => "SIGTERM",
                    _ = int.recv() => "SIGINT",
                };
                log_line(&id, &format!("received {name}"));
            })
        };
        serve(settings, shutdown).await
    });
    rt.shutdown_timeout(Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{program} {id}: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
