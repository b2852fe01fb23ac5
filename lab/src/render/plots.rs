//! The run's plots, as SVG strings (plotters' SVG backend, text measured with the embedded
//! DejaVu Sans). One file per plot; a plot whose experiment the run lacks is not produced.
//! Every plot carries a title and a provenance line (machine, short git sha, mode, run id),
//! labelled axes with units, and a legend when it shows several series.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{checkpoint_record_of_current_shape, fmt, of};
use crate::record::{Env, Record};

/// The font family the plots ask for; registered from lab/assets/DejaVuSans.ttf.
const FONT: &str = "sans-serif";
static FONT_DATA: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// Default plot size.
const SIZE: (u32, u32) = (800, 500);

/// A rendered plot.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plot {
    /// File stem: `plots/<name>.svg`.
    pub name: String,
    /// The experiment it shows.
    pub experiment: String,
    /// Its title (also the alt text and caption elsewhere).
    pub title: String,
    /// The SVG document.
    pub svg: String,
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Colours of successive series (Tableau 10).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
const GREY: RGBColor = RGBColor(110, 110, 110);
const GRID: RGBColor = RGBColor(228, 228, 228);
const CLAIM: RGBColor = RGBColor(200, 30, 30);

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

fn pe<E: std::fmt::Display>(e: E) -> String {
    format!("plot: {e}")
}

fn ensure_font() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font(FONT, FontStyle::Normal, FONT_DATA)
                .map_err(|_| "plot: lab/assets/DejaVuSans.ttf is not a usable font".to_string())
        })
        .clone()
}

/// Every plot the run's records allow, in a fixed order.
pub(crate) fn render_plots(env: &Env, records: &[Record]) -> Result<Vec<Plot>, String> {
    ensure_font()?;
    type Render = fn(&Env, &[&Record]) -> Result<Plot, String>;
    let single: [(&str, Render); 5] = [
        ("io", io_plot),
        ("checkpoint", checkpoint_plot_legacy),
        ("progress", progress_plot),
        ("latency", latency_plot),
        ("bandwidth", bandwidth_plot),
    ];
    let mut plots = Vec::new();
    let scaling = of(records, "scaling");
    if !scaling.is_empty() {
        plots.extend(scaling_plots(env, &scaling)?);
    }
    let deps = of(records, "deps");
    if !deps.is_empty() {
        plots.push(deps_plot(env, &deps)?);
    }
    for (experiment, render) in single {
        let rs = of(records, experiment);
        if rs.is_empty() {
            continue;
        }
        let current: Vec<&Record> = rs.iter().copied().filter(|r| checkpoint_record_of_current_shape(r)).collect();
        if experiment == "checkpoint" && !current.is_empty() {
            plots.extend(checkpoint_plots(env, &current)?);
        } else {
            plots.push(render(env, &rs)?);
        }
    }
    Ok(plots)
}

/// Renders an SVG document of `size` with a white background, a title and the provenance line;
/// `draw` gets the area below them.
fn document(
    size: (u32, u32),
    title: &str,
    env: &Env,
    draw: impl FnOnce(&Area<'_>) -> Result<(), String>,
) -> Result<String, String> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
        root.fill(&WHITE).map_err(pe)?;
        root.draw_text(title, &(FONT, 20).into_font().color(&BLACK), (14, 10)).map_err(pe)?;
        root.draw_text(&fmt::provenance_line(env), &(FONT, 13).into_font().color(&GREY), (14, 36)).map_err(pe)?;
        let (_, body) = root.split_vertically(58);
        draw(&body)?;
        root.present().map_err(pe)?;
    }
    Ok(buf)
}

fn plot(name: &str, experiment: &str, title: &str, svg: String) -> Plot {
    Plot { name: name.into(), experiment: experiment.into(), title: title.into(), svg }
}

// ---------------------------------------------------------------------------------------------
// A line chart with key points chosen here (so ticks sit exactly on the measured x values).

struct Series {
    name: String,
    points: Vec<(f64, f64)>,
    color: RGBColor,
    dashed: bool,
    markers: bool,
    marker: Marker,
    width: u32,
}

/// The shape of a series' point markers.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Marker {
    Circle,
    Square,
    Triangle,
    Cross,
}

impl Series {
    fn line(name: impl Into<String>, points: Vec<(f64, f64)>, color: RGBColor) -> Series {
        Series { name: name.into(), points, color, dashed: false, markers: true, marker: Marker::Circle, width: 2 }
    }
    /// Marks the points with `m` (also on a dashed line).
    fn marked(mut self, m: Marker) -> Series {
        self.markers = true;
        self.marker = m;
        self
    }
    fn dashed(mut self) -> Series {
        self.dashed = true;
        self.markers = false;
        self
    }
    fn thin(mut self) -> Series {
        self.width = 1;
        self.markers = false;
        self
    }
}

/// A horizontal reference line across the whole plot.
struct HLine {
    y: f64,
    name: String,
    color: RGBColor,
}

/// A shaded horizontal band.
struct Band {
    y0: f64,
    y1: f64,
    name: String,
    color: RGBColor,
}

struct Xy<'a> {
    caption: Option<String>,
    x_desc: String,
    y_desc: String,
    x_range: (f64, f64),
    x_keys: Vec<f64>,
    x_label: &'a dyn Fn(f64) -> String,
    y_range: (f64, f64),
    y_log: bool,
    series: Vec<Series>,
    hlines: Vec<HLine>,
    bands: Vec<Band>,
    legend: SeriesLabelPosition,
    /// Raise the y range so that the data stays below an upper legend.
    reserve_legend: bool,
    /// The caller draws the legend beside the chart ([`draw_side_legend`]), none inside it.
    side_legend: bool,
}

/// A numeric axis, linear or logarithmic, whose ticks are exactly the key points given (so they
/// sit on the measured values or categories).
#[derive(Clone)]
struct Axis {
    lo: f64,
    hi: f64,
    keys: Vec<f64>,
    log: bool,
}

impl Axis {
    fn linear(lo: f64, hi: f64, keys: Vec<f64>) -> Axis {
        Axis { lo, hi, keys, log: false }
    }
}

impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let t = |x: f64| if self.log { x.max(f64::MIN_POSITIVE).ln() } else { x };
        let (a, b) = (t(self.lo), t(self.hi));
        let len = limit.1 - limit.0;
        if a == b || len == 0 {
            return limit.0 + len / 2;
        }
        let frac = (t(*v) - a) / (b - a);
        if frac.is_nan() {
            return limit.0;
        }
        if frac.is_infinite() {
            return if frac > 0.0 { limit.1 } else { limit.0 };
        }
        if len > 0 {
            limit.0 + (len as f64 * frac + 1e-3).floor() as i32
        } else {
            limit.0 + (len as f64 * frac - 1e-3).ceil() as i32
        }
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.keys.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

/// The fraction of a plot's height a legend of `entries` lines takes (at the top).
fn legend_fraction(area: &Area<'_>, entries: usize, caption: bool) -> f64 {
    let h = area.dim_in_pixel().1 as f64 - 66.0 - if caption { 24.0 } else { 0.0 };
    if h <= 0.0 {
        return 0.0;
    }
    ((entries as f64 * 15.0 + 30.0) / h).clamp(0.0, 0.6)
}

fn draw_xy(area: &Area<'_>, spec: &Xy<'_>) -> Result<(), String> {
    let (lo, mut hi) = spec.y_range;
    let entries = spec.series.len() + spec.hlines.len() + spec.bands.len();
    let upper = matches!(spec.legend, SeriesLabelPosition::UpperLeft | SeriesLabelPosition::UpperRight);
    if spec.reserve_legend && upper && entries > 1 && !spec.y_log {
        // raise the top so that the data stays below the legend
        hi = lo + (hi - lo) / (1.0 - legend_fraction(area, entries, spec.caption.is_some()));
    }
    let y = if spec.y_log {
        Axis { lo, hi, keys: log_keys(lo, hi), log: true }
    } else {
        Axis::linear(lo, hi, linear_keys(lo, hi))
    };
    let (x0, x1) = spec.x_range;
    let x = Axis::linear(x0, x1, spec.x_keys.clone());
    let mut builder = ChartBuilder::on(area);
    builder.margin(10).margin_right(28).x_label_area_size(46).y_label_area_size(72);
    if let Some(c) = &spec.caption {
        builder.caption(c, (FONT, 15));
    }
    let mut chart = builder.build_cartesian_2d(x, y).map_err(pe)?;
    let x_label = |v: &f64| (spec.x_label)(*v);
    let y_label = |v: &f64| fmt::axis(*v);
    chart
        .configure_mesh()
        .x_desc(spec.x_desc.as_str())
        .y_desc(spec.y_desc.as_str())
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .bold_line_style(GRID)
        .draw()
        .map_err(pe)?;

    let mut labelled = 0;
    for band in &spec.bands {
        let c = band.color;
        chart
            .draw_series(std::iter::once(Rectangle::new([(x0, band.y0), (x1, band.y1)], c.mix(0.15).filled())))
            .map_err(pe)?
            .label(band.name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], c.mix(0.15).filled()));
        labelled += 1;
    }
    for h in &spec.hlines {
        let c = h.color;
        chart
            .draw_series(DashedLineSeries::new(vec![(x0, h.y), (x1, h.y)], 6, 4, c.stroke_width(1)))
            .map_err(pe)?
            .label(h.name.as_str())
            .legend(move |(x, y)| DashedPathElement::new(vec![(x, y), (x + 20, y)], 6, 4, c.stroke_width(1)));
        labelled += 1;
    }
    for s in &spec.series {
        let c = s.color;
        let w = s.width;
        let anno = if s.dashed {
            chart.draw_series(DashedLineSeries::new(s.points.clone(), 7, 4, c.stroke_width(w))).map_err(pe)?
        } else {
            chart.draw_series(LineSeries::new(s.points.clone(), c.stroke_width(w))).map_err(pe)?
        };
        if s.dashed {
            anno.label(s.name.as_str())
                .legend(move |(x, y)| DashedPathElement::new(vec![(x, y), (x + 20, y)], 7, 4, c.stroke_width(w)));
        } else {
            anno.label(s.name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(w)));
        }
        labelled += 1;
        if s.markers {
            match s.marker {
                Marker::Circle => chart.draw_series(s.points.iter().map(|p| Circle::new(*p, 3, c.filled()))),
                Marker::Square => chart.draw_series(
                    s.points.iter().map(|p| EmptyElement::at(*p) + Rectangle::new([(-3, -3), (3, 3)], c.filled())),
                ),
                Marker::Triangle => chart.draw_series(s.points.iter().map(|p| TriangleMarker::new(*p, 5, c.filled()))),
                Marker::Cross => chart.draw_series(s.points.iter().map(|p| Cross::new(*p, 4, c.stroke_width(2)))),
            }
            .map_err(pe)?;
        }
    }
    if labelled > 1 && !spec.side_legend {
        chart
            .configure_series_labels()
            .position(spec.legend.clone())
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(190, 190, 190))
            .label_font((FONT, 12))
            .draw()
            .map_err(pe)?;
    }
    Ok(())
}

/// Ticks at 1, 2 or 5 times a power of ten, about six of them.
fn linear_keys(lo: f64, hi: f64) -> Vec<f64> {
    let span = hi - lo;
    if span.is_nan() || span <= 0.0 || !span.is_finite() {
        return vec![lo];
    }
    let raw = span / 6.0;
    let mag = 10f64.powi(raw.log10().floor() as i32);
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// Ticks at powers of ten, with 2x and 5x between them when the range spans few decades.
fn log_keys(lo: f64, hi: f64) -> Vec<f64> {
    let d0 = lo.log10().floor() as i32;
    let d1 = hi.log10().ceil() as i32;
    let mults: &[f64] = if d1 - d0 <= 2 { &[1.0, 2.0, 5.0] } else { &[1.0] };
    let mut keys = vec![];
    for d in d0..=d1 {
        for m in mults {
            let v = m * 10f64.powi(d);
            if v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9) {
                keys.push(v);
            }
        }
    }
    keys
}

/// A log range of whole decades around the values.
fn log_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, 0f64);
    for v in values.filter(|v| *v > 0.0 && v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (1.0, 10.0);
    }
    let lo = 10f64.powi(lo.log10().floor() as i32);
    let mut hi = 10f64.powi(hi.log10().ceil() as i32);
    if hi <= lo {
        hi = lo * 10.0;
    }
    (lo, hi)
}

/// `0 .. max * 1.1` (at least `at_least`).
fn zero_range(values: impl Iterator<Item = f64>, at_least: f64) -> (f64, f64) {
    let max = values.filter(|v| v.is_finite()).fold(at_least, f64::max);
    let max = if max > 0.0 { max } else { 1.0 };
    (0.0, max * 1.1)
}

/// The label at a categorical position (`v` near an integer index), else nothing.
fn category(labels: &[String], v: f64) -> String {
    let i = v.round();
    if (v - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < labels.len() {
        labels[i as usize].clone()
    } else {
        String::new()
    }
}

fn workers(r: &Record) -> Option<f64> {
    r.p_num("workers")
}

/// Points (x = workers, y = metric) of `records`, sorted by workers.
fn by_workers(records: &[&Record], metric: &str) -> Vec<(f64, f64)> {
    let mut pts: Vec<(f64, f64)> =
        records.iter().filter_map(|r| Some((workers(r)?, r.get(metric)?))).filter(|(_, y)| y.is_finite()).collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    pts
}

/// Records grouped by a string parameter (BTreeMap: sorted, deterministic).
fn group_by<'a>(records: &[&'a Record], key: &str) -> BTreeMap<String, Vec<&'a Record>> {
    let mut groups: BTreeMap<String, Vec<&Record>> = BTreeMap::new();
    for r in records {
        groups.entry(r.p_str(key).unwrap_or("-").to_string()).or_default().push(r);
    }
    groups
}

/// Records grouped by preset, and by executor as well when the records have several.
fn group_by_preset<'a>(records: &[&'a Record]) -> BTreeMap<String, Vec<&'a Record>> {
    let executors: BTreeSet<&str> = records.iter().filter_map(|r| r.p_str("executor")).collect();
    if executors.len() <= 1 {
        return group_by(records, "preset");
    }
    let mut groups: BTreeMap<String, Vec<&Record>> = BTreeMap::new();
    for r in records {
        let key = format!("{} ({})", r.p_str("preset").unwrap_or("-"), r.p_str("executor").unwrap_or("-"));
        groups.entry(key).or_default().push(r);
    }
    groups
}

/// Distinct worker counts and the x range around them.
fn worker_axis(records: &[&Record]) -> (Vec<f64>, (f64, f64)) {
    let set: BTreeSet<u64> = records.iter().filter_map(|r| workers(r)).map(|w| w as u64).collect();
    let keys: Vec<f64> = set.iter().map(|w| *w as f64).collect();
    let min = keys.first().copied().unwrap_or(1.0).max(1.0);
    let max = keys.last().copied().unwrap_or(1.0).max(1.0);
    let pad = max * 0.04 + 0.3;
    (keys, ((min - pad).max(0.0), max + pad))
}

fn integer_label(v: f64) -> String {
    fmt::axis(v)
}

// ---------------------------------------------------------------------------------------------
// scaling

/// One of the scaling plots: a quantity against the worker counts.
struct WorkersPanel<'a> {
    name: &'a str,
    title: &'a str,
    y_desc: &'a str,
    series: Vec<Series>,
    /// The y axis reaches at least this high.
    y_floor: f64,
    hlines: Vec<HLine>,
    legend: SeriesLabelPosition,
    reserve_legend: bool,
}

fn workers_plot(env: &Env, keys: &[f64], x_range: (f64, f64), p: WorkersPanel<'_>) -> Result<Plot, String> {
    let y_range = zero_range(p.series.iter().flat_map(|s| s.points.iter().map(|q| q.1)), p.y_floor);
    let svg = document(SIZE, p.title, env, |area| {
        draw_xy(
            area,
            &Xy {
                caption: None,
                x_desc: "workers".into(),
                y_desc: p.y_desc.into(),
                x_range,
                x_keys: keys.to_vec(),
                x_label: &integer_label,
                y_range,
                y_log: false,
                series: p.series,
                hlines: p.hlines,
                bands: vec![],
                legend: p.legend,
                reserve_legend: p.reserve_legend,
                side_legend: false,
            },
        )
    })?;
    Ok(plot(p.name, "scaling", p.title, svg))
}

fn scaling_plots(env: &Env, records: &[&Record]) -> Result<Vec<Plot>, String> {
    let presets = group_by_preset(records);
    let (keys, x_range) = worker_axis(records);
    let max_w = keys.last().copied().unwrap_or(1.0);
    let per_preset = |metric: &str| -> Vec<Series> {
        presets
            .iter()
            .enumerate()
            .map(|(i, (p, rs))| Series::line(p.as_str(), by_workers(rs, metric), color(i)))
            .collect()
    };

    // Speedup with the whole-recovery bound as the ceiling; records from before that bound
    // keep the plot they had, the ideal line and the replay work/span bound.
    let whole = records.iter().any(|r| r.get("whole_bound").is_some());
    let speedup_plot = if whole { Some(speedup_against_whole_bound(env, &presets, &keys, x_range)?) } else { None };
    let mut speedup = vec![Series::line("ideal (speedup = workers)", vec![(1.0, 1.0), (max_w, max_w)], GREY).thin()];
    if !whole {
        for (i, (p, rs)) in presets.iter().enumerate() {
            speedup.push(Series::line(format!("{p} measured"), by_workers(rs, "speedup"), color(i)));
            let bound = by_workers(rs, "bound");
            if !bound.is_empty() {
                speedup.push(Series::line(format!("{p} work/span bound"), bound, color(i)).dashed());
            }
        }
    }
    let panels = [
        WorkersPanel {
            name: "scaling-throughput",
            title: "Scaling: recovery throughput vs workers",
            y_desc: "throughput (MB/s)",
            series: per_preset("throughput_mb_s"),
            y_floor: 0.0,
            hlines: vec![],
            legend: SeriesLabelPosition::UpperLeft,
            reserve_legend: true,
        },
        WorkersPanel {
            name: "scaling-speedup",
            title: "Scaling: speedup over the same run's 1-worker median",
            y_desc: "speedup (x)",
            series: speedup,
            y_floor: 1.0,
            hlines: vec![],
            legend: SeriesLabelPosition::UpperLeft,
            reserve_legend: false,
        },
        // Efficiency, with the linear-scaling threshold.
        WorkersPanel {
            name: "scaling-efficiency",
            title: "Scaling: parallel efficiency (speedup / workers)",
            y_desc: "efficiency (fraction)",
            series: per_preset("efficiency"),
            y_floor: 1.0,
            hlines: vec![HLine { y: 0.8, name: "0.8 (linear-scaling claim)".into(), color: CLAIM }],
            legend: SeriesLabelPosition::UpperRight,
            reserve_legend: true,
        },
    ];
    panels
        .into_iter()
        .map(|p| match (&speedup_plot, p.name) {
            (Some(plot), "scaling-speedup") => Ok(plot.clone()),
            _ => workers_plot(env, &keys, x_range, p),
        })
        .collect()
}

/// The marker of the `i`th preset, so that the presets stay apart without colour.
fn preset_marker(i: usize) -> Marker {
    [Marker::Circle, Marker::Square, Marker::Triangle, Marker::Cross][i % 4]
}

/// `scaling-speedup` of records with the whole-recovery bound: each preset's measured speedup
/// under its whole-recovery bound, the ceiling that every phase's work and span set. The
/// replay-only bound stays in the tables: beside three presets it would double the lines, and
/// it overstates the ceiling where the scan and the serial phases take a share of the time.
fn speedup_against_whole_bound(
    env: &Env,
    presets: &BTreeMap<String, Vec<&Record>>,
    keys: &[f64],
    x_range: (f64, f64),
) -> Result<Plot, String> {
    let max_w = keys.last().copied().unwrap_or(1.0);
    let mut series = Vec::new();
    let mut groups: Vec<(String, usize)> = Vec::new();
    for (i, (p, rs)) in presets.iter().enumerate() {
        let first = series.len();
        series.push(Series::line("measured speedup", by_workers(rs, "speedup"), color(i)).marked(preset_marker(i)));
        let bound = by_workers(rs, "whole_bound");
        if !bound.is_empty() {
            series.push(Series::line("whole-recovery bound (ceiling)", bound, color(i)).dashed());
        }
        groups.push((p.clone(), series.len() - first));
    }
    let ideal = Series::line("ideal (speedup = workers)", vec![(1.0, 1.0), (max_w, max_w)], GREY).thin();
    series.push(ideal);
    let y_range = zero_range(series.iter().flat_map(|s| s.points.iter().map(|q| q.1)), 1.0);
    let title = "Scaling: speedup over the same run's 1-worker median, under the whole-recovery bound";
    let svg = document((960, 500), title, env, |area| {
        let (chart, legend) = area.split_horizontally(700);
        let spec = Xy {
            caption: None,
            x_desc: "workers".into(),
            y_desc: "speedup (x)".into(),
            x_range,
            x_keys: keys.to_vec(),
            x_label: &integer_label,
            y_range,
            y_log: false,
            series,
            hlines: vec![],
            bands: vec![],
            legend: SeriesLabelPosition::UpperLeft,
            reserve_legend: false,
            side_legend: true,
        };
        draw_xy(&chart, &spec)?;
        let mut rows = Vec::new();
        let mut at = 0;
        for (p, n) in &groups {
            rows.push(LegendRow::Heading(p.as_str()));
            rows.extend(spec.series[at..at + n].iter().map(LegendRow::Item));
            at += n;
        }
        rows.push(LegendRow::Heading("reference"));
        rows.extend(spec.series[at..].iter().map(LegendRow::Item));
        draw_side_legend(&legend, &rows, 24)
    })?;
    Ok(plot("scaling-speedup", "scaling", title, svg))
}

// ---------------------------------------------------------------------------------------------
// deps

fn deps_rate(r: &Record) -> Option<f64> {
    r.p_num("deps_rate")
}

/// Points (x = dependency density, y = metric) of `records`, sorted by density.
fn by_density(records: &[&Record], metric: &str) -> Vec<(f64, f64)> {
    let mut pts: Vec<(f64, f64)> =
        records.iter().filter_map(|r| Some((deps_rate(r)?, r.get(metric)?))).filter(|(_, y)| y.is_finite()).collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    pts
}

/// `deps`: the speedup with several workers against the dependency density, with the
/// whole-recovery bound (the ceiling) and the replay-only bound beside it, per worker count.
fn deps_plot(env: &Env, records: &[&Record]) -> Result<Plot, String> {
    let mut by_w: BTreeMap<u64, Vec<&Record>> = BTreeMap::new();
    for r in records.iter().copied().filter(|r| workers(r).is_some_and(|w| w > 1.0)) {
        by_w.entry(workers(r).map_or(0, |w| w as u64)).or_default().push(r);
    }
    // No ideal line: at 16 workers it would squeeze the measured speedups and their bound,
    // the comparison this plot is for, into the bottom of the chart.
    let mut series = Vec::new();
    for (i, (w, rs)) in by_w.iter().enumerate() {
        let c = color(i);
        let n = fmt::axis(*w as f64);
        series.push(Series::line(format!("measured speedup, {n} workers"), by_density(rs, "speedup"), c));
        series.push(
            Series::line(format!("whole-recovery bound (ceiling), {n} workers"), by_density(rs, "whole_bound"), c)
                .dashed(),
        );
        series.push(
            Series::line(format!("replay-only bound, {n} workers"), by_density(rs, "bound"), color(i + 5))
                .thin()
                .marked(Marker::Cross),
        );
    }
    series.retain(|s| !s.points.is_empty());
    let rates: BTreeSet<u64> = records.iter().filter_map(|r| deps_rate(r)).map(f64::to_bits).collect();
    let mut x_keys: Vec<f64> = rates.into_iter().map(f64::from_bits).collect();
    x_keys.sort_by(f64::total_cmp);
    let lo = x_keys.first().copied().unwrap_or(0.0);
    let hi = x_keys.last().copied().unwrap_or(1.0);
    let pad = (hi - lo).max(0.1) * 0.05;
    let y_range = zero_range(series.iter().flat_map(|s| s.points.iter().map(|q| q.1)), 1.0);
    let x_label = |v: f64| fmt::axis(v);
    let title = "Dependency density: speedup with every CPU, under the whole-recovery bound";
    let svg = document(SIZE, title, env, |area| {
        draw_xy(
            area,
            &Xy {
                caption: None,
                x_desc: "dependency density (share of writes that are COPY records)".into(),
                y_desc: "speedup over 1 worker (x)".into(),
                x_range: (lo - pad, hi + pad),
                x_keys,
                x_label: &x_label,
                y_range,
                y_log: false,
                series,
                hlines: vec![],
                bands: vec![],
                legend: SeriesLabelPosition::UpperRight,
                reserve_legend: true,
                side_legend: false,
            },
        )
    })?;
    Ok(plot("deps", "deps", title, svg))
}

// ---------------------------------------------------------------------------------------------
// io

const BACKEND_ORDER: [&str; 5] = ["read", "pread", "mmap", "direct", "auto"];
const CONSUMER_ORDER: [&str; 2] = ["scan", "recover"];
const CACHE_ORDER: [&str; 3] = ["warm", "cold", "n/a"];

fn rank(order: &[&str], v: &str) -> usize {
    order.iter().position(|o| *o == v).unwrap_or(order.len())
}

/// (record size key, record label, consumer rank, consumer, cache rank, cache): a cell of the io
/// experiment, in a fixed order.
type IoCell = (u64, String, usize, String, usize, String);

fn io_cell(r: &Record) -> IoCell {
    let consumer = r.p_str("consumer").unwrap_or("-").to_string();
    let (size, record) = fmt::size_param(r, "record");
    (
        size,
        record,
        rank(&CONSUMER_ORDER, &consumer),
        consumer,
        rank(&CACHE_ORDER, &r.cache.state),
        r.cache.state.clone(),
    )
}

/// (backend rank, backend, buffer bytes, config label): a bar variant.
type IoVariant = (usize, String, u64, String);

fn io_variant(r: &Record) -> IoVariant {
    let backend = r.p_str("backend").unwrap_or("-").to_string();
    (
        rank(&BACKEND_ORDER, &backend),
        backend,
        r.p_num("buffer_bytes").map(|v| v as u64).unwrap_or(0),
        r.p_str("config").unwrap_or("").to_string(),
    )
}

fn io_variant_name(v: &IoVariant) -> String {
    if !v.3.is_empty() {
        v.3.clone()
    } else if v.2 == 0 {
        v.1.clone()
    } else {
        format!("{} {}", v.1, fmt::bytes(v.2 as f64))
    }
}

fn io_plot(env: &Env, records: &[&Record]) -> Result<Plot, String> {
    let cells: BTreeSet<IoCell> = records.iter().map(|r| io_cell(r)).collect();
    let cells: Vec<IoCell> = cells.into_iter().collect();
    let variants: BTreeSet<IoVariant> = records.iter().map(|r| io_variant(r)).collect();
    let variants: Vec<IoVariant> = variants.into_iter().collect();
    let several_sizes = cells.iter().map(|c| &c.1).collect::<BTreeSet<_>>().len() > 1;
    let labels: Vec<String> = cells
        .iter()
        .map(|c| if several_sizes { format!("{} · {} · {}", c.1, c.3, c.5) } else { format!("{} · {}", c.3, c.5) })
        .collect();
    let mut values = vec![vec![None; variants.len()]; cells.len()];
    let mut notes = vec![vec![None; variants.len()]; cells.len()];
    let mut ceilings: Vec<Option<f64>> = vec![None; cells.len()];
    for r in records {
        let (Some(ci), Some(vi)) =
            (cells.iter().position(|c| *c == io_cell(r)), variants.iter().position(|v| *v == io_variant(r)))
        else {
            continue;
        };
        values[ci][vi] = r.get("throughput_mb_s");
        if r.p_str("backend") == Some("mmap") {
            notes[ci][vi] = r.get("vs_read").map(|v| format!("{}x", fmt::value(v, "x")));
        }
        if let Some(c) = r.ceiling("seq_read_gb_s") {
            ceilings[ci] = Some(ceilings[ci].map_or(c * 1000.0, |old: f64| old.max(c * 1000.0)));
        }
    }
    let bars = Bars {
        x_desc: if several_sizes { "record size · consumer · cache state" } else { "consumer · cache state" }.into(),
        y_desc: "throughput (MB/s)".into(),
        groups: labels,
        variants: variants.iter().map(io_variant_name).collect(),
        values,
        notes,
        ceilings,
        ceiling_name: "sequential read(2) ceiling, same cache state".into(),
    };
    let width = if cells.len() > 4 { 800 + 70 * (cells.len() as u32 - 4) } else { 800 };
    let title = "I/O backends: journal throughput (labels: mmap vs best read(2))";
    let svg = document((width, 500), title, env, |area| draw_bars(area, &bars))?;
    Ok(plot("io", "io", title, svg))
}

struct Bars {
    x_desc: String,
    y_desc: String,
    groups: Vec<String>,
    variants: Vec<String>,
    /// [group][variant]
    values: Vec<Vec<Option<f64>>>,
    /// Text above a bar, [group][variant].
    notes: Vec<Vec<Option<String>>>,
    /// A reference value per group, drawn as a dashed line over the group.
    ceilings: Vec<Option<f64>>,
    ceiling_name: String,
}

fn draw_bars(area: &Area<'_>, b: &Bars) -> Result<(), String> {
    let n = b.groups.len().max(1) as f64;
    let y_range =
        zero_range(b.values.iter().flatten().flatten().copied().chain(b.ceilings.iter().flatten().copied()), 0.0);
    let entries = b.variants.len() + usize::from(b.ceilings.iter().any(|c| c.is_some()));
    let y_range = (y_range.0, y_range.1 / (1.0 - legend_fraction(area, entries, false)));
    let keys: Vec<f64> = (0..b.groups.len()).map(|i| i as f64 + 0.5).collect();
    let x = Axis::linear(0.0, n, keys);
    let y = Axis::linear(y_range.0, y_range.1, linear_keys(y_range.0, y_range.1));
    let mut chart = ChartBuilder::on(area)
        .margin(10)
        .margin_right(28)
        .x_label_area_size(46)
        .y_label_area_size(72)
        .build_cartesian_2d(x, y)
        .map_err(pe)?;
    let x_label = |v: &f64| category(&b.groups, *v - 0.5);
    let y_label = |v: &f64| fmt::axis(*v);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc(b.x_desc.as_str())
        .y_desc(b.y_desc.as_str())
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .bold_line_style(GRID)
        .draw()
        .map_err(pe)?;
    let k = b.variants.len().max(1) as f64;
    let slot = 0.84 / k;
    for (vi, name) in b.variants.iter().enumerate() {
        let c = color(vi);
        let rects: Vec<Rectangle<(f64, f64)>> = b
            .values
            .iter()
            .enumerate()
            .filter_map(|(gi, row)| {
                let v = row.get(vi).copied().flatten()?;
                let x0 = gi as f64 + 0.08 + slot * vi as f64;
                Some(Rectangle::new([(x0 + slot * 0.06, 0.0), (x0 + slot * 0.94, v)], c.filled()))
            })
            .collect();
        chart
            .draw_series(rects)
            .map_err(pe)?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], c.filled()));
    }
    let style = (FONT, 11).into_font().color(&BLACK).pos(Pos::new(HPos::Center, VPos::Bottom));
    let texts: Vec<Text<'_, (f64, f64), String>> = b
        .notes
        .iter()
        .enumerate()
        .flat_map(|(gi, row)| row.iter().enumerate().map(move |(vi, t)| (gi, vi, t)))
        .filter_map(|(gi, vi, t)| {
            let t = t.as_ref()?;
            let v = b.values.get(gi)?.get(vi).copied().flatten()?;
            let x = gi as f64 + 0.08 + slot * (vi as f64 + 0.5);
            Some(Text::new(t.clone(), (x, v), style.clone()))
        })
        .collect();
    chart.draw_series(texts).map_err(pe)?;
    let mut first = true;
    for (gi, c) in b.ceilings.iter().enumerate() {
        let Some(c) = *c else { continue };
        let pts = vec![(gi as f64 + 0.04, c), (gi as f64 + 0.96, c)];
        let anno = chart.draw_series(DashedLineSeries::new(pts, 6, 4, BLACK.stroke_width(1))).map_err(pe)?;
        if first {
            anno.label(b.ceiling_name.as_str())
                .legend(|(x, y)| DashedPathElement::new(vec![(x, y), (x + 14, y)], 6, 4, BLACK.stroke_width(1)));
            first = false;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(190, 190, 190))
        .label_font((FONT, 12))
        .draw()
        .map_err(pe)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// checkpoint

/// The plot of checkpoint records from before checkpoints were records (image snapshots then):
/// scope skipped and the time ratio by cadence. Kept so that those runs render as they did.
fn checkpoint_plot_legacy(env: &Env, records: &[&Record]) -> Result<Plot, String> {
    let cadences: BTreeSet<u64> = records.iter().filter_map(|r| r.p_num("every_txns")).map(|v| v as u64).collect();
    let cadences: Vec<u64> = cadences.into_iter().collect();
    let labels: Vec<String> = cadences.iter().map(|c| fmt::grouped(*c as f64, 0)).collect();
    let idx = |r: &Record| -> Option<f64> {
        let c = r.p_num("every_txns")? as u64;
        cadences.iter().position(|x| *x == c).map(|i| i as f64)
    };
    let crashes = group_by(records, "crash");
    let points = |rs: &[&Record], metric: &str, scale: f64| -> Vec<(f64, f64)> {
        let mut pts: Vec<(f64, f64)> =
            rs.iter().filter_map(|r| Some((idx(r)?, r.get(metric)? * scale))).filter(|p| p.1.is_finite()).collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        pts
    };
    let mut scope = Vec::new();
    let mut ratio = Vec::new();
    for (i, (crash, rs)) in crashes.iter().enumerate() {
        let c = color(i);
        scope.push(Series::line(
            format!("journal bytes not read, crash {crash}"),
            points(rs, "bytes_skipped", 100.0),
            c,
        ));
        scope.push(
            Series::line(format!("records not replayed, crash {crash}"), points(rs, "records_skipped", 100.0), c)
                .dashed(),
        );
        ratio.push(Series::line(format!("crash {crash}"), points(rs, "time_ratio", 1.0), c));
    }
    let n = cadences.len().max(1) as f64;
    let x_range = (-0.4, n - 0.6);
    let x_keys: Vec<f64> = (0..cadences.len()).map(|i| i as f64).collect();
    let x_label = |v: f64| category(&labels, v);
    let ratio_range = zero_range(ratio.iter().flat_map(|s| s.points.iter().map(|p| p.1)), 1.0);
    let title = "Checkpoints: replay scope skipped, and recovery time, by cadence";
    let svg = document((800, 760), title, env, |area| {
        let (top, bottom) = area.split_vertically(400);
        draw_xy(
            &top,
            &Xy {
                caption: Some("scope skipped with checkpoints".into()),
                x_desc: "checkpoint every N transactions".into(),
                y_desc: "skipped (% of journal bytes / durable records)".into(),
                x_range,
                x_keys: x_keys.clone(),
                x_label: &x_label,
                y_range: (0.0, 105.0),
                y_log: false,
                series: scope,
                hlines: vec![],
                bands: vec![Band { y0: 80.0, y1: 95.0, name: "80-95% (claim)".into(), color: CLAIM }],
                legend: SeriesLabelPosition::LowerLeft,
                reserve_legend: false,
                side_legend: false,
            },
        )?;
        draw_xy(
            &bottom,
            &Xy {
                caption: Some("recovery time with checkpoints / without (same crash image)".into()),
                x_desc: "checkpoint every N transactions".into(),
                y_desc: "time with / without (x)".into(),
                x_range,
                x_keys: x_keys.clone(),
                x_label: &x_label,
                y_range: ratio_range,
                y_log: false,
                series: ratio,
                hlines: vec![HLine { y: 1.0, name: "1.0 (no change)".into(), color: GREY }],
                bands: vec![],
                legend: SeriesLabelPosition::LowerRight,
                reserve_legend: false,
                side_legend: false,
            },
        )
    })?;
    Ok(plot("checkpoint", "checkpoint", title, svg))
}

/// One line of a legend drawn beside a chart: a heading (no sample) or a series' sample.
enum LegendRow<'a> {
    Heading(&'a str),
    Item(&'a Series),
}

/// Draws a legend in its own area beside the chart (so that no label covers a line): each
/// series as a sample of its line and marker, then its name.
fn draw_side_legend(area: &Area<'_>, rows: &[LegendRow<'_>], top: i32) -> Result<(), String> {
    let text = |bold: bool| {
        let font = if bold { (FONT, 13).into_font().color(&BLACK) } else { (FONT, 12).into_font().color(&BLACK) };
        font.pos(Pos::new(HPos::Left, VPos::Center))
    };
    let mut y = top;
    for row in rows {
        match row {
            LegendRow::Heading(h) => {
                if y > top {
                    y += 6;
                }
                area.draw_text(h, &text(true), (4, y)).map_err(pe)?;
            }
            LegendRow::Item(s) => {
                let (x0, x1) = (10, 40);
                let style = s.color.stroke_width(s.width);
                if s.dashed {
                    area.draw(&DashedPathElement::new(vec![(x0, y), (x1, y)], 7, 4, style)).map_err(pe)?;
                } else {
                    area.draw(&PathElement::new(vec![(x0, y), (x1, y)], style)).map_err(pe)?;
                }
                if s.markers {
                    let at = ((x0 + x1) / 2, y);
                    let c = s.color;
                    match s.marker {
                        Marker::Circle => area.draw(&Circle::new(at, 3, c.filled())),
                        Marker::Square => {
                            area.draw(&Rectangle::new([(at.0 - 3, y - 3), (at.0 + 3, y + 3)], c.filled()))
                        }
                        Marker::Triangle => area.draw(&TriangleMarker::new(at, 5, c.filled())),
                        Marker::Cross => area.draw(&Cross::new(at, 4, c.stroke_width(2))),
                    }
                    .map_err(pe)?;
                }
                area.draw_text(&s.name, &text(false), (x1 + 8, y)).map_err(pe)?;
            }
        }
        y += 20;
    }
    Ok(())
}

const MIB: f64 = 1024.0 * 1024.0;

/// Colour and marker of a recovery-time series: with checkpoints in blues, without in
/// oranges/reds; warm solid, cold dashed; every series its own marker.
fn time_style(with: bool, cache: &str) -> (RGBColor, Marker, bool) {
    match (with, cache) {
        (true, "warm") => (PALETTE[0], Marker::Circle, false),
        (false, "warm") => (PALETTE[1], Marker::Square, false),
        (true, _) => (PALETTE[9], Marker::Triangle, true),
        (false, _) => (PALETTE[3], Marker::Cross, true),
    }
}

/// The checkpoint plots of records of the current shape: `checkpoint` (recovery time against
/// the crash's distance from the newest checkpoint record, with and without checkpoints, warm
/// and cold) and, when the records say what checkpoints cost the writer, `checkpoint-writer`.
fn checkpoint_plots(env: &Env, records: &[&Record]) -> Result<Vec<Plot>, String> {
    let mut out = vec![checkpoint_time_plot(env, records)?];
    if records.iter().any(|r| r.get("writer_extra_blocks").is_some() || r.get("writer_checkpoint_ms").is_some()) {
        out.push(checkpoint_writer_plot(env, records)?);
    }
    Ok(out)
}

fn checkpoint_time_plot(env: &Env, records: &[&Record]) -> Result<Plot, String> {
    let caches = group_by_cache(records);
    let mut series = Vec::new();
    let mut headings = Vec::new();
    for (cache, rs) in &caches {
        headings.push(format!("{cache} cache"));
        for (with, metric) in [(true, "time_with_ms"), (false, "time_without_ms")] {
            let mut pts: Vec<(f64, f64)> = rs
                .iter()
                .filter_map(|r| Some((r.get("distance_bytes")? / MIB, r.get(metric)?)))
                .filter(|p| p.0.is_finite() && p.1.is_finite() && p.1 > 0.0)
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
            let (c, m, dashed) = time_style(with, cache);
            let name = if with { "with checkpoints" } else { "without checkpoints" };
            let mut s = Series::line(name, pts, c).marked(m);
            s.dashed = dashed;
            series.push(s);
        }
    }
    let ys: Vec<f64> = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).collect();
    let lo = ys.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = ys.iter().copied().fold(0f64, f64::max);
    let y_log = lo.is_finite() && lo > 0.0 && hi / lo > 10.0;
    let y_range = if y_log { log_range(ys.iter().copied()) } else { zero_range(ys.iter().copied(), 0.0) };
    let max_x = series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).fold(0f64, f64::max);
    let x_hi = if max_x > 0.0 { max_x * 1.06 } else { 1.0 };
    let x_keys = linear_keys(0.0, x_hi);
    let x_label = |v: f64| fmt::axis(v);
    let title = "Checkpoints: recovery time against the crash's distance from the last checkpoint";
    let y_desc = if y_log { "recovery time (ms, log scale)" } else { "recovery time (ms)" };
    let svg = document((960, 540), title, env, |area| {
        let (chart, legend) = area.split_horizontally(700);
        let spec = Xy {
            caption: None,
            x_desc: "distance from the last checkpoint record (MiB of journal written after it)".into(),
            y_desc: y_desc.into(),
            // a little room left of 0, so that points at the checkpoint stay off the axis
            x_range: (-x_hi * 0.015, x_hi),
            x_keys,
            x_label: &x_label,
            y_range,
            y_log,
            series,
            hlines: vec![],
            bands: vec![],
            legend: SeriesLabelPosition::UpperLeft,
            reserve_legend: false,
            side_legend: true,
        };
        draw_xy(&chart, &spec)?;
        let mut rows = Vec::new();
        for (i, h) in headings.iter().enumerate() {
            rows.push(LegendRow::Heading(h));
            for s in spec.series.iter().skip(2 * i).take(2) {
                rows.push(LegendRow::Item(s));
            }
        }
        draw_side_legend(&legend, &rows, 24)
    })?;
    Ok(plot("checkpoint", "checkpoint", title, svg))
}

/// Records grouped by cache state, warm first, then cold, then any other.
fn group_by_cache<'a>(records: &[&'a Record]) -> Vec<(String, Vec<&'a Record>)> {
    let mut out: Vec<(String, Vec<&Record>)> = Vec::new();
    for r in records {
        match out.iter_mut().find(|(k, _)| *k == r.cache.state) {
            Some((_, v)) => v.push(r),
            None => out.push((r.cache.state.clone(), vec![r])),
        }
    }
    out.sort_by(|a, b| rank(&CACHE_ORDER, &a.0).cmp(&rank(&CACHE_ORDER, &b.0)).then_with(|| a.0.cmp(&b.0)));
    out
}

fn checkpoint_writer_plot(env: &Env, records: &[&Record]) -> Result<Plot, String> {
    let cadences: BTreeSet<u64> = records.iter().filter_map(|r| r.p_num("every_txns")).map(|v| v as u64).collect();
    let cadences: Vec<u64> = cadences.into_iter().collect();
    let is_default = |c: u64| {
        records.iter().any(|r| {
            r.p_num("every_txns") == Some(c as f64)
                && r.params.get("default_cadence").and_then(|v| v.as_bool()) == Some(true)
        })
    };
    let labels: Vec<String> = cadences
        .iter()
        .map(|c| {
            let n = fmt::grouped(*c as f64, 0);
            if is_default(*c) {
                format!("{n} (default)")
            } else {
                n
            }
        })
        .collect();
    let idx = |r: &Record| -> Option<f64> {
        let c = r.p_num("every_txns")? as u64;
        cadences.iter().position(|x| *x == c).map(|i| i as f64)
    };
    // The writer's numbers belong to the crash image (cadence and crash), not to the cache
    // state it was recovered from: one point per image, from its first record. The crash
    // images of a cadence sit side by side around its tick, so that equal values stay visible.
    let crashes = group_by(records, "crash");
    let dodge = |i: usize| if crashes.len() > 1 { (i as f64 - (crashes.len() - 1) as f64 / 2.0) * 0.08 } else { 0.0 };
    let points = |rs: &[&Record], metric: &str, shift: f64| -> Vec<(f64, f64)> {
        let mut pts: Vec<(f64, f64)> =
            rs.iter().filter_map(|r| Some((idx(r)?, r.get(metric)?))).filter(|p| p.1.is_finite()).collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        pts.dedup_by(|a, b| a.0 == b.0);
        pts.iter().map(|p| (p.0 + shift, p.1)).collect()
    };
    let styles = [(PALETTE[0], Marker::Circle, false), (PALETTE[3], Marker::Triangle, true)];
    let mut blocks = Vec::new();
    let mut millis = Vec::new();
    for (i, (crash, rs)) in crashes.iter().enumerate() {
        let (c, m, dashed) = styles.get(i).copied().unwrap_or((color(i), Marker::Square, false));
        let name = match crash.as_str() {
            "after" => "just after a checkpoint".to_string(),
            "before" => "just before the next one".to_string(),
            other => other.to_string(),
        };
        let mut b = Series::line(name.as_str(), points(rs, "writer_extra_blocks", dodge(i)), c).marked(m);
        b.dashed = dashed;
        blocks.push(b);
        let mut t = Series::line(name, points(rs, "writer_checkpoint_ms", dodge(i)), c).marked(m);
        t.dashed = dashed;
        millis.push(t);
    }
    let has_ms = millis.iter().any(|s| !s.points.is_empty());
    let n = cadences.len().max(1) as f64;
    let x_range = (-0.4, n - 0.6);
    let x_keys: Vec<f64> = (0..cadences.len()).map(|i| i as f64).collect();
    let x_label = |v: f64| category(&labels, v);
    let signed_range = |series: &[Series]| -> (f64, f64) {
        let vals = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
        let (lo, hi) = vals.fold((0f64, 0f64), |(a, b), v| (a.min(v), b.max(v)));
        if lo == 0.0 && hi == 0.0 {
            (0.0, 1.0)
        } else {
            (lo * 1.1, hi * 1.1)
        }
    };
    let title = "Checkpoints: what they cost the writer, by cadence";
    let height = if has_ms { 800 } else { 500 };
    let svg = document((960, height), title, env, |area| {
        let (charts, legend) = area.split_horizontally(700);
        let blocks_spec = Xy {
            caption: Some("blocks written back because of checkpoints".into()),
            x_desc: "checkpoint every N transactions".into(),
            y_desc: "extra blocks written (count)".into(),
            x_range,
            x_keys: x_keys.clone(),
            x_label: &x_label,
            y_range: signed_range(&blocks),
            y_log: false,
            series: blocks,
            hlines: vec![],
            bands: vec![],
            legend: SeriesLabelPosition::UpperRight,
            reserve_legend: false,
            side_legend: true,
        };
        if has_ms {
            let (top, bottom) = charts.split_vertically(371);
            draw_xy(&top, &blocks_spec)?;
            draw_xy(
                &bottom,
                &Xy {
                    caption: Some("time the writer spent in checkpoints".into()),
                    x_desc: "checkpoint every N transactions".into(),
                    y_desc: "writer time in checkpoints (ms)".into(),
                    x_range,
                    x_keys: x_keys.clone(),
                    x_label: &x_label,
                    y_range: zero_range(millis.iter().flat_map(|s| s.points.iter().map(|p| p.1)), 0.0),
                    y_log: false,
                    series: millis,
                    hlines: vec![],
                    bands: vec![],
                    legend: SeriesLabelPosition::UpperRight,
                    reserve_legend: false,
                    side_legend: true,
                },
            )?;
        } else {
            draw_xy(&charts, &blocks_spec)?;
        }
        let mut rows = vec![LegendRow::Heading("the crash comes")];
        rows.extend(blocks_spec.series.iter().map(LegendRow::Item));
        draw_side_legend(&legend, &rows, 24)
    })?;
    Ok(plot("checkpoint-writer", "checkpoint", title, svg))
}

// ---------------------------------------------------------------------------------------------
// progress

fn progress_plot(env: &Env, records: &[&Record]) -> Result<Plot, String> {
    let observed: Vec<&Record> = records.iter().copied().filter(|r| r.p_num("interval_ms").is_some()).collect();
    let intervals: BTreeSet<u64> = observed.iter().filter_map(|r| r.p_num("interval_ms")).map(|v| v as u64).collect();
    let intervals: Vec<u64> = intervals.into_iter().collect();
    let labels: Vec<String> = intervals.iter().map(|i| fmt::grouped(*i as f64, 0)).collect();
    // one pair of series per recovery shape (or preset, for records without a shape)
    let key = if observed.iter().any(|r| r.p_str("shape").is_some()) { "shape" } else { "preset" };
    let shapes = group_by(&observed, key);
    let mut series = Vec::new();
    for (i, (p, rs)) in shapes.iter().enumerate() {
        let pts = |metric: &str| -> Vec<(f64, f64)> {
            let mut v: Vec<(f64, f64)> = rs
                .iter()
                .filter_map(|r| {
                    let iv = r.p_num("interval_ms")? as u64;
                    Some((intervals.iter().position(|x| *x == iv)? as f64, r.get(metric)?))
                })
                .filter(|p| p.1 > 0.0 && p.1.is_finite())
                .collect();
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            v
        };
        series.push(Series::line(format!("longest gap, {p}"), pts("gap_max_ms"), color(i)));
        series.push(Series::line(format!("median gap, {p}"), pts("gap_p50_ms"), color(i)).dashed());
    }
    let n = intervals.len().max(1) as f64;
    // log scale: the median gap can be microseconds (phase events in a burst), the longest
    // seconds; a decade of headroom above keeps the legend clear of the 1000 ms line
    let (lo, hi) = log_range(series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).chain([1000.0]));
    let y_range = (lo, hi * 10.0);
    let x_label = |v: f64| category(&labels, v);
    let title = "Progress: time between progress callbacks";
    let svg = document(SIZE, title, env, |area| {
        draw_xy(
            area,
            &Xy {
                caption: None,
                x_desc: "progress interval (ms)".into(),
                y_desc: "gap between callbacks (ms)".into(),
                x_range: (-0.4, n - 0.6),
                x_keys: (0..intervals.len()).map(|i| i as f64).collect(),
                x_label: &x_label,
                y_range,
                y_log: true,
                series,
                hlines: vec![HLine { y: 1000.0, name: "1000 ms (sub-second claim)".into(), color: CLAIM }],
                bands: vec![],
                legend: SeriesLabelPosition::UpperLeft,
                reserve_legend: true,
                side_legend: false,
            },
        )
    })?;
    Ok(plot("progress", "progress", title, svg))
}

// ---------------------------------------------------------------------------------------------
// latency

const PERCENTILES: [(&str, &str); 4] = [("p50", "p50"), ("p99", "p99"), ("p999", "p99.9"), ("max", "max")];

fn latency_plot(env: &Env, records: &[&Record]) -> Result<Plot, String> {
    let mut sorted: Vec<&Record> = records.to_vec();
    sorted.sort_by(|a, b| {
        workers(a).unwrap_or(0.0).total_cmp(&workers(b).unwrap_or(0.0)).then_with(|| a.label.cmp(&b.label))
    });
    let labels: Vec<String> = PERCENTILES.iter().map(|(_, l)| l.to_string()).collect();
    let x_label = |v: f64| category(&labels, v);
    let panel = |prefix: &str| -> Vec<Series> {
        sorted
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let name = match workers(r) {
                    Some(1.0) => format!("{} · 1 worker", r.p_str("preset").unwrap_or("-")),
                    Some(w) => format!("{} · {} workers", r.p_str("preset").unwrap_or("-"), fmt::axis(w)),
                    None => r.label.clone(),
                };
                let pts = PERCENTILES
                    .iter()
                    .enumerate()
                    .filter_map(|(j, (key, _))| Some((j as f64, r.get(&format!("{prefix}_{key}_us"))?)))
                    .filter(|p| p.1 > 0.0 && p.1.is_finite())
                    .collect();
                Series::line(name, pts, color(i))
            })
            .collect()
    };
    let apply = panel("batch_apply");
    let read = panel("segment_read");
    let y_range = log_range(apply.iter().chain(read.iter()).flat_map(|s| s.points.iter().map(|p| p.1)));
    let title = "Latency distributions of one recovery";
    let svg = document((900, 500), title, env, |area| {
        let (left, right) = area.split_horizontally(450);
        for (a, name, series) in [(&left, "batch apply", apply), (&right, "segment read", read)] {
            draw_xy(
                a,
                &Xy {
                    caption: Some(name.into()),
                    x_desc: "percentile".into(),
                    y_desc: "latency (us)".into(),
                    x_range: (-0.4, 3.4),
                    x_keys: vec![0.0, 1.0, 2.0, 3.0],
                    x_label: &x_label,
                    y_range,
                    y_log: true,
                    series,
                    hlines: vec![],
                    bands: vec![],
                    legend: SeriesLabelPosition::LowerRight,
                    reserve_legend: false,
                    side_legend: false,
                },
            )?;
        }
        Ok(())
    })?;
    Ok(plot("latency", "latency", title, svg))
}

// ---------------------------------------------------------------------------------------------
// bandwidth

fn bandwidth_plot(env: &Env, records: &[&Record]) -> Result<Plot, String> {
    let presets = group_by_preset(records);
    let (keys, x_range) = worker_axis(records);
    let series: Vec<Series> = presets
        .iter()
        .enumerate()
        .map(|(i, (p, rs))| Series::line(p.as_str(), by_workers(rs, "of_memcpy"), color(i)))
        .collect();
    let y_range = zero_range(series.iter().flat_map(|s| s.points.iter().map(|p| p.1)), 0.0);
    let title = "Recovery throughput as a fraction of memcpy bandwidth (same threads)";
    let svg = document(SIZE, title, env, |area| {
        draw_xy(
            area,
            &Xy {
                caption: None,
                x_desc: "workers".into(),
                y_desc: "recovery throughput / memcpy bandwidth (x)".into(),
                x_range,
                x_keys: keys.clone(),
                x_label: &integer_label,
                y_range,
                y_log: false,
                series,
                hlines: vec![],
                bands: vec![],
                legend: SeriesLabelPosition::UpperRight,
                reserve_legend: true,
                side_legend: false,
            },
        )
    })?;
    Ok(plot("bandwidth", "bandwidth", title, svg))
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    fn plots() -> Vec<Plot> {
        let (env, records) = full_run(16, "a94a590663e3aa");
        render_plots(&env, &records).expect("render")
    }

    #[test]
    fn every_plot_is_well_formed_svg_with_units_and_sha() {
        let expected: [(&str, &[&str]); 9] = [
            ("scaling-throughput", &["workers", "throughput (MB/s)"]),
            (
                "scaling-speedup",
                &[
                    "workers",
                    "speedup (x)",
                    "ideal",
                    "whole-recovery bound (ceiling)",
                    "physical",
                    "cpu-bound",
                    "memory-bound",
                    "reference",
                ],
            ),
            ("scaling-efficiency", &["workers", "efficiency (fraction)"]),
            (
                "deps",
                &[
                    "dependency density (share of writes that are COPY records)",
                    "speedup over 1 worker (x)",
                    "measured speedup, 16 workers",
                    "whole-recovery bound (ceiling), 16 workers",
                    "replay-only bound, 16 workers",
                    "\n0.05\n",
                    "\n0.4\n",
                ],
            ),
            ("io", &["throughput (MB/s)", "consumer · cache state", "mmap", "sequential read(2) ceiling"]),
            ("checkpoint", &["checkpoint every N transactions", "skipped (%", "time with / without (x)", "3,000"]),
            ("progress", &["progress interval (ms)", "gap between callbacks (ms)"]),
            ("latency", &["percentile", "latency (us)", "p99.9", "batch apply", "segment read"]),
            ("bandwidth", &["workers", "memcpy bandwidth (x)"]),
        ];
        let plots = plots();
        assert_eq!(plots.len(), expected.len());
        for (p, (name, needles)) in plots.iter().zip(expected) {
            assert_eq!(p.name, name);
            assert!(p.svg.starts_with("<svg"), "{name}: {}", &p.svg[..40]);
            assert!(p.svg.trim_end().ends_with("</svg>"), "{name}");
            assert_eq!(p.svg.matches("<svg").count(), 1, "{name}");
            assert!(p.svg.contains("a94a590"), "{name} lacks the sha");
            assert!(p.svg.contains("16 CPUs Intel Xeon"), "{name} lacks the machine");
            assert!(p.svg.contains("quick run"), "{name} lacks the mode");
            for n in needles {
                assert!(p.svg.contains(&fmt::html(n).replace("&#39;", "'")), "{name} lacks {n:?}");
            }
            assert!(!p.svg.contains("NaN"), "{name}");
        }
    }

    #[test]
    fn checkpoint_records_plot_time_against_distance_and_the_writer() {
        let (env, records) = full_run_current(16, "a94a590663e3aa");
        let plots = render_plots(&env, &records).expect("render");
        let names: Vec<&str> = plots.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "scaling-throughput",
                "scaling-speedup",
                "scaling-efficiency",
                "deps",
                "io",
                "checkpoint",
                "checkpoint-writer",
                "progress",
                "latency",
                "bandwidth"
            ]
        );
        let time = &plots[5];
        assert_eq!(time.experiment, "checkpoint");
        for needle in [
            "distance from the last checkpoint record (MiB of journal written after it)",
            // 5 ms to 400 ms: more than 10x, so a log axis
            "recovery time (ms, log scale)",
            "warm cache",
            "cold cache",
            "with checkpoints",
            "without checkpoints",
            "a94a590",
            "16 CPUs Intel Xeon",
        ] {
            assert!(time.svg.contains(needle), "checkpoint lacks {needle:?}");
        }
        // two series per cache state, each with its own colour
        for c in [PALETTE[0], PALETTE[1], PALETTE[9], PALETTE[3]] {
            let hex = format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2);
            assert!(time.svg.contains(&hex), "checkpoint lacks the colour {hex}");
        }
        let writer = &plots[6];
        assert_eq!(writer.experiment, "checkpoint");
        for needle in [
            "checkpoint every N transactions",
            "extra blocks written (count)",
            "writer time in checkpoints (ms)",
            "just after a checkpoint",
            "just before the next one",
            "3,000",
            "a94a590",
        ] {
            assert!(writer.svg.contains(needle), "checkpoint-writer lacks {needle:?}");
        }
        for p in &plots[5..7] {
            assert!(!p.svg.contains("NaN"), "{}", p.name);
            assert!(p.svg.trim_end().ends_with("</svg>"), "{}", p.name);
        }

        // within 10x: a linear axis; no writer time: one panel
        let mut close: Vec<Record> = checkpoint_records(0.15);
        for r in &mut close {
            let t = r.get("time_without_ms").unwrap_or(1.0);
            r.metric("time_with_ms", t * 0.5, "ms");
            r.metrics.remove("writer_checkpoint_ms");
        }
        let plots = render_plots(&env, &close).expect("render");
        assert!(plots[0].svg.contains("recovery time (ms)"));
        assert!(!plots[0].svg.contains("log scale"), "linear axis expected");
        assert!(!plots[1].svg.contains("writer time in checkpoints"));
    }

    #[test]
    fn scaling_records_before_the_whole_bound_keep_their_speedup_plot() {
        let (env, _) = full_run(16, "a94a590663e3aa");
        let plots = render_plots(&env, &scaling_before_whole(16, 3.1)).expect("render");
        let speedup = plots.iter().find(|p| p.name == "scaling-speedup").expect("speedup plot");
        assert_eq!(speedup.title, "Scaling: speedup over the same run's 1-worker median");
        assert!(speedup.svg.contains("cpu-bound work/span bound"));
        assert!(!speedup.svg.contains("whole-recovery"));

        let plots = render_plots(&env, &scaling(16, 3.1)).expect("render");
        let speedup = plots.iter().find(|p| p.name == "scaling-speedup").expect("speedup plot");
        assert!(speedup.svg.contains("whole-recovery bound (ceiling)"));
        // the replay-only bound stays in the tables, off this plot
        assert!(!speedup.svg.contains("work/span bound"));
        // each preset's bound is dashed in the preset's colour
        for c in [PALETTE[0], PALETTE[1], PALETTE[2]] {
            let hex = format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2);
            assert!(speedup.svg.contains(&hex), "speedup lacks the colour {hex}");
        }
    }

    #[test]
    fn plots_are_deterministic() {
        assert_eq!(plots(), plots());
    }

    #[test]
    fn text_is_escaped() {
        let (mut env, records) = full_run(2, "a94a590663e3aa");
        env.run = "<b>&run".into();
        let plots = render_plots(&env, &records).expect("render");
        for p in plots {
            assert!(!p.svg.contains("<b>"), "{}", p.name);
            assert!(p.svg.contains("&lt;b&gt;&amp;run"), "{}", p.name);
        }
    }

    #[test]
    fn keys() {
        assert_eq!(linear_keys(0.0, 17.6), [0.0, 5.0, 10.0, 15.0]);
        assert_eq!(linear_keys(0.0, 1.1), [0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]);
        assert_eq!(log_keys(1.0, 100.0), [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]);
        assert_eq!(log_keys(1.0, 1e5), [1.0, 10.0, 100.0, 1000.0, 1e4, 1e5]);
        assert_eq!(log_range([3.0, 450.0].into_iter()), (1.0, 1000.0));
        assert_eq!(category(&["a".into(), "b".into()], 1.0), "b");
        assert_eq!(category(&["a".into(), "b".into()], 0.5), "");
    }
}
