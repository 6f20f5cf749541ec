//! Properties of the SupCon loss that hold for any input: the collapse value, symmetry under
//! swapping views, gradients against central differences, numerical stability, and typed errors
//! for bad input.

mod common;

use burn::prelude::*;
use common::*;
use supcon_loss::{
    ContrastMode, DenominatorMode, LossError, Positives, SummationLocation, SupConLossConfig,
};

#[test]
fn collapsed_embeddings_give_log_2n_minus_1() {
    // Every embedding the same: all 2N - 1 denominator entries equal the positives, so each
    // anchor's loss is log(2N - 1), scaled by T / T_base.
    for (batch, temperature, base) in [(4usize, 0.07, 0.07), (8, 0.1, 0.07), (5, 0.5, 1.0)] {
        let rows = vec![vec![vec![0.6, 0.8]; 2]; batch];
        let loss = SupConLossConfig::new()
            .with_temperature(temperature)
            .with_base_temperature(base)
            .init();
        let want = ((2 * batch - 1) as f64).ln() * temperature / base;
        for positives in [
            Positives::SameImage,
            Positives::Labels(labels(&vec![1; batch])),
        ] {
            let got = scalar(loss.try_forward(features(&rows), positives).unwrap());
            assert!(
                (got - want).abs() < 1e-5 * want,
                "batch {batch}: {got} vs {want}"
            );
        }
    }
}

#[test]
fn swapping_views_leaves_the_loss_unchanged() {
    let mut rng = Lcg(3);
    let rows = rng.unit_features(6, 2, 8);
    let swapped: Vec<_> = rows
        .iter()
        .map(|views| vec![views[1].clone(), views[0].clone()])
        .collect();
    let ids = [0, 1, 0, 2, 1, 2];
    for summation in [SummationLocation::Outside, SummationLocation::Inside] {
        let loss = SupConLossConfig::new()
            .with_temperature(0.1)
            .with_summation(summation)
            .init();
        let a = scalar(
            loss.try_forward(features(&rows), Positives::Labels(labels(&ids)))
                .unwrap(),
        );
        let b = scalar(
            loss.try_forward(features(&swapped), Positives::Labels(labels(&ids)))
                .unwrap(),
        );
        assert!((a - b).abs() < 1e-6 * a.abs(), "{summation:?}: {a} vs {b}");
    }
}

#[test]
fn gradient_matches_central_differences() {
    // f32 central differences: step 1e-2 on a smooth loss at T = 0.5 keeps truncation and
    // rounding error near 1e-4 of the largest entry.
    let mut rng = Lcg(5);
    let rows = rng.unit_features(4, 2, 3);
    let ids = [0, 1, 1, 0];
    for denominator in [
        DenominatorMode::All,
        DenominatorMode::OnePositive,
        DenominatorMode::OnlyNegatives,
    ] {
        let loss = SupConLossConfig::new()
            .with_temperature(0.5)
            .with_base_temperature(0.5)
            .with_denominator(denominator)
            .init();
        let eval = |rows: &Vec<Vec<Vec<f64>>>| {
            scalar(
                loss.try_forward(features(rows), Positives::Labels(labels(&ids)))
                    .unwrap(),
            )
        };
        let input = features(&rows).require_grad();
        let grads = loss
            .try_forward(input.clone(), Positives::Labels(labels(&ids)))
            .unwrap()
            .backward();
        let analytic = values(input.grad(&grads).unwrap());
        let h = 1e-2;
        let mut numeric = Vec::new();
        for b in 0..4 {
            for v in 0..2 {
                for d in 0..3 {
                    let (mut up, mut down) = (rows.clone(), rows.clone());
                    up[b][v][d] += h;
                    down[b][v][d] -= h;
                    numeric.push((eval(&up) - eval(&down)) / (2.0 * h));
                }
            }
        }
        let scale = numeric.iter().fold(0f64, |m, g| m.max(g.abs()));
        assert_close(
            &analytic,
            &numeric,
            2e-3,
            2e-3 * scale,
            &format!("{denominator:?}"),
        );
    }
}

#[test]
fn low_temperature_and_large_features_stay_finite() {
    let mut rng = Lcg(9);
    let unit = rng.unit_features(16, 2, 32);
    let huge: Vec<_> = unit
        .iter()
        .map(|views| {
            views
                .iter()
                .map(|v| v.iter().map(|x| x * 300.0).collect())
                .collect()
        })
        .collect();
    let ids: Vec<i64> = (0..16).map(|i| i % 3).collect();
    for rows in [&unit, &huge] {
        for denominator in [
            DenominatorMode::All,
            DenominatorMode::OnePositive,
            DenominatorMode::OnlyNegatives,
        ] {
            for summation in [SummationLocation::Outside, SummationLocation::Inside] {
                for (mode, temperature) in [
                    (ContrastMode::All, 0.05),
                    (ContrastMode::One, 0.05),
                    (ContrastMode::All, 1e-12),
                    (ContrastMode::One, 1e-12),
                ] {
                    let loss = SupConLossConfig::new()
                        .with_temperature(temperature)
                        .with_contrast_mode(mode)
                        .with_summation(summation)
                        .with_denominator(denominator)
                        .init();
                    let input = features(rows).require_grad();
                    let value = loss
                        .try_forward(input.clone(), Positives::Labels(labels(&ids)))
                        .unwrap();
                    let v = values(value.clone())[0];
                    let grad = values(input.grad(&value.backward()).unwrap());
                    let what =
                        format!("{denominator:?}/{summation:?}/{mode:?}/T = {temperature:e}");
                    assert!(v.is_finite() && v >= 0.0, "{what}: loss {v}");
                    assert!(
                        grad.iter().all(|g| g.is_finite()),
                        "{what}: gradient not finite"
                    );
                }
            }
        }
    }
}

/// As `T -> 0` the softmax over the other views becomes the indicator of the most similar one,
/// `a*(i)`, and the loss `-(T / T_base) mean_p log softmax` tends to
/// `(1 / T_base) mean_i (s_{i a*(i)} - mean_{p in P(i)} s_ip)` with `s_ij = z_i . z_j`, whose
/// gradient is worked out here in float64. Down to `T = 1e-20` (logits near 1e20) the loss and
/// its gradient must equal that limit: no exponent may carry the rounding of a logit that large.
#[test]
fn tiny_temperatures_reach_the_hard_limit() {
    let (batch, views, dim, base) = (8usize, 2usize, 6usize, 0.07);
    let rows = Lcg(21).unit_features(batch, views, dim);
    let ids: Vec<i64> = (0..batch as i64).map(|i| i % 3).collect();
    // Anchors view-major, as the loss orders them.
    let z: Vec<&Vec<f64>> = (0..views)
        .flat_map(|v| rows.iter().map(move |r| &r[v]))
        .collect();
    let n = z.len();
    let label = |a: usize| ids[a % batch];
    let dot = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(a, b)| a * b).sum::<f64>();
    let (mut want, mut grad) = (0.0, vec![vec![0.0; dim]; n]);
    for i in 0..n {
        let others = (0..n).filter(|&j| j != i);
        let top = others
            .clone()
            .max_by(|&a, &b| dot(z[i], z[a]).total_cmp(&dot(z[i], z[b])))
            .unwrap();
        let positives: Vec<usize> = others.filter(|&j| label(j) == label(i)).collect();
        let p = positives.len() as f64;
        want += dot(z[i], z[top]) - positives.iter().map(|&j| dot(z[i], z[j])).sum::<f64>() / p;
        // d s_ij = z_j dz_i + z_i dz_j, each term scaled by 1 / (T_base n).
        let mut add = |k: usize, other: usize, weight: f64| {
            for d in 0..dim {
                grad[k][d] += weight * z[other][d] / (base * n as f64);
            }
        };
        add(i, top, 1.0);
        add(top, i, 1.0);
        for &j in &positives {
            add(i, j, -1.0 / p);
            add(j, i, -1.0 / p);
        }
    }
    want /= base * n as f64;
    // Back to the input's [batch, views, dim] order.
    let want_grad: Vec<f64> = (0..batch)
        .flat_map(|b| (0..views).map(move |v| v * batch + b))
        .flat_map(|a| grad[a].clone())
        .collect();
    for temperature in [1e-6, 1e-9, 1e-12, 1e-20] {
        let loss = SupConLossConfig::new()
            .with_temperature(temperature)
            .with_base_temperature(base)
            .init();
        let input = features(&rows).require_grad();
        let value = loss
            .try_forward(input.clone(), Positives::Labels(labels(&ids)))
            .unwrap();
        let got = values(value.clone())[0];
        let got_grad = values(input.grad(&value.backward()).unwrap());
        assert!(
            (got - want).abs() < 1e-5 * want.abs().max(1.0),
            "T = {temperature:e}: loss {got}, limit {want}"
        );
        assert_close(
            &got_grad,
            &want_grad,
            1e-4,
            1e-5,
            &format!("gradient at T = {temperature:e}"),
        );
    }
}

#[test]
fn anchors_without_negatives_or_positives_contribute_zero() {
    // One label for everyone: no negatives. OnlyNegatives has an empty denominator there.
    let mut rng = Lcg(13);
    let rows = rng.unit_features(3, 2, 4);
    let loss = SupConLossConfig::new()
        .with_denominator(DenominatorMode::OnlyNegatives)
        .init();
    let input = features(&rows).require_grad();
    let value = loss
        .try_forward(input.clone(), Positives::Labels(labels(&[5, 5, 5])))
        .unwrap();
    assert_eq!(values(value.clone()), vec![0.0]);
    assert!(
        values(input.grad(&value.backward()).unwrap())
            .iter()
            .all(|g| *g == 0.0)
    );
    // A mask without any positive: every anchor contributes 0.
    let loss = SupConLossConfig::new().init();
    let none = mask(&vec![vec![0.0; 3]; 3]);
    assert_eq!(
        values(
            loss.try_forward(features(&rows), Positives::Mask(none))
                .unwrap()
        ),
        vec![0.0]
    );
}

#[test]
fn asymmetric_mask_is_used_as_given() {
    // mask[0][1] = 1 but mask[1][0] = 0: sample 1 is a positive of 0, not the reverse.
    let mut rng = Lcg(17);
    let rows = rng.unit_features(3, 2, 4);
    let asymmetric = mask(&[
        vec![1.0, 1.0, 0.0],
        vec![0.0, 1.0, 0.0],
        vec![0.0, 0.0, 1.0],
    ]);
    let loss = SupConLossConfig::new().with_temperature(0.5).init();
    let got = values(
        loss.try_forward_per_sample(features(&rows), Positives::Mask(asymmetric))
            .unwrap(),
    );
    let plain = values(
        loss.try_forward_per_sample(features(&rows), Positives::SameImage)
            .unwrap(),
    );
    assert!(
        (got[0] - plain[0]).abs() > 1e-4,
        "sample 0 gained positives"
    );
    assert_close(
        &got[1..],
        &plain[1..],
        1e-6,
        0.0,
        "samples 1 and 2 unchanged",
    );
}

#[test]
fn bad_input_is_a_typed_error() {
    let mut rng = Lcg(19);
    let rows = rng.unit_features(4, 2, 3);
    let loss = SupConLossConfig::new().init();
    assert_eq!(
        loss.try_forward(features(&rows), Positives::Labels(labels(&[1, 2, 3])))
            .unwrap_err(),
        LossError::LabelsLength { batch: 4, got: 3 }
    );
    assert_eq!(
        loss.try_forward(
            features(&rows),
            Positives::Mask(mask(&vec![vec![1.0; 3]; 3]))
        )
        .unwrap_err(),
        LossError::MaskShape {
            batch: 4,
            got: [3, 3]
        }
    );
    for temperature in [0.0, -0.1, f64::NAN, f64::INFINITY] {
        let bad = SupConLossConfig::new().with_temperature(temperature);
        assert!(matches!(
            bad.try_init(),
            Err(LossError::NonPositive {
                name: "temperature",
                ..
            })
        ));
        let panic = std::panic::catch_unwind(|| bad.init()).unwrap_err();
        let message = panic.downcast_ref::<String>().unwrap();
        assert!(
            message.contains("temperature must be a positive"),
            "{message}"
        );
    }
    assert!(matches!(
        SupConLossConfig::new()
            .with_base_temperature(0.0)
            .try_init(),
        Err(LossError::NonPositive {
            name: "base_temperature",
            ..
        })
    ));
    // Beyond what float32 can scale by: 1 / T overflows (or is not a normal number), or
    // T / T_base underflows.
    for temperature in [1e-21, 1e-39, 1e-300, 1e38, 1e300] {
        assert!(
            matches!(
                SupConLossConfig::new()
                    .with_temperature(temperature)
                    .try_init(),
                Err(LossError::OutOfRange {
                    name: "temperature",
                    ..
                })
            ),
            "temperature {temperature:e}"
        );
    }
    // A base temperature out of the same range, or a scale T / T_base that would make the
    // loss overflow (1e37 ln N) or vanish.
    for (temperature, base) in [(1e-20, 1e20), (0.1, 1e-39), (1e18, 1e-19)] {
        assert!(
            matches!(
                SupConLossConfig::new()
                    .with_temperature(temperature)
                    .with_base_temperature(base)
                    .try_init(),
                Err(LossError::OutOfRange {
                    name: "base_temperature",
                    ..
                })
            ),
            "temperature {temperature:e}, base {base:e}"
        );
    }
    // The corners accepted give a finite loss and gradient.
    for (temperature, base) in [(1e-20, 1e-20), (0.1, 1e-20), (1e10, 1e-20), (8e37, 8e37)] {
        let loss = SupConLossConfig::new()
            .with_temperature(temperature)
            .with_base_temperature(base)
            .try_init()
            .unwrap();
        let input = features(&rows).require_grad();
        let value = loss
            .try_forward(input.clone(), Positives::Labels(labels(&[1, 2, 1, 2])))
            .unwrap();
        let v = values(value.clone())[0];
        let grad = values(input.grad(&value.backward()).unwrap());
        assert!(
            v.is_finite() && grad.iter().all(|g| g.is_finite()),
            "temperature {temperature:e}, base {base:e}: loss {v}"
        );
    }
    for temperature in [1e-20, 1e37] {
        assert!(
            SupConLossConfig::new()
                .with_temperature(temperature)
                .with_base_temperature(temperature)
                .try_init()
                .is_ok(),
            "temperature {temperature:e}"
        );
    }
    // `forward` panics with the message `try_forward` returns.
    let panic = std::panic::catch_unwind(|| {
        loss.forward(features(&rows), Positives::Labels(labels(&[1, 2, 3])))
    })
    .unwrap_err();
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(
        message.contains("labels have length 3 but the batch has 4"),
        "{message}"
    );
    let one_view = rng.unit_features(4, 1, 3);
    assert_eq!(
        loss.try_forward(features(&one_view), Positives::SameImage)
            .unwrap_err(),
        LossError::SingleViewWithoutPositives
    );
    let flat: Tensor<2> = features(&rows).reshape([4, 6]);
    assert_eq!(
        loss.try_forward_nd(flat, Positives::SameImage).unwrap_err(),
        LossError::WrongRank { shape: vec![4, 6] }
    );
    let empty = Tensor::<3>::zeros([0, 2, 3], &device());
    assert!(matches!(
        loss.try_forward(empty, Positives::SameImage),
        Err(LossError::Empty { .. })
    ));
}
