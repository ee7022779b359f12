//! The `raftkv` binary: parse flags, run the node until SIGTERM/SIGINT.
//!
//! Exit codes: 0 after a signal-initiated shutdown, 1 when the node fails (data dir,
//! listen address), 2 for invalid flags.

use clap::Parser;
use raftkv::cli::Args;
use raftkv::{log_line, server};
use std::process::ExitCode;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

fn main() -> ExitCode {
    let settings = match Args::parse().validate() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("raftkv: error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let id = settings.id.clone();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("raftkv {id}: error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(async {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let shutdown = {
            let id = id.clone();
            async move {
                let name = tokio::select! {
                    _ = term.recv() => "SIGTERM",
                    _ = int.recv() => "SIGINT",
                };
                log_line(&id, &format!("received {name}"));
            }
        };
        server::run(settings, shutdown).await
    });
    rt.shutdown_timeout(Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("raftkv {id}: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
