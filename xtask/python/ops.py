"""PyTorch's side of `cargo xtask ops`: per-operation CPU times of the CIFAR ResNet-18's (or,
with `--network small`, the small CNN's) convolutions (forward, input gradient, weight gradient), BatchNorm and ReLU, on the shapes that
`xtask/src/ops.rs` lists, and torch.profiler's table of one whole training step. Prints JSON."""

import argparse
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import SmallRef  # noqa: E402
from encoder_parity import Basic, Net  # noqa: E402

# (cin, cout, side, kernel, stride): the distinct convolutions of the CIFAR ResNet-18.
CONVS = [
    (3, 64, 32, 3, 1), (64, 64, 32, 3, 1), (64, 128, 32, 3, 2), (128, 128, 16, 3, 1),
    (64, 128, 32, 1, 2), (128, 256, 16, 3, 2), (256, 256, 8, 3, 1), (128, 256, 16, 1, 2),
    (256, 512, 8, 3, 2), (512, 512, 4, 3, 1), (256, 512, 8, 1, 2),
]
# (channels, side) of the activations BatchNorm and ReLU see.
ACTIVATIONS = [(64, 32), (128, 16), (256, 8), (512, 4)]
# The same for the small CNN (`SmallRef`, 1x28x28 images).
SMALL_CONVS = [(1, 32, 28, 3, 1), (32, 64, 28, 3, 2), (64, 128, 14, 3, 2), (128, 128, 7, 3, 1)]
SMALL_ACTIVATIONS = [(32, 28), (64, 14), (128, 7)]


def median(fn, repeats):
    fn()
    runs = []
    for _ in range(max(repeats, 1)):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    runs.sort()
    return runs[len(runs) // 2]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--network", choices=["resnet18", "small"], default="resnet18")
    args = parser.parse_args()
    small = args.network == "small"
    convs, activations = (SMALL_CONVS, SMALL_ACTIVATIONS) if small else (CONVS, ACTIVATIONS)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ops = {}
    with torch.no_grad():
        for cin, cout, side, kernel, stride in convs:
            pad = kernel // 2
            out = (side + 2 * pad - kernel) // stride + 1
            x = torch.randn(args.batch, cin, side, side)
            w = torch.randn(cout, cin, kernel, kernel)
            g = torch.randn(args.batch, cout, out, out)
            key = f"{cin}_{cout}_{side}_{kernel}_{stride}"
            ops[f"forward_{key}"] = median(lambda: F.conv2d(x, w, stride=stride, padding=pad), args.repeats)
            ops[f"input_grad_{key}"] = median(
                lambda: torch.nn.grad.conv2d_input(x.shape, w, g, stride=stride, padding=pad), args.repeats
            )
            ops[f"weight_grad_{key}"] = median(
                lambda: torch.nn.grad.conv2d_weight(x, w.shape, g, stride=stride, padding=pad), args.repeats
            )
    for channels, side in activations:
        x = torch.randn(args.batch, channels, side, side)
        bn = nn.BatchNorm2d(channels).train()

        def norm():
            inp = x.clone().requires_grad_(True)
            bn(inp).sum().backward()

        def relu():
            inp = x.clone().requires_grad_(True)
            F.relu(inp).sum().backward()

        def norm_relu():
            inp = x.clone().requires_grad_(True)
            F.relu(bn(inp)).sum().backward()

        ops[f"bn_{channels}_{side}"] = median(norm, args.repeats)
        ops[f"relu_{channels}_{side}"] = median(relu, args.repeats)
        ops[f"bn_relu_{channels}_{side}"] = median(norm_relu, args.repeats)

    if small:
        model, images = nn.Sequential(SmallRef(1), nn.Linear(128, 10)), (1, 28, 28)
    else:
        model, images = nn.Sequential(Net(Basic, (2, 2, 2, 2), 3), nn.Linear(512, 10)), (3, 32, 32)
    optim = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(args.batch, *images)
    y = torch.arange(args.batch) % 10

    def step():
        optim.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optim.step()

    step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        step()
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14, max_name_column_width=40)
    print(json.dumps({"torch": torch.__version__, "threads": args.threads, "ops": ops, "profile": table}))


if __name__ == "__main__":
    main()
