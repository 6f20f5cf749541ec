//! SupCon against a memory of extra contrast vectors (`forward_with_memory`): identities with
//! `forward`, a float64 reference written from the formula, positives only in the memory, no
//! gradient into the memory, typed errors.

mod common;

use burn::prelude::*;
use common::*;
use supcon_loss::{LossError, Positives, SupConLossConfig};

fn rows(values: &[Vec<f64>]) -> Tensor<2> {
    let flat: Vec<f32> = values.iter().flatten().map(|&x| x as f32).collect();
    Tensor::from_data(
        TensorData::new(flat, [values.len(), values[0].len()]),
        &device(),
    )
}

#[test]
fn an_empty_memory_is_forward() {
    let mut rng = Lcg(3);
    let batch = rng.unit_features(5, 2, 4);
    let ids = [0, 1, 0, 2, 1];
    let loss = SupConLossConfig::new().init();
    let plain = scalar(loss.forward(features(&batch), Positives::Labels(labels(&ids))));
    let empty = Tensor::<2>::zeros([0, 4], &device());
    for memory_labels in [None, Some(labels(&[]))] {
        let with = loss.forward_with_memory(
            features(&batch),
            Positives::Labels(labels(&ids)),
            empty.clone(),
            memory_labels,
        );
        assert_eq!(scalar(with), plain);
    }
}

#[test]
fn the_memory_of_extra_samples_is_forward_on_the_whole_batch_restricted_to_its_anchors() {
    let mut rng = Lcg(11);
    let (b1, b2, v) = (4, 3, 2);
    let all = rng.unit_features(b1 + b2, v, 5);
    let ids = [0, 1, 2, 0, 1, 2, 0];
    // 1e-12: logits near 1e12, where only exact exponents keep the two paths together.
    for temperature in [0.2, 1e-12] {
        let loss = SupConLossConfig::new().with_temperature(temperature).init();
        // forward on all samples, per sample: the first b1 are the anchors we keep.
        let per_sample =
            values(loss.forward_per_sample(features(&all), Positives::Labels(labels(&ids))));
        let want = per_sample[..b1].iter().sum::<f64>() / b1 as f64;
        // The memory holds every view of the extra samples, in any order.
        let memory: Vec<Vec<f64>> = all[b1..].iter().flat_map(|s| s.iter().cloned()).collect();
        let memory_ids: Vec<i64> = ids[b1..].iter().flat_map(|&l| [l, l]).collect();
        let got = scalar(loss.forward_with_memory(
            features(&all[..b1]),
            Positives::Labels(labels(&ids[..b1])),
            rows(&memory),
            Some(labels(&memory_ids)),
        ));
        assert!(
            (got - want).abs() < 1e-5 * want.abs(),
            "T = {temperature:e}: {got} vs {want}"
        );
    }
}

#[test]
fn value_and_gradient_match_a_float64_supcon_reference() {
    for (seed, same_image) in [(21u64, false), (22, true), (23, false)] {
        let mut rng = Lcg(seed);
        let (b, v, d, k) = (4, 2, 3, 6);
        let batch = rng.unit_features(b, v, d);
        let memory: Vec<Vec<f64>> = rng
            .unit_features(k, 1, d)
            .into_iter()
            .map(|m| m[0].clone())
            .collect();
        let ids = [0i64, 1, 1, 2];
        let memory_ids = [2i64, 0, 3, 1, 0, 2];
        let (t, base) = (0.3, 0.07);
        let pos = |batch: &[Vec<Vec<f64>>]| {
            let label_of = |c: usize| {
                if c < b * v {
                    ids[c % b]
                } else {
                    memory_ids[c - b * v]
                }
            };
            let batch_len = batch.len() * v;
            move |a: usize, c: usize| {
                if same_image {
                    c < batch_len && c % b == a % b
                } else {
                    label_of(a) == label_of(c)
                }
            }
        };
        let want = supcon_reference(&batch, &memory, t, base, pos(&batch));
        let loss = SupConLossConfig::new()
            .with_temperature(t)
            .with_base_temperature(base)
            .init();
        let positives = || {
            if same_image {
                Positives::SameImage
            } else {
                Positives::Labels(labels(&ids))
            }
        };
        let input = features(&batch).require_grad();
        let memory_tensor = rows(&memory).require_grad();
        let value = loss.forward_with_memory(
            input.clone(),
            positives(),
            memory_tensor.clone(),
            Some(labels(&memory_ids)),
        );
        let got = scalar(value.clone());
        assert!(
            (got - want).abs() < 1e-5 * want.abs(),
            "seed {seed}: {got} vs {want}"
        );

        // Gradient against central differences of the float64 reference.
        let grads = value.backward();
        let gradient = values(input.grad(&grads).expect("features get a gradient"));
        assert!(
            memory_tensor.grad(&grads).is_none(),
            "no gradient flows into the memory"
        );
        let h = 1e-6;
        let mut numeric = Vec::new();
        for i in 0..b {
            for j in 0..v {
                for c in 0..d {
                    let mut plus = batch.clone();
                    plus[i][j][c] += h;
                    let mut minus = batch.clone();
                    minus[i][j][c] -= h;
                    let f = |x: &[Vec<Vec<f64>>]| supcon_reference(x, &memory, t, base, pos(x));
                    numeric.push((f(&plus) - f(&minus)) / (2.0 * h));
                }
            }
        }
        let scale = numeric.iter().fold(0.0f64, |m, g| m.max(g.abs()));
        assert_close(
            &gradient,
            &numeric,
            1e-3,
            1e-4 * scale,
            &format!("gradient, seed {seed}"),
        );
    }
}

#[test]
fn anchors_whose_only_positives_are_in_the_memory() {
    // One view each: no positive in the batch, one of each class in the memory.
    let batch = vec![vec![vec![1.0, 0.0]], vec![vec![0.0, 1.0]]];
    let memory = vec![vec![0.6, 0.8], vec![0.8, 0.6], vec![-1.0, 0.0]];
    let (t, base) = (0.5, 0.5);
    let loss = SupConLossConfig::new()
        .with_temperature(t)
        .with_base_temperature(base)
        .init();
    let plain = scalar(loss.forward(features(&batch), Positives::Labels(labels(&[7, 8]))));
    assert_eq!(plain, 0.0, "without the memory no anchor has a positive");
    let got = scalar(loss.forward_with_memory(
        features(&batch),
        Positives::Labels(labels(&[7, 8])),
        rows(&memory),
        Some(labels(&[8, 7, 9])),
    ));
    // Anchor 0 = (1, 0): logits over {(0,1), m0, m1, m2} = {0, 0.6, 0.8, -1} / 0.5, positive m1.
    // Anchor 1 = (0, 1): logits over {(1,0), m0, m1, m2} = {0, 0.8, 0.6, 0} / 0.5, positive m0.
    let term = |positive: f64, all: &[f64]| {
        -(positive / t - all.iter().map(|x| (x / t).exp()).sum::<f64>().ln())
    };
    let want = (term(0.8, &[0.0, 0.6, 0.8, -1.0]) + term(0.8, &[0.0, 0.8, 0.6, 0.0])) / 2.0;
    assert!((got - want).abs() < 1e-5, "{got} vs {want}");
}

#[test]
fn bad_memory_is_a_typed_error() {
    let mut rng = Lcg(5);
    let batch = rng.unit_features(3, 2, 4);
    let loss = SupConLossConfig::new().init();
    let with = |memory: Tensor<2>, memory_labels| {
        loss.try_forward_with_memory(
            features(&batch),
            Positives::Labels(labels(&[0, 1, 0])),
            memory,
            memory_labels,
        )
    };
    assert!(matches!(
        with(Tensor::zeros([5, 3], &device()), Some(labels(&[0; 5]))),
        Err(LossError::ShapeMismatch { .. })
    ));
    assert_eq!(
        with(Tensor::zeros([5, 4], &device()), None).unwrap_err(),
        LossError::MemoryLabelsMissing
    );
    assert_eq!(
        with(Tensor::zeros([5, 4], &device()), Some(labels(&[0, 1]))).unwrap_err(),
        LossError::MemoryLabelsLength { memory: 5, got: 2 }
    );
    // SimCLR with a bank of negatives needs no labels.
    let simclr = loss.try_forward_with_memory(
        features(&batch),
        Positives::SameImage,
        Tensor::ones([5, 4], &device()).div_scalar(2.0),
        None,
    );
    assert!(scalar(simclr.unwrap()).is_finite());
}
