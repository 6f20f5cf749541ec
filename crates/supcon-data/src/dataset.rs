//! The in-memory dataset every reader produces.

use std::path::Path;

use crate::DataError;

/// Images as `u8` in `[N, C, H, W]` order, one label per image, and the class names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageDataset {
    images: Vec<u8>,
    labels: Vec<u32>,
    shape: [usize; 3],
    classes: Vec<String>,
}

/// A dataset split three ways: train on `train`, select on `validation`, report `test` once.
#[derive(Debug, Clone)]
pub struct Splits {
    /// Training samples.
    pub train: ImageDataset,
    /// Validation samples, for model selection.
    pub validation: ImageDataset,
    /// Test samples, for the final figure.
    pub test: ImageDataset,
}

impl ImageDataset {
    /// Checks and wraps raw data: `images.len() == labels.len() * C * H * W` and every label
    /// below `classes.len()`. `source` names the data in errors.
    pub fn new(
        images: Vec<u8>,
        labels: Vec<u32>,
        shape: [usize; 3],
        classes: Vec<String>,
        source: &Path,
    ) -> Result<Self, DataError> {
        let per_image: usize = shape.iter().product();
        if per_image == 0 {
            return Err(DataError::Invalid(format!(
                "{}: image shape {shape:?} has an empty dimension",
                source.display()
            )));
        }
        if images.len() != labels.len() * per_image {
            return Err(DataError::Invalid(format!(
                "{}: {} bytes of pixels do not make {} images of shape {shape:?}",
                source.display(),
                images.len(),
                labels.len()
            )));
        }
        if let Some((index, &label)) = labels
            .iter()
            .enumerate()
            .find(|(_, l)| **l as usize >= classes.len())
        {
            return Err(DataError::LabelOutOfRange {
                path: source.to_path_buf(),
                index,
                label,
                classes: classes.len(),
            });
        }
        Ok(Self {
            images,
            labels,
            shape,
            classes,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// `[C, H, W]` of every image.
    pub fn image_shape(&self) -> [usize; 3] {
        self.shape
    }

    /// All pixels, `[N, C, H, W]`.
    pub fn pixels(&self) -> &[u8] {
        &self.images
    }

    /// The pixels of image `index`, `[C, H, W]`; `None` past the end.
    pub fn image(&self, index: usize) -> Option<&[u8]> {
        let size = self.image_size();
        self.images.get(index * size..(index + 1) * size)
    }

    /// One label per image, each below [`num_classes`](Self::num_classes).
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Class names, indexed by label.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// How many images each class has.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for &label in &self.labels {
            counts[label as usize] += 1;
        }
        counts
    }

    /// A new dataset of the given samples, in the given order.
    pub fn subset(&self, indices: &[usize]) -> Result<ImageDataset, DataError> {
        self.check_indices(indices)?;
        let size = self.image_size();
        let mut images = Vec::with_capacity(indices.len() * size);
        for &i in indices {
            images.extend_from_slice(&self.images[i * size..(i + 1) * size]);
        }
        Ok(ImageDataset {
            images,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            shape: self.shape,
            classes: self.classes.clone(),
        })
    }

    pub(crate) fn image_size(&self) -> usize {
        self.shape.iter().product()
    }

    pub(crate) fn check_indices(&self, indices: &[usize]) -> Result<(), DataError> {
        match indices.iter().find(|&&i| i >= self.len()) {
            Some(i) => Err(DataError::Invalid(format!(
                "sample index {i} is out of range for a dataset of {} images",
                self.len()
            ))),
            None => Ok(()),
        }
    }
}
