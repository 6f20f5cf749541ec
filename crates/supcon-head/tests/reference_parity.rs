//! Our networks against the PyTorch reference architecture with the same weights, and the
//! reference's checkpoints loaded through the key mapping.
//!
//! Weights come from a formula of each PyTorch key and element index, which
//! `xtask/python/encoder_parity.py` and this test both implement; the test writes them as a
//! safetensors file under the PyTorch names and loads it with
//! `weights::load_reference_checkpoint`, so the key mapping is tested too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use serde_json::Value;
use supcon_encoder::{Architecture, EncoderConfig};
use supcon_head::weights::{self, WeightsError, WeightsOrigin};
use supcon_head::{SupConModel, SupConModelConfig};

const EXPECTED: &str = include_str!("../../../assets/golden/encoder_parity.json");

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../assets/golden")
        .join(name)
}

/// A fresh empty folder for files a test writes, removed with them when dropped.
fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("supcon-head-")
        .tempdir()
        .unwrap()
}

/// `encoder_parity.py`'s `noise`: 2 frac(43758.5453 sin(12.9898 i + 78.233 c)) - 1.
fn noise(i: usize, c: f64) -> f64 {
    let v = (12.9898 * i as f64 + 78.233 * c).sin() * 43758.5453;
    2.0 * (v - v.floor()) - 1.0
}

/// The value formula of `encoder_parity.py`'s `formula_tensor`.
fn formula(key: &str, shape: &[usize]) -> Vec<f32> {
    let n: usize = shape.iter().product();
    let c = (key.bytes().map(u64::from).sum::<u64>() % 97) as f64 * 0.1;
    (0..n)
        .map(|i| {
            let base = noise(i, c);
            let value = if key.ends_with("running_var") {
                1.0 + 0.5 * base * base
            } else if key.ends_with("running_mean") || key.ends_with("bias") {
                0.1 * base
            } else if shape.len() == 1 {
                1.0 + 0.2 * base
            } else {
                base * (3.0 / shape[1..].iter().product::<usize>() as f64).sqrt()
            };
            value as f32
        })
        .collect()
}

/// The PyTorch state-dict keys and shapes of resnet_big.py's SupConResNet (mlp head, 128).
fn reference_keys(bottleneck: bool, counts: [usize; 4], width: usize) -> Vec<(String, Vec<usize>)> {
    let mut keys = Vec::new();
    let bn = |keys: &mut Vec<(String, Vec<usize>)>, prefix: String, n: usize| {
        for suffix in ["weight", "bias", "running_mean", "running_var"] {
            keys.push((format!("{prefix}.{suffix}"), vec![n]));
        }
    };
    keys.push(("encoder.conv1.weight".into(), vec![64, 3, 3, 3]));
    bn(&mut keys, "encoder.bn1".into(), 64);
    let expansion = if bottleneck { 4 } else { 1 };
    let mut cin = 64;
    for (stage, (&count, planes)) in counts.iter().zip([64, 128, 256, 512]).enumerate() {
        for i in 0..count {
            let stride = if i == 0 && stage > 0 { 2 } else { 1 };
            let p = format!("encoder.layer{}.{i}", stage + 1);
            let out = planes * expansion;
            let convs: Vec<(usize, usize, usize)> = if bottleneck {
                vec![(cin, planes, 1), (planes, planes, 3), (planes, out, 1)]
            } else {
                vec![(cin, planes, 3), (planes, planes, 3)]
            };
            for (j, (i_c, o_c, k)) in convs.into_iter().enumerate() {
                keys.push((format!("{p}.conv{}.weight", j + 1), vec![o_c, i_c, k, k]));
                bn(&mut keys, format!("{p}.bn{}", j + 1), o_c);
            }
            if stride != 1 || cin != out {
                keys.push((format!("{p}.shortcut.0.weight"), vec![out, cin, 1, 1]));
                bn(&mut keys, format!("{p}.shortcut.1"), out);
            }
            cin = out;
        }
    }
    keys.push(("head.0.weight".into(), vec![width, width]));
    keys.push(("head.0.bias".into(), vec![width]));
    keys.push(("head.2.weight".into(), vec![128, width]));
    keys.push(("head.2.bias".into(), vec![128]));
    keys
}

/// Writes formula tensors under the given keys; the formula sees the key without a `module.`
/// prefix, as the Python side names it.
fn write_formula_safetensors(path: &Path, keys: &[(String, Vec<usize>)]) {
    let named: Vec<(String, String, Vec<usize>)> = keys
        .iter()
        .map(|(k, shape)| {
            let name = k.trim_start_matches("module.").to_string();
            (k.clone(), name, shape.clone())
        })
        .collect();
    write_formula_safetensors_as(path, &named);
}

/// Writes the formula tensors of the second names under the first.
fn write_formula_safetensors_as(path: &Path, keys: &[(String, String, Vec<usize>)]) {
    let data: BTreeMap<String, (Vec<u8>, Vec<usize>)> = keys
        .iter()
        .map(|(k, name, shape)| {
            let values = formula(name, shape);
            (
                k.clone(),
                (
                    values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                    shape.clone(),
                ),
            )
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = data
        .iter()
        .map(|(k, (bytes, shape))| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                    .unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

fn formula_input(shape: [usize; 4], device: &Device) -> Tensor<4> {
    let n: usize = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|i| (0.5 + 0.5 * noise(i, 1.0)) as f32).collect();
    Tensor::from_data(TensorData::new(values, shape), device)
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data()
        .try_into_vec::<f32>()
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect()
}

/// Elementwise within `rtol` of the reference, with a floor of `rtol` times its largest entry.
fn assert_close(got: &[f64], want: &[f64], rtol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= rtol * (w.abs() + scale),
            "{what}[{i}]: got {g}, want {w}"
        );
    }
}

fn numbers(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

#[test]
fn resnet18_and_resnet50_match_pytorch_in_both_batchnorm_modes() {
    let expected: Value = serde_json::from_str(EXPECTED).unwrap();
    for case in expected["cases"].as_array().unwrap() {
        let name = case["model"].as_str().unwrap();
        let (architecture, bottleneck, counts) = match name {
            "resnet18" => (Architecture::ResNet18, false, [2, 2, 2, 2]),
            _ => (Architecture::ResNet50, true, [3, 4, 6, 3]),
        };
        // ResNet-18's keys carry DataParallel's `module.` prefix (the whole model wrapped),
        // ResNet-50's none.
        let prefix = if bottleneck { "" } else { "module." };
        let keys: Vec<(String, Vec<usize>)> =
            reference_keys(bottleneck, counts, architecture.width())
                .into_iter()
                .map(|(k, shape)| (format!("{prefix}{k}"), shape))
                .collect();
        let dir = scratch();
        let path = dir.path().join(format!("{name}.safetensors"));
        write_formula_safetensors(&path, &keys);

        let device = Device::flex();
        let model: SupConModel =
            SupConModelConfig::new(EncoderConfig::new(architecture)).init(&device);
        let model = weights::load_reference_checkpoint(model, &path).unwrap();
        // Evaluation mode (running statistics): a device without autodiff.
        let x = formula_input([2, 3, 32, 32], &device);
        assert_close(
            &to_vec(model.encode(x.clone())),
            &numbers(&case["features_eval"]),
            1e-4,
            &format!("{name} eval features"),
        );
        assert_close(
            &to_vec(model.forward(x)),
            &numbers(&case["projection_eval"]),
            1e-4,
            &format!("{name} eval projection"),
        );
        // Training mode (batch statistics): the same model on an autodiff device.
        let train_device = device.autodiff();
        let model = model.to_device(&train_device);
        let x = formula_input([2, 3, 32, 32], &train_device);
        assert_close(
            &to_vec(model.encode(x.clone())),
            &numbers(&case["features_train"]),
            1e-4,
            &format!("{name} train features"),
        );
        let x = formula_input([2, 3, 32, 32], &train_device);
        assert_close(
            &to_vec(model.forward(x)),
            &numbers(&case["projection_train"]),
            1e-4,
            &format!("{name} train projection"),
        );
    }
}

fn small_model(in_channels: usize, device: &Device) -> SupConModel {
    SupConModelConfig::new(EncoderConfig::new(Architecture::Small).with_in_channels(in_channels))
        .with_feat_dim(32)
        .init(device)
}

#[test]
fn a_real_reference_checkpoint_loads_and_computes_the_same() {
    // torch.save({'opt', 'model', 'optimizer', 'epoch'}) with DataParallel's `module.` prefix.
    let expected: Value = serde_json::from_str(EXPECTED).unwrap();
    let device = Device::flex();
    let model = weights::load_reference_checkpoint(
        small_model(1, &device),
        golden("reference_small_ckpt.pth"),
    )
    .unwrap();
    let got = to_vec(model.forward(formula_input([2, 1, 28, 28], &device)));
    assert_close(
        &got,
        &numbers(&expected["small_checkpoint_projection_eval"]),
        1e-4,
        "small checkpoint",
    );
}

#[test]
fn the_encoder_alone_loads_from_a_reference_checkpoint() {
    let device = Device::flex();
    let ckpt = golden("reference_small_ckpt.pth");
    let whole = weights::load_reference_checkpoint(small_model(1, &device), &ckpt).unwrap();
    let encoder = EncoderConfig::new(Architecture::Small)
        .with_in_channels(1)
        .init(&device);
    let encoder = weights::load_reference_encoder(encoder, &ckpt).unwrap();
    let x = formula_input([2, 1, 28, 28], &device);
    assert_eq!(to_vec(encoder.forward(x.clone())), to_vec(whole.encode(x)));
    let resnet = EncoderConfig::new(Architecture::ResNet18).init(&device);
    let err = weights::load_reference_encoder(resnet, &ckpt).unwrap_err();
    assert!(matches!(err, WeightsError::Missing { .. }), "{err}");

    // A ResNet-18 encoder saved alone (`torch.save(model.encoder.state_dict())`): the same
    // tensors without the `encoder.` prefix load to the same encoder as the whole checkpoint's.
    let dir = scratch();
    let keys = reference_keys(false, [2, 2, 2, 2], 512);
    let (whole_path, alone_path) = (
        dir.path().join("whole.safetensors"),
        dir.path().join("alone.safetensors"),
    );
    write_formula_safetensors(&whole_path, &keys);
    let alone: Vec<(String, String, Vec<usize>)> = keys
        .iter()
        .filter_map(|(k, shape)| {
            let short = k.strip_prefix("encoder.")?;
            Some((short.to_string(), k.clone(), shape.clone()))
        })
        .collect();
    write_formula_safetensors_as(&alone_path, &alone);
    let resnet = || EncoderConfig::new(Architecture::ResNet18).init(&device);
    let from_whole = weights::load_reference_encoder(resnet(), &whole_path).unwrap();
    let from_alone = weights::load_reference_encoder(resnet(), &alone_path).unwrap();
    let x = formula_input([2, 3, 32, 32], &device);
    assert_eq!(
        to_vec(from_alone.forward(x.clone())),
        to_vec(from_whole.forward(x))
    );
    // Keys that fit neither way: the first error, naming the file's own keys.
    let err =
        weights::load_reference_encoder(small_model(1, &device).encoder, &alone_path).unwrap_err();
    assert!(
        err.to_string().contains("the file has") && err.to_string().contains("encoder."),
        "{err}"
    );
}

#[test]
fn checkpoints_of_other_architectures_are_refused_by_key() {
    let device = Device::flex();
    let ckpt = golden("reference_small_ckpt.pth");
    let resnet = SupConModelConfig::new(EncoderConfig::new(Architecture::ResNet18)).init(&device);
    let err = weights::load_reference_checkpoint(resnet, &ckpt).unwrap_err();
    assert!(matches!(err, WeightsError::Missing { .. }), "{err}");
    assert!(err.to_string().contains("encoder."), "{err}");

    let three_channels = small_model(3, &device);
    let err = weights::load_reference_checkpoint(three_channels, &ckpt).unwrap_err();
    assert!(matches!(err, WeightsError::Mismatch { .. }), "{err}");
    assert!(err.to_string().contains("convs.0"), "{err}");

    let missing = scratch().path().join("missing.pth");
    let err = weights::load_reference_checkpoint(small_model(1, &device), missing).unwrap_err();
    assert!(matches!(err, WeightsError::NotFound(_)), "{err}");

    // A file without any tensor (what a whole pickled module looks like to the reader).
    let dir = scratch();
    let empty = dir.path().join("empty.safetensors");
    let header = b"{}      ";
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    std::fs::write(&empty, bytes).unwrap();
    let err = weights::load_reference_checkpoint(small_model(1, &device), &empty).unwrap_err();
    assert!(matches!(err, WeightsError::NoTensors(_)), "{err}");
    assert!(err.to_string().contains("torch.save(model)"), "{err}");
}

#[test]
fn our_models_round_trip_through_burnpack_and_safetensors() {
    let device = Device::flex();
    let model = small_model(1, &device);
    let x = formula_input([2, 1, 28, 28], &device);
    let want = to_vec(model.forward(x.clone()));
    let dir = scratch();
    let burnpack = dir.path().join("model.bpk");
    weights::save_burnpack(&model, &burnpack).unwrap();
    let loaded = weights::load_burnpack(small_model(1, &device), &burnpack).unwrap();
    assert_eq!(to_vec(loaded.forward(x.clone())), want);
    let safetensors = dir.path().join("model.safetensors");
    weights::save_safetensors(&model, &safetensors).unwrap();
    let loaded = weights::load_safetensors(small_model(1, &device), &safetensors).unwrap();
    assert_eq!(to_vec(loaded.forward(x)), want);
    // Readable by others, as the burnpack file is (the safetensors writer leaves 600).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&safetensors), 0o644);
    }
    // A fresh model differs, so the loads did something.
    assert_ne!(
        to_vec(small_model(1, &device).forward(formula_input([2, 1, 28, 28], &device))),
        want
    );
}

/// Burn commits a running statistic's last update only when it is next read: a model saved
/// straight after a training step must still carry that step's BatchNorm statistics.
#[test]
fn a_model_saved_right_after_a_training_step_keeps_its_running_statistics() {
    let train = Device::flex().autodiff();
    let model = small_model(1, &train);
    let _ = model.forward(formula_input([4, 1, 28, 28], &train));
    let dir = scratch();
    let (burnpack, safetensors) = (
        dir.path().join("model.bpk"),
        dir.path().join("model.safetensors"),
    );
    weights::save_burnpack(&model, &burnpack).unwrap();
    weights::save_safetensors(&model, &safetensors).unwrap();
    let plain = Device::flex();
    let probe = formula_input([2, 1, 28, 28], &plain);
    let want = to_vec(model.valid().forward(probe.clone()));
    let fresh = to_vec(small_model(1, &plain).forward(probe.clone()));
    assert_ne!(want, fresh, "the step changed the statistics");
    let loaded = weights::load_burnpack(small_model(1, &plain), &burnpack).unwrap();
    assert_eq!(to_vec(loaded.forward(probe.clone())), want, "burnpack");
    let loaded = weights::load_safetensors(small_model(1, &plain), &safetensors).unwrap();
    assert_eq!(to_vec(loaded.forward(probe)), want, "safetensors");
}

/// `load_checkpoint` and `load_encoder` read both kinds of file: ours (burnpack, and
/// safetensors whose metadata names Burn) with our names, the reference's with its names; the
/// encoder comes out of a whole model's file and of an encoder saved alone.
#[test]
fn files_of_either_origin_load_through_one_call() {
    let device = Device::flex();
    let model = small_model(1, &device);
    let x = formula_input([2, 1, 28, 28], &device);
    let want = to_vec(model.forward(x.clone()));
    let want_encoder = to_vec(model.encode(x.clone()));
    let dir = scratch();
    let path = |name: &str| dir.path().join(name);
    weights::save_burnpack(&model, path("model.bpk")).unwrap();
    weights::save_safetensors(&model, path("model.safetensors")).unwrap();
    weights::save_safetensors(&model.encoder, path("encoder.safetensors")).unwrap();
    weights::save_burnpack(&model.encoder, path("encoder.bpk")).unwrap();
    let reference = golden("reference_small_ckpt.pth");
    for name in [
        "model.bpk",
        "model.safetensors",
        "encoder.safetensors",
        "encoder.bpk",
    ] {
        assert_eq!(
            WeightsOrigin::of(path(name)).unwrap(),
            WeightsOrigin::Burn,
            "{name}"
        );
        let encoder = EncoderConfig::new(Architecture::Small)
            .with_in_channels(1)
            .init(&device);
        let encoder = weights::load_encoder(encoder, path(name)).unwrap();
        assert_eq!(to_vec(encoder.forward(x.clone())), want_encoder, "{name}");
    }
    for name in ["model.bpk", "model.safetensors"] {
        let loaded = weights::load_checkpoint(small_model(1, &device), path(name)).unwrap();
        assert_eq!(to_vec(loaded.forward(x.clone())), want, "{name}");
    }
    // The reference's files, `.pth` or a safetensors file PyTorch wrote (no Burn metadata).
    assert_eq!(
        WeightsOrigin::of(&reference).unwrap(),
        WeightsOrigin::Reference
    );
    let keys = reference_keys(false, [2, 2, 2, 2], 512);
    write_formula_safetensors(&path("torch.safetensors"), &keys);
    assert_eq!(
        WeightsOrigin::of(path("torch.safetensors")).unwrap(),
        WeightsOrigin::Reference
    );
    let via_any = weights::load_checkpoint(small_model(1, &device), &reference).unwrap();
    let via_reference = weights::load_reference_checkpoint(small_model(1, &device), &reference);
    assert_eq!(
        to_vec(via_any.forward(x.clone())),
        to_vec(via_reference.unwrap().forward(x.clone()))
    );
    // Our encoder's file is not a whole model: the missing keys and the file's own are named.
    let err =
        weights::load_checkpoint(small_model(1, &device), path("encoder.safetensors")).unwrap_err();
    assert!(matches!(err, WeightsError::Missing { .. }), "{err}");
    assert!(err.to_string().contains("`encoder."), "{err}");
    assert!(err.to_string().contains("`Small.convs"), "{err}");
    // A file that is not safetensors at all, and one that is not there.
    std::fs::write(
        path("junk.safetensors"),
        b"\xff\xff\xff\xff\xff\xff\xff\x7fjunk",
    )
    .unwrap();
    let err = WeightsOrigin::of(path("junk.safetensors")).unwrap_err();
    assert!(err.to_string().contains("not a safetensors file"), "{err}");
    std::fs::write(path("short.safetensors"), b"{}").unwrap();
    let err = WeightsOrigin::of(path("short.safetensors")).unwrap_err();
    assert!(err.to_string().contains("not a safetensors file"), "{err}");
    let err = WeightsOrigin::of(path("absent.bpk")).unwrap_err();
    assert!(matches!(err, WeightsError::NotFound(_)), "{err}");
}

/// Text metadata saved with a model comes back from `read_metadata`, beside Burn's own, in
/// either format; a burnpack file saved under a name without `.bpk` is written exactly there
/// and still recognised (by its magic number); PyTorch's files have no metadata.
#[test]
fn metadata_saved_with_a_model_reads_back() {
    let device = Device::flex();
    let model = small_model(1, &device);
    let x = formula_input([2, 1, 28, 28], &device);
    let want = to_vec(model.forward(x.clone()));
    let dir = scratch();
    let path = |name: &str| dir.path().join(name);
    let metadata = BTreeMap::from([
        (
            "supcon.config".to_string(),
            "[model]\narchitecture = \"small\"\n".to_string(),
        ),
        ("note".to_string(), "α, with \"quotes\"".to_string()),
    ]);
    weights::save_safetensors_with_metadata(&model, path("model.safetensors"), &metadata).unwrap();
    weights::save_burnpack_with_metadata(&model, path("model-pack"), &metadata).unwrap();
    assert!(path("model-pack").is_file() && !path("model-pack.bpk").exists());
    for name in ["model.safetensors", "model-pack"] {
        let read = weights::read_metadata(path(name)).unwrap();
        for (key, value) in &metadata {
            assert_eq!(read.get(key), Some(value), "{name}: {key}");
        }
        assert_eq!(
            read.get("producer").map(String::as_str),
            Some("burn"),
            "{name}"
        );
        assert_eq!(WeightsOrigin::of(path(name)).unwrap(), WeightsOrigin::Burn);
        let loaded = weights::load_checkpoint(small_model(1, &device), path(name)).unwrap();
        assert_eq!(to_vec(loaded.forward(x.clone())), want, "{name}");
    }
    // Saved without any: Burn's own keys alone.
    weights::save_burnpack(&model, path("plain.bpk")).unwrap();
    let read = weights::read_metadata(path("plain.bpk")).unwrap();
    assert!(!read.contains_key("supcon.config"), "{read:?}");
    assert_eq!(read.get("format").map(String::as_str), Some("burnpack"));
    assert!(
        weights::read_metadata(golden("reference_small_ckpt.pth"))
            .unwrap()
            .is_empty()
    );
    let err = weights::read_metadata(path("absent.safetensors")).unwrap_err();
    assert!(matches!(err, WeightsError::NotFound(_)), "{err}");
    std::fs::write(path("junk.bpk"), b"NRUB not really").unwrap();
    let err = weights::read_metadata(path("junk.bpk")).unwrap_err();
    assert!(matches!(err, WeightsError::Store { .. }), "{err}");
}

/// The safetensors file at `path` holds exactly `keys`, each of its shape in float32 with the
/// formula's values.
fn assert_formula_state_dict(path: &Path, keys: &[(String, Vec<usize>)], what: &str) {
    let bytes = std::fs::read(path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = file.names().into_iter().map(String::from).collect();
    names.sort();
    let mut want: Vec<String> = keys.iter().map(|(k, _)| k.clone()).collect();
    want.sort();
    assert_eq!(names, want, "{what}");
    for (key, shape) in keys {
        let tensor = file.tensor(key).unwrap();
        assert_eq!(tensor.shape(), shape.as_slice(), "{what}: {key}");
        assert_eq!(tensor.dtype(), safetensors::Dtype::F32, "{what}: {key}");
        let values: Vec<f32> = tensor
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert!(values == formula(key, shape), "{what}: {key}");
    }
}

/// A model saved with PyTorch's names holds exactly the reference's state dict (less
/// `num_batches_tracked`): every key, shape and value of the checkpoint it was loaded from, so
/// `load_state_dict` takes it; it reads back as the reference's; a linear head is `head.*`.
#[test]
fn pytorch_names_give_back_the_reference_state_dict() {
    let device = Device::flex();
    for (architecture, bottleneck, counts) in [
        (Architecture::ResNet18, false, [2, 2, 2, 2]),
        (Architecture::ResNet50, true, [3, 4, 6, 3]),
    ] {
        let keys = reference_keys(bottleneck, counts, architecture.width());
        let dir = scratch();
        let source = dir.path().join("reference.safetensors");
        write_formula_safetensors(&source, &keys);
        let model = SupConModelConfig::new(EncoderConfig::new(architecture)).init(&device);
        let model = weights::load_reference_checkpoint(model, &source).unwrap();
        let written = dir.path().join("pytorch.safetensors");
        let metadata = BTreeMap::from([("supcon.config".to_string(), "seed = 1\n".to_string())]);
        weights::save_pytorch_safetensors(&model, &written, &metadata).unwrap();
        assert_formula_state_dict(&written, &keys, &architecture.to_string());
        let read = weights::read_metadata(&written).unwrap();
        assert_eq!(read.get("format").map(String::as_str), Some("pt"));
        assert_eq!(read.get("supcon.config"), metadata.get("supcon.config"));
        assert!(!read.contains_key("producer"), "{read:?}");
        assert_eq!(
            WeightsOrigin::of(&written).unwrap(),
            WeightsOrigin::Reference
        );
    }
    // A linear head, as the reference's `head='linear'`.
    let model = SupConModelConfig::new(EncoderConfig::new(Architecture::ResNet18))
        .with_head(supcon_head::HeadKind::Linear)
        .init(&device);
    let dir = scratch();
    let written = dir.path().join("linear.safetensors");
    weights::save_pytorch_safetensors(&model, &written, &BTreeMap::new()).unwrap();
    let bytes = std::fs::read(&written).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(file.tensor("head.weight").unwrap().shape(), [128, 512]);
    assert_eq!(file.tensor("head.bias").unwrap().shape(), [128]);
    let x = formula_input([2, 3, 16, 16], &device);
    let fresh = SupConModelConfig::new(EncoderConfig::new(Architecture::ResNet18))
        .with_head(supcon_head::HeadKind::Linear)
        .init(&device);
    let loaded = weights::load_reference_checkpoint(fresh, &written).unwrap();
    assert_eq!(to_vec(loaded.forward(x.clone())), to_vec(model.forward(x)));
    // google-research's head, with BatchNorm after its hidden layer: `head.norm.*`, in
    // PyTorch's names, and back.
    let normed = || {
        SupConModelConfig::new(EncoderConfig::new(Architecture::Small).with_in_channels(1))
            .with_head_batch_norm(true)
            .init(&device)
    };
    let model = normed();
    let written = dir.path().join("normed.safetensors");
    weights::save_pytorch_safetensors(&model, &written, &BTreeMap::new()).unwrap();
    let bytes = std::fs::read(&written).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    for key in [
        "head.norm.weight",
        "head.norm.bias",
        "head.norm.running_var",
    ] {
        assert_eq!(file.tensor(key).unwrap().shape(), [128], "{key}");
    }
    let x = formula_input([2, 1, 12, 12], &device);
    let loaded = weights::load_reference_checkpoint(normed(), &written).unwrap();
    assert_eq!(to_vec(loaded.forward(x.clone())), to_vec(model.forward(x)));
}

/// The keys of a wrapped model load as the plain keys do: `torch.compile`'s (`_orig_mod.`, around
/// the whole model or the encoder, with or without DataParallel's `module.`), and a wrapper's
/// attributes before the model (PyTorch Lightning's `model.`, or deeper).
#[test]
fn keys_of_a_wrapped_model_load() {
    let device = Device::flex();
    let keys = reference_keys(false, [2, 2, 2, 2], 512);
    let dir = scratch();
    let model = || SupConModelConfig::new(EncoderConfig::new(Architecture::ResNet18)).init(&device);
    let x = formula_input([2, 3, 16, 16], &device);
    let plain = dir.path().join("plain.safetensors");
    write_formula_safetensors(&plain, &keys);
    let want = to_vec(
        weights::load_reference_checkpoint(model(), &plain)
            .unwrap()
            .forward(x.clone()),
    );
    type Rename = fn(&str) -> String;
    let renamings: [(&str, Rename); 5] = [
        ("whole model", |k| format!("_orig_mod.{k}")),
        ("encoder", |k| {
            k.replacen("encoder.", "encoder._orig_mod.", 1)
        }),
        ("DataParallel", |k| format!("module._orig_mod.{k}")),
        ("Lightning", |k| format!("model.{k}")),
        ("nested wrapper", |k| format!("trainer.net_2.module.{k}")),
    ];
    for (what, rename) in renamings {
        let renamed: Vec<(String, String, Vec<usize>)> = keys
            .iter()
            .map(|(k, shape)| (rename(k), k.clone(), shape.clone()))
            .collect();
        let path = dir.path().join("compiled.safetensors");
        write_formula_safetensors_as(&path, &renamed);
        let loaded = weights::load_reference_checkpoint(model(), &path)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(to_vec(loaded.forward(x.clone())), want, "{what}");
    }
}

/// A checkpoint of the reference's `main_ce.py` (`SupCEResNet`: `encoder.*` and the classifier
/// `fc.*`, the whole network under DataParallel's `module.`) loads through
/// `weights::load_cross_entropy_net`, its number of classes read from the file: its logits are
/// the encoder's features times the file's `fc.weight` (PyTorch's `[classes, width]`, applied
/// here by hand) plus `fc.bias`; saved with PyTorch's names it gives back exactly the file's
/// state dict, and its encoder loads alone; files without a classifier, or with one of another
/// width, are refused.
#[test]
fn a_cross_entropy_checkpoint_of_the_reference_loads_and_goes_back() {
    let device = Device::flex();
    let classes = 10;
    let mut keys: Vec<(String, Vec<usize>)> = reference_keys(false, [2, 2, 2, 2], 512)
        .into_iter()
        .filter(|(k, _)| k.starts_with("encoder."))
        .collect();
    keys.push(("fc.weight".into(), vec![classes, 512]));
    keys.push(("fc.bias".into(), vec![classes]));
    let parallel: Vec<(String, Vec<usize>)> = keys
        .iter()
        .map(|(k, shape)| (format!("module.{k}"), shape.clone()))
        .collect();
    let dir = scratch();
    let source = dir.path().join("ce.safetensors");
    write_formula_safetensors(&source, &parallel);
    let encoder = || EncoderConfig::new(Architecture::ResNet18).init(&device);
    // The number of classes comes from the file.
    let loaded = weights::load_cross_entropy_net(encoder(), &source, &device).unwrap();
    assert_eq!(loaded.fc.weight.dims(), [512, classes]);
    let x = formula_input([2, 3, 16, 16], &device);
    let features = to_vec(loaded.encoder.forward(x.clone()));
    let weight = formula("fc.weight", &[classes, 512]);
    let bias = formula("fc.bias", &[classes]);
    let want: Vec<f64> = (0..2)
        .flat_map(|b| {
            let (features, weight, bias) = (&features, &weight, &bias);
            (0..classes).map(move |c| {
                f64::from(bias[c])
                    + (0..512)
                        .map(|i| features[b * 512 + i] * f64::from(weight[c * 512 + i]))
                        .sum::<f64>()
            })
        })
        .collect();
    assert_close(&to_vec(loaded.forward(x.clone())), &want, 1e-5, "logits");
    // The encoder is the one a SupCon checkpoint with the same `encoder.*` gives.
    let supcon = dir.path().join("supcon.safetensors");
    write_formula_safetensors(&supcon, &reference_keys(false, [2, 2, 2, 2], 512));
    let model = SupConModelConfig::new(EncoderConfig::new(Architecture::ResNet18)).init(&device);
    let model = weights::load_reference_checkpoint(model, &supcon).unwrap();
    assert_eq!(to_vec(model.encoder.forward(x.clone())), features);

    let written = dir.path().join("pytorch.safetensors");
    weights::save_pytorch_safetensors(&loaded, &written, &BTreeMap::new()).unwrap();
    assert_formula_state_dict(&written, &keys, "SupCEResNet");
    let encoder_alone = weights::load_reference_encoder(encoder(), &written).unwrap();
    assert_eq!(to_vec(encoder_alone.forward(x.clone())), features);
    // Our own files of it, and that one, load back whole, classes and all.
    let logits = to_vec(loaded.forward(x.clone()));
    let ours_bpk = dir.path().join("ce.bpk");
    weights::save_burnpack(&loaded, &ours_bpk).unwrap();
    let ours_safetensors = dir.path().join("ours.safetensors");
    weights::save_safetensors(&loaded, &ours_safetensors).unwrap();
    for path in [&ours_bpk, &ours_safetensors, &written] {
        let net = weights::load_cross_entropy_net(encoder(), path, &device).unwrap();
        assert_eq!(to_vec(net.forward(x.clone())), logits, "{}", path.display());
    }
    // A file without a classifier (a SupCon checkpoint) is refused, naming `fc.weight`.
    let err = weights::load_cross_entropy_net(encoder(), &supcon, &device).unwrap_err();
    assert!(
        matches!(&err, WeightsError::Missing { keys, .. } if keys == &["fc.weight"]),
        "{err}"
    );
    // A classifier of another width than the encoder's is refused by shape.
    let mut narrow_keys = parallel.clone();
    narrow_keys.retain(|(k, _)| !k.starts_with("module.fc."));
    narrow_keys.push(("module.fc.weight".into(), vec![classes, 256]));
    narrow_keys.push(("module.fc.bias".into(), vec![classes]));
    let narrow = dir.path().join("narrow.safetensors");
    write_formula_safetensors(&narrow, &narrow_keys);
    let err = weights::load_cross_entropy_net(encoder(), &narrow, &device).unwrap_err();
    assert!(
        matches!(&err, WeightsError::Mismatch { key, .. } if key == "fc.weight"),
        "{err}"
    );
}
