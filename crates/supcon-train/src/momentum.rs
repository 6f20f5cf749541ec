//! The pieces of a momentum encoder with a queue of keys (MoCo v2's, label-aware): the
//! exponential moving average of a model ([`ema_update`]) and a first-in first-out memory of
//! keys with their labels ([`KeyQueue`]), whose rows [`SupConLoss::forward_with_memory`] takes
//! as extra contrast vectors.
//!
//! [`SupConLoss::forward_with_memory`]: supcon_loss::SupConLoss::forward_with_memory

use burn::module::Module;
use burn::prelude::*;

use crate::TrainError;
use crate::params::{flat_tensors, map_tensors};

/// `key ← momentum · key + (1 − momentum) · model`, parameter by parameter; the model's
/// running statistics (BatchNorm's) are copied, not averaged, so that a key model used in
/// evaluation mode normalises as the model does now. `key` and `model` must have the same
/// structure (the key model is a copy of the model); `model` may be on another device (the
/// autodiff one), its values are moved to `key`'s.
pub fn ema_update<M: Module>(key: M, model: &M, momentum: f64) -> M {
    map_tensors(key, flat_tensors(model), |source, key| {
        let value = if source.value.device().is_autodiff() {
            source.value.inner()
        } else {
            source.value
        };
        let value = value.to_device(&key.device());
        Some(if source.trainable {
            key.mul_scalar(momentum) + value.mul_scalar(1.0 - momentum)
        } else {
            value
        })
    })
}

/// A first-in first-out memory of `capacity` keys (rows of dimension `dim`) and their labels,
/// kept on the device. Rows are stored in a ring; their order does not matter to the loss.
#[derive(Debug, Clone)]
pub struct KeyQueue {
    keys: Tensor<2>,
    labels: Tensor<1, Int>,
    capacity: usize,
    /// Rows filled so far (at most `capacity`).
    len: usize,
    /// Where the next row goes.
    next: usize,
}

impl KeyQueue {
    /// An empty queue on `device`.
    pub fn new(capacity: usize, dim: usize, device: &Device) -> KeyQueue {
        KeyQueue {
            keys: Tensor::zeros([capacity, dim], device),
            labels: Tensor::zeros([capacity], device),
            capacity,
            len: 0,
            next: 0,
        }
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was enqueued yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The held keys `[len, dim]` and labels `[len]`.
    pub fn contents(&self) -> (Tensor<2>, Tensor<1, Int>) {
        (
            self.keys.clone().slice(0..self.len),
            self.labels.clone().slice(0..self.len),
        )
    }

    /// Adds `keys` (`[n, dim]`, detached) and their `labels` (`[n]`), dropping the oldest rows
    /// once full. At most `capacity` rows can be added at once.
    pub fn push(&mut self, keys: Tensor<2>, labels: Tensor<1, Int>) -> Result<(), TrainError> {
        let [n, dim] = keys.dims();
        if n > self.capacity || dim != self.keys.dims()[1] || labels.dims()[0] != n {
            return Err(TrainError::Config(format!(
                "cannot enqueue {n} keys of dimension {dim} (with {} labels) into a queue of {} \
                 rows of dimension {}",
                labels.dims()[0],
                self.capacity,
                self.keys.dims()[1]
            )));
        }
        let keys = keys.detach();
        let first = n.min(self.capacity - self.next);
        self.keys = self
            .keys
            .clone()
            .slice_assign(self.next..self.next + first, keys.clone().slice(0..first));
        self.labels = self
            .labels
            .clone()
            .slice_assign(self.next..self.next + first, labels.clone().slice(0..first));
        if first < n {
            self.keys = self
                .keys
                .clone()
                .slice_assign(0..n - first, keys.slice(first..n));
            self.labels = self
                .labels
                .clone()
                .slice_assign(0..n - first, labels.slice(first..n));
        }
        self.next = (self.next + n) % self.capacity;
        self.len = (self.len + n).min(self.capacity);
        Ok(())
    }

    /// The queue as bytes (for a checkpoint): capacity, dimension, length and position
    /// (u64 LE each), then the keys (f32 LE) and labels (i64 LE).
    pub fn to_bytes(&self) -> Result<Vec<u8>, TrainError> {
        let dim = self.keys.dims()[1];
        let (keys, labels) = crate::features::rows_to_host(self.keys.clone(), self.labels.clone())?;
        let mut bytes = Vec::with_capacity(32 + 4 * keys.len() + 8 * labels.len());
        for n in [self.capacity, dim, self.len, self.next] {
            bytes.extend_from_slice(&(n as u64).to_le_bytes());
        }
        keys.iter()
            .for_each(|k| bytes.extend_from_slice(&k.to_le_bytes()));
        labels
            .iter()
            .for_each(|l| bytes.extend_from_slice(&l.to_le_bytes()));
        Ok(bytes)
    }

    /// A queue written by [`to_bytes`](Self::to_bytes), on `device`; `None` if the bytes are
    /// not one.
    pub fn from_bytes(bytes: &[u8], device: &Device) -> Option<KeyQueue> {
        let header: Vec<usize> = bytes
            .get(..32)?
            .chunks(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")) as usize)
            .collect();
        let [capacity, dim, len, next] = header[..] else {
            return None;
        };
        let body = &bytes[32..];
        let key_bytes = capacity.checked_mul(dim)?.checked_mul(4)?;
        if len > capacity || next >= capacity.max(1) || body.len() != key_bytes + 8 * capacity {
            return None;
        }
        let keys: Vec<f32> = body[..key_bytes]
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        let labels: Vec<i64> = body[key_bytes..]
            .chunks(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        Some(KeyQueue {
            keys: Tensor::<1>::from_floats(keys.as_slice(), device).reshape([capacity, dim]),
            labels: Tensor::<1, Int>::from_ints(labels.as_slice(), device),
            capacity,
            len,
            next,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Param;

    fn rows(values: &[f32], device: &Device) -> Tensor<2> {
        Tensor::<1>::from_floats(values, device).reshape([values.len(), 1])
    }

    fn floats(t: Tensor<2>) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().unwrap()
    }

    #[test]
    fn the_queue_drops_its_oldest_rows_and_round_trips() {
        let device = Device::flex();
        let mut queue = KeyQueue::new(4, 1, &device);
        assert!(queue.is_empty());
        queue
            .push(
                rows(&[1.0, 2.0, 3.0], &device),
                Tensor::from_ints([1, 2, 3], &device),
            )
            .unwrap();
        assert_eq!(queue.len(), 3);
        queue
            .push(
                rows(&[4.0, 5.0], &device),
                Tensor::from_ints([4, 5], &device),
            )
            .unwrap();
        assert_eq!(queue.len(), 4);
        let (keys, labels) = queue.contents();
        // 1 was the oldest: 5 took its place.
        assert_eq!(floats(keys), [5.0, 2.0, 3.0, 4.0]);
        assert_eq!(
            labels.into_data().try_into_vec_as::<i64>().unwrap(),
            [5, 2, 3, 4]
        );
        let back = KeyQueue::from_bytes(&queue.to_bytes().unwrap(), &device).unwrap();
        assert_eq!(floats(back.contents().0), [5.0, 2.0, 3.0, 4.0]);
        assert_eq!((back.len, back.next), (queue.len, queue.next));
        assert!(KeyQueue::from_bytes(&[0; 10], &device).is_none());
        let too_many = rows(&[0.0; 5], &device);
        assert!(queue.push(too_many, Tensor::zeros([5], &device)).is_err());
    }

    #[derive(Module, Debug)]
    struct Tiny {
        weight: Param<Tensor<1>>,
    }

    #[test]
    fn the_moving_average_follows_the_model() {
        let device = Device::flex();
        let train = device.clone().autodiff();
        let model = Tiny {
            weight: Param::from_tensor(Tensor::from_floats([1.0, 2.0], &train)),
        };
        let key = Tiny {
            weight: Param::from_tensor(Tensor::from_floats([3.0, 0.0], &device)),
        };
        let key = ema_update(key, &model, 0.75);
        let got = key.weight.val().into_data().try_into_vec::<f32>().unwrap();
        assert_eq!(got, [0.75 * 3.0 + 0.25, 0.25 * 2.0]);
    }
}
