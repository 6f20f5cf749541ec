//! Turning samples into Burn tensors on a device.

use burn::prelude::*;

use crate::{DataError, ImageDataset};

/// A batch on a device: images `[B, C, H, W]` as floats in `[0, 1]`, labels `[B]`.
#[derive(Debug, Clone)]
pub struct ImageBatch {
    /// Pixels divided by 255.
    pub images: Tensor<4>,
    /// Class indices.
    pub labels: Tensor<1, Int>,
}

impl ImageDataset {
    /// The samples `indices` (in that order) as an [`ImageBatch`] on `device`. The pixels are
    /// converted to `f32` on the host, one pass over the batch.
    pub fn batch(&self, indices: &[usize], device: &Device) -> Result<ImageBatch, DataError> {
        if indices.is_empty() {
            return Err(DataError::Invalid(
                "a batch needs at least one sample".into(),
            ));
        }
        self.check_indices(indices)?;
        let size = self.image_size();
        let pixels = self.pixels();
        let mut images = Vec::with_capacity(indices.len() * size);
        for &i in indices {
            images.extend(
                pixels[i * size..(i + 1) * size]
                    .iter()
                    .map(|&p| f32::from(p) / 255.0),
            );
        }
        let [c, h, w] = self.image_shape();
        let labels: Vec<i64> = indices
            .iter()
            .map(|&i| i64::from(self.labels()[i]))
            .collect();
        Ok(ImageBatch {
            images: Tensor::from_data(TensorData::new(images, [indices.len(), c, h, w]), device),
            labels: Tensor::from_data(TensorData::new(labels, [indices.len()]), device),
        })
    }
}
