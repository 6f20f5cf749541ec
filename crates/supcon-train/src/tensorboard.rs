//! TensorBoard event files: the run's scalars (loss, learning rate, images/s, kNN and linear
//! accuracies) in the format TensorBoard and the experiment trackers read.
//!
//! An event file is a sequence of TFRecords: the payload's length (u64, little-endian), the
//! masked CRC-32C of those 8 bytes, the payload, the masked CRC-32C of the payload; a CRC is
//! masked as `((crc >> 15) | (crc << 17)) + 0xa282ead8`. Each payload is an `Event` protocol
//! buffer (`tensorflow/core/util/event.proto`): the first carries `file_version`
//! `"brain.Event:2"`, the others a `Summary` of `simple_value` scalars. The messages are declared
//! with `prost`, the CRC is the `crc32c` crate's.
//!
//! A run keeps one file, `events.out.tfevents.supcon`, rewritten from the run's history after
//! each epoch (as `metrics.jsonl` is), so a resumed run has no duplicate or lost epochs.

use std::path::{Path, PathBuf};

use prost::Message;

use crate::TrainError;
use crate::metrics::EpochMetrics;

/// File name of a run's event file (TensorBoard reads files whose name holds `tfevents`).
pub const EVENTS_FILE: &str = "events.out.tfevents.supcon";

/// `tensorflow.Event`, with the fields written here.
#[derive(Clone, PartialEq, Message)]
pub struct Event {
    /// Seconds since the Unix epoch.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    /// Global step (here: the epoch).
    #[prost(int64, tag = "2")]
    pub step: i64,
    /// `"brain.Event:2"` in a file's first event.
    #[prost(string, optional, tag = "3")]
    pub file_version: Option<String>,
    /// Scalars.
    #[prost(message, optional, tag = "5")]
    pub summary: Option<Summary>,
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, Message)]
pub struct Summary {
    /// One value per tag.
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value`, a scalar.
#[derive(Clone, PartialEq, Message)]
pub struct SummaryValue {
    /// Name of the series (`train/loss`, ...).
    #[prost(string, tag = "1")]
    pub tag: String,
    /// The scalar.
    #[prost(float, optional, tag = "2")]
    pub simple_value: Option<f32>,
}

/// One scalar of a series at a step.
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    /// Series name.
    pub tag: String,
    /// Step (the epoch).
    pub step: i64,
    /// Value.
    pub value: f32,
    /// Seconds since the Unix epoch.
    pub wall_time: f64,
}

/// The scalars of a run's history, per epoch: `<stage>/loss`, `<stage>/learning_rate`,
/// `<stage>/images_per_second`, and, where measured, `<stage>/knn_val_accuracy` and
/// `<stage>/val_accuracy`. `stage` is the task's name (`supcon`, `simclr`, `ce`).
pub fn history_scalars(stage: &str, history: &[EpochMetrics]) -> Vec<Scalar> {
    let mut scalars = Vec::new();
    for m in history {
        let mut push = |name: &str, value: f64| {
            scalars.push(Scalar {
                tag: format!("{stage}/{name}"),
                step: m.epoch as i64,
                value: value as f32,
                wall_time: m.unix_time,
            });
        };
        push("loss", m.loss);
        push("learning_rate", m.learning_rate);
        push("images_per_second", m.images_per_second);
        if let Some(a) = m.knn_accuracy {
            push("knn_val_accuracy", a);
        }
        if let Some(a) = m.val_accuracy {
            push("val_accuracy", a);
        }
    }
    scalars
}

/// Writes `scalars` (one event per step, in order of first appearance) as the run's event file,
/// atomically; returns its path.
pub fn write_events(run_dir: &Path, scalars: &[Scalar]) -> Result<PathBuf, TrainError> {
    let mut steps: Vec<(i64, f64, Vec<SummaryValue>)> = Vec::new();
    for s in scalars {
        let value = SummaryValue {
            tag: s.tag.clone(),
            simple_value: Some(s.value),
        };
        match steps.iter_mut().find(|(step, _, _)| *step == s.step) {
            Some((_, _, values)) => values.push(value),
            None => steps.push((s.step, s.wall_time, vec![value])),
        }
    }
    let first_time = steps.first().map_or(0.0, |(_, t, _)| *t);
    let mut bytes = Vec::new();
    let version = Event {
        wall_time: first_time,
        step: 0,
        file_version: Some("brain.Event:2".into()),
        summary: None,
    };
    append_record(&mut bytes, &version.encode_to_vec());
    for (step, wall_time, value) in steps {
        let event = Event {
            wall_time,
            step,
            file_version: None,
            summary: Some(Summary { value }),
        };
        append_record(&mut bytes, &event.encode_to_vec());
    }
    let path = run_dir.join(EVENTS_FILE);
    crate::atomic::write_atomically(&path, &bytes)?;
    Ok(path)
}

/// Reads an event file back (checking every CRC): its scalars in file order.
pub fn read_events(path: &Path) -> Result<Vec<Scalar>, TrainError> {
    let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
    let bad = |what: String| TrainError::run(path, format!("not a valid event file: {what}"));
    let mut scalars = Vec::new();
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        if rest.len() < 12 {
            return Err(bad("a truncated record header".into()));
        }
        let (header, crc) = (
            &rest[..8],
            u32::from_le_bytes(rest[8..12].try_into().unwrap()),
        );
        if masked_crc(header) != crc {
            return Err(bad("a length whose CRC does not match".into()));
        }
        let len = u64::from_le_bytes(header.try_into().unwrap()) as usize;
        let end = 12usize
            .checked_add(len)
            .and_then(|e| e.checked_add(4))
            .filter(|&e| e <= rest.len())
            .ok_or_else(|| bad("a truncated record".into()))?;
        let payload = &rest[12..12 + len];
        let crc = u32::from_le_bytes(rest[12 + len..end].try_into().unwrap());
        if masked_crc(payload) != crc {
            return Err(bad("a payload whose CRC does not match".into()));
        }
        let event = Event::decode(payload).map_err(|e| bad(e.to_string()))?;
        for value in event.summary.map(|s| s.value).unwrap_or_default() {
            if let Some(v) = value.simple_value {
                scalars.push(Scalar {
                    tag: value.tag,
                    step: event.step,
                    value: v,
                    wall_time: event.wall_time,
                });
            }
        }
        rest = &rest[end..];
    }
    Ok(scalars)
}

fn append_record(out: &mut Vec<u8>, payload: &[u8]) {
    let len = (payload.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&masked_crc(payload).to_le_bytes());
}

/// TFRecord's masked CRC-32C.
fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    (crc.rotate_right(15)).wrapping_add(0xa282_ead8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_and_its_mask_are_tensorflows() {
        // CRC-32C check value (RFC 3720 appendix B.4: 32 bytes of zeros).
        assert_eq!(crc32c::crc32c(&[0u8; 32]), 0x8a91_36aa);
        // TensorFlow's masking of that value, worked out by hand:
        // rotate right 15 of 0x8a9136aa = 0x6d55_1522, plus 0xa282ead8 = 0x0fd7_fffa.
        assert_eq!(masked_crc(&[0u8; 32]), 0x0fd7_fffa);
    }

    #[test]
    fn a_record_is_length_crc_payload_crc() {
        let mut bytes = Vec::new();
        append_record(&mut bytes, b"abc");
        assert_eq!(&bytes[..8], &3u64.to_le_bytes());
        assert_eq!(&bytes[12..15], b"abc");
        assert_eq!(bytes.len(), 8 + 4 + 3 + 4);
    }

    #[test]
    fn events_read_back_and_corruption_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let history: Vec<EpochMetrics> = (1..=3)
            .map(|epoch| EpochMetrics {
                epoch,
                loss: 5.0 - epoch as f64,
                learning_rate: 0.1,
                images_per_second: 1000.0,
                seconds: 1.0,
                knn_accuracy: (epoch == 3).then_some(0.9),
                val_accuracy: None,
                unix_time: 1.7e9 + epoch as f64,
            })
            .collect();
        let scalars = history_scalars("supcon", &history);
        assert_eq!(scalars.len(), 3 * 3 + 1);
        let path = write_events(dir.path(), &scalars).unwrap();
        let read = read_events(&path).unwrap();
        assert_eq!(read, scalars);
        assert!(read.contains(&Scalar {
            tag: "supcon/knn_val_accuracy".into(),
            step: 3,
            value: 0.9,
            wall_time: 1.7e9 + 3.0
        }));
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 10;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let error = read_events(&path).unwrap_err().to_string();
        assert!(error.contains("CRC"), "{error}");
    }
}
