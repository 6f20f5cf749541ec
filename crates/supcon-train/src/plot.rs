//! PNG figures of a run, drawn with `plotters` in an embedded font (DejaVu Sans, in
//! `assets/fonts`), so nothing depends on the system's fonts: `curves.png` (training loss;
//! kNN and validation accuracy per epoch) and `embedding.png` (test embeddings on their two
//! principal components, one colour a class, with a legend of the class names).

use std::ops::Range;
use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontStyle, FontTransform, register_font};

use supcon_train::TrainError;
use supcon_train::features::FeatureSet;
use supcon_train::metrics::EpochMetrics;

/// File name of the curves figure.
pub const CURVES_FILE: &str = "curves.png";
/// File name of the embedding map.
pub const EMBEDDING_FILE: &str = "embedding.png";
/// Test images drawn in the embedding map (the first ones).
const MAP_POINTS: usize = 2000;
/// The font every figure uses, compiled in.
const FONT: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");
/// The name the font is registered under.
const FONT_NAME: &str = "sans-serif";

/// matplotlib's tab10, repeated for more classes.
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

/// Writes `curves.png` and `embedding.png` (from the test split's frozen features, classes
/// named by `classes`) for a finished pre-training run.
pub fn plot_run(
    run_dir: &Path,
    history: &[EpochMetrics],
    test: &FeatureSet,
    classes: &[String],
) -> Result<(), TrainError> {
    plot_curves(run_dir, history)?;
    let n = test.features.dims()[0].min(MAP_POINTS);
    let d = test.features.dims()[1];
    let (mut features, mut labels) = test.to_host()?;
    features.truncate(n * d);
    labels.truncate(n);
    let points = principal_plane(&features, n, d);
    let path = run_dir.join(EMBEDDING_FILE);
    let png = draw((720, 640), &path, |root| {
        scatter(root, &points, &labels, classes)
    })?;
    supcon_train::atomic::write_atomically(&path, &png)
}

/// Writes `curves.png`: the training loss on the left, the kNN and validation accuracies on
/// the right.
pub fn plot_curves(run_dir: &Path, history: &[EpochMetrics]) -> Result<(), TrainError> {
    let path = run_dir.join(CURVES_FILE);
    let loss: Vec<(f64, f64)> = history.iter().map(|m| (m.epoch as f64, m.loss)).collect();
    let knn: Vec<(f64, f64)> = history
        .iter()
        .filter_map(|m| m.knn_accuracy.map(|a| (m.epoch as f64, 100.0 * a)))
        .collect();
    let val: Vec<(f64, f64)> = history
        .iter()
        .filter_map(|m| m.val_accuracy.map(|a| (m.epoch as f64, 100.0 * a)))
        .collect();
    let epochs = history.iter().map(|m| m.epoch).max().unwrap_or(1);
    let png = draw((1000, 420), &path, |root| {
        let (left, right) = root.split_horizontally(500);
        panel(
            &left,
            "Training loss",
            "loss",
            epochs,
            SeriesLabelPosition::UpperRight, // a loss falls
            &[("loss", PALETTE[0], &loss)],
        )?;
        panel(
            &right,
            "Validation accuracy",
            "accuracy (%)",
            epochs,
            SeriesLabelPosition::LowerRight, // accuracies rise
            &[
                ("kNN", PALETTE[0], &knn),
                ("linear / classifier", PALETTE[1], &val),
            ],
        )
    })?;
    supcon_train::atomic::write_atomically(&path, &png)
}

/// Writes the confusion matrix of a linear evaluation (`confusion[true][predicted]`, classes
/// named by `classes`) as a heat map to `path`: each row shaded by the fraction of its class's
/// test images, counts written in the cells for up to 20 classes.
pub fn plot_confusion(
    path: &Path,
    confusion: &[Vec<u64>],
    classes: &[String],
    title: &str,
) -> Result<(), TrainError> {
    let k = confusion.len();
    if k == 0 {
        return Ok(());
    }
    let cell = (640 / k).clamp(6, 56) as u32;
    let side = cell * k as u32;
    let size = (side + 260, side + 240);
    let name = |i: usize| classes.get(i).cloned().unwrap_or_else(|| i.to_string());
    // Room for the longest class name (about 7 pixels a character at this size).
    let longest = (0..k).map(|i| name(i).chars().count()).max().unwrap_or(1);
    let label_room = (7 * longest as u32 + 10).min(150);
    let png = draw(size, path, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT_NAME, 20))
            .margin(16)
            .margin_right(40)
            .x_label_area_size(label_room + 30)
            .y_label_area_size(label_room + 40)
            .build_cartesian_2d((0..k - 1).into_segmented(), (0..k - 1).into_segmented())
            .map_err(|e| e.to_string())?;
        // Row r of the matrix is drawn at height k - 1 - r, so the first class is on top.
        let label = |v: &SegmentValue<usize>, flip: bool| match v {
            SegmentValue::CenterOf(i) if *i < k => name(if flip { k - 1 - *i } else { *i }),
            _ => String::new(),
        };
        let every = k.div_ceil(25);
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("predicted class")
            .y_desc("true class")
            .x_labels(k / every)
            .y_labels(k / every)
            .x_label_formatter(&|v| label(v, false))
            .y_label_formatter(&|v| label(v, true))
            .x_label_style(
                (FONT_NAME, 13)
                    .into_font()
                    .transform(FontTransform::Rotate90),
            )
            .label_style((FONT_NAME, 13))
            .axis_desc_style((FONT_NAME, 16))
            .draw()
            .map_err(|e| e.to_string())?;
        let cells = confusion.iter().enumerate().flat_map(|(r, row)| {
            let total = row.iter().sum::<u64>().max(1) as f64;
            row.iter()
                .enumerate()
                .map(move |(c, &n)| (r, c, n, n as f64 / total))
        });
        let shade = |f: f64| {
            let mix = |full: u8| (255.0 - f * (255.0 - f64::from(full))).round() as u8;
            RGBColor(mix(8), mix(69), mix(148))
        };
        chart
            .draw_series(cells.clone().map(|(r, c, _, f)| {
                let y = k - 1 - r;
                Rectangle::new(
                    [
                        (SegmentValue::Exact(c), SegmentValue::Exact(y)),
                        (SegmentValue::Exact(c + 1), SegmentValue::Exact(y + 1)),
                    ],
                    shade(f).filled(),
                )
            }))
            .map_err(|e| e.to_string())?;
        if k <= 20 {
            chart
                .draw_series(cells.map(|(r, c, n, f)| {
                    let colour = if f > 0.5 { WHITE } else { BLACK };
                    let style = (FONT_NAME, 12)
                        .into_font()
                        .color(&colour)
                        .pos(Pos::new(HPos::Center, VPos::Center));
                    Text::new(
                        n.to_string(),
                        (SegmentValue::CenterOf(c), SegmentValue::CenterOf(k - 1 - r)),
                        style,
                    )
                }))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })?;
    supcon_train::atomic::write_atomically(path, &png)
}

/// Any error of plotters, as text.
type DrawResult = Result<(), String>;

/// One curve of a panel: its name in the legend, its colour, its points `(epoch, value)`.
type Curve<'a> = (&'a str, RGBColor, &'a [(f64, f64)]);

/// Draws a `size` figure with `paint` and encodes it as PNG (`path` names it in errors).
fn draw(
    size: (u32, u32),
    path: &Path,
    paint: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> DrawResult,
) -> Result<Vec<u8>, TrainError> {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // The font is compiled in; the tests draw with it, so it parses.
        if register_font(FONT_NAME, FontStyle::Normal, FONT).is_err() {
            panic!("the embedded font does not parse");
        }
    });
    let failed = |e: String| TrainError::run(path, format!("cannot draw the figure: {e}"));
    let mut pixels = vec![0u8; (size.0 * size.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| failed(e.to_string()))?;
        paint(&root).map_err(failed)?;
        root.present().map_err(|e| failed(e.to_string()))?;
    }
    let image = image::RgbImage::from_raw(size.0, size.1, pixels)
        .ok_or_else(|| failed("wrong buffer size".into()))?;
    let mut png = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| failed(format!("cannot encode PNG: {e}")))?;
    Ok(png)
}

/// A line chart of `series` (name, colour, points `(epoch, value)`) over epochs 1..=`epochs`,
/// with a title, labelled axes and a legend. Series without points are left out.
fn panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    title: &str,
    y_label: &str,
    epochs: usize,
    legend_at: SeriesLabelPosition,
    series: &[Curve<'_>],
) -> DrawResult {
    let values: Vec<f64> = series
        .iter()
        .flat_map(|(_, _, points)| points.iter().map(|p| p.1))
        .filter(|v| v.is_finite())
        .collect();
    let y_range = padded_range(&values);
    // Half an epoch of room on each side, so that no point sits on the frame.
    let x_range = 0.5..epochs as f64 + 0.5;
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT_NAME, 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .build_cartesian_2d(x_range, y_range)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(y_label)
        .x_labels(epochs.clamp(2, 10))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .light_line_style(RGBColor(238, 238, 238))
        .label_style((FONT_NAME, 14))
        .axis_desc_style((FONT_NAME, 16))
        .draw()
        .map_err(|e| e.to_string())?;
    let mut drawn = false;
    for (name, colour, points) in series {
        if points.is_empty() {
            continue;
        }
        let colour = *colour;
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                colour.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))
            .map_err(|e| e.to_string())?;
        drawn = true;
    }
    if drawn {
        chart
            .configure_series_labels()
            .position(legend_at)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FONT_NAME, 14))
            .draw()
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The embedding map: one colour a class, a legend of the class names.
fn scatter(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    points: &[(f64, f64)],
    labels: &[i64],
    classes: &[String],
) -> DrawResult {
    let xs: Vec<f64> = points.iter().map(|p| p.0).collect();
    let ys: Vec<f64> = points.iter().map(|p| p.1).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Test embeddings, first two principal components",
            (FONT_NAME, 22),
        )
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .build_cartesian_2d(padded_range(&xs), padded_range(&ys))
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("principal component 1")
        .y_desc("principal component 2")
        .light_line_style(RGBColor(238, 238, 238))
        .label_style((FONT_NAME, 14))
        .axis_desc_style((FONT_NAME, 16))
        .draw()
        .map_err(|e| e.to_string())?;
    for (class, name) in classes.iter().enumerate() {
        let colour = PALETTE[class % PALETTE.len()];
        let mine = points
            .iter()
            .zip(labels)
            .filter(|(_, l)| **l == class as i64)
            .map(|(p, _)| Circle::new(*p, 2, colour.filled()));
        chart
            .draw_series(mine)
            .map_err(|e| e.to_string())?
            .label(name.as_str())
            .legend(move |(x, y)| Circle::new((x + 8, y), 4, colour.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT_NAME, 13))
        .draw()
        .map_err(|e| e.to_string())
}

/// `[min, max]` of `values` widened by 5% on each side (a unit range around a single value).
fn padded_range(values: &[f64]) -> Range<f64> {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !(lo.is_finite() && hi.is_finite()) {
        return 0.0..1.0;
    }
    let pad = if hi > lo { 0.05 * (hi - lo) } else { 0.5 };
    lo - pad..hi + pad
}

/// Coordinates of `n` rows of `d` features on their first two principal components
/// (power iteration on the covariance, deflated once).
pub fn principal_plane(features: &[f32], n: usize, d: usize) -> Vec<(f64, f64)> {
    let mut mean = vec![0f64; d];
    for row in features.chunks_exact(d) {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += *v as f64 / n as f64;
        }
    }
    let centred: Vec<f64> = features
        .chunks_exact(d)
        .flat_map(|row| row.iter().zip(&mean).map(|(v, m)| *v as f64 - m))
        .collect();
    let mut covariance = vec![0f64; d * d];
    for row in centred.chunks_exact(d) {
        for i in 0..d {
            let ri = row[i];
            for j in 0..d {
                covariance[i * d + j] += ri * row[j];
            }
        }
    }
    let first = top_eigenvector(&covariance, d);
    let value: f64 = (0..d)
        .map(|i| {
            first[i]
                * (0..d)
                    .map(|j| covariance[i * d + j] * first[j])
                    .sum::<f64>()
        })
        .sum();
    for i in 0..d {
        for j in 0..d {
            covariance[i * d + j] -= value * first[i] * first[j];
        }
    }
    let second = top_eigenvector(&covariance, d);
    centred
        .chunks_exact(d)
        .map(|row| {
            let a = row.iter().zip(&first).map(|(x, v)| x * v).sum();
            let b = row.iter().zip(&second).map(|(x, v)| x * v).sum();
            (a, b)
        })
        .collect()
}

fn top_eigenvector(matrix: &[f64], d: usize) -> Vec<f64> {
    let mut v: Vec<f64> = (0..d).map(|i| 1.0 + (i as f64 * 0.618).fract()).collect();
    for _ in 0..200 {
        let mut next: Vec<f64> = (0..d)
            .map(|i| (0..d).map(|j| matrix[i * d + j] * v[j]).sum())
            .collect();
        let norm = next.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm == 0.0 {
            break;
        }
        next.iter_mut().for_each(|x| *x /= norm);
        v = next;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confusion_matrices_draw_for_few_and_many_classes() {
        let dir = tempfile::tempdir().unwrap();
        for k in [3usize, 30] {
            let confusion: Vec<Vec<u64>> = (0..k)
                .map(|r| (0..k).map(|c| if r == c { 9 } else { 1 }).collect())
                .collect();
            let classes: Vec<String> = (0..k).map(|i| format!("class {i}")).collect();
            let path = dir.path().join(format!("confusion-{k}.png"));
            plot_confusion(&path, &confusion, &classes, "test").unwrap();
            let image = image::open(&path).unwrap();
            let cell = (640 / k).clamp(6, 56) as u32;
            assert_eq!(image.width(), cell * k as u32 + 260);
        }
    }

    #[test]
    fn padded_ranges_hold_every_value() {
        assert_eq!(padded_range(&[1.0, 3.0]), 0.9..3.1);
        assert_eq!(padded_range(&[2.0]), 1.5..2.5);
        assert_eq!(padded_range(&[]), 0.0..1.0);
    }

    #[test]
    fn principal_plane_finds_the_spread_directions() {
        // Points spread along (1, 1, 0) widely and along (0, 0, 1) a little, uncorrelated and
        // centred: (t, t, +-1) for t in -25..=25.
        let mut features = Vec::new();
        for t in -25..=25 {
            for s in [1.0, -1.0] {
                features.extend_from_slice(&[t as f32, t as f32, s]);
            }
        }
        let points = principal_plane(&features, 102, 3);
        // First coordinate t * sqrt(2), second s, each up to sign.
        assert!(
            (points[0].0.abs() - 25.0 * 2f64.sqrt()).abs() < 1e-6,
            "{:?}",
            points[0]
        );
        assert!((points[0].1.abs() - 1.0).abs() < 1e-6, "{:?}", points[0]);
        assert!(
            (points[1].1 + points[0].1).abs() < 1e-9,
            "{:?}",
            &points[..2]
        );
    }
}
