"""The shapes dataset's featurizer: a fixed random-weight convolutional network written in numpy.

See the package docstring for the architecture. :func:`featurize_images` gives the 4096 raw values of
each image; :func:`featurize_for_dataset` applies a dataset's saved filters and PCA to new images.
"""
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from cs231n.coco_utils import RAW_FEATURE_DIM
from cs231n.data.shapes.pca import apply_pca

FEATURIZER_FILE = "shapes_featurizer.npz"

# Featurizer constants (see the module docstring).
FEATURE_INPUT_SIZE = 96
FEATURIZER_SEED = 231
_CONV1 = (5, 3, 32)  # kernel size, input channels, output channels
_CONV2 = (3, 32, 256)
FEATURIZE_BATCH = 100  # images per convolution pass (bounds the memory)


def featurizer_weights(seed=FEATURIZER_SEED):
    """The fixed random convolution filters of the featurizer.

    Inputs:
    - seed: int seed of np.random.default_rng.

    Returns a dict with ``conv1`` of shape (5*5*3, 32) and ``conv2`` of shape (3*3*32, 256), float32,
    each drawn from a standard normal and divided by sqrt(fan_in). Rows are ordered (dy, dx, channel).
    """
    rng = np.random.default_rng(seed)
    weights = {}
    for name, (k, c_in, c_out) in (("conv1", _CONV1), ("conv2", _CONV2)):
        fan_in = k * k * c_in
        weights[name] = (rng.standard_normal((fan_in, c_out)) / np.sqrt(fan_in)).astype(np.float32)
    return weights


def _conv_relu(x, w, k):
    """Same-padded kxk convolution followed by ReLU.

    x is (N, H, W, C), w is (k*k*C, F) with rows ordered (dy, dx, c); returns (N, H, W, F) float32.
    With few input channels the k*k shifted products are summed; otherwise the image patches are
    gathered once (channel-major) and multiplied in one matrix product. Both give the same numbers
    up to float32 rounding.
    """
    N, H, W, C = x.shape
    p = k // 2
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))  # (N, H+2p, W+2p, C)
    if C < 8:
        wk = w.reshape(k, k, C, -1)
        out = np.zeros((N, H, W, wk.shape[-1]), dtype=np.float32)  # (N, H, W, F)
        for dy in range(k):
            for dx in range(k):
                out += xp[:, dy:dy + H, dx:dx + W, :] @ wk[dy, dx]
    else:
        patches = sliding_window_view(xp, (k, k), axis=(1, 2)).reshape(N * H * W, C * k * k)  # (c, dy, dx)
        w_cmajor = w.reshape(k, k, C, -1).transpose(2, 0, 1, 3).reshape(C * k * k, -1)
        out = (patches @ w_cmajor).reshape(N, H, W, -1)  # (N, H, W, F)
    np.maximum(out, 0, out=out)
    return out


def _pool2(h):
    """2x2 max pooling with stride 2 of (N, H, W, F)."""
    return np.maximum(np.maximum(h[:, 0::2, 0::2], h[:, 1::2, 0::2]), np.maximum(h[:, 0::2, 1::2], h[:, 1::2, 1::2]))


def _region_max(h):
    """Max of each channel over the 16 regions: whole image, 3 row bands, 3 column bands, 3x3 cells.

    h is (N, S, S, F) with S divisible by 3; returns (N, 16 * F), region-major.
    """
    N, S, _, F = h.shape
    cells = h.reshape(N, 3, S // 3, 3, S // 3, F).max(axis=(2, 4))  # (N, 3, 3, F)
    whole = cells.max(axis=(1, 2))[:, None]  # (N, 1, F)
    rows = cells.max(axis=2)  # (N, 3, F) top, middle, bottom bands
    cols = cells.max(axis=1)  # (N, 3, F) left, middle, right bands
    return np.concatenate([whole, rows, cols, cells.reshape(N, 9, F)], axis=1).reshape(N, 16 * F)


def _as_image_batch(images):
    """Images as one (N, 96, 96, 3) uint8 array, resizing with Pillow where needed."""
    if isinstance(images, np.ndarray) and images.ndim == 4:
        batch = list(images)
    elif isinstance(images, np.ndarray) and images.ndim in (2, 3):
        raise ValueError(f"featurize_images: images must be a batch (N, H, W, 3) or a list of images, "
                         f"got one array of shape {images.shape}; wrap a single image as images[None]")
    elif isinstance(images, (list, tuple)):
        batch = list(images)
    else:
        raise TypeError(f"featurize_images: images must be an array (N, H, W, 3) or a list of (H, W, 3) "
                        f"arrays, got {type(images).__name__}")
    S = FEATURE_INPUT_SIZE
    out = np.empty((len(batch), S, S, 3), dtype=np.uint8)
    for i, img in enumerate(batch):
        a = np.asarray(img)
        if a.ndim == 2:
            a = np.repeat(a[:, :, None], 3, axis=2)
        if a.ndim != 3 or a.shape[2] not in (3, 4) or min(a.shape[:2]) < 1:
            raise ValueError(f"featurize_images: image {i} must have shape (H, W, 3), got {a.shape}")
        if a.dtype != np.uint8:
            if a.dtype.kind == "f" and a.size and float(np.nanmax(a)) <= 1.0:
                a = a * 255.0
            a = np.clip(np.nan_to_num(a.astype(np.float64)), 0, 255).round().astype(np.uint8)
        a = a[:, :, :3]
        if a.shape[:2] != (S, S):
            a = np.asarray(Image.fromarray(a).resize((S, S), Image.Resampling.BILINEAR))
        out[i] = a
    return out


def featurize_images(images, weights=None):
    """Raw 4096-value features of images from the fixed random convolutional featurizer.

    See the module docstring for the architecture. Images of another size are resized to 96x96 first;
    grayscale (H, W) images are repeated to 3 channels and an alpha channel is dropped.

    Inputs:
    - images: uint8 array of shape (N, H, W, 3), or a list of N (H, W, 3) arrays (float arrays with
      values in [0, 1] or [0, 255] are accepted too).
    - weights: dict from :func:`featurizer_weights` (the default seed when None).

    Returns features, of shape (N, 4096), float32 (non-negative).
    """
    batch = _as_image_batch(images)  # (N, 96, 96, 3)
    if weights is None:
        weights = featurizer_weights()
    w1 = np.asarray(weights["conv1"], dtype=np.float32)
    w2 = np.asarray(weights["conv2"], dtype=np.float32)
    if w1.shape != (_CONV1[0] ** 2 * _CONV1[1], _CONV1[2]) or w2.shape != (_CONV2[0] ** 2 * _CONV2[1], _CONV2[2]):
        raise ValueError(f"featurize_images: weights must have conv1 {(_CONV1[0] ** 2 * _CONV1[1], _CONV1[2])} "
                         f"and conv2 {(_CONV2[0] ** 2 * _CONV2[1], _CONV2[2])}, got {w1.shape} and {w2.shape}")
    N = batch.shape[0]
    features = np.empty((N, RAW_FEATURE_DIM), dtype=np.float32)  # (N, 4096)
    for lo in range(0, N, FEATURIZE_BATCH):
        x = batch[lo:lo + FEATURIZE_BATCH].astype(np.float32)  # (n, 96, 96, 3)
        n = x.shape[0]
        x = x[:, 0::2, 0::2] + x[:, 1::2, 0::2] + x[:, 0::2, 1::2] + x[:, 1::2, 1::2]  # (n, 48, 48, 3)
        x *= np.float32(1.0 / (4 * 255.0))  # 2x2 average, scaled to [0, 1]
        x -= np.float32(0.5)
        h = _pool2(_conv_relu(x, w1, _CONV1[0]))  # (n, 24, 24, 32)
        h = _conv_relu(h, w2, _CONV2[0])  # (n, 24, 24, 256)
        features[lo:lo + n] = _region_max(h)  # (n, 4096)
    return features


def featurize_for_dataset(images, base_dir):
    """The 512 PCA features a shapes dataset would hold for new images (e.g. a PNG to caption).

    Uses the filters and the PCA saved in ``base_dir/shapes_featurizer.npz``.

    Inputs:
    - images: as for :func:`featurize_images`.
    - base_dir: directory of a dataset made by :func:`make_shapes_dataset`.

    Returns features, of shape (N, 512), float32.
    """
    path = Path(base_dir) / FEATURIZER_FILE
    if not path.is_file():
        raise FileNotFoundError(f"featurize_for_dataset: {path} not found; {base_dir} is not a shapes "
                                f"dataset made by cs231n.data.shapes (real COCO features come from VGG-16)")
    with np.load(path) as saved:
        weights = {"conv1": saved["conv1"], "conv2": saved["conv2"]}
        pca = {"mean": saved["pca_mean"], "components": saved["pca_components"], "scale": saved["pca_scale"]}
    return apply_pca(featurize_images(images, weights), pca)
