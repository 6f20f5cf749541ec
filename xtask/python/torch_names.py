"""Writes tiny `torch.save` checkpoints under file names of many lengths.

PyTorch names the folder inside its zip archive after the file's stem, so the archive's layout
(and, for one length, the way the `zip` crate reads it) depends on the name's length. Each file
holds {'model': {'x': [n, n + 0.5, -1]}} for a stem of n characters; supcon-head's test
`torch_names.rs` loads every one and checks the values. Two more are in PyTorch's legacy format
(before 1.6, or `_use_new_zipfile_serialization=False`: a bare pickle stream, no archive), one
of them tagged `cuda:0` as saved from a GPU: the format of older SupContrast checkpoints. One
keeps its state dict under 'state_dict' instead, and one (`lightning_epoch3.ckpt`) there amid the
rest of a PyTorch Lightning checkpoint. Beside the folder, `config_object*.pth` keep a dict
subclass (EasyDict) that burn-store's reader cannot rebuild (see `write_config_object`).

    python xtask/python/torch_names.py assets/golden/torch_names
"""
import sys
from pathlib import Path

import torch

# 21 is the length that `zip` 9.x misread (`supcon_resnet50_e1000.pth`); its neighbours and a
# spread of others.
LENGTHS = [1, 5, 8, 12, 16, 19, 20, 21, 22, 23, 30, 40, 64]


def stem(n: int) -> str:
    base = "supcon_resnet50_e1000"
    return base if n == len(base) else ("c" * n if n < len(base) else base + "_" + "x" * (n - len(base) - 1))


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for n in LENGTHS:
        name = stem(n)
        assert len(name) == n, (n, name)
        x = torch.tensor([float(n), n + 0.5, -1.0])
        torch.save({"model": {"x": x}}, out / f"{name}.pth")
    for name, location in [("legacy_e1000", "cpu"), ("legacy_cuda_e1000", "cuda:0")]:
        n = len(name)
        x = torch.tensor([float(n), n + 0.5, -1.0])
        location_tag = torch.serialization.location_tag
        torch.serialization.location_tag = lambda storage: location
        try:
            torch.save({"model": {"x": x}}, out / f"{name}.pth", _use_new_zipfile_serialization=False)
        finally:
            torch.serialization.location_tag = location_tag
    # The state dict under 'state_dict' (PyTorch Lightning's and many scripts' key), not 'model'.
    n = len("state_dict_key")
    torch.save({"state_dict": {"x": torch.tensor([float(n), n + 0.5, -1.0])}, "epoch": 3}, out / "state_dict_key.pth")
    write_lightning_like(out / "lightning_epoch3.ckpt")
    write_config_object(out.parent)
    print(f"wrote {len(LENGTHS) + 4} checkpoints with torch {torch.__version__} to {out}, and config_object*.pth beside it")


def write_lightning_like(path: Path) -> None:
    """A checkpoint laid out as PyTorch Lightning's `Trainer.save_checkpoint` writes one: the
    state dict under 'state_dict' beside the loops' and callbacks' states, the optimizer's, and
    the hyper-parameters (a plain dict, as Lightning stores `dict(model.hparams)`)."""
    n = len(path.stem)
    x = torch.nn.Parameter(torch.tensor([float(n), n + 0.5, -1.0]))
    optimizer = torch.optim.SGD([x], lr=0.05, momentum=0.9)
    x.grad = torch.ones(3)
    optimizer.step()
    with torch.no_grad():
        x.copy_(torch.tensor([float(n), n + 0.5, -1.0]))
    checkpoint = {
        "epoch": 3,
        "global_step": 120,
        "pytorch-lightning_version": "2.4.0",
        "state_dict": {"x": x.detach().clone()},
        "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 4, "completed": 3}}}},
        "callbacks": {"ModelCheckpoint{'monitor': 'val_loss', 'mode': 'min'}": {"best_model_score": torch.tensor(0.25)}},
        "optimizer_states": [optimizer.state_dict()],
        "lr_schedulers": [],
        "hparams_name": "kwargs",
        "hyper_parameters": {"model": "resnet50", "temp": 0.1, "lr_decay_epochs": [700, 800, 900]},
    }
    torch.save(checkpoint, path)


def write_config_object(folder: Path) -> None:
    """Checkpoints that keep their configuration as a dict subclass (EasyDict, as much research
    code does), which burn-store's reader cannot rebuild. `config_object.pth` is read by
    supcon's own pickle reader instead; its state dict has tensors laid out as `torch.save`
    keeps views (transposed, at an offset into a storage another tensor shares) and of several
    types, which the tests work out from the formulas here:

        base = arange(12) / 4 (float32)
        x = [1, 2, 3]; w = base[:6].view(2, 3).t() (a Parameter); b = base[7:10]
        h = [0.5, -2] (float64); half = [1.5, -3] (bfloat16); steps = 5 (int64, no dimension)

    `config_object_legacy.pth` holds the same in PyTorch's format before 1.6, and
    `config_object_quantized.pth` a quantised tensor as well, which that reader does not
    rebuild: it is refused, saying what to do. The class is made here under EasyDict's module
    name (with its entries as attributes too, as EasyDict keeps them), so that neither easydict
    nor this script is needed to read the files."""
    import types

    module = types.ModuleType("easydict")

    class EasyDict(dict):
        pass

    EasyDict.__module__, EasyDict.__qualname__ = "easydict", "EasyDict"
    module.EasyDict = EasyDict
    sys.modules["easydict"] = module
    config = EasyDict(model="resnet50", temp=0.1)
    config.__dict__.update(config)
    base = torch.arange(12, dtype=torch.float32) / 4
    state = {
        "x": torch.tensor([1.0, 2.0, 3.0]),
        "w": torch.nn.Parameter(base[:6].view(2, 3).t()),
        "b": base[7:10],
        "h": torch.tensor([0.5, -2.0], dtype=torch.float64),
        "half": torch.tensor([1.5, -3.0], dtype=torch.bfloat16),
        "steps": torch.tensor(5),
    }
    assert not state["w"].is_contiguous() and state["b"].storage_offset() == 7
    checkpoint = {"config": config, "model": state, "optimizer": {"state": {}, "param_groups": [{"lr": 0.1}]}, "epoch": 3}
    torch.save(checkpoint, folder / "config_object.pth")
    torch.save(checkpoint, folder / "config_object_legacy.pth", _use_new_zipfile_serialization=False)
    state["q"] = torch.quantize_per_tensor(torch.tensor([1.0, 2.0]), 0.5, 0, torch.quint8)
    torch.save(checkpoint, folder / "config_object_quantized.pth")

if __name__ == "__main__":
    main()
