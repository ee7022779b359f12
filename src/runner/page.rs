//! End of a run: check the history with the workload's model, write `results.json` and a
//! plain `index.html` (verdict, parameters, counts, counterexample, links). The rich report
//! (plots, timeline) is [`crate::report`]'s job once it exists; this page is the minimum a
//! person needs to know what happened.

use super::RunSummary;
use crate::checker::Verdict;
use crate::spec::Plan;
use crate::store;
use anyhow::Result;
use serde_json::{json, Value};
use std::path::Path;

/// Check `history.jsonl`, write results.json and index.html; returns the verdict.
pub fn check_and_report(plan: &Plan, run_dir: &Path, summary: &RunSummary) -> Result<Verdict> {
    let history = run_dir.join("history.jsonl");
    let (verdict, check) = super::check::check_history(plan, &history)?;
    super::log::line(&format!("checker: {verdict}"));
    let results = json!({
        "verdict": verdict,
        "name": plan.name,
        "target": plan.target.spec.name,
        "workload": plan.workload.name,
        "nemesis": plan.nemesis.name,
        "nodes": plan.nodes,
        "concurrency": plan.concurrency,
        "seed": plan.seed,
        "faultline_version": plan.faultline_version,
        "git_revision": plan.git_revision,
        "run": summary,
        "check": check,
    });
    store::write_atomic(
        &run_dir.join("results.json"),
        serde_json::to_vec_pretty(&results)?.as_slice(),
    )?;
    store::write_atomic(
        &run_dir.join("index.html"),
        render(plan, summary, verdict, &check).as_bytes(),
    )?;
    Ok(verdict)
}

/// Escape text for HTML: everything from a target (values, errors, logs) passes here.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn render(plan: &Plan, s: &RunSummary, verdict: Verdict, check: &Value) -> String {
    let colour = match verdict {
        Verdict::Valid => "#1a7f37",
        Verdict::Invalid => "#cf222e",
        Verdict::Unknown => "#9a6700",
    };
    let params = [
        ("target", plan.target.spec.name.clone()),
        ("workload", plan.workload.name.clone()),
        ("nemesis", plan.nemesis.name.clone()),
        ("nodes", plan.nodes.join(", ")),
        ("concurrency", plan.concurrency.to_string()),
        (
            "time limit",
            humantime::format_duration(plan.time_limit).to_string(),
        ),
        ("seed", plan.seed.to_string()),
        ("target args", plan.target_args.join(" ")),
        (
            "faultline",
            format!(
                "{} ({})",
                plan.faultline_version,
                plan.git_revision.as_deref().unwrap_or("unknown revision")
            ),
        ),
    ];
    let mut rows = String::new();
    for (k, v) in params {
        rows.push_str(&format!(
            "<tr><th>{}</th><td>{}</td></tr>\n",
            esc(k),
            esc(&v)
        ));
    }
    let mut logs = String::new();
    for n in &plan.nodes {
        logs.push_str(&format!("<a href=\"nodes/{0}/\">{0}</a> ", esc(n)));
    }
    let details = serde_json::to_string_pretty(check).unwrap_or_default();
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{name}: {verdict}</title>
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 60em; padding: 0 1em; }}
.banner {{ background: {colour}; color: white; padding: .6em 1em; border-radius: 6px; font-size: 1.4em; }}
th {{ text-align: left; padding-right: 1.5em; font-weight: 600; }}
pre {{ background: #f6f8fa; padding: 1em; overflow-x: auto; }}
</style></head><body>
<div class="banner" id="verdict">{verdict_up}</div>
<h2>{name}</h2>
<table>{rows}</table>
<h3>Operations</h3>
<p>{ops} invoked: {ok} ok, {fail} fail, {info} info, in {elapsed:.1} s{interrupted}</p>
<h3>Checker</h3>
<pre>{details}</pre>
<h3>Files</h3>
<p><a href="history.jsonl">history.jsonl</a> · <a href="plan.yaml">plan.yaml</a> · <a href="results.json">results.json</a> · <a href="faultline.log">faultline.log</a></p>
<p>Node logs: {logs}</p>
</body></html>
"#,
        name = esc(&plan.name),
        verdict = verdict,
        verdict_up = verdict.to_string().to_uppercase(),
        colour = colour,
        rows = rows,
        ops = s.ops,
        ok = s.ok,
        fail = s.fail,
        info = s.info,
        elapsed = s.elapsed_s,
        interrupted = if s.interrupted { " (interrupted)" } else { "" },
        details = esc(&details),
        logs = logs,
    )
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn escapes_markup_from_targets() {
        assert_eq!(
            esc("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
    }
}
