//! Gradient caching (Gao et al. 2021, "Scaling Deep Contrastive Learning Batch Size under
//! Memory Limited Setup"): the gradient of a loss over the embeddings of a large batch, in
//! memory bounded by a chunk of it. The embeddings are computed chunk by chunk without keeping
//! the graph; the loss and its gradient with respect to the embeddings are computed on all of
//! them at once; then each chunk is run again with its graph and back-propagates its slice of
//! that gradient. The parameter gradient is exactly the whole batch's, with BatchNorm's batch
//! statistics taken per chunk (as each device's are under data parallelism); running
//! statistics are updated once per chunk (the first pass's updates are undone).

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::prelude::*;

use crate::TrainError;
use crate::params::{flat_tensors, map_tensors};

/// The chunks of `images` images, at most `chunk` each: `[start, end)` ranges.
pub fn chunks(images: usize, chunk: usize) -> Vec<(usize, usize)> {
    let chunk = chunk.max(1);
    (0..images.div_ceil(chunk))
        .map(|c| (c * chunk, ((c + 1) * chunk).min(images)))
        .collect()
}

/// The rows of images `start..end` in a view-major layout of `views` views of `images` images
/// (`[V * B, ...]`, view 0 of every image first).
pub fn chunk_rows(views: usize, images: usize, start: usize, end: usize) -> Vec<i64> {
    (0..views)
        .flat_map(|v| (start..end).map(move |i| (v * images + i) as i64))
        .collect()
}

/// `f` applied to the rows of each chunk of `chunk` images of `views` (`[V * B, ...]`,
/// view-major, `view_count` views), the results (`[rows, D]`) back in the rows' original order.
pub fn map_chunks(
    views: &Tensor<4>,
    view_count: usize,
    chunk: usize,
    mut f: impl FnMut(Tensor<4>) -> Tensor<2>,
) -> Tensor<2> {
    let device = views.device();
    let rows = views.dims()[0];
    let images = rows / view_count.max(1);
    let parts = chunks(images, chunk);
    if parts.len() == 1 {
        return f(views.clone());
    }
    let mut outputs = Vec::with_capacity(parts.len());
    let mut order = Vec::with_capacity(rows);
    for (start, end) in parts {
        let index = chunk_rows(view_count, images, start, end);
        let chunk_views = views
            .clone()
            .select(0, Tensor::<1, Int>::from_ints(index.as_slice(), &device));
        outputs.push(f(chunk_views));
        order.extend(index);
    }
    let mut inverse = vec![0i64; rows];
    for (position, &row) in order.iter().enumerate() {
        inverse[row as usize] = position as i64;
    }
    Tensor::cat(outputs, 0).select(0, Tensor::<1, Int>::from_ints(inverse.as_slice(), &device))
}

/// The loss value, and the gradients of `model`'s parameters, of `loss(forward(model, views))`
/// computed in chunks of `chunk` images (see the module docs). `views` is `[V * B, C, H, W]`
/// view-major on the autodiff device; `forward` maps a chunk's rows to their embeddings;
/// `loss` takes the embeddings of all rows in their original order. Returns the model (its
/// running statistics restored after the first pass).
pub fn cached_gradients<M: Module>(
    model: M,
    views: Tensor<4>,
    view_count: usize,
    chunk: usize,
    forward: impl Fn(&M, Tensor<4>) -> Tensor<2>,
    loss: impl FnOnce(Tensor<2>) -> Result<Tensor<1>, TrainError>,
) -> Result<(M, f32, GradientsParams), TrainError> {
    let images = views.dims()[0] / view_count.max(1);
    let parts = chunks(images, chunk);

    // Pass 1: every chunk's embeddings, without recording graphs: a copy whose parameters do
    // not require gradients (its layers still train: BatchNorm on batch statistics).
    // The running statistics (tensors that do not require gradients, BatchNorm's), saved
    // before the first pass updates them and put back after it.
    let statistics = flat_tensors(&model);
    let untracked = model.clone().no_grad();
    let all = map_chunks(&views, view_count, chunk, |x| {
        forward(&untracked, x).detach()
    });
    drop(untracked);
    let model = map_tensors(model, statistics, |saved, _| {
        (!saved.trainable).then_some(saved.value)
    });
    let all = all.require_grad();

    // The loss and its gradient with respect to the embeddings.
    let value = loss(all.clone())?;
    let scalar = value.clone().into_scalar::<f32>();
    if !scalar.is_finite() {
        return Ok((model, scalar, GradientsParams::new()));
    }
    let grads = value.backward();
    let embedding_grad = all
        .grad(&grads)
        .ok_or_else(|| TrainError::Config("the loss does not depend on the embeddings".into()))?;

    // Pass 2: each chunk with its graph, back-propagating its slice of that gradient.
    let mut accumulated = GradientsAccumulator::<M>::new();
    for (start, end) in parts {
        let rows = chunk_rows(view_count, images, start, end);
        let chunk_views = views.clone().select(
            0,
            Tensor::<1, Int>::from_ints(rows.as_slice(), &views.device()),
        );
        let slice = embedding_grad
            .clone()
            .select(
                0,
                Tensor::<1, Int>::from_ints(rows.as_slice(), &embedding_grad.device()),
            )
            .autodiff();
        let surrogate = (forward(&model, chunk_views) * slice).sum();
        let chunk_grads = GradientsParams::from_grads(surrogate.backward(), &model);
        accumulated.accumulate(&model, chunk_grads);
    }
    Ok((model, scalar, accumulated.grads()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_every_image_once() {
        assert_eq!(chunks(10, 4), [(0, 4), (4, 8), (8, 10)]);
        assert_eq!(chunks(8, 8), [(0, 8)]);
        assert_eq!(chunk_rows(2, 5, 1, 3), [1, 2, 6, 7]);
    }
}
