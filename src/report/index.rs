//! `reports/index.html`: every run under a store, newest first, with its verdict colour,
//! target, workload and nemesis, and filters (verdict, target, workload, nemesis, free
//! text). Rebuilt from the run directories after each run and each `faultline report`, so
//! it never drifts from what is on disk.
//!
//! A run without `results.json` (still running, or its controller died before checking)
//! is listed as "not checked", with what `plan.yaml` says about it.

use super::escape::value_text;
use super::layout::{banner, document, static_asset, Banner};
use super::page::{href, run_time};
use super::run::{read_plan, read_results};
use crate::store;
use anyhow::Result;
use maud::{html, Markup};
use serde_json::Value;
use std::path::Path;

/// Most runs listed (the newest); older ones are counted, not listed.
pub const MAX_RUNS_LISTED: usize = 5_000;

/// The verdict column of a run without results.json.
pub const NOT_CHECKED: &str = "not checked";

/// What the index shows of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEntry {
    pub test: String,
    pub run: String,
    /// `valid` / `invalid` / `unknown` / `not checked`.
    pub verdict: String,
    pub target: String,
    pub workload: String,
    pub nemesis: String,
    pub nodes: usize,
    pub ops: Option<u64>,
    pub elapsed_s: Option<f64>,
    pub seed: String,
}

fn str_of(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => value_text(other, 60),
    }
}

fn is_dir_not_link(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir())
}

/// Every run directory under `store` (`<store>/<test>/<run>/` holding a plan.yaml or
/// results.json), newest first. Symlinks (`latest`) are skipped, unreadable runs listed
/// as not checked.
pub fn scan(store: &Path) -> Result<Vec<RunEntry>> {
    let mut runs = Vec::new();
    let Ok(tests) = std::fs::read_dir(store) else {
        return Ok(runs);
    };
    for test in tests.filter_map(|e| e.ok()) {
        let test_dir = test.path();
        if !is_dir_not_link(&test_dir) {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&test_dir) else {
            continue;
        };
        for run in entries.filter_map(|e| e.ok()) {
            let dir = run.path();
            if !is_dir_not_link(&dir)
                || !(dir.join("plan.yaml").exists() || dir.join("results.json").exists())
            {
                continue;
            }
            let (Some(test), Some(leaf)) = (
                test.file_name().to_str().map(String::from),
                run.file_name().to_str().map(String::from),
            ) else {
                continue;
            };
            runs.push(entry(&dir, test, leaf));
        }
    }
    runs.sort_by(|a, b| b.run.cmp(&a.run).then_with(|| a.test.cmp(&b.test)));
    Ok(runs)
}

fn entry(dir: &Path, test: String, run: String) -> RunEntry {
    let results = read_results(dir).ok().flatten();
    let plan = read_plan(dir).unwrap_or(Value::Null);
    match results {
        Some(r) => RunEntry {
            test,
            run,
            verdict: str_of(r.get("verdict")),
            target: str_of(r.get("target")),
            workload: str_of(r.get("workload")),
            nemesis: str_of(r.get("nemesis")),
            nodes: r.get("nodes").and_then(Value::as_array).map_or(0, Vec::len),
            ops: r.pointer("/run/ops").and_then(Value::as_u64),
            elapsed_s: r.pointer("/run/elapsed_s").and_then(Value::as_f64),
            seed: str_of(r.get("seed")),
        },
        None => RunEntry {
            test,
            run,
            verdict: NOT_CHECKED.into(),
            target: str_of(plan.pointer("/target/spec/name")),
            workload: str_of(plan.pointer("/workload/name")),
            nemesis: str_of(plan.pointer("/nemesis/name")),
            nodes: plan
                .get("nodes")
                .and_then(Value::as_array)
                .map_or(0, Vec::len),
            ops: None,
            elapsed_s: None,
            seed: str_of(plan.get("seed")),
        },
    }
}

/// A filter: a select of every distinct value of one column.
fn options(id: &str, label: &str, mut values: Vec<&str>) -> Markup {
    values.sort_unstable();
    values.dedup();
    html! {
        label {
            (label) " "
            select #(id) {
                option value="" { "all" }
                @for v in values { option { (v) } }
            }
        }
        " "
    }
}

/// Most campaign directories listed (the newest).
pub const MAX_CAMPAIGNS_LISTED: usize = 500;

/// What the index shows of one campaign directory, `<store>/campaigns/<name>/<started>/`.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignEntry {
    pub name: String,
    pub started: String,
    /// `as-expected` / `not-as-expected` / `incomplete` (summary.json's `outcome`).
    pub outcome: String,
    pub runs: u64,
    pub as_expected: u64,
    pub pending: u64,
}

/// Every campaign directory under `<store>/campaigns/` with a summary.json, newest first.
pub fn scan_campaigns(store: &Path) -> Vec<CampaignEntry> {
    let mut found = Vec::new();
    let Ok(names) = std::fs::read_dir(store.join("campaigns")) else {
        return found;
    };
    for name in names.filter_map(|e| e.ok()) {
        if !is_dir_not_link(&name.path()) {
            continue;
        }
        let Ok(dirs) = std::fs::read_dir(name.path()) else {
            continue;
        };
        for d in dirs.filter_map(|e| e.ok()) {
            let Ok(text) = std::fs::read_to_string(d.path().join("summary.json")) else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            if !is_dir_not_link(&d.path()) {
                continue;
            }
            let count = |k: &str| {
                v.pointer(&format!("/counts/{k}"))
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
            };
            found.push(CampaignEntry {
                name: name.file_name().to_string_lossy().into_owned(),
                started: d.file_name().to_string_lossy().into_owned(),
                outcome: str_of(v.get("outcome")),
                runs: count("runs"),
                as_expected: count("as_expected"),
                pending: count("pending"),
            });
        }
    }
    found.sort_by(|a, b| b.started.cmp(&a.started).then_with(|| a.name.cmp(&b.name)));
    found.truncate(MAX_CAMPAIGNS_LISTED);
    found
}

/// A badge's grey for outcomes that have no colour class of their own.
fn badge_style(class: &str) -> &'static str {
    if class.is_empty() {
        "background:#8c959f"
    } else {
        ""
    }
}

fn campaigns_table(campaigns: &[CampaignEntry]) -> Markup {
    html! {
        h2 { "Campaigns" }
        table.grid #campaigns {
            thead { tr {
                th { "started" } th { "campaign" } th { "outcome" }
                th.num { "as expected" } th.num { "pending" }
            } }
            tbody {
                @for c in campaigns {
                    @let class = match c.outcome.as_str() {
                        "as-expected" => "valid",
                        "not-as-expected" => "invalid",
                        _ => "",
                    };
                    tr {
                        td { a href=(href(&["campaigns", &c.name, &c.started, "index.html"])) { (run_time(&c.started)) } }
                        td { (c.name) }
                        td { span class={ "badge " (class) } style=(badge_style(class)) { (c.outcome.replace('-', " ")) } }
                        td.num { (c.as_expected) "/" (c.runs) }
                        td.num { (c.pending) }
                    }
                }
            }
        }
        h2 { "Runs" }
    }
}

fn run_row(r: &RunEntry) -> Markup {
    // An unchecked run has no page yet: link its directory.
    let link = if r.verdict == NOT_CHECKED {
        format!("{}/", href(&[&r.test, &r.run]))
    } else {
        href(&[&r.test, &r.run, "index.html"])
    };
    let class = match r.verdict.as_str() {
        "valid" | "invalid" | "unknown" => r.verdict.as_str(),
        _ => "",
    };
    html! {
        tr data-verdict=(r.verdict) data-target=(r.target) data-workload=(r.workload) data-nemesis=(r.nemesis) {
            td { a href=(link) { (run_time(&r.run)) } }
            td { (r.test) }
            td { span class={ "badge " (class) } style=(badge_style(class)) { (r.verdict) } }
            td { (r.target) }
            td { (r.workload) }
            td { (r.nemesis) }
            td.num { (r.nodes) }
            td.num { @if let Some(o) = r.ops { (o) } }
            td.num { @if let Some(e) = r.elapsed_s { (format_args!("{e:.1} s")) } }
            td.num.mono { (r.seed) }
            td {
                a href=(href(&[&r.test, &r.run, "timeline.html"])) { "timeline" }
                " "
                a.download hidden href={ "/download/" (href(&[&r.test, &r.run])) ".tar.gz" } { ".tar.gz" }
            }
        }
    }
}

/// Render the index page for `runs`.
pub fn render(runs: &[RunEntry]) -> String {
    render_with_campaigns(runs, &[])
}

/// Render the index page for `runs`, with a table of `campaigns` above them when any.
pub fn render_with_campaigns(runs: &[RunEntry], campaigns: &[CampaignEntry]) -> String {
    let count = |v: &str| runs.iter().filter(|r| r.verdict == v).count();
    let counts = format!(
        "{} runs: {} valid, {} invalid, {} unknown, {} not checked",
        runs.len(),
        count("valid"),
        count("invalid"),
        count("unknown"),
        count(NOT_CHECKED)
    );
    let column = |f: fn(&RunEntry) -> &str| runs.iter().map(f).collect::<Vec<_>>();
    let body = html! {
        (banner(&Banner {
            class: "",
            background: Some("#24292f"),
            headline: "faultline runs",
            headline_id: None,
            sub: &counts,
            sub_id: Some("counts"),
            nav: &[],
        }))
        main {
            @if !campaigns.is_empty() { (campaigns_table(campaigns)) }
            div #filters {
                (options("f-verdict", "verdict", column(|r| &r.verdict)))
                (options("f-target", "target", column(|r| &r.target)))
                (options("f-workload", "workload", column(|r| &r.workload)))
                (options("f-nemesis", "nemesis", column(|r| &r.nemesis)))
                label { "search " input #f-text type="search" placeholder="test, seed …"; }
                " "
                span.muted #shown {}
            }
            table.grid #runs {
                thead { tr {
                    th { "started" } th { "test" } th { "verdict" } th { "target" }
                    th { "workload" } th { "nemesis" } th.num { "nodes" } th.num { "ops" }
                    th.num { "duration" } th.num { "seed" } th {}
                } }
                tbody { @for r in runs.iter().take(MAX_RUNS_LISTED) { (run_row(r)) } }
            }
            @if runs.len() > MAX_RUNS_LISTED {
                p.muted { (runs.len() - MAX_RUNS_LISTED) " older runs are not listed." }
            }
            @if runs.is_empty() {
                p.muted { "No runs yet: " code { "faultline run" } " writes one here." }
            }
            script { (static_asset(INDEX_JS)) }
        }
    };
    document("faultline runs", INDEX_CSS, None, body).into_string()
}

/// The filters' row, and the row under the pointer.
const INDEX_CSS: &str = "
#filters { margin: 1em 0; display: flex; flex-wrap: wrap; gap: .6em 1.4em; }
#runs tbody tr:hover td { background: #f6f8fa; }
";

/// Filtering by the row's data attributes and text; download links only under `serve`.
const INDEX_JS: &str = r##"
(function () {
  var rows = Array.prototype.slice.call(document.querySelectorAll("#runs tbody tr"));
  var ids = ["verdict", "target", "workload", "nemesis"];
  var selects = ids.map(function (id) { return document.getElementById("f-" + id); });
  var text = document.getElementById("f-text"), shown = document.getElementById("shown");
  var texts = rows.map(function (r) { return r.textContent.toLowerCase(); });
  function apply() {
    var q = text.value.trim().toLowerCase(), n = 0;
    rows.forEach(function (r, i) {
      var ok = ids.every(function (id, k) { return !selects[k].value || r.dataset[id] === selects[k].value; })
        && (!q || texts[i].indexOf(q) >= 0);
      r.hidden = !ok; if (ok) n++;
    });
    shown.textContent = n + " of " + rows.length + " shown";
  }
  selects.forEach(function (s) { s.addEventListener("change", apply); });
  text.addEventListener("input", apply);
  if (/^https?:$/.test(location.protocol)) {
    document.querySelectorAll("a.download").forEach(function (a) { a.hidden = false; });
  }
  apply();
})();
"##;

/// Rewrite `<store>/index.html` from the run directories; returns how many runs it lists.
pub fn write(store: &Path) -> Result<usize> {
    let runs = scan(store)?;
    let campaigns = scan_campaigns(store);
    store::write_atomic(
        &store.join("index.html"),
        render_with_campaigns(&runs, &campaigns).as_bytes(),
    )?;
    Ok(runs.len().min(MAX_RUNS_LISTED))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_runs_newest_first_and_skips_latest_links() {
        let store = std::env::temp_dir().join(format!("fl-index-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&store);
        for (test, run, verdict) in [
            ("a", "20261101T000000Z", "valid"),
            ("b", "20261102T000000Z", "invalid"),
            ("a", "20261103T000000Z", "unknown"),
        ] {
            let dir = store.join(test).join(run);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(
                dir.join("results.json"),
                format!(r#"{{"verdict":"{verdict}","target":"raftkv","workload":"register","nemesis":"<all>","nodes":["n1"],"run":{{"ops":5,"elapsed_s":1.5}}}}"#),
            )
            .unwrap();
        }
        let unchecked = store.join("b").join("20261104T000000Z");
        std::fs::create_dir_all(&unchecked).unwrap();
        std::fs::write(unchecked.join("plan.yaml"), "seed: 9\nnodes: [n1, n2]\n").unwrap();
        std::os::unix::fs::symlink("20261103T000000Z", store.join("a").join("latest")).unwrap();
        let runs = scan(&store).unwrap();
        let order: Vec<(&str, &str)> = runs
            .iter()
            .map(|r| (r.test.as_str(), r.verdict.as_str()))
            .collect();
        assert_eq!(
            order,
            vec![
                ("b", "not checked"),
                ("a", "unknown"),
                ("b", "invalid"),
                ("a", "valid")
            ]
        );
        assert_eq!(runs[0].seed, "9");
        assert_eq!(write(&store).unwrap(), 4);
        let page = std::fs::read_to_string(store.join("index.html")).unwrap();
        assert!(page.contains("&lt;all&gt;") && !page.contains("<all>"));
        assert!(page.contains("href=\"a/20261101T000000Z/index.html\""));
        assert!(!page.contains("<h2>Campaigns</h2>"));

        let campaign = store.join("campaigns/ci/20261105T000000Z");
        std::fs::create_dir_all(&campaign).unwrap();
        std::fs::write(
            campaign.join("summary.json"),
            r#"{"outcome":"not-as-expected","counts":{"runs":4,"as_expected":3,"pending":0}}"#,
        )
        .unwrap();
        std::os::unix::fs::symlink("20261105T000000Z", store.join("campaigns/ci/latest")).unwrap();
        assert_eq!(write(&store).unwrap(), 4, "a campaign is not a run");
        let page = std::fs::read_to_string(store.join("index.html")).unwrap();
        assert!(page.contains("<h2>Campaigns</h2>"));
        assert!(page.contains("href=\"campaigns/ci/20261105T000000Z/index.html\""));
        assert!(page.contains("not as expected</span></td><td class=\"num\">3/4</td>"));
        assert_eq!(
            page.matches("campaigns/ci/").count(),
            1,
            "latest is not listed twice"
        );
        std::fs::remove_dir_all(&store).unwrap();
    }
}
