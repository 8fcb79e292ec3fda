"""Linear probes: how much of each object's facts can a linear classifier read from the image features?

For every object slot k (reading order: 0 = leftmost or topmost) and every fact (shape, color, size),
plus the object count and the layout, a multinomial logistic regression (numpy, full-batch Adam, L2
1e-3, features standardized with the training mean and deviation) is fitted on the training images of a
shapes dataset and scored on its val images. A decoder reads the same features through one linear map
(``W_proj``), so a fact that a linear probe cannot tell apart is one the captions will get wrong.

    python benchmarks/probe_shapes_features.py [--data-dir datasets/shapes] [--raw | --regions]

``--raw`` probes the raw 4096 features instead of the 512 PCA features. Prints one table.

``--regions`` asks what ONE region tells, which is what a model that attends reads: for every object,
a probe sees only the region that should hold it and reads the object's shape, color, size and its
place in reading order (first, second, third), for three kinds of regions: the dataset's regions
(``*_regions.h5``: the object's slot), the same without their last 8 values (which region, its box),
and a 4x4 grid over the whole-image view (the cell holding the object's center; 64 raw values).
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
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--raw", action="store_true", help="probe the raw 4096 features")
    kind.add_argument("--regions", action="store_true", help="probe one region at a time (see above)")
    a = parser.parse_args()
    base = Path(a.data_dir) if a.data_dir else ensure_shapes_dataset()
    if a.regions:
        return probe_regions(base)
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


def probe_regions(base):
    """The --regions table: facts of each object read from the one region that holds it."""
    scenes = json.loads((base / "shapes_scenes.json").read_text())
    regions, grid = {}, {}
    for split in ("train", "val"):
        with h5py.File(base / f"{split}2014_regions.h5", "r") as f:
            regions[split] = np.asarray(f["features"], dtype=np.float64)  # (M, R, D)
        with h5py.File(base / f"{split}2014_vgg16_fc7.h5", "r") as f:
            whole = np.asarray(f["features"][:, :1024], dtype=np.float64)  # view 0: (M, 4 channels x 16 x 16)
        cells = whole.reshape(-1, 4, 4, 4, 4, 4)  # (M, channel, grid y, cell y, grid x, cell x)
        grid[split] = cells.transpose(0, 2, 4, 1, 3, 5).reshape(-1, 16, 64)  # (M, 16 cells, 64) row-major
    kinds = {
        "object's slot": (regions, lambda obj, k: 1 + k),
        "slot, no which/box": ({s: r[:, :, :-8] for s, r in regions.items()}, lambda obj, k: 1 + k),
        "4x4 grid cell": (grid, lambda obj, k: min(int(obj["y"] * 4), 3) * 4 + min(int(obj["x"] * 4), 3)),
    }
    facts = (("shape", SHAPES), ("color", list(COLORS)), ("size", OBJECT_SIZES), ("order", (0, 1, 2)))
    print(f"linear probes of one region on {base} (val accuracy; the region that holds each object)")
    print(f"{'region':20} {'D':>4} " + " ".join(f"{f:>7}" for f, _ in facts))
    t0 = time.time()
    for name, (feats, where) in kinds.items():
        rows = {}
        for split in ("train", "val"):
            X, y = [], {f: [] for f, _ in facts}
            for i, sc in enumerate(scenes[split]):
                for k, obj in enumerate(sc["objects"]):
                    X.append(feats[split][i, where(obj, k)])
                    for fact, names in facts:
                        y[fact].append(k if fact == "order" else names.index(obj[fact]))
            rows[split] = (np.array(X), {f: np.array(v) for f, v in y.items()})
        mu, sd = rows["train"][0].mean(0), rows["train"][0].std(0) + 1e-6
        X = {s: (rows[s][0] - mu) / sd for s in rows}
        accs = []
        for fact, names in facts:
            W, b = fit_softmax(X["train"], rows["train"][1][fact], len(names))
            accs.append(float(((X["val"] @ W + b).argmax(1) == rows["val"][1][fact]).mean()))
        print(f"{name:20} {X['val'].shape[1]:4d} " + " ".join(f"{v:7.1%}" for v in accs))
    print(f"({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
