"""The values of every convolution's output (and the ImageNet stem's max-pool's) for one image,
counted by forward hooks in PyTorch: the independent figures `supcon-encoder`'s
`EncoderConfig::feature_maps` is tested against (`crates/supcon-encoder/tests/architecture.rs`).

    python3 xtask/python/feature_maps.py

Builds the reference's ResNets (`encoder_parity.py`'s `Net`; with the ImageNet stem, its `conv1`
replaced by torchvision's 7x7 stride-2 convolution and 3x3 stride-2 max-pool) and `SmallRef`,
and prints `architecture stem channels height width total largest` lines.
"""

import pathlib
import sys

import torch
from torch import nn

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import encoder_parity as reference  # noqa: E402

NETS = {
    "resnet18": (reference.Basic, [2, 2, 2, 2]),
    "resnet34": (reference.Basic, [3, 4, 6, 3]),
    "resnet50": (reference.Bottle, [3, 4, 6, 3]),
    "resnet101": (reference.Bottle, [3, 4, 23, 3]),
}


def counts(model, shape):
    sizes = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: sizes.append(out[0].numel()))
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d))
    ]
    with torch.no_grad():
        model.eval()(torch.zeros((1, *shape)))
    for hook in hooks:
        hook.remove()
    return sum(sizes), max(sizes)


def main():
    cases = [
        ("small", "cifar", 1, 28, 28),
        ("small", "cifar", 3, 1, 1),
        ("resnet18", "cifar", 3, 32, 32),
        ("resnet18", "cifar", 1, 28, 28),
        ("resnet18", "cifar", 3, 1, 1),
        ("resnet18", "cifar", 3, 1000, 1000),
        ("resnet34", "cifar", 3, 32, 32),
        ("resnet50", "cifar", 3, 32, 32),
        ("resnet101", "cifar", 3, 17, 23),
        ("resnet50", "imagenet", 3, 224, 224),
        ("resnet18", "imagenet", 3, 5, 3),
    ]
    for name, stem, channels, height, width in cases:
        if name == "small":
            model = reference.SmallRef(channels)
        else:
            block, blocks = NETS[name]
            model = reference.Net(block, blocks, channels)
            if stem == "imagenet":
                model.conv1 = nn.Sequential(
                    nn.Conv2d(channels, 64, 7, 2, 3, bias=False), nn.MaxPool2d(3, 2, 1)
                )
        total, largest = counts(model, (channels, height, width))
        print(name, stem, channels, height, width, total, largest)


if __name__ == "__main__":
    main()
