//! CIFAR-10 and CIFAR-100 in their binary versions (`cifar-10-binary.tar.gz`,
//! `cifar-100-binary.tar.gz`, extracted).
//!
//! A CIFAR-10 record is 1 label byte and 3,072 pixel bytes (1,024 red, green, blue, row-major
//! 32x32); files `data_batch_1.bin` ... `data_batch_5.bin` (train) and `test_batch.bin`. A
//! CIFAR-100 record has 2 label bytes (coarse, fine) first; files `train.bin` and `test.bin`.
//! The folder may be the extracted top folder or the one inside it
//! (`cifar-10-batches-bin`, `cifar-100-binary`).

use std::path::{Path, PathBuf};

use crate::idx::read_file;
use crate::{DataError, ImageDataset};

const PIXELS: usize = 3 * 32 * 32;

/// CIFAR-10's classes, in label order (also in `batches.meta.txt`).
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Which CIFAR-100 label to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cifar100Labels {
    /// The 100 classes (the default).
    #[default]
    Fine,
    /// The 20 superclasses.
    Coarse,
}

/// The training (`train = true`, 50,000 images) or test split (10,000) of CIFAR-10.
pub fn load_cifar10(dir: &Path, train: bool) -> Result<ImageDataset, DataError> {
    let dir = resolve(dir, "cifar-10-batches-bin")?;
    let files: Vec<PathBuf> = if train {
        (1..=5)
            .map(|i| dir.join(format!("data_batch_{i}.bin")))
            .collect()
    } else {
        vec![dir.join("test_batch.bin")]
    };
    let classes = class_names(&dir.join("batches.meta.txt"), 10)?
        .unwrap_or_else(|| CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect());
    read_records(&files, 1, 0, classes)
}

/// The training (50,000 images) or test split (10,000) of CIFAR-100, with fine or coarse labels.
pub fn load_cifar100(
    dir: &Path,
    train: bool,
    labels: Cifar100Labels,
) -> Result<ImageDataset, DataError> {
    let dir = resolve(dir, "cifar-100-binary")?;
    let file = dir.join(if train { "train.bin" } else { "test.bin" });
    let (offset, count, names) = match labels {
        Cifar100Labels::Coarse => (0, 20, "coarse_label_names.txt"),
        Cifar100Labels::Fine => (1, 100, "fine_label_names.txt"),
    };
    let classes = class_names(&dir.join(names), count)?
        .unwrap_or_else(|| (0..count).map(|c| c.to_string()).collect());
    read_records(&[file], 2, offset, classes)
}

/// `dir`, or `dir/inner` when the files sit there.
fn resolve(dir: &Path, inner: &str) -> Result<PathBuf, DataError> {
    if !dir.is_dir() {
        return Err(DataError::NotFound {
            path: dir.to_path_buf(),
        });
    }
    let nested = dir.join(inner);
    Ok(if nested.is_dir() {
        nested
    } else {
        dir.to_path_buf()
    })
}

/// Class names from a text file (one a line), if it exists; it must name `count` classes.
fn class_names(path: &Path, count: usize) -> Result<Option<Vec<String>>, DataError> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if names.len() != count {
        return Err(DataError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("names {} classes, expected {count}", names.len()),
        });
    }
    Ok(Some(names))
}

fn read_records(
    files: &[PathBuf],
    label_bytes: usize,
    label_offset: usize,
    classes: Vec<String>,
) -> Result<ImageDataset, DataError> {
    let record = label_bytes + PIXELS;
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    for file in files {
        let bytes = read_file(file)?;
        if bytes.is_empty() || bytes.len() % record != 0 {
            return Err(DataError::Truncated {
                path: file.clone(),
                what: "whole CIFAR records",
                expected: (bytes.len().div_ceil(record).max(1) * record) as u64,
                found: bytes.len() as u64,
            });
        }
        images.reserve(bytes.len() / record * PIXELS);
        for chunk in bytes.chunks_exact(record) {
            let label = u32::from(chunk[label_offset]);
            if label as usize >= classes.len() {
                return Err(DataError::LabelOutOfRange {
                    path: file.clone(),
                    index: labels.len(),
                    label,
                    classes: classes.len(),
                });
            }
            labels.push(label);
            images.extend_from_slice(&chunk[label_bytes..]);
        }
    }
    ImageDataset::new(images, labels, [3, 32, 32], classes, &files[0])
}
