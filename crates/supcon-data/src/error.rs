//! The error every reader returns: it names the file and what is wrong with it.

use std::path::PathBuf;

/// Why a dataset could not be read or used.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or folder that does not exist.
    #[error("{}: no such file or folder", path.display())]
    NotFound {
        /// What was looked for.
        path: PathBuf,
    },
    /// An I/O error while reading.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file whose content is not what its format says (bad gzip stream, wrong magic number,
    /// trailing bytes, ...).
    #[error("{}: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file shorter than its header promises.
    #[error("{}: truncated: expected {expected} bytes of {what}, found {found}", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Which part is short.
        what: &'static str,
        /// Bytes needed.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// Image and label files that disagree on the number of samples.
    #[error("{} holds {images} images but {} holds {labels} labels", image_path.display(), label_path.display())]
    CountMismatch {
        /// The image file.
        image_path: PathBuf,
        /// Its count.
        images: usize,
        /// The label file.
        label_path: PathBuf,
        /// Its count.
        labels: usize,
    },
    /// A label not below the number of classes.
    #[error("{}: label {label} of sample {index} is out of range for {classes} classes", path.display())]
    LabelOutOfRange {
        /// The file (or source) with the label.
        path: PathBuf,
        /// The sample.
        index: usize,
        /// Its label.
        label: u32,
        /// The number of classes.
        classes: usize,
    },
    /// A class folder without any image.
    #[error("{}: class folder contains no PNG or JPEG image", path.display())]
    EmptyClass {
        /// The class folder.
        path: PathBuf,
    },
    /// An image folder without class sub-folders.
    #[error("{}: no class sub-folders (expected one sub-folder of images per class)", path.display())]
    NoClasses {
        /// The folder.
        path: PathBuf,
    },
    /// An image the decoder rejects.
    #[error("{}: cannot decode image: {message}", path.display())]
    Decode {
        /// The image file.
        path: PathBuf,
        /// The decoder's message.
        message: String,
    },
    /// Images that, decoded, would not fit in the memory the OS says is available.
    #[error(
        "{}: {images} images decoded at this size need {:.1} GiB of memory, more than the {:.1} \
         GiB available (a smaller image size, or fewer images)",
        path.display(),
        *needed as f64 / GIB,
        *available as f64 / GIB
    )]
    TooLarge {
        /// The folder (or first input) the images come from.
        path: PathBuf,
        /// How many images.
        images: usize,
        /// Bytes they need decoded.
        needed: u64,
        /// Bytes available.
        available: u64,
    },
    /// Invalid arguments or in-memory data (a sample index past the end, a bad fraction, ...).
    #[error("{0}")]
    Invalid(String),
}

/// Bytes in a GiB, for messages.
const GIB: f64 = (1u64 << 30) as f64;

impl DataError {
    /// Wraps an I/O error, turning "not found" into [`DataError::NotFound`].
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            DataError::NotFound { path }
        } else {
            DataError::Io { path, source }
        }
    }
}
