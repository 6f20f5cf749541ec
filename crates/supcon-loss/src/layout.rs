//! From the layout that augmentation and encoders produce to the one the losses take.

use burn::prelude::*;

/// Rearranges `[views * batch, dim]`, view by view (view 0 of every image, then view 1, ...: the
/// layout of `supcon_augment::ViewPipeline::views` and so of an encoder run on its output), into
/// the `[batch, views, dim]` the losses take, so that row `i` holds the views of image `i`.
///
/// A plain `z.reshape([batch, views, dim])` is *not* this: it runs without error and pairs the
/// wrong rows (views of different images become "positives").
///
/// ```
/// use burn::prelude::*;
/// use supcon_loss::by_image;
///
/// let device = Device::flex();
/// // Two images, two views, view by view: a0, b0, a1, b1 (one feature each).
/// let z = Tensor::<2>::from_floats([[1.0], [2.0], [10.0], [20.0]], &device);
/// let features = by_image(z, 2);
/// assert_eq!(features.dims(), [2, 2, 1]);
/// let values = features.into_data().try_to_vec::<f32>().unwrap();
/// assert_eq!(values, [1.0, 10.0, 2.0, 20.0]); // image a: a0, a1; image b: b0, b1
/// ```
///
/// # Panics
///
/// If `views` is 0 or does not divide the number of rows.
pub fn by_image(z: Tensor<2>, views: usize) -> Tensor<3> {
    let [rows, dim] = z.dims();
    assert!(
        views > 0 && rows.is_multiple_of(views),
        "by_image: {rows} rows cannot be {views} views of the same number of images"
    );
    z.reshape([views, rows / views, dim]).swap_dims(0, 1)
}
