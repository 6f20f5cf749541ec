//! Checkpoints: the model, the optimiser, and the training state (epoch, metrics so far) in one
//! file, written atomically: to a temporary file first, flushed to disk, then
//! renamed over the previous checkpoint, so a run killed at any moment leaves either the old
//! checkpoint or the new one, never a torn file.
//!
//! Layout: `SUPCONCK`, format version (u32 LE: 3, or 4 for a checkpoint taken during an
//! epoch), then four sections, each its length (u64 LE),
//! its bytes and their CRC-32 (u32 LE): the training state as JSON, the model as a Burn
//! burnpack record, the optimiser record, and the task's own state (a momentum encoder and its
//! queue; empty for none). Every load checks every checksum, so a flipped byte in
//! the weights or the optimiser state is refused, naming the file and the section.

use std::path::Path;

use burn::tensor::Bytes;
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::atomic::write_atomically;
use crate::config::RunConfig;
use crate::metrics::EpochMetrics;

const MAGIC: &[u8; 8] = b"SUPCONCK";
const VERSION: u32 = 3;
/// The format of a checkpoint taken during an epoch ([`TrainingState::partial`]): the same
/// layout under another number, so that a supcon-train that cannot continue a partial epoch
/// (format 3 only) refuses the file instead of taking it for the end of an epoch.
const PARTIAL_VERSION: u32 = 4;

/// Where a run is: what a resumed run needs besides the weights and the optimiser.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainingState {
    /// Epochs completed.
    pub epoch: usize,
    /// Per-epoch metrics so far.
    pub history: Vec<EpochMetrics>,
    /// Seconds spent training so far (over all sessions of the run).
    pub seconds: f64,
    /// The configuration the run was trained under (compared when resuming).
    pub config: RunConfig,
    /// The steps of epoch `epoch + 1` already taken, when the run was interrupted during it;
    /// `None` when it stopped at the end of epoch `epoch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<PartialEpoch>,
}

/// How far into an epoch an interrupted run got: resuming takes the epoch's remaining steps
/// (the same batches and views, which are functions of the seed, the epoch and the step) and
/// reports the epoch as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PartialEpoch {
    /// Steps taken.
    pub steps: usize,
    /// Sum of their losses.
    pub loss_sum: f64,
    /// Seconds they took.
    pub seconds: f64,
}

/// A checkpoint's contents.
pub struct Checkpoint {
    /// Training state.
    pub state: TrainingState,
    /// The model record (burnpack bytes).
    pub model: Bytes,
    /// The optimiser record (burnpack bytes).
    pub optimizer: Bytes,
    /// The task's own state ([`Task::state`](crate::fit::Task::state)), empty for none.
    pub task: Vec<u8>,
}

impl Checkpoint {
    /// Whether `path` starts as a checkpoint [`save`](Self::save) writes (a run's
    /// `checkpoint.bin`); only its first bytes are read, and a file that cannot be read is not.
    pub fn is_checkpoint(path: &Path) -> bool {
        use std::io::Read;
        let mut magic = [0u8; 8];
        std::fs::File::open(path).is_ok_and(|mut f| f.read_exact(&mut magic).is_ok())
            && &magic == MAGIC
    }

    /// Writes the checkpoint atomically to `path`.
    pub fn save(&self, path: &Path) -> Result<(), TrainError> {
        let state = serde_json::to_vec(&self.state)
            .map_err(|e| TrainError::run(path, format!("cannot serialise the state: {e}")))?;
        let mut bytes =
            Vec::with_capacity(32 + state.len() + self.model.len() + self.optimizer.len());
        bytes.extend_from_slice(MAGIC);
        let version = if self.state.partial.is_some() {
            PARTIAL_VERSION
        } else {
            VERSION
        };
        bytes.extend_from_slice(&version.to_le_bytes());
        for section in [
            &state[..],
            &self.model[..],
            &self.optimizer[..],
            &self.task[..],
        ] {
            bytes.extend_from_slice(&(section.len() as u64).to_le_bytes());
            bytes.extend_from_slice(section);
            bytes.extend_from_slice(&crc32fast::hash(section).to_le_bytes());
        }
        write_atomically(path, &bytes)
    }

    /// Reads a checkpoint written by [`save`](Self::save).
    pub fn load(path: &Path) -> Result<Checkpoint, TrainError> {
        let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
        let corrupt =
            |what: &str| TrainError::run(path, format!("not a supcon checkpoint: {what}"));
        if bytes.len() < 12 || &bytes[..8] != MAGIC {
            return Err(corrupt("wrong magic bytes"));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version == 1 {
            return Err(TrainError::run(
                path,
                "this checkpoint was written by an earlier supcon-train (format 1, which saved \
                 the augmentation generator; views are now drawn from per-batch seeds), so \
                 resuming it would not continue the same run: start a new run"
                    .to_string(),
            ));
        }
        if version == 2 {
            return Err(TrainError::run(
                path,
                "this checkpoint was written by an earlier supcon-train (format 2, whose \
                 configuration had another layout), so resuming it would not continue the same \
                 run: start a new run"
                    .to_string(),
            ));
        }
        if version != VERSION && version != PARTIAL_VERSION {
            return Err(corrupt(&format!(
                "format version {version}, expected {VERSION} or {PARTIAL_VERSION}"
            )));
        }
        let mut rest = &bytes[12..];
        let mut sections = Vec::with_capacity(4);
        for name in ["training state", "model", "optimiser state", "task state"] {
            if rest.len() < 8 {
                return Err(corrupt("truncated"));
            }
            let len = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes"));
            rest = &rest[8..];
            let len = usize::try_from(len)
                .ok()
                .filter(|l| l.checked_add(4).is_some_and(|end| end <= rest.len()));
            let len = len.ok_or_else(|| corrupt("truncated"))?;
            let (section, checksum) = (&rest[..len], &rest[len..len + 4]);
            if crc32fast::hash(section).to_le_bytes() != checksum {
                return Err(corrupt(&format!(
                    "the checksum of its {name} does not match (the file is damaged)"
                )));
            }
            sections.push(section);
            rest = &rest[len + 4..];
        }
        if !rest.is_empty() {
            return Err(corrupt("trailing bytes"));
        }
        let state: TrainingState = serde_json::from_slice(sections[0])
            .map_err(|e| corrupt(&format!("training state: {e}")))?;
        if (version == PARTIAL_VERSION) != state.partial.is_some() {
            return Err(corrupt(&format!(
                "format version {version} with a state of another kind"
            )));
        }
        Ok(Checkpoint {
            state,
            model: Bytes::from_bytes_vec(sections[1].to_vec()),
            optimizer: Bytes::from_bytes_vec(sections[2].to_vec()),
            task: sections[3].to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        Checkpoint {
            state: TrainingState {
                epoch: 3,
                history: Vec::new(),
                seconds: 1.5,
                config: RunConfig::new(),
                partial: Some(PartialEpoch {
                    steps: 2,
                    loss_sum: 9.25,
                    seconds: 0.5,
                }),
            },
            model: Bytes::from_bytes_vec(vec![1, 2, 3]),
            optimizer: Bytes::from_bytes_vec(vec![4, 5]),
            task: vec![6, 7, 8],
        }
    }

    #[test]
    fn round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.bin");
        sample().save(&path).unwrap();
        let back = Checkpoint::load(&path).unwrap();
        assert_eq!(back.state.epoch, 3);
        assert_eq!(back.state.partial, sample().state.partial);
        assert_eq!(&back.model[..], &[1, 2, 3]);
        assert_eq!(&back.optimizer[..], &[4, 5]);
        assert_eq!(back.task, [6, 7, 8]);
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);

        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        let error = Checkpoint::load(&path).err().unwrap().to_string();
        assert!(error.contains("truncated"), "{error}");
        // A flipped byte anywhere in a section is caught by its checksum.
        for (offset, section) in [
            (20, "training state"),
            (bytes.len() - 20, "optimiser"),
            (bytes.len() - 5, "task state"),
        ] {
            let mut flipped = bytes.clone();
            flipped[offset] ^= 0x10;
            std::fs::write(&path, &flipped).unwrap();
            let error = Checkpoint::load(&path).err().unwrap().to_string();
            assert!(
                error.contains("checksum") && error.contains(section),
                "{error}"
            );
        }
        std::fs::write(&path, b"not a checkpoint").unwrap();
        let error = Checkpoint::load(&path).err().unwrap().to_string();
        assert!(error.contains("magic"), "{error}");
    }
}
