//! The error augmentation returns for input it cannot use.

/// Why a batch could not be augmented.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AugmentError {
    /// `mean` or `std` with a length other than the image channels.
    #[error("normalisation has {got} {what} values but the images have {channels} channels")]
    ChannelMismatch {
        /// `"mean"` or `"std"`.
        what: &'static str,
        /// Its length.
        got: usize,
        /// Channels of the images.
        channels: usize,
    },
    /// A configuration value outside its range.
    #[error("{name} = {value} is invalid: {why}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// Its value, as text.
        value: String,
        /// What is allowed.
        why: &'static str,
    },
    /// An empty batch or image, or zero views.
    #[error("nothing to augment: {0}")]
    Empty(String),
    /// Per-sample parameters that cannot be applied to the images (see
    /// [`SampleParams::check`](crate::SampleParams::check)).
    #[error("parameter set {index}: {why}")]
    BadParams {
        /// Which set (its index in the slice).
        index: usize,
        /// What is wrong with it.
        why: String,
    },
    /// Per-sample parameters for a different number of images.
    #[error("{got} parameter sets for a batch of {batch} images")]
    ParamsMismatch {
        /// Parameter sets given.
        got: usize,
        /// Images in the batch.
        batch: usize,
    },
}
