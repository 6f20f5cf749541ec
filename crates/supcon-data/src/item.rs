//! [`ImageDataset`] as a Burn [`Dataset`], and a [`Batcher`] of its items, so that it plugs into
//! Burn's `DataLoaderBuilder` (multi-worker loading, shuffling) and burn-train's `Learner`.

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::{Dataset, DatasetError};
use burn::prelude::*;

use crate::{DataError, ImageBatch, ImageDataset};

/// One image of an [`ImageDataset`], as its [`Dataset`] implementation hands it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageItem {
    /// The image's position in its dataset (batchers that augment seed the views with it).
    pub index: usize,
    /// Pixels, `[C, H, W]`.
    pub pixels: Vec<u8>,
    /// `[C, H, W]`.
    pub shape: [usize; 3],
    /// Class index.
    pub label: u32,
}

impl Dataset<ImageItem> for ImageDataset {
    /// Image `index`; past the end, a [`DataError::Invalid`] wrapped in Burn's error.
    fn get(&self, index: usize) -> Result<ImageItem, DatasetError> {
        let pixels = self.image(index).ok_or_else(|| {
            DatasetError::new(DataError::Invalid(format!(
                "sample index {index} is out of range for a dataset of {} images",
                ImageDataset::len(self)
            )))
        })?;
        Ok(ImageItem {
            index,
            pixels: pixels.to_vec(),
            shape: self.image_shape(),
            label: self.labels()[index],
        })
    }

    fn len(&self) -> usize {
        ImageDataset::len(self)
    }
}

/// Batches [`ImageItem`]s into an [`ImageBatch`] (images `[B, C, H, W]` as floats in `[0, 1]`,
/// labels `[B]`) on the loader's device.
///
/// ```
/// use burn::data::dataloader::batcher::Batcher;
/// use burn::data::dataset::{Dataset, DatasetError};
/// use burn::prelude::*;
/// use supcon_data::{ImageBatcher, embedded_mnist};
///
/// let splits = embedded_mnist()?;
/// let items = vec![splits.train.get(0).unwrap(), splits.train.get(1).unwrap()];
/// let batch = ImageBatcher.batch(items, &Device::flex());
/// assert_eq!(batch.images.dims(), [2, 1, 28, 28]);
/// # Ok::<(), supcon_data::DataError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ImageBatcher;

impl Batcher<ImageItem, ImageBatch> for ImageBatcher {
    /// # Panics
    ///
    /// If `items` is empty or the images differ in shape (items of one dataset never do).
    fn batch(&self, items: Vec<ImageItem>, device: &Device) -> ImageBatch {
        let first = items
            .first()
            .expect("ImageBatcher: a batch needs at least one item");
        let shape = first.shape;
        let mut images = Vec::with_capacity(items.len() * shape.iter().product::<usize>());
        let mut labels = Vec::with_capacity(items.len());
        for item in &items {
            assert_eq!(
                item.shape, shape,
                "ImageBatcher: images of shapes {shape:?} and {:?} in one batch",
                item.shape
            );
            images.extend(item.pixels.iter().map(|&p| f32::from(p) / 255.0));
            labels.push(i64::from(item.label));
        }
        let [c, h, w] = shape;
        ImageBatch {
            images: Tensor::from_data(TensorData::new(images, [items.len(), c, h, w]), device),
            labels: Tensor::from_data(TensorData::new(labels, [items.len()]), device),
        }
    }
}
