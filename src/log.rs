//! The run log: one line per event of the controller, written to `faultline.log` in the
//! run directory and shown on stderr (above the progress line when there is one).

use indicatif::ProgressBar;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

struct State {
    file: Option<File>,
    bar: Option<ProgressBar>,
    start: Instant,
    quiet: bool,
}

static LOG: Mutex<Option<State>> = Mutex::new(None);

fn with<R>(f: impl FnOnce(&mut Option<State>) -> R) -> R {
    let mut g = LOG.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut g)
}

/// Start logging into `path` (the run's `faultline.log`); times count from now.
pub fn open(path: &Path, quiet: bool) -> std::io::Result<()> {
    let file = File::create(path)?;
    with(|s| {
        *s = Some(State {
            file: Some(file),
            bar: None,
            start: Instant::now(),
            quiet,
        })
    });
    Ok(())
}

/// Route stderr output through this progress bar while it is shown.
pub fn set_bar(bar: Option<ProgressBar>) {
    with(|s| {
        if let Some(s) = s {
            s.bar = bar;
        }
    });
}

/// Stop logging to the file.
pub fn close() {
    with(|s| *s = None);
}

/// Log one line.
pub fn line(msg: &str) {
    with(|s| match s {
        Some(st) => {
            let t = st.start.elapsed().as_secs_f64();
            let text = format!("[{t:9.3}s] {msg}");
            if let Some(f) = &mut st.file {
                let _ = writeln!(f, "{text}");
            }
            if !st.quiet {
                match &st.bar {
                    Some(bar) => bar.println(&text),
                    None => eprintln!("{text}"),
                }
            }
        }
        None => eprintln!("{msg}"),
    });
}
