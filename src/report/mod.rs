//! Reports: what a person reads after a run — "what happened, when, and why is it wrong".
//!
//! Owns everything rendered from a run directory's files: the plots ([`plots`], with the
//! bundled [`font`]), the run page `index.html` ([`page`]) with its counterexample view
//! ([`counterexample`]), `timeline.html` ([`timeline`]), the store's `index.html` listing
//! every run ([`index`]), and `faultline serve` ([`serve`]) to browse and download runs.
//! The run page's Wire section (what the run cost on the wire) is [`wire`], its Set section
//! (what a set workload lost) [`set`].
//! The `report` and `serve` subcommands are [`crate::commands::report`]. It does not check histories
//! (that is [`crate::checker`], reached through `runner::check` on `--recheck`)
//! and does not write `results.json` during a run (the runner does, with [`results_json`]).
//!
//! Pages are self-contained (no CDN, no external file needed) so they work from `file://`
//! and from `serve`. They are maud templates sharing one [`layout`], so every string from a
//! target is escaped where a page splices it in; JSON for scripts has its own [`escape`].

pub mod agreement;
pub mod append;
pub mod compare;
pub mod counterexample;
pub mod escape;
pub mod font;
pub mod index;
pub mod layout;
pub mod page;
pub mod plots;
pub mod run;
pub mod sample;
pub mod serve;
pub mod set;
pub mod timeline;
pub mod wire;

use crate::checker::stats::OpStats;
use crate::checker::Verdict;
use crate::spec::Plan;
use crate::store;
use anyhow::{anyhow, Result};
use run::RunData;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// What rendering a run produced.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub verdict: Verdict,
    pub index_html: PathBuf,
    pub timeline_html: PathBuf,
    /// PNG files written beside the page.
    pub png_files: Vec<PathBuf>,
    /// Client calls drawn.
    pub calls: usize,
}

/// The `results.json` of a checked run. The runner writes it after checking; `report
/// --recheck` rebuilds it the same way for a run that has none. `verdict` is the
/// checker's composed with the stats rule's, `reason` why it is unknown.
pub fn results_json(
    plan: &Plan,
    run: Value,
    verdict: Verdict,
    reason: Option<&str>,
    check: Value,
    stats: &OpStats,
) -> Value {
    json!({
        "verdict": verdict,
        "reason": reason,
        "name": plan.name,
        "target": plan.target.spec.name,
        "workload": plan.workload.name,
        "nemesis": plan.nemesis.name,
        "nodes": plan.nodes,
        "concurrency": plan.concurrency,
        "seed": plan.seed,
        "faultline_version": plan.faultline_version,
        "git_revision": plan.git_revision,
        "run": run,
        "stats": stats,
        "check": check,
    })
}

/// Render every page and plot of the run in `dir` from its files.
pub fn render_run(dir: &Path) -> Result<Rendered> {
    render(&RunData::load(dir, None)?)
}

/// Render a loaded run: plots and the run page on one thread, the timeline on another
/// (they share nothing but the read-only run).
pub fn render(run: &RunData) -> Result<Rendered> {
    let dir = &run.dir;
    let (page, timeline) = std::thread::scope(|s| {
        let timeline = s.spawn(|| -> Result<PathBuf> {
            let html = timeline::render(run)?;
            let path = dir.join("timeline.html");
            store::write_atomic(&path, html.as_bytes())?;
            Ok(path)
        });
        let page = (|| -> Result<(PathBuf, Vec<PathBuf>)> {
            let plots = plots::render_all(run, dir)?;
            let html = page::render(run, &plots);
            let path = dir.join("index.html");
            store::write_atomic(&path, html.as_bytes())?;
            Ok((path, plots.iter().map(|p| dir.join(&p.png_file)).collect()))
        })();
        let timeline = timeline
            .join()
            .map_err(|_| anyhow!("rendering the timeline panicked"))
            .and_then(|r| r);
        (page, timeline)
    });
    let (index_html, png_files) = page?;
    Ok(Rendered {
        verdict: run.verdict(),
        index_html,
        timeline_html: timeline?,
        png_files,
        calls: run.calls.len(),
    })
}

/// The store a run directory belongs to (`<store>/<test>/<run>`), if `dir` is laid out
/// that way: its grandparent, when that holds `latest` or an `index.html` of ours.
pub fn store_of(dir: &Path) -> Option<PathBuf> {
    let dir = dir.canonicalize().ok()?;
    let store = dir.parent()?.parent()?;
    (store.join("latest").exists() || store.join("index.html").exists())
        .then(|| store.to_path_buf())
}

/// Rewrite the reports index of the store `dir` belongs to; `None` when it has none.
pub fn update_store_index(dir: &Path) -> Result<Option<usize>> {
    match store_of(dir) {
        Some(store) => index::write(&store).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_a_run_that_recorded_no_op() {
        let dir = std::env::temp_dir().join(format!("fl-report-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let run = RunData::from_parts(&dir, json!({"verdict": "unknown"}), Value::Null, Vec::new());
        let r = render(&run).unwrap();
        assert_eq!(r.verdict, Verdict::Unknown);
        assert_eq!(r.calls, 0);
        let page = std::fs::read_to_string(&r.index_html).unwrap();
        assert!(page.contains("UNKNOWN") && page.contains("No fault was injected"));
        assert!(r.png_files.iter().all(|p| p.exists()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
