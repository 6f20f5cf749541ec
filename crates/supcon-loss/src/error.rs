//! The error every loss returns for input it cannot use.

/// Why a loss refused its input. Losses never panic on user input; they return one of these.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LossError {
    /// Features of a rank other than the loss needs (`[batch, views, ...]` has rank 3 or more).
    #[error("features must have shape [batch, views, dim, ...] (rank >= 3), got shape {shape:?}")]
    WrongRank {
        /// The shape that was passed.
        shape: Vec<usize>,
    },
    /// A batch, view or feature dimension of size zero.
    #[error("features have an empty dimension: shape {shape:?}")]
    Empty {
        /// The shape that was passed.
        shape: Vec<usize>,
    },
    /// Labels whose length differs from the batch.
    #[error("labels have length {got} but the batch has {batch} samples")]
    LabelsLength {
        /// Samples in the features.
        batch: usize,
        /// Length of the labels.
        got: usize,
    },
    /// A positives mask that is not `[batch, batch]`.
    #[error("the positives mask must have shape [{batch}, {batch}], got {got:?}")]
    MaskShape {
        /// Samples in the features.
        batch: usize,
        /// Shape of the mask.
        got: [usize; 2],
    },
    /// Two tensors that must match in shape do not.
    #[error("{what}: shapes {left:?} and {right:?} differ")]
    ShapeMismatch {
        /// Which inputs.
        what: &'static str,
        /// The first shape.
        left: Vec<usize>,
        /// The second shape.
        right: Vec<usize>,
    },
    /// A temperature (or other scale) that is zero, negative or not finite.
    #[error("{name} must be a positive finite number, got {value}")]
    NonPositive {
        /// The parameter's name.
        name: &'static str,
        /// Its value.
        value: f64,
    },
    /// A parameter outside its range (a negative margin, say).
    #[error("{name} = {value} is out of range: {why}")]
    OutOfRange {
        /// The parameter's name.
        name: &'static str,
        /// Its value.
        value: f64,
        /// What the range is.
        why: &'static str,
    },
    /// Only views of the same image are positives, but each image has a single view: no anchor
    /// has a positive, so there is nothing to learn.
    #[error("Positives::SameImage needs at least two views per image, got one")]
    SingleViewWithoutPositives,
}

impl LossError {
    /// [`LossError::Empty`] when a dimension of `shape` is zero.
    pub(crate) fn check_not_empty(shape: &[usize]) -> Result<(), LossError> {
        if shape.contains(&0) {
            return Err(LossError::Empty {
                shape: shape.to_vec(),
            });
        }
        Ok(())
    }
}
