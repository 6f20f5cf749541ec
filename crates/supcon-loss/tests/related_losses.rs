//! The losses the SupCon paper relates to its own (N-pairs, triplet, NT-Xent, cross-entropy),
//! each against a host computation of its formula, and the connections the paper states.

mod common;

use burn::prelude::*;
use common::*;
use supcon_loss::cross_entropy::CrossEntropyLossConfig;
use supcon_loss::{
    LossError, NPairsLossConfig, Positives, SimClrLossConfig, SupConLossConfig, TripletDistance,
    TripletLossConfig,
};

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

#[test]
fn npairs_matches_its_formula() {
    let mut rng = Lcg(21);
    let rows = rng.unit_features(5, 2, 6);
    let want: Vec<f64> = (0..5)
        .map(|i| {
            let (a, p) = (&rows[i][0], &rows[i][1]);
            let sum: f64 = (0..5)
                .filter(|&j| j != i)
                .map(|j| (dot(a, &rows[j][1]) - dot(a, p)).exp())
                .sum();
            sum.ln_1p()
        })
        .collect();
    let loss = NPairsLossConfig::new().init();
    let got = values(
        loss.try_forward_per_sample(features(&rows), Positives::SameImage)
            .unwrap(),
    );
    assert_close(&got, &want, 1e-5, 1e-7, "n-pairs");

    // The regulariser adds l2_reg * (|a|^2 + |p|^2) = 2 * l2_reg on unit vectors.
    let regularised = NPairsLossConfig::new().with_l2_reg(0.01).init();
    let got = values(
        regularised
            .try_forward_per_sample(features(&rows), Positives::SameImage)
            .unwrap(),
    );
    let shifted: Vec<f64> = want.iter().map(|w| w + 0.02).collect();
    assert_close(&got, &shifted, 1e-5, 1e-7, "n-pairs with l2_reg");
}

#[test]
fn npairs_with_labels_skips_same_class_positives() {
    let mut rng = Lcg(23);
    let rows = rng.unit_features(4, 2, 5);
    let ids = [0, 0, 1, 2];
    let loss = NPairsLossConfig::new().init();
    let got = values(
        loss.try_forward_per_sample(features(&rows), Positives::Labels(labels(&ids)))
            .unwrap(),
    );
    let want: Vec<f64> = (0..4)
        .map(|i| {
            let (a, p) = (&rows[i][0], &rows[i][1]);
            let sum: f64 = (0..4)
                .filter(|&j| ids[j] != ids[i])
                .map(|j| (dot(a, &rows[j][1]) - dot(a, p)).exp())
                .sum();
            sum.ln_1p()
        })
        .collect();
    assert_close(&got, &want, 1e-5, 1e-7, "n-pairs with labels");
}

#[test]
fn supcon_with_one_positive_is_the_npairs_form() {
    // For anchor i, one view per vector: [a_i, p_i, p_j (j != i)] with labels [0, 0, 1, 2, ...].
    // SupCon at T = T_base = 1 for sample 0 has the one positive p_i and the negatives p_j in
    // its denominator: it is the N-pairs term of anchor i.
    let mut rng = Lcg(29);
    let rows = rng.unit_features(5, 2, 6);
    let npairs = values(
        NPairsLossConfig::new()
            .init()
            .try_forward_per_sample(features(&rows), Positives::SameImage)
            .unwrap(),
    );
    let supcon = SupConLossConfig::new()
        .with_temperature(1.0)
        .with_base_temperature(1.0)
        .init();
    for i in 0..5 {
        let mut set = vec![vec![rows[i][0].clone()], vec![rows[i][1].clone()]];
        set.extend((0..5).filter(|&j| j != i).map(|j| vec![rows[j][1].clone()]));
        let ids: Vec<i64> = [0, 0].into_iter().chain(1..5).collect();
        let per_sample = values(
            supcon
                .try_forward_per_sample(features(&set), Positives::Labels(labels(&ids)))
                .unwrap(),
        );
        assert!(
            (per_sample[0] - npairs[i]).abs() < 1e-5,
            "anchor {i}: {} vs {}",
            per_sample[0],
            npairs[i]
        );
    }
}

#[test]
fn supcon_with_one_positive_and_one_negative_is_softplus() {
    let mut rng = Lcg(31);
    for temperature in [0.1, 0.5, 1.0] {
        let rows = rng.unit_features(3, 1, 4);
        let (a, p, n) = (&rows[0][0], &rows[1][0], &rows[2][0]);
        let want = softplus((dot(a, n) - dot(a, p)) / temperature);
        let loss = SupConLossConfig::new()
            .with_temperature(temperature)
            .with_base_temperature(temperature)
            .init();
        let got = values(
            loss.try_forward_per_sample(features(&rows), Positives::Labels(labels(&[0, 0, 1])))
                .unwrap(),
        );
        assert!(
            (got[0] - want).abs() < 1e-5 * want.max(1.0),
            "T {temperature}: {} vs {want}",
            got[0]
        );
    }
}

#[test]
fn triplet_with_margin_2t_is_the_first_order_supcon_term() {
    // On unit vectors, squared distances, margin 2T: l / (2T) = 1 + (a.n - a.p) / T exactly,
    // the first-order expansion of exp(x) ~ log(1 + exp(x)) with x = (a.n - a.p) / T.
    let temperature = 0.1;
    let (a, p) = (vec![1.0, 0.0, 0.0], vec![0.995, 0.0998749, 0.0]);
    let n = vec![0.99, -0.1410674, 0.0];
    let rows = vec![vec![a.clone()], vec![p.clone()], vec![n.clone()]];
    let x = (dot(&a, &n) - dot(&a, &p)) / temperature;
    let triplet = TripletLossConfig::new()
        .with_margin(2.0 * temperature)
        .init();
    // Only anchor a has a valid triplet (a, p, n) and p has (p, a, n); compute a's alone by
    // a mask: a's positive is p, p has no positive.
    let only_a = mask(&[
        vec![1.0, 1.0, 0.0],
        vec![0.0, 1.0, 0.0],
        vec![0.0, 0.0, 1.0],
    ]);
    let got = scalar(
        triplet
            .try_forward(features(&rows), Positives::Mask(only_a))
            .unwrap(),
    );
    assert!(x > -1.0, "the hinge must be active for this check");
    assert!(
        (got / (2.0 * temperature) - (1.0 + x)).abs() < 1e-5,
        "{got}"
    );

    // And when the positive is much closer than the negative (x << 0), SupCon's
    // softplus(x) approaches exp(x), the term that the expansion linearises.
    let far = (-8.0f64).exp();
    assert!((softplus(-8.0) / far - 1.0).abs() < 1e-3);
}

#[test]
fn triplet_matches_its_formula_over_all_triplets() {
    let mut rng = Lcg(37);
    let rows = rng.unit_features(4, 2, 3);
    let ids = [0, 1, 0, 1];
    let flat: Vec<(&Vec<f64>, i64)> = (0..2)
        .flat_map(|v| (0..4).map(move |b| (v, b)))
        .map(|(v, b)| (&rows[b][v], ids[b]))
        .collect();
    for (distance, margin) in [
        (TripletDistance::Squared, 0.2),
        (TripletDistance::Euclidean, 0.5),
    ] {
        let d = |x: &[f64], y: &[f64]| {
            let sq: f64 = x.iter().zip(y).map(|(u, v)| (u - v).powi(2)).sum();
            if distance == TripletDistance::Squared {
                sq
            } else {
                sq.sqrt()
            }
        };
        let (mut total, mut count) = (0.0, 0);
        for (ai, (a, la)) in flat.iter().enumerate() {
            for (pi, (p, lp)) in flat.iter().enumerate() {
                for (n, ln) in &flat {
                    if pi != ai && lp == la && ln != la {
                        total += (d(a, p) - d(a, n) + margin).max(0.0);
                        count += 1;
                    }
                }
            }
        }
        let loss = TripletLossConfig::new()
            .with_margin(margin)
            .with_distance(distance)
            .init();
        let got = scalar(
            loss.try_forward(features(&rows), Positives::Labels(labels(&ids)))
                .unwrap(),
        );
        let want = total / count as f64;
        assert!(
            (got - want).abs() < 1e-5 * want.max(1e-3),
            "{distance:?}: {got} vs {want}"
        );
    }
}

#[test]
fn triplet_gradient_is_finite_for_coincident_points() {
    let rows = vec![vec![vec![0.6, 0.8]; 2]; 3];
    let input = features(&rows).require_grad();
    let loss = TripletLossConfig::new()
        .with_distance(TripletDistance::Euclidean)
        .init();
    let value = loss
        .try_forward(input.clone(), Positives::Labels(labels(&[0, 0, 1])))
        .unwrap();
    assert!((scalar(value.clone()) - 0.2).abs() < 1e-5);
    assert!(
        values(input.grad(&value.backward()).unwrap())
            .iter()
            .all(|g| g.is_finite())
    );
}

#[test]
fn nt_xent_matches_its_formula() {
    let mut rng = Lcg(41);
    let raw: Vec<Vec<Vec<f64>>> = rng.unit_features(4, 2, 5);
    // Unnormalised inputs: NT-Xent normalises them itself.
    let scaled: Vec<Vec<Vec<f64>>> = raw
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.iter()
                .map(|x| x.iter().map(|y| y * (1.0 + i as f64)).collect())
                .collect()
        })
        .collect();
    let temperature = 0.5;
    let all: Vec<&Vec<f64>> = (0..2)
        .flat_map(|v| raw.iter().map(move |s| &s[v]))
        .collect();
    let mut total = 0.0;
    for i in 0..8 {
        let pos = (i + 4) % 8;
        let den: f64 = (0..8)
            .filter(|&k| k != i)
            .map(|k| (dot(all[i], all[k]) / temperature).exp())
            .sum();
        total += -((dot(all[i], all[pos]) / temperature).exp() / den).ln();
    }
    let view = |v: usize| {
        let flat: Vec<f32> = scaled
            .iter()
            .flat_map(|s| s[v].iter().map(|&x| x as f32))
            .collect();
        Tensor::<2>::from_data(TensorData::new(flat, [4, 5]), &device())
    };
    let got = scalar(
        SimClrLossConfig::new()
            .with_temperature(temperature)
            .init()
            .try_forward(view(0), view(1))
            .unwrap(),
    );
    assert!((got - total / 8.0).abs() < 1e-5, "{got} vs {}", total / 8.0);
    let short = Tensor::<2>::zeros([3, 5], &device());
    assert!(matches!(
        SimClrLossConfig::new().init().try_forward(view(0), short),
        Err(LossError::ShapeMismatch { .. })
    ));
    // Empty views are an error, not a panic in the normalisation.
    for shape in [[0, 4], [2, 0]] {
        let empty = || Tensor::<2>::zeros(shape, &device());
        assert_eq!(
            SimClrLossConfig::new()
                .init()
                .try_forward(empty(), empty())
                .unwrap_err(),
            LossError::Empty {
                shape: vec![shape[0], 2, shape[1]]
            }
        );
    }
}

#[test]
fn cross_entropy_is_the_softmax_negative_log_likelihood() {
    let logits = [[2.0, -1.0, 0.5], [0.1, 0.2, 0.3]];
    let targets = [0i64, 2];
    let want: f64 = logits
        .iter()
        .zip(targets)
        .map(|(row, t)| {
            let lse = row.iter().map(|v: &f64| v.exp()).sum::<f64>().ln();
            lse - row[t as usize]
        })
        .sum::<f64>()
        / 2.0;
    let device = device();
    let loss = CrossEntropyLossConfig::new().init(&device);
    let got = scalar(loss.forward(Tensor::<2>::from_floats(logits, &device), labels(&targets)));
    assert!((got - want).abs() < 1e-6, "{got} vs {want}");
}

#[test]
fn related_losses_reject_bad_input() {
    let mut rng = Lcg(43);
    let three_views = rng.unit_features(3, 3, 2);
    assert!(matches!(
        NPairsLossConfig::new()
            .init()
            .try_forward(features(&three_views), Positives::SameImage),
        Err(LossError::ShapeMismatch { .. })
    ));
    assert!(matches!(
        TripletLossConfig::new().with_margin(-1.0).try_init(),
        Err(LossError::OutOfRange { name: "margin", .. })
    ));
    assert!(matches!(
        NPairsLossConfig::new().with_l2_reg(f64::NAN).try_init(),
        Err(LossError::OutOfRange { name: "l2_reg", .. })
    ));
    assert!(matches!(
        SimClrLossConfig::new().with_temperature(0.0).try_init(),
        Err(LossError::NonPositive {
            name: "temperature",
            ..
        })
    ));
    assert_eq!(
        TripletLossConfig::new()
            .init()
            .try_forward(features(&three_views), Positives::Labels(labels(&[1])))
            .unwrap_err(),
        LossError::LabelsLength { batch: 3, got: 1 }
    );
}
