//! What a view pipeline does, with presets for the reference's recipes.

use burn::prelude::*;

use crate::AugmentError;

/// RandomResizedCrop: a random box of `scale` times the area and aspect ratio in `ratio`,
/// resized to the output size.
#[derive(Config, Debug, PartialEq)]
pub struct CropConfig {
    /// Range of the box's area as a fraction of the image.
    #[config(default = "[0.2, 1.0]")]
    pub scale: [f64; 2],
    /// Range of the box's width / height (sampled log-uniformly).
    #[config(default = "[0.75, 1.333_333_333_333_333_3]")]
    pub ratio: [f64; 2],
}

/// ColorJitter (torchvision's definitions), applied to a sample with `probability`.
#[derive(Config, Debug, PartialEq)]
pub struct ColorJitterConfig {
    /// Brightness factor drawn from `[max(0, 1 - b), 1 + b]`.
    #[config(default = 0.4)]
    pub brightness: f64,
    /// Contrast factor drawn from `[max(0, 1 - c), 1 + c]`.
    #[config(default = 0.4)]
    pub contrast: f64,
    /// Saturation factor drawn from `[max(0, 1 - s), 1 + s]`.
    #[config(default = 0.4)]
    pub saturation: f64,
    /// Hue shift drawn from `[-h, h]`, `h <= 0.5`, as a fraction of the hue circle.
    #[config(default = 0.1)]
    pub hue: f64,
    /// Probability of jittering a sample at all (the reference's `RandomApply(p=0.8)`).
    #[config(default = 0.8)]
    pub probability: f64,
}

/// Gaussian blur with a random sigma, as SimCLR uses on ImageNet.
#[derive(Config, Debug, PartialEq)]
pub struct BlurConfig {
    /// Range of sigma, in pixels.
    #[config(default = "[0.1, 2.0]")]
    pub sigma: [f64; 2],
    /// Kernel size as a fraction of the image height (made odd, at least 3).
    #[config(default = 0.1)]
    pub kernel_fraction: f64,
    /// Probability of blurring a sample.
    #[config(default = 0.5)]
    pub probability: f64,
}

/// A view pipeline: crop, flip, colour jitter, grayscale, blur, normalise, in that order (the
/// reference's order). `None` leaves a step out.
#[derive(Config, Debug, PartialEq)]
pub struct ViewPipelineConfig {
    /// Output `[height, width]`; `None` keeps the input size.
    #[config(default = "None")]
    pub output_size: Option<[usize; 2]>,
    /// RandomResizedCrop; `None` keeps the whole image (resized to the output size if needed).
    #[config(default = "None")]
    pub crop: Option<CropConfig>,
    /// Probability of a horizontal flip.
    #[config(default = 0.0)]
    pub flip_probability: f64,
    /// ColorJitter.
    #[config(default = "None")]
    pub color_jitter: Option<ColorJitterConfig>,
    /// Probability of turning a sample grey.
    #[config(default = 0.0)]
    pub grayscale_probability: f64,
    /// Gaussian blur.
    #[config(default = "None")]
    pub blur: Option<BlurConfig>,
    /// Per-channel mean subtracted last.
    pub mean: Vec<f64>,
    /// Per-channel standard deviation divided by last.
    pub std: Vec<f64>,
}

impl ViewPipelineConfig {
    /// The reference's SupCon / SimCLR recipe (`main_supcon.py`): RandomResizedCrop with scale
    /// (0.2, 1), horizontal flip, ColorJitter(0.4, 0.4, 0.4, 0.1) with p 0.8, grayscale with
    /// p 0.2, normalisation.
    pub fn supcon(mean: Vec<f64>, std: Vec<f64>) -> Self {
        Self::new(mean, std)
            .with_crop(Some(CropConfig::new()))
            .with_flip_probability(0.5)
            .with_color_jitter(Some(ColorJitterConfig::new()))
            .with_grayscale_probability(0.2)
    }

    /// The reference's cross-entropy recipe (`main_ce.py`, `main_linear.py`): RandomResizedCrop
    /// with scale (0.2, 1), horizontal flip, normalisation.
    pub fn cross_entropy(mean: Vec<f64>, std: Vec<f64>) -> Self {
        Self::new(mean, std)
            .with_crop(Some(CropConfig::new()))
            .with_flip_probability(0.5)
    }

    /// Evaluation: normalisation only.
    pub fn evaluation(mean: Vec<f64>, std: Vec<f64>) -> Self {
        Self::new(mean, std)
    }

    /// Checks every value against its range and the channel count of the images.
    pub fn validate(&self, channels: usize) -> Result<(), AugmentError> {
        let invalid =
            |name, value: String, why| Err(AugmentError::InvalidParameter { name, value, why });
        for (what, values) in [("mean", &self.mean), ("std", &self.std)] {
            if values.len() != channels {
                return Err(AugmentError::ChannelMismatch {
                    what,
                    got: values.len(),
                    channels,
                });
            }
        }
        if self.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return invalid(
                "std",
                format!("{:?}", self.std),
                "every value must be positive",
            );
        }
        if let Some([h, w]) = self.output_size
            && (h == 0 || w == 0)
        {
            return invalid("output_size", format!("[{h}, {w}]"), "must be positive");
        }
        // Every probability, and every (min, max) range that must satisfy 0 < min <= max.
        let mut probabilities = vec![
            ("flip_probability", self.flip_probability),
            ("grayscale_probability", self.grayscale_probability),
        ];
        let mut ranges = Vec::new();
        if let Some(crop) = &self.crop {
            ranges.push(("crop.scale", crop.scale, 1.0));
            ranges.push(("crop.ratio", crop.ratio, f64::INFINITY));
        }
        if let Some(jitter) = &self.color_jitter {
            probabilities.push(("color_jitter.probability", jitter.probability));
            for (name, v) in [
                ("color_jitter.brightness", jitter.brightness),
                ("color_jitter.contrast", jitter.contrast),
                ("color_jitter.saturation", jitter.saturation),
            ] {
                if !(v.is_finite() && v >= 0.0) {
                    return invalid(name, v.to_string(), "must be finite and >= 0");
                }
            }
            if !(0.0..=0.5).contains(&jitter.hue) {
                return invalid(
                    "color_jitter.hue",
                    jitter.hue.to_string(),
                    "must lie in [0, 0.5]",
                );
            }
        }
        if let Some(blur) = &self.blur {
            probabilities.push(("blur.probability", blur.probability));
            ranges.push(("blur.sigma", blur.sigma, f64::INFINITY));
            if !(blur.kernel_fraction > 0.0 && blur.kernel_fraction <= 1.0) {
                return invalid(
                    "blur.kernel_fraction",
                    blur.kernel_fraction.to_string(),
                    "must lie in (0, 1]",
                );
            }
        }
        for (name, p) in probabilities {
            if !(0.0..=1.0).contains(&p) {
                return invalid(name, p.to_string(), "a probability lies in [0, 1]");
            }
        }
        for (name, [lo, hi], max) in ranges {
            if !(lo > 0.0 && lo <= hi && hi <= max && hi.is_finite()) {
                let why = if max == 1.0 {
                    "need 0 < min <= max <= 1"
                } else {
                    "need 0 < min <= max, finite"
                };
                return invalid(name, format!("{:?}", [lo, hi]), why);
            }
        }
        Ok(())
    }
}
