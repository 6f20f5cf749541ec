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
