"""Statistics of torchvision's RandomResizedCrop parameter sampler, for the supcon-augment test
that checks our sampler against it.

For each image shape, draws `DRAWS` boxes with
`torchvision.transforms.RandomResizedCrop.get_params(img, scale, ratio)` and records the mean and
standard deviation of the box height, width, top and left, and how often the central fallback
was taken. Run with `cargo xtask golden` (needs torch and torchvision); writes
assets/golden/crop_stats.json.
"""

import json
import sys

import torch
import torchvision
from torchvision.transforms import RandomResizedCrop

DRAWS = 100_000
CASES = [
    # (height, width, scale, ratio)
    (32, 32, (0.2, 1.0), (3 / 4, 4 / 3)),
    (28, 28, (0.2, 1.0), (3 / 4, 4 / 3)),
    (48, 64, (0.08, 1.0), (3 / 4, 4 / 3)),
    (10, 100, (0.5, 1.0), (3 / 4, 4 / 3)),  # mostly the fallback
]


def stats(values):
    t = torch.tensor(values, dtype=torch.float64)
    return {"mean": t.mean().item(), "std": t.std().item()}


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "assets/golden/crop_stats.json"
    torch.manual_seed(0)
    out = []
    for height, width, scale, ratio in CASES:
        image = torch.zeros(1, height, width)
        boxes = [RandomResizedCrop.get_params(image, list(scale), list(ratio)) for _ in range(DRAWS)]
        top, left, h, w = zip(*boxes)
        in_ratio = width / height
        if in_ratio < min(ratio):
            fw, fh = width, int(round(width / min(ratio)))
        elif in_ratio > max(ratio):
            fh, fw = height, int(round(height * max(ratio)))
        else:
            fw, fh = width, height
        fallback = (height - fh) // 2, (width - fw) // 2, fh, fw
        out.append({
            "height": height, "width": width, "scale": list(scale), "ratio": list(ratio),
            "draws": DRAWS,
            "top": stats(top), "left": stats(left), "box_height": stats(h), "box_width": stats(w),
            "fallback_fraction": sum(1 for b in boxes if tuple(b) == fallback) / DRAWS,
        })
    data = {"generator": "xtask/python/crop_stats.py", "torchvision": torchvision.__version__, "cases": out}
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
    print(f"wrote {len(out)} cases to {path}")


if __name__ == "__main__":
    main()
