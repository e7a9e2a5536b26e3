//! The finalists' trade-off as a PNG: test accuracy against batch-1 latency (one thread)
//! and against parameter count, the scratch student and the teacher beside them, each
//! point the mean over the seeds. The Pareto front — the points no other point beats on
//! both axes — is drawn as a line.

use std::path::Path;

use anyhow::{bail, Result};
use plotters::prelude::*;

use super::leaderboard::Leaderboard;
use super::store::Tested;
use crate::plots::{colour, font, value_range};

/// A point: its name, (latency ms, parameters, test accuracy %).
type Point = (String, f64, f64, f64);

/// A horizontal axis: its name, a point's value on it, and how its ticks read.
type Axis = (&'static str, fn(&Point) -> f64, fn(&f64) -> String);

/// The mean of a model's seeds: (latency ms, parameters, test accuracy %).
fn mean_point(tested: &[Tested]) -> Option<(f64, f64, f64)> {
    let latencies: Vec<f64> = tested.iter().filter_map(|t| t.latency_ms).collect();
    if tested.is_empty() || latencies.is_empty() {
        return None;
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let params: Vec<f64> = tested.iter().map(|t| t.parameters as f64).collect();
    let accuracy: Vec<f64> = tested.iter().map(|t| 100.0 * t.accuracy).collect();
    Some((mean(&latencies), mean(&params), mean(&accuracy)))
}

/// The finalists, the scratch student and the teacher, where they have test results.
fn points(board: &Leaderboard, teacher: &[Tested]) -> Vec<Point> {
    let mut points: Vec<Point> = board
        .rows
        .iter()
        .filter_map(|r| mean_point(&r.tested).map(|(l, p, a)| (format!("#{}", r.trial), l, p, a)))
        .collect();
    for (name, tested) in [("scratch", &board.scratch_tested[..]), ("teacher", teacher)] {
        if let Some((l, p, a)) = mean_point(tested) {
            points.push((name.into(), l, p, a));
        }
    }
    points
}

/// The points no other point beats on both `x` (lower) and accuracy (higher), by `x`.
fn front(points: &[Point], x: fn(&Point) -> f64) -> Vec<(f64, f64)> {
    let mut on: Vec<(f64, f64)> = points
        .iter()
        .filter(|p| {
            !points
                .iter()
                .any(|q| x(q) <= x(p) && q.3 >= p.3 && (x(q) < x(p) || q.3 > p.3))
        })
        .map(|p| (x(p), p.3))
        .collect();
    on.sort_by(|a, b| a.0.total_cmp(&b.0));
    on
}

/// Draws the plot to `path`; `teacher` is the teacher's test results per seed.
pub fn pareto(board: &Leaderboard, teacher: &[Tested], path: &Path) -> Result<()> {
    font()?;
    let points = points(board, teacher);
    if points.is_empty() {
        bail!("no finalist has test results yet");
    }
    let root = BitMapBackend::new(path, (1500, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, 2));
    let axes: [Axis; 2] = [
        (
            "batch-1 latency, one thread (ms)",
            |p| p.1,
            |v| format!("{v:.2}"),
        ),
        ("parameters", |p| p.2, |v| format!("{:.0}k", v / 1000.0)),
    ];
    for (area, (name, x, ticks)) in panels.iter().zip(axes) {
        let (x_lo, x_hi) = value_range(points.iter().map(|p| Some(x(p))));
        let (y_lo, y_hi) = value_range(points.iter().map(|p| Some(p.3)));
        let (xp, yp) = (
            ((x_hi - x_lo) * 0.1).max(1e-3),
            ((y_hi - y_lo) * 0.1).max(0.1),
        );
        let mut chart = ChartBuilder::on(area)
            .caption(format!("test accuracy against {name}"), ("sans-serif", 20))
            .margin(16)
            .margin_right(70)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((x_lo - xp)..(x_hi + xp), (y_lo - yp)..(y_hi + yp))?;
        chart
            .configure_mesh()
            .x_desc(name)
            .x_label_formatter(&ticks)
            .y_desc("test accuracy (%)")
            .label_style(("sans-serif", 15))
            .draw()?;
        chart.draw_series(LineSeries::new(
            front(&points, x),
            colour(0).stroke_width(2),
        ))?;
        let near = |a: &Point, b: &Point| {
            (x(a) - x(b)).abs() <= 0.02 * (x_hi - x_lo) && (a.3 - b.3).abs() <= 0.02 * (y_hi - y_lo)
        };
        // Points drawn on top of each other share one label: `#0, #2`.
        let mut labels: Vec<String> = points.iter().map(|p| p.0.clone()).collect();
        for i in 0..points.len() {
            let first = (0..i).find(|&j| near(&points[i], &points[j]) && !labels[j].is_empty());
            if let Some(j) = first {
                labels[j] = format!("{}, {}", labels[j], points[i].0);
                labels[i].clear();
            }
        }
        for (i, (p, label)) in points.iter().zip(labels).enumerate() {
            let style = ("sans-serif", 16).into_font();
            let mark = EmptyElement::at((x(p), p.3))
                + Circle::new((0, 0), 6, colour(i + 1).filled())
                + Text::new(label, (9, -18), style);
            chart.draw_series(std::iter::once(mark))?;
        }
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_front_keeps_what_nothing_beats_on_both_axes() {
        let p =
            |name: &str, latency: f64, accuracy: f64| (name.to_string(), latency, 0.0, accuracy);
        let points = [
            p("a", 1.0, 80.0),
            p("b", 2.0, 85.0),
            p("c", 3.0, 84.0),
            p("d", 2.0, 85.0),
        ];
        // c is beaten by b (faster and better); b and d tie and both stay.
        assert_eq!(
            front(&points, |p| p.1),
            [(1.0, 80.0), (2.0, 85.0), (2.0, 85.0)]
        );
    }
}
