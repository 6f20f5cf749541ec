//! Our RandomResizedCrop parameter sampler against torchvision's: the statistics of 100,000
//! boxes per image shape, compared with those of `RandomResizedCrop.get_params` recorded by
//! `xtask/python/crop_stats.py` (`cargo xtask golden`).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use supcon_augment::{CropBox, sample_crop};

const STATS: &str = include_str!("../../../assets/golden/crop_stats.json");

fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

#[test]
fn boxes_have_torchvisions_statistics() {
    let data: Value = serde_json::from_str(STATS).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    for case in data["cases"].as_array().unwrap() {
        let (height, width) = (
            case["height"].as_u64().unwrap() as usize,
            case["width"].as_u64().unwrap() as usize,
        );
        let pair = |key: &str| {
            [
                case[key][0].as_f64().unwrap(),
                case[key][1].as_f64().unwrap(),
            ]
        };
        let (scale, ratio) = (pair("scale"), pair("ratio"));
        let draws = case["draws"].as_u64().unwrap() as usize;
        let boxes: Vec<CropBox> = (0..draws)
            .map(|_| sample_crop(&mut rng, height, width, scale, ratio))
            .collect();
        assert!(boxes.iter().all(|b| b.height > 0
            && b.width > 0
            && b.top + b.height <= height
            && b.left + b.width <= width));

        let name = format!("{height}x{width}");
        for (key, pick) in [
            ("top", (|b: &CropBox| b.top) as fn(&CropBox) -> usize),
            ("left", |b| b.left),
            ("box_height", |b| b.height),
            ("box_width", |b| b.width),
        ] {
            let values: Vec<f64> = boxes.iter().map(|b| pick(b) as f64).collect();
            let (mean, std) = mean_std(&values);
            let (want_mean, want_std) = (
                case[key]["mean"].as_f64().unwrap(),
                case[key]["std"].as_f64().unwrap(),
            );
            // Two independent samples of `draws`: the difference of means has standard error
            // sqrt(2 / draws) * std; allow five of them.
            let tolerance = 5.0 * (2.0 / draws as f64).sqrt() * want_std.max(1e-3);
            assert!(
                (mean - want_mean).abs() <= tolerance,
                "{name} {key}: mean {mean} vs torchvision {want_mean} (tolerance {tolerance})"
            );
            assert!(
                (std - want_std).abs() <= 0.03 * want_std + 1e-3,
                "{name} {key}: std {std} vs torchvision {want_std}"
            );
        }
        // The central fallback box: what the sampler returns when no attempt can fit (a scale
        // above 1 never fits).
        let fallback = boxes
            .iter()
            .filter(|b| {
                **b == sample_crop(
                    &mut ChaCha8Rng::seed_from_u64(0),
                    height,
                    width,
                    [2.0, 2.0],
                    ratio,
                )
            })
            .count() as f64
            / draws as f64;
        let want = case["fallback_fraction"].as_f64().unwrap();
        let tolerance = 5.0 * (2.0 * want.max(1e-4) * (1.0 - want) / draws as f64).sqrt() + 1e-4;
        assert!(
            (fallback - want).abs() <= tolerance,
            "{name}: fallback {fallback} vs torchvision {want}"
        );
    }
}
