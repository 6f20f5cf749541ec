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
        error.contains("class `cat` that the training data does not have"),
        "{error}"
    );
}

#[test]
fn a_train_folder_without_a_test_folder_is_named() {
    let dir = tempfile::tempdir().unwrap();
    common::write_png_classes(&dir.path().join("train"), &["ant", "bee"], 8);
    let error = load(&format!("folder:{}", dir.path().display())).unwrap_err();
    assert!(
        error.contains("has a train/ folder but no test/ folder"),
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
