//! Every reader on files the tests write, good and broken: each broken file gets an error that
//! names it and says what is wrong, never a panic.

use std::io::Write;
use std::path::Path;

use supcon_data::cifar::{Cifar100Labels, load_cifar10, load_cifar100};
use supcon_data::folder::load_image_folder;
use supcon_data::{DataError, idx};

/// A fresh empty folder, removed with what it holds when dropped.
fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("supcon-data-")
        .tempdir()
        .unwrap()
}

fn idx_images(count: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 8, 3];
    for v in [count, rows, cols] {
        bytes.extend(v.to_be_bytes());
    }
    bytes.extend_from_slice(pixels);
    bytes
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 8, 1];
    bytes.extend((labels.len() as u32).to_be_bytes());
    bytes.extend_from_slice(labels);
    bytes
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn idx_plain_and_gzipped_read_the_same() {
    let scratch_dir = scratch();
    let dir = scratch_dir.path();
    let pixels: Vec<u8> = (0..3 * 2 * 2).map(|v| v as u8 * 10).collect();
    write(
        &dir.join("train-images-idx3-ubyte"),
        &idx_images(3, 2, 2, &pixels),
    );
    write(
        &dir.join("train-labels-idx1-ubyte"),
        &idx_labels(&[2, 0, 1]),
    );
    write(
        &dir.join("t10k-images-idx3-ubyte.gz"),
        &gzip(&idx_images(3, 2, 2, &pixels)),
    );
    write(
        &dir.join("t10k-labels-idx1-ubyte.gz"),
        &gzip(&idx_labels(&[2, 0, 1])),
    );
    let plain = idx::load_dir(dir, true).unwrap();
    let zipped = idx::load_dir(dir, false).unwrap();
    assert_eq!(plain, zipped);
    assert_eq!(plain.len(), 3);
    assert_eq!(plain.image_shape(), [1, 2, 2]);
    assert_eq!(plain.labels(), &[2, 0, 1]);
    assert_eq!(plain.image(1).unwrap(), &[40, 50, 60, 70]);
    assert_eq!(plain.classes(), &["0", "1", "2"]);

    write(&dir.join("classes.txt"), b"zero\none\ntwo\nthree\n");
    let named = idx::load_dir(dir, true).unwrap();
    assert_eq!(named.num_classes(), 4);
    assert_eq!(named.classes()[3], "three");
}

/// A folder holding one set under its own name (the layout of `assets/mnist-10k`), and MNIST's
/// own folder: `sets_in` lists the prefixes, `load_set` reads one.
#[test]
fn idx_sets_are_listed_by_prefix_and_read_by_name() {
    let scratch_dir = scratch();
    let dir = scratch_dir.path();
    let pixels: Vec<u8> = (0..2 * 3).collect();
    write(
        &dir.join("all-images-idx3-ubyte.gz"),
        &gzip(&idx_images(2, 1, 3, &pixels)),
    );
    write(
        &dir.join("all-labels-idx1-ubyte.gz"),
        &gzip(&idx_labels(&[1, 0])),
    );
    write(&dir.join("README.md"), b"not a set");
    write(&dir.join("-images-idx3-ubyte"), b"no prefix, not a set");
    assert_eq!(idx::sets_in(dir).unwrap(), ["all"]);
    let all = idx::load_set(dir, "all").unwrap();
    assert_eq!((all.len(), all.image_shape()), (2, [1, 1, 3]));
    assert_eq!(all.labels(), &[1, 0]);
    assert_eq!(all.image(1).unwrap(), &[3, 4, 5]);

    // A set with one of its files is listed, and reading it names the missing file.
    write(
        &dir.join("t10k-images-idx3-ubyte"),
        &idx_images(2, 1, 3, &pixels),
    );
    write(&dir.join("train-labels-idx1-ubyte"), &idx_labels(&[0, 1]));
    assert_eq!(idx::sets_in(dir).unwrap(), ["all", "t10k", "train"]);
    let error = idx::load_set(dir, "t10k").unwrap_err().to_string();
    assert!(
        error.ends_with("t10k-labels-idx1-ubyte.gz: no such file or folder"),
        "{error}"
    );
    let error = idx::load_dir(dir, true).unwrap_err().to_string();
    assert!(
        error.ends_with("train-images-idx3-ubyte.gz: no such file or folder"),
        "{error}"
    );
    assert!(idx::sets_in(&dir.join("missing")).is_err());
}

#[test]
fn idx_errors_name_the_file_and_the_problem() {
    let scratch_dir = scratch();
    let dir = scratch_dir.path();
    let images = dir.join("images");
    let labels = dir.join("labels");
    let good_images = idx_images(2, 2, 2, &[0; 8]);
    write(&labels, &idx_labels(&[0, 1]));

    // Missing file.
    let err = idx::load_files(&dir.join("nope"), &labels, None).unwrap_err();
    assert!(matches!(err, DataError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("nope"));

    // Wrong magic number (labels file given as images).
    let err = idx::load_files(&labels, &labels, None).unwrap_err();
    assert!(matches!(err, DataError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("wrong magic number 2049"), "{err}");

    // Truncated pixels and truncated header.
    write(&images, &good_images[..good_images.len() - 3]);
    let err = idx::load_files(&images, &labels, None).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::Truncated {
                expected: 24,
                found: 21,
                ..
            }
        ),
        "{err}"
    );
    write(&images, &good_images[..6]);
    assert!(matches!(
        idx::load_files(&images, &labels, None),
        Err(DataError::Truncated { .. })
    ));

    // A header announcing more data than memory could hold.
    write(&images, &idx_images(u32::MAX, u32::MAX, u32::MAX, &[0; 8]));
    assert!(matches!(
        idx::load_files(&images, &labels, None),
        Err(DataError::Truncated { .. })
    ));

    // Trailing garbage.
    let mut long = good_images.clone();
    long.push(7);
    write(&images, &long);
    assert!(matches!(
        idx::load_files(&images, &labels, None),
        Err(DataError::Corrupt { .. })
    ));

    // Image / label count mismatch.
    write(&images, &good_images);
    write(&labels, &idx_labels(&[0, 1, 1]));
    let err = idx::load_files(&images, &labels, None).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::CountMismatch {
                images: 2,
                labels: 3,
                ..
            }
        ),
        "{err}"
    );

    // Label out of range for the named classes.
    write(&labels, &idx_labels(&[0, 5]));
    let err = idx::load_files(&images, &labels, Some(vec!["a".into(), "b".into()])).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::LabelOutOfRange {
                index: 1,
                label: 5,
                classes: 2,
                ..
            }
        ),
        "{err}"
    );

    // A gzip stream cut short.
    let zipped = gzip(&good_images);
    write(&images, &zipped[..zipped.len() / 2]);
    write(&labels, &idx_labels(&[0, 1]));
    let err = idx::load_files(&images, &labels, None).unwrap_err();
    assert!(matches!(err, DataError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("gzip"), "{err}");

    // A folder without the files.
    assert!(matches!(
        idx::load_dir(scratch().path(), true),
        Err(DataError::NotFound { .. })
    ));
    assert!(matches!(
        idx::load_dir(&dir.join("missing"), true),
        Err(DataError::NotFound { .. })
    ));
}

fn cifar_record(label_bytes: &[u8], fill: u8) -> Vec<u8> {
    let mut record = label_bytes.to_vec();
    record.extend((0..3072).map(|i| fill.wrapping_add((i / 1024) as u8)));
    record
}

#[test]
fn cifar10_reads_five_training_batches_and_the_test_batch() {
    let scratch_dir = scratch();
    let root = scratch_dir.path();
    let dir = root.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 1..=5u8 {
        let bytes: Vec<u8> = [cifar_record(&[i], i * 10), cifar_record(&[9], 0)].concat();
        write(&dir.join(format!("data_batch_{i}.bin")), &bytes);
    }
    write(&dir.join("test_batch.bin"), &cifar_record(&[3], 100));
    let train = load_cifar10(dir.parent().unwrap(), true).unwrap();
    assert_eq!(train.len(), 10);
    assert_eq!(train.image_shape(), [3, 32, 32]);
    assert_eq!(&train.labels()[..4], &[1, 9, 2, 9]);
    assert_eq!(train.classes()[9], "truck");
    // Planar channels: red plane, then green (+1), then blue (+2).
    let image = train.image(2).unwrap();
    assert_eq!((image[0], image[1024], image[2048]), (20, 21, 22));
    let test = load_cifar10(&dir, false).unwrap();
    assert_eq!(test.labels(), &[3]);

    write(&dir.join("test_batch.bin"), &cifar_record(&[10], 0));
    let err = load_cifar10(&dir, false).unwrap_err();
    assert!(
        matches!(err, DataError::LabelOutOfRange { label: 10, .. }),
        "{err}"
    );
    write(&dir.join("test_batch.bin"), &cifar_record(&[1], 0)[..3000]);
    let err = load_cifar10(&dir, false).unwrap_err();
    assert!(matches!(err, DataError::Truncated { .. }), "{err}");
    assert!(err.to_string().contains("test_batch.bin"));
    std::fs::remove_file(dir.join("data_batch_4.bin")).unwrap();
    let err = load_cifar10(&dir, true).unwrap_err();
    assert!(err.to_string().contains("data_batch_4.bin"), "{err}");
}

#[test]
fn cifar100_fine_by_default_coarse_on_request() {
    let scratch_dir = scratch();
    let dir = scratch_dir.path();
    let bytes: Vec<u8> = [cifar_record(&[4, 72], 0), cifar_record(&[19, 99], 1)].concat();
    write(&dir.join("train.bin"), &bytes);
    write(&dir.join("test.bin"), &cifar_record(&[0, 0], 0));
    let fine = load_cifar100(dir, true, Cifar100Labels::default()).unwrap();
    assert_eq!(fine.labels(), &[72, 99]);
    assert_eq!(fine.num_classes(), 100);
    let coarse = load_cifar100(dir, true, Cifar100Labels::Coarse).unwrap();
    assert_eq!(coarse.labels(), &[4, 19]);
    assert_eq!(coarse.num_classes(), 20);
    write(&dir.join("fine_label_names.txt"), b"only\ntwo\n");
    let err = load_cifar100(dir, false, Cifar100Labels::Fine).unwrap_err();
    assert!(err.to_string().contains("fine_label_names.txt"), "{err}");
}

/// The pixels `xtask/python/cifar_pickles.py` writes: image `i`, byte `j`.
fn pickled_pixel(i: usize, j: usize) -> u8 {
    ((j * 31 + i * 17) % 256) as u8
}

/// CIFAR's Python version as Python 3 pickles it at each protocol (files written by NumPy and
/// `pickle` themselves, see the script), from the torchvision root and from the inner folder.
#[test]
fn cifar_python_version_reads_at_every_pickle_protocol() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/golden/cifar_pickles");
    let want: Vec<u8> = (0..2)
        .flat_map(|i| (0..3072).map(move |j| pickled_pixel(i, j)))
        .collect();
    for protocol in 2..=5 {
        let root = golden.join(format!("p{protocol}"));
        for dir in [root.clone(), root.join("cifar-10-batches-py")] {
            let test = load_cifar10(&dir, false).unwrap();
            assert_eq!(test.pixels(), &want[..], "protocol {protocol}");
            assert_eq!(test.labels(), &[3, 9]);
            assert_eq!(test.classes()[9], "name9");
        }
        let fine = load_cifar100(&root, false, Cifar100Labels::Fine).unwrap();
        assert_eq!(fine.pixels(), &want[..], "protocol {protocol}");
        assert_eq!((fine.labels(), fine.num_classes()), (&[99, 0][..], 100));
        assert_eq!(fine.classes()[99], "fine99");
        let coarse = load_cifar100(
            &root.join("cifar-100-python"),
            false,
            Cifar100Labels::Coarse,
        );
        let coarse = coarse.unwrap();
        assert_eq!(
            (coarse.labels(), coarse.classes()[19].as_str()),
            (&[19, 4][..], "coarse19")
        );
        // The training files are not there: the error names the first.
        let err = load_cifar10(&root, true).unwrap_err().to_string();
        assert!(
            err.ends_with("cifar-10-batches-py/data_batch_1: no such file or folder"),
            "{err}"
        );
    }
}

/// One CIFAR batch as Python 2's `cPickle` (protocol 2) lays out the published files:
/// `{'data': uint8 array [N, 3072], 'labels': [...]}`, strings as `str`, the array through
/// `numpy.core.multiarray._reconstruct` and its state, `dtype` `u1`.
fn py2_cifar_batch(labels: &[u8], data: &[u8], dtype: &[u8]) -> Vec<u8> {
    let mut out = b"\x80\x02}q\x01(U\x04dataq\x02".to_vec();
    out.extend(b"cnumpy.core.multiarray\n_reconstruct\nq\x03cnumpy\nndarray\nq\x04");
    out.extend(b"K\x00\x85U\x01b\x87Rq\x05(K\x01");
    out.extend(b"M");
    out.extend((labels.len() as u16).to_le_bytes());
    out.extend(b"M\x00\x0c\x86cnumpy\ndtype\nq\x06U");
    out.push(dtype.len() as u8);
    out.extend(dtype);
    out.extend(b"K\x00K\x01\x87Rq\x07(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb");
    out.extend(b"\x89T");
    out.extend((data.len() as u32).to_le_bytes());
    out.extend(data);
    out.extend(b"q\x08tbU\x06labelsq\x09]q\x0a(");
    for &l in labels {
        out.extend([b'K', l]);
    }
    out.extend(b"eu.");
    out
}

#[test]
fn cifar10_python_version_as_python_2_wrote_it() {
    let scratch_dir = scratch();
    let dir = scratch_dir.path();
    let image = |fill: u8| -> Vec<u8> {
        (0..3072)
            .map(|j| fill.wrapping_add((j / 1024) as u8))
            .collect()
    };
    for b in 1..=5u8 {
        let data = [image(b * 10), image(0)].concat();
        write(
            &dir.join(format!("data_batch_{b}")),
            &py2_cifar_batch(&[b, 9], &data, b"u1"),
        );
    }
    write(
        &dir.join("test_batch"),
        &py2_cifar_batch(&[3], &image(100), b"u1"),
    );
    let train = load_cifar10(dir, true).unwrap();
    assert_eq!(train.len(), 10);
    assert_eq!(&train.labels()[..4], &[1, 9, 2, 9]);
    assert_eq!(
        train.classes()[9],
        "truck",
        "CIFAR-10's names without batches.meta"
    );
    let image2 = train.image(2).unwrap();
    assert_eq!((image2[0], image2[1024], image2[2048]), (20, 21, 22));
    assert_eq!(load_cifar10(dir, false).unwrap().labels(), &[3]);

    // Broken files: each error names the file and the problem.
    let test = dir.join("test_batch");
    let cases: [(Vec<u8>, &str); 5] = [
        (
            py2_cifar_batch(&[10], &image(0), b"u1"),
            "label 10 of sample 0 is out of range",
        ),
        (
            py2_cifar_batch(&[1, 2], &image(0), b"u1"),
            "shape [2, 3072] but 3072 bytes of data",
        ),
        (
            py2_cifar_batch(&[1], &image(0), b"i1"),
            "element type `i1`, expected uint8",
        ),
        (
            py2_cifar_batch(&[1], &image(0), b"u1")[..2000].to_vec(),
            "truncated pickle",
        ),
        (
            b"\x80\x02}q\x01.".to_vec(),
            "no `data` in this pickled CIFAR batch",
        ),
    ];
    for (bytes, problem) in cases {
        write(&test, &bytes);
        let err = load_cifar10(dir, false).unwrap_err().to_string();
        assert!(
            err.contains("test_batch") && err.contains(problem),
            "{problem}: {err}"
        );
    }
    // The archive as downloaded, not extracted, is named.
    let downloaded = scratch();
    write(
        &downloaded.path().join("cifar-10-python.tar.gz"),
        b"\x1f\x8b",
    );
    let err = load_cifar10(downloaded.path(), true)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("holds cifar-10-python.tar.gz but not its files: extract it there first"),
        "{err}"
    );
    write(
        &downloaded.path().join("cifar-100-binary.tar.gz"),
        b"\x1f\x8b",
    );
    let err = load_cifar100(downloaded.path(), false, Cifar100Labels::Fine).unwrap_err();
    assert!(
        err.to_string().contains("holds cifar-100-binary.tar.gz"),
        "{err}"
    );
    // Where both versions are there, the binary one is read.
    write(&dir.join("test_batch.bin"), &cifar_record(&[7], 0));
    assert_eq!(load_cifar10(dir, false).unwrap().labels(), &[7]);
}

#[test]
fn image_folders_decode_resize_and_report_problems() {
    let scratch_dir = scratch();
    let root = scratch_dir.path();
    for (class, value) in [("cat", 200u8), ("dog", 50u8)] {
        std::fs::create_dir_all(root.join(class)).unwrap();
        for i in 0..2u8 {
            let image = image::RgbImage::from_pixel(8, 6, image::Rgb([value, value / 2, i]));
            image
                .save(root.join(class).join(format!("{i}.png")))
                .unwrap();
        }
        write(&root.join(class).join("notes.txt"), b"not an image");
    }
    let rgb = load_image_folder(root, 4, 3).unwrap();
    assert_eq!(rgb.len(), 4);
    assert_eq!(rgb.image_shape(), [3, 4, 4]);
    assert_eq!(rgb.classes(), &["cat", "dog"]);
    assert_eq!(rgb.labels(), &[0, 0, 1, 1]);
    let first = rgb.image(0).unwrap();
    assert_eq!((first[0], first[16], first[32]), (200, 100, 0));
    let grey = load_image_folder(root, 5, 1).unwrap();
    assert_eq!(grey.image_shape(), [1, 5, 5]);

    // A class's sub-folders are part of it (as in torchvision's `ImageFolder`): the folder's
    // own images first, then each sub-folder's; a link back to an ancestor is walked once.
    std::fs::create_dir_all(root.join("cat/2019")).unwrap();
    image::RgbImage::from_pixel(8, 6, image::Rgb([7, 7, 7]))
        .save(root.join("cat/2019/a.png"))
        .unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(root.join("cat"), root.join("cat/2019/loop")).unwrap();
    let nested = load_image_folder(root, 4, 3).unwrap();
    assert_eq!(nested.labels(), &[0, 0, 0, 1, 1]);
    assert_eq!(nested.image(2).unwrap()[0], 7);
    std::fs::remove_dir_all(root.join("cat/2019")).unwrap();

    std::fs::create_dir_all(root.join("empty")).unwrap();
    let err = load_image_folder(root, 4, 3).unwrap_err();
    assert!(matches!(err, DataError::EmptyClass { .. }), "{err}");
    assert!(err.to_string().contains("empty"));
    std::fs::remove_dir(root.join("empty")).unwrap();

    write(
        &root.join("dog").join("broken.png"),
        b"\x89PNG\r\n\x1a\nnot really",
    );
    let err = load_image_folder(root, 4, 3).unwrap_err();
    assert!(matches!(err, DataError::Decode { .. }), "{err}");
    assert!(err.to_string().contains("broken.png"));

    assert!(matches!(
        load_image_folder(scratch().path(), 4, 3),
        Err(DataError::NoClasses { .. })
    ));
    assert!(matches!(
        load_image_folder(&root.join("missing"), 4, 3),
        Err(DataError::NotFound { .. })
    ));
    assert!(matches!(
        load_image_folder(root, 4, 2),
        Err(DataError::Invalid(_))
    ));
}

#[test]
fn loose_images_and_folders_load_for_inference_in_a_stated_order() {
    let scratch_dir = scratch();
    let root = scratch_dir.path();
    std::fs::create_dir_all(root.join("more/deeper")).unwrap();
    std::fs::create_dir_all(root.join("0sub")).unwrap();
    let save = |path: &std::path::Path, value: u8| {
        image::GrayImage::from_pixel(6, 6, image::Luma([value]))
            .save(path)
            .unwrap();
    };
    save(&root.join("b.png"), 20);
    save(&root.join("a.png"), 10);
    save(&root.join("more/deeper/c.png"), 30);
    // A sub-folder named before the files still comes after them.
    save(&root.join("0sub/d.png"), 40);
    write(&root.join("readme.txt"), b"skipped");
    let single = root.join("more/deeper/c.png");
    let (images, files) =
        supcon_data::folder::load_images(&[root.to_path_buf(), single.clone()], 4, 1).unwrap();
    assert_eq!(
        files,
        [
            root.join("a.png"),
            root.join("b.png"),
            root.join("0sub/d.png"),
            root.join("more/deeper/c.png"),
            single
        ]
    );
    assert_eq!(images.len(), 5);
    assert_eq!(images.image_shape(), [1, 4, 4]);
    let firsts: Vec<u8> = (0..5).map(|i| images.image(i).unwrap()[0]).collect();
    assert_eq!(firsts, [10, 20, 40, 30, 30]);

    let missing = supcon_data::folder::load_images(&[root.join("nope.png")], 4, 1).unwrap_err();
    assert!(matches!(missing, DataError::NotFound { .. }), "{missing}");
    std::fs::create_dir_all(root.join("void")).unwrap();
    let empty = supcon_data::folder::load_images(&[root.join("void")], 4, 1).unwrap_err();
    assert!(empty.to_string().contains("no PNG or JPEG"), "{empty}");
}
