//! Data no run could finish correctly on is refused when it is loaded, before anything is
//! trained or written; test labels follow the training data's class names.

mod common;

use supcon_train::dataset::DatasetSpec;

fn load(spec: &str) -> Result<supcon_data::Splits, String> {
    DatasetSpec::parse(spec)
        .and_then(|s| s.load(0.25, 0, 8))
        .map_err(|e| e.to_string())
}

#[test]
fn test_labels_follow_the_training_class_names() {
    let dir = tempfile::tempdir().unwrap();
    common::write_png_classes(&dir.path().join("train"), &["ant", "bee"], 8);
    common::write_png_classes(&dir.path().join("test"), &["bee"], 3);
    let splits = load(&format!("folder:{}", dir.path().display())).unwrap();
    assert_eq!(splits.test.classes(), ["ant", "bee"]);
    assert_eq!(
        splits.test.labels(),
        [1, 1, 1],
        "bee is class 1 in training"
    );
}

#[test]
fn a_test_class_unknown_to_training_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    common::write_png_classes(&dir.path().join("train"), &["ant", "bee"], 8);
    common::write_png_classes(&dir.path().join("test"), &["bee", "cat"], 3);
    let error = load(&format!("folder:{}", dir.path().display())).unwrap_err();
    assert!(
        error.contains("3 images of class `cat`, which the training data does not have"),
        "{error}"
    );
}

/// IDX class names are the label numbers up to the largest: a test file whose largest label is
/// 12 names classes 0..=12. Only a class that test images carry must exist in training, and the
/// error names that one (label 12), not the first number training lacks (10).
#[test]
fn only_test_classes_with_images_must_exist_in_training() {
    let dir = tempfile::tempdir().unwrap();
    common::write_split(dir.path(), "train", 64, 1);
    let pixels = vec![0u8; 3 * common::SIDE * common::SIDE];
    common::write_idx(dir.path(), "test", &pixels, &[0, 1, 12], common::SIDE);
    let error = load(&format!("idx:{}", dir.path().display())).unwrap_err();
    assert!(
        error.contains("1 image of class `12`, which the training data does not have"),
        "{error}"
    );
}

#[test]
fn training_classes_without_images_are_noted() {
    let dir = tempfile::tempdir().unwrap();
    // Labels 0..4 and a few 9s (corrupt bytes, say): classes 5..=8 have no image.
    let labels: Vec<u8> = (0..40)
        .map(|i| if i % 10 == 7 { 9 } else { i % 5 })
        .collect();
    let pixels = vec![0u8; labels.len() * common::SIDE * common::SIDE];
    common::write_idx(dir.path(), "train", &pixels, &labels, common::SIDE);
    common::write_idx(
        dir.path(),
        "test",
        &pixels[..4 * common::SIDE * common::SIDE],
        &[0, 1, 2, 3],
        common::SIDE,
    );
    let splits = load(&format!("idx:{}", dir.path().display())).unwrap();
    let note = supcon_train::dataset::empty_classes_note(&splits.train).expect("a note");
    assert!(
        note.contains("4 of the 10 classes have no training images (5, 6, 7, 8)"),
        "{note}"
    );

    let dir = tempfile::tempdir().unwrap();
    common::write_split(dir.path(), "train", 64, 1);
    common::write_split(dir.path(), "test", 8, 2);
    let splits = load(&format!("idx:{}", dir.path().display())).unwrap();
    assert_eq!(
        supcon_train::dataset::empty_classes_note(&splits.train),
        None
    );
}

#[test]
fn a_train_folder_without_a_test_folder_is_named() {
    let dir = tempfile::tempdir().unwrap();
    common::write_png_classes(&dir.path().join("train"), &["ant", "bee"], 8);
    let error = load(&format!("folder:{}", dir.path().display())).unwrap_err();
    assert!(
        error.contains("has a train/ folder but no test/ (or val/) folder"),
        "{error}"
    );
}

/// `train/` and `val/` (ImageNet's layout): `val/` is the test set, and the run says so; a
/// `test/` folder beside it wins.
#[test]
fn a_val_folder_is_the_test_set_when_there_is_no_test_folder() {
    let dir = tempfile::tempdir().unwrap();
    common::write_png_classes(&dir.path().join("train"), &["ant", "bee"], 8);
    common::write_png_classes(&dir.path().join("val"), &["ant", "bee"], 3);
    let spec = DatasetSpec::parse(&format!("folder:{}", dir.path().display())).unwrap();
    let splits = spec.load(0.25, 0, 8).unwrap();
    assert_eq!(splits.test.len(), 6);
    let note = spec.test_note(6).unwrap().unwrap();
    assert!(note.ends_with("val (there is no test/ folder)"), "{note}");
    assert!(!spec.holds_out_test().unwrap());

    common::write_png_classes(&dir.path().join("test"), &["ant", "bee"], 2);
    assert_eq!(spec.load(0.25, 0, 8).unwrap().test.len(), 4);
    assert_eq!(spec.test_note(4).unwrap(), None);

    let lone = tempfile::tempdir().unwrap();
    common::write_png_classes(&lone.path().join("val"), &["ant", "bee"], 3);
    let error = load(&format!("folder:{}", lone.path().display())).unwrap_err();
    assert!(
        error.contains("has a val/ folder but no train/ folder"),
        "{error}"
    );
}

#[test]
fn an_empty_test_split_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    common::write_split(dir.path(), "train", 64, 1);
    common::write_split(dir.path(), "test", 0, 2);
    let error = load(&format!("idx:{}", dir.path().display())).unwrap_err();
    assert!(error.contains("the test split is empty"), "{error}");
}

#[test]
fn a_single_class_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    common::write_png_classes(dir.path(), &["only"], 12);
    let error = load(&format!("folder:{}", dir.path().display())).unwrap_err();
    assert!(error.contains("at least two"), "{error}");
}

#[test]
fn test_images_of_another_size_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    common::write_split(dir.path(), "train", 64, 1);
    // A test file of 10x10 images.
    let mut images = vec![0, 0, 8, 3];
    for d in [4u32, 10, 10] {
        images.extend_from_slice(&d.to_be_bytes());
    }
    images.extend_from_slice(&[0u8; 400]);
    std::fs::write(dir.path().join("test-images-idx3-ubyte"), images).unwrap();
    let mut labels = vec![0, 0, 8, 1, 0, 0, 0, 4];
    labels.extend_from_slice(&[0, 1, 2, 3]);
    std::fs::write(dir.path().join("test-labels-idx1-ubyte"), labels).unwrap();
    let error = load(&format!("idx:{}", dir.path().display())).unwrap_err();
    assert!(error.contains("the test images are [1, 10, 10]"), "{error}");
}

#[test]
fn an_unknown_dataset_kind_is_named() {
    let error = load("foo:/tmp").unwrap_err();
    assert!(error.contains("unknown dataset kind `foo`"), "{error}");
}

/// An IDX folder with one set of files under its own name (`all-*`, the layout of
/// `assets/mnist-10k`): a sixth of each class is the test set, the same images whatever the
/// run's seed, and the rest is split into train and validation by the seed.
#[test]
fn a_single_idx_set_holds_out_its_test_set() {
    let dir = tempfile::tempdir().unwrap();
    common::write_split(dir.path(), "all", 96, 1);
    let spec = DatasetSpec::parse(&format!("idx:{}", dir.path().display())).unwrap();
    assert!(spec.holds_out_test().unwrap());
    let first = spec.load(0.25, 0, 8).unwrap();
    let other_seed = spec.load(0.25, 5, 8).unwrap();
    assert_eq!(
        first.test, other_seed.test,
        "the test set does not follow the seed"
    );
    assert_ne!(first.train, other_seed.train, "train/validation do");
    let all = supcon_data::idx::load_set(dir.path(), "all").unwrap();
    let count = |labels: &[u32], class: u32| labels.iter().filter(|&&l| l == class).count();
    for class in 0..all.num_classes() as u32 {
        let total = count(all.labels(), class);
        let test = count(first.test.labels(), class);
        assert_eq!(test, (total as f64 / 6.0).round() as usize, "class {class}");
        let rest = count(first.train.labels(), class) + count(first.validation.labels(), class);
        assert_eq!(test + rest, total);
    }

    // MNIST's own folder has a test set of its own.
    let mnist = tempfile::tempdir().unwrap();
    common::write_split(mnist.path(), "train", 32, 1);
    common::write_split(mnist.path(), "t10k", 8, 2);
    let spec = DatasetSpec::parse(&format!("idx:{}", mnist.path().display())).unwrap();
    assert!(!spec.holds_out_test().unwrap());
    assert_eq!(spec.load(0.25, 0, 8).unwrap().test.len(), 8);
}

#[test]
fn idx_folders_without_a_usable_layout_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let error = load(&format!("idx:{}", dir.path().display())).unwrap_err();
    assert!(
        error.contains("no IDX files: expected train-images"),
        "{error}"
    );

    common::write_split(dir.path(), "train", 32, 1);
    let error = load(&format!("idx:{}", dir.path().display())).unwrap_err();
    assert!(
        error.contains("has train- IDX files but no test- (or t10k-) files"),
        "{error}"
    );

    let several = tempfile::tempdir().unwrap();
    common::write_split(several.path(), "digits", 32, 1);
    common::write_split(several.path(), "letters", 32, 2);
    let error = load(&format!("idx:{}", several.path().display())).unwrap_err();
    assert!(
        error.contains("holds 2 sets of IDX files (digits, letters)"),
        "{error}"
    );
}

/// A folder of several datasets named as EMNIST names its files
/// (`emnist-letters-train-images-idx3-ubyte.gz`, ...): `idx:DIR/NAME` chooses one.
#[test]
fn one_dataset_of_a_folder_of_several_is_chosen_by_name() {
    let dir = tempfile::tempdir().unwrap();
    common::write_split(dir.path(), "emnist-letters-train", 32, 1);
    common::write_split(dir.path(), "emnist-letters-test", 8, 2);
    common::write_split(dir.path(), "emnist-digits-train", 24, 3);
    common::write_split(dir.path(), "emnist-digits-test", 4, 4);
    common::write_split(dir.path(), "emnist-mnist-train", 24, 5);
    let root = dir.path().display();
    let error = load(&format!("idx:{root}")).unwrap_err();
    assert!(
        error.contains(&format!(
            "holds 5 sets of IDX files (emnist-digits-test, emnist-digits-train, \
             emnist-letters-test, emnist-letters-train, emnist-mnist-train): choose one dataset \
             as idx:{root}/NAME, NAME one of emnist-digits, emnist-letters"
        )),
        "{error}"
    );
    let letters = load(&format!("idx:{root}/emnist-letters")).unwrap();
    assert_eq!(
        (
            letters.train.len() + letters.validation.len(),
            letters.test.len()
        ),
        (32, 8)
    );
    let digits = load(&format!("idx:{root}/emnist-digits")).unwrap();
    assert_eq!(digits.test.len(), 4);
    let error = load(&format!("idx:{root}/emnist-mnist")).unwrap_err();
    assert!(
        error.contains("has emnist-mnist-train- IDX files but no emnist-mnist-test- (or emnist-mnist-t10k-) files"),
        "{error}"
    );
    let error = load(&format!("idx:{root}/kmnist")).unwrap_err();
    assert!(error.ends_with("kmnist: no such folder"), "{error}");
}

/// A channel with one value in every training pixel (an unused alpha or colour channel, say)
/// is named: its standard deviation is floored, not 0, and the user is told how to set it.
#[test]
fn a_constant_channel_is_noted_and_its_deviation_floored() {
    use supcon_train::dataset::{CONSTANT_CHANNEL_STD, ChannelStatistics};
    // Two images of two channels, 2x2: channel 0 varies, channel 1 is 9 everywhere.
    let pixels = vec![0, 10, 20, 30, 9, 9, 9, 9, 40, 50, 60, 70, 9, 9, 9, 9];
    let data = supcon_data::ImageDataset::new(
        pixels,
        vec![0, 1],
        [2, 2, 2],
        vec!["a".into(), "b".into()],
        std::path::Path::new("test"),
    )
    .unwrap();
    let measured = ChannelStatistics::measure(&data);
    let (mean, std) = (&measured.mean, &measured.std);
    assert!((mean[1] - 9.0 / 255.0).abs() < 1e-12, "{mean:?}");
    assert_eq!(std[1], CONSTANT_CHANNEL_STD);
    // 0, 10, ..., 70: population deviation sqrt(525) / 255.
    assert!((std[0] - 525f64.sqrt() / 255.0).abs() < 1e-12, "{std:?}");
    assert_eq!(measured.constant, [false, true]);
    let note = measured.constant_channels_note().unwrap();
    assert!(note.contains("channel 1 is 9"), "{note}");
    assert!(!note.contains("channel 0"), "{note}");
    assert!(note.contains("--mean") && note.contains("--std"), "{note}");

    // One pixel off in a million is variation, not a constant channel.
    let mut pixels = vec![9u8; 1 << 20];
    pixels[12_345] = 10;
    let data = supcon_data::ImageDataset::new(
        pixels,
        vec![0; 1 << 10],
        [1, 32, 32],
        vec!["a".into()],
        std::path::Path::new("test"),
    )
    .unwrap();
    let measured = ChannelStatistics::measure(&data);
    assert_eq!(measured.constant, [false]);
    assert_eq!(measured.constant_channels_note(), None);
}
