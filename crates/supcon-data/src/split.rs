//! Seeded shuffling and class-stratified train / validation splits.
//!
//! The generator is ChaCha8 (`rand_chacha`), whose output for a seed is fixed across versions
//! and platforms: a seed names the same split everywhere.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::DataError;

/// Indices of a training set and of its validation set (each in ascending order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainValidation {
    /// Indices to train on.
    pub train: Vec<usize>,
    /// Indices to select models on.
    pub validation: Vec<usize>,
}

/// `0..len` in an order fixed by `seed`.
pub fn shuffled_indices(len: usize, seed: u64) -> Vec<usize> {
    let mut indices: Vec<usize> = (0..len).collect();
    indices.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    indices
}

/// Splits sample indices so that every class keeps its share in both parts: from each class,
/// `round(validation_fraction * class size)` samples, chosen by `seed`, go to validation.
///
/// `validation_fraction` must lie in `[0, 1)`.
pub fn stratified_split(
    labels: &[u32],
    validation_fraction: f64,
    seed: u64,
) -> Result<TrainValidation, DataError> {
    if !(0.0..1.0).contains(&validation_fraction) {
        return Err(DataError::Invalid(format!(
            "validation fraction {validation_fraction} must be in [0, 1)"
        )));
    }
    let classes = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
    let mut by_class = vec![Vec::new(); classes];
    for (index, &label) in labels.iter().enumerate() {
        by_class[label as usize].push(index);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut train, mut validation) = (Vec::new(), Vec::new());
    for mut members in by_class {
        members.shuffle(&mut rng);
        let take = (validation_fraction * members.len() as f64).round() as usize;
        validation.extend_from_slice(&members[..take]);
        train.extend_from_slice(&members[take..]);
    }
    train.sort_unstable();
    validation.sort_unstable();
    Ok(TrainValidation { train, validation })
}

/// `count` of the samples, chosen by `seed`, with every class keeping its share: class `c` of
/// `n_c` samples gives `floor(count * n_c / n)`, and the samples left over go to the classes
/// with the largest remainders (ties to the smaller label), so exactly `count` are returned, in
/// ascending order. For training on a subset (`--limit`).
///
/// `count` must lie in `1..=labels.len()`.
///
/// ```
/// let labels = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2];
/// let subset = supcon_data::stratified_subset(&labels, 5, 7)?;
/// assert_eq!(subset.len(), 5);
/// let per_class = |c| subset.iter().filter(|&&i| labels[i] == c).count();
/// assert_eq!([per_class(0), per_class(1), per_class(2)], [2, 2, 1]);
/// # Ok::<(), supcon_data::DataError>(())
/// ```
pub fn stratified_subset(labels: &[u32], count: usize, seed: u64) -> Result<Vec<usize>, DataError> {
    let n = labels.len();
    if count == 0 || count > n {
        return Err(DataError::Invalid(format!(
            "a subset of {count} samples must have between 1 and the {n} samples of the set"
        )));
    }
    let classes = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
    let mut by_class = vec![Vec::new(); classes];
    for (index, &label) in labels.iter().enumerate() {
        by_class[label as usize].push(index);
    }
    // Largest-remainder apportionment, in integers: share = count * n_c / n.
    let mut quota: Vec<usize> = by_class.iter().map(|m| count * m.len() / n).collect();
    let mut order: Vec<usize> = (0..classes).collect();
    order.sort_by_key(|&c| (std::cmp::Reverse(count * by_class[c].len() % n), c));
    let left = count - quota.iter().sum::<usize>();
    for &c in order.iter().take(left) {
        quota[c] += 1;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut subset = Vec::with_capacity(count);
    for (mut members, take) in by_class.into_iter().zip(quota) {
        members.shuffle(&mut rng);
        subset.extend_from_slice(&members[..take]);
    }
    subset.sort_unstable();
    Ok(subset)
}
