//! Per-sample random parameters, drawn on the host in a fixed order so that a seed gives the
//! same views on every device.

use rand::Rng;

use crate::ViewPipelineConfig;

/// A crop box in pixels: rows `top..top + height`, columns `left..left + width`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropBox {
    /// First row.
    pub top: usize,
    /// First column.
    pub left: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

impl CropBox {
    /// The whole `height x width` image.
    pub fn full(height: usize, width: usize) -> Self {
        Self {
            top: 0,
            left: 0,
            height,
            width,
        }
    }
}

/// ColorJitter factors of one sample (neutral values: 1, 1, 1, 0) and the order of its four
/// operations (0 brightness, 1 contrast, 2 saturation, 3 hue).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JitterParams {
    /// Brightness factor.
    pub brightness: f32,
    /// Contrast factor.
    pub contrast: f32,
    /// Saturation factor.
    pub saturation: f32,
    /// Hue shift, in turns.
    pub hue: f32,
    /// The order of the operations, a permutation of `0..4`.
    pub order: [usize; 4],
}

/// Everything random about one view of one sample.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleParams {
    /// The crop box.
    pub crop: CropBox,
    /// Mirror left-right.
    pub flip: bool,
    /// ColorJitter, if applied.
    pub jitter: Option<JitterParams>,
    /// Turn grey.
    pub grayscale: bool,
    /// Blur sigma, if blurred.
    pub blur_sigma: Option<f32>,
}

impl SampleParams {
    /// Why these parameters cannot be applied to a `height x width` image, if they cannot: a
    /// crop box that is empty or leaves the image (parameters drawn for another size, say), a
    /// jitter order that is not a permutation of `0..4`, a jitter factor that is negative or
    /// not finite, a hue shift outside `[-0.5, 0.5]`, a blur sigma that is not positive.
    pub fn check(&self, height: usize, width: usize) -> Result<(), String> {
        let c = self.crop;
        if c.height == 0 || c.width == 0 {
            return Err(format!("crop box of {}x{} is empty", c.height, c.width));
        }
        let past = |start: usize, size: usize, limit: usize| {
            start.checked_add(size).is_none_or(|end| end > limit)
        };
        if past(c.top, c.height, height) || past(c.left, c.width, width) {
            return Err(format!(
                "crop box of {}x{} at ({}, {}) does not fit in a {height}x{width} image \
                 (parameters drawn for another image size?)",
                c.height, c.width, c.top, c.left
            ));
        }
        if let Some(j) = &self.jitter {
            let mut seen = [false; 4];
            for &op in &j.order {
                if op >= 4 || std::mem::replace(&mut seen[op], true) {
                    return Err(format!(
                        "jitter order {:?} is not a permutation of 0..4",
                        j.order
                    ));
                }
            }
            for (name, value) in [
                ("brightness", j.brightness),
                ("contrast", j.contrast),
                ("saturation", j.saturation),
            ] {
                if !(value.is_finite() && value >= 0.0) {
                    return Err(format!(
                        "jitter {name} factor {value} is not a finite number >= 0"
                    ));
                }
            }
            if !(-0.5..=0.5).contains(&j.hue) {
                return Err(format!("jitter hue shift {} is outside [-0.5, 0.5]", j.hue));
            }
        }
        if let Some(sigma) = self.blur_sigma
            && !(sigma.is_finite() && sigma > 0.0)
        {
            return Err(format!("blur sigma {sigma} is not a positive number"));
        }
        Ok(())
    }
}

/// torchvision's `RandomResizedCrop.get_params`: up to ten attempts at a box of
/// `uniform(scale) * area` with aspect ratio `exp(uniform(log ratio))`, sides rounded half to
/// even (Python's `round`), accepted if it fits, at a uniform position; otherwise the central
/// crop of the image clamped to the ratio range.
pub fn sample_crop<R: Rng>(
    rng: &mut R,
    height: usize,
    width: usize,
    scale: [f64; 2],
    ratio: [f64; 2],
) -> CropBox {
    let area = (height * width) as f64;
    let (log_lo, log_hi) = (ratio[0].ln(), ratio[1].ln());
    for _ in 0..10 {
        let target_area = area * uniform(rng, scale[0], scale[1]);
        let aspect = uniform(rng, log_lo, log_hi).exp();
        let w = (target_area * aspect).sqrt().round_ties_even() as usize;
        let h = (target_area / aspect).sqrt().round_ties_even() as usize;
        if 0 < w && w <= width && 0 < h && h <= height {
            let top = rng.random_range(0..=height - h);
            let left = rng.random_range(0..=width - w);
            return CropBox {
                top,
                left,
                height: h,
                width: w,
            };
        }
    }
    let in_ratio = width as f64 / height as f64;
    let (h, w) = if in_ratio < ratio[0] {
        (
            ((width as f64) / ratio[0]).round_ties_even() as usize,
            width,
        )
    } else if in_ratio > ratio[1] {
        (
            height,
            ((height as f64) * ratio[1]).round_ties_even() as usize,
        )
    } else {
        (height, width)
    };
    CropBox {
        top: (height - h) / 2,
        left: (width - w) / 2,
        height: h,
        width: w,
    }
}

fn uniform<R: Rng>(rng: &mut R, lo: f64, hi: f64) -> f64 {
    if hi > lo {
        rng.random_range(lo..hi)
    } else {
        lo
    }
}

fn factor<R: Rng>(rng: &mut R, spread: f64) -> f32 {
    uniform(rng, (1.0 - spread).max(0.0), 1.0 + spread) as f32
}

/// Draws one sample's parameters for `config` on a `height x width` image, in this order:
/// crop, flip, jitter (apply?, order, brightness, contrast, saturation, hue), grayscale, blur.
/// A step that is off draws nothing.
pub(crate) fn sample_params<R: Rng>(
    rng: &mut R,
    config: &ViewPipelineConfig,
    height: usize,
    width: usize,
) -> SampleParams {
    let crop = match &config.crop {
        Some(c) => sample_crop(rng, height, width, c.scale, c.ratio),
        None => CropBox::full(height, width),
    };
    let flip = config.flip_probability > 0.0 && rng.random_bool(config.flip_probability);
    let jitter = config.color_jitter.as_ref().and_then(|j| {
        if !rng.random_bool(j.probability) {
            return None;
        }
        let mut order = [0, 1, 2, 3];
        for i in (1..4).rev() {
            order.swap(i, rng.random_range(0..=i));
        }
        Some(JitterParams {
            order,
            brightness: factor(rng, j.brightness),
            contrast: factor(rng, j.contrast),
            saturation: factor(rng, j.saturation),
            hue: uniform(rng, -j.hue, j.hue) as f32,
        })
    });
    let grayscale =
        config.grayscale_probability > 0.0 && rng.random_bool(config.grayscale_probability);
    let blur_sigma = config.blur.as_ref().and_then(|b| {
        rng.random_bool(b.probability)
            .then(|| uniform(rng, b.sigma[0], b.sigma[1]) as f32)
    });
    SampleParams {
        crop,
        flip,
        jitter,
        grayscale,
        blur_sigma,
    }
}
