"""The "shapes" dataset: synthetic captioned images written in the cs231n COCO captioning format.

The real COCO release needs the internet; this module makes a small stand-in that a captioning model
can learn in minutes on a laptop and that :func:`cs231n.coco_utils.load_coco_data` loads unchanged.

What it is, plainly:

- Images: 96x96 RGB PNGs (64 to 128 px with `image_size`) drawn with Pillow. Each shows 1 to 3 flat
  objects on a light, slightly tinted background: 7 colors (red, orange, yellow, green, blue, purple,
  black), 5 shapes (circle, square, triangle, diamond, star), 2 sizes (small, large). Two objects sit
  side by side (a row) or one above the other (a column); three objects form a row or a column.
  Positions, sizes, colors and the background are jittered a little.
- Captions: 5 different captions per image from a small grammar, at most 15 words each, naming every
  object's size, color and shape and how they are placed, e.g. ``a large red circle to the left of a
  small blue square``. Synonyms (big/large, disk/circle, over/above, ...), optional words and reversed
  orderings (``... to the right of ...``) make them vary; each part has one most common phrasing
  (used in 45% to 80% of captions), so a model that says it matches several of an image's captions.
  About 2% of captions carry a typo; the vocabulary's minimum count turns the rare ones into
  ``<UNK>``, as rare words are in COCO.
- Features: NOT a trained network. A fixed random-weight convolutional featurizer written in numpy
  (:func:`featurize_images`): the image is resized to 96x96, scaled to [-0.5, 0.5] and averaged down
  to 48x48; a 5x5 convolution to 32 channels, ReLU and 2x2 max pooling give 24x24x32; a 3x3
  convolution to 256 channels and ReLU give 24x24x256; each channel is max-pooled over 16 regions
  (the whole image, its 3 horizontal bands, its 3 vertical bands and its 3x3 cells) to give
  16 x 256 = 4096 values, stored as ``*_vgg16_fc7.h5`` because that is the format's file name. A PCA
  fitted on the training features (mean, then the top 512 principal axes, then one global scale)
  gives the 512 values of ``*_vgg16_fc7_pca.h5``. The filters and the PCA are saved in
  ``shapes_featurizer.npz`` so that :func:`featurize_for_dataset` can featurize new images later.
- URLs: ``file://`` URLs of the rendered PNGs (``images/train2014/000000.png``, ...).
- Also written: ``shapes_meta.json`` (every generation parameter; written last, so it marks a
  complete dataset), ``shapes_scenes.json`` (each image's objects, positions and captions) and a
  ``README.md``.

Everything is determined by `seed` (on one machine; BLAS may round differently elsewhere). The
default size (6000 training and 1000 validation images, 5 captions each) takes 20 to 45 seconds on
two cores; ``size='tiny'`` (60 and 20 images) takes about a second, for tests.

Entry points: :func:`ensure_shapes_dataset` (generate once into a cache directory and reuse it),
:func:`make_shapes_dataset` (generate into a given directory), :func:`featurize_images`,
:func:`featurize_for_dataset`; and the pieces: :func:`sample_scene`, :func:`render_scene`,
:func:`describe_scene`.
"""
import json
import os
import shutil
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from types import MappingProxyType

import h5py
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image, ImageDraw

from cs231n.coco_utils import (CAPTION_LENGTH, CAPTIONS_FILE, PCA_FEATURE_DIM, RAW_FEATURE_DIM, SPECIAL_TOKENS,
                               VOCAB_FILE)

FORMAT_NAME = "cs231n-shapes"
FORMAT_VERSION = 1

# Names of the files of the cs231n COCO captioning format (SPEC section 5) and of this dataset's extras.
META_FILE = "shapes_meta.json"  # written last: its presence marks a complete dataset
SCENES_FILE = "shapes_scenes.json"
FEATURIZER_FILE = "shapes_featurizer.npz"
README_FILE = "README.md"
MAX_WORDS = CAPTION_LENGTH - 2

# Preset sizes: (training images, validation images, minimum word count of the vocabulary).
SIZES = MappingProxyType({
    "tiny": (60, 20, 2),
    "default": (6000, 1000, 5),
})

COLORS = MappingProxyType({
    "red": (215, 40, 40),
    "orange": (245, 140, 30),
    "yellow": (235, 205, 35),
    "green": (40, 160, 60),
    "blue": (40, 80, 215),
    "purple": (135, 60, 175),
    "black": (35, 35, 35),
})
SHAPES = ("circle", "square", "triangle", "diamond", "star")
OBJECT_SIZES = ("small", "large")
# Radius of an object as a fraction of the image side (jittered by +-6%).
_RADIUS = MappingProxyType({"small": 0.095, "large": 0.14})
# Probabilities of 1, 2 and 3 objects.
_COUNT_PROBS = (0.2, 0.5, 0.3)

# Words for each fact, with their probabilities; the first is the most common phrasing.
_SIZE_WORDS = MappingProxyType({
    "large": (("large", 0.6), ("big", 0.4)),
    "small": (("small", 0.6), ("little", 0.25), ("tiny", 0.15)),
})
_COLOR_WORDS = MappingProxyType({
    "purple": (("purple", 0.75), ("violet", 0.25)),
})
_SHAPE_WORDS = MappingProxyType({
    "circle": (("circle", 0.75), ("disk", 0.25)),
    "square": (("square", 0.8), ("box", 0.2)),
    "diamond": (("diamond", 0.8), ("rhombus", 0.2)),
})
_SIZE_DROP_PROB = 0.1  # a caption leaves out every size word
_TYPO_PROB = 0.02  # a caption misspells one color or shape word

# Featurizer constants (see the module docstring).
FEATURE_INPUT_SIZE = 96
FEATURIZER_SEED = 231
_CONV1 = (5, 3, 32)  # kernel size, input channels, output channels
_CONV2 = (3, 32, 256)
_BATCH = 100


@dataclass(frozen=True)
class ShapeObject:
    """One drawn object: its facts and where it is.

    - shape, color, size: names from SHAPES, COLORS and OBJECT_SIZES.
    - x, y: center as fractions of the image width and height (y grows downwards).
    - radius: as a fraction of the image side.
    - rgb: the jittered fill color actually drawn.
    """
    shape: str
    color: str
    size: str
    x: float
    y: float
    radius: float
    rgb: tuple


@dataclass(frozen=True)
class Scene:
    """What one image shows.

    - layout: ``'single'``, ``'row'`` (objects left to right) or ``'column'`` (objects top to bottom).
    - objects: tuple of ShapeObject, in reading order (left to right, or top to bottom).
    - background: RGB of the background.
    """
    layout: str
    objects: tuple
    background: tuple


# ----------------------------------------------------------------------------------------------------
# Scenes, images and captions


def sample_scene(rng):
    """Draw a random scene: 1 to 3 objects, their facts, positions and the background.

    Inputs:
    - rng: np.random.Generator.

    Returns a Scene.
    """
    count = int(rng.choice(3, p=_COUNT_PROBS)) + 1
    if count == 1:
        layout = "single"
        along = [rng.uniform(0.3, 0.7)]
        across = rng.uniform(0.3, 0.7)
    else:
        layout = "row" if rng.random() < 0.5 else "column"
        if count == 2:
            along = [rng.uniform(0.2, 0.32), rng.uniform(0.68, 0.8)]
            jitter = 0.04
        else:
            along = [c + rng.uniform(-0.01, 0.01) for c in (0.17, 0.5, 0.83)]
            jitter = 0.03
        across = rng.uniform(0.3, 0.7)
    color_names = list(COLORS)
    objects = []
    for a in along:
        c = across + (rng.uniform(-jitter, jitter) if count > 1 else 0.0)
        x, y = (a, c) if layout in ("single", "row") else (c, a)
        size = OBJECT_SIZES[rng.integers(len(OBJECT_SIZES))]
        color = color_names[rng.integers(len(color_names))]
        rgb = tuple(int(np.clip(v + rng.integers(-15, 16), 0, 255)) for v in COLORS[color])
        objects.append(ShapeObject(
            shape=SHAPES[rng.integers(len(SHAPES))], color=color, size=size,
            x=float(x), y=float(y), radius=float(_RADIUS[size] * rng.uniform(0.94, 1.06)), rgb=rgb))
    gray = int(rng.integers(205, 251))
    background = tuple(int(np.clip(gray + rng.integers(-6, 7), 0, 255)) for _ in range(3))
    return Scene(layout=layout, objects=tuple(objects), background=background)


def _outline(shape, cx, cy, r):
    """Polygon vertices of a shape centered at (cx, cy) with radius r, in pixels."""
    if shape == "square":
        s = 0.85 * r
        return [(cx - s, cy - s), (cx + s, cy - s), (cx + s, cy + s), (cx - s, cy + s)]
    if shape == "triangle":
        return [(cx, cy - r), (cx + 0.95 * r, cy + 0.8 * r), (cx - 0.95 * r, cy + 0.8 * r)]
    if shape == "diamond":
        return [(cx, cy - r), (cx + 0.8 * r, cy), (cx, cy + r), (cx - 0.8 * r, cy)]
    if shape == "star":
        angles = -np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, r, 0.45 * r)
        return list(zip(cx + radii * np.cos(angles), cy + radii * np.sin(angles)))
    raise ValueError(f"_outline: unknown shape {shape!r}; expected one of {SHAPES}")


def render_scene(scene, image_size=96, supersample=2):
    """Draw a scene with Pillow.

    Shapes are drawn at `supersample` times the size and box-filtered down, which smooths the edges.

    Inputs:
    - scene: a Scene.
    - image_size: side S of the square image in pixels.
    - supersample: integer drawing scale >= 1.

    Returns an array of shape (S, S, 3), uint8.
    """
    side = image_size * supersample
    image = Image.new("RGB", (side, side), scene.background)
    draw = ImageDraw.Draw(image)
    for obj in scene.objects:
        cx, cy, r = obj.x * side, obj.y * side, obj.radius * side
        if obj.shape == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=obj.rgb)
        else:
            draw.polygon(_outline(obj.shape, cx, cy, r), fill=obj.rgb)
    if supersample > 1:
        image = image.resize((image_size, image_size), Image.Resampling.BOX)
    return np.asarray(image, dtype=np.uint8)


def _pick(rng, choices):
    """One word (or phrase) from ``((word, probability), ...)`` (probabilities summing to 1)."""
    r = rng.random()
    for word, p in choices:
        r -= p
        if r < 0:
            return word
    return choices[-1][0]


def _noun_phrase(obj, rng, with_size):
    """``a large red circle``: article, optional size word, color word, shape word."""
    words = []
    if with_size:
        words.append(_pick(rng, _SIZE_WORDS[obj.size]))
    words.append(_pick(rng, _COLOR_WORDS.get(obj.color, ((obj.color, 1.0),))))
    words.append(_pick(rng, _SHAPE_WORDS.get(obj.shape, ((obj.shape, 1.0),))))
    article = "an" if words[0][0] in "aeiou" else "a"
    return " ".join([article] + words)


# Caption templates per (layout, number of objects): (template, probability). {0}, {1}, {2} are the
# objects in reading order; {rel} is a relation phrase drawn from the named list in _RELATIONS.
_TEMPLATES = MappingProxyType({
    ("single", 1): (
        ("{0}", 0.45), ("there is {0}", 0.25), ("a picture of {0}", 0.15), ("{0} on a plain background", 0.15)),
    ("row", 2): (
        ("{0} {left} {1}", 0.55), ("there is {0} {left} {1}", 0.1), ("{1} {right} {0}", 0.25),
        ("{0} and {1} side by side", 0.1)),
    ("column", 2): (
        ("{0} {above} {1}", 0.55), ("there is {0} {above} {1}", 0.1), ("{1} {below} {0}", 0.25),
        ("{0} and {1} one above the other", 0.1)),
    ("row", 3): (
        ("{0} left of {1} and {2}", 0.55), ("{2} right of {1} and {0}", 0.2), ("{0} then {1} then {2}", 0.15),
        ("{0} next to {1} and {2}", 0.1)),
    ("column", 3): (
        ("{0} {above_short} {1} and {2}", 0.55), ("{2} {below_short} {1} and {0}", 0.2),
        ("{0} over {1} over {2}", 0.15), ("{0} above {1} above {2}", 0.1)),
})
_RELATIONS = MappingProxyType({
    "left": (("to the left of", 0.6), ("left of", 0.25), ("on the left side of", 0.15)),
    "right": (("to the right of", 0.6), ("right of", 0.25), ("on the right side of", 0.15)),
    "above": (("above", 0.6), ("over", 0.25), ("on top of", 0.15)),
    "below": (("below", 0.6), ("under", 0.25), ("beneath", 0.15)),
    "above_short": (("above", 0.7), ("over", 0.3)),
    "below_short": (("below", 0.6), ("under", 0.4)),
})


def _typo(word, rng):
    """Misspell a word: swap two neighbouring letters, drop one, double one, or replace one."""
    i = int(rng.integers(1, len(word) - 1))
    kind = int(rng.integers(4))
    if kind == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if kind == 1:
        return word[:i] + word[i + 1:]
    if kind == 2:
        return word[:i] + word[i] + word[i:]
    return word[:i] + "abcdefghijklmnopqrstuvwxyz"[int(rng.integers(26))] + word[i + 1:]


def _one_caption(scene, rng):
    """One caption of a scene from the grammar (see _TEMPLATES and _RELATIONS)."""
    key = (scene.layout, len(scene.objects))
    template = _pick(rng, _TEMPLATES[key])
    with_size = rng.random() >= _SIZE_DROP_PROB
    phrases = [_noun_phrase(obj, rng, with_size) for obj in scene.objects]
    relations = {name: _pick(rng, choices) for name, choices in _RELATIONS.items()}
    words = template.format(*phrases, **relations).split()
    if rng.random() < _TYPO_PROB:
        names = set(COLORS) | set(SHAPES) | {w for c in _SHAPE_WORDS.values() for w, _ in c}
        spots = [i for i, w in enumerate(words) if w in names and len(w) >= 4]
        if spots:
            i = spots[int(rng.integers(len(spots)))]
            words[i] = _typo(words[i], rng)
    assert len(words) <= MAX_WORDS, f"caption of {len(words)} words > {MAX_WORDS}: {' '.join(words)}"
    return " ".join(words)


def describe_scene(scene, rng, num_captions=5):
    """Write `num_captions` different captions of a scene (duplicates only if the grammar runs out).

    Inputs:
    - scene: a Scene.
    - rng: np.random.Generator.
    - num_captions: how many captions.

    Returns a list of str, lower case words separated by single spaces, at most 15 words each.
    """
    captions = []
    for _ in range(50 * num_captions):
        caption = _one_caption(scene, rng)
        if caption not in captions:
            captions.append(caption)
            if len(captions) == num_captions:
                return captions
    while len(captions) < num_captions:
        captions.append(_one_caption(scene, rng))
    return captions


# ----------------------------------------------------------------------------------------------------
# Featurizer


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
    for lo in range(0, N, _BATCH):
        x = batch[lo:lo + _BATCH].astype(np.float32)  # (n, 96, 96, 3)
        n = x.shape[0]
        x = x[:, 0::2, 0::2] + x[:, 1::2, 0::2] + x[:, 0::2, 1::2] + x[:, 1::2, 1::2]  # (n, 48, 48, 3)
        x *= np.float32(1.0 / (4 * 255.0))  # 2x2 average, scaled to [0, 1]
        x -= np.float32(0.5)
        h = _pool2(_conv_relu(x, w1, _CONV1[0]))  # (n, 24, 24, 32)
        h = _conv_relu(h, w2, _CONV2[0])  # (n, 24, 24, 256)
        features[lo:lo + n] = _region_max(h)  # (n, 4096)
    return features


def fit_pca(features, num_components=PCA_FEATURE_DIM, seed=0):
    """Fit a PCA projection on features, by randomized SVD (exact SVD for few rows).

    The projection of x is ``(x - mean) @ components.T * scale``. Axes are ordered by decreasing
    variance and signed so that the entry of largest magnitude is positive. When fewer than
    `num_components` axes exist (fewer rows than that), the missing ones are rows of zeros. `scale` is
    the one number that makes the projected training features have mean squared norm equal to
    num_components (so each of the M values has variance 1 on average).

    Inputs:
    - features: array of shape (N, D).
    - num_components: number M of axes.
    - seed: seed of the random test matrix.

    Returns a dict with ``mean`` (D,), ``components`` (M, D) and ``scale`` (a 0-d array), float32.
    """
    X = np.asarray(features, dtype=np.float32)
    if X.ndim != 2 or X.shape[0] < 1:
        raise ValueError(f"fit_pca: features must have shape (N, D) with N >= 1, got {X.shape}")
    if not isinstance(num_components, (int, np.integer)) or isinstance(num_components, bool) or num_components < 1:
        raise ValueError(f"fit_pca: num_components must be a positive integer, got {num_components!r}")
    N, D = X.shape
    mean = X.mean(axis=0, dtype=np.float64).astype(np.float32)  # (D,)
    Xc = X - mean  # (N, D)
    M = num_components
    oversample = 64
    if N <= M + oversample or D <= M + oversample:
        s, Vt = _top_axes(Xc, M)
    else:
        rng = np.random.default_rng(seed)
        Y = Xc @ rng.standard_normal((D, M + oversample)).astype(np.float32)  # (N, M+p)
        for _ in range(2):  # power iterations sharpen the spectrum
            Q = _orthonormalize(Y)
            Y = Xc @ (Xc.T @ Q)  # (N, M+p)
        Q = _orthonormalize(Y)
        s, Vt = _top_axes(Q.T @ Xc, M)  # the top axes of Xc restricted to the range of Q
    k = min(M, Vt.shape[0])
    components = np.zeros((M, D), dtype=np.float64)
    components[:k] = Vt[:k]
    peaks = np.abs(components[:k]).argmax(axis=1)
    components[:k] *= np.sign(components[np.arange(k), peaks])[:, None]
    components = components.astype(np.float32)
    energy = float(np.sum(s[:k].astype(np.float64) ** 2)) / max(N, 1)
    scale = np.float32(np.sqrt(M / energy) if energy > 0 else 1.0)
    return {"mean": mean, "components": components, "scale": np.asarray(scale, dtype=np.float32)}


def _orthonormalize(Y):
    """Orthonormal columns spanning the range of Y (N, K), by Cholesky QR done twice (CholeskyQR2).

    Used instead of ``np.linalg.qr``, which is far slower for tall matrices in some LAPACK builds. The
    Gram matrices are factored in float64 with a tiny ridge, so rank-deficient Y does not fail.
    """
    Q = Y
    for _ in range(2):  # the second pass repairs the orthogonality lost to rounding
        G = Q.T.astype(np.float64) @ Q.astype(np.float64)  # (K, K)
        G[np.diag_indices_from(G)] += 1e-10 * max(float(np.trace(G)), 1e-30) / G.shape[0]
        L = np.linalg.cholesky(G)  # G = L L^T
        Q = Q @ np.linalg.inv(L).T.astype(Y.dtype)  # (N, K)
    return Q


def _top_axes(B, k):
    """Singular values and right singular vectors of B (R, D), largest first, at most k of them.

    Computed in float64 from the eigen-decomposition of the smaller of B B^T (R, R) and B^T B (D, D).
    """
    B = np.asarray(B, dtype=np.float64)
    R, D = B.shape
    if R <= D:
        lam, U = np.linalg.eigh(B @ B.T)  # ascending
        lam, U = lam[::-1], U[:, ::-1]
    else:
        lam, V = np.linalg.eigh(B.T @ B)
        lam, V = lam[::-1], V[:, ::-1]
    keep = lam > max(lam[0], 0.0) * 1e-10
    keep[k:] = False
    s = np.sqrt(lam[keep])
    Vt = (U[:, keep].T @ B) / s[:, None] if R <= D else V[:, keep].T  # (k', D)
    return s, Vt


def apply_pca(features, pca):
    """Project raw features with a fitted PCA: ``(x - mean) @ components.T * scale``.

    Inputs:
    - features: array of shape (N, D).
    - pca: dict from :func:`fit_pca` (or loaded from ``shapes_featurizer.npz``).

    Returns an array of shape (N, M), float32.
    """
    X = np.asarray(features, dtype=np.float32)
    out = (X - pca["mean"]) @ pca["components"].T  # (N, M)
    out *= np.float32(pca["scale"])
    return out.astype(np.float32, copy=False)


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


# ----------------------------------------------------------------------------------------------------
# Vocabulary and encoding


def build_vocab(captions, min_count):
    """Vocabulary of caption words: the 4 special tokens, then words seen at least `min_count` times.

    Words are ordered by descending count, ties alphabetically.

    Inputs:
    - captions: iterable of str (space-separated words).
    - min_count: int >= 1.

    Returns a tuple of idx_to_word (list of V words) and word_to_idx (dict).
    """
    counts = Counter(w for c in captions for w in c.split())
    kept = sorted((w for w, n in counts.items() if n >= min_count and w not in SPECIAL_TOKENS),
                  key=lambda w: (-counts[w], w))
    idx_to_word = list(SPECIAL_TOKENS) + kept
    return idx_to_word, {w: i for i, w in enumerate(idx_to_word)}


def encode_captions(captions, word_to_idx, length=CAPTION_LENGTH):
    """Encode captions as rows ``<START> w1 .. wk <END> <NULL> ..``; unknown words become ``<UNK>``.

    Inputs:
    - captions: list of N str of at most length - 2 words.
    - word_to_idx: dict with the special tokens.
    - length: T, the row length.

    Returns an array of shape (N, T), int32.
    """
    null, start, end, unk = (word_to_idx[t] for t in SPECIAL_TOKENS)
    out = np.full((len(captions), length), null, dtype=np.int32)  # (N, T)
    for n, caption in enumerate(captions):
        words = caption.split()
        if len(words) > length - 2:
            raise ValueError(f"encode_captions: caption {n} has {len(words)} words, more than {length - 2}")
        out[n, :len(words) + 2] = [start, *(word_to_idx.get(w, unk) for w in words), end]
    return out


# ----------------------------------------------------------------------------------------------------
# Writing and caching datasets


def _parameters(size, num_train_images, num_val_images, seed, image_size, captions_per_image, min_word_count):
    """Resolve the generation parameters (presets filled in) and validate them."""
    if size not in SIZES:
        raise ValueError(f"shapes: size must be one of {sorted(SIZES)}, got {size!r}")
    preset_train, preset_val, preset_min = SIZES[size]
    params = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "size": size,
        "num_train_images": preset_train if num_train_images is None else num_train_images,
        "num_val_images": preset_val if num_val_images is None else num_val_images,
        "seed": seed,
        "image_size": image_size,
        "captions_per_image": captions_per_image,
        "min_word_count": preset_min if min_word_count is None else min_word_count,
        "featurizer_seed": FEATURIZER_SEED,
    }
    for name in ("num_train_images", "num_val_images", "captions_per_image", "min_word_count", "seed"):
        value = params[name]
        low = 0 if name == "seed" else 1
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
            raise ValueError(f"shapes: {name} must be an integer >= {low}, got {value!r}")
        params[name] = int(value)
    if not isinstance(image_size, (int, np.integer)) or isinstance(image_size, bool) or not 64 <= image_size <= 128:
        raise ValueError(f"shapes: image_size must be an integer in [64, 128], got {image_size!r}")
    params["image_size"] = int(image_size)
    return params


def _file_url(path):
    """``file://`` URL of an absolute path."""
    return Path(path).resolve().as_uri()


def _write_features(path, features):
    with h5py.File(path, "w") as f:
        f.create_dataset("features", data=np.ascontiguousarray(features, dtype=np.float32))


def _write_urls(directory, final_dir, split, num_images):
    """Write ``{split}2014_urls.txt``: the file:// URL each image will have once in `final_dir`."""
    lines = [_file_url(Path(final_dir) / "images" / f"{split}2014" / f"{i:06d}.png") for i in range(num_images)]
    (Path(directory) / f"{split}2014_urls.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _readme(params, stats):
    return (
        "# shapes: a synthetic captioning dataset in the cs231n COCO format\n\n"
        "Made by `cs231n.data.shapes` (see its module docstring for the full description).\n\n"
        f"- {params['num_train_images']} training and {params['num_val_images']} validation images, "
        f"{params['image_size']}x{params['image_size']} PNGs of 1 to 3 colored shapes, in `images/`.\n"
        f"- {params['captions_per_image']} captions per image from a grammar; vocabulary of "
        f"{stats['vocab_size']} words (words seen fewer than {params['min_word_count']} times in the "
        "training captions are `<UNK>`).\n"
        "- `*_vgg16_fc7.h5` are NOT VGG-16 features: they are 4096 values from a fixed random-weight\n"
        "  convolutional featurizer written in numpy (two convolutions, ReLU, max pooling over 16 image\n"
        "  regions); `*_vgg16_fc7_pca.h5` are their projection on 512 principal axes fitted on the\n"
        "  training features. The filters and the PCA are in `shapes_featurizer.npz`.\n"
        f"- Generated with seed {params['seed']}; `shapes_meta.json` records every parameter.\n"
    )


def make_shapes_dataset(out_dir, size="default", *, num_train_images=None, num_val_images=None, seed=0,
                        image_size=96, captions_per_image=5, min_word_count=None, final_dir=None,
                        verbose=False):
    """Generate the shapes dataset into a directory, in the cs231n COCO captioning format.

    Inputs:
    - out_dir: directory to write (created; it must not exist or be empty).
    - size: ``'default'`` (6000 train / 1000 val images, minimum word count 5) or ``'tiny'``
      (60 / 20, minimum word count 2); the counts below override the preset.
    - num_train_images, num_val_images: image counts (None: from `size`).
    - seed: int; the whole dataset is a function of it.
    - image_size: side of the PNGs in pixels, 64 to 128 (features always see them at 96x96).
    - captions_per_image: captions per image.
    - min_word_count: words seen fewer times in the training captions become ``<UNK>``.
    - final_dir: where the directory will finally live, for the ``file://`` URLs (default out_dir);
      :func:`ensure_shapes_dataset` builds in a temporary directory and renames it.
    - verbose: print the time each stage takes.

    Returns the path of out_dir (a pathlib.Path).
    """
    params = _parameters(size, num_train_images, num_val_images, seed, image_size, captions_per_image,
                         min_word_count)
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"make_shapes_dataset: {out} exists and is not an empty directory")
    final = Path(final_dir) if final_dir is not None else out
    t0 = time.perf_counter()
    timings = {}
    splits = {"train": params["num_train_images"], "val": params["num_val_images"]}
    # One independent stream per split, so the val split does not change with the number of train images.
    streams = {split: np.random.default_rng(child)
               for split, child in zip(splits, np.random.SeedSequence(params["seed"]).spawn(len(splits)))}

    # Images are featurized chunk by chunk in a worker thread while the next chunk is drawn; numpy
    # releases the GIL in the heavy operations, so the two overlap on two cores. Chunks are whole
    # multiples of the featurizer's batch, so the features equal those of one featurize_images call.
    weights = featurizer_weights(params["featurizer_seed"])
    chunk = 5 * _BATCH
    scenes, captions, pending = {}, {}, {}
    with ThreadPoolExecutor(max_workers=1) as worker:
        for split, count in splits.items():
            rng = streams[split]
            image_dir = out / "images" / f"{split}2014"
            image_dir.mkdir(parents=True, exist_ok=True)
            scenes[split], captions[split], pending[split] = [], [], []
            for lo in range(0, count, chunk):
                n = min(chunk, count - lo)
                batch = np.empty((n, params["image_size"], params["image_size"], 3), dtype=np.uint8)
                for j in range(n):
                    scene = sample_scene(rng)
                    batch[j] = render_scene(scene, params["image_size"])
                    Image.fromarray(batch[j]).save(image_dir / f"{lo + j:06d}.png", compress_level=1)
                    scenes[split].append(scene)
                    captions[split].append(describe_scene(scene, rng, params["captions_per_image"]))
                pending[split].append(worker.submit(featurize_images, batch, weights))
        timings["render"] = time.perf_counter() - t0
        raw = {split: np.concatenate([job.result() for job in pending[split]]) for split in splits}  # (M, 4096)
    timings["featurize"] = time.perf_counter() - t0 - timings["render"]  # what was left after drawing

    t1 = time.perf_counter()
    pca = fit_pca(raw["train"], PCA_FEATURE_DIM, seed=params["seed"])
    projected = {split: apply_pca(raw[split], pca) for split in splits}  # (M, 512)
    timings["pca"] = time.perf_counter() - t1

    t1 = time.perf_counter()
    flat = {split: [c for per_image in captions[split] for c in per_image] for split in splits}
    idx_to_word, word_to_idx = build_vocab(flat["train"], params["min_word_count"])
    with h5py.File(out / CAPTIONS_FILE, "w") as f:
        for split in splits:
            f.create_dataset(f"{split}_captions", data=encode_captions(flat[split], word_to_idx))
            idxs = np.repeat(np.arange(splits[split], dtype=np.int32), params["captions_per_image"])
            f.create_dataset(f"{split}_image_idxs", data=idxs)
    (out / VOCAB_FILE).write_text(json.dumps({"idx_to_word": idx_to_word, "word_to_idx": word_to_idx}),
                                  encoding="utf-8")
    for split in splits:
        _write_features(out / f"{split}2014_vgg16_fc7.h5", raw[split])
        _write_features(out / f"{split}2014_vgg16_fc7_pca.h5", projected[split])
        _write_urls(out, final, split, splits[split])
    np.savez(out / FEATURIZER_FILE, conv1=weights["conv1"], conv2=weights["conv2"], pca_mean=pca["mean"],
             pca_components=pca["components"], pca_scale=pca["scale"])
    (out / SCENES_FILE).write_text(json.dumps(
        {split: [{"captions": caps, **asdict(scene)} for scene, caps in zip(scenes[split], captions[split])]
         for split in splits}), encoding="utf-8")
    unk = sum(w not in word_to_idx for c in flat["train"] for w in c.split())
    stats = {"vocab_size": len(idx_to_word), "train_unk_tokens": unk}
    (out / README_FILE).write_text(_readme(params, stats), encoding="utf-8")
    timings["write"] = time.perf_counter() - t1
    timings["total"] = time.perf_counter() - t0
    # The meta file goes last: a directory without it is an unfinished build.
    (out / META_FILE).write_text(json.dumps({"params": params, "stats": stats,
                                             "seconds": {k: round(v, 3) for k, v in timings.items()}},
                                            indent=1), encoding="utf-8")
    if verbose:
        print("shapes: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()) + f" -> {final}")
    return out


def default_shapes_dir(size="default", seed=0):
    """Default cache directory: ``$CS231N_SHAPES_DIR``, else ``datasets/shapes`` at the repository root.

    Other sizes and seeds than ('default', 0) get a sibling directory ``<that>_<size>_seed<seed>`` so
    that they never replace the default dataset.
    """
    override = os.environ.get("CS231N_SHAPES_DIR")
    base = Path(override).expanduser() if override else Path(__file__).resolve().parents[2] / "datasets" / "shapes"
    if (size, seed) == ("default", 0):
        return base
    return base.with_name(f"{base.name}_{size}_seed{seed}")


def _read_meta(directory):
    """The params recorded in a dataset directory, or None when it is not a complete shapes dataset."""
    try:
        meta = json.loads((Path(directory) / META_FILE).read_text(encoding="utf-8"))
        return meta["params"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _is_complete(directory, params):
    """Whether `directory` holds a complete shapes dataset made with `params`."""
    d = Path(directory)
    if _read_meta(d) != params:
        return False
    names = [CAPTIONS_FILE, VOCAB_FILE, FEATURIZER_FILE] + [
        f"{split}2014_{suffix}" for split in ("train", "val")
        for suffix in ("vgg16_fc7.h5", "vgg16_fc7_pca.h5", "urls.txt")]
    return all((d / name).is_file() for name in names)


def _fix_urls(directory, params):
    """Rewrite the URL lists if the dataset was moved since it was made (the URLs are absolute)."""
    d = Path(directory)
    for split, key in (("train", "num_train_images"), ("val", "num_val_images")):
        path = d / f"{split}2014_urls.txt"
        with open(path, encoding="utf-8") as f:
            first = f.readline().strip()
        if first != _file_url(d / "images" / f"{split}2014" / "000000.png"):
            tmp = Path(tempfile.mkdtemp(prefix=".urls-", dir=d))
            try:
                _write_urls(tmp, d, split, params[key])
                os.replace(tmp / path.name, path)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)


def ensure_shapes_dataset(cache_dir=None, size="default", seed=0, *, verbose=True, **kwargs):
    """Return the directory of a shapes dataset, generating it there first if needed.

    A complete dataset whose recorded parameters match is reused as is. Otherwise the dataset is built
    in a temporary directory beside `cache_dir` and renamed into place, so an interrupted build never
    leaves half a dataset behind; an older shapes dataset with other parameters is replaced. A
    directory that holds anything else is never touched: that is an error.

    Inputs:
    - cache_dir: dataset directory (default :func:`default_shapes_dir`).
    - size, seed: as for :func:`make_shapes_dataset`.
    - verbose: print a line when generating.
    - kwargs: other keyword arguments of :func:`make_shapes_dataset` (num_train_images, ...).

    Returns the dataset directory (a pathlib.Path), ready for
    ``cs231n.coco_utils.load_coco_data(base_dir=...)``.
    """
    target = Path(cache_dir) if cache_dir is not None else default_shapes_dir(size, seed)
    target = target.expanduser().absolute()
    params = _parameters(size, kwargs.get("num_train_images"), kwargs.get("num_val_images"), seed,
                         kwargs.get("image_size", 96), kwargs.get("captions_per_image", 5),
                         kwargs.get("min_word_count"))
    if _is_complete(target, params):
        _fix_urls(target, params)
        return target
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"ensure_shapes_dataset: {target} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and _read_meta(target) is None:
        raise FileExistsError(f"ensure_shapes_dataset: {target} is not empty and does not hold a shapes "
                              f"dataset; choose another cache_dir or remove it")
    target.parent.mkdir(parents=True, exist_ok=True)
    if verbose:
        print(f"shapes: generating the {size!r} dataset (seed {seed}) into {target} ...")
    build = Path(tempfile.mkdtemp(prefix=f".{target.name}-build-", dir=target.parent))
    try:
        make_shapes_dataset(build / "data", size, seed=seed, final_dir=target, verbose=verbose, **kwargs)
        aside = None
        if target.exists():
            # Another shapes dataset (other parameters), or an empty directory: move it aside, then swap.
            aside = build / "old"
            os.replace(target, aside)
        try:
            os.replace(build / "data", target)
        except OSError:
            if _is_complete(target, params):  # another process finished the same build first
                return target
            if aside is not None and not target.exists():
                os.replace(aside, target)  # put the old one back
            raise
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return target
