//! The IDX format of the MNIST database, gzipped or not: MNIST, Fashion-MNIST, EMNIST, KMNIST
//! and anything else stored that way.
//!
//! A file is a big-endian header, magic `0x0000_08_NN` (unsigned bytes, `NN` dimensions), then
//! `NN` sizes as `u32`, then the bytes. Images are 3-dimensional (`count, rows, cols`, magic
//! 2051), labels 1-dimensional (`count`, magic 2049).

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::{DataError, ImageDataset};

const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;

/// Reads an image file and a label file. Class names come from `classes`, or are the label
/// values `"0"`, `"1"`, ... up to the largest label when `None`.
pub fn load_files(
    images_path: &Path,
    labels_path: &Path,
    classes: Option<Vec<String>>,
) -> Result<ImageDataset, DataError> {
    let images = read_file(images_path)?;
    let labels = read_file(labels_path)?;
    from_bytes(&images, images_path, &labels, labels_path, classes)
}

/// Parses IDX images and labels already in memory (gzipped or not); the paths only name them in
/// errors.
pub fn from_bytes(
    images: &[u8],
    images_path: &Path,
    labels: &[u8],
    labels_path: &Path,
    classes: Option<Vec<String>>,
) -> Result<ImageDataset, DataError> {
    let images = gunzip_if_needed(images, images_path)?;
    let labels = gunzip_if_needed(labels, labels_path)?;
    let (image_dims, pixels) = parse(&images, images_path, IMAGES_MAGIC, "images")?;
    let (label_dims, label_bytes) = parse(&labels, labels_path, LABELS_MAGIC, "labels")?;
    if image_dims[0] != label_dims[0] {
        return Err(DataError::CountMismatch {
            image_path: images_path.to_path_buf(),
            images: image_dims[0],
            label_path: labels_path.to_path_buf(),
            labels: label_dims[0],
        });
    }
    let labels: Vec<u32> = label_bytes.iter().map(|&l| u32::from(l)).collect();
    let classes = classes.unwrap_or_else(|| {
        let count = labels.iter().max().map_or(0, |&m| m as usize + 1);
        (0..count).map(|c| c.to_string()).collect()
    });
    let shape = [1, image_dims[1], image_dims[2]];
    ImageDataset::new(pixels.to_vec(), labels, shape, classes, labels_path)
}

/// The files of one split in a folder laid out as the MNIST database ships:
/// `{prefix}-images-idx3-ubyte[.gz]` and `{prefix}-labels-idx1-ubyte[.gz]`, where the prefix
/// is `train` for the training split and `test` or `t10k` for the test split. A `classes.txt`
/// beside them (one name a line) names the classes.
pub fn load_dir(dir: &Path, train: bool) -> Result<ImageDataset, DataError> {
    if !dir.is_dir() {
        return Err(DataError::NotFound {
            path: dir.to_path_buf(),
        });
    }
    let prefixes: &[&str] = if train { &["train"] } else { &["test", "t10k"] };
    let prefix = prefixes
        .iter()
        .find(|p| find_file(dir, p, IMAGES_SUFFIX).is_some())
        .unwrap_or(&prefixes[0]);
    load_set(dir, prefix)
}

/// The end of an image file's name, after its set's prefix and before an optional `.gz`.
const IMAGES_SUFFIX: &str = "-images-idx3-ubyte";
/// The end of a label file's name.
const LABELS_SUFFIX: &str = "-labels-idx1-ubyte";

/// The sets of IDX files in `dir`: the prefixes of its `{prefix}-images-idx3-ubyte[.gz]` and
/// `{prefix}-labels-idx1-ubyte[.gz]` files (a prefix is listed when either file is there),
/// sorted. MNIST's own folder gives `["t10k", "train"]`; a folder holding one set under any
/// name (`all-images-idx3-ubyte.gz`, ...) gives that name.
pub fn sets_in(dir: &Path) -> Result<Vec<String>, DataError> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut sets = Vec::new();
    for entry in entries {
        let name = entry.map_err(|e| DataError::io(dir, e))?.file_name();
        let Some(name) = name.to_str() else { continue };
        let stem = name.strip_suffix(".gz").unwrap_or(name);
        let prefix = stem
            .strip_suffix(IMAGES_SUFFIX)
            .or_else(|| stem.strip_suffix(LABELS_SUFFIX));
        if let Some(prefix) = prefix.filter(|p| !p.is_empty()) {
            sets.push(prefix.to_string());
        }
    }
    sets.sort();
    sets.dedup();
    Ok(sets)
}

/// One set of IDX files in `dir`: `{prefix}-images-idx3-ubyte[.gz]` and
/// `{prefix}-labels-idx1-ubyte[.gz]` (the gzipped file first where both are there), with the
/// class names of a `classes.txt` beside them.
pub fn load_set(dir: &Path, prefix: &str) -> Result<ImageDataset, DataError> {
    let find = |suffix: &str| {
        find_file(dir, prefix, suffix).ok_or_else(|| DataError::NotFound {
            path: dir.join(format!("{prefix}{suffix}.gz")),
        })
    };
    let images = find(IMAGES_SUFFIX)?;
    let labels = find(LABELS_SUFFIX)?;
    let names = dir.join("classes.txt");
    let classes = if names.is_file() {
        let text = std::fs::read_to_string(&names).map_err(|e| DataError::io(&names, e))?;
        Some(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect(),
        )
    } else {
        None
    };
    load_files(&images, &labels, classes)
}

/// `dir/{prefix}{suffix}.gz`, or else `dir/{prefix}{suffix}`, whichever is a file.
fn find_file(dir: &Path, prefix: &str, suffix: &str) -> Option<PathBuf> {
    let stem = format!("{prefix}{suffix}");
    [dir.join(format!("{stem}.gz")), dir.join(stem)]
        .into_iter()
        .find(|p| p.is_file())
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|e| DataError::io(path, e))
}

/// The bytes, decompressed when they start with the gzip magic `1f 8b`. The IDX header is
/// inflated first, and then never more than the one byte past what it announces that [`parse`]
/// needs to report trailing data: a small file that inflates to gigabytes (or forever) is refused
/// after reading its header, not after filling the memory.
pub(crate) fn gunzip_if_needed<'a>(
    bytes: &'a [u8],
    path: &Path,
) -> Result<std::borrow::Cow<'a, [u8]>, DataError> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(std::borrow::Cow::Borrowed(bytes));
    }
    let bad = |e: std::io::Error| DataError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("bad gzip stream: {e}"),
    };
    let mut stream = flate2::read::GzDecoder::new(bytes);
    // The magic number, whose last byte counts the dimensions, then their sizes.
    let mut out = Vec::new();
    (&mut stream).take(4).read_to_end(&mut out).map_err(bad)?;
    let dims = out.get(3).map_or(0, |&d| d as u64);
    (&mut stream)
        .take(4 * dims)
        .read_to_end(&mut out)
        .map_err(bad)?;
    let announced = out
        .get(4..)
        .unwrap_or_default()
        .chunks_exact(4)
        .try_fold(1u64, |acc, c| {
            acc.checked_mul(u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
        })
        .unwrap_or(u64::MAX);
    stream
        .take(announced.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(bad)?;
    Ok(std::borrow::Cow::Owned(out))
}

/// Checks the header and returns the sizes and the data bytes.
fn parse<'a>(
    bytes: &'a [u8],
    path: &Path,
    magic: u32,
    what: &'static str,
) -> Result<(Vec<usize>, &'a [u8]), DataError> {
    let dims = (magic & 0xff) as usize;
    let header = 4 + 4 * dims;
    let truncated = |expected: usize, what| DataError::Truncated {
        path: path.to_path_buf(),
        what,
        expected: expected as u64,
        found: bytes.len() as u64,
    };
    if bytes.len() < 4 {
        return Err(truncated(header, "IDX header"));
    }
    let found = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if found != magic {
        return Err(DataError::Corrupt {
            path: path.to_path_buf(),
            reason: format!(
                "wrong magic number {found} (0x{found:08x}): IDX {what} of unsigned bytes have {magic} (0x{magic:08x})"
            ),
        });
    }
    if bytes.len() < header {
        return Err(truncated(header, "IDX header"));
    }
    let sizes: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    // A corrupt header can announce more bytes than a usize holds: that is truncation too.
    let expected = sizes
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .and_then(|data| data.checked_add(header))
        .unwrap_or(usize::MAX);
    if bytes.len() < expected {
        return Err(truncated(expected, what));
    }
    if bytes.len() > expected {
        return Err(DataError::Corrupt {
            path: path.to_path_buf(),
            reason: format!(
                "{} bytes after the {what} its header announces",
                bytes.len() - expected
            ),
        });
    }
    Ok((sizes, &bytes[header..]))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// A 50 MB stream of zeros after a header announcing 4 images of 2x2: inflating stops one
    /// byte past the announced 16 bytes (and the file is refused for its trailing data).
    #[test]
    fn a_gzip_bomb_is_not_inflated_past_its_header() {
        let mut header = IMAGES_MAGIC.to_be_bytes().to_vec();
        for d in [4u32, 2, 2] {
            header.extend_from_slice(&d.to_be_bytes());
        }
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&header).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..50 {
            encoder.write_all(&zeros).unwrap();
        }
        let zipped = encoder.finish().unwrap();
        assert!(zipped.len() < 1 << 20, "{} bytes", zipped.len());
        let path = Path::new("bomb-images-idx3-ubyte.gz");
        let inflated = gunzip_if_needed(&zipped, path).unwrap();
        assert_eq!(inflated.len(), header.len() + 16 + 1);
        let error = parse(&inflated, path, IMAGES_MAGIC, "images").unwrap_err();
        assert!(error.to_string().contains("after the images"), "{error}");
    }
}
