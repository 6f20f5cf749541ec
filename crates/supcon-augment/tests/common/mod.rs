//! Host-side helpers for the augmentation tests: images as plain vectors and straightforward
//! per-pixel reference implementations.
#![allow(dead_code)]

use burn::prelude::*;

/// A batch `[n, c, h, w]` on the host, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Images {
    pub shape: [usize; 4],
    pub data: Vec<f32>,
}

impl Images {
    /// Deterministic pseudo-random pixels in [0, 1].
    pub fn random(shape: [usize; 4], seed: u64) -> Self {
        let mut state = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let data = (0..shape.iter().product())
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 40) as f32 / (1u64 << 24) as f32
            })
            .collect();
        Self { shape, data }
    }

    pub fn at(&self, n: usize, c: usize, y: usize, x: usize) -> f32 {
        let [_, cs, h, w] = self.shape;
        self.data[((n * cs + c) * h + y) * w + x]
    }

    pub fn tensor(&self, device: &Device) -> Tensor<4> {
        Tensor::from_data(TensorData::new(self.data.clone(), self.shape), device)
    }

    pub fn from_tensor(tensor: Tensor<4>) -> Self {
        let shape = tensor.dims();
        Self {
            shape,
            data: tensor.into_data().try_into_vec::<f32>().unwrap(),
        }
    }

    /// Builds an image batch pixel by pixel.
    pub fn from_fn(shape: [usize; 4], f: impl Fn(usize, usize, usize, usize) -> f32) -> Self {
        let [n, c, h, w] = shape;
        let mut data = Vec::with_capacity(n * c * h * w);
        for ni in 0..n {
            for ci in 0..c {
                for y in 0..h {
                    for x in 0..w {
                        data.push(f(ni, ci, y, x));
                    }
                }
            }
        }
        Self { shape, data }
    }
}

/// Asserts elementwise closeness, naming the first offender.
pub fn assert_images_close(got: &Images, want: &Images, tolerance: f32, what: &str) {
    assert_eq!(got.shape, want.shape, "{what}: shapes differ");
    for (i, (g, w)) in got.data.iter().zip(&want.data).enumerate() {
        assert!(
            (g - w).abs() <= tolerance,
            "{what}: element {i}: got {g}, want {w}"
        );
    }
}

pub fn luma(r: f32, g: f32, b: f32) -> f32 {
    0.299 * r + 0.587 * g + 0.114 * b
}

/// Textbook RGB -> HSV (h in turns), hue rotation, HSV -> RGB, for one pixel.
pub fn rotate_hue(rgb: [f32; 3], shift: f32) -> [f32; 3] {
    let [r, g, b] = rgb.map(f64::from);
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let delta = max - min;
    let mut h = if delta == 0.0 {
        0.0
    } else if max == r {
        ((g - b) / delta).rem_euclid(6.0)
    } else if max == g {
        (b - r) / delta + 2.0
    } else {
        (r - g) / delta + 4.0
    } / 6.0;
    let s = if max == 0.0 { 0.0 } else { delta / max };
    let v = max;
    h = (h + f64::from(shift)).rem_euclid(1.0);
    let c = v * s;
    let hp = h * 6.0;
    let x = c * (1.0 - (hp.rem_euclid(2.0) - 1.0).abs());
    let (r1, g1, b1) = match hp as usize % 6 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = v - c;
    [(r1 + m) as f32, (g1 + m) as f32, (b1 + m) as f32]
}

/// Bilinear sample of channel `c` of image `n` at source coordinates (sy, sx) in pixels, clamped
/// to the image (torch's `interpolate`, `align_corners = False`).
pub fn bilinear(images: &Images, n: usize, c: usize, sy: f64, sx: f64) -> f32 {
    let [_, _, h, w] = images.shape;
    let sy = sy.clamp(0.0, (h - 1) as f64);
    let sx = sx.clamp(0.0, (w - 1) as f64);
    let (y0, x0) = (sy.floor() as usize, sx.floor() as usize);
    let (y1, x1) = ((y0 + 1).min(h - 1), (x0 + 1).min(w - 1));
    let (fy, fx) = (sy - y0 as f64, sx - x0 as f64);
    let p = |y, x| f64::from(images.at(n, c, y, x));
    let top = p(y0, x0) * (1.0 - fx) + p(y0, x1) * fx;
    let bottom = p(y1, x0) * (1.0 - fx) + p(y1, x1) * fx;
    (top * (1.0 - fy) + bottom * fy) as f32
}
