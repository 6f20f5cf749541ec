"""PyTorch side of `cargo xtask bench`: the same workloads as xtask/src/bench.rs, on the CPU
with as many threads as the Rust side uses (or, with --device cuda, the tensors and models on
the GPU; the augmentation stays on PIL images on the CPU, as the reference's data loader does it).
Prints one JSON object:
{"torch": version, "threads": n, "device": name, "autocast": "none"|"bf16"|"f16",
 "tf32": {"matmul": bool, "cudnn": bool}, "figures": [{"key", "median_s", "min_s", "max_s"}, ...]}.

--autocast bf16|f16 runs the training steps as PyTorch's automatic mixed precision does: the
forward and the loss under torch.autocast, the backward and the optimiser step outside it (f16
with a GradScaler, as f16 AMP needs). The loss-only workloads stay float32, as ours always
compute the loss. --tf32 on|off sets PyTorch's TF32 use for float32 matrix products and cuDNN
convolutions (default: PyTorch's own defaults, which the output states). --only KEY runs one
workload (`cargo xtask bench` calls it once per workload, right after our side of it).

The augmentation follows the reference (main_supcon.py): torchvision transforms on PIL images,
one image at a time. The models are the parity-test definitions of encoder_parity.py.
"""

import argparse
import contextlib
import json
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from encoder_parity import Basic, Net, SmallRef, SupCon  # noqa: E402

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)


def supcon_loss(features, labels, temperature=0.1, base_temperature=0.07):
    """Eq. 2 of the paper (L_out), contrast mode `all`, as the reference computes it."""
    batch, views, _ = features.shape
    contrast = torch.cat(torch.unbind(features, dim=1), dim=0)
    logits = contrast @ contrast.T / temperature
    logits = logits - logits.max(dim=1, keepdim=True).values.detach()
    labels = labels.view(-1, 1)
    mask = torch.eq(labels, labels.T).float().repeat(views, views)
    not_self = 1.0 - torch.eye(batch * views, device=features.device)
    mask = mask * not_self
    exp = torch.exp(logits) * not_self
    log_prob = logits - torch.log(exp.sum(1, keepdim=True))
    mean_log_prob = (mask * log_prob).sum(1) / mask.sum(1).clamp(min=1)
    return -(temperature / base_temperature) * mean_log_prob.mean()


def synchronize():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, repeats, warmup=2):
    for _ in range(warmup):
        fn()
    synchronize()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize()
        runs.append(time.perf_counter() - start)
    runs.sort()
    return {"median_s": runs[len(runs) // 2], "min_s": runs[0], "max_s": runs[-1]}


def set_tf32(choice):
    """Applies --tf32 and returns PyTorch's TF32 settings as they then are."""
    if choice != "default":
        torch.backends.cuda.matmul.allow_tf32 = choice == "on"
        torch.backends.cudnn.allow_tf32 = choice == "on"
    return {"matmul": bool(torch.backends.cuda.matmul.allow_tf32), "cudnn": bool(torch.backends.cudnn.allow_tf32)}


class Precision:
    """The forward's context and the backward + step of a training step under --autocast."""

    def __init__(self, choice, device):
        self.dtype = {"none": None, "bf16": torch.bfloat16, "f16": torch.float16}[choice]
        self.device_type = device.type
        self.scaler = torch.amp.GradScaler(device.type) if self.dtype == torch.float16 else None

    def forward(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward_and_step(self, loss, optim):
        if self.scaler is None:
            loss.backward()
            optim.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(optim)
            self.scaler.update()


def supcon_transform(size, scale_min, jitter, colour, mean, std, flip):
    steps = [transforms.RandomResizedCrop(size=size, scale=(scale_min, 1.0))]
    if flip > 0:
        steps.append(transforms.RandomHorizontalFlip(flip))
    if jitter > 0:
        hue = jitter / 4 if colour else 0.0
        saturation = jitter if colour else 0.0
        steps.append(transforms.RandomApply([transforms.ColorJitter(jitter, jitter, saturation, hue)], p=0.8))
    if colour:
        steps.append(transforms.RandomGrayscale(p=0.2))
    steps += [transforms.ToTensor(), transforms.Normalize(mean, std)]
    return transforms.Compose(steps)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--demo-batch", type=int, default=32)
    parser.add_argument("--demo-size", type=int, default=28)
    parser.add_argument("--demo-crop-min-scale", type=float, default=0.5)
    parser.add_argument("--demo-jitter", type=float, default=0.4)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--autocast", default="none", choices=("none", "bf16", "f16"))
    parser.add_argument("--tf32", default="default", choices=("default", "on", "off"))
    parser.add_argument("--only", default=None, help="only the workload with this key")
    args = parser.parse_args()
    device = torch.device(args.device)
    tf32 = set_tf32(args.tf32)
    precision = Precision(args.autocast, device)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    figures = []

    def wanted(key):
        return args.only is None or args.only == key

    def add(key, result):
        result["key"] = key
        figures.append(result)

    # 1. Loss.
    for key, batch in (("loss_b256", 256), ("loss_b1024", 1024)):
        if not wanted(key):
            continue
        features = F.normalize(torch.randn(batch, 2, 128, device=device), dim=2)
        labels = torch.arange(batch, device=device) * 7 % 10

        def step():
            f = features.clone().requires_grad_(True)
            supcon_loss(f, labels).backward()

        add(key, timed(step, args.repeats))

    # 2. Augmentation (PIL, image by image, as the reference).
    pil = [Image.fromarray(a) for a in rng.integers(0, 256, size=(256, 32, 32, 3), dtype=np.uint8)]
    cifar = supcon_transform(32, 0.2, 0.4, True, CIFAR_MEAN, CIFAR_STD, 0.5)
    if wanted("augment_256x3x32x32"):
        add("augment_256x3x32x32", timed(lambda: torch.stack([cifar(im) for _ in range(2) for im in pil]), args.repeats))

    # 3. Training steps, encoder + linear classifier, cross-entropy, SGD.
    for key, encoder, width, shape in (
        ("step_small_1x28x28_b256", SmallRef(1), 128, (256, 1, 28, 28)),
        ("step_resnet18_3x32x32_b64", Net(Basic, (2, 2, 2, 2), 3), 512, (64, 3, 32, 32)),
    ):
        if not wanted(key):
            continue
        model = nn.Sequential(encoder, nn.Linear(width, 10)).to(device)
        optim = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
        x = torch.randn(*shape, device=device)
        y = torch.arange(shape[0], device=device) % 10

        def step():
            optim.zero_grad()
            with precision.forward():
                loss = F.cross_entropy(model(x), y)
            precision.backward_and_step(loss, optim)

        add(key, timed(step, args.repeats))

    # 4. Whole SupCon steps: decode to PIL, two views, forward, loss, backward, SGD.
    digits = rng.integers(0, 256, size=(args.demo_batch, 28, 28), dtype=np.uint8)
    cases = (
        (
            "supcon_step_demo",
            SupCon(SmallRef(1), 128),
            [Image.fromarray(d) for d in digits],
            supcon_transform(args.demo_size, args.demo_crop_min_scale, args.demo_jitter, False, (0.1307,), (0.3081,), 0.0),
        ),
        (
            "supcon_step_resnet18_3x32x32_b64",
            SupCon(Net(Basic, (2, 2, 2, 2), 3), 512),
            pil[:64],
            cifar,
        ),
    )
    for key, model, images, transform in cases:
        if not wanted(key):
            continue
        model = model.to(device)
        optim = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
        labels = torch.arange(len(images), device=device) % 10

        def step():
            views = torch.cat([torch.stack([transform(im) for im in images]) for _ in range(2)])
            views = views.to(device)
            optim.zero_grad()
            with precision.forward():
                z = model(views)
                features = torch.stack(torch.split(z, len(images)), dim=1)
                loss = supcon_loss(features, labels)
            precision.backward_and_step(loss, optim)

        add(key, timed(step, args.repeats))

    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "threads": args.threads,
                "device": name,
                "autocast": args.autocast,
                "tf32": tf32,
                "figures": figures,
            }
        )
    )


if __name__ == "__main__":
    main()
