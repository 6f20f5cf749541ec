"""Writes tiny `torch.save` checkpoints under file names of many lengths.

PyTorch names the folder inside its zip archive after the file's stem, so the archive's layout
(and, for one length, the way the `zip` crate reads it) depends on the name's length. Each file
holds {'model': {'x': [n, n + 0.5, -1]}} for a stem of n characters; supcon-head's test
`torch_names.rs` loads every one and checks the values. Two more are in PyTorch's legacy format
(before 1.6, or `_use_new_zipfile_serialization=False`: a bare pickle stream, no archive), one
of them tagged `cuda:0` as saved from a GPU: the format of older SupContrast checkpoints. One
keeps its state dict under 'state_dict' instead.

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
    print(f"wrote {len(LENGTHS) + 3} checkpoints with torch {torch.__version__} to {out}")


if __name__ == "__main__":
    main()
