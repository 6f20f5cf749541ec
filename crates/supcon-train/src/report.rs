//! Result files of a run: `linear.json`, `ce.json`, embeddings as `.npy`.

use std::path::Path;

use npyz::WriterBuilder;
use serde::Serialize;

use crate::TrainError;
use crate::atomic::write_atomically;
use crate::linear::LinearOutcome;

/// File name of a run's linear-evaluation result.
pub const LINEAR_FILE: &str = "linear.json";

/// Writes `value` as pretty JSON, atomically.
pub fn save_json<T: Serialize>(path: &Path, value: &T) -> Result<(), TrainError> {
    let text = serde_json::to_vec_pretty(value)
        .map_err(|e| TrainError::run(path, format!("cannot serialise: {e}")))?;
    write_atomically(path, &text)
}

/// Saves a linear evaluation in the run folder.
pub fn save_linear(run_dir: &Path, outcome: &LinearOutcome) -> Result<(), TrainError> {
    save_json(&run_dir.join(LINEAR_FILE), outcome)
}

/// A NumPy `.npy` file (little-endian, C order) of `values` of `shape`, written by `npyz`.
pub fn npy<T: npyz::AutoSerialize + Copy>(shape: &[usize], values: &[T]) -> Vec<u8> {
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut bytes = Vec::new();
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&shape)
        .writer(&mut bytes)
        .begin_nd()
        .expect("writing to memory cannot fail");
    writer
        .extend(values.iter().copied())
        .and_then(|()| writer.finish())
        .expect("writing to memory cannot fail");
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_files_read_back() {
        let bytes = npy(&[2, 3], &[0.5f32, 1.0, 1.5, 2.0, 2.5, 3.0]);
        let file = npyz::NpyFile::new(&bytes[..]).unwrap();
        assert_eq!(file.shape(), &[2, 3]);
        assert_eq!(
            file.into_vec::<f32>().unwrap(),
            [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
        );
        let labels = npy(&[4], &[1i64, 2, 3, 4]);
        let header = String::from_utf8_lossy(&labels[..64]).into_owned();
        assert!(header.contains("'descr': '<i8'"), "{header}");
        let file = npyz::NpyFile::new(&labels[..]).unwrap();
        assert_eq!(file.shape(), &[4]);
        assert_eq!(file.into_vec::<i64>().unwrap(), [1, 2, 3, 4]);
    }
}
