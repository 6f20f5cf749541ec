//! Image datasets for supervised contrastive learning, read into compact `u8` storage
//! (`[N, C, H, W]`, labels and class names) and turned into Burn tensors batch by batch.
//!
//! | source | function |
//! | --- | --- |
//! | IDX files (MNIST, Fashion-MNIST, ...), gzipped or not | [`idx::load_files`], [`idx::load_dir`], [`idx::load_set`] (with [`idx::sets_in`]) |
//! | CIFAR-10 / CIFAR-100 binary version | [`cifar::load_cifar10`], [`cifar::load_cifar100`] |
//! | image folders, one sub-folder a class (PNG/JPEG) | [`folder::load_image_folder`] |
//! | 10,000 real MNIST digits compiled in | [`embedded_mnist`] (feature `embedded-mnist`, default) |
//!
//! Splits are seeded and reproducible: [`shuffled_indices`] and the class-stratified
//! [`stratified_split`], so a model is selected on a validation split, never on the test set.
//! Every reader reports bad input as a [`DataError`] naming the file and the problem.
//!
//! [`ImageDataset`] is a Burn `Dataset` of [`ImageItem`]s, and [`ImageBatcher`] a Burn `Batcher`,
//! so a dataset plugs into Burn's data loaders (`supcon_augment::ViewBatcher` makes augmented
//! views instead).
//!
//! ```
//! use burn::prelude::*;
//! use supcon_data::{embedded_mnist, shuffled_indices};
//!
//! let splits = embedded_mnist()?;
//! assert_eq!(splits.train.image_shape(), [1, 28, 28]);
//! let order = shuffled_indices(splits.train.len(), 42);
//! let batch = splits.train.batch(&order[..64], &Device::flex())?;
//! assert_eq!(batch.images.dims(), [64, 1, 28, 28]); // floats in [0, 1]
//! assert_eq!(batch.labels.dims(), [64]);
//! # Ok::<(), supcon_data::DataError>(())
//! ```

mod batch;
mod dataset;
mod error;
mod item;
mod split;

pub mod cifar;
#[cfg(feature = "embedded-mnist")]
mod embedded;
pub mod folder;
pub mod idx;
pub mod pickle;

pub use batch::ImageBatch;
pub use dataset::{ImageDataset, Splits};
#[cfg(feature = "embedded-mnist")]
pub use embedded::{
    EMBEDDED_MNIST_SEED, EMBEDDED_MNIST_VAL_FRACTION, embedded_mnist, embedded_mnist_split,
};
pub use error::DataError;
pub use item::{ImageBatcher, ImageItem};
pub use split::{TrainValidation, shuffled_indices, stratified_split, stratified_subset};
