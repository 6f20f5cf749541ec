//! CIFAR-10 and CIFAR-100, in their binary versions (`cifar-10-binary.tar.gz`,
//! `cifar-100-binary.tar.gz`, extracted) or their Python versions (`cifar-10-python.tar.gz`,
//! `cifar-100-python.tar.gz`: what torchvision downloads, so the folder SupContrast's scripts
//! leave in `./datasets`).
//!
//! Binary: a CIFAR-10 record is 1 label byte and 3,072 pixel bytes (1,024 red, green, blue,
//! row-major 32x32); files `data_batch_1.bin` ... `data_batch_5.bin` (train) and
//! `test_batch.bin`. A CIFAR-100 record has 2 label bytes (coarse, fine) first; files
//! `train.bin` and `test.bin`.
//!
//! Python: the same files without `.bin` (CIFAR-10 `data_batch_1` ... `test_batch`, CIFAR-100
//! `train`, `test`), each a pickled dictionary of `data` (a `uint8` NumPy array `[N, 3072]`, the
//! same pixel order) and `labels` (CIFAR-100: `fine_labels`, `coarse_labels`); class names in
//! `batches.meta` (`meta`). They are read without running Python or any code in them.
//!
//! The folder may be the extracted top folder or the one inside it (`cifar-10-batches-bin`,
//! `cifar-10-batches-py`, `cifar-100-binary`, `cifar-100-python`: torchvision's `root`); where
//! both versions are there, the binary one is read.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::idx::read_file;
use crate::pickle::{self, Value};
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
    let names = |suffix: &str| -> Vec<String> {
        if train {
            (1..=5).map(|b| format!("data_batch_{b}{suffix}")).collect()
        } else {
            vec![format!("test_batch{suffix}")]
        }
    };
    match locate(
        dir,
        "cifar-10-batches-bin",
        "cifar-10-batches-py",
        &names(""),
    )? {
        Version::Binary(dir) => {
            let files: Vec<PathBuf> = names(".bin").iter().map(|f| dir.join(f)).collect();
            let classes = class_names(&dir.join("batches.meta.txt"), 10)?
                .unwrap_or_else(|| CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect());
            read_records(&files, 1, 0, classes)
        }
        Version::Python(dir) => {
            let files: Vec<PathBuf> = names("").iter().map(|f| dir.join(f)).collect();
            let classes = pickled_class_names(&dir.join("batches.meta"), "label_names", 10)?
                .unwrap_or_else(|| CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect());
            read_pickles(&files, "labels", classes)
        }
    }
}

/// The training (50,000 images) or test split (10,000) of CIFAR-100, with fine or coarse labels.
pub fn load_cifar100(
    dir: &Path,
    train: bool,
    labels: Cifar100Labels,
) -> Result<ImageDataset, DataError> {
    let split = if train { "train" } else { "test" };
    let (offset, count, kind) = match labels {
        Cifar100Labels::Coarse => (0, 20, "coarse"),
        Cifar100Labels::Fine => (1, 100, "fine"),
    };
    let numbers = || (0..count).map(|c| c.to_string()).collect();
    match locate(
        dir,
        "cifar-100-binary",
        "cifar-100-python",
        &[split.to_string()],
    )? {
        Version::Binary(dir) => {
            let names = dir.join(format!("{kind}_label_names.txt"));
            let classes = class_names(&names, count)?.unwrap_or_else(numbers);
            read_records(&[dir.join(format!("{split}.bin"))], 2, offset, classes)
        }
        Version::Python(dir) => {
            let names = format!("{kind}_label_names");
            let classes =
                pickled_class_names(&dir.join("meta"), &names, count)?.unwrap_or_else(numbers);
            read_pickles(&[dir.join(split)], &format!("{kind}_labels"), classes)
        }
    }
}

/// Which version of a CIFAR dataset a folder holds, and where its files are.
enum Version {
    Binary(PathBuf),
    Python(PathBuf),
}

/// Where the files are: `dir/{binary}` (binary), `dir/{python}` (Python), or `dir` itself:
/// Python when it holds one of `python_files` and none of them with `.bin`, binary otherwise.
fn locate(
    dir: &Path,
    binary: &str,
    python: &str,
    python_files: &[String],
) -> Result<Version, DataError> {
    if !dir.is_dir() {
        return Err(DataError::NotFound {
            path: dir.to_path_buf(),
        });
    }
    let (binary, python) = (dir.join(binary), dir.join(python));
    let has = |suffix: &str| {
        python_files
            .iter()
            .any(|f| dir.join(format!("{f}{suffix}")).is_file())
    };
    Ok(if binary.is_dir() {
        Version::Binary(binary)
    } else if python.is_dir() {
        Version::Python(python)
    } else if has("") && !has(".bin") {
        Version::Python(dir.to_path_buf())
    } else {
        if !has(".bin") {
            // The archive as downloaded (torchvision's root keeps it beside the folder).
            let stem = binary_stem(&binary);
            for archive in [
                format!("{stem}python.tar.gz"),
                format!("{stem}binary.tar.gz"),
            ] {
                if dir.join(&archive).is_file() {
                    return Err(DataError::Invalid(format!(
                        "{}: holds {archive} but not its files: extract it there first \
                         (tar xzf {archive})",
                        dir.display()
                    )));
                }
            }
        }
        Version::Binary(dir.to_path_buf())
    })
}

/// `cifar-10-` for `.../cifar-10-batches-bin`, `cifar-100-` for `.../cifar-100-binary`: how the
/// dataset's archives begin.
fn binary_stem(binary: &Path) -> &'static str {
    match binary.file_name().and_then(|n| n.to_str()) {
        Some(n) if n.starts_with("cifar-100-") => "cifar-100-",
        _ => "cifar-10-",
    }
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

/// The images and labels of pickled CIFAR batches (the Python version): each file a dictionary
/// of `data` (`uint8` `[N, 3072]`) and the labels under `labels_key`.
fn read_pickles(
    files: &[PathBuf],
    labels_key: &str,
    classes: Vec<String>,
) -> Result<ImageDataset, DataError> {
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    for file in files {
        let corrupt = |reason: String| DataError::Corrupt {
            path: file.clone(),
            reason,
        };
        let batch = pickle::load(&read_file(file)?).map_err(|e| corrupt(e.to_string()))?;
        let data = batch
            .get("data")
            .ok_or_else(|| corrupt("no `data` in this pickled CIFAR batch".into()))?;
        let (shape, pixels) = numpy_u8(data).map_err(|e| corrupt(format!("`data`: {e}")))?;
        let count = shape.first().copied().unwrap_or(0);
        if shape.len() < 2 || shape[1..].iter().product::<usize>() != PIXELS || count == 0 {
            return Err(corrupt(format!(
                "`data` has shape {shape:?}, expected [N, {PIXELS}] with N >= 1"
            )));
        }
        let batch_labels = match batch.get(labels_key) {
            Some(Value::List(values)) => values,
            Some(_) => return Err(corrupt(format!("`{labels_key}` is not a list"))),
            None => return Err(corrupt(format!("no `{labels_key}` in this pickled batch"))),
        };
        if batch_labels.len() != count {
            return Err(corrupt(format!(
                "{count} images but {} labels in `{labels_key}`",
                batch_labels.len()
            )));
        }
        for (i, label) in batch_labels.iter().enumerate() {
            let label = match label {
                Value::Int(l) => u32::try_from(*l).ok(),
                _ => None,
            };
            match label {
                Some(label) if (label as usize) < classes.len() => labels.push(label),
                Some(label) => {
                    return Err(DataError::LabelOutOfRange {
                        path: file.clone(),
                        index: labels.len(),
                        label,
                        classes: classes.len(),
                    });
                }
                None => {
                    return Err(corrupt(format!(
                        "label {i} of `{labels_key}` is not a non-negative integer"
                    )));
                }
            }
        }
        images.extend_from_slice(&pixels);
    }
    ImageDataset::new(images, labels, [3, 32, 32], classes, &files[0])
}

/// The shape and bytes of a pickled `uint8` NumPy array in C order, in either form NumPy
/// pickles one: `_reconstruct` and a `BUILD` state (protocols 0 to 4) or `_frombuffer`
/// (protocol 5).
fn numpy_u8(value: &Value) -> Result<(Vec<usize>, Rc<Vec<u8>>), String> {
    const MULTIARRAY: &[&str] = &["numpy.core.multiarray", "numpy._core.multiarray"];
    const NUMERIC: &[&str] = &["numpy.core.numeric", "numpy._core.numeric"];
    let Value::Object {
        callable,
        args,
        state,
        ..
    } = value
    else {
        return Err("not a NumPy array".into());
    };
    if callable.is_global(MULTIARRAY, "_reconstruct") {
        // state: (version, shape, dtype, is_fortran, data)
        match state.as_deref() {
            Some(Value::Tuple(f)) if f.len() == 5 => array(&f[1], &f[2], f[3].truthy(), &f[4]),
            _ => Err("a NumPy array without the state it is rebuilt from".into()),
        }
    } else if callable.is_global(NUMERIC, "_frombuffer") {
        // args: (buffer, dtype, shape, order)
        match args.as_ref() {
            Value::Tuple(f) if f.len() == 4 => {
                array(&f[2], &f[1], f[3].text().as_deref() == Some("F"), &f[0])
            }
            _ => Err("a NumPy buffer without its arguments".into()),
        }
    } else {
        Err("not a NumPy array".into())
    }
}

/// A NumPy array's pieces checked: a shape of sizes, `uint8` elements, C order, and as many
/// bytes as the shape says.
fn array(
    shape: &Value,
    dtype: &Value,
    fortran: bool,
    data: &Value,
) -> Result<(Vec<usize>, Rc<Vec<u8>>), String> {
    let sizes = match shape {
        Value::Tuple(dims) => dims
            .iter()
            .map(|d| match d {
                Value::Int(n) => usize::try_from(*n).ok(),
                _ => None,
            })
            .collect::<Option<Vec<usize>>>(),
        _ => None,
    }
    .ok_or("a shape that is not a tuple of sizes")?;
    let code = match dtype {
        Value::Object { callable, args, .. } if callable.is_global(&["numpy"], "dtype") => {
            match args.as_ref() {
                Value::Tuple(a) => a.first().and_then(Value::text),
                _ => None,
            }
        }
        _ => None,
    }
    .ok_or("an element type that is not a NumPy dtype")?;
    if code.trim_start_matches('|') != "u1" {
        return Err(format!("element type `{code}`, expected uint8 (`u1`)"));
    }
    if fortran {
        return Err("an array in Fortran order".into());
    }
    let bytes = match data {
        Value::Bytes(bytes) => bytes.clone(),
        // Python 3 at protocol 2 writes bytes as `_codecs.encode(text, 'latin1')`.
        Value::Object { callable, args, .. } if callable.is_global(&["_codecs"], "encode") => {
            let text = match args.as_ref() {
                Value::Tuple(a) if a.len() == 2 && a[1].text().as_deref() == Some("latin1") => {
                    a[0].text()
                }
                _ => None,
            }
            .ok_or("encoded data that is not latin1 text")?;
            let bytes: Option<Vec<u8>> = text
                .chars()
                .map(|c| u8::try_from(u32::from(c)).ok())
                .collect();
            Rc::new(bytes.ok_or("latin1 data with a character past 255")?)
        }
        _ => return Err("array data that is not bytes".into()),
    };
    let expected = sizes.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    if expected != Some(bytes.len()) {
        return Err(format!("shape {sizes:?} but {} bytes of data", bytes.len()));
    }
    Ok((sizes, bytes))
}

/// Class names from a pickled meta file (the Python version), if it exists; it must name
/// `count` classes.
fn pickled_class_names(
    path: &Path,
    key: &str,
    count: usize,
) -> Result<Option<Vec<String>>, DataError> {
    if !path.is_file() {
        return Ok(None);
    }
    let corrupt = |reason: String| DataError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let meta = pickle::load(&read_file(path)?).map_err(|e| corrupt(e.to_string()))?;
    let names: Vec<String> = match meta.get(key) {
        Some(Value::List(names)) => names
            .iter()
            .map(Value::text)
            .collect::<Option<_>>()
            .ok_or_else(|| corrupt(format!("`{key}` holds a name that is not text")))?,
        _ => return Err(corrupt(format!("no list `{key}` of class names"))),
    };
    if names.len() != count {
        return Err(corrupt(format!(
            "`{key}` names {} classes, expected {count}",
            names.len()
        )));
    }
    Ok(Some(names))
}
