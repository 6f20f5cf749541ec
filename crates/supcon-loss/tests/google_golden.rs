//! The golden values of google-research `supcon/losses_test.py`, each worked out again here.
//!
//! The google loss returns a loss per sample and scales by the temperature: that is
//! `forward_per_sample` with `base_temperature = 1`.

mod common;

use burn::prelude::*;
use common::*;
use supcon_loss::{ContrastMode, DenominatorMode, Positives, SummationLocation, SupConLossConfig};

/// Two samples, two views: four vertices of a regular tetrahedron, every pair at dot product
/// -1/3. Each anchor has one positive and three entries in its denominator, all equal, so its
/// loss at temperature T (scaled by T / T_base) is `(T / T_base) * log 3`.
fn tetrahedron() -> Vec<Vec<Vec<f64>>> {
    let (s2, s6) = (2f64.sqrt(), 6f64.sqrt());
    vec![
        vec![vec![0.0, 0.0, 1.0], vec![0.0, 2.0 * s2 / 3.0, -1.0 / 3.0]],
        vec![
            vec![s6 / 3.0, -s2 / 3.0, -1.0 / 3.0],
            vec![-s6 / 3.0, -s2 / 3.0, -1.0 / 3.0],
        ],
    ]
}

#[test]
fn tetrahedron_vertices_give_log_3() {
    let loss = SupConLossConfig::new()
        .with_temperature(1.0)
        .with_base_temperature(1.0)
        .init();
    let value = scalar(
        loss.try_forward(features(&tetrahedron()), Positives::SameImage)
            .unwrap(),
    );
    assert!((value - 3f64.ln()).abs() < 1e-6, "{value}");
}

#[test]
fn tetrahedron_with_distinct_labels_gives_log_3() {
    let loss = SupConLossConfig::new()
        .with_temperature(1.0)
        .with_base_temperature(1.0)
        .init();
    let value = scalar(
        loss.try_forward(features(&tetrahedron()), Positives::Labels(labels(&[0, 1])))
            .unwrap(),
    );
    assert!((value - 3f64.ln()).abs() < 1e-6, "{value}");
}

#[test]
fn tetrahedron_with_temperature_scales_by_it() {
    // Scaled by the temperature (google's scale_by_temperature): 0.1 * log 3.
    let scaled = SupConLossConfig::new()
        .with_temperature(0.1)
        .with_base_temperature(1.0)
        .init();
    let value = scalar(
        scaled
            .try_forward(features(&tetrahedron()), Positives::SameImage)
            .unwrap(),
    );
    assert!((value - 0.1 * 3f64.ln()).abs() < 1e-6, "{value}");
    // Not scaled (base temperature = temperature): log 3.
    let unscaled = SupConLossConfig::new()
        .with_temperature(0.1)
        .with_base_temperature(0.1)
        .init();
    let value = scalar(
        unscaled
            .try_forward(features(&tetrahedron()), Positives::SameImage)
            .unwrap(),
    );
    assert!((value - 3f64.ln()).abs() < 1e-5, "{value}");
}

#[test]
fn identical_views_of_basis_vectors_with_shared_label() {
    // Samples e3, e2, e1 with two identical views each; samples 0 and 1 share a label. For an
    // anchor of sample 0 the five other entries have dot products 1 (its other view) and 0
    // (four more), so the denominator is e + 4; its positives are its other view (1) and both
    // views of sample 1 (0, 0). Sample 2 has only its other view as positive.
    let e = std::f64::consts::E;
    let rows = vec![
        vec![vec![0.0, 0.0, 1.0], vec![0.0, 0.0, 1.0]],
        vec![vec![0.0, 1.0, 0.0], vec![0.0, 1.0, 0.0]],
        vec![vec![1.0, 0.0, 0.0], vec![1.0, 0.0, 0.0]],
    ];
    let loss = SupConLossConfig::new()
        .with_temperature(1.0)
        .with_base_temperature(1.0)
        .init();
    let got = values(
        loss.try_forward_per_sample(features(&rows), Positives::Labels(labels(&[0, 0, 1])))
            .unwrap(),
    );
    let shared = (e + 4.0).ln() - 1.0 / 3.0;
    let alone = (e + 4.0).ln() - 1.0;
    assert_close(&got, &[shared, shared, alone], 0.0, 1e-6, "per-sample loss");
    // The values google's test states.
    assert_close(
        &got,
        &[1.57149910, 1.57149910, 0.90483244],
        0.0,
        1e-6,
        "google's figures",
    );
}

/// google's 3x2x3 features with labels (0, 0, 1), temperature 1.
fn google_table_features() -> Tensor<3> {
    features(&[
        vec![vec![0.01, 0.02, 0.14], vec![0.38, 0.61, 0.50]],
        vec![vec![0.86, 0.97, 0.33], vec![0.26, 0.68, 0.45]],
        vec![vec![0.32, 0.64, 0.28], vec![0.45, 0.74, 0.73]],
    ])
}

#[test]
fn summation_locations_and_denominator_modes() {
    // Google's table (positives_cap = -1 rows); the float64 reference in
    // xtask/python/supcon_loss_reference.py reproduces each figure from the formulas.
    let table = [
        (
            SummationLocation::Outside,
            DenominatorMode::All,
            [1.6755852, 1.7973773, 1.58471],
        ),
        (
            SummationLocation::Outside,
            DenominatorMode::OnePositive,
            [1.1782627, 1.3435497, 1.58471],
        ),
        (
            SummationLocation::Outside,
            DenominatorMode::OnlyNegatives,
            [0.79652834, 1.0154991, 1.3529458],
        ),
        (
            SummationLocation::Inside,
            DenominatorMode::All,
            [1.6356678, 1.7135872, 1.58471],
        ),
        (
            SummationLocation::Inside,
            DenominatorMode::OnePositive,
            [1.1571673, 1.2941568, 1.58471],
        ),
        (
            SummationLocation::Inside,
            DenominatorMode::OnlyNegatives,
            [0.756611, 0.93170905, 1.3529458],
        ),
    ];
    for (summation, denominator, want) in table {
        let loss = SupConLossConfig::new()
            .with_temperature(1.0)
            .with_base_temperature(1.0)
            .with_summation(summation)
            .with_denominator(denominator)
            .init();
        let got = values(
            loss.try_forward_per_sample(
                google_table_features(),
                Positives::Labels(labels(&[0, 0, 1])),
            )
            .unwrap(),
        );
        assert_close(
            &got,
            &want,
            0.0,
            1e-5,
            &format!("{summation:?}/{denominator:?}"),
        );
    }
}

#[test]
fn one_view_as_anchor_versus_all_views() {
    // Anchors e3 (sample 0, view 0) and e1 (sample 1, view 0); contrasts e3, e1, e2, -e2. Each
    // anchor's positive (e2 or -e2) and both other entries are orthogonal to it: log 3.
    let rows = vec![
        vec![vec![0.0, 0.0, 1.0], vec![0.0, 1.0, 0.0]],
        vec![vec![1.0, 0.0, 0.0], vec![0.0, -1.0, 0.0]],
    ];
    let one = SupConLossConfig::new()
        .with_temperature(1.0)
        .with_base_temperature(1.0)
        .with_contrast_mode(ContrastMode::One)
        .init();
    let value = scalar(
        one.try_forward(features(&rows), Positives::SameImage)
            .unwrap(),
    );
    assert!((value - 3f64.ln()).abs() < 1e-6, "{value}");
    // With all views as anchors, e2 and -e2 see each other at -1: not log 3.
    let all = SupConLossConfig::new()
        .with_temperature(1.0)
        .with_base_temperature(1.0)
        .init();
    let value = scalar(
        all.try_forward(features(&rows), Positives::SameImage)
            .unwrap(),
    );
    assert!((value - 3f64.ln()).abs() > 1e-3, "{value}");
}

#[test]
fn single_view_with_an_anchor_without_positive() {
    let rows = vec![
        vec![vec![0.01, 0.02, 0.14]],
        vec![vec![0.86, 0.97, 0.33]],
        vec![vec![0.32, 0.64, 0.28]],
    ];
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let (f0, f1, f2) = (&rows[0][0], &rows[1][0], &rows[2][0]);
    // Samples 0 and 1 share a label; sample 2 has no positive and contributes 0.
    let loss0 = -(dot(f0, f1).exp() / (dot(f0, f1).exp() + dot(f0, f2).exp())).ln();
    let loss1 = -(dot(f1, f0).exp() / (dot(f1, f0).exp() + dot(f1, f2).exp())).ln();
    let loss = SupConLossConfig::new()
        .with_temperature(1.0)
        .with_base_temperature(1.0)
        .init();
    let got = values(
        loss.try_forward_per_sample(features(&rows), Positives::Labels(labels(&[1, 1, 2])))
            .unwrap(),
    );
    assert_close(&got, &[loss0, loss1, 0.0], 0.0, 1e-6, "one view");
    // And the reference's mean counts the anchor without positive.
    let mean = scalar(
        loss.try_forward(features(&rows), Positives::Labels(labels(&[1, 1, 2])))
            .unwrap(),
    );
    assert!((mean - (loss0 + loss1) / 3.0).abs() < 1e-6);
}

#[test]
fn default_positives_equal_distinct_labels() {
    let mut rng = Lcg(7);
    let rows = rng.unit_features(10, 3, 20);
    let loss = SupConLossConfig::new().init();
    let same_image = scalar(
        loss.try_forward(features(&rows), Positives::SameImage)
            .unwrap(),
    );
    let ids: Vec<i64> = (0..10).collect();
    let distinct = scalar(
        loss.try_forward(features(&rows), Positives::Labels(labels(&ids)))
            .unwrap(),
    );
    assert!(same_image.is_finite());
    assert_eq!(same_image, distinct);
}

#[test]
fn rank_five_features_are_flattened() {
    // Convolutional features [batch, views, c, h, w] as in google's testConvFeatures.
    let mut rng = Lcg(11);
    let rows = rng.unit_features(4, 2, 12);
    let flat = features(&rows);
    let conv: Tensor<5> = flat.clone().reshape([4, 2, 3, 2, 2]);
    let loss = SupConLossConfig::new().init();
    let a = scalar(loss.try_forward_nd(conv, Positives::SameImage).unwrap());
    let b = scalar(loss.try_forward(flat, Positives::SameImage).unwrap());
    assert_eq!(a, b);
}
