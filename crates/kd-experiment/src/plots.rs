//! PNG plots of a run, drawn with plotters: learning curves (loss and accuracy, training and
//! validation, per model), the learning rate per epoch, and a confusion matrix. Text needs a
//! TrueType font: the DejaVu Sans that Debian-family systems ship (`fonts-dejavu-core`), or
//! the file `KD_PLOT_FONT` names; without one, plots are skipped with a warning.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Result};
use kd_train::EpochMetrics;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Where a sans-serif TrueType font is looked for.
const FONT_PATHS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// Registers the font once per process; the error says where it looked.
pub(crate) fn font() -> Result<()> {
    static FONT: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let paths: Vec<String> = std::env::var("KD_PLOT_FONT")
            .into_iter()
            .chain(FONT_PATHS.iter().map(|p| p.to_string()))
            .collect();
        let bytes = paths
            .iter()
            .find_map(|p| std::fs::read(p).ok())
            .ok_or_else(|| format!("no TrueType font at {paths:?} (set KD_PLOT_FONT)"))?;
        plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            Box::leak(bytes.into_boxed_slice()),
        )
        .map_err(|_| "the font file is not a TrueType/OpenType font".to_string())
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

/// A distinct colour per model.
pub(crate) fn colour(i: usize) -> RGBColor {
    [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
    ][i % 4]
}

type Curves<'a> = Vec<(&'a str, Vec<&'a EpochMetrics>)>;

fn by_model(rows: &[(String, EpochMetrics)]) -> Curves<'_> {
    let mut curves: Curves = Vec::new();
    for (model, m) in rows {
        match curves.iter_mut().find(|(name, _)| name == model) {
            Some((_, epochs)) => epochs.push(m),
            None => curves.push((model, vec![m])),
        }
    }
    curves
}

/// `learning_curves.png`, three panels with one colour per model: the validation
/// cross-entropy (the one loss every model is measured by, so distilled and scratch students
/// compare), the accuracy (training thin, validation thick), and each model's own training
/// objective (training thin, validation thick; a distilled student's includes its
/// teacher's term, on another scale than a scratch student's cross-entropy).
pub fn learning_curves(rows: &[(String, EpochMetrics)], path: &Path) -> Result<()> {
    font()?;
    let curves = by_model(rows);
    if curves.is_empty() {
        bail!("no epochs to plot");
    }
    let root = BitMapBackend::new(path, (2100, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, 3));
    let epochs = rows.iter().map(|(_, m)| m.epoch).max().unwrap_or(1).max(2) as f64;
    let metrics: [Panel; 3] = [
        (
            "cross-entropy",
            "validation cross-entropy (comparable across models)",
            |m| (None, m.val_cross_entropy),
        ),
        (
            "accuracy",
            "accuracy: training (thin), validation (thick)",
            |m| (Some(m.accuracy), m.val_accuracy),
        ),
        (
            "objective",
            "each model's own objective: training (thin), validation (thick)",
            |m| (Some(m.loss), m.val_loss),
        ),
    ];
    for (area, panel) in panels.iter().zip(metrics) {
        draw_panel(area, panel, rows, &curves, epochs)?;
    }
    root.present()?;
    Ok(())
}

/// A learning-curve panel: its axis name, its caption, and an epoch's (training,
/// validation) values.
type Panel = (
    &'static str,
    &'static str,
    fn(&EpochMetrics) -> (Option<f64>, f64),
);

/// Draws `panel` on `area`: each model's training values thin, validation values thick,
/// over `epochs` epochs.
fn draw_panel(
    area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    (name, caption, get): Panel,
    rows: &[(String, EpochMetrics)],
    curves: &Curves,
    epochs: f64,
) -> Result<()> {
    let (lo, hi) = value_range(rows.iter().flat_map(|(_, m)| {
        let (a, b) = get(m);
        [a, Some(b)]
    }));
    let pad = ((hi - lo) * 0.05).max(1e-3);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 20))
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(1f64..epochs, (lo - pad)..(hi + pad))?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(name)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .label_style(("sans-serif", 15))
        .draw()?;
    for (i, (model, epochs)) in curves.iter().enumerate() {
        let c = colour(i);
        let finite = |v: f64| v.is_finite().then_some(v);
        chart.draw_series(LineSeries::new(
            epochs
                .iter()
                .filter_map(|m| get(m).0.and_then(finite).map(|v| (m.epoch as f64, v))),
            c.stroke_width(1),
        ))?;
        chart
            .draw_series(LineSeries::new(
                epochs
                    .iter()
                    .filter_map(|m| finite(get(m).1).map(|v| (m.epoch as f64, v))),
                c.stroke_width(3),
            ))?
            .label(*model)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .draw()?;
    Ok(())
}

/// The smallest and largest finite values of `values` ((0, 1) when there are none).
pub(crate) fn value_range(values: impl Iterator<Item = Option<f64>>) -> (f64, f64) {
    let (lo, hi) = values
        .flatten()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo.is_finite() {
        (lo, hi)
    } else {
        (0.0, 1.0)
    }
}

/// `lr_schedule.png`: the learning rate at the end of each epoch, per model, on a log axis.
pub fn lr_schedule(rows: &[(String, EpochMetrics)], path: &Path) -> Result<()> {
    font()?;
    let curves = by_model(rows);
    let lrs: Vec<f64> = rows
        .iter()
        .map(|(_, m)| m.lr)
        .filter(|&l| l > 0.0)
        .collect();
    if lrs.is_empty() {
        bail!("no positive learning rates to plot");
    }
    let (lo, hi) = lrs
        .iter()
        .fold((f64::INFINITY, 0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let epochs = rows.iter().map(|(_, m)| m.epoch).max().unwrap_or(1).max(2) as f64;
    let root = BitMapBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("learning rate per epoch", ("sans-serif", 22))
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(1f64..epochs, ((lo / 2.0)..(hi * 2.0)).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("learning rate")
        .y_label_formatter(&|v| format!("{v:.0e}"))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .label_style(("sans-serif", 15))
        .draw()?;
    // Models often share a schedule: earlier ones are drawn wider so later ones stay visible.
    let n = curves.len() as u32;
    for (i, (model, epochs)) in curves.iter().enumerate() {
        let c = colour(i);
        let width = 2 * (n - i as u32) + 1;
        chart
            .draw_series(LineSeries::new(
                epochs
                    .iter()
                    .filter(|m| m.lr > 0.0)
                    .map(|m| (m.epoch as f64, m.lr)),
                c.stroke_width(width),
            ))?
            .label(*model)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .draw()?;
    root.present()?;
    Ok(())
}

/// `confusion_<model>.png`: counts of (true, predicted) classes, each cell shaded by its
/// share of the true class's images.
pub fn confusion(title: &str, classes: &[String], counts: &[Vec<i64>], path: &Path) -> Result<()> {
    font()?;
    let k = classes.len();
    if k == 0 || counts.len() != k {
        bail!("confusion matrix of {} rows for {k} classes", counts.len());
    }
    let cell = if k <= 20 { 60 } else { 14 };
    let side = (cell * k) as u32;
    let root = BitMapBackend::new(path, (side + 260, side + 170)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(14)
        .x_label_area_size(60)
        .y_label_area_size(120)
        .build_cartesian_2d((0..k - 1).into_segmented(), (0..k - 1).into_segmented())?;
    // Rows top to bottom are classes 0..k; plotters' y grows upwards.
    let name = |v: &SegmentValue<usize>, flip: bool| match v {
        SegmentValue::CenterOf(i) if *i < k => classes[if flip { k - 1 - *i } else { *i }].clone(),
        _ => String::new(),
    };
    let font_size = if k <= 20 { 14 } else { 8 };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(k)
        .y_labels(k)
        .x_label_formatter(&|v| name(v, false))
        .y_label_formatter(&|v| name(v, true))
        .x_desc("predicted")
        .y_desc("true class")
        .label_style(("sans-serif", font_size))
        .draw()?;
    for (t, row) in counts.iter().enumerate() {
        let total = row.iter().sum::<i64>().max(1) as f64;
        let y = k - 1 - t;
        for (p, &n) in row.iter().enumerate() {
            let share = n as f64 / total;
            let shade = (255.0 * (1.0 - share)) as u8;
            let corners = [
                (SegmentValue::Exact(p), SegmentValue::Exact(y)),
                (SegmentValue::Exact(p + 1), SegmentValue::Exact(y + 1)),
            ];
            chart.draw_series(std::iter::once(Rectangle::new(
                corners,
                RGBColor(shade, shade, 255).filled(),
            )))?;
            if k <= 20 {
                let colour = if share > 0.5 { WHITE } else { BLACK };
                let style = ("sans-serif", 14)
                    .into_font()
                    .color(&colour)
                    .pos(Pos::new(HPos::Center, VPos::Center));
                chart.draw_series(std::iter::once(Text::new(
                    n.to_string(),
                    (SegmentValue::CenterOf(p), SegmentValue::CenterOf(y)),
                    style,
                )))?;
            }
        }
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Width and height from a PNG's IHDR chunk, after checking the signature.
    fn png_size(path: &Path) -> (u32, u32) {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(
            &bytes[..8],
            b"\x89PNG\r\n\x1a\n",
            "{} is not a PNG",
            path.display()
        );
        assert_eq!(&bytes[12..16], b"IHDR");
        let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
        (be(16), be(20))
    }

    fn epoch(epoch: usize, loss: f64, lr: f64) -> EpochMetrics {
        EpochMetrics {
            epoch,
            loss,
            accuracy: 1.0 - loss / 3.0,
            val_loss: loss * 1.1,
            val_accuracy: 0.9 - loss / 3.0,
            val_cross_entropy: loss * 1.2,
            lr,
            parts: vec![],
            seconds: 1.0,
            train_images_per_s: 1.0,
            metrics: Vec::new(),
        }
    }

    #[test]
    fn the_three_plots_are_pngs_of_their_sizes() {
        let reason = font()
            .err()
            .map(|e| format!("no TrueType font on this machine ({e:#})"));
        let found = reason.is_none().then_some(());
        if kd_testkit::require(
            "the_three_plots_are_pngs_of_their_sizes",
            found,
            reason.as_deref().unwrap_or_default(),
        )
        .is_none()
        {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let rows: Vec<(String, EpochMetrics)> = (1..=5)
            .map(|e| ("teacher".to_string(), epoch(e, 2.0 / e as f64, 1e-3)))
            .chain((1..=8).map(|e| {
                (
                    "distilled".to_string(),
                    epoch(e, 1.5 / e as f64, 1e-3 / e as f64),
                )
            }))
            .collect();
        let curves = dir.path().join("curves.png");
        learning_curves(&rows, &curves).unwrap();
        assert_eq!(png_size(&curves), (2100, 560));
        let lr = dir.path().join("lr.png");
        lr_schedule(&rows, &lr).unwrap();
        assert_eq!(png_size(&lr), (900, 520));
        let classes: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let matrix = dir.path().join("confusion.png");
        confusion(
            "test",
            &classes,
            &[vec![5, 1, 0], vec![0, 6, 0], vec![2, 0, 4]],
            &matrix,
        )
        .unwrap();
        assert_eq!(png_size(&matrix), (3 * 60 + 260, 3 * 60 + 170));
        // A matrix that does not fit its classes is an error, not a panic.
        assert!(confusion("x", &classes, &[vec![1]], &matrix).is_err());
        assert!(learning_curves(&[], &curves).is_err());
    }
}
