//! The campaign page, `index.html` of a campaign directory: a banner with the outcome,
//! the matrix of verdicts (rows: target / workload / option set; columns: nemeses), each
//! cell coloured by whether its runs met the expectation and linking every run's page,
//! with what a write cost on the wire (median over its runs) when links were counted,
//! and a table of all runs. Same layout, stylesheet and escaping as the run pages and the
//! reports index ([`crate::report::layout`]); self-contained, no scripts.

use super::dir::{RunState, State, Status};
use super::summary::{self, assess, Assessment, Counts, Outcome};
use super::Campaign;
use crate::report::layout::{banner, document, Banner};
use crate::report::page::{href, run_time};
use crate::report::wire::{bytes_figure as bytes_per_write, per_op_figure as per_write};
use maud::{html, Markup};
use std::fmt::Write as _;

/// Page-specific styles on top of the report stylesheet.
const CAMPAIGN_CSS: &str = "
table.matrix td.cell { min-width: 9em; border: 1px solid #fff; }
td.cell .label { font-weight: 600; }
td.good { background: #dafbe1; } td.bad { background: #ffebe9; } td.warn { background: #fff8c5; }
td.pending { background: #f6f8fa; color: var(--muted); } td.none { color: var(--muted); text-align: center; }
a.run { display: inline-block; min-width: 1.5em; margin: .2em .15em 0 0; padding: 0 .3em; border-radius: 3px;
  color: #fff; text-align: center; text-decoration: none; font-size: .85em; background: var(--pending); }
a.run.valid { background: var(--valid); } a.run.invalid { background: var(--invalid); }
a.run.unknown { background: var(--unknown); } a.run.error { background: #57606a; }
a.run.unexpected { outline: 2px solid #24292f; outline-offset: 1px; }
";

/// The link to a run: its page once checked, else its directory.
fn run_link(r: &RunState) -> Option<String> {
    let dir = r.run_dir.as_deref()?;
    let segments: Vec<&str> = dir.split('/').filter(|s| !s.is_empty()).collect();
    Some(if r.verdict.is_some() {
        format!("{}/index.html", href(&segments))
    } else {
        format!("{}/", href(&segments))
    })
}

fn verdict_class(r: &RunState) -> &'static str {
    match (r.status, r.verdict) {
        (Status::Done, Some(v)) => crate::report::page::verdict_class(v),
        (Status::Done, None) => "error",
        _ => "",
    }
}

fn run_title(r: &RunState) -> String {
    let mut t = format!(
        "repeat {}, seed {}: {}",
        r.repeat + 1,
        r.seed,
        match (r.status, r.verdict) {
            (Status::Done, Some(v)) => v.to_string(),
            (Status::Done, None) => "error".into(),
            (Status::Running, _) => "running".into(),
            (Status::Pending, _) => "pending".into(),
            (Status::Skipped, _) => "skipped (its series had broken)".into(),
        }
    );
    let _ = write!(
        t,
        " ({}, expected {})",
        assess(r).as_str(),
        r.expect.as_str()
    );
    if let Some(s) = r.seconds {
        let _ = write!(t, ", {s:.1} s");
    }
    if let Some(a) = r.first_anomaly_s {
        let _ = write!(t, ", first anomaly at {a:.1} s");
    }
    if let Some(e) = &r.error {
        let _ = write!(t, ": {e}");
    }
    if let Some(f) = r.faults.filter(|f| f.planned > 0) {
        let _ = write!(t, ", faults landed {} of {}", f.landed, f.planned);
    }
    if r.liveness_failed {
        t.push_str(", liveness failed (the cluster did not serve again in time)");
    }
    if let Some(w) = r.wire {
        let _ = write!(
            t,
            ", {} peer packets and {} per write",
            per_write(w.messages_per_write),
            bytes_per_write(w.bytes_per_write)
        );
    }
    if let Some(why) = &r.reason {
        let _ = write!(t, ": unknown because {why}");
    }
    t
}

/// "faults landed L/P" over the runs of a cell, and how many failed liveness, for the
/// matrix: a cell whose faults did not land tested less than its name says.
fn cell_faults_line(runs: &[&RunState]) -> Option<String> {
    let (mut planned, mut landed, mut known) = (0, 0, false);
    for f in runs.iter().filter_map(|r| r.faults) {
        planned += f.planned;
        landed += f.landed;
        known = true;
    }
    let dead = runs.iter().filter(|r| r.liveness_failed).count();
    let mut parts = Vec::new();
    if known && planned > 0 {
        parts.push(format!("faults landed {landed}/{planned}"));
    }
    if dead > 0 {
        parts.push(format!("liveness failed in {dead}"));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// Whether any run of the campaign had its links counted: then every cell says what a
/// write cost, `—` where its runs have no figure.
fn wire_counted(state: &State) -> bool {
    state.runs.iter().any(|r| r.wire.is_some())
}

/// One small square per run, coloured by verdict, outlined when not as expected.
fn run_chip(r: &RunState) -> Markup {
    let unexpected = if assess(r) == Assessment::Unexpected {
        " unexpected"
    } else {
        ""
    };
    html! {
        a class={ "run " (verdict_class(r)) (unexpected) } href=[run_link(r)] title=(run_title(r)) {
            (r.repeat + 1)
        }
    }
}

/// The class of a matrix cell: red when a run contradicted the expectation, yellow for
/// errors and unknowns, green when every finished run met it, grey before any finished.
fn cell_class(c: &Counts) -> &'static str {
    if c.unexpected > 0 && c.unexpected > c.unknown {
        "bad"
    } else if c.errors > 0 || c.unexpected > 0 {
        "warn"
    } else if c.as_expected == 0 {
        "pending"
    } else {
        "good"
    }
}

/// Render the campaign page.
pub fn render(c: &Campaign, state: &State) -> String {
    let counts = Counts::of(&state.runs);
    let (outcome, code) = summary::outcome(state);
    let (colour, headline) = match outcome {
        Outcome::AsExpected => ("#1a7f37", format!("all {} runs as expected", counts.runs)),
        Outcome::NotAsExpected => (
            "#cf222e",
            format!(
                "{} of {} runs not as expected",
                counts.unexpected, counts.runs
            ),
        ),
        Outcome::Incomplete => (
            "#57606a",
            format!(
                "incomplete: {} of {} runs done, {} errors",
                counts.runs - counts.pending,
                counts.runs,
                counts.errors
            ),
        ),
    };
    let name = format!("campaign {}", c.name());
    let sub = format!(
        "{headline} — exit code {code}; {} as expected, {} not, {} errors, {} pending",
        counts.as_expected, counts.unexpected, counts.errors, counts.pending
    );
    let body = html! {
        (banner(&Banner {
            class: "",
            background: Some(colour),
            headline: &name,
            headline_id: None,
            sub: &sub,
            sub_id: None,
            nav: &[
                ("summary.json", "summary.json"),
                ("junit.xml", "junit.xml"),
                ("campaign.yaml", "campaign.yaml"),
                ("state.json", "state.json"),
                ("runs/index.html", "all runs"),
            ],
        }))
        main {
            @if let Some(d) = &c.spec.description { p { (d) } }
            p.muted {
                (c.file.display()) ", hosts " (super::hosts_arg(&state.hosts))
                ", started " (run_time(&state.started))
                ". Each cell: runs that reached the expected verdict / runs; the squares link each run (outlined: not as expected)."
            }
            p #scenarios { (summary::scenarios_line(state)) }
            (matrix(c, state))
            (runs_table(c, state))
        }
    };
    document(&format!("{name}: {headline}"), CAMPAIGN_CSS, None, body).into_string()
}

fn matrix(c: &Campaign, state: &State) -> Markup {
    let nemeses = &c.spec.matrix.nemesis;
    // Cells come rows-first (target, workload, option), so a row is a run of equal keys.
    let row_key = |k: usize| {
        let x = &c.cells[k].cell;
        (&x.target, &x.workload, &x.option)
    };
    let series = summary::series_of(state);
    let mut rows = Vec::new();
    let mut i = 0;
    while i < c.cells.len() {
        let mut j = i;
        while j < c.cells.len() && row_key(j) == row_key(i) {
            j += 1;
        }
        rows.push(&c.cells[i..j]);
        i = j;
    }
    html! {
        h2 { "Matrix" }
        table.grid.matrix {
            thead { tr {
                th { "target / workload" } th { "option set" }
                @for n in nemeses { th { (n) } }
            } }
            tbody {
                @for row in rows {
                    @let first = &row[0].cell;
                    tr {
                        td { span title=(first.target) { (spec_label(&first.target)) } " / " (first.workload) }
                        td {
                            (first.option)
                            @if !first.target_args.is_empty() {
                                br; code.muted { (first.target_args.join(" ")) }
                            }
                        }
                        @for n in nemeses {
                            @match row.iter().find(|cp| &cp.cell.nemesis == n) {
                                None => td.cell.none { "–" },
                                Some(cp) => (cell(state, &series, cp)),
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One cell of the matrix: its runs against the expectation, and a square per run.
fn cell(state: &State, series: &[summary::SeriesResult], cp: &super::CellPlan) -> Markup {
    let runs = summary::runs_of(state, cp.cell.index);
    let counts = Counts::of(runs.iter().copied());
    html! {
        td class={ "cell " (cell_class(&counts)) } {
            span.label { (counts.as_expected) "/" (counts.runs) " " (cp.cell.expect.as_str()) }
            @if counts.pending > 0 {
                " " span.muted { "(" (counts.pending) " pending)" }
            }
            @if let Some(line) = summary::series_line(series, cp.cell.index) {
                br; span.series { (line) }
            }
            @if let Some(m) = summary::median_first_anomaly_s(runs.iter().copied()) {
                br; span.muted { "first anomaly " (format_args!("{m:.1}")) " s (median)" }
            }
            @if let Some(line) = cell_faults_line(&runs) {
                br; span.muted { (line) }
            }
            @if wire_counted(state) && counts.runs > counts.pending {
                @let (messages, bytes) = summary::median_wire_per_write(runs.iter().copied());
                br; span.muted.wire title="median over the runs of peer packets and bytes per acknowledged write" {
                    @if messages.is_none() && bytes.is_none() { "per write —" } @else {
                        "per write " (per_write(messages)) " packets, " (bytes_per_write(bytes))
                    }
                }
            }
            br;
            @for r in runs.iter().filter(|r| r.status != Status::Skipped) { (run_chip(r)) }
        }
    }
}

fn runs_table(c: &Campaign, state: &State) -> Markup {
    html! {
        h2 { "Runs" }
        table.grid {
            thead { tr {
                th.num { "#" } th { "cell" } th.num { "repeat" } th.num { "seed" }
                th { "verdict" } th { "expected" } th { "assessment" } th.num { "seconds" }
                th.num { "first anomaly" }
                th.num title="peer packets per acknowledged write" { "packets / write" }
                th.num title="peer bytes per acknowledged write" { "bytes / write" }
                th { "run" }
            } }
            tbody { @for r in &state.runs { (run_row(c, r)) } }
        }
    }
}

fn run_row(c: &Campaign, r: &RunState) -> Markup {
    let class = verdict_class(r);
    let verdict = match (r.status, r.verdict) {
        (Status::Done, Some(v)) => v.to_string(),
        (Status::Done, None) => "error".into(),
        (Status::Running, _) => "running".into(),
        (Status::Pending, _) => "pending".into(),
        (Status::Skipped, _) => "skipped".into(),
    };
    // The link text is the run's start time: the cell has its own column.
    let started = r
        .run_dir
        .as_deref()
        .and_then(|d| d.rsplit('/').next())
        .map(run_time)
        .unwrap_or_default();
    let label = c
        .cells
        .get(r.cell)
        .map_or_else(|| r.name.clone(), |cp| cp.cell.label());
    let coloured = matches!(class, "valid" | "invalid" | "unknown");
    html! {
        tr {
            td.num { (r.index + 1) }
            td { (label) }
            td.num { (r.repeat + 1) }
            td.num.mono { (r.seed) }
            td { span class={ "badge " (class) } style=(if coloured { "" } else { "background:#8c959f" }) { (verdict) } }
            td { (r.expect.as_str()) }
            td {
                (assess(r).as_str())
                @if let Some(e) = r.error.as_deref().or(r.reason.as_deref()) {
                    br; span.muted { (e) }
                }
            }
            td.num { @if let Some(s) = r.seconds { (format_args!("{s:.1}")) } }
            td.num { @if let Some(s) = r.first_anomaly_s { (format_args!("{s:.1} s")) } }
            td.num { @if let Some(w) = r.wire { (per_write(w.messages_per_write)) } }
            td.num { @if let Some(w) = r.wire { (bytes_per_write(w.bytes_per_write)) } }
            td { @if let Some(l) = run_link(r) { a href=(l) { (started) } } }
        }
    }
}

/// How a target given as a file is named in the matrix: `…/lazykv/target.yaml` is
/// `lazykv`, `x/my-target.yaml` is `my-target`; a name stays as it is. The path is kept in
/// the cell's tooltip.
fn spec_label(target: &str) -> String {
    let p = std::path::Path::new(target);
    let is_file = target.ends_with(".yaml") || target.ends_with(".yml");
    if !is_file {
        return target.to_string();
    }
    let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or(target);
    match p
        .parent()
        .and_then(|d| d.file_name())
        .and_then(|d| d.to_str())
    {
        Some(dir) if stem == "target" => dir.to_string(),
        _ => stem.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_file_is_labelled_by_its_name_not_its_path() {
        assert_eq!(
            spec_label("/work/x/tests/fixtures/lazykv/target.yaml"),
            "lazykv"
        );
        assert_eq!(spec_label("targets/my-node.yaml"), "my-node");
        assert_eq!(spec_label("raftkv"), "raftkv");
    }
    use crate::campaign::summary::tests::finished;
    use crate::checker::Verdict;

    #[test]
    fn the_matrix_shows_each_cell_against_its_expectation_and_links_runs() {
        use Verdict::*;
        let (c, s) = finished([Some(Invalid), Some(Valid), Some(Valid), None]);
        let page = render(&c, &s);
        assert!(page.contains("<th>partition-primaries</th><th>clock-partition</th>"));
        // stale-read: caught under partition-primaries, missed under clock-partition.
        assert!(
            page.contains("<td class=\"cell good\"><span class=\"label\">1/1 invalid</span>"),
            "{page}"
        );
        assert!(
            page.contains("<td class=\"cell bad\"><span class=\"label\">0/1 invalid</span>"),
            "{page}"
        );
        assert!(
            page.contains("<td class=\"cell warn\"><span class=\"label\">0/1 invalid</span>"),
            "{page}"
        );
        assert!(page.contains(
            "href=\"runs/raftkv-register-partition-primaries-stale-read/20261124T000000Z/index.html\""
        ));
        assert!(page.contains("run valid unexpected"));
        assert!(
            page.contains("cannot start &lt;n1&gt; &amp;"),
            "errors are escaped"
        );
        assert!(page.contains("incomplete: 4 of 4 runs done, 1 errors"));
    }

    #[test]
    fn strings_from_specs_and_runs_are_escaped() {
        const HOSTILE: &str = "<script>alert(\"x\")</script> & 'q'";
        const HOSTILE_HTML: &str = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; 'q'";
        let (mut c, mut s) = finished([None, Some(Verdict::Unknown), None, None]);
        for cp in &mut c.cells {
            cp.cell.target = format!("target {HOSTILE}");
            cp.cell.target_args.push(format!("arg {HOSTILE}"));
        }
        c.spec.description = Some(format!("description {HOSTILE}"));
        s.runs[0].error = Some(format!("error {HOSTILE}"));
        s.runs[1].reason = Some(format!("reason {HOSTILE}"));
        let page = render(&c, &s);
        assert!(!page.contains("<script"), "the campaign page has no script");
        for what in ["target", "arg", "description", "error", "reason"] {
            assert!(
                page.contains(&format!("{what} {HOSTILE_HTML}")),
                "{what}: {page}"
            );
        }
    }

    #[test]
    fn an_unknown_run_says_why_in_its_square_and_in_the_runs_table() {
        let (c, mut s) = finished([Some(Verdict::Invalid), Some(Verdict::Unknown), None, None]);
        s.runs[1].reason = Some("no write succeeded (0 of 3 ok; \"<x>\" ×3)".into());
        let page = render(&c, &s);
        let why = "no write succeeded (0 of 3 ok; &quot;&lt;x&gt;&quot; ×3)";
        assert!(
            page.contains(&format!(
                "not as expected<br><span class=\"muted\">{why}</span>"
            )),
            "{page}"
        );
        assert!(page.contains(&format!("unknown because {why}\"")), "{page}");
        assert!(!page.contains("<x>"));
    }

    #[test]
    fn a_cell_says_how_many_faults_landed_and_which_runs_failed_liveness() {
        use crate::campaign::dir::FaultsLanded;
        let (c, mut s) = finished([Some(Verdict::Valid), Some(Verdict::Valid), None, None]);
        s.runs[0].faults = Some(FaultsLanded {
            planned: 3,
            landed: 2,
        });
        s.runs[1].faults = Some(FaultsLanded {
            planned: 3,
            landed: 0,
        });
        s.runs[1].liveness_failed = true;
        let page = render(&c, &s);
        // The two runs are in two cells.
        assert!(page.contains(">faults landed 2/3<"), "{page}");
        assert!(
            page.contains(">faults landed 0/3, liveness failed in 1<"),
            "{page}"
        );
        assert!(
            page.contains("faults landed 0 of 3, liveness failed"),
            "{page}"
        );
    }

    #[test]
    fn cells_and_runs_show_what_a_write_cost_on_the_wire() {
        use crate::campaign::dir::WireCost;
        let (c, mut s) = finished([Some(Verdict::Invalid), Some(Verdict::Valid), None, None]);
        let page = render(&c, &s);
        assert!(
            !page.contains("per write"),
            "no wire line in a campaign whose links were not counted"
        );
        s.runs[0].wire = Some(WireCost {
            messages_per_write: Some(16.54),
            bytes_per_write: Some(2940.4),
        });
        let page = render(&c, &s);
        assert!(
            page.contains(">per write 16.5 packets, 2.9 KiB</span>"),
            "{page}"
        );
        // Other finished cells say they have no figure; an errored run has none either.
        assert!(page.contains(">per write —</span>"), "{page}");
        assert!(page.contains("<td class=\"num\">16.5</td><td class=\"num\">2.9 KiB</td>"));
        assert!(page.contains(", 16.5 peer packets and 2.9 KiB per write"));
        assert!(page.contains(
            "<th class=\"num\" title=\"peer packets per acknowledged write\">packets / write</th>"
        ));
    }
}
