"""Float64 reference values for the supcon-loss parity tests.

Written from the formulas (the SupCon paper's Eq. 2 and 3 and the denominator modes of the
google-research code), one anchor at a time with plain loops, so that it shares no code or
structure with the Rust implementation. Gradients are central differences in float64.

Run with `cargo xtask golden` (needs numpy); writes assets/golden/supcon_loss_parity.json.
"""

import json
import math
import sys

import numpy as np


def sample_mask(kind, batch, labels=None, mask=None):
    if kind == "labels":
        return np.array([[1.0 if labels[i] == labels[j] else 0.0 for j in range(batch)] for i in range(batch)])
    if kind == "same_image":
        return np.eye(batch)
    return np.array(mask, dtype=np.float64)


def log_sum_exp(values):
    if not values:
        return None
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def supcon_per_sample(features, case):
    batch, views, _ = features.shape
    t, base_t = case["temperature"], case["base_temperature"]
    same = sample_mask(case["positives"], batch, case.get("labels"), case.get("mask"))
    # contrast vector k is view k // batch of sample k % batch
    contrast = [features[k % batch, k // batch] for k in range(views * batch)]
    anchor_views = views if case["contrast_mode"] == "all" else 1
    per_anchor = np.zeros((anchor_views, batch))
    for r in range(anchor_views * batch):
        i = r % batch
        logits = [float(np.dot(contrast[r], contrast[k])) / t for k in range(views * batch)]
        others = [k for k in range(views * batch) if k != r]
        weight = {k: same[i, k % batch] for k in others}
        pos = [k for k in others if weight[k] > 0]
        neg = [k for k in others if weight[k] <= 0]
        count = sum(weight[k] for k in pos)
        if count < 1e-6:
            continue
        lse_neg = log_sum_exp([logits[k] for k in neg])
        den_all = log_sum_exp([logits[k] for k in others])

        def log_den(k):
            mode = case["denominator"]
            if mode == "all":
                return den_all
            if mode == "one_positive":
                return log_sum_exp([logits[k]] + [logits[n] for n in neg])
            return lse_neg

        if case["denominator"] == "only_negatives" and lse_neg is None:
            continue
        log_prob = {k: logits[k] - log_den(k) for k in pos}
        if case["summation"] == "outside":
            value = sum(weight[k] * log_prob[k] for k in pos) / count
        else:
            value = math.log(sum(weight[k] * math.exp(log_prob[k]) for k in pos) / count)
        per_anchor[r // batch, i] = -(t / base_t) * value
    return per_anchor.mean(axis=0)


def gradient(features, case, h=1e-6):
    grad = np.zeros_like(features)
    for index in np.ndindex(features.shape):
        up, down = features.copy(), features.copy()
        up[index] += h
        down[index] -= h
        grad[index] = (supcon_per_sample(up, case).mean() - supcon_per_sample(down, case).mean()) / (2 * h)
    return grad


def cases(rng):
    out = []
    modes = [
        ("all", "outside", "all"),
        ("one", "outside", "all"),
        ("all", "inside", "all"),
        ("all", "outside", "one_positive"),
        ("all", "outside", "only_negatives"),
        ("one", "inside", "one_positive"),
        ("all", "inside", "only_negatives"),
    ]
    shapes = [(6, 2, 8), (5, 3, 4), (8, 2, 16), (4, 1, 5), (7, 2, 3)]
    n = 0
    for contrast_mode, summation, denominator in modes:
        for positives in ["labels", "same_image", "mask"]:
            batch, views, dim = shapes[n % len(shapes)]
            n += 1
            if positives == "same_image" and views == 1:
                views = 2
            raw = rng.normal(size=(batch, views, dim))
            unit = n % 3 != 0  # every third case uses unnormalised features
            features = raw / np.linalg.norm(raw, axis=2, keepdims=True) if unit else raw * 0.7
            case = {
                "name": f"{contrast_mode}-{summation}-{denominator}-{positives}-{batch}x{views}x{dim}",
                "temperature": float(rng.choice([0.05, 0.07, 0.1, 0.5, 1.0])),
                "base_temperature": float(rng.choice([0.07, 1.0])),
                "contrast_mode": contrast_mode,
                "summation": summation,
                "denominator": denominator,
                "positives": positives,
            }
            if not unit:
                case["temperature"] = 1.0
            if positives == "labels":
                case["labels"] = [int(v) for v in rng.integers(0, 3, size=batch)]
            if positives == "mask":
                case["mask"] = (rng.random((batch, batch)) < 0.4).astype(float).tolist()
            per_sample = supcon_per_sample(features, case)
            case["features"] = features.tolist()
            case["per_sample"] = per_sample.tolist()
            case["loss"] = float(per_sample.mean())
            case["grad"] = gradient(features, case).tolist()
            out.append(case)
    return out


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "assets/golden/supcon_loss_parity.json"
    rng = np.random.default_rng(20200417)
    data = {
        "generator": "xtask/python/supcon_loss_reference.py",
        "cases": cases(rng),
    }
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
    print(f"wrote {len(data['cases'])} cases to {path}")


if __name__ == "__main__":
    main()
