"""Linear probes: how much of each object's facts can a linear classifier read from the image features?

For every object slot k (reading order: 0 = leftmost or topmost) and every fact (shape, color, size),
plus the object count and the layout, a multinomial logistic regression (numpy, full-batch Adam, L2
1e-3, features standardized with the training mean and deviation) is fitted on the training images of a
shapes dataset and scored on its val images. A decoder reads the same features through one linear map
(``W_proj``), so a fact that a linear probe cannot tell apart is one the captions will get wrong.

    python benchmarks/probe_shapes_features.py [--data-dir datasets/shapes] [--raw]

``--raw`` probes the raw 4096 features instead of the 512 PCA features. Prints one table.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cs231n.data.shapes import SHAPES, COLORS, OBJECT_SIZES, ensure_shapes_dataset  # noqa: E402


def fit_softmax(X, y, num_classes, steps=300, lr=0.05, reg=1e-3):
    """Multinomial logistic regression by full-batch Adam. X (N, D) standardized, y (N,) ints -> (W, b)."""
    N, D = X.shape
    W = np.zeros((D, num_classes), dtype=np.float64)  # (D, C)
    b = np.zeros(num_classes)
    m = [np.zeros_like(W), np.zeros_like(b)]
    v = [np.zeros_like(W), np.zeros_like(b)]
    onehot = np.eye(num_classes)[y]  # (N, C)
    for t in range(1, steps + 1):
        s = X @ W + b  # (N, C)
        s -= s.max(axis=1, keepdims=True)
        p = np.exp(s)
        p /= p.sum(axis=1, keepdims=True)
        d = (p - onehot) / N  # (N, C)
        grads = [X.T @ d + reg * W, d.sum(axis=0)]
        for i, (param, g) in enumerate(zip((W, b), grads)):
            m[i] = 0.9 * m[i] + 0.1 * g
            v[i] = 0.999 * v[i] + 0.001 * g * g
            param -= lr * (m[i] / (1 - 0.9 ** t)) / (np.sqrt(v[i] / (1 - 0.999 ** t)) + 1e-8)
    return W, b


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir")
    parser.add_argument("--raw", action="store_true", help="probe the raw 4096 features")
    a = parser.parse_args()
    base = Path(a.data_dir) if a.data_dir else ensure_shapes_dataset()
    scenes = json.loads((base / "shapes_scenes.json").read_text())
    suffix = "vgg16_fc7.h5" if a.raw else "vgg16_fc7_pca.h5"
    feats = {}
    for split in ("train", "val"):
        with h5py.File(base / f"{split}2014_{suffix}", "r") as f:
            feats[split] = np.asarray(f["features"], dtype=np.float64)
    mu, sd = feats["train"].mean(0), feats["train"].std(0) + 1e-6
    X = {s: (feats[s] - mu) / sd for s in feats}
    tasks = [("count", lambda sc: len(sc["objects"]) - 1, 3),
             ("layout", lambda sc: ("single", "row", "column").index(sc["layout"]), 3)]
    for k in range(3):
        for fact, names in (("shape", SHAPES), ("color", list(COLORS)), ("size", OBJECT_SIZES)):
            tasks.append((f"object {k} {fact}",
                          lambda sc, k=k, fact=fact, names=names:
                          names.index(sc["objects"][k][fact]) if len(sc["objects"]) > k else -1, len(names)))
    print(f"linear probes on {base} ({'raw 4096' if a.raw else '512 PCA'} features; train -> val)")
    print(f"{'target':18} {'classes':>7} {'train acc':>9} {'val acc':>8} {'val n':>6}")
    t0 = time.time()
    for name, label, num_classes in tasks:
        y = {s: np.array([label(sc) for sc in scenes[s]]) for s in ("train", "val")}
        keep = {s: y[s] >= 0 for s in y}
        W, b = fit_softmax(X["train"][keep["train"]], y["train"][keep["train"]], num_classes)
        acc = {s: float(((X[s][keep[s]] @ W + b).argmax(1) == y[s][keep[s]]).mean()) for s in y}
        print(f"{name:18} {num_classes:7d} {acc['train']:9.1%} {acc['val']:8.1%} {int(keep['val'].sum()):6d}")
    print(f"({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
