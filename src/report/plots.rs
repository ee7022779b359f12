//! The run's plots, drawn with plotters: latency of every completed op, latency quantiles
//! and throughput over time, each node's clock offset when clock faults ran, and packets
//! per second on the wire when the run counted its links ([`WIRE`]). Every
//! plot shades the fault windows by kind and carries its own legend, so a PNG file makes
//! sense on its own when shared.
//!
//! Each figure is drawn twice from one drawing function: to an SVG string the page embeds
//! (crisp at any zoom) and to a PNG file beside the page, at twice the size. Colours are
//! the report's: outcome colours from [`Outcome::colour`], band colours from
//! [`FaultKind::colour`]; marker shapes and line dashes stand for the op's `f`.
//!
//! Large histories: the scatter plot draws one marker per distinct pixel cell, outcome and
//! `f` — a marker hidden under an identical one adds bytes, not information — which keeps
//! the SVG of a 100,000-op run small.

use super::font::{self, FAMILY};
use super::run::{Call, FaultKind, Outcome, RunData};
use super::wire::Rates;
use anyhow::{anyhow, Result};
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use std::collections::HashSet;
use std::path::Path;

/// Width and height of a plot in CSS pixels (the PNG is [`PNG_SCALE`] times larger).
const WIDTH_PX: u32 = 1100;
const HEIGHT_PX: u32 = 360;
/// Width of the legend column on the right of every plot.
const LEGEND_PX: u32 = 170;
const PNG_SCALE: f64 = 2.0;
/// Most time buckets of the quantile and throughput plots.
const MAX_BUCKETS: f64 = 100.0;

/// Name of the wire plot, which the page shows in its Wire section, not among the plots.
pub const WIRE: &str = "wire";

/// One rendered plot.
#[derive(Debug, Clone)]
pub struct Plot {
    /// File stem: `latency` → `latency.png`.
    pub name: &'static str,
    pub title: String,
    pub svg: String,
    pub png_file: String,
    /// Markers or points drawn (for tests and the page's captions).
    pub marks: usize,
}

/// Sizes scaled for the target (1 for SVG, [`PNG_SCALE`] for PNG).
#[derive(Debug, Clone, Copy)]
struct Px(f64);

impl Px {
    fn u(self, v: f64) -> u32 {
        (v * self.0).round() as u32
    }
    fn i(self, v: f64) -> i32 {
        (v * self.0).round() as i32
    }
    /// plotters draws text at size / 1.24 px; 1.2 brings our sizes back to about what
    /// they say.
    fn font(self, size: f64) -> TextStyle<'static> {
        (FAMILY, size * 1.2 * self.0)
            .into_font()
            .color(&RGBColor(0x24, 0x29, 0x2f))
    }
}

fn rgb((r, g, b): (u8, u8, u8)) -> RGBColor {
    RGBColor(r, g, b)
}

/// What a legend entry shows beside its label.
#[derive(Debug, Clone, Copy)]
enum Swatch {
    Band(RGBColor),
    Marker(Shape, RGBColor),
    Line(RGBColor, Dash),
}

/// Marker shapes, one per `f` (cycled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Shape {
    Circle,
    Triangle,
    Square,
    Cross,
}

impl Shape {
    fn of_f(f: u16) -> Shape {
        [Shape::Circle, Shape::Triangle, Shape::Square, Shape::Cross][f as usize % 4]
    }
}

/// Line dashes, one per `f` (cycled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dash {
    Solid,
    Dashed,
    Dotted,
    Long,
}

impl Dash {
    fn of_f(f: u16) -> Dash {
        [Dash::Solid, Dash::Dashed, Dash::Dotted, Dash::Long][f as usize % 4]
    }
    fn pattern(self) -> Option<(f64, f64)> {
        match self {
            Dash::Solid => None,
            Dash::Dashed => Some((6.0, 4.0)),
            Dash::Dotted => Some((2.0, 3.0)),
            Dash::Long => Some((14.0, 5.0)),
        }
    }
}

type Chart<'a, DB, Y> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>;

/// A figure drawn the same way on any backend.
trait Figure {
    fn name(&self) -> &'static str;
    fn title(&self) -> String;
    /// Draw into `root`; returns the number of marks drawn.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, px: Px) -> Result<usize>
    where
        DB::ErrorType: 'static;
}

/// Render every plot that applies to `run`; PNG files are written into `out_dir`.
pub fn render_all(run: &RunData, out_dir: &Path) -> Result<Vec<Plot>> {
    font::ensure_registered()?;
    let buckets = Buckets::new(run);
    let mut plots = vec![
        render(&Latency { run }, out_dir)?,
        render(
            &Quantiles {
                run,
                buckets: &buckets,
            },
            out_dir,
        )?,
        render(
            &Throughput {
                run,
                buckets: &buckets,
            },
            out_dir,
        )?,
    ];
    if !run.clocks.is_empty() {
        plots.push(render(&Clocks { run }, out_dir)?);
    }
    if let Some(rates) = run.wire.as_ref().filter(|r| !r.intervals.is_empty()) {
        plots.push(render(&WireRate { run, rates }, out_dir)?);
    }
    Ok(plots)
}

fn render<F: Figure>(fig: &F, out_dir: &Path) -> Result<Plot> {
    let mut svg = String::new();
    let marks = {
        let root = SVGBackend::with_string(&mut svg, (WIDTH_PX, HEIGHT_PX)).into_drawing_area();
        let marks = fig.draw(&root, Px(1.0))?;
        root.present()
            .map_err(|e| anyhow!("cannot draw {} plot: {e}", fig.name()))?;
        marks
    };
    let png_file = format!("{}.png", fig.name());
    let dest = out_dir.join(&png_file);
    crate::store::write_atomic_at(&dest, |tmp| {
        let size = (
            (WIDTH_PX as f64 * PNG_SCALE) as u32,
            (HEIGHT_PX as f64 * PNG_SCALE) as u32,
        );
        let root = BitMapBackend::new(tmp, size).into_drawing_area();
        fig.draw(&root, Px(PNG_SCALE))?;
        root.present()
            .map_err(|e| anyhow!("cannot write {}: {e}", dest.display()))
    })?;
    Ok(Plot {
        name: fig.name(),
        title: fig.title(),
        svg: responsive(svg),
        png_file,
        marks,
    })
}

/// Let the page scale the SVG to its column (plotters writes a fixed width and height
/// next to its viewBox).
fn responsive(svg: String) -> String {
    let fixed = format!("width=\"{WIDTH_PX}\" height=\"{HEIGHT_PX}\"");
    svg.replacen(&fixed, "class=\"plot\" role=\"img\"", 1)
}

/// Error conversion for plotters' backend-specific error types.
fn pe<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("plot drawing failed: {e}")
}

/// Split the root into the chart area and the legend column, filled white.
fn split<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    px: Px,
) -> Result<(DrawingArea<DB, Shift>, DrawingArea<DB, Shift>)>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(pe)?;
    let (w, _) = root.dim_in_pixel();
    Ok(root.split_horizontally(w.saturating_sub(px.u(LEGEND_PX as f64))))
}

/// Time axis end in seconds (at least a millisecond, so the range is never empty).
fn end_s(run: &RunData) -> f64 {
    (run.end_ns as f64 / 1e9).max(1e-3)
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

fn time_label(v: &f64) -> String {
    if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn ms_label(v: &f64) -> String {
    if *v >= 1.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// The chart frame shared by every plot: caption, mesh, axis descriptions.
fn build<'a, DB: DrawingBackend, Y: Ranged<ValueType = f64> + ValueFormatter<f64> + 'a>(
    area: &'a DrawingArea<DB, Shift>,
    px: Px,
    title: &str,
    x_end: f64,
    y: Y,
) -> Result<Chart<'a, DB, Y>>
where
    DB::ErrorType: 'static,
{
    ChartBuilder::on(area)
        .caption(title, px.font(15.0))
        .margin(px.u(8.0))
        .x_label_area_size(px.u(42.0))
        .y_label_area_size(px.u(64.0))
        .build_cartesian_2d(RangedCoordf64::from(0.0..x_end), y)
        .map_err(pe)
}

fn mesh<DB: DrawingBackend, Y: Ranged<ValueType = f64> + ValueFormatter<f64>>(
    chart: &mut Chart<'_, DB, Y>,
    px: Px,
    y_desc: &str,
    y_fmt: &dyn Fn(&f64) -> String,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    chart
        .configure_mesh()
        .x_desc("time since the run started (s)")
        .y_desc(y_desc)
        .x_label_formatter(&time_label)
        .y_label_formatter(y_fmt)
        .label_style(px.font(11.0))
        .axis_desc_style(px.font(12.0))
        .light_line_style(RGBColor(0xee, 0xee, 0xee))
        .bold_line_style(RGBColor(0xd8, 0xd8, 0xd8))
        .draw()
        .map_err(pe)
}

/// Shade every fault window across the plot's full height.
fn shade<DB: DrawingBackend, Y: Ranged<ValueType = f64> + ValueFormatter<f64>>(
    chart: &mut Chart<'_, DB, Y>,
    run: &RunData,
    (y0, y1): (f64, f64),
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let end = end_s(run);
    chart
        .draw_series(run.faults.iter().map(|w| {
            let x0 = secs(w.start_ns);
            let x1 = w.end_ns.map_or(end, secs).max(x0 + end / 2000.0);
            Rectangle::new(
                [(x0, y0), (x1, y1)],
                rgb(w.kind.colour()).mix(0.16).filled(),
            )
        }))
        .map_err(pe)?;
    Ok(())
}

/// The fault kinds of this run as legend entries.
fn fault_entries(run: &RunData) -> Vec<(String, Swatch)> {
    run.fault_kinds()
        .into_iter()
        .map(|k: FaultKind| {
            (
                k.name().to_string(),
                Swatch::Band(rgb(k.colour()).mix(0.35).to_rgba().into_rgb()),
            )
        })
        .collect()
}

trait IntoRgb {
    fn into_rgb(self) -> RGBColor;
}

impl IntoRgb for RGBAColor {
    /// The colour of this translucent colour over white (legend swatches are opaque).
    fn into_rgb(self) -> RGBColor {
        let blend = |c: u8| (c as f64 * self.3 + 255.0 * (1.0 - self.3)).round() as u8;
        RGBColor(blend(self.0), blend(self.1), blend(self.2))
    }
}

fn draw_marker<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    shape: Shape,
    at: (i32, i32),
    size: i32,
    style: ShapeStyle,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    match shape {
        Shape::Circle => area.draw(&Circle::new(at, size, style)),
        Shape::Triangle => area.draw(&TriangleMarker::new(at, size + 1, style)),
        Shape::Square => area.draw(&Rectangle::new(
            [(at.0 - size, at.1 - size), (at.0 + size, at.1 + size)],
            style,
        )),
        Shape::Cross => area.draw(&Cross::new(at, size, style)),
    }
    .map_err(pe)
}

/// The legend column: a heading per group, then a swatch and a label per entry.
fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    px: Px,
    groups: &[(&str, Vec<(String, Swatch)>)],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let mut y = px.i(34.0);
    let row = px.i(19.0);
    for (heading, entries) in groups.iter().filter(|(_, e)| !e.is_empty()) {
        area.draw(&Text::new(
            heading.to_string(),
            (px.i(6.0), y),
            px.font(11.5),
        ))
        .map_err(pe)?;
        y += row;
        for (label, swatch) in entries {
            if y > area.dim_in_pixel().1 as i32 - row {
                break;
            }
            let mid = (px.i(18.0), y + px.i(6.0));
            match *swatch {
                Swatch::Band(c) => area
                    .draw(&Rectangle::new(
                        [(px.i(8.0), y), (px.i(28.0), y + px.i(12.0))],
                        c.filled(),
                    ))
                    .map_err(pe)?,
                Swatch::Marker(shape, c) => {
                    draw_marker(area, shape, mid, px.i(4.0), c.filled())?;
                }
                Swatch::Line(c, dash) => {
                    let style = c.stroke_width(px.u(2.0));
                    let (x0, x1) = (px.i(6.0), px.i(30.0));
                    match dash.pattern() {
                        None => area.draw(&PathElement::new(vec![(x0, mid.1), (x1, mid.1)], style)),
                        Some((on, off)) => area.draw(&DashedPathElement::new(
                            vec![(x0, mid.1), (x1, mid.1)],
                            px.i(on),
                            px.i(off),
                            style,
                        )),
                    }
                    .map_err(pe)?;
                }
            }
            area.draw(&Text::new(label.clone(), (px.i(36.0), y), px.font(11.0)))
                .map_err(pe)?;
            y += row;
        }
        y += px.i(8.0);
    }
    Ok(())
}

/// `(lo, hi)` powers of ten around the latencies in ms, for a log axis.
fn log_range(lo: f64, hi: f64) -> (f64, f64) {
    let lo = lo.max(1e-3);
    let hi = hi.max(lo);
    let lo = 10f64.powf(lo.log10().floor());
    let hi = 10f64.powf(hi.log10().ceil()).max(lo * 10.0);
    (lo, hi)
}

fn latency_ms(c: &Call) -> Option<f64> {
    c.latency_ns().map(|l| l as f64 / 1e6)
}

/// Latency of every completed op at its invocation time.
struct Latency<'a> {
    run: &'a RunData,
}

impl Figure for Latency<'_> {
    fn name(&self) -> &'static str {
        "latency"
    }

    fn title(&self) -> String {
        "Latency of every completed op".into()
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, px: Px) -> Result<usize>
    where
        DB::ErrorType: 'static,
    {
        let run = self.run;
        let (area, side) = split(root, px)?;
        let lat = run.calls.iter().filter_map(latency_ms);
        let (lo, hi) = lat.fold((f64::MAX, 0f64), |(a, b), l| (a.min(l), b.max(l)));
        let (lo, hi) = if hi == 0.0 {
            (0.1, 1000.0)
        } else {
            log_range(lo, hi)
        };
        let mut chart = build(
            &area,
            px,
            &self.title(),
            end_s(run),
            LogCoord::from((lo..hi).log_scale()),
        )?;
        shade(&mut chart, run, (lo, hi))?;
        mesh(&mut chart, px, "latency (ms, log)", &ms_label)?;

        // One marker per (pixel cell, outcome, f): identical markers on top of each other
        // add nothing. Drawn ok first, so rarer fail and info markers stay on top.
        // The SVG gets coarser cells than the PNG: it is inlined in the page, and at 3 px
        // a saturated scatter looks the same with far fewer elements.
        let cell = if px.0 > 1.0 { px.i(2.0) } else { 3 };
        let mut seen: HashSet<(i32, i32, u8, u16)> = HashSet::new();
        let mut marks = 0;
        for outcome in [Outcome::Ok, Outcome::Fail, Outcome::Info] {
            let colour = rgb(outcome.colour());
            let mut pts: Vec<((f64, f64), Shape)> = Vec::new();
            for c in run.calls.iter().filter(|c| c.outcome == outcome) {
                let Some(l) = latency_ms(c) else { continue };
                let p = (secs(c.start_ns), l.clamp(lo, hi));
                let (x, y) = chart.backend_coord(&p);
                if seen.insert((x / cell, y / cell, outcome.code(), c.f)) {
                    pts.push((p, Shape::of_f(c.f)));
                }
            }
            marks += pts.len();
            let style = colour.mix(0.75).filled();
            let size = px.i(2.5);
            for shape in [Shape::Circle, Shape::Triangle, Shape::Square, Shape::Cross] {
                let these = pts.iter().filter(|(_, s)| *s == shape).map(|(p, _)| *p);
                match shape {
                    Shape::Circle => chart.draw_series(these.map(|p| Circle::new(p, size, style))),
                    Shape::Triangle => {
                        chart.draw_series(these.map(|p| TriangleMarker::new(p, size + 1, style)))
                    }
                    Shape::Square => chart.draw_series(these.map(|p| {
                        EmptyElement::at(p) + Rectangle::new([(-size, -size), (size, size)], style)
                    })),
                    Shape::Cross => chart.draw_series(
                        these.map(|p| Cross::new(p, size, colour.stroke_width(px.u(1.5)))),
                    ),
                }
                .map_err(pe)?;
            }
        }
        let outcomes: Vec<(String, Swatch)> = [Outcome::Ok, Outcome::Fail, Outcome::Info]
            .into_iter()
            .filter(|o| run.calls.iter().any(|c| c.outcome == *o))
            .map(|o| {
                (
                    o.name().to_string(),
                    Swatch::Marker(Shape::Circle, rgb(o.colour())),
                )
            })
            .collect();
        let fs: Vec<(String, Swatch)> = run
            .fs
            .iter()
            .enumerate()
            .map(|(i, f)| {
                (
                    f.clone(),
                    Swatch::Marker(Shape::of_f(i as u16), RGBColor(0x55, 0x55, 0x55)),
                )
            })
            .collect();
        legend(
            &side,
            px,
            &[
                ("outcome", outcomes),
                ("f", fs),
                ("faults", fault_entries(run)),
            ],
        )?;
        Ok(marks)
    }
}

/// Time buckets shared by the quantile and throughput plots.
struct Buckets {
    width_s: f64,
    /// Per bucket: latencies (ms) of the ops invoked in it and completed.
    latencies: Vec<Vec<f64>>,
    /// Per (f, outcome), per bucket: completions in the bucket.
    counts: Vec<((u16, Outcome), Vec<u32>)>,
}

impl Buckets {
    fn new(run: &RunData) -> Buckets {
        let end = end_s(run);
        let nice = [
            0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0,
            600.0, 1800.0, 3600.0,
        ];
        let width_s = nice
            .into_iter()
            .find(|w| end / w <= MAX_BUCKETS)
            .unwrap_or(end / MAX_BUCKETS);
        let n = ((end / width_s).ceil() as usize).max(1);
        let slot = |ns: u64| ((secs(ns) / width_s) as usize).min(n - 1);
        let mut latencies = vec![Vec::new(); n];
        let mut counts: Vec<((u16, Outcome), Vec<u32>)> = Vec::new();
        for c in &run.calls {
            let (Some(l), Some(end_ns)) = (latency_ms(c), c.end_ns) else {
                continue;
            };
            latencies[slot(c.start_ns)].push(l);
            let key = (c.f, c.outcome);
            let i = match counts.iter().position(|(k, _)| *k == key) {
                Some(i) => i,
                None => {
                    counts.push((key, vec![0; n]));
                    counts.len() - 1
                }
            };
            counts[i].1[slot(end_ns)] += 1;
        }
        counts.sort_by_key(|(k, _)| (k.1, k.0));
        for l in &mut latencies {
            l.sort_by(f64::total_cmp);
        }
        Buckets {
            width_s,
            latencies,
            counts,
        }
    }

    fn mid(&self, i: usize) -> f64 {
        (i as f64 + 0.5) * self.width_s
    }
}

/// The `q` quantile of sorted `v` (nearest rank).
fn quantile(v: &[f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1])
}

/// Runs of consecutive `Some` points, so a line breaks where a bucket has no data.
fn segments(points: impl Iterator<Item = Option<(f64, f64)>>) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for p in points {
        match p {
            Some(p) => out.last_mut().map(|s| s.push(p)).unwrap_or(()),
            None => {
                if out.last().is_some_and(|s| !s.is_empty()) {
                    out.push(Vec::new());
                }
            }
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

fn draw_line<DB: DrawingBackend, Y: Ranged<ValueType = f64> + ValueFormatter<f64>>(
    chart: &mut Chart<'_, DB, Y>,
    px: Px,
    points: Vec<(f64, f64)>,
    colour: RGBColor,
    dash: Dash,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let style = colour.stroke_width(px.u(1.8));
    if points.len() == 1 {
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, px.i(2.5), colour.filled())),
            )
            .map_err(pe)?;
        return Ok(());
    }
    match dash.pattern() {
        None => chart
            .draw_series(LineSeries::new(points, style))
            .map(|_| ()),
        Some((on, off)) => chart
            .draw_series(DashedLineSeries::new(points, px.i(on), px.i(off), style))
            .map(|_| ()),
    }
    .map_err(pe)
}

/// p50, p95, p99 and max latency per time bucket.
struct Quantiles<'a> {
    run: &'a RunData,
    buckets: &'a Buckets,
}

const QUANTILES: [(&str, f64, (u8, u8, u8)); 4] = [
    ("p50", 0.50, (0x2b, 0x6c, 0xb0)),
    ("p95", 0.95, (0x2c, 0xa0, 0x2c)),
    ("p99", 0.99, (0xf0, 0x8c, 0x00)),
    ("max", 1.00, (0xd6, 0x27, 0x28)),
];

impl Figure for Quantiles<'_> {
    fn name(&self) -> &'static str {
        "latency-quantiles"
    }

    fn title(&self) -> String {
        format!(
            "Latency quantiles of completed ops per {} s",
            time_label(&self.buckets.width_s)
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, px: Px) -> Result<usize>
    where
        DB::ErrorType: 'static,
    {
        let (run, b) = (self.run, self.buckets);
        let (area, side) = split(root, px)?;
        let all = b.latencies.iter().flatten();
        let (lo, hi) = all.fold((f64::MAX, 0f64), |(a, c), &l| (a.min(l), c.max(l)));
        let (lo, hi) = if hi == 0.0 {
            (0.1, 1000.0)
        } else {
            log_range(lo, hi)
        };
        let mut chart = build(
            &area,
            px,
            &self.title(),
            end_s(run),
            LogCoord::from((lo..hi).log_scale()),
        )?;
        shade(&mut chart, run, (lo, hi))?;
        mesh(&mut chart, px, "latency (ms, log)", &ms_label)?;
        let mut marks = 0;
        for (_, q, colour) in QUANTILES {
            let pts = b
                .latencies
                .iter()
                .enumerate()
                .map(|(i, l)| quantile(l, q).map(|v| (b.mid(i), v.clamp(lo, hi))));
            for seg in segments(pts) {
                marks += seg.len();
                draw_line(&mut chart, px, seg, rgb(colour), Dash::Solid)?;
            }
        }
        let entries = QUANTILES
            .iter()
            .map(|(n, _, c)| (n.to_string(), Swatch::Line(rgb(*c), Dash::Solid)))
            .collect();
        legend(
            &side,
            px,
            &[("quantile", entries), ("faults", fault_entries(run))],
        )?;
        Ok(marks)
    }
}

/// Completions per second per time bucket, per `f` and outcome.
struct Throughput<'a> {
    run: &'a RunData,
    buckets: &'a Buckets,
}

impl Figure for Throughput<'_> {
    fn name(&self) -> &'static str {
        "throughput"
    }

    fn title(&self) -> String {
        format!(
            "Throughput: completions per second, per {} s",
            time_label(&self.buckets.width_s)
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, px: Px) -> Result<usize>
    where
        DB::ErrorType: 'static,
    {
        let (run, b) = (self.run, self.buckets);
        let (area, side) = split(root, px)?;
        let rate = |n: u32| n as f64 / b.width_s;
        let top = b
            .counts
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .max()
            .map_or(1.0, rate)
            .max(1.0)
            * 1.08;
        let mut chart = build(
            &area,
            px,
            &self.title(),
            end_s(run),
            RangedCoordf64::from(0.0..top),
        )?;
        shade(&mut chart, run, (0.0, top))?;
        mesh(&mut chart, px, "ops / s", &|v| format!("{v:.0}"))?;
        let mut marks = 0;
        let mut entries = Vec::new();
        for ((f, outcome), counts) in &b.counts {
            let pts: Vec<(f64, f64)> = counts
                .iter()
                .enumerate()
                .map(|(i, &n)| (b.mid(i), rate(n)))
                .collect();
            marks += pts.len();
            let colour = rgb(outcome.colour());
            draw_line(&mut chart, px, pts, colour, Dash::of_f(*f))?;
            let name = run.fs.get(*f as usize).map_or("?", String::as_str);
            entries.push((
                format!("{name} {}", outcome.name()),
                Swatch::Line(colour, Dash::of_f(*f)),
            ));
        }
        legend(
            &side,
            px,
            &[("f and outcome", entries), ("faults", fault_entries(run))],
        )?;
        Ok(marks)
    }
}

/// Each node's clock offset over time.
struct Clocks<'a> {
    run: &'a RunData,
}

/// Node line colours (apart from the outcome colours, which mean something else).
const NODE_COLOURS: [(u8, u8, u8); 8] = [
    (0x1b, 0x9e, 0x77),
    (0xd9, 0x5f, 0x02),
    (0x75, 0x70, 0xb3),
    (0xe7, 0x29, 0x8a),
    (0x66, 0xa6, 0x1e),
    (0xa6, 0x76, 0x1d),
    (0x1f, 0x78, 0xb4),
    (0x66, 0x66, 0x66),
];

impl Figure for Clocks<'_> {
    fn name(&self) -> &'static str {
        "clock"
    }

    fn title(&self) -> String {
        "Clock offset of each node".into()
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, px: Px) -> Result<usize>
    where
        DB::ErrorType: 'static,
    {
        let run = self.run;
        let (area, side) = split(root, px)?;
        let all = run.clocks.values().flat_map(|t| {
            t.steps
                .iter()
                .map(|s| s.1)
                .chain(t.bands.iter().map(|b| b.2))
        });
        let (lo, hi) = all.fold((0i64, 0i64), |(a, b), o| (a.min(o), b.max(o)));
        // Seconds when offsets are large, so labels stay short.
        let (unit, div) = if lo.abs().max(hi.abs()) >= 2000 {
            ("s", 1000.0)
        } else {
            ("ms", 1.0)
        };
        let pad = ((hi - lo) as f64 / div * 0.1).max(1.0);
        let (y0, y1) = (lo as f64 / div - pad, hi as f64 / div + pad);
        let end = end_s(run);
        let mut chart = build(&area, px, &self.title(), end, RangedCoordf64::from(y0..y1))?;
        shade(&mut chart, run, (y0, y1))?;
        mesh(&mut chart, px, &format!("offset ({unit})"), &|v| {
            format!("{v:+}")
        })?;
        let mut marks = 0;
        let mut entries = Vec::new();
        for (i, (node, track)) in run.clocks.iter().enumerate() {
            let colour = rgb(NODE_COLOURS[i % NODE_COLOURS.len()]);
            chart
                .draw_series(track.bands.iter().map(|&(s, e, o)| {
                    Rectangle::new(
                        [(secs(s), 0.0), (secs(e), o as f64 / div)],
                        colour.mix(0.3).filled(),
                    )
                }))
                .map_err(pe)?;
            let mut pts = vec![(0.0, 0.0)];
            let mut prev = 0.0;
            for &(t, o) in &track.steps {
                let v = o as f64 / div;
                pts.push((secs(t), prev));
                pts.push((secs(t), v));
                prev = v;
            }
            pts.push((end, prev));
            marks += track.steps.len() + track.bands.len();
            draw_line(&mut chart, px, pts, colour, Dash::Solid)?;
            entries.push((node.clone(), Swatch::Line(colour, Dash::Solid)));
        }
        legend(
            &side,
            px,
            &[("node", entries), ("faults", fault_entries(run))],
        )?;
        Ok(marks)
    }
}

/// Peer and client packets per second between successive samples of `wire.jsonl`, drawn
/// as steps: each rate holds over the interval it was measured in.
struct WireRate<'a> {
    run: &'a RunData,
    rates: &'a Rates,
}

const PEER_COLOUR: (u8, u8, u8) = (0x1b, 0x9e, 0x77);
const CLIENT_COLOUR: (u8, u8, u8) = (0x6e, 0x54, 0x94);

impl Figure for WireRate<'_> {
    fn name(&self) -> &'static str {
        WIRE
    }

    fn title(&self) -> String {
        "Packets per second on the wire: between nodes (peer) and between clients and nodes".into()
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, px: Px) -> Result<usize>
    where
        DB::ErrorType: 'static,
    {
        let (run, iv) = (self.run, &self.rates.intervals);
        let (area, side) = split(root, px)?;
        let top = iv
            .iter()
            .map(|i| i.peer_pps.max(i.client_pps))
            .fold(1.0, f64::max)
            * 1.08;
        let end = iv.last().map_or(0.0, |i| secs(i.end_ns)).max(end_s(run));
        let mut chart = build(
            &area,
            px,
            &self.title(),
            end,
            RangedCoordf64::from(0.0..top),
        )?;
        shade(&mut chart, run, (0.0, top))?;
        mesh(&mut chart, px, "packets / s", &|v| format!("{v:.0}"))?;
        let steps = |rate: fn(&super::wire::Interval) -> f64| -> Vec<(f64, f64)> {
            iv.iter()
                .flat_map(|i| [(secs(i.start_ns), rate(i)), (secs(i.end_ns), rate(i))])
                .collect()
        };
        draw_line(
            &mut chart,
            px,
            steps(|i| i.client_pps),
            rgb(CLIENT_COLOUR),
            Dash::Dashed,
        )?;
        draw_line(
            &mut chart,
            px,
            steps(|i| i.peer_pps),
            rgb(PEER_COLOUR),
            Dash::Solid,
        )?;
        let entries = vec![
            (
                "peer".to_string(),
                Swatch::Line(rgb(PEER_COLOUR), Dash::Solid),
            ),
            (
                "client".to_string(),
                Swatch::Line(rgb(CLIENT_COLOUR), Dash::Dashed),
            ),
        ];
        legend(
            &side,
            px,
            &[("packets / s", entries), ("faults", fault_entries(run))],
        )?;
        Ok(iv.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_uses_nearest_rank() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&v, 0.5), Some(2.0));
        assert_eq!(quantile(&v, 1.0), Some(4.0));
        assert_eq!(quantile(&v, 0.99), Some(4.0));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn lines_break_where_buckets_are_empty() {
        let s = segments(
            [
                Some((0.0, 1.0)),
                None,
                None,
                Some((3.0, 1.0)),
                Some((4.0, 2.0)),
            ]
            .into_iter(),
        );
        assert_eq!(s, vec![vec![(0.0, 1.0)], vec![(3.0, 1.0), (4.0, 2.0)]]);
    }

    #[test]
    fn log_range_spans_whole_decades() {
        assert_eq!(log_range(0.3, 42.0), (0.1, 100.0));
        assert_eq!(log_range(5.0, 5.0), (1.0, 10.0));
    }
}

#[cfg(test)]
mod render_tests {
    use super::*;
    use crate::report::sample;
    use serde_json::json;

    #[test]
    fn renders_every_plot_as_svg_and_png_with_bundled_font() {
        let dir = std::env::temp_dir().join(format!("fl-plots-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let run = RunData::from_parts(
            &dir,
            json!({}),
            serde_json::Value::Null,
            sample::history(3000, 6, 3, 1),
        );
        let plots = render_all(&run, &dir).unwrap();
        let names: Vec<&str> = plots.iter().map(|p| p.name).collect();
        assert_eq!(
            names,
            vec!["latency", "latency-quantiles", "throughput", "clock"]
        );
        for p in &plots {
            assert!(p.svg.starts_with("<svg"), "{}", &p.svg[..40]);
            assert!(
                p.svg.contains("partition") && p.svg.contains("clock"),
                "legend in {}",
                p.name
            );
            assert!(p.marks > 0, "{} drew nothing", p.name);
            let png = std::fs::read(dir.join(&p.png_file)).unwrap();
            assert_eq!(&png[1..4], b"PNG");
        }
        if std::env::var_os("FL_KEEP_PLOTS").is_none() {
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
}
