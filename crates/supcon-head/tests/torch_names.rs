//! Every `torch.save` file opens, whatever the length of its name: PyTorch names the folder
//! inside its zip archive after the file's stem, and with a 21-character stem the `zip` crate
//! under burn-store misread the archive ("Invalid Central Directory header"). The files in
//! `assets/golden/torch_names/` were written by PyTorch (`xtask/python/torch_names.py`), each
//! holding `{'model': {'x': [n, n + 0.5, -1]}}` for a stem of `n` characters; two of them
//! (`legacy_*`) in PyTorch's format before 1.6, a bare pickle stream, one tagged `cuda:0`; one
//! (`state_dict_key`) with its state dict under `'state_dict'` rather than `'model'`, and one
//! (`lightning_epoch3.ckpt`) there amid the rest of a PyTorch Lightning checkpoint (loops,
//! callbacks, the optimizer's state, the hyper-parameters as a plain dict, as Lightning saves them).

use std::path::Path;

use burn::module::Param;
use burn::prelude::*;
use supcon_head::weights;

#[derive(Module, Debug)]
struct Tiny {
    x: Param<Tensor<1>>,
}

#[test]
fn checkpoints_open_under_every_name_length() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/golden/torch_names");
    let device = Device::flex();
    let (mut lengths, mut legacy) = (Vec::new(), 0);
    let (mut under_state_dict, mut lightning) = (false, false);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let n = path.file_stem().unwrap().len();
        let empty = Tiny {
            x: Param::from_tensor(Tensor::zeros([3], &device)),
        };
        let loaded = weights::load_reference_checkpoint(empty, &path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let x = loaded.x.val().into_data().try_into_vec::<f32>().unwrap();
        assert_eq!(x, [n as f32, n as f32 + 0.5, -1.0], "{}", path.display());
        lengths.push(n);
        under_state_dict |= path.file_stem().unwrap() == "state_dict_key";
        lightning |= path.file_name().unwrap() == "lightning_epoch3.ckpt";
        let mut magic = [0u8; 2];
        std::io::Read::read_exact(&mut std::fs::File::open(&path).unwrap(), &mut magic).unwrap();
        legacy += usize::from(magic != *b"PK");
    }
    assert_eq!(
        legacy, 2,
        "the legacy-format files (no zip archive) are covered"
    );
    assert!(
        under_state_dict,
        "a state dict under 'state_dict' is covered"
    );
    assert!(lightning, "a PyTorch Lightning checkpoint is covered");
    lengths.sort();
    assert!(
        lengths.contains(&21),
        "the length that was misread is covered: {lengths:?}"
    );
    assert!(lengths.len() >= 10, "{lengths:?}");
}

/// Three of the tensors of `config_object.pth` (`xtask/python/torch_names.py`).
#[derive(Module, Debug)]
struct Views {
    x: Param<Tensor<1>>,
    w: Param<Tensor<2>>,
    b: Param<Tensor<1>>,
}

/// A checkpoint holding a Python object that burn-store's reader cannot rebuild (a
/// configuration kept as a dict subclass, EasyDict, beside the state dict) loads all the same,
/// in either of `torch.save`'s formats, through supcon's own pickle reader: a transposed tensor
/// and one at an offset into a storage it shares come out as PyTorch sees them. With a tensor
/// that reader does not rebuild either (a quantised one), it is refused with what to do.
#[test]
fn a_checkpoint_holding_an_object_burn_store_cannot_rebuild_loads() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/golden");
    let device = Device::flex();
    let empty = || Views {
        x: Param::from_tensor(Tensor::zeros([3], &device)),
        w: Param::from_tensor(Tensor::zeros([3, 2], &device)),
        b: Param::from_tensor(Tensor::zeros([3], &device)),
    };
    let values = |t: Tensor<1>| t.into_data().try_into_vec::<f32>().unwrap();
    // base = arange(12) / 4; w = base[:6].view(2, 3).t(); b = base[7:10].
    let base = |i: usize| i as f32 / 4.0;
    let w: Vec<f32> = (0..3)
        .flat_map(|row| (0..2).map(move |col| base(col * 3 + row)))
        .collect();
    for name in ["config_object.pth", "config_object_legacy.pth"] {
        let loaded = weights::load_reference_checkpoint(empty(), golden.join(name))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(values(loaded.x.val()), [1.0, 2.0, 3.0], "{name}");
        assert_eq!(values(loaded.w.val().flatten(0, 1)), w, "{name}");
        assert_eq!(
            values(loaded.b.val()),
            [base(7), base(8), base(9)],
            "{name}"
        );
    }

    let error =
        weights::load_reference_checkpoint(empty(), golden.join("config_object_quantized.pth"))
            .unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, weights::WeightsError::Store { .. }),
        "{message}"
    );
    assert!(message.contains("EasyDict"), "{message}");
    assert!(message.contains("_rebuild_qtensor"), "{message}");
    assert!(
        message.contains("torch.save(checkpoint['model']"),
        "{message}"
    );
}
