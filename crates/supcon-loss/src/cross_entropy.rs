//! Cross-entropy for the supervised baseline: Burn's own [`CrossEntropyLoss`], re-exported so
//! that users of this crate find every loss of the paper's comparison in one place.
//!
//! `CrossEntropyLossConfig::new().init(&device).forward(logits, targets)` takes logits
//! `[batch, classes]` and class indices `[batch]` and returns the mean negative log-likelihood of
//! the softmax, shape `[1]` (PyTorch's `nn.CrossEntropyLoss` with `reduction='mean'`). Label
//! smoothing and class weights are options of the config.

pub use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
