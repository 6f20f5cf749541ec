"""torchvision's CPU speed on the SupCon recipe, for comparison with supcon-augment.

Two views of 256 random 3x32x32 images with the reference's transforms (main_supcon.py:
RandomResizedCrop(32, scale=(0.2, 1)), RandomHorizontalFlip, RandomApply(ColorJitter(0.4, 0.4,
0.4, 0.1), p=0.8), RandomGrayscale(p=0.2), ToTensor, Normalize), image by image on PIL images as
a DataLoader worker does, and the same recipe with torchvision.transforms.v2 on uint8 tensors.
Prints one JSON line: median seconds per 512 views for each.
"""

import json
import statistics
import sys
import time

import numpy as np
import torch
from PIL import Image
from torchvision import transforms
from torchvision.transforms import v2

BATCH, VIEWS, REPEATS = 256, 2, 10
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)


def recipe(t):
    return t.Compose([
        t.RandomResizedCrop(size=32, scale=(0.2, 1.0)),
        t.RandomHorizontalFlip(),
        t.RandomApply([t.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        t.RandomGrayscale(p=0.2),
    ])


def timed(fn):
    fn()
    runs = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return {"median_s": statistics.median(runs), "min_s": min(runs), "max_s": max(runs)}


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    arrays = rng.integers(0, 256, size=(BATCH, 32, 32, 3), dtype=np.uint8)
    pil = [Image.fromarray(a) for a in arrays]
    v1 = transforms.Compose([recipe(transforms), transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    tensors = [torch.from_numpy(a).permute(2, 0, 1).contiguous() for a in arrays]
    v2_recipe = v2.Compose([recipe(v2), v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)])

    def run_pil():
        torch.stack([v1(img) for _ in range(VIEWS) for img in pil])

    def run_v2():
        torch.stack([v2_recipe(t) for _ in range(VIEWS) for t in tensors])

    print(json.dumps({"threads": threads, "views": BATCH * VIEWS, "pil": timed(run_pil), "tensor_v2": timed(run_v2)}))


if __name__ == "__main__":
    main()
