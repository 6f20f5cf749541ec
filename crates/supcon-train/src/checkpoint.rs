//! Checkpoints: the model, the optimiser, and the training state (epoch, generator, metrics so
//! far) in one file, written atomically: to a temporary file first, flushed to disk, then
//! renamed over the previous checkpoint, so a run killed at any moment leaves either the old
//! checkpoint or the new one, never a torn file.
//!
//! Layout: `SUPCONCK`, format version (u32 LE), then three length-prefixed (u64 LE) sections:
//! the training state as JSON, the model as a Burn burnpack record, the optimiser record.

use std::io::Write;
use std::path::{Path, PathBuf};

use burn::tensor::Bytes;
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::metrics::EpochMetrics;

const MAGIC: &[u8; 8] = b"SUPCONCK";
const VERSION: u32 = 1;

/// Where a run is: what a resumed run needs besides the weights and the optimiser.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainingState {
    /// Epochs completed.
    pub epoch: usize,
    /// The augmentation generator after the last completed epoch.
    pub augment_rng: rand_chacha::ChaCha8Rng,
    /// Per-epoch metrics so far.
    pub history: Vec<EpochMetrics>,
    /// Seconds spent training so far (over all sessions of the run).
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
}

impl Checkpoint {
    /// Writes the checkpoint atomically to `path`.
    pub fn save(&self, path: &Path) -> Result<(), TrainError> {
        let state = serde_json::to_vec(&self.state)
            .map_err(|e| TrainError::run(path, format!("cannot serialise the state: {e}")))?;
        let mut bytes =
            Vec::with_capacity(32 + state.len() + self.model.len() + self.optimizer.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&VERSION.to_le_bytes());
        for section in [&state[..], &self.model[..], &self.optimizer[..]] {
            bytes.extend_from_slice(&(section.len() as u64).to_le_bytes());
            bytes.extend_from_slice(section);
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
        if version != VERSION {
            return Err(corrupt(&format!(
                "format version {version}, expected {VERSION}"
            )));
        }
        let mut rest = &bytes[12..];
        let mut sections = Vec::with_capacity(3);
        for _ in 0..3 {
            if rest.len() < 8 {
                return Err(corrupt("truncated"));
            }
            let len = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes"));
            rest = &rest[8..];
            let len = usize::try_from(len).ok().filter(|l| *l <= rest.len());
            let len = len.ok_or_else(|| corrupt("truncated"))?;
            sections.push(&rest[..len]);
            rest = &rest[len..];
        }
        if !rest.is_empty() {
            return Err(corrupt("trailing bytes"));
        }
        let state: TrainingState = serde_json::from_slice(sections[0])
            .map_err(|e| corrupt(&format!("training state: {e}")))?;
        Ok(Checkpoint {
            state,
            model: Bytes::from_bytes_vec(sections[1].to_vec()),
            optimizer: Bytes::from_bytes_vec(sections[2].to_vec()),
        })
    }
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let mut temporary = PathBuf::from(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    temporary.set_file_name(format!(".{name}.tmp"));
    let mut file = std::fs::File::create(&temporary).map_err(|e| TrainError::io(&temporary, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| TrainError::io(&temporary, e))?;
    drop(file);
    std::fs::rename(&temporary, path).map_err(|e| TrainError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn sample() -> Checkpoint {
        Checkpoint {
            state: TrainingState {
                epoch: 3,
                augment_rng: rand_chacha::ChaCha8Rng::seed_from_u64(7),
                history: Vec::new(),
                seconds: 1.5,
            },
            model: Bytes::from_bytes_vec(vec![1, 2, 3]),
            optimizer: Bytes::from_bytes_vec(vec![4, 5]),
        }
    }

    #[test]
    fn round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.bin");
        sample().save(&path).unwrap();
        let back = Checkpoint::load(&path).unwrap();
        assert_eq!(back.state.epoch, 3);
        assert_eq!(&back.model[..], &[1, 2, 3]);
        assert_eq!(&back.optimizer[..], &[4, 5]);
        assert_eq!(
            back.state.augment_rng,
            rand_chacha::ChaCha8Rng::seed_from_u64(7)
        );
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);

        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        let error = Checkpoint::load(&path).err().unwrap().to_string();
        assert!(error.contains("truncated"), "{error}");
        std::fs::write(&path, b"not a checkpoint").unwrap();
        let error = Checkpoint::load(&path).err().unwrap().to_string();
        assert!(error.contains("magic"), "{error}");
    }
}
