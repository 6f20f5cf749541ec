//! 10,000 real MNIST digits compiled into the crate, so that a demo needs no files.
//!
//! The split: the last 2,000 images are the test set; the first 8,000 are divided,
//! class-stratified with seed [`EMBEDDED_MNIST_SEED`], into 6,999 for training and 1,001
//! for validation (12.5% of each class, rounded per class).

use std::path::Path;

use crate::{DataError, ImageDataset, Splits, idx, stratified_split};

const IMAGES: &[u8] = include_bytes!("../../../assets/mnist-10k/all-images-idx3-ubyte.gz");
const LABELS: &[u8] = include_bytes!("../../../assets/mnist-10k/all-labels-idx1-ubyte.gz");

/// The seed of the embedded train / validation split.
pub const EMBEDDED_MNIST_SEED: u64 = 0;

/// The embedded MNIST digits, split into 6,999 train, 1,001 validation and 2,000 test images.
pub fn embedded_mnist() -> Result<Splits, DataError> {
    let all = idx::from_bytes(
        IMAGES,
        Path::new("<embedded>/all-images-idx3-ubyte.gz"),
        LABELS,
        Path::new("<embedded>/all-labels-idx1-ubyte.gz"),
        None,
    )?;
    let development: Vec<usize> = (0..8_000).collect();
    let test: Vec<usize> = (8_000..all.len()).collect();
    let head: ImageDataset = all.subset(&development)?;
    let parts = stratified_split(head.labels(), 1_000.0 / 8_000.0, EMBEDDED_MNIST_SEED)?;
    Ok(Splits {
        train: head.subset(&parts.train)?,
        validation: head.subset(&parts.validation)?,
        test: all.subset(&test)?,
    })
}
