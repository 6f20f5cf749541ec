//! Seeded splits, the embedded MNIST, and batches on a device.

use burn::prelude::*;
use supcon_data::{DataError, embedded_mnist, shuffled_indices, stratified_split};

#[test]
fn shuffling_is_a_seeded_permutation() {
    let a = shuffled_indices(1000, 7);
    assert_eq!(a, shuffled_indices(1000, 7));
    assert_ne!(a, shuffled_indices(1000, 8));
    let mut sorted = a.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
    assert_ne!(a, sorted);
}

#[test]
fn stratified_split_keeps_class_shares() {
    // Three classes of 100, 50 and 10 samples, interleaved.
    let labels: Vec<u32> = (0..160)
        .map(|i| {
            if i < 100 {
                0
            } else if i < 150 {
                1
            } else {
                2
            }
        })
        .collect();
    let split = stratified_split(&labels, 0.2, 3).unwrap();
    let count = |indices: &[usize], class| indices.iter().filter(|&&i| labels[i] == class).count();
    assert_eq!(
        [
            count(&split.validation, 0),
            count(&split.validation, 1),
            count(&split.validation, 2)
        ],
        [20, 10, 2]
    );
    assert_eq!(split.train.len() + split.validation.len(), 160);
    assert!(split.train.iter().all(|i| !split.validation.contains(i)));
    assert_eq!(split, stratified_split(&labels, 0.2, 3).unwrap());
    assert_ne!(split, stratified_split(&labels, 0.2, 4).unwrap());
    assert!(matches!(
        stratified_split(&labels, 1.0, 0),
        Err(DataError::Invalid(_))
    ));
}

#[test]
fn embedded_mnist_is_split_without_overlap() {
    let splits = embedded_mnist().unwrap();
    // 12.5% of each class of the first 8,000, rounded per class: 1,001 in all.
    assert_eq!(
        [
            splits.train.len(),
            splits.validation.len(),
            splits.test.len()
        ],
        [6_999, 1_001, 2_000]
    );
    for part in [&splits.train, &splits.validation, &splits.test] {
        assert_eq!(part.image_shape(), [1, 28, 28]);
        assert_eq!(part.num_classes(), 10);
        assert!(
            part.class_counts().iter().all(|&c| c > part.len() / 20),
            "{:?}",
            part.class_counts()
        );
    }
    // Another fraction for validation: the same test set, the same 8,000 digits divided
    // otherwise; the default fraction is the split above.
    let quarter = supcon_data::embedded_mnist_split(0.25).unwrap();
    assert_eq!(
        [quarter.train.len(), quarter.validation.len()],
        [6_000, 2_000]
    );
    assert_eq!(quarter.test.pixels(), splits.test.pixels());
    let default = supcon_data::embedded_mnist_split(supcon_data::EMBEDDED_MNIST_VAL_FRACTION);
    assert_eq!(
        default.unwrap().validation.pixels(),
        splits.validation.pixels()
    );
    // Real digits: mostly black background, some bright strokes.
    let pixels = splits.test.pixels();
    let dark = pixels.iter().filter(|&&p| p == 0).count() as f64 / pixels.len() as f64;
    assert!((0.6..0.95).contains(&dark), "{dark}");
    assert!(pixels.contains(&255));
}

#[test]
fn batches_are_floats_in_unit_range_in_the_given_order() {
    let splits = embedded_mnist().unwrap();
    let device = Device::flex();
    let batch = splits.test.batch(&[5, 0, 5], &device).unwrap();
    assert_eq!(batch.images.dims(), [3, 1, 28, 28]);
    let values = batch.images.into_data().try_into_vec::<f32>().unwrap();
    let first: Vec<f32> = splits
        .test
        .image(5)
        .unwrap()
        .iter()
        .map(|&p| p as f32 / 255.0)
        .collect();
    assert_eq!(&values[..784], first.as_slice());
    assert_eq!(&values[..784], &values[1568..]);
    assert!(values.iter().all(|v| (0.0..=1.0).contains(v)));
    let labels = batch.labels.try_into_vec_as::<i64>().unwrap();
    let want = splits.test.labels()[5] as i64;
    assert_eq!(labels, vec![want, splits.test.labels()[0] as i64, want]);

    assert!(matches!(
        splits.test.batch(&[2_000], &device),
        Err(DataError::Invalid(_))
    ));
    assert!(matches!(
        splits.test.batch(&[], &device),
        Err(DataError::Invalid(_))
    ));
}

#[test]
fn stratified_subsets_keep_each_class_share_and_their_exact_size() {
    // 50 of class 0, 30 of class 1, 20 of class 2, interleaved.
    let labels: Vec<u32> = (0..100u32)
        .map(|i| match i % 10 {
            0..=4 => 0,
            5..=7 => 1,
            _ => 2,
        })
        .collect();
    for count in [1, 7, 10, 33, 99, 100] {
        let subset = supcon_data::stratified_subset(&labels, count, 5).unwrap();
        assert_eq!(subset.len(), count);
        assert!(
            subset.windows(2).all(|w| w[0] < w[1]),
            "ascending, no repeats"
        );
        for (class, size) in [(0u32, 50.0), (1, 30.0), (2, 20.0)] {
            let got = subset.iter().filter(|&&i| labels[i] == class).count() as f64;
            let share = count as f64 * size / 100.0;
            assert!(
                (got - share).abs() < 1.0,
                "class {class}: {got} for {share}"
            );
        }
        assert_eq!(
            supcon_data::stratified_subset(&labels, count, 5).unwrap(),
            subset
        );
    }
    assert_ne!(
        supcon_data::stratified_subset(&labels, 10, 5).unwrap(),
        supcon_data::stratified_subset(&labels, 10, 6).unwrap()
    );
    for bad in [0, 101] {
        let error = supcon_data::stratified_subset(&labels, bad, 5).unwrap_err();
        assert!(
            error.to_string().contains("between 1 and the 100"),
            "{error}"
        );
    }
}
