//! 10,000 real MNIST digits compiled into the crate, so that a demo needs no files.
//!
//! The split: the last 2,000 images are the test set; the first 8,000 are divided,
//! class-stratified with seed [`EMBEDDED_MNIST_SEED`], into 6,999 for training and 1,001
//! for validation (12.5% of each class, rounded per class), or, through
//! [`embedded_mnist_split`], another fraction for validation.

use std::path::Path;

use crate::{DataError, ImageDataset, Splits, idx, stratified_split};

const IMAGES: &[u8] = include_bytes!("../../../assets/mnist-10k/all-images-idx3-ubyte.gz");
const LABELS: &[u8] = include_bytes!("../../../assets/mnist-10k/all-labels-idx1-ubyte.gz");

/// The seed of the embedded train / validation split.
pub const EMBEDDED_MNIST_SEED: u64 = 0;

/// The fraction of the first 8,000 digits [`embedded_mnist`] holds out for validation.
pub const EMBEDDED_MNIST_VAL_FRACTION: f64 = 1_000.0 / 8_000.0;

/// The embedded MNIST digits, split into 6,999 train, 1,001 validation and 2,000 test images.
pub fn embedded_mnist() -> Result<Splits, DataError> {
    embedded_mnist_split(EMBEDDED_MNIST_VAL_FRACTION)
}

/// The embedded MNIST digits with `val_fraction` of each class of the first 8,000 held out for
/// validation (class-stratified, seed [`EMBEDDED_MNIST_SEED`]); the test set is the last 2,000
/// as always. [`embedded_mnist`] is this at [`EMBEDDED_MNIST_VAL_FRACTION`].
///
/// ```
/// let splits = supcon_data::embedded_mnist_split(0.25)?;
/// assert_eq!((splits.train.len(), splits.validation.len()), (6_000, 2_000));
/// # Ok::<(), supcon_data::DataError>(())
/// ```
pub fn embedded_mnist_split(val_fraction: f64) -> Result<Splits, DataError> {
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
    let parts = stratified_split(head.labels(), val_fraction, EMBEDDED_MNIST_SEED)?;
    Ok(Splits {
        train: head.subset(&parts.train)?,
        validation: head.subset(&parts.validation)?,
        test: all.subset(&test)?,
    })
}
