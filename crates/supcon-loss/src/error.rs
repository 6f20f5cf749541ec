//! The error every loss returns for input it cannot use.

/// Why a loss refused its configuration (`try_init`) or its input (the `try_` methods).
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
    // `{value:?}`: 1e-21 rather than twenty zeros and a 1.
    #[error("{name} = {value:?} is out of range: {why}")]
    OutOfRange {
        /// The parameter's name.
        name: &'static str,
        /// Its value.
        value: f64,
        /// What the range is.
        why: &'static str,
    },
    /// Label positives with a memory, but no labels for the memory's rows.
    #[error("label positives with a memory need the memory's labels (memory_labels)")]
    MemoryLabelsMissing,
    /// Memory labels whose length differs from the memory's rows.
    #[error("memory labels have length {got} but the memory has {memory} rows")]
    MemoryLabelsLength {
        /// Rows of the memory.
        memory: usize,
        /// Length of the labels.
        got: usize,
    },
    /// Only views of the same image are positives, but each image has a single view: no anchor
    /// has a positive, so there is nothing to learn.
    #[error(
        "self-supervised positives (other views of the same image) need at least two views per image, got one"
    )]
    SingleViewWithoutPositives,
}

impl LossError {
    /// [`LossError::NonPositive`] unless `value` is a positive finite number.
    pub(crate) fn check_positive(name: &'static str, value: f64) -> Result<(), LossError> {
        if value.is_finite() && value > 0.0 {
            Ok(())
        } else {
            Err(LossError::NonPositive { name, value })
        }
    }

    /// [`LossError::OutOfRange`] unless `value` is finite and `>= 0`.
    pub(crate) fn check_non_negative(name: &'static str, value: f64) -> Result<(), LossError> {
        if value.is_finite() && value >= 0.0 {
            Ok(())
        } else {
            Err(LossError::OutOfRange {
                name,
                value,
                why: "must be finite and >= 0",
            })
        }
    }

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
