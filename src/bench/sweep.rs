//! `authd bench --sweep`: one scenario at several concurrencies in turn, so throughput and
//! latency can be read against load as a curve. Runs [`super::run`] once per level (each with
//! its own setup and connections), then prints the points as a table or JSON and draws them
//! ([`svg`]). The measuring itself is [`super::run`]'s.

use std::fmt::Write as _;

use plotters::prelude::*;
use serde_json::{Value, json};

use super::{BenchConfig, BenchError, Report};

/// Parses `1,4,16,64,256`: concurrencies, each at least 1, in the order given.
///
/// # Errors
/// When a level is not a positive integer, or none is given.
pub fn parse_levels(s: &str) -> Result<Vec<usize>, String> {
    let levels = s
        .split(',')
        .map(|level| match level.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!(
                "{level:?} is not a concurrency (a whole number from 1)"
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if levels.is_empty() {
        return Err("give at least one concurrency".into());
    }
    Ok(levels)
}

/// Runs the configuration `config_for(level)` builds, once per level, one after the other.
///
/// # Errors
/// The first run that fails (see [`super::run`]).
pub async fn run(
    levels: &[usize],
    mut config_for: impl FnMut(usize) -> BenchConfig,
) -> Result<Vec<Report>, BenchError> {
    let mut reports = Vec::with_capacity(levels.len());
    for &level in levels {
        reports.push(super::run(config_for(level)).await?);
    }
    Ok(reports)
}

/// One line per level: throughput, latency percentiles and errors of all operations together.
pub fn table(reports: &[Report]) -> String {
    let mut out = String::new();
    if let Some(first) = reports.first() {
        let _ = writeln!(out, "sweep of {}", first.scenario.as_str());
    }
    let _ = writeln!(
        out,
        "{:>11} {:>12} {:>9} {:>9} {:>9} {:>8}",
        "in flight", "requests/s", "p50 ms", "p99 ms", "p99/p50", "errors"
    );
    for r in reports {
        let t = &r.total;
        let _ = writeln!(
            out,
            "{:>11} {:>12.1} {:>9.3} {:>9.3} {:>9.2} {:>8}",
            r.concurrency,
            t.rps,
            t.p50_ms,
            t.p99_ms,
            tail_ratio(r),
            t.errors
        );
    }
    out
}

/// The sweep as one JSON object: `{"scenario": "sweep", "of": ..., "points": [...]}`, each
/// point the JSON of its run.
pub fn to_json(reports: &[Report]) -> Value {
    json!({
        "scenario": "sweep",
        "of": reports.first().map(|r| r.scenario.as_str()),
        "points": reports.iter().map(Report::to_json).collect::<Vec<_>>(),
    })
}

/// p99 over p50 of all operations together (0 when nothing was measured).
fn tail_ratio(r: &Report) -> f64 {
    if r.total.p50_ms > 0.0 {
        r.total.p99_ms / r.total.p50_ms
    } else {
        0.0
    }
}

/// Throughput (left) and p50/p99 latency (right, log scale) against requests in flight (one
/// evenly spaced mark per level), as an SVG document.
///
/// # Errors
/// When there is nothing to draw, or drawing fails.
pub fn svg(reports: &[Report]) -> Result<String, String> {
    let first = reports.first().ok_or("no runs to draw")?;
    let scenario = first.scenario.as_str();
    // Levels are usually powers of some base: evenly spaced marks read better than a log axis.
    let points = |value: fn(&Report) -> f64| -> Vec<(f64, f64)> {
        reports
            .iter()
            .enumerate()
            .map(|(i, r)| (i as f64, value(r)))
            .collect()
    };
    let levels: Vec<usize> = reports.iter().map(|r| r.concurrency).collect();
    let level_at = |x: &f64| {
        let i = x.round();
        match levels.get(i as usize) {
            Some(level) if (x - i).abs() < 1e-6 && i >= 0.0 => level.to_string(),
            _ => String::new(),
        }
    };
    let throughput = points(|r| r.total.rps);
    let p50 = points(|r| r.total.p50_ms.max(0.001));
    let p99 = points(|r| r.total.p99_ms.max(0.001));

    let x_range = -0.3..(levels.len() as f64 - 0.7);
    let top_rps = throughput.iter().map(|p| p.1).fold(1.0, f64::max) * 1.15;
    let (low_ms, high_ms) = p50
        .iter()
        .chain(&p99)
        .fold((f64::MAX, 0.0f64), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));

    let mut document = String::new();
    {
        let root = SVGBackend::with_string(&mut document, (960, 400)).into_drawing_area();
        let fail = |e: DrawingAreaErrorKind<std::io::Error>| format!("cannot draw the sweep: {e}");
        root.fill(&WHITE).map_err(fail)?;
        let (left, right) = root.split_horizontally(480);

        let mut chart = ChartBuilder::on(&left)
            .caption(format!("{scenario}: throughput"), ("sans-serif", 20))
            .margin(14)
            .x_label_area_size(42)
            .y_label_area_size(64)
            .build_cartesian_2d(x_range.clone(), 0.0..top_rps)
            .map_err(fail)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(levels.len())
            .x_label_formatter(&level_at)
            .y_label_formatter(&|rps| format!("{rps:.0}"))
            .x_desc("requests in flight")
            .y_desc("requests/s")
            .draw()
            .map_err(fail)?;
        draw_line(&mut chart, &throughput, BLUE, "requests/s", true).map_err(fail)?;

        let mut chart = ChartBuilder::on(&right)
            .caption(format!("{scenario}: latency"), ("sans-serif", 20))
            .margin(14)
            .x_label_area_size(42)
            .y_label_area_size(64)
            .build_cartesian_2d(
                x_range,
                ((low_ms / 1.5).max(0.001)..(high_ms * 1.5).max(0.01)).log_scale(),
            )
            .map_err(fail)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(levels.len())
            .x_label_formatter(&level_at)
            .y_label_formatter(&|ms| format!("{ms}"))
            .x_desc("requests in flight")
            .y_desc("milliseconds")
            .draw()
            .map_err(fail)?;
        draw_line(&mut chart, &p50, GREEN, "p50", true).map_err(fail)?;
        draw_line(&mut chart, &p99, RED, "p99", true).map_err(fail)?;
        draw_legend(&mut chart, SeriesLabelPosition::UpperLeft).map_err(fail)?;
        root.present().map_err(fail)?;
    }
    Ok(document)
}

/// A line through `points` (with a dot at each when `dots`), labelled for the legend.
pub(super) fn draw_line<'a, DB, CT>(
    chart: &mut ChartContext<'a, DB, CT>,
    points: &[(f64, f64)],
    color: RGBColor,
    label: &str,
    dots: bool,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>
where
    DB: DrawingBackend + 'a,
    CT: CoordTranslate<From = (f64, f64)>,
{
    chart
        .draw_series(LineSeries::new(
            points.iter().copied(),
            color.stroke_width(2),
        ))?
        .label(label)
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
    if dots {
        chart.draw_series(
            points
                .iter()
                .map(|&point| Circle::new(point, 3, color.filled())),
        )?;
    }
    Ok(())
}

/// The legend of the lines [`draw_line`] labelled, at `position`.
pub(super) fn draw_legend<'a, DB, CT>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>
where
    DB: DrawingBackend + 'a,
    CT: CoordTranslate<From = (f64, f64)>,
{
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_positive_integers_in_order() {
        assert_eq!(parse_levels("1,4,16, 64,256"), Ok(vec![1, 4, 16, 64, 256]));
        assert!(parse_levels("0,4").is_err());
        assert!(parse_levels("4,x").is_err());
        assert!(parse_levels("").is_err());
    }
}
