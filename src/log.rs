//! The run log: where a run's `tracing` events go. Modules log with `tracing::info!`
//! (and friends) and know nothing of this module; the runner and `probe-target` create a
//! [`RunLog`] per run and run their futures under its subscriber.
//!
//! Each run has its own subscriber (a `tracing_subscriber` registry with two `fmt`
//! layers): one writes the run's `faultline.log`, one prints on stderr — above the
//! progress bar while one is shown, so a line never tears it. Lines read
//! `[   12.345s] message`, seconds since the log was created; the file's lines start with
//! the UTC wall-clock time as well, to line them up with node logs.
//!
//! Why a subscriber per run, attached to futures with
//! [`WithSubscriber`](tracing::instrument::WithSubscriber), rather than one global
//! subscriber or `tracing::subscriber::set_default`: on tokio's multi-thread runtime a
//! task is polled by whichever worker is free, and `set_default` is per thread, so events
//! of a spawned task would miss the run's file. A future wrapped with `with_subscriber`
//! installs its dispatcher around every poll, on any thread; tasks spawned inside a run
//! are wrapped with `with_current_subscriber()` to inherit it, and a plain thread takes
//! `dispatcher::get_default` along. Two runs in one process thus log to their own files
//! with no shared state. Events outside any run reach the process's global subscriber
//! ([`init_outside_runs`]): plain lines on stderr.

use indicatif::ProgressBar;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;
use tracing::level_filters::LevelFilter;
use tracing::Dispatch;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

/// One run's log: its subscriber, writing `faultline.log` and (unless quiet) stderr.
/// Dropping every clone of the dispatcher closes the file.
#[derive(Clone)]
pub struct RunLog {
    dispatch: Dispatch,
}

impl std::fmt::Debug for RunLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunLog").finish_non_exhaustive()
    }
}

impl RunLog {
    /// Log into `path` (the run's `faultline.log`) and, unless `quiet`, stderr; times
    /// count from now.
    pub fn create(path: &Path, quiet: bool) -> std::io::Result<RunLog> {
        let file = File::create(path)?;
        let start = Elapsed(Instant::now());
        let to_file = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_level(false)
            .with_target(false)
            .with_timer(WallAndElapsed(start))
            // Unbuffered: a line is in the file as soon as it is logged, also if the run
            // is killed.
            .with_writer(Mutex::new(file));
        let to_terminal = (!quiet).then(|| {
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_level(false)
                .with_target(false)
                .with_timer(start)
                .with_writer(Terminal::default())
        });
        let subscriber = tracing_subscriber::registry()
            .with(ours())
            .with(to_file)
            .with(to_terminal);
        Ok(RunLog {
            dispatch: Dispatch::new(subscriber),
        })
    }

    /// The subscriber to run this run's futures under
    /// (`fut.with_subscriber(log.dispatch())`).
    pub fn dispatch(&self) -> Dispatch {
        self.dispatch.clone()
    }
}

/// Show the current run's stderr lines above `bar` while it is set (`None`: plainly
/// again). Does nothing outside a run or in a quiet one.
pub fn set_bar(bar: Option<ProgressBar>) {
    let mut bar = Some(bar);
    tracing::dispatcher::get_default(|d| {
        if let (Some(t), Some(b)) = (d.downcast_ref::<Terminal>(), bar.take()) {
            *t.bar.lock().unwrap_or_else(|p| p.into_inner()) = b;
        }
    });
}

/// The process's subscriber for events outside any run (`faultline cleanup`, a sweep
/// before a run's log exists): the message alone on stderr. Call once, from `main`.
pub fn init_outside_runs() {
    let subscriber = tracing_subscriber::registry().with(ours()).with(
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .without_time()
            .with_level(false)
            .with_target(false)
            .with_writer(std::io::stderr),
    );
    // Fails only if one is set already (a second call): keep that one.
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// Our own events only: dependencies' events (none today at INFO; axum and hyper log at
/// TRACE and DEBUG when built with `tracing`) stay out of the run log.
fn ours() -> Targets {
    Targets::new().with_target("faultline", LevelFilter::INFO)
}

/// `[   12.345s]`: seconds since the run's log was created.
#[derive(Debug, Clone, Copy)]
struct Elapsed(Instant);

impl FormatTime for Elapsed {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        write!(w, "[{:9.3}s]", self.0.elapsed().as_secs_f64())
    }
}

/// The UTC time, then [`Elapsed`].
#[derive(Debug, Clone, Copy)]
struct WallAndElapsed(Elapsed);

impl FormatTime for WallAndElapsed {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        SystemTime.format_time(w)?;
        w.write_char(' ')?;
        self.0.format_time(w)
    }
}

/// The run's stderr: through the progress bar while one is shown.
#[derive(Default)]
struct Terminal {
    /// Set by [`set_bar`] for the main phase; `println` on the bar prints above it.
    bar: Mutex<Option<ProgressBar>>,
}

impl<'a> MakeWriter<'a> for Terminal {
    type Writer = TerminalLine<'a>;

    fn make_writer(&'a self) -> TerminalLine<'a> {
        TerminalLine {
            terminal: self,
            text: Vec::new(),
        }
    }
}

/// One formatted event, printed whole when dropped (the `fmt` layer writes an event and
/// drops its writer), so a line is never split around the bar.
struct TerminalLine<'a> {
    terminal: &'a Terminal,
    text: Vec<u8>,
}

impl Write for TerminalLine<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for TerminalLine<'_> {
    fn drop(&mut self) {
        if self.text.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.text);
        let text = text.trim_end_matches('\n');
        match &*self.terminal.bar.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::instrument::WithSubscriber;

    /// What one run does: log from its own task and from tasks it spawns, interleaved
    /// with the other run on a multi-thread runtime.
    async fn a_run(name: &'static str, rounds: usize) {
        let mut tasks = tokio::task::JoinSet::new();
        for t in 0..3 {
            tasks.spawn(
                async move {
                    for i in 0..rounds {
                        tracing::info!("{name} task {t} line {i}");
                        tokio::task::yield_now().await;
                    }
                }
                .with_current_subscriber(),
            );
        }
        let thread = {
            let d = tracing::dispatcher::get_default(Dispatch::clone);
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&d, || tracing::info!("{name} thread"))
            })
        };
        tracing::info!("{name} main");
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
        thread.join().unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_runs_in_one_process_log_to_their_own_files() {
        let dir = tempfile::tempdir().unwrap();
        let (pa, pb) = (dir.path().join("a.log"), dir.path().join("b.log"));
        let a = RunLog::create(&pa, true).unwrap();
        let b = RunLog::create(&pb, true).unwrap();
        let rounds = 50;
        let ra = tokio::spawn(a_run("alpha", rounds).with_subscriber(a.dispatch()));
        let rb = tokio::spawn(a_run("beta", rounds).with_subscriber(b.dispatch()));
        ra.await.unwrap();
        rb.await.unwrap();
        tracing::info!("outside any run");
        drop((a, b));
        let ta = std::fs::read_to_string(&pa).unwrap();
        let tb = std::fs::read_to_string(&pb).unwrap();
        let expected = 3 * rounds + 2;
        assert_eq!(ta.lines().count(), expected, "{ta}");
        assert_eq!(tb.lines().count(), expected, "{tb}");
        assert!(ta.lines().all(|l| l.contains(" alpha ")), "{ta}");
        assert!(tb.lines().all(|l| l.contains(" beta ")), "{tb}");
        assert!(ta.contains("] alpha thread") && tb.contains("] beta main"));
    }

    #[test]
    fn file_lines_carry_wall_clock_and_run_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("faultline.log");
        let log = RunLog::create(&path, true).unwrap();
        tracing::dispatcher::with_default(&log.dispatch(), || {
            tracing::info!("run id {}", "abc123");
        });
        drop(log);
        let text = std::fs::read_to_string(&path).unwrap();
        let line = text.lines().next().unwrap();
        // 2026-01-02T03:04:05.123456Z [    0.000s] run id abc123
        let (wall, rest) = line.split_once(' ').unwrap();
        assert!(wall.ends_with('Z') && wall.contains('T'), "{line}");
        assert!(
            rest.starts_with("[    0.0") && rest.ends_with("s] run id abc123"),
            "{line}"
        );
    }

    /// The runner hands its progress bar to the current run's terminal output, and only
    /// to that run's.
    #[test]
    fn the_progress_bar_goes_to_the_current_runs_terminal() {
        let dir = tempfile::tempdir().unwrap();
        let shown = RunLog::create(&dir.path().join("a.log"), false).unwrap();
        let other = RunLog::create(&dir.path().join("b.log"), false).unwrap();
        let bar_of = |log: &RunLog| {
            let d = log.dispatch();
            let t = d.downcast_ref::<Terminal>().expect("a terminal layer");
            let set = t.bar.lock().unwrap().is_some();
            set
        };
        tracing::dispatcher::with_default(&shown.dispatch(), || {
            set_bar(Some(ProgressBar::hidden()));
            tracing::info!("printed above the bar");
        });
        assert!(bar_of(&shown) && !bar_of(&other));
        tracing::dispatcher::with_default(&shown.dispatch(), || set_bar(None));
        assert!(!bar_of(&shown));
        // A quiet run has no terminal output to show a bar on.
        let quiet = RunLog::create(&dir.path().join("c.log"), true).unwrap();
        assert!(quiet.dispatch().downcast_ref::<Terminal>().is_none());
    }
}
