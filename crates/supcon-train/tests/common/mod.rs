//! What the trainer's tests share: running the binary, and a tiny learnable dataset in IDX
//! files (12x12 grey images of 4 classes, each class a bright square in its own quadrant over
//! seeded noise).
#![allow(dead_code)] // each test file uses some of these

use std::path::Path;
use std::process::{Command, Output};

pub const SIDE: usize = 12;
pub const CLASSES: usize = 4;

fn idx_images(count: usize, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut noise = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 60) as u8 * 3
    };
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for i in 0..count {
        let class = i % CLASSES;
        let (top, left) = ((class / 2) * SIDE / 2, (class % 2) * SIDE / 2);
        for y in 0..SIDE {
            for x in 0..SIDE {
                let inside = (top + 1..top + SIDE / 2 - 1).contains(&y)
                    && (left + 1..left + SIDE / 2 - 1).contains(&x);
                images.push(if inside { 200 } else { 0 } + noise());
            }
        }
        labels.push(class as u8);
    }
    (images, labels)
}

/// Writes `<prefix>-{images-idx3,labels-idx1}-ubyte` with `count` images into `dir`.
pub fn write_split(dir: &Path, prefix: &str, count: usize, seed: u64) {
    let (pixels, labels) = idx_images(count, seed);
    write_idx(dir, prefix, &pixels, &labels, SIDE);
}

/// Writes `<prefix>-{images-idx3,labels-idx1}-ubyte` into `dir`: grey `side`x`side` images
/// (`pixels`, one byte each, image after image) and their labels.
pub fn write_idx(dir: &Path, prefix: &str, pixels: &[u8], labels: &[u8], side: usize) {
    let count = labels.len();
    let mut images = vec![0, 0, 8, 3];
    for d in [count, side, side] {
        images.extend_from_slice(&(d as u32).to_be_bytes());
    }
    images.extend_from_slice(pixels);
    std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), images).unwrap();
    let mut label_file = vec![0, 0, 8, 1];
    label_file.extend_from_slice(&(count as u32).to_be_bytes());
    label_file.extend_from_slice(labels);
    std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), label_file).unwrap();
}

/// A folder of grey 8x8 PNG images, `count` of each class, one sub-folder a class.
pub fn write_png_classes(dir: &Path, classes: &[&str], count: usize) {
    for (c, name) in classes.iter().enumerate() {
        let class_dir = dir.join(name);
        std::fs::create_dir_all(&class_dir).unwrap();
        for i in 0..count {
            let image = image::GrayImage::from_fn(8, 8, |x, y| {
                image::Luma([((x + y) as usize * 10 + 60 * c + i) as u8])
            });
            image.save(class_dir.join(format!("{i}.png"))).unwrap();
        }
    }
}

/// Writes `train` (128 images) and `test` (32 images) splits into `dir`.
pub fn write_tiny_idx(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    write_split(dir, "train", 128, 1);
    write_split(dir, "test", 32, 2);
}

/// Runs the `supcon-train` binary with `args` in `cwd`.
pub fn supcon_train(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_supcon-train"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}
