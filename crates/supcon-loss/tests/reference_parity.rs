//! Loss and gradient against an independent float64 reference, on random inputs covering every
//! contrast mode, summation location, denominator mode and kind of positives, with unit and
//! unnormalised features. The cases come from `xtask/python/supcon_loss_reference.py`
//! (`cargo xtask golden` writes them again).

mod common;

use common::*;
use serde_json::Value;
use supcon_loss::{ContrastMode, DenominatorMode, Positives, SummationLocation, SupConLossConfig};

const CASES: &str = include_str!("../../../assets/golden/supcon_loss_parity.json");

/// Relative tolerance for f32 against float64. Two absolute floors make it honest where
/// relative accuracy is out of f32's reach: a loss is a difference of logits of size up to
/// `max|z_i.z_j| / T`, so a loss near 0 carries a few f32 ulps of that (see [`loss_floor`]); and
/// single gradient entries can cancel to 0, so they are compared with a floor of `RTOL` times
/// the largest entry.
const RTOL: f64 = 1e-5;

/// A few f32 ulps of the largest logit, scaled as the loss is (`T / T_base`).
fn loss_floor(rows: &[Vec<Vec<f64>>], base_temperature: f64) -> f64 {
    let vectors: Vec<&Vec<f64>> = rows.iter().flatten().collect();
    let largest_dot = vectors
        .iter()
        .flat_map(|a| {
            vectors.iter().map(move |b| {
                a.iter()
                    .zip(b.iter())
                    .map(|(x, y)| x * y)
                    .sum::<f64>()
                    .abs()
            })
        })
        .fold(0f64, f64::max);
    8.0 * f64::from(f32::EPSILON) * largest_dot / base_temperature
}

fn nested(value: &Value) -> Vec<Vec<Vec<f64>>> {
    serde_json::from_value(value.clone()).unwrap()
}

fn positives(case: &Value, batch: usize) -> Positives {
    match case["positives"].as_str().unwrap() {
        "labels" => {
            let ids: Vec<i64> = serde_json::from_value(case["labels"].clone()).unwrap();
            assert_eq!(ids.len(), batch);
            Positives::Labels(labels(&ids))
        }
        "same_image" => Positives::SameImage,
        "mask" => Positives::Mask(mask(
            &serde_json::from_value::<Vec<Vec<f64>>>(case["mask"].clone()).unwrap(),
        )),
        other => panic!("unknown positives {other}"),
    }
}

#[test]
fn loss_and_gradient_match_the_float64_reference() {
    let data: Value = serde_json::from_str(CASES).unwrap();
    let cases = data["cases"].as_array().unwrap();
    assert!(cases.len() >= 20, "the fixture lost its cases");
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let rows = nested(&case["features"]);
        let (temperature, base_temperature) = (
            case["temperature"].as_f64().unwrap(),
            case["base_temperature"].as_f64().unwrap(),
        );
        let floor = loss_floor(&rows, base_temperature);
        let loss = SupConLossConfig::new()
            .with_temperature(temperature)
            .with_base_temperature(base_temperature)
            .with_contrast_mode(match case["contrast_mode"].as_str().unwrap() {
                "all" => ContrastMode::All,
                _ => ContrastMode::One,
            })
            .with_summation(match case["summation"].as_str().unwrap() {
                "outside" => SummationLocation::Outside,
                _ => SummationLocation::Inside,
            })
            .with_denominator(match case["denominator"].as_str().unwrap() {
                "all" => DenominatorMode::All,
                "one_positive" => DenominatorMode::OnePositive,
                _ => DenominatorMode::OnlyNegatives,
            })
            .init();

        let input = features(&rows).require_grad();
        let per_sample = loss
            .try_forward_per_sample(input.clone(), positives(case, rows.len()))
            .unwrap();
        let want: Vec<f64> = serde_json::from_value(case["per_sample"].clone()).unwrap();
        assert_close(
            &values(per_sample),
            &want,
            RTOL,
            floor,
            &format!("{name} per-sample"),
        );

        let value = loss
            .try_forward(input.clone(), positives(case, rows.len()))
            .unwrap();
        let want_loss = case["loss"].as_f64().unwrap();
        let got_loss = values(value.clone())[0];
        assert!(
            (got_loss - want_loss).abs() <= RTOL * want_loss.abs() + floor,
            "{name}: {got_loss} vs {want_loss}"
        );

        let grads = value.backward();
        let grad = values(input.grad(&grads).unwrap());
        let want_grad: Vec<f64> = nested(&case["grad"])
            .into_iter()
            .flatten()
            .flatten()
            .collect();
        let scale = want_grad.iter().fold(0f64, |m, g| m.max(g.abs()));
        assert_close(
            &grad,
            &want_grad,
            RTOL,
            RTOL * scale,
            &format!("{name} gradient"),
        );
    }
}
