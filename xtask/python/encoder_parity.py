"""Expected outputs for the supcon-encoder / supcon-head parity tests, from PyTorch.

The networks are the architecture of SupContrast's networks/resnet_big.py (CIFAR stem, BasicBlock
and Bottleneck with 1x1 projection shortcuts, adaptive average pooling, `encoder.*` / `head.*`
keys), written here again. Every parameter and buffer is filled from a formula of its
PyTorch key and element index (`formula_tensor`), which the Rust test reproduces, so only the
outputs are stored. Also writes a small real checkpoint (reference_small_ckpt.pth) in the reference's format
(`torch.save({'model': state_dict, ...})`, DataParallel's `module.` prefix) for the import test.

Run with `cargo xtask golden` (needs torch).
"""

import json
import math
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


def noise(n, c):
    """Deterministic noise in [-1, 1): 2 frac(43758.5453 sin(12.9898 i + 78.233 c)) - 1."""
    i = torch.arange(n, dtype=torch.float64)
    v = torch.sin(12.9898 * i + 78.233 * c) * 43758.5453
    return 2.0 * (v - torch.floor(v)) - 1.0


def formula_tensor(key, shape):
    """A parameter from its key: noise with a per-key phase, scaled by the kind of parameter.
    (Noise rather than a smooth formula: structured weights make training-mode BatchNorm so
    ill-conditioned that float32 itself is only good to 1e-3.)"""
    n = math.prod(shape)
    c = (sum(key.encode()) % 97) * 0.1
    base = noise(n, c)
    if key.endswith("running_var"):
        values = 1.0 + 0.5 * base * base
    elif key.endswith("running_mean") or key.endswith("bias"):
        values = 0.1 * base
    elif len(shape) == 1:  # BatchNorm weight
        values = 1.0 + 0.2 * base
    else:  # convolution or linear weight: variance 1 / fan_in keeps activations of order one
        values = base * math.sqrt(3.0 / math.prod(shape[1:]))
    return values.reshape(shape).float()


class Basic(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class Bottle(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride):
        super().__init__()
        out = planes * 4
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != out:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, out, 1, stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        return F.relu(self.bn3(self.conv3(y)) + self.shortcut(x))


class Net(nn.Module):
    def __init__(self, block, counts, cin):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        planes_in = 64
        for index, (planes, count, stride) in enumerate(zip((64, 128, 256, 512), counts, (1, 2, 2, 2))):
            blocks = []
            for i in range(count):
                blocks.append(block(planes_in, planes, stride if i == 0 else 1))
                planes_in = planes * block.expansion
            setattr(self, f"layer{index + 1}", nn.Sequential(*blocks))

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


class SupCon(nn.Module):
    def __init__(self, encoder, width, feat_dim=128):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Sequential(nn.Linear(width, width), nn.ReLU(inplace=True), nn.Linear(width, feat_dim))

    def forward(self, x):
        return F.normalize(self.head(self.encoder(x)), dim=1)


class SmallRef(nn.Module):
    """supcon-encoder's `small` CNN: four 3x3 conv + BN + ReLU (32, 64, 128, 128; strides 1, 2, 2,
    1), global average pooling."""

    def __init__(self, cin):
        super().__init__()
        layers = [(cin, 32, 1), (32, 64, 2), (64, 128, 2), (128, 128, 1)]
        self.convs = nn.ModuleList(nn.Conv2d(i, o, 3, s, 1, bias=False) for i, o, s in layers)
        self.norms = nn.ModuleList(nn.BatchNorm2d(o) for _, o, _ in layers)

    def forward(self, x):
        for conv, norm in zip(self.convs, self.norms):
            x = F.relu(norm(conv(x)))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


def write_reference_checkpoint(path):
    """A checkpoint as main_supcon.py's save_model writes it, with DataParallel's prefix."""
    import argparse

    model = SupCon(SmallRef(1), 128, feat_dim=32)
    fill(model)
    model.encoder = nn.DataParallel(model.encoder)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    opt = argparse.Namespace(model="small", batch_size=256, learning_rate=0.05, temp=0.1)
    # Saved as from the GPU the reference trains on: every storage tagged `cuda:0` (torch itself
    # then needs `map_location` to read it on a machine without CUDA).
    location_tag = torch.serialization.location_tag
    torch.serialization.location_tag = lambda storage: "cuda:0"
    try:
        torch.save({"opt": opt, "model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 1}, path)
    finally:
        torch.serialization.location_tag = location_tag
    model = model.double().eval()
    with torch.no_grad():
        return model(formula_input((2, 1, 28, 28)).double()).flatten().tolist()


def formula_input(shape):
    return (0.5 + 0.5 * noise(math.prod(shape), 1.0)).reshape(shape).float()


def fill(model):
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if key.endswith("num_batches_tracked"):
                continue
            tensor.copy_(formula_tensor(key, tuple(tensor.shape)))


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else "assets/golden/encoder_parity.json"
    torch.manual_seed(0)
    x = formula_input((2, 3, 32, 32))
    cases = []
    for name, block, counts, width in [("resnet18", Basic, (2, 2, 2, 2), 512), ("resnet50", Bottle, (3, 4, 6, 3), 2048)]:
        model = SupCon(Net(block, counts, 3), width)
        fill(model)
        case = {"model": name, "input_shape": list(x.shape)}
        # Computed in float64 (the architecture's exact output for these float32 weights).
        # Evaluation first: a training-mode forward updates the running statistics.
        model = model.double()
        for mode in ("eval", "train"):
            model.train(mode == "train")
            with torch.no_grad():
                features = model.encoder(x.double())
                projection = model(x.double())
            case[f"features_{mode}"] = features.flatten().tolist()
            case[f"projection_{mode}"] = projection.flatten().tolist()
        cases.append(case)
    checkpoint = out_path.replace("encoder_parity.json", "reference_small_ckpt.pth")
    small = write_reference_checkpoint(checkpoint)
    with open(out_path, "w") as f:
        json.dump({"generator": "xtask/python/encoder_parity.py", "torch": torch.__version__, "cases": cases,
                   "small_checkpoint_projection_eval": small}, f)
    print(f"wrote {len(cases)} cases to {out_path}")


if __name__ == "__main__":
    main()
