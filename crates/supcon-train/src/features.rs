//! Frozen-encoder features and the kNN monitor.
//!
//! Features are the encoder's output (before the projection head) with BatchNorm in evaluation
//! mode, computed on the plain (non-autodiff) device in batches, from whole images resized to the
//! training crops' size (`size`) and normalised as in training.

use burn::prelude::*;
use supcon_augment::{ViewPipeline, ViewPipelineConfig};
use supcon_data::ImageDataset;
use supcon_encoder::Encoder;

use crate::TrainError;
use crate::config::RunConfig;

/// Queries per block of the kNN similarity matrix.
const KNN_BLOCK: usize = 1024;

/// Features `[N, width]` and labels `[N]` of a dataset.
pub struct FeatureSet {
    /// Encoder outputs.
    pub features: Tensor<2>,
    /// Labels.
    pub labels: Tensor<1, Int>,
    /// Number of classes.
    pub num_classes: usize,
}

impl FeatureSet {
    /// The features (`[N, width]`, row-major) and labels as host vectors.
    pub fn to_host(&self) -> Result<(Vec<f32>, Vec<i64>), TrainError> {
        rows_to_host(self.features.clone(), self.labels.clone())
    }
}

/// Rows `[N, D]` (row-major) and their labels `[N]` as host vectors: the one way the trainer
/// reads features, keys or scores back from the device.
pub fn rows_to_host(
    rows: Tensor<2>,
    labels: Tensor<1, Int>,
) -> Result<(Vec<f32>, Vec<i64>), TrainError> {
    let host = |e: burn::tensor::DataError| {
        TrainError::Config(format!("cannot read values back from the device: {e:?}"))
    };
    let rows = rows.into_data().try_into_vec_as::<f32>().map_err(host)?;
    let labels = labels.into_data().try_into_vec_as::<i64>().map_err(host)?;
    Ok((rows, labels))
}

/// The evaluation transform of a run: the whole image, resized to `size` if given, normalised.
pub fn evaluation_views(config: &RunConfig) -> ViewPipeline {
    let data = &config.data;
    let views = ViewPipelineConfig::evaluation(data.mean.clone(), data.std.clone())
        .with_output_size(data.size.map(|s| [s, s]));
    ViewPipeline::new(views)
}

/// The shape (channels, height, width) of `data`'s images under the run's evaluation transform
/// ([`evaluation_views`]).
pub fn evaluated_shape(config: &RunConfig, data: &ImageDataset) -> [usize; 3] {
    let [channels, height, width] = data.image_shape();
    match config.data.size {
        Some(size) => [channels, size, size],
        None => [channels, height, width],
    }
}

/// Runs `encoder` (an evaluation-mode module on `device`) over every image of `data` under the
/// run's evaluation transform ([`evaluation_views`]), as many images a pass as
/// [`extraction_batch`](crate::footprint::extraction_batch) gives.
pub fn extract(
    encoder: &Encoder,
    data: &ImageDataset,
    config: &RunConfig,
    device: &Device,
) -> Result<FeatureSet, TrainError> {
    let views = evaluation_views(config);
    let indices: Vec<usize> = (0..data.len()).collect();
    let mut parts = Vec::new();
    let mut labels = Vec::new();
    let batch = crate::footprint::extraction_batch(config, evaluated_shape(config, data))?;
    for chunk in indices.chunks(batch) {
        let batch = data.batch(chunk, device)?;
        // The evaluation transform draws nothing: the seed does not matter.
        let images = views.views(batch.images, 1, 0)?;
        parts.push(encoder.forward(images));
        labels.push(batch.labels);
    }
    if parts.is_empty() {
        return Err(TrainError::Config(
            "no images to extract features from (an empty split)".into(),
        ));
    }
    let features = Tensor::cat(parts, 0);
    let finite = features
        .clone()
        .is_finite()
        .all()
        .int()
        .into_scalar::<i64>()
        == 1;
    if !finite {
        return Err(TrainError::NonFiniteFeatures);
    }
    Ok(FeatureSet {
        features,
        labels: Tensor::cat(labels, 0),
        num_classes: data.num_classes(),
    })
}

/// The float type the kNN monitor computes in, whatever the features' type.
const KNN_DTYPE: burn::tensor::FloatDType = burn::tensor::FloatDType::F32;

/// Accuracy of the weighted kNN classifier of Wu et al. (2018), as in SupCon/SimCLR monitors:
/// cosine similarities `s` of each query to every reference, the `k` nearest vote for their
/// class with weight `exp(s / temperature)`, the heaviest class wins. Computed in float32.
pub fn knn_accuracy(
    reference: &FeatureSet,
    queries: &FeatureSet,
    k: usize,
    temperature: f64,
) -> Result<f64, TrainError> {
    if !(temperature.is_finite() && temperature > 0.0) {
        return Err(TrainError::Config(format!(
            "the kNN temperature must be a positive number, got {temperature}"
        )));
    }
    let n = reference.features.dims()[0];
    if n == 0 || queries.features.dims()[0] == 0 {
        return Err(TrainError::Config(
            "kNN needs reference and query samples".into(),
        ));
    }
    let k = k.min(n);
    // In float32 whatever the device's type: in bf16 (3 significant digits) the similarities of
    // near neighbours tie and the ranking is lost (the reference small CNN's kNN accuracy on
    // the embedded digits fell from 78% to 41%).
    let bank = unit_rows(reference.features.clone().cast(KNN_DTYPE));
    let bank_t = bank.transpose();
    let one_hot: Tensor<2> = reference
        .labels
        .clone()
        .one_hot::<2>(reference.num_classes)
        .float()
        .cast(KNN_DTYPE);
    let classes = reference.num_classes;
    let queries_n = queries.features.dims()[0];
    let mut correct = 0usize;
    for start in (0..queries_n).step_by(KNN_BLOCK) {
        let end = (start + KNN_BLOCK).min(queries_n);
        let q = unit_rows(queries.features.clone().slice(start..end).cast(KNN_DTYPE));
        let similarity = q.matmul(bank_t.clone()); // [b, n]
        let (top, index) = similarity.topk_with_indices(k, 1); // [b, k]
        let rows = end - start;
        // exp((s - s_max) / t): the same votes relative to each other as exp(s / t), without
        // overflowing at small temperatures (exp(1 / 0.001) is infinite in float32, and
        // infinity times the one-hot zeros is NaN). `top` is sorted, its first column the max.
        let nearest = top.clone().slice([0..rows, 0..1]);
        let weights = (top - nearest)
            .div_scalar(temperature)
            .exp()
            .reshape([rows, k, 1]);
        let neighbour_classes = one_hot
            .clone()
            .select(0, index.reshape([rows * k]))
            .reshape([rows, k, classes]);
        let votes = (neighbour_classes * weights)
            .sum_dim(1)
            .reshape([rows, classes]);
        let predicted = votes.argmax(1).reshape([rows]);
        let truth = queries.labels.clone().slice(start..end);
        correct += predicted.equal(truth).int().sum().into_scalar::<i64>() as usize;
    }
    Ok(correct as f64 / queries_n as f64)
}

/// Rows scaled to unit length (zero rows stay zero).
pub fn unit_rows(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().square().sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(rows: &[[f32; 2]], labels: &[i64], device: &Device) -> FeatureSet {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        FeatureSet {
            features: Tensor::<1>::from_floats(flat.as_slice(), device).reshape([rows.len(), 2]),
            labels: Tensor::<1, Int>::from_ints(labels, device),
            num_classes: 2,
        }
    }

    #[test]
    fn knn_votes_by_weighted_neighbours() {
        let device = Device::flex();
        // Class 0 points right, class 1 up; one class-1 outlier points right-ish.
        let reference = set(
            &[[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0], [1.0, 0.2]],
            &[0, 0, 1, 1, 1],
            &device,
        );
        let queries = set(&[[1.0, 0.05], [0.05, 1.0]], &[0, 1], &device);
        // k = 1: nearest neighbour only.
        assert_eq!(knn_accuracy(&reference, &queries, 1, 0.1).unwrap(), 1.0);
        // k = 5 with a very high temperature is a plain majority: 3 of 5 say class 1.
        assert_eq!(knn_accuracy(&reference, &queries, 5, 1e6).unwrap(), 0.5);
        // ... but with temperature 0.1 the close class-0 points outweigh the far ones.
        assert_eq!(knn_accuracy(&reference, &queries, 5, 0.1).unwrap(), 1.0);
        // Small temperatures tend to the nearest neighbour's vote, never to NaN (exp(s / t)
        // would overflow float32 below t = 1 / 88.7).
        for t in [1e-3, 1e-6, 1e-30] {
            assert_eq!(
                knn_accuracy(&reference, &queries, 5, t).unwrap(),
                1.0,
                "{t}"
            );
        }
        for t in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(knn_accuracy(&reference, &queries, 5, t).is_err(), "{t}");
        }
    }
}
