//! PNG figures of a run: `curves.png` (training loss; kNN or validation accuracy per epoch) and
//! `embedding.png` (test embeddings projected on their two principal components, one colour a
//! class). Axis ranges are printed with a built-in 3x5 digit font.

use std::path::Path;

use crate::TrainError;
use crate::features::FeatureSet;
use crate::metrics::EpochMetrics;
use image::{Rgb, RgbImage};

/// Points `(epoch, value)` of one curve and its colour.
type Series = (Vec<(f64, f64)>, Rgb<u8>);

/// File name of the curves figure.
pub const CURVES_FILE: &str = "curves.png";
/// File name of the embedding map.
pub const EMBEDDING_FILE: &str = "embedding.png";
/// Test images drawn in the embedding map (the first ones).
const MAP_POINTS: usize = 2000;

const PANEL: (u32, u32) = (420, 300);
const MARGIN: u32 = 40;
const WHITE: Rgb<u8> = Rgb([255, 255, 255]);
const GREY: Rgb<u8> = Rgb([150, 150, 150]);
const BLACK: Rgb<u8> = Rgb([0, 0, 0]);
const BLUE: Rgb<u8> = Rgb([31, 119, 180]);
const ORANGE: Rgb<u8> = Rgb([255, 127, 14]);
/// matplotlib's tab10, repeated for more classes.
const PALETTE: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

/// Writes `curves.png` and `embedding.png` (from the test split's frozen features) for a
/// finished pre-training run.
pub fn plot_run(
    run_dir: &Path,
    history: &[EpochMetrics],
    test: &FeatureSet,
) -> Result<(), TrainError> {
    plot_curves(run_dir, history)?;
    let n = test.features.dims()[0].min(MAP_POINTS);
    let d = test.features.dims()[1];
    let features = test
        .features
        .clone()
        .slice(0..n)
        .into_data()
        .try_into_vec::<f32>()
        .map_err(|e| TrainError::run(run_dir, format!("{e:?}")))?;
    let labels = test
        .labels
        .clone()
        .slice(0..n)
        .into_data()
        .try_into_vec_as::<i64>()
        .map_err(|e| TrainError::run(run_dir, format!("{e:?}")))?;
    let points = principal_plane(&features, n, d);
    let image = scatter(&points, &labels);
    save(&image, &run_dir.join(EMBEDDING_FILE))
}

/// Writes `curves.png`: loss on the left, accuracies on the right (kNN in blue, validation
/// classification in orange).
pub fn plot_curves(run_dir: &Path, history: &[EpochMetrics]) -> Result<(), TrainError> {
    let mut image = RgbImage::from_pixel(2 * PANEL.0, PANEL.1, WHITE);
    let epochs: Vec<f64> = history.iter().map(|m| m.epoch as f64).collect();
    let loss: Vec<(f64, f64)> = history.iter().map(|m| (m.epoch as f64, m.loss)).collect();
    draw_panel(&mut image, 0, &[(loss, BLUE)], &epochs, false);
    let knn: Vec<(f64, f64)> = history
        .iter()
        .filter_map(|m| m.knn_accuracy.map(|a| (m.epoch as f64, 100.0 * a)))
        .collect();
    let val: Vec<(f64, f64)> = history
        .iter()
        .filter_map(|m| m.val_accuracy.map(|a| (m.epoch as f64, 100.0 * a)))
        .collect();
    draw_panel(
        &mut image,
        PANEL.0,
        &[(knn, BLUE), (val, ORANGE)],
        &epochs,
        true,
    );
    save(&image, &run_dir.join(CURVES_FILE))
}

fn save(image: &RgbImage, path: &Path) -> Result<(), TrainError> {
    let mut bytes = Vec::new();
    image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .map_err(|e| TrainError::run(path, format!("cannot encode PNG: {e}")))?;
    crate::atomic::write_atomically(path, &bytes)
}

fn draw_panel(image: &mut RgbImage, left: u32, series: &[Series], epochs: &[f64], percent: bool) {
    let (x0, y0) = (left + MARGIN, MARGIN / 2);
    let (w, h) = (PANEL.0 - MARGIN - 10, PANEL.1 - MARGIN - MARGIN / 2);
    for x in x0..=x0 + w {
        image.put_pixel(x, y0 + h, BLACK);
    }
    for y in y0..=y0 + h {
        image.put_pixel(x0, y, BLACK);
    }
    let values: Vec<f64> = series
        .iter()
        .flat_map(|(s, _)| s.iter().map(|p| p.1))
        .collect();
    if values.is_empty() || epochs.is_empty() {
        return;
    }
    let (mut lo, mut hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(*v), b.max(*v))
        });
    if hi - lo < 1e-9 {
        lo -= 0.5;
        hi += 0.5;
    }
    let (e0, e1) = (epochs[0], epochs[epochs.len() - 1].max(epochs[0] + 1.0));
    let to_px = |(e, v): (f64, f64)| {
        let x = x0 as f64 + (e - e0) / (e1 - e0) * w as f64;
        let y = (y0 + h) as f64 - (v - lo) / (hi - lo) * h as f64;
        (x, y)
    };
    for (points, colour) in series {
        let pixels: Vec<(f64, f64)> = points.iter().map(|p| to_px(*p)).collect();
        for pair in pixels.windows(2) {
            line(image, pair[0], pair[1], *colour);
        }
        for &(x, y) in &pixels {
            dot(image, x, y, *colour);
        }
    }
    let unit = if percent { "%" } else { "" };
    text(image, left + 2, y0, &format!("{}{unit}", short(hi)));
    text(
        image,
        left + 2,
        y0 + h - 10,
        &format!("{}{unit}", short(lo)),
    );
    text(image, x0, y0 + h + 6, &short(e0));
    text(image, x0 + w - 20, y0 + h + 6, &short(e1));
}

fn short(v: f64) -> String {
    if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

fn line(image: &mut RgbImage, a: (f64, f64), b: (f64, f64), colour: Rgb<u8>) {
    let steps = ((b.0 - a.0).abs().max((b.1 - a.1).abs()).ceil() as usize).max(1);
    for i in 0..=steps {
        let t = i as f64 / steps as f64;
        put(image, a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1), colour);
    }
}

fn dot(image: &mut RgbImage, x: f64, y: f64, colour: Rgb<u8>) {
    for dx in -1..=1 {
        for dy in -1..=1 {
            put(image, x + dx as f64, y + dy as f64, colour);
        }
    }
}

fn put(image: &mut RgbImage, x: f64, y: f64, colour: Rgb<u8>) {
    if x >= 0.0 && y >= 0.0 && (x as u32) < image.width() && (y as u32) < image.height() {
        image.put_pixel(x as u32, y as u32, colour);
    }
}

/// 3x5 glyphs, row by row, for digits and `.`, `-`, `%`.
fn glyph(c: char) -> Option<[u8; 5]> {
    Some(match c {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        '.' => [0, 0, 0, 0, 2],
        '-' => [0, 0, 7, 0, 0],
        '%' => [5, 1, 2, 4, 5],
        _ => return None,
    })
}

/// Draws `s` at twice the glyph size, top-left at `(x, y)`.
fn text(image: &mut RgbImage, x: u32, y: u32, s: &str) {
    for (i, c) in s.chars().enumerate() {
        let Some(rows) = glyph(c) else { continue };
        for (r, bits) in rows.iter().enumerate() {
            for col in 0..3 {
                if bits & (4 >> col) != 0 {
                    for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                        let px = x + i as u32 * 8 + col * 2 + dx;
                        let py = y + r as u32 * 2 + dy;
                        put(image, px as f64, py as f64, GREY);
                    }
                }
            }
        }
    }
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

fn scatter(points: &[(f64, f64)], labels: &[i64]) -> RgbImage {
    let size = 480u32;
    let mut image = RgbImage::from_pixel(size, size, WHITE);
    let (mut x_lo, mut x_hi, mut y_lo, mut y_hi) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points {
        x_lo = x_lo.min(x);
        x_hi = x_hi.max(x);
        y_lo = y_lo.min(y);
        y_hi = y_hi.max(y);
    }
    let span = |lo: f64, hi: f64| if hi - lo > 1e-12 { hi - lo } else { 1.0 };
    let inner = (size - 20) as f64;
    for (&(x, y), &label) in points.iter().zip(labels) {
        let px = 10.0 + (x - x_lo) / span(x_lo, x_hi) * inner;
        let py = 10.0 + (y_hi - y) / span(y_lo, y_hi) * inner;
        let [r, g, b] = PALETTE[label.rem_euclid(10) as usize];
        dot(&mut image, px, py, Rgb([r, g, b]));
    }
    image
}

#[cfg(test)]
mod tests {
    use super::*;

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
