//! Which data a run uses: parsing `--dataset` and loading train / validation / test splits.

use std::path::{Path, PathBuf};

use supcon_data::{ImageDataset, Splits, cifar, folder, idx, stratified_split};

use crate::TrainError;

impl std::str::FromStr for DatasetSpec {
    type Err = TrainError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        DatasetSpec::parse(spec)
    }
}

impl TryFrom<String> for DatasetSpec {
    type Error = TrainError;

    fn try_from(spec: String) -> Result<Self, Self::Error> {
        DatasetSpec::parse(&spec)
    }
}

impl From<DatasetSpec> for String {
    fn from(spec: DatasetSpec) -> String {
        spec.to_string()
    }
}

impl std::fmt::Display for DatasetSpec {
    /// The `--dataset` text: `mnist`, `idx:DIR`, `cifar10:DIR`, `cifar100:DIR`, `folder:DIR`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, dir) = match self {
            DatasetSpec::EmbeddedMnist => return f.write_str("mnist"),
            DatasetSpec::Idx(dir) => ("idx", dir),
            DatasetSpec::Cifar10(dir) => ("cifar10", dir),
            DatasetSpec::Cifar100(dir) => ("cifar100", dir),
            DatasetSpec::Folder(dir) => ("folder", dir),
        };
        write!(f, "{kind}:{}", dir.display())
    }
}

/// A parsed `--dataset` value; configurations hold it as that text (`idx:DIR`, ...).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DatasetSpec {
    /// The 10,000 MNIST digits compiled into the binary (`mnist`).
    EmbeddedMnist,
    /// A folder of IDX files (`idx:DIR`): MNIST's layout (`train-*` and `test-*` or `t10k-*`),
    /// or a single set under any name (`all-images-idx3-ubyte.gz` and
    /// `all-labels-idx1-ubyte.gz`), a sixth of each class then kept for testing; or one
    /// dataset of a folder of several (`idx:DIR/NAME`: `NAME-train-*` and `NAME-test-*`, as
    /// EMNIST names its files).
    Idx(PathBuf),
    /// CIFAR-10, its binary or its Python version (`cifar10:DIR`).
    Cifar10(PathBuf),
    /// CIFAR-100, its binary or its Python version, fine labels (`cifar100:DIR`).
    Cifar100(PathBuf),
    /// Class sub-folders of images (`folder:DIR`): `DIR/train` and `DIR/test` (or else
    /// `DIR/val`), or the class folders directly, a sixth of each class then kept for testing
    /// ([`DatasetSpec::holds_out_test`]).
    Folder(PathBuf),
}

impl DatasetSpec {
    /// Parses `mnist`, `idx:DIR`, `cifar10:DIR`, `cifar100:DIR` or `folder:DIR`.
    pub fn parse(spec: &str) -> Result<DatasetSpec, TrainError> {
        if spec == "mnist" {
            return Ok(DatasetSpec::EmbeddedMnist);
        }
        let unknown = || {
            TrainError::Config(format!(
                "unknown dataset `{spec}`: use mnist (embedded), idx:DIR, cifar10:DIR, \
                 cifar100:DIR or folder:DIR"
            ))
        };
        let (kind, dir) = spec.split_once(':').ok_or_else(unknown)?;
        if !matches!(kind, "idx" | "cifar10" | "cifar100" | "folder") {
            return Err(TrainError::Config(format!(
                "unknown dataset kind `{kind}` in `{spec}`: use mnist (embedded), idx:DIR, \
                 cifar10:DIR, cifar100:DIR or folder:DIR"
            )));
        }
        if dir.is_empty() {
            return Err(TrainError::Config(format!(
                "dataset `{spec}` names no folder"
            )));
        }
        let dir = PathBuf::from(dir);
        Ok(match kind {
            "idx" => DatasetSpec::Idx(dir),
            "cifar10" => DatasetSpec::Cifar10(dir),
            "cifar100" => DatasetSpec::Cifar100(dir),
            _ => DatasetSpec::Folder(dir),
        })
    }

    /// The folder the data is read from (`None` for the embedded MNIST).
    pub fn dir(&self) -> Option<&Path> {
        match self {
            DatasetSpec::EmbeddedMnist => None,
            DatasetSpec::Idx(dir)
            | DatasetSpec::Cifar10(dir)
            | DatasetSpec::Cifar100(dir)
            | DatasetSpec::Folder(dir) => Some(dir),
        }
    }

    /// The same dataset read from `dir` instead.
    pub fn with_dir(&self, dir: PathBuf) -> DatasetSpec {
        match self {
            DatasetSpec::EmbeddedMnist => DatasetSpec::EmbeddedMnist,
            DatasetSpec::Idx(_) => DatasetSpec::Idx(dir),
            DatasetSpec::Cifar10(_) => DatasetSpec::Cifar10(dir),
            DatasetSpec::Cifar100(_) => DatasetSpec::Cifar100(dir),
            DatasetSpec::Folder(_) => DatasetSpec::Folder(dir),
        }
    }

    /// The same dataset with its folder, if relative, made absolute (from the current folder):
    /// how a run's `config.toml` names it, so that it reads the same from anywhere.
    pub fn absolute(&self) -> Result<DatasetSpec, TrainError> {
        match self.dir() {
            Some(dir) if dir.is_relative() => {
                let dir = std::path::absolute(dir).map_err(|e| TrainError::io(dir, e))?;
                Ok(self.with_dir(dir))
            }
            _ => Ok(self.clone()),
        }
    }

    /// Whether the dataset has no test set of its own, so that the test set is held out of its
    /// images ([`HELD_OUT_TEST_FRACTION`] of each class, chosen by [`HELD_OUT_TEST_SEED`]):
    /// `folder:DIR` with class folders only, `idx:DIR` with a single set of files.
    pub fn holds_out_test(&self) -> Result<bool, TrainError> {
        match self {
            DatasetSpec::Idx(dir) => Ok(matches!(idx_layout(dir)?, IdxLayout::Single { .. })),
            DatasetSpec::Folder(dir) => {
                Ok(matches!(folder_layout(dir)?, FolderLayout::ClassesOnly))
            }
            _ => Ok(false),
        }
    }

    /// Where the test images come from when that is not the dataset's own `test` files, for
    /// the user: `test_images` held out, or a `folder:DIR`'s `val/` folder.
    pub fn test_note(&self, test_images: usize) -> Result<Option<String>, TrainError> {
        let held_out = match self {
            DatasetSpec::Folder(dir) => match folder_layout(dir)? {
                FolderLayout::Split(test) if !test.ends_with("test") => {
                    return Ok(Some(format!(
                        "{self}: the test set is {} (there is no test/ folder)",
                        test.display()
                    )));
                }
                FolderLayout::Split(_) => false,
                FolderLayout::ClassesOnly => true,
            },
            _ => self.holds_out_test()?,
        };
        Ok(held_out.then(|| {
            format!(
                "{self} has no test set of its own: {test_images} of its images (a sixth of \
                 each class, the same for every run) are held out as the test set"
            )
        }))
    }

    /// Loads the splits: the dataset's own test set, and its training set split (stratified,
    /// `val_fraction` of each class, chosen by `seed`) into train and validation. The
    /// embedded MNIST's split is chosen by its own fixed seed (`supcon_data::embedded_mnist_split`),
    /// the same for every run.
    ///
    /// Refused, as no run on them could finish correctly: an empty split, fewer than two
    /// classes, test images of another shape than the training images, and test classes that
    /// training does not have. Test labels follow the class names of the training data.
    pub fn load(&self, val_fraction: f64, seed: u64, size: usize) -> Result<Splits, TrainError> {
        let mut splits = self.load_unchecked(val_fraction, seed, size)?;
        splits.test = relabel_by_class_name(&splits.test, splits.train.classes(), &self.source())?;
        check_splits(&splits)?;
        Ok(splits)
    }

    /// The folder (or name) the data comes from, for messages.
    fn source(&self) -> PathBuf {
        self.dir()
            .map_or_else(|| PathBuf::from("mnist"), Path::to_path_buf)
    }

    fn load_unchecked(
        &self,
        val_fraction: f64,
        seed: u64,
        size: usize,
    ) -> Result<Splits, TrainError> {
        let (train, test) = match self {
            DatasetSpec::EmbeddedMnist => return embedded(val_fraction),
            DatasetSpec::Idx(dir) => match idx_layout(dir)? {
                IdxLayout::TrainTest { dir, train, test } => {
                    (idx::load_set(&dir, &train)?, idx::load_set(&dir, &test)?)
                }
                IdxLayout::Single { dir, set } => hold_out_test(idx::load_set(&dir, &set)?)?,
            },
            DatasetSpec::Cifar10(dir) => {
                check_dir(dir)?;
                (
                    cifar::load_cifar10(dir, true)?,
                    cifar::load_cifar10(dir, false)?,
                )
            }
            DatasetSpec::Cifar100(dir) => {
                check_dir(dir)?;
                let fine = cifar::Cifar100Labels::Fine;
                (
                    cifar::load_cifar100(dir, true, fine)?,
                    cifar::load_cifar100(dir, false, fine)?,
                )
            }
            DatasetSpec::Folder(dir) => match folder_layout(dir)? {
                FolderLayout::Split(test) => (
                    folder::load_image_folder(&dir.join("train"), size, 3)?,
                    folder::load_image_folder(&test, size, 3)?,
                ),
                FolderLayout::ClassesOnly => {
                    hold_out_test(folder::load_image_folder(dir, size, 3)?)?
                }
            },
        };
        let parts = stratified_split(train.labels(), val_fraction, seed)?;
        if parts.train.is_empty() || parts.validation.is_empty() {
            return Err(TrainError::Config(format!(
                "{} training images cannot be split into train and validation with \
                 val_fraction {val_fraction}",
                train.len()
            )));
        }
        Ok(Splits {
            train: train.subset(&parts.train)?,
            validation: train.subset(&parts.validation)?,
            test,
        })
    }
}

/// The seed that chooses the test images held out of a dataset without a test set of its own:
/// fixed, so that every run on the same data is tested on the same images.
pub const HELD_OUT_TEST_SEED: u64 = 0x7e57;

/// The fraction of each class held out as the test set of a dataset without one.
pub const HELD_OUT_TEST_FRACTION: f64 = 1.0 / 6.0;

/// How an `idx:DIR` holds its images: the folder the files are in and the prefixes of its
/// sets ([`idx::sets_in`]).
enum IdxLayout {
    /// A training and a test set: `train` and `test` (or `t10k`) as MNIST ships, or
    /// `NAME-train` and `NAME-test` for `idx:DIR/NAME` (EMNIST's `emnist-letters-train-...`).
    TrainTest {
        dir: PathBuf,
        train: String,
        test: String,
    },
    /// One set of files (`all-images-idx3-ubyte.gz`, ...), no test set.
    Single { dir: PathBuf, set: String },
}

fn idx_layout(dir: &Path) -> Result<IdxLayout, TrainError> {
    if !dir.is_dir() {
        // `idx:DIR/NAME`: the sets NAME-train and NAME-test of DIR.
        if let (Some(parent), Some(name)) = (dir.parent(), dir.file_name().and_then(|n| n.to_str()))
            && parent.is_dir()
        {
            let sets = idx::sets_in(parent)?;
            let prefix = format!("{name}-");
            if sets.iter().any(|s| s.starts_with(&prefix)) {
                return train_and_test(parent, &sets, &prefix);
            }
        }
        check_dir(dir)?;
    }
    let sets = idx::sets_in(dir)?;
    if sets
        .iter()
        .any(|s| ["train", "test", "t10k"].contains(&s.as_str()))
    {
        return train_and_test(dir, &sets, "");
    }
    match sets.as_slice() {
        [only] => Ok(IdxLayout::Single {
            dir: dir.to_path_buf(),
            set: only.clone(),
        }),
        [] => Err(TrainError::run(
            dir,
            "no IDX files: expected train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz] \
             with test- (or t10k-) files likewise, or a single set \
             <name>-images-idx3-ubyte[.gz] and <name>-labels-idx1-ubyte[.gz]",
        )),
        several => {
            // Datasets whose files are NAME-train-... and NAME-test-..., as EMNIST's.
            let names: Vec<&str> = several
                .iter()
                .filter_map(|s| s.strip_suffix("-train"))
                .filter(|n| {
                    ["test", "t10k"]
                        .iter()
                        .any(|t| several.contains(&format!("{n}-{t}")))
                })
                .collect();
            let what = if names.is_empty() {
                "name the training files train-... and the test files test-..., or keep a \
                 single set"
                    .to_string()
            } else {
                format!(
                    "choose one dataset as idx:{}/NAME, NAME one of {}",
                    dir.display(),
                    names.join(", ")
                )
            };
            Err(TrainError::run(
                dir,
                format!(
                    "holds {} sets of IDX files ({}): {what}",
                    several.len(),
                    several.join(", ")
                ),
            ))
        }
    }
}

/// The sets `{prefix}train` and `{prefix}test` (or `{prefix}t10k`) of `dir`, whose sets are
/// `sets`; an error naming the one that is missing.
fn train_and_test(dir: &Path, sets: &[String], prefix: &str) -> Result<IdxLayout, TrainError> {
    let has = |set: &str| sets.iter().any(|s| *s == format!("{prefix}{set}"));
    let test = ["test", "t10k"].into_iter().find(|t| has(t));
    match (has("train"), test) {
        (true, Some(test)) => Ok(IdxLayout::TrainTest {
            dir: dir.to_path_buf(),
            train: format!("{prefix}train"),
            test: format!("{prefix}{test}"),
        }),
        (train, _) => {
            let (has, lacks) = if train {
                (
                    format!("{prefix}train-"),
                    format!("{prefix}test- (or {prefix}t10k-)"),
                )
            } else {
                (
                    format!("{prefix}test- (or {prefix}t10k-)"),
                    format!("{prefix}train-"),
                )
            };
            Err(TrainError::run(
                dir,
                format!(
                    "has {has} IDX files but no {lacks} files: give both, or a single set of \
                     files (a sixth of each class is then kept for testing)"
                ),
            ))
        }
    }
}

/// How a `folder:DIR` holds its images.
enum FolderLayout {
    /// `train/` and this test folder (`test/`, or else `val/`), each with class folders.
    Split(PathBuf),
    /// The class folders themselves, no test set.
    ClassesOnly,
}

/// The folders a `folder:DIR` may hold its test images in, in order of preference.
const TEST_FOLDERS: [&str; 2] = ["test", "val"];

fn folder_layout(dir: &Path) -> Result<FolderLayout, TrainError> {
    check_dir(dir)?;
    let train = dir.join("train").is_dir();
    let test = TEST_FOLDERS
        .iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_dir());
    match (train, test) {
        (true, Some(test)) => Ok(FolderLayout::Split(test)),
        (false, None) => Ok(FolderLayout::ClassesOnly),
        (true, None) => Err(TrainError::run(
            dir,
            "has a train/ folder but no test/ (or val/) folder: give both, or only class \
             folders (a sixth of each class is then kept for testing)",
        )),
        (false, Some(test)) => Err(TrainError::run(
            dir,
            format!(
                "has a {}/ folder but no train/ folder: give both, or only class folders (a \
                 sixth of each class is then kept for testing)",
                test.file_name()
                    .map_or_else(Default::default, |n| n.to_string_lossy())
            ),
        )),
    }
}

/// `all` split into training images and the held-out test images.
fn hold_out_test(all: ImageDataset) -> Result<(ImageDataset, ImageDataset), TrainError> {
    let parts = stratified_split(all.labels(), HELD_OUT_TEST_FRACTION, HELD_OUT_TEST_SEED)?;
    Ok((all.subset(&parts.train)?, all.subset(&parts.validation)?))
}

/// `data` with its labels renumbered to `classes` (the training data's) by class name; a class
/// that `classes` lacks is an error naming it when `data` has images of it, and dropped when it
/// has none (IDX class names run up to the largest label, whether every number is used or not).
fn relabel_by_class_name(
    data: &ImageDataset,
    classes: &[String],
    source: &Path,
) -> Result<ImageDataset, TrainError> {
    if data.classes() == classes {
        return Ok(data.clone());
    }
    let counts = data.class_counts();
    let mut map = Vec::with_capacity(data.num_classes());
    for (name, &count) in data.classes().iter().zip(&counts) {
        match classes.iter().position(|c| c == name) {
            Some(index) => map.push(index as u32),
            // Never looked up: no label refers to it.
            None if count == 0 => map.push(u32::MAX),
            None => {
                return Err(TrainError::run(
                    source,
                    format!(
                        "the test data has {count} image{} of class `{name}`, which the \
                         training data does not have (training classes: {})",
                        if count == 1 { "" } else { "s" },
                        list_names(classes, 20)
                    ),
                ));
            }
        }
    }
    let labels = data.labels().iter().map(|&l| map[l as usize]).collect();
    Ok(ImageDataset::new(
        data.pixels().to_vec(),
        labels,
        data.image_shape(),
        classes.to_vec(),
        source,
    )?)
}

/// A line for the classes of `train` that have no image in it, or `None` when every class has
/// some. Such classes are legitimate (EMNIST letters are numbered from 1, so class 0 has none)
/// but are also what a corrupt label byte looks like: class names inferred from label numbers
/// run up to the largest label, so one label 200 among digits gives 201 classes.
pub fn empty_classes_note(train: &ImageDataset) -> Option<String> {
    let empty: Vec<String> = train
        .class_counts()
        .iter()
        .zip(train.classes())
        .filter(|(count, _)| **count == 0)
        .map(|(_, name)| name.clone())
        .collect();
    if empty.is_empty() {
        return None;
    }
    Some(format!(
        "note: {} of the {} classes have no training images ({}); their linear-evaluation \
         outputs are never trained. If the labels should be numbered without gaps, the label \
         file may be corrupt; class names (a classes.txt beside IDX files) make a label out of \
         range an error",
        empty.len(),
        train.num_classes(),
        list_names(&empty, 10)
    ))
}

/// `names` joined by commas, the first `most` of them and a count of the rest.
pub(crate) fn list_names(names: &[String], most: usize) -> String {
    if names.len() <= most {
        names.join(", ")
    } else {
        format!(
            "{}, ... and {} more",
            names[..most].join(", "),
            names.len() - most
        )
    }
}

/// Refuses splits no run could finish correctly on.
fn check_splits(splits: &Splits) -> Result<(), TrainError> {
    for (name, data) in [
        ("training", &splits.train),
        ("validation", &splits.validation),
        ("test", &splits.test),
    ] {
        if data.is_empty() {
            return Err(TrainError::Config(format!(
                "the {name} split is empty: a run needs training, validation and test images"
            )));
        }
    }
    if splits.train.num_classes() < 2 {
        return Err(TrainError::Config(format!(
            "the data has {} class: linear evaluation, kNN and the cross-entropy baseline need \
             at least two (for a label-free dataset, put the images in two or more folders)",
            splits.train.num_classes()
        )));
    }
    let (train, test) = (splits.train.image_shape(), splits.test.image_shape());
    if train != test {
        return Err(TrainError::Config(format!(
            "the test images are {test:?} (channels, height, width) but the training images \
             are {train:?}"
        )));
    }
    if splits.test.classes() != splits.train.classes() {
        return Err(TrainError::Config(format!(
            "the test data's classes ({}) are not the training data's ({})",
            list_names(splits.test.classes(), 20),
            list_names(splits.train.classes(), 20)
        )));
    }
    Ok(())
}

fn embedded(val_fraction: f64) -> Result<Splits, TrainError> {
    Ok(supcon_data::embedded_mnist_split(val_fraction)?)
}

fn check_dir(dir: &Path) -> Result<(), TrainError> {
    if dir.is_dir() {
        Ok(())
    } else {
        Err(TrainError::run(dir, "no such folder"))
    }
}

/// The standard deviation a channel that never varies gets (its own is 0): the floor that
/// keeps the normalisation finite.
pub const CONSTANT_CHANNEL_STD: f64 = 1e-6;

/// Per-channel statistics of a dataset's pixels, on the `[0, 1]` scale.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelStatistics {
    /// Mean of each channel.
    pub mean: Vec<f64>,
    /// Standard deviation of each channel (population), at least [`CONSTANT_CHANNEL_STD`].
    pub std: Vec<f64>,
    /// Whether each channel holds one value in every pixel of every image (decided exactly,
    /// on the integer sums).
    pub constant: Vec<bool>,
}

impl ChannelStatistics {
    /// Measures `data` in one pass over its pixels.
    pub fn measure(data: &ImageDataset) -> Self {
        let [channels, height, width] = data.image_shape();
        let plane = height * width;
        // Exact integer sums (255^2 times the pixel count fits a u64 for any dataset in memory).
        let mut sum = vec![0u64; channels];
        let mut sum_sq = vec![0u64; channels];
        for image in data.pixels().chunks_exact(channels * plane) {
            for (c, values) in image.chunks_exact(plane).enumerate() {
                for &v in values {
                    sum[c] += u64::from(v);
                    sum_sq[c] += u64::from(v) * u64::from(v);
                }
            }
        }
        let pixels = (data.len() * plane).max(1) as u64;
        // Every pixel equal: count * sum of squares = sum^2 (Cauchy-Schwarz's equality case).
        let constant: Vec<bool> = sum
            .iter()
            .zip(&sum_sq)
            .map(|(&s, &q)| u128::from(pixels) * u128::from(q) == u128::from(s) * u128::from(s))
            .collect();
        let count = pixels as f64;
        let mean: Vec<f64> = sum.iter().map(|&s| s as f64 / count / 255.0).collect();
        let std = sum_sq
            .iter()
            .zip(&mean)
            .map(|(&q, m)| {
                (q as f64 / count / 65025.0 - m * m)
                    .sqrt()
                    .max(CONSTANT_CHANNEL_STD)
            })
            .collect();
        ChannelStatistics {
            mean,
            std,
            constant,
        }
    }

    /// A note on the constant channels: normalising divides by [`CONSTANT_CHANNEL_STD`], so
    /// any other value (in the validation or test images) is scaled a million-fold. `None`
    /// when every channel varies.
    pub fn constant_channels_note(&self) -> Option<String> {
        let constant: Vec<String> = self
            .constant
            .iter()
            .zip(&self.mean)
            .enumerate()
            .filter(|(_, (constant, _))| **constant)
            .map(|(c, (_, mean))| format!("channel {c} is {:.0}", mean * 255.0))
            .collect();
        (!constant.is_empty()).then(|| {
            format!(
                "note: {} (of 255) in every training image: its standard deviation is 0, taken \
                 as {CONSTANT_CHANNEL_STD:e} (any other value is scaled a million-fold); give \
                 --mean and --std to set the normalisation",
                constant.join(", ")
            )
        })
    }
}
