//! Report rendering speed on a 100,000-call run (about 200,000 history lines, every fault
//! kind), and how long its timeline takes to open in headless Chromium.
//!
//! Plain `main` (no criterion): one case takes seconds, and the figure that matters is the
//! wall time a user waits for. Targets (issue 6): all pages and plots rendered in ≤ 5 s;
//! the timeline drawn in Chromium ≤ 3 s after navigation starts.
//!
//! `cargo bench --bench report` (add `-- --calls N --repeat R` to change the size).
//! The browser half is skipped, with the reason, when Chromium is not installed.

use faultline::report::{self, run::RunData};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[path = "../tests/support/webdriver.rs"]
mod webdriver;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let calls = arg("--calls", 100_000);
    let repeat = arg("--repeat", 3).max(1);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report-bench");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");

    let ops = report::sample::history(calls, 10, 200, 11);
    let lines = ops.len();
    faultline::history::write_jsonl(
        &ops,
        std::fs::File::create(dir.join("history.jsonl")).expect("history"),
    )
    .expect("write history");
    // The checker's verdict is not part of this measurement; the page needs results.
    let results = json!({
        "verdict": "valid", "name": "bench", "target": "raftkv", "workload": "register",
        "nemesis": "all", "nodes": ["n1", "n2", "n3", "n4", "n5"], "seed": 11,
        "run": {"ops": calls, "elapsed_s": ops.last().map_or(0.0, |o| o.time_ns as f64 / 1e9)},
        "check": {"model": "cas-register"},
    });
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_vec(&results).expect("json"),
    )
    .expect("results");
    println!("report bench: {calls} calls, {lines} history lines");

    let mut best = Duration::MAX;
    for i in 0..repeat {
        let t = Instant::now();
        // Everything `faultline report` does: read the files, plots, pages.
        let run = RunData::load(&dir, None).expect("load");
        let load = t.elapsed();
        let rendered = report::render(&run).expect("render");
        let total = t.elapsed();
        best = best.min(total);
        println!(
            "  render #{i}: {:.2} s (load {:.2} s, plots + pages {:.2} s; {} calls drawn)",
            total.as_secs_f64(),
            load.as_secs_f64(),
            (total - load).as_secs_f64(),
            rendered.calls
        );
    }
    let size = |f: &str| std::fs::metadata(dir.join(f)).map_or(0, |m| m.len()) as f64 / 1e6;
    println!(
        "render all pages and plots: best {:.2} s (target ≤ 5 s); index.html {:.1} MB, timeline.html {:.1} MB",
        best.as_secs_f64(),
        size("index.html"),
        size("timeline.html")
    );

    if let Some(why) = webdriver::unavailable() {
        println!("timeline in Chromium: skipped ({why})");
        return;
    }
    let b = webdriver::Browser::start(1400, 1000);
    let url = webdriver::Browser::file_url(&dir.join("timeline.html"));
    let mut opened = Vec::new();
    for _ in 0..repeat {
        b.goto("about:blank");
        b.goto(&url);
        let ready: Value = b.wait_for("document.body.dataset.readyMs", Duration::from_secs(60));
        let ms: f64 = ready
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(f64::NAN);
        opened.push(ms);
    }
    let page = webdriver::Browser::file_url(&dir.join("index.html"));
    let mut page_ms = Vec::new();
    for _ in 0..repeat {
        b.goto("about:blank");
        b.goto(&page);
        let v = b.exec(
            "return performance.getEntriesByType('navigation')[0].loadEventEnd",
            json!([]),
        );
        page_ms.push(v.as_f64().unwrap_or(f64::NAN));
    }
    println!(
        "run page in Chromium, navigation start to load event: best {:.0} ms of {:?}",
        page_ms.iter().copied().fold(f64::INFINITY, f64::min),
        page_ms.iter().map(|m| m.round() as i64).collect::<Vec<_>>()
    );
    let best_ms = opened.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "timeline in Chromium, navigation start to first full draw: best {:.0} ms of {:?} (target ≤ 3000 ms)",
        best_ms,
        opened.iter().map(|m| m.round() as i64).collect::<Vec<_>>()
    );
}
