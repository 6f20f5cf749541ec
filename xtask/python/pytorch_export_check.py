"""Checks a `supcon-train export RUN --format pytorch --head` file in PyTorch.

Loads it with `load_state_dict(..., strict=True)` into the reference architecture (SupContrast's
SupConResNet, as `encoder_parity.py` writes it again; `small` as its `SmallRef`; for a
cross-entropy run, whose file holds the classifier `fc.*`, SupCEResNet: the encoder and
`nn.Linear(width, classes)`), reads the run's settings from the file's metadata
(`supcon.config`: architecture, normalisation), and compares the encoder's features and the
head's projections with those `supcon-train embed --encoder RUN --images DIR --projection
--output OUT` wrote for the same images (for a cross-entropy run, the features of `embed
--encoder RUN/best-model.bpk --images DIR --output OUT`).

    python3 xtask/python/pytorch_export_check.py RUN/model.pytorch.safetensors OUT

Needs torch, safetensors, numpy and pillow. Exits 1 when the outputs differ beyond float32
rounding (1e-4 relative to the largest feature; projections are unit vectors, 1e-4 absolute).
"""

import pathlib
import sys
import tomllib

import numpy as np
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import encoder_parity as reference  # noqa: E402

BLOCKS = {
    "resnet18": (reference.Basic, [2, 2, 2, 2], 512),
    "resnet34": (reference.Basic, [3, 4, 6, 3], 512),
    "resnet50": (reference.Bottle, [3, 4, 6, 3], 2048),
    "resnet101": (reference.Bottle, [3, 4, 23, 3], 2048),
}


def main(path, embed_dir):
    with safe_open(path, "pt") as f:
        metadata = f.metadata()
    config = tomllib.loads(metadata["supcon.config"])
    architecture = config["model"]["architecture"]
    mean, std = np.array(config["data"]["mean"]), np.array(config["data"]["std"])
    channels = len(mean)
    if architecture == "small":
        encoder, width = reference.SmallRef(channels), 128
    else:
        block, counts, width = BLOCKS[architecture]
        encoder = reference.Net(block, counts, channels)
    state = load_file(path)
    cross_entropy = "fc.weight" in state
    if cross_entropy:
        model = SupCE(encoder, width, state["fc.weight"].shape[0])
    elif config["model"]["head"] != "mlp":
        sys.exit("this check builds the reference's MLP head; the run's head is linear")
    else:
        model = reference.SupCon(encoder, width, config["model"]["feat_dim"])
    model.load_state_dict(state, strict=True)
    model.eval()

    embed_dir = pathlib.Path(embed_dir)
    files = (embed_dir / "images-files.txt").read_text().split("\n")
    images = []
    for name in filter(None, files):
        pixels = np.asarray(Image.open(name), dtype=np.float32) / 255.0
        pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
        images.append((pixels - mean[:, None, None]) / std[:, None, None])
    x = torch.from_numpy(np.stack(images).astype(np.float32))
    with torch.no_grad():
        features, outputs = model.encoder(x).numpy(), model(x).numpy()
    ours_features = np.load(embed_dir / "images-embeddings.npy")
    feature_diff = np.abs(features - ours_features).max() / np.abs(ours_features).max()
    if cross_entropy:
        # `embed` gives no logits: the classifier is checked by the strict load (names, shapes).
        print(
            f"{path} ({architecture} SupCEResNet, {outputs.shape[1]} classes, {len(images)} "
            f"images): strict load_state_dict ok; features differ by {feature_diff:.2e} of the "
            "largest"
        )
        if feature_diff > 1e-4:
            sys.exit(1)
        return
    projection_diff = np.abs(outputs - np.load(embed_dir / "images-projections.npy")).max()
    print(
        f"{path} ({architecture}, {len(images)} images): strict load_state_dict ok; features "
        f"differ by {feature_diff:.2e} of the largest, projections by {projection_diff:.2e}"
    )
    if feature_diff > 1e-4 or projection_diff > 1e-4:
        sys.exit(1)


class SupCE(torch.nn.Module):
    """SupContrast's SupCEResNet: the encoder, then `fc`, a Linear to the classes."""

    def __init__(self, encoder, width, classes):
        super().__init__()
        self.encoder = encoder
        self.fc = torch.nn.Linear(width, classes)

    def forward(self, x):
        return self.fc(self.encoder(x))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
