//! Weights in and out: checkpoints of the PyTorch reference, and our models in Burn's own
//! format (burnpack), as safetensors, and as safetensors with the reference's names
//! ([`save_pytorch_safetensors`], for PyTorch). [`load_checkpoint`], [`load_encoder`] and
//! [`load_cross_entropy_net`] read either kind ([`WeightsOrigin`] tells them apart).
//!
//! A checkpoint written by SupContrast's `main_supcon.py` is `{'model': state_dict, ...}` with
//! keys `encoder.*` and `head.*` (`encoder.module.*` or `module.*` after DataParallel;
//! `_orig_mod.` where `torch.compile` wrapped the model or a part, which is dropped too; any
//! attributes before the first `encoder.`, `head.` or `fc.`, as PyTorch Lightning's `model.`
//! under `'state_dict'`, are dropped as well). Its keys
//! map onto [`SupConModel`](crate::SupConModel) by renaming the `nn.Sequential` indices the reference uses
//! (`shortcut.0` / `shortcut.1` to `shortcut.conv` / `shortcut.bn`, `head.0` / `head.2` to
//! `head.hidden` / `head.output`); Burn's PyTorch adapter transposes Linear weights and renames
//! BatchNorm's `weight` / `bias` to `gamma` / `beta`. burn-store's reader opens the file; where
//! it stops at a Python object it does not rebuild (a configuration kept as an EasyDict, say),
//! the state dict is read with supcon-data's pickle reader instead (in either of `torch.save`'s
//! formats).
//!
//! ```no_run
//! use burn::prelude::*;
//! use supcon_encoder::{Architecture, EncoderConfig};
//! use supcon_head::{SupConModelConfig, weights};
//!
//! let device = Device::flex();
//! let model = SupConModelConfig::new(EncoderConfig::new(Architecture::ResNet50)).init(&device);
//! let model = weights::load_reference_checkpoint(model, "save/SupCon/ckpt_epoch_1000.pth")?;
//! # Ok::<(), weights::WeightsError>(())
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::{ModuleDisplay, ModuleMapper, Param};
use burn::prelude::*;
use burn::store::{
    ApplyError, ApplyResult, BurnToPyTorchAdapter, BurnpackStore, KeyRemapper, ModuleSnapshot,
    ModuleStore, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
};
use burn::tensor::FloatDType;
use supcon_encoder::ImageEncoder;

use crate::CrossEntropyNet;

/// Why weights could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// The file does not exist.
    #[error("{}: no such file", .0.display())]
    NotFound(PathBuf),
    /// The store could not read or write the file.
    #[error("{}: {message}", path.display())]
    Store {
        /// The file.
        path: PathBuf,
        /// The store's message.
        message: String,
    },
    /// A file without any tensor: for a `.pth` file, typically a whole module pickled with
    /// `torch.save(model)` (its tensors live inside objects this reader does not rebuild)
    /// rather than its state dict.
    #[error(
        "{}: holds no tensors (for a .pth file: a whole module saved with `torch.save(model)` \
         rather than its `model.state_dict()`?)",
        .0.display()
    )]
    NoTensors(PathBuf),
    /// Parameters of the model that the checkpoint does not have (another architecture?).
    #[error(
        "{}: missing {} parameter(s) the model needs, first `{}`{} (a checkpoint of another \
         architecture?)",
        path.display(),
        keys.len(),
        keys[0],
        unused.first().map_or(String::new(), |k| format!(
            "; the file has {} tensor(s) the model does not take, first `{k}`",
            unused.len()
        ))
    )]
    Missing {
        /// The file.
        path: PathBuf,
        /// The model's parameter paths not found.
        keys: Vec<String>,
        /// The file's tensors that no parameter took (after the reference's renamings).
        unused: Vec<String>,
    },
    /// A tensor whose shape or type does not fit the model.
    #[error("{}: `{key}`: {problem}", path.display())]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// The parameter.
        key: String,
        /// What does not fit.
        problem: String,
    },
}

/// The renamings from the reference's keys to ours.
fn reference_key_remapper() -> KeyRemapper {
    KeyRemapper::from_patterns(vec![
        // `torch.compile`'s wrapper, around the whole model or a part of it.
        (r"(^|\.)_orig_mod\.", "${1}"),
        // Attributes of a wrapper before the reference's model, such as PyTorch Lightning's
        // `model.encoder.*` or `net.module.head.*`: everything before the first `encoder.`,
        // `head.` or `fc.` segment goes.
        (
            r"^(?:[A-Za-z_][A-Za-z0-9_]*\.)+?(encoder|head|fc)\.",
            "${1}.",
        ),
        (r"^module\.", ""),
        (r"^encoder\.module\.", "encoder."),
        (r"\.shortcut\.0\.", ".shortcut.conv."),
        (r"\.shortcut\.1\.", ".shortcut.bn."),
        (r"^head\.0\.", "head.hidden."),
        (r"^head\.2\.", "head.output."),
    ])
    .expect("the patterns are valid regexes")
}

/// The renamings from our keys to the reference's: [`reference_key_remapper`] undone.
fn to_reference_key_remapper() -> KeyRemapper {
    KeyRemapper::from_patterns(vec![
        (r"\.shortcut\.conv\.", ".shortcut.0."),
        (r"\.shortcut\.bn\.", ".shortcut.1."),
        (r"^head\.hidden\.", "head.0."),
        (r"^head\.output\.", "head.2."),
    ])
    .expect("the patterns are valid regexes")
}

/// Loads a checkpoint of the PyTorch reference into `model`: a `.pth` / `.pt` file from
/// `torch.save` (the state dict under `'model'`, under `'state_dict'`, or at the top level), or
/// a `.safetensors` file with the same keys. Every parameter of `model` must be found with the right shape; extra
/// entries (`num_batches_tracked`, the optimizer) are ignored.
pub fn load_reference_checkpoint<M: Module>(
    model: M,
    path: impl AsRef<Path>,
) -> Result<M, WeightsError> {
    let path = path.as_ref();
    if is_safetensors(path) {
        load_with(model, path, || {
            loading_reference(reference_safetensors_store(path))
        })
    } else {
        exists(path)?;
        PytorchSource::new(path)?.load(model)
    }
}

/// A safetensors file of the reference, its keys renamed to ours.
fn reference_safetensors_store(path: &Path) -> SafetensorsStore {
    SafetensorsStore::from_file(path).remap(reference_key_remapper())
}

/// `store`, of the reference's tensors, set to load them into a model of ours: PyTorch's
/// layouts and names adapted, the entries the model does not take (the optimizer,
/// `num_batches_tracked`) ignored.
fn loading_reference(store: SafetensorsStore) -> SafetensorsStore {
    store
        .with_from_adapter(PyTorchToBurnAdapter)
        .skip_enum_variants(true)
        .allow_partial(true)
        .validate(false)
}

/// A `.pth` / `.pt` file of the reference, as it is read: a readable copy where the zip reader
/// would misread the file itself (see `torch_zip`), removed when this is dropped, and the
/// reader that opens it.
struct PytorchSource {
    copy: Option<crate::torch_zip::ReadableCopy>,
    path: PathBuf,
    reader: PytorchReader,
}

enum PytorchReader {
    /// burn-store's, with the key of the state dict (`None`: the top level).
    Store(Option<&'static str>),
    /// For a file holding a Python object that burn-store's reader does not rebuild: the state
    /// dict as `torch_pickle` read it, a safetensors file in memory.
    Converted(Vec<u8>),
}

impl PytorchSource {
    fn new(path: &Path) -> Result<Self, WeightsError> {
        let misread = crate::torch_zip::is_misread(path).map_err(|e| store_error(path, e))?;
        let copy = misread
            .then(|| crate::torch_zip::ReadableCopy::new(path))
            .transpose()
            .map_err(|e| store_error(path, e))?;
        let source = copy.as_ref().map_or(path, |c| c.path());
        let reader = match object_not_rebuilt(source) {
            None => PytorchReader::Store(state_dict_key(source)),
            Some(problem) => match crate::torch_pickle::state_dict_as_safetensors(source) {
                Ok(bytes) => PytorchReader::Converted(bytes),
                Err(reason) => {
                    return Err(store_error(
                        path,
                        format!("{problem}; supcon's own reader of torch.save files: {reason}"),
                    ));
                }
            },
        };
        Ok(Self {
            copy,
            path: path.to_path_buf(),
            reader,
        })
    }

    /// burn-store's store of its state dict (under `state_dict_key`, or at the top level), keys
    /// renamed to ours.
    fn store(&self, state_dict_key: Option<&str>) -> PytorchStore {
        let source = self.copy.as_ref().map_or(self.path.as_path(), |c| c.path());
        let store = PytorchStore::from_file(source).remap(reference_key_remapper());
        match state_dict_key {
            Some(key) => store.with_top_level_key(key),
            None => store,
        }
    }

    /// The shape of the tensor `key` (after the reference's renamings; PyTorch's layout).
    fn tensor_shape(&self, key: &str) -> Result<Vec<usize>, WeightsError> {
        match &self.reader {
            PytorchReader::Store(state_dict_key) => {
                tensor_shape(self.store(*state_dict_key), &self.path, key)
            }
            PytorchReader::Converted(bytes) => {
                tensor_shape(converted_store(bytes.clone()), &self.path, key)
            }
        }
    }

    /// Loads `model` from it, as [`load_reference_checkpoint`] (handing a converted state dict
    /// on rather than copying it).
    fn load<M: Module>(self, model: M) -> Result<M, WeightsError> {
        match self.reader {
            PytorchReader::Store(state_dict_key) => {
                let store = || {
                    self.store(state_dict_key)
                        .skip_enum_variants(true)
                        .allow_partial(true)
                        .validate(false)
                };
                load_with(model, &self.path, store)
            }
            PytorchReader::Converted(bytes) => load_with(model, &self.path, || {
                loading_reference(converted_store(bytes))
            }),
        }
    }
}

/// The state dict `torch_pickle` converted, its keys renamed to ours.
fn converted_store(bytes: Vec<u8>) -> SafetensorsStore {
    SafetensorsStore::from_bytes(Some(bytes)).remap(reference_key_remapper())
}

/// burn-store's message, where its reader stops at a Python object it does not rebuild (a dict
/// subclass such as EasyDict, an object holding tensors) rather than at a damaged file.
fn object_not_rebuilt(path: &Path) -> Option<String> {
    let message = PytorchStore::from_file(path).keys().err()?.to_string();
    is_object_not_rebuilt(&message).then_some(message)
}

/// Whether burn-store's `message` says that its reader stopped at a Python object it does not
/// rebuild.
fn is_object_not_rebuilt(message: &str) -> bool {
    ["unexpected pickle opcode", "unsupported Python type"]
        .iter()
        .any(|sign| message.contains(sign))
}

/// Loads a cross-entropy network, `encoder` followed by the classifier `fc`, from `path`, with
/// as many classes as the file's `fc.weight` has: a file of ours (burnpack, or safetensors
/// Burn wrote; `supcon-train ce`'s `best-model.bpk`) or a checkpoint of the reference's
/// `main_ce.py` (`SupCEResNet`: `encoder.*` and `fc.*`, under `module.` after DataParallel),
/// read as [`load_checkpoint`] reads them. The classifier is created on `device` before the
/// file's values replace it.
///
/// ```no_run
/// use burn::prelude::*;
/// use supcon_encoder::{Architecture, EncoderConfig};
/// use supcon_head::weights;
///
/// let device = Device::flex();
/// let encoder = EncoderConfig::new(Architecture::ResNet50).init(&device);
/// let net = weights::load_cross_entropy_net(encoder, "save/SupCE/last.pth", &device)?;
/// println!("{} classes", net.fc.weight.dims()[1]);
/// # Ok::<(), weights::WeightsError>(())
/// ```
pub fn load_cross_entropy_net<E: ImageEncoder + ModuleDisplay>(
    encoder: E,
    path: impl AsRef<Path>,
    device: &Device,
) -> Result<CrossEntropyNet<E>, WeightsError> {
    let path = path.as_ref();
    let origin = WeightsOrigin::of(path)?;
    const KEY: &str = "fc.weight";
    // Burn keeps a Linear's weight as `[in, out]`, PyTorch as `[out, in]`. A `.pth` file's
    // readable copy (where it needs one) and reader are found once, for both reads.
    let pytorch = match origin {
        WeightsOrigin::Reference if !is_safetensors(path) => Some(PytorchSource::new(path)?),
        _ => None,
    };
    let (shape, classes_at) = match (&pytorch, origin) {
        (Some(source), _) => (source.tensor_shape(KEY)?, 0),
        (None, WeightsOrigin::Reference) => (
            tensor_shape(reference_safetensors_store(path), path, KEY)?,
            0,
        ),
        (None, WeightsOrigin::Burn) if is_safetensors(path) => (
            tensor_shape(SafetensorsStore::from_file(path), path, KEY)?,
            1,
        ),
        (None, WeightsOrigin::Burn) => (
            tensor_shape(
                BurnpackStore::from_file(path).auto_extension(false),
                path,
                KEY,
            )?,
            1,
        ),
    };
    let classes = match shape.as_slice() {
        [_, _] if shape[classes_at] > 0 => shape[classes_at],
        _ => {
            return Err(WeightsError::Mismatch {
                path: path.to_path_buf(),
                key: KEY.to_string(),
                problem: format!(
                    "shape {shape:?} in the file, a classifier's weight has two dimensions, \
                     neither 0"
                ),
            });
        }
    };
    let net = CrossEntropyNet::new(encoder, classes, device);
    match pytorch {
        Some(source) => source.load(net),
        None => load_as(origin, net, path),
    }
}

/// The shape of the tensor `key` of `store`, read from the file `path`.
fn tensor_shape<S: ModuleStore>(
    mut store: S,
    path: &Path,
    key: &str,
) -> Result<Vec<usize>, WeightsError>
where
    S::Error: std::fmt::Display,
{
    let shape = store
        .get_tensor(key)
        .map_err(|e| store_error(path, e))?
        .map(|tensor| tensor.shape.to_vec());
    match shape {
        Some(shape) => Ok(shape),
        None => Err(WeightsError::Missing {
            path: path.to_path_buf(),
            keys: vec![key.to_string()],
            unused: store.keys().unwrap_or_default(),
        }),
    }
}

/// The encoder alone, under the reference's `encoder.` prefix.
#[derive(Module, Debug)]
struct EncoderPart<E: Module + ModuleDisplay> {
    encoder: E,
}

/// Who wrote a weights file, which decides the names its parameters go by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightsOrigin {
    /// Written by Burn ([`save_safetensors`], [`save_burnpack`], `supcon-train export`): our
    /// own parameter names. A `.bpk` file, or a `.safetensors` file whose metadata names Burn
    /// as its producer.
    Burn,
    /// Anything else: a checkpoint of the PyTorch reference (`.pth`, `.pt`, or `.safetensors`
    /// from PyTorch), read with the reference's names ([`load_reference_checkpoint`]).
    Reference,
}

impl WeightsOrigin {
    /// The origin of the file at `path`, from its extension and, for safetensors, its header's
    /// `__metadata__` (only the header is read).
    pub fn of(path: impl AsRef<Path>) -> Result<Self, WeightsError> {
        let path = path.as_ref();
        exists(path)?;
        if is_burnpack(path)? {
            return Ok(Self::Burn);
        }
        if is_safetensors(path) && safetensors_producer(path)?.as_deref() == Some("burn") {
            return Ok(Self::Burn);
        }
        Ok(Self::Reference)
    }
}

/// The `producer` in a safetensors file's `__metadata__`, if it names one.
fn safetensors_producer(path: &Path) -> Result<Option<String>, WeightsError> {
    Ok(safetensors_metadata(path)?.remove("producer"))
}

/// A safetensors file's `__metadata__` (only its header is read).
fn safetensors_metadata(path: &Path) -> Result<BTreeMap<String, String>, WeightsError> {
    use std::io::Read;
    /// The safetensors format's own bound on its JSON header.
    const MAX_HEADER: u64 = 100_000_000;
    #[derive(serde::Deserialize)]
    struct Header {
        #[serde(rename = "__metadata__", default)]
        metadata: BTreeMap<String, String>,
    }
    let bad = |reason: String| WeightsError::Store {
        path: path.to_path_buf(),
        message: format!("not a safetensors file: {reason}"),
    };
    let mut file = std::fs::File::open(path).map_err(|e| store_error(path, e))?;
    let mut length = [0u8; 8];
    file.read_exact(&mut length)
        .map_err(|_| bad("shorter than its 8-byte header length".into()))?;
    let length = u64::from_le_bytes(length);
    if length > MAX_HEADER {
        return Err(bad(format!("a header of {length} bytes announced")));
    }
    let mut header = Vec::new();
    file.take(length)
        .read_to_end(&mut header)
        .map_err(|e| store_error(path, e))?;
    if header.len() as u64 != length {
        return Err(bad(format!(
            "a header of {length} bytes announced, {} there",
            header.len()
        )));
    }
    let header: Header =
        serde_json::from_slice(&header).map_err(|e| bad(format!("its header: {e}")))?;
    Ok(header.metadata)
}

/// The text metadata of a weights file: a safetensors header's `__metadata__` or a burnpack
/// file's metadata (Burn's writers record `format`, `producer` and `version`; the
/// `*_with_metadata` savers add their own), read without the tensors. PyTorch's `.pth` / `.pt`
/// files have none: an empty map.
///
/// ```no_run
/// use supcon_head::weights;
///
/// // `supcon-train export` records its run's settings under `supcon.config`.
/// let metadata = weights::read_metadata("runs/supcon-small-1/encoder.safetensors")?;
/// println!("{:?}", metadata.get("supcon.config"));
/// # Ok::<(), weights::WeightsError>(())
/// ```
pub fn read_metadata(path: impl AsRef<Path>) -> Result<BTreeMap<String, String>, WeightsError> {
    let path = path.as_ref();
    exists(path)?;
    if is_safetensors(path) {
        return safetensors_metadata(path);
    }
    if is_burnpack(path)? {
        let reader = burn::store::burn_pack::Reader::from_file_exact(path)
            .map_err(|e| store_error(path, e))?;
        return Ok(reader.metadata().clone());
    }
    Ok(BTreeMap::new())
}

/// Loads `model` from a weights file of either origin ([`WeightsOrigin::of`]): one written by
/// Burn ([`load_safetensors`], [`load_burnpack`]) or a checkpoint of the PyTorch reference
/// ([`load_reference_checkpoint`]).
pub fn load_checkpoint<M: Module>(model: M, path: impl AsRef<Path>) -> Result<M, WeightsError> {
    let path = path.as_ref();
    load_as(WeightsOrigin::of(path)?, model, path)
}

/// Loads only the encoder of a weights file of either origin ([`WeightsOrigin::of`]) into
/// `encoder`: the `encoder.*` entries of a whole model (a SupCon model with its head, a
/// cross-entropy network with its classifier), or an encoder saved alone. For the reference's
/// files this is [`load_reference_encoder`].
///
/// ```no_run
/// use burn::prelude::*;
/// use supcon_encoder::{Architecture, EncoderConfig};
/// use supcon_head::weights;
///
/// let encoder = EncoderConfig::new(Architecture::Small).init(&Device::flex());
/// // Written by `supcon-train export runs/supcon-small-1`.
/// let encoder = weights::load_encoder(encoder, "runs/supcon-small-1/encoder.safetensors")?;
/// # Ok::<(), weights::WeightsError>(())
/// ```
pub fn load_encoder<E: Module + ModuleDisplay>(
    encoder: E,
    path: impl AsRef<Path>,
) -> Result<E, WeightsError> {
    let path = path.as_ref();
    encoder_as(WeightsOrigin::of(path)?, encoder, path)
}

fn load_as<M: Module>(origin: WeightsOrigin, model: M, path: &Path) -> Result<M, WeightsError> {
    match origin {
        WeightsOrigin::Burn if is_safetensors(path) => load_safetensors(model, path),
        WeightsOrigin::Burn => load_burnpack(model, path),
        WeightsOrigin::Reference => load_reference_checkpoint(model, path),
    }
}

/// The encoder of a whole model's file (`encoder.*`), or of an encoder saved alone.
fn encoder_as<E: Module + ModuleDisplay>(
    origin: WeightsOrigin,
    encoder: E,
    path: &Path,
) -> Result<E, WeightsError> {
    let part = EncoderPart {
        encoder: encoder.clone(),
    };
    match load_as(origin, part, path) {
        Ok(part) => Ok(part.encoder),
        // No `encoder.` entries: the encoder saved alone? Its error names the prefix and the
        // file's own keys where that does not fit either.
        Err(error @ WeightsError::Missing { .. }) => {
            load_as(origin, encoder, path).map_err(|_| error)
        }
        Err(error) => Err(error),
    }
}

/// Loads only the encoder of a checkpoint of the PyTorch reference into `encoder` (its
/// `encoder.*` entries; the projection head of `main_supcon.py` or the classifier of
/// `main_ce.py` is ignored): for evaluating a reference encoder (linear probe, kNN,
/// embeddings). Files as in [`load_reference_checkpoint`]; an encoder saved alone
/// (`torch.save(model.encoder.state_dict())`: the same keys without `encoder.`) is read too.
///
/// ```no_run
/// use burn::prelude::*;
/// use supcon_encoder::{Architecture, EncoderConfig};
/// use supcon_head::weights;
///
/// let encoder = EncoderConfig::new(Architecture::ResNet18).init(&Device::flex());
/// let encoder = weights::load_reference_encoder(encoder, "save/SupCE/last.pth")?;
/// # Ok::<(), weights::WeightsError>(())
/// ```
pub fn load_reference_encoder<E: Module + ModuleDisplay>(
    encoder: E,
    path: impl AsRef<Path>,
) -> Result<E, WeightsError> {
    encoder_as(WeightsOrigin::Reference, encoder, path.as_ref())
}

/// Saves `model` as safetensors (our own parameter names), readable by others as a burnpack
/// file is (mode 644 on Unix: the safetensors writer's temporary file would leave it 600).
pub fn save_safetensors<M: Module>(model: &M, path: impl AsRef<Path>) -> Result<(), WeightsError> {
    save_safetensors_with_metadata(model, path, &BTreeMap::new())
}

/// [`save_safetensors`], with `metadata` added to the header's `__metadata__` (beside Burn's
/// `format`, `producer` and `version`; read back with [`read_metadata`]).
pub fn save_safetensors_with_metadata<M: Module>(
    model: &M,
    path: impl AsRef<Path>,
    metadata: &BTreeMap<String, String>,
) -> Result<(), WeightsError> {
    let path = path.as_ref();
    let store = metadata.iter().fold(
        SafetensorsStore::from_file(path).overwrite(true),
        |store, (key, value)| store.metadata(key, value),
    );
    save_with(model, path, store)?;
    readable_by_others(path)
}

/// Saves `model` as safetensors with PyTorch's parameter names and layouts, `metadata` added
/// (Burn's own is left out, so the file reads back as the reference's, [`WeightsOrigin`]):
/// the state dict of the reference's `SupConResNet` (`encoder.*`, the MLP head as `head.0.*`
/// and `head.2.*`, a linear head as `head.*`; shortcuts as `shortcut.0.*` / `shortcut.1.*`),
/// Linear weights `[out, in]`, BatchNorm's `weight` / `bias` / `running_mean` /
/// `running_var`. PyTorch loads it with `model.load_state_dict(safetensors.torch.load_file(path))`
/// (BatchNorm's `num_batches_tracked`, which the file lacks, is then filled in as 0; it only
/// matters to a BatchNorm without momentum). The `small` encoder is named as `nn.ModuleList`s
/// `convs` and `norms`, and the google-research head's BatchNorm as `head.norm.*`: the reference
/// has neither.
///
/// ```no_run
/// use burn::prelude::*;
/// use supcon_encoder::{Architecture, EncoderConfig};
/// use supcon_head::{SupConModelConfig, weights};
///
/// let model = SupConModelConfig::new(EncoderConfig::new(Architecture::ResNet18)).init(&Device::flex());
/// weights::save_pytorch_safetensors(&model, "supcon-resnet18.safetensors", &Default::default())?;
/// // The reference's own loader reads it back.
/// let fresh = SupConModelConfig::new(EncoderConfig::new(Architecture::ResNet18)).init(&Device::flex());
/// let model = weights::load_reference_checkpoint(fresh, "supcon-resnet18.safetensors")?;
/// # Ok::<(), weights::WeightsError>(())
/// ```
pub fn save_pytorch_safetensors<M: Module>(
    model: &M,
    path: impl AsRef<Path>,
    metadata: &BTreeMap<String, String>,
) -> Result<(), WeightsError> {
    let path = path.as_ref();
    let store = SafetensorsStore::from_file(path)
        .overwrite(true)
        .clear_metadata()
        // What `safetensors.torch.save_file` records.
        .metadata("format", "pt")
        .with_to_adapter(BurnToPyTorchAdapter)
        .skip_enum_variants(true)
        .remap(to_reference_key_remapper());
    let store = metadata
        .iter()
        .fold(store, |store, (key, value)| store.metadata(key, value));
    save_with(model, path, store)?;
    readable_by_others(path)
}

/// Mode 644 on Unix: the safetensors writer's temporary file would leave the file 600.
fn readable_by_others(path: &Path) -> Result<(), WeightsError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
            .map_err(|e| store_error(path, e))?;
    }
    Ok(())
}

/// Loads a model saved with [`save_safetensors`].
pub fn load_safetensors<M: Module>(model: M, path: impl AsRef<Path>) -> Result<M, WeightsError> {
    let path = path.as_ref();
    let store = || {
        SafetensorsStore::from_file(path)
            .allow_partial(true)
            .validate(false)
    };
    load_with(model, path, store)
}

/// Saves `model` in Burn's burnpack format, at `path` as given (Burn's store alone would add
/// `.bpk` to a name without an extension; [`WeightsOrigin::of`] knows the file by its magic
/// number whatever its name).
pub fn save_burnpack<M: Module>(model: &M, path: impl AsRef<Path>) -> Result<(), WeightsError> {
    save_burnpack_with_metadata(model, path, &BTreeMap::new())
}

/// [`save_burnpack`], with `metadata` added to the file's metadata (beside Burn's `format`,
/// `producer` and `version`; read back with [`read_metadata`]).
pub fn save_burnpack_with_metadata<M: Module>(
    model: &M,
    path: impl AsRef<Path>,
    metadata: &BTreeMap<String, String>,
) -> Result<(), WeightsError> {
    let path = path.as_ref();
    let store = metadata.iter().fold(
        // Written where asked: Burn would add `.bpk` to a name without an extension.
        BurnpackStore::from_file(path)
            .auto_extension(false)
            .overwrite(true),
        |store, (key, value)| store.metadata(key, value),
    );
    save_with(model, path, store)
}

/// Loads a model saved with [`save_burnpack`].
pub fn load_burnpack<M: Module>(model: M, path: impl AsRef<Path>) -> Result<M, WeightsError> {
    let path = path.as_ref();
    let store = || {
        BurnpackStore::from_file(path)
            .auto_extension(false)
            .allow_partial(true)
            .validate(false)
    };
    load_with(model, path, store)
}

fn save_with<M: Module, S: ModuleStore>(
    model: &M,
    path: &Path,
    mut store: S,
) -> Result<(), WeightsError>
where
    S::Error: std::fmt::Display,
{
    // `valid()` settles Burn's pending running-statistic updates (the last training step's
    // BatchNorm update is only committed when next read): a model saved straight after a step
    // would otherwise carry the statistics of the step before.
    model
        .valid()
        .save_into(&mut store)
        .map_err(|e| store_error(path, e))
}

/// Loads `model` from the store `open` makes for the existing file `path`, and checks that
/// every parameter was found with its shape.
fn load_with<M: Module, S: ModuleStore>(
    mut model: M,
    path: &Path,
    open: impl FnOnce() -> S,
) -> Result<M, WeightsError>
where
    S::Error: std::fmt::Display,
{
    exists(path)?;
    let result = model
        .load_from(&mut open())
        .map_err(|e| store_error(path, e))?;
    check(path, result)?;
    Ok(to_device_float_type(model))
}

fn exists(path: &Path) -> Result<(), WeightsError> {
    if path.is_file() {
        Ok(())
    } else {
        Err(WeightsError::NotFound(path.to_path_buf()))
    }
}

/// Whether `path` is a burnpack file: named `.bpk`, or starting with burnpack's magic number
/// (a file saved under another name).
fn is_burnpack(path: &Path) -> Result<bool, WeightsError> {
    use std::io::Read;
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if extension.eq_ignore_ascii_case("bpk") {
        return Ok(true);
    }
    let mut magic = [0u8; 4];
    let mut file = std::fs::File::open(path).map_err(|e| store_error(path, e))?;
    match file.read_exact(&mut magic) {
        Ok(()) => Ok(u32::from_le_bytes(magic) == burn::store::burn_pack::MAGIC_NUMBER),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(store_error(path, e)),
    }
}

fn is_safetensors(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"))
}

/// The key a `.pth` file keeps its state dict under: `'model'` (the reference's checkpoints),
/// `'state_dict'` (PyTorch Lightning's and many training scripts'), or none, at the top level
/// (`torch.save(model.state_dict())`).
fn state_dict_key(path: &Path) -> Option<&'static str> {
    ["model", "state_dict"].into_iter().find(|&key| {
        let mut probe = PytorchStore::from_file(path).with_top_level_key(key);
        probe.keys().is_ok_and(|keys| !keys.is_empty())
    })
}

fn store_error(path: &Path, error: impl std::fmt::Display) -> WeightsError {
    let mut message = error.to_string();
    // burn-store's pickle reader rebuilds dicts, lists, tensors and simple objects; a dict
    // subclass (EasyDict, ...) anywhere in the file stops it, even outside the state dict (a
    // corrupt file has other messages). Such a file reaches here when supcon's own reader could
    // not read it either.
    if is_object_not_rebuilt(&message) {
        message.push_str(
            " (the file holds a Python object burn-store's reader cannot rebuild, such as a \
             configuration kept as a dict subclass like EasyDict; in Python, \
             `torch.save(checkpoint['model'], 'weights.pth')` writes the state dict alone, which \
             it reads)",
        );
    }
    WeightsError::Store {
        path: path.to_path_buf(),
        message,
    }
}

/// Reports what the store could not apply: a file without tensors, then missing parameters (the
/// usual sign of another architecture), then the first tensor of the wrong shape or type.
fn check(path: &Path, result: ApplyResult) -> Result<(), WeightsError> {
    if result.applied.is_empty() && result.unused.is_empty() && !result.missing.is_empty() {
        return Err(WeightsError::NoTensors(path.to_path_buf()));
    }
    let missing: Vec<String> = result.missing.into_iter().map(|(key, _)| key).collect();
    if !missing.is_empty() {
        return Err(WeightsError::Missing {
            path: path.to_path_buf(),
            keys: missing,
            unused: result.unused,
        });
    }
    if let Some(error) = result.errors.into_iter().next() {
        let (key, problem) = match error {
            ApplyError::ShapeMismatch {
                path,
                expected,
                found,
            } => (
                path,
                format!(
                    "shape {:?} in the file, the model needs {:?}",
                    found.as_slice(),
                    expected.as_slice()
                ),
            ),
            ApplyError::DTypeMismatch {
                path,
                expected,
                found,
            } => (
                path,
                format!("type {found:?} in the file, the model needs {expected:?}"),
            ),
            other => ("?".into(), other.to_string()),
        };
        return Err(WeightsError::Mismatch {
            path: path.to_path_buf(),
            key,
            problem,
        });
    }
    Ok(())
}

/// `module` with every float tensor in `dtype` (parameters stay trainable, running statistics
/// stay untracked); tensors already in it are left as they are. A record loaded into a module
/// keeps the record's float type, so float32 weights loaded on a device computing in f16 or
/// bf16 (Burn's `Device::configure`) need this before the first forward pass; the `load_*`
/// functions here apply [`to_device_float_type`] themselves.
pub fn to_float_type<M: Module>(module: M, dtype: FloatDType) -> M {
    struct Cast(FloatDType);
    impl ModuleMapper for Cast {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            if FloatDType::from(param.val().dtype()) == self.0 {
                return param;
            }
            let dtype = self.0;
            param.map(|tensor| {
                let trainable = tensor.is_require_grad();
                // Untracked first: the cast is then a fresh leaf, not a node of the old one.
                let cast = tensor.set_require_grad(false).cast(dtype);
                cast.set_require_grad(trainable)
            })
        }
    }
    module.map(&mut Cast(dtype))
}

/// `module` in the float type its device computes in (see [`to_float_type`]).
pub fn to_device_float_type<M: Module>(module: M) -> M {
    match module.devices().first() {
        Some(device) => {
            let dtype = device.settings().float_dtype;
            to_float_type(module, dtype)
        }
        None => module,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SupConModelConfig;
    use supcon_encoder::{Architecture, EncoderConfig};

    /// `path` read by supcon's own reader, as if burn-store's could not open it.
    fn converted(path: &Path) -> PytorchSource {
        PytorchSource {
            copy: None,
            path: path.to_path_buf(),
            reader: PytorchReader::Converted(
                crate::torch_pickle::state_dict_as_safetensors(path).unwrap(),
            ),
        }
    }

    /// A real checkpoint of the reference (`{'opt': Namespace, 'model', 'optimizer', 'epoch'}`,
    /// DataParallel's `module.` prefix; `xtask/python/encoder_parity.py`) gives the same model
    /// through either reader: every parameter and running statistic, as the output in
    /// evaluation mode shows to the bit.
    #[test]
    fn both_readers_load_the_same_model_from_a_real_checkpoint() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../assets/golden/reference_small_ckpt.pth");
        let device = Device::flex();
        let model = || {
            SupConModelConfig::new(EncoderConfig::new(Architecture::Small).with_in_channels(1))
                .with_feat_dim(32)
                .init(&device)
        };
        let by_store = PytorchSource::new(&path).unwrap();
        assert!(matches!(
            by_store.reader,
            PytorchReader::Store(Some("model"))
        ));
        let by_store = by_store.load(model()).unwrap();
        let by_pickle = converted(&path).load(model()).unwrap();
        let pixels: Vec<f32> = (0..2 * 28 * 28).map(|i| (i % 97) as f32 / 97.0).collect();
        let x = Tensor::<1>::from_floats(pixels.as_slice(), &device).reshape([2, 1, 28, 28]);
        let out = |m: &crate::SupConModel| m.forward(x.clone()).into_data();
        assert_eq!(out(&by_store), out(&by_pickle));
        assert_eq!(
            converted(&path).tensor_shape("head.output.weight").unwrap(),
            by_store_shape(&path, "head.output.weight")
        );
    }

    #[derive(Module, Debug)]
    struct Tiny {
        x: Param<Tensor<1>>,
    }

    /// Every file of `assets/golden/torch_names` (zip archives under names of every length, the
    /// legacy format, a state dict under `'state_dict'`, a Lightning checkpoint) gives the same
    /// tensor through either reader.
    #[test]
    fn both_readers_agree_on_every_layout_of_file() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/golden/torch_names");
        let device = Device::flex();
        let tiny = || Tiny {
            x: Param::from_tensor(Tensor::zeros([3], &device)),
        };
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let x = |m: Tiny| m.x.val().into_data().try_into_vec::<f32>().unwrap();
            let by_store = x(PytorchSource::new(&path).unwrap().load(tiny()).unwrap());
            // A readable copy where the zip crate would misread the file itself.
            let misread = crate::torch_zip::is_misread(&path).unwrap();
            let copy = misread.then(|| crate::torch_zip::ReadableCopy::new(&path).unwrap());
            let source = copy.as_ref().map_or(path.as_path(), |c| c.path());
            let by_pickle = x(converted(source).load(tiny()).unwrap());
            assert_eq!(by_store, by_pickle, "{}", path.display());
            files += 1;
        }
        assert!(files >= 17, "{files}");
    }

    fn by_store_shape(path: &Path, key: &str) -> Vec<usize> {
        PytorchSource::new(path).unwrap().tensor_shape(key).unwrap()
    }
}
