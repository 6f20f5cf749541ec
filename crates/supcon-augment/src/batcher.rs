//! A Burn [`Batcher`] that turns dataset items into augmented views on the loader's device.

use burn::data::dataloader::batcher::Batcher;
use burn::prelude::*;
use supcon_data::{ImageBatcher, ImageItem};

use crate::{ViewPipeline, mix_seed};

/// Views `[V * B, C, H, W]` (view by view) of a batch of `B` images and their labels `[B]`.
#[derive(Debug, Clone)]
pub struct ViewBatch {
    /// The augmented views, view by view: `supcon_loss::by_image` of an encoder's output of
    /// them is the losses' `[B, V, dim]`.
    pub views: Tensor<4>,
    /// Class indices, one per image.
    pub labels: Tensor<1, Int>,
}

/// Batches `supcon_data::ImageItem`s into [`ViewBatch`]es: the images go to the loader's device
/// and are augmented there by a [`ViewPipeline`].
///
/// The views of a batch are a function of the batcher's seed and the dataset indices of its
/// items, in order, so a multi-worker loader gives the views a single worker would, and a run
/// with the same seed and shuffle gives the same views. Shuffle the loader (as training does):
/// the same items in the same order get the same views.
///
/// ```
/// use burn::data::dataloader::batcher::Batcher;
/// use burn::data::dataset::Dataset;
/// use burn::prelude::*;
/// use supcon_augment::{ViewBatcher, ViewPipeline, ViewPipelineConfig};
/// use supcon_data::embedded_mnist;
///
/// let splits = embedded_mnist()?;
/// let config = ViewPipelineConfig::supcon(vec![0.1307], vec![0.3081]).with_color_jitter(None);
/// config.validate(1)?; // check the configuration against the images' channels up front
/// let batcher = ViewBatcher::new(ViewPipeline::new(config), 2, 42);
/// let items = (0..4).map(|i| splits.train.get(i).unwrap()).collect();
/// let batch = batcher.batch(items, &Device::flex());
/// assert_eq!(batch.views.dims(), [8, 1, 28, 28]);
/// assert_eq!(batch.labels.dims(), [4]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ViewBatcher {
    pipeline: ViewPipeline,
    views: usize,
    seed: u64,
}

impl ViewBatcher {
    /// `views` views per image by `pipeline`, seeded from `seed`.
    ///
    /// # Panics
    ///
    /// If `views` is 0.
    pub fn new(pipeline: ViewPipeline, views: usize, seed: u64) -> Self {
        assert!(views > 0, "ViewBatcher: views must be at least 1");
        Self {
            pipeline,
            views,
            seed,
        }
    }

    /// The seed of the views of a batch of these dataset indices.
    pub fn batch_seed(&self, indices: &[usize]) -> u64 {
        let parts: Vec<u64> = indices.iter().map(|&i| i as u64).collect();
        mix_seed(self.seed, &parts)
    }
}

impl Batcher<ImageItem, ViewBatch> for ViewBatcher {
    /// # Panics
    ///
    /// If `items` is empty, the images differ in shape, or the pipeline's configuration does
    /// not fit them (check it with `ViewPipelineConfig::validate` first).
    fn batch(&self, items: Vec<ImageItem>, device: &Device) -> ViewBatch {
        let indices: Vec<usize> = items.iter().map(|item| item.index).collect();
        let seed = self.batch_seed(&indices);
        let batch = ImageBatcher.batch(items, device);
        let views = self
            .pipeline
            .views(batch.images, self.views, seed)
            .unwrap_or_else(|error| panic!("ViewBatcher: {error}"));
        ViewBatch {
            views,
            labels: batch.labels,
        }
    }
}
