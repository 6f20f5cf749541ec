//! Image folders: `root/<class>/<image>.{png,jpg,jpeg}`, classes in the sorted order of their
//! folder names, a class's images in its folder and that folder's sub-folders (as torchvision's
//! `ImageFolder`), every image resized to `size x size`.
//!
//! Decoding and resizing use the `image` crate (bilinear "triangle" filter); files with other
//! extensions are skipped, an image that does not decode is an error naming it. The work is
//! spread over all cores. Colours become RGB as PIL's `convert('RGB')` makes them (what
//! torchvision's `ImageFolder` loads; an alpha channel is dropped), and grey as PIL's
//! `convert('L')` and torchvision's `Grayscale` make it, with ITU-R 601 weights (as
//! supcon-augment's grayscale), not the `image` crate's own Rec. 709 ones.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;

use crate::{DataError, ImageDataset};

/// Reads every class folder under `root`, resizing images to `size x size` with `channels`
/// 1 (grey) or 3 (RGB).
pub fn load_image_folder(
    root: &Path,
    size: usize,
    channels: usize,
) -> Result<ImageDataset, DataError> {
    if channels != 1 && channels != 3 {
        return Err(DataError::Invalid(format!(
            "channels must be 1 or 3, got {channels}"
        )));
    }
    if size == 0 {
        return Err(DataError::Invalid("image size must be positive".into()));
    }
    let mut class_dirs: Vec<PathBuf> = list(root)?.into_iter().filter(|p| p.is_dir()).collect();
    class_dirs.sort();
    if class_dirs.is_empty() {
        return Err(DataError::NoClasses {
            path: root.to_path_buf(),
        });
    }
    let mut files = Vec::new();
    let mut classes = Vec::new();
    for (label, dir) in class_dirs.iter().enumerate() {
        let mut images = Vec::new();
        collect_images(dir, &mut images)?;
        if images.is_empty() {
            return Err(DataError::EmptyClass { path: dir.clone() });
        }
        files.extend(images.into_iter().map(|p| (p, label as u32)));
        classes.push(
            dir.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
        );
    }

    let paths: Vec<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
    check_fits(
        root,
        paths.len(),
        channels * size * size,
        available_memory(),
    )?;
    let pixels = decode_all(&paths, size, channels)?;
    let labels = files.iter().map(|(_, l)| *l).collect();
    ImageDataset::new(pixels, labels, [channels, size, size], classes, root)
}

/// Unlabelled images for inference: each of `inputs` is an image file (PNG or JPEG) or a folder,
/// whose image files are taken with those of its sub-folders, in the order of
/// [`load_image_folder`]'s class folders. Every image is
/// resized to `size x size` with `channels` 1 (grey) or 3 (RGB) as in [`load_image_folder`].
/// Returns the images (all labelled 0, one class `unlabelled`) and their files, in row order.
pub fn load_images(
    inputs: &[PathBuf],
    size: usize,
    channels: usize,
) -> Result<(ImageDataset, Vec<PathBuf>), DataError> {
    if channels != 1 && channels != 3 {
        return Err(DataError::Invalid(format!(
            "channels must be 1 or 3, got {channels}"
        )));
    }
    if size == 0 {
        return Err(DataError::Invalid("image size must be positive".into()));
    }
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let before = files.len();
            collect_images(input, &mut files)?;
            if files.len() == before {
                return Err(DataError::Invalid(format!(
                    "{}: no PNG or JPEG images in the folder",
                    input.display()
                )));
            }
        } else if input.is_file() {
            files.push(input.clone());
        } else {
            return Err(DataError::NotFound {
                path: input.clone(),
            });
        }
    }
    if files.is_empty() {
        return Err(DataError::Invalid("no images given".into()));
    }
    let source = inputs.first().map_or(Path::new("."), PathBuf::as_path);
    check_fits(
        source,
        files.len(),
        channels * size * size,
        available_memory(),
    )?;
    let pixels = decode_all(&files, size, channels)?;
    let labels = vec![0; files.len()];
    let images = ImageDataset::new(
        pixels,
        labels,
        [channels, size, size],
        vec!["unlabelled".into()],
        source,
    )?;
    Ok((images, files))
}

/// The image files under `dir` in the order torchvision's `ImageFolder` takes them (`os.walk`,
/// sorted): the folder's own, sorted by name, then each sub-folder's the same way, in sorted
/// order. Symbolic links are followed; a folder reached again through one (a link to an
/// ancestor) is not walked twice.
fn collect_images(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), DataError> {
    let mut walked = std::collections::HashSet::new();
    walk(dir, out, &mut walked)
}

fn walk(
    dir: &Path,
    out: &mut Vec<PathBuf>,
    walked: &mut std::collections::HashSet<PathBuf>,
) -> Result<(), DataError> {
    let real = std::fs::canonicalize(dir).map_err(|e| DataError::io(dir, e))?;
    if !walked.insert(real) {
        return Ok(());
    }
    let mut entries = list(dir)?;
    entries.sort();
    let (folders, files): (Vec<PathBuf>, Vec<PathBuf>) =
        entries.into_iter().partition(|path| path.is_dir());
    out.extend(files.into_iter().filter(|p| p.is_file() && is_image(p)));
    for folder in folders {
        walk(&folder, out, walked)?;
    }
    Ok(())
}

/// Refuses to decode `images` images of `per_image` bytes each where they would need more than
/// the `available` memory: the allocation would succeed (pages are committed as they are
/// written) and the process be killed partway through decoding.
fn check_fits(
    path: &Path,
    images: usize,
    per_image: usize,
    available: Option<u64>,
) -> Result<(), DataError> {
    let needed = images as u64 * per_image as u64;
    match available {
        Some(available) if needed > available => Err(DataError::TooLarge {
            path: path.to_path_buf(),
            images,
            needed,
            available,
        }),
        _ => Ok(()),
    }
}

/// The memory the OS says is available (Linux's `MemAvailable`), or `None` where it cannot
/// tell.
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Decodes and resizes `files` over all cores into planar `[N, C, size, size]` bytes.
fn decode_all(files: &[PathBuf], size: usize, channels: usize) -> Result<Vec<u8>, DataError> {
    let per_image = channels * size * size;
    let mut pixels = vec![0u8; files.len() * per_image];
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = files.len().div_ceil(workers).max(1);
    std::thread::scope(|scope| {
        let jobs: Vec<_> = files
            .chunks(chunk)
            .zip(pixels.chunks_mut(chunk * per_image))
            .map(|(names, out)| {
                scope.spawn(move || -> Result<(), DataError> {
                    for (path, target) in names.iter().zip(out.chunks_mut(per_image)) {
                        decode_into(path, size, channels, target)?;
                    }
                    Ok(())
                })
            })
            .collect();
        jobs.into_iter()
            .try_for_each(|job| job.join().expect("decoder thread panicked"))
    })?;
    Ok(pixels)
}

fn list(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    entries
        .map(|entry| entry.map(|e| e.path()).map_err(|e| DataError::io(dir, e)))
        .collect()
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
}

/// Decodes, resizes and writes one image as planar `[C, H, W]` bytes into `target`.
fn decode_into(
    path: &Path,
    size: usize,
    channels: usize,
    target: &mut [u8],
) -> Result<(), DataError> {
    let image = image::ImageReader::open(path)
        .map_err(|e| DataError::io(path, e))?
        .with_guessed_format()
        .map_err(|e| DataError::io(path, e))?
        .decode()
        .map_err(|e| DataError::Decode {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let side = size as u32;
    let plane = size * size;
    if channels == 1 {
        let grey = image::imageops::resize(&luma_601(&image), side, side, FilterType::Triangle);
        target.copy_from_slice(grey.as_raw());
    } else {
        let rgb = image::imageops::resize(&image.to_rgb8(), side, side, FilterType::Triangle);
        for (i, pixel) in rgb.as_raw().chunks_exact(3).enumerate() {
            for c in 0..3 {
                target[c * plane + i] = pixel[c];
            }
        }
    }
    Ok(())
}

/// `image` in grey, `(299 R + 587 G + 114 B) / 1000` rounded as PIL computes it (in 16-bit
/// fixed point); a grey image keeps its values.
fn luma_601(image: &image::DynamicImage) -> image::GrayImage {
    if !image.color().has_color() {
        return image.to_luma8();
    }
    let rgb = image.to_rgb8();
    image::GrayImage::from_fn(rgb.width(), rgb.height(), |x, y| {
        let [r, g, b] = rgb.get_pixel(x, y).0.map(u32::from);
        let luma = (r * 19_595 + g * 38_470 + b * 7_471 + 0x8000) >> 16;
        image::Luma([luma as u8])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pure red, green and blue, and one mixed colour, as PIL's `convert('L')` gives them
    /// (76, 150, 29, 124); Rec. 709 weights would give 54, 182, 18.
    #[test]
    fn colours_turn_grey_with_itu_601_weights() {
        let colours = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [200, 100, 50]];
        let image = image::RgbImage::from_fn(4, 1, |x, _| image::Rgb(colours[x as usize]));
        let grey = luma_601(&image::DynamicImage::ImageRgb8(image));
        assert_eq!(grey.as_raw(), &[76, 150, 29, 124]);
        let alpha = image::RgbaImage::from_pixel(1, 1, image::Rgba([200, 100, 50, 7]));
        let grey = luma_601(&image::DynamicImage::ImageRgba8(alpha));
        assert_eq!(grey.as_raw(), &[124]);
    }

    #[test]
    fn images_that_cannot_fit_in_memory_are_refused_before_decoding() {
        let path = Path::new("photos");
        // 1,281,167 ImageNet images at 3x224x224: 179.6 GiB.
        let error = check_fits(path, 1_281_167, 3 * 224 * 224, Some(24 << 30)).unwrap_err();
        assert!(matches!(error, DataError::TooLarge { .. }));
        assert_eq!(
            error.to_string(),
            "photos: 1281167 images decoded at this size need 179.6 GiB of memory, more than \
             the 24.0 GiB available (a smaller image size, or fewer images)"
        );
        assert!(check_fits(path, 1_281_167, 3 * 32 * 32, Some(24 << 30)).is_ok());
        // Where the OS does not say, nothing is refused.
        assert!(check_fits(path, usize::MAX / 4, 4, None).is_ok());
        #[cfg(target_os = "linux")]
        assert!(available_memory().is_some_and(|bytes| bytes > 0));
    }
}
