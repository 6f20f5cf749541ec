//! The state dict of a `torch.save` file, read with supcon-data's pickle reader: for the
//! checkpoints that burn-store's reader cannot open because they hold a Python object it does
//! not rebuild (a configuration kept as a dict subclass such as EasyDict, anywhere in the file).
//! Nothing in the pickle is run; the tensors it points at are read from the file's storages
//! and handed on as a safetensors file in memory, which burn-store reads with the reference's
//! renamings as it reads a `.safetensors` checkpoint.
//!
//! Read: the zip archive `torch.save` writes since PyTorch 1.6 and the stream of pickles it
//! wrote before (its legacy format, still written with `_use_new_zipfile_serialization=False`);
//! `torch._utils._rebuild_tensor_v2` (and `_rebuild_tensor`), through `_rebuild_parameter` and
//! `_rebuild_from_type_v2`, of the usual storage types, any strides and offset, little-endian.
//! Refused, with the reason: big-endian files, other rebuild functions (quantised, sparse,
//! ...), and views reaching past their storage or holding more values than it.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::rc::Rc;

use supcon_data::pickle::{self, Value};
use zip::{ZipArchive, ZipReadOptions};

/// A tensor as the pickle describes it: where its values are, not the values.
struct TensorView {
    dtype: Dtype,
    storage: String,
    storage_len: u64,
    offset: u64,
    shape: Vec<u64>,
    strides: Vec<u64>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dtype {
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl Dtype {
    /// The dtype of a storage class, `torch.FloatStorage` and so on.
    fn of_storage(name: &str) -> Option<Self> {
        Some(match name {
            "DoubleStorage" => Self::F64,
            "FloatStorage" => Self::F32,
            "HalfStorage" => Self::F16,
            "BFloat16Storage" => Self::BF16,
            "LongStorage" => Self::I64,
            "IntStorage" => Self::I32,
            "ShortStorage" => Self::I16,
            "CharStorage" => Self::I8,
            "ByteStorage" => Self::U8,
            "BoolStorage" => Self::Bool,
            _ => return None,
        })
    }

    fn size(self) -> u64 {
        match self {
            Self::F64 | Self::I64 => 8,
            Self::F32 | Self::I32 => 4,
            Self::F16 | Self::BF16 | Self::I16 => 2,
            Self::I8 | Self::U8 | Self::Bool => 1,
        }
    }

    /// Its name in a safetensors header.
    fn safetensors_name(self) -> &'static str {
        match self {
            Self::F64 => "F64",
            Self::F32 => "F32",
            Self::F16 => "F16",
            Self::BF16 => "BF16",
            Self::I64 => "I64",
            Self::I32 => "I32",
            Self::I16 => "I16",
            Self::I8 => "I8",
            Self::U8 => "U8",
            Self::Bool => "BOOL",
        }
    }
}

/// The state dict of the `torch.save` file `path`, as a safetensors file: the tensors under
/// `'model'`, else under `'state_dict'`, else at the top level (the first of these that holds
/// any), named by their keys, nested dictionaries joined with dots. The error says what stopped
/// it.
pub(crate) fn state_dict_as_safetensors(path: &Path) -> Result<Vec<u8>, String> {
    let mut file = File::open(path).map_err(|e| e.to_string())?;
    let mut magic = [0u8; 4];
    let is_zip = file.read_exact(&mut magic).is_ok() && magic == *b"PK\x03\x04";
    if !is_zip {
        let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        return legacy_state_dict(&bytes);
    }
    let mut archive = ZipArchive::new(BufReader::new(file)).map_err(|e| e.to_string())?;
    let pickle_name = (0..archive.len())
        .filter_map(|i| archive.name_for_index(i)?.ok())
        .find(|name| name == "data.pkl" || name.ends_with("/data.pkl"))
        .map(|name| name.into_owned())
        .ok_or("an archive without data.pkl, not one torch.save wrote")?;
    let prefix = &pickle_name[..pickle_name.len() - "data.pkl".len()];
    if archive
        .index_for_name(&format!("{prefix}byteorder"))
        .is_some()
    {
        let order = read_entry(&mut archive, &format!("{prefix}byteorder"), 0)?;
        if order != b"little" {
            return Err(format!(
                "byte order `{}`: only little-endian archives are read",
                String::from_utf8_lossy(&order)
            ));
        }
    }
    let root = pickle::load(&read_entry(&mut archive, &pickle_name, 0)?)
        .map_err(|e| format!("data.pkl: {e}"))?;
    let mut storages = HashMap::new();
    convert(&root, |view| {
        if !storages.contains_key(&view.storage) {
            let entry = format!("{prefix}data/{}", view.storage);
            let needed = view.storage_len.checked_mul(view.dtype.size());
            let needed = needed.ok_or_else(|| format!("{entry}: a storage too large"))?;
            let bytes = read_entry(&mut archive, &entry, needed)?;
            storages.insert(view.storage.clone(), Rc::<[u8]>::from(bytes));
        }
        Ok(Rc::clone(&storages[&view.storage]))
    })
}

/// What PyTorch's format before 1.6 starts with: its magic number, pickled at protocol 2
/// (`0x1950a86a20f9469cfc6c`, a `LONG1` of 10 bytes; wider than the pickle reader's integers).
const LEGACY_MAGIC: &[u8] = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.";

/// [`state_dict_as_safetensors`] of a file in PyTorch's format before 1.6: pickles one after
/// the other (the magic number, the format's version 1001, the system's byte order and type
/// sizes, the object, the sorted keys of its storages), then each storage as its number of
/// values (8 bytes) and its bytes.
fn legacy_state_dict(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let Some(mut rest) = bytes.strip_prefix(LEGACY_MAGIC) else {
        return Err("neither a zip archive nor PyTorch's legacy format".into());
    };
    let mut next = |what: &str| -> Result<Value, String> {
        let (value, used) = pickle::load_prefix(rest).map_err(|e| format!("{what}: {e}"))?;
        rest = &rest[used..];
        Ok(value)
    };
    if next("the format's version")? != Value::Int(1001) {
        return Err("a legacy format version other than 1001".into());
    }
    let system = next("the system's description")?;
    if system.get("little_endian") != Some(&Value::Bool(true)) {
        return Err(
            "a file written on a big-endian system: only little-endian files are read".into(),
        );
    }
    let root = next("the object")?;
    let Value::List(keys) = next("the storage keys")? else {
        return Err("storage keys that are not a list".into());
    };
    // Every storage is stored, the state dict's or not: their types, from wherever the object
    // refers to them, give their sizes.
    let mut types = HashMap::new();
    storage_types(&root, &mut types)?;
    let mut storages = HashMap::new();
    for key in keys {
        let key = key.text().ok_or("a storage key that is not text")?;
        let dtype = *types
            .get(&key)
            .ok_or_else(|| format!("storage `{key}`, which nothing refers to"))?;
        let len = rest
            .first_chunk::<8>()
            .map(|n| u64::from_le_bytes(*n))
            .ok_or_else(|| format!("storage `{key}`: truncated"))?;
        let end = len
            .checked_mul(dtype.size())
            .and_then(|n| n.checked_add(8))
            .filter(|&end| end <= rest.len() as u64)
            .ok_or_else(|| format!("storage `{key}`: {len} values, truncated"))?;
        storages.insert(key, (len, &rest[8..end as usize]));
        rest = &rest[end as usize..];
    }
    convert(&root, |view| {
        let (len, bytes) = storages
            .get(&view.storage)
            .ok_or_else(|| format!("storage `{}`: not in the file", view.storage))?;
        if *len < view.storage_len {
            return Err(format!(
                "storage `{}`: {len} values, the tensors need {}",
                view.storage, view.storage_len
            ));
        }
        Ok(*bytes)
    })
}

/// Adds the storage type of every storage `value` refers to, by key, to `out`.
fn storage_types(value: &Value, out: &mut HashMap<String, Dtype>) -> Result<(), String> {
    match value {
        Value::Persistent(id) => {
            let (key, dtype, _) = storage_reference(id)?;
            out.entry(key).or_insert(dtype);
        }
        Value::List(values) | Value::Tuple(values) => {
            for value in values {
                storage_types(value, out)?;
            }
        }
        Value::Dict(entries) => {
            for (key, value) in entries {
                storage_types(key, out)?;
                storage_types(value, out)?;
            }
        }
        Value::Object {
            callable,
            args,
            state,
            entries,
            items,
        } => {
            storage_types(callable, out)?;
            storage_types(args, out)?;
            if let Some(state) = state {
                storage_types(state, out)?;
            }
            for (key, value) in entries {
                storage_types(key, out)?;
                storage_types(value, out)?;
            }
            for item in items {
                storage_types(item, out)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The tensors of the state dict in `root`, as [`state_dict_as_safetensors`] describes, their
/// storages' bytes given by `storage` (shared, not copied: many tensors may be views of one).
fn convert<B: AsRef<[u8]>>(
    root: &Value,
    mut storage: impl FnMut(&TensorView) -> Result<B, String>,
) -> Result<Vec<u8>, String> {
    let mut tensors = BTreeMap::new();
    for key in ["model", "state_dict"] {
        if let Some(value) = root.get(key) {
            collect(value, "", &mut tensors)?;
            if !tensors.is_empty() {
                break;
            }
        }
    }
    if tensors.is_empty() {
        collect(root, "", &mut tensors)?;
    }
    // Every view is checked against its storage before the file is allocated, whole.
    let mut lens = Vec::with_capacity(tensors.len());
    for (name, view) in &tensors {
        let bytes = storage(view)?;
        let numel = checked_numel(view, bytes.as_ref().len());
        lens.push(
            numel.map_err(|e| format!("`{name}`: {e}"))? as usize * view.dtype.size() as usize,
        );
    }
    let mut file = safetensors_header(&tensors, &lens);
    file.reserve_exact(lens.iter().sum());
    for (name, view) in &tensors {
        let bytes = storage(view)?;
        gather(view, bytes.as_ref(), &mut file).map_err(|e| format!("`{name}`: {e}"))?;
    }
    Ok(file)
}

/// The bytes of the archive's entry `name`, which must declare at least `at_least` bytes (its
/// checksum checked where it has one: `torch.save(..., compute_crc32=False)` writes 0); no
/// more than it declares are read.
fn read_entry(
    archive: &mut ZipArchive<BufReader<File>>,
    name: &str,
    at_least: u64,
) -> Result<Vec<u8>, String> {
    let error = |e: &dyn std::fmt::Display| format!("{name}: {e}");
    let index = archive
        .index_for_name(name)
        .ok_or_else(|| format!("{name}: not in the archive"))?;
    let crc32 = archive.by_index_raw(index).map_err(|e| error(&e))?.crc32();
    let mut entry = archive
        .by_index_with_options(index, ZipReadOptions::new().ignore_crc32(crc32 == 0))
        .map_err(|e| error(&e))?;
    let size = entry.size();
    if size < at_least {
        return Err(format!("{name}: {size} bytes, the tensors need {at_least}"));
    }
    // One byte past the declared size: a read that reaches the entry's end has its checksum
    // checked, and one that finds more bytes shows a header that lied.
    let mut bytes = Vec::new();
    (&mut entry)
        .take(size.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| error(&e))?;
    if bytes.len() as u64 != size {
        return Err(format!(
            "{name}: {} bytes, where it declares {size}",
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// Adds the tensors of `value` to `out`: `value` itself, named `name`, or the entries of a
/// dictionary (or dict subclass: `OrderedDict`), named `name.key`. Other values are skipped.
fn collect(
    value: &Value,
    name: &str,
    out: &mut BTreeMap<String, TensorView>,
) -> Result<(), String> {
    if let Some(view) = tensor_view(value).map_err(|e| format!("`{name}`: {e}"))? {
        out.insert(name.to_string(), view);
        return Ok(());
    }
    for (key, entry) in value.entries().unwrap_or_default() {
        let Some(key) = key.text() else { continue };
        let full = if name.is_empty() {
            key
        } else {
            format!("{name}.{key}")
        };
        collect(entry, &full, out)?;
    }
    Ok(())
}

const UTILS: &[&str] = &["torch._utils"];

/// The tensor `value` rebuilds, if it is one.
fn tensor_view(value: &Value) -> Result<Option<TensorView>, String> {
    let Value::Object { callable, args, .. } = value else {
        return Ok(None);
    };
    let Value::Tuple(args) = args.as_ref() else {
        return Ok(None);
    };
    let is = |name| callable.is_global(UTILS, name);
    if is("_rebuild_parameter") || is("_rebuild_parameter_with_state") {
        // (data, requires_grad, backward_hooks[, state]): the tensor is `data`.
        return args.first().map_or(Ok(None), tensor_view);
    }
    if is("_rebuild_from_type_v2") {
        // (func, type, args, state): a tensor subclass, rebuilt by `func(*args)`.
        let [func, _, inner, ..] = args.as_slice() else {
            return Err("a tensor subclass without its arguments".into());
        };
        let call = Value::Object {
            callable: Box::new(func.clone()),
            args: Box::new(inner.clone()),
            state: None,
            entries: Vec::new(),
            items: Vec::new(),
        };
        return tensor_view(&call);
    }
    if !(is("_rebuild_tensor_v2") || is("_rebuild_tensor")) {
        if let Value::Global(module, name) = callable.as_ref()
            && module == "torch._utils"
            && name.starts_with("_rebuild")
        {
            return Err(format!(
                "a tensor stored by torch._utils.{name}, which this reader does not rebuild"
            ));
        }
        return Ok(None);
    }
    // (storage, storage_offset, size, stride, ...)
    let [Value::Persistent(id), offset, shape, strides, ..] = args.as_slice() else {
        return Err("a tensor without its storage, offset, size and stride".into());
    };
    let (storage, dtype, (view_offset, storage_len)) = storage_reference(id)?;
    Ok(Some(TensorView {
        dtype,
        storage,
        storage_len,
        offset: count(offset)?
            .checked_add(view_offset)
            .ok_or("an offset that overflows")?,
        shape: counts(shape)?,
        strides: counts(strides)?,
    }))
}

/// The key and type of the storage a persistent reference names, and the offset at which the
/// tensor's values start in it and the number of values up to the end of what the tensor may
/// use: `('storage', storage class, key, location, size)`, and in the legacy format a sixth
/// field, `None` or, for a view of another storage, `(view key, offset, size)`.
fn storage_reference(id: &Value) -> Result<(String, Dtype, (u64, u64)), String> {
    let Value::Tuple(id) = id else {
        return Err("a storage reference that is not a tuple".into());
    };
    let ([tag, class, key, _, len] | [tag, class, key, _, len, _]) = id.as_slice() else {
        return Err(format!(
            "a storage reference of {} fields, not 5 or 6",
            id.len()
        ));
    };
    let (Some("storage"), Value::Global(_, class), Some(key)) =
        (tag.text().as_deref(), class, key.text())
    else {
        return Err("a storage reference not as PyTorch writes one".into());
    };
    let dtype = Dtype::of_storage(class).ok_or_else(|| format!("storage type {class}"))?;
    if key.contains(['/', '\\']) || key.contains("..") {
        return Err(format!("storage key `{key}`"));
    }
    let span = match id.get(5) {
        None | Some(Value::None) => (0, count(len)?),
        Some(Value::Tuple(view)) if view.len() == 3 => {
            let (offset, size) = (count(&view[1])?, count(&view[2])?);
            (
                offset,
                offset.checked_add(size).ok_or("a view that overflows")?,
            )
        }
        Some(other) => return Err(format!("a storage view described as {other:?}")),
    };
    Ok((key, dtype, span))
}

/// A non-negative integer.
fn count(value: &Value) -> Result<u64, String> {
    match value {
        Value::Int(n) => u64::try_from(*n).map_err(|_| format!("a negative size or offset {n}")),
        other => Err(format!("{other:?} where a size or offset was expected")),
    }
}

/// A tuple of non-negative integers.
fn counts(value: &Value) -> Result<Vec<u64>, String> {
    match value {
        Value::Tuple(values) => values.iter().map(count).collect(),
        other => Err(format!("{other:?} where a shape or strides were expected")),
    }
}

/// The number of values of `view`, checked to lie within its storage, of `storage_bytes`.
fn checked_numel(view: &TensorView, storage_bytes: usize) -> Result<u64, String> {
    if view.shape.len() != view.strides.len() {
        return Err(format!(
            "{} dimensions and {} strides",
            view.shape.len(),
            view.strides.len()
        ));
    }
    let too_large = || "sizes that overflow".to_string();
    let numel = view
        .shape
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d))
        .ok_or_else(too_large)?;
    if numel == 0 {
        return Ok(0);
    }
    // The last element's index, which must be inside the storage; a view of more values than
    // its storage holds (a stride of 0, as `expand` makes) is refused, which keeps what is
    // allocated for it within the file's size.
    let last = view
        .shape
        .iter()
        .zip(&view.strides)
        .try_fold(view.offset, |at, (&d, &s)| {
            at.checked_add((d - 1).checked_mul(s)?)
        })
        .ok_or_else(too_large)?;
    let available = storage_bytes as u64 / view.dtype.size();
    if last >= view.storage_len.min(available) || numel > view.storage_len {
        return Err(format!(
            "a view of {numel} values reaching index {last} of a storage of {}",
            view.storage_len.min(available)
        ));
    }
    Ok(numel)
}

/// Appends the values of `view`, in row-major order, from its storage's bytes to `out`.
fn gather(view: &TensorView, storage: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let numel = checked_numel(view, storage.len())?;
    if numel == 0 {
        return Ok(());
    }
    let size = view.dtype.size() as usize;
    // Row-major already (what a state dict almost always holds): one copy.
    let mut contiguous = 1;
    let row_major = view.shape.iter().zip(&view.strides).rev().all(|(&d, &s)| {
        let fits = d == 1 || s == contiguous;
        contiguous *= d;
        fits
    });
    if row_major {
        let start = view.offset as usize * size;
        out.extend_from_slice(&storage[start..start + numel as usize * size]);
        return Ok(());
    }
    out.reserve(numel as usize * size);
    let mut index = vec![0u64; view.shape.len()];
    for _ in 0..numel {
        let at = view.offset
            + index
                .iter()
                .zip(&view.strides)
                .map(|(i, s)| i * s)
                .sum::<u64>();
        let at = at as usize * size;
        out.extend_from_slice(&storage[at..at + size]);
        // The next row-major index.
        for (i, &d) in index.iter_mut().zip(&view.shape).rev() {
            *i += 1;
            if *i < d {
                break;
            }
            *i = 0;
        }
    }
    Ok(())
}

/// The start of a safetensors file of `tensors`, whose values take `lens` bytes each in the same
/// order: its header, their values to follow.
fn safetensors_header(tensors: &BTreeMap<String, TensorView>, lens: &[usize]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut at = 0usize;
    for ((name, view), len) in tensors.iter().zip(lens) {
        header.insert(
            name.clone(),
            serde_json::json!({
                "dtype": view.dtype.safetensors_name(),
                "shape": view.shape,
                "data_offsets": [at, at + len],
            }),
        );
        at += len;
    }
    let mut header = serde_json::Value::Object(header).to_string().into_bytes();
    // The format pads its header with spaces to a multiple of 8 bytes.
    header.resize(header.len().next_multiple_of(8), b' ');
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(&header);
    file
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::{Dtype as St, SafeTensors};

    fn golden(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../assets/golden")
            .join(name)
    }

    /// `config_object.pth`, as `xtask/python/torch_names.py` wrote it: each tensor's values
    /// worked out from the formulas there, in row-major order, whatever its layout in the file.
    #[test]
    fn every_layout_and_type_of_the_state_dict_reads_back() {
        let bytes = state_dict_as_safetensors(&golden("config_object.pth")).unwrap();
        let file = SafeTensors::deserialize(&bytes).unwrap();
        let mut names = file.names();
        names.sort();
        assert_eq!(names, ["b", "h", "half", "steps", "w", "x"]);
        let f32s = |name: &str, shape: &[usize]| {
            let tensor = file.tensor(name).unwrap();
            assert_eq!((tensor.dtype(), tensor.shape()), (St::F32, shape), "{name}");
            let data = tensor.data().chunks(4);
            data.map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect::<Vec<_>>()
        };
        let base = |i: usize| i as f32 / 4.0;
        assert_eq!(f32s("x", &[3]), [1.0, 2.0, 3.0]);
        // base[:6].view(2, 3).t(): strides (1, 3) in the file.
        let w: Vec<f32> = (0..3)
            .flat_map(|r| (0..2).map(move |c| base(c * 3 + r)))
            .collect();
        assert_eq!(f32s("w", &[3, 2]), w);
        // base[7:10]: offset 7 into the storage `w` shares.
        assert_eq!(f32s("b", &[3]), [base(7), base(8), base(9)]);
        let h = file.tensor("h").unwrap();
        assert_eq!((h.dtype(), h.shape()), (St::F64, &[2][..]));
        let h: Vec<f64> = (h.data().chunks(8))
            .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(h, [0.5, -2.0]);
        // bfloat16 1.5 and -3.0: the upper halves of their float32 bits.
        let half = file.tensor("half").unwrap();
        assert_eq!((half.dtype(), half.shape()), (St::BF16, &[2][..]));
        let upper = |v: f32| ((v.to_bits() >> 16) as u16).to_le_bytes();
        assert_eq!(half.data(), [upper(1.5), upper(-3.0)].concat());
        let steps = file.tensor("steps").unwrap();
        assert_eq!((steps.dtype(), steps.shape()), (St::I64, &[][..]));
        assert_eq!(steps.data(), 5i64.to_le_bytes());
    }

    /// The same checkpoint in PyTorch's format before 1.6 reads the same; with a quantised
    /// tensor in its state dict, or as a file of neither format, it is refused saying why.
    #[test]
    fn the_legacy_format_reads_the_same_and_the_unreadable_are_refused() {
        let zip = state_dict_as_safetensors(&golden("config_object.pth")).unwrap();
        let legacy = state_dict_as_safetensors(&golden("config_object_legacy.pth")).unwrap();
        assert_eq!(zip, legacy);
        let error = state_dict_as_safetensors(&golden("config_object_quantized.pth")).unwrap_err();
        assert!(
            error.contains("`q`") && error.contains("_rebuild_qtensor"),
            "{error}"
        );
        let dir = tempfile::tempdir().unwrap();
        let bytes = std::fs::read(golden("config_object_legacy.pth")).unwrap();
        for (name, content, why) in [
            (
                "neither.pth",
                &b"\x80\x02K\x01."[..],
                "neither a zip archive",
            ),
            ("cut.pth", &bytes[..bytes.len() - 3], "truncated"),
            ("short.pth", &bytes[..200], "the object"),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, content).unwrap();
            let error = state_dict_as_safetensors(&path).unwrap_err();
            assert!(error.contains(why), "{name}: {error}");
        }
    }

    fn view(offset: u64, shape: &[u64], strides: &[u64], storage_len: u64) -> TensorView {
        TensorView {
            dtype: Dtype::U8,
            storage: "0".into(),
            storage_len,
            offset,
            shape: shape.to_vec(),
            strides: strides.to_vec(),
        }
    }

    #[test]
    fn views_are_gathered_and_views_outside_their_storage_refused() {
        let storage: Vec<u8> = (0..12).collect();
        // A 2 x 3 window at offset 1 of a 4-wide row-major block, transposed.
        let gathered = |view: TensorView| {
            let mut out = vec![99];
            gather(&view, &storage, &mut out).map(|()| out)
        };
        // Appended to what is there.
        assert_eq!(
            gathered(view(1, &[3, 2], &[1, 4], 12)).unwrap(),
            [99, 1, 5, 2, 6, 3, 7]
        );
        // Row-major, with a dimension of 1 whose stride does not matter.
        let got = gathered(view(2, &[2, 1, 3], &[3, 7, 1], 12)).unwrap();
        assert_eq!(got, [99, 2, 3, 4, 5, 6, 7]);
        assert_eq!(gathered(view(5, &[0, 7], &[1, 1], 12)).unwrap(), [99]);
        assert_eq!(gathered(view(11, &[], &[], 12)).unwrap(), [99, 11]);
        for (bad, why) in [
            (view(10, &[3], &[1], 12), "past the end"),
            (view(0, &[13], &[1], 13), "past the bytes there"),
            (view(0, &[1000], &[0], 12), "more values than the storage"),
            (
                view(0, &[u64::MAX, 3], &[1, 1], 12),
                "a size that overflows",
            ),
            (
                view(0, &[2, 2], &[u64::MAX, 1], 12),
                "a stride that overflows",
            ),
            (view(0, &[2, 2], &[1], 12), "fewer strides than dimensions"),
        ] {
            assert!(gathered(bad).is_err(), "{why}");
        }
    }
}
