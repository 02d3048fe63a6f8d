//! The report's charts, drawn by plotters' SVG backend. Each chart is an `<svg>` with a
//! `<title>` naming what it shows (its accessible name); the page scales it to its width.

use plotters::coord::ranged1d::SegmentValue;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::error::{Error, Result};

/// The palette: one color per series, readable on white and distinct in print.
const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

const WIDTH: u32 = 760;
/// Pixels of one row of a horizontal bar chart.
const ROW: u32 = 26;
const MARGIN: u32 = 10;
const AXIS: u32 = 34;
const LABELS: u32 = 170;
const FONT: (&str, u32) = ("sans-serif", 13);

fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

fn drawing<E: std::fmt::Display>(e: E) -> Error {
    Error::Report(format!("a chart could not be drawn: {e}"))
}

/// Labels longer than this are cut (the tables beside the charts hold them whole).
fn short(label: &str) -> String {
    const MAX: usize = 22;
    if label.chars().count() <= MAX {
        return label.to_string();
    }
    let cut: String = label.chars().take(MAX - 1).collect();
    format!("{cut}…")
}

type Slots = plotters::coord::ranged1d::SegmentedCoord<plotters::coord::types::RangedCoordusize>;

/// One segment per label: plotters' discrete integer range includes its end, so `n` labels
/// take `0..n - 1` (and one label two segments, the upper one left empty: a range of one
/// value has no width).
fn slots(n: usize) -> Slots {
    (0..n.max(2) - 1).into_segmented()
}

/// The segment of the `i`-th of `n` rows: the first at the top.
fn row_slot(i: usize, n: usize) -> usize {
    n.max(1) - 1 - i
}

/// The label of a segment whose rows go top down.
fn row_label(labels: &[String], v: &SegmentValue<usize>) -> String {
    match v {
        SegmentValue::CenterOf(s) if *s < labels.len() => {
            short(&labels[row_slot(*s, labels.len())])
        }
        _ => String::new(),
    }
}

/// An axis value, short: 1,500 → "1.5k", 2,000,000 → "2M".
fn amount(v: f64) -> String {
    let (scaled, unit) = match v.abs() {
        a if a >= 1e9 => (v / 1e9, "G"),
        a if a >= 1e6 => (v / 1e6, "M"),
        a if a >= 1e3 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    let text = format!("{scaled:.1}");
    let text = text.strip_suffix(".0").unwrap_or(&text);
    format!("{text}{unit}")
}

/// Puts the accessible name in the drawn `<svg>`: a `<title>` first, and `role="img"`.
fn titled(svg: String, title: &str) -> String {
    let escaped = title
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    match svg
        .find("<svg")
        .and_then(|at| svg[at..].find('>').map(|end| at + end))
    {
        Some(end) => format!(
            "{} role=\"img\"><title>{escaped}</title>{}",
            &svg[..end],
            &svg[end + 1..]
        ),
        None => svg,
    }
}

type RowsChart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, Slots>>;

/// A chart of rows over `area`: values from 0 to `max` across (`axis` names them), one row
/// per label down, the first at the top; its axes drawn.
fn rows_chart<'a, 'b>(
    area: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    max: f64,
    labels: &[String],
    axis: &str,
) -> Result<RowsChart<'a, 'b>> {
    let mut chart = ChartBuilder::on(area)
        .margin(MARGIN)
        .x_label_area_size(AXIS)
        .y_label_area_size(LABELS)
        .build_cartesian_2d(0.0..max, slots(labels.len()))
        .map_err(drawing)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(labels.len().max(1))
        .y_label_formatter(&|v| row_label(labels, v))
        .x_desc(axis)
        .x_label_formatter(&|v| amount(*v))
        .label_style(FONT)
        .draw()
        .map_err(drawing)?;
    Ok(chart)
}

/// One series of a bar chart: its name (the legend) and one value per label.
pub struct Series {
    pub name: String,
    pub values: Vec<f64>,
}

/// Horizontal bars: one row per label, one bar per series in each row (grouped when there
/// are several, with a legend). `axis` names the values' unit.
pub fn bars(title: &str, labels: &[String], series: &[Series], axis: &str) -> Result<String> {
    let rows = labels.len().max(1) as u32;
    let groups = series.len().max(1) as u32;
    let row = ROW * groups.clamp(1, 4) + if groups > 1 { 8 } else { 0 };
    let legend = if series.len() > 1 {
        24 * groups.div_ceil(3)
    } else {
        0
    };
    let height = 2 * MARGIN + AXIS + rows * row + legend;
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .fold(0.0f64, f64::max);
    let max = if max > 0.0 { max * 1.05 } else { 1.0 };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let (area, legend_area) = root.split_vertically(height - legend);
        let mut chart = rows_chart(&area, max, labels, axis)?;
        let thick = (row - 8) / groups;
        for (s, one) in series.iter().enumerate() {
            let fill = color(s).filled();
            let top = 4 + s as u32 * thick;
            let bottom = row.saturating_sub(top + thick);
            let n = labels.len();
            let bars = one.values.iter().enumerate().map(move |(i, v)| {
                let slot = row_slot(i, n);
                let mut bar = Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(slot)),
                        (*v, SegmentValue::Exact(slot + 1)),
                    ],
                    fill,
                );
                bar.set_margin(top, bottom, 0, 0);
                bar
            });
            chart.draw_series(bars).map_err(drawing)?;
        }
        if series.len() > 1 {
            legend_boxes(&legend_area, series.iter().map(|s| s.name.as_str()))?;
        }
        root.present().map_err(drawing)?;
    }
    Ok(titled(svg, title))
}

/// Horizontal bars split into parts (name, count), one bar per row, with a legend of every
/// part's name (a name has one color across the rows): how each total divides.
pub fn split_bars(title: &str, rows: &[(String, Vec<(String, f64)>)]) -> Result<String> {
    let mut names: Vec<&str> = Vec::new();
    for (_, parts) in rows {
        for (name, _) in parts {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
    }
    let legend = 24 * (names.len() as u32).div_ceil(3);
    let row = ROW + 10;
    let height = 2 * MARGIN + AXIS + (rows.len().max(2) as u32) * row + legend;
    let max = rows
        .iter()
        .map(|(_, parts)| parts.iter().map(|(_, v)| v).sum::<f64>())
        .fold(0.0f64, f64::max);
    let max = if max > 0.0 { max } else { 1.0 };
    let labels: Vec<String> = rows.iter().map(|(l, _)| l.clone()).collect();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let (area, legend_area) = root.split_vertically(height - legend);
        let mut chart = rows_chart(&area, max, &labels, "rows")?;
        for (i, (_, parts)) in rows.iter().enumerate() {
            let slot = row_slot(i, rows.len());
            let mut from = 0.0;
            for (name, v) in parts {
                let colour = color(names.iter().position(|n| n == name).unwrap_or(0));
                let mut bar = Rectangle::new(
                    [
                        (from, SegmentValue::Exact(slot)),
                        (from + v, SegmentValue::Exact(slot + 1)),
                    ],
                    colour.filled(),
                );
                bar.set_margin(6, 6, 0, 0);
                chart.draw_series(std::iter::once(bar)).map_err(drawing)?;
                from += v;
            }
        }
        legend_boxes(&legend_area, names.into_iter())?;
        root.present().map_err(drawing)?;
    }
    Ok(titled(svg, title))
}

/// A line over the labels (weeks), with a point at each.
pub fn line(title: &str, labels: &[String], values: &[f64], axis: &str) -> Result<String> {
    let height = 320;
    let max = values.iter().copied().fold(0.0f64, f64::max);
    let max = if max > 0.0 { max * 1.1 } else { 1.0 };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(MARGIN)
            .x_label_area_size(AXIS + 10)
            .y_label_area_size(90)
            .build_cartesian_2d(slots(labels.len()), 0.0..max)
            .map_err(drawing)?;
        let every = labels.len().div_ceil(8).max(1);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(labels.len().max(1))
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) if i % every == 0 && *i < labels.len() => {
                    labels[*i].clone()
                }
                _ => String::new(),
            })
            .y_desc(axis)
            .y_label_formatter(&|v| amount(*v))
            .label_style(FONT)
            .draw()
            .map_err(drawing)?;
        let points: Vec<(SegmentValue<usize>, f64)> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (SegmentValue::CenterOf(i), *v))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color(0).stroke_width(2)))
            .map_err(drawing)?;
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 3, color(0).filled())),
            )
            .map_err(drawing)?;
        root.present().map_err(drawing)?;
    }
    Ok(titled(svg, title))
}

/// A legend of colored boxes, three to a line.
fn legend_boxes<'a>(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    names: impl Iterator<Item = &'a str>,
) -> Result<()> {
    for (i, name) in names.enumerate() {
        let x = (LABELS + MARGIN) as i32 + (i % 3) as i32 * 190;
        let y = 4 + (i / 3) as i32 * 24;
        area.draw(&Rectangle::new(
            [(x, y), (x + 14, y + 14)],
            color(i).filled(),
        ))
        .map_err(drawing)?;
        area.draw(&Text::new(short(name), (x + 20, y + 1), FONT))
            .map_err(drawing)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_is_an_svg_with_its_title_first() {
        let labels = vec!["a <b>".to_string(), "c".to_string()];
        let series = [Series {
            name: "revenue".into(),
            values: vec![2.0, 1.0],
        }];
        let svg = bars("Revenue & more", &labels, &series, "USD").unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
        assert!(svg.contains("role=\"img\"><title>Revenue &amp; more</title>"));
        assert!(svg.contains("a &lt;b&gt;"), "labels are escaped text");
        assert!(
            svg.matches("<rect").count() >= 3,
            "the background and two bars"
        );
    }
}
