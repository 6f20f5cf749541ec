//! Result files of a run: `linear.json`, `ce.json`, embeddings as `.npy`.

use std::path::Path;

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

/// A NumPy `.npy` file (format 1.0, little-endian, C order) of `f32` values of `shape`.
pub fn npy_f32(shape: &[usize], values: &[f32]) -> Vec<u8> {
    let mut bytes = npy_header("<f4", shape);
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    bytes
}

/// A NumPy `.npy` file of `i64` values of `shape`.
pub fn npy_i64(shape: &[usize], values: &[i64]) -> Vec<u8> {
    let mut bytes = npy_header("<i8", shape);
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    bytes
}

fn npy_header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // Magic (6) + version (2) + length (2) + dict + newline must be a multiple of 64.
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    bytes.extend_from_slice(dict.as_bytes());
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_header_is_aligned_and_exact() {
        let bytes = npy_f32(&[2, 3], &[0.0; 6]);
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
        assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"));
        assert_eq!(bytes.len(), 10 + header_len + 24);
        let labels = npy_i64(&[4], &[1, 2, 3, 4]);
        let header_len = u16::from_le_bytes([labels[8], labels[9]]) as usize;
        let header = std::str::from_utf8(&labels[10..10 + header_len]).unwrap();
        assert!(header.contains("'shape': (4,)"), "{header}");
    }
}
