"""Writes tiny CIFAR batches in the Python version's format, pickled by Python 3 at protocols 2
to 5 (the published files were pickled by Python 2; supcon-data's tests build that layout
themselves).

NumPy pickles a `uint8` array differently at each protocol: `_reconstruct` with its bytes as
`_codecs.encode(text, 'latin1')` at protocol 2, as bytes at 3 and 4, and `_frombuffer` with a
bytearray at 5. Each folder `p<N>/` holds `cifar-10-batches-py/{test_batch, batches.meta}` and
`cifar-100-python/{test, meta}`, two images each; supcon-data's test `readers.rs` reads them and
checks every pixel, label and class name against the same formulas.

    python xtask/python/cifar_pickles.py assets/golden/cifar_pickles
"""
import pickle
import sys
from pathlib import Path

import numpy as np


def pixels(images: int) -> np.ndarray:
    # Image i, byte j: every value 0..255 occurs (latin1 characters past 127 included).
    i, j = np.meshgrid(np.arange(images), np.arange(3072), indexing="ij")
    return ((j * 31 + i * 17) % 256).astype(np.uint8)


def main(out: Path) -> None:
    for protocol in (2, 3, 4, 5):
        c10 = out / f"p{protocol}" / "cifar-10-batches-py"
        c100 = out / f"p{protocol}" / "cifar-100-python"
        c10.mkdir(parents=True, exist_ok=True)
        c100.mkdir(parents=True, exist_ok=True)
        files = {
            c10 / "test_batch": {
                "batch_label": "testing batch 1 of 1",
                "labels": [3, 9],
                "data": pixels(2),
                "filenames": ["a.png", "b.png"],
            },
            c10 / "batches.meta": {
                "label_names": [f"name{c}" for c in range(10)],
                "num_cases_per_batch": 2,
                "num_vis": 3072,
            },
            c100 / "test": {
                "filenames": ["a.png", "b.png"],
                "batch_label": "testing batch 1 of 1",
                "fine_labels": [99, 0],
                "coarse_labels": [19, 4],
                "data": pixels(2),
            },
            c100 / "meta": {
                "fine_label_names": [f"fine{c}" for c in range(100)],
                "coarse_label_names": [f"coarse{c}" for c in range(20)],
            },
        }
        for path, value in files.items():
            with open(path, "wb") as f:
                pickle.dump(value, f, protocol=protocol)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
